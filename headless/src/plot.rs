//! Charts of runs, as PNG: the learning curve (evaluation success rate against training steps) that training
//! redraws at each evaluation, and `qamlab plot`'s charts of any value a run records, where several seeds' runs
//! are drawn as their mean with a band.

use std::path::Path;

use anyhow::Context;
use image::ImageEncoder;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use qamlab_agent::AgentKind;

use crate::evaluate::EvalPoint;

/// How a chart's y axis reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum YScale {
    /// A fraction from 0 to 1 (a success rate), the whole range shown.
    Fraction,
    /// Linear over the values' range.
    Linear,
    /// log10: values that span orders of magnitude (losses), every one of them positive.
    Log,
    /// [`symlog_scaled`]: a log scale that keeps 0 and negative values in their place (as a plain log axis could
    /// not), linear within `±linear_within` (scaled to the values: their smallest size but 0).
    SymLog {
        /// Where the axis turns from linear (about 0) to logarithmic.
        linear_within: f64,
    },
}

impl YScale {
    /// The log scale for `values` (a metric's every value drawn): a plain log axis where all are positive, else
    /// a symlog linear within the smallest size among them but 0 (as a power of ten, at least a millionth of the
    /// largest), so that a value near 0 is still told from 0.
    pub fn log_for(values: impl IntoIterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.iter().all(|&v| v > 0.0) {
            return YScale::Log;
        }
        let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let smallest = values
            .iter()
            .map(|v| v.abs())
            .filter(|&a| a > 0.0)
            .fold(f64::INFINITY, f64::min);
        let linear_within = if smallest.is_finite() {
            let floor = (largest * 1e-6).max(f64::MIN_POSITIVE);
            10f64.powf(smallest.max(floor).log10().floor())
        } else {
            1.0
        };
        YScale::SymLog { linear_within }
    }

    /// Where `v` is drawn on the axis (a log scale's in log10 units): -∞ for a value a log axis cannot show.
    pub fn to_axis(self, v: f64) -> f64 {
        match self {
            YScale::Fraction | YScale::Linear => v,
            YScale::Log if v > 0.0 => v.log10(),
            YScale::Log => f64::NEG_INFINITY,
            YScale::SymLog { linear_within } => symlog_scaled(v, linear_within),
        }
    }

    /// The value drawn at `t` on the axis.
    pub fn from_axis(self, t: f64) -> f64 {
        match self {
            YScale::Fraction | YScale::Linear => t,
            YScale::Log => 10f64.powf(t),
            YScale::SymLog { linear_within } => symlog_scaled_inverse(t, linear_within),
        }
    }
}

/// One point of a series: `y` at `x`, and the band about it where the series stands for several runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesPoint {
    /// Where it is drawn across (a training step, or minutes).
    pub x: f64,
    /// The value (several runs' mean).
    pub y: f64,
    /// The band shaded about it (the runs' least and greatest value, or the mean ± its standard error); `None`
    /// for a single run.
    pub band: Option<(f64, f64)>,
}

/// One line of a chart, named in the legend.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// The points in increasing `x`.
    pub points: Vec<SeriesPoint>,
    /// Its colour, an index into the palette ([`palette_index`]: a shade of a colour family; past
    /// [`PALETTE_LEN`], the palette again, dashed): chosen by the caller, so that one agent keeps its colour
    /// family from chart to chart.
    pub color: usize,
    /// Which of its colour's lines it is (the seeds of one setting drawn apart share a colour): 0 solid, others
    /// dashed, each with a marker of its own.
    pub variant: usize,
    /// The line of each run it stands for, as x and y, drawn thin under its mean; empty for none.
    pub runs: Vec<Vec<(f64, f64)>>,
    /// Where its runs go online, marked with a short tick in its colour at the plot's foot where the chart has no
    /// one line for all ([`Chart::online_from`]: the series' runs go online at different steps); `None` for no
    /// mark.
    pub online_from: Option<f64>,
}

/// What a chart shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The caption above it.
    pub title: String,
    /// A smaller line under the caption (how far unfinished runs got: [`Progress`]); `None` for none.
    pub subtitle: Option<String>,
    /// The x axis' name.
    pub x_desc: String,
    /// The y axis' name.
    pub y_desc: String,
    /// How y reads.
    pub y_scale: YScale,
    /// Where online fine-tuning starts, marked with a line; `None` for no mark.
    pub online_from: Option<f64>,
    /// The lines, each in its colour and marker.
    pub series: Vec<Series>,
}

/// The x axis' name on a chart against training steps, offline then online.
pub const STEPS_DESC: &str = "training step (offline, then online)";

/// The x axis' name on a chart of runs that train online only.
pub const ONLINE_STEPS_DESC: &str = "training step (online)";

/// The x axis' name on a chart of runs that train offline only.
pub const OFFLINE_STEPS_DESC: &str = "training step (offline)";

/// How many steps a run trains in each phase, as its config says: what a chart against steps names and marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    /// Offline gradient steps, first.
    pub offline_steps: u64,
    /// Online env steps, after them.
    pub online_steps: u64,
}

/// The x axis' name against steps of runs that train in `phases`: the phases they train in.
pub fn steps_desc(phases: &[Phases]) -> &'static str {
    if phases.iter().all(|p| p.offline_steps == 0) {
        ONLINE_STEPS_DESC
    } else if phases.iter().all(|p| p.online_steps == 0) {
        OFFLINE_STEPS_DESC
    } else {
        STEPS_DESC
    }
}

/// Where runs that train in `phases` go online, marked: one mark, where every run goes online at the same step
/// (any other would be wrong for some of them), and none where no run goes online at all or every run starts
/// there.
pub fn online_from(phases: &[Phases]) -> Option<f64> {
    let offline = phases.first()?.offline_steps;
    let one_step = phases.iter().all(|p| p.offline_steps == offline);
    let goes_online = phases.iter().any(|p| p.online_steps > 0);
    (one_step && goes_online && offline > 0).then_some(offline as f64)
}

/// How far a run got that has not finished: a chart of it says so, or its curve would look like a whole run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Training (or drawn while training, at an evaluation): at `step` of `total`.
    InProgress {
        /// The step it is at.
        step: u64,
        /// The step it ends at.
        total: u64,
    },
    /// Stopped (on request, or killed) at `step` of `total`; `--resume` continues it.
    Stopped {
        /// The step it stopped at.
        step: u64,
        /// The step it would have ended at.
        total: u64,
    },
}

impl Progress {
    /// How a chart says it: `in progress: step 300 of 600`, `stopped at step 423 of 600`.
    pub fn describe(self) -> String {
        match self {
            Progress::InProgress { step, total } => format!("in progress: step {step} of {total}"),
            // Stopped during its final evaluation, which the resume makes.
            Progress::Stopped { step, total } if step >= total => {
                format!("stopped at step {step} of {total}, before its final evaluation")
            }
            Progress::Stopped { step, total } => format!("stopped at step {step} of {total}"),
        }
    }
}

/// The title of a run's `learning_curve.png`: its agent, task, seed and folder name (`qam on pendulum, seed 2
/// (qam-it1-s2)`), so that the pictures of a run's seeds or settings are told apart; a long folder name is cut in
/// its middle (its ends tell runs apart), to keep the title on the chart.
pub fn learning_curve_title(kind: &str, task: &str, seed: u64, run: &Path) -> String {
    // The caption's 24-pixel text fits about 70 characters across the chart.
    const MAX_CHARS: usize = 70;
    let title = format!("{kind} on {task}, seed {seed}");
    let Some(name) = run.file_name().map(|n| n.to_string_lossy()) else {
        return title;
    };
    let room = MAX_CHARS.saturating_sub(title.chars().count() + 3);
    let chars: Vec<char> = name.chars().collect();
    let name: String = if chars.len() <= room {
        chars.into_iter().collect()
    } else if room >= 9 {
        let head = (room - 1) / 2;
        let tail = room - 1 - head;
        let mut cut: String = chars[..head].iter().collect();
        cut.push('…');
        cut.extend(&chars[chars.len() - tail..]);
        cut
    } else {
        return title;
    };
    format!("{title} ({name})")
}

