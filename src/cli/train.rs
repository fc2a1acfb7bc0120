//! `stackrl train` and `stackrl bench sac`: thin layers over [`crate::train`] (the SAC
//! family's [`crate::train::off_policy`], AC / STAC's [`crate::train::on_policy`]) and
//! [`crate::algos::bench`].

use std::path::PathBuf;
use std::process::Command as Process;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde_json::{Map, Value};

use crate::algos::bench::{UpdateBenchCase, UpdateBenchResult, bench_update};
use crate::algos::{Algo, OnPolicyAlgo};
use crate::train::off_policy::{
    DEFAULT_BUFFER_SIZE, DEFAULT_CHECKPOINT_EVERY, DEFAULT_ENV_STEPS_PER_UPDATE,
    DEFAULT_EVAL_EPISODES, DEFAULT_EVAL_EVERY, DEFAULT_LEARNING_STARTS, DEFAULT_LOG_EVERY,
    DEFAULT_STEPS,
};
use crate::train::on_policy::{self as on_policy, OnPolicyTrainConfig};
use crate::train::{self, ProgressMode, RunOptions, TrainConfig, TrainSummary};

const AFTER_HELP: &str = "\
Two families of algorithms share this command. The SAC family (sac, res-sac, stack-sac;
paper 001) is off-policy; ac and stac (paper 000) are on-policy: epochs of --epoch-steps
environment steps, each followed by one actor step (AC: the policy gradient; STAC: the
total derivative dJ/dθ with a λ-regularised critic Hessian, solved by conjugate gradient)
and --critic-steps critic steps. Options marked [SAC family] or [ac/stac] apply to that
family only; giving one to the other family is an error. Unmarked options apply to both;
where the defaults differ, both are given. The ac/stac defaults are the paper's
architecture (64, 64, tanh) and its code's plain gradient steps (αθ = 0.1, αw = 0.01,
k = 80, 4000 steps per epoch, γ = 0.99, λ_GAE = 0.97).

Every run gets a directory runs/<env>__<algo>__<seed>__<unix time>/ (or --run-dir) with
config.json (the resolved options), metrics.csv and metrics.jsonl (rows with event = episode,
train or eval; flushed on every row) and checkpoints/ (weights incl. targets, Adam state,
replay buffer, RNG state and counters; written atomically, `latest` names the newest).

