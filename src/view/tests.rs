//! The window's simulation wiring without a window: the stepping and policy plugins on the envs, checked
//! against the headless driver.

use bevy::app::TaskPoolPlugin;
use bevy::prelude::*;
use bevy::time::TimePlugin;
use clap::Parser;
use qamlab_sim::systems::StepOutput;
use qamlab_sim::{BatchedEnv, EnvOptions, EnvSpec, TaskScene};
use qamlab_tasks::{CubeOracle, OracleConfig};

use super::policy::{ActingPolicy, EpisodeStats, PolicyKind};
use super::stepping::{SimClock, SteppingPlugin};
use super::{ActingEnvsPlugins, ControlStep, Speed, ViewArgs, ViewTask};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    view: ViewArgs,
}

/// The window's App minus rendering and UI, for `qamlab view ARGS`.
fn app(args: &[&str]) -> App {
    app_with_scene(args, |_| {})
}

/// [`app`], with the task's scene changed by `edit` after loading.
fn app_with_scene(args: &[&str], edit: impl FnOnce(&mut qamlab_sim::TaskScene)) -> App {
    let mut args = Cli::parse_from(std::iter::once("view").chain(args.iter().copied())).view;
    args.task = Some(args.resolve_task().unwrap());
    args.seed = Some(args.resolve_seed().unwrap());
    let mut task = qamlab_tasks::load_task(args.task_name()).unwrap();
    edit(&mut task.scene);
    let spec = EnvSpec::of(&task.scene);
    let mut app = App::new();
    app.add_plugins((TaskPoolPlugin::default(), TimePlugin))
        .insert_resource(ViewTask {
            name: task.name.clone(),
            scene: task.scene.clone(),
            watch: None,
        })
        .insert_resource(ActingPolicy::from_args(&args, &spec).unwrap())
        .add_plugins(ActingEnvsPlugins(SteppingPlugin {
            num_envs: usize::from(args.envs),
            seed: args.seed(),
            speed: Speed::X1,
            end_on_success: true,
        }));
    app.finish();
    app.cleanup();
    app
}

/// A tiny untrained agent for `obs` observations and `actions` actions, saved in `dir`.
fn tiny_agent_file(dir: &std::path::Path, obs: usize, actions: usize) -> std::path::PathBuf {
    let config = qamlab_agent::AgentConfig {
        batch_size: 4,
        actor_hidden_dims: vec![8],
        value_hidden_dims: vec![8],
        num_qs: 2,
        ..qamlab_agent::AgentConfig::default()
    };
    let path = dir.join("agent.safetensors");
    qamlab_agent::Agent::new(config, obs, actions, tch::Device::Cpu, 0)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// Runs exactly `steps` control steps through the clock's single steps.
fn run_steps(app: &mut App, steps: u64) {
    let target = app.world().resource::<SimClock>().steps + steps;
    app.world_mut().resource_mut::<SimClock>().paused = true;
    while app.world().resource::<SimClock>().steps < target {
        let left = target - app.world().resource::<SimClock>().steps;
        app.world_mut().resource_mut::<SimClock>().single_steps = left as u32;
        app.update();
    }
}

#[test]
fn a_training_window_takes_its_config_files_seed_unless_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("my.toml");
    std::fs::write(&config, "seed = 5\n").unwrap();
    let config = config.to_str().unwrap();
    let view = |extra: &[&str]| {
        let mut args = Cli::parse_from(
            ["view", "--train", "--config", config]
                .into_iter()
                .chain(extra.iter().copied()),
        )
        .view;
        args.seed = Some(args.resolve_seed().unwrap());
        let seed = args.training.config(&args).unwrap().seed;
        (args.seed(), seed)
    };
    assert_eq!(view(&[]), (5, 5));
    assert_eq!(view(&["--seed", "3"]), (3, 3));
}

