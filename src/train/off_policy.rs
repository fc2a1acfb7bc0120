//! The off-policy trainer of SAC, Res-SAC and Stack-SAC (paper 001 Sec. 6.2, D.2), in the
//! shape of CleanRL's `sac_continuous_action.py`:
//!
//! ```text
//! for step in 0..steps:
//!     a = uniform random (step < learning_starts) or a ~ π(·|s)
//!     s', r, terminated, truncated = env.step(a);  replay.push(s, a, r, s'_final, terminated)
//!     every env_steps_per_update steps once step >= learning_starts: one Algo-x-y round
//!     every log_every steps: a "train" metrics row (interval means, steps/s)
//!     every eval_every steps and at the end: deterministic evaluation on a separate env
//!     at the first episode boundary after every checkpoint_every steps: a checkpoint
//! ```
//!
//! Everything random comes from one seeded [`Rng`] (network initialisation, warm-up actions,
//! exploration noise, minibatches, the seed of every training episode), whose state is
//! checkpointed; see [`crate::train::episodes`] for why checkpoints sit at episode
//! boundaries. A resumed run therefore writes exactly the metrics rows the uninterrupted run
//! writes (all columns but the wall-clock ones, `sps` and `time_s`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::DType;
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::checkpoint::{Checkpointer, load_tensors, save_tensors};
use super::episodes::{EpisodeRunner, EvalResult, evaluate};
use super::metrics::{MetricsPositions, MetricsWriter, Row};
use super::progress::{Progress, ProgressMode};
use super::run_dir::{self, CONFIG_FILE, create_run_dir, run_name, unix_time};
use crate::algos::{self, Algo, AlgoError, SacAgent, SacConfig, UpdateStats};
use crate::envs::{self, Space};
use crate::replay::ReplayBuffer;
use crate::rng::Rng;

/// Default total environment steps.
pub const DEFAULT_STEPS: u64 = 20_000;
/// Default replay capacity (Table 3: 10⁶).
pub const DEFAULT_BUFFER_SIZE: usize = 1_000_000;
/// Default number of uniformly random warm-up steps before learning starts.
pub const DEFAULT_LEARNING_STARTS: u64 = 5_000;
/// Default environment steps per update round (see [`TrainConfig::env_steps_per_update`]).
pub const DEFAULT_ENV_STEPS_PER_UPDATE: u64 = 1;
/// Default evaluation interval in environment steps.
pub const DEFAULT_EVAL_EVERY: u64 = 5_000;
/// Default number of evaluation episodes.
pub const DEFAULT_EVAL_EPISODES: usize = 10;
/// Default checkpoint interval in environment steps.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;
/// Default logging interval in environment steps.
pub const DEFAULT_LOG_EVERY: u64 = 1_000;

/// Res-SAC's clip value `c` from Table 3: HalfCheetah 6, Reacher 1, Pendulum 4 (any version
/// of those environments); `None` for the others.
pub fn table3_clip(env: &str) -> Option<f64> {
    let family = env.split("-v").next().unwrap_or(env);
    match family {
        "HalfCheetah" => Some(6.0),
        "Reacher" => Some(1.0),
        "Pendulum" => Some(4.0),
        _ => None,
    }
}

/// Everything that defines a SAC-family run. Serialised as the run's `config.json`, and the
/// format of `stackrl train --config FILE` (keys are the CLI's long option names with `_`
/// for `-`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Environment id.
    pub env: String,
    /// Algorithm.
    pub algo: Algo,
    /// Seed of the run's [`Rng`].
    pub seed: u64,
    /// Total environment steps.
    pub steps: u64,
    /// Replay capacity (Table 3: 10⁶; allocated as `min(buffer_size, steps)`).
    pub buffer_size: usize,
    /// Uniformly random warm-up steps before the first update (Table 3 is silent; CleanRL
    /// uses 5000, SB3 100).
    pub learning_starts: u64,
    /// Environment steps per update round. Table 3 lists "environment steps per gradient
    /// step: 10" (its Fig. 3 plots one iteration per 10 environment steps), while Haarnoja et
    /// al. 2018b, whose protocol the paper says it follows, and SB3 / CleanRL use 1; the
    /// default is 1.
    pub env_steps_per_update: u64,
    /// The update's hyper-parameters.
    #[serde(flatten)]
    pub sac: SacConfig,
    /// Evaluate every this many environment steps (0: only at the end).
    pub eval_every: u64,
    /// Deterministic evaluation episodes.
    pub eval_episodes: usize,
    /// Checkpoint at the first episode boundary after every this many steps (0: only at the
    /// end).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// A "train" metrics row every this many environment steps.
    pub log_every: u64,
    /// Threads of Candle's matrix products (see [`super::configure_threads`]); results are
    /// reproducible for the same seed and thread count.
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            env: "Pendulum-v1".into(),
            algo: Algo::Sac,
            seed: 0,
            steps: DEFAULT_STEPS,
            buffer_size: DEFAULT_BUFFER_SIZE,
            learning_starts: DEFAULT_LEARNING_STARTS,
            env_steps_per_update: DEFAULT_ENV_STEPS_PER_UPDATE,
            sac: SacConfig::default(),
            eval_every: DEFAULT_EVAL_EVERY,
            eval_episodes: DEFAULT_EVAL_EPISODES,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            keep_checkpoints: 1,
            log_every: DEFAULT_LOG_EVERY,
            threads: 1,
        }
    }
}

fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> TrainError {
    let what = what.into();
    move |source| TrainError::Json { what, source }
}

impl TrainConfig {
    /// The valid keys of a configuration object.
    pub fn keys() -> Vec<String> {
        run_dir::config_keys(&Self::default())
    }

    /// Builds a configuration from layers: the defaults, then `file` (a JSON object, e.g.
    /// `--config FILE`), then `overrides` (e.g. the options given on the command line).
    /// Unknown keys are errors. Where neither layer sets them, Res-SAC gets `res_updates = 1`
    /// and Table 3's clip value for its environment ([`table3_clip`]). The result is
    /// validated.
    pub fn from_layers(
        file: Option<&serde_json::Value>,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, TrainError> {
        let (mut config, given): (Self, _) =
            run_dir::merge_layers(&Self::default(), file, overrides, "")?;
        if config.algo == Algo::ResSac {
            if !given.contains("res_updates") {
                config.sac.res_updates = 1;
            }
            if !given.contains("clip") {
                config.sac.clip = Some(table3_clip(&config.env).ok_or_else(|| {
                    TrainError::Config(format!(
                        "res-sac needs --clip for {}: Table 3 gives c only for HalfCheetah \
                         (6), Reacher (1) and Pendulum (4); the paper's heuristic is the \
                         largest |TD error| of a SAC run (the td_abs_max metric)",
                        config.env
                    ))
                })?);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value (not the environment id, checked when it is made).
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.steps == 0 {
            return bad("steps must be positive");
        }
        if self.buffer_size == 0 {
            return bad("buffer_size must be positive");
        }
        if self.env_steps_per_update == 0 {
            return bad("env_steps_per_update must be positive");
        }
        if self.eval_episodes == 0 || self.eval_episodes > super::MAX_EVAL_EPISODES {
            return bad(&format!(
                "eval_episodes must be between 1 and {} (got {})",
                super::MAX_EVAL_EPISODES,
                self.eval_episodes
            ));
        }
        if self.log_every == 0 {
            return bad("log_every must be positive");
        }
        if self.threads == 0 {
            return bad("threads must be at least 1");
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints must be at least 1");
        }
        self.sac.validate(self.algo)?;
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

/// How to launch a run (not part of its configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Use this directory instead of `<runs_root>/<env>__<algo>__<seed>__<time>`.
    pub run_dir: Option<PathBuf>,
    /// Parent of automatically named run directories.
    pub runs_root: PathBuf,
    /// Progress display.
    pub progress: ProgressMode,
    /// Testing aid: stop once this many environment steps are done, as if the process had
    /// been killed there (no final checkpoint, no final evaluation).
    pub interrupt_at: Option<u64>,
    /// Record one deterministic evaluation episode every this many steps into
    /// `<run>/videos/` (see [`crate::render::recorder`]; needs the `render` feature).
    pub video_every: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            run_dir: None,
            runs_root: PathBuf::from("runs"),
            progress: ProgressMode::Auto,
            interrupt_at: None,
            video_every: None,
        }
    }
}

/// What a finished (or interrupted) run reports.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Environment steps done.
    pub steps: u64,
    /// Training episodes finished.
    pub episodes: u64,
    /// Update rounds done.
    pub updates: u64,
    /// The final evaluation (none if interrupted).
    pub final_eval: Option<EvalResult>,
    /// True if stopped by [`RunOptions::interrupt_at`].
    pub interrupted: bool,
    /// True if the run had already finished before this call (resume of a finished run).
    pub already_finished: bool,
    /// Wall-clock seconds of this call.
    pub wall_s: f64,
}

/// The metrics columns of this trainer. Rows have `event` = `episode` (a training episode
/// ended), `train` (interval means of the update statistics every `log_every` steps) or
/// `eval`.
pub const COLUMNS: &[&str] = &[
    "step",
    "event",
    "episode",
    "episode_return",
    "episode_length",
    "eval_mean",
    "eval_std",
    "eval_min",
    "eval_max",
    "updates",
    "critic_loss",
    "actor_loss",
    "alpha",
    "alpha_loss",
    "entropy",
    "q_mean",
    "td_abs_mean",
    "td_abs_max",
    "res_loss",
    "w_mean",
    "res_delta_abs_max",
    "res_clip_frac",
    "cg_iters",
    "cg_residual",
    "cg_nonpositive",
    "implicit_ratio",
    "cg_fallback",
    "sps",
    "time_s",
];

/// The wall-clock columns (the only ones that differ between identical runs).
pub const TIMING_COLUMNS: &[&str] = &["sps", "time_s"];

/// A mean over the rounds that report a (finite) value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct OptMean {
    sum: f64,
    n: u64,
}