A killed run continues with `stackrl train --resume DIR`; it rewrites the metrics after the
last checkpoint identically (every column but the wall-clock ones sps and time_s).
Checkpoints are taken at the first episode boundary after every --checkpoint-every steps,
because every training episode starts with a reset seeded from the run's RNG (the
environments' own state is not saved). For ac/stac every epoch starts with such a reset
(the episode cut by an epoch's end bootstraps from V), so checkpoints, evaluations and
train rows fall at epoch ends.

--config FILE is a JSON object with these options' long names, '-' written '_' (e.g.
{\"algo\": \"res-sac\", \"critic_updates\": 10}); a run's config.json is one. Options given on
the command line override the file.

Examples:
  stackrl train --env Pendulum-v1 --algo sac --seed 0 --steps 20000
  stackrl train --env Reacher-v5 --algo sac --critic-updates 10          # SAC-10-0
  stackrl train --env Pendulum-v1 --algo res-sac --critic-updates 10 --res-updates 10
  stackrl train --env Pendulum-v1 --algo stack-sac --eta 0.5 --cg-iters 10
  stackrl train --env CartPole-v1 --algo ac --critic-steps 80 --lr-actor 1 --lr-critic 0.01
  stackrl train --env CartPole-v1 --algo stac --critic-steps 1 --lambda 0
  stackrl train --env Hopper-v5 --algo stac --lambda 500 --steps 200000
  stackrl train --resume runs/Pendulum-v1__sac__0__1700000000";

/// Options of `stackrl train`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct TrainArgs {
    /// Environment id (see `stackrl envs`). The SAC family needs a continuous (Box) action
    /// space; ac/stac take Box or Discrete [ac/stac default: CartPole-v1].
    #[arg(long, default_value = "Pendulum-v1")]
    pub env: String,
    /// Algorithm: sac, res-sac (Algorithm 5), stack-sac (eq. 43) of paper 001, or ac, stac
    /// (eq. 9-10, 18-19) of paper 000.
    #[arg(long, default_value = "sac")]
    pub algo: String,
    /// Seed of every random choice of the run (weights, exploration, minibatches, resets).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Total environment steps [ac/stac default: 120000; a multiple of --epoch-steps].
    #[arg(long, default_value_t = DEFAULT_STEPS, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Hidden layer widths of actor, critics and res-critic, comma-separated (Table 3: 2 × 128)
    /// [ac/stac default: 64,64].
    #[arg(long, value_delimiter = ',', default_value = "128,128")]
    pub hidden: Vec<usize>,
    /// Hidden activation: relu (Table 3), tanh or fast-tanh (tanh by a fast rational
    /// approximation) [ac/stac default: fast-tanh].
    #[arg(long, default_value = "relu", value_parser = ["relu", "tanh", "fast-tanh"])]
    pub activation: String,
    /// [SAC family] Minibatch size (Table 3: 128).
    #[arg(long, alias = "batch", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// [SAC family] Replay capacity (Table 3: 10⁶).
    #[arg(long, default_value_t = DEFAULT_BUFFER_SIZE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub buffer_size: u64,
    /// Discount γ (Table 3: 0.99).
    #[arg(long, default_value_t = 0.99)]
    pub gamma: f64,
    /// [SAC family] Target smoothing coefficient τ, applied after every critic / res-critic update
    /// (Table 3: 0.005, interval 1).
    #[arg(long, default_value_t = 0.005)]
    pub tau: f64,
    /// [SAC family] Adam learning rate of actor, critics and temperature (Table 3: 3e-4).
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// [SAC family] Uniformly random warm-up steps before the first update (Table 3 is silent; CleanRL's
    /// 5000).
    #[arg(long, default_value_t = DEFAULT_LEARNING_STARTS)]
    pub learning_starts: u64,
    /// [SAC family] Environment steps per update round (Table 3 lists 10; Haarnoja et al. 2018b, SB3 and
    /// CleanRL use 1).
    #[arg(long, default_value_t = DEFAULT_ENV_STEPS_PER_UPDATE, value_parser = clap::value_parser!(u64).range(1..))]
    pub env_steps_per_update: u64,
    /// [SAC family] x of Algo-x-y: critic updates per actor update (SAC-10-0: 10).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub critic_updates: u64,
    /// [SAC family] y of Algo-x-y: res-critic updates per actor update [default: 1 for res-sac; only
    /// res-sac accepts it].
    #[arg(long)]
    pub res_updates: Option<u64>,
    /// [SAC family] Res-SAC's clip value c of the res-critic reward clip(δ, −c, c) [default: Table 3:
    /// HalfCheetah 6, Reacher 1, Pendulum 4; required elsewhere].
    #[arg(long)]
    pub clip: Option<f64>,
    /// [SAC family] Stack-SAC's Hessian regularisation η (Sec. 5.3: 0.5).
    #[arg(long, default_value_t = 0.5)]
    pub eta: f64,
    /// Stack-SAC and STAC: conjugate-gradient iterations per actor update (paper 000's code:
    /// 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub cg_iters: u64,
    /// Stack-SAC and STAC: stop CG early at this relative residual (0: always --cg-iters)
    /// [stac default: 1e-5].
    #[arg(long, default_value_t = 1e-4)]
    pub cg_tol: f64,
    /// Stack-SAC and STAC: warm-start CG from the previous solution (true or false) [stac
    /// default: false].
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cg_warm_start: bool,
    /// Stack-SAC and STAC: the critic Hessian to invert: exact (Stack-SAC: the semi-gradient
    /// Hessian; STAC: eq. 21-22; by double backward) or gauss-newton (its positive
    /// semi-definite part E[∇Q∇Qᵀ], E[∇V∇Vᵀ]).
    #[arg(long, default_value = "exact", value_parser = ["exact", "gauss-newton"])]
    pub stack_hessian: String,
    /// Stack-SAC and STAC: how Hessian-vector and mixed products are computed: fast
    /// (Pearlmutter's R-operator on the critic's cached activations, first-order passes
    /// only) or autodiff (Candle's double backward, the reference). Same values up to
    /// rounding; docs/sac.md and docs/stac.md have the timings.
    #[arg(long, default_value = "fast", value_parser = ["fast", "autodiff"])]
    pub curvature: String,
    /// [SAC family] Stack-SAC: Hessian-vector products on the first M rows of each
    /// minibatch only (sub-sampled curvature, Martens 2010; an approximation, off by
    /// default; needs --curvature fast).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub curvature_batch: Option<u64>,
    /// [SAC family] Initial temperature α.
    #[arg(long, default_value_t = 1.0)]
    pub init_alpha: f64,
    /// [SAC family] Target entropy of the temperature tuning [default: −dim(A), Table 3].
    #[arg(long, allow_hyphen_values = true)]
    pub target_entropy: Option<f64>,
    /// [ac/stac] Environment steps per epoch; each epoch ends with one actor step and
    /// --critic-steps critic steps (an epoch holds several episodes).
    #[arg(long, default_value_t = on_policy::DEFAULT_EPOCH_STEPS, value_parser = clap::value_parser!(u64).range(1..))]
    pub epoch_steps: u64,
    /// [ac/stac] Critic steps per epoch, the paper's unrolling k (Figure 1: 1 or 80).
    #[arg(long, default_value_t = 80)]
    pub critic_steps: u64,
    /// [ac/stac] STAC's Hessian regularisation λ >= 0 of (∂²L/∂w² + λI)⁻¹ (paper: 0 on
    /// CartPole, 500 on Reacher, Hopper and Walker2d; λ → ∞ gives AC's step).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub lambda: f64,
    /// [ac/stac] Per-epoch decay factor of λ in (0, 1]: λ_e = max(λ · decay^e, --lambda-min)
    /// (1: constant).
    #[arg(long, default_value_t = 1.0)]
    pub lambda_decay: f64,
    /// [stac] Bound ρ of the implicit term: scaled down to ρ‖∂J/∂θ‖ when longer (`off`:
    /// unbounded, the paper's step) [default: 3].
    #[arg(long, value_parser = parse_ratio)]
    pub implicit_max_ratio: Option<Ratio>,
    /// [stac] Sample estimators of ∂J/∂w and the mixed term: exact (derivatives of one J
    /// and one L, docs/stac.md) or paper (the surrogates of the paper's public code).
    #[arg(long, default_value = "exact", value_parser = ["exact", "paper"])]
    pub stac_estimator: String,
    /// [ac/stac] Floor of the decayed λ (at most --lambda).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub lambda_min: f64,
    /// [ac/stac] Actor learning rate αθ.
    #[arg(long, default_value_t = 0.1)]
    pub lr_actor: f64,
    /// [ac/stac] Critic learning rate αw.
    #[arg(long, default_value_t = 0.01)]
    pub lr_critic: f64,
    /// [ac/stac] λ of the GAE advantages (not STAC's --lambda).
    #[arg(long, default_value_t = 0.97)]
    pub gae_lambda: f64,
    /// [ac/stac] Optimiser of both players: sgd (plain gradient steps, eq. 9-10, as the
    /// paper's code) or adam.
    #[arg(long, default_value = "sgd", value_parser = ["sgd", "adam"])]
    pub optimizer: String,
    /// [ac/stac] Initial log-std of the Gaussian policy; continuous (Box) actions only
    /// [default: −0.5].
    #[arg(long, allow_hyphen_values = true)]
    pub init_log_std: Option<f64>,
    /// [ac/stac] Normalise the actor's advantages to mean 0, std 1 per epoch (true or false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub normalize_advantages: bool,
    /// Evaluate the deterministic (mean or most probable action) policy every this many
    /// steps (ac/stac: at the first epoch end after), on a separate environment (0: only at
    /// the end).
    #[arg(long, default_value_t = DEFAULT_EVAL_EVERY)]
    pub eval_every: u64,
    /// Episodes per evaluation (the same reset seeds every time).
    #[arg(long, default_value_t = DEFAULT_EVAL_EPISODES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_episodes: u64,
    /// Checkpoint at the first episode boundary (ac/stac: epoch end) after every this many
    /// steps (0: only at the end).
    #[arg(long, default_value_t = DEFAULT_CHECKPOINT_EVERY)]
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_checkpoints: u64,
    /// [SAC family] A "train" metrics row (interval means, steps/s) every this many steps
    /// (ac/stac write one per epoch).
    #[arg(long, default_value_t = DEFAULT_LOG_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: u64,
    /// Threads for the matrix products (RAYON_NUM_THREADS; element-wise ops stay on one
    /// thread, CANDLE_NUM_THREADS=1). With 2 or more, the SAC family runs its twin critics
    /// one per thread. Results are reproducible per thread count.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: u64,
    /// JSON file of options (see below); command-line options override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint, with its own
    /// config.json (only --threads and --progress may be given besides).
    #[arg(long, conflicts_with_all = ["config", "run_dir"])]
    pub resume: Option<PathBuf>,
    /// Run directory to create, instead of RUNS_ROOT/ENV__ALGO__SEED__UNIXTIME.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Parent directory of automatically named runs.
    #[arg(long, default_value = "runs")]
    pub runs_root: PathBuf,
    /// Progress display: auto (a bar on a terminal, plain lines otherwise), bar, plain, none.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bar", "plain", "none"])]
    pub progress: String,
    /// Testing aid: stop once this many steps are done, as if killed (no final checkpoint).
    #[arg(long)]
    pub interrupt_at: Option<u64>,
    /// Record one deterministic evaluation episode every this many steps to
    /// RUN/videos/rl-video-step-<step>.mp4 (own environment and seed: metrics unchanged).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub video_every: Option<u64>,
}

/// The option ids that make up a [`TrainConfig`] (the rest are launch options).
const CONFIG_KEYS: &[&str] = &[
    "env",
    "algo",
    "seed",
    "steps",
    "hidden",
    "activation",
    "batch_size",
    "buffer_size",
    "gamma",
    "tau",
    "lr",
    "learning_starts",
    "env_steps_per_update",
    "critic_updates",
    "res_updates",
    "clip",
    "eta",
    "cg_iters",
    "cg_tol",
    "cg_warm_start",
    "stack_hessian",
    "curvature",
    "curvature_batch",
    "init_alpha",
    "target_entropy",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "threads",
    "epoch_steps",
    "critic_steps",
    "lambda",
    "lambda_decay",
    "lambda_min",
    "implicit_max_ratio",
    "stac_estimator",
    "lr_actor",
    "lr_critic",
    "gae_lambda",
    "optimizer",
    "init_log_std",
    "normalize_advantages",
];

/// The options of the SAC family only.
const SAC_ONLY: &[&str] = &[
    "batch_size",
    "buffer_size",
    "tau",
    "lr",
    "learning_starts",
    "env_steps_per_update",
    "critic_updates",
    "res_updates",
    "clip",
    "eta",
    "init_alpha",
    "target_entropy",
    "curvature_batch",
    "log_every",
];

/// The options of AC and STAC only.
const ON_POLICY_ONLY: &[&str] = &[
    "epoch_steps",
    "critic_steps",
    "lambda",
    "lambda_decay",
    "lambda_min",
    "implicit_max_ratio",
    "stac_estimator",
    "lr_actor",
    "lr_critic",
    "gae_lambda",
    "optimizer",
    "init_log_std",
    "normalize_advantages",
];

/// `--implicit-max-ratio`: a finite ratio >= 0, or `off` (`Ratio(None)`).
#[derive(Clone, Copy, Debug)]
pub struct Ratio(Option<f64>);

fn parse_ratio(s: &str) -> Result<Ratio, String> {
    if s == "off" {
        return Ok(Ratio(None));
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(Ratio(Some(r))),
        _ => Err(format!("expected a finite number >= 0 or `off`, got {s:?}")),
    }
}

fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.try_contains_id(id), Ok(true))
        && m.value_source(id) == Some(ValueSource::CommandLine)
}

