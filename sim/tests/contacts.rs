//! Contacts are stiff: what rests on or is pressed into a surface stays on it (within 2 mm), and stays still.
//!
//! Rapier's contacts are springs scaled by the bodies' mass: a force `F` on a body of mass `m` sinks it
//! `F / (m (2 pi f)^2)` for a natural frequency `f`. At Rapier's defaults (60 Hz against fixed bodies, 30 Hz
//! between moving ones) the gantry's fingers pressed a 64 g cube 12 mm into the table, and the cube popped out
//! spinning when they let go.

mod common;

use common::*;
use qamlab_sim::QPOS_PER_BODY;
use qamlab_sim::prelude::*;

/// Options under which an episode runs `steps` steps whatever happens.
fn run_for(steps: u32) -> EnvOptions {
    EnvOptions {
        terminate_on_success: false,
        episode_length: Some(steps),
        ..EnvOptions::default()
    }
}

/// A built-in scene file of this checkout (see `common::cube_single_path`).
fn task_path(file: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        )
        .join("../assets/tasks")
        .join(file)
}

/// The pose (position, quaternion x y z w) of state body `name` of env `env` in `qpos`.
fn pose_of(spec: &EnvSpec, qpos: &[f32], env: usize, name: &str) -> ([f32; 3], [f32; 4]) {
    let b = spec
        .state_bodies
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no state body {name}"));
    let q = &qpos[env * spec.qpos_dim + b * QPOS_PER_BODY..][..QPOS_PER_BODY];
    ([q[0], q[1], q[2]], [q[3], q[4], q[5], q[6]])
}

/// Height of the lowest point of an axis-aligned box (`half` extents) at a pose.
fn lowest_corner((p, [x, y, z, w]): ([f32; 3], [f32; 4]), half: [f32; 3]) -> f32 {
    // The z row of the rotation matrix: how far each box axis reaches up.
    let row = [
        2.0 * (x * z - w * y),
        2.0 * (y * z + w * x),
        1.0 - 2.0 * (x * x + y * y),
    ];
    p[2] - (0..3).map(|k| half[k] * row[k].abs()).sum::<f32>()
}

/// Height of the lowest point of a capsule along its body's z (`half_height`, `radius`) at a pose.
fn lowest_capsule_point(
    (p, [x, y, ..]): ([f32; 3], [f32; 4]),
    half_height: f32,
    radius: f32,
) -> f32 {
    p[2] - half_height * (1.0 - 2.0 * (x * x + y * y)).abs() - radius
}

/// An observation by name.
fn obs(spec: &EnvSpec, o: &[f32], name: &str) -> f32 {
    o[spec
        .obs_names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no observation {name}"))]
}

#[test]
fn the_gantry_pressing_a_cube_down_does_not_sink_it_into_the_table() {
    // The closed fingers come down on the cube's top at full speed and push on it with all the z motor has
    // (its target runs to the joint's lower limit, 7 cm below the cube's top).
    let scene = cube_single();
    let mut env = BatchedEnv::new(&scene, 1, run_for(100)).unwrap();
    let spec = env.spec().clone();
    let mut o = env.reset(&[3]).unwrap().to_vec();
    let (mut deepest, mut pinch_lowest) = (f32::INFINITY, f32::INFINITY);
    let start = (
        obs(&spec, &o, "cube.position.x"),
        obs(&spec, &o, "cube.position.y"),
    );
    for t in 0..60 {
        let ex = obs(&spec, &o, "cube.position.x") - obs(&spec, &o, "pinch.position.x");
        let ey = obs(&spec, &o, "cube.position.y") - obs(&spec, &o, "pinch.position.y");
        let over = ex.hypot(ey) < 0.003;
        let dz = if t >= 30 && over { -1.0 } else { 0.0 };
        let a = [
            (ex / 0.05).clamp(-1.0, 1.0),
            (ey / 0.05).clamp(-1.0, 1.0),
            dz,
            0.0,
            1.0,
        ];
        let out = env.step(&a).unwrap();
        o.copy_from_slice(&out.obs);
        deepest = deepest.min(lowest_corner(
            pose_of(&spec, &out.qpos, 0, "cube"),
            [0.02; 3],
        ));
        pinch_lowest = pinch_lowest.min(obs(&spec, &o, "pinch.position.z"));
    }
    // The fingers' tips are 2 cm below the pinch: they did reach the cube's top (4 cm up) and pushed on it.
    assert!(
        pinch_lowest < 0.062,
        "the fingers never reached the cube: pinch at {pinch_lowest}"
    );
    let moved = (obs(&spec, &o, "cube.position.x") - start.0)
        .hypot(obs(&spec, &o, "cube.position.y") - start.1);
    assert!(
        moved < 0.01,
        "the cube slid {moved} m from under the fingers"
    );
    assert!(
        deepest > -0.002,
        "the cube's lowest corner went {:.1} mm into the table",
        -deepest * 1000.0
    );
}

/// A table, a cube resting on it, a cube resting on that one and a cube dropped from 20 cm; a scene needs an
/// action, so a slider on a rail off the table has one.
const CUBES: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "cubes", episode_length: 1000, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "push", joints: ["rail"], control: PositionDelta(scale: 0.01), range: (min: -1.0, max: 1.0),
         stiffness: 400.0, damping: 40.0, max_force: 100.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [Position(frame: "low")]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "table", kind: Fixed, translation: (0.0, 0.0, -0.05), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "low", kind: Dynamic, translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "high", kind: Dynamic, translation: (0.0, 0.0, 0.06), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "dropped", kind: Dynamic, translation: (0.2, 0.0, 0.22),
        rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0),
    }),
    6: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Fixed, translation: (0.0, 1.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    7: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, 1.0, 0.5), rotation: (0.0, 0.0, 0.0, 1.0),
        gravity_scale: 0.0, extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "post", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 1.0, 0.5), limits: Some((min: -0.1, max: 0.1))),
    }),
    8: (components: {"qamlab_sim::authoring::Goal": (name: "never", frame: "low", target: (5.0, 5.0, 5.0), tolerance: 0.01)}),
  },
)"#;

