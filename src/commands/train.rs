//! `qamlab train`: offline -> online training into a run directory (or `--resume` one).

use std::path::PathBuf;

use anyhow::Context;
use qamlab_agent::AgentKind;
use qamlab_headless::evaluate::EvalPoint;
use qamlab_headless::limits::{MAX_ENVS, MAX_EVAL_EPISODES, MAX_STEPS, MAX_UTD_RATIO};
use qamlab_headless::phase::Phase;
use qamlab_headless::{DeviceChoice, TrainConfig, TrainOptions, TrainSummary};

/// Flags of `qamlab train`; each overrides the value of `--config`, whose keys default to the values each flag names.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TrainArgs {
    /// TOML config file: run settings, agent hyper-parameters under `[agent]` (`--print-config` lists every
    /// key), or the name of a shipped one from any directory: `cpu-small`, `cuda-paper`, `antmaze-cpu`,
    /// `paper` (the files in assets/configs/).
    #[arg(long, value_parser = super::path_arg())]
    pub config: Option<PathBuf>,
    /// Built-in task name or path to a task scene file (default cube-single).
    #[arg(long, value_parser = super::task_arg())]
    pub task: Option<String>,
    /// Offline dataset: npz in OGBench's layout plus `rewards` and `masks`, as `qamlab collect` writes it.
    #[arg(long, value_parser = super::path_arg())]
    pub dataset: Option<PathBuf>,
    /// Agent: qam, qam-f, qam-e, fql or bc (default qam).
    #[arg(long, value_parser = parse_kind)]
    pub agent: Option<AgentKind>,
    /// Gradient steps on the dataset (default 100000; at most 10^12).
    #[arg(long, value_parser = super::at_most(MAX_STEPS))]
    pub offline_steps: Option<u64>,
    /// Online environment steps (default 100000; summed over the envs; rounded up to a multiple of --envs, which
    /// step together; at most 10^12).
    #[arg(long, value_parser = super::at_most(MAX_STEPS))]
    pub online_steps: Option<u64>,
    /// Training envs stepping together online (default 8; at most 4096).
    #[arg(long, value_parser = super::count_up_to(MAX_ENVS))]
    pub envs: Option<usize>,
    /// Online env steps before updates start (default 5000; they only collect until then; at most 10^12).
    #[arg(long, value_parser = super::at_most(MAX_STEPS))]
    pub start_training: Option<u64>,
    /// Gradient updates per online env step (default 1; at most 1024).
    #[arg(long, value_parser = super::count_up_to(MAX_UTD_RATIO))]
    pub utd_ratio: Option<usize>,
    /// auto, cpu or cuda (default auto: CUDA where libtorch sees it).
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Seed of everything random in the run (default 0; at most 2^63-1).
    #[arg(long, value_parser = super::seed_arg)]
    pub seed: Option<u64>,
    /// On CUDA, replay updates and acting from CUDA graphs (default true).
    #[arg(long, value_parser = super::switch_arg())]
    pub cuda_graphs: Option<bool>,
    /// On CUDA, let float32 matmuls use TF32 tensor cores, as JAX does by default (default false).
    #[arg(long, value_parser = super::switch_arg())]
    pub tf32: Option<bool>,
    /// On the CPU, compute each update's critic half on a second thread (default true; same
    /// results either way).
    #[arg(long, value_parser = super::switch_arg())]
    pub split_update: Option<bool>,
    /// On the CPU, libtorch's threads (default half the cores this process may use; at most 1024). Sums over many
    /// values depend on the count: the run records it in its config.toml, and --resume keeps it (`--threads`
    /// too, as `bench agent` names it).
    #[arg(long, alias = "threads", value_parser = super::count_up_to(qamlab_headless::limits::MAX_THREADS))]
    pub cpu_threads: Option<usize>,
    /// Rewards that are not 0 become -1, in the dataset and online (the reference's --sparse; default false).
    #[arg(long, value_parser = super::switch_arg())]
    pub sparse: Option<bool>,
    /// Online, half of each batch from the dataset and half from the online transitions, and uniformly random
    /// actions until start_training (the reference's --balanced_sampling, for runs with no offline steps;
    /// default false).
    #[arg(long, value_parser = super::switch_arg())]
    pub balanced_sampling: Option<bool>,
    /// Evaluate every this many steps (default 10000).
    #[arg(long, value_parser = super::at_least_one::<u64>)]
    pub eval_interval: Option<u64>,
    /// Episodes per evaluation (default 50; at most 1000000).
    #[arg(long, value_parser = super::count_up_to(MAX_EVAL_EPISODES))]
    pub eval_episodes: Option<usize>,
    /// Checkpoint every this many steps (default 10000).
    #[arg(long, value_parser = super::at_least_one::<u64>)]
    pub checkpoint_interval: Option<u64>,
    /// Keep this many of the newest checkpoints, each whole, for evaluating an earlier agent with `qamlab eval
    /// --step N` (default 1: the latest alone).
    #[arg(long, value_parser = super::at_least_one::<u64>)]
    pub keep_checkpoints: Option<u64>,
    /// Run directory (default runs/TASK-AGENT-SEED).
    #[arg(long, value_parser = super::path_arg())]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint, with the settings of its config.toml
    /// (so no other flag but --quiet).
    #[arg(long, value_parser = super::path_arg(), conflicts_with_all = [
        "config", "task", "dataset", "agent", "offline_steps", "online_steps", "envs", "start_training", "utd_ratio",
        "device", "seed",
        "cuda_graphs", "tf32", "split_update", "cpu_threads", "sparse", "balanced_sampling", "eval_interval", "eval_episodes", "checkpoint_interval",
        "keep_checkpoints", "out",
    ])]
    pub resume: Option<PathBuf>,
    /// Print the resolved configuration (defaults, then --config, then the flags) as TOML and exit.
    #[arg(long, conflicts_with = "resume")]
    pub print_config: bool,
    /// Hide the progress bars (and the start line; where stderr is not a terminal, the line each evaluation prints).
    #[arg(long)]
    pub quiet: bool,
}