impl OptMean {
    fn add(&mut self, x: Option<f64>) {
        if let Some(x) = x.filter(|x| x.is_finite()) {
            self.sum += x;
            self.n += 1;
        }
    }
    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// Sums of [`UpdateStats`] since the last "train" row (checkpointed, so a resumed run
/// writes the same means).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Interval {
    n: u64,
    critic_loss: f64,
    actor_loss: f64,
    alpha: f64,
    alpha_loss: f64,
    entropy: f64,
    q_mean: f64,
    td_abs_mean: f64,
    td_abs_max: f64,
    res_loss: OptMean,
    w_mean: OptMean,
    res_delta_abs_max: Option<f64>,
    res_clip_frac: OptMean,
    cg_iters: OptMean,
    cg_residual: OptMean,
    cg_nonpositive: OptMean,
    implicit_ratio: OptMean,
    cg_fallback: OptMean,
}

impl Interval {
    fn add(&mut self, s: &UpdateStats) {
        self.n += 1;
        self.critic_loss += s.critic_loss;
        self.actor_loss += s.actor_loss;
        self.alpha = s.alpha;
        self.alpha_loss += s.alpha_loss;
        self.entropy += s.entropy;
        self.q_mean += s.q_mean;
        self.td_abs_mean += s.td_abs_mean;
        self.td_abs_max = self.td_abs_max.max(s.td_abs_max);
        self.res_loss.add(s.res_loss);
        self.w_mean.add(s.w_mean);
        if let Some(x) = s.res_delta_abs_max.filter(|x| x.is_finite()) {
            self.res_delta_abs_max = Some(self.res_delta_abs_max.map_or(x, |m| m.max(x)));
        }
        self.res_clip_frac.add(s.res_clip_frac);
        self.cg_iters.add(s.cg_iters);
        self.cg_residual.add(s.cg_residual);
        self.cg_nonpositive.add(s.cg_nonpositive);
        self.implicit_ratio.add(s.implicit_ratio);
        self.cg_fallback.add(s.cg_fallback);
    }

    fn row(&self, row: Row) -> Row {
        if self.n == 0 {
            return row;
        }
        let n = self.n as f64;
        row.num("critic_loss", self.critic_loss / n)
            .num("actor_loss", self.actor_loss / n)
            .num("alpha", self.alpha)
            .num("alpha_loss", self.alpha_loss / n)
            .num("entropy", self.entropy / n)
            .num("q_mean", self.q_mean / n)
            .num("td_abs_mean", self.td_abs_mean / n)
            .num("td_abs_max", self.td_abs_max)
            .opt("res_loss", self.res_loss.mean())
            .opt("w_mean", self.w_mean.mean())
            .opt("res_delta_abs_max", self.res_delta_abs_max)
            .opt("res_clip_frac", self.res_clip_frac.mean())
            .opt("cg_iters", self.cg_iters.mean())
            .opt("cg_residual", self.cg_residual.mean())
            .opt("cg_nonpositive", self.cg_nonpositive.mean())
            .opt("implicit_ratio", self.implicit_ratio.mean())
            .opt("cg_fallback", self.cg_fallback.mean())
    }
}

/// A checkpoint's metadata file (format, algorithm, environment, widths, counters).
pub const META_FILE: &str = "meta.json";
/// A checkpoint's network weights (targets included).
pub const WEIGHTS_FILE: &str = "weights.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const REPLAY_FILE: &str = "replay.safetensors";
/// The `format` of this trainer's checkpoints.
pub const FORMAT: &str = "stackrl-sac-checkpoint-v1";

