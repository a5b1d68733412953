//! Goals, with their frames and target randomisation resolved, and joint goals, with their joints.

use bevy::math::Vec3;

use super::build::frame;
use super::check::{Check, direction, not_found};
use super::parse::RawEntity;
use super::{
    AxisGoalDef, BodyDef, FrameRef, GoalDef, JointDef, JointGoalDef, KeepAway, Riding, TaskScene,
    TurnGroups, welded_group,
};
use crate::authoring::*;
use crate::error::SimError;

/// Goals in file order, each on something the robot can move (none is refused later, by [`check_some_goal`]).
pub(super) fn build_goals(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    joints: &[JointDef],
    frames: &[(String, FrameRef)],
) -> Result<Vec<GoalDef>, SimError> {
    let mut goals: Vec<GoalDef> = Vec::new();
    for raw in entities {
        let Some(goal) = &raw.goal else {
            if raw.randomize_target.is_some() {
                let why = if raw.joint_goal.is_some() {
                    "target randomisation needs a `Goal` on the same entity (a `JointGoal` draws its target \
                     from its own `randomize` range)"
                } else if raw.axis_goal.is_some() {
                    "target randomisation needs a `Goal` on the same entity (an `AxisGoal` turns its direction \
                     by its own `randomize_yaw` range)"
                } else {
                    "target randomisation needs a `Goal` on the same entity"
                };
                return Err(ck.err(raw, "RandomizeTarget", why.into()));
            }
            continue;
        };
        let goal_names = goals.iter().map(|g| g.goal.name.as_str());
        check_goal_name(ck, raw, "Goal.name", &goal.name, goal_names, frames)?;
        let f = frame(ck, frames, raw, "Goal.frame", &goal.frame)?;
        check_goal_moves(ck, raw, goal, bodies, f)?;
        let riding = match &goal.relative_to {
            None => None,
            Some(name) => Some(riding_frame(
                ck,
                raw,
                goal,
                (bodies, joints),
                frames,
                f,
                name,
            )?),
        };
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
                let away = resolve_goal_keep_away(ck, raw, r, &goals, frames)?;
                Some((r.clone(), away))
            }
        };
        goals.push(GoalDef {
            goal: goal.clone(),
            frame: f,
            randomize,
            riding,
        });
    }
    Ok(goals)
}

/// Refuses a goal's `name` (read from `field`) that is empty, among the goal names `taken`, or a body's or site's:
/// goals of every kind share one namespace, and `min_distance_from` names goals and frames alike.
fn check_goal_name<'n>(
    ck: &Check,
    raw: &RawEntity,
    field: &str,
    name: &str,
    taken: impl Iterator<Item = &'n str>,
    frames: &[(String, FrameRef)],
) -> Result<(), SimError> {
    ck.unique_name(raw, field, name, taken)?;
    if frames.iter().any(|(n, _)| n == name) {
        return Err(ck.err(
            raw,
            field,
            format!(
                "the name \"{name}\" is a body's or site's too; a goal needs a name of its own"
            ),
        ));
    }
    Ok(())
}

/// The frame `name` a goal's target rides on (its span is filled in by [`fill_riding_spans`]); refused on the body
/// of the goal's own frame, or one welded to it by `Fixed` joints, with which the target would move, never nearer
/// nor farther.
fn riding_frame(
    ck: &Check,
    raw: &RawEntity,
    goal: &Goal,
    (bodies, joints): (&[BodyDef], &[JointDef]),
    frames: &[(String, FrameRef)],
    f: FrameRef,
    name: &str,
) -> Result<Riding, SimError> {
    let r = frame(ck, frames, raw, "Goal.relative_to", name)?;
    if welded_group(joints, f.body).contains(&r.body) {
        let on = &bodies[r.body].body.name;
        let how = if r.body == f.body {
            format!(
                "\"{name}\" is on \"{on}\", the body of the goal's frame \"{}\"",
                goal.frame
            )
        } else {
            format!(
                "\"{name}\" is on \"{on}\", welded by `Fixed` joints to \"{}\", the body of the goal's frame \"{}\"",
                bodies[f.body].body.name, goal.frame
            )
        };
        return Err(ck.err(
            raw,
            "Goal.relative_to",
            format!(
                "{how}: a target riding on it keeps its distance from the frame, so the goal would hold from the \
                 first step or never; name another body or site"
            ),
        ));
    }
    Ok(Riding {
        frame: r,
        span: [Range::new(0.0, 0.0); 3],
    })
}

