//! The `qamlab` command line: doctor, collect, dataset, train, eval, plot, bench, task, view and the demo.

mod commands;
mod doctor;
mod log;
mod view;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// qamlab: sparse-reward robot tasks in Bevy + Rapier, learned by Q-learning with Adjoint Matching.
// A flag given twice takes its last value (`args_override_self`, which every subcommand inherits), so that a script
// can override its base flags (`qamlab train $BASE --dataset other.npz`); a flag of several values (`bench agent
// --agents`) still gathers them all.
#[derive(Parser)]
#[command(version, about, propagate_version = true, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: collect a cube-single dataset, train QAM offline then online, report its success rate.
    Demo(commands::demo::DemoArgs),
    /// Collect a dataset with a task's scripted oracle, or with the policy a run learned (OGBench npz layout).
    Collect(commands::collect::CollectArgs),
    /// Show what a dataset holds and where it came from; `--task T` checks that it fits a task.
    Dataset(commands::dataset::DatasetArgs),
    /// Train an agent offline then online; `--resume RUN_DIR` continues a run.
    Train(commands::train::TrainArgs),
    /// Draw the learning curves of several runs on one chart.
    Plot(commands::plot::PlotArgs),
    /// Evaluate the latest checkpoint of a run, or one of an earlier step it kept.
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
    say_known_panics_plainly();
    let warnings = [
        qamlab_agent::cpu_memory::env_warning(),
        qamlab_agent::mkl_kernels::env_warning(),
    ];
    for warning in warnings.into_iter().flatten() {
        tracing::warn!("{warning}");
    }
    let cli = parse_command_line();
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
            qamlab_headless::stderr_line!("{}", error_line(&err));
            std::process::ExitCode::from(commands::interrupt::exit_status())
        }
        Err(err) => {
            let line = error_line(&err);
            qamlab_headless::stderr_line!("error: {line}");
            // `args()` panics on an argument that is not UTF-8 (`x\xff.npz`): such a one cannot hold a `~` hint.
            let args = std::env::args_os()
                .skip(1)
                .filter_map(|arg| arg.into_string().ok());
            if let Some(hint) = literal_tilde_hint(&line, args) {
                qamlab_headless::stderr_line!("hint: {hint}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line, as [`command`] parses it; a usage error is printed and exits with status 2.
fn parse_command_line() -> Cli {
    let mut matches = command()
        .try_get_matches()
        .unwrap_or_else(|e| exit_with(&e));
    Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| exit_with(&e.format(&mut command())))
}

/// Prints clap's message (help, the version, a usage error) and exits with its status; help or the version that
/// standard output cannot take (`--help > /dev/full`) is an error, as any result is (clap's own exit drops it).
fn exit_with(e: &clap::Error) -> ! {
    use std::io::Write;
    let printed = e.print().and_then(|()| std::io::stdout().flush());
    if let Err(err) = printed
        && !e.use_stderr()
    {
        qamlab_headless::stderr_line!("error: writing standard output: {err}");
        std::process::exit(1);
    }
    std::process::exit(e.exit_code());
}

/// The command line's definition: [`Cli`]'s, with every (sub)command letting a value that is a negative number
/// (`--seed -1`) reach its flag's parser, which says what the flag takes; clap would otherwise take it for a flag
/// and refuse it as an unexpected argument. Every subcommand's `--version` names the program, `qamlab 0.1.0`
/// (clap's own would say `qamlab-train 0.1.0`, a program that does not exist).
fn command() -> clap::Command {
    fn negative_numbers(cmd: clap::Command) -> clap::Command {
        cmd.allow_negative_numbers(true)
            .mut_subcommands(|sub| negative_numbers(sub.display_name("qamlab")))
    }
    negative_numbers(Cli::command())
}

/// Makes a panic that is libtorch failing to allocate (tch's infallible ops unwrap its error: on the CPU past the
/// machine's memory, on a GPU past its memory), or the window's event loop failing to start on a display that went
/// away, an error line with what to change, without a trace; other panics keep the default report. The panic still
/// unwinds, so files being written are cleaned up as on any error.
fn say_known_panics_plainly() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied());
        // The main thread's only: a helper thread's panic (the window's trainer) is reported where it is caught.
        let main_thread = std::thread::current().name() == Some("main");
        let plain = payload.and_then(|message| {
            out_of_memory(message)
                .map(|what| {
                    format!(
                        "libtorch ran out of memory ({what}): make the run smaller (batch_size, the networks' \
                         widths, num_qs, --envs) or free the device's memory"
                    )
                })
                .or_else(|| display_lost(message))
        });
        match plain.filter(|_| main_thread) {
            Some(line) => {
                qamlab_headless::stderr_line!("error: {line}");
                // Whoever asked for a backtrace gets the whole report too.
                if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                    default(info);
                }
            }
            None => default(info),
        }
    }));
}

