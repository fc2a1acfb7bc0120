//! STAC, the Stackelberg actor-critic (paper 000 Sec. 3): the actor (leader) steps along the
//! total derivative of its objective, anticipating the critic's (follower's) best response
//! `w*(θ) = argmin_w L(θ, w)`:
//!
//! ```text
//! dJ/dθ = ∂J/∂θ − (∂²L/∂θ∂w) (∂²L/∂w² + λI)⁻¹ ∂J/∂w          (eq. (18)-(19), Sec. 3.1)
//! θ ← θ + αθ dJ/dθ                                            (eq. (25))
//! repeat k times:  w ← w − αw ∂L/∂w                            (eq. (26), as AC)
//! ```
//!
//! Nothing is formed densely: `(∂²L/∂w² + λI)⁻¹ ∂J/∂w` is solved by conjugate gradient with
//! exact Hessian-vector products, then one mixed product. [`StacConfig::curvature`] picks
//! the engine: [`CurvatureEngine::Fast`] (default, [`fast_direction`]: Pearlmutter's
//! R-operator on the critic's cached activations, and the mixed term as one first-order
//! backward pass of the policy's log-probabilities) or [`CurvatureEngine::Autodiff`]
//! ([`autodiff_direction`]: double backward through the surrogates of [`losses`] via
//! [`crate::autodiff::stackelberg_gradient`], the reference); same values up to rounding.
//! λ → ∞ recovers AC; λ = 0 is the pure Stackelberg step (the paper's CartPole setting).
//!
//! [`StacConfig::curvature`]: super::on_policy::StacConfig::curvature
//!
//! # The three sample estimators
//!
//! Notation: one epoch of `N` steps in episode pieces (segments); `Â_t` the GAE(γ, λ_GAE)
//! advantages and `G_t` the Monte-Carlo returns, both computed with the critic before the
//! update and then held constant; `μ, σ` the mean and std of `Â` when advantages are
//! normalised (else 0 and 1).
//!
//! 1. **`∂J/∂θ`**: exactly AC's policy gradient, `(1/N) Σ_t ∇θ ln π(a_t|s_t) (Â_t − μ)/σ`
//!    ([`super::ac::policy_surrogate`]), so that STAC differs from AC by the implicit term only.
//!
//! 2. **`∂J/∂w`**: eq. (17) defines `J(θ, w) = E[Q_w(s, a)]` for a Q critic; a V critic needs
//!    the `Q` estimate that the actor actually uses, the critic-bootstrapped λ-return
//!    `G^λ_t(w) = Â_t(w) + V_w(s_t) = Σ_l (γλ)^l [r_{t+l} + γ(1−λ) V_w(s_{t+l+1})]` (with the
//!    piece's bootstrap `V_w(s_T)` at a truncation or the epoch end, 0 after termination). So
//!    `J(θ, w) = (1/(σN)) Σ_t G^λ_t(w)`: its likelihood-ratio θ-gradient with baseline
//!    `V_w(s_t)` is item 1, and its w-gradient, the analogue of eq. (20), is
//!    `∂J/∂w = (1/(σN)) Σ_t ∂G^λ_t/∂w = (1/(σN)) Σ_k c_k ∇w V_w(x_k)`, a weighted sum over
//!    the epoch's states and bootstrap states with weights `c_k` from the GAE recursion
//!    ([`lambda_return_weights`]); it enters the graph as the surrogate `Σ_k c_k V_w(x_k)` with
//!    constant weights. The baseline `V_w(s_t)` cancels, as it must (a baseline does not change
//!    J). The paper's code used `∇w mean_t V_w(s_t)` instead, which ignores where the critic
//!    enters the advantages: e.g. with λ_GAE = 1 the actor's gradient depends on `w` only
//!    through the bootstrap states, and ours is zero elsewhere, theirs is not.
//!
//! 3. **`∂²L/∂θ∂w`**: Proposition 1 (V critic) gives
//!    `∂L/∂θ = 2 E[Σ_t γ^t ∇θ ln π(a_t|s_t) (V^π(s_0) − V_w(s_0)) Q^π(s_t, a_t)]` for states
//!    `s_0 ∼ ρ` fixed. We use every state of the epoch as such an `s_0` (our `L` averages over
//!    the visited states, whose distribution is held fixed, as ρ is in the proposition), with
//!    the causal, discounted sum inside its own episode piece, and replace `Q^π` by the GAE
//!    advantage (`Q^π − V(s_t)`: subtracting a baseline of `s_t` leaves the expectation
//!    unchanged, because the critic factor depends only on states up to `s_t`, and cuts the
//!    variance). Re-indexed, this is the θ-gradient of the score-function surrogate
//!    `M(θ, w) = (2/N) Σ_{t'} ln π(a_{t'}|s_{t'}) Â_{t'} E_{t'}(w)`, whose "reward" is the
//!    discounted trace of the per-state critic errors
//!    `E_{t'}(w) = Σ_{t ≤ t', same piece} γ^{t'−t} (G_t − V_w(s_t))`, and the mixed product is
//!    `(∂²M/∂θ∂w) u = −(2/N) Σ_{t'} ∇θ ln π_{t'} Â_{t'} Σ_{t≤t'} γ^{t'−t} ∇w V_w(s_t)·u`.
//!    Only the `−V_w` part of the error survives the w-derivative, so using the return `G_t`
//!    for `V^π(s_t)` costs no bias in the mixed term (it would in `∂L/∂θ` itself, which is
//!    never used). With λ_GAE = 1 the estimator is unbiased; `tests/stac_estimators.rs`
//!    checks its exact expectation against `∂²L/∂θ∂w` on a small finite MDP. Truncation: the
//!    sum stops at the end of the piece (the tail `γ^{T−t} dV^π(s_T)/dθ` is not observed).
//!    The paper's code used one state (`ret[0] − V(obs[0])`, the first state of the buffer)
//!    times the undiscounted epoch mean of `ln π · Â` across all episodes.
//!
//! The critic Hessian is the exact Hessian of the sample loss
//! `L(w) = (1/N) Σ_t (V_w(s_t) − G_t)²`, i.e. eq. (22) with `G_t` for `V^π(s_t)` (unbiased,
//! since the second factor depends on `s_t` only), applied by Hessian-vector products;
//! [`CriticHessian::GaussNewton`] keeps only `(2/N) Σ ∇V ∇Vᵀ`, as an explicit option.

