//! On-policy actor-critic algorithms of paper 000 (Stackelberg actor-critic):
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

pub mod ac;
pub mod on_policy;
pub mod stac;

pub use on_policy::{
    Algo, CriticHessian, EpochData, EpochRecord, EpochStats, EpochTiming, OnPolicyAgent,
    OnPolicyConfig, OptimizerKind, Precision, Segment, SegmentEnd, StacConfig, run_epochs,
};

use crate::envs::EnvError;

/// Errors of the on-policy algorithms: bad configurations and inputs are reported with one of
/// these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum AlgoError {
    /// The Hessian regularisation λ (or its schedule) is negative or not finite.
    #[error("the STAC Hessian regularisation lambda must be finite and >= 0, got {0}")]
    InvalidLambda(f64),
    /// `critic_steps` (the paper's unrolling `k`) is zero.
    #[error("critic_steps (the number k of critic steps per epoch) must be at least 1, got 0")]
    ZeroCriticSteps,
    /// An option that only makes sense for a continuous (`Box`) action space was set for a
    /// discrete one.
    #[error(
        "option `{option}` applies to continuous (Box) action spaces only, but the action \
         space is {space}"
    )]
    ContinuousOnlyOption {
        /// The option's name.
        option: &'static str,
        /// The action space, printed.
        space: String,
    },
    /// Another invalid configuration value.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An observation or action space the algorithms do not handle.
    #[error("unsupported space: {0}")]
    UnsupportedSpace(String),
    /// Inconsistent epoch data, environment or saved state.
    #[error("{0}")]
    Mismatch(String),
    /// An environment error.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A tensor / autodiff error.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the algorithms.
pub type Result<T> = std::result::Result<T, AlgoError>;
