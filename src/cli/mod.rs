//! The command-line interface behind the `stackrl` binary.

mod plot;
#[cfg(feature = "render")]
mod render;
mod report;
mod sweep;
mod train;

use crate::bench::{EnvBenchConfig, bench_envs, format_table};
use crate::envs::{self, Env, Space};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rand::{Rng, SeedableRng};
use std::process::ExitCode;

pub use plot::PlotArgs;
#[cfg(feature = "render")]
pub use render::RenderArgs;
pub use report::ReportArgs;
pub use sweep::SweepArgs;
pub use train::{BenchSacArgs, TrainArgs};

/// stackrl: native MuJoCo environments with Gymnasium's definitions, and
/// Stackelberg / residual actor-critic trainers.
#[derive(Debug, Parser)]
#[command(name = "stackrl", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered environments with their spaces.
    Envs,
    /// Roll out a uniformly random policy and print each episode's return.
    Rollout(RolloutArgs),
    /// Train SAC, Res-SAC, Stack-SAC (paper 001), AC or STAC (paper 000) on an environment, with evaluations,
    /// metrics and resumable checkpoints in a run directory.
    Train(Box<TrainArgs>),
    /// Render a trained agent (--run) or a random / zero policy (--env) to H.264 MP4, GIF
    /// or PNG frames with MuJoCo's offscreen renderer.
    #[cfg(feature = "render")]
    Render(Box<RenderArgs>),
    /// Run a grid of training runs (environments × algorithms × option axes × seeds), one
    /// child process per cell, resumable, on this machine or on a Ray cluster.
    Sweep(Box<SweepArgs>),
    /// Summarise sweeps and runs: per (env, label, step) n, mean, std, IQM and its 95 %
    /// bootstrap CI (summary.csv, summary.md) and IQM curves with CI bands.
    Report(ReportArgs),
    /// Plot learning curves of runs: mean ± std across seeds per (env, algo), one panel
    /// per environment, PNG or SVG.
    Plot(PlotArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The tabular lab: FourRoom, exact policy-gradient quantities, the papers'
    /// theorems checked numerically, and the dynamic-programming and sample-based
    /// experiments (CSV and SVG into a run directory).
    #[command(subcommand)]
    Lab(crate::lab::cli::LabCommand),
}

/// Options of `stackrl rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// Environment id (see `stackrl envs`).
    #[arg(long, default_value = "Hopper-v5")]
    pub env: String,
    /// Episodes to run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub episodes: u64,
    /// Seed of the first reset and of the random actions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `stackrl bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Environment steps/s beside the raw `mj_step` floor, and VecEnv scaling.
    Envs(BenchEnvsArgs),
    /// SAC and Stack-SAC update throughput (updates/s) per network size and thread count.
    Sac(BenchSacArgs),
    /// The sweep executor's own cost (one cell through `sweep` vs `train` directly) and its
    /// speed-up with several workers.
    Sweep(BenchSweepArgs),
}

/// Options of `stackrl bench sweep`.
#[derive(Debug, clap::Args)]
pub struct BenchSweepArgs {
    /// Environment of the cells.
    #[arg(long, default_value = "Pendulum-v1")]
    pub env: String,
    /// Algorithm of the cells.
    #[arg(long, default_value = "sac")]
    pub algo: String,
    /// Steps per cell.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Cells of the scaling runs (seeds 0..N).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub cells: u64,
    /// Workers of the parallel scaling run.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,
    /// Alternated repetitions (medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeats: u64,
}

/// Options of `stackrl bench envs`.
#[derive(Debug, clap::Args)]
pub struct BenchEnvsArgs {
    /// Environment ids (default: all).
    #[arg(long = "env")]
    pub envs: Vec<String>,
    /// Environment steps per timed run.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Timed repetitions (medians are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Environments in the VecEnv runs.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub num_envs: u64,
    /// Thread counts for the VecEnv runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
}

