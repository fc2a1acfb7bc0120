//! `stackrl report`: multi-seed summaries of sweeps and runs, with the interquartile mean
//! (IQM) and its 95 % stratified-bootstrap confidence interval (Agarwal et al. 2021,
//! "Deep RL at the edge of the statistical precipice", the `rliable` library).
//!
//! # Inputs
//!
//! Each argument is one of: a sweep's output folder (its `sweep.json` names the cells and
//! their labels), a run directory (`config.json` + `metrics.jsonl`; labelled by its
//! algorithm, `ALGO-x-y` for the SAC family when `x ≠ 1` or `y ≠ 0`), an exported cell
//! (`cell.json` + `eval.csv`, see [`crate::sweep::export_cell`]), or a folder of any of
//! these (a study's `cells/`). Cells are grouped by (environment, label); a (env, label,
//! seed) found twice is counted once (the first).
//!
//! # Statistics
//!
//! Per (env, label, evaluation step) over the seeds that evaluated at that step (`n`; seeds
//! that stopped early are not padded): mean, population std, IQM (the mean of the middle
//! 50 %: `scipy.stats.trim_mean(x, 0.25)`, as rliable) and the percentile interval of the
//! IQM over `reps` bootstrap resamples. The bootstrap is stratified as rliable's: seeds are
//! resampled with replacement within each task (here one task per (env, label), so it is
//! the ordinary bootstrap over seeds); its RNG is seeded, so a report is reproducible.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::plot::{Band, PlotError, draw_bands};
use crate::sweep::{self, CELL_FILE, EVAL_FILE, MANIFEST};

/// Errors of `stackrl report`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// An output could not be written.
    #[error("cannot write {}: {message}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl From<PlotError> for ReportError {
    fn from(e: PlotError) -> Self {
        match e {
            PlotError::Invalid(m) => Self::Invalid(m),
            PlotError::Output { path, message } => Self::Output { path, message },
        }
    }
}

/// One seed's evaluation curve.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedCurve {
    /// Environment id.
    pub env: String,
    /// Group label.
    pub label: String,
    /// Seed.
    pub seed: u64,
    /// `(step, evaluation return, wall-clock seconds if known)`, by step.
    pub points: Vec<(u64, f64, Option<f64>)>,
    /// Largest |TD error| of the run, if it logged one.
    pub td_abs_max: Option<f64>,
    /// Where it was read from.
    pub source: PathBuf,
}

/// The statistics of one (env, label, step).
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Environment id.
    pub env: String,
    /// Group label.
    pub label: String,
    /// Environment step.
    pub step: u64,
    /// Seeds evaluated at this step.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Interquartile mean.
    pub iqm: f64,
    /// Lower end of the 95 % bootstrap CI of the IQM.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
}

/// Interquartile mean: the mean after cutting `floor(n / 4)` values from each end of the
/// sorted sample (`scipy.stats.trim_mean(x, 0.25)`). `NaN` for an empty sample.
pub fn iqm(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 4;
    let mid = &v[cut..v.len() - cut];
    if mid.is_empty() {
        return f64::NAN;
    }
    mid.iter().sum::<f64>() / mid.len() as f64
}

/// Percentile interval (`alpha`, e.g. 0.05 for 95 %) of `stat` over `reps` stratified
/// bootstrap resamples of `strata` (each stratum resampled with replacement within itself,
/// the resamples concatenated), as rliable's `StratifiedBootstrap`.
pub fn stratified_bootstrap_ci(
    strata: &[Vec<f64>],
    stat: impl Fn(&[f64]) -> f64,
    reps: usize,
    alpha: f64,
    seed: u64,
) -> (f64, f64) {
    let total: usize = strata.iter().map(Vec::len).sum();
    if total == 0 || reps == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut sample = Vec::with_capacity(total);
    let mut stats = Vec::with_capacity(reps);
    for _ in 0..reps {
        sample.clear();
        for s in strata.iter().filter(|s| !s.is_empty()) {
            for _ in 0..s.len() {
                sample.push(s[rng.random_range(0..s.len())]);
            }
        }
        stats.push(stat(&sample));
    }
    stats.sort_by(f64::total_cmp);
    (
        percentile(&stats, 100.0 * alpha / 2.0),
        percentile(&stats, 100.0 * (1.0 - alpha / 2.0)),
    )
}

