//! [`scene_warnings`]: what a scene may do that loads and runs but is most likely a mistake, said as a warning
//! rather than refused (a scene may mean it).

use bevy::math::{Vec2, Vec3};
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::{BodyKind, Control, JointKind, Range};
use qamlab_sim::scene::SensorDef;

/// The warnings of a loaded scene, each a sentence that names what it is about and what to change: a robot that
/// cannot get where the task needs it (the oracle's checks of reach and of the way to the goal), gravity pointing
/// up, a physics step over 0.04 s (`COARSE_PHYSICS_STEP`), a free body with nothing under it that it can touch
/// where it starts, bodies placed inside each other, a joint anchored far from both its bodies, a goal whose
/// target is drawn at random but never observed, a sensor listed twice, a body that is the child of two joints, an
/// absolute position target beyond its joint's limits.
pub fn scene_warnings(scene: &TaskScene) -> Vec<String> {
    let mut out = Vec::new();
    // A layout the scripted oracle's checks find its robot cannot do (a goal beyond the gantry's reach, walled off
    // from the walker): no policy learns it, so training it is most likely a mistake.
    let spec = qamlab_sim::EnvSpec::of(scene);
    if let Err(e @ crate::TaskError::Unsolvable { .. }) =
        crate::Oracle::new(scene, &spec, crate::OracleConfig::default(), &[0])
    {
        out.push(e.to_string());
    }
    // Resting contact sinks a fraction of a millimetre; deeper means bodies placed inside each other.
    for o in qamlab_sim::physics::overlaps_at_authored_poses(scene, 0.002) {
        let name = |i: usize| &scene.bodies[i].body.name;
        out.push(format!(
            "\"{}\" and \"{}\" overlap by {:.1} cm where the scene places them: the physics pushes them apart at \
             the first step; move them apart, or give them collision groups (`membership` / `filter`) that do not \
             touch",
            name(o.bodies.0),
            name(o.bodies.1),
            100.0 * o.depth
        ));
    }
    let gravity = scene.settings.gravity;
    // Any body gravity pulls: a free one flies off, a jointed one (a pendulum) hangs upwards.
    let pulled = scene
        .bodies
        .iter()
        .any(|b| b.body.kind == BodyKind::Dynamic && b.body.gravity_scale != 0.0);
    if pulled && gravity.z > 0.0 {
        out.push(format!(
            "gravity is ({}, {}, {}): it points up (z is up in a scene), so what it pulls falls upwards; Earth's \
             is (0.0, 0.0, -9.81)",
            gravity.x, gravity.y, gravity.z
        ));
    } else if pulled && gravity.truncate().length() > gravity.z.abs() {
        out.push(format!(
            "gravity is ({}, {}, {}): it points more sideways than down (z is up in a scene); Earth's is (0.0, \
             0.0, -9.81)",
            gravity.x, gravity.y, gravity.z
        ));
    }
    out.extend(angles_in_degrees(scene));
    let s = &scene.settings;
    let step = s.control_dt / s.substeps as f32;
    // Loading refuses steps past `MAX_PHYSICS_STEP`; this warns short of it. A hair of slack: 0.2 / 5 passes.
    if step > COARSE_PHYSICS_STEP * (1.0 + 1e-5) {
        let needed = (s.control_dt / COARSE_PHYSICS_STEP * (1.0 - 1e-5)).ceil();
        out.push(format!(
            "the physics step, control_dt / substeps = {} / {} = {step} s, is over {COARSE_PHYSICS_STEP} s: stiff \
             motors and contacts are integrated coarsely there (cube-single's grasp fails in a fifth to a half of \
             its episodes at 0.05 to 0.06 s); raise substeps to {needed} or more (the built-ins step 0.01 to \
             0.025 s)",
            s.control_dt, s.substeps
        ));
    }
    for fall in unsupported_starts(scene) {
        let (body, at) = (&fall.body, fall.at);
        out.push(match &fall.apart {
            None => format!(
                "\"{body}\" has nothing under it where it can start, at ({}, {}): it falls for the whole \
                 episode; place it over a fixed collider (a table, a floor) or put one under it",
                at.x, at.y
            ),
            Some(under) => format!(
                "\"{body}\" has nothing under it that it can touch where it can start, at ({}, {}): \"{under}\" \
                 is under it, but their collision groups keep them apart, so it falls through for the whole \
                 episode; give them a `membership` and `filter` that touch (each one's filter sharing a bit with \
                 the other's membership)",
                at.x, at.y
            ),
        });
    }
    for (joint, distance) in far_joint_anchors(scene) {
        out.push(format!(
            "joint \"{joint}\"'s anchor is {distance:.2} m from the nearer of its bodies, far beyond the gap \
             between them: the bodies swing about a point far away (is a coordinate off by a factor of ten?)"
        ));
    }
    for goal in unobserved_random_goals(scene) {
        out.push(format!(
            "goal \"{goal}\"'s target is drawn anew at each reset, but no `GoalPosition(goal: \"{goal}\")` sensor \
             observes it: an agent cannot tell where to go; add one to the `ObservationSpace`"
        ));
    }
    for (k, (sensor, _)) in scene.sensors.iter().enumerate() {
        // Said once, at its second listing.
        let earlier = scene.sensors[..k]
            .iter()
            .filter(|(s, _)| s == sensor)
            .count();
        if earlier == 1 {
            // As the file writes it: `JointPosition(joint: "shoulder")`.
            let written = format!("{sensor:?}").replace(" { ", "(").replace(" }", ")");
            out.push(format!(
                "the sensor {written} is listed twice in the ObservationSpace: its values appear twice in every \
                 observation"
            ));
        }
    }
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
    for def in &scene.actuators {
        let Control::PositionAbsolute { at_min, at_max } = def.actuator.control else {
            continue;
        };
        for &j in &def.joints {
            let joint = &scene.joints[j].joint;
            let Some(limits) = joint.limits else { continue };
            let (low, high) = (at_min.min(at_max), at_min.max(at_max));
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
    const HALF_TURN: f32 = std::f32::consts::PI + 1e-3;
    const TURN: f32 = std::f32::consts::TAU + 1e-3;
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
    at: Vec2,
    /// A body whose collider is under it there but that its collision groups keep it from touching.
    apart: Option<String>,
}

/// Free bodies, with the limbs joined to them, that have no collider they can touch under any of them at some
/// place their reset can put them (the corners and the middle of its x and y ranges): under downward gravity they
/// fall without end. Each group once, named by its first free body, with the first such place. (Boxes around
/// colliders, so a wall beside a body is no support, and a tilted table is one.)
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
        let def = &scene.bodies[b];
        let home = def.body.translation.truncate();
        let spans = |authored: f32, range: Option<Range>| {
            range.map_or(vec![authored], |r| r.ends_and_middle().to_vec())
        };
        let (xs, ys) = match &def.randomize {
            Some(r) => (spans(home.x, r.x), spans(home.y, r.y)),
            None => (vec![home.x], vec![home.y]),
        };
        // Under a body: another's collider (not one of the group's) that spans the body's middle and reaches below
        // its underside there (a sloped table's box reaches higher, too), with a centimetre of slack for resting
        // contact. The group stands where any of its bodies does (a walker's feet astride a gap).
        let under = |member: usize, shift: Vec2| {
            let Some((low, high)) = scene.collider_bounds(member) else {
                return Vec::new();
            };
            let at = ((low + high) / 2.0).truncate() + shift;
            // A support within a quarter of the body's width of its middle holds it (tiles with a seam between).
            let reach = (high - low).truncate().max_element() / 4.0;
            (0..scene.bodies.len())
                .filter(|c| !own.contains(c))
                .filter(|&c| {
                    scene.collider_bounds(c).is_some_and(|(lo, hi)| {
                        lo.z <= low.z + 0.01
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
        let places = xs
            .iter()
            .flat_map(|&x| ys.iter().map(move |&y| Vec2::new(x, y)));
        for at in places {
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
                });
                break;
            }
        }
    }
    out
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

/// Goals whose target some reset range moves (min below max) and that no `GoalPosition` sensor observes.
fn unobserved_random_goals(scene: &TaskScene) -> Vec<&str> {
    scene
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
        .map(|(_, def)| def.goal.name.as_str())
        .collect()
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
        assert_eq!(unobserved_random_goals(&scene), ["cube_goal"]);
        let warnings = scene_warnings(&scene);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("goal \"cube_goal\"'s target is drawn anew"),
            "{warnings:?}"
        );
    }
}
