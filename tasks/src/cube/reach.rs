//! How far past the gantry's reach the robot can move a cube, bounded generously: what lets
//! [`check_reach`](super::feasibility::check_reach) say that no policy can do a task. Bounded only in scenes whose
//! motion the bound covers (see [`RobotReach::of`]); elsewhere nothing is claimed, and the script's own checks
//! decide.

use bevy::math::Vec3;
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::{BodyKind, Control, JointKind, Range, Shape};
use qamlab_sim::scene::GoalDef;

/// How far past the pinch the robot, and what it pushes or throws, can move things.
pub(super) struct RobotReach {
    /// How far past the pinch the hand touches anything, horizontally and in all directions (m).
    hand: f32,
    hand_3d: f32,
    /// The cubes (the only loose bodies), each with its size: the robot may push one with the others, end to end.
    cubes: Vec<(usize, f32)>,
    /// The hand's top speeds (m/s), horizontally and upwards.
    speed: f32,
    lift_speed: f32,
    /// Gravity's strength (m/s²), the lowest friction of anything a cube slides on, and how high a cube may start
    /// (m), from which it may fall.
    gravity: f32,
    friction: f32,
    cubes_top: f32,
}

/// How fast Rapier's penetration recovery may push overlapping bodies apart (m/s): its
/// `IntegrationParameters::normalized_max_corrective_velocity` (3.0 by default, in rapier3d's
/// `dynamics/integration_parameters.rs`) times its length unit (1 m). The sim sets neither, so the default holds.
const MAX_CORRECTIVE_VELOCITY: f32 = 3.0;

/// Where one goal's cube may be moved to, past the pinch's reach (m), and where its goal's point starts.
pub(super) struct CubeReach {
    /// The goal's point's start, per axis: its site on the cube, wherever the cube may be drawn and turned.
    pub from: [Range; 3],
    /// How far past the pinch the robot can push or throw the point, horizontally.
    pub flat: f32,
    /// How far above the pinch's reach the point can be put or thrown.
    pub up: f32,
    /// How far past the pinch the robot, and anything it pushes or throws, touches the cube where it starts, and
    /// the cube moves by itself.
    pub touch: f32,
}

impl RobotReach {
    /// The bound for `scene`, whose pinch starts at `home`; `None` where the check cannot be sure what moves how
    /// far: gravity not straight down; anything bouncy or slippery (friction under 0.1); a fixed collider tilted or
    /// other than a box (a ramp or a chute carries a cube past any reach); a loose body other than the cubes (a
    /// plank may be a ramp or a lever), a cube other than a level box (it may roll, or slide off its own tilt) or
    /// under other than plain gravity (it may float or rise); a joint on a cube, one on a loose body other than the
    /// actuated chain's, or a robot body moved at reset; and a hand that turns other than about z at `dyaw`, or
    /// slides without limits.
    pub fn of(scene: &TaskScene, home: Vec3) -> Option<Self> {
        let robot = robot_bodies(scene);
        if !jointed_only_in_the_chain(scene, &robot)
            || !settled(scene, &robot)
            || !only_level_cubes_loose(scene, &robot)
        {
            return None;
        }
        let yaw_axis = yaw_axis(scene)?;
        let travel = chain_sum(scene, &robot, |j| hand_joint_travel(scene, j))?;
        let (flat, all) = robot
            .iter()
            .flat_map(|&b| scene.collider_box_corners(b))
            .chain([home])
            .fold((0.0f32, 0.0f32), |(flat, all), c| {
                (
                    flat.max((c - yaw_axis).truncate().length()),
                    all.max((c - yaw_axis).length()),
                )
            });
        // The yaw turns the hand every way about its axis, and each slide of the hand carries what it moves by
        // its travel; the axis itself is this far from the pinch.
        let hand = flat + travel + (yaw_axis - home).truncate().length();
        let hand_3d = all + travel + (yaw_axis - home).length();
        let finger_speed = |along: fn(Vec3) -> f32| {
            chain_sum(scene, &robot, |j| hand_joint_speed(scene, j, along))
        };
        let turn = actuator_speed(scene, 3)?;
        let speed = actuator_speed(scene, 0)?.hypot(actuator_speed(scene, 1)?)
            + turn * (flat + travel)
            + finger_speed(|axis| axis.truncate().length())?;
        let lift_speed = actuator_speed(scene, 2)? + finger_speed(|axis| axis.z.abs())?;
        let cubes: Vec<(usize, f32)> = (0..scene.bodies.len())
            .filter(|&b| scene.bodies[b].body.kind == BodyKind::Dynamic && !robot.contains(&b))
            .filter_map(|b| {
                let (low, high) = scene.collider_bounds(b)?;
                Some((b, (high - low).length()))
            })
            .collect();
        let cubes_top = cubes
            .iter()
            .map(|&(b, size)| start_span(scene, b, 2).max + size)
            .fold(f32::NEG_INFINITY, f32::max);
        let friction = (0..scene.bodies.len())
            .filter(|b| !robot.contains(b))
            .filter_map(|b| scene.bodies[b].collider.as_ref())
            .map(|c| c.friction)
            .fold(f32::INFINITY, f32::min);
        Some(Self {
            hand,
            hand_3d,
            cubes,
            speed,
            lift_speed,
            gravity: -scene.settings.gravity.z,
            friction,
            cubes_top,
        })
    }

