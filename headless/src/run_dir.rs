//! The run directory: resolved config, metrics, evaluations, learning curve, checkpoints, summary.
//!
//! ```text
//! RUN/config.toml            the resolved configuration (what `--resume` re-reads; the dataset's absolute path)
//! RUN/task.scn.ron           a copy of the task's scene file, when the task is a file (what `--resume` and
//!                            `eval` load, so the run is independent of later edits to the file)
//! RUN/run.json               the CRC-32 of that copy as the run started: an edited copy is refused
//! RUN/metrics.jsonl          one JSON object per log interval (losses, Q statistics, throughput)
//! RUN/eval.csv               step, phase, success_rate, mean_return, episodes
//! RUN/learning_curve.png     redrawn at each evaluation
//! RUN/checkpoints/latest     name of the newest complete checkpoint directory (written after its files)
//! RUN/checkpoints/step-N/    agent.safetensors, replay.safetensors, state.json
//! RUN/summary.json           written at the end
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use qamlab_agent::{Agent, AgentConfig};

use crate::TrainConfig;
use crate::files::{check_writable, read_regular_text, write_atomically, write_bytes_atomically};
use crate::plot::EvalPoint;

/// What a run records of itself when it starts, beside its config (`run.json`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunRecord {
    /// CRC-32 of the run's copy of its task scene, as copied (absent for a built-in task).
    #[serde(default)]
    task_scene_crc32: Option<u32>,
}

/// The files of a complete checkpoint directory; `state.json` is written last.
const CHECKPOINT_FILES: [&str; 3] = ["agent.safetensors", "replay.safetensors", "state.json"];

