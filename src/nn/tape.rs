//! First-order reverse mode of a ReLU (or linear) MLP on raw buffers: the forward pass keeps
//! its activations, the backward pass turns `∂L/∂out` into the weight gradients and, if
//! wanted, `∂L/∂x` — with one `gemm` per product and no autograd graph.
//!
//! With `z_l = h_{l−1} W_lᵀ + b_l`, `h_l = σ(z_l)` (`h_0 = x`, linear output) and
//! `g_l = ∂L/∂h_l`:
//!
//! ```text
//! δ_l = g_l ⊙ 1[h_l > 0]   (hidden ReLU layers; δ_L = g_L)
//! ∂W_l = δ_lᵀ h_{l−1},   ∂b_l = Σ_batch δ_l,   g_{l−1} = δ_l W_l
//! ```
//!
//! Why: two of the SAC update's three backward passes only need these lines — the critic
//! step (`∂J_Q/∂φ` of a squared error on the critics' outputs) and the actor loss's path
//! through the frozen critics (`∂Q/∂a` only). Through Candle's autograd every gradient there
//! is also added into a zero-filled slot and every product's output zero-filled first; on the
//! CPU those passes cost several per cent of a 256×256 update. The products and their
//! rounding are those of [`super::linear`], whose forward this module shares, so the outputs
//! are bit-identical to [`super::Mlp::forward`].
//!
//! [`frozen_mlp`] wraps the tape as a Candle op for a network whose weights are constants: it
//! sits in a graph like any op and back-propagates to its input only.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, WithDType};

use super::activation::Activation;
use super::kernels::{bias_act_in_place, column_sum_strided, gemm_new, relu_mask_in_place};
use super::linear::linear;
use super::mlp::Mlp;

/// Whether the tape handles an MLP with hidden activation `hidden` and output activation
/// `output` on `x`: f32 / f64 on the CPU, ReLU or linear hidden layers, linear output.
pub fn tape_supports(hidden: Activation, output: Activation, x: &Tensor) -> bool {
    matches!(hidden, Activation::Relu | Activation::Identity)
        && output == Activation::Identity
        && x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.rank() == 2
}

/// The layer sizes `[in, hidden..., out]` of weights `[w_0, b_0, w_1, b_1, ...]` (`w_l` as
/// `[out, in]`), checked for consistency with each other and with the input width.
fn layer_sizes(weights: &[Tensor], dtype: DType, input: usize) -> Result<Vec<usize>> {
    if weights.is_empty() || !weights.len().is_multiple_of(2) {
        candle_core::bail!(
            "mlp tape: expected [w, b] pairs, got {} tensors",
            weights.len()
        );
    }
    let mut sizes = vec![input];
    for pair in weights.chunks_exact(2) {
        let (out, inp) = pair[0].dims2()?;
        let prev = sizes[sizes.len() - 1];
        if inp != prev || pair[1].dims1()? != out {
            candle_core::bail!(
                "mlp tape: layer w {:?}, b {:?} after width {prev}",
                pair[0].dims(),
                pair[1].dims()
            );
        }
        if pair[0].dtype() != dtype || pair[1].dtype() != dtype {
            candle_core::bail!("mlp tape: weights must have the input's dtype {dtype:?}");
        }
        sizes.push(out);
    }
    Ok(sizes)
}

/// Runs `f` on contiguous views of the storages of `tensors` (read-locked meanwhile).
fn with_slices<T: WithDType, R>(tensors: &[Tensor], f: impl FnOnce(&[&[T]]) -> R) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let candle_core::Storage::Cpu(cpu) = &**storage else {
            candle_core::bail!("mlp tape: CPU tensors only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("mlp tape: weights must be contiguous");
        };
        slices.push(&cpu.as_slice::<T>()?[start..end]);
    }
    Ok(f(&slices))
}

/// The forward pass of one network on one batch, in one dtype.
#[derive(Clone, Debug)]
struct Cache<T> {
    batch: usize,
    sizes: Vec<usize>,
    relu: bool,
    /// `h_0 = x, h_1, ..., h_{L−1}` (the output is not needed by the backward pass).
    acts: Vec<Vec<T>>,
}

