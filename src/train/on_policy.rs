//! The on-policy trainer of AC and STAC (paper 000, Sec. 4), on the run machinery of the SAC
//! family (run directory, `config.json`, metrics, evaluation, checkpoints, resume, progress):
//!
//! ```text
//! for epoch in 0..steps / epoch_steps:
//!     data = collect epoch_steps steps with the current policy   (OnPolicyAgent::collect_epoch)
//!     an "episode" row per episode that ended in the epoch
//!     one actor step (AC: ∂J/∂θ, STAC: dJ/dθ) and k critic steps (OnPolicyAgent::update)
//!     a "train" row (the epoch's statistics: losses, gradient norms, λ, CG iterations, ...)
//!     at the first epoch end at or after every eval_every steps, and at the end:
//!         deterministic evaluation on a separate environment
//!     at the first epoch end at or after every checkpoint_every steps, and at the end:
//!         a checkpoint
//! ```
//!
//! # Exact resume
//!
//! An epoch never continues an episode of the previous one: [`OnPolicyAgent::collect_epoch`]
//! resets the environment at the start of every epoch (and after every episode) with a seed
//! drawn from the run's [`Rng`], and the episode cut by the epoch end bootstraps with `V(s_T)`
//! (Spinning Up's VPG, on which the paper's code is built, does the same). Epoch boundaries
//! are therefore episode boundaries, and a checkpoint there (weights, optimiser state, epoch
//! counter, CG warm start, the RNG state, counters, metrics positions) determines the rest of
//! the run: the environments' private state never has to be saved (see
//! [`crate::train::episodes`]). Checkpoints are only taken at epoch ends, so a resumed run
//! writes exactly the metrics rows of an uninterrupted one (all columns but the wall-clock
//! ones, [`TIMING_COLUMNS`]).
//!
//! [`RunOptions::interrupt_at`] (a testing aid) stops at the first epoch start at or after that
//! step, as if the process had been killed there.
//!
//! Evaluation uses its own environment, reset with seeds fixed per run, and the
//! deterministic policy (the mean action, or the most probable one); it draws nothing from
//! the run's RNG, so evaluating more or less often does not change the training run.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::checkpoint::{Checkpointer, load_tensors, save_tensors};
use super::episodes::{EvalResult, evaluate};
use super::metrics::{MetricsPositions, MetricsWriter, Row};
use super::off_policy::{RunOptions, TrainSummary};
use super::progress::Progress;
use super::run_dir::{self, CONFIG_FILE, create_run_dir, run_name, unix_time};
use crate::algos::{
    AlgoError, CriticHessian, EpochData, EpochStats, OnPolicyAgent, OnPolicyAlgo, OnPolicyConfig,
    OptimizerKind, Precision, StacConfig, StacEstimator, StackHessian,
};
use crate::autodiff::CgStop;
use crate::autodiff::CurvatureEngine;
use crate::envs::{self, Space};
use crate::nn::Activation;
use crate::rng::Rng;

/// Default total environment steps (30 epochs of 4000, the CartPole budget of `docs/stac.md`).
pub const DEFAULT_STEPS: u64 = 120_000;
/// Default environment steps per epoch (Spinning Up's VPG, the paper's code).
pub const DEFAULT_EPOCH_STEPS: u64 = 4000;
/// STAC's default bound of `‖implicit‖ / ‖∂J/∂θ‖` (`--implicit-max-ratio`): the best of
/// 0.1, 0.3, 1, 2, 3 and unbounded on CartPole-v1 with the other defaults (120k steps, 5
/// seeds; `docs/studies/stac-cartpole/`). Unbounded, the paper's step, ends below a random
/// policy there.
pub const DEFAULT_IMPLICIT_MAX_RATIO: f64 = 3.0;
/// Default evaluation interval in environment steps.
pub const DEFAULT_EVAL_EVERY: u64 = 5_000;
/// Default checkpoint interval in environment steps.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;

/// The command-line name of an on-policy algorithm (`ac`, `stac`).
pub fn algo_name(algo: OnPolicyAlgo) -> &'static str {
    match algo {
        OnPolicyAlgo::Ac => "ac",
        OnPolicyAlgo::Stac => "stac",
    }
}

/// Parses `ac` or `stac`.
pub fn parse_algo(name: &str) -> Option<OnPolicyAlgo> {
    match name {
        "ac" => Some(OnPolicyAlgo::Ac),
        "stac" => Some(OnPolicyAlgo::Stac),
        _ => None,
    }
}

/// `algo` as `"ac"` / `"stac"` in `config.json`.
mod algo_serde {
    use super::{OnPolicyAlgo, algo_name, parse_algo};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &OnPolicyAlgo, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(algo_name(*a))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OnPolicyAlgo, D::Error> {
        let name = String::deserialize(d)?;
        parse_algo(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown on-policy algorithm '{name}'; valid: ac, stac"
            ))
        })
    }
}

