//! A sweep's grid and its cells: environments × algorithm labels × `--set` axes × seeds,
//! from command-line flags or a TOML spec file, expanded into one `stackrl train` command
//! line per cell.
//!
//! # Algorithm labels
//!
//! An algorithm is a name of `stackrl train --algo` (`sac`, `res-sac`, `stack-sac`, `ac`,
//! `stac`) or paper 001's `ALGO-x-y` label (Sec. 6.2): `x` critic updates and `y` res-critic
//! updates per actor update, so `sac-10-0` is `--algo sac --critic-updates 10` and
//! `res-sac-10-10` is `--algo res-sac --critic-updates 10 --res-updates 10`. `y` must be 0
//! except for Res-SAC, which needs `y ≥ 1`.
//!
//! # Spec file
//!
//! ```toml
//! name = "fig3"            # optional
//! workers = 2              # optional; --workers overrides
//!
//! [[grid]]
//! env = ["HalfCheetah-v5"]
//! algo = ["sac-1-0", "sac-10-0", "res-sac-10-10", "stack-sac-10-0"]
//! seeds = "0-4"            # or [0, 1, 2]
//! steps = 300000
//! [grid.set]
//! env-steps-per-update = 10   # a fixed value
//! lr = [3e-4, 1e-3]           # an axis (hidden: [[128, 128], [256, 256]])
//! ```
//!
//! Top-level `env`, `algo`, `seeds`, `steps` and `[set]` are defaults that every
//! `[[grid]]` table may override (a spec with no `[[grid]]` is one grid).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::SweepError;

/// Options a sweep sets itself; `--set` may not name them.
pub const RESERVED: &[&str] = &[
    "env",
    "algo",
    "seed",
    "steps",
    "run_dir",
    "runs_root",
    "resume",
    "config",
    "progress",
    "interrupt_at",
];

/// Options whose value is a comma-separated list (an axis of them separates values by `|`).
pub const LIST_OPTIONS: &[&str] = &["hidden"];

/// One value of a `--set` option: the text given to `stackrl train --KEY=TEXT`.
pub type SetValue = String;

/// A `--set` option: the key (`snake_case`) and its values (more than one: a grid axis).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetOption {
    /// Option name with `_` (as in `config.json`).
    pub key: String,
    /// Values; a grid axis when there are several.
    pub values: Vec<SetValue>,
}

/// One rectangular grid of cells.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Environment ids.
    pub envs: Vec<String>,
    /// Algorithm labels (see the module docs).
    pub algos: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Environment steps of every cell (`None`: `stackrl train`'s default for the family).
    pub steps: Option<u64>,
    /// Further `train` options, fixed or as axes.
    pub set: Vec<SetOption>,
    /// A name for this grid's cells in place of the algorithm label (one algorithm only),
    /// e.g. to tell apart two grids of the same algorithm with different fixed options.
    pub label: Option<String>,
}

/// A whole sweep: one or more grids.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepSpec {
    /// Optional name (for the display).
    pub name: Option<String>,
    /// Worker processes (`None`: the command line or the default decides).
    pub workers: Option<usize>,
    /// The grids.
    pub grids: Vec<Grid>,
}

/// One cell: a `stackrl train` command line and where its run directory goes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// Run-directory name inside the sweep's output folder:
    /// `<env>__<label>__<seed>` (the label's `=`/`,` kept; `/` and spaces replaced).
    pub name: String,
    /// Environment id.
    pub env: String,
    /// The group this cell belongs to in reports: the algorithm label, followed by the
    /// values of the grid's axes (`sac-10-0 lr=0.001`).
    pub label: String,
    /// Seed.
    pub seed: u64,
    /// The `stackrl train` options of the cell (without `--run-dir` and `--progress`).
    pub args: Vec<String>,
    /// Threads the cell uses (its `--threads`, default 1): its CPU request.
    pub threads: usize,
}

