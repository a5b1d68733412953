//! [`WalkerOracle`]: a scripted walk for legged robots in a maze, batched over N envs.
//!
//! The gait is a trot that needs no turning: the legs, taken in order around the body, form two alternating sets
//! (the diagonals of a quadruped). While one set swings (knees lift the feet, hips carry them forwards), the other
//! stands and sweeps backwards; each hip sweeps along the part of the desired heading its foot can push, so the
//! body moves in any direction whatever its yaw (the stance sweeps also turn it back to its authored yaw, so that
//! the data's actions depend on where the robot is and goes, not on how it is turned). The heading comes from a [`DistanceField`] over the scene's
//! [`Maze`]: a point a little way down the shortest path to the target, around the walls. For data it adds
//! OGBench's time-smoothed Gaussian noise and, in "play" mode, keeps walking to random places of its own choosing
//! (OGBench's antmaze "navigate" data) instead of the task's goal.

use std::f32::consts::PI;

use bevy::math::{Quat, Vec2, Vec3};
use qamlab_sim::authoring::{BodyKind, Control, JointKind, Range};
use qamlab_sim::scene::{GoalDef, JointDef};
use qamlab_sim::spec::columns;
use qamlab_sim::{EnvSpec, StepOutput, TaskScene};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::maze::{DistanceField, HALF_DIAGONAL, Legs, Maze, Terrain, Torso};
use crate::oracle::{OracleConfig, OracleMode, perturb, wrap};
use crate::registry::TaskError;

/// Control steps per gait cycle (each set of legs swings for half of it).
const PERIOD: u32 = 8;
/// Hip sweep amplitude (rad) at full speed, along a leg's tangent (the turning sweep comes on top).
const SWEEP: f32 = 0.6;
/// Hip sweep (rad) that turns the body back to its authored yaw, at full correction...
const TURN: f32 = 0.2;
/// ... which a yaw error of 1 / this many radians calls for.
const TURN_GAIN: f32 = 3.0;
/// Knee lift (rad) at the middle of a swing.
const LIFT: f32 = 0.7;
/// The robot's centre keeps this much more than its reach from walls (m).
const MARGIN: f32 = 0.05;
/// Cells down the path the robot heads for.
const LOOKAHEAD: usize = 8;
/// Closer than this to its target the robot stands still (m).
const ARRIVED: f32 = 0.1;
/// Closer than this the stride shortens (m).
const SLOW: f32 = 0.3;
/// Play: a place is given up for another after the steps its path would take at this speed (m/s)...
const PATIENT_SPEED: f32 = 0.2;
/// ... plus these.
const PATIENT_STEPS: u32 = 40;
/// Play: a place this close is reached (m).
const REACHED: f32 = 0.2;
/// A hip turns about the vertical: its unit axis's z at least this (within about 8 degrees).
const HIP_AXIS_Z: f32 = 0.99;
/// A knee turns about a horizontal axis: its unit axis's z at most this (within about 6 degrees).
const KNEE_AXIS_Z: f32 = 0.1;

/// What the walking script takes for a legged robot, for messages (`assets/tasks/README.md` says it at length).
pub(crate) const LEGGED_ROBOT: &str = "an even number of legs, at least 4, every action a `PositionAbsolute` hip \
    or knee of one: a hip turns a thigh from the body about the vertical (within 8 degrees), a knee turns a shin, the \
    foot, from that thigh about a horizontal axis";

/// Whether `scene`'s robot has a leg the walking script could move: an action's joint that turns a body about the
/// vertical (a hip) and another's that turns that body's child about a horizontal axis (a knee). It reads the
/// joints alone, not the goal or the sensors, so that a robot without legs (an arm, a cart) is told it is not the
/// walking script's before what that script would read of a legged one.
pub(crate) fn has_a_leg(scene: &TaskScene) -> bool {
    let turns_about = |j: usize, vertical: bool| match scene.joints[j].joint.kind {
        JointKind::Revolute { axis } => {
            let z = axis.normalize().z.abs();
            if vertical {
                z > HIP_AXIS_Z
            } else {
                z < KNEE_AXIS_Z
            }
        }
        _ => false,
    };
    let driven = || {
        scene
            .actuators
            .iter()
            .flat_map(|a| a.joints.iter().copied())
    };
    driven().any(|hip| {
        turns_about(hip, true)
            && driven().any(|knee| {
                scene.joints[knee].parent == scene.joints[hip].child && turns_about(knee, false)
            })
    })
}

/// What each of `scene`'s actions moves, for messages: "`elbow` turns `lower` about (0, 0, 1) from `upper`", one
/// per joint it drives, joined by commas.
pub(crate) fn what_actions_move(scene: &TaskScene) -> String {
    let mut moves = Vec::new();
    for act in &scene.actuators {
        for &j in &act.joints {
            let joint = &scene.joints[j];
            let (parent, child) = (
                &scene.bodies[joint.parent].body.name,
                &scene.bodies[joint.child].body.name,
            );
            let how = match joint.joint.kind {
                JointKind::Revolute { axis } => {
                    format!("turns `{child}` about ({}, {}, {})", axis.x, axis.y, axis.z)
                }
                JointKind::Prismatic { axis } => {
                    format!(
                        "slides `{child}` along ({}, {}, {})",
                        axis.x, axis.y, axis.z
                    )
                }
                JointKind::Fixed => format!("holds `{child}` fixed"),
            };
            moves.push(format!("`{}` {how} from `{parent}`", act.actuator.name));
        }
    }
    moves.join(", ")
}

