//! The scripted data-collection policies (oracles): what they aim for ([`OracleMode`], [`OracleConfig`]), and
//! [`Oracle`], which picks the script a task's robot takes: [`CubeOracle`] (the gantry's pick-and-place) or
//! [`WalkerOracle`] (a legged robot's gait, steered through the scene's maze).

use qamlab_sim::authoring::Control;
use qamlab_sim::{EnvSpec, StepOutput, TaskScene};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::cube::{CubeOracle, GANTRY_ACTIONS, ReachFault};
use crate::registry::TaskError;
use crate::walker::WalkerOracle;

/// What the oracle aims for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleMode {
    /// Place the cube at the task's goal, then hold still.
    Solve,
    /// Keep placing the cube at random places of its own choosing (OGBench "play" data).
    Play,
}

/// How the oracle behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OracleConfig {
    /// Solve the task or play.
    pub mode: OracleMode,
    /// Noise standard deviation in normalised action units (OGBench: 0.1, i.e. 0.1 x each dim's scale); 0 = none.
    pub noise: f32,
    /// Noise time correlation: `n_t = smoothing * n_(t-1) + sqrt(1 - smoothing^2) * eps_t`.
    pub smoothing: f32,
    /// Play sub-goal region (x and y ranges on the table).
    pub play_region: [f32; 4],
    /// Probability of replacing a step's action by a uniformly random one (OGBench's "noisy" datasets use 0.1).
    pub random_action_prob: f32,
}

impl Default for OracleConfig {
    fn default() -> Self {
        Self {
            mode: OracleMode::Solve,
            noise: 0.0,
            smoothing: 0.5,
            play_region: [-0.15, 0.15, -0.15, 0.15],
            random_action_prob: 0.0,
        }
    }
}

impl OracleConfig {
    /// The play region of a task: the x and y ranges its goal targets are drawn from at reset (their union), so
    /// play data visits where the task's goals can be. A goal that is not randomised adds its target point; a
    /// scene without goals keeps the default region.
    pub fn play_region_of(scene: &TaskScene) -> [f32; 4] {
        let mut region: Option<[f32; 4]> = None;
        for def in &scene.goals {
            let [x, y, _] = def.target_span();
            region = Some(match region {
                None => [x.min, x.max, y.min, y.max],
                Some([x0, x1, y0, y1]) => {
                    [x0.min(x.min), x1.max(x.max), y0.min(y.min), y1.max(y.max)]
                }
            });
        }
        region.unwrap_or(Self::default().play_region)
    }
}

/// OGBench's exploration on a scripted action, in place: time-smoothed Gaussian noise (`noise` holds each
/// dimension's smoothed state), then with probability `random_action_prob` a uniformly random action instead;
/// finally clipped to [-1, 1]. The script has still advanced on this step's observation; only the executed action
/// is perturbed. Also how `qamlab collect --run` explores with a trained policy, so both kinds of data are noisy
/// alike.
pub fn perturb(config: &OracleConfig, noise: &mut [f32], rng: &mut ChaCha8Rng, action: &mut [f32]) {
    if config.noise > 0.0 {
        let c = config.smoothing;
        let fresh = (1.0 - c * c).sqrt();
        for (n, a) in noise.iter_mut().zip(action.iter_mut()) {
            let eps: f32 = rng.sample(StandardNormal);
            *n = c * *n + fresh * eps;
            *a += config.noise * *n;
        }
    }
    if config.random_action_prob > 0.0 && rng.random::<f32>() < config.random_action_prob {
        for a in action.iter_mut() {
            *a = rng.random_range(-1.0..=1.0);
        }
    }
    for a in action.iter_mut() {
        *a = a.clamp(-1.0, 1.0);
    }
}

/// `x` wrapped into `[-period/2, period/2)`.
pub(crate) fn wrap(x: f32, period: f32) -> f32 {
    (x + period / 2.0).rem_euclid(period) - period / 2.0
}

