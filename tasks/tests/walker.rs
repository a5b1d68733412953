//! The legged robot's task, antmaze-umaze, and the walking oracle against it.

use qamlab_sim::prelude::*;
use qamlab_tasks::maze::Maze;
use qamlab_tasks::prelude::*;
use qamlab_tasks::walker::WalkerBody;

fn antmaze() -> TaskScene {
    load_task("antmaze-umaze").unwrap().scene
}

/// A built-in task's scene text, to edit into variants.
fn builtin_text(name: &str) -> &'static str {
    BUILTIN_TASKS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// What one env's episode came to.
#[derive(Clone, Copy, Debug)]
struct Episode {
    solved: bool,
    steps: u32,
    /// Lowest torso height seen (m).
    lowest: f32,
}

/// The lowest torso height of any episode.
fn lowest(episodes: &[Episode]) -> f32 {
    episodes
        .iter()
        .map(|e| e.lowest)
        .fold(f32::INFINITY, f32::min)
}

/// Runs one episode per env under the oracle; episodes end on success in solve mode.
fn run(scene: &TaskScene, n: usize, config: OracleConfig, seed0: u64) -> (Vec<Episode>, Oracle) {
    let options = EnvOptions {
        terminate_on_success: config.mode == OracleMode::Solve,
        episode_length: None,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(scene, n, options).unwrap();
    let seeds: Vec<u64> = (0..n as u64).map(|i| seed0 + i).collect();
    let mut oracle = Oracle::new(scene, env.spec(), config, &seeds).unwrap();
    assert!(matches!(oracle, Oracle::Walker(_)));
    let o = env.spec().obs_dim;
    let z = env
        .spec()
        .obs_names
        .iter()
        .position(|s| s == "torso.position.z")
        .unwrap();
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let mut episodes: Vec<Option<Episode>> = vec![None; n];
    let mut lowest = vec![f32::INFINITY; n];
    for t in 1..=env.spec().episode_length {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for i in 0..n {
            if episodes[i].is_some() {
                continue;
            }
            lowest[i] = lowest[i].min(out.final_obs[i * o + z]);
            if out.ended(i) {
                episodes[i] = Some(Episode {
                    solved: out.terminated[i],
                    steps: t,
                    lowest: lowest[i],
                });
            }
        }
        obs.copy_from_slice(&out.obs);
        oracle.episodes_ended(out);
    }
    let episodes = episodes.into_iter().map(Option::unwrap).collect();
    (episodes, oracle)
}

#[test]
fn noise_free_oracle_walks_around_the_wall_to_the_goal() {
    let (episodes, _) = run(&antmaze(), 24, OracleConfig::default(), 500);
    let solved: Vec<&Episode> = episodes.iter().filter(|e| e.solved).collect();
    assert!(
        solved.len() * 100 >= episodes.len() * 95,
        "the oracle solves {} of {} episodes: {episodes:?}",
        solved.len(),
        episodes.len()
    );
    // The path around the wall is about 6 m; straight through it would be 2 m. A gait of about 0.55 m/s
    // needs some 220 steps, and no episode can be shorter than the path allows.
    let longest = solved.iter().map(|e| e.steps).max().unwrap();
    let shortest = solved.iter().map(|e| e.steps).min().unwrap();
    assert!(longest < 450, "slowest success took {longest} steps");
    assert!(
        shortest > 150,
        "a success after {shortest} steps: the robot passed through the wall?"
    );
    // It walks upright: the torso (0.205 m high at rest) never drops to the floor.
    let low = lowest(&episodes);
    assert!(low > 0.15, "the torso dropped to {low} m");
}

#[test]
fn a_body_authored_turned_walks_the_same_way() {
    // The ball torso authored a quarter turn about z: the same robot (the legs keep their world poses), whose
    // body frame is turned. The walk must steer in the body's frame, whatever its authored yaw.
    let text = builtin_text("antmaze-umaze");
    let torso = text.find("name: \"torso\"").unwrap();
    let rotation = torso
        + text[torso..]
            .find("rotation: (0.0, 0.0, 0.0, 1.0)")
            .unwrap();
    let turned = format!(
        "{}rotation: (0.0, 0.0, 0.70710678, 0.70710678){}",
        &text[..rotation],
        &text[rotation + "rotation: (0.0, 0.0, 0.0, 1.0)".len()..]
    );
    let scene = TaskScene::from_ron(&turned, "turned.scn.ron").unwrap();
    let (episodes, _) = run(&scene, 8, OracleConfig::default(), 500);
    assert!(
        episodes.iter().all(|e| e.solved && e.steps < 450),
        "{episodes:?}"
    );
}

#[test]
fn play_walks_to_places_of_its_own_and_stays_upright() {
    let config = OracleConfig {
        mode: OracleMode::Play,
        noise: 0.1,
        ..OracleConfig::default()
    };
    let (episodes, oracle) = run(&antmaze(), 8, config, 0);
    assert!(episodes.iter().all(|e| !e.solved && e.steps == 1000));
    let places: Vec<u32> = (0..8).map(|i| oracle.subgoals_reached(i)).collect();
    // About 0.5 m/s for 50 s: several places per episode, in every env.
    assert!(
        places.iter().all(|&p| p >= 2) && places.iter().sum::<u32>() >= 32,
        "places reached per env: {places:?}"
    );
    let low = lowest(&episodes);
    assert!(low > 0.15, "the torso dropped to {low} m");
}

#[test]
fn same_seeds_give_the_same_walk() {
    let config = OracleConfig {
        mode: OracleMode::Play,
        noise: 0.1,
        random_action_prob: 0.1,
        ..OracleConfig::default()
    };
    let scene = antmaze();
    let mut env = BatchedEnv::new(&scene, 2, EnvOptions::default()).unwrap();
    let mut trace = |seed: u64| {
        let mut oracle = Oracle::new(&scene, env.spec(), config, &[seed, seed + 1]).unwrap();
        let mut obs = env.reset(&[seed, seed + 1]).unwrap().to_vec();
        let mut all = Vec::new();
        for _ in 0..120 {
            let actions = oracle.act(&obs).to_vec();
            obs.copy_from_slice(&env.step(&actions).unwrap().obs);
            all.extend(actions.iter().chain(&obs).map(|v| v.to_bits()));
        }
        all
    };
    let (a, b, c) = (trace(7), trace(7), trace(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn the_maze_keeps_the_robot_off_the_walls_and_leads_around_them() {
    let scene = antmaze();
    let robot: Vec<usize> = scene
        .bodies
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            let n = &b.body.name;
            n == "torso" || n.ends_with("_thigh") || n.ends_with("_shin")
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(robot.len(), 9);
    let maze = Maze::from_scene(&scene, &robot, 0.35).unwrap();
    use bevy::math::Vec2;
    // Corridor centres are free; the middle wall, the outer walls and a band of the reach beside them are not.
    for free in [
        (-1.0, 1.0),
        (1.0, 1.0),
        (1.0, -1.0),
        (-1.0, -1.0),
        (0.0, 1.0),
    ] {
        assert!(maze.is_free(Vec2::new(free.0, free.1)), "{free:?}");
    }
    for blocked in [
        (-1.0, 0.0),
        (0.0, 0.0),
        (-1.0, 0.7),
        (-1.0, 1.3),
        (1.3, 0.0),
        (1.7, 0.0),
    ] {
        assert!(
            !maze.is_free(Vec2::new(blocked.0, blocked.1)),
            "{blocked:?}"
        );
    }
    // From the start, the way to the goal cell goes east along the top corridor, not south through the wall.
    let start = Vec2::new(-1.0, 1.0);
    let field = maze.distances_to(Vec2::new(-1.0, -1.0));
    assert!(field.reaches(&maze, start));
    let next = field.waypoint(&maze, start, 8);
    assert!(
        next.x > start.x + 0.2 && (next.y - start.y).abs() < 0.2,
        "{next}"
    );
    // From the far corner it heads south.
    let corner = Vec2::new(1.0, 1.0);
    let next = field.waypoint(&maze, corner, 8);
    assert!(next.y < corner.y - 0.2, "{next}");
}

#[test]
fn a_scene_with_neither_robot_is_refused_naming_both_robots_and_its_actions() {
    let cube_single = builtin_text("cube-single");
    let refusal = |text: &str| {
        let scene = TaskScene::from_ron(text, "edited.scn.ron").unwrap();
        let spec = EnvSpec::new(&scene, 10);
        match Oracle::new(&scene, &spec, OracleConfig::default(), &[0]) {
            Ok(_) => panic!("an oracle for a scene without its robot"),
            Err(e) => e.to_string(),
        }
    };
    // cube-single with its pinch site renamed: still the gantry's scene (its actions say so), so only what the
    // pick-and-place script lacks is named.
    let pinchless = cube_single.replace("\"pinch\"", "\"tip\"");
    let e = refusal(&pinchless);
    assert!(
        e.contains("`Position(frame: \"pinch\")`") && !e.contains("legged"),
        "{e}"
    );
    // With its first action renamed too, the scene is neither robot's: both robots are described, and the scene's
    // actions beside them (the first thing each script lacks would lead nowhere).
    let e = refusal(&pinchless.replace("(name: \"dx\"", "(name: \"move_x\""));
    assert!(
        e.contains("the built-in gantry (actions dx, dy, dz, dyaw, gripper)")
            && e.contains("every action a `PositionAbsolute`")
            && e.contains("legged")
            && e.contains("this scene's actions are `move_x` PositionDelta(scale: 0.05), `dy`"),
        "{e}"
    );
    // The walk refuses a leg without its knee, naming the hip.
    let ant = builtin_text("antmaze-umaze");
    let start = ant
        .find("(name: \"front_left_knee\", joints")
        .expect("the knee actuator");
    let end =
        start + ant[start..].find("max_force: 1000.0),").unwrap() + "max_force: 1000.0),".len();
    let kneeless = format!("{}{}", &ant[..start], &ant[end..]);
    let scene = TaskScene::from_ron(&kneeless, "kneeless.scn.ron").unwrap();
    let spec = EnvSpec::new(&scene, 10);
    let Err(e) = WalkerOracle::new(&scene, &spec, OracleConfig::default(), &[0]) else {
        panic!("a walk for a robot with a leg that cannot lift");
    };
    assert!(e.to_string().contains("front_left_hip"), "{e}");
}

/// A two-link planar arm, both joints turning about z and driven `PositionAbsolute`, whose fingertip reaches for a
/// drawn target; `sensors` extra observations, its goal on the body `frame`.
fn reacher(sensors: &str, frame: &str) -> String {
    r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "reacher", episode_length: 100, control_dt: 0.05, substeps: 4,
        solver_iterations: 4, gravity: (0.0, 0.0, -9.81), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "shoulder", joints: ["shoulder"], control: PositionAbsolute(at_min: -2.5, at_max: 2.5),
         range: (min: -1.0, max: 1.0), stiffness: 400.0, damping: 40.0, max_force: 50.0),
        (name: "elbow", joints: ["elbow"], control: PositionAbsolute(at_min: -2.5, at_max: 2.5),
         range: (min: -1.0, max: 1.0), stiffness: 400.0, damping: 40.0, max_force: 50.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [
        JointPosition(joint: "shoulder"), JointPosition(joint: "elbow"), Position(frame: "fingertip"),
        GoalPosition(goal: "reach"), SENSORS
      ]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "ground", kind: Fixed, translation: (0.0, 0.0, -0.05), rotation: (0.0, 0.0, 0.0, 1.0)),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (1.0, 1.0, 0.05)), density: 0.0, friction: 1.0),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "upper", kind: Dynamic, translation: (0.15, 0.0, 0.05), rotation: (0.0, 0.0, 0.0, 1.0), gravity_scale: 0.0),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.15, 0.02, 0.02)), density: 500.0, friction: 1.0, membership: 2, filter: 0),
      "qamlab_sim::authoring::Joint": (name: "shoulder", parent: "ground", child: "upper", kind: Revolute(axis: (0.0, 0.0, 1.0)), anchor: (0.0, 0.0, 0.05), limits: Some((min: -2.6, max: 2.6))),
    }),
    4: (components: {
      "qamlab_sim::authoring::Body": (name: "lower", kind: Dynamic, translation: (0.45, 0.0, 0.05), rotation: (0.0, 0.0, 0.0, 1.0), gravity_scale: 0.0),
      "qamlab_sim::authoring::Collider": (shape: Cuboid(half_extents: (0.15, 0.02, 0.02)), density: 500.0, friction: 1.0, membership: 2, filter: 0),
      "qamlab_sim::authoring::Joint": (name: "elbow", parent: "upper", child: "lower", kind: Revolute(axis: (0.0, 0.0, 1.0)), anchor: (0.3, 0.0, 0.05), limits: Some((min: -2.6, max: 2.6))),
    }),
    5: (components: {
      "qamlab_sim::authoring::Site": (name: "fingertip", body: "lower", offset: (0.15, 0.0, 0.0)),
    }),
    6: (components: {
      "qamlab_sim::authoring::Goal": (name: "reach", frame: "FRAME", target: (0.3, 0.3, 0.05), tolerance: 0.05),
      "qamlab_sim::authoring::RandomizeTarget": (x: Some((min: -0.4, max: 0.4)), y: Some((min: -0.4, max: 0.4))),
    }),
  },
)
"#
    .replace("SENSORS", sensors)
    .replace("FRAME", frame)
}

