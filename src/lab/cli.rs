//! `stackrl lab theorems|dp|sample`: runs the lab's experiments and writes CSV, SVG figures and
//! a Markdown summary into a run directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::LabError;
use super::dp::{self, DpConfig, DpPoint};
use super::mdp::{FOUR_ROOM_GOAL, FourRoom, GoalMode};
use super::plot::{Chart, Series, line_chart};
use super::sample::{self, Algorithm, EpisodeLog, SampleConfig, StackGrad};
use super::theorems::{self, IdentityCheck, Instance};

/// FourRoom settings shared by `dp` and `sample`.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct FourRoomArgs {
    /// Goal cell as ROW,COL of the 13×13 grid (default: the east hallway, 7,9).
    #[arg(long, default_value = "7,9")]
    pub goal: String,
    /// What happens at the goal: restart from μ0, or stay in an absorbing goal state.
    #[arg(long, value_enum, default_value_t = GoalMode::Restart)]
    pub goal_mode: GoalMode,
    /// Probability that a move goes in one of the three other directions (Sutton et al.: 1/3).
    #[arg(long, default_value_t = 0.0)]
    pub slip: f64,
    /// Discount γ.
    #[arg(long, default_value_t = 0.9)]
    pub gamma: f64,
}

impl FourRoomArgs {
    fn build(&self) -> Result<FourRoom, LabError> {
        let bad = || {
            LabError::Config(format!(
                "--goal must be ROW,COL with non-negative integers, got {:?}",
                self.goal
            ))
        };
        let mut parts = self.goal.split(',').map(|p| p.trim().parse::<usize>());
        let goal = match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(r)), Some(Ok(c)), None) => (r, c),
            _ => return Err(bad()),
        };
        FourRoom::new(goal, self.goal_mode, self.slip, self.gamma)
    }
}

impl Default for FourRoomArgs {
    fn default() -> Self {
        Self {
            goal: format!("{},{}", FOUR_ROOM_GOAL.0, FOUR_ROOM_GOAL.1),
            goal_mode: GoalMode::Restart,
            slip: 0.0,
            gamma: 0.9,
        }
    }
}

