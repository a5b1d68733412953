//! The egui side panel (curves, counters, controls) and the keyboard shortcuts. Buttons and keys only send
//! [`ViewCommand`]s; the plugin that owns the state applies them.

use std::path::{Path, PathBuf};

use bevy::asset::AssetEventSystems;
use bevy::camera::CameraOutputMode;
use bevy::camera::Viewport;
use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::window::PrimaryWindow;
use bevy_egui::egui::{self, Color32, RichText};
use bevy_egui::input::EguiWantsInput;
use bevy_egui::{
    EguiContexts, EguiGlobalSettings, EguiPostUpdateSet, EguiPrimaryContextPass, PrimaryEguiContext,
};
use egui_plot::{GridMark, Line, LineStyle, Plot, PlotPoint, PlotPoints, Points, VLine};
use qamlab_headless::plot::{compact, linear_ticks, symlog, symlog_inverse};

use super::ViewTask;
use super::camera::OrbitCamera;
use super::hot_reload::HotReload;
use super::policy::{ActingPolicy, EpisodeStats, PolicyKind, ROLLING, SavePath, VersionTally};
use super::render_sync::ShownEnvs;
use super::stepping::{EnvEntities, SimClock, Speed, SteppingSet, StepsPerSecond};
use super::training::{TrainingCurves, TrainingStatus};

/// What the panel and the keys ask for.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewCommand {
    /// Pause or resume stepping.
    TogglePause,
    /// Pause and run one control step.
    Step,
    /// Change the speed.
    SetSpeed(Speed),
    /// Start new episodes in every env (fresh seeds).
    Reset,
    /// Choose who acts.
    SetPolicy(PolicyKind),
    /// Show env 0 alone, or every env in a grid.
    ToggleGrid,
    /// Save the acting agent.
    SaveCheckpoint,
    /// Point the camera back at the shown envs.
    FrameCamera,
}

/// The shortcuts, as listed in the panel: what each does in a word or two (the buttons above say the rest: the
/// speeds in their order, the policies in theirs), so that the list takes a few lines.
const SHORTCUTS: &[(&str, &str)] = &[
    ("Space", "pause / resume"),
    ("N", "one step"),
    ("1-6", "speed 1x to max"),
    ("R", "reset"),
    ("A / O / X", "agent / oracle / random"),
    ("G", "one env / grid"),
    ("C", "save checkpoint"),
    ("F", "frame the camera"),
    ("drag", "turn"),
    ("right drag", "pan"),
    ("wheel", "zoom"),
];

/// What `--train` runs, for the panel's training line: into `out` (as given: the summary's path is made absolute),
/// `offline` gradient steps, then `online` env steps (the config's, rounded up to whole batches of the trainer's
/// envs, as the run counts them).
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct TrainingPlan {
    /// The run directory, as the window named it when training started.
    pub out: PathBuf,
    /// Offline gradient steps.
    pub offline: u64,
    /// Online env steps.
    pub online: u64,
}

impl TrainingPlan {
    /// The steps a run of `config` into `out` takes.
    pub fn new(out: PathBuf, config: &qamlab_headless::TrainConfig) -> Self {
        let total = qamlab_headless::train::total_steps(config);
        Self {
            out,
            offline: config.offline_steps,
            online: total - config.offline_steps,
        }
    }
}

/// The side panel and the keyboard shortcuts.
pub struct PanelPlugin {
    /// Where "save checkpoint" writes.
    pub save_to: PathBuf,
}

impl Plugin for PanelPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<ViewCommand>()
            .insert_resource(SavePath(self.save_to.clone()))
            .add_systems(Startup, spawn_ui_camera)
            .add_systems(Update, keyboard_shortcuts.before(SteppingSet::Rebuild))
            .add_systems(Update, retitle_window)
            .add_systems(EguiPrimaryContextPass, side_panel)
            // bevy_egui writes new glyphs into its font atlas image in `PostProcessOutput` but leaves that unordered
            // with the sending of asset events, which is what makes the render world re-extract the image. When the
            // events go first, the frame draws text whose glyphs are not on the GPU yet (blank digits in a
            // screenshot, a one-frame flicker on screen): send them after the atlas is written.
            .configure_sets(
                PostUpdate,
                EguiPostUpdateSet::PostProcessOutput.before(AssetEventSystems),
            );
    }
}

/// egui draws with its own camera over the 3D one, so the 3D camera can keep to the area right of the panel.
fn spawn_ui_camera(mut commands: Commands, mut settings: ResMut<EguiGlobalSettings>) {
    settings.auto_create_primary_context = false;
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
}

/// The window's title: the task's name, as the panel's heading.
pub fn window_title(task: &str) -> String {
    format!("qamlab view: {task}")
}

/// Keeps the window's title on the task's name when a reloaded scene renames it.
fn retitle_window(task: Res<ViewTask>, mut windows: Query<&mut Window, With<PrimaryWindow>>) {
    if !task.is_changed() {
        return;
    }
    let title = window_title(&task.name);
    for mut window in &mut windows {
        if window.title != title {
            window.title = title.clone();
        }
    }
}