use candle_core::{Device, Tensor};

use super::ac::{self, ActorStep};
use super::on_policy::{Batch, BatchSegment, CriticHessian, OnPolicyAgent, Policy, StacEstimator};
use super::on_policy::{OnPolicyError, Result};
use crate::autodiff::{self, CgOptions, CurvatureEngine, ImplicitOptions, StackelbergGradient};
use crate::nn::{CurvatureBlocks, MlpCurvature, Residual, VCritic};

/// Weights of `Σ_t G^λ_t` in the critic's values over one episode piece of `len` steps:
/// `∂(Σ_t G^λ_t)/∂V(s_k)` for `k < len`, and `∂/∂V(s_T)` of the bootstrap state (0 when the
/// piece ends in a terminal state). With `κ_j = Σ_{i=0}^{j} (γλ)^i`,
/// `Σ_t Â_t = Σ_j κ_j δ_j`, `δ_j = r_j + γ V_{j+1} − V_j`, so
/// `c_k = 1 − κ_k + γ κ_{k−1}` and `c_T = γ κ_{len−1}`.
pub fn lambda_return_weights(
    len: usize,
    gamma: f64,
    lambda: f64,
    bootstrapped: bool,
) -> (Vec<f64>, f64) {
    let mut c = Vec::with_capacity(len);
    let mut kappa_prev = 0.0; // κ_{k−1}, 0 before the first step
    let mut kappa = 0.0;
    let mut pow = 1.0; // (γλ)^k
    for _ in 0..len {
        kappa = kappa_prev + pow;
        c.push(1.0 - kappa + gamma * kappa_prev);
        kappa_prev = kappa;
        pow *= gamma * lambda;
    }
    let boot = if bootstrapped { gamma * kappa } else { 0.0 };
    (c, boot)
}

