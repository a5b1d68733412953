//! Offline -> online training (spec §7): gradient steps on the dataset, then fine-tuning while
//! `envs` envs step together; evaluation, metrics, learning curve, checkpoints and resume.

use std::path::PathBuf;

use anyhow::Context;
use qamlab_agent::Agent;
use serde::{Deserialize, Serialize};
use tch::Device;

mod checkpoints;
mod episodes;
mod offline;
mod online;
mod q_range;
mod replay;
mod replay_file;
mod reporting;
mod trainer;
mod updates;

use trainer::Trainer;

use crate::config::TrainConfig;
use crate::evaluate::EvalPoint;
use crate::phase::Phase;
use crate::run_dir::RunDir;

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
    /// libtorch's intra-op threads on the CPU (config `cpu_threads`): sums over many values depend on the count,
    /// so a seed's run takes another path under another. Absent for a GPU run, and in summaries of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_threads: Option<usize>,
    /// The run's seed (config `seed`). Absent in summaries of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The dataset the run trained on, its real path as `config.toml` records it (null for a run without
    /// one). Absent in summaries of older runs.
    #[serde(default)]
    pub dataset: Option<PathBuf>,
    /// Episodes of each of the run's evaluations (config `eval_episodes`; each evaluation's own count is in
    /// `evals`, as a resume may have changed it). Absent in summaries of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_episodes: Option<usize>,
    /// Envs the run's evaluations spread their episodes over (config `eval_envs`, at most `eval_episodes`): with
    /// `eval_episodes` and the run's evaluation seed, what `qamlab eval` needs to repeat them. Absent in summaries
    /// of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_envs: Option<usize>,
    /// Success rate at the last offline evaluation, the offline-trained agent's (None without an offline phase).
    pub offline_success: Option<f64>,
    /// Success rate at the last online evaluation, the finished run's (None without an online phase).
    pub online_success: Option<f64>,
    /// Gradient updates per second (time in updates only); null for a run that made none.
    pub updates_per_second: Option<f64>,
    /// Environment steps per second online (time in env steps only); null for a run without online steps (a 0
    /// would be averaged in with other runs' rates).
    pub env_steps_per_second: Option<f64>,
    /// Total gradient updates.
    pub updates: u64,
    /// The offline phase's share of `updates` (one per offline step; the rest came online, `utd_ratio` a step
    /// from step `start_training` on). Absent in summaries of older runs.
    #[serde(default)]
    pub offline_updates: u64,
    /// Online environment steps.
    pub online_steps: u64,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// Every evaluation.
    pub evals: Vec<EvalPoint>,
    /// The online evaluation of the highest success rate, the latest of equals (RL curves are noisy: beside the
    /// last, it shows what the run reached; where the last is as good, it is the last); None without an online
    /// evaluation.
    #[serde(default)]
    pub best_online: Option<EvalPoint>,
    /// The learning-curve PNG.
    pub learning_curve: PathBuf,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Whether the run stopped on request before its last step, or before its last evaluation (`--resume`
    /// continues it).
    #[serde(default)]
    pub stopped_early: bool,
    /// An evaluation of the finished run's agent on fresh episodes, added afterwards (`qamlab demo` adds one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_evaluation: Option<FinalEvaluation>,
}

/// An evaluation of a finished run's agent over fresh episodes, with the 95 % interval of its success rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinalEvaluation {
    /// Fraction of the episodes ending in success.
    pub success_rate: f64,
    /// The 95 % (Wilson) interval of `success_rate`: low, high.
    pub interval: (f64, f64),
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Episodes run.
    pub episodes: usize,
    /// Envs the episodes were spread over, each starting from states of its own (`qamlab eval --envs`; another
    /// count gives other episodes). Absent in summaries of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<usize>,
    /// Seed of their initial states (`qamlab eval --seed`).
    pub seed: u64,
}

/// Writes `summary` to its run's `summary.json`, atomically.
pub fn write_summary(summary: &TrainSummary) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(summary)?;
    text.push('\n');
    crate::files::write_bytes_atomically(&RunDir::new(&summary.run_dir).summary(), text.as_bytes())
}

/// The online evaluation of the highest success rate in `evals`, the latest of equals (so that the summary's
/// printed line, which names the best where the last is worse, and `best_online` agree).
pub fn best_online(evals: &[EvalPoint]) -> Option<EvalPoint> {
    evals
        .iter()
        .filter(|e| e.phase == Phase::Online)
        .max_by(|a, b| {
            a.success_rate
                .total_cmp(&b.success_rate)
                .then(a.step.cmp(&b.step))
        })
        .cloned()
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
    /// Whether the run should stop now; once it says so, it must keep saying so (the run asks again on its way
    /// out, and checkpoints where it still does).
    fn should_stop(&self) -> bool {
        false
    }
}

/// Options of one call to [`train()`].
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

impl TrainOptions {
    /// A new run of `config` into the run directory `out`: not resumed, without progress bars, unwatched.
    pub fn new(config: TrainConfig, out: impl Into<PathBuf>) -> Self {
        Self {
            config,
            out: out.into(),
            resume: false,
            progress: false,
            observer: None,
        }
    }

    /// Continues the run in `out` from its latest checkpoint where `resume` is set (its own `config.toml` is
    /// used, not [`TrainOptions::config`]).
    pub fn with_resume(self, resume: bool) -> Self {
        Self { resume, ..self }
    }

