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
