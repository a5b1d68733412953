//! The envs of the window and the clock that steps them: real time (20 Hz control for the built-in tasks) times
//! a speed factor, or as fast as the frame budget allows; pause and single steps.

use std::time::{Duration, Instant};

use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;
use qamlab_sim::systems::SimTask;
use qamlab_sim::{EnvOptions, TaskScene};

use super::ViewTask;
use super::panel::ViewCommand;

/// The schedule of one control step: the [`SimPlugin`](qamlab_sim::SimPlugin)'s phases with the policy before
/// them and the episode bookkeeping after. The window runs it as many times per frame as the clock asks.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControlStep;

/// Simulation speed: a multiple of real time, or as fast as possible.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Speed {
    /// Real time.
    #[default]
    #[value(name = "1x")]
    X1,
    /// Twice real time.
    #[value(name = "2x")]
    X2,
    /// Four times real time.
    #[value(name = "4x")]
    X4,
    /// Eight times real time.
    #[value(name = "8x")]
    X8,
    /// Sixteen times real time.
    #[value(name = "16x")]
    X16,
    /// As many steps as fit in the frame budget.
    #[value(name = "max")]
    Max,
}

impl Speed {
    /// Every speed, slowest first (the panel's buttons and the keys 1..6).
    pub const ALL: [Speed; 6] = [
        Speed::X1,
        Speed::X2,
        Speed::X4,
        Speed::X8,
        Speed::X16,
        Speed::Max,
    ];

    /// Label shown in the panel.
    pub fn label(self) -> &'static str {
        match self {
            Speed::X1 => "1x",
            Speed::X2 => "2x",
            Speed::X4 => "4x",
            Speed::X8 => "8x",
            Speed::X16 => "16x",
            Speed::Max => "max",
        }
    }

    /// Real-time multiple (`None` for as fast as possible).
    pub fn factor(self) -> Option<f32> {
        match self {
            Speed::X1 => Some(1.0),
            Speed::X2 => Some(2.0),
            Speed::X4 => Some(4.0),
            Speed::X8 => Some(8.0),
            Speed::X16 => Some(16.0),
            Speed::Max => None,
        }
    }
}

/// Wall time a frame may spend stepping: the window keeps drawing and answering input at any speed.
const FRAME_BUDGET: Duration = Duration::from_millis(30);
/// The most control steps a frame runs (what a stall or `max` speed may owe).
const MAX_STEPS_PER_FRAME: u32 = 64;

/// Pause, single steps, speed and step counters.
#[derive(Resource, Debug)]
pub struct SimClock {
    /// No step runs while paused (except requested single steps).
    pub paused: bool,
    /// Single steps requested while paused.
    pub single_steps: u32,
    /// Current speed.
    pub speed: Speed,
    /// Simulated seconds owed to the envs.
    owed: f32,
    /// Control steps run since the window opened.
    pub steps: u64,
    /// The rate of steps, measured since the clock last paused or changed speed.
    rate: StepRate,
    /// Whether every frame runs exactly the steps due, however long they take (a screenshot's frames, on a fixed
    /// clock, so that the same command shows the same step); the window otherwise keeps its frame budget.
    pub exact: bool,
}

impl SimClock {
    fn new(speed: Speed) -> Self {
        Self {
            paused: false,
            single_steps: 0,
            speed,
            owed: 0.0,
            steps: 0,
            rate: StepRate::default(),
            exact: false,
        }
    }

    /// The rate of steps the panel shows for control steps `control_dt` long: none while paused; the speed's own
    /// rate until a whole [`RATE_WINDOW`] has been measured at it (none yet at `max`, which has no rate of its own),
    /// then the rate of the last window.
    pub fn steps_per_second(&self, control_dt: f32) -> StepsPerSecond {
        if self.paused {
            return StepsPerSecond::Paused;
        }
        match (self.rate.measured, self.speed.factor()) {
            (Some(rate), _) => StepsPerSecond::Measured(rate),
            (None, Some(factor)) if control_dt > 0.0 => {
                StepsPerSecond::Nominal(factor / control_dt)
            }
            (None, _) => StepsPerSecond::Measuring,
        }
    }

