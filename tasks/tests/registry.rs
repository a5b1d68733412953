//! The task registry and the bench entry point.

use qamlab_tasks::prelude::*;

#[test]
fn builtin_tasks_load_by_name() {
    for name in builtin_names() {
        let task = load_task(name).unwrap();
        assert_eq!(task.name, name);
        assert!(task.builtin);
    }
}

#[test]
fn unknown_name_lists_the_known_ones() {
    let err = load_task("cube-dingle").unwrap_err().to_string();
    assert!(
        err.contains("cube-dingle") && err.contains("cube-single"),
        "{err}"
    );
    let err = load_task("cube-singel").unwrap_err().to_string();
    assert!(err.ends_with("did you mean `cube-single`?"), "{err}");
    let err = load_task("walk").unwrap_err().to_string();
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn a_scene_file_named_without_its_extension_is_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-task.scn.ron");
    std::fs::write(&file, BUILTIN_TASKS[0].1).unwrap();
    let named = dir.path().join("my-task");
    let err = load_task(named.to_str().unwrap()).unwrap_err().to_string();
    assert!(
        err.ends_with(&format!("did you mean `{}`?", file.display())),
        "{err}"
    );
}

/// Tests run in `tasks/`, where no `assets/` folder is: the hint names the checkout's example by absolute path.
#[test]
fn an_example_is_suggested_from_any_directory() {
    let err = load_task("pendulum").unwrap_err().to_string();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("assets/tasks/examples/pendulum.scn.ron");
    assert!(
        err.ends_with(&format!("did you mean `{}`?", example.display())),
        "{err}"
    );
}

#[test]
fn a_path_loads_a_user_scene_and_its_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-task.scn.ron");
    let text = BUILTIN_TASKS[0]
        .1
        .replace("name: \"cube-single\"", "name: \"my-task\"");
    std::fs::write(&path, &text).unwrap();
    let task = load_task(path.to_str().unwrap()).unwrap();
    assert_eq!(task.name, "my-task");
    assert!(!task.builtin);

    std::fs::write(&path, text.replace("tolerance: 0.04", "tolerance: -0.04")).unwrap();
    let err = load_task(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("my-task.scn.ron") && err.contains("Goal.tolerance"),
        "{err}"
    );
}

/// `text` with the built-in tasks' table (1 m across) 30 m across.
fn big_table(text: &str) -> String {
    let table = "Cuboid(half_extents: (0.5, 0.5, 0.05))";
    assert!(text.contains(table));
    text.replacen(table, "Cuboid(half_extents: (70.0, 70.0, 0.05))", 1)
}

/// Why the oracle refuses cube-single edited by replacing `from` with `to`.
fn oracle_refusal(from: &str, to: &str) -> String {
    let text = BUILTIN_TASKS[0].1.replacen(from, to, 1);
    let scene = qamlab_sim::TaskScene::from_ron(&text, "edited").unwrap();
    let spec = qamlab_sim::EnvSpec::new(&scene, 200);
    CubeOracle::new(&scene, &spec, OracleConfig::default(), &[0])
        .err()
        .expect("the oracle should refuse the edited task")
        .to_string()
}

#[test]
fn oracle_needs_the_observations_it_reads() {
    let err = oracle_refusal("Position(frame: \"pinch\"),", "");
    // Named as the scene file writes it.
    assert!(
        err.contains("a `Position(frame: \"pinch\")` sensor in the `ObservationSpace`"),
        "{err}"
    );
}

#[test]
fn oracle_needs_actions_over_the_range_it_drives() {
    let err = oracle_refusal(
        "(name: \"dx\", joints: [\"x\"], control: PositionDelta(scale: 0.05), range: (min: -1.0, max: 1.0)",
        "(name: \"dx\", joints: [\"x\"], control: PositionDelta(scale: 0.05), range: (min: -0.5, max: 0.5)",
    );
    assert!(err.contains("`dx`") && err.contains("[-0.5, 0.5]"), "{err}");
}

