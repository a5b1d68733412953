//! Who acts: each control step reads every env's observation from [`StepOutput`], runs the chosen policy once for
//! the batch, and writes [`BatchActions`]. After the step, finished episodes are counted.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use bevy::prelude::*;
use qamlab_agent::Agent;
use qamlab_headless::chunks::ChunkQueues;
use qamlab_headless::run_dir::RunDir;
use qamlab_sim::systems::{BatchActions, SimTask};
use qamlab_sim::{EnvSet, EnvSpec, StepOutput, TaskScene};
use qamlab_tasks::{Oracle, OracleConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::ViewArgs;
use super::panel::ViewCommand;
use super::stepping::{ControlStep, EnvEntities, EnvGeneration, EnvLayout};
use super::thinned_curve::ThinnedCurve;

/// The policies that can act.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// The agent: loaded from --checkpoint, or the live one of --train.
    Agent,
    /// The task's scripted oracle.
    Oracle,
    /// Uniform random actions inside the action ranges.
    Random,
}

impl PolicyKind {
    /// Every kind, in panel order.
    pub const ALL: [PolicyKind; 3] = [PolicyKind::Agent, PolicyKind::Oracle, PolicyKind::Random];

    /// Label shown in the panel.
    pub fn label(self) -> &'static str {
        match self {
            PolicyKind::Agent => "agent",
            PolicyKind::Oracle => "oracle",
            PolicyKind::Random => "random",
        }
    }
}

/// The agent acting in the window (on the CPU), with its per-env chunk queues.
pub struct ActingAgent {
    /// The agent.
    pub agent: Agent,
    /// Open-loop action chunks, one queue per env.
    queues: ChunkQueues,
    /// Number of envs (of queues).
    envs: usize,
    /// Where its weights came from, for the panel.
    pub source: String,
}

/// The policies available and the one acting.
#[derive(Resource)]
pub struct ActingPolicy {
    /// The one acting now.
    pub kind: PolicyKind,
    /// The agent, if there is one (behind a lock: an `Agent` may move between threads but not be shared).
    pub agent: Option<Mutex<ActingAgent>>,
    /// The agent file `--checkpoint` loaded, if any.
    pub checkpoint: Option<PathBuf>,
    /// Why the agent cannot act on the current envs (its sizes differ from the scene's), if so.
    pub agent_unusable: Option<String>,
    /// The oracle for the current envs, or why there is none.
    oracle: Result<Oracle, String>,
    /// Stream of the random policy.
    random: ChaCha8Rng,
    /// The last acting error (the clock is paused when one happens).
    pub error: Option<String>,
    /// Whether `error` is the physics leaving f32's range, which only new envs clear (not a change of policy).
    pub halted: bool,
    /// The last checkpoint the panel saved, or why saving failed.
    pub saved: Option<Result<PathBuf, String>>,
    /// Why another policy acts than the one asked for, if so.
    pub fallback: Option<String>,
}

