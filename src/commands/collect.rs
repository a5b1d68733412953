//! `qamlab collect`: a dataset from a task's scripted oracle, in OGBench's npz layout.

use std::path::PathBuf;

use qamlab_headless::collect::{CollectOptions, collect};

/// Flags of `qamlab collect`.
#[derive(clap::Args, Clone, Debug)]
pub struct CollectArgs {
    /// Built-in task name or path to a task scene file.
    #[arg(long, default_value = "cube-single")]
    pub task: String,
    /// Episodes to record.
    #[arg(long)]
    pub episodes: usize,
    /// Output file (.npz); written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Envs stepping together.
    #[arg(long, default_value_t = 16)]
    pub envs: usize,
    /// Seed: the same seed and flags give the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Oracle action noise in normalised units (OGBench uses 0.1; 0 for clean demonstrations).
    #[arg(long, default_value_t = 0.1)]
    pub noise: f32,
    /// Solve the task's own goal instead of "play" (random pick-and-place sub-goals).
    #[arg(long)]
    pub solve: bool,
    /// Probability of a uniformly random action instead of the oracle's (OGBench's "noisy" data uses 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub random_action_prob: f32,
    /// Episode length (default: the task's).
    #[arg(long)]
    pub episode_length: Option<u32>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `qamlab collect` and prints what was written.
pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    let summary = collect(&CollectOptions {
        task: args.task,
        episodes: args.episodes,
        envs: args.envs,
        seed: args.seed,
        noise: args.noise,
        play: !args.solve,
        random_action_prob: args.random_action_prob,
        episode_length: args.episode_length,
        out: args.out,
        progress: !args.quiet,
    })?;
    println!(
        "wrote {}: {} episodes, {} transitions ({} rows), {:.0}% of transitions at success, {:.0} env steps/s",
        summary.path.display(),
        summary.episodes,
        summary.transitions,
        summary.rows,
        100.0 * summary.success_fraction,
        summary.env_steps_per_sec
    );
    Ok(())
}
