//! Hot reload of the task's scene file: polled for a new modification time. A version that loads and changes the
//! task replaces the envs and starts the window's episode counts afresh (they are then of the version on screen);
//! one that does not load leaves the last good version running and its error in the panel. While the window
//! trains (`--train`), the envs keep the task the run trains (its copy of the file, once the run has written it),
//! and the panel says that the file changed. A run's own copy of its task (watched with `--checkpoint RUN` alone)
//! is checked as the run checks it, and the panel says when an edit has broken the run.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bevy::prelude::*;
use bevy::time::common_conditions::on_timer;
use qamlab_headless::run_dir::RunDir;
use qamlab_headless::shell::quote_path;
use qamlab_sim::TaskScene;
use qamlab_tasks::Task;

use super::ViewTask;
use super::policy::EpisodeStats;
use super::stepping::{PendingRebuild, SteppingSet};
use super::training::{TrainingCurves, TrainingStatus};

/// How often the file's modification time is read.
const POLL_SECONDS: f32 = 0.5;

/// The scene file to watch for `--task name_or_path`: the file itself, or for a built-in task its source in
/// the checkout (built-in scenes are embedded in the binary, but editing the source should show at once).
pub fn scene_file_to_watch(name_or_path: &str, task: &Task) -> Option<PathBuf> {
    if !task.builtin {
        return Some(PathBuf::from(name_or_path));
    }
    let relative = Path::new("assets/tasks").join(format!("{name_or_path}.scn.ron"));
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join(&relative);
    [relative, in_checkout].into_iter().find(|p| p.is_file())
}

/// State of the watch, for the panel.
#[derive(Resource, Debug)]
pub struct HotReload {
    /// The watched file (none: nothing to watch).
    pub path: Option<PathBuf>,
    /// Its modification time when last read.
    seen: Option<SystemTime>,
    /// Whether the task is a built-in one (the file watched is its source in the checkout).
    builtin: bool,
    /// Why the newest version was refused, if it was.
    pub error: Option<String>,
    /// Versions of the file shown since start (one held back while the window trains is not).
    pub reloads: u32,
    /// The warnings of the scene the envs run: as first loaded, then as last reloaded.
    pub warnings: Vec<String>,
    /// The run the window trains (`--train`), whose task the envs keep whatever the file becomes.
    trained: Option<PathBuf>,
    /// Whether the envs run the run's copy of its task (or there is no run, or no copy: a built-in task).
    synced: bool,
    /// What the panel says while the file differs from the task the run trains.
    pub held: Option<String>,
    /// What the terminal said of it (the panel shows it on hover).
    pub held_note: Option<String>,
    /// Whether the terminal was told of a version held back (it is told once).
    told: bool,
    /// The run whose own copy of its task the watched file is (`--checkpoint RUN` alone), if it is one: an edit
    /// shows in the window, but breaks the run, whose eval and `--resume` refuse an edited copy.
    pub run_copy: Option<PathBuf>,
    /// Why the run refuses its copy as the file now stands (edited since the run started), if it does.
    pub run_copy_edited: Option<String>,
}

/// Watches the task's scene file and reloads it on change. Its fields are what the window knew of the scene as
/// it first loaded it.
#[derive(Clone)]
pub struct HotReloadPlugin {
    /// The warnings of the scene as first loaded (the panel lists them until a reload replaces them).
    pub warnings: Vec<String>,
    /// Whether the task is a built-in one.
    pub builtin: bool,
    /// The file's modification time before the scene was read (a save while the window opens is a change).
    pub seen: Option<SystemTime>,
}

impl Plugin for HotReloadPlugin {
    fn build(&self, app: &mut App) {
        let first = self.clone();
        app.add_systems(
            Startup,
            move |commands: Commands, task: Res<ViewTask>, curves: Option<Res<TrainingCurves>>| {
                start_watch(commands, &task, curves.as_deref(), &first);
            },
        )
        .add_systems(
            Update,
            reload_changed_scene
                .run_if(on_timer(Duration::from_secs_f32(POLL_SECONDS)))
                .before(SteppingSet::Rebuild),
        );
    }
}