#[test]
fn resting_stacked_and_dropped_cubes_stay_on_the_table_and_keep_still() {
    let scene = TaskScene::from_ron(CUBES, "cubes.scn.ron").unwrap();
    let mut env = BatchedEnv::new(&scene, 1, run_for(1000)).unwrap();
    let spec = env.spec().clone();
    env.reset(&[0]).unwrap();
    let mut previous: Option<Vec<f32>> = None;
    for t in 0..100 {
        let out = env.step(&[0.0]).unwrap();
        let pose = |name| pose_of(&spec, &out.qpos, 0, name);
        for (name, floor) in [("low", 0.0), ("high", 0.04), ("dropped", 0.0)] {
            let depth = floor - lowest_corner(pose(name), [0.02; 3]);
            assert!(
                depth < 0.002,
                "step {t}: cube {name} {:.1} mm deep",
                depth * 1000.0
            );
        }
        // Settled (the dropped cube lands within 10 steps), the cubes keep still: no jitter, no creep.
        if t >= 20
            && let Some(p) = &previous
        {
            let drift = out
                .qpos
                .iter()
                .zip(p)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                drift < 1e-5,
                "step {t}: the resting cubes moved {drift} in a step"
            );
        }
        previous = Some(out.qpos.clone());
    }
}

#[test]
fn the_ants_legs_flailing_at_random_stay_out_of_the_floor() {
    // Random actions swing the legs at their motors' full speed (3 m/s and more at the feet). Before contacts were
    // stiffened, feet went 17 mm into the floor. What remains (up to 6 mm) comes from the scene's 25 ms substeps, in
    // which a fast-turning shin turns half a radian: its contact, found at the substep's start, misses where it
    // ends up. More substeps remove that too.
    let scene = TaskScene::from_file(task_path("antmaze-umaze.scn.ron")).unwrap();
    let n = 4;
    let mut env = BatchedEnv::new(&scene, n, run_for(1000)).unwrap();
    let spec = env.spec().clone();
    env.reset(&(0..n as u64).collect::<Vec<_>>()).unwrap();
    let mut streams: Vec<u64> = (100..100 + n as u64).collect();
    let mut deepest = (f32::INFINITY, String::new(), 0);
    for t in 0..1000 {
        let actions: Vec<f32> = streams
            .iter_mut()
            .flat_map(|s| random_actions(s, spec.action_dim))
            .collect();
        let out = env.step(&actions).unwrap();
        for i in 0..n {
            for shin in spec.state_bodies.iter().filter(|b| b.ends_with("_shin")) {
                let z = lowest_capsule_point(pose_of(&spec, &out.qpos, i, shin), 0.09, 0.025);
                if z < deepest.0 {
                    deepest = (z, shin.clone(), t);
                }
            }
        }
    }
    assert!(
        deepest.0 > -0.008,
        "{} went {:.1} mm into the floor (step {})",
        deepest.1,
        -deepest.0 * 1000.0,
        deepest.2
    );
}

