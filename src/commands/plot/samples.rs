//! The values a chart draws of each run: its samples of the metric across the x axis, smoothed, and the runs
//! left out for having none.

use qamlab_headless::plot::Sample;

use super::XAxis;
use super::metric::{Metric, null_until};
use super::read::RunData;
use super::wall_clock::timed;

/// A run with the values the chart draws of it.
pub(super) struct Drawn {
    pub(super) run: RunData,
    pub(super) samples: Vec<Sample>,
}

/// The runs with something to draw: a run without the metric (BC has no critic_loss) is left out, said; none
/// at all is an error.
pub(super) fn drawable(
    runs: Vec<RunData>,
    metric: &Metric,
    (x, window): (XAxis, usize),
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<Drawn>> {
    let mut drawn = Vec::new();
    for run in runs {
        let (mut samples, mut said) = samples(&run, metric, x)?;
        // Each phase on its own: the online phase's first points are not its offline agent's.
        let online_from = samples.partition_point(|s| s.step <= run.offline_steps);
        let (offline, online) = samples.split_at_mut(online_from);
        smooth(offline, window);
        smooth(online, window);
        warnings.append(&mut said);
        if samples.is_empty() {
            let lacks = match metric {
                Metric::Success | Metric::Return => "has no evaluation yet".to_string(),
                // Null until an online episode ends: of a run that goes online, not yet.
                Metric::Logged(name) => match null_until(name) {
                    Some(when) if run.online_steps > 0 => {
                        format!("has no value of {name} yet: it is null until {when}")
                    }
                    _ => format!("records no {name}"),
                },
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

#[cfg(test)]
mod tests {
    use qamlab_agent::AgentKind;

    use crate::commands::plot::fixtures::{args, config, fake_run, fake_run_of, metric_args, row};
    use crate::commands::plot::prepare;

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
    fn a_run_whose_online_success_is_null_yet_is_left_out_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(AgentKind::Qam, 0);
        cfg.online_steps = 100;
        let online_row = |step, success: Option<f64>| serde_json::json!({"step": step, "phase": "online", "online_episode_success": success});
        let young = fake_run(dir.path(), "young", &cfg, &[], &[online_row(210, None)]);
        let ended = fake_run(
            dir.path(),
            "ended",
            &cfg,
            &[],
            &[online_row(210, Some(1.0))],
        );
        let plot = prepare(&metric_args("online_episode_success", &[&young, &ended])).unwrap();
        assert_eq!(
            plot.warnings,
            [format!(
                "{} has no value of online_episode_success yet: it is null until an online episode has ended: \
                 left out",
                young.display()
            )]
        );
        // A run that never goes online records none.
        let rows = [row(100, 1.0, 0.5)];
        cfg.online_steps = 0;
        let offline = fake_run(dir.path(), "offline", &cfg, &[], &rows);
        let plot = prepare(&metric_args("online_episode_success", &[&offline, &ended])).unwrap();
        assert_eq!(
            plot.warnings,
            [format!(
                "{} records no online_episode_success: left out",
                offline.display()
            )]
        );
    }
}