#[test]
fn a_robot_with_only_absolute_actions_but_no_legs_is_told_it_is_not_legged() {
    // Every action `PositionAbsolute`, as a legged robot's are, but an arm: asking for the sensors the walking
    // script reads of a legged robot's body, and then for legs, would lead the author nowhere. The refusal says
    // first that the robot is not a legged one, what one is, and what its actions move.
    let oracle_refusal = |text: &str| {
        let scene = TaskScene::from_ron(text, "reacher.scn.ron").unwrap();
        let spec = EnvSpec::new(&scene, 10);
        match Oracle::new(&scene, &spec, OracleConfig::default(), &[0]) {
            Ok(_) => panic!("an oracle for an arm"),
            Err(e) => e.to_string(),
        }
    };
    let bare = reacher("", "fingertip");
    // With the goal on the forearm, observed as the walking script reads a torso: still no legs.
    let observed = reacher(
        "Position(frame: \"lower\"), Quaternion(body: \"lower\"),",
        "lower",
    );
    for text in [&bare, &observed] {
        let e = oracle_refusal(text);
        assert!(
            e.starts_with("task `reacher` has no scripted oracle: the oracle needs a robot one of its two scripts")
                && e.contains("neither the built-in gantry (actions dx, dy, dz, dyaw, gripper) nor a legged robot")
                && e.contains("its actions are all `PositionAbsolute`, as a legged robot's are, but none moves a leg")
                && e.contains("an even number of legs, at least 4")
                && e.contains("a hip turns a thigh from the body about the vertical")
                && e.contains(
                    "this scene's actions: `shoulder` turns `upper` about (0, 0, 1) from `ground`, `elbow` turns \
                     `lower` about (0, 0, 1) from `upper`"
                ),
            "{e}"
        );
        assert!(
            !e.contains("Quaternion") && !e.contains("every action to move a leg"),
            "{e}"
        );
    }
    // The walking script itself says so first too.
    let scene = TaskScene::from_ron(&observed, "reacher.scn.ron").unwrap();
    let spec = EnvSpec::new(&scene, 10);
    let Err(e) = WalkerOracle::new(&scene, &spec, OracleConfig::default(), &[0]) else {
        panic!("a walk for an arm");
    };
    let e = e.to_string();
    assert!(
        e.contains("the oracle needs a legged robot (an even number of legs")
            && e.contains(
                "no action of this scene's is a hip with a knee below it (`shoulder` turns"
            ),
        "{e}"
    );
    // A legged robot missing the sensors is still asked for them.
    let e =
        oracle_refusal(&builtin_text("antmaze-umaze").replace("Quaternion(body: \"torso\"),", ""));
    assert!(
        e.contains("the goal's body `torso` observed with `Position` and `Quaternion` (to walk a legged robot)"),
        "{e}"
    );
}

