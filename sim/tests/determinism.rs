//! Same seeds, same trajectories: across runs and across batch sizes; resets restore the initial distribution.

mod common;

use common::*;
use qamlab_sim::prelude::*;

/// Options under which each episode runs its full `episode_length` steps: success does not end it.
fn full_length_episodes(episode_length: u32) -> EnvOptions {
    EnvOptions {
        terminate_on_success: false,
        episode_length: Some(episode_length),
        ..EnvOptions::default()
    }
}

/// The next step's actions of a batch: 5 from each env's own stream, in env order.
fn next_actions(streams: &mut [u64]) -> Vec<f32> {
    streams
        .iter_mut()
        .flat_map(|s| random_actions(s, 5))
        .collect()
}

/// Observation trajectory (obs after every step, as bits) of env `env` in a batch of `n` seeded `seeds`, driven by
/// per-env action streams that depend only on the env's seed.
fn trajectory(n: usize, seeds: &[u64], env: usize, steps: usize) -> Vec<u32> {
    let scene = cube_single();
    let mut batch = BatchedEnv::new(&scene, n, full_length_episodes(60)).unwrap();
    let mut out: Vec<u32> = batch.reset(seeds).unwrap()[env * 28..(env + 1) * 28]
        .iter()
        .map(|x| x.to_bits())
        .collect();
    let mut streams: Vec<u64> = seeds.to_vec();
    for _ in 0..steps {
        let actions = next_actions(&mut streams);
        let o = batch.step(&actions).unwrap();
        out.extend(o.obs[env * 28..(env + 1) * 28].iter().map(|x| x.to_bits()));
        out.extend(
            o.final_obs[env * 28..(env + 1) * 28]
                .iter()
                .map(|x| x.to_bits()),
        );
    }
    out
}

#[test]
fn same_seed_same_trajectory_across_runs_and_batch_sizes() {
    // 130 steps with 60-step episodes: two auto-resets are inside the compared stretch.
    let alone = trajectory(1, &[42], 0, 130);
    assert_eq!(alone, trajectory(1, &[42], 0, 130), "two runs differ");
    let in_batch = trajectory(4, &[7, 9, 42, 11], 2, 130);
    assert!(
        alone == in_batch,
        "env 2 of a batch of 4 differs from the same seed alone"
    );
    assert_ne!(
        alone,
        trajectory(1, &[43], 0, 130),
        "different seeds gave the same trajectory"
    );
}

#[test]
fn reset_restores_the_initial_distribution() {
    let scene = cube_single();
    let n = 32;
    let mut env = BatchedEnv::new(&scene, n, EnvOptions::default()).unwrap();
    let spec = env.spec().clone();
    let idx = |name: &str| spec.obs_names.iter().position(|n| n == name).unwrap();
    let seeds: Vec<u64> = (100..100 + n as u64).collect();
    env.reset(&seeds).unwrap();
    let mut state = 5u64;
    for _ in 0..30 {
        let a = random_actions(&mut state, n * 5);
        env.step(&a).unwrap();
    }
    let moved = env.output().qvel.iter().any(|v| v.abs() > 1e-3);
    assert!(moved, "random actions should have set things moving");
    let obs = env.reset(&seeds).unwrap().to_vec();
    let out = env.output();
    assert!(
        out.qvel.iter().all(|&v| v == 0.0),
        "velocities not zero after reset"
    );
    let (mut xs, mut ys) = (vec![], vec![]);
    for i in 0..n {
        let o = &obs[i * 28..(i + 1) * 28];
        let cube = [
            o[idx("cube.position.x")],
            o[idx("cube.position.y")],
            o[idx("cube.position.z")],
        ];
        let goal = [
            o[idx("cube_goal.target.x")],
            o[idx("cube_goal.target.y")],
            o[idx("cube_goal.target.z")],
        ];
        for v in [cube[0], cube[1], goal[0], goal[1]] {
            assert!(
                (-0.15..=0.15).contains(&v),
                "env {i}: {v} outside the randomisation range"
            );
        }
        assert_eq!(cube[2], 0.02);
        assert_eq!(goal[2], 0.02);
        let d = ((cube[0] - goal[0]).powi(2) + (cube[1] - goal[1]).powi(2)).sqrt();
        assert!(d >= 0.08, "env {i}: goal {d} m from the cube");
        for name in [
            "pinch.velocity.x",
            "pinch.velocity.z",
            "cube.velocity.x",
            "yaw.velocity",
        ] {
            assert_eq!(o[idx(name)], 0.0, "env {i}: {name}");
        }
        assert_eq!(&o[0..3], &[0.0, 0.0, 0.19]);
        xs.push(cube[0]);
        ys.push(cube[1]);
    }
    // The draws spread over the range rather than sitting at one value.
    let spread = |v: &[f32]| {
        v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min)
    };
    assert!(spread(&xs) > 0.15 && spread(&ys) > 0.15);
}