/// One leg: its two actuators and how their joints move the foot.
#[derive(Clone, Debug)]
struct Leg {
    /// Action index of the hip (turns the leg about the vertical).
    hip: usize,
    /// Action index of the knee (lifts the foot).
    knee: usize,
    /// Horizontal direction the foot moves for a positive hip angle, in the body's authored frame.
    tangent: Vec2,
    /// +1 if a positive hip angle moves the foot counter-clockwise around the body, else -1.
    ccw: f32,
    /// Direction of the leg from the body's centre (radians, authored frame): the order around the body.
    around: f32,
    /// +1 or -1: the knee angle's sign that swings the foot outwards and up.
    lift_sign: f32,
    /// Swings in the first half of the cycle (else the second).
    first: bool,
    /// Hip and knee `PositionAbsolute` maps: (angle at action 0, angle per action unit).
    hip_map: (f32, f32),
    knee_map: (f32, f32),
}

/// Where the oracle reads and writes.
#[derive(Clone, Debug)]
struct Layout {
    /// Body position `[x, y, z]` in the observation.
    position: usize,
    /// Body quaternion `[x, y, z, w]` in the observation.
    quaternion: usize,
    /// The goal (index into the scene's goals).
    goal: usize,
    /// Goal target `[x, y, z]` in the observation.
    target: usize,
    /// The body's authored yaw (the legs' tangents are in that frame).
    yaw0: f32,
    legs: Vec<Leg>,
    action_dim: usize,
}

/// Heading of a rotation about z (radians): the angle of sim's `yaw_of`, computed from the quaternion's components
/// directly. Its rounding is not `yaw_of`'s, and the walker's actions (so every antmaze-umaze dataset) follow it.
fn heading(q: Quat) -> f32 {
    let (x, y, z, w) = (q.x, q.y, q.z, q.w);
    (2.0 * (w * z + x * y)).atan2(1.0 - 2.0 * (y * y + z * z))
}

impl Layout {
    /// Finds the walker in `scene`: a goal observed with `GoalPosition` whose frame is a body observed with
    /// `Position` and `Quaternion`, and legs of two single-joint `PositionAbsolute` actuators each: a hip
    /// (revolute about the vertical, from the body) and a knee (revolute about a horizontal axis, from the hip's
    /// child) carrying the foot. Returns the layout and the robot's bodies.
    fn find(scene: &TaskScene, spec: &EnvSpec) -> Result<(Self, Vec<usize>), String> {
        // Not a legged robot at all: said before the sensors the script would read of one.
        if !has_a_leg(scene) {
            return Err(format!(
                "a legged robot ({LEGGED_ROBOT}); no action of this scene's is a hip with a knee below it ({})",
                what_actions_move(scene)
            ));
        }
        let (mut layout, body) = Self::find_goal_body(scene, spec)?;
        let joint_of = actuator_maps(scene, spec)?;
        let mut robot = vec![body];
        for hip in 0..joint_of.len() {
            if let Some((leg, [thigh, shin])) = find_leg(scene, &joint_of, body, layout.yaw0, hip)?
            {
                layout.legs.push(leg);
                robot.extend([thigh, shin]);
            }
        }
        let legs = &mut layout.legs;
        let in_legs = |k: usize| legs.iter().any(|l: &Leg| l.hip == k || l.knee == k);
        if let Some(k) = (0..joint_of.len()).find(|&k| !in_legs(k)) {
            return Err(format!(
                "every action to move a leg (`{}` moves none): a hip turns about the vertical (axis within 8 \
                 degrees of z) from `{}` to a thigh, a knee about a horizontal axis from that thigh to a shin",
                scene.actuators[k].actuator.name, scene.bodies[body].body.name
            ));
        }
        if legs.len() < 4 || legs.len() % 2 == 1 {
            return Err(format!(
                "an even number of legs, at least 4 (found {})",
                legs.len()
            ));
        }
        // Around the body, alternate legs swing together: the diagonals of a quadruped.
        legs.sort_by(|a, b| a.around.total_cmp(&b.around));
        for (k, leg) in legs.iter_mut().enumerate() {
            leg.first = k % 2 == 0;
        }
        Ok((layout, robot))
    }

