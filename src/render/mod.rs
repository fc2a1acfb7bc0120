//! Rendering rollouts to video: MuJoCo's own renderer offscreen on EGL (Mesa's software
//! rasteriser is enough: no display, no GPU), a drawn view for CartPole-v1, and streaming
//! encoders for H.264 MP4, GIF and PNG frames.
//!
//! * [`view`]: [`FrameSource`]s that turn an environment's current state into an RGB
//!   [`Frame`]: [`MujocoView`] (cameras as Gymnasium sets them, see [`camera`]) and
//!   [`CartPoleView`].
//! * [`encode`]: [`VideoSink`]s, fed one frame at a time, so memory stays flat however long
//!   the video is: [`Mp4Sink`] (OpenH264 + the `mp4` muxer), [`GifSink`], [`PngDirSink`].
//! * [`record`]: rolls out a [`Policy`] for some episodes and streams every `stride`-th
//!   frame into a sink, with visible episode boundaries (the last frame of an episode fades
//!   to black over [`FADE_SECONDS`]).
//! * [`policy`]: policies to render: random, zero, or the actor of a training run's
//!   checkpoint ([`load_run_policy`]).
//! * [`recorder`]: [`VideoRecorder`], the trainers' `--video-every` hook.
//!
//! # EGL
//!
//! `mujoco-rs` opens an EGL display on the first EGL *device* that gives an OpenGL context
//! (`EGL_EXT_platform_device`), so neither `DISPLAY` nor `EGL_PLATFORM` matters. Mesa
//! exposes its software device (llvmpipe) there. On Debian the packages are
//! [`EGL_PACKAGES`]; without them [`RenderError::NoEgl`] says so.

pub mod camera;
pub mod encode;
pub mod frame;
pub mod policy;
pub mod record;
pub mod recorder;
pub mod view;

pub use camera::{CameraChoice, CameraSpec, default_camera};
pub use encode::{Fps, GifSink, Mp4Sink, PngDirSink, VideoFormat, VideoSink, open_sink, write_png};
pub use frame::Frame;
pub use policy::{
    FnPolicy, LoadedRun, Policy, RandomPolicy, ZeroPolicy, load_run_policy, simple_policy,
};
pub use record::{FADE_SECONDS, RecordOptions, RecordSummary, record};
pub use recorder::{VIDEOS_DIR, VideoRecorder};
pub use view::{CartPoleView, FrameSource, MujocoView, ViewOptions, make_view};

/// The Debian packages that provide EGL with Mesa's software renderer.
pub const EGL_PACKAGES: &str = "libegl1 libegl-mesa0 libgl1-mesa-dri";

/// Errors of rendering, encoding and policy loading.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No EGL library or no EGL device could give an OpenGL context.
    #[error(
        "offscreen rendering needs EGL and an OpenGL driver, and none could be opened ({0}). \
         On Debian/Ubuntu install Mesa's software EGL: apt-get install {pkgs}",
        pkgs = EGL_PACKAGES
    )]
    NoEgl(String),
    /// Another renderer error.
    #[error("renderer: {0}")]
    Renderer(String),
    /// A bad option (size, camera, stride, format...).
    #[error("{0}")]
    Invalid(String),
    /// The output cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The encoder failed.
    #[error("encoder: {0}")]
    Encode(String),
    /// An environment error.
    #[error(transparent)]
    Env(#[from] crate::envs::EnvError),
    /// The policy failed or could not be loaded.
    #[error("{0}")]
    Policy(String),
}