/// `E_{t'} = Σ_{t ≤ t'} γ^{t'−t} e_t` within each segment, differentiably and in a constant
/// number of graph nodes (a per-segment loop would add hundreds of tiny ops to every backward
/// pass): gather `e` into a zero-padded `[segments, max_len]` matrix, multiply by the
/// `[max_len, max_len]` discount matrix `Dᵀ` (`D_ij = γ^{i−j}` for `j ≤ i`), gather back.
pub fn discounted_trace(e: &Tensor, segments: &[BatchSegment], gamma: f64) -> Result<Tensor> {
    let n = e.dim(0)?;
    let covered: usize = segments.iter().map(|s| s.len).sum();
    if covered != n || segments.iter().any(|s| s.len == 0) {
        return Err(OnPolicyError::Mismatch(format!(
            "discounted_trace: segments cover {covered} of {n} entries"
        )));
    }
    let (rows, width) = (
        segments.len(),
        segments.iter().map(|s| s.len).max().unwrap_or(0),
    );
    // Padding reads entry n, a zero appended to e.
    let mut gather = vec![n as u32; rows * width];
    let mut back = Vec::with_capacity(n);
    for (r, s) in segments.iter().enumerate() {
        for i in 0..s.len {
            gather[r * width + i] = (s.start + i) as u32;
            back.push((r * width + i) as u32);
        }
    }
    let mut dt = vec![0.0; width * width];
    for i in 0..width {
        let mut g = 1.0;
        for j in (0..=i).rev() {
            dt[j * width + i] = g; // Dᵀ[j][i] = γ^{i−j}
            g *= gamma;
        }
    }
    let dev = e.device();
    let ids = |v: Vec<u32>| -> Result<Tensor> {
        let len = v.len();
        Ok(Tensor::from_vec(v, len, &Device::Cpu)?.to_device(dev)?)
    };
    let dt = Tensor::from_vec(dt, (width, width), &Device::Cpu)?
        .to_dtype(e.dtype())?
        .to_device(dev)?;
    let e_ext = Tensor::cat(&[e, &Tensor::zeros(1, e.dtype(), dev)?], 0)?;
    let padded = e_ext
        .index_select(&ids(gather)?, 0)?
        .reshape((rows, width))?;
    Ok(padded
        .matmul(&dt)?
        .flatten_all()?
        .index_select(&ids(back)?, 0)?)
}

/// The scalars whose derivatives make up eq. (19) (see the module docs).
#[derive(Clone, Debug)]
pub struct StacLosses {
    /// `J`: θ-gradient `∂J/∂θ` (item 1), w-gradient `∂J/∂w` (item 2).
    pub objective: Tensor,
    /// The critic loss `L(w)` (its value, and the exact Hessian).
    pub critic_loss: Tensor,
    /// The loss whose w-Hessian is inverted: `critic_loss`, or the Gauss-Newton surrogate
    /// `(1/N) Σ (V_w(s_t) − [V_w(s_t)])²` (brackets: detached), whose Hessian at the current
    /// point is `(2/N) Σ ∇V ∇Vᵀ`.
    pub hessian_loss: Tensor,
    /// `M(θ, w)`, whose mixed derivative is the Proposition 1 estimate of `∂²L/∂θ∂w` (item 3).
    pub mixed: Tensor,
    /// The value of the actor's surrogate (item 1 alone).
    pub actor_objective: Tensor,
}

/// Items 1 and 2 of the module docs.
struct ObjectiveParts {
    /// `ln π(a_t|s_t)`, `[N]` (graph to θ).
    logp: Tensor,
    /// `V_w` on [`Batch::critic_inputs`] (graph to w).
    v_all: Tensor,
    /// `J`.
    objective: Tensor,
    /// Item 1 alone.
    actor_objective: Tensor,
}

