//! Environments with Gymnasium's definitions, on the official MuJoCo.
//!
//! The API is shaped after Gymnasium so that its users recognise it:
//!
//! ```no_run
//! use stackrl::envs::{self, Env};
//! let mut env = envs::make("Hopper-v5")?;
//! let (obs, _info) = env.reset(Some(0))?;
//! let action = vec![0.0; env.action_space().dim()];
//! let step = env.step(&action)?;
//! println!("{} {} {} {}", obs.len(), step.reward, step.terminated, step.truncated);
//! # Ok::<(), stackrl::envs::EnvError>(())
//! ```
//!
//! * [`Env`] is the trait; [`make`] / [`make_with`] build a registered environment
//!   wrapped in [`TimeLimit`] (Gymnasium's `max_episode_steps`), and [`ids`] lists them.
//! * [`MujocoEnv`] gives MuJoCo environments read access to the model and data and
//!   Gymnasium's `state()` / `set_state(qpos, qvel)`.
//! * [`VecEnv`] steps N environments over a thread pool into one preallocated buffer.
//!
//! # Seeding
//! Each environment owns a PCG-64 generator. `reset(Some(s))` restarts it from `s`, so
//! the noise of that episode *and of every following `reset(None)` episode* is fixed
//! by `s` (episode k after the seeded reset makes the k-th draws from that stream), as
//! with Gymnasium's `np_random`. `reset(None)` before any seeded reset seeds from the
//! operating system's entropy. The draws use Gymnasium's distributions and order, but
//! not numpy's bit stream, so seeds give other (equally distributed) initial states
//! than Gymnasium's.

mod cartpole;
mod config;
mod half_cheetah;
mod hopper;
mod inverted_pendulum;
mod mujoco;
mod pendulum;
mod reacher;
mod registry;
mod space;
mod time_limit;
mod vec_env;
mod walker2d;

pub use cartpole::CartPole;
pub use config::EnvConfig;
pub use half_cheetah::HalfCheetah;
pub use hopper::{Hopper, LocomotionWeights};
pub use inverted_pendulum::InvertedPendulum;
pub use mujoco::{MujocoEnv, MujocoSim};
pub use pendulum::Pendulum;
pub use reacher::Reacher;
pub use registry::{EnvSpec, ids, make, make_with, spec, specs};
pub use space::Space;
pub use time_limit::TimeLimit;
pub use vec_env::VecEnv;
pub use walker2d::Walker2d;

use std::fmt;

/// Errors of the environment API. Every bad input gives one of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// `make` was given an id that is not registered.
    #[error("unknown environment id '{id}'; valid ids: {}", valid.join(", "))]
    UnknownId {
        /// The id asked for.
        id: String,
        /// Every registered id.
        valid: Vec<&'static str>,
    },
    /// An action with the wrong number of entries.
    #[error("action has {got} entries, but the action space {space} needs {expected}")]
    ActionLength {
        /// Entries the action space needs.
        expected: usize,
        /// Entries given.
        got: usize,
        /// The action space, printed.
        space: String,
    },
    /// An action with a NaN or infinite entry.
    #[error("action entry {index} is {value}: actions must be finite")]
    NonFiniteAction {
        /// Index of the first bad entry.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A discrete action that is not an integer in `0..n`.
    #[error("discrete action {value} is not an integer in 0..{n}")]
    InvalidDiscreteAction {
        /// The value given.
        value: f64,
        /// Number of actions.
        n: usize,
    },
    /// `step` before the first `reset`, or after the simulation went unstable.
    #[error("call reset() first: {0}")]
    NeedsReset(&'static str),
    /// A state vector of the wrong length or with non-finite entries.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// MuJoCo could not load the model; the text is MuJoCo's own.
    #[error("MuJoCo could not load model {source_name}: {message}")]
    ModelLoad {
        /// The file or built-in model that failed.
        source_name: String,
        /// MuJoCo's error text.
        message: String,
    },
    /// The model loaded but does not have the structure the environment needs.
    #[error("model {source_name} does not fit {env}: {message}")]
    ModelMismatch {
        /// The environment.
        env: &'static str,
        /// The model file.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// An override that the environment does not accept, or a bad value for one.
    #[error("invalid configuration for {env}: {message}")]
    InvalidConfig {
        /// The environment.
        env: String,
        /// What is wrong.
        message: String,
    },
    /// A vectorised call with inconsistent sizes.
    #[error("{0}")]
    VecEnv(String),
}

/// Result alias of the environment API.
pub type Result<T> = std::result::Result<T, EnvError>;

/// Why a simulation step could not be trusted: MuJoCo's own warnings (it resets the
/// state when accelerations blow up) or a non-finite state after the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instability {
    /// MuJoCo warned `mjWARN_BADQPOS`: a position was NaN or too large; it reset the data.
    BadQpos,
    /// MuJoCo warned `mjWARN_BADQVEL`: a velocity was NaN or too large; it reset the data.
    BadQvel,
    /// MuJoCo warned `mjWARN_BADQACC`: an acceleration was NaN or too large; it reset the data.
    BadQacc,
    /// The state after the step has a NaN or infinite entry.
    NonFiniteState,
}

impl fmt::Display for Instability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Instability::BadQpos => {
                "MuJoCo warning BADQPOS: positions became invalid; MuJoCo reset the state"
            }
            Instability::BadQvel => {
                "MuJoCo warning BADQVEL: velocities became invalid; MuJoCo reset the state"
            }
            Instability::BadQacc => {
                "MuJoCo warning BADQACC: accelerations became invalid; MuJoCo reset the state"
            }
            Instability::NonFiniteState => "the state after the step is not finite",
        })
    }
}

