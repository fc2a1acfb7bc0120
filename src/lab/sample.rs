//! Sample-based tabular actor-critic (Appendix D.1.2, Algorithms 1-4, Table 2).
//!
//! Every algorithm runs episodes of `episode_len` steps with the current softmax policy, then
//! makes one actor update and one critic update (and `res_updates` res-critic updates for
//! Res-AC) from batches of `batch` items drawn with replacement from the buffers:
//! D = the transitions (s, a, r, s̃, ã) of the latest episode, O = every initial state so far.
//! The critic always minimises J̃_q = 1/|B| Σ (q(s,a) - (r + γ q'(s̃,ã)))² by its semi-gradient.
//! After each episode the policy is evaluated exactly (J, q_θ, d_θ) for the learning curves.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use super::LabError;
use super::exact::{PolicyEval, Vector, softmax_policy};
use super::mdp::TabularMdp;
use super::optim::Adam;

/// The four algorithms of Fig. 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Algorithm {
    /// Algorithm 1, Actor_o-Critic.
    ActorOCritic,
    /// Algorithm 2, Actor_g-Critic.
    ActorGCritic,
    /// Algorithm 3, Stack-AC.
    StackAc,
    /// Algorithm 4, Res-AC.
    ResAc,
}

impl Algorithm {
    /// All four, in the paper's order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::ActorOCritic,
        Algorithm::ActorGCritic,
        Algorithm::StackAc,
        Algorithm::ResAc,
    ];

    /// Short label used in CSVs and plots.
    pub fn label(self) -> &'static str {
        match self {
            Algorithm::ActorOCritic => "AoC",
            Algorithm::ActorGCritic => "AgC",
            Algorithm::StackAc => "Stack-AC",
            Algorithm::ResAc => "Res-AC",
        }
    }
}

/// How Stack-AC estimates ∂_θ of the critic's target r + γ Σ_ã π(ã|s̃) q(s̃,ã).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
pub enum StackGrad {
    /// Log-derivative trick on the stored next action, γ q(s̃,ã) ∇log π(ã|s̃), as eq. (23)
    /// estimates the same kind of term.
    #[default]
    Score,
    /// Exact expectation over ã, γ ∇_θ Σ_ã π(ã|s̃) q(s̃,ã) (all actions, lower variance).
    Expected,
}

/// Hyper-parameters (Table 2).
#[derive(Clone, Debug, Serialize)]
pub struct SampleConfig {
    /// Number of episodes (one actor update each).
    pub episodes: usize,
    /// Environment steps per episode and per gradient update (300).
    pub episode_len: usize,
    /// Batch size (300).
    pub batch: usize,
    /// Adam learning rate of the actor. Table 2's value is illegible in our copy of the paper;
    /// 0.01 is the actor rate of Appendix D.1.1.
    pub lr_actor: f64,
    /// Adam learning rate of the critic (2e-2).
    pub lr_critic: f64,
    /// Adam learning rate of the res-critic (2e-2).
    pub lr_res: f64,
    /// Stack-AC regulariser η (0.5).
    pub eta: f64,
    /// Res-critic updates per critic update: 1 for Fig. 1, 5 for Fig. 2.
    pub res_updates: usize,
    /// Stack-AC's estimator of the target's θ-derivative.
    pub stack_grad: StackGrad,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            episodes: 1000,
            episode_len: 300,
            batch: 300,
            lr_actor: 0.01,
            lr_critic: 0.02,
            lr_res: 0.02,
            eta: 0.5,
            res_updates: 1,
            stack_grad: StackGrad::Score,
        }
    }
}