fn objective_parts(
    policy: &Policy,
    critic: &VCritic,
    batch: &Batch,
    gamma: f64,
    gae_lambda: f64,
    estimator: StacEstimator,
) -> Result<ObjectiveParts> {
    let n = batch.n;
    let (dt, dev) = (batch.obs.dtype(), batch.obs.device().clone());
    let logp = policy.log_prob(&batch.obs, &batch.actions)?;
    // Item 1: (1/N) Σ ln π Â_norm.
    let actor_objective = (&logp * &batch.actor_advantages)?.mean_all()?;
    // Item 2: (1/(σN)) Σ_k c_k V_w(x_k) over states and bootstrap states.
    let rows = batch.critic_inputs.dim(0)?;
    let mut c = vec![0.0; rows];
    for s in &batch.segments {
        let (w, boot) = lambda_return_weights(s.len, gamma, gae_lambda, s.bootstrap_row.is_some());
        c[s.start..s.start + s.len].copy_from_slice(&w);
        if let Some(r) = s.bootstrap_row {
            c[r] = boot;
        }
    }
    let scale = 1.0 / (batch.advantage_scale * n as f64);
    let c = Tensor::from_vec(c, rows, &Device::Cpu)?
        .to_dtype(dt)?
        .to_device(&dev)?;
    let v_all = critic.forward(&batch.critic_inputs)?;
    let value_objective = match estimator {
        StacEstimator::Exact => ((&v_all * c)?.sum_all()? * scale)?,
        // The paper's code: ∂J/∂w = ∇w mean_t V_w(s_t) over the epoch's states.
        StacEstimator::Paper => v_all.narrow(0, 0, n)?.mean_all()?,
    };
    let objective = (&actor_objective + value_objective)?;
    Ok(ObjectiveParts {
        logp,
        v_all,
        objective,
        actor_objective,
    })
}

/// Builds the STAC surrogates for `batch` with the current networks.
pub fn losses(
    policy: &Policy,
    critic: &VCritic,
    batch: &Batch,
    gamma: f64,
    gae_lambda: f64,
    hessian: CriticHessian,
    estimator: StacEstimator,
) -> Result<StacLosses> {
    let n = batch.n;
    let (dt, dev) = (batch.obs.dtype(), batch.obs.device().clone());
    let o = objective_parts(policy, critic, batch, gamma, gae_lambda, estimator)?;
    let (logp, v_all, objective, actor_objective) =
        (o.logp, o.v_all, o.objective, o.actor_objective);
    // The critic loss and its Hessian.
    let v = v_all.narrow(0, 0, n)?;
    let critic_loss = (&v - &batch.returns_tensor)?.sqr()?.mean_all()?;
    let hessian_loss = match hessian {
        CriticHessian::Exact => critic_loss.clone(),
        CriticHessian::GaussNewton => (&v - v.detach())?.sqr()?.mean_all()?,
    };
    let errors = (&batch.returns_tensor - &v)?;
    let mixed = match estimator {
        // Item 3: M = (2/N) Σ_t' ln π_t' Â_t' E_t'(w), raw (unnormalised) advantages: L's
        // scale.
        StacEstimator::Exact => {
            let trace = discounted_trace(&errors, &batch.segments, gamma)?;
            let adv = Tensor::from_vec(batch.advantages.clone(), n, &Device::Cpu)?
                .to_dtype(dt)?
                .to_device(&dev)?;
            ((logp * adv)? * trace)?
                .sum_all()?
                .affine(2.0 / n as f64, 0.0)?
        }
        // The paper's code: 2 · mean_t(ln π_t Â_t) · (G_0 − V_w(s_0)).
        StacEstimator::Paper => {
            let surrogate = (&logp * &batch.actor_advantages)?.mean_all()?;
            (surrogate * errors.narrow(0, 0, 1)?.sum_all()?)?.affine(2.0, 0.0)?
        }
    };
    Ok(StacLosses {
        objective,
        critic_loss,
        hessian_loss,
        mixed,
        actor_objective,
    })
}

/// The λ the agent uses in its next update (the configured schedule at its epoch count).
pub fn current_lambda(agent: &OnPolicyAgent) -> f64 {
    agent.config().stac.lambda_at(agent.epochs_done())
}

fn implicit_options(agent: &OnPolicyAgent) -> ImplicitOptions {
    let cfg = agent.config();
    ImplicitOptions {
        lambda: current_lambda(agent),
        cg: CgOptions {
            max_iters: cfg.stac.cg_iters,
            rel_tol: cfg.stac.cg_rel_tol,
            true_residual: cfg.stac.cg_true_residual,
        },
    }
}

