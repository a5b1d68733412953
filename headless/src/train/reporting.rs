//! What a run reports as it goes: progress bars, metrics rows (to `metrics.jsonl` and the observer), and
//! evaluations with the learning curve.

use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use qamlab_agent::metrics::must_be_finite;
use serde_json::json;

use super::q_range;
use super::trainer::{Trainer, recent_rate};
use crate::evaluate::evaluate_unless_stopped;
use crate::phase::Phase;
use crate::plot::{Phases, draw_learning_curves};

/// What a run's reporting keeps between reports: whether it shows progress, and the warnings it said once already.
pub(super) struct Reporting {
    /// Whether progress bars show (where they cannot, each evaluation is a line of its own).
    progress: bool,
    /// Whether a mean Q outside what the rewards allow was reported already.
    q_range_reported: bool,
    /// Whether drawing the learning curve failed already (said once; the run goes on without it).
    curve_failed: bool,
    /// Whether this process logged a metrics row: until it has, the rows so far keep the interval the run logged
    /// them with (a resume may have changed it), which its checkpoints record.
    logged_a_row: bool,
}

impl Reporting {
    /// Reporting with progress bars or without, nothing said yet.
    pub(super) fn new(progress: bool) -> Self {
        Self {
            progress,
            q_range_reported: false,
            curve_failed: false,
            logged_a_row: false,
        }
    }

    /// Whether this process logged a metrics row yet.
    pub(super) fn logged_a_row(&self) -> bool {
        self.logged_a_row
    }
}

