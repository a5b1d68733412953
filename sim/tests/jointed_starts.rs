//! A RandomizePose on the root of a joint tree moves the whole tree rigidly at reset, so no joint tears; one on any
//! other body of a tree is refused, naming the root that may carry it.

use bevy::math::{Quat, Vec3};
use bevy_rapier3d::rapier::prelude::Pose;
use qamlab_sim::env::{EnvState, draw_start, reset_env};
use qamlab_sim::extent::SceneExtent;
use qamlab_sim::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The scene's settings, with no gravity (bodies stay where they are put), and a goal.
const SETTINGS: &str = r#"1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "arm", episode_length: 40, control_dt: 0.05, substeps: 5,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "bend", joints: ["elbow"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 200.0, max_force: 1000.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [Position(frame: "base")]),
    }),
    20: (components: {"qamlab_sim::authoring::Goal": (name: "home", frame: "hand", target: (0.0, 0.0, 1.0), tolerance: 0.1)}),"#;

/// A three-body arm: "base" (free), "arm" hinged to it about y, "hand" hinged to the arm about z, the arm authored
/// turned a quarter turn about x; `BASE`, `ARM` and `HAND` stand for more components on each (a RandomizePose),
/// `HAND_KIND` for the hand's kind.
const BASE: &str = r#"(components: {
      "qamlab_sim::authoring::Body": (name: "base", kind: Dynamic, translation: (0.0, 0.0, 1.0),
        rotation: (0.0, 0.0, 0.0, 1.0), extra_mass: 1.0),
      BASE
    }),"#;
const ARM: &str = r#"(components: {
      "qamlab_sim::authoring::Body": (name: "arm", kind: Dynamic, translation: (0.5, 0.0, 1.0),
        rotation: (0.70710678, 0.0, 0.0, 0.70710678), extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "elbow", parent: "base", child: "arm", kind: Revolute(axis: (0.0, 1.0, 0.0)),
        anchor: (0.25, 0.0, 1.0)),
      ARM
    }),"#;
const HAND: &str = r#"(components: {
      "qamlab_sim::authoring::Body": (name: "hand", kind: HAND_KIND, translation: (0.9, 0.1, 1.0),
        rotation: (0.0, 0.0, 0.0, 1.0), extra_mass: 0.2),
      "qamlab_sim::authoring::Joint": (name: "wrist", parent: "arm", child: "hand", kind: Revolute(axis: (0.0, 0.0, 1.0)),
        anchor: (0.75, 0.0, 1.0)),
      HAND
    }),"#;

/// The base's draw: a wide one, turned up to half a turn either way.
const DRAWN: &str = r#""qamlab_sim::authoring::RandomizePose": (x: Some((min: 1.0, max: 2.0)), y: Some((min: -1.0, max: 0.0)),
        z: Some((min: 0.5, max: 1.5)), yaw: Some((min: -3.0, max: 3.0))),"#;

/// The arm scene with `base`, `arm` and `hand` as their extra components, the hand of `hand_kind`, and the base
/// written first, or last (`base_last`).
fn scene_text(base: &str, arm: &str, hand: &str, hand_kind: &str, base_last: bool) -> String {
    let [b, a, h] = [
        BASE.replace("BASE", base),
        ARM.replace("ARM", arm),
        HAND.replace("HAND_KIND", hand_kind).replace("HAND", hand),
    ];
    let bodies = if base_last { [a, h, b] } else { [b, a, h] };
    format!(
        "(resources: {{}}, entities: {{\n    {SETTINGS}\n    2: {}\n    3: {}\n    4: {}\n  }})",
        bodies[0], bodies[1], bodies[2]
    )
}

/// Body `name`'s index.
fn body(scene: &TaskScene, name: &str) -> usize {
    scene
        .bodies
        .iter()
        .position(|b| b.body.name == name)
        .unwrap()
}

/// Body `b`'s authored pose.
fn authored(scene: &TaskScene, b: usize) -> Pose {
    let body = &scene.bodies[b].body;
    Pose::from_parts(body.translation, body.rotation.normalize())
}

