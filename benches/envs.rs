//! `cargo bench --bench envs [-- STEPS REPEATS]`: environment steps/s beside the raw
//! `mj_step` floor on the same model and trajectory, and `VecEnv` at 1 and 2 threads.

use stackrl::bench::{EnvBenchConfig, bench_envs, format_table};

fn main() {
    let mut config = EnvBenchConfig::default();
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if let Some(&steps) = numbers.first() {
        config.steps = steps;
    }
    if let Some(&repeats) = numbers.get(1) {
        config.repeats = repeats;
    }
    match bench_envs(&config) {
        Ok(rows) => print!("{}", format_table(&rows, &config)),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