/// A checkpoint's `meta.json`: identity (for mismatch checks), counters, RNG state, metrics
/// positions and the interval sums.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    format: String,
    stackrl_version: String,
    algo: Algo,
    env: String,
    obs_dim: usize,
    act_dim: usize,
    hidden: Vec<usize>,
    config_hash: String,
    step: u64,
    episodes: u64,
    updates: u64,
    next_checkpoint: u64,
    finished: bool,
    rng: Rng,
    metrics: MetricsPositions,
    interval: Interval,
    elapsed_s: f64,
}

/// The counters of the loop.
struct Counters {
    step: u64,
    episodes: u64,
    updates: u64,
    next_checkpoint: u64,
    interval: Interval,
    elapsed_before: f64,
}

/// Everything a run holds while it trains.
struct Session {
    config: TrainConfig,
    run_dir: PathBuf,
    agent: SacAgent,
    replay: ReplayBuffer,
    rng: Rng,
    metrics: MetricsWriter,
    checkpointer: Checkpointer,
    counters: Counters,
    last_checkpoint: Option<PathBuf>,
    /// The run directory's lock, held while this process trains it.
    _lock: crate::files::FileLock,
}

/// A made environment with the facts the agent needs.
struct MadeEnv {
    env: Box<dyn envs::Env>,
    obs_dim: usize,
    low: Vec<f64>,
    high: Vec<f64>,
}

fn make_env(config: &TrainConfig) -> Result<MadeEnv, TrainError> {
    let env = envs::make(&config.env)?;
    let (low, high) = match env.action_space() {
        Space::Box { low, high } => (low.clone(), high.clone()),
        other => {
            return Err(TrainError::ActionSpace {
                algo: config.algo.to_string(),
                env: config.env.clone(),
                space: other.to_string(),
            });
        }
    };
    if low.iter().chain(&high).any(|x| !x.is_finite()) {
        return Err(TrainError::Config(format!(
            "{} has an unbounded action space; the squashed Gaussian actor needs finite bounds",
            config.env
        )));
    }
    let obs_dim = env.observation_space().dim();
    Ok(MadeEnv {
        env,
        obs_dim,
        low,
        high,
    })
}

/// Whether a run needs Candle's second-order switch: Stack-SAC on the double-backward
/// engine (the fast engine's products are all first-order passes).
pub fn needs_second_order(config: &TrainConfig) -> bool {
    config.algo == Algo::StackSac
        && config.sac.curvature == crate::autodiff::CurvatureEngine::Autodiff
}

fn check_second_order(config: &TrainConfig) -> Result<(), TrainError> {
    if needs_second_order(config) {
        crate::autodiff::check_second_order().map_err(|e| {
            TrainError::Config(format!(
                "stack-sac with --curvature autodiff needs second-order gradients: {e} (call \
                 stackrl::autodiff::enable_second_order() at program start)"
            ))
        })?;
    }
    Ok(())
}

/// Starts a new run: creates its directory (with `config.json`), trains for
/// `config.steps` environment steps with evaluations and checkpoints, and returns a summary.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<TrainSummary, TrainError> {
    config.validate()?;
    let MadeEnv {
        obs_dim, low, high, ..
    } = make_env(config)?;
    check_second_order(config)?;
    check_memory(config, obs_dim, low.len())?;
    let mut rng = Rng::seed_from_u64(config.seed);
    let agent = SacAgent::new(
        config.algo,
        &config.sac,
        obs_dim,
        &low,
        &high,
        DType::F32,
        &mut rng,
    )?;
    let replay = ReplayBuffer::new(replay_capacity(config), obs_dim, low.len())?;
    let name = run_name(&config.env, config.algo.name(), config.seed, unix_time());
    let (run_dir, lock) = create_run_dir(
        options.run_dir.as_deref(),
        &options.runs_root,
        &name,
        &config.to_json()?,
    )?;
    let metrics = MetricsWriter::create(&run_dir, COLUMNS)?;
    let checkpointer = Checkpointer::open(&run_dir, config.keep_checkpoints)?;
    let session = Session {
        config: config.clone(),
        run_dir,
        agent,
        replay,
        rng,
        metrics,
        checkpointer,
        counters: Counters {
            step: 0,
            episodes: 0,
            updates: 0,
            next_checkpoint: first_checkpoint(config),
            interval: Interval::default(),
            elapsed_before: 0.0,
        },
        last_checkpoint: None,
        _lock: lock,
    };
    session.run(options)
}