    /// Finds the goal and its body (see [`Layout::find`]): a layout with no legs yet, and the body's index.
    fn find_goal_body(scene: &TaskScene, spec: &EnvSpec) -> Result<(Self, usize), String> {
        let obs_at = |name: &str| spec.obs_names.iter().position(|n| n == name);
        let goals: Vec<usize> = scene
            .goals
            .iter()
            .enumerate()
            .filter(|(_, g)| obs_at(&columns::target_x(&g.goal.name)).is_some())
            .map(|(k, _)| k)
            .collect();
        let [goal] = goals[..] else {
            return Err(format!(
                "one goal observed with `GoalPosition` (found {})",
                goals.len()
            ));
        };
        let goal_index = goal;
        let goal = &scene.goals[goal];
        let body = goal.frame.body;
        let name = &scene.bodies[body].body.name;
        let (Some(position), Some(quaternion)) = (
            obs_at(&columns::position_x(name)),
            obs_at(&columns::quaternion_x(name)),
        ) else {
            return Err(format!(
                "the goal's body `{name}` observed with `Position` and `Quaternion`"
            ));
        };
        let target = obs_at(&columns::target_x(&goal.goal.name)).expect("found above");
        let yaw0 = heading(scene.bodies[body].body.rotation);
        let layout = Self {
            position,
            quaternion,
            goal: goal_index,
            target,
            yaw0,
            legs: Vec::new(),
            action_dim: spec.action_dim,
        };
        Ok((layout, body))
    }

    /// The joint targets, as actions, at gait step `clock` for motion `dir` (body frame, length = the stride's
    /// fraction) and a turning sweep `turn`; a zero `dir` stands still.
    fn gait(&self, clock: u32, dir: Vec2, turn: f32, action: &mut [f32]) {
        let cycle = (clock % PERIOD) as f32 / PERIOD as f32;
        // Targets lead the clock by one step: the motors take about that long to follow.
        let lead = 2.0 / PERIOD as f32;
        for leg in &self.legs {
            let sweep = SWEEP * dir.dot(leg.tangent) + turn * leg.ccw;
            let own = if leg.first {
                cycle
            } else {
                (cycle + 0.5) % 1.0
            };
            let (hip, knee) = if dir == Vec2::ZERO {
                (0.0, 0.0)
            } else if own < 0.5 {
                let u = (own * 2.0 + lead).min(1.0);
                (sweep * (2.0 * u - 1.0), LIFT * (PI * u).sin())
            } else {
                let u = ((own - 0.5) * 2.0 + lead).min(1.0);
                (sweep * (1.0 - 2.0 * u), 0.0)
            };
            action[leg.hip] = (hip - leg.hip_map.0) / leg.hip_map.1;
            action[leg.knee] = (knee * leg.lift_sign - leg.knee_map.0) / leg.knee_map.1;
        }
    }
}

/// An action's joint and its `PositionAbsolute` map: (angle at action 0, angle per action unit).
type JointMap = (usize, (f32, f32));

/// Each action's joint and map: every actuator must drive one joint to an absolute angle over [-1, 1].
fn actuator_maps(scene: &TaskScene, spec: &EnvSpec) -> Result<Vec<JointMap>, String> {
    let mut joint_of = Vec::new();
    for (k, act) in scene.actuators.iter().enumerate() {
        let a = &act.actuator;
        let map = match a.control {
            Control::PositionAbsolute { at_min, at_max } if at_max != at_min => {
                ((at_min + at_max) / 2.0, (at_max - at_min) / 2.0)
            }
            _ => {
                return Err(format!(
                    "every action to be `PositionAbsolute` over more than one angle (`{}` is {})",
                    a.name, a.control
                ));
            }
        };
        if (spec.action_low[k], spec.action_high[k]) != (-1.0, 1.0) || act.joints.len() != 1 {
            return Err(format!(
                "every action to drive one joint over [-1, 1] (`{}` does not)",
                a.name
            ));
        }
        joint_of.push((act.joints[0], map));
    }
    Ok(joint_of)
}

