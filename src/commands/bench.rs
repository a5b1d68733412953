//! `qamlab bench agent|sim`: throughput figures for docs/benchmarks.md.

use std::path::PathBuf;

use anyhow::Context;
use qamlab_agent::bench::{Execution, bench_agent, paper_config, small_config};
use qamlab_agent::{AgentConfig, AgentKind, precision};
use qamlab_headless::{DeviceChoice, TrainConfig};
use qamlab_sim::EnvSpec;

/// Timed updates or steps of one measurement: a million already take hours.
const MAX_TIMED: usize = 1_000_000;

/// What to measure.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum BenchCommand {
    /// Gradient updates/s and acting latency (batch 1 and 1024) of QAM, QAM-F, QAM-E, FQL and BC.
    Agent(AgentBenchArgs),
    /// Env steps/s with random actions for 1, 16, 64 and 256 envs, and oracle collection steps/s.
    Sim(SimBenchArgs),
}

/// Flags of `qamlab bench agent`.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentBenchArgs {
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// `paper` (B 256, 4x512, K 10, T 10, H 5; the default on CUDA) or `small` (B 64, 2x64, K 2; the default on
    /// the CPU) (the demo's own networks, 2x128: `--config cpu-small`).
    #[arg(long, value_parser = ["paper", "small"])]
    pub size: Option<String>,
    /// A `qamlab train` config file (or a shipped config's name, e.g. `cpu-small`) to measure
    /// instead of a size: its `[agent]` settings on its task's observation and action sizes (its
    /// own agent kind unless --agents names others).
    #[arg(long, conflicts_with = "size")]
    pub config: Option<PathBuf>,
    /// Timed updates per agent (at most 1000000).
    #[arg(long, default_value_t = 50, value_parser = super::count_up_to(MAX_TIMED))]
    pub updates: usize,
    /// Agents to measure (default: qam, qam-f, qam-e, fql, bc; with --config, its kind).
    #[arg(long, value_delimiter = ',', value_parser = parse_agent)]
    pub agents: Vec<AgentKind>,
    /// On CUDA: measure eager execution, CUDA graphs, or both (one row each, same run).
    #[arg(long, value_enum, default_value_t = Toggle::Both)]
    pub cuda_graphs: Toggle,
    /// On CUDA: float32 matmuls in IEEE fp32 (off), in TF32 as JAX does by default (on), or both.
    #[arg(long, value_enum, default_value_t = Toggle::Off)]
    pub tf32: Toggle,
    /// On a CPU: each update on one thread (off), with its critic half on a second thread as
    /// training does (on), or both (one row each, same run).
    #[arg(long, value_enum, default_value_t = Toggle::Both)]
    pub split_update: Toggle,
    /// libtorch threads on the CPU (default: half the cores, as training uses; at most 1024; `--cpu-threads` too,
    /// as `train` names it).
    #[arg(long, alias = "cpu-threads", value_parser = super::count_up_to(qamlab_headless::limits::MAX_THREADS))]
    pub threads: Option<usize>,
}

/// Which settings of an execution switch `qamlab bench agent` measures (`true` and `false` too, as `qamlab
/// train` spells a switch; `--help` lists both, on and off).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toggle {
    /// Off and on, one row each.
    Both,
    /// On only (`true` says the same, as `train` spells it).
    #[value(aliases = ["true", "yes"])]
    On,
    /// Off only (`false` says the same).
    #[value(aliases = ["false", "no"])]
    Off,
}

/// The parser of one name of `--agents` (the list split at its commas): the names [`AgentKind`]'s parser takes.
fn parse_agent(name: &str) -> Result<AgentKind, String> {
    let expected = format!(
        "expected {}, separated by commas",
        AgentKind::names_where(|_| true, "or")
    );
    if name.is_empty() {
        return Err(format!("no agent named ({expected})"));
    }
    name.parse::<AgentKind>().map_err(|_| {
        let spaced = if name.trim().parse::<AgentKind>().is_ok() {
            " without spaces"
        } else {
            ""
        };
        format!("unknown agent {name:?} ({expected}{spaced})")
    })
}

