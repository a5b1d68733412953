//! The build of a [`TaskScene`] from parsed entities, the task's settings, and name lookups the builders share.

use super::actuators::build_actuators;
use super::bodies::{build_bodies, build_sites};
use super::check::*;
use super::goals::{
    build_axis_goals, build_goals, build_joint_goals, check_some_goal, fill_riding_spans,
};
use super::joints::build_joints;
use super::keep_away::check_keep_away;
use super::parse::RawEntity;
use super::sensors::{Named, build_sensors};
use super::{BodyDef, FrameRef, JointDef, TaskScene};
use crate::authoring::TaskSettings;
use crate::error::SimError;

/// Checks the parsed entities and resolves names to indices.
pub(super) fn build(entities: Vec<RawEntity>, source: &str) -> Result<TaskScene, SimError> {
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
    let (bodies, mut frames) = build_bodies(&ck, &entities, &settings)?;
    let sites = build_sites(&ck, &entities, &bodies, &mut frames)?;
    let joints = build_joints(&ck, &entities, &bodies)?;
    let actuators = build_actuators(&ck, &entities[actions_at], &bodies, &joints)?;
    let goals = build_goals(&ck, &entities, &bodies, &joints, &frames)?;
    let joint_goals = build_joint_goals(&ck, &entities, &bodies, &joints, &goals, &frames)?;
    let axis_goals = build_axis_goals(
        &ck,
        &entities,
        &bodies,
        &joints,
        (&goals, &joint_goals),
        &frames,
    )?;
    check_some_goal(&ck, &goals, &joint_goals, &axis_goals)?;
    let sensors = build_sensors(
        &ck,
        &entities[observations_at],
        &Named {
            bodies: &bodies,
            frames: &frames,
            joints: &joints,
            actuators: &actuators,
            goals: &goals,
            joint_goals: &joint_goals,
            axis_goals: &axis_goals,
        },
    )?;

    let mut scene = TaskScene {
        source: source.to_string(),
        settings,
        bodies,
        joints,
        sites,
        actuators,
        sensors,
        goals,
        joint_goals,
        axis_goals,
    };
    fill_riding_spans(&mut scene);
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
        [_, second, ..] => {
            let on: Vec<String> = found.iter().map(|&i| entities[i].label()).collect();
            Err(ck.err(
                &entities[*second],
                what,
                format!(
                    "the scene needs one `{what}` component, found {} (on {}): keep one",
                    found.len(),
                    on.join(", ")
                ),
            ))
        }
    }
}

/// The task's settings, checked.
fn check_settings(ck: &Check, raw: &RawEntity) -> Result<TaskSettings, SimError> {
    let settings = raw.settings.clone().expect("picked for having it");
    ck.non_empty(raw, "TaskSettings.name", &settings.name)?;
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
    check_physics_step(ck, raw, &settings)?;
    // Its own bound, in its own units, below the lengths' one.
    if !settings.gravity.is_finite() || settings.gravity.length() > MAX_GRAVITY {
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

/// A physics step (`control_dt / substeps`) of at least [`MIN_PHYSICS_STEP`] and at most [`MAX_PHYSICS_STEP`]: a
/// longer one runs without a word, and wrongly, or not at all (bodies asleep after one step).
fn check_physics_step(
    ck: &Check,
    raw: &RawEntity,
    settings: &TaskSettings,
) -> Result<(), SimError> {
    let (dt, substeps) = (settings.control_dt, settings.substeps);
    let step = dt / substeps as f32;
    if step < MIN_PHYSICS_STEP * (1.0 - 1e-5) {
        return Err(ck.err(
            raw,
            "TaskSettings.control_dt",
            format!(
                "the physics step, control_dt / substeps = {dt} / {substeps} = {step} s, must be at least \
                 {MIN_PHYSICS_STEP} s: an episode of such steps is over before anything moves (control_dt is in \
                 seconds: 0.05 is 50 ms)"
            ),
        ));
    }
    // A hair of slack, so that 0.5 / 5 passes in float32.
    if step <= MAX_PHYSICS_STEP * (1.0 + 1e-5) {
        return Ok(());
    }
    let needed = (dt / MAX_PHYSICS_STEP * (1.0 - 1e-5)).ceil();
    let fix = if needed <= MAX_SUBSTEPS as f32 {
        format!("raise substeps to {needed} or more, or shorten control_dt")
    } else {
        format!("shorten control_dt (substeps go up to {MAX_SUBSTEPS})")
    };
    // Whole seconds for a control step most likely mean milliseconds.
    let units = if dt >= 1.0 {
        format!(" (control_dt is in seconds: {dt} ms is {})", dt / 1000.0)
    } else {
        String::new()
    };
    Err(ck.err(
        raw,
        "TaskSettings.control_dt",
        format!(
            "the physics step, control_dt / substeps = {dt} / {substeps} = {step} s, must be at most \
             {MAX_PHYSICS_STEP} s: longer steps integrate motors and contacts wrongly, and from 0.5 s every body \
             sleeps after its first step, so nothing moves; {fix}{units}"
        ),
    ))
}

/// Bodies and sites by name, with their frames: the two share one namespace.
pub(super) type Frames = Vec<(String, FrameRef)>;

/// The index of the body named `name`.
pub(super) fn body_index(bodies: &[BodyDef], name: &str) -> Option<usize> {
    bodies.iter().position(|b| b.body.name == name)
}

/// The bodies' names, in file order.
pub(super) fn body_names(bodies: &[BodyDef]) -> impl Iterator<Item = &str> {
    bodies.iter().map(|b| b.body.name.as_str())
}

/// The index of the joint named `name`.
pub(super) fn joint_index(joints: &[JointDef], name: &str) -> Option<usize> {
    joints.iter().position(|j| j.joint.name == name)
}

/// The frame (body or site) named `name`, which `field` of `raw` refers to.
pub(super) fn frame(
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
        .ok_or_else(|| {
            let known = frames.iter().map(|(n, _)| n.as_str());
            ck.err(raw, field, not_found("body or site", name, known))
        })
}
