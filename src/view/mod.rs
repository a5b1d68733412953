//! `qamlab view`: the 3D window. The envs run the same [`SimPlugin`] systems on the same World layout as the
//! headless runs; the window adds plugins for rendering and UI only.
//!
//! * [`stepping`]: [`SteppingPlugin`] spawns the envs and runs control steps on a clock (pause, step, speed).
//! * [`policy`]: [`PolicyPlugin`] chooses the actions of each step (agent, oracle, random) and counts episodes.
//! * [`render_sync`]: [`RenderSyncPlugin`] builds meshes from the collider shapes and follows the Rapier worlds.
//! * [`layout`]: where things go in the picture: each env's working volume, the grid, the floor, a table's legs.
//! * [`camera`]: [`CameraPlugin`], the orbit camera (framing the shown envs' working volumes) and the lights.
//! * [`labels`]: [`EnvLabelsPlugin`], each env's index and successes over it in the grid.
//! * [`panel`]: [`PanelPlugin`], the egui panel (curves, counters, controls) and the keyboard shortcuts.
//! * [`thinned_curve`]: a curve of bounded memory for the whole session (the window's success rate).
//! * [`training`]: [`TrainingPlugin`], training on its own thread feeding fresh weights and curves.
//! * [`hot_reload`]: [`HotReloadPlugin`] reloads the task's scene file when it changes (with `--train`, the envs
//!   keep the task the run trains).
//! * [`screenshot`]: [`ScreenshotPlugin`] saves one frame and exits (`--screenshot`).
//! * [`preflight`]: the display and the render adapter, checked before the window opens.
//! * [`video`]: [`video::record`] renders episodes offscreen, with no window, to a GIF (`qamlab eval --video`).

pub mod camera;
pub mod hot_reload;
pub mod labels;
pub mod layout;
pub mod panel;
pub mod policy;
pub mod preflight;
pub mod render_sync;
pub mod screenshot;
pub mod stepping;
pub mod thinned_curve;
pub mod training;
pub mod video;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::WindowResolution;
use bevy_egui::EguiPlugin;
use qamlab_sim::SimPlugin;

use crate::commands::interrupt;

pub use camera::CameraPlugin;
pub use hot_reload::HotReloadPlugin;
pub use labels::EnvLabelsPlugin;
pub use panel::PanelPlugin;
pub use policy::{PolicyKind, PolicyPlugin};
pub use render_sync::RenderSyncPlugin;
pub use screenshot::ScreenshotPlugin;
pub use stepping::{ControlStep, Speed, SteppingPlugin};
pub use training::TrainingPlugin;

/// Directives of the default log filter (no `RUST_LOG`) that quiet warnings of the window's libraries that never
/// call for action: winit's on an X server with no XSETTINGS manager (Xvfb; only Xft's font options, unused here,
/// would not reload) and bevy_egui's on falling back from bindless textures (egui draws the same). Their errors,
/// and egui's other render warnings, still show.
pub const QUIET_LOG_DIRECTIVES: &str = "winit::platform_impl::linux::x11::xdisplay=error,\
     bevy_egui::render=error,bevy_egui::render::render_pass=warn";

/// The envs acting under the chosen policy, stepped by the window's clock: what the window, the video and the
/// tests share, before anything draws them.
pub struct ActingEnvsPlugins(pub SteppingPlugin);

impl PluginGroup for ActingEnvsPlugins {
    fn build(self) -> bevy::app::PluginGroupBuilder {
        bevy::app::PluginGroupBuilder::start::<Self>()
            .add(SimPlugin {
                schedule: ControlStep.intern(),
            })
            .add(self.0)
            .add(PolicyPlugin)
    }
}

