//! `qamlab collect`: a dataset from a task's scripted oracle, or from the policy a run learned, in OGBench's npz
//! layout.

use std::path::PathBuf;

use anyhow::Context;

use qamlab_headless::collect::{
    CollectOptions, CollectSummary, PolicyChoice, PolicySource, StagedCollection, check_collect,
    collect_staged,
};
use qamlab_headless::limits::{MAX_ENVS, MAX_EPISODE_LENGTH, MAX_EPISODES};

/// Flags of `qamlab collect`.
#[derive(clap::Args, Clone, Debug)]
pub struct CollectArgs {
    /// Built-in task name or path to a task scene file [default: the --run's task, else cube-single].
    #[arg(long, value_parser = super::task_arg())]
    pub task: Option<String>,
    /// Act with the policy a `qamlab train` run learned instead of the task's oracle: its run directory (its
    /// newest checkpoint) or one of its checkpoints, `RUN/checkpoints/step-N`. Collects a dataset for any task
    /// the agents learn, those without an oracle too; --noise and --random-action-prob perturb its actions as they
    /// do the oracle's.
    #[arg(long, alias = "checkpoint", value_parser = super::path_arg(), conflicts_with = "solve")]
    pub run: Option<PathBuf>,
    /// With --run: the step of the checkpoint to act with, one of those the run kept (`qamlab train
    /// --keep-checkpoints K`).
    #[arg(long, requires = "run", value_parser = super::non_negative::<u64>)]
    pub step: Option<u64>,
    /// With --run: where the policy acts, auto, cpu or cuda (the same flags on the same device give the same
    /// bytes).
    #[arg(long, default_value = "auto", requires = "run")]
    pub device: qamlab_headless::DeviceChoice,
    /// With --run and the CPU: libtorch's threads the policy acts with [default: the run's, or 1 where it records
    /// none] (sums over many values depend on their count: the recorded command gives it; at most 1024).
    #[arg(long, alias = "threads", requires = "run", value_parser = super::count_up_to(qamlab_headless::limits::MAX_THREADS))]
    pub cpu_threads: Option<usize>,
    /// With --run: refuse a checkpoint whose tensors' CRC-32 (8 hex digits) is not this one. A dataset's recorded
    /// command gives it, so that the command run again acts with the same policy or says it cannot.
    #[arg(long, requires = "run", value_name = "HEX", value_parser = crc32_arg)]
    pub checkpoint_crc32: Option<u32>,
    /// Episodes to record (at most 100000000).
    #[arg(long, value_parser = super::count_up_to(MAX_EPISODES))]
    pub episodes: usize,
    /// Output file (.npz); written atomically. An existing file is refused unless `--overwrite`.
    #[arg(long, value_parser = super::path_arg())]
    pub out: PathBuf,
    /// Replace the `--out` file if it exists (and its `-val.npz`, when --val-episodes writes one).
    #[arg(long)]
    pub overwrite: bool,
    /// Envs stepping together (at most 4096).
    #[arg(long, default_value_t = 16, value_parser = super::count_up_to(MAX_ENVS))]
    pub envs: usize,
    /// Seed: the same seed and flags give the same bytes (at most 2^63-1).
    #[arg(long, default_value_t = 0, value_parser = super::seed_arg)]
    pub seed: u64,
    /// Action noise in normalised units, on the oracle's or the --run policy's actions (OGBench uses 0.1; 0 for clean
    /// demonstrations).
    #[arg(long, default_value_t = 0.1, value_parser = super::number_up_to(f32::INFINITY, "a finite number >= 0"))]
    pub noise: f32,
    /// The oracle solves the task's own goal instead of "play" (random sub-goals: pick-and-place for the cube
    /// tasks, places to walk to for a legged robot).
    #[arg(long)]
    pub solve: bool,
    /// Probability of a uniformly random action instead of the oracle's or the --run policy's (OGBench's "noisy" data
    /// uses 0.1).
    #[arg(long, default_value_t = 0.0, value_parser = super::number_up_to(1.0, "from 0 to 1"))]
    pub random_action_prob: f32,
    /// Episode length in control steps (default: the task's; at most 1000000).
    #[arg(long, value_parser = super::count_up_to(MAX_EPISODE_LENGTH))]
    pub episode_length: Option<u32>,
    /// Also write OGBench's validation file `<out stem>-val.npz` with this many more episodes
    /// (OGBench's own hold about a tenth as many), from a different seed stream. Both files are collected and
    /// written before either replaces an earlier one.
    #[arg(long, default_value_t = 0, value_parser = super::at_most(MAX_EPISODES))]
    pub val_episodes: usize,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// A CRC-32 as 8 hex digits (as datasets and messages show one).
fn crc32_arg(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0x");
    if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(digits, 16).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "expected a CRC-32 as 8 hex digits (as `dc018a58`), got `{text}`"
        ))
    }
}

/// `data/x.npz` -> `data/x-val.npz`.
fn val_path(out: &std::path::Path) -> PathBuf {
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("dataset");
    out.with_file_name(format!("{stem}-val.npz"))
}

