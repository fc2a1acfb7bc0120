//! The `stackrl` command: a thin CLI over the library (see `stackrl --help`).

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `stackrl envs | head` would make `println!` panic on the closed
    // pipe; restore the default action and end quietly, as Unix tools do.
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    stackrl::cli::main()
}