/// The parser of `--agent`: a kind's name. Its error is the kind parser's reason alone (`unknown kind "qamx"
/// (expected ...)`), as `bench agent --agents` says it: "invalid agent config: kind:" would name a config file
/// that is not there.
fn parse_kind(s: &str) -> Result<AgentKind, String> {
    s.parse().map_err(|e| match e {
        qamlab_agent::AgentError::Config { reason, .. } => reason,
        other => other.to_string(),
    })
}

impl TrainArgs {
    /// The configuration these flags describe: `--config` (or the defaults) with the flags applied; not yet
    /// validated.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut cfg = match &self.config {
            // Judged as the agent that will train: `--agent qam` on a QAM-E file need not mend its edit_scale.
            Some(path) => TrainConfig::from_toml_file_as(path, self.agent)?,
            None => TrainConfig::default(),
        };
        if let Some(v) = &self.task {
            cfg.task = v.clone();
        }
        if let Some(v) = &self.dataset {
            cfg.dataset = Some(v.clone());
        }
        match self.agent {
            Some(kind) => cfg.agent.select_kind(kind),
            None => cfg.agent.fill_variant_weight(),
        }
        if let Some(v) = self.cpu_threads {
            cfg.cpu_threads = Some(v);
        }
        macro_rules! set {
            ($($field:ident),*) => {$(if let Some(v) = self.$field { cfg.$field = v; })*};
        }
        set!(
            offline_steps,
            online_steps,
            envs,
            start_training,
            utd_ratio,
            device,
            seed,
            cuda_graphs,
            tf32,
            split_update,
            sparse,
            balanced_sampling,
            eval_interval,
            eval_episodes,
            checkpoint_interval,
            keep_checkpoints
        );
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

