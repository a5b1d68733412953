//! The overlap check of moved bodies, built once for a scene, finds what rebuilding the scene's physics with the
//! bodies moved finds: the same pairs, as deep.

mod common;

use bevy::math::Vec3;
use common::*;
use qamlab_sim::physics::{AuthoredColliders, Overlap, overlaps_at_authored_poses};
use qamlab_sim::prelude::*;

/// The pairs of `body` with another body, overlapping deeper than 1 mm, when `body` alone is moved by `shift`:
/// from the scene rebuilt with it moved.
fn rebuilt(scene: &TaskScene, body: usize, shift: Vec3) -> Vec<(usize, i32)> {
    let mut moved = scene.clone();
    moved.bodies[body].body.translation += shift;
    let mut pairs: Vec<(usize, i32)> = overlaps_at_authored_poses(&moved, 0.001)
        .into_iter()
        .filter_map(
            |Overlap {
                 bodies: (a, b),
                 depth,
             }| match (a == body, b == body) {
                (true, _) => Some((b, micrometres(depth))),
                (_, true) => Some((a, micrometres(depth))),
                _ => None,
            },
        )
        .collect();
    pairs.sort_unstable();
    pairs
}

/// A depth in whole micrometres, to compare depths measured from poses composed in other orders.
fn micrometres(depth: f32) -> i32 {
    (depth * 1e6).round() as i32
}

#[test]
fn moved_bodies_overlap_what_the_rebuilt_scene_says() {
    let maze =
        TaskScene::from_file(cube_single_path().with_file_name("antmaze-umaze.scn.ron")).unwrap();
    let mut compared = 0;
    let mut found = 0;
    for scene in [cube_single(), maze] {
        let colliders = AuthoredColliders::new(&scene);
        let steps = [-0.3, -0.1, -0.02, 0.0, 0.05, 0.2];
        for body in 0..scene.bodies.len() {
            for (i, &dx) in steps.iter().enumerate() {
                let shift = Vec3::new(
                    dx,
                    steps[(i + 2) % steps.len()],
                    steps[(i + 4) % steps.len()],
                );
                let mut pairs: Vec<(usize, i32)> = colliders
                    .overlaps_when_moved(&[body], shift, 0.001, |_| true)
                    .into_iter()
                    .map(|o| {
                        assert_eq!(o.bodies.0, body);
                        (o.bodies.1, micrometres(o.depth))
                    })
                    .collect();
                pairs.sort_unstable();
                let expected = rebuilt(&scene, body, shift);
                assert_eq!(pairs.len(), expected.len(), "body {body} moved by {shift}");
                for ((other, depth), (other_then, depth_then)) in pairs.iter().zip(&expected) {
                    assert_eq!(other, other_then, "body {body} moved by {shift}");
                    assert!(
                        (depth - depth_then).abs() <= 2,
                        "body {body} moved by {shift}: {depth} µm, rebuilt {depth_then} µm"
                    );
                }
                compared += 1;
                found += pairs.len();
            }
        }
    }
    // Moves into the table, the floor and the walls were among them.
    assert!(
        compared > 50 && found > 20,
        "{compared} moves, {found} overlaps"
    );
}

/// The pairs of a body of `group` with a body outside it, overlapping deeper than 1 mm, when the group is moved by
/// `shift`: from the moved-body test, and from the scene rebuilt with the group moved; each `(member, other, µm)`.
fn group_pairs(scene: &TaskScene, group: &[usize], shift: Vec3) -> [Vec<(usize, usize, i32)>; 2] {
    let mut moved_test: Vec<(usize, usize, i32)> = AuthoredColliders::new(scene)
        .overlaps_when_moved(group, shift, 0.001, |_| true)
        .into_iter()
        .map(|o| (o.bodies.0, o.bodies.1, micrometres(o.depth)))
        .collect();
    let mut moved = scene.clone();
    for &b in group {
        moved.bodies[b].body.translation += shift;
    }
    let mut rebuilt: Vec<(usize, usize, i32)> = overlaps_at_authored_poses(&moved, 0.001)
        .into_iter()
        .filter_map(
            |Overlap {
                 bodies: (a, b),
                 depth,
             }| {
                match (group.contains(&a), group.contains(&b)) {
                    (true, false) => Some((a, b, micrometres(depth))),
                    (false, true) => Some((b, a, micrometres(depth))),
                    _ => None,
                }
            },
        )
        .collect();
    moved_test.sort_unstable();
    rebuilt.sort_unstable();
    [moved_test, rebuilt]
}

#[test]
fn moved_groups_keep_the_joint_and_collision_group_rules() {
    // The gantry's moving links (jointed to each other and to the fixed frame; fingers that touch only the world's
    // membership) lowered into the table and the cube, and the ant with its legs (a randomised tree) moved about.
    let cube = cube_single();
    let named = |scene: &TaskScene, names: &[&str]| -> Vec<usize> {
        names
            .iter()
            .map(|n| scene.bodies.iter().position(|b| b.body.name == *n).unwrap())
            .collect()
    };
    let gantry = named(
        &cube,
        &[
            "carriage_x",
            "carriage_y",
            "carriage_z",
            "palm",
            "finger_l",
            "finger_r",
        ],
    );
    let maze =
        TaskScene::from_file(cube_single_path().with_file_name("antmaze-umaze.scn.ron")).unwrap();
    let carried = maze.carried_by();
    let root = (0..maze.bodies.len())
        .find(|&b| maze.bodies[b].randomize.is_some())
        .unwrap();
    let ant: Vec<usize> = std::iter::once(root)
        .chain((0..maze.bodies.len()).filter(|&b| carried[b] == Some(root)))
        .collect();
    assert!(ant.len() > 4, "the ant's tree: {ant:?}");
    let mut found = 0;
    for (scene, group) in [(&cube, &gantry), (&maze, &ant)] {
        for shift in [
            Vec3::new(0.0, 0.0, -0.2),
            Vec3::new(0.0, 0.0, -0.24),
            Vec3::new(0.3, -0.2, -0.1),
            Vec3::new(-1.0, 0.5, 0.0),
            Vec3::new(0.0, 0.0, 0.3),
        ] {
            let [moved_test, rebuilt] = group_pairs(scene, group, shift);
            assert_eq!(
                moved_test.len(),
                rebuilt.len(),
                "{shift}: {moved_test:?} vs {rebuilt:?}"
            );
            for (a, b) in moved_test.iter().zip(&rebuilt) {
                assert!(
                    a.0 == b.0 && a.1 == b.1 && (a.2 - b.2).abs() <= 2,
                    "{shift}: {moved_test:?} vs {rebuilt:?}"
                );
            }
            found += moved_test.len();
        }
    }
    assert!(found > 5, "{found} overlaps");
}