    /// The bound for goal `def`, whose target may be as low as `target_low` (less its tolerance), where the pinch
    /// reaches up to `pinch_top`; `None` where its cube is not a box (it may roll on past any push).
    pub fn cube(
        &self,
        scene: &TaskScene,
        def: &GoalDef,
        pinch_top: f32,
        target_low: f32,
    ) -> Option<CubeReach> {
        let b = def.frame.body;
        let cube = &scene.bodies[b];
        let collider = cube.collider.as_ref()?;
        let Shape::Cuboid { half_extents } = collider.shape else {
            return None;
        };
        // The cube's box as placed (its collider's offset too), from the goal's point: the same whatever the
        // cube's pose.
        let site = cube.body.rotation * def.frame.offset;
        let size = (0..8)
            .map(|i| {
                let sign = |bit: usize| if i & bit == 0 { -1.0 } else { 1.0 };
                let corner = collider.offset + half_extents * Vec3::new(sign(1), sign(2), sign(4));
                (cube.body.rotation * corner - site).length()
            })
            .fold(0.0f32, f32::max);
        // A drawn yaw turns the site about the cube's origin.
        let turned = cube.randomize.as_ref().is_some_and(|r| r.yaw.is_some());
        let from = std::array::from_fn(|k| {
            let body = start_span(scene, b, k);
            let off = if k < 2 && turned {
                Range::new(-site.truncate().length(), site.truncate().length())
            } else {
                Range::new(site[k], site[k])
            };
            Range::new(body.min + off.min, body.max + off.max)
        });
        let pushers: f32 = self
            .cubes
            .iter()
            .filter(|&&(l, _)| l != b)
            .map(|&(_, s)| s)
            .sum();
        let flat = self.hand + pushers + size;
        let up = self.hand_3d + pushers + size;
        // The highest a cube can be let go from, above where its target lies.
        let top = (pinch_top + up).max(from[2].max + size).max(self.cubes_top);
        let drop = top - target_low;
        // Beside the hand, a cube may get speed from its fall, from toppling (its edge at most as fast as a rod
        // of its largest extent falling over, sqrt(3 g L)), and from being pushed out of an overlap.
        let g = self.gravity;
        let extent = 2.0 * half_extents.length();
        let extra =
            (2.0 * g * drop.max(0.0)).sqrt() + (3.0 * g * extent).sqrt() + MAX_CORRECTIVE_VELOCITY;
        let thrown = self.thrown(drop, extra);
        // A cube may move untouched too: falling off an edge, toppling, pushed out of an overlap; or pushed by
        // another cube thrown at it.
        let touch = flat + thrown;
        Some(CubeReach {
            from,
            flat: flat + thrown,
            up: up + (self.lift_speed + extra).powi(2) / (2.0 * self.gravity),
            touch,
        })
    }

    /// How much farther than the hand's touch a cube let go at most `drop` above where it lands can get: a
    /// generous bound, not a prediction. Released at the hand's top speed `v` (and its top lifting speed `w`),
    /// each plus `extra` (what else may speed the cube), it flies for at most `w / g + sqrt(2 (drop + w² / 2g) /
    /// g)`, covering `v` times that, and then slides at most `v² / (2 mu g)` (`mu` the lowest friction about; with
    /// no bounce and every body at most as fast as what hit it, a chain of pushed bodies gets no farther). The
    /// hand's speeds are bounds on the motors (see [`actuator_speed`]): the built-in gantry throws at about 0.8
    /// m/s, well under its bound.
    fn thrown(&self, drop: f32, extra: f32) -> f32 {
        let (v, w, g) = (self.speed + extra, self.lift_speed + extra, self.gravity);
        let rise = w * w / (2.0 * g);
        let flight = w / g + (2.0 * (drop.max(0.0) + rise) / g).sqrt();
        v * flight + v * v / (2.0 * self.friction * g)
    }
}