/// Turns key presses into commands (unless a text field has the keyboard).
fn keyboard_shortcuts(
    keys: Res<ButtonInput<KeyCode>>,
    egui: Res<EguiWantsInput>,
    mut commands: MessageWriter<ViewCommand>,
) {
    if egui.wants_keyboard_input() {
        return;
    }
    let bindings = [
        (KeyCode::Space, ViewCommand::TogglePause),
        (KeyCode::KeyN, ViewCommand::Step),
        (KeyCode::KeyR, ViewCommand::Reset),
        (KeyCode::KeyA, ViewCommand::SetPolicy(PolicyKind::Agent)),
        (KeyCode::KeyO, ViewCommand::SetPolicy(PolicyKind::Oracle)),
        (KeyCode::KeyX, ViewCommand::SetPolicy(PolicyKind::Random)),
        (KeyCode::KeyG, ViewCommand::ToggleGrid),
        (KeyCode::KeyC, ViewCommand::SaveCheckpoint),
        (KeyCode::KeyF, ViewCommand::FrameCamera),
    ];
    for (key, command) in bindings {
        if keys.just_pressed(key) {
            commands.write(command);
        }
    }
    let speed_keys = [
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
    ];
    for (key, speed) in speed_keys.into_iter().zip(Speed::ALL) {
        if keys.just_pressed(key) {
            commands.write(ViewCommand::SetSpeed(speed));
        }
    }
}

/// Everything the panel shows.
#[derive(bevy::ecs::system::SystemParam)]
struct PanelState<'w> {
    task: Res<'w, ViewTask>,
    clock: Res<'w, SimClock>,
    entities: Res<'w, EnvEntities>,
    stats: Res<'w, EpisodeStats>,
    policy: Res<'w, ActingPolicy>,
    shown: Res<'w, ShownEnvs>,
    curves: Res<'w, TrainingCurves>,
    reload: Option<Res<'w, HotReload>>,
    save_path: Res<'w, SavePath>,
    plan: Option<Res<'w, TrainingPlan>>,
}

