//! Paper 000, Figure 1 (a)-(c) at a budget this machine can run: CartPole-v1, AC vs STAC
//! (λ = 0), k = 1 vs k = 80 critic steps, three learning-rate settings, several seeds.
//!
//! ```text
//! CANDLE_NUM_THREADS=1 cargo run --release --example stac_fig1 -- \
//!     --epochs 30 --steps 4000 --seeds 3 --out docs/stac_fig1
//! ```
//!
//! Writes one CSV per run (`{setting}_{algo}_k{k}_s{seed}.csv`: epoch, environment steps,
//! mean episode return, ...) into `--out` and prints the Markdown tables of `docs/stac.md`.
//! `--optimizer adam`, `--lambda L` (STAC's λ) and `--setting NAME:ALR:CLR` (repeatable;
//! replaces the three settings) run the same grid with other choices.
//!
//! The figure's learning rates are not in the text we have; the settings follow its
//! description (Sec. 4): (a) and (b) differ in αθ, (b) and (c) in αw, (c) has the small αw.
//! Plain gradient steps as in the paper's code, 4000 steps per epoch, γ = 0.99,
//! λ_GAE = 0.97, normalised advantages, 64x64 tanh networks.
//!
//! AC runs first in a thread that never turns on second-order gradients (so its backward
//! passes are the plain, fast ones); STAC runs after `enable_second_order()` in a new thread.

use std::io::Write;

use stackrl::algos::{EpochRecord, OnPolicyAlgo, OnPolicyConfig, OptimizerKind, run_epochs};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `(name, αθ, αw)`.
const SETTINGS: [(&str, f64, f64); 3] = [("a", 1.0, 1e-2), ("b", 0.1, 1e-2), ("c", 0.1, 1e-3)];

/// What the grid varies besides algorithm, k and seed.
#[derive(Clone)]
struct Grid {
    settings: Vec<(String, f64, f64)>,
    optimizer: OptimizerKind,
    lambda: f64,
    epochs: usize,
    steps: usize,
    seeds: u64,
    out: String,
}
const KS: [usize; 2] = [1, 80];

struct Run {
    setting: String,
    algo: OnPolicyAlgo,
    k: usize,
    returns: Vec<f64>,
    seconds: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: stac_fig1 [--epochs N] [--steps N] [--seeds N] [--out DIR] \
         [--optimizer sgd|adam] [--lambda L] [--setting NAME:ALR:CLR]..."
    );
    std::process::exit(2)
}

fn runs_for(algo: OnPolicyAlgo, g: &Grid) -> Vec<Run> {
    let mut runs = Vec::new();
    let (out, epochs) = (&g.out, g.epochs);
    for (setting, alr, clr) in &g.settings {
        for k in KS {
            for seed in 0..g.seeds {
                let mut cfg = OnPolicyConfig {
                    algo,
                    steps_per_epoch: g.steps,
                    critic_steps: k,
                    actor_lr: *alr,
                    critic_lr: *clr,
                    optimizer: g.optimizer,
                    ..OnPolicyConfig::default()
                };
                cfg.stac.lambda = g.lambda;
                let start = std::time::Instant::now();
                let records = run_epochs("CartPole-v1", &cfg, seed, epochs).unwrap_or_else(|e| {
                    eprintln!("error: {e}");
                    std::process::exit(1)
                });
                let seconds = start.elapsed().as_secs_f64();
                let name = format!(
                    "{out}/{setting}_{}_k{k}_s{seed}.csv",
                    if algo == OnPolicyAlgo::Ac {
                        "ac"
                    } else {
                        "stac"
                    }
                );
                write_csv(&name, &records);
                let returns: Vec<f64> = records
                    .iter()
                    .map(|r| r.stats.mean_return.unwrap_or(f64::NAN))
                    .collect();
                eprintln!(
                    "({setting}) {algo:?} k={k} seed {seed}: {seconds:.0}s, returns {:.0?}",
                    returns
                );
                runs.push(Run {
                    setting: setting.clone(),
                    algo,
                    k,
                    returns,
                    seconds,
                });
            }
        }
    }
    runs
}

fn write_csv(path: &str, records: &[EpochRecord]) {
    let mut f = std::fs::File::create(path).unwrap_or_else(|e| {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1)
    });
    writeln!(
        f,
        "epoch,env_steps,mean_return,episodes,critic_loss,direct_norm,implicit_norm,cg_iters"
    )
    .ok();
    let mut steps = 0;
    for r in records {
        let s = &r.stats;
        steps += s.env_steps;
        writeln!(
            f,
            "{},{},{},{},{:.6},{:.6e},{:.6e},{}",
            s.epoch,
            steps,
            s.mean_return.map_or("nan".into(), |x| format!("{x:.3}")),
            s.episodes,
            s.critic_loss,
            s.direct_grad_norm,
            s.implicit_grad_norm,
            s.cg_iterations
        )
        .ok();
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt();
    (m, s)
}

