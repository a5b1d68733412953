//! Bodies (with their colliders and pose randomisation) and sites: the frames a scene names.

use std::collections::{HashMap, HashSet};

use bevy::prelude::*;
use bevy_rapier3d::rapier::prelude::ColliderBuilder;

use super::build::{Frames, body_index, body_names};
use super::check::{Check, LARGEST, MAX_GRAVITY, not_found};
use super::parse::RawEntity;
use super::{BodyDef, FrameRef};
use crate::authoring::*;
use crate::error::SimError;

/// Bodies in file order, and the frames they name; `settings` are the scene's, checked (a body's gravity scale
/// multiplies its gravity, and a kinematic motion is bounded by its physics step).
pub(super) fn build_bodies(
    ck: &Check,
    entities: &[RawEntity],
    settings: &TaskSettings,
) -> Result<(Vec<BodyDef>, Frames), SimError> {
    let gravity = settings.gravity.length();
    // Bodies and sites share one namespace: both are frames.
    let mut bodies: Vec<BodyDef> = Vec::new();
    let mut frames: Vec<(String, FrameRef)> = Vec::new();
    // The names so far, in a set: a scan of every earlier name for each body took seconds for tens of thousands.
    let mut names: HashSet<&str> = HashSet::new();
    for raw in entities {
        let Some(body) = &raw.body else {
            check_needs_no_body(ck, raw)?;
            continue;
        };
        ck.unique_name(raw, "Body.name", &body.name, taken(&names, &body.name))?;
        names.insert(&body.name);
        check_pose(ck, raw, body)?;
        check_gravity_scale(ck, raw, body, gravity)?;
        check_mass_and_damping(ck, raw, body)?;
        if let Some(r) = &raw.randomize_pose {
            check_randomize_ranges(ck, raw, r)?;
        }
        check_motion(ck, raw, body, settings)?;
        let keep_away = resolve_keep_away(ck, raw, body, entities, &bodies)?;
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
            motion: raw.kinematic_motion.clone(),
        });
    }
    if bodies.is_empty() {
        return Err(ck.scene_err("Body", "the scene has no bodies".into()));
    }
    Ok((bodies, frames))
}

/// Refuses the components that only make sense beside a `Body` on an entity without one.
fn check_needs_no_body(ck: &Check, raw: &RawEntity) -> Result<(), SimError> {
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
    if raw.kinematic_motion.is_some() {
        return Err(ck.err(
            raw,
            "KinematicMotion",
            "a motion needs a `Kinematic` `Body` on the same entity".into(),
        ));
    }
    Ok(())
}

/// How far a rotation's length may be from 1.
const UNIT_TOLERANCE: f32 = 1e-3;

/// `x` to five decimals, without trailing zeros (`0.70711`, `0.0`).
fn digits(x: f32) -> String {
    let text = format!("{x:.5}");
    // No "-0.0" for a value that rounds to 0.
    let text = text
        .strip_prefix('-')
        .filter(|t| t.bytes().all(|b| b == b'0' || b == b'.'))
        .unwrap_or(&text);
    let text = text.trim_end_matches('0');
    if text.ends_with('.') {
        format!("{text}0")
    } else {
        text.to_string()
    }
}

/// A body's authored pose: a finite translation and a unit rotation.
fn check_pose(ck: &Check, raw: &RawEntity, body: &Body) -> Result<(), SimError> {
    ck.finite3(raw, "Body.translation", body.translation)?;
    let length = body.rotation.length();
    if !(body.rotation.is_finite() && (length - 1.0).abs() < UNIT_TOLERANCE) {
        // Its unit form, where it has one: a quaternion written to two decimals is off by more than the tolerance.
        let unit = if body.rotation.is_finite() && length > 0.0 {
            let q = body.rotation / length;
            format!(
                ": write ({}, {}, {}, {}), its unit form",
                digits(q.x),
                digits(q.y),
                digits(q.z),
                digits(q.w)
            )
        } else {
            String::new()
        };
        return Err(ck.err(
            raw,
            "Body.rotation",
            format!(
                "must be a unit quaternion (x, y, z, w) of length 1 within {UNIT_TOLERANCE}, got {} of length \
                 {length}{unit}",
                body.rotation
            ),
        ));
    }
    Ok(())
}

/// A body's gravity scale: finite, and not carrying the gravity it feels past the scene's bound.
fn check_gravity_scale(
    ck: &Check,
    raw: &RawEntity,
    body: &Body,
    gravity: f32,
) -> Result<(), SimError> {
    // A gravity scale may be 0 or negative (no or reversed gravity); damping and mass may not.
    let gravity_scale = body.gravity_scale;
    if !gravity_scale.is_finite() {
        return Err(ck.err(
            raw,
            "Body.gravity_scale",
            format!("must be finite, got {gravity_scale}"),
        ));
    }
    // The scene's gravity is bounded; a scale must not carry a body's past that bound (1e30 pinned a cube to
    // the table, 1e19 flung a finger tens of kilometres).
    let felt = gravity * gravity_scale.abs();
    if felt > MAX_GRAVITY {
        return Err(ck.err(
            raw,
            "Body.gravity_scale",
            format!(
                "gives the body a gravity of {gravity_scale} x {gravity} = {felt} m/s^2: it must be at most \
                 {MAX_GRAVITY} m/s^2 (about 100 g), as the scene's own"
            ),
        ));
    }
    Ok(())
}

