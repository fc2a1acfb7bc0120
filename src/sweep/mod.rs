//! `stackrl sweep`: a grid of `stackrl train` runs (environments × algorithm labels ×
//! option axes × seeds), one child process per cell, on this machine ([`local`], the
//! default) or as tasks of a Ray cluster ([`ray`]).
//!
//! # The output folder
//!
//! ```text
//! OUT/sweep.json           the cells (name, env, label, seed, train options) and their hash
//! OUT/<cell name>/         an ordinary run directory, exactly what `stackrl train` writes
//! OUT/.sweep/lock          advisory lock: one sweep process per folder
//! OUT/.sweep/logs/<cell>.log   the cell's stdout and stderr (appended on every attempt)
//! OUT/.sweep/done/<cell>.json  written when the cell's run has finished
//! ```
//!
//! A second sweep with different cells into the same folder is refused (the hash differs).
//!
//! # Resume
//!
//! Each cell is run as `stackrl train --run-dir OUT/<cell> ...` the first time and as
//! `stackrl train --resume OUT/<cell>` once its run directory exists, so the trainer's
//! own exact resume does the work: after `kill -9` of the sweep (its children die with it,
//! see [`local`]) or a restart, the same command skips finished cells, continues unfinished
//! ones from their last checkpoint and rewrites the metrics after it exactly. A cell's
//! metrics therefore equal those of a direct `stackrl train` with the same options, bit for
//! bit (all but the wall-clock columns): the cell *is* that command.
//!
//! # Committed cells
//!
//! With `--cells DIR` (a study's `docs/studies/<name>/cells/`), each finished cell's small
//! files (`config.json`, `cell.json`, `eval.csv`: see [`export_cell`]) are written to
//! `DIR/<cell>/` as it finishes, and a cell already there is skipped even when `OUT` is gone
//! (a fresh machine). `stackrl report` reads those files alone.

pub mod bench;
pub mod local;
pub mod ray;
pub mod spec;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use spec::{Cell, Grid, SetOption, SweepSpec, parse_label, parse_seeds, parse_set};

/// The sweep's manifest in its output folder.
pub const MANIFEST: &str = "sweep.json";
/// The sweep's own state folder inside the output folder.
pub const STATE_DIR: &str = ".sweep";
/// The file a finished cell's exported summary lives in.
pub const CELL_FILE: &str = "cell.json";
/// The exported evaluation curve of a cell.
pub const EVAL_FILE: &str = "eval.csv";

/// Errors of a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A bad grid, spec file or option.
    #[error("{0}")]
    Spec(String),
    /// The output folder holds another sweep, or is in use.
    #[error("{0}")]
    Folder(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The executor could not run (a child could not start, Ray is unreachable, ...).
    #[error("{0}")]
    Executor(String),
    /// Some cells failed (the others ran to the end).
    #[error("{failed} of {total} cells failed: {details}")]
    CellsFailed {
        /// Failed cells.
        failed: usize,
        /// Cells of the sweep.
        total: usize,
        /// One line per failed cell.
        details: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// [`crate::files::write_atomic`], with the sweep's error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    crate::files::write_atomic(path, bytes).map_err(io_err(path))
}

/// How a cell's attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The run reached its last step (now or before).
    Done,
    /// The run stopped before its end without an error (e.g. `--interrupt-at`).
    Interrupted,
    /// The child failed: its exit status and last error line.
    Failed {
        /// Exit status as text (`exit status: 1`, `signal: 9 (SIGKILL)`).
        status: String,
        /// The last `error:` line (or last line) of its stderr.
        error: String,
    },
}

/// What an executor reports about a cell (by index into the sweep's job list).
#[derive(Clone, Debug)]
pub enum Event {
    /// The cell's process started.
    Started(usize),
    /// The cell reached this environment step.
    Step(usize, u64),
    /// The cell's process ended.
    Finished(usize, Outcome),
}