fn activation_json(name: &str) -> Value {
    Value::from(match name {
        "tanh" => "Tanh",
        "fast-tanh" => "FastTanh",
        _ => "Relu",
    })
}

/// The options given on the command line, as configuration keys.
fn overrides(a: &TrainArgs, m: &ArgMatches) -> Result<Map<String, Value>, String> {
    let mut o = Map::new();
    for &key in CONFIG_KEYS {
        if !given(m, key) {
            continue;
        }
        let v = match key {
            "env" => Value::from(a.env.clone()),
            "algo" => Value::from(parse_any_algo(&a.algo)?.name()),
            "seed" => Value::from(a.seed),
            "steps" => Value::from(a.steps),
            "hidden" => Value::from(a.hidden.clone()),
            "activation" => activation_json(&a.activation),
            "batch_size" => Value::from(a.batch_size),
            "buffer_size" => Value::from(a.buffer_size),
            "gamma" => Value::from(a.gamma),
            "tau" => Value::from(a.tau),
            "lr" => Value::from(a.lr),
            "learning_starts" => Value::from(a.learning_starts),
            "env_steps_per_update" => Value::from(a.env_steps_per_update),
            "critic_updates" => Value::from(a.critic_updates),
            "res_updates" => Value::from(a.res_updates),
            "clip" => Value::from(a.clip),
            "eta" => Value::from(a.eta),
            "cg_iters" => Value::from(a.cg_iters),
            "cg_tol" => Value::from(a.cg_tol),
            "cg_warm_start" => Value::from(a.cg_warm_start),
            "stack_hessian" => Value::from(a.stack_hessian.clone()),
            "curvature" => Value::from(a.curvature.clone()),
            "curvature_batch" => Value::from(a.curvature_batch),
            "init_alpha" => Value::from(a.init_alpha),
            "target_entropy" => Value::from(a.target_entropy),
            "eval_every" => Value::from(a.eval_every),
            "eval_episodes" => Value::from(a.eval_episodes),
            "checkpoint_every" => Value::from(a.checkpoint_every),
            "keep_checkpoints" => Value::from(a.keep_checkpoints),
            "log_every" => Value::from(a.log_every),
            "threads" => Value::from(a.threads),
            "epoch_steps" => Value::from(a.epoch_steps),
            "critic_steps" => Value::from(a.critic_steps),
            "lambda" => Value::from(a.lambda),
            "lambda_decay" => Value::from(a.lambda_decay),
            "lambda_min" => Value::from(a.lambda_min),
            "implicit_max_ratio" => Value::from(a.implicit_max_ratio.and_then(|r| r.0)),
            "stac_estimator" => Value::from(a.stac_estimator.clone()),
            "lr_actor" => Value::from(a.lr_actor),
            "lr_critic" => Value::from(a.lr_critic),
            "gae_lambda" => Value::from(a.gae_lambda),
            "optimizer" => Value::from(a.optimizer.clone()),
            "init_log_std" => Value::from(a.init_log_std),
            "normalize_advantages" => Value::from(a.normalize_advantages),
            _ => continue,
        };
        // Only a non-finite number serialises to null here (JSON has no NaN / infinity),
        // except `--implicit-max-ratio off`, whose null means "unbounded".
        if v.is_null() && key != "implicit_max_ratio" {
            return Err(format!("--{} must be finite", key.replace('_', "-")));
        }
        o.insert(key.to_string(), v);
    }
    Ok(o)
}

