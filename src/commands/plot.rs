//! `qamlab plot`: several runs on one chart (e.g. QAM against BC): their evaluations' success rate or return, or
//! any value their `metrics.jsonl` records, against training steps or wall-clock time. Runs that differ only in
//! their seed are drawn as one series: their mean, with a band from the least to the greatest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use qamlab_headless::TrainConfig;
use qamlab_headless::plot::{
    Chart, STEPS_DESC, Sample, Series, YScale, draw_chart, mean_over_runs,
};
use qamlab_headless::run_dir::{MetricsRow, RunDir};

/// Flags of `qamlab plot`.
#[derive(clap::Args, Clone, Debug)]
pub struct PlotArgs {
    /// Run directories written by `qamlab train`.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "learning_curves.png")]
    pub out: PathBuf,
    /// Chart title (default: the task's name).
    #[arg(long)]
    pub title: Option<String>,
    /// What to draw: `success` (the evaluations' success rate), `return` (their mean return), or a key of the
    /// runs' metrics.jsonl: critic_loss, flow_loss, adj_loss, actor_loss, total_loss, grad_norm, q_mean, q_min,
    /// q_max, updates_per_second, env_steps_per_second, online_recent_success, ... (losses on a log scale).
    #[arg(long, default_value = "success")]
    pub metric: String,
    /// Across: `steps` (training steps, offline then online) or `time` (wall-clock minutes since the run started,
    /// from metrics.jsonl's wall_seconds).
    #[arg(long, value_enum, default_value_t = XAxis::Steps)]
    pub x: XAxis,
    /// Draw each run alone, instead of runs that differ only in their seed as one mean with a min–max band (runs
    /// group where their configs are equal but for the seed, the device, CUDA graphs, the split update and the log
    /// and checkpoint intervals, with the dataset compared by file name: each seed's demo has its own copy).
    #[arg(long)]
    pub no_group: bool,
    /// Draw each point as the mean of the last N of its run (itself and the N-1 before it): metrics rows are one
    /// batch's values each, so losses jump from row to row (default 1: as recorded).
    #[arg(long, default_value_t = 1, value_parser = super::at_least_one::<usize>)]
    pub smooth: usize,
}

/// What the chart's x axis counts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Training steps: offline gradient steps, then online env steps.
    Steps,
    /// Wall-clock minutes since the run started.
    Time,
}

/// Reads each run's evaluations or metrics and draws them together.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    check_out(&args.out)?;
    let plot = prepare(&args)?;
    for note in &plot.notes {
        eprintln!("note: {note}");
    }
    for warning in &plot.warnings {
        tracing::warn!("{warning}");
    }
    draw_chart(&args.out, &plot.chart)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// A chart ready to draw, and what the reader should know of how it was made.
#[derive(Debug)]
struct Plot {
    chart: Chart,
    /// Where the chart leaves something out (steps some seeds lack, runs without the metric).
    warnings: Vec<String>,
    /// Why runs that look alike were drawn apart.
    notes: Vec<String>,
}

/// What a chart can draw: the evaluations' values, or a key of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq)]
enum Metric {
    /// `eval.csv`'s success rate.
    Success,
    /// `eval.csv`'s mean return.
    Return,
    /// A key of `metrics.jsonl`.
    Logged(String),
}

/// The metrics a chart can draw from `eval.csv`, by the names `--metric` takes.
const EVAL_METRICS: [&str; 2] = ["success", "return"];

impl Metric {
    /// The metric `--metric` names.
    fn parse(name: &str) -> Self {
        match name {
            "success" => Metric::Success,
            "return" => Metric::Return,
            name => Metric::Logged(name.to_string()),
        }
    }

    /// The name `--metric` gives it.
    fn name(&self) -> &str {
        match self {
            Metric::Success => "success",
            Metric::Return => "return",
            Metric::Logged(name) => name,
        }
    }

    /// The y axis' name.
    fn y_desc(&self) -> String {
        match self {
            Metric::Success => "success rate".into(),
            Metric::Return => "mean return (evaluation)".into(),
            Metric::Logged(name) if self.y_scale() == YScale::SymLog => {
                format!("{name} (log scale)")
            }
            Metric::Logged(name) => name.clone(),
        }
    }

    /// Losses and gradient sizes span orders of magnitude over a run (an adjoint loss from 10 to 900): a log
    /// scale shows each stretch of their course. Q values, rates and counts read best as they are.
    fn y_scale(&self) -> YScale {
        match self {
            Metric::Success => YScale::Fraction,
            Metric::Return => YScale::Linear,
            Metric::Logged(name)
                if name.ends_with("_loss")
                    || matches!(name.as_str(), "grad_norm" | "adj_abs_max") =>
            {
                YScale::SymLog
            }
            Metric::Logged(_) => YScale::Linear,
        }
    }
}