/// The colour family of an agent kind's lines (`qam`, `bc`, ...; see [`palette_index`]): the same on every chart,
/// and no other agent's (a name that is no kind takes the last, grey).
pub fn agent_family(kind: &str) -> usize {
    kind.parse().map_or(FAMILIES - 1, kind_family)
}

/// Each kind's own colour family. A new kind must pick one here, and the palette grows a family with it
/// ([`FAMILIES`] counts the kinds).
fn kind_family(kind: AgentKind) -> usize {
    match kind {
        AgentKind::Qam => 0,
        AgentKind::Bc => 1,
        AgentKind::Fql => 2,
        AgentKind::QamF => 3,
        AgentKind::QamE => 4,
    }
}

/// Draws the success-rate curve of one or more runs (label, agent kind, points), which train in `phases`, to
/// `path` (PNG), atomically: each in its agent's colour, as `qamlab plot` draws it. Drawn at an evaluation while
/// training, before the run's last step, it says the run is in progress at that step (of `phases`' steps).
pub fn draw_learning_curves(
    path: &Path,
    title: &str,
    runs: &[(&str, &str, &[EvalPoint])],
    phases: Phases,
) -> anyhow::Result<()> {
    draw_chart(path, &learning_curves(title, runs, phases, None))
}

/// [`draw_learning_curves`] of a run that stopped before its last step, at `step`: its chart says so (a redraw
/// as the run stops; the one at its last evaluation says it was in progress then).
pub fn draw_stopped_learning_curves(
    path: &Path,
    title: &str,
    runs: &[(&str, &str, &[EvalPoint])],
    phases: Phases,
    step: u64,
) -> anyhow::Result<()> {
    let total = phases.offline_steps.saturating_add(phases.online_steps);
    let stopped = Progress::Stopped { step, total };
    draw_chart(path, &learning_curves(title, runs, phases, Some(stopped)))
}

/// The chart [`draw_learning_curves`] draws: marked where online fine-tuning starts, as `qamlab plot` marks it,
/// and subtitled with `progress`, or where that is `None` and the last evaluation is before the run's last step,
/// as in progress then (training draws it at each evaluation; the last is at the last step).
fn learning_curves(
    title: &str,
    runs: &[(&str, &str, &[EvalPoint])],
    phases: Phases,
    progress: Option<Progress>,
) -> Chart {
    let total = phases.offline_steps.saturating_add(phases.online_steps);
    let last = runs
        .iter()
        .filter_map(|(_, _, points)| points.last().map(|p| p.step))
        .max();
    let progress = progress.or_else(|| {
        let step = last.filter(|&step| step < total)?;
        Some(Progress::InProgress { step, total })
    });
    let series = runs
        .iter()
        .enumerate()
        .map(|(i, (label, agent, points))| Series {
            label: (*label).to_string(),
            points: points
                .iter()
                .map(|p| SeriesPoint {
                    x: p.step as f64,
                    y: p.success_rate,
                    band: None,
                })
                .collect(),
            color: palette_index(agent_family(agent), i),
            variant: 0,
            runs: Vec::new(),
            online_from: None,
        })
        .collect();
    Chart {
        title: title.to_string(),
        subtitle: progress.map(Progress::describe),
        x_desc: steps_desc(&[phases]).into(),
        y_desc: "success rate".into(),
        y_scale: YScale::Fraction,
        online_from: online_from(&[phases]),
        series,
    }
}

/// Draws `chart` to `path` (PNG), atomically: a reader never finds half a picture, and a process killed while
/// writing leaves a temporary that the next write of `path` removes (see [`crate::files::write_atomically`]).
pub fn draw_chart(path: &Path, chart: &Chart) -> anyhow::Result<()> {
    let dir = crate::files::parent_dir(path);
    std::fs::create_dir_all(dir).with_context(|| format!("making the folder {}", dir.display()))?;
    let png = render(chart).with_context(|| format!("drawing the chart {}", path.display()))?;
    crate::files::write_bytes_atomically(path, &png)
}

/// A run's value at one of its steps, and where it is drawn across.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The run's step.
    pub step: u64,
    /// Where it is drawn across: the step itself, or the run's wall-clock time then.
    pub x: f64,
    /// The value.
    pub y: f64,
}

/// The band drawn about several runs' mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// From the runs' least value to their greatest.
    MinMax,
    /// The mean ± its standard error (the runs' sample standard deviation over √n).
    StandardError,
    /// None: the mean alone.
    None,
}

/// Several runs as one series ([`mean_over_runs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// At each step that every run has: x and y averaged over the runs, with the band.
    pub points: Vec<SeriesPoint>,
    /// For each run, in order, its steps that some other run lacks: left out of the mean.
    pub left_out: Vec<Vec<u64>>,
}

/// The mean of several runs' samples (each in increasing step order) at the steps all of them have, with `band`
/// about it. A step only some runs have is left out (and reported), not averaged over fewer runs: that would make
/// the mean jump where a run stops.
pub fn mean_over_runs(runs: &[Vec<Sample>], band: Band) -> Merged {
    let at = |run: &[Sample], step: u64| {
        run.binary_search_by_key(&step, |s| s.step)
            .ok()
            .map(|i| run[i])
    };
    let shared: Vec<u64> = runs.first().map_or_else(Vec::new, |first| {
        first
            .iter()
            .map(|s| s.step)
            .filter(|&step| runs.iter().all(|run| at(run, step).is_some()))
            .collect()
    });
    let points = shared
        .iter()
        .map(|&step| {
            let samples: Vec<Sample> = runs.iter().filter_map(|run| at(run, step)).collect();
            let n = samples.len() as f64;
            let ys = samples.iter().map(|s| s.y);
            let mean = ys.clone().sum::<f64>() / n;
            let band = match band {
                _ if runs.len() < 2 => None,
                Band::MinMax => Some((
                    ys.clone().fold(f64::INFINITY, f64::min),
                    ys.fold(f64::NEG_INFINITY, f64::max),
                )),
                Band::StandardError => {
                    let variance = ys.map(|y| (y - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    let error = (variance / n).sqrt();
                    Some((mean - error, mean + error))
                }
                Band::None => None,
            };
            SeriesPoint {
                x: samples.iter().map(|s| s.x).sum::<f64>() / n,
                y: mean,
                band,
            }
        })
        .collect();
    let left_out = runs
        .iter()
        .map(|run| {
            run.iter()
                .map(|s| s.step)
                .filter(|step| shared.binary_search(step).is_err())
                .collect()
        })
        .collect();
    Merged { points, left_out }
}

/// `log10(1 + |v|)` with `v`'s sign: a log scale that keeps 0 and negative values (the window's loss panel
/// draws its losses so).
pub fn symlog(v: f64) -> f64 {
    symlog_scaled(v, 1.0)
}

/// The value whose [`symlog`] is `s`.
pub fn symlog_inverse(s: f64) -> f64 {
    symlog_scaled_inverse(s, 1.0)
}

/// `log10(1 + |v| / c)` with `v`'s sign: about linear within `±c`, logarithmic beyond.
pub fn symlog_scaled(v: f64, c: f64) -> f64 {
    v.signum() * (v.abs() / c).ln_1p() / std::f64::consts::LN_10
}

/// The value whose [`symlog_scaled`] (linear within `±c`) is `s`.
pub fn symlog_scaled_inverse(s: f64, c: f64) -> f64 {
    s.signum() * c * (10f64.powf(s.abs()) - 1.0)
}

/// The series' colours, each readable on white (no pale yellow or lime), in families of [`SHADES`]: an agent's
/// lines all take shades of its family (its own colour first, then a darker and a lighter one), so that no line of
/// one agent ever wears another's colour. A series' `color` indexes it ([`palette_index`]).
const PALETTE: [[RGBAColor; SHADES]; FAMILIES] = [
    // Blue.
    [
        RGBAColor(31, 119, 180, 1.0),
        RGBAColor(20, 55, 115, 1.0),
        RGBAColor(95, 160, 225, 1.0),
    ],
    // Orange.
    [
        RGBAColor(230, 110, 20, 1.0),
        RGBAColor(150, 70, 0, 1.0),
        RGBAColor(200, 140, 0, 1.0),
    ],
    // Green.
    [
        RGBAColor(44, 150, 44, 1.0),
        RGBAColor(20, 90, 30, 1.0),
        RGBAColor(90, 175, 70, 1.0),
    ],
    // Red.
    [
        RGBAColor(200, 40, 40, 1.0),
        RGBAColor(120, 15, 25, 1.0),
        RGBAColor(230, 100, 110, 1.0),
    ],
    // Purple.
    [
        RGBAColor(120, 80, 170, 1.0),
        RGBAColor(65, 35, 110, 1.0),
        RGBAColor(170, 125, 215, 1.0),
    ],
    // Grey.
    [
        RGBAColor(90, 90, 90, 1.0),
        RGBAColor(35, 35, 35, 1.0),
        RGBAColor(140, 140, 140, 1.0),
    ],
];

/// How many colour families the palette holds: one an agent kind, and grey.
pub const FAMILIES: usize = AgentKind::ALL.len() + 1;

/// How many shades each colour family holds.
pub const SHADES: usize = 3;

/// How many colours [`Series::color`] picks from; a greater index takes the palette again, dashed.
pub const PALETTE_LEN: usize = FAMILIES * SHADES;

/// The [`Series::color`] of shade `shade` (0: the family's own colour) of colour family `family`.
pub fn palette_index(family: usize, shade: usize) -> usize {
    (family % FAMILIES) * SHADES + shade % SHADES
}

/// The colour a [`Series::color`] stands for (past the palette, the palette again).
fn palette_color(color: usize) -> RGBAColor {
    let color = color % PALETTE_LEN;
    PALETTE[color / SHADES][color % SHADES]
}

/// Series with more points than this are drawn as lines alone: markers would merge into a thick smear.
const MAX_MARKED_POINTS: usize = 60;

/// How opaque a series' band is.
const BAND_ALPHA: f64 = 0.18;

/// How a series is drawn: its colour, its line's dashes (`None`: solid) and its marker's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LineStyle {
    color: RGBAColor,
    dashes: Option<(i32, i32)>,
    marker: Marker,
}

/// A series' marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

/// The style of `series`: its colour's, and for its colour's second line on, dashes and another marker.
fn line_style(series: &Series) -> LineStyle {
    const MARKERS: [Marker; 4] = [
        Marker::Circle,
        Marker::Triangle,
        Marker::Square,
        Marker::Cross,
    ];
    const DASHES: [(i32, i32); 3] = [(9, 4), (3, 3), (14, 4)];
    let variant = series.variant + series.color / PALETTE_LEN;
    LineStyle {
        color: palette_color(series.color),
        dashes: variant.checked_sub(1).map(|k| DASHES[k % DASHES.len()]),
        marker: MARKERS[(series.color + variant) % MARKERS.len()],
    }
}

/// The plots' one font, registered once as "sans-serif": built into the binary, so drawing needs no font library
/// or font files on the machine (a lean GPU image has neither).
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = REGISTERED.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok()
    });
    anyhow::ensure!(*ok, "the plots' built-in font would not load");
    Ok(())
}

