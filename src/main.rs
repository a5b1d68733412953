//! The `qamlab` command line: doctor, collect, train, eval, bench and the demo.

mod doctor;

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
    /// Report libtorch, CUDA, CPU, display and engine versions.
    Doctor,
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
        Command::Doctor => doctor::run(),
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
