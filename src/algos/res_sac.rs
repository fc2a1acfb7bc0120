//! Res-SAC (paper 001 Sec. 4.3, Appendix C.1, Algorithm 5, D.2.1): SAC plus a res-critic
//! `W_ψ` that learns the value of the critic's residual, which corrects the actor's gradient
//! towards the true policy gradient (eq. 30-35).
//!
//! One `Res-SAC-x-y` round (Algorithm 5, lines 9-17):
//! 1. `x` critic steps, exactly as SAC (`J_Q`, D.2.1), each followed by the Polyak update;
//! 2. `y` res-critic steps on fresh minibatches: the reward is the critic's clipped residual
//!    `r̃ = clip(δ, −c, c)`, `δ = r + γ(1−d) min_i Q̄_i(s′,a′) − min_i Q_i(s,a)` (no entropy
//!    term), and `J_W = E[½ (W_ψ(s,a) − (r̃ + γ(1−d) W_ψ̄(s′,a′)))²]`, `a′ ~ π(·|s′)`; then
//!    the Polyak update of `W_ψ̄`;
//! 3. the actor minimises `KL(π ‖ exp(Q + W)/Z)`, i.e.
//!    `J_π = E[α ln π(ã|s) − (min_i Q_i(s,ã) + W_ψ(s,ã))]` with both critics frozen;
//! 4. the temperature step, as SAC.
//!
//! Choices where the paper is silent: `Q(s,a)` in `δ` is `min(Q_1, Q_2)`, the critic as the
//! actor sees it; one next action `a′` serves both `δ` and `W`'s bootstrap; `W` is a single
//! network (no clipped double-W); terminal transitions do not bootstrap `W`.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;

use super::AlgoError;
use super::agent::{SacAgent, SacConfig, UpdateStats, check_finite, frozen_mlp_forward, scalar};
use crate::nn::{QNetwork, copy_vars, polyak_update};
use crate::replay::{BatchTensors, ReplayBuffer};
use crate::rng::Rng;

/// The res-critic `W_ψ(s, a)` with its Polyak-averaged target `W_ψ̄`.
#[derive(Clone)]
pub struct ResCritic {
    online: QNetwork,
    target: QNetwork,
    varmap: VarMap,
    target_varmap: VarMap,
}

impl std::fmt::Debug for ResCritic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResCritic")
            .field("online", &self.online)
            .finish_non_exhaustive()
    }
}

impl ResCritic {
    /// `[obs, act] -> hidden -> 1` (`res_critic.*`), target initialised as a copy.
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        config: &SacConfig,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Self, AlgoError> {
        let varmap = VarMap::new();
        let target_varmap = VarMap::new();
        let build = |vm: &VarMap, rng: &mut Rng| {
            QNetwork::new(
                obs_dim,
                act_dim,
                &config.hidden,
                config.activation,
                vm,
                "res_critic",
                dtype,
                &Device::Cpu,
                rng,
            )
        };
        let online = build(&varmap, rng)?;
        // The target is overwritten by the copy; a scratch RNG keeps `rng`'s stream unchanged.
        let target = build(&target_varmap, &mut Rng::seed_from_u64(0))?;
        copy_vars(target.vars(), online.vars())?;
        Ok(Self {
            online,
            target,
            varmap,
            target_varmap,
        })
    }

