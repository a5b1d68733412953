//! Loading a task scene: `.scn.ron` text -> reflected components -> a checked [`TaskScene`] with names resolved
//! to indices. Every mistake becomes a [`SimError`] naming the file, the entity and the field; nothing panics.

use std::any::TypeId;
use std::path::Path;
use std::sync::OnceLock;

use bevy::asset::{AssetPath, LoadFromPath, UntypedHandle};
use bevy::prelude::*;
use bevy::reflect::{FromReflect, PartialReflect, ReflectRef, TypeRegistry};
use bevy::world_serialization::serde::WorldDeserializer;
use bevy_rapier3d::rapier::prelude::{ColliderBuilder, GenericJoint, Pose};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeSeed;

use crate::authoring::*;
use crate::env::{KEEP_AWAY_DRAWS, Unmet, draw_start};
use crate::error::SimError;
use crate::missing_field::missing_field;

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
            | SensorDef::GoalPosition(_) => 3,
            SensorDef::Quaternion(_) => 4,
            SensorDef::YawSinCos(_) => 2,
            SensorDef::JointPosition(_)
            | SensorDef::JointVelocity(_)
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
}

impl TaskScene {
    /// Loads and checks a scene file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_ron(&text, &file)
    }

    /// Parses and checks scene text; `source` names it in errors.
    pub fn from_ron(text: &str, source: &str) -> Result<Self, SimError> {
        let entities = parse(text, source)?;
        build(entities, source)
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

/// The registry of every authoring type, built once.
pub fn authoring_registry() -> &'static TypeRegistry {
    static REGISTRY: OnceLock<TypeRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = TypeRegistry::new();
        register_authoring_types(&mut registry);
        registry
    })
}

/// Task scenes hold no asset handles; a handle in one resolves to a placeholder rather than loading anything.
struct NoAssets;

impl LoadFromPath for NoAssets {
    fn load_from_path_erased(
        &mut self,
        type_id: TypeId,
        _path: AssetPath<'static>,
    ) -> UntypedHandle {
        UntypedHandle::default_for_type(type_id)
    }
}

/// One scene entity's components, typed.
#[derive(Default)]
struct RawEntity {
    id: u64,
    settings: Option<TaskSettings>,
    body: Option<Body>,
    collider: Option<Collider>,
    joint: Option<Joint>,
    site: Option<Site>,
    actions: Option<ActionSpace>,
    observations: Option<ObservationSpace>,
    goal: Option<Goal>,
    randomize_pose: Option<RandomizePose>,
    randomize_target: Option<RandomizeTarget>,
}

impl RawEntity {
    /// `entity 123 ("cube")`: how errors name it.
    fn label(&self) -> String {
        let name = self
            .settings
            .as_ref()
            .map(|s| &s.name)
            .or(self.body.as_ref().map(|b| &b.name))
            .or(self.joint.as_ref().map(|j| &j.name))
            .or(self.site.as_ref().map(|s| &s.name))
            .or(self.goal.as_ref().map(|g| &g.name));
        match name {
            Some(name) => format!("entity {} (\"{name}\")", self.id),
            None => format!("entity {}", self.id),
        }
    }
}

/// [`RawEntity::label`] of an entity still in reflected form (its components not yet converted),
/// so that an error in converting one of them names the entity as later errors do.
fn reflected_label(id: u64, components: &[Box<dyn PartialReflect>]) -> String {
    let named = [
        TypeId::of::<TaskSettings>(),
        TypeId::of::<Body>(),
        TypeId::of::<Joint>(),
        TypeId::of::<Site>(),
        TypeId::of::<Goal>(),
    ];
    let name_of = |wanted: TypeId| {
        components.iter().find_map(|c| {
            if c.get_represented_type_info()?.type_id() != wanted {
                return None;
            }
            let ReflectRef::Struct(fields) = c.reflect_ref() else {
                return None;
            };
            fields.field("name")?.try_downcast_ref::<String>().cloned()
        })
    };
    match named.into_iter().find_map(name_of) {
        Some(name) => format!("entity {id} (\"{name}\")"),
        None => format!("entity {id}"),
    }
}

