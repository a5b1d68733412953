//! The egui side panel (curves, counters, controls) and the keyboard shortcuts. Buttons and keys only send
//! [`ViewCommand`]s; the plugin that owns the state applies them.

use std::path::PathBuf;

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
use egui_plot::{GridMark, Line, Plot, PlotPoint, PlotPoints, Points};
use qamlab_headless::plot::{compact, linear_ticks, symlog, symlog_inverse};

use super::ViewTask;
use super::camera::OrbitCamera;
use super::hot_reload::HotReload;
use super::policy::{ActingPolicy, EpisodeStats, PolicyKind, ROLLING, SavePath};
use super::render_sync::ShownEnvs;
use super::stepping::{EnvEntities, SimClock, Speed, SteppingSet};
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

/// The shortcuts, as listed in the panel.
const SHORTCUTS: &[(&str, &str)] = &[
    ("Space", "pause / resume"),
    ("N", "one step (pauses)"),
    ("1-6", "speed 1x, 2x, 4x, 8x, 16x, max"),
    ("R", "reset (new episodes)"),
    ("A / O / X", "agent / oracle / random acts"),
    ("G", "one env / grid"),
    ("C", "save checkpoint"),
    ("F", "frame the camera"),
    ("mouse", "left drag turn, right drag pan, wheel zoom"),
];

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
    let width = egui::Panel::left("controls")
        .resizable(true)
        .default_size(340.0)
        .show(&mut root, |ui| {
            // A solid scroll bar whenever the panel is taller than the window (the shortcuts come last).
            ui.style_mut().spacing.scroll = egui::style::ScrollStyle::solid();
            egui::ScrollArea::vertical().show(ui, |ui| panel_contents(ui, &state, &mut commands));
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

/// The panel, top to bottom.
fn panel_contents(ui: &mut egui::Ui, s: &PanelState, commands: &mut MessageWriter<ViewCommand>) {
    ui.heading(window_title(&s.task.name));
    ui.label(status_line(
        s.entities.0.len(),
        s.shown.grid,
        s.clock.steps,
        s.clock.steps_per_second,
    ));
    ui.separator();
    stepping_section(ui, &s.clock, &s.shown, s.entities.0.len(), commands);
    policy_section(ui, &s.policy, &s.save_path, commands);
    ui.separator();
    episodes_section(ui, &s.stats);
    ui.separator();
    training_section(ui, &s.curves);
    ui.separator();
    if let Some(reload) = &s.reload {
        scene_file_section(ui, reload);
    }
    ui.separator();
    shortcuts_section(ui);
}

/// The line under the heading: the envs, which of them the 3D view shows (the counts below are of them all), the
/// control step and the rate of steps.
fn status_line(envs: usize, grid: bool, steps: u64, steps_per_second: f32) -> String {
    let envs = match (envs, grid) {
        (1, _) => "1 env".to_string(),
        (n, true) => format!("{n} envs"),
        (n, false) => format!("{n} envs (env 0 shown)"),
    };
    format!("{envs}, step {steps} ({steps_per_second:.0} steps/s)")
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
            ui.label(RichText::new(save_path.0.display().to_string()).weak());
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
fn episodes_section(ui: &mut egui::Ui, stats: &EpisodeStats) {
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
    curve(
        ui,
        "window-success",
        &format!("rolling success rate, previous {ROLLING} episodes (x: episode)"),
        &[("window", stats.curve.points())],
        YAxis::Fraction,
    );
}

/// The training run's status, the weights acting, and its evaluation and loss curves.
fn training_section(ui: &mut egui::Ui, curves: &TrainingCurves) {
    match &curves.status {
        TrainingStatus::Off => {
            ui.label(RichText::new("training curves appear with --train").weak());
        }
        TrainingStatus::Recorded(run) => {
            ui.label(format!("curves recorded by {}", run.display()));
        }
        TrainingStatus::Running(out) => {
            ui.label(format!(
                "training: step {} -> {}",
                curves.step,
                out.display()
            ));
        }
        TrainingStatus::Finished(summary) => {
            let rate = summary
                .online_success
                .or(summary.offline_success)
                .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r));
            ui.label(format!(
                "training finished: {} updates, success {rate} -> {}",
                summary.updates,
                summary.run_dir.display()
            ));
        }
        TrainingStatus::Failed(err) => {
            ui.colored_label(Color32::LIGHT_RED, format!("training failed: {err}"));
        }
    }
    if let Some(step) = curves.weights_step {
        ui.label(format!("acting with the weights of step {step}"));
    }
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
        );
    }
}

/// The watched scene file, its reload count and the last reload's error.
fn scene_file_section(ui: &mut egui::Ui, reload: &HotReload) {
    match &reload.path {
        Some(path) => {
            let plural = if reload.reloads == 1 { "" } else { "s" };
            ui.label(format!(
                "watching {} ({} reload{plural})",
                path.display(),
                reload.reloads
            ));
        }
        None => {
            ui.label(RichText::new("built-in scene: no file to watch").weak());
        }
    }
    if let Some(err) = &reload.error {
        ui.colored_label(
            Color32::LIGHT_RED,
            format!("scene not reloaded, keeping the last good one:\n{err}"),
        );
    }
}

/// The keyboard shortcuts, as flowing text (a table of them went below the panel's fold beside the curves).
fn shortcuts_section(ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        for (k, (key, what)) in SHORTCUTS.iter().enumerate() {
            ui.label(RichText::new(*key).monospace().small().strong());
            let sep = if k + 1 < SHORTCUTS.len() {
                " \u{b7}"
            } else {
                ""
            };
            ui.label(RichText::new(format!("{what}{sep}")).small());
        }
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

/// A small line plot, each point marked (a series of one point shows too), its series named in a row above it
/// (inside, a legend would cover the curves of so small a plot). The points are borrowed, not copied, each frame.
fn curve(ui: &mut egui::Ui, id: &str, title: &str, series: &[(&str, &[PlotPoint])], y: YAxis) {
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
        .height(110.0)
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
            .y_grid_spacer(|input| {
                let (lo, hi) = input.bounds;
                // 0, then 10, 100, ... either way (1 would crowd 0 in so small a plot).
                std::iter::once(0.0)
                    .chain((1..=9).flat_map(|k| {
                        let v = symlog(10f64.powi(k));
                        [v, -v]
                    }))
                    .filter(|v| (lo..=hi).contains(v))
                    .map(|value| GridMark {
                        value,
                        step_size: 1.0,
                    })
                    .collect()
            })
            .y_axis_formatter(|mark, _| compact(symlog_inverse(mark.value).round())),
    };
    plot.show(ui, |plot_ui| {
        for (k, &(name, points)) in series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            plot_ui.line(Line::new(name, PlotPoints::Borrowed(points)).color(color));
            plot_ui.points(
                Points::new(name, PlotPoints::Borrowed(points))
                    .color(color)
                    .radius(2.0),
            );
        }
    });
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
            status_line(1, false, 80, 20.0),
            "1 env, step 80 (20 steps/s)"
        );
        // Without the grid, the view shows env 0 alone while the episodes counted are all the envs'.
        assert_eq!(
            status_line(4, false, 0, 0.0),
            "4 envs (env 0 shown), step 0 (0 steps/s)"
        );
        assert_eq!(status_line(4, true, 7, 19.6), "4 envs, step 7 (20 steps/s)");
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
