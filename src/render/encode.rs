//! Streaming video writers: every frame is encoded and written as it arrives, so memory
//! stays flat however long the video is (the MP4 muxer keeps only its per-sample tables,
//! a few bytes per frame, for the `moov` box written at the end).
//!
//! * [`Mp4Sink`]: H.264 (Constrained Baseline, from Cisco's OpenH264 compiled from the
//!   bundled source by the `openh264` crate) in an MP4 file written by the pure-Rust `mp4`
//!   crate. The encoder's Annex-B output is rewritten as MP4 wants it: SPS and PPS go into
//!   the `avcC` box, every other NAL unit into the sample with a 4-byte length prefix. The
//!   track's timescale is the environment's `render_fps` and each sample lasts `stride`
//!   ticks, so the frame rate is exactly `render_fps / stride`. Width and height must be
//!   even (4:2:0 chroma).
//! * [`GifSink`]: an animated GIF (the `gif` crate; each frame quantised to 256 colours by
//!   NeuQuant), looping. GIF delays are in hundredths of a second; they are accumulated so
//!   the average rate is exact, but players clamp delays under 2/100 s, so keep
//!   `render_fps / stride` at or below 50 for real-time playback.
//! * [`PngDirSink`]: a folder of `frame_000000.png`, `frame_000001.png`, ...
//!
//! Outputs appear only when complete: a sink writes to a temporary file (or folder)
//! beside its target and renames it into place in [`VideoSink::finish`]; a sink dropped
//! unfinished (an error, an interrupt) removes its temporary output, so a failed render
//! never destroys or truncates an existing video of the same name.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use openh264::OpenH264API;
use openh264::encoder::{
    Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange, RateControlMode,
};
use openh264::formats::{RgbSliceU8, YUVBuffer};

use super::{Frame, RenderError};

/// H.264 quantiser of [`Mp4Sink`] (0 best … 51 worst).
const QP: u8 = 24;

/// The container / codec of a video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFormat {
    /// H.264 in MP4.
    Mp4,
    /// Animated GIF.
    Gif,
    /// A folder of PNG frames.
    Png,
}

impl std::str::FromStr for VideoFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mp4" => Ok(Self::Mp4),
            "gif" => Ok(Self::Gif),
            "png" => Ok(Self::Png),
            other => Err(format!("unknown video format {other:?}: mp4, gif or png")),
        }
    }
}

impl VideoFormat {
    /// The format an output path implies: `.mp4`, `.gif`, or a path without extension (a
    /// folder of PNG frames).
    pub fn from_path(path: &Path) -> Result<Self, RenderError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("mp4") => Ok(Self::Mp4),
            Some(e) if e.eq_ignore_ascii_case("gif") => Ok(Self::Gif),
            None => Ok(Self::Png),
            Some(e) => Err(RenderError::Invalid(format!(
                "cannot tell the video format from the extension .{e} of {}: use .mp4, .gif, \
                 or a folder name with --format png",
                path.display()
            ))),
        }
    }
}

/// Frames per second as `num / den` (`render_fps / stride`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fps {
    /// Numerator (the environment's `render_fps`).
    pub num: u32,
    /// Denominator (the frame stride).
    pub den: u32,
}

