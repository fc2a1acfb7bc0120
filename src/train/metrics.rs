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
//! Files are flushed after every row. A checkpoint records the files' lengths
//! ([`MetricsWriter::positions`]); resuming truncates the files back to them
//! ([`MetricsWriter::resume`]), dropping rows written after the checkpoint by the killed
//! process, which the resumed run writes again.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::TrainError;
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
    events: EventWriter,
}

/// Byte lengths of the metrics files (recorded in checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsPositions {
    /// Length of `metrics.csv`.
    pub csv: u64,
    /// Length of `metrics.jsonl`.
    pub jsonl: u64,
    /// Length of the TensorBoard event file (0 in checkpoints written before there was one).
    #[serde(default)]
    pub tfevents: u64,
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
            events: EventWriter::create(dir)?,
        };
        let header = format!("{}\n", columns.join(","));
        w.csv
            .write_all(header.as_bytes())
            .map_err(io_err(&w.csv_path))?;
        w.csv.flush().map_err(io_err(&w.csv_path))?;
        w.csv_len = header.len() as u64;
        Ok(w)
    }

    /// Reopens the files of an interrupted run, truncated to `positions` (as recorded by the
    /// checkpoint being resumed), and checks that the CSV header matches `columns`.
    pub fn resume(
        dir: &Path,
        columns: &[&'static str],
        positions: MetricsPositions,
    ) -> Result<Self, TrainError> {
        check_columns(columns)?;
        let csv_path = dir.join(CSV_FILE);
        let jsonl_path = dir.join(JSONL_FILE);
        let header = format!("{}\n", columns.join(","));
        let existing = std::fs::read(&csv_path).map_err(io_err(&csv_path))?;
        if !existing.starts_with(header.as_bytes()) {
            return Err(TrainError::Checkpoint(format!(
                "{} does not start with the expected header (different trainer or corrupt)",
                csv_path.display()
            )));
        }
        let open = |path: &Path, len: u64| -> Result<File, TrainError> {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            let actual = f.metadata().map_err(io_err(path))?.len();
            if actual < len {
                return Err(TrainError::Checkpoint(format!(
                    "{} has {actual} bytes but the checkpoint recorded {len}: the metrics were \
                     truncated or replaced",
                    path.display()
                )));
            }
            f.set_len(len).map_err(io_err(path))?;
            let mut f = f;
            use std::io::Seek;
            f.seek(std::io::SeekFrom::End(0)).map_err(io_err(path))?;
            Ok(f)
        };
        let csv = open(&csv_path, positions.csv)?;
        let jsonl = open(&jsonl_path, positions.jsonl)?;
        Ok(Self {
            columns: columns.to_vec(),
            csv: BufWriter::new(csv),
            jsonl: BufWriter::new(jsonl),
            csv_path,
            jsonl_path,
            csv_len: positions.csv,
            jsonl_len: positions.jsonl,
            events: EventWriter::resume(dir, positions.tfevents)?,
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
