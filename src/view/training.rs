//! `--train`: the headless training loop on its own thread, watched through a [`TrainObserver`] that sends
//! metrics rows, evaluations and copies of the newest weights to the window. The window only ever drains the
//! channel, so it never waits for training.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use bevy::prelude::*;
use qamlab_agent::Agent;
use qamlab_headless::evaluate::EvalPoint;
use qamlab_headless::run_dir::RunDir;
use qamlab_headless::{DeviceChoice, TrainConfig, TrainObserver, TrainOptions, TrainSummary};
use qamlab_sim::{EnvSpec, TaskScene};

use super::ViewArgs;
use super::policy::ActingPolicy;
use super::screenshot::ScreenshotWait;
use super::stepping::{SimClock, SteppingSet};

/// Training flags of `qamlab view --train`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainFlags {
    /// Training configuration (TOML, or a shipped one by name: `cpu-small`, `cuda-paper`, `antmaze-cpu`,
    /// `paper`); the flags below override it.
    #[arg(long, requires = "train")]
    pub config: Option<PathBuf>,
    /// Offline dataset (OGBench npz layout): trains offline on it first.
    #[arg(long, requires = "train", value_parser = crate::commands::path_arg())]
    pub dataset: Option<PathBuf>,
    /// Offline gradient steps [default: the config's with a dataset, else 0; at most 10^12].
    #[arg(long, requires = "train",
          value_parser = crate::commands::at_most(qamlab_headless::limits::MAX_STEPS))]
    pub offline_steps: Option<u64>,
    /// Online environment steps (at most 10^12).
    #[arg(long, requires = "train",
          value_parser = crate::commands::at_most(qamlab_headless::limits::MAX_STEPS))]
    pub online_steps: Option<u64>,
    /// Envs the trainer steps (its own, apart from the window's; at most 4096).
    #[arg(long, requires = "train",
          value_parser = crate::commands::count_up_to(qamlab_headless::limits::MAX_ENVS))]
    pub train_envs: Option<usize>,
    /// Device of the trainer: auto, cpu or cuda (the window acts on the CPU).
    #[arg(long, requires = "train")]
    pub device: Option<DeviceChoice>,
    /// Run directory [default: runs/view-TASK-UNIX_TIME].
    #[arg(long, requires = "train", value_parser = crate::commands::path_arg())]
    pub out: Option<PathBuf>,
}

impl TrainFlags {
    /// The training configuration: the config file (or the defaults), the view's task and seed, then the flags.
    pub fn config(&self, args: &ViewArgs) -> anyhow::Result<TrainConfig> {
        let mut cfg = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        cfg.task = args.task_name().to_string();
        cfg.seed = args.seed();
        // As `qamlab train`: `kind = "qam-e"` alone means QAM-E at its working edit scale.
        cfg.agent.fill_variant_weight();
        if let Some(dataset) = &self.dataset {
            cfg.dataset = Some(dataset.clone());
        }
        match self.offline_steps {
            Some(steps) => cfg.offline_steps = steps,
            // Without data there is nothing to train offline on: go online at once.
            None if cfg.dataset.is_none() => cfg.offline_steps = 0,
            None => {}
        }
        if let Some(steps) = self.online_steps {
            cfg.online_steps = steps;
        }
        if let Some(envs) = self.train_envs {
            cfg.envs = envs;
        }
        if let Some(device) = self.device {
            cfg.device = device;
        }
        cfg.validate().context("the training configuration")?;
        // Checked before the window opens: the trainer's own error would only show in the panel.
        if let Some(path) = &cfg.dataset {
            anyhow::ensure!(path.is_file(), "--dataset {}: no such file", path.display());
        }
        Ok(cfg)
    }
}

/// What the training thread tells the window.
pub enum TrainEvent {
    /// A metrics row at a step.
    Log(u64, serde_json::Value),
    /// An evaluation.
    Eval(EvalPoint),
    /// A CPU copy of every parameter at a step.
    Weights(u64, Vec<(String, tch::Tensor)>),
    /// Training ended (normally, stopped, or with an error).
    Finished(Result<Box<TrainSummary>, String>),
}

/// Copies weights no more often than this: the copy takes the trainer's time.
const WEIGHTS_EVERY: Duration = Duration::from_secs(2);

