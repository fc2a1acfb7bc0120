//! `stackrl sweep` and `stackrl report` as a user runs them: cells equal direct `stackrl
//! train` runs bit for bit, a sweep killed with SIGKILL (its whole process group) resumes
//! to the same metrics, failed cells are reported while the others finish, bad input
//! changes nothing, and the Ray executor (when `STACKRL_RAY_PYTHON` names a Python with
//! the pinned `ray`, as `.ci/run` sets it) gives the local executor's metrics.
#![cfg(feature = "trainer")]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, fails, metric_rows, snapshot, stackrl, text, tmp};

/// Small, fast cells (one Pendulum-v1 run is well under a second).
const SMALL: &[&str] = &[
    "--set",
    "hidden=16,16",
    "--set",
    "batch-size=16",
    "--set",
    "learning-starts=250",
    "--set",
    "eval-every=500",
    "--set",
    "eval-episodes=1",
    "--set",
    "log-every=100",
    "--set",
    "checkpoint-every=200",
];

/// The train options of the cell `sac-2-0`, seed `seed`, as a direct run gives them.
fn direct_args(seed: u64, steps: u64) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "train".into(),
        "--env=Pendulum-v1".into(),
        "--algo=sac".into(),
        format!("--seed={seed}"),
        format!("--steps={steps}"),
        "--critic-updates=2".into(),
    ];
    for pair in SMALL.chunks(2) {
        args.push(format!("--{}", pair[1]));
    }
    args.push("--progress=none".into());
    args
}

fn sweep_args(out: &Path, steps: u64, seeds: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "sweep".into(),
        "--env=Pendulum-v1".into(),
        "--algo=sac-2-0".into(),
        format!("--seeds={seeds}"),
        format!("--steps={steps}"),
        "--workers=1".into(),
        format!("--out={}", out.display()),
        "--progress=plain".into(),
    ];
    args.extend(SMALL.iter().map(|s| s.to_string()));
    args
}

fn run(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    stackrl(&refs)
}

#[test]
fn sweep_help_and_bad_input_change_nothing() {
    let o = stackrl(&["sweep", "--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for needle in [
        "--seeds",
        "--set",
        "--workers",
        "--executor",
        "ALGO-x-y",
        "resume",
    ] {
        assert!(t.contains(needle), "{needle} not in help:\n{t}");
    }
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    let base = ["sweep", "--env", "Pendulum-v1", "--out", o];
    let case = |extra: &[&str], needles: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        fails(&args, needles);
        assert!(!out.exists(), "{extra:?} created {}", out.display());
    };
    case(&["--algo", "ppo"], &["unknown algorithm 'ppo'"]);
    case(&["--algo", "sac-10-3"], &["only res-sac has a res-critic"]);
    case(&["--algo", "res-sac-1-0"], &["Res-SAC needs y"]);
    case(&["--algo", "sac", "--seeds", "3-1"], &["bad seeds"]);
    case(
        &["--algo", "sac", "--set", "seed=3"],
        &["the sweep sets this itself"],
    );
    case(
        &["--algo", "sac", "--set", "gamma"],
        &["expected KEY=VALUE"],
    );
    case(
        &["--algo", "sac", "--set", "gamma=2"],
        &["cell Pendulum-v1__sac__0", "gamma"],
    );
    case(
        &["--algo", "sac", "--set", "gamma=0.9,2"],
        &["__gamma=2__0", "gamma"],
    );
    case(&["--algo", "sac", "--set", "bogus=1"], &["bogus"]);
    case(
        &["--algo", "sac", "--set", "lambda=5"],
        &["applies to ac and stac only"],
    );
    case(
        &["--algo", "sac-10-0", "--set", "critic-updates=3"],
        &["conflicts with the label"],
    );
    case(&["--algo", "sac", "--workers", "0"], &["--workers"]);
    case(&["--algo", "sac", "--executor", "ray"], &["--ray-address"]);
    fails(
        &["sweep", "--env", "Nope-v0", "--algo", "sac", "--out", o],
        &["Nope-v0"],
    );
    assert!(!out.exists());
    fails(
        &["sweep", "--spec", "/nonexistent/spec.toml", "--out", o],
        &["cannot read"],
    );
    let spec = tmp("bad-spec.toml");
    std::fs::write(
        &spec,
        "algo = ['sac']\nenv = ['Pendulum-v1']\nworkerz = 2\n",
    )
    .unwrap();
    fails(
        &["sweep", "--spec", spec.to_str().unwrap(), "--out", o],
        &["unknown key 'workerz'"],
    );
    assert!(!out.exists());
    // A folder that is not a sweep's is refused, and left as it was.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let before = snapshot(&out);
    fails(
        &["sweep", "--env", "Pendulum-v1", "--algo", "sac", "--out", o],
        &["not empty"],
    );
    assert_eq!(snapshot(&out), before);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&spec).unwrap();
}

