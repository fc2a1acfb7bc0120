//! Cameras: each environment's default view, as Gymnasium 1.4's `DEFAULT_CAMERA_CONFIG`
//! sets it, and the `--camera` choices.
//!
//! Gymnasium's offscreen viewer starts from a free camera looking at the median of the geom
//! positions from `stat.extent` away (azimuth 90°, elevation −45°, MuJoCo's defaults), then
//! applies the environment's `DEFAULT_CAMERA_CONFIG`. It keeps the camera *free* even when
//! that config names a `trackbodyid`, which MuJoCo ignores for free cameras, so Gymnasium's
//! Hopper and Walker2d walk out of the picture. Here a config with a body becomes a
//! *tracking* camera on that body (MuJoCo's smoothed follow of its subtree centre of mass),
//! with the same distance, elevation and azimuth: the view Gymnasium's config describes.
//! HalfCheetah's config has no body; it tracks the torso (body 1) at Gymnasium's distance 4,
//! because the cheetah leaves a fixed view within a second.

/// How the camera is placed.
#[derive(Clone, Debug, PartialEq)]
pub enum CameraSpec {
    /// A free camera. `lookat: None` is the median of the geom positions at the first frame
    /// and `distance: None` the model's `stat.extent` (Gymnasium's starting point).
    Free {
        /// Point looked at.
        lookat: Option<[f64; 3]>,
        /// Distance from it.
        distance: Option<f64>,
        /// Azimuth in degrees.
        azimuth: f64,
        /// Elevation in degrees.
        elevation: f64,
    },
    /// MuJoCo's tracking camera on body `body` (its subtree centre of mass); the point
    /// looked at snaps to the body at every episode start.
    Tracking {
        /// Body id.
        body: usize,
        /// Distance.
        distance: f64,
        /// Azimuth in degrees.
        azimuth: f64,
        /// Elevation in degrees.
        elevation: f64,
    },
    /// A camera of the model, by id.
    Fixed(usize),
    /// A camera of the model, by name.
    Named(String),
}

/// MuJoCo's default azimuth and elevation (`mjv_defaultCamera`).
const AZIMUTH: f64 = 90.0;
const ELEVATION: f64 = -45.0;

/// The default camera of an environment id (see the module docs).
pub fn default_camera(env_id: &str) -> CameraSpec {
    let family = env_id.split("-v").next().unwrap_or(env_id);
    let tracking = |body, distance, elevation| CameraSpec::Tracking {
        body,
        distance,
        azimuth: AZIMUTH,
        elevation,
    };
    match family {
        // trackbodyid 2, distance 3, lookat z 1.15, elevation −20.
        "Hopper" => tracking(2, 3.0, -20.0),
        // trackbodyid 2, distance 4, lookat z 1.15, elevation −20.
        "Walker2d" => tracking(2, 4.0, -20.0),
        // distance 4 (no body in Gymnasium's config; see the module docs).
        "HalfCheetah" => tracking(1, 4.0, ELEVATION),
        // distance 2.04 (trackbodyid 0 is the world: a plain free camera).
        "InvertedPendulum" => CameraSpec::Free {
            lookat: None,
            distance: Some(2.04),
            azimuth: AZIMUTH,
            elevation: ELEVATION,
        },
        // Gymnasium's Pendulum-v1 is drawn face-on; the model's "front" camera does that.
        "Pendulum" => CameraSpec::Named("front".into()),
        // Reacher-v5 (trackbodyid 0) and anything else: Gymnasium's starting free camera.
        _ => CameraSpec::Free {
            lookat: None,
            distance: None,
            azimuth: AZIMUTH,
            elevation: ELEVATION,
        },
    }
}

/// A `--camera` value.
#[derive(Clone, Debug, PartialEq)]
pub enum CameraChoice {
    /// The environment's [`default_camera`].
    Default,
    /// A given camera.
    Spec(CameraSpec),
}

impl std::str::FromStr for CameraChoice {
    type Err = String;

    /// `default`, `free[:DISTANCE[:ELEVATION[:AZIMUTH]]]` (Gymnasium's starting free camera,
    /// optionally moved), `track:BODY_ID` (tracking with distance 3 and elevation −20), a
    /// model camera id (`-1` is the free camera, as Gymnasium's `camera_id`) or a model
    /// camera name.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty camera".into());
        }
        Ok(match s {
            "default" => CameraChoice::Default,
            "free" | "-1" => CameraChoice::Spec(CameraSpec::Free {
                lookat: None,
                distance: None,
                azimuth: AZIMUTH,
                elevation: ELEVATION,
            }),
            _ => {
                if let Some(rest) = s.strip_prefix("free:") {
                    let v = rest
                        .split(':')
                        .map(|x| x.parse::<f64>().ok().filter(|x| x.is_finite()))
                        .collect::<Option<Vec<f64>>>()
                        .filter(|v| (1..=3).contains(&v.len()) && v[0] > 0.0)
                        .ok_or_else(|| {
                            format!(
                                "camera {s:?}: expected free:DISTANCE[:ELEVATION[:AZIMUTH]] \
                                 (degrees, distance > 0)"
                            )
                        })?;
                    CameraChoice::Spec(CameraSpec::Free {
                        lookat: None,
                        distance: Some(v[0]),
                        elevation: v.get(1).copied().unwrap_or(ELEVATION),
                        azimuth: v.get(2).copied().unwrap_or(AZIMUTH),
                    })
                } else if let Some(body) = s.strip_prefix("track:") {
                    let body = body
                        .parse::<usize>()
                        .map_err(|_| format!("camera {s:?}: expected track:BODY_ID"))?;
                    CameraChoice::Spec(CameraSpec::Tracking {
                        body,
                        distance: 3.0,
                        azimuth: AZIMUTH,
                        elevation: -20.0,
                    })
                } else if let Ok(id) = s.parse::<usize>() {
                    CameraChoice::Spec(CameraSpec::Fixed(id))
                } else {
                    CameraChoice::Spec(CameraSpec::Named(s.to_string()))
                }
            }
        })
    }
}

impl CameraChoice {
    /// The camera for `env_id`.
    pub fn resolve(&self, env_id: &str) -> CameraSpec {
        match self {
            CameraChoice::Default => default_camera(env_id),
            CameraChoice::Spec(spec) => spec.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_camera_choices() {
        assert_eq!("default".parse::<CameraChoice>(), Ok(CameraChoice::Default));
        assert!(matches!(
            "free".parse::<CameraChoice>(),
            Ok(CameraChoice::Spec(CameraSpec::Free { .. }))
        ));
        assert_eq!(
            "3".parse::<CameraChoice>(),
            Ok(CameraChoice::Spec(CameraSpec::Fixed(3)))
        );
        assert_eq!(
            "track".parse::<CameraChoice>(),
            Ok(CameraChoice::Spec(CameraSpec::Named("track".into())))
        );
        assert!("track:x".parse::<CameraChoice>().is_err());
        assert_eq!(
            "free:0.9:-90".parse::<CameraChoice>(),
            Ok(CameraChoice::Spec(CameraSpec::Free {
                lookat: None,
                distance: Some(0.9),
                azimuth: AZIMUTH,
                elevation: -90.0,
            }))
        );
        assert!("free:-1".parse::<CameraChoice>().is_err());
        assert!("free:1:2:3:4".parse::<CameraChoice>().is_err());
        assert!(matches!(
            default_camera("Hopper-v5"),
            CameraSpec::Tracking { body: 2, .. }
        ));
    }
}
