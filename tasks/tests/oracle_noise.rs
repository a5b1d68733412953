//! The cube oracle's exploration noise is smoothed in time as configured, and its gripper turns the short way to
//! a cube's faces.

use qamlab_sim::prelude::*;
use qamlab_tasks::prelude::*;

/// The built-in cube-single scene text, to edit into variants.
fn cube_single_text() -> &'static str {
    BUILTIN_TASKS
        .iter()
        .find(|(n, _)| *n == "cube-single")
        .expect("a built-in task")
        .1
}

/// `x` wrapped into `[-pi, pi)`.
fn wrap_angle(x: f32) -> f32 {
    use std::f32::consts::PI;
    (x + PI).rem_euclid(2.0 * PI) - PI
}

#[test]
fn the_exploration_noise_keeps_the_configured_correlation_from_step_to_step() {
    // Two oracles watch the same episodes: one noise-free (whose actions are executed), one noisy. Where neither's
    // action is clipped, their difference is noise x the smoothed noise state n_t, which, with
    // n_t = c n_(t-1) + sqrt(1 - c^2) eps_t, has variance 1 - c^(2t) and correlation c with n_(t-1).
    let scene = load_task("cube-single").unwrap().scene;
    let (n, seeds): (usize, Vec<u64>) = (8, (100..108).collect());
    let mut env = BatchedEnv::new(&scene, n, EnvOptions::default()).unwrap();
    let (noise, smoothing) = (0.05, 0.9);
    let noisy_config = OracleConfig {
        noise,
        smoothing,
        ..OracleConfig::default()
    };
    let mut clean = CubeOracle::new(&scene, env.spec(), OracleConfig::default(), &seeds).unwrap();
    let mut noisy = CubeOracle::new(&scene, env.spec(), noisy_config, &seeds).unwrap();
    let d = env.spec().action_dim;
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    // Per env and action value: the previous step's noise state, if it was seen unclipped.
    let mut previous: Vec<Option<f32>> = vec![None; n * d];
    let (mut states, mut pairs) = (Vec::new(), Vec::new());
    for t in 0..150 {
        let executed = clean.act(&obs).to_vec();
        let perturbed = noisy.act(&obs).to_vec();
        for k in 0..n * d {
            let (a, b) = (executed[k], perturbed[k]);
            // Clipped (or nearly: clean actions near a bound may be clipped once perturbed) values say nothing.
            let state = (a.abs() < 0.7 && b.abs() < 1.0).then(|| (b - a) / noise);
            // Past the first steps, where the state's variance is still growing from 0.
            if t >= 20
                && let Some(s) = state
            {
                states.push(s);
                if let Some(p) = previous[k] {
                    pairs.push((p, s));
                }
            }
            previous[k] = state;
        }
        let out = env.step(&executed).unwrap();
        clean.episodes_ended(out);
        noisy.episodes_ended(out);
        obs.copy_from_slice(&out.obs);
    }
    assert!(
        pairs.len() > 1000,
        "{} pairs of unclipped steps",
        pairs.len()
    );
    let mean_square = states.iter().map(|s| s * s).sum::<f32>() / states.len() as f32;
    assert!(
        (0.7..1.3).contains(&mean_square),
        "the noise state's variance is {mean_square}, want 1"
    );
    let lagged = pairs.iter().map(|(p, s)| p * s).sum::<f32>();
    let before = pairs.iter().map(|(p, _)| p * p).sum::<f32>();
    let correlation = lagged / before;
    println!(
        "{} pairs: variance {mean_square}, correlation {correlation}",
        pairs.len()
    );
    assert!(
        (correlation - smoothing).abs() < 0.1,
        "step-to-step correlation {correlation}, want {smoothing}"
    );
}

#[test]
fn the_gripper_turns_at_most_an_eighth_of_a_turn_to_meet_a_cubes_faces() {
    // Cubes turned 0.9 to 1.2 rad clockwise of the fingers: turning clockwise that far or anticlockwise by
    // 0.37 to 0.67 rad meets a pair of faces alike; the short way is the second (a cube repeats every quarter turn,
    // so no more than pi/4 is ever needed).
    let text = cube_single_text().replacen(
        "yaw: Some((min: -3.1416, max: 3.1416))",
        "yaw: Some((min: -1.2, max: -0.9))",
        1,
    );
    assert_ne!(text, cube_single_text(), "the cube's yaw range was edited");
    let scene = TaskScene::from_ron(&text, "turned").unwrap();
    let n = 6;
    let seeds: Vec<u64> = (200..200 + n as u64).collect();
    let options = EnvOptions {
        terminate_on_success: false,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(&scene, n, options).unwrap();
    let mut oracle = CubeOracle::new(&scene, env.spec(), OracleConfig::default(), &seeds).unwrap();
    let obs_dim = env.spec().obs_dim;
    // The palm's yaw (sin, cos) follows the pinch's position in the observation.
    let palm_yaw = |o: &[f32]| o[3].atan2(o[4]);
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let start: Vec<f32> = (0..n)
        .map(|i| palm_yaw(&obs[i * obs_dim..(i + 1) * obs_dim]))
        .collect();
    let mut furthest = vec![0.0f32; n];
    let mut solved = vec![false; n];
    for _ in 0..150 {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        for i in 0..n {
            let turned = wrap_angle(palm_yaw(&out.obs[i * obs_dim..(i + 1) * obs_dim]) - start[i]);
            furthest[i] = furthest[i].max(turned.abs());
            solved[i] |= out.success[i];
        }
        obs.copy_from_slice(&out.obs);
    }
    println!("furthest turns {furthest:?}");
    for (i, turned) in furthest.iter().enumerate() {
        assert!(
            *turned < std::f32::consts::FRAC_PI_4 + 0.1,
            "env {i}: the gripper turned {turned} rad"
        );
    }
    assert!(
        solved.iter().all(|&s| s),
        "every cube placed at its goal: {solved:?}"
    );
}