/// Spawns a sweep in its own process group and kills the whole group (SIGKILL) once the
/// first cell has written a checkpoint.
fn kill_sweep_midway(args: &[String], first_cell: &Path) -> bool {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let pointer = first_cell.join("checkpoints/latest");
    loop {
        let done = child.try_wait().unwrap().is_some();
        if pointer.exists() || done || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let midway = child.try_wait().unwrap().is_none();
    // SAFETY: signals the process group this test created.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    child.wait().unwrap();
    midway
}

#[test]
fn killed_sweep_resumes_to_the_metrics_of_direct_runs() {
    let base = tmp("resume");
    let out = base.join("sweep");
    let cells = base.join("cells");
    let steps = 1500;
    let mut args = sweep_args(&out, steps, "0-1");
    args.push(format!("--cells={}", cells.display()));
    let names = ["Pendulum-v1__sac-2-0__0", "Pendulum-v1__sac-2-0__1"];
    let midway = kill_sweep_midway(&args, &out.join(names[0]));
    eprintln!("killed midway: {midway}");
    // No orphaned child goes on writing: the cell's files stay as they are.
    let frozen = snapshot(&out.join(names[0]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        snapshot(&out.join(names[0])),
        frozen,
        "a cell kept running after the kill"
    );

    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    for (seed, name) in names.iter().enumerate() {
        let direct = base.join(format!("direct{seed}"));
        let mut d = direct_args(seed as u64, steps);
        d.push(format!("--run-dir={}", direct.display()));
        let o = run(&d);
        assert!(o.status.success(), "{}", text(&o));
        let rows = metric_rows(&out.join(name));
        assert_eq!(
            rows,
            metric_rows(&direct),
            "{name} differs from a direct run"
        );
        let mut unique = rows.clone();
        unique.dedup();
        assert_eq!(unique.len(), rows.len(), "duplicated rows in {name}");
        // The exported cell carries the evaluations.
        let eval = std::fs::read_to_string(cells.join(name).join("eval.csv")).unwrap();
        assert!(
            eval.starts_with("step,eval_mean,eval_std,time_s\n500,"),
            "{eval}"
        );
        assert_eq!(eval.lines().count(), 1 + 3);
    }
    // Rerun: everything is skipped. A different grid into the same folder is refused.
    let o = run(&args);
    assert!(
        text(&o).contains("2 of 2 cells finished before"),
        "{}",
        text(&o)
    );
    let before = snapshot(&out);
    let other = sweep_args(&out, steps, "0-2");
    let refs: Vec<&str> = other.iter().map(String::as_str).collect();
    fails(&refs, &["holds another sweep", "1 cells new"]);
    assert_eq!(snapshot(&out), before);
    // A fresh output folder with the committed cells: nothing to run.
    let mut fresh = sweep_args(&base.join("fresh"), steps, "0-1");
    fresh.push(format!("--cells={}", cells.display()));
    let o = run(&fresh);
    assert!(
        text(&o).contains("2 of 2 cells finished before"),
        "{}",
        text(&o)
    );

    // Reports from the sweep folder and from the exported cells agree.
    let (r1, r2) = (base.join("r1"), base.join("r2"));
    for (input, dest) in [(&out, &r1), (&cells, &r2)] {
        let o = stackrl(&[
            "report",
            input.to_str().unwrap(),
            "--out",
            dest.to_str().unwrap(),
            "--at",
            "1000",
            "--reps",
            "2000",
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let csv = std::fs::read_to_string(r1.join("summary.csv")).unwrap();
    assert_eq!(
        csv,
        std::fs::read_to_string(r2.join("summary.csv")).unwrap()
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "env,label,step,n,mean,std,iqm,ci_low,ci_high");
    assert_eq!(lines.len(), 1 + 3, "{csv}");
    assert!(lines[1].starts_with("Pendulum-v1,sac-2-0,500,2,"), "{csv}");
    for line in &lines[1..] {
        let f: Vec<f64> = line
            .split(',')
            .skip(4)
            .map(|x| x.parse().unwrap())
            .collect();
        let (iqm, lo, hi) = (f[2], f[3], f[4]);
        assert!(lo <= iqm && iqm <= hi, "{line}");
    }
    let md = std::fs::read_to_string(r1.join("summary.md")).unwrap();
    assert!(md.contains("| sac-2-0 |") && md.contains("(n=2)"), "{md}");
    for f in ["curves.png", "curves_time.png"] {
        let bytes = std::fs::read(r1.join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_failed_cell_is_reported_and_the_others_finish() {
    let base = tmp("failed");
    let out = base.join("sweep");
    let mut args = sweep_args(&out, 600, "0");
    // lr = 1e30 diverges at the first update: that cell fails, the other finishes.
    args.extend(["--set".to_string(), "lr=3e-4,1e30".to_string()]);
    let o = run(&args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        t.contains("1 of 2 cells failed")
            && t.contains(
                "Pendulum-v1__sac-2-0__lr=1e30__0 (exit status: 1: error: training stopped"
            ),
        "{t}"
    );
    assert!(
        t.contains("finished Pendulum-v1__sac-2-0__lr=3e-4__0"),
        "{t}"
    );
    let ok = out.join("Pendulum-v1__sac-2-0__lr=3e-4__0");
    assert!(
        out.join(".sweep/done/Pendulum-v1__sac-2-0__lr=3e-4__0.json")
            .exists()
    );
    assert!(!metric_rows(&ok).is_empty());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_second_sweep_on_the_same_folder_is_refused_while_the_first_runs() {
    let base = tmp("lock");
    let out = base.join("sweep");
    let args = sweep_args(&out, 20_000, "0");
    let mut first = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !out.join(".sweep/logs").exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&refs, &["in use by another sweep"]);
    // SAFETY: signals the process group this test created.
    unsafe {
        libc::kill(-(first.id() as i32), libc::SIGKILL);
    }
    first.wait().unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn report_rejects_bad_input_and_keeps_old_outputs() {
    let base = tmp("report-bad");
    std::fs::create_dir_all(&base).unwrap();
    let out = base.join("out");
    let o = out.to_str().unwrap();
    fails(&["report", "/nonexistent", "--out", o], &["not a folder"]);
    fails(
        &["report", base.to_str().unwrap(), "--out", o],
        &["no runs"],
    );
    assert!(!out.exists());
    // A run without evaluations yet.
    let run_dir = base.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(
        run_dir.join("config.json"),
        r#"{"env":"Pendulum-v1","algo":"sac","seed":0}"#,
    )
    .unwrap();
    std::fs::write(
        run_dir.join("metrics.jsonl"),
        "{\"event\":\"episode\",\"step\":200}\n",
    )
    .unwrap();
    fails(
        &["report", run_dir.to_str().unwrap(), "--out", o],
        &["no evaluations"],
    );
    // A corrupt line is an error naming the file and line.
    std::fs::write(
        run_dir.join("metrics.jsonl"),
        "{\"event\":\"eval\",\"step\":2\n",
    )
    .unwrap();
    fails(
        &["report", run_dir.to_str().unwrap(), "--out", o],
        &["metrics.jsonl line 1"],
    );
    // Values near f64::MAX neither hang nor abort.
    std::fs::write(
        run_dir.join("metrics.jsonl"),
        "{\"event\":\"eval\",\"step\":100,\"eval_mean\":1.7e308}\n\
         {\"event\":\"eval\",\"step\":200,\"eval_mean\":-1.7e308}\n\
         {\"event\":\"eval\",\"step\":300,\"eval_mean\":5.0}\n",
    )
    .unwrap();
    let r = stackrl(&[
        "report",
        run_dir.to_str().unwrap(),
        "--out",
        o,
        "--reps",
        "100",
    ]);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        std::fs::read(out.join("curves.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    fails(
        &[
            "report",
            run_dir.to_str().unwrap(),
            "--out",
            o,
            "--reps",
            "0",
        ],
        &["--reps"],
    );
    // `plot` draws the same values without hanging; a full disk is an error; a failed plot
    // leaves an existing figure as it was.
    let r = run_dir.to_str().unwrap();
    let fig = out.join("plot.png");
    let p = stackrl(&["plot", r, "--out", fig.to_str().unwrap()]);
    assert!(p.status.success(), "{}", text(&p));
    let before = std::fs::read(&fig).unwrap();
    fails(
        &[
            "plot",
            r,
            "--metric",
            "bogus",
            "--out",
            fig.to_str().unwrap(),
        ],
        &["no run has values"],
    );
    assert_eq!(std::fs::read(&fig).unwrap(), before);
    let full = base.join("full.png");
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    fails(
        &["plot", r, "--out", full.to_str().unwrap()],
        &["No space left"],
    );
    std::fs::remove_dir_all(&base).unwrap();
}

/// The Ray executor against a local head on 127.0.0.1, compared with the local executor.
#[test]
fn ray_executor_matches_the_local_executor() {
    let Ok(python) = std::env::var("STACKRL_RAY_PYTHON") else {
        eprintln!("skipped: set STACKRL_RAY_PYTHON to a Python with ray (as .ci/run does)");
        return;
    };
    let python = PathBuf::from(python);
    let ray = python.with_file_name("ray");
    let base = tmp("ray");
    let temp = base.join("ray-tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let start = Command::new(&ray)
        .args([
            "start",
            "--head",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            &format!("--port={port}"),
            "--include-dashboard=false",
            "--disable-usage-stats",
            &format!("--temp-dir={}", temp.display()),
        ])
        .output()
        .expect("ray start");
    assert!(start.status.success(), "ray start failed: {}", text(&start));
    let stop = || {
        let _ = Command::new(&ray).args(["stop", "--force"]).output();
    };
    let result = std::panic::catch_unwind(|| {
        let (local, remote) = (base.join("local"), base.join("ray"));
        let o = run(&sweep_args(&local, 1000, "0-1"));
        assert!(o.status.success(), "{}", text(&o));
        let mut args = sweep_args(&remote, 1000, "0-1");
        args.extend([
            "--executor=ray".to_string(),
            format!("--ray-address=127.0.0.1:{port}"),
            format!("--ray-python={}", python.display()),
        ]);
        let o = run(&args);
        assert!(o.status.success(), "{}", text(&o));
        for seed in 0..2 {
            let name = format!("Pendulum-v1__sac-2-0__{seed}");
            assert_eq!(
                metric_rows(&remote.join(&name)),
                metric_rows(&local.join(&name))
            );
        }
        // Resume through Ray: a rerun skips both cells.
        let o = run(&args);
        assert!(
            text(&o).contains("2 of 2 cells finished before"),
            "{}",
            text(&o)
        );
    });
    stop();
    let _ = std::fs::remove_dir_all(&base);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
