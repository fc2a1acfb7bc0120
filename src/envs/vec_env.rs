//! Vectorised stepping over a thread pool, EnvPool-style.

use super::{Env, EnvConfig, EnvError, Instability, Result, Space, check_action, make_with};
use rayon::prelude::*;

/// Per-environment scalars of the latest step.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    terminated: bool,
    truncated: bool,
    instability: Option<Instability>,
    episode_return: f64,
    episode_length: usize,
    final_return: f64,
    final_length: usize,
}

/// N copies of an environment stepped together across a thread pool, with
/// automatic reset, writing into preallocated contiguous buffers: a step allocates
/// nothing (EnvPool's design).
///
/// **Auto-reset mode: Gymnasium's `AutoresetMode.SAME_STEP`.** When environment `i`
/// ends an episode (terminated or truncated), it is reset within the same call:
/// `observations()` row `i` is the first observation of the new episode, and
/// `final_observations()` row `i` holds the last observation of the finished one
/// (Gymnasium's `info["final_obs"]`; the row is meaningful only where `done(i)`).
/// `rewards()`, `terminated()` and `truncated()` belong to the finished step.
/// Episode return and length of the finished episode are in [`VecEnv::final_return`]
/// and [`VecEnv::final_length`] (Gymnasium's `RecordEpisodeStatistics`).
///
/// Seeding: `reset(Some(s))` seeds environment `i` with `s + i`, as Gymnasium's
/// vector environments do; automatic resets continue each environment's stream.
pub struct VecEnv {
    envs: Vec<Box<dyn Env>>,
    pool: Option<rayon::ThreadPool>,
    obs_dim: usize,
    action_len: usize,
    observations: Vec<f64>,
    final_observations: Vec<f64>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    slots: Vec<Slot>,
    errors: Vec<Option<EnvError>>,
}

impl VecEnv {
    /// `n` copies of `make_with(id, config)` stepped on `threads` threads
    /// (`threads == 1` steps them in the calling thread, with no pool).
    pub fn make(id: &str, n: usize, threads: usize, config: &EnvConfig) -> Result<VecEnv> {
        let envs = (0..n)
            .map(|_| make_with(id, config))
            .collect::<Result<Vec<_>>>()?;
        VecEnv::new(envs, threads)
    }