/// A task's scripted policy, batched over N envs: the script that fits the task's robot.
pub enum Oracle {
    /// The gantry's pick-and-place, for the cube tasks.
    Cube(CubeOracle),
    /// A legged robot's gait steered through a maze, for the locomotion tasks.
    Walker(WalkerOracle),
}

impl Oracle {
    /// The oracle for `scene`'s robot, driving envs of `spec` (one script per seed: env `i` draws its noise and
    /// sub-goals from `seeds[i]`). Errors if neither fits, saying what the script for the scene's kind of robot
    /// lacks (what each lacks, when the kind is unclear).
    pub fn new(
        scene: &TaskScene,
        spec: &EnvSpec,
        config: OracleConfig,
        seeds: &[u64],
    ) -> Result<Self, TaskError> {
        // Neither script moves a joint to a target or turns a body to a direction: data it collected would never
        // show such a goal met.
        // The first few names of each kind, and how many more (a scene may have thousands).
        let named = |kind: &str, names: Vec<&str>| {
            let mut quoted: Vec<String> =
                names.iter().take(5).map(|n| format!("\"{n}\"")).collect();
            if names.len() > 5 {
                quoted.push(format!("and {} more", names.len() - 5));
            }
            (!names.is_empty()).then(|| format!("{kind}: {}", quoted.join(", ")))
        };
        let unscripted: Vec<String> = [
            named(
                "joint goals",
                scene
                    .joint_goals
                    .iter()
                    .map(|g| g.goal.name.as_str())
                    .collect(),
            ),
            named(
                "axis goals",
                scene
                    .axis_goals
                    .iter()
                    .map(|g| g.goal.name.as_str())
                    .collect(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !unscripted.is_empty() {
            return Err(TaskError::NoOracle {
                task: spec.task.clone(),
                missing: format!(
                    "a scene without `JointGoal`s or `AxisGoal`s: its scripts place cubes and walk to places, and \
                     drive no joint to a target nor turn a body to a direction (this scene's {})",
                    unscripted.join("; ")
                ),
            });
        }
        // A layout the gantry cannot do is said before anything the script lacks (its actions' scales, say).
        let reach = (spec.action_names == GANTRY_ACTIONS).then(|| crate::cube::check_reach(scene));
        if let Some(Err(ReachFault::Task(needs))) = reach {
            return Err(TaskError::Unsolvable {
                task: spec.task.clone(),
                needs,
            });
        }
        let cube = match CubeOracle::new(scene, spec, config, seeds) {
            Ok(mut oracle) => {
                let task = spec.task.clone();
                // Checked above: the cube script takes the gantry's actions only.
                let reach = reach
                    .unwrap_or_else(|| crate::cube::check_reach(scene))
                    .map_err(|fault| match fault {
                        ReachFault::Task(needs) => TaskError::Unsolvable { task, needs },
                        ReachFault::Script(missing) => TaskError::NoOracle { task, missing },
                    })?;
                // Just short of the limit, where the motor still moves the pinch.
                oracle.limit_carrying_height(reach - 0.01);
                return Ok(Self::Cube(oracle));
            }
            Err(e) => e,
        };
        let walker = match WalkerOracle::new(scene, spec, config, seeds) {
            Ok(oracle) => return Ok(Self::Walker(oracle)),
            // A walker the script would drive, laid out so that it cannot get to its goal.
            Err(e @ TaskError::Unsolvable { .. }) => return Err(e),
            Err(e) => e,
        };
        let need = |e: TaskError| match e {
            TaskError::NoOracle { missing, .. } => missing,
            other => other.to_string(),
        };
        // Name what the script the scene was written for lacks; when that is unclear, what each lacks.
        let gantry = spec.action_names == GANTRY_ACTIONS
            || spec
                .obs_names
                .contains(&qamlab_sim::spec::columns::position_x("pinch"));
        let absolute = spec
            .action_controls
            .iter()
            .all(|c| matches!(c, Control::PositionAbsolute { .. }));
        // A legged robot's actions are all `PositionAbsolute`, but so are an arm's: one without a leg is not the
        // walking script's, and the sensors that script would read of a legged robot would not make it one.
        let legged = absolute && crate::walker::has_a_leg(scene);
        let missing = match (gantry, legged) {
            // The gantry's sensors on other actions: the actions are what to mend first, or the sensors asked for
            // next lead nowhere.
            (true, false) if spec.action_names != GANTRY_ACTIONS => format!(
                "the built-in gantry's actions, {} in that order, to pick and place with it; this scene's are {}",
                GANTRY_ACTIONS.join(", "),
                spec.action_names.join(", ")
            ),
            (true, false) => format!("{} (to pick and place with the gantry)", need(cube)),
            (false, true) => format!("{} (to walk a legged robot)", need(walker)),
            // Neither robot: the first thing each script lacks would only lead the author down a dead end.
            (false, false) if absolute => format!(
                "a robot one of its two scripts drives, and this scene's is neither the built-in gantry (actions {}) \
                 nor a legged robot: its actions are all `PositionAbsolute`, as a legged robot's are, but none moves a \
                 leg (a legged robot, built like antmaze-umaze's, has {}); this scene's actions: {}",
                GANTRY_ACTIONS.join(", "),
                crate::walker::LEGGED_ROBOT,
                crate::walker::what_actions_move(scene)
            ),
            (false, false) => {
                let actions: Vec<String> = spec
                    .action_names
                    .iter()
                    .zip(&spec.action_controls)
                    .map(|(name, control)| format!("`{name}` {control}"))
                    .collect();
                format!(
                    "a robot one of its two scripts drives: the built-in gantry (actions {}) or a legged robot built \
                     like antmaze-umaze's (every action a `PositionAbsolute` hip or knee); this scene's actions are {}",
                    GANTRY_ACTIONS.join(", "),
                    actions.join(", ")
                )
            }
            (true, true) => format!(
                "{} (to pick and place with the gantry), or {} (to walk a legged robot)",
                need(cube),
                need(walker)
            ),
        };
        Err(TaskError::NoOracle {
            task: spec.task.clone(),
            missing,
        })
    }

    /// Which script it runs, in words.
    pub fn script(&self) -> &'static str {
        match self {
            Self::Cube(_) => "the gantry's pick-and-place",
            Self::Walker(_) => "a legged robot's walk",
        }
    }

    /// Number of envs it drives.
    pub fn num_envs(&self) -> usize {
        match self {
            Self::Cube(o) => o.num_envs(),
            Self::Walker(o) => o.num_envs(),
        }
    }

    /// Env `i`'s current script phase, for diagnostics.
    pub fn phase(&self, i: usize) -> &'static str {
        match self {
            Self::Cube(o) => o.phase(i),
            Self::Walker(o) => o.phase(i),
        }
    }

    /// Sub-tasks env `i`'s script has completed so far: cubes put down, or places walked to.
    pub fn subgoals_reached(&self, i: usize) -> u32 {
        match self {
            Self::Cube(o) => o.placements(i),
            Self::Walker(o) => o.arrivals(i),
        }
    }

    /// Restarts env `i`'s script (call when its episode restarts); its random stream continues.
    pub fn episode_started(&mut self, i: usize) {
        match self {
            Self::Cube(o) => o.episode_started(i),
            Self::Walker(o) => o.episode_started(i),
        }
    }

    /// Restarts the scripts of every env whose episode ended at the step `out` reports.
    pub fn episodes_ended(&mut self, out: &StepOutput) {
        match self {
            Self::Cube(o) => o.episodes_ended(out),
            Self::Walker(o) => o.episodes_ended(out),
        }
    }

    /// Actions `[N * action_dim]` for observations `[N * obs_dim]`.
    pub fn act(&mut self, obs: &[f32]) -> &[f32] {
        match self {
            Self::Cube(o) => o.act(obs),
            Self::Walker(o) => o.act(obs),
        }
    }
}