/// The chart's picture, as PNG bytes.
fn render(chart: &Chart) -> anyhow::Result<Vec<u8>> {
    let mut rgb = vec![0u8; CHART_SIZE.0 as usize * CHART_SIZE.1 as usize * 3];
    draw(&mut rgb, chart)?;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(
        &rgb,
        CHART_SIZE.0,
        CHART_SIZE.1,
        image::ColorType::Rgb8,
    )?;
    Ok(png)
}

/// Width and height of a chart, in pixels.
const CHART_SIZE: (u32, u32) = (900, 540);

/// Draws `chart` into `rgb`, [`CHART_SIZE`] pixels of three bytes.
fn draw(rgb: &mut [u8], chart: &Chart) -> anyhow::Result<()> {
    register_font()?;
    let scale = chart.y_scale;
    let (x_lo, x_hi) = x_range(chart);
    let (y_lo, y_hi) = y_range(chart);
    // A value the axis cannot show (a band's foot at or below 0 on a log axis) is drawn at its bottom.
    let to_y = move |v: f64| scale.to_axis(v).clamp(y_lo, f64::INFINITY);
    let x_ticks = linear_ticks(x_lo, x_hi, 8.0);
    let y_ticks = match scale {
        YScale::Fraction => (0..=10).map(|k| f64::from(k) / 10.0).collect(),
        YScale::Linear => linear_ticks(y_lo, y_hi, 8.0),
        YScale::Log => log_ticks(y_lo, y_hi),
        YScale::SymLog { linear_within } => symlog_ticks(y_lo, y_hi, linear_within),
    };
    let root = BitMapBackend::with_buffer(rgb, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    // The caption, and under it the subtitle in smaller, greyer text: the plot below both.
    let mut area = root
        .margin(16, 16, 16, 16)
        .titled(&chart.title, ("sans-serif", 24))?;
    if let Some(subtitle) = &chart.subtitle {
        area = area.titled(
            subtitle,
            ("sans-serif", 16).into_font().color(&BLACK.mix(0.7)),
        )?;
    }
    let mut cc = ChartBuilder::on(&area)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            TickedAxis::new((x_lo, x_hi), x_ticks),
            TickedAxis::new((y_lo, y_hi), y_ticks),
        )?;
    let y_label = move |v: &f64| match scale {
        YScale::Fraction => format!("{v:.1}"),
        YScale::Linear => compact(*v),
        YScale::Log | YScale::SymLog { .. } => tick_number(scale.from_axis(*v)),
    };
    cc.configure_mesh()
        .x_desc(&chart.x_desc)
        .y_desc(&chart.y_desc)
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&y_label)
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    // The legend and the online line's label placed together, so that neither covers the curves nor each other.
    let (corner, online) = legend_and_online_label(
        chart,
        (x_lo, x_hi),
        (y_lo, y_hi),
        online_mark(chart, (x_lo, x_hi)),
        to_y,
    );
    if let Some(mark) = online {
        cc.draw_series(LineSeries::new(
            [(mark.x, y_lo), (mark.x, y_hi)],
            BLACK.mix(0.35).stroke_width(1),
        ))?;
        let (text, h_pos) = match mark.side {
            Side::Right => (" online from here", HPos::Left),
            Side::Left => ("online from here ", HPos::Right),
        };
        cc.draw_series(std::iter::once(Text::new(
            text,
            (mark.x, y_lo + (y_hi - y_lo) * mark.top),
            ("sans-serif", 14)
                .into_font()
                .color(&BLACK.mix(0.6))
                .pos(Pos::new(h_pos, VPos::Top)),
        )))?;
    }
    // Where the chart has no one online line, each series' own boundary: a short tick at the foot, in its colour.
    if chart.online_from.is_none() {
        let foot = (y_lo, y_lo + (y_hi - y_lo) * SERIES_ONLINE_TICK);
        for series in &chart.series {
            if let Some(x) = series.online_from.filter(|&x| x > x_lo && x < x_hi) {
                cc.draw_series(std::iter::once(PathElement::new(
                    [(x, foot.0), (x, foot.1)],
                    line_style(series).color.stroke_width(3),
                )))?;
            }
        }
    }
    // Bands first, so that no band covers another series' line.
    for series in &chart.series {
        draw_band(&mut cc, series, line_style(series).color, to_y)?;
    }
    // Each run's own line, thin and faint, under the means.
    for series in &chart.series {
        let color = line_style(series).color;
        for run in &series.runs {
            cc.draw_series(LineSeries::new(
                run.iter().map(|&(x, y)| (x, to_y(y))),
                color.mix(0.4).stroke_width(1),
            ))?;
        }
    }
    for series in &chart.series {
        draw_line(&mut cc, series, to_y)?;
    }
    cc.configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

/// The "online from here" line: where it is, on which side of it its label goes, and how high (the label's top,
/// as a fraction of the plot's height from its foot).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OnlineMark {
    x: f64,
    side: Side,
    top: f64,
}

/// How high a series' own online tick reaches, as a fraction of the plot's height from its foot.
const SERIES_ONLINE_TICK: f64 = 0.06;

/// Where the online label goes unless the legend or the curves are there: just below the top, clear of the frame.
const ONLINE_LABEL_TOP: f64 = 0.97;

/// A side of the online line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// The label's width as a fraction of the plot's (about 820 pixels across; 16 characters of 14-pixel text), and
/// its height as a fraction of the plot's (about 440 pixels down).
const ONLINE_LABEL_SIZE: (f64, f64) = (110.0 / 820.0, 20.0 / 440.0);

