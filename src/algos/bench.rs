//! Update-throughput benchmark of the SAC family (`stackrl bench sac`,
//! `cargo bench --bench sac_update`).
//!
//! One measured update is one `Algo-1-0` round of [`super::update`] — minibatch sampling,
//! the critic step with its target and Polyak update, the actor step and the temperature
//! step — the same work as one iteration of CleanRL's `sac_continuous_action.py` update
//! (and of `scripts/bench_sac_torch.py`). Stack-SAC's round adds the Stackelberg gradient
//! with a fixed number of CG iterations on the exact Hessian (`cg_tol = 0` and a large η, so
//! that all of them run; see [`bench_update_with`]).
//!
//! The thread count cannot change inside a process (Candle reads it from the environment
//! when its pool starts), so `stackrl bench sac` runs every thread count in a child process.

use std::time::Instant;

use candle_core::DType;

use super::{Algo, AlgoError, SacAgent, SacConfig};
use crate::autodiff::CurvatureEngine;
use crate::replay::ReplayBuffer;
use crate::rng::Rng;

/// One benchmark configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateBenchCase {
    /// Algorithm.
    pub algo: Algo,
    /// Hidden widths of every network.
    pub hidden: Vec<usize>,
    /// Minibatch size.
    pub batch: usize,
    /// Observation width (default 17, HalfCheetah's).
    pub obs_dim: usize,
    /// Action width (default 6, HalfCheetah's).
    pub act_dim: usize,
    /// CG iterations (Stack-SAC).
    pub cg_iters: usize,
    /// Untimed updates before timing.
    pub warmup: usize,
    /// Updates per timed repetition.
    pub iters: usize,
    /// Timed repetitions (the median is reported).
    pub repeats: usize,
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateBenchResult {
    /// The case.
    pub case: UpdateBenchCase,
    /// Matrix-product threads the process ran with (`RAYON_NUM_THREADS`, see
    /// [`crate::train::configure_threads`]).
    pub threads: usize,
    /// Median updates per second over the repetitions.
    pub median: f64,
    /// Stack-SAC: mean CG iterations run per update (all of `cg_iters` unless CG stopped on
    /// non-positive curvature).
    pub cg_iters_run: Option<f64>,
    /// Updates per second of every repetition.
    pub samples: Vec<f64>,
    /// Median CPU milliseconds per update of the whole process (all threads; with one
    /// thread, the computing thread's time), which other processes on a busy machine
    /// disturb much less than wall time.
    #[serde(default)]
    pub cpu_ms: Option<f64>,
    /// Stack-SAC: the curvature engine.
    #[serde(default)]
    pub curvature: Option<CurvatureEngine>,
    /// Stack-SAC: the Hessian-vector sub-sample, if any.
    #[serde(default)]
    pub curvature_batch: Option<usize>,
}

/// CPU seconds used by the whole process so far (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_seconds() -> f64 {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU seconds used by the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_seconds() -> f64 {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; both clocks exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs one case in this process (with this process's thread configuration) with the
/// default (fast) curvature engine on the whole minibatch.
pub fn bench_update(case: &UpdateBenchCase) -> Result<UpdateBenchResult, AlgoError> {
    bench_update_with(case, CurvatureEngine::Fast, None)
}

/// [`bench_update`] with Stack-SAC's curvature engine and Hessian sub-sample chosen.
pub fn bench_update_with(
    case: &UpdateBenchCase,
    curvature: CurvatureEngine,
    curvature_batch: Option<usize>,
) -> Result<UpdateBenchResult, AlgoError> {
    if case.iters == 0 || case.repeats == 0 || case.batch == 0 {
        return Err(AlgoError::Config(
            "iters, repeats and batch must be positive".into(),
        ));
    }
    let mut rng = Rng::seed_from_u64(0);
    // Stack-SAC with the exact Hessian and a large η: on random data the exact
    // semi-gradient Hessian is indefinite, and with η = 0.5 CG stops early on non-positive
    // curvature, which would time fewer iterations than asked. η does not change what an
    // HVP costs; with η = 100 and `cg_tol = 0` every iteration runs (`cg_iters_run` shows
    // it). The Gauss-Newton HVP is cheaper on the fast engine, so it is not used here.
    let config = SacConfig {
        hidden: case.hidden.clone(),
        batch_size: case.batch,
        cg_iters: case.cg_iters.max(1),
        cg_tol: 0.0,
        eta: 100.0,
        stack_hessian: super::StackHessian::Exact,
        curvature,
        curvature_batch,
        ..SacConfig::default()
    };
    let low = vec![-1.0; case.act_dim];
    let high = vec![1.0; case.act_dim];
    let mut agent = SacAgent::new(
        case.algo,
        &config,
        case.obs_dim,
        &low,
        &high,
        DType::F32,
        &mut rng,
    )?;
    let n = 10_000;
    let mut replay = ReplayBuffer::new(n, case.obs_dim, case.act_dim)?;
    let mut obs = vec![0f32; case.obs_dim];
    let mut next = vec![0f32; case.obs_dim];
    let mut act = vec![0f32; case.act_dim];
    for _ in 0..n {
        rng.fill_normal_f32(&mut obs);
        rng.fill_normal_f32(&mut next);
        for a in act.iter_mut() {
            *a = rng.uniform_range(-1.0, 1.0)? as f32;
        }
        let r = rng.normal_f64() as f32;
        let done = rng.uniform_f64() < 0.01;
        replay.push(&obs, &act, r, &next, done)?;
    }
    for _ in 0..case.warmup {
        super::update(&mut agent, &replay, &mut rng)?;
    }
    let mut samples = Vec::with_capacity(case.repeats);
    let mut cpu = Vec::with_capacity(case.repeats);
    let (mut cg_sum, mut cg_n) = (0.0, 0usize);
    for _ in 0..case.repeats {
        let (t, c) = (Instant::now(), process_cpu_seconds());
        for _ in 0..case.iters {
            let s = super::update(&mut agent, &replay, &mut rng)?;
            if let Some(c) = s.cg_iters {
                cg_sum += c;
                cg_n += 1;
            }
        }
        samples.push(case.iters as f64 / t.elapsed().as_secs_f64());
        cpu.push((process_cpu_seconds() - c) * 1e3 / case.iters as f64);
    }
    let median_of = |v: &[f64]| {
        let mut sorted = v.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        sorted[sorted.len() / 2]
    };
    let median = median_of(&samples);
    let cpu_ms = Some(median_of(&cpu)).filter(|c| c.is_finite());
    let stack = case.algo == Algo::StackSac;
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(UpdateBenchResult {
        case: case.clone(),
        threads,
        median,
        cg_iters_run: (cg_n > 0).then(|| cg_sum / cg_n as f64),
        samples,
        cpu_ms,
        curvature: stack.then_some(curvature),
        curvature_batch: curvature_batch.filter(|_| stack),
    })
}
