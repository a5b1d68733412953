//! qamlab's built-in tasks: the registry of task scenes and their scripted data-collection policies (oracles).
//!
//! * [`registry`]: [`load_task`] by built-in name or scene path.
//! * [`bench`](mod@bench): [`bench_sim`], simulation throughput with random actions and with the oracle.
//! * [`oracle`]: [`Oracle`], the scripted data-collection policy a task's robot takes, with OGBench-style noise
//!   and "play" sub-goals: [`CubeOracle`] ([`cube`]), the gantry's pick-and-place for the cube tasks, or
//!   [`WalkerOracle`] ([`walker`]), a legged robot's gait steered around the walls of a [`maze`].
//! * [`warnings`]: [`scene_warnings`], what a scene does that runs but is most likely a mistake.

#![warn(missing_docs)]

pub mod bench;
pub mod cube;
pub mod maze;
pub mod oracle;
pub mod registry;
pub mod walker;
pub mod warnings;

/// The commonly used items.
pub mod prelude {
    pub use crate::bench::{SimBenchRow, bench_sim};
    pub use crate::cube::CubeOracle;
    pub use crate::oracle::{Oracle, OracleConfig, OracleMode};
    pub use crate::registry::{BUILTIN_TASKS, Task, TaskError, builtin_names, load_task};
    pub use crate::walker::WalkerOracle;
}

pub use bench::{SimBenchRow, bench_sim};
pub use cube::{CubeOracle, count};
pub use oracle::{Oracle, OracleConfig, OracleMode, perturb};
pub use registry::{BUILTIN_TASKS, Task, TaskError, builtin_names, load_task};
pub use walker::WalkerOracle;
pub use warnings::scene_warnings;
