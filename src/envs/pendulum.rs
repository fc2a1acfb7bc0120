//! Pendulum-v1 as a MuJoCo model: a hinged rod to swing up and hold upright
//! (ENV_SPEC §6).
//!
//! `models/pendulum.xml` is a rod of mass 1 and length 1 on a hinge (inertia about
//! the hinge m·l²/3), gravity 10, timestep 0.05 and MuJoCo's semi-implicit Euler, so
//! one `mj_step` computes Gymnasium's update θ̇' = θ̇ + (3g/2l·sin θ + 3u/ml²)·dt,
//! θ' = θ + θ̇'·dt. Gymnasium clips θ̇' to ±8 *before* moving θ; MuJoCo cannot, so
//! when the clip binds this environment redoes the position update with the clipped
//! velocity, which is exactly Gymnasium's arithmetic.

use super::mujoco::{MjEnv, MujocoSim, MujocoTask, TaskStep, expect_sizes};
use super::{EnvConfig, EnvRng, Info, Result, Space, uniform};
use std::f64::consts::PI;

pub(crate) const XML: &str = include_str!("../../models/pendulum.xml");

/// Largest angular velocity (rad/s).
pub const MAX_SPEED: f64 = 8.0;
/// Largest torque (N·m).
pub const MAX_TORQUE: f64 = 2.0;

/// Pendulum-v1 as registered: a [`MjEnv`] driven by [`PendulumTask`].
pub type Pendulum = MjEnv<PendulumTask>;

/// Pendulum-v1's observation, reward, clipping and reset.
#[derive(Debug, Clone)]
pub struct PendulumTask {
    /// Gravity (10).
    pub g: f64,
}

/// Overrides Pendulum-v1 accepts.
pub(crate) const OPTIONS: &[&str] = &["g"];

impl Pendulum {
    /// Builds Pendulum-v1 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<Pendulum> {
        let mut sim = MujocoSim::load(XML, "models/pendulum.xml", config, 1)?;
        expect_sizes(PendulumTask::ID, &sim, 1, 1, 1)?;
        let g = config.g.unwrap_or(10.0);
        sim.set_gravity([0.0, 0.0, -g]);
        Ok(MjEnv::new(sim, PendulumTask { g }))
    }
}

/// Gymnasium's `angle_normalize`: `((x + π) mod 2π) − π`, Python's floored modulo.
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl MujocoTask for PendulumTask {
    const ID: &'static str = "Pendulum-v1";

    fn observation_dim(&self, _sim: &MujocoSim) -> usize {
        3
    }

    fn observation_space(&self, _sim: &MujocoSim) -> Space {
        Space::Box {
            low: vec![-1.0, -1.0, -MAX_SPEED],
            high: vec![1.0, 1.0, MAX_SPEED],
        }
    }

    /// `[cos θ, sin θ, θ̇]`, rounded to float32 as Gymnasium returns them.
    fn observe(&self, sim: &MujocoSim, obs: &mut [f64]) {
        let (theta, theta_dot) = (sim.qpos()[0], sim.qvel()[0]);
        for (o, x) in obs.iter_mut().zip([theta.cos(), theta.sin(), theta_dot]) {
            *o = x as f32 as f64;
        }
    }

    /// θ ~ U(−π, π), θ̇ ~ U(−1, 1), in that order.
    fn reset_model(&mut self, sim: &mut MujocoSim, rng: &mut EnvRng) {
        sim.qpos_mut()[0] = uniform(rng, -PI, PI);
        sim.qvel_mut()[0] = uniform(rng, -1.0, 1.0);
        sim.forward();
    }

    /// Torque clipped to ±2 (cost and dynamics both use the clipped torque); cost
    /// from the state before the update; never terminates.
    ///
    /// Gymnasium's action is float32 (its space's dtype) and NumPy 2 keeps `3.0 * u`
    /// and `0.001 * u**2` in float32; the torque term and the control cost are
    /// computed the same way here, so trajectories agree to ~1e-14 instead of ~1e-7.
    fn step(&mut self, sim: &mut MujocoSim, action: &[f64]) -> TaskStep {
        let u = (action[0] as f32).clamp(-MAX_TORQUE as f32, MAX_TORQUE as f32);
        let (theta, theta_dot) = (sim.qpos()[0], sim.qvel()[0]);
        let control_cost = f64::from(0.001f32 * (u * u));
        let cost = angle_normalize(theta).powi(2) + 0.1 * theta_dot.powi(2) + control_cost;
        let dt = sim.dt();
        // MuJoCo divides the torque by the hinge inertia 1/3: feed it (3u)_f32 / 3.
        let torque = f64::from(3.0f32 * u) / 3.0;
        let instability = sim.do_simulation(&[torque]);
        let new_theta_dot = sim.qvel()[0];
        if new_theta_dot.abs() > MAX_SPEED {
            let clipped = new_theta_dot.clamp(-MAX_SPEED, MAX_SPEED);
            sim.qvel_mut()[0] = clipped;
            sim.qpos_mut()[0] = theta + clipped * dt;
            sim.forward();
        }
        TaskStep {
            reward: -cost,
            terminated: false,
            info: Info::EMPTY,
            instability,
        }
    }
}
