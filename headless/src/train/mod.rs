//! Offline -> online training (spec §7): gradient steps on the dataset, then fine-tuning while
//! `envs` envs step together; evaluation, metrics, learning curve, checkpoints and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use qamlab_agent::data::{
    Segment, balanced_chunk_starts, chunk_count, chunk_starts, sample_chunks,
};
use qamlab_agent::{Agent, TransitionStore};
use qamlab_sim::{BatchedEnv, EnvOptions, StepOutput, TaskScene};
use qamlab_tasks::Task;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::Device;

mod checkpoints;

use checkpoints::RunSettings;

use crate::chunks::ChunkQueues;
use crate::config::TrainConfig;
use crate::evaluate::evaluate;
use crate::files::write_bytes_atomically;
use crate::plot::{EvalPoint, draw_learning_curves};
use crate::run_dir::{RunDir, RunLock};

/// Progress of a run: what a checkpoint must restore besides the agent and the replay buffer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RunState {
    offline_step: u64,
    online_step: u64,
    updates: u64,
    online_episodes: u64,
    online_successes: u64,
    evals: Vec<EvalPoint>,
    /// Word position of the batch sampler's ChaCha stream (its seed is the run seed).
    sampler_word_pos: String,
    /// Incremented when a resume cannot put the online envs back exactly: gives them fresh seeds then.
    generation: u64,
    /// Where each online env's episode in progress began in its random stream (`BatchedEnv::restore`); empty
    /// outside the online phase, and in checkpoints of qamlab versions that cut the episodes at a resume.
    #[serde(default)]
    env_episode_word_pos: Vec<String>,
    /// The settings the run was started with that its course depends on (beyond the agent's, which the
    /// checkpointed agent records): a resume refuses a config.toml edited since. Absent in older checkpoints.
    #[serde(default)]
    settings: Option<RunSettings>,
    /// Seconds spent in updates and in env steps (for throughput), and wall time.
    update_seconds: f64,
    env_seconds: f64,
    wall_seconds: f64,
}

/// What a finished run reports (also written to `summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Task trained on.
    pub task: String,
    /// Agent kind.
    pub agent: String,
    /// Device used.
    pub device: String,
    /// How updates and acting ran: `eager`, `cuda graphs`, or `eager (CUDA graph failed: …)`.
    #[serde(default)]
    pub execution: String,
    /// Which kernels ran the CPU's float32 matrix products (`oneMKL's Intel kernels`, …): they sum
    /// in different orders, so a seed's run takes another path under another choice.
    #[serde(default)]
    pub cpu_matmuls: String,
    /// Success rate at the last offline evaluation (None without an offline phase).
    pub offline_success: Option<f64>,
    /// Success rate at the last online evaluation (None without an online phase).
    pub online_success: Option<f64>,
    /// Gradient updates per second (time in updates only).
    pub updates_per_second: f64,
    /// Environment steps per second online (time in env steps only).
    pub env_steps_per_second: f64,
    /// Total gradient updates.
    pub updates: u64,
    /// Online environment steps.
    pub online_steps: u64,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// Every evaluation.
    pub evals: Vec<EvalPoint>,
    /// The learning-curve PNG.
    pub learning_curve: PathBuf,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Whether the run stopped on request before its last step (`--resume` continues it).
    #[serde(default)]
    pub stopped_early: bool,
}

/// Watches a run from another part of the program (the window): metrics rows, evaluations and
/// fresh weights as they come, and a way to stop the run early (it then checkpoints and finishes).
pub trait TrainObserver: Send {
    /// A metrics row was logged.
    fn on_log(&mut self, _step: u64, _row: &serde_json::Value) {}
    /// An evaluation finished.
    fn on_eval(&mut self, _point: &EvalPoint) {}
    /// New weights are available (called every log interval); copy what you need.
    fn on_weights(&mut self, _step: u64, _agent: &Agent) {}
    /// Training has ended (finished or stopped): the final weights, which a watcher that skips some of
    /// `on_weights` must not skip.
    fn on_final_weights(&mut self, step: u64, agent: &Agent) {
        self.on_weights(step, agent);
    }
    /// Whether the run should stop now.
    fn should_stop(&self) -> bool {
        false
    }
}

/// Options of one call to [`train`].
pub struct TrainOptions {
    /// The run's configuration (ignored on resume: the run's own `config.toml` is used).
    pub config: TrainConfig,
    /// Run directory.
    pub out: PathBuf,
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Optional watcher of the run.
    pub observer: Option<Box<dyn TrainObserver>>,
}

/// Trains an agent offline then online as configured, writing everything into the run directory.
pub fn train(opts: TrainOptions) -> anyhow::Result<TrainSummary> {
    let run = RunDir::new(&opts.out);
    let mut cfg = if opts.resume {
        run.read_config()
            .with_context(|| format!("resuming {}", run.root().display()))?
    } else {
        run.check_unused()?;
        let mut cfg = opts.config;
        // The run's config.toml must still find the dataset when resumed from another directory.
        if let Some(path) = &mut cfg.dataset {
            *path = std::path::absolute(&*path)
                .with_context(|| format!("dataset {}", path.display()))?;
        }
        cfg
    };
    cfg.validate()?;
    // Loaded before the warnings below: an unknown task or a broken scene is the one thing to say then.
    let task =
        qamlab_tasks::load_task(&cfg.task).with_context(|| format!("task = {:?}", cfg.task))?;
    // Said once, when the run starts; a resumed run was told.
    if !opts.resume && cfg.online_steps > 0 && cfg.online_steps < cfg.start_training {
        tracing::warn!(
            "online_steps = {} is below start_training = {}: the online phase only collects, with no updates",
            cfg.online_steps,
            cfg.start_training
        );
    }
    if !opts.resume && !cfg.agent.kind.has_critic() && cfg.dataset.is_none() && cfg.online_steps > 0
    {
        tracing::warn!(
            "agent bc imitates its data, and this run has no dataset: online it imitates its own actions (random \
             ones at first), which teaches it nothing about the task; give a --dataset, or an agent with a critic"
        );
    }
    let episode_length = task.scene.settings.episode_length as usize;
    if !opts.resume && cfg.agent.horizon_length > episode_length {
        tracing::warn!(
            "horizon_length = {} is longer than {}'s episodes ({episode_length} control steps): every action chunk \
             runs past its episode's end",
            cfg.agent.horizon_length,
            task.name
        );
    }
    let device = cfg.device.resolve()?;
    if device == Device::Cpu {
        // Half the cores: libtorch's OpenMP threads spin, and more of them than the cores the envs' physics
        // leaves free make updates many times slower.
        crate::config::set_cpu_threads(None);
        let widest = cfg
            .agent
            .actor_hidden_dims
            .iter()
            .chain(&cfg.agent.value_hidden_dims)
            .max();
        if widest.is_some_and(|&w| w >= 512) {
            tracing::warn!(
                "networks {} wide train slowly on a CPU (the paper's 4x512, K 10: about 1 update/s on two cores); \
                 assets/configs/cpu-small.toml has the demo's CPU sizes",
                widest.unwrap_or(&0)
            );
        }
        if cfg.tf32 {
            tracing::warn!("tf32 = true applies to CUDA matmuls only; this run is on the CPU");
        }
    } else {
        // Set either way: the setting is process-wide and an earlier run may have changed it.
        qamlab_agent::precision::set_tf32_matmuls(cfg.tf32)
            .with_context(|| format!("tf32 = {}", cfg.tf32))?;
    }
    if !opts.resume && !task.builtin {
        // Where the scene came from, for the record: the run loads its own copy.
        cfg.task = std::path::absolute(&cfg.task)?.display().to_string();
    }

    let mut trainer = Trainer::start(&cfg, &run, &task, device, opts.resume, opts.progress)?;
    if opts.resume && trainer.is_complete() {
        eprintln!(
            "{} finished already: nothing to resume; its summary:",
            run.root().display()
        );
        // Left as it is: resuming a finished run changes nothing.
        let recorded = std::fs::read_to_string(run.summary())
            .ok()
            .and_then(|text| serde_json::from_str::<TrainSummary>(&text).ok());
        if let Some(mut summary) = recorded {
            // Where the run is now: a run directory may have been moved or copied since it finished.
            summary.run_dir = run.root().to_path_buf();
            summary.learning_curve = run.curve();
            return Ok(summary);
        }
    }
    trainer.observer = opts.observer;
    trainer.run()?;
    let step = trainer.total_step();
    if let Some(observer) = trainer.observer.as_mut() {
        observer.on_final_weights(step, &trainer.agent);
    }
    trainer.finish()
}

