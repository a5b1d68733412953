//! Whether the gantry can do a cube task, and whether its pick-and-place script can: [`check_reach`] checks the
//! scene's layout against the pinch's reach (what the task needs, then what the script needs) and
//! [`check_grasp`] the cubes against the fingers' opening, before any data is collected.

use bevy::math::Vec3;
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::{Control, JointKind, Range, Shape};
use qamlab_sim::scene::{FrameRef, GoalDef};

use super::reach;
use super::{CARRY_CLEARANCE, CARRY_Z, HOVER, carry_height};

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
    let home = frame_home(scene, pinch_frame(scene)?);
    let pinch = gantry_reach(scene, home)?;
    // What the robot can surely not do, where the scene lets that be bounded (`None`: nothing is claimed).
    let robot_reach = reach::RobotReach::of(scene, home);
    // What the task needs is checked in full before what the script needs: a fault of the task is said even where
    // the script would have stopped first.
    let mut script_fault: Option<String> = None;
    let mut highest_target = f32::NEG_INFINITY;
    for def in &scene.goals {
        let tolerance = def.goal.tolerance;
        let to = def.target_span();
        let goal = format!("goal `{}`'s target", def.goal.name);
        let cube_start = format!("cube `{}`'s start", scene.bodies[def.frame.body].body.name);
        if let Some(bound) = robot_reach
            .as_ref()
            .and_then(|robot| robot.cube(scene, def, pinch.reach[2].max, to[2].min - tolerance))
        {
            check_task_reach(&bound, &to, tolerance, &pinch.reach, (&goal, &cube_start)).map_err(
                |(what, k, range)| {
                    let fix = place_fix(range.max > range.min);
                    ReachFault::Task(pinch.out_of_reach(scene, &what, k, range, fix))
                },
            )?;
        }
        if script_fault.is_none() {
            script_fault = goal_script_fault(scene, &pinch, def, &to, (&goal, &cube_start));
        }
        highest_target = highest_target.max(to[2].max);
    }
    if let Some(fault) = script_fault {
        return Err(ReachFault::Script(fault));
    }
    check_grasp(scene)?;
    check_carry_height(scene, &pinch, highest_target)?;
    Ok(pinch.reach[2].max)
}

/// The pinch (the point between the fingers): a site named `pinch`, else the origin of a body named so.
fn pinch_frame(scene: &TaskScene) -> Result<FrameRef, ReachFault> {
    scene
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
        })
}

/// Where `frame` is as the scene authors its body.
fn frame_home(scene: &TaskScene, frame: FrameRef) -> Vec3 {
    let body = &scene.bodies[frame.body].body;
    body.translation + body.rotation * frame.offset
}

/// Where the gantry can put the pinch: per axis, from where it starts (`home`), as far as the limits of the joint
/// that the axis's action (`dx`, `dy`, `dz`) slides let it.
struct PinchReach {
    /// Where the pinch starts.
    home: Vec3,
    /// Per axis, the pinch's reach: its start plus the sliding joint's limits (unlimited without them).
    reach: [Range; 3],
    /// Per axis, the sliding joint's limits (unlimited without them).
    limits: [Range; 3],
}

impl PinchReach {
    /// Whether `range` along axis `k` leaves the pinch's reach.
    fn beyond(&self, k: usize, range: Range) -> bool {
        range.min < self.reach[k].min - SLACK || range.max > self.reach[k].max + SLACK
    }

    /// `what` out of reach along axis `k`, where it spans `range`, in words, and `fix`, what to change.
    fn out_of_reach(
        &self,
        scene: &TaskScene,
        what: &str,
        k: usize,
        range: Range,
        fix: &str,
    ) -> String {
        format!(
            "{what} within the pinch's reach: its {} spans [{}, {}] m, the pinch reaches [{}, {}] m (it starts at {} \
             and the joint of `{}` has limits [{}, {}]; {fix})",
            ["x", "y", "z"][k],
            mm(range.min),
            mm(range.max),
            mm(self.reach[k].min),
            mm(self.reach[k].max),
            mm(self.home[k]),
            scene.actuators[k].actuator.name,
            self.limits[k].min,
            self.limits[k].max,
        )
    }
}