impl Fps {
    /// As a float.
    pub fn hz(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// A video being written.
pub trait VideoSink {
    /// Appends a frame (every frame must have the size the sink was opened with).
    fn push(&mut self, frame: &Frame) -> Result<(), RenderError>;
    /// Frames written so far.
    fn frames(&self) -> u64;
    /// Finishes the file (MP4: writes the `moov` box) and returns its path.
    fn finish(self: Box<Self>) -> Result<PathBuf, RenderError>;
}

fn out_err(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Output {
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary path beside `target` (`.<name>.tmp-<pid>`), renamed onto `target` by
/// [`TempTarget::commit`] and removed when dropped uncommitted.
#[derive(Debug)]
struct TempTarget {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempTarget {
    fn new(target: &Path) -> Result<Self, RenderError> {
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| {
                RenderError::Invalid(format!("--out {} names no file", target.display()))
            })?;
        let tmp = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Moves the finished output into place.
    fn commit(&mut self) -> Result<(), RenderError> {
        fs::rename(&self.tmp, &self.target).map_err(out_err(&self.target))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempTarget {
    fn drop(&mut self) {
        if !self.committed {
            let _ = if self.tmp.is_dir() {
                fs::remove_dir_all(&self.tmp)
            } else {
                fs::remove_file(&self.tmp)
            };
        }
    }
}

/// Flushes a sink's file and fsyncs it, so that the rename publishes complete bytes.
fn flush_and_sync(mut w: BufWriter<File>, path: &Path) -> Result<(), RenderError> {
    use std::io::Write;
    w.flush().map_err(out_err(path))?;
    let file = w.into_inner().map_err(|e| out_err(path)(e.into_error()))?;
    file.sync_all().map_err(out_err(path))
}

fn check_size(frame: &Frame, width: u32, height: u32) -> Result<(), RenderError> {
    if frame.width() != width || frame.height() != height {
        return Err(RenderError::Invalid(format!(
            "frame of {}x{} pushed into a {width}x{height} video",
            frame.width(),
            frame.height()
        )));
    }
    Ok(())
}

/// Opens a sink of `format` at `path` for `width × height` frames at `rate`. The file (or
/// folder) is created here, so an unwritable output fails before any rendering.
pub fn open_sink(
    path: &Path,
    format: VideoFormat,
    width: u32,
    height: u32,
    rate: Fps,
) -> Result<Box<dyn VideoSink>, RenderError> {
    if rate.num == 0 || rate.den == 0 {
        return Err(RenderError::Invalid(format!(
            "frame rate {}/{} is not positive",
            rate.num, rate.den
        )));
    }
    Ok(match format {
        VideoFormat::Mp4 => Box::new(Mp4Sink::create(path, width, height, rate)?),
        VideoFormat::Gif => Box::new(GifSink::create(path, width, height, rate)?),
        VideoFormat::Png => Box::new(PngDirSink::create(path, width, height)?),
    })
}

/// H.264 MP4 writer (see the module docs).
pub struct Mp4Sink {
    path: PathBuf,
    out: TempTarget,
    width: u32,
    height: u32,
    rate: Fps,
    encoder: Encoder,
    yuv: YUVBuffer,
    writer: mp4::Mp4Writer<BufWriter<File>>,
    track_added: bool,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    sample: Vec<u8>,
    frames: u64,
}

impl std::fmt::Debug for Mp4Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4Sink")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

/// Strips an Annex-B start code (`00 00 01` or `00 00 00 01`) from a NAL unit.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}

impl Mp4Sink {
    /// Creates `path` and an encoder for `width × height` (both even) at `rate`.
    pub fn create(path: &Path, width: u32, height: u32, rate: Fps) -> Result<Self, RenderError> {
        if width % 2 == 1 || height % 2 == 1 {
            return Err(RenderError::Invalid(format!(
                "H.264 needs an even width and height, got {width}x{height}"
            )));
        }
        if width.max(height) > 3840 || width.min(height) > 2160 {
            return Err(RenderError::Invalid(format!(
                "OpenH264 encodes at most 3840x2160 (or 2160x3840), got {width}x{height}"
            )));
        }
        let out = TempTarget::new(path)?;
        let file = File::create(&out.tmp).map_err(out_err(path))?;
        let config = mp4::Mp4Config {
            major_brand: "isom".parse().expect("valid FourCC"),
            minor_version: 512,
            compatible_brands: ["isom", "iso2", "avc1", "mp41"]
                .iter()
                .map(|b| b.parse().expect("valid FourCC"))
                .collect(),
            timescale: rate.num,
        };
        let writer = mp4::Mp4Writer::write_start(BufWriter::new(file), &config)
            .map_err(|e| RenderError::Encode(format!("{}: {e}", path.display())))?;
        // Constant quantiser, no rate control: rate control would drop frames (frame
        // skipping) or warn that it cannot hold a bitrate without them. QP 24 keeps the
        // flat-shaded scenes sharp at a few hundred kB per second of 480 × 480 video.
        let config = EncoderConfig::new()
            .skip_frames(false)
            .max_frame_rate(FrameRate::from_hz(rate.hz() as f32))
            .rate_control_mode(RateControlMode::Off)
            .qp(QpRange::new(QP, QP))
            // A key frame every 2 s, so players can seek.
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                (2.0 * rate.hz()).round().max(1.0) as u32,
            ));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| RenderError::Encode(format!("cannot start OpenH264: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            width,
            height,
            rate,
            encoder,
            yuv: YUVBuffer::new(width as usize, height as usize),
            writer,
            track_added: false,
            sps: None,
            pps: None,
            sample: Vec::new(),
            frames: 0,
        })
    }

    fn mux_err(&self) -> impl Fn(mp4::Error) -> RenderError + '_ {
        move |e| RenderError::Encode(format!("{}: {e}", self.path.display()))
    }
}

impl VideoSink for Mp4Sink {
    fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        check_size(frame, self.width, self.height)?;
        let dims = (self.width as usize, self.height as usize);
        self.yuv.read_rgb8(RgbSliceU8::new(frame.rgb(), dims));
        let bitstream = self
            .encoder
            .encode(&self.yuv)
            .map_err(|e| RenderError::Encode(format!("OpenH264: {e}")))?;
        self.sample.clear();
        let mut is_sync = false;
        for l in 0..bitstream.num_layers() {
            let Some(layer) = bitstream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n).map(strip_start_code) else {
                    continue;
                };
                let Some(&header) = nal.first() else {
                    continue;
                };
                match header & 0x1f {
                    7 => {
                        self.sps.get_or_insert_with(|| nal.to_vec());
                    }
                    8 => {
                        self.pps.get_or_insert_with(|| nal.to_vec());
                    }
                    kind => {
                        is_sync |= kind == 5;
                        self.sample
                            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        self.sample.extend_from_slice(nal);
                    }
                }
            }
        }
        if self.sample.is_empty() {
            return Err(RenderError::Encode(format!(
                "OpenH264 produced no picture for frame {}",
                self.frames
            )));
        }
        if !self.track_added {
            let (Some(sps), Some(pps)) = (self.sps.clone(), self.pps.clone()) else {
                return Err(RenderError::Encode(
                    "OpenH264 gave no SPS/PPS with its first frame".into(),
                ));
            };
            let track = mp4::TrackConfig {
                track_type: mp4::TrackType::Video,
                timescale: self.rate.num,
                language: "und".into(),
                media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                    width: self.width as u16,
                    height: self.height as u16,
                    seq_param_set: sps,
                    pic_param_set: pps,
                }),
            };
            self.writer.add_track(&track).map_err(self.mux_err())?;
            self.track_added = true;
        }
        let sample = mp4::Mp4Sample {
            start_time: self.frames * self.rate.den as u64,
            duration: self.rate.den,
            rendering_offset: 0,
            is_sync,
            bytes: mp4::Bytes::copy_from_slice(&self.sample),
        };
        let result = self.writer.write_sample(1, &sample);
        result.map_err(self.mux_err())?;
        self.frames += 1;
        Ok(())
    }

    fn frames(&self) -> u64 {
        self.frames
    }

    fn finish(mut self: Box<Self>) -> Result<PathBuf, RenderError> {
        if self.frames == 0 {
            return Err(RenderError::Encode(format!(
                "{}: no frames to write",
                self.path.display()
            )));
        }
        let result = self.writer.write_end();
        result.map_err(self.mux_err())?;
        let path = self.path.clone();
        let Mp4Sink {
            writer, mut out, ..
        } = *self;
        flush_and_sync(writer.into_writer(), &path)?;
        out.commit()?;
        Ok(path)
    }
}