/// Draws the panel and fits the 3D camera's viewport to the rest of the window.
fn side_panel(
    mut contexts: EguiContexts,
    state: PanelState,
    mut commands: MessageWriter<ViewCommand>,
    window: Single<&Window, With<PrimaryWindow>>,
    mut camera: Single<&mut Camera, With<OrbitCamera>>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let mut root = egui::Ui::new(
        ctx.clone(),
        "qamlab-view".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let width = controls_panel()
        .show(&mut root, |ui| {
            // The keys stay at the panel's foot, in view whatever the curves above them take.
            egui::Panel::bottom("shortcuts")
                .frame(egui::Frame::NONE.inner_margin(egui::Margin {
                    top: 4,
                    bottom: 6,
                    ..default()
                }))
                .show(ui, shortcuts_section);
            // A solid scroll bar where the rest is taller than the window even with the curves at their least.
            ui.style_mut().spacing.scroll = egui::style::ScrollStyle::solid();
            let others_id = egui::Id::new("qamlab-panel-others");
            let others = ui.ctx().data(|d| d.get_temp::<f32>(others_id));
            let plots = plot_count(&state.curves);
            let height = plot_height(ui.available_height(), others, plots);
            let shown = egui::ScrollArea::vertical()
                .show(ui, |ui| panel_contents(ui, &state, &mut commands, height));
            // What the rest took this frame sizes the curves in the next (it changes only as text does).
            let others = shown.content_size.y - plots as f32 * height;
            ui.ctx().data_mut(|d| d.insert_temp(others_id, others));
        })
        .response
        .rect
        .width();
    let left = (width * window.scale_factor()) as u32;
    let size = UVec2::new(
        window.physical_width().saturating_sub(left),
        window.physical_height(),
    );
    if size.x > 0 && size.y > 0 {
        camera.viewport = Some(Viewport {
            physical_position: UVec2::new(left, 0),
            physical_size: size,
            ..default()
        });
    }
    Ok(())
}

/// The panel's width: the 3D view's grid is spaced for a view beside it (see `layout`).
pub const PANEL_WIDTH: f32 = 340.0;

/// The panel, [`PANEL_WIDTH`] wide whatever the window went through: resizable, it kept the width a small window
/// had squeezed it to once the window grew again.
fn controls_panel() -> egui::Panel {
    egui::Panel::left("controls")
        .resizable(false)
        .exact_size(PANEL_WIDTH)
}

/// The tallest a curve is drawn, and the least: in between, the curves share what height the rest of the panel
/// leaves them, so that a window of the usual heights shows the whole panel without scrolling.
const PLOT_HEIGHTS: (f32, f32) = (64.0, 110.0);

/// The curves the panel draws: the window's success rate, and the run's evaluations and losses once it has them.
fn plot_count(curves: &TrainingCurves) -> usize {
    1 + usize::from(!curves.evals.is_empty()) + usize::from(!curves.losses.is_empty())
}

/// The height of each of `plots` curves in a panel `available` tall whose other contents took `others` (in the
/// last frame; before the first, the curves take their tallest).
fn plot_height(available: f32, others: Option<f32>, plots: usize) -> f32 {
    // A few pixels spare: what fits to the pixel may still round over it and show a scroll bar.
    const SPARE: f32 = 4.0;
    let (least, most) = PLOT_HEIGHTS;
    others.map_or(most, |others| {
        ((available - others - SPARE) / plots.max(1) as f32).clamp(least, most)
    })
}

/// The panel, top to bottom, its curves `plot_height` tall.
fn panel_contents(
    ui: &mut egui::Ui,
    s: &PanelState,
    commands: &mut MessageWriter<ViewCommand>,
    plot_height: f32,
) {
    ui.heading(window_title(&s.task.name));
    ui.label(status_line(
        s.entities.0.len(),
        s.shown.grid,
        s.clock.steps,
        s.clock.steps_per_second(s.task.scene.settings.control_dt),
    ));
    ui.separator();
    stepping_section(ui, &s.clock, &s.shown, s.entities.0.len(), commands);
    policy_section(ui, &s.policy, &s.save_path, commands);
    ui.separator();
    // The scene file's notes, errors and warnings by the other notes, above the curves: at the foot of the panel
    // the keys would push them out of sight.
    if let Some(reload) = &s.reload {
        scene_file_section(ui, reload);
        ui.separator();
    }
    episodes_section(ui, &s.stats, plot_height);
    ui.separator();
    training_section(ui, &s.curves, s.plan.as_deref(), plot_height);
}

/// The line under the heading: the envs, which of them the 3D view shows (the counts below are of them all), the
/// control step and the rate of steps (or that the clock is paused).
fn status_line(envs: usize, grid: bool, steps: u64, rate: StepsPerSecond) -> String {
    let envs = match (envs, grid) {
        (1, _) => "1 env".to_string(),
        (n, true) => format!("{n} envs"),
        (n, false) => format!("{n} envs (env 0 shown)"),
    };
    let rate = match rate {
        StepsPerSecond::Paused => "paused".to_string(),
        StepsPerSecond::Measuring => "measuring steps/s".to_string(),
        StepsPerSecond::Nominal(rate) | StepsPerSecond::Measured(rate) => {
            format!("{rate:.0} steps/s")
        }
    };
    format!("{envs}, step {steps} ({rate})")
}

/// Pause, step, reset, one env or the grid, and the speed.
fn stepping_section(
    ui: &mut egui::Ui,
    clock: &SimClock,
    shown: &ShownEnvs,
    envs: usize,
    commands: &mut MessageWriter<ViewCommand>,
) {
    ui.horizontal(|ui| {
        let pause = if clock.paused { "Resume" } else { "Pause" };
        if ui.button(pause).clicked() {
            commands.write(ViewCommand::TogglePause);
        }
        if ui.button("Step").clicked() {
            commands.write(ViewCommand::Step);
        }
        if ui.button("Reset").clicked() {
            commands.write(ViewCommand::Reset);
        }
        let grid = if shown.grid {
            "Show one env"
        } else {
            "Show all envs"
        };
        // A grid of one env is that env: the button would only change its own label.
        if ui
            .add_enabled(envs > 1 || shown.grid, egui::Button::new(grid))
            .on_disabled_hover_text("one env: --envs N runs more")
            .clicked()
        {
            commands.write(ViewCommand::ToggleGrid);
        }
    });
    ui.horizontal(|ui| {
        ui.label("Speed");
        for speed in Speed::ALL {
            if ui
                .selectable_label(clock.speed == speed, speed.label())
                .clicked()
            {
                commands.write(ViewCommand::SetSpeed(speed));
            }
        }
    });
}

/// Who acts (and why a policy cannot), the agent's source and checkpoint saving, and the acting errors.
fn policy_section(
    ui: &mut egui::Ui,
    policy: &ActingPolicy,
    save_path: &SavePath,
    commands: &mut MessageWriter<ViewCommand>,
) {
    ui.horizontal(|ui| {
        ui.label("Acting");
        for kind in PolicyKind::ALL {
            let available = policy.availability(kind);
            let response = ui.add_enabled(
                available.is_ok(),
                egui::Button::selectable(policy.kind == kind, kind.label()),
            );
            let response = match &available {
                Err(why) => response.on_disabled_hover_text(why.as_str()),
                Ok(()) => response,
            };
            if response.clicked() {
                commands.write(ViewCommand::SetPolicy(kind));
            }
        }
    });
    if let Some(agent) = &policy.agent {
        let source = agent.lock().map(|a| a.source.clone()).unwrap_or_default();
        ui.label(format!("agent: {source}"));
        ui.horizontal(|ui| {
            if ui.button("Save checkpoint").clicked() {
                commands.write(ViewCommand::SaveCheckpoint);
            }
            // Cut to the panel's width (its whole path on hover): a row wider than the panel would widen the
            // curves under it past the panel's edge.
            let path = save_path.0.display().to_string();
            ui.add(egui::Label::new(RichText::new(&path).weak()).truncate())
                .on_hover_text(path);
        });
        match &policy.saved {
            Some(Ok(path)) => {
                ui.label(format!("saved {}", path.display()));
            }
            Some(Err(err)) => {
                ui.colored_label(Color32::LIGHT_RED, format!("saving failed: {err}"));
            }
            None => {}
        }
    }
    if let Err(why) = policy.availability(policy.kind) {
        ui.colored_label(
            Color32::YELLOW,
            format!("{} cannot act: {why}", policy.kind.label()),
        );
    }
    if let Some(note) = &policy.fallback {
        ui.colored_label(Color32::YELLOW, note.as_str());
    }
    if let Some(err) = &policy.error {
        ui.colored_label(Color32::LIGHT_RED, format!("paused: {err}"));
    }
}

/// Episode counts, the recent returns and the rolling success curve.
fn episodes_section(ui: &mut egui::Ui, stats: &EpisodeStats, plot_height: f32) {
    let rate = stats
        .rolling_success()
        .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r));
    ui.label(format!(
        "episodes {}  successes {}  last {ROLLING}: {rate}",
        stats.episodes, stats.successes
    ));
    let last: Vec<String> = stats
        .recent
        .iter()
        .rev()
        .take(8)
        .map(|(r, ok)| format!("{r:.0}{}", if *ok { "✔" } else { "" }))
        .collect();
    ui.label(format!(
        "last returns: {}",
        if last.is_empty() {
            "-".into()
        } else {
            last.join("  ")
        }
    ));
    if let Some(line) = stats.previous.as_ref().and_then(previous_version_line) {
        ui.label(RichText::new(line).weak());
    }
    curve(
        ui,
        "window-success",
        &format!("rolling success rate, previous {ROLLING} episodes (x: episode)"),
        &[("window", stats.curve.points())],
        YAxis::Fraction,
        None,
        plot_height,
    );
}

