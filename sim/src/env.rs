//! One env instance: its components and the work of each control-step phase, as plain functions the plugin's
//! systems call for every env.

use bevy::prelude::*;
use bevy_rapier3d::rapier::prelude::Pose;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::authoring::{BodyKind, Control, Range, RewardKind};
use crate::physics::{EnvPhysics, yaw_of};
use crate::scene::{AxisGoalDef, FrameRef, JointGoalDef, KeepAway, SensorDef, TaskScene};
use crate::systems::EnvOptions;

/// Which env of the batch an entity is: its row in every batch buffer.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvIndex(pub usize);

/// An env's Rapier world (its own physics context).
#[derive(Component)]
pub struct EnvWorld(pub EnvPhysics);

/// An env's episode state and its latest outputs.
#[derive(Component)]
pub struct EnvState {
    /// The env's random stream: seeded by `reset`, continued by every auto-reset.
    pub rng: ChaCha8Rng,
    /// Word position of `rng` where this episode's start was drawn: with the seed, what it takes to draw the same
    /// start again (see [`BatchedEnv::restore`](crate::BatchedEnv::restore)).
    pub episode_word_pos: u128,
    /// Control steps taken in this episode.
    pub t: u32,
    /// Goal targets of this episode, indexed like the scene's goals, in the world: a riding target (see
    /// [`Goal::relative_to`](crate::authoring::Goal::relative_to)) where its frame has carried it by the latest step.
    pub targets: Vec<Vec3>,
    /// Per goal, its target in the frame it rides on as drawn at reset (a target that rides on nothing: its world
    /// target, unused).
    pub riding_targets: Vec<Vec3>,
    /// Joint goal targets of this episode, indexed like the scene's joint goals.
    pub joint_targets: Vec<f32>,
    /// Axis goal directions of this episode (unit, in the world), indexed like the scene's axis goals.
    pub axis_targets: Vec<Vec3>,
    /// Observation after the latest step (after an auto-reset when one happened).
    pub obs: Vec<f32>,
    /// Observation reached by the latest step, before any auto-reset.
    pub final_obs: Vec<f32>,
    /// Physics positions matching `obs`.
    pub qpos: Vec<f32>,
    /// Physics velocities matching `obs`.
    pub qvel: Vec<f32>,
    /// Physics positions matching `final_obs`.
    pub final_qpos: Vec<f32>,
    /// Physics velocities matching `final_obs`.
    pub final_qvel: Vec<f32>,
    /// Reward of the latest step.
    pub reward: f32,
    /// Whether every goal held after the latest step.
    pub success: bool,
    /// Whether the latest step ended the episode by success (with `terminate_on_success`).
    pub terminated: bool,
    /// The step of this episode at which every goal first held.
    pub succeeded_at: Option<u32>,
    /// Whether the latest step ended the episode by the time limit.
    pub truncated: bool,
}

impl EnvState {
    /// A fresh state for a scene, with its stream seeded by `seed` (call [`reset_env`] before use).
    pub fn new(scene: &TaskScene, spec: &crate::spec::EnvSpec, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            episode_word_pos: 0,
            t: 0,
            targets: scene.goals.iter().map(|g| g.goal.target).collect(),
            riding_targets: scene.goals.iter().map(|g| g.goal.target).collect(),
            joint_targets: scene.joint_goals.iter().map(|g| g.goal.target).collect(),
            axis_targets: scene.axis_goals.iter().map(|g| g.direction).collect(),
            obs: vec![0.0; spec.obs_dim],
            final_obs: vec![0.0; spec.obs_dim],
            qpos: vec![0.0; spec.qpos_dim],
            qvel: vec![0.0; spec.qvel_dim],
            final_qpos: vec![0.0; spec.qpos_dim],
            final_qvel: vec![0.0; spec.qvel_dim],
            reward: 0.0,
            success: false,
            terminated: false,
            truncated: false,
            succeeded_at: None,
        }
    }

    /// Whether the latest step ended the episode.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