fn print_summary(s: &TrainSummary) {
    if s.already_finished {
        println!(
            "{} already finished ({} steps); nothing to do",
            s.run_dir.display(),
            s.steps
        );
        return;
    }
    if s.interrupted {
        println!(
            "stopped at step {} ({} updates) in {:.1} s; continue with --resume {}",
            s.steps,
            s.updates,
            s.wall_s,
            s.run_dir.display()
        );
        return;
    }
    match &s.final_eval {
        Some(ev) => println!(
            "done: {} steps, {} episodes, {} updates in {:.1} s; final eval return {:.2} ± {:.2} \
             ({} episodes); run directory {}",
            s.steps,
            s.episodes,
            s.updates,
            s.wall_s,
            ev.mean(),
            ev.std(),
            ev.returns.len(),
            s.run_dir.display()
        ),
        None => println!(
            "done: {} steps; run directory {}",
            s.steps,
            s.run_dir.display()
        ),
    }
}

fn setup_process(threads: usize, second_order: bool) -> Result<(), String> {
    train::configure_threads(threads).map_err(|e| e.to_string())?;
    if second_order {
        crate::autodiff::enable_second_order().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// An algorithm of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnyAlgo {
    /// SAC, Res-SAC, Stack-SAC ([`train::off_policy`]).
    Sac(Algo),
    /// AC, STAC ([`train::on_policy`]).
    OnPolicy(OnPolicyAlgo),
}

impl AnyAlgo {
    fn name(self) -> &'static str {
        match self {
            AnyAlgo::Sac(a) => a.name(),
            AnyAlgo::OnPolicy(a) => on_policy::algo_name(a),
        }
    }
}

