//! Policies to render: uniformly random, zero, and the actor of a training run.
//!
//! [`load_run_policy`] reads a run directory's `config.json`, picks the loader for its
//! `algo` and returns the policy with the run's environment id: the SAC family (sac,
//! res-sac, stack-sac) and the on-policy AC / STAC runs. Another family means one more arm
//! in [`load_run_policy`] returning its own [`Policy`].

use std::path::{Path, PathBuf};

use candle_core::DType;
use rand::{Rng as _, SeedableRng};

use super::RenderError;
use crate::algos::OnPolicyAgent;
use crate::algos::SacAgent;
use crate::envs::{self, Env, Space};
use crate::rng::Rng;
use crate::train::TrainConfig;
use crate::train::checkpoint::{Checkpointer, load_tensors};
use crate::train::off_policy::{FORMAT as CHECKPOINT_FORMAT, META_FILE, WEIGHTS_FILE};
use crate::train::run_dir::CONFIG_FILE;

/// Maps an observation to an action (`f64`s, as [`Env::step`] takes them).
pub trait Policy {
    /// The action for `obs`.
    fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>, RenderError>;
}

/// A closure as a [`Policy`].
pub struct FnPolicy<F>(pub F);

impl<F: FnMut(&[f64]) -> Result<Vec<f64>, RenderError>> Policy for FnPolicy<F> {
    fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>, RenderError> {
        (self.0)(obs)
    }
}

/// Uniformly random actions (a random index for discrete spaces), from its own seeded
/// generator.
#[derive(Clone, Debug)]
pub struct RandomPolicy {
    space: Space,
    rng: rand_pcg::Pcg64,
}

impl RandomPolicy {
    /// Random actions in `space`, seeded with `seed`.
    pub fn new(space: &Space, seed: u64) -> Result<Self, RenderError> {
        if let Space::Box { low, high } = space
            && low.iter().chain(high).any(|x| !x.is_finite())
        {
            return Err(RenderError::Invalid(
                "a random policy needs a bounded action space".into(),
            ));
        }
        Ok(Self {
            space: space.clone(),
            rng: rand_pcg::Pcg64::seed_from_u64(seed ^ 0x5eed),
        })
    }
}

impl Policy for RandomPolicy {
    fn act(&mut self, _obs: &[f64]) -> Result<Vec<f64>, RenderError> {
        Ok(match &self.space {
            Space::Discrete(n) => vec![self.rng.random_range(0..*n) as f64],
            Space::Box { low, high } => low
                .iter()
                .zip(high)
                .map(|(l, h)| l + (h - l) * self.rng.random::<f64>())
                .collect(),
        })
    }
}

/// All-zero actions (action 0 for discrete spaces).
#[derive(Clone, Debug)]
pub struct ZeroPolicy {
    len: usize,
}

impl ZeroPolicy {
    /// Zero actions for `space`.
    pub fn new(space: &Space) -> Self {
        Self {
            len: space.action_len(),
        }
    }
}

impl Policy for ZeroPolicy {
    fn act(&mut self, _obs: &[f64]) -> Result<Vec<f64>, RenderError> {
        Ok(vec![0.0; self.len])
    }
}

/// The actor of a SAC-family agent: its mean action (`deterministic`) or a sample.
pub struct SacPolicy {
    agent: SacAgent,
    deterministic: bool,
    rng: Rng,
}

impl Policy for SacPolicy {
    fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>, RenderError> {
        let action = if self.deterministic {
            self.agent.act_deterministic(obs)
        } else {
            self.agent.act(obs, &mut self.rng)
        };
        action.map_err(|e| RenderError::Policy(format!("actor: {e}")))
    }
}

/// A policy loaded from a run directory.
pub struct LoadedRun {
    /// The run's environment id.
    pub env: String,
    /// The run's algorithm.
    pub algo: String,
    /// The checkpoint directory the weights came from.
    pub checkpoint: PathBuf,
    /// The policy.
    pub policy: Box<dyn Policy>,
}

impl std::fmt::Debug for LoadedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRun")
            .field("env", &self.env)
            .field("algo", &self.algo)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

fn policy_err(e: impl std::fmt::Display) -> RenderError {
    RenderError::Policy(e.to_string())
}

