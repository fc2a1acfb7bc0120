//! AC, the paper's baseline (paper 000 Sec. 2.1 and 4): after each epoch, one actor step along
//! the policy gradient with GAE advantages (eq. (7), (9)) and `k` critic steps regressing the
//! V critic on Monte-Carlo returns (eq. (8), (10); "unrolling", k = 1 and 80 in Fig. 1).
//!
//! ```text
//! ∂J/∂θ = (1/N) Σ_t ∇θ ln π_θ(a_t|s_t) Â_t              (Â_t: GAE, normalised per epoch)
//! θ ← θ + αθ ∂J/∂θ                                       (eq. (9))
//! repeat k times:  w ← w − αw ∇w (1/N) Σ_t (V_w(s_t) − G_t)²   (eq. (10))
//! ```
//!
//! The critic steps are shared with STAC ([`super::stac`]), which only changes the actor step.

use candle_core::{DType, Tensor};

use super::on_policy::Result;
use super::on_policy::{Batch, OnPolicyAgent, Policy};
use crate::autodiff::{self, CgStop};
use crate::nn::VCritic;

/// What an actor step reports.
#[derive(Clone, Debug)]
pub(crate) struct ActorStep {
    pub objective: f64,
    pub direct_norm: f64,
    pub implicit_norm: f64,
    pub total_norm: f64,
    pub objective_grad_w_norm: f64,
    pub lambda: Option<f64>,
    pub cg_iterations: usize,
    pub cg_residual: f64,
    pub cg_stop: Option<CgStop>,
}

/// The actor's surrogate `(1/N) Σ_t ln π_θ(a_t|s_t) Â_t` with the advantages held constant:
/// its θ-gradient is the GAE policy gradient `∂J/∂θ` (eq. (7) with `Â_t` in place of `Q_w`).
pub fn policy_surrogate(policy: &Policy, batch: &Batch) -> Result<Tensor> {
    let logp = policy.log_prob(&batch.obs, &batch.actions)?;
    Ok((logp * &batch.actor_advantages)?.mean_all()?)
}

/// The critic loss `L(w) = (1/N) Σ_t (V_w(s_t) − G_t)²` (eq. (14) for a V critic, the sample
/// over the epoch's states, Monte-Carlo targets `G_t` held constant).
pub fn critic_loss(critic: &VCritic, batch: &Batch) -> Result<Tensor> {
    let v = critic.forward(&batch.obs)?;
    Ok((v - &batch.returns_tensor)?.sqr()?.mean_all()?)
}

/// `∂J/∂θ`, one tensor per actor variable, and the surrogate's value.
pub fn policy_gradient(policy: &Policy, batch: &Batch) -> Result<(f64, Vec<Tensor>)> {
    let s = policy_surrogate(policy, batch)?;
    let value = scalar(&s)?;
    Ok((value, autodiff::grads(&s, policy.vars())?))
}

/// `‖g‖` over a list of tensors.
pub(crate) fn norm(g: &[Tensor]) -> Result<f64> {
    let mut s = 0.0;
    for t in g {
        s += autodiff::dot(t, t)?;
    }
    Ok(s.sqrt())
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// The AC actor step: `θ ← θ + αθ ∂J/∂θ` (eq. (9); Adam ascends the same direction).
pub(crate) fn actor_step(agent: &mut OnPolicyAgent, batch: &Batch) -> Result<ActorStep> {
    let (objective, g) = policy_gradient(&agent.policy, batch)?;
    let norm = norm(&g)?;
    let descent = g
        .iter()
        .map(|t| t.neg())
        .collect::<candle_core::Result<Vec<_>>>()?;
    agent.actor_opt.descend(&descent)?;
    Ok(ActorStep {
        objective,
        direct_norm: norm,
        implicit_norm: 0.0,
        total_norm: norm,
        objective_grad_w_norm: 0.0,
        lambda: None,
        cg_iterations: 0,
        cg_residual: 0.0,
        cg_stop: None,
    })
}

/// The `k` critic steps of eq. (10) / (26) on the whole epoch; returns the loss before the
/// first and after the last step.
pub(crate) fn critic_steps(agent: &mut OnPolicyAgent, batch: &Batch) -> Result<(f64, f64)> {
    let mut before = None;
    for _ in 0..agent.config().critic_steps {
        let loss = critic_loss(&agent.critic, batch)?;
        if before.is_none() {
            before = Some(scalar(&loss)?);
        }
        let g = autodiff::grads(&loss, agent.critic.vars())?;
        agent.critic_opt.descend(&g)?;
    }
    let after = scalar(&critic_loss(&agent.critic, batch)?)?;
    Ok((before.unwrap_or(after), after))
}
