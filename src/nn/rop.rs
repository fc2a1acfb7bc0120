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

use candle_core::{D, Result, Tensor};

use super::activation::Activation;
use super::linear::{column_sum, linear};
use super::mlp::Mlp;

/// Which terms of the squared-error Hessian [`MlpCurvature`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residual {
    /// The exact Hessian, including the `(f − y) ∇²f` term.
    Exact,
    /// The Gauss-Newton part `scale Σ_b ∇f_b ∇f_bᵀ` (the residual treated as zero).
    Zero,
}

/// One layer's cached quantities.
struct Layer {
    w: Tensor,
    /// `h_{l−1}`, the layer's input.
    input: Tensor,
    /// `σ'_l`; `None` for the identity.
    d1: Option<Tensor>,
    /// `g_l ⊙ σ''_l` (the residual's second-derivative weight); `None` when zero.
    g_d2: Option<Tensor>,
    /// `δ_l = g_l ⊙ σ'_l`; `None` under [`Residual::Zero`].
    delta: Option<Tensor>,
}

/// The forward and backward pass of a scalar-output [`Mlp`] on a fixed batch, cached for
/// repeated exact Hessian-vector and Jacobian-vector products (see the module docs).
pub struct MlpCurvature {
    layers: Vec<Layer>,
    out: Tensor,
    scale: f64,
}

impl std::fmt::Debug for MlpCurvature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlpCurvature")
            .field("layers", &self.layers.len())
            .field("scale", &self.scale)
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

impl MlpCurvature {
    /// Runs `net` on `x [N, in]` (detached weights) and backpropagates
    /// `L = (scale/2) Σ_b (f(x_b) − y_b)²` for targets `y [N]`, caching what every
    /// product needs. Errors unless `net` has one output and `x`, `y` fit.
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
        let cfg = net.config();
        let vars = net.vars();
        let count = vars.len() / 2;
        let mut layers = Vec::with_capacity(count);
        let mut acts = Vec::with_capacity(count);
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
            layers.push(Layer {
                w,
                input: h,
                d1,
                g_d2: None,
                delta: None,
            });
            acts.push(d2);
            h = next;
        }
        let out = h.squeeze(D::Minus1)?;
        if residual == Residual::Exact {
            // g_L = scale (f − y), then δ_l = g_l ⊙ σ'_l, g_{l−1} = δ_l W_l.
            let mut g = ((&out - y.detach())? * scale)?.unsqueeze(1)?;
            for i in (0..count).rev() {
                let l = &mut layers[i];
                l.g_d2 = match &acts[i] {
                    Some(d2) => Some((&g * d2)?),
                    None => None,
                };
                let delta = mul_opt(g, &l.d1)?;
                // g_{l−1} (not needed below the first layer: the input is constant).
                g = if i > 0 {
                    delta.matmul(&l.w)?
                } else {
                    delta.clone()
                };
                l.delta = Some(delta);
            }
        }
        Ok(Self { layers, out, scale })
    }

    /// `f(x)`, `[N]`.
    pub fn output(&self) -> &Tensor {
        &self.out
    }

    /// Number of `[w, b]` layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn check_direction(&self, v: &[Tensor]) -> Result<()> {
        if v.len() != 2 * self.layers.len() {
            candle_core::bail!(
                "MlpCurvature: {} direction tensors for {} layers",
                v.len(),
                self.layers.len()
            );
        }
        for (i, l) in self.layers.iter().enumerate() {
            let (o, _) = l.w.dims2()?;
            if v[2 * i].shape() != l.w.shape() || v[2 * i + 1].dims() != [o] {
                candle_core::bail!(
                    "MlpCurvature: direction {:?}/{:?} for a layer of shape {:?}",
                    v[2 * i].dims(),
                    v[2 * i + 1].dims(),
                    l.w.dims()
                );
            }
        }
        Ok(())
    }

    /// The R-forward pass: `R{z_l}` for every layer.
    fn r_forward(&self, v: &[Tensor]) -> Result<Vec<Tensor>> {
        self.check_direction(v)?;
        let mut rz: Vec<Tensor> = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (vw, vb) = (v[2 * i].detach(), v[2 * i + 1].detach());
            // h_{l−1} V_lᵀ + c_l by the fused op (bias pre-filled, one product).
            let mut z = linear(&l.input, &vw, &vb, Activation::Identity)?;
            if i > 0 {
                let prev = &self.layers[i - 1];
                let rh = mul_opt(rz[i - 1].clone(), &prev.d1)?;
                z = (z + rh.matmul(&l.w.t()?)?)?;
            }
            rz.push(z);
        }
        Ok(rz)
    }

    /// The Jacobian-vector product `∇_w f(x_b) · v` for every sample, `[N]` (`v` one tensor
    /// per variable, in [`Mlp::vars`] order).
    pub fn jvp(&self, v: &[Tensor]) -> Result<Tensor> {
        let rz = self.r_forward(v)?;
        self.r_out(&rz)
    }

    fn r_out(&self, rz: &[Tensor]) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        mul_opt(rz[last].clone(), &self.layers[last].d1)?.squeeze(D::Minus1)
    }

    /// `(∂²L/∂w²) v` (one tensor per variable) and the JVP `∇_w f · v` (`[N]`, free from the
    /// R-forward pass).
    pub fn hvp_jvp(&self, v: &[Tensor]) -> Result<(Vec<Tensor>, Tensor)> {
        let rz = self.r_forward(v)?;
        let count = self.layers.len();
        let mut out = vec![None; 2 * count];
        // R{g_L} = scale R{h_L}.
        let mut rg = (mul_opt(rz[count - 1].clone(), &self.layers[count - 1].d1)? * self.scale)?;
        for i in (0..count).rev() {
            let l = &self.layers[i];
            let mut rdelta = mul_opt(rg, &l.d1)?;
            if let Some(gd2) = &l.g_d2 {
                rdelta = (rdelta + (gd2 * &rz[i])?)?;
            }
            let mut gw = rdelta.t()?.matmul(&l.input)?;
            if i > 0 {
                let prev = &self.layers[i - 1];
                let rh_prev = mul_opt(rz[i - 1].clone(), &prev.d1)?;
                if let Some(delta) = &l.delta {
                    gw = (gw + delta.t()?.matmul(&rh_prev)?)?;
                }
                out[2 * i + 1] = Some(column_sum(&rdelta)?);
                rg = rdelta.matmul(&l.w)?;
                if let Some(delta) = &l.delta {
                    rg = (rg + delta.matmul(&v[2 * i].detach())?)?;
                }
            } else {
                // The input is constant: no R{g_0}.
                out[1] = Some(column_sum(&rdelta)?);
                out[0] = Some(gw);
                break;
            }
            out[2 * i] = Some(gw);
        }
        let hv = out
            .into_iter()
            .map(|t| t.ok_or_else(|| candle_core::Error::Msg("MlpCurvature: missing".into())))
            .collect::<Result<Vec<_>>>()?;
        Ok((hv, self.r_out(&rz)?))
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
    shapes: Vec<Vec<candle_core::Shape>>,
}

