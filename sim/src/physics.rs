//! One env's Rapier world: built from a [`TaskScene`] at reset, read by the sensors, driven by the motors.
//!
//! Each env owns a whole Rapier `PhysicsWorld` (its own physics context). Reset builds it afresh rather than
//! teleporting bodies, so nothing from a previous episode (contact caches, solver warm starts, islands) leaks into
//! the next: an episode depends on its seed alone, whatever ran before it or beside it.

use std::collections::{HashMap, HashSet};

use bevy::math::{Quat, Vec3};
use bevy::prelude::default;
use bevy_rapier3d::rapier::prelude::*;

use crate::authoring::{self, BodyKind, JointKind, KinematicMotion, Shape};
use crate::scene::{BodyDef, FrameRef, JointDef, TaskScene};

/// An env's physics: the Rapier world and the handles of the scene's bodies and joints, by scene index.
pub struct EnvPhysics {
    /// The Rapier world.
    pub world: PhysicsWorld,
    /// Body handles, indexed like [`TaskScene::bodies`].
    pub bodies: Vec<RigidBodyHandle>,
    /// Joint handles, indexed like [`TaskScene::joints`].
    pub joints: Vec<ImpulseJointHandle>,
    /// The bodies that follow an authored [`KinematicMotion`], moved before each physics step.
    movers: Vec<Mover>,
    /// Physics steps taken since the build (the episode's start): the episode's clock, with `step_seconds`.
    steps_taken: u64,
    /// Seconds per physics step (`control_dt / substeps`), in f64 so that the clock keeps its precision over long
    /// episodes.
    step_seconds: f64,
    /// Keeps the pieces of a welded group from touching one another.
    welds: WeldedPieces,
}

/// The pieces of welded groups of three bodies or more (bodies `Fixed` joints join, directly or through others), by
/// handle, each with its group: a contact filter that keeps the pieces of one group from touching one another.
/// Rapier leaves out contacts between the two bodies of a joint only, so two pieces welded to a third (the rails
/// and end stops of a beam) would collide where they meet, and their contacts fight the welds: what rests on the
/// piece is shaken, or held (a ball on such a beam stopped rolling). One group is one rigid piece, as authored.
#[derive(Default)]
struct WeldedPieces {
    group: HashMap<RigidBodyHandle, usize>,
}

impl WeldedPieces {
    /// The welded groups of `scene`'s bodies (`bodies`: their handles) with three pieces or more; each of their
    /// colliders asks the filter about its contacts.
    fn new(scene: &TaskScene, world: &mut PhysicsWorld, bodies: &[RigidBodyHandle]) -> Self {
        let mut welds = Self::default();
        if !scene
            .joints
            .iter()
            .any(|j| j.joint.kind == JointKind::Fixed)
        {
            return welds;
        }
        let groups = crate::scene::weld_groups(&scene.joints, bodies.len());
        let mut size = vec![0usize; bodies.len()];
        for &g in &groups {
            size[g] += 1;
        }
        for (b, &g) in groups.iter().enumerate().filter(|&(_, &g)| size[g] >= 3) {
            welds.group.insert(bodies[b], g);
            let Some(body) = world.bodies.get(bodies[b]) else {
                continue;
            };
            for &c in body.colliders() {
                if let Some(collider) = world.colliders.get_mut(c) {
                    collider.set_active_hooks(ActiveHooks::FILTER_CONTACT_PAIRS);
                }
            }
        }
        welds
    }
}

impl PhysicsHooks for WeldedPieces {
    fn filter_contact_pair(&self, context: &PairFilterContext) -> Option<SolverFlags> {
        let group = |body: Option<RigidBodyHandle>| body.and_then(|b| self.group.get(&b));
        match (group(context.rigid_body1), group(context.rigid_body2)) {
            (Some(a), Some(b)) if a == b => None,
            _ => Some(SolverFlags::default()),
        }
    }
}

/// A body following an authored motion about where its episode started.
struct Mover {
    /// Its handle.
    handle: RigidBodyHandle,
    /// Its start pose (authored, or drawn at reset), where the motion has it at time 0.
    start: Pose,
    /// The motion.
    motion: KinematicMotion,
}