/// The state of a run in progress.
struct Trainer<'a> {
    cfg: &'a TrainConfig,
    run: RunDir,
    scene: &'a TaskScene,
    agent: Agent,
    replay: TransitionStore,
    offline_len: usize,
    /// CRC-32 of the dataset file: a resumed run checks it still trains on the same data.
    dataset_crc: Option<u32>,
    sampler: ChaCha8Rng,
    state: RunState,
    /// Online transitions of each env's episode in progress: sampled from as they come (a segment of their own,
    /// see `sampled_segments`) and appended to the replay buffer when the episode ends, so every episode there
    /// is contiguous (chunks never mix envs).
    pending: Vec<TransitionStore>,
    progress: bool,
    started: Instant,
    wall_before: f64,
    observer: Option<Box<dyn TrainObserver>>,
    /// Whether the fall-back from CUDA graphs was reported already.
    fallback_reported: bool,
    /// What the checkpoint a resumed run starts from holds of its online envs, for the online phase.
    resumed_envs: Option<ResumedEnvs>,
    /// The step this process started training at (0, or the step of the checkpoint it resumed from).
    started_at: u64,
    /// This process's claim on the run directory, held until the run ends.
    _lock: Option<RunLock>,
}

/// A checkpoint's record of the online envs: where each episode in progress began in its env's stream (its
/// actions so far are the pending transitions), and the actions each env still had queued from its chunk.
struct ResumedEnvs {
    word_pos: Vec<u128>,
    queued: Vec<f32>,
    queued_counts: Vec<usize>,
}

