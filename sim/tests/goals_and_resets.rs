//! Goals are judged in three dimensions, a held success ends its episode exactly `success_hold` steps after it
//! first holds, a reset applies the randomised yaw, and a body's quaternion is observed with w >= 0 however its
//! rotation was authored.

use bevy::math::Vec3;
use qamlab_sim::env::{EnvState, reset_env};
use qamlab_sim::prelude::*;

/// No gravity, so bodies stay where they are put: a slider on a rail along x, driven at a velocity (action 1 moves
/// it at 1 m/s, action 0 holds it), stopping at x = RAIL_END; a free body "float" with a reset-randomised yaw
/// (YAW_RANGE) and rotation ROTATION; one goal on FRAME at TARGET within TOLERANCE.
const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "goals", episode_length: 40, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "drive", joints: ["rail"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 200.0, max_force: 1000.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [
        Position(frame: "slider"), Quaternion(body: "float"), YawSinCos(body: "float"),
      ]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Fixed, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, 0.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "post", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 0.0, 0.5), limits: Some((min: -1.0, max: RAIL_END))),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "float", kind: Dynamic, translation: (0.0, 1.0, 0.5), rotation: ROTATION,
        extra_mass: 0.5),
      "qamlab_sim::authoring::RandomizePose": (yaw: YAW_RANGE),
    }),
    5: (components: {"qamlab_sim::authoring::Goal": (name: "home", frame: "FRAME", target: TARGET, tolerance: TOLERANCE)}),
  },
)"#;

/// Offset of the float's quaternion (x, y, z, w) in the observation; its (sin, cos) of yaw follows.
const QUAT: usize = 3;
/// Offset of the float's yaw (sin, cos).
const YAW: usize = 7;

/// The scene's variable parts.
struct Authored {
    frame: &'static str,
    target: Vec3,
    tolerance: f32,
    rail_end: f32,
    rotation: [f32; 4],
    yaw_range: Option<(f32, f32)>,
}

impl Default for Authored {
    fn default() -> Self {
        Self {
            frame: "slider",
            target: Vec3::new(0.0, 0.0, 0.5),
            tolerance: 0.05,
            rail_end: 1.0,
            rotation: [0.0, 0.0, 0.0, 1.0],
            yaw_range: None,
        }
    }
}

impl Authored {
    fn scene(&self) -> TaskScene {
        let v = |v: Vec3| format!("({:?}, {:?}, {:?})", v.x, v.y, v.z);
        let [x, y, z, w] = self.rotation;
        let text = SCENE
            .replace("FRAME", self.frame)
            .replace("TARGET", &v(self.target))
            .replace("TOLERANCE", &format!("{:?}", self.tolerance))
            .replace("RAIL_END", &format!("{:?}", self.rail_end))
            .replace("ROTATION", &format!("({x:?}, {y:?}, {z:?}, {w:?})"))
            .replace(
                "YAW_RANGE",
                &self.yaw_range.map_or("None".into(), |(a, b)| {
                    format!("Some((min: {a:?}, max: {b:?}))")
                }),
            );
        TaskScene::from_ron(&text, "goals.scn.ron").unwrap()
    }
}

/// Whether the first step (holding the slider still) finds the goal satisfied.
fn success_after_one_step(authored: &Authored) -> bool {
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&authored.scene(), 1, options).unwrap();
    env.reset(&[0]).unwrap();
    let out = env.step(&[0.0]).unwrap();
    assert!(
        (out.obs[2] - 0.5).abs() < 1e-4,
        "the slider stays at its height: {:?}",
        out.obs
    );
    out.success[0]
}

#[test]
fn a_body_above_its_goal_is_not_at_it() {
    let tolerance = 0.05;
    // At the goal's x and y, three tolerances above it.
    let above = Authored {
        target: Vec3::new(0.0, 0.0, 0.5 - 3.0 * tolerance),
        tolerance,
        ..Authored::default()
    };
    assert!(
        !success_after_one_step(&above),
        "a body 3 tolerances above its goal"
    );
    let at = Authored {
        target: Vec3::new(0.0, 0.0, 0.5),
        tolerance,
        ..Authored::default()
    };
    assert!(success_after_one_step(&at), "a body at its goal");
}