fn parse(text: &str, source: &str) -> Result<Vec<RawEntity>, SimError> {
    let registry = authoring_registry();
    let parse_error = |line: usize, column: usize, message: String| SimError::Parse {
        file: source.to_string(),
        line,
        column,
        entity: locate_entity(text, line),
        message,
    };
    // Editors on some systems start UTF-8 files with a byte-order mark, which RON does not expect.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut de = ron::de::Deserializer::from_str(text)
        .map_err(|e| parse_error(e.span.start.line, e.span.start.col, e.code.to_string()))?;
    let world = WorldDeserializer {
        type_registry: registry,
        load_from_path: &mut NoAssets,
    }
    .deserialize(&mut de)
    .map_err(|e| {
        let e = de.span_error(e);
        parse_error(
            e.span.start.line,
            e.span.start.col,
            explain_parse_error(e.code.to_string(), registry),
        )
    })?;
    // A second scene pasted after the first, or stray text, would otherwise be dropped without a word.
    de.end().map_err(|e| {
        let e = de.span_error(e);
        parse_error(
            e.span.start.line,
            e.span.start.col,
            format!("{} after the scene's closing `)`", e.code),
        )
    })?;
    if let Some(resource) = world.resources.first() {
        return Err(SimError::Invalid {
            file: source.to_string(),
            entity: "scene".into(),
            field: "resources".into(),
            message: format!(
                "task scenes hold no resources, found `{}`",
                resource.reflect_type_path()
            ),
        });
    }
    let mut out = Vec::with_capacity(world.entities.len());
    for (k, entity) in world.entities.iter().enumerate() {
        let label = reflected_label(entity.entity.to_bits(), &entity.components);
        // Errors name entities by id, so two entities with one id would be ambiguous.
        if world.entities[..k]
            .iter()
            .any(|e| e.entity == entity.entity)
        {
            return Err(SimError::Invalid {
                file: source.to_string(),
                entity: label,
                field: "id".into(),
                message: "the id is used twice; give each entity its own".into(),
            });
        }
        let mut raw = RawEntity {
            id: entity.entity.to_bits(),
            ..default()
        };
        for component in &entity.components {
            let info = component.get_represented_type_info();
            let type_name = info.map_or("unknown", |i| i.type_path_table().short_path());
            let error = |field: String, message: &str| SimError::Invalid {
                file: source.to_string(),
                entity: label.clone(),
                field,
                message: message.to_string(),
            };
            let invalid = |message: &str| error(type_name.to_string(), message);
            let type_id = info
                .map(|info| info.type_id())
                .ok_or_else(|| invalid("component of unknown type"))?;
            // Each authoring type is converted from its reflected (dynamic) form, which the deserializer builds
            // even with fields left out; a failed conversion is explained by the required field it lacks.
            let unconvertible =
                |component: &dyn PartialReflect| match missing_field(component, registry) {
                    Some(path) => error(
                        format!("{type_name}{path}"),
                        "is missing (the field has no default)",
                    ),
                    None => invalid("a field is missing or malformed"),
                };
            fn typed<T: FromReflect>(
                component: &dyn PartialReflect,
                slot: &mut Option<T>,
                unconvertible: &dyn Fn(&dyn PartialReflect) -> SimError,
                invalid: &dyn Fn(&str) -> SimError,
            ) -> Result<(), SimError> {
                let value = T::from_reflect(component).ok_or_else(|| unconvertible(component))?;
                if slot.replace(value).is_some() {
                    return Err(invalid("the component appears twice on this entity"));
                }
                Ok(())
            }
            let c = component.as_ref();
            if type_id == TypeId::of::<TaskSettings>() {
                typed(c, &mut raw.settings, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<Body>() {
                typed(c, &mut raw.body, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<Collider>() {
                typed(c, &mut raw.collider, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<Joint>() {
                typed(c, &mut raw.joint, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<Site>() {
                typed(c, &mut raw.site, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<ActionSpace>() {
                typed(c, &mut raw.actions, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<ObservationSpace>() {
                typed(c, &mut raw.observations, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<Goal>() {
                typed(c, &mut raw.goal, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<RandomizePose>() {
                typed(c, &mut raw.randomize_pose, &unconvertible, &invalid)?;
            } else if type_id == TypeId::of::<RandomizeTarget>() {
                typed(c, &mut raw.randomize_target, &unconvertible, &invalid)?;
            } else {
                return Err(invalid("not a task authoring component"));
            }
        }
        out.push(raw);
    }
    Ok(out)
}

/// A deserializer error made plainer: an unknown type gets the authoring components a scene can use (and loses
/// its empty `(stack: )`), an invalid entity key what ids are valid.
fn explain_parse_error(message: String, registry: &TypeRegistry) -> String {
    // Bevy reads an entity key as an entity's bits, in which 0 is no entity.
    if message.contains("invalid entity") {
        return format!("{message}: entity ids are whole numbers from 1");
    }
    if !message.contains("no registration found") {
        return message;
    }
    let mut known: Vec<&str> = registry
        .iter()
        .filter(|r| r.data::<ReflectComponent>().is_some())
        .map(|r| r.type_info().type_path_table().short_path())
        .collect();
    known.sort_unstable();
    format!(
        "{}; a task scene's components are qamlab_sim::authoring::{{{}}}",
        message.replace(" (stack: )", ""),
        known.join(", ")
    )
}

/// Finds the entity (and component) enclosing `line` in scene text, for parse errors: the last entity key
/// (`1234: (`) and component key (`"path::Type":`) at or before that line.
fn locate_entity(text: &str, line: usize) -> String {
    let mut entity = None;
    let mut component = None;
    for l in text.lines().take(line.max(1)) {
        let t = l.trim();
        if let Some((key, rest)) = t.split_once(':')
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_digit())
            && rest.trim_start().starts_with('(')
        {
            entity = Some(key.to_string());
            component = None;
        } else if t.starts_with('"')
            && let Some(end) = t[1..].find('"')
        {
            component = Some(t[1..1 + end].to_string());
        }
    }
    match (entity, component) {
        (Some(e), Some(c)) => format!("entity {e}, component {c}"),
        (Some(e), None) => format!("entity {e}"),
        _ => "scene".to_string(),
    }
}

/// Whether the points span three dimensions: a flat hull has no volume, hence no mass, and Rapier accepts it.
fn spans_a_volume(points: &[Vec3]) -> bool {
    let Some(&origin) = points.first() else {
        return false;
    };
    let farthest = |score: &dyn Fn(Vec3) -> f32| {
        points
            .iter()
            .map(|&p| (score(p), p))
            .fold(
                (0.0, origin),
                |best, next| if next.0 > best.0 { next } else { best },
            )
    };
    let (reach, a) = farthest(&|p| p.distance(origin));
    let (_, b) = farthest(&|p| (a - origin).cross(p - origin).length());
    let normal = (a - origin).cross(b - origin).normalize_or_zero();
    let (height, _) = farthest(&|p| normal.dot(p - origin).abs());
    // Relative to the hull's size, so millimetre-scale parts are judged like metre-scale ones.
    height > 1e-4 * reach
}

/// Longest episode a scene may ask for, in control steps.
pub const MAX_EPISODE_LENGTH: u32 = 100_000;
/// Most physics steps per control step.
pub const MAX_SUBSTEPS: u32 = 1_000;
/// Most Rapier solver iterations per physics step.
pub const MAX_SOLVER_ITERATIONS: u32 = 1_000;
/// Most constraint passes per solver iteration.
pub const MAX_SOLVER_PASSES: u32 = 1_000;
/// Strongest gravity a scene may ask for, in m/s² (about 100 g): far past any robot task, so a larger value is
/// a typo, and one the physics does not show (under 1e37 m/s² a free cube does not move at all).
pub const MAX_GRAVITY: f32 = 1_000.0;

/// The checks every scene field goes through, each error naming the file, the entity and the field.
struct Check<'a> {
    source: &'a str,
}

impl Check<'_> {
    /// An error in `field` of entity `raw`.
    fn err(&self, raw: &RawEntity, field: &str, message: String) -> SimError {
        SimError::Invalid {
            file: self.source.to_string(),
            entity: raw.label(),
            field: field.to_string(),
            message,
        }
    }

    /// An error of the scene as a whole (something missing from every entity).
    fn scene_err(&self, field: &str, message: String) -> SimError {
        SimError::Invalid {
            file: self.source.to_string(),
            entity: "scene".into(),
            field: field.into(),
            message,
        }
    }

    /// A range with finite bounds, `min <= max`, whose width `max - min` is finite too.
    fn range(&self, raw: &RawEntity, field: &str, r: &Range) -> Result<(), SimError> {
        if !(r.min.is_finite() && r.max.is_finite()) {
            Err(self.err(
                raw,
                field,
                format!("bounds must be finite, got [{}, {}]", r.min, r.max),
            ))
        } else if r.min > r.max {
            Err(self.err(raw, field, format!("min {} > max {}", r.min, r.max)))
        } else if !(r.max - r.min).is_finite() {
            // Draws compute min + (max - min) * u: a width past f32's range would make them infinite.
            Err(self.err(
                raw,
                field,
                format!(
                    "the width max - min of [{}, {}] overflows f32",
                    r.min, r.max
                ),
            ))
        } else {
            Ok(())
        }
    }

    /// A finite value above 0.
    fn positive(&self, raw: &RawEntity, field: &str, v: f32) -> Result<(), SimError> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(self.err(raw, field, format!("must be positive and finite, got {v}")))
        }
    }

    /// A finite value of 0 or more.
    fn non_negative(&self, raw: &RawEntity, field: &str, v: f32) -> Result<(), SimError> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(self.err(raw, field, format!("must be >= 0 and finite, got {v}")))
        }
    }

    /// A vector of finite components.
    fn finite3(&self, raw: &RawEntity, field: &str, v: Vec3) -> Result<(), SimError> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(self.err(raw, field, format!("must be finite, got {v}")))
        }
    }
}

/// Checks the parsed entities and resolves names to indices.
fn build(entities: Vec<RawEntity>, source: &str) -> Result<TaskScene, SimError> {
    let ck = Check { source };
    let settings_at = single(&ck, &entities, &|e| e.settings.is_some(), "TaskSettings")?;
    let actions_at = single(&ck, &entities, &|e| e.actions.is_some(), "ActionSpace")?;
    let observations_at = single(
        &ck,
        &entities,
        &|e| e.observations.is_some(),
        "ObservationSpace",
    )?;
    let settings = check_settings(&ck, &entities[settings_at])?;
    let (bodies, mut frames) = build_bodies(&ck, &entities)?;
    let sites = build_sites(&ck, &entities, &bodies, &mut frames)?;
    let joints = build_joints(&ck, &entities, &bodies)?;
    let actuators = build_actuators(&ck, &entities[actions_at], &bodies, &joints)?;
    let goals = build_goals(&ck, &entities, &bodies, &frames)?;
    let sensors = build_sensors(
        &ck,
        &entities[observations_at],
        &Named {
            bodies: &bodies,
            frames: &frames,
            joints: &joints,
            actuators: &actuators,
            goals: &goals,
        },
    )?;

    let scene = TaskScene {
        source: source.to_string(),
        settings,
        bodies,
        joints,
        sites,
        actuators,
        sensors,
        goals,
    };
    check_keep_away(&scene, &entities)?;
    Ok(scene)
}

/// The index of the one entity `pick` holds for (naming the second where there are several).
fn single(
    ck: &Check,
    entities: &[RawEntity],
    pick: &dyn Fn(&RawEntity) -> bool,
    what: &str,
) -> Result<usize, SimError> {
    let found: Vec<usize> = entities
        .iter()
        .enumerate()
        .filter(|(_, e)| pick(e))
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [i] => Ok(*i),
        [] => Err(ck.scene_err(
            what,
            format!("the scene needs one `{what}` component, found none"),
        )),
        [_, second, ..] => Err(ck.err(
            &entities[*second],
            what,
            format!("the scene needs one `{what}` component, found several"),
        )),
    }
}

/// The task's settings, checked.
fn check_settings(ck: &Check, raw: &RawEntity) -> Result<TaskSettings, SimError> {
    let settings = raw.settings.clone().expect("picked for having it");
    if settings.name.is_empty() {
        return Err(ck.err(raw, "TaskSettings.name", "must not be empty".into()));
    }
    // Upper bounds catch a typo (an extra digit or three) that would otherwise look like a hang.
    for (field, value, max) in [
        (
            "TaskSettings.episode_length",
            settings.episode_length,
            MAX_EPISODE_LENGTH,
        ),
        ("TaskSettings.substeps", settings.substeps, MAX_SUBSTEPS),
        (
            "TaskSettings.solver_iterations",
            settings.solver_iterations,
            MAX_SOLVER_ITERATIONS,
        ),
        (
            "TaskSettings.solver_passes",
            settings.solver_passes,
            MAX_SOLVER_PASSES,
        ),
    ] {
        if !(1..=max).contains(&value) {
            return Err(ck.err(raw, field, format!("must be from 1 to {max}, got {value}")));
        }
    }
    ck.positive(raw, "TaskSettings.control_dt", settings.control_dt)?;
    ck.finite3(raw, "TaskSettings.gravity", settings.gravity)?;
    if settings.gravity.length() > MAX_GRAVITY {
        return Err(ck.err(
            raw,
            "TaskSettings.gravity",
            format!(
                "must be at most {MAX_GRAVITY} m/s^2 strong (about 100 g), got {} (length {})",
                settings.gravity,
                settings.gravity.length()
            ),
        ));
    }
    Ok(settings)
}

/// Bodies and sites by name, with their frames: the two share one namespace.
type Frames = Vec<(String, FrameRef)>;

/// Bodies in file order, and the frames they name.
fn build_bodies(ck: &Check, entities: &[RawEntity]) -> Result<(Vec<BodyDef>, Frames), SimError> {
    // Bodies and sites share one namespace: both are frames.
    let mut bodies: Vec<BodyDef> = Vec::new();
    let mut frames: Vec<(String, FrameRef)> = Vec::new();
    for raw in entities {
        let Some(body) = &raw.body else {
            if raw.collider.is_some() {
                return Err(ck.err(
                    raw,
                    "Collider",
                    "a collider needs a `Body` on the same entity".into(),
                ));
            }
            if raw.randomize_pose.is_some() {
                return Err(ck.err(
                    raw,
                    "RandomizePose",
                    "pose randomisation needs a `Body` on the same entity".into(),
                ));
            }
            continue;
        };
        if body.name.is_empty() {
            return Err(ck.err(raw, "Body.name", "must not be empty".into()));
        }
        if frames.iter().any(|(n, _)| *n == body.name) {
            return Err(ck.err(
                raw,
                "Body.name",
                format!("the name \"{}\" is used twice", body.name),
            ));
        }
        ck.finite3(raw, "Body.translation", body.translation)?;
        if !(body.rotation.is_finite() && (body.rotation.length() - 1.0).abs() < 1e-3) {
            return Err(ck.err(
                raw,
                "Body.rotation",
                format!("must be a unit quaternion, got {}", body.rotation),
            ));
        }
        for (field, v) in [
            ("Body.gravity_scale", body.gravity_scale),
            ("Body.linear_damping", body.linear_damping),
            ("Body.angular_damping", body.angular_damping),
            ("Body.extra_mass", body.extra_mass),
        ] {
            if field == "Body.gravity_scale" {
                if !v.is_finite() {
                    return Err(ck.err(raw, field, format!("must be finite, got {v}")));
                }
            } else {
                ck.non_negative(raw, field, v)?;
            }
        }
        if let Some(c) = &raw.collider {
            check_collider(ck, raw, c)?;
        }
        let has_mass =
            body.extra_mass > 0.0 || raw.collider.as_ref().is_some_and(|c| c.density > 0.0);
        if body.kind == BodyKind::Dynamic && !has_mass {
            return Err(ck.err(
                raw,
                "Body.extra_mass",
                "a dynamic body needs mass: a collider with density > 0 or extra_mass > 0".into(),
            ));
        }
        if let Some(r) = &raw.randomize_pose {
            for (field, range) in [
                ("RandomizePose.x", r.x),
                ("RandomizePose.y", r.y),
                ("RandomizePose.z", r.z),
                ("RandomizePose.yaw", r.yaw),
            ] {
                if let Some(range) = range {
                    ck.range(raw, field, &range)?;
                }
            }
        }
        let mut keep_away = Vec::new();
        for (k, (name, d)) in raw
            .randomize_pose
            .iter()
            .flat_map(|r| &r.min_distance_from)
            .enumerate()
        {
            let field = format!("RandomizePose.min_distance_from[{k}]");
            ck.non_negative(raw, &field, *d)?;
            // Earlier bodies only: their poses are drawn first, so the check sees this episode's positions.
            let other = bodies
                .iter()
                .position(|b| b.body.name == *name)
                .ok_or_else(|| {
                    ck.err(
                        raw,
                        &field,
                        format!("no body named \"{name}\" earlier in the scene"),
                    )
                })?;
            keep_away.push((other, *d));
        }
        frames.push((
            body.name.clone(),
            FrameRef {
                body: bodies.len(),
                offset: Vec3::ZERO,
            },
        ));
        bodies.push(BodyDef {
            body: body.clone(),
            collider: raw.collider.clone(),
            randomize: raw.randomize_pose.clone(),
            keep_away,
        });
    }
    if bodies.is_empty() {
        return Err(ck.scene_err("Body", "the scene has no bodies".into()));
    }
    Ok((bodies, frames))
}

/// Sites in file order; each joins `frames`.
fn build_sites(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    frames: &mut Frames,
) -> Result<Vec<(String, FrameRef)>, SimError> {
    let mut sites = Vec::new();
    for raw in entities {
        let Some(site) = &raw.site else { continue };
        if site.name.is_empty() {
            return Err(ck.err(raw, "Site.name", "must not be empty".into()));
        }
        if frames.iter().any(|(n, _)| *n == site.name) {
            return Err(ck.err(
                raw,
                "Site.name",
                format!("the name \"{}\" is used twice", site.name),
            ));
        }
        let body = body_index(bodies, &site.body)
            .ok_or_else(|| ck.err(raw, "Site.body", format!("no body named \"{}\"", site.body)))?;
        ck.finite3(raw, "Site.offset", site.offset)?;
        let frame = FrameRef {
            body,
            offset: site.offset,
        };
        frames.push((site.name.clone(), frame));
        sites.push((site.name.clone(), frame));
    }
    Ok(sites)
}

/// Joints in file order, with their frames in each body's.
fn build_joints(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
) -> Result<Vec<JointDef>, SimError> {
    let mut joints: Vec<JointDef> = Vec::new();
    for raw in entities {
        let Some(joint) = &raw.joint else { continue };
        if joint.name.is_empty() {
            return Err(ck.err(raw, "Joint.name", "must not be empty".into()));
        }
        if joints.iter().any(|j| j.joint.name == joint.name) {
            return Err(ck.err(
                raw,
                "Joint.name",
                format!("the name \"{}\" is used twice", joint.name),
            ));
        }
        let parent = body_index(bodies, &joint.parent).ok_or_else(|| {
            ck.err(
                raw,
                "Joint.parent",
                format!("no body named \"{}\"", joint.parent),
            )
        })?;
        let child = body_index(bodies, &joint.child).ok_or_else(|| {
            ck.err(
                raw,
                "Joint.child",
                format!("no body named \"{}\"", joint.child),
            )
        })?;
        if parent == child {
            return Err(ck.err(
                raw,
                "Joint.child",
                "a joint needs two different bodies".into(),
            ));
        }
        for (field, b) in [("Joint.parent", parent), ("Joint.child", child)] {
            if bodies[b].randomize.is_some() {
                return Err(ck.err(
                    raw,
                    field,
                    format!(
                        "body \"{}\" has a RandomizePose, but a jointed body cannot be randomised (its reset pose \
                         would tear the joint): remove the RandomizePose or the joint",
                        bodies[b].body.name
                    ),
                ));
            }
        }
        ck.finite3(raw, "Joint.anchor", joint.anchor)?;
        let axis = match joint.kind {
            JointKind::Revolute { axis } | JointKind::Prismatic { axis } => {
                // A finite axis can still have a length past f32's range, which would normalise to zero.
                if !(axis.is_finite() && axis.length().is_finite() && axis.length() > 1e-6) {
                    return Err(ck.err(
                        raw,
                        "Joint.kind.axis",
                        format!("must be a non-zero vector of finite length, got {axis}"),
                    ));
                }
                axis.normalize()
            }
            JointKind::Fixed => Vec3::X,
        };
        if let Some(limits) = &joint.limits {
            ck.range(raw, "Joint.limits", limits)?;
            if limits.min > 0.0 || limits.max < 0.0 {
                return Err(ck.err(
                    raw,
                    "Joint.limits",
                    format!(
                        "[{}, {}] excludes 0, the joint's coordinate at the bodies' authored poses: the joint would snap into its limits at the first step; place the bodies within the limits or widen them",
                        limits.min, limits.max
                    ),
                ));
            }
        }
        // The joint frame in world coordinates at the authored pose, x along the axis; expressed in each body's
        // frame so that the joint coordinate is 0 at the authored pose.
        let world = Pose::from_parts(joint.anchor, GenericJoint::complete_ang_frame(axis));
        let pose_of = |b: usize| {
            Pose::from_parts(
                bodies[b].body.translation,
                bodies[b].body.rotation.normalize(),
            )
        };
        joints.push(JointDef {
            joint: joint.clone(),
            parent,
            child,
            frame1: pose_of(parent).inv_mul(&world),
            frame2: pose_of(child).inv_mul(&world),
        });
    }
    Ok(joints)
}

/// The action space's actuators in order, each checked able to act on its joints.
fn build_actuators(
    ck: &Check,
    raw: &RawEntity,
    bodies: &[BodyDef],
    joints: &[JointDef],
) -> Result<Vec<ActuatorDef>, SimError> {
    let space = raw.actions.as_ref().expect("picked for having it");
    if space.actuators.is_empty() {
        return Err(ck.err(
            raw,
            "ActionSpace.actuators",
            "the action space is empty".into(),
        ));
    }
    let mut actuators: Vec<ActuatorDef> = Vec::new();
    for (k, a) in space.actuators.iter().enumerate() {
        let field = |f: &str| format!("ActionSpace.actuators[{k}].{f}");
        if a.name.is_empty() {
            return Err(ck.err(raw, &field("name"), "must not be empty".into()));
        }
        if actuators.iter().any(|d| d.actuator.name == a.name) {
            return Err(ck.err(
                raw,
                &field("name"),
                format!("the name \"{}\" is used twice", a.name),
            ));
        }
        ck.range(raw, &field("range"), &a.range)?;
        ck.non_negative(raw, &field("stiffness"), a.stiffness)?;
        ck.non_negative(raw, &field("damping"), a.damping)?;
        ck.non_negative(raw, &field("max_force"), a.max_force)?;
        // A motor without force, or without the gain its control acts through, would ignore its action.
        if a.max_force == 0.0 {
            return Err(ck.err(
                raw,
                &field("max_force"),
                "is 0: the motor could exert no force, so the actuator would ignore its action"
                    .into(),
            ));
        }
        let (gain, value, kind) = match a.control {
            Control::Velocity { .. } => ("damping", a.damping, "velocity"),
            _ => ("stiffness", a.stiffness, "position"),
        };
        if value == 0.0 {
            return Err(ck.err(
                raw,
                &field(gain),
                format!(
                    "is 0: a {kind} control drives its joints through the motor's {gain}, so the actuator would \
                     ignore its action"
                ),
            ));
        }
        match a.control {
            Control::PositionDelta { scale } | Control::Velocity { scale } => {
                // A zero scale would make the actuator ignore its action.
                if !(scale.is_finite() && scale != 0.0) {
                    return Err(ck.err(
                        raw,
                        &field("control.scale"),
                        format!("must be finite and non-zero, got {scale}"),
                    ));
                }
            }
            Control::PositionAbsolute { at_min, at_max } => {
                if !(at_min.is_finite() && at_max.is_finite()) {
                    return Err(ck.err(raw, &field("control"), "targets must be finite".into()));
                }
            }
        }
        if a.joints.is_empty() {
            return Err(ck.err(
                raw,
                &field("joints"),
                "an actuator drives at least one joint".into(),
            ));
        }
        let mut idx = Vec::new();
        for (m, name) in a.joints.iter().enumerate() {
            let j = joint_index(joints, name).ok_or_else(|| {
                ck.err(
                    raw,
                    &field(&format!("joints[{m}]")),
                    format!("no joint named \"{name}\""),
                )
            })?;
            if joints[j].joint.kind == JointKind::Fixed {
                return Err(ck.err(
                    raw,
                    &field(&format!("joints[{m}]")),
                    format!("joint \"{name}\" is fixed"),
                ));
            }
            // A motor moves a dynamic body; between fixed or kinematic bodies it has nothing to move.
            let (parent, child) = (
                &bodies[joints[j].parent].body,
                &bodies[joints[j].child].body,
            );
            if parent.kind != BodyKind::Dynamic && child.kind != BodyKind::Dynamic {
                return Err(ck.err(
                    raw,
                    &field(&format!("joints[{m}]")),
                    format!(
                        "joint \"{name}\" joins \"{}\" ({:?}) and \"{}\" ({:?}): neither is Dynamic, so its motor \
                         could move nothing",
                        parent.name, parent.kind, child.name, child.kind
                    ),
                ));
            }
            // Two commands for one motor: the later would silently override the earlier.
            let driven_by = actuators
                .iter()
                .find(|d| d.joints.contains(&j))
                .map(|d| d.actuator.name.as_str())
                .or(idx.contains(&j).then_some(a.name.as_str()));
            if let Some(other) = driven_by {
                return Err(ck.err(
                    raw,
                    &field(&format!("joints[{m}]")),
                    format!(
                        "joint \"{name}\" is driven by actuator \"{other}\" already; a joint takes one actuator"
                    ),
                ));
            }
            idx.push(j);
        }
        actuators.push(ActuatorDef {
            actuator: a.clone(),
            joints: idx,
        });
    }
    Ok(actuators)
}

/// Goals in file order, each on something the robot can move.
fn build_goals(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    frames: &[(String, FrameRef)],
) -> Result<Vec<GoalDef>, SimError> {
    let mut goals: Vec<GoalDef> = Vec::new();
    for raw in entities {
        let Some(goal) = &raw.goal else {
            if raw.randomize_target.is_some() {
                return Err(ck.err(
                    raw,
                    "RandomizeTarget",
                    "target randomisation needs a `Goal` on the same entity".into(),
                ));
            }
            continue;
        };
        if goal.name.is_empty() {
            return Err(ck.err(raw, "Goal.name", "must not be empty".into()));
        }
        if goals.iter().any(|g| g.goal.name == goal.name) {
            return Err(ck.err(
                raw,
                "Goal.name",
                format!("the name \"{}\" is used twice", goal.name),
            ));
        }
        // `min_distance_from` names goals and frames alike.
        if frames.iter().any(|(n, _)| *n == goal.name) {
            return Err(ck.err(
                raw,
                "Goal.name",
                format!(
                    "the name \"{}\" is a body's or site's too; a goal needs a name of its own",
                    goal.name
                ),
            ));
        }
        let f = frame(ck, frames, raw, "Goal.frame", &goal.frame)?;
        // A goal on something the robot cannot move holds from the first step or never: no task to learn.
        let kind = bodies[f.body].body.kind;
        if kind != BodyKind::Dynamic {
            let body = &bodies[f.body].body.name;
            let (adjective, why) = match kind {
                BodyKind::Fixed => ("fixed", "never moves"),
                _ => ("kinematic", "forces, contacts and joints do not move"),
            };
            let what = if *body == goal.frame {
                format!("\"{body}\" is a {adjective} body")
            } else {
                format!(
                    "\"{}\" is a site on the {adjective} body \"{body}\"",
                    goal.frame
                )
            };
            return Err(ck.err(
                raw,
                "Goal.frame",
                format!(
                    "{what}, which {why}, so the goal would hold from the first step or never; name a \
                     body or site that moves (on a `Dynamic` body)"
                ),
            ));
        }
        ck.finite3(raw, "Goal.target", goal.target)?;
        ck.positive(raw, "Goal.tolerance", goal.tolerance)?;
        let randomize = match &raw.randomize_target {
            None => None,
            Some(r) => {
                for (field, range) in [
                    ("RandomizeTarget.x", r.x),
                    ("RandomizeTarget.y", r.y),
                    ("RandomizeTarget.z", r.z),
                ] {
                    if let Some(range) = range {
                        ck.range(raw, field, &range)?;
                    }
                }
                let mut away = Vec::new();
                for (k, (name, d)) in r.min_distance_from.iter().enumerate() {
                    let field = format!("RandomizeTarget.min_distance_from[{k}]");
                    ck.non_negative(raw, &field, *d)?;
                    let what = match goals.iter().position(|g| g.goal.name == *name) {
                        Some(g) => KeepAway::Goal(g),
                        None => KeepAway::Frame(
                            frames
                                .iter()
                                .find(|(n, _)| n == name)
                                .map(|(_, f)| *f)
                                .ok_or_else(|| {
                                    ck.err(
                                        raw,
                                        &field,
                                        format!("no body, site or earlier goal named \"{name}\""),
                                    )
                                })?,
                        ),
                    };
                    away.push((what, *d));
                }
                Some((r.clone(), away))
            }
        };
        goals.push(GoalDef {
            goal: goal.clone(),
            frame: f,
            randomize,
        });
    }

    if goals.is_empty() {
        // Success is "every goal holds": with none, every step would end a successful episode.
        return Err(ck.scene_err(
            "Goal",
            "the scene needs at least one `Goal`: success is when every goal holds".into(),
        ));
    }
    Ok(goals)
}

/// What a scene names, for the sensors to resolve.
#[derive(Clone, Copy)]
struct Named<'a> {
    bodies: &'a [BodyDef],
    frames: &'a [(String, FrameRef)],
    joints: &'a [JointDef],
    actuators: &'a [ActuatorDef],
    goals: &'a [GoalDef],
}

/// The observation space's sensors in order, their names resolved.
fn build_sensors(
    ck: &Check,
    raw: &RawEntity,
    named: &Named,
) -> Result<Vec<(Sensor, SensorDef)>, SimError> {
    let Named {
        bodies,
        frames,
        joints,
        actuators,
        goals,
    } = *named;
    let space = raw.observations.as_ref().expect("picked for having it");
    if space.sensors.is_empty() {
        return Err(ck.err(
            raw,
            "ObservationSpace.sensors",
            "the observation space is empty".into(),
        ));
    }
    let mut sensors = Vec::new();
    for (k, s) in space.sensors.iter().enumerate() {
        let field = |f: &str| format!("ObservationSpace.sensors[{k}].{f}");
        let body = |f: &str, name: &str| {
            body_index(bodies, name).ok_or_else(|| {
                let what = if frames.iter().any(|(n, _)| n == name) {
                    format!("\"{name}\" is a site; this sensor reads a body's orientation or spin")
                } else {
                    format!("no body named \"{name}\"")
                };
                ck.err(raw, &field(f), what)
            })
        };
        let joint = |name: &str| {
            joint_index(joints, name)
                .ok_or_else(|| ck.err(raw, &field("joint"), format!("no joint named \"{name}\"")))
        };
        let def = match s {
            Sensor::Position { frame: f } => {
                SensorDef::Position(frame(ck, frames, raw, &field("frame"), f)?)
            }
            Sensor::Quaternion { body: b } => SensorDef::Quaternion(body("body", b)?),
            Sensor::YawSinCos { body: b } => SensorDef::YawSinCos(body("body", b)?),
            Sensor::LinearVelocity { frame: f } => {
                SensorDef::LinearVelocity(frame(ck, frames, raw, &field("frame"), f)?)
            }
            Sensor::AngularVelocity { body: b } => SensorDef::AngularVelocity(body("body", b)?),
            Sensor::JointPosition { joint: j } => SensorDef::JointPosition(joint(j)?),
            Sensor::JointVelocity { joint: j } => SensorDef::JointVelocity(joint(j)?),
            Sensor::RelativePosition { from, to } => SensorDef::RelativePosition(
                frame(ck, frames, raw, &field("from"), from)?,
                frame(ck, frames, raw, &field("to"), to)?,
            ),
            Sensor::GoalPosition { goal } => SensorDef::GoalPosition(
                goals
                    .iter()
                    .position(|g| g.goal.name == *goal)
                    .ok_or_else(|| {
                        ck.err(raw, &field("goal"), format!("no goal named \"{goal}\""))
                    })?,
            ),
            Sensor::JointFraction { actuator } => {
                let a = actuators
                    .iter()
                    .position(|a| a.actuator.name == *actuator)
                    .ok_or_else(|| {
                        ck.err(
                            raw,
                            &field("actuator"),
                            format!("no actuator named \"{actuator}\""),
                        )
                    })?;
                for &j in &actuators[a].joints {
                    match joints[j].joint.limits {
                        Some(l) if l.max > l.min => {}
                        _ => {
                            return Err(ck.err(
                                raw,
                                &field("actuator"),
                                format!(
                                    "joint \"{}\" needs limits with max > min",
                                    joints[j].joint.name
                                ),
                            ));
                        }
                    }
                }
                SensorDef::JointFraction(a)
            }
        };
        sensors.push((s.clone(), def));
    }
    Ok(sensors)
}

/// The index of the body named `name`.
fn body_index(bodies: &[BodyDef], name: &str) -> Option<usize> {
    bodies.iter().position(|b| b.body.name == name)
}

/// The index of the joint named `name`.
fn joint_index(joints: &[JointDef], name: &str) -> Option<usize> {
    joints.iter().position(|j| j.joint.name == name)
}

/// The frame (body or site) named `name`, which `field` of `raw` refers to.
fn frame(
    ck: &Check,
    frames: &[(String, FrameRef)],
    raw: &RawEntity,
    field: &str,
    name: &str,
) -> Result<FrameRef, SimError> {
    frames
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| ck.err(raw, field, format!("no body or site named \"{name}\"")))
}

/// Trial resets drawn at load time to find keep-away rules the bounded redraws cannot meet.
const KEEP_AWAY_TRIALS: usize = 1000;
/// Trial resets in which a rule may stay unmet before the scene is refused (1 %).
const KEEP_AWAY_TOLERATED: usize = KEEP_AWAY_TRIALS / 100;

/// Refuses a `min_distance_from` that resets would often leave unmet: a reset keeps its last draw then, so the
/// rule would break silently in training data. Trial resets from a fixed seed keep the verdict deterministic.
fn check_keep_away(scene: &TaskScene, entities: &[RawEntity]) -> Result<(), SimError> {
    let has_rules = scene.bodies.iter().any(|b| !b.keep_away.is_empty())
        || scene.goals.iter().any(|g| {
            g.randomize
                .as_ref()
                .is_some_and(|(_, away)| !away.is_empty())
        });
    if !has_rules {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut targets: Vec<Vec3> = scene.goals.iter().map(|g| g.goal.target).collect();
    let mut unmet_bodies = vec![0usize; scene.bodies.len()];
    let mut unmet_goals = vec![0usize; scene.goals.len()];
    for _ in 0..KEEP_AWAY_TRIALS {
        draw_start(scene, &mut rng, &mut targets, |u| match u {
            Unmet::Body(i) => unmet_bodies[i] += 1,
            Unmet::Goal(k) => unmet_goals[k] += 1,
        });
    }
    let refuse = |raw: &RawEntity, field: &str, misses: usize| SimError::Invalid {
        file: scene.source.clone(),
        entity: raw.label(),
        field: field.into(),
        message: format!(
            "its {KEEP_AWAY_DRAWS} redraws per reset left it unmet in {misses} of {KEEP_AWAY_TRIALS} trial \
             resets (at most {KEEP_AWAY_TOLERATED} allowed), and an unmet reset starts from its last draw: \
             widen the ranges or lower the distances"
        ),
    };
    let with_body = entities.iter().filter(|e| e.body.is_some());
    for (raw, &misses) in with_body.zip(&unmet_bodies) {
        if misses > KEEP_AWAY_TOLERATED {
            return Err(refuse(raw, "RandomizePose.min_distance_from", misses));
        }
    }
    let with_goal = entities.iter().filter(|e| e.goal.is_some());
    for (raw, &misses) in with_goal.zip(&unmet_goals) {
        if misses > KEEP_AWAY_TOLERATED {
            return Err(refuse(raw, "RandomizeTarget.min_distance_from", misses));
        }
    }
    Ok(())
}

/// A collider's shape, offset and material, checked.
fn check_collider(ck: &Check, raw: &RawEntity, c: &Collider) -> Result<(), SimError> {
    match &c.shape {
        Shape::Cuboid { half_extents } => {
            ck.positive(raw, "Collider.shape.half_extents.x", half_extents.x)?;
            ck.positive(raw, "Collider.shape.half_extents.y", half_extents.y)?;
            ck.positive(raw, "Collider.shape.half_extents.z", half_extents.z)?;
        }
        Shape::Ball { radius } => ck.positive(raw, "Collider.shape.radius", *radius)?,
        Shape::Capsule {
            half_height,
            radius,
        }
        | Shape::Cylinder {
            half_height,
            radius,
        } => {
            ck.positive(raw, "Collider.shape.half_height", *half_height)?;
            ck.positive(raw, "Collider.shape.radius", *radius)?;
        }
        Shape::ConvexHull { points } => {
            if points.iter().any(|p| !p.is_finite())
                || !spans_a_volume(points)
                || ColliderBuilder::convex_hull(points).is_none()
            {
                return Err(ck.err(
                    raw,
                    "Collider.shape.points",
                    "need at least four finite, non-coplanar points".into(),
                ));
            }
        }
    }
    ck.finite3(raw, "Collider.offset", c.offset)?;
    for (field, v) in [
        ("Collider.density", c.density),
        ("Collider.friction", c.friction),
        ("Collider.restitution", c.restitution),
    ] {
        ck.non_negative(raw, field, v)?;
    }
    Ok(())
}
