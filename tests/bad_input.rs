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