/// The bodies the gantry's actuated chain moves: the children of the joints that `dx`, `dy`, `dz`, `dyaw` and
/// `gripper` drive, cubes aside.
fn robot_bodies(scene: &TaskScene) -> Vec<usize> {
    (0..scene.bodies.len())
        .filter(|&b| driven_joints(scene).any(|j| scene.joints[j].child == b))
        .filter(|&b| !scene.goals.iter().any(|g| g.frame.body == b))
        .collect()
}

/// The joints the gantry's five actions (`dx`, `dy`, `dz`, `dyaw`, `gripper`) drive.
fn driven_joints(scene: &TaskScene) -> impl Iterator<Item = usize> + '_ {
    scene
        .actuators
        .iter()
        .take(5)
        .flat_map(|a| a.joints.iter().copied())
}

/// Whether every joint on a loose (`Dynamic`) body is one of the actuated chain's, from the world or a robot body:
/// anything else jointed (a ball held to a loose box, a base that may shuffle) may go where the bound does not
/// follow.
fn jointed_only_in_the_chain(scene: &TaskScene, robot: &[usize]) -> bool {
    let loose = |b: usize| scene.bodies[b].body.kind == BodyKind::Dynamic;
    scene.joints.iter().enumerate().all(|(j, joint)| {
        if driven_joints(scene).any(|d| d == j) {
            robot.contains(&joint.parent) || !loose(joint.parent)
        } else {
            !loose(joint.parent) && !loose(joint.child)
        }
    })
}

/// Whether everything but the robot lies still until pushed and stops when let go: gravity straight down, no
/// bounce, friction everywhere, level boxes for fixed colliders, boxes under plain gravity for loose ones, no joint
/// on a cube, and the robot starting where it is authored.
fn settled(scene: &TaskScene, robot: &[usize]) -> bool {
    let gravity = scene.settings.gravity;
    let down = gravity.x == 0.0 && gravity.y == 0.0 && gravity.z < 0.0;
    let boxed = |b: usize| {
        scene.bodies[b]
            .collider
            .as_ref()
            .is_none_or(|c| matches!(c.shape, Shape::Cuboid { .. }))
    };
    let bodies_settled = (0..scene.bodies.len()).all(|b| {
        let def = &scene.bodies[b];
        let grip = def
            .collider
            .as_ref()
            .is_none_or(|c| c.friction >= 0.1 && c.restitution <= 0.0);
        let placed = if robot.contains(&b) {
            def.randomize.is_none()
        } else if def.body.kind == BodyKind::Dynamic {
            def.body.gravity_scale == 1.0 && boxed(b)
        } else {
            (def.body.rotation * Vec3::Z).z.abs() > 0.999 && boxed(b)
        };
        grip && placed
    });
    let on_cube = |b: usize| scene.goals.iter().any(|g| g.frame.body == b);
    let cubes_free = scene
        .joints
        .iter()
        .all(|j| !on_cube(j.child) && !on_cube(j.parent));
    down && bodies_settled && cubes_free
}

/// Whether the only loose (`Dynamic`) bodies besides the robot are the goals' cubes, each a box authored level (a
/// quarter turn about z at most): a loose plank may be a ramp or a lever, a tilted cube slides off its own tilt.
/// (A cube is drawn at reset in position and yaw alone, which keep it level.)
fn only_level_cubes_loose(scene: &TaskScene, robot: &[usize]) -> bool {
    let is_cube = |b: usize| scene.goals.iter().any(|g| g.frame.body == b);
    (0..scene.bodies.len())
        .filter(|&b| scene.bodies[b].body.kind == BodyKind::Dynamic && !robot.contains(&b))
        .all(|b| {
            let def = &scene.bodies[b];
            let rotation = def.body.rotation;
            // Its turn's angle, whichever sign its quaternion is written with.
            let angle = 2.0 * rotation.w.abs().min(1.0).acos();
            let level =
                (rotation * Vec3::Z).z > 0.999 && angle <= std::f32::consts::FRAC_PI_2 + 1e-3;
            let boxed = def
                .collider
                .as_ref()
                .is_some_and(|c| matches!(c.shape, Shape::Cuboid { .. }));
            is_cube(b) && level && boxed
        })
}

/// Where `dyaw` turns the hand: its one joint's anchor, a revolute about z; `None` for anything else.
fn yaw_axis(scene: &TaskScene) -> Option<Vec3> {
    let &[j] = &scene.actuators.get(3)?.joints[..] else {
        return None;
    };
    let joint = &scene.joints[j].joint;
    match joint.kind {
        JointKind::Revolute { axis } if axis.normalize_or_zero().z.abs() > 0.999 => {
            Some(joint.anchor)
        }
        _ => None,
    }
}

