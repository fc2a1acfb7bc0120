//! Stack-SAC (paper 001 Sec. 5, Appendix C.2): the actor is the leader of a Stackelberg
//! game and follows the total derivative of its objective through the critic's response,
//! eq. (43) with the regularised semi-gradient Hessian of Sec. 5.3:
//!
//! `g = ∂θ J_π − (∂θ ∂φ J_Q)ᵀ (∂²φ J_Q + η I)⁻¹ ∂φ J_π`, `η = 0.5`.
//!
//! One `Stack-SAC-x-0` round:
//! 1. `x` critic steps, exactly as SAC;
//! 2. on the last minibatch, the actor loss `L_π = E[α ln π(ã|s) − min_i Q_i(s,ã)]` (now
//!    with the critic *not* frozen: `∂φ L_π` is needed) and the critic loss
//!    `J_Q(θ, φ) = ½ Σ_i E[(Q_i(s,a) − y(θ))²]` whose target
//!    `y(θ) = r + γ(1−d)(min_i Q̄_i(s′,a′_θ) − α ln π_θ(a′_θ|s′))` depends on θ through the
//!    reparameterised next action `a′_θ = f_θ(ε′; s′)`. Without that dependence
//!    `∂θ ∂φ J_Q = 0` and eq. (43) collapses to SAC;
//! 3. `u = (H + η I)⁻¹ ∂φ L_π` by conjugate gradient on exact Hessian-vector products (never
//!    a dense Hessian), warm-started from the previous round's `u`; then the mixed product
//!    `(∂θ ∂φ J_Q)ᵀ u`; the actor takes an Adam step along `∂θ L_π − (∂θ ∂φ J_Q)ᵀ u`. Since
//!    the formula is linear in the objective, passing the loss `L_π = −J_π` gives the
//!    negated ascent direction of eq. (43). Two engines ([`SacConfig::curvature`](super::SacConfig::curvature)):
//!    [`CurvatureEngine::Fast`] (default, [`fast_stackelberg_gradient`]: Pearlmutter's
//!    R-operator on the critics' cached activations, and the mixed term as one first-order
//!    backward pass of a weighted target) and [`CurvatureEngine::Autodiff`] ([`losses`] +
//!    [`stackelberg_gradient`]: Candle's double backward, the reference); same values up to
//!    rounding (`tests/curvature_fast.rs`). `curvature_batch` optionally takes the
//!    Hessian-vector products on a sub-sample of the minibatch (approximate, off by default);
//! 4. the temperature step, as SAC.
//!
//! The Hessian is that of the semi-gradient loss: the target networks are not among the
//! critic variables φ, so `H = ∂²φ J_Q` treats `y` as fixed (eq. 40). For the Hessian-vector
//! products `J_Q` is built with `y` detached (same `H`; the double-backward passes then skip
//! the actor and target networks), and the θ-dependent `J_Q` is used for the mixed term only.
//!
//! # When `H + ηI` is not positive definite
//!
//! With a neural critic the exact semi-gradient Hessian `E[∇Q∇Qᵀ] + E[(Q − y)∇²Q]` is
//! indefinite whenever TD errors are large (early in training they are), and `η = 0.5` does
//! not always make `H + ηI` positive definite. CG then meets directions of non-positive or
//! tiny curvature, and its iterate can grow without bound; warm-starting from such an
//! iterate compounds it. So: the next solve is warm-started only from a *healthy* solve
//! (no non-positive curvature, relative residual below 1), and a solve that is no better
//! than `u = 0` (relative residual ≥ 1, or non-finite) is discarded — the round takes the
//! plain SAC actor gradient `∂θ L_π` and logs `cg_fallback = 1`. [`StackHessian::GaussNewton`]
//! replaces `H` by its positive semi-definite part `E[∇Q∇Qᵀ]`, which is eq. (40)'s `D_θ` in
//! the tabular case the paper analyses.

use super::AlgoError;
use super::agent::{SacAgent, StackHessian, UpdateStats, check_finite, frozen_mlp_forward, scalar};
use crate::autodiff::{
    self, CgOptions, CgStop, CurvatureEngine, ImplicitOptions, StackelbergGradient,
};
use crate::nn::{CurvatureBlocks, MlpCurvature, Residual};
use crate::replay::{BatchTensors, ReplayBuffer};
use crate::rng::Rng;
use candle_core::{D, Tensor};

