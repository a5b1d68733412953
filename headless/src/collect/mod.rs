//! Data collection: N envs driven by a task's scripted oracle or by a trained agent's policy
//! ([`PolicySource`]), episodes written as an OGBench-layout dataset (see [`crate::dataset`]).

mod behaviour;

pub use behaviour::{PolicyChoice, PolicySource};

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, ensure};
use indicatif::ProgressBar;
use qamlab_sim::extent::{Escape, SceneExtent};
use qamlab_sim::{BatchedEnv, EnvOptions, EnvSpec, StepOutput, TaskScene};
use qamlab_tasks::{Oracle, OracleConfig, OracleMode, Task, TaskError, load_task};

use behaviour::{Behaviour, PolicyActor};

use crate::dataset::{DatasetRows, DatasetSource, Row, write_dataset_staged};
use crate::files::{StagedFile, check_cancelled};
use crate::limits::{MAX_ENVS, MAX_EPISODE_LENGTH, MAX_EPISODES};

/// What to collect.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectOptions {
    /// Built-in task name or scene path.
    pub task: String,
    /// Episodes to record.
    pub episodes: usize,
    /// Envs stepped together.
    pub envs: usize,
    /// Seed of everything random (env resets, oracle noise and sub-goals): same options, same file bytes.
    pub seed: u64,
    /// Oracle noise in normalised action units (OGBench: 0.1); 0 for clean demonstrations.
    pub noise: f32,
    /// "Play" data (random pick-and-place sub-goals) rather than solving the task's goal.
    pub play: bool,
    /// Probability of a uniformly random action in place of the oracle's (OGBench's "noisy" data: 0.1).
    pub random_action_prob: f32,
    /// Episode length replacing the task's.
    pub episode_length: Option<u32>,
    /// Output `.npz` path.
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// A trained policy acting in place of the task's oracle (`play` then means nothing; `noise` and
    /// `random_action_prob` perturb its actions as they do the oracle's).
    pub policy: Option<PolicySource>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            task: "cube-single".into(),
            episodes: 100,
            envs: 16,
            seed: 0,
            noise: 0.1,
            play: true,
            random_action_prob: 0.0,
            episode_length: None,
            out: PathBuf::from("dataset.npz"),
            progress: false,
            policy: None,
        }
    }
}

impl CollectOptions {
    /// The `qamlab collect` command that makes these options' rows again (recorded in the dataset's source), its
    /// task given as `task` (a built-in's name, or the scene file's absolute path: it runs from any directory).
    fn command_line(&self, task: &str) -> String {
        let mut line = format!(
            "qamlab collect --task {} --episodes {} --envs {} --seed {} --noise {}",
            crate::shell::quote(task),
            self.episodes,
            self.envs,
            self.seed,
            self.noise
        );
        if let Some(policy) = &self.policy {
            // As the scene's path is recorded: real, so that one run gives one command whatever link named it.
            let run = std::fs::canonicalize(&policy.run)
                .or_else(|_| std::path::absolute(&policy.run))
                .unwrap_or_else(|_| policy.run.clone());
            let device = if policy.device == tch::Device::Cpu {
                "cpu"
            } else {
                "cuda"
            };
            line.push_str(&format!(
                " --run {} --step {} --device {device}",
                crate::shell::quote(&run.display().to_string()),
                policy.step
            ));
            if let Some(threads) = policy.cpu_threads {
                line.push_str(&format!(" --cpu-threads {threads}"));
            }
            if let Some(crc) = policy.checkpoint_crc32 {
                line.push_str(&format!(" --checkpoint-crc32 {crc:08x}"));
            }
        } else if !self.play {
            line.push_str(" --solve");
        }
        if self.random_action_prob > 0.0 {
            line.push_str(&format!(
                " --random-action-prob {}",
                self.random_action_prob
            ));
        }
        if let Some(length) = self.episode_length {
            line.push_str(&format!(" --episode-length {length}"));
        }
        line
    }
}

/// What a collection produced.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectSummary {
    /// The dataset written.
    pub path: PathBuf,
    /// Episodes recorded.
    pub episodes: usize,
    /// Transitions (actions) recorded: episodes x episode length.
    pub transitions: usize,
    /// Rows written (transitions plus one final state per episode).
    pub rows: usize,
    /// Fraction of recorded steps whose state satisfied the task's goal.
    pub success_fraction: f64,
    /// Sub-tasks the oracle completed over all envs: cubes put down, or places walked to (0 for a policy).
    pub subgoals: u64,
    /// Wall time of the collection, seconds.
    pub seconds: f64,
    /// Env steps per second, all envs together (including steps of envs beyond the episode quota).
    pub env_steps_per_sec: f64,
    /// Episodes run but left out of the dataset, as a body left the scene in them (others were run in their place),
    /// and the first such body.
    pub left_out: Option<(usize, Escape)>,
}

impl CollectSummary {
    /// The warning that episodes were left out as a body left the scene in them, if any were.
    pub fn left_out_warning(&self) -> Option<String> {
        self.left_out.as_ref().map(|(count, first)| {
            let run = self.episodes + count;
            format!(
                "{}: left out {count} of the {run} episodes run ({:.1}%), in which a body left the scene; others ran \
                 in their place; in the first, {first}",
                self.path.display(),
                100.0 * *count as f64 / run as f64,
            )
        })
    }
}

