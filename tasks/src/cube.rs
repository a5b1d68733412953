//! [`CubeOracle`]: a scripted pick-and-place policy for the cube tasks, batched over N envs.
//!
//! A closed-loop state machine per env: approach above the cube -> descend -> grasp -> lift -> carry over the
//! target -> lower -> release -> retreat. Each action is the normalised gap between the phase's target and the
//! current state (OGBench's "action = (plan - state) / scale"), clipped to [-1, 1]. For data it adds OGBench's
//! time-smoothed Gaussian noise and, in "play" mode, keeps choosing its own random sub-goals (pick the cube, place
//! it somewhere random, repeat) instead of the task's goal.

use std::f32::consts::FRAC_PI_2;

use bevy::math::Vec3;
use qamlab_sim::authoring::{Control, JointKind, Range, Shape};
use qamlab_sim::scene::FrameRef;
use qamlab_sim::{EnvSpec, StepOutput, TaskScene};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::oracle::{OracleConfig, OracleMode, perturb, wrap};
use crate::registry::TaskError;

mod reach;

/// Observation indices the oracle reads.
#[derive(Clone, Debug)]
struct Layout {
    ee: usize,
    ee_yaw: usize,
    /// Per cube: (position index, yaw sin index).
    cubes: Vec<(usize, usize)>,
    /// Per cube: its goal's target index.
    goals: Vec<usize>,
}

impl Layout {
    fn find(spec: &EnvSpec) -> Result<Self, TaskError> {
        let at = |name: &str| {
            spec.obs_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| TaskError::NoOracle {
                    task: spec.task.clone(),
                    missing: format!("{} in the `ObservationSpace`", sensor_of(name)),
                })
        };
        let (ee, ee_yaw) = (at("pinch.position.x")?, at("palm.yaw.sin")?);
        // Cubes are the bodies observed with both a position and a yaw; goals are the observed targets. Each cube
        // goes to the one goal on it.
        let mut cubes = Vec::new();
        let mut cube_names = Vec::new();
        let mut goal_targets = Vec::new();
        for (k, name) in spec.obs_names.iter().enumerate() {
            if let Some(body) = name.strip_suffix(".yaw.sin")
                && !cube_names.contains(&body)
                && let Ok(p) = at(&format!("{body}.position.x"))
            {
                cubes.push((p, k));
                cube_names.push(body);
            }
            // A goal observed twice is still one goal (the scene's warnings name the repeated sensor).
            if let Some(goal) = name.strip_suffix(".target.x")
                && !goal_targets.iter().any(|&(g, _)| g == goal)
            {
                goal_targets.push((goal, k));
            }
        }
        let no_oracle = |missing: String| TaskError::NoOracle {
            task: spec.task.clone(),
            missing,
        };
        // Success needs every goal to hold: the script must see each target.
        if let Some((goal, _)) = spec
            .goal_bodies
            .iter()
            .find(|(g, _)| !goal_targets.iter().any(|(t, _)| t == g))
        {
            return Err(no_oracle(format!(
                "every goal observed with `GoalPosition` (goal `{goal}` is not)"
            )));
        }
        let body_of = |goal: &str| {
            spec.goal_bodies
                .iter()
                .find(|(g, _)| g == goal)
                .map(|(_, body)| body.as_str())
        };
        if cubes.is_empty() || cubes.len() != goal_targets.len() {
            // Name what makes the counts differ: a goal's body not observed as a cube, a cube without a goal.
            let observed = |column: String| spec.obs_names.contains(&column);
            let mut why = Vec::new();
            for &(goal, _) in &goal_targets {
                let body = body_of(goal).unwrap_or("?");
                let lacks: Vec<String> = [".position.x", ".yaw.sin"]
                    .iter()
                    .map(|suffix| format!("{body}{suffix}"))
                    .filter(|column| !observed(column.clone()))
                    .map(|column| sensor_of(&column))
                    .collect();
                if !lacks.is_empty() {
                    why.push(format!(
                        "goal `{goal}`'s body `{body}` lacks {}",
                        lacks.join(" and ")
                    ));
                }
            }
            for cube in &cube_names {
                if !goal_targets.iter().any(|&(g, _)| body_of(g) == Some(cube)) {
                    why.push(format!(
                        "`{cube}` is observed like a cube (position and yaw) but no observed goal is on it"
                    ));
                }
            }
            let why = why.iter().map(|w| format!("; {w}")).collect::<String>();
            return Err(no_oracle(format!(
                "one cube per goal, each cube observed with `Position(frame: <cube>)` and `YawSinCos(body: <cube>)` \
                 and each goal with `GoalPosition(goal: <goal>)` (found {}, {}{why})",
                count(cubes.len(), "cube"),
                count(goal_targets.len(), "goal")
            )));
        }
        for &(goal, _) in &goal_targets {
            let body = body_of(goal).unwrap_or("?");
            if !cube_names.contains(&body) {
                return Err(no_oracle(format!(
                    "each observed goal on a cube observed with position and yaw (goal `{goal}` is on `{body}`)"
                )));
            }
        }
        let mut goals = Vec::with_capacity(cubes.len());
        for cube in &cube_names {
            let on: Vec<_> = goal_targets
                .iter()
                .filter(|&&(goal, _)| body_of(goal) == Some(cube))
                .collect();
            match on[..] {
                [&(_, target)] => goals.push(target),
                [] => return Err(no_oracle(format!("a goal on cube `{cube}` (it has none)"))),
                _ => {
                    let names: Vec<String> = on.iter().map(|(g, _)| format!("`{g}`")).collect();
                    return Err(no_oracle(format!(
                        "one goal per cube (cube `{cube}` has {}: it is placed at one target)",
                        names.join(", ")
                    )));
                }
            }
        }
        let layout = Self {
            ee,
            ee_yaw,
            cubes,
            goals,
        };
        if spec.action_names != ["dx", "dy", "dz", "dyaw", "gripper"] {
            return Err(TaskError::NoOracle {
                task: spec.task.clone(),
                missing: "the actions dx, dy, dz, dyaw, gripper, in that order".into(),
            });
        }
        // The script plans in metres and radians per step for the built-in gantry's controls; other scales or
        // controls would make it overshoot or push the wrong way, silently.
        for (k, expected) in [
            Control::PositionDelta { scale: MOVE_SCALE },
            Control::PositionDelta { scale: MOVE_SCALE },
            Control::PositionDelta { scale: MOVE_SCALE },
            Control::PositionDelta { scale: YAW_SCALE },
        ]
        .into_iter()
        .enumerate()
        {
            if spec.action_controls[k] != expected {
                return Err(TaskError::NoOracle {
                    task: spec.task.clone(),
                    missing: format!(
                        "action `{}` to be {expected}, as the built-in gantry's (it is {})",
                        spec.action_names[k], spec.action_controls[k]
                    ),
                });
            }
        }
        if !matches!(spec.action_controls[4], Control::PositionAbsolute { .. }) {
            return Err(TaskError::NoOracle {
                task: spec.task.clone(),
                missing: format!(
                    "action `gripper` to be PositionAbsolute (-1 open, +1 closed), as the built-in gantry's (it is {})",
                    spec.action_controls[4]
                ),
            });
        }
        // The script's actions span [-1, 1], as the built-ins' do; a narrower range would refuse them mid-episode.
        for (k, name) in spec.action_names.iter().enumerate() {
            let (low, high) = (spec.action_low[k], spec.action_high[k]);
            if (low, high) != (-1.0, 1.0) {
                return Err(TaskError::NoOracle {
                    task: spec.task.clone(),
                    missing: format!(
                        "action `{name}` to range over [-1, 1] (it ranges over [{low}, {high}])"
                    ),
                });
            }
        }
        Ok(layout)
    }
}

