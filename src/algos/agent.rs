//! The state shared by SAC, Res-SAC and Stack-SAC: actor, twin critic with targets,
//! res-critic (Res-SAC), temperature, optimisers; and the pieces of the update that the three
//! algorithms have in common (minibatches, the soft Q target, the critic step, the
//! temperature step).

use std::collections::{BTreeSet, HashMap};

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;

use super::res_sac::ResCritic;
use super::{Algo, AlgoError};
use crate::autodiff::{CurvatureEngine, numel};
use crate::nn::{
    Activation, Adam, AdamConfig, EntropyTuner, SquashedGaussianActor, SquashedGaussianConfig,
    SquashedSample, TwinQ,
};
use crate::replay::{Batch, BatchTensors, ReplayBuffer};
use crate::rng::Rng;

/// The critic Hessian `∂²φ J_Q` that Stack-SAC regularises and inverts (eq. 43).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackHessian {
    /// The exact semi-gradient Hessian `E[∇Q ∇Qᵀ] + E[(Q − y) ∇²Q]` (target fixed, eq. 40
    /// for a parameterised critic), by double backward passes. Indefinite when TD errors
    /// are large; see [`super::stack_sac`] for how the solve is guarded.
    #[default]
    Exact,
    /// Its Gauss-Newton part `E[∇Q ∇Qᵀ]` (positive semi-definite): eq. (40)'s `D_θ`
    /// exactly in the tabular case, where `∇²Q = 0`.
    GaussNewton,
}

/// Hyper-parameters of the update (paper 001 Table 3 where it gives them).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SacConfig {
    /// Hidden layer widths of the actor, critics and res-critic (Table 3: 2 × 128).
    pub hidden: Vec<usize>,
    /// Hidden activation (Table 3: ReLU).
    pub activation: Activation,
    /// Minibatch size (Table 3: 128).
    pub batch_size: usize,
    /// Discount γ (Table 3: 0.99).
    pub gamma: f64,
    /// Target smoothing coefficient τ (Table 3: 0.005), applied after every critic and
    /// res-critic update (target update interval 1).
    pub tau: f64,
    /// Adam learning rate of actor, critics and temperature (Table 3: 3e-4).
    pub lr: f64,
    /// `x` of `Algo-x-y`: critic updates per actor update (Sec. 6.2).
    pub critic_updates: usize,
    /// `y` of `Algo-x-y`: res-critic updates per actor update (Res-SAC only; 0 otherwise).
    pub res_updates: usize,
    /// Res-SAC's clip value `c` of the res-critic reward `clip(δ, −c, c)` (D.2.1).
    pub clip: Option<f64>,
    /// Stack-SAC's Hessian regularisation η (Sec. 5.3: 0.5).
    pub eta: f64,
    /// Stack-SAC: conjugate-gradient iterations per actor update.
    pub cg_iters: usize,
    /// Stack-SAC: CG stops early at this relative residual (0: always `cg_iters`).
    pub cg_tol: f64,
    /// Stack-SAC: start CG from the previous solution.
    pub cg_warm_start: bool,
    /// Stack-SAC: which critic Hessian eq. (43) inverts.
    pub stack_hessian: StackHessian,
    /// Stack-SAC: how the Hessian-vector and mixed products are computed (the fast
    /// R-operator by default; the generic double backward as reference).
    #[serde(default)]
    pub curvature: CurvatureEngine,
    /// Stack-SAC: Hessian-vector products on the first `m` rows of the minibatch only, scaled
    /// to the minibatch mean (sub-sampled curvature, Martens 2010; the rows are a uniform
    /// sample already). `None` (default): the whole minibatch, exact. Fast engine only.
    #[serde(default)]
    pub curvature_batch: Option<usize>,
    /// Initial temperature α (SB3 / CleanRL: 1).
    pub init_alpha: f64,
    /// Target entropy of the temperature tuning (`None`: −dim(A), Table 3).
    pub target_entropy: Option<f64>,
}

impl Default for SacConfig {
    fn default() -> Self {
        Self {
            hidden: vec![128, 128],
            activation: Activation::Relu,
            batch_size: 128,
            gamma: 0.99,
            tau: 0.005,
            lr: 3e-4,
            critic_updates: 1,
            res_updates: 0,
            clip: None,
            eta: 0.5,
            cg_iters: 10,
            cg_tol: 1e-4,
            cg_warm_start: true,
            stack_hessian: StackHessian::Exact,
            curvature: CurvatureEngine::Fast,
            curvature_batch: None,
            init_alpha: 1.0,
            target_entropy: None,
        }
    }
}

