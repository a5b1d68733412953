//! Loading a task scene: `.scn.ron` text -> reflected components -> a checked [`TaskScene`] with names resolved
//! to indices. Every mistake becomes a [`SimError`] naming the file, the entity and the field; nothing panics.
//!
//! A load runs `parse` (text to typed entities), then `build`: the task's settings, then one builder per kind
//! (`bodies` with sites, `joints`, `actuators`, `goals`, `sensors`), all checking fields through `check`, and
//! last `keep_away`, trial resets that refuse keep-away rules resets would often leave unmet. `limits` bounds the
//! text's size, the counts of entities and of each kind, and the spaces' widths, before the checks that compare
//! them pairwise.

mod actuators;
mod bodies;
mod build;
mod check;
mod goals;
mod joints;
mod keep_away;
mod limits;
mod outline;
mod parse;
mod sensors;

use std::path::Path;
use std::sync::OnceLock;

use bevy::prelude::*;
use bevy::reflect::TypeRegistry;
use bevy_rapier3d::rapier::prelude::Pose;

use crate::authoring::*;
use crate::error::SimError;

pub use check::{
    MAX_EPISODE_LENGTH, MAX_GRAVITY, MAX_PHYSICS_STEP, MAX_SOLVER_ITERATIONS, MAX_SOLVER_PASSES,
    MAX_SUBSTEPS, MIN_PHYSICS_STEP, closest_name,
};
pub use limits::{MAX_ENTITIES, MAX_OF_EACH_KIND, MAX_SCENE_BYTES, MAX_SPACE_WIDTH};

/// A point fixed to a body: a body's origin or a site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameRef {
    /// Index into [`TaskScene::bodies`].
    pub body: usize,
    /// Position in the body's frame.
    pub offset: Vec3,
}

/// A body with the components found on its entity.
#[derive(Clone, Debug)]
pub struct BodyDef {
    /// The body.
    pub body: Body,
    /// Its collider, if any.
    pub collider: Option<Collider>,
    /// Its reset randomisation, if any.
    pub randomize: Option<RandomizePose>,
    /// Its keep-away list resolved: (earlier body index, distance).
    pub keep_away: Vec<(usize, f32)>,
    /// Its authored motion (a `Kinematic` body's only), if any: about the start each episode draws.
    pub motion: Option<KinematicMotion>,
}

impl BodyDef {
    /// Whether its authored motion turns it (a kinematic body with a spin other than 0).
    pub fn spins(&self) -> bool {
        self.motion
            .as_ref()
            .is_some_and(|m| m.spin.is_some_and(|s| s != Vec3::ZERO))
    }
}

/// A joint with its bodies resolved and its frames (x axis = joint axis) in each body's frame.
#[derive(Clone, Debug)]
pub struct JointDef {
    /// The joint as authored.
    pub joint: Joint,
    /// Parent body index.
    pub parent: usize,
    /// Child body index.
    pub child: usize,
    /// Joint frame in the parent's frame.
    pub frame1: Pose,
    /// Joint frame in the child's frame.
    pub frame2: Pose,
}

impl JointDef {
    /// Where the child body is when the joint's coordinate is `coordinate` (as [`EnvPhysics::joint_position`]
    /// reads it) and the parent is at `parent`: the inverse of that reading.
    ///
    /// [`EnvPhysics::joint_position`]: crate::physics::EnvPhysics::joint_position
    pub fn child_pose_at(&self, parent: Pose, coordinate: f32) -> Pose {
        parent * self.frame1 * self.motion(coordinate) * self.frame2.inverse()
    }

    /// Where the parent body is when the joint's coordinate is `coordinate` and the child is at `child`.
    pub fn parent_pose_at(&self, child: Pose, coordinate: f32) -> Pose {
        child * self.frame2 * self.motion(coordinate).inverse() * self.frame1.inverse()
    }

    /// The child's joint frame in the parent's at `coordinate`.
    fn motion(&self, coordinate: f32) -> Pose {
        // The joint frames' x axis is the joint's axis.
        match self.joint.kind {
            JointKind::Prismatic { .. } => Pose::from_translation(Vec3::X * coordinate),
            JointKind::Revolute { .. } => Pose::from_rotation(Quat::from_rotation_x(coordinate)),
            JointKind::Fixed => Pose::IDENTITY,
        }
    }
}

/// An action dimension with its joints resolved.
#[derive(Clone, Debug)]
pub struct ActuatorDef {
    /// The actuator as authored.
    pub actuator: Actuator,
    /// Joint indices.
    pub joints: Vec<usize>,
}

