//! The algorithms of the two papers, on Candle.
//!
//! **On-policy (paper 000, Stackelberg actor-critic):**
//!
//! * [`on_policy`]: what AC and STAC share: configuration, epoch collection, GAE and
//!   Monte-Carlo returns, the policy / critic pair, checkpointable state, [`run_epochs`];
//! * [`ac`]: the paper's baseline (eq. (9)-(10)): one policy-gradient actor step with GAE
//!   advantages and `k` critic steps per epoch;
//! * [`stac`]: the Stackelberg actor step along the total derivative (eq. (18)-(19), (25)).
//!
//! The per-epoch API ([`OnPolicyAgent::collect_epoch`], [`OnPolicyAgent::update`],
//! [`OnPolicyAgent::state_tensors`]) is what a run loop with metrics, evaluation and
//! checkpoints drives; [`run_epochs`] is the minimal such loop (tests, benchmark, examples).
//!
//! **Off-policy (paper 001, Sec. 6.2, Appendix C, D.2):** the soft actor-critic family, SAC,
//! Res-SAC and Stack-SAC, one file each, sharing one agent ([`SacAgent`]).
//!
//! * [`sac`]: SAC (Haarnoja et al. 2018b) with the paper's `Algo-x-y` schedule: `x` critic
//!   updates (and `y` res-critic updates) per actor update (`SAC-1-0`, `SAC-10-0`).
//! * [`res_sac`]: Res-SAC (Algorithm 5, D.2.1): a res-critic `W` learns the value of the
//!   critic's clipped TD residual and the actor minimises `KL(π ‖ exp(Q + W)/Z)`.
//! * [`stack_sac`]: Stack-SAC (eq. 43, C.2): the actor follows the Stackelberg gradient with
//!   `η`-regularised critic Hessian, solved by conjugate gradient on exact Hessian-vector
//!   products.
//!
//! [`update`] runs one round of the schedule for the agent's algorithm. The training loop
//! (environment interaction, replay, evaluation, checkpoints) is [`crate::train::off_policy`].

pub mod ac;
pub mod on_policy;
pub mod stac;

pub mod agent;
pub mod bench;
pub mod res_sac;
pub mod sac;
pub mod stack_sac;

pub use agent::{SacAgent, SacConfig, StackHessian, UpdateStats};
pub use on_policy::{
    CriticHessian, EpochData, EpochRecord, EpochStats, EpochTiming, OnPolicyAgent, OnPolicyAlgo,
    OnPolicyConfig, OnPolicyError, OptimizerKind, Precision, Segment, SegmentEnd, StacConfig,
    StacEstimator, run_epochs,
};

use std::fmt;
use std::str::FromStr;

use crate::replay::ReplayBuffer;
use crate::rng::Rng;

/// The algorithms of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Algo {
    /// Soft actor-critic.
    #[serde(rename = "sac")]
    Sac,
    /// Residual soft actor-critic (Algorithm 5).
    #[serde(rename = "res-sac")]
    ResSac,
    /// Stackelberg soft actor-critic (eq. 43).
    #[serde(rename = "stack-sac")]
    StackSac,
}

impl Algo {
    /// Every algorithm, in the order the CLI lists them.
    pub const ALL: [Algo; 3] = [Algo::Sac, Algo::ResSac, Algo::StackSac];

    /// The name used on the command line and in run names.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sac => "sac",
            Algo::ResSac => "res-sac",
            Algo::StackSac => "stack-sac",
        }
    }

    /// Whether the algorithm trains a res-critic.
    pub fn has_res_critic(self) -> bool {
        self == Algo::ResSac
    }

    /// The valid names, for error messages.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.name()).collect()
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// By name, with the error of `FromStr` (which lists the valid names).
impl<'de> serde::Deserialize<'de> for Algo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Algo {
    type Err = AlgoError;
    fn from_str(s: &str) -> Result<Self, AlgoError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| AlgoError::UnknownAlgo {
                name: s.to_string(),
                valid: Self::names(),
            })
    }
}

/// Errors of the algorithms.
#[derive(Debug, thiserror::Error)]
pub enum AlgoError {
    /// An algorithm name that does not exist.
    #[error("unknown algorithm '{name}'; valid algorithms: {}", valid.join(", "))]
    UnknownAlgo {
        /// The name given.
        name: String,
        /// The valid names.
        valid: Vec<&'static str>,
    },
    /// An invalid hyper-parameter or shape.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A loss (or another monitored quantity) became NaN or infinite; the update that
    /// produced it was not applied.
    #[error("{what} is not finite ({value})")]
    NonFinite {
        /// What was not finite.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// Saved state that does not fit this agent (missing or extra tensors, other shapes).
    #[error("state does not match the agent: {0}")]
    StateMismatch(String),
    /// Tensor errors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Replay errors.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
}

/// One round of the agent's `Algo-x-y` schedule: `x` critic updates, `y` res-critic updates
/// (Res-SAC), one actor update and one temperature update, with minibatches sampled from
/// `replay` by `rng`.
pub fn update(
    agent: &mut SacAgent,
    replay: &ReplayBuffer,
    rng: &mut Rng,
) -> Result<UpdateStats, AlgoError> {
    match agent.algo() {
        Algo::Sac => sac::update(agent, replay, rng),
        Algo::ResSac => res_sac::update(agent, replay, rng),
        Algo::StackSac => stack_sac::update(agent, replay, rng),
    }
}
