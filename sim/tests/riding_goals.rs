//! Riding targets (`Goal.relative_to`): a target written in a body's frame starts where that body starts (turned
//! with its drawn yaw), moves with it through the episode (observed by `GoalPosition`, judged where it is now),
//! stays within the span the load-time checks use, and is refused on the goal's own body.

use bevy::math::Vec3;
use qamlab_sim::env::{EnvState, reset_env, step_env};
use qamlab_sim::physics::EnvPhysics;
use qamlab_sim::prelude::*;

/// No gravity: a slider and a carrier on two parallel rails along x (1 m apart in y), each driven at a velocity
/// (action 1: 1 m/s); a free plate drawn anew at each reset (PLATE); goals: GOALS. Observations: the slider's
/// position, then the goal's target.
const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "riding", episode_length: 100, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "slide", joints: ["rail"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 500.0, max_force: 1000.0),
        (name: "carry", joints: ["track"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 500.0, max_force: 1000.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [Position(frame: "slider"), GoalPosition(goal: "meet")]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "base", kind: Fixed, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "base", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 0.0, 0.5), limits: Some((min: -1.0, max: 1.0))),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "carrier", kind: Dynamic, translation: (0.0, 1.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "track", parent: "base", child: "carrier", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 1.0, 0.5), limits: Some((min: -1.0, max: 1.0))),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "plate", kind: Dynamic, translation: (3.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::RandomizePose": PLATE,
    }),
    GOALS
  },
)"#;

/// The goal: the slider on the spot of its rail beside the carrier (the target 1 m from the carrier along -y).
const MEET: &str = r#"6: (components: {"qamlab_sim::authoring::Goal": (name: "meet", frame: "slider", target: (0.0, -1.0, 0.0), tolerance: 0.05, relative_to: Some("carrier"))}),"#;

fn scene(plate: &str, goals: &str) -> String {
    SCENE.replace("PLATE", plate).replace("GOALS", goals)
}

fn load(text: &str) -> Result<TaskScene, SimError> {
    TaskScene::from_ron(text, "riding.scn.ron")
}

/// Steps with `action` `n` times.
fn steps(
    scene: &TaskScene,
    physics: &mut EnvPhysics,
    state: &mut EnvState,
    action: &[f32],
    n: u32,
) {
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    for _ in 0..n {
        step_env(scene, physics, state, action, 1000, options);
    }
}

fn target_of(state: &EnvState) -> Vec3 {
    Vec3::new(state.obs[3], state.obs[4], state.obs[5])
}

#[test]
fn a_riding_target_moves_with_its_body_and_is_judged_where_it_is() {
    let scene = load(&scene("()", MEET)).unwrap();
    let spec = EnvSpec::new(&scene, 100);
    let mut state = EnvState::new(&scene, &spec, 0);
    let mut physics = reset_env(&scene, &mut state);
    // At the start: beside the carrier's start, where the slider is.
    assert!(
        target_of(&state).distance(Vec3::new(0.0, 0.0, 0.5)) < 1e-5,
        "{:?}",
        state.obs
    );
    steps(&scene, &mut physics, &mut state, &[0.0, 0.0], 1);
    assert!(state.success);
    // The carrier moves 0.5 m along x: the target goes with it, and the goal no longer holds.
    steps(&scene, &mut physics, &mut state, &[0.0, 1.0], 10);
    let carrier = physics.pose(
        scene
            .bodies
            .iter()
            .position(|b| b.body.name == "carrier")
            .unwrap(),
    );
    let target = target_of(&state);
    assert!(target.x > 0.4, "the target stayed behind: {target}");
    assert!(
        target.distance(carrier.translation - Vec3::Y) < 1e-4,
        "{target} against the carrier at {}",
        carrier.translation
    );
    assert_eq!(state.targets[0], target);
    assert!(!state.success);
    // The slider follows it there: the goal holds again.
    steps(&scene, &mut physics, &mut state, &[1.0, 0.0], 10);
    steps(&scene, &mut physics, &mut state, &[0.0, 0.0], 2);
    let slider = Vec3::new(state.obs[0], state.obs[1], state.obs[2]);
    assert!(
        slider.distance(target_of(&state)) <= 0.05,
        "{slider} and {}",
        target_of(&state)
    );
    assert!(state.success);
}