/// Flags of `qamlab view`.
#[derive(clap::Args, Debug, Clone)]
pub struct ViewArgs {
    /// Built-in task name or path to a task scene file (`.scn.ron`, reloaded when it changes) [default: the
    /// task of the --checkpoint run directory, or of the --train --config file, else cube-single].
    #[arg(long, value_parser = crate::commands::task_arg())]
    pub task: Option<String>,
    /// Agent to act with: an agent `.safetensors` file (from training or the panel), a checkpoint directory, or a
    /// run directory (its latest checkpoint; the panel then shows the run's curves). `--run` names it too, as
    /// `qamlab eval --run` does.
    #[arg(long, visible_alias = "run", conflicts_with = "train")]
    pub checkpoint: Option<PathBuf>,
    /// Train while watching: training runs on its own thread and the acting agent takes its newest weights.
    #[arg(long)]
    pub train: bool,
    /// Training options (with --train).
    #[command(flatten)]
    pub training: training::TrainFlags,
    /// Envs simulated together (the panel shows one or all of them; at most 64).
    #[arg(long, default_value_t = 4, value_parser = crate::commands::count_up_to(64u16))]
    pub envs: u16,
    /// Show every env in a grid from the start (otherwise env 0 alone; `G` toggles).
    #[arg(long)]
    pub grid: bool,
    /// Policy acting first [default: agent when there is one, else the task's oracle, else random].
    #[arg(long, value_enum)]
    pub policy: Option<PolicyKind>,
    /// Simulation speed at start.
    #[arg(long, value_enum, default_value = "1x")]
    pub speed: Speed,
    /// Seed of the envs (env i starts from seed + i), of the random policy and of the --train run (at most 2^63-1)
    /// [default: the --train --config file's seed, else 0].
    #[arg(long, value_parser = crate::commands::seed_arg)]
    pub seed: Option<u64>,
    /// Where the panel's "save checkpoint" writes the acting agent.
    #[arg(long, default_value = "view-checkpoint.safetensors")]
    pub save_to: PathBuf,
    /// Save a PNG of the window after --frames frames, then exit (for tests and documentation).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Frames rendered before the screenshot.
    #[arg(long, default_value_t = 40, requires = "screenshot",
          value_parser = crate::commands::non_negative::<u32>)]
    pub frames: u32,
}

impl ViewArgs {
    /// The task to show: `--task`, else the task of the run directory given to `--checkpoint` (its own copy of a
    /// scene file), else that of the `--train --config` file, else cube-single.
    pub fn resolve_task(&self) -> anyhow::Result<String> {
        if let Some(task) = &self.task {
            return Ok(task.clone());
        }
        // A run directory, or a checkpoint or file inside one (`RUN/checkpoints/step-N`): the run's task.
        if let Some(path) = &self.checkpoint
            && let Some(run) = path
                .ancestors()
                .map(qamlab_headless::run_dir::RunDir::new)
                .find(|run| run.config().is_file())
        {
            return Ok(run.read_config()?.task);
        }
        if self.train
            && let Some(path) = &self.training.config
        {
            return Ok(qamlab_headless::TrainConfig::from_toml_file(path)?.task);
        }
        Ok("cube-single".into())
    }

    /// The seed: `--seed`, else that of the `--train --config` file, else 0.
    pub fn resolve_seed(&self) -> anyhow::Result<u64> {
        if let Some(seed) = self.seed {
            return Ok(seed);
        }
        if self.train
            && let Some(path) = &self.training.config
        {
            return Ok(qamlab_headless::TrainConfig::from_toml_file(path)?.seed);
        }
        Ok(0)
    }

    /// The seed, once [`resolve_seed`](Self::resolve_seed) has set it.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    /// The task to show, once [`resolve_task`](Self::resolve_task) has set it.
    pub fn task_name(&self) -> &str {
        self.task.as_deref().unwrap_or("cube-single")
    }
}

/// The task the envs run: the last version that loaded without error.
#[derive(Resource, Clone)]
pub struct ViewTask {
    /// Task name.
    pub name: String,
    /// The checked scene.
    pub scene: qamlab_sim::TaskScene,
    /// The scene file watched for changes, if any.
    pub watch: Option<PathBuf>,
}