fn draw(rng: &mut ChaCha8Rng, range: Option<Range>, authored: f32) -> f32 {
    match range {
        // One draw per given range, in a fixed order: the stream stays aligned whatever the values.
        Some(r) => r.min + (r.max - r.min) * rng.random::<f32>(),
        None => authored,
    }
}

/// A keep-away rule (`min_distance_from`) that every bounded redraw of a reset missed, so the last draw stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmet {
    /// The pose of this body (index into [`TaskScene::bodies`]).
    Body(usize),
    /// The target of this goal (index into [`TaskScene::goals`]).
    Goal(usize),
}

/// Redraws per keep-away rule before the last draw stands.
pub const KEEP_AWAY_DRAWS: usize = 64;

/// Draws with `draw` until `is_clear` holds of the draw, at most [`KEEP_AWAY_DRAWS`] times; the last draw
/// stands otherwise. Returns the draw and whether it is clear.
fn redraw_until_clear<T>(mut draw: impl FnMut() -> T, is_clear: impl Fn(&T) -> bool) -> (T, bool) {
    let mut drawn = draw();
    for _ in 1..KEEP_AWAY_DRAWS {
        if is_clear(&drawn) {
            return (drawn, true);
        }
        drawn = draw();
    }
    let clear = is_clear(&drawn);
    (drawn, clear)
}

/// Draws an episode's start from `rng`: returns the body poses and writes the goal targets (in the world: a riding
/// one where its frame starts); `on_unmet` hears of every keep-away rule the bounded redraws missed. A randomised
/// root of a joint tree carries the bodies joined to it: each is moved by the same rigid motion as the root (see
/// [`TaskScene::carried_by`]), so no joint tears.
pub fn draw_start(
    scene: &TaskScene,
    rng: &mut ChaCha8Rng,
    targets: &mut [Vec3],
    mut on_unmet: impl FnMut(Unmet),
) -> Vec<Pose> {
    let carried_by = scene.carried_by();
    // Per root, the bodies it carries that come before it in the file, which its draw moves back.
    let mut carried_before: Vec<Vec<usize>> = vec![Vec::new(); scene.bodies.len()];
    for (m, root) in carried_by.iter().enumerate() {
        if let Some(root) = *root
            && m < root
        {
            carried_before[root].push(m);
        }
    }
    let authored = |b: usize| {
        let body = &scene.bodies[b].body;
        Pose::from_parts(body.translation, body.rotation.normalize())
    };
    // Where body `m` starts when its root `root` starts at `at`: where it is authored relative to the root.
    let carry = |at: &Pose, root: usize, m: usize| *at * authored(root).inv_mul(&authored(m));
    let mut poses: Vec<Pose> = Vec::with_capacity(scene.bodies.len());
    for (i, def) in scene.bodies.iter().enumerate() {
        let b = &def.body;
        let rotation = b.rotation.normalize();
        let pose = match &def.randomize {
            // A body before its root in the file is moved when the root is drawn (`carried_before`).
            None => match carried_by[i] {
                Some(root) if root < i => carry(&poses[root], root, i),
                _ => authored(i),
            },
            Some(r) => {
                // Redraw until clear of the keep-away bodies, all earlier ones, so this episode's poses are known.
                let (pose, clear) = redraw_until_clear(
                    || {
                        let x = draw(rng, r.x, b.translation.x);
                        let y = draw(rng, r.y, b.translation.y);
                        let z = draw(rng, r.z, b.translation.z);
                        let yaw = draw(rng, r.yaw, 0.0);
                        Pose::from_parts(Vec3::new(x, y, z), Quat::from_rotation_z(yaw) * rotation)
                    },
                    |pose| {
                        def.keep_away.iter().all(|&(other, d)| {
                            poses[other].translation.distance(pose.translation) >= d
                        })
                    },
                );
                if !clear {
                    on_unmet(Unmet::Body(i));
                }
                for &m in &carried_before[i] {
                    poses[m] = carry(&pose, i, m);
                }
                pose
            }
        };
        poses.push(pose);
    }
    for (k, g) in scene.goals.iter().enumerate() {
        let t = g.goal.target;
        targets[k] = match &g.randomize {
            None => match &g.riding {
                Some(r) => g.world_target(t, &poses[r.frame.body]),
                None => t,
            },
            Some((r, away)) => {
                // Redraw until clear of every keep-away point: this episode's frames and earlier goals' targets.
                // A riding target is drawn in its frame, placed where the frame starts.
                let start = g.riding.as_ref().map(|r| poses[r.frame.body]);
                let (target, clear) = redraw_until_clear(
                    || {
                        let local = Vec3::new(
                            draw(rng, r.x, t.x),
                            draw(rng, r.y, t.y),
                            draw(rng, r.z, t.z),
                        );
                        start.map_or(local, |pose| g.world_target(local, &pose))
                    },
                    |target| {
                        away.iter().all(|&(what, d)| {
                            let p = match what {
                                KeepAway::Frame(f) => poses[f.body].transform_point(f.offset),
                                KeepAway::Goal(j) => targets[j],
                            };
                            p.distance(*target) >= d
                        })
                    },
                );
                if !clear {
                    on_unmet(Unmet::Goal(k));
                }
                target
            }
        };
    }
    poses
}

