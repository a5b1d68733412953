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
/// Version 2 added joint goals, joint springs and riding targets.
pub const FINGERPRINT_VERSION: u32 = 2;

/// What a scene's author wrote, as one number: the CRC-32 of the debug text of its authored components (settings,
/// bodies with colliders, randomisation and motion, joints, sites, actuators, sensors, goals of every kind), leaving
/// out the file's path and what loading computes (joint frames, resolved indices). A copy or a re-commented file keeps it; a change to
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
        scene
            .joint_goals
            .iter()
            .map(|g| &g.goal)
            .collect::<Vec<_>>(),
    );
    let mut text = format!("{authored:?}");
    // Bodies' motions only where a scene has some: a scene without keeps the fingerprint it had before they existed.
    let motions: Vec<_> = scene
        .bodies
        .iter()
        .enumerate()
        .filter_map(|(b, def)| Some((b, def.motion.as_ref()?)))
        .collect();
    if !motions.is_empty() {
        text += &format!("{motions:?}");
    }
    // Axis goals likewise, only where a scene has some.
    if !scene.axis_goals.is_empty() {
        let axis_goals: Vec<_> = scene.axis_goals.iter().map(|g| &g.goal).collect();
        text += &format!("{axis_goals:?}");
    }
    crc32fast::hash(text.as_bytes())
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

/// Where two tasks' columns first differ: which list (`"observation"` or `"action"`), the index, and the name each
/// list has there (`None` past its end).
pub struct ColumnDifference<'a> {
    /// `"observation"` or `"action"`.
    pub what: &'static str,
    /// The index in that list.
    pub index: usize,
    /// The name in `theirs` there.
    pub theirs: Option<&'a str>,
    /// The name in `ours` there.
    pub ours: Option<&'a str>,
}

/// The first difference between two tasks' observation and action columns (`[observations, actions]` each, as
/// [`qamlab_sim::EnvSpec`] and [`DatasetSource`] name them), observations first; `None` where they agree.
pub fn first_column_difference<'a>(
    theirs: [&'a [String]; 2],
    ours: [&'a [String]; 2],
) -> Option<ColumnDifference<'a>> {
    let mut lists = ["observation", "action"]
        .into_iter()
        .zip(theirs.into_iter().zip(ours));
    lists.find_map(|(what, (theirs, ours))| {
        let index = (0..theirs.len().max(ours.len())).find(|&k| theirs.get(k) != ours.get(k))?;
        Some(ColumnDifference {
            what,
            index,
            theirs: theirs.get(index).map(String::as_str),
            ours: ours.get(index).map(String::as_str),
        })
    })
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
    use std::path::Path;

    #[test]
    fn a_scene_keeps_its_fingerprint() {
        // Edits of cube-single.scn.ron change this number rightly: update it. A change with the scene as it was
        // means qamlab changed the fingerprint of unchanged scenes: bump FINGERPRINT_VERSION too.
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        assert_eq!(format!("{:08x}", scene_fingerprint(&scene)), "cbebfd5d");
        // What loading computes and the file's path are no part of it; what the author wrote is.
        let mut moved = scene.clone();
        moved.source = "elsewhere/cube.scn.ron".into();
        moved.joints[0].frame1 = moved.joints[0].frame2;
        assert_eq!(scene_fingerprint(&moved), scene_fingerprint(&scene));
        moved.goals[0].goal.tolerance = 0.05;
        assert_ne!(scene_fingerprint(&moved), scene_fingerprint(&scene));
        let mut sprung = scene.clone();
        sprung.joints[0].joint.spring = Some(qamlab_sim::authoring::JointSpring {
            stiffness: 1.0,
            damping: 1.0,
            rest: 0.0,
        });
        assert_ne!(scene_fingerprint(&sprung), scene_fingerprint(&scene));
        // The table turned kinematic, still, then spinning at two speeds: three scenes.
        let turning = |motion: &str| {
            let text = qamlab_tasks::BUILTIN_TASKS[0].1.replacen(
                "name: \"table\", kind: Fixed",
                "name: \"table\", kind: Kinematic",
                1,
            );
            let text = text.replacen(
                "\"qamlab_sim::authoring::Collider\"",
                &format!("{motion}\"qamlab_sim::authoring::Collider\""),
                1,
            );
            scene_fingerprint(&TaskScene::from_ron(&text, "turning").unwrap())
        };
        let spin = |speed: &str| {
            format!(
                "\"qamlab_sim::authoring::KinematicMotion\": (spin: Some((0.0, 0.0, {speed}))), "
            )
        };
        let (still, slow, fast) = (turning(""), turning(&spin("0.1")), turning(&spin("0.2")));
        assert!(still != slow && slow != fast && still != fast);
        let door = "../assets/tasks/examples/door.scn.ron";
        let door = TaskScene::from_file(Path::new(env!("CARGO_MANIFEST_DIR")).join(door)).unwrap();
        let mut elsewhere = door.clone();
        elsewhere.joint_goals[0].goal.target = 0.9;
        assert_ne!(scene_fingerprint(&elsewhere), scene_fingerprint(&door));
        let topple = "../assets/tasks/examples/topple.scn.ron";
        let topple =
            TaskScene::from_file(Path::new(env!("CARGO_MANIFEST_DIR")).join(topple)).unwrap();
        let mut stricter = topple.clone();
        stricter.axis_goals[0].goal.tolerance = 0.1;
        assert_ne!(scene_fingerprint(&stricter), scene_fingerprint(&topple));
    }
}
