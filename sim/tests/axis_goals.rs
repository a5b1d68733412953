//! Axis goals: a body's axis within an angle of a direction counts as a goal held, alone or beside goals of the
//! other kinds; the direction is turned by a yaw drawn at each reset, after every other draw, and observed by
//! `AxisGoalDirection`; `BodyAxis` reads where the axis points; loading refuses what could never mean anything,
//! naming the field.

use bevy::math::Vec3;
use qamlab_sim::env::{EnvState, reset_env, step_env};
use qamlab_sim::physics::EnvPhysics;
use qamlab_sim::prelude::*;

/// No gravity: a paddle on a hinge about +x, swung by a velocity motor (action 1 turns it at 1 rad/s), and a
/// cube drawn anywhere on a line; observations: the hinge's angle, the paddle's z axis, then SENSORS; goals: GOALS.
const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "paddle", episode_length: 100, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: GoalsSatisfiedMinusCount),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "swing", joints: ["hinge"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 500.0, max_force: 1000.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [
        JointPosition(joint: "hinge"), BodyAxis(body: "paddle", axis: (0.0, 0.0, 2.0)), SENSORS]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "frame", kind: Fixed, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "paddle", kind: Dynamic, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.1, 0.2)), density: 200.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "hinge", parent: "frame", child: "paddle", kind: Revolute(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 0.0, 0.5)),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "cube", kind: Dynamic, translation: (1.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 200.0, friction: 0.5),
      "qamlab_sim::authoring::Site": (name: "corner", body: "cube", offset: (0.02, 0.02, 0.02)),
      "qamlab_sim::authoring::RandomizePose": (x: Some((min: 0.8, max: 1.2))),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "wall", kind: Fixed, translation: (-1.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    GOALS
  },
)"#;

/// The paddle laid flat: its z axis along -y, within 0.1 rad (the hinge turns z toward -y).
const FLAT: &str = r#"6: (components: {"qamlab_sim::authoring::AxisGoal": (name: "flat", body: "paddle", axis: (0.0, 0.0, 1.0), direction: (0.0, -3.0, 0.0), tolerance: 0.1)}),"#;

fn scene_with(sensors: &str, goals: &str) -> String {
    SCENE.replace("SENSORS", sensors).replace("GOALS", goals)
}

fn paddle(goals: &str) -> String {
    scene_with(r#"AxisGoalDirection(goal: "flat")"#, goals)
}

fn load(text: &str) -> Result<TaskScene, SimError> {
    TaskScene::from_ron(text, "paddle.scn.ron")
}

/// The message of the error loading `text` gives, which must be about `field`.
fn refusal(text: &str, field: &str) -> String {
    let e = load(text).expect_err("the scene must be refused");
    let message = e.to_string();
    assert!(message.contains(field), "not about {field}: {message}");
    message
}

/// Steps env `state` with `action` until `until` holds of it or `steps` pass.
fn step_until(
    scene: &TaskScene,
    physics: &mut EnvPhysics,
    state: &mut EnvState,
    action: &[f32],
    steps: u32,
    until: impl Fn(&EnvState) -> bool,
) {
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    for _ in 0..steps {
        step_env(scene, physics, state, action, 1000, options);
        if until(state) {
            return;
        }
    }
}

fn close(a: &[f32], b: &[f32], tolerance: f32) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance)
}

#[test]
fn an_axis_goal_holds_while_the_axis_is_within_its_angle_of_the_direction() {
    let scene = load(&paddle(FLAT)).unwrap();
    assert_eq!(scene.goal_count(), 1, "an axis goal alone is a task");
    let spec = EnvSpec::new(&scene, 100);
    assert_eq!(
        spec.obs_names,
        [
            "hinge.position",
            "paddle.axis(0,0,2).x",
            "paddle.axis(0,0,2).y",
            "paddle.axis(0,0,2).z",
            "flat.direction.x",
            "flat.direction.y",
            "flat.direction.z",
        ]
    );
    let mut state = EnvState::new(&scene, &spec, 0);
    let mut physics = reset_env(&scene, &mut state);
    // The axis unit, though written 2 long; the direction unit, though written 3 long.
    assert_eq!(state.obs[1..], [0.0, 0.0, 1.0, 0.0, -1.0, 0.0]);
    // Swing: the axis reads (0, -sin θ, cos θ) at hinge angle θ, and the goal holds from π/2 - 0.1 to π/2 + 0.1.
    let half_turn = std::f32::consts::FRAC_PI_2;
    let mut held = Vec::new();
    for _ in 0..45 {
        step_until(&scene, &mut physics, &mut state, &[1.0], 1, |_| true);
        let theta = state.obs[0];
        let axis = [0.0, -theta.sin(), theta.cos()];
        assert!(
            close(&state.obs[1..4], &axis, 1e-4),
            "{:?} at {theta}",
            state.obs
        );
        let margin = (theta - half_turn).abs();
        if (margin - 0.1).abs() > 1e-3 {
            assert_eq!(state.success, margin < 0.1, "at {theta} rad");
            assert_eq!(state.reward, if margin < 0.1 { 0.0 } else { -1.0 });
        }
        held.push(state.success);
    }
    assert!(
        held.contains(&true) && held.last() == Some(&false),
        "{held:?}"
    );
}