#[test]
fn a_reset_stands_the_robot_at_the_start_and_draws_the_goal_in_its_cell() {
    let scene = antmaze();
    let mut env = BatchedEnv::new(&scene, 4, EnvOptions::default()).unwrap();
    let spec = env.spec().clone();
    let at = |name: &str| spec.obs_names.iter().position(|n| n == name).unwrap();
    let (pos, goal, hip) = (
        at("torso.position.x"),
        at("torso_goal.target.x"),
        at("front_left_hip.position"),
    );
    let o = spec.obs_dim;
    // Where the torso starts (drawn within 0.1 m of (-1, 1), at its authored height) and the goal is drawn.
    let check = |obs: &[f32]| {
        let mut starts = Vec::new();
        for e in obs.chunks(o) {
            let (sx, sy) = (e[pos], e[pos + 1]);
            assert!(
                (-1.1..=-0.9).contains(&sx) && (0.9..=1.1).contains(&sy) && e[pos + 2] == 0.205,
                "{:?}",
                &e[pos..pos + 3]
            );
            assert!(
                e[hip..hip + 8].iter().all(|q| q.abs() < 1e-5),
                "{:?}",
                &e[hip..hip + 8]
            );
            let (x, y) = (e[goal], e[goal + 1]);
            assert!(
                (-1.25..=-0.75).contains(&x) && (-1.25..=-0.75).contains(&y),
                "{x}, {y}"
            );
            starts.push((sx, sy, x, y));
        }
        starts
    };
    let first = check(env.reset(&[1, 2, 3, 4]).unwrap());
    // Walk about at random, then reset again: the same seeds give the same start, other seeds other goals.
    for k in 0..50 {
        let actions: Vec<f32> = (0..4 * 8)
            .map(|i| ((i * 7 + k * 3) % 11) as f32 / 5.0 - 1.0)
            .collect();
        env.step(&actions).unwrap();
    }
    assert_eq!(check(env.reset(&[1, 2, 3, 4]).unwrap()), first);
    let other = check(env.reset(&[5, 6, 7, 8]).unwrap());
    assert!(
        other
            .iter()
            .zip(&first)
            .all(|(a, b)| a.0 != b.0 && a.1 != b.1 && a.2 != b.2 && a.3 != b.3)
    );
}

