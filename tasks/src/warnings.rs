//! [`scene_warnings`]: what a scene may do that loads and runs but is most likely a mistake, said as a warning
//! rather than refused (a scene may mean it).

use bevy::math::Vec3;
use qamlab_sim::TaskScene;

use crate::cube::feasibility::mm;
use qamlab_sim::authoring::{BodyKind, Control, JointKind, Range, Shape};
use qamlab_sim::scene::{BodyDef, FrameRef, GoalDef, SensorDef};

/// The warnings of a loaded scene, each a sentence that names what it is about and what to change: a robot that cannot
/// get where the task needs it (the oracle's checks of reach and of the way to the goal), gravity pointing up, a
/// physics step over 0.04 s (`COARSE_PHYSICS_STEP`), a free body with nothing under it that it can touch where it can
/// start (its drawn height included), bodies placed or drawn inside each other, a goal's target so deep inside a fixed
/// body that its frame never comes within the tolerance, a cube too heavy for the gantry's fingers to lift, sizes, masses and places many orders of
/// magnitude from a robot lab's (sizes outside 0.1 mm-1 km, masses outside 1e-6-1e5 kg, over 100 m from the origin),
/// restitution above 1, physics work per control step thousands of times the built-ins' (`HEAVY_STEP`), a joint
/// anchored far from both its bodies, a goal whose target is drawn at random but never
/// observed, goals on one body whose targets are too far apart to hold at once, an axis goal that holds at every
/// start, two axis goals on one body whose directions no turn of it meets at once, a sensor listed twice, a body that is
/// the child of two joints, an absolute position target beyond its joint's limits or past half a turn, a position
/// motor so stiff for its damping that it snaps its joints onto their targets, or so damped that it barely moves
/// them in an episode, a `PositionDelta` joint that gravity loads (it sags without end).
pub fn scene_warnings(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(unsolvable_layout(scene));
    out.extend(authored_overlaps(scene));
    out.extend(drawn_start_overlaps(scene));
    out.extend(buried_target_warnings(scene));
    out.extend(weak_grip_warnings(scene));
    out.extend(gravity_not_down(scene));
    out.extend(angles_in_degrees(scene));
    out.extend(implausible_scales(scene));
    out.extend(restitution_above_one(scene));
    out.extend(coarse_physics_step(scene));
    out.extend(heavy_physics_step(scene));
    out.extend(unsupported_start_warnings(scene));
    out.extend(drawn_support_warnings(scene));
    out.extend(far_joint_anchor_warnings(scene));
    out.extend(unobserved_random_goal_warnings(scene));
    out.extend(unobserved_riding_goal_warnings(scene));
    out.extend(goals_that_cannot_both_hold(scene));
    out.extend(axis_goals_met_at_start(scene));
    out.extend(axis_goals_that_cannot_both_hold(scene));
    out.extend(axis_goals_a_hinge_cannot_reach(scene));
    out.extend(yaws_that_barely_turn(scene));
    out.extend(repeated_sensors(scene));
    out.extend(bodies_with_two_parent_joints(scene));
    out.extend(position_targets_out_of_reach(scene));
    out.extend(motors_out_of_tune(scene));
    out.extend(deltas_under_load(scene));
    out.extend(springs_sagging(scene));
    out.extend(motions_in_other_units(scene));
    out
}

/// A layout the scripted oracle's checks find its robot cannot do (a goal beyond the gantry's reach, walled off
/// from the walker): no policy learns it, so training it is most likely a mistake.
fn unsolvable_layout(scene: &TaskScene) -> Option<String> {
    let spec = qamlab_sim::EnvSpec::of(scene);
    match crate::Oracle::new(scene, &spec, crate::OracleConfig::default(), &[0]) {
        Err(e @ crate::TaskError::Unsolvable { .. }) => Some(e.to_string()),
        _ => None,
    }
}

/// Bodies placed inside each other where the scene places them. Resting contact sinks a fraction of a millimetre;
/// deeper means bodies placed inside each other.
fn authored_overlaps(scene: &TaskScene) -> Vec<String> {
    let name = |i: usize| &scene.bodies[i].body.name;
    qamlab_sim::physics::overlaps_at_authored_poses(scene, 0.002)
        .into_iter()
        .map(|o| {
            format!(
                "\"{}\" and \"{}\" overlap by {:.1} cm where the scene places them: the physics pushes them apart at \
                 the first step; move them apart, or give them collision groups (`membership` / `filter`) that do not \
                 touch",
                name(o.bodies.0),
                name(o.bodies.1),
                100.0 * o.depth
            )
        })
        .collect()
}

/// Randomised bodies, and the bodies their draw carries, that can start inside another
/// ([`overlaps_at_drawn_starts`]).
fn drawn_start_overlaps(scene: &TaskScene) -> Vec<String> {
    overlaps_at_drawn_starts(scene)
        .into_iter()
        .map(|o| {
            let (body, other, at) = (
                &scene.bodies[o.body].body.name,
                &scene.bodies[o.other].body.name,
                o.at,
            );
            let place = format!(
                "at ({}, {}, {}) where its RandomizePose draws it",
                mm(at.x),
                mm(at.y),
                mm(at.z)
            );
            // A body joined to the randomised root starts where the root's draw carries it.
            let (what, place) = match o.member {
                m if m == o.body => (format!("\"{body}\""), place),
                m => (
                    format!(
                        "\"{}\", joined to \"{body}\" and moved with it,",
                        scene.bodies[m].body.name
                    ),
                    format!("with \"{body}\" {place}"),
                ),
            };
            format!(
                "{what} can start inside \"{other}\", {:.1} cm deep, {place}: the physics pushes them apart at the \
                 first step; draw its start clear of \"{other}\" (RandomizePose's x, y and z are places in the world, \
                 not offsets from the authored pose), or give them collision groups (`membership` / `filter`) that do \
                 not touch",
                100.0 * o.depth
            )
        })
        .collect()
}

/// How far resting contact lets a body sink into what it rests on (m), given to a frame's way to a buried target.
const CONTACT_SINK: f32 = 0.002;

/// A goal's target inside a fixed body that the goal's body cannot enter.
struct BuriedTarget {
    /// The goal.
    goal: usize,
    /// The fixed body the target lies in.
    fixed: usize,
    /// Where the target lies then (its deepest place found).
    at: Vec3,
    /// How deep the target lies in the fixed body (m).
    depth: f32,
    /// How deep the goal's frame lies in its own body's collider (m): how far it stays outside the fixed body.
    inset: f32,
    /// Whether every place tried is as buried (the target is not drawn, or drawn only where it is buried).
    everywhere: bool,
}

/// Goals whose target (any place its RandomizeTarget draws it: the corners and the middle of its ranges, and the place
/// in them nearest the fixed collider's centre) lies so deep
/// inside a fixed body's collider that the goal's frame never comes within its tolerance: the frame lies inside its
/// own body's collider, `inset` deep, so it stays that far outside any collider its body touches (less what resting
/// contact sinks), and is at least `depth + inset` from the target (the way to a point `depth` deep crosses the
/// surface). Each pair of goal and fixed body once, at its deepest. A frame outside its body (a site off it) is
/// bounded by nothing, and bodies a joint joins, or welds into one piece, never collide.
fn buried_targets(scene: &TaskScene) -> Vec<BuriedTarget> {
    use qamlab_sim::physics::{depth_inside_at_authored_pose, groups_touch};
    let mut out = Vec::new();
    for (g, def) in scene.goals.iter().enumerate() {
        let b = def.frame.body;
        let body = &scene.bodies[b].body;
        // A riding target moves with its frame, which may carry it clear of (or into) what is fixed.
        let Some(collider) = scene.bodies[b]
            .collider
            .as_ref()
            .filter(|_| def.riding.is_none())
        else {
            continue;
        };
        let frame = body.translation + body.rotation * def.frame.offset;
        let Some(inset) = depth_inside_at_authored_pose(scene, b, frame).filter(|d| *d >= 0.0)
        else {
            continue;
        };
        // Pieces welded into one with the goal's body never touch it.
        let welded = qamlab_sim::scene::welded_group(&scene.joints, b);
        for (f, fixed) in scene.bodies.iter().enumerate() {
            let touches = fixed
                .collider
                .as_ref()
                .is_some_and(|c| groups_touch(collider, c));
            let jointed = scene
                .joints
                .iter()
                .any(|j| [j.parent, j.child] == [b, f] || [j.parent, j.child] == [f, b])
                || welded.contains(&f);
            if f == b || fixed.body.kind != BodyKind::Fixed || !touches || jointed {
                continue;
            }
            let buried = |depth: f32| depth + inset - CONTACT_SINK > def.goal.tolerance;
            // Its collider's centre, where a convex collider is deepest.
            let centre = fixed.body.translation
                + fixed.body.rotation * fixed.collider.as_ref().map_or(Vec3::ZERO, |c| c.offset);
            let depths: Vec<(Vec3, f32)> = target_places(def, centre)
                .into_iter()
                .filter_map(|at| Some((at, depth_inside_at_authored_pose(scene, f, at)?)))
                .collect();
            // Deeper by more than float noise: else the first place found stands.
            let deepest = depths
                .iter()
                .copied()
                .reduce(|best, x| if x.1 > best.1 + 1e-4 { x } else { best });
            if let Some((at, depth)) = deepest
                && buried(depth)
            {
                out.push(BuriedTarget {
                    goal: g,
                    fixed: f,
                    at,
                    depth,
                    inset,
                    everywhere: depths.iter().all(|&(_, d)| buried(d)),
                });
            }
        }
    }
    out
}

/// The places goal `def`'s target can lie: the corners and the middle of its RandomizeTarget's ranges, its authored
/// coordinate where a range is absent, and the place within them nearest `centre` (a fixed collider's: where a
/// target drawn around a block inside the ranges lies deepest in it).
fn target_places(def: &GoalDef, centre: Vec3) -> Vec<Vec3> {
    let t = def.goal.target;
    let drawn = def.drawn_target();
    let along = |k: usize| drawn[k].map_or(vec![t[k]], |r| r.ends_and_middle().to_vec());
    let mut out = Vec::new();
    for &x in &along(0) {
        for &y in &along(1) {
            for &z in &along(2) {
                out.push(Vec3::new(x, y, z));
            }
        }
    }
    let span = def.target_span();
    out.push(Vec3::from_array(std::array::from_fn(|k| {
        centre[k].clamp(span[k].min, span[k].max)
    })));
    out
}

/// Targets buried in a fixed body ([`buried_targets`]).
fn buried_target_warnings(scene: &TaskScene) -> Vec<String> {
    buried_targets(scene)
        .into_iter()
        .map(|t| {
            let def = &scene.goals[t.goal];
            let (goal, fixed) = (&def.goal.name, &scene.bodies[t.fixed].body.name);
            let body = &scene.bodies[def.frame.body].body.name;
            // A body's own frame is its origin; a site is named.
            let (frame, inside) = match frame_name(scene, def.frame) {
                site if site != *body => (format!("\"{site}\""), format!("\"{body}\"'s collider")),
                _ => (format!("\"{body}\"'s origin"), "its collider".to_string()),
            };
            let never_solved = "the goal never holds, so the task never succeeds (success is every goal holding)";
            let (lies, never) = match (&def.randomize, t.everywhere) {
                (None, _) => ("lies".to_string(), never_solved.to_string()),
                (Some(_), true) => (
                    "lies".to_string(),
                    format!("wherever its RandomizeTarget draws it (at its deepest here): {never_solved}"),
                ),
                (Some(_), false) => (
                    "can lie".to_string(),
                    "where its RandomizeTarget draws it: the goal never holds there, so such episodes never succeed"
                        .to_string(),
                ),
            };
            format!(
                "goal \"{goal}\"'s target {lies} {:.1} cm inside \"{fixed}\", at ({}, {}, {}), {never}: \"{body}\" \
                 cannot enter \"{fixed}\", and {frame} lies {:.1} cm inside {inside}, so it comes no nearer the \
                 target than about {:.1} cm, farther than the tolerance ({} m); put the target where {frame} is \
                 when \"{body}\" rests on \"{fixed}\" (targets, like RandomizeTarget's ranges, are places in the \
                 world)",
                100.0 * t.depth,
                mm(t.at.x),
                mm(t.at.y),
                mm(t.at.z),
                100.0 * t.inset,
                100.0 * (t.depth + t.inset),
                num(def.goal.tolerance)
            )
        })
        .collect()
}

/// Cubes too heavy for the gantry's fingers ([`crate::cube::grip::weak_grips`]).
fn weak_grip_warnings(scene: &TaskScene) -> Vec<String> {
    let masses = dynamic_masses(scene);
    let mass = |b: usize| masses.iter().find(|(d, _)| *d == b).map(|&(_, m)| m);
    crate::cube::grip::weak_grips(scene, mass)
        .into_iter()
        .map(|w| {
            let cube = &scene.bodies[w.cube].body.name;
            if w.overlap == 0.0 {
                return format!(
                    "\"{cube}\" is never squeezed: the gantry's fingers close (at +1, the gripper's at_max) no \
                     narrower than its {:.1} cm, so nothing holds it when the oracle lifts; close them further \
                     (at_max, within the finger joints' limits)",
                    100.0 * width(scene, w.cube)
                );
            }
            let (m1, m2) = w.finger_masses;
            let a = &scene.actuators[4].actuator;
            let (capped, fix) = if w.capped {
                (
                    format!(", capped by its max_force ({} N)", num(a.max_force)),
                    "raise the gripper's max_force, or the fingers' friction",
                )
            } else {
                (
                    String::new(),
                    "raise the fingers' (or the palm's) extra_mass or the fingers' friction, or the gripper's \
                     stiffness (max_force only caps the squeeze, and does not bind here)",
                )
            };
            // What each finger pushes from: the palm both slide on, in the gantry.
            let parents = match w.parents {
                (Some((b1, p)), Some((b2, _))) if b1 == b2 => format!(
                    ", each taken with the {} kg of \"{}\" it pushes from",
                    sig(p),
                    scene.bodies[b1].body.name
                ),
                (None, None) => String::new(),
                _ => ", each taken with the body it pushes from".to_string(),
            };
            let verdict = if w.sure { "too heavy" } else { "probably too heavy" };
            format!(
                "\"{cube}\" weighs {} kg, {verdict} for the gantry's fingers: each squeezes it with about {} N, the \
                 gripper's stiffness ({}) × how far the closed fingers' targets lie inside it ({:.1} cm together) × \
                 the fingers' reduced mass ({} kg, of {} and {} kg{parents}: the motor is acceleration-based)\
                 {capped}, and friction ({} a side) on that lets the oracle's grasp lift about {} kg (as measured, \
                 within some 25%); {fix}, or lighten the cube",
                sig(w.mass),
                sig(w.squeeze),
                num(a.stiffness),
                100.0 * w.overlap,
                sig(w.reduced_mass),
                sig(m1),
                sig(m2),
                num(w.friction / 2.0),
                sig(w.lifts)
            )
        })
        .collect()
}

/// `x` to two significant digits, as a message's estimate: `0.83`, `8.1`, `20`.
fn sig(x: f32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let scale = 10f32.powf(1.0 - x.abs().log10().floor());
    num((x * scale).round() / scale)
}

/// How wide body `b` is across its wider horizontal side, where the gantry's fingers close on it.
fn width(scene: &TaskScene, b: usize) -> f32 {
    crate::cube::feasibility::width_across(scene, b).unwrap_or(0.0)
}

/// Gravity pointing up, or more sideways than down, where it pulls some body.
fn gravity_not_down(scene: &TaskScene) -> Option<String> {
    let gravity = scene.settings.gravity;
    // Any body gravity pulls: a free one flies off, a jointed one (a pendulum) hangs upwards.
    let pulled = scene
        .bodies
        .iter()
        .any(|b| b.body.kind == BodyKind::Dynamic && b.body.gravity_scale != 0.0);
    if pulled && gravity.z > 0.0 {
        Some(format!(
            "gravity is ({}, {}, {}): it points up (z is up in a scene), so what it pulls falls upwards; Earth's \
             is (0.0, 0.0, -9.81)",
            gravity.x, gravity.y, gravity.z
        ))
    } else if pulled && gravity.truncate().length() > gravity.z.abs() {
        Some(format!(
            "gravity is ({}, {}, {}): it points more sideways than down (z is up in a scene); Earth's is (0.0, \
             0.0, -9.81)",
            gravity.x, gravity.y, gravity.z
        ))
    } else {
        None
    }
}