/// Draws the joint goals' targets of an episode from `rng`, after [`draw_start`]'s draws (so a scene without joint
/// goals draws as it did before they existed).
pub fn draw_joint_targets(scene: &TaskScene, rng: &mut ChaCha8Rng, joint_targets: &mut [f32]) {
    for (target, g) in joint_targets.iter_mut().zip(&scene.joint_goals) {
        *target = draw(rng, g.goal.randomize, g.goal.target);
    }
}

/// Draws the axis goals' directions of an episode from `rng`, after [`draw_joint_targets`]' draws (so a scene
/// without axis goals draws as it did before they existed).
pub fn draw_axis_targets(scene: &TaskScene, rng: &mut ChaCha8Rng, axis_targets: &mut [Vec3]) {
    for (target, g) in axis_targets.iter_mut().zip(&scene.axis_goals) {
        *target = g.turned(draw(rng, g.goal.randomize_yaw, 0.0));
    }
}

/// Starts a new episode: draws the randomised poses and goal targets from the env's stream, rebuilds its world,
/// and reads the first observation. The last step's reward, success and end flags stay as they were: after an
/// auto-reset they report how the episode ended (the next step sets them all).
pub fn reset_env(scene: &TaskScene, state: &mut EnvState) -> EnvPhysics {
    state.episode_word_pos = state.rng.get_word_pos();
    // Load-time checks keep unmet keep-away rules rare (see `scene::keep_away::check_keep_away`); the last draw
    // stands.
    let poses = draw_start(scene, &mut state.rng, &mut state.targets, |_| {});
    for (k, g) in scene.goals.iter().enumerate() {
        if let Some(r) = &g.riding {
            let start = &poses[r.frame.body];
            state.riding_targets[k] =
                start.inverse_transform_point(state.targets[k]) - r.frame.offset;
        }
    }
    draw_joint_targets(scene, &mut state.rng, &mut state.joint_targets);
    draw_axis_targets(scene, &mut state.rng, &mut state.axis_targets);
    let physics = EnvPhysics::build(scene, &poses);
    state.t = 0;
    state.succeeded_at = None;
    read_sensors(scene, &physics, state);
    physics
}