/// What the run's sizes need in memory, checked before anything is allocated (see
/// [`crate::memory`]): the replay buffer (f32 rows `s, a, r, s', done`, once more while a
/// checkpoint serialises it), one update's batch with the networks' activations, and the
/// networks with their targets, gradients and Adam moments.
fn check_memory(config: &TrainConfig, obs_dim: usize, act_dim: usize) -> Result<(), TrainError> {
    let sac = &config.sac;
    let row = 2 * obs_dim + act_dim + 2;
    let capacity = replay_capacity(config);
    let widest = sac
        .hidden
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(obs_dim + act_dim);
    let hidden_sum: usize = sac.hidden.iter().fold(0usize, |a, &h| a.saturating_add(h));
    // Actor and two critics forward and backward, current and target, per batch row.
    let activations_per_row = hidden_sum.saturating_mul(8).saturating_add(widest);
    let actor = crate::memory::mlp_params(obs_dim, &sac.hidden, 2 * act_dim);
    let critic = crate::memory::mlp_params(obs_dim + act_dim, &sac.hidden, 1);
    // Weights, gradients and two Adam moments; the critics also keep Polyak targets, and
    // Res-SAC a second pair of critics.
    let critic_copies: u128 = if config.algo == Algo::ResSac { 20 } else { 10 };
    let params = actor
        .saturating_mul(4)
        .saturating_add(critic.saturating_mul(critic_copies));
    let mut needs = crate::memory::Needs::new();
    needs
        .add(
            format!(
                "the replay buffer (--buffer-size {}, {capacity} rows of {row} floats)",
                config.buffer_size
            ),
            crate::memory::bytes(&[capacity, row, 2], 4),
        )
        .add(
            format!("one update's batch (--batch-size {})", sac.batch_size),
            crate::memory::bytes(
                &[
                    sac.batch_size,
                    row.saturating_mul(3).saturating_add(activations_per_row),
                ],
                4,
            ),
        )
        .add(
            format!("the networks (--hidden {:?})", sac.hidden),
            params.saturating_mul(4),
        );
    needs.check()?;
    Ok(())
}

fn replay_capacity(config: &TrainConfig) -> usize {
    config
        .buffer_size
        .min(usize::try_from(config.steps).unwrap_or(usize::MAX))
}

fn first_checkpoint(config: &TrainConfig) -> u64 {
    if config.checkpoint_every == 0 {
        u64::MAX
    } else {
        config.checkpoint_every
    }
}

/// Continues the run in `run_dir` from its latest checkpoint (or from the start if it was
/// killed before the first one), with the run's own `config.json`. The metrics rows the
/// killed process wrote after that checkpoint are dropped and written again, identically.
///
/// Errors if the checkpoint is corrupt or does not belong to this configuration (other
/// algorithm, environment, network sizes or options).
pub fn resume(run_dir: &Path, options: &RunOptions) -> Result<TrainSummary, TrainError> {
    let config = TrainConfig::read(run_dir)?;
    let MadeEnv {
        obs_dim, low, high, ..
    } = make_env(&config)?;
    check_second_order(&config)?;
    check_memory(&config, obs_dim, low.len())?;
    let mut rng = Rng::seed_from_u64(config.seed);
    let mut agent = SacAgent::new(
        config.algo,
        &config.sac,
        obs_dim,
        &low,
        &high,
        DType::F32,
        &mut rng,
    )?;
    let lock = run_dir::lock_run_dir(run_dir)?;
    let checkpointer = Checkpointer::open(run_dir, config.keep_checkpoints)?;
    let Some(ckpt) = Checkpointer::latest(run_dir)? else {
        // Killed before the first checkpoint: start over in the same directory.
        let replay = ReplayBuffer::new(replay_capacity(&config), obs_dim, low.len())?;
        let metrics = MetricsWriter::create(run_dir, COLUMNS)?;
        let session = Session {
            counters: Counters {
                step: 0,
                episodes: 0,
                updates: 0,
                next_checkpoint: first_checkpoint(&config),
                interval: Interval::default(),
                elapsed_before: 0.0,
            },
            config,
            run_dir: run_dir.to_path_buf(),
            agent,
            replay,
            rng,
            metrics,
            checkpointer,
            last_checkpoint: None,
            _lock: lock,
        };
        return session.run(options);
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
    if meta.algo != config.algo {
        return mismatch("algorithm", meta.algo.to_string(), config.algo.to_string());
    }
    if meta.env != config.env {
        return mismatch("environment", meta.env.clone(), config.env.clone());
    }
    if meta.hidden != config.sac.hidden {
        return mismatch(
            "hidden sizes",
            format!("{:?}", meta.hidden),
            format!("{:?}", config.sac.hidden),
        );
    }
    if meta.obs_dim != obs_dim || meta.act_dim != low.len() {
        return mismatch(
            "observation/action widths",
            format!("{}/{}", meta.obs_dim, meta.act_dim),
            format!("{obs_dim}/{}", low.len()),
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
            updates: meta.updates,
            final_eval: None,
            interrupted: false,
            already_finished: true,
            wall_s: 0.0,
        });
    }
    let as_mismatch = |e: AlgoError| match e {
        AlgoError::StateMismatch(m) => TrainError::CheckpointMismatch(m),
        other => TrainError::Algo(other),
    };
    agent
        .load_weight_tensors(&load_tensors(&ckpt.join(WEIGHTS_FILE))?)
        .map_err(as_mismatch)?;
    agent
        .load_optimizer_tensors(&load_tensors(&ckpt.join(OPTIMIZER_FILE))?)
        .map_err(as_mismatch)?;
    let replay_path = ckpt.join(REPLAY_FILE);
    let replay = ReplayBuffer::load(&replay_path)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", replay_path.display())))?;
    if replay.capacity() != replay_capacity(&config)
        || replay.obs_dim() != obs_dim
        || replay.act_dim() != low.len()
        || replay.len() as u64 != meta.step.min(replay.capacity() as u64)
    {
        return Err(TrainError::CheckpointMismatch(format!(
            "replay buffer (capacity {}, widths {}/{}, {} rows) does not fit the run at step {}",
            replay.capacity(),
            replay.obs_dim(),
            replay.act_dim(),
            replay.len(),
            meta.step
        )));
    }
    let metrics = MetricsWriter::resume(run_dir, COLUMNS, meta.metrics)?;
    let session = Session {
        config,
        run_dir: run_dir.to_path_buf(),
        agent,
        replay,
        rng: meta.rng.clone(),
        metrics,
        checkpointer,
        counters: Counters {
            step: meta.step,
            episodes: meta.episodes,
            updates: meta.updates,
            next_checkpoint: meta.next_checkpoint,
            interval: meta.interval.clone(),
            elapsed_before: meta.elapsed_s,
        },
        last_checkpoint: Some(ckpt),
        _lock: lock,
    };
    session.run(options)
}