/// A body's damping, extra mass and collider; a dynamic body must have some mass.
fn check_mass_and_damping(ck: &Check, raw: &RawEntity, body: &Body) -> Result<(), SimError> {
    for (field, v) in [
        ("Body.linear_damping", body.linear_damping),
        ("Body.angular_damping", body.angular_damping),
        ("Body.extra_mass", body.extra_mass),
    ] {
        ck.non_negative(raw, field, v)?;
    }
    if let Some(c) = &raw.collider {
        check_collider(ck, raw, c)?;
    }
    let has_mass = body.extra_mass > 0.0 || raw.collider.as_ref().is_some_and(|c| c.density > 0.0);
    if body.kind == BodyKind::Dynamic && !has_mass {
        return Err(ck.err(
            raw,
            "Body.extra_mass",
            "a dynamic body needs mass: a collider with density > 0 or extra_mass > 0".into(),
        ));
    }
    Ok(())
}

/// The ranges a pose randomisation draws from.
fn check_randomize_ranges(ck: &Check, raw: &RawEntity, r: &RandomizePose) -> Result<(), SimError> {
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
    Ok(())
}

/// Most a spin may turn its body in one physics step: a quarter turn. The physics reads a kinematic body's angular
/// velocity off its turn between two steps, the short way round, so past half a turn a step it reads the spin
/// backwards (and contacts with it push the wrong way); a quarter turn keeps well clear of that.
const MAX_TURN_PER_STEP: f32 = std::f32::consts::FRAC_PI_2;

/// Fewest physics steps a sway's period may span: a sine sampled more coarsely is not the motion written (at two
/// steps a period, a sway with phase 0 stands still; at three it moves in jerks).
const MIN_STEPS_PER_SWAY: f32 = 8.0;

/// A body's [`KinematicMotion`]: only on a `Kinematic` body, with something in it, its values finite, its spin at
/// most [`MAX_TURN_PER_STEP`] a physics step, its sway's period at least [`MIN_STEPS_PER_SWAY`] steps and its reach
/// (the farthest its start can be drawn, plus the farthest the sway takes it from there) within the scene's 10 km.
fn check_motion(
    ck: &Check,
    raw: &RawEntity,
    body: &Body,
    settings: &TaskSettings,
) -> Result<(), SimError> {
    let Some(motion) = &raw.kinematic_motion else {
        return Ok(());
    };
    if body.kind != BodyKind::Kinematic {
        return Err(ck.err(
            raw,
            "KinematicMotion",
            format!(
                "the body \"{}\" is {:?}: only a `Kinematic` body follows an authored motion (a dynamic one is \
                 moved by forces and contacts, a fixed one never moves); make it `kind: Kinematic`",
                body.name, body.kind
            ),
        ));
    }
    if motion.spin.is_none() && motion.sway.is_none() {
        return Err(ck.err(
            raw,
            "KinematicMotion",
            "gives neither a `spin` nor a `sway`: write one (e.g. `spin: Some((0.0, 0.0, 1.0))`), or remove the \
             component"
                .into(),
        ));
    }
    let step = settings.control_dt / settings.substeps as f32;
    if let Some(spin) = motion.spin {
        ck.finite3(raw, "KinematicMotion.spin", spin)?;
        let turn = spin.length() * step;
        if turn > MAX_TURN_PER_STEP {
            return Err(ck.err(
                raw,
                "KinematicMotion.spin",
                format!(
                    "{} rad/s turns the body {turn} rad in a physics step ({step} s): at most a quarter turn \
                     (pi/2 rad) a step, past which the physics reads the turn backwards; spin at most {} rad/s, or \
                     take more substeps",
                    spin.length(),
                    MAX_TURN_PER_STEP / step
                ),
            ));
        }
    }
    if let Some(sway) = motion.sway {
        ck.finite3(raw, "KinematicMotion.sway.amplitude", sway.amplitude)?;
        if !sway.phase.is_finite() {
            return Err(ck.err(
                raw,
                "KinematicMotion.sway.phase",
                format!("must be finite, got {}", sway.phase),
            ));
        }
        ck.within(raw, "KinematicMotion.sway.phase", sway.phase)?;
        // The farthest the start can be, per axis: where it is authored, or the farthest its draw can put it; the
        // sway takes the origin up to `amplitude * (1 + |sin(phase)|)` from it.
        let drawn = raw
            .randomize_pose
            .as_ref()
            .map_or([None; 3], |r| [r.x, r.y, r.z]);
        let start = Vec3::from_array(std::array::from_fn(|k| {
            drawn[k].map_or(body.translation[k].abs(), |r| r.min.abs().max(r.max.abs()))
        }));
        let reach = start + sway.amplitude.abs() * (1.0 + sway.phase.sin().abs());
        if reach.max_element() > LARGEST {
            return Err(ck.err(
                raw,
                "KinematicMotion.sway.amplitude",
                format!(
                    "sways the body's origin out to {reach} (its farthest start plus the farthest the sway takes it \
                     from there), past {LARGEST} m: float32 physics loses millimetres out there"
                ),
            ));
        }
        ck.positive(raw, "KinematicMotion.sway.period", sway.period)?;
        let steps = sway.period / step;
        if steps < MIN_STEPS_PER_SWAY {
            return Err(ck.err(
                raw,
                "KinematicMotion.sway.period",
                format!(
                    "{} s spans {steps} physics steps of {step} s: a sway needs at least {MIN_STEPS_PER_SWAY}, or \
                     the steps sample another motion; make it at least {} s, or take more substeps",
                    sway.period,
                    MIN_STEPS_PER_SWAY * step
                ),
            ));
        }
    }
    Ok(())
}

