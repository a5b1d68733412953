//! One module per `qamlab` subcommand: argument structs and what they run.

pub mod bench;
pub mod collect;
pub mod demo;
pub mod eval;
pub mod plot;
pub mod train;