/// Fills each riding target's [`Riding::span`]: its frame's body placed at every start it can be drawn at (its own
/// `RandomizePose`, or the randomised root that carries it), turned by every yaw drawn with it, and the target at
/// every corner of its ranges in the frame.
pub(super) fn fill_riding_spans(scene: &mut TaskScene) {
    use crate::extent::{drawn_box, turned_box};
    let carried_by = scene.carried_by();
    for g in 0..scene.goals.len() {
        let Some(riding) = &scene.goals[g].riding else {
            continue;
        };
        let (b, offset) = (riding.frame.body, riding.frame.offset);
        let body = &scene.bodies[b];
        // Where the frame's body can start: a box of origins (of the body, or of the root carrying it), the yaw
        // drawn about them, and the body's origin from there before the turn.
        let drawn_at = |def: &BodyDef| {
            let r = def.randomize.as_ref().expect("a drawn body");
            (drawn_box(def.body.translation, [r.x, r.y, r.z]), r.yaw)
        };
        let (origins, yaw, from_origin) = match (&body.randomize, carried_by[b]) {
            (Some(_), _) => {
                let (origins, yaw) = drawn_at(body);
                (origins, yaw, Vec3::ZERO)
            }
            (None, Some(root)) => {
                let home = &scene.bodies[root];
                let (origins, yaw) = drawn_at(home);
                (origins, yaw, body.body.translation - home.body.translation)
            }
            (None, None) => (
                (body.body.translation, body.body.translation),
                None,
                Vec3::ZERO,
            ),
        };
        let local = scene.goals[g].span_in_own_frame();
        let turn = body.body.rotation.normalize();
        let (mut lo, mut hi) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
        for corner in 0..8 {
            let pick = |k: usize, bit: usize| {
                if corner & bit == 0 {
                    local[k].min
                } else {
                    local[k].max
                }
            };
            let at = Vec3::new(pick(0, 1), pick(1, 2), pick(2, 4));
            let (turned_lo, turned_hi) = turned_box(from_origin + turn * (offset + at), yaw);
            (lo, hi) = (lo.min(turned_lo), hi.max(turned_hi));
        }
        let span = std::array::from_fn(|k| Range::new(origins.0[k] + lo[k], origins.1[k] + hi[k]));
        if let Some(riding) = &mut scene.goals[g].riding {
            riding.span = span;
        }
    }
}

/// Refuses a scene without a goal of any kind.
pub(super) fn check_some_goal(
    ck: &Check,
    goals: &[GoalDef],
    joint_goals: &[JointGoalDef],
    axis_goals: &[AxisGoalDef],
) -> Result<(), SimError> {
    if goals.is_empty() && joint_goals.is_empty() && axis_goals.is_empty() {
        // Success is "every goal holds": with none, every step would end a successful episode.
        return Err(ck.scene_err(
            "Goal",
            "the scene needs at least one `Goal`, `JointGoal` or `AxisGoal`: success is when every goal holds"
                .into(),
        ));
    }
    Ok(())
}