/// Checks `--save-to` before the window opens: never a directory; where there is an agent to save, a place it
/// cannot be written is warned of (watching needs no saving: a read-only working directory is no mistake).
fn check_save_to(path: &std::path::Path, agent: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !path.is_dir(),
        "--save-to {}: that is a directory; give the .safetensors file the panel's \"save checkpoint\" writes",
        path.display()
    );
    if agent && let Err(e) = qamlab_headless::files::check_writable(path, "--save-to") {
        tracing::warn!("{e:#}: the panel's \"save checkpoint\" will fail there");
    }
    Ok(())
}

/// Opens the window and runs until it closes (or until the screenshot is saved).
pub fn run(mut args: ViewArgs) -> anyhow::Result<()> {
    // The flags first, then the machine: a mistake in them is reported whatever the display.
    if let Some(path) = &args.screenshot {
        check_screenshot_path(path)?;
    }
    args.task = Some(args.resolve_task()?);
    args.seed = Some(args.resolve_seed()?);
    // Read before the scene: a save while the window opens is then a change to reload.
    let seen = hot_reload::modified(std::path::Path::new(args.task_name()));
    // Its errors name the task or its file.
    let task = qamlab_tasks::load_task(args.task_name())?;
    let watch = hot_reload::scene_file_to_watch(args.task_name(), &task);
    // (a built-in task is read from the binary, not from the source watched)
    let seen = if task.builtin {
        watch.as_deref().and_then(hot_reload::modified)
    } else {
        seen
    };
    // The panel lists them too, beside the scene file: a window's terminal is easily out of sight.
    let warnings = task.warnings();
    if !args.train {
        // (a training says them itself as it starts)
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
    }
    let spec = qamlab_sim::EnvSpec::of(&task.scene);

    let mut policy = policy::ActingPolicy::from_args(&args, &spec)?;
    policy.check_oracle(args.policy, &task.scene, &spec)?;
    check_save_to(&args.save_to, policy.agent.is_some())?;
    // winit and Bevy's renderer would panic without these, after the trainer had started.
    preflight::check_display()?;
    preflight::check_render_adapter()?;
    let (trainer, training_link) = if args.train {
        let (handle, link) = training::start(&args, &task.scene, &spec)?;
        (Some(handle), Some(link))
    } else {
        (None, None)
    };
    let view_task = ViewTask {
        name: task.name.clone(),
        scene: task.scene.clone(),
        watch,
    };
    let reload = HotReloadPlugin {
        warnings,
        builtin: task.builtin,
        seen,
    };
    let mut app = window_app(&args, view_task, reload, policy, training_link);
    app.add_plugins(StopSignalPlugin);
    let exit = app.run();
    drop(app);
    wind_down(exit, trainer)
}

/// Checks `--screenshot` before anything opens: a PNG file name that can be written.
fn check_screenshot_path(path: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !path.is_dir(),
        "--screenshot {}: that is a directory; give the PNG file to write",
        path.display()
    );
    // The picture is written as PNG whatever the name says, as `plot` refuses other names too.
    anyhow::ensure!(
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png")),
        "--screenshot {}: the screenshot is written as PNG; give a .png file name",
        path.display()
    );
    qamlab_headless::files::check_writable(path, "--screenshot")
}