impl SampleConfig {
    /// Checks that the settings are usable.
    pub fn validate(&self) -> Result<(), LabError> {
        if self.episodes == 0 || self.episode_len == 0 || self.batch == 0 {
            return Err(LabError::Config(
                "sample: episodes, episode length and batch size must be positive".into(),
            ));
        }
        let ok = |lr: f64| lr.is_finite() && lr > 0.0;
        if !(ok(self.lr_actor) && ok(self.lr_critic) && ok(self.lr_res)) {
            return Err(LabError::Config(format!(
                "sample: learning rates must be finite and positive (--lr-actor {}, \
                 --lr-critic {}, --lr-res {})",
                self.lr_actor, self.lr_critic, self.lr_res
            )));
        }
        if !self.eta.is_finite() || self.eta < 0.0 {
            return Err(LabError::Config(format!(
                "sample: η must be finite and non-negative, got {}",
                self.eta
            )));
        }
        // Per run: the episode, two sampled batches and the per-episode log.
        let mut needs = crate::memory::Needs::new();
        needs
            .add(
                format!("one sampled batch (--batch {})", self.batch),
                crate::memory::bytes(&[self.batch, 2], std::mem::size_of::<Transition>() + 8),
            )
            .add(
                format!("one episode (--episode-len {})", self.episode_len),
                crate::memory::bytes(&[self.episode_len], std::mem::size_of::<Transition>()),
            )
            .add(
                format!("the per-episode log (--episodes {})", self.episodes),
                crate::memory::bytes(&[self.episodes], std::mem::size_of::<EpisodeLog>() + 8),
            );
        needs
            .check()
            .map_err(|e| LabError::Config(format!("sample: {e}")))
    }
}

/// One stored transition (s_t, a_t, r_t, s_{t+1}, a_{t+1}).
#[derive(Clone, Copy, Debug)]
pub struct Transition {
    /// State.
    pub s: usize,
    /// Action taken.
    pub a: usize,
    /// Reward received.
    pub r: f64,
    /// Next state.
    pub s_next: usize,
    /// Next action, drawn from the same policy (the SARSA target of J̃_q).
    pub a_next: usize,
}

/// Measurements after one episode's updates.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeLog {
    /// Episode index, from 1.
    pub episode: usize,
    /// Environment steps so far.
    pub env_steps: usize,
    /// Undiscounted sum of rewards in the episode (goals reached in 300 steps on FourRoom).
    pub episode_return: f64,
    /// Exact J(θ) = d_θᵀ r of the updated policy.
    pub j: f64,
    /// The critic's predicted objective J_π(θ, q) = (1-γ) μ0ᵀ Π_θ q.
    pub pred_critic: f64,
    /// Critic plus res-critic, J_π(θ, q + w) (equals `pred_critic` without a res-critic).
    pub pred_critic_res: f64,
    /// ‖q - q_θ‖ weighted by d_θ (root mean square).
    pub err_critic: f64,
    /// ‖q + w - q_θ‖ weighted by d_θ.
    pub err_critic_res: f64,
}

/// Tabular learner state shared by the four algorithms.
struct Learner {
    na: usize,
    gamma: f64,
    theta: Vector,
    q: Vector,
    w: Vector,
    opt_actor: Adam,
    opt_critic: Adam,
    opt_res: Adam,
}

impl Learner {
    fn new(mdp: &TabularMdp, cfg: &SampleConfig) -> Self {
        let n = mdp.n_sa();
        Self {
            na: mdp.n_actions(),
            gamma: mdp.gamma(),
            theta: Vector::zeros(n),
            q: Vector::zeros(n),
            w: Vector::zeros(n),
            opt_actor: Adam::new(n, cfg.lr_actor),
            opt_critic: Adam::new(n, cfg.lr_critic),
            opt_res: Adam::new(n, cfg.lr_res),
        }
    }

    fn sa(&self, s: usize, a: usize) -> usize {
        s * self.na + a
    }

    /// Adds `coef` · ∇_θ log π(a|s) = coef · (e_a - π(s,·)) to `grad` (softmax score).
    fn add_score(&self, pi: &Vector, s: usize, a: usize, coef: f64, grad: &mut Vector) {
        for b in 0..self.na {
            let j = self.sa(s, b);
            grad[j] += coef * (if b == a { 1.0 } else { 0.0 } - pi[j]);
        }
    }

    /// Semi-gradient of 1/|B| Σ (x(s,a) - (reward_i + γ x'(s̃,ã)))² for a table x.
    fn td_gradient(&self, x: &Vector, batch: &[Transition], rewards: &[f64]) -> Vector {
        let mut g = Vector::zeros(x.len());
        let k = 2.0 / batch.len() as f64;
        for (t, &rew) in batch.iter().zip(rewards) {
            let target = rew + self.gamma * x[self.sa(t.s_next, t.a_next)];
            let i = self.sa(t.s, t.a);
            g[i] += k * (x[i] - target);
        }
        g
    }