/// The online line, where the chart has one inside its x range: its label at the top, right of it, or left where
/// the right would run past the chart's edge ([`legend_and_online_label`] may move it).
fn online_mark(chart: &Chart, (x_lo, x_hi): (f64, f64)) -> Option<OnlineMark> {
    let x = chart.online_from.filter(|&x| x > 0.0 && x < x_hi)?;
    let u = (x - x_lo) / (x_hi - x_lo);
    let side = if u + ONLINE_LABEL_SIZE.0 > 0.98 {
        Side::Left
    } else {
        Side::Right
    };
    Some(OnlineMark {
        x,
        side,
        top: ONLINE_LABEL_TOP,
    })
}

/// The plotting area of a chart, in its coordinates (x and y as drawn).
type Area<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<TickedAxis, TickedAxis>>;

/// A linear axis whose ticks are chosen here (plotters' own cannot be told a symlog axis' powers of ten, and its
/// key-point combinator loses the label formatting); a log axis is this one over log10 of the values.
struct TickedAxis {
    lo: f64,
    hi: f64,
    /// Labelled ticks, with the grid's lines.
    ticks: Vec<f64>,
    /// The grid's faint lines between them.
    light: Vec<f64>,
}

impl TickedAxis {
    fn new((lo, hi): (f64, f64), ticks: Vec<f64>) -> Self {
        let light = ticks.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        Self {
            lo,
            hi,
            ticks,
            light,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        // `as` saturates: a point far off the axis lands on its end rather than wrapping.
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The shaded band of a series that stands for several runs (a bar where it has one point).
fn draw_band(
    cc: &mut Area<'_>,
    series: &Series,
    color: RGBAColor,
    to_y: impl Fn(f64) -> f64,
) -> anyhow::Result<()> {
    let band: Vec<(f64, f64, f64)> = series
        .points
        .iter()
        .filter_map(|p| p.band.map(|(lo, hi)| (p.x, to_y(lo), to_y(hi))))
        .collect();
    match band.as_slice() {
        [] => {}
        [(x, lo, hi)] => {
            cc.draw_series(std::iter::once(PathElement::new(
                [(*x, *lo), (*x, *hi)],
                color.mix(0.5).stroke_width(6),
            )))?;
        }
        _ => {
            let outline: Vec<(f64, f64)> = band
                .iter()
                .map(|&(x, _, hi)| (x, hi))
                .chain(band.iter().rev().map(|&(x, lo, _)| (x, lo)))
                .collect();
            cc.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(BAND_ALPHA).filled(),
            )))?;
        }
    }
    Ok(())
}

/// A marker of `shape` about `at` (a point of the chart, or of the legend), in `color`: every shape is composed,
/// the others invisible, so that each marker is of one type, as plotters' series and legends need.
macro_rules! marker {
    ($at:expr, $shape:expr, $color:expr) => {{
        let (shape, color): (Marker, RGBAColor) = ($shape, $color);
        let only = |which: Marker| if shape == which { color } else { TRANSPARENT };
        EmptyElement::at($at)
            + Circle::new((0, 0), 4, only(Marker::Circle).filled())
            + TriangleMarker::new((0, 0), 5, only(Marker::Triangle).filled())
            + Rectangle::new([(-3, -3), (3, 3)], only(Marker::Square).filled())
            + Cross::new((0, 0), 4, only(Marker::Cross).stroke_width(2))
    }};
}

/// A series' line, its markers (a shape of its own, so that coinciding lines stay told apart) and its legend
/// entry, which shows the line as drawn: its dashes, its marker and, for a banded series, the band's shade.
fn draw_line(cc: &mut Area<'_>, series: &Series, to_y: impl Fn(f64) -> f64) -> anyhow::Result<()> {
    let style = line_style(series);
    let color = style.color;
    let banded = series.points.iter().any(|p| p.band.is_some());
    let marked = series.points.len() <= MAX_MARKED_POINTS;
    let points: Vec<(f64, f64)> = series.points.iter().map(|p| (p.x, to_y(p.y))).collect();
    let stroke = color.stroke_width(2);
    let drawn = match style.dashes {
        // Segment by segment: plotters mitres a wide line's joins, and at a sharp turn (a rate from 0 to 0.5 and
        // back within a few pixels: a curve of a thousand evaluations) the mitre's spike ran past the axis.
        None => cc.draw_series(
            points
                .windows(2)
                .map(|segment| PathElement::new(segment.to_vec(), stroke)),
        )?,
        Some((dash, gap)) => {
            cc.draw_series(DashedLineSeries::new(points.clone(), dash, gap, stroke))?
        }
    };
    drawn.label(series.label.as_str()).legend(move |(x, y)| {
        let shade = if banded {
            color.mix(BAND_ALPHA)
        } else {
            TRANSPARENT
        };
        // The solid line or the dashed one, the other invisible (one type for both).
        let (solid, dashed) = match style.dashes {
            None => (color, TRANSPARENT),
            Some(_) => (TRANSPARENT, color),
        };
        let (dash, gap) = style.dashes.unwrap_or((4, 3));
        let mark = if marked { color } else { TRANSPARENT };
        EmptyElement::at((x, y))
            + Rectangle::new([(0, -5), (26, 5)], shade.filled())
            + PathElement::new([(0, 0), (26, 0)], solid.stroke_width(2))
            + DashedPathElement::new(
                vec![(0, 0), (26, 0)],
                dash.min(6),
                gap,
                dashed.stroke_width(2),
            )
            + marker!((13, 0), style.marker, mark)
    });
    if marked {
        cc.draw_series(points.into_iter().map(|p| marker!(p, style.marker, color)))?;
    }
    Ok(())
}

/// The x axis' range: from 0 (steps and minutes start there) to a little past the last point, so that the points
/// there are not drawn on the frame.
fn x_range(chart: &Chart) -> (f64, f64) {
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.x));
    let lo = xs.clone().fold(0.0, f64::min);
    let hi = xs.chain(chart.online_from).fold(lo, f64::max);
    // A single point at 0 still gets an axis.
    let hi = if hi > lo { hi } else { lo + 1.0 };
    (lo, hi + (hi - lo) / 40.0)
}

/// The y axis' range, as drawn (a log axis' in log10 units): a fraction's whole range, else the values' and
/// bands' with a margin (a band's foot that a log axis cannot show left out).
fn y_range(chart: &Chart) -> (f64, f64) {
    if chart.y_scale == YScale::Fraction {
        return (-0.03, 1.03);
    }
    let ys: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| {
            let runs = s.runs.iter().flatten().map(|&(_, y)| y);
            s.points
                .iter()
                .flat_map(|p| {
                    let (lo, hi) = p.band.unwrap_or((p.y, p.y));
                    [p.y, lo, hi]
                })
                .chain(runs)
        })
        .map(|y| chart.y_scale.to_axis(y))
        .filter(|y| y.is_finite())
        .collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    // A constant series still gets an axis about its value (on a log axis, a decade).
    let margin = match chart.y_scale {
        _ if hi > lo => (hi - lo) / 20.0,
        YScale::Log => 0.5,
        _ => (lo.abs() / 10.0).max(0.1),
    };
    (lo - margin, hi + margin)
}

