//! Obtains the official MuJoCo 3.17.0 shared library with zero set-up.
//!
//! `mujoco-rs` links `-lmujoco` from `MUJOCO_DYNAMIC_LINK_DIR`, which
//! `.cargo/config.toml` points at `vendor/mujoco/`. There a committed one-line GNU ld
//! script, `libmujoco.so`, says `INPUT(libmujoco.so.3.17.0)`; that satisfies
//! mujoco-rs's own build script (it only checks that the file exists). This script then
//! makes sure the real `libmujoco.so.3.17.0` is there before any binary links:
//!
//! 1. already extracted and its SHA-256 matches: nothing to do (one fetch per checkout,
//!    shared by every build profile);
//! 2. otherwise `python3 -m pip download --no-deps --only-binary=:all: mujoco==3.17.0`
//!    (honouring the machine's pip configuration), check the wheel against the SHA-256
//!    pinned below, extract the library and headers with the `zip` crate, check the
//!    library's own SHA-256, and move it into place atomically.
//!
//! A user who sets `MUJOCO_DYNAMIC_LINK_DIR` to their own MuJoCo 3.17.0 `lib/` folder
//! gets no download: only an rpath to that folder.
//!
//! Every binary, test, example and bench of this package gets an rpath to the library
//! folder, so nothing needs `LD_LIBRARY_PATH`. Crates that depend on stackrl read the
//! folder from `DEP_STACKRL_MUJOCO_LIBDIR` (see `crates/env-only-demo/build.rs`).

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const MUJOCO_VERSION: &str = "3.17.0";
const LIB_NAME: &str = "libmujoco.so.3.17.0";
/// SHA-256 of `mujoco/libmujoco.so.3.17.0` inside the x86_64 wheels (identical for
/// every CPython version) and inside the aarch64 wheels.
const LIB_SHA256: &[&str] = &["23496b023ee80fb61ab71167e94bc649f9941710fde96b18bb8204fb332523ad"];
/// SHA-256 of every official `mujoco==3.17.0` Linux wheel pip may choose.
const WHEEL_SHA256: &[(&str, &str)] = &[
    (
        "mujoco-3.17.0-cp310-cp310-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "0fa2b5731e2bee273e52e93fd3349d0b2651d2cb95ee30da0e7c5c1af1e6f125",
    ),
    (
        "mujoco-3.17.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "d66928d86a2d1b601bbaa4dc11db50214d17d5301bb8afd84721313b67ff0874",
    ),
    (
        "mujoco-3.17.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "42371356efe53a5f5f73ed03fcb967bdf04048017f80e2fca01e71a360e42da2",
    ),
    (
        "mujoco-3.17.0-cp313-cp313-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "83856dd75b8d32468f9189d92d1e09ceae8312d8f795a79cba9778a76e4e9b7c",
    ),
    (
        "mujoco-3.17.0-cp314-cp314-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "54e49ea1b8866f594502ff7c168bfbc2b951904d66eb3f927de8f51f2c288713",
    ),
    (
        "mujoco-3.17.0-cp310-cp310-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "116e8ba08010bd7a5c761ff17073cadd2dd0475c55a93c484d72c83e5e802d1d",
    ),
    (
        "mujoco-3.17.0-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "91a70ed9979c383ff1f5c03f25cc2e1280a8254c1a8e558d5dd7f4184f01efc9",
    ),
    (
        "mujoco-3.17.0-cp312-cp312-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "525e09a00ecd964f06582773d9eeb03bb0e5a1675edf296a6868024759b3b235",
    ),
    (
        "mujoco-3.17.0-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "0b399238a95c2a32167210ccacb82e16eaf39ca94676862a05f7c16ca313680a",
    ),
    (
        "mujoco-3.17.0-cp314-cp314-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "8abf1acc3e60a5c136e57f806eddf09145d161f736117d09bf6c1251d3ef51b5",
    ),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    if std::env::var("DOCS_RS").is_ok() {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let vendor = manifest.join("vendor").join("mujoco");

    let lib_dir = match std::env::var("MUJOCO_DYNAMIC_LINK_DIR") {
        Ok(dir) if !same_dir(Path::new(&dir), &vendor) => {
            // The user's own MuJoCo: never download.
            let dir = PathBuf::from(dir);
            let has_lib = dir.join("libmujoco.so").exists() || dir.join(LIB_NAME).exists();
            if !has_lib {
                fail(&format!(
                    "MUJOCO_DYNAMIC_LINK_DIR={} holds neither libmujoco.so nor {LIB_NAME}.\n\
                     Point it at the lib/ folder of a MuJoCo {MUJOCO_VERSION} build, or unset it \
                     to let stackrl fetch the official library itself.",
                    dir.display()
                ));
            }
            dir
        }
        _ => {
            if let Err(message) = ensure_vendored(&vendor) {
                fail(&message);
            }
            println!(
                "cargo::rerun-if-changed={}",
                vendor.join(LIB_NAME).display()
            );
            vendor
        }
    };

    println!("cargo::rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    println!("cargo::metadata=libdir={}", lib_dir.display());
    println!(
        "cargo::metadata=include={}",
        lib_dir.join("include").display()
    );
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("\nerror: stackrl could not obtain MuJoCo {MUJOCO_VERSION}\n\n{message}\n");
    std::process::exit(1);
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn lib_is_valid(path: &Path) -> bool {
    fs::read(path)
        .map(|bytes| LIB_SHA256.contains(&sha256_hex(&bytes).as_str()))
        .unwrap_or(false)
}

/// Makes sure `vendor/libmujoco.so.3.17.0` (and `vendor/include/mujoco/`) exist.
fn ensure_vendored(vendor: &Path) -> Result<(), String> {
    let lib = vendor.join(LIB_NAME);
    if lib_is_valid(&lib) {
        return Ok(());
    }
    fs::create_dir_all(vendor).map_err(|e| format!("cannot create {}: {e}", vendor.display()))?;
    // A per-process download folder, so two concurrent builds never share a half file.
    let download = vendor.join(format!(".download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)
        .map_err(|e| format!("cannot create {}: {e}", download.display()))?;
    let result = fetch_and_extract(vendor, &download);
    let _ = fs::remove_dir_all(&download);
    result
}

fn fetch_and_extract(vendor: &Path, download: &Path) -> Result<(), String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg(format!("mujoco=={MUJOCO_VERSION}"))
        .arg("--dest")
        .arg(download)
        .output()
        .map_err(|e| {
            format!(
                "Running `{python} -m pip download mujoco=={MUJOCO_VERSION}` failed: {e}.\n\
                 Install Python 3 with pip (Debian: apt-get install python3-pip), or set \
                 MUJOCO_DYNAMIC_LINK_DIR to the lib/ folder of your own MuJoCo {MUJOCO_VERSION}."
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`{python} -m pip download --no-deps --only-binary=:all: mujoco=={MUJOCO_VERSION}` \
             failed ({}):\n{}\n{}\n\
             Make the Python package index reachable (pip honours pip.conf / PIP_INDEX_URL), \
             or set MUJOCO_DYNAMIC_LINK_DIR to the lib/ folder of your own MuJoCo {MUJOCO_VERSION}.",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let wheel = fs::read_dir(download)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| {
            format!(
                "pip reported success but left no wheel in {}",
                download.display()
            )
        })?;
    let wheel_name = wheel.file_name().unwrap().to_string_lossy().to_string();
    let bytes = fs::read(&wheel).map_err(|e| format!("cannot read {wheel_name}: {e}"))?;
    let actual = sha256_hex(&bytes);
    match WHEEL_SHA256.iter().find(|(name, _)| *name == wheel_name) {
        None => {
            return Err(format!(
                "pip chose {wheel_name}, which has no SHA-256 pinned in build.rs (only the \
                 official CPython 3.10-3.14 Linux x86_64/aarch64 wheels are). Set \
                 MUJOCO_DYNAMIC_LINK_DIR to the lib/ folder of your own MuJoCo {MUJOCO_VERSION}."
            ));
        }
        Some((_, expected)) if *expected != actual => {
            return Err(format!(
                "checksum mismatch for {wheel_name}:\n  expected {expected}\n  actual   {actual}\n\
                 The package index served a different file; refusing to link it. Check your \
                 pip index, or set MUJOCO_DYNAMIC_LINK_DIR to your own MuJoCo {MUJOCO_VERSION}."
            ));
        }
        Some(_) => {}
    }

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("{wheel_name} is not a readable zip archive: {e}"))?;
    let staging = download.join("staging");
    let mut found_lib = false;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| e.to_string())?;
        let name = entry.name().map_err(|e| e.to_string())?.to_string();
        let relative = if name == format!("mujoco/{LIB_NAME}") {
            found_lib = true;
            PathBuf::from(LIB_NAME)
        } else if let Some(header) = name.strip_prefix("mujoco/include/") {
            if entry.is_dir() || header.contains("..") {
                continue;
            }
            Path::new("include").join(header)
        } else {
            continue;
        };
        let target = staging.join(&relative);
        fs::create_dir_all(target.parent().unwrap()).map_err(|e| e.to_string())?;
        let mut contents = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut contents)
            .map_err(|e| format!("{name}: {e}"))?;
        let mut file = fs::File::create(&target).map_err(|e| e.to_string())?;
        file.write_all(&contents).map_err(|e| e.to_string())?;
    }
    if !found_lib {
        return Err(format!("{wheel_name} does not contain mujoco/{LIB_NAME}"));
    }
    if !lib_is_valid(&staging.join(LIB_NAME)) {
        return Err(format!(
            "{LIB_NAME} inside {wheel_name} does not match its pinned SHA-256"
        ));
    }
    // Headers first, library last: a valid library marks a complete extraction.
    let include = vendor.join("include");
    let _ = fs::remove_dir_all(&include);
    fs::rename(staging.join("include"), &include).map_err(|e| e.to_string())?;
    fs::rename(staging.join(LIB_NAME), vendor.join(LIB_NAME)).map_err(|e| e.to_string())?;
    Ok(())
}