#[test]
fn a_reset_moves_the_whole_robot_by_its_drawn_start_and_keeps_its_joints() {
    use bevy::math::{EulerRot, Quat, Vec3};
    // The torso's RandomizePose draws x and y within 0.1 m of (-1, 1) and a yaw within 0.1 rad; the legs go with
    // it, each where it is authored relative to the torso: every joint at its authored angle.
    let scene = antmaze();
    let n = 64;
    let mut env = BatchedEnv::new(&scene, n, EnvOptions::default()).unwrap();
    let spec = env.spec().clone();
    let seeds: Vec<u64> = (100..100 + n as u64).collect();
    env.reset(&seeds).unwrap();
    let qpos = env.output().qpos.clone();
    let per_env = spec.qpos_dim;
    let authored = |name: &str| {
        let def = scene.bodies.iter().find(|b| b.body.name == name).unwrap();
        (def.body.translation, def.body.rotation.normalize())
    };
    let (home, turn) = authored("torso");
    let pose = |e: usize, b: usize| {
        let p = &qpos[e * per_env + b * qamlab_sim::QPOS_PER_BODY..][..7];
        (
            Vec3::new(p[0], p[1], p[2]),
            Quat::from_xyzw(p[3], p[4], p[5], p[6]),
        )
    };
    let torso = spec.state_bodies.iter().position(|b| b == "torso").unwrap();
    let (mut low, mut high) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
    for e in 0..n {
        let (at, q) = pose(e, torso);
        let (yaw, pitch, roll) = q.to_euler(EulerRot::ZYX);
        assert!(
            (-1.1..=-0.9).contains(&at.x)
                && (0.9..=1.1).contains(&at.y)
                && at.z == home.z
                && (-0.1..=0.1).contains(&yaw)
                && pitch.abs() < 1e-6
                && roll.abs() < 1e-6,
            "env {e}: the torso starts at {at}, turned {yaw} about z ({pitch}, {roll})"
        );
        let drawn = Vec3::new(at.x, at.y, yaw);
        (low, high) = (low.min(drawn), high.max(drawn));
        // The same rigid motion for every body of the robot.
        let motion = q * turn.inverse();
        for (b, name) in spec.state_bodies.iter().enumerate() {
            let (own_home, own_turn) = authored(name);
            let (want_at, want_q) = (at + motion * (own_home - home), motion * own_turn);
            let (got_at, got_q) = pose(e, b);
            assert!(
                got_at.distance(want_at) < 1e-5 && got_q.angle_between(want_q) < 1e-3,
                "env {e}: {name} starts at {got_at} {got_q}, not {want_at} {want_q}"
            );
        }
    }
    // The draws cover the ranges.
    assert!(
        low.cmplt(Vec3::new(-1.08, 0.92, -0.08)).all()
            && high.cmpgt(Vec3::new(-0.92, 1.08, 0.08)).all(),
        "starts drawn within {low} to {high}"
    );
}

#[test]
fn the_walkers_body_tells_when_it_lies_upside_down() {
    use bevy::math::Quat;
    let scene = antmaze();
    let spec = EnvSpec::of(&scene);
    let body = WalkerBody::find(&scene, &spec).expect("the ant is a walker");
    assert_eq!(body.name, "torso");
    let mut env = BatchedEnv::new(&scene, 1, EnvOptions::default()).unwrap();
    env.reset(&[0]).unwrap();
    let mut qpos = env.output().qpos.clone();
    let at = qamlab_sim::QPOS_PER_BODY
        * spec.state_bodies.iter().position(|b| b == "torso").unwrap()
        + 3;
    assert!(!body.is_upside_down(&qpos), "standing at the start");
    let mut turned = |q: Quat| {
        qpos[at..at + 4].copy_from_slice(&q.to_array());
        body.is_upside_down(&qpos)
    };
    assert!(
        !turned(Quat::from_rotation_z(2.5)),
        "turned about the vertical"
    );
    assert!(
        !turned(Quat::from_rotation_x(1.4)),
        "on its side, not yet over"
    );
    assert!(turned(Quat::from_rotation_x(1.7)), "just past its side");
    assert!(turned(
        Quat::from_rotation_y(std::f32::consts::PI) * Quat::from_rotation_z(1.0)
    ));
    // Up is the side up as authored: to a torso authored upside down, the standing ant lies on its back.
    let text = builtin_text("antmaze-umaze").replacen(
        "name: \"torso\", kind: Dynamic, translation: (-1.0, 1.0, 0.205), rotation: (0.0, 0.0, 0.0, 1.0)",
        "name: \"torso\", kind: Dynamic, translation: (-1.0, 1.0, 0.205), rotation: (1.0, 0.0, 0.0, 0.0)",
        1,
    );
    let flipped = TaskScene::from_ron(&text, "flipped.scn.ron").unwrap();
    let body = WalkerBody::find(&flipped, &EnvSpec::of(&flipped)).unwrap();
    assert!(body.is_upside_down(&env.output().qpos));
    // The gantry is no walker.
    let cube = load_task("cube-single").unwrap().scene;
    assert!(WalkerBody::find(&cube, &EnvSpec::of(&cube)).is_none());
}

/// Why the walking oracle refuses a scene text (it must refuse it).
fn refusal(text: String) -> String {
    let scene = TaskScene::from_ron(&text, "edited.scn.ron").unwrap();
    let spec = EnvSpec::new(&scene, 10);
    match WalkerOracle::new(&scene, &spec, OracleConfig::default(), &[0]) {
        Ok(_) => panic!("a walk in a maze it cannot solve"),
        Err(e) => e.to_string(),
    }
}

/// A box: a name and the corners `[x0, y0, z0]`, `[x1, y1, z1]` it spans.
type Corners<'a> = (&'a str, [f32; 3], [f32; 3]);

/// The entity text of a fixed, unturned box `k` (numbered 90 + `k`), of collision group 1.
fn box_entity(k: usize, (name, lo, hi): Corners) -> String {
    let at = |i: usize| (lo[i] + hi[i]) / 2.0;
    let half = |i: usize| (hi[i] - lo[i]) / 2.0;
    format!(
        "    {}: (\n      components: {{\n        \"qamlab_sim::authoring::Body\": (\n          name: \"{name}\", \
         kind: Fixed, translation: ({:?}, {:?}, {:?}), rotation: (0.0, 0.0, 0.0, 1.0),\n        ),\n        \
         \"qamlab_sim::authoring::Collider\": (\n          shape: Cuboid(half_extents: ({:?}, {:?}, {:?})), \
         density: 0.0, friction: 1.0, membership: 1,\n        ),\n      }},\n    ),\n",
        90 + k,
        at(0),
        at(1),
        at(2),
        half(0),
        half(1),
        half(2)
    )
}

