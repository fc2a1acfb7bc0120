//! The AC / STAC trainer (`stackrl::train::on_policy`, `stackrl train --algo ac|stac`) end to
//! end on CartPole-v1: a short run learns, the same seed gives the same metrics, a run
//! stopped part-way (or killed with SIGKILL) and resumed writes exactly the metrics of an
//! uninterrupted one, a diverging run stops with a clear error and keeps its last good
//! checkpoint, and bad inputs are clear errors with exit status ≠ 0.
#![cfg(feature = "trainer")]

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{copy_dir, fails, latest_checkpoint as latest, stackrl, text};

use serde_json::{Map, Value, json};
use stackrl::train::on_policy::{self, COLUMNS, OnPolicyTrainConfig, TIMING_COLUMNS};
use stackrl::train::{ProgressMode, RunOptions};

/// One Candle thread; second-order gradients for STAC (before any backward pass).
fn setup() {
    stackrl::train::configure_threads(1).unwrap();
    stackrl::autodiff::enable_second_order().unwrap();
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stackrl-onpolicy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        run_dir: Some(dir.to_path_buf()),
        progress: ProgressMode::None,
        ..RunOptions::default()
    }
}

fn config(pairs: Value) -> OnPolicyTrainConfig {
    let Value::Object(o) = pairs else {
        panic!("not an object")
    };
    OnPolicyTrainConfig::from_layers(None, &o).unwrap()
}

/// The metrics rows without the wall-clock columns, as text (bit-exact numbers).
fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            for c in TIMING_COLUMNS {
                v.as_object_mut().unwrap().remove(*c);
            }
            v.to_string()
        })
        .collect()
}

fn events(dir: &Path, event: &str) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == event)
        .map(|v| v.as_object().unwrap().clone())
        .collect()
}

/// 10 epochs of 1000 steps with Adam (0.01, 0.01) and k = 10: the budget of
/// `tests/stac_train.rs` that learns CartPole on every seed tried there.
fn quick(algo: &str) -> OnPolicyTrainConfig {
    config(json!({
        "algo": algo, "steps": 10000, "epoch_steps": 1000, "optimizer": "adam",
        "lr_actor": 0.01, "lr_critic": 0.01, "critic_steps": 10,
        "eval_every": 0, "eval_episodes": 5, "checkpoint_every": 0,
    }))
}