/// The observer handed to the trainer.
struct ViewObserver {
    events: Sender<TrainEvent>,
    stop: Arc<AtomicBool>,
    last_weights: Option<Instant>,
    /// When training started, for [`REGISTER_AT_EXIT_AFTER`].
    created: Instant,
}

/// How long into training [`checkpoint_before_exit`] is registered at the latest (else at the first weights sent).
const REGISTER_AT_EXIT_AFTER: Duration = Duration::from_secs(10);

/// Registers [`checkpoint_before_exit`], once. Late rather than at once: libtorch makes some of its state lazily
/// (the autograd engine at the first update), and handlers run last registered first, so one registered after that
/// state runs before its teardown at exit.
fn register_checkpoint_before_exit() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    // SAFETY: `checkpoint_before_exit` is an `extern "C" fn()` that does not unwind.
    REGISTER.call_once(|| unsafe {
        libc::atexit(checkpoint_before_exit);
    });
}

/// The training thread's id: an exit called on it (libgomp's on a thread it cannot make) must not wait for itself.
static TRAINER_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

impl TrainObserver for ViewObserver {
    fn on_log(&mut self, step: u64, row: &serde_json::Value) {
        let _ = self.events.send(TrainEvent::Log(step, row.clone()));
    }

    fn on_eval(&mut self, point: &EvalPoint) {
        let _ = self.events.send(TrainEvent::Eval(point.clone()));
    }

    fn on_weights(&mut self, step: u64, agent: &Agent) {
        register_checkpoint_before_exit();
        if self
            .last_weights
            .is_some_and(|t| t.elapsed() < WEIGHTS_EVERY)
        {
            return;
        }
        self.last_weights = Some(Instant::now());
        let weights = tch::no_grad(|| {
            agent
                .parameters()
                .into_iter()
                .map(|(name, t)| (name, t.to_device(tch::Device::Cpu).copy()))
                .collect()
        });
        let _ = self.events.send(TrainEvent::Weights(step, weights));
    }

    fn on_final_weights(&mut self, step: u64, agent: &Agent) {
        self.last_weights = None;
        self.on_weights(step, agent);
    }

    fn should_stop(&self) -> bool {
        // A run whose first metrics row is minutes away (the paper's networks on a CPU) is covered from here on.
        if self.created.elapsed() >= REGISTER_AT_EXIT_AFTER {
            register_checkpoint_before_exit();
        }
        self.stop.load(Ordering::Relaxed)
    }
}

/// The running trainer's stop flag and whether it has ended (its run checkpointed), for
/// [`checkpoint_before_exit`].
static TRAINER_AT_EXIT: std::sync::OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> =
    std::sync::OnceLock::new();

/// How long an exit from within a library waits for the trainer's checkpoint.
const CHECKPOINT_AT_EXIT: Duration = Duration::from_secs(120);

/// Run at `exit()`, before libtorch is torn down: a library that ends the process from within (Xlib, when the
/// display is lost: the X server ended, an `ssh -X` session dropped) would otherwise end training under its feet,
/// losing the steps since its last checkpoint, with a libtorch panic trace. The trainer is asked to stop, and its
/// checkpoint waited for (a window closed as usual has joined it already).
extern "C" fn checkpoint_before_exit() {
    let Some((stop, ended)) = TRAINER_AT_EXIT.get() else {
        return;
    };
    if ended.load(Ordering::SeqCst) || TRAINER_THREAD.get() == Some(&std::thread::current().id()) {
        return;
    }
    stop.store(true, Ordering::SeqCst);
    qamlab_headless::stderr_line!(
        "view: the process is ending from within (the display lost?): training stops at a checkpoint first"
    );
    let start = Instant::now();
    while !ended.load(Ordering::SeqCst) && start.elapsed() < CHECKPOINT_AT_EXIT {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The training thread, for `run` to stop when the window closes.
pub struct TrainerHandle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), String>>,
    /// The run directory.
    pub out: PathBuf,
}

impl TrainerHandle {
    /// Whether training is still going.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Asks the trainer to stop (it checkpoints and finishes), waits for it, and passes on how training ended.
    pub fn stop_and_join(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the training thread panicked"))?
            .map_err(|e| anyhow::anyhow!("training failed: {e}"))
    }
}

