//! The lines qamlab prints for the user, written so that a stream that cannot take them does not end the command:
//! std's `println!` and `eprintln!` panic when a write fails (stderr sent to a full disk, `> /dev/full`), which
//! stopped a training run mid-way with a trace nobody could read, since it went to the same full stream.
//!
//! * [`stdout_line!`](crate::stdout_line) — a command's result: a failed write is an error the command returns
//!   ("writing standard output: No space left on device"), so a script that reads it learns it is incomplete.
//! * [`stderr_line!`](crate::stderr_line) — progress, notes and warnings: a failed write is dropped, so a full log
//!   never stops the work it reports on (the run's own files keep its record).

use std::fmt;
use std::io::Write;

/// Writes `args` and a newline to standard output; a failed write is the error, naming the stream.
pub fn write_stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{args}")
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("writing standard output: {e}"))
}

/// Writes `text` as it is to standard output (a block of lines that ends with its own newline); a failed write is
/// the error, naming the stream.
pub fn write_stdout_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("writing standard output: {e}"))
}

/// Writes `args` and a newline to standard error, if it takes them: see the [module](self) for why a failure is
/// dropped.
pub fn write_stderr(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// The progress bar of a long command (training's phases, a collection), one look for all: `label` before the
/// bar, the count in `unit`s after it, the time taken and left, then the bar's message. Hidden unless `shown`.
pub fn progress_bar(label: &str, len: u64, unit: &str, shown: bool) -> indicatif::ProgressBar {
    let bar = if shown {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{prefix:>8}} [{{wide_bar:.cyan/blue}}] {{pos}}/{{len}}{unit} {{elapsed_precise}} ETA {{eta_precise}} \
             {{msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Progress for a log: where a command's progress bar cannot show (standard error is a file, a pipe, CI's log), a
/// line now and then, so that a long collection or evaluation does not look hung.
pub struct LogProgress {
    /// When the last line was due (or the work started); `None` where the bar shows, or no progress is wanted.
    last: Option<std::time::Instant>,
    /// Time between lines.
    every: std::time::Duration,
}

impl LogProgress {
    /// Time between lines.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(30);

    /// Lines for work that shows `progress`, where standard error is not a terminal.
    pub fn new(progress: bool) -> Self {
        let log = progress && !std::io::IsTerminal::is_terminal(&std::io::stderr());
        Self::every(log, Self::EVERY)
    }

    /// Lines every `every` if `log`.
    fn every(log: bool, every: std::time::Duration) -> Self {
        Self {
            last: log.then(std::time::Instant::now),
            every,
        }
    }

    /// Whether a line is due now: once [`EVERY`](Self::EVERY) has passed since the start, and since the last.
    pub fn due(&mut self) -> bool {
        match &mut self.last {
            Some(last) if last.elapsed() >= self.every => {
                *last = std::time::Instant::now();
                true
            }
            _ => false,
        }
    }
}

/// `println!` that returns the failure to write standard output as an error (`anyhow::Result<()>`), for `?`.
#[macro_export]
macro_rules! stdout_line {
    ($($arg:tt)*) => {
        $crate::console::write_stdout(::std::format_args!($($arg)*))
    };
}

/// `eprintln!` that drops a failure to write standard error instead of panicking.
#[macro_export]
macro_rules! stderr_line {
    ($($arg:tt)*) => {
        $crate::console::write_stderr(::std::format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LogProgress;

    #[test]
    fn a_progress_line_is_due_once_an_interval_and_never_where_a_bar_shows() {
        let mut log = LogProgress::every(true, Duration::from_millis(50));
        assert!(!log.due(), "due at the start");
        std::thread::sleep(Duration::from_millis(60));
        assert!(log.due());
        assert!(!log.due(), "due twice in one interval");
        std::thread::sleep(Duration::from_millis(60));
        assert!(log.due());
        let mut bar = LogProgress::every(false, Duration::ZERO);
        assert!(!bar.due());
    }

    #[test]
    fn a_progress_bar_is_made_with_its_label_for_either_unit() {
        // The template is parsed when the bar is made: a bad one would panic here, not in a user's run.
        for unit in ["episodes", ""] {
            for shown in [true, false] {
                let bar = super::progress_bar("collect", 10, unit, shown);
                assert_eq!(bar.prefix(), "collect");
                // (A shown bar is hidden anyway where stderr is not a terminal, as under `cargo test`.)
                if shown {
                    assert_eq!(bar.length(), Some(10));
                } else {
                    assert!(bar.is_hidden());
                }
            }
        }
    }
}
