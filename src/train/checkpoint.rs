//! Atomic checkpoints.
//!
//! A run keeps its checkpoints in `<run>/checkpoints/step_<step>/`. [`Checkpointer::save`]
//! lets the trainer write its files into a fresh temporary directory, fsyncs every file and
//! the directory, renames it into place, fsyncs the parent, and only then replaces the
//! `latest` pointer file (written to a temporary file, fsynced, renamed). A process killed at
//! any moment therefore leaves `latest` naming a complete checkpoint (or no `latest` at all,
//! before the first one); half-written temporary directories are removed the next time a
//! [`Checkpointer`] is opened. Older checkpoints beyond `keep` are deleted after `latest`
//! has moved on.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::TrainError;

/// Sub-directory of a run holding its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The pointer file naming the newest complete checkpoint.
pub const LATEST: &str = "latest";
const TMP_SUFFIX: &str = ".tmp";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs a file or directory.
pub fn sync_path(path: &Path) -> Result<(), TrainError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Writes `bytes` to `path` through a temporary file that is fsynced and renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension(format!(
        "{}{TMP_SUFFIX}",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent() {
        sync_path(parent)?;
    }
    Ok(())
}

/// Saves named tensors as a safetensors file (the caller's directory is synced by
/// [`Checkpointer::save`]).
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
    candle_core::safetensors::save(tensors, path)
        .map_err(|e| TrainError::Checkpoint(format!("cannot write {}: {e}", path.display())))
}

/// Loads a safetensors file onto the CPU; a missing or corrupt file is a
/// [`TrainError::Checkpoint`] naming it.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    if !path.is_file() {
        return Err(TrainError::Checkpoint(format!(
            "missing {}",
            path.display()
        )));
    }
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        TrainError::Checkpoint(format!("{} is corrupt or unreadable: {e}", path.display()))
    })
}

/// Writes and finds the checkpoints of one run.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
    keep: usize,
}

impl Checkpointer {
    /// Opens (creating it if needed) `<run_dir>/checkpoints`, keeping the newest `keep`
    /// checkpoints (at least 1), and removes temporary directories left by a killed save.
    pub fn open(run_dir: &Path, keep: usize) -> Result<Self, TrainError> {
        let dir = run_dir.join(CHECKPOINTS_DIR);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(TMP_SUFFIX) {
                if path.is_dir() {
                    fs::remove_dir_all(&path).map_err(io(&path))?;
                } else {
                    fs::remove_file(&path).map_err(io(&path))?;
                }
            }
        }
        Ok(Self {
            dir,
            keep: keep.max(1),
        })
    }

    /// The checkpoints directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory name of the checkpoint at `step` (zero-padded so names sort by step).
    pub fn name(step: u64) -> String {
        format!("step_{step:012}")
    }

    /// Writes a checkpoint for `step`: `write` fills the (empty, temporary) directory it is
    /// given; then the files are fsynced, the directory is renamed into place, `latest` is
    /// updated and old checkpoints are pruned. Returns the checkpoint's path.
    pub fn save<F>(&self, step: u64, write: F) -> Result<PathBuf, TrainError>
    where
        F: FnOnce(&Path) -> Result<(), TrainError>,
    {
        let name = Self::name(step);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir(&tmp).map_err(io(&tmp))?;
        write(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
            sync_path(&entry.map_err(io(&tmp))?.path())?;
        }
        sync_path(&tmp)?;
        let fin = self.dir.join(&name);
        if fin.exists() {
            // A checkpoint of the same step from an earlier, interrupted attempt of this run.
            fs::remove_dir_all(&fin).map_err(io(&fin))?;
        }
        fs::rename(&tmp, &fin).map_err(io(&fin))?;
        sync_path(&self.dir)?;
        write_atomic(&self.dir.join(LATEST), format!("{name}\n").as_bytes())?;
        self.prune(&name)?;
        Ok(fin)
    }

    fn prune(&self, latest: &str) -> Result<(), TrainError> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| n.starts_with("step_") && !n.ends_with(TMP_SUFFIX))
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(self.keep);
        for n in names.iter().take(excess) {
            if n != latest {
                let p = self.dir.join(n);
                fs::remove_dir_all(&p).map_err(io(&p))?;
            }
        }
        Ok(())
    }

    /// The newest complete checkpoint of `run_dir`, or `None` if it has none yet.
    ///
    /// Without a `latest` pointer (a kill between a first checkpoint's rename and its
    /// pointer, or a pointer removed by hand) the newest `step_*` directory is taken, and a
    /// note says so on stderr: a checkpoint directory only gets its final name once it is
    /// complete, and starting over would discard the run's progress.
    pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>, TrainError> {
        let pointer = run_dir.join(CHECKPOINTS_DIR).join(LATEST);
        if !pointer.exists() {
            let dir = run_dir.join(CHECKPOINTS_DIR);
            let mut names: Vec<String> = match fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| n.starts_with("step_") && !n.ends_with(TMP_SUFFIX))
                    .collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            let Some(newest) = names.pop() else {
                return Ok(None);
            };
            eprintln!(
                "note: {} is missing; using the newest complete checkpoint, {newest}",
                pointer.display()
            );
            return Ok(Some(dir.join(newest)));
        }
        let name = fs::read_to_string(&pointer).map_err(io(&pointer))?;
        let name = name.trim();
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(TrainError::Checkpoint(format!(
                "{} does not name a checkpoint: {name:?}",
                pointer.display()
            )));
        }
        let path = run_dir.join(CHECKPOINTS_DIR).join(name);
        if !path.is_dir() {
            return Err(TrainError::Checkpoint(format!(
                "{} names {name}, which does not exist",
                pointer.display()
            )));
        }
        Ok(Some(path))
    }
}

/// A stable 64-bit FNV-1a hash of a JSON value with object keys sorted, as 16 hex digits
/// (stable across Rust versions and platforms, unlike `std`'s hashers).
pub fn json_hash(value: &serde_json::Value) -> String {
    fn canonical(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push(':');
                    canonical(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canonical(value, &mut s);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
