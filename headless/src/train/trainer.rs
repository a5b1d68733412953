//! The state of a run in progress and its course: starting (or resuming) it, running its phases, finishing it.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::Context;
use qamlab_agent::{Agent, TransitionStore};
use qamlab_sim::{BatchedEnv, TaskScene};
use qamlab_tasks::Task;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::checkpoints::RunSettings;
use super::episodes::EpisodesInProgress;
use super::offline::load_offline_data;
use super::replay::check_run_memory;
use super::reporting::Reporting;
use super::{TrainObserver, TrainSummary};
use crate::chunks::ChunkQueues;
use crate::config::TrainConfig;
use crate::evaluate::EvalPoint;
use crate::phase::Phase;
use crate::run_dir::{RunDir, RunLock};

/// Progress of a run: what a checkpoint must restore besides the agent and the replay buffer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct RunState {
    pub(super) offline_step: u64,
    pub(super) online_step: u64,
    pub(super) updates: u64,
    pub(super) online_episodes: u64,
    pub(super) online_successes: u64,
    /// Whether each of the last [`RECENT_EPISODES`] online episodes succeeded, oldest first. Absent in older
    /// checkpoints (their recent rate then starts over).
    #[serde(default)]
    pub(super) recent_successes: VecDeque<bool>,
    pub(super) evals: Vec<EvalPoint>,
    /// Word position of the batch sampler's ChaCha stream (its seed is the run seed).
    pub(super) sampler_word_pos: String,
    /// Incremented when a resume cannot put the online envs back exactly: gives them fresh seeds then.
    pub(super) generation: u64,
    /// Where each online env's episode in progress began in its random stream (`BatchedEnv::restore`); empty
    /// outside the online phase, and in checkpoints of qamlab versions that cut the episodes at a resume.
    #[serde(default)]
    pub(super) env_episode_word_pos: Vec<String>,
    /// The settings the run was started with that its course depends on (beyond the agent's, which the
    /// checkpointed agent records): a resume refuses a config.toml edited since. Absent in older checkpoints.
    #[serde(default)]
    pub(super) settings: Option<RunSettings>,
    /// Where the agent's acting draws stand (`Agent::acting_position`): the agent file's own count (evaluations
    /// draw from a stream of their own; checkpoints of older versions may count a final evaluation over it, made
    /// on resuming). Absent in older checkpoints.
    #[serde(default)]
    pub(super) acting_position: Option<u64>,
    /// The log interval the run logged with up to the checkpoint (the intervals may be edited before a resume):
    /// what says whether metrics rows before it are missing. Absent in older checkpoints.
    #[serde(default)]
    pub(super) log_interval: Option<u64>,
    /// The id the checkpoint's files all record (in the safetensors files' metadata too): files of two checkpoints
    /// are told apart even where their seeds and counts agree. Absent in older checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) checkpoint_id: Option<String>,
    /// Whether the run stopped amid the updates an online step owed (a stop does not wait for the thousands that a
    /// step of many envs or a high utd_ratio owes): the resumed run makes the rest, then what the step does after
    /// them (its log row, evaluation and checkpoint), before its next step. Absent where false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) step_unfinished: bool,
    /// Seconds spent in updates and in env steps (for throughput), and wall time.
    pub(super) update_seconds: f64,
    pub(super) env_seconds: f64,
    pub(super) wall_seconds: f64,
}

