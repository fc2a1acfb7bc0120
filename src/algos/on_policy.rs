//! What AC and STAC share (paper 000 Sec. 4): the configuration, epochs of a fixed number of
//! environment steps, GAE(γ, λ_GAE) advantages for the actor, Monte-Carlo returns for the
//! critic, the policy (Gaussian with a state-independent log-std for `Box` actions, categorical
//! for `Discrete`), the V critic, the optimisers, checkpointable state and [`run_epochs`].
//!
//! One epoch, as in the paper (and in Spinning Up's VPG, on which its public code is built):
//!
//! 1. [`OnPolicyAgent::collect_epoch`]: `steps_per_epoch` steps with the current policy. The
//!    environment is reset (seeded from the caller's [`Rng`]) at the start of the epoch and
//!    after every episode, so an epoch holds several episodes, and the last one is usually cut
//!    by the end of the epoch. Each episode piece is a [`Segment`] that records how it ended:
//!    terminated (no bootstrap), truncated by the time limit or cut by the epoch end (both
//!    bootstrap with `V(s_T)` of the observation after the last step).
//! 2. [`OnPolicyAgent::update`]: advantages and returns with the current critic, then one actor
//!    step ([`super::ac`] or [`super::stac`]) and `k` critic steps (`ac::critic_steps`).
//!
//! Reproducibility: all randomness (initialisation, actions, environment reset seeds) comes
//! from the [`Rng`] passed in, so the same seed gives the same numbers.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::autodiff::CgStop;
use crate::envs::EnvError;
use crate::envs::{self, Env, Space};
use crate::nn::{
    Activation, Adam, AdamConfig, CategoricalPolicy, DiagGaussianPolicy, MlpConfig, VCritic,
};
use crate::rng::Rng;

/// The actor update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnPolicyAlgo {
    /// Plain actor-critic: the actor follows `∂J/∂θ` (eq. (9)).
    Ac,
    /// Stackelberg actor-critic: the actor follows `dJ/dθ` (eq. (19), (25)).
    Stac,
}

/// The optimiser of both players.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Plain gradient steps `θ ← θ + αθ g`, `w ← w − αw ∇L`: eq. (9)-(10) and (25)-(26) as
    /// written, and what the paper's public code does (it steps the parameters by hand). The
    /// default, because the Stackelberg correction is a change of the gradient's direction
    /// *and size*; Adam's per-coordinate normalisation would partly undo the latter.
    Sgd,
    /// Adam (PyTorch semantics; betas 0.9 / 0.999, eps 1e-8) on both players.
    Adam,
}

/// Floating-point precision of the networks and of the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// `f32` (fast).
    F32,
    /// `f64` (tests against finite differences and dense solves).
    F64,
}

impl Precision {
    /// The Candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        }
    }
}

/// Which matrix the STAC inverse is taken of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CriticHessian {
    /// The exact critic Hessian `∂²L/∂w²` of eq. (21)-(22), including the
    /// `(V_w − G) ∂²V_w/∂w²` term (the default, and what the paper prescribes).
    Exact,
    /// The Gauss-Newton part `(2/N) Σ ∇V ∇Vᵀ` only (positive semi-definite; an explicit
    /// deviation from the paper).
    GaussNewton,
}

/// Which sample estimators of eq. (19)'s `∂J/∂w` and mixed term STAC uses (`∂J/∂θ` and the
/// critic Hessian are the same in both; see [`super::stac`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StacEstimator {
    /// The derivatives of one `J` and one `L` (the module docs' items 2 and 3): `∂J/∂w` of
    /// the critic-bootstrapped λ-return the actor uses, the mixed term of Proposition 1
    /// over every visited state.
    #[default]
    Exact,
    /// The surrogates of the paper's public code: `∂J/∂w = ∇w mean_t V_w(s_t)`, and the
    /// mixed term of `2 · mean_t(ln π_t Â_t) · (G_0 − V_w(s_0))` with the first state of
    /// the epoch only (`Â` the actor's normalised advantages).
    Paper,
}

/// STAC options (ignored by AC, but still validated).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StacConfig {
    /// Hessian regularisation λ of Sec. 3.1 at the first epoch (paper: 0 on CartPole, 500 on
    /// Reacher, Hopper and Walker2d). λ → ∞ recovers AC.
    pub lambda: f64,
    /// Per-epoch decay factor of λ in `(0, 1]` (1 = constant; the paper's Sec. 5 proposes
    /// decaying λ as learning approaches an equilibrium): `λ_e = max(λ · decay^e, lambda_min)`.
    pub lambda_decay: f64,
    /// Floor of the decayed λ (must not exceed `lambda`).
    pub lambda_min: f64,
    /// Conjugate-gradient iterations for `(∂²L/∂w² + λI) u = ∂J/∂w` (paper code: 10).
    pub cg_iters: usize,
    /// CG stops early at this relative residual (SciPy's default tolerance, 1e-5).
    pub cg_rel_tol: f64,
    /// Report the true residual `‖b − A u‖ / ‖b‖` (one more Hessian-vector product) instead
    /// of CG's recursive one.
    pub cg_true_residual: bool,
    /// Start CG from the previous epoch's solution instead of 0.
    pub warm_start: bool,
    /// Exact Hessian (default) or Gauss-Newton.
    pub hessian: CriticHessian,
    /// How the Hessian-vector and mixed products are computed (the fast R-operator by
    /// default; Candle's double backward as reference). Same values up to rounding.
    #[serde(default)]
    pub curvature: crate::autodiff::CurvatureEngine,
    /// Trust ratio ρ of the implicit term: when `‖implicit‖ > ρ ‖∂J/∂θ‖` the implicit term is
    /// scaled down to `ρ ‖∂J/∂θ‖` before it is added (an explicit deviation from the paper,
    /// which adds it as it comes; `None`). The direction of each term is kept, only the
    /// implicit term's share of the step is bounded, like LARS/trust-ratio step rules.
    #[serde(default)]
    pub implicit_max_ratio: Option<f64>,
    /// The sample estimators of `∂J/∂w` and of the mixed term.
    #[serde(default)]
    pub estimator: StacEstimator,
}