/// Why [`check_reach`] rules a scene out, in the words of what is needed.
#[derive(Debug)]
pub(crate) enum ReachFault {
    /// Where a cube starts or a goal's target lies is beyond the pinch's reach: no policy can do the task.
    Task(String),
    /// The scene lacks what the script drives, or the script's own way (its approach, its carrying height) is
    /// beyond the limits: the oracle cannot run, though an agent might still learn the task.
    Script(String),
}

/// Checks the scene's layout against the gantry's reach, as the joints of `dx`, `dy` and `dz` slide the pinch from
/// where it starts (within their limits). First what the task needs, a [`ReachFault::Task`] where it fails
/// ([`check_task_reach`]): every goal's target within the reach give or take its tolerance and how far the robot
/// can push or throw a cube past the pinch (below it too: a cube let go falls there), every cube's start within
/// touch, unless the cube may start at its target; claimed only where the scene lets that be bounded
/// ([`reach::RobotReach::of`]: boxes that do not roll, level fixed boxes, friction, no bounce, plain gravity
/// straight down, a hand that only turns about z and slides within limits), else left to the script's checks.
/// Then what the script needs, a [`ReachFault::Script`]: the pinch over each start and each target, the hover above
/// each target (where the script comes down onto a cube), the cubes narrower than the fingers' opening
/// ([`check_grasp`]) and the carrying height. A script sent out of reach pushes against a limit for the rest of the
/// episode, and its data never succeeds. Errors name the cube or goal and the coordinate out of reach. (A cube
/// authored in the air falls: its height is not checked. The script takes a goal on a site of its cube at the
/// cube's origin, and its checks too: a site a few centimetres off is within their purpose, which is to catch a
/// scene laid out beyond the gantry; the task's check takes the site.) Returns the highest z the pinch reaches,
/// which the script's carrying height never exceeds (a cube resting high up would otherwise send it past the
/// limit, where it would wait for the rest of the episode).
pub(crate) fn check_reach(scene: &TaskScene) -> Result<f32, ReachFault> {
    let frame_home = |frame: FrameRef| {
        let body = &scene.bodies[frame.body].body;
        body.translation + body.rotation * frame.offset
    };
    let pinch = scene
        .sites
        .iter()
        .find(|(name, _)| name == "pinch")
        .map(|&(_, frame)| frame)
        .or_else(|| {
            let body = scene.bodies.iter().position(|b| b.body.name == "pinch")?;
            Some(FrameRef {
                body,
                offset: Vec3::ZERO,
            })
        })
        .ok_or_else(|| {
            ReachFault::Script(
                "a body or site named `pinch` (the point between the fingers)".into(),
            )
        })?;
    let home = frame_home(pinch);
    // Per axis, the pinch's reach: its start plus the sliding joint's limits (unlimited without them).
    let mut reach = [Range::new(f32::NEG_INFINITY, f32::INFINITY); 3];
    let mut limits = [Range::new(f32::NEG_INFINITY, f32::INFINITY); 3];
    for (k, axis) in [Vec3::X, Vec3::Y, Vec3::Z].into_iter().enumerate() {
        let actuator = &scene.actuators[k];
        let name = &actuator.actuator.name;
        let slides = match actuator.joints[..] {
            [j] => match scene.joints[j].joint.kind {
                JointKind::Prismatic { axis: a } => (a.normalize_or_zero() - axis).length() < 1e-3,
                _ => false,
            },
            _ => false,
        };
        if !slides {
            let along = ["x", "y", "z"][k];
            return Err(ReachFault::Script(format!(
                "action `{name}` to drive one prismatic joint sliding along +{along}, as the built-in gantry's"
            )));
        }
        if let Some(joint) = scene.joints[actuator.joints[0]].joint.limits {
            reach[k] = Range::new(home[k] + joint.min, home[k] + joint.max);
            limits[k] = joint;
        }
    }
    // Whether `range` along axis `k` leaves the pinch's reach widened by `below` and `above`.
    let beyond = |k: usize, range: Range, below: f32, above: f32| {
        range.min < reach[k].min - below - SLACK || range.max > reach[k].max + above + SLACK
    };
    // `what` out of reach, in words. `authored`: the scene's numbers set the range, else the script's own heights
    // do, which the author changes only through the limits.
    let out_of_reach = |what: &str, k: usize, range: Range, authored: bool| {
        let fix = if !authored {
            "widen the limits"
        } else if range.min == range.max {
            "move it or widen the limits"
        } else {
            "narrow the range or widen the limits"
        };
        format!(
            "{what} within the pinch's reach: its {} spans [{}, {}] m, the pinch reaches [{}, {}] m (it starts at {} \
             and the joint of `{}` has limits [{}, {}]; {fix})",
            ["x", "y", "z"][k],
            mm(range.min),
            mm(range.max),
            mm(reach[k].min),
            mm(reach[k].max),
            mm(home[k]),
            scene.actuators[k].actuator.name,
            limits[k].min,
            limits[k].max,
        )
    };
    let span =
        |authored: f32, drawn: Option<Range>| drawn.unwrap_or(Range::new(authored, authored));
    // What the robot can surely not do, where the scene lets that be bounded (`None`: nothing is claimed).
    let robot_reach = reach::RobotReach::of(scene, home);
    // What the task needs is checked in full before what the script needs: a fault of the task is said even where
    // the script would have stopped first.
    let mut script_fault: Option<String> = None;
    let mut highest_target = f32::NEG_INFINITY;
    for def in &scene.goals {
        let target = def.goal.target;
        let tolerance = def.goal.tolerance;
        let drawn = def
            .randomize
            .as_ref()
            .map(|(r, _)| [r.x, r.y, r.z])
            .unwrap_or_default();
        let to: [Range; 3] = std::array::from_fn(|k| span(target[k], drawn[k]));
        let cube = &scene.bodies[def.frame.body];
        let start = cube.body.translation;
        let moved = cube
            .randomize
            .as_ref()
            .map(|r| [r.x, r.y, r.z])
            .unwrap_or_default();
        let goal = format!("goal `{}`'s target", def.goal.name);
        let cube_start = format!("cube `{}`'s start", cube.body.name);
        if let Some(bound) = robot_reach
            .as_ref()
            .and_then(|robot| robot.cube(scene, def, reach[2].max, to[2].min - tolerance))
        {
            check_task_reach(&bound, &to, tolerance, &reach, (&goal, &cube_start)).map_err(
                |(what, k, range)| ReachFault::Task(out_of_reach(&what, k, range, true)),
            )?;
        }
        for k in 0..3 {
            let to = to[k];
            // The script brings the pinch over the cube (its origin) and over the target themselves.
            let from = span(start[k], moved[k]);
            if script_fault.is_none() && beyond(k, to, 0.0, 0.0) {
                script_fault = Some(out_of_reach(&goal, k, to, true));
            }
            if k < 2 {
                if script_fault.is_none() && beyond(k, from, 0.0, 0.0) {
                    script_fault = Some(out_of_reach(&cube_start, k, from, true));
                }
            } else {
                // Cubes rest at their goals' heights, and the script comes down onto one from HOVER above it.
                let approach = Range::new(to.min, to.max + HOVER);
                if script_fault.is_none() && beyond(k, approach, 0.0, 0.0) {
                    let what = format!("the script's approach {HOVER} m above {goal}");
                    script_fault = Some(out_of_reach(&what, k, approach, true));
                }
                highest_target = highest_target.max(to.max);
            }
        }
    }
    if let Some(fault) = script_fault {
        return Err(ReachFault::Script(fault));
    }
    check_grasp(scene)?;
    let carry = Range::new(CARRY_Z, carry_height([highest_target]));
    let carrying = if carry.max > carry.min {
        format!(
            "the script's carrying height (z = {} to {} m, {CARRY_CLEARANCE} m above the highest target)",
            mm(carry.min),
            mm(carry.max)
        )
    } else {
        format!("the script's carrying height (z = {CARRY_Z} m)")
    };
    if beyond(2, carry, 0.0, 0.0) {
        return Err(ReachFault::Script(out_of_reach(&carrying, 2, carry, false)));
    }
    Ok(reach[2].max)
}

