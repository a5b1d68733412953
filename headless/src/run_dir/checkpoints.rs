//! The run's checkpoints: finding the latest (by the `latest` pointer, or the newest complete one), writing a new
//! one into a hidden folder and publishing it whole, and loading a checkpoint's agent, checked against the run's
//! config and task and against the `state.json` beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use qamlab_agent::{Agent, AgentConfig};

use super::{RunDir, check_state_crc, warn_once};
use crate::TrainConfig;
use crate::files::{is_not_found, read_stored_text, sync_dir, write_bytes_atomically};

/// The files of a complete checkpoint directory.
const CHECKPOINT_FILES: [&str; 3] = ["agent.safetensors", "replay.safetensors", "state.json"];

/// The key under which each file of a checkpoint records the checkpoint's id: the metadata of its safetensors
/// files, a field of its `state.json`.
pub(crate) const CHECKPOINT_ID_KEY: &str = "checkpoint_id";

/// The id the files of the checkpoint of `step` record, after `updates` updates, of the run whose settings are
/// `config` (its `config.toml`'s bytes): two runs' checkpoints of one step differ in it wherever their settings do,
/// and the same run makes the same id, so that the same seed still gives the same bytes. (Two runs of the very
/// same settings make the same checkpoints, on the CPU bit for bit: their files may be mixed harmlessly.)
pub(crate) fn checkpoint_id(config: &[u8], step: u64, updates: u64) -> String {
    let hash = |initial: u32| {
        let mut crc = crc32fast::Hasher::new_with_initial(initial);
        crc.update(config);
        crc.update(&step.to_le_bytes());
        crc.update(&updates.to_le_bytes());
        crc.finalize()
    };
    format!("{:08x}{:08x}", hash(0), hash(0x9e37_79b9))
}

/// A checkpoint directory being written, under a hidden temporary name in `checkpoints/` (`.tmp-step-N-…`):
/// [`RunDir::publish_staged_checkpoint`] renames it to `step-N` once its files are all written, so that no
/// checkpoint appears under its name partly written (a full disk, a crash). Dropped unpublished, it is removed.
#[derive(Debug)]
pub struct StagedCheckpoint {
    /// The temporary directory, until it is renamed into place.
    dir: Option<PathBuf>,
    /// The name it takes, `step-N`.
    name: String,
    /// Whether it may replace the run's latest checkpoint, one of its step (see [`Self::replacing_latest`]).
    replaces_latest: bool,
}

impl StagedCheckpoint {
    /// Lets it replace the run's latest checkpoint where that is one of its step: the checkpoint of a step the run
    /// stopped amid, which the resumed run has finished. Any other write of the latest's step is refused.
    pub fn replacing_latest(mut self) -> Self {
        self.replaces_latest = true;
        self
    }

    /// The temporary directory the checkpoint's files are written into.
    pub fn path(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new(""))
    }
}

impl Drop for StagedCheckpoint {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Best effort: a leftover is hidden, and removed by the next resume (`remove_leftovers`).
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl RunDir {
    /// The CRC-32 of the dataset the run trained on, as its newest checkpoint records it (the file's bytes'):
    /// `None` for a run without a dataset or a checkpoint, or one from before the record.
    pub fn recorded_dataset_crc32(&self) -> Option<u32> {
        let checkpoint = self.latest_checkpoint().ok().flatten()?;
        let replay =
            qamlab_agent::checkpoint::TensorFile::open(checkpoint.join("replay.safetensors"))
                .ok()?;
        replay.metadata().get("dataset_crc32")?.parse().ok()
    }

    /// The directory of the newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> anyhow::Result<Option<PathBuf>> {
        // A checkpoint's name, `step-N`: a few bytes.
        const MAX_POINTER_BYTES: u64 = 4 << 10;
        let pointer = self.checkpoints().join("latest");
        match read_stored_text(&pointer, "the checkpoint pointer", MAX_POINTER_BYTES) {
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
            Err(e) if is_not_found(&e) => Ok(self.newest_complete_checkpoint(&pointer)),
            Err(e) => Err(e),
        }
    }

