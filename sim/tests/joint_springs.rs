//! Passive joint springs: a joint's `spring` pulls its coordinate (the one `JointPosition` reads) toward `rest` and
//! damps its rate; loading refuses springs that could not act, naming the field.

mod common;

use bevy::math::Vec3;
use qamlab_sim::prelude::*;

/// A pole hinged at the origin about y, authored tilted 0.2 rad off upright (coordinate 0 there), its spring's rest
/// at upright (`-0.2`); a slider on a rail along x; a wheel spinning about z with a damper alone; and `nudge`, the
/// one actuated joint. `{hinge}`, `{rail}` and `{spin}` are each joint's spring field (or nothing).
const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "springs", episode_length: 1000, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "turn", joints: ["nudge"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 10.0, max_force: 10.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [
        JointPosition(joint: "hinge"), JointPosition(joint: "rail"), Position(frame: "tip"), Position(frame: "slider"),
      ]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "base", kind: Fixed, translation: (0.0, 0.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "pole", kind: Dynamic, translation: (0.09933467, 0.0, 0.49003329),
        rotation: (0.0, 0.09983342, 0.0, 0.99500417)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.5)), density: 100.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "hinge", parent: "base", child: "pole", kind: Revolute(axis: (0.0, 1.0, 0.0)),
        anchor: (0.0, 0.0, 0.0){hinge}),
    }),
    4: (components: {
      "qamlab_sim::authoring::Site": (name: "tip", body: "pole", offset: (0.0, 0.0, 0.5)),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, 2.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "base", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 2.0, 0.0), limits: Some((min: -0.1, max: 0.1)){rail}),
    }),
    6: (components: {
      "qamlab_sim::authoring::Body": (name: "wheel", kind: Dynamic, translation: (0.0, 4.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 1.0),
      "qamlab_sim::authoring::Joint": (name: "spin", parent: "base", child: "wheel", kind: Revolute(axis: (0.0, 0.0, 1.0)),
        anchor: (0.0, 4.0, 0.0){spin}),
    }),
    7: (components: {
      "qamlab_sim::authoring::Body": (name: "nudger", kind: Dynamic, translation: (0.0, 6.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "nudge", parent: "base", child: "nudger", kind: Revolute(axis: (0.0, 0.0, 1.0)),
        anchor: (0.0, 6.0, 0.0)),
    }),
    8: (components: {"qamlab_sim::authoring::Goal": (name: "far", frame: "slider", target: (5.0, 0.0, 0.0), tolerance: 0.01)}),
  },
)"#;

const HINGE: &str = ", spring: Some((stiffness: 1000.0, damping: 60.0, rest: -0.2))";
const RAIL: &str = ", spring: Some((stiffness: 400.0, damping: 40.0, rest: 0.08))";
const SPIN: &str = ", spring: Some((stiffness: 0.0, damping: 5.0))";

/// The scene text with these spring fields.
fn text(hinge: &str, rail: &str, spin: &str) -> String {
    SCENE
        .replace("{hinge}", hinge)
        .replace("{rail}", rail)
        .replace("{spin}", spin)
}

fn load(hinge: &str, rail: &str, spin: &str) -> TaskScene {
    TaskScene::from_ron(&text(hinge, rail, spin), "springs.scn.ron").unwrap()
}

/// The observations after each of `steps` control steps at action 0, from a reset.
fn run(scene: &TaskScene, steps: usize) -> Vec<Vec<f32>> {
    let mut env = BatchedEnv::new(scene, 1, EnvOptions::default()).unwrap();
    env.reset(&[0]).unwrap();
    (0..steps)
        .map(|_| env.step(&[0.0]).unwrap().obs.clone())
        .collect()
}

#[test]
fn springs_are_optional_and_read_as_written() {
    let scene = load(HINGE, RAIL, SPIN);
    let spring = |name: &str| {
        let j = scene.joints.iter().find(|j| j.joint.name == name).unwrap();
        j.joint.spring
    };
    assert_eq!(
        spring("hinge"),
        Some(JointSpring {
            stiffness: 1000.0,
            damping: 60.0,
            rest: -0.2
        })
    );
    // `rest` left out: the authored pose.
    assert_eq!(spring("spin").map(|s| s.rest), Some(0.0));
    assert_eq!(spring("nudge"), None);
    // A scene written before springs existed loads with none.
    assert!(
        common::cube_single()
            .joints
            .iter()
            .all(|j| j.joint.spring.is_none())
    );
}

#[test]
fn a_rest_beyond_a_limit_preloads_the_joint_against_it() {
    // A button's spring pressing it against its stop: the rest 0.1 m past the rail's upper limit holds the slider at
    // the limit (a stop is not perfectly rigid: within 5 mm).
    let rail = ", spring: Some((stiffness: 400.0, damping: 40.0, rest: 0.2))";
    let obs = run(&load("", rail, ""), 40);
    let at = obs.last().unwrap()[1];
    assert!(
        (at - 0.1).abs() < 0.005,
        "the slider at {at}, not against its limit 0.1"
    );
}

#[test]
fn a_spring_holds_a_tilted_pole_up_at_its_rest() {
    // The pole starts 0.2 rad off upright, the spring's rest upright: after 5 s it stands at the rest, read by
    // JointPosition, with its tip above the pivot.
    let obs = run(&load(HINGE, "", ""), 100);
    let last = obs.last().unwrap();
    let (angle, tip) = (last[0], Vec3::new(last[2], last[3], last[4]));
    assert!(
        (angle + 0.2).abs() < 0.01,
        "hinge at {angle} rad, rest -0.2"
    );
    assert!(
        tip.x.abs() < 0.005 && (tip.z - 1.0).abs() < 0.005,
        "tip at {tip}"
    );
    // Without the spring it falls: gravity swings it far from upright.
    let obs = run(&load("", "", ""), 100);
    let farthest = obs.iter().map(|o| o[0].abs()).fold(0.0, f32::max);
    assert!(
        farthest > 1.5,
        "the unsprung pole stayed within {farthest} rad"
    );
}