    /// Critic step on J̃_q (all algorithms).
    fn critic_step(&mut self, batch: &[Transition]) {
        let rewards: Vec<f64> = batch.iter().map(|t| t.r).collect();
        let g = self.td_gradient(&self.q, batch, &rewards);
        self.opt_critic.descend(&mut self.q, &g);
    }

    /// Res-critic step on J̃_w with reward δ'(s,a) = r + γ q(s̃,ã) - q(s,a) from the current critic.
    fn res_critic_step(&mut self, batch: &[Transition]) {
        let rewards: Vec<f64> = batch
            .iter()
            .map(|t| {
                t.r + self.gamma * self.q[self.sa(t.s_next, t.a_next)] - self.q[self.sa(t.s, t.a)]
            })
            .collect();
        let g = self.td_gradient(&self.w, batch, &rewards);
        self.opt_res.descend(&mut self.w, &g);
    }
}

fn sample_action(pi: &Vector, na: usize, s: usize, rng: &mut impl Rng) -> usize {
    let u = rng.random::<f64>();
    let mut acc = 0.0;
    for a in 0..na {
        acc += pi[s * na + a];
        if u < acc {
            return a;
        }
    }
    na - 1
}

/// Runs one episode with policy π; returns (s0, transitions, undiscounted return).
fn collect_episode(
    mdp: &TabularMdp,
    pi: &Vector,
    len: usize,
    rng: &mut impl Rng,
) -> (usize, Vec<Transition>, f64) {
    let na = mdp.n_actions();
    let s0 = mdp.sample_initial(rng);
    let mut s = s0;
    let mut a = sample_action(pi, na, s, rng);
    let mut out = Vec::with_capacity(len);
    let mut ret = 0.0;
    for _ in 0..len {
        let (r, s_next) = mdp.step(s, a, rng);
        let a_next = sample_action(pi, na, s_next, rng);
        out.push(Transition {
            s,
            a,
            r,
            s_next,
            a_next,
        });
        ret += r;
        s = s_next;
        a = a_next;
    }
    (s0, out, ret)
}

fn sample_batch<T: Copy>(buf: &[T], n: usize, rng: &mut impl Rng) -> Vec<T> {
    (0..n)
        .map(|_| buf[rng.random_range(0..buf.len())])
        .collect()
}

/// Exact measurements of the learner's current (θ, q, w).
fn measure(
    mdp: &TabularMdp,
    l: &Learner,
    episode: usize,
    env_steps: usize,
    episode_return: f64,
) -> Result<EpisodeLog, LabError> {
    let ev = PolicyEval::new(mdp, &l.theta)?;
    let qw = &l.q + &l.w;
    let err = |x: &Vector| {
        let e = x - &ev.q;
        e.component_mul(&e).dot(&ev.d).sqrt()
    };
    Ok(EpisodeLog {
        episode,
        env_steps,
        episode_return,
        j: ev.j(),
        pred_critic: ev.actor_objective(&l.q),
        pred_critic_res: ev.actor_objective(&qw),
        err_critic: err(&l.q),
        err_critic_res: err(&qw),
    })
}

/// Algorithm 1, Actor_o-Critic: the actor ascends J̃^o_π = 1/|B_O| Σ_{s∈B_O} log π(a|s) q(s,a),
/// a ~ π(·|s), over initial states B_O ⊂ O, a sample estimate of ∂_θ J_π (eq. 12).
pub fn actor_o_critic(
    mdp: &TabularMdp,
    cfg: &SampleConfig,
    seed: u64,
) -> Result<Vec<EpisodeLog>, LabError> {
    cfg.validate()?;
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut l = Learner::new(mdp, cfg);
    let mut initial_states = Vec::new();
    let mut log = Vec::with_capacity(cfg.episodes);
    for ep in 1..=cfg.episodes {
        let pi = softmax_policy(l.na, &l.theta);
        let (s0, episode, ret) = collect_episode(mdp, &pi, cfg.episode_len, &mut rng);
        initial_states.push(s0);
        let mut g = Vector::zeros(l.theta.len());
        let k = 1.0 / cfg.batch as f64;
        for s in sample_batch(&initial_states, cfg.batch, &mut rng) {
            let a = sample_action(&pi, l.na, s, &mut rng);
            l.add_score(&pi, s, a, k * l.q[l.sa(s, a)], &mut g);
        }
        let critic_batch = sample_batch(&episode, cfg.batch, &mut rng);
        l.opt_actor.ascend(&mut l.theta, &g);
        l.critic_step(&critic_batch);
        log.push(measure(mdp, &l, ep, ep * cfg.episode_len, ret)?);
    }
    Ok(log)
}

