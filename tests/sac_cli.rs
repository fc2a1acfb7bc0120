//! `stackrl train` as a user runs it: help, bad inputs (clear message, exit status ≠ 0),
//! corrupt and mismatched checkpoints, and a run killed with SIGKILL then resumed, whose
//! metrics equal an uninterrupted run's.
#![cfg(feature = "trainer")]

use std::path::Path;
use std::process::Output;

mod common;
use common::{copy_dir, fails, latest_checkpoint as latest, metric_rows, stackrl, text, tmp};

use serde_json::Value;

/// Small, fast settings for runs through the binary.
const SMALL: &[&str] = &[
    "--hidden",
    "16,16",
    "--batch-size",
    "16",
    "--learning-starts",
    "250",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--log-every",
    "100",
    "--checkpoint-every",
    "200",
    "--progress",
    "none",
];

fn run_small(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--run-dir", dir.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    stackrl(&args)
}

#[test]
fn train_help_explains_every_option() {
    let o = stackrl(&["train", "--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for flag in [
        "--env",
        "--algo",
        "--seed",
        "--steps",
        "--hidden",
        "--activation",
        "--batch-size",
        "--buffer-size",
        "--gamma",
        "--tau",
        "--lr",
        "--learning-starts",
        "--env-steps-per-update",
        "--critic-updates",
        "--res-updates",
        "--clip",
        "--eta",
        "--cg-iters",
        "--cg-tol",
        "--cg-warm-start",
        "--curvature",
        "--curvature-batch",
        "--init-alpha",
        "--target-entropy",
        "--eval-every",
        "--eval-episodes",
        "--checkpoint-every",
        "--keep-checkpoints",
        "--log-every",
        "--threads",
        "--config",
        "--resume",
        "--run-dir",
        "--runs-root",
        "--progress",
        "--interrupt-at",
    ] {
        assert!(t.contains(flag), "{flag} missing from --help");
    }
    assert!(t.contains("Table 3") && t.contains("[default: 128,128]"));
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let d = tmp("bad");
    let dir = d.to_str().unwrap();
    fails(
        &["train", "--algo", "ppo", "--run-dir", dir],
        &["unknown algorithm 'ppo'", "sac, res-sac, stack-sac"],
    );
    fails(
        &["train", "--env", "Nope-v9", "--run-dir", dir],
        &["unknown environment id 'Nope-v9'", "Pendulum-v1"],
    );
    fails(
        &["train", "--env", "CartPole-v1", "--run-dir", dir],
        &["sac needs a continuous (Box) action space", "Discrete(2)"],
    );
    fails(&["train", "--steps", "0"], &["--steps", "0"]);
    fails(&["train", "--batch-size", "0"], &["--batch-size", "0"]);
    fails(&["train", "--steps", "-5"], &["-5"]);
    fails(
        &[
            "train",
            "--algo",
            "sac",
            "--res-updates",
            "2",
            "--run-dir",
            dir,
        ],
        &["res_updates"],
    );
    fails(
        &[
            "train",
            "--algo",
            "res-sac",
            "--env",
            "Hopper-v5",
            "--run-dir",
            dir,
        ],
        &["--clip", "Table 3"],
    );
    fails(
        &["train", "--lr", "NaN", "--run-dir", dir],
        &["--lr must be finite"],
    );
    // Stack-SAC's curvature options.
    fails(
        &["train", "--curvature", "gauss"],
        &["--curvature", "fast, autodiff"],
    );
    fails(
        &["train", "--curvature-batch", "0"],
        &["--curvature-batch", "0"],
    );
    let stack = [
        "train",
        "--algo",
        "stack-sac",
        "--batch-size",
        "64",
        "--run-dir",
        dir,
    ];
    fails(
        &[&stack[..], &["--curvature-batch", "65"]].concat(),
        &["curvature_batch must be in 1..=batch_size (64), got 65"],
    );
    fails(
        &[
            &stack[..],
            &["--curvature-batch", "16", "--curvature", "autodiff"],
        ]
        .concat(),
        &["curvature_batch needs the fast curvature engine"],
    );
    fails(
        &[
            "train",
            "--algo",
            "stac",
            "--env",
            "CartPole-v1",
            "--curvature-batch",
            "16",
        ],
        &["--curvature-batch applies to the SAC family"],
    );
    // Config files: unknown keys and bad values are named.
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("cfg.json");
    std::fs::write(&cfg, r#"{"stepz": 10}"#).unwrap();
    fails(
        &["train", "--config", cfg.to_str().unwrap()],
        &["unknown option `stepz`"],
    );
    std::fs::write(&cfg, r#"{"steps": 0}"#).unwrap();
    fails(
        &["train", "--config", cfg.to_str().unwrap()],
        &["steps must be positive"],
    );
    std::fs::write(&cfg, "{not json").unwrap();
    fails(
        &["train", "--config", cfg.to_str().unwrap()],
        &["not valid JSON"],
    );
    // An unwritable run directory (its parent is a regular file).
    let file = d.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("run");
    fails(
        &["train", "--run-dir", under_file.to_str().unwrap()],
        &["cannot use run directory"],
    );
    // Resuming something that is not a run.
    fails(
        &["train", "--resume", d.to_str().unwrap()],
        &["not a run directory"],
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_refused() {
    let base = tmp("ckpt");
    let run = base.join("run");
    // Interrupted after the checkpoint at step 200.
    let o = run_small(&run, &["--steps", "400", "--interrupt-at", "300"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(latest(&run).ends_with("step_000000000200"));

    // Corrupt weights.
    let c = base.join("corrupt");
    copy_dir(&run, &c);
    let w = latest(&c).join("weights.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["train", "--resume", c.to_str().unwrap()],
        &[
            "bad checkpoint",
            "weights.safetensors has",
            "the checkpoint recorded",
        ],
    );
    // Missing replay buffer.
    let c2 = base.join("missing");
    copy_dir(&run, &c2);
    std::fs::remove_file(latest(&c2).join("replay.safetensors")).unwrap();
    fails(&["train", "--resume", c2.to_str().unwrap()], &["replay"]);
    // A dangling `latest`.
    let c3 = base.join("dangling");
    copy_dir(&run, &c3);
    std::fs::write(c3.join("checkpoints/latest"), "step_000000099999\n").unwrap();
    fails(
        &["train", "--resume", c3.to_str().unwrap()],
        &["does not exist"],
    );

    // Mismatches: other network sizes or algorithm in config.json.
    for (key, value, needle) in [
        ("hidden", serde_json::json!([32, 32]), "hidden sizes"),
        ("algo", serde_json::json!("stack-sac"), "algorithm"),
        ("gamma", serde_json::json!(0.95), "configuration hash"),
    ] {
        let m = base.join(format!("mismatch-{key}"));
        copy_dir(&run, &m);
        let p = m.join("config.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v[key] = value;
        std::fs::write(&p, v.to_string()).unwrap();
        fails(
            &["train", "--resume", m.to_str().unwrap()],
            &["checkpoint does not match", needle],
        );
    }
    // A checkpoint of another run (Res-SAC) dropped into this one.
    let other = base.join("other");
    let o = run_small(
        &other,
        &[
            "--algo",
            "res-sac",
            "--steps",
            "400",
            "--interrupt-at",
            "300",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let m = base.join("foreign");
    copy_dir(&run, &m);
    let ck = latest(&m);
    std::fs::remove_dir_all(&ck).unwrap();
    copy_dir(&latest(&other), &ck);
    fails(
        &["train", "--resume", m.to_str().unwrap()],
        &["checkpoint does not match"],
    );
    // --resume takes no run options.
    fails(
        &["train", "--resume", run.to_str().unwrap(), "--algo", "sac"],
        &["remove --algo"],
    );
    // The original still resumes and finishes.
    let o = stackrl(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("done: 400 steps"), "{}", text(&o));
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn nan_loss_exits_nonzero_and_keeps_the_checkpoint() {
    let d = tmp("nan");
    // First update at step 250 (after the checkpoint of step 200) blows up.
    let o = run_small(&d, &["--steps", "1000", "--lr", "1e30"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("not finite") && t.contains("last good checkpoint"),
        "{t}"
    );
    assert!(latest(&d).ends_with("step_000000000200"), "{t}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn kill_9_then_resume_gives_the_uninterrupted_metrics() {
    let base = tmp("kill");
    let mut args = SMALL.to_vec();
    args.extend(["--steps", "3000"]);
    common::assert_kill_9_resume_matches(&base, &args, "step_000000000400", metric_rows);
    std::fs::remove_dir_all(&base).unwrap();
}