impl Default for StacConfig {
    /// λ = 0 constant, 10 CG iterations, tolerance 1e-5, exact Hessian, no warm start.
    fn default() -> Self {
        Self {
            lambda: 0.0,
            lambda_decay: 1.0,
            lambda_min: 0.0,
            cg_iters: 10,
            cg_rel_tol: 1e-5,
            cg_true_residual: false,
            warm_start: false,
            hessian: CriticHessian::Exact,
            curvature: crate::autodiff::CurvatureEngine::Fast,
            implicit_max_ratio: None,
            estimator: StacEstimator::Exact,
        }
    }
}

impl StacConfig {
    /// λ used in the update after `epochs_done` earlier updates.
    pub fn lambda_at(&self, epochs_done: u64) -> f64 {
        if self.lambda_decay == 1.0 {
            return self.lambda;
        }
        let e = i32::try_from(epochs_done).unwrap_or(i32::MAX);
        (self.lambda * self.lambda_decay.powi(e)).max(self.lambda_min)
    }

    fn validate(&self) -> Result<()> {
        for l in [self.lambda, self.lambda_min] {
            if !(l.is_finite() && l >= 0.0) {
                return Err(OnPolicyError::InvalidLambda(l));
            }
        }
        if let Some(r) = self
            .implicit_max_ratio
            .filter(|r| !(r.is_finite() && *r >= 0.0))
        {
            return Err(OnPolicyError::InvalidConfig(format!(
                "implicit_max_ratio must be finite and >= 0, got {r}"
            )));
        }
        if self.lambda_min > self.lambda {
            return Err(OnPolicyError::InvalidConfig(format!(
                "lambda_min ({}) exceeds lambda ({})",
                self.lambda_min, self.lambda
            )));
        }
        if !(self.lambda_decay > 0.0 && self.lambda_decay <= 1.0) {
            return Err(OnPolicyError::InvalidConfig(format!(
                "lambda_decay must be in (0, 1], got {}",
                self.lambda_decay
            )));
        }
        if self.cg_iters == 0 {
            return Err(OnPolicyError::InvalidConfig(
                "cg_iters must be at least 1".into(),
            ));
        }
        if !(self.cg_rel_tol.is_finite() && self.cg_rel_tol >= 0.0) {
            return Err(OnPolicyError::InvalidConfig(format!(
                "cg_rel_tol must be finite and >= 0, got {}",
                self.cg_rel_tol
            )));
        }
        Ok(())
    }
}

/// Hyper-parameters of AC / STAC. [`Default`] gives the paper's architecture (two hidden
/// layers of 64, tanh), the defaults of its public code (plain gradient steps with αθ = 0.1,
/// αw = 0.01) and the Spinning Up VPG values that code inherits (4000 steps per epoch,
/// γ = 0.99, λ_GAE = 0.97, k = 80, normalised advantages).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnPolicyConfig {
    /// AC or STAC.
    pub algo: OnPolicyAlgo,
    /// Environment steps per epoch.
    pub steps_per_epoch: usize,
    /// Discount γ.
    pub gamma: f64,
    /// GAE's λ (not STAC's λ).
    pub gae_lambda: f64,
    /// Actor learning rate αθ.
    pub actor_lr: f64,
    /// Critic learning rate αw.
    pub critic_lr: f64,
    /// Critic steps per epoch, the paper's unrolling `k` (1 and 80 in Fig. 1).
    pub critic_steps: usize,
    /// SGD (paper) or Adam.
    pub optimizer: OptimizerKind,
    /// Hidden layer widths of actor and critic.
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Initial log-std of the Gaussian policy (`Box` actions only; `None` = -0.5 as in
    /// Spinning Up). Setting it for a discrete action space is an error.
    pub init_log_std: Option<f64>,
    /// Shift and scale the advantages to mean 0, std 1 per epoch (Spinning Up, paper code).
    pub normalize_advantages: bool,
    /// Network precision.
    pub precision: Precision,
    /// STAC options.
    pub stac: StacConfig,
}

impl Default for OnPolicyConfig {
    fn default() -> Self {
        Self {
            algo: OnPolicyAlgo::Ac,
            steps_per_epoch: 4000,
            gamma: 0.99,
            gae_lambda: 0.97,
            actor_lr: 0.1,
            critic_lr: 1e-2,
            critic_steps: 80,
            optimizer: OptimizerKind::Sgd,
            hidden: vec![64, 64],
            activation: Activation::FastTanh,
            init_log_std: None,
            normalize_advantages: true,
            precision: Precision::F32,
            stac: StacConfig::default(),
        }
    }
}

/// Spinning Up's initial log-std of the Gaussian policy.
pub const DEFAULT_INIT_LOG_STD: f64 = -0.5;

impl OnPolicyConfig {
    /// Checks every field, and the continuous-only options against `action_space`.
    pub fn validate(&self, action_space: &Space) -> Result<()> {
        let bad = |m: String| Err(OnPolicyError::InvalidConfig(m));
        self.stac.validate()?;
        if self.critic_steps == 0 {
            return Err(OnPolicyError::ZeroCriticSteps);
        }
        if self.steps_per_epoch == 0 {
            return bad("steps_per_epoch must be at least 1".into());
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return bad(format!("gamma must be in (0, 1], got {}", self.gamma));
        }
        if !(0.0..=1.0).contains(&self.gae_lambda) {
            return bad(format!(
                "gae_lambda must be in [0, 1], got {}",
                self.gae_lambda
            ));
        }
        for (name, lr) in [("actor_lr", self.actor_lr), ("critic_lr", self.critic_lr)] {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!("{name} must be finite and > 0, got {lr}"));
            }
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(format!(
                "hidden must list at least one positive width, got {:?}",
                self.hidden
            ));
        }
        if let Some(s) = self.init_log_std {
            if action_space.is_discrete() {
                return Err(OnPolicyError::ContinuousOnlyOption {
                    option: "init_log_std",
                    space: action_space.to_string(),
                });
            }
            if !s.is_finite() {
                return bad(format!("init_log_std must be finite, got {s}"));
            }
        }
        Ok(())
    }
}