/// The line that recalls the counts of the task's version before the last reload (they start afresh with each
/// version); none where it had no episode.
fn previous_version_line(previous: &VersionTally) -> Option<String> {
    (previous.episodes > 0).then(|| {
        let rate = previous
            .rolling
            .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r));
        format!(
            "before the last reload: episodes {}  successes {}  last {ROLLING}: {rate}",
            previous.episodes, previous.successes
        )
    })
}

/// The training run's status, and its evaluation and loss curves (the policy section names the weights acting).
fn training_section(
    ui: &mut egui::Ui,
    curves: &TrainingCurves,
    plan: Option<&TrainingPlan>,
    plot_height: f32,
) {
    match &curves.status {
        TrainingStatus::Off => {
            ui.label(RichText::new("training curves appear with --train").weak());
        }
        TrainingStatus::Recorded(run) => {
            ui.label(format!("curves recorded by {}", run.display()));
        }
        TrainingStatus::Running(out) => {
            ui.label(training_line(curves.step, plan, out));
        }
        TrainingStatus::Finished(summary) => {
            let rate = summary
                .online_success
                .or(summary.offline_success)
                .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r));
            // The run named as while it ran (the summary's own path is absolute, two or three lines of the panel).
            let out = plan.map_or(&summary.run_dir, |plan| &plan.out);
            ui.label(format!(
                "training finished: {} updates, success {rate} -> {}",
                summary.updates,
                out.display()
            ));
        }
        TrainingStatus::Failed(err) => {
            ui.colored_label(Color32::LIGHT_RED, format!("training failed: {err}"));
        }
    }
    // Where the online phase begins, once it has: both charts' x is the training step.
    let online_from = online_from(&curves.evals);
    if !curves.evals.is_empty() {
        let points: Vec<PlotPoint> = curves
            .evals
            .iter()
            .map(|p| PlotPoint::new(p.step as f64, p.success_rate))
            .collect();
        curve(
            ui,
            "eval-success",
            "evaluation success (x: training step)",
            &[("eval", &points)],
            YAxis::Fraction,
            online_from,
            plot_height,
        );
    }
    if !curves.losses.is_empty() {
        // Losses differ by orders of magnitude (an adjoint loss of 45 beside a flow loss of 0.3): on a log scale
        // each shows its course. Signed, as a temperature's loss may go below 0.
        // A loss equal to another at every point (plain QAM's actor_loss is its flow_loss) would hide under it:
        // one series, named for both.
        let mut series: Vec<(String, Vec<PlotPoint>)> = Vec::new();
        for (name, points) in &curves.losses {
            let points: Vec<PlotPoint> = points
                .iter()
                .map(|&[x, y]| PlotPoint::new(x, symlog(y)))
                .collect();
            match series.iter_mut().find(|(_, p)| *p == points) {
                Some((shown, _)) => *shown = format!("{shown} = {name}"),
                None => series.push((name.clone(), points)),
            }
        }
        let series: Vec<(&str, &[PlotPoint])> = series
            .iter()
            .map(|(name, points)| (name.as_str(), points.as_slice()))
            .collect();
        curve(
            ui,
            "losses",
            "losses (x: training step; y: log scale, 0 at 0)",
            &series,
            YAxis::SymLog,
            online_from,
            plot_height,
        );
    }
}

