//! Run directories: `runs/<env>__<algo>__<seed>__<unix time>/`, as CleanRL names them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::TrainError;
use crate::files::FileLock;

/// The file holding a run's resolved configuration.
pub const CONFIG_FILE: &str = "config.json";
/// The advisory lock file of a run directory, held by the process training it.
pub const LOCK_FILE: &str = ".lock";

/// Takes the lock of the run in `dir`, so that two processes never train (or resume) the
/// same run at once; held until the returned value is dropped.
pub fn lock_run_dir(dir: &Path) -> Result<FileLock, TrainError> {
    let path = dir.join(LOCK_FILE);
    match FileLock::try_take(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(run_dir_err(
            dir,
            std::io::Error::other(format!(
                "the run is in use by another stackrl process (lock {}); wait for it to \
                 finish or stop it",
                path.display()
            )),
        )),
        Err(e) => Err(run_dir_err(&path, e)),
    }
}

/// CleanRL's run name `<env>__<algo>__<seed>__<unix time>`.
pub fn run_name(env: &str, algo: &str, seed: u64, unix_time: u64) -> String {
    format!("{env}__{algo}__{seed}__{unix_time}")
}

/// Seconds since the Unix epoch.
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run_dir_err(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::RunDir {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Creates the directory of a new run, takes its lock ([`lock_run_dir`]) and writes
/// `config.json` into it.
///
/// With `explicit`, that directory is used (created if missing); it must not already hold a
/// run. Otherwise `<root>/<name>` is used, with `_1`, `_2`, ... appended if two runs start
/// in the same second. Errors ([`TrainError::RunDir`]) if the directory cannot be created or
/// written.
pub fn create_run_dir(
    explicit: Option<&Path>,
    root: &Path,
    name: &str,
    config_json: &str,
) -> Result<(PathBuf, FileLock), TrainError> {
    let (dir, lock) = match explicit {
        Some(d) => {
            let holds_run = || {
                Err(TrainError::Config(format!(
                    "{} already holds a run (it has a {CONFIG_FILE}); continue it with \
                     --resume {} or choose another --run-dir",
                    d.display(),
                    d.display()
                )))
            };
            if d.join(CONFIG_FILE).exists() {
                return holds_run();
            }
            fs::create_dir_all(d).map_err(|e| run_dir_err(d, e))?;
            let lock = lock_run_dir(d)?;
            // Checked again under the lock: another process may have started a run here.
            if d.join(CONFIG_FILE).exists() {
                return holds_run();
            }
            (d.to_path_buf(), lock)
        }
        None => {
            fs::create_dir_all(root).map_err(|e| run_dir_err(root, e))?;
            let mut k = 0;
            let dir = loop {
                let candidate = if k == 0 {
                    root.join(name)
                } else {
                    root.join(format!("{name}_{k}"))
                };
                match fs::create_dir(&candidate) {
                    Ok(()) => break candidate,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
                    Err(e) => return Err(run_dir_err(&candidate, e)),
                }
            };
            let lock = lock_run_dir(&dir)?;
            (dir, lock)
        }
    };
    let path = dir.join(CONFIG_FILE);
    crate::files::write_atomic(&path, config_json.as_bytes()).map_err(|e| run_dir_err(&dir, e))?;
    Ok((dir, lock))
}

/// A run configuration as `config.json` text.
pub fn config_to_json<C: serde::Serialize>(config: &C) -> Result<String, TrainError> {
    serde_json::to_string_pretty(config).map_err(|source| TrainError::Json {
        what: "cannot serialise the config".into(),
        source,
    })
}

/// Hash of a run configuration without the keys that do not change its results: the
/// thread count (rounding only) and `keep_checkpoints` (bookkeeping), nor options added
/// since while they hold the value that means what runs did before them. Checkpoints record it,
/// so a resume with a changed configuration is refused.
pub fn config_hash<C: serde::Serialize>(config: &C) -> Result<String, TrainError> {
    let mut v = serde_json::to_value(config).map_err(|source| TrainError::Json {
        what: "cannot serialise the config".into(),
        source,
    })?;
    if let serde_json::Value::Object(m) = &mut v {
        m.remove("threads");
        m.remove("keep_checkpoints");
        // Options added later, left out while they hold the value that means what runs did
        // before they existed, so that those runs' checkpoints still match.
        let legacy = [
            ("implicit_max_ratio", serde_json::Value::Null),
            ("stac_estimator", serde_json::Value::from("exact")),
        ];
        for (added, before) in legacy {
            if m.get(added) == Some(&before) {
                m.remove(added);
            }
        }
    }
    Ok(super::checkpoint::json_hash(&v))
}

/// Reads the `config.json` of `run_dir` (not validated: the caller's type does that).
pub fn read_config<C: serde::de::DeserializeOwned>(run_dir: &Path) -> Result<C, TrainError> {
    let path = run_dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(TrainError::Config(format!(
            "{} is not a run directory (no {CONFIG_FILE})",
            run_dir.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|source| TrainError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        what: path.display().to_string(),
        source,
    })
}

/// The keys of a configuration object (those `defaults` serialises).
pub fn config_keys<C: serde::Serialize>(defaults: &C) -> Vec<String> {
    match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Layers a configuration: `defaults`, then `file` (a JSON object, e.g. `--config FILE`),
/// then `overrides` (the options given on the command line). A key `defaults` does not have
/// is an error naming the valid ones (`family` follows "unknown option `k`" in the message).
/// Returns the configuration (not validated) and the keys either layer set.
pub fn merge_layers<C: serde::Serialize + serde::de::DeserializeOwned>(
    defaults: &C,
    file: Option<&serde_json::Value>,
    overrides: &serde_json::Map<String, serde_json::Value>,
    family: &str,
) -> Result<(C, std::collections::BTreeSet<String>), TrainError> {
    let mut merged = match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(TrainError::Config("cannot serialise the defaults".into())),
    };
    let valid: std::collections::BTreeSet<String> = merged.keys().cloned().collect();
    let mut given = std::collections::BTreeSet::new();
    let empty = serde_json::Map::new();
    let file_map = match file {
        None => &empty,
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => {
            return Err(TrainError::Config(
                "the config file must hold a JSON object".into(),
            ));
        }
    };
    for layer in [file_map, overrides] {
        for (k, v) in layer {
            if !valid.contains(k) {
                return Err(TrainError::Config(format!(
                    "unknown option `{k}`{family}; valid options: {}",
                    valid.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            merged.insert(k.clone(), v.clone());
            given.insert(k.clone());
        }
    }
    let config = serde_json::from_value(serde_json::Value::Object(merged)).map_err(|source| {
        TrainError::Json {
            what: "invalid configuration".into(),
            source,
        }
    })?;
    Ok((config, given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_option_added_later_leaves_the_hash_of_older_configs_unchanged() {
        let old = serde_json::json!({"env": "CartPole-v1", "lambda": 0.0, "threads": 1});
        let mut unset = old.clone();
        unset["implicit_max_ratio"] = serde_json::Value::Null;
        let mut set = old.clone();
        set["implicit_max_ratio"] = serde_json::json!(1.0);
        assert_eq!(config_hash(&old).unwrap(), config_hash(&unset).unwrap());
        assert_ne!(config_hash(&old).unwrap(), config_hash(&set).unwrap());
        let mut exact = old.clone();
        exact["stac_estimator"] = serde_json::json!("exact");
        assert_eq!(config_hash(&old).unwrap(), config_hash(&exact).unwrap());
        exact["stac_estimator"] = serde_json::json!("paper");
        assert_ne!(config_hash(&old).unwrap(), config_hash(&exact).unwrap());
        let mut more_threads = old.clone();
        more_threads["threads"] = serde_json::json!(2);
        assert_eq!(
            config_hash(&old).unwrap(),
            config_hash(&more_threads).unwrap()
        );
    }
}
