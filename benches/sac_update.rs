//! SAC / Stack-SAC update throughput (`cargo bench --bench sac_update`): runs
//! `stackrl bench sac` (built in the bench profile), which measures every thread count in
//! its own process and prints one table. Extra arguments are passed through, e.g.
//! `cargo bench --bench sac_update -- --threads 1 --sizes 256x256/256`; set
//! `TORCH_PYTHON=/path/to/python` (with torch installed) to add PyTorch's figures for the
//! same update (`scripts/bench_sac_torch.py`) to the table.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackrl"));
    cmd.args(["bench", "sac"]);
    // cargo passes `--bench` to harness-less benchmarks; the rest is ours.
    cmd.args(std::env::args().skip(1).filter(|a| a != "--bench"));
    if let Ok(py) = std::env::var("TORCH_PYTHON") {
        cmd.arg(format!("--torch-python={py}"));
    }
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("stackrl bench sac failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot run stackrl: {e}");
            ExitCode::FAILURE
        }
    }
}