/// Turns one env's action into motor targets.
pub fn apply_action(scene: &TaskScene, physics: &mut EnvPhysics, action: &[f32]) {
    for (a, &u) in scene.actuators.iter().zip(action) {
        let act = &a.actuator;
        // Joints driven together share one target: where they stand (on average), moved by the action.
        let stand = || match a.joints[..] {
            [only] => physics.joint_position(scene, only),
            _ => {
                let sum: f32 = a
                    .joints
                    .iter()
                    .map(|&j| physics.joint_position(scene, j))
                    .sum();
                sum / a.joints.len() as f32
            }
        };
        let delta_target = match act.control {
            Control::PositionDelta { scale } => stand() + u * scale,
            _ => 0.0,
        };
        for &j in &a.joints {
            let limits = scene.joints[j].joint.limits;
            let clamp = |x: f32| limits.map_or(x, |l| x.clamp(l.min, l.max));
            match act.control {
                Control::PositionDelta { .. } => {
                    let target = clamp(delta_target);
                    physics.set_position_target(scene, j, target, act.stiffness, act.damping);
                }
                Control::PositionAbsolute { at_min, at_max } => {
                    let r = act.range;
                    let s = if r.max > r.min {
                        (u - r.min) / (r.max - r.min)
                    } else {
                        0.5
                    };
                    let target = clamp(at_min + (at_max - at_min) * s);
                    physics.set_position_target(scene, j, target, act.stiffness, act.damping);
                }
                Control::Velocity { scale } => {
                    physics.set_velocity_target(scene, j, u * scale, act.damping);
                }
            }
        }
    }
}

/// Fills the env's observation and physics-state buffers from its world, after moving each riding target to
/// where its frame is now.
pub fn read_sensors(scene: &TaskScene, physics: &EnvPhysics, state: &mut EnvState) {
    for (k, g) in scene.goals.iter().enumerate() {
        if let Some(r) = &g.riding {
            state.targets[k] = g.world_target(state.riding_targets[k], &physics.pose(r.frame.body));
        }
    }
    let mut o = 0;
    let obs = &mut state.obs;
    let mut put = |vals: &[f32]| {
        obs[o..o + vals.len()].copy_from_slice(vals);
        o += vals.len();
    };
    for (_, def) in &scene.sensors {
        match *def {
            SensorDef::Position(f) => put(&physics.frame_position(f).to_array()),
            SensorDef::Quaternion(b) => {
                let q = physics.pose(b).rotation;
                // q and -q are the same rotation: keep w >= 0 so the observation is a function of the state.
                let q = if q.w < 0.0 { -q } else { q };
                put(&q.to_array())
            }
            SensorDef::YawSinCos(b) => {
                let (s, c) = yaw_of(physics.pose(b).rotation).sin_cos();
                put(&[s, c])
            }
            SensorDef::LinearVelocity(f) => put(&physics.frame_velocity(f).to_array()),
            SensorDef::AngularVelocity(b) => put(&physics.velocity(b).1.to_array()),
            SensorDef::JointPosition(j) => put(&[physics.joint_position(scene, j)]),
            SensorDef::JointVelocity(j) => put(&[physics.joint_velocity(scene, j)]),
            SensorDef::RelativePosition(from, to) => {
                put(&(physics.frame_position(to) - physics.frame_position(from)).to_array())
            }
            SensorDef::GoalPosition(g) => put(&state.targets[g].to_array()),
            SensorDef::JointGoalTarget(g) => put(&[state.joint_targets[g]]),
            SensorDef::BodyAxis(b, axis) => put(&(physics.pose(b).rotation * axis).to_array()),
            SensorDef::AxisGoalDirection(g) => put(&state.axis_targets[g].to_array()),
            SensorDef::JointFraction(a) => {
                let joints = &scene.actuators[a].joints;
                let mut sum = 0.0;
                for &j in joints {
                    let l = scene.joints[j]
                        .joint
                        .limits
                        .expect("checked when the scene was loaded");
                    sum += (physics.joint_position(scene, j) - l.min) / (l.max - l.min);
                }
                put(&[sum / joints.len() as f32])
            }
        }
    }
    let (mut p, mut v) = (0, 0);
    for (k, def) in scene.bodies.iter().enumerate() {
        if def.body.kind == BodyKind::Fixed {
            continue;
        }
        let pose = physics.pose(k);
        state.qpos[p..p + 3].copy_from_slice(&pose.translation.to_array());
        state.qpos[p + 3..p + 7].copy_from_slice(&pose.rotation.to_array());
        // The velocity of the point `qpos` holds (the origin), not of the centre of mass, which may lie elsewhere.
        let origin = FrameRef {
            body: k,
            offset: Vec3::ZERO,
        };
        let (lin, ang) = (physics.frame_velocity(origin), physics.velocity(k).1);
        state.qvel[v..v + 3].copy_from_slice(&lin.to_array());
        state.qvel[v + 3..v + 6].copy_from_slice(&ang.to_array());
        p += 7;
        v += 6;
    }
}

