//! qamlab's built-in tasks: the registry of task scenes and their scripted data-collection policies (oracles).
//!
//! * [`registry`]: [`load_task`] by built-in name or scene path.
//! * [`bench`](mod@bench): [`bench_sim`], simulation throughput with random actions and with the oracle.
//! * [`oracle`]: [`CubeOracle`], the batched pick-and-place script for the cube tasks, with OGBench-style noise
//!   and "play" sub-goals.

#![warn(missing_docs)]

pub mod bench;
pub mod oracle;
pub mod registry;

/// The commonly used items.
pub mod prelude {
    pub use crate::bench::{SimBenchRow, bench_sim};
    pub use crate::oracle::{CubeOracle, OracleConfig, OracleMode};
    pub use crate::registry::{BUILTIN_TASKS, Task, TaskError, builtin_names, load_task};
}

pub use bench::{SimBenchRow, bench_sim, process_cpu_seconds};
pub use oracle::{CubeOracle, OracleConfig, OracleMode};
pub use registry::{BUILTIN_TASKS, Task, TaskError, builtin_names, load_task};
