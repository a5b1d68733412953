//! Ctrl-C during training: the run stops at its next step, checkpoints there, and the command says how to go on.
//! Ctrl-C during a collection: it stops, and its temporary files are removed rather than left behind.
//! SIGTERM (`kill`, `timeout`, `docker stop`, a batch scheduler's end of time) and SIGHUP (the terminal or ssh
//! session closed) are taken as Ctrl-C is; a long command's closed output pipe is not fatal (see
//! [`survive_closed_pipes`]).
//! Also: the window closes on either as its close button does; `eval --video` passes it to its renderer, a child
//! process (Ctrl-Z too); `plot` finishes the chart it is writing first.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use qamlab_headless::run_dir::RunDir;
use qamlab_headless::{TrainObserver, TrainSummary};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The signal that interrupted the work (one of [`STOP_SIGNALS`]), for the exit status; 0 before one.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signals taken as a request to stop.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The child process the stop signal is to be passed to (see [`wait_passing_signal`]); 0 for none. Taken (swapped
/// for 0) by whoever passes the signal, so that the child gets it once.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Records `signal`, passes it to the child waited for, and restores the default action of both, so that a second
/// one ends the process at once, as without the handler. Async-signal-safe.
fn stop_requested(signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    pass_to_child(signal);
    restore_default_actions();
}

/// Sends `signal` to the child waited for, if it was not sent yet. Async-signal-safe.
fn pass_to_child(signal: libc::c_int) {
    let child = CHILD.swap(0, Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill() is async-signal-safe; the pid is a child not yet reaped, so not reused (see
        // `wait_passing_signal`).
        unsafe {
            libc::kill(child, signal);
        }
    }
}

/// Which of [`STOP_SIGNALS`] this module's handler has taken over. Not one the process was started with ignored
/// (`cmd &` in a script, where the shell ignores SIGINT for it; `nohup`-like wrappers): that one stays ignored, as
/// whoever started the process asked, and as the default action would have left it.
static TAKEN: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];

/// The default action back for the stop signals the handler had taken. Async-signal-safe.
fn restore_default_actions() {
    for (s, taken) in STOP_SIGNALS.into_iter().zip(&TAKEN) {
        if taken.swap(false, Ordering::SeqCst) {
            // SAFETY: signal() is async-signal-safe, and SIG_DFL is a valid disposition.
            unsafe {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}

/// Whether `signal` is ignored now.
fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: `current` is a sigaction for sigaction() to fill; a null new action only reads the current one.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// Installs `handler` for the stop signals, except one that is ignored (see [`TAKEN`]).
fn install(handler: extern "C" fn(libc::c_int)) {
    for (s, taken) in STOP_SIGNALS.into_iter().zip(&TAKEN) {
        if !ignored(s) {
            taken.store(true, Ordering::SeqCst);
            // SAFETY: the handlers only store atomics and call signal(), all async-signal-safe.
            unsafe {
                libc::signal(s, handler as libc::sighandler_t);
            }
        }
    }
}

extern "C" fn on_interrupt(signal: libc::c_int) {
    stop_requested(signal);
}

/// From now on, a stop signal (Ctrl-C, SIGTERM, SIGHUP) asks the run that gets the returned observer to stop (a second one kills).
pub fn stop_on_interrupt() -> Box<dyn TrainObserver> {
    install(on_interrupt);
    survive_closed_pipes();
    Box::new(StopOnInterrupt)
}

/// From now on a write into a pipe whose reader is gone fails (and progress, notes and warnings are dropped, as
/// on a full disk) instead of ending the process by SIGPIPE: `qamlab train ... 2>&1 | tee log` whose `tee` the
/// closed terminal ended would die at its next line, without a checkpoint. Short printing commands keep the
/// default action `main` gives them (`qamlab task X | head -1` ends quietly).
pub fn survive_closed_pipes() {
    // SAFETY: SIG_IGN is a valid disposition; the process's only other SIGPIPE setting is main's, at its start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

extern "C" fn on_interrupt_cancel(signal: libc::c_int) {
    qamlab_headless::files::cancel_writes();
    stop_requested(signal);
}

/// From now on, a stop signal (Ctrl-C, SIGTERM, SIGHUP) stops the collection or the dataset write in progress, which then removes its
/// temporary file (killed by the signal's default action, it would leave `.tmp-NAME-@HOST-XXXXXX` behind); a second one
/// kills.
pub fn cancel_on_interrupt() {
    install(on_interrupt_cancel);
    survive_closed_pipes();
}

/// From now on the stop signals are taken as a request to stop, for [`requested`] to see (the window closes on
/// it); a second one ends the process.
pub fn record_stop_signals() {
    install(on_interrupt);
    survive_closed_pipes();
}

/// From now on a stop signal is held until [`release`]: the short write in progress (a chart) then ends whole
/// rather than killed halfway through with its temporary file left behind (a second signal still kills at once).
pub fn hold() {
    install(on_interrupt);
}

/// Ends [`hold`]: the stop signals have their default action again, and where one came meanwhile, it ends the
/// process now, as it would have ended then (128 + the signal for its status). Otherwise returns.
pub fn release() {
    restore_default_actions();
    let signal = SIGNAL.load(Ordering::SeqCst);
    if signal > 0 {
        // SAFETY: the signal's action is the default, so raising it ends the process.
        unsafe {
            libc::raise(signal);
        }
    }
}

/// Waits for `child`, passing it the stop signal this process takes (the handlers of this module must be
/// installed) at once, and once: a child in a process group of its own does not get the terminal's Ctrl-C, nor
/// does any child get the SIGTERM sent to its parent alone, which would otherwise end the parent and leave the
/// child working on. A second signal, which ends this process, is not passed: the child stops on the first. Ctrl-Z
/// (SIGTSTP) stops the child with this process, and `fg` or `bg` continues both, as they would a child in this
/// process's group.
pub fn wait_passing_signal(
    child: &mut std::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    let pid = child.id() as libc::pid_t;
    CHILD.store(pid, Ordering::SeqCst);
    SUSPENDED_WITH.store(pid, Ordering::SeqCst);
    set_suspend_action(suspend_handler());
    // A signal that came before the child was recorded.
    let signal = SIGNAL.load(Ordering::SeqCst);
    if signal > 0 {
        pass_to_child(signal);
    }
    // The child is reaped only once the handlers can no longer signal its pid, which another process may take
    // from then on.
    let exited = wait_for_exit(pid);
    CHILD.store(0, Ordering::SeqCst);
    SUSPENDED_WITH.store(0, Ordering::SeqCst);
    set_suspend_action(libc::SIG_DFL);
    exited?;
    child.wait()
}

/// Waits until child `pid` has ended, without reaping it: it stays a zombie, its pid its own.
fn wait_for_exit(pid: libc::pid_t) -> std::io::Result<()> {
    loop {
        // SAFETY: `info` is a siginfo_t for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above; WNOWAIT leaves the child to `Child::wait`.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if waited == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The child that Ctrl-Z stops along with this process (see [`wait_passing_signal`]); 0 for none.
static SUSPENDED_WITH: AtomicI32 = AtomicI32::new(0);

/// Sets SIGTSTP's action to `action`.
fn set_suspend_action(action: libc::sighandler_t) {
    // SAFETY: signal() with SIG_DFL or `on_suspend`, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTSTP, action);
    }
}

/// [`on_suspend`], as a signal action.
fn suspend_handler() -> libc::sighandler_t {
    let handler: extern "C" fn(libc::c_int) = on_suspend;
    handler as libc::sighandler_t
}

/// Ctrl-Z: stops the child waited for, then this process, by the signal's default action, here in the handler;
/// once continued (`fg`, `bg`: SIGCONT), continues the child. Where the kernel does not stop this process (an
/// orphaned process group), both go on at once. Async-signal-safe.
extern "C" fn on_suspend(_: libc::c_int) {
    let child = SUSPENDED_WITH.load(Ordering::SeqCst);
    // SAFETY: kill(), signal(), sigemptyset(), sigaddset(), pthread_sigmask() and raise() are async-signal-safe;
    // `set` is a sigset_t they fill and read.
    unsafe {
        if child > 0 {
            libc::kill(child, libc::SIGTSTP);
        }
        libc::signal(libc::SIGTSTP, libc::SIG_DFL);
        // Blocked while its handler runs: unblocked, the raised signal stops this process before raise() returns.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTSTP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGTSTP);
        libc::signal(libc::SIGTSTP, suspend_handler());
        if child > 0 {
            libc::kill(child, libc::SIGCONT);
        }
    }
}

/// Whether a stop signal this module's handlers take has come.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The exit status of work a signal interrupted: 128 + the signal, as shells report a command it ended (130 for
/// Ctrl-C, 143 for SIGTERM).
pub fn exit_status() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        s if s > 0 && s < 128 => 128 + s as u8,
        _ => 130,
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

/// Work a stop signal (Ctrl-C, SIGTERM, SIGHUP) stopped (a run, a collection), and what became of it. The process then exits with
/// [`exit_status`], as shells and scripts expect of an interrupted command.
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
    Err(run_stopped(&summary.run_dir))
}

/// Work a signal stopped, as an [`Interrupted`] error saying `what` became of it.
pub fn interrupted(what: impl Into<String>) -> anyhow::Error {
    Interrupted(what.into()).into()
}

/// The [`Interrupted`] error of a run in `run` that a signal stopped: where it was checkpointed and how to
/// continue it.
pub fn run_stopped(run: &std::path::Path) -> anyhow::Error {
    let what = match RunDir::new(run).latest_checkpoint().ok().flatten() {
        Some(at) => format!(
            "interrupted: the run is checkpointed where it stopped ({}); continue it with `qamlab train --resume {}`",
            at.display(),
            qamlab_headless::shell::quote_path(run)
        ),
        None => format!(
            "interrupted before the run's first step: {} holds no checkpoint; remove it and start the run again",
            run.display()
        ),
    };
    interrupted(what)
}

struct StopOnInterrupt;

impl TrainObserver for StopOnInterrupt {
    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}
