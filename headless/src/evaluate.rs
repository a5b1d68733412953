//! Evaluation (spec §7.3): episodes on separate envs that end on success or the time limit; the
//! success rate is the fraction of episodes whose last step succeeded.

use anyhow::Context;
use qamlab_agent::Agent;
use qamlab_sim::{BatchedEnv, EnvOptions, TaskScene};

use crate::chunks::ChunkQueues;
use crate::phase::Phase;

/// One evaluation of the policy during a run: a line of its `eval.csv`, a point of its learning curve.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EvalPoint {
    /// Total gradient/environment step count at evaluation (offline steps + online steps).
    pub step: u64,
    /// The phase the run was in.
    pub phase: Phase,
    /// Fraction of evaluation episodes that ended in success.
    pub success_rate: f64,
    /// Mean undiscounted return of the evaluation episodes.
    pub mean_return: f64,
    /// Number of evaluation episodes.
    pub episodes: usize,
}

/// Outcome of an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// Fraction of episodes ending in success.
    pub success_rate: f64,
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Episodes run.
    pub episodes: usize,
    /// Envs the episodes were spread over (the envs asked for, at most one an episode): each starts from initial
    /// states of its own, so another count gives other episodes.
    pub envs: usize,
    /// Environment steps taken.
    pub env_steps: u64,
}

impl EvalResult {
    /// The point this evaluation adds to the learning curve.
    pub fn point(&self, step: u64, phase: Phase) -> EvalPoint {
        EvalPoint {
            step,
            phase,
            success_rate: self.success_rate,
            mean_return: self.mean_return,
            episodes: self.episodes,
        }
    }

    /// The 95 % (Wilson score) confidence interval of the policy's success rate, from these episodes (30
    /// episodes leave about +-17 points around 50 %, 100 about +-10).
    pub fn interval(&self) -> (f64, f64) {
        wilson_interval(self.success_rate, self.episodes)
    }

    /// The episodes that ended in success.
    pub fn successes(&self) -> usize {
        (self.success_rate * self.episodes as f64).round() as usize
    }
}

impl EvalPoint {
    /// The episodes that ended in success.
    pub fn successes(&self) -> usize {
        (self.success_rate * self.episodes as f64).round() as usize
    }

    /// The 95 % (Wilson score) confidence interval of the policy's success rate at this evaluation.
    pub fn interval(&self) -> (f64, f64) {
        wilson_interval(self.success_rate, self.episodes)
    }
}