/// Colliders with restitution above 1, whose bounces gain energy.
fn restitution_above_one(scene: &TaskScene) -> Vec<String> {
    scene
        .bodies
        .iter()
        .filter_map(|def| {
            let c = def.collider.as_ref().filter(|c| c.restitution > 1.0)?;
            Some(format!(
                "\"{}\"'s collider has restitution {}, above 1: where a contact's restitution (the mean of its two \
                 colliders') is above 1, each bounce gives back more energy than the impact took, so what bounces \
                 there bounces ever higher; restitution runs from 0 (no bounce) to 1 (a perfectly elastic one)",
                def.body.name,
                num(c.restitution)
            ))
        })
        .collect()
}

/// A physics step (control_dt / substeps) over [`COARSE_PHYSICS_STEP`].
fn coarse_physics_step(scene: &TaskScene) -> Option<String> {
    let s = &scene.settings;
    let step = s.control_dt / s.substeps as f32;
    // Loading refuses steps past `MAX_PHYSICS_STEP`; this warns short of it. A hair of slack: 0.2 / 5 passes.
    if step <= COARSE_PHYSICS_STEP * (1.0 + 1e-5) {
        return None;
    }
    let needed = (s.control_dt / COARSE_PHYSICS_STEP * (1.0 - 1e-5)).ceil();
    Some(format!(
        "the physics step, control_dt / substeps = {} / {} = {step} s, is over {COARSE_PHYSICS_STEP} s: stiff \
         motors and contacts are integrated coarsely there (cube-single's grasp fails in a fifth to a half of \
         its episodes at 0.05 to 0.06 s); raise substeps to {needed} or more (the built-ins step 0.01 to \
         0.025 s)",
        s.control_dt, s.substeps
    ))
}

/// The most constraint passes (substeps × solver_iterations × solver_passes) a control step may run before it is
/// warned of: 250 times antmaze-umaze's 40 (cube-single runs 20). Each bound of its own is loose (1000 each), and
/// their product is not: cube-single at 20000 passes a step runs some 45 control steps a second on one core, and at
/// 1e9 (every bound at its top) one step takes some 20 minutes (extrapolated: `qamlab task FILE --episodes 1` printed
/// nothing in a minute).
const HEAVY_STEP: f32 = 10_000.0;

/// Physics work per control step over [`HEAVY_STEP`] constraint passes.
fn heavy_physics_step(scene: &TaskScene) -> Option<String> {
    let s = &scene.settings;
    let passes = s.substeps as f32 * s.solver_iterations as f32 * s.solver_passes as f32;
    (passes > HEAVY_STEP).then(|| {
        format!(
            "each control step runs substeps × solver_iterations × solver_passes = {} × {} × {} = {} constraint \
             passes, {} times antmaze-umaze's 40: everything run on it is that much slower (cube-single at 20000 \
             runs some 45 control steps a second on one core); the built-ins step 2 to 5 substeps of 4 to 5 \
             iterations of 1 to 4 passes",
            s.substeps,
            s.solver_iterations,
            s.solver_passes,
            num(passes),
            num((passes / 40.0).round())
        )
    })
}

/// Free bodies that can start with nothing under them ([`unsupported_starts`]).
fn unsupported_start_warnings(scene: &TaskScene) -> Vec<String> {
    unsupported_starts(scene)
        .into_iter()
        .map(|fall| {
            let body = &fall.body;
            // Its height said where it is drawn, and it is what leaves the body without support.
            let at = match fall.drawn_z {
                None => format!("({}, {})", fall.at.x, fall.at.y),
                Some(_) => format!("({}, {}, {})", fall.at.x, fall.at.y, fall.at.z),
            };
            match (&fall.apart, fall.drawn_z) {
                (None, None) => format!(
                    "\"{body}\" has nothing under it where it can start, at {at}: it falls for the whole episode; \
                     place it over a fixed collider (a table, a floor) or put one under it"
                ),
                (None, Some(z)) => format!(
                    "\"{body}\" has nothing under it where it can start, at {at}: its RandomizePose draws its height \
                     from [{}, {}] m, below everything that could hold it there, so it falls for the whole episode; z \
                     is a height in the world, not an offset from the authored pose: draw it where the body rests on a \
                     fixed collider (a table, a floor), or leave z out to start it at its authored height",
                    z.min, z.max
                ),
                (Some(under), _) => format!(
                    "\"{body}\" has nothing under it that it can touch where it can start, at {at}: \"{under}\" is \
                     under it, but their collision groups keep them apart, so it falls through for the whole episode; \
                     give them a `membership` and `filter` that touch (each one's filter sharing a bit with the other's \
                     membership)"
                ),
            }
        })
        .collect()
}

/// Free bodies that start resting on a fixed body whose RandomizePose moves it each episode: their starts are drawn
/// regardless of where it went, so they can start inside it or above it (and the checks here take it at its
/// authored pose). A body rests on it where, without its collider, the body would have nothing under it.
fn drawn_support_warnings(scene: &TaskScene) -> Vec<String> {
    let falling: Vec<String> = unsupported_starts(scene)
        .into_iter()
        .map(|f| f.body)
        .collect();
    let mut out = Vec::new();
    for (f, fixed) in scene.bodies.iter().enumerate() {
        if fixed.body.kind != BodyKind::Fixed
            || fixed.randomize.is_none()
            || fixed.collider.is_none()
        {
            continue;
        }
        let mut without = scene.clone();
        without.bodies[f].collider = None;
        let resting: Vec<String> = unsupported_starts(&without)
            .into_iter()
            .map(|fall| fall.body)
            .filter(|body| !falling.contains(body))
            .collect();
        if resting.is_empty() {
            continue;
        }
        let name = &fixed.body.name;
        let bodies = resting
            .iter()
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let (starts, drawn, can) = match resting.len() {
            1 => ("starts", format!("{bodies}'s start is"), bodies.clone()),
            _ => ("start", "their starts are".to_string(), "they".to_string()),
        };
        out.push(format!(
            "{bodies} {starts} resting on \"{name}\", which is fixed but moved each episode by its RandomizePose, \
             while {drawn} drawn regardless of where it went: {can} can start inside it or in the air above it (and \
             the checks of starts and targets take \"{name}\" at its authored pose); leave \"{name}\" where it is \
             authored and draw the bodies on it instead"
        ));
    }
    out
}

/// Joints anchored far from both their bodies ([`far_joint_anchors`]).
fn far_joint_anchor_warnings(scene: &TaskScene) -> Vec<String> {
    far_joint_anchors(scene)
        .into_iter()
        .map(|(joint, distance)| {
            format!(
                "joint \"{joint}\"'s anchor is {distance:.2} m from the nearer of its bodies, far beyond the gap \
                 between them: the bodies swing about a point far away (is a coordinate off by a factor of ten?)"
            )
        })
        .collect()
}

/// Riding targets whose frame starts somewhere new at each reset, with neither the target nor the frame's body
/// observed ([`unobserved_riding_goals`]).
fn unobserved_riding_goal_warnings(scene: &TaskScene) -> Vec<String> {
    unobserved_riding_goals(scene)
        .into_iter()
        .map(|(goal, body, how)| {
            format!(
                "goal \"{goal}\"'s target rides on \"{body}\", which {how}, but neither a \
                 `GoalPosition(goal: \"{goal}\")` sensor nor a position of \"{body}\" is observed: an agent cannot tell \
                 where to go; add one to the `ObservationSpace`"
            )
        })
        .collect()
}

/// Goals drawn at random but never observed ([`unobserved_random_goals`]).
fn unobserved_random_goal_warnings(scene: &TaskScene) -> Vec<String> {
    unobserved_random_goals(scene)
        .into_iter()
        .map(|(goal, sensor)| {
            // An axis goal's target is a direction: which way to turn, not where to go.
            let (what, cannot) = if sensor == "AxisGoalDirection" {
                ("direction", "which way to turn the body")
            } else {
                ("target", "where to go")
            };
            format!(
                "goal \"{goal}\"'s {what} is drawn anew at each reset, but no `{sensor}(goal: \"{goal}\")` sensor \
                 observes it: an agent cannot tell {cannot}; add one to the `ObservationSpace`"
            )
        })
        .collect()
}

/// Sensors listed more than once in the observation space, each said once, at its second listing.
fn repeated_sensors(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    // Listings so far, counted by the sensor's text (its fields are names only, so equal text is an equal sensor):
    // a scan of every earlier sensor for each took a minute for 200 000.
    let mut listed: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (sensor, _) in &scene.sensors {
        let earlier = listed.entry(format!("{sensor:?}")).or_insert(0);
        *earlier += 1;
        // Said once, at its second listing.
        if *earlier == 2 {
            // As the file writes it: `JointPosition(joint: "shoulder")`.
            let written = format!("{sensor:?}").replace(" { ", "(").replace(" }", ")");
            out.push(format!(
                "the sensor {written} is listed twice in the ObservationSpace: its values appear twice in every \
                 observation"
            ));
        }
    }
    out
}

/// Bodies that are the child of more than one joint.
fn bodies_with_two_parent_joints(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    for (body, def) in scene.bodies.iter().enumerate() {
        let held: Vec<&str> = scene
            .joints
            .iter()
            .filter(|j| j.child == body)
            .map(|j| j.joint.name.as_str())
            .collect();
        if held.len() > 1 {
            out.push(format!(
                "\"{}\" is the child of {} joints ({}): held by each, it moves only where all of them allow, \
                 which most often locks it; in a chain each link has one joint to its parent",
                def.body.name,
                held.len(),
                held.join(", ")
            ));
        }
    }
    out
}

/// `PositionDelta` joints that gravity pulls on: the bodies the joint carries (its child and all joined beyond it)
/// include a dynamic one that gravity acts on, and the joint's motion has a part along gravity (a slide not level,
/// a hinge whose axis is not vertical). Such a motor's target restarts from where the joint is at each control step,
/// so the load's static deflection is never made up: the joint sags a little every step, however stiff the motor
/// (a 2-link arm at 10x the stiffness only sagged more slowly). `PositionAbsolute` holds a pose under load.
fn deltas_under_load(scene: &TaskScene) -> Vec<String> {
    let gravity = scene.settings.gravity;
    if gravity.length() == 0.0 {
        return Vec::new();
    }
    let down = gravity.normalize();
    let mut out = Vec::new();
    for def in &scene.actuators {
        if !matches!(def.actuator.control, Control::PositionDelta { .. }) {
            continue;
        }
        for &j in &def.joints {
            let joint = &scene.joints[j];
            // A joint written the other way round (the moving link its parent) would carry the fixed base and all
            // joined to it: nothing to judge.
            if scene.bodies[joint.child].body.kind != BodyKind::Dynamic {
                continue;
            }
            let loaded_motion = match joint.joint.kind {
                JointKind::Prismatic { axis } => axis.normalize_or_zero().dot(down).abs() > 0.1,
                JointKind::Revolute { axis } => axis.normalize_or_zero().cross(down).length() > 0.1,
                JointKind::Fixed => false,
            };
            if !loaded_motion {
                continue;
            }
            let pulled = carried_by_joint(scene, j).into_iter().find(|&b| {
                let body = &scene.bodies[b].body;
                body.kind == BodyKind::Dynamic && body.gravity_scale != 0.0
            });
            if let Some(b) = pulled {
                out.push(format!(
                    "actuator \"{}\" drives joint \"{}\" with PositionDelta, whose target restarts from where the \
                     joint is at each control step, and gravity pulls on what the joint carries (\"{}\", gravity_scale \
                     {}): the joint sags a little every step without end, however stiff its motor; drive it with \
                     PositionAbsolute to hold a pose under load, or give the carried bodies gravity_scale: 0.0 (a \
                     gravity-compensated robot, as the built-in gantry's links are)",
                    def.actuator.name,
                    joint.joint.name,
                    scene.bodies[b].body.name,
                    num(scene.bodies[b].body.gravity_scale)
                ));
            }
        }
    }
    out
}

/// A sway's amplitude past which millimetres (or centimetres) were more likely meant than metres: a lab scene spans
/// a few metres.
const LONGEST_SWAY: f32 = 10.0;

/// `KinematicMotion`s written in units other than the scene's, by the look of them: a sway's phase past a whole turn
/// (degrees for radians) or its amplitude past [`LONGEST_SWAY`] (millimetres for metres).
fn motions_in_other_units(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    for def in &scene.bodies {
        let Some(sway) = def.motion.as_ref().and_then(|m| m.sway.as_ref()) else {
            continue;
        };
        let name = &def.body.name;
        if sway.phase.abs() > std::f32::consts::TAU {
            out.push(format!(
                "\"{name}\"'s sway has phase {} rad, past a whole turn: the phase is in radians (degrees written? \
                 {}° is {:.4} rad)",
                num(sway.phase),
                num(sway.phase),
                sway.phase.to_radians()
            ));
        }
        let reach = sway.amplitude.length();
        if reach > LONGEST_SWAY {
            out.push(format!(
                "\"{name}\"'s sway has an amplitude of {} m, a stroke of {} m: lengths are in metres (millimetres \
                 written? {} mm is {} m)",
                num(reach),
                num(2.0 * reach),
                num(reach),
                num(reach / 1000.0)
            ));
        }
    }
    out
}

/// How far gravity may hold a sprung slide from where its spring puts it before it is warned of (m).
const SPRING_SAG: f32 = 1e-3;

/// Prismatic joints on an unmoving parent whose spring gravity holds more than [`SPRING_SAG`] from where the spring
/// alone puts the joint: the spring's gains are accelerations, so a slide with gravity `a` along its axis settles
/// `a / stiffness` from its rest (400 holds a vertical button 2.45 cm down), then within its limits. A joint goal on
/// it that holds there holds with nothing pushing.
fn springs_sagging(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    for (j, joint) in scene.joints.iter().enumerate() {
        let (Some(spring), JointKind::Prismatic { axis }) = (joint.joint.spring, joint.joint.kind)
        else {
            continue;
        };
        let (parent, child) = (
            &scene.bodies[joint.parent].body,
            &scene.bodies[joint.child].body,
        );
        if parent.kind == BodyKind::Dynamic
            || child.kind != BodyKind::Dynamic
            || spring.stiffness <= 0.0
        {
            continue;
        }
        let along = child.gravity_scale * scene.settings.gravity.dot(axis.normalize_or_zero());
        let clamp = |x: f32| joint.joint.limits.map_or(x, |l| x.clamp(l.min, l.max));
        let (rests, settles) = (
            clamp(spring.rest),
            clamp(spring.rest + along / spring.stiffness),
        );
        if (settles - rests).abs() <= SPRING_SAG {
            continue;
        }
        let goals: Vec<String> = scene
            .joint_goals
            .iter()
            .filter(|g| g.joint == j && (settles - g.goal.target).abs() <= g.goal.tolerance)
            .map(|g| format!("\"{}\"", g.goal.name))
            .collect();
        let holds = match goals.len() {
            0 => String::new(),
            1 => format!(": joint goal {} holds there by itself", goals[0]),
            _ => format!(
                ": joint goals {} hold there by themselves",
                goals.join(", ")
            ),
        };
        out.push(format!(
            "joint \"{}\"'s spring (stiffness {}) is held by gravity {} m from where it puts the joint: it settles at \
             {} rather than {} (gravity along the axis / stiffness, then the limits){holds}; stiffen the spring past \
             {} for under 1 mm, preload it (a rest beyond the limit it should press against), or give \"{}\" \
             gravity_scale: 0.0",
            joint.joint.name,
            num(spring.stiffness),
            mm(settles - rests).abs(),
            mm(settles),
            mm(rests),
            num((along.abs() / SPRING_SAG).ceil()),
            child.name
        ));
    }
    out
}

/// The bodies joint `j` carries: its child and every body joined beyond it (away from the joint's parent).
fn carried_by_joint(scene: &TaskScene, j: usize) -> Vec<usize> {
    let parent = scene.joints[j].parent;
    let mut carried = vec![scene.joints[j].child];
    let mut next = 0;
    while next < carried.len() {
        let body = carried[next];
        next += 1;
        for other in &scene.joints {
            let beyond = match (other.parent == body, other.child == body) {
                (true, _) => other.child,
                (_, true) => other.parent,
                _ => continue,
            };
            if beyond != parent && !carried.contains(&beyond) {
                carried.push(beyond);
            }
        }
    }
    carried
}