/// The `train` options an algorithm label stands for: the algorithm name and, for an
/// `ALGO-x-y` label, `critic_updates` and `res_updates`.
pub fn parse_label(label: &str) -> Result<(String, Vec<(String, String)>), SweepError> {
    const PLAIN: &[&str] = &["sac", "res-sac", "stack-sac", "ac", "stac"];
    if PLAIN.contains(&label) {
        return Ok((label.to_string(), Vec::new()));
    }
    let bad = || {
        SweepError::Spec(format!(
            "unknown algorithm '{label}'; valid: {} or ALGO-x-y with ALGO one of sac, \
             res-sac, stack-sac (e.g. sac-10-0, res-sac-10-10)",
            PLAIN.join(", ")
        ))
    };
    let mut parts = label.rsplitn(3, '-');
    let (y, x, algo) = (
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
    );
    if !["sac", "res-sac", "stack-sac"].contains(&algo) {
        return Err(bad());
    }
    let (x, y): (u64, u64) = match (x.parse(), y.parse()) {
        (Ok(x), Ok(y)) => (x, y),
        _ => return Err(bad()),
    };
    if x == 0 {
        return Err(SweepError::Spec(format!(
            "{label}: x (critic updates per actor update) must be at least 1"
        )));
    }
    let mut opts = vec![("critic_updates".to_string(), x.to_string())];
    match (algo, y) {
        ("res-sac", 0) => {
            return Err(SweepError::Spec(format!(
                "{label}: Res-SAC needs y (res-critic updates per actor update) ≥ 1"
            )));
        }
        ("res-sac", y) => opts.push(("res_updates".into(), y.to_string())),
        (_, 0) => {}
        (_, _) => {
            return Err(SweepError::Spec(format!(
                "{label}: only res-sac has a res-critic; use {algo}-{x}-0"
            )));
        }
    }
    Ok((algo.to_string(), opts))
}

/// Parses seeds: `0,1,5`, `0-4`, or a mix (`0-2,7`).
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, SweepError> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || SweepError::Spec(format!("bad seeds '{text}': expected e.g. 0,1,2 or 0-4"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().map_err(|_| bad())?, {
                    b.trim().parse().map_err(|_| bad())?
                });
                if b < a || b - a >= 100_000 {
                    return Err(bad());
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(part.parse().map_err(|_| bad())?),
        }
    }
    if seeds.is_empty() {
        return Err(SweepError::Spec("no seeds given".into()));
    }
    let unique: BTreeSet<u64> = seeds.iter().copied().collect();
    if unique.len() != seeds.len() {
        return Err(SweepError::Spec(format!("seed listed twice in '{text}'")));
    }
    Ok(seeds)
}

/// Normalises an option name: `learning-starts` → `learning_starts`.
pub fn option_key(name: &str) -> String {
    name.trim().trim_start_matches("--").replace('-', "_")
}

/// Parses one `--set KEY=V1,V2` flag.
pub fn parse_set(text: &str) -> Result<SetOption, SweepError> {
    let (key, values) = text.split_once('=').ok_or_else(|| {
        SweepError::Spec(format!(
            "--set {text}: expected KEY=VALUE or KEY=V1,V2 (e.g. learning-starts=1000)"
        ))
    })?;
    let key = option_key(key);
    let sep = if LIST_OPTIONS.contains(&key.as_str()) {
        '|'
    } else {
        ','
    };
    let values: Vec<String> = values.split(sep).map(|v| v.trim().to_string()).collect();
    make_set(key, values)
}

fn make_set(key: String, values: Vec<String>) -> Result<SetOption, SweepError> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(SweepError::Spec(format!("bad option name '{key}'")));
    }
    if RESERVED.contains(&key.as_str()) {
        return Err(SweepError::Spec(format!(
            "--set {}: the sweep sets this itself ({})",
            key.replace('_', "-"),
            match key.as_str() {
                "env" | "algo" | "seed" | "steps" => "use --env, --algo, --seeds, --steps",
                _ => "each cell gets its own run directory and progress",
            }
        )));
    }
    if values.is_empty() || values.iter().any(|v| v.is_empty()) {
        return Err(SweepError::Spec(format!("--set {key}: empty value")));
    }
    let unique: BTreeSet<&String> = values.iter().collect();
    if unique.len() != values.len() {
        return Err(SweepError::Spec(format!(
            "--set {key}: a value is listed twice"
        )));
    }
    Ok(SetOption { key, values })
}

fn toml_scalar(key: &str, v: &toml::Value) -> Result<String, SweepError> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => {
            if !f.is_finite() {
                return Err(SweepError::Spec(format!("set.{key}: {f} is not finite")));
            }
            format!("{f:?}")
        }
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(a) if LIST_OPTIONS.contains(&key) => a
            .iter()
            .map(|x| toml_scalar(key, x))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => {
            return Err(SweepError::Spec(format!(
                "set.{key}: unsupported value {other:?}"
            )));
        }
    })
}

