//! The project's seeded random number generator.
//!
//! All randomness in the trainers (network initialisation, exploration noise, replay sampling,
//! categorical sampling) is drawn from [`Rng`], never from Candle: Candle's CPU random tensors
//! (`Tensor::randn`, `Tensor::rand`) use an unseedable thread RNG, so runs would not be
//! reproducible. [`Rng`] wraps `rand_pcg::Pcg64Mcg` (128-bit multiplicative congruential state,
//! XSL-RR output), whose whole state is one `u128`; that makes checkpointing trivial.
//!
//! Tensors are drawn in `f64` and then cast to the requested dtype, so an `f32` and an `f64`
//! network built from the same seed hold the same weights up to rounding (the tests rely on
//! this to compare `f32` computations against `f64` references).

use candle_core::{DType, Device, Result, Shape, Tensor};
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

/// Errors of [`Rng`] state restoration.
#[derive(Debug, thiserror::Error)]
pub enum RngError {
    /// The serialized state could not be parsed.
    #[error("invalid RNG state: {0}")]
    InvalidState(#[from] serde_json::Error),
}

/// Seeded, serializable random number generator (a thin wrapper around `Pcg64Mcg`).
///
/// `Serialize`/`Deserialize` write the generator state (`{"state": <u128>}`), so a restored
/// generator continues the exact same stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rng {
    inner: Pcg64Mcg,
}

impl Rng {
    /// A generator seeded from a `u64` (rand's `seed_from_u64`, i.e. the seed is expanded with
    /// PCG32 into the 128-bit state, so nearby seeds give unrelated streams).
    pub fn seed_from_u64(seed: u64) -> Self {
        Self {
            inner: Pcg64Mcg::seed_from_u64(seed),
        }
    }

    /// A new independent generator seeded from this one (e.g. one stream per environment).
    pub fn fork(&mut self) -> Self {
        Self::seed_from_u64(self.next_u64())
    }

    /// The next raw 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.random()
    }

    /// Uniform `f64` in `[0, 1)`.
    pub fn uniform_f64(&mut self) -> f64 {
        self.inner.random()
    }

    /// Uniform `f64` in `[low, high)`. Errors if `!(low < high)` or a bound is not finite.
    pub fn uniform_range(&mut self, low: f64, high: f64) -> Result<f64> {
        check_range(low, high)?;
        Ok(low + (high - low) * self.uniform_f64())
    }

    /// Standard normal `f64` (ziggurat, `rand_distr::StandardNormal`).
    pub fn normal_f64(&mut self) -> f64 {
        StandardNormal.sample(&mut self.inner)
    }

    /// Uniform integer in `0..n`. Errors if `n == 0`.
    pub fn below(&mut self, n: usize) -> Result<usize> {
        if n == 0 {
            candle_core::bail!("Rng::below: empty range 0..0");
        }
        Ok(self.inner.random_range(0..n))
    }

    /// Fills `out` with standard normal samples (cast from `f64`).
    pub fn fill_normal_f32(&mut self, out: &mut [f32]) {
        for x in out {
            *x = self.normal_f64() as f32;
        }
    }

    /// A tensor of i.i.d. `U[low, high)` samples, drawn in row-major order.
    pub fn uniform_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        low: f64,
        high: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        check_range(low, high)?;
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.elem_count())
            .map(|_| low + (high - low) * self.uniform_f64())
            .collect();
        from_f64(data, shape, dtype, device)
    }

    /// A tensor of i.i.d. `N(mean, std^2)` samples, drawn in row-major order.
    pub fn normal_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
            candle_core::bail!("Rng::normal_tensor: invalid mean {mean} / std {std}");
        }
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.elem_count())
            .map(|_| mean + std * self.normal_f64())
            .collect();
        from_f64(data, shape, dtype, device)
    }

    /// The generator state as JSON bytes (for checkpoints).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a struct holding one u128 cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Restores a generator from [`Rng::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, RngError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

fn check_range(low: f64, high: f64) -> Result<()> {
    if !(low.is_finite() && high.is_finite() && low < high) {
        candle_core::bail!("Rng: invalid uniform range [{low}, {high})");
    }
    Ok(())
}

fn from_f64(data: Vec<f64>, shape: Shape, dtype: DType, device: &Device) -> Result<Tensor> {
    if !dtype.is_float() {
        candle_core::bail!("Rng: random tensors must be floating point, got {dtype:?}");
    }
    let t = Tensor::from_vec(data, shape, &Device::Cpu)?;
    t.to_dtype(dtype)?.to_device(device)
}
