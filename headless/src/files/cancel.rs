//! Cancelling writes: a flag a signal handler sets (Ctrl-C), which the writes and collections in progress check,
//! so that they stop with a [`Cancelled`] error and remove their temporary files.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`cancel_writes`]: the writes and collections in progress stop, and remove their temporary files.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Asks the writes and collections in progress to stop at their next chance, with a [`Cancelled`] error: their
/// temporary files are then removed as they fail, where a process killed by Ctrl-C would leave them. It only sets
/// a flag, so a signal handler may call it.
pub fn cancel_writes() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether [`cancel_writes`] was called.
pub fn writes_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// The error of a write or collection stopped by [`cancel_writes`].
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped on request")
    }
}

impl std::error::Error for Cancelled {}

/// Fails with [`Cancelled`] once [`cancel_writes`] was called.
pub fn check_cancelled() -> anyhow::Result<()> {
    if writes_cancelled() {
        return Err(Cancelled.into());
    }
    Ok(())
}