/// The leg whose hip is action `hip`, and its bodies (thigh, shin); `None` if that action is no hip (does not turn
/// a child of `body` about the vertical). `joint_of` is [`actuator_maps`]'s, `yaw0` the body's authored yaw.
fn find_leg(
    scene: &TaskScene,
    joint_of: &[JointMap],
    body: usize,
    yaw0: f32,
    hip: usize,
) -> Result<Option<(Leg, [usize; 2])>, String> {
    let (hj, hip_map) = joint_of[hip];
    let axis_of = |j: usize| match scene.joints[j].joint.kind {
        JointKind::Revolute { axis } => Some(axis.normalize()),
        _ => None,
    };
    let joint = &scene.joints[hj];
    let Some(hip_axis) = axis_of(hj).filter(|a| a.z.abs() > HIP_AXIS_Z) else {
        return Ok(None);
    };
    if joint.parent != body {
        return Ok(None);
    }
    let thigh = joint.child;
    let Some((knee, &(kj, knee_map))) = joint_of
        .iter()
        .enumerate()
        .find(|(_, (j, _))| scene.joints[*j].parent == thigh)
    else {
        return Err(format!(
            "a knee actuator on the joint below hip `{}`",
            joint.joint.name
        ));
    };
    let Some(knee_axis) = axis_of(kj).filter(|a| a.z.abs() < KNEE_AXIS_Z) else {
        return Err(format!(
            "knee `{}` to be revolute about a horizontal axis",
            scene.joints[kj].joint.name
        ));
    };
    let shin = scene.joints[kj].child;
    let Some((low, _)) = scene.collider_bounds(shin) else {
        return Err(format!(
            "a collider (the foot) on `{}`",
            scene.bodies[shin].body.name
        ));
    };
    let (hip_at, knee_at) = (joint.joint.anchor, scene.joints[kj].joint.anchor);
    let out = (knee_at - hip_at).truncate();
    if out.length() < 1e-3 {
        return Err(format!(
            "knee `{}` to sit out from its hip",
            scene.joints[kj].joint.name
        ));
    }
    // A positive hip angle moves the foot along axis x (foot - hip); the foot hangs below the knee.
    let foot = Vec3::new(knee_at.x, knee_at.y, low.z);
    let tangent = hip_axis.cross(foot - hip_at).truncate().normalize();
    let swing = knee_axis.cross(foot - knee_at).truncate();
    let lift_sign = if swing.dot(out) >= 0.0 { 1.0 } else { -1.0 };
    check_reach(joint, hip_map, &scene.joints[kj], knee_map, lift_sign)?;
    // Tangents in the body's authored frame.
    let unyaw = Vec2::from_angle(-yaw0);
    let from_centre = (knee_at - scene.bodies[body].body.translation).truncate();
    let ccw = if tangent.perp_dot(from_centre) <= 0.0 {
        1.0
    } else {
        -1.0
    };
    let leg = Leg {
        hip,
        knee,
        tangent: unyaw.rotate(tangent),
        ccw,
        around: unyaw.rotate(from_centre).to_angle(),
        lift_sign,
        first: false,
        hip_map,
        knee_map,
    };
    Ok(Some((leg, [thigh, shin])))
}

/// Checks that a leg's hip and knee joints (each with its action map) reach the angles the gait asks of them.
fn check_reach(
    hip: &JointDef,
    hip_map: (f32, f32),
    knee: &JointDef,
    knee_map: (f32, f32),
    lift_sign: f32,
) -> Result<(), String> {
    // The gait needs the knee to lift the foot by LIFT and the hip to sweep some way either side: each
    // joint's action range and limits must reach that far.
    let reaches = |j: &JointDef, map: (f32, f32), angle: f32| {
        let (lo, hi) = (map.0 - map.1.abs(), map.0 + map.1.abs());
        let limits = j.joint.limits;
        // Within rounding: a range authored to end at the angle reaches it.
        let within = |lo: f32, hi: f32| lo - 1e-4 <= angle && angle <= hi + 1e-4;
        within(lo, hi) && limits.is_none_or(|r| within(r.min, r.max))
    };
    let swing_angle = 0.25;
    if !(reaches(hip, hip_map, swing_angle) && reaches(hip, hip_map, -swing_angle)) {
        return Err(format!(
            "hip `{}` to turn at least {swing_angle} rad either way (its action range and limits)",
            hip.joint.name
        ));
    }
    if !reaches(knee, knee_map, LIFT * lift_sign) {
        return Err(format!(
            "knee `{}` to reach {} rad, which lifts the foot (its action range and limits)",
            knee.joint.name,
            LIFT * lift_sign
        ));
    }
    Ok(())
}

/// What a walker's script is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Walk,
    Stand,
}

/// Per-env script state.
#[derive(Clone, Debug)]
struct Walk {
    phase: Phase,
    /// Control steps since the episode began (the gait's clock).
    clock: u32,
    /// Play: the place it walks to now, the steps left before it gives up on it, and whether it was drawn (not
    /// the way back onto the free cells, whose reaching is no arrival).
    place: Option<(Vec2, u32, bool)>,
    /// The path to the current target.
    field: Option<DistanceField>,
    /// Smoothed noise state, one per action dim.
    noise: Vec<f32>,
    /// Places reached (play) or goals reached (solve) since the oracle was built.
    arrivals: u32,
    rng: ChaCha8Rng,
}

impl Walk {
    /// Play: the place to walk to now. A random free place that can be reached from `at`; a new one on arrival,
    /// or when its path has taken far longer than it should (the robot stuck, or knocked off its way).
    fn play_place(&mut self, maze: &Maze, at: Vec2, control_dt: f32) -> Vec2 {
        let due = match self.place {
            None => true,
            Some((place, left, drawn)) => {
                let reached = place.distance(at) < REACHED;
                self.arrivals += u32::from(reached && drawn);
                reached || left == 0
            }
        };
        if due {
            // Off the free cells (pushed into a wall's margin), plan from the nearest free cell.
            let from = maze.snap(at);
            let mut chosen = None;
            for _ in 0..16 {
                let place = maze.free_place(self.rng.random_range(0..maze.free_count()));
                let field = maze.distances_to(place);
                if let Some(path) = field.path_length(maze, from).filter(|&p| p > 2.0 * SLOW) {
                    let steps = path / (PATIENT_SPEED * control_dt);
                    chosen = Some((place, steps as u32 + PATIENT_STEPS, field));
                    break;
                }
            }
            // Nowhere else reachable (a pocket of the maze): back onto the free cells, and draw again there.
            let drawn = chosen.is_some();
            let (place, left, field) =
                chosen.unwrap_or_else(|| (from, PATIENT_STEPS, maze.distances_to(from)));
            self.place = Some((place, left, drawn));
            self.field = Some(field);
        }
        let (place, left, drawn) = self.place.expect("chosen above");
        self.place = Some((place, left.saturating_sub(1), drawn));
        place
    }
}