fn warm(agent: &OnPolicyAgent) -> Option<&Tensor> {
    if agent.config().stac.warm_start {
        agent.warm_start.as_ref()
    } else {
        None
    }
}

/// `dJ/dθ` (and its pieces) for `batch` with the agent's networks, λ schedule, CG options,
/// warm start and curvature engine, without stepping; also the actor's surrogate (item 1).
pub fn stackelberg_direction(
    agent: &OnPolicyAgent,
    batch: &Batch,
) -> Result<(StackelbergGradient, Tensor)> {
    match agent.config().stac.curvature {
        CurvatureEngine::Fast => fast_direction(agent, batch),
        CurvatureEngine::Autodiff => {
            let (sg, l) = autodiff_direction(agent, batch)?;
            Ok((sg, l.actor_objective))
        }
    }
}

/// [`stackelberg_direction`] by Candle's double backward through the surrogates of
/// [`losses`] ([`CurvatureEngine::Autodiff`], the reference).
pub fn autodiff_direction(
    agent: &OnPolicyAgent,
    batch: &Batch,
) -> Result<(StackelbergGradient, StacLosses)> {
    let cfg = agent.config();
    let l = losses(
        &agent.policy,
        &agent.critic,
        batch,
        cfg.gamma,
        cfg.gae_lambda,
        cfg.stac.hessian,
        cfg.stac.estimator,
    )?;
    let sg = autodiff::stackelberg_gradient(
        &l.objective,
        &l.hessian_loss,
        Some(&l.mixed),
        agent.policy.vars(),
        agent.critic.vars(),
        &implicit_options(agent),
        warm(agent),
    )?;
    Ok((sg, l))
}

/// `E_{t'} = Σ_{t ≤ t'} γ^{t'−t} e_t` within each segment, as [`discounted_trace`] but on
/// plain numbers (no graph), by the recursion `E_{t'} = γ E_{t'−1} + e_{t'}`.
fn discounted_trace_values(e: &[f64], segments: &[BatchSegment], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; e.len()];
    for s in segments {
        let mut acc = 0.0;
        for t in s.start..s.start + s.len {
            acc = gamma * acc + e[t];
            out[t] = acc;
        }
    }
    out
}

