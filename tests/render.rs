//! Rendering end to end: MuJoCo's offscreen renderer on EGL (Mesa's software renderer on a
//! machine without display or GPU), encoded to MP4 / GIF / PNG and decoded back with
//! independent decoders (OpenH264's decoder behind the `mp4` demuxer, the `gif` and `png`
//! decoders): frame counts, sizes, frames that change and are not blank; rendering leaves
//! the rollout unchanged; CartPole's drawn view; errors.
#![cfg(feature = "render")]

use std::path::{Path, PathBuf};

use stackrl::envs::{self, Env};
use stackrl::render::encode::Fps;
use stackrl::render::record::{fade_frames, frames_per_episode};
use stackrl::render::{
    CameraChoice, CameraSpec, RandomPolicy, RecordOptions, RenderError, VideoFormat, ViewOptions,
    make_view, open_sink, record,
};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stackrl-render-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Statistics of one decoded frame: mean, standard deviation and its luma (to tell frames
/// apart).
#[derive(Debug)]
struct Stats {
    mean: f64,
    std: f64,
    thumb: Vec<u8>,
}

fn stats(rgb: &[u8], width: usize) -> Stats {
    let n = rgb.len() as f64;
    let mean = rgb.iter().map(|&c| c as f64).sum::<f64>() / n;
    let var = rgb.iter().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / n;
    assert_eq!(rgb.len() % (3 * width), 0);
    let thumb = rgb
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8) as u8)
        .collect();
    Stats {
        mean,
        std: var.sqrt(),
        thumb,
    }
}

fn differ(a: &Stats, b: &Stats) -> usize {
    a.thumb
        .iter()
        .zip(&b.thumb)
        .filter(|(x, y)| (**x as i32 - **y as i32).abs() > 24)
        .count()
}

/// Renders `episodes` of a random policy on `env_id` into `out` and returns the record
/// summary with the frame rate.
fn render_random(
    env_id: &str,
    out: &Path,
    format: VideoFormat,
    (w, h): (u32, u32),
    episodes: usize,
    stride: u32,
) -> (stackrl::render::RecordSummary, Fps) {
    let mut env = envs::make(env_id).unwrap();
    let rate = Fps {
        num: env.render_fps(),
        den: stride,
    };
    let mut sink = open_sink(out, format, w, h, rate).unwrap();
    let options = ViewOptions {
        width: w,
        height: h,
        camera: CameraChoice::Default,
        ..ViewOptions::default()
    };
    let mut view = make_view(env.as_ref(), &options).unwrap();
    let mut policy = RandomPolicy::new(env.action_space(), 7).unwrap();
    let opts = RecordOptions {
        episodes,
        seed: 3,
        stride,
    };
    let summary = record(
        env.as_mut(),
        view.as_mut(),
        &mut policy,
        &opts,
        rate,
        sink.as_mut(),
    )
    .unwrap();
    assert_eq!(sink.frames(), summary.frames);
    sink.finish().unwrap();
    (summary, rate)
}

fn expected_frames(s: &stackrl::render::RecordSummary, stride: u32, rate: Fps) -> u64 {
    let episodes: u64 = s
        .lengths
        .iter()
        .map(|&l| frames_per_episode(l, stride))
        .sum();
    episodes + (s.lengths.len() as u64 - 1) * fade_frames(rate)
}

