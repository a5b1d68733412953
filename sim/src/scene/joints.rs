//! Joints, with their frames in each body's.

use bevy::prelude::*;
use bevy_rapier3d::rapier::prelude::{GenericJoint, Pose};

use super::build::{body_index, body_names};
use super::check::{Check, not_found};
use super::parse::RawEntity;
use super::{BodyDef, JointDef, TaskScene};
use crate::authoring::*;
use crate::error::SimError;

/// Joints in file order, with their frames in each body's.
pub(super) fn build_joints(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
) -> Result<Vec<JointDef>, SimError> {
    let mut joints: Vec<JointDef> = Vec::new();
    for raw in entities {
        let Some(joint) = &raw.joint else { continue };
        let joint_names = joints.iter().map(|j| j.joint.name.as_str());
        ck.unique_name(raw, "Joint.name", &joint.name, joint_names)?;
        let (parent, child) = resolve_ends(ck, raw, joint, bodies)?;
        check_no_twin(ck, raw, joint, (parent, child), &joints)?;
        ck.finite3(raw, "Joint.anchor", joint.anchor)?;
        let axis = unit_axis(ck, raw, joint)?;
        if let Some(limits) = &joint.limits {
            check_limits(ck, raw, limits)?;
        }
        if let Some(spring) = &joint.spring {
            check_spring(ck, raw, joint, spring, entities)?;
            check_spring_moves(ck, raw, bodies, (parent, child))?;
        }
        let (frame1, frame2) = body_frames(joint.anchor, axis, bodies, (parent, child));
        joints.push(JointDef {
            joint: joint.clone(),
            parent,
            child,
            frame1,
            frame2,
        });
    }
    check_randomised_trees(ck, entities, bodies, &joints)?;
    Ok(joints)
}

/// The indices of the joint's parent and child: two different bodies.
fn resolve_ends(
    ck: &Check,
    raw: &RawEntity,
    joint: &Joint,
    bodies: &[BodyDef],
) -> Result<(usize, usize), SimError> {
    let end = |field: &str, name: &str| {
        body_index(bodies, name)
            .ok_or_else(|| ck.err(raw, field, not_found("body", name, body_names(bodies))))
    };
    let parent = end("Joint.parent", &joint.parent)?;
    let child = end("Joint.child", &joint.child)?;
    if parent == child {
        return Err(ck.err(
            raw,
            "Joint.child",
            "a joint needs two different bodies".into(),
        ));
    }
    Ok((parent, child))
}

/// No earlier joint joins the same two bodies, either way round.
fn check_no_twin(
    ck: &Check,
    raw: &RawEntity,
    joint: &Joint,
    (parent, child): (usize, usize),
    earlier: &[JointDef],
) -> Result<(), SimError> {
    // Two joints between one pair of bodies fight each other; most often a copied joint kept its ends.
    let twin = earlier
        .iter()
        .find(|j| [j.parent, j.child] == [parent, child] || [j.parent, j.child] == [child, parent]);
    match twin {
        Some(twin) => Err(ck.err(
            raw,
            "Joint.child",
            format!(
                "joint \"{}\" already joins \"{}\" and \"{}\": two joints between one pair of bodies lock \
                 each other (was this joint copied without changing its parent and child?)",
                twin.joint.name, joint.parent, joint.child
            ),
        )),
        None => Ok(()),
    }
}

/// Per body, its joint tree: the same label for every body a chain of joints joins to it (union-find, so a scene
/// of many bodies and joints is labelled in about linear time).
fn tree_labels(bodies: usize, joints: &[JointDef]) -> Vec<usize> {
    let mut up: Vec<usize> = (0..bodies).collect();
    fn find(up: &mut [usize], mut b: usize) -> usize {
        while up[b] != b {
            up[b] = up[up[b]];
            b = up[b];
        }
        b
    }
    for j in joints {
        let (p, c) = (find(&mut up, j.parent), find(&mut up, j.child));
        up[p.max(c)] = p.min(c);
    }
    (0..bodies).map(|b| find(&mut up, b)).collect()
}

