//! stackrl: native MuJoCo environments with Gymnasium's definitions, and the
//! actor-critic family of the Stackelberg / residual actor-critic papers on Candle.
//!
//! * [`envs`]: the environments (always built). Crates that only want them depend on
//!   stackrl with `default-features = false` and compile none of the trainer's
//!   dependencies.
//! * Everything else sits behind the default `trainer` feature.

#![warn(missing_docs)]

pub mod envs;

pub use envs::{Env, make, make_with};
pub mod bench;
#[cfg(feature = "trainer")]
pub mod cli;
