//! [`BatchedEnv`]: N envs of one task in one Bevy World, stepped together by one schedule run per control step.

use std::sync::Arc;

use bevy::app::{TaskPoolOptions, TaskPoolPlugin, TaskPoolThreadAssignmentPolicy};
use bevy::prelude::*;

use crate::SimPlugin;
use crate::env::{EnvIndex, EnvState, EnvWorld, reset_env, step_env};
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
            let (physics, state) = fresh_env(&scene, &spec, seed, None);
            out.write(i, &state);
            world.entity_mut(entity).insert((EnvWorld(physics), state));
        }
        world.insert_resource(out);
        self.was_reset = true;
        self.check_observations()?;
        Ok(&self.app.world().resource::<StepOutput>().obs)
    }

    /// Where each env's episode in progress began: the word position of its random stream (seeded by the seed
    /// given to `reset` or `restore`) before the episode's start was drawn. With the actions taken since, all
    /// [`restore`](Self::restore) needs to put the env back.
    pub fn episode_word_positions(&self) -> Vec<u128> {
        let world = self.app.world();
        self.entities
            .iter()
            .map(|&e| {
                world
                    .get::<EnvState>(e)
                    .expect("every env entity has its state")
                    .episode_word_pos
            })
            .collect()
    }

    /// Puts every env back into an episode in progress, as `reset` then `step`s would have: env `i` seeds its
    /// stream with `seeds[i]`, draws its episode's start from word position `word_pos[i]`, then takes the actions
    /// `actions[i]` (`[T_i * action_dim]`, `T_i` may differ between envs and be 0). Physics is deterministic, so
    /// the envs reach the very states the original steps reached. Returns the observations, `[N * obs_dim]`.
    pub fn restore(
        &mut self,
        seeds: &[u64],
        word_pos: &[u128],
        actions: &[&[f32]],
    ) -> Result<&[f32], SimError> {
        let n = self.num_envs;
        let a = self.spec.action_dim;
        if seeds.len() != n {
            return Err(SimError::SeedCount {
                expected: n,
                got: seeds.len(),
            });
        }
        if word_pos.len() != n || actions.len() != n {
            return Err(SimError::RestoreShape(format!(
                "{n} envs, but {} stream positions and {} action lists",
                word_pos.len(),
                actions.len()
            )));
        }
        for (env, list) in actions.iter().enumerate() {
            if list.len() % a != 0 {
                return Err(SimError::RestoreShape(format!(
                    "env {env}: {} action values is not a whole number of {a}-value actions",
                    list.len()
                )));
            }
            for row in list.chunks(a) {
                self.check_row(env, row)?;
            }
        }
        let task = self.app.world().resource::<SimTask>().clone();
        let (scene, spec, options) = (&task.scene, &task.spec, task.options);
        let mut out = StepOutput::new(n, spec);
        let mut restored = Vec::with_capacity(n);
        for (i, &seed) in seeds.iter().enumerate() {
            let (mut physics, mut state) = fresh_env(scene, spec, seed, Some(word_pos[i]));
            let steps = actions[i].len() / a;
            for (t, row) in actions[i].chunks(a).enumerate() {
                step_env(
                    scene,
                    &mut physics,
                    &mut state,
                    row,
                    spec.episode_length,
                    options,
                );
                if state.done() {
                    return Err(SimError::RestoreEnded {
                        env: i,
                        step: t + 1,
                        steps,
                    });
                }
            }
            out.write(i, &state);
            restored.push((physics, state));
        }
        // As `reset` and `step` refuse them: a blown-up replay is named as such, not as a mismatch later.
        out.check_finite(spec)?;
        // Nothing changes until every env has replayed: a failed restore leaves the batch as it was.
        let world = self.app.world_mut();
        for (&entity, (physics, state)) in self.entities.iter().zip(restored) {
            world.entity_mut(entity).insert((EnvWorld(physics), state));
        }
        world.insert_resource(out);
        self.was_reset = true;
        Ok(&self.app.world().resource::<StepOutput>().obs)
    }

    /// Checks one env's action: every value finite and inside its range.
    fn check_row(&self, env: usize, row: &[f32]) -> Result<(), SimError> {
        for (index, &u) in row.iter().enumerate() {
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
        for (env, row) in actions.chunks(a).enumerate() {
            self.check_row(env, row)?;
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
        self.check_observations()?;
        Ok(self.app.world().resource::<StepOutput>())
    }

    /// Refuses observations that are not finite (see [`StepOutput::check_finite`]).
    fn check_observations(&self) -> Result<(), SimError> {
        self.app
            .world()
            .resource::<StepOutput>()
            .check_finite(&self.spec)
    }

    /// The latest results (also what the last `reset` or `step` returned).
    pub fn output(&self) -> &StepOutput {
        self.app.world().resource::<StepOutput>()
    }
}

/// Spawns one env of `task` per seed into `world` (env `i` seeded with `seeds[i]`), with the resources the
/// [`SimPlugin`] systems read: [`SimTask`], an idle [`BatchActions`] and a [`StepOutput`] of the envs' first
/// observations. Any app that
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
        .unwrap_or(task.settings.episode_length);
    if episode_length == 0 {
        return Err(SimError::ZeroEpisodeLength);
    }
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
    let mut out = StepOutput::new(num_envs, &spec);
    let entities = seeds
        .iter()
        .enumerate()
        .map(|(i, &seed)| {
            let (physics, state) = fresh_env(&scene, &spec, seed, None);
            out.write(i, &state);
            world.spawn((EnvIndex(i), EnvWorld(physics), state)).id()
        })
        .collect();
    world.insert_resource(out);
    Ok((spec, entities))
}
/// An env at the start of an episode: its random stream seeded with `seed` (at `word_pos` in it, if given), reset,
/// and its reached state the initial one (nothing has been stepped yet).
fn fresh_env(
    scene: &TaskScene,
    spec: &EnvSpec,
    seed: u64,
    word_pos: Option<u128>,
) -> (crate::physics::EnvPhysics, EnvState) {
    let mut state = EnvState::new(scene, spec, seed);
    if let Some(pos) = word_pos {
        state.rng.set_word_pos(pos);
    }
    let physics = reset_env(scene, &mut state);
    state.final_obs.copy_from_slice(&state.obs);
    state.final_qpos.copy_from_slice(&state.qpos);
    state.final_qvel.copy_from_slice(&state.qvel);
    (physics, state)
}