/// How a way check ([`check_the_way`]) failed.
enum WayFault {
    /// The start is not on the free floor.
    Start(Vec2),
    /// A target the goal can draw cannot be reached from the start.
    Blocked(Vec2),
    /// A target lies farther than its tolerance (and the slack) from where the robot can stand: that far.
    TooFar(Vec2, f32),
}

/// The targets a goal can draw that the way checks try: the corners and the centre of where its target can lie
/// (its ranges; for a riding target, where it can start).
fn targets(goal: &GoalDef) -> Vec<Vec2> {
    let along = |r: Range| {
        if r.max > r.min {
            r.ends_and_middle().to_vec()
        } else {
            vec![r.min]
        }
    };
    let [x, y, _] = goal.target_span();
    let (xs, ys) = (along(x), along(y));
    xs.iter()
        .flat_map(|&x| ys.iter().map(move |&y| Vec2::new(x, y)))
        .collect()
}

/// Checks that the robot can stand where it starts and walk to every target its goal can draw ([`targets`]) close
/// enough to succeed: within the goal's tolerance and `slack` of a free place.
fn check_the_way(maze: &Maze, start: Vec2, goal: &GoalDef, slack: f32) -> Result<(), WayFault> {
    if !maze.is_free(start) {
        return Err(WayFault::Start(start));
    }
    let from_start = maze.distances_to(start);
    for target in targets(goal) {
        if !from_start.reaches(maze, maze.snap(target)) {
            return Err(WayFault::Blocked(target));
        }
        let nearest = maze.snap(target).distance(target);
        if nearest > goal.goal.tolerance + slack {
            return Err(WayFault::TooFar(target, nearest));
        }
    }
    Ok(())
}

/// How the torso-only check ([`check_the_terrain`]) failed: as [`WayFault`]'s, for the torso.
enum TerrainFault {
    /// A target the goal can draw cannot be reached from the start.
    Blocked(Vec2),
    /// A target lies farther than its tolerance (and the slack) from where the torso can be: that far.
    TooFar(Vec2, f32),
}

/// [`check_the_way`] for the torso alone, over a [`Terrain`]: whether it can get to within the goal's tolerance
/// and `slack` of every target the goal can draw. Finds no fault where the terrain cannot say where the torso gets
/// to (see [`Terrain::reach_from`]: it starts in something or over nothing, or may fall).
fn check_the_terrain(
    terrain: &Terrain,
    start: Vec2,
    goal: &GoalDef,
    slack: f32,
) -> Result<(), TerrainFault> {
    let Some(reach) = terrain.reach_from(start) else {
        return Ok(());
    };
    for target in targets(goal) {
        if reach.distance(target) <= goal.goal.tolerance + slack {
            continue;
        }
        // Too far where the nearest room for the torso is on its way, else the way is shut.
        return Err(match terrain.room_near(target) {
            Some((room, _)) if reach.reaches(room) => {
                TerrainFault::TooFar(target, reach.distance(target))
            }
            _ => TerrainFault::Blocked(target),
        });
    }
    Ok(())
}

/// What the script needs that a [`WayFault`] found missing, in words: its robot keeps `reach` from walls and
/// the floor's edges.
fn script_needs(fault: WayFault, goal: &GoalDef, reach: f32) -> String {
    let name = &goal.goal.name;
    match fault {
        WayFault::Start(at) => format!(
            "the robot to start on the floor, {reach:.2} m clear of walls and the floor's edges (it starts at \
             ({}, {}))",
            at.x, at.y
        ),
        WayFault::Blocked(t) => format!(
            "goal `{name}`'s target ({}, {}) to be reachable from the robot's start: a wall, a gap in the floor or \
             a passage too narrow is in the way (the robot keeps {reach:.2} m from walls and edges, so a passage \
             must be wider than {:.2} m)",
            t.x,
            t.y,
            2.0 * reach
        ),
        WayFault::TooFar(t, nearest) => format!(
            "goal `{name}`'s target ({}, {}) within its tolerance ({} m) of where the robot can stand (the nearest \
             place is {nearest:.2} m away, by a wall or the floor's edge)",
            t.x, t.y, goal.goal.tolerance
        ),
    }
}

