//! The observation space: sensors with their names resolved.

use bevy::math::Vec3;

use super::build::{body_index, body_names, frame, joint_index};
use super::check::{Check, direction, not_found};
use super::parse::RawEntity;
use super::{
    ActuatorDef, AxisGoalDef, BodyDef, FrameRef, GoalDef, JointDef, JointGoalDef, SensorDef,
};
use crate::authoring::*;
use crate::error::SimError;

/// What a scene names, for the sensors to resolve.
#[derive(Clone, Copy)]
pub(super) struct Named<'a> {
    pub(super) bodies: &'a [BodyDef],
    pub(super) frames: &'a [(String, FrameRef)],
    pub(super) joints: &'a [JointDef],
    pub(super) actuators: &'a [ActuatorDef],
    pub(super) goals: &'a [GoalDef],
    pub(super) joint_goals: &'a [JointGoalDef],
    pub(super) axis_goals: &'a [AxisGoalDef],
}

/// The observation space's sensors in order, their names resolved.
pub(super) fn build_sensors(
    ck: &Check,
    raw: &RawEntity,
    named: &Named,
) -> Result<Vec<(Sensor, SensorDef)>, SimError> {
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
        let resolver = SensorNames { ck, raw, named, k };
        sensors.push((s.clone(), resolver.resolve(s)?));
    }
    Ok(sensors)
}

/// Resolves the names the `k`th sensor refers to; each error names the sensor's field.
struct SensorNames<'a> {
    ck: &'a Check<'a>,
    raw: &'a RawEntity,
    named: &'a Named<'a>,
    k: usize,
}