/// Whether joint `j` slides the pinch itself (the joint of `dx`, `dy` or `dz`), not the hand about it.
fn moves_pinch(scene: &TaskScene, j: usize) -> bool {
    scene
        .actuators
        .iter()
        .take(3)
        .any(|a| a.joints.contains(&j))
}

/// How far joint `j` moves the hand about the pinch (m): a slide's farthest travel, 0 for the yaw and the
/// pinch's own slides; `None` for a slide without limits or any other turning joint.
fn hand_joint_travel(scene: &TaskScene, j: usize) -> Option<f32> {
    let joint = &scene.joints[j].joint;
    if moves_pinch(scene, j) || scene.actuators[3].joints == [j] {
        return Some(0.0);
    }
    match joint.kind {
        JointKind::Fixed => Some(0.0),
        JointKind::Prismatic { .. } => joint.limits.map(|l| l.min.abs().max(l.max.abs())),
        JointKind::Revolute { .. } => None,
    }
}

/// How fast joint `j` moves the hand about the pinch (m/s), in the part of its axis that `along` measures: a
/// driven slide's top speed; 0 for a passive one (it moves only as it is pushed) and for the joints the pinch's
/// and the yaw's speeds count.
fn hand_joint_speed(scene: &TaskScene, j: usize, along: fn(Vec3) -> f32) -> Option<f32> {
    let JointKind::Prismatic { axis } = scene.joints[j].joint.kind else {
        return Some(0.0);
    };
    if moves_pinch(scene, j) {
        return Some(0.0);
    }
    let mut speed = 0.0;
    for a in (0..scene.actuators.len()).filter(|&a| scene.actuators[a].joints.contains(&j)) {
        speed += actuator_speed(scene, a)?;
    }
    Some(speed * along(axis.normalize_or_zero()))
}

/// The most `per_joint` adds up along the joints between any robot body and the world (its joints, its parent's
/// joints, and so on); `None` where any joint's is, or the joints loop.
fn chain_sum(
    scene: &TaskScene,
    robot: &[usize],
    per_joint: impl Fn(usize) -> Option<f32>,
) -> Option<f32> {
    // Depth-limited: a loop of joints is no chain to sum.
    fn up(
        scene: &TaskScene,
        b: usize,
        depth: usize,
        per_joint: &dyn Fn(usize) -> Option<f32>,
    ) -> Option<f32> {
        if depth > scene.joints.len() {
            return None;
        }
        let mut sum = 0.0;
        for j in (0..scene.joints.len()).filter(|&j| scene.joints[j].child == b) {
            sum += per_joint(j)? + up(scene, scene.joints[j].parent, depth + 1, per_joint)?;
        }
        Some(sum)
    }
    robot.iter().try_fold(0.0f32, |most, &b| {
        Some(most.max(up(scene, b, 0, &per_joint)?))
    })
}

/// A bound on how fast actuator `a` moves its joints (joint units per second); `None` where nothing bounds it (no
/// damping, or an absolute target on a joint without limits). A position motor pulls at most its stiffness times
/// the gap to its target and damps at its damping times the speed, so it never outruns `stiffness * gap /
/// damping`; and at least twice the gap per control step is allowed for its dynamics, whichever is more. The gap
/// is the action's step (`PositionDelta`; plus how far apart the joints it drives together may be, which shifts
/// their shared target) or the joints' range (`PositionAbsolute`).
fn actuator_speed(scene: &TaskScene, a: usize) -> Option<f32> {
    let def = &scene.actuators[a];
    let act = &def.actuator;
    let most_action = act.range.min.abs().max(act.range.max.abs());
    let spread = || {
        def.joints.iter().try_fold(0.0f32, |most, &j| {
            let l = scene.joints[j].joint.limits?;
            Some(most.max(l.max - l.min))
        })
    };
    let gap = match act.control {
        Control::Velocity { scale } => return Some(scale.abs() * most_action),
        Control::PositionDelta { scale } if def.joints.len() == 1 => scale.abs() * most_action,
        Control::PositionDelta { scale } => scale.abs() * most_action + spread()?,
        Control::PositionAbsolute { .. } => spread()?,
    };
    if act.damping <= 0.0 {
        return None;
    }
    let per_step = 2.0 * gap / scene.settings.control_dt;
    Some(per_step.max(act.stiffness * gap / act.damping))
}

/// Where body `b` may start along axis `k`: drawn from its `RandomizePose` range, else as authored.
fn start_span(scene: &TaskScene, b: usize, k: usize) -> Range {
    let def = &scene.bodies[b];
    let drawn = def.randomize.as_ref().and_then(|r| [r.x, r.y, r.z][k]);
    let at = def.body.translation[k];
    drawn.unwrap_or(Range::new(at, at))
}
