//! What acts in the envs of a collection: the task's scripted oracle, or a trained agent's policy (a checkpoint
//! of a `qamlab train` run), explored alike (OGBench's smoothed Gaussian noise and random actions).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use qamlab_agent::Agent;
use qamlab_agent::checkpoint::TensorFile;
use qamlab_sim::{EnvSpec, StepOutput, TaskScene};
use qamlab_tasks::{Oracle, OracleConfig, perturb};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::chunks::ChunkQueues;
use crate::dataset::{ColumnDifference, first_column_difference, scene_fingerprint};
use crate::run_dir::{RunDir, checkpoint_dir_step};

/// A trained policy to collect with in place of the task's oracle: one checkpoint of a `qamlab train` run, loaded
/// once, so that a dataset and its validation file come from the same agent while the run trains on (and removes the
/// checkpoint).
#[derive(Clone)]
pub struct PolicySource {
    /// The run's directory.
    pub run: PathBuf,
    /// The step of its checkpoint, `RUN/checkpoints/step-N`.
    pub step: u64,
    /// Where the policy acts.
    pub device: tch::Device,
    /// The run's task: a built-in's name, or its own copy of the scene file it trained on.
    pub task: String,
    /// The step the run ends at (the checkpoint's is less while it trains, or where it was stopped).
    pub total_steps: u64,
    /// The length of the agent's action chunks (`horizon_length`).
    pub chunk_length: usize,
    /// On the CPU, libtorch's threads the policy acts with (sums over many values depend on their count).
    pub cpu_threads: Option<usize>,
    /// The CRC-32 of the checkpoint's tensors (none in a checkpoint of before it was recorded): which agent acted,
    /// whatever becomes of the run's folder.
    pub checkpoint_crc32: Option<u32>,
    /// The envs the run trained in: their columns, which a task to collect on must share.
    trained_on: EnvSpec,
    /// The fingerprint of the run's scene ([`scene_fingerprint`]).
    fingerprint: u32,
    /// The checkpoint's agent, shared by the collections of one command (one at a time).
    agent: Arc<Mutex<Agent>>,
}

impl std::fmt::Debug for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySource")
            .field("run", &self.run)
            .field("step", &self.step)
            .field("device", &self.device)
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PolicySource {
    /// The same run's checkpoint, loaded once.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.agent, &other.agent)
    }
}

/// Which policy of a run to load, and how it acts: `qamlab collect`'s flags beside `--run`.
#[derive(Clone, Debug, Default)]
pub struct PolicyChoice {
    /// The step of one of the checkpoints the run kept; the run's newest where none.
    pub step: Option<u64>,
    /// On the CPU, libtorch's threads; the run's where none, or 1 where the run records none (one trained on a GPU),
    /// so that the bytes do not depend on the machine's cores.
    pub cpu_threads: Option<usize>,
    /// The CRC-32 the checkpoint's tensors must have: a dataset's recorded command gives it, so that a run replaced or
    /// trained on since is refused rather than taken for the policy that acted.
    pub checkpoint_crc32: Option<u32>,
}

