//! Helpers shared by the end-to-end tests: running the binary and writing small datasets.

#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// This checkout's root. Read at run time (cargo sets CARGO_MANIFEST_DIR when it runs tests): a
/// test binary reused from a shared target directory may have been compiled in another checkout.
pub fn checkout_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}

/// The `qamlab` binary under test.
pub fn qamlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qamlab"))
}

/// Runs `cmd`, asserting success; shows both streams otherwise.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running qamlab");
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, asserting a clean failure (no panic); returns its stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running qamlab");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{cmd:?} should fail");
    assert!(!stderr.contains("panicked"), "{cmd:?} panicked:\n{stderr}");
    stderr
}

/// Writes a two-episode dataset (3 rows each) in OGBench's layout with zero observations and
/// actions of the given widths; `poison` puts a NaN into the observation at `(row, column)`.
pub fn write_npz(path: &Path, obs_dim: usize, action_dim: usize, poison: Option<(usize, usize)>) {
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).unwrap());
    let mut obs = ndarray::Array2::<f32>::zeros((6, obs_dim));
    if let Some(at) = poison {
        obs[at] = f32::NAN;
    }
    npz.add_array("observations", &obs).unwrap();
    npz.add_array("actions", &ndarray::Array2::<f32>::zeros((6, action_dim)))
        .unwrap();
    let terminals = ndarray::Array1::from(vec![false, false, true, false, false, true]);
    npz.add_array("terminals", &terminals).unwrap();
    npz.add_array("rewards", &ndarray::Array1::<f32>::zeros(6))
        .unwrap();
    npz.add_array("masks", &ndarray::Array1::<f32>::ones(6))
        .unwrap();
    npz.finish().unwrap();
}