/// What to say of the window's event loop failing to start (bevy_winit panics: the display answered the check
/// before the window, then went away or refused it); `None` for any other message.
fn display_lost(message: &str) -> Option<String> {
    let cause = message.strip_prefix("Failed to build event loop")?;
    let cause = cause.trim_start_matches([':', ' ']);
    // winit prefers Wayland where a compositor is named.
    let display = match std::env::var("WAYLAND_DISPLAY") {
        Ok(wayland) if !wayland.is_empty() => format!("WAYLAND_DISPLAY={wayland}"),
        _ => format!("DISPLAY={}", std::env::var("DISPLAY").unwrap_or_default()),
    };
    Some(format!(
        "qamlab view could not open its window on the display {display} ({}): the display server went away or \
         refused the window after the check; start it again, or use --screenshot under xvfb-run",
        cause.lines().next().unwrap_or(cause).trim()
    ))
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

/// Why a path the error names was not found, when the command line gave it with a literal `~` (`--run=~/r`,
/// `--dataset "~/d.npz"`): the shell expands `~` only at the start of a word, so qamlab looked for a folder named
/// `~`. Output paths are refused for this up front; an input path only fails to be found, and its error says no
/// more than that.
fn literal_tilde_hint(error: &str, args: impl Iterator<Item = String>) -> Option<String> {
    // An error that explains the `~` itself (an output path's check) needs no hint repeating it.
    if error.contains("literal `~`") || error.contains("literal ~") {
        return None;
    }
    args.filter_map(|arg| {
        let (flag, path) = match arg.split_once('=') {
            Some((flag, path)) if flag.starts_with("--") => (Some(flag.to_owned()), path.to_owned()),
            _ => (None, arg),
        };
        let rest = path.strip_prefix("~/").or((path == "~").then_some(""))?;
        let missing = !std::path::Path::new(&path).exists();
        // The error shows the path as given, or made absolute: `/work/~/d.npz`.
        (missing && error.contains(&path)).then(|| {
            let fix = match flag {
                Some(flag) => format!("`{flag} ~/{rest}` or `{flag} \"$HOME/{rest}\"`"),
                None => format!("`~/{rest}` unquoted, or `\"$HOME/{rest}\"`"),
            };
            format!(
                "`{path}` begins with a literal `~`, which the shell did not expand (it does only at the start of \
                 a word: not after `=`, nor in quotes): write {fix}"
            )
        })
    })
    .next()
}

#[cfg(test)]
mod tests {
    use super::{
        Cli, Command, command, display_lost, error_line, literal_tilde_hint, out_of_memory,
    };
    use clap::FromArgMatches;

    /// `qamlab ARGS` as parsed, or clap's error.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut matches = command()
            .try_get_matches_from(std::iter::once("qamlab").chain(args.iter().copied()))?;
        Cli::from_arg_matches_mut(&mut matches)
    }

    /// The error `qamlab ARGS` is refused with, as clap prints it.
    fn refusal(args: &[&str]) -> String {
        match parse(args) {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(e) => {
                // A usage error: clap exits with 2.
                assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn every_flag_of_every_subcommand_lets_a_negative_number_reach_its_parser() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd
                .get_arguments()
                .filter(|a| a.get_num_args().is_some_and(|n| n.takes_values()))
            {
                assert!(
                    arg.is_allow_negative_numbers_set(),
                    "{path} --{}",
                    arg.get_id()
                );
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut cmd = command();
        cmd.build();
        check(&cmd, "qamlab");
        for (args, says) in [
            (
                &["train", "--seed", "-1"][..],
                "for '--seed <SEED>': must be at least 0",
            ),
            (
                &["train", "--offline-steps", "-5"][..],
                "for '--offline-steps <OFFLINE_STEPS>': must be at least 0",
            ),
            (
                &["train", "--envs", "-3"][..],
                "for '--envs <ENVS>': must be at least 1",
            ),
            (
                &["train", "--eval-interval", "-1"][..],
                "for '--eval-interval <EVAL_INTERVAL>': must be at least 1",
            ),
            (
                &["plot", "run", "--smooth", "-1"][..],
                "for '--smooth <SMOOTH>': must be at least 1",
            ),
            (
                &["collect", "--out", "x.npz", "--episodes", "-2"][..],
                "for '--episodes <EPISODES>': must be at least 1",
            ),
            (
                &[
                    "collect",
                    "--out",
                    "x.npz",
                    "--episodes",
                    "1",
                    "--val-episodes",
                    "-1",
                ][..],
                "for '--val-episodes <VAL_EPISODES>': must be at least 0",
            ),
            (
                &[
                    "collect",
                    "--out",
                    "x.npz",
                    "--episodes",
                    "1",
                    "--noise",
                    "-0.5",
                ][..],
                "must be a finite number >= 0",
            ),
            (
                &["eval", "--run", "r", "--video", "--video-every", "-1"][..],
                "'--video-every <VIDEO_EVERY>': must be at least 1",
            ),
            (
                &["task", "cube-single", "--episodes", "-1"][..],
                "for '--episodes <EPISODES>': must be at least 0",
            ),
            (
                &["view", "--frames", "-1", "--screenshot", "s.png"][..],
                "for '--frames <FRAMES>': must be at least 0",
            ),
            (
                &["view", "--train", "--online-steps", "-1"][..],
                "for '--online-steps <ONLINE_STEPS>': must be at least 0",
            ),
            (
                &["bench", "sim", "--envs", "1,-16"][..],
                "for '--envs <ENVS>': must be at least 1",
            ),
            (
                &["bench", "agent", "--updates", "-1"][..],
                "for '--updates <UPDATES>': must be at least 1",
            ),
        ] {
            let err = refusal(args);
            assert!(err.contains(says), "{args:?}: {err}");
            // Not clap's refusal of an unknown flag, with its tip to write `-- -1` (a positional value).
            assert!(
                !err.contains("unexpected argument") && !err.contains("tip:"),
                "{args:?}: {err}"
            );
        }
        // A value that is one: `-0` is 0.
        let Ok(Cli {
            command: Command::Train(train),
        }) = parse(&["train", "--seed", "-0"])
        else {
            panic!()
        };
        assert_eq!(train.seed, Some(0));
    }

    #[test]
    fn every_seed_is_at_most_the_largest_integer_a_config_toml_records() {
        let max = "9223372036854775807";
        let seeds: [&[&str]; 7] = [
            &["train"],
            &["collect", "--out", "x.npz", "--episodes", "1"],
            &["eval", "--run", "r"],
            &["view"],
            &["demo"],
            &["task", "cube-single"],
            &["view", "--train"],
        ];
        for args in seeds {
            let with = |seed: &'static str| [args, &["--seed", seed]].concat();
            parse(&with(max)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            for seed in ["9223372036854775808", "18446744073709551616"] {
                let err = refusal(&with(seed));
                assert!(
                    err.contains(&format!(
                        "invalid value '{seed}' for '--seed <SEED>': must be at most {max}, the largest integer a \
                         run's config.toml can record"
                    )),
                    "{args:?}: {err}"
                );
            }
            let err = refusal(&with("-1"));
            assert!(
                err.contains("for '--seed <SEED>': must be at least 0"),
                "{args:?}: {err}"
            );
        }
        let Ok(Cli {
            command: Command::Train(train),
        }) = parse(&["train", "--seed", max])
        else {
            panic!()
        };
        assert_eq!(train.seed, Some(qamlab_headless::config::MAX_SEED));
    }

    #[test]
    fn a_flag_given_again_takes_its_last_value_in_every_subcommand() {
        let Ok(Cli {
            command: Command::Train(train),
        }) = parse(&[
            "train",
            "--dataset",
            "a.npz",
            "--seed",
            "1",
            "--tf32",
            "true",
            "--dataset",
            "b.npz",
            "--seed",
            "2",
            "--tf32",
            "off",
            "--quiet",
            "--quiet",
        ])
        else {
            panic!()
        };
        assert_eq!(
            train.dataset.as_deref(),
            Some(std::path::Path::new("b.npz"))
        );
        assert_eq!(
            (train.seed, train.tf32, train.quiet),
            (Some(2), Some(false), true)
        );
        // Every subcommand, a nested one too: each of these is refused without `args_override_self`.
        for args in [
            &[
                "collect",
                "--out",
                "a.npz",
                "--out",
                "b.npz",
                "--episodes",
                "1",
                "--episodes",
                "2",
            ][..],
            &[
                "eval", "--run", "a", "--run", "b", "--envs", "2", "--envs", "3",
            ],
            &[
                "plot", "r", "--out", "a.png", "--out", "b.png", "--smooth", "2", "--smooth", "3",
            ],
            &["task", "cube-single", "--seed", "1", "--seed", "2"],
            &["demo", "--out", "a", "--out", "b"],
            &[
                "dataset",
                "d.npz",
                "--task",
                "cube-single",
                "--task",
                "cube-double",
            ],
            &[
                "view",
                "--envs",
                "2",
                "--envs",
                "3",
                "--train",
                "--online-steps",
                "1",
                "--online-steps",
                "2",
            ],
            &[
                "bench", "agent", "--size", "paper", "--size", "small", "--tf32", "on", "--tf32",
                "off",
            ],
            &[
                "bench",
                "sim",
                "--task",
                "cube-single",
                "--task",
                "cube-double",
                "--steps",
                "1",
                "--steps",
                "2",
            ],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        let Ok(Cli {
            command: Command::Eval(eval),
        }) = parse(&[
            "eval", "--run", "a", "--run", "b", "--envs", "2", "--envs", "3",
        ])
        else {
            panic!()
        };
        assert_eq!((eval.run.to_str(), eval.envs), (Some("b"), 3));
        // A flag of several values gathers them still.
        let Ok(Cli {
            command: Command::Bench(crate::commands::bench::BenchCommand::Agent(bench)),
        }) = parse(&["bench", "agent", "--agents", "bc", "--agents", "fql,qam"])
        else {
            panic!()
        };
        use qamlab_agent::AgentKind;

        assert_eq!(
            bench.agents,
            [AgentKind::Bc, AgentKind::Fql, AgentKind::Qam]
        );
    }

    #[test]
    fn train_and_bench_agent_take_either_spelling_of_a_switch() {
        use crate::commands::bench::{BenchCommand, Toggle};
        for (given, meant) in [
            ("true", true),
            ("on", true),
            ("yes", true),
            ("false", false),
            ("off", false),
            ("no", false),
        ] {
            for flag in [
                "--cuda-graphs",
                "--tf32",
                "--split-update",
                "--sparse",
                "--balanced-sampling",
            ] {
                let Ok(Cli {
                    command: Command::Train(train),
                }) = parse(&["train", flag, given])
                else {
                    panic!("train {flag} {given}")
                };
                let set = [
                    train.cuda_graphs,
                    train.tf32,
                    train.split_update,
                    train.sparse,
                    train.balanced_sampling,
                ];
                assert_eq!(
                    set.iter().flatten().collect::<Vec<_>>(),
                    [&meant],
                    "train {flag} {given}"
                );
            }
            for flag in ["--cuda-graphs", "--tf32", "--split-update"] {
                let Ok(Cli {
                    command: Command::Bench(BenchCommand::Agent(bench)),
                }) = parse(&["bench", "agent", flag, given])
                else {
                    panic!("bench agent {flag} {given}")
                };
                let toggle = match flag {
                    "--cuda-graphs" => bench.cuda_graphs,
                    "--tf32" => bench.tf32,
                    _ => bench.split_update,
                };
                assert_eq!(
                    toggle,
                    if meant { Toggle::On } else { Toggle::Off },
                    "bench agent {flag} {given}"
                );
            }
        }
        // Each lists its own spelling in its refusal and its --help.
        let err = refusal(&["train", "--tf32", "maybe"]);
        assert!(
            err.contains("[possible values: true, false, on, off, yes, no]"),
            "{err}"
        );
        let err = refusal(&["bench", "agent", "--tf32", "maybe"]);
        assert!(err.contains("[possible values: both, on, off]"), "{err}");
    }

    #[test]
    fn a_value_a_flag_cannot_take_is_a_usage_error() {
        for (args, says) in [
            (
                &[
                    "collect",
                    "--out",
                    "x.npz",
                    "--episodes",
                    "1",
                    "--noise",
                    "nan",
                ][..],
                "invalid value 'nan' for '--noise <NOISE>': must be a finite number >= 0",
            ),
            (
                &[
                    "collect",
                    "--out",
                    "x.npz",
                    "--episodes",
                    "1",
                    "--random-action-prob",
                    "2",
                ][..],
                "invalid value '2' for '--random-action-prob <RANDOM_ACTION_PROB>': must be from 0 to 1",
            ),
            (
                &["bench", "agent", "--agents", "bc, fql"][..],
                "invalid value ' fql' for '--agents <AGENTS>': unknown agent \" fql\" (expected qam, qam-f, qam-e, fql \
                 or bc, separated by commas without spaces)",
            ),
            (
                &["bench", "agent", "--agents", ""][..],
                "invalid value '' for '--agents <AGENTS>': no agent named (expected qam, qam-f, qam-e, fql or bc, \
                 separated by commas)",
            ),
            (
                &["bench", "agent", "--agents", "bc,dqn"][..],
                "unknown agent \"dqn\"",
            ),
            (
                &["bench", "agent", "--size", "huge"][..],
                "[possible values: paper, small]",
            ),
            (
                &["plot", "run", "--out", "chart.jpg"][..],
                "invalid value 'chart.jpg' for '--out <OUT>': the chart is written as PNG; give a .png file name",
            ),
        ] {
            let err = refusal(args);
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }

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
    fn a_window_whose_display_went_away_is_said_plainly() {
        // bevy_winit's `expect` on winit's error, the review's Xvfb gone between the check and the window.
        let lost = "Failed to build event loop: Os(OsError { line: 81, file: \"winit/src/platform_impl/linux/mod.rs\", \
                    error: XNotSupported(XOpenDisplayFailed) })";
        let line = display_lost(lost).unwrap();
        assert!(
            line.starts_with("qamlab view could not open its window on the display ")
                && line.contains("(Os(OsError { line: 81")
                && line.ends_with("start it again, or use --screenshot under xvfb-run"),
            "{line}"
        );
        assert_eq!(display_lost("index out of bounds: the len is 3"), None);
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

    #[test]
    fn an_input_path_with_a_literal_tilde_that_is_not_found_gets_a_hint() {
        let args = |list: &[&str]| {
            list.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        let hint = literal_tilde_hint(
            "run directory ~/qamlab-no-run does not exist (a run is the folder `qamlab train --out` made)",
            args(&["eval", "--run=~/qamlab-no-run"]),
        )
        .unwrap();
        assert!(
            hint.starts_with("`~/qamlab-no-run` begins with a literal `~`"),
            "{hint}"
        );
        assert!(
            hint.ends_with("write `--run ~/qamlab-no-run` or `--run \"$HOME/qamlab-no-run\"`"),
            "{hint}"
        );
        // Made absolute by the command, as train does its dataset's path.
        let hint = literal_tilde_hint(
            "reading dataset /work/~/d.npz: No such file or directory (os error 2)",
            args(&["train", "--dataset", "~/d.npz"]),
        )
        .unwrap();
        assert!(
            hint.ends_with("write `~/d.npz` unquoted, or `\"$HOME/d.npz\"`"),
            "{hint}"
        );
        // Not the error's path, or a path that was expanded: no hint.
        assert_eq!(
            literal_tilde_hint(
                "reading dataset /root/d.npz: No such file",
                args(&["--dataset=~/d.npz"])
            ),
            None
        );
        assert_eq!(
            literal_tilde_hint("bad /root/d.npz", args(&["/root/d.npz"])),
            None
        );
        // An error that explains the `~` itself is not repeated by a hint.
        assert_eq!(
            literal_tilde_hint(
                "--out ~/c.png: the path begins with a literal `~`, which the shell did not expand",
                args(&["plot", "r", "--out=~/c.png"])
            ),
            None
        );
    }
}
