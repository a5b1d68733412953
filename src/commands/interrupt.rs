//! Ctrl-C during training: the run stops at its next step, checkpoints there, and the command says how to go on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use qamlab_headless::TrainObserver;
use qamlab_headless::run_dir::RunDir;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C ends the process at once, as without the handler.
    // SAFETY: signal() is async-signal-safe, and SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// From now on, Ctrl-C asks the run that gets the returned observer to stop (a second Ctrl-C kills).
pub fn stop_on_interrupt() -> Box<dyn TrainObserver> {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: the handler only stores an atomic and calls signal(), both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
    Box::new(StopOnInterrupt)
}

/// After a run returned: an error naming where an interrupted run was checkpointed and how to continue it.
pub fn check(run: &Path) -> anyhow::Result<()> {
    if !INTERRUPTED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let at = RunDir::new(run)
        .latest_checkpoint()
        .ok()
        .flatten()
        .map_or("its last checkpoint".to_string(), |c| {
            c.display().to_string()
        });
    anyhow::bail!(
        "interrupted: the run is checkpointed where it stopped ({at}); continue it with `qamlab train --resume {}`",
        run.display()
    )
}

struct StopOnInterrupt;

impl TrainObserver for StopOnInterrupt {
    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}