/// The scalar part of a step: everything but the observation and the info.
///
/// `instability` is `Some` when the physics could not be trusted; the episode is then
/// over (`truncated` is set) and the environment must be reset before the next step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The reward of this step.
    pub reward: f64,
    /// The episode ended in a terminal state (Gymnasium's `terminated`).
    pub terminated: bool,
    /// The episode was cut short: time limit, or an unstable simulation (Gymnasium's `truncated`).
    pub truncated: bool,
    /// Set when the simulation went unstable during this step.
    pub instability: Option<Instability>,
}

/// What [`Env::step`] returns: Gymnasium's `(obs, reward, terminated, truncated, info)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub obs: Vec<f64>,
    /// The reward of the step.
    pub reward: f64,
    /// The episode ended in a terminal state.
    pub terminated: bool,
    /// The episode was cut short (time limit or unstable simulation).
    pub truncated: bool,
    /// The environment's info entries for this step.
    pub info: Info,
    /// Set when the simulation went unstable during this step.
    pub instability: Option<Instability>,
}

/// Most entries any environment reports in its info.
pub const MAX_INFO: usize = 8;

/// Gymnasium's `info` dictionary, without allocation: named scalar entries.
#[derive(Clone, Copy, PartialEq)]
pub struct Info {
    names: &'static [&'static str],
    values: [f64; MAX_INFO],
}

impl Info {
    /// An info with no entries (Gymnasium's `{}`).
    pub const EMPTY: Info = Info {
        names: &[],
        values: [0.0; MAX_INFO],
    };

    /// An info with these entries (`names.len() == values.len() <= MAX_INFO`).
    pub fn new(names: &'static [&'static str], values: &[f64]) -> Info {
        debug_assert_eq!(names.len(), values.len());
        let mut info = Info {
            names,
            values: [0.0; MAX_INFO],
        };
        info.values[..values.len()].copy_from_slice(values);
        info
    }

    /// The value of entry `name`, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| self.values[i])
    }

    /// The entries, in the order Gymnasium lists them.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.names.iter().copied().zip(self.values.iter().copied())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl fmt::Debug for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A reinforcement-learning environment with Gymnasium's semantics.
///
/// The required methods write into caller buffers so that vectorised stepping
/// allocates nothing; [`Env::reset`] and [`Env::step`] are the convenient, allocating
/// forms. Actions are `f64` slices: for `Box` spaces one entry per dimension (not
/// clipped, as in Gymnasium; MuJoCo clamps controls to their range), for
/// `Discrete(n)` a single entry holding the action's index.
pub trait Env: Send {
    /// The registered id, e.g. `"Hopper-v5"`.
    fn id(&self) -> &str;
    /// The observation space.
    fn observation_space(&self) -> &Space;
    /// The action space.
    fn action_space(&self) -> &Space;
    /// Seconds of simulated time per step (`timestep * frame_skip` for MuJoCo).
    fn dt(&self) -> f64;
    /// Gymnasium's `render_fps`: `round(1 / dt)`.
    fn render_fps(&self) -> u32 {
        (1.0 / self.dt()).round() as u32
    }
    /// Starts an episode; writes the first observation into `obs`
    /// (`observation_space().dim()` entries). See the module docs for seeding.
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<Info>;
    /// Advances one step; writes the observation into `obs`. On a bad action the
    /// state is untouched and an error is returned.
    fn step_into(&mut self, action: &[f64], obs: &mut [f64]) -> Result<StepOutcome>;
    /// The info of the latest step (or of the reset, before any step).
    fn info(&self) -> Info;