/// The state of a run in progress.
pub(super) struct Trainer<'a> {
    pub(super) cfg: &'a TrainConfig,
    pub(super) run: RunDir,
    pub(super) scene: &'a TaskScene,
    pub(super) agent: Agent,
    pub(super) replay: TransitionStore,
    pub(super) offline_len: usize,
    /// CRC-32 of the dataset file: a resumed run checks it still trains on the same data.
    pub(super) dataset_crc: Option<u32>,
    pub(super) sampler: ChaCha8Rng,
    pub(super) state: RunState,
    /// The online envs' episodes in progress (their transitions not yet in the replay buffer, and what a resumed
    /// run's checkpoint records of them).
    pub(super) episodes: EpisodesInProgress,
    /// What reporting keeps between reports.
    pub(super) reporting: Reporting,
    pub(super) started: Instant,
    pub(super) wall_before: f64,
    pub(super) observer: Option<Box<dyn TrainObserver>>,
    /// The step this process started training at (0, or the step of the checkpoint it resumed from).
    started_at: u64,
    /// The step of the run's latest checkpoint, where this process wrote it or resumed from it: a checkpoint of the
    /// same step again (a stop right after an interval's checkpoint) would hold the same and is not written.
    pub(super) checkpointed_at: Option<u64>,
    /// The step of the checkpoint this process resumed from where the run had stopped amid that step's updates: its
    /// checkpoint, once the step is finished, replaces that one.
    pub(super) finishes_checkpoint: Option<u64>,
    /// This process's claim on the run directory, held until the run ends.
    _lock: Option<RunLock>,
}

impl<'a> Trainer<'a> {
    /// A new run in `run` (or, with `resume`, the run there at its last checkpoint), ready to train, and the
    /// dataset's warnings: for the caller to say now that the run can start, so that an error comes alone.
    pub(super) fn start(
        cfg: &'a TrainConfig,
        run: &RunDir,
        task: &'a Task,
        device: Device,
        resume: bool,
        progress: bool,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let scene = &task.scene;
        let spec = qamlab_sim::EnvSpec::of(scene);
        // Named as the user gave it: a scene file's own task name may be another's (a copied scene).
        crate::chunks::check_agent_action_space(&spec)
            .with_context(|| format!("task {}", cfg.task))?;
        let (obs_dim, action_dim) = (spec.obs_dim, spec.action_dim);
        let on_cpu = device == Device::Cpu;
        // At once, before a dataset is read (a run past the machine should not wait for it), then with it.
        check_run_memory(cfg, (obs_dim, action_dim), on_cpu, 0)?;
        let mut replay = TransitionStore::new(obs_dim, action_dim);
        let (dataset_crc, warnings) = match &cfg.dataset {
            Some(path) => {
                let (crc, warnings) =
                    load_offline_data(path, &mut replay, cfg, scene, &spec, resume)?;
                (Some(crc), warnings)
            }
            None => (None, Vec::new()),
        };
        let offline_len = replay.len();
        if offline_len > 0 {
            check_run_memory(cfg, (obs_dim, action_dim), on_cpu, offline_len)?;
        }
        // The reference's buffer: the dataset plus room for every online transition.
        replay.try_reserve(cfg.online_steps.try_into().unwrap_or(usize::MAX));
        let mut trainer = Trainer {
            cfg,
            run: run.clone(),
            scene,
            agent: Agent::new(cfg.agent.clone(), obs_dim, action_dim, device, cfg.seed)?,
            replay,
            offline_len,
            dataset_crc,
            sampler: ChaCha8Rng::seed_from_u64(cfg.seed),
            state: RunState::default(),
            episodes: EpisodesInProgress::new(cfg.envs, obs_dim, action_dim),
            reporting: Reporting::new(progress),
            started: Instant::now(),
            wall_before: 0.0,
            observer: None,
            started_at: 0,
            checkpointed_at: None,
            finishes_checkpoint: None,
            _lock: None,
        };
        if resume {
            let lock = run.lock()?;
            run.remove_leftovers(&lock);
            trainer._lock = Some(lock);
            trainer.restore()?;
        } else {
            trainer.configure_execution();
            std::fs::create_dir_all(run.root())
                .with_context(|| format!("creating the run directory {}", run.root().display()))?;
            // Before anything is written: two new runs started on one directory must not mix their files.
            trainer._lock = Some(run.lock()?);
            run.check_unused()?;
            if !task.builtin {
                // The text the task was checked from, not the file read again: a save in between would give the
                // run a copy other than what it trains.
                run.write_task_scene(task.text.as_bytes())?;
            }
            run.write_config(cfg)?;
            let _ = std::fs::remove_file(run.metrics());
        }
        Ok((trainer, warnings))
    }

