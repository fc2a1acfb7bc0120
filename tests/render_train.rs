//! Rendering with training runs: `--video-every` leaves the metrics unchanged and writes
//! decodable videos; a run's checkpoint renders through `stackrl render --run`; checkpoints
//! of another run and unsupported algorithms are clear errors; `stackrl plot` writes valid
//! PNG and SVG figures.
#![cfg(feature = "render")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};
use stackrl::train::off_policy::TIMING_COLUMNS;
use stackrl::train::{ProgressMode, RunOptions, TrainConfig, train};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stackrl-render-train-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small(algo: &str, seed: u64, steps: u64) -> TrainConfig {
    let mut o = Map::new();
    o.insert("algo".into(), json!(algo));
    o.insert("seed".into(), json!(seed));
    o.insert("steps".into(), json!(steps));
    o.insert("hidden".into(), json!([16, 16]));
    o.insert("batch_size".into(), json!(16));
    o.insert("learning_starts".into(), json!(200));
    o.insert("eval_every".into(), json!(200));
    o.insert("eval_episodes".into(), json!(1));
    o.insert("checkpoint_every".into(), json!(200));
    o.insert("log_every".into(), json!(100));
    TrainConfig::from_layers(None, &o).unwrap()
}

fn run(config: &TrainConfig, dir: &Path, video_every: Option<u64>) {
    stackrl::train::configure_threads(1).unwrap();
    let options = RunOptions {
        run_dir: Some(dir.to_path_buf()),
        progress: ProgressMode::None,
        video_every,
        ..RunOptions::default()
    };
    train(config, &options).unwrap();
}

/// Metrics rows without the SAC trainer's wall-clock columns.
fn rows(dir: &Path) -> Vec<String> {
    rows_without(dir, TIMING_COLUMNS)
}

/// Metrics rows without the columns `timing`.
fn rows_without(dir: &Path, timing: &[&str]) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            for c in timing {
                v.as_object_mut().unwrap().remove(*c);
            }
            v.to_string()
        })
        .collect()
}

fn stackrl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackrl"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn mp4_samples(path: &Path) -> (u32, u32, u32) {
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let reader = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).unwrap();
    let track = reader.tracks().values().next().unwrap();
    (
        track.width() as u32,
        track.height() as u32,
        track.sample_count(),
    )
}

#[test]
fn video_every_keeps_metrics_and_runs_render_and_plot() {
    let root = tmp("runs");
    let (plain, videos) = (root.join("plain"), root.join("videos"));
    let config = small("sac", 0, 400);
    run(&config, &plain, None);
    run(&config, &videos, Some(200));
    // Recording uses its own environment and seed: identical metrics.
    assert_eq!(rows(&plain), rows(&videos));
    assert!(!plain.join("videos").exists());
    // One deterministic Pendulum episode (200 steps: 201 frames) at steps 200 and 400.
    for step in [200, 400] {
        let path = videos.join(format!("videos/rl-video-step-{step}.mp4"));
        assert_eq!(mp4_samples(&path), (480, 480, 201), "{}", path.display());
    }
    assert_eq!(std::fs::read_dir(videos.join("videos")).unwrap().count(), 2);

    // stackrl render --run: the trained actor, GIF of one episode every 10th step.
    let gif = root.join("agent.gif");
    let (ok, text) = stackrl(&[
        "render",
        "--run",
        plain.to_str().unwrap(),
        "--episodes",
        "1",
        "--deterministic",
        "--stride",
        "10",
        "--width",
        "64",
        "--height",
        "64",
        "--out",
        gif.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("wrote 21 frames"), "{text}");
    assert!(text.contains("sac agent from"), "{text}");

    // A checkpoint of another run (res-sac) is refused.
    let other = root.join("other");
    run(&small("res-sac", 0, 200), &other, None);
    let other_ckpt = std::fs::read_to_string(other.join("checkpoints/latest")).unwrap();
    let other_ckpt = other.join("checkpoints").join(other_ckpt.trim());
    let err = stackrl::render::load_run_policy(&plain, Some(&other_ckpt), true, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is from a \"res-sac\" run on \"Pendulum-v1\"") && err.contains("sac run"),
        "{err}"
    );
    // Its own checkpoint loads.
    let own = std::fs::read_to_string(plain.join("checkpoints/latest")).unwrap();
    let own = plain.join("checkpoints").join(own.trim());
    let loaded = stackrl::render::load_run_policy(&plain, Some(&own), true, 0).unwrap();
    assert_eq!(
        (loaded.env.as_str(), loaded.algo.as_str()),
        ("Pendulum-v1", "sac")
    );

    // stackrl plot: PNG and SVG with one panel, two groups.
    let seed1 = root.join("seed1");
    run(&small("sac", 1, 400), &seed1, None);
    let dirs = [&plain, &seed1, &other].map(|p| p.to_str().unwrap().to_string());
    let png_out = root.join("curves.png");
    let svg_out = root.join("curves.svg");
    for out in [&png_out, &svg_out] {
        let mut args = vec!["plot"];
        args.extend(dirs.iter().map(String::as_str));
        args.extend(["--metric", "eval_return", "--out", out.to_str().unwrap()]);
        let (ok, text) = stackrl(&args);
        assert!(ok, "{text}");
        assert!(text.contains("Pendulum-v1 sac: 2 run(s)"), "{text}");
        assert!(text.contains("Pendulum-v1 res-sac: 1 run(s)"), "{text}");
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_out).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (520, 380));
    let px = &buf[..info.buffer_size()];
    // The first algorithm's line colour (sorted: res-sac) and dark text are drawn.
    let has = |c: [u8; 3]| px.chunks_exact(3).any(|p| p == c);
    assert!(has([31, 119, 180]), "no res-sac line");
    assert!(has([214, 39, 40]), "no sac line");
    assert!(
        px.chunks_exact(3)
            .filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60)
            .count()
            > 500
    );
    let svg = std::fs::read_to_string(&svg_out).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Pendulum-v1") && svg.contains("<polyline"));
    assert!(svg.contains("sac (2 seeds)") && svg.contains("res-sac (1 seed)"));
}