#[test]
fn oracle_needs_the_controls_it_plans_for() {
    // Twice the step it plans for: it would overshoot and oscillate, silently.
    let err = oracle_refusal(
        "control: PositionDelta(scale: 0.3)",
        "control: PositionDelta(scale: 0.6)",
    );
    assert!(
        err.contains("`dyaw` to be PositionDelta(scale: 0.3)") && err.contains("scale: 0.6"),
        "{err}"
    );
    let err = oracle_refusal(
        "control: PositionAbsolute(at_min: 0.0, at_max: 0.044)",
        "control: Velocity(scale: 0.1)",
    );
    assert!(err.contains("`gripper` to be PositionAbsolute"), "{err}");
}

#[test]
fn a_gantry_without_its_actions_is_told_the_actions_first() {
    // The gantry's sensors, but no yaw action: the sensors the pick-and-place script reads next would lead nowhere.
    let mut text = BUILTIN_TASKS[0].1.to_string();
    let start = text.find("(name: \"dyaw\"").unwrap();
    let end = start + text[start..].find("max_force").unwrap();
    let end = end + text[end..].find("),").unwrap() + 2;
    text.replace_range(start..end, "");
    let scene = qamlab_sim::TaskScene::from_ron(&text, "reach.scn.ron").unwrap();
    let spec = qamlab_sim::EnvSpec::new(&scene, 200);
    let err = Oracle::new(&scene, &spec, OracleConfig::default(), &[0])
        .err()
        .expect("no script drives a gantry that cannot turn")
        .to_string();
    assert!(
        err.ends_with(
            "the oracle needs the built-in gantry's actions, dx, dy, dz, dyaw, gripper in that order, to pick and \
             place with it; this scene's are dx, dy, dz, gripper"
        ),
        "{err}"
    );
}

#[test]
fn oracle_places_each_cube_at_the_one_goal_on_it() {
    let refusal = |from: &str, to: &str| {
        let text = BUILTIN_TASKS[1].1.replacen(from, to, 1);
        let scene = qamlab_sim::TaskScene::from_ron(&text, "edited").unwrap();
        let spec = qamlab_sim::EnvSpec::new(&scene, 500);
        CubeOracle::new(&scene, &spec, OracleConfig::default(), &[0])
            .err()
            .map(|e| e.to_string())
    };
    // Goals pair with cubes by their frames, not by the order of their sensors.
    let swapped = refusal(
        "GoalPosition(goal: \"goal_a\"),\n            GoalPosition(goal: \"goal_b\"),",
        "GoalPosition(goal: \"goal_b\"),\n            GoalPosition(goal: \"goal_a\"),",
    );
    assert_eq!(swapped, None);
    let err = refusal(
        "(name: \"goal_b\", frame: \"cube_b\"",
        "(name: \"goal_b\", frame: \"cube_a\"",
    )
    .expect("two goals on one cube");
    assert!(
        err.contains("cube `cube_a` has `goal_a`, `goal_b`"),
        "{err}"
    );
    let err = refusal(
        "(name: \"goal_b\", frame: \"cube_b\"",
        "(name: \"goal_b\", frame: \"pinch\"",
    )
    .expect("a goal on the hand");
    assert!(err.contains("goal `goal_b` is on `"), "{err}");
}

#[test]
fn the_minimal_example_loads_and_no_oracle_claims_it() {
    // At run time: a test binary from a shared target directory may come from another checkout.
    let path = std::path::Path::new(
        &std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"),
    )
    .join("../assets/tasks/examples/pendulum.scn.ron");
    let task = load_task(path.to_str().unwrap()).unwrap();
    assert_eq!(task.name, "pendulum");
    let spec = qamlab_sim::EnvSpec::new(&task.scene, 200);
    assert_eq!((spec.obs_dim, spec.action_dim), (8, 1));
    let err = Oracle::new(&task.scene, &spec, OracleConfig::default(), &[0])
        .err()
        .expect("no script drives a pendulum")
        .to_string();
    assert!(err.contains("no scripted oracle"), "{err}");
}