impl SacConfig {
    /// Checks the values for `algo`; the error names the offending option.
    pub fn validate(&self, algo: Algo) -> Result<(), AlgoError> {
        let bad = |m: String| Err(AlgoError::Config(m));
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(format!(
                "hidden must be non-empty positive widths, got {:?}",
                self.hidden
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if !(self.gamma.is_finite() && (0.0..=1.0).contains(&self.gamma)) {
            return bad(format!("gamma must be in [0, 1], got {}", self.gamma));
        }
        if !(self.tau.is_finite() && self.tau > 0.0 && self.tau <= 1.0) {
            return bad(format!("tau must be in (0, 1], got {}", self.tau));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be positive and finite, got {}", self.lr));
        }
        if self.critic_updates == 0 {
            return bad("critic_updates (x of Algo-x-y) must be at least 1".into());
        }
        if !(self.init_alpha.is_finite() && self.init_alpha > 0.0) {
            return bad(format!(
                "init_alpha must be positive, got {}",
                self.init_alpha
            ));
        }
        if let Some(t) = self.target_entropy
            && !t.is_finite()
        {
            return bad(format!("target_entropy must be finite, got {t}"));
        }
        match algo {
            Algo::ResSac => {
                if self.res_updates == 0 {
                    return bad("res-sac needs res_updates (y of Algo-x-y) >= 1".into());
                }
                match self.clip {
                    Some(c) if c.is_finite() && c > 0.0 => {}
                    Some(c) => return bad(format!("clip must be positive and finite, got {c}")),
                    None => return bad("res-sac needs a clip value c".into()),
                }
            }
            Algo::Sac | Algo::StackSac => {
                if self.res_updates != 0 {
                    return bad(format!(
                        "res_updates = {} only applies to res-sac ({algo} has no res-critic)",
                        self.res_updates
                    ));
                }
                if self.clip.is_some() {
                    return bad(format!("clip only applies to res-sac, not {algo}"));
                }
            }
        }
        if algo == Algo::StackSac {
            if !(self.eta.is_finite() && self.eta >= 0.0) {
                return bad(format!("eta must be finite and >= 0, got {}", self.eta));
            }
            if self.cg_iters == 0 {
                return bad("cg_iters must be at least 1".into());
            }
            if !(self.cg_tol.is_finite() && self.cg_tol >= 0.0) {
                return bad(format!(
                    "cg_tol must be finite and >= 0, got {}",
                    self.cg_tol
                ));
            }
            if let Some(m) = self.curvature_batch {
                if m == 0 || m > self.batch_size {
                    return bad(format!(
                        "curvature_batch must be in 1..=batch_size ({}), got {m}",
                        self.batch_size
                    ));
                }
                if self.curvature != CurvatureEngine::Fast {
                    return bad("curvature_batch needs the fast curvature engine".into());
                }
            }
        }
        Ok(())
    }
}

/// Statistics of one [`super::update`] round (means over its critic / res-critic updates).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateStats {
    /// Critic loss `J_Q` (mean over the `x` critic updates).
    pub critic_loss: f64,
    /// Mean of `Q_1(s, a)` over the critic minibatches.
    pub q_mean: f64,
    /// Mean |TD error| `|y − Q_i(s, a)|` over both critics and the critic minibatches.
    pub td_abs_mean: f64,
    /// Largest |TD error| in the critic minibatches (D.2.2's heuristic for Res-SAC's `c`).
    pub td_abs_max: f64,
    /// Actor loss (`J_π`, minimised).
    pub actor_loss: f64,
    /// Policy entropy estimate `−mean ln π(ã|s)` on the actor minibatch.
    pub entropy: f64,
    /// Temperature α after the update.
    pub alpha: f64,
    /// Temperature loss.
    pub alpha_loss: f64,
    /// Res-SAC: res-critic loss `J_W` (mean over the `y` updates).
    pub res_loss: Option<f64>,
    /// Res-SAC: mean of `W(s, a)`.
    pub w_mean: Option<f64>,
    /// Res-SAC: largest |δ| of the critic residual before clipping.
    pub res_delta_abs_max: Option<f64>,
    /// Res-SAC: fraction of residuals clipped to ±c.
    pub res_clip_frac: Option<f64>,
    /// Stack-SAC: CG iterations used.
    pub cg_iters: Option<f64>,
    /// Stack-SAC: final relative CG residual.
    pub cg_residual: Option<f64>,
    /// Stack-SAC: 1 if CG met non-positive curvature (the regularised Hessian was not
    /// positive definite along a search direction), else 0.
    pub cg_nonpositive: Option<f64>,
    /// Stack-SAC: ‖implicit term‖ / ‖∂θJπ‖ of eq. (43).
    pub implicit_ratio: Option<f64>,
    /// Stack-SAC: 1 if the CG solve was unusable (no better than `u = 0`, or not finite)
    /// and the round fell back to the plain SAC actor gradient, else 0.
    pub cg_fallback: Option<f64>,
}

/// Running sums of the critic steps of one update round.
#[derive(Clone, Debug, Default)]
pub(crate) struct CriticAccum {
    n: usize,
    loss: f64,
    q_mean: f64,
    td_abs_mean: f64,
    td_abs_max: f64,
}

impl CriticAccum {
    pub(crate) fn add(&mut self, s: &CriticStats) {
        self.n += 1;
        self.loss += s.loss;
        self.q_mean += s.q_mean;
        self.td_abs_mean += s.td_abs_mean;
        self.td_abs_max = self.td_abs_max.max(s.td_abs_max);
    }

