//! Summary of the Figure 1 (d)-(f) runs of `scripts/fig1_mujoco.sh`: reads every
//! `ROOT/<env>/<algo>/<seed>/metrics.jsonl` written by `stackrl train --algo ac|stac`, prints
//! Markdown tables of the deterministic evaluation return (mean ± std over seeds) at fixed
//! step counts, of the area under the evaluation curve, of the training return (stochastic
//! policy, the paper's measure) of the last 5 epochs, and the STAC diagnostics (λ, CG
//! iterations, ‖implicit‖ / ‖∂J/∂θ‖), and draws one SVG of the learning curves (seed mean ±
//! one std) per environment into `OUT/<name of ROOT>_<env>.svg`.
//!
//! ```text
//! cargo run --release --example stac_fig1_mujoco -- runs/fig1_mujoco docs
//! ```
//!
//! Only step counts that every seed of a cell has reached are reported, so a partly finished
//! grid gives a consistent table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use stackrl::lab::plot::{Chart, Series, line_chart};

/// One run's evaluation curve and STAC diagnostics.
#[derive(Default)]
struct RunData {
    /// STAC's λ from the run's `config.json`.
    lambda: Option<f64>,
    /// `(step, eval_mean)`.
    evals: Vec<(u64, f64)>,
    /// Per epoch: `(step, mean return of the epoch's training episodes)` (stochastic policy,
    /// what the paper plots).
    train: Vec<(u64, f64)>,
    /// Per epoch: `‖implicit‖ / ‖∂J/∂θ‖`.
    ratios: Vec<f64>,
    /// Per epoch: CG iterations.
    cg_iters: Vec<f64>,
    /// Per epoch: CG stop reasons.
    cg_stops: Vec<String>,
}

fn fail(msg: String) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

