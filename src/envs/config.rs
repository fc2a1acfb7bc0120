//! Typed overrides of an environment's defaults: Gymnasium's `make(id, **kwargs)`.

use super::{EnvError, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Overrides of an environment's defaults, Gymnasium's `gymnasium.make(id, **kwargs)`.
///
/// Every field is optional; `None` keeps the environment's default. Each environment
/// accepts the keywords its Gymnasium counterpart accepts (listed in
/// [`EnvSpec::options`](super::EnvSpec)), and [`make_with`](super::make_with) rejects
/// any other with an error naming the accepted ones.
///
/// ```no_run
/// use stackrl::envs::{make_with, EnvConfig};
/// let config = EnvConfig { ctrl_cost_weight: Some(0.0), max_episode_steps: Some(500), ..Default::default() };
/// let env = make_with("Hopper-v5", &config)?;
/// # Ok::<(), stackrl::envs::EnvError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// TimeLimit's `max_episode_steps` (all environments).
    pub max_episode_steps: Option<usize>,
    /// MuJoCo steps per environment step (MuJoCo environments).
    pub frame_skip: Option<usize>,
    /// A model file to load instead of the built-in one (MuJoCo environments).
    pub xml_file: Option<PathBuf>,
    /// Scale of the reset noise (Hopper, Walker2d, HalfCheetah, InvertedPendulum).
    pub reset_noise_scale: Option<f64>,
    /// Weight of the forward-velocity reward (Hopper, Walker2d, HalfCheetah).
    pub forward_reward_weight: Option<f64>,
    /// Weight of the control cost (Hopper, Walker2d, HalfCheetah).
    pub ctrl_cost_weight: Option<f64>,
    /// Reward per healthy step (Hopper, Walker2d).
    pub healthy_reward: Option<f64>,
    /// End the episode when unhealthy (Hopper, Walker2d).
    pub terminate_when_unhealthy: Option<bool>,
    /// Open interval for every entry of `state_vector()[2..]` (Hopper).
    pub healthy_state_range: Option<(f64, f64)>,
    /// Open interval for the torso height (Hopper, Walker2d).
    pub healthy_z_range: Option<(f64, f64)>,
    /// Open interval for the torso pitch (Hopper, Walker2d).
    pub healthy_angle_range: Option<(f64, f64)>,
    /// Drop `qpos[0]` (x) from the observation (Hopper, Walker2d, HalfCheetah).
    pub exclude_current_positions_from_observation: Option<bool>,
    /// Weight of the fingertip-target distance (Reacher).
    pub reward_dist_weight: Option<f64>,
    /// Weight of the control cost (Reacher).
    pub reward_control_weight: Option<f64>,
    /// Gravity (Pendulum's `g`).
    pub g: Option<f64>,
    /// Sutton & Barto's reward: 0 per step, −1 on termination (CartPole).
    pub sutton_barto_reward: Option<bool>,
}

impl EnvConfig {
    /// Names of the fields that are set.
    pub fn set_fields(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => {$(if self.$field.is_some() { set.push(stringify!($field)); })*};
        }
        check!(
            max_episode_steps,
            frame_skip,
            xml_file,
            reset_noise_scale,
            forward_reward_weight,
            ctrl_cost_weight,
            healthy_reward,
            terminate_when_unhealthy,
            healthy_state_range,
            healthy_z_range,
            healthy_angle_range,
            exclude_current_positions_from_observation,
            reward_dist_weight,
            reward_control_weight,
            g,
            sutton_barto_reward
        );
        set
    }

    /// Errors if a set field is not among `accepted` or a value is out of its domain.
    pub(crate) fn validate(&self, env: &str, accepted: &[&str]) -> Result<()> {
        let invalid = |message: String| EnvError::InvalidConfig {
            env: env.to_string(),
            message,
        };
        for field in self.set_fields() {
            if field != "max_episode_steps" && !accepted.contains(&field) {
                return Err(invalid(format!(
                    "option '{field}' does not apply; {env} accepts: max_episode_steps{}{}",
                    if accepted.is_empty() { "" } else { ", " },
                    accepted.join(", ")
                )));
            }
        }
        if self.max_episode_steps == Some(0) {
            return Err(invalid("max_episode_steps must be at least 1".into()));
        }
        if self.frame_skip == Some(0) {
            return Err(invalid("frame_skip must be at least 1".into()));
        }
        let finite = [
            ("reset_noise_scale", self.reset_noise_scale),
            ("forward_reward_weight", self.forward_reward_weight),
            ("ctrl_cost_weight", self.ctrl_cost_weight),
            ("healthy_reward", self.healthy_reward),
            ("reward_dist_weight", self.reward_dist_weight),
            ("reward_control_weight", self.reward_control_weight),
            ("g", self.g),
        ];
        for (name, value) in finite {
            if let Some(v) = value
                && !v.is_finite()
            {
                return Err(invalid(format!("{name} must be finite, got {v}")));
            }
        }
        if let Some(c) = self.reset_noise_scale
            && c < 0.0
        {
            return Err(invalid(format!("reset_noise_scale must be >= 0, got {c}")));
        }
        for (name, range) in [
            ("healthy_state_range", self.healthy_state_range),
            ("healthy_z_range", self.healthy_z_range),
            ("healthy_angle_range", self.healthy_angle_range),
        ] {
            if let Some((lo, hi)) = range
                && (lo.is_nan() || hi.is_nan() || lo >= hi)
            {
                return Err(invalid(format!(
                    "{name} must satisfy low < high, got ({lo}, {hi})"
                )));
            }
        }
        Ok(())
    }
}
