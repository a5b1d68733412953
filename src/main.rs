//! The `qamlab` command line: doctor, collect, dataset, train, eval, plot, bench, task, view and the demo.

mod commands;
mod doctor;
mod log;
mod view;

use clap::{Parser, Subcommand};

/// qamlab: sparse-reward robot tasks in Bevy + Rapier, learned by Q-learning with Adjoint Matching.
#[derive(Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: collect a cube-single dataset, train QAM offline then online, report its success rate.
    Demo(commands::demo::DemoArgs),
    /// Collect a dataset with a task's scripted oracle (OGBench npz layout).
    Collect(commands::collect::CollectArgs),
    /// Show what a dataset holds and where it came from; `--task T` checks that it fits a task.
    Dataset(commands::dataset::DatasetArgs),
    /// Train an agent offline then online; `--resume RUN_DIR` continues a run.
    Train(commands::train::TrainArgs),
    /// Draw the learning curves of several runs on one chart.
    Plot(commands::plot::PlotArgs),
    /// Evaluate the latest checkpoint of a run.
    Eval(commands::eval::EvalArgs),
    /// Measure throughput (agent updates and latency, simulation steps).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Check a task (built-in or scene file): its observations, actions and goals; `--episodes N` tries it.
    Task(commands::task::TaskArgs),
    /// Report libtorch, CUDA, CPU, display and engine versions.
    Doctor,
    /// Watch a task's envs in a 3D window, acted on by an agent (loaded or training), the oracle or random.
    View(Box<view::ViewArgs>),
}

/// This checkout's root, for tests. Read at run time (cargo sets CARGO_MANIFEST_DIR when it runs
/// tests): a test binary reused from a shared target directory may have been compiled in another
/// checkout, whose path `env!` would have baked in.
#[cfg(test)]
fn checkout_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`qamlab task X --episodes 8 | head -1`) panicked with
    // a trace. With the default action the process ends quietly, as other command-line tools do.
    // SAFETY: the first thing the process does, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before any tensor: freed tensors' memory is reused, not given back.
    qamlab_agent::cpu_memory::keep_freed_memory();
    log::init();
    say_out_of_memory_plainly();
    let warnings = [
        qamlab_agent::cpu_memory::env_warning(),
        qamlab_agent::mkl_kernels::env_warning(),
    ];
    for warning in warnings.into_iter().flatten() {
        tracing::warn!("{warning}");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Collect(args) => commands::collect::run(args),
        Command::Dataset(args) => commands::dataset::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Plot(args) => commands::plot::run(args),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Task(args) => commands::task::run(args),
        Command::Doctor => doctor::run(),
        Command::View(args) => view::run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A deliberate Ctrl-C is not an error: its line says what became of the work, without the prefix.
        Err(err) if err.is::<commands::interrupt::Interrupted>() => {
            eprintln!("{}", error_line(&err));
            std::process::ExitCode::from(commands::interrupt::exit_status())
        }
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Makes a panic that is libtorch failing to allocate (tch's infallible ops unwrap its error: on the CPU past the
/// machine's memory, on a GPU past its memory) an error line with what to change, without a trace; other panics
/// keep the default report. The panic still unwinds, so files being written are cleaned up as on any error.
fn say_out_of_memory_plainly() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied());
        // The main thread's only: a helper thread's panic (the window's trainer) is reported where it is caught.
        let main_thread = std::thread::current().name() == Some("main");
        match payload.and_then(out_of_memory).filter(|_| main_thread) {
            Some(what) => {
                eprintln!(
                    "error: libtorch ran out of memory ({what}): make the run smaller (batch_size, the networks' \
                     widths, num_qs, --envs) or free the device's memory"
                );
                // Whoever asked for a backtrace gets the whole report too.
                if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                    default(info);
                }
            }
            None => default(info),
        }
    }));
}

/// The allocation failure a libtorch error message reports (`CUDA out of memory. Tried to allocate 2.00 GiB`),
/// its first line; `None` for any other message.
fn out_of_memory(message: &str) -> Option<String> {
    // tch's error, quoted inside the unwrap's message, escapes and all.
    let (_, inner) = message.split_once("Torch(\"")?;
    let markers = [
        "can't allocate memory",
        "out of memory",
        "DefaultCPUAllocator",
    ];
    if !markers.iter().any(|m| inner.contains(m)) {
        return None;
    }
    let first = inner.split("\\n").next().unwrap_or(inner);
    Some(first.lines().next().unwrap_or(first).trim().to_string())
}

/// The whole cause chain on one line (file, field, what was expected), each cause once: some libraries' errors
/// already print their source, which the chain would then repeat.
fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if line.ends_with(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{error_line, out_of_memory};

    #[test]
    fn libtorch_allocation_failures_are_told_apart_from_other_panics() {
        let cpu = "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at alloc_cpu.cpp:119] data. \
                   DefaultCPUAllocator: can't allocate memory: you tried to allocate 17179869184 bytes. Error code \
                   12 (Cannot allocate memory)\\nException raised from ...\")";
        assert_eq!(
            out_of_memory(cpu).as_deref(),
            Some(
                "[enforce fail at alloc_cpu.cpp:119] data. DefaultCPUAllocator: can't allocate memory: you tried \
                 to allocate 17179869184 bytes. Error code 12 (Cannot allocate memory)"
            )
        );
        let cuda = "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate \
                    2.00 GiB. GPU 0 has a total capacity of 79.19 GiB\\nmore\")";
        assert!(
            out_of_memory(cuda)
                .unwrap()
                .starts_with("CUDA out of memory. Tried to allocate 2.00 GiB")
        );
        assert_eq!(
            out_of_memory("index out of bounds: the len is 3 but the index is 5"),
            None
        );
        // Only libtorch's: a message of our own that mentions memory is another panic.
        assert_eq!(out_of_memory("the replay buffer ran out of memory"), None);
    }

    #[test]
    fn a_cause_that_its_error_already_prints_is_not_repeated() {
        #[derive(Debug)]
        struct Wrapping(std::io::Error);
        impl std::fmt::Display for Wrapping {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "invalid archive: {}", self.0)
            }
        }
        impl std::error::Error for Wrapping {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("no end of directory");
        let err = anyhow::Error::new(Wrapping(io)).context("dataset d.npz");
        assert_eq!(
            error_line(&err),
            "dataset d.npz: invalid archive: no end of directory"
        );
        let plain = anyhow::anyhow!("no such file").context("opening d.npz");
        assert_eq!(error_line(&plain), "opening d.npz: no such file");
    }
}
