//! Reacher-v5: a two-link arm that reaches for a random target (ENV_SPEC §4).

use super::mujoco::{MjEnv, MujocoSim, MujocoTask, TaskStep, control_cost, expect_sizes};
use super::{EnvConfig, EnvError, EnvRng, Info, Result, uniform};

pub(crate) const XML: &str = include_str!("../../models/reacher.xml");

/// Reacher-v5 as registered: a [`MjEnv`] driven by [`ReacherTask`].
pub type Reacher = MjEnv<ReacherTask>;

/// Reacher-v5's observation, reward and reset.
#[derive(Debug, Clone)]
pub struct ReacherTask {
    /// Weight of the fingertip-target distance (1).
    pub reward_dist_weight: f64,
    /// Weight of Σa² (1, as Gymnasium's code; its docstring says 0.1).
    pub reward_control_weight: f64,
    fingertip: usize,
    target: usize,
}

/// Overrides Reacher-v5 accepts.
pub(crate) const OPTIONS: &[&str] = &[
    "frame_skip",
    "xml_file",
    "reward_dist_weight",
    "reward_control_weight",
];

const STEP_INFO: &[&str] = &["reward_dist", "reward_ctrl"];

impl Reacher {
    /// Builds Reacher-v5 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<Reacher> {
        let sim = MujocoSim::load(XML, "models/reacher.xml", config, 2)?;
        expect_sizes(ReacherTask::ID, &sim, 4, 4, 2)?;
        let body = |name: &str| {
            sim.body_id(name).ok_or_else(|| EnvError::ModelMismatch {
                env: ReacherTask::ID,
                source_name: sim.source().to_string(),
                message: format!("no body named '{name}'"),
            })
        };
        let task = ReacherTask {
            reward_dist_weight: config.reward_dist_weight.unwrap_or(1.0),
            reward_control_weight: config.reward_control_weight.unwrap_or(1.0),
            fingertip: body("fingertip")?,
            target: body("target")?,
        };
        Ok(MjEnv::new(sim, task))
    }
}

impl ReacherTask {
    /// fingertip − target from MuJoCo's cached body positions. After an RK4 `mj_step`
    /// these hold the last internal stage, not the returned qpos; Gymnasium reads the
    /// same cache, so reading it here reproduces its numbers exactly.
    fn fingertip_to_target(&self, sim: &MujocoSim) -> [f64; 3] {
        let (f, t) = (sim.body_xpos(self.fingertip), sim.body_xpos(self.target));
        [f[0] - t[0], f[1] - t[1], f[2] - t[2]]
    }
}

impl MujocoTask for ReacherTask {
    const ID: &'static str = "Reacher-v5";

    fn observation_dim(&self, _sim: &MujocoSim) -> usize {
        10
    }

    /// `[cos q0, cos q1, sin q0, sin q1, target x, target y, q̇0, q̇1, (fingertip − target)_xy]`.
    fn observe(&self, sim: &MujocoSim, obs: &mut [f64]) {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let delta = self.fingertip_to_target(sim);
        obs.copy_from_slice(&[
            qpos[0].cos(),
            qpos[1].cos(),
            qpos[0].sin(),
            qpos[1].sin(),
            qpos[2],
            qpos[3],
            qvel[0],
            qvel[1],
            delta[0],
            delta[1],
        ]);
    }

    /// Arm angles `U(-0.1, 0.1)` (four draws, two kept), a goal uniform in the open
    /// disc of radius 0.2 by rejection, arm velocities `U(-0.005, 0.005)` (four
    /// draws, two kept); fixed, not overridable, as in Gymnasium.
    fn reset_model(&mut self, sim: &mut MujocoSim, rng: &mut EnvRng) {
        for q in sim.qpos_mut() {
            *q += uniform(rng, -0.1, 0.1);
        }
        let goal = loop {
            let goal = [uniform(rng, -0.2, 0.2), uniform(rng, -0.2, 0.2)];
            if goal[0].hypot(goal[1]) < 0.2 {
                break goal;
            }
        };
        sim.qpos_mut()[2..4].copy_from_slice(&goal);
        for v in sim.qvel_mut() {
            *v += uniform(rng, -0.005, 0.005);
        }
        sim.qvel_mut()[2..4].fill(0.0);
        sim.forward();
    }

    fn step(&mut self, sim: &mut MujocoSim, action: &[f64]) -> TaskStep {
        let instability = sim.do_simulation(action);
        let d = self.fingertip_to_target(sim);
        let reward_dist =
            -(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt() * self.reward_dist_weight;
        let reward_ctrl = -control_cost(self.reward_control_weight, action);
        TaskStep {
            reward: reward_dist + reward_ctrl,
            terminated: false,
            info: Info::new(STEP_INFO, &[reward_dist, reward_ctrl]),
            instability,
        }
    }
}
