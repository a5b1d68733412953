//! Joint goals: a joint's coordinate within a tolerance of a target (radians or metres) counts as a goal held,
//! alone or beside place goals; its target is drawn from its range at each reset and observed by
//! `JointGoalTarget`; a revolute target is judged the shorter way round; and loading refuses what could never be
//! reached, naming the field.

use bevy::math::{Quat, Vec3};
use bevy_rapier3d::rapier::prelude::Pose;
use qamlab_sim::env::{EnvState, reset_env, step_env};
use qamlab_sim::physics::EnvPhysics;
use qamlab_sim::prelude::*;

/// No gravity: a door on a vertical hinge (limits ±2 rad), swung by a velocity motor (action 1 turns it at
/// 1 rad/s), and a slider on a rail; observations: the hinge's angle, then the goal's target (SENSORS); goals:
/// GOALS.
const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "door", episode_length: 100, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: GoalsSatisfiedMinusCount),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "swing", joints: ["hinge"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 500.0, max_force: 1000.0),
        (name: "slide", joints: ["rail"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 500.0, max_force: 1000.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [JointPosition(joint: "hinge"), SENSORS]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "frame", kind: Fixed, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "door", kind: Dynamic, translation: (0.2, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.2, 0.02, 0.3)), density: 200.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "hinge", parent: "frame", child: "door", kind: Revolute(axis: (0.0, 0.0, 1.0)),
        anchor: (0.0, 0.0, 0.5), limits: LIMITS),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, 1.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "frame", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 1.0, 0.5), limits: Some((min: -0.5, max: 0.5))),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "weld", kind: Dynamic, translation: (0.0, 2.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "glued", parent: "frame", child: "weld", kind: Fixed, anchor: (0.0, 2.0, 0.5)),
    }),
    GOALS
  },
)"#;

/// The door's goal: open to 1 rad, within 0.05.
const DOOR_GOAL: &str = r#"6: (components: {"qamlab_sim::authoring::JointGoal": (name: "open", joint: "hinge", target: 1.0, tolerance: 0.05)}),"#;

fn scene_with(sensors: &str, limits: &str, goals: &str) -> String {
    SCENE
        .replace("SENSORS", sensors)
        .replace("LIMITS", limits)
        .replace("GOALS", goals)
}

fn door(goals: &str) -> String {
    scene_with(
        r#"JointGoalTarget(goal: "open")"#,
        "Some((min: -2.0, max: 2.0))",
        goals,
    )
}

fn load(text: &str) -> Result<TaskScene, SimError> {
    TaskScene::from_ron(text, "door.scn.ron")
}

/// The message of the error loading `text` gives, which must be about `field`.
fn refusal(text: &str, field: &str) -> String {
    let e = load(text).expect_err("the scene must be refused");
    let message = e.to_string();
    assert!(message.contains(field), "not about {field}: {message}");
    message
}

/// Steps env `state` with `action` until `until` holds of it or `steps` pass; returns the steps taken.
fn step_until(
    scene: &TaskScene,
    physics: &mut EnvPhysics,
    state: &mut EnvState,
    action: &[f32],
    steps: u32,
    until: impl Fn(&EnvState) -> bool,
) -> u32 {
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    for t in 1..=steps {
        step_env(scene, physics, state, action, 1000, options);
        if until(state) {
            return t;
        }
    }
    steps
}

#[test]
fn a_joint_goal_holds_while_its_joint_is_within_tolerance_of_its_target() {
    let scene = load(&door(DOOR_GOAL)).unwrap();
    assert!(scene.goals.is_empty(), "a joint goal alone is a task");
    assert_eq!(scene.joint_goals.len(), 1);
    let spec = EnvSpec::new(&scene, 100);
    assert_eq!(spec.obs_names, ["hinge.position", "open.target"]);

    let mut state = EnvState::new(&scene, &spec, 0);
    let mut physics = reset_env(&scene, &mut state);
    assert_eq!(state.obs, [0.0, 1.0], "the target is observed");
    // Swing the door open: the goal holds from 0.95 rad, and its reward is 0 from then.
    let taken = step_until(&scene, &mut physics, &mut state, &[1.0, 0.0], 60, |s| {
        s.success
    });
    let angle = state.obs[0];
    assert!(state.success && taken < 60, "never held: at {angle} rad");
    assert!((0.95..=1.05).contains(&angle), "held at {angle} rad");
    assert_eq!(state.reward, 0.0);
    // On past the target: it stops holding beyond 1.05 rad.
    step_until(&scene, &mut physics, &mut state, &[1.0, 0.0], 60, |s| {
        s.obs[0] > 1.1
    });
    assert!(!state.success, "held at {} rad", state.obs[0]);
    assert_eq!(state.reward, -1.0);
}

