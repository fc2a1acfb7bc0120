//! Frame sources: MuJoCo's offscreen renderer for the MuJoCo environments, a drawn view
//! for CartPole-v1.

use mujoco_rs::prelude::{MjData, MjModel, MjtObjBase, MjvCamera};
use mujoco_rs::renderer::{MjRenderer, RendererError};

use super::camera::{CameraChoice, CameraSpec};
use super::{Frame, RenderError};
use crate::envs::Env;

/// Half the pole's length in CartPole-v1 (Gymnasium's `length`).
const POLE_HALF_LENGTH: f64 = 0.5;

/// Side of the shadow map (see [`MujocoView::new`]).
const SHADOW_SIZE: i32 = 1024;

/// Largest width or height accepted (MuJoCo's offscreen buffer is allocated at this size).
pub const MAX_SIZE: u32 = 4096;

/// Size and camera of a view.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewOptions {
    /// Width in pixels (Gymnasium's default 480).
    pub width: u32,
    /// Height in pixels (Gymnasium's default 480).
    pub height: u32,
    /// The camera.
    pub camera: CameraChoice,
    /// Multisample anti-aliasing samples per pixel (MuJoCo's `offsamples`, default 4; 0 turns
    /// anti-aliasing off, which about halves the time per frame on Mesa's llvmpipe).
    pub msaa: u32,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            width: 480,
            height: 480,
            camera: CameraChoice::Default,
            msaa: 4,
        }
    }
}

impl ViewOptions {
    /// Checks the size.
    pub fn validate(&self) -> Result<(), RenderError> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=MAX_SIZE).contains(&v) {
                return Err(RenderError::Invalid(format!(
                    "{name} must be between 16 and {MAX_SIZE} pixels, got {v}"
                )));
            }
        }
        if self.msaa > 16 {
            return Err(RenderError::Invalid(format!(
                "msaa must be at most 16 samples, got {}",
                self.msaa
            )));
        }
        Ok(())
    }
}

/// Turns an environment's current state into frames.
pub trait FrameSource {
    /// `(width, height)` of the frames.
    fn size(&self) -> (u32, u32);
    /// Called after every reset, before the episode's first frame (tracking cameras snap
    /// to their body here).
    fn begin_episode(&mut self, env: &dyn Env, obs: &[f64]) -> Result<(), RenderError>;
    /// Renders the current state; `obs` is the latest observation.
    fn render(&mut self, env: &dyn Env, obs: &[f64], frame: &mut Frame) -> Result<(), RenderError>;
}

/// The view of `env`: [`MujocoView`] for MuJoCo environments, [`CartPoleView`] for
/// CartPole; other environments are an error.
pub fn make_view(
    env: &dyn Env,
    options: &ViewOptions,
) -> Result<Box<dyn FrameSource>, RenderError> {
    options.validate()?;
    if env.as_mujoco().is_some() {
        return Ok(Box::new(MujocoView::new(env, options)?));
    }
    if env.id().starts_with("CartPole") {
        if options.camera != CameraChoice::Default {
            return Err(RenderError::Invalid(
                "CartPole-v1 is drawn, not rendered by MuJoCo: it has no cameras (leave \
                 --camera at default)"
                    .into(),
            ));
        }
        return Ok(Box::new(CartPoleView::new(options.width, options.height)));
    }
    Err(RenderError::Invalid(format!(
        "{} has no renderer",
        env.id()
    )))
}

fn renderer_error(e: RendererError) -> RenderError {
    match e {
        RendererError::GlutinError(g) => RenderError::NoEgl(g.to_string()),
        other => RenderError::Renderer(other.to_string()),
    }
}

/// MuJoCo's renderer on a private copy of the environment's model and state.
///
/// Each frame copies `qpos`, `qvel` and `act` from the environment into the copy and runs
/// `mj_fwdKinematics` there, so rendering never touches the environment's own `MjData`
/// (a rendered rollout steps exactly as an unrendered one).
pub struct MujocoView {
    // Dropped before `data` (field order): the renderer's scene refers to the model.
    renderer: MjRenderer,
    data: MjData<Box<MjModel>>,
    spec: CameraSpec,
    width: u32,
    height: u32,
    placed: bool,
}

impl std::fmt::Debug for MujocoView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MujocoView")
            .field("spec", &self.spec)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

fn camera_names(model: &MjModel) -> Vec<String> {
    (0..model.ffi().ncam as usize)
        .filter_map(|i| {
            model
                .id_to_name(MjtObjBase::mjOBJ_CAMERA, i)
                .map(String::from)
        })
        .collect()
}