/// [`stackelberg_direction`] by the fast engine ([`CurvatureEngine::Fast`]), same values up
/// to rounding:
///
/// * `∂J/∂θ`, `∂J/∂w`: one backward pass of `J`, as the reference.
/// * Hessian-vector products of `L(w) = (1/N) Σ_t (V_w(s_t) − G_t)²` (or its Gauss-Newton
///   part) by the R-operator on the critic's cached activations ([`MlpCurvature`]).
/// * The mixed product of item 3 without a double backward: the surrogate `M` is linear in
///   `V_w`, so `(∂²M/∂θ∂w) u = ∂θ Σ_{t'} ln π_{t'} c_{t'}` with constant
///   `c_{t'} = −(2/N) Â_{t'} Σ_{t≤t'} γ^{t'−t} ∇w V_w(s_t)·u`: one R-forward pass of the
///   critic (the JVPs), an O(N) discounted sum, and one first-order backward pass of the
///   policy's log-probabilities.
pub fn fast_direction(
    agent: &OnPolicyAgent,
    batch: &Batch,
) -> Result<(StackelbergGradient, Tensor)> {
    let cfg = agent.config();
    let n = batch.n;
    let o = objective_parts(
        &agent.policy,
        &agent.critic,
        batch,
        cfg.gamma,
        cfg.gae_lambda,
        cfg.stac.estimator,
    )?;
    let estimator = cfg.stac.estimator;
    let actor_adv = match estimator {
        StacEstimator::Exact => Vec::new(),
        StacEstimator::Paper => batch
            .actor_advantages
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?,
    };
    let theta = agent.policy.vars();
    let (direct, grad_w) = autodiff::split_grads(&o.objective, theta, agent.critic.vars())?;
    let residual = match cfg.stac.hessian {
        CriticHessian::Exact => Residual::Exact,
        CriticHessian::GaussNewton => Residual::Zero,
    };
    let x = batch.critic_inputs.narrow(0, 0, n)?;
    let net = MlpCurvature::new(
        agent.critic.mlp(),
        &x,
        &batch.returns_tensor,
        2.0 / n as f64,
        residual,
    )?;
    let hess = CurvatureBlocks::new(vec![net])?;
    let (dt, dev) = (batch.obs.dtype(), batch.obs.device().clone());
    let sg = autodiff::implicit_gradient(
        direct,
        grad_w,
        |v| hess.hvp(v),
        |u| {
            let jvp = hess.jvps(u)?[0]
                .to_dtype(candle_core::DType::F64)?
                .to_vec1::<f64>()?;
            let scale = 2.0 / n as f64;
            let c: Vec<f64> = match estimator {
                StacEstimator::Exact => {
                    let neg: Vec<f64> = jvp.iter().map(|j| -j).collect();
                    let trace = discounted_trace_values(&neg, &batch.segments, cfg.gamma);
                    trace
                        .iter()
                        .zip(&batch.advantages)
                        .map(|(e, a)| scale * a * e)
                        .collect()
                }
                // ∂θ[2 mean_t(ln π_t Â_t)(G_0 − V(s_0))]·u: c_t = (2/N) Â_t (−∇V(s_0)·u).
                StacEstimator::Paper => actor_adv.iter().map(|a| scale * a * -jvp[0]).collect(),
            };
            let c = Tensor::from_vec(c, n, &Device::Cpu)?
                .to_dtype(dt)?
                .to_device(&dev)?;
            autodiff::grads(&(&o.logp * c)?.sum_all()?, theta)
        },
        &implicit_options(agent),
        warm(agent),
    )
    .map_err(OnPolicyError::from)?;
    Ok((sg, o.actor_objective))
}

/// Bounds the implicit term to `ratio · ‖∂J/∂θ‖` (when it is longer) and recomputes
/// `total = direct − implicit` ([`super::on_policy::StacConfig::implicit_max_ratio`]).
pub fn bound_implicit(sg: &mut StackelbergGradient, ratio: f64) -> Result<()> {
    let (direct, implicit) = (ac::norm(&sg.direct)?, ac::norm(&sg.implicit)?);
    if implicit <= ratio * direct || implicit == 0.0 {
        return Ok(());
    }
    let scale = ratio * direct / implicit;
    sg.implicit = sg
        .implicit
        .iter()
        .map(|t| t.affine(scale, 0.0))
        .collect::<candle_core::Result<Vec<_>>>()?;
    sg.total = sg
        .direct
        .iter()
        .zip(&sg.implicit)
        .map(|(d, i)| d - i)
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(())
}

/// The STAC actor step: `θ ← θ + αθ dJ/dθ` (eq. (25); Adam ascends the same direction).
pub(crate) fn actor_step(agent: &mut OnPolicyAgent, batch: &Batch) -> Result<ActorStep> {
    let lambda = current_lambda(agent);
    let (mut sg, actor_objective) = stackelberg_direction(agent, batch)?;
    if let Some(ratio) = agent.config().stac.implicit_max_ratio {
        bound_implicit(&mut sg, ratio)?;
    }
    let descent = sg
        .total
        .iter()
        .map(|t| t.neg())
        .collect::<candle_core::Result<Vec<_>>>()?;
    agent.actor_opt.descend(&descent)?;
    if agent.config().stac.warm_start {
        agent.warm_start = Some(sg.cg.x.clone());
    }
    Ok(ActorStep {
        objective: ac::scalar(&actor_objective)?,
        direct_norm: ac::norm(&sg.direct)?,
        implicit_norm: ac::norm(&sg.implicit)?,
        total_norm: ac::norm(&sg.total)?,
        objective_grad_w_norm: ac::norm(std::slice::from_ref(&sg.objective_grad_w))?,
        lambda: Some(lambda),
        cg_iterations: sg.cg.iterations,
        cg_residual: sg.cg.rel_residual,
        cg_stop: Some(sg.cg.stop.clone()),
    })
}
