//! stackrl: native MuJoCo environments with Gymnasium's definitions, and the
//! actor-critic family of the Stackelberg / residual actor-critic papers on Candle.
//!
//! * [`envs`]: the environments (always built). Crates that only want them depend on
//!   stackrl with `default-features = false` and compile none of the trainer's
//!   dependencies.
//! * Everything else sits behind the default `trainer` feature: [`nn`] (networks,
//!   policies, critics, Adam), [`autodiff`] (Hessian-vector products, conjugate
//!   gradient, the Stackelberg gradient), [`algos`] (on-policy AC and STAC; SAC, Res-SAC,
//!   Stack-SAC), [`train`] (run directories, metrics, checkpoints, the off-policy trainer),
//!   [`replay`], [`rng`], the tabular [`lab`] (exact policy-gradient quantities and the
//!   papers' theorems), [`sweep`]s of many runs (local child processes or Ray tasks),
//!   multi-seed [`report`]s (IQM with bootstrap CIs), learning-curve [`plot`]s and the CLI.
//! * [`render`] (default `render` feature, on top of `trainer`): rollouts rendered offscreen
//!   by MuJoCo on EGL and written as H.264 MP4, GIF or PNG frames.

#![warn(missing_docs)]

pub mod bench;
pub mod envs;

pub use envs::{Env, make, make_with};

#[cfg(feature = "trainer")]
pub mod algos;
#[cfg(feature = "trainer")]
pub mod autodiff;
#[cfg(feature = "trainer")]
pub mod cli;
#[cfg(feature = "trainer")]
pub mod files;
#[cfg(feature = "trainer")]
pub mod lab;
#[cfg(feature = "trainer")]
pub mod memory;
#[cfg(feature = "trainer")]
pub mod nn;
#[cfg(feature = "trainer")]
pub mod plot;
#[cfg(feature = "render")]
pub mod render;
#[cfg(feature = "trainer")]
pub mod replay;
#[cfg(feature = "trainer")]
pub mod report;
#[cfg(feature = "trainer")]
pub mod rng;
#[cfg(feature = "trainer")]
pub mod sweep;
#[cfg(feature = "trainer")]
pub mod train;
