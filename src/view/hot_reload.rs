//! Hot reload of the task's scene file: polled for a new modification time; a version that loads replaces the
//! envs, one that does not leaves the last good version running and its error in the panel.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bevy::prelude::*;
use qamlab_sim::TaskScene;
use qamlab_tasks::Task;

use super::ViewTask;
use super::stepping::{PendingRebuild, SteppingSet};

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
    timer: Timer,
    /// Why the newest version was refused, if it was.
    pub error: Option<String>,
    /// Versions loaded since start.
    pub reloads: u32,
}

/// Watches the task's scene file and reloads it on change.
pub struct HotReloadPlugin;

impl Plugin for HotReloadPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, start_watch)
            .add_systems(Update, poll_scene_file.before(SteppingSet::Rebuild));
    }
}

fn start_watch(mut commands: Commands, task: Res<ViewTask>) {
    let seen = task.watch.as_deref().and_then(modified);
    commands.insert_resource(HotReload {
        path: task.watch.clone(),
        seen,
        timer: Timer::from_seconds(POLL_SECONDS, TimerMode::Repeating),
        error: None,
        reloads: 0,
    });
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the scene when its file changed: the envs are rebuilt from a good version; a bad one is reported.
fn poll_scene_file(
    time: Res<Time>,
    mut watch: ResMut<HotReload>,
    mut task: ResMut<ViewTask>,
    mut rebuild: ResMut<PendingRebuild>,
) {
    if !watch.timer.tick(time.delta()).just_finished() {
        return;
    }
    let Some(path) = watch.path.clone() else {
        return;
    };
    let now = modified(&path);
    if now == watch.seen {
        return;
    }
    watch.seen = now;
    match TaskScene::from_file(&path) {
        Ok(scene) => {
            for warning in qamlab_tasks::scene_warnings(&scene) {
                tracing::warn!("{warning}");
            }
            task.name = scene.settings.name.clone();
            task.scene = scene;
            rebuild.0 = true;
            watch.error = None;
            watch.reloads += 1;
        }
        Err(err) => watch.error = Some(err.to_string()),
    }
}
