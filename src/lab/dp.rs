//! Dynamic-programming experiments (Appendix D.1.1): r and P are known, every gradient is exact.
//!
//! Actor: PG (eq. 8), Actor_o (eq. 12) or Actor_g (eq. 9). Critic: BR, the full gradient (eq. 13),
//! or TD, the semi-gradient (eq. 18), both weighted by the on-policy d_θ. Both players use Adam
//! (actor 0.01, critic 0.02); θ and q start at zero and are updated simultaneously from the
//! same (θ, q).

use serde::Serialize;

use super::LabError;
use super::exact::{PolicyEval, Vector};
use super::mdp::TabularMdp;
use super::optim::Adam;

/// The actor's update direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ActorRule {
    /// True policy gradient ∇J (eq. 8); the critic is learnt but not used by the actor.
    Pg,
    /// Actor_o: ∂_θ J_π (eq. 12).
    ActorO,
    /// Actor_g: ∇^φ_θ J (eq. 9).
    ActorG,
}

/// The critic's update direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CriticRule {
    /// Bellman-residual minimisation: the full gradient (eq. 13).
    Br,
    /// Temporal-difference: the semi-gradient (eq. 18).
    Td,
}

impl ActorRule {
    /// Short label used in CSVs and plots.
    pub fn label(self) -> &'static str {
        match self {
            ActorRule::Pg => "PG",
            ActorRule::ActorO => "AoC",
            ActorRule::ActorG => "AgC",
        }
    }
}

impl CriticRule {
    /// Short label used in CSVs and plots.
    pub fn label(self) -> &'static str {
        match self {
            CriticRule::Br => "BR",
            CriticRule::Td => "TD",
        }
    }
}

/// The six (actor, critic) combinations of Fig. 4b-c.
pub const METHODS: [(ActorRule, CriticRule); 6] = [
    (ActorRule::Pg, CriticRule::Br),
    (ActorRule::Pg, CriticRule::Td),
    (ActorRule::ActorO, CriticRule::Br),
    (ActorRule::ActorO, CriticRule::Td),
    (ActorRule::ActorG, CriticRule::Br),
    (ActorRule::ActorG, CriticRule::Td),
];

/// Settings of a DP run.
#[derive(Clone, Debug, Serialize)]
pub struct DpConfig {
    /// Number of simultaneous actor/critic updates.
    pub iters: usize,
    /// Adam learning rate of the actor (paper: 0.01).
    pub lr_actor: f64,
    /// Adam learning rate of the critic (paper: 0.02).
    pub lr_critic: f64,
    /// Record every `log_every` iterations (and the last one).
    pub log_every: usize,
}

impl Default for DpConfig {
    fn default() -> Self {
        Self {
            iters: 5000,
            lr_actor: 0.01,
            lr_critic: 0.02,
            log_every: 10,
        }
    }
}

impl DpConfig {
    /// Checks that the settings are usable.
    pub fn validate(&self) -> Result<(), LabError> {
        if self.iters == 0 || self.log_every == 0 {
            return Err(LabError::Config(
                "dp: iters and log_every must be positive".into(),
            ));
        }
        let ok = |lr: f64| lr.is_finite() && lr > 0.0;
        if !(ok(self.lr_actor) && ok(self.lr_critic)) {
            return Err(LabError::Config(format!(
                "dp: learning rates must be finite and positive (--lr-actor {}, --lr-critic {})",
                self.lr_actor, self.lr_critic
            )));
        }
        // The logged iterates are kept in memory until the run ends.
        let rows = self.iters / self.log_every + 2;
        let mut needs = crate::memory::Needs::new();
        needs.add(
            format!(
                "the log of --iters {} every --log-every {} ({rows} rows)",
                self.iters, self.log_every
            ),
            crate::memory::bytes(&[rows], std::mem::size_of::<DpPoint>()),
        );
        needs
            .check()
            .map_err(|e| LabError::Config(format!("dp: {e}")))
    }
}

/// One logged iterate (before the update of that iteration).
#[derive(Clone, Debug, Serialize)]
pub struct DpPoint {
    /// Iteration index (0 = initial parameters).
    pub iter: usize,
    /// J(θ) = d_θᵀ r (eq. 7).
    pub j: f64,
    /// J_q(θ, q) with D = D_θ (eq. 11).
    pub j_q: f64,
    /// Cosine between the actor's direction and the true ∇J.
    pub cos_to_pg: f64,
}

fn cosine(a: &Vector, b: &Vector) -> f64 {
    let n = a.norm() * b.norm();
    if n > 0.0 { a.dot(b) / n } else { 1.0 }
}

/// Runs one (actor, critic) combination from θ = 0, q = 0.
pub fn run(
    mdp: &TabularMdp,
    actor: ActorRule,
    critic: CriticRule,
    cfg: &DpConfig,
) -> Result<Vec<DpPoint>, LabError> {
    cfg.validate()?;
    let n = mdp.n_sa();
    let mut theta = Vector::zeros(n);
    let mut q = Vector::zeros(n);
    let mut opt_actor = Adam::new(n, cfg.lr_actor);
    let mut opt_critic = Adam::new(n, cfg.lr_critic);
    let mut log = Vec::with_capacity(cfg.iters / cfg.log_every + 2);
    for it in 0..=cfg.iters {
        let ev = PolicyEval::new(mdp, &theta)?;
        let g_actor = match actor {
            ActorRule::Pg => ev.grad_j(),
            ActorRule::ActorO => ev.grad_actor_o(&q),
            ActorRule::ActorG => ev.grad_actor_g(&q),
        };
        if it % cfg.log_every == 0 || it == cfg.iters {
            log.push(DpPoint {
                iter: it,
                j: ev.j(),
                j_q: ev.critic_objective(&q, &ev.d),
                cos_to_pg: cosine(&g_actor, &ev.grad_j()),
            });
        }
        if it == cfg.iters {
            break;
        }
        let g_critic = match critic {
            CriticRule::Br => ev.critic_grad_full(&q, &ev.d),
            CriticRule::Td => ev.critic_grad_semi(&q, &ev.d),
        };
        opt_actor.ascend(&mut theta, &g_actor);
        opt_critic.descend(&mut q, &g_critic);
    }
    Ok(log)
}

/// First logged iteration at which J reaches `frac` of J*, if any.
pub fn iters_to_reach(log: &[DpPoint], j_star: f64, frac: f64) -> Option<usize> {
    log.iter().find(|p| p.j >= frac * j_star).map(|p| p.iter)
}

/// The logged point closest to iteration `iter` (at or before it).
pub fn at_iter(log: &[DpPoint], iter: usize) -> Option<&DpPoint> {
    log.iter().rev().find(|p| p.iter <= iter)
}