/// Loads the policy of the run in `run_dir` from `checkpoint` (a checkpoint directory, or
/// a file inside one such as its `weights.safetensors`; default: the run's latest
/// checkpoint). `deterministic` renders the mean action; otherwise actions are sampled
/// from a generator seeded with `seed`.
///
/// Errors: no `config.json`, an algorithm without a loader ("not supported yet"), no
/// checkpoint, or a checkpoint of another environment, algorithm or network.
pub fn load_run_policy(
    run_dir: &Path,
    checkpoint: Option<&Path>,
    deterministic: bool,
    seed: u64,
) -> Result<LoadedRun, RenderError> {
    let config_path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        RenderError::Policy(format!(
            "{} is not a run directory: cannot read {}: {e}",
            run_dir.display(),
            config_path.display()
        ))
    })?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| RenderError::Policy(format!("{} is corrupt: {e}", config_path.display())))?;
    let algo = config
        .get("algo")
        .and_then(|a| a.as_str())
        .ok_or_else(|| RenderError::Policy(format!("{} names no algo", config_path.display())))?
        .to_string();
    match algo.as_str() {
        "sac" | "res-sac" | "stack-sac" => load_sac(run_dir, checkpoint, deterministic, seed),
        "ac" | "stac" => load_on_policy(run_dir, checkpoint, deterministic, seed),
        other => Err(RenderError::Policy(format!(
            "rendering runs of algo {other} is not supported yet (supported: sac, res-sac, \
             stack-sac, ac, stac)"
        ))),
    }
}

/// The checkpoint directory `given` names, or the run's latest, verified against its
/// manifest of checksums.
fn checkpoint_dir(run_dir: &Path, given: Option<&Path>) -> Result<PathBuf, RenderError> {
    let dir = find_checkpoint_dir(run_dir, given)?;
    crate::train::checkpoint::verify(&dir).map_err(policy_err)?;
    Ok(dir)
}

/// The checkpoint directory `given` names, or the run's latest.
fn find_checkpoint_dir(run_dir: &Path, given: Option<&Path>) -> Result<PathBuf, RenderError> {
    match given {
        Some(p) if p.is_dir() => Ok(p.to_path_buf()),
        Some(p) if p.is_file() => {
            // A file inside a checkpoint (e.g. its weights) names that checkpoint.
            let parent = match p.parent() {
                Some(q) if !q.as_os_str().is_empty() => q.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !parent.join(META_FILE).is_file() {
                return Err(RenderError::Policy(format!(
                    "{} is not a checkpoint nor a file of one (a checkpoint is a folder such \
                     as RUN/checkpoints/step_000000020000 holding {META_FILE})",
                    p.display()
                )));
            }
            Ok(parent)
        }
        Some(p) => Err(RenderError::Policy(format!(
            "checkpoint {} does not exist",
            p.display()
        ))),
        None => Checkpointer::latest(run_dir)
            .map_err(policy_err)?
            .ok_or_else(|| {
                RenderError::Policy(format!(
                    "{} has no checkpoint yet (one is written every --checkpoint-every steps \
                     and at the end)",
                    run_dir.display()
                ))
            }),
    }
}

/// Reads the checkpoint's `meta.json` in `dir` and checks that it is a `format` checkpoint
/// of the run (`algo` on `env` with `hidden`).
fn check_meta(
    dir: &Path,
    run_dir: &Path,
    format: &str,
    (algo, env, hidden): (&str, &str, &[usize]),
) -> Result<(), RenderError> {
    let meta_path = dir.join(META_FILE);
    let meta: serde_json::Value = std::fs::read_to_string(&meta_path)
        .map_err(|e| format!("{} is not a checkpoint: {e}", dir.display()))
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| format!("{} is corrupt: {e}", meta_path.display()))
        })
        .map_err(RenderError::Policy)?;
    let field = |k: &str| meta.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let (m_algo, m_env) = (field("algo"), field("env"));
    if field("format") != format || m_algo != algo || m_env != env {
        return Err(RenderError::Policy(format!(
            "checkpoint {} is from a {m_algo} run on {m_env} (format {}), but {} is a {algo} \
             run on {env}",
            dir.display(),
            field("format"),
            run_dir.display(),
        )));
    }
    if field("hidden") != serde_json::json!(hidden) {
        return Err(RenderError::Policy(format!(
            "checkpoint {} has hidden sizes {}, the run's config.json {hidden:?}",
            dir.display(),
            field("hidden"),
        )));
    }
    Ok(())
}