/// `optimizer` as `"sgd"` / `"adam"` in `config.json`.
mod optimizer_serde {
    use super::OptimizerKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(o: &OptimizerKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match o {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OptimizerKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            other => Err(serde::de::Error::custom(format!(
                "unknown optimizer '{other}'; valid: sgd, adam"
            ))),
        }
    }
}

/// Everything that defines an AC / STAC run. Serialised as the run's `config.json`, and the
/// format of `stackrl train --config FILE` for `--algo ac|stac` (keys are the CLI's long
/// option names with `_` for `-`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnPolicyTrainConfig {
    /// Environment id (Discrete or Box actions).
    pub env: String,
    /// AC or STAC.
    #[serde(with = "algo_serde")]
    pub algo: OnPolicyAlgo,
    /// Seed of the run's [`Rng`] (initialisation, actions, reset seeds).
    pub seed: u64,
    /// Total environment steps; a multiple of `epoch_steps`.
    pub steps: u64,
    /// Environment steps per epoch (one actor step and `critic_steps` critic steps each).
    pub epoch_steps: u64,
    /// Discount γ.
    pub gamma: f64,
    /// GAE's λ (not STAC's `lambda`).
    pub gae_lambda: f64,
    /// Actor learning rate αθ.
    pub lr_actor: f64,
    /// Critic learning rate αw.
    pub lr_critic: f64,
    /// Critic steps per epoch, the paper's unrolling `k` (1 and 80 in Fig. 1).
    pub critic_steps: usize,
    /// Plain gradient steps (the paper) or Adam.
    #[serde(with = "optimizer_serde")]
    pub optimizer: OptimizerKind,
    /// Hidden widths of actor and critic (paper: 64, 64).
    pub hidden: Vec<usize>,
    /// Hidden activation (paper: tanh).
    pub activation: Activation,
    /// Initial log-std of the Gaussian policy (Box actions only; `None`: −0.5).
    pub init_log_std: Option<f64>,
    /// Normalise the actor's advantages per epoch.
    pub normalize_advantages: bool,
    /// STAC's Hessian regularisation λ (paper: 0 on CartPole, 500 on MuJoCo).
    pub lambda: f64,
    /// Per-epoch decay factor of λ in (0, 1] (1: constant).
    pub lambda_decay: f64,
    /// Floor of the decayed λ.
    pub lambda_min: f64,
    /// STAC: conjugate-gradient iterations per actor step.
    pub cg_iters: usize,
    /// STAC: CG stops early at this relative residual.
    pub cg_tol: f64,
    /// STAC: start CG from the previous epoch's solution.
    pub cg_warm_start: bool,
    /// STAC: the critic Hessian to invert (exact, eq. 21-22, or its Gauss-Newton part).
    pub stack_hessian: StackHessian,
    /// STAC: how the Hessian-vector and mixed products are computed (same values either
    /// way; `fast` is the R-operator engine, `autodiff` Candle's double backward).
    #[serde(default)]
    pub curvature: CurvatureEngine,
    /// STAC: bound of `‖implicit‖ / ‖∂J/∂θ‖` (`None`: unbounded, the paper's step; also what
    /// a `config.json` without the key means, so runs started before it resume unchanged:
    /// [`run_dir::config_hash`] leaves the key out while it is `None`).
    #[serde(default)]
    pub implicit_max_ratio: Option<f64>,
    /// STAC: the sample estimators of `∂J/∂w` and the mixed term (`exact`, or the paper's
    /// code's surrogates, `paper`).
    #[serde(default)]
    pub stac_estimator: StacEstimator,
    /// Evaluate at the first epoch end at or after every this many steps (0: only at the
    /// end).
    pub eval_every: u64,
    /// Deterministic evaluation episodes.
    pub eval_episodes: usize,
    /// Checkpoint at the first epoch end at or after every this many steps (0: only at the
    /// end).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// Threads of Candle's matrix products (see [`super::configure_threads`]).
    pub threads: usize,
}