impl<'a> Trainer<'a> {
    fn start(
        cfg: &'a TrainConfig,
        run: &RunDir,
        task: &'a Task,
        device: Device,
        resume: bool,
        progress: bool,
    ) -> anyhow::Result<Self> {
        let scene = &task.scene;
        let spec = qamlab_sim::EnvSpec::of(scene);
        crate::chunks::check_agent_action_space(&spec)?;
        let (obs_dim, action_dim) = (spec.obs_dim, spec.action_dim);
        check_replay_memory(cfg, obs_dim, action_dim)?;
        let mut replay = TransitionStore::new(obs_dim, action_dim);
        let dataset_crc = match &cfg.dataset {
            Some(path) => Some(load_offline_data(
                path,
                &mut replay,
                cfg,
                scene,
                &spec,
                resume,
            )?),
            None => None,
        };
        let offline_len = replay.len();
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
            pending: vec![TransitionStore::new(obs_dim, action_dim); cfg.envs],
            progress,
            started: Instant::now(),
            wall_before: 0.0,
            observer: None,
            fallback_reported: false,
            resumed_envs: None,
            started_at: 0,
            _lock: None,
        };
        if resume {
            trainer._lock = Some(run.lock()?);
            trainer.restore()?;
        } else {
            trainer.configure_execution();
            std::fs::create_dir_all(run.root())
                .with_context(|| format!("creating the run directory {}", run.root().display()))?;
            // Before anything is written: two new runs started on one directory must not mix their files.
            trainer._lock = Some(run.lock()?);
            run.check_unused()?;
            if !task.builtin {
                let text = std::fs::read(&cfg.task)
                    .with_context(|| format!("copying the task scene {}", cfg.task))?;
                run.write_task_scene(&text)?;
            }
            write_bytes_atomically(&run.config(), cfg.to_toml()?.as_bytes())?;
            let _ = std::fs::remove_file(run.metrics());
        }
        Ok(trainer)
    }

    /// Sets how the agent executes: CUDA graphs when the run asks for them and the agent is on a
    /// CUDA device, and whether CPU updates split over two threads.
    fn configure_execution(&mut self) {
        self.agent.set_split_update(self.cfg.split_update);
        if self.cfg.cuda_graphs
            && self.agent.device().is_cuda()
            && let Err(e) = self.agent.use_cuda_graphs(true)
        {
            tracing::warn!("{e}; training runs eagerly");
            self.fallback_reported = true;
        }
    }

    /// Whether both phases have run all their steps.
    fn is_complete(&self) -> bool {
        self.state.offline_step >= self.cfg.offline_steps
            && self.state.online_step >= self.cfg.online_steps
    }

    /// The task's name (from its scene, also when it was loaded from the run's copy).
    fn task_name(&self) -> &str {
        &self.scene.settings.name
    }

    fn total_step(&self) -> u64 {
        self.state.offline_step + self.state.online_step
    }

    fn run(&mut self) -> anyhow::Result<()> {
        self.started_at = self.total_step();
        self.offline_phase()?;
        if self.stop_requested() {
            return self.checkpoint_stopped(None);
        }
        self.online_phase()
    }

    fn stop_requested(&self) -> bool {
        self.observer.as_ref().is_some_and(|o| o.should_stop())
    }

    /// The checkpoint of a run stopped on request, unless it took no step since it started: the checkpoint it
    /// resumed from then stands (rewriting it, file by file, would risk it for nothing).
    fn checkpoint_stopped(
        &mut self,
        envs: Option<(&BatchedEnv, &ChunkQueues)>,
    ) -> anyhow::Result<()> {
        if self.total_step() == self.started_at {
            return Ok(());
        }
        self.checkpoint(envs)
    }

    fn bar(&self, len: u64, pos: u64, prefix: &'static str) -> ProgressBar {
        let bar = if self.progress {
            ProgressBar::new(len)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:32.cyan/blue}] {pos}/{len} {elapsed_precise} ETA {eta_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix);
        bar.set_position(pos);
        bar
    }

    fn status(&self) -> String {
        let success = self
            .state
            .evals
            .last()
            .map_or("-".into(), |e| format!("{:.2}", e.success_rate));
        let ups = self.state.updates as f64 / self.state.update_seconds.max(1e-9);
        format!("success {success} | {ups:.0} upd/s")
    }

    fn offline_phase(&mut self) -> anyhow::Result<()> {
        let total = self.cfg.offline_steps;
        if self.state.offline_step >= total {
            return Ok(());
        }
        let bar = self.bar(total, self.state.offline_step, "offline");
        bar.set_message(self.status());
        while self.state.offline_step < total && !self.stop_requested() {
            let metrics = self.update(false)?;
            self.state.offline_step += 1;
            let step = self.state.offline_step;
            if step.is_multiple_of(self.cfg.log_interval) || step == total {
                self.log(&metrics, "offline", &[])?;
                bar.set_message(self.status());
            }
            if step.is_multiple_of(self.cfg.eval_interval) || step == total {
                self.evaluate("offline")?;
                bar.set_message(self.status());
            }
            if step.is_multiple_of(self.cfg.checkpoint_interval) || step == total {
                self.checkpoint(None)?;
            }
            bar.set_position(step);
        }
        bar.finish();
        Ok(())
    }

    fn online_phase(&mut self) -> anyhow::Result<()> {
        let total = self.cfg.online_steps;
        if self.state.online_step >= total {
            return Ok(());
        }
        let n = self.cfg.envs;
        let mut env = BatchedEnv::new(
            self.scene,
            n,
            EnvOptions {
                terminate_on_success: true,
                episode_length: None,
            },
        )?;
        let (mut obs, mut queues) = self.start_envs(&mut env)?;
        let bar = self.bar(total, self.state.online_step, "online");
        bar.set_message(self.status());
        let mut last_metrics = None;
        while self.state.online_step < total && !self.stop_requested() {
            if self.cfg.balanced_sampling {
                self.queue_warmup_actions(&mut queues);
            }
            let actions = queues.next_actions(&mut self.agent, &obs)?;
            let t0 = Instant::now();
            let out = env
                .step(&actions)
                .with_context(|| format!("stepping task {} online", self.cfg.task))?;
            self.state.env_seconds += t0.elapsed().as_secs_f64();
            self.stage_transitions(&obs, &actions, out, &mut queues)?;
            obs.copy_from_slice(&out.obs);
            let before = self.state.online_step;
            self.state.online_step += n as u64;
            let step = self.state.online_step;
            if let Some(metrics) = self.make_due_updates()? {
                last_metrics = Some(metrics);
            }
            let crossed = |interval: u64| before / interval != step / interval || step >= total;
            if crossed(self.cfg.log_interval) {
                self.log_online(last_metrics.as_ref())?;
                bar.set_message(self.status());
            }
            if crossed(self.cfg.eval_interval) {
                self.evaluate("online")?;
                bar.set_message(self.status());
            }
            if crossed(self.cfg.checkpoint_interval) {
                self.checkpoint(Some((&env, &queues)))?;
            }
            bar.set_position(step.min(total));
        }
        bar.finish();
        if self.stop_requested() {
            self.checkpoint_stopped(Some((&env, &queues)))?;
        }
        Ok(())
    }

    /// Queues a uniformly random action for each env with none queued whose step comes before `start_training`.
    fn queue_warmup_actions(&self, queues: &mut ChunkQueues) {
        // As the reference's balanced runs: uniformly random actions, one at a time, before
        // start_training (env i takes online step `online_step + 1 + i` of this batched step).
        let first = self.state.online_step + 1;
        let (seed, start) = (self.cfg.seed, self.cfg.start_training);
        let action_dim = self.replay.action_dim();
        queues.fill_empty(|i| {
            let step = first + i as u64;
            (step < start).then(|| warmup_action(seed, step, action_dim))
        });
    }

    /// Stages each env's transition of step `out` (taken from `obs` with `actions`); an env whose episode ended
    /// has it appended to the replay buffer, counted, and its queued actions dropped.
    fn stage_transitions(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        out: &StepOutput,
        queues: &mut ChunkQueues,
    ) -> anyhow::Result<()> {
        let (obs_dim, action_dim) = (self.replay.obs_dim(), self.replay.action_dim());
        for i in 0..self.cfg.envs {
            let done = out.ended(i);
            let staging = if self.stages_in_replay() {
                &mut self.replay
            } else {
                &mut self.pending[i]
            };
            staging.push(
                &obs[i * obs_dim..(i + 1) * obs_dim],
                &actions[i * action_dim..(i + 1) * action_dim],
                shape_reward(out.reward[i], self.cfg.sparse),
                if out.terminated[i] { 0.0 } else { 1.0 },
                if done { 1.0 } else { 0.0 },
                &out.final_obs[i * obs_dim..(i + 1) * obs_dim],
            )?;
            if done {
                if !self.stages_in_replay() {
                    let episode = std::mem::replace(
                        &mut self.pending[i],
                        TransitionStore::new(obs_dim, action_dim),
                    );
                    append(&mut self.replay, &episode)?;
                }
                self.state.online_episodes += 1;
                self.state.online_successes += u64::from(out.success[i]);
                queues.clear(i);
            }
        }
        Ok(())
    }

    /// Makes the online updates due by now, if a chunk can be sampled; returns the last one's metrics, if any.
    fn make_due_updates(&mut self) -> anyhow::Result<Option<qamlab_agent::UpdateMetrics>> {
        // As the reference: `utd_ratio` updates for every env step i >= start_training. Until the transitions
        // sampled from hold a whole chunk (in an online-only or balanced run, until the online rows of the buffer
        // or some env's episode in progress hold H transitions) the updates due wait, and are made as soon as
        // they can be.
        let due = self.online_updates_due(self.state.online_step);
        let made = self.state.updates - self.state.offline_step;
        if made >= due {
            return Ok(None);
        }
        let balanced = self.cfg.balanced_sampling;
        let segments = sampled_segments(&self.replay, self.offline_len, balanced, &self.pending);
        // A balanced batch needs a chunk of its online half.
        let online_half = if balanced {
            &segments[1..]
        } else {
            &segments[..]
        };
        if chunk_count(online_half, self.cfg.agent.horizon_length) == 0 {
            return Ok(None);
        }
        let mut last_metrics = None;
        for _ in made..due {
            last_metrics = Some(self.update(true)?);
        }
        Ok(last_metrics)
    }

    /// Logs an online row: the last update's metrics (if one was made yet) and the online episodes' progress.
    fn log_online(
        &mut self,
        last_metrics: Option<&qamlab_agent::UpdateMetrics>,
    ) -> anyhow::Result<()> {
        let rate = self.state.online_successes as f64 / self.state.online_episodes.max(1) as f64;
        let extra = [
            ("online_episodes", self.state.online_episodes as f64),
            ("online_episode_success", rate),
            (
                "env_steps_per_second",
                self.state.online_step as f64 / self.state.env_seconds.max(1e-9),
            ),
        ];
        match last_metrics {
            Some(m) => self.log(m, "online", &extra),
            None => self.log_row("online", Vec::new(), &extra),
        }
    }

    /// Starts the online envs: new episodes in a new run; in a resumed one, the very episodes the checkpoint was
    /// taken in, replayed from their starts with the actions taken since, so the run goes on as if never stopped.
    /// Where that cannot be done exactly (a checkpoint of an older qamlab, or physics that comes out otherwise,
    /// say on another machine), the transitions so far are kept as episodes cut at the checkpoint (still
    /// bootstrapping) and the envs start new episodes from fresh seeds.
    fn start_envs(&mut self, env: &mut BatchedEnv) -> anyhow::Result<(Vec<f32>, ChunkQueues)> {
        let n = self.cfg.envs;
        let action_dim = env.spec().action_dim;
        let seeds = |generation: u64| -> Vec<u64> {
            (0..n as u64)
                .map(|i| env_seed(self.cfg.seed, generation, i))
                .collect()
        };
        if self.state.online_step > 0 {
            let why = match self.resumed_envs.take() {
                None => "the checkpoint does not record the envs' episodes in progress (an older qamlab wrote it)"
                    .to_string(),
                Some(r) => match self.replay_envs(env, &seeds(self.state.generation), &r) {
                    Ok(obs) => {
                        let queues = ChunkQueues::restore(action_dim, &r.queued, &r.queued_counts)?;
                        return Ok((obs, queues));
                    }
                    Err(e) => format!("{e:#}"),
                },
            };
            tracing::warn!(
                "{why}: the episodes in progress end at the checkpoint and the envs start new ones"
            );
            if self.stages_in_replay() && !self.episode_in_progress(0).0.is_empty() {
                // A boundary for chunk sampling; the mask still bootstraps.
                *self
                    .replay
                    .terminals
                    .last_mut()
                    .expect("an episode is in progress") = 1.0;
            }
            let (obs_dim, action_dim) = (self.replay.obs_dim(), self.replay.action_dim());
            for i in 0..n {
                let mut episode = std::mem::replace(
                    &mut self.pending[i],
                    TransitionStore::new(obs_dim, action_dim),
                );
                if let Some(last) = episode.terminals.last_mut() {
                    // A boundary for chunk sampling; the mask still bootstraps.
                    *last = 1.0;
                }
                append(&mut self.replay, &episode)?;
            }
            self.state.generation += 1;
        }
        let obs = env
            .reset(&seeds(self.state.generation))
            .with_context(|| format!("starting task {} online", self.cfg.task))?
            .to_vec();
        Ok((obs, ChunkQueues::new(n, action_dim)))
    }

    /// Puts the envs back into their checkpointed episodes; checks each reaches the observation recorded last.
    fn replay_envs(
        &self,
        env: &mut BatchedEnv,
        seeds: &[u64],
        resumed: &ResumedEnvs,
    ) -> anyhow::Result<Vec<f32>> {
        let n = self.cfg.envs;
        let actions: Vec<&[f32]> = (0..n).map(|i| self.episode_in_progress(i).0).collect();
        let obs = env
            .restore(seeds, &resumed.word_pos, &actions)
            .context("replaying the episodes in progress")?
            .to_vec();
        let (o, a) = (env.spec().obs_dim, env.spec().action_dim);
        for i in 0..n {
            let (actions, recorded) = self.episode_in_progress(i);
            let reached = &obs[i * o..(i + 1) * o];
            let same = recorded
                .iter()
                .zip(reached)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            if !same {
                bail!(
                    "env {i}'s replayed episode did not reach the observation its checkpoint recorded after {} \
                     steps (the physics came out otherwise)",
                    actions.len() / a
                );
            }
        }
        Ok(obs)
    }

    /// Whether online transitions go straight into the replay buffer, as the reference's `add_transition` does.
    /// With one env its episodes stay contiguous anyway; with several, each env stages its episode until it ends
    /// (sampled from meanwhile), so that sampled chunks never mix envs.
    fn stages_in_replay(&self) -> bool {
        self.cfg.envs == 1
    }

    /// Env `i`'s episode in progress: its actions so far (`[T * action_dim]`) and the observation it has reached
    /// (empty before its first step).
    fn episode_in_progress(&self, i: usize) -> (&[f32], &[f32]) {
        let (o, a) = (self.replay.obs_dim(), self.replay.action_dim());
        let (store, from) = if self.stages_in_replay() {
            // The rows after the buffer's last episode boundary (the offline data ends with one).
            let t = &self.replay.terminals;
            let from = t.iter().rposition(|&x| x > 0.0).map_or(0, |j| j + 1);
            (&self.replay, from.max(self.offline_len))
        } else {
            (&self.pending[i], 0)
        };
        let next = &store.next_observations[from * o..];
        (
            &store.actions[from * a..],
            &next[next.len().saturating_sub(o)..],
        )
    }

    /// One gradient update on a batch of chunks drawn uniformly from [`sampled_segments`]: over all of them, or,
    /// online with `balanced_sampling`, half from the offline data and half from the online transitions.
    fn update(&mut self, online: bool) -> anyhow::Result<qamlab_agent::UpdateMetrics> {
        let a = &self.cfg.agent;
        let t0 = Instant::now();
        let (h, b) = (a.horizon_length, a.batch_size);
        let balanced = online && self.cfg.balanced_sampling;
        let segments = sampled_segments(&self.replay, self.offline_len, balanced, &self.pending);
        let starts = if balanced {
            balanced_chunk_starts(&mut self.sampler, b / 2, h, &segments, 1)?
        } else {
            chunk_starts(&mut self.sampler, b, h, &segments)?
        };
        let batch = sample_chunks(&segments, h, a.discount, &starts, self.agent.device())?;
        let metrics = self.agent.update(&batch).with_context(|| {
            format!(
                "update {} of the run failed (the last checkpoint is kept)",
                self.state.updates + 1
            )
        })?;
        self.state.update_seconds += t0.elapsed().as_secs_f64();
        self.state.updates += 1;
        Ok(metrics)
    }

    fn log(
        &mut self,
        metrics: &qamlab_agent::UpdateMetrics,
        phase: &str,
        extra: &[(&str, f64)],
    ) -> anyhow::Result<()> {
        // The only host synchronisation of the loop: once per log interval. On a GPU the updates
        // queued since the last read finish here, so this wait counts as update time.
        let t0 = Instant::now();
        let pairs = metrics.to_pairs()?;
        self.state.update_seconds += t0.elapsed().as_secs_f64();
        if !self.fallback_reported
            && let Some(reason) = self.agent.cuda_graph_fallback()
        {
            tracing::warn!("CUDA graphs turned off, training goes on eagerly: {reason}");
            self.fallback_reported = true;
        }
        if let Some((name, value)) = pairs
            .iter()
            .find(|(name, value)| name.ends_with("_loss") && !value.is_finite())
        {
            bail!(
                "training diverged at step {}: {name} = {value}",
                self.total_step()
            );
        }
        self.log_row(phase, pairs, extra)
    }

    fn log_row(
        &mut self,
        phase: &str,
        pairs: Vec<(String, f64)>,
        extra: &[(&str, f64)],
    ) -> anyhow::Result<()> {
        let mut row = serde_json::Map::new();
        row.insert("step".into(), json!(self.total_step()));
        row.insert("phase".into(), json!(phase));
        row.insert("updates".into(), json!(self.state.updates));
        row.insert(
            "updates_per_second".into(),
            json!(self.state.updates as f64 / self.state.update_seconds.max(1e-9)),
        );
        row.insert("wall_seconds".into(), json!(self.wall_seconds()));
        for (k, v) in pairs {
            row.insert(k, json!(v));
        }
        for (k, v) in extra {
            row.insert((*k).into(), json!(v));
        }
        let row = serde_json::Value::Object(row);
        self.run.append_metrics(&row)?;
        let step = self.total_step();
        if let Some(observer) = self.observer.as_mut() {
            observer.on_log(step, &row);
            observer.on_weights(step, &self.agent);
        }
        Ok(())
    }

    fn wall_seconds(&self) -> f64 {
        self.wall_before + self.started.elapsed().as_secs_f64()
    }

    fn evaluate(&mut self, phase: &str) -> anyhow::Result<()> {
        let step = self.total_step();
        let result = evaluate(
            &mut self.agent,
            self.scene,
            self.cfg.eval_episodes,
            self.cfg.eval_envs,
            self.cfg.seed ^ 0x5EED_E7A1,
        )
        .with_context(|| format!("evaluating task {} at step {step}", self.cfg.task))?;
        let point = result.point(step, phase);
        if let Some(observer) = self.observer.as_mut() {
            observer.on_eval(&point);
        }
        self.state.evals.push(point);
        self.run.write_evals(&self.state.evals)?;
        let label = format!("{} ({})", self.cfg.agent.kind.as_str(), self.task_name());
        draw_learning_curves(
            &self.run.curve(),
            &format!("{} on {}", self.cfg.agent.kind.as_str(), self.task_name()),
            &[(label.as_str(), self.state.evals.as_slice())],
            self.cfg.offline_steps,
        )?;
        Ok(())
    }

    /// How many online updates have fallen due by online step `step`: `utd_ratio` for each env step from
    /// `start_training` on, as the reference.
    fn online_updates_due(&self, step: u64) -> u64 {
        // The config's bounds keep the product far below u64::MAX; saturating, a count past them cannot panic.
        step.saturating_sub(self.cfg.start_training.saturating_sub(1))
            .saturating_mul(self.cfg.utd_ratio as u64)
    }

    fn finish(mut self) -> anyhow::Result<TrainSummary> {
        if self.cfg.offline_steps + self.cfg.online_steps == 0 && self.state.evals.is_empty() {
            self.evaluate("offline")?;
        }
        let stopped_early = !self.is_complete();
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
        let last = |phase: &str| {
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
            offline_success: last("offline"),
            online_success: last("online"),
            updates_per_second: self.state.updates as f64 / self.state.update_seconds.max(1e-9),
            env_steps_per_second: self.state.online_step as f64 / self.state.env_seconds.max(1e-9),
            updates: self.state.updates,
            online_steps: self.state.online_step,
            wall_seconds: self.wall_seconds(),
            evals: self.state.evals.clone(),
            learning_curve: self.run.curve(),
            run_dir: self.run.root().to_path_buf(),
            stopped_early,
        };
        write_bytes_atomically(
            &self.run.summary(),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        Ok(summary)
    }
}