#[test]
fn axis_goals_count_with_place_goals() {
    let goals = format!(
        r#"{FLAT}
        7: (components: {{"qamlab_sim::authoring::Goal": (name: "far", frame: "cube", target: (1.0, 0.0, 0.5), tolerance: 0.5)}}),"#
    );
    let scene = load(&paddle(&goals)).unwrap();
    assert_eq!(scene.goal_count(), 2);
    let spec = EnvSpec::new(&scene, 100);
    let mut state = EnvState::new(&scene, &spec, 0);
    let mut physics = reset_env(&scene, &mut state);
    step_until(&scene, &mut physics, &mut state, &[0.0], 1, |_| true);
    assert_eq!(
        (state.reward, state.success),
        (-1.0, false),
        "the cube's goal holds"
    );
    step_until(&scene, &mut physics, &mut state, &[1.0], 40, |s| s.success);
    assert_eq!((state.reward, state.success), (0.0, true));
}

#[test]
fn a_drawn_yaw_turns_the_direction_each_reset_and_leaves_earlier_draws_alone() {
    // A horizontal direction, turned about z by up to ±1 rad.
    let drawn = FLAT
        .replace("direction: (0.0, -3.0, 0.0)", "direction: (1.0, 0.0, 0.0)")
        .replace(
            "tolerance: 0.1)",
            "tolerance: 0.1, randomize_yaw: Some((min: -1.0, max: 1.0)))",
        );
    let scene = load(&paddle(&drawn)).unwrap();
    let spec = EnvSpec::new(&scene, 100);
    let draws = |scene: &TaskScene, seed| {
        let mut state = EnvState::new(scene, &spec, seed);
        (0..20)
            .map(|_| {
                let physics = reset_env(scene, &mut state);
                let cube = physics.pose(3).translation.x;
                (state.axis_targets.first().copied(), cube)
            })
            .collect::<Vec<_>>()
    };
    let with = draws(&scene, 3);
    let mut yaws = Vec::new();
    for (target, _) in &with {
        let d = target.unwrap();
        assert!((d.length() - 1.0).abs() < 1e-5 && d.z == 0.0, "{d}");
        let yaw = d.y.atan2(d.x);
        assert!((-1.0..=1.0).contains(&yaw), "{yaw}");
        yaws.push(yaw);
    }
    let spread = yaws.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
        - yaws.iter().fold(f32::INFINITY, |a, &b| a.min(b));
    assert!(spread > 1.0, "draws barely move: {yaws:?}");
    assert_eq!(
        with,
        draws(&scene, 3),
        "the same seed draws the same directions"
    );
    // The cube's draws are those of the same scene without the goal's yaw (and of one without the goal).
    let fixed = load(&paddle(FLAT)).unwrap();
    let cubes = |d: &[(Option<Vec3>, f32)]| d.iter().map(|(_, x)| *x).collect::<Vec<_>>();
    let first_of_each = cubes(&draws(&fixed, 3));
    assert_eq!(cubes(&with)[0], first_of_each[0]);
    // And the observation is the drawn direction.
    let mut state = EnvState::new(&scene, &spec, 5);
    reset_env(&scene, &mut state);
    assert_eq!(state.obs[4..7], state.axis_targets[0].to_array());
}

