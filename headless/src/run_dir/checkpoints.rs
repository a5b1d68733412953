//! The run's checkpoints: finding the latest (by the `latest` pointer, or the newest complete one), publishing a
//! new one, and loading a checkpoint's agent, checked against the run's config and task.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use qamlab_agent::{Agent, AgentConfig};

use super::{RunDir, warn_once};
use crate::TrainConfig;
use crate::files::write_bytes_atomically;

/// The files of a complete checkpoint directory; `state.json` is written last.
const CHECKPOINT_FILES: [&str; 3] = ["agent.safetensors", "replay.safetensors", "state.json"];

impl RunDir {
    /// The directory of the newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> anyhow::Result<Option<PathBuf>> {
        let pointer = self.checkpoints().join("latest");
        match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                ensure!(
                    !name.trim().is_empty(),
                    "{} is empty: it should name the newest checkpoint directory",
                    pointer.display()
                );
                let name = name.trim();
                ensure!(
                    is_checkpoint_name(name),
                    "{} names {name:?}: expected a checkpoint directory of this run, step-N",
                    pointer.display()
                );
                let dir = self.checkpoints().join(name);
                ensure!(
                    dir.is_dir(),
                    "{} names {}, which does not exist",
                    pointer.display(),
                    dir.display()
                );
                Ok(Some(dir))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.newest_complete_checkpoint(&pointer))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", pointer.display())),
        }
    }

    /// Where `latest` is missing (removed, or lost before the run's first checkpoint was published): the newest
    /// `step-N` directory holding all its files, with a warning. Safe: each of a checkpoint's files is written
    /// whole, `state.json` last, before `latest` names it, so one holding all three is complete (and a resume
    /// checks that they agree).
    fn newest_complete_checkpoint(&self, pointer: &Path) -> Option<PathBuf> {
        let (complete, _) = self.step_checkpoints();
        let (step, dir) = complete.into_iter().max_by_key(|(step, _)| *step)?;
        warn_once(
            pointer,
            &format!(
                "{} is missing (it names the newest checkpoint): using step-{step}, the newest complete one",
                pointer.display()
            ),
        );
        Some(dir)
    }

    /// The run's `step-N` checkpoint directories: those holding all their files (step and path), and the names
    /// of those that do not (a checkpoint cut short).
    pub fn step_checkpoints(&self) -> (Vec<(u64, PathBuf)>, Vec<String>) {
        let (mut complete, mut incomplete) = (Vec::new(), Vec::new());
        let Ok(entries) = std::fs::read_dir(self.checkpoints()) else {
            return (complete, incomplete);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let Some(step) = name
                .strip_prefix("step-")
                .filter(|_| is_checkpoint_name(&name) && dir.is_dir())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if CHECKPOINT_FILES.iter().all(|f| dir.join(f).is_file()) {
                complete.push((step, dir));
            } else {
                incomplete.push(name);
            }
        }
        incomplete.sort();
        (complete, incomplete)
    }

    /// Makes `dir` (a fully written checkpoint directory) the latest, then removes older ones.
    /// The pointer is replaced atomically, so a crash at any moment leaves a complete checkpoint.
    pub fn publish_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("checkpoint directory name")?;
        write_bytes_atomically(&self.checkpoints().join("latest"), name.as_bytes())?;
        // Only older checkpoints go: whatever else someone keeps in the folder stays.
        for entry in std::fs::read_dir(self.checkpoints())?.filter_map(Result::ok) {
            let path = entry.path();
            let ours = entry.file_name().to_str().is_some_and(is_checkpoint_name);
            if ours && path.is_dir() && path != dir {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("removing the old checkpoint {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Loads the agent of a checkpoint of this run, checking that it is the agent the run's config describes, with
    /// its seed (a checkpoint copied from another run is refused), and that it fits the task's observation and
    /// action sizes.
    pub fn load_agent(
        &self,
        checkpoint: &Path,
        run: &TrainConfig,
        (obs_dim, action_dim): (usize, usize),
        device: tch::Device,
    ) -> anyhow::Result<Agent> {
        let cfg = &run.agent;
        let file = checkpoint.join("agent.safetensors");
        let mut agent = Agent::load(&file, device)?;
        if (agent.obs_dim(), agent.action_dim()) != (obs_dim, action_dim) {
            bail!(
                "checkpoint {}: its agent takes {}-D observations and gives {}-D actions, but the task has {}-D \
                 observations and {}-D actions: it was trained on another task",
                file.display(),
                agent.obs_dim(),
                agent.action_dim(),
                obs_dim,
                action_dim
            );
        }
        if agent.config() != cfg {
            bail!(
                "checkpoint {}: its agent differs from the one {} describes ({}): {} was edited since the run \
                 started, or the checkpoint belongs to another run",
                file.display(),
                self.config().display(),
                config_differences(agent.config(), cfg),
                self.config().display()
            );
        }
        if agent.seed() != run.seed {
            bail!(
                "checkpoint {}: its agent was trained with seed {}, but {} says seed = {}: the checkpoint belongs to \
                 another run, or the config was edited since the run started",
                file.display(),
                agent.seed(),
                self.config().display(),
                run.seed
            );
        }
        if let Some(position) = recorded_acting_position(checkpoint) {
            check_acting_position(&checkpoint.join("state.json"), position)?;
            agent.set_acting_position(position);
        }
        Ok(agent)
    }

    /// The newest checkpoint and its agent, loaded as [`load_agent`](Self::load_agent) loads it. A run training
    /// meanwhile may remove the checkpoint `latest` named while it is read (it keeps only the newest): where
    /// `latest` names another checkpoint after a failure, that one is read, a few times at most, rather than
    /// reporting a run that lost its checkpoint.
    pub fn load_latest_agent(
        &self,
        run: &TrainConfig,
        dims: (usize, usize),
        device: tch::Device,
    ) -> anyhow::Result<(PathBuf, Agent)> {
        const TRIES: usize = 5;
        let newest = || {
            self.latest_checkpoint()?
                .with_context(|| format!("{} has no checkpoint yet", self.root.display()))
        };
        // `latest` read just before it moved on may name a folder gone by the time it is checked: read again.
        let mut checkpoint = newest().or_else(|_| newest())?;
        for _ in 1..TRIES {
            match self.load_agent(&checkpoint, run, dims, device) {
                Ok(agent) => return Ok((checkpoint, agent)),
                Err(e) => match newest() {
                    Ok(now) if now != checkpoint => checkpoint = now,
                    _ => return Err(e),
                },
            }
        }
        let agent = self.load_agent(&checkpoint, run, dims, device)?;
        Ok((checkpoint, agent))
    }
}

/// `key = checkpoint's (config: run's)` for each agent setting in which two configs differ.
fn config_differences(checkpoint: &AgentConfig, run: &AgentConfig) -> String {
    let table = |c: &AgentConfig| toml::Table::try_from(c).unwrap_or_default();
    let (ours, theirs) = (table(run), table(checkpoint));
    theirs
        .iter()
        .filter(|(key, value)| ours.get(*key) != Some(value))
        .map(|(key, value)| match ours.get(key) {
            Some(expected) => format!("{key} = {value} (config: {expected})"),
            None => format!("{key} = {value}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `name` is the name of a checkpoint directory: `step-N`.
fn is_checkpoint_name(name: &str) -> bool {
    name.strip_prefix("step-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses an `acting_position` that `file` (a checkpoint's `state.json`) records past any run's count: damage,
/// which would overflow the agent's count as it acts.
pub(crate) fn check_acting_position(file: &Path, position: u64) -> anyhow::Result<()> {
    ensure!(
        position <= qamlab_agent::Agent::MAX_COUNT,
        "{}: acting_position {position} is past any run's count (at most 2^53): the file is damaged",
        file.display()
    );
    Ok(())
}

/// Where the acting draws stood by the checkpoint's `state.json`, where it says: a resumed run that made the final
/// evaluation it owed records that there alone (the agent file is the one it resumed from). `None` where the file
/// or the key is missing (older runs, a bare agent file's folder); training's own reading of it is the strict one.
fn recorded_acting_position(checkpoint: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(checkpoint.join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state.get("acting_position")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::temp_run;

    #[test]
    fn checkpoints_are_this_runs_step_directories_and_nothing_else_is_removed() {
        let (_dir, run) = temp_run();
        let (old, new, kept) = (
            run.checkpoints().join("step-10"),
            run.checkpoints().join("step-20"),
            run.checkpoints().join("keep-me"),
        );
        for d in [&old, &new, &kept] {
            std::fs::create_dir_all(d).unwrap();
        }
        run.publish_checkpoint(&new).unwrap();
        assert!(!old.exists() && new.is_dir() && kept.is_dir());
        assert_eq!(run.latest_checkpoint().unwrap(), Some(new));
        // A pointer out of the run would continue another run's checkpoint.
        std::fs::write(run.checkpoints().join("latest"), "../../elsewhere/step-5").unwrap();
        let err = run.latest_checkpoint().unwrap_err().to_string();
        assert!(
            err.contains("expected a checkpoint directory of this run, step-N"),
            "{err}"
        );
    }

    #[test]
    fn a_lost_latest_pointer_falls_back_to_the_newest_complete_checkpoint() {
        let (_dir, run) = temp_run();
        assert_eq!(run.latest_checkpoint().unwrap(), None);
        let checkpoint = |name: &str, files: &[&str]| {
            let path = run.checkpoints().join(name);
            std::fs::create_dir_all(&path).unwrap();
            for f in files {
                std::fs::write(path.join(f), "").unwrap();
            }
            path
        };
        // A checkpoint cut short (no state.json yet) is not one to resume from.
        checkpoint("step-900", &["agent.safetensors", "replay.safetensors"]);
        assert_eq!(run.latest_checkpoint().unwrap(), None);
        let kept = checkpoint("step-604", &CHECKPOINT_FILES);
        checkpoint("step-20", &CHECKPOINT_FILES);
        checkpoint("keep-me", &CHECKPOINT_FILES);
        assert_eq!(run.latest_checkpoint().unwrap(), Some(kept.clone()));
        let (complete, incomplete) = run.step_checkpoints();
        assert_eq!(
            (complete.len(), incomplete),
            (2, vec!["step-900".to_string()])
        );
        // A run with checkpoints is no place for a new one.
        let err = run.check_unused().unwrap_err().to_string();
        assert!(
            err.contains("continue it with `qamlab train --resume"),
            "{err}"
        );
        // The pointer, where it exists, decides.
        std::fs::write(run.checkpoints().join("latest"), "step-20").unwrap();
        assert_eq!(
            run.latest_checkpoint().unwrap(),
            Some(run.checkpoints().join("step-20"))
        );
    }
}
