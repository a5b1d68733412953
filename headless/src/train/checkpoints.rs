//! What a checkpoint of a run holds (the agent, the online replay data with the episodes in progress, the run's
//! progress and settings) and how a resume restores it, refusing files that would continue some other run.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use qamlab_agent::TransitionStore;
use qamlab_agent::checkpoint::{self, Dtype, TensorFile};
use qamlab_sim::BatchedEnv;
use serde::{Deserialize, Serialize};

use super::episodes::ResumedEnvs;
use super::replay_file::{
    ReplayRecord, check_values, read_counts, read_pending, read_rows_into, stored_rows,
    write_replay,
};
use super::trainer::{RECENT_EPISODES, RunState, Trainer};
use crate::chunks::ChunkQueues;
use crate::config::TrainConfig;
use crate::files::write_bytes_atomically;
use crate::run_dir::{
    CHECKPOINT_ID_KEY, check_same_checkpoint, check_state_crc, checkpoint_id, seal_state,
};

/// The run settings a resume must keep (see [`RunState::settings`](super::trainer::RunState::settings)).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct RunSettings {
    seed: u64,
    sparse: bool,
    balanced_sampling: bool,
    start_training: u64,
    utd_ratio: usize,
}

impl RunSettings {
    /// `key = new (was old)` for each setting that differs in `now`.
    fn changes_to(&self, now: &Self) -> Vec<String> {
        let pairs = [
            ("seed", self.seed.to_string(), now.seed.to_string()),
            ("sparse", self.sparse.to_string(), now.sparse.to_string()),
            (
                "balanced_sampling",
                self.balanced_sampling.to_string(),
                now.balanced_sampling.to_string(),
            ),
            (
                "start_training",
                self.start_training.to_string(),
                now.start_training.to_string(),
            ),
            (
                "utd_ratio",
                self.utd_ratio.to_string(),
                now.utd_ratio.to_string(),
            ),
        ];
        pairs
            .into_iter()
            .filter(|(_, was, is)| was != is)
            .map(|(key, was, is)| format!("{key} = {is} (was {was})"))
            .collect()
    }

    /// The settings of `cfg` a resumed run must keep.
    pub(super) fn of(cfg: &TrainConfig) -> Self {
        Self {
            seed: cfg.seed,
            sparse: cfg.sparse,
            balanced_sampling: cfg.balanced_sampling,
            start_training: cfg.start_training,
            utd_ratio: cfg.utd_ratio,
        }
    }
}

