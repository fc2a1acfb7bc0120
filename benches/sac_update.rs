//! SAC vs Stack-SAC update cost, side by side in one run (`cargo bench --bench sac_update`):
//! SAC, Stack-SAC on Candle's generic double backward (`CurvatureEngine::Autodiff`), Stack-SAC
//! on the fast R-operator engine (`CurvatureEngine::Fast`, the default), and the fast engine
//! with Hessian-vector products on a quarter of the minibatch (`curvature_batch`, an
//! approximation, off by default), for 256×256 / batch 256 and Table 3's 128×128 / batch 128,
//! at 1 and 2 threads. Every thread count runs in its own processes (Candle and rayon read the
//! thread count once): one for SAC and the fast engine, which need only first-order
//! gradients and run as the trainer runs them (Candle detaching intermediate gradients), then
//! one with Candle's second-order switch on for the double-backward rows (the switch also
//! makes every ordinary backward pass keep its graph, so it is not turned on where it is not
//! needed). Inside a process the cases run one after the other.
//!
//! Options (after `--`): `--threads 1,2`, `--sizes 256x256/256,128x128/128`, `--iters 100`
//! (SAC updates per repetition; Stack-SAC runs a fifth, at least 5), `--repeats 5`,
//! `--cg-iters 10`, `--subsample 4` (denominators of the sub-sampled rows, e.g. `4,8`),
//! `--only LABEL` (SAC and the Stack-SAC row of that label, e.g.
//! `"stack-sac, fast"`, for profiling). Figures: median updates/s (wall) and median CPU ms per update of the
//! whole process (with 1 thread that is the computing thread's time, which other processes
//! on a busy machine disturb much less than wall time), and the cost relative to SAC
//! measured in the same process. Stack-SAC runs the exact Hessian with `cg_tol = 0` and
//! η = 100 so that all CG iterations run (`src/algos/bench.rs`).
//!
//! PyTorch's figures for the SAC update: `stackrl bench sac --torch-python PY`.

use std::process::{Command, ExitCode};

use stackrl::algos::Algo;
use stackrl::algos::bench::{UpdateBenchCase, UpdateBenchResult, bench_update_with};
use stackrl::autodiff::CurvatureEngine;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set (to the thread count) in the worker processes.
const WORKER: &str = "STACKRL_SAC_UPDATE_BENCH_WORKER";
/// Set (to 1) in the worker process that runs the double-backward rows.
const SECOND_ORDER: &str = "STACKRL_SAC_UPDATE_BENCH_SECOND_ORDER";

struct Args {
    threads: Vec<usize>,
    sizes: Vec<(Vec<usize>, usize)>,
    iters: usize,
    repeats: usize,
    cg_iters: usize,
    only: Option<String>,
    /// Sub-sample denominators: one fast row with HVPs on `batch / d` rows per entry.
    subsample: Vec<usize>,
}

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|x| x.parse().map_err(|_| format!("bad {what} {x:?}")))
        .collect()
}

fn parse_size(s: &str) -> Result<(Vec<usize>, usize), String> {
    let (h, b) = s
        .split_once('/')
        .ok_or_else(|| format!("size {s:?}: expected e.g. 256x256/256"))?;
    let hidden: Vec<usize> = h
        .split('x')
        .map(|w| w.parse().map_err(|_| format!("size {s:?}: bad width")))
        .collect::<Result<_, _>>()?;
    let batch: usize = b.parse().map_err(|_| format!("size {s:?}: bad batch"))?;
    if batch == 0 || hidden.contains(&0) {
        return Err(format!("size {s:?}: zero width or batch"));
    }
    Ok((hidden, batch))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        threads: vec![1, 2],
        sizes: vec![(vec![256, 256], 256), (vec![128, 128], 128)],
        iters: 100,
        repeats: 5,
        cg_iters: 10,
        only: None,
        subsample: vec![4],
    };
    // cargo passes `--bench` to harness-less benchmarks.
    let raw: Vec<String> = std::env::args()
        .skip(1)
        .filter(|x| x != "--bench")
        .collect();
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (
                flag.clone(),
                it.next()
                    .ok_or_else(|| format!("{flag} needs a value"))?
                    .clone(),
            ),
        };
        match name.as_str() {
            "--threads" => a.threads = parse_list(&value, "thread count")?,
            "--sizes" => a.sizes = value.split(',').map(parse_size).collect::<Result<_, _>>()?,
            "--iters" => a.iters = value.parse().map_err(|_| "bad --iters")?,
            "--repeats" => a.repeats = value.parse().map_err(|_| "bad --repeats")?,
            "--cg-iters" => a.cg_iters = value.parse().map_err(|_| "bad --cg-iters")?,
            "--only" => a.only = Some(value),
            "--subsample" => a.subsample = parse_list(&value, "sub-sample denominator")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.threads.contains(&0)
        || a.subsample.contains(&0)
        || a.iters == 0
        || a.repeats == 0
        || a.cg_iters == 0
    {
        return Err("--threads, --iters, --repeats and --cg-iters must be positive".into());
    }
    Ok(a)
}

