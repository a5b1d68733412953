//! The wall-clock time axis (`--x time`): a run's values placed at the minutes since it started, from its
//! metrics rows' `wall_seconds`.

use anyhow::bail;
use qamlab_headless::plot::Sample;
use qamlab_headless::run_dir::RunDir;

use super::list_steps;
use super::read::RunData;

/// `values` placed at the run's wall-clock minutes; a value past the run's last metrics row (an evaluation of a
/// run still being written) has no time yet and is left out, said.
pub(super) fn timed(
    run: &RunData,
    values: Vec<(u64, f64)>,
) -> anyhow::Result<(Vec<Sample>, Vec<String>)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use qamlab_agent::AgentKind;

    use crate::commands::plot::fixtures::{fake_run_of, points, row, time_args};
    use crate::commands::plot::prepare;

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
}
