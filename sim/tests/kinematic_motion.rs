//! Authored motion of kinematic bodies (`KinematicMotion`): a spin and a sway about the episode's start, on the
//! episode's clock, restarting at each reset; moved as Rapier's position-based kinematic bodies, so contacts see
//! their velocity; refused, naming the field, where it could not be followed.

mod common;

use std::f32::consts::{PI, TAU};

use bevy::math::{Quat, Vec3};
use common::*;
use qamlab_sim::prelude::*;

/// Control step (s) and physics steps per control step of [`SCENE`].
const CONTROL_DT: f32 = 0.05;

/// A platform swaying along x (±0.1 m every 2 s) with a cube resting on it; a turntable spinning at 1 rad/s about z,
/// drawn anew at each reset (x and yaw); a bob swaying along z (±0.2 m every 1 s) from 0.5 rad into its stroke, and
/// `nudge`, the one actuated joint, far from them all. `{platform}` is the platform's motion component (or nothing).
const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "moving", episode_length: 1000, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "turn", joints: ["nudge"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 10.0, max_force: 10.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [
        Position(frame: "platform"), Position(frame: "cube"), Quaternion(body: "turntable"), Position(frame: "bob"),
        LinearVelocity(frame: "platform"), LinearVelocity(frame: "cube"), Position(frame: "turntable"),
      ]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "base", kind: Fixed, translation: (0.0, 0.0, -10.0), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "platform", kind: Kinematic, translation: (0.0, 0.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0),
      {platform}
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "cube", kind: Dynamic, translation: (0.0, 0.0, 0.07), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "turntable", kind: Kinematic, translation: (0.0, 3.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cylinder(half_height: 0.05, radius: 0.5), density: 0.0, friction: 1.0),
      "qamlab_sim::authoring::RandomizePose": (x: Some((min: -0.5, max: 0.5)), yaw: Some((min: -3.0, max: 3.0))),
      "qamlab_sim::authoring::KinematicMotion": (spin: Some((0.0, 0.0, 1.0))),
    }),
    6: (components: {
      "qamlab_sim::authoring::Body": (name: "bob", kind: Kinematic, translation: (0.0, -3.0, 1.0), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::KinematicMotion": (sway: Some((amplitude: (0.0, 0.0, 0.2), period: 1.0, phase: 0.5))),
    }),
    7: (components: {
      "qamlab_sim::authoring::Body": (name: "nudger", kind: Dynamic, translation: (0.0, 6.0, -10.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5, gravity_scale: 0.0),
      "qamlab_sim::authoring::Joint": (name: "nudge", parent: "base", child: "nudger", kind: Revolute(axis: (0.0, 0.0, 1.0)),
        anchor: (0.0, 6.0, -10.0)),
    }),
    8: (components: {"qamlab_sim::authoring::Goal": (name: "far", frame: "cube", target: (5.0, 0.0, 0.0), tolerance: 0.01)}),
  },
)"#;

/// The platform's sway in [`SCENE`].
const PLATFORM_SWAY: &str = r#""qamlab_sim::authoring::KinematicMotion": (sway: Some((amplitude: (0.1, 0.0, 0.0), period: 2.0))),"#;

/// [`SCENE`] with `platform` as the platform's motion.
fn scene_text(platform: &str) -> String {
    SCENE.replace("{platform}", platform)
}

fn scene() -> TaskScene {
    TaskScene::from_ron(&scene_text(PLATFORM_SWAY), "moving.scn.ron").unwrap()
}

/// Where each sensor's values start in [`SCENE`]'s observation.
const PLATFORM: usize = 0;
const CUBE: usize = 3;
const TURNTABLE_Q: usize = 6;
const BOB: usize = 10;
const PLATFORM_V: usize = 13;
const CUBE_V: usize = 16;
const TURNTABLE: usize = 19;

/// The angle (rad) between two rotations, precise near 0 (glam's `angle_between` takes an f32 `acos` of a dot
/// product near 1, which reads nothing under about 1e-3 rad).
fn angle(a: Quat, b: Quat) -> f32 {
    let r = a * b.inverse();
    2.0 * r.xyz().length().atan2(r.w.abs())
}

fn v3(obs: &[f32], at: usize) -> Vec3 {
    Vec3::from_slice(&obs[at..at + 3])
}

/// Episodes of `length` steps, ended by the time limit only.
fn options(length: u32) -> EnvOptions {
    EnvOptions {
        terminate_on_success: false,
        episode_length: Some(length),
        ..EnvOptions::default()
    }
}

/// The platform's sway at `t` seconds: `0.1 sin(2 pi t / 2)` along x.
fn platform_x(t: f32) -> f32 {
    0.1 * (TAU * t / 2.0).sin()
}

