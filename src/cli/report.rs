//! `stackrl report`: a thin layer over [`crate::report`].

use std::path::PathBuf;

/// Options of `stackrl report`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Inputs: sweep output folders (labels from their sweep.json), run directories, exported \
cells (cell.json + eval.csv, as `stackrl sweep --cells` writes them) or folders of these \
(a study's cells/). Per (env, label, evaluation step) over the seeds evaluated there: n, \
mean, std, IQM (mean of the middle 50 %) and the 95 % stratified-bootstrap CI of the IQM \
(rliable's protocol). Writes summary.csv (env,label,step,n,mean,std,iqm,ci_low,ci_high), \
summary.md (tables at --at steps and at each label's last step), curves.png (IQM with CI \
band per label against steps, one panel per environment) and curves_time.png (against \
wall-clock hours).

Examples:
  stackrl report ~/studies/fig3 --out docs/studies/fig3 --at 100000,300000
  stackrl report docs/studies/fig3/cells --out docs/studies/fig3")]
pub struct ReportArgs {
    /// Sweep folders, run directories, exported cells, or folders of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created; files in it are replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Environment steps for the tables of summary.md, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub at: Vec<u64>,
    /// Bootstrap resamples (rliable's default: 50000).
    #[arg(long, default_value_t = 50_000)]
    pub reps: usize,
    /// Seed of the bootstrap (a report is reproducible).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Figure format: png or svg.
    #[arg(long, default_value = "png", value_parser = ["png", "svg"])]
    pub format: String,
}

/// Runs `stackrl report`.
pub(super) fn report_command(a: &ReportArgs) -> Result<(), String> {
    let options = crate::report::ReportOptions {
        out: a.out.clone(),
        at: a.at.clone(),
        reps: a.reps,
        seed: a.seed,
        format: a.format.clone(),
    };
    let r = crate::report::write_report(&a.inputs, &options).map_err(|e| e.to_string())?;
    println!("{} seed curves", r.curves);
    for row in &r.final_rows {
        println!(
            "{} {}: IQM {:.2} [{:.2}, {:.2}] at step {} (n={})",
            row.env, row.label, row.iqm, row.ci_low, row.ci_high, row.step, row.n
        );
    }
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