/// numpy's default (linear) percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn read_json(path: &Path) -> Result<Value, ReportError> {
    let text = fs::read_to_string(path)
        .map_err(|e| ReportError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| ReportError::Invalid(format!("{} is corrupt: {e}", path.display())))
}

/// The label of a plain run directory from its `config.json`.
pub fn label_of_config(config: &Value) -> String {
    let algo = config.get("algo").and_then(Value::as_str).unwrap_or("?");
    let x = config.get("critic_updates").and_then(Value::as_u64);
    let y = config.get("res_updates").and_then(Value::as_u64);
    match (x, y) {
        (Some(x), Some(y)) if x != 1 || y != 0 => format!("{algo}-{x}-{y}"),
        _ => algo.to_string(),
    }
}

/// Reads a run directory's evaluations.
fn read_run_dir(
    dir: &Path,
    label: Option<&str>,
    seed: Option<u64>,
) -> Result<SeedCurve, ReportError> {
    let config = read_json(&dir.join("config.json"))?;
    let env = config
        .get("env")
        .and_then(Value::as_str)
        .ok_or_else(|| ReportError::Invalid(format!("{}: config.json has no env", dir.display())))?
        .to_string();
    let rows = sweep::read_metrics_rows(dir).map_err(|e| ReportError::Invalid(e.to_string()))?;
    let mut points = Vec::new();
    let mut td: Option<f64> = None;
    for r in &rows {
        let num = |k: &str| r.get(k).and_then(Value::as_f64);
        if let Some(t) = num("td_abs_max").filter(|t| t.is_finite()) {
            td = Some(td.map_or(t, |m: f64| m.max(t)));
        }
        if r.get("event").and_then(Value::as_str) == Some("eval")
            && let (Some(s), Some(v)) = (num("step"), num("eval_mean"))
        {
            points.push((s as u64, v, num("time_s")));
        }
    }
    Ok(SeedCurve {
        env,
        label: label.map_or_else(|| label_of_config(&config), String::from),
        seed: seed
            .or_else(|| config.get("seed").and_then(Value::as_u64))
            .unwrap_or(0),
        points,
        td_abs_max: td,
        source: dir.to_path_buf(),
    })
}

/// Reads an exported cell (`cell.json` + `eval.csv`).
fn read_exported(dir: &Path) -> Result<SeedCurve, ReportError> {
    let cell = read_json(&dir.join(CELL_FILE))?;
    let field = |k: &str| {
        cell.get(k)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| ReportError::Invalid(format!("{}: cell.json has no {k}", dir.display())))
    };
    let path = dir.join(EVAL_FILE);
    let text = fs::read_to_string(&path)
        .map_err(|e| ReportError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = || ReportError::Invalid(format!("{} line {}: malformed", path.display(), i + 1));
        let step: u64 = f.first().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let value: f64 = f.get(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let time = f.get(3).and_then(|s| s.parse().ok());
        points.push((step, value, time));
    }
    Ok(SeedCurve {
        env: field("env")?,
        label: field("label")?,
        seed: cell.get("seed").and_then(Value::as_u64).unwrap_or(0),
        points,
        td_abs_max: cell.get("td_abs_max").and_then(Value::as_f64),
        source: dir.to_path_buf(),
    })
}