/// The line of a training at `step` into `out`: its phase, how far it is through it, and what follows (the step
/// alone where the plan is unknown).
fn training_line(step: u64, plan: Option<&TrainingPlan>, out: &Path) -> String {
    let out = out.display();
    let Some(&TrainingPlan {
        offline, online, ..
    }) = plan
    else {
        return format!("training: step {step} -> {out}");
    };
    if offline > 0 && (step < offline || online == 0) {
        let then = if online > 0 {
            format!(", then {online} online")
        } else {
            String::new()
        };
        format!("training: offline {step}/{offline}{then} -> {out}")
    } else {
        let after = if offline > 0 {
            format!(" (after {offline} offline)")
        } else {
            String::new()
        };
        let done = step.saturating_sub(offline);
        format!("training: online {done}/{online}{after} -> {out}")
    }
}

/// The watched scene file (its name; its path on hover), its reload count, a change not shown while the window
/// trains, the last reload's error, and the warnings of the scene the envs run.
fn scene_file_section(ui: &mut egui::Ui, reload: &HotReload) {
    match &reload.path {
        Some(path) => {
            // The file's name, on one line: its whole path (two or three lines of the panel) on hover.
            let plural = if reload.reloads == 1 { "" } else { "s" };
            let name = path.file_name().map_or(path.as_os_str(), |name| name);
            ui.label(format!(
                "watching {} ({} reload{plural})",
                name.display(),
                reload.reloads
            ))
            .on_hover_text(path.display().to_string());
        }
        None => {
            ui.label(RichText::new("built-in scene: no file to watch").weak());
        }
    }
    if reload.run_copy.is_some() {
        match &reload.run_copy_edited {
            None => {
                ui.label(RichText::new(RUN_COPY_NOTE).weak());
            }
            Some(why) => {
                ui.colored_label(Color32::YELLOW, RUN_COPY_EDITED_NOTE)
                    .on_hover_text(why.as_str());
            }
        }
    }
    if let Some(held) = &reload.held {
        let response = ui.colored_label(Color32::YELLOW, held.as_str());
        if let Some(note) = &reload.held_note {
            response.on_hover_text(note.as_str());
        }
    }
    if let Some(err) = &reload.error {
        ui.colored_label(
            Color32::LIGHT_RED,
            format!("scene not reloaded, keeping the last good one:\n{err}"),
        );
    }
    if !reload.warnings.is_empty() {
        // Under a header that folds them away: each may take several lines of so narrow a panel.
        egui::CollapsingHeader::new(
            RichText::new(warnings_heading(reload.warnings.len())).color(Color32::YELLOW),
        )
        .id_salt("scene-warnings")
        .default_open(true)
        .show_unindented(ui, |ui| {
            for warning in &reload.warnings {
                ui.label(format!("\u{2022} {warning}"));
            }
        });
    }
}

/// What the panel says of a watched file that is a run's own copy of its task, as the run started.
const RUN_COPY_NOTE: &str = "the run's own copy of its task: an edit breaks its eval and --resume \
     (experiment with --task FILE)";

/// What the panel says, in yellow, once a run's own copy of its task differs from what the run recorded.
const RUN_COPY_EDITED_NOTE: &str = "\u{26A0} edited since the run started: the run is refused now (eval, \
     --resume, view; why on hover). Undo the edit to restore it; to experiment, use a copy with --task FILE";

/// The header over the scene's warnings.
fn warnings_heading(count: usize) -> String {
    match count {
        1 => "\u{26A0} 1 warning about the scene".into(),
        n => format!("\u{26A0} {n} warnings about the scene"),
    }
}

/// The keyboard shortcuts, under a header that folds them away, as flowing text in the panel's own size (a table
/// of them takes twice the height): each key and what it does on one line, the keys in bold.
fn shortcuts_section(ui: &mut egui::Ui) {
    egui::CollapsingHeader::new("Keys")
        .default_open(true)
        .show_unindented(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing.x = 12.0;
                for (key, what) in SHORTCUTS {
                    let mut job = egui::text::LayoutJob::default();
                    RichText::new(*key).strong().append_to(
                        &mut job,
                        ui.style(),
                        egui::FontSelection::Default,
                        egui::Align::Center,
                    );
                    RichText::new(format!(" {what}")).append_to(
                        &mut job,
                        ui.style(),
                        egui::FontSelection::Default,
                        egui::Align::Center,
                    );
                    ui.add(egui::Label::new(job).wrap_mode(egui::TextWrapMode::Extend));
                }
            });
        });
}

/// Colours of a chart's series, in order (egui_plot's own would give a series' line and points two colours).
const SERIES_COLORS: [Color32; 6] = [
    Color32::from_rgb(0x4c, 0x9b, 0xe8),
    Color32::from_rgb(0xf0, 0x8a, 0x3c),
    Color32::from_rgb(0x5c, 0xc8, 0x6a),
    Color32::from_rgb(0xe0, 0x5a, 0x6a),
    Color32::from_rgb(0xb0, 0x80, 0xe0),
    Color32::from_rgb(0xd8, 0xc8, 0x50),
];

