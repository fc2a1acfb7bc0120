//! Gymnasium's `TimeLimit` wrapper.

use super::{Env, Info, MujocoEnv, Result, Space, StepOutcome};

/// Sets `truncated` on the step whose 1-based count since the last reset reaches
/// `max_episode_steps`, and on every later step (Gymnasium's `TimeLimit`).
pub struct TimeLimit<E: Env> {
    env: E,
    max_episode_steps: usize,
    elapsed_steps: usize,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `env`.
    pub fn new(env: E, max_episode_steps: usize) -> TimeLimit<E> {
        TimeLimit {
            env,
            max_episode_steps,
            elapsed_steps: 0,
        }
    }
    /// The limit.
    pub fn max_episode_steps(&self) -> usize {
        self.max_episode_steps
    }
    /// Steps since the last reset.
    pub fn elapsed_steps(&self) -> usize {
        self.elapsed_steps
    }
    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }
    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn id(&self) -> &str {
        self.env.id()
    }
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn dt(&self) -> f64 {
        self.env.dt()
    }
    fn render_fps(&self) -> u32 {
        self.env.render_fps()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<Info> {
        let info = self.env.reset_into(seed, obs)?;
        self.elapsed_steps = 0;
        Ok(info)
    }
    fn step_into(&mut self, action: &[f64], obs: &mut [f64]) -> Result<StepOutcome> {
        let mut outcome = self.env.step_into(action, obs)?;
        self.elapsed_steps += 1;
        if self.elapsed_steps >= self.max_episode_steps {
            outcome.truncated = true;
        }
        Ok(outcome)
    }
    fn info(&self) -> Info {
        self.env.info()
    }
    fn as_mujoco(&self) -> Option<&dyn MujocoEnv> {
        self.env.as_mujoco()
    }
    fn as_mujoco_mut(&mut self) -> Option<&mut dyn MujocoEnv> {
        self.env.as_mujoco_mut()
    }
}
