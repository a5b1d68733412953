//! The authoring features do what they say in the physics: every collider shape rests at its size, motors track
//! velocity and position targets, fixed joints hold, goals and the reward forms count correctly.

mod common;

use bevy::math::Vec3;
use qamlab_sim::prelude::*;

const SCENE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "features", episode_length: 1000, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: GoalsSatisfiedMinusCount),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "spin", joints: ["hinge"], control: Velocity(scale: 2.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 50.0, max_force: 100.0),
        (name: "slide", joints: ["rail"], control: PositionAbsolute(at_min: -0.1, at_max: 0.1),
         range: (min: -1.0, max: 1.0), stiffness: 400.0, damping: 40.0, max_force: 100.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [
        Position(frame: "ball"), Position(frame: "can"), Position(frame: "pill"), Position(frame: "hull"),
        JointVelocity(joint: "hinge"), JointPosition(joint: "rail"), RelativePosition(from: "can", to: "cap"),
        JointFraction(actuator: "slide"), Position(frame: "tip"),
      ]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "ground", kind: Fixed, translation: (0.0, 0.0, -0.1), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (2.0, 2.0, 0.1)), density: 0.0, friction: 0.8),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "ball", kind: Dynamic, translation: (0.0, 0.0, 0.3), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Ball(radius: 0.05), density: 500.0, friction: 0.8),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "can", kind: Dynamic, translation: (0.5, 0.0, 0.2), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cylinder(half_height: 0.04, radius: 0.03), density: 500.0, friction: 0.8),
    }),
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "cap", kind: Dynamic, translation: (0.5, 0.0, 0.25), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.05),
      "qamlab_sim::authoring::Joint": (name: "weld", parent: "can", child: "cap", kind: Fixed, anchor: (0.5, 0.0, 0.25)),
    }),
    6: (components: {
      // A capsule lying along y (rotated a quarter turn about x): it rests on its side, centre one radius up.
      "qamlab_sim::authoring::Body": (name: "pill", kind: Dynamic, translation: (-0.5, 0.0, 0.2),
        rotation: (0.70710677, 0.0, 0.0, 0.70710677)),
      "qamlab_sim::authoring::Collider": (shape: Capsule(half_height: 0.05, radius: 0.03), density: 500.0, friction: 0.8),
    }),
    7: (components: {
      "qamlab_sim::authoring::Body": (name: "hull", kind: Dynamic, translation: (0.0, 0.5, 0.2), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: ConvexHull(points: [(-0.02, -0.02, -0.02), (0.02, -0.02, -0.02),
        (-0.02, 0.02, -0.02), (0.02, 0.02, -0.02), (-0.02, -0.02, 0.02), (0.02, -0.02, 0.02), (-0.02, 0.02, 0.02),
        (0.02, 0.02, 0.02)]), density: 500.0, friction: 0.8),
    }),
    8: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Fixed, translation: (0.0, -0.5, 1.0), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    9: (components: {
      "qamlab_sim::authoring::Body": (name: "wheel", kind: Dynamic, translation: (0.0, -0.5, 1.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 1.0),
      "qamlab_sim::authoring::Joint": (name: "hinge", parent: "post", child: "wheel", kind: Revolute(axis: (0.0, 0.0, 1.0)),
        anchor: (0.0, -0.5, 1.0)),
    }),
    10: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, -0.5, 1.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "post", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, -0.5, 1.0), limits: Some((min: -0.1, max: 0.1))),
    }),
    11: (components: {
      "qamlab_sim::authoring::Site": (name: "tip", body: "wheel", offset: (0.1, 0.0, 0.0)),
    }),
    12: (components: {"qamlab_sim::authoring::Goal": (name: "ball_home", frame: "ball", target: (0.0, 0.0, 0.05), tolerance: 0.01)}),
    13: (components: {"qamlab_sim::authoring::Goal": (name: "can_home", frame: "can", target: (0.5, 0.0, 0.04), tolerance: 0.01)}),
    14: (components: {"qamlab_sim::authoring::Goal": (name: "never", frame: "hull", target: (5.0, 5.0, 5.0), tolerance: 0.01)}),
  },
)"#;

