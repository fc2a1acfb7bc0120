//! TensorBoard event files, written without TensorFlow.
//!
//! TensorBoard reads `events.out.tfevents*` files: a sequence of TFRecords, each holding a
//! serialised `tensorflow.Event` protocol buffer. The subset needed for scalars is small:
//!
//! ```text
//! record  = u64le(len) · u32le(masked_crc32c(len bytes)) · data · u32le(masked_crc32c(data))
//! Event   = { 1: double wall_time, 2: int64 step, 3: string file_version, 5: Summary summary }
//! Summary = { 1: repeated Value value }
//! Value   = { 1: string tag, 2: float simple_value }
//! ```
//!
//! so it is encoded here by hand (no protobuf code generation in the build). The first
//! record is `file_version = "brain.Event:2"`, as TensorFlow and tensorboardX write it.
//! Like the CSV and JSON-lines metrics, the file is flushed after every event and can be
//! truncated back to a recorded length when a run is resumed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::TrainError;
use super::checkpoint::sha256_hex;
use super::metrics::{check_prefix, truncate_for_append};

/// File name of a run's event file. TensorBoard only needs the `events.out.tfevents`
/// prefix; a fixed name lets a resumed run find and truncate it.
pub const EVENTS_FILE: &str = "events.out.tfevents.stackrl";

/// The masked CRC-32C that TFRecord stores (rotate right by 15, add a constant), so that
/// a CRC of data that itself contains CRCs is not degenerate.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A serialised `Event` holding scalar summaries (`tag`, value) at `step`.
pub fn scalar_event(wall_time: f64, step: i64, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in scalars {
        let mut v = Vec::with_capacity(tag.len() + 8);
        bytes_field(&mut v, 1, tag.as_bytes());
        key(&mut v, 2, 5);
        v.extend_from_slice(&value.to_le_bytes());
        bytes_field(&mut summary, 1, &v);
    }
    let mut event = Vec::with_capacity(summary.len() + 24);
    key(&mut event, 1, 1);
    event.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut event, 2, 0);
    varint(&mut event, step as u64); // int64: two's complement, as protobuf does.
    bytes_field(&mut event, 5, &summary);
    event
}

/// The serialised first `Event` of a file: its format version.
pub fn version_event(wall_time: f64) -> Vec<u8> {
    let mut event = Vec::new();
    key(&mut event, 1, 1);
    event.extend_from_slice(&wall_time.to_le_bytes());
    bytes_field(&mut event, 3, b"brain.Event:2");
    event
}

/// `data` framed as one TFRecord.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends scalar events to a run's [`EVENTS_FILE`].
#[derive(Debug)]
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
    len: u64,
    sha: Sha256,
}

/// How [`EventWriter::check_resume`] found a run's event file; [`EventResume::open`]
/// then changes it.
#[derive(Debug)]
pub struct EventResume {
    dir: PathBuf,
    len: u64,
    /// `None`: start a new file.
    prefix: Option<Sha256>,
}

impl EventResume {
    /// Opens the event file as checked: truncated to the recorded length, or new.
    pub fn open(self) -> Result<EventWriter, TrainError> {
        let Some(sha) = self.prefix else {
            return EventWriter::create(&self.dir);
        };
        let path = self.dir.join(EVENTS_FILE);
        let file = truncate_for_append(&path, self.len)?;
        Ok(EventWriter {
            file: BufWriter::new(file),
            path,
            len: self.len,
            sha,
        })
    }
}

impl EventWriter {
    /// Creates (or replaces) the event file in `dir` and writes the version record.
    pub fn create(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(EVENTS_FILE);
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut w = Self {
            file: BufWriter::new(file),
            path,
            len: 0,
            sha: Sha256::new(),
        };
        w.append(&version_event(now()))?;
        Ok(w)
    }

    /// Checks the event file in `dir` against the length and SHA-256 a checkpoint recorded,
    /// changing nothing; [`EventResume::open`] then truncates it. A run without one
    /// (`len == 0`, or the file is gone: TensorBoard files are a convenience, not part of
    /// the checkpoint) starts a new file, with a note when one was expected.
    pub fn check_resume(
        dir: &Path,
        len: u64,
        sha256: Option<&str>,
    ) -> Result<EventResume, TrainError> {
        let path = dir.join(EVENTS_FILE);
        let prefix = if len == 0 {
            None
        } else if !path.exists() {
            eprintln!(
                "note: {} is missing; TensorBoard events restart from this checkpoint",
                path.display()
            );
            None
        } else {
            Some(check_prefix(&path, len, sha256, "event file")?)
        };
        Ok(EventResume {
            dir: dir.to_path_buf(),
            len,
            prefix,
        })
    }

    /// SHA-256 of everything written so far.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.sha)
    }

    /// Bytes written so far (all flushed).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written (never true after [`EventWriter::create`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes one event of scalars at `step` and flushes. Nothing is written for an empty
    /// list.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f32)]) -> Result<(), TrainError> {
        if scalars.is_empty() {
            return Ok(());
        }
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.append(&scalar_event(now(), step, scalars))
    }

    fn append(&mut self, event: &[u8]) -> Result<(), TrainError> {
        let rec = record(event);
        self.file
            .write_all(&rec)
            .and_then(|_| self.file.flush())
            .map_err(io_err(&self.path))?;
        self.len += rec.len() as u64;
        self.sha.update(&rec);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_protobuf() {
        let mut v = Vec::new();
        varint(&mut v, 1);
        varint(&mut v, 300);
        varint(&mut v, (-1i64) as u64);
        assert_eq!(&v[..3], &[0x01, 0xac, 0x02]);
        assert_eq!(v.len(), 3 + 10);
    }

    #[test]
    fn masked_crc_of_known_input() {
        // CRC-32C("123456789") = 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let expected = 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), expected);
    }
}
