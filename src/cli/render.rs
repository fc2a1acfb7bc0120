//! `stackrl render`: a thin layer over [`crate::render`].

use std::path::{Path, PathBuf};

use crate::envs::{self, Env};
use crate::render::encode::Fps;
use crate::render::{
    CameraChoice, RecordOptions, VideoFormat, ViewOptions, load_run_policy, make_view, open_sink,
    record, simple_policy,
};

const RENDER_HELP: &str = "\
Frames come from MuJoCo's renderer, offscreen on EGL (Mesa's software renderer works: no
display, no GPU; on Debian: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri).
CartPole-v1 is drawn as Gymnasium draws it. The frame rate is the environment's render_fps
divided by --stride. Between episodes the last frame fades to black (0.3 s).

Cameras (--camera): default (Gymnasium's view; locomotion tasks track the torso),
free[:DISTANCE[:ELEVATION[:AZIMUTH]]], track:BODY_ID, or a camera of the model by name or id.

Examples:
  stackrl render --env Hopper-v5 --policy random --out hopper.mp4
  stackrl render --run runs/Pendulum-v1__sac__0__1700000000 --deterministic --out sac.mp4
  stackrl render --env Walker2d-v5 --policy zero --format gif --stride 4 --out walker.gif
  stackrl render --env CartPole-v1 --policy random --format png --out frames/";

/// Options of `stackrl render`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = RENDER_HELP)]
pub struct RenderArgs {
    /// A training run directory: render its agent (SAC, Res-SAC, Stack-SAC, AC, STAC).
    #[arg(long, conflicts_with = "policy")]
    pub run: Option<PathBuf>,
    /// The run's checkpoint to load (a checkpoint folder or a file in it) [default: the
    /// run's latest].
    #[arg(long, requires = "run")]
    pub checkpoint: Option<PathBuf>,
    /// Environment id, without --run (with --run it must match the run's).
    #[arg(long)]
    pub env: Option<String>,
    /// Policy without a run: random or zero.
    #[arg(long, value_parser = ["random", "zero"])]
    pub policy: Option<String>,
    /// Episodes to render.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub episodes: u64,
    /// Use the agent's mean action instead of sampling.
    #[arg(long)]
    pub deterministic: bool,
    /// Seed of the first reset (and of random or sampled actions).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output: a .mp4 or .gif file, or a folder for --format png.
    #[arg(long)]
    pub out: PathBuf,
    /// mp4, gif or png [default: from --out's extension].
    #[arg(long, value_parser = ["mp4", "gif", "png"])]
    pub format: Option<String>,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 480)]
    pub width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Camera (see below).
    #[arg(long, default_value = "default")]
    pub camera: String,
    /// Anti-aliasing samples per pixel (MuJoCo's offsamples; 0: off, about twice as fast on
    /// Mesa's software renderer).
    #[arg(long, default_value_t = 4)]
    pub msaa: u32,
    /// Render every this many environment steps.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub stride: u32,
}

/// Runs `stackrl render`.
pub(super) fn render_command(a: &RenderArgs) -> Result<(), String> {
    let e = |x: crate::render::RenderError| x.to_string();
    // Cheap checks first: options, the run's config, the output.
    let camera: CameraChoice = a.camera.parse()?;
    let view_options = ViewOptions {
        width: a.width,
        height: a.height,
        camera,
        msaa: a.msaa,
    };
    view_options.validate().map_err(e)?;
    let format = match &a.format {
        Some(f) => f.parse::<VideoFormat>()?,
        None => VideoFormat::from_path(&a.out).map_err(e)?,
    };
    let env_id = match (&a.run, &a.env) {
        (Some(run), env) => {
            let run_env = run_env_id(run)?;
            if let Some(env) = env.as_ref().filter(|env| **env != run_env) {
                return Err(format!(
                    "--env {env} does not match the run's environment {run_env}"
                ));
            }
            run_env
        }
        (None, Some(env)) => env.clone(),
        (None, None) => {
            return Err("give --run DIR (a trained agent) or --env ID --policy random|zero".into());
        }
    };
    if a.run.is_none() && a.policy.is_none() {
        return Err("--env needs --policy random|zero (or use --run DIR)".into());
    }
    let mut env = envs::make(&env_id).map_err(|x| x.to_string())?;
    let rate = Fps {
        num: env.render_fps(),
        den: a.stride,
    };
    let mut sink = open_sink(&a.out, format, a.width, a.height, rate).map_err(e)?;
    let result = (|| {
        let (mut policy, what) = match &a.run {
            Some(run) => {
                crate::train::configure_threads(1).map_err(|x| x.to_string())?;
                let loaded = load_run_policy(run, a.checkpoint.as_deref(), a.deterministic, a.seed)
                    .map_err(e)?;
                let what = format!(
                    "{} agent from {} ({})",
                    loaded.algo,
                    loaded.checkpoint.display(),
                    if a.deterministic {
                        "mean action"
                    } else {
                        "sampled actions"
                    }
                );
                (loaded.policy, what)
            }
            None => {
                let name = a.policy.as_deref().unwrap_or("random");
                (
                    simple_policy(name, env.as_ref(), a.seed).map_err(e)?,
                    format!("{name} policy"),
                )
            }
        };
        let mut view = make_view(env.as_ref(), &view_options).map_err(e)?;
        let options = RecordOptions {
            episodes: a.episodes as usize,
            seed: a.seed,
            stride: a.stride,
        };
        let summary = record(
            env.as_mut(),
            view.as_mut(),
            policy.as_mut(),
            &options,
            rate,
            sink.as_mut(),
        )
        .map_err(e)?;
        Ok::<_, String>((summary, what))
    })();
    let (summary, what) = match result {
        Ok(x) => x,
        Err(message) => {
            // The sink removes its temporary output; an existing video is untouched.
            drop(sink);
            return Err(message);
        }
    };
    let path = sink.finish().map_err(e)?;
    let returns: Vec<String> = summary
        .returns
        .iter()
        .zip(&summary.lengths)
        .map(|(r, l)| format!("{r:.1} ({l} steps)"))
        .collect();
    println!(
        "{env_id}, {what}: {} episodes, returns {}",
        summary.returns.len(),
        returns.join(", ")
    );
    println!(
        "wrote {} frames of {}x{} at {:.4} fps to {}",
        summary.frames,
        a.width,
        a.height,
        rate.hz(),
        path.display()
    );
    Ok(())
}

fn run_env_id(run: &Path) -> Result<String, String> {
    let path = run.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|x| {
        format!(
            "{} is not a run directory (cannot read {}: {x})",
            run.display(),
            path.display()
        )
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|x| format!("{} is corrupt: {x}", path.display()))?;
    v.get("env")
        .and_then(|e| e.as_str())
        .map(String::from)
        .ok_or_else(|| format!("{} names no env", path.display()))
}