#[test]
fn a_directory_is_not_taken_for_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_task(dir.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn bench_reports_every_env_count_and_policy() {
    let task = load_task("cube-single").unwrap();
    let rows = bench_sim(&task, &[1, 3], 5).unwrap();
    let shape: Vec<(&str, usize)> = rows.iter().map(|r| (r.policy, r.envs)).collect();
    assert_eq!(
        shape,
        vec![("random", 1), ("oracle", 1), ("random", 3), ("oracle", 3)]
    );
    assert!(
        rows.iter()
            .all(|r| r.env_steps_per_sec > 0.0 && r.steps == 5)
    );
}

#[test]
fn oracle_needs_cubes_and_goals_within_the_gantrys_reach() {
    for name in ["cube-single", "cube-double"] {
        let task = load_task(name).unwrap();
        let spec = qamlab_sim::EnvSpec::of(&task.scene);
        assert!(Oracle::new(&task.scene, &spec, OracleConfig::default(), &[0]).is_ok());
    }
    // Whether the oracle takes the scene `text`, or why not.
    let oracle_of = |text: &str| {
        let scene = qamlab_sim::TaskScene::from_ron(text, "edited").unwrap();
        let spec = qamlab_sim::EnvSpec::of(&scene);
        Oracle::new(&scene, &spec, OracleConfig::default(), &[0])
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let refusal = |from: &str, to: &str| {
        let text = BUILTIN_TASKS[0].1.replacen(from, to, 1);
        assert_ne!(text, BUILTIN_TASKS[0].1, "the edit `{from}` applies");
        oracle_of(&text).expect_err("the oracle should refuse the edited task")
    };
    let targets =
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), min_distance_from";
    // A target metres out of the pinch's reach, on a table that big: no policy does the task, not only the
    // script. (Give or take how far the robot may push or throw the cube, bounded generously.)
    let far_target =
        "x: Some((min: -0.15, max: 60.0)), y: Some((min: -0.15, max: 0.15)), min_distance_from";
    let err = oracle_of(&big_table(
        &BUILTIN_TASKS[0].1.replacen(targets, far_target, 1),
    ))
    .expect_err("a target 60 m off");
    assert_eq!(
        err,
        "task `cube-single` cannot be solved as laid out: it needs goal `cube_goal`'s target, give or take 38.157 m \
         (its tolerance, and how far past the pinch the robot can push or throw the cube), within the pinch's \
         reach: its x spans [-0.15, 60] m, the pinch reaches [-0.3, 0.3] m (it starts at 0 and the joint of `dx` \
         has limits [-0.3, 0.3]; narrow the range or widen the limits)"
    );
    // Within its tolerance of where the fingers can push a cube, a target can be met, if not by the script, which
    // goes to the target.
    let err = refusal(
        targets,
        "x: Some((min: -0.15, max: 0.33)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
    );
    assert!(
        err.starts_with(
            "task `cube-single` has no scripted oracle: the oracle needs goal `cube_goal`'s target within the \
             pinch's reach: its x spans [-0.15, 0.33] m"
        ),
        "{err}"
    );
    // A fault of the task is named even where the script would stop first, at a target too high to hover over.
    let double = BUILTIN_TASKS[1].1;
    let text = double
        .replacen("target: (0.1, 0.1, 0.02)", "target: (0.1, 0.1, 0.3)", 1)
        .replacen(
            "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)),\n          min_distance_from: [(\"cube_a\", 0.08), (\"cube_b\", 0.08), (\"goal_a\", 0.1)]",
            "x: Some((min: -0.15, max: 120.0)), y: Some((min: -0.15, max: 0.15)),\n          min_distance_from: [(\"cube_a\", 0.08), (\"cube_b\", 0.08), (\"goal_a\", 0.1)]",
            1,
        );
    assert_eq!(
        text.matches("0.3)").count(),
        1 + double.matches("0.3)").count()
    );
    assert!(text.contains("max: 120.0"));
    let err = oracle_of(&text).unwrap_err();
    assert!(
        err.starts_with(
            "task `cube-double` cannot be solved as laid out: it needs goal `goal_b`'s target"
        ),
        "{err}"
    );
    // The script hovers above a cube before it descends: a goal high up puts that out of reach (of the script
    // alone: the target itself is within it); a cube authored in the air falls to the table, and is no reason to
    // refuse.
    let err = refusal("target: (0.1, 0.1, 0.02)", "target: (0.1, 0.1, 0.3)");
    assert_eq!(
        err,
        "task `cube-single` has no scripted oracle: the oracle needs the script's approach 0.08 m above goal \
         `cube_goal`'s target within the pinch's reach: its z spans [0.3, 0.38] m, the pinch reaches [-0.01, 0.34] m \
         (it starts at 0.19 and the joint of `dz` has limits [-0.2, 0.15]; lower the target or widen the limits)"
    );
    let text = BUILTIN_TASKS[0].1.replacen(
        "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02)",
        "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 1.0)",
        1,
    );
    oracle_of(&text).unwrap();
    // A cube that may start out of reach, but also where its goal can be: the script's limit, not the task's.
    let err = refusal(
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), yaw",
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.5, max: 0.15)), yaw",
    );
    assert!(
        err.contains(
            "has no scripted oracle: the oracle needs cube `cube`'s start within the pinch's reach"
        ),
        "{err}"
    );
    // Where the cube may start at a far target, or a tilted table may carry it there, no reach rules it out.
    let may_start_there = BUILTIN_TASKS[0]
        .1
        .replacen(targets, far_target, 1)
        .replacen(
            "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), yaw",
            "x: Some((min: -0.15, max: 60.0)), y: Some((min: -0.15, max: 0.15)), yaw",
            1,
        );
    let tilted = BUILTIN_TASKS[0]
        .1
        .replacen(targets, far_target, 1)
        .replacen(
            "translation: (0.0, 0.0, -0.05), rotation: (0.0, 0.0, 0.0, 1.0)",
            "translation: (0.0, 0.0, -0.05), rotation: (0.0436, 0.0, 0.0, 0.9990)",
            1,
        );
    for text in [may_start_there, tilted] {
        let err = oracle_of(&text).unwrap_err();
        assert!(err.contains("has no scripted oracle"), "{err}");
    }
    // A ball may roll on past any push: however far its target, no reach rules it out.
    let text = BUILTIN_TASKS[0]
        .1
        .replacen(targets, far_target, 1)
        .replacen(
            "shape: Cuboid(half_extents: (0.02, 0.02, 0.02))",
            "shape: Ball(radius: 0.02)",
            1,
        );
    let err = oracle_of(&text).unwrap_err();
    assert!(err.contains("has no scripted oracle"), "{err}");
    // One that always starts out of the robot's touch (and of how far it may move by itself), away from its goal,
    // on a table that big: no policy can move it.
    let err = oracle_of(&big_table(&BUILTIN_TASKS[0].1.replacen(
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), yaw",
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -65.0, max: -60.0)), yaw",
        1,
    )))
    .unwrap_err();
    assert!(
        err.starts_with(
            "task `cube-single` cannot be solved as laid out: it needs cube `cube`'s start, give or take 38.117 m \
             (how far past the pinch the robot, and anything it pushes or throws, can touch the cube, or the cube \
             move by itself), within the pinch's reach: its y spans [-65, -60] m"
        ),
        "{err}"
    );
    // A cube wider than the open fingers' gap is pushed about, never held.
    let err = refusal(
        "half_extents: (0.02, 0.02, 0.02)",
        "half_extents: (0.06, 0.06, 0.02)",
    );
    assert!(
        err.ends_with(
            "the oracle needs cube `cube` to fit between the fingers: it is 12.0 cm across its wider side (the \
             script squares the fingers to whichever of its faces is nearest, so either side may come between \
             them), and `finger_r` and `finger_l` open to a gap of 8.8 cm (a cube at least 0.4 cm narrower than \
             the gap is held)"
        ),
        "{err}"
    );
    // A bar 4 cm wide and 510 m long: the script turns the fingers to either side, and across its length no
    // gripper holds it (measured across its narrower side alone, it passed).
    for long in [
        "half_extents: (0.02, 255.0, 0.02)",
        "half_extents: (255.0, 0.02, 0.02)",
        "half_extents: (0.02, 0.05, 0.02)",
    ] {
        let err = refusal("half_extents: (0.02, 0.02, 0.02)", long);
        assert!(
            err.contains("the oracle needs cube `cube` to fit between the fingers: it is ")
                && err.contains(" cm across its wider side"),
            "{long}: {err}"
        );
    }
    // A 4 by 8 cm block fits either way round.
    oracle_of(&BUILTIN_TASKS[0].1.replacen(
        "half_extents: (0.02, 0.02, 0.02)",
        "half_extents: (0.02, 0.04, 0.02)",
        1,
    ))
    .unwrap();
    // A fault of the task is named before what the script lacks, even where the script's checks come first: the
    // gantry's dx at another scale, and a target far beyond its reach.
    let err = refusal(targets, far_target);
    assert!(
        err.starts_with("task `cube-single` cannot be solved as laid out"),
        "{err}"
    );
    let text = BUILTIN_TASKS[0]
        .1
        .replacen(targets, far_target, 1)
        .replacen("PositionDelta(scale: 0.05)", "PositionDelta(scale: 0.1)", 1);
    let err = oracle_of(&text).unwrap_err();
    assert!(
        err.starts_with("task `cube-single` cannot be solved as laid out"),
        "{err}"
    );
    // A cube without a collider (a mass alone): nothing for the fingers to close on.
    let err = refusal(
        "rotation: (0.0, 0.0, 0.0, 1.0),\n        ),\n        \"qamlab_sim::authoring::Collider\": (\n          shape: Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0, friction: 1.0, membership: 1,\n        ),",
        "rotation: (0.0, 0.0, 0.0, 1.0), extra_mass: 0.064,\n        ),",
    );
    assert!(
        err.ends_with("the oracle needs cube `cube` to have a collider (the fingers close on it)"),
        "{err}"
    );
    // A gripper wired the other way round: the script's -1 would close it.
    let err = refusal("at_min: 0.0, at_max: 0.044", "at_min: 0.044, at_max: 0.0");
    assert!(
        err.contains(
            "the oracle needs action `gripper` to open the fingers at -1 and close them at +1"
        ),
        "{err}"
    );
    // A 7 cm cube turned 45 degrees is still 7 cm across either side (the script turns to its yaw): it fits.
    let turned = BUILTIN_TASKS[0]
        .1
        .replacen(
            "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0)",
            "translation: (0.0, 0.0, 0.02), rotation: (0.0, 0.0, 0.3827, 0.9239)",
            1,
        )
        .replacen(
            "half_extents: (0.02, 0.02, 0.02)",
            "half_extents: (0.035, 0.035, 0.02)",
            1,
        );
    oracle_of(&turned).unwrap();
    // A joint sliding the other way: the script's dx would move the hand in -x.
    let err = refusal(
        "kind: Prismatic(axis: (1.0, 0.0, 0.0))",
        "kind: Prismatic(axis: (-1.0, 0.0, 0.0))",
    );
    assert!(
        err.contains("action `dx` to drive one prismatic joint sliding along +x"),
        "{err}"
    );
    // A yaw joint that slides, or turns about a tilted axis: the script's dyaw would carry the hand off.
    for to in [
        "kind: Prismatic(axis: (0.0, 0.0, 1.0))",
        "kind: Revolute(axis: (1.0, 0.0, 1.0))",
    ] {
        let err = refusal("kind: Revolute(axis: (0.0, 0.0, 1.0))", to);
        assert!(
            err.contains("action `dyaw` to drive one revolute joint turning about +z"),
            "{to}: {err}"
        );
    }
}

