//! Reading the runs: each one's config, settings, evaluations and metrics rows, as the chart needs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use qamlab_agent::checkpoint::TensorFile;
use qamlab_headless::plot::Progress;
use qamlab_headless::run_dir::{MetricsRow, RunDir};

use super::grouping::settings;
use super::metric::Metric;

/// One run as read for the chart.
pub(super) struct RunData {
    pub(super) dir: PathBuf,
    pub(super) kind: &'static str,
    pub(super) task: String,
    pub(super) seed: u64,
    pub(super) offline_steps: u64,
    pub(super) online_steps: u64,
    /// The run's settings but its seed, flattened (`inv_temp` → `3.0`): runs with equal ones are one group.
    pub(super) settings: BTreeMap<String, String>,
    /// How a setting reads where it is not as compared (the dataset is compared by its CRC-32, and named).
    pub(super) shown: BTreeMap<String, String>,
    /// The file name of the dataset the run trained on, if any.
    pub(super) dataset: Option<String>,
    /// The CRC-32 of the dataset the run trained on, as its checkpoints record it (`None`: no checkpoint yet, or
    /// one from before it was recorded).
    pub(super) dataset_crc: Option<u32>,
    pub(super) evals: Vec<qamlab_headless::evaluate::EvalPoint>,
    /// `metrics.jsonl`'s rows, read where the metric or the x axis needs them.
    pub(super) rows: Option<Vec<MetricsRow>>,
    /// How far it got where it has not finished; `None` for a finished run.
    pub(super) progress: Option<Progress>,
}

impl RunData {
    /// How the run's setting `key` reads: as shown where it is compared otherwise, `unset` where it has none.
    pub(super) fn shown(&self, key: &str) -> &str {
        self.shown
            .get(key)
            .or_else(|| self.settings.get(key))
            .map_or("unset", String::as_str)
    }
}

/// Refuses a run given twice: it would count as two seeds of itself.
pub(super) fn check_distinct(dirs: &[PathBuf]) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    for dir in dirs {
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        anyhow::ensure!(
            !seen.contains(&canonical),
            "{} is given twice: each run is drawn once",
            dir.display()
        );
        seen.push(canonical);
    }
    Ok(())
}

/// The CRC-32 of the run's dataset as its newest checkpoint that records one does (in its replay file's
/// metadata, where a resume checks the dataset against it): every checkpoint of a run records the same, as a
/// resume refuses a dataset whose contents changed. Only the file's header is read.
fn recorded_dataset_crc(run: &RunDir) -> Option<u32> {
    let (mut complete, _) = run.step_checkpoints();
    complete.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    complete.into_iter().find_map(|(_, dir)| {
        let replay = TensorFile::open(dir.join("replay.safetensors")).ok()?;
        replay.metadata().get("dataset_crc32")?.parse().ok()
    })
}

/// How far a run got that has not finished ([`Progress`]): in progress where a process holds its lock (training,
/// or resumed since it stopped: its summary is then the stop's, not yet rewritten); else as its summary says
/// (`stopped_early`, at its offline updates and online steps); else, with no summary (a process killed outright),
/// stopped at the last step it recorded (`recorded`). `None` for a finished run.
fn progress(run: &RunDir, total: u64, recorded: u64) -> Option<Progress> {
    if run.in_use() {
        return Some(Progress::InProgress {
            step: recorded,
            total,
        });
    }
    // A summary is a few KB: a pipe or a device in its place is read no further than a megabyte.
    let summary =
        qamlab_headless::files::read_stored_text(&run.summary(), "the run's summary", 1 << 20)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    let Some(summary) = summary else {
        return (recorded < total).then_some(Progress::Stopped {
            step: recorded,
            total,
        });
    };
    if summary["stopped_early"] != true {
        return None;
    }
    let steps = |key: &str| summary[key].as_u64();
    // A summary of a stop that a resume went past (the resumed process killed before it wrote its own) says less
    // than the evaluations recorded since.
    let step = match (steps("offline_updates"), steps("online_steps")) {
        (Some(offline), Some(online)) => offline.saturating_add(online).max(recorded),
        _ => recorded,
    };
    Some(Progress::Stopped { step, total })
}

/// Reads a run's config, and its evaluations or metrics as the chart needs them.
pub(super) fn read_run(dir: &Path, metric: &Metric, needs_rows: bool) -> anyhow::Result<RunData> {
    let run = RunDir::new(dir);
    // The curves were drawn already: a scene copy edited since does not change them.
    let cfg = run.read_config_unverified()?;
    let task = qamlab_tasks::load_task(&cfg.task).map_or(cfg.task.clone(), |t| t.name);
    let evals = if matches!(metric, Metric::Logged(_)) {
        Vec::new()
    } else {
        // A run stopped before its first evaluation has no eval.csv yet (it is left out, said).
        if run.evals().exists() {
            run.read_evals()?
        } else {
            Vec::new()
        }
    };
    let rows = if needs_rows {
        let why = match metric {
            Metric::Logged(name) => format!("--metric {name}"),
            Metric::Success | Metric::Return => "--x time".into(),
        };
        Some(
            run.read_metrics()
                .with_context(|| format!("{why} reads each run's metrics.jsonl"))?,
        )
    } else {
        None
    };
    let recorded = evals
        .iter()
        .map(|e| e.step)
        .chain(rows.iter().flatten().map(|r| r.step))
        .max()
        .unwrap_or(0);
    let progress = progress(&run, qamlab_headless::train::total_steps(&cfg), recorded);
    Ok(RunData {
        progress,
        dir: dir.to_path_buf(),
        kind: cfg.agent.kind.as_str(),
        settings: settings(&cfg, &task, &run)?,
        task,
        seed: cfg.seed,
        offline_steps: cfg.offline_steps,
        online_steps: cfg.online_steps,
        shown: BTreeMap::new(),
        dataset: cfg.dataset.as_ref().map(|d| {
            d.file_name()
                .unwrap_or(d.as_os_str())
                .to_string_lossy()
                .into_owned()
        }),
        dataset_crc: cfg
            .dataset
            .as_ref()
            .and_then(|_| recorded_dataset_crc(&run)),
        evals,
        rows,
    })
}