/// The three scalars eq. (43) is built from, for one minibatch.
#[derive(Clone, Debug)]
pub struct StackLosses {
    /// The actor loss `L_π(θ, φ) = E[α ln π(ã|s) − min_i Q_i(s,ã)]` (graph to θ and φ).
    pub actor_loss: Tensor,
    /// The loss whose φ-Hessian is inverted: `J_Q` with the target detached (exact
    /// semi-gradient Hessian), or its Gauss-Newton form (see [`StackHessian`]).
    pub critic_loss_hessian: Tensor,
    /// `J_Q(θ, φ)` with the target's θ-dependence kept: its mixed derivative is `∂θ∂φ J_Q`.
    pub critic_loss_mixed: Tensor,
    /// `ln π(ã|s)` of the actor samples (for the temperature step).
    pub log_prob: Tensor,
}

/// Builds [`StackLosses`] on minibatch `b` with actor noise `eps` (for `ã`) and next-action
/// noise `eps_next` (for `a′_θ`).
pub fn losses(
    agent: &SacAgent,
    b: &BatchTensors,
    eps: &Tensor,
    eps_next: &Tensor,
) -> Result<StackLosses, AlgoError> {
    let sample = agent.actor().sample_with_noise(&b.obs, eps)?;
    let q = agent.critic().min_q(&b.obs, &sample.action)?;
    let alpha = agent.entropy().alpha_tensor()?;
    let actor_loss = (sample.log_prob.broadcast_mul(&alpha)? - q)?.mean_all()?;

    let y = agent.soft_q_target(b, eps_next)?;
    let (critic_loss_mixed, _) = agent.critic_loss(b, &y)?;
    let critic_loss_hessian = match agent.config().stack_hessian {
        StackHessian::Exact => agent.critic_loss(b, &y.detach())?.0,
        StackHessian::GaussNewton => {
            // ½ Σ_i E[(Q_i − sg(Q_i))²]: zero residual, so its Hessian is E[∇Q_i ∇Q_iᵀ].
            let (q1, q2) = agent.critic().forward(&b.obs, &b.actions)?;
            let r1 = (&q1 - q1.detach())?.sqr()?.mean_all()?;
            let r2 = (&q2 - q2.detach())?.sqr()?.mean_all()?;
            ((r1 + r2)? * 0.5)?
        }
    };
    Ok(StackLosses {
        actor_loss,
        critic_loss_hessian,
        critic_loss_mixed,
        log_prob: sample.log_prob,
    })
}

fn implicit_options(agent: &SacAgent) -> ImplicitOptions {
    let cfg = agent.config();
    ImplicitOptions {
        lambda: cfg.eta,
        cg: CgOptions {
            max_iters: cfg.cg_iters,
            rel_tol: cfg.cg_tol,
            true_residual: false,
        },
    }
}

/// Eq. (43) for given losses by Candle's double backward ([`CurvatureEngine::Autodiff`]):
/// the Stackelberg gradient of the actor loss, with CG options from the agent's config and
/// warm start `warm` (no guards; see [`update`]).
pub fn stackelberg_gradient(
    agent: &SacAgent,
    l: &StackLosses,
    warm: Option<&Tensor>,
) -> Result<StackelbergGradient, AlgoError> {
    let options = implicit_options(agent);
    Ok(autodiff::stackelberg_gradient(
        &l.actor_loss,
        &l.critic_loss_hessian,
        Some(&l.critic_loss_mixed),
        agent.actor().vars(),
        &agent.critic().vars(),
        &options,
        warm,
    )?)
}

/// What the fast engine returns besides the gradient: the actor loss (with its graph, for the
/// fallback) and `ln π(ã|s)` (for the temperature step).
#[derive(Clone, Debug)]
pub struct FastParts {
    /// `L_π`, as [`StackLosses::actor_loss`].
    pub actor_loss: Tensor,
    /// `ln π(ã|s)`, as [`StackLosses::log_prob`].
    pub log_prob: Tensor,
}

/// The actor loss `L_π(θ, φ) = E[α ln π(ã|s) − min_i Q_i(s,ã)]` (graph to θ and φ) with
/// actor noise `eps`, as in [`losses`].
pub fn actor_parts(
    agent: &SacAgent,
    b: &BatchTensors,
    eps: &Tensor,
) -> Result<FastParts, AlgoError> {
    let sample = agent.actor().sample_with_noise(&b.obs, eps)?;
    let q = agent.critic().min_q(&b.obs, &sample.action)?;
    let alpha = agent.entropy().alpha_tensor()?;
    let actor_loss = (sample.log_prob.broadcast_mul(&alpha)? - q)?.mean_all()?;
    Ok(FastParts {
        actor_loss,
        log_prob: sample.log_prob,
    })
}