impl ActingPolicy {
    /// The policies `qamlab view` starts with: the agent from `--checkpoint`, a fresh agent that `--train`
    /// will keep refreshing, or none.
    pub fn from_args(args: &ViewArgs, spec: &EnvSpec) -> anyhow::Result<Self> {
        let mut checkpoint = None;
        let agent = if let Some(given) = &args.checkpoint {
            let (path, agent) = load_checkpoint(given, spec)?;
            checkpoint = Some(path.clone());
            // A later edit of the scene may still change its sizes; then the window falls back to another policy.
            if (agent.obs_dim(), agent.action_dim()) != (spec.obs_dim, spec.action_dim) {
                anyhow::bail!(
                    "--checkpoint {}: its agent's observations are {}-D and its actions {}-D, but task {}'s are {}-D \
                     and {}-D: it was trained on another task (name that one with --task NAME or FILE.scn.ron)",
                    path.display(),
                    agent.obs_dim(),
                    agent.action_dim(),
                    spec.task,
                    spec.obs_dim,
                    spec.action_dim
                );
            }
            Some(ActingAgent::new(
                agent,
                usize::from(args.envs),
                path.display().to_string(),
            ))
        } else if args.train {
            let config = args.training.config(args)?;
            let agent = Agent::new(
                config.agent.clone(),
                spec.obs_dim,
                spec.action_dim,
                tch::Device::Cpu,
                args.seed(),
            )
            .context("building the acting agent")?;
            Some(ActingAgent::new(
                agent,
                usize::from(args.envs),
                "training (initial weights)".into(),
            ))
        } else {
            None
        };
        let kind = match args.policy {
            Some(PolicyKind::Agent) if agent.is_none() => {
                anyhow::bail!("--policy agent needs an agent: pass --checkpoint FILE or --train")
            }
            Some(kind) => kind,
            None if agent.is_some() => PolicyKind::Agent,
            None => PolicyKind::Oracle,
        };
        Ok(Self {
            kind,
            agent: agent.map(Mutex::new),
            checkpoint,
            agent_unusable: None,
            oracle: Err("no envs yet".into()),
            random: ChaCha8Rng::seed_from_u64(args.seed() ^ 0x7A11_D0E5),
            error: None,
            halted: false,
            saved: None,
            fallback: None,
        })
    }

    /// Where the oracle would act first on `scene`'s task and the task has none: refused when `--policy oracle`
    /// asked for it (as `--policy agent` without an agent is), random actions first where it was the default.
    pub fn check_oracle(
        &mut self,
        asked: Option<PolicyKind>,
        scene: &TaskScene,
        spec: &EnvSpec,
    ) -> anyhow::Result<()> {
        if self.kind != PolicyKind::Oracle {
            return Ok(());
        }
        let Err(why) = Oracle::new(scene, spec, OracleConfig::default(), &[0]) else {
            return Ok(());
        };
        anyhow::ensure!(
            asked != Some(PolicyKind::Oracle),
            "--policy oracle: {why}; `--policy random` acts at random"
        );
        self.kind = PolicyKind::Random;
        Ok(())
    }

    /// The given agent acting alone (the video of `qamlab eval`): no fallback to another policy.
    pub fn agent_only(agent: Agent, envs: usize, source: String) -> Self {
        Self {
            kind: PolicyKind::Agent,
            agent: Some(Mutex::new(ActingAgent::new(agent, envs, source))),
            checkpoint: None,
            agent_unusable: None,
            oracle: Err("not used".into()),
            random: ChaCha8Rng::seed_from_u64(0),
            error: None,
            halted: false,
            saved: None,
            fallback: None,
        }
    }

    /// Whether `kind` can act on the current envs (and why not).
    pub fn availability(&self, kind: PolicyKind) -> Result<(), String> {
        match kind {
            PolicyKind::Agent if self.agent.is_none() => {
                Err("no agent: start with --checkpoint or --train".into())
            }
            PolicyKind::Agent => self.agent_unusable.clone().map_or(Ok(()), Err),
            PolicyKind::Oracle => self.oracle.as_ref().map(|_| ()).map_err(Clone::clone),
            PolicyKind::Random => Ok(()),
        }
    }

    /// Adapts to freshly built envs: new oracle scripts, empty chunk queues, agent size check.
    fn envs_rebuilt(&mut self, scene: &TaskScene, spec: &EnvSpec, seeds: &[u64]) {
        let config = OracleConfig::default();
        self.oracle = Oracle::new(scene, spec, config, seeds).map_err(|e| e.to_string());
        self.agent_unusable = None;
        if let Some(agent) = &self.agent {
            let mut acting = agent
                .lock()
                .expect("the acting agent's lock is never poisoned");
            let (o, a) = (acting.agent.obs_dim(), acting.agent.action_dim());
            if (o, a) == (spec.obs_dim, spec.action_dim) {
                acting.queues = ChunkQueues::new(seeds.len(), a);
                acting.envs = seeds.len();
            } else {
                self.agent_unusable = Some(format!(
                    "the agent takes {o} observations and {a} actions; the scene now has {} and {}",
                    spec.obs_dim, spec.action_dim
                ));
            }
        }
        // The envs keep moving with random actions rather than stop on a policy that cannot act on them.
        if let Err(why) = self.availability(self.kind) {
            self.fallback = Some(format!(
                "{} cannot act ({why}): random acts instead",
                self.kind.label()
            ));
            self.kind = PolicyKind::Random;
        }
    }

