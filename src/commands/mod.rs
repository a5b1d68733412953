//! One module per `qamlab` subcommand: argument structs and what they run.

pub mod bench;
pub mod collect;
pub mod demo;
pub mod eval;
pub mod plot;
pub mod task;
pub mod train;

/// Parses a count that must be at least 1.
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
