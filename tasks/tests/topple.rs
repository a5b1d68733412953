//! The topple example (`assets/tasks/examples/topple.scn.ron`): its cylinder, pushed from behind along the drawn
//! heading, falls that way and the axis goal sees it; pushed the wrong way, it falls and the goal does not hold.

use qamlab_sim::{BatchedEnv, EnvOptions, TaskScene};

const TOPPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../assets/tasks/examples/topple.scn.ron"
);

/// Per env of `seeds`, whether a push from behind the cylinder along the drawn heading turned by `turn` radians
/// succeeded within the episode (the finger first goes to 7 cm behind the cylinder, then pushes through it).
fn pushes(seeds: &[u64], turn: f32) -> Vec<bool> {
    let scene = TaskScene::from_file(TOPPLE).unwrap();
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    let n = seeds.len();
    let mut env = BatchedEnv::new(&scene, n, options).unwrap();
    let spec = env.spec().clone();
    assert_eq!(
        spec.obs_dim, 12,
        "finger, cylinder, axis, direction: {:?}",
        spec.obs_names
    );
    let mut obs = env.reset(seeds).unwrap().to_vec();
    let mut pushing = vec![false; n];
    let mut succeeded = vec![false; n];
    for _ in 0..spec.episode_length {
        let mut actions = vec![0.0; n * 2];
        for i in 0..n {
            let o = &obs[i * 12..(i + 1) * 12];
            let (finger, cylinder) = ([o[0], o[1]], [o[3], o[4]]);
            let heading = o[10].atan2(o[9]) + turn;
            let d = [heading.cos(), heading.sin()];
            let behind = [cylinder[0] - 0.07 * d[0], cylinder[1] - 0.07 * d[1]];
            let off = ((finger[0] - behind[0]).powi(2) + (finger[1] - behind[1]).powi(2)).sqrt();
            pushing[i] |= off < 0.005;
            let target = if pushing[i] {
                [cylinder[0] + 0.1 * d[0], cylinder[1] + 0.1 * d[1]]
            } else {
                behind
            };
            for k in 0..2 {
                actions[i * 2 + k] = ((target[k] - finger[k]) / 0.02).clamp(-1.0, 1.0);
            }
        }
        let out = env.step(&actions).unwrap();
        for (i, s) in succeeded.iter_mut().enumerate() {
            *s |= out.success[i];
        }
        obs.copy_from_slice(&out.obs);
    }
    succeeded
}

#[test]
fn a_push_along_the_drawn_heading_topples_the_cylinder_that_way() {
    let seeds: Vec<u64> = (0..16).collect();
    let along = pushes(&seeds, 0.0);
    let solved = along.iter().filter(|&&s| s).count();
    assert!(
        solved >= 14,
        "{solved} of 16 toppled toward the heading: {along:?}"
    );
    // A push 1.2 rad off the heading (beyond the 0.4 rad tolerance, and the cylinder lies where it fell).
    let aside = pushes(&seeds, 1.2);
    assert!(aside.iter().all(|&s| !s), "{aside:?}");
}