/// How an episode piece in an epoch ended.
#[derive(Clone, Debug, PartialEq)]
pub enum SegmentEnd {
    /// A terminal state (or an unstable simulation): the value after it is 0.
    Terminated,
    /// The time limit: bootstrap with `V(next_obs)`.
    Truncated {
        /// The observation after the last step.
        next_obs: Vec<f64>,
    },
    /// The end of the epoch: bootstrap with `V(next_obs)`.
    EpochEnd {
        /// The observation after the last step.
        next_obs: Vec<f64>,
    },
}

impl SegmentEnd {
    /// The observation to bootstrap from, if any.
    pub fn bootstrap_obs(&self) -> Option<&[f64]> {
        match self {
            SegmentEnd::Terminated => None,
            SegmentEnd::Truncated { next_obs } | SegmentEnd::EpochEnd { next_obs } => {
                Some(next_obs)
            }
        }
    }
}

/// A contiguous piece of one episode inside an epoch: steps `start..start + len`.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// First step index in the epoch.
    pub start: usize,
    /// Number of steps (>= 1).
    pub len: usize,
    /// How it ended.
    pub end: SegmentEnd,
}

/// One epoch of experience. The fields are public so that tests can build epochs by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochData {
    /// Observation width.
    pub obs_dim: usize,
    /// Entries per action as passed to `Env::step` (1 for `Discrete`: the index).
    pub act_len: usize,
    /// Observations `s_t`, row-major `[n, obs_dim]`.
    pub obs: Vec<f64>,
    /// Actions `a_t` as passed to the environment, row-major `[n, act_len]`.
    pub actions: Vec<f64>,
    /// Rewards `r_t`, `[n]`.
    pub rewards: Vec<f64>,
    /// The episode pieces, in order, covering `0..n` without gaps.
    pub segments: Vec<Segment>,
    /// Returns of the episodes that ended (terminated or truncated) in this epoch.
    pub episode_returns: Vec<f64>,
    /// Lengths of those episodes.
    pub episode_lengths: Vec<usize>,
}

impl EpochData {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// True for an epoch without steps.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Errors unless the arrays and segments are consistent and finite.
    pub fn validate(&self) -> Result<()> {
        let n = self.len();
        let bad = |m: String| Err(OnPolicyError::Mismatch(format!("epoch data: {m}")));
        if n == 0 {
            return bad("no steps".into());
        }
        if self.obs.len() != n * self.obs_dim || self.actions.len() != n * self.act_len {
            return bad(format!(
                "{} observation and {} action entries for {n} steps of widths {} / {}",
                self.obs.len(),
                self.actions.len(),
                self.obs_dim,
                self.act_len
            ));
        }
        let mut next = 0;
        for s in &self.segments {
            if s.start != next || s.len == 0 {
                return bad(format!(
                    "segment at {} (len {}) does not continue at {next}",
                    s.start, s.len
                ));
            }
            if let Some(o) = s.end.bootstrap_obs()
                && (o.len() != self.obs_dim || o.iter().any(|x| !x.is_finite()))
            {
                return bad("bootstrap observation of wrong width or not finite".into());
            }
            next += s.len;
        }
        if next != n {
            return bad(format!("segments cover {next} of {n} steps"));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !(finite(&self.obs) && finite(&self.actions) && finite(&self.rewards)) {
            return bad("non-finite observation, action or reward".into());
        }
        Ok(())
    }
}

/// GAE(γ, λ) advantages of one episode piece (Schulman et al. 2015b):
/// `δ_t = r_t + γ V(s_{t+1}) − V(s_t)`, `Â_t = Σ_l (γλ)^l δ_{t+l}`, with `V(s_T) = last_value`
/// (0 after a terminal state, the critic's estimate after a truncation or the epoch end).
pub fn gae_advantages(
    rewards: &[f64],
    values: &[f64],
    last_value: f64,
    gamma: f64,
    lambda: f64,
) -> Vec<f64> {
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut acc = 0.0;
    for t in (0..n).rev() {
        let next = if t + 1 < n { values[t + 1] } else { last_value };
        let delta = rewards[t] + gamma * next - values[t];
        acc = delta + gamma * lambda * acc;
        adv[t] = acc;
    }
    adv
}

/// Monte-Carlo rewards-to-go `G_t = Σ_l γ^l r_{t+l} + γ^{T−t} last_value` of one episode
/// piece: the critic's regression targets (paper Sec. 4: "critic by Monte Carlo method").
pub fn discounted_returns(rewards: &[f64], last_value: f64, gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut acc = last_value;
    for t in (0..rewards.len()).rev() {
        acc = rewards[t] + gamma * acc;
        out[t] = acc;
    }
    out
}

/// The actor: categorical for `Discrete`, Gaussian with state-independent log-std for `Box`.
#[derive(Clone, Debug)]
pub enum Policy {
    /// Softmax over MLP logits.
    Categorical(CategoricalPolicy),
    /// MLP mean, free log-std vector.
    Gaussian(DiagGaussianPolicy),
}

/// A batch of actions in the form the policy's log-probability needs.
#[derive(Clone, Debug)]
pub enum ActionBatch {
    /// Action indices.
    Discrete(Vec<u32>),
    /// `[n, act_dim]`.
    Continuous(Tensor),
}

impl Policy {
    /// Trainable variables in a fixed order (layer order, then the log-std).
    pub fn vars(&self) -> &[Var] {
        match self {
            Policy::Categorical(p) => p.vars(),
            Policy::Gaussian(p) => p.vars(),
        }
    }