/// An observation block with its names resolved to indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SensorDef {
    /// Frame position (3).
    Position(FrameRef),
    /// Body quaternion (4).
    Quaternion(usize),
    /// Body yaw sin, cos (2).
    YawSinCos(usize),
    /// Frame linear velocity (3).
    LinearVelocity(FrameRef),
    /// Body angular velocity (3).
    AngularVelocity(usize),
    /// Joint coordinate (1).
    JointPosition(usize),
    /// Joint rate (1).
    JointVelocity(usize),
    /// `to - from` (3).
    RelativePosition(FrameRef, FrameRef),
    /// Goal target (3).
    GoalPosition(usize),
    /// Joint goal target (1).
    JointGoalTarget(usize),
    /// A body's axis (unit, in the body's frame) in the world (3).
    BodyAxis(usize, Vec3),
    /// Axis goal direction (3).
    AxisGoalDirection(usize),
    /// Actuator joints' normalised coordinate (1).
    JointFraction(usize),
}

impl SensorDef {
    /// Number of observation values this block produces.
    pub fn dim(&self) -> usize {
        match self {
            SensorDef::Position(_)
            | SensorDef::LinearVelocity(_)
            | SensorDef::AngularVelocity(_)
            | SensorDef::RelativePosition(..)
            | SensorDef::GoalPosition(_)
            | SensorDef::BodyAxis(..)
            | SensorDef::AxisGoalDirection(_) => 3,
            SensorDef::Quaternion(_) => 4,
            SensorDef::YawSinCos(_) => 2,
            SensorDef::JointPosition(_)
            | SensorDef::JointVelocity(_)
            | SensorDef::JointGoalTarget(_)
            | SensorDef::JointFraction(_) => 1,
        }
    }
}

/// Something a randomised target keeps away from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeepAway {
    /// A frame's position at the start of the episode.
    Frame(FrameRef),
    /// An earlier goal's target (index into [`TaskScene::goals`]).
    Goal(usize),
}

/// A goal with its frame resolved.
#[derive(Clone, Debug)]
pub struct GoalDef {
    /// The goal as authored.
    pub goal: Goal,
    /// The frame that must reach the target.
    pub frame: FrameRef,
    /// Reset randomisation of the target, with its keep-away list resolved.
    pub randomize: Option<(RandomizeTarget, Vec<(KeepAway, f32)>)>,
    /// The frame the target rides on (`Goal.relative_to`), if any.
    pub riding: Option<Riding>,
}

/// A target riding on a frame: where it is in the frame, and where in the world it can start.
#[derive(Clone, Debug)]
pub struct Riding {
    /// The body or site the target moves with.
    pub frame: FrameRef,
    /// Per world axis, the range holding every place the target can start: each start the frame can be drawn at
    /// (turned by its drawn yaw) with each target its ranges can draw in it.
    pub span: [Range; 3],
}

impl GoalDef {
    /// Where a target drawn at `local` in the goal's frame (the world's, or the frame it rides on, at `pose` of
    /// that frame's body) lies in the world.
    pub fn world_target(&self, local: Vec3, pose: &Pose) -> Vec3 {
        match &self.riding {
            Some(r) => pose.transform_point(r.frame.offset + local),
            None => local,
        }
    }

    /// Per axis, the range the target is drawn from at each reset, `None` where it stays as authored; in the frame
    /// it rides on, for a riding target.
    pub fn drawn_target(&self) -> [Option<Range>; 3] {
        self.randomize
            .as_ref()
            .map(|(r, _)| [r.x, r.y, r.z])
            .unwrap_or_default()
    }

    /// Per world axis, where the target can lie: its drawn range, or the authored coordinate where it is not drawn;
    /// for a riding target, where it can start ([`Riding::span`]).
    pub fn target_span(&self) -> [Range; 3] {
        match &self.riding {
            Some(r) => r.span,
            None => self.span_in_own_frame(),
        }
    }

    /// Per axis of the goal's own frame (the world's, or the frame it rides on), where the target can be drawn: its
    /// drawn range, or the authored coordinate.
    pub fn span_in_own_frame(&self) -> [Range; 3] {
        let t = self.goal.target;
        let drawn = self.drawn_target();
        std::array::from_fn(|k| drawn[k].unwrap_or(Range::new(t[k], t[k])))
    }
}

/// A joint goal with its joint resolved.
#[derive(Clone, Debug)]
pub struct JointGoalDef {
    /// The goal as authored.
    pub goal: JointGoal,
    /// Index into [`TaskScene::joints`]: a revolute or prismatic joint.
    pub joint: usize,
}

