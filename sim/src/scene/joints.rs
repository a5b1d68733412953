//! Joints, with their frames in each body's.

use bevy::prelude::*;
use bevy_rapier3d::rapier::prelude::{GenericJoint, Pose};

use super::build::{body_index, body_names};
use super::check::{Check, not_found};
use super::parse::RawEntity;
use super::{BodyDef, JointDef};
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
        check_ends_not_randomised(ck, raw, (parent, child), bodies)?;
        ck.finite3(raw, "Joint.anchor", joint.anchor)?;
        let axis = unit_axis(ck, raw, joint)?;
        if let Some(limits) = &joint.limits {
            check_limits(ck, raw, limits)?;
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

/// Neither body of the joint has its pose randomised at reset.
fn check_ends_not_randomised(
    ck: &Check,
    raw: &RawEntity,
    (parent, child): (usize, usize),
    bodies: &[BodyDef],
) -> Result<(), SimError> {
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
