//! Ctrl-C during training: the run stops at its next step, checkpoints there, and the command says how to go on.
//! Ctrl-C during a collection: it stops, and its temporary files are removed rather than left behind.

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

extern "C" fn on_interrupt_cancel(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    qamlab_headless::files::cancel_writes();
    // SAFETY: as in `on_interrupt`.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// From now on, Ctrl-C stops the collection or the dataset write in progress, which then removes its temporary
/// file (killed by the signal's default action, it would leave `.tmp-NAME-XXXX` behind); a second Ctrl-C kills.
pub fn cancel_on_interrupt() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt_cancel;
    // SAFETY: the handler only stores atomics and calls signal(), all async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

/// `result`, or where Ctrl-C cancelled the work (see [`cancel_on_interrupt`]), an [`Interrupted`] error that
/// says `what` became of the files.
pub fn cancelled<T>(result: anyhow::Result<T>, what: &str) -> anyhow::Result<T> {
    match result {
        Err(_) if qamlab_headless::files::writes_cancelled() => {
            Err(Interrupted(format!("interrupted: {what}")).into())
        }
        other => other,
    }
}

/// Where Ctrl-C cancelled writes (see [`cancel_on_interrupt`]) after the last one finished, an [`Interrupted`]
/// error saying `what` became of the work: the next step must not start (its own writes would all fail).
pub fn stop_if_cancelled(what: &str) -> anyhow::Result<()> {
    if qamlab_headless::files::writes_cancelled() {
        return Err(Interrupted(format!("interrupted: {what}")).into());
    }
    Ok(())
}

/// Work Ctrl-C stopped (a run, a collection), and what became of it. The process then exits with 130
/// (128 + SIGINT), as shells and scripts expect of an interrupted command.
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