impl JointGoalDef {
    /// Where the target can lie: its drawn range, or the authored target where it is not drawn.
    pub fn target_span(&self) -> Range {
        let t = self.goal.target;
        self.goal.randomize.unwrap_or(Range::new(t, t))
    }

    /// How far joint coordinate `position` is from `target`: the plain difference along a prismatic joint, the
    /// shorter way round for a revolute one (its coordinate wraps at ±π, so 3.1 and -3.1 are 0.08 apart).
    pub fn miss(&self, scene: &TaskScene, position: f32, target: f32) -> f32 {
        let d = (position - target).abs();
        match scene.joints[self.joint].joint.kind {
            JointKind::Revolute { .. } => d.min(std::f32::consts::TAU - d),
            _ => d,
        }
    }
}

/// An axis goal with its body resolved and its vectors made unit.
#[derive(Clone, Debug)]
pub struct AxisGoalDef {
    /// The goal as authored.
    pub goal: AxisGoal,
    /// Index into [`TaskScene::bodies`]: a `Dynamic` body.
    pub body: usize,
    /// The axis, unit, in the body's frame.
    pub axis: Vec3,
    /// The target direction, unit, in the world, before the drawn yaw.
    pub direction: Vec3,
}

impl AxisGoalDef {
    /// The angle (radians) between the body's axis, at `rotation`, and `target`, a unit direction.
    pub fn miss(&self, rotation: Quat, target: Vec3) -> f32 {
        let axis = rotation * self.axis;
        // Not acos of the dot product, which cannot tell angles below a few 1e-4 rad apart in f32.
        axis.cross(target).length().atan2(axis.dot(target))
    }

    /// The target direction after a drawn turn of `yaw` about the world's z axis.
    pub fn turned(&self, yaw: f32) -> Vec3 {
        Quat::from_rotation_z(yaw) * self.direction
    }
}

/// A loaded, checked task: plain data the batched env builds its physics worlds from.
#[derive(Clone, Debug)]
pub struct TaskScene {
    /// Where it came from (a path, or `builtin:<name>`), for messages.
    pub source: String,
    /// Global settings.
    pub settings: TaskSettings,
    /// Bodies in file order.
    pub bodies: Vec<BodyDef>,
    /// Joints in file order.
    pub joints: Vec<JointDef>,
    /// Sites: name and frame.
    pub sites: Vec<(String, FrameRef)>,
    /// Action dimensions in order.
    pub actuators: Vec<ActuatorDef>,
    /// Observation blocks in order, with their authored form (for names).
    pub sensors: Vec<(Sensor, SensorDef)>,
    /// Goals in file order.
    pub goals: Vec<GoalDef>,
    /// Joint goals in file order (after the goals in draw order, reward and success).
    pub joint_goals: Vec<JointGoalDef>,
    /// Axis goals in file order (after the joint goals in draw order, reward and success).
    pub axis_goals: Vec<AxisGoalDef>,
}

impl TaskScene {
    /// How many goals the scene has, of every kind: success is all of them holding.
    pub fn goal_count(&self) -> usize {
        self.goals.len() + self.joint_goals.len() + self.axis_goals.len()
    }