impl Default for OnPolicyTrainConfig {
    /// CartPole-v1 AC with the defaults of [`OnPolicyConfig`] (the paper's architecture and
    /// its code's plain gradient steps, αθ = 0.1, αw = 0.01, k = 80, 4000 steps per epoch).
    fn default() -> Self {
        let a = OnPolicyConfig::default();
        let s = StacConfig::default();
        Self {
            env: "CartPole-v1".into(),
            algo: OnPolicyAlgo::Ac,
            seed: 0,
            steps: DEFAULT_STEPS,
            epoch_steps: DEFAULT_EPOCH_STEPS,
            gamma: a.gamma,
            gae_lambda: a.gae_lambda,
            lr_actor: a.actor_lr,
            lr_critic: a.critic_lr,
            critic_steps: a.critic_steps,
            optimizer: a.optimizer,
            hidden: a.hidden,
            activation: a.activation,
            init_log_std: a.init_log_std,
            normalize_advantages: a.normalize_advantages,
            lambda: s.lambda,
            lambda_decay: s.lambda_decay,
            lambda_min: s.lambda_min,
            cg_iters: s.cg_iters,
            cg_tol: s.cg_rel_tol,
            cg_warm_start: s.warm_start,
            stack_hessian: StackHessian::Exact,
            curvature: CurvatureEngine::Fast,
            implicit_max_ratio: Some(DEFAULT_IMPLICIT_MAX_RATIO),
            stac_estimator: StacEstimator::Exact,
            eval_every: DEFAULT_EVAL_EVERY,
            eval_episodes: 10,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            keep_checkpoints: 1,
            threads: 1,
        }
    }
}

fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> TrainError {
    let what = what.into();
    move |source| TrainError::Json { what, source }
}

impl OnPolicyTrainConfig {
    /// The valid keys of a configuration object.
    pub fn keys() -> Vec<String> {
        run_dir::config_keys(&Self::default())
    }

    /// Builds a configuration from layers: the defaults, then `file` (a JSON object, e.g.
    /// `--config FILE`), then `overrides` (the options given on the command line). Unknown
    /// keys are errors; the result is validated.
    pub fn from_layers(
        file: Option<&serde_json::Value>,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, TrainError> {
        let (config, _): (Self, _) =
            run_dir::merge_layers(&Self::default(), file, overrides, " for ac/stac")?;
        config.validate()?;
        Ok(config)
    }

    /// The agent's configuration.
    pub fn agent_config(&self) -> OnPolicyConfig {
        OnPolicyConfig {
            algo: self.algo,
            steps_per_epoch: usize::try_from(self.epoch_steps).unwrap_or(usize::MAX),
            gamma: self.gamma,
            gae_lambda: self.gae_lambda,
            actor_lr: self.lr_actor,
            critic_lr: self.lr_critic,
            critic_steps: self.critic_steps,
            optimizer: self.optimizer,
            hidden: self.hidden.clone(),
            activation: self.activation,
            init_log_std: self.init_log_std,
            normalize_advantages: self.normalize_advantages,
            precision: Precision::F32,
            stac: StacConfig {
                lambda: self.lambda,
                lambda_decay: self.lambda_decay,
                lambda_min: self.lambda_min,
                cg_iters: self.cg_iters,
                cg_rel_tol: self.cg_tol,
                cg_true_residual: false,
                warm_start: self.cg_warm_start,
                hessian: match self.stack_hessian {
                    StackHessian::Exact => CriticHessian::Exact,
                    StackHessian::GaussNewton => CriticHessian::GaussNewton,
                },
                curvature: self.curvature,
                implicit_max_ratio: self.implicit_max_ratio,
                estimator: self.stac_estimator,
            },
        }
    }

    /// Checks every value except the environment id and the options that depend on its
    /// action space (`init_log_std` on a discrete space), which are checked when the
    /// environment is made ([`train`]).
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.steps == 0 {
            return bad("steps must be positive".into());
        }
        if self.epoch_steps == 0 {
            return bad("epoch_steps must be positive".into());
        }
        if self.steps < self.epoch_steps || !self.steps.is_multiple_of(self.epoch_steps) {
            return bad(format!(
                "steps ({}) must be a positive multiple of epoch_steps ({}): the run is made of \
                 whole epochs",
                self.steps, self.epoch_steps
            ));
        }
        for (name, lr) in [("lr_actor", self.lr_actor), ("lr_critic", self.lr_critic)] {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!("{name} must be finite and > 0, got {lr}"));
            }
        }
        if self.eval_episodes == 0 || self.eval_episodes > super::MAX_EVAL_EPISODES {
            return bad(format!(
                "eval_episodes must be between 1 and {} (got {})",
                super::MAX_EVAL_EPISODES,
                self.eval_episodes
            ));
        }
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints must be at least 1".into());
        }
        // The space-independent checks of the agent's configuration (λ >= 0, k >= 1, rates,
        // γ, ...): a one-dimensional Box space accepts every space-dependent option.
        let any_box = Space::Box {
            low: vec![-1.0],
            high: vec![1.0],
        };
        self.agent_config().validate(&any_box)?;
        Ok(())
    }

    /// The JSON written as `config.json`.
    pub fn to_json(&self) -> Result<String, TrainError> {
        run_dir::config_to_json(self)
    }

    /// Hash of everything that determines the run's results (see [`run_dir::config_hash`]).
    pub fn hash(&self) -> Result<String, TrainError> {
        run_dir::config_hash(self)
    }

    /// Reads and validates a run's `config.json`.
    pub fn read(run_dir: &Path) -> Result<Self, TrainError> {
        let config: Self = run_dir::read_config(run_dir)?;
        config.validate()?;
        Ok(config)
    }
}

