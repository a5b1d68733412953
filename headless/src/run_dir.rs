//! The run directory: resolved config, metrics, evaluations, learning curve, checkpoints, summary.
//!
//! ```text
//! RUN/config.toml            the resolved configuration (what `--resume` re-reads)
//! RUN/metrics.jsonl          one JSON object per log interval (losses, Q statistics, throughput)
//! RUN/eval.csv               step, phase, success_rate, mean_return, episodes
//! RUN/learning_curve.png     redrawn at each evaluation
//! RUN/checkpoints/latest     name of the newest complete checkpoint directory
//! RUN/checkpoints/step-N/    agent.safetensors, replay.safetensors, state.json
//! RUN/summary.json           written at the end
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::files::{write_atomically, write_bytes_atomically};
use crate::plot::EvalPoint;

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

    /// The resolved configuration.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
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

    /// The directory of the newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> anyhow::Result<Option<PathBuf>> {
        let pointer = self.checkpoints().join("latest");
        match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                let dir = self.checkpoints().join(name.trim());
                anyhow::ensure!(
                    dir.is_dir(),
                    "{} names {}, which does not exist",
                    pointer.display(),
                    dir.display()
                );
                Ok(Some(dir))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", pointer.display())),
        }
    }

    /// Makes `dir` (a fully written checkpoint directory) the latest, then removes older ones.
    /// The pointer is replaced atomically, so a crash at any moment leaves a complete checkpoint.
    pub fn publish_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("checkpoint directory name")?;
        write_bytes_atomically(&self.checkpoints().join("latest"), name.as_bytes())?;
        for entry in std::fs::read_dir(self.checkpoints())?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() && path != dir {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("removing the old checkpoint {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Appends one metrics row.
    pub fn append_metrics(&self, row: &serde_json::Value) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.metrics())
            .with_context(|| format!("opening {}", self.metrics().display()))?;
        writeln!(file, "{row}").with_context(|| format!("writing {}", self.metrics().display()))?;
        Ok(())
    }

    /// Drops metrics rows logged after `step` (a resumed run logs them again).
    pub fn truncate_metrics_after(&self, step: u64) -> anyhow::Result<()> {
        let Ok(text) = std::fs::read_to_string(self.metrics()) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
                    .is_some_and(|s| s <= step)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_bytes_atomically(&self.metrics(), kept.as_bytes())
    }

    /// Rewrites `eval.csv` from all evaluations so far.
    pub fn write_evals(&self, evals: &[EvalPoint]) -> anyhow::Result<()> {
        write_atomically(&self.evals(), |f| {
            writeln!(f, "step,phase,success_rate,mean_return,episodes")?;
            for e in evals {
                writeln!(
                    f,
                    "{},{},{},{},{}",
                    e.step, e.phase, e.success_rate, e.mean_return, e.episodes
                )?;
            }
            Ok(())
        })
    }
}
