//! `qamlab task`: load and check a task (built-in or scene file), print what an agent sees of it, and
//! optionally try it: the scripted oracle and random actions for a few episodes each.

use anyhow::Context;
use qamlab_sim::authoring::JointKind;
use qamlab_sim::extent::{Escape, SceneExtent};
use qamlab_sim::{BatchedEnv, EnvOptions, EnvSpec, TaskScene};
use qamlab_tasks::walker::WalkerBody;
use qamlab_tasks::{Oracle, OracleConfig, OracleMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Flags of `qamlab task`.
#[derive(clap::Args, Clone, Debug)]
pub struct TaskArgs {
    /// Built-in task name or path to a task scene file.
    #[arg(value_parser = super::task_arg())]
    pub task: String,
    /// Also run this many episodes with the scripted oracle (solving the goal) and with random actions, and
    /// report their success rates (at most 4096: one env each, stepped together).
    #[arg(long, default_value_t = 0, value_parser = super::at_most(qamlab_headless::limits::MAX_ENVS))]
    pub episodes: usize,
    /// Seed of the tried episodes (at most 2^63-1).
    #[arg(long, default_value_t = 0, value_parser = super::seed_arg)]
    pub seed: u64,
}

/// Runs `qamlab task`.
pub fn run(args: TaskArgs) -> anyhow::Result<()> {
    let task = qamlab_tasks::load_task(&args.task)?;
    let scene = &task.scene;
    let spec = EnvSpec::of(scene);
    let oracle = Oracle::new(scene, &spec, OracleConfig::default(), &[0]);
    let script = oracle.as_ref().map(Oracle::script);
    let source = if task.builtin {
        "built-in".to_string()
    } else {
        format!("file {}", args.task)
    };
    qamlab_headless::console::write_stdout_text(&describe(
        &task.name, &args.task, &source, scene, &spec, script,
    ))?;
    let unsolvable = match &oracle {
        Err(e @ qamlab_tasks::TaskError::Unsolvable { .. }) => Some(e.to_string()),
        _ => None,
    };
    // The scene's warnings repeat an unsolvable layout, which the `oracle:` line has said already.
    let mut warned = false;
    for warning in task.warnings() {
        if unsolvable.as_ref() != Some(&warning) {
            tracing::warn!("{warning}");
            warned = true;
        }
    }
    // A check that scripts and CI can act on: no episode can tell more of a task its robot cannot do.
    if unsolvable.is_some() {
        anyhow::bail!(
            "{}: its robot cannot do the task as the scene lays it out (`oracle:` above says where); change the scene",
            args.task
        );
    }
    if args.episodes > 0 {
        let oracle_solves = script.is_ok() && report_oracle_trial(&args, scene, warned)?;
        report_random_trial(&args, scene, &spec, oracle_solves)?;
    }
    // A check that scripts and CI can act on: a scene the agents cannot learn is not a task yet.
    if qamlab_headless::chunks::check_agent_action_space(&spec).is_err() {
        anyhow::bail!(
            "{}: the agents cannot act in this task (the `agents:` line above says why)",
            args.task
        );
    }
    Ok(())
}

/// Tries the oracle (solving the goal) for `--episodes` episodes and prints how it did, with notes where its
/// successes do not hold or are few (`warned`: the scene's warnings were printed, which may say why); returns
/// whether it solves the task in most episodes.
fn report_oracle_trial(args: &TaskArgs, scene: &TaskScene, warned: bool) -> anyhow::Result<bool> {
    let episodes = args.episodes;
    let tried = try_policy(scene, episodes, args.seed, Policy::Oracle)?;
    qamlab_headless::stdout_line!(
        "tried: oracle (solve) succeeds in {:.0}% of {}; the goals still hold at the episode's end in {:.0}%",
        100.0 * tried.success_rate,
        super::count(episodes, "episode"),
        100.0 * tried.held_rate
    )?;
    for note in tried.notes(episodes) {
        qamlab_headless::stdout_line!("{note}")?;
    }
    // Success counts the first moment every goal holds: a target with nothing to rest on is met in passing.
    let lost = tried.reached - tried.held;
    if lost > 0 && 2 * lost >= tried.reached && episodes >= 10 {
        qamlab_headless::stdout_line!(
            "note: in {lost} of the {} episodes the oracle solved, the goals no longer held at the end: an \
             object met its target in passing and did not stay (a target past the edge of what it rests \
             on, or above where it rests, holds only while the robot holds it there); success counts the \
             first moment, so such a task is solved in passing; move the target onto a surface if that is \
             not what you meant (`qamlab view --task {} --policy oracle` shows it)",
            tried.reached,
            qamlab_headless::shell::quote(&args.task)
        )?;
    }
    // The scripts check reach and layout, not every obstacle: data from a failing script rarely succeeds.
    if tried.success_rate < 0.5 && episodes >= 10 {
        qamlab_headless::stdout_line!(
            "note: the oracle fails in most episodes, so a dataset it collects has few successes to learn \
             from; watch where it fails (`qamlab view --task {} --policy oracle`): the scripts go around or \
             over what `assets/tasks/README.md` says they do, and nothing else (a wall in the gantry's \
             path taller than its carrying height, a cube too large or heavy for its fingers, a target sunk in the table){}",
            qamlab_headless::shell::quote(&args.task),
            if warned {
                "; the warnings above may say why"
            } else {
                ""
            }
        )?;
    }
    Ok(tried.success_rate >= 0.5)
}

/// Tries random actions for `--episodes` episodes and prints how they did, with notes where training from
/// nothing could not start (no success to learn from) or where the goals hold at reset; `oracle_solves` picks
/// the advice.
fn report_random_trial(
    args: &TaskArgs,
    scene: &TaskScene,
    spec: &EnvSpec,
    oracle_solves: bool,
) -> anyhow::Result<()> {
    let episodes = args.episodes;
    let tried = try_policy(scene, episodes, args.seed, Policy::Random)?;
    qamlab_headless::stdout_line!(
        "tried: random actions succeed in {:.0}% of {}",
        100.0 * tried.success_rate,
        super::count(episodes, "episode")
    )?;
    for note in tried.notes(episodes) {
        qamlab_headless::stdout_line!("{note}")?;
    }
    // Online learning from nothing starts from the successes exploration stumbles on (where the agents can act
    // at all: else the error below says why not).
    let agents_act = qamlab_headless::chunks::check_agent_action_space(spec).is_ok();
    if tried.success_rate == 0.0 && episodes >= 10 && agents_act {
        qamlab_headless::stdout_line!(
            "note: random actions never reached the goals in {episodes} episodes: training online from nothing \
             (`{}`) has no success to learn from and may stay at 0 %; {}",
            qamlab_headless::config::train_from_nothing_command(&args.task),
            if oracle_solves {
                format!(
                    "train it from a dataset the oracle collects (`qamlab collect --task {}`), as the oracle \
                     reaches them",
                    qamlab_headless::shell::quote(&args.task)
                )
            } else {
                "give it a dataset that reaches them, or check that the robot can reach the goals' targets \
                 (their ranges, its joints' limits, how far an action moves it: a `PositionDelta` motor moves \
                 less than its `scale` per step when its stiffness is low)"
                    .to_string()
            }
        )?;
    }
    // One control step cannot carry anything far: success then means the goals held at reset.
    if tried.at_first_step > 0 {
        qamlab_headless::stdout_line!(
            "note: {} of {episodes} random episodes succeeded at their first control step: the goals hold (nearly) \
             at reset; check their targets and tolerances against the initial poses",
            tried.at_first_step
        )?;
    }
    Ok(())
}

/// The task as text: timing, reward, observation layout, actions, goals, and whether the oracle drives it.
/// `name_as_given` is the task as the user named it (a built-in name or a scene file), for suggested commands.
fn describe(
    name: &str,
    name_as_given: &str,
    source: &str,
    scene: &TaskScene,
    spec: &EnvSpec,
    oracle: Result<&str, &qamlab_tasks::TaskError>,
) -> String {
    let s = &scene.settings;
    let mut out = format!("task {name} ({source}): the scene loads and checks\n");
    out += &format!(
        "episodes: {} control steps of {} s ({} physics substeps each), reward {:?}\n",
        s.episode_length, s.control_dt, s.substeps, s.reward
    );
    out += &format!("observation ({}):", super::count(spec.obs_dim, "value"));
    for (group, range) in &spec.obs_blocks {
        out += &format!(" {group} [{}..{}],", range.start, range.end);
    }
    out.pop();
    out += &format!("\nactions ({}):", super::count(spec.action_dim, "value"));
    for (k, a) in spec.action_names.iter().enumerate() {
        out += &format!(" {a} [{}, {}],", spec.action_low[k], spec.action_high[k]);
    }
    out.pop();
    // Where bodies start: what the reach and "nothing under it" messages refer to.
    let drawn: Vec<(usize, &qamlab_sim::scene::BodyDef)> = scene
        .bodies
        .iter()
        .enumerate()
        .filter(|(_, b)| b.randomize.is_some())
        .collect();
    if !drawn.is_empty() {
        out += "\nstarts (drawn at each reset):";
    }
    let carried_by = scene.carried_by();
    for (index, def) in drawn {
        let (b, r) = (&def.body, def.randomize.as_ref().expect("filtered"));
        let t = b.translation;
        out += &format!("\n  {}: authored at ({}, {}, {})", b.name, t.x, t.y, t.z);
        for (axis, range) in [("x", r.x), ("y", r.y), ("z", r.z)] {
            if let Some(range) = range {
                out += &format!(", {axis} drawn from [{}, {}]", range.min, range.max);
            }
        }
        if let Some(yaw) = r.yaw {
            out += &format!(", turned by [{}, {}] rad about z", yaw.min, yaw.max);
        }
        // The root of a joint tree moves its whole robot.
        let carried = carried_by
            .iter()
            .filter(|root| **root == Some(index))
            .count();
        if carried > 0 {
            out += &format!(", carrying the {carried} bodies joined to it");
        }
        for &(other, distance) in &def.keep_away {
            out += &format!(
                ", at least {distance} m from {}",
                scene.bodies[other].body.name
            );
        }
    }
    let moving: Vec<_> = scene
        .bodies
        .iter()
        .filter_map(|def| Some((&def.body.name, def.motion.as_ref()?)))
        .collect();
    if !moving.is_empty() {
        out += "\nmoving (kinematic, from where each episode starts):";
    }
    for (name, motion) in moving {
        let mut parts = Vec::new();
        if let Some(s) = motion.spin {
            parts.push(format!("spins at ({}, {}, {}) rad/s", s.x, s.y, s.z));
        }
        if let Some(s) = &motion.sway {
            // `amplitude * (sin(..) - sin(phase))` from the start: a stroke centred on the start only at phase 0.
            let lift = s.phase.sin();
            let (from, to) = (s.amplitude * (-1.0 - lift), s.amplitude * (1.0 - lift));
            // To the tenth of a millimetre: sin(-π/2) in float32 leaves noise (-0.0000001).
            let tidy = |x: f32| (x * 1e4).round() / 1e4 + 0.0;
            let point =
                |v: bevy::math::Vec3| format!("({}, {}, {})", tidy(v.x), tidy(v.y), tidy(v.z));
            parts.push(format!(
                "sways between {} and {} m from its start every {} s",
                point(from),
                point(to),
                s.period
            ));
        }
        out += &format!("\n  {name}: {}", parts.join(", "));
    }
    out += "\ngoals (success when every one holds):\n";
    for def in &scene.goals {
        let g = &def.goal;
        out += &format!(
            "  {}: {} within {} m of ({}, {}, {})",
            g.name, g.frame, g.tolerance, g.target.x, g.target.y, g.target.z
        );
        if let Some(on) = &g.relative_to {
            out += &format!(" in {on}'s frame, moving with it");
        }
        if let Some((r, _)) = &def.randomize {
            for (axis, range) in [("x", r.x), ("y", r.y), ("z", r.z)] {
                if let Some(range) = range {
                    out += &format!(", {axis} drawn from [{}, {}]", range.min, range.max);
                }
            }
            for (name, distance) in &r.min_distance_from {
                out += &format!(", at least {distance} m from {name}");
            }
        }
        out += "\n";
    }
    for def in &scene.joint_goals {
        let g = &def.goal;
        let units = match scene.joints[def.joint].joint.kind {
            JointKind::Prismatic { .. } => "m",
            _ => "rad",
        };
        out += &match g.randomize {
            Some(range) => format!(
                "  {}: joint {} within {} {units} of a target drawn from [{}, {}]",
                g.name, g.joint, g.tolerance, range.min, range.max
            ),
            None => format!(
                "  {}: joint {} within {} {units} of {}",
                g.name, g.joint, g.tolerance, g.target
            ),
        };
        out += "\n";
    }
    for def in &scene.axis_goals {
        let g = &def.goal;
        let (a, d) = (g.axis, g.direction);
        out += &format!(
            "  {}: {}'s axis ({}, {}, {}) within {} rad ({:.0}°) of the direction ({}, {}, {})",
            g.name,
            g.body,
            a.x,
            a.y,
            a.z,
            g.tolerance,
            g.tolerance.to_degrees(),
            d.x,
            d.y,
            d.z
        );
        if let Some(range) = g.randomize_yaw {
            out += &format!(
                ", turned about z by a yaw drawn from [{}, {}] rad ([{:.0}°, {:.0}°])",
                range.min,
                range.max,
                range.min.to_degrees(),
                range.max.to_degrees()
            );
        }
        out += "\n";
    }
    let agents = qamlab_headless::chunks::check_agent_action_space(spec);
    out += &match oracle {
        Ok(script) => {
            format!("oracle: the scripted oracle drives it ({script}; `qamlab collect` works)\n")
        }
        Err(e @ qamlab_tasks::TaskError::Unsolvable { .. }) => format!("oracle: none: {e}\n"),
        // No training to suggest where the agents cannot act (said next).
        Err(e) if agents.is_err() => {
            format!("oracle: none ({e}); `qamlab collect` cannot drive it\n")
        }
        Err(e) => format!(
            "oracle: none ({e}); `qamlab collect` cannot drive it, and `{} --out RUN` learns it online from \
             nothing, without a dataset (where its robot can reach its goals); `qamlab collect --run RUN` then \
             collects a dataset with the policy it learned\n",
            qamlab_headless::config::train_from_nothing_command(name_as_given)
        ),
    };
    let unsolvable = matches!(oracle, Err(qamlab_tasks::TaskError::Unsolvable { .. }));
    out += &match agents {
        Ok(()) if unsolvable => "agents: they act in its action space\n".to_string(),
        Ok(()) => "agents: they act in its action space (`qamlab train` works)\n".to_string(),
        Err(e) => format!("agents: cannot act in it: {e}\n"),
    };
    out
}

/// Who acts in a tried episode.
#[derive(Clone, Copy)]
enum Policy {
    Oracle,
    Random,
}

/// Runs `episodes` episodes (one per env, together) with `policy`: how many reach success, and how soon.
fn try_policy(
    scene: &TaskScene,
    episodes: usize,
    seed: u64,
    policy: Policy,
) -> anyhow::Result<Tried> {
    // The oracle's episodes run to their end, to see whether the goals it met still hold there; random actions'
    // end at success, so that `at_first_step` sees the goals that hold at reset.
    let options = EnvOptions {
        terminate_on_success: matches!(policy, Policy::Random),
        episode_length: None,
        ..EnvOptions::default()
    };
    let mut env = BatchedEnv::new(scene, episodes, options)?;
    let spec = env.spec().clone();
    let seeds: Vec<u64> = (0..episodes as u64).map(|i| seed.wrapping_add(i)).collect();
    let mut oracle = match policy {
        Policy::Oracle => Some(Oracle::new(
            scene,
            &spec,
            OracleConfig {
                mode: OracleMode::Solve,
                ..OracleConfig::default()
            },
            &seeds,
        )?),
        Policy::Random => None,
    };
    let mut random = RandomActions::new(seed, episodes);
    let mut obs = env.reset(&seeds).context("resetting the task")?.to_vec();
    // Per episode: whether it ended, and whether the goals held at that step (its end, or its success).
    let mut ended: Vec<Option<bool>> = vec![None; episodes];
    let mut reached = vec![false; episodes];
    let extent = SceneExtent::of(scene);
    let mut left: Vec<Option<Escape>> = vec![None; episodes];
    let walker = WalkerBody::find(scene, &spec);
    let mut upside_down = 0;
    let mut actions = vec![0.0; episodes * spec.action_dim];
    let mut at_first_step = 0;
    for step in 0..spec.episode_length {
        match oracle.as_mut() {
            Some(oracle) => actions.copy_from_slice(oracle.act(&obs)),
            None => actions = random.draw(&spec),
        }
        let out = env
            .step(&actions)
            .with_context(|| format!("stepping the task at control step {step}"))?;
        for (i, end) in ended.iter_mut().enumerate() {
            if end.is_some() {
                continue;
            }
            at_first_step += usize::from(step == 0 && out.success[i]);
            reached[i] |= out.success[i];
            if left[i].is_none() {
                let p = spec.qpos_dim;
                left[i] = extent.escape(&spec, &out.final_qpos[i * p..(i + 1) * p]);
            }
            if out.ended(i) {
                *end = Some(out.success[i]);
                let p = spec.qpos_dim;
                let qpos = &out.final_qpos[i * p..(i + 1) * p];
                upside_down += usize::from(walker.as_ref().is_some_and(|w| w.is_upside_down(qpos)));
            }
        }
        if ended.iter().all(Option::is_some) {
            break;
        }
        obs.copy_from_slice(&out.obs);
        if let Some(oracle) = oracle.as_mut() {
            oracle.episodes_ended(out);
        }
    }
    let solved = reached.iter().filter(|&&r| r).count();
    let held = ended.iter().filter(|e| **e == Some(true)).count();
    let count = left.iter().flatten().count();
    let left = left
        .into_iter()
        .flatten()
        .next()
        .map(|first| (count, first));
    Ok(Tried {
        success_rate: solved as f64 / episodes as f64,
        held_rate: held as f64 / episodes as f64,
        reached: solved,
        held,
        at_first_step,
        left,
        upside_down: walker.map(|w| (upside_down, w.name)),
    })
}

/// Uniform random actions, each episode's from a stream of its own, so that an episode's actions (and so its
/// outcome) do not depend on how many are tried beside it.
struct RandomActions {
    streams: Vec<ChaCha8Rng>,
}

impl RandomActions {
    fn new(seed: u64, episodes: usize) -> Self {
        let streams = (0..episodes as u64)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(i);
                rng
            })
            .collect();
        Self { streams }
    }

    /// One action for each episode, `[episodes * A]`.
    fn draw(&mut self, spec: &EnvSpec) -> Vec<f32> {
        self.streams
            .iter_mut()
            .flat_map(|rng| spec.random_actions(rng, 1))
            .collect()
    }
}

