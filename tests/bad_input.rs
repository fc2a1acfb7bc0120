//! Bad input gives a clear one-line error, exit status ≠ 0, no panic and no file created
//! (the checks of the reliability issue, through `tests/common`'s `fails`).
#![cfg(feature = "trainer")]

mod common;

use common::{fails, tmp};

#[test]
fn thread_counts_beyond_the_machine_are_refused() {
    let dir = tmp("threads");
    let d = dir.to_str().unwrap();
    fails(
        &[
            "train",
            "--threads",
            "100000",
            "--steps",
            "300",
            "--run-dir",
            d,
        ],
        &["--threads 100000 is more than this machine can run"],
    );
    assert!(!dir.exists(), "a refused run created {d}");
    fails(
        &[
            "sweep",
            "--env",
            "Pendulum-v1",
            "--algo",
            "sac",
            "--set",
            "threads=100000",
            "--out",
            d,
        ],
        &["cell Pendulum-v1__sac__0", "--threads 100000"],
    );
    assert!(!dir.exists(), "a refused sweep created {d}");
}

#[test]
fn resume_without_the_latest_pointer_uses_the_newest_checkpoint() {
    let dir = tmp("no-latest");
    let d = dir.to_str().unwrap();
    let o = common::stackrl(&[
        "train",
        "--steps",
        "600",
        "--learning-starts",
        "200",
        "--hidden",
        "16,16",
        "--batch-size",
        "16",
        "--checkpoint-every",
        "200",
        "--keep-checkpoints",
        "3",
        "--eval-every",
        "0",
        "--eval-episodes",
        "1",
        "--progress",
        "none",
        "--run-dir",
        d,
    ]);
    assert!(o.status.success(), "{}", common::text(&o));
    let rows = common::metric_rows(&dir);
    std::fs::remove_file(dir.join("checkpoints/latest")).unwrap();
    let o = common::stackrl(&["train", "--resume", d, "--progress", "none"]);
    let t = common::text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("is missing; using the newest complete checkpoint, step_000000000600"),
        "{t}"
    );
    assert!(t.contains("already finished"), "{t}");
    assert_eq!(common::metric_rows(&dir), rows, "the run's metrics changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "render")]
#[test]
fn render_names_a_file_that_is_not_a_checkpoint() {
    let dir = tmp("render-ckpt");
    let run = dir.join("run");
    let o = common::stackrl(&[
        "train",
        "--steps",
        "300",
        "--learning-starts",
        "100",
        "--hidden",
        "16,16",
        "--batch-size",
        "16",
        "--eval-every",
        "0",
        "--eval-episodes",
        "1",
        "--progress",
        "none",
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::text(&o));
    std::fs::write(dir.join("afile"), "not a checkpoint").unwrap();
    let out = dir.join("x.mp4");
    let o = std::process::Command::new(common::BIN)
        .current_dir(&dir)
        .args([
            "render",
            "--run",
            "run",
            "--checkpoint",
            "afile",
            "--out",
            "x.mp4",
        ])
        .output()
        .unwrap();
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("error: afile is not a checkpoint nor a file of one"),
        "{t}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lab_theorems_refuses_tolerances_that_cannot_fail() {
    let dir = tmp("lab-tol");
    let d = dir.to_str().unwrap();
    for tol in ["inf", "NaN", "0", "-1e-9", "0.5"] {
        fails(
            &["lab", "theorems", &format!("--tol={tol}"), "--out", d],
            &["--tol must be finite, > 0 and at most 1e-3"],
        );
        assert!(!dir.exists(), "--tol {tol} created {d}");
    }
    fails(
        &["lab", "theorems", "--mdps", "100000000000", "--out", d],
        &["--mdps must be between 1 and 100000"],
    );
    assert!(!dir.exists());
}

#[test]
fn options_of_another_algorithm_are_refused() {
    let dir = tmp("foreign");
    let d = dir.to_str().unwrap();
    for (algo, flag, value, owner) in [
        ("sac", "--eta", "-1", "stack-sac only"),
        ("sac", "--cg-tol", "-1", "stack-sac and stac only"),
        ("sac", "--curvature-batch", "100000", "stack-sac only"),
        ("res-sac", "--eta", "0.5", "stack-sac only"),
        ("stack-sac", "--clip", "4", "res-sac only"),
        ("ac", "--lambda", "5", "stac only"),
        ("ac", "--cg-iters", "3", "stack-sac and stac only"),
        ("ac", "--implicit-max-ratio", "1", "stac only"),
        ("ac", "--stac-estimator", "paper", "stac only"),
    ] {
        let arg = format!("{flag}={value}");
        fails(
            &[
                "train",
                "--algo",
                algo,
                &arg,
                "--steps",
                "300",
                "--run-dir",
                d,
            ],
            &[&format!("{flag} applies to {owner}, not to --algo {algo}")],
        );
        assert!(!dir.exists(), "{algo} {arg} created {d}");
    }
    // The STAC-only --implicit-max-ratio: a finite ratio >= 0 or `off`; --algo sac refuses it.
    for value in ["-1", "nan", "inf", "x"] {
        let arg = format!("--implicit-max-ratio={value}");
        fails(
            &["train", "--algo", "stac", &arg, "--run-dir", d],
            &["expected a finite number >= 0 or `off`"],
        );
    }
    fails(
        &[
            "train",
            "--algo",
            "sac",
            "--implicit-max-ratio",
            "1",
            "--run-dir",
            d,
        ],
        &["--implicit-max-ratio"],
    );
    assert!(!dir.exists(), "a refused run created {d}");
}

#[test]
fn lab_learning_rates_must_be_finite_and_nothing_is_created() {
    let dir = tmp("lab-lr");
    let d = dir.to_str().unwrap();
    for (cmd, flag) in [
        ("dp", "--lr-actor=inf"),
        ("dp", "--lr-critic=NaN"),
        ("sample", "--lr-res=inf"),
        ("sample", "--lr-actor=inf"),
    ] {
        fails(
            &["lab", cmd, flag, "--out", d],
            &["learning rates must be finite and positive"],
        );
        assert!(!dir.exists(), "lab {cmd} {flag} created {d}");
    }
    fails(
        &["lab", "sample", "--eta=inf", "--out", d],
        &["η must be finite"],
    );
    assert!(!dir.exists());
}

#[test]
fn evaluation_sizes_are_bounded() {
    let dir = tmp("eval-episodes");
    let d = dir.to_str().unwrap();
    for algo in ["sac", "ac"] {
        fails(
            &[
                "train",
                "--algo",
                algo,
                "--eval-episodes",
                "100000000000",
                "--run-dir",
                d,
            ],
            &["eval_episodes must be between 1 and 100000"],
        );
        assert!(!dir.exists(), "{algo}: created {d}");
    }
}

#[test]
fn sizes_too_large_for_memory_are_errors_before_anything_is_created() {
    let dir = tmp("too-large");
    let d = dir.to_str().unwrap();
    let huge = "100000000000";
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--batch-size", huge, "--learning-starts", "200"],
            "--batch-size 100000000000",
        ),
        (
            &["train", "--steps", huge, "--buffer-size", huge],
            "--buffer-size 100000000000",
        ),
        (&["train", "--hidden", "1000000,1000000"], "--hidden"),
        (
            &[
                "train",
                "--algo",
                "ac",
                "--env",
                "CartPole-v1",
                "--epoch-steps",
                huge,
                "--steps",
                huge,
            ],
            "--epoch-steps 100000000000",
        ),
    ];
    for (args, option) in cases {
        let mut args = args.to_vec();
        args.extend(["--run-dir", d]);
        fails(&args, &[option, "of memory available"]);
        assert!(!dir.exists(), "{args:?} created {d}");
    }
    let lab: &[(&[&str], &str)] = &[
        (
            &["lab", "dp", "--iters", huge, "--log-every", "1"],
            "--iters",
        ),
        (&["lab", "sample", "--batch", huge], "--batch 100000000000"),
        (&["lab", "sample", "--episodes", huge], "--episodes"),
    ];
    for (args, option) in lab {
        let mut args = args.to_vec();
        args.extend(["--out", d]);
        fails(&args, &[option, "of memory available"]);
        assert!(!dir.exists(), "{args:?} created {d}");
    }
}