    /// `W_ψ(s, a)`, `[batch]`.
    pub fn forward(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor, AlgoError> {
        Ok(self.online.forward(obs, act)?)
    }

    /// `W_ψ̄(s, a)`, `[batch]`.
    pub fn target_forward(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor, AlgoError> {
        Ok(self.target.forward(obs, act)?)
    }

    /// Online variables (optimiser order).
    pub fn vars(&self) -> &[Var] {
        self.online.vars()
    }

    /// Target variables, same order.
    pub fn target_vars(&self) -> &[Var] {
        self.target.vars()
    }

    /// Online variable store.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Target variable store.
    pub fn target_varmap(&self) -> &VarMap {
        &self.target_varmap
    }

    /// `ψ̄ ← τ ψ + (1 − τ) ψ̄`.
    pub fn soft_update(&self, tau: f64) -> Result<(), AlgoError> {
        Ok(polyak_update(self.target.vars(), self.online.vars(), tau)?)
    }
}

/// The res-critic's regression target and residual statistics for one minibatch.
#[derive(Clone, Debug)]
pub struct ResTarget {
    /// `r̃ + γ(1−d) W_ψ̄(s′, a′)`, `[batch]`, detached.
    pub target: Tensor,
    /// The unclipped critic residual `δ`, `[batch]`, detached.
    pub delta: Tensor,
    /// The clipped reward `r̃ = clip(δ, −c, c)`, `[batch]`, detached.
    pub reward: Tensor,
}

/// D.2.1's res-critic target with next-action noise `eps_next`:
/// `δ = r + γ(1−d) min_i Q̄_i(s′,a′) − min_i Q_i(s,a)`, `r̃ = clip(δ, −c, c)`,
/// target `= r̃ + γ(1−d) W_ψ̄(s′,a′)`, `a′ = f_θ(ε′; s′)`. No entropy terms.
pub fn res_target(
    agent: &SacAgent,
    b: &BatchTensors,
    eps_next: &Tensor,
) -> Result<ResTarget, AlgoError> {
    let w = agent
        .res_critic()
        .ok_or_else(|| AlgoError::Config(format!("{} has no res-critic", agent.algo())))?;
    let c = agent
        .config()
        .clip
        .ok_or_else(|| AlgoError::Config("res-sac needs a clip value".into()))?;
    let discount = agent.discount(b)?;
    let next = agent
        .actor()
        .sample_with_noise(&b.next_obs, eps_next)?
        .action;
    let q_next = agent.critic().target_min_q(&b.next_obs, &next)?;
    let q = agent.critic().min_q(&b.obs, &b.actions)?;
    let delta = ((&b.rewards + (&discount * q_next)?)? - q)?.detach();
    let reward = delta.clamp(-c, c)?;
    let w_next = w.target_forward(&b.next_obs, &next)?;
    let target = (&reward + (discount * w_next)?)?.detach();
    Ok(ResTarget {
        target,
        delta,
        reward,
    })
}

/// One `Res-SAC-x-y` round (see the module docs).
pub fn update(
    agent: &mut SacAgent,
    replay: &ReplayBuffer,
    rng: &mut Rng,
) -> Result<UpdateStats, AlgoError> {
    // 1. Critic: x steps, as SAC.
    let (b, critic) = agent.critic_phase(replay, rng)?;

    // 2. Res-critic: y steps on J_W with the clipped residual as reward.
    let (tau, c, y_updates) = {
        let cfg = agent.config();
        (cfg.tau, cfg.clip.unwrap_or(f64::INFINITY), cfg.res_updates)
    };
    let (mut res_loss, mut w_mean, mut delta_max, mut clipped) = (0.0, 0.0, 0.0f64, 0.0);
    for _ in 0..y_updates {
        let rb = agent.sample_batch(replay, rng)?;
        let eps = agent.noise(rng, rb.obs.dim(0)?)?;
        let t = res_target(agent, &rb, &eps)?;
        let (w, opt) = agent.res_parts()?;
        let w_sa = w.forward(&rb.obs, &rb.actions)?;
        let loss = ((&w_sa - &t.target)?.sqr()?.mean_all()? * 0.5)?;
        res_loss += check_finite("res-critic loss", scalar(&loss)?)?;
        opt.backward_step(&loss)?;
        w.soft_update(tau)?;
        w_mean += scalar(&w_sa.detach().mean_all()?)?;
        let abs = t.delta.abs()?;
        delta_max = delta_max.max(scalar(&abs.max_all()?)?);
        clipped += scalar(&abs.ge(c)?.to_dtype(DType::F64)?.mean_all()?)?;
    }
    let n = y_updates.max(1) as f64;

    // 3. Actor: J_π = E[α ln π(ã|s) − (min_i Q_i(s,ã) + W_ψ(s,ã))], critics frozen.
    let eps = agent.noise(rng, b.obs.dim(0)?)?;
    let (actor_loss, sample) = agent.actor_step_on(&b.obs, &eps, |agent, sample| {
        let q = agent.frozen_min_q(&b.obs, &sample.action)?;
        let w = agent
            .res_critic()
            .ok_or_else(|| AlgoError::Config("res-sac without res-critic".into()))?;
        let x = Tensor::cat(&[&b.obs, &sample.action], 1)?;
        let w_val =
            frozen_mlp_forward(w.vars(), &x, agent.config().activation)?.squeeze(D::Minus1)?;
        let alpha = agent.entropy().alpha_tensor()?;
        Ok((sample.log_prob.broadcast_mul(&alpha)? - (q + w_val)?)?.mean_all()?)
    })?;

    // 4. Temperature.
    let (alpha_loss, alpha) = agent.alpha_step(&sample.log_prob)?;

    let mut stats = critic.into_stats();
    stats.actor_loss = actor_loss;
    stats.entropy = -scalar(&sample.log_prob.mean_all()?)?;
    stats.alpha = alpha;
    stats.alpha_loss = alpha_loss;
    stats.res_loss = Some(res_loss / n);
    stats.w_mean = Some(w_mean / n);
    stats.res_delta_abs_max = Some(delta_max);
    stats.res_clip_frac = Some(clipped / n);
    Ok(stats)
}