/// Per joint tree label (see [`tree_labels`]), the randomised bodies of that tree, in file order.
fn randomised_per_tree(bodies: &[BodyDef], labels: &[usize]) -> Vec<Vec<usize>> {
    let mut drawn = vec![Vec::new(); bodies.len()];
    for (b, def) in bodies.iter().enumerate() {
        if def.randomize.is_some() {
            drawn[labels[b]].push(b);
        }
    }
    drawn
}

/// Per body, the randomised body of its joint tree that carries it (`None` for that body itself, and where its
/// tree has none); loading leaves at most one in a tree.
fn carriers(bodies: &[BodyDef], joints: &[JointDef]) -> Vec<Option<usize>> {
    let labels = tree_labels(bodies.len(), joints);
    let drawn = randomised_per_tree(bodies, &labels);
    (0..bodies.len())
        .map(|b| drawn[labels[b]].first().copied().filter(|&r| r != b))
        .collect()
}

/// The root of body `b`'s joint tree, reached up its parents (`parent_of`: each body's parent through the first
/// joint it is the child of): a body that is no joint's child (`None` where the parents lead round a loop).
fn root_of(parent_of: &[Option<usize>], b: usize) -> Option<usize> {
    let mut at = b;
    // A chain without a loop visits each body once.
    for _ in 0..parent_of.len() {
        match parent_of[at] {
            Some(p) => at = p,
            None => return Some(at),
        }
    }
    None
}

impl TaskScene {
    /// Per body, the randomised body whose drawn pose moves it at reset: the root of its joint tree where that root
    /// has a RandomizePose (loading refuses one anywhere else in a tree), `None` for that root itself and for
    /// every other body. Its pose is the root's drawn pose times its authored pose relative to the root's.
    pub fn carried_by(&self) -> Vec<Option<usize>> {
        carriers(&self.bodies, &self.joints)
    }
}

/// Only the root of a joint tree (a body that is no joint's child) may have a RandomizePose, one a tree, and only
/// over dynamic bodies: a reset moves the whole tree rigidly with the root's drawn pose, so no joint tears. A body
/// keeping away from a body such a root moves must come after the root, whose draw places it.
fn check_randomised_trees(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    joints: &[JointDef],
) -> Result<(), SimError> {
    let with_joint: Vec<&RawEntity> = entities.iter().filter(|e| e.joint.is_some()).collect();
    let name = |b: usize| &bodies[b].body.name;
    // Each body's parent and the first joint (in file order) with it at an end, with that end's field.
    let mut parent_of: Vec<Option<usize>> = vec![None; bodies.len()];
    let mut first_joint: Vec<Option<(usize, &str)>> = vec![None; bodies.len()];
    for (k, j) in joints.iter().enumerate() {
        parent_of[j.child].get_or_insert(j.parent);
        first_joint[j.parent].get_or_insert((k, "Joint.parent"));
        first_joint[j.child].get_or_insert((k, "Joint.child"));
    }
    for (raw, def) in with_joint.iter().zip(joints) {
        if bodies[def.child].randomize.is_none() {
            continue;
        }
        let root = match root_of(&parent_of, def.child) {
            Some(root) => format!("here \"{}\"", name(root)),
            None => "this tree has none: its joints' parents lead round a loop".into(),
        };
        return Err(ck.err(
            raw,
            "Joint.child",
            format!(
                "body \"{}\" has a RandomizePose, but it is the child of joint \"{}\", and a pose drawn for it alone \
                 would tear the joint: only the root of a joint tree (a body that is no joint's child; {root}) may be \
                 randomised, and its draw moves every body joined to it as one; move the RandomizePose to the root, \
                 or remove it",
                name(def.child),
                def.joint.name
            ),
        ));
    }
    let labels = tree_labels(bodies.len(), joints);
    let drawn = randomised_per_tree(bodies, &labels);
    for m in 0..bodies.len() {
        let (Some(&root), Some((k, field))) = (drawn[labels[m]].first(), first_joint[m]) else {
            continue;
        };
        if m == root {
            continue;
        }
        if bodies[m].randomize.is_some() {
            return Err(ck.err(
                with_joint[k],
                field,
                format!(
                    "body \"{}\" has a RandomizePose, but so does \"{}\", joined to it: a reset moves a joint tree \
                     as one, by its root's draw, so only one body of a tree may be randomised; remove one",
                    name(m),
                    name(root)
                ),
            ));
        }
        let kind = bodies[m].body.kind;
        if kind != BodyKind::Dynamic {
            return Err(ck.err(
                with_joint[k],
                field,
                format!(
                    "body \"{}\" has a RandomizePose, which moves every body joined to it with it, but \"{}\", joined \
                     to it, is {kind:?}: only a tree whose other bodies are all Dynamic can be randomised; make \"{}\" \
                     Dynamic, or remove the RandomizePose",
                    name(root),
                    name(m),
                    name(m)
                ),
            ));
        }
    }
    check_keep_away_order(ck, entities, bodies, &carriers(bodies, joints))
}