#[test]
fn loading_refuses_axis_goals_that_mean_nothing_naming_the_field() {
    let site = refusal(
        &paddle(&FLAT.replace("body: \"paddle\"", "body: \"corner\"")),
        "AxisGoal.body",
    );
    assert!(site.contains("is a site, a point on \"cube\""), "{site}");
    let fixed = refusal(
        &paddle(&FLAT.replace("body: \"paddle\"", "body: \"wall\"")),
        "AxisGoal.body",
    );
    assert!(fixed.contains("fixed body"), "{fixed}");
    let typo = refusal(
        &paddle(&FLAT.replace("body: \"paddle\"", "body: \"padle\"")),
        "AxisGoal.body",
    );
    assert!(typo.contains("did you mean \"paddle\""), "{typo}");
    let no_axis = refusal(
        &paddle(&FLAT.replace("axis: (0.0, 0.0, 1.0)", "axis: (0.0, 0.0, 0.0)")),
        "AxisGoal.axis",
    );
    assert!(no_axis.contains("no direction"), "{no_axis}");
    refusal(
        &paddle(&FLAT.replace("direction: (0.0, -3.0, 0.0)", "direction: (0.0, NaN, 0.0)")),
        "AxisGoal.direction",
    );
    refusal(
        &paddle(&FLAT.replace("tolerance: 0.1", "tolerance: 0.0")),
        "AxisGoal.tolerance",
    );
    let always = refusal(
        &paddle(&FLAT.replace("tolerance: 0.1", "tolerance: 3.1416")),
        "AxisGoal.tolerance",
    );
    assert!(
        always.contains("always hold") && !always.contains("degrees"),
        "{always}"
    );
    let degrees = refusal(
        &paddle(&FLAT.replace("tolerance: 0.1", "tolerance: 10.0")),
        "AxisGoal.tolerance",
    );
    assert!(degrees.contains("degrees written?"), "{degrees}");
    let vertical = refusal(
        &paddle(
            &FLAT
                .replace("direction: (0.0, -3.0, 0.0)", "direction: (0.0, 0.0, -1.0)")
                .replace(
                    "tolerance: 0.1)",
                    "tolerance: 0.1, randomize_yaw: Some((min: -1.0, max: 1.0)))",
                ),
        ),
        "AxisGoal.randomize_yaw",
    );
    assert!(vertical.contains("vertical"), "{vertical}");
    refusal(
        &paddle(&FLAT.replace(
            "tolerance: 0.1)",
            "tolerance: 0.1, randomize_yaw: Some((min: 1.0, max: -1.0)))",
        )),
        "AxisGoal.randomize_yaw",
    );
}

