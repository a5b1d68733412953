//! When the pick-and-place check says a layout cannot be solved: only where no policy could do it, whatever the
//! scene lets the robot push, throw or slide, and never where something in it may float, roll or bounce.

use qamlab_tasks::prelude::*;

/// cube-single's goal target ranges, as the built-in writes them.
const TARGETS: &str =
    "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), min_distance_from";

/// cube-single's cube, as the built-in writes it.
const CUBE: &str =
    "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0),";

/// cube-single's cube's reset randomisation, as the built-in writes it.
const CUBE_DRAWN: &str = "        \"qamlab_sim::authoring::RandomizePose\": (
          x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), yaw: Some((min: -3.1416, max: 3.1416)),
        ),
";

/// `text` with each `(from, to)` edit made once; each must apply.
fn edited(text: &str, edits: &[(&str, &str)]) -> String {
    edits.iter().fold(text.to_string(), |text, (from, to)| {
        assert!(text.contains(from), "the edit `{from}` applies");
        text.replacen(from, to, 1)
    })
}

/// cube-single edited, its goal's target drawn up to `x` along x, its table 140 m across.
fn single(x: f32, edits: &[(&str, &str)]) -> String {
    let targets = format!(
        "x: Some((min: -0.15, max: {x:?})), y: Some((min: -0.15, max: 0.15)), min_distance_from"
    );
    let table = [
        (TARGETS, targets.as_str()),
        (
            "Cuboid(half_extents: (0.5, 0.5, 0.05))",
            "Cuboid(half_extents: (70.0, 70.0, 0.05))",
        ),
    ];
    edited(&edited(BUILTIN_TASKS[0].1, &table), edits)
}

/// `text` with its gantry's motors slowed to a crawl (a control step of 10 s, in the 0.1 s physics steps loading
/// allows, heavily damped): what the robot can throw or slide shrinks to centimetres, leaving what it can push.
fn slow(text: &str) -> String {
    edited(
        text,
        &[
            ("control_dt: 0.05", "control_dt: 10.0"),
            ("substeps: 5,", "substeps: 100,"),
        ],
    )
    .replace("damping: 120.0", "damping: 1000000.0")
    .replace("damping: 100.0", "damping: 1000000.0")
}

/// The oracle's refusal of scene `text`, if any.
fn refusal(text: &str) -> Option<String> {
    let scene = qamlab_sim::TaskScene::from_ron(text, "edited").unwrap();
    let spec = qamlab_sim::EnvSpec::of(&scene);
    Oracle::new(&scene, &spec, OracleConfig::default(), &[0])
        .err()
        .map(|e| e.to_string())
}

/// Whether scene `text` is said to be unsolvable.
fn claimed(text: &str) -> bool {
    refusal(text).is_some_and(|e| e.contains("cannot be solved as laid out"))
}

#[test]
fn a_target_metres_off_is_claimed_only_where_nothing_floats_rolls_or_bounces() {
    assert!(claimed(&single(60.0, &[])));
    let floats = format!("{CUBE} gravity_scale: 0.0,");
    let hull_cube = "shape: ConvexHull(points: [(-0.02, -0.02, -0.02), (0.02, -0.02, -0.02), (-0.02, 0.02, -0.02), \
                     (0.02, 0.02, -0.02), (-0.02, -0.02, 0.02), (0.02, -0.02, 0.02), (-0.02, 0.02, 0.02), \
                     (0.02, 0.02, 0.02)])";
    let chute = "    13: (
      components: {
        \"qamlab_sim::authoring::Body\": (
          name: \"chute\", kind: Fixed, translation: (0.3, 0.3, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        ),
        \"qamlab_sim::authoring::Collider\": (
          shape: ConvexHull(points: [(0.0, 0.0, 0.0), (0.1, 0.0, 0.0), (0.0, 0.1, 0.0), (0.1, 0.1, 0.0),
            (0.0, 0.0, 0.05), (0.0, 0.1, 0.05)]), density: 0.0, friction: 1.0, membership: 1,
        ),
      },
    ),
    12: (
";
    for (why, edits) in [
        // A: a cube without gravity drifts on for ever.
        ("a floating cube", vec![(CUBE, floats.as_str())]),
        // F: a hull may be a wheel.
        (
            "a hull cube",
            vec![("shape: Cuboid(half_extents: (0.02, 0.02, 0.02))", hull_cube)],
        ),
        // O: a fixed hull may be a ramp or a chute.
        ("a fixed hull", vec![("    12: (\n", chute)]),
        (
            "a bouncy table",
            vec![(
                "density: 0.0, friction: 1.0, membership: 1,",
                "density: 0.0, friction: 1.0, restitution: 0.3, membership: 1,",
            )],
        ),
    ] {
        let text = single(60.0, &edits);
        assert!(!claimed(&text), "{why}: {:?}", refusal(&text));
    }
}

