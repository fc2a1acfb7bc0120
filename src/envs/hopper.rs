//! Hopper-v5: a one-legged robot that hops forward (ENV_SPEC §1).

use super::mujoco::{
    MjEnv, MujocoSim, MujocoTask, TaskStep, control_cost, expect_sizes, uniform_reset,
};
use super::{EnvConfig, EnvRng, Info, Result};

pub(crate) const XML: &str = include_str!("../../models/hopper.xml");

/// Hopper-v5 as registered: a [`MjEnv`] driven by [`HopperTask`].
pub type Hopper = MjEnv<HopperTask>;

/// Hopper-v5's observation, reward, health and reset, with every default weight.
#[derive(Debug, Clone)]
pub struct HopperTask {
    /// Reward weights and termination (1.0, 1e-3, 1.0, true).
    pub locomotion: LocomotionWeights,
    /// Open interval for `state_vector()[2..]` ((-100, 100)).
    pub healthy_state_range: (f64, f64),
    /// Open interval for the torso height ((0.7, inf)).
    pub healthy_z_range: (f64, f64),
    /// Open interval for the torso pitch ((-0.2, 0.2)).
    pub healthy_angle_range: (f64, f64),
    /// Reset noise scale (5e-3).
    pub reset_noise_scale: f64,
    /// Leave qpos[0] out of the observation (true).
    pub exclude_current_positions_from_observation: bool,
}

/// Overrides Hopper-v5 accepts.
pub(crate) const OPTIONS: &[&str] = &[
    "frame_skip",
    "xml_file",
    "reset_noise_scale",
    "forward_reward_weight",
    "ctrl_cost_weight",
    "healthy_reward",
    "terminate_when_unhealthy",
    "healthy_state_range",
    "healthy_z_range",
    "healthy_angle_range",
    "exclude_current_positions_from_observation",
];

const STEP_INFO: &[&str] = &[
    "x_position",
    "z_distance_from_origin",
    "x_velocity",
    "reward_forward",
    "reward_ctrl",
    "reward_survive",
];
const RESET_INFO: &[&str] = &["x_position", "z_distance_from_origin"];

impl Hopper {
    /// Builds Hopper-v5 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<Hopper> {
        let sim = MujocoSim::load(XML, "models/hopper.xml", config, 4)?;
        expect_sizes(HopperTask::ID, &sim, 6, 6, 3)?;
        let task = HopperTask {
            locomotion: LocomotionWeights::from_config(config),
            healthy_state_range: config.healthy_state_range.unwrap_or((-100.0, 100.0)),
            healthy_z_range: config.healthy_z_range.unwrap_or((0.7, f64::INFINITY)),
            healthy_angle_range: config.healthy_angle_range.unwrap_or((-0.2, 0.2)),
            reset_noise_scale: config.reset_noise_scale.unwrap_or(5e-3),
            exclude_current_positions_from_observation: config
                .exclude_current_positions_from_observation
                .unwrap_or(true),
        };
        Ok(MjEnv::new(sim, task))
    }
}

impl HopperTask {
    /// Gymnasium's `is_healthy`: every inequality strict; the state range applies to
    /// qpos[2..] and the *unclipped* qvel.
    pub fn is_healthy(&self, sim: &MujocoSim) -> bool {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let inside = |(lo, hi): (f64, f64), x: f64| lo < x && x < hi;
        let state_ok = qpos[2..]
            .iter()
            .chain(qvel)
            .all(|x| inside(self.healthy_state_range, *x));
        state_ok
            && inside(self.healthy_z_range, qpos[1])
            && inside(self.healthy_angle_range, qpos[2])
    }
}

impl MujocoTask for HopperTask {
    const ID: &'static str = "Hopper-v5";

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

/// The weights of the v5 walking reward that Hopper and Walker2d share.
#[derive(Debug, Clone)]
pub struct LocomotionWeights {
    /// Weight of the forward velocity (1.0).
    pub forward_reward_weight: f64,
    /// Weight of Σa² (1e-3).
    pub ctrl_cost_weight: f64,
    /// Reward per healthy step (1.0).
    pub healthy_reward: f64,
    /// End the episode when unhealthy (true).
    pub terminate_when_unhealthy: bool,
}

impl LocomotionWeights {
    /// The defaults of Hopper-v5 and Walker2d-v5, with `config`'s overrides.
    pub(crate) fn from_config(config: &EnvConfig) -> LocomotionWeights {
        LocomotionWeights {
            forward_reward_weight: config.forward_reward_weight.unwrap_or(1.0),
            ctrl_cost_weight: config.ctrl_cost_weight.unwrap_or(1e-3),
            healthy_reward: config.healthy_reward.unwrap_or(1.0),
            terminate_when_unhealthy: config.terminate_when_unhealthy.unwrap_or(true),
        }
    }
}

/// One step of Hopper-v5 or Walker2d-v5: `forward + healthy − ctrl` (in Gymnasium's
/// order), the healthy reward paid only while healthy (v5), health judged after the step.
pub(crate) fn locomotion_step(
    sim: &mut MujocoSim,
    action: &[f64],
    weights: &LocomotionWeights,
    is_healthy: impl Fn(&MujocoSim) -> bool,
) -> TaskStep {
    let x_before = sim.qpos()[0];
    let instability = sim.do_simulation(action);
    let x_after = sim.qpos()[0];
    let x_velocity = (x_after - x_before) / sim.dt();
    let healthy = is_healthy(sim);
    let forward_reward = weights.forward_reward_weight * x_velocity;
    let healthy_reward = if healthy { weights.healthy_reward } else { 0.0 };
    let ctrl_cost = control_cost(weights.ctrl_cost_weight, action);
    let reward = forward_reward + healthy_reward - ctrl_cost;
    let z_distance = sim.qpos()[1] - sim.init_qpos()[1];
    TaskStep {
        reward,
        terminated: weights.terminate_when_unhealthy && !healthy,
        info: Info::new(
            STEP_INFO,
            &[
                x_after,
                z_distance,
                x_velocity,
                forward_reward,
                -ctrl_cost,
                healthy_reward,
            ],
        ),
        instability,
    }
}

/// Info of a reset of Hopper-v5 or Walker2d-v5.
pub(crate) fn locomotion_reset_info(sim: &MujocoSim) -> Info {
    let qpos = sim.qpos();
    Info::new(RESET_INFO, &[qpos[0], qpos[1] - sim.init_qpos()[1]])
}

/// `concat(qpos[1 or 0..], clip(qvel, -10, 10))`: the observation of Hopper and
/// Walker2d (v5 clips observed velocities, not the simulated ones).
pub(crate) fn positions_then_clipped_velocities(sim: &MujocoSim, exclude_x: bool, obs: &mut [f64]) {
    let positions = &sim.qpos()[usize::from(exclude_x)..];
    let (head, tail) = obs.split_at_mut(positions.len());
    head.copy_from_slice(positions);
    for (o, v) in tail.iter_mut().zip(sim.qvel()) {
        *o = v.clamp(-10.0, 10.0);
    }
}