impl Trainer<'_> {
    /// What a failed run leaves to resume from, in words: its last checkpoint, or none yet.
    pub(super) fn what_is_kept(&self) -> String {
        match self.run.latest_checkpoint() {
            Ok(Some(dir)) => format!(
                "its last checkpoint, {}, is kept",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            _ => "it wrote no checkpoint yet".into(),
        }
    }

    /// Writes agent, online replay data (with the episodes in progress), run state and, in the online phase,
    /// where the envs' episodes began and their queued actions into a new checkpoint directory, then publishes it.
    /// The directory takes its name only once whole: a failed write (a full disk) leaves the run at its checkpoint
    /// before, as a later `--resume` finds it.
    pub(super) fn checkpoint(
        &mut self,
        envs: Option<(&BatchedEnv, &ChunkQueues)>,
    ) -> anyhow::Result<()> {
        let step = self.total_step();
        if self.checkpointed_at == Some(step) {
            return Ok(());
        }
        // Never checkpoint a diverged agent: the last checkpoint must be one worth resuming.
        for (name, t) in self.agent.parameters() {
            if t.isfinite().all().int64_value(&[]) == 0 {
                bail!(
                    "training diverged before step {}: parameter {name} is not finite ({})",
                    self.total_step(),
                    self.what_is_kept()
                );
            }
        }
        let mut staged = self.run.stage_checkpoint(step)?;
        if self.finishes_checkpoint == Some(step) {
            staged = staged.replacing_latest();
        }
        let config = crate::files::read_stored_file(
            &self.run.config(),
            "the config file",
            crate::limits::MAX_CONFIG_BYTES,
        )?;
        let id = checkpoint_id(&config, step, self.state.updates);
        self.write_checkpoint(staged.path(), envs, &id)
            .and_then(|()| {
                self.run
                    .publish_staged_checkpoint(staged, self.cfg.keep_checkpoints)
            })
            .with_context(|| {
                format!(
                    "writing the checkpoint of step {step} ({})",
                    self.what_is_kept()
                )
            })?;
        self.state.checkpoint_id = Some(id);
        self.checkpointed_at = Some(step);
        Ok(())
    }

    /// Writes the checkpoint's files into `dir`, each recording the checkpoint's `id`.
    fn write_checkpoint(
        &self,
        dir: &Path,
        envs: Option<(&BatchedEnv, &ChunkQueues)>,
        id: &str,
    ) -> anyhow::Result<()> {
        let marked: checkpoint::Metadata = [(CHECKPOINT_ID_KEY.to_string(), id.to_string())].into();
        self.agent
            .save_with_metadata(dir.join("agent.safetensors"), &marked)?;
        let mut state = self.state_to_record();
        state.checkpoint_id = Some(id.to_string());
        state.env_episode_word_pos.clear();
        let mut queues = None;
        if let Some((env, chunks)) = envs {
            state.env_episode_word_pos = env
                .episode_word_positions()
                .iter()
                .map(u128::to_string)
                .collect();
            let (queued, counts) = chunks.snapshot();
            let counts: Vec<i64> = counts.iter().map(|&c| c as i64).collect();
            queues = Some((queued, counts));
        }
        let mut meta = marked;
        meta.insert("offline_len".into(), self.offline_len.to_string());
        // The run's seed marks its files: a replay buffer copied from another run is refused at a resume.
        meta.insert("seed".into(), self.cfg.seed.to_string());
        if let Some(crc) = self.dataset_crc {
            meta.insert("dataset_crc32".into(), crc.to_string());
        }
        let record = ReplayRecord {
            replay: &self.replay,
            offline_len: self.offline_len,
            staged: self.episodes.staged(),
            queues: queues
                .as_ref()
                .map(|(queued, counts)| (queued.as_slice(), counts.as_slice())),
        };
        write_replay(&dir.join("replay.safetensors"), &record, meta)?;
        write_state(&dir.join("state.json"), &state)
    }

    /// The run's state as a checkpoint records it (its envs' episodes aside).
    fn state_to_record(&self) -> RunState {
        let mut state = self.state.clone();
        state.settings = Some(RunSettings::of(self.cfg));
        state.sampler_word_pos = self.sampler.get_word_pos().to_string();
        state.wall_seconds = self.wall_seconds();
        state.acting_position = Some(self.agent.acting_position());
        // The interval of the rows so far: this process's once it logged one, else the one it resumed with.
        state.log_interval = if self.reporting.logged_a_row() {
            Some(self.cfg.log_interval)
        } else {
            self.state.log_interval.or(Some(self.cfg.log_interval))
        };
        state
    }

    /// Records, in the `state.json` of the checkpoint this run resumed from, the final evaluation it owed and has
    /// now made: one file written atomically, where rewriting the checkpoint (the run's only one) file by file
    /// could leave it a mix of two if killed midway.
    pub(super) fn record_final_evaluation(&mut self) -> anyhow::Result<()> {
        let dir = self
            .run
            .latest_checkpoint()?
            .context("the checkpoint the run resumed from is gone")?;
        // The envs' episodes stay as that checkpoint records them: none stepped since.
        write_state(&dir.join("state.json"), &self.state_to_record())
    }

    /// Restores agent, replay buffer, sampler and progress from the latest checkpoint, with the episodes that
    /// were in progress and what the online phase needs to put its envs back into them (see `start_envs`).
    pub(super) fn restore(&mut self) -> anyhow::Result<()> {
        let Some(dir) = self.run.latest_checkpoint()? else {
            let root = self.run.root().display();
            let (_, incomplete) = self.run.step_checkpoints();
            if !incomplete.is_empty() {
                bail!(
                    "{root} has no complete checkpoint to resume from: checkpoints/latest is missing, and {} lack{} \
                     some of agent.safetensors, replay.safetensors and state.json (cut short when the run stopped); \
                     start the run again with another --out, or remove this one first",
                    incomplete.join(", "),
                    if incomplete.len() == 1 { "s" } else { "" }
                );
            }
            // A run that evaluated or finished had checkpoints: someone removed them, and its record stays.
            let recorded: Vec<String> = [self.run.evals(), self.run.summary()]
                .iter()
                .filter(|p| p.is_file())
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            if !recorded.is_empty() {
                bail!(
                    "{root} has no checkpoint to resume from, though it recorded {}: its checkpoints were removed \
                     ({} is missing or empty), so the run cannot go on; start it again with another --out",
                    recorded.join(" and "),
                    self.run.checkpoints().display()
                );
            }
            bail!(
                "{root} has no checkpoint to resume from: the run stopped before its first (checkpoint_interval {}); \
                 remove it and start the run again",
                self.cfg.checkpoint_interval
            );
        };
        let state_path = dir.join("state.json");
        let text = crate::files::read_stored_text(
            &state_path,
            "the checkpoint's state",
            crate::limits::MAX_STATE_BYTES,
        )?;
        // Before its values are judged: an edited or damaged file is named as such first.
        check_state_crc(&state_path, &text)?;
        self.state = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", state_path.display()))?;
        // Before the agent's own checks: an edited config.toml is named as such, not as a foreign agent.
        self.check_settings(&state_path)?;
        let device = self.agent.device();
        let sizes = (self.agent.obs_dim(), self.agent.action_dim());
        // With the acting draws where state.json says they stand.
        self.agent = self.run.load_agent(&dir, self.cfg, sizes, device)?;
        self.configure_execution();
        self.check_state(&state_path)?;
        let replay_path = dir.join("replay.safetensors");
        let mut file = TensorFile::open(&replay_path)?;
        let read = self.read_replay(&mut file, &state_path);
        // After the arrays (read once, straight into where they go): a damaged file is named as such first,
        // whatever its damage made of what was read.
        let restored = file.verify().map_err(anyhow::Error::from).and(read);
        let RestoredReplay { episodes, resumed } = match restored {
            Ok(restored) => restored,
            Err(e) => {
                self.replay.truncate(self.offline_len);
                return Err(e);
            }
        };
        self.episodes.restore(episodes);
        // Resuming from another position would repeat or skip batches: the run would not be the one it continues.
        let pos: u128 = self.state.sampler_word_pos.parse().with_context(|| {
            format!(
                "{}: sampler_word_pos {:?} is not a whole number",
                state_path.display(),
                self.state.sampler_word_pos
            )
        })?;
        self.sampler.set_word_pos(pos);
        if let Some(resumed) = resumed {
            self.episodes.set_resumed(resumed);
        }
        self.wall_before = self.state.wall_seconds;
        // The interval the rows so far were logged with, which a resume may have changed since.
        let logged_every = self.state.log_interval.unwrap_or(self.cfg.log_interval);
        self.run
            .truncate_metrics_after(self.total_step(), logged_every, self.cfg.offline_steps)?;
        self.checkpointed_at = Some(self.total_step());
        Ok(())
    }

    /// Reads the checkpoint's replay file, checked against the run and the `state.json` at `state_path`: its
    /// online transitions straight into the replay buffer, after the offline ones (into the room `Trainer::start`
    /// made for every online transition), and the envs' episodes in progress and queued actions, to put back.
    fn read_replay(
        &mut self,
        file: &mut TensorFile,
        state_path: &Path,
    ) -> anyhow::Result<RestoredReplay> {
        let replay_path = file.path().to_path_buf();
        let meta = file.metadata().clone();
        let offline_len: usize = meta
            .get("offline_len")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{}: metadata offline_len missing", replay_path.display()))?;
        if offline_len != self.offline_len {
            bail!(
                "{}: the run had {offline_len} offline transitions but its dataset now has {}: the dataset changed",
                replay_path.display(),
                self.offline_len
            );
        }
        // Checkpoints of versions before the seed was recorded have none to compare.
        if let Some(seed) = meta.get("seed")
            && *seed != self.cfg.seed.to_string()
        {
            bail!(
                "{}: written by a run with seed {seed}, but {} says seed = {}: the file comes from another run",
                replay_path.display(),
                self.run.config().display(),
                self.cfg.seed
            );
        }
        check_same_checkpoint(
            state_path,
            self.state.checkpoint_id.as_deref(),
            &replay_path,
            meta.get(CHECKPOINT_ID_KEY).map(String::as_str),
        )?;
        // Runs from before the checksum was recorded have none to compare.
        let recorded = match meta.get("dataset_crc32") {
            Some(v) => Some(v.parse::<u32>().with_context(|| {
                format!(
                    "{}: metadata dataset_crc32 {v:?} is not a CRC-32",
                    replay_path.display()
                )
            })?),
            None => None,
        };
        if let (Some(then), Some(now), Some(path)) = (recorded, self.dataset_crc, &self.cfg.dataset)
            && then != now
        {
            bail!(
                "dataset {}: its contents changed since the run started (CRC-32 {now:08x}, the run's checkpoint \
                 recorded {then:08x}): resume with the dataset the run was trained on",
                path.display()
            );
        }
        let dims = (self.replay.obs_dim(), self.replay.action_dim());
        let online = stored_rows(file, "online", dims)?;
        let pending = stored_rows(file, "pending", dims)?;
        // Every online step stored one transition, in the buffer or in an episode in progress.
        ensure!(
            (online + pending) as u64 == self.state.online_step,
            "{} holds {} online transitions, but the state.json beside it records online_step {}: the two files \
             come from different checkpoints",
            replay_path.display(),
            online + pending,
            self.state.online_step
        );
        let lengths = read_counts(file, "pending/lengths", pending)?;
        // Offline checkpoints of older versions list no envs; every other lists one episode per env.
        if !lengths.is_empty() && lengths.len() != self.cfg.envs {
            bail!(
                "{}: tensor pending/lengths lists {} envs, but the run has {}",
                replay_path.display(),
                lengths.len(),
                self.cfg.envs
            );
        }
        read_rows_into(file, "online", 0..online, &mut self.replay)?;
        check_values(&self.replay, self.offline_len, "online", &replay_path)?;
        let episodes = read_pending(file, &lengths, dims)?;
        let resumed = if self.state.online_step > 0 && !self.state.env_episode_word_pos.is_empty() {
            Some(self.read_resumed_envs(file, state_path)?)
        } else {
            None
        };
        Ok(RestoredReplay { episodes, resumed })
    }

    /// Checks the settings `state.json` records against the run's config: a config.toml edited since the run
    /// started, or a `state.json` of another run, would continue some other run.
    fn check_settings(&self, path: &Path) -> anyhow::Result<()> {
        let file = path.display();
        if let Some(then) = &self.state.settings {
            let changed = then.changes_to(&RunSettings::of(self.cfg));
            ensure!(
                changed.is_empty(),
                "{}: {} since the run started, by the record of {file}: a resumed run keeps the settings it started \
                 with (start a new run for others), or, if the config was not edited, {file} comes from another run",
                self.run.config().display(),
                changed.join(", ")
            );
        }
        Ok(())
    }

    /// Checks the progress `state.json` records against the run's config and the agent loaded beside it: files
    /// of another checkpoint, or edited counts, would continue some other run.
    fn check_state(&self, path: &Path) -> anyhow::Result<()> {
        let (s, cfg) = (&self.state, self.cfg);
        let file = path.display();
        ensure!(
            s.offline_step <= cfg.offline_steps,
            "{file}: offline_step {} is past the run's offline_steps = {}",
            s.offline_step,
            cfg.offline_steps
        );
        ensure!(
            s.online_step <= cfg.online_steps.div_ceil(cfg.envs as u64) * cfg.envs as u64,
            "{file}: online_step {} is past the run's online_steps = {}: was online_steps lowered in the run's \
             config.toml below the steps already made?",
            s.online_step,
            cfg.online_steps
        );
        ensure!(
            s.online_step.is_multiple_of(cfg.envs as u64),
            "{file}: online_step {} is not a step of the run's {} envs (each online step steps them all)",
            s.online_step,
            cfg.envs
        );
        ensure!(
            s.online_step == 0 || s.offline_step == cfg.offline_steps,
            "{file}: online_step {} before the offline phase ended (offline_step {} of {})",
            s.online_step,
            s.offline_step,
            cfg.offline_steps
        );
        let folder = format!("step-{}", s.offline_step + s.online_step);
        ensure!(
            path.parent().and_then(Path::file_name) == Some(folder.as_ref()),
            "{file} records step {} (offline {} + online {}), not its folder's: it was copied from another \
             checkpoint",
            s.offline_step + s.online_step,
            s.offline_step,
            s.online_step
        );
        ensure!(
            s.updates == self.agent.step(),
            "{file} records {} updates, but the agent.safetensors beside it has made {}: the two files come from \
             different checkpoints",
            s.updates,
            self.agent.step()
        );
        for (name, v) in [
            ("update_seconds", s.update_seconds),
            ("env_seconds", s.env_seconds),
            ("wall_seconds", s.wall_seconds),
        ] {
            ensure!(
                v.is_finite() && v >= 0.0,
                "{file}: {name} = {v}: expected a duration in seconds"
            );
        }
        ensure!(
            s.online_successes <= s.online_episodes,
            "{file}: online_successes {} is more than online_episodes {}: expected at most one success an episode",
            s.online_successes,
            s.online_episodes
        );
        let recent = s.recent_successes.len();
        ensure!(
            recent <= RECENT_EPISODES && recent as u64 <= s.online_episodes,
            "{file}: recent_successes lists {recent} episodes: expected at most the last {RECENT_EPISODES} of its \
             online_episodes {}",
            s.online_episodes
        );
        let reached = s.offline_step + s.online_step;
        for point in &s.evals {
            ensure!(
                point.step <= reached,
                "{file}: an evaluation at step {} is past the checkpoint's step {reached}: the file is damaged",
                point.step
            );
            ensure!(
                (0.0..=1.0).contains(&point.success_rate),
                "{file}: evaluation at step {} has success rate {}: expected a fraction in [0, 1]",
                point.step,
                point.success_rate
            );
        }
        Ok(())
    }

    /// The checkpoint's record of the online envs (`state.json`'s stream positions, the replay file's queued
    /// actions).
    fn read_resumed_envs(
        &self,
        file: &mut TensorFile,
        state_path: &Path,
    ) -> anyhow::Result<ResumedEnvs> {
        let word_pos = self
            .state
            .env_episode_word_pos
            .iter()
            .map(|p| p.parse::<u128>())
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|p| p.len() == self.cfg.envs)
            .with_context(|| {
                format!(
                    "{}: env_episode_word_pos {:?} must be {} whole numbers, one per env",
                    state_path.display(),
                    self.state.env_episode_word_pos,
                    self.cfg.envs
                )
            })?;
        let replay_path = file.path().display().to_string();
        let (dtype, shape) = file
            .info("queues/actions")
            .with_context(|| format!("{replay_path}: tensor queues/actions missing"))?;
        let a = self.replay.action_dim();
        ensure!(
            dtype == Dtype::F32 && shape.len() == 2 && shape[1] == a,
            "{replay_path}: tensor queues/actions is {dtype:?} {shape:?}: expected float32 [N, {a}]"
        );
        let mut queued = Vec::new();
        file.read_f32_into("queues/actions", &mut queued)?;
        if let Some(v) = queued.iter().find(|v| !(-1.0..=1.0).contains(*v)) {
            bail!("{replay_path}: tensor queues/actions holds {v}: expected actions in [-1, 1]");
        }
        let rows = queued.len() / a;
        let queued_counts = read_counts(file, "queues/lengths", rows)?;
        if queued_counts.len() != self.cfg.envs {
            bail!(
                "{replay_path}: tensor queues/lengths lists {} envs, but the run has {}",
                queued_counts.len(),
                self.cfg.envs
            );
        }
        Ok(ResumedEnvs {
            word_pos,
            queued,
            queued_counts,
        })
    }
}

