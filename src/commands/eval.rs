//! `qamlab eval`: evaluates the latest checkpoint of a run.

use std::path::PathBuf;

use anyhow::Context;
use qamlab_headless::TrainConfig;
use qamlab_headless::run_dir::RunDir;

/// Flags of `qamlab eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// Run directory written by `qamlab train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Evaluation episodes.
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    /// Envs stepping together.
    #[arg(long, default_value_t = 10)]
    pub envs: usize,
    /// Seed of the evaluation episodes' initial states.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: qamlab_headless::DeviceChoice,
}

/// Runs `qamlab eval` and prints the success rate.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let cfg = TrainConfig::from_toml_file(&run.config())
        .with_context(|| format!("{} is not a run directory", args.run.display()))?;
    let checkpoint = run
        .latest_checkpoint()?
        .with_context(|| format!("{} has no checkpoint yet", args.run.display()))?;
    let device = args.device.resolve()?;
    let mut agent = qamlab_agent::Agent::load(checkpoint.join("agent.safetensors"), device)?;
    let task = qamlab_tasks::load_task(&cfg.task)?;
    let result = qamlab_headless::evaluate::evaluate(
        &mut agent,
        &task.scene,
        args.episodes,
        args.envs,
        args.seed,
    )?;
    println!(
        "{} ({}, step {}): success {:.0}% over {} episodes, mean return {:.1}",
        cfg.task,
        cfg.agent.kind.as_str(),
        agent.step(),
        100.0 * result.success_rate,
        result.episodes,
        result.mean_return
    );
    Ok(())
}
