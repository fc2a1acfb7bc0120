//! The `stackrl` command: a thin CLI over the library (see `stackrl --help`).

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    stackrl::cli::main()
}
