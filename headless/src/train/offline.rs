//! The offline phase: the dataset read into the replay buffer, then gradient steps on it.

use std::path::Path;

use anyhow::Context;
use qamlab_agent::TransitionStore;

use super::replay::shape_reward;
use super::trainer::{Trainer, crossed};
use crate::config::TrainConfig;
use crate::phase::Phase;

impl Trainer<'_> {
    pub(super) fn offline_phase(&mut self) -> anyhow::Result<()> {
        let total = self.cfg.offline_steps;
        if self.state.offline_step >= total {
            return Ok(());
        }
        let bar = self.bar(total, self.state.offline_step, Phase::Offline);
        bar.set_message(self.status());
        while self.state.offline_step < total && !self.stop_requested() {
            let metrics = self.update(false)?;
            self.state.offline_step += 1;
            let step = self.state.offline_step;
            let due = |interval: u64| crossed(step - 1, step, total, interval);
            if due(self.cfg.log_interval) {
                self.log(&metrics, Phase::Offline, &[])?;
                bar.set_message(self.status());
            }
            if due(self.cfg.eval_interval) {
                // The bar stands still while the episodes run (a minute, on a large task): said so.
                bar.set_message(self.evaluating());
                if !self.evaluate(Phase::Offline)? {
                    break; // stopped: the run checkpoints this step, and owes its evaluation
                }
                bar.set_message(self.status());
            }
            if due(self.cfg.checkpoint_interval) {
                self.checkpoint(None)?;
            }
            bar.set_position(step);
        }
        self.end_bar(&bar);
        Ok(())
    }
}

/// Reads the offline dataset into the replay buffer, its rewards shaped as configured, checking it is data of the
/// task and holds a chunk; returns the CRC-32 of the file and what to warn of once the run can start (the data's
/// oddities; a note on a variant's and a dataset without success only when the run starts, not when it resumes).
pub(super) fn load_offline_data(
    path: &Path,
    replay: &mut TransitionStore,
    cfg: &TrainConfig,
    scene: &qamlab_sim::TaskScene,
    spec: &qamlab_sim::EnvSpec,
    resume: bool,
) -> anyhow::Result<(u32, Vec<String>)> {
    let data = crate::dataset::load_dataset(path).map_err(|e| {
        // A run started on a pipe (`--dataset <(...)`) records the pipe's name, which names nothing once it ended.
        let piped = path.starts_with("/dev/fd") || path.starts_with("/proc");
        if resume && piped && !path.exists() {
            e.context(format!(
                "the run read its dataset from a pipe, {}, which is gone: give the file it read as `dataset` in \
                 the run's config.toml (the CRC-32 the checkpoint records checks that it is the same data)",
                path.display()
            ))
        } else {
            e
        }
    })?;
    // Another task's data is said first: no horizon would make it fit.
    let note = data.check_fits(path, scene, spec)?;
    data.check_holds_a_chunk(path, cfg.agent.horizon_length)?;
    let mut warnings = data.warnings.clone();
    if !resume {
        warnings.extend(note);
        warnings.extend(data.few_whole_chunks(path, cfg.agent.horizon_length));
        let batch = cfg.agent.batch_size;
        if batch > data.len() {
            // Sampled with replacement, as the reference does: legal, but each batch repeats transitions.
            warnings.push(format!(
                "[agent] batch_size = {batch} is more than dataset {}'s {} transitions: each offline batch repeats \
                 some of them (sampled with replacement)",
                path.display(),
                data.len()
            ));
        }
        if data.transitions_at_success() == 0 {
            warnings.push(format!(
                "dataset {} never reaches success (no transition has mask 0): offline, the critic sees no success \
                 to value; online episodes may still find it",
                path.display()
            ));
        }
    }
    let mut transitions = data.transitions;
    for reward in &mut transitions.rewards {
        *reward = shape_reward(*reward, cfg.sparse);
    }
    let widths = |store: &TransitionStore| (store.obs_dim(), store.action_dim());
    if replay.is_empty() && widths(replay) == widths(&transitions) {
        // Moved, not copied: a copy would hold the whole dataset twice at once.
        *replay = transitions;
    } else {
        replay
            .append(&transitions)
            .with_context(|| format!("dataset {}", path.display()))?;
    }
    Ok((data.crc32, warnings))
}