/// Reads every seed curve under `inputs` (see the module docs).
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<SeedCurve>, ReportError> {
    fn visit(dir: &Path, depth: usize, out: &mut Vec<SeedCurve>) -> Result<(), ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::Invalid(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        if dir.join(MANIFEST).is_file() {
            let m = sweep::Manifest::read(dir)
                .map_err(|e| ReportError::Invalid(e.to_string()))?
                .ok_or_else(|| ReportError::Invalid(format!("{}: no manifest", dir.display())))?;
            for c in &m.cells {
                let run = dir.join(&c.name);
                if run.join("metrics.jsonl").is_file() {
                    out.push(read_run_dir(&run, Some(&c.label), Some(c.seed))?);
                }
            }
            return Ok(());
        }
        if dir.join(CELL_FILE).is_file() {
            out.push(read_exported(dir)?);
            return Ok(());
        }
        if dir.join("config.json").is_file() {
            out.push(read_run_dir(dir, None, None)?);
            return Ok(());
        }
        if depth == 0 {
            return Err(ReportError::Invalid(format!(
                "{} is neither a sweep, a run directory nor a cell",
                dir.display()
            )));
        }
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| ReportError::Invalid(format!("{}: {e}", dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        entries.sort();
        for e in entries {
            visit(&e, depth - 1, out)?;
        }
        Ok(())
    }
    if inputs.is_empty() {
        return Err(ReportError::Invalid("no input folders given".into()));
    }
    let mut curves = Vec::new();
    for i in inputs {
        visit(i, 1, &mut curves)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    curves.retain(|c| seen.insert((c.env.clone(), c.label.clone(), c.seed)));
    if curves.is_empty() {
        return Err(ReportError::Invalid(
            "no runs with metrics found in the inputs".into(),
        ));
    }
    Ok(curves)
}

/// Statistics of one sample.
fn summarize(
    env: &str,
    label: &str,
    step: u64,
    values: &[f64],
    reps: usize,
    seed: u64,
) -> SummaryRow {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64).sqrt();
    let (ci_low, ci_high) =
        stratified_bootstrap_ci(&[values.to_vec()], iqm, reps, 0.05, seed ^ step);
    SummaryRow {
        env: env.into(),
        label: label.into(),
        step,
        n,
        mean,
        std,
        iqm: iqm(values),
        ci_low,
        ci_high,
    }
}

/// The summary rows at every evaluation step of every (env, label), in (env, label, step)
/// order. Only finite returns count.
pub fn summary_rows(curves: &[SeedCurve], reps: usize, seed: u64) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<(String, String), BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for c in curves {
        let g = groups.entry((c.env.clone(), c.label.clone())).or_default();
        for &(s, v, _) in &c.points {
            if v.is_finite() {
                g.entry(s).or_default().push(v);
            }
        }
    }
    let mut rows = Vec::new();
    for ((env, label), steps) in groups {
        for (step, values) in steps {
            rows.push(summarize(&env, &label, step, &values, reps, seed));
        }
    }
    rows
}

/// Per (env, label) and requested step: the statistics of each seed's evaluation at the
/// first evaluation step ≥ `at` and < `at` + the seed's evaluation spacing (so a seed that
/// stopped before `at` is not counted). Returns rows with `step = at`.
pub fn rows_at(curves: &[SeedCurve], at: &[u64], reps: usize, seed: u64) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<(String, String), Vec<&SeedCurve>> = BTreeMap::new();
    for c in curves {
        groups
            .entry((c.env.clone(), c.label.clone()))
            .or_default()
            .push(c);
    }
    let mut rows = Vec::new();
    for ((env, label), members) in groups {
        for &x in at {
            let values: Vec<f64> = members
                .iter()
                .filter_map(|c| value_at(&c.points, x))
                .collect();
            if !values.is_empty() {
                rows.push(summarize(&env, &label, x, &values, reps, seed));
            }
        }
    }
    rows
}

fn value_at(points: &[(u64, f64, Option<f64>)], x: u64) -> Option<f64> {
    let spacing = points
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(1);
    points
        .iter()
        .find(|p| p.0 >= x && p.0 < x + spacing && p.1.is_finite())
        .map(|p| p.1)
}