impl PolicySource {
    /// Loads the policy of `path`, a run directory or one of its checkpoints' (`RUN/checkpoints/step-N`), as
    /// `choice` asks, to act on `device`.
    pub fn of(path: &Path, choice: &PolicyChoice, device: tch::Device) -> anyhow::Result<Self> {
        let step = choice.step;
        let (run, step) = match RunDir::of_checkpoint_dir(path) {
            Some((run, named)) => {
                if let Some(asked) = step.filter(|&asked| asked != named) {
                    bail!(
                        "collect: --step {asked} and --run {}, a checkpoint of step {named}: give one of them",
                        path.display()
                    );
                }
                (run, Some(named))
            }
            None => (RunDir::new(path), step),
        };
        let flag = || format!("collect: --run {}", path.display());
        // A folder that is no run is named as such, before its checkpoints are looked for.
        let cfg = run.read_config().with_context(flag)?;
        let trained_on = qamlab_tasks::load_task(&cfg.task)
            .with_context(|| format!("{}: the task it trained on", flag()))?;
        let spec = EnvSpec::of(&trained_on.scene);
        let cpu_threads = (device == tch::Device::Cpu).then(|| {
            crate::config::set_cpu_threads(Some(
                choice.cpu_threads.or(cfg.cpu_threads).unwrap_or(1),
            ))
        });
        let dims = (spec.obs_dim, spec.action_dim);
        let (checkpoint, agent) = match step {
            Some(step) => {
                let checkpoint = run
                    .checkpoint_at(step)
                    .with_context(|| format!("{} --step {step}", flag()))?;
                let agent = run.load_agent(&checkpoint, &cfg, dims, device)?;
                (checkpoint, agent)
            }
            // The newest, read again where the run moved on while it was loaded.
            None => run
                .load_latest_agent(&cfg, dims, device)
                .with_context(flag)?,
        };
        let step = checkpoint_dir_step(&checkpoint)
            .with_context(|| format!("{}: {} is no step-N folder", flag(), checkpoint.display()))?;
        let file = checkpoint.join("agent.safetensors");
        let checkpoint_crc32 =
            qamlab_agent::checkpoint::recorded_crc32(TensorFile::open(&file)?.metadata());
        if let Some(want) = choice.checkpoint_crc32
            && checkpoint_crc32 != Some(want)
        {
            let has = checkpoint_crc32.map_or("records no CRC-32 of its tensors".into(), |crc| {
                format!("holds tensors of CRC-32 {crc:08x}")
            });
            bail!(
                "{} --checkpoint-crc32 {want:08x}: {} {has}, so it is not the policy that acted when the command \
                 was recorded (the run was replaced since, or trained on and kept another checkpoint of that step); \
                 leave --checkpoint-crc32 out to collect with this one",
                flag(),
                file.display()
            );
        }
        Ok(Self {
            run: run.root().to_path_buf(),
            step,
            device,
            total_steps: crate::train::total_steps(&cfg),
            chunk_length: cfg.agent.horizon_length,
            cpu_threads,
            checkpoint_crc32,
            task: cfg.task,
            fingerprint: scene_fingerprint(&trained_on.scene),
            trained_on: spec,
            agent: Arc::new(Mutex::new(agent)),
        })
    }

    /// The length of the episodes the run trained in, in control steps.
    pub fn trained_episode_length(&self) -> usize {
        self.trained_on.episode_length as usize
    }

    /// Refuses a task of `spec` whose columns are not those of the task the run trained on, or whose actions the
    /// agents cannot take; returns a warning where `scene` is another version of the run's scene.
    pub fn check_task(&self, scene: &TaskScene, spec: &EnvSpec) -> anyhow::Result<Option<String>> {
        let trained = &self.trained_on;
        if let Some(ColumnDifference {
            what,
            index,
            theirs,
            ours,
        }) = first_column_difference(
            [&trained.obs_names, &trained.action_names],
            [&spec.obs_names, &spec.action_names],
        ) {
            let name =
                |name: Option<&str>| name.map_or("missing".to_string(), |n| format!("`{n}`"));
            bail!(
                "collect: --run {} trained on task {}, whose {what}s are not those of task {}: {what} {index} is {} \
                 there and {} here; leave --task out to collect on the run's own task",
                self.run.display(),
                trained.task,
                spec.task,
                name(theirs),
                name(ours)
            );
        }
        crate::chunks::check_agent_action_space(spec)
            .with_context(|| format!("collect: task {} ({})", spec.task, scene.source))?;
        Ok((scene_fingerprint(scene) != self.fingerprint).then(|| {
            format!(
                "{} is another version of task {}'s scene than the one --run {} trained on ({}): its observations \
                 and actions have the same names, so the policy acts as if the scenes behaved alike",
                scene.source,
                spec.task,
                self.run.display(),
                self.task
            )
        }))
    }
}