impl Trainer<'_> {
    pub(super) fn bar(&self, len: u64, pos: u64, phase: Phase) -> ProgressBar {
        let bar =
            crate::console::progress_bar(phase.as_str(), len, "steps", self.reporting.progress);
        bar.set_position(pos);
        // A resumed phase starts part way: those steps were not made at this session's rate.
        bar.reset_eta();
        bar
    }

    /// Leaves the phase's bar where the phase ended: full where it ran to its end, where it stopped otherwise
    /// (finishing it there would show a stopped run as complete).
    pub(super) fn end_bar(&self, bar: &ProgressBar) {
        if self.stop_requested() {
            bar.abandon();
        } else {
            bar.finish();
        }
    }

    /// The bar's message while an evaluation runs.
    pub(super) fn evaluating(&self) -> String {
        format!("evaluating: {} episodes...", self.cfg.eval_episodes)
    }

    pub(super) fn status(&self) -> String {
        let success = self
            .state
            .evals
            .last()
            .map_or("-".into(), |e| format!("{:.0}%", 100.0 * e.success_rate));
        let ups = self.state.updates as f64 / self.state.update_seconds.max(1e-9);
        format!("success {success} | {ups:.0} upd/s")
    }

    /// Logs an online row: the last update's metrics (if one was made yet) and the online episodes' progress.
    pub(super) fn log_online(
        &mut self,
        last_metrics: Option<&qamlab_agent::UpdateMetrics>,
    ) -> anyhow::Result<()> {
        // Null until there are episodes to measure: no episode ended yet, or fewer than the recent window's (a
        // part-filled window would be the whole phase's rate again, under another name).
        let rate = (self.state.online_episodes > 0)
            .then(|| self.state.online_successes as f64 / self.state.online_episodes as f64);
        let recent_rate = recent_rate(&self.state.recent_successes);
        let extra = [
            // A count, written as a whole number.
            ("online_episodes", json!(self.state.online_episodes)),
            ("online_episode_success", json!(rate)),
            ("online_recent_success", json!(recent_rate)),
            // Null before an env step, as in summary.json: a 0 would be averaged in with other runs' rates.
            (
                "env_steps_per_second",
                json!(
                    (self.state.online_step > 0)
                        .then(|| self.state.online_step as f64 / self.state.env_seconds.max(1e-9))
                ),
            ),
        ];
        match last_metrics {
            Some(m) => self.log(m, Phase::Online, &extra),
            None => self.log_row(Phase::Online, Vec::new(), &extra),
        }
    }

    pub(super) fn log(
        &mut self,
        metrics: &qamlab_agent::UpdateMetrics,
        phase: Phase,
        extra: &[(&str, serde_json::Value)],
    ) -> anyhow::Result<()> {
        // The only host synchronisation of the loop: once per log interval. On a GPU the updates
        // queued since the last read finish here, so this wait counts as update time.
        let t0 = Instant::now();
        let pairs = metrics.to_pairs()?;
        self.state.update_seconds += t0.elapsed().as_secs_f64();
        // A fall-back from CUDA graphs is said by the agent as it happens.
        if let Some((name, value)) = pairs
            .iter()
            .find(|(name, value)| must_be_finite(name) && !value.is_finite())
        {
            let why = if name == "grad_norm" {
                " (the gradients' norm overflowed float32, so clipping zeroed every update: a loss weight such as \
                 fql_alpha, or a target such as edit_target_entropy, far too large?)"
            } else {
                ""
            };
            bail!(
                "training diverged at step {}: {name} = {value}{why}",
                self.total_step()
            );
        }
        if let Some(&(_, q_mean)) = pairs.iter().find(|(name, _)| name == "q_mean") {
            self.check_q_range(q_mean);
        }
        self.log_row(phase, pairs, extra)
    }

    /// Warns, once, of a mean Q outside what the rewards in the buffer allow.
    fn check_q_range(&mut self, q_mean: f64) {
        if self.reporting.q_range_reported {
            return;
        }
        let pending = self.episodes.staged().iter().flat_map(|p| &p.rewards);
        let Some((lowest, highest)) =
            q_range::reward_range(self.replay.rewards.iter().chain(pending))
        else {
            return;
        };
        let discount = self.cfg.agent.discount;
        let (low, high) = q_range::q_bounds(lowest, highest, discount);
        if let Some(side) = q_range::out_of_range(q_mean, (low, high)) {
            let (rho, side) = (side.rho_remedy(), side.as_str());
            tracing::warn!(
                "step {}: the critic's mean Q, {q_mean:.1}, lies {side} [{low:.1}, {high:.1}], the values rewards in \
                 [{lowest}, {highest}] allow at discount {discount}: the critic is diverging (q_mean in \
                 metrics.jsonl); a lower lr or {rho} usually settles it",
                self.total_step()
            );
            self.reporting.q_range_reported = true;
        }
    }

    fn log_row(
        &mut self,
        phase: Phase,
        pairs: Vec<(String, f64)>,
        extra: &[(&str, serde_json::Value)],
    ) -> anyhow::Result<()> {
        let mut row = serde_json::Map::new();
        row.insert("step".into(), json!(self.total_step()));
        row.insert("phase".into(), json!(phase));
        row.insert("updates".into(), json!(self.state.updates));
        // Null before the first update (an online run before `start_training`), as in summary.json.
        row.insert(
            "updates_per_second".into(),
            json!(
                (self.state.updates > 0)
                    .then(|| self.state.updates as f64 / self.state.update_seconds.max(1e-9))
            ),
        );
        row.insert("wall_seconds".into(), json!(self.wall_seconds()));
        for (k, v) in pairs {
            row.insert(k, json!(v));
        }
        for (k, v) in extra {
            row.insert((*k).into(), v.clone());
        }
        let row = serde_json::Value::Object(row);
        self.run.append_metrics(&row)?;
        self.reporting.logged_a_row = true;
        let step = self.total_step();
        if let Some(observer) = self.observer.as_mut() {
            observer.on_log(step, &row);
            observer.on_weights(step, &self.agent);
        }
        Ok(())
    }

    pub(super) fn wall_seconds(&self) -> f64 {
        self.wall_before + self.started.elapsed().as_secs_f64()
    }

    /// Evaluates the policy at this step and records it; `false` where the run was asked to stop first: the
    /// evaluation is given up, and the resumed run makes it (see [`Trainer::evaluation_owed`]). An evaluation draws
    /// from a stream of its own (see [`crate::evaluate::EVAL_ACTING_POSITION`]): training's acting draws are the
    /// same whatever the evaluation settings.
    pub(super) fn evaluate(&mut self, phase: Phase) -> anyhow::Result<bool> {
        let step = self.total_step();
        let observer = &self.observer;
        let stop = |_: usize| observer.as_ref().is_some_and(|o| o.should_stop());
        let result = evaluate_unless_stopped(
            &mut self.agent,
            self.scene,
            self.cfg.eval_episodes,
            self.cfg.eval_envs,
            crate::evaluate::run_evaluation_seed(self.cfg.seed),
            &stop,
        )
        .with_context(|| format!("evaluating task {} at step {step}", self.cfg.task))?;
        let Some(result) = result else {
            return Ok(false);
        };
        let point = result.point(step, phase);
        // Where the bars cannot show (output to a file, a pipe, CI's log), each evaluation is a line of its own.
        if self.reporting.progress && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            crate::stderr_line!(
                "eval at step {step} ({phase}): success {:.0}% over {} episodes, mean return {:.1}, {:.0} s into the run",
                100.0 * point.success_rate,
                point.episodes,
                point.mean_return,
                self.wall_seconds()
            );
        }
        if let Some(observer) = self.observer.as_mut() {
            observer.on_eval(&point);
        }
        self.state.evals.push(point);
        self.run.write_evals(&self.state.evals)?;
        self.draw_curve();
        Ok(true)
    }

    /// Draws the learning curve where a finished run's was lost (deleted since): a resume that finds the run
    /// finished redraws it from the evaluations, as training drew it.
    pub(super) fn redraw_missing_curve(&mut self) {
        if !self.run.curve().exists() && !self.state.evals.is_empty() {
            self.draw_curve();
        }
    }

    /// Draws the learning curve of the run's evaluations (as eval.csv holds them) into its PNG.
    fn draw_curve(&mut self) {
        self.draw_curve_stopped_at(None);
    }

    /// Redraws the learning curve of a run that stopped before its last step, saying where (its redraw at its last
    /// evaluation says it was in progress then).
    pub(super) fn redraw_curve_stopped(&mut self) {
        if !self.state.evals.is_empty() {
            self.draw_curve_stopped_at(Some(self.total_step()));
        }
    }

    /// Draws the learning curve, of a run stopped at `stopped` if given.
    fn draw_curve_stopped_at(&mut self, stopped: Option<u64>) {
        let label = format!("{} ({})", self.cfg.agent.kind.as_str(), self.task_name());
        let title = crate::plot::learning_curve_title(
            self.cfg.agent.kind.as_str(),
            self.task_name(),
            self.cfg.seed,
            self.run.root(),
        );
        let runs = [(
            label.as_str(),
            self.cfg.agent.kind.as_str(),
            self.state.evals.as_slice(),
        )];
        // The online steps the run takes (rounded up to a multiple of the envs), as `qamlab plot` counts them.
        let phases = Phases {
            offline_steps: self.cfg.offline_steps,
            online_steps: super::total_steps(self.cfg) - self.cfg.offline_steps,
        };
        let path = self.run.curve();
        let drawn = match stopped {
            Some(step) => {
                crate::plot::draw_stopped_learning_curves(&path, &title, &runs, phases, step)
            }
            None => draw_learning_curves(&path, &title, &runs, phases),
        };
        // The picture is a view of eval.csv, which holds every evaluation: a run goes on without it (`qamlab plot`
        // draws it later), said once.
        if let Err(err) = drawn
            && !self.reporting.curve_failed
        {
            self.reporting.curve_failed = true;
            tracing::warn!(
                "drawing {} failed ({err:#}); the run goes on, its evaluations are in eval.csv (`qamlab plot {}` \
                 draws them)",
                self.run.curve().display(),
                crate::shell::quote_path(self.run.root())
            );
        }
    }
}
