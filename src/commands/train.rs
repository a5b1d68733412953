//! `qamlab train`: offline -> online training into a run directory (or `--resume` one).

use std::path::PathBuf;

use anyhow::Context;
use qamlab_agent::AgentKind;
use qamlab_headless::config::select_agent_kind;
use qamlab_headless::{DeviceChoice, TrainConfig, TrainOptions, TrainSummary};

/// Flags of `qamlab train`; each overrides the value of `--config`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TrainArgs {
    /// TOML config file (keys as in `TrainConfig`, agent hyper-parameters under `[agent]`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Built-in task name or path to a task scene file.
    #[arg(long)]
    pub task: Option<String>,
    /// Offline dataset (npz, OGBench layout), e.g. from `qamlab collect`.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Agent: qam, qam-f, qam-e, fql or bc.
    #[arg(long, value_parser = parse_kind)]
    pub agent: Option<AgentKind>,
    /// Gradient steps on the dataset.
    #[arg(long)]
    pub offline_steps: Option<u64>,
    /// Online environment steps (summed over the envs).
    #[arg(long)]
    pub online_steps: Option<u64>,
    /// Training envs stepping together online.
    #[arg(long)]
    pub envs: Option<usize>,
    /// auto, cpu or cuda.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Seed of everything random in the run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// On CUDA, replay updates and acting from CUDA graphs (default true).
    #[arg(long)]
    pub cuda_graphs: Option<bool>,
    /// On CUDA, let float32 matmuls use TF32 tensor cores, as JAX does by default (default false).
    #[arg(long)]
    pub tf32: Option<bool>,
    /// Evaluate every this many steps.
    #[arg(long)]
    pub eval_interval: Option<u64>,
    /// Episodes per evaluation.
    #[arg(long)]
    pub eval_episodes: Option<usize>,
    /// Checkpoint every this many steps.
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// Run directory (default runs/<task>-<agent>-<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (other flags are ignored).
    #[arg(long, conflicts_with_all = ["config", "out"])]
    pub resume: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_kind(s: &str) -> Result<AgentKind, String> {
    s.parse()
        .map_err(|e: qamlab_agent::AgentError| e.to_string())
}

impl TrainArgs {
    /// The configuration these flags describe: `--config` (or the defaults) with the flags applied.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut cfg = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        if let Some(v) = &self.task {
            cfg.task = v.clone();
        }
        if let Some(v) = &self.dataset {
            cfg.dataset = Some(v.clone());
        }
        if let Some(kind) = self.agent {
            select_agent_kind(&mut cfg.agent, kind);
        }
        macro_rules! set {
            ($($field:ident),*) => {$(if let Some(v) = self.$field { cfg.$field = v; })*};
        }
        set!(
            offline_steps,
            online_steps,
            envs,
            device,
            seed,
            cuda_graphs,
            tf32,
            eval_interval,
            eval_episodes,
            checkpoint_interval
        );
        cfg.validate()?;
        Ok(cfg)
    }

    /// Where the run is written.
    pub fn out_dir(&self, cfg: &TrainConfig) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let task = std::path::Path::new(&cfg.task)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("task")
                .trim_end_matches(".scn");
            PathBuf::from("runs").join(format!("{task}-{}-{}", cfg.agent.kind.as_str(), cfg.seed))
        })
    }
}

/// Runs `qamlab train` and prints the summary.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let summary = if let Some(dir) = &args.resume {
        qamlab_headless::train(TrainOptions {
            config: TrainConfig::default(),
            out: dir.clone(),
            resume: true,
            progress: !args.quiet,
            observer: None,
        })?
    } else {
        let cfg = args.resolve()?;
        let out = args.out_dir(&cfg);
        qamlab_headless::train(TrainOptions {
            config: cfg,
            out,
            resume: false,
            progress: !args.quiet,
            observer: None,
        })
        .context("training")?
    };
    print_summary(&summary);
    Ok(())
}

/// Prints the figures a user looks for after a run.
pub fn print_summary(s: &TrainSummary) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", 100.0 * v));
    println!(
        "task {} | agent {} | device {} ({})",
        s.task, s.agent, s.device, s.execution
    );
    println!(
        "success: offline {} -> online {}",
        pct(s.offline_success),
        pct(s.online_success)
    );
    println!(
        "{} updates at {:.0}/s, {} online env steps at {:.0}/s, {:.0} s in all",
        s.updates, s.updates_per_second, s.online_steps, s.env_steps_per_second, s.wall_seconds
    );
    println!("learning curve: {}", s.learning_curve.display());
    println!("run directory:  {}", s.run_dir.display());
}
