//! Smoke tests of `stackrl lab theorems|dp|sample` at tiny budgets: each writes sane CSVs, SVG
//! figures and a summary into its run directory; bad input is an error.
#![cfg(feature = "trainer")]

use std::path::{Path, PathBuf};

use clap::Parser;
use stackrl::lab::LabError;
use stackrl::lab::cli::{LabCommand, run};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: LabCommand,
}

fn parse(args: &[&str]) -> LabCommand {
    Cli::try_parse_from(std::iter::once("lab").chain(args.iter().copied()))
        .expect("arguments parse")
        .cmd
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stackrl-lab-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Reads a CSV into (header, rows), checking that every row has the header's width.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| {
            // Only the last column of theorems.csv is quoted and may contain commas.
            let mut cells: Vec<String> = l.splitn(header.len(), ',').map(String::from).collect();
            if cells.len() < header.len() {
                cells.resize(header.len(), String::new());
            }
            cells
        })
        .collect();
    assert!(!rows.is_empty(), "{path:?} has no rows");
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn assert_svg(path: &Path) {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(
        s.contains("<svg") && s.contains("</svg>"),
        "{path:?} is not an SVG"
    );
    assert!(
        s.contains("<polyline") || s.contains("<path"),
        "{path:?} has no curves"
    );
}

#[test]
fn theorems_command_writes_sane_results() {
    let dir = temp_dir("theorems");
    let cmd = parse(&[
        "theorems",
        "--seed",
        "3",
        "--mdps",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let out = run(cmd).expect("theorems run");
    assert_eq!(out, dir);
    let (h, rows) = read_csv(&dir.join("theorems.csv"));
    let (id, expect, holds, abs) = (
        col(&h, "id"),
        col(&h, "expect_equal"),
        col(&h, "holds"),
        col(&h, "abs_err"),
    );
    // Two random MDPs plus FourRoom.
    assert!(rows.iter().any(|r| r[0] == "fourroom"));
    assert!(rows.iter().any(|r| r[id] == "thm3_stackelberg"));
    for r in &rows {
        let e: f64 = r[abs].parse().unwrap();
        assert!(e.is_finite());
        // Claimed identities hold, claimed gaps exist.
        assert_eq!(r[expect], r[holds], "row {r:?}");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("All claims as expected: yes"));
    assert!(dir.join("config.json").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dp_command_writes_sane_results() {
    let dir = temp_dir("dp");
    let cmd = parse(&[
        "dp",
        "--iters",
        "40",
        "--log-every",
        "10",
        "--out",
        dir.to_str().unwrap(),
    ]);
    run(cmd).expect("dp run");
    let (h, rows) = read_csv(&dir.join("dp.csv"));
    let (m, it, j, jq) = (
        col(&h, "method"),
        col(&h, "iter"),
        col(&h, "j"),
        col(&h, "j_q"),
    );
    assert_eq!(rows.len(), 6 * 5);
    for name in ["PG+BR", "PG+TD", "AoC+BR", "AoC+TD", "AgC+BR", "AgC+TD"] {
        let rs: Vec<&Vec<String>> = rows.iter().filter(|r| r[m] == name).collect();
        let iters: Vec<usize> = rs.iter().map(|r| r[it].parse().unwrap()).collect();
        assert_eq!(iters, vec![0, 10, 20, 30, 40]);
        let js: Vec<f64> = rs.iter().map(|r| r[j].parse().unwrap()).collect();
        assert!(js.iter().all(|&x| (0.0..0.2).contains(&x)));
        assert!(js[4] > js[0], "{name} did not improve");
        assert!(rs.iter().all(|r| r[jq].parse::<f64>().unwrap() >= 0.0));
    }
    for f in ["dp_j.svg", "dp_gap.svg", "dp_jq.svg"] {
        assert_svg(&dir.join(f));
    }
    assert!(dir.join("dp_summary.csv").exists() && dir.join("summary.md").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sample_command_writes_sane_results() {
    let dir = temp_dir("sample");
    let cmd = parse(&[
        "sample",
        "--runs",
        "2",
        "--episodes",
        "4",
        "--fig2-res-updates",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    run(cmd).expect("sample run");
    let (h, rows) = read_csv(&dir.join("sample.csv"));
    let (v, steps, j, ret) = (
        col(&h, "variant"),
        col(&h, "env_steps"),
        col(&h, "j"),
        col(&h, "episode_return"),
    );
    // 6 variants × 2 runs × 4 episodes.
    assert_eq!(rows.len(), 6 * 2 * 4);
    for name in ["AoC", "AgC", "Stack-AC", "Res-AC"] {
        assert_eq!(rows.iter().filter(|r| r[v] == name).count(), 8);
    }
    for r in &rows {
        let s: usize = r[steps].parse().unwrap();
        assert!(s.is_multiple_of(300) && (300..=1200).contains(&s));
        let jv: f64 = r[j].parse().unwrap();
        assert!((0.0..0.2).contains(&jv));
        let rv: f64 = r[ret].parse().unwrap();
        assert!((0.0..=300.0).contains(&rv));
    }
    for f in [
        "fig1_j.svg",
        "fig1_return.svg",
        "fig2_pred.svg",
        "fig2_err.svg",
    ] {
        assert_svg(&dir.join(f));
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn same_seed_same_numbers() {
    let (a, b) = (temp_dir("seed-a"), temp_dir("seed-b"));
    for d in [&a, &b] {
        let cmd = parse(&[
            "sample",
            "--seed",
            "5",
            "--runs",
            "1",
            "--episodes",
            "3",
            "--out",
            d.to_str().unwrap(),
        ]);
        run(cmd).unwrap();
    }
    let read = |d: &Path| std::fs::read_to_string(d.join("sample.csv")).unwrap();
    assert_eq!(read(&a), read(&b));
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
}

#[test]
fn default_run_directory_is_named_after_kind_and_seed() {
    // Without --out, the run goes to runs/lab-<kind>__<seed>__<unix time> (relative to the
    // working directory, the package root under cargo test).
    let cmd = parse(&["theorems", "--seed", "17", "--mdps", "1"]);
    let dir = run(cmd).unwrap();
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("lab-theorems__17__"), "{name}");
    assert!(dir.starts_with("runs"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = temp_dir("bad");
    let d = dir.to_str().unwrap();
    let err = run(parse(&["dp", "--goal", "0,0", "--out", d])).unwrap_err();
    assert!(matches!(err, LabError::Config(_)), "{err}");
    assert!(err.to_string().contains("not a free cell"));
    let err = run(parse(&["dp", "--goal", "seven", "--out", d])).unwrap_err();
    assert!(err.to_string().contains("ROW,COL"));
    assert!(run(parse(&["dp", "--gamma", "1.2", "--out", d])).is_err());
    assert!(run(parse(&["theorems", "--mdps", "0", "--out", d])).is_err());
    assert!(run(parse(&["sample", "--episodes", "0", "--out", d])).is_err());
    assert!(run(parse(&["sample", "--eta=-1", "--out", d])).is_err());
    assert!(run(parse(&["sample", "--runs", "0", "--out", d])).is_err());
    // clap rejects malformed numbers before run().
    assert!(Cli::try_parse_from(["lab", "dp", "--iters", "-3"]).is_err());
    // Invalid settings are rejected before anything is written.
    assert!(!dir.exists());
}
