//! [`CubeOracle`]: a scripted pick-and-place policy for the cube tasks, batched over N envs.
//!
//! A closed-loop state machine per env: approach above the cube -> descend -> grasp -> lift -> carry over the
//! target -> lower -> release -> retreat (at an episode's start, first waiting, the hand out of their way, for cubes
//! authored in the air to land). Each action is the normalised gap between the phase's target and the
//! current state (OGBench's "action = (plan - state) / scale"), clipped to [-1, 1]. For data it adds OGBench's
//! time-smoothed Gaussian noise and, in "play" mode, keeps choosing its own random sub-goals (pick the cube, place
//! it somewhere random, repeat) instead of the task's goal.

use std::f32::consts::FRAC_PI_2;

use qamlab_sim::authoring::Control;
use qamlab_sim::spec::columns;
use qamlab_sim::{EnvSpec, StepOutput, TaskScene};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::oracle::{OracleConfig, OracleMode, perturb, wrap};
use crate::registry::TaskError;

pub(crate) mod feasibility;
pub(crate) mod grip;
mod reach;

pub(crate) use feasibility::{ReachFault, check_reach};

/// The gantry's actions, in the order the script writes them: a task's `ActionSpace` must name these for the cube
/// script to drive it.
pub(crate) const GANTRY_ACTIONS: [&str; 5] = ["dx", "dy", "dz", "dyaw", "gripper"];

/// The width of one env's action: one value per [`GANTRY_ACTIONS`] name.
const ACTION_DIM: usize = GANTRY_ACTIONS.len();

/// Observation indices the oracle reads.
#[derive(Clone, Debug)]
struct Layout {
    ee: usize,
    ee_yaw: usize,
    /// Per cube: (position index, yaw sin index).
    cubes: Vec<(usize, usize)>,
    /// Per cube: its goal's target index.
    goals: Vec<usize>,
    /// Per cube: how near its goal's target it counts as placed, so that solving leaves it be (see
    /// [`solved_within`]).
    solved_within: Vec<f32>,
}

