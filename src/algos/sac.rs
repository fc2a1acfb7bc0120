//! SAC (Haarnoja et al. 2018b), the paper's baseline, with the `SAC-x-0` schedule of
//! paper 001 Sec. 6.2: `x` critic updates per actor update.
//!
//! One round:
//! 1. `x` times: sample a minibatch, minimise the soft Bellman residual
//!    `J_Q = E[½ (Q_i(s,a) − y)²]`, `y = r + γ(1−d)(min_i Q̄_i(s′,a′) − α ln π(a′|s′))`,
//!    `a′ ~ π(·|s′)` (D.2.1), then Polyak-average the targets (`τ`, interval 1);
//! 2. on the last minibatch, minimise the actor objective
//!    `J_π = E[α ln π(ã|s) − min_i Q_i(s, ã)]`, `ã = f_θ(ε; s)` reparameterised — the
//!    KL projection `KL(π ‖ exp(Q/α)/Z)` of Haarnoja et al., i.e. eq. (74) up to constants
//!    (eq. 76-78);
//! 3. update the temperature towards the target entropy −dim(A).

use super::AlgoError;
use super::agent::{SacAgent, UpdateStats};
use crate::replay::ReplayBuffer;
use crate::rng::Rng;

/// One `SAC-x-0` round (see the module docs).
pub fn update(
    agent: &mut SacAgent,
    replay: &ReplayBuffer,
    rng: &mut Rng,
) -> Result<UpdateStats, AlgoError> {
    // 1. Critic: x steps on fresh minibatches.
    let (b, critic) = agent.critic_phase(replay, rng)?;

    // 2. Actor: J_π(θ) = E[α ln π(ã|s) − min_i Q_i(s, ã)] with the critic frozen.
    let eps = agent.noise(rng, b.obs.dim(0)?)?;
    let (actor_loss, sample) = agent.actor_step_on(&b.obs, &eps, |agent, sample| {
        let q = agent.frozen_min_q(&b.obs, &sample.action)?;
        let alpha = agent.entropy().alpha_tensor()?;
        Ok((sample.log_prob.broadcast_mul(&alpha)? - q)?.mean_all()?)
    })?;

    // 3. Temperature.
    let (alpha_loss, alpha) = agent.alpha_step(&sample.log_prob)?;

    let mut stats = critic.into_stats();
    stats.actor_loss = actor_loss;
    stats.entropy = -super::agent::scalar(&sample.log_prob.mean_all()?)?;
    stats.alpha = alpha;
    stats.alpha_loss = alpha_loss;
    Ok(stats)
}