fn toml_set(table: &toml::Table) -> Result<Vec<SetOption>, SweepError> {
    let mut out = Vec::new();
    for (k, v) in table {
        let key = option_key(k);
        let is_list = LIST_OPTIONS.contains(&key.as_str());
        let values = match v {
            // An axis: an array, except a list option's single value (an array of scalars).
            toml::Value::Array(a) if !is_list || a.iter().all(|x| x.is_array()) => a
                .iter()
                .map(|x| toml_scalar(&key, x))
                .collect::<Result<Vec<_>, _>>()?,
            other => vec![toml_scalar(&key, other)?],
        };
        out.push(make_set(key, values)?);
    }
    Ok(out)
}

fn toml_strings(v: &toml::Value, what: &str) -> Result<Vec<String>, SweepError> {
    match v {
        toml::Value::String(s) => Ok(s.split(',').map(|x| x.trim().to_string()).collect()),
        toml::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| SweepError::Spec(format!("{what}: expected strings")))
            })
            .collect(),
        _ => Err(SweepError::Spec(format!(
            "{what}: expected a string or an array of strings"
        ))),
    }
}

fn toml_seeds(v: &toml::Value) -> Result<Vec<u64>, SweepError> {
    match v {
        toml::Value::String(s) => parse_seeds(s),
        toml::Value::Integer(i) => parse_seeds(&i.to_string()),
        toml::Value::Array(a) => {
            let text: Vec<String> = a
                .iter()
                .map(|x| {
                    x.as_integer()
                        .filter(|i| *i >= 0)
                        .map(|i| i.to_string())
                        .ok_or_else(|| SweepError::Spec("seeds: expected integers ≥ 0".into()))
                })
                .collect::<Result<_, _>>()?;
            parse_seeds(&text.join(","))
        }
        _ => Err(SweepError::Spec(
            "seeds: expected \"0-4\" or [0, 1, 2]".into(),
        )),
    }
}

fn toml_grid(t: &toml::Table, base: &Grid, what: &str) -> Result<Grid, SweepError> {
    const KEYS: &[&str] = &["env", "algo", "seeds", "steps", "set", "label"];
    for k in t.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(SweepError::Spec(format!(
                "{what}: unknown key '{k}'; valid: {}",
                KEYS.join(", ")
            )));
        }
    }
    let mut g = base.clone();
    if let Some(v) = t.get("env") {
        g.envs = toml_strings(v, "env")?;
    }
    if let Some(v) = t.get("algo") {
        g.algos = toml_strings(v, "algo")?;
    }
    if let Some(v) = t.get("seeds") {
        g.seeds = toml_seeds(v)?;
    }
    if let Some(v) = t.get("steps") {
        g.steps = Some(
            v.as_integer()
                .filter(|s| *s > 0)
                .ok_or_else(|| SweepError::Spec(format!("{what}: steps must be an integer ≥ 1")))?
                as u64,
        );
    }
    if let Some(v) = t.get("label") {
        let label = v
            .as_str()
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| SweepError::Spec(format!("{what}: label must be a non-empty string")))?;
        g.label = Some(label.trim().to_string());
    }
    if let Some(v) = t.get("set") {
        let table = v
            .as_table()
            .ok_or_else(|| SweepError::Spec(format!("{what}: set must be a table")))?;
        for opt in toml_set(table)? {
            g.set.retain(|o| o.key != opt.key);
            g.set.push(opt);
        }
    }
    Ok(g)
}