impl Toggle {
    /// The settings to measure; only "off" where the switch does not apply to the device.
    fn settings(self, applies: bool) -> &'static [bool] {
        match (applies, self) {
            (false, _) | (true, Toggle::Off) => &[false],
            (true, Toggle::On) => &[true],
            (true, Toggle::Both) => &[false, true],
        }
    }
}

/// Flags of `qamlab bench sim`.
#[derive(clap::Args, Clone, Debug)]
pub struct SimBenchArgs {
    /// Task to step.
    #[arg(long, default_value = "cube-single", value_parser = super::task_arg())]
    pub task: String,
    /// Control steps per measurement (at most 1000000).
    #[arg(long, default_value_t = 200, value_parser = super::count_up_to(MAX_TIMED))]
    pub steps: usize,
    /// Env counts to measure, comma separated (each at most 4096).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256",
          value_parser = super::count_up_to(qamlab_headless::limits::MAX_ENVS))]
    pub envs: Vec<usize>,
}

/// Runs the chosen benchmark and prints a Markdown table.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Agent(args) => agent(args),
        BenchCommand::Sim(args) => sim(args),
    }
}

/// What `qamlab bench agent` measures: an agent configuration at a task's sizes.
struct Subject {
    /// How the header names it, e.g. `size small (obs 28, action 5)`.
    label: String,
    agent: AgentConfig,
    obs_dim: usize,
    action_dim: usize,
    /// The agents measured when `--agents` is not given.
    default_agents: Vec<AgentKind>,
}

impl Subject {
    /// A named size (`paper` or `small`) at cube-single's sizes.
    fn size(size: &str) -> anyhow::Result<Self> {
        let agent = match size {
            "paper" => paper_config(),
            "small" => small_config(),
            other => anyhow::bail!("--size {other:?}: expected paper or small"),
        };
        Ok(Self {
            label: format!("size {size} (obs 28, action 5)"),
            agent,
            obs_dim: 28,
            action_dim: 5,
            default_agents: AgentKind::ALL.to_vec(),
        })
    }

    /// The `[agent]` settings of a train config file, at its task's sizes.
    fn config(path: &std::path::Path) -> anyhow::Result<Self> {
        let cfg = TrainConfig::from_toml_file(path)?;
        let task = qamlab_tasks::load_task(&cfg.task)
            .with_context(|| format!("config file {}: task", path.display()))?;
        let spec = EnvSpec::of(&task.scene);
        Ok(Self {
            label: format!(
                "config {} (task {}: obs {}, action {})",
                path.display(),
                task.name,
                spec.obs_dim,
                spec.action_dim
            ),
            default_agents: vec![cfg.agent.kind],
            agent: cfg.agent,
            obs_dim: spec.obs_dim,
            action_dim: spec.action_dim,
        })
    }
}

