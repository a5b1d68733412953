//! What the program says on stderr besides its results: warnings and errors worded as a command-line tool's
//! (`warning: …`), or, with `RUST_LOG` set, tracing's full lines (time, level, module) for whoever debugs.

use std::ffi::OsStr;
use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber: warnings and errors only, as `warning: …` lines, unless `RUST_LOG` chooses.
pub fn init() {
    let ansi = colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    );
    // A warning stderr cannot take is dropped, as the program's other lines on it are (`stderr_line!`): tracing's
    // report of the failed write is an `eprintln!`, which panics on the same stream.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => builder.with_env_filter(filter).init(),
        Err(_) => builder
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
                "warn,{}",
                crate::view::QUIET_LOG_DIRECTIVES
            )))
            .event_format(Plain)
            .init(),
    }
}

/// Whether stderr's lines get colour codes: only on a terminal (logs and pipes get plain text), and not where
/// `NO_COLOR` is set to anything but the empty string (<https://no-color.org>) or `TERM` is `dumb`, as clap's
/// messages and the progress bars decide.
fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty) && term.is_none_or(|t| t != "dumb")
}

/// `level: message`, as compilers and other command-line tools word theirs.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (word, colour) = match *event.metadata().level() {
            Level::ERROR => ("error", "31"),
            Level::WARN => ("warning", "33"),
            Level::INFO => ("info", "32"),
            Level::DEBUG => ("debug", "34"),
            Level::TRACE => ("trace", "35"),
        };
        if writer.has_ansi_escapes() {
            write!(writer, "\x1b[1;{colour}m{word}\x1b[0m: ")?;
        } else {
            write!(writer, "{word}: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn warnings_are_coloured_only_on_a_terminal_without_no_color_or_a_dumb_term() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert!(colour(true, None, None));
        assert!(colour(true, None, os("xterm-256color")));
        assert!(!colour(false, None, os("xterm-256color")));
        // NO_COLOR set to anything, "0" and "false" included, turns colour off; set empty, it is as if unset.
        for value in ["1", "0", "false", "yes"] {
            assert!(!colour(true, os(value), os("xterm")), "NO_COLOR={value}");
        }
        assert!(colour(true, os(""), os("xterm")));
        assert!(!colour(true, None, os("dumb")));
        assert!(colour(true, None, os("")));
    }
}