/// Writes `state` to `path` (a checkpoint's `state.json`) atomically, sealed with the CRC-32 of its text.
fn write_state(path: &Path, state: &RunState) -> anyhow::Result<()> {
    let text = seal_state(&serde_json::to_string_pretty(state)?)?;
    write_bytes_atomically(path, text.as_bytes())
}

/// What a checkpoint's replay file gives a resumed run besides its buffer's transitions: each env's episode in
/// progress, and in the online phase the record of its envs.
struct RestoredReplay {
    episodes: Vec<TransitionStore>,
    resumed: Option<ResumedEnvs>,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use qamlab_agent::checkpoint::{read_tensors, write_tensors};

    use crate::config::TrainConfig;
    use crate::run_dir::{CHECKPOINT_ID_KEY, RunDir, STATE_CRC_KEY};
    use crate::train::tests::{pretty, resealed};
    use crate::train::{TrainOptions, train};

    /// A tiny online-only run of 40 steps on one env, checkpointed at its end, with `eval_episodes` episodes an
    /// evaluation (which changes its config.toml, not its seed, step, update count or tensors).
    fn tiny(eval_episodes: usize) -> TrainConfig {
        TrainConfig {
            eval_episodes,
            ..crate::train::tests::tiny(40, 1)
        }
    }