/// What the task needs that a [`TerrainFault`] of the torso-only check ([`check_the_terrain`]) found missing, in words:
/// even the torso as `torso` describes it cannot do it. `frame` is how far the goal's frame is from the torso's
/// centre (0 where it is the torso's).
fn task_needs(fault: TerrainFault, goal: &GoalDef, torso: &Torso, frame: f32) -> String {
    let name = &goal.goal.name;
    let width = torso.half_width;
    // What must reach the target, and how far it is from the torso that the check moves.
    let (what, beside) = if frame > 0.0 {
        (
            "the goal's frame",
            format!(", the goal's frame being {frame:.2} m from the torso's centre"),
        )
    } else {
        ("its torso", String::new())
    };
    match fault {
        TerrainFault::Blocked(t) => format!(
            "goal `{name}`'s target ({}, {}) to be reachable from the robot's start: no way leads there even for \
             its torso alone, kept {width:.3} m from its centre to what is in its way (it fits through passages \
             wider than about {:.2} m), stepping up to {:.3} m (as high as the robot stands, or stood on end on a \
             straightened leg, and then thrown up by its legs kicking at their top speed), lying flat under what is over {:.3} m above the ground, and held up by its legs \
             over gaps within {:.2} m of its centre{beside}",
            t.x,
            t.y,
            2.0 * width,
            torso.climb,
            torso.thickness,
            torso.legs
        ),
        TerrainFault::TooFar(t, nearest) => format!(
            "goal `{name}`'s target ({}, {}) within its tolerance ({} m) of where {what} can be (the nearest \
             place its torso can be is {nearest:.2} m away{beside})",
            t.x, t.y, goal.goal.tolerance
        ),
    }
}

/// The least gravity (m/s², straight down) under which the torso-only check judges: the climb it grants is what
/// the legs may push the torso up to under Earth's, and a weaker pull lets it jump higher.
const LEAST_GRAVITY: f32 = 9.8;

/// Whether the robot (its bodies `robot`) moves as the torso-only check assumes: under gravity straight down, at
/// least [`LEAST_GRAVITY`] on each of its bodies (a sideways pull slides it off edges, a weak one lets it jump
/// high), nothing bouncy, and held by nothing but the joints the script drives between its own bodies (a rail or a
/// tether may carry it anywhere). The judgement is made from where the robot is authored: a RandomizePose on its
/// torso moves it (and its legs) at reset within the ranges drawn, which the start warnings check against walls.
fn moves_plainly(scene: &TaskScene, robot: &[usize]) -> bool {
    let g = scene.settings.gravity;
    let down = g.x == 0.0 && g.y == 0.0 && g.z <= -LEAST_GRAVITY;
    let weighed = robot
        .iter()
        .all(|&b| scene.bodies[b].body.gravity_scale >= 1.0);
    let dull = scene
        .bodies
        .iter()
        .filter_map(|b| b.collider.as_ref())
        .all(|c| c.restitution <= 0.0);
    let driven = |j: usize| scene.actuators.iter().any(|a| a.joints.contains(&j));
    let own_joints = scene.joints.iter().enumerate().all(|(j, joint)| {
        let (parent, child) = (robot.contains(&joint.parent), robot.contains(&joint.child));
        !(parent || child) || (parent && child && driven(j))
    });
    down && weighed && dull && own_joints
}

/// How far the legs of `layout` reach straightened, and how high they may throw the torso (`robot[0]`), whose
/// legs reach `reach` from its centre horizontally; `None` where a leg's joint speed has no bound.
fn leg_bounds(scene: &TaskScene, layout: &Layout, robot: &[usize], reach: f32) -> Option<Legs> {
    let centre = scene.bodies[robot[0]].body.translation;
    let farthest = |from: Vec3, b: usize| {
        scene
            .collider_box_corners(b)
            .map(|c| c.distance(from))
            .fold(0.0f32, f32::max)
    };
    let (mut straight, mut speed) = (reach, 0.0f32);
    for leg in &layout.legs {
        let (hip, knee) = (
            &scene.joints[scene.actuators[leg.hip].joints[0]],
            &scene.joints[scene.actuators[leg.knee].joints[0]],
        );
        // Each joint swings what lies beyond it, out to the foot's farthest point.
        let from_knee = farthest(knee.joint.anchor, knee.child);
        let from_hip = (hip.joint.anchor.distance(knee.joint.anchor) + from_knee)
            .max(farthest(hip.joint.anchor, hip.child));
        straight = straight.max(centre.distance(hip.joint.anchor) + from_hip);
        let kick =
            joint_speed(scene, leg.hip)? * from_hip + joint_speed(scene, leg.knee)? * from_knee;
        speed = speed.max(kick);
    }
    let g = -scene.settings.gravity.z;
    Some(Legs {
        reach,
        straight,
        jump: speed * speed / (2.0 * g),
    })
}

