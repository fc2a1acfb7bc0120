//! Walker2d-v5: a two-legged planar walker (ENV_SPEC §2).

use super::hopper::{
    LocomotionWeights, locomotion_reset_info, locomotion_step, positions_then_clipped_velocities,
};
use super::mujoco::{MjEnv, MujocoSim, MujocoTask, TaskStep, expect_sizes, uniform_reset};
use super::{EnvConfig, EnvRng, Info, Result};

pub(crate) const XML: &str = include_str!("../../models/walker2d.xml");

/// Walker2d-v5 as registered: a [`MjEnv`] driven by [`Walker2dTask`].
pub type Walker2d = MjEnv<Walker2dTask>;

/// Walker2d-v5's observation, reward, health and reset, with every default weight.
#[derive(Debug, Clone)]
pub struct Walker2dTask {
    /// Reward weights and termination (1.0, 1e-3, 1.0, true).
    pub locomotion: LocomotionWeights,
    /// Open interval for the torso height ((0.8, 2.0)).
    pub healthy_z_range: (f64, f64),
    /// Open interval for the torso pitch ((-1, 1)).
    pub healthy_angle_range: (f64, f64),
    /// Reset noise scale (5e-3).
    pub reset_noise_scale: f64,
    /// Leave qpos[0] out of the observation (true).
    pub exclude_current_positions_from_observation: bool,
}

/// Overrides Walker2d-v5 accepts.
pub(crate) const OPTIONS: &[&str] = &[
    "frame_skip",
    "xml_file",
    "reset_noise_scale",
    "forward_reward_weight",
    "ctrl_cost_weight",
    "healthy_reward",
    "terminate_when_unhealthy",
    "healthy_z_range",
    "healthy_angle_range",
    "exclude_current_positions_from_observation",
];

impl Walker2d {
    /// Builds Walker2d-v5 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<Walker2d> {
        let sim = MujocoSim::load(XML, "models/walker2d.xml", config, 4)?;
        expect_sizes(Walker2dTask::ID, &sim, 9, 9, 6)?;
        let task = Walker2dTask {
            locomotion: LocomotionWeights::from_config(config),
            healthy_z_range: config.healthy_z_range.unwrap_or((0.8, 2.0)),
            healthy_angle_range: config.healthy_angle_range.unwrap_or((-1.0, 1.0)),
            reset_noise_scale: config.reset_noise_scale.unwrap_or(5e-3),
            exclude_current_positions_from_observation: config
                .exclude_current_positions_from_observation
                .unwrap_or(true),
        };
        Ok(MjEnv::new(sim, task))
    }
}

impl Walker2dTask {
    /// Gymnasium's `is_healthy`: strict bounds on height and pitch only (no
    /// state-range or finiteness check; a NaN fails every comparison).
    pub fn is_healthy(&self, sim: &MujocoSim) -> bool {
        let (z, angle) = (sim.qpos()[1], sim.qpos()[2]);
        let (zlo, zhi) = self.healthy_z_range;
        let (alo, ahi) = self.healthy_angle_range;
        zlo < z && z < zhi && alo < angle && angle < ahi
    }
}

impl MujocoTask for Walker2dTask {
    const ID: &'static str = "Walker2d-v5";

    fn observation_dim(&self, sim: &MujocoSim) -> usize {
        let skip = usize::from(self.exclude_current_positions_from_observation);
        sim.nq() - skip + sim.nv()
    }

    fn observe(&self, sim: &MujocoSim, obs: &mut [f64]) {
        positions_then_clipped_velocities(
            sim,
            self.exclude_current_positions_from_observation,
            obs,
        );
    }

    fn reset_model(&mut self, sim: &mut MujocoSim, rng: &mut EnvRng) {
        uniform_reset(sim, rng, self.reset_noise_scale);
    }

    fn reset_info(&self, sim: &MujocoSim) -> Info {
        locomotion_reset_info(sim)
    }

    fn step(&mut self, sim: &mut MujocoSim, action: &[f64]) -> TaskStep {
        locomotion_step(sim, action, &self.locomotion, |sim| self.is_healthy(sim))
    }
}