impl SensorNames<'_> {
    /// The sensor with its names resolved to indices and frames.
    fn resolve(&self, s: &Sensor) -> Result<SensorDef, SimError> {
        Ok(match s {
            Sensor::Position { frame: f } => SensorDef::Position(self.frame("frame", f)?),
            Sensor::Quaternion { body: b } => SensorDef::Quaternion(self.body("body", b)?),
            Sensor::YawSinCos { body: b } => SensorDef::YawSinCos(self.body("body", b)?),
            Sensor::LinearVelocity { frame: f } => {
                SensorDef::LinearVelocity(self.frame("frame", f)?)
            }
            Sensor::AngularVelocity { body: b } => {
                SensorDef::AngularVelocity(self.body("body", b)?)
            }
            Sensor::JointPosition { joint: j } => SensorDef::JointPosition(self.joint(j)?),
            Sensor::JointVelocity { joint: j } => SensorDef::JointVelocity(self.joint(j)?),
            Sensor::RelativePosition { from, to } => self.relative_position(from, to)?,
            Sensor::GoalPosition { goal } => SensorDef::GoalPosition(self.goal(goal)?),
            Sensor::JointGoalTarget { goal } => SensorDef::JointGoalTarget(self.joint_goal(goal)?),
            Sensor::BodyAxis { body, axis } => self.body_axis(body, *axis)?,
            Sensor::AxisGoalDirection { goal } => {
                SensorDef::AxisGoalDirection(self.axis_goal(goal)?)
            }
            Sensor::JointFraction { actuator } => self.joint_fraction(actuator)?,
        })
    }

    /// The position of frame `to` relative to frame `from`, two different frames.
    fn relative_position(&self, from: &str, to: &str) -> Result<SensorDef, SimError> {
        let (a, b) = (self.frame("from", from)?, self.frame("to", to)?);
        // A frame's position relative to itself is always zero: an observation that says nothing.
        if from == to {
            return Err(self.err(
                "to",
                format!(
                    "is \"{to}\", as `from` is: the relative position of a frame to itself is always 0"
                ),
            ));
        }
        Ok(SensorDef::RelativePosition(a, b))
    }

    /// Where within their limits the joints of `actuator` are; each of them needs limits.
    fn joint_fraction(&self, actuator: &str) -> Result<SensorDef, SimError> {
        let Named {
            joints, actuators, ..
        } = *self.named;
        let a = actuators
            .iter()
            .position(|a| a.actuator.name == *actuator)
            .ok_or_else(|| {
                let known = actuators.iter().map(|a| a.actuator.name.as_str());
                self.err("actuator", not_found("actuator", actuator, known))
            })?;
        for &j in &actuators[a].joints {
            match joints[j].joint.limits {
                Some(l) if l.max > l.min => {}
                _ => {
                    return Err(self.err(
                        "actuator",
                        format!(
                            "joint \"{}\" needs limits with max > min",
                            joints[j].joint.name
                        ),
                    ));
                }
            }
        }
        Ok(SensorDef::JointFraction(a))
    }

    /// The body or site `name`, read from field `f`.
    fn frame(&self, f: &str, name: &str) -> Result<FrameRef, SimError> {
        frame(self.ck, self.named.frames, self.raw, &self.field(f), name)
    }

    /// The index of body `name`, read from field `f`; a site's name is refused as one.
    fn body(&self, f: &str, name: &str) -> Result<usize, SimError> {
        let Named { bodies, frames, .. } = *self.named;
        body_index(bodies, name).ok_or_else(|| {
            let what = if let Some((_, site)) = frames.iter().find(|(n, _)| n == name) {
                format!(
                    "\"{name}\" is a site, a point on \"{}\"; this sensor reads a body's orientation or spin: \
                     name the body",
                    bodies[site.body].body.name
                )
            } else {
                not_found("body", name, body_names(bodies))
            };
            self.err(f, what)
        })
    }

    /// The index of joint `name`.
    fn joint(&self, name: &str) -> Result<usize, SimError> {
        let joints = self.named.joints;
        joint_index(joints, name).ok_or_else(|| {
            let known = joints.iter().map(|j| j.joint.name.as_str());
            self.err("joint", not_found("joint", name, known))
        })
    }

    /// The index of goal `name`; another kind of goal's name is refused, with the sensor that reads it.
    fn goal(&self, name: &str) -> Result<usize, SimError> {
        let goals = self.named.goals;
        let found = goals.iter().position(|g| g.goal.name == *name);
        let known = goals.iter().map(|g| g.goal.name.as_str());
        self.goal_of_kind(found, name, "goal", known)
    }

    /// The index of joint goal `name`; another kind of goal's name is refused, with the sensor that reads it.
    fn joint_goal(&self, name: &str) -> Result<usize, SimError> {
        let joint_goals = self.named.joint_goals;
        let found = joint_goals.iter().position(|g| g.goal.name == *name);
        let known = joint_goals.iter().map(|g| g.goal.name.as_str());
        self.goal_of_kind(found, name, "joint goal", known)
    }

    /// The index of axis goal `name`; another kind of goal's name is refused, with the sensor that reads it.
    fn axis_goal(&self, name: &str) -> Result<usize, SimError> {
        let axis_goals = self.named.axis_goals;
        let found = axis_goals.iter().position(|g| g.goal.name == *name);
        let known = axis_goals.iter().map(|g| g.goal.name.as_str());
        self.goal_of_kind(found, name, "axis goal", known)
    }

    /// `found`, the index of goal `name` among the goals of kind `kind`; when it is none, an error that names the
    /// sensor reading `name` if it is a goal of another kind, else the nearest of the `known` names.
    fn goal_of_kind<'n>(
        &self,
        found: Option<usize>,
        name: &str,
        kind: &str,
        known: impl Iterator<Item = &'n str>,
    ) -> Result<usize, SimError> {
        let Named {
            goals,
            joint_goals,
            axis_goals,
            ..
        } = *self.named;
        found.ok_or_else(|| {
            let other = if goals.iter().any(|g| g.goal.name == *name) {
                Some(("Goal", "a point", "GoalPosition"))
            } else if joint_goals.iter().any(|g| g.goal.name == *name) {
                Some(("JointGoal", "one joint coordinate", "JointGoalTarget"))
            } else if axis_goals.iter().any(|g| g.goal.name == *name) {
                Some(("AxisGoal", "a direction", "AxisGoalDirection"))
            } else {
                None
            };
            let message = match other {
                Some((component, target, sensor)) => {
                    let article = if component.starts_with('A') { "an" } else { "a" };
                    format!(
                        "\"{name}\" is {article} `{component}`, whose target is {target}: read it with \
                         `{sensor}(goal: \"{name}\")`"
                    )
                }
                None => not_found(kind, name, known),
            };
            self.err("goal", message)
        })
    }

    /// Where `axis` of body `name` points; the axis needs a direction.
    fn body_axis(&self, name: &str, axis: Vec3) -> Result<SensorDef, SimError> {
        let b = self.body("body", name)?;
        let unit = direction(axis).map_err(|why| self.err("axis", why))?;
        Ok(SensorDef::BodyAxis(b, unit))
    }

    /// The sensor's field `f`, for messages.
    fn field(&self, f: &str) -> String {
        format!("ObservationSpace.sensors[{}].{f}", self.k)
    }

    /// An error in the sensor's field `f`.
    fn err(&self, f: &str, message: String) -> SimError {
        self.ck.err(self.raw, &self.field(f), message)
    }
}