    /// Actions `[N * A]` for the observations `[N * O]` from the acting policy.
    fn act(&mut self, spec: &EnvSpec, obs: &[f32]) -> anyhow::Result<Vec<f32>> {
        self.availability(self.kind).map_err(anyhow::Error::msg)?;
        match self.kind {
            PolicyKind::Agent => {
                let agent = self.agent.as_ref().expect("available");
                let mut acting = agent
                    .lock()
                    .expect("the acting agent's lock is never poisoned");
                let ActingAgent { agent, queues, .. } = &mut *acting;
                queues.next_actions(agent, obs, &spec.action_names)
            }
            PolicyKind::Oracle => Ok(self.oracle.as_mut().expect("available").act(obs).to_vec()),
            PolicyKind::Random => {
                Ok(spec.random_actions(&mut self.random, obs.len() / spec.obs_dim))
            }
        }
    }

    /// Tells the stateful policies which episodes just ended.
    fn episodes_ended(&mut self, out: &StepOutput) {
        if let Ok(oracle) = &mut self.oracle {
            oracle.episodes_ended(out);
        }
        if let Some(agent) = &self.agent {
            let mut acting = agent
                .lock()
                .expect("the acting agent's lock is never poisoned");
            for i in out.ended_envs() {
                acting.queues.clear(i);
            }
        }
    }
}

/// Loads the agent `--checkpoint` names (on the CPU), with the agent file it came from: the file itself,
/// `agent.safetensors` in a checkpoint directory, or that of a run directory's latest checkpoint. A run's latest
/// checkpoint is read as `qamlab eval` reads it ([`RunDir::load_latest_agent`]): a run still training replaces its
/// checkpoint meanwhile (by default it keeps only the newest), and where `latest` moved on while it was read, the new one is.
pub fn load_checkpoint(given: &Path, spec: &EnvSpec) -> anyhow::Result<(PathBuf, Agent)> {
    let run = RunDir::new(given);
    if given.is_dir() && !given.join("agent.safetensors").is_file() && run.config().is_file() {
        // Unverified: the run's copy of its scene matters only when the window shows the run's task, and then
        // `ViewArgs::resolve_task` has checked it already.
        let config = run.read_config_unverified()?;
        let (checkpoint, agent) = run
            .load_latest_agent(&config, (spec.obs_dim, spec.action_dim), tch::Device::Cpu)
            .with_context(|| format!("--checkpoint {}", given.display()))?;
        return Ok((checkpoint.join("agent.safetensors"), agent));
    }
    let path = agent_file(given)?;
    let agent = load_checkpoint_agent(&path, spec)?;
    Ok((path, agent))
}

/// The agent file `--checkpoint` names: the file itself, `agent.safetensors` in a checkpoint directory, or that
/// of the latest checkpoint of a directory of checkpoints without a run's config.
fn agent_file(given: &Path) -> anyhow::Result<PathBuf> {
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    anyhow::ensure!(
        given.is_dir(),
        "--checkpoint {} does not exist",
        given.display()
    );
    let in_dir = given.join("agent.safetensors");
    if in_dir.is_file() {
        return Ok(in_dir);
    }
    let latest = RunDir::new(given).latest_checkpoint()?.with_context(|| {
        format!(
            "--checkpoint {}: neither an agent file, a checkpoint nor a run with one",
            given.display()
        )
    })?;
    Ok(latest.join("agent.safetensors"))
}