/// Where a body that starts at `start` and follows `motion` is `seconds` into its episode: turned about its origin
/// by the spin (world axes) and its origin moved by the sway; at 0 seconds, `start` exactly.
pub fn kinematic_pose(start: Pose, motion: &KinematicMotion, seconds: f64) -> Pose {
    use std::f64::consts::TAU;
    let mut pose = start;
    if let Some(spin) = motion.spin {
        let rate = spin.length();
        if rate > 0.0 {
            // The angle reduced to one turn in f64 first: in f32 an angle hours into an episode keeps few digits.
            let angle = (f64::from(rate) * seconds).rem_euclid(TAU) as f32;
            pose.rotation =
                (Quat::from_axis_angle(spin / rate, angle) * start.rotation).normalize();
        }
    }
    if let Some(sway) = motion.sway {
        let cycles = (seconds / f64::from(sway.period)).fract();
        let phase = f64::from(sway.phase);
        // Less the start's own place in the stroke: at time 0 the body is exactly at its start.
        let along = ((TAU * cycles + phase).sin() - phase.sin()) as f32;
        pose.translation = start.translation + sway.amplitude * along;
    }
    pose
}

/// The velocity (linear, of the origin; angular) of a body following `motion` at the start of its episode: the
/// spin's, and the sway's along its stroke at its starting phase.
pub fn kinematic_start_velocity(motion: &KinematicMotion) -> (Vec3, Vec3) {
    let angular = motion.spin.unwrap_or(Vec3::ZERO);
    let linear = motion.sway.map_or(Vec3::ZERO, |sway| {
        sway.amplitude * (std::f32::consts::TAU / sway.period * sway.phase.cos())
    });
    (linear, angular)
}

impl EnvPhysics {
    /// Builds the world with the bodies at `poses` (indexed like the scene's bodies), at rest but for those with a
    /// [`KinematicMotion`], every actuator's motor holding its joint where it is, and every joint spring pulling toward
    /// its rest. A body with a motion starts it from its pose there, the episode's clock at 0, at its velocity then.
    pub fn build(scene: &TaskScene, poses: &[Pose]) -> Self {
        let s = &scene.settings;
        let mut world = PhysicsWorld {
            gravity: s.gravity,
            ..default()
        };
        world.integration_parameters.dt = s.control_dt / s.substeps as f32;
        world.integration_parameters.num_solver_iterations = s.solver_iterations as usize;
        world.integration_parameters.num_internal_pgs_iterations = s.solver_passes as usize;
        // Chains of stiff motorised joints (the gantry) converge much better with joint warm starts.
        world.integration_parameters.warmstart_joints = true;
        stiffen_contacts(&mut world.integration_parameters);

        let bodies: Vec<RigidBodyHandle> = scene
            .bodies
            .iter()
            .zip(poses)
            .map(|(def, pose)| insert_body(&mut world, def, *pose))
            .collect();
        let movers = scene
            .bodies
            .iter()
            .zip(poses)
            .zip(&bodies)
            .filter_map(|((def, &start), &handle)| {
                Some(Mover {
                    handle,
                    start,
                    motion: def.motion.clone()?,
                })
            })
            .collect();
        let joints = scene
            .joints
            .iter()
            .map(|def| insert_joint(&mut world, &bodies, def))
            .collect();
        let welds = WeldedPieces::new(scene, &mut world, &bodies);
        let mut physics = Self {
            world,
            bodies,
            joints,
            movers,
            steps_taken: 0,
            step_seconds: f64::from(s.control_dt) / f64::from(s.substeps),
            welds,
        };
        physics.hold_motors(scene);
        physics.set_springs(scene);
        physics.start_movers();
        physics
    }