/// Round ticks over `lo..hi`, 1, 2 or 5 times a power of ten apart, cutting it into about `intervals` parts.
pub fn linear_ticks(lo: f64, hi: f64, intervals: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return vec![lo];
    }
    let rough = span / intervals;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= rough)
        .unwrap_or(10.0 * power);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks of a log axis over `lo..hi` (log10 units): the powers of ten (every other one, or fewer, over many
/// decades), then 2 and 5 times them where they are not crowded; linear ticks where that leaves fewer than three
/// (a range within one decade).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (lo.ceil() as i64)..=(hi.floor() as i64);
    let every = ((hi - lo) / 8.0).ceil().max(1.0) as i64;
    let mut ticks: Vec<f64> = decades
        .clone()
        .filter(|k| k.rem_euclid(every) == 0)
        .map(|k| k as f64)
        .collect();
    let gap = (hi - lo) / 14.0;
    if every == 1 {
        let between = (lo.floor() as i64..=hi.ceil() as i64)
            .flat_map(|k| [5.0, 2.0].map(|m| (m * 10f64.powi(k as i32)).log10()))
            .filter(|t| (lo..=hi).contains(t));
        for t in between {
            if ticks.iter().all(|s| (s - t).abs() >= gap) {
                ticks.push(t);
            }
        }
    }
    if ticks.len() < 3 {
        ticks = ticks_within_a_decade(
            (lo, hi),
            |v| (v > 0.0).then(|| v.log10()),
            |t| 10f64.powf(t),
        );
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// Round ticks over `lo..hi` of an axis that maps a value `v` to `to_axis(v)` (a log axis within one decade): 1,
/// 2 or 5 times a power of ten apart, the coarsest step whose lowest tick is in the axis' lower quarter (a
/// curve falling to 1.2 on an axis from 1.2 to 4.5 gets 1.5, not only 2, 3 and 4), those crowded at the top (where
/// a log axis squeezes them) left out.
fn ticks_within_a_decade(
    (lo, hi): (f64, f64),
    to_axis: impl Fn(f64) -> Option<f64>,
    from_axis: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let gap = (hi - lo) / 14.0;
    let lower_quarter = lo + (hi - lo) / 4.0;
    let mut ticks = Vec::new();
    for intervals in [5.0, 8.0, 12.0, 20.0, 40.0] {
        ticks = linear_ticks(from_axis(lo), from_axis(hi), intervals)
            .into_iter()
            .filter_map(&to_axis)
            .filter(|t| (lo..=hi).contains(t))
            .collect();
        if ticks.len() >= 3 && ticks.first().is_some_and(|&t| t <= lower_quarter) {
            break;
        }
    }
    let mut kept: Vec<f64> = Vec::new();
    for t in ticks {
        if kept.last().is_none_or(|k| t - k >= gap) {
            kept.push(t);
        }
    }
    kept
}

/// Ticks of a symlog axis linear within `±c` over `lo..hi` (symlog values): 0, then powers of ten from `c`'s up,
/// then 5 and 2 times them, each kept where it is not crowded by one kept before; linear ticks where that leaves
/// fewer than three (a range within one decade).
fn symlog_ticks(lo: f64, hi: f64, c: f64) -> Vec<f64> {
    let first = c.log10().floor() as i32;
    let powers = || (first..=first + 18).map(|k| 10f64.powi(k));
    let candidates = std::iter::once(0.0)
        .chain(powers())
        .chain(powers().map(|p| 5.0 * p))
        .chain(powers().map(|p| 2.0 * p))
        .flat_map(|v| [v, -v])
        .map(|v| symlog_scaled(v, c))
        .filter(|s| (lo..=hi).contains(s));
    let gap = (hi - lo) / 14.0;
    let mut ticks: Vec<f64> = Vec::new();
    for s in candidates {
        if ticks.iter().all(|t| (t - s).abs() >= gap) {
            ticks.push(s);
        }
    }
    if ticks.len() < 3 {
        ticks = ticks_within_a_decade(
            (lo, hi),
            |v| Some(symlog_scaled(v, c)),
            |t| symlog_scaled_inverse(t, c),
        );
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// A tick label in a few characters: `50k`, `1.2M`, `0.25`, `-3`, `2e-4`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 || (a > 0.0 && a < 1e-3) {
        return format!("{v:.1e}");
    }
    let (value, unit) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    // `-0.000` trims to `-0`.
    let text = if text == "-0" { "0" } else { text };
    format!("{text}{unit}")
}

/// A log axis' tick label, a number as it reads: `1e-4`, `2e-5`, `5e-3`, `0.01`, `5`, `100`, `1.5M`.
pub fn tick_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 || (a > 0.0 && a < 1e-2) {
        // Three significant digits at most, trailing zeros dropped: `1e-4`, not `1.0e-4`.
        let text = format!("{v:.2e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    compact(v)
}

/// A box on the plot, as fractions of its width and height from its lower left: across, then up.
type UnitBox = ((f64, f64), (f64, f64));

/// The legend's size as a fraction of the plot (about 820 x 440 pixels): 7 pixels a character and 48 for the sample
/// line across, 20 a row down.
fn legend_size(chart: &Chart) -> (f64, f64) {
    let chars = chart
        .series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let width = ((chars as f64 * 7.0 + 48.0) / 820.0).min(1.0);
    let height = ((chart.series.len() as f64 * 20.0 + 12.0) / 440.0).min(1.0);
    (width, height)
}

/// The box of a legend of `size` in a corner (right or left, upper or lower).
fn legend_box((width, height): (f64, f64), right: bool, upper: bool) -> UnitBox {
    let across = if right {
        (1.0 - width, 1.0)
    } else {
        (0.0, width)
    };
    let down = if upper {
        (1.0 - height, 1.0)
    } else {
        (0.0, height)
    };
    (across, down)
}

/// The box of the online label of `mark`, at `u` across the plot.
fn online_label_box(mark: OnlineMark, u: f64) -> UnitBox {
    let (w, h) = ONLINE_LABEL_SIZE;
    let across = match mark.side {
        Side::Right => (u, u + w),
        Side::Left => (u - w, u),
    };
    (across, (mark.top - h, mark.top))
}

/// Whether two boxes overlap.
fn overlap(a: UnitBox, b: UnitBox) -> bool {
    a.0.0 < b.0.1 && b.0.0 < a.0.1 && a.1.0 < b.1.1 && b.1.0 < a.1.1
}

/// The corner of the plot for the legend, and where the online line's label goes (`online`: at the top, on the
/// side that fits): the legend where the curves cross least (losses fall from the upper left where success rises
/// to the upper right), then the label where neither the legend nor the curves are: at the top, else just below an
/// upper legend or above a lower one, else at the foot, on its side of the line or the other. Data comes first: the
/// label moves out of the legend's way rather than the legend onto the curves. Ties go to the label at the top,
/// and to the upper left.
fn legend_and_online_label(
    chart: &Chart,
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
    online: Option<OnlineMark>,
    to_y: impl Fn(f64) -> f64,
) -> (SeriesLabelPosition, Option<OnlineMark>) {
    let size = legend_size(chart);
    let mut along = Vec::new();
    for series in &chart.series {
        for pair in series.points.windows(2) {
            // Points along each segment too: a line crosses a corner between its points.
            for k in 0..10 {
                let t = f64::from(k) / 10.0;
                let lerp = |a: f64, b: f64| a + t * (b - a);
                let (p, q) = (pair[0], pair[1]);
                along.push((lerp(p.x, q.x), lerp(to_y(p.y), to_y(q.y))));
                if let (Some(a), Some(b)) = (p.band, q.band) {
                    along.push((lerp(p.x, q.x), lerp(to_y(a.0), to_y(b.0))));
                    along.push((lerp(p.x, q.x), lerp(to_y(a.1), to_y(b.1))));
                }
            }
        }
        along.extend(series.points.iter().map(|p| (p.x, to_y(p.y))));
        along.extend(series.runs.iter().flatten().map(|&(x, y)| (x, to_y(y))));
    }
    let unit = |(x, y): (f64, f64)| ((x - x_lo) / (x_hi - x_lo), (y - y_lo) / (y_hi - y_lo));
    let inside = |((u0, u1), (v0, v1)): UnitBox, (u, v): (f64, f64)| {
        (u0..=u1).contains(&u) && (v0..=v1).contains(&v)
    };
    let crossings = |area: UnitBox| along.iter().filter(|&&p| inside(area, unit(p))).count();
    let corners = [
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerLeft, false, false),
        (SeriesLabelPosition::LowerRight, true, false),
    ];
    // The label's places beside a legend in a corner, the preferred first: each on the chart.
    let places = |upper: bool| -> Vec<OnlineMark> {
        let Some(mark) = online else {
            return Vec::new();
        };
        let u = (mark.x - x_lo) / (x_hi - x_lo);
        let (w, h) = ONLINE_LABEL_SIZE;
        let gap = 0.02;
        let beside_legend = if upper {
            1.0 - size.1 - gap
        } else {
            size.1 + gap + h
        };
        let other = match mark.side {
            Side::Right => Side::Left,
            Side::Left => Side::Right,
        };
        let fits = |side| match side {
            Side::Right => u + w <= 0.98,
            Side::Left => u - w >= 0.02,
        };
        [ONLINE_LABEL_TOP, beside_legend, 0.03 + h]
            .into_iter()
            .filter(|top| (h..=ONLINE_LABEL_TOP).contains(top))
            .flat_map(|top| {
                [mark.side, other]
                    .into_iter()
                    .filter(|&side| side == mark.side || fits(side))
                    .map(move |side| OnlineMark { side, top, ..mark })
            })
            .collect()
    };
    // Each corner with each place of the label, ranked: the curves the legend covers, whether it covers the
    // label, the curves the label covers, the label's place, then the corner's.
    let mut best = None;
    for (rank, (corner, right, upper)) in corners.into_iter().enumerate() {
        let legend = legend_box(size, right, upper);
        let covered = crossings(legend);
        let mut options: Vec<(bool, usize, usize, Option<OnlineMark>)> = places(upper)
            .into_iter()
            .enumerate()
            .map(|(k, mark)| {
                let label = online_label_box(mark, (mark.x - x_lo) / (x_hi - x_lo));
                (overlap(legend, label), crossings(label), k, Some(mark))
            })
            .collect();
        if online.is_none() {
            options.push((false, 0, 0, None));
        }
        for (covers_label, label_covers, k, mark) in options {
            let cost = (covered, covers_label, label_covers, k, rank);
            if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                best = Some((cost, (corner.clone(), mark)));
            }
        }
    }
    best.map_or((SeriesLabelPosition::UpperLeft, online), |(_, chosen)| {
        chosen
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phase::Phase;

    #[test]
    fn draws_a_png_with_the_curve_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let pts: Vec<EvalPoint> = (0..5)
            .map(|i| EvalPoint {
                step: i * 100,
                phase: if i < 3 { Phase::Offline } else { Phase::Online },
                success_rate: i as f64 / 4.0,
                mean_return: 0.0,
                episodes: 10,
            })
            .collect();
        let phases = Phases {
            offline_steps: 200,
            online_steps: 200,
        };
        draw_learning_curves(&path, "test", &[("qam", "qam", &pts)], phases).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // Only the final file remains: the temporary was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn steps_up_to_the_largest_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let point = |step| EvalPoint {
            step,
            phase: Phase::Online,
            success_rate: 0.5,
            mean_return: 0.0,
            episodes: 10,
        };
        let pts = [point(0), point(u64::MAX / 2), point(u64::MAX)];
        let phases = Phases {
            offline_steps: u64::MAX,
            online_steps: 0,
        };
        draw_learning_curves(&path, "test", &[("qam", "qam", &pts)], phases).unwrap();
        assert!(path.is_file());
    }

    #[test]
    fn a_curve_of_a_thousand_sharp_turns_stays_within_its_plot() {
        // A rate from 0 to 0.5 and back every few pixels: mitred joins of the wide line ran to the image's foot.
        let points: Vec<EvalPoint> = (0..1000)
            .map(|i| EvalPoint {
                step: 100 * (i + 1),
                phase: Phase::Offline,
                success_rate: if i % 3 == 1 { 0.5 } else { 0.0 },
                mean_return: 0.0,
                episodes: 2,
            })
            .collect();
        let phases = Phases {
            offline_steps: 100_000,
            online_steps: 0,
        };
        let chart = learning_curves("t", &[("qam", "qam", &points[..])], phases, None);
        let mut rgb = vec![0u8; CHART_SIZE.0 as usize * CHART_SIZE.1 as usize * 3];
        draw(&mut rgb, &chart).unwrap();
        let line = palette_color(chart.series[0].color);
        let line = [line.0, line.1, line.2];
        // The axis' labels and title, below the plot.
        let foot = &rgb[(CHART_SIZE.1 as usize - 40) * CHART_SIZE.0 as usize * 3..];
        let strays = foot.chunks(3).filter(|px| *px == line).count();
        assert_eq!(strays, 0, "pixels of the line below the plot");
    }

    #[test]
    fn a_learning_curve_marks_the_online_phase_only_where_the_run_has_one() {
        let points = [EvalPoint {
            step: 100,
            phase: Phase::Offline,
            success_rate: 0.5,
            mean_return: 0.0,
            episodes: 10,
        }];
        let chart = |offline_steps, online_steps| {
            let phases = Phases {
                offline_steps,
                online_steps,
            };
            let chart = learning_curves("test", &[("qam", "qam", &points[..])], phases, None);
            (chart.online_from, chart.x_desc)
        };
        assert_eq!(chart(200, 100), (Some(200.0), STEPS_DESC.to_string()));
        // Offline only: no mark where it never goes online.
        assert_eq!(chart(200, 0), (None, OFFLINE_STEPS_DESC.to_string()));
        assert_eq!(chart(0, 100), (None, ONLINE_STEPS_DESC.to_string()));
        // A run's own curve is in its agent's colour, as `qamlab plot` draws it.
        let phases = Phases {
            offline_steps: 200,
            online_steps: 0,
        };
        for (agent, family) in [("qam", 0), ("bc", 1), ("qam-e", 4), ("dqn", FAMILIES - 1)] {
            let chart = learning_curves("test", &[(agent, agent, &points[..])], phases, None);
            assert_eq!(chart.series[0].color, palette_index(family, 0), "{agent}");
        }
        // Every kind has a family of its own, none the grey of names that are no kind.
        let families: std::collections::BTreeSet<_> = AgentKind::ALL
            .map(|kind| agent_family(kind.as_str()))
            .into();
        assert_eq!(families.len(), AgentKind::ALL.len());
        assert!(families.iter().all(|&f| f < FAMILIES - 1), "{families:?}");
    }

    fn samples(points: &[(u64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(step, y)| Sample {
                step,
                x: step as f64,
                y,
            })
            .collect()
    }

    #[test]
    fn several_runs_are_averaged_at_the_steps_all_share() {
        let runs = [
            samples(&[(10, 0.0), (20, 0.5), (30, 1.0)]),
            samples(&[(10, 0.2), (20, 0.3), (30, 0.8), (40, 0.9)]),
            samples(&[(10, 0.1), (15, 0.1), (20, 0.4), (30, 0.6)]),
        ];
        let merged = mean_over_runs(&runs, Band::MinMax);
        let got: Vec<(f64, f64, (f64, f64))> = merged
            .points
            .iter()
            .map(|p| (p.x, p.y, p.band.unwrap()))
            .collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let want = [
            (10.0, 0.1, (0.0, 0.2)),
            (20.0, 0.4, (0.3, 0.5)),
            (30.0, 0.8, (0.6, 1.0)),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                close(g.0, w.0) && close(g.1, w.1) && close(g.2.0, w.2.0) && close(g.2.1, w.2.1),
                "{got:?}"
            );
        }
        assert_eq!(merged.left_out, [vec![], vec![40], vec![15]]);
        // One run alone is itself, with no band.
        let alone = mean_over_runs(&runs[..1], Band::MinMax);
        assert_eq!(
            alone.points[1],
            SeriesPoint {
                x: 20.0,
                y: 0.5,
                band: None
            }
        );
        assert!(alone.left_out[0].is_empty());
    }

    #[test]
    fn the_band_is_the_min_max_or_the_standard_error_or_none() {
        let runs = [
            samples(&[(10, 1.0)]),
            samples(&[(10, 2.0)]),
            samples(&[(10, 6.0)]),
        ];
        // Mean 3, sample standard deviation √7, standard error √(7/3).
        let band = |band| mean_over_runs(&runs, band).points[0].band;
        assert_eq!(band(Band::MinMax), Some((1.0, 6.0)));
        let (lo, hi) = band(Band::StandardError).unwrap();
        let error = (7.0f64 / 3.0).sqrt();
        assert!((lo - (3.0 - error)).abs() < 1e-12 && (hi - (3.0 + error)).abs() < 1e-12);
        assert_eq!(band(Band::None), None);
        assert_eq!(mean_over_runs(&runs, Band::None).points[0].y, 3.0);
        // A single run has no error to show.
        assert_eq!(
            mean_over_runs(&runs[..1], Band::StandardError).points[0].band,
            None
        );
    }

    #[test]
    fn time_is_averaged_across_runs_too() {
        let run = |minutes: f64| {
            vec![Sample {
                step: 100,
                x: minutes,
                y: 1.0,
            }]
        };
        let merged = mean_over_runs(&[run(2.0), run(4.0)], Band::MinMax);
        assert_eq!(merged.points[0].x, 3.0);
    }

    #[test]
    fn positive_values_get_a_true_log_axis_others_a_symlog_scaled_to_them() {
        // A critic loss falling from 0.14 to 3e-5: each decade as tall as the next, not squeezed onto 0.
        let scale = YScale::log_for([0.14, 0.02, 3e-5]);
        assert_eq!(scale, YScale::Log);
        let step = |a: f64, b: f64| scale.to_axis(a) - scale.to_axis(b);
        assert!((step(1e-4, 1e-5) - step(0.1, 0.01)).abs() < 1e-12);
        assert!((scale.from_axis(scale.to_axis(3e-5)) - 3e-5).abs() < 1e-15);
        let labels: Vec<String> = log_ticks(scale.to_axis(3e-5), scale.to_axis(0.14))
            .into_iter()
            .map(|t| tick_number(scale.from_axis(t)))
            .collect();
        for want in ["1e-4", "1e-3", "0.01", "0.1"] {
            assert!(labels.contains(&want.to_string()), "{labels:?}");
        }
        // Zero among them: a symlog, linear within the smallest size but 0 (as a power of ten).
        assert_eq!(
            YScale::log_for([0.0, 0.14, 3e-5]),
            YScale::SymLog {
                linear_within: 1e-5
            }
        );
        assert_eq!(
            YScale::log_for([-50.0, 0.0, 5.0]),
            YScale::SymLog { linear_within: 1.0 }
        );
        let c = 1e-5;
        let scale = YScale::SymLog { linear_within: c };
        assert_eq!(scale.to_axis(0.0), 0.0);
        assert!((scale.from_axis(scale.to_axis(3e-5)) - 3e-5).abs() < 1e-15);
        // 1e-4 and 1e-3 a decade apart, well clear of 0 (the old symlog put both within 0.0005 of it).
        assert!(scale.to_axis(1e-4) > 1.0 && step(1e-3, 1e-4) > 0.9);
        let labels: Vec<String> = symlog_ticks(0.0, scale.to_axis(0.14), c)
            .into_iter()
            .map(|t| tick_number(scale.from_axis(t)))
            .collect();
        assert!(
            labels.contains(&"0".to_string()) && labels.contains(&"1e-3".to_string()),
            "{labels:?}"
        );
    }

    #[test]
    fn symlog_ticks_are_round_values_and_span_the_range() {
        // A loss from 0.3 to 900: 0.5 (or so), 1, 10, 100, 1000 among the ticks, in order, read back exactly.
        let values: Vec<f64> = symlog_ticks(symlog(0.3), symlog(900.0), 1.0)
            .into_iter()
            .map(|t| (symlog_inverse(t) * 1e6).round() / 1e6)
            .collect();
        for v in [1.0, 10.0, 100.0] {
            assert!(values.contains(&v), "{values:?}");
        }
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        // Negative Q values and 0 keep their place.
        let values: Vec<String> = symlog_ticks(symlog(-50.0), symlog(5.0), 1.0)
            .into_iter()
            .map(|t| compact(symlog_inverse(t)))
            .collect();
        assert!(
            values.contains(&"-10".to_string()) && values.contains(&"0".to_string()),
            "{values:?}"
        );
        // Within one decade: linear ticks, still at least three.
        assert!(symlog_ticks(symlog(0.4), symlog(0.8), 1.0).len() >= 3);
        assert!(log_ticks(0.4f64.log10(), 0.8f64.log10()).len() >= 3);
    }

    #[test]
    fn a_log_axis_within_one_decade_labels_its_lower_part() {
        // The reviewer's loss from 4.5 down to 1.2: labelled 2, 3 and 4 only, nothing below 2.
        let (lo, hi) = (1.2f64.log10(), 4.5f64.log10());
        let margin = (hi - lo) / 20.0;
        let (lo, hi) = (lo - margin, hi + margin);
        let ticks = log_ticks(lo, hi);
        let labels: Vec<String> = ticks.iter().map(|&t| tick_number(10f64.powf(t))).collect();
        assert!(ticks.len() >= 3, "{labels:?}");
        assert!(
            ticks[0] <= lo + (hi - lo) / 4.0,
            "nothing labelled in the lower quarter: {labels:?}"
        );
        assert!(labels.contains(&"1.5".to_string()), "{labels:?}");
        // None crowded where the log axis squeezes them.
        assert!(
            ticks.windows(2).all(|w| w[1] - w[0] >= (hi - lo) / 14.0),
            "{labels:?}"
        );
        // A symlog within a decade likewise.
        let c = 1.0;
        let (lo, hi) = (symlog_scaled(1.2, c), symlog_scaled(4.5, c));
        let ticks = symlog_ticks(lo, hi, c);
        assert!(ticks[0] <= lo + (hi - lo) / 4.0, "{ticks:?}");
    }

    #[test]
    fn a_learning_curve_of_an_unfinished_run_says_how_far_it_got() {
        let point = |step| EvalPoint {
            step,
            phase: Phase::Offline,
            success_rate: 0.0,
            mean_return: 0.0,
            episodes: 2,
        };
        let phases = Phases {
            offline_steps: 600,
            online_steps: 0,
        };
        let points = [point(300)];
        // Drawn by training at an evaluation before its last step: in progress then.
        let chart = learning_curves("fql", &[("fql", "fql", &points[..])], phases, None);
        assert_eq!(
            chart.subtitle.as_deref(),
            Some("in progress: step 300 of 600")
        );
        // At its last step, the run is whole: nothing said.
        let done = [point(300), point(600)];
        let chart = learning_curves("fql", &[("fql", "fql", &done[..])], phases, None);
        assert_eq!(chart.subtitle, None);
        // Stopped at 423 (the reviewer's rF): said so.
        let stopped = Progress::Stopped {
            step: 423,
            total: 600,
        };
        let chart = learning_curves("fql", &[("fql", "fql", &points[..])], phases, Some(stopped));
        assert_eq!(
            chart.subtitle.as_deref(),
            Some("stopped at step 423 of 600")
        );
        // Stopped during its final evaluation: at its last step, but not finished.
        let last = Progress::Stopped {
            step: 600,
            total: 600,
        };
        assert_eq!(
            last.describe(),
            "stopped at step 600 of 600, before its final evaluation"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        draw_stopped_learning_curves(&path, "fql", &[("fql", "fql", &points[..])], phases, 423)
            .unwrap();
        assert!(path.is_file());
    }

    #[test]
    fn each_series_marks_where_it_goes_online_where_the_chart_has_no_one_line() {
        // A flat line at mid-height; its runs go online at 50: a tick in its colour at the plot's foot.
        let flat: Vec<(f64, f64)> = (0..=10).map(|k| (f64::from(k) * 10.0, 10.0)).collect();
        let pixels_at_foot = |online_from: Option<f64>, chart_line: Option<f64>| {
            let chart = chart(
                vec![Series {
                    online_from,
                    ..series(&flat, 0, 0)
                }],
                chart_line,
            );
            let mut rgb = vec![0u8; CHART_SIZE.0 as usize * CHART_SIZE.1 as usize * 3];
            draw(&mut rgb, &chart).unwrap();
            let color = palette_color(0);
            let color = [color.0, color.1, color.2];
            // The plot's foot: above the x axis' labels (40 pixels) and the margin (16).
            let foot = CHART_SIZE.1 as usize - 56;
            rgb[(foot - 20) * CHART_SIZE.0 as usize * 3..foot * CHART_SIZE.0 as usize * 3]
                .chunks(3)
                .filter(|px| *px == color)
                .count()
        };
        assert!(pixels_at_foot(Some(50.0), None) > 0);
        assert_eq!(pixels_at_foot(None, None), 0);
        // The chart's own line says it for every series: no tick.
        assert_eq!(pixels_at_foot(Some(50.0), Some(50.0)), 0);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(compact(50_000.0), "50k");
        assert_eq!(compact(1_250_000.0), "1.25M");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(-3.0), "-3");
        assert_eq!(compact(-0.0001), "-1.0e-4");
        assert_eq!(tick_number(1e-4), "1e-4");
        assert_eq!(tick_number(2.5e-5), "2.5e-5");
        assert_eq!(tick_number(0.005), "5e-3");
        assert_eq!(tick_number(0.1), "0.1");
        assert_eq!(tick_number(100.0), "100");
    }

    fn series(points: &[(f64, f64)], color: usize, variant: usize) -> Series {
        Series {
            label: "qam".into(),
            points: points
                .iter()
                .map(|&(x, y)| SeriesPoint { x, y, band: None })
                .collect(),
            color,
            variant,
            runs: Vec::new(),
            online_from: None,
        }
    }

    #[test]
    fn a_series_colour_is_its_own_readable_and_its_seeds_differ_in_dashes_and_marker() {
        // Each colour dark enough to read on white (the old ninth, a pale lime, was not).
        for color in 0..3 * PALETTE_LEN {
            let RGBAColor(r, g, b, _) = line_style(&series(&[], color, 0)).color;
            let luminance =
                (0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)) / 255.0;
            assert!(luminance < 0.6, "colour {color}: {r}, {g}, {b}");
        }
        // A colour is the series' own, whatever its place among the series.
        let style = |color, variant| line_style(&series(&[], color, variant));
        assert_eq!(style(3, 0).color, PALETTE[1][0]);
        assert_eq!(style(3, 0).dashes, None);
        // Seeds of one setting drawn apart: one colour, each dashed otherwise and marked otherwise.
        let (a, b, c) = (style(3, 0), style(3, 1), style(3, 2));
        assert!(a.color == b.color && b.color == c.color);
        assert!(b.dashes.is_some() && c.dashes.is_some() && b.dashes != c.dashes);
        assert!(a.marker != b.marker && b.marker != c.marker && a.marker != c.marker);
        // Past the palette: its colours again, dashed.
        assert_eq!(style(PALETTE_LEN + 1, 0).color, PALETTE[0][1]);
        assert!(style(PALETTE_LEN + 1, 0).dashes.is_some());
    }

    fn chart(series: Vec<Series>, online_from: Option<f64>) -> Chart {
        Chart {
            title: String::new(),
            subtitle: None,
            x_desc: String::new(),
            y_desc: String::new(),
            y_scale: YScale::Linear,
            online_from,
            series,
        }
    }

    #[test]
    fn the_legend_goes_where_no_curve_is() {
        let corner = |points: &[(f64, f64)]| {
            let chart = chart(vec![series(points, 0, 0)], None);
            legend_and_online_label(&chart, x_range(&chart), y_range(&chart), None, |y| y).0
        };
        // Rising: the upper left is free; falling from there: the upper right.
        assert!(matches!(
            corner(&[(0.0, 0.0), (10.0, 1.0)]),
            SeriesLabelPosition::UpperLeft
        ));
        assert!(matches!(
            corner(&[(0.0, 1.0), (10.0, 0.0)]),
            SeriesLabelPosition::UpperRight
        ));
    }

    #[test]
    fn the_online_label_stays_on_the_chart_and_clear_of_the_legend() {
        // At the right edge (an offline run's last step): the label goes left of the line.
        let flat = [(0.0, 0.0), (100.0, 0.0)];
        let at_edge = chart(vec![series(&flat, 0, 0)], Some(100.0));
        let mark = online_mark(&at_edge, x_range(&at_edge)).unwrap();
        assert_eq!(mark.side, Side::Left);
        let long = Series {
            label: "qam lr 0.001 (3 seeds, mean, band min–max)".into(),
            ..series(&flat, 0, 0)
        };
        let early = chart(vec![long], Some(10.0));
        let mark = online_mark(&early, x_range(&early)).unwrap();
        assert_eq!(
            mark,
            OnlineMark {
                x: 10.0,
                side: Side::Right,
                top: ONLINE_LABEL_TOP
            }
        );
        // A curve along the bottom leaves both upper corners free: the legend takes the one its label is not in.
        let (corner, label) =
            legend_and_online_label(&early, x_range(&early), y_range(&early), Some(mark), |y| y);
        assert!(
            matches!(corner, SeriesLabelPosition::UpperRight),
            "{corner:?}"
        );
        assert_eq!(label, Some(mark));
        // Online from step 0 (an online-only run), or past the last point: no line.
        let online_only = chart(vec![series(&flat, 0, 0)], Some(0.0));
        assert_eq!(online_mark(&online_only, x_range(&online_only)), None);
    }

    #[test]
    fn the_online_label_makes_way_for_a_legend_that_would_otherwise_cover_the_curves() {
        // The reviewer's dgrp.png: success 0 throughout, online from step 300 of 700, a long legend. Both upper
        // corners hold the label's place at the top, the lower ones the curves: the legend goes up, the label moves
        // below it, clear of both.
        let zeros = |from: u64| -> Vec<(f64, f64)> {
            (from..=7).map(|k| (k as f64 * 100.0, 0.0)).collect()
        };
        let label = "qam dataset d.npz (CRC-32 dc018a58) (2 seeds, mean, band min–max)";
        let chart = Chart {
            y_scale: YScale::Fraction,
            ..chart(
                vec![
                    Series {
                        label: label.into(),
                        ..series(&zeros(2), 0, 0)
                    },
                    Series {
                        label: "qam (qam-s2)".into(),
                        ..series(&zeros(5), 1, 0)
                    },
                ],
                Some(300.0),
            )
        };
        let (x, y) = (x_range(&chart), y_range(&chart));
        let mark = online_mark(&chart, x).unwrap();
        let (corner, moved) = legend_and_online_label(&chart, x, y, Some(mark), |v| v);
        let right = match corner {
            SeriesLabelPosition::UpperLeft => false,
            SeriesLabelPosition::UpperRight => true,
            other => panic!("the legend covers the curves at {other:?}"),
        };
        let moved = moved.unwrap();
        let u = (moved.x - x.0) / (x.1 - x.0);
        let legend = legend_box(legend_size(&chart), right, true);
        assert!(
            !overlap(legend, online_label_box(moved, u)),
            "{moved:?} under the legend"
        );
        // Still clear of the curves, along the foot.
        assert!(moved.top - ONLINE_LABEL_SIZE.1 > 0.1, "{moved:?}");
        // It draws.
        let dir = tempfile::tempdir().unwrap();
        draw_chart(&dir.path().join("dgrp.png"), &chart).unwrap();
    }

    #[test]
    fn a_runs_curve_is_titled_with_its_seed_and_folder() {
        let title = |run: &str| learning_curve_title("qam", "pendulum", 2, Path::new(run));
        assert_eq!(
            title("runs/qam-it1-s2"),
            "qam on pendulum, seed 2 (qam-it1-s2)"
        );
        // A long name keeps both ends (where runs' names tell them apart), within the chart.
        let long = format!("runs/qam-{}-it1-s2", "x".repeat(80));
        let cut = title(&long);
        assert!(
            cut.starts_with("qam on pendulum, seed 2 (qam-xx")
                && cut.ends_with("x-it1-s2)")
                && cut.contains('…')
                && cut.chars().count() <= 70,
            "{cut}"
        );
    }

    #[test]
    fn a_chart_of_every_scale_and_style_draws() {
        let dir = tempfile::tempdir().unwrap();
        let banded = |color, variant, lo: f64| Series {
            label: format!("qam {color}"),
            points: (1..=5)
                .map(|k| {
                    let y = 10f64.powi(-k);
                    SeriesPoint {
                        x: f64::from(k) * 100.0,
                        y,
                        band: Some((y * lo, y * 2.0)),
                    }
                })
                .collect(),
            color,
            variant,
            runs: vec![vec![(100.0, 1e-3), (300.0, 0.0), (500.0, 2e-5)]],
            online_from: Some(200.0),
        };
        for (scale, lo) in [
            (YScale::Log, -1.0),
            (YScale::Log, 0.5),
            (
                YScale::SymLog {
                    linear_within: 1e-6,
                },
                -1.0,
            ),
            (YScale::Linear, 0.5),
        ] {
            let chart = Chart {
                y_scale: scale,
                ..chart(
                    vec![banded(0, 0, lo), banded(0, 1, lo), banded(12, 0, lo)],
                    Some(300.0),
                )
            };
            let path = dir.path().join("chart.png");
            draw_chart(&path, &chart).unwrap();
        }
    }
}