/// Loads the agent of `--checkpoint` (its agent file, from [`agent_file`]). A checkpoint of a run is checked as
/// `qamlab eval` checks it, against the run's config and seed: the panel shows that run's curves beside it, so an
/// agent copied in from another run must not act under them.
fn load_checkpoint_agent(path: &Path, spec: &EnvSpec) -> anyhow::Result<Agent> {
    // A run's layout, RUN/checkpoints/NAME/agent.safetensors beside RUN/config.toml: an agent file kept anywhere
    // else is the user's own, with no run to answer to. Resolved (`..`, symlinks), so that `step-N` given inside
    // RUN/checkpoints, or `../step-N`, is seen to be one.
    let absolute = path
        .canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let run = absolute
        .parent()
        .filter(|_| path.file_name() == Some(std::ffi::OsStr::new("agent.safetensors")))
        .and_then(|checkpoint| {
            let checkpoints = checkpoint.parent()?;
            let run = RunDir::new(checkpoints.parent()?);
            (run.checkpoints().file_name() == checkpoints.file_name() && run.config().is_file())
                .then_some((checkpoint, run))
        });
    let Some((checkpoint, run)) = run else {
        // Its errors name the file already (`checkpoint PATH: ...`).
        return Ok(Agent::load(path, tch::Device::Cpu)?);
    };
    // Unverified: the run's copy of its scene matters only when the window shows the run's task, and then
    // `ViewArgs::resolve_task` has checked it already.
    let config = run.read_config_unverified()?;
    run.load_agent(
        checkpoint,
        &config,
        (spec.obs_dim, spec.action_dim),
        tch::Device::Cpu,
    )
}

impl ActingAgent {
    /// An agent acting on `envs` envs.
    pub fn new(agent: Agent, envs: usize, source: String) -> Self {
        let queues = ChunkQueues::new(envs, agent.action_dim());
        Self {
            agent,
            queues,
            envs,
            source,
        }
    }

    /// Takes new weights (from training); the queued chunks of the old weights are dropped.
    pub fn set_weights(
        &mut self,
        step: u64,
        weights: &[(String, tch::Tensor)],
    ) -> anyhow::Result<()> {
        self.agent
            .set_parameters(weights)
            .context("taking the newest training weights")?;
        self.queues = ChunkQueues::new(self.envs, self.agent.action_dim());
        self.source = format!("the run's weights of step {step}");
        Ok(())
    }
}

/// Episodes finished in the window, over all envs.
#[derive(Resource, Debug, Default)]
pub struct EpisodeStats {
    /// Return of each env's episode so far.
    running: Vec<f32>,
    /// Episodes finished.
    pub episodes: u64,
    /// Of which successful.
    pub successes: u64,
    /// The latest [`RECENT_EPISODES`] episodes: (return, success), newest last.
    pub recent: VecDeque<(f32, bool)>,
    /// Success rate of the last [`ROLLING`] episodes after each episode: (episode, rate), thinned over a long
    /// session.
    pub curve: ThinnedCurve,
    /// The same counts env by env (env `i`'s at `i`), for the envs' labels.
    pub per_env: Vec<EnvTally>,
    /// The counts of the task's version before the last reload that changed it, if any.
    pub previous: Option<VersionTally>,
}

/// The episodes of a version of the task, as they stood when a reload replaced it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct VersionTally {
    /// Episodes finished.
    pub episodes: u64,
    /// Of which successful.
    pub successes: u64,
    /// Success rate of its last [`ROLLING`] episodes.
    pub rolling: Option<f64>,
}

/// One env's finished episodes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EnvTally {
    /// Episodes finished.
    pub episodes: u64,
    /// Of which successful.
    pub successes: u64,
}

/// Episodes the rolling success rate averages.
pub const ROLLING: usize = 20;