/// Starts watching the task's file; a window that trains holds the envs to the task as the run began.
fn start_watch(
    mut commands: Commands,
    task: &ViewTask,
    curves: Option<&TrainingCurves>,
    first: &HotReloadPlugin,
) {
    let trained = match curves.map(|c| &c.status) {
        Some(TrainingStatus::Running(run)) => Some(run.clone()),
        _ => None,
    };
    let run_copy = task.watch.as_deref().and_then(run_of_copy);
    let run_copy_edited = run_copy.as_deref().and_then(copy_refused);
    commands.insert_resource(HotReload {
        run_copy,
        run_copy_edited,
        path: task.watch.clone(),
        seen: first.seen,
        builtin: first.builtin,
        error: None,
        reloads: 0,
        warnings: first.warnings.clone(),
        // A built-in task is trained from the binary's copy, which the window shows too.
        synced: trained.is_none() || first.builtin,
        trained,
        held: None,
        held_note: None,
        told: false,
    });
}

/// The run directory whose own copy of its task `file` is (`RUN/task.scn.ron`, beside the run's config), if any.
fn run_of_copy(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?;
    let run = RunDir::new(dir);
    (run.task_scene().file_name() == file.file_name() && run.config().is_file())
        .then(|| dir.to_path_buf())
}

/// Why `run` refuses its copy of its task as it now stands (eval and `--resume` check it so), if it does.
fn copy_refused(run: &Path) -> Option<String> {
    // Only the copy's own check: a config unreadable for another reason, or a copy read mid-save, is no edit.
    RunDir::new(run)
        .read_config()
        .err()
        .map(|e| format!("{e:#}"))
        .filter(|why| why.contains("was edited after the run started"))
}

/// The modification time of `path`, if it can be read.
pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a version of the scene file that loads does to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// It changes the task: the envs take it, and the episode counts start afresh.
    Apply,
    /// The same task as shown (saved unchanged, or only its comments changed): nothing to rebuild.
    Same,
    /// It changes the task, but the window trains on the one shown: the envs keep that one.
    Hold,
}

/// What `new` does to a window showing `shown`, training on it or not.
fn verdict(new: &TaskScene, shown: &TaskScene, training: bool) -> Verdict {
    if same_task(new, shown) {
        Verdict::Same
    } else if training {
        Verdict::Hold
    } else {
        Verdict::Apply
    }
}

/// Whether two scenes set the same task, wherever they were read from. `TaskScene` has no `PartialEq`; its
/// `Debug` form holds every field (floats written exactly, no hash maps), so equal forms are equal scenes.
fn same_task(a: &TaskScene, b: &TaskScene) -> bool {
    let unsourced = |scene: &TaskScene| {
        format!(
            "{:?}",
            TaskScene {
                source: String::new(),
                ..scene.clone()
            }
        )
    };
    unsourced(a) == unsourced(b)
}

/// What the panel says of a `file` changed while the window trains into `run`: the envs keep the task the run
/// trains on.
fn held_notice(file: &Path, run: &Path, builtin: bool) -> String {
    let name = file.file_name().map_or(file.as_os_str(), |n| n).display();
    let trained = if builtin {
        "the built-in task as the run began it".to_string()
    } else {
        format!(
            "the task as the run began it, its copy {}",
            RunDir::new(run).task_scene().display()
        )
    };
    format!("{name} changed: not shown, as the window keeps {trained}")
}

/// What the terminal says, once, of a `file` changed while the window trains into `run`.
fn held_note(file: &Path, run: &Path, builtin: bool) -> String {
    let trained = if builtin {
        "the built-in task as it began".to_string()
    } else {
        format!(
            "the task as it began, its copy {}",
            RunDir::new(run).task_scene().display()
        )
    };
    format!(
        "note: {} changed; the run goes on with {trained}, which the window keeps showing; to watch the trained \
         agent on the new version: qamlab view --checkpoint {} --task {}",
        file.display(),
        quote_path(run),
        quote_path(file)
    )
}