#[test]
fn a_turntable_turns_by_its_spin_times_the_time_about_its_drawn_start() {
    let scene = scene();
    let mut env = BatchedEnv::new(&scene, 2, options(1000)).unwrap();
    let first = env.reset(&[11, 12]).unwrap().to_vec();
    let dim = env.spec().obs_dim;
    let starts: Vec<(Quat, Vec3)> = (0..2)
        .map(|i| {
            let obs = &first[i * dim..(i + 1) * dim];
            (
                Quat::from_slice(&obs[TURNTABLE_Q..TURNTABLE_Q + 4]),
                v3(obs, TURNTABLE),
            )
        })
        .collect();
    // The two envs drew different starts: the motion is about each one's own.
    assert!(angle(starts[0].0, starts[1].0) > 1e-3);
    for n in 1..=100u32 {
        let out = env.step(&[0.0, 0.0]).unwrap();
        for (i, &(q0, p0)) in starts.iter().enumerate() {
            let obs = &out.obs[i * dim..(i + 1) * dim];
            let q = Quat::from_slice(&obs[TURNTABLE_Q..TURNTABLE_Q + 4]);
            let t = n as f32 * CONTROL_DT;
            let want = Quat::from_rotation_z(t) * q0;
            // Within 1e-5 rad of spin x time, 5 s in; its origin stays at its drawn start.
            assert!(
                angle(q, want) < 1e-5,
                "env {i}, step {n}: {q} turned {} rad from spin x time",
                angle(q, want)
            );
            assert!(
                (v3(obs, TURNTABLE) - p0).length() < 1e-6,
                "env {i}, step {n}"
            );
        }
    }
}

#[test]
fn a_platform_sways_along_its_sine_and_starts_again_at_each_reset() {
    let scene = scene();
    let length = 30;
    let mut env = BatchedEnv::new(&scene, 1, options(length)).unwrap();
    let first = env.reset(&[3]).unwrap().to_vec();
    assert!(
        v3(&first, PLATFORM).length() < 1e-7,
        "it starts in the middle"
    );
    // Already moving: at the sine's full speed, 0.1 π m/s, from the first observation.
    let v0 = v3(&first, PLATFORM_V);
    assert!((v0 - Vec3::new(0.1 * PI, 0.0, 0.0)).length() < 1e-6, "{v0}");
    // The bob starts 0.5 rad into its stroke, where it is authored: the stroke's middle is 0.2 sin(0.5) below.
    let bob_at = |t: f32| 1.0 + 0.2 * ((TAU * t + 0.5).sin() - 0.5f32.sin());
    assert_eq!(v3(&first, BOB), Vec3::new(0.0, -3.0, 1.0));
    for episode in 0..2 {
        for n in 1..=length {
            let out = env.step(&[0.0]).unwrap();
            let t = n as f32 * CONTROL_DT;
            let reached = &out.final_obs;
            // Within 1e-5 m of the sine (float32 positions of 0.1 m hold about 1e-8).
            let p = v3(reached, PLATFORM);
            assert!(
                (p - Vec3::new(platform_x(t), 0.0, 0.0)).length() < 1e-5,
                "episode {episode}, step {n}: platform at {p}, the sine at {}",
                platform_x(t)
            );
            assert!((v3(reached, BOB).z - bob_at(t)).abs() < 1e-5, "step {n}");
            // Its velocity is the one that takes it along the sine over the last physics step (0.01 s): the
            // derivative half a step earlier, within 1e-4 m/s.
            let rate = |t: f32| 0.1 * PI * (PI * t).cos();
            let v = v3(reached, PLATFORM_V);
            assert!(
                (v.x - rate(t - 0.005)).abs() < 1e-4,
                "step {n}: {v} against {}",
                rate(t - 0.005)
            );
            if n == length {
                assert!(out.truncated[0]);
                // The auto-reset starts the motion again: back in the middle, the bob back at its phase.
                assert!(v3(&out.obs, PLATFORM).length() < 1e-7);
                assert_eq!(v3(&out.obs, BOB), Vec3::new(0.0, -3.0, 1.0));
            }
        }
    }
}

