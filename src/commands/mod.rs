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

/// Why a flag's text is no value of its type.
enum Unparsed {
    /// A whole number below 0.
    Negative,
    /// A whole number past the type's largest; the parser's own message.
    TooLarge(String),
    /// No whole number at all; the parser's own message.
    Other(String),
}

/// `s` as a whole number of type `T`, telling a negative or too large number (which `T` cannot hold) from text
/// that is no whole number. `-0` is 0.
fn parse_whole<T>(s: &str) -> Result<T, Unparsed>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let err = match s.parse::<T>() {
        Ok(n) => return Ok(n),
        Err(e) => e.to_string(),
    };
    let (negative, digits) = match s.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        // Rust's own words ("invalid digit found in string") name no cause a user would see.
        return Err(Unparsed::Other(if s.is_empty() {
            "expected a whole number, got nothing".to_string()
        } else {
            format!(
                "expected a whole number in digits, not `{s}` (no 1e5, 20k, 100_000 or fraction)"
            )
        }));
    }
    if digits.chars().all(|c| c == '0') {
        return "0".parse::<T>().map_err(|e| Unparsed::Other(e.to_string()));
    }
    Err(if negative {
        Unparsed::Negative
    } else {
        Unparsed::TooLarge(err)
    })
}

/// `s` as a whole number of at least 1 (`at_least_one`) or 0, and at most `max` where there is one, past which
/// `too_large` says what the flag takes; the one rule behind every whole-number flag's parser.
fn whole_in<T>(
    s: &str,
    at_least_one: bool,
    max: Option<T>,
    too_large: impl FnOnce() -> String,
) -> Result<T, String>
where
    T: std::str::FromStr + Default + PartialOrd,
    T::Err: std::fmt::Display,
{
    let too_small = || format!("must be at least {}", u8::from(at_least_one));
    match parse_whole::<T>(s) {
        Ok(n) if at_least_one && n == T::default() => Err(too_small()),
        Ok(n) if max.as_ref().is_some_and(|max| n > *max) => Err(too_large()),
        Ok(n) => Ok(n),
        Err(Unparsed::Negative) => Err(too_small()),
        Err(Unparsed::TooLarge(_)) if max.is_some() => Err(too_large()),
        Err(Unparsed::TooLarge(e) | Unparsed::Other(e)) => Err(e),
    }
}

/// Parses a count that must be at least 1.
pub(crate) fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + Default + PartialOrd,
    T::Err: std::fmt::Display,
{
    whole_in(s, true, None, String::new)
}

/// Parses a whole number of 0 or more.
pub(crate) fn non_negative<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + Default + PartialOrd,
    T::Err: std::fmt::Display,
{
    whole_in(s, false, None, String::new)
}

/// A parser of a count from 1 to `max`: a flag's sane range (see `qamlab_headless::limits`), past which what
/// the count multiplies into or allocates would not work.
pub(crate) fn count_up_to<T>(
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + Default + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    move |s| whole_in(s, true, Some(max), || format!("must be from 1 to {max}"))
}

/// A parser of a count from 0 to `max` (see [`count_up_to`]).
pub(crate) fn at_most<T>(
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + Default + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    move |s| whole_in(s, false, Some(max), || format!("must be at most {max}"))
}

/// The parser of every `--seed`: 0 to [`MAX_SEED`](qamlab_headless::config::MAX_SEED), the largest integer a
/// run's config.toml can record (a TOML integer is signed 64-bit), so that a run trained with it can be read back.
pub(crate) fn seed_arg(s: &str) -> Result<u64, String> {
    use qamlab_headless::config::MAX_SEED;
    whole_in(s, false, Some(MAX_SEED), || {
        format!("must be at most {MAX_SEED}, the largest integer a run's config.toml can record")
    })
}