/// Reloads the scene when its file changed: a version that changes the task replaces the envs (unless the window
/// trains on the one shown) and restarts the episode counts; a bad one is reported. A window that trains first
/// takes the run's copy of the task, should the file have changed between the window's reading and the run's.
fn reload_changed_scene(
    mut watch: ResMut<HotReload>,
    mut task: ResMut<ViewTask>,
    mut rebuild: ResMut<PendingRebuild>,
    mut stats: ResMut<EpisodeStats>,
) {
    if !watch.synced
        && let Some(run) = watch.trained.clone()
        && let Ok(copy) = read_scene(&RunDir::new(&run).task_scene())
    {
        // (not there yet, or still being written: the next poll tries again)
        watch.synced = true;
        if !same_task(&copy.0, &task.scene) {
            show(&mut watch, &mut task, copy, &mut rebuild, &mut stats);
        }
    }
    let Some(path) = watch.path.clone() else {
        return;
    };
    let now = modified(&path);
    if now == watch.seen {
        return;
    }
    watch.seen = now;
    // A run's own copy: shown as any file is, and checked as the run checks it.
    if let Some(run) = watch.run_copy.clone() {
        watch.run_copy_edited = copy_refused(&run);
    }
    let (scene, text) = match read_scene(&path) {
        Ok(read) => read,
        Err(err) => {
            watch.error = Some(err.to_string());
            return;
        }
    };
    watch.error = None;
    match verdict(&scene, &task.scene, watch.trained.is_some()) {
        Verdict::Hold => {
            let run = watch.trained.clone().expect("held only while training");
            let note = held_note(&path, &run, watch.builtin);
            if !watch.told {
                qamlab_headless::stderr_line!("{note}");
                watch.told = true;
            }
            watch.held = Some(held_notice(&path, &run, watch.builtin));
            watch.held_note = Some(note);
        }
        Verdict::Same => {
            watch.held = None;
            watch.held_note = None;
            watch.reloads += 1;
        }
        Verdict::Apply => {
            show(
                &mut watch,
                &mut task,
                (scene, text),
                &mut rebuild,
                &mut stats,
            );
            watch.reloads += 1;
        }
    }
}

/// A scene file, checked, with the text it was checked from (by which its warnings tell a built-in task's own file).
fn read_scene(path: &Path) -> Result<(TaskScene, String), qamlab_sim::SimError> {
    let text = TaskScene::read_text(path)?;
    Ok((
        TaskScene::from_ron(&text, &path.display().to_string())?,
        text,
    ))
}

/// Puts `scene` (with its text) in the envs, with its warnings, and starts the episode counts afresh.
fn show(
    watch: &mut HotReload,
    task: &mut ViewTask,
    (scene, text): (TaskScene, String),
    rebuild: &mut PendingRebuild,
    stats: &mut EpisodeStats,
) {
    let shown = Task {
        name: scene.settings.name.clone(),
        builtin: watch.builtin,
        scene,
        text,
    };
    watch.warnings = shown.warnings();
    for warning in &watch.warnings {
        tracing::warn!("{warning}");
    }
    task.name = shown.name;
    task.scene = shown.scene;
    rebuild.0 = true;
    stats.restart();
}

#[cfg(test)]
mod tests {
    use bevy::ecs::system::RunSystemOnce;

    use super::*;

    const PENDULUM: &str = "assets/tasks/examples/pendulum.scn.ron";

    /// The pendulum's scene file copied into `dir`, with `edit` applied to its text.
    fn pendulum_file(dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
        let text = std::fs::read_to_string(crate::checkout_dir().join(PENDULUM)).unwrap();
        let path = dir.join("live.scn.ron");
        std::fs::write(&path, edit(&text)).unwrap();
        path
    }

    /// Writes `text` to `path` with a modification time of its own (a second on), as an editor's save.
    fn save(path: &Path, text: &str) {
        let before = modified(path).unwrap();
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(before + Duration::from_secs(1)).unwrap();
    }