/// Decodes an MP4 with the `mp4` demuxer and OpenH264's decoder: (width, height,
/// timescale, sample durations, per-frame stats).
fn decode_mp4(path: &Path) -> (u32, u32, u32, Vec<u32>, Vec<Stats>) {
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut reader = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).unwrap();
    assert_eq!(reader.tracks().len(), 1);
    let (&id, track) = reader.tracks().iter().next().unwrap();
    assert_eq!(track.media_type().unwrap(), mp4::MediaType::H264);
    let (w, h, timescale) = (
        track.width() as u32,
        track.height() as u32,
        track.timescale(),
    );
    let count = track.sample_count();
    let mut annexb = Vec::new();
    for nal in [
        track.sequence_parameter_set().unwrap().to_vec(),
        track.picture_parameter_set().unwrap().to_vec(),
    ] {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(&nal);
    }
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let mut rgb = vec![0u8; 3 * w as usize * h as usize];
    let mut frames = Vec::new();
    let mut durations = Vec::new();
    for i in 1..=count {
        let sample = reader.read_sample(id, i).unwrap().unwrap();
        durations.push(sample.duration);
        // AVCC (4-byte lengths) back to Annex B.
        let mut bytes = &sample.bytes[..];
        while bytes.len() >= 4 {
            let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(&bytes[4..4 + n]);
            bytes = &bytes[4 + n..];
        }
        assert!(bytes.is_empty(), "sample {i}: trailing bytes");
        if let Some(yuv) = decoder.decode(&annexb).unwrap() {
            yuv.write_rgb8(&mut rgb);
            frames.push(stats(&rgb, w as usize));
        }
        annexb.clear();
    }
    for yuv in decoder.flush_remaining().unwrap() {
        yuv.write_rgb8(&mut rgb);
        frames.push(stats(&rgb, w as usize));
    }
    (w, h, timescale, durations, frames)
}

/// Asserts that frames are not blank and change over an episode.
fn check_content(frames: &[Stats], first_episode_frames: usize) {
    for (i, f) in frames.iter().enumerate().take(first_episode_frames) {
        assert!(f.std > 5.0, "frame {i} is blank: {f:?}");
    }
    let last = first_episode_frames - 1;
    assert!(
        differ(&frames[0], &frames[last]) > 40,
        "first and last frame of the episode look the same"
    );
}

#[test]
fn hopper_mp4_decodes_to_the_expected_frames() {
    let dir = tmp("mp4");
    let out = dir.join("hopper.mp4");
    let stride = 2;
    let (summary, rate) = render_random("Hopper-v5", &out, VideoFormat::Mp4, (160, 120), 2, stride);
    let expected = expected_frames(&summary, stride, rate);
    assert_eq!(summary.frames, expected);
    let (w, h, timescale, durations, frames) = decode_mp4(&out);
    assert_eq!((w, h), (160, 120));
    // 125 fps / stride 2: timescale 125, every sample 2 ticks.
    assert_eq!(timescale, 125);
    assert!(durations.iter().all(|&d| d == stride));
    assert_eq!(durations.len() as u64, expected);
    assert_eq!(frames.len() as u64, expected, "decoded frames");
    check_content(
        &frames,
        frames_per_episode(summary.lengths[0], stride) as usize,
    );
    // The fade between the episodes ends on a black frame.
    let first = frames_per_episode(summary.lengths[0], stride) as usize;
    let black = &frames[first + fade_frames(rate) as usize - 1];
    assert!(black.mean < 3.0, "fade does not end black: {black:?}");
}

#[test]
fn walker_gif_decodes_to_the_expected_frames() {
    let dir = tmp("gif");
    let out = dir.join("walker.gif");
    let stride = 3;
    let (summary, rate) = render_random("Walker2d-v5", &out, VideoFormat::Gif, (96, 80), 2, stride);
    let expected = expected_frames(&summary, stride, rate);
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options
        .read_info(std::fs::File::open(&out).unwrap())
        .unwrap();
    assert_eq!((decoder.width(), decoder.height()), (96, 80));
    let mut frames = Vec::new();
    let mut delays = 0u64;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((frame.width, frame.height), (96, 80));
        delays += frame.delay as u64;
        let rgb: Vec<u8> = frame
            .buffer
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        frames.push(stats(&rgb, 96));
    }
    assert_eq!(frames.len() as u64, expected);
    // Accumulated delays: the total is the exact duration, rounded to 1/100 s.
    let seconds = expected as f64 / rate.hz();
    assert_eq!(delays, (seconds * 100.0).round() as u64);
    check_content(
        &frames,
        frames_per_episode(summary.lengths[0], stride) as usize,
    );
}