fn main() {
    let mut g = Grid {
        settings: Vec::new(),
        optimizer: OptimizerKind::Sgd,
        lambda: 0.0,
        epochs: 30,
        steps: 4000,
        seeds: 3,
        out: "docs/stac_fig1".to_string(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--epochs" => g.epochs = val().parse().unwrap_or_else(|_| usage()),
            "--steps" => g.steps = val().parse().unwrap_or_else(|_| usage()),
            "--seeds" => g.seeds = val().parse().unwrap_or_else(|_| usage()),
            "--out" => g.out = val(),
            "--lambda" => g.lambda = val().parse().unwrap_or_else(|_| usage()),
            "--optimizer" => {
                g.optimizer = match val().as_str() {
                    "sgd" => OptimizerKind::Sgd,
                    "adam" => OptimizerKind::Adam,
                    _ => usage(),
                }
            }
            "--setting" => {
                let v = val();
                match v.split(':').collect::<Vec<_>>().as_slice() {
                    [name, a, c] => g.settings.push((
                        name.to_string(),
                        a.parse().unwrap_or_else(|_| usage()),
                        c.parse().unwrap_or_else(|_| usage()),
                    )),
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if g.settings.is_empty() {
        g.settings = SETTINGS
            .iter()
            .map(|(n, a, c)| (n.to_string(), *a, *c))
            .collect();
    }
    let (epochs, steps, seeds) = (g.epochs, g.steps, g.seeds);
    std::fs::create_dir_all(&g.out).unwrap_or_else(|e| {
        eprintln!("cannot create {}: {e}", g.out);
        std::process::exit(1)
    });
    let ga = g.clone();
    let mut runs = std::thread::spawn(move || runs_for(OnPolicyAlgo::Ac, &ga))
        .join()
        .expect("AC thread");
    let gs = g.clone();
    runs.extend(
        std::thread::spawn(move || {
            stackrl::autodiff::enable_second_order().expect("second-order gradients");
            runs_for(OnPolicyAlgo::Stac, &gs)
        })
        .join()
        .expect("STAC thread"),
    );

    // Summary: mean ± std over seeds of (1) the mean return over all epochs (area under the
    // learning curve), (2) the mean return of the last 5 epochs; and the seed-mean curve.
    let last = 5.min(epochs);
    println!(
        "CartPole-v1, {epochs} epochs x {steps} steps, {seeds} seeds, {:?}, STAC λ = {} \
         (mean ± std over seeds)\n",
        g.optimizer, g.lambda
    );
    println!(
        "| setting | αθ | αw | k | algo | mean return, all epochs | last {last} epochs | s/run |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (setting, alr, clr) in &g.settings {
        for k in KS {
            for algo in [OnPolicyAlgo::Ac, OnPolicyAlgo::Stac] {
                let sel: Vec<&Run> = runs
                    .iter()
                    .filter(|r| &r.setting == setting && r.k == k && r.algo == algo)
                    .collect();
                let auc: Vec<f64> = sel
                    .iter()
                    .map(|r| r.returns.iter().sum::<f64>() / r.returns.len() as f64)
                    .collect();
                let fin: Vec<f64> = sel
                    .iter()
                    .map(|r| r.returns[r.returns.len() - last..].iter().sum::<f64>() / last as f64)
                    .collect();
                let secs = sel.iter().map(|r| r.seconds).sum::<f64>() / sel.len() as f64;
                let ((am, asd), (fm, fsd)) = (mean_std(&auc), mean_std(&fin));
                println!(
                    "| ({setting}) | {alr} | {clr} | {k} | {} | {am:.1} ± {asd:.1} | {fm:.1} ± {fsd:.1} | {secs:.0} |",
                    if algo == OnPolicyAlgo::Ac {
                        "AC"
                    } else {
                        "STAC"
                    }
                );
            }
        }
    }
    let marks: Vec<usize> = (0..epochs)
        .filter(|e| (e + 1) % 5 == 0 || *e == 0)
        .collect();
    println!("\nSeed-mean return at epoch:\n");
    print!("| setting | k | algo |");
    for e in &marks {
        print!(" {} |", e + 1);
    }
    println!();
    println!("|---|---|---|{}", "---|".repeat(marks.len()));
    for (setting, _, _) in &g.settings {
        for k in KS {
            for algo in [OnPolicyAlgo::Ac, OnPolicyAlgo::Stac] {
                let sel: Vec<&Run> = runs
                    .iter()
                    .filter(|r| &r.setting == setting && r.k == k && r.algo == algo)
                    .collect();
                print!(
                    "| ({setting}) | {k} | {} |",
                    if algo == OnPolicyAlgo::Ac {
                        "AC"
                    } else {
                        "STAC"
                    }
                );
                for &e in &marks {
                    let v: Vec<f64> = sel.iter().map(|r| r.returns[e]).collect();
                    print!(" {:.0} |", mean_std(&v).0);
                }
                println!();
            }
        }
    }
}
