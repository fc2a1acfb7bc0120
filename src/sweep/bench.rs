//! `stackrl bench sweep`: the local executor's own cost and its scaling over workers.
//!
//! * Overhead: one cell run directly (`stackrl train`) and the same cell through `stackrl
//!   sweep --workers 1`, alternated `repeats` times: the ratio of the wall-time medians
//!   minus one (process start, manifest, monitoring, export; on a shared machine this is
//!   within the runs' noise), and the executor's own CPU time (the sweep process's, its
//!   children excluded, as the sweep reports it) against the cell's wall time, which does
//!   not depend on the machine's load.
//! * Scaling: `cells` one-thread cells (seeds 0..cells) through `--workers 1` and through
//!   `--workers W`, alternated; the speed-up is the ratio of the medians.
//!
//! Every run is a child process of this one with its own temporary output folder (removed
//! afterwards), so nothing else is touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::SweepError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct SweepBenchConfig {
    /// Environment of the cells.
    pub env: String,
    /// Algorithm of the cells.
    pub algo: String,
    /// Steps per cell.
    pub steps: u64,
    /// Cells in the scaling runs.
    pub cells: u64,
    /// Workers of the parallel scaling run.
    pub workers: usize,
    /// Alternated repetitions of each measurement (medians are reported).
    pub repeats: usize,
    /// The `stackrl` binary.
    pub binary: PathBuf,
}

/// Medians of the measurements.
#[derive(Clone, Debug)]
pub struct SweepBenchResult {
    /// Wall seconds of each direct `train` run.
    pub direct_s: Vec<f64>,
    /// Wall seconds of each one-cell sweep.
    pub sweep_one_s: Vec<f64>,
    /// CPU seconds of the sweep process itself in each one-cell sweep.
    pub executor_cpu_s: Vec<f64>,
    /// Wall seconds of each `cells`-cell sweep with one worker.
    pub serial_s: Vec<f64>,
    /// Wall seconds of each `cells`-cell sweep with `workers` workers.
    pub parallel_s: Vec<f64>,
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn timed(binary: &Path, args: &[String]) -> Result<f64, SweepError> {
    timed_output(binary, args).map(|(s, _)| s)
}

fn timed_output(binary: &Path, args: &[String]) -> Result<(f64, String), SweepError> {
    let t = Instant::now();
    let out = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SweepError::Executor(format!("cannot run {}: {e}", binary.display())))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(SweepError::Executor(format!(
            "`stackrl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((secs, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The executor CPU seconds from a sweep's last line (`... (executor CPU 0.012 s)`).
fn executor_cpu(stdout: &str) -> Option<f64> {
    let tail = stdout.rsplit("executor CPU ").next()?;
    tail.split_whitespace().next()?.parse().ok()
}

/// Runs the measurements in a temporary folder.
pub fn bench_sweep(c: &SweepBenchConfig) -> Result<SweepBenchResult, SweepError> {
    if c.repeats == 0 || c.cells == 0 || c.workers == 0 || c.steps == 0 {
        return Err(SweepError::Spec(
            "--repeats, --cells, --workers and --steps must be at least 1".into(),
        ));
    }
    let root = std::env::temp_dir().join(format!("stackrl-bench-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|source| SweepError::Io {
        path: root.clone(),
        source,
    })?;
    let result = (|| {
        let mut r = SweepBenchResult {
            direct_s: Vec::new(),
            sweep_one_s: Vec::new(),
            executor_cpu_s: Vec::new(),
            serial_s: Vec::new(),
            parallel_s: Vec::new(),
        };
        let sweep = |out: &Path, seeds: &str, workers: usize| -> Vec<String> {
            vec![
                "sweep".into(),
                format!("--env={}", c.env),
                format!("--algo={}", c.algo),
                format!("--seeds={seeds}"),
                format!("--steps={}", c.steps),
                format!("--workers={workers}"),
                format!("--out={}", out.display()),
                "--progress=plain".into(),
            ]
        };
        for i in 0..c.repeats {
            eprintln!("round {}/{}: overhead ...", i + 1, c.repeats);
            let direct = root.join(format!("direct{i}"));
            r.direct_s.push(timed(
                &c.binary,
                &[
                    "train".into(),
                    format!("--env={}", c.env),
                    format!("--algo={}", c.algo),
                    "--seed=0".into(),
                    format!("--steps={}", c.steps),
                    format!("--run-dir={}", direct.display()),
                    "--progress=plain".into(),
                ],
            )?);
            let (secs, stdout) =
                timed_output(&c.binary, &sweep(&root.join(format!("one{i}")), "0", 1))?;
            r.sweep_one_s.push(secs);
            r.executor_cpu_s.push(executor_cpu(&stdout).ok_or_else(|| {
                SweepError::Executor(format!("the sweep printed no executor CPU time: {stdout}"))
            })?);
            let seeds = format!("0-{}", c.cells - 1);
            eprintln!(
                "round {}/{}: {} cells, 1 and {} workers ...",
                i + 1,
                c.repeats,
                c.cells,
                c.workers
            );
            r.serial_s.push(timed(
                &c.binary,
                &sweep(&root.join(format!("serial{i}")), &seeds, 1),
            )?);
            r.parallel_s.push(timed(
                &c.binary,
                &sweep(&root.join(format!("parallel{i}")), &seeds, c.workers),
            )?);
        }
        Ok(r)
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// The result as a Markdown table.
pub fn format_table(c: &SweepBenchConfig, r: &SweepBenchResult) -> String {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (d, o) = (median(&r.direct_s), median(&r.sweep_one_s));
    let cpu = median(&r.executor_cpu_s);
    let (s, p) = (median(&r.serial_s), median(&r.parallel_s));
    format!(
        "| measurement | median s | runs (s) | ratio |\n|---|---|---|---|\n\
         | `train` directly, 1 cell ({env}, {algo}, {steps} steps) | {d:.2} | {} | |\n\
         | `sweep --workers 1`, the same cell | {o:.2} | {} | wall overhead {:+.2} % |\n\
         | executor's own CPU in that sweep | {cpu:.3} | {} | {:.3} % of the cell's wall time |\n\
         | `sweep --workers 1`, {n} cells | {s:.2} | {} | |\n\
         | `sweep --workers {w}`, {n} cells | {p:.2} | {} | speed-up {:.2}× |\n",
        list(&r.direct_s),
        list(&r.sweep_one_s),
        100.0 * (o / d - 1.0),
        r.executor_cpu_s
            .iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * cpu / d,
        list(&r.serial_s),
        list(&r.parallel_s),
        s / p,
        env = c.env,
        algo = c.algo,
        steps = c.steps,
        n = c.cells,
        w = c.workers,
    )
}