impl SweepSpec {
    /// Reads a TOML spec file (see the module docs).
    pub fn from_toml_file(path: &Path) -> Result<Self, SweepError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SweepError::Spec(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| SweepError::Spec(format!("{}: {}", path.display(), e)))
    }

    /// Parses a TOML spec.
    pub fn from_toml(text: &str) -> Result<Self, SweepError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| SweepError::Spec(e.to_string()))?;
        const KEYS: &[&str] = &[
            "name", "workers", "grid", "env", "algo", "seeds", "steps", "set",
        ];
        for k in doc.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(SweepError::Spec(format!(
                    "unknown key '{k}'; valid: {}",
                    KEYS.join(", ")
                )));
            }
        }
        let mut top = doc.clone();
        top.remove("name");
        top.remove("workers");
        let grids_v = top.remove("grid");
        if top.contains_key("label") {
            return Err(SweepError::Spec("label belongs in a [[grid]] table".into()));
        }
        let base = toml_grid(&top, &Grid::default(), "top level")?;
        let grids = match grids_v {
            None => vec![base],
            Some(toml::Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let t = g.as_table().ok_or_else(|| {
                        SweepError::Spec("grid must be an array of tables ([[grid]])".into())
                    })?;
                    toml_grid(t, &base, &format!("grid {}", i + 1))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(SweepError::Spec(
                    "grid must be an array of tables ([[grid]])".into(),
                ));
            }
        };
        let workers = match doc.get("workers") {
            None => None,
            Some(v) => Some(
                v.as_integer()
                    .filter(|w| (1..=1024).contains(w))
                    .ok_or_else(|| SweepError::Spec("workers must be 1..=1024".into()))?
                    as usize,
            ),
        };
        let name = match doc.get("name") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| SweepError::Spec("name must be a string".into()))?
                    .to_string(),
            ),
        };
        Ok(Self {
            name,
            workers,
            grids,
        })
    }

    /// The cells of every grid, in order: grid, environment, label, axis values, seed.
    /// Errors on an empty grid, an unknown label, or two cells with the same name.
    pub fn cells(&self) -> Result<Vec<Cell>, SweepError> {
        if self.grids.is_empty() {
            return Err(SweepError::Spec("the sweep has no grid".into()));
        }
        let mut cells = Vec::new();
        for (gi, g) in self.grids.iter().enumerate() {
            let what = if self.grids.len() > 1 {
                format!("grid {}: ", gi + 1)
            } else {
                String::new()
            };
            if g.envs.is_empty() || g.envs.iter().any(|e| e.is_empty()) {
                return Err(SweepError::Spec(format!("{what}no environment (--env)")));
            }
            if g.algos.is_empty() || g.algos.iter().any(|a| a.is_empty()) {
                return Err(SweepError::Spec(format!("{what}no algorithm (--algo)")));
            }
            if g.seeds.is_empty() {
                return Err(SweepError::Spec(format!("{what}no seeds (--seeds)")));
            }
            if g.label.is_some() && g.algos.len() > 1 {
                return Err(SweepError::Spec(format!(
                    "{what}label names one algorithm's cells, but the grid has {}",
                    g.algos.len()
                )));
            }
            let axes: Vec<&SetOption> = g.set.iter().filter(|o| o.values.len() > 1).collect();
            let combos = axis_combinations(&axes);
            for env in &g.envs {
                for label in &g.algos {
                    let (algo, label_opts) = parse_label(label)?;
                    for opt in &g.set {
                        if label_opts.iter().any(|(k, _)| *k == opt.key) {
                            return Err(SweepError::Spec(format!(
                                "--set {} conflicts with the label {label}, which sets it",
                                opt.key.replace('_', "-")
                            )));
                        }
                    }
                    for combo in &combos {
                        for &seed in &g.seeds {
                            cells.push(make_cell(env, label, &algo, &label_opts, g, combo, seed));
                        }
                    }
                }
            }
        }
        let mut names = BTreeSet::new();
        for c in &cells {
            if !names.insert(c.name.clone()) {
                return Err(SweepError::Spec(format!(
                    "cell {} appears twice (two grids overlap)",
                    c.name
                )));
            }
        }
        Ok(cells)
    }
}