/// `text` with entities added at the end of its list.
fn with_entities(text: &str, entities: &[String]) -> String {
    let end = text
        .rfind("  },\n)")
        .expect("a scene ends with its entities");
    format!("{}{}{}", &text[..end], entities.concat(), &text[end..])
}

/// `text` with fixed boxes added.
fn with_boxes(text: &str, boxes: &[Corners]) -> String {
    let entities: Vec<String> = boxes
        .iter()
        .enumerate()
        .map(|(k, &b)| box_entity(k, b))
        .collect();
    with_entities(text, &entities)
}

/// antmaze-umaze's text with its walls `height` m high (from the floor), in place of its own 30 cm.
fn walls_of(text: &str, height: f32) -> String {
    let half = height / 2.0;
    let walls = text
        .replace(
            ", 0.15)), density: 0.0",
            &format!(", {half:?})), density: 0.0"),
        )
        .replace(", 0.15), rotation", &format!(", {half:?}), rotation"));
    assert_eq!(walls.matches(&format!(", {half:?})), density")).count(), 5);
    assert_eq!(walls.matches(&format!(", {half:?}), rotation")).count(), 5);
    walls
}

/// antmaze-umaze's text with its walls raised to 1 km, above all the unsolvable check lets the robot climb: a leg
/// straightened under its torso stood on end, and a jump at its joints' top speed (its motors' stiffness times
/// their range over their damping, about its legs): 367 m, a bound, not a prediction. Its own walls, 30 cm high,
/// are lower.
fn tall_walls(text: &str) -> String {
    walls_of(text, 1000.0)
}

/// `text` with the robot (and the goal's height) raised `by` m above where antmaze-umaze authors it.
fn raised(text: &str, by: f32) -> String {
    text.replace(", 0.205)", &format!(", {:?})", 0.205 + by))
        .replace(", 0.115)", &format!(", {:?})", 0.115 + by))
}

/// Whether the refusal of `text` is the script's own (the task is not judged unsolvable).
fn the_scripts(text: String) -> Result<(), String> {
    let e = refusal(text);
    if e.contains("has no scripted oracle") {
        Ok(())
    } else {
        Err(e)
    }
}

/// The refusal of `text`, which must call it unsolvable.
fn unsolvable(text: String) -> String {
    let e = refusal(text);
    assert!(
        e.starts_with("task `antmaze-umaze` cannot be solved as laid out"),
        "{e}"
    );
    e
}

#[test]
fn mazes_the_walk_cannot_solve_are_refused_naming_why() {
    let ant = builtin_text("antmaze-umaze");
    let middle = "translation: (-0.5, 0.0, 0.15)";
    assert!(ant.contains(middle));
    // The middle wall moved onto the robot's start, all walls too tall to climb (its own walls, lower, might be
    // climbed): the solver pushes the robot out of it, anywhere (run, it sank through the floor), so the task is
    // not judged; the script's message says where it starts.
    let e = refusal(tall_walls(
        &ant.replace(middle, "translation: (-1.0, 1.0, 0.15)"),
    ));
    assert!(
        e.contains("has no scripted oracle")
            && e.contains("to start on the floor")
            && e.contains("(-1, 1)"),
        "{e}"
    );
    // The middle wall stretched across the maze: the goal's cell is cut off.
    let e = refusal(tall_walls(&ant.replace(
        "half_extents: (1.0, 0.5, 0.15)",
        "half_extents: (2.0, 0.5, 0.15)",
    )));
    assert!(
        e.starts_with("task `antmaze-umaze` cannot be solved as laid out")
            && e.contains("torso_goal")
            && e.contains("reachable")
            && e.contains("no way leads there even for its torso alone")
            && e.contains("passages wider than about 0.15 m"),
        "{e}"
    );
    // With antmaze's own walls, 30 cm high, the robot might climb over: not judged.
    let e = refusal(ant.replace(
        "half_extents: (1.0, 0.5, 0.15)",
        "half_extents: (2.0, 0.5, 0.15)",
    ));
    assert!(e.contains("has no scripted oracle"), "{e}");
    // A passage its torso fits through but its splayed legs, as the script walks, do not: the script's limit,
    // not the task's (an agent may find a gait that fits).
    let e = refusal(ant.replace(middle, "translation: (-0.2, 0.0, 0.15)"));
    assert!(
        e.contains("has no scripted oracle") && e.contains("a passage must be wider than"),
        "{e}"
    );
    // A 4 cm curb across the corridor ahead: the script plans around it as a wall, but the torso passes over it,
    // so the task is not ruled out.
    let curb = ant.replacen(
        "  },\n)",
        "    90: (\n      components: {\n        \"qamlab_sim::authoring::Body\": (\n          name: \"curb\", kind: Fixed, translation: (0.3, 1.0, 0.02), rotation: (0.0, 0.0, 0.0, 1.0),\n        ),\n        \"qamlab_sim::authoring::Collider\": (\n          shape: Cuboid(half_extents: (0.01, 0.5, 0.02)), density: 0.0, friction: 1.0, membership: 1,\n        ),\n      },\n    ),\n  },\n)",
        1,
    );
    assert_ne!(curb, ant);
    let e = refusal(curb);
    assert!(e.contains("has no scripted oracle"), "{e}");
    // A knee that cannot turn far enough to lift its foot.
    let knee = "(name: \"front_left_knee\", joints: [\"front_left_knee\"], control: PositionAbsolute(at_min: -0.7, at_max: 0.7)";
    assert!(ant.contains(knee));
    let e = refusal(ant.replace(
        knee,
        &knee.replace("at_min: -0.7, at_max: 0.7", "at_min: -0.3, at_max: 0.3"),
    ));
    // What the script needs, not the task: an agent may find another gait.
    assert!(
        e.contains("has no scripted oracle")
            && e.contains("front_left_knee")
            && e.contains("lifts the foot"),
        "{e}"
    );
}

