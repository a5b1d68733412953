//! The crate's one error type: every message names the field, array or tensor at fault.

use thiserror::Error;

/// Everything that can go wrong while building, training, sampling, saving or loading an agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// A configuration value is out of range or inconsistent with another one.
    #[error("invalid agent config: {field}: {reason}")]
    Config {
        /// The offending key (as spelled in the TOML file).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TOML text could not be parsed (unknown keys are reported here, by name).
    #[error("cannot parse agent config: {0}")]
    ConfigParse(String),
    /// An input array or tensor has the wrong shape.
    #[error("{name}: expected shape {expected}, got {actual}")]
    Shape {
        /// The array or tensor.
        name: String,
        /// The shape it should have.
        expected: String,
        /// The shape it has.
        actual: String,
    },
    /// A loss became NaN or infinite; the update that produced it was not applied.
    #[error("non-finite loss: {name} = {value}")]
    NonFinite {
        /// The loss (metric) name, e.g. `critic_loss`.
        name: String,
        /// Its value.
        value: f64,
    },
    /// The replay buffer cannot serve the request (e.g. fewer transitions than the horizon).
    #[error("transition store: {0}")]
    Data(String),
    /// A random-draw source failed (a replayed draw has the wrong label/shape or ran out).
    #[error("noise source: {0}")]
    Noise(String),
    /// A checkpoint is unreadable, truncated or does not match the agent being restored.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// File being read or written.
        path: String,
        /// What went wrong (names the tensor and both shapes on a mismatch).
        reason: String,
    },
    /// A parameter map given to [`crate::Agent::set_parameters`] does not match the agent.
    #[error("parameter {name}: {reason}")]
    Parameter {
        /// Parameter name, e.g. `critic/value_net/Dense_0/kernel`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// CUDA graph capture or replay failed (the agent falls back to eager work).
    #[error("CUDA graph: {0}")]
    CudaGraph(String),
    /// The CUDA matmul precision could not be set or read.
    #[error("matmul precision: {0}")]
    Precision(String),
    /// The helper thread of a split update stopped without its share of the work.
    #[error("update helper thread: {0}")]
    Helper(String),
    /// An error raised by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// File-system error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// Builds a [`AgentError::Shape`] for `name` from the expected and actual shapes.
pub(crate) fn shape_error(name: &str, expected: &[i64], actual: &[i64]) -> AgentError {
    AgentError::Shape {
        name: name.to_string(),
        expected: format!("{expected:?}"),
        actual: format!("{actual:?}"),
    }
}

/// Checks that `t` has exactly `expected` shape.
pub(crate) fn check_shape(name: &str, t: &tch::Tensor, expected: &[i64]) -> Result<()> {
    let actual = t.size();
    if actual != expected {
        return Err(shape_error(name, expected, &actual));
    }
    Ok(())
}
