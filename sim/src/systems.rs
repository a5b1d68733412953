//! The control step as Bevy systems, one per [`EnvSet`](crate::EnvSet) phase, each over every env of the World.

use std::sync::Arc;

use bevy::prelude::*;

use crate::env::{EnvIndex, EnvState, EnvWorld, apply_action, read_sensors, reset_env, score_step};
use crate::scene::TaskScene;
use crate::spec::EnvSpec;

/// Options of a batch of envs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvOptions {
    /// End an episode (and auto-reset) as soon as it succeeds; otherwise only the time limit ends it.
    pub terminate_on_success: bool,
    /// Episode length replacing the task's (collection runs longer "play" episodes, say).
    pub episode_length: Option<u32>,
    /// With `terminate_on_success`, control steps an episode goes on after its first success before it ends (as a
    /// success, whatever follows): the window's moment to show it. 0, the default, ends it at once.
    pub success_hold: u32,
}

/// The task every env of this World runs, with its spec and options.
#[derive(Resource, Clone)]
pub struct SimTask {
    /// The loaded scene.
    pub scene: Arc<TaskScene>,
    /// Its spec (with the episode length in force).
    pub spec: EnvSpec,
    /// Batch options.
    pub options: EnvOptions,
}

/// Actions for the next control step, `[num_envs * action_dim]`, row = env index. The step runs when `pending`.
#[derive(Resource, Clone, Debug, Default)]
pub struct BatchActions {
    /// Flat action buffer.
    pub values: Vec<f32>,
    /// Set by whoever supplies actions; the step clears it.
    pub pending: bool,
}

/// What one control step produced for all envs: flat buffers, row = env index.
#[derive(Resource, Clone, Debug, Default, PartialEq)]
pub struct StepOutput {
    /// Observations to act on next, `[N * obs_dim]` (after auto-reset where an episode ended).
    pub obs: Vec<f32>,
    /// Observations the step reached, `[N * obs_dim]` (before auto-reset): the `next_observations`.
    pub final_obs: Vec<f32>,
    /// Rewards, `[N]`.
    pub reward: Vec<f32>,
    /// Whether every goal held after the step, `[N]`.
    pub success: Vec<bool>,
    /// Whether the episode ended by success, `[N]`.
    pub terminated: Vec<bool>,
    /// Whether the episode ended by the time limit, `[N]`.
    pub truncated: Vec<bool>,
    /// Physics positions matching `obs`, `[N * qpos_dim]`.
    pub qpos: Vec<f32>,
    /// Physics velocities matching `obs`, `[N * qvel_dim]`.
    pub qvel: Vec<f32>,
    /// Physics positions matching `final_obs`, `[N * qpos_dim]`.
    pub final_qpos: Vec<f32>,
    /// Physics velocities matching `final_obs`, `[N * qvel_dim]`.
    pub final_qvel: Vec<f32>,
}

impl StepOutput {
    /// Whether env `i`'s episode ended at this step, by success or by the time limit (its `obs` is a new
    /// episode's first).
    pub fn ended(&self, i: usize) -> bool {
        self.terminated[i] || self.truncated[i]
    }

