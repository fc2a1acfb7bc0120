//! Bad input gives a clear one-line error, exit status ≠ 0, no panic and no file created
//! (the checks of the reliability issue, through `tests/common`'s `fails`).
#![cfg(feature = "trainer")]

mod common;

use common::{fails, tmp};

#[test]
fn thread_counts_beyond_the_machine_are_refused() {
    let dir = tmp("threads");
    let d = dir.to_str().unwrap();
    fails(
        &[
            "train",
            "--threads",
            "100000",
            "--steps",
            "300",
            "--run-dir",
            d,
        ],
        &["--threads 100000 is more than this machine can run"],
    );
    assert!(!dir.exists(), "a refused run created {d}");
    fails(
        &[
            "sweep",
            "--env",
            "Pendulum-v1",
            "--algo",
            "sac",
            "--set",
            "threads=100000",
            "--out",
            d,
        ],
        &["cell Pendulum-v1__sac__0", "--threads 100000"],
    );
    assert!(!dir.exists(), "a refused sweep created {d}");
}
