//! The observation space: sensors with their names resolved.

use super::build::{body_index, body_names, frame, joint_index};
use super::check::{Check, not_found};
use super::parse::RawEntity;
use super::{ActuatorDef, BodyDef, FrameRef, GoalDef, JointDef, SensorDef};
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
}

/// The observation space's sensors in order, their names resolved.
pub(super) fn build_sensors(
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
                    not_found("body", name, body_names(bodies))
                };
                ck.err(raw, &field(f), what)
            })
        };
        let joint = |name: &str| {
            joint_index(joints, name).ok_or_else(|| {
                let known = joints.iter().map(|j| j.joint.name.as_str());
                ck.err(raw, &field("joint"), not_found("joint", name, known))
            })
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
            Sensor::RelativePosition { from, to } => {
                let (a, b) = (
                    frame(ck, frames, raw, &field("from"), from)?,
                    frame(ck, frames, raw, &field("to"), to)?,
                );
                // A frame's position relative to itself is always zero: an observation that says nothing.
                if from == to {
                    return Err(ck.err(
                        raw,
                        &field("to"),
                        format!(
                            "is \"{to}\", as `from` is: the relative position of a frame to itself is always 0"
                        ),
                    ));
                }
                SensorDef::RelativePosition(a, b)
            }
            Sensor::GoalPosition { goal } => SensorDef::GoalPosition(
                goals
                    .iter()
                    .position(|g| g.goal.name == *goal)
                    .ok_or_else(|| {
                        let known = goals.iter().map(|g| g.goal.name.as_str());
                        ck.err(raw, &field("goal"), not_found("goal", goal, known))
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
                            not_found(
                                "actuator",
                                actuator,
                                actuators.iter().map(|a| a.actuator.name.as_str()),
                            ),
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
