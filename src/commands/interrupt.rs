//! Ctrl-C during training: the run stops at its next step, checkpoints there, and the command says how to go on.

use std::sync::atomic::{AtomicBool, Ordering};

use qamlab_headless::run_dir::RunDir;
use qamlab_headless::{TrainObserver, TrainSummary};

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

/// A run Ctrl-C stopped, and what to do next. The process then exits with 130 (128 + SIGINT), as shells and
/// scripts expect of an interrupted command.
#[derive(Debug)]
pub struct Interrupted(String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// After a run returned: if Ctrl-C stopped it before its end, an [`Interrupted`] error naming where it was
/// checkpointed and how to continue it (a run that finished anyway just reports).
pub fn check(summary: &TrainSummary) -> anyhow::Result<()> {
    if !(summary.stopped_early && INTERRUPTED.load(Ordering::SeqCst)) {
        return Ok(());
    }
    let run = &summary.run_dir;
    let what = match RunDir::new(run).latest_checkpoint().ok().flatten() {
        Some(at) => format!(
            "interrupted: the run is checkpointed where it stopped ({}); continue it with `qamlab train --resume {}`",
            at.display(),
            run.display()
        ),
        None => format!(
            "interrupted before the run's first step: {} holds no checkpoint; remove it and start the run again",
            run.display()
        ),
    };
    Err(Interrupted(what).into())
}

struct StopOnInterrupt;

impl TrainObserver for StopOnInterrupt {
    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}
