//! Helpers shared by the integration tests that run the `stackrl` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stackrl");

/// A fresh (removed) temporary path unique to this test process and `name`.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stackrl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `stackrl ARGS` to the end.
pub fn stackrl(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run stackrl")
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts that `stackrl ARGS` fails the way bad input must: exit status 1, a one-line
/// `error:` message on stderr containing every needle, and no panic. (Exit status 2 is
/// clap's, for values its parser rejects.)
pub fn fails(args: &[&str], needles: &[&str]) -> Output {
    let o = stackrl(args);
    let t = text(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "`stackrl {}` exited with {:?}:\n{t}",
        args.join(" "),
        o.status.code()
    );
    assert!(
        !t.contains("panicked at"),
        "`stackrl {}` panicked:\n{t}",
        args.join(" ")
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("error: ")),
        "`stackrl {}`: no `error:` line:\n{t}",
        args.join(" ")
    );
    for n in needles {
        assert!(
            t.contains(n),
            "`stackrl {}`: {n:?} not in:\n{t}",
            args.join(" ")
        );
    }
    o
}

/// The rows of a run's `metrics.jsonl` without the wall-clock columns.
pub fn metric_rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("sps");
            m.remove("time_s");
            v.to_string()
        })
        .collect()
}

/// Every file under `dir` with its bytes (for "nothing changed" checks).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    walk(dir, &mut out);
    out
}

/// Copies a folder recursively (a run directory, to damage the copy).
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// The checkpoint a run's `checkpoints/latest` names.
pub fn latest_checkpoint(dir: &Path) -> PathBuf {
    let name = std::fs::read_to_string(dir.join("checkpoints/latest")).unwrap();
    dir.join("checkpoints").join(name.trim())
}

/// Trains `stackrl train ARGS` twice, into `base/full` and `base/killed`; the second is
/// SIGKILLed once its `latest` checkpoint is `kill_after` (a `step_…` name) or later, then
/// continued with `--resume`. Asserts that the resumed run's metrics, as `rows` reads them
/// (without wall-clock columns), equal the uninterrupted run's. Returns whether the kill
/// landed before the run's end.
pub fn assert_kill_9_resume_matches(
    base: &Path,
    args: &[&str],
    kill_after: &str,
    rows: fn(&Path) -> Vec<String>,
) -> bool {
    use std::time::{Duration, Instant};
    let (full, killed) = (base.join("full"), base.join("killed"));
    let with_dir = |dir: &Path| {
        let mut a = vec!["train".to_string(), "--run-dir".into()];
        a.push(dir.to_str().unwrap().into());
        a.extend(args.iter().map(|s| s.to_string()));
        a
    };
    let o = Command::new(BIN).args(with_dir(&full)).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut child = Command::new(BIN)
        .args(with_dir(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let pointer = killed.join("checkpoints/latest");
    loop {
        let done = child.try_wait().unwrap().is_some();
        let reached = std::fs::read_to_string(&pointer)
            .map(|s| s.trim() >= kill_after)
            .unwrap_or(false);
        if reached || done || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed_midway = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "killed midway: {killed_midway}, latest checkpoint {:?}",
        latest_checkpoint(&killed)
    );
    let o = stackrl(&[
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        rows(&killed),
        rows(&full),
        "the resumed run's metrics differ"
    );
    killed_midway
}