    /// `ln π_θ(a_t | s_t)`, `[n]`, twice differentiable.
    pub fn log_prob(&self, obs: &Tensor, actions: &ActionBatch) -> Result<Tensor> {
        Ok(match (self, actions) {
            (Policy::Categorical(p), ActionBatch::Discrete(a)) => p.log_prob(obs, a)?,
            (Policy::Gaussian(p), ActionBatch::Continuous(a)) => p.log_prob(obs, a)?,
            _ => {
                return Err(OnPolicyError::Mismatch(
                    "action batch does not match the policy type".into(),
                ));
            }
        })
    }

    /// Mean entropy of `π(·|s)` over `obs`.
    pub fn mean_entropy(&self, obs: &Tensor) -> Result<f64> {
        let e = match self {
            Policy::Categorical(p) => p.entropy(obs)?.mean_all()?,
            Policy::Gaussian(p) => p.entropy()?,
        };
        Ok(e.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }
}

/// An epoch turned into tensors, with the critic's values, GAE advantages and Monte-Carlo
/// returns computed once with the critic *before* any update (paper: one actor step and `k`
/// critic steps after each epoch, all from this data).
#[derive(Clone, Debug)]
pub struct Batch {
    /// Steps `N`.
    pub n: usize,
    /// `s_t`, `[N, obs_dim]`.
    pub obs: Tensor,
    /// Every state the critic is evaluated on: the `N` rows of `obs`, then one row per
    /// bootstrapped segment (its `s_T`).
    pub critic_inputs: Tensor,
    /// `a_t`.
    pub actions: ActionBatch,
    /// Segments with the row of their bootstrap state in `critic_inputs`.
    pub segments: Vec<BatchSegment>,
    /// `V_w(s_t)` before the update.
    pub values: Vec<f64>,
    /// Raw GAE advantages `Â_t`.
    pub advantages: Vec<f64>,
    /// Monte-Carlo returns `G_t` (bootstrapped at truncations and the epoch end).
    pub returns: Vec<f64>,
    /// The scale `σ` the actor's advantages are divided by (their std when normalising,
    /// else 1).
    pub advantage_scale: f64,
    /// The actor's advantage weights `(Â_t − μ) / σ` (or `Â_t`), `[N]`, detached.
    pub actor_advantages: Tensor,
    /// `G_t` as a tensor, `[N]`.
    pub returns_tensor: Tensor,
}

/// A segment of a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSegment {
    /// First step.
    pub start: usize,
    /// Steps.
    pub len: usize,
    /// Row of `s_T` in [`Batch::critic_inputs`] when the segment bootstraps.
    pub bootstrap_row: Option<usize>,
}

/// Statistics of one update, all deterministic given the seed (timings are in
/// [`EpochTiming`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Updates done so far, this one included.
    pub epoch: u64,
    /// AC or STAC.
    pub algo: OnPolicyAlgo,
    /// Environment steps in the epoch.
    pub env_steps: usize,
    /// Episodes that ended in the epoch.
    pub episodes: usize,
    /// Mean return of those episodes (`None` if none ended).
    pub mean_return: Option<f64>,
    /// Smallest of those returns.
    pub min_return: Option<f64>,
    /// Largest of those returns.
    pub max_return: Option<f64>,
    /// Mean length of those episodes.
    pub mean_length: Option<f64>,
    /// The actor's surrogate `(1/N) Σ ln π(a_t|s_t) Â_t` before the step (its θ-gradient is
    /// `∂J/∂θ`).
    pub actor_objective: f64,
    /// Mean policy entropy on the epoch's states, before the step.
    pub entropy: f64,
    /// Critic loss `L = (1/N) Σ (V_w(s_t) − G_t)²` before the critic steps.
    pub critic_loss: f64,
    /// The same after the `k` critic steps.
    pub critic_loss_after: f64,
    /// Mean `V_w(s_t)` before the update.
    pub mean_value: f64,
    /// Std of the raw advantages.
    pub advantage_std: f64,
    /// `‖∂J/∂θ‖`.
    pub direct_grad_norm: f64,
    /// `‖(∂²L/∂θ∂w)(∂²L/∂w² + λI)⁻¹ ∂J/∂w‖` (0 for AC).
    pub implicit_grad_norm: f64,
    /// Norm of the actor's ascent direction (`∂J/∂θ` for AC, `dJ/dθ` for STAC).
    pub total_grad_norm: f64,
    /// `‖∂J/∂w‖` (0 for AC).
    pub objective_grad_w_norm: f64,
    /// λ used (STAC).
    pub lambda: Option<f64>,
    /// CG iterations (STAC; 0 for AC).
    pub cg_iterations: usize,
    /// CG's final relative residual (STAC; 0 for AC).
    pub cg_residual: f64,
    /// Why CG stopped (STAC).
    pub cg_stop: Option<CgStop>,
}

/// Wall-clock seconds of the latest epoch's phases.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochTiming {
    /// [`OnPolicyAgent::collect_epoch`].
    pub collect_s: f64,
    /// [`OnPolicyAgent::update`] in total.
    pub update_s: f64,
    /// The actor step (for STAC: surrogates + Stackelberg gradient + step).
    pub actor_s: f64,
    /// The `k` critic steps.
    pub critic_s: f64,
}

/// One epoch of [`run_epochs`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The update's statistics.
    pub stats: EpochStats,
    /// Its timings.
    pub timing: EpochTiming,
}

/// The optimiser of one player.
#[derive(Debug)]
pub(crate) enum Optimizer {
    Sgd { vars: Vec<Var>, lr: f64 },
    Adam(Box<Adam>),
}

impl Optimizer {
    fn new(kind: OptimizerKind, vars: Vec<Var>, lr: f64) -> Result<Self> {
        Ok(match kind {
            OptimizerKind::Sgd => Optimizer::Sgd { vars, lr },
            OptimizerKind::Adam => {
                Optimizer::Adam(Box::new(Adam::new(vars, AdamConfig::with_lr(lr))?))
            }
        })
    }