/// How a chart's y axis reads.
enum YAxis {
    /// A fraction, 0 to 1, labelled in percent.
    Fraction,
    /// Values given as [`symlog`], labelled with the values themselves (1, 10, 100).
    SymLog,
}

/// The step the online phase began at, as the evaluations show it: the last offline one (each phase ends with one),
/// once an online one followed; `None` before, or for a run of one phase.
fn online_from(evals: &[qamlab_headless::evaluate::EvalPoint]) -> Option<f64> {
    use qamlab_headless::phase::Phase;
    evals
        .iter()
        .any(|p| p.phase == Phase::Online)
        .then_some(())?;
    evals
        .iter()
        .filter(|p| p.phase == Phase::Offline)
        .map(|p| p.step as f64)
        .reduce(f64::max)
}

/// A small line plot `height` tall, each point marked (a series of one point shows too), its series named in a row
/// above it (inside, a legend would cover the curves of so small a plot), with a dashed line where the online phase
/// begins if `online_from` says. The points are borrowed, not copied, each frame.
fn curve(
    ui: &mut egui::Ui,
    id: &str,
    title: &str,
    series: &[(&str, &[PlotPoint])],
    y: YAxis,
    online_from: Option<f64>,
    height: f32,
) {
    ui.label(title);
    if series.len() > 1 {
        ui.horizontal_wrapped(|ui| {
            for (k, (name, _)) in series.iter().enumerate() {
                let color = SERIES_COLORS[k % SERIES_COLORS.len()];
                ui.label(
                    RichText::new(format!("\u{25A0} {name}"))
                        .color(color)
                        .small(),
                );
            }
        });
    }
    let mut plot = Plot::new(id)
        .height(height)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        // Room about the points, so none sits on the frame, and for the last x label.
        .set_margin_fraction(egui::vec2(0.08, 0.12))
        // About four labelled intervals: egui_plot's own powers of ten leave too narrow a plot one label or none.
        .x_grid_spacer(|input| even_marks(input.bounds, 4.0))
        .x_axis_formatter(|mark, _| compact(mark.value));
    // Before the first point, episodes 0 to ROLLING rather than egui_plot's -0.5 to 0.5.
    if series.iter().all(|(_, points)| points.is_empty()) {
        plot = plot.include_x(0.0).include_x(ROLLING as f64);
    }
    plot = match y {
        YAxis::Fraction => plot
            .include_y(0.0)
            .include_y(1.0)
            .y_axis_formatter(|mark, _| format!("{:.0}%", 100.0 * mark.value)),
        // Marks where the loss is 0, 1, 10, 100, ..., labelled with those values.
        YAxis::SymLog => plot
            .grid_spacing(egui::Rangef::new(GRID_SPACING.0, GRID_SPACING.1))
            .y_grid_spacer(|input| {
                symlog_marks(input.bounds, GRID_SPACING.0 as f64 / input.base_step_size)
            })
            .y_axis_formatter(|mark, _| compact(symlog_inverse(mark.value).round())),
    };
    plot.show(ui, |plot_ui| {
        if let Some(x) = online_from {
            plot_ui.vline(
                VLine::new("online from here", x)
                    .color(Color32::GRAY)
                    .style(LineStyle::dashed_dense()),
            );
        }
        for (k, &(name, points)) in series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let line = Line::new(name, PlotPoints::Borrowed(points)).color(color);
            // The total is the sum of the others and runs along the largest: dashed and unmarked, so that one
            // shows beneath it.
            if name == "total_loss" {
                plot_ui.line(line.style(LineStyle::dashed_loose()));
                continue;
            }
            plot_ui.line(line);
            plot_ui.points(
                Points::new(name, PlotPoints::Borrowed(points))
                    .color(color)
                    .radius(2.0),
            );
        }
    });
}

/// egui_plot's own grid spacing (in pixels, the least at which its grid lines show, and the most, at which they are
/// opaque), stated: its grid spacers are told the plot's scale only as the least step of that many pixels.
const GRID_SPACING: (f32, f32) = (8.0, 300.0);

/// The least distance, in pixels, between two labels of a y axis: a line of text and a little room.
const Y_LABEL_GAP: f64 = 18.0;

/// Distance, in pixels, at which egui_plot draws a mark's label in full (it hides those of marks whose step is 20
/// pixels or less, and fades those in between).
const Y_LABEL_SHOWN: f64 = 30.0;

