//! Exact curvature products of an MLP's squared-error loss by Pearlmutter's R-operator
//! (forward-over-reverse), written directly on the layer products: the fast path behind
//! Stack-SAC's and STAC's Hessian-vector products (see [`crate::autodiff::CurvatureEngine`]).
//!
//! For a scalar-output [`Mlp`] `f_w` on a fixed input batch `x` and fixed targets `y`,
//!
//! `L(w) = (scale / 2) Σ_b (f_w(x_b) − y_b)²`
//!
//! (`scale = 1/N` gives Stack-SAC's `½ E[(Q − y)²]`, `2/N` STAC's `E[(V − G)²]`). With
//! `z_l = h_{l−1} W_lᵀ + b_l`, `h_l = σ_l(z_l)`, `h_0 = x`, the gradient is the usual backward
//! pass `g_L = scale (f − y)`, `δ_l = g_l ⊙ σ'_l`, `∂W_l = δ_lᵀ h_{l−1}`, `∂b_l = Σ_b δ_l`,
//! `g_{l−1} = δ_l W_l`. Applying the directional derivative `R{·} = d/dt|_{w + t v}` to every
//! line (Pearlmutter 1994) gives `H v` exactly:
//!
//! ```text
//! R-forward:  R{z_l} = R{h_{l−1}} W_lᵀ + h_{l−1} V_lᵀ + c_l,   R{h_l} = σ'_l ⊙ R{z_l},  R{h_0} = 0
//! R-backward: R{g_L} = scale R{h_L}
//!             R{δ_l} = R{g_l} ⊙ σ'_l + g_l ⊙ σ''_l ⊙ R{z_l}
//!             R{∂W_l} = R{δ_l}ᵀ h_{l−1} + δ_lᵀ R{h_{l−1}},   R{∂b_l} = Σ_b R{δ_l}
//!             R{g_{l−1}} = R{δ_l} W_l + δ_l V_l
//! ```
//!
//! (`v = (V_l, c_l)` per layer). Everything that does not depend on `v` — the activations
//! `h_l`, `σ'_l`, `σ''_l`, the backward quantities `g_l`, `δ_l` — is computed once in
//! [`MlpCurvature::new`] and reused by every product: within a CG solve the weights do not
//! change, so each product costs one pass of matrix products forward and one backward
//! (per hidden `n×n` layer: 2 + 4 products of the batch with an `n×n` matrix) and no graph.
//! The products are Candle matmuls on detached tensors; the forward reuses the fused layer op
//! of [`super::linear`], so `f` is bit-identical to [`Mlp::forward`].
//!
//! [`Residual::Zero`] drops every term carrying the residual `f − y` (`g_l = δ_l = 0`): that is
//! the Gauss-Newton matrix `scale Σ_b ∇f_b ∇f_bᵀ`, the Hessian of the same loss at `y = f`.
//!
//! The second derivatives follow the activations' backward rules, so that the products equal
//! Candle's double backward: ReLU `σ' = 1[h > 0]`, `σ'' = 0`; tanh (exact or
//! [`super::fast_tanh`]) `σ' = 1 − h²`, `σ'' = −2h(1 − h²)` in terms of the output `h`.

use candle_core::{D, DType, Result, Tensor, WithDType};

use super::activation::Activation;
use super::kernels::gemm_into;
use super::linear::linear;
use super::mlp::Mlp;

/// Which terms of the squared-error Hessian [`MlpCurvature`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residual {
    /// The exact Hessian, including the `(f − y) ∇²f` term.
    Exact,
    /// The Gauss-Newton part `scale Σ_b ∇f_b ∇f_bᵀ` (the residual treated as zero).
    Zero,
}

