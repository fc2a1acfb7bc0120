//! `stackrl sweep`: a thin layer over [`crate::sweep`].

use std::path::PathBuf;

use crate::sweep::{self, ExecutorKind, Grid, SweepOptions, SweepSpec};

/// Options of `stackrl sweep`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Each cell is one `stackrl train` run in its own child process, with its run directory \
OUT/<env>__<label>__<seed> (plus __key=value for every --set axis). Rerunning the same command \
skips finished cells and resumes the others from their last checkpoint (after kill -9 or a \
restart); a different grid into the same OUT is refused. Algorithms are train's names \
(sac, res-sac, stack-sac, ac, stac) or paper 001's ALGO-x-y labels (sac-10-0, \
res-sac-10-10: x critic and y res-critic updates per actor update). --set takes any \
train option as KEY=VALUE (fixed) or KEY=V1,V2 (an axis; for hidden, separate values \
with '|': hidden=128,128|256,256).

Examples:
  stackrl sweep --env Pendulum-v1,Reacher-v5 --algo sac-1-0,sac-10-0 --seeds 0-4 \\
      --steps 50000 --set env-steps-per-update=10 --workers 2 --out ~/studies/fig3
  stackrl sweep --spec docs/studies/fig3/spec.toml --out ~/studies/fig3 \\
      --cells docs/studies/fig3/cells
  stackrl sweep --spec spec.toml --out /shared/fig3 --executor ray --ray-address 10.0.0.1:6379
  stackrl report ~/studies/fig3 --out docs/studies/fig3")]
pub struct SweepArgs {
    /// A TOML spec file of the grid (see the module docs of stackrl::sweep::spec); replaces
    /// --env, --algo, --seeds, --steps and --set.
    #[arg(long, conflicts_with_all = ["env", "algo", "seeds", "steps", "set"])]
    pub spec: Option<PathBuf>,
    /// Environment ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub env: Vec<String>,
    /// Algorithms or ALGO-x-y labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub algo: Vec<String>,
    /// Seeds: 0,1,2 or 0-4.
    #[arg(long, default_value = "0")]
    pub seeds: String,
    /// Environment steps per cell (default: train's default for the family).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// A train option for every cell: KEY=VALUE, or KEY=V1,V2 for a grid axis. Repeatable.
    #[arg(long)]
    pub set: Vec<String>,
    /// Cells running at once [default: the spec's, else CPUs / threads per cell].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub workers: Option<u64>,
    /// Output folder: one run directory per cell, plus sweep.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write each finished cell's small files (config.json, cell.json, eval.csv) to
    /// this folder (a study's cells/, committed to git), and skip cells already there.
    #[arg(long)]
    pub cells: Option<PathBuf>,
    /// Where cells run: local (child processes here) or ray (tasks of a Ray cluster).
    #[arg(long, default_value = "local", value_parser = ["local", "ray"])]
    pub executor: String,
    /// Ray: HOST:PORT of the cluster's head, as `ray start --head` prints it.
    #[arg(long)]
    pub ray_address: Option<String>,
    /// Ray: the Python interpreter with the ray package.
    #[arg(long, default_value = "python3")]
    pub ray_python: PathBuf,
    /// Progress display: auto (a bar on a terminal, lines otherwise), bar, plain.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bar", "plain"])]
    pub progress: String,
}

/// The grid given by the flags.
fn spec_from_flags(a: &SweepArgs) -> Result<SweepSpec, String> {
    if a.env.is_empty() || a.algo.is_empty() {
        return Err("give --env and --algo (or --spec FILE)".into());
    }
    let set = a
        .set
        .iter()
        .map(|s| sweep::parse_set(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for (i, o) in set.iter().enumerate() {
        if set[..i].iter().any(|p| p.key == o.key) {
            return Err(format!("--set {} given twice", o.key.replace('_', "-")));
        }
    }
    Ok(SweepSpec {
        name: None,
        workers: None,
        grids: vec![Grid {
            envs: a.env.iter().map(|e| e.trim().to_string()).collect(),
            algos: a.algo.iter().map(|e| e.trim().to_string()).collect(),
            seeds: sweep::parse_seeds(&a.seeds).map_err(|e| e.to_string())?,
            steps: a.steps,
            set,
            label: None,
        }],
    })
}

/// Runs `stackrl sweep`.
pub(super) fn sweep_command(a: &SweepArgs) -> Result<(), String> {
    let spec = match &a.spec {
        Some(path) => SweepSpec::from_toml_file(path).map_err(|e| e.to_string())?,
        None => spec_from_flags(a)?,
    };
    let cells = spec.cells().map_err(|e| e.to_string())?;
    // Every cell's options are checked as `stackrl train` would check them before anything
    // is created or started.
    for cell in &cells {
        super::train::check_train_options(&cell.args)
            .map_err(|e| format!("cell {}: {e}", cell.name))?;
    }
    let executor = match a.executor.as_str() {
        "ray" => ExecutorKind::Ray(sweep::ray::RayOptions {
            address: a
                .ray_address
                .clone()
                .ok_or("--executor ray needs --ray-address HOST:PORT")?,
            python: a.ray_python.clone(),
            state_dir: a.out.join(sweep::STATE_DIR),
        }),
        _ => {
            if a.ray_address.is_some() {
                return Err("--ray-address needs --executor ray".into());
            }
            ExecutorKind::Local
        }
    };
    let max_threads = cells.iter().map(|c| c.threads).max().unwrap_or(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = a
        .workers
        .map(|w| w as usize)
        .or(spec.workers)
        .unwrap_or((cpus / max_threads).max(1));
    let binary =
        std::env::current_exe().map_err(|e| format!("cannot find the stackrl binary: {e}"))?;
    let options = SweepOptions {
        out: a.out.clone(),
        workers,
        cells_dir: a.cells.clone(),
        binary,
        bar: a.progress != "plain",
    };
    println!(
        "sweep{}: {} cells, {}{}, into {}",
        spec.name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default(),
        cells.len(),
        if a.executor == "ray" {
            "Ray executor at ".to_string()
        } else {
            format!("{workers} local worker(s)")
        },
        if a.executor == "ray" {
            a.ray_address.clone().unwrap_or_default()
        } else {
            String::new()
        },
        a.out.display()
    );
    let result = sweep::run_sweep(&spec, &executor, &options);
    match result {
        Ok(s) => {
            println!(
                "sweep done: {} cells ({} run now, {} finished before, {} stopped early) in {} \
                 (executor CPU {:.3} s)",
                s.total,
                s.done,
                s.skipped,
                s.interrupted,
                sweep::format_duration(s.wall_s),
                s.executor_cpu_s
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