fn parse_any_algo(name: &str) -> Result<AnyAlgo, String> {
    if let Some(a) = on_policy::parse_algo(name) {
        return Ok(AnyAlgo::OnPolicy(a));
    }
    name.parse::<Algo>().map(AnyAlgo::Sac).map_err(|_| {
        format!(
            "unknown algorithm '{name}'; valid algorithms: {}, ac, stac",
            Algo::names().join(", ")
        )
    })
}

/// Errors if an option of the other family was given on the command line or in the config
/// file.
fn check_family(algo: AnyAlgo, file: Option<&Value>, m: &ArgMatches) -> Result<(), String> {
    let (foreign, family) = match algo {
        AnyAlgo::OnPolicy(_) => (SAC_ONLY, "the SAC family (sac, res-sac, stack-sac)"),
        AnyAlgo::Sac(_) => (ON_POLICY_ONLY, "ac and stac"),
    };
    // Options of one algorithm of the family: given to another, they would be ignored.
    const ONLY: &[(&str, &[&str])] = &[
        ("clip", &["res-sac"]),
        ("eta", &["stack-sac"]),
        ("curvature_batch", &["stack-sac"]),
        ("cg_iters", &["stack-sac", "stac"]),
        ("cg_tol", &["stack-sac", "stac"]),
        ("cg_warm_start", &["stack-sac", "stac"]),
        ("stack_hessian", &["stack-sac", "stac"]),
        ("curvature", &["stack-sac", "stac"]),
        ("lambda", &["stac"]),
        ("lambda_decay", &["stac"]),
        ("lambda_min", &["stac"]),
        ("implicit_max_ratio", &["stac"]),
        ("stac_estimator", &["stac"]),
    ];
    for (key, algos) in ONLY {
        let same_family = !foreign.contains(key);
        if same_family && given(m, key) && !algos.contains(&algo.name()) {
            return Err(format!(
                "--{} applies to {} only, not to --algo {}",
                key.replace('_', "-"),
                algos.join(" and "),
                algo.name()
            ));
        }
    }
    for key in foreign {
        if given(m, key) {
            return Err(format!(
                "--{} applies to {family} only, not to --algo {}",
                key.replace('_', "-"),
                algo.name()
            ));
        }
        if let Some(Value::Object(f)) = file
            && f.contains_key(*key)
        {
            return Err(format!(
                "option `{key}` of the --config file applies to {family} only, not to algo {}",
                algo.name()
            ));
        }
    }
    Ok(())
}