/// One layer's cached quantities, row-major.
struct Layer<T> {
    /// `[out, in]`.
    out: usize,
    inp: usize,
    w: Vec<T>,
    /// `h_{l−1}`, `[N, in]`.
    input: Vec<T>,
    /// `σ'_l`, `[N, out]`; `None` for the identity.
    d1: Option<Vec<T>>,
    /// `g_l ⊙ σ''_l`, `[N, out]`; `None` when zero.
    g_d2: Option<Vec<T>>,
    /// `δ_l = g_l ⊙ σ'_l`, `[N, out]`; `None` under [`Residual::Zero`].
    delta: Option<Vec<T>>,
}

/// The cache in one dtype.
struct Cache<T> {
    n: usize,
    layers: Vec<Layer<T>>,
    scale: T,
}

enum Typed {
    F32(Cache<f32>),
    F64(Cache<f64>),
}

/// The forward and backward pass of a scalar-output [`Mlp`] on a fixed batch, cached for
/// repeated exact Hessian-vector and Jacobian-vector products (see the module docs).
pub struct MlpCurvature {
    cache: Typed,
    out: Tensor,
    /// Parameters per layer `(w, b)` element counts, in [`Mlp::vars`] order.
    sizes: Vec<(usize, usize)>,
    dtype: DType,
}

impl std::fmt::Debug for MlpCurvature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlpCurvature")
            .field("layers", &self.sizes.len())
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// `σ'` and `σ''` of `act` in terms of its output `h` (`None`: 1 resp. 0).
fn derivatives(act: Activation, h: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    Ok(match act {
        Activation::Identity => (None, None),
        // The fused layer's mask: `h > 0` (see `linear::ReluGrad`).
        Activation::Relu => (Some(h.gt(0.0)?.to_dtype(h.dtype())?), None),
        Activation::Tanh | Activation::FastTanh => {
            let d1 = h.sqr()?.affine(-1.0, 1.0)?;
            let d2 = (h * &d1)?.affine(-2.0, 0.0)?;
            (Some(d1), Some(d2))
        }
    })
}

fn mul_opt(a: Tensor, b: &Option<Tensor>) -> Result<Tensor> {
    match b {
        Some(b) => a * b,
        None => Ok(a),
    }
}

fn to_vec<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

fn opt_vec<T: WithDType>(t: &Option<Tensor>) -> Result<Option<Vec<T>>> {
    t.as_ref().map(to_vec).transpose()
}

fn mul_in_place<T: WithDType>(x: &mut [T], d: &Option<Vec<T>>) {
    if let Some(d) = d {
        for (x, d) in x.iter_mut().zip(d) {
            *x *= *d;
        }
    }
}

impl<T: WithDType> Cache<T> {
    fn numel(&self) -> usize {
        self.layers.iter().map(|l| l.out * l.inp + l.out).sum()
    }

    /// R-forward: `R{z_l}` and `R{h_l}` of every layer for the flat direction `v`.
    /// R-forward on the first `n` rows.
    fn r_forward(&self, v: &[T], n: usize) -> (Vec<Vec<T>>, Vec<Vec<T>>) {
        let mut rz: Vec<Vec<T>> = Vec::with_capacity(self.layers.len());
        let mut rh: Vec<Vec<T>> = Vec::with_capacity(self.layers.len());
        let mut off = 0;
        for (i, l) in self.layers.iter().enumerate() {
            let (vw, vb) = (
                &v[off..off + l.out * l.inp],
                &v[off + l.out * l.inp..off + l.out * l.inp + l.out],
            );
            off += l.out * l.inp + l.out;
            // c_l + h_{l−1} V_lᵀ + R{h_{l−1}} W_lᵀ.
            let mut z = Vec::with_capacity(n * l.out);
            for _ in 0..n {
                z.extend_from_slice(vb);
            }
            gemm_into(
                (n, l.out, l.inp),
                &mut z,
                true,
                &l.input,
                (l.inp, 1),
                vw,
                (1, l.inp),
            );
            if i > 0 {
                gemm_into(
                    (n, l.out, l.inp),
                    &mut z,
                    true,
                    &rh[i - 1],
                    (l.inp, 1),
                    &l.w,
                    (1, l.inp),
                );
            }
            let mut h = z.clone();
            mul_in_place(&mut h, &l.d1);
            rz.push(z);
            rh.push(h);
        }
        (rz, rh)
    }