/// One cell to run: the `stackrl` arguments (after the binary) and where its log goes.
#[derive(Clone, Debug)]
pub struct Job {
    /// Index of the cell in the sweep.
    pub cell: usize,
    /// Arguments of the `stackrl` binary (`train ...`).
    pub args: Vec<String>,
    /// The cell's run directory.
    pub run_dir: PathBuf,
    /// Its log file (appended).
    pub log: PathBuf,
    /// CPUs it uses (its `--threads`).
    pub threads: usize,
    /// Its total steps, if known (for the display).
    pub steps: Option<u64>,
}

/// Parses one line of `stackrl train` output: `step N/T | ...` (progress) or the summary.
pub fn parse_train_line(line: &str) -> Option<Event> {
    let rest = line.strip_prefix("step ")?;
    let (n, _) = rest.split_once('/')?;
    n.trim().parse().ok().map(|s| Event::Step(usize::MAX, s))
}

/// The outcome of a `stackrl train` child from its exit status, stdout and stderr lines.
pub fn outcome_of(success: bool, status: &str, stdout: &[String], stderr: &[String]) -> Outcome {
    if success {
        if stdout
            .iter()
            .any(|l| l.starts_with("done:") || l.contains("already finished"))
        {
            return Outcome::Done;
        }
        if stdout.iter().any(|l| l.starts_with("stopped at step")) {
            return Outcome::Interrupted;
        }
    }
    let error = stderr
        .iter()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or_else(|| stderr.iter().rev().find(|l| !l.trim().is_empty()))
        .cloned()
        .unwrap_or_else(|| "(no output on stderr)".into());
    Outcome::Failed {
        status: if success {
            "exit status: 0 without a summary line".into()
        } else {
            status.to_string()
        },
        error,
    }
}

/// What the sweep found a cell's state to be before running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Finished in an earlier sweep (its `done` marker or its committed files).
    Finished,
    /// Started before: continue from its last checkpoint.
    Resume,
    /// Not started.
    Fresh,
}

/// Options of [`run_sweep`].
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// The output folder.
    pub out: PathBuf,
    /// Cells running at once.
    pub workers: usize,
    /// Where finished cells' small files go (a study's `cells/` folder).
    pub cells_dir: Option<PathBuf>,
    /// The `stackrl` binary the cells run (default: this process's executable).
    pub binary: PathBuf,
    /// Show a progress bar (a terminal) or print one line per cell event.
    pub bar: bool,
}

/// Summary of a finished sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepSummary {
    /// Cells of the sweep.
    pub total: usize,
    /// Cells skipped because they had finished before.
    pub skipped: usize,
    /// Cells that finished in this call.
    pub done: usize,
    /// Cells stopped early without error.
    pub interrupted: usize,
    /// Failed cells: name and outcome.
    pub failed: Vec<(String, Outcome)>,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// CPU seconds of the sweep process itself (every thread, without its children): the
    /// executor's own cost.
    pub executor_cpu_s: f64,
}

/// CPU seconds (user + system) this process has used so far, children excluded.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// The contents of `sweep.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub format: u32,
    /// Hash of the cells ([`spec::cells_json`]).
    pub hash: String,
    /// The spec's name.
    pub name: Option<String>,
    /// The cells.
    pub cells: Vec<Cell>,
}

impl Manifest {
    /// The manifest of these cells.
    pub fn new(name: Option<String>, cells: Vec<Cell>) -> Self {
        let hash = crate::train::checkpoint::json_hash(&spec::cells_json(&cells));
        Self {
            format: 1,
            hash,
            name,
            cells,
        }
    }

    /// Reads `dir/sweep.json`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Self>, SweepError> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| SweepError::Folder(format!("{} is corrupt: {e}", path.display())))?;
        let expect = crate::train::checkpoint::json_hash(&spec::cells_json(&m.cells));
        if m.hash != expect {
            return Err(SweepError::Folder(format!(
                "{} is corrupt: its cells do not match its hash",
                path.display()
            )));
        }
        Ok(Some(m))
    }
}

/// An advisory lock on the output folder, held while the sweep runs.
pub struct FolderLock {
    _lock: crate::files::FileLock,
}