fn agent(args: AgentBenchArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let subject = match &args.config {
        Some(path) => Subject::config(path)?,
        None => Subject::size(args.size.as_deref().unwrap_or(if device.is_cuda() {
            "paper"
        } else {
            "small"
        }))?,
    };
    // (the names were checked as the flags were parsed)
    let kinds = if args.agents.is_empty() {
        subject.default_agents.clone()
    } else {
        args.agents
    };
    let device_name = qamlab_headless::config::device_name(device);
    if !device.is_cuda() && (args.tf32 != Toggle::Off || args.cuda_graphs == Toggle::On) {
        qamlab_headless::stderr_line!(
            "note: --tf32 and --cuda-graphs are CUDA switches; on {device_name} every row runs eagerly in IEEE fp32"
        );
    }
    if device.is_cuda() && args.split_update == Toggle::On {
        qamlab_headless::stderr_line!(
            "note: --split-update is a CPU switch; on {device_name} updates run on one thread"
        );
    }
    let threads = if device.is_cuda() {
        String::new()
    } else {
        let n = qamlab_headless::config::set_cpu_threads(args.threads);
        format!(
            ", {n} libtorch thread{}, {}",
            if n == 1 { "" } else { "s" },
            qamlab_agent::mkl_kernels::active().label()
        )
    };
    // Every row's configuration is checked before the table starts.
    for &kind in &kinds {
        let mut cfg = subject.agent.clone();
        cfg.select_kind(kind);
        cfg.validate()
            .with_context(|| format!("{}, agent {}", subject.label, kind.as_str()))?;
    }
    qamlab_headless::stdout_line!(
        "device {device_name}{threads}, {}, {} timed updates each",
        subject.label,
        args.updates
    )?;
    qamlab_headless::stdout_line!(
        "| agent | execution | updates/s | act latency b1 (ms) | act latency b1024 (ms) |"
    )?;
    qamlab_headless::stdout_line!("|---|---|---|---|---|")?;
    for kind in kinds {
        let mut cfg = subject.agent.clone();
        cfg.select_kind(kind);
        for &tf32 in args.tf32.settings(device.is_cuda()) {
            if device.is_cuda() {
                // Process-wide; the row's `execution` says which setting it ran with.
                precision::set_tf32_matmuls(tf32)?;
            }
            for &cuda_graphs in args.cuda_graphs.settings(device.is_cuda()) {
                // BC has no critic half to split off.
                let splits = args
                    .split_update
                    .settings(!device.is_cuda() && kind.has_critic());
                for &split_update in splits {
                    let execution = Execution {
                        cuda_graphs,
                        split_update,
                    };
                    let (obs, action) = (subject.obs_dim, subject.action_dim);
                    let r = bench_agent(
                        kind,
                        cfg.clone(),
                        device,
                        args.updates,
                        obs,
                        action,
                        execution,
                    )
                    .with_context(|| format!("{}, agent {}", subject.label, kind.as_str()))?;
                    qamlab_headless::stdout_line!(
                        "| {} | {} | {:.1} | {:.2} | {:.2} |",
                        r.kind,
                        r.execution,
                        r.updates_per_sec,
                        r.act_latency_b1_ms,
                        r.act_latency_b1024_ms
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn sim(args: SimBenchArgs) -> anyhow::Result<()> {
    let task = qamlab_tasks::load_task(&args.task)?;
    let s = &task.scene.settings;
    qamlab_headless::stdout_line!(
        "task {}: control step {} s, {} physics substeps of {:.4} s, {} solver iterations of {} pass{}; {} control \
         steps per row",
        task.name,
        s.control_dt,
        s.substeps,
        s.control_dt / s.substeps as f32,
        s.solver_iterations,
        s.solver_passes,
        if s.solver_passes == 1 { "" } else { "es" },
        args.steps
    )?;
    qamlab_headless::stdout_line!(
        "| policy | envs | env steps/s (wall) | env steps per CPU-second |"
    )?;
    qamlab_headless::stdout_line!("|---|---|---|---|")?;
    let rows = qamlab_tasks::bench::bench_sim(&task, &args.envs, args.steps)?;
    for row in &rows {
        let per_cpu = row
            .env_steps_per_cpu_sec
            .map_or("-".into(), |v| format!("{v:.0}"));
        qamlab_headless::stdout_line!(
            "| {} | {} | {:.0} | {per_cpu} |",
            row.policy,
            row.envs,
            row.env_steps_per_sec
        )?;
    }
    if rows.iter().any(|r| r.env_steps_per_cpu_sec.is_none()) {
        qamlab_headless::stdout_line!("(-: this system gave no process CPU time)")?;
    }
    if !rows.iter().any(|r| r.policy == "oracle") {
        qamlab_headless::stdout_line!(
            "(no oracle rows: the scripted oracle cannot drive task {}; `qamlab task` says why)",
            task.name
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_takes_every_kind_and_lists_them_as_the_kind_parser_does() {
        for kind in AgentKind::ALL {
            assert_eq!(parse_agent(kind.as_str()), Ok(kind));
        }
        // `train --agent qamx` says what AgentKind's parser says; `bench agent --agents qamx` lists the same kinds.
        let expected = format!("(expected {}", AgentKind::names_where(|_| true, "or"));
        let train = "qamx".parse::<AgentKind>().unwrap_err().to_string();
        let bench = parse_agent("qamx").unwrap_err();
        assert!(train.contains(&expected), "{train}");
        assert!(bench.contains(&expected), "{bench}");
        assert_eq!(
            Subject::size("small").unwrap().default_agents,
            AgentKind::ALL
        );
    }
}