/// Latest episodes kept in [`EpisodeStats::recent`] (at least [`ROLLING`], for the rolling rate).
pub const RECENT_EPISODES: usize = 100;

impl EpisodeStats {
    /// Starts the counts afresh for a new version of the task (a reload that changed it): counts that mixed two
    /// versions would judge neither. The old version's totals stay, for the panel to compare.
    pub fn restart(&mut self) {
        let previous = VersionTally {
            episodes: self.episodes,
            successes: self.successes,
            rolling: self.rolling_success(),
        };
        *self = Self {
            previous: Some(previous),
            ..Self::default()
        };
    }

    /// Success rate of the last [`ROLLING`] episodes.
    pub fn rolling_success(&self) -> Option<f64> {
        let n = self.recent.len().min(ROLLING);
        (n > 0)
            .then(|| self.recent.iter().rev().take(n).filter(|(_, s)| *s).count() as f64 / n as f64)
    }
}

/// Runs the chosen policy each control step and counts episodes.
pub struct PolicyPlugin;

impl Plugin for PolicyPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<EpisodeStats>()
            .add_message::<ViewCommand>()
            .add_systems(ControlStep, act.before(EnvSet::ApplyActions))
            // In the Publish phase, after the results are gathered: they run only when a step did (the phase's
            // run condition), so a step skipped for want of actions is not counted again. A step whose
            // observations left f32's range halts the window and is neither counted nor told to the policy.
            .add_systems(
                ControlStep,
                (
                    halt_on_non_finite,
                    (tally_episodes, reset_finished_policies)
                        .chain()
                        .run_if(observations_finite),
                )
                    .chain()
                    .in_set(EnvSet::Publish)
                    .after(qamlab_sim::systems::publish),
            )
            .add_systems(
                Update,
                (envs_rebuilt, policy_commands)
                    .chain()
                    .in_set(super::stepping::SteppingSet::Prepare),
            );
    }
}

/// Writes the acting policy's actions for the observations of the last step, and marks them pending.
fn act(
    mut policy: ResMut<ActingPolicy>,
    task: Res<SimTask>,
    out: Res<StepOutput>,
    mut actions: ResMut<BatchActions>,
    mut clock: ResMut<super::stepping::SimClock>,
) {
    if policy.error.is_some() {
        return;
    }
    match policy.act(&task.spec, &out.obs) {
        Ok(values) => {
            actions.values.copy_from_slice(&values);
            actions.pending = true;
        }
        Err(err) => {
            policy.error = Some(format!("{} policy: {err:#}", policy.kind.label()));
            clock.paused = true;
        }
    }
}

/// Whether the step's observations are all finite (the episodes are counted only then).
fn observations_finite(out: Res<StepOutput>, task: Res<SimTask>) -> bool {
    out.check_finite(&task.spec).is_ok()
}

/// Stops on a step whose observations left f32's range: the error is shown and the clock paused, as the headless
/// drivers stop, until new envs start.
fn halt_on_non_finite(
    out: Res<StepOutput>,
    task: Res<SimTask>,
    mut policy: ResMut<ActingPolicy>,
    mut clock: ResMut<super::stepping::SimClock>,
) {
    if let Err(err) = out.check_finite(&task.spec) {
        policy.error = Some(format!("{err}"));
        policy.halted = true;
        clock.paused = true;
    }
}