#[test]
fn a_hand_that_turns_or_slides_other_ways_is_not_judged() {
    for (why, from, to) in [
        // G: a wrist that slides instead of turning.
        (
            "dyaw sliding",
            "kind: Revolute(axis: (0.0, 0.0, 1.0))",
            "kind: Prismatic(axis: (1.0, 0.0, 0.0))",
        ),
        (
            "a finger that swings",
            "kind: Prismatic(axis: (0.0, -1.0, 0.0))",
            "kind: Revolute(axis: (1.0, 0.0, 0.0))",
        ),
    ] {
        let text = single(60.0, &[(from, to)]);
        assert!(!claimed(&text), "{why}: {:?}", refusal(&text));
    }
}

/// E: fingers that slide 20 cm reach that much farther than where they are authored (and lift the cube higher,
/// to fall farther).
#[test]
fn the_fingers_travel_widens_the_hands_touch() {
    let limits = "limits: Some((min: 0.0, max: 0.044))";
    let wide = "limits: Some((min: 0.0, max: 0.2))";
    let fingers = [(limits, wide), (limits, wide)];
    // Slowed, the bound is 18.69 m past the pinch's reach (0.3 m) with the wide fingers, 16.55 m without.
    assert!(!claimed(&slow(&single(18.0, &fingers))));
    assert!(claimed(&slow(&single(19.5, &fingers))));
    // The narrow fingers as built do not reach as far.
    assert!(claimed(&slow(&single(18.0, &[]))));
}

/// A loose body other than a cube is not judged: a plank may be a ramp (R1: a cube on a plank tilted off a pillar
/// slid 64 m to its target) or a lever; nor is a cube authored tilted.
#[test]
fn a_loose_plank_or_a_tilted_cube_is_not_judged() {
    let plank = |rotation: &str| {
        format!(
            "    13: (
      components: {{
        \"qamlab_sim::authoring::Body\": (
          name: \"plank\", kind: Dynamic, translation: (0.0, 0.25, 0.1), rotation: {rotation},
        ),
        \"qamlab_sim::authoring::Collider\": (
          shape: Cuboid(half_extents: (0.3, 0.05, 0.01)), density: 1000.0, friction: 1.0, membership: 1,
        ),
      }},
    ),
    12: (
"
        )
    };
    // Level, and tilted 25 degrees about y.
    for rotation in ["(0.0, 0.0, 0.0, 1.0)", "(0.0, 0.2164, 0.0, 0.9763)"] {
        let planks = plank(rotation);
        let text = single(60.0, &[("    12: (\n", planks.as_str())]);
        assert!(!claimed(&text), "{rotation}: {:?}", refusal(&text));
    }
    let tilted = "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02), rotation: (0.2164, 0.0, 0.0, 0.9763),";
    let text = single(60.0, &[(CUBE, tilted)]);
    assert!(!claimed(&text), "{:?}", refusal(&text));
}