/// Forward pass of `weights` on `x [batch, sizes[0]]` (contiguous): the cache and the output.
fn forward<T: WithDType>(
    w: &[&[T]],
    sizes: &[usize],
    relu: bool,
    x: Vec<T>,
    batch: usize,
) -> (Cache<T>, Vec<T>) {
    let layers = sizes.len() - 1;
    let mut acts = Vec::with_capacity(layers);
    acts.push(x);
    let mut out = Vec::new();
    for l in 0..layers {
        let (inp, width) = (sizes[l], sizes[l + 1]);
        let h = &acts[l];
        // z = h Wᵀ: W is [width, inp] row-major, so Wᵀ has strides (1, inp).
        let mut z = gemm_new((batch, width, inp), h, (inp, 1), w[2 * l], (1, inp));
        let hidden = l + 1 < layers;
        bias_act_in_place(&mut z, w[2 * l + 1], hidden && relu);
        if hidden {
            acts.push(z);
        } else {
            out = z;
        }
    }
    let cache = Cache {
        batch,
        sizes: sizes.to_vec(),
        relu,
        acts,
    };
    (cache, out)
}

impl<T: WithDType> Cache<T> {
    /// The backward pass from `g = ∂L/∂out [batch, out]`: the weight gradients
    /// `[∂W_0, ∂b_0, ...]` (empty if `!weight_grads`) and `∂L/∂x` (if `input_grad`).
    fn backward(
        &self,
        w: &[&[T]],
        mut g: Vec<T>,
        weight_grads: bool,
        input_grad: bool,
    ) -> (Vec<Vec<T>>, Option<Vec<T>>) {
        let layers = self.sizes.len() - 1;
        let batch = self.batch;
        let mut grads = if weight_grads {
            vec![Vec::new(); 2 * layers]
        } else {
            Vec::new()
        };
        for l in (0..layers).rev() {
            let (inp, width) = (self.sizes[l], self.sizes[l + 1]);
            if self.relu && l + 1 < layers {
                relu_mask_in_place(&mut g, &self.acts[l + 1]);
            }
            if weight_grads {
                // ∂W_l = δᵀ h_{l−1}: δᵀ is δ [batch, width] with strides (1, width).
                grads[2 * l] =
                    gemm_new((width, inp, batch), &g, (1, width), &self.acts[l], (inp, 1));
                grads[2 * l + 1] = column_sum_strided(&g, (batch, width), (width, 1));
            }
            if l > 0 || input_grad {
                g = gemm_new((batch, inp, width), &g, (width, 1), w[2 * l], (inp, 1));
            }
        }
        (grads, input_grad.then_some(g))
    }
}

#[derive(Clone, Debug)]
enum Typed {
    F32(Cache<f32>),
    F64(Cache<f64>),
}

/// A recorded forward pass of an MLP (see the module docs): its output, and the backward
/// pass to its weights and input.
#[derive(Clone, Debug)]
pub struct MlpTape {
    cache: Typed,
    output: Tensor,
}

impl MlpTape {
    /// Forward pass of `net` on `x [batch, in]`, recording the activations. Errors if
    /// [`tape_supports`] does not hold for the network and input.
    pub fn forward(net: &Mlp, x: &Tensor) -> Result<Self> {
        let c = net.config();
        if !tape_supports(c.hidden_activation, c.output_activation, x) {
            candle_core::bail!(
                "mlp tape: {:?} hidden / {:?} output activation on {:?} {:?} not supported",
                c.hidden_activation,
                c.output_activation,
                x.dtype(),
                x.device()
            );
        }
        let weights: Vec<Tensor> = net.vars().iter().map(|v| v.as_tensor().clone()).collect();
        Self::forward_weights(&weights, c.hidden_activation == Activation::Relu, x)
    }

    fn forward_weights(weights: &[Tensor], relu: bool, x: &Tensor) -> Result<Self> {
        let (batch, input) = x.dims2()?;
        let sizes = layer_sizes(weights, x.dtype(), input)?;
        let out_dim = sizes[sizes.len() - 1];
        let (cache, output) = match x.dtype() {
            DType::F32 => {
                let xv = x.flatten_all()?.to_vec1::<f32>()?;
                let (c, o) =
                    with_slices::<f32, _>(weights, |w| forward(w, &sizes, relu, xv, batch))?;
                (
                    Typed::F32(c),
                    Tensor::from_vec(o, (batch, out_dim), &Device::Cpu)?,
                )
            }
            DType::F64 => {
                let xv = x.flatten_all()?.to_vec1::<f64>()?;
                let (c, o) =
                    with_slices::<f64, _>(weights, |w| forward(w, &sizes, relu, xv, batch))?;
                (
                    Typed::F64(c),
                    Tensor::from_vec(o, (batch, out_dim), &Device::Cpu)?,
                )
            }
            dt => candle_core::bail!("mlp tape: f32 or f64, got {dt:?}"),
        };
        Ok(Self { cache, output })
    }

    /// The network's output `[batch, out]` (no graph).
    pub fn output(&self) -> &Tensor {
        &self.output
    }

