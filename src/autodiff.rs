//! Second-order automatic differentiation on Candle: exact Hessian-vector products, mixed
//! second-derivative products, matrix-free conjugate gradient, and the Stackelberg (implicit)
//! gradient shared by Stack-SAC and STAC:
//!
//! `dJ/dθ = ∂J/∂θ − (∂²L/∂θ∂w) (∂²L/∂w² + λI)⁻¹ ∂J/∂w`
//!
//! (paper 000 eq. (18)-(19) with the Hessian regularisation of its Sec. 3.1; paper 001 eq. (38)
//! and its semi-gradient form eq. (43) with `η` in place of `λ`).
//!
//! # Candle's detach switch
//!
//! Candle's `Tensor::backward` (candle-core 0.11.1, `src/backprop.rs`) detaches every
//! intermediate gradient (`grad.detach()`) unless the environment variable
//! `CANDLE_GRAD_DO_NOT_DETACH` is non-empty and not `"0"`. The variable is read through a
//! `thread_local!` initialiser, i.e. **once per thread, at that thread's first backward pass**
//! (or `GradStore::extend`), and cached for the thread's lifetime. So it must be set before the
//! first backward pass of every thread that will take second derivatives;
//! [`enable_second_order`] sets it and verifies with a probe.
//!
//! Without it, a double backward does *not* fail: gradient tensors still reference the forward
//! tensors that the backward rules multiply by, so the second pass returns a silently wrong,
//! partial second derivative (for `x³` at `x = 1` it gives 4 instead of 6). Hence the probe
//! in [`check_second_order`], which every [`GradGraph`] runs once per thread.
//!
//! With the variable set, every backward pass (also first-order ones) records the graph of the
//! backward computation; it is freed when the gradients are dropped. Results returned by this
//! module are detached.
//!
//! Ops: everything in Candle's `backprop.rs` whose backward is written with tensor ops works
//! twice (covered by `tests/nn_autodiff.rs::second_order_op_coverage`: matmul, broadcast,
//! tanh, exp, log, sqrt, powf, minimum/clamp, `candle_nn::ops::{sigmoid, softmax,
//! log_softmax}`, and our `fast_tanh`, `softplus`, tanh log-Jacobian). Not
//! `candle_nn::ops::softmax_last_dim`: it records no graph, so gradients through it are
//! silently absent.
//!
//! # Use in the trainers
//!
//! * Stack-SAC (paper 001 eq. (43), `η = 0.5`): `θ` = actor variables, `w` = online critic
//!   variables, `critic_loss` = the soft Bellman loss with target networks (its `w`-Hessian is
//!   then the semi-gradient Hessian; `θ` enters through the sampled next action and its
//!   log-probability), `objective` = the actor objective, `λ = η`.
//! * STAC (paper 000 eq. (19), `λ` = 0 or 500): `critic_loss` = the critic loss `L(θ, w)`;
//!   `mixed_loss` = a surrogate whose `θ`-gradient is the Theorem 1 / Proposition 1 estimate
//!   of `∂L/∂θ`; `objective` = a surrogate whose `θ`-gradient is the policy-gradient estimate
//!   and whose `w`-gradient is eq. (20).
//!
//! Cost: one HVP is about two to four backward passes (measured in `tests/nn_timing.rs`).
//! The trainers use this generic path as the reference ([`CurvatureEngine::Autodiff`]); by
//! default they apply the same products by Pearlmutter's R-operator on cached MLP
//! activations ([`crate::nn::MlpCurvature`], no graph, no second-order switch needed) and
//! assemble the result with [`implicit_gradient`].

use std::cell::Cell;
use std::sync::Once;

use candle_core::{DType, Device, Result, Shape, Tensor, Var};

/// The environment variable that Candle reads to keep gradient graphs.
pub const DO_NOT_DETACH_ENV: &str = "CANDLE_GRAD_DO_NOT_DETACH";

static SET_ENV: Once = Once::new();

thread_local! {
    /// Whether the probe has passed in this thread (the Candle flag is per thread too).
    static PROBED_OK: Cell<bool> = const { Cell::new(false) };
}

fn env_enabled() -> bool {
    // Same rule as candle-core 0.11.1 backprop.rs.
    matches!(std::env::var(DO_NOT_DETACH_ENV), Ok(s) if !s.is_empty() && s != "0")
}

