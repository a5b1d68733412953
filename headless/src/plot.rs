//! Charts of runs, as PNG: the learning curve (evaluation success rate against training steps) that training
//! redraws at each evaluation, and `qamlab plot`'s charts of any value a run records, where several seeds' runs
//! are drawn as their mean with a band.

use std::path::Path;

use anyhow::Context;
use image::ImageEncoder;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use crate::evaluate::EvalPoint;

/// How a chart's y axis reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YScale {
    /// A fraction from 0 to 1 (a success rate), the whole range shown.
    Fraction,
    /// Linear over the values' range.
    Linear,
    /// [`symlog`]: values that span orders of magnitude (losses) each show their course, and 0 and negative
    /// values keep their place, as on a plain log axis they would not.
    SymLog,
}

/// One point of a series: `y` at `x`, and the band about it where the series stands for several runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesPoint {
    /// Where it is drawn across (a training step, or minutes).
    pub x: f64,
    /// The value (several runs' mean).
    pub y: f64,
    /// The runs' least and greatest value, shaded; `None` for a single run.
    pub band: Option<(f64, f64)>,
}

/// One line of a chart, named in the legend.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// The points in increasing `x`.
    pub points: Vec<SeriesPoint>,
}

/// What a chart shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The caption above it.
    pub title: String,
    /// The x axis' name.
    pub x_desc: String,
    /// The y axis' name.
    pub y_desc: String,
    /// How y reads.
    pub y_scale: YScale,
    /// Where online fine-tuning starts, marked with a line; `None` for no mark.
    pub online_from: Option<f64>,
    /// The lines, each in a colour and marker of its own.
    pub series: Vec<Series>,
}

/// The x axis' name on a chart against training steps.
pub const STEPS_DESC: &str = "training step (offline, then online)";

/// Draws the success-rate curve of one or more runs (label, points) to `path` (PNG), atomically.
/// `offline_steps` marks where online fine-tuning starts.
pub fn draw_learning_curves(
    path: &Path,
    title: &str,
    runs: &[(&str, &[EvalPoint])],
    offline_steps: u64,
) -> anyhow::Result<()> {
    let series = runs
        .iter()
        .map(|(label, points)| Series {
            label: (*label).to_string(),
            points: points
                .iter()
                .map(|p| SeriesPoint {
                    x: p.step as f64,
                    y: p.success_rate,
                    band: None,
                })
                .collect(),
        })
        .collect();
    let chart = Chart {
        title: title.to_string(),
        x_desc: STEPS_DESC.into(),
        y_desc: "success rate".into(),
        y_scale: YScale::Fraction,
        online_from: (offline_steps > 0).then_some(offline_steps as f64),
        series,
    };
    draw_chart(path, &chart)
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

/// Several runs as one series ([`mean_over_runs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// At each step that every run has: x and y averaged over the runs, y's least and greatest as the band.
    pub points: Vec<SeriesPoint>,
    /// For each run, in order, its steps that some other run lacks: left out of the mean.
    pub left_out: Vec<Vec<u64>>,
}