/// The window's end of the channel.
pub struct TrainingLink {
    events: Mutex<Receiver<TrainEvent>>,
    /// The run directory.
    pub out: PathBuf,
}

/// Starts training on its own thread, on `scene`'s task (`spec` its envs).
pub fn start(
    args: &ViewArgs,
    scene: &TaskScene,
    spec: &EnvSpec,
) -> anyhow::Result<(TrainerHandle, TrainingLink)> {
    let config = args.training.config(args)?;
    let out = args.training.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from("runs").join(format!("view-{}-{now}", spec.task))
    });
    // Refused here, before the window opens, like the other flags' mistakes.
    RunDir::new(&out).check_free_for_new_run()?;
    if let Some(path) = &config.dataset {
        let data = qamlab_headless::dataset::load_dataset(path)?;
        // A variant's note and the data's warnings are the trainer's to give, when it starts.
        data.check_fits(path, scene, spec)?;
    }
    let (events, receiver) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let observer = ViewObserver {
        events: events.clone(),
        stop: stop.clone(),
        last_weights: None,
        created: Instant::now(),
    };
    let options = TrainOptions::new(config, &out).with_observer(Box::new(observer));
    let ended = Arc::new(AtomicBool::new(false));
    // One trainer a process: a second (tests) is not waited for at exit.
    let _ = TRAINER_AT_EXIT.set((stop.clone(), ended.clone()));
    let thread = std::thread::Builder::new()
        .name("qamlab-train".into())
        .spawn(move || {
            let _ = TRAINER_THREAD.set(std::thread::current().id());
            // Said however training ends, a panic too: an exit must not wait for it then.
            let ended_guard = SetOnDrop(ended);
            let result = qamlab_headless::train(options)
                .map(Box::new)
                .map_err(|e| format!("{e:#}"));
            drop(ended_guard);
            let done = result.as_ref().map(|_| ()).map_err(Clone::clone);
            let _ = events.send(TrainEvent::Finished(result));
            done
        })
        .context("starting the training thread")?;
    qamlab_headless::stderr_line!("{}", training_into(&out));
    Ok((
        TrainerHandle {
            stop,
            thread,
            out: out.clone(),
        },
        TrainingLink {
            events: Mutex::new(receiver),
            out,
        },
    ))
}

/// The line that says where `--train` writes its run, and how to go on with it once the window has closed.
fn training_into(out: &Path) -> String {
    format!(
        "view: training into {} (closing the window stops it at a checkpoint; `qamlab train --resume {}` \
         continues it)",
        out.display(),
        qamlab_headless::shell::quote_path(out)
    )
}

/// Where training stands.
#[derive(Debug, Clone)]
pub enum TrainingStatus {
    /// No training in this window.
    Off,
    /// Running, writing into the run directory.
    Running(PathBuf),
    /// The curves of the run the checkpoint came from.
    Recorded(PathBuf),
    /// Finished with this summary.
    Finished(Box<TrainSummary>),
    /// Failed with this error.
    Failed(String),
}

/// The curves and status the panel shows.
#[derive(Resource, Debug)]
pub struct TrainingCurves {
    /// Training state.
    pub status: TrainingStatus,
    /// Step of the last metrics row.
    pub step: u64,
    /// Every evaluation.
    pub evals: Vec<EvalPoint>,
    /// Each loss logged, as (step, value) points.
    pub losses: BTreeMap<String, Vec<[f64; 2]>>,
}

/// Receives training's events and refreshes the acting agent.
pub struct TrainingPlugin {
    /// The channel from the training thread (with --train); the plugin moves it into the app when built.
    pub link: Mutex<Option<TrainingLink>>,
    /// The run directory of the --checkpoint, whose recorded curves the panel shows.
    pub recorded: Option<PathBuf>,
}

/// The window's end of the channel, as a resource.
#[derive(Resource)]
struct TrainingEvents(TrainingLink);