    /// Gives each body with a [`KinematicMotion`] its motion's velocity at the episode's start, so a sensor reads it
    /// from the first observation (the first step then sets it from the pose the motion takes it to, as every step
    /// does).
    fn start_movers(&mut self) {
        let colliders = &self.world.colliders;
        for m in &self.movers {
            let Some(body) = self.world.bodies.get_mut(m.handle) else {
                continue;
            };
            let (linear, angular) = kinematic_start_velocity(&m.motion);
            // Rapier's linear velocity is the centre of mass's, which the spin moves too.
            body.recompute_mass_properties_from_colliders(colliders);
            let com = body.center_of_mass();
            // A position-based kinematic body takes no velocity from a setter (its steps derive it from its poses):
            // set it as a velocity-based one, whose velocity stands until its first step, still a fresh body's.
            body.set_body_type(RigidBodyType::KinematicVelocityBased, false);
            body.set_linvel(linear + angular.cross(com - m.start.translation), false);
            body.set_angvel(angular, false);
            body.set_body_type(RigidBodyType::KinematicPositionBased, false);
        }
    }

    /// Sets the motor of every joint with a spring (which loading keeps off actuated joints) to pull the joint
    /// toward the spring's rest, in the coordinate [`joint_position`](Self::joint_position) reads.
    fn set_springs(&mut self, scene: &TaskScene) {
        for (def, &handle) in scene.joints.iter().zip(&self.joints) {
            let (Some(spring), Some(axis)) = (def.joint.spring, joint_axis(def.joint.kind)) else {
                continue;
            };
            if let Some(joint) = self.world.impulse_joints.get_mut(handle, true) {
                // Acceleration-based, as the actuators' motors: the gains mean the same whatever the mass moved,
                // and the force is left unbounded (Rapier's default), as a spring's is.
                joint
                    .data
                    .set_motor_model(axis, MotorModel::AccelerationBased);
                joint
                    .data
                    .set_motor_position(axis, spring.rest, spring.stiffness, spring.damping);
            }
        }
    }

    /// Sets every actuated joint's motor to hold its joint where it is (a velocity motor: at rest).
    fn hold_motors(&mut self, scene: &TaskScene) {
        for a in &scene.actuators {
            for &j in &a.joints {
                let axis =
                    joint_axis(scene.joints[j].joint.kind).expect("actuated joints are not fixed");
                let p = self.joint_position(scene, j);
                let act = &a.actuator;
                if let Some(joint) = self.world.impulse_joints.get_mut(self.joints[j], true) {
                    joint
                        .data
                        .set_motor_model(axis, MotorModel::AccelerationBased);
                    joint.data.set_motor_max_force(axis, act.max_force);
                    match act.control {
                        authoring::Control::Velocity { .. } => {
                            joint.data.set_motor_velocity(axis, 0.0, act.damping);
                        }
                        _ => {
                            joint
                                .data
                                .set_motor_position(axis, p, act.stiffness, act.damping);
                        }
                    }
                }
            }
        }
    }

    /// Advances the world by `substeps` physics steps, each after moving the bodies with a [`KinematicMotion`]
    /// toward where their motion has them at its end.
    pub fn step(&mut self, substeps: u32) {
        for _ in 0..substeps {
            self.steps_taken += 1;
            self.move_kinematic_bodies();
            self.world.step_with_events(&self.welds, &());
        }
    }

    /// Sets each moving kinematic body's pose for the end of the next physics step, from the episode's clock: the
    /// step moves it there and gives it the velocity that takes it there, which contacts see (a position-based
    /// kinematic body, in Rapier's terms).
    fn move_kinematic_bodies(&mut self) {
        let seconds = self.steps_taken as f64 * self.step_seconds;
        for m in &self.movers {
            if let Some(body) = self.world.bodies.get_mut(m.handle) {
                body.set_next_kinematic_position(kinematic_pose(m.start, &m.motion, seconds));
            }
        }
    }

    /// World pose of a scene body.
    pub fn pose(&self, body: usize) -> Pose {
        *self.world.bodies[self.bodies[body]].position()
    }

    /// World position of a frame (a body origin or a site).
    pub fn frame_position(&self, f: FrameRef) -> Vec3 {
        self.pose(f.body).transform_point(f.offset)
    }

    /// World linear velocity of a frame's point.
    pub fn frame_velocity(&self, f: FrameRef) -> Vec3 {
        let b = &self.world.bodies[self.bodies[f.body]];
        b.velocity_at_point(b.position().transform_point(f.offset))
    }