impl MujocoView {
    /// Opens an offscreen renderer for the MuJoCo environment `env`.
    pub fn new(env: &dyn Env, options: &ViewOptions) -> Result<Self, RenderError> {
        options.validate()?;
        let mj = env.as_mujoco().ok_or_else(|| {
            RenderError::Invalid(format!("{} is not a MuJoCo environment", env.id()))
        })?;
        let mut model: MjModel = mj.model().clone();
        {
            // SAFETY: the offscreen buffer size is a visual option; it changes no array size
            // of mjData (Gymnasium grows it the same way).
            let vis = &mut unsafe { model.ffi_mut() }.vis;
            vis.global.offwidth = vis.global.offwidth.max(options.width as i32);
            vis.global.offheight = vis.global.offheight.max(options.height as i32);
            // MuJoCo's default 4096² shadow map is a per-frame cost independent of the frame
            // size on Mesa's software rasteriser: 1024² halved the CPU time of a 147-frame
            // Hopper render (13.0 s → 6.7 s) and still casts the shadows.
            vis.quality.shadowsize = vis.quality.shadowsize.min(SHADOW_SIZE);
            vis.quality.offsamples = options.msaa as i32;
        }
        let spec = options.camera.resolve(env.id());
        let ncam = model.ffi().ncam as usize;
        let nbody = model.ffi().nbody as usize;
        let camera = match &spec {
            CameraSpec::Free { .. } => MjvCamera::new_free(&model),
            CameraSpec::Tracking { body, .. } => {
                if *body >= nbody {
                    return Err(RenderError::Invalid(format!(
                        "{}: body {body} does not exist (the model has {nbody} bodies)",
                        env.id()
                    )));
                }
                MjvCamera::new_tracking(*body)
            }
            CameraSpec::Fixed(id) => {
                if *id >= ncam {
                    return Err(RenderError::Invalid(format!(
                        "{}: camera {id} does not exist (cameras: {:?}; or free, default, \
                         track:BODY)",
                        env.id(),
                        camera_names(&model)
                    )));
                }
                MjvCamera::new_fixed(*id)
            }
            CameraSpec::Named(name) => match model.name_to_id(MjtObjBase::mjOBJ_CAMERA, name) {
                Some(id) => MjvCamera::new_fixed(id),
                None => {
                    return Err(RenderError::Invalid(format!(
                        "{}: no camera named {name:?} (cameras: {:?}; or free, default, \
                         track:BODY)",
                        env.id(),
                        camera_names(&model)
                    )));
                }
            },
        };
        let data = MjData::try_new(Box::new(model))
            .map_err(|e| RenderError::Renderer(format!("cannot allocate mjData: {e}")))?;
        let renderer = MjRenderer::builder()
            .width(options.width)
            .height(options.height)
            .camera(camera)
            .build(data.model())
            .map_err(renderer_error)?;
        let mut view = Self {
            renderer,
            data,
            spec,
            width: options.width,
            height: options.height,
            placed: false,
        };
        view.copy_state(env)?;
        Ok(view)
    }

    fn copy_state(&mut self, env: &dyn Env) -> Result<(), RenderError> {
        let mj = env
            .as_mujoco()
            .ok_or_else(|| RenderError::Invalid("not a MuJoCo environment".into()))?;
        let src = mj.data();
        self.data.qpos_mut().copy_from_slice(src.qpos());
        self.data.qvel_mut().copy_from_slice(src.qvel());
        self.data.act_mut().copy_from_slice(src.act());
        self.data.forward_kinematics();
        Ok(())
    }

    /// Points the camera for a new episode: tracking cameras snap to their body, and a free
    /// camera without a `lookat` takes the median geom position once (as Gymnasium does).
    fn place_camera(&mut self) {
        let data = &self.data;
        let cam = self.renderer.camera_mut();
        match &self.spec {
            CameraSpec::Tracking {
                body,
                distance,
                azimuth,
                elevation,
            } => {
                cam.lookat = data.subtree_com()[*body];
                cam.distance = *distance;
                cam.azimuth = *azimuth;
                cam.elevation = *elevation;
            }
            CameraSpec::Free {
                lookat,
                distance,
                azimuth,
                elevation,
            } if !self.placed => {
                cam.lookat = lookat.unwrap_or_else(|| median_geom_position(data));
                cam.distance = distance.unwrap_or(data.model().ffi().stat.extent);
                cam.azimuth = *azimuth;
                cam.elevation = *elevation;
            }
            _ => {}
        }
        self.placed = true;
    }
}

fn median_geom_position(data: &MjData<Box<MjModel>>) -> [f64; 3] {
    let xpos = data.geom_xpos();
    let mut out = [0.0; 3];
    for (axis, o) in out.iter_mut().enumerate() {
        let mut v: Vec<f64> = xpos.iter().map(|p| p[axis]).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // numpy's median: the mean of the two middle values for an even count.
        *o = match n {
            0 => 0.0,
            _ if n % 2 == 1 => v[n / 2],
            _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        };
    }
    out
}

