//! `qamlab dataset`: what a dataset file holds, where it came from, and whether it fits a task.

use std::path::PathBuf;

use qamlab_headless::dataset::{Dataset, load_dataset};

/// Flags of `qamlab dataset`.
#[derive(clap::Args, Clone, Debug)]
pub struct DatasetArgs {
    /// The dataset (npz in OGBench's layout plus `rewards` and `masks`, as `qamlab collect` writes it).
    pub file: PathBuf,
    /// Also check that it fits this task (built-in name or scene file), as `qamlab train` would.
    #[arg(long, value_parser = super::task_arg())]
    pub task: Option<String>,
    /// Also list its observation and action columns (when the file records them).
    #[arg(long)]
    pub columns: bool,
}

/// Runs `qamlab dataset`.
pub fn run(args: DatasetArgs) -> anyhow::Result<()> {
    let data = load_dataset(&args.file)?;
    // Loaded before anything is printed: a misspelt task is the one thing to say then.
    let task = args
        .task
        .as_deref()
        .map(qamlab_tasks::load_task)
        .transpose()?;
    for warning in &data.warnings {
        tracing::warn!("{warning}");
    }
    print!("{}", describe(&args.file, &data, args.columns));
    if let Some(task) = task {
        let spec = qamlab_sim::EnvSpec::of(&task.scene);
        let fits = data.check_fits(&args.file, &task.scene, &spec)?;
        let notes: Vec<String> = fits
            .into_iter()
            .chain(check_trains(&args.file, &data)?)
            .collect();
        if notes.is_empty() {
            println!("fits task {}", task.name);
        } else {
            println!(
                "fits task {}, with a warning: {}",
                task.name,
                notes.join("; and ")
            );
        }
    }
    Ok(())
}

/// Checks the dataset as `qamlab train` would, beyond its columns: too short for any action chunk is an error
/// (what train says); shorter than one of the default horizon_length, a note (a config's may be shorter), as is
/// a dataset of which most chunks run past their episode's end.
fn check_trains(file: &std::path::Path, data: &Dataset) -> anyhow::Result<Option<String>> {
    let horizon = qamlab_agent::AgentConfig::default().horizon_length;
    let Err(short) = data.check_holds_a_chunk(file, horizon) else {
        return Ok(data.few_whole_chunks(file, horizon));
    };
    anyhow::ensure!(
        !data.is_empty(),
        "{short}: `qamlab train` refuses it, whatever its horizon_length"
    );
    Ok(Some(format!(
        "{short}: `qamlab train` refuses it unless [agent] horizon_length is at most {} ({horizon} by default)",
        data.longest_episode()
    )))
}

/// The summary printed for `data`, read from `file`.
fn describe(file: &std::path::Path, data: &Dataset, columns: bool) -> String {
    let mut text = format!(
        "{}: {}, {}, {}-D observations, {}-D actions\n",
        file.display(),
        super::count(data.episodes, "episode"),
        super::count(data.len(), "transition"),
        data.obs_dim(),
        data.action_dim()
    );
    match &data.source {
        Some(source) => {
            let scene = source
                .scene
                .as_ref()
                .map(|s| format!(" (scene {s})"))
                .unwrap_or_default();
            // The file records the command without `--out` (the rows do not depend on it): this file's name
            // makes it whole.
            text += &format!(
                "source: task {}{scene}, by qamlab {}: {} --out {}\n",
                source.task,
                source.qamlab,
                source.collected_with,
                file.display()
            );
            if columns {
                text += &format!("observations: {}\n", source.observations.join(", "));
                text += &format!("actions: {}\n", source.actions.join(", "));
            }
        }
        None => {
            text += "source: not recorded (the file comes from another tool, or qamlab before 2026-12-06)\n";
            if columns {
                text += "columns: not recorded\n";
            }
        }
    }
    // Masks are 0 where a transition reached success; terminals end each episode.
    let transitions = &data.transitions;
    let (mut reached, mut episode_reached) = (0, false);
    for (&mask, &terminal) in transitions.masks.iter().zip(&transitions.terminals) {
        episode_reached |= mask == 0.0;
        if terminal == 1.0 {
            reached += usize::from(episode_reached);
            episode_reached = false;
        }
    }
    let at_success = data.transitions_at_success();
    let share = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    text += &format!(
        "success: {:.1}% of transitions; {:.0}% of episodes reach it\n",
        share(at_success, data.len()),
        share(reached, data.episodes)
    );
    if at_success == 0 && !data.is_empty() {
        text +=
            "note: no transition reaches success, so offline training sees no success to value\n";
    }
    let (low, high) = transitions
        .rewards
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    let mean = transitions
        .rewards
        .iter()
        .map(|&r| f64::from(r))
        .sum::<f64>()
        / data.len().max(1) as f64;
    if !data.is_empty() {
        text += &format!("rewards: mean {mean:.3}, in [{low}, {high}]\n");
    }
    text
}