impl Session {
    /// The `--video-every` recorder, opened before training so a missing EGL fails early.
    #[cfg(feature = "render")]
    fn video_recorder(
        &self,
        every: Option<u64>,
    ) -> Result<Option<crate::render::VideoRecorder>, TrainError> {
        let Some(every) = every else { return Ok(None) };
        let view = crate::render::ViewOptions::default();
        let rec = crate::render::VideoRecorder::new(
            &self.run_dir,
            &self.config.env,
            every,
            self.eval_seed(0),
            &view,
        )?;
        Ok(Some(rec))
    }

    #[cfg(not(feature = "render"))]
    fn video_recorder(&self, every: Option<u64>) -> Result<Option<()>, TrainError> {
        match every {
            None => Ok(None),
            Some(_) => Err(TrainError::Config(
                "video_every needs stackrl built with the `render` feature".into(),
            )),
        }
    }

    fn eval_seed(&self, i: usize) -> u64 {
        // Fixed per run and independent of the training stream: every evaluation sees the
        // same initial states.
        Rng::seed_from_u64(self.config.seed ^ 0x5EED_E7A1_0000_0000)
            .next_u64()
            .wrapping_add(i as u64)
    }

    fn evaluate(&self, env: &mut dyn envs::Env) -> Result<EvalResult, TrainError> {
        let agent = &self.agent;
        evaluate(
            env,
            self.config.eval_episodes,
            |i| self.eval_seed(i),
            |obs| agent.act_deterministic(obs).map_err(TrainError::from),
        )
    }

    fn save_checkpoint(&mut self, finished: bool, elapsed: f64) -> Result<PathBuf, TrainError> {
        let meta = Meta {
            format: FORMAT.into(),
            stackrl_version: env!("CARGO_PKG_VERSION").into(),
            algo: self.config.algo,
            env: self.config.env.clone(),
            obs_dim: self.agent.obs_dim(),
            act_dim: self.agent.act_dim(),
            hidden: self.config.sac.hidden.clone(),
            config_hash: self.config.hash()?,
            step: self.counters.step,
            episodes: self.counters.episodes,
            updates: self.counters.updates,
            next_checkpoint: self.counters.next_checkpoint,
            finished,
            rng: self.rng.clone(),
            metrics: self.metrics.positions(),
            interval: self.counters.interval.clone(),
            elapsed_s: elapsed,
        };
        let meta_json =
            serde_json::to_string_pretty(&meta).map_err(json_err("checkpoint metadata"))?;
        let weights = self.agent.weight_tensors()?;
        let optim = self.agent.optimizer_tensors()?;
        let replay = &self.replay;
        let path = self.checkpointer.save(self.counters.step, |dir| {
            save_tensors(&dir.join(WEIGHTS_FILE), &weights)?;
            save_tensors(&dir.join(OPTIMIZER_FILE), &optim)?;
            replay.save(&dir.join(REPLAY_FILE))?;
            // meta.json last: a directory with it is complete (the rename is what makes it
            // visible, but this keeps a partial copy recognisable too).
            fs::write(dir.join(META_FILE), &meta_json).map_err(|e| TrainError::Io {
                path: dir.join(META_FILE),
                source: e,
            })
        })?;
        self.last_checkpoint = Some(path.clone());
        Ok(path)
    }

