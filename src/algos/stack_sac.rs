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
//! 3. [`autodiff::stackelberg_gradient`]: `u = (H + η I)⁻¹ ∂φ L_π` by conjugate gradient on
//!    exact Hessian-vector products (double backward; never a dense Hessian), warm-started
//!    from the previous round's `u`; then the mixed product `(∂θ ∂φ J_Q)ᵀ u`; the actor
//!    takes an Adam step along `∂θ L_π − (∂θ ∂φ J_Q)ᵀ u`. Since the formula is linear in the
//!    objective, passing the loss `L_π = −J_π` gives the negated ascent direction of eq. (43);
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
use super::agent::{SacAgent, StackHessian, UpdateStats, check_finite, scalar};
use crate::autodiff::{self, CgOptions, CgStop, ImplicitOptions, StackelbergGradient};
use crate::replay::{BatchTensors, ReplayBuffer};
use crate::rng::Rng;
use candle_core::Tensor;

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

/// Eq. (43) for given losses: the Stackelberg gradient of the actor loss, with CG options
/// from the agent's config and warm start `warm` (no guards; see [`update`]).
pub fn stackelberg_gradient(
    agent: &SacAgent,
    l: &StackLosses,
    warm: Option<&Tensor>,
) -> Result<StackelbergGradient, AlgoError> {
    let cfg = agent.config();
    let options = ImplicitOptions {
        lambda: cfg.eta,
        cg: CgOptions {
            max_iters: cfg.cg_iters,
            rel_tol: cfg.cg_tol,
            true_residual: false,
        },
    };
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
    let l = losses(agent, &b, &eps, &eps_next)?;
    let actor_loss = check_finite("actor loss", scalar(&l.actor_loss)?)?;

    // 3. Stackelberg gradient by CG on exact HVPs, warm-started from the last healthy
    //    solve; an unusable solve falls back to the plain gradient (module docs).
    let warm = if agent.config().cg_warm_start {
        agent.cg_warm.take()
    } else {
        None
    };
    let g = match stackelberg_gradient(agent, &l, warm.as_ref()) {
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