/// The lab's experiments.
#[derive(clap::Subcommand, Clone, Debug, Serialize)]
pub enum LabCommand {
    /// Numerical proofs of Theorems 1-3 and eqs. (19), (24), (29), (30)-(33), (46) on random MDPs.
    Theorems {
        /// Seed of the random MDPs, actors and critics.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of random MDPs.
        #[arg(long, default_value_t = 12)]
        mdps: usize,
        /// Tolerance of the identities (relative to max(1, size of the compared quantities)).
        #[arg(long, default_value_t = 1e-8)]
        tol: f64,
        /// Run directory (default runs/lab-theorems__<seed>__<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Dynamic-programming experiments of Appendix D.1.1 on FourRoom (Fig. 4b-c).
    Dp {
        /// Seed (the DP runs are deterministic; recorded for the run directory).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Iterations (simultaneous actor and critic updates).
        #[arg(long, default_value_t = 5000)]
        iters: usize,
        /// Adam learning rate of the actor.
        #[arg(long, default_value_t = 0.01)]
        lr_actor: f64,
        /// Adam learning rate of the critic.
        #[arg(long, default_value_t = 0.02)]
        lr_critic: f64,
        /// Log every this many iterations.
        #[arg(long, default_value_t = 10)]
        log_every: usize,
        /// FourRoom settings.
        #[command(flatten)]
        env: FourRoomArgs,
        /// Run directory (default runs/lab-dp__<seed>__<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sample-based experiments of Appendix D.1.2 on FourRoom (Algorithms 1-4, Figs. 1-2).
    Sample {
        /// Base seed; run k uses seed + k.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Independent runs per algorithm.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Episodes per run (300 environment steps each).
        #[arg(long, default_value_t = 2000)]
        episodes: usize,
        /// Environment steps per episode.
        #[arg(long, default_value_t = 300)]
        episode_len: usize,
        /// Batch size.
        #[arg(long, default_value_t = 300)]
        batch: usize,
        /// Adam learning rate of the actor.
        #[arg(long, default_value_t = 0.01)]
        lr_actor: f64,
        /// Adam learning rate of the critic.
        #[arg(long, default_value_t = 0.02)]
        lr_critic: f64,
        /// Adam learning rate of the res-critic.
        #[arg(long, default_value_t = 0.02)]
        lr_res: f64,
        /// Stack-AC regulariser η.
        #[arg(long, default_value_t = 0.5)]
        eta: f64,
        /// Res-critic updates per critic update in the Fig. 2 runs.
        #[arg(long, default_value_t = 5)]
        fig2_res_updates: usize,
        /// FourRoom settings.
        #[command(flatten)]
        env: FourRoomArgs,
        /// Run directory (default runs/lab-sample__<seed>__<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a lab command; returns the run directory. Settings are validated before the directory
/// is created.
pub fn run(cmd: LabCommand) -> Result<PathBuf, LabError> {
    let start = Instant::now();
    let config = serde_json::to_string_pretty(&cmd)
        .map_err(|e| LabError::Config(format!("cannot serialise the command: {e}")))?;
    let (dir, mut summary) = match cmd {
        LabCommand::Theorems {
            seed,
            mdps,
            tol,
            out,
        } => {
            if mdps == 0 || mdps > MAX_MDPS {
                return Err(LabError::Config(format!(
                    "theorems: --mdps must be between 1 and {MAX_MDPS} (got {mdps})"
                )));
            }
            // A tolerance the checks cannot fail against proves nothing: the identities hold
            // to ~1e-10 in f64, so anything above MAX_TOL is refused.
            if !(tol.is_finite() && tol > 0.0 && tol <= MAX_TOL) {
                return Err(LabError::Config(format!(
                    "theorems: --tol must be finite, > 0 and at most {MAX_TOL:e} (got {tol}); \
                     a larger tolerance could not detect a broken identity"
                )));
            }
            let dir = prepare_dir("theorems", seed, out, &config)?;
            let md = run_theorems(&dir, seed, mdps, tol)?;
            (dir, md)
        }
        LabCommand::Dp {
            seed,
            iters,
            lr_actor,
            lr_critic,
            log_every,
            env,
            out,
        } => {
            let cfg = DpConfig {
                iters,
                lr_actor,
                lr_critic,
                log_every,
            };
            cfg.validate()?;
            let four = env.build()?;
            let dir = prepare_dir("dp", seed, out, &config)?;
            let md = run_dp(&dir, &four, &cfg)?;
            (dir, md)
        }
        LabCommand::Sample {
            seed,
            runs,
            episodes,
            episode_len,
            batch,
            lr_actor,
            lr_critic,
            lr_res,
            eta,
            fig2_res_updates,
            env,
            out,
        } => {
            let cfg = SampleConfig {
                episodes,
                episode_len,
                batch,
                lr_actor,
                lr_critic,
                lr_res,
                eta,
                res_updates: 1,
                stack_grad: StackGrad::Score,
            };
            cfg.validate()?;
            if runs == 0 {
                return Err(LabError::Config("sample: --runs must be positive".into()));
            }
            let four = env.build()?;
            let dir = prepare_dir("sample", seed, out, &config)?;
            let md = run_sample(&dir, &four, &cfg, seed, runs, fig2_res_updates)?;
            (dir, md)
        }
    };
    let _ = writeln!(
        summary,
        "\nWall time: {:.2} s.",
        start.elapsed().as_secs_f64()
    );
    write(&dir.join("summary.md"), &summary)?;
    Ok(dir)
}

/// Creates the run directory (default `runs/lab-<kind>__<seed>__<unix time>`) and writes the
/// command's settings into `config.json`.
fn prepare_dir(
    kind: &str,
    seed: u64,
    out: Option<PathBuf>,
    config: &str,
) -> Result<PathBuf, LabError> {
    let dir = match out {
        Some(d) => d,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from("runs").join(format!("lab-{kind}__{seed}__{now}"))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    write(&dir.join("config.json"), config)?;
    Ok(dir)
}

fn write(path: &Path, contents: &str) -> Result<(), LabError> {
    std::fs::write(path, contents).map_err(|e| LabError::io(path, e))
}

fn sci(x: f64) -> String {
    format!("{x:.2e}")
}

// ---------------------------------------------------------------------------------------------
// theorems

/// Largest `lab theorems --tol`.
const MAX_TOL: f64 = 1e-3;
/// Largest `lab theorems --mdps` (each is checked in turn; this is hours of work).
const MAX_MDPS: usize = 100_000;

fn run_theorems(dir: &Path, seed: u64, mdps: usize, tol: f64) -> Result<String, LabError> {
    const GAMMAS: [f64; 3] = [0.9, 0.5, 0.99];
    let specs: Vec<(usize, usize, usize, f64, u64)> = (0..mdps)
        .map(|k| {
            (
                k,
                3 + k % 5,
                2 + k % 3,
                GAMMAS[k % 3],
                seed.wrapping_mul(1_000_003).wrapping_add(k as u64),
            )
        })
        .collect();
    type Row = (String, usize, usize, f64, IdentityCheck);
    let rows: Vec<Vec<Row>> = specs
        .par_iter()
        .map(|&(k, ns, na, g, s)| -> Result<Vec<Row>, LabError> {
            let inst = Instance::random(ns, na, g, s)?;
            let mut checks = theorems::identities(&inst)?;
            checks.extend(theorems::conditions(&inst)?);
            Ok(checks
                .into_iter()
                .map(|c| (format!("random{k}"), ns, na, g, c))
                .collect())
        })
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<Row> = rows.into_iter().flatten().collect();
    // FourRoom at a random actor and critic: the closed-form identities (no finite differences).
    let four = FourRoom::paper();
    let inst = Instance::with_mdp(four.mdp.clone(), seed);
    let mut checks = theorems::closed_form_identities(&inst)?;
    checks.extend(theorems::conditions(&inst)?);
    let (ns, na) = (four.mdp.n_states(), four.mdp.n_actions());
    rows.extend(
        checks
            .into_iter()
            .map(|c| ("fourroom".to_string(), ns, na, 0.9, c)),
    );

    let mut csv = String::from(
        "mdp,n_states,n_actions,gamma,id,expect_equal,abs_err,scale,rel_err,holds,statement\n",
    );
    for (name, ns, na, g, c) in &rows {
        let _ = writeln!(
            csv,
            "{name},{ns},{na},{g},{},{},{:e},{:e},{:e},{},\"{}\"",
            c.id,
            c.expect_equal,
            c.abs_err(),
            c.scale(),
            c.rel_err(),
            c.holds(tol),
            c.statement
        );
    }
    write(&dir.join("theorems.csv"), &csv)?;

    // One line per identity: worst case over the MDPs.
    let mut ids: Vec<&'static str> = Vec::new();
    for (_, _, _, _, c) in &rows {
        if !ids.contains(&c.id) {
            ids.push(c.id);
        }
    }
    let mut md = format!(
        "# Numerical proofs\n\n{mdps} random MDPs (|S| = 3..7, |A| = 2..4, γ ∈ {{0.9, 0.5, 0.99}}, \
         seed {seed}) plus FourRoom (closed-form checks only), random logits and critics. \
         Tolerance {tol:e}, relative to max(1, size of the compared quantities).\n\n\
         | id | statement | claimed | instances | max abs err | max rel err | min rel err | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    let mut all_ok = true;
    for id in ids {
        let cs: Vec<&IdentityCheck> = rows.iter().filter(|r| r.4.id == id).map(|r| &r.4).collect();
        let max_abs = cs.iter().map(|c| c.abs_err()).fold(0.0, f64::max);
        let max_rel = cs.iter().map(|c| c.rel_err()).fold(0.0, f64::max);
        let min_rel = cs.iter().map(|c| c.rel_err()).fold(f64::INFINITY, f64::min);
        let expect = cs[0].expect_equal;
        let verdict = if expect {
            if cs.iter().all(|c| c.holds(tol)) {
                "holds"
            } else {
                all_ok = false;
                "FAILS"
            }
        } else if cs.iter().all(|c| !c.holds(tol)) {
            "differs (as expected)"
        } else {
            all_ok = false;
            "unexpectedly equal"
        };
        let _ = writeln!(
            md,
            "| `{id}` | {} | {} | {} | {} | {} | {} | {verdict} |",
            cs[0].statement,
            if expect { "=" } else { "≠" },
            cs.len(),
            sci(max_abs),
            sci(max_rel),
            sci(min_rel)
        );
    }
    let _ = writeln!(
        md,
        "\nAll claims as expected: {}.",
        if all_ok { "yes" } else { "NO" }
    );
    Ok(md)
}

// ---------------------------------------------------------------------------------------------
// dp

fn run_dp(dir: &Path, four: &FourRoom, cfg: &DpConfig) -> Result<String, LabError> {
    let mdp = &four.mdp;
    let j_star = mdp.optimal_j(1e-12);
    let logs: Vec<Vec<DpPoint>> = dp::METHODS
        .par_iter()
        .map(|&(a, c)| dp::run(mdp, a, c, cfg))
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = dp::METHODS
        .iter()
        .map(|(a, c)| format!("{}+{}", a.label(), c.label()))
        .collect();

    let mut csv = String::from("method,iter,j,j_q,cos_to_pg\n");
    for (name, log) in names.iter().zip(&logs) {
        for p in log {
            let _ = writeln!(
                csv,
                "{name},{},{:e},{:e},{:e}",
                p.iter, p.j, p.j_q, p.cos_to_pg
            );
        }
    }
    write(&dir.join("dp.csv"), &csv)?;

    let series = |f: fn(&DpPoint) -> f64| -> Vec<Series> {
        names
            .iter()
            .zip(&logs)
            .map(|(name, log)| {
                let mut s = Series::line(
                    name.clone(),
                    log.iter().map(|p| p.iter as f64).collect(),
                    log.iter().map(f).collect(),
                );
                s.dashed = name.ends_with("BR");
                s
            })
            .collect()
    };
    let mut j_series = series(|p| p.j);
    let last = cfg.iters as f64;
    j_series.push(Series::line(
        "optimal J*",
        vec![0.0, last],
        vec![j_star, j_star],
    ));
    line_chart(
        &dir.join("dp_j.svg"),
        &Chart {
            title: "FourRoom, exact gradients: J(θ) (Fig. 4b)",
            x_label: "iteration",
            y_label: "J(θ) = d_θᵀr",
            log_y: false,
        },
        &j_series,
    )?;
    let mut gap = series(|p| p.j);
    for s in &mut gap {
        for y in &mut s.y {
            *y = (j_star - *y) / j_star;
        }
    }
    line_chart(
        &dir.join("dp_gap.svg"),
        &Chart {
            title: "FourRoom, exact gradients: relative suboptimality (J* - J)/J*",
            x_label: "iteration",
            y_label: "(J* - J(θ)) / J*",
            log_y: true,
        },
        &gap,
    )?;
    line_chart(
        &dir.join("dp_jq.svg"),
        &Chart {
            title: "FourRoom, exact gradients: critic objective J_q (Fig. 4c)",
            x_label: "iteration",
            y_label: "J_q(θ, q), D = D_θ",
            log_y: true,
        },
        &series(|p| p.j_q),
    )?;

    // Summary table and the paper's three observations.
    let checkpoints: Vec<usize> = [100, 500, 1000, 2000, 5000, 10000, 20000]
        .into_iter()
        .filter(|&c| c < cfg.iters)
        .chain(std::iter::once(cfg.iters))
        .collect();
    let mut md = format!(
        "# Dynamic programming on FourRoom (Appendix D.1.1)\n\n\
         {} states × 4 actions, γ = {}, goal {:?} ({:?}), slip {}; Adam actor {}, critic {}; {} iterations. \
         J* = {:.6}.\n\n",
        mdp.n_states(),
        mdp.gamma(),
        four.goal,
        four.mode,
        four.slip,
        cfg.lr_actor,
        cfg.lr_critic,
        cfg.iters,
        j_star
    );
    let mut sum_csv = String::from("method,checkpoint,j,j_over_jstar,j_q\n");
    md.push_str("J(θ)/J* at iteration:\n\n| method |");
    for c in &checkpoints {
        let _ = write!(md, " {c} |");
    }
    md.push_str(" iters to 0.9 J* | iters to 0.99 J* | mean J/J* over run |\n|---|");
    for _ in &checkpoints {
        md.push_str("---|");
    }
    md.push_str("---|---|---|\n");
    let reach = |log: &[DpPoint], f: f64| {
        dp::iters_to_reach(log, j_star, f)
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("> {}", cfg.iters))
    };
    let auc = |log: &[DpPoint]| log.iter().map(|p| p.j).sum::<f64>() / log.len() as f64 / j_star;
    for (name, log) in names.iter().zip(&logs) {
        let _ = write!(md, "| {name} |");
        for &c in &checkpoints {
            if let Some(p) = dp::at_iter(log, c) {
                let _ = write!(md, " {:.4} |", p.j / j_star);
                let _ = writeln!(
                    sum_csv,
                    "{name},{c},{:e},{:e},{:e}",
                    p.j,
                    p.j / j_star,
                    p.j_q
                );
            }
        }
        let _ = writeln!(
            md,
            " {} | {} | {:.4} |",
            reach(log, 0.9),
            reach(log, 0.99),
            auc(log)
        );
    }
    md.push_str("\nCritic objective J_q at iteration:\n\n| method |");
    for c in &checkpoints {
        let _ = write!(md, " {c} |");
    }
    md.push_str(" cos(actor direction, ∇J) at the end |\n|---|");
    for _ in &checkpoints {
        md.push_str("---|");
    }
    md.push_str("---|\n");
    for (name, log) in names.iter().zip(&logs) {
        let _ = write!(md, "| {name} |");
        for &c in &checkpoints {
            if let Some(p) = dp::at_iter(log, c) {
                let _ = write!(md, " {} |", sci(p.j_q));
            }
        }
        let _ = writeln!(
            md,
            " {:.4} |",
            log.last().map(|p| p.cos_to_pg).unwrap_or(f64::NAN)
        );
    }
    write(&dir.join("dp_summary.csv"), &sum_csv)?;

    // Observations, computed.
    let idx = |n: &str| names.iter().position(|x| x == n).unwrap_or(0);
    let it99 = |n: &str| dp::iters_to_reach(&logs[idx(n)], j_star, 0.99).unwrap_or(usize::MAX);
    let pg_worst = it99("PG+BR").max(it99("PG+TD"));
    let ac_best = ["AoC+BR", "AoC+TD", "AgC+BR", "AgC+TD"]
        .iter()
        .map(|n| it99(n))
        .min()
        .unwrap_or(usize::MAX);
    let pg_diff = logs[idx("PG+BR")]
        .iter()
        .zip(&logs[idx("PG+TD")])
        .map(|(a, b)| (a.j - b.j).abs())
        .fold(0.0, f64::max);
    let ac = ["AoC+BR", "AoC+TD", "AgC+BR", "AgC+TD"];
    let pg_auc = auc(&logs[idx("PG+BR")]);
    let ac_auc = ac
        .iter()
        .map(|n| auc(&logs[idx(n)]))
        .fold(f64::NEG_INFINITY, f64::max);
    let c1 = 100.min(cfg.iters);
    let j_at = |n: &str, c: usize| dp::at_iter(&logs[idx(n)], c).map_or(f64::NAN, |p| p.j);
    let ac_early = ac
        .iter()
        .map(|n| j_at(n, c1))
        .fold(f64::NEG_INFINITY, f64::max);
    let _ = writeln!(
        md,
        "\n## The paper's observations\n\n\
         1. PG fastest whatever the critic. Mean J/J* over the run: PG {pg_auc:.4}, best AC {ac_auc:.4} \
         ({}). J/J* at iteration {c1}: PG {:.4}, best AC {:.4} ({}). Iterations to 0.99 J*: PG {} \
         (worst of BR/TD), best AC {} ({}). max |J(PG+BR) - J(PG+TD)| = {:.1e}: the PG actor does \
         not read the critic, so the two J curves coincide.",
        if pg_auc >= ac_auc {
            "holds"
        } else {
            "does not hold"
        },
        j_at("PG+BR", c1) / j_star,
        ac_early / j_star,
        if j_at("PG+BR", c1) >= ac_early {
            "holds"
        } else {
            "does not hold"
        },
        fmt_it(pg_worst),
        fmt_it(ac_best),
        if pg_worst <= ac_best {
            "holds"
        } else {
            "does not hold"
        },
        pg_diff
    );
    let c2 = 2000.min(cfg.iters);
    let _ = writeln!(
        md,
        "2. AC slow even with an accurate critic, at iteration {c2}:"
    );
    for n in ["AoC+BR", "AoC+TD", "AgC+BR", "AgC+TD"] {
        let log = &logs[idx(n)];
        if let (Some(p), Some(p0)) = (dp::at_iter(log, c2), log.first()) {
            let _ = writeln!(
                md,
                "   - {n}: J_q = {} ({:.1e} of its initial value), J/J* = {:.4}",
                sci(p.j_q),
                p.j_q / p0.j_q.max(f64::MIN_POSITIVE),
                p.j / j_star
            );
        }
    }
    if let Some(p) = dp::at_iter(&logs[idx("PG+TD")], c2) {
        let _ = writeln!(md, "   - PG: J/J* = {:.4}", p.j / j_star);
    }
    for a in ["AoC", "AgC"] {
        let (br, td) = (
            auc(&logs[idx(&format!("{a}+BR"))]),
            auc(&logs[idx(&format!("{a}+TD"))]),
        );
        let _ = writeln!(
            md,
            "3. TD better than BR for {a}: mean J/J* over the run TD {td:.4} vs BR {br:.4}, \
             0.99 J* reached at {} (TD) vs {} (BR): {}.",
            fmt_it(it99(&format!("{a}+TD"))),
            fmt_it(it99(&format!("{a}+BR"))),
            if td > br { "holds" } else { "does not hold" }
        );
    }
    Ok(md)
}

fn fmt_it(i: usize) -> String {
    if i == usize::MAX {
        "never".into()
    } else {
        i.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// sample

fn mean_std(vals: &[f64]) -> (f64, f64) {
    let n = vals.len() as f64;
    let m = vals.iter().sum::<f64>() / n;
    let v = if vals.len() > 1 {
        vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

/// Mean ± std across runs of `f`, per episode, optionally smoothed by a trailing window.
fn band_series(
    label: &str,
    runs: &[Vec<EpisodeLog>],
    f: fn(&EpisodeLog) -> f64,
    window: usize,
) -> Series {
    let n = runs.iter().map(|r| r.len()).min().unwrap_or(0);
    let smooth = |r: &Vec<EpisodeLog>, i: usize| {
        let lo = (i + 1).saturating_sub(window.max(1));
        r[lo..=i].iter().map(f).sum::<f64>() / (i + 1 - lo) as f64
    };
    let (mut y, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let vals: Vec<f64> = runs.iter().map(|r| smooth(r, i)).collect();
        let (m, s) = mean_std(&vals);
        y.push(m);
        lo.push(m - s);
        hi.push(m + s);
    }
    Series {
        label: label.to_string(),
        x: runs
            .first()
            .map(|r| r[..n].iter().map(|e| e.env_steps as f64).collect())
            .unwrap_or_default(),
        y,
        band: Some((lo, hi)),
        dashed: false,
    }
}

fn run_sample(
    dir: &Path,
    four: &FourRoom,
    cfg: &SampleConfig,
    seed: u64,
    runs: usize,
    fig2_res_updates: usize,
) -> Result<String, LabError> {
    let mdp = &four.mdp;
    let j_star = mdp.optimal_j(1e-12);
    let fig2_cfg = SampleConfig {
        res_updates: fig2_res_updates,
        ..cfg.clone()
    };
    let expected_cfg = SampleConfig {
        stack_grad: StackGrad::Expected,
        ..cfg.clone()
    };
    // (label, algorithm, config): Fig. 1's four algorithms, Stack-AC with the all-actions
    // estimator (an ablation of our estimator choice), and Fig. 2's Res-AC.
    let fig2_label = format!("Res-AC ({fig2_res_updates} res-critic updates)");
    let variants: Vec<(String, Algorithm, &SampleConfig)> = Algorithm::ALL
        .iter()
        .map(|&a| (a.label().to_string(), a, cfg))
        .chain([
            (
                "Stack-AC (all-actions ∂θ target)".to_string(),
                Algorithm::StackAc,
                &expected_cfg,
            ),
            (fig2_label.clone(), Algorithm::ResAc, &fig2_cfg),
        ])
        .collect();
    let n_fig1 = Algorithm::ALL.len() + 1;
    let jobs: Vec<(usize, usize)> = (0..variants.len())
        .flat_map(|v| (0..runs).map(move |r| (v, r)))
        .collect();
    let results: Vec<Vec<EpisodeLog>> = jobs
        .par_iter()
        .map(|&(v, r)| {
            let (_, alg, c) = &variants[v];
            sample::run(*alg, mdp, c, seed.wrapping_add(r as u64))
        })
        .collect::<Result<_, _>>()?;
    let by_variant: Vec<Vec<Vec<EpisodeLog>>> = (0..variants.len())
        .map(|v| {
            jobs.iter()
                .zip(&results)
                .filter(|((vv, _), _)| *vv == v)
                .map(|(_, log)| log.clone())
                .collect()
        })
        .collect();

    let mut csv = String::from(
        "variant,run,seed,episode,env_steps,episode_return,j,pred_critic,pred_critic_res,err_critic,err_critic_res\n",
    );
    for ((v, r), log) in jobs.iter().zip(&results) {
        for e in log {
            let _ = writeln!(
                csv,
                "{},{r},{},{},{},{},{:e},{:e},{:e},{:e},{:e}",
                variants[*v].0,
                seed.wrapping_add(*r as u64),
                e.episode,
                e.env_steps,
                e.episode_return,
                e.j,
                e.pred_critic,
                e.pred_critic_res,
                e.err_critic,
                e.err_critic_res
            );
        }
    }
    write(&dir.join("sample.csv"), &csv)?;

    let fig1 = &by_variant[..n_fig1];
    let mut j_series: Vec<Series> = variants
        .iter()
        .zip(fig1)
        .map(|((label, _, _), rs)| band_series(label, rs, |e| e.j, 1))
        .collect();
    let max_steps = (cfg.episodes * cfg.episode_len) as f64;
    j_series.push(Series::line(
        "optimal J*",
        vec![0.0, max_steps],
        vec![j_star, j_star],
    ));
    let title = format!("FourRoom, sample-based: exact J of the current policy ({runs} seeds)");
    line_chart(
        &dir.join("fig1_j.svg"),
        &Chart {
            title: &title,
            x_label: "environment steps",
            y_label: "J(θ) = d_θᵀr",
            log_y: false,
        },
        &j_series,
    )?;
    let ret_series: Vec<Series> = variants
        .iter()
        .zip(fig1)
        .map(|((label, _, _), rs)| band_series(label, rs, |e| e.episode_return, 20))
        .collect();
    let title =
        format!("FourRoom, sample-based: episode return, 20-episode average ({runs} seeds)");
    line_chart(
        &dir.join("fig1_return.svg"),
        &Chart {
            title: &title,
            x_label: "environment steps",
            y_label: "goals reached per 300-step episode",
            log_y: false,
        },
        &ret_series,
    )?;
    let fig2 = &by_variant[n_fig1];
    let mut pred = vec![
        band_series("true J(θ)", fig2, |e| e.j, 1),
        band_series("critic: (1-γ)μ0ᵀΠq", fig2, |e| e.pred_critic, 1),
        band_series(
            "critic + res-critic: (1-γ)μ0ᵀΠ(q+w)",
            fig2,
            |e| e.pred_critic_res,
            1,
        ),
    ];
    pred[1].dashed = true;
    line_chart(
        &dir.join("fig2_pred.svg"),
        &Chart {
            title: "FourRoom, Res-AC: predicted vs true return (Fig. 2)",
            x_label: "environment steps",
            y_label: "normalised return",
            log_y: false,
        },
        &pred,
    )?;
    line_chart(
        &dir.join("fig2_err.svg"),
        &Chart {
            title: "FourRoom, Res-AC: distance to the exact q_θ",
            x_label: "environment steps",
            y_label: "‖· - q_θ‖ weighted by d_θ",
            log_y: true,
        },
        &[
            band_series("critic q", fig2, |e| e.err_critic, 1),
            band_series("critic + res-critic q + w", fig2, |e| e.err_critic_res, 1),
        ],
    )?;

    // Summary.
    let mut md = format!(
        "# Sample-based FourRoom (Appendix D.1.2)\n\n\
         {runs} seeds ({seed}..{}), {} episodes × {} steps, batch {}, Adam actor {} / critic {} / \
         res-critic {}, η = {}. J* = {:.6}. J is the exact objective of the current policy after \
         each episode's update.\n\n\
         | algorithm | J/J* after 25% of steps | 50% | 100% (mean of last 10% of episodes) | \
         steps to 0.9 J* (mean over seeds reaching it) | seeds reaching 0.9 J* | mean J/J* over run |\n\
         |---|---|---|---|---|---|---|\n",
        seed.wrapping_add(runs as u64 - 1),
        cfg.episodes,
        cfg.episode_len,
        cfg.batch,
        cfg.lr_actor,
        cfg.lr_critic,
        cfg.lr_res,
        cfg.eta,
        j_star
    );
    let mut sum_csv = String::from(
        "variant,j25,j25_std,j50,j50_std,j_final,j_final_std,steps_to_0.9,seeds_reaching,mean_j\n",
    );
    for ((label, _, _), rs) in variants.iter().zip(&by_variant) {
        let at = |frac: f64| {
            let vals: Vec<f64> = rs
                .iter()
                .map(|r| {
                    let i = ((r.len() as f64 * frac).ceil() as usize).clamp(1, r.len()) - 1;
                    r[i].j / j_star
                })
                .collect();
            mean_std(&vals)
        };
        let finals: Vec<f64> = rs
            .iter()
            .map(|r| {
                let k = (r.len() / 10).max(1);
                r[r.len() - k..].iter().map(|e| e.j).sum::<f64>() / k as f64 / j_star
            })
            .collect();
        let reached: Vec<f64> = rs
            .iter()
            .filter_map(|r| {
                r.iter()
                    .find(|e| e.j >= 0.9 * j_star)
                    .map(|e| e.env_steps as f64)
            })
            .collect();
        let mean_j = mean_std(
            &rs.iter()
                .map(|r| r.iter().map(|e| e.j).sum::<f64>() / r.len() as f64 / j_star)
                .collect::<Vec<_>>(),
        );
        let (a25, a50, fin) = (at(0.25), at(0.5), mean_std(&finals));
        let steps = if reached.is_empty() {
            "never".to_string()
        } else {
            format!("{:.0}", mean_std(&reached).0)
        };
        let _ = writeln!(
            md,
            "| {label} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.3} ± {:.3} | {steps} | {}/{} | {:.3} ± {:.3} |",
            a25.0,
            a25.1,
            a50.0,
            a50.1,
            fin.0,
            fin.1,
            reached.len(),
            rs.len(),
            mean_j.0,
            mean_j.1
        );
        let _ = writeln!(
            sum_csv,
            "{label},{},{},{},{},{},{},{steps},{},{}",
            a25.0,
            a25.1,
            a50.0,
            a50.1,
            fin.0,
            fin.1,
            reached.len(),
            mean_j.0
        );
    }
    write(&dir.join("sample_summary.csv"), &sum_csv)?;

    // Fig. 2's claim, measured against the exact q_θ.
    let _ = writeln!(
        md,
        "\n## Fig. 2: does critic + res-critic approximate the true return better than the critic?\n"
    );
    for ((label, alg, _), rs) in variants.iter().zip(&by_variant) {
        if *alg != Algorithm::ResAc {
            continue;
        }
        let _ = writeln!(md, "{label}:\n");
        let _ = writeln!(
            md,
            "| episodes | \\|J_π(q+w) - J\\| < \\|J_π(q) - J\\| | mean \\|J_π(q+w) - J\\| | mean \\|J_π(q) - J\\| \
             | ‖q+w - q_θ‖_d < ‖q - q_θ‖_d | mean ‖q+w - q_θ‖_d | mean ‖q - q_θ‖_d |\n|---|---|---|---|---|---|---|"
        );
        let len = rs.iter().map(|r| r.len()).min().unwrap_or(0);
        for (name, lo, hi) in [
            ("all", 0, len),
            ("first half", 0, len / 2),
            ("second half", len / 2, len),
        ] {
            let all: Vec<&EpisodeLog> = rs.iter().flat_map(|r| &r[lo..hi]).collect();
            if all.is_empty() {
                continue;
            }
            let n = all.len() as f64;
            let frac = |f: &dyn Fn(&EpisodeLog) -> bool| {
                100.0 * all.iter().filter(|e| f(e)).count() as f64 / n
            };
            let mean = |f: &dyn Fn(&EpisodeLog) -> f64| all.iter().map(|e| f(e)).sum::<f64>() / n;
            let _ = writeln!(
                md,
                "| {name} | {:.1}% | {} | {} | {:.1}% | {} | {} |",
                frac(&|e| (e.pred_critic_res - e.j).abs() < (e.pred_critic - e.j).abs()),
                sci(mean(&|e| (e.pred_critic_res - e.j).abs())),
                sci(mean(&|e| (e.pred_critic - e.j).abs())),
                frac(&|e| e.err_critic_res < e.err_critic),
                sci(mean(&|e| e.err_critic_res)),
                sci(mean(&|e| e.err_critic)),
            );
        }
        md.push('\n');
    }
    Ok(md)
}