/// What [`try_policy`] saw.
struct Tried {
    /// Fraction of the episodes that reached success.
    success_rate: f64,
    /// Fraction of the episodes whose goals held at their last step (their end, or their success where success
    /// ends them).
    held_rate: f64,
    /// Episodes that reached success.
    reached: usize,
    /// Episodes whose goals held at their last step.
    held: usize,
    /// Episodes that reached success at their first control step.
    at_first_step: usize,
    /// Episodes in which a body left the scene (before they ended), and the first such body.
    left: Option<(usize, Escape)>,
    /// For a legged robot the walking script drives: the episodes that ended with its body upside down, and the
    /// body's name.
    upside_down: Option<(usize, String)>,
}

impl Tried {
    /// The notes on how the episodes ended, if any apply: that bodies left the scene in some, that the robot ended
    /// upside down in some.
    fn notes(&self, episodes: usize) -> Vec<String> {
        let left = self.left.as_ref().map(|(count, first)| {
            format!(
                "note: a body left the scene in {count} of {episodes} episodes (`collect` leaves such episodes \
                 out, and refuses a task that loses one in over half of them); in the first, {first}"
            )
        });
        let flipped = self
            .upside_down
            .as_ref()
            .filter(|(count, _)| *count > 0)
            .map(|(count, body)| {
                format!(
                    "note: the robot ended upside down in {count} of {episodes} episodes (its `{body}` turned \
                     over): a legged robot does not get up from its back, and its episode runs on to its end \
                     with it lying there (`collect` keeps such episodes)"
                )
            });
        left.into_iter().chain(flipped).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walker_that_ends_upside_down_is_noted() {
        // Random actions flip the ant in most episodes, and it never gets up.
        let scene = qamlab_tasks::load_task("antmaze-umaze").unwrap().scene;
        let tried = try_policy(&scene, 8, 0, Policy::Random).unwrap();
        let (flipped, body) = tried.upside_down.clone().expect("the ant is a walker");
        assert_eq!(body, "torso");
        assert!((1..=8).contains(&flipped), "{flipped}");
        let notes = tried.notes(8);
        assert!(
            notes.iter().any(|n| n.starts_with(&format!(
                "note: the robot ended upside down in {flipped} of 8 episodes (its `torso` turned over)"
            ))),
            "{notes:?}"
        );
        // The oracle keeps it on its feet; and the gantry is no walker.
        let tried = try_policy(&scene, 4, 0, Policy::Oracle).unwrap();
        assert_eq!(tried.upside_down, Some((0, "torso".to_string())));
        assert!(tried.notes(4).is_empty());
        let cube = qamlab_tasks::load_task("cube-single").unwrap().scene;
        assert_eq!(
            try_policy(&cube, 2, 0, Policy::Random).unwrap().upside_down,
            None
        );
    }

    #[test]
    fn a_randomised_robot_root_is_said_to_carry_its_bodies() {
        let scene = qamlab_tasks::load_task("antmaze-umaze").unwrap().scene;
        let spec = EnvSpec::of(&scene);
        let text = describe(
            "antmaze-umaze",
            "antmaze-umaze",
            "built-in",
            &scene,
            &spec,
            Ok("walker"),
        );
        assert!(
            text.contains(
                "turned by [-0.1, 0.1] rad about z, carrying the 8 bodies joined to it\n"
            ),
            "{text}"
        );
        // A cube carries nothing.
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        let spec = EnvSpec::of(&scene);
        let text = describe(
            "cube-single",
            "cube-single",
            "built-in",
            &scene,
            &spec,
            Ok("cube"),
        );
        assert!(!text.contains("carrying"), "{text}");
    }

    #[test]
    fn an_episodes_random_actions_do_not_depend_on_how_many_are_tried() {
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        let spec = EnvSpec::of(&scene);
        let (mut two, mut eight) = (RandomActions::new(5, 2), RandomActions::new(5, 8));
        for _ in 0..3 {
            let (a, b) = (two.draw(&spec), eight.draw(&spec));
            assert_eq!(a.len(), 2 * spec.action_dim);
            assert_eq!(a, b[..a.len()]);
            // And they are not one stream repeated.
            assert_ne!(
                b[..spec.action_dim],
                b[spec.action_dim..2 * spec.action_dim]
            );
        }
    }
}