    /// Where `latest` is missing (removed, or lost before the run's first checkpoint was published): the newest
    /// `step-N` directory holding all its files, with a warning. Safe: a checkpoint's directory takes its name
    /// only once its files are all written (older qamlab versions wrote them in place, `state.json` last), so one
    /// holding all three is complete (and loading it checks that they belong together).
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
            let Some(step) = checkpoint_name_step(&name).filter(|_| dir.is_dir()) else {
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

    /// A new checkpoint of `step`, to write into (a hidden directory in `checkpoints/`) and then publish with
    /// [`publish_staged_checkpoint`](Self::publish_staged_checkpoint).
    pub fn stage_checkpoint(&self, step: u64) -> anyhow::Result<StagedCheckpoint> {
        // Unique to this write: named `.tmp-…` like the lab's other temporaries. A folder, so not a staged file
        // (`files::write_staged`), whose orphans the next write of their file judges by their locks: a resume, which
        // holds the run's lock, removes whatever a killed write left here (`remove_leftovers`).
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!("step-{step}");
        let dir = self.checkpoints().join(format!(
            ".tmp-{name}-{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(self.checkpoints()).with_context(|| {
            format!(
                "creating the checkpoints directory {}",
                self.checkpoints().display()
            )
        })?;
        std::fs::create_dir(&dir).with_context(|| {
            format!(
                "creating the temporary checkpoint directory {}",
                dir.display()
            )
        })?;
        Ok(StagedCheckpoint {
            dir: Some(dir),
            name,
            replaces_latest: false,
        })
    }

    /// Renames `staged` (its files all written and synced) to its name, `step-N`, and publishes it as the latest
    /// ([`publish_checkpoint`](Self::publish_checkpoint)); returns its directory. Where `latest` cannot be
    /// rewritten (a full disk), the new directory is removed again, and `latest` still names the checkpoint before.
    pub fn publish_staged_checkpoint(
        &self,
        mut staged: StagedCheckpoint,
        keep: u64,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.checkpoints().join(&staged.name);
        let tmp = staged.path().to_path_buf();
        // The files' names are durable before the folder takes its name.
        sync_dir(&tmp);
        if dir.is_dir() {
            let latest = self.latest_checkpoint().ok().flatten();
            ensure!(
                latest.as_ref() != Some(&dir) || staged.replaces_latest,
                "{} is the run's latest checkpoint: a new checkpoint of the same step would replace it",
                dir.display()
            );
            if latest.as_ref() == Some(&dir) {
                // The checkpoint of a step the run stopped amid (`step_unfinished`), now finished: the two folders
                // swap names in one step, so `latest` names a whole checkpoint at every moment.
                exchange(&tmp, &dir).with_context(|| {
                    format!(
                        "replacing {}, the run's latest checkpoint, by the finished one of its step",
                        dir.display()
                    )
                })?;
                sync_dir(&self.checkpoints());
                std::fs::remove_dir_all(&tmp).with_context(|| {
                    format!("removing {} (the checkpoint it replaced)", tmp.display())
                })?;
                staged.dir = None;
                return Ok(dir);
            }
            // A checkpoint `latest` never named (its run stopped between the rename and the pointer, or an older
            // qamlab's cut short): the run went back to an earlier one, and this one is written anew.
            std::fs::remove_dir_all(&dir).with_context(|| {
                format!(
                    "removing {}, a checkpoint the run did not resume from",
                    dir.display()
                )
            })?;
        }
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        staged.dir = None;
        sync_dir(&self.checkpoints());
        if let Err(e) = self.publish_checkpoint(&dir, keep) {
            // Not the latest (the pointer is rewritten atomically): taken away, so the run is as it was.
            if self.latest_checkpoint().ok().flatten().as_ref() != Some(&dir) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
        Ok(dir)
    }

    /// Makes `dir` (a fully written checkpoint directory) the latest, then removes the older ones past the newest
    /// `keep` (`dir` among them), and any of a later step (a run cut short after writing it, which went back to an
    /// earlier checkpoint since). The pointer is replaced atomically, so a crash at any moment leaves a complete
    /// checkpoint.
    pub fn publish_checkpoint(&self, dir: &Path, keep: u64) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("checkpoint directory name")?;
        let published = checkpoint_name_step(name);
        write_bytes_atomically(&self.checkpoints().join("latest"), name.as_bytes())?;
        // Only checkpoints go: whatever else someone keeps in the folder stays. Those kept are whole, the newest
        // before `dir`; one cut short (an older qamlab's) never counts.
        let (complete, _) = self.step_checkpoints();
        let mut earlier: Vec<u64> = complete
            .iter()
            .map(|(step, _)| *step)
            .filter(|step| published.is_some_and(|p| *step < p))
            .collect();
        earlier.sort_unstable_by(|a, b| b.cmp(a));
        let kept: Vec<u64> = earlier
            .into_iter()
            .take(usize::try_from(keep.saturating_sub(1)).unwrap_or(usize::MAX))
            .collect();
        for entry in std::fs::read_dir(self.checkpoints())?.filter_map(Result::ok) {
            let path = entry.path();
            let Some(step) = entry.file_name().to_str().and_then(checkpoint_name_step) else {
                continue;
            };
            if path.is_dir() && path != dir && !kept.contains(&step) {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("removing the old checkpoint {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Where `path` is a checkpoint directory of a run, `RUN/checkpoints/step-N` with RUN holding its config: that
    /// run and the step.
    pub fn of_checkpoint_dir(path: &Path) -> Option<(RunDir, u64)> {
        // `step-N` given from inside `checkpoints/`: its folders are found from the working directory.
        let absolute;
        let path = if path.parent().is_some_and(|p| p.as_os_str().is_empty()) {
            absolute = std::path::absolute(path).ok()?;
            absolute.as_path()
        } else {
            path
        };
        let name = path.file_name()?.to_str()?;
        let step = checkpoint_name_step(name)?;
        let checkpoints = path.parent()?;
        let root = checkpoints.parent()?;
        // `checkpoints/step-N` given from inside the run.
        let run = RunDir::new(if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            root
        });
        (checkpoints.file_name()? == "checkpoints" && run.config().is_file()).then_some((run, step))
    }

    /// The run's checkpoint of `step` (`checkpoints/step-N`, holding all its files), or an error that lists the
    /// checkpoints the run has.
    pub fn checkpoint_at(&self, step: u64) -> anyhow::Result<PathBuf> {
        let dir = self.checkpoints().join(format!("step-{step}"));
        let (mut complete, _) = self.step_checkpoints();
        if complete.iter().any(|(_, path)| *path == dir) {
            return Ok(dir);
        }
        complete.sort_unstable_by_key(|(step, _)| *step);
        let have = if complete.is_empty() {
            "it has none yet".to_string()
        } else {
            format!(
                "it has {} (a run keeps the newest keep_checkpoints of them)",
                crate::limits::listed(complete.iter().map(|(step, _)| format!("step-{step}")))
            )
        };
        if dir.is_dir() {
            bail!(
                "{} is not a whole checkpoint (it lacks some of {}): {have}",
                dir.display(),
                CHECKPOINT_FILES.join(", ")
            );
        }
        bail!(
            "{} has no checkpoint of step {step}: {have}",
            self.root.display()
        )
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
        let differs = |recorded: &AgentConfig| {
            anyhow::anyhow!(
                "checkpoint {}: its agent differs from the one {} describes ({}): {} was edited since the run \
                 started, or the checkpoint belongs to another run",
                file.display(),
                self.config().display(),
                config_differences(recorded, cfg),
                self.config().display()
            )
        };
        // From the file's header, before an agent is built of what it records (a file of another run, or a
        // damaged or forged one whose networks would take terabytes): the run's own agent is what is built, and it
        // must fit the machine, as training checks.
        let recorded = qamlab_agent::checkpoint::TensorFile::open(&file)?
            .metadata()
            .get("config")
            .and_then(|text| serde_json::from_str::<AgentConfig>(text).ok());
        if let Some(recorded) = recorded
            && recorded != *cfg
        {
            return Err(differs(&recorded));
        }
        check_networks_fit(
            cfg,
            (obs_dim, action_dim),
            &file,
            &self.config(),
            crate::limits::available_memory(),
        )?;
        let (mut agent, meta) = Agent::load_with_metadata(&file, device)?;
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
            return Err(differs(agent.config()));
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
        // Where state.json is missing or unreadable (older runs, a bare agent file's folder), the agent stands
        // alone; training reads it strictly before it gets here. One whose checksum fails is refused: its acting
        // position would set the agent's draws.
        let state_path = checkpoint.join("state.json");
        if let Some(state) = recorded_state(&state_path)? {
            check_same_checkpoint(
                &state_path,
                state.get(CHECKPOINT_ID_KEY).and_then(|v| v.as_str()),
                &file,
                meta.get(CHECKPOINT_ID_KEY).map(String::as_str),
            )?;
            // Where the acting draws stand, in state.json: the agent file's count (in checkpoints of older versions,
            // where evaluations moved the draws on, more by a final evaluation made on resuming).
            if let Some(position) = state.get("acting_position").and_then(|v| v.as_u64()) {
                check_acting_position(
                    &state_path,
                    &state,
                    position,
                    &file,
                    agent.acting_position(),
                )?;
                agent.set_acting_position(position);
            }
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
}

/// Refuses to load checkpoint `file` where the networks of the agent `cfg` describes (in `config`, for `dims`,
/// the observation and action sizes) would take more than `memory` (`None`: unknown): an update's batch aside,
/// since evaluating takes none and training checks its own.
fn check_networks_fit(
    cfg: &AgentConfig,
    (obs_dim, action_dim): (usize, usize),
    file: &Path,
    config: &Path,
    memory: Option<u64>,
) -> anyhow::Result<()> {
    let unbatched = AgentConfig {
        batch_size: 0,
        ..cfg.clone()
    };
    crate::limits::check_memory_against(
        qamlab_agent::footprint::memory_lower_bound(&unbatched, obs_dim, action_dim),
        &format!(
            "loading checkpoint {}: the networks of the agent {} describes",
            file.display(),
            config.display()
        ),
        memory,
    )
}

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

/// Whether `name` is the name of a checkpoint directory: `step-N`.
fn is_checkpoint_name(name: &str) -> bool {
    name.strip_prefix("step-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The step a checkpoint directory's name `step-N` says, if it is one.
pub fn checkpoint_name_step(name: &str) -> Option<u64> {
    name.strip_prefix("step-")
        .filter(|_| is_checkpoint_name(name))?
        .parse()
        .ok()
}

/// The step of the checkpoint directory `dir` (`RUN/checkpoints/step-N`), by its name.
pub fn checkpoint_dir_step(dir: &Path) -> Option<u64> {
    checkpoint_name_step(dir.file_name()?.to_str()?)
}

/// Refuses two files of one checkpoint that record different checkpoint ids (`state_file`'s, then `other_file`'s),
/// or where one records an id and the other none: files of different checkpoints, of this run or another, whose
/// counts may agree all the same. Checkpoints of versions before the id was recorded have none in any file.
pub(crate) fn check_same_checkpoint(
    state_file: &Path,
    state_id: Option<&str>,
    other_file: &Path,
    other_id: Option<&str>,
) -> anyhow::Result<()> {
    let (state_shown, other_shown) = (state_file.display(), other_file.display());
    let mixed = "the two files come from different checkpoints (of this run or another)";
    match (state_id, other_id) {
        (Some(ours), Some(theirs)) if ours != theirs => bail!(
            "{state_shown} records {CHECKPOINT_ID_KEY} {ours}, but {other_shown} beside it records \
             {CHECKPOINT_ID_KEY} {theirs}: {mixed}"
        ),
        (Some(ours), None) => bail!(
            "{state_shown} records {CHECKPOINT_ID_KEY} {ours}, but {other_shown} beside it records none (a file of \
             an older qamlab's checkpoint): {mixed}"
        ),
        (None, Some(theirs)) => bail!(
            "{other_shown} records {CHECKPOINT_ID_KEY} {theirs}, but {state_shown} beside it records none (a file \
             of an older qamlab's checkpoint): {mixed}"
        ),
        _ => Ok(()),
    }
}

/// Checks the `acting_position` that `state_file` (`state`, a checkpoint's `state.json`) records against the
/// `act_calls` of the agent file beside it: the same count, or, where a resumed run made the final evaluation it
/// owed at the checkpoint's step (recorded in `state.json` alone), more by at most what that evaluation's episodes
/// can have taken (one acting call a control step, at most). Anything else is damage, or files of two checkpoints.
pub(crate) fn check_acting_position(
    state_file: &Path,
    state: &serde_json::Value,
    position: u64,
    agent_file: &Path,
    act_calls: u64,
) -> anyhow::Result<()> {
    let (file, agent) = (state_file.display(), agent_file.display());
    ensure!(
        position <= qamlab_agent::Agent::MAX_COUNT,
        "{file}: acting_position {position} is past any run's count (at most 2^53): the file is damaged"
    );
    if position == act_calls {
        return Ok(());
    }
    ensure!(
        position > act_calls,
        "{file}: acting_position {position}, but {agent} beside it records act_calls {act_calls}: expected at \
         least as many (the same count, or more after a final evaluation): the two files come from different \
         checkpoints, or {file} is damaged"
    );
    let count = |key: &str| state.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    let step = count("offline_step").saturating_add(count("online_step"));
    let last = state
        .get("evals")
        .and_then(|e| e.as_array())
        .and_then(|e| e.last());
    let final_episodes = last
        .filter(|e| e.get("step").and_then(|s| s.as_u64()) == Some(step))
        .and_then(|e| e.get("episodes")?.as_u64());
    let Some(episodes) = final_episodes else {
        bail!(
            "{file}: acting_position {position}, but {agent} beside it records act_calls {act_calls}: expected the \
             same count (they differ only after a final evaluation at the checkpoint's step {step}, which {file} \
             does not record): {file} is damaged, or the two files come from different checkpoints"
        );
    };
    let most = episodes.saturating_mul(u64::from(qamlab_sim::scene::MAX_EPISODE_LENGTH));
    ensure!(
        position - act_calls <= most,
        "{file}: acting_position {position} is {} past the act_calls {act_calls} of {agent} beside it: expected at \
         most {most} more (its final evaluation at step {step}: {episodes} episodes of at most {} control steps): \
         the file is damaged",
        position - act_calls,
        qamlab_sim::scene::MAX_EPISODE_LENGTH
    );
    Ok(())
}

/// Swaps the names of folders `a` and `b` atomically (Linux's `renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are NUL-terminated paths that outlive the call; AT_FDCWD resolves them as open() would.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A checkpoint's `state.json` as JSON: `None` where it is missing (older runs, a bare agent file's folder;
/// training's own reading of it is the strict one), an error where it cannot be read (not a regular file, past its
/// size, not UTF-8: its acting position would be lost unsaid), is no JSON object (cut short, emptied: a cut loses
/// the checksum, its last member, with the rest), or the checksum it records fails (see [`check_state_crc`]).
fn recorded_state(path: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    let text = match read_stored_text(
        path,
        "the checkpoint's state",
        crate::limits::MAX_STATE_BYTES,
    ) {
        Ok(text) => text,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    check_state_crc(path, &text)?;
    let damaged = |why: String| {
        anyhow::anyhow!(
            "{}: {why}, where a checkpoint's state is a JSON object: the file was cut short or damaged, so the \
             agent's acting position (its draws) is not known; use another checkpoint of the run where it kept one \
             (`--step N`)",
            path.display()
        )
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(state) if state.is_object() => Ok(Some(state)),
        Ok(_) => Err(damaged("the text is JSON but no object".into())),
        Err(e) => Err(damaged(format!("the text is no JSON ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::temp_run;

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
        run.publish_checkpoint(&new, 1).unwrap();
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

    /// The names in `dir`, sorted.
    fn entry_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_run_keeps_its_newest_checkpoints_and_finds_one_by_its_step() {
        let (_dir, run) = temp_run();
        let names = || entry_names(&run.checkpoints());
        let publish = |step: u64, keep: u64| {
            let staged = run.stage_checkpoint(step).unwrap();
            for f in CHECKPOINT_FILES {
                std::fs::write(staged.path().join(f), f).unwrap();
            }
            run.publish_staged_checkpoint(staged, keep).unwrap()
        };
        for step in [10, 20, 30, 40] {
            publish(step, 3);
        }
        assert_eq!(names(), ["latest", "step-20", "step-30", "step-40"]);
        assert_eq!(
            run.checkpoint_at(30).unwrap(),
            run.checkpoints().join("step-30")
        );
        let err = format!("{:#}", run.checkpoint_at(10).unwrap_err());
        assert_eq!(
            err,
            format!(
                "{} has no checkpoint of step 10: it has step-20, step-30, step-40 (a run keeps the newest \
                 keep_checkpoints of them)",
                run.root().display()
            )
        );
        // One cut short is neither found nor counted among those kept; one of a later step than the published
        // (written by a run that went back since) goes, as does anything of a checkpoint's name past the newest.
        let cut = run.checkpoints().join("step-35");
        std::fs::create_dir(&cut).unwrap();
        std::fs::write(cut.join("state.json"), "{}").unwrap();
        let err = format!("{:#}", run.checkpoint_at(35).unwrap_err());
        assert!(err.contains("step-35 is not a whole checkpoint"), "{err}");
        std::fs::create_dir(run.checkpoints().join("step-90")).unwrap();
        std::fs::create_dir(run.checkpoints().join("notes")).unwrap();
        publish(50, 3);
        assert_eq!(
            names(),
            ["latest", "notes", "step-30", "step-40", "step-50"]
        );
        // Keeping fewer later leaves the latest alone.
        publish(60, 1);
        assert_eq!(names(), ["latest", "notes", "step-60"]);
        assert_eq!(
            run.latest_checkpoint().unwrap(),
            Some(run.checkpoints().join("step-60"))
        );
    }

    #[test]
    fn a_checkpoint_takes_its_name_only_once_whole() {
        let (_dir, run) = temp_run();
        let entries = || entry_names(&run.checkpoints());
        let write = |staged: &StagedCheckpoint, files: &[&str]| {
            for f in files {
                std::fs::write(staged.path().join(f), *f).unwrap();
            }
        };
        let staged = run.stage_checkpoint(10).unwrap();
        write(&staged, &CHECKPOINT_FILES);
        // Hidden while it is written: neither `latest` nor the newest complete checkpoint.
        assert_eq!(run.latest_checkpoint().unwrap(), None);
        let first = run.publish_staged_checkpoint(staged, 1).unwrap();
        assert_eq!(first, run.checkpoints().join("step-10"));
        assert_eq!(entries(), ["latest", "step-10"]);

        // A write that fails midway (a full disk) leaves nothing of it: the run is at its checkpoint before.
        let staged = run.stage_checkpoint(20).unwrap();
        write(&staged, &CHECKPOINT_FILES[..1]);
        drop(staged);
        assert_eq!(entries(), ["latest", "step-10"]);
        assert_eq!(run.latest_checkpoint().unwrap(), Some(first.clone()));

        // A checkpoint `latest` never named (a crash between the rename and the pointer) is written anew.
        let stale = run.checkpoints().join("step-20");
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("stale"), "").unwrap();
        let staged = run.stage_checkpoint(20).unwrap();
        write(&staged, &CHECKPOINT_FILES);
        assert_eq!(run.publish_staged_checkpoint(staged, 1).unwrap(), stale);
        assert_eq!(entries(), ["latest", "step-20"]);
        assert!(!stale.join("stale").exists());
        // The latest one is never replaced under the reader's feet.
        let staged = run.stage_checkpoint(20).unwrap();
        let err = run
            .publish_staged_checkpoint(staged, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is the run's latest checkpoint"), "{err}");
        assert_eq!(entries(), ["latest", "step-20"]);

        // What a killed write left is removed by the next holder of the run.
        let left = run.stage_checkpoint(30).unwrap();
        write(&left, &CHECKPOINT_FILES[..2]);
        std::mem::forget(left);
        assert_eq!(entries().len(), 3);
        run.remove_leftovers(&run.lock().unwrap());
        assert_eq!(entries(), ["latest", "step-20"]);
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

    /// The config of a run of a tiny agent (seed 7), and its checkpoint `step-1` (its agent file alone), whose
    /// recorded config `forge` rewrites.
    fn run_with_forged_checkpoint(
        run: &RunDir,
        forge: impl FnOnce(&mut AgentConfig),
    ) -> (TrainConfig, PathBuf) {
        let tiny = AgentConfig {
            batch_size: 4,
            actor_hidden_dims: vec![4],
            value_hidden_dims: vec![4],
            horizon_length: 2,
            num_qs: 2,
            flow_steps: 2,
            ..AgentConfig::default()
        };
        let dir = run.checkpoints().join("step-1");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.safetensors");
        Agent::new(tiny.clone(), 3, 2, tch::Device::Cpu, 7)
            .unwrap()
            .save(&file)
            .unwrap();
        let (tensors, mut meta) = qamlab_agent::checkpoint::read_tensors(&file).unwrap();
        meta.remove("tensors_crc32");
        let mut recorded = tiny.clone();
        forge(&mut recorded);
        meta.insert("config".into(), serde_json::to_string(&recorded).unwrap());
        qamlab_agent::checkpoint::write_tensors(&file, &tensors, meta).unwrap();
        let config = TrainConfig {
            agent: tiny,
            seed: 7,
            ..TrainConfig::default()
        };
        (config, dir)
    }

    #[test]
    fn a_checkpoint_recording_another_agent_is_refused_from_its_header() {
        let (_dir, run) = temp_run();
        let wide = |cfg: &mut AgentConfig| {
            cfg.actor_hidden_dims = vec![qamlab_agent::config::MAX_WIDTH; 8]
        };
        let (mut config, checkpoint) = run_with_forged_checkpoint(&run, wide);
        config.agent = AgentConfig::default();
        let err = format!(
            "{:#}",
            run.load_agent(&checkpoint, &config, (3, 2), tch::Device::Cpu)
                .err()
                .unwrap()
        );
        assert!(
            err.contains("agent.safetensors: its agent differs from the one ")
                && err.contains("actor_hidden_dims = [65536, 65536, "),
            "{err}"
        );
        // The run's own config as large: its networks are weighed against the machine's memory first.
        let mut huge = AgentConfig::default();
        wide(&mut huge);
        let err = check_networks_fit(
            &huge,
            (3, 2),
            Path::new("agent.safetensors"),
            Path::new("config.toml"),
            Some(64 << 30),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "loading checkpoint agent.safetensors: the networks of the agent config.toml describes would take "
            ) && err.ends_with("of memory, more than this machine's 64.0 GiB"),
            "{err}"
        );
        check_networks_fit(
            &AgentConfig::default(),
            (28, 5),
            Path::new("agent.safetensors"),
            Path::new("config.toml"),
            Some(64 << 30),
        )
        .unwrap();
    }

    #[test]
    fn a_runs_files_that_are_no_regular_files_are_refused_unread() {
        let (_dir, run) = temp_run();
        let (config, checkpoint) = run_with_forged_checkpoint(&run, |_| {});
        run.load_agent(&checkpoint, &config, (3, 2), tch::Device::Cpu)
            .unwrap();
        // A state.json that cannot be read is an error naming it, not an agent evaluated without its state.
        let state = checkpoint.join("state.json");
        std::fs::create_dir(&state).unwrap();
        let err = format!(
            "{:#}",
            run.load_agent(&checkpoint, &config, (3, 2), tch::Device::Cpu)
                .err()
                .unwrap()
        );
        assert!(
            err.contains("the checkpoint's state ")
                && err.contains("state.json is a folder, not the regular file qamlab writes there"),
            "{err}"
        );
        std::fs::remove_dir(&state).unwrap();
        crate::files::mkfifo(&state);
        let err = format!(
            "{:#}",
            run.load_agent(&checkpoint, &config, (3, 2), tch::Device::Cpu)
                .err()
                .unwrap()
        );
        assert!(
            err.contains("state.json is a pipe, not the regular file"),
            "{err}"
        );
        // Opening a named pipe waits for a writer, forever: each is refused before it is opened.
        let latest = run.checkpoints().join("latest");
        std::fs::create_dir(&latest).unwrap();
        let err = format!("{:#}", run.latest_checkpoint().unwrap_err());
        assert!(
            err.contains("the checkpoint pointer ")
                && err.contains("latest is a folder, not the regular file"),
            "{err}"
        );
        std::fs::remove_dir(&latest).unwrap();
        for path in [latest, run.evals(), run.metrics()] {
            crate::files::mkfifo(&path);
        }
        for err in [
            run.latest_checkpoint().map(|_| ()).unwrap_err(),
            run.read_evals().map(|_| ()).unwrap_err(),
            run.read_metrics().map(|_| ()).unwrap_err(),
            run.truncate_metrics_after(1, 1, 0).unwrap_err(),
        ] {
            let err = format!("{err:#}");
            assert!(
                err.contains(" is a pipe, not the regular file qamlab writes there"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_damaged_state_is_an_error_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(recorded_state(&path).unwrap().is_none());
        // Cut short (its checksum, the last member, goes with the cut), emptied, or no object.
        for text in ["{\"offline_step\": 0, \"onl", "", "[1]"] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", recorded_state(&path).unwrap_err());
            assert!(
                err.contains("state.json") && err.contains("cut short or damaged"),
                "{text:?}: {err}"
            );
        }
        std::fs::write(&path, "{\"offline_step\": 0}").unwrap();
        assert!(recorded_state(&path).unwrap().is_some());
    }
}
