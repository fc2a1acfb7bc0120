//! The Ray executor: every cell becomes a task of an existing Ray cluster (resources: the
//! cell's `--threads` CPUs) that runs the `stackrl` binary on a worker.
//!
//! Ray's API is Python, so the binary starts a small driver (`ray_driver.py`, embedded in
//! the binary and written to `OUT/.sweep/ray_driver.py`) with `--ray-python` (default
//! `python3`, which must have the `ray` package). The driver reads the jobs as JSON on
//! stdin, submits them, and prints one JSON line per event; this module turns those into
//! the same [`Event`]s as the local executor, so display, outcomes, `done` markers and
//! exported cells are shared.
//!
//! **Storage:** the run directories live in the sweep's `--out`, which must be at the same
//! path on every node (a shared filesystem such as NFS; on one machine, trivially). Each
//! task decides on its worker whether to start the run or `--resume` it, so a task that Ray
//! retries after its worker died continues from the last checkpoint, and the determinism
//! and resume guarantees are those of `stackrl train --resume`. The binary and
//! `libmujoco.so.3.17.0` (found through the binary's rpath) must be at the same path on
//! every node as well; see the README.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;

use serde_json::Value;

use super::{Event, Job, Outcome, SweepError, outcome_of, write_atomic};

/// The driver's source, written next to the sweep's state.
pub const DRIVER: &str = include_str!("ray_driver.py");

/// Options of the Ray executor.
#[derive(Clone, Debug)]
pub struct RayOptions {
    /// `HOST:PORT` of the cluster's head (GCS), as `ray start --head` prints it.
    pub address: String,
    /// The Python interpreter that has `ray`.
    pub python: PathBuf,
    /// The sweep's state folder (`OUT/.sweep`), where the driver is written.
    pub state_dir: PathBuf,
}

/// Runs `jobs` as Ray tasks, reporting to `events`.
pub fn run(
    jobs: &[Job],
    options: &RayOptions,
    binary: &Path,
    events: Sender<Event>,
) -> Result<(), SweepError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let driver = options.state_dir.join("ray_driver.py");
    write_atomic(&driver, DRIVER.as_bytes())?;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let binary = abs(binary);
    let job_list: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let run_dir = abs(&j.run_dir);
            // The resume form of the same cell, chosen on the worker (see the module docs).
            let resume_args = vec![
                "train".to_string(),
                format!("--resume={}", run_dir.display()),
                "--progress=plain".into(),
            ];
            let fresh_args: Vec<String> = j
                .args
                .iter()
                .map(|a| match a.strip_prefix("--run-dir=") {
                    Some(_) => format!("--run-dir={}", run_dir.display()),
                    None => a.clone(),
                })
                .collect();
            serde_json::json!({
                "cell": j.cell,
                "fresh_args": if j.args.iter().any(|a| a.starts_with("--resume=")) {
                    resume_args.clone()
                } else {
                    fresh_args
                },
                "resume_args": resume_args,
                "run_dir": run_dir,
                "log": abs(&j.log),
                "threads": j.threads,
            })
        })
        .collect();
    let request = serde_json::json!({
        "address": options.address,
        "binary": binary,
        "jobs": job_list,
    });
    let mut child = Command::new(&options.python)
        .arg(&driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            SweepError::Executor(format!(
                "cannot start the Ray driver with {}: {e} (give --ray-python, an interpreter \
                 with the ray package)",
                options.python.display()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .map_err(|e| SweepError::Executor(format!("cannot talk to the Ray driver: {e}")))?;
    }
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut lines: Vec<String> = Vec::new();
        if let Some(s) = stderr {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                lines.push(line);
                if lines.len() > 200 {
                    lines.drain(..100);
                }
            }
        }
        lines
    });
    let mut finished = std::collections::BTreeSet::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(cell) = v.get("cell").and_then(Value::as_u64).map(|c| c as usize) else {
                continue;
            };
            match v.get("event").and_then(Value::as_str) {
                Some("started") => {
                    let _ = events.send(Event::Started(cell));
                }
                Some("finished") => {
                    finished.insert(cell);
                    let _ = events.send(Event::Finished(cell, task_outcome(&v)));
                }
                _ => {}
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| SweepError::Executor(format!("waiting for the Ray driver: {e}")))?;
    let err_lines = err_thread.join().unwrap_or_default();
    if finished.len() < jobs.len() {
        // The driver died (or never reached the cluster): every unreported cell failed.
        let why = err_lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| status.to_string());
        for j in jobs.iter().filter(|j| !finished.contains(&j.cell)) {
            let _ = events.send(Event::Finished(
                j.cell,
                Outcome::Failed {
                    status: format!("ray driver {status}"),
                    error: why.clone(),
                },
            ));
        }
        if finished.is_empty() {
            return Err(SweepError::Executor(format!(
                "the Ray driver failed ({status}): {why}"
            )));
        }
    }
    Ok(())
}

/// The outcome of a finished Ray task from the driver's JSON line.
fn task_outcome(v: &Value) -> Outcome {
    let lines = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let code = v.get("returncode").and_then(Value::as_i64);
    let status = match code {
        Some(c) if c < 0 => format!("signal: {}", -c),
        Some(c) => format!("exit status: {c}"),
        None => "ray task failed".into(),
    };
    outcome_of(code == Some(0), &status, &lines("stdout"), &lines("stderr"))
}
