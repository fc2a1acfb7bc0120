//! The off-policy trainer end to end on Pendulum-v1 (small networks, short runs):
//! reproducibility, resume equality after an interruption, divergence handling, config
//! layering, checkpoint atomicity, and a short run that clearly beats a random policy.
#![cfg(feature = "trainer")]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use stackrl::algos::Algo;
use stackrl::train::off_policy::{COLUMNS, TIMING_COLUMNS};
use stackrl::train::{
    Checkpointer, ProgressMode, RunOptions, TrainConfig, TrainError, resume, train,
};

/// One Candle thread (as `stackrl train` defaults to): on a busy 2-core machine a second
/// one makes these small updates several times slower. Second-order gradients for Stack-SAC.
fn setup() {
    stackrl::train::configure_threads(1).unwrap();
    stackrl::autodiff::enable_second_order().unwrap();
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stackrl-sac-train-{}-{name}", std::process::id()));
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

/// A short, small Pendulum run: 200-step episodes, checkpoints at episode boundaries.
fn small(algo: Algo, steps: u64) -> TrainConfig {
    let mut o = Map::new();
    o.insert("algo".into(), json!(algo.name()));
    o.insert("steps".into(), json!(steps));
    o.insert("hidden".into(), json!([24, 24]));
    o.insert("batch_size".into(), json!(32));
    o.insert("learning_starts".into(), json!(250));
    o.insert("eval_every".into(), json!(300));
    o.insert("eval_episodes".into(), json!(2));
    o.insert("checkpoint_every".into(), json!(300));
    o.insert("log_every".into(), json!(100));
    if algo == Algo::StackSac {
        o.insert("cg_iters".into(), json!(3));
    }
    TrainConfig::from_layers(None, &o).unwrap()
}

/// The metrics rows without the wall-clock columns, as text (bit-exact numbers).
fn rows(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            for c in TIMING_COLUMNS {
                v.as_object_mut().unwrap().remove(*c);
            }
            v.to_string()
        })
        .collect()
}