/// The metrics columns of this trainer. Rows have `event` = `episode` (a training episode
/// ended), `train` (one per epoch: the update's statistics) or `eval`. `cg_stop` is why
/// STAC's CG stopped (`converged`, `max_iterations`, `non_positive_curvature` with the
/// Rayleigh quotient `cg_curvature` of the offending direction, `zero_rhs`).
pub const COLUMNS: &[&str] = &[
    "step",
    "event",
    "epoch",
    "episode",
    "episode_return",
    "episode_length",
    "eval_mean",
    "eval_std",
    "eval_min",
    "eval_max",
    "episodes",
    "mean_return",
    "min_return",
    "max_return",
    "mean_length",
    "actor_objective",
    "entropy",
    "critic_loss",
    "critic_loss_after",
    "mean_value",
    "advantage_std",
    "direct_grad_norm",
    "implicit_grad_norm",
    "total_grad_norm",
    "objective_grad_w_norm",
    "lambda",
    "cg_iters",
    "cg_residual",
    "cg_stop",
    "cg_curvature",
    "collect_s",
    "update_s",
    "sps",
    "time_s",
];

/// The wall-clock columns (the only ones that differ between identical runs).
pub const TIMING_COLUMNS: &[&str] = &["collect_s", "update_s", "sps", "time_s"];

pub(crate) const META_FILE: &str = "meta.json";
pub(crate) const WEIGHTS_FILE: &str = "weights.safetensors";
pub(crate) const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub(crate) const FORMAT: &str = "stackrl-onpolicy-checkpoint-v1";

/// A checkpoint's `meta.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    format: String,
    stackrl_version: String,
    algo: String,
    env: String,
    obs_dim: usize,
    act_len: usize,
    hidden: Vec<usize>,
    config_hash: String,
    step: u64,
    epochs: u64,
    episodes: u64,
    finished: bool,
    rng: Rng,
    metrics: MetricsPositions,
    elapsed_s: f64,
}

/// Everything a run holds while it trains.
struct Session {
    config: OnPolicyTrainConfig,
    run_dir: PathBuf,
    agent: OnPolicyAgent,
    rng: Rng,
    metrics: MetricsWriter,
    checkpointer: Checkpointer,
    step: u64,
    epochs: u64,
    episodes: u64,
    elapsed_before: f64,
    last_checkpoint: Option<PathBuf>,
    /// The run directory's lock, held while this process trains it.
    _lock: crate::files::FileLock,
}

/// Makes the environment and the agent (initialised from a fresh `Rng::seed_from_u64(seed)`,
/// whose state after the initialisation is returned).
/// Whether a run needs Candle's second-order switch: STAC on the double-backward engine
/// (the fast engine's products are all first-order passes).
pub fn needs_second_order(config: &OnPolicyTrainConfig) -> bool {
    config.algo == OnPolicyAlgo::Stac && config.curvature == CurvatureEngine::Autodiff
}

/// What the run's sizes need in memory, checked before anything is allocated (see
/// [`crate::memory`]): one epoch's rollout (observations, actions and the per-step
/// statistics, with the tensor copies the update makes) and the networks' activations over
/// the epoch's batch, forward and backward (twice for STAC's second-order terms).
fn check_memory(
    config: &OnPolicyTrainConfig,
    obs_dim: usize,
    act_dim: usize,
) -> Result<(), TrainError> {
    let epoch = usize::try_from(config.epoch_steps).unwrap_or(usize::MAX);
    let per_step = (obs_dim + act_dim).saturating_add(8).saturating_mul(3);
    let hidden_sum: usize = config
        .hidden
        .iter()
        .fold(0usize, |a, &h| a.saturating_add(h));
    let passes = if config.algo == OnPolicyAlgo::Stac {
        16
    } else {
        8
    };
    let mut needs = crate::memory::Needs::new();
    needs
        .add(
            format!("one epoch's rollout (--epoch-steps {})", config.epoch_steps),
            crate::memory::bytes(&[epoch, per_step], 8),
        )
        .add(
            format!(
                "the networks' activations over an epoch (--epoch-steps {}, --hidden {:?})",
                config.epoch_steps, config.hidden
            ),
            crate::memory::bytes(&[epoch, hidden_sum, passes], 8),
        )
        .add(
            format!("the networks (--hidden {:?})", config.hidden),
            crate::memory::mlp_params(obs_dim, &config.hidden, act_dim.max(1) * 2)
                .saturating_add(crate::memory::mlp_params(obs_dim, &config.hidden, 1))
                .saturating_mul(8 * 6),
        );
    needs.check()?;
    Ok(())
}