/// The `algo` of a run directory's config.json, if it has a readable one.
fn run_algo(dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(train::run_dir::CONFIG_FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("algo")?.as_str().map(String::from)
}

/// Runs `stackrl train`.
pub(super) fn train_command(a: &TrainArgs, m: &ArgMatches) -> Result<(), String> {
    let progress: ProgressMode = a.progress.parse()?;
    let options = RunOptions {
        run_dir: a.run_dir.clone(),
        runs_root: a.runs_root.clone(),
        progress,
        interrupt_at: a.interrupt_at,
        video_every: a.video_every,
    };
    if let Some(dir) = &a.resume {
        let extra: Vec<String> = CONFIG_KEYS
            .iter()
            .filter(|k| **k != "threads" && given(m, k))
            .map(|k| format!("--{}", k.replace('_', "-")))
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "--resume continues a run with its own config.json; remove {}",
                extra.join(", ")
            ));
        }
        let threads = given(m, "threads").then_some(a.threads as usize);
        let summary = if run_algo(dir).is_some_and(|n| on_policy::parse_algo(&n).is_some()) {
            let config = OnPolicyTrainConfig::read(dir).map_err(|e| e.to_string())?;
            setup_process(
                threads.unwrap_or(config.threads),
                on_policy::needs_second_order(&config),
            )?;
            on_policy::resume(dir, &options).map_err(|e| e.to_string())?
        } else {
            let config = TrainConfig::read(dir).map_err(|e| e.to_string())?;
            setup_process(
                threads.unwrap_or(config.threads),
                train::off_policy::needs_second_order(&config),
            )?;
            train::resume(dir, &options).map_err(|e| e.to_string())?
        };
        print_summary(&summary);
        return Ok(());
    }
    let summary = match resolve_new_run(a, m)? {
        NewRun::OnPolicy(config) => {
            setup_process(config.threads, on_policy::needs_second_order(&config))?;
            on_policy::train(&config, &options).map_err(|e| e.to_string())?
        }
        NewRun::Sac(config) => {
            setup_process(
                config.threads,
                train::off_policy::needs_second_order(&config),
            )?;
            train::train(&config, &options).map_err(|e| e.to_string())?
        }
    };
    print_summary(&summary);
    Ok(())
}

/// The validated configuration of a new run.
enum NewRun {
    OnPolicy(Box<OnPolicyTrainConfig>),
    Sac(Box<TrainConfig>),
}

