//! The trainers' `--video-every N` hook (SAC family and AC/STAC): one evaluation episode
//! recorded to MP4 every `N` environment steps (the on-policy trainer: at the end of each
//! epoch that crosses a multiple of `N`), into `<run>/videos/rl-video-step-<step>.mp4` (Gymnasium's
//! `RecordVideo` names with a step trigger: prefix `rl-video`, `-step-<step>`).
//!
//! The recorder owns a separate environment and renderer and resets with a fixed seed, so
//! recording draws nothing from the trainer's random stream and touches neither the
//! training nor the evaluation environment: a run's metrics are the same with and without
//! videos.

use std::path::{Path, PathBuf};

use super::encode::{Fps, Mp4Sink};
use super::record::{RecordOptions, record};
use super::view::{FrameSource, ViewOptions, make_view};
use super::{Policy, RenderError};
use crate::envs::{self, Env};

/// Sub-directory of a run holding its videos.
pub const VIDEOS_DIR: &str = "videos";

/// Records one episode every `every` steps (see the module docs).
pub struct VideoRecorder {
    env: Box<dyn Env>,
    view: Box<dyn FrameSource>,
    dir: PathBuf,
    every: u64,
    seed: u64,
}

impl std::fmt::Debug for VideoRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoRecorder")
            .field("env", &self.env.id())
            .field("dir", &self.dir)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl VideoRecorder {
    /// A recorder for runs in `run_dir` on `env_id`, every `every` (≥ 1) steps, each video
    /// an episode reset with `seed`. Creates `<run_dir>/videos/` and opens the renderer now,
    /// so a machine without EGL fails before training starts.
    pub fn new(
        run_dir: &Path,
        env_id: &str,
        every: u64,
        seed: u64,
        view: &ViewOptions,
    ) -> Result<Self, RenderError> {
        if every == 0 {
            return Err(RenderError::Invalid(
                "--video-every must be at least 1".into(),
            ));
        }
        let env = envs::make(env_id)?;
        let view = make_view(env.as_ref(), view)?;
        let dir = run_dir.join(VIDEOS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| RenderError::Output {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            env,
            view,
            dir,
            every,
            seed,
        })
    }

    /// True if a video is due after `step` environment steps.
    pub fn due(&self, step: u64) -> bool {
        step > 0 && step.is_multiple_of(self.every)
    }

    /// The file of the video taken at `step`.
    pub fn path(&self, step: u64) -> PathBuf {
        self.dir.join(format!("rl-video-step-{step}.mp4"))
    }

    /// Records one episode of `policy` (every frame, at the environment's `render_fps`) as
    /// the video of `step`; returns its path and the episode's return.
    pub fn record(
        &mut self,
        step: u64,
        policy: &mut dyn Policy,
    ) -> Result<(PathBuf, f64), RenderError> {
        let path = self.path(step);
        let (w, h) = self.view.size();
        let rate = Fps {
            num: self.env.render_fps(),
            den: 1,
        };
        let mut sink = Box::new(Mp4Sink::create(&path, w, h, rate)?);
        let options = RecordOptions {
            episodes: 1,
            seed: self.seed,
            stride: 1,
        };
        let summary = record(
            self.env.as_mut(),
            self.view.as_mut(),
            policy,
            &options,
            rate,
            sink.as_mut(),
        )?;
        let path = crate::render::VideoSink::finish(sink)?;
        Ok((path, summary.returns[0]))
    }
}