    /// Loads and checks a scene file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        Self::from_ron(&Self::read_text(path)?, &path.display().to_string())
    }

    /// A scene file's text, read once: what [`from_ron`](Self::from_ron) checks and a run copies are then the
    /// same bytes, however the file changes meanwhile. Refuses what is not a file (or an unnamed pipe), more than
    /// [`MAX_SCENE_BYTES`], and text that is not UTF-8, naming where.
    pub fn read_text(path: impl AsRef<Path>) -> Result<String, SimError> {
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref();
        let file = path.display().to_string();
        // A device may never end (a link to /dev/zero), and opening a named pipe waits for a writer, forever if
        // none comes: a scene is a file, or an unnamed pipe (`--task <(...)`), which opens at once and ends when
        // its writer does.
        let kind = std::fs::metadata(path)
            .map_err(|source| SimError::Io {
                file: file.clone(),
                source,
            })?
            .file_type();
        let other = if kind.is_dir() {
            "a folder"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_fifo() && !unnamed_pipe(path) {
            "a named pipe (opening one waits for a writer, forever if none comes)"
        } else {
            ""
        };
        if !other.is_empty() {
            return Err(SimError::Io {
                file,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{other}, not a regular file: give a scene file (`*.scn.ron`)"),
                ),
            });
        }
        let bytes = limits::read_capped(path, &file)?;
        // A dataset given where its task was meant (`qamlab task d.npz`): named for what it is, not its encoding.
        if bytes.starts_with(b"PK\x03\x04") {
            return Err(SimError::Io {
                file,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a zip archive, as a dataset (.npz) is, not a scene file (`*.scn.ron`)",
                ),
            });
        }
        // Where the text stops being UTF-8, as a line and column (a file saved in another encoding, or damaged).
        String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
            SimError::Io {
                file: format!("{file}:{line}:{column}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not UTF-8 text here (a scene file is UTF-8; was it saved in another encoding?)",
                ),
            }
        })
    }

    /// Parses and checks scene text; `source` names it in errors. Refuses, before any check whose time grows
    /// faster than the scene, text over [`MAX_SCENE_BYTES`], more than [`MAX_ENTITIES`] entities or
    /// [`MAX_OF_EACH_KIND`] bodies, joints, sites or goals, and actions or observations wider than
    /// [`MAX_SPACE_WIDTH`].
    pub fn from_ron(text: &str, source: &str) -> Result<Self, SimError> {
        limits::check_size(text.len(), source)?;
        let entities = parse::parse(text, source)?;
        limits::check_counts(&entities, source)?;
        let scene = build::build(entities, source)?;
        limits::check_observation_width(&scene)?;
        Ok(scene)
    }

    /// Moves site `name` to `offset` in its body's frame, everywhere loading resolved it (the sensors and goals
    /// that use it), past the checks loading makes: for tests of what the physics does with values no scene may
    /// hold. Returns whether the site exists.
    #[doc(hidden)]
    pub fn move_site_unchecked(&mut self, name: &str, offset: Vec3) -> bool {
        let Some(site) = self.sites.iter_mut().find(|(n, _)| n == name) else {
            return false;
        };
        let old = site.1;
        site.1.offset = offset;
        let moved = |f: &mut FrameRef| {
            if *f == old {
                f.offset = offset;
            }
        };
        for (_, def) in &mut self.sensors {
            match def {
                SensorDef::Position(f) | SensorDef::LinearVelocity(f) => moved(f),
                SensorDef::RelativePosition(a, b) => {
                    moved(a);
                    moved(b);
                }
                _ => {}
            }
        }
        for goal in &mut self.goals {
            moved(&mut goal.frame);
        }
        true
    }

    /// The eight corners of [`collider_bounds`](Self::collider_bounds)' box (none for a body without a collider).
    pub fn collider_box_corners(&self, b: usize) -> impl Iterator<Item = Vec3> + use<> {
        self.collider_bounds(b).into_iter().flat_map(|(low, high)| {
            (0..8).map(move |i| {
                Vec3::new(
                    if i & 1 == 0 { low.x } else { high.x },
                    if i & 2 == 0 { low.y } else { high.y },
                    if i & 4 == 0 { low.z } else { high.z },
                )
            })
        })
    }

    /// The world-space axis-aligned box `(min, max)` around body `b`'s collider at its authored pose, if the body
    /// has a collider.
    pub fn collider_bounds(&self, b: usize) -> Option<(Vec3, Vec3)> {
        let def = &self.bodies[b];
        let collider = def.collider.as_ref()?;
        let (turn, centre) = (
            def.body.rotation,
            def.body.translation + def.body.rotation * collider.offset,
        );
        let around = |half: Vec3| Some((centre - half, centre + half));
        match &collider.shape {
            Shape::Cuboid { half_extents: h } => {
                let half = (0..8)
                    .map(|k| {
                        let sign = |bit: i32| if k & bit == 0 { -1.0 } else { 1.0 };
                        (turn * Vec3::new(sign(1) * h.x, sign(2) * h.y, sign(4) * h.z)).abs()
                    })
                    .fold(Vec3::ZERO, Vec3::max);
                around(half)
            }
            Shape::Ball { radius } => around(Vec3::splat(*radius)),
            Shape::Capsule {
                half_height,
                radius,
            } => around((turn * Vec3::Z * *half_height).abs() + Vec3::splat(*radius)),
            Shape::Cylinder {
                half_height,
                radius,
            } => {
                // The end discs: along each world axis, the axis' share of the height plus the discs' reach.
                let axis = turn * Vec3::Z;
                let disc = (Vec3::ONE - axis * axis).max(Vec3::ZERO).map(f32::sqrt) * *radius;
                around(axis.abs() * *half_height + disc)
            }
            Shape::ConvexHull { points } => {
                let at = points.iter().map(|&p| centre + turn * p);
                let min = at.clone().fold(Vec3::INFINITY, Vec3::min);
                let max = at.fold(Vec3::NEG_INFINITY, Vec3::max);
                Some((min, max))
            }
        }
    }
}