/// Algorithm 2, Actor_g-Critic: the actor ascends J̃^g_π = 1/|B_D| Σ log π(a|s) q(s,a) over
/// on-policy transitions, a sample estimate of ∇^φ_θ J (eq. 9).
pub fn actor_g_critic(
    mdp: &TabularMdp,
    cfg: &SampleConfig,
    seed: u64,
) -> Result<Vec<EpisodeLog>, LabError> {
    cfg.validate()?;
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut l = Learner::new(mdp, cfg);
    let mut log = Vec::with_capacity(cfg.episodes);
    for ep in 1..=cfg.episodes {
        let pi = softmax_policy(l.na, &l.theta);
        let (_, episode, ret) = collect_episode(mdp, &pi, cfg.episode_len, &mut rng);
        let mut g = Vector::zeros(l.theta.len());
        let k = 1.0 / cfg.batch as f64;
        for t in sample_batch(&episode, cfg.batch, &mut rng) {
            l.add_score(&pi, t.s, t.a, k * l.q[l.sa(t.s, t.a)], &mut g);
        }
        let critic_batch = sample_batch(&episode, cfg.batch, &mut rng);
        l.opt_actor.ascend(&mut l.theta, &g);
        l.critic_step(&critic_batch);
        log.push(measure(mdp, &l, ep, ep * cfg.episode_len, ret)?);
    }
    Ok(log)
}

/// Algorithm 3, Stack-AC: the actor follows a sample estimate of the regularised semi-gradient
/// Stackelberg gradient (eq. 43 with (∂^semi_q)² J̃_q + ηI):
///
/// g̃ = ∂_θ J̃_π - (∂_θ ∂^semi_q J̃_q)ᵀ (2D̃ + ηI)⁻¹ ∂^semi_q J̃_π, where
/// * ∂_θ J̃_π = (1-γ)/|B_O| Σ_{s∈B_O} ∇log π(a|s) q(s,a) estimates eq. (12) with its (1-γ),
///   so that both terms keep the scale of eq. (43);
/// * D̃ is the empirical distribution of (s,a) in B_D, so ∂^semi_q J̃_q = -2D̃δ̃ and its
///   semi-Hessian is 2D̃ (J̃_q has no ½), and ∂^semi_q J̃_π = D̃ estimates d_θ (eq. 42);
/// * ∂_θ of the target r + γ Σ_ã π(ã|s̃) q(s̃,ã) is estimated per [`StackGrad`] (differentiating
///   the sampled target q'(s̃,ã) would give 0), and D̃ is held fixed: the bias of §5.3, which
///   turns the correction into a D̃-weighted estimate of ∂_θ((d')ᵀδ) (eq. 22-23).
pub fn stack_ac(
    mdp: &TabularMdp,
    cfg: &SampleConfig,
    seed: u64,
) -> Result<Vec<EpisodeLog>, LabError> {
    cfg.validate()?;
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut l = Learner::new(mdp, cfg);
    let mut initial_states = Vec::new();
    let mut log = Vec::with_capacity(cfg.episodes);
    let n = mdp.n_sa();
    for ep in 1..=cfg.episodes {
        let pi = softmax_policy(l.na, &l.theta);
        let (s0, episode, ret) = collect_episode(mdp, &pi, cfg.episode_len, &mut rng);
        initial_states.push(s0);
        let k = 1.0 / cfg.batch as f64;
        let mut g = Vector::zeros(n);
        for s in sample_batch(&initial_states, cfg.batch, &mut rng) {
            let a = sample_action(&pi, l.na, s, &mut rng);
            l.add_score(&pi, s, a, (1.0 - l.gamma) * k * l.q[l.sa(s, a)], &mut g);
        }
        let batch = sample_batch(&episode, cfg.batch, &mut rng);
        let mut d_emp = Vector::zeros(n);
        for t in &batch {
            d_emp[l.sa(t.s, t.a)] += k;
        }
        // u = (2D̃ + ηI)⁻¹ D̃, elementwise; pairs outside the batch have D̃ = 0 and u = 0.
        let u = d_emp.map(|x| {
            if x > 0.0 {
                x / (2.0 * x + cfg.eta)
            } else {
                0.0
            }
        });
        // -(∂_θ∂^semi_q J̃_q)ᵀ u = 2/|B| Σ_i u(s_i,a_i) γ ∇_θ Σ_ã π(ã|s̃_i) q(s̃_i,ã).
        for t in &batch {
            let coef = 2.0 * k * u[l.sa(t.s, t.a)] * l.gamma;
            let s = t.s_next;
            match cfg.stack_grad {
                StackGrad::Score => {
                    let qn = l.q[l.sa(s, t.a_next)];
                    l.add_score(&pi, s, t.a_next, coef * qn, &mut g);
                }
                StackGrad::Expected => {
                    let v: f64 = (0..l.na).map(|b| pi[l.sa(s, b)] * l.q[l.sa(s, b)]).sum();
                    for b in 0..l.na {
                        let j = l.sa(s, b);
                        g[j] += coef * pi[j] * (l.q[j] - v);
                    }
                }
            }
        }
        let critic_batch = sample_batch(&episode, cfg.batch, &mut rng);
        l.opt_actor.ascend(&mut l.theta, &g);
        l.critic_step(&critic_batch);
        log.push(measure(mdp, &l, ep, ep * cfg.episode_len, ret)?);
    }
    Ok(log)
}

