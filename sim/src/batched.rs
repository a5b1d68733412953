//! [`BatchedEnv`]: N envs of one task in one Bevy World, stepped together by one schedule run per control step.

use std::sync::Arc;

use bevy::app::{TaskPoolOptions, TaskPoolPlugin, TaskPoolThreadAssignmentPolicy};
use bevy::prelude::*;

use crate::SimPlugin;
use crate::env::{EnvIndex, EnvState, EnvWorld, reset_env};
use crate::error::SimError;
use crate::scene::TaskScene;
use crate::spec::EnvSpec;
use crate::systems::{BatchActions, EnvOptions, SimTask, StepOutput};

/// Bevy's task pools with a compute thread per core. By default Bevy keeps a quarter of the cores
/// each for I/O and async work, which leaves one compute thread on a machine with two cores or
/// three, so the envs' physics ran on one core there; a headless env does no I/O or async work.
/// The pools are global: the first app of a process to build them decides.
fn task_pools() -> TaskPoolPlugin {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let defaults = TaskPoolOptions::default();
    TaskPoolPlugin {
        task_pool_options: TaskPoolOptions {
            compute: TaskPoolThreadAssignmentPolicy {
                min_threads: cores,
                ..defaults.compute.clone()
            },
            ..defaults
        },
    }
}

/// N instances of a task, each in its own Rapier world, driven through flat `f32` buffers.
pub struct BatchedEnv {
    app: App,
    spec: EnvSpec,
    num_envs: usize,
    entities: Vec<Entity>,
    was_reset: bool,
}

impl BatchedEnv {
    /// Builds `num_envs` envs of `task` in a fresh headless App (call [`reset`](Self::reset) before stepping).
    pub fn new(task: &TaskScene, num_envs: usize, options: EnvOptions) -> Result<Self, SimError> {
        let mut app = App::new();
        app.add_plugins((task_pools(), SimPlugin::default()));
        app.finish();
        app.cleanup();
        let seeds: Vec<u64> = (0..num_envs as u64).collect();
        let (spec, entities) = spawn_envs(app.world_mut(), task, &seeds, options)?;
        Ok(Self {
            app,
            spec,
            num_envs,
            entities,
            was_reset: false,
        })
    }

    /// Names, bounds and sizes of the observation and action vectors.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// Starts a new episode in every env, env `i` seeding its random stream with `seeds[i]` (later auto-resets
    /// continue that stream). Returns the observations, `[N * obs_dim]`.
    pub fn reset(&mut self, seeds: &[u64]) -> Result<&[f32], SimError> {
        if seeds.len() != self.num_envs {
            return Err(SimError::SeedCount {
                expected: self.num_envs,
                got: seeds.len(),
            });
        }
        let scene = self.app.world().resource::<SimTask>().scene.clone();
        let spec = self.spec.clone();
        let world = self.app.world_mut();
        let mut out = StepOutput::new(self.num_envs, &spec);
        for (i, (&entity, &seed)) in self.entities.iter().zip(seeds).enumerate() {
            let mut state = EnvState::new(&scene, &spec, seed);
            let physics = reset_env(&scene, &mut state);
            state.final_obs.copy_from_slice(&state.obs);
            state.final_qpos.copy_from_slice(&state.qpos);
            state.final_qvel.copy_from_slice(&state.qvel);
            out.write(i, &state);
            world.entity_mut(entity).insert((EnvWorld(physics), state));
        }
        world.insert_resource(out);
        self.was_reset = true;
        Ok(&self.app.world().resource::<StepOutput>().obs)
    }

    /// Checks an action buffer: its length and every value (finite, inside its range).
    pub fn check_actions(&self, actions: &[f32]) -> Result<(), SimError> {
        let a = self.spec.action_dim;
        if actions.len() != self.num_envs * a {
            return Err(SimError::ActionShape {
                expected: self.num_envs * a,
                got: actions.len(),
                num_envs: self.num_envs,
                action_dim: a,
            });
        }
        for (k, &u) in actions.iter().enumerate() {
            let (env, index) = (k / a, k % a);
            let (min, max) = (self.spec.action_low[index], self.spec.action_high[index]);
            if !(u.is_finite() && u >= min && u <= max) {
                return Err(SimError::ActionValue {
                    env,
                    index,
                    name: self.spec.action_names[index].clone(),
                    value: u,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Runs one control step for all envs: actions `[N * action_dim]` in, results out (auto-resetting envs whose
    /// episode ended). Bad actions are an error naming the env and action index, and change nothing.
    pub fn step(&mut self, actions: &[f32]) -> Result<&StepOutput, SimError> {
        if !self.was_reset {
            return Err(SimError::NotReset);
        }
        self.check_actions(actions)?;
        {
            let mut batch = self.app.world_mut().resource_mut::<BatchActions>();
            batch.values.copy_from_slice(actions);
            batch.pending = true;
        }
        self.app.update();
        Ok(self.app.world().resource::<StepOutput>())
    }

    /// The latest results (also what the last `reset` or `step` returned).
    pub fn output(&self) -> &StepOutput {
        self.app.world().resource::<StepOutput>()
    }

    /// The App holding the envs: for plugins that watch or draw them (same World, same systems).
    pub fn app_mut(&mut self) -> &mut App {
        &mut self.app
    }
}

/// Spawns one env of `task` per seed into `world` (env `i` seeded with `seeds[i]`), with the resources the
/// [`SimPlugin`] systems read: [`SimTask`], an idle [`BatchActions`] and a zeroed [`StepOutput`]. Any app that
/// runs the [`SimPlugin`] (the headless [`BatchedEnv`], the window) builds its envs with this one function, so
/// every env World has the same layout. Returns the spec and the env entities, in env-index order.
pub fn spawn_envs(
    world: &mut World,
    task: &TaskScene,
    seeds: &[u64],
    options: EnvOptions,
) -> Result<(EnvSpec, Vec<Entity>), SimError> {
    let num_envs = seeds.len();
    if num_envs == 0 {
        return Err(SimError::NoEnvs);
    }
    let episode_length = options
        .episode_length
        .unwrap_or(task.settings.episode_length)
        .max(1);
    let spec = EnvSpec::new(task, episode_length);
    let scene = Arc::new(task.clone());
    world.insert_resource(SimTask {
        scene: scene.clone(),
        spec: spec.clone(),
        options,
    });
    world.insert_resource(BatchActions {
        values: vec![0.0; num_envs * spec.action_dim],
        pending: false,
    });
    world.insert_resource(StepOutput::new(num_envs, &spec));
    let entities = seeds
        .iter()
        .enumerate()
        .map(|(i, &seed)| {
            let mut state = EnvState::new(&scene, &spec, seed);
            let physics = reset_env(&scene, &mut state);
            // Before any step the reached state is the initial one.
            state.final_obs.copy_from_slice(&state.obs);
            state.final_qpos.copy_from_slice(&state.qpos);
            state.final_qvel.copy_from_slice(&state.qvel);
            world.spawn((EnvIndex(i), EnvWorld(physics), state)).id()
        })
        .collect();
    Ok((spec, entities))
}
