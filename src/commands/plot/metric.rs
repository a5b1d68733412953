//! What a chart draws (`--metric`): the evaluations' success rate or return, or a key of `metrics.jsonl`; its
//! axis' name and scale, and the error for a name no run records.

use anyhow::bail;
use qamlab_headless::plot::{YScale, tick_number};

use super::read::RunData;

/// What a chart can draw: the evaluations' values, or a key of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Metric {
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
    pub(super) fn parse(name: &str) -> Self {
        match name {
            "success" => Metric::Success,
            "return" => Metric::Return,
            name => Metric::Logged(name.to_string()),
        }
    }

    /// The name `--metric` gives it.
    pub(super) fn name(&self) -> &str {
        match self {
            Metric::Success => "success",
            Metric::Return => "return",
            Metric::Logged(name) => name,
        }
    }

    /// The y axis' name, on `scale`: a log axis says so, and a symlog where it is linear.
    pub(super) fn y_desc(&self, scale: YScale) -> String {
        match (self, scale) {
            (Metric::Success, _) => "success rate".into(),
            (Metric::Return, _) => "mean return (evaluation)".into(),
            (Metric::Logged(name), YScale::Log) => format!("{name} (log scale)"),
            (Metric::Logged(name), YScale::SymLog { linear_within }) => {
                format!(
                    "{name} (symmetric log scale, linear within ±{})",
                    tick_number(linear_within)
                )
            }
            (Metric::Logged(name), _) => name.clone(),
        }
    }

    /// Losses and gradient sizes span orders of magnitude over a run (an adjoint loss from 10 to 900, a critic
    /// loss from 0.1 to 1e-5): a log scale shows each stretch of their course. Q values, rates and counts read
    /// best as they are.
    fn on_log_scale(&self) -> bool {
        matches!(self, Metric::Logged(name)
            if name.ends_with("_loss") || matches!(name.as_str(), "grad_norm" | "adj_abs_max"))
    }

    /// A success rate of the online episodes (`online_episode_success`, `online_recent_success`): a fraction, read
    /// on the evaluations' success scale.
    fn is_rate(&self) -> bool {
        matches!(self, Metric::Logged(name) if name.ends_with("_success") || name.ends_with("success_rate"))
    }

    /// The y axis' scale for `values`, every value drawn: a metric on a log scale on a plain log axis where all
    /// are positive, else on a symlog scaled to them (see [`YScale::log_for`]); a rate on the 0-1 fraction scale
    /// the success curves use (a rate of 0 throughout is not a value about 0 with negative ticks), unless a value
    /// lies outside it.
    pub(super) fn y_scale(&self, values: impl IntoIterator<Item = f64>) -> YScale {
        match self {
            Metric::Success => YScale::Fraction,
            Metric::Return => YScale::Linear,
            _ if self.on_log_scale() => YScale::log_for(values),
            _ if self.is_rate() => {
                let fractions = values.into_iter().all(|v| (0.0..=1.0).contains(&v));
                if fractions {
                    YScale::Fraction
                } else {
                    YScale::Linear
                }
            }
            Metric::Logged(_) => YScale::Linear,
        }
    }
}

/// Until when `metrics.jsonl` writes the key `name` as null, for the keys written so until they mean something
/// (which a reader of the files takes for absent): `None` for the others.
pub(super) fn null_until(name: &str) -> Option<&'static str> {
    match name {
        "online_episode_success" => Some("an online episode has ended"),
        "online_recent_success" => Some("100 online episodes have ended"),
        _ => None,
    }
}

/// An unknown metric is an error naming the ones the runs record, and the one likely meant.
pub(super) fn check_metric_name(name: &str, runs: &[RunData]) -> anyhow::Result<()> {
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
    if let Some(when) = null_until(name) {
        bail!("--metric {name}: no run has a value of it yet: it is null until {when}");
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

#[cfg(test)]
mod tests {
    use qamlab_agent::AgentKind;
    use qamlab_headless::plot::YScale;

    use crate::commands::plot::fixtures::{fake_run_of, metric_args, points, row};
    use crate::commands::plot::{PlotArgs, prepare};

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
        assert_eq!(plot.chart.y_scale, YScale::Log);
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
        // The online phase's mean starts afresh (the runs train offline for 200 steps): its first points are not
        // the offline agent's.
        let rows =
            [(100, 1.0), (200, 100.0), (300, 5.0), (400, 7.0)].map(|(step, v)| row(step, 0.0, v));
        let both = fake_run_of(dir.path(), "both", AgentKind::Qam, 0, &[], &rows);
        let plot = prepare(&PlotArgs {
            smooth: 2,
            ..metric_args("critic_loss", &[&both])
        })
        .unwrap();
        let ys: Vec<f64> = points(&plot.chart.series[0]).iter().map(|p| p.1).collect();
        assert_eq!(ys, [1.0, 50.5, 5.0, 6.0]);
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
        // Null until enough episodes ended: said so, not taken for a typo.
        assert_eq!(
            err("online_recent_success"),
            "--metric online_recent_success: no run has a value of it yet: it is null until 100 online episodes \
             have ended"
        );
        let far = err("entropy");
        assert!(
            !far.contains("did you mean") && far.contains("critic_loss"),
            "{far}"
        );
    }

    #[test]
    fn an_online_success_rate_is_on_the_fraction_scale_even_at_0_throughout() {
        let dir = tempfile::tempdir().unwrap();
        let rate = |step: u64, rate: f64| {
            serde_json::json!({"step": step, "phase": "online", "wall_seconds": 1.0,
                               "online_episode_success": rate, "online_recent_success": rate})
        };
        let rows = [rate(300, 0.0), rate(400, 0.0)];
        let run = fake_run_of(dir.path(), "s0", AgentKind::Qam, 0, &[], &rows);
        for metric in ["online_episode_success", "online_recent_success"] {
            let plot = prepare(&metric_args(metric, &[&run])).unwrap();
            assert_eq!(plot.chart.y_scale, YScale::Fraction, "{metric}");
            assert_eq!(plot.chart.y_desc, metric);
        }
    }

    #[test]
    fn a_loss_with_zeros_is_on_a_symlog_linear_within_its_smallest_size() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            row(100, 10.0, 0.14),
            row(200, 20.0, 3e-5),
            row(300, 30.0, 0.0),
        ];
        let run = fake_run_of(dir.path(), "s0", AgentKind::Qam, 0, &[], &rows);
        let plot = prepare(&metric_args("critic_loss", &[&run])).unwrap();
        assert_eq!(
            plot.chart.y_scale,
            YScale::SymLog {
                linear_within: 1e-5
            }
        );
        assert_eq!(
            plot.chart.y_desc,
            "critic_loss (symmetric log scale, linear within ±1e-5)"
        );
        // Without the zero: a true log axis.
        let rows = [row(100, 10.0, 0.14), row(200, 20.0, 3e-5)];
        let run = fake_run_of(dir.path(), "s1", AgentKind::Qam, 1, &[], &rows);
        let plot = prepare(&metric_args("critic_loss", &[&run])).unwrap();
        assert_eq!(plot.chart.y_scale, YScale::Log);
    }
}