/// Every combination of the axes' values (one empty combination without axes).
fn axis_combinations(axes: &[&SetOption]) -> Vec<Vec<(String, String)>> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                axis.values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((axis.key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

fn make_cell(
    env: &str,
    algo_label: &str,
    algo: &str,
    label_opts: &[(String, String)],
    grid: &Grid,
    combo: &[(String, String)],
    seed: u64,
) -> Cell {
    let label = grid.label.as_deref().unwrap_or(algo_label);
    let mut args = vec![
        format!("--env={env}"),
        format!("--algo={algo}"),
        format!("--seed={seed}"),
    ];
    if let Some(steps) = grid.steps {
        args.push(format!("--steps={steps}"));
    }
    for (k, v) in label_opts {
        args.push(format!("--{}={v}", k.replace('_', "-")));
    }
    let mut threads = 1usize;
    for opt in &grid.set {
        let value = combo
            .iter()
            .find(|(k, _)| *k == opt.key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| opt.values[0].clone());
        if opt.key == "threads" {
            threads = value.parse().unwrap_or(1).max(1);
        }
        args.push(format!("--{}={value}", opt.key.replace('_', "-")));
    }
    let mut full_label = label.to_string();
    for (k, v) in combo {
        full_label.push_str(&format!(" {}={v}", k.replace('_', "-")));
    }
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.=,+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut name = format!("{}__{}", safe(env), safe(label));
    for (k, v) in combo {
        name.push_str(&format!("__{}={}", k.replace('_', "-"), safe(v)));
    }
    name.push_str(&format!("__{seed}"));
    Cell {
        name,
        env: env.to_string(),
        label: full_label,
        seed,
        args,
        threads,
    }
}

/// The JSON form of the cells, whose hash identifies a sweep.
pub fn cells_json(cells: &[Cell]) -> Value {
    serde_json::to_value(cells).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_expand_to_train_options() {
        assert_eq!(parse_label("sac").unwrap(), ("sac".into(), vec![]));
        let (a, o) = parse_label("res-sac-10-10").unwrap();
        assert_eq!(a, "res-sac");
        assert_eq!(
            o,
            vec![
                ("critic_updates".into(), "10".into()),
                ("res_updates".into(), "10".into())
            ]
        );
        let (a, o) = parse_label("stack-sac-10-0").unwrap();
        assert_eq!((a.as_str(), o.len()), ("stack-sac", 1));
        for bad in [
            "sac-10-1",
            "res-sac-1-0",
            "sac-0-0",
            "ppo",
            "ac-1-0",
            "sac-x-0",
            "sac-1",
        ] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_ranges_and_lists() {
        assert_eq!(parse_seeds("0-4").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_seeds("0,1,5").unwrap(), vec![0, 1, 5]);
        assert_eq!(parse_seeds("0-1,7").unwrap(), vec![0, 1, 7]);
        for bad in ["", "4-0", "a", "1,1", "0-99999999999"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grid_expands_axes_and_names_cells() {
        let spec = SweepSpec {
            name: None,
            workers: None,
            grids: vec![Grid {
                envs: vec!["Pendulum-v1".into()],
                algos: vec!["sac-10-0".into()],
                seeds: vec![0, 1],
                steps: Some(1000),
                set: vec![
                    parse_set("lr=3e-4,1e-3").unwrap(),
                    parse_set("learning-starts=100").unwrap(),
                    parse_set("hidden=64,64").unwrap(),
                ],
                label: None,
            }],
        };
        let cells = spec.cells().unwrap();
        assert_eq!(cells.len(), 4);
        assert_eq!(cells[0].name, "Pendulum-v1__sac-10-0__lr=3e-4__0");
        assert_eq!(cells[0].label, "sac-10-0 lr=3e-4");
        assert_eq!(
            cells[3].args,
            vec![
                "--env=Pendulum-v1",
                "--algo=sac",
                "--seed=1",
                "--steps=1000",
                "--critic-updates=10",
                "--lr=1e-3",
                "--learning-starts=100",
                "--hidden=64,64"
            ]
        );
        assert!(parse_set("seed=1").is_err());
        assert!(parse_set("lr").is_err());
        assert!(parse_set("lr=1,1").is_err());
    }

    #[test]
    fn toml_spec_with_grids_and_defaults() {
        let spec = SweepSpec::from_toml(
            r#"
            name = "t"
            workers = 2
            seeds = "0-1"
            [set]
            env-steps-per-update = 10
            hidden = [64, 64]
            [[grid]]
            env = ["Pendulum-v1", "Reacher-v5"]
            algo = ["sac-1-0"]
            steps = 50000
            [[grid]]
            env = "HalfCheetah-v5"
            algo = ["sac-10-0"]
            steps = 300000
            [grid.set]
            lr = [3e-4, 1e-3]
            "#,
        )
        .unwrap();
        assert_eq!(spec.workers, Some(2));
        let cells = spec.cells().unwrap();
        assert_eq!(cells.len(), 2 * 2 + 2 * 2);
        assert!(cells[0].args.contains(&"--hidden=64,64".to_string()));
        assert!(
            cells[0]
                .args
                .contains(&"--env-steps-per-update=10".to_string())
        );
        assert_eq!(cells[4].label, "sac-10-0 lr=0.0003");
        assert!(SweepSpec::from_toml("bogus = 1").is_err());
        let two = SweepSpec::from_toml(
            "seeds = '0'\nenv = 'Hopper-v5'\nalgo = 'sac'\n[[grid]]\n[[grid]]\nlabel = 'sac-256'\n\
             [grid.set]\nhidden = [256, 256]\n",
        )
        .unwrap()
        .cells()
        .unwrap();
        assert_eq!(two[1].name, "Hopper-v5__sac-256__0");
        assert_eq!(two[1].label, "sac-256");
        assert!(two[1].args.contains(&"--algo=sac".to_string()));
        assert!(SweepSpec::from_toml("[[grid]]\nenv='a'\nalgo='sac'\nsteps=-1").is_err());
    }
}
