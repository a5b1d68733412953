//! The task registry: built-in task scenes, embedded in the binary, and user scene files by path.

use std::path::Path;

use qamlab_sim::{SimError, TaskScene};
use thiserror::Error;

/// The built-in tasks: name and scene text (embedded, so the binary works from any directory).
pub const BUILTIN_TASKS: &[(&str, &str)] = &[
    (
        "cube-single",
        include_str!("../../assets/tasks/cube-single.scn.ron"),
    ),
    (
        "cube-double",
        include_str!("../../assets/tasks/cube-double.scn.ron"),
    ),
    (
        "antmaze-umaze",
        include_str!("../../assets/tasks/antmaze-umaze.scn.ron"),
    ),
];

/// Why a task could not be loaded.
#[derive(Debug, Error)]
pub enum TaskError {
    /// Neither a built-in name nor an existing file.
    #[error("unknown task `{name}`: not a built-in task ({known}) and no such scene file{hint}")]
    Unknown {
        /// What was asked for.
        name: String,
        /// The built-in names, comma separated.
        known: String,
        /// What was likely meant (`: did you mean ...?`), or empty.
        hint: String,
    },
    /// A path (it has a folder or a scene file's extension) to nothing.
    #[error("task file `{path}` does not exist{hint}")]
    NoSuchFile {
        /// The path given.
        path: String,
        /// What was likely meant (`: did you mean ...?`): a built-in name a typo away, or a scene file; or empty.
        hint: String,
    },
    /// A path to a directory where a scene file was expected.
    #[error(
        "task `{path}` is a directory; give a scene file (`*.scn.ron`) or a built-in task name"
    )]
    Directory {
        /// The path given.
        path: String,
    },
    /// The scene failed to load or check.
    #[error(transparent)]
    Scene(#[from] SimError),
    /// The task's robot cannot get where the task needs it (a goal or an object beyond its reach, a goal walled
    /// off): no policy can solve it as laid out.
    #[error("task `{task}` cannot be solved as laid out: it needs {needs}")]
    Unsolvable {
        /// Task name.
        task: String,
        /// What the robot needs that the scene does not give (a target within reach, a way to the goal).
        needs: String,
    },
    /// An oracle was asked for a task whose observations it cannot read.
    #[error("task `{task}` has no scripted oracle: the oracle needs {missing}")]
    NoOracle {
        /// Task name.
        task: String,
        /// The first thing the oracle needs (an observation value, the action layout) and did not find.
        missing: String,
    },
}

/// A loaded task: its checked scene and where it came from.
#[derive(Clone, Debug)]
pub struct Task {
    /// Task name (from the scene's settings).
    pub name: String,
    /// Whether it is one of [`BUILTIN_TASKS`].
    pub builtin: bool,
    /// The checked scene.
    pub scene: TaskScene,
    /// The scene's text as it was read and checked: what a run keeps as its copy.
    pub text: String,
}

impl Task {
    /// Its scene's warnings ([`scene_warnings`](crate::scene_warnings)), after one of a scene file that takes a
    /// built-in task's name: runs, charts and summaries name a task by its settings' name, and would call it the
    /// built-in one.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // The built-in's own file, given by its path, is the built-in task.
        let builtin_text = BUILTIN_TASKS.iter().find(|(n, _)| *n == self.name);
        let the_builtin_itself = builtin_text.is_some_and(|(_, text)| self.text == *text);
        if !self.builtin && builtin_text.is_some() && !the_builtin_itself {
            warnings.push(format!(
                "{}: its TaskSettings name {:?} is a built-in task's, so runs, charts and summaries of it will \
                 read as the built-in task's (a run keeps a copy of this file all the same): give it a name of its \
                 own",
                self.scene.source, self.name
            ));
        }
        warnings.extend(crate::scene_warnings(&self.scene));
        warnings
    }
}

/// Names of the built-in tasks.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_TASKS.iter().map(|(n, _)| *n).collect()
}

/// Loads a built-in task by name, or a scene file by path.
pub fn load_task(name_or_path: &str) -> Result<Task, TaskError> {
    if let Some((name, text)) = BUILTIN_TASKS.iter().find(|(n, _)| *n == name_or_path) {
        let scene = TaskScene::from_ron(text, &format!("builtin:{name}"))?;
        return Ok(Task {
            name: scene.settings.name.clone(),
            builtin: true,
            scene,
            text: text.to_string(),
        });
    }
    let path = Path::new(name_or_path);
    if path.is_dir() {
        return Err(TaskError::Directory {
            path: name_or_path.to_string(),
        });
    }
    // A file, or an unnamed pipe (`--task <(...)`); `from_file` refuses a device, a socket and a named pipe,
    // and says why a link that is there cannot be followed (a loop, a file it may not read).
    if path.exists() || std::fs::symlink_metadata(path).is_ok() {
        let text = TaskScene::read_text(path)?;
        let scene = TaskScene::from_ron(&text, name_or_path)?;
        return Ok(Task {
            name: scene.settings.name.clone(),
            builtin: false,
            scene,
            text,
        });
    }
    // A name that can only be a path (a folder in it, a scene's extension) is a missing file, not a misspelt name;
    // its hint still prefers a built-in name a typo away (`./cube-single`, `cube-single.ron`) to that task's source.
    if name_or_path.contains(std::path::MAIN_SEPARATOR) || name_or_path.ends_with(".ron") {
        return Err(TaskError::NoSuchFile {
            path: name_or_path.to_string(),
            hint: hint(meant(name_or_path)),
        });
    }
    Err(TaskError::Unknown {
        name: name_or_path.to_string(),
        known: builtin_names().join(", "),
        hint: hint(meant(name_or_path)),
    })
}

/// What an unknown task name likely meant: a built-in name a typo away, or the scene file of that name in the
/// working directory or the task folders (`pendulum` for `assets/tasks/examples/pendulum.scn.ron`): those below
/// the working directory first, as relative paths, then those of the checkout the binary was built from, by
/// absolute path, so the hint works from any directory on the machine that built it.
fn meant(name: &str) -> Option<String> {
    if let Some(builtin) = qamlab_sim::scene::closest_name(name, builtin_names()) {
        return Some(builtin.to_string());
    }
    scene_file_meant(name)
}

/// `: did you mean `m`?` for `Some(m)`, else nothing.
fn hint(meant: Option<String>) -> String {
    meant.map_or_else(String::new, |m| format!(": did you mean `{m}`?"))
}

/// The scene file a name or path without its extension likely meant (see [`meant`]).
fn scene_file_meant(name: &str) -> Option<String> {
    let file = format!(
        "{}.scn.ron",
        name.trim_end_matches(".scn.ron").trim_end_matches(".ron")
    );
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("assets/tasks"));
    let relative = ["", "assets/tasks/", "assets/tasks/examples/"]
        .iter()
        .map(|dir| Path::new(dir).join(&file));
    let absolute = checkout
        .into_iter()
        .flat_map(|tasks| [tasks.join(&file), tasks.join("examples").join(&file)]);
    relative
        .chain(absolute)
        .find(|path| path.as_os_str() != name && path.is_file())
        .map(|path| path.display().to_string())
}