    fn options(config: &TrainConfig, out: &Path, resume: bool) -> TrainOptions {
        TrainOptions::new(config.clone(), out).with_resume(resume)
    }

    /// Trains `config` into `out`; returns its latest checkpoint.
    fn trained(config: &TrainConfig, out: &Path) -> PathBuf {
        train(options(config, out, false)).unwrap();
        RunDir::new(out).latest_checkpoint().unwrap().unwrap()
    }

    /// `file` (a safetensors file) without its checkpoint id, as older versions wrote it.
    fn strip_id(file: &Path) {
        let (tensors, mut meta) = read_tensors(file).unwrap();
        meta.remove(CHECKPOINT_ID_KEY);
        write_tensors(file, &tensors, meta).unwrap();
    }

    #[test]
    fn a_replay_file_damaged_on_disk_is_refused_as_damaged_before_its_values_are_judged() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let config = tiny(1);
        let latest = trained(&config, &out);
        let path = latest.join("replay.safetensors");
        let kept = std::fs::read(&path).unwrap();
        let resume = || train(options(&config, &out, true)).map(|_| ());
        let error = || format!("{:#}", resume().unwrap_err());
        // An action of 3 over the one the file's checksum was taken with: its arrays are read straight into the
        // buffer, and checked only after the checksum, so the file is named as damaged.
        let mut bytes = kept.clone();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let at = 8
            + n
            + header["online/actions"]["data_offsets"][0]
                .as_u64()
                .unwrap() as usize;
        bytes[at..at + 4].copy_from_slice(&3.0f32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = error();
        assert!(
            err.contains("replay.safetensors: its tensors' checksum is")
                && err.contains("the file is damaged"),
            "{err}"
        );
        // Written whole (its checksum agreeing), the value is named.
        std::fs::write(&path, &kept).unwrap();
        let (mut tensors, meta) = read_tensors(&path).unwrap();
        let (_, actions) = tensors
            .iter_mut()
            .find(|(n, _)| n == "online/actions")
            .unwrap();
        let _ = actions.get(0).get(0).fill_(3.0);
        write_tensors(&path, &tensors, meta).unwrap();
        let err = error();
        assert!(
            err.contains(
                "replay.safetensors: tensor online/actions holds 3: expected actions in [-1, 1]"
            ),
            "{err}"
        );
        std::fs::write(&path, &kept).unwrap();
        resume().unwrap();
    }