#[test]
fn joint_and_place_goals_count_together() {
    let goals = format!(
        r#"{DOOR_GOAL}
        7: (components: {{"qamlab_sim::authoring::Goal": (name: "out", frame: "slider", target: (0.3, 1.0, 0.5), tolerance: 0.05)}}),"#
    );
    let scene = load(&door(&goals)).unwrap();
    let spec = EnvSpec::new(&scene, 100);
    let mut state = EnvState::new(&scene, &spec, 0);
    let mut physics = reset_env(&scene, &mut state);
    step_until(&scene, &mut physics, &mut state, &[0.0, 0.0], 1, |_| true);
    assert_eq!((state.reward, state.success), (-2.0, false));
    // The slider to its place (0.3 m), the door left shut: one goal of two.
    step_until(&scene, &mut physics, &mut state, &[0.0, 1.0], 40, |s| {
        s.reward == -1.0
    });
    assert_eq!((state.reward, state.success), (-1.0, false));
    // Then the door too: both, a success.
    step_until(&scene, &mut physics, &mut state, &[1.0, 0.0], 60, |s| {
        s.success
    });
    assert_eq!((state.reward, state.success), (0.0, true));
}

#[test]
fn a_randomised_target_is_drawn_each_reset_and_observed() {
    let goal = DOOR_GOAL.replace(
        "tolerance: 0.05)",
        "tolerance: 0.05, randomize: Some((min: -1.5, max: 1.5)))",
    );
    let scene = load(&door(&goal)).unwrap();
    let spec = EnvSpec::new(&scene, 100);
    let draws = |seed| {
        let mut state = EnvState::new(&scene, &spec, seed);
        (0..20)
            .map(|_| {
                reset_env(&scene, &mut state);
                assert_eq!(state.obs[1], state.joint_targets[0]);
                state.joint_targets[0]
            })
            .collect::<Vec<f32>>()
    };
    let targets = draws(3);
    assert!(
        targets.iter().all(|t| (-1.5..=1.5).contains(t)),
        "{targets:?}"
    );
    let spread = targets.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
        - targets.iter().fold(f32::INFINITY, |a, &b| a.min(b));
    assert!(spread > 1.0, "draws barely move: {targets:?}");
    assert_eq!(targets, draws(3), "the same seed draws the same targets");
    assert_ne!(targets, draws(4));
}

#[test]
fn a_revolute_target_is_judged_the_shorter_way_round() {
    // Without limits, the hinge's coordinate wraps at ±π: 3.1 and -3.1 rad are 0.08 rad apart.
    let text = scene_with(
        r#"JointGoalTarget(goal: "open")"#,
        "None",
        &DOOR_GOAL
            .replace("target: 1.0", "target: 3.1")
            .replace("tolerance: 0.05", "tolerance: 0.1"),
    );
    let scene = load(&text).unwrap();
    let spec = EnvSpec::new(&scene, 100);
    let mut state = EnvState::new(&scene, &spec, 0);
    let mut physics = reset_env(&scene, &mut state);
    // Swing the other way, to -3.1 rad or so, past -π + 0.1.
    step_until(&scene, &mut physics, &mut state, &[-1.0, 0.0], 80, |s| {
        s.obs[0] < -3.05
    });
    assert!(state.obs[0] < -3.05, "at {} rad", state.obs[0]);
    assert!(state.success, "-3.1 rad is 0.08 from 3.1: within 0.1");
}

#[test]
fn the_child_pose_at_a_coordinate_reads_back_as_that_coordinate() {
    let scene = load(&door(DOOR_GOAL)).unwrap();
    let authored = |b: usize| {
        let body = &scene.bodies[b].body;
        Pose::from_parts(body.translation, body.rotation)
    };
    for (j, coordinate) in [(0, 0.7), (0, -1.9), (1, 0.25), (1, -0.4)] {
        let joint = &scene.joints[j];
        let mut poses: Vec<Pose> = (0..scene.bodies.len()).map(authored).collect();
        poses[joint.child] = joint.child_pose_at(poses[joint.parent], coordinate);
        let physics = EnvPhysics::build(&scene, &poses);
        let read = physics.joint_position(&scene, j);
        assert!(
            (read - coordinate).abs() < 1e-5,
            "joint {j}: {read} for {coordinate}"
        );
        // And the parent, put back from the child, is where it was.
        let parent = joint.parent_pose_at(poses[joint.child], coordinate);
        let back = parent.translation.distance(poses[joint.parent].translation);
        assert!(back < 1e-5, "joint {j}: the parent {back} m off");
        let turn = parent.rotation.angle_between(poses[joint.parent].rotation);
        assert!(turn < 1e-3, "joint {j}: the parent {turn} rad off");
    }
    // The turn the door's copy is drawn at: 0.7 rad about the hinge (z), its centre swung with it.
    let door = scene.joints[0].child_pose_at(authored(0), 0.7);
    let expected = Quat::from_rotation_z(0.7);
    assert!(door.rotation.angle_between(expected) < 1e-3);
    let centre = Vec3::new(0.2 * 0.7f32.cos(), 0.2 * 0.7f32.sin(), 0.5);
    assert!(door.translation.distance(centre) < 1e-5, "{door:?}");
}

