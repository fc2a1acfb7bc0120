//! The embedded local executor: `workers` threads, each running one cell at a time as a
//! child `stackrl train` process.
//!
//! A crash of one cell (a panic, an abort, a signal) ends only that child; its exit status
//! and last error line are reported and the other cells go on. Every child is started with
//! `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the worker thread that started it: a
//! `kill -9` of the sweep alone (not only of its process group) leaves no orphaned training
//! runs writing into the folder that the next sweep resumes.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::{Event, Job, Outcome, SweepError, outcome_of, parse_train_line};

/// Runs `jobs` on `workers` threads with `binary`, reporting to `events`. Returns once
/// every job has ended (failed cells are events, not errors); errors only if a worker
/// could not start a child at all.
pub fn run(
    jobs: &[Job],
    workers: usize,
    binary: &Path,
    events: Sender<Event>,
) -> Result<(), SweepError> {
    let queue = Mutex::new(jobs.iter().collect::<VecDeque<&Job>>());
    let workers = workers.clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let events = events.clone();
                let queue = &queue;
                scope.spawn(move || -> Result<(), SweepError> {
                    loop {
                        let Some(job) = queue.lock().map_err(poisoned)?.pop_front() else {
                            return Ok(());
                        };
                        let outcome = run_job(job, binary, &events)?;
                        // A closed channel means the sweep is ending; nothing to report to.
                        let _ = events.send(Event::Finished(job.cell, outcome));
                    }
                })
            })
            .collect();
        let mut first = Ok(());
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(SweepError::Executor("a worker panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

fn poisoned<T>(_: T) -> SweepError {
    SweepError::Executor("a worker panicked".into())
}

/// Runs one cell to its end and returns its outcome.
pub fn run_job(job: &Job, binary: &Path, events: &Sender<Event>) -> Result<Outcome, SweepError> {
    if let Some(parent) = job.log.parent() {
        fs::create_dir_all(parent).map_err(|source| SweepError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.log)
        .map_err(|source| SweepError::Io {
            path: job.log.clone(),
            source,
        })?;
    let log = Arc::new(Mutex::new(log));
    if let Ok(mut l) = log.lock() {
        let _ = writeln!(l, "$ stackrl {}", job.args.join(" "));
    }
    let mut command = Command::new(binary);
    command
        .args(&job.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| SweepError::Executor(format!("cannot start {}: {e}", binary.display())))?;
    let _ = events.send(Event::Started(job.cell));
    let stderr = child.stderr.take();
    let err_log = Arc::clone(&log);
    let stderr_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(s) = stderr {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if let Ok(mut l) = err_log.lock() {
                    let _ = writeln!(l, "{line}");
                }
                lines.push(line);
                if lines.len() > 200 {
                    lines.drain(..100);
                }
            }
        }
        lines
    });
    let mut out_lines = Vec::new();
    if let Some(s) = child.stdout.take() {
        for line in BufReader::new(s).lines().map_while(Result::ok) {
            if let Ok(mut l) = log.lock() {
                let _ = writeln!(l, "{line}");
            }
            match parse_train_line(&line) {
                Some(Event::Step(_, step)) => {
                    let _ = events.send(Event::Step(job.cell, step));
                }
                _ => out_lines.push(line),
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| SweepError::Executor(format!("waiting for a cell: {e}")))?;
    let err_lines = stderr_thread.join().unwrap_or_default();
    let outcome = outcome_of(
        status.success(),
        &status.to_string(),
        &out_lines,
        &err_lines,
    );
    if let Ok(mut l) = log.lock() {
        let _ = writeln!(l, "# {status}: {outcome:?}");
    }
    Ok(outcome)
}
