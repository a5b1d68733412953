//! What an env looks like from outside: names and bounds of its observation and action vectors, time steps.

pub mod columns;

use crate::scene::TaskScene;

/// Values of `qpos` a body holds: its position and quaternion (`x, y, z, qx, qy, qz, qw`).
pub const QPOS_PER_BODY: usize = 7;
/// Values of `qvel` a body holds: the linear velocity of its origin, then its angular velocity.
pub const QVEL_PER_BODY: usize = 6;

/// The plain-data description of a task's env: everything a learner needs, no Bevy or Rapier type.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvSpec {
    /// Task name.
    pub task: String,
    /// Length of one env's observation.
    pub obs_dim: usize,
    /// Length of one env's action.
    pub action_dim: usize,
    /// One name per observation value, like `ee.position.x`.
    pub obs_names: Vec<String>,
    /// Each sensor's block of the observation, in order: its name (`pinch.position`, `yaw.velocity`) and index
    /// range.
    pub obs_blocks: Vec<(String, std::ops::Range<usize>)>,
    /// One name per action value.
    pub action_names: Vec<String>,
    /// Lower bound of each action value.
    pub action_low: Vec<f32>,
    /// Upper bound of each action value.
    pub action_high: Vec<f32>,
    /// How each action becomes motor commands.
    pub action_controls: Vec<crate::authoring::Control>,
    /// Control steps per episode before truncation.
    pub episode_length: u32,
    /// Seconds per control step.
    pub control_dt: f32,
    /// Physics steps per control step.
    pub substeps: u32,
    /// Length of one env's `qpos`: for each of [`state_bodies`](Self::state_bodies), its position and quaternion
    /// (`x, y, z, qx, qy, qz, qw`).
    pub qpos_dim: usize,
    /// Length of one env's `qvel`: for each of [`state_bodies`](Self::state_bodies), the linear velocity of its
    /// origin, then its angular velocity, both in the world frame (6).
    pub qvel_dim: usize,
    /// The bodies whose state `qpos` and `qvel` hold, in order: every non-fixed body, in scene order.
    pub state_bodies: Vec<String>,
    /// Each goal's name and the body its frame is on (the body itself, or a site's body), in scene order.
    pub goal_bodies: Vec<(String, String)>,
}

impl EnvSpec {
    /// Actions for `envs` envs, `[envs * action_dim]`, each drawn uniformly from its range.
    pub fn random_actions(&self, rng: &mut impl rand::Rng, envs: usize) -> Vec<f32> {
        let mut actions = Vec::with_capacity(envs * self.action_dim);
        for _ in 0..envs {
            for (lo, hi) in self.action_low.iter().zip(&self.action_high) {
                actions.push(lo + (hi - lo) * rng.random::<f32>());
            }
        }
        actions
    }

    /// The spec of a loaded task, episodes of its own length.
    pub fn of(scene: &TaskScene) -> Self {
        Self::new(scene, scene.settings.episode_length)
    }

    /// The spec of a loaded task, with `episode_length` possibly overridden.
    pub fn new(scene: &TaskScene, episode_length: u32) -> Self {
        let mut obs_names = Vec::new();
        let mut obs_blocks = Vec::new();
        for (sensor, def) in &scene.sensors {
            let (block, parts) = columns::of_sensor(sensor);
            debug_assert_eq!(parts.len(), def.dim());
            obs_blocks.push((
                block.clone(),
                obs_names.len()..obs_names.len() + parts.len(),
            ));
            obs_names.extend(parts.iter().map(|part| columns::in_block(&block, part)));
        }
        let state_bodies: Vec<String> = scene
            .bodies
            .iter()
            .filter(|b| b.body.kind != crate::authoring::BodyKind::Fixed)
            .map(|b| b.body.name.clone())
            .collect();
        let moving = state_bodies.len();
        Self {
            task: scene.settings.name.clone(),
            obs_dim: obs_names.len(),
            action_dim: scene.actuators.len(),
            obs_names,
            obs_blocks,
            action_names: scene
                .actuators
                .iter()
                .map(|a| a.actuator.name.clone())
                .collect(),
            action_low: scene
                .actuators
                .iter()
                .map(|a| a.actuator.range.min)
                .collect(),
            action_high: scene
                .actuators
                .iter()
                .map(|a| a.actuator.range.max)
                .collect(),
            action_controls: scene.actuators.iter().map(|a| a.actuator.control).collect(),
            episode_length,
            control_dt: scene.settings.control_dt,
            substeps: scene.settings.substeps,
            qpos_dim: QPOS_PER_BODY * moving,
            qvel_dim: QVEL_PER_BODY * moving,
            state_bodies,
            goal_bodies: scene
                .goals
                .iter()
                .map(|g| {
                    let body = &scene.bodies[g.frame.body].body.name;
                    (g.goal.name.clone(), body.clone())
                })
                .collect(),
        }
    }
}