#[test]
fn a_robot_given_no_action_stands_still() {
    // Zero actions hold every joint at its authored angle: the robot must stay where it stands, without the
    // creeping or spinning that jittering contacts and motors would give it.
    let scene = antmaze();
    let mut env = BatchedEnv::new(&scene, 1, EnvOptions::default()).unwrap();
    let mut obs = env.reset(&[3]).unwrap().to_vec();
    let yaw_of = |o: &[f32]| {
        (2.0 * (o[6] * o[5] + o[3] * o[4])).atan2(1.0 - 2.0 * (o[4] * o[4] + o[5] * o[5]))
    };
    let (start, mut turned, mut last) = ([obs[0], obs[1]], 0.0f32, yaw_of(&obs));
    for _ in 0..500 {
        obs.copy_from_slice(&env.step(&[0.0; 8]).unwrap().obs);
        let yaw = yaw_of(&obs);
        turned += (yaw - last).abs();
        last = yaw;
    }
    let drift = (obs[0] - start[0]).hypot(obs[1] - start[1]);
    assert!(drift < 0.03, "the robot crept {drift} m in 25 s");
    assert!(
        turned.to_degrees() < 5.0,
        "the robot turned {} degrees in 25 s",
        turned.to_degrees()
    );
}

#[test]
fn a_torso_that_could_climb_stairs_or_crawl_under_a_bar_is_not_ruled_out() {
    // antmaze-umaze's torso is a ball of radius 0.11 centred 0.205 m over its feet: the check lets it step up 0.53
    // m (a leg, reaching 0.31 m, straightened under it), more than the whole robot's height, 0.315 m, and, lying
    // flat, pass under what is over 0.22 m above the ground. Its walk goes east along the top corridor (y in [0.5,
    // 1.5]), south down the east one (x in [0.5, 1.5]), and west along the bottom one to the goal's cell, x and y
    // in [-1.5, -0.5]. The impossible layouts raise the maze's walls to 1 m, which it might otherwise climb.
    let ant = builtin_text("antmaze-umaze");
    let tall = tall_walls(ant);
    let solvable = |text: &str, boxes: &[Corners], what: &str| {
        the_scripts(with_boxes(text, boxes)).unwrap_or_else(|e| panic!("{what}: {e}"));
    };
    let shut = |boxes: &[Corners], what: &str| {
        let e = unsolvable(with_boxes(&tall, boxes));
        assert!(
            e.contains("torso_goal") && e.contains("reachable"),
            "{what}: {e}"
        );
    };
    // The goal's cell raised 15 cm, reached by two 5 cm steps: the script plans around the steps as walls, but
    // the torso climbs them one at a time; and without them, in one step.
    let platform = ("platform", [-1.5, -1.5, 0.0], [-0.2, -0.5, 0.15]);
    let steps = [
        ("step1", [0.0, -1.5, 0.0], [0.2, -0.5, 0.05]),
        ("step2", [-0.2, -1.5, 0.0], [0.0, -0.5, 0.1]),
    ];
    solvable(ant, &[steps[0], steps[1], platform], "stairs");
    solvable(&tall, &[platform], "a 15 cm step");
    // The goal's cell raised 1 m, higher than the robot climbs: a cliff.
    shut(
        &[("platform", [-1.5, -1.5, 0.0], [-0.2, -0.5, 1000.0])],
        "a cliff",
    );
    // A bar across the east corridor, 25 to 30 cm up: lower than the torso's top standing (31.5 cm), higher
    // than lying flat (22 cm).
    let bar = ("bar", [0.5, -0.05, 0.25], [1.5, 0.05, 0.3]);
    solvable(&tall, &[bar], "a bar to crawl under");
    // A bar 15 cm to 1 m up is too low to crawl under and too high to step over.
    shut(
        &[("bar", [0.5, -0.05, 0.15], [1.5, 0.05, 1000.0])],
        "a low bar",
    );
    // A wall from the floor across the bottom corridor, taller than the robot climbs.
    shut(
        &[("wall", [0.0, -1.5, 0.0], [0.1, -0.5, 1000.0])],
        "a 1 m wall",
    );
    // U2: one 45 cm high, taller than the robot as authored but lower than a leg straightened under its torso,
    // is not judged.
    solvable(
        &walls_of(ant, 0.45),
        &[("wall", [0.0, -1.5, 0.0], [0.1, -0.5, 0.45])],
        "a 45 cm wall",
    );
    // The robot raised 5 cm onto a dais over its start cell: the script's floor is the dais alone, but the torso
    // steps down from it, and drops from a higher one.
    for dais in [0.05, 0.25] {
        let boxes = [("dais", [-1.5, 0.5, 0.0], [-0.5, 1.5, dais])];
        the_scripts(with_boxes(&raised(ant, dais), &boxes))
            .unwrap_or_else(|e| panic!("a {dais} m dais: {e}"));
    }
}

/// A gate across the top corridor, from the floor to above all the robot climbs.
const GATE: Corners = ("gate", [-0.05, 0.5, 0.0], [0.05, 1.5, 1000.0]);

/// `text` with `entity`'s last component closed and `component` (its text) added after it.
fn with_component(entity: &str, component: &str) -> String {
    let end = entity.rfind("      },\n    ),\n").expect("an entity's end");
    format!("{}{component}{}", &entity[..end], &entity[end..])
}