/// One run as read for the chart.
struct RunData {
    dir: PathBuf,
    kind: &'static str,
    task: String,
    seed: u64,
    offline_steps: u64,
    /// The run's settings but its seed, flattened (`inv_temp` → `3.0`): runs with equal ones are one group.
    settings: BTreeMap<String, String>,
    evals: Vec<qamlab_headless::plot::EvalPoint>,
    /// `metrics.jsonl`'s rows, read where the metric or the x axis needs them.
    rows: Option<Vec<MetricsRow>>,
}

/// Checks `--out` before any run is read.
fn check_out(out: &Path) -> anyhow::Result<()> {
    let is_png = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    anyhow::ensure!(
        is_png,
        "--out {}: the chart is written as PNG; give a .png file name",
        out.display()
    );
    qamlab_headless::files::check_writable(out, "--out")
}

/// Everything but the drawing: the runs read, grouped, averaged and labelled.
fn prepare(args: &PlotArgs) -> anyhow::Result<Plot> {
    check_distinct(&args.runs)?;
    let metric = Metric::parse(&args.metric);
    let needs_rows = matches!(metric, Metric::Logged(_)) || args.x == XAxis::Time;
    let runs = args
        .runs
        .iter()
        .map(|dir| read_run(dir, &metric, needs_rows))
        .collect::<anyhow::Result<Vec<RunData>>>()?;
    if let Metric::Logged(name) = &metric {
        check_metric_name(name, &runs)?;
    }
    let mut warnings = Vec::new();
    let drawn = drawable(runs, &metric, (args.x, args.smooth), &mut warnings)?;
    let groups = if args.no_group {
        (0..drawn.len()).map(|i| vec![i]).collect()
    } else {
        group_by_settings(&drawn)
    };
    let mut tasks: Vec<String> = Vec::new();
    for d in &drawn {
        if !tasks.contains(&d.run.task) {
            tasks.push(d.run.task.clone());
        }
    }
    let series = series(&drawn, &groups, tasks.len() > 1, &mut warnings)?;
    let notes = if args.no_group {
        Vec::new()
    } else {
        apart_notes(&drawn, &groups)
    };
    let offline: Vec<u64> = drawn.iter().map(|d| d.run.offline_steps).collect();
    let chart = Chart {
        // Runs of several tasks can share a chart; the title then names each task.
        title: args.title.clone().unwrap_or(tasks.join(" / ")),
        x_desc: match args.x {
            XAxis::Steps => STEPS_DESC.into(),
            XAxis::Time => "wall-clock minutes since the run started".into(),
        },
        y_desc: match args.smooth {
            1 => metric.y_desc(),
            n => format!("{}, mean of {n} points", metric.y_desc()),
        },
        y_scale: metric.y_scale(),
        // One mark, where every run goes online at the same step: any other would be wrong for some of them.
        online_from: (args.x == XAxis::Steps && offline.iter().all(|&s| s == offline[0]))
            .then_some(offline[0] as f64),
        series,
    };
    Ok(Plot {
        chart,
        warnings,
        notes,
    })
}

/// A run with the values the chart draws of it.
struct Drawn {
    run: RunData,
    samples: Vec<Sample>,
}