/// Animated GIF writer (see the module docs).
pub struct GifSink {
    path: PathBuf,
    out: TempTarget,
    width: u32,
    height: u32,
    rate: Fps,
    encoder: gif::Encoder<BufWriter<File>>,
    frames: u64,
}

impl std::fmt::Debug for GifSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GifSink")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl GifSink {
    /// Creates `path` for `width × height` frames (at most 65535 each) at `rate`.
    pub fn create(path: &Path, width: u32, height: u32, rate: Fps) -> Result<Self, RenderError> {
        let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
            (Ok(w), Ok(h)) => (w, h),
            _ => {
                return Err(RenderError::Invalid(
                    "GIF frames are at most 65535 wide".into(),
                ));
            }
        };
        let out = TempTarget::new(path)?;
        let file = File::create(&out.tmp).map_err(out_err(path))?;
        let gif_err =
            |e: gif::EncodingError| RenderError::Encode(format!("{}: {e}", path.display()));
        let mut encoder = gif::Encoder::new(BufWriter::new(file), w, h, &[]).map_err(gif_err)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            width,
            height,
            rate,
            encoder,
            frames: 0,
        })
    }

    /// Hundredths of a second from the start of the video to the start of frame `i`.
    fn centis(&self, i: u64) -> u64 {
        (100 * i * self.rate.den as u64 + self.rate.num as u64 / 2) / self.rate.num as u64
    }
}