#[test]
fn a_riding_target_starts_where_its_body_is_drawn_turned_with_it_and_within_its_span() {
    // The target 0.2 m along the plate's x axis, 0 to 0.1 m above it; the plate drawn in a 1 m square, turned by
    // up to a quarter turn either way.
    let goal = r#"6: (components: {"qamlab_sim::authoring::Goal": (name: "meet", frame: "slider", target: (0.2, 0.0, 0.0), tolerance: 0.05, relative_to: Some("plate")),
      "qamlab_sim::authoring::RandomizeTarget": (z: Some((min: 0.0, max: 0.1)))}),"#;
    let plate = "(x: Some((min: 2.5, max: 3.5)), y: Some((min: -0.5, max: 0.5)), yaw: Some((min: -1.5708, max: 1.5708)))";
    let scene = load(&scene(plate, goal)).unwrap();
    let span = scene.goals[0].target_span();
    let spec = EnvSpec::new(&scene, 100);
    let mut state = EnvState::new(&scene, &spec, 5);
    let plate_body = scene
        .bodies
        .iter()
        .position(|b| b.body.name == "plate")
        .unwrap();
    let (mut low, mut high) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
    for _ in 0..400 {
        let physics = reset_env(&scene, &mut state);
        let pose = physics.pose(plate_body);
        let target = state.targets[0];
        let local = pose.inverse_transform_point(target);
        assert!(
            (local.x - 0.2).abs() < 1e-5
                && local.y.abs() < 1e-5
                && (-1e-5..=0.1 + 1e-5).contains(&local.z),
            "not on the plate's x axis: {local}"
        );
        for k in 0..3 {
            assert!(
                (span[k].min - 1e-5..=span[k].max + 1e-5).contains(&target[k]),
                "axis {k}: {target} outside {span:?}"
            );
        }
        (low, high) = (low.min(target), high.max(target));
    }
    // The span is as tight as the draws: the plate's square, widened by the turned 0.2 m, and the target's height.
    let expected = [(2.5, 3.7), (-0.7, 0.7), (0.5, 0.6)];
    for (k, (min, max)) in expected.into_iter().enumerate() {
        assert!(
            (span[k].min - min).abs() < 1e-4 && (span[k].max - max).abs() < 1e-4,
            "{span:?}"
        );
        assert!(
            low[k] < min + 0.1 && high[k] > max - 0.1,
            "axis {k}: draws from {low} to {high}"
        );
    }
}

#[test]
fn a_target_riding_on_the_goals_own_body_is_refused() {
    let own = MEET.replace("Some(\"carrier\")", "Some(\"slider\")");
    let message = load(&scene("()", &own)).unwrap_err().to_string();
    assert!(
        message.contains("Goal.relative_to") && message.contains("keeps its distance"),
        "{message}"
    );
    // Nor on a body welded to it: a tab fixed to the slider.
    let tab = r#"7: (components: {
      "qamlab_sim::authoring::Body": (name: "tab", kind: Dynamic, translation: (0.0, -0.1, 0.5), rotation: (0.0, 0.0, 0.0, 1.0), extra_mass: 0.1),
      "qamlab_sim::authoring::Joint": (name: "weld", parent: "slider", child: "tab", kind: Fixed, anchor: (0.0, -0.1, 0.5))}),"#;
    let welded = format!(
        "{}\n{tab}",
        MEET.replace("Some(\"carrier\")", "Some(\"tab\")")
    );
    let message = load(&scene("()", &welded)).unwrap_err().to_string();
    assert!(
        message.contains("Goal.relative_to")
            && message.contains("welded by `Fixed` joints to \"slider\""),
        "{message}"
    );
    let typo = MEET.replace("Some(\"carrier\")", "Some(\"carier\")");
    let message = load(&scene("()", &typo)).unwrap_err().to_string();
    assert!(
        message.contains("Goal.relative_to") && message.contains("did you mean \"carrier\""),
        "{message}"
    );
}