#[test]
fn loading_refuses_joint_goals_that_cannot_be_reached_naming_the_field() {
    let fixed = refusal(
        &door(&DOOR_GOAL.replace("joint: \"hinge\"", "joint: \"glued\"")),
        "JointGoal.joint",
    );
    assert!(fixed.contains("fixed joint"), "{fixed}");
    let typo = refusal(
        &door(&DOOR_GOAL.replace("joint: \"hinge\"", "joint: \"hinje\"")),
        "JointGoal.joint",
    );
    assert!(typo.contains("did you mean \"hinge\""), "{typo}");
    let beyond = refusal(
        &door(&DOOR_GOAL.replace("target: 1.0", "target: 2.5")),
        "JointGoal.target",
    );
    assert!(beyond.contains("limits [-2, 2]"), "{beyond}");
    // Within the limits by the tolerance is fine: the joint at its limit is within it.
    load(&door(&DOOR_GOAL.replace("target: 1.0", "target: 2.04"))).unwrap();
    let drawn_beyond = refusal(
        &door(&DOOR_GOAL.replace(
            "tolerance: 0.05)",
            "tolerance: 0.05, randomize: Some((min: 0.0, max: 3.0)))",
        )),
        "JointGoal.randomize",
    );
    assert!(drawn_beyond.contains("limits"), "{drawn_beyond}");
    let unwrapped = refusal(
        &scene_with(
            r#"JointGoalTarget(goal: "open")"#,
            "None",
            &DOOR_GOAL.replace("target: 1.0", "target: 4.0"),
        ),
        "JointGoal.target",
    );
    assert!(unwrapped.contains("(-2.28 rad)"), "{unwrapped}");
    // Degrees for radians: the conversion, not the wrapped angle.
    let degrees = refusal(
        &scene_with(
            r#"JointGoalTarget(goal: "open")"#,
            "None",
            &DOOR_GOAL.replace("target: 1.0", "target: 45.0"),
        ),
        "JointGoal.target",
    );
    assert!(
        degrees.contains("degrees written? 45° is 0.785 rad"),
        "{degrees}"
    );
    refusal(
        &door(&DOOR_GOAL.replace("tolerance: 0.05", "tolerance: 0.0")),
        "JointGoal.tolerance",
    );
    // Half a turn or more: a revolute goal that always holds (degrees written for radians).
    let always = refusal(
        &door(&DOOR_GOAL.replace("tolerance: 0.05", "tolerance: 5.0")),
        "JointGoal.tolerance",
    );
    assert!(always.contains("always hold"), "{always}");
    // Limits past π: -2.5 rad is read where the hinge stands at 3.78 rad, within [0, 4].
    load(&scene_with(
        r#"JointGoalTarget(goal: "open")"#,
        "Some((min: 0.0, max: 4.0))",
        &DOOR_GOAL.replace("target: 1.0", "target: -2.5"),
    ))
    .unwrap();
    refusal(
        &door(&DOOR_GOAL.replace("target: 1.0", "target: NaN")),
        "JointGoal.target",
    );
}

#[test]
fn loading_refuses_names_and_sensors_that_mix_the_two_kinds() {
    let place = r#"7: (components: {"qamlab_sim::authoring::Goal": (name: "out", frame: "slider", target: (0.3, 1.0, 0.5), tolerance: 0.05)}),"#;
    let twice = refusal(
        &door(&format!(
            "{place}\n{}",
            DOOR_GOAL.replace("\"open\"", "\"out\"")
        )),
        "JointGoal.name",
    );
    assert!(twice.contains("used twice"), "{twice}");
    let as_place = refusal(
        &scene_with(r#"GoalPosition(goal: "open")"#, "None", DOOR_GOAL),
        "sensors[1].goal",
    );
    assert!(
        as_place.contains("JointGoalTarget(goal: \"open\")"),
        "{as_place}"
    );
    let as_joint = refusal(
        &scene_with(
            r#"JointGoalTarget(goal: "out")"#,
            "None",
            &format!("{DOOR_GOAL}\n{place}"),
        ),
        "sensors[1].goal",
    );
    assert!(
        as_joint.contains("GoalPosition(goal: \"out\")"),
        "{as_joint}"
    );
    let drawn_elsewhere = refusal(
        &door(&DOOR_GOAL.replace(
            "tolerance: 0.05)}",
            "tolerance: 0.05), \"qamlab_sim::authoring::RandomizeTarget\": (x: Some((min: 0.0, max: 1.0)))}",
        )),
        "RandomizeTarget",
    );
    assert!(
        drawn_elsewhere.contains("its own `randomize`"),
        "{drawn_elsewhere}"
    );
    let none = refusal(&door(""), "Goal");
    assert!(none.contains("`Goal`, `JointGoal` or `AxisGoal`"), "{none}");
}
