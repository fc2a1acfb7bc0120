//! Run machinery shared by the trainers: run directories with `config.json`
//! ([`run_dir`]), CSV / JSON-lines metrics flushed on every row ([`metrics`]), atomic
//! checkpoints with a `latest` pointer ([`checkpoint`]), TensorBoard event files ([`tensorboard`]), episode stepping with RNG-seeded
//! resets and deterministic evaluation ([`episodes`]), and a progress display
//! ([`progress`]). [`off_policy`] is the SAC / Res-SAC / Stack-SAC trainer built on them,
//! [`on_policy`] the AC / STAC trainer.
//!
//! # Threads
//!
//! Candle's CPU backend takes its thread counts from the environment: matrix products run on
//! rayon with `RAYON_NUM_THREADS` threads (read at every product), element-wise ops of 64 Ki
//! elements and more on a spin-waiting pool of `CANDLE_NUM_THREADS − 1` workers (read once,
//! when the pool starts). [`configure_threads`] gives the matrix products `n` threads and
//! keeps element-wise ops on the calling thread (the SAC family's twin critics then run one per
//! thread, see `nn::kernels::join`); the `stackrl` binary calls it with
//! `--threads` (default 1) before anything else runs. Results are bit-identical for the
//! same seed and the same thread count.

pub mod checkpoint;
pub mod episodes;
pub mod metrics;
pub mod off_policy;
pub mod on_policy;
pub mod progress;
pub mod run_dir;
pub mod tensorboard;

pub use checkpoint::Checkpointer;
pub use episodes::{EpisodeRunner, EvalResult, evaluate};
pub use metrics::{MetricsWriter, Row};
pub use off_policy::{RunOptions, TrainConfig, TrainSummary, resume, train};
pub use progress::{Progress, ProgressMode};

use std::path::PathBuf;
use std::sync::Once;

/// Errors of the trainers. Every bad input gives one of these (never a panic), and the CLI
/// prints it and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An invalid option or combination of options.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An environment error (unknown id, bad action, ...).
    #[error(transparent)]
    Env(#[from] crate::envs::EnvError),
    /// The algorithm cannot handle the environment's action space.
    #[error("{algo} needs a continuous (Box) action space, but {env} has {space}")]
    ActionSpace {
        /// The algorithm.
        algo: String,
        /// The environment.
        env: String,
        /// Its action space.
        space: String,
    },
    /// The run directory could not be created or written.
    #[error("cannot use run directory {}: {source}", path.display())]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint is missing, corrupt or unreadable.
    #[error("bad checkpoint: {0}")]
    Checkpoint(String),
    /// A checkpoint that does not belong to this run's configuration.
    #[error("checkpoint does not match the run: {0}")]
    CheckpointMismatch(String),
    /// Training diverged: a loss became NaN or infinite. The update was not applied and no
    /// checkpoint was written after it; the last good checkpoint is kept.
    #[error(
        "training stopped at step {step}: {source}; the last good checkpoint is {}",
        last_checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (no checkpoint was written yet)".into())
    )]
    Diverged {
        /// The environment step at which it happened.
        step: u64,
        /// What was not finite.
        source: Box<crate::algos::AlgoError>,
        /// The newest checkpoint on disk.
        last_checkpoint: Option<PathBuf>,
    },
    /// An error of the algorithm.
    #[error(transparent)]
    Algo(#[from] crate::algos::AlgoError),
    /// An error of the on-policy algorithms (AC, STAC): invalid options, bad saved state.
    #[error(transparent)]
    OnPolicy(#[from] crate::algos::OnPolicyError),
    /// The run's sizes need more memory than the machine has available.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// A replay-buffer error.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    /// A tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Recording a video failed (`video_every`).
    #[cfg(feature = "render")]
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// A JSON error.
    #[error("{what}: {source}")]
    Json {
        /// What was being read or written.
        what: String,
        /// The parser's error.
        source: serde_json::Error,
    },
}

static THREADS: Once = Once::new();

/// Most episodes of one evaluation (each is a whole episode of up to 1000 steps, run at
/// every evaluation: more would stall a run for days).
pub const MAX_EVAL_EPISODES: usize = 100_000;

/// The most threads a run may ask for: four per CPU the OS offers this process (more only
/// oversubscribes the cores; far more makes the thread pool fail to start).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks a thread count: at least 1 and at most [`max_threads`].
pub fn check_threads(threads: usize) -> Result<(), TrainError> {
    if threads == 0 {
        return Err(TrainError::Config("threads must be at least 1".into()));
    }
    let max = max_threads();
    if threads > max {
        return Err(TrainError::Config(format!(
            "--threads {threads} is more than this machine can run: it offers {} CPUs \
             (at most {max} threads, 4 per CPU)",
            max / 4
        )));
    }
    Ok(())
}

/// Sets the thread counts of Candle's CPU backend: `RAYON_NUM_THREADS = threads` for matrix
/// products and `CANDLE_NUM_THREADS = 1`, so element-wise ops run on the calling thread.
/// Call it at program start, before any tensor operation and before other threads exist
/// (the `stackrl` binary does); only the first call has an effect.
///
/// Why element-wise ops stay single-threaded: they are memory-bound and short (a 256 × 256
/// activation is 256 KiB), and Candle hands every one of 64 Ki elements or more to a pool
/// whose workers spin and then park between ops. On this project's shared 2-core machine a
/// 256×256 / batch-256 SAC update ran at 19 updates/s with both counts at 2, 34 with only
/// the element-wise pool at 2, 100 with only the products at 2 and 114 with both at 1
/// (`stackrl bench sac`, see `docs/sac.md`). 1 is the default of `stackrl train`.
pub fn configure_threads(threads: usize) -> Result<(), TrainError> {
    check_threads(threads)?;
    THREADS.call_once(|| {
        // SAFETY: `std::env::set_var` races only with C code reading the environment in
        // another thread; this is documented to run at program start before other threads
        // exist, and runs at most once (the `Once`).
        unsafe {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
    });
    Ok(())
}