/// The parser of a switch of `qamlab train`: `true` or `false`, or as `qamlab bench agent` spells its switches,
/// `on` or `off` (and `yes` or `no`); `--help` lists all six.
pub(crate) fn switch_arg() -> impl clap::builder::TypedValueParser<Value = bool> {
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(["true", "false", "on", "off", "yes", "no"])
        .map(|s| matches!(s.as_str(), "true" | "on" | "yes"))
}

/// A parser of a finite number from 0 to `max` that may have a fraction (a noise scale, a probability); `range`
/// says what it must be, after "must be".
pub(crate) fn number_up_to(
    max: f32,
    range: &'static str,
) -> impl Fn(&str) -> Result<f32, String> + Clone + Send + Sync + 'static {
    move |s| {
        let v = s
            .parse::<f32>()
            .map_err(|_| format!("expected a number (0.5, 1e-3), not `{s}`"))?;
        if !(v.is_finite() && (0.0..=max).contains(&v)) {
            return Err(format!("must be {range}"));
        }
        Ok(v)
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

/// `path` made absolute (not resolving links), as text: how `--json` outputs give paths.
pub(crate) fn absolute_text(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// `n thing` or `n things`: the tasks crate's, so the CLI and the cube oracle's messages count alike.
pub(crate) use qamlab_tasks::count;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_out_of_range_says_its_range_whatever_its_sign_or_size() {
        let envs = count_up_to(4096usize);
        assert_eq!(envs("16"), Ok(16));
        assert_eq!(envs("+16"), Ok(16));
        for below in [
            "0",
            "-0",
            "-1",
            "-99999999999999999999999999999999999999999",
        ] {
            assert_eq!(envs(below), Err("must be at least 1".into()), "{below}");
        }
        for above in [
            "4097",
            "18446744073709551616",
            "99999999999999999999999999999999999999999",
        ] {
            assert_eq!(envs(above), Err("must be from 1 to 4096".into()), "{above}");
        }
        let steps = at_most(1000u64);
        assert_eq!(steps("-0"), Ok(0));
        assert_eq!(steps("-5"), Err("must be at least 0".into()));
        assert_eq!(
            steps("18446744073709551616"),
            Err("must be at most 1000".into())
        );
        assert_eq!(at_least_one::<u64>("-5"), Err("must be at least 1".into()));
        assert_eq!(non_negative::<u32>("-5"), Err("must be at least 0".into()));
        // Text that is no whole number is said to be so, in the user's words rather than the parser's.
        for text in ["1.5", "ten", "-", "1e3", "20k", "100_000"] {
            assert_eq!(
                envs(text),
                Err(format!(
                    "expected a whole number in digits, not `{text}` (no 1e5, 20k, 100_000 or fraction)"
                )),
                "{text}"
            );
        }
        assert_eq!(envs(""), Err("expected a whole number, got nothing".into()));
    }

    #[test]
    fn a_seed_is_one_a_config_toml_can_record() {
        let max = qamlab_headless::config::MAX_SEED;
        assert_eq!(max, i64::MAX as u64);
        assert_eq!(seed_arg("0"), Ok(0));
        assert_eq!(seed_arg(&max.to_string()), Ok(max));
        let too_large = "must be at most 9223372036854775807, the largest integer a run's config.toml can record";
        for seed in [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
        ] {
            assert_eq!(seed_arg(seed), Err(too_large.to_string()), "{seed}");
        }
        assert_eq!(seed_arg("-1"), Err("must be at least 0".into()));
    }

    #[test]
    fn a_number_with_a_fraction_must_be_finite_and_in_range() {
        let prob = number_up_to(1.0, "from 0 to 1");
        assert_eq!(prob("0.25"), Ok(0.25));
        for bad in ["-0.1", "1.5", "NaN", "inf"] {
            assert_eq!(prob(bad), Err("must be from 0 to 1".into()), "{bad}");
        }
        let noise = number_up_to(f32::INFINITY, "a finite number >= 0");
        assert_eq!(noise("3"), Ok(3.0));
        assert_eq!(noise("inf"), Err("must be a finite number >= 0".into()));
        assert!(noise("x").is_err());
    }
}