impl FolderLock {
    /// Takes the lock on `dir/.sweep/lock`, or says that another sweep holds it.
    pub fn take(dir: &Path) -> Result<Self, SweepError> {
        let state = dir.join(STATE_DIR);
        fs::create_dir_all(&state).map_err(io_err(&state))?;
        let path = state.join("lock");
        match crate::files::FileLock::try_take(&path).map_err(io_err(&path))? {
            Some(lock) => Ok(Self { _lock: lock }),
            None => Err(SweepError::Folder(format!(
                "{} is in use by another sweep (lock {}); wait for it or stop it",
                dir.display(),
                path.display()
            ))),
        }
    }
}

/// Checks `out` for a sweep with other cells, creates it and writes the manifest.
/// Nothing is created if the check fails.
pub fn prepare_folder(out: &Path, manifest: &Manifest) -> Result<FolderLock, SweepError> {
    if out.exists() && !out.is_dir() {
        return Err(SweepError::Folder(format!(
            "--out {} exists and is not a folder",
            out.display()
        )));
    }
    if let Some(old) = Manifest::read(out)? {
        if old.hash != manifest.hash {
            let old_names: std::collections::BTreeSet<&str> =
                old.cells.iter().map(|c| c.name.as_str()).collect();
            let new_names: std::collections::BTreeSet<&str> =
                manifest.cells.iter().map(|c| c.name.as_str()).collect();
            let added = new_names.difference(&old_names).count();
            let removed = old_names.difference(&new_names).count();
            return Err(SweepError::Folder(format!(
                "{} holds another sweep ({} cells, hash {}); this one has {} cells, hash {} \
                 ({added} cells new, {removed} gone, the rest with other options); use another \
                 --out, or rerun the original command to continue it",
                out.display(),
                old.cells.len(),
                &old.hash[..12.min(old.hash.len())],
                manifest.cells.len(),
                &manifest.hash[..12.min(manifest.hash.len())],
            )));
        }
    } else if out.is_dir()
        && fs::read_dir(out)
            .map_err(io_err(out))?
            .filter_map(Result::ok)
            .any(|e| e.file_name() != STATE_DIR)
    {
        return Err(SweepError::Folder(format!(
            "--out {} is not empty and holds no {MANIFEST}; choose a new folder",
            out.display()
        )));
    }
    fs::create_dir_all(out).map_err(io_err(out))?;
    let lock = FolderLock::take(out)?;
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| SweepError::Executor(format!("cannot serialise the manifest: {e}")))?;
    write_atomic(&out.join(MANIFEST), text.as_bytes())?;
    for sub in ["logs", "done"] {
        let p = out.join(STATE_DIR).join(sub);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
    }
    Ok(lock)
}

/// Whether `dir` (a study's `cells/` folder) holds the finished cell `name`.
pub fn committed(dir: &Path, name: &str) -> bool {
    let path = dir.join(name).join(CELL_FILE);
    fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("finished").and_then(Value::as_bool))
        .unwrap_or(false)
}

/// The state of `cell` in `out` (and in `cells_dir`, if given).
pub fn cell_state(out: &Path, cells_dir: Option<&Path>, cell: &Cell) -> CellState {
    let done = out
        .join(STATE_DIR)
        .join("done")
        .join(format!("{}.json", cell.name));
    if done.exists() || cells_dir.is_some_and(|d| committed(d, &cell.name)) {
        CellState::Finished
    } else if out
        .join(&cell.name)
        .join(crate::train::run_dir::CONFIG_FILE)
        .exists()
    {
        CellState::Resume
    } else {
        CellState::Fresh
    }
}

/// The `stackrl` arguments that run `cell` in `run_dir` in state `state`.
pub fn train_args(cell: &Cell, run_dir: &Path, state: CellState) -> Vec<String> {
    let mut args = vec!["train".to_string()];
    match state {
        CellState::Resume => args.push(format!("--resume={}", run_dir.display())),
        _ => {
            args.extend(cell.args.iter().cloned());
            args.push(format!("--run-dir={}", run_dir.display()));
        }
    }
    args.push("--progress=plain".into());
    args
}

