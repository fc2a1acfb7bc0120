//! Rolling out a policy and streaming its frames into a video.
//!
//! Frames: the state after every reset, after every `stride`-th step, and the final state
//! of every episode, so an episode of `L` steps gives [`frames_per_episode`]`(L, stride)`
//! frames. Between two episodes the last frame fades to black over [`FADE_SECONDS`]
//! ([`fade_frames`] frames, at least 2), which makes every episode boundary visible.

use super::encode::Fps;
use super::{Frame, FrameSource, Policy, RenderError, VideoSink};
use crate::envs::Env;

/// Length of the fade to black between two episodes.
pub const FADE_SECONDS: f64 = 0.3;

/// What to roll out.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordOptions {
    /// Episodes.
    pub episodes: usize,
    /// Seed of the first reset; later episodes continue the environment's own stream
    /// (`reset(None)`), as `stackrl rollout` does.
    pub seed: u64,
    /// Render every this many environment steps.
    pub stride: u32,
}

/// What a recording did.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSummary {
    /// Frames written (episode frames and fades).
    pub frames: u64,
    /// Return of each episode.
    pub returns: Vec<f64>,
    /// Length of each episode in steps.
    pub lengths: Vec<u64>,
}

/// Frames an episode of `length` steps gives at `stride`: the reset frame, every
/// `stride`-th step, and the final step if it is not one of those.
pub fn frames_per_episode(length: u64, stride: u32) -> u64 {
    let s = stride as u64;
    length / s + 1 + u64::from(!length.is_multiple_of(s))
}

/// Frames of one fade between episodes at `rate`.
pub fn fade_frames(rate: Fps) -> u64 {
    ((FADE_SECONDS * rate.hz()).round() as u64).max(2)
}

/// Rolls out `policy` on `env` for `options.episodes` episodes, rendering through `view`
/// into `sink` (see the module docs for which frames). `rate` is the sink's frame rate
/// (for the fade length).
pub fn record(
    env: &mut dyn Env,
    view: &mut dyn FrameSource,
    policy: &mut dyn Policy,
    options: &RecordOptions,
    rate: Fps,
    sink: &mut dyn VideoSink,
) -> Result<RecordSummary, RenderError> {
    if options.stride == 0 {
        return Err(RenderError::Invalid(
            "the frame stride must be at least 1".into(),
        ));
    }
    if options.episodes == 0 {
        return Err(RenderError::Invalid(
            "at least one episode is needed".into(),
        ));
    }
    let (w, h) = view.size();
    let mut frame = Frame::new(w, h);
    let mut fade = Frame::new(w, h);
    let mut obs = vec![0.0; env.observation_space().dim()];
    let mut summary = RecordSummary {
        frames: 0,
        returns: Vec::new(),
        lengths: Vec::new(),
    };
    let n_fade = fade_frames(rate);
    for episode in 0..options.episodes {
        if episode > 0 {
            for k in 1..=n_fade {
                fade.rgb_mut().copy_from_slice(frame.rgb());
                fade.darken(1.0 - k as f64 / n_fade as f64);
                sink.push(&fade)?;
                summary.frames += 1;
            }
        }
        let seed = (episode == 0).then_some(options.seed);
        env.reset_into(seed, &mut obs)?;
        view.begin_episode(env, &obs)?;
        view.render(env, &obs, &mut frame)?;
        sink.push(&frame)?;
        summary.frames += 1;
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let action = policy.act(&obs)?;
            let out = env.step_into(&action, &mut obs)?;
            ret += out.reward;
            len += 1;
            let done = out.terminated || out.truncated;
            if done || len.is_multiple_of(options.stride as u64) {
                view.render(env, &obs, &mut frame)?;
                sink.push(&frame)?;
                summary.frames += 1;
            }
            if done {
                break;
            }
        }
        summary.returns.push(ret);
        summary.lengths.push(len);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_counts() {
        assert_eq!(frames_per_episode(10, 1), 11);
        assert_eq!(frames_per_episode(10, 5), 3);
        assert_eq!(frames_per_episode(11, 5), 4);
        assert_eq!(fade_frames(Fps { num: 125, den: 1 }), 38);
        assert_eq!(fade_frames(Fps { num: 2, den: 1 }), 2);
    }
}