#[test]
fn a_cube_on_a_swaying_platform_is_carried_by_friction() {
    // Started at the -x end of its stroke (phase -pi/2), at rest: a sway started mid-stroke starts at full speed, and
    // the cube slips a few millimetres until friction has it going.
    let platform = PLATFORM_SWAY.replace("period: 2.0", "period: 2.0, phase: -1.5707964");
    let scene = TaskScene::from_ron(&scene_text(&platform), "moving.scn.ron").unwrap();
    let mut env = BatchedEnv::new(&scene, 1, options(1000)).unwrap();
    let first = env.reset(&[1]).unwrap().to_vec();
    let (cube0, platform0) = (v3(&first, CUBE), v3(&first, PLATFORM));
    assert_eq!(platform0, Vec3::ZERO, "it starts where it is authored");
    // Two whole periods: its peak acceleration (0.1 pi^2 ~ 1 m/s^2) is well within what friction 1 holds.
    for n in 1..=80u32 {
        let out = env.step(&[0.0]).unwrap();
        let obs = &out.obs;
        let moved = v3(obs, CUBE) - cube0;
        let carried = v3(obs, PLATFORM) - platform0;
        assert!(
            (moved - carried).length() < 1e-3,
            "step {n}: the cube moved {moved}, the platform {carried}"
        );
        // Riding, not pushed: the cube moves at the platform's speed.
        let (vc, vp) = (v3(obs, CUBE_V), v3(obs, PLATFORM_V));
        assert!(
            (vc - vp).length() < 0.01,
            "step {n}: cube {vc}, platform {vp}"
        );
        if n == 20 {
            // Half a period in, the platform (and the cube) are at the other end of the stroke, 0.2 m on.
            assert!((moved.x - 0.2).abs() < 1e-3, "{moved}");
        }
    }
}

#[test]
fn moving_bodies_are_deterministic_and_restored_exactly() {
    let scene = scene();
    let opts = options(20);
    let seeds = [4, 9];
    let run = || {
        let mut env = BatchedEnv::new(&scene, 2, opts).unwrap();
        env.reset(&seeds).unwrap();
        let mut stream = 5;
        let mut trace = Vec::new();
        for _ in 0..50 {
            let actions = random_actions(&mut stream, 2);
            trace.push(output_bits(env.step(&actions).unwrap()));
        }
        trace
    };
    assert!(run() == run(), "same seeds, different trajectories");

    // Ten steps into each env's third episode, restored from its seed, stream position and actions since its start.
    let mut original = BatchedEnv::new(&scene, 2, opts).unwrap();
    original.reset(&seeds).unwrap();
    let mut stream = 8;
    let mut since_start: Vec<Vec<f32>> = vec![Vec::new(); 2];
    for _ in 0..50 {
        let actions = random_actions(&mut stream, 2);
        let out = original.step(&actions).unwrap();
        for i in 0..2 {
            since_start[i].push(actions[i]);
            if out.truncated[i] {
                since_start[i].clear();
            }
        }
    }
    assert!(since_start.iter().all(|a| a.len() == 10));
    let positions = original.episode_word_positions();
    let lists: Vec<&[f32]> = since_start.iter().map(Vec::as_slice).collect();
    let mut restored = BatchedEnv::new(&scene, 2, opts).unwrap();
    let obs = restored
        .restore(&seeds, &positions, &lists)
        .unwrap()
        .to_vec();
    let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&obs),
        bits(&original.output().obs),
        "restored observations differ"
    );
    // The platform is mid-stroke there (10 steps = a quarter period): a clock that restarted would not be.
    assert!((obs[PLATFORM] - 0.1).abs() < 1e-5, "{}", obs[PLATFORM]);
    for _ in 0..30 {
        let actions = random_actions(&mut stream, 2);
        let a = output_bits(original.step(&actions).unwrap());
        let b = output_bits(restored.step(&actions).unwrap());
        assert!(a == b, "a restored env went its own way");
    }
}

/// The field and message of the error loading [`SCENE`] with the platform's motion `platform` gives.
fn refusal(platform: &str) -> (String, String) {
    refusal_of(&scene_text(platform))
}

fn refusal_of(text: &str) -> (String, String) {
    match TaskScene::from_ron(text, "bad.scn.ron").unwrap_err() {
        SimError::Invalid { field, message, .. } => (field, message),
        other => panic!("expected an Invalid error, got {other}"),
    }
}