impl Plugin for TrainingPlugin {
    fn build(&self, app: &mut App) {
        let link = self.link.lock().expect("the plugin is built once").take();
        let status = match (&link, &self.recorded) {
            (Some(link), _) => TrainingStatus::Running(link.out.clone()),
            (None, Some(run)) => TrainingStatus::Recorded(run.clone()),
            (None, None) => TrainingStatus::Off,
        };
        let mut curves = TrainingCurves {
            status,
            step: 0,
            evals: Vec::new(),
            losses: BTreeMap::new(),
        };
        if let Some(run) = &self.recorded {
            curves.read_run(run);
        }
        app.insert_resource(curves);
        if let Some(link) = link {
            app.insert_resource(TrainingEvents(link)).add_systems(
                Update,
                (receive_training, hold_screenshot_while_training)
                    .chain()
                    .in_set(SteppingSet::Prepare),
            );
        }
    }
}

impl TrainingCurves {
    /// Adds the losses of a metrics row.
    fn add_row(&mut self, step: u64, row: &serde_json::Value) {
        self.step = step;
        let Some(fields) = row.as_object() else {
            return;
        };
        for (key, value) in fields {
            if let (true, Some(v)) = (key.contains("loss"), value.as_f64()) {
                self.losses
                    .entry(key.clone())
                    .or_default()
                    .push([step as f64, v]);
            }
        }
    }

    /// Reads the metrics and evaluations a run directory recorded (what is unreadable is skipped: the curves
    /// are a courtesy, the checkpoint is what matters).
    fn read_run(&mut self, root: &Path) {
        let run = RunDir::new(root);
        for line in std::fs::read_to_string(run.metrics())
            .unwrap_or_default()
            .lines()
        {
            let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(step) = row.get("step").and_then(serde_json::Value::as_u64) {
                self.add_row(step, &row);
            }
        }
        match run.read_evals() {
            Ok(evals) => self.evals.extend(evals),
            // No file yet is no evaluation yet; a file that does not read is said, not shown as an empty curve.
            Err(e) if run.evals().exists() => {
                tracing::warn!("{e:#}: the success curve is left out")
            }
            Err(_) => {}
        }
    }
}

/// The run directory a checkpoint file lies in (`RUN/checkpoints/step-N/agent.safetensors`), if any.
pub fn run_of_checkpoint(agent_file: &Path) -> Option<PathBuf> {
    agent_file
        .ancestors()
        .skip(1)
        .find(|dir| RunDir::new(dir).metrics().is_file())
        .map(Path::to_path_buf)
}

/// Drains the channel: curves, status, and the newest weights for the acting agent.
fn receive_training(
    events: Res<TrainingEvents>,
    mut curves: ResMut<TrainingCurves>,
    mut policy: ResMut<ActingPolicy>,
) {
    let mut newest = None;
    let receiver = events
        .0
        .events
        .lock()
        .expect("only this system takes the receiver");
    while let Ok(event) = receiver.try_recv() {
        match event {
            TrainEvent::Log(step, row) => curves.add_row(step, &row),
            TrainEvent::Eval(point) => curves.evals.push(point),
            TrainEvent::Weights(step, weights) => newest = Some((step, weights)),
            TrainEvent::Finished(Ok(summary)) => curves.status = TrainingStatus::Finished(summary),
            TrainEvent::Finished(Err(err)) => curves.status = TrainingStatus::Failed(err),
        }
    }
    let Some((step, weights)) = newest else {
        return;
    };
    let Some(agent) = &policy.agent else { return };
    let result = agent
        .lock()
        .expect("the acting agent's lock is never poisoned")
        .set_weights(step, &weights);
    // The agent's source names the step now, which the panel shows.
    if let Err(err) = result {
        policy.error = Some(format!("{err:#}"));
    }
}

/// With `--screenshot`, keeps the envs at their first step and the screenshot's frames uncounted while training
/// runs, and lets both go once it has ended (its final weights are acting by then: they come before the end).
fn hold_screenshot_while_training(
    curves: Res<TrainingCurves>,
    wait: Option<ResMut<ScreenshotWait>>,
    mut clock: ResMut<SimClock>,
) {
    let Some(mut wait) = wait else { return };
    let running = matches!(curves.status, TrainingStatus::Running(_));
    if running {
        clock.paused = true;
    } else if wait.0 {
        clock.paused = false;
    }
    wait.0 = running;
}