    /// The stats with the critic fields filled in.
    pub(crate) fn into_stats(self) -> UpdateStats {
        let n = self.n.max(1) as f64;
        UpdateStats {
            critic_loss: self.loss / n,
            q_mean: self.q_mean / n,
            td_abs_mean: self.td_abs_mean / n,
            td_abs_max: self.td_abs_max,
            ..UpdateStats::default()
        }
    }
}

/// What one critic step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CriticStats {
    /// `J_Q`.
    pub loss: f64,
    /// Mean `Q_1(s, a)`.
    pub q_mean: f64,
    /// Mean |TD error| over both critics.
    pub td_abs_mean: f64,
    /// Largest |TD error| over both critics.
    pub td_abs_max: f64,
}

/// Actor, twin soft Q critic with Polyak targets, res-critic (Res-SAC only), automatic
/// temperature, and one Adam per learner.
///
/// All weights are initialised from the project [`Rng`] in a fixed order (actor, `Q_1`,
/// `Q_2`, then `W`), so a seed fixes the agent.
pub struct SacAgent {
    algo: Algo,
    config: SacConfig,
    dtype: DType,
    obs_dim: usize,
    act_dim: usize,
    action_low: Vec<f64>,
    action_high: Vec<f64>,
    actor: SquashedGaussianActor,
    actor_varmap: VarMap,
    critic: TwinQ,
    res_critic: Option<ResCritic>,
    entropy: EntropyTuner,
    actor_opt: Adam,
    critic_opt: Adam,
    res_opt: Option<Adam>,
    alpha_opt: Adam,
    /// Stack-SAC: the previous CG solution (warm start), flat over the critic variables.
    pub(crate) cg_warm: Option<Tensor>,
    batch: Batch,
}

impl std::fmt::Debug for SacAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SacAgent")
            .field("algo", &self.algo)
            .field("config", &self.config)
            .field("obs_dim", &self.obs_dim)
            .field("act_dim", &self.act_dim)
            .finish_non_exhaustive()
    }
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64, AlgoError> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

pub(crate) fn check_finite(what: &'static str, value: f64) -> Result<f64, AlgoError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(AlgoError::NonFinite { what, value })
    }
}

/// Forward pass of an MLP given as `[w_0, b_0, w_1, b_1, ...]` with *detached* weights
/// (`x W_iᵀ + b_i`, activation between layers, linear output, as `candle_nn::Linear`):
/// gradients reach the input only. The actor losses use it for the critics, whose
/// parameter gradients they would otherwise compute and throw away.
pub fn frozen_mlp_forward(
    vars: &[Var],
    x: &Tensor,
    act: Activation,
) -> candle_core::Result<Tensor> {
    if vars.is_empty() || !vars.len().is_multiple_of(2) {
        candle_core::bail!(
            "frozen_mlp_forward: expected [w, b] pairs, got {}",
            vars.len()
        );
    }
    let weights: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    crate::nn::frozen_mlp(&weights, act, x)
}