/// Axis goals in file order, each on a `Dynamic` body, with a direction the axis can come within its tolerance of
/// only by turning.
pub(super) fn build_axis_goals(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    joints: &[JointDef],
    (goals, joint_goals): (&[GoalDef], &[JointGoalDef]),
    frames: &[(String, FrameRef)],
) -> Result<Vec<AxisGoalDef>, SimError> {
    let mut axis_goals: Vec<AxisGoalDef> = Vec::new();
    let turns = TurnGroups::new(joints, bodies);
    for raw in entities {
        let Some(goal) = &raw.axis_goal else {
            continue;
        };
        let names = goals
            .iter()
            .map(|g| g.goal.name.as_str())
            .chain(joint_goals.iter().map(|g| g.goal.name.as_str()))
            .chain(axis_goals.iter().map(|g| g.goal.name.as_str()));
        check_goal_name(ck, raw, "AxisGoal.name", &goal.name, names, frames)?;
        let body = axis_goal_body(ck, raw, goal, (bodies, &turns), frames)?;
        let axis = unit(ck, raw, "AxisGoal.axis", goal.axis)?;
        let direction = unit(ck, raw, "AxisGoal.direction", goal.direction)?;
        ck.positive(raw, "AxisGoal.tolerance", goal.tolerance)?;
        let pi = std::f32::consts::PI;
        if goal.tolerance >= pi {
            // π written as 3.1416 is π; more is most likely degrees.
            let hint = if goal.tolerance > pi + 0.01 {
                " (angles are in radians: degrees written?)"
            } else {
                ""
            };
            return Err(ck.err(
                raw,
                "AxisGoal.tolerance",
                format!(
                    "{} rad is half a turn or more: an axis is never farther than π from a direction, so the goal \
                     would always hold{hint}; 0.2 rad is about 11°",
                    goal.tolerance
                ),
            ));
        }
        if let Some(range) = &goal.randomize_yaw {
            ck.range(raw, "AxisGoal.randomize_yaw", range)?;
            // A turn about z leaves a vertical direction where it was: the draw would do nothing.
            if direction.truncate().length() < 1e-3 {
                return Err(ck.err(
                    raw,
                    "AxisGoal.randomize_yaw",
                    format!(
                        "the direction {} is vertical, and a turn about the world's z axis leaves it where it is; \
                         remove `randomize_yaw`, or tilt the direction",
                        goal.direction
                    ),
                ));
            }
        }
        axis_goals.push(AxisGoalDef {
            goal: goal.clone(),
            body,
            axis,
            direction,
        });
    }
    Ok(axis_goals)
}

/// The body an axis goal turns: a `Dynamic` one (a site is a point, with no orientation of its own, and a body
/// nothing moves would hold the goal from the first step or never).
fn axis_goal_body(
    ck: &Check,
    raw: &RawEntity,
    goal: &AxisGoal,
    (bodies, turns): (&[BodyDef], &TurnGroups),
    frames: &[(String, FrameRef)],
) -> Result<usize, SimError> {
    let name = &goal.body;
    let Some(b) = bodies.iter().position(|b| b.body.name == *name) else {
        let message = match frames.iter().find(|(n, _)| n == name) {
            Some((_, f)) => format!(
                "\"{name}\" is a site, a point on \"{}\": an axis goal turns a body; name the body",
                bodies[f.body].body.name
            ),
            None => not_found("body", name, bodies.iter().map(|b| b.body.name.as_str())),
        };
        return Err(ck.err(raw, "AxisGoal.body", message));
    };
    // A non-dynamic body that holds the goal's body: what it is, and what the goal would then depend on (nothing,
    // or the clock of a spinning kinematic body's motion).
    let held = |h: usize| {
        let adjective = if bodies[h].body.kind == BodyKind::Fixed {
            "fixed"
        } else {
            "kinematic"
        };
        let outcome = if bodies[h].spins() {
            "turns only as its authored spin turns it, whatever the robot does"
        } else {
            "never turns, so the goal would hold from the first step or never"
        };
        (adjective, outcome)
    };
    if bodies[b].body.kind != BodyKind::Dynamic {
        let (adjective, outcome) = held(b);
        return Err(ck.err(
            raw,
            "AxisGoal.body",
            format!(
                "\"{name}\" is a {adjective} body, which forces, contacts and joints do not turn: it {outcome}; name \
                 a `Dynamic` body"
            ),
        ));
    }
    if let Some(h) = turns.held_by(b) {
        let (adjective, outcome) = held(h);
        return Err(ck.err(
            raw,
            "AxisGoal.body",
            format!(
                "\"{name}\" is joined to the {adjective} body \"{}\" by prismatic and fixed joints only, which let \
                 it slide but not turn against it: it {outcome}; name a body that can turn (free, or on a revolute \
                 joint)",
                bodies[h].body.name
            ),
        ));
    }
    Ok(b)
}