#[test]
fn cartpole_png_frames_are_drawn() {
    let dir = tmp("png");
    let out = dir.join("frames");
    let (summary, rate) = render_random("CartPole-v1", &out, VideoFormat::Png, (120, 80), 1, 1);
    let expected = expected_frames(&summary, 1, rate);
    let mut frames = Vec::new();
    for i in 0..expected {
        let path = stackrl::render::PngDirSink::frame_path(&out, i);
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (120, 80));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        frames.push(stats(&buf[..info.buffer_size()], 120));
    }
    assert!(!stackrl::render::PngDirSink::frame_path(&out, expected).exists());
    check_content(&frames, expected as usize);
}

#[test]
fn rendering_does_not_change_the_rollout() {
    // The same seeds with and without a view attached: identical returns and lengths.
    let run = |render: bool| {
        let mut env = envs::make("Hopper-v5").unwrap();
        let mut policy = RandomPolicy::new(env.action_space(), 1).unwrap();
        let mut obs = vec![0.0; env.observation_space().dim()];
        let mut view = render.then(|| {
            make_view(
                env.as_ref(),
                &ViewOptions {
                    width: 64,
                    height: 64,
                    camera: CameraChoice::Default,
                    ..ViewOptions::default()
                },
            )
            .unwrap()
        });
        let mut frame = stackrl::render::Frame::new(64, 64);
        env.reset_into(Some(5), &mut obs).unwrap();
        let mut trace = Vec::new();
        for _ in 0..60 {
            let a = stackrl::render::Policy::act(&mut policy, &obs).unwrap();
            let out = env.step_into(&a, &mut obs).unwrap();
            if let Some(v) = view.as_mut() {
                v.render(env.as_ref(), &obs, &mut frame).unwrap();
            }
            trace.push((out.reward, obs.clone()));
            if out.terminated || out.truncated {
                env.reset_into(None, &mut obs).unwrap();
            }
        }
        trace
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn cameras_and_bad_options_are_checked() {
    let env = envs::make("Pendulum-v1").unwrap();
    let view = |camera: CameraChoice, w: u32| {
        make_view(
            env.as_ref(),
            &ViewOptions {
                width: w,
                height: 64,
                camera,
                ..ViewOptions::default()
            },
        )
        .map(|_| ())
    };
    assert!(view(CameraChoice::Default, 64).is_ok());
    assert!(view("front".parse().unwrap(), 64).is_ok());
    let err = view("nope".parse().unwrap(), 64).unwrap_err().to_string();
    assert!(
        err.contains("no camera named") && err.contains("front"),
        "{err}"
    );
    let err = view(CameraChoice::Spec(CameraSpec::Fixed(9)), 64)
        .unwrap_err()
        .to_string();
    assert!(err.contains("camera 9 does not exist"), "{err}");
    let err = view("track:99".parse().unwrap(), 64)
        .unwrap_err()
        .to_string();
    assert!(err.contains("body 99"), "{err}");
    assert!(matches!(
        view(CameraChoice::Default, 8),
        Err(RenderError::Invalid(_))
    ));
    // H.264 needs even sizes; an unwritable path fails when the sink opens.
    let rate = Fps { num: 20, den: 1 };
    let dir = tmp("bad");
    let err = open_sink(&dir.join("odd.mp4"), VideoFormat::Mp4, 63, 64, rate)
        .err()
        .unwrap();
    assert!(err.to_string().contains("even"), "{err}");
    let err = open_sink(
        Path::new("/nonexistent/dir/x.mp4"),
        VideoFormat::Mp4,
        64,
        64,
        rate,
    )
    .err()
    .unwrap();
    assert!(matches!(err, RenderError::Output { .. }), "{err}");
    let err = open_sink(
        Path::new("/proc/nope/frames"),
        VideoFormat::Png,
        64,
        64,
        rate,
    )
    .err()
    .unwrap();
    assert!(matches!(err, RenderError::Output { .. }), "{err}");
}