/// Says when `--config` is a run's `config.toml` whose task's scene file or dataset changed since that run
/// started: the new run trains the files as they are now, which a user repeating that run (another seed) may not
/// expect.
fn note_reused_run_config(config: &std::path::Path, cfg: &TrainConfig) {
    // The file itself, through a link (`exp.toml` -> `RUN/config.toml`) and from inside the run's folder.
    let Ok(config) = std::fs::canonicalize(config) else {
        return;
    };
    if config.file_name() != Some("config.toml".as_ref()) {
        return;
    }
    let run = qamlab_headless::run_dir::RunDir::new(qamlab_agent::checkpoint::parent_dir(&config));
    // Given another --task or --dataset, the run trains that.
    let same = |a: &std::path::Path, b: &std::path::Path| {
        std::fs::canonicalize(a).is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
    };
    if let Some(original) = run.edited_original_scene()
        && same(std::path::Path::new(&cfg.task), &original)
    {
        qamlab_headless::stderr_line!(
            "note: {} is the run {}'s, but {} changed since that run started: this run trains the file as it is \
             now; to train the task as that run did, add --task {}",
            config.display(),
            run.root().display(),
            original.display(),
            qamlab_headless::shell::quote_path(&run.task_scene())
        );
    }
    // A dataset collected again under its name: the run's checkpoints record the CRC-32 of the bytes it trained on.
    if let Some(dataset) = &cfg.dataset
        && let Ok(recorded) = TrainConfig::from_toml_file(&config)
        && recorded
            .dataset
            .as_deref()
            .is_some_and(|d| same(d, dataset))
        && let Some(then) = run.recorded_dataset_crc32()
        && let Ok(now) = qamlab_headless::dataset::file_crc32(dataset)
        && now != then
    {
        qamlab_headless::stderr_line!(
            "note: {} is the run {}'s, but its dataset {} changed since that run trained on it (CRC-32 {now:08x}, \
             the run's checkpoint recorded {then:08x}): this run trains on the file as it is now",
            config.display(),
            run.root().display(),
            dataset.display()
        );
    }
}

/// Runs `qamlab train` and prints the summary.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let summary = if let Some(dir) = &args.resume {
        let run = qamlab_headless::run_dir::RunDir::new(dir);
        if let Some(original) = run.edited_original_scene() {
            qamlab_headless::stderr_line!(
                "note: {} changed since the run started; the run goes on with the task as it began, its copy {}",
                original.display(),
                run.task_scene().display()
            );
        }
        let summary = qamlab_headless::train(
            TrainOptions::new(TrainConfig::default(), dir)
                .with_resume(true)
                .with_progress(!args.quiet)
                .with_observer(super::interrupt::stop_on_interrupt()),
        )?;
        super::interrupt::check(&summary)?;
        summary
    } else {
        let cfg = args.resolve()?;
        // An error of a setting names the config file it may come from; of the flags alone, the setting says it.
        let source = |err: anyhow::Error| match &args.config {
            Some(path) => err.context(format!(
                "the configuration ({} and the flags)",
                path.display()
            )),
            None => err,
        };
        if args.print_config {
            // Printed only if it would train (the dataset aside, which a printed config may leave for later).
            cfg.agent.validate().context("[agent]").map_err(source)?;
            qamlab_tasks::load_task(&cfg.task)
                .with_context(|| format!("task = {:?}", cfg.task))
                .map_err(source)?;
            qamlab_headless::console::write_stdout_text(&cfg.to_toml()?)?;
            return Ok(());
        }
        cfg.validate().map_err(source)?;
        if let Some(config) = &args.config {
            note_reused_run_config(config, &cfg);
        }
        let out = args.out_dir(&cfg);
        let summary = qamlab_headless::train(
            TrainOptions::new(cfg, &out)
                .with_progress(!args.quiet)
                .with_observer(super::interrupt::stop_on_interrupt()),
        )
        .map_err(|err| match &args.config {
            Some(path) => err.context(format!(
                "training with the configuration ({} and the flags)",
                path.display()
            )),
            None => err,
        })?;
        super::interrupt::check(&summary)?;
        summary
    };
    print_summary(&summary)
}

