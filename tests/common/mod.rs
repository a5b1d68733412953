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

/// The `qamlab` binary under test, started as a terminal starts it: with SIGINT at its default action, whatever
/// the tests were started with (a background job of a script, `make test &`, ignores SIGINT, and the binary keeps a
/// signal it was started ignoring ignored, as the tests of Ctrl-C would then find).
pub fn qamlab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qamlab"));
    default_sigint(&mut cmd);
    cmd
}

/// Starts `cmd` with SIGINT at its default action (see [`qamlab`]), for the tests that send it Ctrl-C.
pub fn default_sigint(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal() is async-signal-safe, as between fork and exec it must be.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd
}

/// `sh -c LINE` in `dir`, where LINE is a command qamlab printed for the user to paste (`qamlab train --resume
/// 'my run'`), run as printed: `qamlab` in it is the binary under test.
pub fn pasted(line: &str, dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "qamlab() {{ \"$QAMLAB_UNDER_TEST\" \"$@\"; }}; {line}"
        ))
        .env("QAMLAB_UNDER_TEST", env!("CARGO_BIN_EXE_qamlab"))
        .current_dir(dir);
    cmd
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

/// A run configuration: `$schedule` (TOML keys) followed by the `[agent]` table of the tiny networks the test runs
/// train, so that a whole run takes seconds on a CPU. A macro, so that the result is a `&'static str` constant.
#[allow(unused_macros)] // as dead_code above: not every test file uses it
macro_rules! tiny_config {
    ($schedule:literal) => {
        concat!(
            $schedule,
            r#"
[agent]
batch_size = 16
actor_hidden_dims = [16, 16]
value_hidden_dims = [16, 16]
num_qs = 2
flow_steps = 3
"#
        )
    };
}
#[allow(unused_imports)]
pub(crate) use tiny_config;

/// `qamlab collect --task cube-single --episodes EPISODES --envs 2 --seed SEED --out DATASET`.
pub fn collect_cmd(dataset: &Path, episodes: &str, seed: &str) -> Command {
    let mut cmd = qamlab();
    cmd.args(["collect", "--task", "cube-single", "--episodes", episodes])
        .args(["--envs", "2", "--seed", seed, "--out"])
        .arg(dataset);
    cmd
}

/// `qamlab train --quiet --config CONFIG --dataset DATASET --out OUT`.
pub fn train_cmd(config: &Path, dataset: &Path, out: &Path) -> Command {
    let mut cmd = qamlab();
    cmd.args(["train", "--quiet", "--config"])
        .arg(config)
        .arg("--dataset")
        .arg(dataset)
        .arg("--out")
        .arg(out);
    cmd
}

/// Writes a two-episode dataset (3 rows each) in OGBench's layout with zero observations and
/// actions of the given widths; `poison` puts a NaN into the observation at `(row, column)`.
pub fn write_npz(path: &Path, obs_dim: usize, action_dim: usize, poison: Option<(usize, usize)>) {
    let terminals = [false, false, true, false, false, true];
    write_episodes_npz(path, obs_dim, action_dim, &terminals, poison);
}

/// Writes a dataset in OGBench's layout of one row per item of `terminals` (an episode's final row where it is
/// true), with zero observations, actions and rewards, masks of 1, and `poison` as in `write_npz`.
pub fn write_episodes_npz(
    path: &Path,
    obs_dim: usize,
    action_dim: usize,
    terminals: &[bool],
    poison: Option<(usize, usize)>,
) {
    let rows = terminals.len();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).unwrap());
    let mut obs = ndarray::Array2::<f32>::zeros((rows, obs_dim));
    if let Some(at) = poison {
        obs[at] = f32::NAN;
    }
    npz.add_array("observations", &obs).unwrap();
    npz.add_array(
        "actions",
        &ndarray::Array2::<f32>::zeros((rows, action_dim)),
    )
    .unwrap();
    npz.add_array("terminals", &ndarray::Array1::from(terminals.to_vec()))
        .unwrap();
    npz.add_array("rewards", &ndarray::Array1::<f32>::zeros(rows))
        .unwrap();
    npz.add_array("masks", &ndarray::Array1::<f32>::ones(rows))
        .unwrap();
    npz.finish().unwrap();
}

/// Whether process `pid` catches `signal` (its `SigCgt` mask in /proc): the window's handler of it is installed.
pub fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits until a file whose name starts with `prefix` stands in `dir` (a write in progress), while `child`, the
/// writer, runs: at most `limit`.
pub fn wait_for_file_starting(
    dir: &Path,
    prefix: &str,
    child: &mut std::process::Child,
    limit: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + limit;
    while !names(dir).iter().any(|n| n.starts_with(prefix)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no file {prefix}* in {}",
            dir.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