/// Turns on second-order gradients (sets `CANDLE_GRAD_DO_NOT_DETACH=1` unless it is already
/// set) and checks that they are live in the calling thread.
///
/// Call it first thing in `main` (or at the top of a test), before spawning threads and before
/// any backward pass. Why that is sound: `std::env::set_var` is `unsafe` because another thread
/// reading the environment *through libc* (`getenv` in C code, which bypasses Rust's
/// environment lock) at the same moment is a data race. At program start no other thread
/// exists; the variable is set at most once per process (guarded by a `Once`) and not at all if
/// it already has a truthy value, e.g. from the shell. Rust code reading the environment
/// concurrently (`std::env::var`, as Candle does) is synchronised by std's lock.
///
/// Errors if second derivatives are still not live in this thread: this thread already ran a
/// backward pass before the variable was set (Candle caches it per thread), or the variable is
/// set to `"0"`. Threads started later read the variable at their own first backward pass.
pub fn enable_second_order() -> Result<()> {
    if !env_enabled() {
        SET_ENV.call_once(|| {
            // SAFETY: see the doc comment: intended to run at program start before other
            // threads exist; no Rust-side data race is possible (std serialises env access).
            unsafe { std::env::set_var(DO_NOT_DETACH_ENV, "1") };
        });
    }
    check_second_order()
}

/// The probe value: the second derivative of `x³` at `x = 1` computed by a double backward
/// pass in the calling thread. It is `6` when second-order gradients are live (`4` when Candle
/// detaches intermediate gradients).
pub fn second_order_probe() -> Result<f64> {
    let x = Var::new(&[1f64], &Device::Cpu)?;
    let y = (x.as_tensor() * x.as_tensor())?
        .mul(x.as_tensor())?
        .sum_all()?;
    let g = y
        .backward()?
        .get(x.as_tensor())
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg("probe: no gradient".into()))?;
    let h = match g.sum_all()?.backward()?.get(x.as_tensor()) {
        Some(h) => h.to_vec1::<f64>()?[0],
        None => 0.0,
    };
    Ok(h)
}

/// Errors unless second-order gradients are live in the calling thread (the probe
/// [`second_order_probe`] returns 6). Caches success per thread.
pub fn check_second_order() -> Result<()> {
    if PROBED_OK.with(|c| c.get()) {
        return Ok(());
    }
    let h = second_order_probe()?;
    if (h - 6.0).abs() > 1e-12 {
        candle_core::bail!(
            "second-order gradients are not live in this thread (probe d²(x³)/dx² at 1 = {h}, \
             expected 6): set {DO_NOT_DETACH_ENV}=1 (autodiff::enable_second_order) before the \
             thread's first backward pass"
        );
    }
    PROBED_OK.with(|c| c.set(true));
    Ok(())
}

/// Concatenates tensors into one flat 1-D tensor (differentiable).
pub fn flatten(ts: &[Tensor]) -> Result<Tensor> {
    if ts.is_empty() {
        candle_core::bail!("flatten: no tensors");
    }
    let flat = ts
        .iter()
        .map(|t| t.flatten_all())
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&flat, 0)
}

/// Splits a flat 1-D tensor into tensors of the given shapes (inverse of [`flatten`]).
pub fn unflatten(flat: &Tensor, shapes: &[Shape]) -> Result<Vec<Tensor>> {
    let n = flat.dims1()?;
    let total: usize = shapes.iter().map(|s| s.elem_count()).sum();
    if n != total {
        candle_core::bail!("unflatten: {n} elements for shapes totalling {total}");
    }
    let mut out = Vec::with_capacity(shapes.len());
    let mut off = 0;
    for s in shapes {
        let k = s.elem_count();
        out.push(flat.narrow(0, off, k)?.reshape(s.clone())?);
        off += k;
    }
    Ok(out)
}

/// The shapes of a list of variables.
pub fn shapes_of(vars: &[Var]) -> Vec<Shape> {
    vars.iter().map(|v| v.shape().clone()).collect()
}

/// Total number of scalars in `vars`.
pub fn numel(vars: &[Var]) -> usize {
    vars.iter().map(|v| v.elem_count()).sum()
}

