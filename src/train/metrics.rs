//! Metrics as CSV and JSON lines, flushed on every row.
//!
//! A trainer declares its columns once ([`MetricsWriter::create`]); each [`Row`] sets some of
//! them. The CSV has one fixed header (empty cells where a row has no value, so
//! `pandas.read_csv` gives NaN there); the JSON-lines file holds the same rows with only the
//! set keys. Numbers are written in Rust's shortest round-trip form, so a value read back
//! is bit-identical to the one written (resume equality is checked on these files).
//!
//! Numeric cells of rows that carry a `step` and an `event` are also written as TensorBoard
//! scalars tagged `<event>/<column>` (e.g. `eval/eval_return`) at that step, to
//! [`super::tensorboard::EVENTS_FILE`] in the same directory.
//!
//! Files are flushed after every row. A checkpoint records the files' lengths and the
//! SHA-256 of each file up to that length ([`MetricsWriter::positions`]); resuming checks
//! all three files against them first and only then truncates them back
//! ([`MetricsWriter::resume`]), dropping rows written after the checkpoint by the killed
//! process, which the resumed run writes again. A file damaged or edited before the
//! recorded length is refused, and nothing is changed.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::TrainError;
use super::checkpoint::sha256_hex;
use super::tensorboard::EventWriter;

/// File name of the CSV metrics.
pub const CSV_FILE: &str = "metrics.csv";
/// File name of the JSON-lines metrics.
pub const JSONL_FILE: &str = "metrics.jsonl";

/// A value in a metrics row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number (`f64`; non-finite values are written as `NaN`/`inf` in the CSV and as
    /// strings in JSON, which has no literal for them).
    Num(f64),
    /// An integer.
    Int(u64),
    /// A short text (e.g. the row's event kind).
    Text(String),
}

impl Value {
    fn csv(&self) -> String {
        match self {
            Value::Num(x) => format!("{x}"),
            Value::Int(n) => n.to_string(),
            Value::Text(s) => {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.clone()
                }
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Value::Num(x) if x.is_finite() => serde_json::Value::from(*x),
            Value::Num(x) => serde_json::Value::from(format!("{x}")),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::Text(s) => serde_json::Value::from(s.clone()),
        }
    }
}

/// One metrics row: `(column, value)` pairs in any order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    entries: Vec<(&'static str, Value)>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a number.
    pub fn num(mut self, column: &'static str, x: f64) -> Self {
        self.entries.push((column, Value::Num(x)));
        self
    }

    /// Sets a number if there is one.
    pub fn opt(self, column: &'static str, x: Option<f64>) -> Self {
        match x {
            Some(x) => self.num(column, x),
            None => self,
        }
    }

    /// Sets an integer.
    pub fn int(mut self, column: &'static str, n: u64) -> Self {
        self.entries.push((column, Value::Int(n)));
        self
    }

    /// Sets a text.
    pub fn text(mut self, column: &'static str, s: &str) -> Self {
        self.entries.push((column, Value::Text(s.to_string())));
        self
    }

    /// The value of `column`, if set.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v)
    }
}

/// Writes [`Row`]s to `metrics.csv` and `metrics.jsonl` in a run directory.
#[derive(Debug)]
pub struct MetricsWriter {
    columns: Vec<&'static str>,
    csv: BufWriter<File>,
    jsonl: BufWriter<File>,
    csv_path: PathBuf,
    jsonl_path: PathBuf,
    csv_len: u64,
    jsonl_len: u64,
    csv_sha: Sha256,
    jsonl_sha: Sha256,
    events: EventWriter,
}

/// Byte lengths of the metrics files and the SHA-256 of each up to that length (recorded
/// in checkpoints).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsPositions {
    /// Length of `metrics.csv`.
    pub csv: u64,
    /// Length of `metrics.jsonl`.
    pub jsonl: u64,
    /// Length of the TensorBoard event file (0 in checkpoints written before there was one).
    #[serde(default)]
    pub tfevents: u64,
    /// SHA-256 of the first `csv` bytes of `metrics.csv` (`None` in checkpoints written
    /// before checksums: those prefixes are not verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_sha256: Option<String>,
    /// SHA-256 of the first `jsonl` bytes of `metrics.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonl_sha256: Option<String>,
    /// SHA-256 of the first `tfevents` bytes of the event file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tfevents_sha256: Option<String>,
}