    /// Sets how the agent executes: CUDA graphs when the run asks for them and the agent is on a
    /// CUDA device, and whether CPU updates split over two threads.
    pub(super) fn configure_execution(&mut self) {
        self.agent.set_split_update(self.cfg.split_update);
        if self.cfg.cuda_graphs
            && self.agent.device().is_cuda()
            && let Err(e) = self.agent.use_cuda_graphs(true)
        {
            tracing::warn!("{e}; training runs eagerly");
        }
    }

    /// Whether both phases have run all their steps, and made every evaluation due (a run stopped during its last
    /// evaluation has its steps, and owes that evaluation still).
    pub(super) fn is_complete(&self) -> bool {
        self.state.offline_step >= self.cfg.offline_steps
            && self.state.online_step >= self.cfg.online_steps
            && !self.state.step_unfinished
            && self.evaluation_owed().is_none()
    }

    /// The task's name (from its scene, also when it was loaded from the run's copy).
    pub(super) fn task_name(&self) -> &str {
        &self.scene.settings.name
    }

    pub(super) fn total_step(&self) -> u64 {
        self.state.offline_step + self.state.online_step
    }

    pub(super) fn run(&mut self) -> anyhow::Result<()> {
        self.started_at = self.total_step();
        // A step stopped amid its updates makes its evaluation after them (in the online phase).
        if !self.state.step_unfinished
            && let Some(phase) = self.evaluation_owed()
            && self.evaluate(phase)?
            && self.is_complete()
        {
            // The last evaluation: the final checkpoint records it, as the run that never stopped has it (a run
            // with steps to go records it at its next checkpoint). Stopped again, the run checkpoints nothing new
            // (no step taken) and owes the evaluation still.
            self.record_final_evaluation()?;
        }
        self.offline_phase()?;
        if self.stop_requested() {
            return self.checkpoint_stopped(None);
        }
        self.online_phase()
    }

    /// The phase of an evaluation due at this step that the run has not made: a run stopped during an evaluation
    /// checkpoints without it, and makes it on resuming, before its next step (from the evaluation's own stream of
    /// draws, as the run that never stopped made it).
    fn evaluation_owed(&self) -> Option<Phase> {
        let step = self.total_step();
        if step == 0 || self.state.evals.last().is_some_and(|e| e.step == step) {
            return None;
        }
        // The phase's step before this one: the offline phase takes one step at a time, the online one a step
        // of every env.
        let (phase, done, total, before) = if self.state.online_step == 0 {
            let done = self.state.offline_step;
            (
                Phase::Offline,
                done,
                self.cfg.offline_steps,
                done.saturating_sub(1),
            )
        } else {
            let done = self.state.online_step;
            let before = done.saturating_sub(self.cfg.envs as u64);
            (Phase::Online, done, self.cfg.online_steps, before)
        };
        crossed(before, done, total, self.cfg.eval_interval).then_some(phase)
    }

    pub(super) fn stop_requested(&self) -> bool {
        self.observer.as_ref().is_some_and(|o| o.should_stop())
    }

    /// The checkpoint of a run stopped on request, unless it took no step since it started: the checkpoint it
    /// resumed from then stands (rewriting it, file by file, would risk it for nothing).
    pub(super) fn checkpoint_stopped(
        &mut self,
        envs: Option<(&BatchedEnv, &ChunkQueues)>,
    ) -> anyhow::Result<()> {
        if self.total_step() == self.started_at {
            return Ok(());
        }
        self.checkpoint(envs)
    }

