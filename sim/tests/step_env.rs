//! `step_env`, which `BatchedEnv::restore` replays episodes with, is a hand copy of the [`EnvSet`] schedule's
//! phases: one env stepped by it must match one stepped by the schedule bit for bit, so that a phase's work added
//! to the schedule but not to `step_env` is caught here rather than as a restore that drifts.

mod common;

use common::*;
use qamlab_sim::env::{EnvState, reset_env, step_env};
use qamlab_sim::prelude::*;

/// Steps per episode: the last step ends it by the time limit, so truncation is compared too.
const EPISODE: u32 = 25;

/// `xs` as bits, so that a NaN or a -0.0 counts as a difference.
fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn step_env_steps_an_env_as_the_schedule_does() {
    let options = EnvOptions {
        terminate_on_success: false,
        episode_length: Some(EPISODE),
        ..EnvOptions::default()
    };
    for file in [
        "cube-single.scn.ron",
        "cube-double.scn.ron",
        "antmaze-umaze.scn.ron",
    ] {
        let scene = TaskScene::from_file(cube_single_path().with_file_name(file)).unwrap();
        let seed = 7;
        let mut batch = BatchedEnv::new(&scene, 1, options).unwrap();
        let first = batch.reset(&[seed]).unwrap().to_vec();
        let spec = batch.spec().clone();
        assert_eq!(spec.episode_length, EPISODE, "{file}");

        let mut state = EnvState::new(&scene, &spec, seed);
        let mut physics = reset_env(&scene, &mut state);
        assert_eq!(
            bits(&state.obs),
            bits(&first),
            "{file}: the first observation"
        );

        let mut stream = seed;
        for t in 1..=EPISODE {
            let action = random_actions(&mut stream, spec.action_dim);
            let out = batch.step(&action).unwrap();
            step_env(
                &scene,
                &mut physics,
                &mut state,
                &action,
                spec.episode_length,
                options,
            );
            let at = format!("{file}, step {t}");
            assert_eq!(
                bits(&state.final_obs),
                bits(&out.final_obs),
                "{at}: final_obs"
            );
            assert_eq!(
                bits(&state.final_qpos),
                bits(&out.final_qpos),
                "{at}: final_qpos"
            );
            assert_eq!(
                bits(&state.final_qvel),
                bits(&out.final_qvel),
                "{at}: final_qvel"
            );
            assert_eq!(
                state.reward.to_bits(),
                out.reward[0].to_bits(),
                "{at}: reward"
            );
            assert_eq!(state.success, out.success[0], "{at}: success");
            assert_eq!(state.terminated, out.terminated[0], "{at}: terminated");
            assert_eq!(state.truncated, out.truncated[0], "{at}: truncated");
            // At the episode's end the schedule goes on to auto-reset, which `step_env` leaves out.
            if !out.ended(0) {
                assert_eq!(bits(&state.obs), bits(&out.obs), "{at}: obs");
                assert_eq!(bits(&state.qpos), bits(&out.qpos), "{at}: qpos");
                assert_eq!(bits(&state.qvel), bits(&out.qvel), "{at}: qvel");
            }
        }
        assert!(state.truncated, "{file}: the episode ran to its time limit");
    }
}
