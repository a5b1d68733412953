//! Loading checks a scene and names the file, the entity and the field of every mistake.

mod common;

use common::*;
use qamlab_sim::prelude::*;

/// Loads the cube-single text with `from` replaced by `to` (which must occur) under the name `bad.scn.ron`.
fn load_edited(from: &str, to: &str) -> Result<TaskScene, SimError> {
    let text = cube_single_text();
    assert!(
        text.contains(from),
        "test edit target `{from}` not in the scene"
    );
    TaskScene::from_ron(&text.replacen(from, to, 1), "bad.scn.ron")
}

/// The message of the error that loading the cube-single text edited as `load_edited` does must give.
fn edit_error(from: &str, to: &str) -> String {
    load_edited(from, to).unwrap_err().to_string()
}

/// The message of `err`, which must be a `Parse` error.
fn parse_message(err: SimError) -> String {
    let msg = err.to_string();
    assert!(matches!(err, SimError::Parse { .. }), "{msg}");
    msg
}

/// An `Invalid` error's `(file, entity, field, message)`; any other error fails the test.
fn invalid_parts(err: &SimError) -> (&str, &str, &str, &str) {
    match err {
        SimError::Invalid {
            file,
            entity,
            field,
            message,
        } => (file, entity, field, message),
        other => panic!("expected an Invalid error, got {other}"),
    }
}

#[test]
fn builtin_scene_loads() {
    let scene = cube_single();
    assert_eq!(scene.settings.name, "cube-single");
    assert_eq!(scene.actuators.len(), 5);
    let spec = EnvSpec::new(&scene, 200);
    assert_eq!(spec.obs_dim, 28);
    // One block a sensor, named so that a joint's position and velocity (say) are told apart.
    let blocks: Vec<(&str, std::ops::Range<usize>)> = spec
        .obs_blocks
        .iter()
        .map(|(name, range)| (name.as_str(), range.clone()))
        .collect();
    assert_eq!(
        blocks[..5],
        [
            ("pinch.position", 0..3),
            ("palm.yaw", 3..5),
            ("pinch.velocity", 5..8),
            ("yaw.velocity", 8..9),
            ("gripper.fraction", 9..10)
        ]
    );
    assert_eq!(blocks.last().unwrap().1.end, 28);
}

#[test]
fn unknown_component_type_is_named() {
    let err = load_edited(
        "qamlab_sim::authoring::Site",
        "qamlab_sim::authoring::Sight",
    )
    .unwrap_err();
    let msg = parse_message(err);
    assert!(
        msg.contains("bad.scn.ron") && msg.contains("entity 8") && msg.contains("Sight"),
        "{msg}"
    );
    // The error lists what a scene can use.
    assert!(
        msg.contains("authoring::{ActionSpace, AxisGoal, Body, Collider,")
            && !msg.contains("(stack: )"),
        "{msg}"
    );
}

#[test]
fn unknown_field_is_named() {
    let err = load_edited(
        "name: \"cube\", kind: Dynamic,",
        "name: \"cube\", colour: 3.0, kind: Dynamic,",
    )
    .unwrap_err();
    let msg = parse_message(err);
    assert!(
        msg.contains("bad.scn.ron") && msg.contains("entity 11") && msg.contains("colour"),
        "{msg}"
    );
}

#[test]
fn text_after_the_scene_and_repeated_ids_are_refused() {
    let text = cube_single_text();
    // A second scene pasted after the first would otherwise be dropped unread.
    let err = TaskScene::from_ron(&format!("{text}\n{text}"), "twice.scn.ron").unwrap_err();
    let msg = parse_message(err);
    assert!(
        msg.contains("twice.scn.ron") && msg.contains("after the scene"),
        "{msg}"
    );
    // Errors name entities by id, so an id used twice is refused.
    let err = edit_error("    12: (", "    11: (");
    assert!(
        err.contains("entity 11") && err.contains("used twice"),
        "{err}"
    );
    // Entity ids start at 1.
    let err = edit_error("    12: (", "    0: (");
    assert!(
        err.ends_with(": not an entity id: entity ids are whole numbers from 1")
            && err.contains("entity 0"),
        "{err}"
    );
    // A byte-order mark, as some editors write, is not an error.
    TaskScene::from_ron(&format!("\u{feff}{text}"), "bom.scn.ron").unwrap();
}

#[test]
fn a_flat_convex_hull_is_refused() {
    let cube = "shape: Cuboid(half_extents: (0.02, 0.02, 0.02))";
    // Four corners of a square: Rapier builds a hull of no volume, a body of no mass that never moves.
    let flat = "shape: ConvexHull(points: [(0.0, 0.0, 0.0), (0.02, 0.0, 0.0), (0.0, 0.02, 0.0), (0.02, 0.02, 0.0)])";
    let err = edit_error(cube, flat);
    assert!(
        err.contains("Collider.shape.points") && err.contains("non-coplanar"),
        "{err}"
    );
    // Lifting one corner by a millimetre gives a tetrahedron-like hull, which loads.
    let solid = flat.replacen("(0.02, 0.02, 0.0)", "(0.02, 0.02, 0.001)", 1);
    load_edited(cube, &solid).unwrap();
}