/// Reads the rows of a run's `metrics.jsonl` (unparseable lines are an error).
pub fn read_metrics_rows(
    run_dir: &Path,
) -> Result<Vec<serde_json::Map<String, Value>>, SweepError> {
    let path = run_dir.join("metrics.jsonl");
    let file = fs::File::open(&path).map_err(io_err(&path))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_err(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => rows.push(m),
            _ => {
                return Err(SweepError::Folder(format!(
                    "{} line {}: not a JSON object",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(rows)
}

/// Writes a finished cell's small files to `dir/<cell>/`: its `config.json`, `eval.csv`
/// (`step,eval_mean,eval_std,time_s` of every evaluation) and `cell.json` (name, env,
/// label, seed, steps, `finished`, the largest `td_abs_max` and the run's wall time).
/// The folder is built beside the target and renamed into place.
pub fn export_cell(run_dir: &Path, cell: &Cell, dir: &Path) -> Result<PathBuf, SweepError> {
    let config_path = run_dir.join(crate::train::run_dir::CONFIG_FILE);
    let config_text = fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let config: Value = serde_json::from_str(&config_text)
        .map_err(|e| SweepError::Folder(format!("{}: {e}", config_path.display())))?;
    let rows = read_metrics_rows(run_dir)?;
    let mut csv = String::from("step,eval_mean,eval_std,time_s\n");
    let mut td_max: Option<f64> = None;
    let mut wall: Option<f64> = None;
    let num = |r: &serde_json::Map<String, Value>, k: &str| r.get(k).and_then(Value::as_f64);
    for r in &rows {
        if let Some(t) = num(r, "td_abs_max").filter(|t| t.is_finite()) {
            td_max = Some(td_max.map_or(t, |m: f64| m.max(t)));
        }
        if let Some(t) = num(r, "time_s") {
            wall = Some(t);
        }
        if r.get("event").and_then(Value::as_str) == Some("eval") {
            let fmt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
            csv.push_str(&format!(
                "{},{},{},{}\n",
                num(r, "step").map(|s| s as u64).unwrap_or(0),
                fmt(num(r, "eval_mean")),
                fmt(num(r, "eval_std")),
                fmt(num(r, "time_s")),
            ));
        }
    }
    let summary = serde_json::json!({
        "name": cell.name,
        "env": cell.env,
        "label": cell.label,
        "seed": cell.seed,
        "steps": config.get("steps"),
        "finished": true,
        "td_abs_max": td_max,
        "wall_s": wall,
    });
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let target = dir.join(&cell.name);
    let tmp = dir.join(format!(".{}.tmp{}", cell.name, std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let write = |name: &str, bytes: &[u8]| write_atomic(&tmp.join(name), bytes);
    write(crate::train::run_dir::CONFIG_FILE, config_text.as_bytes())?;
    write(EVAL_FILE, csv.as_bytes())?;
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| SweepError::Executor(e.to_string()))?;
    write(CELL_FILE, format!("{text}\n").as_bytes())?;
    if target.exists() {
        fs::remove_dir_all(&target).map_err(io_err(&target))?;
    }
    fs::rename(&tmp, &target).map_err(io_err(&target))?;
    Ok(target)
}

/// Which executor runs the cells.
pub enum ExecutorKind {
    /// Child processes on this machine ([`local`]).
    Local,
    /// Tasks of a Ray cluster ([`ray`]).
    Ray(ray::RayOptions),
}

/// Runs the sweep: prepares `options.out`, then runs every cell that has not finished
/// (through `executor`), exporting finished cells to `options.cells_dir`. Returns the
/// summary, or [`SweepError::CellsFailed`] after all cells ran if any failed.
pub fn run_sweep(
    spec: &SweepSpec,
    executor: &ExecutorKind,
    options: &SweepOptions,
) -> Result<SweepSummary, SweepError> {
    let started = Instant::now();
    let cells = spec.cells()?;
    if options.workers == 0 {
        return Err(SweepError::Spec("--workers must be at least 1".into()));
    }
    let manifest = Manifest::new(spec.name.clone(), cells.clone());
    let _lock = prepare_folder(&options.out, &manifest)?;
    let out = &options.out;
    let mut summary = SweepSummary {
        total: cells.len(),
        ..Default::default()
    };
    let mut jobs = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let state = cell_state(out, options.cells_dir.as_deref(), cell);
        if state == CellState::Finished {
            summary.skipped += 1;
            // A cell finished here but not yet exported (killed in between): export now.
            if let Some(d) = &options.cells_dir
                && !committed(d, &cell.name)
                && out.join(&cell.name).is_dir()
            {
                export_cell(&out.join(&cell.name), cell, d)?;
            }
            continue;
        }
        let run_dir = out.join(&cell.name);
        jobs.push(Job {
            cell: i,
            args: train_args(cell, &run_dir, state),
            run_dir,
            log: out
                .join(STATE_DIR)
                .join("logs")
                .join(format!("{}.log", cell.name)),
            threads: cell.threads,
            steps: cell_steps(cell),
        });
    }
    let mut display = Display::new(&cells, &jobs, options.bar, summary.skipped);
    let (tx, rx) = mpsc::channel::<Event>();
    let result = std::thread::scope(|scope| {
        let jobs_ref = &jobs;
        let handle = scope.spawn(move || match executor {
            ExecutorKind::Local => local::run(jobs_ref, options.workers, &options.binary, tx),
            ExecutorKind::Ray(ray) => ray::run(jobs_ref, ray, &options.binary, tx),
        });
        let mut first_error = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Event::Finished(i, outcome)) => {
                    let cell = &cells[i];
                    if outcome == Outcome::Done {
                        let marker = out
                            .join(STATE_DIR)
                            .join("done")
                            .join(format!("{}.json", cell.name));
                        let r = write_atomic(&marker, b"{\"finished\": true}\n").and_then(|_| {
                            match &options.cells_dir {
                                Some(d) => export_cell(&out.join(&cell.name), cell, d).map(|_| ()),
                                None => Ok(()),
                            }
                        });
                        if let Err(e) = r {
                            first_error.get_or_insert(e);
                        }
                        summary.done += 1;
                    } else if outcome == Outcome::Interrupted {
                        summary.interrupted += 1;
                    } else {
                        summary.failed.push((cell.name.clone(), outcome.clone()));
                    }
                    display.finished(i, &outcome);
                }
                Ok(Event::Started(i)) => display.started(i),
                Ok(Event::Step(i, s)) => display.step(i, s),
                Err(mpsc::RecvTimeoutError::Timeout) => display.tick(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let executor_result = handle
            .join()
            .unwrap_or_else(|_| Err(SweepError::Executor("the executor thread panicked".into())));
        match (first_error, executor_result) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    });
    display.finish();
    result?;
    summary.wall_s = started.elapsed().as_secs_f64();
    summary.executor_cpu_s = own_cpu_seconds();
    if !summary.failed.is_empty() {
        let details = summary
            .failed
            .iter()
            .map(|(name, o)| match o {
                Outcome::Failed { status, error } => format!("{name} ({status}: {error})"),
                _ => name.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(SweepError::CellsFailed {
            failed: summary.failed.len(),
            total: summary.total,
            details,
        });
    }
    Ok(summary)
}

/// The cell's `--steps`, if its options give it.
fn cell_steps(cell: &Cell) -> Option<u64> {
    cell.args
        .iter()
        .find_map(|a| a.strip_prefix("--steps="))
        .and_then(|s| s.parse().ok())
}

/// The sweep's progress display: a bar on a terminal (cells done/running/failed, each
/// running cell's step, ETA), otherwise one line per cell start and end.
struct Display {
    names: Vec<String>,
    steps_total: HashMap<usize, u64>,
    step: HashMap<usize, u64>,
    first_step: HashMap<usize, (u64, Instant)>,
    running: Vec<usize>,
    done: usize,
    failed: usize,
    bar: Option<indicatif::ProgressBar>,
    remaining_steps: u64,
}

impl Display {
    fn new(cells: &[Cell], jobs: &[Job], bar: bool, skipped: usize) -> Self {
        let bar = (bar && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(cells.len() as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "sweep [{elapsed_precise}] {bar:30} {pos}/{len} cells {msg}",
            ) {
                b.set_style(style);
            }
            b.set_position(skipped as u64);
            b
        });
        let steps_total: HashMap<usize, u64> = jobs
            .iter()
            .filter_map(|j| j.steps.map(|s| (j.cell, s)))
            .collect();
        let remaining_steps = steps_total.values().sum();
        if bar.is_none() && skipped > 0 {
            println!(
                "sweep: {skipped} of {} cells finished before; skipped",
                cells.len()
            );
        }
        Self {
            names: cells.iter().map(|c| c.name.clone()).collect(),
            steps_total,
            step: HashMap::new(),
            first_step: HashMap::new(),
            running: Vec::new(),
            done: skipped,
            failed: 0,
            bar,
            remaining_steps,
        }
    }

    fn started(&mut self, i: usize) {
        self.running.push(i);
        if self.bar.is_none() {
            println!("sweep: started {}", self.names[i]);
        }
        self.tick();
    }

    fn step(&mut self, i: usize, s: u64) {
        self.first_step.entry(i).or_insert((s, Instant::now()));
        self.step.insert(i, s);
    }

    fn finished(&mut self, i: usize, outcome: &Outcome) {
        self.running.retain(|&r| r != i);
        let name = &self.names[i];
        let line = match outcome {
            Outcome::Done => {
                self.done += 1;
                format!("sweep: finished {name}")
            }
            Outcome::Interrupted => format!("sweep: {name} stopped early (no error)"),
            Outcome::Failed { status, error } => {
                self.failed += 1;
                format!("sweep: FAILED {name} ({status}): {error}")
            }
        };
        if let Some(t) = self.steps_total.remove(&i) {
            self.remaining_steps = self.remaining_steps.saturating_sub(t);
        }
        match &self.bar {
            Some(b) => {
                b.println(&line);
                b.set_position((self.done + self.failed) as u64);
            }
            None => println!("{line}"),
        }
        self.tick();
    }

    /// Steps per second over the running cells, from their first reported step.
    fn rate(&self) -> f64 {
        self.running
            .iter()
            .filter_map(|i| {
                let (s0, t0) = self.first_step.get(i)?;
                let s = *self.step.get(i)?;
                let dt = t0.elapsed().as_secs_f64();
                (dt > 1.0 && s > *s0).then(|| (s - s0) as f64 / dt)
            })
            .sum()
    }

    fn tick(&mut self) {
        let Some(bar) = &self.bar else { return };
        let cells: Vec<String> = self
            .running
            .iter()
            .map(|i| match (self.step.get(i), self.steps_total.get(i)) {
                (Some(s), Some(t)) => format!("{} {s}/{t}", self.names[*i]),
                (Some(s), None) => format!("{} {s}", self.names[*i]),
                _ => self.names[*i].clone(),
            })
            .collect();
        let left: u64 = self.remaining_steps.saturating_sub(
            self.running
                .iter()
                .filter_map(|i| self.step.get(i))
                .sum::<u64>(),
        );
        let rate = self.rate();
        let eta = if rate > 0.0 && left > 0 {
            format!(" | ETA {}", format_duration(left as f64 / rate))
        } else {
            String::new()
        };
        bar.set_message(format!(
            "| {} running, {} failed{eta} | {}",
            self.running.len(),
            self.failed,
            cells.join(", ")
        ));
        bar.tick();
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// `3725` → `1h02m`.
pub fn format_duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_from_train_output() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            outcome_of(
                true,
                "exit status: 0",
                &s(&["step 1/2 | x", "done: 2 steps"]),
                &[]
            ),
            Outcome::Done
        );
        assert_eq!(
            outcome_of(
                true,
                "",
                &s(&["runs/x already finished (2 steps); nothing to do"]),
                &[]
            ),
            Outcome::Done
        );
        assert_eq!(
            outcome_of(true, "", &s(&["stopped at step 5 (1 updates)"]), &[]),
            Outcome::Interrupted
        );
        assert_eq!(
            outcome_of(
                false,
                "exit status: 1",
                &[],
                &s(&["warn", "error: bad thing", ""])
            ),
            Outcome::Failed {
                status: "exit status: 1".into(),
                error: "error: bad thing".into()
            }
        );
        assert!(matches!(
            parse_train_line("step 300/600 | 120 steps/s | x"),
            Some(Event::Step(_, 300))
        ));
        assert!(parse_train_line("done: x").is_none());
        assert_eq!(format_duration(3725.0), "1h02m");
    }
}