/// The uniformly random action (in [-1, 1)) of online step `step` before `start_training` in a balanced run: a
/// function of the run seed and the step alone, so a resumed run draws the same ones.
fn warmup_action(seed: u64, step: u64, action_dim: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A12_0FF5_EED5_0A11);
    rng.set_stream(step);
    (0..action_dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

/// Seed of training env `i` in the `generation`-th (re)start of a run.
fn env_seed(seed: u64, generation: u64, i: u64) -> u64 {
    seed.wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(generation.wrapping_mul(1_442_695_040_888_963_407))
        .wrapping_add(i)
}

/// Refuses, before the replay buffer is made, a run whose online transitions would not fit in memory: the buffer
/// keeps every one (observation, next observation, action, reward, mask and terminal in float32).
fn check_replay_memory(cfg: &TrainConfig, obs_dim: usize, action_dim: usize) -> anyhow::Result<()> {
    let per_transition = (2 * obs_dim + action_dim + 3) as u64 * 4;
    crate::limits::check_memory(
        cfg.online_steps.checked_mul(per_transition),
        &format!(
            "online_steps = {}: the replay buffer, holding every online transition ({per_transition} bytes each),",
            cfg.online_steps
        ),
    )
}

/// Reads the offline dataset into the replay buffer, checking it is data of the task (a note on a variant's said
/// when the run starts, not when it resumes) and holds a chunk; returns the CRC-32 of the file.
fn load_offline_data(
    path: &Path,
    replay: &mut TransitionStore,
    cfg: &TrainConfig,
    scene: &qamlab_sim::TaskScene,
    spec: &qamlab_sim::EnvSpec,
    resume: bool,
) -> anyhow::Result<u32> {
    let data = crate::dataset::load_dataset(path)?;
    // Another task's data is said first: no horizon would make it fit.
    let note = data.check_fits(path, scene, spec)?;
    data.check_holds_a_chunk(path, cfg.agent.horizon_length)?;
    if let Some(note) = note
        && !resume
    {
        tracing::warn!("{note}");
    }
    if !resume && data.transitions_at_success() == 0 {
        tracing::warn!(
            "dataset {} never reaches success (no transition has mask 0): offline, the critic sees no success to \
             value; online episodes may still find it",
            path.display()
        );
    }
    let rewards: Vec<f32> = data
        .rewards
        .iter()
        .map(|&r| shape_reward(r, cfg.sparse))
        .collect();
    replay
        .extend_from_arrays(
            &data.observations,
            &data.actions,
            &data.next_observations,
            &rewards,
            &data.masks,
            &data.terminals,
        )
        .with_context(|| format!("dataset {}", path.display()))?;
    Ok(data.crc32)
}

/// The transitions an update samples from, as segments no chunk spans: the replay buffer (in a balanced batch, its
/// offline rows then its online ones), then `pending`, each env's episode in progress (empty offline, and with one
/// env, whose transitions go straight into the buffer: an empty segment holds no chunk and changes no draw). So a
/// transition is sampled from as soon as it is taken, as with the reference's single env, yet no chunk joins two
/// envs' transitions.
fn sampled_segments<'s>(
    replay: &'s TransitionStore,
    offline_len: usize,
    balanced: bool,
    pending: &'s [TransitionStore],
) -> Vec<Segment<'s>> {
    let mut segments = if balanced {
        vec![
            Segment::new(replay, 0..offline_len),
            Segment::new(replay, offline_len..replay.len()),
        ]
    } else {
        vec![Segment::all(replay)]
    };
    segments.extend(pending.iter().map(Segment::all));
    segments
}