pub(crate) fn build(config: &OnPolicyTrainConfig) -> Result<(OnPolicyAgent, Rng), TrainError> {
    let env = envs::make(&config.env)?;
    if needs_second_order(config) {
        crate::autodiff::check_second_order().map_err(|e| {
            TrainError::Config(format!(
                "stac with --curvature autodiff needs second-order gradients: {e} (call \
                 stackrl::autodiff::enable_second_order() at program start)"
            ))
        })?;
    }
    check_memory(
        config,
        env.observation_space().dim(),
        env.action_space().dim(),
    )?;
    let mut rng = Rng::seed_from_u64(config.seed);
    let agent = OnPolicyAgent::new(
        config.agent_config(),
        env.observation_space(),
        env.action_space(),
        &mut rng,
    )?;
    Ok((agent, rng))
}

/// Starts a new AC / STAC run: creates its directory (with `config.json`), trains for
/// `config.steps` environment steps with evaluations and checkpoints, and returns a summary.
///
/// For STAC, second-order gradients must be live in the calling thread
/// ([`crate::autodiff::enable_second_order`]); the `stackrl` binary turns them on.
pub fn train(
    config: &OnPolicyTrainConfig,
    options: &RunOptions,
) -> Result<TrainSummary, TrainError> {
    config.validate()?;
    let (agent, rng) = build(config)?;
    let name = run_name(
        &config.env,
        algo_name(config.algo),
        config.seed,
        unix_time(),
    );
    let (run_dir, lock) = create_run_dir(
        options.run_dir.as_deref(),
        &options.runs_root,
        &name,
        &config.to_json()?,
    )?;
    let metrics = MetricsWriter::create(&run_dir, COLUMNS)?;
    let checkpointer = Checkpointer::open(&run_dir, config.keep_checkpoints)?;
    Session {
        config: config.clone(),
        run_dir,
        agent,
        rng,
        metrics,
        checkpointer,
        step: 0,
        epochs: 0,
        episodes: 0,
        elapsed_before: 0.0,
        last_checkpoint: None,
        _lock: lock,
    }
    .run(options)
}

/// Continues the AC / STAC run in `run_dir` from its latest checkpoint (or from the start if
/// it was stopped before the first one), with the run's own `config.json`. The metrics rows
/// written after that checkpoint are dropped and written again, identically.
///
/// Errors if the checkpoint is corrupt or does not belong to this configuration.
pub fn resume(run_dir: &Path, options: &RunOptions) -> Result<TrainSummary, TrainError> {
    let config = OnPolicyTrainConfig::read(run_dir)?;
    let (mut agent, rng) = build(&config)?;
    let lock = run_dir::lock_run_dir(run_dir)?;
    let checkpointer = Checkpointer::open(run_dir, config.keep_checkpoints)?;
    let Some(ckpt) = Checkpointer::latest(run_dir)? else {
        // Stopped before the first checkpoint: start over in the same directory.
        let metrics = MetricsWriter::create(run_dir, COLUMNS)?;
        return Session {
            config,
            run_dir: run_dir.to_path_buf(),
            agent,
            rng,
            metrics,
            checkpointer,
            step: 0,
            epochs: 0,
            episodes: 0,
            elapsed_before: 0.0,
            last_checkpoint: None,
            _lock: lock,
        }
        .run(options);
    };
    super::checkpoint::verify(&ckpt)?;
    let meta_path = ckpt.join(META_FILE);
    let meta_text = fs::read_to_string(&meta_path)
        .map_err(|e| TrainError::Checkpoint(format!("cannot read {}: {e}", meta_path.display())))?;
    let meta: Meta = serde_json::from_str(&meta_text)
        .map_err(|e| TrainError::Checkpoint(format!("{} is corrupt: {e}", meta_path.display())))?;
    if meta.format != FORMAT {
        return Err(TrainError::Checkpoint(format!(
            "{} has format {:?}, expected {FORMAT:?}",
            meta_path.display(),
            meta.format
        )));
    }
    let mismatch = |what: &str, ckpt: String, run: String| {
        Err(TrainError::CheckpointMismatch(format!(
            "{what}: the checkpoint has {ckpt}, the run's {CONFIG_FILE} has {run}"
        )))
    };
    let algo = algo_name(config.algo);
    if meta.algo != algo {
        return mismatch("algorithm", meta.algo.clone(), algo.into());
    }
    if meta.env != config.env {
        return mismatch("environment", meta.env.clone(), config.env.clone());
    }
    if meta.hidden != config.hidden {
        return mismatch(
            "hidden sizes",
            format!("{:?}", meta.hidden),
            format!("{:?}", config.hidden),
        );
    }
    let (obs_dim, act_len) = (agent.obs_dim(), agent.action_len());
    if meta.obs_dim != obs_dim || meta.act_len != act_len {
        return mismatch(
            "observation/action widths",
            format!("{}/{}", meta.obs_dim, meta.act_len),
            format!("{obs_dim}/{act_len}"),
        );
    }
    let hash = config.hash()?;
    if meta.config_hash != hash {
        return mismatch("configuration hash", meta.config_hash.clone(), hash);
    }
    if meta.finished {
        return Ok(TrainSummary {
            run_dir: run_dir.to_path_buf(),
            steps: meta.step,
            episodes: meta.episodes,
            updates: meta.epochs,
            final_eval: None,
            interrupted: false,
            already_finished: true,
            wall_s: 0.0,
        });
    }
    if meta.step != meta.epochs * config.epoch_steps || meta.step >= config.steps {
        return Err(TrainError::Checkpoint(format!(
            "{}: step {} and {} epochs do not fit the run ({} steps of epochs of {})",
            meta_path.display(),
            meta.step,
            meta.epochs,
            config.steps,
            config.epoch_steps
        )));
    }
    let mut state = load_tensors(&ckpt.join(WEIGHTS_FILE))?;
    state.extend(load_tensors(&ckpt.join(OPTIMIZER_FILE))?);
    agent
        .load_state_tensors(&state)
        .map_err(|e| TrainError::CheckpointMismatch(e.to_string()))?;
    if agent.epochs_done() != meta.epochs {
        return Err(TrainError::CheckpointMismatch(format!(
            "the saved agent has done {} epochs, {} says {}",
            agent.epochs_done(),
            meta_path.display(),
            meta.epochs
        )));
    }
    let metrics = MetricsWriter::resume(run_dir, COLUMNS, meta.metrics)?;
    Session {
        config,
        run_dir: run_dir.to_path_buf(),
        agent,
        rng: meta.rng.clone(),
        metrics,
        checkpointer,
        step: meta.step,
        epochs: meta.epochs,
        episodes: meta.episodes,
        elapsed_before: meta.elapsed_s,
        last_checkpoint: Some(ckpt),
        _lock: lock,
    }
    .run(options)
}