    /// Starts an episode: Gymnasium's `obs, info = env.reset(seed=seed)`.
    fn reset(&mut self, seed: Option<u64>) -> Result<(Vec<f64>, Info)> {
        let mut obs = vec![0.0; self.observation_space().dim()];
        let info = self.reset_into(seed, &mut obs)?;
        Ok((obs, info))
    }

    /// Advances one step: Gymnasium's `obs, reward, terminated, truncated, info = env.step(a)`.
    fn step(&mut self, action: &[f64]) -> Result<Step> {
        let mut obs = vec![0.0; self.observation_space().dim()];
        let outcome = self.step_into(action, &mut obs)?;
        Ok(Step {
            obs,
            reward: outcome.reward,
            terminated: outcome.terminated,
            truncated: outcome.truncated,
            info: self.info(),
            instability: outcome.instability,
        })
    }

    /// The MuJoCo view of this environment, if it is one.
    fn as_mujoco(&self) -> Option<&dyn MujocoEnv> {
        None
    }
    /// The mutable MuJoCo view of this environment, if it is one.
    fn as_mujoco_mut(&mut self) -> Option<&mut dyn MujocoEnv> {
        None
    }
}

impl Env for Box<dyn Env> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn dt(&self) -> f64 {
        (**self).dt()
    }
    fn render_fps(&self) -> u32 {
        (**self).render_fps()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<Info> {
        (**self).reset_into(seed, obs)
    }
    fn step_into(&mut self, action: &[f64], obs: &mut [f64]) -> Result<StepOutcome> {
        (**self).step_into(action, obs)
    }
    fn info(&self) -> Info {
        (**self).info()
    }
    fn as_mujoco(&self) -> Option<&dyn MujocoEnv> {
        (**self).as_mujoco()
    }
    fn as_mujoco_mut(&mut self) -> Option<&mut dyn MujocoEnv> {
        (**self).as_mujoco_mut()
    }
}

/// Checks an action against a space: its length, finiteness and, for discrete
/// spaces, that it is an integer index. Shared by every environment so that the
/// state is never touched by a bad action.
pub(crate) fn check_action(space: &Space, action: &[f64]) -> Result<()> {
    let expected = space.action_len();
    if action.len() != expected {
        return Err(EnvError::ActionLength {
            expected,
            got: action.len(),
            space: space.to_string(),
        });
    }
    if let Some((index, &value)) = action.iter().enumerate().find(|(_, a)| !a.is_finite()) {
        return Err(EnvError::NonFiniteAction { index, value });
    }
    if let Space::Discrete(n) = *space {
        let value = action[0];
        if value.fract() != 0.0 || value < 0.0 || value >= n as f64 {
            return Err(EnvError::InvalidDiscreteAction { value, n });
        }
    }
    Ok(())
}

/// Checks that a caller's observation buffer fits the observation space.
pub(crate) fn check_obs_len(space: &Space, obs: &[f64]) -> Result<()> {
    if obs.len() != space.dim() {
        return Err(EnvError::InvalidState(format!(
            "observation buffer has {} entries; the observation space needs {}",
            obs.len(),
            space.dim()
        )));
    }
    Ok(())
}

/// The generator every environment draws its reset noise from.
pub(crate) type EnvRng = rand_pcg::Pcg64;

/// Restarts `rng` from `seed`, or from OS entropy on the first unseeded reset.
pub(crate) fn reseed(rng: &mut Option<EnvRng>, seed: Option<u64>) -> &mut EnvRng {
    use rand::SeedableRng;
    match seed {
        Some(s) => *rng = Some(EnvRng::seed_from_u64(s)),
        None if rng.is_none() => *rng = Some(EnvRng::from_os_rng()),
        None => {}
    }
    rng.as_mut().expect("seeded above")
}

/// `low + (high - low) * U[0, 1)`, numpy's formula for `Generator.uniform`.
pub(crate) fn uniform(rng: &mut EnvRng, low: f64, high: f64) -> f64 {
    use rand::Rng;
    low + (high - low) * rng.random::<f64>()
}

/// A standard normal draw (numpy's `standard_normal`).
pub(crate) fn standard_normal(rng: &mut EnvRng) -> f64 {
    use rand::Rng;
    rng.sample(rand_distr::StandardNormal)
}