/// `summary.csv`: `env,label,step,n,mean,std,iqm,ci_low,ci_high`.
pub fn summary_csv(rows: &[SummaryRow]) -> String {
    let mut s = String::from("env,label,step,n,mean,std,iqm,ci_low,ci_high\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.env),
            csv_field(&r.label),
            r.step,
            r.n,
            r.mean,
            r.std,
            r.iqm,
            r.ci_low,
            r.ci_high
        ));
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// `summary.md`: per environment, a table of IQM [95 % CI] (n) per label at each `at`
/// step, and at each group's last common step; plus the largest |TD error| per label.
pub fn summary_md(
    curves: &[SeedCurve],
    at_rows: &[SummaryRow],
    final_rows: &[SummaryRow],
) -> String {
    let mut md = String::new();
    let envs: std::collections::BTreeSet<&str> = curves.iter().map(|c| c.env.as_str()).collect();
    md.push_str(
        "IQM of the deterministic evaluation return across seeds, with its 95 % \
         stratified-bootstrap CI and the number of seeds n (`stackrl report`).\n",
    );
    for env in envs {
        md.push_str(&format!("\n### {env}\n\n"));
        let labels: std::collections::BTreeSet<&str> = curves
            .iter()
            .filter(|c| c.env == env)
            .map(|c| c.label.as_str())
            .collect();
        let steps: std::collections::BTreeSet<u64> = at_rows
            .iter()
            .filter(|r| r.env == env)
            .map(|r| r.step)
            .collect();
        md.push_str("| label |");
        for s in &steps {
            md.push_str(&format!(" {} |", crate::plot::format_steps(*s as f64)));
        }
        md.push_str(" last step | mean ± std (last) | max abs TD |\n|---|");
        for _ in &steps {
            md.push_str("---|");
        }
        md.push_str("---|---|---|\n");
        for label in labels {
            md.push_str(&format!("| {label} |"));
            for s in &steps {
                match at_rows
                    .iter()
                    .find(|r| r.env == env && r.label == label && r.step == *s)
                {
                    Some(r) => md.push_str(&format!(
                        " {} [{}, {}] (n={}) |",
                        fmt_num(r.iqm),
                        fmt_num(r.ci_low),
                        fmt_num(r.ci_high),
                        r.n
                    )),
                    None => md.push_str(" – |"),
                }
            }
            match final_rows.iter().find(|r| r.env == env && r.label == label) {
                Some(r) => md.push_str(&format!(
                    " {}: {} [{}, {}] (n={}) | {} ± {} |",
                    crate::plot::format_steps(r.step as f64),
                    fmt_num(r.iqm),
                    fmt_num(r.ci_low),
                    fmt_num(r.ci_high),
                    r.n,
                    fmt_num(r.mean),
                    fmt_num(r.std)
                )),
                None => md.push_str(" – | – |"),
            }
            let td = curves
                .iter()
                .filter(|c| c.env == env && c.label == label)
                .filter_map(|c| c.td_abs_max)
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
            md.push_str(&format!(" {} |\n", td.map_or("–".into(), fmt_num)));
        }
    }
    md
}

/// Per (env, label): the last step at which the most seeds evaluated.
pub fn final_rows(rows: &[SummaryRow]) -> Vec<SummaryRow> {
    let mut best: BTreeMap<(String, String), SummaryRow> = BTreeMap::new();
    for r in rows {
        let k = (r.env.clone(), r.label.clone());
        match best.get(&k) {
            Some(b) if (b.n, b.step) > (r.n, r.step) => {}
            _ => {
                best.insert(k, r.clone());
            }
        }
    }
    best.into_values().collect()
}