/// `a · b` of two equally shaped tensors, accumulated in f64.
pub fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.shape() != b.shape() {
        candle_core::bail!("dot: shapes {:?} vs {:?}", a.shape(), b.shape());
    }
    // CPU, contiguous, one float dtype: read the buffers in place (CG calls this twice per
    // iteration; converting both operands to f64 tensors first cost more than the sum).
    if let Some(d) = dot_in_place(a, b) {
        return Ok(d);
    }
    let (a, b) = if a.dtype() == DType::F64 {
        (a.detach(), b.detach())
    } else {
        (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?)
    };
    (a * b)?.sum_all()?.to_scalar::<f64>()
}

fn dot_in_place(a: &Tensor, b: &Tensor) -> Option<f64> {
    use candle_core::{CpuStorage, Storage};
    if a.id() == b.id() {
        // One read lock (`‖a‖²`, CG's residual norm).
        let (sa, la) = a.storage_and_layout();
        let (a0, a1) = la.contiguous_offsets()?;
        return match &*sa {
            Storage::Cpu(CpuStorage::F32(x)) => {
                Some(x[a0..a1].iter().map(|p| *p as f64 * *p as f64).sum())
            }
            Storage::Cpu(CpuStorage::F64(x)) => Some(x[a0..a1].iter().map(|p| p * p).sum()),
            _ => None,
        };
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let ((a0, a1), (b0, b1)) = (la.contiguous_offsets()?, lb.contiguous_offsets()?);
    match (&*sa, &*sb) {
        (Storage::Cpu(CpuStorage::F32(x)), Storage::Cpu(CpuStorage::F32(y))) => Some(
            x[a0..a1]
                .iter()
                .zip(&y[b0..b1])
                .map(|(p, q)| *p as f64 * *q as f64)
                .sum(),
        ),
        (Storage::Cpu(CpuStorage::F64(x)), Storage::Cpu(CpuStorage::F64(y))) => {
            Some(x[a0..a1].iter().zip(&y[b0..b1]).map(|(p, q)| p * q).sum())
        }
        _ => None,
    }
}

/// Collects `∂/∂v` for each `v` in `wrt` from a gradient store, flattened and concatenated
/// (zeros where `v` does not influence the differentiated quantity).
fn collect_flat(grads: &candle_core::backprop::GradStore, wrt: &[Var]) -> Result<Tensor> {
    let parts = wrt
        .iter()
        .map(|v| match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.as_tensor().zeros_like(),
        })
        .collect::<Result<Vec<_>>>()?;
    flatten(&parts)
}

/// First-order gradient of a scalar `loss` w.r.t. `wrt`, one detached tensor per variable
/// (zeros where the loss does not depend on it).
pub fn grads(loss: &Tensor, wrt: &[Var]) -> Result<Vec<Tensor>> {
    check_scalar(loss, "grads")?;
    let store = loss.backward()?;
    wrt.iter()
        .map(|v| match store.get(v.as_tensor()) {
            Some(g) => Ok(g.detach()),
            None => v.as_tensor().zeros_like(),
        })
        .collect()
}

fn check_scalar(loss: &Tensor, what: &str) -> Result<()> {
    if loss.elem_count() != 1 {
        candle_core::bail!(
            "{what}: loss must be a scalar, got shape {:?}",
            loss.shape()
        );
    }
    Ok(())
}

/// The gradient `g = ∂L/∂w` of a scalar loss with its autograd graph kept, so that products
/// with second derivatives can be formed repeatedly by backpropagating through `g · v`
/// (reverse-over-reverse; one backward pass through the double graph per product).
pub struct GradGraph {
    wrt: Vec<Var>,
    /// Flat `∂L/∂w` with graph.
    flat_grad: Tensor,
}

impl std::fmt::Debug for GradGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradGraph")
            .field("numel", &self.flat_grad.elem_count())
            .finish_non_exhaustive()
    }
}

impl GradGraph {
    /// Differentiates the scalar `loss` w.r.t. `wrt`, keeping the graph. Errors unless
    /// second-order gradients are live in this thread (see [`enable_second_order`]).
    pub fn new(loss: &Tensor, wrt: &[Var]) -> Result<Self> {
        check_second_order()?;
        check_scalar(loss, "GradGraph")?;
        if wrt.is_empty() {
            candle_core::bail!("GradGraph: no variables");
        }
        let store = loss.backward()?;
        let flat_grad = collect_flat(&store, wrt)?;
        Ok(Self {
            wrt: wrt.to_vec(),
            flat_grad,
        })
    }