/// Body `b` and the bodies `Fixed` joints weld to it, directly or through others (`b` first): one rigid piece.
pub fn welded_group(joints: &[JointDef], b: usize) -> Vec<usize> {
    let mut group = vec![b];
    let mut grew = true;
    while grew {
        grew = false;
        for j in joints.iter().filter(|j| j.joint.kind == JointKind::Fixed) {
            for (from, to) in [(j.parent, j.child), (j.child, j.parent)] {
                if group.contains(&from) && !group.contains(&to) {
                    group.push(to);
                    grew = true;
                }
            }
        }
    }
    group
}

/// Per body (by index, `bodies` of them), the lowest index of its welded group: the bodies `Fixed` joints join,
/// directly or through others, which the physics keeps from touching one another (one rigid piece).
pub fn weld_groups(joints: &[JointDef], bodies: usize) -> Vec<usize> {
    joined_groups(joints, bodies, |kind| kind == JointKind::Fixed)
}

/// Per body (by index, `bodies` of them), the lowest index of the bodies joints of the kinds `joins` accepts join to
/// it, directly or through others. Union-find: near-linear in the joints, for scenes of many bodies.
fn joined_groups(
    joints: &[JointDef],
    bodies: usize,
    joins: impl Fn(JointKind) -> bool,
) -> Vec<usize> {
    fn root(group: &mut [usize], mut b: usize) -> usize {
        while group[b] != b {
            group[b] = group[group[b]];
            b = group[b];
        }
        b
    }
    let mut group: Vec<usize> = (0..bodies).collect();
    for j in joints.iter().filter(|j| joins(j.joint.kind)) {
        let (a, b) = (root(&mut group, j.parent), root(&mut group, j.child));
        group[a.max(b)] = a.min(b);
    }
    (0..bodies).map(|b| root(&mut group, b)).collect()
}

/// The scene's bodies in groups that always turn as one: bodies joined by prismatic and fixed joints, directly or
/// through others (a slide keeps its two bodies' relative turn, a weld all of their pose). Built once, in near-linear
/// time, for checks asked of many bodies.
#[derive(Clone, Debug)]
pub struct TurnGroups {
    /// Per body, its group's representative (a body index).
    group: Vec<usize>,
    /// Per representative, a body of the group that is not `Dynamic`, which holds the group's orientation, if any.
    holder: Vec<Option<usize>>,
}

impl TurnGroups {
    /// The groups of `bodies` under `joints`.
    pub fn new(joints: &[JointDef], bodies: &[BodyDef]) -> Self {
        let group = joined_groups(joints, bodies.len(), |kind| {
            !matches!(kind, JointKind::Revolute { .. })
        });
        // A spinning kinematic member turns the whole group with the clock: it is the holder that counts.
        let spins = |b: usize| bodies[b].spins();
        let mut holder: Vec<Option<usize>> = vec![None; bodies.len()];
        for (b, def) in bodies.iter().enumerate() {
            let slot = &mut holder[group[b]];
            if def.body.kind != BodyKind::Dynamic && slot.is_none_or(|h| spins(b) && !spins(h)) {
                *slot = Some(b);
            }
        }
        Self { group, holder }
    }

    /// Whether bodies `a` and `b` always turn as one.
    pub fn together(&self, a: usize, b: usize) -> bool {
        self.group[a] == self.group[b]
    }

    /// A body that is not `Dynamic` and turns as one with body `b` (`b` itself, if it is not `Dynamic`), if any: it
    /// holds `b`'s orientation. A spinning kinematic one is named before any other.
    pub fn held_by(&self, b: usize) -> Option<usize> {
        self.holder[self.group[b]]
    }
}

/// Whether `path` leads, through its links, to an unnamed pipe (`/dev/fd/63` from a shell's `<(...)`,
/// `/dev/stdin` fed by `|`): Linux names one `pipe:[inode]` where a link reaches it. Unlike a named pipe's, its
/// opening never waits for a writer. (Headless reads its files by the same rule.)
pub fn unnamed_pipe(path: &Path) -> bool {
    let mut at = path.to_path_buf();
    // Loading has already followed the whole chain (a loop is refused before this); the bound is a backstop.
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&at) else {
            return false;
        };
        if target.to_str().is_some_and(|t| t.starts_with("pipe:[")) {
            return true;
        }
        // A relative link is relative to the folder it is in.
        at = match at.parent() {
            Some(folder) => folder.join(&target),
            None => target,
        };
    }
    false
}

/// The registry of every authoring type, built once.
pub fn authoring_registry() -> &'static TypeRegistry {
    static REGISTRY: OnceLock<TypeRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = TypeRegistry::new();
        register_authoring_types(&mut registry);
        registry
    })
}