impl CurvatureBlocks {
    /// Each network with its cached passes; `shapes[i]` are the shapes of network `i`'s
    /// variables (its [`Mlp::vars`]).
    pub fn new(nets: Vec<MlpCurvature>, shapes: Vec<Vec<candle_core::Shape>>) -> Result<Self> {
        if nets.is_empty() || nets.len() != shapes.len() {
            candle_core::bail!(
                "CurvatureBlocks: {} networks, {} shape lists",
                nets.len(),
                shapes.len()
            );
        }
        for (n, s) in nets.iter().zip(&shapes) {
            if s.len() != 2 * n.num_layers() {
                candle_core::bail!(
                    "CurvatureBlocks: {} shapes for {} layers",
                    s.len(),
                    n.num_layers()
                );
            }
        }
        Ok(Self { nets, shapes })
    }

    /// Splits a flat vector into per-network, per-variable tensors.
    fn split(&self, v: &Tensor) -> Result<Vec<Vec<Tensor>>> {
        let n = v.dims1()?;
        let total: usize = self.shapes.iter().flatten().map(|s| s.elem_count()).sum();
        if n != total {
            candle_core::bail!("CurvatureBlocks: vector of {n} for {total} parameters");
        }
        let mut off = 0;
        let mut out = Vec::with_capacity(self.nets.len());
        for shapes in &self.shapes {
            let mut parts = Vec::with_capacity(shapes.len());
            for s in shapes {
                let k = s.elem_count();
                parts.push(v.narrow(0, off, k)?.reshape(s.clone())?);
                off += k;
            }
            out.push(parts);
        }
        Ok(out)
    }

    /// `H v` for flat `v`, flat.
    pub fn hvp(&self, v: &Tensor) -> Result<Tensor> {
        let v = v.detach();
        let mut parts = Vec::new();
        for (net, vi) in self.nets.iter().zip(self.split(&v)?) {
            for t in net.hvp(&vi)? {
                parts.push(t.flatten_all()?);
            }
        }
        Tensor::cat(&parts, 0)
    }

    /// The per-sample Jacobian-vector products `∇f_i(x_b) · u_i` of every network `i`, each
    /// `[N]`.
    pub fn jvps(&self, u: &Tensor) -> Result<Vec<Tensor>> {
        let u = u.detach();
        self.nets
            .iter()
            .zip(self.split(&u)?)
            .map(|(net, ui)| net.jvp(&ui))
            .collect()
    }
}