    /// Shows progress bars where `progress` is set.
    pub fn with_progress(self, progress: bool) -> Self {
        Self { progress, ..self }
    }

    /// Has `observer` watch the run.
    pub fn with_observer(self, observer: Box<dyn TrainObserver>) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }
}

/// Trains an agent offline then online as configured, writing everything into the run directory.
pub fn train(opts: TrainOptions) -> anyhow::Result<TrainSummary> {
    let run = RunDir::new(&opts.out);
    let mut cfg = if opts.resume {
        run.read_config()
            .with_context(|| format!("resuming {}", run.root().display()))?
    } else {
        run.check_free_for_new_run()?;
        new_run_config(opts.config)?
    };
    if opts.resume {
        // Flags named in the error are not --resume's: the file holding the value at fault is.
        cfg.validate().with_context(|| {
            format!(
                "resuming {}: {} (edit it there)",
                run.root().display(),
                run.config().display()
            )
        })?;
    } else {
        cfg.validate()?;
    }
    // Loaded before the warnings below: an unknown task or a broken scene is the one thing to say then.
    let task =
        qamlab_tasks::load_task(&cfg.task).with_context(|| format!("task = {:?}", cfg.task))?;
    // Said once, when the run starts (a resumed run was told), and only once it can start: a fatal error
    // below is then the one thing said.
    let mut warnings = if opts.resume {
        Vec::new()
    } else {
        config_warnings(&cfg, &task)
    };
    // A run that started on a GPU, or before qamlab recorded the count, has none: its first CPU leg records it.
    let threads_unrecorded = opts.resume && cfg.cpu_threads.is_none();
    let (device, device_warnings) = configure_device(&mut cfg, &run, opts.resume)?;
    warnings.extend(device_warnings);
    if !opts.resume && !task.builtin {
        // Where the scene came from, for the record: the run loads its own copy. Its real path (the file was just
        // read), so that `a/../x.scn.ron` is recorded as `x.scn.ron` is.
        cfg.task = std::fs::canonicalize(&cfg.task)
            .or_else(|_| std::path::absolute(&cfg.task))?
            .display()
            .to_string();
    }

    let (mut trainer, data_warnings) =
        Trainer::start(&cfg, &run, &task, device, opts.resume, opts.progress)?;
    for warning in warnings.into_iter().chain(data_warnings) {
        tracing::warn!("{warning}");
    }
    if opts.resume && trainer.is_complete() {
        // The summary names the learning curve: a run finished with one has it again if it was deleted since.
        trainer.redraw_missing_curve();
        // Plain lines, not tracing's: its default filter shows only warnings, each as `warning: …`, and these are
        // notes heading what the command prints next.
        if let Some(summary) = finished_run_summary(&run)? {
            crate::stderr_line!(
                "{} finished already: nothing to resume; its summary:",
                run.root().display()
            );
            return Ok(summary);
        }
        // Its summary was lost: finishing again writes it (no step is taken).
        crate::stderr_line!(
            "{} finished already, but its summary.json is missing or unreadable: writing it again",
            run.root().display()
        );
    }
    if let Some(threads) = cfg
        .cpu_threads
        .filter(|_| threads_unrecorded && device == Device::Cpu && !trainer.is_complete())
    {
        // With the run's lock held, and before its first step on these threads.
        run.record_cpu_threads(threads)?;
        // A plain line, as the notes above: the user's file changed.
        crate::stderr_line!(
            "{} set no cpu_threads (the run started on a GPU, or with a qamlab that did not record it): recorded \
             cpu_threads = {threads}, the count this CPU leg takes, which later resumes keep",
            run.config().display()
        );
    }
    if opts.progress {
        print_start_line(&cfg, &trainer, device, &run);
    }
    trainer.observer = opts.observer;
    trainer.run()?;
    let step = trainer.total_step();
    if let Some(observer) = trainer.observer.as_mut() {
        observer.on_final_weights(step, &trainer.agent);
    }
    trainer.finish()
}

/// The configuration a new run records, from `cfg` as given: its scene a regular file, its dataset's path
/// absolute and canonical (links resolved).
fn new_run_config(mut cfg: TrainConfig) -> anyhow::Result<TrainConfig> {
    // The run copies its scene file and records its path: a pipe (`--task <(...)`) would be read empty the
    // second time, and its path names nothing later.
    let scene = std::path::Path::new(&cfg.task);
    let builtin = qamlab_tasks::builtin_names().contains(&cfg.task.as_str());
    if !builtin && scene.exists() && !scene.is_file() {
        anyhow::bail!(
            "task = {:?} is not a regular file (a pipe?): a run keeps a copy of its task's scene file and \
             records its path, so give the file itself",
            cfg.task
        );
    }
    // The run's config.toml must still find the dataset when resumed from another directory: its real path, as
    // the scene's, which names the file whose bytes the run trains on (a resume checks their CRC-32) however the
    // user reached it. `..` is only removed soundly with the links resolved (`a/link/../d` need not be `a/d`), and
    // a link re-pointed later (`latest.npz`) would give the resume another file. Not there, it is only made
    // absolute, and loading it names the path.
    if let Some(path) = &mut cfg.dataset {
        *path = std::fs::canonicalize(&*path)
            .or_else(|_| std::path::absolute(&*path))
            .with_context(|| format!("dataset {}", path.display()))?;
    }
    Ok(cfg)
}