    /// Linear and angular velocity of a body.
    pub fn velocity(&self, body: usize) -> (Vec3, Vec3) {
        let b = &self.world.bodies[self.bodies[body]];
        (b.linvel(), b.angvel())
    }

    /// Joint frames in world coordinates: (on the parent, on the child).
    fn joint_frames(&self, scene: &TaskScene, j: usize) -> (Pose, Pose) {
        let d = &scene.joints[j];
        (
            self.pose(d.parent) * d.frame1,
            self.pose(d.child) * d.frame2,
        )
    }

    /// A joint's coordinate: metres along a prismatic axis, radians about a revolute one (0 at the authored pose).
    pub fn joint_position(&self, scene: &TaskScene, j: usize) -> f32 {
        let (f1, f2) = self.joint_frames(scene, j);
        let rel = f1.inv_mul(&f2);
        match scene.joints[j].joint.kind {
            JointKind::Prismatic { .. } => rel.translation.x,
            JointKind::Revolute { .. } => {
                let q = rel.rotation;
                let angle = 2.0 * q.x.atan2(q.w);
                // Wrap to (-pi, pi].
                if angle > std::f32::consts::PI {
                    angle - std::f32::consts::TAU
                } else if angle <= -std::f32::consts::PI {
                    angle + std::f32::consts::TAU
                } else {
                    angle
                }
            }
            JointKind::Fixed => 0.0,
        }
    }

    /// A joint's rate: the child's motion relative to the parent along (or about) the joint axis.
    pub fn joint_velocity(&self, scene: &TaskScene, j: usize) -> f32 {
        let d = &scene.joints[j];
        let (f1, f2) = self.joint_frames(scene, j);
        let axis = f1.rotation * Vec3::X;
        let parent = &self.world.bodies[self.bodies[d.parent]];
        let child = &self.world.bodies[self.bodies[d.child]];
        match d.joint.kind {
            JointKind::Prismatic { .. } => {
                let p = f2.translation;
                (child.velocity_at_point(p) - parent.velocity_at_point(p)).dot(axis)
            }
            JointKind::Revolute { .. } => (child.angvel() - parent.angvel()).dot(axis),
            JointKind::Fixed => 0.0,
        }
    }

    /// Sets a joint motor's position target (stiffness and damping as given).
    pub fn set_position_target(
        &mut self,
        scene: &TaskScene,
        j: usize,
        target: f32,
        stiffness: f32,
        damping: f32,
    ) {
        let axis = joint_axis(scene.joints[j].joint.kind).expect("actuated joints are not fixed");
        if let Some(joint) = self.world.impulse_joints.get_mut(self.joints[j], true) {
            joint
                .data
                .set_motor_position(axis, target, stiffness, damping);
        }
    }

    /// Sets a joint motor's velocity target.
    pub fn set_velocity_target(
        &mut self,
        scene: &TaskScene,
        j: usize,
        velocity: f32,
        damping: f32,
    ) {
        let axis = joint_axis(scene.joints[j].joint.kind).expect("actuated joints are not fixed");
        if let Some(joint) = self.world.impulse_joints.get_mut(self.joints[j], true) {
            joint.data.set_motor_velocity(axis, velocity, damping);
        }
    }
}

/// Natural frequency (Hz) of contacts between two moving bodies (a finger on a cube, a cube on a cube). Rapier's
/// contacts are springs scaled by the lighter side's mass: a force `F` on a body of mass `m` sinks it
/// `F / (m (2 pi f)^2)`, whatever the substep. At Rapier's 30 Hz the gripper's fingers sank about 2 mm into the
/// 64 g cube they held; at 500 Hz the gantry's full 1000 N would sink them 1.6 mm.
const CONTACT_HZ: f32 = 500.0;

/// Natural frequency (Hz) of contacts with a fixed body (a table, a floor, a wall), twice [`CONTACT_HZ`] as in
/// Rapier's defaults. At Rapier's 60 Hz the gantry pressed a 64 g cube 12 mm into the table and it popped out
/// spinning; at 1000 Hz the gantry's full 1000 N presses it 0.4 mm in (under 2 mm measured).
const STATIC_CONTACT_HZ: f32 = 1000.0;