    /// `∂L/∂w`, flat and detached.
    pub fn grad(&self) -> Tensor {
        self.flat_grad.detach()
    }

    /// Number of scalars in `w`.
    pub fn numel(&self) -> usize {
        self.flat_grad.elem_count()
    }

    /// `∂(g · v)/∂x` for a flat `v` (same length as `w`), flat over `x`: the product of `v`
    /// with the second derivatives `∂²L/∂x∂w`.
    pub fn vjp(&self, v: &Tensor, x: &[Var]) -> Result<Tensor> {
        if v.dims() != self.flat_grad.dims() {
            candle_core::bail!(
                "GradGraph: vector of shape {:?}, expected [{}]",
                v.dims(),
                self.numel()
            );
        }
        if x.is_empty() {
            candle_core::bail!("GradGraph::vjp: no variables");
        }
        let v = v.detach().to_dtype(self.flat_grad.dtype())?;
        let s = (&self.flat_grad * v)?.sum_all()?;
        let store = s.backward()?;
        Ok(collect_flat(&store, x)?.detach())
    }

    /// Hessian-vector product `(∂²L/∂w²) v`, flat.
    pub fn hvp(&self, v: &Tensor) -> Result<Tensor> {
        self.vjp(v, &self.wrt)
    }

    /// Mixed product `(∂²L/∂θ∂w) v = ∂_θ[(∂L/∂w) · v]`, flat over `theta`.
    pub fn mixed(&self, v: &Tensor, theta: &[Var]) -> Result<Tensor> {
        self.vjp(v, theta)
    }
}

/// Hessian-vector product `H v`, `H = ∂²L/∂w²`, of the scalar returned by `loss_fn`, with `v`
/// given per variable (same shapes as `params`). Returns one tensor per variable.
pub fn hvp<F>(loss_fn: F, params: &[Var], v: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: FnOnce() -> Result<Tensor>,
{
    let gg = GradGraph::new(&loss_fn()?, params)?;
    let flat_v = flatten_like(v, params, "hvp")?;
    unflatten(&gg.hvp(&flat_v)?, &shapes_of(params))
}

/// Mixed product `(∂²L/∂θ∂w) v = ∇_θ[(∂L/∂w) · v]` for `v` shaped like `w`; returns one tensor
/// per `θ` variable. This is the term multiplying the inverse Hessian in paper 000 eq. (19)
/// and, with the paper's transposed convention, `(∂_θ ∂_q J_q)^T v` in paper 001 eq. (43).
pub fn mixed_vp<F>(loss_fn: F, theta: &[Var], w: &[Var], v: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: FnOnce() -> Result<Tensor>,
{
    let gg = GradGraph::new(&loss_fn()?, w)?;
    let flat_v = flatten_like(v, w, "mixed_vp")?;
    unflatten(&gg.mixed(&flat_v, theta)?, &shapes_of(theta))
}

/// Transposed mixed product `(∂²L/∂w∂θ) u = ∇_w[(∂L/∂θ) · u]` for `u` shaped like `θ`;
/// returns one tensor per `w` variable (a Jacobian-vector product of the critic gradient).
pub fn mixed_vp_transpose<F>(
    loss_fn: F,
    theta: &[Var],
    w: &[Var],
    u: &[Tensor],
) -> Result<Vec<Tensor>>
where
    F: FnOnce() -> Result<Tensor>,
{
    let gg = GradGraph::new(&loss_fn()?, theta)?;
    let flat_u = flatten_like(u, theta, "mixed_vp_transpose")?;
    unflatten(&gg.vjp(&flat_u, w)?, &shapes_of(w))
}

fn flatten_like(v: &[Tensor], params: &[Var], what: &str) -> Result<Tensor> {
    if v.len() != params.len() {
        candle_core::bail!("{what}: {} vectors for {} variables", v.len(), params.len());
    }
    for (t, p) in v.iter().zip(params) {
        if t.shape() != p.shape() {
            candle_core::bail!("{what}: vector {:?} vs variable {:?}", t.shape(), p.shape());
        }
    }
    flatten(v)
}

/// How the trainers apply the critic's second derivatives (Hessian-vector and mixed
/// products of the Stackelberg gradient).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CurvatureEngine {
    /// Exact products by Pearlmutter's R-operator on the critic's cached activations
    /// ([`crate::nn::MlpCurvature`]: one pass of matrix products forward and one backward per
    /// product, no graph), and the mixed term as one first-order backward pass of a weighted
    /// surrogate. Same values as [`CurvatureEngine::Autodiff`] up to rounding; needs MLP
    /// critics (every critic this crate builds is one).
    #[default]
    Fast,
    /// Candle's reverse-over-reverse double backward ([`GradGraph`]): the reference, for any
    /// differentiable loss; needs [`enable_second_order`].
    Autodiff,
}

/// Conjugate-gradient options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgOptions {
    /// Maximum number of iterations (operator applications, not counting warm-start or the
    /// true-residual check).
    pub max_iters: usize,
    /// Stop when `‖r‖ / ‖b‖ <= rel_tol`.
    pub rel_tol: f64,
    /// Recompute `‖b − A x‖ / ‖b‖` with one extra operator application at the end instead of
    /// reporting the recursively updated residual (which can drift in f32).
    pub true_residual: bool,
}