/// `v` made unit; refused when not finite or zero.
fn unit(ck: &Check, raw: &RawEntity, field: &str, v: Vec3) -> Result<Vec3, SimError> {
    direction(v).map_err(|why| ck.err(raw, field, why))
}

/// Joint goals in file order, each on a revolute or prismatic joint that can move, with a target it can reach.
pub(super) fn build_joint_goals(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    joints: &[JointDef],
    goals: &[GoalDef],
    frames: &[(String, FrameRef)],
) -> Result<Vec<JointGoalDef>, SimError> {
    let mut joint_goals: Vec<JointGoalDef> = Vec::new();
    for raw in entities {
        let Some(goal) = &raw.joint_goal else {
            continue;
        };
        // One namespace for every goal: sensors name either kind.
        let names = goals
            .iter()
            .map(|g| g.goal.name.as_str())
            .chain(joint_goals.iter().map(|g| g.goal.name.as_str()));
        check_goal_name(ck, raw, "JointGoal.name", &goal.name, names, frames)?;
        let joint = joints
            .iter()
            .position(|j| j.joint.name == goal.joint)
            .ok_or_else(|| {
                let known = joints.iter().map(|j| j.joint.name.as_str());
                ck.err(
                    raw,
                    "JointGoal.joint",
                    not_found("joint", &goal.joint, known),
                )
            })?;
        check_joint_moves(ck, raw, &joints[joint], bodies)?;
        if !goal.target.is_finite() {
            return Err(ck.err(
                raw,
                "JointGoal.target",
                format!("must be finite, got {}", goal.target),
            ));
        }
        ck.within(raw, "JointGoal.target", goal.target)?;
        ck.positive(raw, "JointGoal.tolerance", goal.tolerance)?;
        ck.within(raw, "JointGoal.tolerance", goal.tolerance)?;
        let revolute = matches!(joints[joint].joint.kind, JointKind::Revolute { .. });
        if revolute && goal.tolerance >= std::f32::consts::PI {
            return Err(ck.err(
                raw,
                "JointGoal.tolerance",
                format!(
                    "{} rad is half a turn or more: a revolute joint is never farther than π from its target, so \
                     the goal would always hold (angles are in radians: degrees written?)",
                    goal.tolerance
                ),
            ));
        }
        check_reachable(
            ck,
            raw,
            "JointGoal.target",
            goal,
            &joints[joint],
            goal.target,
        )?;
        if let Some(range) = &goal.randomize {
            ck.range(raw, "JointGoal.randomize", range)?;
            for end in [range.min, range.max] {
                check_reachable(ck, raw, "JointGoal.randomize", goal, &joints[joint], end)?;
            }
        }
        joint_goals.push(JointGoalDef {
            goal: goal.clone(),
            joint,
        });
    }
    Ok(joint_goals)
}

/// Refuses a joint goal on a fixed joint, which has no coordinate, or on a joint between two bodies that are not
/// `Dynamic`, whose coordinate never changes: either goal would hold from the first step or never.
fn check_joint_moves(
    ck: &Check,
    raw: &RawEntity,
    joint: &JointDef,
    bodies: &[BodyDef],
) -> Result<(), SimError> {
    let name = &joint.joint.name;
    if joint.joint.kind == JointKind::Fixed {
        return Err(ck.err(
            raw,
            "JointGoal.joint",
            format!(
                "\"{name}\" is a fixed joint, which has no coordinate to reach a target; name a revolute or \
                 prismatic joint"
            ),
        ));
    }
    let moves = |b: usize| bodies[b].body.kind == BodyKind::Dynamic;
    if !moves(joint.parent) && !moves(joint.child) {
        return Err(ck.err(
            raw,
            "JointGoal.joint",
            format!(
                "\"{name}\" joins \"{}\" and \"{}\", neither of them `Dynamic`, so its coordinate never changes \
                 and the goal would hold from the first step or never",
                joint.joint.parent, joint.joint.child
            ),
        ));
    }
    Ok(())
}