/// Rounding in the authored numbers is not a place out of reach (m).
const SLACK: f32 = 1e-3;

/// `x` (m) to the millimetre: sums carry float noise (-0.010000005) that would only distract.
fn mm(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// Checks what one goal needs of the robot, which can move its cube as far as `bound` says past the pinch's
/// `reach`: every target `to` within that, give or take the goal's `tolerance` (below the reach too: a cube let go
/// falls there), and the cube's start within the robot's touch; either unless the cube may start at the target (it
/// then needs no moving). Errs with what is out of reach, in words, the axis and the range out of reach.
fn check_task_reach(
    bound: &reach::CubeReach,
    to: &[Range; 3],
    tolerance: f32,
    reach: &[Range; 3],
    names: (&str, &str),
) -> Result<(), (String, usize, Range)> {
    let (goal, cube_start) = names;
    let meets = |k: usize, part: Range| {
        bound.from[k].min <= part.max + tolerance && part.min - tolerance <= bound.from[k].max
    };
    for k in 0..3 {
        let slack = tolerance + if k < 2 { bound.flat } else { bound.up };
        let below = if k < 2 { slack } else { f32::INFINITY };
        let out_above = Range::new(reach[k].max + slack, to[k].max);
        let out_below = Range::new(to[k].min, reach[k].min - below);
        let unreachable = (to[k].max > out_above.min + SLACK && !meets(k, out_above))
            || (to[k].min < out_below.max - SLACK && !meets(k, out_below));
        if unreachable {
            let what = format!(
                "{goal}, give or take {} m (its tolerance, and how far past the pinch the robot can push or throw \
                 the cube),",
                mm(slack)
            );
            return Err((what, k, to[k]));
        }
    }
    // A cube nothing can touch stays where it starts.
    for k in 0..2 {
        let from = bound.from[k];
        let untouched = from.min < reach[k].min - bound.touch - SLACK
            || from.max > reach[k].max + bound.touch + SLACK;
        if untouched && !meets(k, to[k]) {
            let what = format!(
                "{cube_start}, give or take {} m (how far past the pinch the robot, and anything it pushes or \
                 throws, can touch the cube, or the cube move by itself),",
                mm(bound.touch)
            );
            return Err((what, k, from));
        }
    }
    Ok(())
}

/// Checks that the gripper has fingers to hold with and each cube a collider to be held by, and that each cube fits
/// between the fingers: narrower, across its narrower side (its own shape's, whatever its yaw, where it stands
/// upright), than the gap between the two fingers' inner faces where the script opens them (at -1, the
/// `PositionAbsolute` control's `at_min`, within the joints' limits; a gripper that opens at +1 instead is refused),
/// less [`GRASP_SLACK`]. A cube as wide as the gap is pushed about, never held. (Fingers whose gap cannot be read,
/// not two prismatic joints' boxes apart along their axis, are left to the other checks.)
fn check_grasp(scene: &TaskScene) -> Result<(), ReachFault> {
    let Some(gripper) = scene.actuators.get(4) else {
        return Ok(());
    };
    let Control::PositionAbsolute { at_min, at_max } = gripper.actuator.control else {
        return Ok(());
    };
    // Per finger: its joint, the box around it as authored, its sliding axis.
    let fingers: Vec<(usize, (Vec3, Vec3), Vec3)> = gripper
        .joints
        .iter()
        .filter_map(|&j| {
            let JointKind::Prismatic { axis } = scene.joints[j].joint.kind else {
                return None;
            };
            let bounds = scene.collider_bounds(scene.joints[j].child)?;
            Some((j, bounds, axis.normalize_or_zero()))
        })
        .collect();
    if fingers.is_empty() {
        return Err(ReachFault::Script(
            "action `gripper` to drive prismatic finger joints whose bodies have colliders, as the built-in \
             gantry's (without one, nothing holds the cube)"
                .into(),
        ));
    }
    let [a, b] = &fingers[..] else {
        return Ok(());
    };
    // The world axis the fingers slide along (the built-in's: y), and which finger is on its low side.
    let k = (0..3)
        .max_by(|&i, &n| a.2[i].abs().total_cmp(&a.2[n].abs()))
        .expect("three axes");
    let (low, high) = if a.1.0[k] < b.1.0[k] { (a, b) } else { (b, a) };
    let gap_at = |q: f32| {
        let clamp = |j: usize| {
            scene.joints[j]
                .joint
                .limits
                .map_or(q, |l| q.clamp(l.min, l.max))
        };
        (high.1.0[k] + clamp(high.0) * high.2[k]) - (low.1.1[k] + clamp(low.0) * low.2[k])
    };
    let names = |j: usize| scene.bodies[scene.joints[j].child].body.name.as_str();
    // The script opens the gripper with -1 (`at_min`) and closes it with +1.
    let gap = gap_at(at_min);
    if gap < gap_at(at_max) {
        return Err(ReachFault::Script(format!(
            "action `gripper` to open the fingers at -1 and close them at +1, as the built-in gantry's: `{}` and \
             `{}` are {:.1} cm apart at -1 (at_min {at_min}) and {:.1} cm at +1 (at_max {at_max}); swap at_min and \
             at_max",
            names(low.0),
            names(high.0),
            100.0 * gap,
            100.0 * gap_at(at_max)
        )));
    }
    if gap <= 0.0 {
        return Ok(());
    }
    for def in &scene.goals {
        let cube = def.frame.body;
        let Some(collider) = &scene.bodies[cube].collider else {
            return Err(ReachFault::Script(format!(
                "cube `{}` to have a collider (the fingers close on it)",
                scene.bodies[cube].body.name
            )));
        };
        // An upright body (turned about z alone) by its shape, whatever its yaw, which the script matches; one
        // tilted, or a hull, by the box around it as authored.
        let upright = (scene.bodies[cube].body.rotation * Vec3::Z).z.abs() > 0.999;
        let boxed = || {
            scene
                .collider_bounds(cube)
                .map_or(0.0, |(lo, hi)| (hi.x - lo.x).min(hi.y - lo.y))
        };
        let across = match collider.shape {
            _ if !upright => boxed(),
            Shape::Cuboid { half_extents } => 2.0 * half_extents.x.min(half_extents.y),
            Shape::Ball { radius }
            | Shape::Capsule { radius, .. }
            | Shape::Cylinder { radius, .. } => 2.0 * radius,
            Shape::ConvexHull { .. } => boxed(),
        };
        if across > gap - GRASP_SLACK {
            return Err(ReachFault::Script(format!(
                "cube `{}` to fit between the fingers: it is {:.1} cm across its narrower side, and `{}` and `{}` \
                 open to a gap of {:.1} cm (a cube at least {:.1} cm narrower than the gap is held)",
                scene.bodies[cube].body.name,
                100.0 * across,
                names(low.0),
                names(high.0),
                100.0 * gap,
                100.0 * GRASP_SLACK
            )));
        }
    }
    Ok(())
}

/// How much narrower than the open fingers' gap a cube must be (m): the script opens them, comes down over the
/// cube and closes, and the cube's yaw is matched only to within the noise.
const GRASP_SLACK: f32 = 0.004;

/// Phases of the pick-and-place script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Approach,
    Descend,
    Grasp,
    Lift,
    Carry,
    Lower,
    Release,
    Retreat,
    Done,
}

