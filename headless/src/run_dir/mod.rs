//! The run directory: resolved config, metrics, evaluations, learning curve, checkpoints, summary.
//!
//! ```text
//! RUN/config.toml            the resolved configuration (what `--resume` re-reads; the dataset's real path)
//! RUN/task.scn.ron           a copy of the task's scene file, when the task is a file (what `--resume` and
//!                            `eval` load, so the run is independent of later edits to the file)
//! RUN/run.json               the CRC-32 of that copy as the run started: an edited copy is refused
//! RUN/metrics.jsonl          one JSON object per log interval (losses, Q statistics, throughput)
//! RUN/eval.csv               step, phase, success_rate, mean_return, episodes
//! RUN/learning_curve.png     redrawn at each evaluation
//! RUN/checkpoints/latest     name of the newest complete checkpoint directory (written after its files)
//! RUN/checkpoints/step-N/    agent.safetensors, replay.safetensors, state.json, each recording the checkpoint's
//!                            id (state.json the CRC-32 of its text too); written as checkpoints/.tmp-step-N-…/
//!                            and renamed once whole
//! RUN/summary.json           written at the end
//! ```

mod checkpoints;
mod config;
mod evals;
mod lock;
mod metrics;
mod sealed_state;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub(crate) use checkpoints::{CHECKPOINT_ID_KEY, check_same_checkpoint, checkpoint_id};
pub use checkpoints::{StagedCheckpoint, checkpoint_dir_step, checkpoint_name_step};
pub use lock::RunLock;
pub use metrics::MetricsRow;
pub(crate) use sealed_state::check_state_crc;
pub use sealed_state::{STATE_CRC_KEY, seal_state};

use lock::LOCK_FILE;

/// Paths of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The run's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names of the root's entries that are not a run's: what its files, `eval`'s GIF and the temporaries of an
    /// interrupted write do not account for. A directory with none is safe to replace as a whole.
    pub fn foreign_entries(&self) -> anyhow::Result<Vec<String>> {
        const ENTRIES: [&str; 10] = [
            "config.toml",
            "task.scn.ron",
            "run.json",
            "metrics.jsonl",
            "eval.csv",
            "learning_curve.png",
            "summary.json",
            "checkpoints",
            "eval.gif",
            LOCK_FILE,
        ];
        let entries = std::fs::read_dir(&self.root)
            .with_context(|| format!("reading the run directory {}", self.root.display()))?;
        let mut foreign: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                !ENTRIES.contains(&name.as_str())
                    && !name.starts_with(".tmp-")
                    && !is_step_video(name)
            })
            .collect();
        foreign.sort();
        Ok(foreign)
    }

    /// Where `qamlab eval --video` writes its GIF by default: `eval.gif`, or `eval-step-N.gif` for the checkpoint of
    /// a step asked for (an earlier agent's video beside the latest's).
    pub fn video(&self, step: Option<u64>) -> PathBuf {
        match step {
            Some(step) => self.root.join(format!("eval-step-{step}.gif")),
            None => self.root.join("eval.gif"),
        }
    }

    /// The resolved configuration.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The run's copy of its task's scene file (a run of a built-in task has none).
    pub fn task_scene(&self) -> PathBuf {
        self.root.join("task.scn.ron")
    }

    /// Metrics rows (JSON lines).
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Evaluation results (CSV).
    pub fn evals(&self) -> PathBuf {
        self.root.join("eval.csv")
    }

    /// Learning-curve PNG.
    pub fn curve(&self) -> PathBuf {
        self.root.join("learning_curve.png")
    }

    /// End-of-run summary.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// Directory of all checkpoints.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
}

/// Logs `message` as a warning, once per process for `key` (several checks of a run find the same thing).
fn warn_once(key: &Path, message: &str) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !warned.iter().any(|k| k == key) {
        warned.push(key.to_path_buf());
        tracing::warn!("{message}");
    }
}

/// A run directory in a fresh temporary directory, which the caller keeps alive.
/// Whether `name` is a video `eval --step N --video` wrote ([`RunDir::video`]).
fn is_step_video(name: &str) -> bool {
    name.strip_prefix("eval-")
        .and_then(|rest| rest.strip_suffix(".gif"))
        .and_then(checkpoints::checkpoint_name_step)
        .is_some()
}

#[cfg(test)]
fn temp_run() -> (tempfile::TempDir, RunDir) {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    (dir, run)
}
