//! Neural-network building blocks for the actor-critic trainers: MLPs with PyTorch's default
//! initialisation from our seeded RNG, stochastic policies, critics with target networks,
//! automatic entropy tuning, and an Adam with exportable state.

pub mod activation;
pub mod critic;
pub mod gaussian;
pub(crate) mod kernels;
pub mod linear;
pub mod mlp;
pub mod optim;
pub mod rop;
pub mod tape;

pub use activation::{Activation, fast_tanh};
pub use critic::{EntropyTuner, QNetwork, TwinQ, VCritic, polyak_update, target_entropy};
pub use gaussian::{
    CategoricalPolicy, DiagGaussianPolicy, LogStdBound, SquashedGaussianActor,
    SquashedGaussianConfig, SquashedSample, softplus, tanh_log_abs_det_jacobian,
};
pub use linear::{column_sum, linear};
pub use mlp::{Mlp, MlpConfig, copy_vars};
pub use optim::{Adam, AdamConfig};
pub use rop::{CurvatureBlocks, MlpCurvature, Residual};
pub use tape::{MlpTape, frozen_mlp, frozen_mlps, tape_supports};