    /// The gradients of a loss `L` with `∂L/∂out = grad_out [batch, out]` with respect to the
    /// weights of `net` (`[∂W_0, ∂b_0, ...]`, as [`Mlp::vars`]), and with respect to the input
    /// if `input_grad`. `net` must hold the weights of the forward pass.
    pub fn backward(
        &self,
        net: &Mlp,
        grad_out: &Tensor,
        input_grad: bool,
    ) -> Result<(Vec<Tensor>, Option<Tensor>)> {
        let weights: Vec<Tensor> = net.vars().iter().map(|v| v.as_tensor().clone()).collect();
        self.backward_weights(&weights, grad_out, true, input_grad)
    }

    fn backward_weights(
        &self,
        weights: &[Tensor],
        grad_out: &Tensor,
        weight_grads: bool,
        input_grad: bool,
    ) -> Result<(Vec<Tensor>, Option<Tensor>)> {
        let sizes = match &self.cache {
            Typed::F32(c) => c.sizes.clone(),
            Typed::F64(c) => c.sizes.clone(),
        };
        if layer_sizes(weights, self.output.dtype(), sizes[0])? != sizes {
            candle_core::bail!("mlp tape: backward with weights of another shape");
        }
        if grad_out.dims() != self.output.dims() {
            candle_core::bail!(
                "mlp tape: output gradient {:?} for an output {:?}",
                grad_out.dims(),
                self.output.dims()
            );
        }
        let g = grad_out.to_dtype(self.output.dtype())?.flatten_all()?;
        let shapes: Vec<Shape> = weights.iter().map(|w| w.shape().clone()).collect();
        let batch = self.output.dim(0)?;
        fn wrap<T: WithDType>(
            (grads, gx): (Vec<Vec<T>>, Option<Vec<T>>),
            shapes: &[Shape],
            batch: usize,
            input: usize,
        ) -> Result<(Vec<Tensor>, Option<Tensor>)> {
            let grads = grads
                .into_iter()
                .zip(shapes)
                .map(|(v, s)| Tensor::from_vec(v, s.clone(), &Device::Cpu))
                .collect::<Result<Vec<_>>>()?;
            let gx = gx
                .map(|v| Tensor::from_vec(v, (batch, input), &Device::Cpu))
                .transpose()?;
            Ok((grads, gx))
        }
        match &self.cache {
            Typed::F32(c) => {
                let gv = g.to_vec1::<f32>()?;
                let r = with_slices::<f32, _>(weights, |w| {
                    c.backward(w, gv, weight_grads, input_grad)
                })?;
                wrap(r, &shapes, batch, sizes[0])
            }
            Typed::F64(c) => {
                let gv = g.to_vec1::<f64>()?;
                let r = with_slices::<f64, _>(weights, |w| {
                    c.backward(w, gv, weight_grads, input_grad)
                })?;
                wrap(r, &shapes, batch, sizes[0])
            }
        }
    }
}

/// `f(x)` for an MLP with *constant* weights `[w_0, b_0, ...]` (hidden activation `act`,
/// linear output), as one Candle op: gradients reach `x` only, by the tape's backward pass.
/// Where the tape does not apply (see [`tape_supports`]), the same function by the fused
/// layer ops on detached weights.
///
/// The op's backward is linear in the incoming gradient with the activation masks of the
/// forward pass held fixed; when that gradient is itself part of a graph (Candle's
/// second-order mode), the backward is built from differentiable ops instead, which gives
/// the same values and the correct second derivatives (a ReLU network's are zero).
pub fn frozen_mlp(weights: &[Tensor], act: Activation, x: &Tensor) -> Result<Tensor> {
    frozen_mlps(&[weights.to_vec()], act, x)
}

/// [`frozen_mlp`] for several networks on the same input (e.g. twin critics), as one op:
/// their outputs side by side, `[batch, Σ out_i]`. Two networks run on two threads when
/// there are two (see `kernels::join`).
pub fn frozen_mlps(nets: &[Vec<Tensor>], act: Activation, x: &Tensor) -> Result<Tensor> {
    if nets.is_empty() {
        candle_core::bail!("frozen mlps: no network");
    }
    let nets: Vec<Vec<Tensor>> = nets
        .iter()
        .map(|w| w.iter().map(Tensor::detach).collect())
        .collect();
    if !tape_supports(act, Activation::Identity, x) {
        let mut outs = Vec::with_capacity(nets.len());
        for weights in &nets {
            let layers = weights.len() / 2;
            let mut h = x.clone();
            for i in 0..layers {
                let a = if i + 1 < layers {
                    act
                } else {
                    Activation::Identity
                };
                h = linear(&h, &weights[2 * i], &weights[2 * i + 1], a)?;
            }
            outs.push(h);
        }
        return Tensor::cat(&outs, 1);
    }
    let input = x.dim(1)?;
    let mut widths = Vec::with_capacity(nets.len());
    for weights in &nets {
        let sizes = layer_sizes(weights, x.dtype(), input)?;
        widths.push(sizes[sizes.len() - 1]);
    }
    x.contiguous()?.apply_op1(FrozenMlps {
        nets,
        widths,
        relu: act == Activation::Relu,
        tapes: Mutex::new(Vec::new()),
    })
}