    /// `H v` into `out` (flat, same layout as `v`) and the JVP `R{f}`, on the first `n` rows
    /// (all `self.n`: exact; fewer: the sub-sampled Hessian, rescaled to the same mean).
    fn hvp(&self, v: &[T], out: &mut [T], n: usize) -> Vec<T> {
        let (rz, rh) = self.r_forward(v, n);
        let count = self.layers.len();
        let jvp = rh[count - 1].clone();
        // R{g_L} = scale R{h_L}.
        let mut rg: Vec<T> = jvp.iter().map(|x| *x * self.scale).collect();
        let mut end = out.len();
        for i in (0..count).rev() {
            let l = &self.layers[i];
            let (wn, bn) = (l.out * l.inp, l.out);
            let (w_off, b_off) = (end - wn - bn, end - bn);
            // R{δ_l} = R{g_l} ⊙ σ'_l + g_l σ''_l ⊙ R{z_l}, in place in rg.
            let mut rdelta = rg;
            mul_in_place(&mut rdelta, &l.d1);
            if let Some(gd2) = &l.g_d2 {
                for ((r, g), z) in rdelta.iter_mut().zip(gd2).zip(&rz[i]) {
                    *r += *g * *z;
                }
            }
            // R{∂W_l} = R{δ_l}ᵀ h_{l−1} + δ_lᵀ R{h_{l−1}}.
            let gw = &mut out[w_off..w_off + wn];
            gemm_into(
                (l.out, l.inp, n),
                gw,
                false,
                &rdelta,
                (1, l.out),
                &l.input,
                (l.inp, 1),
            );
            if i > 0
                && let Some(delta) = &l.delta
            {
                gemm_into(
                    (l.out, l.inp, n),
                    gw,
                    true,
                    delta,
                    (1, l.out),
                    &rh[i - 1],
                    (l.inp, 1),
                );
            }
            // R{∂b_l} = Σ_b R{δ_l}.
            let gb = &mut out[b_off..b_off + bn];
            gb.fill(T::zero());
            for row in rdelta.chunks_exact(l.out) {
                for (a, x) in gb.iter_mut().zip(row) {
                    *a += *x;
                }
            }
            end = w_off;
            if i == 0 {
                break; // the input is constant: no R{g_0}
            }
            // R{g_{l−1}} = R{δ_l} W_l + δ_l V_l.
            let mut next = vec![T::zero(); n * l.inp];
            gemm_into(
                (n, l.inp, l.out),
                &mut next,
                false,
                &rdelta,
                (l.out, 1),
                &l.w,
                (l.inp, 1),
            );
            if let Some(delta) = &l.delta {
                let vw = &v[w_off..w_off + wn];
                gemm_into(
                    (n, l.inp, l.out),
                    &mut next,
                    true,
                    delta,
                    (l.out, 1),
                    vw,
                    (l.inp, 1),
                );
            }
            rg = next;
        }
        if n < self.n {
            // Every term is linear in `scale` (1/N): rescale to the sub-sample's mean.
            let f = T::from_f64(self.n as f64 / n as f64);
            for o in out.iter_mut() {
                *o *= f;
            }
        }
        jvp
    }
}

fn check_len(v: usize, want: usize) -> Result<()> {
    if v != want {
        candle_core::bail!("MlpCurvature: direction of {v} scalars for {want} parameters");
    }
    Ok(())
}