#[test]
fn only_what_its_boxes_describe_exactly_is_judged() {
    let tall = tall_walls(builtin_text("antmaze-umaze"));
    let gate = box_entity(0, GATE);
    // The gate shuts the way to the goal.
    let e = unsolvable(with_entities(&tall, std::slice::from_ref(&gate)));
    assert!(e.contains("no way leads there"), "{e}");
    // The same gate in collision groups the robot's (membership 2, filter 1) never touches is left out.
    let ghost = gate.replace("membership: 1,", "membership: 4, filter: 4,");
    the_scripts(with_entities(&tall, &[ghost])).unwrap();
    // Moved at reset (here always out of the maze): where it stands is not known, so nothing is judged.
    let moved = with_component(
        &gate,
        "        \"qamlab_sim::authoring::RandomizePose\": (x: Some((min: 3.0, max: 3.5))),\n",
    );
    the_scripts(with_entities(&tall, &[moved])).unwrap();
    // A convex hull (a speed bump would be one) is no box: not judged.
    let corners: Vec<String> = (0..8)
        .map(|k| {
            let sign = |bit: usize| if k & bit == 0 { -1.0 } else { 1.0 };
            format!(
                "({:?}, {:?}, {:?})",
                sign(1) * 0.05,
                sign(2) * 0.5,
                sign(4) * 500.0
            )
        })
        .collect();
    let hull = gate.replace(
        "Cuboid(half_extents: (0.05, 0.5, 500.0))",
        &format!("ConvexHull(points: [{}])", corners.join(", ")),
    );
    assert_ne!(hull, gate);
    the_scripts(with_entities(&tall, &[hull])).unwrap();
    // A loose plank anywhere (it might be pushed into a bridge or a step): not judged.
    let plank = box_entity(1, ("plank", [-1.2, -0.1, 0.6], [-0.8, 0.1, 0.63]))
        .replace("kind: Fixed", "kind: Dynamic")
        .replace("density: 0.0", "density: 500.0");
    the_scripts(with_entities(&tall, &[gate.clone(), plank])).unwrap();
    // Turned 45 degrees about z, its bounding box is not its shape: not judged.
    let turned = |q: &str| {
        box_entity(0, ("gate", [-0.5, 0.95, 0.0], [0.5, 1.05, 1000.0]))
            .replace("rotation: (0.0, 0.0, 0.0, 1.0)", q)
    };
    let yawed = turned("rotation: (0.0, 0.0, 0.38268343, 0.92387953)");
    the_scripts(with_entities(&tall, &[yawed])).unwrap();
    // A quarter turn keeps it a box, across the corridor: judged.
    let across = turned("rotation: (0.0, 0.0, 0.70710678, 0.70710678)");
    unsolvable(with_entities(&tall, &[across]));
}

#[test]
fn gaps_edges_and_a_goal_frame_off_the_torso_are_judged_generously() {
    let tall = tall_walls(builtin_text("antmaze-umaze"));
    // The floor cut at x = 0 by a 15 cm gap, its east part 3 cm lower: the script's floor is the west part only,
    // but the legs hold the torso over the gap, next to the lower tile too.
    let floor = "name: \"floor\", kind: Fixed, translation: (0.0, 0.0, -0.05)";
    assert!(tall.contains(floor));
    let cut = tall
        .replace(
            floor,
            "name: \"floor\", kind: Fixed, translation: (-0.8, 0.0, -0.05)",
        )
        .replace(
            "Cuboid(half_extents: (1.6, 1.6, 0.05))",
            "Cuboid(half_extents: (0.8, 1.6, 0.05))",
        );
    let east = ("floor_east", [0.15, -1.6, -0.13], [1.6, 1.6, -0.03]);
    the_scripts(with_boxes(&cut, &[east])).unwrap();
    // A chasm 80 cm wide, more than the legs reach from either side: not judged, as the torso might leap it, and
    // falling in it might land anywhere.
    let far = ("floor_east", [0.8, -1.6, -0.13], [1.6, 1.6, -0.03]);
    the_scripts(with_boxes(&cut, &[far])).unwrap();

    // A fixed target for the torso, past the south wall.
    let goal = "frame: \"torso\", target: (-1.0, -1.0, 0.205), tolerance: 0.3),";
    let randomized = "        \"qamlab_sim::authoring::RandomizeTarget\": (\n          x: Some((min: -1.25, max: -0.75)), y: Some((min: -1.25, max: -0.75)),\n        ),\n";
    assert!(tall.contains(goal) && tall.contains(randomized));
    let fixed = |text: &str, frame: &str, at: &str| {
        text.replace(randomized, "").replace(
            goal,
            &format!("frame: \"{frame}\", target: {at}, tolerance: 0.3),"),
        )
    };
    // Outside the maze, where the torso could be, but no way leads there.
    let e = unsolvable(fixed(&tall, "torso", "(-1.0, -1.9, 0.205)"));
    assert!(
        e.contains("no way leads there even for its torso alone"),
        "{e}"
    );
    // The goal's frame a site 0.6 m south of the torso's centre reaches it.
    let nose = "    99: (\n      components: {\n        \"qamlab_sim::authoring::Site\": (name: \"nose\", body: \"torso\", offset: (0.0, -0.6, 0.0)),\n      },\n    ),\n";
    let site = with_entities(&tall, &[nose.to_string()]);
    the_scripts(fixed(&site, "nose", "(-1.0, -1.9, 0.205)")).unwrap();
    // Farther still, the message names the goal's frame.
    let e = unsolvable(fixed(&site, "nose", "(-1.0, -2.6, 0.205)"));
    assert!(
        e.contains("the goal's frame being 0.60 m from the torso's centre"),
        "{e}"
    );

    // The west wall gone, the floor's west edge (x = -1.6) is open: the torso may run off it, so nothing is judged,
    // near the edge or past it, in the air or below.
    let west = "name: \"wall_west\"";
    let at = tall.find(west).unwrap();
    let (start, end) = (
        tall[..at].rfind("\n    6: (").unwrap(),
        at + tall[at..].find("\n    ),").unwrap() + "\n    ),".len(),
    );
    let open = format!("{}{}", &tall[..start], &tall[end..]);
    assert!(!open.contains(west));
    for at in [
        "(-2.4, 1.0, 0.205)",
        "(-2.8, 1.0, 0.205)",
        "(-2.8, 1.0, -0.5)",
    ] {
        the_scripts(fixed(&open, "torso", at)).unwrap();
    }
}

#[test]
fn a_robot_moved_by_more_than_its_legs_is_not_judged() {
    // The gate shuts the goal off, and is claimed so under plain gravity (see above).
    let shut = with_boxes(&tall_walls(builtin_text("antmaze-umaze")), &[GATE]);
    let gravity = "gravity: (0.0, 0.0, -9.81)";
    assert!(shut.contains(gravity));
    // W2: gravity pulling sideways slides it off edges; a weak pull lets it jump over the gate.
    for pull in ["gravity: (3.0, 0.0, -9.81)", "gravity: (0.0, 0.0, -1.0)"] {
        the_scripts(shut.replace(gravity, pull)).unwrap_or_else(|e| panic!("{pull}: {e}"));
    }
    // A bouncy floor may throw it higher than its legs push it.
    let floor = "density: 0.0, friction: 1.0, membership: 1,";
    the_scripts(shut.replacen(
        floor,
        "density: 0.0, friction: 1.0, restitution: 0.9, membership: 1,",
        1,
    ))
    .unwrap();
    // W3: a fixed body without a collider holding the torso on a rail carries it along, over the gate.
    let rail = "    89: (\n      components: {\n        \"qamlab_sim::authoring::Body\": (\n          name: \"rail\", \
                kind: Fixed, translation: (-1.0, 1.0, 0.205), rotation: (0.0, 0.0, 0.0, 1.0),\n        ),\n        \
                \"qamlab_sim::authoring::Joint\": (\n          name: \"rail\", parent: \"rail\", child: \"torso\", \
                kind: Prismatic(axis: (1.0, 0.0, 0.0)),\n          anchor: (-1.0, 1.0, 0.205), limits: Some((min: \
                -0.1, max: 5.0)),\n        ),\n      },\n    ),\n";
    // (The torso, a joint's child now, keeps its authored start: only a tree's root may be randomised.)
    the_scripts(with_entities(&fixed_start(&shut), &[rail.to_string()])).unwrap();
}