/// Speed (m/s) up to which a body approaching another is stopped at its surface rather than inside it: contacts
/// are predicted (solved before the bodies touch) within this speed times the substep. At Rapier's fixed 2 cm, the
/// ant's feet (landing at 1 m/s and more, in 25 ms substeps) went 6 mm into the floor at each step.
const SPECULATIVE_SPEED: f32 = 2.0;

/// Makes contacts stiff enough that what is pressed onto a surface does not visibly sink into it (see
/// [`STATIC_CONTACT_HZ`]); the damping ratios stay Rapier's. Stiffer contacts cost no measurable step time.
fn stiffen_contacts(p: &mut IntegrationParameters) {
    p.contact_softness.natural_frequency = CONTACT_HZ;
    p.static_contact_softness.natural_frequency = STATIC_CONTACT_HZ;
    p.normalized_prediction_distance = p
        .normalized_prediction_distance
        .max(SPECULATIVE_SPEED * p.dt / p.length_unit);
}

/// Two bodies whose colliders overlap where the scene places them.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    /// The bodies' indices in [`TaskScene::bodies`].
    pub bodies: (usize, usize),
    /// How deep they overlap, in metres.
    pub depth: f32,
}

/// Most overlapping pairs [`overlaps_at_authored_poses`] finds: past a hundred, a scene repeats one mistake (bodies
/// placed in a pile), and thousands piled up made millions of pairs, each a warning.
pub const MAX_OVERLAPS: usize = 100;

/// Pairs of colliders that overlap deeper than `min_depth` at the scene's authored poses and would push each other
/// apart at the first step: on different bodies, one of them dynamic, not joined by a joint (whose bodies never
/// collide) nor welded into one piece, and with collision groups that let them touch. In the order of the colliders,
/// the first [`MAX_OVERLAPS`] only.
pub fn overlaps_at_authored_poses(scene: &TaskScene, min_depth: f32) -> Vec<Overlap> {
    let all = AuthoredColliders::new(scene);
    let mut out = Vec::new();
    for k in 0..all.colliders.len() {
        for l in all.sweep.meeting(all.sweep.boxes[k], |l| {
            l > k && (all.dynamic[k] || all.dynamic[l])
        }) {
            if let Some(overlap) = all.overlap(k, l, Vec3::ZERO, min_depth) {
                out.push(overlap);
                if out.len() == MAX_OVERLAPS {
                    return out;
                }
            }
        }
    }
    out
}

/// A scene's colliders at their authored poses, built once, to test bodies moved by a translation against the others
/// (the places a reset may draw them at): building the physics anew for each place took minutes for thousands of
/// randomised bodies.
pub struct AuthoredColliders {
    /// Each collider and the index of its body.
    colliders: Vec<(usize, Collider)>,
    /// Their boxes, to find the ones a collider meets.
    sweep: BoxSweep,
    /// Whether each collider's body is dynamic: Rapier makes contacts only where a dynamic body takes part.
    dynamic: Vec<bool>,
    /// Pairs of bodies joined by a joint, `(low, high)`: they never collide.
    jointed: HashSet<(usize, usize)>,
    /// Each body's welded group ([`crate::scene::weld_groups`]): pieces of one never collide either.
    welded: Vec<usize>,
    /// Each body's colliders.
    of_body: Vec<Vec<usize>>,
    /// Each body's authored place and rotation, which a moved body's colliders are placed from.
    places: Vec<(Vec3, Quat)>,
}