impl MlpCurvature {
    /// Runs `net` on `x [N, in]` (detached weights) and backpropagates
    /// `L = (scale/2) Σ_b (f(x_b) − y_b)²` for targets `y [N]`, caching what every
    /// product needs. Errors unless `net` has one output, an f32 or f64 dtype, and `x`, `y`
    /// fit.
    pub fn new(net: &Mlp, x: &Tensor, y: &Tensor, scale: f64, residual: Residual) -> Result<Self> {
        if net.out_dim() != 1 {
            candle_core::bail!(
                "MlpCurvature: needs a scalar-output network, got {} outputs",
                net.out_dim()
            );
        }
        let n = x.dim(0)?;
        if y.dims() != [n] {
            candle_core::bail!("MlpCurvature: targets {:?} for {n} inputs", y.dims());
        }
        if !scale.is_finite() {
            candle_core::bail!("MlpCurvature: non-finite scale {scale}");
        }
        let dtype = x.dtype();
        let cfg = net.config();
        let vars = net.vars();
        let count = vars.len() / 2;
        // Candle pass: forward with the fused layer op (bit-identical to `Mlp::forward`),
        // then the residual's backward pass.
        let mut inputs = Vec::with_capacity(count);
        let mut weights = Vec::with_capacity(count);
        let mut d1s = Vec::with_capacity(count);
        let mut d2s = Vec::with_capacity(count);
        let mut h = x.detach();
        for i in 0..count {
            let act = if i + 1 == count {
                cfg.output_activation
            } else {
                cfg.hidden_activation
            };
            let w = vars[2 * i].as_tensor().detach();
            let b = vars[2 * i + 1].as_tensor().detach();
            let next = linear(&h, &w, &b, act)?;
            let (d1, d2) = derivatives(act, &next)?;
            inputs.push(h);
            weights.push(w);
            d1s.push(d1);
            d2s.push(d2);
            h = next;
        }
        let out = h.squeeze(D::Minus1)?;
        let mut g_d2s: Vec<Option<Tensor>> = vec![None; count];
        let mut deltas: Vec<Option<Tensor>> = vec![None; count];
        if residual == Residual::Exact {
            // g_L = scale (f − y), then δ_l = g_l ⊙ σ'_l, g_{l−1} = δ_l W_l.
            let mut g = ((&out - y.detach())? * scale)?.unsqueeze(1)?;
            for i in (0..count).rev() {
                g_d2s[i] = match &d2s[i] {
                    Some(d2) => Some((&g * d2)?),
                    None => None,
                };
                let delta = mul_opt(g, &d1s[i])?;
                g = if i > 0 {
                    delta.matmul(&weights[i])?
                } else {
                    delta.clone()
                };
                deltas[i] = Some(delta);
            }
        }
        fn build<T: WithDType>(
            n: usize,
            scale: f64,
            parts: (&[Tensor], &[Tensor], &[Option<Tensor>]),
            g_d2s: &[Option<Tensor>],
            deltas: &[Option<Tensor>],
        ) -> Result<Cache<T>> {
            let (inputs, weights, d1s) = parts;
            let mut layers = Vec::with_capacity(weights.len());
            for i in 0..weights.len() {
                let (out, inp) = weights[i].dims2()?;
                layers.push(Layer {
                    out,
                    inp,
                    w: to_vec(&weights[i])?,
                    input: to_vec(&inputs[i])?,
                    d1: opt_vec(&d1s[i])?,
                    g_d2: opt_vec(&g_d2s[i])?,
                    delta: opt_vec(&deltas[i])?,
                });
            }
            Ok(Cache {
                n,
                layers,
                scale: T::from_f64(scale),
            })
        }
        let parts = (&inputs[..], &weights[..], &d1s[..]);
        let cache = match dtype {
            DType::F32 => Typed::F32(build(n, scale, parts, &g_d2s, &deltas)?),
            DType::F64 => Typed::F64(build(n, scale, parts, &g_d2s, &deltas)?),
            other => candle_core::bail!("MlpCurvature: f32 or f64 only, got {other:?}"),
        };
        let sizes = weights
            .iter()
            .map(|w| {
                let (o, i) = w.dims2()?;
                Ok((o * i, o))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cache,
            out,
            sizes,
            dtype,
        })
    }

    /// `f(x)`, `[N]`.
    pub fn output(&self) -> &Tensor {
        &self.out
    }