fn csv_rows(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(header, COLUMNS);
    let keep: Vec<usize> = (0..header.len())
        .filter(|i| !TIMING_COLUMNS.contains(&header[*i]))
        .collect();
    text.lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|i| cells[*i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_metrics_and_another_seed_does_not() {
    setup();
    let cfg = small(Algo::Sac, 700);
    let (a, b, c) = (tmp("repro-a"), tmp("repro-b"), tmp("repro-c"));
    let sa = train(&cfg, &options(&a)).unwrap();
    let sb = train(&cfg, &options(&b)).unwrap();
    assert_eq!(sa.final_eval, sb.final_eval);
    assert_eq!(rows(&a), rows(&b));
    assert_eq!(csv_rows(&a), csv_rows(&b));
    let r = rows(&a);
    for event in ["\"episode\"", "\"train\"", "\"eval\""] {
        assert!(r.iter().any(|l| l.contains(event)), "no {event} rows");
    }
    assert!(r.iter().any(|l| l.contains("td_abs_max")));
    // The two files hold the same rows: keys in column order, equal numbers.
    let jsonl = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let csv = std::fs::read_to_string(a.join("metrics.csv")).unwrap();
    assert_eq!(jsonl.lines().count() + 1, csv.lines().count());
    for (j, c) in jsonl.lines().zip(csv.lines().skip(1)) {
        assert!(j.starts_with("{\"step\":"), "{j}");
        let v: Value = serde_json::from_str(j).unwrap();
        for (name, cell) in COLUMNS.iter().zip(c.split(',')) {
            match &v[*name] {
                Value::Null => assert_eq!(cell, "", "{name} in {c}"),
                Value::String(s) => assert_eq!(cell, s),
                Value::Number(n) => assert_eq!(cell.parse::<f64>().unwrap(), n.as_f64().unwrap()),
                other => panic!("unexpected {other}"),
            }
        }
    }
    let cfg_c = TrainConfig { seed: 1, ..cfg };
    train(&cfg_c, &options(&c)).unwrap();
    assert_ne!(rows(&a), rows(&c));
    // config.json is the resolved configuration and reads back equal.
    assert_eq!(TrainConfig::read(&a).unwrap().seed, 0);
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Runs `algo` uninterrupted, then again interrupted at `stop` and resumed; the metrics must
/// match row for row (timing columns aside).
fn check_resume(algo: Algo, steps: u64, stop: u64) {
    let cfg = small(algo, steps);
    let (full, part) = (tmp(&format!("full-{algo}")), tmp(&format!("part-{algo}")));
    let s_full = train(&cfg, &options(&full)).unwrap();
    let mut opts = options(&part);
    opts.interrupt_at = Some(stop);
    let s_part = train(&cfg, &opts).unwrap();
    assert!(s_part.interrupted && s_part.steps == stop);
    let ckpt = Checkpointer::latest(&part).unwrap().expect("a checkpoint");
    assert!(
        rows(&part).len() < rows(&full).len(),
        "the interrupted run is shorter"
    );
    let s_resumed = resume(&part, &options(&part)).unwrap();
    assert!(!s_resumed.interrupted);
    assert_eq!(s_resumed.steps, steps);
    assert_eq!(
        s_resumed.final_eval, s_full.final_eval,
        "{algo}: final evaluation"
    );
    assert_eq!(
        rows(&part),
        rows(&full),
        "{algo}: metrics after resume from {ckpt:?}"
    );
    assert_eq!(csv_rows(&part), csv_rows(&full));
    // Resuming a finished run does nothing.
    let again = resume(&part, &options(&part)).unwrap();
    assert!(again.already_finished);
    std::fs::remove_dir_all(full).unwrap();
    std::fs::remove_dir_all(part).unwrap();
}

#[test]
fn resume_after_interruption_equals_uninterrupted_sac() {
    setup();
    // Checkpoint at step 400 (first episode boundary after 300), interrupted at 550.
    check_resume(Algo::Sac, 800, 550);
}

#[test]
fn resume_after_interruption_equals_uninterrupted_res_sac_and_stack_sac() {
    setup();
    check_resume(Algo::ResSac, 700, 500);
    check_resume(Algo::StackSac, 600, 450);
}

#[test]
fn resume_before_the_first_checkpoint_restarts_identically() {
    setup();
    let cfg = small(Algo::Sac, 450);
    let (full, part) = (tmp("early-full"), tmp("early-part"));
    train(&cfg, &options(&full)).unwrap();
    let mut opts = options(&part);
    opts.interrupt_at = Some(150);
    train(&cfg, &opts).unwrap();
    assert!(Checkpointer::latest(&part).unwrap().is_none());
    resume(&part, &options(&part)).unwrap();
    assert_eq!(rows(&part), rows(&full));
    std::fs::remove_dir_all(full).unwrap();
    std::fs::remove_dir_all(part).unwrap();
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    setup();
    // A learning rate of 1e30 blows the weights up at the first update (step 250): the
    // next loss is not finite. The checkpoint of step 200 was written before.
    let mut cfg = small(Algo::Sac, 1000);
    cfg.sac.lr = 1e30;
    cfg.checkpoint_every = 200;
    let dir = tmp("nan");
    let err = train(&cfg, &options(&dir)).unwrap_err();
    match &err {
        TrainError::Diverged {
            step,
            last_checkpoint,
            ..
        } => {
            assert!(*step >= 250 && *step < 1000, "step {step}");
            let latest = Checkpointer::latest(&dir).unwrap().unwrap();
            assert_eq!(last_checkpoint.as_ref(), Some(&latest));
            assert!(latest.ends_with("step_000000000200"), "{latest:?}");
        }
        other => panic!("expected Diverged, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("not finite") && msg.contains("last good checkpoint"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn config_layers_defaults_and_errors() {
    setup();
    let file = json!({"algo": "res-sac", "steps": 5000, "critic_updates": 10});
    let mut cli = Map::new();
    cli.insert("steps".into(), json!(7000));
    let c = TrainConfig::from_layers(Some(&file), &cli).unwrap();
    assert_eq!(
        (c.algo, c.steps, c.sac.critic_updates),
        (Algo::ResSac, 7000, 10)
    );
    // Res-SAC defaults: y = 1 and Table 3's clip for Pendulum.
    assert_eq!((c.sac.res_updates, c.sac.clip), (1, Some(4.0)));
    let reacher = TrainConfig::from_layers(
        Some(&json!({"algo": "res-sac", "env": "Reacher-v5"})),
        &Map::new(),
    )
    .unwrap();
    assert_eq!(reacher.sac.clip, Some(1.0));
    let err = |v: Value, needle: &str| {
        let e = TrainConfig::from_layers(Some(&v), &Map::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{e} should mention {needle}");
    };
    err(json!({"algo": "res-sac", "env": "Hopper-v5"}), "--clip");
    err(json!({"algo": "ppo"}), "algo");
    err(json!({"stepz": 3}), "unknown option `stepz`");
    err(json!({"steps": 0}), "steps must be positive");
    err(json!({"batch_size": 0}), "batch_size");
    err(json!({"res_updates": 3}), "res_updates");
    err(json!([1, 2]), "JSON object");
    // The run's config.json reproduces the configuration.
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(TrainConfig::from_layers(Some(&v), &Map::new()).unwrap(), c);
    // Bad environments are reported when the run starts.
    let bad_env = TrainConfig {
        env: "Nope-v0".into(),
        ..TrainConfig::default()
    };
    let e = train(&bad_env, &options(&tmp("bad-env")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Hopper-v5"), "{e}");
    let cartpole = TrainConfig {
        env: "CartPole-v1".into(),
        ..TrainConfig::default()
    };
    let e = train(&cartpole, &options(&tmp("cartpole")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Discrete(2)") && e.contains("continuous"), "{e}");
}

#[test]
fn checkpoints_are_atomic_and_pruned() {
    setup();
    let dir = tmp("atomic");
    std::fs::create_dir_all(&dir).unwrap();
    let ck = Checkpointer::open(&dir, 2).unwrap();
    for step in [10u64, 20, 30] {
        ck.save(step, |d| {
            std::fs::write(d.join("x"), step.to_string()).map_err(|e| TrainError::Io {
                path: d.into(),
                source: e,
            })
        })
        .unwrap();
    }
    let latest = Checkpointer::latest(&dir).unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(latest.join("x")).unwrap(), "30");
    let names: Vec<String> = std::fs::read_dir(ck.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("step_"))
        .collect();
    assert_eq!(names.len(), 2, "keep = 2: {names:?}");
    // A save that fails midway leaves `latest` alone; its temporary directory is cleaned up
    // by the next open.
    let e = ck.save(40, |d| {
        std::fs::write(d.join("x"), "partial").unwrap();
        Err(TrainError::Checkpoint("simulated failure".into()))
    });
    assert!(e.is_err());
    assert_eq!(Checkpointer::latest(&dir).unwrap().unwrap(), latest);
    Checkpointer::open(&dir, 2).unwrap();
    assert!(
        std::fs::read_dir(ck.dir()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn short_pendulum_sac_run_beats_a_random_policy() {
    setup();
    // A uniformly random policy scores about −1200 on Pendulum-v1.
    let mut o = Map::new();
    o.insert("steps".into(), json!(5000));
    o.insert("hidden".into(), json!([64, 64]));
    o.insert("batch_size".into(), json!(64));
    o.insert("learning_starts".into(), json!(1000));
    o.insert("lr".into(), json!(1e-3));
    o.insert("eval_every".into(), json!(0));
    o.insert("eval_episodes".into(), json!(10));
    o.insert("checkpoint_every".into(), json!(0));
    o.insert("log_every".into(), json!(1000));
    let cfg = TrainConfig::from_layers(None, &o).unwrap();
    let dir = tmp("learn");
    let s = train(&cfg, &options(&dir)).unwrap();
    let ev = s.final_eval.unwrap();
    assert!(
        ev.mean() > -900.0,
        "deterministic evaluation {:.1} ± {:.1} after {} steps",
        ev.mean(),
        ev.std(),
        s.steps
    );
    std::fs::remove_dir_all(dir).unwrap();
}