/// Steps (action 1: the slider drives toward its goal at the end of its rail) until the episode ends; returns the
/// step that ended it and whether by success.
fn steps_to_end(scene: &TaskScene, options: EnvOptions) -> (u32, bool) {
    let mut env = BatchedEnv::new(scene, 1, options).unwrap();
    env.reset(&[0]).unwrap();
    for t in 1..=40 {
        let out = env.step(&[1.0]).unwrap();
        if out.ended(0) {
            return (t, out.terminated[0]);
        }
    }
    panic!("the episode outlived its time limit of 40 steps")
}

#[test]
fn a_held_success_ends_its_episode_exactly_success_hold_steps_after_it_first_holds() {
    // The slider reaches the goal part way along and stays: the rail ends there.
    let scene = Authored {
        target: Vec3::new(0.3, 0.0, 0.5),
        rail_end: 0.3,
        ..Authored::default()
    }
    .scene();
    // The step at which the goal first holds, with nothing ending the episode early.
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&scene, 1, options).unwrap();
    env.reset(&[0]).unwrap();
    let first = (1..=40u32)
        .find(|_| env.step(&[1.0]).unwrap().success[0])
        .expect("the slider reaches its goal");
    assert!(first > 1, "the goal is reached part way, at step {first}");
    for hold in [0, 1, 3] {
        let options = EnvOptions {
            terminate_on_success: true,
            success_hold: hold,
            ..EnvOptions::default()
        };
        assert_eq!(
            steps_to_end(&scene, options),
            (first + hold, true),
            "success_hold {hold}: the success first held at step {first}"
        );
    }
}

#[test]
fn a_reset_turns_a_body_by_its_randomised_yaw() {
    let scene = Authored {
        yaw_range: Some((-std::f32::consts::PI, std::f32::consts::PI)),
        ..Authored::default()
    }
    .scene();
    let spec = BatchedEnv::new(&scene, 1, EnvOptions::default())
        .unwrap()
        .spec()
        .clone();
    let yaws: Vec<f32> = (0..64)
        .map(|seed| {
            let mut state = EnvState::new(&scene, &spec, seed);
            let _physics = reset_env(&scene, &mut state);
            state.obs[YAW].atan2(state.obs[YAW + 1])
        })
        .collect();
    let (lo, hi) = yaws
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    assert!(
        hi - lo > 4.0,
        "yaws drawn from [-pi, pi] spread over {lo}..{hi}"
    );
    assert!(
        yaws.iter().any(|y| y.sin() > 0.1) && yaws.iter().any(|y| y.sin() < -0.1),
        "both signs of sin(yaw): {yaws:?}"
    );
}

#[test]
fn a_rotation_authored_as_q_or_minus_q_is_observed_alike_with_w_non_negative() {
    // A turn of 100 degrees about (1, 2, 3)/|.|: every component non-zero.
    let axis = Vec3::new(1.0, 2.0, 3.0).normalize();
    let (s, c) = (50f32.to_radians().sin(), 50f32.to_radians().cos());
    let q = [axis.x * s, axis.y * s, axis.z * s, c];
    let observe = |rotation: [f32; 4]| {
        let scene = Authored {
            rotation,
            ..Authored::default()
        }
        .scene();
        let mut env = BatchedEnv::new(&scene, 1, EnvOptions::default()).unwrap();
        let first = env.reset(&[0]).unwrap().to_vec();
        let stepped = env.step(&[0.0]).unwrap().obs.clone();
        (first, stepped)
    };
    let plus = observe(q);
    let minus = observe(q.map(|x| -x));
    for (what, p, m) in [("reset", &plus.0, &minus.0), ("step", &plus.1, &minus.1)] {
        let (pq, mq) = (&p[QUAT..QUAT + 4], &m[QUAT..QUAT + 4]);
        assert!(
            pq[3] >= 0.0 && mq[3] >= 0.0,
            "{what}: w >= 0: {pq:?}, {mq:?}"
        );
        for (a, b) in pq.iter().zip(mq) {
            assert!(
                (a - b).abs() < 1e-5,
                "{what}: q {pq:?} and -q {mq:?} observed alike"
            );
        }
        for (a, b) in pq.iter().zip(&q) {
            assert!(
                (a - b).abs() < 1e-3,
                "{what}: observed {pq:?}, authored {q:?}"
            );
        }
    }
}