    /// Number of `[w, b]` layers.
    pub fn num_layers(&self) -> usize {
        self.sizes.len()
    }

    /// Number of parameters.
    pub fn numel(&self) -> usize {
        match &self.cache {
            Typed::F32(c) => c.numel(),
            Typed::F64(c) => c.numel(),
        }
    }

    fn flat_direction(&self, v: &[Tensor]) -> Result<Tensor> {
        if v.len() != 2 * self.sizes.len() {
            candle_core::bail!(
                "MlpCurvature: {} direction tensors for {} layers",
                v.len(),
                self.sizes.len()
            );
        }
        for (i, (wn, bn)) in self.sizes.iter().enumerate() {
            if v[2 * i].elem_count() != *wn || v[2 * i + 1].dims() != [*bn] {
                candle_core::bail!(
                    "MlpCurvature: direction {:?}/{:?} for layer {i}",
                    v[2 * i].dims(),
                    v[2 * i + 1].dims()
                );
            }
        }
        let flat = v
            .iter()
            .map(|t| t.detach().flatten_all())
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)?.to_dtype(self.dtype)
    }

    fn unflat(&self, flat: &Tensor, like: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut off = 0;
        like.iter()
            .map(|t| {
                let k = t.elem_count();
                let r = flat.narrow(0, off, k)?.reshape(t.shape());
                off += k;
                r
            })
            .collect()
    }

    /// `H v` and the JVP for a flat direction (a 1-D tensor of [`MlpCurvature::numel`]).
    pub fn hvp_jvp_flat(&self, v: &Tensor) -> Result<(Tensor, Tensor)> {
        self.hvp_jvp_rows(v, self.out.elem_count())
    }

    /// As [`MlpCurvature::hvp_jvp_flat`] with the Hessian taken on the first `rows` rows of
    /// the batch only, scaled to the same mean (`(N/rows)` times their terms; sub-sampled
    /// curvature, Martens 2010); the JVP covers those rows.
    pub fn hvp_jvp_rows(&self, v: &Tensor, rows: usize) -> Result<(Tensor, Tensor)> {
        let dev = v.device();
        let n_out = self.out.elem_count();
        if rows == 0 || rows > n_out {
            candle_core::bail!("MlpCurvature: {rows} rows of a batch of {n_out}");
        }
        let n_out = rows;
        match &self.cache {
            Typed::F32(c) => {
                let v = v.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                check_len(v.len(), c.numel())?;
                let mut out = vec![0f32; v.len()];
                let jvp = c.hvp(&v, &mut out, rows);
                let p = out.len();
                Ok((
                    Tensor::from_vec(out, p, dev)?,
                    Tensor::from_vec(jvp, n_out, dev)?,
                ))
            }
            Typed::F64(c) => {
                let v = v.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                check_len(v.len(), c.numel())?;
                let mut out = vec![0f64; v.len()];
                let jvp = c.hvp(&v, &mut out, rows);
                let p = out.len();
                Ok((
                    Tensor::from_vec(out, p, dev)?,
                    Tensor::from_vec(jvp, n_out, dev)?,
                ))
            }
        }
    }

    /// The JVP `∇_w f(x_b) · v` for every sample, `[N]`, for a flat direction.
    pub fn jvp_flat(&self, v: &Tensor) -> Result<Tensor> {
        let dev = v.device();
        let n_out = self.out.elem_count();
        match &self.cache {
            Typed::F32(c) => {
                let v = v.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                check_len(v.len(), c.numel())?;
                let (_, rh) = c.r_forward(&v, c.n);
                Tensor::from_vec(rh[rh.len() - 1].clone(), n_out, dev)
            }
            Typed::F64(c) => {
                let v = v.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                check_len(v.len(), c.numel())?;
                let (_, rh) = c.r_forward(&v, c.n);
                Tensor::from_vec(rh[rh.len() - 1].clone(), n_out, dev)
            }
        }
    }

    /// The Jacobian-vector product `∇_w f(x_b) · v` for every sample, `[N]` (`v` one tensor
    /// per variable, in [`Mlp::vars`] order).
    pub fn jvp(&self, v: &[Tensor]) -> Result<Tensor> {
        self.jvp_flat(&self.flat_direction(v)?)
    }

    /// `(∂²L/∂w²) v` (one tensor per variable) and the JVP `∇_w f · v` (`[N]`, free from the
    /// R-forward pass).
    pub fn hvp_jvp(&self, v: &[Tensor]) -> Result<(Vec<Tensor>, Tensor)> {
        let (hv, jvp) = self.hvp_jvp_flat(&self.flat_direction(v)?)?;
        Ok((self.unflat(&hv, v)?, jvp))
    }

    /// `(∂²L/∂w²) v`, one tensor per variable.
    pub fn hvp(&self, v: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(self.hvp_jvp(v)?.0)
    }
}