/// How far apart two poses are: the larger of the distance between their origins and of their quaternions'.
fn apart(a: &Pose, b: &Pose) -> f32 {
    let (qa, qb) = (a.rotation, b.rotation);
    let q = (qa - qb).length().min((qa + qb).length());
    a.translation.distance(b.translation).max(q)
}

#[test]
fn a_randomised_root_carries_its_joint_tree_whole() {
    for base_last in [false, true] {
        let text = scene_text(DRAWN, "", "", "Dynamic", base_last);
        let scene = TaskScene::from_ron(&text, "arm.scn.ron").unwrap();
        let (base, arm, hand) = (
            body(&scene, "base"),
            body(&scene, "arm"),
            body(&scene, "hand"),
        );
        assert_eq!(
            scene.carried_by(),
            (0..3)
                .map(|b| (b != base).then_some(base))
                .collect::<Vec<_>>()
        );
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut low, mut high) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
        for _ in 0..200 {
            let poses = draw_start(&scene, &mut rng, &mut [Vec3::ZERO], |_| {});
            let at = poses[base];
            let yaw = Quat::from_rotation_z(at.rotation.to_euler(bevy::math::EulerRot::ZYX).0);
            assert!(
                apart(&Pose::from_parts(at.translation, yaw), &at) < 1e-5,
                "{at:?} turned about z only"
            );
            low = low.min(at.translation);
            high = high.max(at.translation);
            // Every body where it is authored relative to the base: the same rigid motion as the base's.
            for m in [arm, hand] {
                let carried = at * authored(&scene, base).inv_mul(&authored(&scene, m));
                assert!(
                    apart(&poses[m], &carried) < 1e-5,
                    "{:?} vs {carried:?}",
                    poses[m]
                );
            }
            // The extent holds every place the draw puts a body.
            let extent = SceneExtent::of(&scene);
            for p in &poses {
                let t = p.translation;
                assert!(
                    t.cmpge(extent.min - 1e-5).all() && t.cmple(extent.max + 1e-5).all(),
                    "{t} outside {extent:?}"
                );
            }
        }
        assert!(
            low.cmplt(Vec3::new(1.05, -0.95, 0.55)).all()
                && high.cmpgt(Vec3::new(1.95, -0.05, 1.45)).all(),
            "the base's draws span {low} to {high}"
        );
    }
}

#[test]
fn a_randomised_root_starts_its_joints_whole_and_at_their_authored_angles() {
    let text = scene_text(DRAWN, "", "", "Dynamic", true);
    let scene = TaskScene::from_ron(&text, "arm.scn.ron").unwrap();
    let spec = EnvSpec::of(&scene);
    for seed in 0..20 {
        let mut state = EnvState::new(&scene, &spec, seed);
        let physics = reset_env(&scene, &mut state);
        for (j, def) in scene.joints.iter().enumerate() {
            // The joint's frame as each of its bodies holds it: one frame, where the scene authored it relative
            // to both.
            let on_parent = physics.pose(def.parent) * def.frame1;
            let on_child = physics.pose(def.child) * def.frame2;
            assert!(
                apart(&on_parent, &on_child) < 1e-5,
                "seed {seed}: joint {j} torn: {on_parent:?} vs {on_child:?}"
            );
            let q = physics.joint_position(&scene, j);
            assert!(q.abs() < 1e-4, "seed {seed}: joint {j} starts at {q}");
        }
        let x = state.obs[0];
        assert!(
            (1.0..=2.0).contains(&x),
            "seed {seed}: the base starts at x = {x}"
        );
    }
}

/// An `Invalid` error's field and message; any other outcome fails the test.
fn refusal(text: &str) -> (String, String) {
    match TaskScene::from_ron(text, "arm.scn.ron") {
        Err(SimError::Invalid { field, message, .. }) => (field, message),
        Err(other) => panic!("expected an Invalid error, got {other}"),
        Ok(_) => panic!("the scene loaded"),
    }
}