#[test]
fn a_spring_settles_a_slider_at_its_rest() {
    // Stiffness 400 and damping 40 (critical, 2 sqrt(400)): within 1 mm of the rest after 2 s, read by
    // JointPosition, and the slider is there in the world too (0.08 m along the rail's x).
    let obs = run(&load("", RAIL, ""), 40);
    let last = obs.last().unwrap();
    assert!((last[1] - 0.08).abs() < 1e-3, "rail at {}", last[1]);
    assert!((last[5] - 0.08).abs() < 1e-3, "slider at x {}", last[5]);
    // Without the spring it stays where it was authored.
    let obs = run(&load("", "", ""), 40);
    assert!(obs.last().unwrap()[1].abs() < 1e-3);
}

/// The wheel's rate after spinning it at 10 rad/s and a second of physics.
fn spin_rate_after_a_second(spin: &str) -> f32 {
    let scene = load("", "", spin);
    let spec = EnvSpec::of(&scene);
    let mut state = qamlab_sim::env::EnvState::new(&scene, &spec, 0);
    let mut physics = qamlab_sim::env::reset_env(&scene, &mut state);
    let wheel = scene
        .bodies
        .iter()
        .position(|b| b.body.name == "wheel")
        .unwrap();
    let j = scene
        .joints
        .iter()
        .position(|j| j.joint.name == "spin")
        .unwrap();
    physics.world.bodies[physics.bodies[wheel]].set_angvel(Vec3::new(0.0, 0.0, 10.0), true);
    assert!((physics.joint_velocity(&scene, j) - 10.0).abs() < 1e-4);
    for _ in 0..20 {
        physics.step(scene.settings.substeps);
    }
    physics.joint_velocity(&scene, j)
}

#[test]
fn damping_alone_slows_a_spun_joint() {
    // Damping 5/s: the rate falls by e^-5 in a second, to about 0.07 rad/s; undamped it keeps spinning.
    let damped = spin_rate_after_a_second(SPIN);
    assert!(damped.abs() < 0.2, "damped wheel at {damped} rad/s");
    let free = spin_rate_after_a_second("");
    assert!(free > 9.9, "free wheel at {free} rad/s");
}

#[test]
fn springs_that_cannot_act_are_refused_naming_the_field() {
    let spring = |s: &str| format!(", spring: Some(({s}))");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            text("", "", &spring("stiffness: -1.0, damping: 1.0")),
            "Joint.spring.stiffness",
            "must be >= 0",
        ),
        (
            text("", "", &spring("stiffness: 1.0, damping: NaN")),
            "Joint.spring.damping",
            "finite",
        ),
        (
            text("", "", &spring("stiffness: inf, damping: 1.0")),
            "Joint.spring.stiffness",
            "finite",
        ),
        (
            text("", "", &spring("stiffness: 0.0, damping: 0.0")),
            "Joint.spring",
            "would do nothing",
        ),
        (
            text("", "", &spring("stiffness: 1.0, damping: 1.0, rest: inf")),
            "Joint.spring.rest",
            "must be finite",
        ),
        (
            text("", "", &spring("stiffness: 1.0, damping: 1.0, rest: 90.0")),
            "Joint.spring.rest",
            "half a turn",
        ),
        (
            text("", "", &spring("stiffness: 1.0, damping: 1.0")).replace(
                "Revolute(axis: (0.0, 0.0, 1.0)),\n        anchor: (0.0, 4.0",
                "Fixed,\n        anchor: (0.0, 4.0",
            ),
            "Joint.spring",
            "Fixed joint",
        ),
        (
            text("", "", "").replace(
                "anchor: (0.0, 6.0, 0.0))",
                "anchor: (0.0, 6.0, 0.0), spring: Some((stiffness: 1.0, damping: 1.0)))",
            ),
            "Joint.spring",
            "driven by actuator \"turn\"",
        ),
        (
            text("", "", &spring("stiffness: 1.0, damping: 1.0")).replace(
                "name: \"wheel\", kind: Dynamic",
                "name: \"wheel\", kind: Kinematic",
            ),
            "Joint.spring",
            "neither is Dynamic",
        ),
    ];
    for (text, want_field, want) in cases {
        let err = TaskScene::from_ron(&text, "bad.scn.ron").unwrap_err();
        let SimError::Invalid {
            file,
            entity,
            field,
            message,
        } = &err
        else {
            panic!("expected an Invalid error for {want_field}, got {err}");
        };
        assert_eq!(file, "bad.scn.ron");
        assert_eq!(field, want_field, "{err}");
        assert!(message.contains(want), "{want_field}: {message}");
        // Each joint's entity is named by its child body.
        let child = if want.contains("actuator") {
            "nudger"
        } else {
            "wheel"
        };
        assert!(entity.contains(child), "{want_field}: entity {entity}");
    }
}

#[test]
fn spring_fields_left_out_or_misspelt_are_named() {
    let cases = [
        (
            ", spring: Some((stiffness: 1.0))",
            "`Joint.spring.damping`: is missing",
        ),
        (
            ", spring: Some((stifness: 1.0, damping: 1.0))",
            "unknown field `stifness`, expected one of `stiffness`, `damping`, `rest`",
        ),
    ];
    for (spring, want) in cases {
        let err = TaskScene::from_ron(&text("", "", spring), "bad.scn.ron").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("bad.scn.ron") && msg.contains("\"wheel\"") && msg.contains(want),
            "{msg}"
        );
    }
}