#[test]
fn loading_refuses_names_and_sensors_that_mix_the_kinds() {
    let place = r#"7: (components: {"qamlab_sim::authoring::Goal": (name: "far", frame: "cube", target: (1.0, 0.0, 0.5), tolerance: 0.5)}),"#;
    let twice = refusal(
        &paddle(&format!("{place}\n{}", FLAT.replace("\"flat\"", "\"far\""))),
        "AxisGoal.name",
    );
    assert!(twice.contains("used twice"), "{twice}");
    let framed = refusal(
        &paddle(&FLAT.replace("name: \"flat\"", "name: \"cube\"")),
        "AxisGoal.name",
    );
    assert!(framed.contains("a body's or site's too"), "{framed}");
    let as_place = refusal(
        &scene_with(r#"GoalPosition(goal: "flat")"#, FLAT),
        "sensors[2].goal",
    );
    assert!(
        as_place.contains("AxisGoalDirection(goal: \"flat\")"),
        "{as_place}"
    );
    let as_direction = refusal(
        &scene_with(
            r#"AxisGoalDirection(goal: "far")"#,
            &format!("{FLAT}\n{place}"),
        ),
        "sensors[2].goal",
    );
    assert!(
        as_direction.contains("GoalPosition(goal: \"far\")"),
        "{as_direction}"
    );
    let no_axis = refusal(
        &scene_with(r#"BodyAxis(body: "paddle", axis: (0.0, 0.0, 0.0))"#, FLAT),
        "sensors[2].axis",
    );
    assert!(no_axis.contains("no direction"), "{no_axis}");
    let site_axis = refusal(
        &scene_with(r#"BodyAxis(body: "corner", axis: (0.0, 0.0, 1.0))"#, FLAT),
        "sensors[2].body",
    );
    assert!(site_axis.contains("is a site"), "{site_axis}");
}

#[test]
fn loading_refuses_an_axis_goal_on_a_body_slides_hold_from_turning() {
    // topple's finger hangs from its fixed mount by two slides: it moves, but never turns.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/tasks/examples/topple.scn.ron"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let on_finger = text.replacen(
        "name: \"fallen\", body: \"cylinder\"",
        "name: \"fallen\", body: \"finger\"",
        1,
    );
    assert_ne!(on_finger, text);
    let message = TaskScene::from_ron(&on_finger, "finger.scn.ron")
        .expect_err("a body that cannot turn")
        .to_string();
    assert!(
        message.contains("AxisGoal.body")
            && message
                .contains("joined to the fixed body \"mount\" by prismatic and fixed joints only"),
        "{message}"
    );
    // The mount spinning (a kinematic body with a motion): the finger turns, but only with the clock.
    let spinning = on_finger.replacen(
        "(name: \"mount\", kind: Fixed, translation: (-0.09, 0.0, 0.15), rotation: (0.0, 0.0, 0.0, 1.0)),",
        "(name: \"mount\", kind: Kinematic, translation: (-0.09, 0.0, 0.15), rotation: (0.0, 0.0, 0.0, 1.0)),\n        \
         \"qamlab_sim::authoring::KinematicMotion\": (spin: Some((0.0, 0.0, 1.0))),",
        1,
    );
    assert_ne!(spinning, on_finger);
    let message = TaskScene::from_ron(&spinning, "spinning.scn.ron")
        .expect_err("a body only a motion turns")
        .to_string();
    assert!(
        message.contains("joined to the kinematic body \"mount\"")
            && message
                .contains("turns only as its authored spin turns it, whatever the robot does"),
        "{message}"
    );
    // A fixed mount welded to a spinning one: the spin is what holds (and turns) the group.
    let welded = on_finger.replacen(
        "  entities: {",
        "  entities: {\n    80: (components: {\n      \"qamlab_sim::authoring::Body\": (name: \"spinner\", kind: Kinematic, \
         translation: (-0.09, 0.0, 0.3), rotation: (0.0, 0.0, 0.0, 1.0)),\n      \
         \"qamlab_sim::authoring::KinematicMotion\": (spin: Some((0.0, 0.0, 1.0))),\n      \
         \"qamlab_sim::authoring::Joint\": (name: \"weld\", parent: \"mount\", child: \"spinner\", kind: Fixed, \
         anchor: (-0.09, 0.0, 0.3)),\n    }),",
        1,
    );
    let message = TaskScene::from_ron(&welded, "welded.scn.ron")
        .expect_err("a body only a motion turns")
        .to_string();
    assert!(
        message.contains("joined to the kinematic body \"spinner\"")
            && message.contains("authored spin"),
        "{message}"
    );
    // Huge and tiny vectors are directions like any other.
    let scaled = text
        .replacen("axis: (0.0, 0.0, 1.0),\n", "axis: (0.0, 0.0, 1e30),\n", 1)
        .replacen(
            "direction: (1.0, 0.0, 0.0)",
            "direction: (1e-30, 0.0, 0.0)",
            1,
        )
        .replacen(
            "BodyAxis(body: \"cylinder\", axis: (0.0, 0.0, 1.0))",
            "BodyAxis(body: \"cylinder\", axis: (0.0, 0.0, 1e30))",
            1,
        );
    assert_eq!(
        scaled.matches("1e30").count() + scaled.matches("1e-30").count(),
        3,
        "{scaled}"
    );
    let scene = TaskScene::from_ron(&scaled, "scaled.scn.ron").unwrap();
    assert_eq!(scene.axis_goals[0].axis, Vec3::Z);
    assert_eq!(scene.axis_goals[0].direction, Vec3::X);
    let spec = EnvSpec::new(&scene, 40);
    let mut state = EnvState::new(&scene, &spec, 0);
    reset_env(&scene, &mut state);
    assert_eq!(
        state.obs[6..9],
        [0.0, 0.0, 1.0],
        "the axis read as a unit vector"
    );
}

#[test]
fn the_miss_tells_small_angles_apart() {
    let scene = load(&paddle(FLAT)).unwrap();
    let goal = &scene.axis_goals[0];
    // The paddle's z turned 1e-4 rad from -y about x: acos of the dot product reads 0 or 3.5e-4 there.
    let turn = bevy::math::Quat::from_rotation_x(std::f32::consts::FRAC_PI_2 + 1e-4);
    let miss = goal.miss(turn, Vec3::NEG_Y);
    assert!((miss - 1e-4).abs() < 2e-6, "{miss}");
}