#[test]
fn sensor_naming_a_missing_entity_is_named() {
    let err = load_edited("Position(frame: \"cube\")", "Position(frame: \"cub\")").unwrap_err();
    let (file, entity, field, message) = invalid_parts(&err);
    assert_eq!(file, "bad.scn.ron");
    assert!(
        entity.contains("entity 1") && entity.contains("cube-single"),
        "{entity}"
    );
    assert_eq!(field, "ObservationSpace.sensors[5].frame");
    assert!(message.contains("\"cub\""), "{message}");
}

#[test]
fn joint_naming_a_missing_body_is_named() {
    let err = load_edited(
        "parent: \"palm\", child: \"finger_l\"",
        "parent: \"hand\", child: \"finger_l\"",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("entity 9") && msg.contains("Joint.parent") && msg.contains("\"hand\""),
        "{msg}"
    );
}

#[test]
fn empty_action_space_is_rejected() {
    let text = cube_single_text();
    let start = text.find("actuators: [").unwrap() + "actuators: [".len();
    let end = start + text[start..].find("\n          ],").unwrap();
    let edited = format!("{}{}", &text[..start], &text[end..]);
    let err = TaskScene::from_ron(&edited, "bad.scn.ron").unwrap_err();
    let (_, _, field, message) = invalid_parts(&err);
    assert_eq!(field, "ActionSpace.actuators");
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn range_with_min_above_max_is_named() {
    let err = load_edited(
        "x: Some((min: -0.15, max: 0.15)), y",
        "x: Some((min: 0.15, max: -0.15)), y",
    )
    .unwrap_err();
    let (file, entity, field, message) = invalid_parts(&err);
    assert_eq!(file, "bad.scn.ron");
    assert!(
        entity.contains("entity 11") && entity.contains("\"cube\""),
        "{entity}"
    );
    assert_eq!(field, "RandomizePose.x");
    assert!(message.contains("min 0.15 > max -0.15"), "{message}");
    let err = edit_error(
        "range: (min: -1.0, max: 1.0)",
        "range: (min: 1.0, max: -1.0)",
    );
    assert!(err.contains("ActionSpace.actuators[0].range"), "{err}");
}

#[test]
fn syntax_error_gives_a_position() {
    let err = load_edited("substeps: 5,", "substeps: 5,,").unwrap_err();
    match &err {
        SimError::Parse {
            file, line, entity, ..
        } => {
            assert_eq!(file, "bad.scn.ron");
            assert!(*line > 1);
            assert!(entity.contains("entity 1"), "{entity}");
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn syntax_errors_name_the_field_and_say_how_to_write_it() {
    let carriage = "entity 4 (\"carriage_x\")";
    let cases = [
        // A range without its field names, as one might write a tuple.
        (
            "limits: Some((min: -0.3, max: 0.3))",
            "limits: Some((-0.3, 0.3))",
            "field `Joint.limits`",
            "written by name, like `(min: -0.6, max: 0.6)`",
        ),
        (
            "limits: Some((min: -0.3, max: 0.3))",
            "limits: (min: -0.3, max: 0.3)",
            "field `Joint.limits`",
            "`Some(value)` or `None`",
        ),
        (
            "kind: Dynamic,",
            "kind: \"Dynamic\",",
            "field `Body.kind`",
            "written bare",
        ),
        (
            "kind: Prismatic(axis: (1.0, 0.0, 0.0))",
            "kind: Prismatic(axis: (1.0, 0.0, \"z\"))",
            "field `Joint.kind.axis`",
            "",
        ),
        // A variant's fields written by position: how they are written, with their names.
        (
            "kind: Prismatic(axis: (1.0, 0.0, 0.0))",
            "kind: Prismatic((1.0, 0.0, 0.0))",
            "field `Joint.kind`",
            "`Prismatic`'s fields are written by name: `Prismatic(axis: …)`",
        ),
        // An unquoted name: the entity is still named by it (not by its joint's name, "x").
        (
            "name: \"carriage_x\", kind: Dynamic",
            "name: carriage_x, kind: Dynamic",
            "field `Body.name`",
            "written in double quotes",
        ),
        // A field's name without its `:` is that field, not the one before it.
        (
            "gravity_scale: 0.0, extra_mass: 1.0,\n        ),\n        \"qamlab_sim::authoring::Joint\": (\n          name: \"x\"",
            "gravity_scale: 0.0, extra_mass 1.0,\n        ),\n        \"qamlab_sim::authoring::Joint\": (\n          name: \"x\"",
            "field `Body.extra_mass`",
            "Expected colon: a field's name or a key is followed by `:`, like `extra_mass: …`",
        ),
        // A field's name in quotes is no component left open.
        (
            "name: \"carriage_x\", kind: Dynamic",
            "name: \"carriage_x\", \"kind\": Dynamic",
            "field `Body.kind`",
            "Expected identifier",
        ),
        // A component's closing `)` left out: the next component is no field of it.
        (
            "gravity_scale: 0.0, extra_mass: 1.0,\n        ),\n        \"qamlab_sim::authoring::Joint\"",
            "gravity_scale: 0.0, extra_mass: 1.0,\n        \"qamlab_sim::authoring::Joint\"",
            "component `Body`",
            "the component `Body` opened at 70:40 is not closed; a `)` is missing before this next component",
        ),
    ];
    for (from, to, field, says) in cases {
        let err = load_edited(from, to).unwrap_err();
        let msg = parse_message(err);
        assert!(
            msg.contains(&format!("{carriage}: {field}")) && msg.contains(says),
            "{to}: {msg}"
        );
        assert!(!msg.contains("(stack:") && !msg.contains("r#"), "{msg}");
    }
    let err = edit_error("substeps: 5,", "substeps: 5");
    assert!(
        err.contains(
            "field `TaskSettings.solver_iterations`: Expected comma: a comma is missing before"
        ),
        "{err}"
    );
    let err = edit_error("episode_length: 200,", "episode_length: 200.5,");
    assert!(
        err.contains(
            "field `TaskSettings.episode_length`: expected a whole number: this field takes no fraction"
        ),
        "{err}"
    );
    let err = edit_error("episode_length: 200,", "episode_length: \"200\",");
    assert!(
        err.contains("entity 1 (\"cube-single\"): field `TaskSettings.episode_length`"),
        "{err}"
    );
    let err = edit_error("Position(frame: \"pinch\")", "Position(\"pinch\")");
    assert!(
        err.contains("field `ObservationSpace.sensors[0]`: Expected identifier: `Position`'s fields are written by name: `Position(frame: …)`"),
        "{err}"
    );
    for (to, says) in [
        ("episode_length: -200,", "a whole number of 0 or more"),
        (
            "episode_length: 5000000000,",
            "a whole number up to 4294967295",
        ),
    ] {
        let err = edit_error("episode_length: 200,", to);
        assert!(
            err.contains("Integer is out of bounds: this field takes") && err.contains(says),
            "{err}"
        );
    }
    // The last component's `)` left out: a field's name was expected where the components' `}` closes.
    let err = edit_error(
        "min_distance_from: [(\"cube\", 0.08)],\n        ),",
        "min_distance_from: [(\"cube\", 0.08)],\n",
    );
    assert!(
        err.ends_with(
            "component `RandomizeTarget`: Expected identifier: found `}` where a field's name was expected: a `)` \
             is probably missing before it, to close the `(` opened at 170:51"
        ),
        "{err}"
    );
    // A comment written as TOML's and YAML's, at the top and among the fields.
    for (from, to) in [
        ("(\n  resources", "# cube-single\n(\n  resources"),
        (
            "episode_length: 200,",
            "# the length\n          episode_length: 200,",
        ),
        // Right after an opening bracket, where RON reports the end of the bracket's line.
        (
            "\"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
            "\"qamlab_sim::authoring::Body\": (\n          # the table\n          name: \"table\"",
        ),
        (
            "components: {\n        \"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
            "components: {\n        # the table\n        \"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
        ),
        (
            "components: {\n        \"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
            "components: {\n\n        # the table\n        \"qamlab_sim::authoring::Body\": (\n          \
             name: \"table\"",
        ),
    ] {
        let err = edit_error(from, to);
        assert!(
            err.ends_with("`#` starts no comment in RON: comments are written `// …` or `/* … */`"),
            "{err}"
        );
    }
    // A bracket where a component's name was expected is no name left unquoted.
    let err = edit_error(
        "extra_mass: 0.3,\n        ),",
        "extra_mass: 0.3,\n        ),\n        ),",
    );
    assert!(
        err.ends_with(
            "Expected string: found `)` where a name in double quotes was expected: is it one too many, or is a \
             `}` missing before it?"
        ),
        "{err}"
    );
    let err = edit_error(
        "components: {\n        \"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
        "components: {\n        (\n        \"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
    );
    assert!(
        err.ends_with(
            "Expected string: found `(` where a name in double quotes was expected: is a name missing before it?"
        ),
        "{err}"
    );
    let err = edit_error(
        "\"qamlab_sim::authoring::Body\": (\n          name: \"table\"",
        "qamlab_sim::authoring::Body: (\n          name: \"table\"",
    );
    assert!(
        err.ends_with("Expected string: a name is written in double quotes, like `name: \"arm\"`"),
        "{err}"
    );
    let err = TaskScene::from_ron("// nothing but a comment\n", "empty.scn.ron")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty.scn.ron:1:1: scene: the file is empty"),
        "{err}"
    );
    // A file cut short says so, and where the innermost bracket left open began.
    let text = cube_single_text();
    let cut = &text[..text.find("limits: Some((min: -0.3").unwrap() + 12];
    let err = TaskScene::from_ron(cut, "cut.scn.ron")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.scn.ron:") && err.contains("brackets open") && err.contains("cut short"),
        "{err}"
    );
}

#[test]
fn a_field_written_twice_is_refused() {
    // The deserializer alone would keep the last value without a word.
    let err = load_edited(
        "episode_length: 200,",
        "episode_length: 200, episode_length: 100,",
    )
    .unwrap_err();
    match &err {
        SimError::Parse {
            line,
            entity,
            message,
            ..
        } => {
            assert_eq!(*line, 12);
            assert!(entity.contains("TaskSettings.episode_length"), "{entity}");
            assert!(message.contains("written twice (first at 12:"), "{message}");
        }
        other => panic!("wrong error: {other}"),
    }
    // The same field name in two structs, or in two items of a list, is no repeat.
    cube_single();
}

#[test]
fn missing_file_is_an_error() {
    let err = TaskScene::from_file("/nonexistent/x.scn.ron").unwrap_err();
    assert!(
        matches!(err, SimError::Io { .. }) && err.to_string().contains("/nonexistent/x.scn.ron")
    );
}

#[test]
fn bad_actions_are_errors_naming_env_and_index() {
    let scene = cube_single();
    let mut env = BatchedEnv::new(&scene, 3, EnvOptions::default()).unwrap();
    assert!(matches!(env.step(&[0.0; 15]), Err(SimError::NotReset)));
    env.reset(&[1, 2, 3]).unwrap();
    let mut actions = vec![0.0; 15];
    actions[2 * 5 + 3] = f32::NAN;
    match env.step(&actions).unwrap_err() {
        SimError::ActionValue {
            env, index, name, ..
        } => assert_eq!((env, index, name.as_str()), (2, 3, "dyaw")),
        other => panic!("wrong error: {other}"),
    }
    actions[2 * 5 + 3] = 0.0;
    actions[5 + 4] = 1.5;
    let err = env.step(&actions).unwrap_err();
    assert!(
        err.to_string().contains("env 1, action 4 (`gripper`)"),
        "{err}"
    );
    assert!(matches!(
        env.step(&[0.0; 14]),
        Err(SimError::ActionShape {
            expected: 15,
            got: 14,
            ..
        })
    ));
    assert!(matches!(
        env.reset(&[1, 2]),
        Err(SimError::SeedCount {
            expected: 3,
            got: 2
        })
    ));
    assert!(matches!(
        BatchedEnv::new(&scene, 0, EnvOptions::default()),
        Err(SimError::NoEnvs)
    ));
}

#[test]
fn missing_required_field_is_named() {
    // Each edit leaves a field out that has no default; the cube's body also leaves out fields that have one.
    // The entity is named as in every other error, by id and name.
    for (from, to, entity, field) in [
        (
            "name: \"cube\", kind: Dynamic,",
            "name: \"cube\",",
            "entity 11 (\"cube\")",
            "Body.kind",
        ),
        (
            ", tolerance: 0.04)",
            ")",
            "entity 12 (\"cube_goal\")",
            "Goal.tolerance",
        ),
        (
            "Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0",
            "Cuboid(), density: 1000.0",
            "entity 11 (\"cube\")",
            "Collider.shape.half_extents",
        ),
        (
            "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), yaw",
            "x: Some((min: -0.15)), y: Some((min: -0.15, max: 0.15)), yaw",
            "entity 11 (\"cube\")",
            "RandomizePose.x.max",
        ),
        (
            // `solver_passes` (left out, it has a default) must not take the blame for `reward`, an enum
            // that nothing can stand in for.
            "reward: SuccessMinusOne,",
            "",
            "entity 1 (\"cube-single\")",
            "TaskSettings.reward",
        ),
        (
            "control: PositionDelta(scale: 0.05), range: (min: -1.0, max: 1.0),",
            "range: (min: -1.0, max: 1.0),",
            "entity 1 (\"cube-single\")",
            "ActionSpace.actuators[0].control",
        ),
    ] {
        let err = load_edited(from, to).unwrap_err();
        let msg = err.to_string();
        let (_, e, f, _) = invalid_parts(&err);
        assert!(
            e == entity && f == field && msg.contains("is missing"),
            "{msg}"
        );
    }
    // Fields with defaults may be left out.
    load_edited("gravity_scale: 0.0, extra_mass: 1.0,", "extra_mass: 1.0,").unwrap();
}

#[test]
fn scene_without_a_goal_is_rejected() {
    let text = cube_single_text();
    let start = text.find("    12: (").expect("the goal entity");
    let end = start + text[start..].find("\n    ),\n").expect("its end") + "\n    ),\n".len();
    let no_goal = format!("{}{}", &text[..start], &text[end..])
        .replace("GoalPosition(goal: \"cube_goal\"), ", "");
    let err = TaskScene::from_ron(&no_goal, "bad.scn.ron").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, SimError::Invalid { field, .. } if field == "Goal")
            && msg.contains("at least one"),
        "{msg}"
    );
}

