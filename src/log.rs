//! What the program says on stderr besides its results: warnings and errors worded as a command-line tool's
//! (`warning: …`), or, with `RUST_LOG` set, tracing's full lines (time, level, module) for whoever debugs.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber: warnings and errors only, as `warning: …` lines, unless `RUST_LOG` chooses.
pub fn init() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs and pipes get plain text.
        .with_ansi(ansi);
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