/// A bound on how fast actuator `a` turns its joints (rad/s): Rapier's acceleration-based motor drives toward
/// `k gap / (k dt + c)`, at most `k gap / c` (`k` its stiffness, `c` its damping, `gap` the joint's whole range);
/// `None` without damping or limits.
fn joint_speed(scene: &TaskScene, a: usize) -> Option<f32> {
    let def = &scene.actuators[a];
    let (k, c) = (def.actuator.stiffness.abs(), def.actuator.damping);
    if c <= 0.0 {
        return None;
    }
    def.joints.iter().try_fold(0.0f32, |most, &j| {
        let l = scene.joints[j].joint.limits?;
        Some(most.max(k * (l.max - l.min) / c))
    })
}

/// What the task needs that no policy could give it, where the torso-only check is sure of that: `None` where the
/// torso of `robot`, with the legs of `layout` (reaching `legs` from its centre at `start`), may get within reach
/// of every target of `goal`, or where the check cannot tell (a robot that moves otherwise than it assumes, a
/// scene its boxes do not describe exactly, a torso it cannot size, one that may fall, or legs of unbounded
/// speed).
fn task_fault(
    scene: &TaskScene,
    robot: &[usize],
    layout: &Layout,
    goal: &GoalDef,
    legs: f32,
    start: Vec2,
) -> Option<String> {
    // The script keeps its legs' whole reach, and a margin, from the walls and the floor's edges, on the one
    // floor: a way its torso alone fits through (held over gaps by its legs, over steps, crawling under bars: the
    // `Terrain`) is one a policy may still take. Only where even that is shut is the task at fault.
    if !moves_plainly(scene, robot) {
        return None;
    }
    let legs = leg_bounds(scene, layout, robot, legs)?;
    let torso = Torso::from_scene(scene, robot, legs).ok()?;
    let terrain = Terrain::from_scene(scene, robot, torso).ok()?;
    // The goal's frame may be a site on the torso, as far from its centre as the site's offset.
    let frame = goal.frame.offset.length();
    let fault = check_the_terrain(&terrain, start, goal, HALF_DIAGONAL + frame).err()?;
    Some(task_needs(fault, goal, &torso, frame))
}

/// The body of a robot the walking script drives (the goal's frame, from which the legs hang), to tell whether an
/// episode left it upside down: a legged robot on its back does not get up, neither by the script's gait nor by
/// the physics, and its episode runs on to its end with it lying there.
#[derive(Clone, Debug)]
pub struct WalkerBody {
    /// The body's name.
    pub name: String,
    /// Where its pose starts in one env's `qpos` (position, then quaternion).
    qpos_at: usize,
    /// The world's up in the body's own frame, at its authored pose.
    up: Vec3,
}

impl WalkerBody {
    /// The body of `scene`'s robot, where the walking script would drive it (whether or not it can get to the
    /// goal); `None` for any other robot. `spec` is the scene's.
    pub fn find(scene: &TaskScene, spec: &EnvSpec) -> Option<Self> {
        let (_, robot) = Layout::find(scene, spec).ok()?;
        let body = &scene.bodies[robot[0]].body;
        let k = spec.state_bodies.iter().position(|b| *b == body.name)?;
        Some(Self {
            name: body.name.clone(),
            qpos_at: qamlab_sim::QPOS_PER_BODY * k,
            up: body.rotation.normalize().inverse() * Vec3::Z,
        })
    }

    /// Whether the body lies upside down in one env's state `qpos`: the side that was up as authored points below
    /// the horizontal.
    pub fn is_upside_down(&self, qpos: &[f32]) -> bool {
        let q = &qpos[self.qpos_at + 3..self.qpos_at + 7];
        let rotation = Quat::from_xyzw(q[0], q[1], q[2], q[3]);
        (rotation * self.up).z < 0.0
    }
}

/// The batched walking oracle.
pub struct WalkerOracle {
    config: OracleConfig,
    layout: Layout,
    maze: Maze,
    obs_dim: usize,
    /// Seconds per control step.
    control_dt: f32,
    walks: Vec<Walk>,
    actions: Vec<f32>,
}

