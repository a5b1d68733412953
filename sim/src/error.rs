//! The simulator's errors: each names where the problem is (file, entity, field; env and action index).

use thiserror::Error;

/// Everything that can go wrong loading a task or stepping envs.
#[derive(Debug, Error)]
pub enum SimError {
    /// The scene file could not be read.
    #[error("{file}: cannot read task scene: {source}")]
    Io {
        /// Scene file.
        file: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The scene file is not a valid scene (syntax, unknown component type, unknown or missing field).
    #[error("{file}:{line}:{column}: {entity}: {message}")]
    Parse {
        /// Scene file.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The entity (and component) being read there, as far as it is known.
        entity: String,
        /// What is wrong.
        message: String,
    },
    /// The scene parses but its content is inconsistent.
    #[error("{file}: {entity}: field `{field}`: {message}")]
    Invalid {
        /// Scene file.
        file: String,
        /// The entity at fault (its id and name).
        entity: String,
        /// The component field at fault, like `ObservationSpace.sensors[3].frame`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An action buffer of the wrong length.
    #[error("actions: expected {expected} values ({num_envs} envs x {action_dim} dims), got {got}")]
    ActionShape {
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
        /// Number of envs.
        num_envs: usize,
        /// Action dimension.
        action_dim: usize,
    },
    /// An action value that is NaN, infinite or outside its range.
    #[error("env {env}, action {index} (`{name}`): value {value} is not in [{min}, {max}]")]
    ActionValue {
        /// Env index.
        env: usize,
        /// Action dimension index.
        index: usize,
        /// Action dimension name.
        name: String,
        /// The offending value.
        value: f32,
        /// Range minimum.
        min: f32,
        /// Range maximum.
        max: f32,
    },
    /// An observation that left f32's range: the scene's magnitudes are past what the physics can hold.
    #[error(
        "env {env}, observation {index} (`{name}`) is {value}: the simulation left f32's range (look for \
         magnitudes in the scene that no physics can hold: positions, offsets, randomisation ranges, gains)"
    )]
    NonFiniteObservation {
        /// Env index.
        env: usize,
        /// Observation index.
        index: usize,
        /// The observation value's name (sensor block and component).
        name: String,
        /// The offending value.
        value: f32,
    },
    /// A seed list whose length is not the number of envs.
    #[error("reset: expected {expected} seeds (one per env), got {got}")]
    SeedCount {
        /// Number of envs.
        expected: usize,
        /// Given seeds.
        got: usize,
    },
    /// An episode length of zero control steps.
    #[error("an episode lasts at least one control step, got episode_length 0")]
    ZeroEpisodeLength,
    /// A batch of zero envs.
    #[error("a batched env needs at least one env")]
    NoEnvs,
    /// `step` before `reset`.
    #[error("step called before reset")]
    NotReset,
    /// A restore whose actions end the episode they are said to continue.
    #[error(
        "env {env}: its episode ended at step {step} of the {steps} actions that were to continue it: they are not \
         that episode's"
    )]
    RestoreEnded {
        /// Env index.
        env: usize,
        /// 1-based step at which the episode ended.
        step: usize,
        /// Actions given.
        steps: usize,
    },
    /// A restore given per-env lists whose count is not the number of envs, or an action list not whole actions.
    #[error("restore: {0}")]
    RestoreShape(String),
}