/// What to warn of when a run starts: its scene's oddities and settings that train differently than they seem to.
fn config_warnings(cfg: &TrainConfig, task: &qamlab_tasks::Task) -> Vec<String> {
    let mut warnings = task.warnings();
    if cfg.agent.tau == 0.0 && cfg.agent.kind.has_critic() {
        warnings.push(format!(
            "tau = 0: the target networks never move from their first weights, so the critic learns against a \
             fixed random target (the reference's tau is {})",
            qamlab_agent::AgentConfig::default().tau
        ));
    }
    // The steps the run takes: the envs step together, so the count asked for is rounded up to a multiple of theirs.
    let online = total_steps(cfg) - cfg.offline_steps;
    if online > 0 && online <= cfg.start_training {
        let rounded = if online == cfg.online_steps {
            String::new()
        } else {
            format!(" ({} rounded up for {} envs)", cfg.online_steps, cfg.envs)
        };
        warnings.push(format!(
            "online_steps = {online}{rounded} is not above start_training = {}: the online phase only collects \
             (updates start at online step start_training), with {} update",
            cfg.start_training,
            if online == cfg.start_training {
                "one"
            } else {
                "no"
            }
        ));
    }
    if let Some(dataset) = cfg.dataset.as_ref().filter(|d| d.exists() && !d.is_file()) {
        warnings.push(format!(
            "dataset {} is no regular file (a pipe?): the run reads it now, but a resumed run cannot read it again \
             (then give the file as `dataset` in the run's config.toml)",
            dataset.display()
        ));
    }
    if !cfg.agent.kind.has_critic() && cfg.dataset.is_none() && cfg.online_steps > 0 {
        warnings.push(
            "agent bc imitates its data, and this run has no dataset: online it imitates its own actions (random \
             ones at first), which teaches it nothing about the task; give a --dataset, or an agent with a critic"
                .to_string(),
        );
    }
    let episode_length = task.scene.settings.episode_length as usize;
    if cfg.agent.horizon_length > episode_length {
        warnings.push(format!(
            "horizon_length = {} is longer than {}'s episodes ({episode_length} control steps): every action chunk \
             runs past its episode's end",
            cfg.agent.horizon_length,
            task.name
        ));
    }
    warnings
}

/// Resolves the run's device and sets libtorch up for it: the CPU's threads (which a new CPU run records in `cfg`),
/// or CUDA's TF32 matmuls. With it, the settings that do not suit it, to warn of whether the run starts or resumes.
fn configure_device(
    cfg: &mut TrainConfig,
    run: &RunDir,
    resume: bool,
) -> anyhow::Result<(Device, Vec<String>)> {
    let mut warnings = Vec::new();
    let device = cfg.device.resolve().with_context(|| {
        if resume {
            // --resume takes no flags: the run's own config says where it trains.
            format!(
                "resuming {}: its config.toml says device = \"cuda\"; to continue it on this machine, set device \
                 = \"cpu\" or \"auto\" in that file (the run goes on from its checkpoint; the CPU's sums differ from \
                 a GPU's in the last bits)",
                run.root().display(),
            )
        } else {
            "choosing the device".to_string()
        }
    })?;
    if device == Device::Cpu {
        // Unset, half the cores: libtorch's OpenMP threads spin, and more of them than the cores the envs' physics
        // leaves free make updates many times slower. Sums over many values depend on the count, so a new run
        // records it and a resumed one keeps it (one that recorded none, started on a GPU or before the key
        // existed, records the count it takes now: see `train`).
        let threads = crate::config::set_cpu_threads(cfg.cpu_threads);
        cfg.cpu_threads = Some(threads);
        warnings.extend(cpu_threads_warning(
            threads,
            crate::config::available_cores(),
            run,
            resume,
        ));
        let widest = cfg
            .agent
            .actor_hidden_dims
            .iter()
            .chain(&cfg.agent.value_hidden_dims)
            .max();
        if widest.is_some_and(|&w| w >= 512) {
            warnings.push(format!(
                "networks {} wide train slowly on a CPU (the paper's 4x512, K 10: about 1-3 updates/s on two cores); \
                 `--config cpu-small` has the demo's CPU sizes",
                widest.unwrap_or(&0),
            ));
        }
        if cfg.tf32 {
            warnings.push(
                "tf32 = true applies to CUDA matmuls only; this run is on the CPU".to_string(),
            );
        }
    } else {
        // Set either way: the setting is process-wide and an earlier run may have changed it.
        qamlab_agent::precision::set_tf32_matmuls(cfg.tf32)
            .with_context(|| format!("tf32 = {}", cfg.tf32))?;
    }
    Ok((device, warnings))
}

/// The warning for a CPU run of `threads` libtorch threads on a machine that gives the process fewer `cores`: they
/// spin, so where they outnumber the free cores updates run many times slower. A resumed run keeps its recorded
/// count (its sums depend on it), and is told how to change it.
fn cpu_threads_warning(threads: usize, cores: usize, run: &RunDir, resume: bool) -> Option<String> {
    if threads <= cores {
        return None;
    }
    let slow = "libtorch's threads spin, so where they outnumber the free cores updates run many times slower \
                (about 40x measured)";
    let cores = match cores {
        1 => "1 core".to_string(),
        n => format!("{n} cores"),
    };
    Some(if resume {
        format!(
            "cpu_threads = {threads}, recorded in {}, is more than the {cores} this machine gives the process: the \
             run keeps {threads} threads so that its sums stay the same, but {slow}; to change it, edit cpu_threads \
             in that file (the run then continues on another path, its sums rounding otherwise)",
            run.config().display()
        )
    } else {
        format!(
            "cpu_threads = {threads} is more than the {cores} this machine gives the process: {slow}"
        )
    })
}

