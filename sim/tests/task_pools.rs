//! The envs' physics gets every core: Bevy's default pools leave one compute thread on a machine
//! with two or three cores. Its own test binary, because the pools are global to a process and
//! the first app to build them decides.

mod common;

use bevy::tasks::ComputeTaskPool;
use common::*;
use qamlab_sim::prelude::*;

#[test]
fn a_batched_env_has_a_compute_thread_per_core() {
    let mut batch = BatchedEnv::new(&cube_single(), 4, EnvOptions::default()).unwrap();
    batch.reset(&[0, 1, 2, 3]).unwrap();
    batch.step(&[0.0; 20]).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        ComputeTaskPool::get().thread_num() >= cores,
        "{} compute threads on {cores} cores",
        ComputeTaskPool::get().thread_num()
    );
}