/// Per-env script state.
#[derive(Clone, Debug)]
struct Script {
    phase: Phase,
    /// Steps spent in the current phase.
    steps: u32,
    /// The cube being moved (index into the layout's cubes); chosen when `None`.
    cube: Option<usize>,
    /// Play: where the cube should go now.
    subgoal: [f32; 3],
    /// Smoothed noise state, one per action dim.
    noise: [f32; 5],
    /// The pinch's height while carrying in the current sub-task (see [`carry_height`]).
    carry_z: f32,
    /// Cubes put down (releases completed) since the oracle was built.
    placements: u32,
    /// Grasps lost while lifting, carrying or lowering since the oracle was built.
    drops: u32,
    rng: ChaCha8Rng,
}

// Geometry of the script (metres, radians); cube-single's units.
const MOVE_SCALE: f32 = 0.05;
const YAW_SCALE: f32 = 0.3;
const HOVER: f32 = 0.08; // above the cube before descending
const CARRY_Z: f32 = 0.10; // pinch height while carrying, at the least
// The pinch carries this far above the highest cube centre or target, so that the cube clears a cube or a raised
// target (a platform) on its way; on a table with its cubes and targets resting on it, CARRY_Z is the higher.
const CARRY_CLEARANCE: f32 = 0.06;
const GRASP_DZ: f32 = 0.003; // pinch above the cube centre when grasping
const YAW_LIMIT: f32 = 1.5;
const SOLVED: f32 = 0.02; // a cube this close to its goal needs no move (the task's tolerance is 0.04)
const CLEARANCE: f32 = 0.08; // play places a cube at least this far from the others