    /// The envs whose episodes ended at this step ([`ended`](Self::ended)), in order: the ones a driver restarts.
    pub fn ended_envs(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.terminated.len()).filter(|&i| self.ended(i))
    }

    /// Refuses observations (and episodes' final ones) that are not finite, naming the first: a scene whose
    /// physics left f32's range must stop its driver, not fill a dataset or a replay buffer with NaN.
    pub fn check_finite(&self, spec: &EnvSpec) -> Result<(), crate::SimError> {
        let o = spec.obs_dim;
        for values in [&self.obs, &self.final_obs] {
            if let Some(k) = values.iter().position(|v| !v.is_finite()) {
                let index = k % o;
                let name = spec
                    .obs_blocks
                    .iter()
                    .find(|(_, r)| r.contains(&index))
                    .map_or_else(String::new, |(block, r)| {
                        format!("{block}[{}]", index - r.start)
                    });
                return Err(crate::SimError::NonFiniteObservation {
                    env: k / o,
                    index,
                    name,
                    value: values[k],
                });
            }
        }
        Ok(())
    }

    /// Zeroed buffers for `n` envs.
    pub fn new(n: usize, spec: &EnvSpec) -> Self {
        Self {
            obs: vec![0.0; n * spec.obs_dim],
            final_obs: vec![0.0; n * spec.obs_dim],
            reward: vec![0.0; n],
            success: vec![false; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            qpos: vec![0.0; n * spec.qpos_dim],
            qvel: vec![0.0; n * spec.qvel_dim],
            final_qpos: vec![0.0; n * spec.qpos_dim],
            final_qvel: vec![0.0; n * spec.qvel_dim],
        }
    }

    /// Copies one env's state into its rows.
    pub fn write(&mut self, i: usize, s: &EnvState) {
        let (o, p, v) = (s.obs.len(), s.qpos.len(), s.qvel.len());
        self.obs[i * o..(i + 1) * o].copy_from_slice(&s.obs);
        self.final_obs[i * o..(i + 1) * o].copy_from_slice(&s.final_obs);
        self.qpos[i * p..(i + 1) * p].copy_from_slice(&s.qpos);
        self.qvel[i * v..(i + 1) * v].copy_from_slice(&s.qvel);
        self.final_qpos[i * p..(i + 1) * p].copy_from_slice(&s.final_qpos);
        self.final_qvel[i * v..(i + 1) * v].copy_from_slice(&s.final_qvel);
        self.reward[i] = s.reward;
        self.success[i] = s.success;
        self.terminated[i] = s.terminated;
        self.truncated[i] = s.truncated;
    }
}

/// Run condition: actions for a step are waiting.
pub fn actions_pending(actions: Res<BatchActions>) -> bool {
    actions.pending
}

/// [`EnvSet::ApplyActions`](crate::EnvSet::ApplyActions): scatter the action rows to the envs' motors.
pub fn apply_actions(
    task: Res<SimTask>,
    actions: Res<BatchActions>,
    mut envs: Query<(&EnvIndex, &mut EnvWorld)>,
) {
    let a = task.spec.action_dim;
    for (i, mut world) in &mut envs {
        apply_action(
            &task.scene,
            &mut world.0,
            &actions.values[i.0 * a..(i.0 + 1) * a],
        );
    }
}

/// [`EnvSet::Physics`](crate::EnvSet::Physics): the physics substeps, envs in parallel (they share nothing).
pub fn step_physics(task: Res<SimTask>, mut envs: Query<&mut EnvWorld>) {
    let substeps = task.scene.settings.substeps;
    envs.par_iter_mut()
        .for_each(|mut world| world.0.step(substeps));
}

/// [`EnvSet::ReadSensors`](crate::EnvSet::ReadSensors): fill each env's observation.
pub fn sense(task: Res<SimTask>, mut envs: Query<(&EnvWorld, &mut EnvState)>) {
    envs.par_iter_mut()
        .for_each(|(world, mut state)| read_sensors(&task.scene, &world.0, &mut state));
}

/// [`EnvSet::Score`](crate::EnvSet::Score): success, reward, termination, truncation.
pub fn score(task: Res<SimTask>, mut envs: Query<(&EnvWorld, &mut EnvState)>) {
    let length = task.spec.episode_length;
    for (world, mut state) in &mut envs {
        score_step(&task.scene, &world.0, &mut state, length, task.options);
    }
}

/// [`EnvSet::Reset`](crate::EnvSet::Reset): start a new episode in every env whose episode ended.
pub fn auto_reset(task: Res<SimTask>, mut envs: Query<(&mut EnvWorld, &mut EnvState)>) {
    envs.par_iter_mut().for_each(|(mut world, mut state)| {
        if state.done() {
            world.0 = reset_env(&task.scene, &mut state);
        }
    });
}

/// [`EnvSet::Publish`](crate::EnvSet::Publish): gather every env's results into [`StepOutput`] and mark the
/// actions consumed.
pub fn publish(
    mut out: ResMut<StepOutput>,
    mut actions: ResMut<BatchActions>,
    envs: Query<(&EnvIndex, &EnvState)>,
) {
    for (i, state) in &envs {
        out.write(i.0, state);
    }
    actions.pending = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envs_that_ended_are_those_that_succeeded_or_ran_out_of_time() {
        let out = StepOutput {
            terminated: vec![false, true, false, true],
            truncated: vec![false, false, true, true],
            ..StepOutput::default()
        };
        assert_eq!(out.ended_envs().collect::<Vec<_>>(), [1, 2, 3]);
    }
}