/// Algorithm 4, Res-AC: the actor ascends J̃^res_π = 1/|B_D| Σ log π(a|s) (q(s,a) + w(s,a)),
/// a sample estimate of eq. (33); the res-critic w learns the on-policy value of the critic's
/// TD error δ' (eq. 31, by its semi-gradient), `res_updates` times per critic update, after it.
pub fn res_ac(
    mdp: &TabularMdp,
    cfg: &SampleConfig,
    seed: u64,
) -> Result<Vec<EpisodeLog>, LabError> {
    cfg.validate()?;
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut l = Learner::new(mdp, cfg);
    let mut log = Vec::with_capacity(cfg.episodes);
    for ep in 1..=cfg.episodes {
        let pi = softmax_policy(l.na, &l.theta);
        let (_, episode, ret) = collect_episode(mdp, &pi, cfg.episode_len, &mut rng);
        let mut g = Vector::zeros(l.theta.len());
        let k = 1.0 / cfg.batch as f64;
        for t in sample_batch(&episode, cfg.batch, &mut rng) {
            let i = l.sa(t.s, t.a);
            l.add_score(&pi, t.s, t.a, k * (l.q[i] + l.w[i]), &mut g);
        }
        let critic_batch = sample_batch(&episode, cfg.batch, &mut rng);
        l.opt_actor.ascend(&mut l.theta, &g);
        l.critic_step(&critic_batch);
        for _ in 0..cfg.res_updates {
            let res_batch = sample_batch(&episode, cfg.batch, &mut rng);
            l.res_critic_step(&res_batch);
        }
        log.push(measure(mdp, &l, ep, ep * cfg.episode_len, ret)?);
    }
    Ok(log)
}

/// Runs `alg` with `seed`.
pub fn run(
    alg: Algorithm,
    mdp: &TabularMdp,
    cfg: &SampleConfig,
    seed: u64,
) -> Result<Vec<EpisodeLog>, LabError> {
    match alg {
        Algorithm::ActorOCritic => actor_o_critic(mdp, cfg, seed),
        Algorithm::ActorGCritic => actor_g_critic(mdp, cfg, seed),
        Algorithm::StackAc => stack_ac(mdp, cfg, seed),
        Algorithm::ResAc => res_ac(mdp, cfg, seed),
    }
}