#[test]
fn a_device_named_as_a_task_is_refused_before_reading() {
    let err = load_task("/dev/zero").unwrap_err().to_string();
    assert_eq!(
        err,
        "/dev/zero: cannot read task scene: a device, not a regular file: give a scene file (`*.scn.ron`)"
    );
}

/// A link that cannot be followed is named with why, not called a missing task.
#[test]
fn a_link_in_a_loop_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.scn.ron"), dir.path().join("b.scn.ron"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let err = load_task(a.to_str().unwrap()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot read task scene: Too many levels of symbolic links",
            a.display()
        )),
        "{err}"
    );
}

/// `--task <(cat my-task.scn.ron)`: an unnamed pipe ends when its writer does, so it is read like a file.
#[test]
fn a_scene_from_a_pipe_loads() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (reader, mut writer) = std::io::pipe().unwrap();
    // As the shell names the read end of `<(...)`.
    let path = format!("/dev/fd/{}", reader.as_raw_fd());
    let writer =
        std::thread::spawn(move || writer.write_all(BUILTIN_TASKS[0].1.as_bytes()).unwrap());
    let task = load_task(&path).unwrap();
    writer.join().unwrap();
    drop(reader);
    assert_eq!(task.name, "cube-single");
    assert!(!task.builtin);
}