/// Where a collection's policy draws its sampling noise from, by the collection's seed: far from training's
/// positions (counted from 0) and the evaluations' ([`crate::evaluate::EVAL_ACTING_POSITION`], 2^63 on), so that no
/// collection repeats the draws of either, and two seeds' streams (each a few million calls at most) do not meet.
fn acting_position(seed: u64) -> u64 {
    (1 << 62) | (super::stream_seed(seed, 3, 0) >> 3)
}

/// What acts in a collection's envs.
pub(super) enum Behaviour {
    /// The task's scripted oracle.
    Oracle(Box<Oracle>),
    /// A trained agent's policy.
    Policy(Box<PolicyActor>),
}

impl Behaviour {
    /// Actions `[N * action_dim]` for observations `[N * obs_dim]`.
    pub(super) fn act(&mut self, obs: &[f32]) -> anyhow::Result<Vec<f32>> {
        match self {
            Self::Oracle(oracle) => Ok(oracle.act(obs).to_vec()),
            Self::Policy(policy) => policy.act(obs),
        }
    }

    /// Starts afresh in every env whose episode ended at the step `out` reports.
    pub(super) fn episodes_ended(&mut self, out: &StepOutput) {
        match self {
            Self::Oracle(oracle) => oracle.episodes_ended(out),
            Self::Policy(policy) => policy.episodes_ended(out),
        }
    }

    /// The oracle's sub-tasks done in the first `n` envs (cubes put down, places walked to); 0 for a policy.
    pub(super) fn subgoals_reached(&self, n: usize) -> u64 {
        match self {
            Self::Oracle(oracle) => (0..n).map(|i| u64::from(oracle.subgoals_reached(i))).sum(),
            Self::Policy(_) => 0,
        }
    }
}

/// A trained agent acting in N envs as in its evaluations (action chunks executed open-loop), each executed action
/// perturbed as the oracles perturb theirs.
pub(super) struct PolicyActor {
    agent: Arc<Mutex<Agent>>,
    queues: ChunkQueues,
    explore: OracleConfig,
    /// Each env's smoothed noise state, `[N * action_dim]`.
    noise: Vec<f32>,
    /// Each env's stream of exploration draws.
    rngs: Vec<ChaCha8Rng>,
    action_names: Vec<String>,
}

impl PolicyActor {
    /// The policy of `source` acting in envs of `spec`, one env per seed of `seeds` (its exploration draws), its
    /// sampling noise drawn from a stream of `seed`'s.
    pub(super) fn new(
        source: &PolicySource,
        spec: &EnvSpec,
        explore: OracleConfig,
        seeds: &[u64],
        seed: u64,
    ) -> Self {
        source
            .agent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_acting_position(acting_position(seed));
        Self {
            agent: source.agent.clone(),
            queues: ChunkQueues::new(seeds.len(), spec.action_dim),
            explore,
            noise: vec![0.0; seeds.len() * spec.action_dim],
            rngs: seeds
                .iter()
                .map(|&s| ChaCha8Rng::seed_from_u64(s))
                .collect(),
            action_names: spec.action_names.clone(),
        }
    }

    fn act(&mut self, obs: &[f32]) -> anyhow::Result<Vec<f32>> {
        let mut agent = self.agent.lock().unwrap_or_else(PoisonError::into_inner);
        let mut actions = self
            .queues
            .next_actions(&mut agent, obs, &self.action_names)?;
        let a = self.action_names.len();
        let envs = actions.chunks_mut(a).zip(self.noise.chunks_mut(a));
        for ((action, noise), rng) in envs.zip(&mut self.rngs) {
            perturb(&self.explore, noise, rng, action);
        }
        Ok(actions)
    }

    fn episodes_ended(&mut self, out: &StepOutput) {
        let a = self.action_names.len();
        for i in out.ended_envs() {
            // A new episode starts a new chunk, with noise of its own, as the oracles' scripts restart.
            self.queues.clear(i);
            self.noise[i * a..(i + 1) * a].fill(0.0);
        }
    }
}