/// The runs with something to draw: a run without the metric (BC has no critic_loss) is left out, said; none
/// at all is an error.
fn drawable(
    runs: Vec<RunData>,
    metric: &Metric,
    (x, window): (XAxis, usize),
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<Drawn>> {
    let mut drawn = Vec::new();
    for run in runs {
        let (mut samples, mut said) = samples(&run, metric, x)?;
        smooth(&mut samples, window);
        warnings.append(&mut said);
        if samples.is_empty() {
            let lacks = match metric {
                Metric::Success | Metric::Return => "has no evaluation yet".to_string(),
                Metric::Logged(name) => format!("records no {name}"),
            };
            warnings.push(format!("{} {lacks}: left out", run.dir.display()));
        } else {
            drawn.push(Drawn { run, samples });
        }
    }
    if drawn.is_empty() {
        // Each run's reason, where each was left out for one.
        let reasons: Vec<&str> = warnings
            .iter()
            .filter_map(|w| w.strip_suffix(": left out"))
            .collect();
        anyhow::ensure!(
            reasons.is_empty(),
            "nothing to plot: {}",
            reasons.join("; ")
        );
        anyhow::bail!(
            "no run records {} at a step it can be drawn at",
            metric.name()
        );
    }
    Ok(drawn)
}

/// One series per group: its runs' mean (a run alone as it is), labelled; a group whose runs' steps differ is
/// drawn at the steps they share, said.
fn series(
    drawn: &[Drawn],
    groups: &[Vec<usize>],
    several_tasks: bool,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<Series>> {
    let labels = series_labels(drawn, groups, several_tasks);
    let mut series = Vec::new();
    for (group, label) in groups.iter().zip(labels) {
        let samples: Vec<Vec<Sample>> = group.iter().map(|&i| drawn[i].samples.clone()).collect();
        let merged = mean_over_runs(&samples);
        if let Some(warning) = left_out_warning(&label, group, &merged.left_out, drawn) {
            warnings.push(warning);
        }
        anyhow::ensure!(
            !merged.points.is_empty(),
            "{label}: its runs ({}) share no step to average over; draw them apart with --no-group",
            group_dirs(group, drawn)
        );
        series.push(Series {
            label,
            points: merged.points,
        });
    }
    Ok(series)
}

/// Refuses a run given twice: it would count as two seeds of itself.
fn check_distinct(dirs: &[PathBuf]) -> anyhow::Result<()> {
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
fn read_run(dir: &Path, metric: &Metric, needs_rows: bool) -> anyhow::Result<RunData> {
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

/// The run's configuration but its seed, flattened to `key → value` (the `[agent]` keys by their own names): what
/// must be equal for runs to be seeds of one experiment. The task is its name (a scene-file run's path is its own
/// copy's), with a hash of the copy, so that runs of an edited scene stay apart.
fn settings(
    cfg: &TrainConfig,
    task: &str,
    run: &RunDir,
) -> anyhow::Result<BTreeMap<String, String>> {
    let value = serde_json::to_value(cfg).context("reading the run's configuration")?;
    let mut flat = BTreeMap::new();
    let show = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    if let serde_json::Value::Object(fields) = value {
        for (key, v) in &fields {
            match v {
                serde_json::Value::Object(agent) => {
                    for (k, v) in agent {
                        flat.insert(k.clone(), show(v));
                    }
                }
                _ => {
                    flat.insert(key.clone(), show(v));
                }
            }
        }
    }
    // Runs of one experiment: the seed, where the work ran and how often it was recorded may differ.
    for bookkeeping in [
        "seed",
        "device",
        "cuda_graphs",
        "split_update",
        "log_interval",
        "checkpoint_interval",
    ] {
        flat.remove(bookkeeping);
    }
    // Each seed's run may collect its own copy of the dataset (the demo does, in its --out): the file's name says
    // which data it is.
    if let Some(dataset) = &cfg.dataset {
        let name = dataset.file_name().unwrap_or(dataset.as_os_str());
        flat.insert("dataset".into(), name.to_string_lossy().into_owned());
    }
    flat.insert("task".into(), task.to_string());
    if let Ok(scene) = std::fs::read(run.task_scene()) {
        // Only equality matters, within this process: std's hasher does.
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&scene, &mut hasher);
        flat.insert(
            "task_scene".into(),
            format!("{:016x}", std::hash::Hasher::finish(&hasher)),
        );
    }
    Ok(flat)
}

/// An unknown metric is an error naming the ones the runs record, and the one likely meant.
fn check_metric_name(name: &str, runs: &[RunData]) -> anyhow::Result<()> {
    let mut logged: Vec<&str> = runs
        .iter()
        .flat_map(|run| run.rows.iter().flatten())
        .flat_map(|row| row.values.keys().map(String::as_str))
        .collect();
    logged.sort_unstable();
    logged.dedup();
    if logged.contains(&name) {
        return Ok(());
    }
    let known = EVAL_METRICS.iter().copied().chain(logged.iter().copied());
    let guess = qamlab_sim::scene::closest_name(name, known)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default();
    let recorded = if logged.is_empty() {
        "none: their metrics.jsonl hold no rows yet".to_string()
    } else {
        logged.join(", ")
    };
    bail!(
        "--metric {name}: no run records it{guess}. Expected success or return (eval.csv), or a key of the runs' \
         metrics.jsonl: {recorded}"
    )
}

/// A run's values of `metric`, each at its step and where it is drawn across; and what could not be drawn.
fn samples(run: &RunData, metric: &Metric, x: XAxis) -> anyhow::Result<(Vec<Sample>, Vec<String>)> {
    let values: Vec<(u64, f64)> = match metric {
        Metric::Success => run.evals.iter().map(|e| (e.step, e.success_rate)).collect(),
        Metric::Return => run.evals.iter().map(|e| (e.step, e.mean_return)).collect(),
        Metric::Logged(name) => run
            .rows
            .iter()
            .flatten()
            .filter_map(|row| Some((row.step, *row.values.get(name)?)))
            .filter(|(_, v)| v.is_finite())
            .collect(),
    };
    match x {
        XAxis::Steps => Ok((
            values
                .into_iter()
                .map(|(step, y)| Sample {
                    step,
                    x: step as f64,
                    y,
                })
                .collect(),
            Vec::new(),
        )),
        XAxis::Time => timed(run, values),
    }
}

/// Each sample's value as the mean of the last `window` of them (itself and those before it, fewer at the start):
/// a trailing mean, so that no point shows what its run had not yet reached.
fn smooth(samples: &mut [Sample], window: usize) {
    if window <= 1 {
        return;
    }
    let values: Vec<f64> = samples.iter().map(|s| s.y).collect();
    for (i, sample) in samples.iter_mut().enumerate() {
        let recent = &values[(i + 1).saturating_sub(window)..=i];
        sample.y = recent.iter().sum::<f64>() / recent.len() as f64;
    }
}

/// `values` placed at the run's wall-clock minutes; a value past the run's last metrics row (an evaluation of a
/// run still being written) has no time yet and is left out, said.
fn timed(run: &RunData, values: Vec<(u64, f64)>) -> anyhow::Result<(Vec<Sample>, Vec<String>)> {
    let clock = wall_clock(run)?;
    let mut samples = Vec::new();
    let mut late = Vec::new();
    for (step, y) in values {
        match minutes_at(&clock, step) {
            Some(x) => samples.push(Sample { step, x, y }),
            None => late.push(step),
        }
    }
    let said = (!late.is_empty())
        .then(|| {
            format!(
                "{}: no time is recorded yet for step{} {} (past metrics.jsonl's last row): left out",
                run.dir.display(),
                if late.len() > 1 { "s" } else { "" },
                list_steps(&late)
            )
        })
        .into_iter()
        .collect();
    Ok((samples, said))
}

/// The run's wall-clock seconds at each metrics row (`wall_seconds`, which counts a resumed run's earlier time).
fn wall_clock(run: &RunData) -> anyhow::Result<Vec<(u64, f64)>> {
    let path = RunDir::new(&run.dir).metrics();
    let rows = run.rows.as_deref().unwrap_or_default();
    anyhow::ensure!(
        !rows.is_empty(),
        "--x time: {} holds no rows yet, so the run's wall-clock time is unknown (each row records its \
         wall_seconds); draw it with --x steps",
        path.display()
    );
    rows.iter()
        .map(|row| match row.values.get("wall_seconds") {
            Some(&s) if s.is_finite() && s >= 0.0 => Ok((row.step, s)),
            _ => bail!(
                "--x time: {}: the row of step {} has no wall_seconds (seconds since the run started, as a \
                 number), so its time is unknown; draw the run with --x steps",
                path.display(),
                row.step
            ),
        })
        .collect()
}

/// Minutes since the run started at `step`: between two rows, as far along in time as in steps (the run starts
/// at step 0, second 0); `None` past the last row.
fn minutes_at(clock: &[(u64, f64)], step: u64) -> Option<f64> {
    let mut before = (0u64, 0.0f64);
    for &(s, seconds) in clock {
        if s >= step {
            let t = if s == before.0 {
                1.0
            } else {
                (step - before.0) as f64 / (s - before.0) as f64
            };
            return Some((before.1 + t * (seconds - before.1)) / 60.0);
        }
        before = (s, seconds);
    }
    None
}

/// The runs in groups of equal settings (all but the seed), in the order each group's first run was given.
fn group_by_settings(drawn: &[Drawn]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&BTreeMap<String, String>, Vec<usize>)> = Vec::new();
    for (i, d) in drawn.iter().enumerate() {
        let settings = &d.run.settings;
        match groups.iter_mut().find(|(s, _)| *s == settings) {
            Some((_, members)) => members.push(i),
            None => groups.push((settings, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Each series' legend text: a run alone as before (agent and folder); a group as its agent, how many seeds and
/// what is drawn (`qam (3 seeds, mean, band min–max)`), with the settings in which it differs from another group
/// of its agent (`qam inv_temp 1 (...)`).
fn series_labels(drawn: &[Drawn], groups: &[Vec<usize>], several_tasks: bool) -> Vec<String> {
    let alone: Vec<Curve> = groups
        .iter()
        .filter(|g| g.len() == 1)
        .map(|g| {
            let run = &drawn[g[0]].run;
            Curve {
                kind: run.kind,
                dir: run.dir.clone(),
                task: run.task.clone(),
            }
        })
        .collect();
    let mut alone_labels = labels(&alone, several_tasks).into_iter();
    groups
        .iter()
        .map(|group| {
            if group.len() == 1 {
                return alone_labels.next().unwrap_or_default();
            }
            let first = &drawn[group[0]].run;
            let differs = differing_settings(drawn, groups, group);
            let name = if differs.is_empty() {
                first.kind.to_string()
            } else {
                format!("{} {differs}", first.kind)
            };
            let mut seeds: Vec<u64> = group.iter().map(|&i| drawn[i].run.seed).collect();
            seeds.sort_unstable();
            seeds.dedup();
            // Two runs of one seed are repeats, not seeds.
            let count = if seeds.len() == group.len() {
                format!("{} seeds", group.len())
            } else {
                format!("{} runs", group.len())
            };
            let task = if several_tasks {
                format!("{}, ", first.task)
            } else {
                String::new()
            };
            format!("{name} ({task}{count}, mean, band min–max)")
        })
        .collect()
}

/// The settings in which `group` differs from the other groups of its agent and task (`inv_temp 1, lr 0.001`),
/// at most three; empty where no other group shares its agent and task.
fn differing_settings(drawn: &[Drawn], groups: &[Vec<usize>], group: &[usize]) -> String {
    let ours = &drawn[group[0]].run;
    let mut keys: Vec<&String> = Vec::new();
    for other in groups.iter().filter(|g| g[0] != group[0] && g.len() > 1) {
        let theirs = &drawn[other[0]].run;
        if theirs.kind != ours.kind || theirs.task != ours.task {
            continue;
        }
        for (key, _, _) in differences(&ours.settings, &theirs.settings) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let mut shown: Vec<String> = keys
        .iter()
        .take(3)
        .map(|k| {
            let value = ours.settings.get(*k).map_or("unset", String::as_str);
            format!("{k} {value}")
        })
        .collect();
    if keys.len() > 3 {
        shown.push("...".into());
    }
    shown.join(", ")
}

/// The warning for a group whose runs were evaluated (or logged) at different steps: which steps the mean
/// leaves out, run by run.
fn left_out_warning(
    label: &str,
    group: &[usize],
    left_out: &[Vec<u64>],
    drawn: &[Drawn],
) -> Option<String> {
    let which: Vec<String> = group
        .iter()
        .zip(left_out)
        .filter(|(_, steps)| !steps.is_empty())
        .map(|(&i, steps)| format!("{} at {}", drawn[i].run.dir.display(), list_steps(steps)))
        .collect();
    if which.is_empty() {
        return None;
    }
    Some(format!(
        "{label}: the runs' steps differ, so the mean uses only the steps all {} share; left out: {}",
        group.len(),
        which.join("; ")
    ))
}

/// Steps as a short list: `45000, 50000` or `5000, 10000, 15000 and 7 more`.
fn list_steps(steps: &[u64]) -> String {
    let shown: Vec<String> = steps.iter().take(3).map(u64::to_string).collect();
    match steps.len() {
        n if n > 3 => format!("{} and {} more", shown.join(", "), n - 3),
        _ => shown.join(", "),
    }
}

/// The folders of a group's runs, comma-separated.
fn group_dirs(group: &[usize], drawn: &[Drawn]) -> String {
    group
        .iter()
        .map(|&i| drawn[i].run.dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// For a run drawn alone beside another of its agent and task: why they were not one group (their settings
/// differ, and in what), since a reader comparing seeds would expect one.
fn apart_notes(drawn: &[Drawn], groups: &[Vec<usize>]) -> Vec<String> {
    let mut notes = Vec::new();
    for group in groups.iter().filter(|g| g.len() == 1) {
        let run = &drawn[group[0]].run;
        let Some(other) = groups
            .iter()
            .filter(|g| g[0] != group[0])
            .map(|g| &drawn[g[0]].run)
            .find(|o| o.kind == run.kind && o.task == run.task)
        else {
            continue;
        };
        let differ: Vec<String> = differences(&run.settings, &other.settings)
            .into_iter()
            .map(|(key, ours, theirs)| format!("{key} {ours} vs {theirs}"))
            .collect();
        notes.push(format!(
            "{} is drawn apart from {}: runs are grouped when only their seed differs, and these differ in {}",
            run.dir.display(),
            other.dir.display(),
            differ.join(", ")
        ));
    }
    notes
}

/// The settings in which two runs differ: key, `a`'s value and `b`'s (`unset` where one lacks the key).
fn differences<'a>(
    a: &'a BTreeMap<String, String>,
    b: &'a BTreeMap<String, String>,
) -> Vec<(&'a String, &'a str, &'a str)> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let value =
        |m: &'a BTreeMap<String, String>, k: &String| m.get(k).map_or("unset", String::as_str);
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k, value(a, k), value(b, k)))
        .collect()
}

/// One run's curve and what its label is made of.
struct Curve {
    kind: &'static str,
    dir: PathBuf,
    task: String,
}

/// Each run's agent and folder name; the path as given where two folders share a name (every demo's run is
/// `qam-cpu`), and the task where the chart holds several.
fn labels(runs: &[Curve], several_tasks: bool) -> Vec<String> {
    let name = |dir: &PathBuf| {
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run")
            .to_string()
    };
    runs.iter()
        .map(|run| {
            let shared = runs
                .iter()
                .filter(|r| name(&r.dir) == name(&run.dir))
                .count()
                > 1;
            let which = if shared {
                run.dir.display().to_string()
            } else {
                name(&run.dir)
            };
            if several_tasks {
                format!("{} ({which}, {})", run.kind, run.task)
            } else {
                format!("{} ({which})", run.kind)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use qamlab_agent::AgentKind;
    use qamlab_headless::plot::{EvalPoint, SeriesPoint};

    /// A run directory as `train` leaves it, with the given evaluations (step, success rate; the return is
    /// -100 times the rate) and metrics rows.
    fn fake_run(
        root: &Path,
        name: &str,
        cfg: &TrainConfig,
        evals: &[(u64, f64)],
        rows: &[serde_json::Value],
    ) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(&dir);
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        let evals: Vec<EvalPoint> = evals
            .iter()
            .map(|&(step, rate)| EvalPoint {
                step,
                phase: "offline".into(),
                success_rate: rate,
                mean_return: -100.0 * rate,
                episodes: 10,
            })
            .collect();
        run.write_evals(&evals).unwrap();
        for row in rows {
            run.append_metrics(row).unwrap();
        }
        dir
    }

    /// `fake_run` of a run with `config(kind, seed)`.
    fn fake_run_of(
        root: &Path,
        name: &str,
        kind: AgentKind,
        seed: u64,
        evals: &[(u64, f64)],
        rows: &[serde_json::Value],
    ) -> PathBuf {
        fake_run(root, name, &config(kind, seed), evals, rows)
    }

    fn config(kind: AgentKind, seed: u64) -> TrainConfig {
        let mut cfg = TrainConfig {
            dataset: Some("/data/cube-single-play.npz".into()),
            offline_steps: 200,
            seed,
            ..TrainConfig::default()
        };
        cfg.agent.kind = kind;
        cfg
    }

    fn args(runs: &[&PathBuf]) -> PlotArgs {
        PlotArgs {
            runs: runs.iter().map(|r| r.to_path_buf()).collect(),
            out: "unused.png".into(),
            title: None,
            metric: "success".into(),
            x: XAxis::Steps,
            no_group: false,
            smooth: 1,
        }
    }

    /// `args` plotting `metric`.
    fn metric_args(metric: &str, runs: &[&PathBuf]) -> PlotArgs {
        PlotArgs {
            metric: metric.into(),
            ..args(runs)
        }
    }

    /// `args` over wall-clock time.
    fn time_args(runs: &[&PathBuf]) -> PlotArgs {
        PlotArgs {
            x: XAxis::Time,
            ..args(runs)
        }
    }

    /// A point as x, y and band.
    type Point = (f64, f64, Option<(f64, f64)>);

    fn points(series: &Series) -> Vec<Point> {
        series.points.iter().map(|p| (p.x, p.y, p.band)).collect()
    }

    fn row(step: u64, wall_seconds: f64, critic_loss: f64) -> serde_json::Value {
        serde_json::json!({"step": step, "phase": "offline", "wall_seconds": wall_seconds,
                           "critic_loss": critic_loss, "q_mean": -critic_loss})
    }

    #[test]
    fn seeds_of_one_configuration_are_one_series_their_mean_and_band() {
        let dir = tempfile::tempdir().unwrap();
        let qam = |seed, evals: &[(u64, f64)]| {
            let name = format!("qam-s{seed}");
            fake_run_of(dir.path(), &name, AgentKind::Qam, seed, evals, &[])
        };
        let s0 = qam(0, &[(100, 0.0), (200, 0.5), (300, 1.0)]);
        // Its own copy of the dataset (as each demo collects one) and other bookkeeping: the same experiment.
        let s1 = {
            let mut cfg = config(AgentKind::Qam, 1);
            cfg.dataset = Some("/elsewhere/s1/cube-single-play.npz".into());
            cfg.log_interval *= 2;
            cfg.checkpoint_interval += 1;
            let evals = [(100, 0.25), (200, 0.25), (300, 0.5)];
            fake_run(dir.path(), "qam-s1", &cfg, &evals, &[])
        };
        // Still running: one evaluation fewer; and one past the others.
        let s2 = qam(2, &[(100, 0.5), (200, 0.75)]);
        let s3 = qam(3, &[(100, 0.25), (200, 0.5), (300, 0.75), (400, 1.0)]);
        let bc = fake_run_of(dir.path(), "bc", AgentKind::Bc, 0, &[(100, 0.0)], &[]);
        let plot = prepare(&args(&[&s0, &s1, &bc, &s2, &s3])).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["qam (4 seeds, mean, band min–max)", "bc (bc)"]);
        // Only the steps all four share: 100 and 200.
        assert_eq!(
            points(&plot.chart.series[0]),
            [
                (100.0, 0.25, Some((0.0, 0.5))),
                (200.0, 0.5, Some((0.25, 0.75)))
            ]
        );
        assert_eq!(points(&plot.chart.series[1]), [(100.0, 0.0, None)]);
        let [warning] = plot.warnings.as_slice() else {
            panic!("{:?}", plot.warnings)
        };
        assert!(
            warning.contains("the mean uses only the steps all 4 share")
                && warning.contains(&format!("{} at 300;", s0.display()))
                && warning.contains(&format!("{} at 300, 400", s3.display()))
                && !warning.contains(&s2.display().to_string()),
            "{warning}"
        );
        // Every run goes online at step 200: one mark there.
        assert_eq!(plot.chart.online_from, Some(200.0));
        // --no-group: each run alone, as before.
        let plot = prepare(&PlotArgs {
            no_group: true,
            ..args(&[&s0, &s1, &bc])
        })
        .unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["qam (qam-s0)", "qam (qam-s1)", "bc (bc)"]);
        assert_eq!(
            plot.chart.series[1].points[2],
            SeriesPoint {
                x: 300.0,
                y: 0.5,
                band: None
            }
        );
        assert!(plot.warnings.is_empty() && plot.notes.is_empty());
    }

    #[test]
    fn runs_whose_settings_differ_are_apart_and_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let with_lr = |lr, seed| {
            let mut cfg = config(AgentKind::Qam, seed);
            cfg.agent.lr = lr;
            fake_run(
                dir.path(),
                &format!("lr{lr}-s{seed}"),
                &cfg,
                &[(100, 0.5)],
                &[],
            )
        };
        let runs = [
            with_lr(0.001, 0),
            with_lr(0.0003, 0),
            with_lr(0.001, 1),
            with_lr(0.0003, 1),
        ];
        let plot = prepare(&args(&runs.iter().collect::<Vec<_>>())).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "qam lr 0.001 (2 seeds, mean, band min–max)",
                "qam lr 0.0003 (2 seeds, mean, band min–max)"
            ]
        );
        // Two runs that differ in more than their seed, each alone: the note says in what.
        let other = {
            let mut cfg = config(AgentKind::Qam, 1);
            cfg.dataset = Some("/data/other.npz".into());
            fake_run(dir.path(), "other", &cfg, &[(100, 0.5)], &[])
        };
        let plot = prepare(&args(&[&runs[0], &other])).unwrap();
        assert_eq!(plot.chart.series.len(), 2);
        assert!(
            plot.notes[0].contains("lr0.001-s0 is drawn apart from")
                && plot.notes[0].contains("dataset cube-single-play.npz vs other.npz")
                && plot.notes[0].contains("lr 0.001 vs 0.0003"),
            "{:?}",
            plot.notes
        );
        // Runs going online at different steps: no mark would be right for all.
        let late = {
            let mut cfg = config(AgentKind::Qam, 2);
            cfg.offline_steps = 300;
            fake_run(dir.path(), "late", &cfg, &[(100, 0.5)], &[])
        };
        let plot = prepare(&args(&[&runs[0], &late])).unwrap();
        assert_eq!(plot.chart.online_from, None);
    }

    #[test]
    fn metrics_come_from_metrics_jsonl_losses_on_a_log_scale() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |k: f64| [row(100, 10.0, 1.0 * k), row(200, 20.0, 100.0 * k)];
        let s0 = fake_run_of(dir.path(), "s0", AgentKind::Qam, 0, &[], &rows(1.0));
        let s1 = fake_run_of(dir.path(), "s1", AgentKind::Qam, 1, &[], &rows(3.0));
        // BC trains no critic: its rows have no critic_loss.
        let bc = fake_run_of(
            dir.path(),
            "bc",
            AgentKind::Bc,
            0,
            &[],
            &[serde_json::json!({"step": 100, "flow_loss": 0.5, "wall_seconds": 1.0})],
        );
        let plot = prepare(&metric_args("critic_loss", &[&s0, &s1, &bc])).unwrap();
        assert_eq!(plot.chart.y_scale, YScale::SymLog);
        assert_eq!(plot.chart.y_desc, "critic_loss (log scale)");
        assert_eq!(
            points(&plot.chart.series[0]),
            [
                (100.0, 2.0, Some((1.0, 3.0))),
                (200.0, 200.0, Some((100.0, 300.0)))
            ]
        );
        assert_eq!(plot.chart.series.len(), 1);
        assert_eq!(
            plot.warnings,
            [format!("{} records no critic_loss: left out", bc.display())]
        );
        // --smooth 2: each run's trailing mean (1, then 50.5; 3, then 151.5), then the seeds' mean and band.
        let plot = prepare(&PlotArgs {
            smooth: 2,
            ..metric_args("critic_loss", &[&s0, &s1])
        })
        .unwrap();
        assert_eq!(
            plot.chart.y_desc,
            "critic_loss (log scale), mean of 2 points"
        );
        assert_eq!(
            points(&plot.chart.series[0]),
            [
                (100.0, 2.0, Some((1.0, 3.0))),
                (200.0, 101.0, Some((50.5, 151.5)))
            ]
        );
        // Q values are drawn as they are.
        let plot = prepare(&metric_args("q_mean", &[&s0])).unwrap();
        assert_eq!(plot.chart.y_scale, YScale::Linear);
        assert_eq!(points(&plot.chart.series[0])[1], (200.0, -100.0, None));
        // `return` is the evaluations' mean return.
        let evaluated = fake_run_of(dir.path(), "ev", AgentKind::Qam, 5, &[(100, 0.5)], &[]);
        let plot = prepare(&metric_args("return", &[&evaluated])).unwrap();
        assert_eq!(points(&plot.chart.series[0]), [(100.0, -50.0, None)]);
        assert_eq!(plot.chart.y_scale, YScale::Linear);
    }

    #[test]
    fn a_run_without_an_evaluation_yet_is_left_out_said() {
        let dir = tempfile::tempdir().unwrap();
        let done = fake_run_of(dir.path(), "done", AgentKind::Qam, 0, &[(100, 0.5)], &[]);
        let young = fake_run_of(dir.path(), "young", AgentKind::Bc, 0, &[], &[]);
        let plot = prepare(&args(&[&done, &young])).unwrap();
        assert_eq!(plot.chart.series.len(), 1);
        assert_eq!(
            plot.warnings,
            [format!(
                "{} has no evaluation yet: left out",
                young.display()
            )]
        );
        let err = prepare(&args(&[&young])).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("nothing to plot: {} has no evaluation yet", young.display())
        );
    }

    #[test]
    fn an_unknown_metric_names_those_recorded_and_the_one_likely_meant() {
        let dir = tempfile::tempdir().unwrap();
        let run = fake_run_of(
            dir.path(),
            "s0",
            AgentKind::Qam,
            0,
            &[],
            &[row(100, 10.0, 1.0)],
        );
        let err =
            |metric: &str| format!("{:#}", prepare(&metric_args(metric, &[&run])).unwrap_err());
        let typo = err("critic_los");
        assert!(
            typo.contains("--metric critic_los: no run records it (did you mean critic_loss?)")
                && typo.contains("success or return (eval.csv)")
                && typo.contains("metrics.jsonl: critic_loss, q_mean, wall_seconds"),
            "{typo}"
        );
        assert!(err("sucess").contains("did you mean success?"));
        let far = err("entropy");
        assert!(
            !far.contains("did you mean") && far.contains("critic_loss"),
            "{far}"
        );
    }

    #[test]
    fn wall_clock_time_comes_from_the_metrics_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [row(100, 60.0, 1.0), row(300, 180.0, 1.0)];
        // Evaluations between rows take the time in proportion; one past the last row has none yet.
        let run = fake_run_of(
            dir.path(),
            "s0",
            AgentKind::Qam,
            0,
            &[(50, 0.0), (200, 0.5), (300, 1.0), (400, 1.0)],
            &rows,
        );
        let plot = prepare(&time_args(&[&run])).unwrap();
        assert_eq!(
            points(&plot.chart.series[0]),
            [(0.5, 0.0, None), (2.0, 0.5, None), (3.0, 1.0, None)]
        );
        assert_eq!(
            plot.chart.x_desc,
            "wall-clock minutes since the run started"
        );
        assert_eq!(plot.chart.online_from, None);
        assert!(
            plot.warnings[0].contains("no time is recorded yet for step 400"),
            "{:?}",
            plot.warnings
        );
        // Rows without their time, or no rows at all: said, naming the file, not drawn at some other time.
        let untimed = fake_run_of(
            dir.path(),
            "untimed",
            AgentKind::Qam,
            1,
            &[(100, 0.5)],
            &[serde_json::json!({"step": 100, "critic_loss": 1.0})],
        );
        let err = format!("{:#}", prepare(&time_args(&[&untimed])).unwrap_err());
        assert!(
            err.contains("--x time: ")
                && err.contains("untimed/metrics.jsonl: the row of step 100 has no wall_seconds"),
            "{err}"
        );
        std::fs::remove_file(untimed.join("metrics.jsonl")).unwrap();
        let err = format!("{:#}", prepare(&time_args(&[&untimed])).unwrap_err());
        assert!(err.contains("untimed/metrics.jsonl"), "{err}");
    }

    #[test]
    fn minutes_between_rows_are_in_proportion_to_steps() {
        let clock = [(100, 60.0), (300, 180.0)];
        assert_eq!(minutes_at(&clock, 0), Some(0.0));
        assert_eq!(minutes_at(&clock, 100), Some(1.0));
        assert_eq!(minutes_at(&clock, 200), Some(2.0));
        assert_eq!(minutes_at(&clock, 301), None);
    }

    #[test]
    fn labels_tell_runs_apart() {
        let curve = |kind, dir: &str, task: &str| Curve {
            kind,
            dir: dir.into(),
            task: task.into(),
        };
        let runs = [
            curve("qam", "runs/demo/qam-cpu", "cube-single"),
            curve("qam", "old/demo/qam-cpu", "cube-single"),
            curve("bc", "runs/bc", "cube-single"),
        ];
        assert_eq!(
            labels(&runs, false),
            [
                "qam (runs/demo/qam-cpu)",
                "qam (old/demo/qam-cpu)",
                "bc (bc)"
            ]
        );
        let runs = [
            curve("qam", "runs/a", "cube-single"),
            curve("qam", "runs/b", "cube-double"),
        ];
        assert_eq!(
            labels(&runs, true),
            ["qam (a, cube-single)", "qam (b, cube-double)"]
        );
    }
}
