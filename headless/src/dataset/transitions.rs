//! A dataset read as transitions, and the checks that it suits a training run.

use std::path::Path;

use anyhow::{bail, ensure};

use qamlab_agent::TransitionStore;
use qamlab_sim::TaskScene;

use super::source::{absolute_scene, task_argument};
use super::{DatasetSource, FINGERPRINT_VERSION, scene_fingerprint};

/// A dataset as transitions, the way OGBench's regular loader returns them: final-state rows dropped,
/// `next_observations` taken from the following row, `terminals` = 1 on each episode's last transition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// The transitions, in the replay buffer's own form: training moves them into its buffer, not a copy.
    pub transitions: TransitionStore,
    /// Number of episodes.
    pub episodes: usize,
    /// CRC-32 of the file's bytes: what a resumed run checks to know it trains on the same data.
    pub crc32: u32,
    /// Where it came from, when the file says (`qamlab collect` writes it; OGBench's files do not).
    pub source: Option<DatasetSource>,
    /// What in the data trains but likely not as meant, each a line to warn of: for the caller to say when it
    /// sees fit (training: once the run can start, so that an error comes alone).
    pub warnings: Vec<String>,
}

impl Dataset {
    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.transitions.obs_dim()
    }

    /// Action width.
    pub fn action_dim(&self) -> usize {
        self.transitions.action_dim()
    }

    /// How many transitions reach success (mask 0: bootstrapping stops there).
    pub fn transitions_at_success(&self) -> usize {
        self.transitions.masks.iter().filter(|&&m| m == 0.0).count()
    }

    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.transitions.len()
    }

    /// Whether it holds no transitions.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    /// Refuses the dataset read from `path` for training with action chunks of `horizon` transitions if it
    /// holds fewer than one (what `qamlab train` says, and `qamlab dataset` too).
    pub fn check_holds_a_chunk(&self, path: &Path, horizon: usize) -> anyhow::Result<()> {
        ensure!(
            self.len() >= horizon,
            "dataset {}: {} transitions, fewer than one action chunk of horizon_length = {horizon}",
            path.display(),
            self.len()
        );
        Ok(())
    }

    /// Checks that the dataset read from `path` is data of `scene`'s task (`spec` its envs): its widths, and,
    /// where the file records its source, its observation and action columns. `Ok` with a note, for the caller to
    /// show, where the columns agree but the data may still be another's (another task's or another version of
    /// the scene's), or where the file does not say.
    pub fn check_fits(
        &self,
        path: &Path,
        scene: &TaskScene,
        spec: &qamlab_sim::EnvSpec,
    ) -> anyhow::Result<Option<String>> {
        let file = path.display();
        let task = &spec.task;
        let remedy = format!(
            "collect a dataset of this task with `qamlab collect --task {}` (where the oracle drives it; otherwise \
             train it online, without a dataset)",
            task_argument(scene)
        );
        ensure!(
            (self.obs_dim(), self.action_dim()) == (spec.obs_dim, spec.action_dim),
            "dataset {file}: observations are {}-D and actions {}-D, but task {task} has {}-D observations and {}-D \
             actions{}; {remedy}",
            self.obs_dim(),
            self.action_dim(),
            spec.obs_dim,
            spec.action_dim,
            self.source
                .as_ref()
                .map(|s| format!(
                    " (the dataset was collected on task {}: `--task {}` trains on that task)",
                    s.task,
                    s.task_argument()
                ))
                .unwrap_or_default()
        );
        let Some(source) = &self.source else {
            return Ok(Some(format!(
                "dataset {file} does not record the task it was collected on (a file of another tool, or of qamlab \
                 before 2026-12-06): only its widths are checked against task {task}"
            )));
        };
        let collected_on = match &source.scene {
            Some(from) => format!("task {} (scene {from})", source.task),
            None => format!("task {}", source.task),
        };
        for (what, theirs, ours) in [
            ("observation", &source.observations, &spec.obs_names),
            ("action", &source.actions, &spec.action_names),
        ] {
            if let Some(k) = (0..ours.len()).find(|&k| theirs.get(k) != Some(&ours[k])) {
                bail!(
                    "dataset {file} was collected on {collected_on}, whose {what}s are not those of task {task} here \
                     (scene {}): {what} {k} is `{}` there and `{}` here; {remedy}",
                    scene.source,
                    theirs.get(k).map_or("missing", String::as_str),
                    ours[k]
                );
            }
        }
        if source.task != *task {
            // The task may come from a config file's `task` key, unseen on the command line: name the way out.
            return Ok(Some(format!(
                "dataset {file} was collected on task {}, not {task}; its observations and actions have the same \
                 names, so it trains as if they mean the same (`--task {}` trains on the dataset's task)",
                source.task,
                source.task_argument()
            )));
        }
        let changed = source.fingerprint_version == FINGERPRINT_VERSION
            && source
                .scene_fingerprint
                .is_some_and(|f| f != scene_fingerprint(scene));
        Ok(changed.then(|| {
            let scenes = match source.scene.as_deref() {
                Some(then) if absolute_scene(then) == absolute_scene(&scene.source) => {
                    format!("its file {then} has changed since")
                }
                Some(then) => format!("{then}; here {}", scene.source),
                None => format!("here {}", scene.source),
            };
            format!(
                "dataset {file} was collected on another version of task {task}'s scene ({scenes}): its observations \
                 and actions have the same names, so it trains as if the scenes behaved alike"
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::test_npz::{load_bytes, npz_bytes};

    #[test]
    fn a_dataset_shorter_than_a_chunk_is_named_with_the_horizon() {
        let data = load_bytes(&npz_bytes([1.0; 6])).unwrap();
        data.check_holds_a_chunk(Path::new("d.npz"), 4).unwrap();
        let err = data.check_holds_a_chunk(Path::new("d.npz"), 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset d.npz: 4 transitions, fewer than one action chunk of horizon_length = 5"
        );
    }
}