/// The Wilson score interval (95 %) of a success rate `rate` measured over `episodes` episodes: a confidence
/// interval for the policy's true rate (whose real coverage falls below 95 % near 0 or 1 with few episodes).
fn wilson_interval(rate: f64, episodes: usize) -> (f64, f64) {
    if episodes == 0 {
        return (0.0, 1.0);
    }
    let (n, z) = (episodes as f64, 1.96);
    let centre = (rate + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (rate * (1.0 - rate) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Where an evaluation's acting draws start ([`Agent::acting_position`]): far past any count training's acting
/// reaches (at most 2^53 calls), so an evaluation draws from a stream of its own. Training's draws are then the same
/// however often, and over how many episodes, a run evaluates; and an agent evaluated from a checkpoint (`qamlab
/// eval`) draws as the run's evaluation at that step did.
pub const EVAL_ACTING_POSITION: u64 = 1 << 63;

/// Runs `episodes` episodes of `task` with `agent`'s policy on `envs` envs stepping together.
/// Each env runs a fixed share of the episodes, so fast (successful) episodes do not crowd out
/// slow ones. Episode seeds come from `seed`: the same seed evaluates on the same initial states.
/// The policy's draws come from the evaluation's own stream ([`EVAL_ACTING_POSITION`]): the agent's acting
/// position is as it was afterwards.
pub fn evaluate(
    agent: &mut Agent,
    task: &TaskScene,
    episodes: usize,
    envs: usize,
    seed: u64,
) -> anyhow::Result<EvalResult> {
    let never = |_: usize| false;
    evaluate_unless_stopped(agent, task, episodes, envs, seed, &never)
        .map(|result| result.expect("an evaluation never asked to stop finishes"))
}

/// [`evaluate`], giving up (`None`) as soon as `stop` says so, asked before each step with the episodes ended so
/// far (a command reports its progress so): a run asked to stop (SIGTERM, with seconds to go before SIGKILL) does
/// not first finish an evaluation of many episodes.
pub fn evaluate_unless_stopped(
    agent: &mut Agent,
    task: &TaskScene,
    episodes: usize,
    envs: usize,
    seed: u64,
    stop: &dyn Fn(usize) -> bool,
) -> anyhow::Result<Option<EvalResult>> {
    let training = agent.acting_position();
    agent.set_acting_position(EVAL_ACTING_POSITION);
    let result = run_episodes(agent, task, episodes, envs, seed, stop);
    // Put back whatever became of the evaluation: finished, given up or failed.
    agent.set_acting_position(training);
    result
}

/// The episodes of [`evaluate_unless_stopped`], drawing from the agent's acting position as it stands.
fn run_episodes(
    agent: &mut Agent,
    task: &TaskScene,
    episodes: usize,
    envs: usize,
    seed: u64,
    stop: &dyn Fn(usize) -> bool,
) -> anyhow::Result<Option<EvalResult>> {
    anyhow::ensure!(episodes > 0, "an evaluation needs at least one episode");
    let envs = envs.min(episodes).max(1);
    let mut env = BatchedEnv::new(
        task,
        envs,
        EnvOptions {
            terminate_on_success: true,
            episode_length: None,
            ..EnvOptions::default()
        },
    )
    .context("building the evaluation envs")?;
    crate::chunks::check_agent_action_space(env.spec())
        .with_context(|| format!("task {}", env.spec().task))?;
    let action_dim = env.spec().action_dim;
    let quota: Vec<usize> = (0..envs)
        .map(|i| episodes / envs + usize::from(i < episodes % envs))
        .collect();
    let seeds: Vec<u64> = (0..envs as u64).map(|i| eval_env_seed(seed, i)).collect();
    let stepping = || "stepping the evaluation envs";
    let mut obs = env.reset(&seeds).with_context(stepping)?.to_vec();
    let mut queues = ChunkQueues::new(envs, action_dim);
    let mut done = vec![0usize; envs];
    let mut returns = vec![0.0f64; envs];
    let (mut successes, mut total_return, mut env_steps) = (0usize, 0.0f64, 0u64);
    while done.iter().zip(&quota).any(|(d, q)| d < q) {
        if stop(done.iter().sum()) {
            return Ok(None);
        }
        let actions = queues.next_actions(agent, &obs, &env.spec().action_names)?;
        let out = env.step(&actions).with_context(stepping)?;
        for i in 0..envs {
            if done[i] >= quota[i] {
                continue; // this env has run its share; its further episodes are not counted
            }
            env_steps += 1;
            returns[i] += f64::from(out.reward[i]);
            if out.ended(i) {
                successes += usize::from(out.success[i]);
                total_return += returns[i];
                returns[i] = 0.0;
                done[i] += 1;
                queues.clear(i);
            }
        }
        obs.copy_from_slice(&out.obs);
    }
    Ok(Some(EvalResult {
        success_rate: successes as f64 / episodes as f64,
        mean_return: total_return / episodes as f64,
        episodes,
        envs,
        env_steps,
    }))
}

/// Seed of a run's evaluations' initial states, from the run's `seed` (`qamlab eval --seed` this repeats them).
pub fn run_evaluation_seed(seed: u64) -> u64 {
    seed ^ 0x5EED_E7A1
}

/// Salt of the evaluation envs' seeds in [`eval_env_seed`]'s mix (the collection mixes its streams alike, with salts 1
/// and 2): an evaluation starts from other states than a run's training envs or a dataset of the same seed.
const EVAL_SEED_SALT: u64 = 3;

/// Seed of evaluation env `i` for an evaluation seeded `seed`: its first episode's initial state. A splitmix64 mix
/// of the seed and a salt of the evaluation's own, plus `i`: training env `i` of a run seeded 0 is seeded `i`, so a
/// plain `seed + i` would start `qamlab eval --seed 0` from that run's own training episodes. The envs' seeds
/// follow one another, as the episodes of `qamlab eval --video` do (episode `i` from `eval_env_seed(seed, 0) + i`):
/// its episodes are the first of the evaluation's envs, one an env.
pub fn eval_env_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ EVAL_SEED_SALT.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).wrapping_add(i)
}

#[cfg(test)]
mod tests {
    use super::{eval_env_seed, evaluate, run_episodes, wilson_interval};
    use qamlab_agent::{Agent, AgentConfig};
    use qamlab_sim::TaskScene;

    /// A slider the policy drives along a rail, and a goal it can never reach: every episode runs to the time
    /// limit of 12 steps, rewarded -1 each.
    const UNSOLVABLE: &str = r#"(
  resources: {},
  entities: {
    1: (components: {
      "qamlab_sim::authoring::TaskSettings": (name: "unsolvable", episode_length: 12, control_dt: 0.05, substeps: 2,
        solver_iterations: 4, gravity: (0.0, 0.0, 0.0), reward: SuccessMinusOne),
      "qamlab_sim::authoring::ActionSpace": (actuators: [
        (name: "push", joints: ["rail"], control: Velocity(scale: 1.0), range: (min: -1.0, max: 1.0),
         stiffness: 0.0, damping: 50.0, max_force: 100.0),
      ]),
      "qamlab_sim::authoring::ObservationSpace": (sensors: [Position(frame: "slider")]),
    }),
    2: (components: {
      "qamlab_sim::authoring::Body": (name: "post", kind: Fixed, translation: (0.0, 0.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0)),
    }),
    3: (components: {
      "qamlab_sim::authoring::Body": (name: "slider", kind: Dynamic, translation: (0.0, 0.0, 0.0), rotation: (0.0, 0.0, 0.0, 1.0),
        extra_mass: 0.5),
      "qamlab_sim::authoring::Joint": (name: "rail", parent: "post", child: "slider", kind: Prismatic(axis: (1.0, 0.0, 0.0)),
        anchor: (0.0, 0.0, 0.0), limits: Some((min: -0.5, max: 0.5))),
    }),
    4: (components: {"qamlab_sim::authoring::Goal": (name: "far", frame: "slider", target: (5.0, 5.0, 5.0), tolerance: 0.01)}),
  },
)"#;

    /// The unsolvable task and an untrained agent for it (chunks of 5 actions).
    fn unsolvable() -> (TaskScene, Agent) {
        let scene = TaskScene::from_ron(UNSOLVABLE, "unsolvable.scn.ron").unwrap();
        let cfg = AgentConfig {
            actor_hidden_dims: vec![8],
            value_hidden_dims: vec![8],
            num_qs: 2,
            ..AgentConfig::default()
        };
        assert_eq!(cfg.horizon_length, 5);
        let agent = Agent::new(cfg, 3, 1, tch::Device::Cpu, 0).unwrap();
        (scene, agent)
    }

    #[test]
    fn each_env_runs_its_share_of_the_episodes_and_no_more_is_counted() {
        let (scene, mut agent) = unsolvable();
        // 3 episodes on 2 envs: 2 on the first, 1 on the second; 4: 2 each. Every episode lasts 12 steps.
        for (episodes, shares) in [(3, 2 + 1), (4, 2 + 2), (5, 3 + 2)] {
            let result = evaluate(&mut agent, &scene, episodes, 2, 7).unwrap();
            assert_eq!(
                (result.episodes, result.envs, result.env_steps),
                (episodes, 2, 12 * shares),
                "{episodes} episodes"
            );
            assert_eq!(result.successes(), 0, "{episodes} episodes");
            assert_eq!(result.mean_return, -12.0, "{episodes} episodes");
        }
    }

    #[test]
    fn an_episode_starts_with_a_chunk_sampled_on_its_first_observation() {
        // Episodes of 12 steps in chunks of 5: the policy is asked at steps 0, 5 and 10 of each, the rest of the
        // chunk it gave at step 10 dropped when the episode ends at step 12. Two episodes: 6 samples. (The
        // evaluation's own stream starts from position 0 here, as run_episodes leaves it to its caller.)
        let (scene, mut agent) = unsolvable();
        agent.set_acting_position(0);
        let never = |_: usize| false;
        let result = run_episodes(&mut agent, &scene, 2, 1, 7, &never)
            .unwrap()
            .unwrap();
        assert_eq!(result.env_steps, 24);
        assert_eq!(agent.acting_position(), 6, "policy samples in 2 episodes");
    }

    #[test]
    fn the_video_starts_its_episodes_from_the_seeds_of_the_evaluation_envs_first_episodes() {
        // `qamlab eval --video` starts its episode `i` from seed `eval_env_seed(seed, 0) + i`.
        for seed in [0, 7, 1 << 40, u64::MAX >> 1] {
            let first = eval_env_seed(seed, 0);
            for i in 0..100 {
                assert_eq!(eval_env_seed(seed, i), first.wrapping_add(i));
            }
        }
    }

    #[test]
    fn the_interval_narrows_with_more_episodes_and_stays_in_0_1() {
        let (low, high) = wilson_interval(0.5, 30);
        assert!(
            (low - 0.332).abs() < 0.005 && (high - 0.668).abs() < 0.005,
            "{low} {high}"
        );
        let (low, high) = wilson_interval(0.5, 1000);
        assert!(high - low < 0.07, "{low} {high}");
        let (low, high) = wilson_interval(0.0, 20);
        assert!(low == 0.0 && high > 0.1 && high < 0.2, "{low} {high}");
        assert_eq!(wilson_interval(1.0, 10).1, 1.0);
    }
}