/// The rows of one size: (label, algorithm, engine, sub-sample).
fn variants(
    batch: usize,
    subsample: &[usize],
) -> Vec<(String, Algo, CurvatureEngine, Option<usize>)> {
    let mut v = vec![
        ("sac".into(), Algo::Sac, CurvatureEngine::Fast, None),
        (
            "stack-sac, autodiff".into(),
            Algo::StackSac,
            CurvatureEngine::Autodiff,
            None,
        ),
        (
            "stack-sac, fast".into(),
            Algo::StackSac,
            CurvatureEngine::Fast,
            None,
        ),
    ];
    for d in subsample {
        let m = (batch / d).max(1);
        v.push((
            format!("stack-sac, fast, HVP on {m}"),
            Algo::StackSac,
            CurvatureEngine::Fast,
            Some(m),
        ));
    }
    v
}

fn worker(a: &Args, threads: usize, second_order: bool) -> Result<(), String> {
    stackrl::train::configure_threads(threads).map_err(|e| e.to_string())?;
    if second_order {
        stackrl::autodiff::enable_second_order().map_err(|e| e.to_string())?;
    }
    for (hidden, batch) in &a.sizes {
        for (label, algo, engine, sub) in variants(*batch, &a.subsample) {
            if (algo == Algo::StackSac && engine == CurvatureEngine::Autodiff) != second_order {
                continue;
            }
            if a.only
                .as_ref()
                .is_some_and(|o| &label != o && algo != Algo::Sac)
            {
                continue;
            }
            let stack = algo == Algo::StackSac;
            let case = UpdateBenchCase {
                algo,
                hidden: hidden.clone(),
                batch: *batch,
                obs_dim: 17,
                act_dim: 6,
                cg_iters: a.cg_iters,
                warmup: if stack { 4 } else { 20 },
                iters: if stack { (a.iters / 5).max(5) } else { a.iters },
                repeats: a.repeats,
            };
            let r = bench_update_with(&case, engine, sub).map_err(|e| e.to_string())?;
            let v = serde_json::json!({"label": label, "threads": threads, "result": r});
            println!("{v}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sac_update: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(t) = std::env::var(WORKER) {
        let r = t
            .parse::<usize>()
            .map_err(|_| format!("bad {WORKER}={t}"))
            .and_then(|t| worker(&a, t, std::env::var_os(SECOND_ORDER).is_some()));
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sac_update worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sac_update: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "SAC vs Stack-SAC update ({} CG iterations, exact Hessian, all iterations run); \
         medians of {} repetitions; load average at start: {}",
        a.cg_iters,
        a.repeats,
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into())
    );
    println!(
        "| case | hidden | batch | threads | updates/s | CPU ms/update | CG its run | \
         cost vs SAC (wall) | cost vs SAC (CPU) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &t in &a.threads {
        let mut rows: Vec<(String, UpdateBenchResult)> = Vec::new();
        for second_order in [false, true] {
            let mut cmd = Command::new(&exe);
            cmd.args(std::env::args().skip(1))
                .env(WORKER, t.to_string());
            if second_order {
                cmd.env(SECOND_ORDER, "1");
            }
            let out = match cmd.output() {
                Ok(o) if o.status.success() => o,
                Ok(o) => {
                    eprintln!(
                        "sac_update: worker ({t} threads) failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("sac_update: cannot run the worker: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rows.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| {
                        let label = v["label"].as_str()?.to_string();
                        let r = serde_json::from_value(v["result"].clone()).ok()?;
                        Some((label, r))
                    }),
            );
        }
        for (label, r) in &rows {
            let sac = rows.iter().find(|(_, s)| {
                s.case.algo == Algo::Sac
                    && s.case.hidden == r.case.hidden
                    && s.case.batch == r.case.batch
            });
            let hidden: Vec<String> = r.case.hidden.iter().map(|h| h.to_string()).collect();
            let cpu = r.cpu_ms.unwrap_or(f64::NAN);
            let (rw, rc) = match sac {
                Some((_, s)) => (s.median / r.median, cpu / s.cpu_ms.unwrap_or(f64::NAN)),
                None => (f64::NAN, f64::NAN),
            };
            println!(
                "| {label} | {} | {} | {t} | {:.1} | {:.2} | {} | {:.2}× | {:.2}× |",
                hidden.join("×"),
                r.case.batch,
                r.median,
                cpu,
                r.cg_iters_run
                    .map(|c| format!("{c:.1}"))
                    .unwrap_or_else(|| "–".into()),
                rw,
                rc
            );
        }
    }
    ExitCode::SUCCESS
}
