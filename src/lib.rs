//! stackrl: native MuJoCo environments with Gymnasium's definitions, and the
//! actor-critic family of the Stackelberg / residual actor-critic papers on Candle.

#[cfg(feature = "trainer")]
pub mod autodiff;
#[cfg(feature = "trainer")]
pub mod nn;
#[cfg(feature = "trainer")]
pub mod replay;
#[cfg(feature = "trainer")]
pub mod rng;