/// A body keeping away from one that a randomised root carries (`carried_by`) comes after that root, whose draw
/// places it.
fn check_keep_away_order(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    carried_by: &[Option<usize>],
) -> Result<(), SimError> {
    let with_body = entities.iter().filter(|e| e.body.is_some());
    for ((b, def), raw) in bodies.iter().enumerate().zip(with_body) {
        for (k, &(other, _)) in def.keep_away.iter().enumerate() {
            let Some(root) = carried_by[other].filter(|&root| root > b) else {
                continue;
            };
            let (own, other, root) = (
                &def.body.name,
                &bodies[other].body.name,
                &bodies[root].body.name,
            );
            return Err(ck.err(
                raw,
                &format!("RandomizePose.min_distance_from[{k}]"),
                format!(
                    "\"{other}\" moves with \"{root}\", joined to it, whose pose is drawn after this body's: a body \
                     keeps its distance from bodies placed before it; move \"{root}\" above \"{own}\""
                ),
            ));
        }
    }
    Ok(())
}

/// The joint's axis, normalised (a fixed joint has none: x).
fn unit_axis(ck: &Check, raw: &RawEntity, joint: &Joint) -> Result<Vec3, SimError> {
    match joint.kind {
        JointKind::Revolute { axis } | JointKind::Prismatic { axis } => {
            // A finite axis can still have a length past f32's range, which would normalise to zero.
            if !(axis.is_finite() && axis.length().is_finite() && axis.length() > 1e-6) {
                return Err(ck.err(
                    raw,
                    "Joint.kind.axis",
                    format!("must be a non-zero vector of finite length, got {axis}"),
                ));
            }
            Ok(axis.normalize())
        }
        JointKind::Fixed => Ok(Vec3::X),
    }
}

/// The joint's limits: a valid range holding 0, the coordinate at the authored poses.
fn check_limits(ck: &Check, raw: &RawEntity, limits: &Range) -> Result<(), SimError> {
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
    Ok(())
}

