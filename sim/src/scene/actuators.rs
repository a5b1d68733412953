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
        check_motor(ck, raw, a, &field)?;
        check_control(ck, raw, &a.control, &field)?;
        let driven = Driven {
            ck,
            raw,
            field: &field,
            bodies,
            joints,
            earlier: &actuators,
        };
        let idx = driven.resolve(a)?;
        actuators.push(ActuatorDef {
            actuator: a.clone(),
            joints: idx,
        });
    }
    Ok(actuators)
}

/// An actuator's motor: non-negative gains and force, and neither the force nor the gain its control acts
/// through zero. `field` names a field of this actuator.
fn check_motor(
    ck: &Check,
    raw: &RawEntity,
    a: &Actuator,
    field: &dyn Fn(&str) -> String,
) -> Result<(), SimError> {
    ck.non_negative(raw, &field("stiffness"), a.stiffness)?;
    ck.non_negative(raw, &field("damping"), a.damping)?;
    ck.non_negative(raw, &field("max_force"), a.max_force)?;
    // A motor without force, or without the gain its control acts through, would ignore its action.
    if a.max_force == 0.0 {
        return Err(ck.err(
            raw,
            &field("max_force"),
            "is 0: the motor could exert no force, so the actuator would ignore its action".into(),
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
    Ok(())
}

/// An actuator's control: a finite, non-zero scale, or finite absolute targets, all within the scene's bound.
fn check_control(
    ck: &Check,
    raw: &RawEntity,
    control: &Control,
    field: &dyn Fn(&str) -> String,
) -> Result<(), SimError> {
    match *control {
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
    Ok(())
}

/// Resolves the joints one actuator drives, checking that its motor can move each and that no other actuator
/// drives it.
struct Driven<'a> {
    ck: &'a Check<'a>,
    raw: &'a RawEntity,
    /// A field of this actuator, by its name within the actuator.
    field: &'a dyn Fn(&str) -> String,
    bodies: &'a [BodyDef],
    joints: &'a [JointDef],
    /// The actuators before this one.
    earlier: &'a [ActuatorDef],
}

impl Driven<'_> {
    /// The indices of `a`'s joints, in its order.
    fn resolve(&self, a: &Actuator) -> Result<Vec<usize>, SimError> {
        if a.joints.is_empty() {
            return Err(self.err("joints", "an actuator drives at least one joint".into()));
        }
        let mut idx = Vec::new();
        for (m, name) in a.joints.iter().enumerate() {
            let at = format!("joints[{m}]");
            let j = joint_index(self.joints, name).ok_or_else(|| {
                let known = self.joints.iter().map(|j| j.joint.name.as_str());
                self.err(&at, not_found("joint", name, known))
            })?;
            self.check_movable(&at, name, j)?;
            self.check_undriven(&at, name, j, &a.name, &idx)?;
            idx.push(j);
        }
        Ok(idx)
    }

    /// Joint `j` (`name`, the actuator's `at`) is not fixed and joins a dynamic body, so a motor can move it.
    fn check_movable(&self, at: &str, name: &str, j: usize) -> Result<(), SimError> {
        let joint = &self.joints[j];
        if joint.joint.kind == JointKind::Fixed {
            return Err(self.err(at, format!("joint \"{name}\" is fixed")));
        }
        // A motor moves a dynamic body; between fixed or kinematic bodies it has nothing to move.
        let (parent, child) = (
            &self.bodies[joint.parent].body,
            &self.bodies[joint.child].body,
        );
        if parent.kind != BodyKind::Dynamic && child.kind != BodyKind::Dynamic {
            return Err(self.err(
                at,
                format!(
                    "joint \"{name}\" joins \"{}\" ({:?}) and \"{}\" ({:?}): neither is Dynamic, so its motor \
                     could move nothing",
                    parent.name, parent.kind, child.name, child.kind
                ),
            ));
        }
        Ok(())
    }

    /// Joint `j` is driven neither by an earlier actuator nor already by this one (`own`, whose joints so far are
    /// `so_far`).
    fn check_undriven(
        &self,
        at: &str,
        name: &str,
        j: usize,
        own: &str,
        so_far: &[usize],
    ) -> Result<(), SimError> {
        // Two commands for one motor: the later would silently override the earlier.
        let driven_by = self
            .earlier
            .iter()
            .find(|d| d.joints.contains(&j))
            .map(|d| d.actuator.name.as_str())
            .or(so_far.contains(&j).then_some(own));
        match driven_by {
            Some(other) => Err(self.err(
                at,
                format!(
                    "joint \"{name}\" is driven by actuator \"{other}\" already; a joint takes one actuator"
                ),
            )),
            None => Ok(()),
        }
    }

    /// An error in field `f` of this actuator.
    fn err(&self, f: &str, message: String) -> SimError {
        self.ck.err(self.raw, &(self.field)(f), message)
    }
}