#[test]
fn the_window_steps_the_same_trajectories_as_the_headless_driver() {
    let mut window = app(&["--envs", "3", "--policy", "oracle"]);
    run_steps(&mut window, 120);

    let task = qamlab_tasks::load_task("cube-single").unwrap();
    // As the window runs them: a success ends its episode after the moment it is shown.
    let options = EnvOptions {
        terminate_on_success: true,
        episode_length: None,
        success_hold: super::stepping::success_hold_steps(&task.scene),
    };
    let mut env = BatchedEnv::new(&task.scene, 3, options).unwrap();
    let seeds = [0, 1, 2];
    let mut obs = env.reset(&seeds).unwrap().to_vec();
    let mut oracle =
        CubeOracle::new(&task.scene, env.spec(), OracleConfig::default(), &seeds).unwrap();
    for _ in 0..120 {
        let actions = oracle.act(&obs).to_vec();
        let out = env.step(&actions).unwrap();
        oracle.episodes_ended(out);
        obs = out.obs.clone();
    }
    assert_eq!(
        window.world().resource::<StepOutput>(),
        env.output(),
        "same seeds, same policy: same envs"
    );
}

#[test]
fn the_oracle_solves_episodes_and_each_is_counted_once() {
    let mut window = app(&["--envs", "2", "--policy", "oracle"]);
    run_steps(&mut window, 150);
    let stats = window.world().resource::<EpisodeStats>();
    let (episodes, successes) = (stats.episodes, stats.successes);
    assert!(
        episodes >= 4,
        "only {episodes} episodes in 150 steps of 2 envs"
    );
    assert!(
        successes * 10 >= episodes * 8,
        "the oracle solved {successes} of {episodes}"
    );

    // A policy that fails pauses the clock; the schedule runs on without stepping or counting anything.
    let before = window.world().resource::<StepOutput>().clone();
    window.world_mut().resource_mut::<ActingPolicy>().error = Some("test".into());
    for _ in 0..5 {
        window.world_mut().run_schedule(ControlStep);
    }
    assert_eq!(*window.world().resource::<StepOutput>(), before);
    assert_eq!(window.world().resource::<EpisodeStats>().episodes, episodes);
}

#[test]
fn the_window_walks_the_legged_robot_with_its_oracle() {
    let mut window = app(&[
        "--task",
        "antmaze-umaze",
        "--envs",
        "1",
        "--policy",
        "oracle",
    ]);
    run_steps(&mut window, 60);
    let policy = window.world().resource::<ActingPolicy>();
    assert_eq!(policy.kind, PolicyKind::Oracle);
    assert!(policy.error.is_none() && policy.fallback.is_none());
    // Three seconds of walking east from the start, (-1, 1), along the top corridor toward the far corner.
    let now = &window.world().resource::<StepOutput>().obs[..2];
    assert!(now[0] > -0.5 && now[1] > 0.7, "the torso is at {now:?}");
}

