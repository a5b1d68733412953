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
        let parent = body_index(bodies, &joint.parent).ok_or_else(|| {
            ck.err(
                raw,
                "Joint.parent",
                not_found("body", &joint.parent, body_names(bodies)),
            )
        })?;
        let child = body_index(bodies, &joint.child).ok_or_else(|| {
            ck.err(
                raw,
                "Joint.child",
                not_found("body", &joint.child, body_names(bodies)),
            )
        })?;
        if parent == child {
            return Err(ck.err(
                raw,
                "Joint.child",
                "a joint needs two different bodies".into(),
            ));
        }
        // Two joints between one pair of bodies fight each other; most often a copied joint kept its ends.
        if let Some(twin) = joints.iter().find(|j| {
            [j.parent, j.child] == [parent, child] || [j.parent, j.child] == [child, parent]
        }) {
            return Err(ck.err(
                raw,
                "Joint.child",
                format!(
                    "joint \"{}\" already joins \"{}\" and \"{}\": two joints between one pair of bodies lock \
                     each other (was this joint copied without changing its parent and child?)",
                    twin.joint.name, joint.parent, joint.child
                ),
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
