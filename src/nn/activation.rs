//! Activation functions, including a vectorisable, twice-differentiable `tanh` for the CPU.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Element-wise activation functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// No activation (linear output layer).
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// Candle's `tanh` (exact, but a scalar libm call per element on the CPU, hence slow).
    Tanh,
    /// `tanh` via [`fast_tanh`].
    FastTanh,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::FastTanh => fast_tanh(x),
        }
    }
}

/// `tanh` as a custom op: on the CPU, `f32` uses a branch-free rational approximation that
/// the compiler vectorises (max abs error 3.9e-7 vs. the exact value, about 3 f32 epsilons,
/// near |x| = 5.8; see `tests/nn_policy.rs`)
/// and `f64` uses libm's `tanh`; other devices and dtypes use Candle's own `tanh`.
///
/// Why: Candle 0.11.1's CPU `tanh` (and `exp`, hence sigmoid) is a scalar libm call per
/// element; on a 256x256 f32 tensor it took ~1.2 ms against ~0.2 ms for `2 sigmoid(2x) - 1`.
///
/// Second derivatives: the backward is `grad * (1 - y²)` written with tensor ops on the op's
/// *output* `y`, which itself carries this op, so a second backward pass differentiates it
/// again (`d(1 - y²)/dx = -2y(1 - y²)`); checked against finite differences in
/// `tests/nn_autodiff.rs`.
pub fn fast_tanh(x: &Tensor) -> Result<Tensor> {
    let supported = matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64);
    if x.device().is_cpu() && supported {
        x.apply_op1(RationalTanh)
    } else {
        x.tanh()
    }
}

/// Rational minimax approximation of `tanh` on `[-c, c]` (the coefficients of Eigen's
/// `generic_fast_tanh_float`), saturating to ±1 beyond.
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients kept as published
fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_671_5e-11;
    const A11: f32 = 2.000_187_9e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525_2e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let c = x.clamp(-CLAMP, CLAMP);
    let x2 = c * c;
    let p = (((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1;
    let q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0;
    let y = c * p / q;
    // Below 4e-4, tanh(x) rounds to x in f32; the rational form would be off by an ulp.
    if x.abs() < 4e-4 { x } else { y }
}

struct RationalTanh;

impl CustomOp1 for RationalTanh {
    fn name(&self) -> &'static str {
        "stackrl-fast-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(v) => {
                CpuStorage::F32(candle_core::cpu_backend::unary_map(v, layout, tanh_f32))
            }
            CpuStorage::F64(v) => {
                CpuStorage::F64(candle_core::cpu_backend::unary_map(v, layout, f64::tanh))
            }
            other => {
                use candle_core::backend::BackendStorage;
                candle_core::bail!("fast_tanh: unsupported dtype {:?}", other.dtype())
            }
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // d tanh/dx = 1 - y², built from `res` so that it is differentiable again.
        let dy = res.sqr()?.affine(-1.0, 1.0)?;
        Ok(Some(grad_res.mul(&dy)?))
    }
}
