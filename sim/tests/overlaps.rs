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