/// The mean of several runs' samples (each in increasing step order) at the steps all of them have, with the
/// runs' min–max as the band. A step only some runs have is left out (and reported), not averaged over fewer
/// runs: that would make the mean jump where a run stops.
pub fn mean_over_runs(runs: &[Vec<Sample>]) -> Merged {
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
            SeriesPoint {
                x: samples.iter().map(|s| s.x).sum::<f64>() / n,
                y: ys.clone().sum::<f64>() / n,
                band: (runs.len() > 1).then(|| {
                    (
                        ys.clone().fold(f64::INFINITY, f64::min),
                        ys.fold(f64::NEG_INFINITY, f64::max),
                    )
                }),
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
    v.signum() * v.abs().ln_1p() / std::f64::consts::LN_10
}

/// The value whose [`symlog`] is `s`.
pub fn symlog_inverse(s: f64) -> f64 {
    s.signum() * (10f64.powf(s.abs()) - 1.0)
}

/// The runs' colours, in order, each readable on white (Palette99's third is a pale yellow); more runs than these
/// take Palette99's.
const SERIES_COLORS: [RGBAColor; 6] = [
    RGBAColor(31, 119, 180, 1.0),
    RGBAColor(230, 110, 20, 1.0),
    RGBAColor(44, 150, 44, 1.0),
    RGBAColor(200, 40, 40, 1.0),
    RGBAColor(120, 80, 170, 1.0),
    RGBAColor(120, 80, 60, 1.0),
];

/// Series with more points than this are drawn as lines alone: markers would merge into a thick smear.
const MAX_MARKED_POINTS: usize = 60;

/// How opaque a series' band is.
const BAND_ALPHA: f64 = 0.18;

fn series_color(i: usize) -> RGBAColor {
    SERIES_COLORS
        .get(i)
        .copied()
        .unwrap_or_else(|| Palette99::pick(i).to_rgba())
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
    let to_y = move |v: f64| match scale {
        YScale::SymLog => symlog(v),
        YScale::Fraction | YScale::Linear => v,
    };
    let (x_lo, x_hi) = x_range(chart);
    let (y_lo, y_hi) = y_range(chart);
    let x_ticks = linear_ticks(x_lo, x_hi, 8.0);
    let y_ticks = match scale {
        YScale::Fraction => (0..=10).map(|k| f64::from(k) / 10.0).collect(),
        YScale::Linear => linear_ticks(y_lo, y_hi, 8.0),
        YScale::SymLog => symlog_ticks(y_lo, y_hi),
    };
    let root = BitMapBackend::with_buffer(rgb, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut cc = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            TickedAxis::new((x_lo, x_hi), x_ticks),
            TickedAxis::new((y_lo, y_hi), y_ticks),
        )?;
    let y_label = move |v: &f64| match scale {
        YScale::Fraction => format!("{v:.1}"),
        YScale::Linear => compact(*v),
        YScale::SymLog => compact(symlog_inverse(*v)),
    };
    cc.configure_mesh()
        .x_desc(&chart.x_desc)
        .y_desc(&chart.y_desc)
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&y_label)
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    if let Some(online) = chart.online_from
        && online > 0.0
        && online < x_hi
    {
        cc.draw_series(LineSeries::new(
            [(online, y_lo), (online, y_hi)],
            BLACK.mix(0.35).stroke_width(1),
        ))?;
        // Just below the top: clear of the frame.
        cc.draw_series(std::iter::once(Text::new(
            " online from here",
            (online, y_hi - (y_hi - y_lo) * 0.03),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.6)),
        )))?;
    }
    // Bands first, so that no band covers another series' line.
    for (i, series) in chart.series.iter().enumerate() {
        draw_band(&mut cc, series, series_color(i), to_y)?;
    }
    for (i, series) in chart.series.iter().enumerate() {
        draw_line(&mut cc, i, series, to_y)?;
    }
    let corner = legend_corner(chart, (x_lo, x_hi), (y_lo, y_hi), to_y);
    cc.configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

/// The plotting area of a chart, in its coordinates (x and y as drawn).
type Area<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<TickedAxis, TickedAxis>>;

/// A linear axis whose ticks are chosen here (plotters' own cannot be told a symlog axis' powers of ten, and its
/// key-point combinator loses the label formatting).
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

/// The shaded min–max band of a series that stands for several runs (a bar where it has one point).
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