    /// The window's resources around a watch of `file`, training into `trained` if given, with 7 episodes counted.
    fn watching(file: &Path, trained: Option<&Path>) -> App {
        let seen = modified(file);
        let task = qamlab_tasks::load_task(file.to_str().unwrap()).unwrap();
        let mut app = App::new();
        let mut stats = EpisodeStats::default();
        stats.episodes = 7;
        stats.successes = 2;
        stats.recent.extend([(1.0, true), (0.0, false)]);
        app.insert_resource(ViewTask {
            name: task.name.clone(),
            scene: task.scene.clone(),
            watch: Some(file.to_path_buf()),
        })
        .insert_resource(PendingRebuild(false))
        .insert_resource(stats);
        let first = HotReloadPlugin {
            warnings: task.warnings(),
            builtin: false,
            seen,
        };
        let curves = trained.map(|run| TrainingCurves {
            status: TrainingStatus::Running(run.to_path_buf()),
            step: 0,
            evals: Vec::new(),
            losses: Default::default(),
        });
        app.world_mut()
            .run_system_once(move |commands: Commands, task: Res<ViewTask>| {
                start_watch(commands, &task, curves.as_ref(), &first)
            })
            .unwrap();
        app
    }

    fn poll(app: &mut App) {
        app.world_mut()
            .run_system_once(reload_changed_scene)
            .unwrap();
    }

    fn tolerance(app: &App) -> f32 {
        app.world().resource::<ViewTask>().scene.goals[0]
            .goal
            .tolerance
    }

    fn with_tolerance(text: &str, tolerance: &str) -> String {
        let (before, after) = text.split_once("tolerance: ").unwrap();
        let end = after.find([',', ')']).unwrap();
        format!("{before}tolerance: {tolerance}{}", &after[end..])
    }