/// Parses the command line, runs it, and turns errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command. `matches` are the parsed arguments `cli` came from (`train` uses
/// them to tell options given on the command line from defaults, which a `--config` file
/// may override).
pub fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<(), String> {
    match cli.command {
        Command::Envs => {
            println!("| id | observation | action | dt | max steps |");
            println!("|---|---|---|---|---|");
            for spec in envs::specs() {
                let env = envs::make(spec.id).map_err(|e| e.to_string())?;
                println!(
                    "| {} | {} | {} | {} | {} |",
                    spec.id,
                    env.observation_space(),
                    env.action_space(),
                    env.dt(),
                    spec.max_episode_steps
                );
            }
            Ok(())
        }
        Command::Rollout(args) => rollout(&args).map_err(|e| e.to_string()),
        Command::Lab(command) => {
            let dir = crate::lab::cli::run(command).map_err(|e| e.to_string())?;
            println!("results in {}", dir.display());
            Ok(())
        }
        Command::Train(args) => {
            let empty = clap::ArgMatches::default();
            let sub = matches.subcommand_matches("train").unwrap_or(&empty);
            train::train_command(&args, sub)
        }
        #[cfg(feature = "render")]
        Command::Render(args) => render::render_command(&args),
        Command::Plot(args) => plot::plot_command(&args),
        Command::Sweep(args) => sweep::sweep_command(&args),
        Command::Report(args) => report::report_command(&args),
        Command::Bench(BenchCommand::Sac(args)) => train::bench_sac_command(&args),
        Command::Bench(BenchCommand::Sweep(args)) => {
            let config = crate::sweep::bench::SweepBenchConfig {
                env: args.env.clone(),
                algo: args.algo.clone(),
                steps: args.steps,
                cells: args.cells,
                workers: args.workers as usize,
                repeats: args.repeats as usize,
                binary: std::env::current_exe()
                    .map_err(|e| format!("cannot find the stackrl binary: {e}"))?,
            };
            let result = crate::sweep::bench::bench_sweep(&config).map_err(|e| e.to_string())?;
            print!("{}", crate::sweep::bench::format_table(&config, &result));
            Ok(())
        }
        Command::Bench(BenchCommand::Envs(args)) => {
            if args.threads.contains(&0) {
                return Err("--threads values must be at least 1".into());
            }
            let mut config = EnvBenchConfig {
                steps: args.steps as usize,
                repeats: args.repeats as usize,
                num_envs: args.num_envs as usize,
                threads: args.threads.clone(),
                ..EnvBenchConfig::default()
            };
            if !args.envs.is_empty() {
                for id in &args.envs {
                    envs::spec(id).map_err(|e| e.to_string())?;
                }
                config.ids = args.envs.clone();
            }
            let rows = bench_envs(&config).map_err(|e| e.to_string())?;
            print!("{}", format_table(&rows, &config));
            Ok(())
        }
    }
}

/// A uniformly random policy on `args.env`; prints one line per episode.
fn rollout(args: &RolloutArgs) -> Result<(), envs::EnvError> {
    let mut env = envs::make(&args.env)?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(args.seed ^ 0x5eed);
    let mut action = vec![0.0; env.action_space().action_len()];
    let mut returns = Vec::new();
    println!(
        "{}: random policy, {} episodes, seed {}",
        args.env, args.episodes, args.seed
    );
    for episode in 0..args.episodes {
        let seed = (episode == 0).then_some(args.seed);
        env.reset(seed)?;
        let (mut total, mut length) = (0.0, 0usize);
        loop {
            match env.action_space() {
                Space::Discrete(n) => action[0] = rng.random_range(0..*n) as f64,
                Space::Box { low, high } => {
                    for (a, (l, h)) in action.iter_mut().zip(low.iter().zip(high)) {
                        *a = l + (h - l) * rng.random::<f64>();
                    }
                }
            }
            let step = env.step(&action)?;
            total += step.reward;
            length += 1;
            if let Some(why) = step.instability {
                println!("  (episode {episode}: simulation unstable: {why})");
            }
            if step.terminated || step.truncated {
                break;
            }
        }
        println!("episode {episode}: return {total:.3}, length {length}");
        returns.push(total);
    }
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    println!("mean return over {} episodes: {mean:.3}", returns.len());
    Ok(())
}