/// The summary a finished run recorded, left as it is (resuming a finished run changes nothing) but for where the
/// run is now: a run directory may have been moved or copied since it finished. `None` where none is readable.
fn finished_run_summary(run: &RunDir) -> anyhow::Result<Option<TrainSummary>> {
    // A summary is a few KB: a pipe or a device in its place is read no further than a megabyte.
    let recorded = crate::files::read_stored_text(&run.summary(), "the run's summary", 1 << 20)
        .ok()
        .and_then(|text| serde_json::from_str::<TrainSummary>(&text).ok());
    let Some(mut summary) = recorded else {
        return Ok(None);
    };
    summary.run_dir = std::path::absolute(run.root())?;
    summary.learning_curve = std::path::absolute(run.curve())?;
    Ok(Some(summary))
}

/// The step a run of `cfg` ends at (offline and online steps): the online phase ends at the first whole step of
/// all its envs past `online_steps`.
pub fn total_steps(cfg: &TrainConfig) -> u64 {
    let envs = cfg.envs.max(1) as u64;
    cfg.offline_steps + cfg.online_steps.div_ceil(envs) * envs
}

/// Prints the run's first line, which says what runs where: a log (CI's) otherwise starts with an evaluation.
fn print_start_line(cfg: &TrainConfig, trainer: &Trainer, device: Device, run: &RunDir) {
    let total = total_steps(cfg);
    let (verb, from) = match trainer.total_step() {
        0 => ("training", String::new()),
        step => ("resuming", format!(" from step {step} of {total}")),
    };
    // On the CPU, the threads too: sums over many values depend on their count.
    let threads = match device {
        Device::Cpu => format!(" (cpu_threads {})", tch::get_num_threads()),
        _ => String::new(),
    };
    crate::stderr_line!(
        "{verb} {} on {} ({} offline + {}) on {}{threads}{from}, in {}",
        cfg.agent.kind.as_str(),
        trainer.task_name(),
        cfg.offline_steps,
        online_steps_text(cfg),
        crate::config::device_name(device),
        run.root().display()
    );
}

