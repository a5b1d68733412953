//! Bodies that leave the scene ([`qamlab_sim::extent::SceneExtent::escape`]) under the oracle: the review's
//! gripper at stiffness 1e7 squeezes the cube off cube-single's table (which has no floor), where it falls for the
//! rest of the episode; the built-in gripper does not.

use qamlab_sim::extent::SceneExtent;
use qamlab_sim::{BatchedEnv, EnvOptions, TaskScene};
use qamlab_tasks::{BUILTIN_TASKS, Oracle, OracleConfig};

/// The bodies that left the scene in one episode of each of 32 envs the oracle solves, by env.
fn escapes(text: &str) -> Vec<String> {
    let scene = TaskScene::from_ron(text, "edited").unwrap();
    let extent = SceneExtent::of(&scene);
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&scene, 32, options).unwrap();
    let spec = env.spec().clone();
    let seeds: Vec<u64> = (0..32).collect();
    let mut oracle = Oracle::new(&scene, &spec, OracleConfig::default(), &seeds).unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let mut found: Vec<Option<String>> = vec![None; 32];
    for _ in 0..spec.episode_length {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for (i, seen) in found.iter_mut().enumerate() {
            let row = &out.final_qpos[i * spec.qpos_dim..(i + 1) * spec.qpos_dim];
            if let (None, Some(escape)) = (&seen, extent.escape(&spec, row)) {
                *seen = Some(format!("env {i}: {escape}"));
            }
        }
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    found.into_iter().flatten().collect()
}

#[test]
fn a_cube_flung_off_the_table_is_found_and_the_built_ins_is_not() {
    let text = BUILTIN_TASKS[0].1;
    assert_eq!(escapes(text), Vec::<String>::new());
    let stiff = text.replacen("stiffness: 4000.0", "stiffness: 10000000.0", 1);
    assert_ne!(stiff, text);
    let found = escapes(&stiff);
    assert!(!found.is_empty(), "the stiff gripper flings no cube out");
    assert!(
        found
            .iter()
            .all(|e| e.contains(": body \"cube\" left the scene: it is at (")),
        "{found:?}"
    );
}