impl AuthoredColliders {
    /// The colliders of `scene`'s bodies where the scene places them.
    pub fn new(scene: &TaskScene) -> Self {
        let poses: Vec<Pose> = scene
            .bodies
            .iter()
            .map(|d| Pose::from_parts(d.body.translation, d.body.rotation.normalize()))
            .collect();
        let physics = EnvPhysics::build(scene, &poses);
        // Bodies by handle and jointed pairs in maps, and only colliders whose boxes meet tested: scans of every body
        // for each collider, and of every pair, took minutes for tens of thousands of bodies.
        let mut body_of: HashMap<RigidBodyHandle, usize> = HashMap::new();
        for (i, &h) in physics.bodies.iter().enumerate() {
            body_of.entry(h).or_insert(i);
        }
        let colliders: Vec<(usize, Collider)> = physics
            .world
            .colliders
            .iter()
            .filter_map(|(_, c)| Some((*body_of.get(&c.parent()?)?, c.clone())))
            .collect();
        let jointed = scene
            .joints
            .iter()
            .map(|j| (j.parent.min(j.child), j.parent.max(j.child)))
            .collect();
        let dynamic = colliders
            .iter()
            .map(|&(b, _)| scene.bodies[b].body.kind == BodyKind::Dynamic)
            .collect();
        let welded = crate::scene::weld_groups(&scene.joints, scene.bodies.len());
        let mut of_body = vec![Vec::new(); scene.bodies.len()];
        for (k, &(b, _)) in colliders.iter().enumerate() {
            of_body[b].push(k);
        }
        let sweep = BoxSweep::new(colliders.iter().map(|(_, c)| c));
        let places = scene
            .bodies
            .iter()
            .map(|d| (d.body.translation, d.body.rotation.normalize()))
            .collect();
        Self {
            colliders,
            sweep,
            dynamic,
            jointed,
            welded,
            of_body,
            places,
        }
    }