/// IQM curves with CI bands per (env, label), with x from `x_of` (rows it maps to `None`
/// are left out).
fn bands_by(rows: &[SummaryRow], x_of: impl Fn(&SummaryRow) -> Option<f64>) -> Vec<Band> {
    let mut out: BTreeMap<(String, String), Band> = BTreeMap::new();
    for r in rows {
        let Some(x) = x_of(r) else { continue };
        let b = out
            .entry((r.env.clone(), r.label.clone()))
            .or_insert_with(|| Band {
                panel: r.env.clone(),
                label: r.label.clone(),
                runs: 0,
                x: Vec::new(),
                center: Vec::new(),
                low: Vec::new(),
                high: Vec::new(),
            });
        b.runs = b.runs.max(r.n);
        b.x.push(x);
        b.center.push(r.iqm);
        b.low.push(r.ci_low);
        b.high.push(r.ci_high);
    }
    out.into_values().collect()
}

/// The IQM curves with CI bands (against steps) per (env, label).
pub fn step_bands(rows: &[SummaryRow]) -> Vec<Band> {
    bands_by(rows, |r| Some(r.step as f64))
}

/// IQM of the return against wall-clock hours: per (env, label, step), the IQM of the
/// returns at the median wall-clock time of the seeds (steps where no seed logged a time
/// are left out).
pub fn time_bands(curves: &[SeedCurve], rows: &[SummaryRow]) -> Vec<Band> {
    let mut times: BTreeMap<(String, String, u64), Vec<f64>> = BTreeMap::new();
    for c in curves {
        for &(s, _, t) in &c.points {
            if let Some(t) = t.filter(|t| t.is_finite()) {
                times
                    .entry((c.env.clone(), c.label.clone(), s))
                    .or_default()
                    .push(t);
            }
        }
    }
    bands_by(rows, |r| {
        let mut ts = times
            .get(&(r.env.clone(), r.label.clone(), r.step))?
            .clone();
        ts.sort_by(f64::total_cmp);
        Some(percentile(&ts, 50.0) / 3600.0)
    })
}

/// Options of [`write_report`].
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Output folder (created).
    pub out: PathBuf,
    /// Steps for the tables of `summary.md`.
    pub at: Vec<u64>,
    /// Bootstrap resamples.
    pub reps: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Figure format: `png` or `svg`.
    pub format: String,
}