/// Number of goals, of every kind, holding in the env's current state.
pub(crate) fn goals_satisfied(scene: &TaskScene, physics: &EnvPhysics, state: &EnvState) -> usize {
    let places = scene
        .goals
        .iter()
        .zip(&state.targets)
        .filter(|(g, t)| physics.frame_position(g.frame).distance(**t) <= g.goal.tolerance)
        .count();
    let joints = scene
        .joint_goals
        .iter()
        .zip(&state.joint_targets)
        .filter(|(g, t)| joint_goal_holds(scene, physics, g, **t))
        .count();
    let axes = scene
        .axis_goals
        .iter()
        .zip(&state.axis_targets)
        .filter(|(g, t)| axis_goal_holds(physics, g, **t))
        .count();
    places + joints + axes
}

/// Whether axis goal `g`'s body's axis is within its tolerance of `target`, a unit direction, in `physics`.
pub fn axis_goal_holds(physics: &EnvPhysics, g: &AxisGoalDef, target: Vec3) -> bool {
    g.miss(physics.pose(g.body).rotation, target) <= g.goal.tolerance
}

/// Whether joint goal `g`'s joint is within its tolerance of `target` in `physics`.
pub fn joint_goal_holds(
    scene: &TaskScene,
    physics: &EnvPhysics,
    g: &JointGoalDef,
    target: f32,
) -> bool {
    g.miss(scene, physics.joint_position(scene, g.joint), target) <= g.goal.tolerance
}

/// One control step of one env, the phases in the order the [`SimPlugin`](crate::SimPlugin) systems run them, without
/// the auto-reset: what a batch step does to this env. A phase's work added to the schedule belongs here too
/// (`sim/tests/step_env.rs` checks the two step an env alike).
pub fn step_env(
    scene: &TaskScene,
    physics: &mut EnvPhysics,
    state: &mut EnvState,
    action: &[f32],
    episode_length: u32,
    options: EnvOptions,
) {
    apply_action(scene, physics, action);
    physics.step(scene.settings.substeps);
    read_sensors(scene, physics, state);
    score_step(scene, physics, state, episode_length, options);
}

/// Scores the step just taken: success, reward, termination and truncation; keeps the reached observation as
/// the final one.
pub fn score_step(
    scene: &TaskScene,
    physics: &EnvPhysics,
    state: &mut EnvState,
    episode_length: u32,
    options: EnvOptions,
) {
    let satisfied = goals_satisfied(scene, physics, state);
    let n = scene.goal_count();
    state.success = satisfied == n;
    state.reward = match scene.settings.reward {
        RewardKind::SuccessMinusOne => f32::from(u8::from(state.success)) - 1.0,
        RewardKind::GoalsSatisfiedMinusCount => satisfied as f32 - n as f32,
    };
    state.t += 1;
    if state.success && state.succeeded_at.is_none() {
        state.succeeded_at = Some(state.t);
    }
    // An episode that succeeded ends as a success, at the end of its hold or of its time, whichever comes first.
    state.terminated = options.terminate_on_success
        && state
            .succeeded_at
            .is_some_and(|at| state.t - at >= options.success_hold || state.t >= episode_length);
    state.truncated = !state.terminated && state.t >= episode_length;
    state.final_obs.copy_from_slice(&state.obs);
    state.final_qpos.copy_from_slice(&state.qpos);
    state.final_qvel.copy_from_slice(&state.qvel);
}