    /// Steps these environments, which must share their spaces, on `threads` threads.
    pub fn new(envs: Vec<Box<dyn Env>>, threads: usize) -> Result<VecEnv> {
        let first = envs
            .first()
            .ok_or_else(|| EnvError::VecEnv("a VecEnv needs at least one environment".into()))?;
        if threads == 0 {
            return Err(EnvError::VecEnv("threads must be at least 1".into()));
        }
        if let Some(other) = envs.iter().find(|e| {
            e.observation_space() != first.observation_space()
                || e.action_space() != first.action_space()
        }) {
            return Err(EnvError::VecEnv(format!(
                "all environments must share their spaces: {} differs from {}",
                other.id(),
                first.id()
            )));
        }
        let (n, obs_dim, action_len) = (
            envs.len(),
            first.observation_space().dim(),
            first.action_space().action_len(),
        );
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("stackrl-vecenv-{i}"))
                    .build()
                    .map_err(|e| EnvError::VecEnv(format!("cannot start thread pool: {e}")))?,
            )
        } else {
            None
        };
        Ok(VecEnv {
            envs,
            pool,
            obs_dim,
            action_len,
            observations: vec![0.0; n * obs_dim],
            final_observations: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            slots: vec![Slot::default(); n],
            errors: (0..n).map(|_| None).collect(),
        })
    }

    /// Number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }
    /// Threads stepping them.
    pub fn num_threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads())
    }
    /// The space of one environment's observation.
    pub fn observation_space(&self) -> &Space {
        self.envs[0].observation_space()
    }
    /// The space of one environment's action.
    pub fn action_space(&self) -> &Space {
        self.envs[0].action_space()
    }
    /// The environments (e.g. to read MuJoCo state).
    pub fn envs(&self) -> &[Box<dyn Env>] {
        &self.envs
    }

    /// Resets every environment; see the type docs for seeding. Returns the
    /// observations, `num_envs × obs_dim`, row-major.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f64]> {
        let dim = self.obs_dim;
        for (i, (env, obs)) in self
            .envs
            .iter_mut()
            .zip(self.observations.chunks_mut(dim))
            .enumerate()
        {
            env.reset_into(seed.map(|s| s.wrapping_add(i as u64)), obs)?;
        }
        self.slots.fill(Slot::default());
        self.rewards.fill(0.0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        Ok(&self.observations)
    }

    /// Steps every environment with its row of `actions` (`num_envs × action_len`,
    /// row-major), resetting those whose episode ends. Every action is checked
    /// before any environment moves, so a bad one leaves all states untouched.
    pub fn step(&mut self, actions: &[f64]) -> Result<()> {
        let (n, dim, alen) = (self.envs.len(), self.obs_dim, self.action_len);
        if actions.len() != n * alen {
            return Err(EnvError::VecEnv(format!(
                "actions has {} entries; {n} environments × {alen} = {}",
                actions.len(),
                n * alen
            )));
        }
        for (i, (env, action)) in self.envs.iter().zip(actions.chunks(alen)).enumerate() {
            check_action(env.action_space(), action)
                .map_err(|e| EnvError::VecEnv(format!("environment {i}: {e}")))?;
        }

        type Item<'a> = (
            (
                (
                    (
                        ((&'a mut Box<dyn Env>, &'a mut [f64]), &'a mut [f64]),
                        &'a [f64],
                    ),
                    &'a mut f64,
                ),
                &'a mut Slot,
            ),
            &'a mut Option<EnvError>,
        );
        let step_one = |((((((env, obs), final_obs), action), reward), slot), error): Item<'_>| {
            *error = step_and_autoreset(env, action, obs, final_obs, reward, slot).err();
        };
        match &self.pool {
            None => {
                let work = self
                    .envs
                    .iter_mut()
                    .zip(self.observations.chunks_mut(dim))
                    .zip(self.final_observations.chunks_mut(dim))
                    .zip(actions.chunks(alen))
                    .zip(self.rewards.iter_mut())
                    .zip(self.slots.iter_mut())
                    .zip(self.errors.iter_mut());
                work.for_each(step_one);
            }
            Some(pool) => {
                let per_thread = n.div_ceil(pool.current_num_threads());
                let work = self
                    .envs
                    .par_iter_mut()
                    .zip(self.observations.par_chunks_mut(dim))
                    .zip(self.final_observations.par_chunks_mut(dim))
                    .zip(actions.par_chunks(alen))
                    .zip(self.rewards.par_iter_mut())
                    .zip(self.slots.par_iter_mut())
                    .zip(self.errors.par_iter_mut())
                    .with_min_len(per_thread);
                pool.install(|| work.for_each(step_one));
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            self.terminated[i] = slot.terminated;
            self.truncated[i] = slot.truncated;
        }
        if let Some((i, error)) = self
            .errors
            .iter_mut()
            .enumerate()
            .find_map(|(i, e)| e.take().map(|e| (i, e)))
        {
            return Err(EnvError::VecEnv(format!("environment {i}: {error}")));
        }
        Ok(())
    }

    /// Observations to act on next, `num_envs × obs_dim` (first observations of
    /// new episodes where one ended).
    pub fn observations(&self) -> &[f64] {
        &self.observations
    }
    /// Last observations of episodes that ended in the latest step (rows where
    /// [`VecEnv::done`] is false hold stale data).
    pub fn final_observations(&self) -> &[f64] {
        &self.final_observations
    }
    /// Rewards of the latest step.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }
    /// `terminated` of the latest step.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }
    /// `truncated` of the latest step (time limit or unstable simulation).
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }
    /// Whether environment `i` ended an episode in the latest step.
    pub fn done(&self, i: usize) -> bool {
        self.terminated[i] || self.truncated[i]
    }
    /// Why environment `i`'s latest step could not be trusted, if it could not.
    pub fn instability(&self, i: usize) -> Option<Instability> {
        self.slots[i].instability
    }
    /// Undiscounted return of the episode environment `i` finished in the latest step.
    pub fn final_return(&self, i: usize) -> f64 {
        self.slots[i].final_return
    }
    /// Length of the episode environment `i` finished in the latest step.
    pub fn final_length(&self, i: usize) -> usize {
        self.slots[i].final_length
    }
}

fn step_and_autoreset(
    env: &mut Box<dyn Env>,
    action: &[f64],
    obs: &mut [f64],
    final_obs: &mut [f64],
    reward: &mut f64,
    slot: &mut Slot,
) -> Result<()> {
    let outcome = env.step_into(action, obs)?;
    *reward = outcome.reward;
    slot.terminated = outcome.terminated;
    slot.truncated = outcome.truncated;
    slot.instability = outcome.instability;
    slot.episode_return += outcome.reward;
    slot.episode_length += 1;
    if outcome.terminated || outcome.truncated {
        final_obs.copy_from_slice(obs);
        slot.final_return = slot.episode_return;
        slot.final_length = slot.episode_length;
        slot.episode_return = 0.0;
        slot.episode_length = 0;
        env.reset_into(None, obs)?;
    }
    Ok(())
}