/// The pinch's reach from `home`, as the joints of the first three actions slide it; errs where one of them does
/// not drive one prismatic joint along its axis, as the built-in gantry's `dx`, `dy` and `dz` do.
fn gantry_reach(scene: &TaskScene, home: Vec3) -> Result<PinchReach, ReachFault> {
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
    // The script turns the hand to a cube's yaw with `dyaw`: a joint that slides, or turns about another axis,
    // would carry the hand off instead (far off: nothing bounds a slide the script means as a turn).
    let yaw = &scene.actuators[3];
    let turns = match yaw.joints[..] {
        [j] => match scene.joints[j].joint.kind {
            JointKind::Revolute { axis } => (axis.normalize_or_zero() - Vec3::Z).length() < 1e-3,
            _ => false,
        },
        _ => false,
    };
    if !turns {
        return Err(ReachFault::Script(format!(
            "action `{}` to drive one revolute joint turning about +z, as the built-in gantry's",
            yaw.actuator.name
        )));
    }
    Ok(PinchReach {
        home,
        reach,
        limits,
    })
}

/// What to change where a place the scene sets is out of reach: a range to narrow where the place is drawn,
/// else the place itself (the script's own heights, the author changes only through the limits).
fn place_fix(drawn: bool) -> &'static str {
    if drawn {
        "narrow the range or widen the limits"
    } else {
        "move it or widen the limits"
    }
}

/// `drawn` where a reset draws the coordinate, else just `authored`.
fn span(authored: f32, drawn: Option<Range>) -> Range {
    drawn.unwrap_or(Range::new(authored, authored))
}

/// The first place the script needs for goal `def` (its target spanning `to`) that is out of the pinch's reach, in
/// words: the pinch over the cube's start (its origin) and over the target, and the hover above the target. `names`:
/// the goal's target and the cube's start, in words.
fn goal_script_fault(
    scene: &TaskScene,
    pinch: &PinchReach,
    def: &GoalDef,
    to: &[Range; 3],
    names: (&str, &str),
) -> Option<String> {
    let (goal, cube_start) = names;
    let cube = &scene.bodies[def.frame.body];
    let start = cube.body.translation;
    let moved = cube
        .randomize
        .as_ref()
        .map(|r| [r.x, r.y, r.z])
        .unwrap_or_default();
    for k in 0..3 {
        let to = to[k];
        // The script brings the pinch over the cube (its origin) and over the target themselves.
        let from = span(start[k], moved[k]);
        let drawn = to.max > to.min;
        if pinch.beyond(k, to) {
            return Some(pinch.out_of_reach(scene, goal, k, to, place_fix(drawn)));
        }
        if k < 2 {
            if pinch.beyond(k, from) {
                let fix = place_fix(from.max > from.min);
                return Some(pinch.out_of_reach(scene, cube_start, k, from, fix));
            }
        } else {
            // Cubes rest at their goals' heights, and the script comes down onto one from HOVER above it. (Its
            // bottom, the target's, is checked above: only its top can be out of reach here.)
            let approach = Range::new(to.min, to.max + HOVER);
            if pinch.beyond(k, approach) {
                let what = format!("the script's approach {HOVER} m above {goal}");
                let fix = if drawn {
                    "lower the range's top or widen the limits"
                } else {
                    "lower the target or widen the limits"
                };
                return Some(pinch.out_of_reach(scene, &what, k, approach, fix));
            }
        }
    }
    None
}

/// Checks that the script's carrying height, from [`CARRY_Z`] up to [`CARRY_CLEARANCE`] above the highest target
/// (`highest_target`), is within the pinch's reach.
fn check_carry_height(
    scene: &TaskScene,
    pinch: &PinchReach,
    highest_target: f32,
) -> Result<(), ReachFault> {
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
    if pinch.beyond(2, carry) {
        return Err(ReachFault::Script(pinch.out_of_reach(
            scene,
            &carrying,
            2,
            carry,
            "widen the limits",
        )));
    }
    Ok(())
}

/// Rounding in the authored numbers is not a place out of reach (m).
const SLACK: f32 = 1e-3;