fn motion(fields: &str) -> String {
    format!(r#""qamlab_sim::authoring::KinematicMotion": ({fields}),"#)
}

#[test]
fn motions_that_could_not_be_followed_are_refused_naming_the_field() {
    let sway = |amplitude: &str, period: &str, phase: &str| {
        motion(&format!(
            "sway: Some((amplitude: {amplitude}, period: {period}, phase: {phase}))"
        ))
    };
    let cases = [
        (motion(""), "KinematicMotion", "neither"),
        (
            motion("spin: Some((0.0, NaN, 0.0))"),
            "KinematicMotion.spin",
            "finite",
        ),
        // 200 rad/s turns 2 rad in a 0.01 s physics step: more than a quarter turn.
        (
            motion("spin: Some((0.0, 0.0, 200.0))"),
            "KinematicMotion.spin",
            "quarter turn",
        ),
        (
            sway("(inf, 0.0, 0.0)", "1.0", "0.0"),
            "KinematicMotion.sway.amplitude",
            "finite",
        ),
        (
            sway("(0.0, 0.0, 10000.5)", "1.0", "0.0"),
            "KinematicMotion.sway.amplitude",
            "10000",
        ),
        // From the origin, phase pi/2 (the +z end) takes it 2 x 5000.5 m down.
        (
            sway("(0.0, 0.0, 5000.5)", "1.0", "1.5707964"),
            "KinematicMotion.sway.amplitude",
            "farthest",
        ),
        (
            sway("(0.1, 0.0, 0.0)", "0.0", "0.0"),
            "KinematicMotion.sway.period",
            "positive",
        ),
        (
            sway("(0.1, 0.0, 0.0)", "-2.0", "0.0"),
            "KinematicMotion.sway.period",
            "positive",
        ),
        (
            sway("(0.1, 0.0, 0.0)", "inf", "0.0"),
            "KinematicMotion.sway.period",
            "finite",
        ),
        // Five physics steps a period: the steps would sample another motion.
        (
            sway("(0.1, 0.0, 0.0)", "0.05", "0.0"),
            "KinematicMotion.sway.period",
            "at least 8",
        ),
        (
            sway("(0.1, 0.0, 0.0)", "1.0", "NaN"),
            "KinematicMotion.sway.phase",
            "finite",
        ),
    ];
    for (component, field, words) in cases {
        let (got, message) = refusal(&component);
        assert_eq!(got, field, "{component}: {message}");
        assert!(message.contains(words), "{component}: {message}");
    }

    // The reach counts the farthest start a draw can give: a turntable drawn out to x = 9999 m cannot sway 2 m.
    let text = scene_text(PLATFORM_SWAY)
        .replace(
            "x: Some((min: -0.5, max: 0.5))",
            "x: Some((min: -0.5, max: 9999.0))",
        )
        .replace(
            "(spin: Some((0.0, 0.0, 1.0)))",
            "(sway: Some((amplitude: (2.0, 0.0, 0.0), period: 1.0)))",
        );
    let (field, message) = refusal_of(&text);
    assert_eq!(field, "KinematicMotion.sway.amplitude", "{message}");

    // Only a kinematic body follows a motion; a motion needs a body.
    let dynamic = scene_text(PLATFORM_SWAY).replace(
        r#"(name: "platform", kind: Kinematic"#,
        r#"(name: "platform", kind: Fixed"#,
    );
    let (field, message) = refusal_of(&dynamic);
    assert_eq!(field, "KinematicMotion", "{message}");
    assert!(
        message.contains("Fixed") && message.contains("Kinematic"),
        "{message}"
    );
    let alone = scene_text("").replace(
        r#""qamlab_sim::authoring::Goal": (name: "far""#,
        &format!(
            r#"{} "qamlab_sim::authoring::Goal": (name: "far""#,
            motion("spin: Some((0.0, 0.0, 1.0))")
        ),
    );
    let (field, message) = refusal_of(&alone);
    assert_eq!(field, "KinematicMotion", "{message}");
    assert!(message.contains("needs a `Kinematic` `Body`"), "{message}");
}

#[test]
fn a_kinematic_body_without_a_motion_stays_put() {
    let scene = TaskScene::from_ron(&scene_text(""), "still.scn.ron").unwrap();
    assert!(scene.bodies[1].motion.is_none());
    let mut env = BatchedEnv::new(&scene, 1, options(1000)).unwrap();
    env.reset(&[2]).unwrap();
    for _ in 0..20 {
        env.step(&[0.0]).unwrap();
    }
    assert_eq!(v3(&env.output().obs, PLATFORM), Vec3::ZERO);
}

#[test]
fn a_moving_body_starts_each_episode_at_its_motions_velocity() {
    use qamlab_sim::env::{EnvState, reset_env};
    use qamlab_sim::scene::FrameRef;
    let scene = scene();
    let spec = EnvSpec::new(&scene, 100);
    let mut state = EnvState::new(&scene, &spec, 5);
    let physics = reset_env(&scene, &mut state);
    let body = |name: &str| {
        scene
            .bodies
            .iter()
            .position(|b| b.body.name == name)
            .unwrap()
    };
    // The turntable spins at 1 rad/s about z from the start; its origin (its axis) stands still.
    let turntable = body("turntable");
    let (_, spin) = physics.velocity(turntable);
    assert!((spin - Vec3::Z).length() < 1e-6, "{spin}");
    let origin = FrameRef {
        body: turntable,
        offset: Vec3::ZERO,
    };
    assert!(physics.frame_velocity(origin).length() < 1e-6);
    // The bob, 0.5 rad into its stroke: 0.2 * 2π * cos(0.5) m/s up.
    let bob = FrameRef {
        body: body("bob"),
        offset: Vec3::ZERO,
    };
    let expected = 0.2 * TAU * 0.5f32.cos();
    assert!((physics.frame_velocity(bob) - Vec3::Z * expected).length() < 1e-5);
}