    /// One descent step `x ← x − lr g` (or Adam's) with one gradient per variable.
    pub(crate) fn descend(&mut self, grads: &[Tensor]) -> Result<()> {
        match self {
            Optimizer::Sgd { vars, lr } => {
                if grads.len() != vars.len() {
                    return Err(OnPolicyError::Mismatch(format!(
                        "{} gradients for {} variables",
                        grads.len(),
                        vars.len()
                    )));
                }
                for (v, g) in vars.iter().zip(grads) {
                    let new = (v.as_tensor().detach() - (g.detach() * *lr)?)?;
                    v.set(&new)?;
                }
            }
            Optimizer::Adam(adam) => {
                let g: Vec<Option<Tensor>> = grads.iter().map(|g| Some(g.detach())).collect();
                adam.step_with(&g)?;
            }
        }
        Ok(())
    }

    fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        Ok(match self {
            Optimizer::Sgd { .. } => HashMap::new(),
            Optimizer::Adam(a) => a.state_tensors(prefix)?,
        })
    }

    fn load_state_tensors(&mut self, state: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
        if let Optimizer::Adam(a) = self {
            a.load_state_tensors(state, prefix)?;
        }
        Ok(())
    }
}

/// A snapshot of an MLP's weights in `f64`, for acting one state at a time without Candle's
/// per-op overhead (the weights do not change during an epoch's collection).
#[derive(Clone, Debug)]
struct HostMlp {
    /// `(weight [out * in], bias [out], in, out)` per layer.
    layers: Vec<(Vec<f64>, Vec<f64>, usize, usize)>,
    activation: Activation,
}

impl HostMlp {
    fn from_vars(vars: &[Var], activation: Activation) -> Result<Self> {
        let mut layers = Vec::with_capacity(vars.len() / 2);
        for pair in vars.chunks_exact(2) {
            let (out, inp) = pair[0].as_tensor().dims2()?;
            let w = pair[0]
                .as_tensor()
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let b = pair[1].as_tensor().to_dtype(DType::F64)?.to_vec1::<f64>()?;
            layers.push((w, b, inp, out));
        }
        Ok(Self { layers, activation })
    }

    fn forward(&self, x: &[f64]) -> Vec<f64> {
        let mut h = x.to_vec();
        let last = self.layers.len() - 1;
        for (i, (w, b, inp, out)) in self.layers.iter().enumerate() {
            let mut y = b.clone();
            for (o, yo) in y.iter_mut().enumerate() {
                let row = &w[o * inp..(o + 1) * inp];
                *yo += row.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>();
            }
            if i != last {
                for v in &mut y {
                    *v = match self.activation {
                        Activation::Identity => *v,
                        Activation::Relu => v.max(0.0),
                        Activation::Tanh | Activation::FastTanh => v.tanh(),
                    };
                }
            }
            debug_assert_eq!(y.len(), *out);
            h = y;
        }
        h
    }
}

/// The acting policy during collection.
enum HostPolicy {
    Categorical(HostMlp),
    Gaussian { mean: HostMlp, std: Vec<f64> },
}

impl HostPolicy {
    fn sample(&self, obs: &[f64], rng: &mut Rng, action: &mut [f64]) {
        match self {
            HostPolicy::Categorical(net) => {
                let logits = net.forward(obs);
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let z: f64 = e.iter().sum();
                let u = rng.uniform_f64() * z;
                let mut acc = 0.0;
                let mut choice = e.len() - 1;
                for (j, p) in e.iter().enumerate() {
                    acc += p;
                    if u < acc {
                        choice = j;
                        break;
                    }
                }
                action[0] = choice as f64;
            }
            HostPolicy::Gaussian { mean, std } => {
                let m = mean.forward(obs);
                for ((a, m), s) in action.iter_mut().zip(&m).zip(std) {
                    *a = m + s * rng.normal_f64();
                }
            }
        }
    }
}

/// The AC / STAC learner: policy, V critic, optimisers and the epoch counter.
pub struct OnPolicyAgent {
    config: OnPolicyConfig,
    obs_dim: usize,
    action_space: Space,
    pub(crate) policy: Policy,
    pub(crate) critic: VCritic,
    pub(crate) actor_opt: Optimizer,
    pub(crate) critic_opt: Optimizer,
    pub(crate) epochs_done: u64,
    /// The previous CG solution (STAC with `warm_start`).
    pub(crate) warm_start: Option<Tensor>,
    dtype: DType,
    device: Device,
    last_timing: EpochTiming,
    // Keeps the actor's VarMap alive (the policies register their variables in it).
    _actor_varmap: VarMap,
}

impl std::fmt::Debug for OnPolicyAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnPolicyAgent")
            .field("config", &self.config)
            .field("epochs_done", &self.epochs_done)
            .finish_non_exhaustive()
    }
}