#[test]
fn time_limit_truncates_and_auto_resets() {
    let scene = cube_single();
    let mut env = BatchedEnv::new(&scene, 2, full_length_episodes(5)).unwrap();
    let first = env.reset(&[3, 4]).unwrap().to_vec();
    let a = [0.0, 0.0, -1.0, 0.0, 0.0].repeat(2);
    for t in 1..=5 {
        let out = env.step(&a).unwrap();
        assert_eq!(out.truncated, vec![t == 5; 2]);
        assert_eq!(out.terminated, vec![false; 2]);
        assert_eq!(out.reward, vec![-1.0; 2]);
        if t < 5 {
            assert_eq!(out.obs, out.final_obs);
        } else {
            // The final observation is the reached state (hand lowered); obs is a fresh episode.
            assert!(
                out.final_obs[2] < 0.1,
                "hand should have gone down: {}",
                out.final_obs[2]
            );
            assert_eq!(out.obs[2], 0.19);
            assert_ne!(
                out.obs[..28],
                first[..28],
                "the auto-reset continues the seed's stream, not restarts it"
            );
        }
    }
}

#[test]
fn restore_puts_envs_back_into_their_episodes_exactly() {
    let scene = cube_single();
    let options = full_length_episodes(40);
    let seeds = [3, 5, 8];
    let mut original = BatchedEnv::new(&scene, 3, options).unwrap();
    original.reset(&seeds).unwrap();
    // After 50 steps every env is 10 steps into its second episode, whose start it drew from where its stream
    // had got to. Each env's actions since its episode began are what `restore` is given.
    let mut streams: Vec<u64> = seeds.to_vec();
    let mut since_start: Vec<Vec<f32>> = vec![Vec::new(); 3];
    for _ in 0..50 {
        let actions = next_actions(&mut streams);
        let out = original.step(&actions).unwrap();
        for i in 0..3 {
            since_start[i].extend_from_slice(&actions[i * 5..(i + 1) * 5]);
            if out.truncated[i] {
                since_start[i].clear();
            }
        }
    }
    assert!(since_start.iter().all(|a| a.len() == 10 * 5));
    let positions = original.episode_word_positions();
    let lists: Vec<&[f32]> = since_start.iter().map(Vec::as_slice).collect();

    let mut restored = BatchedEnv::new(&scene, 3, options).unwrap();
    let obs = restored
        .restore(&seeds, &positions, &lists)
        .unwrap()
        .to_vec();
    assert_eq!(obs, original.output().obs, "restored observations differ");
    assert_eq!(restored.episode_word_positions(), positions);
    // And they go on alike, through the next auto-reset (which draws from the restored streams).
    for _ in 0..40 {
        let actions = next_actions(&mut streams);
        let a = output_bits(original.step(&actions).unwrap());
        let b = output_bits(restored.step(&actions).unwrap());
        assert!(a == b, "a restored env went its own way");
    }

    // Actions that end the episode cannot be the episode's, and leave the batch as it was.
    let long = vec![0.0; 5 * 40];
    let lists: Vec<&[f32]> = vec![&long, &[], &[]];
    let err = restored.restore(&seeds, &positions, &lists).unwrap_err();
    assert!(
        matches!(
            err,
            SimError::RestoreEnded {
                env: 0,
                step: 40,
                steps: 40
            }
        ),
        "{err}"
    );
    let bad = [0.0, 0.0, 2.0, 0.0, 0.0];
    let lists: Vec<&[f32]> = vec![&[], &bad, &[]];
    let err = restored.restore(&seeds, &positions, &lists).unwrap_err();
    assert!(
        matches!(
            err,
            SimError::ActionValue {
                env: 1,
                index: 2,
                ..
            }
        ),
        "{err}"
    );
}
