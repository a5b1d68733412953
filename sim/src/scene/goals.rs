//! Goals, with their frames and target randomisation resolved.

use super::build::frame;
use super::check::{Check, not_found};
use super::parse::RawEntity;
use super::{BodyDef, FrameRef, GoalDef, KeepAway};
use crate::authoring::*;
use crate::error::SimError;

/// Goals in file order, each on something the robot can move.
pub(super) fn build_goals(
    ck: &Check,
    entities: &[RawEntity],
    bodies: &[BodyDef],
    frames: &[(String, FrameRef)],
) -> Result<Vec<GoalDef>, SimError> {
    let mut goals: Vec<GoalDef> = Vec::new();
    for raw in entities {
        let Some(goal) = &raw.goal else {
            if raw.randomize_target.is_some() {
                return Err(ck.err(
                    raw,
                    "RandomizeTarget",
                    "target randomisation needs a `Goal` on the same entity".into(),
                ));
            }
            continue;
        };
        let goal_names = goals.iter().map(|g| g.goal.name.as_str());
        ck.unique_name(raw, "Goal.name", &goal.name, goal_names)?;
        // `min_distance_from` names goals and frames alike.
        if frames.iter().any(|(n, _)| *n == goal.name) {
            return Err(ck.err(
                raw,
                "Goal.name",
                format!(
                    "the name \"{}\" is a body's or site's too; a goal needs a name of its own",
                    goal.name
                ),
            ));
        }
        let f = frame(ck, frames, raw, "Goal.frame", &goal.frame)?;
        check_goal_moves(ck, raw, goal, bodies, f)?;
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
        });
    }

    if goals.is_empty() {
        // Success is "every goal holds": with none, every step would end a successful episode.
        return Err(ck.scene_err(
            "Goal",
            "the scene needs at least one `Goal`: success is when every goal holds".into(),
        ));
    }
    Ok(goals)
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
