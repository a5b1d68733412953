//! `metrics.jsonl`: appending a row, dropping those past a resumed run's checkpoint, and reading the rows back.

use std::io::Write;

use anyhow::{Context, bail, ensure};

use super::RunDir;
use crate::files::write_bytes_atomically;

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

    /// Drops metrics rows logged after `step` (a resumed run logs them again).
    pub fn truncate_metrics_after(&self, step: u64) -> anyhow::Result<()> {
        let path = self.metrics();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // Line by line as bytes: a line the crash cut short, or damaged into something that is not UTF-8, goes
        // with the others past `step` rather than keeping the whole file as it was.
        let kept: String = bytes
            .split(|&b| b == b'\n')
            .filter_map(|line| std::str::from_utf8(line).ok())
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
                    .is_some_and(|s| s <= step)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        if kept.as_bytes() == bytes {
            return Ok(());
        }
        write_bytes_atomically(&path, kept.as_bytes())
    }

    /// Reads `metrics.jsonl`: one row a line, each its `step` and its numeric values by key (`phase` and other
    /// text are left out). A line that is not a JSON object with a whole `step`, or rows out of step order, are an
    /// error naming the file and the line; an unfinished last line (a run being written, or killed mid-write) is
    /// left out with a warning.
    pub fn read_metrics(&self) -> anyhow::Result<Vec<MetricsRow>> {
        let path = self.metrics();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
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

#[cfg(test)]
mod tests {
    use crate::run_dir::temp_run;

    #[test]
    fn resuming_drops_the_metrics_past_the_checkpoint_also_after_a_damaged_line() {
        let (_dir, run) = temp_run();
        let mut bytes = b"{\"step\":10}\n{\"step\":20}\n".to_vec();
        bytes.extend_from_slice(b"{\"step\":\xff\xfe}\n{\"step\":30}\n{\"st");
        std::fs::write(run.metrics(), &bytes).unwrap();
        run.truncate_metrics_after(20).unwrap();
        assert_eq!(
            std::fs::read_to_string(run.metrics()).unwrap(),
            "{\"step\":10}\n{\"step\":20}\n"
        );
        // Nothing past the step: the file stays as it is; everything past it: none of it.
        run.truncate_metrics_after(20).unwrap();
        assert_eq!(
            std::fs::read_to_string(run.metrics()).unwrap(),
            "{\"step\":10}\n{\"step\":20}\n"
        );
        run.truncate_metrics_after(5).unwrap();
        assert_eq!(std::fs::read_to_string(run.metrics()).unwrap(), "");
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
