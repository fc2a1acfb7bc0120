//! `stackrl plot`: a thin layer over [`crate::plot`].

use std::path::PathBuf;

/// Options of `stackrl plot`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Runs are grouped by (env, algo) from their config.json; each group is drawn as the mean \
over its seeds with a ±1 std band, one panel per environment.

Examples:
  stackrl plot runs/* --metric eval_return --out curves.png
  stackrl plot runs/Pendulum-v1__* --metric critic_loss --out critic.svg")]
pub struct PlotArgs {
    /// Run directories.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// eval_return (the deterministic evaluation return), episode_return, or any column of
    /// metrics.csv.
    #[arg(long, default_value = "eval_return")]
    pub metric: String,
    /// Output file: .png or .svg.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `stackrl plot`.
pub(super) fn plot_command(a: &PlotArgs) -> Result<(), String> {
    let groups = crate::plot::plot_runs(&a.runs, &a.metric, &a.out).map_err(|e| e.to_string())?;
    for g in &groups {
        println!(
            "{} {}: {} run(s), final {} {:.2} ± {:.2} at step {}",
            g.env,
            g.algo,
            g.runs,
            a.metric,
            g.mean.last().copied().unwrap_or(f64::NAN),
            g.std.last().copied().unwrap_or(f64::NAN),
            g.steps.last().copied().unwrap_or(0.0)
        );
    }
    println!("wrote {}", a.out.display());
    Ok(())
}