/// An evaluation's success rate, its count of successes and the 95 % interval: `87% (26/30, 95% interval 70-95%)`.
fn evaluation_figure(e: &EvalPoint) -> String {
    let (low, high) = e.interval();
    format!(
        "{:.0}% ({}/{}, 95% interval {:.0}-{:.0}%)",
        100.0 * e.success_rate,
        e.successes(),
        e.episodes,
        100.0 * low,
        100.0 * high
    )
}

/// Prints the figures a user looks for after a run.
pub fn print_summary(s: &TrainSummary) -> anyhow::Result<()> {
    qamlab_headless::console::write_stdout_text(&summary_text(s))
}

/// The lines [`print_summary`] prints.
fn summary_text(s: &TrainSummary) -> String {
    let last = |phase: Phase| s.evals.iter().rev().find(|e| e.phase == phase);
    let online_evals = s.evals.iter().filter(|e| e.phase == Phase::Online).count();
    // RL curves are noisy: the best evaluation beside the last one shows what the run reached, and how many it was
    // the best of.
    let best = match (&s.best_online, last(Phase::Online)) {
        (Some(best), Some(last)) if best.step != last.step => format!(
            "; best of {online_evals} online evaluations {} at step {}",
            evaluation_figure(best),
            best.step
        ),
        (Some(_), Some(_)) if online_evals > 1 => {
            format!(", the best of {online_evals} online evaluations")
        }
        _ => String::new(),
    };
    // Only the phases the run had: an online-only run has no offline figure to show.
    let phase = |phase: Phase| {
        last(phase).map(|e| format!("{phase} {} at step {}", evaluation_figure(e), e.step))
    };
    let success = match (phase(Phase::Offline), phase(Phase::Online)) {
        (Some(offline), Some(online)) => format!("{offline} -> {online}{best}"),
        (Some(offline), None) => offline,
        (None, Some(online)) => format!("{online}{best}"),
        (None, None) => "no evaluation".to_string(),
    };
    // A run without an online phase took no env steps to report a rate of.
    // (Summaries from before the rates could be null hold 0 for them.)
    let online = s.env_steps_per_second.filter(|_| s.online_steps > 0);
    let online = online.map_or_else(String::new, |rate| {
        format!(
            ", {} online env steps at {rate:.0}/s of simulation time",
            s.online_steps
        )
    });
    // Nor one without an update (`start_training` past its online steps).
    let update_rate = s.updates_per_second.filter(|_| s.updates > 0);
    let update_rate = update_rate.map_or_else(String::new, |rate| {
        // Paper-size networks on a CPU make under one a second: a digit that is not 0.
        if rate < 1.0 {
            format!(" at {rate:.2}/s of update time")
        } else {
            format!(" at {rate:.0}/s of update time")
        }
    });
    // Both phases' shares, where there were both: online updates start at `start_training`, so the sum is no
    // plain offline + online steps (and "0 online" points at a `start_training` past the online steps).
    let online_updates = s.updates.saturating_sub(s.offline_updates);
    let updates = if s.offline_updates > 0 && s.online_steps > 0 {
        format!(
            "{} updates ({} offline + {online_updates} online)",
            s.updates, s.offline_updates
        )
    } else {
        format!("{} updates", s.updates)
    };
    // On the CPU, the threads the sums ran on (another count takes another path).
    let threads = s
        .cpu_threads
        .map_or_else(String::new, |n| format!("; cpu_threads {n}"));
    format!(
        "task {} | agent {} | device {} ({}{threads})\n\
         success: {success}\n\
         {updates}{update_rate}{online}, {:.0} s in all\n\
         learning curve: {}\n\
         run directory:  {}\n",
        s.task,
        s.agent,
        s.device,
        s.execution,
        s.wall_seconds,
        s.learning_curve.display(),
        s.run_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_the_help_names_are_the_configs() {
        use clap::Args;
        let cfg = TrainConfig::default();
        let command = TrainArgs::augment_args(clap::Command::new("train"));
        let help = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_help().unwrap().to_string()
        };
        let named = [
            ("task", cfg.task.clone()),
            ("agent", cfg.agent.kind.as_str().to_string()),
            ("offline_steps", cfg.offline_steps.to_string()),
            ("online_steps", cfg.online_steps.to_string()),
            ("envs", cfg.envs.to_string()),
            ("start_training", cfg.start_training.to_string()),
            ("utd_ratio", cfg.utd_ratio.to_string()),
            ("device", "auto".to_string()),
            ("seed", cfg.seed.to_string()),
            ("cuda_graphs", cfg.cuda_graphs.to_string()),
            ("tf32", cfg.tf32.to_string()),
            ("split_update", cfg.split_update.to_string()),
            // Unset in the config: no number but a share of the machine.
            (
                "cpu_threads",
                "half the cores this process may use".to_string(),
            ),
            ("sparse", cfg.sparse.to_string()),
            ("balanced_sampling", cfg.balanced_sampling.to_string()),
            ("eval_interval", cfg.eval_interval.to_string()),
            ("eval_episodes", cfg.eval_episodes.to_string()),
            ("checkpoint_interval", cfg.checkpoint_interval.to_string()),
            ("keep_checkpoints", cfg.keep_checkpoints.to_string()),
        ];
        for (id, value) in named {
            let help = help(id);
            assert!(
                [format!("(default {value}"), format!("; default {value}")]
                    .iter()
                    .any(|named| help.split(named.as_str()).skip(1).any(|after| {
                        // The whole value: `(default 1000` must not pass for 10000.
                        after.starts_with([')', ';', ':'])
                    })),
                "--{id}: {help}"
            );
        }
        assert_eq!(cfg.device, DeviceChoice::Auto);
    }

    #[test]
    fn every_flag_that_sets_the_run_is_refused_with_resume() {
        // A resumed run takes its settings from its config.toml: a flag added without joining --resume's conflicts
        // would be accepted and silently ignored.
        use clap::Args;
        let mut command = TrainArgs::augment_args(clap::Command::new("train"));
        command.build();
        let resume = command
            .get_arguments()
            .find(|a| a.get_id() == "resume")
            .unwrap();
        let refused_by_resume: Vec<_> = command
            .get_arg_conflicts_with(resume)
            .iter()
            .map(|a| a.get_id().clone())
            .collect();
        for arg in command.get_arguments() {
            let id = arg.get_id();
            if ["resume", "quiet", "help", "version"].contains(&id.as_str()) {
                continue;
            }
            let refuses_resume = command
                .get_arg_conflicts_with(arg)
                .iter()
                .any(|c| c.get_id() == "resume");
            assert!(
                refused_by_resume.contains(id) || refuses_resume,
                "--{id} is accepted with --resume"
            );
        }
    }

    fn summary(online: &[(u64, f64)]) -> TrainSummary {
        let point = |step, phase: &str, success_rate| EvalPoint {
            step,
            phase: phase.parse().unwrap(),
            success_rate,
            mean_return: 0.0,
            episodes: 30,
        };
        let mut evals = vec![point(10, "offline", 0.6)];
        evals.extend(
            online
                .iter()
                .map(|&(step, rate)| point(step, "online", rate)),
        );
        TrainSummary {
            task: "cube-single".into(),
            agent: "qam".into(),
            device: "cpu".into(),
            execution: "eager".into(),
            cpu_matmuls: "oneMKL's Intel kernels".into(),
            cpu_threads: Some(2),
            seed: Some(0),
            dataset: Some("/data/cube-single-play.npz".into()),
            eval_episodes: Some(30),
            eval_envs: Some(10),
            offline_success: Some(0.6),
            online_success: online.last().map(|p| p.1),
            updates_per_second: Some(72.0),
            env_steps_per_second: Some(3900.0),
            updates: 40,
            offline_updates: 10,
            online_steps: 30,
            wall_seconds: 5.0,
            best_online: qamlab_headless::train::best_online(&evals),
            evals,
            learning_curve: "run/learning_curve.png".into(),
            run_dir: "run".into(),
            stopped_early: false,
            final_evaluation: None,
        }
    }

    #[test]
    fn the_summary_names_the_best_online_evaluation_when_it_is_not_the_last() {
        let text = summary_text(&summary(&[(20, 0.3), (30, 0.5), (40, 0.5), (50, 0.2)]));
        // On the CPU, the threads its sums ran on.
        assert!(
            text.starts_with("task cube-single | agent qam | device cpu (eager; cpu_threads 2)\n"),
            "{text}"
        );
        // The last evaluation of each phase with its count and interval; the best, of how many.
        assert!(
            text.contains(
                "success: offline 60% (18/30, 95% interval 42-75%) at step 10 -> online 20% (6/30, 95% interval \
                 10-37%) at step 50; best of 4 online evaluations 50% (15/30, 95% interval 33-67%) at step 40\n"
            ),
            "{text}"
        );
        let tied = summary(&[(20, 0.3), (30, 0.9), (40, 0.9)]);
        let text = summary_text(&tied);
        assert!(
            text.contains(
                "success: offline 60% (18/30, 95% interval 42-75%) at step 10 -> online 90% (27/30, 95% interval \
                 74-97%) at step 40, the best of 3 online evaluations\n"
            ),
            "{text}"
        );
        // The last is as good: it is the best the summary records too.
        assert_eq!(tied.best_online.map(|e| e.step), Some(40));
        let text = summary_text(&summary(&[]));
        assert!(
            text.contains("success: offline 60% (18/30, 95% interval 42-75%) at step 10\n"),
            "{text}"
        );
        // One online evaluation is the best of none other.
        let text = summary_text(&summary(&[(20, 0.3)]));
        assert!(
            text.contains("-> online 30% (9/30, 95% interval 17-48%) at step 20\n"),
            "{text}"
        );
        let mut online_only = summary(&[(20, 0.3), (30, 0.1)]);
        online_only.offline_success = None;
        online_only.evals.remove(0);
        let text = summary_text(&online_only);
        assert!(
            text.contains(
                "success: online 10% (3/30, 95% interval 3-26%) at step 30; best of 2 online evaluations 30% (9/30, \
                 95% interval 17-48%) at step 20\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "40 updates (10 offline + 30 online) at 72/s of update time, 30 online env steps at 3900/s of \
             simulation time, 5 s in all"
        ));
        // An online phase without updates (start_training past its steps): the split says so.
        let mut no_online_updates = summary(&[(20, 0.3)]);
        no_online_updates.updates = 10;
        let text = summary_text(&no_online_updates);
        assert!(
            text.contains("10 updates (10 offline + 0 online) at"),
            "{text}"
        );
        // Without an online phase there is no env step rate to report.
        let mut offline_only = summary(&[]);
        offline_only.online_steps = 0;
        // As a summary from before the rate could be null has it.
        offline_only.env_steps_per_second = Some(0.0);
        offline_only.offline_updates = 40;
        let text = summary_text(&offline_only);
        assert!(
            text.contains("40 updates at 72/s of update time, 5 s in all\n"),
            "{text}"
        );
        // Under one a second (the paper's networks on a CPU), a rate that is not 0.
        offline_only.updates_per_second = Some(0.434);
        let text = summary_text(&offline_only);
        assert!(
            text.contains("40 updates at 0.43/s of update time"),
            "{text}"
        );
        // Nor, without an update, an update rate.
        let mut no_updates = summary(&[(20, 0.3)]);
        (no_updates.updates, no_updates.offline_updates) = (0, 0);
        no_updates.updates_per_second = None;
        let text = summary_text(&no_updates);
        assert!(
            text.contains(
                "\n0 updates, 30 online env steps at 3900/s of simulation time, 5 s in all\n"
            ),
            "{text}"
        );
    }
}
