//! `metrics.jsonl`: appending a row, dropping those past a resumed run's checkpoint, and reading the rows back.

use std::io::Write;

use anyhow::{Context, bail, ensure};

use super::RunDir;
use crate::files::{is_not_found, read_stored_file, read_stored_text, write_bytes_atomically};

impl RunDir {
    /// Appends one metrics row.
    pub fn append_metrics(&self, row: &serde_json::Value) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.metrics())
            .with_context(|| format!("opening {}", self.metrics().display()))?;
        writeln!(file, "{row}").with_context(|| format!("writing {}", self.metrics().display()))?;
        Ok(())
    }

    /// Drops metrics rows logged after `step` (a resumed run logs them again), and warns of what else went (see
    /// `trim_metrics`).
    pub fn truncate_metrics_after(
        &self,
        step: u64,
        log_interval: u64,
        offline_steps: u64,
    ) -> anyhow::Result<()> {
        // The first row is due at the first log interval, or at the offline phase's end if that comes first.
        let first_row = if offline_steps > 0 {
            offline_steps.min(log_interval)
        } else {
            log_interval
        };
        let path = self.metrics();
        let bytes = match read_stored_file(&path, "the metrics log", crate::limits::MAX_LOG_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if is_not_found(&e) => {
                // A run checkpointed past its first log had rows: the file went since.
                if step >= first_row {
                    tracing::warn!(
                        "{} is missing: the rows the run logged before step {step} are lost (the evaluations in \
                         eval.csv are intact)",
                        path.display()
                    );
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let (kept, lost) = trim_metrics(&bytes, step, log_interval, first_row);
        for what in lost {
            tracing::warn!("{}: {what}", path.display());
        }
        if kept == bytes {
            return Ok(());
        }
        write_bytes_atomically(&path, &kept)
    }

    /// Reads `metrics.jsonl`: one row a line, each its `step` and its numeric values by key (`phase` and other
    /// text are left out). A line that is not a JSON object with a whole `step`, or rows out of step order, are an
    /// error naming the file and the line; an unfinished last line (a run being written, or killed mid-write) is
    /// left out with a warning.
    pub fn read_metrics(&self) -> anyhow::Result<Vec<MetricsRow>> {
        let path = self.metrics();
        let text = read_stored_text(&path, "the metrics log", crate::limits::MAX_LOG_BYTES)?;
        let mut rows: Vec<MetricsRow> = Vec::new();
        let mut lines = text.split('\n').enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            if line.trim().is_empty() {
                continue;
            }
            let row = match parse_metrics_row(line) {
                Some(row) => row,
                // Only the last piece can lack its newline: a row still being appended, not damage.
                None if lines.peek().is_none() => {
                    tracing::warn!(
                        "{}: line {} is unfinished (a run writing it, or killed mid-write): left out",
                        path.display(),
                        i + 1
                    );
                    break;
                }
                None => bail!(
                    "{}: line {}: expected a JSON object with a whole-number \"step\", got {:?}",
                    path.display(),
                    i + 1,
                    line.chars().take(80).collect::<String>()
                ),
            };
            if let Some(last) = rows.last() {
                ensure!(
                    row.step > last.step,
                    "{}: line {}: step {} comes after step {}: expected rows in increasing step order",
                    path.display(),
                    i + 1,
                    row.step,
                    last.step
                );
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// One row of `metrics.jsonl` ([`RunDir::read_metrics`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRow {
    /// The run's step when the row was logged (offline gradient steps, then `offline_steps` + online env steps).
    pub step: u64,
    /// The row's numeric values by key (losses, Q statistics, throughput, `wall_seconds`, ...).
    pub values: std::collections::BTreeMap<String, f64>,
}

/// A metrics line as a row: `None` where it is not a JSON object with a whole-number `step`.
fn parse_metrics_row(line: &str) -> Option<MetricsRow> {
    let serde_json::Value::Object(fields) = serde_json::from_str(line).ok()? else {
        return None;
    };
    let step = fields.get("step")?.as_u64()?;
    let values = fields
        .iter()
        .filter(|(key, _)| key.as_str() != "step")
        .filter_map(|(key, value)| Some((key.clone(), value.as_f64()?)))
        .collect();
    Some(MetricsRow { step, values })
}

/// The rows of `metrics.jsonl` (`bytes`) up to `step`, and what else was lost besides the rows past it: damaged
/// lines (an unfinished last line, which a kill leaves, is no news), and rows missing before `step` (a file cut
/// short: its last row more than `log_interval` steps before `step`).
fn trim_metrics(
    bytes: &[u8],
    step: u64,
    log_interval: u64,
    first_row: u64,
) -> (Vec<u8>, Vec<String>) {
    let row_step = |line: &[u8]| {
        // As bytes: a line damaged into something that is not UTF-8 is damage like any other.
        let line = std::str::from_utf8(line).ok()?;
        let row = serde_json::from_str::<serde_json::Value>(line).ok()?;
        row.get("step").and_then(serde_json::Value::as_u64)
    };
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let (mut kept, mut damaged, mut last_kept) = (Vec::new(), Vec::new(), None);
    for (i, line) in lines.iter().enumerate() {
        let unfinished = i + 1 == lines.len();
        match row_step(line) {
            Some(s) if s <= step && !unfinished => {
                kept.extend_from_slice(line);
                kept.push(b'\n');
                last_kept = Some(s);
                // Damage before a kept row lost a row of the run; damage past the step goes with the rows the
                // resumed run logs again.
                damaged.iter_mut().for_each(|(_, lost)| *lost = true);
            }
            Some(_) => {}
            None if unfinished || line.is_empty() => {}
            None => damaged.push((i + 1, false)),
        }
    }
    // Damage after the last row kept, where that row is not the checkpoint's own: one of those lines may have been
    // a row up to the step (the checkpoint's, say), which the resumed run does not log again.
    let at_step = last_kept == Some(step);
    let (damaged, after): (Vec<_>, Vec<_>) = damaged.into_iter().partition(|&(_, lost)| lost);
    let after: Vec<String> = (after.into_iter())
        .filter(|_| !at_step)
        .map(|(line, _)| line.to_string())
        .collect();
    let damaged: Vec<String> = damaged
        .into_iter()
        .map(|(line, _)| line.to_string())
        .collect();
    let mut lost = Vec::new();
    if !after.is_empty() {
        let (lines, which) = match after.as_slice() {
            [one] => (
                format!("line {one}, after the last row kept, is"),
                format!(
                    "if it was the row of a step up to {step} (the checkpoint's), that row is lost"
                ),
            ),
            many => (
                format!("lines {}, after the last row kept, are", many.join(", ")),
                format!(
                    "any of them that was the row of a step up to {step} (the checkpoint's) is lost"
                ),
            ),
        };
        lost.push(format!(
            "{lines} damaged (not a metrics row): dropped as the run resumes; {which}"
        ));
    }
    if !damaged.is_empty() {
        let one = damaged.len() == 1;
        lost.push(format!(
            "line{} {} {} damaged (not a metrics row): dropped as the run resumes, and {} row{} lost",
            if one { "" } else { "s" },
            damaged.join(", "),
            if one { "is" } else { "are" },
            if one { "its" } else { "their" },
            if one { " is" } else { "s are" },
        ));
    }
    match last_kept {
        None if step >= first_row => lost.push(format!(
            "it holds no row, but the run resumes from step {step}: the rows logged before were lost (the file \
             was emptied or replaced; the evaluations in eval.csv are intact)"
        )),
        // A row is due at `last + log_interval` at the latest, in either phase: one there is missing.
        Some(last) if step >= last.saturating_add(log_interval) => lost.push(format!(
            "its last row is of step {last}, but the run resumes from step {step}: the rows logged between were \
             lost (the file was cut short or replaced; the evaluations in eval.csv are intact)"
        )),
        _ => {}
    }
    (kept, lost)
}

#[cfg(test)]
mod tests {
    use crate::run_dir::temp_run;

    #[test]
    fn resuming_drops_the_metrics_past_the_checkpoint_also_after_a_damaged_line() {
        let (_dir, run) = temp_run();
        let mut bytes = b"{\"step\":10}\n{\"step\":20}\n".to_vec();
        bytes.extend_from_slice(b"{\"step\":\xff\xfe}\n{\"step\":30}\n{\"st");
        std::fs::write(run.metrics(), &bytes).unwrap();
        run.truncate_metrics_after(20, 10, 0).unwrap();
        assert_eq!(
            std::fs::read_to_string(run.metrics()).unwrap(),
            "{\"step\":10}\n{\"step\":20}\n"
        );
        // Nothing past the step: the file stays as it is; everything past it: none of it.
        run.truncate_metrics_after(20, 10, 0).unwrap();
        assert_eq!(
            std::fs::read_to_string(run.metrics()).unwrap(),
            "{\"step\":10}\n{\"step\":20}\n"
        );
        run.truncate_metrics_after(5, 10, 0).unwrap();
        assert_eq!(std::fs::read_to_string(run.metrics()).unwrap(), "");
    }

    #[test]
    fn resuming_says_which_metrics_rows_were_damaged_or_missing() {
        let bytes = b"{\"step\":10}\n{\"step\": x\n{\"step\":30}\n{\"st";
        let (kept, lost) = super::trim_metrics(bytes, 30, 10, 10);
        assert_eq!(kept, b"{\"step\":10}\n{\"step\":30}\n");
        // Only the damage is said: a kill's unfinished last line, and rows up to the step, are no news.
        assert_eq!(
            lost,
            [
                "line 2 is damaged (not a metrics row): dropped as the run resumes, and its row is lost"
            ]
        );
        let (_, lost) = super::trim_metrics(bytes, 90, 10, 10);
        assert!(
            lost[1].starts_with("its last row is of step 30, but the run resumes from step 90"),
            "{lost:?}"
        );
        // An emptied file: no row at all.
        let (_, lost) = super::trim_metrics(b"", 90, 10, 10);
        assert!(
            lost[0].starts_with("it holds no row, but the run resumes from step 90"),
            "{lost:?}"
        );
        // Damage past the step goes with the rows logged again: no row of the run is lost.
        let (kept, lost) = super::trim_metrics(
            b"{\"step\":10}\n{\"step\":20}\n\0\0\0\n{\"step\":30}\n",
            20,
            10,
            10,
        );
        assert_eq!((kept.len(), lost.len()), (24, 0), "{lost:?}");
        // Damage after the last row kept, short of the checkpoint's step: it may have been that step's row.
        let (_, lost) =
            super::trim_metrics(b"{\"step\":304}\n\0\0\0\n{\"step\":504}\n", 400, 100, 100);
        assert_eq!(
            lost,
            [
                "line 2, after the last row kept, is damaged (not a metrics row): dropped as the run resumes; if it \
                 was the row of a step up to 400 (the checkpoint's), that row is lost"
            ]
        );
        // A row due by the last one's step + log_interval: missing at exactly that step too.
        let (_, lost) = super::trim_metrics(b"{\"step\":10}\n", 20, 10, 10);
        assert!(
            lost[0].starts_with("its last row is of step 10"),
            "{lost:?}"
        );
        // An offline phase shorter than the interval logs at its end: its row is the first due.
        let (_, lost) = super::trim_metrics(b"", 40, 100, 30);
        assert!(lost[0].starts_with("it holds no row"), "{lost:?}");
        // A whole file, of rows every 10 steps to the step: nothing lost.
        let (kept, lost) = super::trim_metrics(b"{\"step\":10}\n{\"step\":20}\n", 25, 10, 10);
        assert_eq!((kept.len(), lost.len()), (24, 0));
    }

    #[test]
    fn metrics_read_back_by_key_and_only_an_unfinished_last_line_is_skipped() {
        let (_dir, run) = temp_run();
        let rows = "{\"step\":10,\"phase\":\"offline\",\"critic_loss\":2.5,\"wall_seconds\":1.0}\n\
                    {\"step\":20,\"phase\":\"offline\",\"critic_loss\":1.5,\"q_mean\":null}\n";
        std::fs::write(run.metrics(), format!("{rows}{{\"step\":30,\"crit")).unwrap();
        let read = run.read_metrics().unwrap();
        assert_eq!(read.iter().map(|r| r.step).collect::<Vec<_>>(), [10, 20]);
        assert_eq!(read[0].values["critic_loss"], 2.5);
        assert_eq!(read[0].values["wall_seconds"], 1.0);
        // Text and null are no values.
        assert_eq!(read[1].values.keys().collect::<Vec<_>>(), ["critic_loss"]);
        // A damaged line before the last is damage, named; so are rows out of order.
        std::fs::write(run.metrics(), format!("{{\"step\":5,\"x\n{rows}")).unwrap();
        let err = format!("{:#}", run.read_metrics().unwrap_err());
        assert!(
            err.contains("metrics.jsonl: line 1: expected a JSON object"),
            "{err}"
        );
        std::fs::write(run.metrics(), format!("{rows}{{\"step\":15}}\n")).unwrap();
        let err = format!("{:#}", run.read_metrics().unwrap_err());
        assert!(err.contains("line 3: step 15 comes after step 20"), "{err}");
    }
}
