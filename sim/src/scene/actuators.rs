//! The action space: actuators with their joints resolved.

use super::build::joint_index;
use super::check::{Check, not_found};
use super::parse::RawEntity;
use super::{ActuatorDef, BodyDef, JointDef};
use crate::authoring::*;
use crate::error::SimError;

/// The action space's actuators in order, each checked able to act on its joints.
pub(super) fn build_actuators(
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
        let actuator_names = actuators.iter().map(|d| d.actuator.name.as_str());
        ck.unique_name(raw, &field("name"), &a.name, actuator_names)?;
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
                ck.within(raw, &field("control.scale"), scale)?;
            }
            Control::PositionAbsolute { at_min, at_max } => {
                if !(at_min.is_finite() && at_max.is_finite()) {
                    return Err(ck.err(raw, &field("control"), "targets must be finite".into()));
                }
                ck.within(raw, &field("control.at_min"), at_min)?;
                ck.within(raw, &field("control.at_max"), at_max)?;
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
                    not_found("joint", name, joints.iter().map(|j| j.joint.name.as_str())),
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
