//! `qamlab plot`: several runs on one chart (e.g. QAM against BC): their evaluations' success rate or return, or
//! any value their `metrics.jsonl` records, against training steps or wall-clock time. Runs that differ only in
//! their seed are drawn as one series: their mean, with a band from the least to the greatest (or the mean ± its
//! standard error, `--band sem`).

mod grouping;
mod labels;
mod metric;
mod read;
mod samples;
mod style;
mod wall_clock;

#[cfg(test)]
mod fixtures;

use std::path::{Path, PathBuf};

use qamlab_headless::plot::{Band, Chart, Phases, Progress, draw_chart, online_from, steps_desc};

use grouping::{apart_notes, group_by_settings, identify_datasets, series};
use metric::{Metric, check_metric_name};
use read::{RunData, check_distinct, read_run};
use samples::drawable;
use style::series_styles;

/// Flags of `qamlab plot`.
#[derive(clap::Args, Clone, Debug)]
pub struct PlotArgs {
    /// Run directories written by `qamlab train`.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "learning_curves.png", value_parser = png_arg())]
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
    /// Draw each run alone (the seeds of one setting in one colour, told apart by dashes and markers), instead
    /// of runs that differ only in their seed as one mean with a band (runs group where their configs are equal
    /// but for the seed, the device, the CPU threads, CUDA graphs, the split update, the log and checkpoint
    /// intervals and the `[agent]` keys their kind does not read (config.toml marks them `# not used by kind`), with
    /// the dataset compared by its contents, the CRC-32 the runs' checkpoints record, not its path: each seed's
    /// demo has its own copy; by file name for a run that records none).
    #[arg(long)]
    pub no_group: bool,
    /// The band about the mean of a group's seeds: `minmax` (from the least to the greatest), `sem` (the mean ±
    /// its standard error, over the seeds' sample standard deviation) or `none`.
    #[arg(long, value_enum, default_value_t = BandArg::Minmax)]
    pub band: BandArg,
    /// Draw each seed's own line too, thin, under its group's mean.
    #[arg(long)]
    pub seeds: bool,
    /// Draw each point as the mean of the last N of its run (itself and the N-1 before it, of its phase: the
    /// online phase's mean starts afresh): metrics rows are one batch's values each, so losses jump from row to
    /// row (default 1: as recorded).
    #[arg(long, default_value_t = 1, value_parser = super::at_least_one::<usize>)]
    pub smooth: usize,
}

/// The parser of `--out`: a path whose name ends in `.png`, as the chart is written as PNG.
fn png_arg() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::PathBufValueParser::new().try_map(|path: PathBuf| {
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png {
            Ok(path)
        } else {
            Err("the chart is written as PNG; give a .png file name".to_string())
        }
    })
}

/// The band `--band` draws about a group's mean.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandArg {
    /// From the seeds' least value to their greatest.
    Minmax,
    /// The mean ± its standard error.
    Sem,
    /// The mean alone.
    None,
}

impl BandArg {
    /// The band as the chart draws it.
    fn band(self) -> Band {
        match self {
            BandArg::Minmax => Band::MinMax,
            BandArg::Sem => Band::StandardError,
            BandArg::None => Band::None,
        }
    }
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
        qamlab_headless::stderr_line!("note: {note}");
    }
    for warning in &plot.warnings {
        tracing::warn!("{warning}");
    }
    // A stop signal while drawing (a fraction of a second) waits for the chart to be written whole: killed then,
    // the process would leave its temporary file beside --out.
    super::interrupt::hold();
    let drawn = draw_chart(&args.out, &plot.chart);
    match &drawn {
        Ok(()) => qamlab_headless::stdout_line!("wrote {}", args.out.display())?,
        // The signal that came meanwhile ends the process in `release`, before its caller could say why no chart
        // was written.
        Err(err) if super::interrupt::requested() => {
            qamlab_headless::stderr_line!("error: {}", crate::error_line(err));
        }
        Err(_) => {}
    }
    super::interrupt::release();
    drawn
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

/// Checks `--out` before any run is read (its name was checked as the flags were parsed).
fn check_out(out: &Path) -> anyhow::Result<()> {
    qamlab_headless::files::check_writable(out, "--out")
}