/// The y marks of a [`symlog`] axis spanning `bounds` at `px_per_unit` pixels a unit: 0, and then 10, 100, ...
/// either way (1 would crowd 0 in so small a plot), every decade where they stand [`Y_LABEL_GAP`] apart, else
/// every other decade, or every third, .... Each mark's step is at least [`Y_LABEL_SHOWN`] pixels, so that
/// egui_plot labels it: with the step of one decade, a chart at its least height had no label at all.
fn symlog_marks((lo, hi): (f64, f64), px_per_unit: f64) -> Vec<GridMark> {
    if !(px_per_unit > 0.0 && px_per_unit.is_finite()) {
        return Vec::new();
    }
    // A decade is a unit (give or take 4% at 10, whose symlog is 1.04).
    let stride = (1..=9)
        .find(|&k| f64::from(k) * px_per_unit >= Y_LABEL_GAP)
        .unwrap_or(9);
    let step_size = f64::from(stride).max(Y_LABEL_SHOWN / px_per_unit);
    std::iter::once(0.0)
        .chain((1..=9).filter(|k| k % stride == 0).flat_map(|k| {
            let v = symlog(10f64.powi(k));
            [v, -v]
        }))
        .filter(|v| (lo..=hi).contains(v))
        .map(|value| GridMark { value, step_size })
        .collect()
}

