//! The `qamlab` command line: doctor, collect, train, eval, bench and the demo.

mod commands;
mod doctor;
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
    /// The main job: collect a cube-single dataset, train QAM offline then online, report.
    Demo(commands::demo::DemoArgs),
    /// Collect a dataset with a task's scripted oracle (OGBench npz layout).
    Collect(commands::collect::CollectArgs),
    /// Train an agent offline then online; `--resume RUN_DIR` continues a run.
    Train(commands::train::TrainArgs),
    /// Draw the learning curves of several runs on one chart.
    Plot(commands::plot::PlotArgs),
    /// Evaluate the latest checkpoint of a run.
    Eval(commands::eval::EvalArgs),
    /// Measure throughput (agent updates and latency, simulation steps).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Report libtorch, CUDA, CPU, display and engine versions.
    Doctor,
    /// Watch a task's envs in a 3D window, acted on by an agent (loaded or training), the oracle or random.
    View(Box<view::ViewArgs>),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Collect(args) => commands::collect::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Plot(args) => commands::plot::run(args),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Doctor => doctor::run(),
        Command::View(args) => view::run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole cause chain on one line: file, field, what was expected.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