/// A joint's spring: on a revolute or prismatic joint no actuator drives, with finite gains of 0 or more, not both 0,
/// and a rest within half a turn on a revolute joint (beyond a limit is a preload).
fn check_spring(
    ck: &Check,
    raw: &RawEntity,
    joint: &Joint,
    spring: &JointSpring,
    entities: &[RawEntity],
) -> Result<(), SimError> {
    if joint.kind == JointKind::Fixed {
        return Err(ck.err(
            raw,
            "Joint.spring",
            "a Fixed joint does not move, so a spring on it would do nothing; remove the spring, or make the \
             joint Revolute or Prismatic"
                .into(),
        ));
    }
    ck.non_negative(raw, "Joint.spring.stiffness", spring.stiffness)?;
    ck.non_negative(raw, "Joint.spring.damping", spring.damping)?;
    if spring.stiffness == 0.0 && spring.damping == 0.0 {
        return Err(ck.err(
            raw,
            "Joint.spring",
            "stiffness and damping are both 0: the spring would do nothing; give it a stiffness (to pull the \
             joint toward `rest`), a damping (to slow it), or both, or remove it"
                .into(),
        ));
    }
    check_rest(ck, raw, joint, spring.rest)?;
    // The spring is the joint's motor, which an actuator's commands would overwrite at every step.
    let driver = entities
        .iter()
        .filter_map(|e| e.actions.as_ref())
        .flat_map(|space| &space.actuators)
        .find(|a| a.joints.contains(&joint.name));
    if let Some(a) = driver {
        return Err(ck.err(
            raw,
            "Joint.spring",
            format!(
                "joint \"{}\" is driven by actuator \"{}\", and a joint's motor is its actuator's: the actuator \
                 would override the spring; remove the spring, or take the joint out of the actuator",
                joint.name, a.name
            ),
        ));
    }
    Ok(())
}

/// A spring's joint joins a Dynamic body, which it can move: between fixed or kinematic bodies it would do nothing.
fn check_spring_moves(
    ck: &Check,
    raw: &RawEntity,
    bodies: &[BodyDef],
    (parent, child): (usize, usize),
) -> Result<(), SimError> {
    let (parent, child) = (&bodies[parent].body, &bodies[child].body);
    if parent.kind != BodyKind::Dynamic && child.kind != BodyKind::Dynamic {
        return Err(ck.err(
            raw,
            "Joint.spring",
            format!(
                "the joint joins \"{}\" ({:?}) and \"{}\" ({:?}): neither is Dynamic, so its spring could move \
                 nothing; remove the spring, or make one of them Dynamic",
                parent.name, parent.kind, child.name, child.kind
            ),
        ));
    }
    Ok(())
}

/// A spring's rest: finite, and within half a turn on a revolute joint, whose angle wraps at ±π (it never reads a
/// rest past that, so the spring could not settle the joint there). It may lie beyond a limit: a preload.
fn check_rest(ck: &Check, raw: &RawEntity, joint: &Joint, rest: f32) -> Result<(), SimError> {
    const FIELD: &str = "Joint.spring.rest";
    if !rest.is_finite() {
        return Err(ck.err(raw, FIELD, format!("must be finite, got {rest}")));
    }
    ck.within(raw, FIELD, rest)?;
    // A hair of slack for a rounded pi (3.1416).
    let half_turn = std::f32::consts::PI + 1e-3;
    if matches!(joint.kind, JointKind::Revolute { .. }) && rest.abs() > half_turn {
        return Err(ck.err(
            raw,
            FIELD,
            format!(
                "{rest} rad is past half a turn (3.1416 rad): a revolute joint's angle wraps at ±π, so it never \
                 reads such a rest, and the spring could not settle the joint there (angles are in radians: \
                 degrees written?); bring it within [-3.1416, 3.1416]"
            ),
        ));
    }
    // A rest beyond a limit is a preload (a button's spring pressing it against its stop): allowed.
    Ok(())
}

/// The joint frame in the parent's and in the child's frame.
fn body_frames(
    anchor: Vec3,
    axis: Vec3,
    bodies: &[BodyDef],
    (parent, child): (usize, usize),
) -> (Pose, Pose) {
    // The joint frame in world coordinates at the authored pose, x along the axis; expressed in each body's
    // frame so that the joint coordinate is 0 at the authored pose.
    let world = Pose::from_parts(anchor, GenericJoint::complete_ang_frame(axis));
    let pose_of = |b: usize| {
        Pose::from_parts(
            bodies[b].body.translation,
            bodies[b].body.rotation.normalize(),
        )
    };
    (
        pose_of(parent).inv_mul(&world),
        pose_of(child).inv_mul(&world),
    )
}
