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
//!
//! Every checkpoint carries a [`MANIFEST_FILE`] (written last, before the rename) with the
//! size and SHA-256 of each of its other files; [`verify`] checks it, and both resume and
//! render refuse a checkpoint whose files were damaged, edited, removed or added since.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TrainError;

/// Sub-directory of a run holding its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The pointer file naming the newest complete checkpoint.
pub const LATEST: &str = "latest";
const TMP_SUFFIX: &str = ".tmp";
/// A checkpoint's manifest: size and SHA-256 of every other file in the checkpoint.
pub const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_FORMAT: &str = "stackrl-checkpoint-manifest-v1";

/// The contents of [`MANIFEST_FILE`].
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    files: BTreeMap<String, FileSum>,
}

/// Size and SHA-256 (lower-case hex) of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileSum {
    bytes: u64,
    sha256: String,
}

/// SHA-256 of a hasher's input so far, as lower-case hex (the hasher is not consumed).
pub fn sha256_hex(hasher: &Sha256) -> String {
    format!("{:x}", hasher.clone().finalize())
}

/// Size and SHA-256 of a file, read in chunks.
fn sum_file(path: &Path) -> Result<FileSum, TrainError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        sha256: sha256_hex(&hasher),
    })
}

/// The names of the plain files in a checkpoint directory (sorted), without the manifest.
fn checkpoint_files(dir: &Path) -> Result<Vec<String>, TrainError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST_FILE {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Writes the manifest of the files in `dir` (called by [`Checkpointer::save`] once the
/// trainer has written them).
fn write_manifest(dir: &Path) -> Result<(), TrainError> {
    let mut files = BTreeMap::new();
    for name in checkpoint_files(dir)? {
        files.insert(name.clone(), sum_file(&dir.join(&name))?);
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        files,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|source| TrainError::Json {
        what: "cannot serialise the checkpoint manifest".into(),
        source,
    })?;
    let path = dir.join(MANIFEST_FILE);
    fs::write(&path, text).map_err(io(&path))
}

/// Whether the checkpoint in `dir` predates checksums: its `meta.json` records metrics
/// positions without their SHA-256 (every checkpoint written since records both, so a
/// missing manifest beside such a `meta.json` is damage, not age).
fn is_legacy(dir: &Path) -> bool {
    fs::read_to_string(dir.join("meta.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("metrics").cloned())
        .is_some_and(|m| m.get("csv").is_some() && m.get("csv_sha256").is_none())
}

/// Checks the checkpoint in `dir` against its manifest: every file it lists is there with
/// the recorded size and SHA-256, and there is no other file. Errors
/// ([`TrainError::Checkpoint`]) name the first file that differs. A checkpoint written
/// before checksums existed (no manifest, no metrics checksums) is accepted with a note.
pub fn verify(dir: &Path) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Checkpoint(format!("{}: {m}", dir.display())));
    let path = dir.join(MANIFEST_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_legacy(dir) => {
            eprintln!(
                "note: {} was written by a stackrl without checkpoint checksums; its files \
                 cannot be verified",
                dir.display()
            );
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return bad(format!(
                "no {MANIFEST_FILE} (the checksums of its files): the checkpoint is damaged                  or was written by a stackrl before 0.1's checksums, and its state cannot be                  trusted"
            ));
        }
        Err(e) => return bad(format!("cannot read {MANIFEST_FILE}: {e}")),
    };
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return bad(format!("{MANIFEST_FILE} is corrupt: {e}")),
    };
    if manifest.format != MANIFEST_FORMAT {
        return bad(format!(
            "{MANIFEST_FILE} has format {:?}, expected {MANIFEST_FORMAT:?}",
            manifest.format
        ));
    }
    let present = checkpoint_files(dir)?;
    for name in &present {
        if !manifest.files.contains_key(name) {
            return bad(format!("{name} is not listed in its {MANIFEST_FILE}"));
        }
    }
    for (name, recorded) in &manifest.files {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return bad(format!("{MANIFEST_FILE} lists an invalid name {name:?}"));
        }
        if !present.contains(name) {
            return bad(format!("{name} is missing"));
        }
        let actual = sum_file(&dir.join(name))?;
        if actual.bytes != recorded.bytes {
            return bad(format!(
                "{name} has {} bytes, but the checkpoint recorded {}: it was damaged or \
                 replaced",
                actual.bytes, recorded.bytes
            ));
        }
        if actual.sha256 != recorded.sha256 {
            return bad(format!(
                "{name} does not match its SHA-256 in {MANIFEST_FILE}: it was damaged or \
                 edited"
            ));
        }
    }
    Ok(())
}

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
            // A checkpoint being written (`step_*.tmp`) or a pointer being replaced
            // (`.latest.tmp-<pid>`, see `files::write_atomic`) by a killed process.
            if name.ends_with(TMP_SUFFIX) || (name.starts_with('.') && name.contains(".tmp-")) {
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
        write_manifest(&tmp)?;
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
        let latest = self.dir.join(LATEST);
        crate::files::write_atomic(&latest, format!("{name}\n").as_bytes()).map_err(io(&latest))?;
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