/// Reads `path` and checks that its first `len` bytes are the ones a checkpoint vouched
/// for (by their SHA-256; only the length where it recorded none); returns a hasher fed
/// with them.
pub(super) fn check_prefix(
    path: &Path,
    len: u64,
    sha256: Option<&str>,
    what: &str,
) -> Result<Sha256, TrainError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    if (bytes.len() as u64) < len {
        return Err(TrainError::Checkpoint(format!(
            "{} has {} bytes but the checkpoint recorded {len}: the {what} was truncated or \
             replaced",
            path.display(),
            bytes.len()
        )));
    }
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..len as usize]);
    if sha256.is_some_and(|recorded| sha256_hex(&hasher) != recorded) {
        return Err(TrainError::Checkpoint(format!(
            "the first {len} bytes of {} differ from those the checkpoint recorded (SHA-256): \
             the {what} was damaged or edited; refusing to resume over it",
            path.display()
        )));
    }
    Ok(hasher)
}

/// Opens `path` for appending after truncating it to `len` bytes.
pub(super) fn truncate_for_append(path: &Path, len: u64) -> Result<File, TrainError> {
    use std::io::Seek;
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_len(len).map_err(io_err(path))?;
    f.seek(std::io::SeekFrom::End(0)).map_err(io_err(path))?;
    Ok(f)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl MetricsWriter {
    /// Creates both files in `dir` (which must exist) and writes the CSV header.
    pub fn create(dir: &Path, columns: &[&'static str]) -> Result<Self, TrainError> {
        check_columns(columns)?;
        let csv_path = dir.join(CSV_FILE);
        let jsonl_path = dir.join(JSONL_FILE);
        let csv = File::create(&csv_path).map_err(io_err(&csv_path))?;
        let jsonl = File::create(&jsonl_path).map_err(io_err(&jsonl_path))?;
        let mut w = Self {
            columns: columns.to_vec(),
            csv: BufWriter::new(csv),
            jsonl: BufWriter::new(jsonl),
            csv_path,
            jsonl_path,
            csv_len: 0,
            jsonl_len: 0,
            csv_sha: Sha256::new(),
            jsonl_sha: Sha256::new(),
            events: EventWriter::create(dir)?,
        };
        let header = format!("{}\n", columns.join(","));
        w.csv
            .write_all(header.as_bytes())
            .map_err(io_err(&w.csv_path))?;
        w.csv.flush().map_err(io_err(&w.csv_path))?;
        w.csv_len = header.len() as u64;
        w.csv_sha.update(header.as_bytes());
        Ok(w)
    }

    /// Reopens the files of an interrupted run, truncated to `positions` (as recorded by the
    /// checkpoint being resumed). All three files are checked first (CSV header, lengths,
    /// SHA-256 of the recorded prefixes); nothing is truncated unless every check passes.
    pub fn resume(
        dir: &Path,
        columns: &[&'static str],
        positions: MetricsPositions,
    ) -> Result<Self, TrainError> {
        check_columns(columns)?;
        let csv_path = dir.join(CSV_FILE);
        let jsonl_path = dir.join(JSONL_FILE);
        let header = format!("{}\n", columns.join(","));
        let csv_sha = check_prefix(
            &csv_path,
            positions.csv,
            positions.csv_sha256.as_deref(),
            "metrics",
        )?;
        let jsonl_sha = check_prefix(
            &jsonl_path,
            positions.jsonl,
            positions.jsonl_sha256.as_deref(),
            "metrics",
        )?;
        // Only the header's bytes: `check_prefix` has already read the file.
        let mut head = vec![0u8; header.len()];
        let read_head = File::open(&csv_path).and_then(|mut f| {
            use std::io::Read;
            f.read_exact(&mut head)
        });
        if read_head.is_err() || head != header.as_bytes() {
            return Err(TrainError::Checkpoint(format!(
                "{} does not start with the expected header (different trainer or corrupt)",
                csv_path.display()
            )));
        }
        let events = EventWriter::check_resume(
            dir,
            positions.tfevents,
            positions.tfevents_sha256.as_deref(),
        )?;
        // Every check passed: only now change the files.
        let csv = truncate_for_append(&csv_path, positions.csv)?;
        let jsonl = truncate_for_append(&jsonl_path, positions.jsonl)?;
        Ok(Self {
            columns: columns.to_vec(),
            csv: BufWriter::new(csv),
            jsonl: BufWriter::new(jsonl),
            csv_path,
            jsonl_path,
            csv_len: positions.csv,
            jsonl_len: positions.jsonl,
            csv_sha,
            jsonl_sha,
            events: events.open()?,
        })
    }

    /// The declared columns.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// Current lengths of both files (everything written so far is flushed).
    pub fn positions(&self) -> MetricsPositions {
        MetricsPositions {
            csv: self.csv_len,
            jsonl: self.jsonl_len,
            tfevents: self.events.len(),
            csv_sha256: Some(sha256_hex(&self.csv_sha)),
            jsonl_sha256: Some(sha256_hex(&self.jsonl_sha)),
            tfevents_sha256: Some(self.events.sha256()),
        }
    }

    /// Appends a row to both files and flushes them. Errors on a column that was not
    /// declared.
    pub fn write(&mut self, row: &Row) -> Result<(), TrainError> {
        let mut cells = vec![String::new(); self.columns.len()];
        let mut json: Vec<Option<String>> = vec![None; self.columns.len()];
        for (column, value) in &row.entries {
            let i = self
                .columns
                .iter()
                .position(|c| c == column)
                .ok_or_else(|| {
                    TrainError::Config(format!("metrics column `{column}` was not declared"))
                })?;
            cells[i] = value.csv();
            json[i] = Some(format!(
                "{}:{}",
                serde_json::Value::from(*column),
                value.json()
            ));
        }
        // Keys in column order (serde_json's map would sort them), so that rows read the
        // same in both files.
        let fields: Vec<String> = json.into_iter().flatten().collect();
        let json_line = format!("{{{}}}\n", fields.join(","));
        let csv_line = format!("{}\n", cells.join(","));
        self.csv
            .write_all(csv_line.as_bytes())
            .and_then(|_| self.csv.flush())
            .map_err(io_err(&self.csv_path))?;
        self.jsonl
            .write_all(json_line.as_bytes())
            .and_then(|_| self.jsonl.flush())
            .map_err(io_err(&self.jsonl_path))?;
        self.csv_len += csv_line.len() as u64;
        self.jsonl_len += json_line.len() as u64;
        self.csv_sha.update(csv_line.as_bytes());
        self.jsonl_sha.update(json_line.as_bytes());
        self.write_scalars(row)
    }

    fn write_scalars(&mut self, row: &Row) -> Result<(), TrainError> {
        let (Some(Value::Int(step)), Some(Value::Text(event))) =
            (row.get("step"), row.get("event"))
        else {
            return Ok(());
        };
        let tags: Vec<(String, f32)> = row
            .entries
            .iter()
            .filter_map(|(column, value)| {
                let x = match value {
                    Value::Num(x) => *x as f32,
                    Value::Int(n) if *column != "step" => *n as f32,
                    _ => return None,
                };
                Some((format!("{event}/{column}"), x))
            })
            .collect();
        let scalars: Vec<(&str, f32)> = tags.iter().map(|(t, x)| (t.as_str(), *x)).collect();
        let step = *step;
        self.events.scalars(step, &scalars)
    }
}

fn check_columns(columns: &[&'static str]) -> Result<(), TrainError> {
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty() || c.contains([',', '"', '\n']) || columns[..i].contains(c) {
            return Err(TrainError::Config(format!(
                "invalid or duplicate metrics column `{c}`"
            )));
        }
    }
    Ok(())
}