/// Runs `qamlab collect` and prints what was written.
pub fn run(mut args: CollectArgs) -> anyhow::Result<()> {
    // Through a link to the dataset it names: the validation file then goes beside that dataset, not the link.
    args.out = qamlab_headless::files::through_links(&args.out)?;
    // A dataset can take a long time to make: only replaced when asked to, and refused before collecting.
    if !args.overwrite {
        let val = (args.val_episodes > 0).then(|| val_path(&args.out));
        for path in std::iter::once(&args.out).chain(&val) {
            anyhow::ensure!(
                !path.is_file(),
                "collect: {} exists already: give another --out, or --overwrite to replace it",
                path.display()
            );
        }
    }
    let stale_val = val_path(&args.out);
    if args.overwrite && args.val_episodes == 0 && stale_val.is_file() {
        tracing::warn!(
            "{} is an earlier collection's validation file and will not match the new {}: remove it, or give \
             --val-episodes to replace it",
            stale_val.display(),
            args.out.display()
        );
    }
    // The cheap checks of the files to write before a policy's checkpoint is loaded (seconds, for large networks).
    qamlab_headless::collect::check_out(&args.out)?;
    let policy = args
        .run
        .as_ref()
        .map(|run| {
            let device = args.device.resolve().context("--device")?;
            let choice = PolicyChoice {
                step: args.step,
                cpu_threads: args.cpu_threads,
                checkpoint_crc32: args.checkpoint_crc32,
            };
            if device != tch::Device::Cpu && args.cpu_threads.is_some() {
                tracing::warn!(
                    "--cpu-threads is for a policy acting on the CPU; this one acts on CUDA"
                );
            }
            PolicySource::of(run, &choice, device)
        })
        .transpose()?;
    if let Some(threads) = policy.as_ref().and_then(|p| p.cpu_threads) {
        let cores = qamlab_headless::config::available_cores();
        if threads > cores {
            tracing::warn!(
                "the policy acts with {threads} CPU threads, more than the {cores} cores this machine gives the \
                 process: libtorch's threads spin, so it acts many times slower (its sums stay the same)"
            );
        }
    }
    let task = match (&args.task, &policy) {
        (Some(task), _) => task.clone(),
        (None, Some(policy)) => policy.task.clone(),
        (None, None) => "cube-single".into(),
    };
    let options = CollectOptions {
        task,
        episodes: args.episodes,
        envs: args.envs,
        seed: args.seed,
        noise: args.noise,
        play: !args.solve,
        random_action_prob: args.random_action_prob,
        episode_length: args.episode_length,
        out: args.out,
        progress: !args.quiet,
        policy,
    };
    let val = (args.val_episodes > 0).then(|| CollectOptions {
        episodes: args.val_episodes,
        // A seed stream of its own: no validation episode repeats a training one.
        seed: options.seed ^ 0x7A11_DA7A_5EED_0001,
        out: val_path(&options.out),
        ..options.clone()
    });
    // Both checked before the first episode: the validation file's options must not fail after the main one.
    let task = check_collect(&options)?;
    for warning in task.warnings() {
        tracing::warn!("{warning}");
    }
    if let Some(policy) = &options.policy
        && let Some(warning) =
            policy.check_task(&task.scene, &qamlab_sim::EnvSpec::of(&task.scene))?
    {
        tracing::warn!("{warning}");
    }
    if let Some(val) = &val {
        check_collect(val).with_context(|| {
            format!(
                "--val-episodes {}: the validation file {}",
                val.episodes,
                val.out.display()
            )
        })?;
    }
    // What a Ctrl-C before the files are put in place leaves --out as (it replaces nothing before then).
    let untouched = if options.out.exists() {
        format!("{} is as it was", options.out.display())
    } else {
        format!("{} was not made", options.out.display())
    };
    if let Some(policy) = &options.policy {
        qamlab_headless::stdout_line!(
            "acting with the policy of {}, checkpoint step-{}, on task {}",
            policy.run.display(),
            policy.step,
            task.name
        )?;
        // Where the run itself is part-way (training, or stopped): its newest checkpoint is short of its end.
        let newest = qamlab_headless::run_dir::RunDir::new(&policy.run)
            .latest_checkpoint()
            .ok()
            .flatten()
            .and_then(|dir| qamlab_headless::run_dir::checkpoint_dir_step(&dir));
        if let Some(newest) = newest.filter(|&newest| newest < policy.total_steps) {
            qamlab_headless::stdout_line!(
                "note: the run is part-way (its newest checkpoint is step {newest} of {}): a run going on removes \
                 its older checkpoints but the newest keep_checkpoints (`qamlab train --keep-checkpoints K`), and the \
                 command recorded in the dataset names step-{}",
                policy.total_steps,
                policy.step
            )?;
        }
        let length = options
            .episode_length
            .unwrap_or(task.scene.settings.episode_length) as usize;
        if length < policy.chunk_length {
            tracing::warn!(
                "episodes of {length} steps are shorter than the run's action chunks ({} steps): training with its \
                 config (horizon_length = {}) refuses such a dataset",
                policy.chunk_length,
                policy.chunk_length
            );
        }
    }
    if options.noise > 1.0 {
        tracing::warn!(
            "--noise {} is more than the action range's half-width: about half the actions or more will sit at -1 or 1 \
             (OGBench's data uses 0.1)",
            options.noise
        );
    }
    super::interrupt::cancel_on_interrupt();
    // Both written beside their names, then both put in place: a failure or Ctrl-C before leaves the files that
    // were there. Only the second rename failing (rare within one folder) could part the pair: the error says so.
    let staged = collect_staged(&options).and_then(|main| {
        let val = val.as_ref().map(collect_staged).transpose()?;
        Ok((main, val))
    });
    let (main, val) = super::interrupt::cancelled(
        staged,
        &format!("nothing was written (no temporary file is left): {untouched}"),
    )?;
    let (main, val) = if args.overwrite {
        let main = main.put_in_place()?;
        let val = val
            .map(StagedCollection::put_in_place)
            .transpose()
            .with_context(|| {
                format!(
                    "{} is the new dataset, but its validation file could not replace the one there: collect \
                     again",
                    main.path.display()
                )
            })?;
        (main, val)
    } else {
        put_in_place_new(main, val)?
    };
    report(&main)?;
    if let Some(val) = &val {
        report(val)?;
    }
    let episode_length = main.transitions / main.episodes.max(1);
    if main.transitions > 0 && main.success_fraction == 0.0 {
        qamlab_headless::stdout_line!(
            "note: no transition reaches success, so offline training sees no success to value{}",
            match &options.policy {
                Some(policy) if episode_length < policy.trained_episode_length() => format!(
                    "; its episodes of {episode_length} steps are shorter than those the run trained in ({} steps): \
                     the policy may need more (--episode-length)",
                    policy.trained_episode_length()
                ),
                Some(policy) => format!(
                    "; the policy of {} never reached the goal here: `qamlab eval --run {} --step {}` says how often \
                     it does without noise; train it longer, or collect with less --noise",
                    policy.run.display(),
                    qamlab_headless::shell::quote(&policy.run.display().to_string()),
                    policy.step
                ),
                None if options.play =>
                    "; play data reaches the goals only by chance (harder, the more goals a task \
                                         has): `--solve` collects episodes that solve the task"
                        .into(),
                None => String::new(),
            }
        )?;
    }
    Ok(())
}

