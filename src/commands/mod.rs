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

/// A parser of a count from 1 to `max`: a flag's sane range (see `qamlab_headless::limits`), past which what
/// the count multiplies into or allocates would not work.
pub(crate) fn count_up_to<T>(
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr
        + Default
        + PartialEq
        + PartialOrd
        + std::fmt::Display
        + Copy
        + Send
        + Sync
        + 'static,
    T::Err: std::fmt::Display,
{
    move |s| {
        let n = at_least_one::<T>(s)?;
        if n > max {
            return Err(format!("must be from 1 to {max}"));
        }
        Ok(n)
    }
}

/// A parser of a count from 0 to `max` (see [`count_up_to`]).
pub(crate) fn at_most<T>(
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    move |s| {
        let n = s.parse::<T>().map_err(|e| e.to_string())?;
        if n > max {
            return Err(format!("must be at most {max}"));
        }
        Ok(n)
    }
}

/// The parser of a path flag: not empty (`--dataset ""` would name no file), and UTF-8, since runs and datasets
/// record their paths as text (TOML, JSON) and a run would otherwise fail only at its end. Its error names the flag.
pub(crate) fn path_arg() -> impl clap::builder::TypedValueParser<Value = std::path::PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|s| {
        if s.is_empty() {
            return Err("expected the path of a file, got an empty one".to_string());
        }
        match s.into_string() {
            Ok(text) => Ok(std::path::PathBuf::from(text)),
            Err(_) => Err(
                "the path is not valid UTF-8; qamlab records paths as text (TOML, JSON): rename it"
                    .to_string(),
            ),
        }
    })
}

/// The parser of a task argument: a built-in task's name or a scene file's path, as UTF-8 text (a run records it
/// in its config.toml), not empty. Its error names the flag.
pub(crate) fn task_arg() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|s| {
        if s.is_empty() {
            return Err(
                "expected a built-in task's name or a scene file's path, got an empty one".to_string(),
            );
        }
        s.into_string().map_err(|_| {
            "the path is not valid UTF-8; qamlab records a task's path as text (TOML, JSON): rename it"
                .to_string()
        })
    })
}

/// `n thing` or `n things`.
pub(crate) fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}