/// Adds the step's rewards to the episode returns, and each finished episode to the stats.
fn tally_episodes(mut stats: ResMut<EpisodeStats>, out: Res<StepOutput>) {
    let n = out.reward.len();
    if stats.running.len() != n {
        stats.running = vec![0.0; n];
    }
    if stats.per_env.len() != n {
        stats.per_env.resize(n, EnvTally::default());
    }
    for i in 0..n {
        stats.running[i] += out.reward[i];
        if out.ended(i) {
            let ret = std::mem::take(&mut stats.running[i]);
            stats.episodes += 1;
            // Ended by success (which may no longer hold after the moment the window shows it).
            let succeeded = out.terminated[i];
            stats.successes += u64::from(succeeded);
            stats.per_env[i].episodes += 1;
            stats.per_env[i].successes += u64::from(succeeded);
            stats.recent.push_back((ret, succeeded));
            if stats.recent.len() > RECENT_EPISODES {
                stats.recent.pop_front();
            }
            let point = [
                stats.episodes as f64,
                stats.rolling_success().unwrap_or(0.0),
            ];
            stats.curve.push(point);
        }
    }
}

/// Clears the per-env state of the stateful policies (oracle scripts, queued action chunks) of the envs whose
/// episode just ended.
fn reset_finished_policies(out: Res<StepOutput>, mut policy: ResMut<ActingPolicy>) {
    policy.episodes_ended(&out);
}

/// Adapts the policies to rebuilt envs and restarts the episode returns.
fn envs_rebuilt(
    generation: Res<EnvGeneration>,
    task: Res<SimTask>,
    entities: Res<EnvEntities>,
    layout: Res<EnvLayout>,
    mut policy: ResMut<ActingPolicy>,
    mut stats: ResMut<EpisodeStats>,
) {
    if !generation.is_changed() {
        return;
    }
    policy.envs_rebuilt(&task.scene, &task.spec, &layout.seeds);
    // New envs are a new attempt: an error of the old ones (say, physics that left f32's range in a scene
    // since reloaded) no longer holds; one that still does comes back at the next step.
    policy.error = None;
    policy.halted = false;
    stats.running = vec![0.0; entities.0.len()];
}

/// Applies the policy commands: choosing who acts and saving the agent. A policy that cannot act is not chosen
/// (its key does nothing, as its button is greyed out); choosing one that can clears the acting error, and
/// resumes the clock that error paused.
fn policy_commands(
    mut commands: MessageReader<ViewCommand>,
    mut policy: ResMut<ActingPolicy>,
    mut clock: ResMut<super::stepping::SimClock>,
    save_to: Option<Res<SavePath>>,
) {
    for command in commands.read() {
        match *command {
            ViewCommand::SetPolicy(kind) => {
                if policy.availability(kind).is_err() {
                    continue;
                }
                policy.kind = kind;
                policy.fallback = None;
                // An acting error paused the clock: with another policy acting, the envs go on. Physics that left
                // f32's range stays halted whoever acts: only new envs clear it.
                if !policy.halted && policy.error.take().is_some() {
                    clock.paused = false;
                }
            }
            ViewCommand::SaveCheckpoint => {
                if let Some(path) = &save_to {
                    save_agent(&mut policy, &path.0);
                }
            }
            _ => {}
        }
    }
}

/// Where "save checkpoint" writes the acting agent (set by the window's panel).
#[derive(Resource, Debug, Clone)]
pub struct SavePath(pub std::path::PathBuf);

/// Saves the acting agent (the panel's "save checkpoint"), atomically, creating the folders it goes in (as
/// `--screenshot` does): a save killed midway leaves a temporary file, which the next save to the same path removes
/// (see [`qamlab_agent::checkpoint::StagedFile`]).
fn save_agent(policy: &mut ActingPolicy, path: &std::path::Path) {
    let result = match &policy.agent {
        None => Err("no agent to save".to_string()),
        Some(agent) => {
            let acting = agent
                .lock()
                .expect("the acting agent's lock is never poisoned");
            create_parent(path).and_then(|()| {
                acting
                    .agent
                    .save(path)
                    .map(|()| path.to_path_buf())
                    .map_err(|e| e.to_string())
            })
        }
    };
    policy.saved = Some(result);
}

/// Creates the folder `path` goes in, and those above it, if missing.
fn create_parent(path: &std::path::Path) -> Result<(), String> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the folder {}: {e}", dir.display())),
        None => Ok(()),
    }
}