    fn run(mut self, options: &RunOptions) -> Result<TrainSummary, TrainError> {
        let started = Instant::now();
        let cfg = self.config.clone();
        let env = make_env(&cfg)?.env;
        let mut eval_env = make_env(&cfg)?.env;
        let mut runner = EpisodeRunner::new(env);
        #[cfg_attr(not(feature = "render"), allow(unused_mut, unused_variables))]
        let mut videos = self.video_recorder(options.video_every)?;
        let progress = Progress::new(
            options.progress,
            cfg.steps,
            self.counters.step,
            &format!("{} {} seed {}", cfg.algo, cfg.env, cfg.seed),
        );
        progress.println(&format!(
            "run directory: {}{}",
            self.run_dir.display(),
            if self.counters.step > 0 {
                format!(" (resumed at step {})", self.counters.step)
            } else {
                String::new()
            }
        ));
        let (obs_dim, act_dim) = (self.agent.obs_dim(), self.agent.act_dim());
        let mut obs = vec![0.0f64; obs_dim];
        let mut obs32 = vec![0.0f32; obs_dim];
        let mut next32 = vec![0.0f32; obs_dim];
        let mut act32 = vec![0.0f32; act_dim];
        let mut last_return: Option<f64> = None;
        let mut last_eval: Option<(f64, f64)> = None;
        // Wall time of the current log interval, without evaluations and checkpoints.
        let mut interval_start = Instant::now();
        let mut interval_excluded = 0.0f64;
        let mut interval_steps = 0u64;
        let elapsed = |c: &Counters| c.elapsed_before + started.elapsed().as_secs_f64();

        while self.counters.step < cfg.steps {
            if options.interrupt_at == Some(self.counters.step) {
                progress.println(&format!(
                    "interrupted at step {} (--interrupt-at)",
                    self.counters.step
                ));
                return Ok(TrainSummary {
                    run_dir: self.run_dir.clone(),
                    steps: self.counters.step,
                    episodes: self.counters.episodes,
                    updates: self.counters.updates,
                    final_eval: None,
                    interrupted: true,
                    already_finished: false,
                    wall_s: started.elapsed().as_secs_f64(),
                });
            }
            // Act.
            obs.copy_from_slice(runner.observation(&mut self.rng)?);
            let action = if self.counters.step < cfg.learning_starts {
                self.agent.random_action(&mut self.rng)
            } else {
                self.agent.act(&obs, &mut self.rng)?
            };
            let result = runner.step(&action)?;
            for (d, s) in obs32.iter_mut().zip(&obs) {
                *d = *s as f32;
            }
            for (d, s) in next32.iter_mut().zip(runner.next_observation()) {
                *d = *s as f32;
            }
            for (d, s) in act32.iter_mut().zip(&action) {
                *d = *s as f32;
            }
            // Truncated episodes store their true final observation and bootstrap from it.
            self.replay.push(
                &obs32,
                &act32,
                result.reward as f32,
                &next32,
                result.terminated,
            )?;
            runner.advance(&result);
            self.counters.step += 1;
            interval_steps += 1;
            let step = self.counters.step;
            if let Some((ret, len)) = result.finished {
                self.counters.episodes += 1;
                last_return = Some(ret);
                self.metrics.write(
                    &Row::new()
                        .int("step", step)
                        .text("event", "episode")
                        .int("episode", self.counters.episodes)
                        .num("episode_return", ret)
                        .int("episode_length", len),
                )?;
                if result.unstable {
                    progress.println(&format!(
                        "step {step}: the simulation went unstable; episode truncated"
                    ));
                }
            }

            // Learn.
            if step >= cfg.learning_starts && step.is_multiple_of(cfg.env_steps_per_update) {
                match algos::update(&mut self.agent, &self.replay, &mut self.rng) {
                    Ok(stats) => {
                        self.counters.updates += 1;
                        self.counters.interval.add(&stats);
                    }
                    Err(e @ AlgoError::NonFinite { .. }) => {
                        progress.finish();
                        return Err(TrainError::Diverged {
                            step,
                            source: Box::new(e),
                            last_checkpoint: self.last_checkpoint.clone(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }

            // Log.
            if step.is_multiple_of(cfg.log_every) {
                let secs = (interval_start.elapsed().as_secs_f64() - interval_excluded).max(1e-9);
                let sps = interval_steps as f64 / secs;
                let row = Row::new()
                    .int("step", step)
                    .text("event", "train")
                    .int("updates", self.counters.updates);
                let row = self
                    .counters
                    .interval
                    .row(row)
                    .num("sps", sps)
                    .num("time_s", elapsed(&self.counters));
                self.metrics.write(&row)?;
                let mut msg = format!("{sps:.0} steps/s");
                if let Some(r) = last_return {
                    msg += &format!(" | return {r:.1}");
                }
                if let Some((m, s)) = last_eval {
                    msg += &format!(" | eval {m:.1} ± {s:.1}");
                }
                if self.counters.interval.n > 0 {
                    let n = self.counters.interval.n as f64;
                    msg += &format!(
                        " | critic {:.3} | actor {:.3} | α {:.3}",
                        self.counters.interval.critic_loss / n,
                        self.counters.interval.actor_loss / n,
                        self.counters.interval.alpha
                    );
                }
                progress.status(step, &msg);
                self.counters.interval = Interval::default();
                interval_start = Instant::now();
                interval_excluded = 0.0;
                interval_steps = 0;
            } else if step.is_multiple_of(100) {
                progress.update(step, "");
            }

            // Record a video (own environment and seed: the run's numbers do not change).
            #[cfg(feature = "render")]
            if let Some(rec) = videos.as_mut().filter(|r| r.due(step)) {
                let t = Instant::now();
                let agent = &self.agent;
                let mut policy = crate::render::FnPolicy(|obs: &[f64]| {
                    agent
                        .act_deterministic(obs)
                        .map_err(|e| crate::render::RenderError::Policy(e.to_string()))
                });
                let (path, ret) = rec.record(step, &mut policy)?;
                progress.println(&format!(
                    "step {step}: video {} (return {ret:.1})",
                    path.display()
                ));
                interval_excluded += t.elapsed().as_secs_f64();
            }

            // Evaluate.
            let is_last = step == cfg.steps;
            if is_last || (cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every)) {
                let t = Instant::now();
                let ev = self.evaluate(eval_env.as_mut())?;
                let (mean, std) = (ev.mean(), ev.std());
                let min = ev.returns.iter().copied().fold(f64::INFINITY, f64::min);
                let max = ev.returns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                self.metrics.write(
                    &Row::new()
                        .int("step", step)
                        .text("event", "eval")
                        .num("eval_mean", mean)
                        .num("eval_std", std)
                        .num("eval_min", min)
                        .num("eval_max", max)
                        .num("time_s", elapsed(&self.counters)),
                )?;
                progress.println(&format!(
                    "step {step}: eval return {mean:.1} ± {std:.1} over {} episodes",
                    ev.returns.len()
                ));
                last_eval = Some((mean, std));
                interval_excluded += t.elapsed().as_secs_f64();
                if is_last {
                    let path = self.save_checkpoint(true, elapsed(&self.counters))?;
                    progress.println(&format!("final checkpoint: {}", path.display()));
                    progress.finish();
                    return Ok(TrainSummary {
                        run_dir: self.run_dir.clone(),
                        steps: step,
                        episodes: self.counters.episodes,
                        updates: self.counters.updates,
                        final_eval: Some(ev),
                        interrupted: false,
                        already_finished: false,
                        wall_s: started.elapsed().as_secs_f64(),
                    });
                }
            }

            // Checkpoint, between episodes only.
            if step >= self.counters.next_checkpoint && runner.at_boundary() {
                let t = Instant::now();
                let every = cfg.checkpoint_every.max(1);
                self.counters.next_checkpoint = (step / every + 1) * every;
                let path = self.save_checkpoint(false, elapsed(&self.counters))?;
                progress.println(&format!("step {step}: checkpoint {}", path.display()));
                interval_excluded += t.elapsed().as_secs_f64();
            }
        }
        // Only reached when resuming at (or past) the last step without a final checkpoint.
        progress.finish();
        Ok(TrainSummary {
            run_dir: self.run_dir.clone(),
            steps: self.counters.step,
            episodes: self.counters.episodes,
            updates: self.counters.updates,
            final_eval: None,
            interrupted: false,
            already_finished: true,
            wall_s: started.elapsed().as_secs_f64(),
        })
    }
}