/// Refuses a target (`field`'s value `at`) no coordinate of the joint comes within the goal's tolerance of: beyond
/// the joint's limits by more than the tolerance, or, on a revolute joint, beyond ±π (its coordinate wraps there).
fn check_reachable(
    ck: &Check,
    raw: &RawEntity,
    field: &str,
    goal: &JointGoal,
    joint: &JointDef,
    at: f32,
) -> Result<(), SimError> {
    let pi = std::f32::consts::PI;
    if matches!(joint.joint.kind, JointKind::Revolute { .. }) && at.abs() > pi {
        // Past a whole turn, degrees were most likely meant; else the same angle within (-π, π].
        let fix = if at.abs() > std::f32::consts::TAU {
            format!(
                "angles are in radians: degrees written? {at}° is {:.3} rad",
                at.to_radians()
            )
        } else {
            format!("write the same angle within it ({} rad)", wrapped(at))
        };
        let range = if field.ends_with("randomize") {
            "; a range cannot cross ±π: keep it on one side, or author the body at another angle"
        } else {
            ""
        };
        return Err(ck.err(
            raw,
            field,
            format!(
                "{at} rad is beyond ±π: a revolute joint's coordinate is read in (-π, π] (0 at the authored pose), \
                 so {fix}{range}"
            ),
        ));
    }
    let revolute = matches!(joint.joint.kind, JointKind::Revolute { .. });
    // A revolute joint whose limits reach past ±π stands at an angle read as `at` also at `at` ± 2π.
    let turns: &[f32] = if revolute {
        &[0.0, std::f32::consts::TAU, -std::f32::consts::TAU]
    } else {
        &[0.0]
    };
    if let Some(limits) = joint.joint.limits
        && !turns.iter().any(|turn| {
            (limits.min - goal.tolerance..=limits.max + goal.tolerance).contains(&(at + turn))
        })
    {
        return Err(ck.err(
            raw,
            field,
            format!(
                "{at} is beyond joint \"{}\"'s limits [{}, {}] by more than the goal's tolerance {}, so the \
                 joint never comes within it; give a target within the limits",
                joint.joint.name, limits.min, limits.max, goal.tolerance
            ),
        ));
    }
    Ok(())
}

/// An angle in radians wrapped to (-π, π], to two decimals.
fn wrapped(angle: f32) -> String {
    let tau = std::f32::consts::TAU;
    let mut a = angle.rem_euclid(tau);
    if a > std::f32::consts::PI {
        a -= tau;
    }
    format!("{a:.2}")
}

/// Refuses a goal whose frame `f` is on a body the robot cannot move: such a goal holds from the first step or
/// never, so there is no task to learn.
fn check_goal_moves(
    ck: &Check,
    raw: &RawEntity,
    goal: &Goal,
    bodies: &[BodyDef],
    f: FrameRef,
) -> Result<(), SimError> {
    let kind = bodies[f.body].body.kind;
    if kind == BodyKind::Dynamic {
        return Ok(());
    }
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
    Err(ck.err(
        raw,
        "Goal.frame",
        format!(
            "{what}, which {why}, so the goal would hold from the first step or never; name a \
             body or site that moves (on a `Dynamic` body)"
        ),
    ))
}

/// A target randomisation's keep-away list resolved: each name to an earlier goal (looked up first) or a body
/// or site, with its distance checked.
fn resolve_goal_keep_away(
    ck: &Check,
    raw: &RawEntity,
    r: &RandomizeTarget,
    goals: &[GoalDef],
    frames: &[(String, FrameRef)],
) -> Result<Vec<(KeepAway, f32)>, SimError> {
    let mut away = Vec::new();
    for (k, (name, d)) in r.min_distance_from.iter().enumerate() {
        let field = format!("RandomizeTarget.min_distance_from[{k}]");
        ck.non_negative(raw, &field, *d)?;
        let what = goals
            .iter()
            .position(|g| g.goal.name == *name)
            .map(KeepAway::Goal)
            .or_else(|| {
                frames
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| KeepAway::Frame(*f))
            })
            .ok_or_else(|| {
                let goal_names = goals.iter().map(|g| g.goal.name.as_str());
                let known = goal_names.chain(frames.iter().map(|(n, _)| n.as_str()));
                let message = not_found("body, site or earlier goal", name, known);
                ck.err(raw, &field, message)
            })?;
        away.push((what, *d));
    }
    Ok(away)
}