/// Grid marks at a round step (1, 2 or 5 times a power of ten) that cuts `bounds` into about `intervals` parts,
/// and never less than 1: the x axes count episodes and training steps, and a mark at episode 1.5 is none.
fn even_marks((lo, hi): (f64, f64), intervals: f64) -> Vec<GridMark> {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return Vec::new();
    }
    let ticks = linear_ticks(lo, hi, intervals);
    let step_size = ticks.windows(2).next().map_or(span, |w| w[1] - w[0]);
    if step_size < 1.0 {
        return (lo.ceil() as i64..=hi.floor() as i64)
            .map(|k| GridMark {
                value: k as f64,
                step_size: 1.0,
            })
            .collect();
    }
    ticks
        .into_iter()
        .map(|value| GridMark { value, step_size })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_the_envs_and_says_which_show() {
        assert_eq!(
            status_line(1, false, 80, StepsPerSecond::Nominal(20.0)),
            "1 env, step 80 (20 steps/s)"
        );
        // Without the grid, the view shows env 0 alone while the episodes counted are all the envs'.
        assert_eq!(
            status_line(4, false, 0, StepsPerSecond::Measuring),
            "4 envs (env 0 shown), step 0 (measuring steps/s)"
        );
        assert_eq!(
            status_line(4, true, 7, StepsPerSecond::Measured(19.6)),
            "4 envs, step 7 (20 steps/s)"
        );
        // Paused, no rate at all (not one falling towards 0).
        assert_eq!(
            status_line(4, true, 7, StepsPerSecond::Paused),
            "4 envs, step 7 (paused)"
        );
    }

    #[test]
    fn a_reloaded_scene_that_renames_its_task_retitles_the_window() {
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        let mut app = App::new();
        app.insert_resource(ViewTask {
            name: "cube-single".into(),
            scene,
            watch: None,
        })
        .add_systems(Update, retitle_window);
        let window = app
            .world_mut()
            .spawn((
                Window {
                    title: window_title("cube-single"),
                    ..default()
                },
                PrimaryWindow,
            ))
            .id();
        app.update();
        app.world_mut().resource_mut::<ViewTask>().name = "my-task".into();
        app.update();
        let title = &app.world().get::<Window>(window).unwrap().title;
        assert_eq!(title, "qamlab view: my-task");
    }

    #[test]
    fn the_counts_before_a_reload_are_recalled_in_a_line() {
        let previous = VersionTally {
            episodes: 34,
            successes: 30,
            rolling: Some(0.85),
        };
        assert_eq!(
            previous_version_line(&previous).unwrap(),
            format!("before the last reload: episodes 34  successes 30  last {ROLLING}: 85%")
        );
        // A version replaced before any episode ended leaves nothing to recall.
        assert_eq!(previous_version_line(&VersionTally::default()), None);
        assert_eq!(warnings_heading(1), "\u{26A0} 1 warning about the scene");
        assert_eq!(warnings_heading(3), "\u{26A0} 3 warnings about the scene");
    }

    #[test]
    fn the_curves_share_the_height_the_rest_of_the_panel_leaves() {
        let (least, most) = PLOT_HEIGHTS;
        // Before the panel has been laid out once, at their tallest.
        assert_eq!(plot_height(700.0, None, 3), most);
        // Three curves under 400 pixels of the rest in a 640-pixel panel: 80 each, less the pixels spared.
        let height = plot_height(640.0, Some(400.0), 3);
        assert!(height < 80.0 && height > 78.0, "{height}");
        // No taller than their tallest in a tall window, no shorter than their least in a short one (which
        // scrolls).
        assert_eq!(plot_height(1400.0, Some(400.0), 3), most);
        assert_eq!(plot_height(500.0, Some(400.0), 3), least);
    }

    #[test]
    fn the_online_phase_is_marked_once_it_has_begun() {
        use qamlab_headless::evaluate::EvalPoint;
        use qamlab_headless::phase::Phase;
        let point = |step, phase| EvalPoint {
            step,
            phase,
            success_rate: 0.0,
            mean_return: 0.0,
            episodes: 1,
        };
        let offline = [point(100, Phase::Offline), point(200, Phase::Offline)];
        assert_eq!(online_from(&offline), None);
        let both = [
            offline[0].clone(),
            offline[1].clone(),
            point(300, Phase::Online),
        ];
        assert_eq!(online_from(&both), Some(200.0));
        // Online from nothing: no offline phase to mark the end of.
        assert_eq!(online_from(&[point(300, Phase::Online)]), None);
    }

    #[test]
    fn the_log_scale_keeps_labels_at_every_height_of_its_chart() {
        // Losses from 0.01 to 1000 with the plot's margins, at the pixels a unit of a chart at its least height (64
        // pixels, the axis and margins less: about 12), at its tallest (about 25), and far taller.
        let bounds = (-0.4, 3.4);
        for px_per_unit in [9.0, 12.0, 16.0, 25.0, 60.0] {
            let marks = symlog_marks(bounds, px_per_unit);
            // 0 and at least one power of ten labelled...
            assert!(marks.len() >= 2, "{px_per_unit} px a unit: {marks:?}");
            for mark in &marks {
                // ...each drawn by egui_plot in full (it hides a label whose step is 20 pixels or less)...
                assert!(
                    mark.step_size * px_per_unit >= Y_LABEL_SHOWN,
                    "{px_per_unit} px a unit: {mark:?}"
                );
            }
            // ...and clear of its neighbours.
            for pair in marks.windows(2) {
                let apart = (pair[1].value - pair[0].value).abs() * px_per_unit;
                assert!(
                    apart >= Y_LABEL_GAP - 1.0,
                    "{px_per_unit} px a unit: {marks:?}"
                );
            }
        }
        let values = |px_per_unit| -> Vec<String> {
            symlog_marks(bounds, px_per_unit)
                .iter()
                .map(|m| compact(symlog_inverse(m.value).round()))
                .collect()
        };
        // Every decade where there is room, every other where there is not.
        assert_eq!(values(25.0), ["0", "10", "100", "1k"]);
        assert_eq!(values(12.0), ["0", "100"]);
        // Negative losses (a temperature's) are marked too.
        let marks = symlog_marks((-2.5, 1.5), 25.0);
        assert!(marks.iter().any(|m| m.value < -1.9), "{marks:?}");
        assert!(symlog_marks(bounds, 0.0).is_empty());
    }

    #[test]
    fn the_training_line_says_the_phase_and_how_far_it_is() {
        let out = Path::new("runs/run6");
        let plan = |offline, online| TrainingPlan {
            out: out.to_path_buf(),
            offline,
            online,
        };
        let both = plan(100_000, 4000);
        assert_eq!(
            training_line(6300, Some(&both), out),
            "training: offline 6300/100000, then 4000 online -> runs/run6"
        );
        assert_eq!(
            training_line(101_000, Some(&both), out),
            "training: online 1000/4000 (after 100000 offline) -> runs/run6"
        );
        assert_eq!(
            training_line(300, Some(&plan(0, 4000)), out),
            "training: online 300/4000 -> runs/run6"
        );
        assert_eq!(
            training_line(1500, Some(&plan(1500, 0)), out),
            "training: offline 1500/1500 -> runs/run6"
        );
        assert_eq!(training_line(7, None, out), "training: step 7 -> runs/run6");
        // The online steps as the run counts them: whole batches of its envs.
        let config = qamlab_headless::TrainConfig {
            offline_steps: 10,
            online_steps: 1001,
            envs: 4,
            ..Default::default()
        };
        let counted = TrainingPlan::new(out.to_path_buf(), &config);
        assert_eq!((counted.offline, counted.online), (10, 1004));
    }

    #[test]
    fn the_panel_keeps_its_width_after_the_window_shrank_and_grew() {
        let ctx = egui::Context::default();
        let width_at = |width: f32, height: f32| {
            let input = egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(
                    egui::Pos2::ZERO,
                    egui::vec2(width, height),
                )),
                ..Default::default()
            };
            let mut shown = 0.0;
            let mut output = ctx.run_ui(input, |root| {
                shown = controls_panel()
                    .show(root, |ui| {
                        ui.label("contents");
                    })
                    .response
                    .rect
                    .width();
            });
            // (no renderer to take the font atlas)
            output.textures_delta.clear();
            shown
        };
        assert_eq!(width_at(1280.0, 760.0), PANEL_WIDTH);
        assert!(width_at(320.0, 240.0) <= 320.0);
        assert_eq!(width_at(1280.0, 760.0), PANEL_WIDTH);
    }

    #[test]
    fn the_x_axes_mark_whole_episodes_and_steps() {
        let values =
            |bounds| -> Vec<f64> { even_marks(bounds, 4.0).iter().map(|m| m.value).collect() };
        // Two episodes: 1 and 2, not 1, 1.5 and 2.
        assert_eq!(values((0.9, 2.1)), [1.0, 2.0]);
        // One point: its own mark alone.
        assert_eq!(values((0.5, 1.5)), [1.0]);
        // Wider spans keep their round steps.
        assert_eq!(values((0.0, 20.0)), [0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(values((400.0, 1600.0)), [500.0, 1000.0, 1500.0]);
    }
}