/// The online steps the run takes, as its first line says them: the envs step together, so the count asked for is
/// rounded up to a multiple of theirs, which is said where it was.
fn online_steps_text(cfg: &TrainConfig) -> String {
    let online = total_steps(cfg) - cfg.offline_steps;
    if online == cfg.online_steps {
        format!("{online} online steps")
    } else {
        format!(
            "{online} online steps: {} rounded up for {} envs",
            cfg.online_steps, cfg.envs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::online::warmup_action;
    use super::*;
    use qamlab_agent::checkpoint;
    use serde_json::json;
    use std::path::Path;
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
    pub(super) fn tiny(online_steps: u64, envs: usize) -> TrainConfig {
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

    /// `state` (a checkpoint's state.json) as JSON text as training writes it, but without its checksum (as
    /// older versions wrote it).
    pub(super) fn pretty(state: &serde_json::Value) -> String {
        let mut state = state.clone();
        if let Some(object) = state.as_object_mut() {
            object.remove(crate::run_dir::STATE_CRC_KEY);
        }
        serde_json::to_string_pretty(&state).unwrap()
    }

    /// `state` (edited) sealed again with the checksum of its text, as an edit made on purpose would be.
    pub(super) fn resealed(state: &serde_json::Value) -> String {
        crate::run_dir::seal_state(&pretty(state)).unwrap()
    }

    /// Runs a tiny online-only run; returns the final weights' step and the run's latest checkpoint.
    fn run(stop_after_logs: Option<usize>) -> (Option<u64>, String) {
        let dir = tempfile::tempdir().unwrap();
        let step = Arc::new(Mutex::new(None));
        let out = dir.path().join("run");
        train(
            TrainOptions::new(tiny(30, 2), &out).with_observer(Box::new(FinalWeights {
                step: step.clone(),
                logs: 0,
                stop_after_logs,
            })),
        )
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

    /// Checks two runs end with the same checkpoint tensors (agent and replay buffer) and evaluations.
    fn assert_same_runs(a: &Path, b: &Path) {
        for file in ["agent.safetensors", "replay.safetensors"] {
            let (x, y) = (checkpoint_tensors(a, file), checkpoint_tensors(b, file));
            assert_eq!(x.len(), y.len());
            for ((name, s), (other, t)) in x.iter().zip(&y) {
                assert!(name == other && s.equal(t), "{file}: {name} differs");
            }
        }
        let evals = |run: &Path| RunDir::new(run).read_evals().unwrap();
        assert_eq!(evals(a), evals(b));
    }

    /// Trains `config` straight through and, beside it, stopped at its third log, then resumed; checks both end
    /// with the same checkpoint tensors and evaluations. `at_stop` looks at the stopped run's checkpoint.
    fn check_resume_is_exact(config: &TrainConfig, at_stop: impl FnOnce(&Path)) {
        check_resume_is_exact_after(config, stop_after(Some(3)), at_stop);
    }

    /// [`check_resume_is_exact`], stopped when `stopper` asks.
    fn check_resume_is_exact_after(
        config: &TrainConfig,
        stopper: Box<dyn TrainObserver>,
        at_stop: impl FnOnce(&Path),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));
        let options =
            |out: &Path, resume: bool| TrainOptions::new(config.clone(), out).with_resume(resume);
        train(options(&straight, false)).unwrap();
        train(options(&stopped, false).with_observer(stopper)).unwrap();
        at_stop(&stopped);
        train(options(&stopped, true)).unwrap();
        assert_same_runs(&straight, &stopped);
        // The final checkpoint records them all too (resuming once more finds the run finished), and where the
        // acting draws stand: acting with other draws than the run that never stopped would show there.
        let recorded = |run: &Path| {
            let latest = RunDir::new(run).latest_checkpoint().unwrap().unwrap();
            let state = std::fs::read_to_string(latest.join("state.json")).unwrap();
            let state: serde_json::Value = serde_json::from_str(&state).unwrap();
            (state["evals"].clone(), state["acting_position"].clone())
        };
        let (evals, position) = recorded(&stopped);
        assert!(position.as_u64().is_some_and(|p| p > 0), "{position}");
        assert_eq!(recorded(&straight), (evals, position.clone()));
        // Loaded (to resume, evaluate or watch), the agent acts from there.
        let (_, agent) = RunDir::new(&stopped)
            .load_latest_agent(config, (28, 5), tch::Device::Cpu)
            .unwrap();
        assert_eq!(position.as_u64(), Some(agent.acting_position()));
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

    /// The steps of the evaluations `run` has recorded.
    fn eval_steps(run: &Path) -> Vec<u64> {
        let evals = RunDir::new(run).read_evals().unwrap_or_default();
        evals.iter().map(|e| e.step).collect()
    }

    /// Asks the run to stop once `checks` more questions have been asked after its `logs`-th log.
    struct StopLater {
        logs: usize,
        checks: usize,
        asked: std::sync::atomic::AtomicUsize,
    }

    impl TrainObserver for StopLater {
        fn on_log(&mut self, _step: u64, _row: &serde_json::Value) {
            self.logs = self.logs.saturating_sub(1);
        }
        fn should_stop(&self) -> bool {
            self.logs == 0
                && self
                    .asked
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    >= self.checks
        }
    }

    #[test]
    fn a_run_stopped_during_an_online_evaluation_makes_it_when_resumed() {
        // The fifth log is at online step 20, just before the evaluation due there, which asks before each of its
        // steps: stopped at its 12th, after the agent has chosen actions, the run gives the evaluation up (rather
        // than finishing its 200-step episode first), checkpoints the step, and owes the evaluation.
        let stopper = StopLater {
            logs: 5,
            checks: 12,
            asked: 0.into(),
        };
        check_resume_is_exact_after(&tiny(40, 1), Box::new(stopper), |stopped| {
            let latest = RunDir::new(stopped).latest_checkpoint().unwrap().unwrap();
            assert!(latest.ends_with("step-20"), "{}", latest.display());
            assert_eq!(eval_steps(stopped), Vec::<u64>::new());
        });
    }

    #[test]
    fn a_run_stopped_during_its_final_evaluation_is_not_finished_and_makes_it_when_resumed() {
        // The tenth log is at online step 40, the last, just before the final evaluation.
        let stopper = StopLater {
            logs: 10,
            checks: 12,
            asked: 0.into(),
        };
        check_resume_is_exact_after(&tiny(40, 1), Box::new(stopper), |stopped| {
            assert_eq!(eval_steps(stopped), [20]);
            let summary = std::fs::read_to_string(RunDir::new(stopped).summary()).unwrap();
            let summary: TrainSummary = serde_json::from_str(&summary).unwrap();
            assert!(summary.stopped_early, "its final evaluation is owed");
        });
    }

    #[test]
    fn a_run_stopped_during_its_last_offline_evaluation_makes_it_when_resumed() {
        let (_dir, mut config) = balanced(1);
        config.offline_steps = 20;
        // The fifth log is at offline step 20, the last, just before its evaluation: stopped 12 steps into it.
        let stopper = StopLater {
            logs: 5,
            checks: 12,
            asked: 0.into(),
        };
        check_resume_is_exact_after(&config, Box::new(stopper), |stopped| {
            let latest = RunDir::new(stopped).latest_checkpoint().unwrap().unwrap();
            assert!(latest.ends_with("step-20"), "{}", latest.display());
            assert_eq!(eval_steps(stopped), Vec::<u64>::new());
        });
    }

    #[test]
    fn a_run_stopped_amid_a_steps_updates_checkpoints_at_once_and_resumes_exactly() {
        // Two envs and utd_ratio 4: each step owes 8 updates, which a stop does not wait for. After the fourth log
        // (step 16) and the ninth (step 36), the questions are: the loop's (0), step 18's or 38's updates (1-8), the
        // loop's (9), then step 20's or 40's (10-17): stopped at the 12th, two updates into the step that evaluates
        // (20), or into the last one (40).
        let mut config = tiny(40, 2);
        config.utd_ratio = 4;
        for (logs, step, evals) in [(4, "step-20", vec![]), (9, "step-40", vec![20])] {
            let stopper = StopLater {
                logs,
                checks: 12,
                asked: 0.into(),
            };
            check_resume_is_exact_after(&config, Box::new(stopper), |stopped| {
                let latest = RunDir::new(stopped).latest_checkpoint().unwrap().unwrap();
                assert!(latest.ends_with(step), "{}", latest.display());
                let state = std::fs::read_to_string(latest.join("state.json")).unwrap();
                let state: serde_json::Value = serde_json::from_str(&state).unwrap();
                assert_eq!(state["step_unfinished"], true, "{state}");
                // utd_ratio 4 for each env step from start_training (10) on: 36 by step 18, 116 by step 38; then
                // two of the step's 8.
                let made = if step == "step-20" { 36 + 2 } else { 116 + 2 };
                assert_eq!(state["updates"], made, "{state}");
                assert_eq!(eval_steps(stopped), evals);
            });
        }
    }

    #[test]
    fn a_run_of_no_steps_is_refused_before_it_writes_anything() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let err =
            train(TrainOptions::new(tiny(0, 1), &out)).expect_err("a run of no steps is refused");
        assert!(
            format!("{err:#}").contains("offline_steps = 0 and online_steps = 0"),
            "{err:#}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn a_finished_run_given_more_online_steps_continues_as_the_longer_run() {
        let dir = tempfile::tempdir().unwrap();
        let (short, long) = (dir.path().join("short"), dir.path().join("long"));
        let options = |config: TrainConfig, out: &Path, resume: bool| {
            TrainOptions::new(config, out).with_resume(resume)
        };
        train(options(tiny(60, 2), &long, false)).unwrap();
        train(options(tiny(40, 2), &short, false)).unwrap();
        let config = RunDir::new(&short).config();
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("online_steps = 40\n"));
        std::fs::write(
            &config,
            text.replace("online_steps = 40\n", "online_steps = 60\n"),
        )
        .unwrap();
        train(options(tiny(40, 2), &short, true)).unwrap();
        // Its final checkpoint kept the envs' episodes in progress, so they go on as the longer run's did.
        assert_same_runs(&long, &short);
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
        TrainOptions::new(tiny(40, 1), out)
            .with_resume(resume)
            .with_observer(stop_after(stop_after_logs))
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
        // Counts of another checkpoint in a state.json sealed again (its checksum agreeing with its text).
        let mut other: serde_json::Value = serde_json::from_str(&state).unwrap();
        other["updates"] = json!(other["updates"].as_u64().unwrap() + 1);
        std::fs::write(&state_path, resealed(&other)).unwrap();
        let err = resume_error();
        assert!(err.contains("different checkpoints"), "{err}");
        let mut other: serde_json::Value = serde_json::from_str(&state).unwrap();
        other["online_step"] = json!(8);
        std::fs::write(&state_path, resealed(&other)).unwrap();
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
        train(TrainOptions::new(other_config, &other_out).with_observer(stop_after(Some(3))))
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
        let err = format!("{:#}", train(TrainOptions::new(config, &out)).unwrap_err());
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
        let options = |resume: bool, stop_after_logs: usize| {
            TrainOptions::new(tiny(40, 2), &out)
                .with_resume(resume)
                .with_observer(stop_after(Some(stop_after_logs)))
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
        let options =
            |out: &Path, resume: bool| TrainOptions::new(tiny(20, 2), out).with_resume(resume);
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
        let text = asset_text("tasks/cube-single.scn.ron");
        std::fs::write(
            &scene,
            text.replacen("episode_length: 200", "episode_length: 12", 1),
        )
        .unwrap();
        let mut config = tiny(60, 3);
        config.task = scene.display().to_string();
        config.log_interval = 3;
        let summary = train(TrainOptions::new(config.clone(), dir.path().join("run"))).unwrap();
        assert_eq!(config.agent.horizon_length, 5);
        assert_eq!(summary.updates, 60 - config.start_training + 1);
        let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
        let row_at = |step: u64| {
            metrics
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .find(|row| row["step"] == step && row["phase"] == "online")
                .unwrap_or_else(|| panic!("no online row at step {step}:\n{metrics}"))
        };
        let updates_at = |step: u64| row_at(step)["updates"].as_u64().unwrap();
        // Logged at every batched step: none at 12 (4 transitions an env), at 15 the 6 due (steps 10..=15).
        assert_eq!((updates_at(12), updates_at(15)), (0, 6));
        // No rate before the first update (a 0 would be averaged in with other runs' rates), and one after.
        let rate_at = |step: u64| row_at(step)["updates_per_second"].clone();
        assert!(rate_at(12).is_null() && rate_at(15).is_f64());
    }

    #[test]
    fn a_run_copies_the_scene_text_it_checked_not_the_file_read_again() {
        // A save between loading the task and copying it must not give the run a copy other than what it trains.
        let dir = tempfile::tempdir().unwrap();
        let scene = dir.path().join("pendulum.scn.ron");
        let text = asset_text("tasks/examples/pendulum.scn.ron");
        std::fs::write(&scene, &text).unwrap();
        let mut config = tiny(20, 1);
        config.task = scene.display().to_string();
        let task = qamlab_tasks::load_task(&config.task).unwrap();
        std::fs::write(&scene, text.replacen("(", "( ", 1)).unwrap();
        let run = RunDir::new(dir.path().join("run"));
        Trainer::start(&config, &run, &task, Device::Cpu, false, false).unwrap();
        assert_eq!(std::fs::read_to_string(run.task_scene()).unwrap(), text);
    }

    /// The text of `assets/PATH`, read at run time: a test binary from a shared target directory may come from
    /// another checkout.
    fn asset_text(path: &str) -> String {
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .expect("cargo sets CARGO_MANIFEST_DIR for tests");
        std::fs::read_to_string(Path::new(&root).join("../assets").join(path)).unwrap()
    }

    #[test]
    fn the_evaluation_settings_do_not_change_what_a_run_trains() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        train(TrainOptions::new(tiny(40, 2), &a)).unwrap();
        let mut other = tiny(40, 2);
        (other.eval_interval, other.eval_episodes, other.eval_envs) = (8, 3, 2);
        train(TrainOptions::new(other, &b)).unwrap();
        assert_eq!((eval_steps(&a).len(), eval_steps(&b).len()), (2, 5));
        // The same tensors (the files' checkpoint ids hash their config.toml, which differs), and acting draws.
        for file in ["agent.safetensors", "replay.safetensors"] {
            let (x, y) = (checkpoint_tensors(&a, file), checkpoint_tensors(&b, file));
            assert_eq!(x.len(), y.len());
            for ((name, s), (other, t)) in x.iter().zip(&y) {
                assert!(name == other && s.equal(t), "{file}: {name} differs");
            }
        }
        let position = |run: &Path| {
            let latest = RunDir::new(run).latest_checkpoint().unwrap().unwrap();
            let state = std::fs::read_to_string(latest.join("state.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&state).unwrap()["acting_position"].clone()
        };
        assert_eq!(position(&a), position(&b));
    }

    #[test]
    fn an_evaluation_of_the_final_checkpoint_repeats_the_runs_final_evaluation() {
        let dir = tempfile::tempdir().unwrap();
        // A pendulum whose goal is wide enough to be reached in some episodes, at steps the policy's draws decide.
        let scene = dir.path().join("pendulum.scn.ron");
        let text = asset_text("tasks/examples/pendulum.scn.ron");
        std::fs::write(
            &scene,
            text.replacen("tolerance: 0.1)", "tolerance: 0.45)", 1),
        )
        .unwrap();
        let mut config = tiny(40, 2);
        config.task = scene.display().to_string();
        (config.eval_episodes, config.eval_envs) = (6, 3);
        let out = dir.path().join("run");
        let summary = train(TrainOptions::new(config, &out)).unwrap();
        let last = summary.evals.last().unwrap().clone();
        assert!(
            last.mean_return > -200.0 && last.mean_return < -1.0,
            "the evaluation's episodes must end at steps the policy decides: {last:?}"
        );
        let run = RunDir::new(&out);
        let cfg = run.read_config().unwrap();
        let task = qamlab_tasks::load_task(&cfg.task).unwrap();
        let spec = qamlab_sim::EnvSpec::of(&task.scene);
        let dims = (spec.obs_dim, spec.action_dim);
        let (_, mut agent) = run.load_latest_agent(&cfg, dims, Device::Cpu).unwrap();
        let position = agent.acting_position();
        let again = crate::evaluate::evaluate(
            &mut agent,
            &task.scene,
            cfg.eval_episodes,
            cfg.eval_envs,
            crate::evaluate::run_evaluation_seed(cfg.seed),
        )
        .unwrap();
        assert_eq!(
            (again.success_rate, again.mean_return, again.envs),
            (last.success_rate, last.mean_return, 3)
        );
        // Its acting draws stand where they stood.
        assert_eq!(agent.acting_position(), position);
    }

    #[test]
    fn a_run_given_more_offline_steps_continues_as_the_longer_run() {
        let (_dir, mut config) = balanced(1);
        (config.offline_steps, config.online_steps) = (30, 20);
        let dir = tempfile::tempdir().unwrap();
        let (long, short) = (dir.path().join("long"), dir.path().join("short"));
        train(TrainOptions::new(config.clone(), &long)).unwrap();
        // An offline run of 25 steps, evaluated at 20 and at its end (where the longer run makes no evaluation),
        // given 5 more offline steps and an online phase.
        let mut offline = config.clone();
        (offline.offline_steps, offline.online_steps) = (25, 0);
        // More eval envs than episodes: the summary records the envs used.
        offline.eval_envs = offline.eval_episodes + 3;
        let summary = train(TrainOptions::new(offline.clone(), &short)).unwrap();
        assert_eq!(eval_steps(&short), [20, 25]);
        // No online step: no env-step rate (null, where a 0 would be averaged with other runs' rates).
        assert!(summary.updates_per_second.is_some());
        assert_eq!(summary.env_steps_per_second, None);
        assert_eq!(summary.eval_envs, Some(offline.eval_episodes));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(RunDir::new(&short).summary()).unwrap())
                .unwrap();
        assert!(json["env_steps_per_second"].is_null(), "{json}");
        let path = RunDir::new(&short).config();
        let text = std::fs::read_to_string(&path).unwrap();
        let longer = text
            .replace("offline_steps = 25\n", "offline_steps = 30\n")
            .replace("online_steps = 0\n", "online_steps = 20\n");
        assert_ne!(longer, text);
        std::fs::write(&path, longer).unwrap();
        train(TrainOptions::new(config, &short).with_resume(true)).unwrap();
        for file in ["agent.safetensors", "replay.safetensors"] {
            let (x, y) = (
                checkpoint_tensors(&long, file),
                checkpoint_tensors(&short, file),
            );
            assert_eq!(x.len(), y.len());
            for ((name, s), (other, t)) in x.iter().zip(&y) {
                assert!(name == other && s.equal(t), "{file}: {name} differs");
            }
        }
    }

    #[test]
    fn a_finished_run_resumed_redraws_a_deleted_learning_curve() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let summary = train(TrainOptions::new(tiny(20, 2), &out)).unwrap();
        let curve = summary.learning_curve;
        let drawn = std::fs::read(&curve).unwrap();
        std::fs::remove_file(&curve).unwrap();
        let again = train(TrainOptions::new(tiny(20, 2), &out).with_resume(true)).unwrap();
        assert_eq!(again.learning_curve, curve);
        assert!(
            std::fs::read(&curve).unwrap() == drawn,
            "not redrawn as it was"
        );
    }

    #[test]
    fn a_cpu_run_records_its_threads_and_warns_of_more_than_the_cores() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let summary = train(TrainOptions::new(tiny(20, 2), &out)).unwrap();
        let threads = crate::config::default_cpu_threads();
        let text = std::fs::read_to_string(RunDir::new(&out).config()).unwrap();
        assert!(
            text.contains(&format!("\ncpu_threads = {threads}\n")),
            "{text}"
        );
        assert_eq!(summary.cpu_threads, Some(threads));
        let json = std::fs::read_to_string(RunDir::new(&out).summary()).unwrap();
        assert!(
            json.contains(&format!("\"cpu_threads\": {threads},")),
            "{json}"
        );
        // A GPU run records none.
        let mut gpu = summary.clone();
        gpu.cpu_threads = None;
        assert!(!serde_json::to_string(&gpu).unwrap().contains("cpu_threads"));

        let run = RunDir::new(&out);
        assert_eq!(cpu_threads_warning(2, 2, &run, true), None);
        let resumed = cpu_threads_warning(4, 1, &run, true).unwrap();
        assert!(
            resumed.starts_with(&format!(
                "cpu_threads = 4, recorded in {}, is more than the 1 core this machine gives the process: the run \
                 keeps 4 threads so that its sums stay the same, but libtorch's threads spin",
                run.config().display()
            )) && resumed.contains("edit cpu_threads in that file (the run then continues on another path"),
            "{resumed}"
        );
        let new = cpu_threads_warning(3, 2, &run, false).unwrap();
        assert!(
            new.starts_with("cpu_threads = 3 is more than the 2 cores this machine gives the process: libtorch's")
                && new.ends_with("(about 40x measured)"),
            "{new}"
        );
    }

    #[test]
    fn a_run_that_recorded_no_cpu_threads_records_them_on_its_first_cpu_leg() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let options = |resume, stop_after_logs| tiny_run(&out, resume, stop_after_logs);
        train(options(false, Some(3))).unwrap();
        let path = RunDir::new(&out).config();
        let text = std::fs::read_to_string(&path).unwrap();
        let threads = crate::config::default_cpu_threads();
        let key = format!("cpu_threads = {threads}\n");
        assert!(text.contains(&key), "{text}");
        // As a run started on a GPU wrote it: whole, the count unset.
        let unset = "# cpu_threads: unset (on the CPU, half the cores the process may use; a CPU run records its \
                     count)\n";
        let gpu = text.replace(&key, unset);
        std::fs::write(&path, &gpu).unwrap();
        train(options(true, Some(2))).unwrap();
        let recorded = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            recorded,
            gpu.replace(
                unset,
                &format!(
                    "cpu_threads = {threads}  # recorded when the run first trained on the CPU\n"
                )
            )
        );
        // Later resumes keep it (and a finished run's config is left alone).
        assert!(!train(options(true, None)).unwrap().stopped_early);
        train(options(true, None)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), recorded);
    }

    #[test]
    fn a_new_runs_dataset_is_recorded_by_its_real_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        std::fs::write(real.join("data.npz"), "").unwrap();
        std::os::unix::fs::symlink(real.join("data.npz"), real.join("latest.npz")).unwrap();
        let recorded = |given: PathBuf| {
            let cfg = TrainConfig {
                dataset: Some(given),
                ..TrainConfig::default()
            };
            new_run_config(cfg).unwrap().dataset.unwrap()
        };
        assert_eq!(
            recorded(real.join("sub/../data.npz")),
            real.join("data.npz")
        );
        // A link is followed to the file the run trains on: re-pointed later, it would give a resume another.
        assert_eq!(recorded(real.join("latest.npz")), real.join("data.npz"));
        // A path that names nothing is made absolute only (loading it names it as given).
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(recorded("gone/../x.npz".into()), cwd.join("gone/../x.npz"));
    }

    #[test]
    fn a_summary_of_an_older_run_reads_without_what_it_did_not_record() {
        // summary.json as qamlab wrote it before the seed, dataset and evaluation episodes were added.
        let older = r#"{"task": "cube-single", "agent": "qam", "device": "cpu", "offline_success": 0.0,
            "online_success": 0.5, "updates_per_second": 1.0, "env_steps_per_second": 2.0, "updates": 10,
            "online_steps": 10, "wall_seconds": 3.0, "evals": [], "learning_curve": "run/learning_curve.png",
            "run_dir": "run"}"#;
        let summary: TrainSummary = serde_json::from_str(older).unwrap();
        assert_eq!(
            (
                summary.seed,
                summary.dataset,
                summary.eval_episodes,
                summary.eval_envs
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn the_first_line_says_the_online_steps_the_run_takes() {
        let cfg = |online_steps, envs| TrainConfig {
            online_steps,
            envs,
            ..TrainConfig::default()
        };
        assert_eq!(online_steps_text(&cfg(40, 2)), "40 online steps");
        assert_eq!(
            online_steps_text(&cfg(300, 8)),
            "304 online steps: 300 rounded up for 8 envs"
        );
    }
}