/// The body's `min_distance_from` rules as `(index of the earlier body, distance)` pairs.
fn resolve_keep_away(
    ck: &Check,
    raw: &RawEntity,
    body: &Body,
    entities: &[RawEntity],
    earlier: &[BodyDef],
) -> Result<Vec<(usize, f32)>, SimError> {
    let rules = raw.randomize_pose.iter().flat_map(|r| &r.min_distance_from);
    let mut keep_away = Vec::new();
    for (k, (name, d)) in rules.enumerate() {
        let field = format!("RandomizePose.min_distance_from[{k}]");
        ck.non_negative(raw, &field, *d)?;
        // Earlier bodies only: their poses are drawn first, so the check sees this episode's positions.
        let other = body_index(earlier, name).ok_or_else(|| {
            let message = keep_away_refusal(name, &body.name, entities, earlier);
            ck.err(raw, &field, message)
        })?;
        keep_away.push((other, *d));
    }
    Ok(keep_away)
}

/// Why body `own` cannot keep away from `name`, which is none of the `earlier` bodies: it is `own` itself,
/// comes later in the file, or names no body.
fn keep_away_refusal(name: &str, own: &str, entities: &[RawEntity], earlier: &[BodyDef]) -> String {
    if name == own {
        return "a body cannot keep away from itself".into();
    }
    let later = entities
        .iter()
        .filter_map(|e| e.body.as_ref())
        .any(|b| b.name == name);
    if later {
        format!(
            "\"{name}\" comes later in the file: a body keeps its distance from the bodies before it, whose \
             poses are drawn first; move \"{name}\" above \"{own}\""
        )
    } else {
        not_found("earlier body", name, body_names(earlier))
    }
}

/// Sites in file order; each joins `frames`.
pub(super) fn build_sites(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    frames: &mut Frames,
) -> Result<Vec<(String, FrameRef)>, SimError> {
    let mut sites = Vec::new();
    // Names and bodies looked up in maps, not scanned for each site.
    let mut names: HashSet<String> = frames.iter().map(|(n, _)| n.clone()).collect();
    let mut body_at: HashMap<&str, usize> = HashMap::new();
    for (k, b) in bodies.iter().enumerate() {
        // The first of a name, as `body_index` finds it (names are unique by now).
        body_at.entry(b.body.name.as_str()).or_insert(k);
    }
    for raw in entities {
        let Some(site) = &raw.site else { continue };
        ck.unique_name(raw, "Site.name", &site.name, taken(&names, &site.name))?;
        names.insert(site.name.clone());
        let body = body_at.get(site.body.as_str()).copied().ok_or_else(|| {
            ck.err(
                raw,
                "Site.body",
                not_found("body", &site.body, body_names(bodies)),
            )
        })?;
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

/// `name` where `names` holds it, else nothing: the names [`Check::unique_name`] needs to see, found in a set.
fn taken<'n, S>(names: &HashSet<S>, name: &'n str) -> impl Iterator<Item = &'n str> + use<'n, S>
where
    S: std::borrow::Borrow<str> + Eq + std::hash::Hash,
{
    names.contains(name).then_some(name).into_iter()
}

/// A collider's shape, offset and material, checked.
fn check_collider(ck: &Check, raw: &RawEntity, c: &Collider) -> Result<(), SimError> {
    match &c.shape {
        Shape::Cuboid { half_extents } => {
            ck.size(raw, "Collider.shape.half_extents.x", half_extents.x)?;
            ck.size(raw, "Collider.shape.half_extents.y", half_extents.y)?;
            ck.size(raw, "Collider.shape.half_extents.z", half_extents.z)?;
        }
        Shape::Ball { radius } => ck.size(raw, "Collider.shape.radius", *radius)?,
        Shape::Capsule {
            half_height,
            radius,
        }
        | Shape::Cylinder {
            half_height,
            radius,
        } => {
            ck.size(raw, "Collider.shape.half_height", *half_height)?;
            ck.size(raw, "Collider.shape.radius", *radius)?;
        }
        Shape::ConvexHull { points } => {
            for p in points.iter().filter(|p| p.is_finite()) {
                ck.within(raw, "Collider.shape.points", p.abs().max_element())?;
            }
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