/// A named pipe no one writes to would hang the load at its opening: it is refused before.
#[test]
fn a_named_pipe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("scene.scn.ron");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Were it opened, a writer after 10 s ends the wait, so that a regression fails rather than hangs (without
    // blocking: with no reader the open fails at once).
    let unblock = fifo.clone();
    std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt;
        std::thread::sleep(std::time::Duration::from_secs(10));
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(unblock);
    });
    let err = load_task(fifo.to_str().unwrap()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: cannot read task scene: a named pipe (opening one waits for a writer, forever if none comes), not \
             a regular file: give a scene file (`*.scn.ron`)",
            fifo.display()
        )
    );
}

#[test]
fn a_path_to_nothing_is_a_missing_file_not_an_unknown_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.scn.ron");
    let err = load_task(path.to_str().unwrap()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("task file `{}` does not exist", path.display())
    );
}

#[test]
fn a_path_like_name_a_typo_from_a_builtin_suggests_the_builtin() {
    // Not the built-in's source file in the checkout: loaded by path, it would be a user scene of the same name.
    for name in ["./cube-single", "cube-single.ron"] {
        let err = load_task(name).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("task file `{name}` does not exist: did you mean `cube-single`?")
        );
    }
}

#[test]
fn a_scene_file_that_takes_a_built_in_tasks_name_is_told_to_take_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-cube.scn.ron");
    // A copy of cube-single, changed (an exact copy is the built-in task itself).
    let text = format!("// my cube task\n{}", BUILTIN_TASKS[0].1);
    std::fs::write(&file, &text).unwrap();
    let task = load_task(file.to_str().unwrap()).unwrap();
    let warnings = task.warnings();
    assert!(
        warnings[0].starts_with(&format!(
            "{}: its TaskSettings name \"cube-single\" is a built-in task's",
            file.display()
        )) && warnings[0].ends_with("give it a name of its own"),
        "{warnings:?}"
    );
    // Named its own, or the built-in itself (by name, or its file by path): nothing to say.
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/tasks/cube-single.scn.ron"
    );
    assert_eq!(load_task(shipped).unwrap().warnings(), Vec::<String>::new());
    std::fs::write(&file, text.replacen("\"cube-single\"", "\"my-cube\"", 1)).unwrap();
    assert_eq!(
        load_task(file.to_str().unwrap()).unwrap().warnings(),
        Vec::<String>::new()
    );
    assert_eq!(
        load_task("cube-single").unwrap().warnings(),
        Vec::<String>::new()
    );
}