/// The window's app: Bevy's default plugins and egui, the envs stepped by `policy`, and the view's own plugins
/// (rendering, camera, labels, panel, hot reload, the training's link, the screenshot where one is asked for).
fn window_app(
    args: &ViewArgs,
    view_task: ViewTask,
    reload: HotReloadPlugin,
    policy: policy::ActingPolicy,
    training_link: Option<training::TrainingLink>,
) -> App {
    // The run of the checkpoint loaded (not `latest` read again: a run still training may have moved it on).
    let recorded = policy
        .checkpoint
        .as_deref()
        .and_then(training::run_of_checkpoint);
    // What the run takes, for the panel's training line (the config read as the trainer read it, checked already).
    let plan = training_link.as_ref().and_then(|link| {
        let config = args.training.config(args).ok()?;
        Some(panel::TrainingPlan::new(link.out.clone(), &config))
    });
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: panel::window_title(&view_task.name),
                    resolution: WindowResolution::new(1280, 760),
                    ..default()
                }),
                ..default()
            })
            .set(RenderPlugin {
                // A screenshot must not catch a mesh whose pipeline is still compiling; a person watching would
                // rather see the first frames at once.
                synchronous_pipeline_compilation: args.screenshot.is_some(),
                ..default()
            })
            // `main` already installed the tracing subscriber (RUST_LOG filters Bevy's messages too).
            .disable::<bevy::log::LogPlugin>()
            // Ctrl-C is taken as SIGTERM is, below: Bevy's handler ends the process on a second one with
            // `process::exit`, under a training thread still in libtorch (a panic trace, Bevy's own "error:").
            .disable::<bevy::app::TerminalCtrlCHandlerPlugin>(),
    )
    .add_plugins(EguiPlugin::default())
    .insert_resource(view_task)
    .insert_resource(policy)
    .add_plugins(ActingEnvsPlugins(SteppingPlugin {
        num_envs: usize::from(args.envs),
        seed: args.seed(),
        speed: args.speed,
        end_on_success: true,
    }))
    .add_plugins((
        RenderSyncPlugin { grid: args.grid },
        CameraPlugin,
        EnvLabelsPlugin,
        PanelPlugin {
            save_to: args.save_to.clone(),
        },
        reload,
        TrainingPlugin {
            link: std::sync::Mutex::new(training_link),
            recorded,
        },
    ));
    if let Some(plan) = plan {
        app.insert_resource(plan);
    }
    if let Some(path) = &args.screenshot {
        app.add_plugins(ScreenshotPlugin {
            path: path.clone(),
            frames: args.frames,
        });
    }
    app
}

/// After the window closed: stops the training (it checkpoints first) and says how the view ended, a failed
/// training or screenshot before a stop signal, a signal before the window's own status.
fn wind_down(exit: AppExit, trainer: Option<training::TrainerHandle>) -> anyhow::Result<()> {
    // Taken now: a training that failed too is reported first, and must not hide it.
    let screenshot_failure = screenshot::failure();

    let mut run_dir = None;
    if let Some(trainer) = trainer {
        if trainer.is_running() {
            qamlab_headless::stderr_line!(
                "view: window closed, stopping training (it checkpoints first)..."
            );
            // (a training that had finished is not one to resume)
            run_dir = Some(trainer.out.clone());
        }
        if let Err(e) = trainer.stop_and_join() {
            return Err(match &screenshot_failure {
                Some(why) => e.context(format!("{why}; and training failed")),
                None => e,
            });
        }
    }
    // Asked only now, after the training stopped, so that a signal sent while it checkpointed (the window already
    // closed by its button) counts too. A signal is not an error: the line says what became of the run, and the
    // status is the shell's for an interrupted command, as `qamlab train` gives.
    if screenshot_failure.is_none() && interrupt::requested() {
        return Err(match run_dir {
            Some(run) => interrupt::run_stopped(&run),
            None => interrupt::interrupted("interrupted"),
        });
    }
    match exit {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => match screenshot_failure {
            Some(why) => anyhow::bail!("{why}"),
            None => anyhow::bail!("the window exited with an error (code {code})"),
        },
    }
}

/// Ctrl-C, SIGTERM (`kill`, `timeout`, a scheduler's end of time) and SIGHUP close the window as its close button
/// does; a second one ends the process at once, by the signal's default action.
struct StopSignalPlugin;

impl Plugin for StopSignalPlugin {
    fn build(&self, app: &mut App) {
        interrupt::record_stop_signals();
        app.add_systems(Update, close_on_stop_signal);
    }
}

/// Closes the app once a stop signal came, with the status of a command the signal ended.
fn close_on_stop_signal(mut exit: MessageWriter<AppExit>) {
    if interrupt::requested() {
        exit.write(AppExit::from_code(interrupt::exit_status()));
    }
}