/// How stiff a position motor may be for its damping, as `stiffness × physics step / damping`, before it is warned
/// of. Rapier's motor (acceleration-based, solved implicitly: no gain makes it blow up, measured up to 1e30) takes
/// out `x / (1 + x)` of its position error in each physics step, where `x` is that number: past a few it snaps its
/// joints onto their targets within a step, as hard as `max_force` lets it, and jolts whatever they touch.
/// Measured: the built-ins' motors are at 0.3 to 2.5 (antmaze-umaze's legs); cube-single's gripper at 3
/// (stiffness 30000) squeezes the cube out of the fingers and off the table in a third of the oracle's episodes,
/// and at 1e5 (stiffness 1e7) in a tenth; antmaze-umaze's legs at 62 never reach the goal.
const STIFF_MOTOR: f32 = 5.0;

/// Position motors out of tune with the physics step: so stiff for their damping that they snap their joints onto
/// their targets ([`STIFF_MOTOR`]), or so damped that they barely move them in an episode (the time a motor takes
/// to close most of a gap, `damping / stiffness`, longer than the episode). Velocity motors use their damping
/// alone, and are not judged.
fn motors_out_of_tune(scene: &TaskScene) -> Vec<String> {
    let s = &scene.settings;
    let step = s.control_dt / s.substeps as f32;
    let episode = s.control_dt * s.episode_length as f32;
    let mut out = Vec::new();
    for def in &scene.actuators {
        let a = &def.actuator;
        if matches!(a.control, Control::Velocity { .. }) {
            continue;
        }
        let (k, c) = (a.stiffness, a.damping);
        // Infinite where undamped: the motor then snaps at any stiffness.
        let snap = k * step / c;
        if snap > STIFF_MOTOR {
            let how = if c == 0.0 {
                "it has no damping".to_string()
            } else {
                format!(
                    "stiffness × physics step / damping = {} × {} / {} = {snap:.1}, over {STIFF_MOTOR}",
                    num(k),
                    num(step),
                    num(c)
                )
            };
            out.push(format!(
                "actuator \"{}\"'s motor is stiff for its damping: {how}, so each physics step it snaps its joints \
                 onto their targets, as hard as max_force lets it, and jolts whatever they touch (cube-single's \
                 gripper at 3, stiffness 30000, squeezes the cube out of the fingers and off the table in a third \
                 of the oracle's episodes; the built-ins' motors are at 0.3 to 2.5); raise its damping to {} or \
                 more, or lower its stiffness to {} or less",
                a.name,
                num(k * step / STIFF_MOTOR),
                num(STIFF_MOTOR * c / step)
            ));
        } else if c / k > episode {
            out.push(format!(
                "actuator \"{}\"'s motor is damped far past its stiffness: it takes about damping / stiffness = {} / \
                 {} = {} s to close most of a gap to its target, longer than an episode ({} s), so it barely moves \
                 its joints before the episode ends; lower its damping, or raise its stiffness (the built-ins' \
                 motors take 0.01 to 0.04 s)",
                a.name,
                num(c),
                num(k),
                num(c / k),
                num(episode)
            ));
        }
    }
    out
}

/// Absolute position targets a joint cannot reach: past half a turn on a revolute joint, else beyond its limits.
fn position_targets_out_of_reach(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    for def in &scene.actuators {
        let Control::PositionAbsolute { at_min, at_max } = def.actuator.control else {
            continue;
        };
        for &j in &def.joints {
            let joint = &scene.joints[j].joint;
            let (low, high) = (at_min.min(at_max), at_min.max(at_max));
            // Said of a revolute joint, limited or not, instead of its limits: the more likely slip is the unit.
            if matches!(joint.kind, JointKind::Revolute { .. })
                && (low < -HALF_TURN || high > HALF_TURN)
            {
                let degrees = if low < -TURN || high > TURN {
                    " (angles are in radians: degrees written?)"
                } else {
                    ""
                };
                out.push(format!(
                    "actuator \"{}\" sends revolute joint \"{}\" to targets in [{low}, {high}] rad, past half a \
                     turn (3.1416 rad): the joint's angle wraps at ±π, so it never reads such a target: a little \
                     past it, the motor holds the joint a whole turn short of the target; far past it, the motor \
                     turns the joint without end{degrees}; bring at_min and at_max within [-3.1416, 3.1416]",
                    def.actuator.name, joint.name
                ));
                continue;
            }
            let Some(limits) = joint.limits else { continue };
            if low < limits.min - 1e-4 || high > limits.max + 1e-4 {
                out.push(format!(
                    "actuator \"{}\" sends joint \"{}\" to targets in [{low}, {high}], beyond its limits [{}, {}]: \
                     actions past the limits push against them and move nothing; bring at_min and at_max within \
                     the limits",
                    def.actuator.name, joint.name, limits.min, limits.max
                ));
            }
        }
    }
    out
}

/// Angles a scene cannot mean: a revolute joint's limits past half a turn (its angle wraps at +-pi, so such a
/// limit never binds; past a whole turn, degrees were likely written where radians are meant), or a randomised
/// start's yaw range beyond a whole turn.
fn angles_in_degrees(scene: &TaskScene) -> Vec<String> {
    let beyond = |r: &Range, bound: f32| r.min.abs() > bound || r.max.abs() > bound;
    let mut out = Vec::new();
    for def in &scene.joints {
        let joint = &def.joint;
        if let (JointKind::Revolute { .. }, Some(limits)) = (&joint.kind, &joint.limits)
            && beyond(limits, HALF_TURN)
        {
            let degrees = if beyond(limits, TURN) {
                " (angles are in radians: degrees written?)"
            } else {
                ""
            };
            out.push(format!(
                "joint \"{}\"'s limits [{}, {}] rad pass half a turn (3.1416 rad): a revolute joint's angle wraps \
                 there, so such a limit never binds{degrees}",
                joint.name, limits.min, limits.max
            ));
        }
    }
    for def in &scene.axis_goals {
        if let Some(yaw) = &def.goal.randomize_yaw
            && beyond(yaw, TURN)
        {
            out.push(format!(
                "axis goal \"{}\"'s direction is turned by a yaw drawn from [{}, {}] rad, past a whole turn \
                 (6.2832 rad): angles are in radians (degrees written?)",
                def.goal.name, yaw.min, yaw.max
            ));
        }
    }
    for def in &scene.bodies {
        if let Some(yaw) = def.randomize.as_ref().and_then(|r| r.yaw.as_ref())
            && beyond(yaw, TURN)
        {
            out.push(format!(
                "\"{}\"'s start yaw is drawn from [{}, {}] rad, past a whole turn (6.2832 rad): angles are in \
                 radians (degrees written?)",
                def.body.name, yaw.min, yaw.max
            ));
        }
    }
    out
}

/// Half a turn (rad), with a hair of slack for a rounded pi (3.1416): a revolute joint's angle wraps there.
const HALF_TURN: f32 = std::f32::consts::PI + 1e-3;
/// A whole turn (rad), with the same slack: an angle past it was most likely written in degrees.
const TURN: f32 = std::f32::consts::TAU + 1e-3;

/// The bodies gravity moves freely: dynamic, pulled by gravity, and joined (through any chain of joints) to no
/// fixed or kinematic body (a cube; a walker's torso, whose legs hang from it).
fn falls(scene: &TaskScene) -> impl Iterator<Item = usize> + '_ {
    (0..scene.bodies.len()).filter(|&b| {
        let body = &scene.bodies[b].body;
        body.kind == BodyKind::Dynamic
            && body.gravity_scale != 0.0
            && scene.settings.gravity != Vec3::ZERO
            && joined(scene, b)
                .iter()
                .all(|&c| scene.bodies[c].body.kind == BodyKind::Dynamic)
    })
}

/// Body `b` and every body a chain of joints joins to it.
fn joined(scene: &TaskScene, b: usize) -> Vec<usize> {
    let mut group = vec![b];
    let mut k = 0;
    while k < group.len() {
        let at = group[k];
        for j in &scene.joints {
            let other = if j.parent == at {
                j.child
            } else if j.child == at {
                j.parent
            } else {
                continue;
            };
            if !group.contains(&other) {
                group.push(other);
            }
        }
        k += 1;
    }
    group
}

/// The longest physics step (s) said nothing of: cube-single's grasp holds in every episode up to it (0.2 / 5) and
/// fails in some past it. Loading refuses steps past [`qamlab_sim::scene::MAX_PHYSICS_STEP`].
const COARSE_PHYSICS_STEP: f32 = 0.04;

/// A free body that can start with nothing under it.
struct Fall {
    /// The body's name.
    body: String,
    /// The first start found unsupported.
    at: Vec3,
    /// A body whose collider is under it there but that its collision groups keep it from touching.
    apart: Option<String>,
    /// The range its height is drawn from, where that height is what leaves it unsupported (at its authored height
    /// something holds it).
    drawn_z: Option<Range>,
}

/// Free bodies, with the limbs joined to them, that have no collider they can touch under any of them at some
/// place their reset can put them (the corners and the middle of its x and y ranges, at the authored height; then,
/// where its height is drawn, of its x, y and z ranges; a randomised root's draw moves its limbs with it, taken
/// unturned): under downward gravity they fall without end. Each group once, named by its randomised root where it
/// has one, else by its first free body, with the first such place. (Boxes around colliders, so a wall beside a
/// body is no support, and a tilted table is one.)
fn unsupported_starts(scene: &TaskScene) -> Vec<Fall> {
    if scene.settings.gravity.z >= 0.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut said: Vec<usize> = Vec::new();
    for b in falls(scene) {
        // A body and the limbs joined to it stand or fall together: said once, of the first.
        let own = joined(scene, b);
        if own.iter().any(|m| said.contains(m)) {
            continue;
        }
        said.extend(&own);
        // Where the group starts is where its randomised body (a root, carrying the rest) is drawn.
        let lead = own
            .iter()
            .copied()
            .find(|&m| scene.bodies[m].randomize.is_some())
            .unwrap_or(b);
        let def = &scene.bodies[lead];
        let home = def.body.translation;
        let at_home = start_places(def, false);
        let drawn_z = def.randomize.as_ref().and_then(|r| r.z);
        // Under a body: another's collider (not one of the group's) that spans the body's middle and reaches below
        // its underside there (a sloped table's box reaches higher, too), with a centimetre of slack for resting
        // contact. The group stands where any of its bodies does (a walker's feet astride a gap).
        let under = |member: usize, shift: Vec3| {
            let Some((low, high)) = scene.collider_bounds(member) else {
                return Vec::new();
            };
            let at = ((low + high) / 2.0).truncate() + shift.truncate();
            let underside = low.z + shift.z;
            // A support within a quarter of the body's width of its middle holds it (tiles with a seam between).
            let reach = (high - low).truncate().max_element() / 4.0;
            (0..scene.bodies.len())
                .filter(|c| !own.contains(c))
                .filter(|&c| {
                    scene.collider_bounds(c).is_some_and(|(lo, hi)| {
                        lo.z <= underside + 0.01
                            && (lo.x - reach..=hi.x + reach).contains(&at.x)
                            && (lo.y - reach..=hi.y + reach).contains(&at.y)
                    })
                })
                .collect::<Vec<usize>>()
        };
        // Only a collider the body can touch holds it: one whose collision groups keep them apart lets it through.
        let touch = |member: usize, c: usize| match (
            &scene.bodies[member].collider,
            &scene.bodies[c].collider,
        ) {
            (Some(a), Some(b)) => qamlab_sim::physics::groups_touch(a, b),
            _ => false,
        };
        // First where it starts at its authored height, then, where its height is drawn, at the heights drawn.
        let places = at_home
            .iter()
            .map(|&at| (at, None))
            .chain(drawn_z.into_iter().flat_map(|z| {
                start_places(def, true)
                    .into_iter()
                    .map(move |at| (at, Some(z)))
            }));
        for (at, drawn_z) in places {
            let below: Vec<(usize, usize)> = own
                .iter()
                .flat_map(|&m| under(m, at - home).into_iter().map(move |c| (m, c)))
                .collect();
            if !below.iter().any(|&(m, c)| touch(m, c)) {
                out.push(Fall {
                    body: def.body.name.clone(),
                    at,
                    apart: below
                        .first()
                        .map(|&(_, c)| scene.bodies[c].body.name.clone()),
                    drawn_z,
                });
                break;
            }
        }
    }
    out
}

/// The places a body can start: the corners and the middle of its reset's x and y ranges (and, with `drawn_z`, of
/// its z range), its authored coordinate where a range is absent; its authored place where it is not randomised.
fn start_places(def: &BodyDef, drawn_z: bool) -> Vec<Vec3> {
    let home = def.body.translation;
    let Some(r) = &def.randomize else {
        return vec![home];
    };
    let spans = |authored: f32, range: Option<Range>| {
        range.map_or(vec![authored], |r| r.ends_and_middle().to_vec())
    };
    let (xs, ys) = (spans(home.x, r.x), spans(home.y, r.y));
    let zs = if drawn_z {
        spans(home.z, r.z)
    } else {
        vec![home.z]
    };
    let mut out = Vec::new();
    for &x in &xs {
        for &y in &ys {
            for &z in &zs {
                out.push(Vec3::new(x, y, z));
            }
        }
    }
    out
}

/// A randomised body, or a body its draw carries, that can start inside one that is not randomised.
struct DrawnOverlap {
    /// The randomised body.
    body: usize,
    /// The body that overlaps: the randomised one, or one joined to it that its draw carries.
    member: usize,
    /// The body it can start inside.
    other: usize,
    /// How deep (m), at its deepest.
    depth: f32,
    /// Where the randomised body starts then.
    at: Vec3,
}

/// Randomised bodies, and the bodies a randomised root carries with it, that can start inside a body that is not
/// randomised (a cube drawn into the table), deeper than resting contact sinks, at some place their reset can put
/// them (the corners and the middle of its x, y and z ranges, at the authored rotation): the physics pushes them
/// apart at the first step. Each pair once, at its deepest; pairs that overlap where the scene places them are left
/// to that warning, and two randomised bodies to their `min_distance_from`.
fn overlaps_at_drawn_starts(scene: &TaskScene) -> Vec<DrawnOverlap> {
    let authored = qamlab_sim::physics::overlaps_at_authored_poses(scene, 0.002);
    // The authored pairs are cut at the most reported: past them this check could neither leave the authored pairs
    // out nor see every drawn one. A scene of that many bodies in each other has its authored warnings to mend first.
    if authored.len() >= qamlab_sim::physics::MAX_OVERLAPS {
        return Vec::new();
    }
    let carried_by = scene.carried_by();
    // Per randomised body, it and the bodies its draw carries, which move with it.
    let mut groups: Vec<Vec<usize>> = (0..scene.bodies.len()).map(|b| vec![b]).collect();
    for (m, root) in carried_by.iter().enumerate() {
        if let Some(root) = root {
            groups[*root].push(m);
        }
    }
    let drawn = |c: usize| scene.bodies[c].randomize.is_some() || carried_by[c].is_some();
    // Built once: each drawn place moves one group against the rest where the scene places it.
    let colliders = qamlab_sim::physics::AuthoredColliders::new(scene);
    let mut out: Vec<DrawnOverlap> = Vec::new();
    // Where each (body, member, other) stands in `out`.
    let mut index: std::collections::HashMap<(usize, usize, usize), usize> = Default::default();
    for (b, def) in scene.bodies.iter().enumerate() {
        if def.randomize.is_none() {
            continue;
        }
        let group = &groups[b];
        if group.iter().all(|&m| scene.bodies[m].collider.is_none()) {
            continue;
        }
        for at in start_places(def, true) {
            let shift = at - def.body.translation;
            for o in colliders.overlaps_when_moved(group, shift, 0.002, |other| !drawn(other)) {
                let (member, other) = o.bodies;
                let pair = |p: (usize, usize)| p == (member, other) || p == (other, member);
                if authored.iter().any(|a| pair(a.bodies)) {
                    continue;
                }
                let found = index.get(&(b, member, other)).map(|&i| &mut out[i]);
                match found {
                    // Deeper by more than float noise: else the first place found stands.
                    Some(d) if o.depth <= d.depth + 1e-4 => {}
                    Some(d) => {
                        d.depth = o.depth;
                        d.at = at;
                    }
                    None => {
                        index.insert((b, member, other), out.len());
                        out.push(DrawnOverlap {
                            body: b,
                            member,
                            other,
                            depth: o.depth,
                            at,
                        });
                    }
                }
            }
        }
    }
    out
}