impl OnPolicyAgent {
    /// Builds actor and critic (initialised from `rng`: actor first, then critic) for an
    /// environment with these spaces. Errors on an invalid configuration or unsupported
    /// spaces (observations must be a `Box`).
    pub fn new(
        config: OnPolicyConfig,
        obs_space: &Space,
        action_space: &Space,
        rng: &mut Rng,
    ) -> Result<Self> {
        config.validate(action_space)?;
        let obs_dim = match obs_space {
            Space::Box { low, .. } if !low.is_empty() => low.len(),
            other => {
                return Err(OnPolicyError::UnsupportedSpace(format!(
                    "observations must be a non-empty Box, got {other}"
                )));
            }
        };
        let dtype = config.precision.dtype();
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let policy = match action_space {
            Space::Discrete(n) if *n >= 1 => {
                let cfg = MlpConfig::new(obs_dim, &config.hidden, *n, config.activation);
                Policy::Categorical(CategoricalPolicy::new(
                    &cfg, &varmap, "actor", dtype, &device, rng,
                )?)
            }
            Space::Box { low, .. } if !low.is_empty() => {
                let cfg = MlpConfig::new(obs_dim, &config.hidden, low.len(), config.activation);
                let log_std = config.init_log_std.unwrap_or(DEFAULT_INIT_LOG_STD);
                Policy::Gaussian(DiagGaussianPolicy::new(
                    &cfg, log_std, &varmap, "actor", dtype, &device, rng,
                )?)
            }
            other => {
                return Err(OnPolicyError::UnsupportedSpace(format!(
                    "actions must be Discrete(n >= 1) or a non-empty Box, got {other}"
                )));
            }
        };
        let critic = VCritic::new(
            obs_dim,
            &config.hidden,
            config.activation,
            false,
            "critic",
            dtype,
            &device,
            rng,
        )?;
        let actor_opt = Optimizer::new(config.optimizer, policy.vars().to_vec(), config.actor_lr)?;
        let critic_opt =
            Optimizer::new(config.optimizer, critic.vars().to_vec(), config.critic_lr)?;
        Ok(Self {
            config,
            obs_dim,
            action_space: action_space.clone(),
            policy,
            critic,
            actor_opt,
            critic_opt,
            epochs_done: 0,
            warm_start: None,
            dtype,
            device,
            last_timing: EpochTiming::default(),
            _actor_varmap: varmap,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OnPolicyConfig {
        &self.config
    }

    /// The actor.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The V critic.
    pub fn critic(&self) -> &VCritic {
        &self.critic
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Entries per action as passed to `Env::step` (1 for `Discrete`).
    pub fn action_len(&self) -> usize {
        self.action_space.action_len()
    }

    /// Updates done so far.
    pub fn epochs_done(&self) -> u64 {
        self.epochs_done
    }

    /// Timings of the latest collection and update.
    pub fn last_timing(&self) -> &EpochTiming {
        &self.last_timing
    }

    /// The networks' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn check_env(&self, env: &dyn Env) -> Result<()> {
        if env.observation_space().dim() != self.obs_dim || env.action_space() != &self.action_space
        {
            return Err(OnPolicyError::Mismatch(format!(
                "environment {} has spaces {} / {}, the agent was built for observations of \
                 width {} and actions {}",
                env.id(),
                env.observation_space(),
                env.action_space(),
                self.obs_dim,
                self.action_space
            )));
        }
        Ok(())
    }

    /// Runs `steps_per_epoch` environment steps with the current policy (see the module
    /// docs for resets, segments and bootstrapping).
    pub fn collect_epoch(&mut self, env: &mut dyn Env, rng: &mut Rng) -> Result<EpochData> {
        let start = Instant::now();
        self.check_env(env)?;
        let acting = match &self.policy {
            Policy::Categorical(p) => {
                HostPolicy::Categorical(HostMlp::from_vars(p.vars(), self.config.activation)?)
            }
            Policy::Gaussian(p) => {
                let vars = p.vars();
                let mean = HostMlp::from_vars(&vars[..vars.len() - 1], self.config.activation)?;
                let std = p
                    .log_std()
                    .to_dtype(DType::F64)?
                    .to_vec1::<f64>()?
                    .iter()
                    .map(|l| l.exp())
                    .collect();
                HostPolicy::Gaussian { mean, std }
            }
        };
        let n = self.config.steps_per_epoch;
        let (od, al) = (self.obs_dim, self.action_space.action_len());
        let mut data = EpochData {
            obs_dim: od,
            act_len: al,
            obs: Vec::with_capacity(n * od),
            actions: Vec::with_capacity(n * al),
            rewards: Vec::with_capacity(n),
            segments: Vec::new(),
            episode_returns: Vec::new(),
            episode_lengths: Vec::new(),
        };
        let mut obs = vec![0.0; od];
        let mut next = vec![0.0; od];
        let mut action = vec![0.0; al];
        env.reset_into(Some(rng.next_u64()), &mut obs)?;
        let (mut seg_start, mut ep_return, mut ep_len) = (0, 0.0, 0);
        for t in 0..n {
            acting.sample(&obs, rng, &mut action);
            let out = env.step_into(&action, &mut next)?;
            data.obs.extend_from_slice(&obs);
            data.actions.extend_from_slice(&action);
            data.rewards.push(out.reward);
            ep_return += out.reward;
            ep_len += 1;
            // An unstable simulation ends the episode like a terminal state: MuJoCo reset
            // the state, so the observation is not a successor to bootstrap from.
            let end = if out.terminated || out.instability.is_some() {
                Some(SegmentEnd::Terminated)
            } else if out.truncated {
                Some(SegmentEnd::Truncated {
                    next_obs: next.clone(),
                })
            } else if t + 1 == n {
                Some(SegmentEnd::EpochEnd {
                    next_obs: next.clone(),
                })
            } else {
                None
            };
            match end {
                Some(end) => {
                    if !matches!(end, SegmentEnd::EpochEnd { .. }) {
                        data.episode_returns.push(ep_return);
                        data.episode_lengths.push(ep_len);
                    }
                    data.segments.push(Segment {
                        start: seg_start,
                        len: t + 1 - seg_start,
                        end,
                    });
                    (seg_start, ep_return, ep_len) = (t + 1, 0.0, 0);
                    if t + 1 < n {
                        env.reset_into(Some(rng.next_u64()), &mut obs)?;
                    }
                }
                None => std::mem::swap(&mut obs, &mut next),
            }
        }
        self.last_timing.collect_s = start.elapsed().as_secs_f64();
        Ok(data)
    }

    /// Turns an epoch into tensors and computes `V_w(s_t)`, GAE advantages and Monte-Carlo
    /// returns with the current critic.
    pub fn prepare(&self, data: &EpochData) -> Result<Batch> {
        data.validate()?;
        if data.obs_dim != self.obs_dim || data.act_len != self.action_space.action_len() {
            return Err(OnPolicyError::Mismatch(format!(
                "epoch data of widths {} / {}, agent {} / {}",
                data.obs_dim,
                data.act_len,
                self.obs_dim,
                self.action_space.action_len()
            )));
        }
        let n = data.len();
        let (dt, dev) = (self.dtype, &self.device);
        let to_t = |v: Vec<f64>, rows: usize, cols: usize| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (rows, cols), &Device::Cpu)?
                .to_dtype(dt)?
                .to_device(dev)?)
        };
        let mut inputs = data.obs.clone();
        let mut segments = Vec::with_capacity(data.segments.len());
        let mut rows = n;
        for s in &data.segments {
            let bootstrap_row = s.end.bootstrap_obs().map(|o| {
                inputs.extend_from_slice(o);
                rows += 1;
                rows - 1
            });
            segments.push(BatchSegment {
                start: s.start,
                len: s.len,
                bootstrap_row,
            });
        }
        let obs = to_t(data.obs.clone(), n, self.obs_dim)?;
        let critic_inputs = to_t(inputs, rows, self.obs_dim)?;
        let actions = match &self.action_space {
            Space::Discrete(k) => {
                let mut a = Vec::with_capacity(n);
                for &x in &data.actions {
                    if x.fract() != 0.0 || x < 0.0 || x >= *k as f64 {
                        return Err(OnPolicyError::Mismatch(format!(
                            "discrete action {x} outside 0..{k}"
                        )));
                    }
                    a.push(x as u32);
                }
                ActionBatch::Discrete(a)
            }
            Space::Box { low, .. } => {
                ActionBatch::Continuous(to_t(data.actions.clone(), n, low.len())?)
            }
        };
        let all_values = self
            .critic
            .forward(&critic_inputs)?
            .detach()
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let values = all_values[..n].to_vec();
        let (gamma, lam) = (self.config.gamma, self.config.gae_lambda);
        let mut advantages = Vec::with_capacity(n);
        let mut returns = Vec::with_capacity(n);
        for s in &segments {
            let r = &data.rewards[s.start..s.start + s.len];
            let v = &values[s.start..s.start + s.len];
            let last = s.bootstrap_row.map_or(0.0, |row| all_values[row]);
            advantages.extend(gae_advantages(r, v, last, gamma, lam));
            returns.extend(discounted_returns(r, last, gamma));
        }
        let mean = advantages.iter().sum::<f64>() / n as f64;
        let std = (advantages.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let (shift, advantage_scale) = if self.config.normalize_advantages {
            (mean, std.max(1e-8))
        } else {
            (0.0, 1.0)
        };
        let actor_adv: Vec<f64> = advantages
            .iter()
            .map(|a| (a - shift) / advantage_scale)
            .collect();
        let to_1d = |v: Vec<f64>| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, n, &Device::Cpu)?
                .to_dtype(dt)?
                .to_device(dev)?)
        };
        Ok(Batch {
            n,
            obs,
            critic_inputs,
            actions,
            segments,
            values,
            actor_advantages: to_1d(actor_adv)?,
            returns_tensor: to_1d(returns.clone())?,
            advantages,
            returns,
            advantage_scale,
        })
    }

    /// One update from an epoch: one actor step (AC: `∂J/∂θ`; STAC: `dJ/dθ`) and then
    /// `critic_steps` critic steps, all from the values computed before the update.
    pub fn update(&mut self, data: &EpochData) -> Result<EpochStats> {
        let start = Instant::now();
        let batch = self.prepare(data)?;
        let entropy = self.policy.mean_entropy(&batch.obs)?;
        let t_actor = Instant::now();
        let actor = match self.config.algo {
            OnPolicyAlgo::Ac => super::ac::actor_step(self, &batch)?,
            OnPolicyAlgo::Stac => super::stac::actor_step(self, &batch)?,
        };
        let actor_s = t_actor.elapsed().as_secs_f64();
        let t_critic = Instant::now();
        let (critic_loss, critic_loss_after) = super::ac::critic_steps(self, &batch)?;
        let critic_s = t_critic.elapsed().as_secs_f64();
        self.epochs_done += 1;
        let rets = &data.episode_returns;
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let lens: Vec<f64> = data.episode_lengths.iter().map(|&l| l as f64).collect();
        let n = batch.n as f64;
        let adv_mean = batch.advantages.iter().sum::<f64>() / n;
        let stats = EpochStats {
            epoch: self.epochs_done,
            algo: self.config.algo,
            env_steps: batch.n,
            episodes: rets.len(),
            mean_return: mean(rets),
            min_return: rets.iter().cloned().reduce(f64::min),
            max_return: rets.iter().cloned().reduce(f64::max),
            mean_length: mean(&lens),
            actor_objective: actor.objective,
            entropy,
            critic_loss,
            critic_loss_after,
            mean_value: batch.values.iter().sum::<f64>() / n,
            advantage_std: (batch
                .advantages
                .iter()
                .map(|a| (a - adv_mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt(),
            direct_grad_norm: actor.direct_norm,
            implicit_grad_norm: actor.implicit_norm,
            total_grad_norm: actor.total_norm,
            objective_grad_w_norm: actor.objective_grad_w_norm,
            lambda: actor.lambda,
            cg_iterations: actor.cg_iterations,
            cg_residual: actor.cg_residual,
            cg_stop: actor.cg_stop,
        };
        self.last_timing.update_s = start.elapsed().as_secs_f64();
        self.last_timing.actor_s = actor_s;
        self.last_timing.critic_s = critic_s;
        Ok(stats)
    }

    /// Deterministic (evaluation) or sampled action for one observation, in the form
    /// `Env::step` takes.
    pub fn act(&self, obs: &[f64], deterministic: bool, rng: &mut Rng) -> Result<Vec<f64>> {
        if obs.len() != self.obs_dim {
            return Err(OnPolicyError::Mismatch(format!(
                "observation of width {}, expected {}",
                obs.len(),
                self.obs_dim
            )));
        }
        let x = Tensor::from_vec(obs.to_vec(), (1, self.obs_dim), &Device::Cpu)?
            .to_dtype(self.dtype)?
            .to_device(&self.device)?;
        Ok(match &self.policy {
            Policy::Categorical(p) => {
                let a = if deterministic {
                    p.greedy(&x)?
                } else {
                    p.sample(&x, rng)?
                };
                vec![a[0] as f64]
            }
            Policy::Gaussian(p) => {
                let a = if deterministic {
                    p.mean(&x)?
                } else {
                    p.sample(&x, rng)?
                };
                a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?
            }
        })
    }

    /// Everything needed to resume bit-exactly (with the caller's [`Rng`] state): weights
    /// (`actor.{i}`, `critic.{i}` in the fixed variable order), Adam states
    /// (`actor_opt.*`, `critic_opt.*`), the epoch counter (`epochs_done`, F64 `[1]`) and the CG
    /// warm start (`cg_warm_start`, if any).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, v) in self.policy.vars().iter().enumerate() {
            out.insert(format!("actor.{i}"), v.as_tensor().detach());
        }
        for (i, v) in self.critic.vars().iter().enumerate() {
            out.insert(format!("critic.{i}"), v.as_tensor().detach());
        }
        out.extend(self.actor_opt.state_tensors("actor_opt")?);
        out.extend(self.critic_opt.state_tensors("critic_opt")?);
        out.insert(
            "epochs_done".into(),
            Tensor::from_vec(vec![self.epochs_done as f64], 1, &Device::Cpu)?,
        );
        if let Some(w) = &self.warm_start {
            out.insert("cg_warm_start".into(), w.clone());
        }
        Ok(out)
    }

    /// Restores [`OnPolicyAgent::state_tensors`] output into an agent built with the same
    /// configuration and spaces.
    pub fn load_state_tensors(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| {
            state
                .get(k)
                .ok_or_else(|| OnPolicyError::Mismatch(format!("saved state lacks `{k}`")))
        };
        let mut pending = Vec::new();
        for (prefix, vars) in [
            ("actor", self.policy.vars()),
            ("critic", self.critic.vars()),
        ] {
            for (i, v) in vars.iter().enumerate() {
                let t = get(&format!("{prefix}.{i}"))?;
                if t.shape() != v.shape() {
                    return Err(OnPolicyError::Mismatch(format!(
                        "saved {prefix}.{i} has shape {:?}, the variable {:?}",
                        t.shape(),
                        v.shape()
                    )));
                }
                pending.push((v.clone(), t.to_dtype(self.dtype)?.detach()));
            }
        }
        let epochs = get("epochs_done")?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let epochs_done = match epochs.as_slice() {
            [e] if e.is_finite() && *e >= 0.0 && e.fract() == 0.0 => *e as u64,
            other => {
                return Err(OnPolicyError::Mismatch(format!(
                    "invalid saved epochs_done {other:?}"
                )));
            }
        };
        // All or nothing: undo the actor optimiser's load if the critic's fails.
        let actor_before = self.actor_opt.state_tensors("actor_opt")?;
        self.actor_opt.load_state_tensors(state, "actor_opt")?;
        if let Err(e) = self.critic_opt.load_state_tensors(state, "critic_opt") {
            self.actor_opt
                .load_state_tensors(&actor_before, "actor_opt")?;
            return Err(e);
        }
        for (v, t) in pending {
            v.set(&t)?;
        }
        self.epochs_done = epochs_done;
        self.warm_start = state.get("cg_warm_start").map(|t| t.detach());
        Ok(())
    }
}