impl SacAgent {
    /// Builds the agent for observations of width `obs_dim` and the action box
    /// `[action_low, action_high]`, drawing all initial weights from `rng`.
    pub fn new(
        algo: Algo,
        config: &SacConfig,
        obs_dim: usize,
        action_low: &[f64],
        action_high: &[f64],
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Self, AlgoError> {
        config.validate(algo)?;
        if obs_dim == 0 || action_low.is_empty() || action_low.len() != action_high.len() {
            return Err(AlgoError::Config(format!(
                "need obs_dim > 0 and equal non-empty action bounds (obs_dim {obs_dim}, low {}, \
                 high {})",
                action_low.len(),
                action_high.len()
            )));
        }
        if !dtype.is_float() {
            return Err(AlgoError::Config(format!(
                "dtype must be float, got {dtype:?}"
            )));
        }
        let device = Device::Cpu;
        let act_dim = action_low.len();
        let actor_varmap = VarMap::new();
        let actor_cfg = SquashedGaussianConfig::new(
            obs_dim,
            &config.hidden,
            config.activation,
            action_low.to_vec(),
            action_high.to_vec(),
        );
        let actor =
            SquashedGaussianActor::new(&actor_cfg, &actor_varmap, "actor", dtype, &device, rng)?;
        let critic = TwinQ::new(
            obs_dim,
            act_dim,
            &config.hidden,
            config.activation,
            "critic",
            dtype,
            &device,
            rng,
        )?;
        let res_critic = if algo.has_res_critic() {
            Some(ResCritic::new(obs_dim, act_dim, config, dtype, rng)?)
        } else {
            None
        };
        let target = config
            .target_entropy
            .unwrap_or(crate::nn::target_entropy(act_dim));
        let entropy = EntropyTuner::with_target(target, config.init_alpha, dtype, &device)?;
        let adam = || AdamConfig::with_lr(config.lr);
        let actor_opt = Adam::new(actor.vars().to_vec(), adam())?;
        let critic_opt = Adam::new(critic.vars(), adam())?;
        let res_opt = match &res_critic {
            Some(w) => Some(Adam::new(w.vars().to_vec(), adam())?),
            None => None,
        };
        let alpha_opt = Adam::new(entropy.vars(), adam())?;
        Ok(Self {
            algo,
            config: config.clone(),
            dtype,
            obs_dim,
            act_dim,
            action_low: action_low.to_vec(),
            action_high: action_high.to_vec(),
            actor,
            actor_varmap,
            critic,
            res_critic,
            entropy,
            actor_opt,
            critic_opt,
            res_opt,
            alpha_opt,
            cg_warm: None,
            batch: Batch::new(config.batch_size, obs_dim, act_dim),
        })
    }

    /// The algorithm.
    pub fn algo(&self) -> Algo {
        self.algo
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SacConfig {
        &self.config
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action width.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// The floating-point type of all networks.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The actor π_θ.
    pub fn actor(&self) -> &SquashedGaussianActor {
        &self.actor
    }

    /// The twin critic `Q_φ` with its targets.
    pub fn critic(&self) -> &TwinQ {
        &self.critic
    }

    /// The res-critic `W_ψ` (Res-SAC only).
    pub fn res_critic(&self) -> Option<&ResCritic> {
        self.res_critic.as_ref()
    }

    /// The temperature.
    pub fn entropy(&self) -> &EntropyTuner {
        &self.entropy
    }

    /// Adam step counts `(actor, critic, res-critic, temperature)` of the first variable of
    /// each optimiser: how many updates each learner has received.
    pub fn optimizer_steps(&self) -> Result<(u64, u64, Option<u64>, u64), AlgoError> {
        let first = |opt: &Adam| -> Result<u64, AlgoError> {
            let t = opt.state_tensors("o")?;
            let steps = t
                .get("o.steps")
                .ok_or_else(|| AlgoError::Config("Adam state without steps".into()))?
                .to_vec1::<f64>()?;
            Ok(steps.first().copied().unwrap_or(0.0) as u64)
        };
        Ok((
            first(&self.actor_opt)?,
            first(&self.critic_opt)?,
            self.res_opt.as_ref().map(first).transpose()?,
            first(&self.alpha_opt)?,
        ))
    }

    // ---- acting -----------------------------------------------------------------------

    fn obs_tensor(&self, obs: &[f64]) -> Result<Tensor, AlgoError> {
        if obs.len() != self.obs_dim {
            return Err(AlgoError::Config(format!(
                "observation has {} entries, expected {}",
                obs.len(),
                self.obs_dim
            )));
        }
        Ok(Tensor::from_slice(obs, (1, self.obs_dim), &Device::Cpu)?.to_dtype(self.dtype)?)
    }

    /// A stochastic action `a ~ π(·|obs)` (exploration), noise from `rng`.
    pub fn act(&self, obs: &[f64], rng: &mut Rng) -> Result<Vec<f64>, AlgoError> {
        let o = self.obs_tensor(obs)?;
        let a = self.actor.sample(&o, rng)?.action;
        Ok(a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
    }

    /// The deterministic action `scale · tanh(mean) + bias` (evaluation).
    pub fn act_deterministic(&self, obs: &[f64]) -> Result<Vec<f64>, AlgoError> {
        let o = self.obs_tensor(obs)?;
        let a = self.actor.deterministic(&o)?;
        Ok(a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
    }

    /// A uniformly random action in the box (the warm-up phase before learning starts).
    pub fn random_action(&self, rng: &mut Rng) -> Vec<f64> {
        self.action_low
            .iter()
            .zip(&self.action_high)
            .map(|(l, h)| l + (h - l) * rng.uniform_f64())
            .collect()
    }

    // ---- shared update pieces -----------------------------------------------------------

    /// A minibatch of `batch_size` transitions drawn uniformly from `replay` by `rng`.
    pub fn sample_batch(
        &mut self,
        replay: &ReplayBuffer,
        rng: &mut Rng,
    ) -> Result<BatchTensors, AlgoError> {
        replay.sample_into(rng, &mut self.batch)?;
        let b = self.batch.to_tensors(&Device::Cpu)?;
        if self.dtype == DType::F32 {
            return Ok(b);
        }
        Ok(BatchTensors {
            obs: b.obs.to_dtype(self.dtype)?,
            actions: b.actions.to_dtype(self.dtype)?,
            rewards: b.rewards.to_dtype(self.dtype)?,
            next_obs: b.next_obs.to_dtype(self.dtype)?,
            terminated: b.terminated.to_dtype(self.dtype)?,
        })
    }

    /// Standard normal reparameterisation noise `[batch, act_dim]` from `rng`.
    pub fn noise(&self, rng: &mut Rng, batch: usize) -> Result<Tensor, AlgoError> {
        Ok(rng.normal_tensor((batch, self.act_dim), 0.0, 1.0, self.dtype, &Device::Cpu)?)
    }

    /// `γ (1 − terminated)`, `[batch]`: the bootstrap weight (time-limit truncations
    /// bootstrap, terminations do not).
    pub fn discount(&self, b: &BatchTensors) -> Result<Tensor, AlgoError> {
        Ok(b.terminated.affine(-self.config.gamma, self.config.gamma)?)
    }

    /// The soft Q target of D.2.1's `J_Q`, `[batch]`:
    /// `y = r + γ (1 − d) (min_i Q̄_i(s′, a′) − α ln π_θ(a′|s′))`, `a′ = f_θ(ε′; s′)`
    /// reparameterised with noise `eps_next`.
    ///
    /// The result keeps its graph: it depends on θ through `a′` and `ln π_θ(a′|s′)` (which
    /// Stack-SAC's mixed term differentiates); SAC detaches it.
    pub fn soft_q_target(&self, b: &BatchTensors, eps_next: &Tensor) -> Result<Tensor, AlgoError> {
        let next = self.actor.sample_with_noise(&b.next_obs, eps_next)?;
        let q_next = self.critic.target_min_q(&b.next_obs, &next.action)?;
        let alpha = self.entropy.alpha_tensor()?;
        let soft_v = (q_next - next.log_prob.broadcast_mul(&alpha)?)?;
        Ok((&b.rewards + (self.discount(b)? * soft_v)?)?)
    }

    /// The critic loss `J_Q = ½ mean (Q_1(s,a) − y)² + ½ mean (Q_2(s,a) − y)²` (D.2.1, both
    /// heads of the clipped double-Q critic) for a given target `y`, with TD statistics.
    pub fn critic_loss(
        &self,
        b: &BatchTensors,
        y: &Tensor,
    ) -> Result<(Tensor, CriticStats), AlgoError> {
        let (q1, q2) = self.critic.forward(&b.obs, &b.actions)?;
        let d1 = (&q1 - y)?;
        let d2 = (&q2 - y)?;
        let loss = ((d1.sqr()?.mean_all()? + d2.sqr()?.mean_all()?)? * 0.5)?;
        let abs = Tensor::cat(&[d1.detach().abs()?, d2.detach().abs()?], 0)?;
        let stats = CriticStats {
            loss: scalar(&loss)?,
            q_mean: scalar(&q1.detach().mean_all()?)?,
            td_abs_mean: scalar(&abs.mean_all()?)?,
            td_abs_max: scalar(&abs.max_all()?)?,
        };
        Ok((loss, stats))
    }

    /// The critic phase of an `Algo-x-y` round, shared by the three algorithms: `x`
    /// critic steps on fresh minibatches. Returns the last minibatch (the round's actor
    /// step reuses it) and the running sums of the steps.
    pub(crate) fn critic_phase(
        &mut self,
        replay: &ReplayBuffer,
        rng: &mut Rng,
    ) -> Result<(BatchTensors, CriticAccum), AlgoError> {
        let mut critic = CriticAccum::default();
        let mut batch = None;
        for _ in 0..self.config().critic_updates {
            let (b, stats) = self.critic_step(replay, rng)?;
            critic.add(&stats);
            batch = Some(b);
        }
        let b = batch.ok_or_else(|| AlgoError::Config("critic_updates must be >= 1".into()))?;
        Ok((b, critic))
    }

    /// One critic update on a fresh minibatch (the SAC critic step, identical in all three
    /// algorithms), then the Polyak update of the target critic. Returns the minibatch (the
    /// actor step of the round reuses the last one).
    pub fn critic_step(
        &mut self,
        replay: &ReplayBuffer,
        rng: &mut Rng,
    ) -> Result<(BatchTensors, CriticStats), AlgoError> {
        let b = self.sample_batch(replay, rng)?;
        let eps = self.noise(rng, b.obs.dim(0)?)?;
        let y = self.soft_q_target(&b, &eps)?.detach();
        let x = Tensor::cat(&[&b.obs, &b.actions], 1)?;
        let stats = if crate::nn::tape_supports(self.config.activation, Activation::Identity, &x) {
            let (stats, grads) = self.critic_loss_grads(&x, &y)?;
            check_finite("critic loss", stats.loss)?;
            self.critic_opt.step_with(&grads)?;
            stats
        } else {
            let (loss, stats) = self.critic_loss(&b, &y)?;
            check_finite("critic loss", stats.loss)?;
            self.critic_opt.backward_step(&loss)?;
            stats
        };
        self.critic.soft_update(self.config.tau)?;
        Ok((b, stats))
    }

    /// [`SacAgent::critic_loss`]'s statistics and its gradient with respect to the critic
    /// variables (in [`TwinQ::vars`] order), by the raw first-order tape
    /// ([`crate::nn::MlpTape`]) instead of Candle's autograd: same loss, same gradient up to
    /// rounding, less memory traffic. `x = [s, a]`, `y` the (detached) target.
    fn critic_loss_grads(
        &self,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<(CriticStats, Vec<Option<Tensor>>), AlgoError> {
        let n = x.dim(0)?;
        // One head: its Q values, d = Q − y, and ∂J_Q/∂φ_i.
        let head = |q: &crate::nn::QNetwork| -> candle_core::Result<(Tensor, Tensor, Vec<Tensor>)> {
            let tape = crate::nn::MlpTape::forward(q.mlp(), x)?;
            let qv = tape.output().squeeze(D::Minus1)?;
            let d = (&qv - y)?;
            // J_Q = ½ mean d₁² + ½ mean d₂²  ⇒  ∂J_Q/∂Q_i = d_i / N.
            let g = (&d * (1.0 / n as f64))?.unsqueeze(1)?;
            let (g_w, _) = tape.backward(q.mlp(), &g, false)?;
            Ok((qv, d, g_w))
        };
        let [q1, q2] = self.critic.online();
        let (h1, h2) = crate::nn::kernels::join(|| head(q1), || head(q2));
        let ((q1v, d1, g1), (_, d2, g2)) = (h1?, h2?);
        let q1_mean = scalar(&q1v.mean_all()?)?;
        let grads: Vec<Option<Tensor>> = g1.into_iter().chain(g2).map(Some).collect();
        let diffs = [d1, d2];
        let loss = ((diffs[0].sqr()?.mean_all()? + diffs[1].sqr()?.mean_all()?)? * 0.5)?;
        let abs = Tensor::cat(&[diffs[0].abs()?, diffs[1].abs()?], 0)?;
        let stats = CriticStats {
            loss: scalar(&loss)?,
            q_mean: q1_mean,
            td_abs_mean: scalar(&abs.mean_all()?)?,
            td_abs_max: scalar(&abs.max_all()?)?,
        };
        Ok((stats, grads))
    }

    /// `min_i Q_i(obs, act)` with frozen critic weights: the actor's gradient flows through
    /// the action only.
    pub fn frozen_min_q(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor, AlgoError> {
        let x = Tensor::cat(&[obs, act], 1)?;
        let nets: Vec<Vec<Tensor>> = self
            .critic
            .online()
            .iter()
            .map(|q| q.vars().iter().map(|v| v.as_tensor().clone()).collect())
            .collect();
        // Both heads in one op (on two threads when there are two): `[batch, 2]`.
        let q = crate::nn::frozen_mlps(&nets, self.config.activation, &x)?;
        Ok(q.narrow(1, 0, 1)?
            .minimum(&q.narrow(1, 1, 1)?)?
            .squeeze(D::Minus1)?)
    }

    /// Applies an actor loss: backward pass and Adam step (errors, without stepping, if the
    /// loss is not finite). Returns the loss value.
    pub(crate) fn actor_step(&mut self, loss: &Tensor) -> Result<f64, AlgoError> {
        let value = check_finite("actor loss", scalar(loss)?)?;
        self.actor_opt.backward_step(loss)?;
        Ok(value)
    }

    /// The actor step of SAC and Res-SAC: draws the reparameterised sample `ã = f_θ(ε; s)` at
    /// `obs` with noise `eps`, builds the loss `loss_of(agent, sample)`, and takes one Adam
    /// step on its gradient. Returns the loss value and the sample (for the temperature step).
    ///
    /// Where [`crate::nn::MlpTape`] handles the actor network, the network runs on the tape
    /// and Candle's autograd covers only the small part after its output (the squashed
    /// Gaussian and the loss): `∂L/∂out` from Candle, then the tape's backward pass to the
    /// weights — the same chain rule, without the autograd bookkeeping on the large layers.
    pub(crate) fn actor_step_on(
        &mut self,
        obs: &Tensor,
        eps: &Tensor,
        loss_of: impl FnOnce(&Self, &SquashedSample) -> Result<Tensor, AlgoError>,
    ) -> Result<(f64, SquashedSample), AlgoError> {
        let net = self.actor.net();
        let c = net.config();
        if !crate::nn::tape_supports(c.hidden_activation, c.output_activation, obs) {
            let sample = self.actor.sample_with_noise(obs, eps)?;
            let loss = loss_of(self, &sample)?;
            return Ok((self.actor_step(&loss)?, sample));
        }
        let tape = crate::nn::MlpTape::forward(net, obs)?;
        // The network output as a leaf: the loss's graph starts here.
        let out = Var::from_tensor(tape.output())?;
        let sample = self.actor.sample_from_output(out.as_tensor(), eps)?;
        let loss = loss_of(self, &sample)?;
        let value = check_finite("actor loss", scalar(&loss)?)?;
        let g_out = loss
            .backward()?
            .remove(out.as_tensor())
            .ok_or_else(|| AlgoError::Config("actor loss does not depend on the actor".into()))?;
        let (grads, _) = tape.backward(self.actor.net(), &g_out, false)?;
        let grads: Vec<Option<Tensor>> = grads.into_iter().map(Some).collect();
        self.actor_opt.step_with(&grads)?;
        Ok((value, sample))
    }

    /// Applies an explicit actor gradient (Stack-SAC).
    pub(crate) fn actor_step_with(&mut self, grads: &[Tensor]) -> Result<(), AlgoError> {
        let g: Vec<Option<Tensor>> = grads.iter().cloned().map(Some).collect();
        self.actor_opt.step_with(&g)?;
        Ok(())
    }

    /// The temperature update `min_α −α (ln π(ã|s) + target)` (Haarnoja et al. 2018b) with
    /// the actor step's log-probabilities. Returns `(loss, α after the step)`.
    pub(crate) fn alpha_step(&mut self, log_prob: &Tensor) -> Result<(f64, f64), AlgoError> {
        let loss = self.entropy.loss(log_prob)?;
        let value = check_finite("temperature loss", scalar(&loss)?)?;
        self.alpha_opt.backward_step(&loss)?;
        Ok((value, self.entropy.alpha()?))
    }

    /// The res-critic and its optimiser (Res-SAC).
    pub(crate) fn res_parts(&mut self) -> Result<(&ResCritic, &mut Adam), AlgoError> {
        match (&self.res_critic, &mut self.res_opt) {
            (Some(w), Some(opt)) => Ok((w, opt)),
            _ => Err(AlgoError::Config(format!(
                "{} has no res-critic",
                self.algo
            ))),
        }
    }

    // ---- state ---------------------------------------------------------------------------

    fn stores(&self) -> Vec<(&'static str, &VarMap)> {
        let mut v = vec![
            ("", &self.actor_varmap),
            ("", self.critic.varmap()),
            ("target.", self.critic.target_varmap()),
        ];
        if let Some(w) = &self.res_critic {
            v.push(("", w.varmap()));
            v.push(("target.", w.target_varmap()));
        }
        v
    }

    /// All weights as named tensors: actor (`actor.*`), critics (`critic.q1.*`,
    /// `critic.q2.*`), their targets (`target.critic.*`), res-critic and its target
    /// (`res_critic.*`, `target.res_critic.*`), and `log_alpha`.
    pub fn weight_tensors(&self) -> Result<HashMap<String, Tensor>, AlgoError> {
        let mut out = HashMap::new();
        for (prefix, vm) in self.stores() {
            let data = vm
                .data()
                .lock()
                .map_err(|_| AlgoError::Config("VarMap mutex poisoned".into()))?;
            for (name, var) in data.iter() {
                out.insert(format!("{prefix}{name}"), var.as_tensor().detach());
            }
        }
        out.insert(
            "log_alpha".into(),
            self.entropy.vars()[0].as_tensor().detach(),
        );
        Ok(out)
    }

    /// Restores [`SacAgent::weight_tensors`]; the names and shapes must match exactly.
    pub fn load_weight_tensors(&mut self, t: &HashMap<String, Tensor>) -> Result<(), AlgoError> {
        let mut expected = BTreeSet::new();
        let mut assignments = Vec::new();
        for (prefix, vm) in self.stores() {
            let data = vm
                .data()
                .lock()
                .map_err(|_| AlgoError::Config("VarMap mutex poisoned".into()))?;
            for (name, var) in data.iter() {
                let key = format!("{prefix}{name}");
                assignments.push((key.clone(), var.clone()));
                expected.insert(key);
            }
        }
        assignments.push(("log_alpha".into(), self.entropy.vars()[0].clone()));
        expected.insert("log_alpha".into());
        check_names(&expected, t, "weights")?;
        for (key, var) in assignments {
            set_var(&var, &t[&key], &key)?;
        }
        Ok(())
    }

    /// Optimiser state (Adam moments and step counts of every learner) and Stack-SAC's CG
    /// warm start, as named tensors.
    pub fn optimizer_tensors(&self) -> Result<HashMap<String, Tensor>, AlgoError> {
        let mut out = self.actor_opt.state_tensors("actor_opt")?;
        out.extend(self.critic_opt.state_tensors("critic_opt")?);
        out.extend(self.alpha_opt.state_tensors("alpha_opt")?);
        if let Some(opt) = &self.res_opt {
            out.extend(opt.state_tensors("res_opt")?);
        }
        if let Some(w) = &self.cg_warm {
            out.insert("stack_sac.cg_warm_start".into(), w.clone());
        }
        Ok(out)
    }

    /// Restores [`SacAgent::optimizer_tensors`]; names and shapes must match exactly.
    pub fn load_optimizer_tensors(&mut self, t: &HashMap<String, Tensor>) -> Result<(), AlgoError> {
        let mut expected: BTreeSet<String> = self.optimizer_tensors()?.into_keys().collect();
        expected.remove("stack_sac.cg_warm_start");
        let warm = t.get("stack_sac.cg_warm_start");
        if warm.is_some() {
            if self.algo != Algo::StackSac {
                return Err(AlgoError::StateMismatch(format!(
                    "a CG warm start in the optimiser state of a {} agent",
                    self.algo
                )));
            }
            expected.insert("stack_sac.cg_warm_start".into());
        }
        check_names(&expected, t, "optimiser state")?;
        let wrap = |e: candle_core::Error| AlgoError::StateMismatch(e.to_string());
        self.actor_opt
            .load_state_tensors(t, "actor_opt")
            .map_err(wrap)?;
        self.critic_opt
            .load_state_tensors(t, "critic_opt")
            .map_err(wrap)?;
        self.alpha_opt
            .load_state_tensors(t, "alpha_opt")
            .map_err(wrap)?;
        if let Some(opt) = &mut self.res_opt {
            opt.load_state_tensors(t, "res_opt").map_err(wrap)?;
        }
        self.cg_warm = match warm {
            Some(w) => {
                let n = numel(&self.critic.vars());
                if w.dims() != [n] {
                    return Err(AlgoError::StateMismatch(format!(
                        "CG warm start of shape {:?}, expected [{n}]",
                        w.dims()
                    )));
                }
                Some(w.to_dtype(self.dtype)?)
            }
            None => None,
        };
        Ok(())
    }
}

fn check_names(
    expected: &BTreeSet<String>,
    t: &HashMap<String, Tensor>,
    what: &str,
) -> Result<(), AlgoError> {
    let got: BTreeSet<String> = t.keys().cloned().collect();
    if &got != expected {
        let missing: Vec<_> = expected.difference(&got).take(5).cloned().collect();
        let extra: Vec<_> = got.difference(expected).take(5).cloned().collect();
        return Err(AlgoError::StateMismatch(format!(
            "{what}: missing {missing:?}, unexpected {extra:?} (another algorithm or network size?)"
        )));
    }
    Ok(())
}

fn set_var(var: &Var, t: &Tensor, key: &str) -> Result<(), AlgoError> {
    if t.shape() != var.shape() {
        return Err(AlgoError::StateMismatch(format!(
            "{key} has shape {:?}, the agent needs {:?} (different network sizes?)",
            t.dims(),
            var.dims()
        )));
    }
    var.set(&t.to_dtype(var.dtype())?.detach())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(seed: u64) -> SacAgent {
        let config = SacConfig {
            hidden: vec![32, 24],
            batch_size: 17,
            ..SacConfig::default()
        };
        let mut rng = Rng::seed_from_u64(seed);
        SacAgent::new(
            Algo::Sac,
            &config,
            5,
            &[-1.0, -2.0],
            &[1.0, 2.0],
            DType::F64,
            &mut rng,
        )
        .unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        scalar(&(a - b).unwrap().abs().unwrap().max_all().unwrap()).unwrap()
    }

    /// The actor step through the tape takes the same Adam step as the plain autograd one.
    #[test]
    fn actor_tape_step_equals_the_autograd_step() {
        let (mut taped, mut plain) = (agent(12), agent(12));
        let mut rng = Rng::seed_from_u64(13);
        let obs = rng
            .normal_tensor((17, 5), 0.0, 1.0, DType::F64, &Device::Cpu)
            .unwrap();
        let eps = taped.noise(&mut rng, 17).unwrap();
        let loss_of = |a: &SacAgent, s: &SquashedSample| -> Result<Tensor, AlgoError> {
            let q = a.frozen_min_q(&obs, &s.action)?;
            let alpha = a.entropy().alpha_tensor()?;
            Ok((s.log_prob.broadcast_mul(&alpha)? - q)?.mean_all()?)
        };
        let (value, sample) = taped.actor_step_on(&obs, &eps, loss_of).unwrap();
        let reference = plain.actor().sample_with_noise(&obs, &eps).unwrap();
        let plain_value = plain
            .actor_step(&loss_of(&plain, &reference).unwrap())
            .unwrap();
        assert!((value - plain_value).abs() < 1e-12);
        assert!(max_abs_diff(&sample.log_prob, &reference.log_prob) < 1e-12);
        let moved = taped
            .actor()
            .vars()
            .iter()
            .zip(agent(12).actor().vars())
            .map(|(a, b)| max_abs_diff(a.as_tensor(), b.as_tensor()))
            .fold(0.0, f64::max);
        assert!(moved > 1e-6, "the step moved the actor");
        for (a, b) in taped.actor().vars().iter().zip(plain.actor().vars()) {
            assert!(max_abs_diff(a.as_tensor(), b.as_tensor()) < 1e-12);
        }
    }

    /// The critic step's tape gradient is the autograd gradient of [`SacAgent::critic_loss`],
    /// and its statistics are that loss's.
    #[test]
    fn critic_tape_gradient_is_the_critic_loss_gradient() {
        let agent = agent(11);
        let mut rng = Rng::seed_from_u64(14);
        let dev = Device::Cpu;
        let t = |rng: &mut Rng, shape: &[usize]| {
            rng.normal_tensor(shape.to_vec(), 0.0, 1.0, DType::F64, &dev)
                .unwrap()
        };
        let b = BatchTensors {
            obs: t(&mut rng, &[17, 5]),
            actions: t(&mut rng, &[17, 2]),
            rewards: t(&mut rng, &[17]),
            next_obs: t(&mut rng, &[17, 5]),
            terminated: Tensor::zeros(17, DType::F64, &dev).unwrap(),
        };
        let y = t(&mut rng, &[17]);
        let (loss, stats) = agent.critic_loss(&b, &y).unwrap();
        let auto = loss.backward().unwrap();
        let x = Tensor::cat(&[&b.obs, &b.actions], 1).unwrap();
        let (tape_stats, grads) = agent.critic_loss_grads(&x, &y).unwrap();
        let vars = agent.critic().vars();
        assert_eq!(grads.len(), vars.len());
        for (v, g) in vars.iter().zip(&grads) {
            let a = auto.get(v.as_tensor()).unwrap();
            let d = (a - g.as_ref().unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            let scale = a.abs().unwrap().max_all().unwrap();
            assert!(scalar(&d).unwrap() <= 1e-12 * scalar(&scale).unwrap().max(1e-12));
        }
        for (a, b) in [
            (tape_stats.loss, stats.loss),
            (tape_stats.q_mean, stats.q_mean),
            (tape_stats.td_abs_mean, stats.td_abs_mean),
            (tape_stats.td_abs_max, stats.td_abs_max),
        ] {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
