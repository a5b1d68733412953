//! The learning curve: evaluation success rate (and the critic loss) against training steps, as PNG.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One evaluation of the policy.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EvalPoint {
    /// Total gradient/environment step count at evaluation (offline steps + online steps).
    pub step: u64,
    /// `"offline"` or `"online"`.
    pub phase: String,
    /// Fraction of evaluation episodes that ended in success.
    pub success_rate: f64,
    /// Mean undiscounted return of the evaluation episodes.
    pub mean_return: f64,
    /// Number of evaluation episodes.
    pub episodes: usize,
}

/// Draws the success-rate curve of one or more runs (label, points) to `path` (PNG), atomically.
/// `offline_steps` marks where online fine-tuning starts.
pub fn draw_learning_curves(
    path: &Path,
    title: &str,
    runs: &[(&str, &[EvalPoint])],
    offline_steps: u64,
) -> anyhow::Result<()> {
    let dir = crate::files::parent_dir(path);
    std::fs::create_dir_all(dir)?;
    // plotters picks the encoder from the extension, so the temporary keeps `.png`.
    let tmp = dir.join(format!(
        ".tmp-{}-{}.png",
        std::process::id(),
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("plot")
    ));
    let written = draw(&tmp, title, runs, offline_steps)
        .with_context(|| format!("drawing the learning curve {}", path.display()))
        .and_then(|()| {
            // On disk before it takes the name, as `files::write_atomically` does.
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

fn draw(
    path: &Path,
    title: &str,
    runs: &[(&str, &[EvalPoint])],
    offline_steps: u64,
) -> anyhow::Result<()> {
    let max_step = runs
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.step))
        .max()
        .unwrap_or(1)
        .max(offline_steps)
        .max(1);
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        // A little room past 0, 1 and the last step, so that the points there are not drawn on the frame (up to
        // u64::MAX: an edited eval.csv may hold any step).
        .build_cartesian_2d(
            0u64..max_step.saturating_add(max_step / 40).saturating_add(1),
            -0.03f64..1.03,
        )?;
    chart
        .configure_mesh()
        .x_desc("training step (offline, then online)")
        .y_desc("success rate")
        .draw()?;
    if offline_steps > 0 && offline_steps < max_step {
        chart.draw_series(LineSeries::new(
            [(offline_steps, 0.0), (offline_steps, 1.0)],
            BLACK.mix(0.35).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            " online from here",
            (offline_steps, 1.0),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.6)),
        )))?;
    }
    for (i, (label, points)) in runs.iter().enumerate() {
        let color = SERIES_COLORS
            .get(i)
            .copied()
            .unwrap_or_else(|| Palette99::pick(i).to_rgba());
        let series = points.iter().map(|p| (p.step, p.success_rate));
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        // A marker shape of its own per run, so that runs whose lines coincide stay told apart.
        match i % 3 {
            0 => chart.draw_series(series.map(|(x, y)| Circle::new((x, y), 3, color.filled())))?,
            1 => chart
                .draw_series(series.map(|(x, y)| TriangleMarker::new((x, y), 5, color.filled())))?,
            _ => chart
                .draw_series(series.map(|(x, y)| Cross::new((x, y), 4, color.stroke_width(2))))?,
        };
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_with_the_curve_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let pts: Vec<EvalPoint> = (0..5)
            .map(|i| EvalPoint {
                step: i * 100,
                phase: if i < 3 { "offline" } else { "online" }.into(),
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
            phase: "online".into(),
            success_rate: 0.5,
            mean_return: 0.0,
            episodes: 10,
        };
        let pts = [point(0), point(u64::MAX / 2), point(u64::MAX)];
        draw_learning_curves(&path, "test", &[("qam", &pts)], u64::MAX).unwrap();
        assert!(path.is_file());
    }
}