    pub(super) fn finish(mut self) -> anyhow::Result<TrainSummary> {
        let stopped_early = !self.is_complete();
        if stopped_early {
            self.redraw_curve_stopped();
        }
        let due = self.online_updates_due(self.state.online_step);
        // Updates due wait until a chunk can be sampled, and are then all made: none are made, or all. A run
        // stopped early may simply not have got there yet.
        if !stopped_early && due > 0 && self.state.updates == self.state.offline_step {
            // The run did what it was told, but a user would take its evaluations for a trained agent's.
            let (sampled, remedy) = if self.cfg.balanced_sampling {
                (
                    "its online transitions (half of each balanced batch)",
                    "more --online-steps, or fewer --envs",
                )
            } else {
                (
                    "the online transitions (the buffer and the envs' episodes in progress)",
                    "a dataset, more --online-steps, or fewer --envs",
                )
            };
            tracing::warn!(
                "none of the {due} online gradient updates due was made: {sampled} never held a whole chunk of {} \
                 transitions of one env ({} online steps over {} envs); give {remedy}",
                self.cfg.agent.horizon_length,
                self.state.online_step,
                self.cfg.envs,
            );
        }
        let last = |phase: Phase| {
            self.state
                .evals
                .iter()
                .rev()
                .find(|e| e.phase == phase)
                .map(|e| e.success_rate)
        };
        let summary = TrainSummary {
            task: self.task_name().to_string(),
            agent: self.cfg.agent.kind.as_str().into(),
            device: crate::config::device_name(self.agent.device()),
            execution: self.agent.execution(),
            cpu_matmuls: qamlab_agent::mkl_kernels::active().label().into(),
            cpu_threads: (self.agent.device() == Device::Cpu)
                .then(|| usize::try_from(tch::get_num_threads()).unwrap_or(0)),
            seed: Some(self.cfg.seed),
            dataset: self.cfg.dataset.clone(),
            eval_episodes: Some(self.cfg.eval_episodes),
            // The envs used: an evaluation runs no env without an episode to play.
            eval_envs: Some(self.cfg.eval_envs.min(self.cfg.eval_episodes)),
            offline_success: last(Phase::Offline),
            online_success: last(Phase::Online),
            updates_per_second: (self.state.updates > 0)
                .then(|| self.state.updates as f64 / self.state.update_seconds.max(1e-9)),
            env_steps_per_second: (self.state.online_step > 0)
                .then(|| self.state.online_step as f64 / self.state.env_seconds.max(1e-9)),
            updates: self.state.updates,
            offline_updates: self.state.offline_step,
            online_steps: self.state.online_step,
            wall_seconds: self.wall_seconds(),
            evals: self.state.evals.clone(),
            best_online: super::best_online(&self.state.evals),
            // Absolute: the summary is read from other directories than the run's.
            learning_curve: std::path::absolute(self.run.curve())?,
            run_dir: std::path::absolute(self.run.root())?,
            stopped_early,
            final_evaluation: None,
        };
        super::write_summary(&summary)?;
        Ok(summary)
    }
}

/// Whether a phase's step from `before` to `done` (of `total`) reaches a multiple of `interval` or the phase's end:
/// when a log, evaluation or checkpoint is due, in both phases and for an evaluation a resumed run owes.
pub(super) fn crossed(before: u64, done: u64, total: u64, interval: u64) -> bool {
    before / interval != done / interval || done >= total
}

/// Online episodes the recent success rate is over: the whole phase's rate lags far behind a policy improving
/// as it fine-tunes.
pub(super) const RECENT_EPISODES: usize = 100;

/// Adds an episode's outcome to the last [`RECENT_EPISODES`], dropping the oldest.
pub(super) fn record_recent(recent: &mut VecDeque<bool>, success: bool) {
    if recent.len() == RECENT_EPISODES {
        recent.pop_front();
    }
    recent.push_back(success);
}

/// The fraction of `recent` that succeeded, once it holds the last [`RECENT_EPISODES`] (`None` before).
pub(super) fn recent_rate(recent: &VecDeque<bool>) -> Option<f64> {
    (recent.len() == RECENT_EPISODES)
        .then(|| recent.iter().filter(|&&s| s).count() as f64 / RECENT_EPISODES as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_rate_is_over_the_last_hundred_episodes() {
        let mut recent = VecDeque::new();
        assert_eq!(recent_rate(&recent), None);
        for i in 0..150 {
            record_recent(&mut recent, i < 75);
            // No rate until the window is full: a part-filled one is the whole phase's rate.
            if i < 99 {
                assert_eq!(recent_rate(&recent), None, "after {} episodes", i + 1);
            }
        }
        // Episodes 50..150: 25 successes.
        assert_eq!((recent.len(), recent_rate(&recent)), (100, Some(0.25)));
    }
}