/// A beam on a motorised hinge with a ball resting at its middle; `{pieces}` is replaced by more bodies.
const BEAM: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "beam", episode_length: 1000, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "tilt", joints: ["hinge"], control: PositionAbsolute(at_min: -0.2, at_max: 0.2),
         range: (min: -1.0, max: 1.0), stiffness: 400.0, damping: 40.0, max_force: 50.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [Position(frame: "ball")]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Fixed, translation: (0.0, 0.0, 0.1), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "beam", kind: Dynamic, translation: (0.0, 0.0, 0.2), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.3, 0.04, 0.01)), density: 500.0, friction: 0.8),
      "qamlab_sim::authoring::Joint": (name: "hinge", parent: "post", child: "beam", kind: Revolute(axis: (0.0, 1.0, 0.0)),
        anchor: (0.0, 0.0, 0.2), limits: Some((min: -0.3, max: 0.3))),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "ball", kind: Dynamic, translation: (0.0, 0.0, 0.23), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Ball(radius: 0.02), density: 1000.0, friction: 0.8),
    }),
    {pieces}
    9: (components: {"qamlab_sim::authoring::Goal": (name: "never", frame: "ball", target: (5.0, 5.0, 5.0), tolerance: 0.01)}),
  },
)"#;

/// Side rails and end stops welded to the beam, each rail's ends against the stops: pieces of one rigid part.
const RAILS_AND_STOPS: &str = r#"
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "stop_left", kind: Dynamic, translation: (-0.29, 0.0, 0.235), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.01, 0.04, 0.025)), density: 500.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "weld_left", parent: "beam", child: "stop_left", kind: Fixed, anchor: (-0.29, 0.0, 0.235)),
    }),
    6: (components: {
      "qamlab_sim::authoring::Body": (name: "stop_right", kind: Dynamic, translation: (0.29, 0.0, 0.235), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.01, 0.04, 0.025)), density: 500.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "weld_right", parent: "beam", child: "stop_right", kind: Fixed, anchor: (0.29, 0.0, 0.235)),
    }),
    7: (components: {
      "qamlab_sim::authoring::Body": (name: "rail_front", kind: Dynamic, translation: (0.0, -0.035, 0.225), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.28, 0.005, 0.015)), density: 500.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "weld_front", parent: "beam", child: "rail_front", kind: Fixed, anchor: (0.0, -0.035, 0.225)),
    }),
    8: (components: {
      "qamlab_sim::authoring::Body": (name: "rail_back", kind: Dynamic, translation: (0.0, 0.035, 0.225), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.28, 0.005, 0.015)), density: 500.0, friction: 0.5),
      "qamlab_sim::authoring::Joint": (name: "weld_back", parent: "beam", child: "rail_back", kind: Fixed, anchor: (0.0, 0.035, 0.225)),
    }),"#;

/// How far (m) the ball rolls along the beam in `steps` control steps of the beam held at 0.1 rad.
fn ball_roll(pieces: &str, steps: usize) -> f32 {
    let scene = TaskScene::from_ron(&BEAM.replace("{pieces}", pieces), "beam.scn.ron").unwrap();
    let mut env = BatchedEnv::new(&scene, 1, run_for(1000)).unwrap();
    let start = env.reset(&[0]).unwrap()[0];
    let mut x = start;
    for _ in 0..steps {
        x = env.step(&[0.5]).unwrap().obs[0];
    }
    (x - start).abs()
}

#[test]
fn welded_pieces_that_meet_do_not_hold_a_ball_rolling_between_them() {
    // Rails welded to the beam, touching the stops welded to it where they end: one rigid part, whose pieces do not
    // collide. Before, their contacts fought the welds, and the ball did not move at all. Rolling without slipping
    // down 0.1 rad: 5/7 g sin 0.1 = 0.68 m/s^2, about 0.19 m within 1 s once the motor has tilted the beam (0.2 s).
    // (Its pairs are filtered, so Rapier recomputes their contacts at every step: on a beam with nothing welded to
    // it, Rapier's contact recycling keeps the level beam's contact normal for a while, and the ball stays put.)
    let railed = ball_roll(RAILS_AND_STOPS, 20);
    assert!(
        railed > 0.12,
        "between welded rails the ball rolled {railed} m in 1 s"
    );
    // Nor do they overlap as far as the scene's checks go: rails 1 cm into the stops.
    let into = RAILS_AND_STOPS.replace("(0.28, 0.005, 0.015)", "(0.29, 0.005, 0.015)");
    let scene = TaskScene::from_ron(&BEAM.replace("{pieces}", &into), "beam.scn.ron").unwrap();
    assert_eq!(
        qamlab_sim::physics::overlaps_at_authored_poses(&scene, 0.0),
        vec![]
    );
    let into_stops = ball_roll(&into, 20);
    assert!(
        into_stops > 0.12,
        "between welded rails 1 cm into the stops the ball rolled {into_stops} m in 1 s"
    );
}
