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
    /// Also list its observation and action columns, and the bodies of its qpos and qvel (when the file records
    /// them).
    #[arg(long)]
    pub columns: bool,
    /// Print one JSON object on stdout instead of the text: the counts, success shares and rewards, the source
    /// (with its columns and qpos/qvel bodies), and with --task whether it fits (warnings stay on stderr).
    #[arg(long)]
    pub json: bool,
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
    let stats = Stats::of(&data);
    if !args.json {
        qamlab_headless::console::write_stdout_text(&describe(
            &args.file,
            &data,
            &stats,
            args.columns,
        ))?;
    }
    // The task it is checked against, and what its check notes.
    let fits = match task {
        Some(task) => {
            let spec = qamlab_sim::EnvSpec::of(&task.scene);
            let checked = data
                .check_fits(&args.file, &task.scene, &spec)
                .and_then(|fits| Ok(fits.into_iter().chain(check_trains(&args.file, &data)?)));
            Some((task.name, checked.map(Iterator::collect::<Vec<String>>)))
        }
        None => None,
    };
    if args.json {
        // A misfit is in the object too (a script reads why), and still the command's failure.
        let verdict = fits.as_ref().map(|(task, checked)| {
            (
                task.as_str(),
                checked.as_ref().map_err(|e| format!("{e:#}")),
            )
        });
        qamlab_headless::stdout_line!("{}", to_json(&args.file, &data, &stats, verdict))?;
        return fits.map_or(Ok(()), |(_, checked)| checked.map(|_| ()));
    }
    let fits = fits
        .map(|(task, checked)| checked.map(|notes| (task, notes)))
        .transpose()?;
    match fits {
        Some((task, notes)) if notes.is_empty() => {
            qamlab_headless::stdout_line!("fits task {task}")?
        }
        Some((task, notes)) => qamlab_headless::stdout_line!(
            "fits task {task}, with a warning: {}",
            notes.join("; and ")
        )?,
        None => {}
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

/// The figures `qamlab dataset` shows of a dataset, as text or JSON.
#[derive(Clone, Debug, PartialEq)]
struct Stats {
    /// Transitions whose mask is 0: those that reached success.
    transitions_at_success: usize,
    /// Episodes of which a transition reached success.
    episodes_reaching_success: usize,
    /// The rewards' mean, least and greatest (`None` for an empty dataset).
    rewards: Option<(f64, f32, f32)>,
}

impl Stats {
    fn of(data: &Dataset) -> Self {
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
        Self {
            transitions_at_success: data.transitions_at_success(),
            episodes_reaching_success: reached,
            rewards: (!data.is_empty()).then_some((mean, low, high)),
        }
    }
}

/// `n` as a fraction of `of` (0 where `of` is 0).
fn share(n: usize, of: usize) -> f64 {
    n as f64 / of.max(1) as f64
}

/// The command a dataset's source records, made whole with the file it was read from (see [`describe`]).
fn collect_command(collected_with: &str, file: &std::path::Path) -> String {
    format!(
        "{collected_with} --out {}",
        qamlab_headless::shell::quote_path(file)
    )
}

/// The summary printed for `data`, read from `file`.
fn describe(file: &std::path::Path, data: &Dataset, stats: &Stats, columns: bool) -> String {
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
                "source: task {}{scene}, by qamlab {}: {}\n",
                source.task,
                source.qamlab,
                collect_command(&source.collected_with, file)
            );
            if columns {
                text += &format!("observations: {}\n", source.observations.join(", "));
                text += &format!("actions: {}\n", source.actions.join(", "));
                text += &match &source.state_bodies {
                    Some(bodies) => format!(
                        "qpos: 7 per body (x, y, z, qx, qy, qz, qw), qvel: 6 (linear, then angular velocity; \
                         world frame): {}\n",
                        bodies.join(", ")
                    ),
                    None => "qpos, qvel: bodies not recorded (an older file)\n".to_string(),
                };
            }
        }
        None => {
            text += "source: not recorded (the file comes from another tool, or qamlab before 2026-12-06)\n";
            if columns {
                text += "columns: not recorded\n";
            }
        }
    }
    text += &format!(
        "success: {:.1}% of transitions; {:.0}% of episodes reach it\n",
        100.0 * share(stats.transitions_at_success, data.len()),
        100.0 * share(stats.episodes_reaching_success, data.episodes)
    );
    if stats.transitions_at_success == 0 && !data.is_empty() {
        text +=
            "note: no transition reaches success, so offline training sees no success to value\n";
    }
    if let Some((mean, low, high)) = stats.rewards {
        text += &format!("rewards: mean {mean:.3}, in [{low}, {high}]\n");
    }
    text
}

/// What `qamlab dataset --json` prints: the figures [`describe`] words, unrounded, and `fits`, the task checked
/// with whether the dataset fits it, the notes of its check or why not (`null` without `--task`).
fn to_json(
    file: &std::path::Path,
    data: &Dataset,
    stats: &Stats,
    fits: Option<(&str, Result<&Vec<String>, String>)>,
) -> serde_json::Value {
    let source = data.source.as_ref().map(|source| {
        serde_json::json!({
            "task": source.task,
            "scene": source.scene,
            "qamlab": source.qamlab,
            "collected_with": collect_command(&source.collected_with, file),
            "observations": source.observations,
            "actions": source.actions,
            "state_bodies": source.state_bodies,
        })
    });
    let rewards = stats
        .rewards
        .map(|(mean, low, high)| serde_json::json!({"mean": mean, "min": low, "max": high}));
    serde_json::json!({
        "file": super::absolute_text(file),
        "episodes": data.episodes,
        "transitions": data.len(),
        "obs_dim": data.obs_dim(),
        "action_dim": data.action_dim(),
        "transitions_at_success": stats.transitions_at_success,
        "transition_success_rate": share(stats.transitions_at_success, data.len()),
        "episodes_reaching_success": stats.episodes_reaching_success,
        "episode_success_rate": share(stats.episodes_reaching_success, data.episodes),
        "rewards": rewards,
        "source": source,
        "fits": fits.map(|(task, checked)| match checked {
            Ok(notes) => serde_json::json!({"task": task, "ok": true, "notes": notes, "error": null}),
            Err(error) => serde_json::json!({"task": task, "ok": false, "notes": [], "error": error}),
        }),
    })
}