impl VideoSink for GifSink {
    fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        check_size(frame, self.width, self.height)?;
        let (w, h) = (self.width as u16, self.height as u16);
        let mut f = gif::Frame::from_rgb_speed(w, h, frame.rgb(), 10);
        let i = self.frames;
        f.delay = (self.centis(i + 1) - self.centis(i)).min(u16::MAX as u64) as u16;
        self.encoder
            .write_frame(&f)
            .map_err(|e| RenderError::Encode(format!("{}: {e}", self.path.display())))?;
        self.frames += 1;
        Ok(())
    }

    fn frames(&self) -> u64 {
        self.frames
    }

    fn finish(self: Box<Self>) -> Result<PathBuf, RenderError> {
        let path = self.path.clone();
        let GifSink {
            encoder, mut out, ..
        } = *self;
        let inner = encoder
            .into_inner()
            .map_err(|e| RenderError::Encode(format!("{}: {e}", path.display())))?;
        flush_and_sync(inner, &path)?;
        out.commit()?;
        Ok(path)
    }
}

/// A folder of PNG frames, written into a temporary folder beside it and moved in when
/// finished (frames of the same name are replaced, other files are left alone).
#[derive(Debug)]
pub struct PngDirSink {
    dir: PathBuf,
    out: TempTarget,
    width: u32,
    height: u32,
    frames: u64,
}

impl PngDirSink {
    /// Checks that the folder `dir` (created with its parents if missing) can be written and
    /// creates the temporary folder beside it.
    pub fn create(dir: &Path, width: u32, height: u32) -> Result<Self, RenderError> {
        if dir.exists() && !dir.is_dir() {
            return Err(RenderError::Invalid(format!(
                "--out {} exists and is not a folder (PNG frames go into a folder)",
                dir.display()
            )));
        }
        let out = TempTarget::new(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(out_err(parent))?;
        }
        fs::create_dir(&out.tmp).map_err(out_err(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            out,
            width,
            height,
            frames: 0,
        })
    }

    /// The file of frame `i`.
    pub fn frame_path(dir: &Path, i: u64) -> PathBuf {
        dir.join(format!("frame_{i:06}.png"))
    }
}

/// Writes an RGB image as a PNG file.
pub fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), RenderError> {
    let file = File::create(path).map_err(out_err(path))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let png_err = |e: png::EncodingError| RenderError::Encode(format!("{}: {e}", path.display()));
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(())
}

impl VideoSink for PngDirSink {
    fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        check_size(frame, self.width, self.height)?;
        let path = Self::frame_path(&self.out.tmp, self.frames);
        write_png(&path, self.width, self.height, frame.rgb())?;
        self.frames += 1;
        Ok(())
    }

    fn frames(&self) -> u64 {
        self.frames
    }

    fn finish(mut self: Box<Self>) -> Result<PathBuf, RenderError> {
        if !self.dir.exists() {
            self.out.commit()?;
            return Ok(self.dir);
        }
        for i in 0..self.frames {
            let to = Self::frame_path(&self.dir, i);
            fs::rename(Self::frame_path(&self.out.tmp, i), &to).map_err(out_err(&to))?;
        }
        // The emptied temporary folder is removed when `out` drops.
        Ok(self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_paths() {
        assert_eq!(
            VideoFormat::from_path(Path::new("a.mp4")).unwrap(),
            VideoFormat::Mp4
        );
        assert_eq!(
            VideoFormat::from_path(Path::new("a.GIF")).unwrap(),
            VideoFormat::Gif
        );
        assert_eq!(
            VideoFormat::from_path(Path::new("frames")).unwrap(),
            VideoFormat::Png
        );
        assert!(VideoFormat::from_path(Path::new("a.avi")).is_err());
        assert_eq!(strip_start_code(&[0, 0, 0, 1, 0x67]), &[0x67]);
        assert_eq!(strip_start_code(&[0, 0, 1, 0x68]), &[0x68]);
    }
}