#[test]
fn shapes_motors_joints_sites_and_goals_behave() {
    let scene = TaskScene::from_ron(SCENE, "features.scn.ron").unwrap();
    let mut env = BatchedEnv::new(&scene, 1, EnvOptions::default()).unwrap();
    assert_eq!(env.spec().obs_dim, 3 * 4 + 1 + 1 + 3 + 1 + 3);
    env.reset(&[0]).unwrap();
    let mut out = None;
    for _ in 0..60 {
        out = Some(env.step(&[1.0, 1.0]).unwrap().clone());
    }
    let out = out.unwrap();
    let o = &out.obs;
    let near = |x: f32, want: f32, tol: f32, what: &str| {
        assert!((x - want).abs() <= tol, "{what}: {x} (want {want})")
    };
    // Each shape rests on the ground at its own half height.
    near(o[2], 0.05, 0.003, "ball centre height");
    near(o[5], 0.04, 0.003, "cylinder (along z) centre height");
    near(o[8], 0.03, 0.003, "capsule on its side, centre height");
    near(o[11], 0.02, 0.003, "convex hull cube centre height");
    // The velocity motor spins the wheel at action x scale; the position motor holds the slider at at_max.
    near(o[12], 2.0, 0.05, "hinge velocity");
    near(o[13], 0.1, 0.005, "rail position");
    // The fixed joint keeps the cap where it was authored relative to the can.
    near(o[14], 0.0, 0.003, "cap - can x");
    near(o[16], 0.05, 0.003, "cap - can z");
    near(o[17], 1.0, 0.05, "slide joint fraction");
    // The site turns with the wheel: still 0.1 m from the axis.
    let r = ((o[18] - 0.0).powi(2) + (o[19] + 0.5).powi(2)).sqrt();
    near(r, 0.1, 0.002, "site radius");
    // Two of three goals hold: reward (satisfied - count) = -1, and no success.
    assert_eq!(out.reward, vec![-1.0]);
    assert_eq!(out.success, vec![false]);
}

/// Two sliders on rails driven by one `PositionDelta` actuator; rail `a` stops at 0.05, rail `b` at 0.5.
const TWO_RAILS: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "two-rails", episode_length: 1000, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "push", joints: ["rail_a", "rail_b"], control: PositionDelta(scale: 0.01), range: (min: -1.0, max: 1.0),
         stiffness: 400.0, damping: 40.0, max_force: 100.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [JointPosition(joint: "rail_a"), JointPosition(joint: "rail_b")]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Fixed, translation: (0.0, 0.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "a", kind: Dynamic, translation: (0.0, 0.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail_a", parent: "post", child: "a", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 0.0, 0.0), limits: Some((min: -0.5, max: 0.05))),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "b", kind: Dynamic, translation: (0.0, 1.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail_b", parent: "post", child: "b", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 1.0, 0.0), limits: Some((min: -0.5, max: 0.5))),
    }),
    5: (components: {"qamlab_sim::authoring::Goal": (name: "far", frame: "a", target: (5.0, 0.0, 0.0), tolerance: 0.01)}),
  },
)"#;

#[test]
fn joints_driven_together_share_one_target() {
    // Pushed on, `a` stops at its limit; `b` goes on only as far as the shared target (their mean position plus
    // one step) lets it: a couple of steps ahead, not to the end of its rail.
    let scene = TaskScene::from_ron(TWO_RAILS, "two-rails.scn.ron").unwrap();
    let mut env = BatchedEnv::new(&scene, 1, EnvOptions::default()).unwrap();
    env.reset(&[0]).unwrap();
    for _ in 0..100 {
        env.step(&[1.0]).unwrap();
    }
    let obs = &env.output().obs;
    let (a, b) = (obs[0], obs[1]);
    assert!((a - 0.05).abs() < 0.005, "a at {a}");
    assert!(b > a && b - a < 0.03, "a at {a}, b at {b}");
}

#[test]
fn collider_bounds_box_each_shape_at_its_pose() {
    let scene = TaskScene::from_ron(SCENE, "features").unwrap();
    let bounds = |name: &str| {
        let b = scene
            .bodies
            .iter()
            .position(|d| d.body.name == name)
            .unwrap();
        scene.collider_bounds(b)
    };
    let close = |(min, max): (Vec3, Vec3), lo: [f32; 3], hi: [f32; 3]| {
        (min - Vec3::from(lo)).abs().max_element() < 1e-5
            && (max - Vec3::from(hi)).abs().max_element() < 1e-5
    };
    let cases = [
        ("ground", [-2.0, -2.0, -0.2], [2.0, 2.0, 0.0]),
        ("ball", [-0.05, -0.05, 0.25], [0.05, 0.05, 0.35]),
        // Upright cylinder: its height along z, its radius across.
        ("can", [0.47, -0.03, 0.16], [0.53, 0.03, 0.24]),
        // The capsule turned to lie along y: half height plus radius along y, the radius across.
        ("pill", [-0.53, -0.08, 0.17], [-0.47, 0.08, 0.23]),
        ("hull", [-0.02, 0.48, 0.18], [0.02, 0.52, 0.22]),
    ];
    for (name, lo, hi) in cases {
        let b = bounds(name).unwrap();
        assert!(close(b, lo, hi), "{name}: {b:?}, expected {lo:?} .. {hi:?}");
    }
    assert!(
        bounds("wheel").is_none(),
        "a body without a collider has no bounds"
    );
}

#[test]
fn solver_settings_reach_rapier() {
    // A scene that leaves `solver_passes` out gets one pass; one that sets it gets that many.
    let passes = |text: &str| {
        let scene = TaskScene::from_ron(text, "features").unwrap();
        let spec = EnvSpec::of(&scene);
        let mut state = qamlab_sim::env::EnvState::new(&scene, &spec, 0);
        let physics = qamlab_sim::env::reset_env(&scene, &mut state);
        let p = &physics.world.integration_parameters;
        (p.num_solver_iterations, p.num_internal_pgs_iterations)
    };
    assert_eq!(passes(SCENE), (4, 1));
    let edited = SCENE.replace(
        "solver_iterations: 4,",
        "solver_iterations: 6, solver_passes: 3,",
    );
    assert_eq!(passes(&edited), (6, 3));
}