    #[test]
    fn a_reload_while_training_keeps_the_trained_task_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = pendulum_file(dir.path(), |t| with_tolerance(t, "0.08"));
        let original = std::fs::read_to_string(&file).unwrap();
        let run = dir.path().join("viewtrain");
        let mut app = watching(&file, Some(&run));
        save(&file, &with_tolerance(&original, "0.3"));
        poll(&mut app);
        // The envs keep the task trained; nothing rebuilt, nothing counted as a reload, the counts go on.
        assert_eq!(tolerance(&app), 0.08);
        assert!(!app.world().resource::<PendingRebuild>().0);
        assert_eq!(app.world().resource::<EpisodeStats>().episodes, 7);
        let watch = app.world().resource::<HotReload>();
        assert_eq!(watch.reloads, 0);
        let held = watch
            .held
            .as_deref()
            .expect("the panel says the file changed");
        let copy = run.join("task.scn.ron").display().to_string();
        assert!(
            held == format!(
                "live.scn.ron changed: not shown, as the window keeps the task as the run began it, its copy {copy}"
            ),
            "{held}"
        );
        assert!(watch.told);
        // Saved back as the run began: the notice goes, and the task is the one shown.
        save(&file, &original);
        poll(&mut app);
        let watch = app.world().resource::<HotReload>();
        assert!(watch.held.is_none());
        assert_eq!(tolerance(&app), 0.08);
        assert!(!app.world().resource::<PendingRebuild>().0);
    }

    #[test]
    fn a_window_that_trains_shows_the_runs_copy_of_its_task() {
        // The file changed between the window's reading and the run's: the run's copy is what is trained.
        let dir = tempfile::tempdir().unwrap();
        let file = pendulum_file(dir.path(), |t| with_tolerance(t, "0.08"));
        let changed = with_tolerance(&std::fs::read_to_string(&file).unwrap(), "0.3");
        let run = dir.path().join("viewtrain");
        let mut app = watching(&file, Some(&run));
        // No copy yet (the run is starting): the envs keep what the window read.
        poll(&mut app);
        assert_eq!(tolerance(&app), 0.08);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("task.scn.ron"), &changed).unwrap();
        save(&file, &changed);
        poll(&mut app);
        assert_eq!(tolerance(&app), 0.3);
        assert!(app.world().resource::<PendingRebuild>().0);
        // The file is as the run trains it: nothing held back.
        assert!(app.world().resource::<HotReload>().held.is_none());
    }

    #[test]
    fn a_reload_that_changes_the_task_restarts_the_counts_and_lists_its_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let file = pendulum_file(dir.path(), |t| t.to_string());
        let original = std::fs::read_to_string(&file).unwrap();
        let mut app = watching(&file, None);
        assert!(app.world().resource::<HotReload>().warnings.is_empty());
        // Saved unchanged but for a comment: the same task, its envs and counts untouched.
        save(&file, &format!("// a note\n{original}"));
        poll(&mut app);
        assert!(!app.world().resource::<PendingRebuild>().0);
        assert_eq!(app.world().resource::<EpisodeStats>().episodes, 7);
        assert_eq!(app.world().resource::<HotReload>().reloads, 1);
        // Gravity pointing up: the envs take it, its warning shows, and the counts are of it alone.
        let (before, after) = original.split_once("gravity: (").unwrap();
        let rest = after.split_once(')').unwrap().1;
        save(&file, &format!("{before}gravity: (0.0, 0.0, 9.81){rest}"));
        poll(&mut app);
        assert!(app.world().resource::<PendingRebuild>().0);
        let watch = app.world().resource::<HotReload>();
        assert_eq!(watch.reloads, 2);
        assert!(
            watch.warnings.len() == 1 && watch.warnings[0].contains("it points up"),
            "{:?}",
            watch.warnings
        );
        assert!(watch.held.is_none());
        let stats = app.world().resource::<EpisodeStats>();
        assert_eq!((stats.episodes, stats.successes), (0, 0));
        assert!(stats.recent.is_empty() && stats.curve.points().is_empty());
        let previous = stats.previous.expect("the old version's counts are kept");
        assert_eq!((previous.episodes, previous.successes), (7, 2));
    }

    #[test]
    fn an_edit_of_a_runs_own_copy_of_its_task_is_shown_and_said_to_break_the_run() {
        // `--checkpoint RUN` alone watches RUN/task.scn.ron, which the run's eval and --resume check.
        let dir = tempfile::tempdir().unwrap();
        let original = pendulum_file(dir.path(), |t| with_tolerance(t, "0.08"));
        let text = std::fs::read_to_string(&original).unwrap();
        let run = RunDir::new(dir.path().join("run"));
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        let config = qamlab_headless::TrainConfig {
            task: original.display().to_string(),
            ..Default::default()
        };
        run.write_config(&config).unwrap();
        run.write_task_scene(text.as_bytes()).unwrap();
        let copy = run.task_scene();
        let mut app = watching(&copy, None);
        let watch = app.world().resource::<HotReload>();
        assert_eq!(
            watch.run_copy.as_deref(),
            Some(dir.path().join("run").as_path())
        );
        assert_eq!(watch.run_copy_edited, None);
        // Edited: the window shows the edit, and says the run now refuses its copy.
        save(&copy, &with_tolerance(&text, "0.3"));
        poll(&mut app);
        assert_eq!(tolerance(&app), 0.3);
        let watch = app.world().resource::<HotReload>();
        let why = watch.run_copy_edited.as_deref().expect("the edit is said");
        assert!(why.contains("was edited after the run started"), "{why}");
        // Restored, the run takes it again.
        save(&copy, &text);
        poll(&mut app);
        assert_eq!(app.world().resource::<HotReload>().run_copy_edited, None);
        // Any other file is no run's copy, nor is a task.scn.ron outside a run.
        let mut other = watching(&original, None);
        poll(&mut other);
        assert_eq!(other.world().resource::<HotReload>().run_copy, None);
        let loose = dir.path().join("task.scn.ron");
        std::fs::write(&loose, &text).unwrap();
        assert_eq!(run_of_copy(&loose), None);
    }

    #[test]
    fn the_terminal_note_says_how_to_watch_the_new_version() {
        let note = held_note(
            Path::new("tasks/live.scn.ron"),
            Path::new("runs/view train"),
            false,
        );
        assert_eq!(
            note,
            "note: tasks/live.scn.ron changed; the run goes on with the task as it began, its copy runs/view \
             train/task.scn.ron, which the window keeps showing; to watch the trained agent on the new version: \
             qamlab view --checkpoint 'runs/view train' --task tasks/live.scn.ron"
        );
        let builtin = held_notice(
            Path::new("assets/tasks/cube-single.scn.ron"),
            Path::new("runs/x"),
            true,
        );
        assert!(
            builtin.starts_with("cube-single.scn.ron changed: not shown")
                && builtin.contains("built-in"),
            "{builtin}"
        );
    }
}