fn read_run(path: &Path) -> RunData {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    let mut d = RunData::default();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| fail(format!("{} line {}: {e}", path.display(), i + 1)));
        let num = |k: &str| v.get(k).and_then(Value::as_f64);
        match v.get("event").and_then(Value::as_str) {
            Some("eval") => {
                if let (Some(s), Some(m)) =
                    (v.get("step").and_then(Value::as_u64), num("eval_mean"))
                {
                    d.evals.push((s, m));
                }
            }
            Some("train") => {
                if let (Some(s), Some(m)) =
                    (v.get("step").and_then(Value::as_u64), num("mean_return"))
                {
                    d.train.push((s, m));
                }
                if let (Some(i), Some(g)) = (num("implicit_grad_norm"), num("direct_grad_norm"))
                    && g > 0.0
                    && v.get("cg_iters").is_some()
                {
                    d.ratios.push(i / g);
                }
                if let Some(c) = num("cg_iters") {
                    d.cg_iters.push(c);
                }
                if let Some(s) = v.get("cg_stop").and_then(Value::as_str) {
                    // Also reads the older Debug form "NonPositiveCurvature { curvature: .. }".
                    let s = match s.split(' ').next().unwrap_or(s) {
                        "Converged" => "converged",
                        "MaxIterations" => "max_iterations",
                        "NonPositiveCurvature" => "non_positive_curvature",
                        "ZeroRhs" => "zero_rhs",
                        other => other,
                    };
                    d.cg_stops.push(s.to_string());
                }
            }
            _ => {}
        }
    }
    d
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn dirs(p: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(p)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_dir());
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, out] = args.as_slice() else {
        eprintln!("usage: stac_fig1_mujoco ROOT OUT_DIR");
        std::process::exit(2)
    };
    let (root, out) = (Path::new(root), Path::new(out));
    std::fs::create_dir_all(out).unwrap_or_else(|e| fail(format!("{}: {e}", out.display())));
    // env -> algo -> seed runs.
    let mut grid: BTreeMap<String, BTreeMap<String, Vec<(String, RunData)>>> = BTreeMap::new();
    for env in dirs(root) {
        for algo in dirs(&env) {
            for seed in dirs(&algo) {
                let m = seed.join("metrics.jsonl");
                if m.is_file() {
                    let mut data = read_run(&m);
                    data.lambda = std::fs::read_to_string(seed.join("config.json"))
                        .ok()
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .and_then(|v| v.get("lambda").and_then(Value::as_f64));
                    grid.entry(name(&env))
                        .or_default()
                        .entry(name(&algo))
                        .or_default()
                        .push((name(&seed), data));
                }
            }
        }
    }
    if grid.is_empty() {
        fail(format!("no runs under {}", root.display()));
    }
    for (env, algos) in &grid {
        // The steps every run of this environment has evaluated at.
        let mut common: Option<Vec<u64>> = None;
        for runs in algos.values() {
            for (_, r) in runs {
                let steps: Vec<u64> = r.evals.iter().map(|e| e.0).collect();
                common = Some(match common {
                    None => steps,
                    Some(c) => c.into_iter().filter(|s| steps.contains(s)).collect(),
                });
            }
        }
        let common = common.unwrap_or_default();
        if common.is_empty() {
            println!("{env}: no evaluation step shared by all runs yet\n");
            continue;
        }
        let last = *common.last().unwrap_or(&0);
        let marks: Vec<u64> = {
            let k = common.len();
            let mut m: Vec<u64> = [k / 4, k / 2, 3 * k / 4, k - 1]
                .iter()
                .filter_map(|&i| common.get(i.min(k - 1)).copied())
                .collect();
            m.dedup();
            m
        };
        println!(
            "### {env} (deterministic evaluation return, 10 episodes; mean ± std over seeds)\n"
        );
        print!("| algo | seeds |");
        for s in &marks {
            print!(" {}k steps |", s / 1000);
        }
        println!(
            " mean over evals ≤ {}k | training return, last 5 epochs ≤ {}k |",
            last / 1000,
            last / 1000
        );
        println!("|---|---|{}---|---|", "---|".repeat(marks.len()));
        let mut series = Vec::new();
        for (algo, runs) in algos {
            let at = |step: u64| -> Vec<f64> {
                runs.iter()
                    .filter_map(|(_, r)| r.evals.iter().find(|e| e.0 == step).map(|e| e.1))
                    .collect()
            };
            print!("| {} | {} |", algo.to_uppercase(), runs.len());
            for &s in &marks {
                let (m, sd) = mean_std(&at(s));
                print!(" {m:.1} ± {sd:.1} |");
            }
            let auc: Vec<f64> = runs
                .iter()
                .map(|(_, r)| {
                    let v: Vec<f64> = r
                        .evals
                        .iter()
                        .filter(|e| e.0 <= last && common.contains(&e.0))
                        .map(|e| e.1)
                        .collect();
                    v.iter().sum::<f64>() / v.len().max(1) as f64
                })
                .collect();
            let (m, sd) = mean_std(&auc);
            print!(" {m:.1} ± {sd:.1} |");
            let late: Vec<f64> = runs
                .iter()
                .map(|(_, r)| {
                    let v: Vec<f64> = r
                        .train
                        .iter()
                        .filter(|e| e.0 <= last)
                        .map(|e| e.1)
                        .collect();
                    let tail = &v[v.len().saturating_sub(5)..];
                    tail.iter().sum::<f64>() / tail.len().max(1) as f64
                })
                .collect();
            let (m, sd) = mean_std(&late);
            println!(" {m:.1} ± {sd:.1} |");
            let (mut y, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
            for &s in &common {
                let (m, sd) = mean_std(&at(s));
                y.push(m);
                lo.push(m - sd);
                hi.push(m + sd);
            }
            let lambda = match runs.first().and_then(|(_, r)| r.lambda) {
                Some(l) if algo.starts_with("stac") => format!(", λ = {l}"),
                _ => String::new(),
            };
            series.push(Series {
                label: format!("{}{lambda} ({} seeds)", algo.to_uppercase(), runs.len()),
                x: common.iter().map(|&s| s as f64).collect(),
                y,
                band: Some((lo, hi)),
                dashed: algo == "ac",
            });
        }
        println!();
        // STAC runs: `stac`, or `stac_*` for variants (e.g. other λ) side by side.
        for (algo, stac) in algos.iter().filter(|(a, _)| a.starts_with("stac")) {
            let mut ratios: Vec<f64> = stac.iter().flat_map(|(_, r)| r.ratios.clone()).collect();
            let cg: Vec<f64> = stac.iter().flat_map(|(_, r)| r.cg_iters.clone()).collect();
            let stops: Vec<&String> = stac.iter().flat_map(|(_, r)| &r.cg_stops).collect();
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for s in &stops {
                *counts.entry(s.as_str()).or_default() += 1;
            }
            let n = ratios.len();
            let med = median(&mut ratios);
            let p90 = ratios.get(n * 9 / 10).copied().unwrap_or(f64::NAN);
            println!(
                "{} diagnostics over {n} epochs: ‖implicit‖ / ‖∂J/∂θ‖ median {med:.3}, 90th \
                 percentile {p90:.3}, max {:.3}; CG iterations mean {:.1}; CG stops {counts:?}\n",
                algo.to_uppercase(),
                ratios.last().copied().unwrap_or(f64::NAN),
                cg.iter().sum::<f64>() / cg.len().max(1) as f64
            );
        }
        let path = out.join(format!("{}_{env}.svg", name(root)));
        let title = format!("{env}: evaluation return, seed mean ± std");
        line_chart(
            &path,
            &Chart {
                title: &title,
                x_label: "environment steps",
                y_label: "evaluation return",
                log_y: false,
            },
            &series,
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        println!("(figure: {})\n", path.display());
    }
}