/// True when `every > 0` and a multiple of it lies in `(from, to]`: the epoch that ended at
/// `to` crossed it.
fn crossed(every: u64, from: u64, to: u64) -> bool {
    every > 0 && to / every > from / every
}

/// The first statistic of an update that is not finite, if any (a diverged update).
fn non_finite(s: &EpochStats) -> Option<(&'static str, f64)> {
    [
        ("actor objective", s.actor_objective),
        ("critic loss", s.critic_loss),
        ("critic loss after the critic steps", s.critic_loss_after),
        ("actor gradient norm", s.total_grad_norm),
        ("policy entropy", s.entropy),
    ]
    .into_iter()
    .find(|(_, x)| !x.is_finite())
}

/// The first parameter tensor holding a NaN or infinity, if any.
fn non_finite_params(agent: &OnPolicyAgent) -> Result<Option<(&'static str, f64)>, TrainError> {
    for (what, vars) in [
        ("actor parameters", agent.policy().vars()),
        ("critic parameters", agent.critic().vars()),
    ] {
        for v in vars {
            let s = v
                .as_tensor()
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            if !s.is_finite() {
                return Ok(Some((what, s)));
            }
        }
    }
    Ok(None)
}

impl Session {
    fn eval_seed(&self, i: usize) -> u64 {
        // Fixed per run and independent of the training stream (the same constant as the
        // off-policy trainer): every evaluation sees the same initial states.
        Rng::seed_from_u64(self.config.seed ^ 0x5EED_E7A1_0000_0000)
            .next_u64()
            .wrapping_add(i as u64)
    }

    fn evaluate(&self, env: &mut dyn envs::Env) -> Result<EvalResult, TrainError> {
        let agent = &self.agent;
        // The deterministic action draws nothing; this RNG only satisfies the signature.
        let mut unused = Rng::seed_from_u64(0);
        evaluate(
            env,
            self.config.eval_episodes,
            |i| self.eval_seed(i),
            |obs| agent.act(obs, true, &mut unused).map_err(TrainError::from),
        )
    }