/// The batched cube pick-and-place oracle.
pub struct CubeOracle {
    config: OracleConfig,
    layout: Layout,
    obs_dim: usize,
    /// The highest the pinch carries (see [`CubeOracle::limit_carrying_height`]).
    max_carry_z: f32,
    scripts: Vec<Script>,
    actions: Vec<f32>,
}

impl CubeOracle {
    /// An oracle for `spec`'s envs (one script per seed: env `i` draws its noise and sub-goals from `seeds[i]`).
    /// Errors if the task's observation lacks what the script reads.
    pub fn new(spec: &EnvSpec, config: OracleConfig, seeds: &[u64]) -> Result<Self, TaskError> {
        let layout = Layout::find(spec)?;
        let mut oracle = Self {
            config,
            layout,
            obs_dim: spec.obs_dim,
            max_carry_z: f32::INFINITY,
            scripts: Vec::with_capacity(seeds.len()),
            actions: vec![0.0; seeds.len() * spec.action_dim],
        };
        for &seed in seeds {
            oracle.scripts.push(Script {
                phase: Phase::Approach,
                steps: 0,
                cube: None,
                subgoal: [0.0, 0.0, 0.02],
                carry_z: CARRY_Z,
                noise: [0.0; 5],
                placements: 0,
                drops: 0,
                rng: ChaCha8Rng::seed_from_u64(seed),
            });
        }
        for i in 0..seeds.len() {
            oracle.episode_started(i);
        }
        Ok(oracle)
    }