/// `x` (m) to the millimetre: sums carry float noise (-0.010000005) that would only distract.
pub(crate) fn mm(x: f32) -> f32 {
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
/// between the fingers: narrower, across its wider horizontal side (its own shape's, whatever its yaw, where it
/// stands upright), than the gap between the two fingers' inner faces where the script opens them (at -1, the
/// `PositionAbsolute` control's `at_min`, within the joints' limits; a gripper that opens at +1 instead is refused),
/// less [`GRASP_SLACK`]. The wider side, not the narrower: the script squares the fingers to whichever of the
/// cube's faces is nearest their yaw (a cube repeats every quarter turn), so either side may come between them, and
/// a bar as long as the table fits the fingers only across its width. A cube as wide as the gap is pushed about,
/// never held. (Fingers whose gap cannot be read, not two prismatic joints' boxes apart along their axis, are left
/// to the other checks.)
fn check_grasp(scene: &TaskScene) -> Result<(), ReachFault> {
    let Some(gripper) = Gripper::of(scene) else {
        return Ok(());
    };
    if gripper.fingers.is_empty() {
        return Err(ReachFault::Script(
            "action `gripper` to drive prismatic finger joints whose bodies have colliders, as the built-in \
             gantry's (without one, nothing holds the cube)"
                .into(),
        ));
    }
    let Some(pair) = gripper.pair() else {
        return Ok(());
    };
    let (at_min, at_max) = (gripper.at_min, gripper.at_max);
    let names = |j: usize| scene.bodies[scene.joints[j].child].body.name.as_str();
    let (low, high) = (pair.low.joint, pair.high.joint);
    // The script opens the gripper with -1 (`at_min`) and closes it with +1.
    let gap = pair.gap_at(scene, at_min);
    if gap < pair.gap_at(scene, at_max) {
        return Err(ReachFault::Script(format!(
            "action `gripper` to open the fingers at -1 and close them at +1, as the built-in gantry's: `{}` and \
             `{}` are {:.1} cm apart at -1 (at_min {at_min}) and {:.1} cm at +1 (at_max {at_max}); swap at_min and \
             at_max",
            names(low),
            names(high),
            100.0 * gap,
            100.0 * pair.gap_at(scene, at_max)
        )));
    }
    if gap <= 0.0 {
        return Ok(());
    }
    for def in &scene.goals {
        let cube = def.frame.body;
        let Some(across) = width_across(scene, cube) else {
            return Err(ReachFault::Script(format!(
                "cube `{}` to have a collider (the fingers close on it)",
                scene.bodies[cube].body.name
            )));
        };
        if across > gap - GRASP_SLACK {
            return Err(ReachFault::Script(format!(
                "cube `{}` to fit between the fingers: it is {:.1} cm across its wider side (the script squares \
                 the fingers to whichever of its faces is nearest, so either side may come between them), and `{}` \
                 and `{}` open to a gap of {:.1} cm (a cube at least {:.1} cm narrower than the gap is held)",
                scene.bodies[cube].body.name,
                100.0 * across,
                names(low),
                names(high),
                100.0 * gap,
                100.0 * GRASP_SLACK
            )));
        }
    }
    Ok(())
}

/// The gantry's gripper as the script drives it: the fifth action, a `PositionAbsolute` control of prismatic finger
/// joints.
pub(super) struct Gripper<'a> {
    /// The action's motor: its stiffness and max_force squeeze the cube.
    pub(super) actuator: &'a qamlab_sim::authoring::Actuator,
    /// The joint position the script opens the fingers to (-1).
    pub(super) at_min: f32,
    /// The joint position the script closes the fingers to (+1).
    pub(super) at_max: f32,
    /// Its prismatic joints whose bodies have colliders.
    pub(super) fingers: Vec<Finger>,
}

/// One finger of the [`Gripper`].
#[derive(Clone, Copy)]
pub(super) struct Finger {
    /// Its joint.
    pub(super) joint: usize,
    /// The box around its collider as authored.
    bounds: (Vec3, Vec3),
    /// The direction its joint slides it.
    axis: Vec3,
}

/// Two fingers facing each other along world axis `k`, `low` on its low side.
pub(super) struct FingerPair {
    /// The finger on the low side.
    pub(super) low: Finger,
    /// The finger on the high side.
    pub(super) high: Finger,
    /// The world axis they slide along (the built-in's: y).
    k: usize,
}

impl<'a> Gripper<'a> {
    /// The fifth action, where it is a `PositionAbsolute` control.
    pub(super) fn of(scene: &'a TaskScene) -> Option<Self> {
        let gripper = scene.actuators.get(4)?;
        let Control::PositionAbsolute { at_min, at_max } = gripper.actuator.control else {
            return None;
        };
        let fingers = gripper
            .joints
            .iter()
            .filter_map(|&joint| {
                let JointKind::Prismatic { axis } = scene.joints[joint].joint.kind else {
                    return None;
                };
                let bounds = scene.collider_bounds(scene.joints[joint].child)?;
                Some(Finger {
                    joint,
                    bounds,
                    axis: axis.normalize_or_zero(),
                })
            })
            .collect();
        Some(Self {
            actuator: &gripper.actuator,
            at_min,
            at_max,
            fingers,
        })
    }

    /// Its fingers, where there are two.
    pub(super) fn pair(&self) -> Option<FingerPair> {
        let [a, b] = self.fingers[..] else {
            return None;
        };
        let k = (0..3)
            .max_by(|&i, &n| a.axis[i].abs().total_cmp(&a.axis[n].abs()))
            .expect("three axes");
        let (low, high) = if a.bounds.0[k] < b.bounds.0[k] {
            (a, b)
        } else {
            (b, a)
        };
        Some(FingerPair { low, high, k })
    }
}