impl Default for CgOptions {
    /// 10 iterations, `rel_tol = 1e-4`, recursive residual.
    fn default() -> Self {
        Self {
            max_iters: 10,
            rel_tol: 1e-4,
            true_residual: false,
        }
    }
}

/// Why conjugate gradient stopped.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CgStop {
    /// The relative residual reached the tolerance.
    Converged,
    /// `max_iters` iterations were used.
    MaxIterations,
    /// A search direction `p` had `pᵀAp <= 0`: `A` is not positive definite (e.g. the Hessian
    /// is indefinite and λ too small). `curvature` is `pᵀAp / pᵀp`.
    NonPositiveCurvature {
        /// Rayleigh quotient of the offending direction.
        curvature: f64,
    },
    /// `b = 0`: the solution is 0.
    ZeroRhs,
}

/// Result of [`conjugate_gradient`].
#[derive(Clone, Debug)]
pub struct CgResult {
    /// The returned iterate (flat, detached).
    pub x: Tensor,
    /// Iterations used (operator applications inside the loop).
    pub iterations: usize,
    /// Final relative residual `‖b − A x‖ / ‖b‖` (recursive unless `true_residual`).
    pub rel_residual: f64,
    /// Stopping reason.
    pub stop: CgStop,
}

/// Solves `A x = b` for symmetric `A` given only as `apply_a(v) = A v`, on flat 1-D tensors,
/// starting from `warm_start` (or 0).
///
/// On a direction of non-positive curvature (`pᵀAp <= 0`, possible when `A = H + λI` with an
/// indefinite Hessian and small λ) CG's step is undefined: it stops and returns the current
/// iterate, the minimiser of the quadratic model over the Krylov subspace explored so far, on
/// which `A` was still positive definite (the warm start, or 0, if this happens at the first
/// iteration), with [`CgStop::NonPositiveCurvature`] so the caller can react (e.g. raise λ).
/// Errors on non-finite values or shape mismatches.
pub fn conjugate_gradient<F>(
    mut apply_a: F,
    b: &Tensor,
    options: &CgOptions,
    warm_start: Option<&Tensor>,
) -> Result<CgResult>
where
    F: FnMut(&Tensor) -> Result<Tensor>,
{
    b.dims1()?;
    if !(options.rel_tol.is_finite() && options.rel_tol >= 0.0) {
        candle_core::bail!("conjugate_gradient: invalid rel_tol {}", options.rel_tol);
    }
    let b = b.detach();
    let mut apply = |v: &Tensor| -> Result<Tensor> {
        let av = apply_a(v)?;
        if av.shape() != v.shape() {
            candle_core::bail!(
                "conjugate_gradient: operator returned {:?} for {:?}",
                av.shape(),
                v.shape()
            );
        }
        Ok(av.detach())
    };
    let b_norm = dot(&b, &b)?.sqrt();
    if !b_norm.is_finite() {
        candle_core::bail!("conjugate_gradient: non-finite right-hand side");
    }
    if b_norm == 0.0 {
        return Ok(CgResult {
            x: b.zeros_like()?,
            iterations: 0,
            rel_residual: 0.0,
            stop: CgStop::ZeroRhs,
        });
    }
    let (mut x, mut r) = match warm_start {
        Some(x0) => {
            if x0.shape() != b.shape() {
                candle_core::bail!(
                    "conjugate_gradient: warm start {:?} vs b {:?}",
                    x0.shape(),
                    b.shape()
                );
            }
            let x0 = x0.detach().to_dtype(b.dtype())?;
            let r = (&b - apply(&x0)?)?;
            (x0, r)
        }
        None => (b.zeros_like()?, b.clone()),
    };
    let mut rr = dot(&r, &r)?;
    let mut iterations = 0;
    let mut stop = CgStop::MaxIterations;
    if rr.sqrt() / b_norm <= options.rel_tol {
        stop = CgStop::Converged;
    } else {
        let mut p = r.clone();
        while iterations < options.max_iters {
            let ap = apply(&p)?;
            let pap = dot(&p, &ap)?;
            if !pap.is_finite() {
                candle_core::bail!("conjugate_gradient: non-finite curvature pᵀAp");
            }
            iterations += 1;
            if pap <= 0.0 {
                stop = CgStop::NonPositiveCurvature {
                    curvature: pap / dot(&p, &p)?,
                };
                break;
            }
            let alpha = rr / pap;
            x = (&x + (&p * alpha)?)?;
            r = (&r - (&ap * alpha)?)?;
            let rr_new = dot(&r, &r)?;
            if rr_new.sqrt() / b_norm <= options.rel_tol {
                rr = rr_new;
                stop = CgStop::Converged;
                break;
            }
            p = (&r + (&p * (rr_new / rr))?)?;
            rr = rr_new;
        }
    }
    let rel_residual = if options.true_residual {
        let res = (&b - apply(&x)?)?;
        dot(&res, &res)?.sqrt() / b_norm
    } else {
        rr.sqrt() / b_norm
    };
    Ok(CgResult {
        x,
        iterations,
        rel_residual,
        stop,
    })
}