/// The soft Q target `y(θ)` of [`SacAgent::soft_q_target`] with the target critics' weights
/// detached (same values; the backward pass of the mixed term then stops at the actor).
fn target_theta(
    agent: &SacAgent,
    b: &BatchTensors,
    eps_next: &Tensor,
) -> Result<Tensor, AlgoError> {
    let next = agent.actor().sample_with_noise(&b.next_obs, eps_next)?;
    let x = Tensor::cat(&[&b.next_obs, &next.action], 1)?;
    let act = agent.config().activation;
    let [t1, t2] = agent.critic().targets();
    let q1 = frozen_mlp_forward(t1.vars(), &x, act)?.squeeze(D::Minus1)?;
    let q2 = frozen_mlp_forward(t2.vars(), &x, act)?.squeeze(D::Minus1)?;
    let alpha = agent.entropy().alpha_tensor()?;
    let soft_v = (q1.minimum(&q2)? - next.log_prob.broadcast_mul(&alpha)?)?;
    Ok((&b.rewards + (agent.discount(b)? * soft_v)?)?)
}

/// The twin critics' cached passes for curvature products on `x`, Hessian-vector products
/// on its first `rows` rows.
fn critic_blocks(
    agent: &SacAgent,
    x: &Tensor,
    y: &Tensor,
    rows: usize,
    residual: Residual,
) -> Result<CurvatureBlocks, AlgoError> {
    let n = x.dim(0)?;
    let mut nets = Vec::with_capacity(2);
    for q in agent.critic().online() {
        // ½ E[(Q_i − y)²]: scale 1/N.
        nets.push(MlpCurvature::new(q.mlp(), x, y, 1.0 / n as f64, residual)?);
    }
    let blocks = CurvatureBlocks::new(nets)?;
    Ok(if rows < n {
        blocks.with_hvp_rows(rows)?
    } else {
        blocks
    })
}

/// Eq. (43) on minibatch `b` for the actor loss in `parts` ([`actor_parts`]) and next-action
/// noise `eps_next` by the fast engine ([`CurvatureEngine::Fast`]); same result as
/// [`losses`] followed by [`stackelberg_gradient`], up to rounding, when `curvature_batch` is
/// unset.
///
/// * `∂θ L_π`, `∂φ L_π`: one backward pass of the actor loss, as the generic path.
/// * `(∂²φ J_Q + ηI) u = ∂φ L_π` by CG whose Hessian-vector products are Pearlmutter's
///   R-operator on the critics' cached activations ([`MlpCurvature`]): `J_Q` with `y` fixed,
///   or its Gauss-Newton part, as [`StackHessian`] says.
/// * The mixed term without a double backward: with `J_Q = ½ Σ_i E[(Q_i − y(θ))²]`,
///   `(∂φ J_Q)·u = (1/N) Σ_b Σ_i (Q_i(x_b) − y_b) (∇φQ_i(x_b)·u_i)`, so
///   `(∂θ∂φ J_Q)ᵀ u = ∂θ Σ_b w_b y_b(θ)` with constant weights
///   `w_b = −(1/N) Σ_i ∇φQ_i(x_b)·u_i`: one R-forward pass of the critics (the JVPs) and one
///   first-order backward pass of the target through the reparameterised next action.
pub fn fast_stackelberg_gradient(
    agent: &SacAgent,
    b: &BatchTensors,
    parts: &FastParts,
    eps_next: &Tensor,
    warm: Option<&Tensor>,
) -> Result<StackelbergGradient, AlgoError> {
    let cfg = agent.config();
    let theta = agent.actor().vars();
    let (direct, grad_w) = autodiff::split_grads(&parts.actor_loss, theta, &agent.critic().vars())?;

    let y = target_theta(agent, b, eps_next)?;
    let y_fixed = y.detach();
    let n = b.obs.dim(0)?;
    let x = agent.critic().online()[0].input(&b.obs, &b.actions)?;
    let residual = match cfg.stack_hessian {
        StackHessian::Exact => Residual::Exact,
        StackHessian::GaussNewton => Residual::Zero,
    };
    let rows = cfg.curvature_batch.unwrap_or(n).min(n);
    let hess = critic_blocks(agent, &x, &y_fixed, rows, residual)?;
    let g = autodiff::implicit_gradient(
        direct,
        grad_w,
        |v| hess.hvp(v),
        |u| {
            // The JVPs cover the whole minibatch (also with sub-sampled HVPs).
            let jv = hess.jvps(u)?;
            let mut sum = jv[0].clone();
            for j in &jv[1..] {
                sum = (sum + j)?;
            }
            let w = (sum * (-1.0 / n as f64))?;
            autodiff::grads(&(&y * w)?.sum_all()?, theta)
        },
        &implicit_options(agent),
        warm,
    )?;
    Ok(g)
}