impl FingerPair {
    /// The gap between the fingers' inner faces with their joints at `q` (within their limits).
    pub(super) fn gap_at(&self, scene: &TaskScene, q: f32) -> f32 {
        let k = self.k;
        let clamp = |j: usize| {
            scene.joints[j]
                .joint
                .limits
                .map_or(q, |l| q.clamp(l.min, l.max))
        };
        let (low, high) = (self.low, self.high);
        (high.bounds.0[k] + clamp(high.joint) * high.axis[k])
            - (low.bounds.1[k] + clamp(low.joint) * low.axis[k])
    }
}

/// How wide body `cube` is across its wider horizontal side, where fingers close on it: an upright body (turned
/// about z alone) by its shape along its own x and y, whatever its yaw, which the script matches; one tilted by the
/// box around it as authored. `None` where it has no collider.
pub(crate) fn width_across(scene: &TaskScene, cube: usize) -> Option<f32> {
    let collider = scene.bodies[cube].collider.as_ref()?;
    let upright = (scene.bodies[cube].body.rotation * Vec3::Z).z.abs() > 0.999;
    let boxed = || {
        scene
            .collider_bounds(cube)
            .map_or(0.0, |(lo, hi)| (hi.x - lo.x).max(hi.y - lo.y))
    };
    Some(match &collider.shape {
        _ if !upright => boxed(),
        Shape::Cuboid { half_extents } => 2.0 * half_extents.x.max(half_extents.y),
        Shape::Ball { radius } | Shape::Capsule { radius, .. } | Shape::Cylinder { radius, .. } => {
            2.0 * radius
        }
        Shape::ConvexHull { points } => {
            let low = points.iter().copied().fold(Vec3::INFINITY, Vec3::min);
            let high = points.iter().copied().fold(Vec3::NEG_INFINITY, Vec3::max);
            (high.x - low.x).max(high.y - low.y)
        }
    })
}

/// How much narrower than the open fingers' gap a cube must be (m): the script opens them, comes down over the
/// cube and closes, and the cube's yaw is matched only to within the noise.
const GRASP_SLACK: f32 = 0.004;

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`check_reach`] says of cube-single with `from` replaced by `to`, where the script cannot run it.
    fn script_fault(from: &str, to: &str) -> String {
        let (name, text) = crate::BUILTIN_TASKS[0];
        assert_eq!(name, "cube-single");
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "`{from}` is in cube-single");
        match check_reach(&TaskScene::from_ron(&edited, "edited").unwrap()) {
            Err(ReachFault::Script(fault)) => fault,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_advice_for_a_place_out_of_reach_fits_whether_it_is_drawn() {
        // A fixed target too high to hover over: its z spans [0.3, 0.38] m with the approach, but no range is drawn.
        let fixed = script_fault("target: (0.1, 0.1, 0.02)", "target: (0.1, 0.1, 0.3)");
        assert!(
            fixed.starts_with("the script's approach 0.08 m above goal `cube_goal`'s target within the pinch's reach")
                && fixed.ends_with("has limits [-0.2, 0.15]; lower the target or widen the limits)"),
            "{fixed}"
        );
        // Heights drawn at each reset: a range whose top to lower.
        let drawn = script_fault(
            "y: Some((min: -0.15, max: 0.15)), min_distance_from",
            "y: Some((min: -0.15, max: 0.15)), z: Some((min: 0.2, max: 0.3)), min_distance_from",
        );
        assert!(
            drawn.ends_with("has limits [-0.2, 0.15]; lower the range's top or widen the limits)"),
            "{drawn}"
        );
    }

    #[test]
    fn a_carrying_height_out_of_reach_is_named() {
        // The pinch, lowered, reaches no higher than 0.095 m: the target (on the table) and the hover above it are
        // within reach, the script's carrying height is not.
        let text = crate::BUILTIN_TASKS[0]
            .1
            .replacen(
                "limits: Some((min: -0.2, max: 0.15))",
                "limits: Some((min: -0.2, max: 0.045))",
                1,
            )
            .replacen("target: (0.1, 0.1, 0.02)", "target: (0.1, 0.1, 0.0)", 1)
            .replacen("offset: (0.0, 0.0, -0.06)", "offset: (0.0, 0.0, -0.2)", 1);
        match check_reach(&TaskScene::from_ron(&text, "edited").unwrap()) {
            Err(ReachFault::Script(fault)) => assert_eq!(
                fault,
                "the script's carrying height (z = 0.1 m) within the pinch's reach: its z spans [0.1, 0.1] m, the \
                 pinch reaches [-0.15, 0.095] m (it starts at 0.05 and the joint of `dz` has limits [-0.2, 0.045]; \
                 widen the limits)"
            ),
            other => panic!("{other:?}"),
        }
    }
}
