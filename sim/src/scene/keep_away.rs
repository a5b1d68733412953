//! The load-time statistics that refuse keep-away rules resets would often leave unmet.

use bevy::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::TaskScene;
use super::parse::RawEntity;
use crate::env::{KEEP_AWAY_DRAWS, Unmet, draw_start};
use crate::error::SimError;

/// Trial resets drawn at load time to find keep-away rules the bounded redraws cannot meet.
const KEEP_AWAY_TRIALS: usize = 1000;
/// Trial resets in which a rule may stay unmet before the scene is refused (1 %).
const KEEP_AWAY_TOLERATED: usize = KEEP_AWAY_TRIALS / 100;

/// Refuses a `min_distance_from` that resets would often leave unmet: a reset keeps its last draw then, so the
/// rule would break silently in training data. Trial resets from a fixed seed keep the verdict deterministic.
pub(super) fn check_keep_away(scene: &TaskScene, entities: &[RawEntity]) -> Result<(), SimError> {
    let has_rules = scene.bodies.iter().any(|b| !b.keep_away.is_empty())
        || scene.goals.iter().any(|g| {
            g.randomize
                .as_ref()
                .is_some_and(|(_, away)| !away.is_empty())
        });
    if !has_rules {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut targets: Vec<Vec3> = scene.goals.iter().map(|g| g.goal.target).collect();
    let mut unmet_bodies = vec![0usize; scene.bodies.len()];
    let mut unmet_goals = vec![0usize; scene.goals.len()];
    for _ in 0..KEEP_AWAY_TRIALS {
        draw_start(scene, &mut rng, &mut targets, |u| match u {
            Unmet::Body(i) => unmet_bodies[i] += 1,
            Unmet::Goal(k) => unmet_goals[k] += 1,
        });
    }
    let refuse = |raw: &RawEntity, field: &str, misses: usize| SimError::Invalid {
        file: scene.source.clone(),
        entity: raw.label(),
        field: field.into(),
        message: format!(
            "its {KEEP_AWAY_DRAWS} redraws per reset left it unmet in {misses} of {KEEP_AWAY_TRIALS} trial \
             resets (at most {KEEP_AWAY_TOLERATED} allowed), and an unmet reset starts from its last draw: \
             widen the ranges or lower the distances"
        ),
    };
    let with_body = entities.iter().filter(|e| e.body.is_some());
    for (raw, &misses) in with_body.zip(&unmet_bodies) {
        if misses > KEEP_AWAY_TOLERATED {
            return Err(refuse(raw, "RandomizePose.min_distance_from", misses));
        }
    }
    let with_goal = entities.iter().filter(|e| e.goal.is_some());
    for (raw, &misses) in with_goal.zip(&unmet_goals) {
        if misses > KEEP_AWAY_TOLERATED {
            return Err(refuse(raw, "RandomizeTarget.min_distance_from", misses));
        }
    }
    Ok(())
}
