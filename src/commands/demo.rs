//! `qamlab demo`, the main job on an embedded default: collect a cube-single dataset with the
//! noisy "play" oracle, train QAM offline then online, and report the success rates and the plot.
//! On a CPU it is sized to take about ten minutes; with `--device cuda` it trains the paper-size
//! networks for longer.

use std::path::PathBuf;

use anyhow::Context;
use qamlab_agent::{AgentConfig, AgentKind};
use qamlab_headless::collect::{CollectOptions, collect};
use qamlab_headless::{DeviceChoice, TrainConfig, TrainOptions};

/// Flags of `qamlab demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// auto, cpu or cuda (cuda trains the paper-size networks).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Directory for the dataset and the run.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Seed of the dataset and the run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The demo's schedule for a device.
struct Plan {
    episodes: usize,
    config: TrainConfig,
}

fn plan(device: tch::Device, dataset: PathBuf, seed: u64) -> Plan {
    let base = TrainConfig {
        task: "cube-single".into(),
        dataset: Some(dataset),
        seed,
        eval_episodes: 20,
        eval_envs: 10,
        ..TrainConfig::default()
    };
    if device.is_cuda() {
        Plan {
            episodes: 1000,
            config: TrainConfig {
                device: DeviceChoice::Cuda,
                offline_steps: 100_000,
                online_steps: 100_000,
                envs: 16,
                eval_interval: 10_000,
                eval_episodes: 50,
                checkpoint_interval: 20_000,
                agent: AgentConfig {
                    kind: AgentKind::Qam,
                    inv_temp: 1.0,
                    ..AgentConfig::default()
                },
                ..base
            },
        }
    } else {
        // Networks small enough for ~85 updates/s on two cores, and most of the steps online,
        // where QAM's success climbs fastest (docs/benchmarks.md, "Training").
        Plan {
            episodes: 1000,
            config: TrainConfig {
                device: DeviceChoice::Cpu,
                offline_steps: 20_000,
                online_steps: 30_000,
                envs: 8,
                start_training: 1_000,
                eval_interval: 5_000,
                eval_episodes: 30,
                checkpoint_interval: 5_000,
                log_interval: 500,
                agent: AgentConfig {
                    kind: AgentKind::Qam,
                    inv_temp: 1.0,
                    batch_size: 64,
                    actor_hidden_dims: vec![128, 128],
                    value_hidden_dims: vec![128, 128],
                    num_qs: 2,
                    ..AgentConfig::default()
                },
                ..base
            },
        }
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let dataset = args.out.join("cube-single-play.npz");
    let plan = plan(device, dataset.clone(), args.seed);
    println!(
        "qamlab demo on {device:?}: {} play episodes of cube-single, then QAM {} offline + {} online steps",
        plan.episodes, plan.config.offline_steps, plan.config.online_steps
    );
    let collected = collect(&CollectOptions {
        task: "cube-single".into(),
        episodes: plan.episodes,
        envs: 16,
        seed: args.seed,
        out: dataset.clone(),
        progress: !args.quiet,
        ..CollectOptions::default()
    })
    .context("collecting the demo dataset")?;
    println!(
        "dataset: {} ({} transitions)",
        dataset.display(),
        collected.transitions
    );
    let run_dir = args.out.join(format!(
        "qam-{}",
        if device.is_cuda() { "cuda" } else { "cpu" }
    ));
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("clearing the previous demo run {}", run_dir.display()))?;
    }
    let summary = qamlab_headless::train(TrainOptions {
        config: plan.config,
        out: run_dir,
        resume: false,
        progress: !args.quiet,
        observer: None,
    })?;
    super::train::print_summary(&summary);
    Ok(())
}
