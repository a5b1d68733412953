//! Shared test helpers (included by each test file).

#![allow(dead_code)]

use qamlab_sim::prelude::*;

/// The cube-single scene file of this checkout. Resolved at run time (cargo sets
/// CARGO_MANIFEST_DIR for `cargo test`): a test binary reused from a shared target directory may
/// have been compiled in another checkout.
pub fn cube_single_path() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        )
        .join("../assets/tasks/cube-single.scn.ron")
}

pub fn cube_single_text() -> String {
    std::fs::read_to_string(cube_single_path()).unwrap()
}

pub fn cube_single() -> TaskScene {
    TaskScene::from_file(cube_single_path()).unwrap()
}

/// Deterministic pseudo-random actions in [-1, 1] (a tiny LCG: no dependence on the env).
pub fn random_actions(state: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// All of a step's outputs, as bits: a NaN or a -0.0 counts as a difference.
pub fn output_bits(o: &StepOutput) -> Vec<u32> {
    let floats = [&o.obs, &o.final_obs, &o.reward, &o.qpos, &o.qvel];
    let flags = [&o.success, &o.terminated, &o.truncated];
    floats
        .iter()
        .flat_map(|v| v.iter().map(|x| x.to_bits()))
        .chain(flags.iter().flat_map(|v| v.iter().map(|&b| u32::from(b))))
        .collect()
}
