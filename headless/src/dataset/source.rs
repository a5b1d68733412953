//! A dataset's provenance: the task, columns and command it was collected with, and its scene's fingerprint.

use qamlab_sim::TaskScene;

/// Where a dataset came from, stored in its `source` key: the task's name and what its observation and action
/// columns are, so that training on another task's data is caught even where the widths agree; and how it was
/// collected, so that a file says how to make it again.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetSource {
    /// The task's own name (its scene's, whatever file it came from).
    pub task: String,
    /// The observation's column names, in order (`EnvSpec::obs_names`).
    pub observations: Vec<String>,
    /// The action's column names, in order (`EnvSpec::action_names`).
    pub actions: Vec<String>,
    /// The `qamlab collect` command that made the rows (`--out` aside: the bytes do not depend on the name).
    pub collected_with: String,
    /// The version of qamlab that made them.
    pub qamlab: String,
    /// Where the task's scene came from: its file's absolute path (in older files, as given), or `builtin:<name>`
    /// (absent in earlier files).
    #[serde(default)]
    pub scene: Option<String>,
    /// [`scene_fingerprint`] of that scene (absent in earlier files).
    #[serde(default)]
    pub scene_fingerprint: Option<u32>,
    /// [`FINGERPRINT_VERSION`] of the fingerprint: one of another version is not compared.
    #[serde(default)]
    pub fingerprint_version: u32,
    /// The bodies whose state the `qpos` and `qvel` columns hold, in order (`EnvSpec::state_bodies`): 7 values
    /// each in `qpos`, 6 in `qvel` (absent in earlier files).
    #[serde(default)]
    pub state_bodies: Option<Vec<String>>,
}

impl DatasetSource {
    /// The source for a dataset of `scene`'s task, whose envs `spec` describes.
    pub fn new(scene: &TaskScene, spec: &qamlab_sim::EnvSpec, collected_with: String) -> Self {
        Self {
            task: spec.task.clone(),
            observations: spec.obs_names.clone(),
            actions: spec.action_names.clone(),
            collected_with,
            qamlab: env!("CARGO_PKG_VERSION").into(),
            scene: Some(absolute_scene(&scene.source)),
            scene_fingerprint: Some(scene_fingerprint(scene)),
            fingerprint_version: FINGERPRINT_VERSION,
            state_bodies: Some(spec.state_bodies.clone()),
        }
    }

    /// What `--task` takes to name the task the data came from: a built-in's name, or its scene file.
    pub fn task_argument(&self) -> &str {
        match self.scene.as_deref() {
            Some(scene) => scene.strip_prefix("builtin:").unwrap_or(scene),
            None => &self.task,
        }
    }
}

/// The version of [`scene_fingerprint`]'s text: bumped when a change to qamlab (a new field, another way of
/// printing a value) changes the fingerprint of an unchanged scene, so that older datasets are not taken for data
/// of another scene. A test pins cube-single's fingerprint to catch such a change.
pub const FINGERPRINT_VERSION: u32 = 1;

/// What a scene's author wrote, as one number: the CRC-32 of the debug text of its authored components (settings,
/// bodies with colliders and randomisation, joints, sites, actuators, sensors, goals), leaving out the file's path
/// and what loading computes (joint frames, resolved indices). A copy or a re-commented file keeps it; a change to
/// anything the task is made of changes it.
pub fn scene_fingerprint(scene: &TaskScene) -> u32 {
    let authored = (
        &scene.settings,
        scene
            .bodies
            .iter()
            .map(|b| (&b.body, &b.collider, &b.randomize))
            .collect::<Vec<_>>(),
        scene.joints.iter().map(|j| &j.joint).collect::<Vec<_>>(),
        scene
            .sites
            .iter()
            .map(|(name, frame)| (name, &scene.bodies[frame.body].body.name, frame.offset))
            .collect::<Vec<_>>(),
        scene
            .actuators
            .iter()
            .map(|a| &a.actuator)
            .collect::<Vec<_>>(),
        scene.sensors.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        scene
            .goals
            .iter()
            .map(|g| (&g.goal, g.randomize.as_ref().map(|(r, _)| r)))
            .collect::<Vec<_>>(),
    );
    crc32fast::hash(format!("{authored:?}").as_bytes())
}

/// A scene's origin as a dataset records it: a built-in's `builtin:<name>`, a file's absolute path (the dataset
/// may be read from another directory).
pub(super) fn absolute_scene(source: &str) -> String {
    if source.starts_with("builtin:") {
        return source.to_string();
    }
    // The file's real path where it exists (`a/../x.scn.ron` and `x.scn.ron` are one file), else as written.
    std::fs::canonicalize(source)
        .or_else(|_| std::path::absolute(source))
        .map_or_else(|_| source.to_string(), |p| p.display().to_string())
}

/// The `--task` argument that loads `scene`: a built-in's name, or the file as given.
pub(super) fn task_argument(scene: &TaskScene) -> &str {
    scene
        .source
        .strip_prefix("builtin:")
        .unwrap_or(&scene.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_keeps_its_fingerprint() {
        // Edits of cube-single.scn.ron change this number rightly: update it. A change with the scene as it was
        // means qamlab changed the fingerprint of unchanged scenes: bump FINGERPRINT_VERSION too.
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        assert_eq!(format!("{:08x}", scene_fingerprint(&scene)), "c626ff80");
        // What loading computes and the file's path are no part of it; what the author wrote is.
        let mut moved = scene.clone();
        moved.source = "elsewhere/cube.scn.ron".into();
        moved.joints[0].frame1 = moved.joints[0].frame2;
        assert_eq!(scene_fingerprint(&moved), scene_fingerprint(&scene));
        moved.goals[0].goal.tolerance = 0.05;
        assert_ne!(scene_fingerprint(&moved), scene_fingerprint(&scene));
    }
}