/// A reward as training sees it: with `sparse` (spec §2.1), -1 unless it is 0.
fn shape_reward(reward: f32, sparse: bool) -> f32 {
    if sparse && reward != 0.0 {
        -1.0
    } else {
        reward
    }
}

/// Appends every transition of `src` to `dst`.
fn append(dst: &mut TransitionStore, src: &TransitionStore) -> anyhow::Result<()> {
    dst.extend_from_arrays(
        &src.observations,
        &src.actions,
        &src.next_observations,
        &src.rewards,
        &src.masks,
        &src.terminals,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qamlab_agent::checkpoint;
    use std::sync::{Arc, Mutex};
    use tch::Tensor;

    /// Records the step of the final weights; asks to stop after `stop_after_logs` logs, if given.
    struct FinalWeights {
        step: Arc<Mutex<Option<u64>>>,
        logs: usize,
        stop_after_logs: Option<usize>,
    }

    impl TrainObserver for FinalWeights {
        fn on_log(&mut self, _step: u64, _row: &serde_json::Value) {
            self.logs += 1;
        }
        fn on_final_weights(&mut self, step: u64, _agent: &Agent) {
            *self.step.lock().unwrap() = Some(step);
        }
        fn should_stop(&self) -> bool {
            self.stop_after_logs.is_some_and(|n| self.logs >= n)
        }
    }

    /// A watcher that asks the run to stop after `logs` logs (never, for `None`).
    fn stop_after(logs: Option<usize>) -> Box<dyn TrainObserver> {
        Box::new(FinalWeights {
            step: Arc::new(Mutex::new(None)),
            logs: 0,
            stop_after_logs: logs,
        })
    }

    /// A tiny online-only run of `online_steps` with `envs` envs.
    fn tiny(online_steps: u64, envs: usize) -> TrainConfig {
        let mut config = TrainConfig {
            offline_steps: 0,
            online_steps,
            envs,
            start_training: 10,
            eval_interval: 20,
            eval_episodes: 1,
            eval_envs: 1,
            checkpoint_interval: 100,
            log_interval: 4,
            device: crate::DeviceChoice::Cpu,
            ..TrainConfig::default()
        };
        config.agent.batch_size = 4;
        config.agent.actor_hidden_dims = vec![8];
        config.agent.value_hidden_dims = vec![8];
        config.agent.num_qs = 2;
        config
    }

    /// Runs a tiny online-only run; returns the final weights' step and the run's latest checkpoint.
    fn run(stop_after_logs: Option<usize>) -> (Option<u64>, String) {
        let dir = tempfile::tempdir().unwrap();
        let step = Arc::new(Mutex::new(None));
        let out = dir.path().join("run");
        train(TrainOptions {
            config: tiny(30, 2),
            out: out.clone(),
            resume: false,
            progress: false,
            observer: Some(Box::new(FinalWeights {
                step: step.clone(),
                logs: 0,
                stop_after_logs,
            })),
        })
        .unwrap();
        let latest = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
        let step = *step.lock().unwrap();
        (step, latest)
    }

    #[test]
    fn a_watcher_gets_the_final_weights_whether_the_run_finishes_or_stops() {
        assert_eq!(run(None), (Some(30), "step-30".into()));
        // Stopped after its second log (online step 8): the weights and the checkpoint of that step.
        assert_eq!(run(Some(2)), (Some(8), "step-8".into()));
    }

    /// The latest checkpoint's tensors of `file`, sorted by name.
    fn checkpoint_tensors(run: &Path, file: &str) -> Vec<(String, Tensor)> {
        let latest = RunDir::new(run).latest_checkpoint().unwrap().unwrap();
        let (mut tensors, _) = checkpoint::read_tensors(&latest.join(file)).unwrap();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        tensors
    }

    /// Trains `config` straight through and, beside it, stopped at its third log, then resumed; checks both end
    /// with the same checkpoint tensors and evaluations. `at_stop` looks at the stopped run's checkpoint.
    fn check_resume_is_exact(config: &TrainConfig, at_stop: impl FnOnce(&Path)) {
        let dir = tempfile::tempdir().unwrap();
        let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));
        let options =
            |out: &Path, resume: bool, observer: Option<Box<dyn TrainObserver>>| TrainOptions {
                config: config.clone(),
                out: out.to_path_buf(),
                resume,
                progress: false,
                observer,
            };
        train(options(&straight, false, None)).unwrap();
        let stopper = FinalWeights {
            step: Arc::new(Mutex::new(None)),
            logs: 0,
            stop_after_logs: Some(3),
        };
        train(options(&stopped, false, Some(Box::new(stopper)))).unwrap();
        at_stop(&stopped);
        train(options(&stopped, true, None)).unwrap();
        for file in ["agent.safetensors", "replay.safetensors"] {
            let (a, b) = (
                checkpoint_tensors(&straight, file),
                checkpoint_tensors(&stopped, file),
            );
            assert_eq!(a.len(), b.len());
            for ((name, x), (other, y)) in a.iter().zip(&b) {
                assert!(name == other && x.equal(y), "{file}: {name} differs");
            }
        }
        let evals = |run: &Path| RunDir::new(run).read_evals().unwrap();
        assert_eq!(evals(&straight), evals(&stopped));
    }

    /// Rows of tensor `name` in `tensors`.
    fn rows(tensors: &[(String, Tensor)], name: &str) -> i64 {
        let (_, t) = tensors.iter().find(|(n, _)| n == name).unwrap();
        t.size()[0]
    }

    #[test]
    fn a_stopped_run_resumes_into_the_run_that_never_stopped() {
        for envs in [1, 2] {
            check_resume_is_exact(&tiny(40, envs), |stopped| {
                // Stopped at its third log (online step 12), with every env inside an episode and updates under
                // way. One env's transitions are in the buffer at once (as the reference's); several envs stage
                // theirs.
                let replay = checkpoint_tensors(stopped, "replay.safetensors");
                let expected = if envs == 1 { (12, 0) } else { (0, 12) };
                assert_eq!(
                    (
                        rows(&replay, "online/rewards"),
                        rows(&replay, "pending/rewards")
                    ),
                    expected,
                    "{envs} envs"
                );
            });
        }
    }

    /// A tiny balanced run of `envs` envs on a dataset of two short episodes (kept in the returned directory).
    fn balanced(envs: usize) -> (tempfile::TempDir, TrainConfig) {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dir.path().join("data.npz");
        crate::collect::collect(&crate::collect::CollectOptions {
            episodes: 2,
            envs: 2,
            episode_length: Some(20),
            out: dataset.clone(),
            ..Default::default()
        })
        .unwrap();
        let mut config = tiny(40, envs);
        config.dataset = Some(dataset);
        config.balanced_sampling = true;
        config.validate().unwrap();
        (dir, config)
    }

    #[test]
    fn a_balanced_run_acts_at_random_until_start_training_and_resumes_exactly() {
        let (_dir, config) = balanced(1);
        check_resume_is_exact(&config, |stopped| {
            let replay = checkpoint_tensors(stopped, "replay.safetensors");
            assert_eq!(rows(&replay, "online/rewards"), 12);
            let (_, actions) = replay.iter().find(|(n, _)| n == "online/actions").unwrap();
            let actions = Vec::<f32>::try_from(actions.flatten(0, -1)).unwrap();
            // Online steps 1..=9 (before start_training = 10) took the warm-up's random actions, one at a time;
            // step 10 took the first of a policy chunk.
            for (i, taken) in actions.chunks(5).enumerate() {
                let step = i as u64 + 1;
                let random = warmup_action(config.seed, step, 5);
                assert_eq!(taken == random.as_slice(), step < 10, "online step {step}");
            }
        });
    }

    #[test]
    fn a_balanced_run_of_several_envs_samples_their_episodes_in_progress_and_resumes_exactly() {
        let (_dir, config) = balanced(2);
        check_resume_is_exact(&config, |stopped| {
            // Stopped at online step 12 (the third log): no episode has ended (they last 200 steps), so the
            // online half of each batch came from the two episodes in progress, 6 transitions each, and the
            // updates due at steps 10..=12 were made.
            let replay = checkpoint_tensors(stopped, "replay.safetensors");
            assert_eq!(rows(&replay, "online/rewards"), 0);
            assert_eq!(rows(&replay, "pending/rewards"), 12);
            let state = RunDir::new(stopped)
                .latest_checkpoint()
                .unwrap()
                .unwrap()
                .join("state.json");
            let state: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
            assert_eq!(
                (state["online_step"].as_u64(), state["updates"].as_u64()),
                (Some(12), Some(3))
            );
        });
    }

    /// A tiny run in `out`, fresh or resumed, stopped after `stop_after_logs` metrics rows if given.
    fn tiny_run(
        out: &std::path::Path,
        resume: bool,
        stop_after_logs: Option<usize>,
    ) -> TrainOptions {
        TrainOptions {
            config: tiny(40, 1),
            out: out.to_path_buf(),
            resume,
            progress: false,
            observer: Some(stop_after(stop_after_logs)),
        }
    }

    #[test]
    fn a_checkpoint_mixed_from_two_or_with_damaged_values_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let options = |resume, stop_after_logs| tiny_run(&out, resume, stop_after_logs);
        train(options(false, Some(3))).unwrap();
        let latest = RunDir::new(&out).latest_checkpoint().unwrap().unwrap();
        let resume_error = || format!("{:#}", train(options(true, None)).unwrap_err());

        let state_path = latest.join("state.json");
        let state = std::fs::read_to_string(&state_path).unwrap();
        let mut other: serde_json::Value = serde_json::from_str(&state).unwrap();
        other["updates"] = json!(other["updates"].as_u64().unwrap() + 1);
        std::fs::write(&state_path, other.to_string()).unwrap();
        let err = resume_error();
        assert!(err.contains("different checkpoints"), "{err}");
        let mut other: serde_json::Value = serde_json::from_str(&state).unwrap();
        other["online_step"] = json!(8);
        std::fs::write(&state_path, other.to_string()).unwrap();
        let err = resume_error();
        assert!(err.contains("not its folder's"), "{err}");
        std::fs::write(&state_path, &state).unwrap();

        let config = RunDir::new(&out).config();
        let toml = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, toml.replace("seed = 0", "seed = 5")).unwrap();
        let err = resume_error();
        assert!(
            err.contains("seed = 5 (was 0) since the run started"),
            "{err}"
        );
        std::fs::write(&config, &toml).unwrap();

        // The files of another run's checkpoint of the same step, one at a time.
        let other_out = dir.path().join("other");
        let mut other_config = tiny(40, 1);
        other_config.seed = 1;
        train(TrainOptions {
            config: other_config,
            out: other_out.clone(),
            ..options(false, Some(3))
        })
        .unwrap();
        let other = RunDir::new(&other_out)
            .latest_checkpoint()
            .unwrap()
            .unwrap();
        assert_eq!(other.file_name(), latest.file_name());
        for (file, why) in [
            ("agent.safetensors", "its agent was trained with seed 1"),
            ("replay.safetensors", "written by a run with seed 1"),
        ] {
            let ours = std::fs::read(latest.join(file)).unwrap();
            std::fs::copy(other.join(file), latest.join(file)).unwrap();
            let err = resume_error();
            assert!(err.contains(why) && err.contains("another run"), "{err}");
            std::fs::write(latest.join(file), ours).unwrap();
        }

        let replay_path = latest.join("replay.safetensors");
        let (tensors, meta) = checkpoint::read_tensors(&replay_path).unwrap();
        // One tensor of the checkpoint replaced by `value` everywhere, the rest as they were.
        let damage = |name: &str, value: f64| {
            let damaged: Vec<(String, Tensor)> = tensors
                .iter()
                .map(|(n, t)| {
                    let t = if n == name {
                        t.full_like(value)
                    } else {
                        t.shallow_clone()
                    };
                    (n.clone(), t)
                })
                .collect();
            checkpoint::write_tensors(&replay_path, &damaged, meta.clone()).unwrap();
        };
        damage("online/masks", 2.0);
        let err = resume_error();
        assert!(
            err.contains("tensor online/masks holds 2: expected 0 or 1"),
            "{err}"
        );
        damage("online/actions", 5.0);
        let err = resume_error();
        assert!(
            err.contains("tensor online/actions holds 5: expected actions in [-1, 1]"),
            "{err}"
        );
    }

    #[test]
    fn a_run_whose_latest_pointer_was_lost_resumes_from_its_newest_complete_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let options = |resume, stop_after_logs| tiny_run(&out, resume, stop_after_logs);
        train(options(false, Some(3))).unwrap();
        let pointer = out.join("checkpoints/latest");
        let stopped_at = std::fs::read_to_string(&pointer).unwrap();
        std::fs::remove_file(&pointer).unwrap();
        // A checkpoint cut short (no state.json) is no checkpoint: the message says what is there.
        let state = out.join("checkpoints").join(&stopped_at).join("state.json");
        let kept = std::fs::read(&state).unwrap();
        std::fs::remove_file(&state).unwrap();
        let err = format!("{:#}", train(options(true, None)).unwrap_err());
        assert!(
            err.contains(&format!(
                "has no complete checkpoint to resume from: checkpoints/latest is missing, and {stopped_at} lacks \
                 some of agent.safetensors, replay.safetensors and state.json"
            )),
            "{err}"
        );
        // Whole, it is the newest complete checkpoint, and the run goes on from it.
        std::fs::write(&state, kept).unwrap();
        let summary = train(options(true, None)).unwrap();
        assert!(!summary.stopped_early);
        assert_eq!(std::fs::read_to_string(&pointer).unwrap(), "step-40");
    }

    #[test]
    fn a_replay_buffer_past_the_machine_is_refused_before_the_run_starts() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut config = tiny(crate::limits::MAX_STEPS, 1);
        config.validate().unwrap();
        config.eval_interval = 1000;
        let err = format!(
            "{:#}",
            train(TrainOptions {
                config,
                out: out.clone(),
                resume: false,
                progress: false,
                observer: None,
            })
            .unwrap_err()
        );
        assert!(
            err.starts_with(
                "online_steps = 1000000000000: the replay buffer, holding every online transition (256 bytes \
                 each), would take 232.8 TiB of memory, more than this machine's"
            ),
            "{err}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn a_resume_stopped_before_its_first_step_leaves_its_checkpoint_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let options = |resume: bool, stop_after_logs: usize| TrainOptions {
            config: tiny(40, 2),
            out: out.clone(),
            resume,
            progress: false,
            observer: Some(stop_after(Some(stop_after_logs))),
        };
        // Stopped online (its third log), so the checkpoint records the envs' episodes in progress.
        let summary = train(options(false, 3)).unwrap();
        assert!(summary.stopped_early);
        let latest = RunDir::new(&out).latest_checkpoint().unwrap().unwrap();
        let files = ["agent.safetensors", "replay.safetensors", "state.json"];
        let before: Vec<Vec<u8>> = files
            .iter()
            .map(|f| std::fs::read(latest.join(f)).unwrap())
            .collect();
        // Asked to stop at once: no step is taken, and the checkpoint it resumed from stays as it was.
        let summary = train(options(true, 0)).unwrap();
        assert!(summary.stopped_early);
        let after: Vec<Vec<u8>> = files
            .iter()
            .map(|f| std::fs::read(latest.join(f)).unwrap())
            .collect();
        assert!(before == after, "the checkpoint was rewritten");
        assert!(!train(options(true, 1000)).unwrap().stopped_early);
    }

    #[test]
    fn a_finished_run_resumed_from_a_copy_reports_where_it_is_now() {
        let dir = tempfile::tempdir().unwrap();
        let (out, copy) = (dir.path().join("run"), dir.path().join("copy"));
        let options = |out: &Path, resume: bool| TrainOptions {
            config: tiny(20, 2),
            out: out.to_path_buf(),
            resume,
            progress: false,
            observer: None,
        };
        train(options(&out, false)).unwrap();
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(&out)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(copied.success());
        let summary = train(options(&copy, true)).unwrap();
        assert_eq!(summary.run_dir, copy);
        assert_eq!(summary.learning_curve, copy.join("learning_curve.png"));
    }

    #[test]
    fn updates_due_while_no_chunk_could_be_sampled_are_made_up() {
        // Episodes of 12 steps, 3 envs, online-only, chunks of 5: nothing can be sampled until each env's episode
        // in progress holds 5 transitions (online step 15), yet the run makes the reference's count, one update
        // per step from start_training on; and it need not wait for the first episodes to end (online step 36).
        let dir = tempfile::tempdir().unwrap();
        let scene = dir.path().join("short.scn.ron");
        let text = std::fs::read_to_string(
            // At run time: a test binary from a shared target directory may come from another checkout.
            Path::new(
                &std::env::var_os("CARGO_MANIFEST_DIR")
                    .expect("cargo sets CARGO_MANIFEST_DIR for tests"),
            )
            .join("../assets/tasks/cube-single.scn.ron"),
        )
        .unwrap();
        std::fs::write(
            &scene,
            text.replacen("episode_length: 200", "episode_length: 12", 1),
        )
        .unwrap();
        let mut config = tiny(60, 3);
        config.task = scene.display().to_string();
        config.log_interval = 3;
        let summary = train(TrainOptions {
            config: config.clone(),
            out: dir.path().join("run"),
            resume: false,
            progress: false,
            observer: None,
        })
        .unwrap();
        assert_eq!(config.agent.horizon_length, 5);
        assert_eq!(summary.updates, 60 - config.start_training + 1);
        let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
        let updates_at = |step: u64| {
            metrics
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .find(|row| row["step"] == step && row["phase"] == "online")
                .unwrap_or_else(|| panic!("no online row at step {step}:\n{metrics}"))["updates"]
                .as_u64()
                .unwrap()
        };
        // Logged at every batched step: none at 12 (4 transitions an env), at 15 the 6 due (steps 10..=15).
        assert_eq!((updates_at(12), updates_at(15)), (0, 6));
    }
}
