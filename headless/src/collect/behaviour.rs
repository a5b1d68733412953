//! What acts in the envs of a collection: the task's scripted oracle, or a trained agent's policy (a checkpoint
//! of a `qamlab train` run), explored alike (OGBench's smoothed Gaussian noise and random actions).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use qamlab_agent::Agent;
use qamlab_sim::{EnvSpec, StepOutput};
use qamlab_tasks::{Oracle, OracleConfig, perturb};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::chunks::ChunkQueues;
use crate::run_dir::{RunDir, checkpoint_name_step};

/// A trained policy to collect with in place of the task's oracle: one checkpoint of a `qamlab train` run.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySource {
    /// The run's directory.
    pub run: PathBuf,
    /// The step of its checkpoint, `RUN/checkpoints/step-N` (fixed before collecting, so that a dataset and its
    /// validation file come from one checkpoint while the run trains on).
    pub step: u64,
    /// Where the policy acts.
    pub device: tch::Device,
}

impl PolicySource {
    /// The policy of `path`, a run directory or one of its checkpoints' (`RUN/checkpoints/step-N`), at `step` where
    /// given (one of the checkpoints the run kept), else at the run's newest checkpoint.
    pub fn of(path: &Path, step: Option<u64>, device: tch::Device) -> anyhow::Result<Self> {
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
        // A folder that is no run is named as such, before its checkpoints are looked for.
        run.read_config()
            .with_context(|| format!("collect: --run {}", path.display()))?;
        let step = match step {
            Some(step) => step,
            None => {
                let newest = run.latest_checkpoint()?.with_context(|| {
                    format!(
                        "collect: --run {}: the run has no checkpoint yet",
                        path.display()
                    )
                })?;
                newest
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(checkpoint_name_step)
                    .with_context(|| {
                        format!(
                            "collect: --run {}: {} is no step-N folder",
                            path.display(),
                            newest.display()
                        )
                    })?
            }
        };
        Ok(Self {
            run: run.root().to_path_buf(),
            step,
            device,
        })
    }

    /// The run's task: a built-in's name, or its own copy of the scene file it trained on.
    pub fn task(&self) -> anyhow::Result<String> {
        Ok(RunDir::new(&self.run).read_config()?.task)
    }

    /// Loads the checkpoint's agent for a task of `spec` (whose columns must be those of the task the run trained
    /// on); on the CPU it acts with the run's threads, as its evaluations did.
    pub(super) fn load(&self, spec: &EnvSpec) -> anyhow::Result<Agent> {
        let run = RunDir::new(&self.run);
        let cfg = run.read_config()?;
        let trained_on = qamlab_tasks::load_task(&cfg.task).with_context(|| {
            format!(
                "collect: --run {}: the task it trained on",
                self.run.display()
            )
        })?;
        let theirs = EnvSpec::of(&trained_on.scene);
        for (what, theirs, ours) in [
            ("observation", &theirs.obs_names, &spec.obs_names),
            ("action", &theirs.action_names, &spec.action_names),
        ] {
            if theirs != ours {
                let k = (0..theirs.len().max(ours.len()))
                    .find(|&k| theirs.get(k) != ours.get(k))
                    .expect("the lists differ somewhere");
                let name = |list: &Vec<String>| {
                    list.get(k)
                        .map_or("missing".to_string(), |n| format!("`{n}`"))
                };
                bail!(
                    "collect: --run {} trained on task {}, whose {what}s are not those of task {}: {what} {k} is {} \
                     there and {} here; leave --task out to collect on the run's own task",
                    self.run.display(),
                    trained_on.name,
                    spec.task,
                    name(theirs),
                    name(ours)
                );
            }
        }
        if self.device == tch::Device::Cpu {
            crate::config::set_cpu_threads(cfg.cpu_threads);
        }
        let checkpoint = run.checkpoint_at(self.step).with_context(|| {
            format!("collect: --run {} --step {}", self.run.display(), self.step)
        })?;
        run.load_agent(
            &checkpoint,
            &cfg,
            (spec.obs_dim, spec.action_dim),
            self.device,
        )
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
    agent: Agent,
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
    ) -> anyhow::Result<Self> {
        let mut agent = source.load(spec)?;
        agent.set_acting_position(acting_position(seed));
        Ok(Self {
            agent,
            queues: ChunkQueues::new(seeds.len(), spec.action_dim),
            explore,
            noise: vec![0.0; seeds.len() * spec.action_dim],
            rngs: seeds
                .iter()
                .map(|&s| ChaCha8Rng::seed_from_u64(s))
                .collect(),
            action_names: spec.action_names.clone(),
        })
    }

    fn act(&mut self, obs: &[f32]) -> anyhow::Result<Vec<f32>> {
        let mut actions = self
            .queues
            .next_actions(&mut self.agent, obs, &self.action_names)?;
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