/// The sizes (m) a collider's shape is written with, said nowhere near a robot lab's outside it: under a tenth of
/// a millimetre, contacts and masses are lost in float32 rounding; over a kilometre, a lab's scene is not that big.
/// Loading refuses sizes past 10 km.
const PLAUSIBLE_SIZE: Range = Range::new(1e-4, 1e3);
/// The masses (kg) a dynamic body is said nowhere near a robot lab's outside: a milligram to a hundred tonnes (a
/// 5 mm bead of water's density weighs 65 mg). Past them the solver's contacts and motors, tuned for lab masses, fail (a motor cannot move it, or
/// flings it).
const PLAUSIBLE_MASS: Range = Range::new(1e-6, 1e5);
/// How far from the origin a body may start before it is warned of (m): a lab's scene is metres across, so a body
/// past 100 m is most likely a slip of units (millimetres written for metres) or a typo.
const FAR_PLACE: f32 = 100.0;

/// A shape's sizes (m), each with the field it is written in.
type Sizes = Vec<(&'static str, f32)>;

/// Sizes, masses and places many orders of magnitude from a robot lab's: a collider's size outside
/// [`PLAUSIBLE_SIZE`], a dynamic body's mass outside [`PLAUSIBLE_MASS`], a body that can start over [`FAR_PLACE`]
/// from the origin. Loading refuses only what the physics cannot hold at all; these load, and run, but most likely
/// not as meant.
fn implausible_scales(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    for def in &scene.bodies {
        let Some(c) = &def.collider else { continue };
        // (field, size): those judged too thin, and those judged too long (a capsule's length is its radius and
        // half_height together, so a short one is a ball, and fine).
        let (thin, long): (Sizes, Sizes) = match &c.shape {
            Shape::Cuboid { half_extents: h } => {
                let all = vec![
                    ("half_extents.x", h.x),
                    ("half_extents.y", h.y),
                    ("half_extents.z", h.z),
                ];
                (all.clone(), all)
            }
            Shape::Ball { radius } => (vec![("radius", *radius)], vec![("radius", *radius)]),
            Shape::Capsule {
                half_height,
                radius,
            } => (
                vec![("radius", *radius)],
                vec![("radius", *radius), ("half_height", *half_height)],
            ),
            Shape::Cylinder {
                half_height,
                radius,
            } => {
                let all = vec![("radius", *radius), ("half_height", *half_height)];
                (all.clone(), all)
            }
            Shape::ConvexHull { points } => {
                let low = points.iter().copied().fold(Vec3::INFINITY, Vec3::min);
                let high = points.iter().copied().fold(Vec3::NEG_INFINITY, Vec3::max);
                let half = (high - low) / 2.0;
                let all = vec![
                    ("points' half-span along x", half.x),
                    ("points' half-span along y", half.y),
                    ("points' half-span along z", half.z),
                ];
                (all.clone(), all)
            }
        };
        let off: Vec<String> = thin
            .iter()
            .filter(|(_, v)| *v < PLAUSIBLE_SIZE.min)
            .chain(long.iter().filter(|(_, v)| *v > PLAUSIBLE_SIZE.max))
            .map(|(field, v)| format!("{field} {} m", num(*v)))
            .collect();
        if !off.is_empty() {
            out.push(format!(
                "\"{}\"'s collider has {}, outside [{}, {}] m (0.1 mm to 1 km): sizes are metres, and one so many \
                 orders of magnitude from a robot lab's is most likely a slip of units or a typo (the physics' \
                 contacts and masses fail at such sizes)",
                def.body.name,
                off.join(" and "),
                num(PLAUSIBLE_SIZE.min),
                num(PLAUSIBLE_SIZE.max)
            ));
        }
    }
    for (b, mass) in dynamic_masses(scene) {
        if PLAUSIBLE_MASS.contains(mass) {
            continue;
        }
        let def = &scene.bodies[b];
        let density = def.collider.as_ref().map_or(0.0, |c| c.density);
        out.push(format!(
            "\"{}\" weighs {} kg, outside [{}, {}] kg, many orders of magnitude from any body of a robot lab: its \
             mass is its collider's density ({} kg/m³; water's is 1000) times its volume, plus its extra_mass ({} \
             kg); is a density, a size or the extra_mass off?",
            def.body.name,
            // Two digits: 6.6e26, not 6.618289e26.
            if mass == 0.0 { "0".into() } else { format!("{mass:.1e}") },
            num(PLAUSIBLE_MASS.min),
            num(PLAUSIBLE_MASS.max),
            num(density),
            num(def.body.extra_mass)
        ));
    }
    for def in &scene.bodies {
        let Some(at) = start_places(def, true)
            .into_iter()
            .max_by(|a, b| a.length().total_cmp(&b.length()))
        else {
            continue;
        };
        if at.length() > FAR_PLACE {
            let starts = if def.randomize.is_some() {
                "can start"
            } else {
                "starts"
            };
            out.push(format!(
                "\"{}\" {starts} {} m from the origin, at ({}, {}, {}): over {FAR_PLACE} m, far beyond a robot \
                 lab's scale; lengths are metres (millimetres written?): move it within {FAR_PLACE} m of the origin",
                def.body.name,
                mm(at.length()),
                mm(at.x),
                mm(at.y),
                mm(at.z)
            ));
        }
    }
    out
}

/// Starts the axis-goal checks draw ([`drawn_starts`]).
const AXIS_GOAL_STARTS: u64 = 32;

/// One start as a reset draws it: the bodies' turns, where the place goals' frames are, and every kind of goal's
/// target.
struct DrawnStart {
    rotations: Vec<bevy::math::Quat>,
    frames: Vec<Vec3>,
    targets: Vec<Vec3>,
    joint_targets: Vec<f32>,
    directions: Vec<Vec3>,
}

/// [`AXIS_GOAL_STARTS`] starts, drawn as resets draw them from seeds 0, 1, ...
fn drawn_starts(scene: &TaskScene) -> Vec<DrawnStart> {
    use rand::SeedableRng;
    (0..AXIS_GOAL_STARTS)
        .map(|seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut targets = vec![Vec3::ZERO; scene.goals.len()];
            let poses = qamlab_sim::env::draw_start(scene, &mut rng, &mut targets, |_| {});
            let mut joint_targets = vec![0.0; scene.joint_goals.len()];
            qamlab_sim::env::draw_joint_targets(scene, &mut rng, &mut joint_targets);
            let mut directions = vec![Vec3::ZERO; scene.axis_goals.len()];
            qamlab_sim::env::draw_axis_targets(scene, &mut rng, &mut directions);
            let frames = scene
                .goals
                .iter()
                .map(|g| poses[g.frame.body].transform_point(g.frame.offset))
                .collect();
            DrawnStart {
                rotations: poses.iter().map(|p| p.rotation).collect(),
                frames,
                targets,
                joint_targets,
                directions,
            }
        })
        .collect()
}

/// Axis goals that hold at every one of [`AXIS_GOAL_STARTS`] drawn starts (the body as drawn, the direction turned by
/// its drawn yaw): most likely an axis or direction written for another (the body's z up, and the goal asking for z
/// up). Where every goal of every kind holds at every start too, episodes succeed before the robot does anything;
/// else such a goal asks only that the body not turn away.
fn axis_goals_met_at_start(scene: &TaskScene) -> Vec<String> {
    if scene.axis_goals.is_empty() {
        return Vec::new();
    }
    let starts = drawn_starts(scene);
    let axis_holds = |s: &DrawnStart, k: usize| {
        let def = &scene.axis_goals[k];
        def.miss(s.rotations[def.body], s.directions[k]) <= def.goal.tolerance
    };
    let always: Vec<bool> = (0..scene.axis_goals.len())
        .map(|k| starts.iter().all(|s| axis_holds(s, k)))
        .collect();
    if !always.contains(&true) {
        return Vec::new();
    }
    // A joint stands at coordinate 0 at every start: the draws move joint trees rigidly.
    let everything_holds = starts.iter().all(|s| {
        let places = (scene.goals.iter().zip(&s.frames).zip(&s.targets))
            .all(|((g, at), t)| at.distance(*t) <= g.goal.tolerance);
        let joints = scene
            .joint_goals
            .iter()
            .zip(&s.joint_targets)
            .all(|(g, &t)| g.miss(scene, 0.0, t) <= g.goal.tolerance);
        places && joints && (0..scene.axis_goals.len()).all(|k| axis_holds(s, k))
    });
    let so = if everything_holds {
        "and so does every other goal: episodes succeed before the robot does anything"
    } else {
        "so it asks only that the body not turn away from it while the other goals are met"
    };
    scene
        .axis_goals
        .iter()
        .zip(always)
        .filter(|(_, held)| *held)
        .map(|(def, _)| {
            format!(
                "axis goal \"{}\" holds at every start tried ({AXIS_GOAL_STARTS}): \"{}\"'s axis ({}) already \
                 points within {} rad of the direction ({}) as drawn, {so}; if it should ask for a turn, check the \
                 axis (in the body's own frame) and the direction (in the world)",
                def.goal.name,
                def.goal.body,
                vector(def.goal.axis),
                def.goal.tolerance,
                vector(def.goal.direction)
            )
        })
        .collect()
}

/// Yaws tried per axis goal by [`axis_goals_that_cannot_both_hold`] across a drawn range.
const YAW_SAMPLES: usize = 33;

/// Distinct axis goals per body [`axis_goals_that_cannot_both_hold`] compares pairwise (undrawn goals alike in axis,
/// direction and tolerance count once); past them it says it stopped.
const PAIRED_GOALS_PER_BODY: usize = 48;

/// Pair warnings [`axis_goals_that_cannot_both_hold`] writes out before it counts the rest.
const PAIR_WARNINGS: usize = 20;

/// Pairs of axis goals on one body that never (or not always) hold at once: a turn keeps the angle between the body's
/// two axes, so the directions' angle must come within the two tolerances of it. Drawn directions are tried at
/// [`YAW_SAMPLES`] yaws each; the angle between two directions moves no more than either yaw does, so a pair of
/// samples counts as missing only when it misses by more than half a step of each range (it misses between samples
/// too).
fn axis_goals_that_cannot_both_hold(scene: &TaskScene) -> Vec<String> {
    use std::collections::HashMap;
    let goals = &scene.axis_goals;
    // Per body, its distinct axis goals in file order.
    let mut on_body: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (k, g) in goals.iter().enumerate() {
        // Alike goals with a drawn yaw are drawn apart (each its own yaw): only fixed ones are one goal.
        let drawn = g.goal.randomize_yaw.is_some_and(|r| r.max > r.min);
        let key = format!(
            "{:?}{:?}{}{:?}",
            g.axis, g.direction, g.goal.tolerance, g.goal.randomize_yaw
        );
        if drawn || seen.insert((g.body, key)) {
            on_body.entry(g.body).or_default().push(k);
        }
    }
    // Per goal, its directions at its sampled yaws, and half the step between the yaws.
    let sampled = |k: usize| -> (Vec<Vec3>, f32) {
        let g = &goals[k];
        match g.goal.randomize_yaw {
            Some(r) if r.max > r.min => {
                let step = (r.max - r.min) / (YAW_SAMPLES - 1) as f32;
                let at = (0..YAW_SAMPLES)
                    .map(|n| g.turned(r.min + step * n as f32))
                    .collect();
                (at, step / 2.0)
            }
            Some(r) => (vec![g.turned(r.min)], 0.0),
            None => (vec![g.direction], 0.0),
        }
    };
    let mut bodies: Vec<(&usize, &Vec<usize>)> =
        on_body.iter().filter(|(_, ks)| ks.len() > 1).collect();
    bodies.sort();
    let (mut out, mut unsaid) = (Vec::new(), 0usize);
    for (&body, ks) in bodies {
        if ks.len() > PAIRED_GOALS_PER_BODY {
            out.push(format!(
                "\"{}\" has {} axis goals to compare (undrawn ones alike counted once); the check of which pairs \
                 can hold at once compared the first {PAIRED_GOALS_PER_BODY} of them only",
                scene.bodies[body].body.name,
                ks.len()
            ));
        }
        let ks = &ks[..ks.len().min(PAIRED_GOALS_PER_BODY)];
        let samples: Vec<(Vec<Vec3>, f32)> = ks.iter().map(|&k| sampled(k)).collect();
        for (x, &i) in ks.iter().enumerate() {
            for (y, &j) in ks.iter().enumerate().skip(x + 1) {
                let Some(warning) = pair_warning(scene, (i, &samples[x]), (j, &samples[y])) else {
                    continue;
                };
                if out.len() < PAIR_WARNINGS {
                    out.push(warning);
                } else {
                    unsaid += 1;
                }
            }
        }
    }
    if unsaid > 0 {
        out.push(format!(
            "and {unsaid} more pairs of axis goals that cannot always hold at once"
        ));
    }
    out
}

/// The warning for axis goals `a` and `b` on one body, each with its sampled directions and half their yaw step, if
/// they never or not always hold at once (see [`axis_goals_that_cannot_both_hold`]).
fn pair_warning(
    scene: &TaskScene,
    (i, (dirs_a, half_a)): (usize, &(Vec<Vec3>, f32)),
    (j, (dirs_b, half_b)): (usize, &(Vec<Vec3>, f32)),
) -> Option<String> {
    let (a, b) = (&scene.axis_goals[i], &scene.axis_goals[j]);
    let axes = a.axis.angle_between(b.axis);
    let slack = a.goal.tolerance + b.goal.tolerance;
    let margin = half_a + half_b;
    // Over every pair of samples: how many miss for sure (by more than the margin: between samples too), how many
    // miss there, and the directions' angle nearest the axes'.
    let (mut sure, mut misses, mut closest) = (0usize, 0usize, f32::NAN);
    for da in dirs_a {
        for db in dirs_b {
            let directions = da.angle_between(*db);
            let off = (axes - directions).abs() - slack;
            sure += usize::from(off > margin);
            misses += usize::from(off > 0.0);
            if closest.is_nan() || (axes - directions).abs() < (axes - closest).abs() {
                closest = directions;
            }
        }
    }
    if misses == 0 {
        return None;
    }
    let head = format!(
        "axis goals \"{}\" and \"{}\" on \"{}\": its axes ({}) and ({}) are {axes:.2} rad apart and turn \
         together, so their directions must be within the tolerances together ({slack} rad) of that",
        a.goal.name,
        b.goal.name,
        a.goal.body,
        vector(a.goal.axis),
        vector(b.goal.axis),
    );
    let cells = dirs_a.len() * dirs_b.len();
    Some(if sure == cells {
        let drawn = if margin > 0.0 {
            " at their closest over the drawn yaws"
        } else {
            ""
        };
        format!(
            "{head}, but the directions ({}) and ({}) are {closest:.2} rad apart{drawn}: the two never hold at once",
            vector(a.goal.direction),
            vector(b.goal.direction),
        )
    } else {
        // Each goal's yaw is drawn on its own: two drawn ones turn their directions apart. The share of the sampled
        // yaws (evenly spaced, as uniform draws spread) where the pair misses.
        let share = 100.0 * misses as f32 / cells as f32;
        format!(
            "{head}, and each goal's yaw is drawn on its own, so in about {share:.0} % of episodes their directions \
             are drawn too far apart for both to hold; to face a body toward a drawn heading, draw the yaw of one \
             goal on a horizontal direction and pin another axis to a vertical direction"
        )
    })
}

/// Axis goals whose drawn yaw turns their direction less than their tolerance (a direction near the vertical, or a
/// range narrow for the tolerance): the draw barely changes the task, yet asks for a sensor to observe it.
fn yaws_that_barely_turn(scene: &TaskScene) -> Vec<String> {
    scene
        .axis_goals
        .iter()
        .filter_map(|def| {
            let range = def.goal.randomize_yaw.filter(|r| r.max > r.min)?;
            // The chord angle between the direction turned by the range's two ends (at most half a turn apart).
            let across = (range.max - range.min).min(std::f32::consts::PI);
            let swing = 2.0 * (def.direction.truncate().length() * (across / 2.0).sin()).asin();
            (swing < def.goal.tolerance).then(|| {
                // What would clear it: a horizontal direction swings 2 sin(range / 2); if even that is under the
                // tolerance, the range (or the tolerance) is to change, else the tilt.
                let why = if 2.0 * (across / 2.0).sin() >= def.goal.tolerance {
                    "as the direction is too near the vertical for the range: the draw barely changes the task; \
                     tilt the direction further from the vertical, or remove `randomize_yaw`"
                } else {
                    "as the range is narrow for the tolerance: the draw barely changes the task; widen the range, \
                     tighten the tolerance, or remove `randomize_yaw`"
                };
                format!(
                    "axis goal \"{}\"'s drawn yaw turns its direction ({}) at most {swing:.3} rad, less than its \
                     tolerance {} rad, {why}",
                    def.goal.name,
                    vector(def.goal.direction),
                    def.goal.tolerance
                )
            })
        })
        .collect()
}