/// Options of [`stackelberg_gradient`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImplicitOptions {
    /// Hessian regularisation λ (paper 000 Sec. 3.1: 0 on CartPole, 500 on MuJoCo; paper 001
    /// Sec. 5.3: η = 0.5).
    pub lambda: f64,
    /// Conjugate-gradient options for `(H + λI) u = ∂J/∂w`.
    pub cg: CgOptions,
}

/// The pieces of a Stackelberg gradient.
#[derive(Clone, Debug)]
pub struct StackelbergGradient {
    /// `dJ/dθ = ∂J/∂θ − implicit`, one tensor per θ variable.
    pub total: Vec<Tensor>,
    /// `∂J/∂θ` (the ordinary actor-critic gradient), per θ variable.
    pub direct: Vec<Tensor>,
    /// `(∂²L/∂θ∂w) u`, per θ variable.
    pub implicit: Vec<Tensor>,
    /// `∂J/∂w`, flat.
    pub objective_grad_w: Tensor,
    /// The CG solve of `(∂²L/∂w² + λI) u = ∂J/∂w`; `cg.x` is `u` (flat), reusable as the next
    /// warm start.
    pub cg: CgResult,
}

/// The leader's total derivative (paper 000 eq. (19), paper 001 eq. (38)/(43)):
///
/// `dJ/dθ = ∂J/∂θ − (∂²L_θw/∂θ∂w) (∂²L/∂w² + λI)⁻¹ ∂J/∂w`
///
/// * `objective` — the leader's scalar `J(θ, w)` (the formula is linear in `J`, so passing a
///   loss to be minimised gives the derivative of that loss);
/// * `critic_loss` — the follower's scalar loss `L(θ, w)`, whose Hessian in `w` is inverted;
/// * `mixed_loss` — the scalar whose mixed derivative is used, if it differs from `L`: e.g. a
///   score-function surrogate `S(θ, w)` with `∇_θ S = ∂L/∂θ` (paper 000 Theorem 1 /
///   Proposition 1), for which `∂_θ[(∂S/∂w)·u] = ∂_w(∂S/∂θ)ᵀu` by symmetry of mixed partials;
///   `None` uses `critic_loss`.
///
/// The Hessian is applied matrix-free by double backward passes (one per CG iteration), and
/// the mixed product costs one more. As λ → ∞, `u → ∂J/∂w / λ → 0` and the result tends to
/// `∂J/∂θ`, plain actor-critic (paper 000 Sec. 3.1).
pub fn stackelberg_gradient(
    objective: &Tensor,
    critic_loss: &Tensor,
    mixed_loss: Option<&Tensor>,
    theta: &[Var],
    w: &[Var],
    options: &ImplicitOptions,
    warm_start: Option<&Tensor>,
) -> Result<StackelbergGradient> {
    if !(options.lambda.is_finite() && options.lambda >= 0.0) {
        candle_core::bail!("stackelberg_gradient: λ must be finite and >= 0");
    }
    if theta.is_empty() || w.is_empty() {
        candle_core::bail!("stackelberg_gradient: empty θ or w");
    }
    let (direct, objective_grad_w) = split_grads(objective, theta, w)?;

    let hess = GradGraph::new(critic_loss, w)?;
    implicit_gradient(
        direct,
        objective_grad_w,
        |v| hess.hvp(v),
        |u| {
            let flat = match mixed_loss {
                None => hess.mixed(u, theta)?,
                Some(m) => GradGraph::new(m, w)?.mixed(u, theta)?,
            };
            unflatten(&flat, &shapes_of(theta))
        },
        options,
        warm_start,
    )
}