/// Layers defaults, `--config` and the command line into a validated configuration.
fn resolve_new_run(a: &TrainArgs, m: &ArgMatches) -> Result<NewRun, String> {
    let file = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
            Some(
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("--config {} is not valid JSON: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let algo_name = if given(m, "algo") {
        a.algo.clone()
    } else {
        file.as_ref()
            .and_then(|f| f.get("algo"))
            .and_then(|v| v.as_str())
            .unwrap_or("sac")
            .to_string()
    };
    let algo = parse_any_algo(&algo_name)?;
    check_family(algo, file.as_ref(), m)?;
    let overrides = overrides(a, m)?;
    Ok(match algo {
        AnyAlgo::OnPolicy(_) => NewRun::OnPolicy(Box::new(
            OnPolicyTrainConfig::from_layers(file.as_ref(), &overrides)
                .map_err(|e| e.to_string())?,
        )),
        AnyAlgo::Sac(_) => NewRun::Sac(Box::new(
            TrainConfig::from_layers(file.as_ref(), &overrides).map_err(|e| e.to_string())?,
        )),
    })
}

/// Checks the options of a new `stackrl train` run (as a sweep cell gives them, without
/// `stackrl train`) exactly as `train` would, without creating or running anything.
pub(super) fn check_train_options(args: &[String]) -> Result<(), String> {
    use clap::{CommandFactory, FromArgMatches};
    let argv = ["stackrl", "train"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    let matches = super::Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| {
            let text = e.to_string();
            text.lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string()
        })?;
    let sub = matches
        .subcommand_matches("train")
        .ok_or("not a train command")?;
    let a = TrainArgs::from_arg_matches(sub).map_err(|e| e.to_string())?;
    let (env, threads) = match resolve_new_run(&a, sub)? {
        NewRun::OnPolicy(c) => (c.env.clone(), c.threads),
        NewRun::Sac(c) => (c.env.clone(), c.threads),
    };
    train::check_threads(threads).map_err(|e| e.to_string())?;
    crate::envs::spec(&env).map_err(|e| e.to_string())?;
    Ok(())
}

/// Options of `stackrl bench sac`.
#[derive(Debug, clap::Args)]
pub struct BenchSacArgs {
    /// Algorithms, comma-separated (sac, stack-sac; res-sac also works).
    #[arg(long, value_delimiter = ',', default_value = "sac,stack-sac")]
    pub algos: Vec<String>,
    /// Network sizes as hidden widths joined by 'x', with the batch after '/',
    /// comma-separated: the default is 256×256 / batch 256 and Table 3's 128×128 / 128.
    #[arg(long, value_delimiter = ',', default_value = "256x256/256,128x128/128")]
    pub sizes: Vec<String>,
    /// Thread counts, comma-separated (each runs in its own process).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Observation width of the random data (17, HalfCheetah's).
    #[arg(long, default_value_t = 17)]
    pub obs_dim: usize,
    /// Action width of the random data (6, HalfCheetah's).
    #[arg(long, default_value_t = 6)]
    pub act_dim: usize,
    /// Stack-SAC CG iterations (all run: tolerance 0).
    #[arg(long, default_value_t = 10)]
    pub cg_iters: usize,
    /// Untimed warm-up updates per case.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Updates per timed repetition (Stack-SAC uses a fifth, at least 5).
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Timed repetitions; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Also run scripts/bench_sac_torch.py with this Python (which must have torch) for the
    /// SAC rows, in the same run.
    #[arg(long)]
    pub torch_python: Option<PathBuf>,
    /// Internal: run the cases in this process and print JSON lines.
    #[arg(long, hide = true)]
    pub worker: bool,
}

fn parse_size(s: &str) -> Result<(Vec<usize>, usize), String> {
    let (h, b) = s
        .split_once('/')
        .ok_or_else(|| format!("size {s:?}: expected e.g. 256x256/256"))?;
    let hidden = h
        .split('x')
        .map(|w| w.parse::<usize>().ok().filter(|w| *w > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("size {s:?}: bad hidden widths"))?;
    let batch = b
        .parse::<usize>()
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("size {s:?}: bad batch"))?;
    Ok((hidden, batch))
}

fn cases(a: &BenchSacArgs) -> Result<Vec<UpdateBenchCase>, String> {
    let mut out = Vec::new();
    for size in &a.sizes {
        let (hidden, batch) = parse_size(size)?;
        for name in &a.algos {
            let algo: Algo = name
                .parse()
                .map_err(|e: crate::algos::AlgoError| e.to_string())?;
            let stack = algo == Algo::StackSac;
            out.push(UpdateBenchCase {
                algo,
                hidden: hidden.clone(),
                batch,
                obs_dim: a.obs_dim,
                act_dim: a.act_dim,
                cg_iters: a.cg_iters,
                warmup: if stack {
                    a.warmup.div_ceil(5).max(2)
                } else {
                    a.warmup
                },
                iters: if stack { (a.iters / 5).max(5) } else { a.iters },
                repeats: a.repeats,
            });
        }
    }
    Ok(out)
}

/// Runs `stackrl bench sac`.
pub(super) fn bench_sac_command(a: &BenchSacArgs) -> Result<(), String> {
    if a.threads.contains(&0) || a.repeats == 0 || a.iters == 0 {
        return Err("--threads, --repeats and --iters must be positive".into());
    }
    let cases = cases(a)?;
    if a.worker {
        let threads = a.threads.first().copied().unwrap_or(1);
        // The fast curvature engine needs first-order gradients only, so the process runs
        // as the trainer does (no second-order switch, which slows every backward pass).
        train::configure_threads(threads).map_err(|e| e.to_string())?;
        for case in &cases {
            let r = bench_update(case).map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
        }
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut results: Vec<UpdateBenchResult> = Vec::new();
    let mut torch: Vec<(usize, Vec<usize>, usize, f64)> = Vec::new();
    // One process per (thread count, case): the thread count is fixed per process, and a
    // fresh process keeps one case's allocations from slowing the next. PyTorch runs right
    // after the matching SAC case, so both see the same machine load.
    for &t in &a.threads {
        for case in &cases {
            let hidden: Vec<String> = case.hidden.iter().map(|h| h.to_string()).collect();
            let size = format!("{}/{}", hidden.join("x"), case.batch);
            eprintln!("{} {size}, {t} thread(s) ...", case.algo);
            let out = Process::new(&exe)
                .args([
                    "bench".to_string(),
                    "sac".into(),
                    "--worker".into(),
                    format!("--threads={t}"),
                    format!("--algos={}", case.algo),
                    format!("--sizes={size}"),
                    format!("--obs-dim={}", a.obs_dim),
                    format!("--act-dim={}", a.act_dim),
                    format!("--cg-iters={}", a.cg_iters),
                    format!("--warmup={}", a.warmup),
                    format!("--iters={}", a.iters),
                    format!("--repeats={}", a.repeats),
                ])
                .output()
                .map_err(|e| format!("cannot run the worker: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "worker ({} {size}, {t} threads) failed: {}",
                    case.algo,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                results.push(
                    serde_json::from_str(line)
                        .map_err(|e| format!("bad worker output {line:?}: {e}"))?,
                );
            }
            let Some(py) = a.torch_python.as_ref().filter(|_| case.algo == Algo::Sac) else {
                continue;
            };
            let out = Process::new(py)
                .args([
                    "scripts/bench_sac_torch.py".to_string(),
                    format!("--threads={t}"),
                    format!("--hidden={}", hidden.join(",")),
                    format!("--batch={}", case.batch),
                    format!("--obs-dim={}", a.obs_dim),
                    format!("--act-dim={}", a.act_dim),
                    format!("--warmup={}", a.warmup),
                    format!("--iters={}", a.iters),
                    format!("--repeats={}", a.repeats),
                ])
                .output()
                .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "bench_sac_torch.py failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let v: Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("bad bench_sac_torch.py output: {e}"))?;
            let m = v["median"]
                .as_f64()
                .ok_or("bench_sac_torch.py printed no median")?;
            torch.push((t, case.hidden.clone(), case.batch, m));
        }
    }
    println!(
        "| algorithm | hidden | batch | threads | stackrl updates/s (median) | PyTorch \
         updates/s (median) | stackrl / PyTorch | cost vs SAC |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        let sac = results
            .iter()
            .find(|s| {
                s.case.algo == Algo::Sac
                    && s.case.hidden == r.case.hidden
                    && s.case.batch == r.case.batch
                    && s.threads == r.threads
            })
            .map(|s| s.median);
        let torch_m = torch
            .iter()
            .find(|(t, h, b, _)| {
                r.case.algo == Algo::Sac
                    && *t == r.threads
                    && *h == r.case.hidden
                    && *b == r.case.batch
            })
            .map(|x| x.3);
        let cost = match sac {
            Some(s) => format!("{:.2}×", s / r.median),
            None => "–".into(),
        };
        let name = match r.cg_iters_run {
            Some(c) => format!("{} ({c:.0} CG its)", r.case.algo),
            None => r.case.algo.to_string(),
        };
        let hidden: Vec<String> = r.case.hidden.iter().map(|h| h.to_string()).collect();
        println!(
            "| {name} | {} | {} | {} | {:.1} | {} | {} | {cost} |",
            hidden.join("×"),
            r.case.batch,
            r.threads,
            r.median,
            torch_m.map_or("–".into(), |m| format!("{m:.1}")),
            torch_m.map_or("–".into(), |m| format!("{:.2}×", r.median / m)),
        );
    }
    Ok(())
}