/// Trains on a registered environment for `epochs` epochs from `seed` (network
/// initialisation, actions and environment resets all drawn from `Rng::seed_from_u64(seed)`)
/// and returns each epoch's statistics and timings. For STAC on the autodiff curvature
/// engine it first enables second-order gradients ([`crate::autodiff::enable_second_order`]),
/// so call it from a thread that has not run a backward pass yet (the default fast engine
/// needs only first-order gradients).
pub fn run_epochs(
    env_id: &str,
    config: &OnPolicyConfig,
    seed: u64,
    epochs: usize,
) -> Result<Vec<EpochRecord>> {
    if config.algo == OnPolicyAlgo::Stac
        && config.stac.curvature == crate::autodiff::CurvatureEngine::Autodiff
    {
        crate::autodiff::enable_second_order()?;
    }
    let mut env = envs::make(env_id)?;
    let mut rng = Rng::seed_from_u64(seed);
    let mut agent = OnPolicyAgent::new(
        config.clone(),
        env.observation_space(),
        env.action_space(),
        &mut rng,
    )?;
    let mut out = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let data = agent.collect_epoch(env.as_mut(), &mut rng)?;
        let stats = agent.update(&data)?;
        out.push(EpochRecord {
            stats,
            timing: agent.last_timing().clone(),
        });
    }
    Ok(out)
}

/// Errors of the on-policy algorithms: bad configurations and inputs are reported with one of
/// these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum OnPolicyError {
    /// The Hessian regularisation λ (or its schedule) is negative or not finite.
    #[error("the STAC Hessian regularisation lambda must be finite and >= 0, got {0}")]
    InvalidLambda(f64),
    /// `critic_steps` (the paper's unrolling `k`) is zero.
    #[error("critic_steps (the number k of critic steps per epoch) must be at least 1, got 0")]
    ZeroCriticSteps,
    /// An option that only makes sense for a continuous (`Box`) action space was set for a
    /// discrete one.
    #[error(
        "option `{option}` applies to continuous (Box) action spaces only, but the action \
         space is {space}"
    )]
    ContinuousOnlyOption {
        /// The option's name.
        option: &'static str,
        /// The action space, printed.
        space: String,
    },
    /// Another invalid configuration value.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An observation or action space the algorithms do not handle.
    #[error("unsupported space: {0}")]
    UnsupportedSpace(String),
    /// Inconsistent epoch data, environment or saved state.
    #[error("{0}")]
    Mismatch(String),
    /// An environment error.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A tensor / autodiff error.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the on-policy algorithms.
pub type Result<T> = std::result::Result<T, OnPolicyError>;