/// C: the built-in gantry throws a cube it carries at full speed past where it could push it.
#[test]
fn a_target_a_throw_reaches_is_not_claimed() {
    let text = edited(
        BUILTIN_TASKS[0].1,
        &[(
            TARGETS,
            "x: Some((min: -0.15, max: 0.47)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
        )],
    );
    let err = refusal(&text).expect("the script cannot reach 0.47 m");
    assert!(err.contains("has no scripted oracle"), "{err}");
}

/// D: a goal on a site off the cube's origin, where the cube's collider is: the cube starts where the site is.
#[test]
fn a_site_goal_is_judged_from_its_site() {
    let goal = "\"qamlab_sim::authoring::Goal\": (name: \"cube_goal\", frame: \"cube\",";
    let on_site = |site: f32| {
        format!(
            "\"qamlab_sim::authoring::Site\": (name: \"cube_c\", body: \"cube\", offset: ({site:?}, 0.0, 0.0)),\n        \
             \"qamlab_sim::authoring::Goal\": (name: \"cube_goal\", frame: \"cube_c\","
        )
    };
    // The cube's body `origin` m along x, its collider and the goal's site `site` m from it.
    let laid_out = |origin: f32, site: f32| {
        let body = format!(
            "name: \"cube\", kind: Dynamic, translation: ({origin:?}, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0),"
        );
        let collider = format!(
            "shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), offset: ({site:?}, 0.0, 0.0), density: 1000.0,"
        );
        let on_site = on_site(site);
        single(
            0.15,
            &[
                (CUBE_DRAWN, ""),
                (CUBE, body.as_str()),
                (
                    "shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0,",
                    collider.as_str(),
                ),
                (goal, on_site.as_str()),
            ],
        )
    };
    // The origin far off, the cube itself within touch.
    assert!(!claimed(&laid_out(0.8, -0.6)));
    // The origin within touch, the cube itself far off.
    let err = refusal(&laid_out(0.0, 60.0)).unwrap();
    assert!(
        err.starts_with(
            "task `cube-single` cannot be solved as laid out: it needs cube `cube`'s start"
        ) && err.contains("its x spans [60, 60] m"),
        "{err}"
    );
}

/// G1: a ball held by a fixed joint to a small loose box is no part of the robot (the actions move neither): it
/// may roll on past any push, so nothing is claimed. Nor where the gantry's own base is loose, and may shuffle.
#[test]
fn only_the_actuated_chain_is_the_robot() {
    let ball = "    13: (
      components: {
        \"qamlab_sim::authoring::Body\": (
          name: \"weight\", kind: Dynamic, translation: (0.25, 0.0, 0.05), rotation: (0.0, 0.0, 0.0, 1.0),
        ),
        \"qamlab_sim::authoring::Collider\": (
          shape: Cuboid(half_extents: (0.005, 0.005, 0.005)), density: 1000.0, friction: 1.0, membership: 1,
        ),
      },
    ),
    14: (
      components: {
        \"qamlab_sim::authoring::Body\": (
          name: \"ball\", kind: Dynamic, translation: (0.25, 0.0, 0.05), rotation: (0.0, 0.0, 0.0, 1.0),
        ),
        \"qamlab_sim::authoring::Collider\": (
          shape: Ball(radius: 0.05), density: 1000.0, friction: 1.0, membership: 1,
        ),
        \"qamlab_sim::authoring::Joint\": (
          name: \"ball_weight\", parent: \"weight\", child: \"ball\", kind: Fixed, anchor: (0.25, 0.0, 0.05),
        ),
      },
    ),
    12: (
";
    let text = single(60.0, &[("    12: (\n", ball)]);
    assert!(!claimed(&text), "{:?}", refusal(&text));
    let base = "name: \"gantry\", kind: Fixed, translation: (0.0, 0.0, 0.25), rotation: (0.0, 0.0, 0.0, 1.0),";
    let loose = "name: \"gantry\", kind: Dynamic, translation: (0.0, 0.0, 0.25), rotation: (0.0, 0.0, 0.0, 1.0), \
                 extra_mass: 10.0,";
    let text = single(60.0, &[(base, loose)]);
    assert!(!claimed(&text), "{:?}", refusal(&text));
}
