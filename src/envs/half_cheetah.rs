//! HalfCheetah-v5: a planar cheetah that runs forward; never terminates (ENV_SPEC §3).

use super::mujoco::{MjEnv, MujocoSim, MujocoTask, TaskStep, control_cost, expect_sizes};
use super::{EnvConfig, EnvRng, Info, Result, standard_normal, uniform};

pub(crate) const XML: &str = include_str!("../../models/half_cheetah.xml");

/// HalfCheetah-v5 as registered: a [`MjEnv`] driven by [`HalfCheetahTask`].
pub type HalfCheetah = MjEnv<HalfCheetahTask>;

/// HalfCheetah-v5's observation, reward and reset, with every default weight.
#[derive(Debug, Clone)]
pub struct HalfCheetahTask {
    /// Weight of the forward velocity (1.0).
    pub forward_reward_weight: f64,
    /// Weight of Σa² (0.1).
    pub ctrl_cost_weight: f64,
    /// Reset noise scale (0.1): uniform on positions, Gaussian on velocities.
    pub reset_noise_scale: f64,
    /// Leave qpos[0] out of the observation (true).
    pub exclude_current_positions_from_observation: bool,
}

/// Overrides HalfCheetah-v5 accepts.
pub(crate) const OPTIONS: &[&str] = &[
    "frame_skip",
    "xml_file",
    "reset_noise_scale",
    "forward_reward_weight",
    "ctrl_cost_weight",
    "exclude_current_positions_from_observation",
];

const STEP_INFO: &[&str] = &["x_position", "x_velocity", "reward_forward", "reward_ctrl"];
const RESET_INFO: &[&str] = &["x_position"];

impl HalfCheetah {
    /// Builds HalfCheetah-v5 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<HalfCheetah> {
        let sim = MujocoSim::load(XML, "models/half_cheetah.xml", config, 5)?;
        expect_sizes(HalfCheetahTask::ID, &sim, 9, 9, 6)?;
        let task = HalfCheetahTask {
            forward_reward_weight: config.forward_reward_weight.unwrap_or(1.0),
            ctrl_cost_weight: config.ctrl_cost_weight.unwrap_or(0.1),
            reset_noise_scale: config.reset_noise_scale.unwrap_or(0.1),
            exclude_current_positions_from_observation: config
                .exclude_current_positions_from_observation
                .unwrap_or(true),
        };
        Ok(MjEnv::new(sim, task))
    }
}

impl MujocoTask for HalfCheetahTask {
    const ID: &'static str = "HalfCheetah-v5";

    fn observation_dim(&self, sim: &MujocoSim) -> usize {
        let skip = usize::from(self.exclude_current_positions_from_observation);
        sim.nq() - skip + sim.nv()
    }

    /// `concat(qpos[1..], qvel)`, velocities not clipped.
    fn observe(&self, sim: &MujocoSim, obs: &mut [f64]) {
        let positions = &sim.qpos()[usize::from(self.exclude_current_positions_from_observation)..];
        let (head, tail) = obs.split_at_mut(positions.len());
        head.copy_from_slice(positions);
        tail.copy_from_slice(sim.qvel());
    }

    /// `qpos0 + U(-c, c)`, then `c * N(0, 1)` velocities.
    fn reset_model(&mut self, sim: &mut MujocoSim, rng: &mut EnvRng) {
        let c = self.reset_noise_scale;
        for q in sim.qpos_mut() {
            *q += uniform(rng, -c, c);
        }
        for v in sim.qvel_mut() {
            *v += c * standard_normal(rng);
        }
        sim.forward();
    }

    fn reset_info(&self, sim: &MujocoSim) -> Info {
        Info::new(RESET_INFO, &[sim.qpos()[0]])
    }

    fn step(&mut self, sim: &mut MujocoSim, action: &[f64]) -> TaskStep {
        let x_before = sim.qpos()[0];
        let instability = sim.do_simulation(action);
        let x_after = sim.qpos()[0];
        let x_velocity = (x_after - x_before) / sim.dt();
        let forward_reward = self.forward_reward_weight * x_velocity;
        let ctrl_cost = control_cost(self.ctrl_cost_weight, action);
        TaskStep {
            reward: forward_reward - ctrl_cost,
            terminated: false,
            info: Info::new(
                STEP_INFO,
                &[x_after, x_velocity, forward_reward, -ctrl_cost],
            ),
            instability,
        }
    }
}