/// One backward pass of the scalar `objective`: its gradient per `theta` variable and its
/// gradient over `w`, flat (both detached; zeros where it does not depend on a variable).
pub fn split_grads(objective: &Tensor, theta: &[Var], w: &[Var]) -> Result<(Vec<Tensor>, Tensor)> {
    check_scalar(objective, "split_grads")?;
    let store = objective.backward()?;
    let direct = theta
        .iter()
        .map(|v| match store.get(v.as_tensor()) {
            Some(g) => Ok(g.detach()),
            None => v.as_tensor().zeros_like(),
        })
        .collect::<Result<Vec<_>>>()?;
    let objective_grad_w = collect_flat(&store, w)?.detach();
    Ok((direct, objective_grad_w))
}

/// The second half of [`stackelberg_gradient`] for callers that compute the derivatives
/// themselves (e.g. by the R-operator, [`crate::nn::MlpCurvature`]): given `∂J/∂θ`
/// (`direct`, per θ variable), `∂J/∂w` (flat), the Hessian product `hvp(v) = (∂²L/∂w²) v`
/// (flat) and the mixed product `mixed(u) = (∂²L/∂θ∂w) u` (per θ variable), solves
/// `(∂²L/∂w² + λI) u = ∂J/∂w` by conjugate gradient from `warm_start` and returns
/// `dJ/dθ = ∂J/∂θ − mixed(u)`.
pub fn implicit_gradient<H, M>(
    direct: Vec<Tensor>,
    objective_grad_w: Tensor,
    mut hvp: H,
    mixed: M,
    options: &ImplicitOptions,
    warm_start: Option<&Tensor>,
) -> Result<StackelbergGradient>
where
    H: FnMut(&Tensor) -> Result<Tensor>,
    M: FnOnce(&Tensor) -> Result<Vec<Tensor>>,
{
    if !(options.lambda.is_finite() && options.lambda >= 0.0) {
        candle_core::bail!("implicit_gradient: λ must be finite and >= 0");
    }
    let lambda = options.lambda;
    let cg = conjugate_gradient(
        |v| {
            let hv = hvp(v)?;
            if lambda == 0.0 {
                Ok(hv)
            } else {
                hv + (v * lambda)?
            }
        },
        &objective_grad_w,
        &options.cg,
        warm_start,
    )?;
    let implicit = mixed(&cg.x)?;
    if implicit.len() != direct.len() {
        candle_core::bail!(
            "implicit_gradient: mixed product has {} tensors, ∂J/∂θ {}",
            implicit.len(),
            direct.len()
        );
    }
    let total = direct
        .iter()
        .zip(&implicit)
        .map(|(d, i)| d - i)
        .collect::<Result<Vec<_>>>()?;
    Ok(StackelbergGradient {
        total,
        direct,
        implicit,
        objective_grad_w,
        cg,
    })
}