    #[test]
    fn files_of_different_checkpoints_are_refused_even_where_seed_and_counts_agree() {
        let dir = tempfile::tempdir().unwrap();
        let (a, y) = (dir.path().join("a"), dir.path().join("y"));
        let config = tiny(1);
        let ours = trained(&config, &a);
        // Another run of the same seed, agent and length: its checkpoint's step and update count are ours.
        let theirs = trained(&tiny(2), &y);
        assert_eq!(ours.file_name(), theirs.file_name());
        let resume = || train(options(&config, &a, true)).map(|_| ());
        let load = || {
            RunDir::new(&a)
                .load_latest_agent(&config, (28, 5), tch::Device::Cpu)
                .map(|_| ())
        };
        let error = |result: anyhow::Result<()>| format!("{:#}", result.unwrap_err());

        for file in ["agent.safetensors", "replay.safetensors"] {
            let kept = std::fs::read(ours.join(file)).unwrap();
            std::fs::copy(theirs.join(file), ours.join(file)).unwrap();
            let err = error(resume());
            assert!(
                err.contains(&format!("{file} beside it records checkpoint_id"))
                    && err.contains("state.json records checkpoint_id")
                    && err.contains("come from different checkpoints"),
                "{err}"
            );
            if file == "agent.safetensors" {
                // eval and view read the agent as a resume does.
                assert_eq!(error(load()), err);
            }
            std::fs::write(ours.join(file), kept).unwrap();
        }
        resume().unwrap();

        // Where the acting draws stand: the agent file's count, or more by a final evaluation at most.
        let state_path = ours.join("state.json");
        let state = std::fs::read_to_string(&state_path).unwrap();
        let edited = |position: u64| {
            let mut value: serde_json::Value = serde_json::from_str(&state).unwrap();
            value["acting_position"] = position.into();
            value
        };
        for (position, why) in [
            (99_999_999_999, "expected at most 100000 more"),
            (0, "expected at least as many"),
        ] {
            // Edited by hand, the file's checksum fails first: resume and eval name it as edited.
            let was = serde_json::from_str::<serde_json::Value>(&state).unwrap()["acting_position"]
                .clone();
            let by_hand = state.replace(
                &format!("\"acting_position\": {was}"),
                &format!("\"acting_position\": {position}"),
            );
            assert_ne!(by_hand, state);
            std::fs::write(&state_path, by_hand).unwrap();
            for err in [error(resume()), error(load())] {
                assert!(
                    err.starts_with(&format!("{}: its text's CRC-32 is ", state_path.display()))
                        && err.contains("the file was edited or damaged"),
                    "{err}"
                );
            }
            // Sealed again, as a deliberate edit would be, the value itself is judged.
            std::fs::write(&state_path, resealed(&edited(position))).unwrap();
            for err in [error(resume()), error(load())] {
                assert!(
                    err.contains(&format!("state.json: acting_position {position}"))
                        && err.contains(why),
                    "{err}"
                );
            }
        }
        std::fs::write(&state_path, &state).unwrap();

        // A checkpoint of an older qamlab records no id in any of its files, nor a checksum of its state, and loads
        // on its counts alone; one file without the id beside two with it is a mix.
        let mut value: serde_json::Value = serde_json::from_str(&state).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove(CHECKPOINT_ID_KEY);
        object.remove(STATE_CRC_KEY);
        std::fs::write(&state_path, pretty(&value)).unwrap();
        let err = error(resume());
        assert!(
            err.contains("agent.safetensors records checkpoint_id")
                && err.contains("state.json beside it records none"),
            "{err}"
        );
        strip_id(&ours.join("agent.safetensors"));
        let err = error(resume());
        assert!(
            err.contains("replay.safetensors records checkpoint_id")
                && err.contains("state.json beside it records none"),
            "{err}"
        );
        strip_id(&ours.join("replay.safetensors"));
        resume().unwrap();
        load().unwrap();
    }
}