/// Axis goals on a body one revolute joint turns against a body that holds its own orientation (a door's hinge):
/// the joint turns the axis on a cone about the hinge, so a direction off that cone by more than the tolerance is
/// never met, whatever the joint's angle. Judged at [`AXIS_GOAL_STARTS`] drawn starts; each warning says at how many
/// of them the direction is off the cone.
fn axis_goals_a_hinge_cannot_reach(scene: &TaskScene) -> Vec<String> {
    if scene.axis_goals.is_empty() {
        return Vec::new();
    }
    let turns = qamlab_sim::scene::TurnGroups::new(&scene.joints, &scene.bodies);
    // A held side that spins carries the hinge round: its cone moves with the clock (not judged).
    // Per axis goal, the hinge that alone turns its body against a still holder, if one does.
    let hinges: Vec<Option<usize>> = scene
        .axis_goals
        .iter()
        .map(|def| {
            scene.joints.iter().position(|j| {
                let other = match (
                    turns.together(j.parent, def.body),
                    turns.together(j.child, def.body),
                ) {
                    (true, false) => j.child,
                    (false, true) => j.parent,
                    _ => return false,
                };
                matches!(j.joint.kind, JointKind::Revolute { .. })
                    && turns
                        .held_by(other)
                        .is_some_and(|holder| !scene.bodies[holder].spins())
            })
        })
        .collect();
    if hinges.iter().all(Option::is_none) {
        return Vec::new();
    }
    let mut off = vec![0usize; scene.axis_goals.len()];
    let mut cone = vec![(0.0f32, 0.0f32); scene.axis_goals.len()];
    for s in drawn_starts(scene) {
        for (k, def) in scene.axis_goals.iter().enumerate() {
            let Some(h) = hinges[k] else { continue };
            let joint = &scene.joints[h];
            let hinge = s.rotations[joint.parent] * joint.frame1.rotation * Vec3::X;
            let axis = s.rotations[def.body] * def.axis;
            let (from_axis, from_direction) = (
                axis.angle_between(hinge),
                s.directions[k].angle_between(hinge),
            );
            if (from_axis - from_direction).abs() > def.goal.tolerance {
                off[k] += 1;
                cone[k] = (from_axis, from_direction);
            }
        }
    }
    scene
        .axis_goals
        .iter()
        .enumerate()
        .filter(|&(k, _)| off[k] > 0)
        .map(|(k, def)| {
            let joint = &scene.joints[hinges[k].expect("counted for its hinge")].joint.name;
            let (from_axis, from_direction) = cone[k];
            format!(
                "axis goal \"{}\" cannot be met at {} of {AXIS_GOAL_STARTS} starts tried: joint \"{joint}\" alone \
                 turns \"{}\", sweeping its axis ({}) round a cone {from_axis:.2} rad from the hinge, and the \
                 direction is {from_direction:.2} rad from the hinge, more than the tolerance {} rad off the cone, \
                 whatever the joint's angle",
                def.goal.name,
                off[k],
                def.goal.body,
                vector(def.goal.axis),
                def.goal.tolerance
            )
        })
        .collect()
}

/// `(x, y, z)` as written.
fn vector(v: Vec3) -> String {
    format!("{}, {}, {}", v.x, v.y, v.z)
}

/// Each dynamic body's mass (kg), as the physics gives it: its collider's density times its volume, plus its
/// `extra_mass`.
fn dynamic_masses(scene: &TaskScene) -> Vec<(usize, f32)> {
    use rand::SeedableRng;
    // Masses do not depend on where the bodies are: any start will do.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut targets = vec![Vec3::ZERO; scene.goals.len()];
    let poses = qamlab_sim::env::draw_start(scene, &mut rng, &mut targets, |_| {});
    let mut physics = qamlab_sim::physics::EnvPhysics::build(scene, &poses);
    let world = &mut physics.world;
    (0..scene.bodies.len())
        .filter(|&b| scene.bodies[b].body.kind == BodyKind::Dynamic)
        .filter_map(|b| {
            // Rapier sums the colliders' and the extra mass at its next step: sum them now.
            let body = world.bodies.get_mut(physics.bodies[b])?;
            body.recompute_mass_properties_from_colliders(&world.colliders);
            Some((b, body.mass()))
        })
        .collect()
}

/// Where a riding target can lie in its frame's body's frame: its ranges (or its point) in the frame, moved by the
/// frame's `offset` on that body.
fn span_in_frame(def: &GoalDef, offset: Vec3) -> [Range; 3] {
    let local = def.span_in_own_frame();
    std::array::from_fn(|k| Range::new(local[k].min + offset[k], local[k].max + offset[k]))
}

/// Pairs of goals on one body (the same frame, or two frames on it) whose targets lie farther apart than their
/// tolerances together, plus the frames' distance: the frames are never within both at once, so the task never
/// succeeds. A randomised target is judged by the box of its ranges, so only pairs apart wherever they are drawn.
fn goals_that_cannot_both_hold(scene: &TaskScene) -> Vec<String> {
    // The box a goal's target is drawn from: a point where it is fixed.
    let span = GoalDef::target_span;
    let drawn = |span: &[Range; 3]| span.iter().any(|r| r.max > r.min);
    let mut out = Vec::new();
    for (i, a) in scene.goals.iter().enumerate() {
        for b in &scene.goals[i + 1..] {
            if a.frame.body != b.frame.body {
                continue;
            }
            // Two targets riding on one body keep their gap, judged in its frame; a riding target and another move
            // apart and together.
            let (sa, sb) = match (&a.riding, &b.riding) {
                (None, None) => (span(a), span(b)),
                (Some(ra), Some(rb)) if ra.frame.body == rb.frame.body => (
                    span_in_frame(a, ra.frame.offset),
                    span_in_frame(b, rb.frame.offset),
                ),
                _ => continue,
            };
            let gap = Vec3::from_array(std::array::from_fn(|k| {
                (sb[k].min - sa[k].max).max(sa[k].min - sb[k].max).max(0.0)
            }))
            .length();
            let frames = (a.frame.offset - b.frame.offset).length();
            let (ta, tb) = (a.goal.tolerance, b.goal.tolerance);
            if gap <= ta + tb + frames + 1e-4 {
                continue;
            }
            let apart = if drawn(&sa) || drawn(&sb) {
                "at least "
            } else {
                ""
            };
            let (na, nb) = (&a.goal.name, &b.goal.name);
            let (fa, fb) = (frame_name(scene, a.frame), frame_name(scene, b.frame));
            out.push(if a.frame == b.frame {
                format!(
                    "goals \"{na}\" and \"{nb}\" both need \"{fa}\" at their targets, which lie {apart}{} m apart, \
                     farther than their tolerances together ({} + {} m): \"{fa}\" is never within both at once, so \
                     the task never succeeds (success is every goal holding); bring the targets together, or put \
                     one goal on another frame",
                    mm(gap),
                    num(ta),
                    num(tb)
                )
            } else {
                format!(
                    "goals \"{na}\" and \"{nb}\" need \"{fa}\" and \"{fb}\", {} m apart on \"{}\", at targets \
                     that lie {apart}{} m apart, farther than that and their tolerances together ({} + {} m): they \
                     never both hold, so the task never succeeds (success is every goal holding); bring the targets \
                     together",
                    mm(frames),
                    scene.bodies[a.frame.body].body.name,
                    mm(gap),
                    num(ta),
                    num(tb)
                )
            });
        }
    }
    out
}

/// A frame's name: the site at it, else its body's.
fn frame_name(scene: &TaskScene, frame: FrameRef) -> String {
    scene.sites.iter().find(|(_, f)| *f == frame).map_or_else(
        || scene.bodies[frame.body].body.name.clone(),
        |(n, _)| n.clone(),
    )
}