/// A series' line, its markers (a shape of its own per series, so that coinciding lines stay told apart) and its
/// legend entry.
fn draw_line(
    cc: &mut Area<'_>,
    i: usize,
    series: &Series,
    to_y: impl Fn(f64) -> f64,
) -> anyhow::Result<()> {
    let color = series_color(i);
    let banded = series.points.iter().any(|p| p.band.is_some());
    let points: Vec<(f64, f64)> = series.points.iter().map(|p| (p.x, to_y(p.y))).collect();
    cc.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
        .label(series.label.as_str())
        .legend(move |(x, y)| {
            // A banded series' entry shows the band's shade behind its line.
            let shade = if banded {
                color.mix(BAND_ALPHA)
            } else {
                TRANSPARENT
            };
            EmptyElement::at((x, y))
                + Rectangle::new([(0, -5), (18, 5)], shade.filled())
                + PathElement::new([(0, 0), (18, 0)], color.stroke_width(2))
        });
    if points.len() > MAX_MARKED_POINTS {
        return Ok(());
    }
    let points = points.into_iter();
    match i % 3 {
        0 => cc.draw_series(points.map(|p| Circle::new(p, 3, color.filled())))?,
        1 => cc.draw_series(points.map(|p| TriangleMarker::new(p, 5, color.filled())))?,
        _ => cc.draw_series(points.map(|p| Cross::new(p, 4, color.stroke_width(2))))?,
    };
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

/// The y axis' range, as drawn (a symlog axis' in symlog values): a fraction's whole range, else the values' and
/// bands' with a margin.
fn y_range(chart: &Chart) -> (f64, f64) {
    if chart.y_scale == YScale::Fraction {
        return (-0.03, 1.03);
    }
    let to_y = |v: f64| match chart.y_scale {
        YScale::SymLog => symlog(v),
        YScale::Fraction | YScale::Linear => v,
    };
    let ys: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .flat_map(|p| {
            let (lo, hi) = p.band.unwrap_or((p.y, p.y));
            [p.y, lo, hi]
        })
        .filter(|y| y.is_finite())
        .map(to_y)
        .collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    // A constant series still gets an axis about its value.
    let margin = if hi > lo {
        (hi - lo) / 20.0
    } else {
        (lo.abs() / 10.0).max(0.1)
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

/// Ticks of a symlog axis over `lo..hi` (symlog values): 0, then powers of ten, then 5 and 2 times them, each
/// kept where it is not crowded by one kept before; linear ticks where that leaves fewer than three (a range
/// within one decade).
fn symlog_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let powers = || (-3..=15).map(|k| 10f64.powi(k));
    let candidates = std::iter::once(0.0)
        .chain(powers())
        .chain(powers().map(|p| 5.0 * p))
        .chain(powers().map(|p| 2.0 * p))
        .flat_map(|v| [v, -v])
        .map(symlog)
        .filter(|s| (lo..=hi).contains(s));
    let gap = (hi - lo) / 14.0;
    let mut ticks: Vec<f64> = Vec::new();
    for s in candidates {
        if ticks.iter().all(|t| (t - s).abs() >= gap) {
            ticks.push(s);
        }
    }
    if ticks.len() < 3 {
        ticks = linear_ticks(symlog_inverse(lo), symlog_inverse(hi), 5.0)
            .into_iter()
            .map(symlog)
            .collect();
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

/// The corner of the plot that the curves cross least, for the legend: losses fall from the upper left where
/// success rises to the upper right. Ties go to the upper left.
fn legend_corner(
    chart: &Chart,
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
    to_y: impl Fn(f64) -> f64,
) -> SeriesLabelPosition {
    // The legend's size as a fraction of the plot (about 820 x 440 pixels): 7 pixels a character and 40 for the
    // sample line across, 20 a row down.
    let chars = chart
        .series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let width = ((chars as f64 * 7.0 + 40.0) / 820.0).min(1.0);
    let height = ((chart.series.len() as f64 * 20.0 + 12.0) / 440.0).min(1.0);
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
    }
    let unit = |(x, y): (f64, f64)| ((x - x_lo) / (x_hi - x_lo), (y - y_lo) / (y_hi - y_lo));
    let corners = [
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerLeft, false, false),
        (SeriesLabelPosition::LowerRight, true, false),
    ];
    let crossings = |right: bool, upper: bool| {
        along
            .iter()
            .map(|&p| unit(p))
            .filter(|&(u, v)| {
                let across = if right { u >= 1.0 - width } else { u <= width };
                let down = if upper {
                    v >= 1.0 - height
                } else {
                    v <= height
                };
                across && down
            })
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, right, upper)| crossings(right, upper))
        .map_or(SeriesLabelPosition::UpperLeft, |(corner, _, _)| corner)
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
        draw_learning_curves(&path, "test", &[("qam", &pts)], 200).unwrap();
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
        draw_learning_curves(&path, "test", &[("qam", &pts)], u64::MAX).unwrap();
        assert!(path.is_file());
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
        let merged = mean_over_runs(&runs);
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
        let alone = mean_over_runs(&runs[..1]);
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
    fn time_is_averaged_across_runs_too() {
        let run = |minutes: f64| {
            vec![Sample {
                step: 100,
                x: minutes,
                y: 1.0,
            }]
        };
        let merged = mean_over_runs(&[run(2.0), run(4.0)]);
        assert_eq!(merged.points[0].x, 3.0);
    }

    #[test]
    fn symlog_ticks_are_round_values_and_span_the_range() {
        // A loss from 0.3 to 900: 0.5 (or so), 1, 10, 100, 1000 among the ticks, in order, read back exactly.
        let values: Vec<f64> = symlog_ticks(symlog(0.3), symlog(900.0))
            .into_iter()
            .map(|t| (symlog_inverse(t) * 1e6).round() / 1e6)
            .collect();
        for v in [1.0, 10.0, 100.0] {
            assert!(values.contains(&v), "{values:?}");
        }
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        // Negative Q values and 0 keep their place.
        let values: Vec<String> = symlog_ticks(symlog(-50.0), symlog(5.0))
            .into_iter()
            .map(|t| compact(symlog_inverse(t)))
            .collect();
        assert!(
            values.contains(&"-10".to_string()) && values.contains(&"0".to_string()),
            "{values:?}"
        );
        // Within one decade: linear ticks, still at least three.
        assert!(symlog_ticks(symlog(0.4), symlog(0.8)).len() >= 3);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(compact(50_000.0), "50k");
        assert_eq!(compact(1_250_000.0), "1.25M");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(-3.0), "-3");
        assert_eq!(compact(-0.0001), "-1.0e-4");
    }

    #[test]
    fn the_legend_goes_where_no_curve_is() {
        let series = |points: &[(f64, f64)]| Series {
            label: "qam".into(),
            points: points
                .iter()
                .map(|&(x, y)| SeriesPoint { x, y, band: None })
                .collect(),
        };
        let chart = |points: &[(f64, f64)]| Chart {
            title: String::new(),
            x_desc: String::new(),
            y_desc: String::new(),
            y_scale: YScale::Linear,
            online_from: None,
            series: vec![series(points)],
        };
        let corner = |points| {
            let chart = chart(points);
            legend_corner(&chart, x_range(&chart), y_range(&chart), |y| y)
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
}
