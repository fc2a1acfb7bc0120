//! InvertedPendulum-v5: balance a pole on a cart (ENV_SPEC §5).

use super::mujoco::{MjEnv, MujocoSim, MujocoTask, TaskStep, expect_sizes, uniform_reset};
use super::{EnvConfig, EnvRng, Info, Result};

pub(crate) const XML: &str = include_str!("../../models/inverted_pendulum.xml");

/// InvertedPendulum-v5 as registered: a [`MjEnv`] driven by [`InvertedPendulumTask`].
pub type InvertedPendulum = MjEnv<InvertedPendulumTask>;

/// InvertedPendulum-v5's observation, reward, termination and reset.
#[derive(Debug, Clone)]
pub struct InvertedPendulumTask {
    /// Reset noise scale (0.01).
    pub reset_noise_scale: f64,
}

/// Overrides InvertedPendulum-v5 accepts.
pub(crate) const OPTIONS: &[&str] = &["frame_skip", "xml_file", "reset_noise_scale"];

const STEP_INFO: &[&str] = &["reward_survive"];

impl InvertedPendulum {
    /// Builds InvertedPendulum-v5 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<InvertedPendulum> {
        let sim = MujocoSim::load(XML, "models/inverted_pendulum.xml", config, 2)?;
        expect_sizes(InvertedPendulumTask::ID, &sim, 2, 2, 1)?;
        let task = InvertedPendulumTask {
            reset_noise_scale: config.reset_noise_scale.unwrap_or(0.01),
        };
        Ok(MjEnv::new(sim, task))
    }
}

impl MujocoTask for InvertedPendulumTask {
    const ID: &'static str = "InvertedPendulum-v5";

    fn observation_dim(&self, _sim: &MujocoSim) -> usize {
        4
    }

    fn observe(&self, sim: &MujocoSim, obs: &mut [f64]) {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        obs.copy_from_slice(&[qpos[0], qpos[1], qvel[0], qvel[1]]);
    }

    fn reset_model(&mut self, sim: &mut MujocoSim, rng: &mut EnvRng) {
        uniform_reset(sim, rng, self.reset_noise_scale);
    }

    /// Reward 1 while balanced, 0 on the terminating step (v5); terminal when the
    /// observation is not finite or |angle| > 0.2 (strict, hard-coded).
    fn step(&mut self, sim: &mut MujocoSim, action: &[f64]) -> TaskStep {
        let instability = sim.do_simulation(action);
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let finite = qpos.iter().chain(qvel).all(|x| x.is_finite());
        let terminated = !finite || qpos[1].abs() > 0.2;
        let reward = if terminated { 0.0 } else { 1.0 };
        TaskStep {
            reward,
            terminated,
            info: Info::new(STEP_INFO, &[reward]),
            instability,
        }
    }
}