/// A small SAC run stopped at step 700, after its checkpoint of step 600.
fn interrupted_run(dir: &std::path::Path) {
    let o = common::stackrl(&[
        "train",
        "--steps",
        "1000",
        "--learning-starts",
        "200",
        "--hidden",
        "16,16",
        "--batch-size",
        "16",
        "--checkpoint-every",
        "300",
        "--eval-every",
        "500",
        "--eval-episodes",
        "1",
        "--interrupt-at",
        "700",
        "--progress",
        "none",
        "--run-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::text(&o));
    assert!(common::latest_checkpoint(dir).ends_with("step_000000000600"));
}

fn flip_byte_in_the_middle(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_checkpoints_and_metrics_are_refused_and_nothing_changes() {
    let base = tmp("damage");
    let run = base.join("run");
    interrupted_run(&run);
    let ckpt = |d: &std::path::Path| common::latest_checkpoint(d);
    type Damage = fn(&std::path::Path, &std::path::Path);
    let cases: &[(&str, Damage, &[&str])] = &[
        (
            "weights",
            |_, c| flip_byte_in_the_middle(&c.join("weights.safetensors")),
            &["weights.safetensors does not match its SHA-256"],
        ),
        (
            "replay",
            |_, c| flip_byte_in_the_middle(&c.join("replay.safetensors")),
            &["replay.safetensors does not match its SHA-256"],
        ),
        (
            "meta",
            |_, c| {
                let p = c.join("meta.json");
                let text = std::fs::read_to_string(&p).unwrap();
                let edited = text.replacen("\"episodes\": ", "\"episodes\": 1", 1);
                assert_ne!(text, edited);
                std::fs::write(&p, edited).unwrap();
            },
            &["meta.json"],
        ),
        (
            "manifest-removed",
            |_, c| std::fs::remove_file(c.join("manifest.json")).unwrap(),
            &["no manifest.json"],
        ),
        (
            "file-added",
            |_, c| std::fs::write(c.join("extra.bin"), "x").unwrap(),
            &["extra.bin is not listed"],
        ),
        (
            "csv",
            |r, _| flip_byte_in_the_middle(&r.join("metrics.csv")),
            &["metrics.csv differ from those the checkpoint recorded"],
        ),
        // The JSON lines are checked before the CSV is truncated: the CSV must survive.
        (
            "jsonl",
            |r, _| flip_byte_in_the_middle(&r.join("metrics.jsonl")),
            &["metrics.jsonl differ from those the checkpoint recorded"],
        ),
        (
            "events",
            |r, _| flip_byte_in_the_middle(&r.join("events.out.tfevents.stackrl")),
            &["event file was damaged or edited"],
        ),
    ];
    for (name, damage, needles) in cases {
        let copy = base.join(name);
        common::copy_dir(&run, &copy);
        damage(&copy, &ckpt(&copy));
        let before = common::snapshot(&copy);
        let mut needles = needles.to_vec();
        needles.push("bad checkpoint");
        fails(&["train", "--resume", copy.to_str().unwrap()], &needles);
        assert!(
            common::snapshot(&copy) == before,
            "{name}: a refused resume changed the run"
        );
    }
    // The undamaged run resumes.
    let o = common::stackrl(&["train", "--resume", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::text(&o));
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_run_in_use_is_refused() {
    let dir = tmp("in-use");
    interrupted_run(&dir);
    let before = common::snapshot(&dir);
    let held = stackrl::files::FileLock::try_take(&dir.join(".lock"))
        .unwrap()
        .expect("nobody else holds the lock");
    fails(
        &["train", "--resume", dir.to_str().unwrap()],
        &["in use by another stackrl process"],
    );
    assert!(
        common::snapshot(&dir) == before,
        "a refused resume changed the run"
    );
    drop(held);
    let o = common::stackrl(&["train", "--resume", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "render")]
#[test]
fn a_failed_render_keeps_the_existing_video_and_refuses_a_damaged_checkpoint() {
    let base = tmp("render-damaged");
    let run = base.join("run");
    interrupted_run(&run);
    flip_byte_in_the_middle(&common::latest_checkpoint(&run).join("weights.safetensors"));
    let old = base.join("old.mp4");
    std::fs::write(&old, "an earlier video").unwrap();
    let before = common::snapshot(&base);
    fails(
        &[
            "render",
            "--run",
            run.to_str().unwrap(),
            "--out",
            old.to_str().unwrap(),
        ],
        &["weights.safetensors does not match its SHA-256"],
    );
    assert!(
        common::snapshot(&base) == before,
        "a failed render changed or left files"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn checkpoints_from_before_checksums_still_resume_with_a_note() {
    let dir = tmp("legacy");
    interrupted_run(&dir);
    let reference = tmp("legacy-reference");
    common::copy_dir(&dir, &reference);
    // What an older stackrl wrote: no manifest, metrics positions without checksums.
    let ckpt = common::latest_checkpoint(&dir);
    std::fs::remove_file(ckpt.join("manifest.json")).unwrap();
    // Edited as text: the RNG state holds integers beyond what `serde_json::Value` keeps.
    let meta_path = ckpt.join("meta.json");
    let mut meta = std::fs::read_to_string(&meta_path).unwrap();
    meta = meta
        .lines()
        .filter(|l| !l.contains("_sha256\""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(",\n  }", "\n  }");
    std::fs::write(&meta_path, meta).unwrap();
    let o = common::stackrl(&["train", "--resume", dir.to_str().unwrap()]);
    let t = common::text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("without checkpoint checksums"), "{t}");
    let o = common::stackrl(&["train", "--resume", reference.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::text(&o));
    assert_eq!(
        common::metric_rows(&dir),
        common::metric_rows(&reference),
        "a legacy resume must continue the run exactly"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&reference).unwrap();
}