#[test]
fn render_errors_are_clear() {
    let root = tmp("errors");
    std::fs::create_dir_all(&root).unwrap();
    // An output that cannot be written fails before rendering.
    let (ok, text) = stackrl(&[
        "render",
        "--env",
        "Hopper-v5",
        "--policy",
        "zero",
        "--out",
        "/nonexistent/dir/x.mp4",
    ]);
    assert!(!ok);
    assert!(
        text.contains("cannot write /nonexistent/dir/x.mp4"),
        "{text}"
    );
    // No usable EGL (glvnd finds no vendor library): one message naming the packages.
    let out = Command::new(env!("CARGO_BIN_EXE_stackrl"))
        .args(["render", "--env", "Hopper-v5", "--policy", "zero", "--out"])
        .arg(root.join("no_egl.mp4"))
        .env(
            "__EGL_VENDOR_LIBRARY_FILENAMES",
            "/nonexistent/egl_vendor.json",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"),
        "{text}"
    );
    assert!(!root.join("no_egl.mp4").exists());
    // A run of an algorithm without a loader.
    let unsupported = root.join("ppo_run");
    std::fs::create_dir_all(&unsupported).unwrap();
    std::fs::write(
        unsupported.join("config.json"),
        r#"{"env": "CartPole-v1", "algo": "ppo"}"#,
    )
    .unwrap();
    let out = root.join("x.mp4");
    let (ok, text) = stackrl(&[
        "render",
        "--run",
        unsupported.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        text.contains("rendering runs of algo ppo is not supported yet"),
        "{text}"
    );
    assert!(!out.exists(), "a failed render left {}", out.display());
    // Not a run directory; unknown extension; odd size for H.264.
    let (ok, text) = stackrl(&["render", "--run", "/nonexistent", "--out", "a.mp4"]);
    assert!(!ok && text.contains("not a run directory"), "{text}");
    let (ok, text) = stackrl(&[
        "render",
        "--env",
        "Hopper-v5",
        "--policy",
        "zero",
        "--out",
        "a.avi",
    ]);
    assert!(!ok && text.contains(".avi"), "{text}");
    let (ok, text) = stackrl(&[
        "render",
        "--env",
        "Hopper-v5",
        "--policy",
        "zero",
        "--width",
        "101",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("even"), "{text}");
    // plot: no metric values, bad extension.
    let (ok, text) = stackrl(&["plot", unsupported.to_str().unwrap(), "--out", "c.png"]);
    assert!(!ok && text.contains("metrics.jsonl"), "{text}");
    let (ok, text) = stackrl(&["plot", unsupported.to_str().unwrap(), "--out", "c.jpg"]);
    assert!(!ok && text.contains(".png or .svg"), "{text}");
}

#[test]
fn video_every_in_the_on_policy_trainer_keeps_metrics() {
    // AC on CartPole-v1 (drawn view): 2 epochs of 500 steps, a video after each epoch.
    let root = tmp("onpolicy");
    let Value::Object(o) = json!({
        "algo": "ac", "steps": 1000, "epoch_steps": 500, "critic_steps": 2,
        "hidden": [8], "eval_every": 500, "eval_episodes": 1
    }) else {
        unreachable!()
    };
    let config = stackrl::train::on_policy::OnPolicyTrainConfig::from_layers(None, &o).unwrap();
    stackrl::train::configure_threads(1).unwrap();
    let mut dirs = Vec::new();
    for video_every in [None, Some(500)] {
        let dir = root.join(format!("{video_every:?}"));
        let options = RunOptions {
            run_dir: Some(dir.clone()),
            progress: ProgressMode::None,
            video_every,
            ..RunOptions::default()
        };
        stackrl::train::on_policy::train(&config, &options).unwrap();
        dirs.push(dir);
    }
    let timing = stackrl::train::on_policy::TIMING_COLUMNS;
    assert_eq!(
        rows_without(&dirs[0], timing),
        rows_without(&dirs[1], timing)
    );
    for step in [500, 1000] {
        let path = dirs[1].join(format!("videos/rl-video-step-{step}.mp4"));
        let (w, h, frames) = mp4_samples(&path);
        assert_eq!((w, h), (480, 480));
        assert!(frames >= 2, "{}: {frames} frames", path.display());
    }
    // The AC run renders through its checkpoint (CartPole is drawn).
    let out = root.join("ac_frames");
    let (ok, text) = stackrl(&[
        "render",
        "--run",
        dirs[0].to_str().unwrap(),
        "--episodes",
        "2",
        "--deterministic",
        "--format",
        "png",
        "--width",
        "60",
        "--height",
        "40",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("ac agent from"), "{text}");
    assert!(out.join("frame_000001.png").is_file());
    // A SAC checkpoint given to this AC run is refused.
    let sac_root = tmp("onpolicy-sac");
    run(&small("sac", 0, 200), &sac_root, None);
    let sac_ckpt = std::fs::read_to_string(sac_root.join("checkpoints/latest")).unwrap();
    let sac_ckpt = sac_root.join("checkpoints").join(sac_ckpt.trim());
    let err = stackrl::render::load_run_policy(&dirs[0], Some(&sac_ckpt), true, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is from a \"sac\" run on \"Pendulum-v1\""),
        "{err}"
    );
}
