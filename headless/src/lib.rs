//! qamlab-headless: the loops that need no window.
//!
//! * [`collect`] — scripted-oracle data collection into OGBench-layout datasets.
//! * [`dataset`] — reading and writing those datasets.
//! * [`train`](mod@train) — offline -> online training with evaluation, metrics, checkpoints and resume.
//! * [`evaluate`] — success-rate evaluation of a policy on separate envs.
//! * [`chunks`] — open-loop execution of action chunks for a batch of envs.
//! * [`config`] — the training configuration (TOML + flags); [`phase`] — a run's two phases, offline and online.
//! * [`run_dir`] — the files a run leaves; [`plot`] — its learning curve; [`files`] — atomic writes, the checks of
//!   paths given for output, cancellation of writes on a signal.
//! * [`limits`] — the upper bounds of counts users give, and the memory check of what they allocate.
//! * [`shell`] — the commands printed for the user to run, their arguments quoted for a shell; [`console`] — the
//!   lines printed for the user, without panicking where a stream cannot take them.

#![warn(missing_docs)]

pub mod chunks;
pub mod collect;
pub mod config;
pub mod console;
pub mod dataset;
pub mod evaluate;
pub mod files;
pub mod limits;
pub mod phase;
pub mod plot;
pub mod run_dir;
pub mod shell;
pub mod train;

pub use config::{DeviceChoice, TrainConfig};
pub use train::{TrainObserver, TrainOptions, TrainSummary, train};