/// A scene text with its torso's RandomizePose taken out: the robot starts where it is authored.
fn fixed_start(text: &str) -> String {
    let drawn = "        \"qamlab_sim::authoring::RandomizePose\": (\n          x: Some((min: -1.1, max: -0.9)), \
                 y: Some((min: 0.9, max: 1.1)), yaw: Some((min: -0.1, max: 0.1)),\n        ),\n";
    assert!(text.contains(drawn), "the torso's RandomizePose");
    text.replacen(drawn, "", 1)
}

#[test]
fn a_robot_authored_above_its_floor_is_judged_from_where_it_lands() {
    let tall = tall_walls(builtin_text("antmaze-umaze"));
    // W1: authored 0.5 m up, the robot drops onto the floor of its cell; a shelf level with its feet, east of the
    // gate, is the script's floor, which the robot does not start on.
    let up = raised(&tall, 0.5);
    let shelf = ("shelf", [0.5, 0.5, 0.0], [1.5, 1.5, 0.5]);
    let e = unsolvable(with_boxes(&up, &[GATE, shelf]));
    assert!(e.contains("no way leads there"), "{e}");
    // Without the gate, the way is open from where it lands (and the shelf, which it climbs, leaves it unjudged).
    the_scripts(with_boxes(&up, &[shelf])).unwrap();
    // Over nothing at all (the floor moved south, off its cell), it is not judged.
    let floor = "translation: (0.0, 0.0, -0.05), rotation";
    let gated = with_boxes(&up, &[GATE, shelf]);
    assert!(gated.contains(floor));
    the_scripts(gated.replace(floor, "translation: (0.0, -1.5, -0.05), rotation")).unwrap();
}

#[test]
fn a_ledge_it_may_fall_off_is_not_judged() {
    // U1: past the east edge (the east wall gone), a floor 1 m lower beyond a 0.9 m gap: running off the edge,
    // the torso flies as far as its speed carries it, so a target on the lower floor is not judged, however
    // far it is.
    let tall = tall_walls(builtin_text("antmaze-umaze"));
    let east = "name: \"wall_east\"";
    let at = tall.find(east).unwrap();
    let (start, end) = (
        tall[..at].rfind("\n    5: (").unwrap(),
        at + tall[at..].find("\n    ),").unwrap() + "\n    ),".len(),
    );
    let open = format!("{}{}", &tall[..start], &tall[end..]);
    assert!(!open.contains(east));
    let randomized = "        \"qamlab_sim::authoring::RandomizeTarget\": (\n          x: Some((min: -1.25, max: -0.75)), y: Some((min: -1.25, max: -0.75)),\n        ),\n";
    let goal = "target: (-1.0, -1.0, 0.205), tolerance: 0.3)";
    let below = open
        .replace(randomized, "")
        .replace(goal, "target: (5.0, 1.0, -0.795), tolerance: 0.3)");
    let low = ("low_floor", [2.5, -1.6, -1.1], [6.0, 1.6, -1.0]);
    the_scripts(with_boxes(&below, &[low])).unwrap();
    // The same target with a wall, too tall to climb, along the edge: claimed.
    let edge = ("edge", [1.5, -1.6, 0.0], [1.6, 1.6, 1000.0]);
    let e = unsolvable(with_boxes(&below, &[low, edge]));
    assert!(e.contains("no way leads there"), "{e}");
}

/// W1: motors stiff and lightly damped enough let the ant crouch and jump over a wall: the same walled-off goal
/// that the built-in motors cannot reach is not claimed with them, nor with undamped ones (no speed bound).
#[test]
fn a_robot_with_motors_that_may_jump_the_walls_is_not_judged() {
    let ant = builtin_text("antmaze-umaze");
    let cut_off = tall_walls(&ant.replace(
        "half_extents: (1.0, 0.5, 0.15)",
        "half_extents: (2.0, 0.5, 0.15)",
    ));
    unsolvable(cut_off.clone());
    let motors = "stiffness: 40000.0, damping: 400.0, max_force: 1000.0";
    assert_eq!(cut_off.matches(motors).count(), 8);
    for heavy in [
        "stiffness: 1000000.0, damping: 1000.0, max_force: 100000.0",
        "stiffness: 40000.0, damping: 0.0, max_force: 1000.0",
    ] {
        the_scripts(cut_off.replace(motors, heavy)).unwrap();
    }
}

#[test]
fn a_start_that_draws_the_legs_into_a_wall_is_warned_of() {
    // The torso drawn up to the west wall: its back legs, carried with it, start inside the wall.
    let text = builtin_text("antmaze-umaze");
    let from = "x: Some((min: -1.1, max: -0.9)), y: Some((min: 0.9, max: 1.1))";
    assert!(text.contains(from));
    let near = text.replace(
        from,
        "x: Some((min: -1.36, max: -0.9)), y: Some((min: 0.9, max: 1.1))",
    );
    let warnings =
        qamlab_tasks::scene_warnings(&TaskScene::from_ron(&near, "near.scn.ron").unwrap());
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "\"back_left_shin\", joined to \"torso\" and moved with it, can start inside \"wall_west\""
        ) && w.contains("with \"torso\" at (-1.36, ")),
        "{warnings:#?}"
    );
    // The torso itself stays clear of the wall: only the legs are said.
    assert!(
        !warnings
            .iter()
            .any(|w| w.starts_with("\"torso\" can start inside")),
        "{warnings:#?}"
    );
}