    /// Counts a frame's `ran` steps over its `frame_seconds` into the rate; a paused clock starts it afresh (its
    /// single steps are no rate).
    fn measure(&mut self, ran: u32, frame_seconds: f32) {
        if self.paused {
            self.rate = StepRate::default();
        } else {
            self.rate.record(ran, frame_seconds);
        }
    }

    /// Control steps due this frame (`None`: as many as fit in the frame budget).
    fn due(&mut self, frame_seconds: f32, control_dt: f32) -> Option<u32> {
        if self.paused {
            self.owed = 0.0;
            return Some(std::mem::take(&mut self.single_steps));
        }
        let factor = self.speed.factor()?;
        self.owed += frame_seconds * factor;
        let due = (self.owed / control_dt)
            .floor()
            .min(MAX_STEPS_PER_FRAME as f32);
        self.owed -= due * control_dt;
        // After a stall, drop the backlog rather than racing to catch up.
        self.owed = self.owed.min(control_dt);
        Some(due as u32)
    }
}

/// Wall seconds of steps each measured rate averages.
const RATE_WINDOW: f32 = 1.0;

/// Steps counted over wall time, a [`RATE_WINDOW`] at a time.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct StepRate {
    /// Steps of the window being measured.
    steps: u32,
    /// Its wall seconds so far.
    seconds: f32,
    /// The rate of the last whole window, if one has passed.
    measured: Option<f32>,
}

impl StepRate {
    /// Counts a frame's `steps` over its `seconds`.
    fn record(&mut self, steps: u32, seconds: f32) {
        self.steps += steps;
        self.seconds += seconds;
        if self.seconds >= RATE_WINDOW {
            self.measured = Some(self.steps as f32 / self.seconds);
            (self.steps, self.seconds) = (0, 0.0);
        }
    }
}

/// The rate of steps, as the panel says it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepsPerSecond {
    /// The clock is paused.
    Paused,
    /// The speed's own rate, before a whole window has been measured.
    Nominal(f32),
    /// At `max`, before a whole window has been measured.
    Measuring,
    /// Measured over the last window.
    Measured(f32),
}

/// Ids of the env entities, by env index.
#[derive(Resource, Debug, Default)]
pub struct EnvEntities(pub Vec<Entity>);

/// Bumped each time the envs are (re)built: from a reset, or a reloaded scene. Other plugins rebuild what
/// depends on the envs when it changes.
#[derive(Resource, Debug, Default)]
pub struct EnvGeneration(pub u64);

/// A rebuild of the envs asked for by the panel or the hot reload, done at the next frame.
#[derive(Resource, Debug, Default)]
pub struct PendingRebuild(pub bool);

/// How many envs, and the seed of their next rebuild.
#[derive(Resource, Debug)]
pub struct EnvLayout {
    /// Number of envs.
    pub num_envs: usize,
    /// Env `i` of the next rebuild starts from `next_seed + i`.
    pub next_seed: u64,
    /// The seeds the envs of the last rebuild started from (env `i` from `seeds[i]`).
    pub seeds: Vec<u64>,
    /// Episodes end (and the env resets) as soon as they succeed, as in evaluation. The video recorder turns it
    /// off so that the success can be seen before it rebuilds the envs itself.
    pub end_on_success: bool,
}

/// Spawns the envs and steps them on the clock.
pub struct SteppingPlugin {
    /// Number of envs.
    pub num_envs: usize,
    /// Seed of the first episode of env 0.
    pub seed: u64,
    /// Speed at start.
    pub speed: Speed,
    /// See [`EnvLayout::end_on_success`].
    pub end_on_success: bool,
}