    /// The overlaps deeper than `min_depth` between the colliders of the bodies `moved`, each moved by `shift`, and
    /// the colliders of the bodies `others` keeps (at their authored poses), by the rules of
    /// [`overlaps_at_authored_poses`]; each pair `(moved body, other body)`, at most [`MAX_OVERLAPS`].
    pub fn overlaps_when_moved(
        &self,
        moved: &[usize],
        shift: Vec3,
        min_depth: f32,
        others: impl Fn(usize) -> bool,
    ) -> Vec<Overlap> {
        let mut out = Vec::new();
        for &b in moved {
            for &k in &self.of_body[b] {
                let (low, high) = self.sweep.boxes[k];
                let wanted = |l: usize| {
                    let other = self.colliders[l].0;
                    !moved.contains(&other) && others(other) && (self.dynamic[k] || self.dynamic[l])
                };
                for l in self.sweep.meeting((low + shift, high + shift), wanted) {
                    if let Some(overlap) = self.overlap(k, l, shift, min_depth) {
                        out.push(overlap);
                        if out.len() == MAX_OVERLAPS {
                            return out;
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether colliders `k` (moved by `shift`) and `l` overlap deeper than `min_depth`, where the physics would push
    /// them apart: on different bodies not joined nor welded into one piece, with collision groups that let them
    /// touch.
    fn overlap(&self, k: usize, l: usize, shift: Vec3, min_depth: f32) -> Option<Overlap> {
        let (a, ca) = &self.colliders[k];
        let (b, cb) = &self.colliders[l];
        if a == b
            || self.jointed.contains(&(*a.min(b), *a.max(b)))
            || self.welded[*a] == self.welded[*b]
            || !ca.collision_groups().test(cb.collision_groups())
        {
            return None;
        }
        // Placed as the physics places a body's collider, from the body's pose: a scene rebuilt with the body moved
        // gives the same floats, so the same contact (a deep one's depth can jump with the last bit of a pose).
        let (place, rotation) = self.places[*a];
        let moved = match ca.position_wrt_parent() {
            Some(local) => Pose::from_parts(place + shift, rotation) * *local,
            None => ca.position().append_translation(shift),
        };
        // In the order of the colliders, as the scan of every pair asks: parry's answer for a deep contact depends
        // on the order (a flat capsule 20 mm into a box measured 1.9 mm the other way round).
        let contact = if k < l {
            bevy_rapier3d::rapier::parry::query::contact(
                &moved,
                ca.shape(),
                cb.position(),
                cb.shape(),
                0.0,
            )
        } else {
            bevy_rapier3d::rapier::parry::query::contact(
                cb.position(),
                cb.shape(),
                &moved,
                ca.shape(),
                0.0,
            )
        };
        match contact {
            Ok(Some(c)) if -c.dist > min_depth => Some(Overlap {
                bodies: (*a, *b),
                depth: -c.dist,
            }),
            _ => None,
        }
    }
}

/// Colliders' bounding boxes sorted along the axis they spread most over, to find the boxes one meets without
/// comparing it with every other: only those that start between where it starts, less the widest box, and where
/// it ends can.
struct BoxSweep {
    /// Each collider's box, `(low, high)`.
    boxes: Vec<(Vec3, Vec3)>,
    axis: usize,
    /// Collider indices by where their boxes start on `axis`, and those starts.
    order: Vec<usize>,
    starts: Vec<f32>,
    /// The widest box's extent along `axis`.
    widest: f32,
}

impl BoxSweep {
    fn new<'a>(colliders: impl Iterator<Item = &'a Collider>) -> Self {
        // A hair of slack for rounding: touching counts, and a contact's depth is measured in the same floats.
        const SLACK: f32 = 1e-4;
        let boxes: Vec<(Vec3, Vec3)> = colliders
            .map(|c| {
                let b = c.compute_aabb();
                (b.mins - SLACK, b.maxs + SLACK)
            })
            .collect();
        let spread = |axis: usize| {
            let starts = boxes.iter().map(|(low, _)| low[axis]);
            starts.clone().fold(f32::NEG_INFINITY, f32::max) - starts.fold(f32::INFINITY, f32::min)
        };
        let axis = (0..3)
            .max_by(|&i, &j| spread(i).total_cmp(&spread(j)))
            .unwrap_or(0);
        let mut order: Vec<usize> = (0..boxes.len()).collect();
        order.sort_by(|&i, &j| boxes[i].0[axis].total_cmp(&boxes[j].0[axis]));
        let starts = order.iter().map(|&i| boxes[i].0[axis]).collect();
        let widest = boxes
            .iter()
            .map(|(low, high)| high[axis] - low[axis])
            .fold(0.0, f32::max);
        Self {
            boxes,
            axis,
            order,
            starts,
            widest,
        }
    }

    /// The colliders whose boxes meet the box `(low, high)` and that `wanted` keeps, in order.
    fn meeting(&self, (low, high): (Vec3, Vec3), wanted: impl Fn(usize) -> bool) -> Vec<usize> {
        let from = self
            .starts
            .partition_point(|&s| s < low[self.axis] - self.widest);
        let to = self.starts.partition_point(|&s| s <= high[self.axis]);
        let mut near: Vec<usize> = self.order[from..to]
            .iter()
            .copied()
            .filter(|&l| {
                let (other_low, other_high) = self.boxes[l];
                // Kept before the boxes are compared: many fixed bodies in one place make pairs that count for
                // nothing.
                wanted(l) && low.cmple(other_high).all() && other_low.cmple(high).all()
            })
            .collect();
        near.sort_unstable();
        near
    }
}

/// How deep `point` (in the world) lies inside body `b`'s collider where the scene places the body: its distance to
/// the collider's surface, negative outside it; `None` where the body has no collider.
pub fn depth_inside_at_authored_pose(scene: &TaskScene, b: usize, point: Vec3) -> Option<f32> {
    let def = &scene.bodies[b];
    let collider = collider_of(def.collider.as_ref()?);
    let body = Pose::from_parts(def.body.translation, def.body.rotation.normalize());
    // Without a parent, a collider's position is its offset in its body.
    let at = body * *collider.position();
    let projection = collider.shape().project_point(&at, point, false);
    let distance = projection.point.distance(point);
    Some(if projection.is_inside {
        distance
    } else {
        -distance
    })
}

/// Inserts a scene body, with its collider if it has one, at `pose` and at rest.
fn insert_body(world: &mut PhysicsWorld, def: &BodyDef, pose: Pose) -> RigidBodyHandle {
    let b = &def.body;
    let builder = match b.kind {
        BodyKind::Dynamic => RigidBodyBuilder::dynamic(),
        BodyKind::Fixed => RigidBodyBuilder::fixed(),
        // Moved by poses set before each step (`move_kinematic_bodies`); one without a motion stays put.
        BodyKind::Kinematic if def.motion.is_some() => RigidBodyBuilder::kinematic_position_based(),
        BodyKind::Kinematic => RigidBodyBuilder::kinematic_velocity_based(),
    };
    let mut builder = builder
        .pose(pose)
        .gravity_scale(b.gravity_scale)
        .linear_damping(b.linear_damping)
        .angular_damping(b.angular_damping);
    if b.extra_mass > 0.0 {
        // Inertia of a 20 cm sphere of that mass: collider-less links (gantry carriages) must not be so light in
        // rotation that the joint chain between them flexes.
        let i = 0.4 * b.extra_mass * 0.2 * 0.2;
        builder = builder.additional_mass_properties(MassProperties::new(
            Vec3::ZERO,
            b.extra_mass,
            Vec3::splat(i),
        ));
    }
    let handle = world.bodies.insert(builder.build());
    if let Some(c) = &def.collider {
        world
            .colliders
            .insert_with_parent(collider_of(c), handle, &mut world.bodies);
    }
    handle
}

/// The Rapier collider of an authored one (in its body's frame).
fn collider_of(c: &authoring::Collider) -> Collider {
    let shape = match &c.shape {
        Shape::Cuboid { half_extents: h } => ColliderBuilder::cuboid(h.x, h.y, h.z),
        Shape::Ball { radius } => ColliderBuilder::ball(*radius),
        Shape::Capsule {
            half_height,
            radius,
        } => ColliderBuilder::capsule_z(*half_height, *radius),
        // Rapier's cylinders run along y; scenes use z like capsules.
        Shape::Cylinder {
            half_height,
            radius,
        } => ColliderBuilder::cylinder(*half_height, *radius)
            .rotation(Vec3::X * std::f32::consts::FRAC_PI_2),
        Shape::ConvexHull { points } => {
            ColliderBuilder::convex_hull(points).expect("checked when the scene was loaded")
        }
    };
    let offset = shape.position.translation + c.offset;
    shape
        .translation(offset)
        .density(c.density)
        .friction(c.friction)
        .restitution(c.restitution)
        .collision_groups(interaction_groups(c))
        .build()
}

/// The Rapier collision groups of an authored collider: its `membership` and `filter` bit masks.
fn interaction_groups(c: &authoring::Collider) -> InteractionGroups {
    InteractionGroups::new(
        Group::from_bits_retain(c.membership),
        Group::from_bits_retain(c.filter),
        InteractionTestMode::And,
    )
}

/// Whether two colliders' collision groups let them touch, as Rapier decides it: each one's `filter` shares a bit
/// with the other's `membership`.
pub fn groups_touch(a: &authoring::Collider, b: &authoring::Collider) -> bool {
    interaction_groups(a).test(interaction_groups(b))
}

/// Inserts a scene joint between its bodies (`bodies`: their handles, by scene index), with its limits.
fn insert_joint(
    world: &mut PhysicsWorld,
    bodies: &[RigidBodyHandle],
    def: &JointDef,
) -> ImpulseJointHandle {
    let locked = match def.joint.kind {
        JointKind::Revolute { .. } => JointAxesMask::LOCKED_REVOLUTE_AXES,
        JointKind::Prismatic { .. } => JointAxesMask::LOCKED_PRISMATIC_AXES,
        JointKind::Fixed => JointAxesMask::LOCKED_FIXED_AXES,
    };
    let mut joint = GenericJointBuilder::new(locked)
        .local_frame1(def.frame1)
        .local_frame2(def.frame2)
        // Jointed bodies overlap by design (a finger inside its palm's box).
        .contacts_enabled(false)
        .build();
    if let (Some(axis), Some(l)) = (joint_axis(def.joint.kind), def.joint.limits) {
        joint.set_limits(axis, [l.min, l.max]);
    }
    world
        .impulse_joints
        .insert(bodies[def.parent], bodies[def.child], joint, true)
}

/// The free axis of a joint in its frame (always the frame's x).
pub(crate) fn joint_axis(kind: JointKind) -> Option<JointAxis> {
    match kind {
        JointKind::Revolute { .. } => Some(JointAxis::AngX),
        JointKind::Prismatic { .. } => Some(JointAxis::LinX),
        JointKind::Fixed => None,
    }
}

/// Heading about world z of a rotation's x axis.
pub fn yaw_of(rotation: Quat) -> f32 {
    let x = rotation * Vec3::X;
    x.y.atan2(x.x)
}
