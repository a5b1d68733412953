//! The scripted oracle against the real task.

use qamlab_sim::prelude::*;
use qamlab_tasks::prelude::*;

/// Runs one episode per env with the given oracle config; returns per env (solved, steps taken).
fn run(n: usize, config: OracleConfig, seed0: u64) -> Vec<(bool, u32)> {
    run_task("cube-single", n, config, seed0)
}

/// The built-in cube-single scene text, to edit into variants.
fn cube_single_text() -> &'static str {
    BUILTIN_TASKS
        .iter()
        .find(|(n, _)| *n == "cube-single")
        .expect("a built-in task")
        .1
}

/// [`run`] on any task.
fn run_task(name: &str, n: usize, config: OracleConfig, seed0: u64) -> Vec<(bool, u32)> {
    run_scene(&load_task(name).unwrap().scene, n, config, seed0)
}

/// [`run`] on a loaded scene.
fn run_scene(scene: &TaskScene, n: usize, config: OracleConfig, seed0: u64) -> Vec<(bool, u32)> {
    run_held(scene, n, config, seed0, 0)
}

/// [`run_scene`] with episodes going on `hold` steps after their first success.
fn run_held(
    scene: &TaskScene,
    n: usize,
    config: OracleConfig,
    seed0: u64,
    hold: u32,
) -> Vec<(bool, u32)> {
    let mut env = BatchedEnv::new(
        scene,
        n,
        EnvOptions {
            terminate_on_success: true,
            episode_length: None,
            success_hold: hold,
        },
    )
    .unwrap();
    let seeds: Vec<u64> = (0..n as u64).map(|i| seed0 + i).collect();
    let mut oracle = CubeOracle::new(scene, env.spec(), config, &seeds).unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let mut result = vec![None; n];
    for t in 1..=env.spec().episode_length {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for (i, r) in result.iter_mut().enumerate() {
            if r.is_none() && out.ended(i) {
                *r = Some((out.terminated[i], t));
            }
        }
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    result
        .into_iter()
        .map(|r| r.expect("every episode ends by the time limit"))
        .collect()
}

#[test]
fn noise_free_oracle_solves_cube_single() {
    let results = run(48, OracleConfig::default(), 1000);
    let solved = results.iter().filter(|r| r.0).count();
    let mean_steps: f32 = results.iter().map(|r| r.1 as f32).sum::<f32>() / results.len() as f32;
    println!(
        "solved {solved}/{} (mean steps {mean_steps})",
        results.len()
    );
    assert!(
        solved * 100 >= results.len() * 95,
        "solved only {solved} of {}",
        results.len()
    );
}

#[test]
fn noisy_oracle_still_solves_most() {
    let config = OracleConfig {
        noise: 0.1,
        ..OracleConfig::default()
    };
    let results = run(40, config, 5000);
    let solved = results.iter().filter(|r| r.0).count();
    println!("noisy: solved {solved}/{}", results.len());
    assert!(
        solved * 100 >= results.len() * 80,
        "solved only {solved} of {}",
        results.len()
    );
}

#[test]
fn oracle_with_random_actions_recovers() {
    // OGBench's "noisy" setting: smoothed noise plus a uniformly random action on 10% of the steps.
    let config = OracleConfig {
        noise: 0.1,
        random_action_prob: 0.1,
        ..OracleConfig::default()
    };
    let results = run(40, config, 9000);
    let solved = results.iter().filter(|r| r.0).count();
    let steps: f32 = results.iter().map(|r| r.1 as f32).sum::<f32>() / results.len() as f32;
    println!(
        "random actions: solved {solved}/{} (mean steps {steps})",
        results.len()
    );
    assert!(
        solved * 100 >= results.len() * 80,
        "solved only {solved} of {}",
        results.len()
    );
    // Random actions cost time: the clean oracle takes ~24 steps.
    assert!(
        steps > 24.0,
        "random actions made no difference ({steps} steps)"
    );
}

#[test]
fn play_oracle_chains_pick_and_place_under_noise() {
    let task = load_task("cube-single").unwrap();
    let n = 8;
    let mut env = BatchedEnv::new(
        &task.scene,
        n,
        EnvOptions {
            terminate_on_success: false,
            episode_length: Some(400),
            ..EnvOptions::default()
        },
    )
    .unwrap();
    let seeds: Vec<u64> = (0..n as u64).map(|i| 77 + i).collect();
    let config = OracleConfig {
        mode: OracleMode::Play,
        noise: 0.1,
        ..OracleConfig::default()
    };
    let mut oracle = CubeOracle::new(&task.scene, env.spec(), config, &seeds).unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let mut max_cube_z = 0.0f32;
    for _ in 0..400 {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for i in 0..n {
            max_cube_z = max_cube_z.max(out.final_obs[i * 28 + 12]);
        }
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    let placements: u32 = (0..n).map(|i| oracle.placements(i)).sum();
    let drops: u32 = (0..n).map(|i| oracle.drops(i)).sum();
    println!(
        "play: {placements} placements, {drops} drops in {n} x 400 steps; highest cube z {max_cube_z}"
    );
    // Each pick-and-place takes ~30 steps: a 400-step episode holds many of them, and grasps rarely slip.
    assert!(placements >= 6 * n as u32, "only {placements} placements");
    assert!(
        drops * 10 <= placements,
        "{drops} drops for {placements} placements"
    );
    assert!(max_cube_z > 0.08, "the cube was never lifted");
}

/// Observation bits of env `env` over `steps` oracle-driven steps, in a batch of `seeds.len()` envs where
/// episodes end on success (so envs reset at different times).
fn oracle_trajectory(seeds: &[u64], env: usize, steps: usize) -> Vec<u32> {
    let task = load_task("cube-single").unwrap();
    let options = EnvOptions {
        terminate_on_success: true,
        episode_length: None,
        ..EnvOptions::default()
    };
    let mut batch = BatchedEnv::new(&task.scene, seeds.len(), options).unwrap();
    let config = OracleConfig {
        noise: 0.1,
        ..OracleConfig::default()
    };
    let mut oracle = CubeOracle::new(&task.scene, batch.spec(), config, seeds).unwrap();
    let mut obs = batch.reset(seeds).unwrap().to_vec();
    let mut bits = Vec::new();
    for _ in 0..steps {
        let actions = oracle.act(&obs).to_vec();
        let out = batch.step(&actions).unwrap();
        bits.extend(
            out.obs[env * 28..(env + 1) * 28]
                .iter()
                .map(|x| x.to_bits()),
        );
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    bits
}

#[test]
fn oracle_runs_are_deterministic_across_batch_sizes() {
    // 120 steps: several successes and auto-resets, at different times in different envs.
    let alone = oracle_trajectory(&[21], 0, 120);
    let in_batch = oracle_trajectory(&[5, 21, 8, 13], 1, 120);
    assert!(
        alone == in_batch,
        "env 1 of 4 differs from the same seed alone"
    );
}

#[test]
fn oracle_solves_cube_double() {
    for (noise, floor) in [(0.0, 95), (0.1, 85)] {
        let config = OracleConfig {
            noise,
            ..OracleConfig::default()
        };
        let results = run_task("cube-double", 24, config, 300);
        let solved = results.iter().filter(|r| r.0).count();
        let steps: f32 = results.iter().map(|r| r.1 as f32).sum::<f32>() / results.len() as f32;
        println!(
            "cube-double, noise {noise}: solved {solved}/{} (mean steps {steps})",
            results.len()
        );
        assert!(
            solved * 100 >= results.len() * floor,
            "noise {noise}: solved only {solved} of {}",
            results.len()
        );
    }
}

/// Of `n` episodes of `task` (the noisy solving oracle, run to their end): how many reach success, and how many of
/// those lose it again.
fn episodes_losing_success(task: &str, n: usize, seed0: u64) -> (usize, usize) {
    let task = load_task(task).unwrap();
    let options = EnvOptions {
        terminate_on_success: false,
        episode_length: None,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&task.scene, n, options).unwrap();
    let seeds: Vec<u64> = (0..n as u64).map(|i| seed0 + i).collect();
    let config = OracleConfig {
        noise: 0.1,
        ..OracleConfig::default()
    };
    let mut oracle = CubeOracle::new(&task.scene, env.spec(), config, &seeds).unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let (mut reached, mut lost) = (vec![false; n], vec![false; n]);
    for _ in 0..env.spec().episode_length {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for i in 0..n {
            lost[i] |= reached[i] && !out.success[i];
            reached[i] |= out.success[i];
        }
        obs.copy_from_slice(&out.obs);
    }
    let count = |flags: &[bool]| flags.iter().filter(|&&f| f).count();
    (count(&reached), count(&lost))
}

#[test]
fn the_solving_oracle_keeps_the_success_it_reached() {
    // It used to lose it in about a quarter of the noisy episodes (cube-double: 18 of these 64, cube-single 13): it
    // picked up a cube resting within the goal's tolerance (4 cm) but not within its own 2 cm, the action noise
    // walked its idle hand down into the cubes, and its open fingers, rising at random from a cube, dragged the
    // cube off its target. What is left is physics (a cube slipping from the fingers onto its target and off).
    for task in ["cube-double", "cube-single"] {
        let (reached, lost) = episodes_losing_success(task, 64, 0);
        println!("{task}: {lost} of the {reached} of 64 episodes that reach success lose it");
        assert!(
            reached >= 60,
            "{task}: only {reached} of 64 episodes reach success"
        );
        assert!(
            lost <= 3,
            "{task}: {lost} of 64 episodes lose the success they reached"
        );
    }
}

#[test]
fn oracle_solves_cube_double_whatever_the_order_of_its_goal_sensors() {
    let text = BUILTIN_TASKS
        .iter()
        .find(|(n, _)| *n == "cube-double")
        .unwrap()
        .1
        .replacen(
            "GoalPosition(goal: \"goal_a\"),\n            GoalPosition(goal: \"goal_b\"),",
            "GoalPosition(goal: \"goal_b\"),\n            GoalPosition(goal: \"goal_a\"),",
            1,
        );
    let scene = TaskScene::from_ron(&text, "swapped").unwrap();
    let results = run_scene(&scene, 8, OracleConfig::default(), 300);
    let solved = results.iter().filter(|r| r.0).count();
    assert!(solved >= 7, "solved only {solved} of 8");
}

#[test]
fn play_oracle_moves_both_cubes_of_cube_double() {
    let task = load_task("cube-double").unwrap();
    let n = 6;
    let options = EnvOptions {
        terminate_on_success: false,
        episode_length: Some(400),
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&task.scene, n, options).unwrap();
    let spec = env.spec().clone();
    let at = |name: &str| spec.obs_names.iter().position(|n| n == name).unwrap();
    let (a, b) = (at("cube_a.position.x"), at("cube_b.position.x"));
    let seeds: Vec<u64> = (0..n as u64).map(|i| 40 + i).collect();
    let config = OracleConfig {
        mode: OracleMode::Play,
        noise: 0.1,
        ..OracleConfig::default()
    };
    let mut oracle = CubeOracle::new(&task.scene, &spec, config, &seeds).unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let start = obs.clone();
    let mut lifted = [false; 2];
    for _ in 0..400 {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for i in 0..n {
            let o = &out.final_obs[i * spec.obs_dim..];
            lifted[0] |= o[a + 2] > 0.06;
            lifted[1] |= o[b + 2] > 0.06;
        }
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    let placements: u32 = (0..n).map(|i| oracle.placements(i)).sum();
    let drops: u32 = (0..n).map(|i| oracle.drops(i)).sum();
    println!("cube-double play: {placements} placements, {drops} drops in {n} x 400 steps");
    assert!(
        lifted == [true, true],
        "both cubes should be picked up: {lifted:?}"
    );
    assert!(placements >= 6 * n as u32, "only {placements} placements");
    assert!(
        drops * 10 <= placements,
        "{drops} drops for {placements} placements"
    );
    assert_ne!(obs, start);
}

#[test]
fn play_covers_the_region_the_task_draws_its_goals_from() {
    for name in ["cube-single", "cube-double"] {
        let task = load_task(name).unwrap();
        assert_eq!(
            OracleConfig::play_region_of(&task.scene),
            OracleConfig::default().play_region,
            "{name}"
        );
    }
    // A task whose goal is drawn further out: play places cubes there too.
    let text = cube_single_text().replace(
        "RandomizeTarget\": (\n          x: Some((min: -0.15, max: 0.15))",
        "RandomizeTarget\": (\n          x: Some((min: 0.2, max: 0.27))",
    );
    let scene = TaskScene::from_ron(&text, "far.scn.ron").unwrap();
    assert_eq!(
        OracleConfig::play_region_of(&scene),
        [0.2, 0.27, -0.15, 0.15]
    );
}

#[test]
fn play_sets_a_larger_cube_down_at_its_own_height() {
    // A 7 cm cube resting at z = 0.035, its goal at that height: play lowers it there, so placements near the
    // goal succeed (with a fixed set-down height of 0.02 none would).
    let text = cube_single_text()
        .replace(
            "translation: (0.0, 0.0, 0.02), rotation",
            "translation: (0.0, 0.0, 0.035), rotation",
        )
        .replace(
            "Cuboid(half_extents: (0.02, 0.02, 0.02)), density: 1000.0",
            "Cuboid(half_extents: (0.035, 0.035, 0.035)), density: 200.0",
        )
        .replace("target: (0.1, 0.1, 0.02)", "target: (0.1, 0.1, 0.035)");
    let scene = TaskScene::from_ron(&text, "big-cube.scn.ron").unwrap();
    assert_eq!(scene.goals[0].goal.target.z, 0.035, "the edits took");
    let play = OracleConfig {
        mode: OracleMode::Play,
        ..OracleConfig::default()
    };
    let results = run_scene(&scene, 32, play, 300);
    let solved = results.iter().filter(|r| r.0).count();
    println!(
        "big cube, play: {solved}/{} episodes reach the goal",
        results.len()
    );
    assert!(solved > 0, "play never set the big cube down on its goal");
}

#[test]
fn the_oracle_carries_a_cube_over_the_edge_of_a_raised_target() {
    // Targets on a platform whose top (z = 0.09) stands above where the carried cube's bottom would be at the
    // fixed carrying height (about 0.077): the script carries higher, over the platform's edge, and sets the cube
    // down on it.
    let text = cube_single_text()
        .replace(
            "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), yaw",
            "x: Some((min: -0.15, max: -0.06)), y: Some((min: -0.1, max: 0.1)), yaw",
        )
        .replace("target: (0.1, 0.1, 0.02)", "target: (0.12, 0.0, 0.11)")
        .replace(
            "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
            "x: Some((min: 0.1, max: 0.14)), y: Some((min: -0.1, max: 0.1)), min_distance_from",
        )
        .trim_end()
        .strip_suffix("},\n)")
        .expect("the scene ends its entities and itself")
        .to_string()
        + r#"  13: (
      components: {
        "qamlab_sim::authoring::Body": (
          name: "platform", kind: Fixed, translation: (0.12, 0.0, 0.045), rotation: (0.0, 0.0, 0.0, 1.0),
        ),
        "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.05, 0.15, 0.045)), density: 0.0, friction: 1.0),
      },
    ),
  },
)
"#;
    let scene = TaskScene::from_ron(&text, "platform.scn.ron").unwrap();
    assert_eq!(scene.goals[0].goal.target.z, 0.11, "the edits took");
    assert!(scene.bodies.iter().any(|b| b.body.name == "platform"));
    let results = run_scene(&scene, 16, OracleConfig::default(), 500);
    let solved = results.iter().filter(|r| r.0).count();
    println!("platform: solved {solved}/{}", results.len());
    assert!(
        solved * 100 >= results.len() * 90,
        "solved only {solved} of {}",
        results.len()
    );
}

#[test]
fn a_held_success_ends_its_episode_that_many_steps_later_as_a_success() {
    // The window shows a success for a moment before the next episode: the same episodes, each ending `hold` steps
    // after its first success (or at its time limit, still as a success).
    let scene = load_task("cube-single").unwrap().scene;
    let length = scene.settings.episode_length;
    let at_once = run_held(&scene, 8, OracleConfig::default(), 40, 0);
    let held = run_held(&scene, 8, OracleConfig::default(), 40, 12);
    assert!(at_once.iter().filter(|r| r.0).count() >= 6, "{at_once:?}");
    for (now, later) in at_once.iter().zip(&held) {
        if now.0 {
            assert_eq!(
                *later,
                (true, (now.1 + 12).min(length)),
                "{at_once:?} {held:?}"
            );
        } else {
            assert_eq!(later, now);
        }
    }
}

#[test]
fn the_oracle_waits_for_a_cube_authored_in_the_air_to_land_before_picking_it() {
    // cube-single with its cube authored 0.5 m up: it falls onto the table in the first steps. Heading for 8 cm
    // above the falling cube, the script used to raise the hand under it: the cube landed on the palm and rode
    // there, the script chasing it to the rails' ends (0% solved). It now waits, the hand out from under the cube,
    // until the cube rests, and picks it from there.
    for z in [0.2, 0.5] {
        let text = cube_single_text().replace(
            "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02)",
            &format!("name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, {z:?})"),
        );
        let scene = TaskScene::from_ron(&text, "cube-air.scn.ron").unwrap();
        let cube = scene.bodies.iter().find(|b| b.body.name == "cube").unwrap();
        assert_eq!(cube.body.translation.z, z, "the edit took");
        for (noise, floor) in [(0.0, 95), (0.1, 85)] {
            let config = OracleConfig {
                noise,
                ..OracleConfig::default()
            };
            let results = run_scene(&scene, 20, config, 0);
            let solved = results.iter().filter(|r| r.0).count();
            println!("cube from z = {z}, noise {noise}: solved {solved}/20");
            assert!(
                solved * 100 >= results.len() * floor,
                "z = {z}, noise {noise}: solved only {solved} of 20"
            );
        }
    }
}

#[test]
fn play_waits_for_a_cube_authored_in_the_air_too() {
    let text = cube_single_text().replace(
        "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.02)",
        "name: \"cube\", kind: Dynamic, translation: (0.0, 0.0, 0.5)",
    );
    let scene = TaskScene::from_ron(&text, "cube-air.scn.ron").unwrap();
    let n = 8;
    let options = EnvOptions {
        terminate_on_success: false,
        episode_length: Some(400),
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&scene, n, options).unwrap();
    let seeds: Vec<u64> = (0..n as u64).map(|i| 77 + i).collect();
    let config = OracleConfig {
        mode: OracleMode::Play,
        noise: 0.1,
        ..OracleConfig::default()
    };
    let mut oracle = CubeOracle::new(&scene, env.spec(), config, &seeds).unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let mut waited = false;
    for t in 0..400 {
        let actions = oracle.act(&obs).to_vec();
        if t == 0 {
            waited = (0..n).all(|i| oracle.phase(i) == "settle");
        }
        let out = env.step(&actions).unwrap();
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    let placements: u32 = (0..n).map(|i| oracle.placements(i)).sum();
    println!("play from the air: {placements} placements in {n} x 400 steps");
    assert!(placements >= 6 * n as u32, "only {placements} placements");
    assert!(waited, "the script should wait while the cube falls");
}

#[test]
fn no_oracle_drives_a_scene_with_a_joint_goal_or_an_axis_goal() {
    // cube-single with one more goal: the gantry's x slide at 0.2 m, or the cube upright. Its script would place the
    // cube and never know of the other goal, so its data would never show the task solved.
    for (extra, kind, name) in [
        (
            r#"JointGoal": (name: "slid", joint: "x", target: 0.2, tolerance: 0.02)"#,
            "joint goals",
            "\"slid\"",
        ),
        (
            r#"AxisGoal": (name: "upright", body: "cube", axis: (0.0, 0.0, 1.0), direction: (0.0, 0.0, 1.0), tolerance: 0.2)"#,
            "axis goals",
            "\"upright\"",
        ),
    ] {
        let text = cube_single_text().replacen(
            "  entities: {",
            &format!(
                "  entities: {{\n    900: (components: {{\"qamlab_sim::authoring::{extra}}}),"
            ),
            1,
        );
        let scene = TaskScene::from_ron(&text, "cube-and-more").unwrap();
        let spec = EnvSpec::new(&scene, 100);
        let Err(e) = Oracle::new(&scene, &spec, OracleConfig::default(), &[0]) else {
            panic!("an oracle for a scene with {kind}");
        };
        let message = e.to_string();
        assert!(
            message.contains("no scripted oracle")
                && message.contains("a scene without `JointGoal`s or `AxisGoal`s")
                && message.contains(&format!("{kind}: {name}")),
            "{message}"
        );
    }
}

#[test]
fn oracle_puts_the_cube_on_a_plate_drawn_anywhere() {
    // cube-on-plate's target rides on a plate drawn at each reset: the script reads it from the observation, so it
    // places the cube there as on cube-single, with and without noise.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/tasks/examples/cube-on-plate.scn.ron"
    );
    let scene = load_task(path).unwrap().scene;
    assert!(scene.goals[0].riding.is_some());
    for (noise, floor) in [(0.0, 100), (0.1, 90)] {
        let config = OracleConfig {
            noise,
            ..OracleConfig::default()
        };
        let results = run_scene(&scene, 16, config, 40);
        let solved = results.iter().filter(|r| r.0).count();
        assert!(
            solved * 100 >= results.len() * floor,
            "noise {noise}: solved only {solved} of {}",
            results.len()
        );
    }
}