/// Puts the dataset and its validation file in place without replacing anything: where another process made a
/// file of either name while this one collected (it was checked free before), the collection is kept under the
/// first free name `STEM-N.npz` beside it (hours of collecting are not thrown away), and the command fails
/// saying so, after reporting what it wrote.
fn put_in_place_new(
    main: StagedCollection,
    val: Option<StagedCollection>,
) -> anyhow::Result<(CollectSummary, Option<CollectSummary>)> {
    let wanted = main.path().to_path_buf();
    let mut moved = Vec::new();
    let main = match main.put_in_place_new()? {
        Ok(placed) => placed,
        Err(staged) => {
            moved.push(wanted.clone());
            put_at_a_free_name(staged)?
        }
    };
    let val = match val {
        None => None,
        Some(val) => {
            // Beside the dataset, under the name that goes with the one it took.
            let val = val.renamed(&file_name(&val_path(&main.path)));
            let wanted = val.path().to_path_buf();
            Some(match val.put_in_place_new()? {
                Ok(placed) => placed,
                Err(staged) => {
                    moved.push(wanted);
                    put_at_a_free_name(staged)?
                }
            })
        }
    };
    if moved.is_empty() {
        return Ok((main, val));
    }
    for written in std::iter::once(&main).chain(&val) {
        report(written)?;
    }
    let taken: Vec<String> = moved.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "collect: {} appeared while this collect ran (another process made it; it is left as it is), so the data \
         went to {} instead (--overwrite replaces a file that is there)",
        taken.join(" and "),
        std::iter::once(&main)
            .chain(&val)
            .map(|s| s.path.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    )
}

/// Puts `staged` in place as the first of `STEM-1.npz`, `STEM-2.npz`, ... beside its name that nothing has.
fn put_at_a_free_name(mut staged: StagedCollection) -> anyhow::Result<CollectSummary> {
    let stem = staged
        .path()
        .file_stem()
        .map_or("dataset".into(), |s| s.to_string_lossy().into_owned());
    for n in 1.. {
        staged = match staged
            .renamed(&format!("{stem}-{n}.npz"))
            .put_in_place_new()?
        {
            Ok(placed) => return Ok(placed),
            Err(staged) => staged,
        };
    }
    unreachable!("some name is free")
}

/// The last component of `path`, as text.
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Prints what was written.
fn report(summary: &CollectSummary) -> anyhow::Result<()> {
    if let Some(warning) = summary.left_out_warning() {
        tracing::warn!("{warning}");
    }
    qamlab_headless::stdout_line!(
        "wrote {}: {}, {} transitions ({} rows), {:.1}% of transitions at success, {:.0} env steps/s",
        summary.path.display(),
        super::count(summary.episodes, "episode"),
        summary.transitions,
        summary.rows,
        100.0 * summary.success_fraction,
        summary.env_steps_per_sec
    )
}