#[test]
fn short_cartpole_runs_rise_well_above_a_random_policy() {
    setup();
    for algo in ["ac", "stac"] {
        let d = tmp(&format!("learn-{algo}"));
        let s = on_policy::train(&quick(algo), &options(&d)).unwrap();
        assert_eq!((s.steps, s.updates), (10000, 10));
        let train = events(&d, "train");
        assert_eq!(train.len(), 10);
        let ret = |i: usize| train[i]["mean_return"].as_f64().unwrap();
        let late = (ret(7) + ret(8) + ret(9)) / 3.0;
        let eval = s.final_eval.unwrap().mean();
        eprintln!(
            "{algo}: first epoch {:.1}, epochs 8-10 {late:.1}, eval {eval:.1}",
            ret(0)
        );
        // A uniformly random policy averages about 22.
        assert!(ret(0) < 35.0, "the first epoch is near random: {}", ret(0));
        assert!(late > 60.0, "{algo}: mean return of epochs 8-10 is {late}");
        assert!(eval > 60.0, "{algo}: final deterministic evaluation {eval}");
        if algo == "stac" {
            assert!(train.iter().all(|r| r["cg_iters"].as_u64().unwrap() >= 1));
            assert!(
                train
                    .iter()
                    .any(|r| r["implicit_grad_norm"].as_f64().unwrap() > 0.0)
            );
        }
        let ev = events(&d, "eval");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["step"], 10000);
        // One episode row per finished episode, at increasing steps.
        let eps = events(&d, "episode");
        let n: u64 = train.iter().map(|r| r["episodes"].as_u64().unwrap()).sum();
        assert_eq!(eps.len() as u64, n);
        assert!(
            eps.windows(2)
                .all(|w| w[0]["step"].as_u64() < w[1]["step"].as_u64())
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn a_zero_implicit_ratio_makes_stac_take_ac_steps_and_a_bound_caps_the_implicit_term() {
    setup();
    let run = |algo: &str, ratio: Value| {
        let d = tmp(&format!("ratio-{algo}-{ratio}"));
        let mut c = resumable(algo);
        c.implicit_max_ratio = ratio.as_f64();
        c.lambda = 0.0;
        c.lambda_decay = 1.0;
        c.cg_warm_start = false;
        on_policy::train(&c, &options(&d)).unwrap();
        let train = events(&d, "train");
        let returns: Vec<Value> = events(&d, "episode")
            .iter()
            .map(|r| r["episode_return"].clone())
            .collect();
        std::fs::remove_dir_all(&d).unwrap();
        (train, returns)
    };
    // ρ = 0: the implicit term is scaled to nothing, every step is AC's, so the episodes
    // (which use the same random stream) are AC's too.
    let (_, ac_returns) = run("ac", Value::Null);
    let (stac0, stac0_returns) = run("stac", json!(0.0));
    assert_eq!(stac0_returns, ac_returns);
    assert!(stac0.iter().all(|r| r["implicit_grad_norm"] == json!(0.0)));
    // ρ = 0.5: the implicit term never exceeds half the direct one.
    let (stac, _) = run("stac", json!(0.5));
    for r in &stac {
        let (d, i) = (
            r["direct_grad_norm"].as_f64().unwrap(),
            r["implicit_grad_norm"].as_f64().unwrap(),
        );
        assert!(i <= 0.5 * d * (1.0 + 1e-5), "implicit {i} vs direct {d}");
    }
}

/// Everything that must survive a checkpoint: Adam moments, the λ schedule, the CG warm
/// start, the RNG, the counters and the metrics positions.
fn resumable(algo: &str) -> OnPolicyTrainConfig {
    config(json!({
        "algo": algo, "steps": 4000, "epoch_steps": 500, "optimizer": "adam",
        "lr_actor": 0.01, "lr_critic": 0.01, "critic_steps": 3, "hidden": [16, 16],
        "lambda": 1.0, "lambda_decay": 0.9, "cg_iters": 3, "cg_warm_start": true,
        "eval_every": 1000, "eval_episodes": 2, "checkpoint_every": 1000,
    }))
}

#[test]
fn resume_after_interruption_equals_the_uninterrupted_run() {
    setup();
    for algo in ["ac", "stac"] {
        let cfg = resumable(algo);
        let (full, again, part) = (
            tmp(&format!("full-{algo}")),
            tmp(&format!("again-{algo}")),
            tmp(&format!("part-{algo}")),
        );
        let s_full = on_policy::train(&cfg, &options(&full)).unwrap();
        on_policy::train(&cfg, &options(&again)).unwrap();
        assert_eq!(
            rows(&full),
            rows(&again),
            "{algo}: same seed, other numbers"
        );
        // Stopped at the end of epoch 5 (step 2500); the checkpoint is the one of step 2000.
        let mut opts = options(&part);
        opts.interrupt_at = Some(2300);
        let s_part = on_policy::train(&cfg, &opts).unwrap();
        assert!(s_part.interrupted && s_part.steps == 2500, "{s_part:?}");
        let latest = std::fs::read_to_string(part.join("checkpoints/latest")).unwrap();
        assert_eq!(latest.trim(), "step_000000002000");
        assert!(rows(&part).len() < rows(&full).len());
        let s_res = on_policy::resume(&part, &options(&part)).unwrap();
        assert!(!s_res.interrupted && !s_res.already_finished);
        assert_eq!(s_res.final_eval, s_full.final_eval);
        assert_eq!(rows(&part), rows(&full), "{algo}: resumed metrics differ");
        // The CSV has the fixed header and the same number of rows.
        let csv = std::fs::read_to_string(part.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(csv.lines().count(), rows(&full).len() + 1);
        // Resuming a finished run does nothing.
        assert!(
            on_policy::resume(&part, &options(&part))
                .unwrap()
                .already_finished
        );
        // Another seed gives other numbers.
        let other = tmp(&format!("other-{algo}"));
        let cfg1 = OnPolicyTrainConfig { seed: 1, ..cfg };
        on_policy::train(&cfg1, &options(&other)).unwrap();
        assert_ne!(rows(&other), rows(&full));
        for d in [full, again, part, other] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

#[test]
fn resume_before_the_first_checkpoint_restarts_identically() {
    setup();
    let cfg = resumable("stac");
    let (full, part) = (tmp("early-full"), tmp("early-part"));
    on_policy::train(&cfg, &options(&full)).unwrap();
    let mut opts = options(&part);
    opts.interrupt_at = Some(500);
    assert!(on_policy::train(&cfg, &opts).unwrap().interrupted);
    assert!(!part.join("checkpoints/latest").exists());
    on_policy::resume(&part, &options(&part)).unwrap();
    assert_eq!(rows(&part), rows(&full));
    for d in [full, part] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

// ---- through the binary ----

/// Small, fast settings for runs through the binary.
const SMALL: &[&str] = &[
    "--env",
    "CartPole-v1",
    "--hidden",
    "16,16",
    "--epoch-steps",
    "500",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--checkpoint-every",
    "1000",
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
fn help_explains_the_on_policy_options() {
    let o = stackrl(&["train", "--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for flag in [
        "--epoch-steps",
        "--critic-steps",
        "--lambda",
        "--lambda-decay",
        "--lambda-min",
        "--lr-actor",
        "--lr-critic",
        "--gae-lambda",
        "--optimizer",
        "--init-log-std",
        "--normalize-advantages",
        "--cg-iters",
        "--stack-hessian",
        "[ac/stac]",
        "[SAC family]",
        "ac, stac",
    ] {
        assert!(t.contains(flag), "{flag} missing from --help:\n{t}");
    }
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let d = tmp("bad");
    let dir = d.to_str().unwrap();
    // `stackrl train --algo ALGO --env CartPole-v1 --run-dir DIR EXTRA...`.
    let op = |algo: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--algo",
            algo,
            "--env",
            "CartPole-v1",
            "--run-dir",
            dir,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let ac = |extra: &[&str]| op("ac", extra);
    let f = |args: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&a, needles);
    };
    f(
        vec!["train".into(), "--algo".into(), "ppo".into()],
        &[
            "unknown algorithm 'ppo'",
            "sac, res-sac, stack-sac, ac, stac",
        ],
    );
    f(
        op("stac", &["--lambda", "-1"]),
        &["lambda must be finite and >= 0", "-1"],
    );
    f(
        ac(&["--critic-steps", "0"]),
        &["critic_steps", "at least 1"],
    );
    f(
        ac(&["--init-log-std", "-1"]),
        &[
            "init_log_std",
            "continuous (Box) action spaces only",
            "Discrete(2)",
        ],
    );
    for (flag, value) in [
        ("--eta", "0.5"),
        ("--res-updates", "2"),
        ("--clip", "1"),
        ("--buffer-size", "1000"),
        ("--batch-size", "64"),
        ("--lr", "0.001"),
    ] {
        f(
            op("stac", &[flag, value]),
            &[flag, "applies to the SAC family", "not to --algo stac"],
        );
    }
    for (flag, value) in [
        ("--critic-steps", "80"),
        ("--lambda", "500"),
        ("--lr-actor", "0.1"),
    ] {
        fails(
            &["train", "--algo", "sac", flag, value, "--run-dir", dir],
            &[flag, "applies to ac and stac only", "not to --algo sac"],
        );
    }
    fails(
        &[
            "train",
            "--algo",
            "stac",
            "--env",
            "Nope-v9",
            "--run-dir",
            dir,
        ],
        &["unknown environment id 'Nope-v9'", "CartPole-v1"],
    );
    fails(
        &["train", "--algo", "ac", "--steps", "0"],
        &["--steps", "0"],
    );
    fails(
        &["train", "--algo", "ac", "--epoch-steps", "0"],
        &["--epoch-steps", "0"],
    );
    f(
        ac(&["--steps", "5000", "--epoch-steps", "3000"]),
        &["multiple of epoch_steps"],
    );
    f(ac(&["--lr-actor=-0.1"]), &["lr_actor", "> 0"]);
    f(ac(&["--gamma", "1.5"]), &["gamma"]);
    f(ac(&["--lr-critic", "NaN"]), &["--lr-critic must be finite"]);
    // Config files: options of the other family and unknown keys are named.
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("cfg.json");
    std::fs::write(&cfg, r#"{"algo": "stac", "eta": 0.5}"#).unwrap();
    fails(
        &["train", "--config", cfg.to_str().unwrap()],
        &["`eta`", "applies to the SAC family"],
    );
    std::fs::write(&cfg, r#"{"algo": "ac", "stepz": 10}"#).unwrap();
    fails(
        &["train", "--config", cfg.to_str().unwrap()],
        &["unknown option `stepz`"],
    );
    std::fs::write(&cfg, r#"{"algo": "ac", "lambda": -3}"#).unwrap();
    fails(
        &["train", "--config", cfg.to_str().unwrap()],
        &["lambda", "-3"],
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_refused() {
    let base = tmp("ckpt");
    let run = base.join("run");
    // Stopped at step 1500, after the checkpoint of step 1000.
    let o = run_small(
        &run,
        &[
            "--algo",
            "stac",
            "--steps",
            "3000",
            "--interrupt-at",
            "1500",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(latest(&run).ends_with("step_000000001000"));

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
    let c2 = base.join("missing");
    copy_dir(&run, &c2);
    std::fs::remove_file(latest(&c2).join("optimizer.safetensors")).unwrap();
    fails(
        &["train", "--resume", c2.to_str().unwrap()],
        &["bad checkpoint", "missing", "optimizer.safetensors"],
    );
    let c3 = base.join("meta");
    copy_dir(&run, &c3);
    std::fs::write(latest(&c3).join("meta.json"), "{").unwrap();
    fails(
        &["train", "--resume", c3.to_str().unwrap()],
        &[
            "bad checkpoint",
            "meta.json has 1 bytes",
            "damaged or replaced",
        ],
    );
    for (key, value, needle) in [
        ("hidden", json!([32, 32]), "hidden sizes"),
        ("algo", json!("ac"), "algorithm"),
        ("lr_critic", json!(0.5), "configuration hash"),
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
    fails(
        &["train", "--resume", run.to_str().unwrap(), "--lambda", "3"],
        &["remove --lambda"],
    );
    let o = stackrl(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("done: 3000 steps"), "{}", text(&o));
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn nan_loss_exits_nonzero_and_keeps_the_last_good_checkpoint() {
    let d = tmp("nan");
    // Plain gradient steps with αw = 0.5 blow the critic up after a few epochs.
    let o = run_small(
        &d,
        &[
            "--algo",
            "ac",
            "--steps",
            "20000",
            "--lr-critic",
            "0.5",
            "--critic-steps",
            "10",
        ],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("not finite") && t.contains("last good checkpoint"),
        "{t}"
    );
    let step: u64 = t
        .split("training stopped at step ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no step in {t}"));
    if d.join("checkpoints/latest").exists() {
        let ck = latest(&d);
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(ck.join("meta.json")).unwrap()).unwrap();
        assert!(meta["step"].as_u64().unwrap() < step);
        assert_eq!(meta["finished"], false);
        assert!(t.contains(ck.to_str().unwrap()), "{t}");
    } else {
        assert!(t.contains("no checkpoint was written yet"), "{t}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn kill_9_then_resume_gives_the_uninterrupted_metrics() {
    let base = tmp("kill");
    let mut args = SMALL.to_vec();
    args.extend(["--algo", "stac", "--steps", "20000", "--critic-steps", "20"]);
    common::assert_kill_9_resume_matches(&base, &args, "step_000000002000", rows);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn config_file_then_command_line() {
    let d = tmp("layers");
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"algo": "stac", "epoch_steps": 500, "steps": 1000, "hidden": [8], "lambda": 2.5}"#,
    )
    .unwrap();
    let run = d.join("run");
    let o = stackrl(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--steps",
        "1500",
        "--critic-steps",
        "2",
        "--run-dir",
        run.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("done: 1500 steps"), "{}", text(&o));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["algo"], "stac");
    assert_eq!(v["env"], "CartPole-v1");
    assert_eq!(
        (v["steps"].as_u64(), v["epoch_steps"].as_u64()),
        (Some(1500), Some(500))
    );
    assert_eq!(
        (v["critic_steps"].as_u64(), v["lambda"].as_f64()),
        (Some(2), Some(2.5))
    );
    assert_eq!(v["hidden"], json!([8]));
    // The run's config.json is itself a valid --config file.
    let again = d.join("again");
    let o = stackrl(&[
        "train",
        "--config",
        run.join("config.json").to_str().unwrap(),
        "--run-dir",
        again.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(rows(&again), rows(&run));
    std::fs::remove_dir_all(&d).unwrap();
}