fn norm(ts: &[Tensor]) -> Result<f64, AlgoError> {
    let mut s = 0.0;
    for t in ts {
        s += autodiff::dot(t, t)?;
    }
    Ok(s.sqrt())
}

/// Whether a CG solve can be used (and warm-started from).
fn healthy(g: &StackelbergGradient) -> bool {
    g.cg.rel_residual.is_finite() && g.cg.rel_residual < 1.0
}

/// One `Stack-SAC-x-0` round (see the module docs).
pub fn update(
    agent: &mut SacAgent,
    replay: &ReplayBuffer,
    rng: &mut Rng,
) -> Result<UpdateStats, AlgoError> {
    // 1. Critic: x steps, as SAC.
    let (b, critic) = agent.critic_phase(replay, rng)?;

    // 2. The losses of eq. (43) on the last minibatch.
    let n = b.obs.dim(0)?;
    let eps = agent.noise(rng, n)?;
    let eps_next = agent.noise(rng, n)?;

    // 3. Stackelberg gradient by CG on exact HVPs, warm-started from the last healthy
    //    solve; an unusable solve falls back to the plain gradient (module docs).
    let warm = if agent.config().cg_warm_start {
        agent.cg_warm.take()
    } else {
        None
    };
    let (l, g) = match agent.config().curvature {
        CurvatureEngine::Autodiff => {
            let l = losses(agent, &b, &eps, &eps_next)?;
            check_finite("actor loss", scalar(&l.actor_loss)?)?;
            let g = stackelberg_gradient(agent, &l, warm.as_ref());
            let parts = FastParts {
                actor_loss: l.actor_loss,
                log_prob: l.log_prob,
            };
            (parts, g)
        }
        CurvatureEngine::Fast => {
            let parts = actor_parts(agent, &b, &eps)?;
            check_finite("actor loss", scalar(&parts.actor_loss)?)?;
            let g = fast_stackelberg_gradient(agent, &b, &parts, &eps_next, warm.as_ref());
            (parts, g)
        }
    };
    let actor_loss = check_finite("actor loss", scalar(&l.actor_loss)?)?;
    let g = match g {
        Ok(g) => Some(g),
        // CG's iterate overflowed along a direction of vanishing curvature.
        Err(AlgoError::Candle(e)) if e.to_string().contains("non-finite") => None,
        Err(e) => return Err(e),
    };
    let (mut cg_iters, mut cg_residual, mut nonpositive) = (0.0, None, 1.0);
    let (direct_grads, step, implicit_ratio, fallback) = match g {
        Some(g) => {
            cg_iters = g.cg.iterations as f64;
            cg_residual = Some(g.cg.rel_residual).filter(|r| r.is_finite());
            nonpositive = match g.cg.stop {
                CgStop::NonPositiveCurvature { .. } => 1.0,
                _ => 0.0,
            };
            let total_ok = norm(&g.total)?.is_finite();
            if healthy(&g) && total_ok {
                let ratio = norm(&g.implicit)? / norm(&g.direct)?;
                if nonpositive == 0.0 {
                    agent.cg_warm = Some(g.cg.x.clone());
                }
                (g.direct, Some(g.total), ratio, 0.0)
            } else {
                (g.direct, None, 0.0, 1.0)
            }
        }
        None => (
            autodiff::grads(&l.actor_loss, agent.actor().vars())?,
            None,
            0.0,
            1.0,
        ),
    };
    let step = step.unwrap_or(direct_grads);
    check_finite("actor gradient norm", norm(&step)?)?;
    agent.actor_step_with(&step)?;

    // 4. Temperature.
    let (alpha_loss, alpha) = agent.alpha_step(&l.log_prob)?;

    let mut stats = critic.into_stats();
    stats.actor_loss = actor_loss;
    stats.entropy = -scalar(&l.log_prob.mean_all()?)?;
    stats.alpha = alpha;
    stats.alpha_loss = alpha_loss;
    stats.cg_iters = Some(cg_iters);
    stats.cg_residual = cg_residual;
    stats.cg_nonpositive = Some(nonpositive);
    stats.implicit_ratio = Some(implicit_ratio).filter(|r| r.is_finite());
    stats.cg_fallback = Some(fallback);
    Ok(stats)
}