/// What [`write_report`] wrote.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// Seed curves read.
    pub curves: usize,
    /// The rows at the `at` steps.
    pub at_rows: Vec<SummaryRow>,
    /// Each group's last row.
    pub final_rows: Vec<SummaryRow>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Reads `inputs` and writes `summary.csv`, `summary.md`, `curves.<fmt>` (IQM and CI per
/// label against steps, one panel per environment) and `curves_time.<fmt>` (against
/// wall-clock hours) into `options.out`. Each file is written to a temporary name and
/// renamed, so a failure leaves older outputs as they were.
pub fn write_report(
    inputs: &[PathBuf],
    options: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    if options.reps == 0 || options.reps > 10_000_000 {
        return Err(ReportError::Invalid(
            "--reps must be between 1 and 10000000".into(),
        ));
    }
    if !["png", "svg"].contains(&options.format.as_str()) {
        return Err(ReportError::Invalid("--format must be png or svg".into()));
    }
    let curves = read_inputs(inputs)?;
    let rows = summary_rows(&curves, options.reps, options.seed);
    if rows.is_empty() {
        return Err(ReportError::Invalid(
            "the runs have no evaluations yet (eval rows in metrics.jsonl)".into(),
        ));
    }
    let at_rows = rows_at(&curves, &options.at, options.reps, options.seed);
    let finals = final_rows(&rows);
    let out = &options.out;
    fs::create_dir_all(out).map_err(|e| ReportError::Output {
        path: out.clone(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    let write = |name: &str, bytes: &[u8], files: &mut Vec<PathBuf>| -> Result<(), ReportError> {
        let path = out.join(name);
        sweep::write_atomic(&path, bytes).map_err(|e| ReportError::Output {
            path: path.clone(),
            message: e.to_string(),
        })?;
        files.push(path);
        Ok(())
    };
    write("summary.csv", summary_csv(&rows).as_bytes(), &mut files)?;
    write(
        "summary.md",
        summary_md(&curves, &at_rows, &finals).as_bytes(),
        &mut files,
    )?;
    for (name, bands, x_desc) in [
        ("curves", step_bands(&rows), "environment steps"),
        (
            "curves_time",
            time_bands(&curves, &rows),
            "wall-clock hours",
        ),
    ] {
        if bands.is_empty() {
            continue;
        }
        let path = out.join(format!("{name}.{}", options.format));
        draw_bands(
            &bands,
            &path,
            x_desc,
            "evaluation return (IQM, 95% CI)",
            x_desc == "environment steps",
        )?;
        files.push(path);
    }
    Ok(ReportSummary {
        curves: curves.len(),
        at_rows,
        final_rows: finals,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqm_matches_scipy_trim_mean() {
        // scipy.stats.trim_mean([1, 2, 3, 4, 100], 0.25) == 3.0 (cuts one from each end).
        assert_eq!(iqm(&[100.0, 2.0, 1.0, 4.0, 3.0]), 3.0);
        // n = 8: cuts 2 from each end.
        assert_eq!(iqm(&[1., 2., 3., 4., 5., 6., 7., 80.]), 4.5);
        assert_eq!(iqm(&[7.0]), 7.0);
        assert!(iqm(&[]).is_nan());
    }

    #[test]
    fn bootstrap_interval_brackets_the_statistic_and_is_reproducible() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let a = stratified_bootstrap_ci(&[x.to_vec()], iqm, 5000, 0.05, 7);
        let b = stratified_bootstrap_ci(&[x.to_vec()], iqm, 5000, 0.05, 7);
        assert_eq!(a, b);
        assert!(a.0 < 3.0 && 3.0 < a.1 && a.0 >= 1.0 && a.1 <= 5.0, "{a:?}");
        // Identical values: a zero-width interval.
        assert_eq!(
            stratified_bootstrap_ci(&[vec![2.0; 4]], iqm, 100, 0.05, 0),
            (2.0, 2.0)
        );
        // Strata are resampled within themselves: two constant strata give a constant mean.
        let c = stratified_bootstrap_ci(
            &[vec![0.0; 3], vec![10.0; 3]],
            |s| s.iter().sum::<f64>() / s.len() as f64,
            200,
            0.05,
            1,
        );
        assert_eq!(c, (5.0, 5.0));
        assert_eq!(percentile(&[0.0, 10.0], 25.0), 2.5);
    }

    #[test]
    fn rows_count_seeds_honestly() {
        let curve = |seed, pts: &[(u64, f64)]| SeedCurve {
            env: "E".into(),
            label: "L".into(),
            seed,
            points: pts.iter().map(|&(s, v)| (s, v, Some(s as f64))).collect(),
            td_abs_max: None,
            source: PathBuf::new(),
        };
        let curves = [
            curve(0, &[(100, 1.0), (200, 2.0)]),
            curve(1, &[(100, 3.0), (200, 4.0)]),
            curve(2, &[(100, 5.0)]), // stopped early
        ];
        let rows = summary_rows(&curves, 100, 0);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].step, rows[0].n, rows[0].mean), (100, 3, 3.0));
        assert_eq!((rows[1].step, rows[1].n, rows[1].mean), (200, 2, 3.0));
        let at = rows_at(&curves, &[150, 200, 1000], 100, 0);
        assert_eq!(at.len(), 2);
        assert_eq!((at[0].step, at[0].n), (150, 2));
        let fin = final_rows(&rows);
        assert_eq!(fin[0].step, 100); // most seeds
        let csv = summary_csv(&rows);
        assert!(csv.starts_with("env,label,step,n,mean,std,iqm,ci_low,ci_high\nE,L,100,3,3,"));
    }
}
