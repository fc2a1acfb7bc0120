//! A fused fully connected layer `act(x Wᵀ + b)` as one Candle op, with a backward pass
//! written in tensor ops (so it can be differentiated again, for the Stackelberg gradient).
//!
//! Why: built from Candle's ops, a ReLU layer is a matmul (with a transposed-weight view), a
//! broadcast add and a ReLU, and its backward pass allocates and zero-fills a gradient
//! buffer for every one of those nodes, computes the ReLU mask in three passes and reduces
//! the bias gradient with a strided sum over the batch. On the CPU these passes cost about
//! as much as the matrix products of a 256×256 SAC update. This op computes the forward with
//! one `gemm` call into a buffer pre-filled with the bias (the same products and the same
//! rounding as Candle's matmul followed by the add) and the ReLU in place, and its backward
//! needs one masked copy, two matrix products and a column sum, skipping the products whose
//! input is not tracked (frozen weights, constant inputs).

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use super::activation::Activation;
use super::kernels::{bias_act_in_place, column_sum_strided, gemm_new};

/// `act(x Wᵀ + b)` for `x [batch, in]`, `w [out, in]`, `b [out]`.
///
/// Identity and ReLU on the CPU in f32 / f64 use the fused op; other activations, dtypes or
/// devices use Candle's `matmul`, `broadcast_add` and the activation.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    let fused = matches!(act, Activation::Identity | Activation::Relu)
        && x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && b.dtype() == x.dtype()
        && x.rank() == 2
        && w.rank() == 2
        && b.rank() == 1;
    if fused {
        x.apply_op3(
            w,
            b,
            FusedLinear {
                relu: act == Activation::Relu,
            },
        )
    } else {
        act.apply(&x.matmul(&w.t()?)?.broadcast_add(b)?)
    }
}

#[derive(Clone, Copy)]
struct FusedLinear {
    relu: bool,
}

fn dims(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<(usize, usize, usize)> {
    let (m, k) = l1.shape().dims2()?;
    let (n, k2) = l2.shape().dims2()?;
    let n3 = l3.shape().dims1()?;
    if k != k2 || n != n3 {
        candle_core::bail!(
            "linear: x {:?}, w {:?}, b {:?} do not fit",
            l1.dims(),
            l2.dims(),
            l3.dims()
        );
    }
    Ok((m, n, k))
}

/// `dst[m, n] = act(x[m, k] · w[n, k]ᵀ + b)`: one `gemm` call on the strided inputs into a
/// fresh buffer, then the bias and the ReLU in one pass (the same products and rounding as
/// Candle's matmul followed by the add).
#[allow(clippy::too_many_arguments)] // three (slice, layout) operands, the sizes, the flag
pub(crate) fn forward<T>(
    x: &[T],
    lx: &Layout,
    w: &[T],
    lw: &Layout,
    b: &[T],
    lb: &Layout,
    (m, n, k): (usize, usize, usize),
    relu: bool,
) -> Vec<T>
where
    T: WithDType,
{
    let (xs, ws, bs) = (lx.stride(), lw.stride(), lb.stride());
    let b0 = lb.start_offset();
    let bias: Vec<T> = (0..n).map(|j| b[b0 + j * bs[0]]).collect();
    // The right-hand operand is wᵀ, i.e. w with its strides swapped.
    let mut dst = gemm_new(
        (m, n, k),
        &x[lx.start_offset()..],
        (xs[0], xs[1]),
        &w[lw.start_offset()..],
        (ws[1], ws[0]),
    );
    bias_act_in_place(&mut dst, &bias, relu);
    dst
}

impl CustomOp3 for FusedLinear {
    fn name(&self) -> &'static str {
        "stackrl-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1, l2, l3)?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(forward(x, l1, w, l2, b, l3, d, self.relu))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(forward(x, l1, w, l2, b, l3, d, self.relu))
            }
            _ => candle_core::bail!("linear: x, w, b must all be f32 or all f64"),
        };
        Ok((out, Shape::from((d.0, d.1))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // dL/dz for z = x Wᵀ + b: the ReLU passes the gradient where its output is positive.
        let gz = if self.relu {
            grad.apply_op2(res, ReluGrad)?
        } else {
            grad.clone()
        };
        let gx = if x.track_op() {
            Some(gz.matmul(w)?)
        } else {
            None
        };
        let gw = if w.track_op() {
            Some(gz.t()?.matmul(x)?)
        } else {
            None
        };
        let gb = if b.track_op() {
            Some(gz.apply_op1(ColumnSum)?)
        } else {
            None
        };
        Ok((gx, gw, gb))
    }
}

/// `g · 1[res > 0]`, the ReLU's backward: linear in `g` (its own backward is the same
/// mask, so it can be differentiated again), constant in `res` (the ReLU's second derivative
/// is zero almost everywhere).
#[derive(Clone, Copy)]
struct ReluGrad;

fn masked<T: WithDType>(g: &[T], lg: &Layout, r: &[T], lr: &Layout) -> Result<Vec<T>> {
    let (Some((g0, g1)), Some((r0, r1))) = (lg.contiguous_offsets(), lr.contiguous_offsets())
    else {
        candle_core::bail!("relu-grad: non-contiguous operands")
    };
    let zero = T::from_f64(0.0);
    Ok(g[g0..g1]
        .iter()
        .zip(&r[r0..r1])
        .map(|(&g, &r)| if r > zero { g } else { zero })
        .collect())
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "stackrl-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("relu-grad: shapes {:?} vs {:?}", l1.dims(), l2.dims());
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(r)) => CpuStorage::F32(masked(g, l1, r, l2)?),
            (CpuStorage::F64(g), CpuStorage::F64(r)) => CpuStorage::F64(masked(g, l1, r, l2)?),
            _ => candle_core::bail!("relu-grad: f32 or f64 operands of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _g: &Tensor,
        res: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.apply_op2(res, ReluGrad)?), None))
    }
}

/// Sum over the rows of a `[m, n]` tensor, `[n]`, row by row (contiguous inner loop) for f32 /
/// f64 on the CPU, else Candle's `sum(0)`. Differentiable (backward: broadcast).
pub fn column_sum(t: &Tensor) -> Result<Tensor> {
    if t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64) && t.rank() == 2 {
        t.apply_op1(ColumnSum)
    } else {
        t.sum(0)
    }
}

/// Sum over the rows of a `[m, n]` tensor, giving `[n]` (the bias gradient); row by row, so
/// the inner loop runs over contiguous memory. Backward: broadcast back to `[m, n]`.
struct ColumnSum;

fn column_sum_rows<T: WithDType>(v: &[T], l: &Layout) -> Result<(Vec<T>, usize)> {
    let (m, n) = l.shape().dims2()?;
    let s = l.stride();
    Ok((
        column_sum_strided(&v[l.start_offset()..], (m, n), (s[0], s[1])),
        n,
    ))
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "stackrl-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (out, n) = match s {
            CpuStorage::F32(v) => {
                let (a, n) = column_sum_rows(v, l)?;
                (CpuStorage::F32(a), n)
            }
            CpuStorage::F64(v) => {
                let (a, n) = column_sum_rows(v, l)?;
                (CpuStorage::F64(a), n)
            }
            _ => candle_core::bail!("column-sum: f32 or f64"),
        };
        Ok((out, Shape::from(n)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.unsqueeze(0)?.broadcast_as(arg.shape())?))
    }
}