    /// Keeps the carrying height at or below `z`, the highest the pinch reaches (from the scene's joint limits).
    pub fn limit_carrying_height(&mut self, z: f32) {
        self.max_carry_z = z;
    }

    /// Number of envs it drives.
    pub fn num_envs(&self) -> usize {
        self.scripts.len()
    }

    /// Env `i`'s current script phase, for diagnostics (`"approach"`, `"grasp"`, ...).
    pub fn phase(&self, i: usize) -> &'static str {
        match self.scripts[i].phase {
            Phase::Approach => "approach",
            Phase::Descend => "descend",
            Phase::Grasp => "grasp",
            Phase::Lift => "lift",
            Phase::Carry => "carry",
            Phase::Lower => "lower",
            Phase::Release => "release",
            Phase::Retreat => "retreat",
            Phase::Done => "done",
        }
    }

    /// Cubes env `i`'s script has put down so far (completed pick-and-place sub-tasks).
    pub fn placements(&self, i: usize) -> u32 {
        self.scripts[i].placements
    }

    /// Grasps env `i`'s script has lost while holding the cube so far.
    pub fn drops(&self, i: usize) -> u32 {
        self.scripts[i].drops
    }

    /// Restarts env `i`'s script (call when its episode restarts); its random stream continues.
    pub fn episode_started(&mut self, i: usize) {
        let s = &mut self.scripts[i];
        s.phase = Phase::Approach;
        s.steps = 0;
        s.noise = [0.0; 5];
        s.cube = None;
    }

    /// Restarts the scripts of every env whose episode ended at the step `out` reports.
    pub fn episodes_ended(&mut self, out: &StepOutput) {
        for i in (0..self.scripts.len()).filter(|&i| out.ended(i)) {
            self.episode_started(i);
        }
    }

    /// Actions `[N * 5]` for observations `[N * obs_dim]`.
    pub fn act(&mut self, obs: &[f32]) -> &[f32] {
        for i in 0..self.scripts.len() {
            let o = &obs[i * self.obs_dim..(i + 1) * self.obs_dim];
            let mut a = self.script_action(i, o);
            let s = &mut self.scripts[i];
            perturb(&self.config, &mut s.noise, &mut s.rng, &mut a);
            self.actions[i * 5..(i + 1) * 5].copy_from_slice(&a);
        }
        &self.actions
    }

    /// The noise-free action of env `i`'s script, advancing its phase.
    fn script_action(&mut self, i: usize, o: &[f32]) -> [f32; 5] {
        let l = &self.layout;
        let v3 = |k: usize| [o[k], o[k + 1], o[k + 2]];
        let ee = v3(l.ee);
        let ee_yaw = o[l.ee_yaw].atan2(o[l.ee_yaw + 1]);
        let cubes: Vec<[f32; 3]> = l.cubes.iter().map(|&(p, _)| v3(p)).collect();
        let play = self.config.mode == OracleMode::Play;
        let region = self.config.play_region;
        let s = &mut self.scripts[i];
        if s.cube.is_none() {
            // Pick the next sub-task: a random cube to a random free place (play), or the first cube off its goal
            // (solve; none left means done).
            let dist = |a: [f32; 3], b: [f32; 3]| {
                (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f32>().sqrt()
            };
            s.cube = if play {
                let k = s.rng.random_range(0..cubes.len());
                // Set down at the height the task's goal for this cube has: where the cube rests on the table.
                let rest = o[l.goals[k] + 2];
                s.subgoal = draw_subgoal(&mut s.rng, region, rest, &cubes, k);
                Some(k)
            } else {
                (0..cubes.len()).find(|&k| dist(cubes[k], v3(l.goals[k])) > SOLVED)
            };
            if let Some(k) = s.cube {
                let to = if play {
                    s.subgoal[2]
                } else {
                    o[l.goals[k] + 2]
                };
                s.carry_z =
                    carry_height(cubes.iter().map(|c| c[2]).chain([to])).min(self.max_carry_z);
            }
            s.phase = if s.cube.is_some() {
                Phase::Approach
            } else {
                Phase::Done
            };
            s.steps = 0;
        }
        let k = s.cube.unwrap_or(0);
        let cube = cubes[k];
        let yaw_at = l.cubes[k].1;
        let cube_yaw = o[yaw_at].atan2(o[yaw_at + 1]);
        let goal = if play { s.subgoal } else { v3(l.goals[k]) };
        let dxy = |a: [f32; 3], b: [f32; 3]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let held = dxy(cube, ee) < 0.02 && (cube[2] - ee[2]).abs() < 0.025;

        // The yaw that aligns the fingers with the cube's faces (a cube repeats every quarter turn), nearest to
        // the current yaw and inside the joint's reach.
        let mut yaw_target = ee_yaw + wrap(cube_yaw - ee_yaw, FRAC_PI_2);
        if yaw_target > YAW_LIMIT {
            yaw_target -= FRAC_PI_2;
        } else if yaw_target < -YAW_LIMIT {
            yaw_target += FRAC_PI_2;
        }

        let next = |s: &mut Script, phase: Phase| {
            s.phase = phase;
            s.steps = 0;
        };
        s.steps += 1;
        // A phase that overstays restarts the pick (the cube slipped or was knocked away).
        if s.steps > 60 && s.phase != Phase::Done {
            next(s, Phase::Approach);
        }
        let (target, yaw, grip) = loop {
            match s.phase {
                Phase::Approach => {
                    let t = [cube[0], cube[1], cube[2] + HOVER];
                    if dxy(ee, t) < 0.01
                        && (ee[2] - t[2]).abs() < 0.02
                        && (yaw_target - ee_yaw).abs() < 0.06
                    {
                        next(s, Phase::Descend);
                        continue;
                    }
                    // Stay high while travelling so the open fingers clear the cube.
                    let z = if dxy(ee, t) > 0.02 {
                        ee[2].max(t[2])
                    } else {
                        t[2]
                    };
                    break ([t[0], t[1], z], Some(yaw_target), -1.0);
                }
                Phase::Descend => {
                    let t = [cube[0], cube[1], cube[2] + GRASP_DZ];
                    if dxy(ee, cube) > 0.025 {
                        next(s, Phase::Approach);
                        continue;
                    }
                    if (ee[2] - t[2]).abs() < 0.006 && dxy(ee, t) < 0.008 {
                        next(s, Phase::Grasp);
                        continue;
                    }
                    break (t, Some(yaw_target), -1.0);
                }
                Phase::Grasp => {
                    if s.steps > 6 {
                        next(s, Phase::Lift);
                        continue;
                    }
                    break ([cube[0], cube[1], cube[2] + GRASP_DZ], None, 1.0);
                }
                Phase::Lift => {
                    if !held {
                        s.drops += 1;
                        next(s, Phase::Approach);
                        continue;
                    }
                    if ee[2] > s.carry_z - 0.015 {
                        next(s, Phase::Carry);
                        continue;
                    }
                    break ([ee[0], ee[1], s.carry_z], None, 1.0);
                }
                Phase::Carry => {
                    if !held {
                        s.drops += 1;
                        next(s, Phase::Approach);
                        continue;
                    }
                    // Move the hand so that the cube (not the hand) ends over the target.
                    let t = [
                        ee[0] + goal[0] - cube[0],
                        ee[1] + goal[1] - cube[1],
                        s.carry_z,
                    ];
                    if dxy(cube, goal) < 0.008 {
                        next(s, Phase::Lower);
                        continue;
                    }
                    break (t, None, 1.0);
                }
                Phase::Lower => {
                    if !held {
                        s.drops += 1;
                        next(s, Phase::Approach);
                        continue;
                    }
                    let t = [
                        ee[0] + goal[0] - cube[0],
                        ee[1] + goal[1] - cube[1],
                        ee[2] + goal[2] - cube[2] + 0.002,
                    ];
                    if (cube[2] - goal[2]).abs() < 0.006 {
                        next(s, Phase::Release);
                        continue;
                    }
                    break (t, None, 1.0);
                }
                Phase::Release => {
                    if s.steps > 5 {
                        s.placements += 1;
                        next(s, Phase::Retreat);
                        continue;
                    }
                    break (ee, None, -1.0);
                }
                Phase::Retreat => {
                    let t = [ee[0], ee[1], s.carry_z];
                    if ee[2] > s.carry_z - 0.015 {
                        // The next step chooses the next sub-task.
                        s.cube = None;
                        next(s, Phase::Done);
                    }
                    break (t, None, -1.0);
                }
                Phase::Done => break (ee, None, -1.0),
            }
        };
        let mv = |k: usize| (target[k] - ee[k]) / MOVE_SCALE;
        let dyaw = yaw.map_or(0.0, |y| (y - ee_yaw) / YAW_SCALE);
        [mv(0), mv(1), mv(2), dyaw, grip]
    }
}