fn load_sac(
    run_dir: &Path,
    checkpoint: Option<&Path>,
    deterministic: bool,
    seed: u64,
) -> Result<LoadedRun, RenderError> {
    let config = TrainConfig::read(run_dir).map_err(policy_err)?;
    let dir = checkpoint_dir(run_dir, checkpoint)?;
    check_meta(
        &dir,
        run_dir,
        CHECKPOINT_FORMAT,
        (config.algo.name(), &config.env, &config.sac.hidden),
    )?;
    let env = envs::make(&config.env)?;
    let (low, high) = match env.action_space() {
        Space::Box { low, high } => (low.clone(), high.clone()),
        other => {
            return Err(RenderError::Policy(format!(
                "{} has a {other} action space; SAC needs a Box",
                config.env
            )));
        }
    };
    let obs_dim = env.observation_space().dim();
    let mut rng = Rng::seed_from_u64(config.seed);
    let mut agent = SacAgent::new(
        config.algo,
        &config.sac,
        obs_dim,
        &low,
        &high,
        DType::F32,
        &mut rng,
    )
    .map_err(policy_err)?;
    let weights = load_tensors(&dir.join(WEIGHTS_FILE)).map_err(policy_err)?;
    agent.load_weight_tensors(&weights).map_err(|e| {
        RenderError::Policy(format!(
            "checkpoint {} does not fit the run's networks: {e}",
            dir.display()
        ))
    })?;
    Ok(LoadedRun {
        env: config.env.clone(),
        algo: config.algo.name().to_string(),
        checkpoint: dir,
        policy: Box::new(SacPolicy {
            agent,
            deterministic,
            rng: Rng::seed_from_u64(seed),
        }),
    })
}

/// The actor of an AC / STAC agent: its most likely action (`deterministic`) or a sample.
pub struct OnPolicyPolicy {
    agent: OnPolicyAgent,
    deterministic: bool,
    rng: Rng,
}

impl Policy for OnPolicyPolicy {
    fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>, RenderError> {
        self.agent
            .act(obs, self.deterministic, &mut self.rng)
            .map_err(|e| RenderError::Policy(format!("actor: {e}")))
    }
}

fn load_on_policy(
    run_dir: &Path,
    checkpoint: Option<&Path>,
    deterministic: bool,
    seed: u64,
) -> Result<LoadedRun, RenderError> {
    use crate::train::on_policy as op;
    let config = op::OnPolicyTrainConfig::read(run_dir).map_err(policy_err)?;
    let algo = op::algo_name(config.algo);
    let dir = checkpoint_dir(run_dir, checkpoint)?;
    check_meta(
        &dir,
        run_dir,
        op::FORMAT,
        (algo, &config.env, &config.hidden),
    )?;
    let (mut agent, _) = op::build(&config).map_err(policy_err)?;
    let mut state = load_tensors(&dir.join(op::WEIGHTS_FILE)).map_err(policy_err)?;
    state.extend(load_tensors(&dir.join(op::OPTIMIZER_FILE)).map_err(policy_err)?);
    agent.load_state_tensors(&state).map_err(|e| {
        RenderError::Policy(format!(
            "checkpoint {} does not fit the run's networks: {e}",
            dir.display()
        ))
    })?;
    Ok(LoadedRun {
        env: config.env.clone(),
        algo: algo.to_string(),
        checkpoint: dir,
        policy: Box::new(OnPolicyPolicy {
            agent,
            deterministic,
            rng: Rng::seed_from_u64(seed),
        }),
    })
}

/// The `--policy random|zero` policies for `env`.
pub fn simple_policy(name: &str, env: &dyn Env, seed: u64) -> Result<Box<dyn Policy>, RenderError> {
    match name {
        "random" => Ok(Box::new(RandomPolicy::new(env.action_space(), seed)?)),
        "zero" => Ok(Box::new(ZeroPolicy::new(env.action_space()))),
        other => Err(RenderError::Invalid(format!(
            "unknown policy {other:?}: random or zero (or --run DIR for a trained agent)"
        ))),
    }
}