/// Paths of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The run's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names of the root's entries that are not a run's: what its files, `eval`'s GIF and the temporaries of an
    /// interrupted write do not account for. A directory with none is safe to replace as a whole.
    pub fn foreign_entries(&self) -> anyhow::Result<Vec<String>> {
        const ENTRIES: [&str; 10] = [
            "config.toml",
            "task.scn.ron",
            "run.json",
            "metrics.jsonl",
            "eval.csv",
            "learning_curve.png",
            "summary.json",
            "checkpoints",
            "eval.gif",
            LOCK_FILE,
        ];
        let entries = std::fs::read_dir(&self.root)
            .with_context(|| format!("reading the run directory {}", self.root.display()))?;
        let mut foreign: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !ENTRIES.contains(&name.as_str()) && !name.starts_with(".tmp-"))
            .collect();
        foreign.sort();
        Ok(foreign)
    }

    /// Removes the temporary files (`.tmp-*`) a process killed while writing left in the run's folder and its
    /// checkpoints' folder (the `latest` pointer's). Only for
    /// the holder of the run's [`lock`](Self::lock): no one else writes there then.
    pub fn remove_leftovers(&self, _held: &RunLock) {
        for folder in [self.root.clone(), self.checkpoints()] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let temporary = entry.file_name().to_string_lossy().starts_with(".tmp-");
                if temporary && entry.file_type().is_ok_and(|t| t.is_file()) {
                    // A leftover that will not go is harmless: the next writes use new names.
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// The resolved configuration.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The run's copy of its task's scene file (a run of a built-in task has none).
    pub fn task_scene(&self) -> PathBuf {
        self.root.join("task.scn.ron")
    }

    /// What the run recorded of itself when it started (see [`RunRecord`]).
    fn record(&self) -> PathBuf {
        self.root.join("run.json")
    }

    /// Writes the run's copy of its task's scene file, and its CRC-32 into `run.json`, by which
    /// [`read_config`](Self::read_config) refuses a copy edited since.
    pub fn write_task_scene(&self, text: &[u8]) -> anyhow::Result<()> {
        write_bytes_atomically(&self.task_scene(), text)?;
        let record = RunRecord {
            task_scene_crc32: Some(crc32fast::hash(text)),
        };
        write_bytes_atomically(
            &self.record(),
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )
    }

    /// The scene file the run's task was first read from, where it now differs from the run's copy (edited since
    /// the run started): the run goes on with its copy, which a user editing the file may not expect. `None` for a
    /// built-in task, a run without a copy, or an original that is gone or unchanged.
    pub fn edited_original_scene(&self) -> Option<PathBuf> {
        // A built-in task has no copy (and no record of one) to compare.
        if !self.task_scene().is_file() {
            return None;
        }
        // Where the copy itself was edited, that is what differs, and reading the config refuses it.
        self.check_task_scene().ok()?;
        let copy = std::fs::read(self.task_scene()).ok()?;
        let text = std::fs::read_to_string(self.config()).ok()?;
        let original = PathBuf::from(TrainConfig::from_toml_str(&text, "").ok()?.task);
        let now = std::fs::read(&original).ok()?;
        (now != copy).then_some(original)
    }

    /// The configuration the run started with; a task given as a scene file is read from the run's copy, which
    /// must be as the run started (the run's checkpoints were trained on that task).
    pub fn read_config(&self) -> anyhow::Result<TrainConfig> {
        let cfg = self.read_config_unverified()?;
        if self.task_scene().is_file() {
            self.check_task_scene()?;
        }
        Ok(cfg)
    }

    /// Refuses the run's copy of its task scene if it differs from the copy the run started with (runs from
    /// before the record was kept have none to compare).
    fn check_task_scene(&self) -> anyhow::Result<()> {
        let record_path = self.record();
        let recorded = match std::fs::read_to_string(&record_path) {
            Ok(text) => serde_json::from_str::<RunRecord>(&text).with_context(|| {
                format!(
                    "{}: expected the run's record, {{\"task_scene_crc32\": N}}",
                    record_path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A run from before the record was kept has none; a deleted one leaves the copy unchecked.
                warn_once(
                    &record_path,
                    &format!(
                        "{} is missing, so {} cannot be checked against the copy the run started with (runs from \
                         before qamlab kept this record have none); if it was deleted, an edited copy goes unnoticed",
                        record_path.display(),
                        self.task_scene().display()
                    ),
                );
                RunRecord::default()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", record_path.display())),
        };
        let Some(then) = recorded.task_scene_crc32 else {
            return Ok(());
        };
        let scene = self.task_scene();
        let now = crc32fast::hash(&crate::files::read_regular_file(
            &scene,
            "the run's task scene",
            None,
        )?);
        ensure!(
            now == then,
            "{} was edited after the run started (its CRC-32 is {now:08x}; {} recorded {then:08x}): the run's \
             checkpoints were trained on the task as it was. Restore the file, or start a new run with the edited \
             task (copy it out of the run and give it to `qamlab train --task`)",
            scene.display(),
            record_path.display()
        );
        Ok(())
    }

    /// The configuration the run started with, as [`read_config`](Self::read_config) reads it but without
    /// checking the run's copy of its task scene: for reporting what the run did (its curves), not for acting
    /// on its task.
    pub fn read_config_unverified(&self) -> anyhow::Result<TrainConfig> {
        let path = self.config();
        let text = read_regular_text(
            &path,
            "the config file",
            Some(crate::limits::MAX_CONFIG_BYTES),
        )
        .with_context(|| format!("{} is not a run directory", self.root.display()))?;
        let mut cfg = TrainConfig::from_toml_str(&text, &path.display().to_string())?;
        check_config_is_whole(&text, &path)?;
        let scene = self.task_scene();
        let builtin = qamlab_tasks::builtin_names().contains(&cfg.task.as_str());
        if scene.is_file() {
            cfg.task = scene.display().to_string();
        } else if scene.exists() {
            bail!(
                "{} is not a file: the run's copy of its task scene",
                scene.display()
            );
        } else if !builtin && !cfg.task.ends_with(".ron") {
            bail!(
                "{}: task = {:?} is not a built-in task ({}) and the run holds no scene file",
                self.config().display(),
                cfg.task,
                qamlab_tasks::builtin_names().join(", ")
            );
        } else if !builtin {
            // The original file may have changed since: loading it would quietly evaluate another task.
            bail!(
                "{} is missing: the run's copy of its task scene (first read from {}), which --resume and eval load",
                scene.display(),
                cfg.task
            );
        }
        Ok(cfg)
    }

    /// Before a new run claims the directory: [`check_unused`](Self::check_unused), and first that no other
    /// process is training a run there (which `check_unused` would offer to resume).
    pub fn check_free_for_new_run(&self) -> anyhow::Result<()> {
        if self.in_use() {
            bail!(
                "{} holds a run another qamlab process is training: choose another --out, or let it finish first",
                self.root.display()
            );
        }
        self.check_unused()
    }

    /// Checks that a new run may be written here: nothing there yet, or an empty directory. A run is never
    /// written over someone's files, nor over another run (which `--resume` continues).
    pub fn check_unused(&self) -> anyhow::Result<()> {
        let root = self.root.display();
        if self.root.is_file() {
            bail!("--out {root} is a file; a run directory is needed");
        }
        // A file where one of its folders must go would otherwise fail later, on some file inside it.
        if !self.root.exists() {
            check_writable(&self.root, "--out")?;
        }
        if self.latest_checkpoint()?.is_some() {
            bail!(
                "{root} already holds a run with checkpoints: continue it with `qamlab train --resume {root}`, or \
                 choose another --out"
            );
        }
        if TrainConfig::from_toml_file(&self.config()).is_ok() {
            bail!(
                "{root} holds a run with no checkpoint yet (it stopped, or is still running, before its first), so \
                 --resume has nothing to continue: once it is stopped, remove it to start again, or choose another --out"
            );
        }
        // A lock file alone is what a run that failed before writing anything leaves.
        if let Ok(entries) = std::fs::read_dir(&self.root)
            && entries.flatten().any(|e| e.file_name() != LOCK_FILE)
        {
            bail!(
                "{root} exists and is not empty: a new run would write over its files; choose another --out"
            );
        }
        Ok(())
    }

    /// Whether another process holds the run's claim ([`lock`](Self::lock)), as a run training does.
    pub fn in_use(&self) -> bool {
        std::fs::File::open(self.root.join(LOCK_FILE))
            .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
    }

    /// Claims the run for this process: while the claim lives, another `train` or `--resume` on the run is
    /// refused. The operating system drops it when the process ends, however it ends (`kill -9` included).
    pub fn lock(&self) -> anyhow::Result<RunLock> {
        let path = self.root.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is in use by another qamlab process (training or resuming it): let it finish, or stop it, \
                 first",
                self.root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Metrics rows (JSON lines).
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Evaluation results (CSV).
    pub fn evals(&self) -> PathBuf {
        self.root.join("eval.csv")
    }

    /// Learning-curve PNG.
    pub fn curve(&self) -> PathBuf {
        self.root.join("learning_curve.png")
    }

    /// End-of-run summary.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// Directory of all checkpoints.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The directory of the newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> anyhow::Result<Option<PathBuf>> {
        let pointer = self.checkpoints().join("latest");
        match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                ensure!(
                    !name.trim().is_empty(),
                    "{} is empty: it should name the newest checkpoint directory",
                    pointer.display()
                );
                let name = name.trim();
                ensure!(
                    is_checkpoint_name(name),
                    "{} names {name:?}: expected a checkpoint directory of this run, step-N",
                    pointer.display()
                );
                let dir = self.checkpoints().join(name);
                ensure!(
                    dir.is_dir(),
                    "{} names {}, which does not exist",
                    pointer.display(),
                    dir.display()
                );
                Ok(Some(dir))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.newest_complete_checkpoint(&pointer))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", pointer.display())),
        }
    }

    /// Where `latest` is missing (removed, or lost before the run's first checkpoint was published): the newest
    /// `step-N` directory holding all its files, with a warning. Safe: each of a checkpoint's files is written
    /// whole, `state.json` last, before `latest` names it, so one holding all three is complete (and a resume
    /// checks that they agree).
    fn newest_complete_checkpoint(&self, pointer: &Path) -> Option<PathBuf> {
        let (complete, _) = self.step_checkpoints();
        let (step, dir) = complete.into_iter().max_by_key(|(step, _)| *step)?;
        warn_once(
            pointer,
            &format!(
                "{} is missing (it names the newest checkpoint): using step-{step}, the newest complete one",
                pointer.display()
            ),
        );
        Some(dir)
    }

    /// The run's `step-N` checkpoint directories: those holding all their files (step and path), and the names
    /// of those that do not (a checkpoint cut short).
    pub fn step_checkpoints(&self) -> (Vec<(u64, PathBuf)>, Vec<String>) {
        let (mut complete, mut incomplete) = (Vec::new(), Vec::new());
        let Ok(entries) = std::fs::read_dir(self.checkpoints()) else {
            return (complete, incomplete);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let Some(step) = name
                .strip_prefix("step-")
                .filter(|_| is_checkpoint_name(&name) && dir.is_dir())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if CHECKPOINT_FILES.iter().all(|f| dir.join(f).is_file()) {
                complete.push((step, dir));
            } else {
                incomplete.push(name);
            }
        }
        incomplete.sort();
        (complete, incomplete)
    }

    /// Makes `dir` (a fully written checkpoint directory) the latest, then removes older ones.
    /// The pointer is replaced atomically, so a crash at any moment leaves a complete checkpoint.
    pub fn publish_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("checkpoint directory name")?;
        write_bytes_atomically(&self.checkpoints().join("latest"), name.as_bytes())?;
        // Only older checkpoints go: whatever else someone keeps in the folder stays.
        for entry in std::fs::read_dir(self.checkpoints())?.filter_map(Result::ok) {
            let path = entry.path();
            let ours = entry.file_name().to_str().is_some_and(is_checkpoint_name);
            if ours && path.is_dir() && path != dir {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("removing the old checkpoint {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Loads the agent of a checkpoint of this run, checking that it is the agent the run's config describes, with
    /// its seed (a checkpoint copied from another run is refused), and that it fits the task's observation and
    /// action sizes.
    pub fn load_agent(
        &self,
        checkpoint: &Path,
        run: &TrainConfig,
        (obs_dim, action_dim): (usize, usize),
        device: tch::Device,
    ) -> anyhow::Result<Agent> {
        let cfg = &run.agent;
        let file = checkpoint.join("agent.safetensors");
        let mut agent = Agent::load(&file, device)?;
        if (agent.obs_dim(), agent.action_dim()) != (obs_dim, action_dim) {
            bail!(
                "checkpoint {}: its agent takes {}-D observations and gives {}-D actions, but the task has {}-D \
                 observations and {}-D actions: it was trained on another task",
                file.display(),
                agent.obs_dim(),
                agent.action_dim(),
                obs_dim,
                action_dim
            );
        }
        if agent.config() != cfg {
            bail!(
                "checkpoint {}: its agent differs from the one {} describes ({}): {} was edited since the run \
                 started, or the checkpoint belongs to another run",
                file.display(),
                self.config().display(),
                config_differences(agent.config(), cfg),
                self.config().display()
            );
        }
        if agent.seed() != run.seed {
            bail!(
                "checkpoint {}: its agent was trained with seed {}, but {} says seed = {}: the checkpoint belongs to \
                 another run, or the config was edited since the run started",
                file.display(),
                agent.seed(),
                self.config().display(),
                run.seed
            );
        }
        if let Some(position) = recorded_acting_position(checkpoint) {
            check_acting_position(&checkpoint.join("state.json"), position)?;
            agent.set_acting_position(position);
        }
        Ok(agent)
    }

    /// The newest checkpoint and its agent, loaded as [`load_agent`](Self::load_agent) loads it. A run training
    /// meanwhile may remove the checkpoint `latest` named while it is read (it keeps only the newest): where
    /// `latest` names another checkpoint after a failure, that one is read, a few times at most, rather than
    /// reporting a run that lost its checkpoint.
    pub fn load_latest_agent(
        &self,
        run: &TrainConfig,
        dims: (usize, usize),
        device: tch::Device,
    ) -> anyhow::Result<(PathBuf, Agent)> {
        const TRIES: usize = 5;
        let newest = || {
            self.latest_checkpoint()?
                .with_context(|| format!("{} has no checkpoint yet", self.root.display()))
        };
        // `latest` read just before it moved on may name a folder gone by the time it is checked: read again.
        let mut checkpoint = newest().or_else(|_| newest())?;
        for _ in 1..TRIES {
            match self.load_agent(&checkpoint, run, dims, device) {
                Ok(agent) => return Ok((checkpoint, agent)),
                Err(e) => match newest() {
                    Ok(now) if now != checkpoint => checkpoint = now,
                    _ => return Err(e),
                },
            }
        }
        let agent = self.load_agent(&checkpoint, run, dims, device)?;
        Ok((checkpoint, agent))
    }

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

    /// Reads `eval.csv`: its header, then one evaluation a line (blank lines are skipped). A line that does not
    /// parse is an error naming the file and the line.
    pub fn read_evals(&self) -> anyhow::Result<Vec<EvalPoint>> {
        let path = self.evals();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
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
                let point = EvalPoint {
                    step: f[0].parse().with_context(bad)?,
                    phase: f[1].to_string(),
                    success_rate: f[2].parse().with_context(bad)?,
                    mean_return: f[3].parse().with_context(bad)?,
                    episodes: f[4].parse().with_context(bad)?,
                };
                ensure!(
                    (0.0..=1.0).contains(&point.success_rate) && point.mean_return.is_finite(),
                    "{}: line {}: success rate {} and mean return {}: expected a fraction in [0, 1] and a finite \
                     number",
                    path.display(),
                    i + 1,
                    point.success_rate,
                    point.mean_return
                );
                ensure!(
                    matches!(point.phase.as_str(), "offline" | "online") && point.episodes > 0,
                    "{}: line {}: phase {:?} over {} episodes: expected offline or online, over 1 or more",
                    path.display(),
                    i + 1,
                    point.phase,
                    point.episodes
                );
                Ok(point)
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

/// The file a running process holds locked ([`RunDir::lock`]).
const LOCK_FILE: &str = ".lock";

/// A process's claim on a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    /// The locked file: the lock lasts as long as it is open.
    _file: std::fs::File,
}

/// The columns of `eval.csv`.
const EVALS_HEADER: &str = "step,phase,success_rate,mean_return,episodes";

/// `key = checkpoint's (config: run's)` for each agent setting in which two configs differ.
fn config_differences(checkpoint: &AgentConfig, run: &AgentConfig) -> String {
    let table = |c: &AgentConfig| toml::Table::try_from(c).unwrap_or_default();
    let (ours, theirs) = (table(run), table(checkpoint));
    theirs
        .iter()
        .filter(|(key, value)| ours.get(*key) != Some(value))
        .map(|(key, value)| match ours.get(key) {
            Some(expected) => format!("{key} = {value} (config: {expected})"),
            None => format!("{key} = {value}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A run writes every key of its configuration, so one missing is damage (a cut or emptied file), which
/// reading with defaults would silently turn into another run. Keys added to qamlab since its first runs
/// may be absent: their defaults are what those runs did.
fn check_config_is_whole(text: &str, path: &Path) -> anyhow::Result<()> {
    const LATER_KEYS: [&str; 5] = [
        "cuda_graphs",
        "tf32",
        "split_update",
        "sparse",
        "balanced_sampling",
    ];
    let written: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let complete: toml::Table = TrainConfig::default().to_toml()?.parse()?;
    let missing = |have: &toml::Table, want: &toml::Table, table: &str| -> Vec<String> {
        want.keys()
            .filter(|k| !have.contains_key(*k) && !LATER_KEYS.contains(&k.as_str()))
            .map(|k| format!("{table}{k}"))
            .collect()
    };
    let mut absent = missing(&written, &complete, "");
    if let (Some(toml::Value::Table(have)), Some(toml::Value::Table(want))) =
        (written.get("agent"), complete.get("agent"))
    {
        absent.extend(missing(have, want, "agent."));
    }
    anyhow::ensure!(
        absent.is_empty(),
        "{} lacks {}: a run writes every key of its configuration, so the file is damaged (cut or emptied)",
        path.display(),
        absent.join(", ")
    );
    Ok(())
}

/// Logs `message` as a warning, once per process for `key` (several checks of a run find the same thing).
fn warn_once(key: &Path, message: &str) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !warned.iter().any(|k| k == key) {
        warned.push(key.to_path_buf());
        tracing::warn!("{message}");
    }
}

/// Whether `name` is the name of a checkpoint directory: `step-N`.
fn is_checkpoint_name(name: &str) -> bool {
    name.strip_prefix("step-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses an `acting_position` that `file` (a checkpoint's `state.json`) records past any run's count: damage,
/// which would overflow the agent's count as it acts.
pub(crate) fn check_acting_position(file: &Path, position: u64) -> anyhow::Result<()> {
    ensure!(
        position <= qamlab_agent::Agent::MAX_COUNT,
        "{}: acting_position {position} is past any run's count (at most 2^53): the file is damaged",
        file.display()
    );
    Ok(())
}

/// Where the acting draws stood by the checkpoint's `state.json`, where it says: a resumed run that made the final
/// evaluation it owed records that there alone (the agent file is the one it resumed from). `None` where the file
/// or the key is missing (older runs, a bare agent file's folder); training's own reading of it is the strict one.
fn recorded_acting_position(checkpoint: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(checkpoint.join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state.get("acting_position")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory in a fresh temporary directory, which the caller keeps alive.
    fn temp_run() -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        (dir, run)
    }

    #[test]
    fn one_process_at_a_time_holds_a_run() {
        let (dir, run) = temp_run();
        let held = run.lock().unwrap();
        let err = run.lock().unwrap_err().to_string();
        assert!(err.contains("in use by another qamlab process"), "{err}");
        // A new run there is told the run is training, not to resume it.
        assert!(run.in_use());
        let err = run.check_free_for_new_run().unwrap_err().to_string();
        assert!(
            err.contains("holds a run another qamlab process is training"),
            "{err}"
        );
        // What a killed write left is removed by the holder of the lock; other files stay.
        std::fs::write(dir.path().join(".tmp-1234-learning_curve.png"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        std::fs::create_dir(run.checkpoints()).unwrap();
        std::fs::write(run.checkpoints().join(".tmp-latest-x1"), "").unwrap();
        run.remove_leftovers(&held);
        assert_eq!(std::fs::read_dir(run.checkpoints()).unwrap().count(), 0);
        std::fs::remove_dir(run.checkpoints()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".lock", "notes.txt"]);
        std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
        drop(held);
        let again = run.lock().unwrap();
        drop(again);
        // The lock file alone (a run that failed before writing anything) leaves the directory free for a run.
        run.check_unused().unwrap();
    }

    #[test]
    fn evaluations_read_back_and_a_file_without_its_header_is_refused() {
        let (_dir, run) = temp_run();
        let point = EvalPoint {
            step: 20,
            phase: "offline".into(),
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
    fn a_run_without_a_checkpoint_yet_says_so() {
        let (_dir, run) = temp_run();
        run.check_unused().unwrap();
        std::fs::write(run.config(), TrainConfig::default().to_toml().unwrap()).unwrap();
        let err = format!("{:#}", run.check_unused().unwrap_err());
        assert!(err.contains("no checkpoint yet"), "{err}");
    }

    #[test]
    fn a_scene_file_run_without_its_copy_is_refused() {
        let (_dir, run) = temp_run();
        let cfg = TrainConfig {
            task: "/elsewhere/my-task.scn.ron".into(),
            ..TrainConfig::default()
        };
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        // The original may have been edited since; only the run's copy is the run's task.
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("task.scn.ron is missing") && err.contains("my-task.scn.ron"),
            "{err}"
        );
        std::fs::write(run.task_scene(), "(copy)").unwrap();
        assert_eq!(
            run.read_config().unwrap().task,
            run.task_scene().display().to_string()
        );
        // A built-in task needs no copy.
        let builtin = TrainConfig::default();
        std::fs::write(run.config(), builtin.to_toml().unwrap()).unwrap();
        std::fs::remove_file(run.task_scene()).unwrap();
        assert_eq!(run.read_config().unwrap().task, builtin.task);
    }

    #[test]
    fn a_damaged_config_or_an_unknown_task_is_named() {
        let (_dir, run) = temp_run();
        let whole = TrainConfig::default().to_toml().unwrap();
        // Cut in the [agent] table: read with defaults, it would be another run.
        let cut = &whole[..whole.find("num_qs").unwrap()];
        std::fs::write(run.config(), cut).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("config.toml lacks agent.")
                && err.contains("agent.num_qs")
                && err.contains("damaged"),
            "{err}"
        );
        std::fs::write(run.config(), "").unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("lacks agent, ") && err.contains(", task, "),
            "{err}"
        );
        // A run from before the later keys existed reads with their defaults.
        let older: String = whole
            .lines()
            .filter(|l| !l.starts_with("sparse") && !l.starts_with("balanced_sampling"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(run.config(), &older).unwrap();
        run.read_config().unwrap();
        std::fs::write(run.config(), older.replace("cube-single", "cube-zzz")).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("task = \"cube-zzz\" is not a built-in task (cube-single, cube-double, antmaze-umaze)"),
            "{err}"
        );
    }

    #[test]
    fn checkpoints_are_this_runs_step_directories_and_nothing_else_is_removed() {
        let (_dir, run) = temp_run();
        let (old, new, kept) = (
            run.checkpoints().join("step-10"),
            run.checkpoints().join("step-20"),
            run.checkpoints().join("keep-me"),
        );
        for d in [&old, &new, &kept] {
            std::fs::create_dir_all(d).unwrap();
        }
        run.publish_checkpoint(&new).unwrap();
        assert!(!old.exists() && new.is_dir() && kept.is_dir());
        assert_eq!(run.latest_checkpoint().unwrap(), Some(new));
        // A pointer out of the run would continue another run's checkpoint.
        std::fs::write(run.checkpoints().join("latest"), "../../elsewhere/step-5").unwrap();
        let err = run.latest_checkpoint().unwrap_err().to_string();
        assert!(
            err.contains("expected a checkpoint directory of this run, step-N"),
            "{err}"
        );
    }

    #[test]
    fn a_lost_latest_pointer_falls_back_to_the_newest_complete_checkpoint() {
        let (_dir, run) = temp_run();
        assert_eq!(run.latest_checkpoint().unwrap(), None);
        let checkpoint = |name: &str, files: &[&str]| {
            let path = run.checkpoints().join(name);
            std::fs::create_dir_all(&path).unwrap();
            for f in files {
                std::fs::write(path.join(f), "").unwrap();
            }
            path
        };
        // A checkpoint cut short (no state.json yet) is not one to resume from.
        checkpoint("step-900", &["agent.safetensors", "replay.safetensors"]);
        assert_eq!(run.latest_checkpoint().unwrap(), None);
        let kept = checkpoint("step-604", &CHECKPOINT_FILES);
        checkpoint("step-20", &CHECKPOINT_FILES);
        checkpoint("keep-me", &CHECKPOINT_FILES);
        assert_eq!(run.latest_checkpoint().unwrap(), Some(kept.clone()));
        let (complete, incomplete) = run.step_checkpoints();
        assert_eq!(
            (complete.len(), incomplete),
            (2, vec!["step-900".to_string()])
        );
        // A run with checkpoints is no place for a new one.
        let err = run.check_unused().unwrap_err().to_string();
        assert!(
            err.contains("continue it with `qamlab train --resume"),
            "{err}"
        );
        // The pointer, where it exists, decides.
        std::fs::write(run.checkpoints().join("latest"), "step-20").unwrap();
        assert_eq!(
            run.latest_checkpoint().unwrap(),
            Some(run.checkpoints().join("step-20"))
        );
    }

    #[test]
    fn a_run_goes_only_where_its_folder_can_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.npz");
        std::fs::write(&file, "data").unwrap();
        let err = RunDir::new(file.join("sub"))
            .check_unused()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "--out {}: {} is a file, so the folder for it cannot be made",
                file.join("sub").display(),
                file.display()
            )
        );
        RunDir::new(dir.path().join("new/run"))
            .check_unused()
            .unwrap();
    }

    #[test]
    fn an_edited_copy_of_the_task_scene_is_refused() {
        let (_dir, run) = temp_run();
        let cfg = TrainConfig {
            task: "/elsewhere/my-task.scn.ron".into(),
            ..TrainConfig::default()
        };
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        let scene = "(goals: [(tolerance: 0.1)])";
        run.write_task_scene(scene.as_bytes()).unwrap();
        run.read_config().unwrap();
        std::fs::write(run.task_scene(), scene.replace("0.1", "5.0")).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.starts_with(&format!(
                "{} was edited after the run started (its CRC-32 is ",
                run.task_scene().display()
            )) && err.contains("Restore the file, or start a new run with the edited task"),
            "{err}"
        );
        // What the run did can still be reported.
        run.read_config_unverified().unwrap();
        // A run from before the record was kept loads as before.
        std::fs::remove_file(run.record()).unwrap();
        run.read_config().unwrap();
        assert!(run.foreign_entries().unwrap().is_empty());
    }

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
    fn an_original_scene_edited_since_the_run_started_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        std::fs::create_dir_all(run.root()).unwrap();
        let original = dir.path().join("my-task.scn.ron");
        std::fs::write(&original, "(a)").unwrap();
        let cfg = TrainConfig {
            task: original.display().to_string(),
            ..TrainConfig::default()
        };
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        run.write_task_scene(b"(a)").unwrap();
        assert_eq!(run.edited_original_scene(), None);
        std::fs::write(&original, "(b)").unwrap();
        assert_eq!(run.edited_original_scene(), Some(original.clone()));
        std::fs::remove_file(&original).unwrap();
        assert_eq!(run.edited_original_scene(), None);
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