    fn save_checkpoint(&mut self, finished: bool, elapsed: f64) -> Result<PathBuf, TrainError> {
        let meta = Meta {
            format: FORMAT.into(),
            stackrl_version: env!("CARGO_PKG_VERSION").into(),
            algo: algo_name(self.config.algo).into(),
            env: self.config.env.clone(),
            obs_dim: self.agent.obs_dim(),
            act_len: self.agent.action_len(),
            hidden: self.config.hidden.clone(),
            config_hash: self.config.hash()?,
            step: self.step,
            epochs: self.epochs,
            episodes: self.episodes,
            finished,
            rng: self.rng.clone(),
            metrics: self.metrics.positions(),
            elapsed_s: elapsed,
        };
        let meta_json =
            serde_json::to_string_pretty(&meta).map_err(json_err("checkpoint metadata"))?;
        // Weights in one file, everything else of the agent (Adam moments, epoch counter, CG
        // warm start) in the other.
        let (weights, optim): (HashMap<String, Tensor>, HashMap<String, Tensor>) = self
            .agent
            .state_tensors()?
            .into_iter()
            .partition(|(k, _)| k.starts_with("actor.") || k.starts_with("critic."));
        let path = self.checkpointer.save(self.step, |dir| {
            save_tensors(&dir.join(WEIGHTS_FILE), &weights)?;
            save_tensors(&dir.join(OPTIMIZER_FILE), &optim)?;
            fs::write(dir.join(META_FILE), &meta_json).map_err(|e| TrainError::Io {
                path: dir.join(META_FILE),
                source: e,
            })
        })?;
        self.last_checkpoint = Some(path.clone());
        Ok(path)
    }

    fn summary(
        &self,
        final_eval: Option<EvalResult>,
        interrupted: bool,
        wall_s: f64,
    ) -> TrainSummary {
        TrainSummary {
            run_dir: self.run_dir.clone(),
            steps: self.step,
            episodes: self.episodes,
            updates: self.epochs,
            final_eval,
            interrupted,
            already_finished: false,
            wall_s,
        }
    }

    fn write_episodes(&mut self, data: &EpochData, epoch_start: u64) -> Result<(), TrainError> {
        let mut finished = 0;
        for seg in &data.segments {
            if matches!(seg.end, crate::algos::SegmentEnd::EpochEnd { .. }) {
                continue;
            }
            // Episodes end in segment order; `episode_returns` lists them in that order.
            let (Some(ret), Some(len)) = (
                data.episode_returns.get(finished),
                data.episode_lengths.get(finished),
            ) else {
                break;
            };
            finished += 1;
            self.episodes += 1;
            self.metrics.write(
                &Row::new()
                    .int("step", epoch_start + (seg.start + seg.len) as u64)
                    .text("event", "episode")
                    .int("episode", self.episodes)
                    .num("episode_return", *ret)
                    .int("episode_length", *len as u64),
            )?;
        }
        Ok(())
    }