impl WalkerOracle {
    /// An oracle for `spec`'s envs of `scene` (one script per seed: env `i` draws its noise and places from
    /// `seeds[i]`). Errors, saying what it needs, if the scene holds no robot it can walk or no floor to plan on.
    pub fn new(
        scene: &TaskScene,
        spec: &EnvSpec,
        config: OracleConfig,
        seeds: &[u64],
    ) -> Result<Self, TaskError> {
        let no = |missing: String| TaskError::NoOracle {
            task: spec.task.clone(),
            missing,
        };
        let (layout, robot) = Layout::find(scene, spec).map_err(no)?;
        if robot
            .iter()
            .any(|&b| scene.bodies[b].body.kind != BodyKind::Dynamic)
        {
            return Err(no("the robot's bodies to be Dynamic".into()));
        }
        let centre = scene.bodies[robot[0]].body.translation.truncate();
        let reach = robot
            .iter()
            .filter_map(|&b| scene.collider_bounds(b))
            .flat_map(|(lo, hi)| {
                [
                    lo.truncate(),
                    hi.truncate(),
                    Vec2::new(lo.x, hi.y),
                    Vec2::new(hi.x, lo.y),
                ]
            })
            .map(|p| p.distance(centre))
            .fold(0.0, f32::max);
        let maze = Maze::from_scene(scene, &robot, reach + MARGIN).map_err(no)?;
        let goal = &scene.goals[layout.goal];
        if let Err(fault) = check_the_way(&maze, centre, goal, 0.0) {
            let script = no(script_needs(fault, goal, reach + MARGIN));
            return Err(
                match task_fault(scene, &robot, &layout, goal, reach, centre) {
                    Some(needs) => TaskError::Unsolvable {
                        task: spec.task.clone(),
                        needs,
                    },
                    None => script,
                },
            );
        }
        let walks = seeds
            .iter()
            .map(|&seed| Walk {
                phase: Phase::Walk,
                clock: 0,
                place: None,
                field: None,
                noise: vec![0.0; spec.action_dim],
                arrivals: 0,
                rng: ChaCha8Rng::seed_from_u64(seed),
            })
            .collect();
        Ok(Self {
            config,
            layout,
            maze,
            obs_dim: spec.obs_dim,
            control_dt: spec.control_dt,
            walks,
            actions: vec![0.0; seeds.len() * spec.action_dim],
        })
    }

    /// Number of envs it drives.
    pub fn num_envs(&self) -> usize {
        self.walks.len()
    }

    /// Env `i`'s current script phase, for diagnostics (`"walk"` or `"stand"`).
    pub fn phase(&self, i: usize) -> &'static str {
        match self.walks[i].phase {
            Phase::Walk => "walk",
            Phase::Stand => "stand",
        }
    }

    /// Places (play) or goals (solve) env `i`'s script has walked to so far.
    pub fn arrivals(&self, i: usize) -> u32 {
        self.walks[i].arrivals
    }

    /// Restarts env `i`'s script (call when its episode restarts); its random stream continues.
    pub fn episode_started(&mut self, i: usize) {
        let w = &mut self.walks[i];
        w.phase = Phase::Walk;
        w.clock = 0;
        w.place = None;
        w.noise.fill(0.0);
    }

    /// Restarts the scripts of every env whose episode ended at the step `out` reports.
    pub fn episodes_ended(&mut self, out: &StepOutput) {
        for i in out.ended_envs() {
            self.episode_started(i);
        }
    }

    /// Actions `[N * action_dim]` for observations `[N * obs_dim]`.
    pub fn act(&mut self, obs: &[f32]) -> &[f32] {
        let a = self.layout.action_dim;
        // Written in place: this runs at every env step of a collection.
        let mut actions = std::mem::take(&mut self.actions);
        for (i, action) in actions.chunks_mut(a).enumerate() {
            let o = &obs[i * self.obs_dim..(i + 1) * self.obs_dim];
            self.script_action(i, o, action);
            let w = &mut self.walks[i];
            perturb(&self.config, &mut w.noise, &mut w.rng, action);
        }
        self.actions = actions;
        &self.actions
    }

    /// Writes the noise-free action of env `i`'s script into `action`, advancing its clock and choosing its
    /// places.
    fn script_action(&mut self, i: usize, o: &[f32], action: &mut [f32]) {
        let l = &self.layout;
        let maze = &self.maze;
        let w = &mut self.walks[i];
        let at = Vec2::new(o[l.position], o[l.position + 1]);
        let q = l.quaternion;
        let yaw = heading(Quat::from_xyzw(o[q], o[q + 1], o[q + 2], o[q + 3]));

        let target = if self.config.mode == OracleMode::Play {
            w.play_place(maze, at, self.control_dt)
        } else {
            Vec2::new(o[l.target], o[l.target + 1])
        };
        if w.field.as_ref().is_none_or(|f| f.target() != target) {
            w.field = Some(maze.distances_to(target));
        }
        let field = w.field.as_ref().expect("set above");
        let heading = field.waypoint(maze, at, LOOKAHEAD) - at;
        let left = target.distance(at);
        let was = w.phase;
        // Standing, it walks again only once it has drifted twice that far (no stepping on the spot).
        let stand_within = if was == Phase::Stand {
            2.0 * ARRIVED
        } else {
            ARRIVED
        };
        w.phase = if left < stand_within {
            Phase::Stand
        } else {
            Phase::Walk
        };
        if self.config.mode == OracleMode::Solve && was == Phase::Walk && w.phase == Phase::Stand {
            w.arrivals += 1;
        }

        // Desired motion in the body's frame, shortened near the target.
        let speed = if w.phase == Phase::Stand {
            0.0
        } else {
            (left / SLOW).clamp(0.3, 1.0)
        };
        let dir = Vec2::from_angle(-yaw).rotate(heading.normalize_or_zero()) * speed;
        // Back to the authored yaw (see the module's note).
        let turn = (wrap(l.yaw0 - yaw, 2.0 * PI) * TURN_GAIN).clamp(-1.0, 1.0) * TURN;
        let clock = w.clock;
        w.clock += 1;
        l.gait(clock, dir, turn, action);
    }
}
