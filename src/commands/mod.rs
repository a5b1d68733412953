//! One module per `qamlab` subcommand: argument structs and what they run.

pub mod bench;
pub mod collect;
pub mod dataset;
pub mod demo;
pub mod eval;
pub mod interrupt;
pub mod plot;
pub mod task;
pub mod train;

/// Parses a count that must be at least 1.
pub(crate) fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + Default + PartialEq,
    T::Err: std::fmt::Display,
{
    match s.parse::<T>() {
        Ok(n) if n == T::default() => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `n thing` or `n things`.
pub(crate) fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}