impl Plugin for SteppingPlugin {
    fn build(&self, app: &mut App) {
        app.init_schedule(ControlStep)
            .insert_resource(SimClock::new(self.speed))
            .insert_resource(EnvLayout {
                num_envs: self.num_envs,
                next_seed: self.seed,
                seeds: Vec::new(),
                end_on_success: self.end_on_success,
            })
            .init_resource::<EnvEntities>()
            .init_resource::<EnvGeneration>()
            .insert_resource(PendingRebuild(true))
            .add_message::<ViewCommand>()
            .configure_sets(
                Update,
                (
                    SteppingSet::Rebuild,
                    SteppingSet::Prepare,
                    SteppingSet::Step,
                )
                    .chain(),
            )
            .add_systems(
                Update,
                (clock_commands, reset_command, rebuild_envs)
                    .chain()
                    .in_set(SteppingSet::Rebuild),
            )
            .add_systems(Update, run_control_steps.in_set(SteppingSet::Step));
    }
}

/// The window's stepping phases in `Update`, in order. Render sync and UI order themselves after `Step`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SteppingSet {
    /// Commands applied; the envs rebuilt if asked.
    Rebuild,
    /// Whatever depends on the envs adapts to a rebuild (the policies) before any step runs.
    Prepare,
    /// The control steps due this frame.
    Step,
}

/// Applies the panel's and keyboard's pause, step and speed commands.
fn clock_commands(mut commands: MessageReader<ViewCommand>, mut clock: ResMut<SimClock>) {
    for command in commands.read() {
        match *command {
            ViewCommand::TogglePause => clock.paused = !clock.paused,
            ViewCommand::Step => {
                clock.paused = true;
                clock.single_steps += 1;
            }
            // A rate measured at the old speed says nothing of the new one.
            ViewCommand::SetSpeed(speed) if clock.speed != speed => {
                clock.speed = speed;
                clock.rate = StepRate::default();
            }
            _ => {}
        }
    }
}

/// Turns the reset command into a rebuild with fresh seeds.
fn reset_command(mut commands: MessageReader<ViewCommand>, mut pending: ResMut<PendingRebuild>) {
    if commands.read().any(|c| *c == ViewCommand::Reset) {
        pending.0 = true;
    }
}

/// Rebuilds the envs from the current [`ViewTask`] when asked: despawns the old ones and spawns new ones with
/// the same function the headless driver uses.
fn rebuild_envs(world: &mut World) {
    if !std::mem::take(&mut world.resource_mut::<PendingRebuild>().0) {
        return;
    }
    let scene = world.resource::<ViewTask>().scene.clone();
    let end_on_success = world.resource::<EnvLayout>().end_on_success;
    let old = std::mem::take(&mut world.resource_mut::<EnvEntities>().0);
    for entity in old {
        world.despawn(entity);
    }
    let seeds: Vec<u64> = {
        let mut layout = world.resource_mut::<EnvLayout>();
        let first = layout.next_seed;
        layout.next_seed = first.wrapping_add(layout.num_envs as u64);
        // Seeds wrap past u64::MAX like every other seed stream of the lab.
        layout.seeds = (0..layout.num_envs as u64)
            .map(|i| first.wrapping_add(i))
            .collect();
        layout.seeds.clone()
    };
    match spawn(world, &scene, &seeds, end_on_success) {
        Ok(entities) => {
            world.resource_mut::<EnvEntities>().0 = entities;
            world.resource_mut::<EnvGeneration>().0 += 1;
        }
        // The scene was checked when it loaded: a failure here is a bug, not a user mistake.
        Err(err) => panic!("building the envs of a checked scene failed: {err}"),
    }
}

/// Spawns envs of `scene` (one per seed) and publishes their first observations.
fn spawn(
    world: &mut World,
    scene: &TaskScene,
    seeds: &[u64],
    end_on_success: bool,
) -> Result<Vec<Entity>, qamlab_sim::SimError> {
    // The window ends episodes on success, as evaluation does (each success starts a new attempt), after the
    // success has been on screen for a moment (its goals green); a video keeps them going to show what follows.
    let options = EnvOptions {
        terminate_on_success: end_on_success,
        episode_length: None,
        success_hold: success_hold_steps(scene),
    };
    let (_, entities) = qamlab_sim::batched::spawn_envs(world, scene, seeds, options)?;
    Ok(entities)
}

/// How long (simulated seconds) a success stays on screen before its env starts the next episode.
const SUCCESS_SHOWN_SECONDS: f32 = 0.6;