#[test]
fn a_randomised_body_that_is_not_its_trees_root_is_refused_naming_the_root() {
    let one = r#""qamlab_sim::authoring::RandomizePose": (x: Some((min: 0.4, max: 0.6))),"#;
    for (base, arm, hand, kind, field, says) in [
        (
            "",
            one,
            "",
            "Dynamic",
            "Joint.child",
            "body \"arm\" has a RandomizePose, but it is the child of joint \"elbow\", and a pose drawn for it \
             alone would tear the joint: only the root of a joint tree (a body that is no joint's child; here \
             \"base\") may be randomised",
        ),
        (
            "",
            "",
            one,
            "Dynamic",
            "Joint.child",
            "body \"hand\" has a RandomizePose, but it is the child of joint \"wrist\"",
        ),
        (
            DRAWN,
            "",
            "",
            "Kinematic",
            "Joint.child",
            "body \"base\" has a RandomizePose, which moves every body joined to it with it, but \"hand\", joined \
             to it, is Kinematic",
        ),
    ] {
        for base_last in [false, true] {
            let (f, message) = refusal(&scene_text(base, arm, hand, kind, base_last));
            assert!(f == field && message.contains(says), "{f}: {message}");
        }
    }
}

#[test]
fn two_roots_of_one_tree_cannot_both_be_randomised() {
    // A second root: "post" hinged to the hand as its parent, so the hand has two parents, base and post.
    let text = scene_text(DRAWN, "", "", "Dynamic", false).replace(
        "\n  })",
        r#"
    5: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Dynamic, translation: (0.9, 0.5, 1.0),
        rotation: (0.0, 0.0, 0.0, 1.0), extra_mass: 0.2),
      "qamlab_sim::authoring::Joint": (name: "stay", parent: "post", child: "hand", kind: Fixed, anchor: (0.9, 0.3, 1.0)),
      POST
    }),
  })"#,
    );
    // Unrandomised, the second root moves with the first.
    let scene = TaskScene::from_ron(&text.replace("POST", ""), "arm.scn.ron").unwrap();
    assert_eq!(scene.carried_by()[body(&scene, "post")], Some(0));
    let drawn = text.replace(
        "POST",
        r#""qamlab_sim::authoring::RandomizePose": (x: Some((min: 0.8, max: 1.0))),"#,
    );
    let (field, message) = refusal(&drawn);
    assert!(
        field == "Joint.parent"
            && message
                .contains("body \"post\" has a RandomizePose, but so does \"base\", joined to it"),
        "{field}: {message}"
    );
}

#[test]
fn a_keep_away_from_a_carried_body_needs_its_root_drawn_first() {
    // "ball" keeps away from the arm, which the base's draw places: the base must come before the ball.
    let ball = |id: usize| {
        format!(
            r#"{id}: (components: {{
      "qamlab_sim::authoring::Body": (name: "ball", kind: Dynamic, translation: (3.0, 0.0, 1.0),
        rotation: (0.0, 0.0, 0.0, 1.0), extra_mass: 0.2),
      "qamlab_sim::authoring::RandomizePose": (x: Some((min: 2.5, max: 3.5)), min_distance_from: [("arm", 0.1)]),
    }}),"#
        )
    };
    let base_last = scene_text(DRAWN, "", "", "Dynamic", true);
    // The ball between the arm and the base: refused.
    let between = base_last.replacen("\n    4: ", &format!("\n    {}\n    4: ", ball(9)), 1);
    let (field, message) = refusal(&between);
    assert!(
        field == "RandomizePose.min_distance_from[0]"
            && message.contains(
                "\"arm\" moves with \"base\", joined to it, whose pose is drawn after this body's"
            )
            && message.contains("move \"base\" above \"ball\""),
        "{field}: {message}"
    );
    // After the base: loads.
    let after = base_last.replace("\n  })", &format!("\n    {}\n  }})", ball(5)));
    TaskScene::from_ron(&after, "arm.scn.ron").unwrap();
}