/// `f(i)` for `i < n`, the two of a pair on two threads.
fn map_nets<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    if n == 2 {
        let (a, b) = super::kernels::join(|| f(0), || f(1));
        vec![a, b]
    } else {
        (0..n).map(f).collect()
    }
}

/// The op behind [`frozen_mlps`]; the tapes of its forward pass are kept for the backward.
struct FrozenMlps {
    nets: Vec<Vec<Tensor>>,
    widths: Vec<usize>,
    relu: bool,
    tapes: Mutex<Vec<MlpTape>>,
}

impl FrozenMlps {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<MlpTape>>> {
        self.tapes
            .lock()
            .map_err(|_| candle_core::Error::Msg("frozen mlps: poisoned tape".into()))
    }
}

impl CustomOp1 for FrozenMlps {
    fn name(&self) -> &'static str {
        "stackrl-frozen-mlps"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("frozen mlps: contiguous input expected");
        };
        let x = match s {
            CpuStorage::F32(v) => Tensor::from_slice(&v[start..end], l.shape(), &Device::Cpu)?,
            CpuStorage::F64(v) => Tensor::from_slice(&v[start..end], l.shape(), &Device::Cpu)?,
            _ => candle_core::bail!("frozen mlps: f32 or f64 input"),
        };
        let tapes = map_nets(self.nets.len(), |i| {
            MlpTape::forward_weights(&self.nets[i], self.relu, &x)
        })
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        let outs: Vec<&Tensor> = tapes.iter().map(|t| &t.output).collect();
        let out = if outs.len() == 1 {
            outs[0].clone()
        } else {
            Tensor::cat(&outs, 1)?
        };
        let storage = match out.dtype() {
            DType::F32 => CpuStorage::F32(out.flatten_all()?.to_vec1::<f32>()?),
            _ => CpuStorage::F64(out.flatten_all()?.to_vec1::<f64>()?),
        };
        *self.lock()? = tapes;
        Ok((storage, out.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let tapes = self.lock()?;
        if tapes.len() != self.nets.len() {
            candle_core::bail!("frozen mlps: backward before forward");
        }
        let mut offsets = Vec::with_capacity(self.widths.len());
        let mut at = 0;
        for w in &self.widths {
            offsets.push(at);
            at += w;
        }
        let part = |i: usize| grad.narrow(1, offsets[i], self.widths[i]);
        let gx: Vec<Tensor> = if !grad.track_op() {
            map_nets(self.nets.len(), |i| -> Result<Tensor> {
                let g = part(i)?.contiguous()?;
                let (_, gx) = tapes[i].backward_weights(&self.nets[i], &g, false, true)?;
                gx.ok_or_else(|| candle_core::Error::Msg("frozen mlps: no input gradient".into()))
            })
            .into_iter()
            .collect::<Result<_>>()?
        } else {
            // Differentiable form of the same backward pass: g ← (g ⊙ mask_l) W_l.
            let mut out = Vec::with_capacity(self.nets.len());
            for (i, (weights, tape)) in self.nets.iter().zip(tapes.iter()).enumerate() {
                let mut g = part(i)?;
                let layers = weights.len() / 2;
                for l in (0..layers).rev() {
                    if self.relu && l + 1 < layers {
                        let h = match &tape.cache {
                            Typed::F32(c) => {
                                Tensor::from_slice(&c.acts[l + 1], g.shape(), g.device())?
                            }
                            Typed::F64(c) => {
                                Tensor::from_slice(&c.acts[l + 1], g.shape(), g.device())?
                            }
                        };
                        let mask = h.gt(0.0)?.to_dtype(g.dtype())?;
                        g = (g * mask)?;
                    }
                    g = g.matmul(&weights[2 * l])?;
                }
                out.push(g);
            }
            out
        };
        let mut sum = gx[0].clone();
        for g in &gx[1..] {
            sum = (sum + g)?;
        }
        Ok(Some(sum))
    }
}