#[test]
fn ambiguous_or_inert_authoring_is_refused() {
    // A goal named like a body: `min_distance_from` could mean either.
    let err = load_edited("(name: \"cube_goal\",", "(name: \"cube\",").unwrap_err();
    let (_, _, field, message) = invalid_parts(&err);
    assert!(
        field == "Goal.name" && message.contains("a name of its own"),
        "{err}"
    );
    for (from, to, says) in [
        // A zero scale makes an actuator ignore its action.
        (
            "PositionDelta(scale: 0.05)",
            "PositionDelta(scale: 0.0)",
            "non-zero",
        ),
        // A goal on a fixed body can never change.
        (
            "frame: \"cube\", target:",
            "frame: \"table\", target:",
            "\"table\" is a fixed body",
        ),
        // Nor can one on a kinematic body, which nothing in the scene moves.
        (
            "name: \"cube\", kind: Dynamic",
            "name: \"cube\", kind: Kinematic",
            "\"cube\" is a kinematic body",
        ),
        // A goal and a task need names.
        ("name: \"cube_goal\"", "name: \"\"", "Goal.name"),
        ("name: \"cube-single\"", "name: \"\"", "TaskSettings.name"),
        // A sensor of a body's orientation given a site says so.
        (
            "YawSinCos(body: \"palm\")",
            "YawSinCos(body: \"pinch\")",
            "\"pinch\" is a site",
        ),
    ] {
        let err = edit_error(from, to);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn settings_out_of_bounds_are_refused() {
    // An extra digit or three would otherwise look like a hang.
    for (from, to, field) in [
        (
            "episode_length: 200,",
            "episode_length: 2000000,",
            "TaskSettings.episode_length",
        ),
        ("substeps: 5,", "substeps: 50000,", "TaskSettings.substeps"),
        (
            "solver_iterations: 4,",
            "solver_iterations: 0,",
            "TaskSettings.solver_iterations",
        ),
        (
            "solver_iterations: 4,",
            "solver_iterations: 4, solver_passes: 0,",
            "TaskSettings.solver_passes",
        ),
    ] {
        let err = load_edited(from, to).unwrap_err();
        assert!(
            matches!(&err, SimError::Invalid { field: f, .. } if f == field)
                && err.to_string().contains("must be from 1 to"),
            "{err}"
        );
    }
}

#[test]
fn a_physics_step_past_a_tenth_of_a_second_is_refused() {
    // 50 where 50 ms was meant: 10 s physics steps, in which every body sleeps after its first step.
    let err = load_edited("control_dt: 0.05,", "control_dt: 50,").unwrap_err();
    let (file, _, field, message) = invalid_parts(&err);
    assert!(
        file == "bad.scn.ron"
            && field == "TaskSettings.control_dt"
            && message.starts_with(
                "the physics step, control_dt / substeps = 50 / 5 = 10 s, must be at most 0.1 s"
            )
            && message.ends_with(
                "raise substeps to 500 or more, or shorten control_dt (control_dt is in seconds: 50 ms is 0.05)"
            ),
        "{err}"
    );
    // Past what substeps can make up for: only a shorter control step.
    let err = edit_error("control_dt: 0.05,", "control_dt: 500,");
    assert!(
        err.contains("shorten control_dt (substeps go up to 1000)"),
        "{err}"
    );
    // At the bound, and a long control step split finely enough, load.
    load_edited("control_dt: 0.05,", "control_dt: 0.5,").unwrap();
    load_edited(
        "control_dt: 0.05,\n          substeps: 5,",
        "control_dt: 50,\n          substeps: 500,",
    )
    .unwrap();
}

#[test]
fn a_physics_step_under_ten_microseconds_is_refused() {
    let err = edit_error("control_dt: 0.05,", "control_dt: 1e-45,");
    assert!(
        err.contains("TaskSettings.control_dt")
            && err.contains(
                "must be at least 0.00001 s: an episode of such steps is over before anything moves"
            ),
        "{err}"
    );
    // At the bound, it loads.
    load_edited("control_dt: 0.05,", "control_dt: 0.00005,").unwrap();
}

#[test]
fn a_gravity_scale_past_the_strongest_gravity_is_refused() {
    let cube = "name: \"cube\", kind: Dynamic,";
    for scale in ["1e30", "-150.0"] {
        let err = edit_error(cube, &format!("{cube} gravity_scale: {scale},"));
        assert!(
            err.contains("Body.gravity_scale")
                && err.contains("m/s^2: it must be at most 1000 m/s^2 (about 100 g)"),
            "{scale}: {err}"
        );
    }
    // 100 g, under the scene's 9.81 m/s^2, is still within the bound.
    load_edited(cube, &format!("{cube} gravity_scale: 100.0,")).unwrap();
}

#[test]
fn a_keep_away_rule_resets_cannot_meet_is_refused() {
    // The cube is drawn within 0.15 of the origin in x and y, so no target in the same square is 0.5 away.
    let err = load_edited(
        "min_distance_from: [(\"cube\", 0.08)]",
        "min_distance_from: [(\"cube\", 0.5)]",
    )
    .unwrap_err();
    let (file, entity, field, message) = invalid_parts(&err);
    assert!(
        file == "bad.scn.ron"
            && entity.contains("12")
            && field == "RandomizeTarget.min_distance_from"
            && message.contains("of 1000 trial resets"),
        "{err}"
    );
    // A rule most draws meet stays: the redraws settle it.
    load_edited(
        "min_distance_from: [(\"cube\", 0.08)]",
        "min_distance_from: [(\"cube\", 0.15)]",
    )
    .unwrap();
}

#[test]
fn a_joint_driven_by_two_actuators_is_refused() {
    // The later command would silently override the earlier one.
    for (from, to, by) in [
        ("joints: [\"x\"]", "joints: [\"x\", \"x\"]", "dx"),
        ("joints: [\"y\"]", "joints: [\"x\"]", "dx"),
    ] {
        let err = load_edited(from, to).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "joint \"x\" is driven by actuator \"{by}\" already"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_randomised_jointed_body_names_the_joint_end() {
    let err = load_edited(
        "gravity_scale: 0.0, extra_mass: 0.3,\n        ),",
        "gravity_scale: 0.0, extra_mass: 0.3,\n        ),\n        \"qamlab_sim::authoring::RandomizePose\": (x: Some((min: -0.1, max: 0.1))),",
    )
    .unwrap_err();
    let (_, _, field, message) = invalid_parts(&err);
    assert!(
        field == "Joint.child" && message.contains("body \"palm\" has a RandomizePose"),
        "{err}"
    );
}

#[test]
fn magnitudes_past_f32_and_motors_that_cannot_act_are_refused() {
    let refused = |from: &str, to: &str, field: &str, says: &str| {
        let err = edit_error(from, to);
        assert!(
            err.contains("bad.scn.ron") && err.contains(field) && err.contains(says),
            "{from} -> {to}: {err}"
        );
    };
    // Draws compute min + (max - min) * u: an infinite width would put inf into the actions or the poses; long
    // before that, float32 physics loses millimetres, and networks see numbers they cannot learn from.
    refused(
        "range: (min: -1.0, max: 1.0),\n             stiffness: 3600.0",
        "range: (min: -3.4e38, max: 3.4e38),\n             stiffness: 3600.0",
        "ActionSpace.actuators[0].range",
        "reaches past 10000",
    );
    refused(
        "x: Some((min: -0.15, max: 0.15))",
        "x: Some((min: -3e38, max: 3e38))",
        "RandomizePose.x",
        "reaches past 10000",
    );
    refused(
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
        "x: Some((min: -1e30, max: 1e30)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
        "RandomizeTarget.x",
        "[-1000000000000000000000000000000, 1000000000000000000000000000000] reaches past 10000",
    );
    refused(
        "offset: (0.0, 0.0, -0.06)",
        "offset: (0.0, 0.0, -2e4)",
        "Site.offset",
        "reaches past 10000",
    );
    // A size too: parry's contact search fails on a box 1e20 m wide.
    refused(
        "half_extents: (0.5, 0.5, 0.05)",
        "half_extents: (1e20, 0.5, 0.05)",
        "Collider.shape.half_extents.x",
        "reaches past 10000: a scene's lengths are metres and its angles radians",
    );
    refused(
        "at_min: 0.0, at_max: 0.044",
        "at_min: -1e30, at_max: 0.044",
        "ActionSpace.actuators[4].control.at_min",
        "reaches past 10000",
    );
    refused(
        "gravity: (0.0, 0.0, -9.81)",
        "gravity: (0.0, 0.0, -1e10)",
        "TaskSettings.gravity",
        "must be at most 1000 m/s^2",
    );
    // Its length overflows, so it would normalise to zero and silently become the x axis.
    refused(
        "Prismatic(axis: (0.0, 1.0, 0.0))",
        "Prismatic(axis: (0.0, 1e20, 0.0))",
        "Joint.kind.axis",
        "finite length",
    );
    refused(
        "limits: Some((min: -0.3, max: 0.3))",
        "limits: Some((min: 0.1, max: 0.3))",
        "Joint.limits",
        "excludes 0",
    );
    refused(
        "max_force: 1000.0",
        "max_force: 0.0",
        "ActionSpace.actuators[0].max_force",
        "could exert no force",
    );
    refused(
        "stiffness: 3600.0",
        "stiffness: 0.0",
        "ActionSpace.actuators[0].stiffness",
        "position control drives its joints through the motor's stiffness",
    );
    refused(
        "name: \"carriage_x\", kind: Dynamic",
        "name: \"carriage_x\", kind: Kinematic",
        "ActionSpace.actuators[0].joints[0]",
        "neither is Dynamic",
    );
}

#[test]
fn an_observation_past_f32_stops_the_env_naming_it() {
    // Loading refuses a site so far away; the physics can still carry a value there, as this one, moved after
    // loading, does.
    let mut scene = TaskScene::from_ron(&cube_single_text(), "far.scn.ron").unwrap();
    assert!(scene.move_site_unchecked("pinch", bevy::math::Vec3::new(3.0e38, 3.0e38, 0.0)));
    let mut env = BatchedEnv::new(&scene, 2, EnvOptions::default()).unwrap();
    // Finite at reset, its velocity overflows once the palm turns.
    env.reset(&[0, 1]).unwrap();
    let mut state = 7;
    let err = (0..50)
        .find_map(|_| env.step(&random_actions(&mut state, 10)).err())
        .expect("the observations stayed finite")
        .to_string();
    assert!(
        err.starts_with("env 0, observation ")
            && err.contains("(`pinch.")
            && err.contains("left f32's range"),
        "{err}"
    );
}

#[test]
fn a_name_not_found_says_what_was_meant() {
    let cases = [
        // A typo: the closest name.
        (
            "parent: \"gantry\"",
            "parent: \"gantri\"",
            "field `Joint.parent`: no body named \"gantri\": did you mean \"gantry\"?",
        ),
        // Far from every name: the names there are.
        (
            "parent: \"gantry\"",
            "parent: \"frame\"",
            "no body named \"frame\": the names are \"table\", \"gantry\", \"carriage_x\"",
        ),
        // An entity id where a name belongs.
        (
            "parent: \"gantry\"",
            "parent: \"3\"",
            "no body named \"3\": a scene refers to things by their `name`, not by entity id",
        ),
        (
            "Position(frame: \"cube\")",
            "Position(frame: \"Cube\")",
            "no body or site named \"Cube\": did you mean \"cube\"?",
        ),
        // An invisible character, written out: the two names would read alike.
        (
            "Position(frame: \"cube\")",
            "Position(frame: \"cu\u{200b}be\")",
            "no body or site named \"cu\\u{200b}be\": did you mean \"cube\"?",
        ),
    ];
    for (from, to, says) in cases {
        let err = edit_error(from, to);
        assert!(err.contains(says), "{to}: {err}");
    }
    // No guess where several names are as near ("w" is one edit from "x", "y" and "z"), or the name is all edit.
    let err = edit_error("joints: [\"x\"]", "joints: [\"w\"]");
    assert!(
        err.contains("no joint named \"w\": the names are \"x\", \"y\", \"z\""),
        "{err}"
    );
    // A missing name in a RelativePosition is named as missing before `from == to` is judged.
    let err = edit_error(
        "RelativePosition(from: \"pinch\", to: \"cube\")",
        "RelativePosition(from: \"nope\", to: \"nope\")",
    );
    assert!(err.contains("no body or site named \"nope\""), "{err}");
    // A body keeping away from itself.
    let err = edit_error(
        "yaw: Some((min: -3.1416, max: 3.1416)),\n        ),",
        "yaw: Some((min: -3.1416, max: 3.1416)), min_distance_from: [(\"cube\", 0.1)],\n        ),",
    );
    assert!(err.contains("a body cannot keep away from itself"), "{err}");
}

#[test]
fn two_joints_between_one_pair_of_bodies_are_refused() {
    // Joint "y" given joint "x"'s ends, as a copied joint whose ends were not changed.
    let err = edit_error(
        "name: \"y\", parent: \"carriage_x\", child: \"carriage_y\"",
        "name: \"y\", parent: \"carriage_x\", child: \"gantry\"",
    );
    assert!(
        err.contains(
            "field `Joint.child`: joint \"x\" already joins \"carriage_x\" and \"gantry\""
        ),
        "{err}"
    );
}

#[test]
fn a_relative_position_of_a_frame_to_itself_is_refused() {
    let err = edit_error(
        "RelativePosition(from: \"pinch\", to: \"cube\")",
        "RelativePosition(from: \"cube\", to: \"cube\")",
    );
    assert!(
        err.contains("field `ObservationSpace.sensors[")
            && err.contains(".to`: is \"cube\", as `from` is"),
        "{err}"
    );
}

#[test]
fn a_component_a_typo_away_gets_the_one_meant() {
    let msg = edit_error(
        "qamlab_sim::authoring::Goal\"",
        "qamlab_sim::authoring::Goals\"",
    );
    assert!(
        msg.contains("did you mean `qamlab_sim::authoring::Goal`?"),
        "{msg}"
    );
}

#[test]
fn a_vector_or_range_written_wrongly_gets_how_it_is_written() {
    let msg = edit_error("gravity: (0.0, 0.0, -9.81)", "gravity: -9.81");
    assert!(
        msg.contains("`TaskSettings.gravity`") && msg.contains("a vector is written `(x, y, z)`"),
        "{msg}"
    );
    // A required range written as an optional one.
    let msg = edit_error(
        "range: (min: -1.0, max: 1.0)",
        "range: Some((min: -1.0, max: 1.0))",
    );
    assert!(
        msg.contains("range`")
            && msg.contains(
                "this field is required, not optional: write its value without `Some(..)`"
            ),
        "{msg}"
    );
    // An optional one written with `Some` twice: once is right.
    let msg = edit_error(
        "limits: Some((min: -0.3, max: 0.3))",
        "limits: Some(Some((min: -0.3, max: 0.3)))",
    );
    assert!(
        msg.contains("`Joint.limits`")
            && msg.contains("`Some(..)` is written once, around the value: `Some(value)`")
            && !msg.contains("not optional"),
        "{msg}"
    );
}

#[test]
fn a_second_task_settings_names_both_entities() {
    let text = cube_single_text();
    // The table (entity 2) given a TaskSettings of its own.
    let start = text
        .find("\"qamlab_sim::authoring::TaskSettings\"")
        .expect("cube-single has settings");
    let end =
        start + text[start..].find("\n        ),").expect("and they end") + "\n        ),".len();
    let settings = &text[start..end];
    let table = "\"qamlab_sim::authoring::Body\": (\n          name: \"table\"";
    let doubled = text.replacen(table, &format!("{settings}\n{table}"), 1);
    assert_ne!(doubled, text, "the edit took");
    let msg = TaskScene::from_ron(&doubled, "bad.scn.ron")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("found 2 (on entity 1 (\"cube-single\"), entity 2 (\"table\"))"),
        "{msg}"
    );
}

#[test]
fn text_that_is_not_utf8_is_placed_by_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.scn.ron");
    std::fs::write(&path, b"(\n  name: \"caf\xe9\",\n)").unwrap();
    let err = TaskScene::from_file(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}:2:13: cannot read task scene: not UTF-8 text",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_dataset_given_for_a_scene_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npz");
    std::fs::write(&path, b"PK\x03\x04\x14\x00\x00\x00\xff\xfe").unwrap();
    let err = TaskScene::from_file(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot read task scene: a zip archive, as a dataset (.npz) is",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_rotation_off_unit_length_is_refused_with_its_unit_form() {
    // A quarter turn about y written to two decimals: 1.0041 long.
    let err = load_edited(
        "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0)",
        "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.71, 0.0, 0.71)",
    )
    .unwrap_err();
    let (file, entity, field, message) = invalid_parts(&err);
    assert_eq!(
        (file, entity, field),
        ("bad.scn.ron", "entity 11 (\"cube\")", "Body.rotation")
    );
    assert!(
        message
            .starts_with("must be a unit quaternion (x, y, z, w) of length 1 within 0.001, got ")
            && message.ends_with(": write (0.0, 0.70711, 0.0, 0.70711), its unit form"),
        "{message}"
    );
    // A value that rounds to 0 is written 0.0, not -0.0.
    let err = edit_error(
        "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0)",
        "translation: (0.0, 0.0, 0.02), rotation: (-0.000001, 0.71, 0.0, 0.71)",
    );
    assert!(
        err.ends_with(": write (0.0, 0.70711, 0.0, 0.70711), its unit form"),
        "{err}"
    );
    // A zero rotation has no unit form to offer.
    let err = edit_error(
        "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0)",
        "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 0.0)",
    );
    assert!(err.ends_with("of length 0"), "{err}");
}

#[test]
fn a_name_with_a_control_character_is_refused() {
    // Names are printed and recorded: a newline or a terminal escape in one would forge lines or colour the terminal.
    for (from, to, field) in [
        (
            "name: \"cube-single\"",
            "name: \"cube\\nsingle\"",
            "TaskSettings.name",
        ),
        (
            "name: \"cube-single\"",
            "name: \"cube\\u{1b}[31m\"",
            "TaskSettings.name",
        ),
    ] {
        let err = load_edited(from, to).unwrap_err();
        let (file, _, at, message) = invalid_parts(&err);
        assert_eq!((file, at), ("bad.scn.ron", field), "{err}");
        assert!(message.contains("control character (U+00"), "{err}");
    }
}