impl Layout {
    /// Finds the gantry, the cubes and their goals in `spec`'s observation (and the goals' tolerances in `scene`,
    /// the task `spec` is of).
    fn find(scene: &TaskScene, spec: &EnvSpec) -> Result<Self, TaskError> {
        let at = |name: &str| {
            spec.obs_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| {
                    no_oracle(
                        spec,
                        format!("{} in the `ObservationSpace`", sensor_of(name)),
                    )
                })
        };
        let (ee, ee_yaw) = (
            at(&columns::position_x("pinch"))?,
            at(&columns::yaw_sin("palm"))?,
        );
        // Cubes are the bodies observed with both a position and a yaw; goals are the observed targets. Each cube
        // goes to the one goal on it.
        let mut cubes = Vec::new();
        let mut cube_names = Vec::new();
        let mut goal_targets = Vec::new();
        for (k, name) in spec.obs_names.iter().enumerate() {
            if let Some(body) = columns::body_of_yaw_sin(name)
                && !cube_names.contains(&body)
                && let Ok(p) = at(&columns::position_x(body))
            {
                cubes.push((p, k));
                cube_names.push(body);
            }
            // A goal observed twice is still one goal (the scene's warnings name the repeated sensor).
            if let Some(goal) = columns::goal_of_target_x(name)
                && !goal_targets.iter().any(|&(g, _)| g == goal)
            {
                goal_targets.push((goal, k));
            }
        }
        // Success needs every goal to hold: the script must see each target.
        if let Some((goal, _)) = spec
            .goal_bodies
            .iter()
            .find(|(g, _)| !goal_targets.iter().any(|(t, _)| t == g))
        {
            return Err(no_oracle(
                spec,
                format!("every goal observed with `GoalPosition` (goal `{goal}` is not)"),
            ));
        }
        if cubes.is_empty() || cubes.len() != goal_targets.len() {
            let why = explain_count_mismatch(spec, &cube_names, &goal_targets);
            return Err(no_oracle(
                spec,
                format!(
                    "one cube per goal, each cube observed with `Position(frame: <cube>)` and `YawSinCos(body: <cube>)` \
                     and each goal with `GoalPosition(goal: <goal>)` (found {}, {}{why})",
                    count(cubes.len(), "cube"),
                    count(goal_targets.len(), "goal")
                ),
            ));
        }
        let goals = goal_of_each_cube(spec, &cube_names, &goal_targets)?;
        check_gantry_actions(spec)?;
        let solved_within = goals
            .iter()
            .map(|&target| {
                let goal = columns::goal_of_target_x(&spec.obs_names[target])
                    .expect("a goal's target column");
                scene
                    .goals
                    .iter()
                    .find(|def| def.goal.name == goal)
                    .map(|def| solved_within(def.goal.tolerance))
                    .ok_or_else(|| {
                        no_oracle(
                            spec,
                            format!(
                                "goal `{goal}` in the scene its spec was made of (the two differ)"
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            ee,
            ee_yaw,
            cubes,
            goals,
            solved_within,
        })
    }

    /// Every cube's position in the observation `o`.
    fn cube_positions(&self, o: &[f32]) -> Vec<[f32; 3]> {
        self.cubes.iter().map(|&(p, _)| vec3(o, p)).collect()
    }
}

/// The error saying the cube script cannot drive `spec`'s task without `missing`.
fn no_oracle(spec: &EnvSpec, missing: String) -> TaskError {
    TaskError::NoOracle {
        task: spec.task.clone(),
        missing,
    }
}

/// The body goal `goal` is on, by the spec's goal list.
fn goal_body<'a>(spec: &'a EnvSpec, goal: &str) -> Option<&'a str> {
    spec.goal_bodies
        .iter()
        .find(|(g, _)| g == goal)
        .map(|(_, body)| body.as_str())
}

/// Per cube (in `cube_names`' order), the observation index of the one observed goal on it; errs where an observed
/// goal is on no observed cube, or a cube has no goal or several.
fn goal_of_each_cube(
    spec: &EnvSpec,
    cube_names: &[&str],
    goal_targets: &[(&str, usize)],
) -> Result<Vec<usize>, TaskError> {
    let body_of = |goal: &str| goal_body(spec, goal);
    for &(goal, _) in goal_targets {
        let body = body_of(goal).unwrap_or("?");
        if !cube_names.contains(&body) {
            return Err(no_oracle(
                spec,
                format!(
                    "each observed goal on a cube observed with position and yaw (goal `{goal}` is on `{body}`)"
                ),
            ));
        }
    }
    let mut goals = Vec::with_capacity(cube_names.len());
    for cube in cube_names {
        let on: Vec<_> = goal_targets
            .iter()
            .filter(|&&(goal, _)| body_of(goal) == Some(cube))
            .collect();
        match on[..] {
            [&(_, target)] => goals.push(target),
            [] => {
                return Err(no_oracle(
                    spec,
                    format!("a goal on cube `{cube}` (it has none)"),
                ));
            }
            _ => {
                let names: Vec<String> = on.iter().map(|(g, _)| format!("`{g}`")).collect();
                return Err(no_oracle(
                    spec,
                    format!(
                        "one goal per cube (cube `{cube}` has {}: it is placed at one target)",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(goals)
}

/// What makes the counts of observed cubes and goals differ, each reason led by "; ": a goal's body not observed as
/// a cube, a cube without a goal. Empty where nothing in particular does.
fn explain_count_mismatch(
    spec: &EnvSpec,
    cube_names: &[&str],
    goal_targets: &[(&str, usize)],
) -> String {
    let body_of = |goal: &str| goal_body(spec, goal);
    let observed = |column: &String| spec.obs_names.contains(column);
    let mut why = Vec::new();
    for &(goal, _) in goal_targets {
        let body = body_of(goal).unwrap_or("?");
        let lacks: Vec<String> = [columns::position_x(body), columns::yaw_sin(body)]
            .into_iter()
            .filter(|column| !observed(column))
            .map(|column| sensor_of(&column))
            .collect();
        if !lacks.is_empty() {
            why.push(format!(
                "goal `{goal}`'s body `{body}` lacks {}",
                lacks.join(" and ")
            ));
        }
    }
    for cube in cube_names {
        if !goal_targets.iter().any(|&(g, _)| body_of(g) == Some(cube)) {
            why.push(format!(
                "`{cube}` is observed like a cube (position and yaw) but no observed goal is on it"
            ));
        }
    }
    why.iter().map(|w| format!("; {w}")).collect::<String>()
}

/// Whether `spec`'s action space is the built-in gantry's, which the script drives: the [`GANTRY_ACTIONS`] in that
/// order, with the gantry's controls and each ranging over [-1, 1].
fn check_gantry_actions(spec: &EnvSpec) -> Result<(), TaskError> {
    if spec.action_names != GANTRY_ACTIONS {
        return Err(no_oracle(
            spec,
            format!("the actions {}, in that order", GANTRY_ACTIONS.join(", ")),
        ));
    }
    // The script plans in metres and radians per step for the built-in gantry's controls; other scales or
    // controls would make it overshoot or push the wrong way, silently.
    for (k, expected) in [
        Control::PositionDelta { scale: MOVE_SCALE },
        Control::PositionDelta { scale: MOVE_SCALE },
        Control::PositionDelta { scale: MOVE_SCALE },
        Control::PositionDelta { scale: YAW_SCALE },
    ]
    .into_iter()
    .enumerate()
    {
        if spec.action_controls[k] != expected {
            return Err(no_oracle(
                spec,
                format!(
                    "action `{}` to be {expected}, as the built-in gantry's (it is {})",
                    spec.action_names[k], spec.action_controls[k]
                ),
            ));
        }
    }
    if !matches!(spec.action_controls[4], Control::PositionAbsolute { .. }) {
        return Err(no_oracle(
            spec,
            format!(
                "action `gripper` to be PositionAbsolute (-1 open, +1 closed), as the built-in gantry's (it is {})",
                spec.action_controls[4]
            ),
        ));
    }
    // The script's actions span [-1, 1], as the built-ins' do; a narrower range would refuse them mid-episode.
    for (k, name) in spec.action_names.iter().enumerate() {
        let (low, high) = (spec.action_low[k], spec.action_high[k]);
        if (low, high) != (-1.0, 1.0) {
            return Err(no_oracle(
                spec,
                format!("action `{name}` to range over [-1, 1] (it ranges over [{low}, {high}])"),
            ));
        }
    }
    Ok(())
}

/// Phases of the pick-and-place script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// At an episode's start, before the first sub-task is chosen: waiting for cubes that start in the air to come
    /// to rest.
    Settle,
    Approach,
    Descend,
    Grasp,
    Lift,
    Carry,
    Lower,
    Release,
    Retreat,
    Done,
}

impl Phase {
    /// Whether the fingers hold the cube in this phase, so that losing it restarts the pick.
    fn holds_cube(self) -> bool {
        matches!(self, Phase::Lift | Phase::Carry | Phase::Lower)
    }
}

/// Per-env script state.
#[derive(Clone, Debug)]
struct Script {
    phase: Phase,
    /// Steps spent in the current phase.
    steps: u32,
    /// The cube being moved (index into the layout's cubes); chosen when `None`.
    cube: Option<usize>,
    /// Play: where the cube should go now.
    subgoal: [f32; 3],
    /// Smoothed noise state, one per action dim.
    noise: [f32; ACTION_DIM],
    /// The pinch's height while carrying in the current sub-task (see [`carry_height`]).
    carry_z: f32,
    /// Cubes put down (releases completed) since the oracle was built.
    placements: u32,
    /// Grasps lost while lifting, carrying or lowering since the oracle was built.
    drops: u32,
    /// The cubes' positions at the previous step of this episode (empty at its first step).
    last_cubes: Vec<[f32; 3]>,
    /// Per cube: the consecutive steps up to this one over which it moved less than [`STILL_STEP`].
    still: Vec<u32>,
    /// Whether the cubes have come to rest since the episode began (see [`Script::settle`]).
    settled: bool,
    rng: ChaCha8Rng,
}

// Geometry of the script (metres, radians); cube-single's units.
const MOVE_SCALE: f32 = 0.05;
const YAW_SCALE: f32 = 0.3;
const HOVER: f32 = 0.08; // above the cube before descending
const CARRY_Z: f32 = 0.10; // pinch height while carrying, at the least
// The pinch carries this far above the highest cube centre or target, so that the cube clears a cube or a raised
// target (a platform) on its way; on a table with its cubes and targets resting on it, CARRY_Z is the higher.
const CARRY_CLEARANCE: f32 = 0.06;
const GRASP_DZ: f32 = 0.003; // pinch above the cube centre when grasping
const YAW_LIMIT: f32 = 1.5;
/// Solve: a cube within its goal's tolerance less this counts as placed and is left be (see [`solved_within`]).
const SOLVED_MARGIN: f32 = 0.001;
const CLEARANCE: f32 = 0.08; // play places a cube at least this far from the others

// When the script moves on from a phase (metres, radians, control steps). Tuned on cube-single: a 4 cm cube,
// fingers that open to an 8.8 cm gap and reach 2 cm below the pinch, at most 5 cm a step, 0.05 s steps.

/// Approach: the pinch is over the cube when this near its hover point horizontally. The open gap leaves 2.4 cm
/// either side of the cube, so coming down 1 cm off still lands the fingers around it (the descent then centres).
const OVER_CUBE_XY: f32 = 0.01;
/// Approach: the pinch is at the hover height when this near it: a quarter of [`HOVER`], the fingers still well
/// clear of the cube's top.
const AT_HOVER_Z: f32 = 0.02;
/// Approach: the fingers are square to the cube's faces when their yaw is this near (rad, about 3.4°), so that
/// they close flat on two faces rather than on the corners.
const YAW_ALIGNED: f32 = 0.06;
/// Approach: farther than this from the hover point horizontally, the pinch travels without coming down, so that
/// the open fingers clear the cube on the way; nearer, it settles onto the hover height.
const TRAVEL_XY: f32 = 0.02;
/// Descend: the cube farther than this from the pinch horizontally was knocked away or the pinch drifted. It is
/// about the 2.4 cm between the cube and an open finger: past it a finger would come down on the cube, so the
/// script approaches again.
const DESCEND_DRIFT_XY: f32 = 0.025;
/// Descend: the pinch is at the grasp point when this near it vertically; the fingers, 7 cm tall, close on the
/// cube's sides anywhere within it.
const AT_GRASP_Z: f32 = 0.006;
/// Descend: the pinch is at the grasp point when this near it horizontally: the fingers then meet the cube nearly
/// together, squaring it between them rather than shoving it off.
const AT_GRASP_XY: f32 = 0.008;
/// Grasp: steps the fingers close, the pinch kept at the grasp point, before lifting: time to close on the cube and
/// squeeze it, so that the lift does not pull it out.
const GRASP_STEPS: u32 = 6;
/// Holding phases: the cube is held while its centre is this near the pinch horizontally, half the cube's width: a
/// cube between closed fingers always is, one dropped or pulled out is not.
const HELD_XY: f32 = 0.02;
/// Holding phases: the cube is held while its centre is this near the pinch vertically (the grasp holds it
/// [`GRASP_DZ`] below), a little more than half its height, so that a slip within the fingers still counts as held.
const HELD_Z: f32 = 0.025;
/// Lift and retreat: the pinch is at the carrying height when this near it, near enough that the carried cube
/// clears what [`CARRY_CLEARANCE`] keeps it above, without waiting on the motor's last millimetres.
const AT_CARRY_Z: f32 = 0.015;
/// Carry: the cube is over its target when this near it horizontally, a fifth of the built-in tasks' tolerance
/// (0.04), which leaves room for the cube to shift as it is set down.
const OVER_GOAL_XY: f32 = 0.008;
/// Lower: the script aims the cube this far above its target, so that the hand sets it on the table rather than
/// pressing it into the table.
const SET_DOWN_DZ: f32 = 0.002;
/// Lower: the cube is down when its centre is this near its target's height: resting, or so nearly that letting go
/// drops it no farther than that.
const SET_DOWN_Z: f32 = 0.006;
/// Release: steps the fingers open, the pinch held still, before retreating: time to let go of the cube, so that
/// rising does not drag it along.
const RELEASE_STEPS: u32 = 5;
/// Settle: a cube whose centre is more than this above its goal's height (where it rests on the table) may be in
/// the air, still falling; a quarter of the cube's width, so that a cube resting flat or tipped onto an edge is not.
const ABOVE_REST_Z: f32 = 0.01;
/// Settle: a cube is still at a step when it moved less than this since the previous one (2 cm/s).
const STILL_STEP: f32 = 0.001;
/// Settle: a cube above its rest height has come to rest once it kept still this many steps in a row, more than
/// the step or two around the top of a bounce.
const SETTLED_STEPS: u32 = 3;
/// Settle: the pinch keeps this far, horizontally, from a cube above it that is not yet at rest, so that the cube
/// falls past the hand rather than onto it: the open fingers reach 6.2 cm from the pinch and a cube's corner 2.8 cm
/// from its centre.
const KEEP_CLEAR_XY: f32 = 0.1;
/// A phase that lasts more than this many steps restarts the pick (the cube slipped or was knocked away): 3 s, far
/// longer than a phase takes when it goes right (at 5 cm a step, 60 steps cross the 0.6 m table five times).
const PHASE_TIMEOUT_STEPS: u32 = 60;

/// The gripper action that opens the fingers (the control's `at_min`).
const OPEN: f32 = -1.0;
/// The gripper action that closes the fingers (`at_max`): they stop on the cube and squeeze it.
const CLOSE: f32 = 1.0;

/// The batched cube pick-and-place oracle.
pub struct CubeOracle {
    config: OracleConfig,
    layout: Layout,
    obs_dim: usize,
    /// The highest the pinch carries (see [`CubeOracle::limit_carrying_height`]).
    max_carry_z: f32,
    scripts: Vec<Script>,
    actions: Vec<f32>,
}

impl CubeOracle {
    /// An oracle for the envs of `spec`, the task `scene` (one script per seed: env `i` draws its noise and
    /// sub-goals from `seeds[i]`). Errors if the task's observation lacks what the script reads.
    pub fn new(
        scene: &TaskScene,
        spec: &EnvSpec,
        config: OracleConfig,
        seeds: &[u64],
    ) -> Result<Self, TaskError> {
        // The layout also checks that the actions are the gantry's, ACTION_DIM of them.
        let layout = Layout::find(scene, spec)?;
        let mut oracle = Self {
            config,
            layout,
            obs_dim: spec.obs_dim,
            max_carry_z: f32::INFINITY,
            scripts: Vec::with_capacity(seeds.len()),
            actions: vec![0.0; seeds.len() * ACTION_DIM],
        };
        for &seed in seeds {
            oracle.scripts.push(Script {
                phase: Phase::Approach,
                steps: 0,
                cube: None,
                subgoal: [0.0, 0.0, 0.02],
                carry_z: CARRY_Z,
                noise: [0.0; ACTION_DIM],
                placements: 0,
                drops: 0,
                last_cubes: Vec::new(),
                still: Vec::new(),
                settled: false,
                rng: ChaCha8Rng::seed_from_u64(seed),
            });
        }
        for i in 0..seeds.len() {
            oracle.episode_started(i);
        }
        Ok(oracle)
    }

    /// Keeps the carrying height at or below `z`, the highest the pinch reaches (from the scene's joint limits).
    pub fn limit_carrying_height(&mut self, z: f32) {
        self.max_carry_z = z;
    }

    /// Number of envs it drives.
    pub fn num_envs(&self) -> usize {
        self.scripts.len()
    }

    /// Env `i`'s current script phase, for diagnostics (`"approach"`, `"grasp"`, ...).
    pub fn phase(&self, i: usize) -> &'static str {
        match self.scripts[i].phase {
            Phase::Settle => "settle",
            Phase::Approach => "approach",
            Phase::Descend => "descend",
            Phase::Grasp => "grasp",
            Phase::Lift => "lift",
            Phase::Carry => "carry",
            Phase::Lower => "lower",
            Phase::Release => "release",
            Phase::Retreat => "retreat",
            Phase::Done => "done",
        }
    }

    /// Cubes env `i`'s script has put down so far (completed pick-and-place sub-tasks).
    pub fn placements(&self, i: usize) -> u32 {
        self.scripts[i].placements
    }

    /// Grasps env `i`'s script has lost while holding the cube so far.
    pub fn drops(&self, i: usize) -> u32 {
        self.scripts[i].drops
    }

    /// Restarts env `i`'s script (call when its episode restarts); its random stream continues.
    pub fn episode_started(&mut self, i: usize) {
        let s = &mut self.scripts[i];
        s.phase = Phase::Approach;
        s.steps = 0;
        s.noise = [0.0; ACTION_DIM];
        s.cube = None;
        s.last_cubes.clear();
        s.settled = false;
    }

    /// Restarts the scripts of every env whose episode ended at the step `out` reports.
    pub fn episodes_ended(&mut self, out: &StepOutput) {
        for i in out.ended_envs() {
            self.episode_started(i);
        }
    }

    /// Actions `[N * 5]` (dx, dy, dz, dyaw, gripper per env) for observations `[N * obs_dim]`.
    pub fn act(&mut self, obs: &[f32]) -> &[f32] {
        for i in 0..self.scripts.len() {
            let o = &obs[i * self.obs_dim..(i + 1) * self.obs_dim];
            let mut a = self.script_action(i, o);
            let s = &mut self.scripts[i];
            perturb(&self.config, &mut s.noise, &mut s.rng, &mut a);
            self.actions[i * ACTION_DIM..(i + 1) * ACTION_DIM].copy_from_slice(&a);
        }
        &self.actions
    }

    /// The noise-free action of env `i`'s script for its observation `o`, advancing its phase.
    fn script_action(&mut self, i: usize, o: &[f32]) -> [f32; ACTION_DIM] {
        let layout = &self.layout;
        let cubes = layout.cube_positions(o);
        let s = &mut self.scripts[i];
        if s.cube.is_none() {
            // Plan from where the cubes rest, not from where a falling cube is on its way down.
            if let Some(aim) = s.settle(layout, o, &cubes) {
                return aim.action(
                    vec3(o, layout.ee),
                    o[layout.ee_yaw].atan2(o[layout.ee_yaw + 1]),
                );
            }
            s.choose_subtask(layout, &self.config, self.max_carry_z, o, &cubes);
        }
        let k = s.cube.unwrap_or(0);
        let goal = if self.config.mode == OracleMode::Play {
            s.subgoal
        } else {
            vec3(o, layout.goals[k])
        };
        // Solve: a cube back within its goal before it is lifted (knocked out, it settled back in) is left be, the
        // hand raised from it as from one placed; lifting it would lose the success it gives.
        if self.config.mode == OracleMode::Solve
            && s.cube.is_some()
            && matches!(s.phase, Phase::Approach | Phase::Descend | Phase::Grasp)
            && distance(cubes[k], goal) <= layout.solved_within[k]
        {
            s.enter(Phase::Retreat);
        }
        let sight = Sight::new(layout, o, &cubes, k, goal);
        s.steps += 1;
        if s.steps > PHASE_TIMEOUT_STEPS && s.phase != Phase::Done {
            s.enter(Phase::Approach);
        }
        let solve = self.config.mode == OracleMode::Solve;
        s.aim(&sight, solve).action(sight.ee, sight.ee_yaw)
    }
}

impl Script {
    /// Starts `phase` (its step count from 0).
    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.steps = 0;
    }

    /// Notes how far each cube (at `cubes`) moved since the previous step.
    fn watch(&mut self, cubes: &[[f32; 3]]) {
        if self.last_cubes.len() == cubes.len() {
            for (k, (now, before)) in cubes.iter().zip(&self.last_cubes).enumerate() {
                let moved = (0..3)
                    .map(|j| (now[j] - before[j]).powi(2))
                    .sum::<f32>()
                    .sqrt();
                self.still[k] = if moved < STILL_STEP {
                    self.still[k] + 1
                } else {
                    0
                };
            }
        } else {
            // The episode's first step: nothing seen still yet.
            self.still.clear();
            self.still.resize(cubes.len(), 0);
        }
        self.last_cubes.clear();
        self.last_cubes.extend_from_slice(cubes);
    }

    /// At an episode's start, before its first sub-task is chosen: while a cube may still be falling (above its
    /// goal's height, where it rests, and not yet seen keeping still for [`SETTLED_STEPS`]), the aim that waits for
    /// it, fingers open, the pinch held still or moved out from under it ([`KEEP_CLEAR_XY`]); for at most
    /// [`PHASE_TIMEOUT_STEPS`]. `None` once every cube has come to rest, and for the rest of the episode: at once
    /// where the cubes start resting, as the built-in tasks' do, so their episodes go as they would without it.
    /// Later in the episode the phases' own checks deal with a cube that moves.
    fn settle(&mut self, layout: &Layout, o: &[f32], cubes: &[[f32; 3]]) -> Option<Aim> {
        if self.settled {
            return None;
        }
        // Watched only until settled: nothing else reads it (no sub-task is chosen before then).
        self.watch(cubes);
        let falling: Vec<[f32; 3]> = (0..cubes.len())
            .filter(|&k| {
                cubes[k][2] > o[layout.goals[k] + 2] + ABOVE_REST_Z && self.still[k] < SETTLED_STEPS
            })
            .map(|k| cubes[k])
            .collect();
        if falling.is_empty() || (self.phase == Phase::Settle && self.steps >= PHASE_TIMEOUT_STEPS)
        {
            self.settled = true;
            return None;
        }
        if self.phase != Phase::Settle {
            self.enter(Phase::Settle);
        }
        self.steps += 1;
        let ee = vec3(o, layout.ee);
        let mut target = ee;
        let above = falling
            .iter()
            .filter(|c| c[2] > ee[2])
            .map(|&c| (horizontal_distance(ee, c), c))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((d, c)) = above
            && d < KEEP_CLEAR_XY
        {
            // Straight away from the cube (any way, from right under it).
            let (ux, uy) = if d > 1e-6 {
                ((ee[0] - c[0]) / d, (ee[1] - c[1]) / d)
            } else {
                (1.0, 0.0)
            };
            target = [c[0] + ux * KEEP_CLEAR_XY, c[1] + uy * KEEP_CLEAR_XY, ee[2]];
        }
        Some(Aim {
            target,
            yaw: None,
            grip: OPEN,
        })
    }

    /// Picks the next sub-task: a random cube to a random free place (play), or the first cube off its goal (solve;
    /// none left means done), and the height to carry it at (at most `max_carry_z`). `cubes` are the cubes'
    /// positions in the observation `o`.
    fn choose_subtask(
        &mut self,
        layout: &Layout,
        config: &OracleConfig,
        max_carry_z: f32,
        o: &[f32],
        cubes: &[[f32; 3]],
    ) {
        let play = config.mode == OracleMode::Play;
        self.cube = if play {
            let k = self.rng.random_range(0..cubes.len());
            // Set down at the height the task's goal for this cube has: where the cube rests on the table.
            let rest = o[layout.goals[k] + 2];
            self.subgoal = draw_subgoal(&mut self.rng, config.play_region, rest, cubes, k);
            Some(k)
        } else {
            (0..cubes.len())
                .find(|&k| distance(cubes[k], vec3(o, layout.goals[k])) > layout.solved_within[k])
        };
        if let Some(k) = self.cube {
            let to = if play {
                self.subgoal[2]
            } else {
                o[layout.goals[k] + 2]
            };
            self.carry_z = carry_height(cubes.iter().map(|c| c[2]).chain([to])).min(max_carry_z);
        }
        self.enter(if self.cube.is_some() {
            Phase::Approach
        } else {
            Phase::Done
        });
    }

    /// This step's aim: the current phase's, after passing through every phase that `sight` shows complete.
    /// `solve`: the script solves the task, and its hand keeps clear of the cubes it placed (see [`Script::hover`]).
    fn aim(&mut self, sight: &Sight, solve: bool) -> Aim {
        loop {
            let turn = if self.phase.holds_cube() && !sight.held {
                // The grip was lost: pick the cube up again.
                self.drops += 1;
                Turn::Pass(Phase::Approach)
            } else {
                match self.phase {
                    Phase::Approach => self.approach(sight),
                    Phase::Descend => self.descend(sight),
                    Phase::Grasp => self.grasp(sight),
                    Phase::Lift => self.lift(sight),
                    Phase::Carry => self.carry(sight),
                    Phase::Lower => self.lower(sight),
                    Phase::Release => self.release(sight),
                    Phase::Retreat => self.retreat(sight, solve),
                    // Play's hand stays where it is: its data trained the demo's agent best so (a hand hovering
                    // there took the demo's seed 0 from 92 % to 39 %).
                    Phase::Done if solve => Turn::Act(self.hover(sight)),
                    Phase::Done => Turn::Act(Aim::still(sight, OPEN)),
                    Phase::Settle => Turn::Act(Aim::still(sight, OPEN)),
                }
            };
            match turn {
                Turn::Act(aim) => return aim,
                Turn::Pass(phase) => self.enter(phase),
            }
        }
    }

    /// To [`HOVER`] above the cube, fingers open and turned square to its faces; then down.
    fn approach(&self, v: &Sight) -> Turn {
        let t = [v.cube[0], v.cube[1], v.cube[2] + HOVER];
        if horizontal_distance(v.ee, t) < OVER_CUBE_XY
            && (v.ee[2] - t[2]).abs() < AT_HOVER_Z
            && (v.yaw_target - v.ee_yaw).abs() < YAW_ALIGNED
        {
            return Turn::Pass(Phase::Descend);
        }
        // Stay high while travelling so the open fingers clear the cube.
        let z = if horizontal_distance(v.ee, t) > TRAVEL_XY {
            v.ee[2].max(t[2])
        } else {
            t[2]
        };
        Turn::Act(Aim {
            target: [t[0], t[1], z],
            yaw: Some(v.yaw_target),
            grip: OPEN,
        })
    }

    /// Down onto the cube, [`GRASP_DZ`] above its centre, fingers open; back up if it is no longer below.
    fn descend(&self, v: &Sight) -> Turn {
        let t = [v.cube[0], v.cube[1], v.cube[2] + GRASP_DZ];
        if horizontal_distance(v.ee, v.cube) > DESCEND_DRIFT_XY {
            return Turn::Pass(Phase::Approach);
        }
        if (v.ee[2] - t[2]).abs() < AT_GRASP_Z && horizontal_distance(v.ee, t) < AT_GRASP_XY {
            return Turn::Pass(Phase::Grasp);
        }
        Turn::Act(Aim {
            target: t,
            yaw: Some(v.yaw_target),
            grip: OPEN,
        })
    }

    /// Closes the fingers for [`GRASP_STEPS`], the pinch kept at the grasp point.
    fn grasp(&self, v: &Sight) -> Turn {
        if self.steps > GRASP_STEPS {
            return Turn::Pass(Phase::Lift);
        }
        Turn::Act(Aim {
            target: [v.cube[0], v.cube[1], v.cube[2] + GRASP_DZ],
            yaw: None,
            grip: CLOSE,
        })
    }

    /// Straight up to the carrying height, holding the cube.
    fn lift(&self, v: &Sight) -> Turn {
        if v.ee[2] > self.carry_z - AT_CARRY_Z {
            return Turn::Pass(Phase::Carry);
        }
        Turn::Act(Aim {
            target: [v.ee[0], v.ee[1], self.carry_z],
            yaw: None,
            grip: CLOSE,
        })
    }

    /// At the carrying height until the cube is over its target.
    fn carry(&self, v: &Sight) -> Turn {
        if horizontal_distance(v.cube, v.goal) < OVER_GOAL_XY {
            return Turn::Pass(Phase::Lower);
        }
        let [x, y, _] = v.hand_moving_cube_to(v.goal);
        Turn::Act(Aim {
            target: [x, y, self.carry_z],
            yaw: None,
            grip: CLOSE,
        })
    }

    /// Down, aiming the cube [`SET_DOWN_DZ`] above its target, until it is at the target's height.
    fn lower(&self, v: &Sight) -> Turn {
        if (v.cube[2] - v.goal[2]).abs() < SET_DOWN_Z {
            return Turn::Pass(Phase::Release);
        }
        let [x, y, z] = v.hand_moving_cube_to(v.goal);
        Turn::Act(Aim {
            target: [x, y, z + SET_DOWN_DZ],
            yaw: None,
            grip: CLOSE,
        })
    }

    /// Opens the fingers for [`RELEASE_STEPS`], the pinch held still; the cube is then placed.
    fn release(&mut self, v: &Sight) -> Turn {
        if self.steps > RELEASE_STEPS {
            self.placements += 1;
            return Turn::Pass(Phase::Retreat);
        }
        Turn::Act(Aim::still(v, OPEN))
    }

    /// Done: fingers open, the pinch held at the carrying height, over where it is. Holding only where it is would
    /// let the action noise walk it about, down among the cubes it placed, to knock them off their targets.
    fn hover(&self, v: &Sight) -> Aim {
        Aim {
            target: [v.ee[0], v.ee[1], self.carry_z],
            yaw: None,
            grip: OPEN,
        }
    }

    /// Back up to the carrying height, fingers open (solving: centred over the cube just let go); once there, the
    /// sub-task is done. Rising from wherever the pinch is would let the action noise walk the open fingers into the
    /// cube's sides and drag it off its target.
    fn retreat(&mut self, v: &Sight, solve: bool) -> Turn {
        if v.ee[2] > self.carry_z - AT_CARRY_Z {
            // The next step chooses the next sub-task.
            self.cube = None;
            self.enter(Phase::Done);
        }
        // Play rises where it is, as its data always did (see [`Script::aim`]).
        let over = if solve { v.cube } else { v.ee };
        Turn::Act(Aim {
            target: [over[0], over[1], self.carry_z],
            yaw: None,
            grip: OPEN,
        })
    }
}

/// What one env's script sees at a step: the pinch, and the cube it is moving with where that cube goes.
struct Sight {
    /// The pinch's position and yaw.
    ee: [f32; 3],
    ee_yaw: f32,
    /// The cube's position.
    cube: [f32; 3],
    /// Where the cube goes: the task's goal (solve) or the script's own sub-goal (play).
    goal: [f32; 3],
    /// The yaw that aligns the fingers with the cube's faces (a cube repeats every quarter turn), nearest to the
    /// pinch's yaw and inside the joint's reach.
    yaw_target: f32,
    /// Whether the cube is between the fingers ([`HELD_XY`], [`HELD_Z`]).
    held: bool,
}

impl Sight {
    /// What observation `o` shows of cube `k` (of the cubes at `cubes`), which goes to `goal`.
    fn new(layout: &Layout, o: &[f32], cubes: &[[f32; 3]], k: usize, goal: [f32; 3]) -> Self {
        let ee = vec3(o, layout.ee);
        let ee_yaw = o[layout.ee_yaw].atan2(o[layout.ee_yaw + 1]);
        let cube = cubes[k];
        let yaw_at = layout.cubes[k].1;
        let cube_yaw = o[yaw_at].atan2(o[yaw_at + 1]);
        let held = horizontal_distance(cube, ee) < HELD_XY && (cube[2] - ee[2]).abs() < HELD_Z;
        let mut yaw_target = ee_yaw + wrap(cube_yaw - ee_yaw, FRAC_PI_2);
        if yaw_target > YAW_LIMIT {
            yaw_target -= FRAC_PI_2;
        } else if yaw_target < -YAW_LIMIT {
            yaw_target += FRAC_PI_2;
        }
        Self {
            ee,
            ee_yaw,
            cube,
            goal,
            yaw_target,
            held,
        }
    }

    /// Where the pinch goes so that the cube it holds (not the pinch) ends at `p`.
    fn hand_moving_cube_to(&self, p: [f32; 3]) -> [f32; 3] {
        std::array::from_fn(|k| self.ee[k] + p[k] - self.cube[k])
    }
}

/// Where a phase sends the hand this step.
struct Aim {
    /// The pinch's target position.
    target: [f32; 3],
    /// Its target yaw; `None` leaves the yaw as it is.
    yaw: Option<f32>,
    /// The gripper action ([`OPEN`] or [`CLOSE`]).
    grip: f32,
}

impl Aim {
    /// The pinch kept where `sight` shows it, the gripper at `grip`.
    fn still(sight: &Sight, grip: f32) -> Self {
        Self {
            target: sight.ee,
            yaw: None,
            grip,
        }
    }

    /// The noise-free action toward this aim from the pinch at `ee`, turned to `ee_yaw`: each gap over its action's
    /// scale.
    fn action(&self, ee: [f32; 3], ee_yaw: f32) -> [f32; ACTION_DIM] {
        let mv = |k: usize| (self.target[k] - ee[k]) / MOVE_SCALE;
        let dyaw = self.yaw.map_or(0.0, |y| (y - ee_yaw) / YAW_SCALE);
        [mv(0), mv(1), mv(2), dyaw, self.grip]
    }
}

/// What a phase makes of a step: an aim to act on, or another phase to pass to, which sees the same observation.
enum Turn {
    Act(Aim),
    Pass(Phase),
}

/// How near its goal's target (of `tolerance`) a cube counts as placed when solving: within the tolerance less
/// [`SOLVED_MARGIN`] (for rounding: a cube at rest on the table creeps less than a micrometre in 150 steps), so the
/// script never picks up a cube that already meets its goal, losing the success it had, as it did with a fixed
/// 2 cm (half the built-ins' tolerance). At least half the tolerance, should the tolerance be tiny.
fn solved_within(tolerance: f32) -> f32 {
    (tolerance - SOLVED_MARGIN).max(tolerance / 2.0)
}

/// The distance between `a` and `b`.
fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f32>().sqrt()
}

/// The distance between `a` and `b` in the horizontal plane.
fn horizontal_distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// The three observation values from index `k` on (a position).
fn vec3(o: &[f32], k: usize) -> [f32; 3] {
    [o[k], o[k + 1], o[k + 2]]
}

/// The pinch's height while carrying over cubes and targets whose centres are at heights `zs`: CARRY_Z, or
/// CARRY_CLEARANCE above the highest.
fn carry_height(zs: impl IntoIterator<Item = f32>) -> f32 {
    zs.into_iter()
        .map(|z| z + CARRY_CLEARANCE)
        .fold(CARRY_Z, f32::max)
}

/// The sensor, as a scene file writes it, that gives the observation value `column` (`pinch.position.x`).
fn sensor_of(column: &str) -> String {
    if let Some(frame) = columns::frame_of_position_x(column) {
        format!("a `Position(frame: \"{frame}\")` sensor")
    } else if let Some(body) = columns::body_of_yaw_sin(column) {
        format!("a `YawSinCos(body: \"{body}\")` sensor")
    } else {
        format!("`{column}`")
    }
}

/// `n thing` or `n things` (the CLI's messages count with it too).
pub fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

/// A random place on the table (at height `z`) for cube `k`, clear of the other cubes (bounded redraws).
fn draw_subgoal(
    rng: &mut ChaCha8Rng,
    r: [f32; 4],
    z: f32,
    cubes: &[[f32; 3]],
    k: usize,
) -> [f32; 3] {
    let mut goal = [0.0, 0.0, z];
    for _ in 0..16 {
        goal[0] = r[0] + (r[1] - r[0]) * rng.random::<f32>();
        goal[1] = r[2] + (r[3] - r[2]) * rng.random::<f32>();
        let clear = cubes.iter().enumerate().all(|(j, c)| {
            j == k || ((c[0] - goal[0]).powi(2) + (c[1] - goal[1]).powi(2)).sqrt() > CLEARANCE
        });
        if clear {
            break;
        }
    }
    goal
}

#[cfg(test)]
mod tests {
    use super::*;
    use qamlab_sim::TaskScene;

    /// What the cube script says it needs to drive built-in `task` with `edits` made (each `from` replaced by `to`,
    /// once).
    fn missing(task: &str, edits: &[(&str, &str)]) -> String {
        let (_, text) = crate::BUILTIN_TASKS
            .iter()
            .find(|(n, _)| *n == task)
            .unwrap();
        let mut text = text.to_string();
        for (from, to) in edits {
            let edited = text.replacen(from, to, 1);
            assert_ne!(edited, text, "`{from}` is in {task}");
            text = edited;
        }
        let scene = TaskScene::from_ron(&text, "edited").unwrap();
        match Layout::find(&scene, &EnvSpec::of(&scene)) {
            Err(TaskError::NoOracle { missing, .. }) => missing,
            other => panic!("{task} edited as {edits:?}: {other:?}"),
        }
    }

    #[test]
    fn the_layout_names_the_observation_it_lacks() {
        assert_eq!(
            missing("cube-single", &[("YawSinCos(body: \"palm\"),", "")]),
            "a `YawSinCos(body: \"palm\")` sensor in the `ObservationSpace`"
        );
        assert_eq!(
            missing("cube-single", &[("GoalPosition(goal: \"cube_goal\"),", "")]),
            "every goal observed with `GoalPosition` (goal `cube_goal` is not)"
        );
    }

    #[test]
    fn counts_of_cubes_and_goals_that_differ_are_explained() {
        let one_per_goal = "one cube per goal, each cube observed with `Position(frame: <cube>)` and \
                            `YawSinCos(body: <cube>)` and each goal with `GoalPosition(goal: <goal>)`";
        assert_eq!(
            missing("cube-single", &[("YawSinCos(body: \"cube\"),", "")]),
            format!(
                "{one_per_goal} (found 0 cubes, 1 goal; goal `cube_goal`'s body `cube` lacks a \
                 `YawSinCos(body: \"cube\")` sensor)"
            )
        );
        // The palm, observed with a position and a yaw, looks like a cube.
        let palm = (
            "GoalPosition(goal: \"cube_goal\"),",
            "GoalPosition(goal: \"cube_goal\"), Position(frame: \"palm\"),",
        );
        assert_eq!(
            missing("cube-single", &[palm]),
            format!(
                "{one_per_goal} (found 2 cubes, 1 goal; `palm` is observed like a cube (position and yaw) but no \
                 observed goal is on it)"
            )
        );
    }

    #[test]
    fn each_cube_needs_one_goal_on_it() {
        assert_eq!(
            missing(
                "cube-double",
                &[(
                    "frame: \"cube_b\", target: (-0.1",
                    "frame: \"cube_a\", target: (-0.1"
                )]
            ),
            "one goal per cube (cube `cube_a` has `goal_a`, `goal_b`: it is placed at one target)"
        );
        assert_eq!(
            missing(
                "cube-double",
                &[(
                    "frame: \"cube_a\", target: (0.1",
                    "frame: \"cube_b\", target: (0.1"
                )]
            ),
            "a goal on cube `cube_a` (it has none)"
        );
        assert_eq!(
            missing(
                "cube-double",
                &[
                    ("YawSinCos(body: \"cube_b\"),", ""),
                    (
                        "GoalPosition(goal: \"goal_b\"),",
                        "GoalPosition(goal: \"goal_b\"), Position(frame: \"palm\"),"
                    ),
                ]
            ),
            "each observed goal on a cube observed with position and yaw (goal `goal_b` is on `cube_b`)"
        );
    }

    #[test]
    fn the_actions_must_be_the_gantrys() {
        assert_eq!(
            missing("cube-single", &[("(name: \"dx\",", "(name: \"ex\",")]),
            "the actions dx, dy, dz, dyaw, gripper, in that order"
        );
        assert_eq!(
            missing(
                "cube-single",
                &[("PositionDelta(scale: 0.05)", "PositionDelta(scale: 0.04)")]
            ),
            format!(
                "action `dx` to be {}, as the built-in gantry's (it is {})",
                Control::PositionDelta { scale: MOVE_SCALE },
                Control::PositionDelta { scale: 0.04 }
            )
        );
        assert_eq!(
            missing(
                "cube-single",
                &[(
                    "PositionAbsolute(at_min: 0.0, at_max: 0.044)",
                    "Velocity(scale: 0.1)"
                )]
            ),
            format!(
                "action `gripper` to be PositionAbsolute (-1 open, +1 closed), as the built-in gantry's (it is {})",
                Control::Velocity { scale: 0.1 }
            )
        );
        assert_eq!(
            missing(
                "cube-single",
                &[(
                    "range: (min: -1.0, max: 1.0)",
                    "range: (min: -0.5, max: 1.0)"
                )]
            ),
            "action `dx` to range over [-1, 1] (it ranges over [-0.5, 1])"
        );
    }
}