#[test]
fn a_policy_that_cannot_act_gives_way_to_random_actions() {
    // cube-single has an oracle; an agent is missing, so asking for one is refused up front...
    let args = Cli::parse_from(["view", "--policy", "agent"]).view;
    let task = qamlab_tasks::load_task("cube-single").unwrap();
    let spec = EnvSpec::new(&task.scene, 200);
    let err = ActingPolicy::from_args(&args, &spec)
        .err()
        .expect("no agent to act")
        .to_string();
    assert!(err.contains("--checkpoint"), "{err}");
    // The oracle of a task without one is refused when asked for, and gives way to random actions where it
    // would have acted by default.
    let pendulum =
        TaskScene::from_file(crate::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron"))
            .unwrap();
    let spec = EnvSpec::new(&pendulum, 200);
    let args = Cli::parse_from(["view", "--policy", "oracle"]).view;
    let mut oracle = ActingPolicy::from_args(&args, &spec).unwrap();
    let err = oracle
        .check_oracle(args.policy, &pendulum, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--policy oracle: task `pendulum` has no scripted oracle")
            && err.ends_with("`--policy random` acts at random"),
        "{err}"
    );
    let args = Cli::parse_from(["view"]).view;
    let mut default = ActingPolicy::from_args(&args, &spec).unwrap();
    default.check_oracle(args.policy, &pendulum, &spec).unwrap();
    assert_eq!(default.kind, PolicyKind::Random);

    // ...and a policy the envs cannot use after they are built falls back to random actions, which step.
    let mut window = app(&["--policy", "random"]);
    window.world_mut().resource_mut::<ActingPolicy>().kind = PolicyKind::Agent;
    window
        .world_mut()
        .resource_mut::<super::stepping::PendingRebuild>()
        .0 = true;
    run_steps(&mut window, 3);
    let policy = window.world().resource::<ActingPolicy>();
    assert_eq!(policy.kind, PolicyKind::Random);
    assert!(
        policy
            .fallback
            .as_deref()
            .is_some_and(|f| f.contains("agent cannot act"))
    );
    assert!(policy.error.is_none());
}

#[test]
fn seeds_at_the_top_of_the_range_wrap() {
    // The envs of each rebuild take the next seeds, from the largest `--seed` on (a run's config.toml records no
    // larger); past u64::MAX they would wrap, as every seed stream of the lab does.
    let mut window = app(&[
        "--envs",
        "3",
        "--policy",
        "oracle",
        "--seed",
        "9223372036854775807",
    ]);
    run_steps(&mut window, 5);
    window
        .world_mut()
        .resource_mut::<super::stepping::PendingRebuild>()
        .0 = true;
    run_steps(&mut window, 5);
    assert!(window.world().resource::<ActingPolicy>().error.is_none());
}

#[test]
fn a_checkpoint_of_another_task_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_agent_file(dir.path(), 3, 2);
    let args = Cli::parse_from(["view", "--checkpoint", path.to_str().unwrap()]).view;
    let task = qamlab_tasks::load_task("cube-single").unwrap();
    let spec = EnvSpec::new(&task.scene, 200);
    let err = ActingPolicy::from_args(&args, &spec)
        .err()
        .expect("a 3-observation agent cannot act in cube-single")
        .to_string();
    assert!(
        err.contains(
            "observations are 3-D and its actions 2-D, but task cube-single's are 28-D and 5-D"
        ) && err.contains("--task"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_no_checkpoint_is_refused_naming_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not an agent").unwrap();
    let args = Cli::parse_from(["view", "--checkpoint", path.to_str().unwrap()]).view;
    let task = qamlab_tasks::load_task("cube-single").unwrap();
    let spec = EnvSpec::new(&task.scene, 200);
    let err = format!(
        "{:#}",
        ActingPolicy::from_args(&args, &spec)
            .err()
            .expect("a text file is no checkpoint")
    );
    assert_eq!(err.matches("notes.txt").count(), 1, "{err}");
}

#[test]
fn training_that_cannot_start_is_refused_or_fails_the_command() {
    let task = qamlab_tasks::load_task("cube-single").unwrap();
    let spec = EnvSpec::new(&task.scene, 200);
    let dir = tempfile::tempdir().unwrap();
    // A run directory that holds something: refused before the window opens.
    let used = dir.path().join("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("notes.txt"), "").unwrap();
    let args = Cli::parse_from(["view", "--train", "--out", used.to_str().unwrap()]).view;
    let err = super::training::start(&args, &task.scene, &spec)
        .err()
        .expect("the run directory is in use")
        .to_string();
    assert!(err.contains("used"), "{err}");
    // A dataset of another task: refused before the window opens too.
    let dataset = |name: &str, obs_dim: usize| {
        let path = dir.path().join(name);
        let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
        npz.add_array("observations", &ndarray::Array2::<f32>::zeros((3, obs_dim)))
            .unwrap();
        npz.add_array("actions", &ndarray::Array2::<f32>::zeros((3, 5)))
            .unwrap();
        npz.add_array(
            "terminals",
            &ndarray::Array1::from(vec![false, false, true]),
        )
        .unwrap();
        npz.add_array("rewards", &ndarray::Array1::<f32>::zeros(3))
            .unwrap();
        npz.add_array("masks", &ndarray::Array1::<f32>::ones(3))
            .unwrap();
        npz.finish().unwrap();
        path
    };
    let out = dir.path().join("run");
    let train_args = |dataset: &std::path::Path| {
        Cli::parse_from([
            "view",
            "--train",
            "--dataset",
            dataset.to_str().unwrap(),
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
        .view
    };
    let other = dataset("other.npz", 4);
    let err = super::training::start(&train_args(&other), &task.scene, &spec)
        .err()
        .expect("a 4-D dataset does not fit cube-single")
        .to_string();
    assert!(
        err.contains("observations are 4-D and actions 5-D, but task cube-single has 28-D"),
        "{err}"
    );
    // A dataset the trainer refuses later (two transitions: less than one chunk) fails the training thread: the
    // window's command ends with that error.
    let short = dataset("short.npz", 28);
    let (handle, _link) = super::training::start(&train_args(&short), &task.scene, &spec).unwrap();
    while handle.is_running() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let err = handle.stop_and_join().unwrap_err().to_string();
    assert!(
        err.starts_with("training failed: dataset") && err.contains("fewer than one action chunk"),
        "{err}"
    );
}

#[test]
fn the_save_command_writes_the_acting_agent() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = tiny_agent_file(dir.path(), 28, 5);
    let mut app = app(&["--checkpoint", loaded.to_str().unwrap()]);
    // Into folders that are not there yet: the save makes them.
    let saved = dir.path().join("not/yet/saved.safetensors");
    app.insert_resource(super::policy::SavePath(saved.clone()));
    app.world_mut()
        .write_message(super::panel::ViewCommand::SaveCheckpoint);
    app.update();
    let policy = app.world().resource::<ActingPolicy>();
    assert_eq!(policy.saved, Some(Ok(saved.clone())));
    let (a, b) = (
        qamlab_agent::Agent::load(&loaded, tch::Device::Cpu).unwrap(),
        qamlab_agent::Agent::load(&saved, tch::Device::Cpu).unwrap(),
    );
    for ((name, x), (_, y)) in a.parameters().iter().zip(b.parameters().iter()) {
        assert!(x.equal(y), "{name} differs");
    }
}

#[test]
fn physics_past_f32_stops_the_window_naming_the_observation() {
    // The pinch site so far out that its velocity overflows once the palm turns (loading refuses such a site).
    let mut app = app_with_scene(&["--task", "cube-single", "--policy", "random"], |scene| {
        assert!(scene.move_site_unchecked("pinch", Vec3::new(3.0e38, 3.0e38, 0.0)));
    });
    run_steps(&mut app, 50);
    let error = app.world().resource::<ActingPolicy>().error.clone();
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("(`pinch.") && e.contains("left f32's range")),
        "{error:?}"
    );
}

#[test]
fn a_run_directory_brings_its_own_task() {
    let dir = tempfile::tempdir().unwrap();
    let run = qamlab_headless::run_dir::RunDir::new(dir.path());
    let config = qamlab_headless::TrainConfig {
        task: "/elsewhere/my-task.scn.ron".into(),
        ..Default::default()
    };
    std::fs::write(run.config(), config.to_toml().unwrap()).unwrap();
    std::fs::write(run.task_scene(), "(copy)").unwrap();
    let checkpoint = dir.path().to_str().unwrap();
    let args = Cli::parse_from(["view", "--checkpoint", checkpoint]).view;
    assert_eq!(
        args.resolve_task().unwrap(),
        run.task_scene().display().to_string()
    );
    // As does a checkpoint inside the run.
    let step = dir.path().join("checkpoints/step-5");
    let args = Cli::parse_from(["view", "--checkpoint", step.to_str().unwrap()]).view;
    assert_eq!(
        args.resolve_task().unwrap(),
        run.task_scene().display().to_string()
    );
    // --task still decides when given; without either, cube-single.
    let args = Cli::parse_from(["view", "--checkpoint", checkpoint, "--task", "cube-double"]).view;
    assert_eq!(args.resolve_task().unwrap(), "cube-double");
    let args = Cli::parse_from(["view"]).view;
    assert_eq!(args.resolve_task().unwrap(), "cube-single");
    // `--run`, as `qamlab eval` names a run, is the same flag.
    let args = Cli::parse_from(["view", "--run", checkpoint]).view;
    assert_eq!(args.checkpoint.as_deref(), Some(dir.path()));
    assert_eq!(
        args.resolve_task().unwrap(),
        run.task_scene().display().to_string()
    );
}

#[test]
fn train_flags_read_a_config_as_qamlab_train_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("e.toml");
    std::fs::write(&config, "online_steps = 100\n[agent]\nkind = \"qam-e\"\n").unwrap();
    let args = Cli::parse_from([
        "view",
        "--task",
        "cube-single",
        "--train",
        "--config",
        config.to_str().unwrap(),
        "--online-steps",
        "50",
    ])
    .view;
    let cfg = args.training.config(&args).unwrap();
    assert_eq!(
        (
            cfg.agent.kind,
            cfg.agent.edit_scale,
            cfg.online_steps,
            cfg.offline_steps
        ),
        (qamlab_agent::AgentKind::QamE, 0.1, 50, 0)
    );
    // Without a dataset there is no offline phase: no online steps either is a run of nothing, refused before the
    // window opens.
    let args = Cli::parse_from(["view", "--train", "--online-steps", "0"]).view;
    let err = format!("{:#}", args.training.config(&args).unwrap_err());
    assert!(
        err.contains("offline_steps = 0 and online_steps = 0"),
        "{err}"
    );
}

#[test]
fn a_run_checkpoint_whose_agent_differs_from_the_run_config_is_refused() {
    // `qamlab eval --run` refuses an agent copied in from another run; the window, which shows the run's curves
    // beside the agent, must too.
    let dir = tempfile::tempdir().unwrap();
    let run = qamlab_headless::run_dir::RunDir::new(dir.path().join("run"));
    let tiny = qamlab_agent::AgentConfig {
        batch_size: 4,
        actor_hidden_dims: vec![8],
        value_hidden_dims: vec![8],
        num_qs: 2,
        ..qamlab_agent::AgentConfig::default()
    };
    let config = qamlab_headless::TrainConfig {
        task: "cube-single".into(),
        agent: tiny.clone(),
        ..Default::default()
    };
    let step = run.checkpoints().join("step-5");
    std::fs::create_dir_all(&step).unwrap();
    std::fs::write(run.config(), config.to_toml().unwrap()).unwrap();
    std::fs::write(run.checkpoints().join("latest"), "step-5").unwrap();
    let task = qamlab_tasks::load_task("cube-single").unwrap();
    let spec = EnvSpec::of(&task.scene);
    let save = |agent: qamlab_agent::AgentConfig, seed| {
        qamlab_agent::Agent::new(agent, spec.obs_dim, spec.action_dim, tch::Device::Cpu, seed)
            .unwrap()
            .save(step.join("agent.safetensors"))
            .unwrap();
    };
    let given = |path: &std::path::Path| {
        let args = Cli::parse_from(["view", "--checkpoint", path.to_str().unwrap()]).view;
        ActingPolicy::from_args(&args, &spec).map(|policy| policy.checkpoint)
    };

    // The run's own agent acts, from the checkpoint `latest` names (the panel's curves are that file's run's).
    save(tiny.clone(), config.seed);
    assert_eq!(
        given(run.root()).unwrap(),
        Some(step.join("agent.safetensors"))
    );

    // An FQL agent in a QAM run: refused whether the run, the checkpoint or its agent file is given.
    let fql = qamlab_agent::AgentConfig {
        kind: qamlab_agent::AgentKind::Fql,
        ..tiny.clone()
    };
    save(fql, config.seed);
    for path in [
        run.root().to_path_buf(),
        step.clone(),
        step.join("agent.safetensors"),
    ] {
        let err = format!(
            "{:#}",
            given(&path).expect_err("an FQL agent under a QAM run's curves")
        );
        assert!(
            err.contains("its agent differs") && err.contains("kind = \"fql\" (config: \"qam\")"),
            "{}: {err}",
            path.display()
        );
    }

    // Another run's seed: refused as eval refuses it.
    save(tiny.clone(), config.seed + 1);
    let err = format!("{:#}", given(run.root()).unwrap_err());
    assert!(err.contains("trained with seed"), "{err}");

    // Copied out of the run, the file is the user's own and acts as it is.
    let own = dir.path().join("mine.safetensors");
    std::fs::copy(step.join("agent.safetensors"), &own).unwrap();
    assert_eq!(given(&own).unwrap(), Some(own.clone()));

    // The run trained on (a checkpoint of the run's own agent, published as training publishes it: the older one
    // removed) and then lost its `latest`: the run is read as `qamlab eval` reads it, from its newest complete
    // checkpoint.
    let newer = run.checkpoints().join("step-9");
    std::fs::create_dir_all(&newer).unwrap();
    qamlab_agent::Agent::new(
        tiny.clone(),
        spec.obs_dim,
        spec.action_dim,
        tch::Device::Cpu,
        config.seed,
    )
    .unwrap()
    .save(newer.join("agent.safetensors"))
    .unwrap();
    // Its other files only there: the state an empty object, which records no counts.
    std::fs::write(newer.join("replay.safetensors"), "").unwrap();
    std::fs::write(newer.join("state.json"), "{}").unwrap();
    run.publish_checkpoint(&newer, 1).unwrap();
    assert!(!step.exists());
    assert_eq!(
        given(run.root()).unwrap(),
        Some(newer.join("agent.safetensors"))
    );
    std::fs::remove_file(run.checkpoints().join("latest")).unwrap();
    assert_eq!(
        given(run.root()).unwrap(),
        Some(newer.join("agent.safetensors"))
    );
}

#[test]
fn a_policy_that_cannot_act_is_not_chosen_and_choosing_another_resumes_the_envs() {
    // No agent: A (as its greyed-out button) leaves the oracle acting, the envs stepping, and nothing to say.
    let mut app = app(&["--policy", "oracle"]);
    app.update();
    app.world_mut()
        .write_message(super::panel::ViewCommand::SetPolicy(PolicyKind::Agent));
    app.update();
    let policy = app.world().resource::<ActingPolicy>();
    assert_eq!(policy.kind, PolicyKind::Oracle);
    assert!(policy.error.is_none(), "{:?}", policy.error);
    assert!(!app.world().resource::<SimClock>().paused);
    // An acting error paused the window: choosing a policy that can act clears it, and the envs go on.
    app.world_mut().resource_mut::<ActingPolicy>().error = Some("oracle policy: failed".into());
    app.world_mut().resource_mut::<SimClock>().paused = true;
    app.world_mut()
        .write_message(super::panel::ViewCommand::SetPolicy(PolicyKind::Random));
    app.update();
    let policy = app.world().resource::<ActingPolicy>();
    assert_eq!(policy.kind, PolicyKind::Random);
    assert!(policy.error.is_none());
    assert!(!app.world().resource::<SimClock>().paused);
    // Physics that left f32's range is no acting error: another policy leaves it halted, and said.
    {
        let mut policy = app.world_mut().resource_mut::<ActingPolicy>();
        policy.error = Some("observation 3 is not finite".into());
        policy.halted = true;
    }
    app.world_mut().resource_mut::<SimClock>().paused = true;
    app.world_mut()
        .write_message(super::panel::ViewCommand::SetPolicy(PolicyKind::Oracle));
    app.update();
    assert!(app.world().resource::<ActingPolicy>().error.is_some());
    assert!(app.world().resource::<SimClock>().paused);
}