/// The pinch's height while carrying over cubes and targets whose centres are at heights `zs`: CARRY_Z, or
/// CARRY_CLEARANCE above the highest.
fn carry_height(zs: impl IntoIterator<Item = f32>) -> f32 {
    zs.into_iter()
        .map(|z| z + CARRY_CLEARANCE)
        .fold(CARRY_Z, f32::max)
}

/// The sensor, as a scene file writes it, that gives the observation value `column` (`pinch.position.x`).
fn sensor_of(column: &str) -> String {
    if let Some(frame) = column.strip_suffix(".position.x") {
        format!("a `Position(frame: \"{frame}\")` sensor")
    } else if let Some(body) = column.strip_suffix(".yaw.sin") {
        format!("a `YawSinCos(body: \"{body}\")` sensor")
    } else {
        format!("`{column}`")
    }
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

/// A random place on the table (at height `z`) for cube `k`, clear of the other cubes (bounded redraws).
fn draw_subgoal(
    rng: &mut ChaCha8Rng,
    r: [f32; 4],
    z: f32,
    cubes: &[[f32; 3]],
    k: usize,
) -> [f32; 3] {
    let mut goal = [0.0, 0.0, z];
    for _ in 0..16 {
        goal[0] = r[0] + (r[1] - r[0]) * rng.random::<f32>();
        goal[1] = r[2] + (r[3] - r[2]) * rng.random::<f32>();
        let clear = cubes.iter().enumerate().all(|(j, c)| {
            j == k || ((c[0] - goal[0]).powi(2) + (c[1] - goal[1]).powi(2)).sqrt() > CLEARANCE
        });
        if clear {
            break;
        }
    }
    goal
}
