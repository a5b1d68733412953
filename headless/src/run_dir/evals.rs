//! `eval.csv`: the run's evaluations, written whole and read back checked.

use std::io::Write;

use anyhow::{Context, ensure};

use super::RunDir;
use crate::evaluate::EvalPoint;
use crate::files::write_atomically;
use crate::phase::Phase;

/// The columns of `eval.csv`.
const EVALS_HEADER: &str = "step,phase,success_rate,mean_return,episodes";

impl RunDir {
    /// Reads `eval.csv`: its header, then one evaluation a line (blank lines are skipped). A line that does not
    /// parse is an error naming the file and the line.
    pub fn read_evals(&self) -> anyhow::Result<Vec<EvalPoint>> {
        let path = self.evals();
        let text = crate::files::read_stored_text(
            &path,
            "the evaluation log",
            crate::limits::MAX_LOG_BYTES,
        )?;
        let mut lines = text.lines().map(str::trim_end).enumerate();
        let header = lines.next().map_or("", |(_, l)| l);
        ensure!(
            header == EVALS_HEADER,
            "{}: line 1: expected the header {EVALS_HEADER}, got {header:?}",
            path.display()
        );
        lines
            .filter(|(_, line)| !line.is_empty())
            .map(|(i, line)| {
                let bad = || {
                    format!(
                        "{}: line {}: expected {EVALS_HEADER}",
                        path.display(),
                        i + 1
                    )
                };
                let f: Vec<&str> = line.split(',').collect();
                ensure!(f.len() == 5, bad());
                let step: u64 = f[0].parse().with_context(bad)?;
                let success_rate: f64 = f[2].parse().with_context(bad)?;
                let mean_return: f64 = f[3].parse().with_context(bad)?;
                let episodes: usize = f[4].parse().with_context(bad)?;
                ensure!(
                    (0.0..=1.0).contains(&success_rate) && mean_return.is_finite(),
                    "{}: line {}: success rate {} and mean return {}: expected a fraction in [0, 1] and a finite \
                     number",
                    path.display(),
                    i + 1,
                    success_rate,
                    mean_return
                );
                let phase = f[1].parse::<Phase>();
                ensure!(
                    phase.is_ok() && episodes > 0,
                    "{}: line {}: phase {:?} over {} episodes: expected offline or online, over 1 or more",
                    path.display(),
                    i + 1,
                    f[1],
                    episodes
                );
                Ok(EvalPoint {
                    step,
                    phase: phase?,
                    success_rate,
                    mean_return,
                    episodes,
                })
            })
            .collect::<anyhow::Result<Vec<EvalPoint>>>()
            .and_then(|points| {
                // Written in step order, one evaluation a step: anything else was edited or mixed from two runs.
                if let Some(k) = points.windows(2).position(|w| w[1].step <= w[0].step) {
                    anyhow::bail!(
                        "{}: step {} comes after step {}: expected evaluations in increasing step order",
                        path.display(),
                        points[k + 1].step,
                        points[k].step
                    );
                }
                Ok(points)
            })
    }

    /// Rewrites `eval.csv` from all evaluations so far.
    pub fn write_evals(&self, evals: &[EvalPoint]) -> anyhow::Result<()> {
        write_atomically(&self.evals(), |f| {
            writeln!(f, "{EVALS_HEADER}")?;
            for e in evals {
                writeln!(
                    f,
                    "{},{},{},{},{}",
                    e.step, e.phase, e.success_rate, e.mean_return, e.episodes
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::temp_run;

    #[test]
    fn evaluations_read_back_and_a_file_without_its_header_is_refused() {
        let (_dir, run) = temp_run();
        let point = EvalPoint {
            step: 20,
            phase: Phase::Offline,
            success_rate: 0.5,
            mean_return: -120.0,
            episodes: 2,
        };
        run.write_evals(std::slice::from_ref(&point)).unwrap();
        // A blank line at the end (an editor's) is no evaluation.
        let text = std::fs::read_to_string(run.evals()).unwrap();
        std::fs::write(run.evals(), format!("{text}\n")).unwrap();
        assert_eq!(run.read_evals().unwrap(), vec![point]);
        // Without its header the first evaluation would be taken for one.
        std::fs::write(run.evals(), "20,offline,0,-200,2\n").unwrap();
        let err = run.read_evals().unwrap_err().to_string();
        assert!(
            err.contains("line 1: expected the header step,phase,"),
            "{err}"
        );
    }

    #[test]
    fn evaluations_of_no_known_phase_or_out_of_order_are_refused() {
        let (_dir, run) = temp_run();
        for (rows, says) in [
            (
                "5,sideways,0,-200,30\n",
                "phase \"sideways\" over 30 episodes",
            ),
            ("5,offline,0,-200,0\n", "phase \"offline\" over 0 episodes"),
            (
                "10,offline,0,-200,30\n5,offline,0,-200,30\n",
                "step 5 comes after step 10",
            ),
        ] {
            std::fs::write(run.evals(), format!("{EVALS_HEADER}\n{rows}")).unwrap();
            let err = format!("{:#}", run.read_evals().unwrap_err());
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn evaluations_out_of_range_are_refused() {
        let (_dir, run) = temp_run();
        std::fs::write(
            run.evals(),
            format!("{EVALS_HEADER}\n20,offline,5,-200,2\n"),
        )
        .unwrap();
        let err = run.read_evals().unwrap_err().to_string();
        assert!(err.contains("line 2: success rate 5"), "{err}");
    }
}