#[test]
fn at_the_longest_physics_step_the_gantry_still_moves() {
    // Physics steps of MAX_PHYSICS_STEP (0.5 / 5): each action still moves the gantry its 5 cm, within 3 mm. From
    // 0.5 s Rapier puts the bodies to sleep after a step, and they move no more.
    let text = common::cube_single_text().replacen("control_dt: 0.05,", "control_dt: 0.5,", 1);
    let scene = TaskScene::from_ron(&text, "long-steps").unwrap();
    let step = scene.settings.control_dt / scene.settings.substeps as f32;
    assert!((step - qamlab_sim::scene::MAX_PHYSICS_STEP).abs() < 1e-6);
    let spec = EnvSpec::of(&scene);
    let mut state = qamlab_sim::env::EnvState::new(&scene, &spec, 0);
    let mut physics = qamlab_sim::env::reset_env(&scene, &mut state);
    let x = scene
        .joints
        .iter()
        .position(|j| j.joint.name == "x")
        .unwrap();
    let start = physics.joint_position(&scene, x);
    let mut action = vec![0.0; scene.actuators.len()];
    action[0] = 1.0;
    for k in 1..=3 {
        qamlab_sim::env::apply_action(&scene, &mut physics, &action);
        physics.step(scene.settings.substeps);
        let moved = physics.joint_position(&scene, x) - start;
        assert!((moved - 0.05 * k as f32).abs() < 3e-3, "step {k}: {moved}");
    }
}

#[test]
fn bodies_placed_inside_each_other_are_found() {
    let text = common::cube_single_text();
    // As authored, the cube rests on the table (touching, not inside it) and the gripper is clear of both.
    let scene = TaskScene::from_ron(&text, "cube-single").unwrap();
    assert_eq!(
        qamlab_sim::physics::overlaps_at_authored_poses(&scene, 0.002),
        vec![]
    );
    // Sunk 2 cm into the table.
    let sunk = text.replacen(
        "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02)",
        "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.0)",
        1,
    );
    let scene = TaskScene::from_ron(&sunk, "sunk").unwrap();
    let overlaps = qamlab_sim::physics::overlaps_at_authored_poses(&scene, 0.002);
    let names: Vec<_> = overlaps
        .iter()
        .map(|o| {
            (
                scene.bodies[o.bodies.0].body.name.as_str(),
                scene.bodies[o.bodies.1].body.name.as_str(),
            )
        })
        .collect();
    assert_eq!(names, [("table", "cube")], "{overlaps:?}");
    assert!((overlaps[0].depth - 0.02).abs() < 1e-3, "{overlaps:?}");
}

#[test]
fn a_points_depth_inside_a_collider_is_its_distance_to_the_surface() {
    let scene = TaskScene::from_ron(&common::cube_single_text(), "cube-single").unwrap();
    let body = |name: &str| {
        scene
            .bodies
            .iter()
            .position(|b| b.body.name == name)
            .unwrap()
    };
    let depth =
        |b: &str, at: Vec3| qamlab_sim::physics::depth_inside_at_authored_pose(&scene, body(b), at);
    // The table's top is at z = 0: 3 cm under it is 3 cm deep, 2 cm over it 2 cm outside.
    let under = depth("table", Vec3::new(0.1, 0.1, -0.03)).unwrap();
    assert!((under - 0.03).abs() < 1e-5, "{under}");
    let over = depth("table", Vec3::new(0.1, 0.1, 0.02)).unwrap();
    assert!((over + 0.02).abs() < 1e-5, "{over}");
    // The 4 cm cube's centre is 2 cm from its faces; the gantry has no collider.
    let centre = depth("cube", Vec3::new(0.0, 0.0, 0.02)).unwrap();
    assert!((centre - 0.02).abs() < 1e-5, "{centre}");
    assert_eq!(depth("gantry", Vec3::ZERO), None);
}

#[test]
fn overlaps_without_a_dynamic_body_are_no_concern() {
    // A kinematic slab sunk into the fixed table: Rapier makes no contact between them, so nothing is pushed apart.
    let slab = r#"    99: (
      components: {
        "qamlab_sim::authoring::Body": (name: "slab", kind: Kinematic, translation: (0.3, 0.3, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),
        "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.05, 0.05, 0.05)), density: 0.0, friction: 1.0),
      },
    ),
    12: ("#;
    let text = common::cube_single_text().replacen("    12: (", slab, 1);
    let scene = TaskScene::from_ron(&text, "kinematic").unwrap();
    assert!(scene.bodies.iter().any(|b| b.body.name == "slab"));
    assert_eq!(
        qamlab_sim::physics::overlaps_at_authored_poses(&scene, 0.002),
        vec![]
    );
}
