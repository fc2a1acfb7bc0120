//! Stepping an environment episode by episode with resets seeded from the project RNG, and
//! deterministic evaluation.
//!
//! # Exact resume without saving the environment
//!
//! The environments keep private state (their PCG-64 reset stream, the time-limit counter,
//! MuJoCo's `MjData`) that cannot be saved. The trainers therefore never depend on it across
//! a checkpoint: every episode starts with `reset(Some(seed))`, the seed drawn from the
//! trainer's own [`Rng`] (whose state is checkpointed), and checkpoints are taken only
//! between episodes. Restoring the RNG then restores everything the environment will do.
//! (The final checkpoint of a run may fall inside an episode; it is for using the agent,
//! and a finished run is not resumed.)

use crate::envs::{Env, EnvError};
use crate::rng::Rng;

/// The outcome of one [`EpisodeRunner::step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// The reward.
    pub reward: f64,
    /// The episode reached a terminal state (no bootstrapping).
    pub terminated: bool,
    /// The episode was cut short (time limit or unstable simulation).
    pub truncated: bool,
    /// `(return, length)` of the episode this step finished, if any.
    pub finished: Option<(f64, u64)>,
    /// The simulation went unstable in this step (the episode is truncated).
    pub unstable: bool,
}

/// An environment stepped episode by episode; see the module docs for the seeding scheme.
pub struct EpisodeRunner {
    env: Box<dyn Env>,
    obs: Vec<f64>,
    next_obs: Vec<f64>,
    in_episode: bool,
    episode_return: f64,
    episode_length: u64,
}

impl std::fmt::Debug for EpisodeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeRunner")
            .field("env", &self.env.id())
            .field("in_episode", &self.in_episode)
            .finish_non_exhaustive()
    }
}

impl EpisodeRunner {
    /// Wraps `env`; no episode is in progress.
    pub fn new(env: Box<dyn Env>) -> Self {
        let d = env.observation_space().dim();
        Self {
            env,
            obs: vec![0.0; d],
            next_obs: vec![0.0; d],
            in_episode: false,
            episode_return: 0.0,
            episode_length: 0,
        }
    }

    /// The environment.
    pub fn env(&self) -> &dyn Env {
        self.env.as_ref()
    }

    /// True between episodes: the next [`EpisodeRunner::observation`] resets.
    pub fn at_boundary(&self) -> bool {
        !self.in_episode
    }

    /// The current observation; between episodes it first resets the environment with a
    /// seed drawn from `rng`.
    pub fn observation(&mut self, rng: &mut Rng) -> Result<&[f64], EnvError> {
        if !self.in_episode {
            let seed = rng.next_u64();
            self.env.reset_into(Some(seed), &mut self.obs)?;
            self.in_episode = true;
            self.episode_return = 0.0;
            self.episode_length = 0;
        }
        Ok(&self.obs)
    }

    /// Steps with `action` from the current observation (call
    /// [`EpisodeRunner::observation`] first). [`EpisodeRunner::next_observation`] then holds
    /// the successor observation — the true final one when the episode ends.
    pub fn step(&mut self, action: &[f64]) -> Result<StepResult, EnvError> {
        if !self.in_episode {
            return Err(EnvError::NeedsReset(
                "EpisodeRunner::step between episodes; call observation() first",
            ));
        }
        let out = self.env.step_into(action, &mut self.next_obs)?;
        self.episode_return += out.reward;
        self.episode_length += 1;
        let done = out.terminated || out.truncated;
        let finished = done.then_some((self.episode_return, self.episode_length));
        Ok(StepResult {
            reward: out.reward,
            terminated: out.terminated,
            truncated: out.truncated,
            finished,
            unstable: out.instability.is_some(),
        })
    }

    /// The observation after the latest step.
    pub fn next_observation(&self) -> &[f64] {
        &self.next_obs
    }

    /// Moves on after a step: the successor becomes the current observation, or, if the step
    /// ended the episode, the runner is between episodes.
    pub fn advance(&mut self, result: &StepResult) {
        if result.finished.is_some() {
            self.in_episode = false;
        } else {
            std::mem::swap(&mut self.obs, &mut self.next_obs);
        }
    }
}

/// Returns of an evaluation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalResult {
    /// Return of each episode.
    pub returns: Vec<f64>,
    /// Length of each episode.
    pub lengths: Vec<u64>,
}

impl EvalResult {
    /// Mean return.
    pub fn mean(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len().max(1) as f64
    }

    /// Population standard deviation of the returns (numpy's default, as SB3's
    /// `evaluate_policy`).
    pub fn std(&self) -> f64 {
        let m = self.mean();
        let n = self.returns.len().max(1) as f64;
        (self.returns.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / n).sqrt()
    }
}

/// Runs `episodes` episodes of `policy` on `env`, episode `i` reset with seed `seeds(i)`, so
/// that every evaluation of a run sees the same initial states.
pub fn evaluate<E, F>(
    env: &mut dyn Env,
    episodes: usize,
    seeds: impl Fn(usize) -> u64,
    mut policy: F,
) -> Result<EvalResult, E>
where
    F: FnMut(&[f64]) -> Result<Vec<f64>, E>,
    E: From<EnvError>,
{
    let mut obs = vec![0.0; env.observation_space().dim()];
    let mut result = EvalResult {
        returns: Vec::with_capacity(episodes),
        lengths: Vec::with_capacity(episodes),
    };
    for i in 0..episodes {
        env.reset_into(Some(seeds(i)), &mut obs)?;
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let action = policy(&obs)?;
            let out = env.step_into(&action, &mut obs)?;
            ret += out.reward;
            len += 1;
            if out.terminated || out.truncated {
                break;
            }
        }
        result.returns.push(ret);
        result.lengths.push(len);
    }
    Ok(result)
}