/// [`SUCCESS_SHOWN_SECONDS`] in control steps of `scene`.
pub fn success_hold_steps(scene: &TaskScene) -> u32 {
    (SUCCESS_SHOWN_SECONDS / scene.settings.control_dt).round() as u32
}

/// Runs the control steps the clock says are due, within the frame budget.
fn run_control_steps(world: &mut World) {
    let frame_seconds = world.resource::<Time>().delta_secs();
    let control_dt = world.resource::<SimTask>().spec.control_dt;
    let mut clock = world.resource_mut::<SimClock>();
    let (due, exact) = (clock.due(frame_seconds, control_dt), clock.exact);
    let start = Instant::now();
    let mut ran = 0u32;
    loop {
        let in_budget = exact || ran == 0 || start.elapsed() < FRAME_BUDGET;
        let more = match due {
            Some(n) => ran < n && in_budget,
            // As fast as possible: on an exact clock, the most a frame may owe.
            None if exact => ran < MAX_STEPS_PER_FRAME,
            None => in_budget,
        };
        if !more {
            break;
        }
        world.run_schedule(ControlStep);
        ran += 1;
    }
    let mut clock = world.resource_mut::<SimClock>();
    clock.steps += u64::from(ran);
    clock.measure(ran, frame_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_owes_one_step_per_control_period() {
        let mut clock = SimClock::new(Speed::X1);
        assert_eq!(clock.due(0.1, 0.05), Some(2));
        assert_eq!(clock.due(0.03, 0.05), Some(0));
        assert_eq!(
            clock.due(0.03, 0.05),
            Some(1),
            "time carries over between frames"
        );
        clock.speed = Speed::X4;
        assert_eq!(clock.due(0.05, 0.05), Some(4));
    }

    #[test]
    fn a_stall_is_not_caught_up() {
        let mut clock = SimClock::new(Speed::X16);
        assert_eq!(clock.due(10.0, 0.05), Some(64), "at most 64 steps a frame");
        assert_eq!(
            clock.due(0.0, 0.05),
            Some(1),
            "at most one period of backlog is kept"
        );
    }

    #[test]
    fn the_rate_of_steps_is_the_speeds_until_measured_and_none_while_paused() {
        let mut clock = SimClock::new(Speed::X1);
        // At first, the speed's own rate (not a warm-up's few steps a second).
        assert_eq!(clock.steps_per_second(0.05), StepsPerSecond::Nominal(20.0));
        // A slow machine's frames: 5 steps in each half second, 10 a second once a whole second is measured.
        clock.measure(5, 0.5);
        assert_eq!(clock.steps_per_second(0.05), StepsPerSecond::Nominal(20.0));
        clock.measure(5, 0.5);
        assert_eq!(clock.steps_per_second(0.05), StepsPerSecond::Measured(10.0));
        // Paused: said so, however long, and measured afresh once resumed.
        clock.paused = true;
        for _ in 0..100 {
            clock.measure(0, 0.1);
        }
        assert_eq!(clock.steps_per_second(0.05), StepsPerSecond::Paused);
        clock.paused = false;
        assert_eq!(clock.steps_per_second(0.05), StepsPerSecond::Nominal(20.0));
        // At max there is no rate to expect: none until measured.
        clock.speed = Speed::Max;
        assert_eq!(clock.steps_per_second(0.05), StepsPerSecond::Measuring);
        clock.measure(300, 1.0);
        assert_eq!(
            clock.steps_per_second(0.05),
            StepsPerSecond::Measured(300.0)
        );
    }

    #[test]
    fn paused_runs_only_the_single_steps_asked_for() {
        let mut clock = SimClock::new(Speed::X1);
        clock.paused = true;
        assert_eq!(clock.due(1.0, 0.05), Some(0));
        clock.single_steps = 2;
        assert_eq!(clock.due(1.0, 0.05), Some(2));
        assert_eq!(clock.due(1.0, 0.05), Some(0));
        clock.paused = false;
        clock.speed = Speed::Max;
        assert_eq!(
            clock.due(1.0, 0.05),
            None,
            "max speed fills the frame budget"
        );
    }
}