    fn run(mut self, options: &RunOptions) -> Result<TrainSummary, TrainError> {
        let started = Instant::now();
        let cfg = self.config.clone();
        let mut env = envs::make(&cfg.env)?;
        let mut eval_env = envs::make(&cfg.env)?;
        let progress = Progress::new(
            options.progress,
            cfg.steps,
            self.step,
            &format!("{} {} seed {}", algo_name(cfg.algo), cfg.env, cfg.seed),
        );
        progress.println(&format!(
            "run directory: {}{}",
            self.run_dir.display(),
            if self.step > 0 {
                format!(" (resumed at step {})", self.step)
            } else {
                String::new()
            }
        ));
        let elapsed_before = self.elapsed_before;
        let elapsed = || elapsed_before + started.elapsed().as_secs_f64();
        let mut last_eval: Option<(f64, f64)> = None;
        // --video-every: opened before training so a missing EGL fails early.
        #[cfg(feature = "render")]
        let mut videos = match options.video_every {
            Some(every) => Some(crate::render::VideoRecorder::new(
                &self.run_dir,
                &cfg.env,
                every,
                self.eval_seed(0),
                &crate::render::ViewOptions::default(),
            )?),
            None => None,
        };
        #[cfg(not(feature = "render"))]
        if options.video_every.is_some() {
            return Err(TrainError::Config(
                "video_every needs stackrl built with the `render` feature".into(),
            ));
        }

        while self.step < cfg.steps {
            if options.interrupt_at.is_some_and(|s| self.step >= s) {
                progress.println(&format!(
                    "interrupted at step {} (--interrupt-at)",
                    self.step
                ));
                progress.finish();
                return Ok(self.summary(None, true, started.elapsed().as_secs_f64()));
            }
            let t_epoch = Instant::now();
            let epoch_start = self.step;
            let data = self.agent.collect_epoch(env.as_mut(), &mut self.rng)?;
            self.write_episodes(&data, epoch_start)?;
            let step = epoch_start + data.len() as u64;
            let stats = self.agent.update(&data)?;
            let bad = match non_finite(&stats) {
                Some(b) => Some(b),
                None => non_finite_params(&self.agent)?,
            };
            if let Some((what, value)) = bad {
                progress.finish();
                return Err(TrainError::Diverged {
                    step,
                    source: Box::new(AlgoError::NonFinite { what, value }),
                    last_checkpoint: self.last_checkpoint.clone(),
                });
            }
            self.step = step;
            self.epochs += 1;
            let timing = self.agent.last_timing().clone();
            let sps = data.len() as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9);
            let row = Row::new()
                .int("step", step)
                .text("event", "train")
                .int("epoch", self.epochs)
                .int("episodes", stats.episodes as u64)
                .opt("mean_return", stats.mean_return)
                .opt("min_return", stats.min_return)
                .opt("max_return", stats.max_return)
                .opt("mean_length", stats.mean_length)
                .num("actor_objective", stats.actor_objective)
                .num("entropy", stats.entropy)
                .num("critic_loss", stats.critic_loss)
                .num("critic_loss_after", stats.critic_loss_after)
                .num("mean_value", stats.mean_value)
                .num("advantage_std", stats.advantage_std)
                .num("direct_grad_norm", stats.direct_grad_norm)
                .num("implicit_grad_norm", stats.implicit_grad_norm)
                .num("total_grad_norm", stats.total_grad_norm)
                .num("objective_grad_w_norm", stats.objective_grad_w_norm)
                .opt("lambda", stats.lambda);
            let row = if cfg.algo == OnPolicyAlgo::Stac {
                let row = row
                    .int("cg_iters", stats.cg_iterations as u64)
                    .num("cg_residual", stats.cg_residual);
                match stats.cg_stop {
                    Some(CgStop::Converged) => row.text("cg_stop", "converged"),
                    Some(CgStop::MaxIterations) => row.text("cg_stop", "max_iterations"),
                    Some(CgStop::NonPositiveCurvature { curvature }) => row
                        .text("cg_stop", "non_positive_curvature")
                        .num("cg_curvature", curvature),
                    Some(CgStop::ZeroRhs) => row.text("cg_stop", "zero_rhs"),
                    None => row,
                }
            } else {
                row
            };
            self.metrics.write(
                &row.num("collect_s", timing.collect_s)
                    .num("update_s", timing.update_s)
                    .num("sps", sps)
                    .num("time_s", elapsed()),
            )?;
            let mut msg = format!("epoch {}", self.epochs);
            if let Some(r) = stats.mean_return {
                msg += &format!(" | return {r:.1}");
            }
            if let Some((m, s)) = last_eval {
                msg += &format!(" | eval {m:.1} ± {s:.1}");
            }
            msg += &format!(" | critic {:.3}", stats.critic_loss);
            if cfg.algo == OnPolicyAlgo::Stac {
                msg += &format!(
                    " | |implicit|/|direct| {:.2} | CG {}",
                    stats.implicit_grad_norm / stats.direct_grad_norm.max(1e-300),
                    stats.cg_iterations
                );
            }
            progress.status(step, &msg);

            // A video at the end of the epoch that crossed a multiple of --video-every (own
            // environment and seed: the run's numbers do not change).
            #[cfg(feature = "render")]
            if let Some(rec) = videos.as_mut() {
                let every = options.video_every.unwrap_or(0);
                if crossed(every, epoch_start, step) {
                    let agent = &self.agent;
                    let mut unused = Rng::seed_from_u64(0);
                    let mut policy = crate::render::FnPolicy(|obs: &[f64]| {
                        agent
                            .act(obs, true, &mut unused)
                            .map_err(|e| crate::render::RenderError::Policy(e.to_string()))
                    });
                    let (path, ret) = rec.record(step, &mut policy)?;
                    progress.println(&format!(
                        "step {step}: video {} (return {ret:.1})",
                        path.display()
                    ));
                }
            }

            let is_last = step >= cfg.steps;
            if is_last || crossed(cfg.eval_every, epoch_start, step) {
                let ev = self.evaluate(eval_env.as_mut())?;
                let (mean, std) = (ev.mean(), ev.std());
                let min = ev.returns.iter().copied().fold(f64::INFINITY, f64::min);
                let max = ev.returns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                self.metrics.write(
                    &Row::new()
                        .int("step", step)
                        .text("event", "eval")
                        .int("epoch", self.epochs)
                        .num("eval_mean", mean)
                        .num("eval_std", std)
                        .num("eval_min", min)
                        .num("eval_max", max)
                        .num("time_s", elapsed()),
                )?;
                progress.println(&format!(
                    "step {step}: eval return {mean:.1} ± {std:.1} over {} episodes",
                    ev.returns.len()
                ));
                last_eval = Some((mean, std));
                if is_last {
                    let path = self.save_checkpoint(true, elapsed())?;
                    progress.println(&format!("final checkpoint: {}", path.display()));
                    progress.finish();
                    return Ok(self.summary(Some(ev), false, started.elapsed().as_secs_f64()));
                }
            }
            if crossed(cfg.checkpoint_every, epoch_start, step) {
                let path = self.save_checkpoint(false, elapsed())?;
                progress.println(&format!("step {step}: checkpoint {}", path.display()));
            }
        }
        progress.finish();
        Ok(TrainSummary {
            already_finished: true,
            ..self.summary(None, false, started.elapsed().as_secs_f64())
        })
    }
}