/// Seed of stream `i` derived from the collection seed (splitmix-style, so nearby seeds give unrelated streams).
fn stream_seed(seed: u64, salt: u64, i: u64) -> u64 {
    let mut z =
        seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks the output path before collecting (and before a policy is loaded), so a wrong one does not cost the
/// whole collection.
pub fn check_out(out: &Path) -> anyhow::Result<()> {
    let shown = out.display();
    ensure!(
        !out.is_dir(),
        "collect: --out {shown} is a directory; give the .npz file to write"
    );
    // `x.npz/` and `x.npz/.` name a folder, which no file can take the name of (their extension still reads
    // `npz`: Rust's paths drop a trailing `/` and `.`).
    let last = out
        .as_os_str()
        .as_encoded_bytes()
        .rsplit(|&b| b == b'/')
        .next();
    ensure!(
        !matches!(last, Some(b"" | b"." | b"..")),
        "collect: --out {shown} ends as a directory's name does; give the .npz file to write"
    );
    ensure!(
        out.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npz")),
        "collect: --out {shown}: datasets are written as .npz (OGBench's layout); give a file name ending in .npz"
    );
    crate::files::check_writable(out, "collect: --out")
}

/// Collects `opts.episodes` oracle episodes and writes them to `opts.out`.
/// Errors name the `qamlab collect` flag of the option at fault.
pub fn collect(opts: &CollectOptions) -> anyhow::Result<CollectSummary> {
    collect_staged(opts)?.put_in_place()
}

/// A collection written to a temporary file beside its `out`, not yet under that name (see [`StagedFile`]).
#[derive(Debug)]
pub struct StagedCollection {
    file: StagedFile,
    summary: CollectSummary,
}

impl StagedCollection {
    /// The name the dataset takes.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Renames the dataset to its `out`; returns what was collected.
    pub fn put_in_place(self) -> anyhow::Result<CollectSummary> {
        self.file.put_in_place()?;
        Ok(self.summary)
    }

    /// Renames the dataset to its `out` where nothing has that name (see [`StagedFile::put_in_place_new`]);
    /// returns what was collected, or where the name was taken (by a file made since the caller looked), the
    /// collection still staged, to be put elsewhere. Other failures are errors.
    pub fn put_in_place_new(self) -> anyhow::Result<Result<CollectSummary, Self>> {
        let summary = self.summary;
        match self.file.put_in_place_new() {
            Ok(()) => Ok(Ok(summary)),
            Err(not) if not.taken => Ok(Err(Self {
                file: not.staged,
                summary,
            })),
            Err(not) => Err(not.error),
        }
    }

    /// The collection, to take the name `name` beside its `out`.
    pub fn renamed(self, name: &str) -> Self {
        let file = self.file.renamed(name);
        let summary = CollectSummary {
            path: file.path().to_path_buf(),
            ..self.summary
        };
        Self { file, summary }
    }
}

/// Checks everything that can be checked before collecting: the options (each within its bound, see
/// [`crate::limits`]), the task, the output path, that the rows fit in memory, and that a policy's run trained on
/// this task's columns ([`PolicySource::check_task`]). Returns the task.
pub fn check_collect(opts: &CollectOptions) -> anyhow::Result<Task> {
    check_options(opts)?;
    let task = load_task(&opts.task)?;
    check_memory(opts, &task)?;
    if let Some(policy) = &opts.policy {
        policy.check_task(&task.scene, &EnvSpec::of(&task.scene))?;
    }
    Ok(task)
}

/// Collects `opts.episodes` oracle episodes and writes them beside `opts.out`, to be put in place: the files of
/// several collections (a dataset and its validation file) can then replace the old ones together.
/// [`crate::files::cancel_writes`] stops it, with nothing left on disk.
pub fn collect_staged(opts: &CollectOptions) -> anyhow::Result<StagedCollection> {
    let task = check_collect(opts)?;
    let n = opts.envs.min(opts.episodes);
    let mut env = BatchedEnv::new(
        &task.scene,
        n,
        EnvOptions {
            terminate_on_success: false,
            episode_length: opts.episode_length,
            ..EnvOptions::default()
        },
    )
    .with_context(|| format!("building {n} envs of task {}", task.name))?;
    let spec = env.spec().clone();
    let length = spec.episode_length as usize;
    let env_seeds: Vec<u64> = (0..n as u64)
        .map(|i| stream_seed(opts.seed, 1, i))
        .collect();
    let mut behaviour = build_behaviour(opts, &task.scene, &spec, n)?;

    let bar = progress_bar(opts);
    let mut log = crate::console::LogProgress::new(opts.progress);
    let (o, a, p, v) = (spec.obs_dim, spec.action_dim, spec.qpos_dim, spec.qvel_dim);
    let mut all = DatasetRows::new(o, a, p, v);
    // The memory was checked against the machine's; the allocator may still refuse it.
    ensure!(
        all.try_reserve_exact(opts.episodes * (length + 1)),
        "collect: --episodes {}: the memory for {} rows could not be had",
        opts.episodes,
        opts.episodes * (length + 1)
    );
    let start = Instant::now();
    let stepping = || format!("collecting task {}", opts.task);
    let obs = env.reset(&env_seeds).with_context(stepping)?.to_vec();
    let mut episodes = Episodes {
        rows: (0..n).map(|_| DatasetRows::new(o, a, p, v)).collect(),
        obs,
        qpos: env.output().qpos.clone(),
        qvel: env.output().qvel.clone(),
        dummy: vec![0.0f32; a],
        successes: vec![0; n],
        left: vec![None; n],
        extent: SceneExtent::of(&task.scene),
    };
    let (mut steps, mut successes) = (0usize, 0usize);
    let (mut recorded, mut run) = (0, 0);
    let mut left_out: Option<(usize, Escape)> = None;
    while recorded < opts.episodes {
        let active = (opts.episodes - recorded).min(n);
        for t in 0..length {
            check_cancelled()?;
            let actions = behaviour.act(&episodes.obs)?;
            let out = env.step(&actions).with_context(stepping)?;
            steps += n;
            episodes.record_step(active, &actions, out, t + 1 == length, &spec);
            behaviour.episodes_ended(out);
        }
        let kept = episodes.move_to(active, &mut all);
        run += active;
        recorded += kept.episodes;
        successes += kept.successes;
        if let Some(first) = kept.left_out {
            let count = left_out.as_ref().map_or(0, |(c, _)| *c) + active - kept.episodes;
            let first = left_out.map_or(first, |(_, f)| f);
            // A few in thousands is the play data of the built-ins (a cube pushed off the table); more is the
            // task's doing, said in the warning. Past half, most of the work is thrown away, and where every
            // episode loses a body the collection would never end.
            ensure!(
                count < 3 || count * 2 <= run,
                "collecting task {}: a body left the scene in {count} of {run} episodes, too many to leave out: \
                 {first}",
                opts.task
            );
            left_out = Some((count, first));
        }
        let rate = steps as f64 / start.elapsed().as_secs_f64();
        bar.set_position(recorded as u64);
        bar.set_message(format!("{rate:.0} env steps/s"));
        if log.due() && recorded < opts.episodes {
            // Named by its file: a dataset and its validation file are collected one after the other.
            crate::stderr_line!(
                "collect {}: {recorded} of {} episodes, {rate:.0} env steps/s, {:.0} s in",
                opts.out.display(),
                opts.episodes,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut source = DatasetSource::new(&task.scene, &spec, String::new());
    source.collected_with = opts.command_line(source.task_argument());
    let file = write_dataset_staged(&opts.out, &all, &source)?;
    bar.finish_and_clear();
    let transitions = opts.episodes * length;
    let subgoals = behaviour.subgoals_reached(n);
    let summary = CollectSummary {
        path: opts.out.clone(),
        episodes: opts.episodes,
        transitions,
        rows: all.len(),
        success_fraction: successes as f64 / transitions as f64,
        subgoals,
        seconds,
        env_steps_per_sec: steps as f64 / seconds.max(1e-9),
        left_out,
    };
    Ok(StagedCollection { file, summary })
}

/// Checks the options before anything is built, naming the flag at fault and its bounds.
fn check_options(opts: &CollectOptions) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_EPISODES).contains(&opts.episodes),
        "collect: --episodes must be from 1 to {MAX_EPISODES}, got {}",
        opts.episodes
    );
    ensure!(
        (1..=MAX_ENVS).contains(&opts.envs),
        "collect: --envs must be from 1 to {MAX_ENVS}, got {}",
        opts.envs
    );
    ensure!(
        opts.noise.is_finite() && opts.noise >= 0.0,
        "collect: --noise must be a finite number >= 0, got {}",
        opts.noise
    );
    ensure!(
        (0.0..=1.0).contains(&opts.random_action_prob),
        "collect: --random-action-prob must lie in [0, 1], got {}",
        opts.random_action_prob
    );
    if let Some(length) = opts.episode_length {
        ensure!(
            (1..=MAX_EPISODE_LENGTH).contains(&length),
            "collect: --episode-length must be from 1 to {MAX_EPISODE_LENGTH}, got {length}"
        );
    }
    check_out(&opts.out)
}

/// Refuses, before anything is allocated, a collection whose rows would not fit in memory: the dataset's, and
/// each env's episode in progress.
fn check_memory(opts: &CollectOptions, task: &Task) -> anyhow::Result<()> {
    let spec = EnvSpec::of(&task.scene);
    let rows = DatasetRows::new(spec.obs_dim, spec.action_dim, spec.qpos_dim, spec.qvel_dim);
    let length = opts
        .episode_length
        .unwrap_or(task.scene.settings.episode_length);
    let per_episode = u64::from(length) + 1;
    let held = (opts.episodes as u64).saturating_add(opts.envs.min(opts.episodes) as u64);
    let bytes = held
        .checked_mul(per_episode)
        .and_then(|rows_held| rows_held.checked_mul(rows.row_bytes() as u64));
    crate::limits::check_memory(
        bytes,
        &format!(
            "collect: --episodes {} of {per_episode} rows each ({} bytes a row)",
            opts.episodes,
            rows.row_bytes()
        ),
    )
}

/// What acts in `n` envs: the options' policy, else the task's oracle in the mode they ask for; either explored
/// with the noise they ask for.
fn build_behaviour(
    opts: &CollectOptions,
    scene: &TaskScene,
    spec: &EnvSpec,
    n: usize,
) -> anyhow::Result<Behaviour> {
    let seeds: Vec<u64> = (0..n as u64)
        .map(|i| stream_seed(opts.seed, 2, i))
        .collect();
    let config = OracleConfig {
        mode: if opts.play {
            OracleMode::Play
        } else {
            OracleMode::Solve
        },
        noise: opts.noise,
        random_action_prob: opts.random_action_prob,
        play_region: OracleConfig::play_region_of(scene),
        ..OracleConfig::default()
    };
    if let Some(policy) = &opts.policy {
        let actor = PolicyActor::new(policy, spec, config, &seeds, opts.seed);
        return Ok(Behaviour::Policy(Box::new(actor)));
    }
    // A scene file's own task name may not be its file's: name what --task gave.
    let oracle = Oracle::new(scene, spec, config, &seeds).map_err(|e| {
        let way_out = match e {
            // Only where the agents can act in it (else the reason they cannot).
            TaskError::NoOracle { .. } => match crate::chunks::check_agent_action_space(spec) {
                Ok(()) => format!(
                    "; a task without one is learned online from nothing, no dataset: `{} --out RUN`; then `qamlab \
                     collect --run RUN` collects a dataset with the policy it learned",
                    crate::config::train_from_nothing_command(&opts.task)
                ),
                Err(why) => format!("; nor can the agents learn it online: {why}"),
            },
            _ => String::new(),
        };
        anyhow::anyhow!("collect: --task {}: {e}{way_out}", opts.task)
    })?;
    Ok(Behaviour::Oracle(Box::new(oracle)))
}

/// The episode counter, hidden unless the options ask for progress.
fn progress_bar(opts: &CollectOptions) -> ProgressBar {
    crate::console::progress_bar("collect", opts.episodes as u64, "episodes", opts.progress)
}

/// Each env's episode so far, and the state (observation, qpos, qvel: `[N * dim]`) its next step starts from.
struct Episodes {
    rows: Vec<DatasetRows>,
    obs: Vec<f32>,
    qpos: Vec<f32>,
    qvel: Vec<f32>,
    /// The action of an episode's final row.
    dummy: Vec<f32>,
    /// Each env's steps at success in its episode so far.
    successes: Vec<usize>,
    /// Each env's first body to leave the scene in its episode so far: such an episode is left out.
    left: Vec<Option<Escape>>,
    /// The box bodies must stay near ([`SceneExtent::escape`]).
    extent: SceneExtent,
}

/// What [`Episodes::move_to`] moved: the episodes kept and their steps at success, and the first body to leave the
/// scene in those left out.
struct Kept {
    episodes: usize,
    successes: usize,
    left_out: Option<Escape>,
}

impl Episodes {
    /// Records step `out`, taken with `actions`, in the first `active` envs' episodes (with their final states if
    /// the step is the episodes' `last`), noting a body that left the scene, and moves on to the state it reached.
    fn record_step(
        &mut self,
        active: usize,
        actions: &[f32],
        out: &StepOutput,
        last: bool,
        spec: &EnvSpec,
    ) {
        for (i, rows) in self.rows.iter_mut().enumerate().take(active) {
            let (o, a, p, v) = (rows.obs_dim, rows.action_dim, rows.qpos_dim, rows.qvel_dim);
            rows.push(Row {
                observation: &self.obs[i * o..(i + 1) * o],
                action: &actions[i * a..(i + 1) * a],
                reward: out.reward[i],
                success: out.success[i],
                terminal: false,
                qpos: &self.qpos[i * p..(i + 1) * p],
                qvel: &self.qvel[i * v..(i + 1) * v],
            });
            self.successes[i] += usize::from(out.success[i]);
            if self.left[i].is_none() {
                let p = spec.qpos_dim;
                self.left[i] = self
                    .extent
                    .escape(spec, &out.final_qpos[i * p..(i + 1) * p]);
            }
            if last {
                // The episode's final state, with a dummy action (OGBench's layout).
                rows.push(Row {
                    observation: &out.final_obs[i * o..(i + 1) * o],
                    action: &self.dummy,
                    reward: out.reward[i],
                    success: out.success[i],
                    terminal: true,
                    qpos: &out.final_qpos[i * p..(i + 1) * p],
                    qvel: &out.final_qvel[i * v..(i + 1) * v],
                });
            }
        }
        self.obs.copy_from_slice(&out.obs);
        self.qpos.copy_from_slice(&out.qpos);
        self.qvel.copy_from_slice(&out.qvel);
    }

    /// Moves the first `active` envs' finished episodes to `all`, in env order, but those in which a body left the
    /// scene, which are dropped: a body falling without end is no data of the task.
    fn move_to(&mut self, active: usize, all: &mut DatasetRows) -> Kept {
        let mut kept = Kept {
            episodes: 0,
            successes: 0,
            left_out: None,
        };
        for i in 0..active {
            match self.left[i].take() {
                None => {
                    all.append(&self.rows[i]);
                    kept.episodes += 1;
                    kept.successes += self.successes[i];
                }
                Some(escape) => {
                    kept.left_out.get_or_insert(escape);
                }
            }
            self.rows[i].clear();
            self.successes[i] = 0;
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::load_dataset;
    use std::path::Path;

    fn small(out: PathBuf, seed: u64) -> CollectOptions {
        CollectOptions {
            episodes: 5,
            envs: 3,
            seed,
            episode_length: Some(40),
            out,
            ..CollectOptions::default()
        }
    }

    #[test]
    fn an_episode_in_which_a_body_left_the_scene_is_left_out() {
        let scene = TaskScene::from_ron(qamlab_tasks::BUILTIN_TASKS[0].1, "cube-single").unwrap();
        let spec = BatchedEnv::new(&scene, 1, EnvOptions::default())
            .unwrap()
            .spec()
            .clone();
        let (o, a, p, v) = (spec.obs_dim, spec.action_dim, spec.qpos_dim, spec.qvel_dim);
        let mut episodes = Episodes {
            rows: (0..3).map(|_| DatasetRows::new(o, a, p, v)).collect(),
            obs: vec![0.0; 3 * o],
            qpos: vec![0.0; 3 * p],
            qvel: vec![0.0; 3 * v],
            dummy: vec![0.0; a],
            successes: vec![0; 3],
            left: vec![None; 3],
            extent: SceneExtent::of(&scene),
        };
        // Env i's observations and states are all i; env 1's cube (the last body) is 20 m below the table.
        let step = |episodes: &mut Episodes, last: bool| {
            let fill = |dim: usize| (0..3 * dim).map(|k| (k / dim) as f32).collect::<Vec<f32>>();
            let mut final_qpos = fill(p);
            let cube = spec.state_bodies.iter().position(|b| b == "cube").unwrap();
            final_qpos[p + cube * qamlab_sim::QPOS_PER_BODY + 2] = -20.0;
            let out = StepOutput {
                obs: fill(o),
                final_obs: fill(o),
                qpos: fill(p),
                qvel: fill(v),
                final_qpos,
                final_qvel: fill(v),
                reward: vec![1.0; 3],
                success: vec![true; 3],
                ..StepOutput::default()
            };
            episodes.obs = fill(o);
            episodes.record_step(3, &vec![0.0; 3 * a], &out, last, &spec);
        };
        step(&mut episodes, false);
        step(&mut episodes, true);
        let mut all = DatasetRows::new(o, a, p, v);
        let kept = episodes.move_to(3, &mut all);
        assert_eq!((kept.episodes, kept.successes), (2, 4));
        assert!(kept.left_out.is_some_and(|e| {
            e.to_string()
                .starts_with("body \"cube\" left the scene: it is at ")
        }),);
        // Envs 0 and 2's rows only: two steps and a final state each.
        assert_eq!(all.len(), 6);
        let first_obs: Vec<f32> = (0..6).map(|r| all.observations[r * o]).collect();
        assert_eq!(first_obs, [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
        assert!(episodes.rows.iter().all(|r| r.is_empty()));
        assert!(episodes.left.iter().all(Option::is_none));
    }

    #[test]
    fn a_task_that_loses_a_body_in_most_episodes_is_refused_with_the_first() {
        // A table 10 cm across: the cube starts over it in few episodes, and falls in the rest.
        let dir = tempfile::tempdir().unwrap();
        let scene = dir.path().join("small-table.scn.ron");
        let text = qamlab_tasks::BUILTIN_TASKS[0]
            .1
            .replace(
                "half_extents: (0.5, 0.5, 0.05)",
                "half_extents: (0.05, 0.05, 0.05)",
            )
            .replace("name: \"cube-single\"", "name: \"small-table\"");
        std::fs::write(&scene, text).unwrap();
        let opts = CollectOptions {
            task: scene.to_string_lossy().into_owned(),
            episodes: 20,
            envs: 4,
            episode_length: Some(40),
            out: dir.path().join("d.npz"),
            ..CollectOptions::default()
        };
        let err = format!("{:#}", collect_staged(&opts).err().unwrap());
        assert!(
            err.contains("a body left the scene in 4 of 4 episodes, too many to leave out: body \"cube\" left the \
                          scene"),
            "{err}"
        );
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 1, "nothing but the scene is left");
    }

    #[test]
    fn random_actions_replace_the_oracle_at_the_given_rate() {
        let dir = tempfile::tempdir().unwrap();
        let actions_of = |prob: f32, name: &str| {
            let path = dir.path().join(name);
            collect(&CollectOptions {
                noise: 0.0,
                random_action_prob: prob,
                ..small(path.clone(), 3)
            })
            .unwrap();
            load_dataset(&path).unwrap().transitions.actions
        };
        let clean = actions_of(0.0, "clean.npz");
        let noisy = actions_of(0.3, "noisy.npz");
        // Uniform random actions differ from the script's in almost every component; the rest of
        // the steps stay scripted, so only part of the rows change.
        let rows_changed = clean
            .chunks(5)
            .zip(noisy.chunks(5))
            .filter(|(a, b)| a != b)
            .count();
        let rows = clean.len() / 5;
        assert!(
            rows_changed > rows / 10 && rows_changed < rows,
            "{rows_changed} of {rows}"
        );
        let err = collect(&CollectOptions {
            random_action_prob: 1.5,
            ..small(dir.path().join("bad.npz"), 3)
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("--random-action-prob"));
    }

    #[test]
    fn the_walking_task_is_collected_like_the_cube_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str| {
            let path = dir.path().join(name);
            let summary = collect(&CollectOptions {
                task: "antmaze-umaze".into(),
                ..small(path.clone(), 5)
            })
            .unwrap();
            (summary, std::fs::read(&path).unwrap(), path)
        };
        let (summary, bytes, path) = run("a.npz");
        assert_eq!((summary.transitions, summary.rows), (200, 205));
        let data = load_dataset(&path).unwrap();
        // Torso position, quaternion, velocities, 8 joint positions and velocities, the goal: 32; 8 joint targets.
        assert_eq!((data.obs_dim(), data.action_dim()), (32, 8));
        assert!(
            data.transitions
                .actions
                .iter()
                .all(|a| (-1.0..=1.0).contains(a))
        );
        // The robot walks: its torso (x, y at the start: -1, 1) has moved by the end of each 40-step episode.
        let ends: Vec<&[f32]> = data
            .transitions
            .next_observations
            .chunks(32)
            .zip(&data.transitions.terminals)
            .filter(|(_, t)| **t == 1.0)
            .map(|(o, _)| o)
            .collect();
        assert_eq!(ends.len(), 5);
        assert!(ends.iter().all(|o| (o[0] + 1.0).hypot(o[1] - 1.0) > 0.1));
        assert_eq!(run("b.npz").1, bytes, "the same seed gives the same bytes");
    }

    #[test]
    fn a_wrong_output_path_is_refused_before_collecting() {
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("taken.npz");
        std::fs::write(&taken, b"a file").unwrap();
        for (out, expected) in [
            (dir.path().join("data.csv"), "ending in .npz"),
            (taken.join("d.npz"), "taken.npz is a file"),
            (dir.path().to_path_buf(), "is a directory"),
            (
                dir.path().join("new.npz/"),
                "ends as a directory's name does",
            ),
            (
                dir.path().join("new.npz/."),
                "ends as a directory's name does",
            ),
        ] {
            let err = collect(&small(out, 0)).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{err:#}");
        }
    }

    #[test]
    fn collected_dataset_reads_back_with_ogbench_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        let summary = collect(&small(path.clone(), 7)).unwrap();
        assert_eq!(
            (summary.episodes, summary.transitions, summary.rows),
            (5, 200, 205)
        );

        // Raw keys: dtypes and shapes, one terminal row per episode at every 41st row.
        let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let obs: ndarray::Array2<f32> = npz.by_name("observations").unwrap();
        let act: ndarray::Array2<f32> = npz.by_name("actions").unwrap();
        let term: ndarray::Array1<bool> = npz.by_name("terminals").unwrap();
        let qpos: ndarray::Array2<f32> = npz.by_name("qpos").unwrap();
        let qvel: ndarray::Array2<f32> = npz.by_name("qvel").unwrap();
        let succ: ndarray::Array1<bool> = npz.by_name("successes").unwrap();
        assert_eq!(obs.dim(), (205, 28));
        assert_eq!(act.dim(), (205, 5));
        assert_eq!((qpos.nrows(), qvel.nrows(), succ.len()), (205, 205, 205));
        let terminal_rows: Vec<usize> = term
            .iter()
            .enumerate()
            .filter(|(_, t)| **t)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(terminal_rows, vec![40, 81, 122, 163, 204]);
        for &r in &terminal_rows {
            assert!(
                act.row(r).iter().all(|&x| x == 0.0),
                "dummy action on the final row"
            );
        }
        assert!(act.iter().all(|x| (-1.0..=1.0).contains(x)));
        // Each episode starts from a reset: the hand at home.
        for start in [0, 41, 82, 123, 164] {
            assert_eq!(obs.row(start).as_slice().unwrap()[..3], [0.0, 0.0, 0.19]);
        }
        // The oracle moves the hand: the data is not a still life.
        assert!(obs.column(2).iter().any(|&z| z < 0.1));

        // As transitions: 40 per episode, terminals on each episode's last, next_observations shifted.
        let d = load_dataset(&path).unwrap();
        assert_eq!(
            (d.len(), d.episodes, d.obs_dim(), d.action_dim()),
            (200, 5, 28, 5)
        );
        let ends: Vec<usize> = d
            .transitions
            .terminals
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == 1.0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ends, vec![39, 79, 119, 159, 199]);
        assert_eq!(
            d.transitions.observations[28..56],
            d.transitions.next_observations[..28]
        );
        assert_eq!(
            d.transitions.next_observations[39 * 28..40 * 28],
            obs.row(40).to_vec()[..]
        );
        assert_eq!(
            d.transitions.observations[40 * 28..41 * 28],
            obs.row(41).to_vec()[..]
        );
        assert!(
            d.transitions
                .rewards
                .iter()
                .zip(&d.transitions.masks)
                .all(|(r, m)| *m == -*r && (*r == 0.0 || *r == -1.0))
        );
        // Its source names the task, its columns and the command that made it.
        let source = d.source.unwrap();
        let spec = cube_single_spec();
        assert_eq!(
            (&source.task, &source.observations, &source.actions),
            (&spec.task, &spec.obs_names, &spec.action_names)
        );
        assert_eq!(
            source.collected_with,
            "qamlab collect --task cube-single --episodes 5 --envs 3 --seed 7 --noise 0.1 --episode-length 40"
        );
        let scene = load_task("cube-single").unwrap().scene;
        assert_eq!(
            (source.scene.as_deref(), source.scene_fingerprint),
            (
                Some("builtin:cube-single"),
                Some(crate::dataset::scene_fingerprint(&scene))
            )
        );
        // And the bodies its `qpos` and `qvel` columns hold, 7 and 6 values each.
        assert_eq!(source.state_bodies.as_ref(), Some(&spec.state_bodies));
        assert_eq!(
            (d.qpos_shape, d.qvel_shape),
            (
                Some(vec![205, spec.qpos_dim as u64]),
                Some(vec![205, spec.qvel_dim as u64])
            )
        );
    }

    fn cube_single_spec() -> qamlab_sim::EnvSpec {
        let task = load_task("cube-single").unwrap();
        qamlab_sim::EnvSpec::of(&task.scene)
    }

    #[test]
    fn a_dataset_fits_only_a_task_with_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cube.npz");
        collect(&small(path.clone(), 5)).unwrap();
        let data = load_dataset(&path).unwrap();
        let scene = load_task("cube-single").unwrap().scene;
        let spec = qamlab_sim::EnvSpec::of(&scene);
        assert_eq!(data.check_fits(&path, &scene, &spec).unwrap(), None);
        // A copy of the scene file is the same scene.
        let copy = qamlab_sim::TaskScene {
            source: "my-copy.scn.ron".into(),
            ..scene.clone()
        };
        assert_eq!(data.check_fits(&path, &copy, &spec).unwrap(), None);

        // Another task with the same columns trains, with a note.
        let mut variant = spec.clone();
        variant.task = "cube-heavy".into();
        let note = data.check_fits(&path, &scene, &variant).unwrap().unwrap();
        assert!(
            note.contains("collected on task cube-single, not cube-heavy"),
            "{note}"
        );
        // So does an edited scene under the same name.
        let mut edited = copy.clone();
        edited.settings.gravity.z = -5.0;
        let note = data.check_fits(&path, &edited, &spec).unwrap().unwrap();
        assert!(
            note.contains(
                "cube.npz was collected on another version of task cube-single's scene (builtin:cube-single; here \
                 my-copy.scn.ron)"
            ),
            "{note}"
        );

        // The same widths with other columns is another task's data, or another version of its scene's.
        let mut other = spec.clone();
        other.obs_names.swap(0, 1);
        let err = format!("{:#}", data.check_fits(&path, &copy, &other).unwrap_err());
        assert!(
            err.contains(
                "cube.npz was collected on task cube-single (scene builtin:cube-single), whose observations are not \
                 those of task cube-single here (scene my-copy.scn.ron): observation 0 is `pinch.position.x` there \
                 and `pinch.position.y` here; collect a dataset of this task with `qamlab collect --task \
                 my-copy.scn.ron`"
            ),
            "{err}"
        );
        let mut other = spec.clone();
        other.action_names[4] = "grip".into();
        let err = format!("{:#}", data.check_fits(&path, &scene, &other).unwrap_err());
        assert!(
            err.contains("action 4 is `gripper` there and `grip` here"),
            "{err}"
        );

        // Other widths: the task the data came from is named, and what to do.
        let double = load_task("cube-double").unwrap().scene;
        let err = format!(
            "{:#}",
            data.check_fits(&path, &double, &qamlab_sim::EnvSpec::of(&double))
                .unwrap_err()
        );
        assert!(
            err.contains("observations are 28-D")
                && err.contains(
                    "(the dataset was collected on task cube-single: `--task cube-single` trains on that task); \
                     collect a dataset of this task with `qamlab collect --task cube-double`"
                ),
            "{err}"
        );

        // A file that does not say where it came from (OGBench's) is checked by its widths only, and says so.
        let path = dir.path().join("plain.npz");
        broken_npz(&path, false, 4, true, None);
        let plain = load_dataset(&path).unwrap();
        assert_eq!(plain.source, None);
        let mut narrow = spec.clone();
        (narrow.obs_dim, narrow.action_dim) = (3, 2);
        let note = plain.check_fits(&path, &scene, &narrow).unwrap().unwrap();
        assert!(
            note.contains("does not record the task it was collected on")
                && note.contains("only its widths are checked against task cube-single"),
            "{note}"
        );
    }

    #[test]
    fn a_damaged_source_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src.npz");
        for (text, expected) in [
            (
                "not json",
                "key `source`: expected JSON text with task, observations, actions, collected_with and qamlab (a \
                 file changed since `qamlab collect` wrote it? remove the `source` key",
            ),
            (
                r#"{"task":"t","observations":["a"],"actions":["x","y"],"collected_with":"","qamlab":""}"#,
                "key `source`: names 1 observation and 2 action columns, but the arrays hold 3 and 2",
            ),
        ] {
            broken_npz(&path, false, 4, true, Some(text));
            let err = format!("{:#}", load_dataset(&path).unwrap_err());
            assert!(err.contains("src.npz") && err.contains(expected), "{err}");
        }
    }

    #[test]
    fn same_seed_same_bytes_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.npz"),
            dir.path().join("b.npz"),
            dir.path().join("c.npz"),
        );
        collect(&small(a.clone(), 11)).unwrap();
        collect(&small(b.clone(), 11)).unwrap();
        collect(&small(c.clone(), 12)).unwrap();
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        assert!(a == b, "same seed gave different files");
        assert!(a != c, "different seeds gave the same file");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "temporary files left behind: {names:?}");
    }

    #[test]
    fn numpy_reads_the_dataset_when_available() {
        let has_numpy = std::process::Command::new("python3")
            .args(["-c", "import numpy"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_numpy {
            eprintln!("python3 with numpy not available: skipping the numpy cross-check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        collect(&small(path.clone(), 3)).unwrap();
        let script = "import json, numpy as np, sys\n\
d = np.load(sys.argv[1])\n\
assert d['observations'].dtype == np.float32 and d['observations'].shape == (205, 28)\n\
assert d['actions'].dtype == np.float32 and d['actions'].shape == (205, 5)\n\
assert d['terminals'].dtype == np.bool_ and d['terminals'].sum() == 5 and d['terminals'][-1]\n\
assert d['qpos'].dtype == np.float32 and d['rewards'].dtype == np.float32\n\
assert json.loads(d['source'].tobytes())['task'] == 'cube-single'\n\
print('ok')\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "numpy check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A 4-row npz with float32 observations `[4, 3]` and terminals ending one episode; actions
    /// float32 or bool (a dtype not read), `rewards_len` rewards, masks only if asked, and `source` text if given.
    fn broken_npz(
        path: &Path,
        bool_actions: bool,
        rewards_len: usize,
        masks: bool,
        source: Option<&str>,
    ) {
        let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).unwrap());
        npz.add_array("observations", &ndarray::Array2::<f32>::zeros((4, 3)))
            .unwrap();
        if bool_actions {
            npz.add_array(
                "actions",
                &ndarray::Array2::<bool>::from_elem((4, 2), false),
            )
            .unwrap();
        } else {
            npz.add_array("actions", &ndarray::Array2::<f32>::zeros((4, 2)))
                .unwrap();
        }
        let terminals = ndarray::Array1::<bool>::from(vec![false, false, false, true]);
        npz.add_array("terminals", &terminals).unwrap();
        npz.add_array("rewards", &ndarray::Array1::<f32>::zeros(rewards_len))
            .unwrap();
        if masks {
            npz.add_array("masks", &ndarray::Array1::<f32>::zeros(4))
                .unwrap();
        }
        if let Some(text) = source {
            npz.add_array("source", &ndarray::Array1::from(text.as_bytes().to_vec()))
                .unwrap();
        }
        npz.finish().unwrap();
    }

    #[test]
    fn loader_errors_name_file_key_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.npz");
        broken_npz(&path, true, 4, true, None);
        let err = format!("{:#}", load_dataset(&path).unwrap_err());
        assert!(
            err.contains("broken.npz") && err.contains("`actions`") && err.contains("float32"),
            "{err}"
        );

        let path = dir.path().join("short.npz");
        broken_npz(&path, false, 3, false, None);
        let err = format!("{:#}", load_dataset(&path).unwrap_err());
        assert!(
            err.contains("short.npz") && err.contains("`masks`") && err.contains("missing"),
            "{err}"
        );

        let path = dir.path().join("rows.npz");
        broken_npz(&path, false, 3, true, None);
        let err = format!("{:#}", load_dataset(&path).unwrap_err());
        assert!(
            err.contains("rows.npz") && err.contains("`rewards`") && err.contains("N = 4"),
            "{err}"
        );
    }

    #[test]
    fn huge_counts_are_refused_before_anything_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let base = small(dir.path().join("huge.npz"), 0);
        for (opts, expected) in [
            (
                CollectOptions {
                    episodes: usize::MAX,
                    ..base.clone()
                },
                "collect: --episodes must be from 1 to 100000000, got 18446744073709551615".to_string(),
            ),
            (
                CollectOptions {
                    envs: 100_000_000,
                    ..base.clone()
                },
                "collect: --envs must be from 1 to 4096, got 100000000".into(),
            ),
            (
                CollectOptions {
                    episode_length: Some(4_000_000_000),
                    ..base.clone()
                },
                "collect: --episode-length must be from 1 to 1000000, got 4000000000".into(),
            ),
            (
                CollectOptions {
                    noise: f32::INFINITY,
                    ..base.clone()
                },
                "collect: --noise must be a finite number >= 0, got inf".into(),
            ),
            // Within the bounds, but past the machine's memory: 10^8 episodes of 41 rows of 506 bytes, ~1.9 TiB.
            (
                CollectOptions {
                    episodes: 100_000_000,
                    ..base.clone()
                },
                "collect: --episodes 100000000 of 41 rows each (506 bytes a row) would take 1.9 TiB of memory, \
                 more than this machine's"
                    .into(),
            ),
        ] {
            let err = format!("{:#}", check_collect(&opts).unwrap_err());
            assert!(err.starts_with(&expected), "{err}");
            assert_eq!(format!("{:#}", collect(&opts).unwrap_err()), err);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_options_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = small(dir.path().join("x.npz"), 1);
        o.task = "cube-singel".into();
        let err = format!("{:#}", collect(&o).unwrap_err());
        assert!(
            err.contains("cube-singel") && err.contains("cube-single"),
            "{err}"
        );
        o.task = "cube-single".into();
        o.episodes = 0;
        assert!(collect(&o).is_err());
        o.episodes = 1;
        o.episode_length = Some(0);
        let err = format!("{:#}", collect(&o).unwrap_err());
        assert!(err.contains("--episode-length"), "{err}");
        o.episode_length = None;
        o.out = dir.path().to_path_buf();
        let err = format!("{:#}", collect(&o).unwrap_err());
        assert!(err.contains("is a directory"), "{err}");
    }
}
