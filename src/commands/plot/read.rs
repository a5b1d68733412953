//! Reading the runs: each one's config, settings, evaluations and metrics rows, as the chart needs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
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
    /// The run's settings but its seed, flattened (`inv_temp` → `3.0`): runs with equal ones are one group.
    pub(super) settings: BTreeMap<String, String>,
    pub(super) evals: Vec<qamlab_headless::evaluate::EvalPoint>,
    /// `metrics.jsonl`'s rows, read where the metric or the x axis needs them.
    pub(super) rows: Option<Vec<MetricsRow>>,
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
    Ok(RunData {
        dir: dir.to_path_buf(),
        kind: cfg.agent.kind.as_str(),
        settings: settings(&cfg, &task, &run)?,
        task,
        seed: cfg.seed,
        offline_steps: cfg.offline_steps,
        evals,
        rows,
    })
}