/// `x` as a scene would write it, with an exponent where it is very large or very small (`1e-20`, not twenty
/// zeros).
fn num(x: f32) -> String {
    if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Joints whose anchor lies far from both their bodies (over [`FAR_ANCHOR`] outside each one's collider, or from
/// its origin where it has none, and over twice the distance between the bodies' origins): a typo, most often, for
/// a point between them. Each with its distance to the nearer body.
fn far_joint_anchors(scene: &TaskScene) -> Vec<(String, f32)> {
    scene
        .joints
        .iter()
        .filter_map(|j| {
            let anchor = j.joint.anchor;
            let distance = |b: usize| match scene.collider_bounds(b) {
                // To the box around the collider: 0 inside it.
                Some((low, high)) => anchor.clamp(low, high).distance(anchor),
                None => anchor.distance(scene.bodies[b].body.translation),
            };
            let nearer = distance(j.parent).min(distance(j.child));
            let apart = scene.bodies[j.parent]
                .body
                .translation
                .distance(scene.bodies[j.child].body.translation);
            (nearer > FAR_ANCHOR && nearer > 2.0 * apart).then(|| (j.joint.name.clone(), nearer))
        })
        .collect()
}

/// How far outside both its bodies a joint's anchor may lie before it is warned of (m): a hinge sits on or within a
/// few centimetres of what it joins.
const FAR_ANCHOR: f32 = 0.25;

/// Riding targets (not drawn in their frame: [`unobserved_random_goals`] has those) whose frame's body starts
/// somewhere new at each reset or follows a `KinematicMotion`, observed by no `GoalPosition` and with no `Position`
/// or `RelativePosition` of a frame on that body: each goal with that body's name and how it moves, in words.
fn unobserved_riding_goals(scene: &TaskScene) -> Vec<(&str, &str, &'static str)> {
    let observes_goal = |g: usize| {
        scene
            .sensors
            .iter()
            .any(|(_, def)| matches!(def, SensorDef::GoalPosition(k) if *k == g))
    };
    let observes_body = |b: usize| {
        scene.sensors.iter().any(|(_, def)| match def {
            SensorDef::Position(f) => f.body == b,
            SensorDef::RelativePosition(from, to) => from.body == b || to.body == b,
            _ => false,
        })
    };
    scene
        .goals
        .iter()
        .enumerate()
        .filter_map(|(g, def)| {
            let riding = def.riding.as_ref()?;
            let body = riding.frame.body;
            let how = if def.target_span().iter().any(|r| r.max > r.min) {
                "starts somewhere new at each reset"
            } else if scene.bodies[body].motion.is_some() {
                "moves (its `KinematicMotion`)"
            } else {
                return None;
            };
            let drawn_in_frame = def.drawn_target().iter().flatten().any(|r| r.max > r.min);
            (!drawn_in_frame && !observes_goal(g) && !observes_body(body)).then(|| {
                (
                    def.goal.name.as_str(),
                    scene.bodies[body].body.name.as_str(),
                    how,
                )
            })
        })
        .collect()
}

/// Goals whose target some reset range moves (min below max) and that no `GoalPosition` sensor observes, and joint
/// and axis goals likewise unobserved by `JointGoalTarget` and `AxisGoalDirection`: each with the sensor it lacks.
fn unobserved_random_goals(scene: &TaskScene) -> Vec<(&str, &'static str)> {
    let places = scene
        .goals
        .iter()
        .enumerate()
        .filter(|(_, def)| {
            def.randomize.as_ref().is_some_and(|(r, _)| {
                [r.x, r.y, r.z]
                    .iter()
                    .flatten()
                    .any(|range| range.max > range.min)
            })
        })
        .filter(|&(g, _)| {
            !scene
                .sensors
                .iter()
                .any(|(_, def)| matches!(def, SensorDef::GoalPosition(k) if *k == g))
        })
        .map(|(_, def)| (def.goal.name.as_str(), "GoalPosition"));
    let joints = scene
        .joint_goals
        .iter()
        .enumerate()
        .filter(|(_, def)| def.goal.randomize.is_some_and(|r| r.max > r.min))
        .filter(|&(g, _)| {
            !scene
                .sensors
                .iter()
                .any(|(_, def)| matches!(def, SensorDef::JointGoalTarget(k) if *k == g))
        })
        .map(|(_, def)| (def.goal.name.as_str(), "JointGoalTarget"));
    let axes = scene
        .axis_goals
        .iter()
        .enumerate()
        .filter(|(_, def)| def.goal.randomize_yaw.is_some_and(|r| r.max > r.min))
        .filter(|&(g, _)| {
            !scene
                .sensors
                .iter()
                .any(|(_, def)| matches!(def, SensorDef::AxisGoalDirection(k) if *k == g))
        })
        .map(|(_, def)| (def.goal.name.as_str(), "AxisGoalDirection"));
    places.chain(joints).chain(axes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BUILTIN_TASKS;

    fn builtin_text(name: &str) -> &'static str {
        BUILTIN_TASKS.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn the_built_in_tasks_have_no_warnings() {
        for (name, text) in BUILTIN_TASKS {
            let scene = TaskScene::from_ron(text, name).unwrap();
            assert_eq!(scene_warnings(&scene), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn the_example_tasks_load_without_warnings() {
        // Every scene shipped under assets/tasks/examples: a new user copies one to start from.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/tasks/examples");
        let mut examples: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with(".scn.ron"))
            .collect();
        examples.sort();
        assert!(examples.len() >= 3, "{examples:?}");
        for path in examples {
            let scene = TaskScene::from_file(&path).unwrap();
            assert_eq!(
                scene_warnings(&scene),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
        }
    }

    /// cube-single with `from` replaced by `to`, and its warnings.
    fn warnings_of_edited(from: &str, to: &str) -> Vec<String> {
        let text = builtin_text("cube-single");
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "`{from}` is in cube-single");
        scene_warnings(&TaskScene::from_ron(&edited, "edited").unwrap())
    }

    #[test]
    fn a_goal_beyond_the_gantrys_reach_is_found() {
        let warnings = warnings_of_edited(
            "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
            "x: Some((min: -0.15, max: 60.0)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "task `cube-single` cannot be solved as laid out: it needs goal `cube_goal`'s target, give or take \
                 38.157 m (its tolerance, and how far past the pinch the robot can push or throw the cube), within the \
                 pinch's reach: its x spans [-0.15, 60] m"
            ),
            "{warnings:?}"
        );
    }

    /// The example pendulum's scene with `from` replaced by `to`, and its warnings.
    fn pendulum_warnings(from: &str, to: &str) -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/tasks/examples/pendulum.scn.ron"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "`{from}` is in the pendulum");
        scene_warnings(&TaskScene::from_ron(&edited, "edited").unwrap())
    }

    #[test]
    fn a_position_delta_joint_that_gravity_loads_is_warned_of() {
        // The gantry's palm given gravity: the vertical slide `z` carries it, the level slides and the vertical
        // hinge `yaw` do not lift it.
        let palm = "gravity_scale: 0.0, extra_mass: 0.3";
        let warnings = warnings_of_edited(palm, &palm.replace("0.0", "1.0"));
        let sags: Vec<&String> = warnings.iter().filter(|w| w.contains("sags")).collect();
        assert_eq!(sags.len(), 1, "{warnings:#?}");
        assert!(
            sags[0].starts_with(
                "actuator \"dz\" drives joint \"z\" with PositionDelta, whose target restarts from where the joint \
                 is at each control step, and gravity pulls on what the joint carries (\"palm\", gravity_scale 1)"
            ),
            "{}",
            sags[0]
        );
        // The pendulum's hinge driven by position deltas holds its pole up no better.
        let warnings = pendulum_warnings(
            "control: Velocity(scale: 6.0), range: (min: -1.0, max: 1.0),\n             stiffness: 0.0,",
            "control: PositionDelta(scale: 0.3), range: (min: -1.0, max: 1.0),\n             stiffness: 200.0,",
        );
        assert!(
            warnings
                .iter()
                .any(|w| w
                    .starts_with("actuator \"swing\" drives joint \"hinge\" with PositionDelta")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn a_fixed_body_moved_each_episode_under_a_body_resting_on_it_is_found() {
        let warnings = warnings_of_edited(
            r#"shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0, membership: 1,
        ),"#,
            r#"shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0, membership: 1,
        ),
        "qamlab_sim::authoring::RandomizePose": (z: Some((min: -0.15, max: -0.05))),"#,
        );
        assert_eq!(
            warnings,
            [
                "\"cube\" starts resting on \"table\", which is fixed but moved each episode by its RandomizePose, \
                 while \"cube\"'s start is drawn regardless of where it went: \"cube\" can start inside it or in the \
                 air above it (and the checks of starts and targets take \"table\" at its authored pose); leave \
                 \"table\" where it is authored and draw the bodies on it instead"
            ]
        );
    }

    #[test]
    fn gravity_pointing_up_or_sideways_is_found() {
        let up = "gravity is (0, 0, 9.81): it points up (z is up in a scene), so what it pulls falls upwards; \
                  Earth's is (0.0, 0.0, -9.81)";
        let warnings =
            warnings_of_edited("gravity: (0.0, 0.0, -9.81)", "gravity: (0.0, 0.0, 9.81)");
        assert_eq!(warnings, [up]);
        // A jointed robot too: the pendulum's pole would hang upwards, its goal met by falling.
        let pendulum = pendulum_warnings("gravity: (0.0, 0.0, -9.81)", "gravity: (0.0, 0.0, 9.81)");
        assert_eq!(pendulum, [up]);
        let sideways = pendulum_warnings("gravity: (0.0, 0.0, -9.81)", "gravity: (9.81, 0.0, 0.0)");
        assert_eq!(
            sideways,
            [
                "gravity is (9.81, 0, 0): it points more sideways than down (z is up in a scene); Earth's is (0.0, \
              0.0, -9.81)"
            ]
        );
    }

    #[test]
    fn angles_written_in_degrees_are_found() {
        let warnings = warnings_of_edited(
            "yaw: Some((min: -3.1416, max: 3.1416))",
            "yaw: Some((min: -180.0, max: 180.0))",
        );
        assert_eq!(
            warnings,
            [
                "\"cube\"'s start yaw is drawn from [-180, 180] rad, past a whole turn (6.2832 rad): angles are in \
                 radians (degrees written?)"
            ]
        );
        let limits = pendulum_warnings(
            "anchor: (0.0, 0.0, 1.0)),",
            "anchor: (0.0, 0.0, 1.0), limits: Some((min: -90.0, max: 90.0))),",
        );
        assert_eq!(
            limits,
            [
                "joint \"hinge\"'s limits [-90, 90] rad pass half a turn (3.1416 rad): a revolute joint's angle wraps \
              there, so such a limit never binds (angles are in radians: degrees written?)"
            ]
        );
        // Past half a turn but within a whole one: said, without the guess at degrees.
        let wide = pendulum_warnings(
            "anchor: (0.0, 0.0, 1.0)),",
            "anchor: (0.0, 0.0, 1.0), limits: Some((min: -4.0, max: 4.0))),",
        );
        assert!(
            wide.len() == 1 && wide[0].ends_with("never binds"),
            "{wide:?}"
        );
        // Within half a turn: nothing.
        let fine = pendulum_warnings(
            "anchor: (0.0, 0.0, 1.0)),",
            "anchor: (0.0, 0.0, 1.0), limits: Some((min: -3.0, max: 3.0))),",
        );
        assert_eq!(fine, Vec::<String>::new());
    }

    #[test]
    fn a_free_body_with_nothing_under_it_is_found() {
        // A 20 cm table: the cube's start is drawn over [-0.15, 0.15] in x and y, so its corners hang off it.
        let warnings = warnings_of_edited(
            "shape: Cuboid(half_extents: (0.5, 0.5, 0.05))",
            "shape: Cuboid(half_extents: (0.1, 0.1, 0.05))",
        );
        assert_eq!(
            warnings,
            [
                "\"cube\" has nothing under it where it can start, at (-0.15, -0.15): it falls for the whole \
              episode; place it over a fixed collider (a table, a floor) or put one under it"
            ]
        );
    }

    #[test]
    fn a_support_the_body_cannot_touch_is_none() {
        // The table's filter taking no group: nothing touches it, and the cube falls through it.
        let warnings = warnings_of_edited(
            "shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0, membership: 1,",
            "shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0, membership: 1, filter: 0,",
        );
        assert_eq!(
            warnings,
            [
                "\"cube\" has nothing under it that it can touch where it can start, at (-0.15, -0.15): \"table\" \
                 is under it, but their collision groups keep them apart, so it falls through for the whole \
                 episode; give them a `membership` and `filter` that touch (each one's filter sharing a bit with \
                 the other's membership)"
            ]
        );
        // The cube's filter leaving out the table's group while the table's takes the cube: apart all the same.
        let cube = "shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0, membership: 1,";
        let one_way = warnings_of_edited(cube, &format!("{cube} filter: 2,"));
        assert!(
            one_way.len() == 1
                && one_way[0].contains("\"table\" is under it, but their collision groups"),
            "{one_way:?}"
        );
        // A table that touches only the cube's group still holds it.
        let only_cubes = warnings_of_edited(
            "shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0, membership: 1,",
            "shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, friction: 1.0, membership: 1, filter: 1,",
        );
        assert_eq!(only_cubes, Vec::<String>::new());
    }

    #[test]
    fn a_start_drawn_below_or_inside_the_table_is_found() {
        // The cube's height drawn half a metre down, under the table's underside: nothing holds it there.
        let rand = "yaw: Some((min: -3.1416, max: 3.1416)),\n        ),";
        let at_z =
            |z: &str| warnings_of_edited(rand, &rand.replace("),\n", &format!("), z: {z},\n")));
        assert_eq!(
            at_z("Some((min: -0.5, max: -0.4))"),
            [
                "\"cube\" has nothing under it where it can start, at (-0.15, -0.15, -0.5): its RandomizePose draws \
                 its height from [-0.5, -0.4] m, below everything that could hold it there, so it falls for the \
                 whole episode; z is a height in the world, not an offset from the authored pose: draw it where the \
                 body rests on a fixed collider (a table, a floor), or leave z out to start it at its authored height"
            ]
        );
        // Drawn from 6 cm down into the table's top to resting on it: it can start inside the table.
        let inside = at_z("Some((min: -0.06, max: 0.02))");
        assert_eq!(
            inside,
            [
                "\"cube\" can start inside \"table\", 6.0 cm deep, at (-0.15, -0.15, -0.06) where its RandomizePose \
                 draws it: the physics pushes them apart at the first step; draw its start clear of \"table\" \
                 (RandomizePose's x, y and z are places in the world, not offsets from the authored pose), or give \
                 them collision groups (`membership` / `filter`) that do not touch"
            ]
        );
        // Drawn from resting on the table to 10 cm above it: it drops onto the table.
        assert_eq!(at_z("Some((min: 0.02, max: 0.1))"), Vec::<String>::new());
    }

    #[test]
    fn a_target_buried_in_the_table_is_found() {
        // The review's: a 20 cm table whose top is at z = 0.05, the cube raised onto it, the target left at z = 0.02.
        let text = builtin_text("cube-single")
            .replacen(
                "shape: Cuboid(half_extents: (0.5, 0.5, 0.05))",
                "shape: Cuboid(half_extents: (0.8, 0.8, 0.1))",
                1,
            )
            .replacen(
                "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02)",
                "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.07)",
                1,
            );
        let at = |target: &str| {
            let edited = text.replacen("target: (0.1, 0.1, 0.02)", target, 1);
            scene_warnings(&TaskScene::from_ron(&edited, "thick").unwrap())
        };
        assert_eq!(
            at("target: (0.1, 0.1, 0.02)"),
            [
                "goal \"cube_goal\"'s target lies 3.0 cm inside \"table\", at (-0.15, -0.15, 0.02), wherever its \
                 RandomizeTarget draws it (at its deepest here): the goal never holds, so the task never succeeds \
                 (success is every goal holding): \"cube\" cannot enter \"table\", and \"cube\"'s origin lies 2.0 cm \
                 inside its collider, so it comes no nearer the target than about 5.0 cm, farther than the tolerance \
                 (0.04 m); put the target where \"cube\"'s origin is when \"cube\" rests on \"table\" (targets, like \
                 RandomizeTarget's ranges, are places in the world)"
            ]
        );
        // A block inside the target's ranges, away from their corners and middle (the review's block2).
        let block = builtin_text("cube-single").replacen(
            "  },\n)",
            "    20: (\n      components: {\n        \"qamlab_sim::authoring::Body\": (name: \"block\", kind: Fixed, \
             translation: (0.08, 0.08, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),\n        \
             \"qamlab_sim::authoring::Collider\": (shape: Cuboid(half_extents: (0.05, 0.05, 0.05)), density: 0.0, \
             friction: 1.0, membership: 1),\n      },\n    ),\n  },\n)",
            1,
        );
        assert!(block.contains("\"block\""));
        let block = scene_warnings(&TaskScene::from_ron(&block, "block").unwrap());
        assert!(
            block.iter().any(|w| w.starts_with(
                "goal \"cube_goal\"'s target can lie 3.0 cm inside \"block\", at (0.08, 0.08, 0.02), where its \
                 RandomizeTarget draws it"
            )),
            "{block:?}"
        );
        // Its height drawn from 5 cm into the table to resting on it: only some episodes' targets are buried.
        let some = {
            let edited = text
                .replacen("target: (0.1, 0.1, 0.02)", "target: (0.1, 0.1, 0.07)", 1)
                .replacen(
                    "min_distance_from: [(\"cube\", 0.08)]",
                    "z: Some((min: 0.0, max: 0.07)), min_distance_from: [(\"cube\", 0.08)]",
                    1,
                );
            scene_warnings(&TaskScene::from_ron(&edited, "thick").unwrap())
        };
        assert!(
            some.len() == 1
                && some[0].starts_with(
                    "goal \"cube_goal\"'s target can lie 5.0 cm inside \"table\", at (-0.15, -0.15, 0), where its \
                     RandomizeTarget draws it: the goal never holds there, so such episodes never succeed:"
                ),
            "{some:?}"
        );
        // 1 cm into the table: a resting cube's centre is 3 cm from it, within the tolerance.
        assert_eq!(at("target: (0.1, 0.1, 0.04)"), Vec::<String>::new());
        // On the table, as cube-single's.
        assert_eq!(at("target: (0.1, 0.1, 0.07)"), Vec::<String>::new());
    }

    #[test]
    fn a_cube_too_heavy_for_the_fingers_is_found() {
        // The review's 1.9 kg cube (density 30000): its oracle lifts it in no episode, whatever max_force is.
        let cube = "shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0,";
        let heavy =
            builtin_text("cube-single").replacen(cube, &cube.replace("1000.0", "30000.0"), 1);
        let with = |from: &str, to: &str| {
            assert!(heavy.contains(from), "`{from}` is in cube-single");
            scene_warnings(&TaskScene::from_ron(&heavy.replace(from, to), "heavy").unwrap())
        };
        let said = [
            "\"cube\" weighs 1.9 kg, too heavy for the gantry's fingers: each squeezes it with about 6 N, the \
             gripper's stiffness (4000) × how far the closed fingers' targets lie inside it (4.0 cm together) × the \
             fingers' reduced mass (0.038 kg, of 0.1 and 0.1 kg, each taken with the 0.3 kg of \"palm\" it pushes \
             from: the motor is acceleration-based), and friction (1.25 a side) on that lets the oracle's grasp \
             lift about 0.76 kg (as measured, within some 25%); raise the fingers' (or the palm's) extra_mass or \
             the fingers' friction, or the gripper's stiffness (max_force only caps the squeeze, and does not bind \
             here), or lighten the cube",
        ];
        assert_eq!(with("max_force: 20.0", "max_force: 20.0"), said);
        assert_eq!(with("max_force: 20.0", "max_force: 200.0"), said);
        // What does lift it (measured: in 80 to 100% of episodes).
        for (from, to) in [
            (
                "gravity_scale: 0.0, extra_mass: 0.1,",
                "gravity_scale: 0.0, extra_mass: 1.0,",
            ),
            (
                "density: 0.0, friction: 1.5,",
                "density: 0.0, friction: 5.0,",
            ),
            (
                "stiffness: 4000.0, damping: 100.0",
                "stiffness: 40000.0, damping: 100.0",
            ),
        ] {
            assert_eq!(with(from, to), Vec::<String>::new(), "{to}");
        }
        // Capped by max_force: then it is the knob.
        let capped = with("max_force: 20.0", "max_force: 2.0");
        assert!(
            capped.len() == 1
                && capped[0].contains("acceleration-based), capped by its max_force (2 N), and"),
            "{capped:?}"
        );
        // The palm the fingers push from scales the squeeze too (measured: a light palm's gantry lifts 0.14 kg
        // with fingers of 0.1 kg, 0.47 kg with a palm of 0.1 kg).
        let light = |palm: &str, density: &str| {
            let text = builtin_text("cube-single")
                .replacen(cube, &cube.replace("1000.0", density), 1)
                .replacen(
                    "gravity_scale: 0.0, extra_mass: 0.3,",
                    &format!("gravity_scale: 0.0, extra_mass: {palm},"),
                    1,
                );
            scene_warnings(&TaskScene::from_ron(&text, "light palm").unwrap())
        };
        let palm = light("0.02", "4700.0");
        assert!(
            palm.len() == 1
                && palm[0]
                    .starts_with("\"cube\" weighs 0.3 kg, too heavy for the gantry's fingers")
                && palm[0].contains("each taken with the 0.02 kg of \"palm\" it pushes from")
                && palm[0].contains("lift about 0.17 kg"),
            "{palm:?}"
        );
        let palm = light("0.1", "9375.0");
        assert!(
            palm.len() == 1
                && palm[0].starts_with("\"cube\" weighs 0.6 kg, probably too heavy for"),
            "{palm:?}"
        );
        assert_eq!(light("0.1", "6000.0"), Vec::<String>::new(), "0.38 kg");
        // The built-in gantry lifts 0.77 kg in 95% of episodes, 0.78 kg in 2%: 0.9 kg is probably too heavy.
        assert_eq!(light("0.3", "12000.0"), Vec::<String>::new(), "0.77 kg");
        let heavier = light("0.3", "14000.0");
        assert!(
            heavier.len() == 1
                && heavier[0].starts_with("\"cube\" weighs 0.9 kg, probably too heavy for"),
            "{heavier:?}"
        );
        // Fingers that close no narrower than the cube never squeeze it.
        let short = with("at_min: 0.0, at_max: 0.044", "at_min: 0.0, at_max: 0.01");
        assert!(
            short.len() == 1 && short[0].starts_with("\"cube\" is never squeezed"),
            "{short:?}"
        );
    }

    #[test]
    fn position_targets_past_half_a_turn_are_found() {
        let velocity = "control: Velocity(scale: 6.0), range: (min: -1.0, max: 1.0),\n             stiffness: 0.0,";
        let absolute = |at: &str, limits: &str| {
            let control = format!(
                "control: PositionAbsolute({at}), range: (min: -1.0, max: 1.0),\n             stiffness: 400.0,"
            );
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../assets/tasks/examples/pendulum.scn.ron"
            );
            let text = std::fs::read_to_string(path).unwrap();
            let edited = text.replacen(velocity, &control, 1).replacen(
                "anchor: (0.0, 0.0, 1.0)),",
                &format!("anchor: (0.0, 0.0, 1.0){limits}),"),
                1,
            );
            assert_eq!(edited.matches("PositionAbsolute").count(), 1);
            scene_warnings(&TaskScene::from_ron(&edited, "edited").unwrap())
        };
        // Degrees written for radians, on a hinge without limits.
        assert_eq!(
            absolute("at_min: -90.0, at_max: 90.0", ""),
            [
                "actuator \"swing\" sends revolute joint \"hinge\" to targets in [-90, 90] rad, past half a turn \
                 (3.1416 rad): the joint's angle wraps at ±π, so it never reads such a target: a little past it, the \
                 motor holds the joint a whole turn short of the target; far past it, the motor turns the joint \
                 without end (angles are in radians: degrees written?); bring at_min and at_max within [-3.1416, \
                 3.1416]"
            ]
        );
        // With limits, said instead of the targets' being beyond them.
        let limited = absolute(
            "at_min: -90.0, at_max: 90.0",
            ", limits: Some((min: -1.0, max: 1.0))",
        );
        assert!(
            limited.len() == 1 && limited[0].contains("past half a turn"),
            "{limited:?}"
        );
        // Past half a turn, within a whole one: said, without the guess at degrees.
        let wide = absolute("at_min: -4.0, at_max: 4.0", "");
        assert!(
            wide.len() == 1
                && wide[0]
                    .ends_with("without end; bring at_min and at_max within [-3.1416, 3.1416]"),
            "{wide:?}"
        );
        assert_eq!(
            absolute("at_min: -3.1416, at_max: 3.1416", ""),
            Vec::<String>::new()
        );
    }

    #[test]
    fn restitution_above_one_is_found() {
        let cube =
            "shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0,";
        assert_eq!(
            warnings_of_edited(cube, &format!("{cube} restitution: 5.0,")),
            [
                "\"cube\"'s collider has restitution 5, above 1: where a contact's restitution (the mean of its two \
                 colliders') is above 1, each bounce gives back more energy than the impact took, so what bounces \
                 there bounces ever higher; restitution runs from 0 (no bounce) to 1 (a perfectly elastic one)"
            ]
        );
        assert_eq!(
            warnings_of_edited(cube, &format!("{cube} restitution: 1.0,")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn sizes_masses_and_places_far_from_a_labs_are_found() {
        let pole = "shape: Capsule(half_height: 0.25, radius: 0.02), density: 300.0,";
        let heavy = pendulum_warnings(pole, &pole.replace("300.0", "1e30"));
        assert!(
            heavy.len() == 1
                && heavy[0].starts_with(
                    "\"pole\" weighs 6.6e26 kg, outside [1e-6, 100000] kg, many orders of magnitude from any body of \
                     a robot lab: its mass is its collider's density (1e30 kg/m³; water's is 1000) times its volume, \
                     plus its extra_mass (0 kg)"
                ),
            "{heavy:?}"
        );
        let light = pendulum_warnings(pole, &pole.replace("300.0", "1e-30"));
        assert!(
            light.len() == 1
                && light[0].starts_with("\"pole\" weighs 6.6e-34 kg, outside [1e-6, 100000] kg"),
            "{light:?}"
        );
        let tiny = pendulum_warnings(
            pole,
            "shape: Capsule(half_height: 1e-20, radius: 1e-20), density: 300.0,",
        );
        assert_eq!(
            tiny[0],
            "\"pole\"'s collider has radius 1e-20 m, outside [1e-4, 1000] m (0.1 mm to 1 km): sizes are metres, and \
             one so many orders of magnitude from a robot lab's is most likely a slip of units or a typo (the \
             physics' contacts and masses fail at such sizes)"
        );
        // Its mass, lost to float32 rounding, too.
        assert!(
            tiny.len() == 2 && tiny[1].starts_with("\"pole\" weighs 0 kg"),
            "{tiny:?}"
        );
        // Millimetres written for metres: the pole 750 m up (its joint's anchor, on the pivot, is no help).
        let far = pendulum_warnings(
            "translation: (0.0, 0.0, 0.75)",
            "translation: (0.0, 0.0, 750.0)",
        );
        assert_eq!(
            far,
            [
                "\"pole\" starts 750 m from the origin, at (0, 0, 750): over 100 m, far beyond a robot lab's scale; \
                 lengths are metres (millimetres written?): move it within 100 m of the origin"
            ]
        );
        // Within the bounds: a 1 mm, 2 g pole, and a 500 kg one, say nothing.
        let thin = pendulum_warnings(
            pole,
            "shape: Capsule(half_height: 0.25, radius: 0.001), density: 2000.0,",
        );
        assert_eq!(thin, Vec::<String>::new());
        let iron = pendulum_warnings(pole, &pole.replace("300.0", "300000.0"));
        assert_eq!(iron, Vec::<String>::new());
    }

    #[test]
    fn goals_on_one_frame_too_far_apart_are_found() {
        let site = "\"qamlab_sim::authoring::Site\": (name: \"tip\", body: \"pole\", offset: (0.0, 0.0, -0.25)),";
        let with = |extra: &str| pendulum_warnings(site, &format!("{site}\n        {extra}"));
        // A second goal on the tip, at the pole hanging down: a metre from "up", whose x is drawn from [-0.1, 0.1].
        assert_eq!(
            with(
                "\"qamlab_sim::authoring::Goal\": (name: \"down\", frame: \"tip\", target: (0.0, 0.0, 0.5), tolerance: 0.1),"
            ),
            [
                "goals \"down\" and \"up\" both need \"tip\" at their targets, which lie at least 1 m apart, farther \
                 than their tolerances together (0.1 + 0.1 m): \"tip\" is never within both at once, so the task \
                 never succeeds (success is every goal holding); bring the targets together, or put one goal on \
                 another frame"
            ]
        );
        // On the pole's middle, 25 cm from the tip: the frames' distance counts.
        let pole = with(
            "\"qamlab_sim::authoring::Goal\": (name: \"down\", frame: \"pole\", target: (0.0, 0.0, 0.5), tolerance: 0.1),",
        );
        assert!(
            pole.len() == 1
                && pole[0].starts_with(
                    "goals \"down\" and \"up\" need \"pole\" and \"tip\", 0.25 m apart on \"pole\", at targets that \
                     lie at least 1 m apart"
                ),
            "{pole:?}"
        );
        // Within their tolerances of each other: both can hold.
        let near = with(
            "\"qamlab_sim::authoring::Goal\": (name: \"near\", frame: \"tip\", target: (0.0, 0.0, 1.4), tolerance: 0.1),",
        );
        assert_eq!(near, Vec::<String>::new());
    }

    #[test]
    fn a_coarse_physics_step_is_found() {
        // One physics step per 50 ms control step; 0.2 / 5 is the longest said nothing of.
        let warnings = warnings_of_edited("substeps: 5,", "substeps: 1,");
        assert_eq!(
            warnings,
            [
                "the physics step, control_dt / substeps = 0.05 / 1 = 0.05 s, is over 0.04 s: stiff motors and \
                 contacts are integrated coarsely there (cube-single's grasp fails in a fifth to a half of its \
                 episodes at 0.05 to 0.06 s); raise substeps to 2 or more (the built-ins step 0.01 to 0.025 s)"
            ]
        );
        assert_eq!(
            warnings_of_edited("control_dt: 0.05,", "control_dt: 0.2,"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn physics_work_thousands_of_times_the_built_ins_is_found() {
        // Every bound at its top: one control step takes some 20 minutes.
        let heavy = warnings_of_edited(
            "substeps: 5,\n          solver_iterations: 4,",
            "substeps: 1000,\n          solver_iterations: 1000,\n          solver_passes: 1000,",
        );
        assert_eq!(
            heavy,
            [
                "each control step runs substeps × solver_iterations × solver_passes = 1000 × 1000 × 1000 = 1e9 \
             constraint passes, 2.5e7 times antmaze-umaze's 40: everything run on it is that much slower \
             (cube-single at 20000 runs some 45 control steps a second on one core); the built-ins step 2 to 5 \
             substeps of 4 to 5 iterations of 1 to 4 passes"
            ]
        );
        // 2500 passes a step: slower, and not warned of.
        assert_eq!(
            warnings_of_edited("solver_iterations: 4,", "solver_iterations: 500,"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_motor_too_stiff_or_too_damped_for_the_step_is_found() {
        // The gripper at stiffness 1e7 (the review's: it flung the cube off the table, and collect wrote it).
        let stiff = warnings_of_edited("stiffness: 4000.0", "stiffness: 10000000.0");
        assert_eq!(
            stiff,
            [
                "actuator \"gripper\"'s motor is stiff for its damping: stiffness × physics step / damping = 1e7 \
                 × 0.01 / 100 = 1000.0, over 5, so each physics step it snaps its joints onto their \
                 targets, as hard as max_force lets it, and jolts whatever they touch (cube-single's gripper at 3, \
                 stiffness 30000, squeezes the cube out of the fingers and off the table in a third of the \
                 oracle's episodes; the built-ins' motors are at 0.3 to 2.5); raise its damping to 20000 or more, \
                 or lower its stiffness to 50000 or less"
            ]
        );
        // Undamped: it snaps at any stiffness.
        let undamped = warnings_of_edited("damping: 100.0", "damping: 0.0");
        assert_eq!(undamped.len(), 1, "{undamped:?}");
        assert!(
            undamped[0].contains("stiff for its damping: it has no damping, so each physics step"),
            "{undamped:?}"
        );
        // A motor whose damping holds it still for longer than an episode.
        let damped = warnings_of_edited("damping: 120.0", "damping: 1e30");
        assert_eq!(
            damped,
            [
                "actuator \"dx\"'s motor is damped far past its stiffness: it takes about damping / stiffness = \
                 1e30 / 3600 = 2.7777779e26 s to close most of a gap to its target, longer than an episode (10 s), \
                 so it barely moves its joints before the episode ends; lower its damping, or raise its stiffness \
                 (the built-ins' motors take 0.01 to 0.04 s)"
            ]
        );
        // Just under the bound, and the built-ins (checked above), say nothing.
        assert_eq!(
            warnings_of_edited("stiffness: 4000.0", "stiffness: 50000.0"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_anchor_half_a_metre_off_is_found_and_one_on_a_body_is_not() {
        let from = "kind: Prismatic(axis: (1.0, 0.0, 0.0)),\n          anchor: (0.0, 0.0, 0.25)";
        let text = builtin_text("cube-single");
        let at = |z: &str| {
            let edited = text.replacen(from, &from.replace("0.25)", z), 1);
            assert_ne!(edited, text);
            far_joint_anchors(&TaskScene::from_ron(&edited, "edited").unwrap())
        };
        assert_eq!(at("0.85)").len(), 1);
        assert!(at("0.3)").is_empty());
    }

    #[test]
    fn a_tilted_table_and_a_body_hung_from_a_fixed_one_are_no_falls() {
        // The table tilted 5 degrees: its box reaches above the cube's underside, and still holds it.
        let tilted = warnings_of_edited(
            "translation: (0.0, 0.0, -0.05), rotation: (0.0, 0.0, 0.0, 1.0)",
            "translation: (0.0, 0.0, -0.05), rotation: (0.0436, 0.0, 0.0, 0.9990)",
        );
        assert!(
            tilted.iter().all(|w| !w.contains("nothing under it")),
            "{tilted:?}"
        );
        // The pendulum with its joint's parent and child swapped: the pole hangs from the fixed pivot all the same.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/tasks/examples/pendulum.scn.ron"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let swapped = text.replacen(
            "parent: \"pivot\", child: \"pole\"",
            "parent: \"pole\", child: \"pivot\"",
            1,
        );
        assert_ne!(swapped, text);
        let scene = TaskScene::from_ron(&swapped, "swapped").unwrap();
        assert_eq!(scene_warnings(&scene), Vec::<String>::new());
    }

    #[test]
    fn a_walker_off_its_floor_is_said_once() {
        // The floor moved away from under the robot (its walls stay): the torso and its eight limbs fall together.
        let text = builtin_text("antmaze-umaze");
        let edited = text.replacen(
            "name: \"floor\", kind: Fixed, translation: (0.0, 0.0, -0.05)",
            "name: \"floor\", kind: Fixed, translation: (40.0, 0.0, -0.05)",
            1,
        );
        assert_ne!(edited, text);
        let warnings = scene_warnings(&TaskScene::from_ron(&edited, "moved").unwrap());
        let falls: Vec<&String> = warnings
            .iter()
            .filter(|w| w.contains("has nothing under it"))
            .collect();
        assert!(
            falls.len() == 1 && falls[0].starts_with("\"torso\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_joint_anchor_far_from_both_bodies_is_found() {
        let text = builtin_text("cube-single");
        // Joint "x"'s anchor 25 m up where 0.25 was meant.
        let typo = text.replacen(
            "kind: Prismatic(axis: (1.0, 0.0, 0.0)),\n          anchor: (0.0, 0.0, 0.25)",
            "kind: Prismatic(axis: (1.0, 0.0, 0.0)),\n          anchor: (0.0, 0.0, 25.0)",
            1,
        );
        assert_ne!(typo, text);
        let scene = TaskScene::from_ron(&typo, "typo").unwrap();
        let far = far_joint_anchors(&scene);
        assert_eq!(far.len(), 1);
        assert_eq!(far[0].0, "x");
        assert!((far[0].1 - 24.75).abs() < 1e-3, "{far:?}");
        let warnings = scene_warnings(&scene);
        assert!(
            warnings.len() == 1 && warnings[0].starts_with("joint \"x\"'s anchor is 24.75 m"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_repeated_sensor_and_targets_past_the_limits_are_found() {
        let text = builtin_text("cube-single");
        let twice = text.replacen(
            "GoalPosition(goal: \"cube_goal\"),",
            "GoalPosition(goal: \"cube_goal\"), GoalPosition(goal: \"cube_goal\"),",
            1,
        );
        assert_ne!(twice, text);
        let warnings = scene_warnings(&TaskScene::from_ron(&twice, "twice").unwrap());
        assert!(
            warnings.len() == 1 && warnings[0].contains("is listed twice"),
            "{warnings:?}"
        );
        let antmaze = builtin_text("antmaze-umaze");
        let beyond = antmaze.replacen(
            "PositionAbsolute(at_min: -0.6, at_max: 0.6)",
            "PositionAbsolute(at_min: -0.9, at_max: 0.9)",
            1,
        );
        assert_ne!(beyond, antmaze);
        let warnings = scene_warnings(&TaskScene::from_ron(&beyond, "beyond").unwrap());
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with(
                    "actuator \"front_left_hip\" sends joint \"front_left_hip\" to targets in [-0.9, 0.9], beyond \
                     its limits"
                ),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_body_held_by_two_joints_is_found() {
        let text = builtin_text("cube-single");
        // The palm held by a second joint, to the table, beside its yaw joint to the carriage.
        let second = text
            .trim_end()
            .strip_suffix("},\n)")
            .expect("the scene ends its entities and itself")
            .to_string()
            + r#"  99: (
      components: {
        "qamlab_sim::authoring::Joint": (name: "extra", parent: "table", child: "palm", kind: Fixed, anchor: (0.0, 0.0, 0.25)),
      },
    ),
  },
)
"#;
        let warnings = scene_warnings(&TaskScene::from_ron(&second, "second").unwrap());
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("\"palm\" is the child of 2 joints (yaw, extra)")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_random_target_no_sensor_observes_is_found() {
        let text = builtin_text("cube-single");
        let unobserved = text.replacen("GoalPosition(goal: \"cube_goal\"),", "", 1);
        assert_ne!(unobserved, text);
        let scene = TaskScene::from_ron(&unobserved, "unobserved").unwrap();
        assert_eq!(
            unobserved_random_goals(&scene),
            [("cube_goal", "GoalPosition")]
        );
        let warnings = scene_warnings(&scene);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("goal \"cube_goal\"'s target is drawn anew"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_drawn_axis_goal_direction_no_sensor_observes_is_found() {
        let text = include_str!("../../assets/tasks/examples/topple.scn.ron");
        let unobserved = text.replacen("AxisGoalDirection(goal: \"fallen\"),", "", 1);
        assert_ne!(unobserved, text);
        let scene = TaskScene::from_ron(&unobserved, "unobserved").unwrap();
        assert_eq!(
            unobserved_random_goals(&scene),
            [("fallen", "AxisGoalDirection")]
        );
        // Not drawn (no yaw range), nothing to observe.
        let start = unobserved.find(", randomize_yaw: Some((").unwrap();
        let end = start + unobserved[start..].find("))").unwrap() + 2;
        let fixed = format!("{}{}", &unobserved[..start], &unobserved[end..]);
        let scene = TaskScene::from_ron(&fixed, "fixed").unwrap();
        assert!(unobserved_random_goals(&scene).is_empty());
    }

    /// topple.scn.ron with its goal's line replaced by `goals`.
    fn topple_with(goals: &str) -> TaskScene {
        let text = include_str!("../../assets/tasks/examples/topple.scn.ron");
        let start = text.find("\"qamlab_sim::authoring::AxisGoal\"").unwrap();
        let end = start + text[start..].find("),\n      },").unwrap() + 2;
        let edited = format!("{}{goals}{}", &text[..start], &text[end..]);
        TaskScene::from_ron(&edited, "topple-edited").unwrap()
    }

    #[test]
    fn an_axis_goal_that_holds_at_every_start_is_found() {
        // The standing cylinder asked to stand: met before anything moves.
        let standing = topple_with(
            r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (0.0, 0.0, 1.0), tolerance: 0.3),"#,
        );
        let warnings = axis_goals_met_at_start(&standing);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("axis goal \"fallen\" holds at every start tried (32)"),
            "{warnings:?}"
        );
        // Beside another that the start does not meet, it asks only that the cylinder stay up; beside one it meets
        // too, every episode succeeds at once.
        let with_second = |second: &str| {
            topple_with(&format!(
                r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (0.0, 0.0, 1.0), tolerance: 0.3),
      }}),
    8: (components: {{
        "qamlab_sim::authoring::AxisGoal": (name: "second", body: "cylinder", {second}),"#
            ))
        };
        let unmet = axis_goals_met_at_start(&with_second(
            "axis: (1.0, 0.0, 0.0), direction: (0.0, 1.0, 0.0), tolerance: 0.3",
        ));
        assert!(
            unmet.len() == 1 && unmet[0].contains("asks only that the body not turn away"),
            "{unmet:?}"
        );
        let met = axis_goals_met_at_start(&with_second(
            "axis: (1.0, 0.0, 0.0), direction: (1.0, 0.0, 0.0), tolerance: 0.3",
        ));
        assert!(
            met.len() == 2
                && met
                    .iter()
                    .all(|w| w.contains("episodes succeed before the robot does anything")),
            "{met:?}"
        );
        // Lying toward a drawn heading: met at none of them.
        let shipped = topple_with(
            r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (1.0, 0.0, 0.0), tolerance: 0.4, randomize_yaw: Some((min: -0.7, max: 0.7))),"#,
        );
        assert!(axis_goals_met_at_start(&shipped).is_empty());
    }

    #[test]
    fn two_axis_goals_no_turn_meets_at_once_are_found() {
        let goals = |second: &str| {
            topple_with(&format!(
                r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (1.0, 0.0, 0.0), tolerance: 0.2),
      }}),
    8: (components: {{
        "qamlab_sim::authoring::AxisGoal": (name: "second", body: "cylinder", {second}),"#
            ))
        };
        // z along +x and x up: the axes and the directions both 90° apart, one turn meets both.
        let pinned = goals("axis: (1.0, 0.0, 0.0), direction: (0.0, 0.0, 1.0), tolerance: 0.2");
        assert!(axis_goals_that_cannot_both_hold(&pinned).is_empty());
        // z along +x and x along +x too: 90° between the axes, 0 between the directions.
        let clash = goals("axis: (1.0, 0.0, 0.0), direction: (2.0, 0.0, 0.0), tolerance: 0.2");
        let warnings = axis_goals_that_cannot_both_hold(&clash);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with(
                    "axis goals \"fallen\" and \"second\" on \"cylinder\": its axes (0, 0, 1) and (1, 0, 0) are \
                     1.57 rad apart"
                )
                && warnings[0].ends_with(
                    "but the directions (1, 0, 0) and (2, 0, 0) are 0.00 rad apart: the two never hold at once"
                ),
            "{warnings:?}"
        );
        // A drawn direction: judged over its yaws. The second along (1, 0, 0) turned by up to ±1 rad is never within
        // 0.4 rad of 90° from the first's (1, 0, 0); turned by up to ±1.4 rad it is, in some episodes only.
        let drawn = |range: f32| {
            goals(&format!(
                "axis: (1.0, 0.0, 0.0), direction: (2.0, 0.0, 0.0), tolerance: 0.2, randomize_yaw: Some((min: -{range}, max: {range}))"
            ))
        };
        let warnings = axis_goals_that_cannot_both_hold(&drawn(1.0));
        assert!(
            warnings.len() == 1
                && warnings[0].contains("1.00 rad apart at their closest over the drawn yaws"),
            "{warnings:?}"
        );
        let warnings = axis_goals_that_cannot_both_hold(&drawn(1.4));
        assert!(
            warnings.len() == 1
                && warnings[0].contains("each goal's yaw is drawn on its own, so in about"),
            "{warnings:?}"
        );
        // Two alike goals with a drawn yaw are drawn apart too: not one goal.
        let twins = topple_with(
            r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (1.0, 0.0, 0.0), tolerance: 0.05, randomize_yaw: Some((min: -3.14, max: 3.14))),
      }),
    8: (components: {
        "qamlab_sim::authoring::AxisGoal": (name: "twin", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (1.0, 0.0, 0.0), tolerance: 0.05, randomize_yaw: Some((min: -3.14, max: 3.14))),"#,
        );
        let warnings = axis_goals_that_cannot_both_hold(&twins);
        assert!(
            warnings.len() == 1 && warnings[0].contains("so in about 9"),
            "{warnings:?}"
        );
        // Two horizontal axes each toward its own drawn heading: drawn apart, they often cannot both hold.
        let text = include_str!("../../assets/tasks/examples/topple.scn.ron");
        let start = text.find("\"qamlab_sim::authoring::AxisGoal\"").unwrap();
        let end = start + text[start..].find("),\n      },").unwrap() + 2;
        let yawed = format!(
            r#"{}"qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (1.0, 0.0, 0.0), direction: (1.0, 0.0, 0.0), tolerance: 0.4, randomize_yaw: Some((min: -1.0, max: 1.0))),
      }}),
    8: (components: {{
        "qamlab_sim::authoring::AxisGoal": (name: "second", body: "cylinder", axis: (0.0, 1.0, 0.0), direction: (0.0, 1.0, 0.0), tolerance: 0.4, randomize_yaw: Some((min: -1.0, max: 1.0))),{}"#,
            &text[..start],
            &text[end..]
        );
        let warnings =
            axis_goals_that_cannot_both_hold(&TaskScene::from_ron(&yawed, "yawed").unwrap());
        assert!(
            warnings.len() == 1 && warnings[0].contains("so in about 3"),
            "{warnings:?}"
        );
    }

    #[test]
    fn an_axis_goal_its_hinge_cannot_turn_to_is_found() {
        // The door turns about the vertical: its x axis sweeps the horizontal, its z axis stays up.
        let door = |axis: &str, direction: &str| {
            let text = include_str!("../../assets/tasks/examples/door.scn.ron").replacen(
                "  entities: {",
                &format!(
                    "  entities: {{\n    90: (components: {{\"qamlab_sim::authoring::AxisGoal\": (name: \"turned\", \
                     body: \"door\", axis: {axis}, direction: {direction}, tolerance: 0.1)}}),"
                ),
                1,
            );
            TaskScene::from_ron(&text, "door-turned").unwrap()
        };
        assert!(
            axis_goals_a_hinge_cannot_reach(&door("(1.0, 0.0, 0.0)", "(0.0, 1.0, 0.0)")).is_empty()
        );
        let warnings = axis_goals_a_hinge_cannot_reach(&door("(0.0, 0.0, 1.0)", "(0.0, 1.0, 0.0)"));
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with(
                    "axis goal \"turned\" cannot be met at 32 of 32 starts tried: joint \"hinge\""
                )
                && warnings[0].contains(
                    "a cone 0.00 rad from the hinge, and the direction is 1.57 rad from the hinge"
                ),
            "{warnings:?}"
        );
        // The handle welded to the door turns with it, by the same hinge.
        let handle = door("(0.0, 0.0, 1.0)", "(1.0, 0.0, 0.0)");
        assert_eq!(axis_goals_a_hinge_cannot_reach(&handle).len(), 1);
        // The post spinning about x carries the hinge round: the cone moves with the clock, and is not judged.
        let spinning = door("(0.0, 0.0, 1.0)", "(0.0, 1.0, 0.0)");
        let mut spinning = spinning;
        let post = spinning
            .bodies
            .iter()
            .position(|b| b.body.name == "post")
            .unwrap();
        spinning.bodies[post].body.kind = qamlab_sim::authoring::BodyKind::Kinematic;
        spinning.bodies[post].motion = Some(qamlab_sim::authoring::KinematicMotion {
            spin: Some(Vec3::X),
            sway: None,
        });
        assert!(axis_goals_a_hinge_cannot_reach(&spinning).is_empty());
    }

    #[test]
    fn a_drawn_yaw_that_barely_turns_a_nearly_vertical_direction_is_found() {
        let goal = |direction: &str| {
            topple_with(&format!(
                r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (1.0, 0.0, 0.0), direction: {direction}, tolerance: 0.2, randomize_yaw: Some((min: -1.0, max: 1.0))),"#
            ))
        };
        let warnings = yaws_that_barely_turn(&goal("(0.02, 0.0, 1.0)"));
        assert!(
            warnings.len() == 1
                && warnings[0].contains("turns its direction (0.02, 0, 1) at most 0.034 rad"),
            "{warnings:?}"
        );
        assert!(yaws_that_barely_turn(&goal("(1.0, 0.0, 1.0)")).is_empty());
        // Horizontal, but turned by a narrow range.
        let narrow = topple_with(
            r#""qamlab_sim::authoring::AxisGoal": (name: "fallen", body: "cylinder", axis: (0.0, 0.0, 1.0), direction: (1.0, 0.0, 0.0), tolerance: 0.4, randomize_yaw: Some((min: -0.05, max: 0.05))),"#,
        );
        let warnings = yaws_that_barely_turn(&narrow);
        assert!(
            warnings.len() == 1 && warnings[0].contains("as the range is narrow"),
            "{warnings:?}"
        );
    }

    const CUBE_ON_PLATE: &str = include_str!("../../assets/tasks/examples/cube-on-plate.scn.ron");

    #[test]
    fn a_riding_target_whose_frame_starts_anywhere_unobserved_is_warned_of() {
        assert_eq!(
            scene_warnings(&TaskScene::from_ron(CUBE_ON_PLATE, "plate").unwrap()),
            Vec::<String>::new()
        );
        let unobserved = CUBE_ON_PLATE.replacen("GoalPosition(goal: \"cube_goal\"),", "", 1);
        let scene = TaskScene::from_ron(&unobserved, "unobserved").unwrap();
        assert_eq!(
            unobserved_riding_goals(&scene),
            [("cube_goal", "plate", "starts somewhere new at each reset")]
        );
        let warnings = scene_warnings(&scene);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("goal \"cube_goal\"'s target rides on \"plate\""),
            "{warnings:?}"
        );
        // The plate observed instead: an agent can tell where its target is.
        let plate = unobserved.replacen(
            "Position(frame: \"cube\"),",
            "Position(frame: \"cube\"), Position(frame: \"plate\"),",
            1,
        );
        let scene = TaskScene::from_ron(&plate, "plate observed").unwrap();
        assert_eq!(scene_warnings(&scene), Vec::<String>::new());
    }

    #[test]
    fn two_targets_riding_on_one_body_too_far_apart_for_one_frame_are_found() {
        // A second goal on the cube, riding on the plate 30 cm from the first: never both at once.
        let second = r#"14: (components: {"qamlab_sim::authoring::Goal": (name: "far", frame: "cube", target: (0.3, 0.0, 0.025), tolerance: 0.04, relative_to: Some("plate"))}),
    13: ("#;
        let text = CUBE_ON_PLATE.replacen("    13: (", second, 1);
        let warnings = scene_warnings(&TaskScene::from_ron(&text, "two").unwrap());
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("goals \"far\" and \"cube_goal\" both need \"cube\" at their targets, which lie 0.3 m")),
            "{warnings:?}"
        );
        // 6 cm apart: within both tolerances together.
        let near = text.replacen("target: (0.3, 0.0, 0.025)", "target: (0.06, 0.0, 0.025)", 1);
        let warnings = scene_warnings(&TaskScene::from_ron(&near, "near").unwrap());
        assert!(
            !warnings.iter().any(|w| w.contains("both need")),
            "{warnings:?}"
        );
    }

    /// A button: a cap on a slide pointing down (limits 0 to 2 cm) with spring SPRING, pressed by a finger on a slide
    /// above it, and a joint goal GOAL on the cap's slide.
    const BUTTON: &str = r#"(resources: {}, entities: {
      1: (components: {
        "qamlab_sim::authoring::TaskSettings": (name: "button", episode_length: 100, control_dt: 0.05, substeps: 5,
          solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: SuccessMinusOne),
        "qamlab_sim::authoring::ActionSpace": (actuators: [(name: "push", joints: ["finger_z"],
          control: PositionAbsolute(at_min: 0.0, at_max: 0.08), range: (min: -1.0, max: 1.0), stiffness: 400.0,
          damping: 40.0, max_force: 50.0)]),
        "qamlab_sim::authoring::ObservationSpace": (sensors: [JointPosition(joint: "press")]),
      }),
      2: (components: {"qamlab_sim::authoring::Body": (name: "base", kind: Fixed, translation: (0.0, 0.0, 0.0),
        rotation: (0.0, 0.0, 0.0, 1.0))}),
      3: (components: {
        "qamlab_sim::authoring::Body": (name: "cap", kind: Dynamic, translation: (0.0, 0.0, 0.05),
          rotation: (0.0, 0.0, 0.0, 1.0)),
        "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.02, 0.02, 0.01)), density: 500.0,
          friction: 0.5),
        "qamlab_sim::authoring::Joint": (name: "press", parent: "base", child: "cap",
          kind: Prismatic(axis: (0.0, 0.0, -1.0)), anchor: (0.0, 0.0, 0.05), limits: Some((min: 0.0, max: 0.02)),
          spring: SPRING),
      }),
      4: (components: {
        "qamlab_sim::authoring::Body": (name: "finger", kind: Dynamic, translation: (0.0, 0.0, 0.15),
          rotation: (0.0, 0.0, 0.0, 1.0), gravity_scale: 0.0),
        "qamlab_sim::authoring::Collider": (shape: Ball(radius: 0.01), density: 1000.0, friction: 0.5),
        "qamlab_sim::authoring::Joint": (name: "finger_z", parent: "base", child: "finger",
          kind: Prismatic(axis: (0.0, 0.0, -1.0)), anchor: (0.0, 0.0, 0.15), limits: Some((min: 0.0, max: 0.08))),
      }),
      5: (components: {"qamlab_sim::authoring::JointGoal": (name: "pressed", joint: "press", target: GOAL,
        tolerance: 0.002)}),
    })"#;

    fn button_warnings(spring: &str, goal: &str) -> Vec<String> {
        let text = BUTTON.replace("SPRING", spring).replace("GOAL", goal);
        springs_sagging(&TaskScene::from_ron(&text, "button").unwrap())
    }

    #[test]
    fn a_sprung_slide_gravity_holds_far_from_its_rest_is_warned_of() {
        // 400: 9.81 / 400 = 2.45 cm, past the 2 cm stroke: the cap sits on its bottom stop, and a goal there holds.
        let weak = button_warnings("Some((stiffness: 400.0, damping: 40.0))", "0.019");
        assert_eq!(weak.len(), 1, "{weak:?}");
        assert!(
            weak[0].starts_with(
                "joint \"press\"'s spring (stiffness 400) is held by gravity 0.02 m from where it puts the joint: it \
                 settles at 0.02 rather than 0"
            ) && weak[0].contains("joint goal \"pressed\" holds there by itself")
                && weak[0].contains("past 9810"),
            "{weak:?}"
        );
        // 2000: 4.9 mm, and the goal far from it.
        let firm = button_warnings("Some((stiffness: 2000.0, damping: 90.0))", "0.019");
        assert!(
            firm.len() == 1 && !firm[0].contains("holds there"),
            "{firm:?}"
        );
        // Stiff enough (under 1 mm), or preloaded against the top stop by more than gravity's pull: nothing.
        assert!(button_warnings("Some((stiffness: 20000.0, damping: 300.0))", "0.019").is_empty());
        assert!(
            button_warnings(
                "Some((stiffness: 2000.0, damping: 90.0, rest: -0.01))",
                "0.019"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_sway_in_degrees_or_millimetres_is_warned_of() {
        let sway = |motion: &str| {
            let text = builtin_text("cube-single")
                .replacen("name: \"table\", kind: Fixed", "name: \"table\", kind: Kinematic", 1)
                .replacen(
                    "\"qamlab_sim::authoring::Collider\"",
                    &format!("\"qamlab_sim::authoring::KinematicMotion\": (sway: Some({motion})), \"qamlab_sim::authoring::Collider\""),
                    1,
                );
            motions_in_other_units(&TaskScene::from_ron(&text, "swaying").unwrap())
        };
        assert!(sway("(amplitude: (0.05, 0.0, 0.0), period: 2.0, phase: -1.5708)").is_empty());
        let degrees = sway("(amplitude: (0.05, 0.0, 0.0), period: 2.0, phase: -90.0)");
        assert!(
            degrees.len() == 1 && degrees[0].contains("degrees written? -90° is -1.5708 rad"),
            "{degrees:?}"
        );
        let millimetres = sway("(amplitude: (50.0, 0.0, 0.0), period: 2.0)");
        assert!(
            millimetres.len() == 1
                && millimetres[0].contains("millimetres written? 50 mm is 0.05 m"),
            "{millimetres:?}"
        );
    }
}
