//! stackrl: native MuJoCo environments with Gymnasium's definitions, and the
//! actor-critic family of the Stackelberg / residual actor-critic papers on Candle.

#[cfg(feature = "trainer")]
pub mod lab;
