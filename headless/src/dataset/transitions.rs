//! A dataset read as transitions, and the checks that it suits a training run.

use std::path::Path;

use anyhow::{bail, ensure};

use qamlab_agent::TransitionStore;
use qamlab_sim::TaskScene;

use super::source::{absolute_scene, task_argument};
use super::{
    ColumnDifference, DatasetSource, FINGERPRINT_VERSION, first_column_difference,
    scene_fingerprint,
};

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
    /// The shape of the file's `qpos` (`[R, nq]`), where it holds one: not read as data, but its width tells a
    /// file of another simulator from one of the task's.
    pub qpos_shape: Option<Vec<u64>>,
    /// The shape of the file's `qvel` (`[R, nv]`), where it holds one.
    pub qvel_shape: Option<Vec<u64>>,
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
    /// holds fewer than one, or no episode does (what `qamlab train` says, and `qamlab dataset` too): a chunk that
    /// runs past its episode's end is weighted 0 in the critic's and the flow's losses (spec §2.2), so such data
    /// would train nothing, its losses all 0.
    pub fn check_holds_a_chunk(&self, path: &Path, horizon: usize) -> anyhow::Result<()> {
        ensure!(
            self.len() >= horizon,
            "dataset {}: {} transitions, fewer than one action chunk of horizon_length = {horizon}",
            path.display(),
            self.len()
        );
        let longest = self.longest_episode();
        ensure!(
            longest >= horizon,
            "dataset {}: its longest episode has {longest} transitions, fewer than one action chunk of \
             horizon_length = {horizon}, and a chunk that runs past its episode's end trains nothing (it is weighted \
             0 in the losses)",
            path.display()
        );
        Ok(())
    }

    /// The transitions of the longest episode (a run of transitions up to a terminal, or to the data's end).
    pub fn longest_episode(&self) -> usize {
        let terminals = &self.transitions.terminals;
        let mut longest = 0;
        let mut current = 0;
        for &t in terminals {
            current += 1;
            if t != 0.0 {
                longest = longest.max(current);
                current = 0;
            }
        }
        longest.max(current)
    }

    /// The share of the chunk starts [`sample_sequence`](TransitionStore::sample_sequence) draws (every index up to
    /// `len - horizon`) whose chunk of `horizon` transitions lies inside one episode: only those train the critic
    /// and the flow. 0 where there is no start.
    pub fn whole_chunk_share(&self, horizon: usize) -> f64 {
        let terminals = &self.transitions.terminals;
        let Some(starts) = (terminals.len() + 1).checked_sub(horizon.max(1)) else {
            return 0.0;
        };
        if starts == 0 {
            return 0.0;
        }
        // A chunk from `s` is whole where none of its first `horizon - 1` transitions ends an episode.
        let ends: Vec<usize> = std::iter::once(0)
            .chain(terminals.iter().scan(0, |n, &t| {
                *n += usize::from(t != 0.0);
                Some(*n)
            }))
            .collect();
        let inside = horizon.max(1) - 1;
        let whole = (0..starts).filter(|&s| ends[s + inside] == ends[s]).count();
        whole as f64 / starts as f64
    }

    /// A warning where fewer than half of the dataset's chunks of `horizon` lie inside an episode (its episodes
    /// not much longer than a chunk): most of what the run samples from it is weighted 0.
    pub fn few_whole_chunks(&self, path: &Path, horizon: usize) -> Option<String> {
        let share = self.whole_chunk_share(horizon);
        (share > 0.0 && share < 0.5).then(|| {
            format!(
                "dataset {}: only {:.0} % of its action chunks (horizon_length = {horizon}) lie inside an episode \
                 (its longest has {} transitions); the others are weighted 0 in the losses, so most of each batch \
                 drawn from it trains nothing",
                path.display(),
                100.0 * share,
                self.longest_episode()
            )
        })
    }

    /// Refuses a dataset whose `qpos` or `qvel` (where the file holds them) is not as wide as the task's: its
    /// observations, as wide as the task's, would still be another simulator's (OGBench's cube-single has 28-D
    /// observations too, but an arm's 19 values and a cube's 9 where qamlab's has a hand's 10, a cube's 15 and a
    /// goal's 3). `file` names the dataset; `remedy` says how to make one.
    fn check_state_widths(
        &self,
        file: &impl std::fmt::Display,
        spec: &qamlab_sim::EnvSpec,
        remedy: &str,
    ) -> anyhow::Result<()> {
        for (key, shape, ours, per_body) in [
            (
                "qpos",
                &self.qpos_shape,
                spec.qpos_dim,
                qamlab_sim::QPOS_PER_BODY,
            ),
            (
                "qvel",
                &self.qvel_shape,
                spec.qvel_dim,
                qamlab_sim::QVEL_PER_BODY,
            ),
        ] {
            let Some(shape) = shape else { continue };
            let theirs = match shape[..] {
                [_, width] => width,
                _ => {
                    bail!(
                        "dataset {file}: key `{key}` has shape {shape:?}, where task {}'s {key} is [N, {ours}]; \
                         {remedy}",
                        spec.task
                    )
                }
            };
            ensure!(
                theirs == ours as u64,
                "dataset {file}: key `{key}` is {theirs} values wide, but task {}'s {key} is {ours} ({per_body} per \
                 moving body: {}): the file was likely recorded in another simulator (OGBench's own files use \
                 another observation space than qamlab's tasks, even where the widths agree); {remedy}",
                spec.task,
                spec.state_bodies.join(", ")
            );
        }
        Ok(())
    }

    /// Checks that the dataset read from `path` is data of `scene`'s task (`spec` its envs): its widths, and,
    /// where the file records its source, its observation and action columns, else the widths of its `qpos` and
    /// `qvel` where it holds them. `Ok` with a note, for the caller to show, where the columns agree but the data
    /// may still be another's (another task's or another version of the scene's), or where the file does not say.
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
             train it online, without a dataset, and collect one with the policy it learns, `qamlab collect --run \
             RUN`)",
            crate::shell::quote(task_argument(scene))
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
                    crate::shell::quote(s.task_argument())
                ))
                .unwrap_or_default()
        );
        let Some(source) = &self.source else {
            self.check_state_widths(&file, spec, &remedy)?;
            return Ok(Some(format!(
                "dataset {file} does not record the task it was collected on (a file of another tool, or of qamlab \
                 before 2026-12-06): only its widths are checked against task {task}"
            )));
        };
        let collected_on = match &source.scene {
            Some(from) => format!("task {} (scene {from})", source.task),
            None => format!("task {}", source.task),
        };
        if let Some(ColumnDifference {
            what,
            index,
            theirs,
            ours,
        }) = first_column_difference(
            [&source.observations, &source.actions],
            [&spec.obs_names, &spec.action_names],
        ) {
            bail!(
                "dataset {file} was collected on {collected_on}, whose {what}s are not those of task {task} here \
                 (scene {}): {what} {index} is `{}` there and `{}` here; {remedy}",
                scene.source,
                theirs.unwrap_or("missing"),
                ours.unwrap_or("missing")
            );
        }
        if source.task != *task {
            // The task may come from a config file's `task` key, unseen on the command line: name the way out.
            return Ok(Some(format!(
                "dataset {file} was collected on task {}, not {task}; its observations and actions have the same \
                 names, so it trains as if they mean the same (`--task {}` trains on the dataset's task)",
                source.task,
                crate::shell::quote(source.task_argument())
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
    fn a_file_without_its_source_is_refused_where_its_qpos_or_qvel_is_another_simulator_s() {
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        let spec = qamlab_sim::EnvSpec::of(&scene);
        let path = Path::new("ogb.npz");
        // As wide as cube-single's observations and actions, as OGBench's cube-single is.
        let data = |qpos: Option<Vec<u64>>, qvel: Option<Vec<u64>>| Dataset {
            transitions: TransitionStore::new(spec.obs_dim, spec.action_dim),
            qpos_shape: qpos,
            qvel_shape: qvel,
            ..Dataset::default()
        };
        let (nq, nv) = (spec.qpos_dim as u64, spec.qvel_dim as u64);
        // OGBench's cube-single: qpos [N, 21], qvel [N, 20].
        let err = data(Some(vec![10, 21]), Some(vec![10, 20]))
            .check_fits(path, &scene, &spec)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "dataset ogb.npz: key `qpos` is 21 values wide, but task cube-single's qpos is {nq} (7 per moving \
                 body: {}): the file was likely recorded in another simulator",
                spec.state_bodies.join(", ")
            )) && err.contains("OGBench's own files use another observation space")
                && err.contains("`qamlab collect --task cube-single`"),
            "{err}"
        );
        let err = data(Some(vec![10, nq]), Some(vec![10, 20]))
            .check_fits(path, &scene, &spec)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "dataset ogb.npz: key `qvel` is 20 values wide, but task cube-single's qvel is {nv}"
            )),
            "{err}"
        );
        let err = data(Some(vec![10]), None)
            .check_fits(path, &scene, &spec)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "dataset ogb.npz: key `qpos` has shape [10], where task cube-single's qpos is [N, {nq}]"
            )),
            "{err}"
        );
        // The task's widths, or none, pass with the note that only widths were checked.
        for (qpos, qvel) in [(Some(vec![10, nq]), Some(vec![10, nv])), (None, None)] {
            let note = data(qpos, qvel).check_fits(path, &scene, &spec).unwrap();
            assert!(
                note.is_some_and(|n| n.contains("only its widths are checked")),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn a_dataset_shorter_than_a_chunk_is_named_with_the_horizon() {
        // Two episodes of 2 transitions each.
        let data = load_bytes(&npz_bytes([1.0; 6])).unwrap();
        assert_eq!(data.longest_episode(), 2);
        data.check_holds_a_chunk(Path::new("d.npz"), 2).unwrap();
        let err = data.check_holds_a_chunk(Path::new("d.npz"), 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset d.npz: 4 transitions, fewer than one action chunk of horizon_length = 5"
        );
        // Enough transitions, but no episode holds a chunk: every sample would cross an episode's end.
        let err = data.check_holds_a_chunk(Path::new("d.npz"), 3).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "dataset d.npz: its longest episode has 2 transitions, fewer than one action chunk of \
                 horizon_length = 3"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_share_of_whole_chunks_counts_the_starts_whose_chunk_stays_in_its_episode() {
        let mut data = load_bytes(&npz_bytes([1.0; 6])).unwrap();
        // Episodes of 2: chunks of 1 are all whole; of 2, the starts 0 and 2 of the 3 (start 1 crosses).
        assert_eq!(data.whole_chunk_share(1), 1.0);
        assert_eq!(data.whole_chunk_share(2), 2.0 / 3.0);
        assert_eq!(data.whole_chunk_share(3), 0.0);
        assert_eq!(data.whole_chunk_share(5), 0.0);
        assert!(data.few_whole_chunks(Path::new("d.npz"), 2).is_none());
        // Episodes of 3, 1, 3, 1 transitions: of the 6 starts of a chunk of 3 (indices 0-5), only 0 and 4 are whole.
        data.transitions.terminals = vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        assert_eq!(data.whole_chunk_share(3), 2.0 / 6.0);
        let warning = data.few_whole_chunks(Path::new("d.npz"), 3).unwrap();
        assert!(
            warning.starts_with("dataset d.npz: only 33 % of its action chunks"),
            "{warning}"
        );
    }
}