impl FrameSource for MujocoView {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn begin_episode(&mut self, env: &dyn Env, _obs: &[f64]) -> Result<(), RenderError> {
        self.copy_state(env)?;
        self.place_camera();
        Ok(())
    }

    fn render(&mut self, env: &dyn Env, obs: &[f64], frame: &mut Frame) -> Result<(), RenderError> {
        if !self.placed {
            self.begin_episode(env, obs)?;
        } else {
            self.copy_state(env)?;
        }
        self.renderer
            .sync_data(&mut self.data)
            .map_err(renderer_error)?;
        self.renderer.render().map_err(renderer_error)?;
        let rgb = self
            .renderer
            .rgb_flat()
            .ok_or_else(|| RenderError::Renderer("RGB rendering is disabled".into()))?;
        if frame.width() != self.width || frame.height() != self.height {
            *frame = Frame::new(self.width, self.height);
        }
        frame.rgb_mut().copy_from_slice(rgb);
        Ok(())
    }
}

/// CartPole-v1 drawn as Gymnasium's `render()` draws it (white background, black cart,
/// brown pole, blue axle, black track line), scaled to the frame: the world is 4.8 m wide
/// (twice the 2.4 m position limit) and the track sits a quarter of the height from the
/// bottom. The state is the observation `(x, ẋ, θ, θ̇)`.
#[derive(Clone, Debug)]
pub struct CartPoleView {
    width: u32,
    height: u32,
}

impl CartPoleView {
    /// A view of the given size (Gymnasium's is 600 × 400).
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

impl FrameSource for CartPoleView {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn begin_episode(&mut self, _env: &dyn Env, _obs: &[f64]) -> Result<(), RenderError> {
        Ok(())
    }

    fn render(
        &mut self,
        _env: &dyn Env,
        obs: &[f64],
        frame: &mut Frame,
    ) -> Result<(), RenderError> {
        if obs.len() != 4 {
            return Err(RenderError::Invalid(format!(
                "CartPole state has 4 entries, got {}",
                obs.len()
            )));
        }
        if frame.width() != self.width || frame.height() != self.height {
            *frame = Frame::new(self.width, self.height);
        }
        let (w, h) = (self.width as f64, self.height as f64);
        // Gymnasium's numbers are for a 600 × 400 screen; `k` rescales its pixel sizes.
        let scale = w / 4.8;
        let k = h / 400.0;
        let (x, theta) = (obs[0], obs[2]);
        let pole_len = scale * 2.0 * POLE_HALF_LENGTH;
        let (pole_w, cart_w, cart_h) = (10.0 * k, 50.0 * k, 30.0 * k);
        // y-up world as Gymnasium draws it, flipped to image rows at the end.
        let to_px = |px: f64, py: f64| (px, h - py);
        let cart_x = x * scale + w / 2.0;
        let cart_y = 100.0 * k;
        frame.fill([255, 255, 255]);
        let track = to_px(0.0, cart_y).1;
        for xi in 0..self.width as i64 {
            frame.put(xi, track.round() as i64, [0, 0, 0]);
        }
        let cart: Vec<(f64, f64)> = [
            (-cart_w / 2.0, -cart_h / 2.0),
            (-cart_w / 2.0, cart_h / 2.0),
            (cart_w / 2.0, cart_h / 2.0),
            (cart_w / 2.0, -cart_h / 2.0),
        ]
        .iter()
        .map(|&(a, b)| to_px(a + cart_x, b + cart_y))
        .collect();
        frame.fill_convex(&cart, [0, 0, 0]);
        let axle_y = cart_y + cart_h / 4.0;
        let (s, c) = theta.sin_cos();
        let pole: Vec<(f64, f64)> = [
            (-pole_w / 2.0, -pole_w / 2.0),
            (-pole_w / 2.0, pole_len - pole_w / 2.0),
            (pole_w / 2.0, pole_len - pole_w / 2.0),
            (pole_w / 2.0, -pole_w / 2.0),
        ]
        .iter()
        // Rotation by −θ (Gymnasium's `rotate_rad(-x[2])`): θ > 0 leans toward +x.
        .map(|&(a, b)| to_px(a * c + b * s + cart_x, -a * s + b * c + axle_y))
        .collect();
        frame.fill_convex(&pole, [202, 152, 101]);
        let (ax, ay) = to_px(cart_x, axle_y);
        frame.fill_circle(ax, ay, pole_w / 2.0, [129, 132, 203]);
        Ok(())
    }
}