/// Everything but the drawing: the runs read, grouped, averaged and labelled.
fn prepare(args: &PlotArgs) -> anyhow::Result<Plot> {
    check_distinct(&args.runs)?;
    let metric = Metric::parse(&args.metric);
    let needs_rows = matches!(metric, Metric::Logged(_)) || args.x == XAxis::Time;
    let mut runs = args
        .runs
        .iter()
        .map(|dir| read_run(dir, &metric, needs_rows))
        .collect::<anyhow::Result<Vec<RunData>>>()?;
    if let Metric::Logged(name) = &metric {
        check_metric_name(name, &runs)?;
    }
    identify_datasets(&mut runs);
    let mut warnings = Vec::new();
    let drawn = drawable(runs, &metric, (args.x, args.smooth), &mut warnings)?;
    let by_settings = group_by_settings(&drawn);
    let groups = if args.no_group {
        (0..drawn.len()).map(|i| vec![i]).collect()
    } else {
        by_settings.clone()
    };
    let mut tasks: Vec<String> = Vec::new();
    for d in &drawn {
        if !tasks.contains(&d.run.task) {
            tasks.push(d.run.task.clone());
        }
    }
    let several_tasks = tasks.len() > 1;
    let styles = series_styles(&drawn, &by_settings, &groups, several_tasks);
    let band = args.band.band();
    let mut series = series(
        &drawn,
        &groups,
        (several_tasks, band, args.seeds),
        &styles,
        &mut warnings,
    )?;
    let notes = if args.no_group {
        Vec::new()
    } else {
        apart_notes(&drawn, &groups)
    };
    let y_scale = metric.y_scale(drawn.iter().flat_map(|d| d.samples.iter().map(|s| s.y)));
    let phases: Vec<Phases> = drawn
        .iter()
        .map(|d| Phases {
            offline_steps: d.run.offline_steps,
            online_steps: d.run.online_steps,
        })
        .collect();
    let one_online_line = (args.x == XAxis::Steps)
        .then(|| online_from(&phases))
        .flatten();
    // Each series' own online tick only where no one line is right for all, against steps.
    if args.x != XAxis::Steps || one_online_line.is_some() {
        for s in &mut series {
            s.online_from = None;
        }
    }
    let ticks = series.iter().any(|s| s.online_from.is_some());
    let chart = Chart {
        // Runs of several tasks can share a chart; the title then names each task.
        title: args.title.clone().unwrap_or(tasks.join(" / ")),
        subtitle: unfinished(&drawn),
        x_desc: match args.x {
            XAxis::Steps if ticks => {
                "training step (offline, then online from the tick in each line's colour)".into()
            }
            XAxis::Steps => steps_desc(&phases).into(),
            XAxis::Time => "wall-clock minutes since the run started".into(),
        },
        y_desc: match args.smooth {
            1 => metric.y_desc(y_scale),
            n => format!("{}, mean of {n} points", metric.y_desc(y_scale)),
        },
        y_scale,
        online_from: one_online_line,
        series,
    };
    Ok(Plot {
        chart,
        warnings,
        notes,
    })
}

/// How far the chart's unfinished runs got, so that a stopped run's curve is not taken for a whole run's: one
/// run's as it is (`stopped at step 423 of 600`; the legend names the run), several by their folders' names
/// (`unfinished: rF stopped at step 423 of 600; rG in progress: step 100 of 600`), at most three and a count;
/// `None` where every run finished.
fn unfinished(drawn: &[samples::Drawn]) -> Option<String> {
    let unfinished: Vec<(&Path, Progress)> = drawn
        .iter()
        .filter_map(|d| Some((d.run.dir.as_path(), d.run.progress?)))
        .collect();
    match unfinished.as_slice() {
        [] => None,
        [(_, progress)] if drawn.len() == 1 => Some(progress.describe()),
        several => {
            let name = |dir: &Path| {
                dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            };
            let mut shown: Vec<String> = several
                .iter()
                .take(3)
                .map(|(dir, progress)| format!("{} {}", name(dir), progress.describe()))
                .collect();
            if several.len() > 3 {
                shown.push(format!("and {} more", several.len() - 3));
            }
            Some(format!("unfinished: {}", shown.join("; ")))
        }
    }
}

/// Steps as a short list: `45000, 50000` or `5000, 10000, 15000 and 7 more`.
fn list_steps(steps: &[u64]) -> String {
    let shown: Vec<String> = steps.iter().take(3).map(u64::to_string).collect();
    match steps.len() {
        n if n > 3 => format!("{} and {} more", shown.join(", "), n - 3),
        _ => shown.join(", "),
    }
}