/// Independent networks whose losses add (e.g. the twin critics `Q_1`, `Q_2`): the Hessian
/// is block-diagonal, and products take and return flat vectors over all their variables in
/// order (as [`crate::autodiff::flatten`] lays them out).
#[derive(Debug)]
pub struct CurvatureBlocks {
    nets: Vec<MlpCurvature>,
    rows: Option<usize>,
}

impl CurvatureBlocks {
    /// The networks with their cached passes, in variable order.
    pub fn new(nets: Vec<MlpCurvature>) -> Result<Self> {
        if nets.is_empty() {
            candle_core::bail!("CurvatureBlocks: no networks");
        }
        Ok(Self { nets, rows: None })
    }

    /// Takes the Hessian-vector products on the first `rows` rows of the batch only (see
    /// [`MlpCurvature::hvp_jvp_rows`]); the JVPs still cover the whole batch.
    pub fn with_hvp_rows(mut self, rows: usize) -> Result<Self> {
        let n = self.nets[0].output().elem_count();
        if rows == 0 || rows > n {
            candle_core::bail!("CurvatureBlocks: {rows} rows of a batch of {n}");
        }
        self.rows = Some(rows);
        Ok(self)
    }

    /// Total number of parameters.
    pub fn numel(&self) -> usize {
        self.nets.iter().map(|n| n.numel()).sum()
    }

    fn parts(&self, v: &Tensor) -> Result<Vec<Tensor>> {
        let n = v.dims1()?;
        if n != self.numel() {
            candle_core::bail!(
                "CurvatureBlocks: vector of {n} for {} parameters",
                self.numel()
            );
        }
        let mut off = 0;
        self.nets
            .iter()
            .map(|net| {
                let k = net.numel();
                let part = v.narrow(0, off, k);
                off += k;
                part
            })
            .collect()
    }

    /// `H v` for flat `v`, flat.
    pub fn hvp(&self, v: &Tensor) -> Result<Tensor> {
        let vs = self.parts(&v.detach())?;
        let product = |i: usize| -> Result<Tensor> {
            let net = &self.nets[i];
            let rows = self.rows.unwrap_or(net.output().elem_count());
            Ok(net.hvp_jvp_rows(&vs[i], rows)?.0)
        };
        // Twin critics: the two blocks on the two threads when there are two.
        let parts = if self.nets.len() == 2 {
            let (a, b) = super::kernels::join(|| product(0), || product(1));
            vec![a?, b?]
        } else {
            (0..self.nets.len())
                .map(product)
                .collect::<Result<Vec<_>>>()?
        };
        if parts.len() == 1 {
            return Ok(parts[0].clone());
        }
        Tensor::cat(&parts, 0)
    }

    /// The per-sample Jacobian-vector products `∇f_i(x_b) · u_i` of every network `i`, each
    /// `[N]`.
    pub fn jvps(&self, u: &Tensor) -> Result<Vec<Tensor>> {
        self.nets
            .iter()
            .zip(self.parts(&u.detach())?)
            .map(|(net, ui)| net.jvp_flat(&ui))
            .collect()
    }
}
