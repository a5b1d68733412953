//! What a checkpoint of a run holds (the agent, the online replay data with the episodes in progress, the run's
//! progress and settings) and how a resume restores it, refusing files that would continue some other run.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use qamlab_agent::{TransitionStore, checkpoint};
use qamlab_sim::BatchedEnv;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::episodes::ResumedEnvs;
use super::replay::append;
use super::trainer::{RECENT_EPISODES, RunState, Trainer};
use crate::chunks::ChunkQueues;
use crate::config::TrainConfig;
use crate::files::write_bytes_atomically;

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
    pub(super) fn checkpoint(
        &mut self,
        envs: Option<(&BatchedEnv, &ChunkQueues)>,
    ) -> anyhow::Result<()> {
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
        let dir = self
            .run
            .checkpoints()
            .join(format!("step-{}", self.total_step()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the checkpoint directory {}", dir.display()))?;
        self.agent.save(dir.join("agent.safetensors"))?;
        let mut tensors = store_tensors("online", &self.replay, self.offline_len)?;
        let (all_pending, lengths) = self
            .episodes
            .to_record(self.replay.obs_dim(), self.replay.action_dim())?;
        let lengths: Vec<i64> = lengths.iter().map(|&l| l as i64).collect();
        tensors.extend(store_tensors("pending", &all_pending, 0)?);
        tensors.push(("pending/lengths".into(), Tensor::from_slice(&lengths)));
        let mut state = self.state_to_record();
        state.env_episode_word_pos.clear();
        if let Some((env, queues)) = envs {
            state.env_episode_word_pos = env
                .episode_word_positions()
                .iter()
                .map(u128::to_string)
                .collect();
            let (queued, counts) = queues.snapshot();
            let counts: Vec<i64> = counts.iter().map(|&c| c as i64).collect();
            let a = self.replay.action_dim() as i64;
            tensors.push((
                "queues/actions".into(),
                Tensor::from_slice(&queued).view([-1, a]),
            ));
            tensors.push(("queues/lengths".into(), Tensor::from_slice(&counts)));
        }
        let mut meta = HashMap::new();
        meta.insert("offline_len".into(), self.offline_len.to_string());
        // The run's seed marks its files: a replay buffer copied from another run is refused at a resume.
        meta.insert("seed".into(), self.cfg.seed.to_string());
        if let Some(crc) = self.dataset_crc {
            meta.insert("dataset_crc32".into(), crc.to_string());
        }
        checkpoint::write_tensors(&dir.join("replay.safetensors"), &tensors, meta)?;
        write_bytes_atomically(
            &dir.join("state.json"),
            serde_json::to_string_pretty(&state)?.as_bytes(),
        )?;
        self.run.publish_checkpoint(&dir)
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
    /// now made, with the acting draws it took: one file written atomically, where rewriting the checkpoint (the
    /// run's only one) file by file could leave it a mix of two if killed midway.
    pub(super) fn record_final_evaluation(&mut self) -> anyhow::Result<()> {
        let dir = self
            .run
            .latest_checkpoint()?
            .context("the checkpoint the run resumed from is gone")?;
        // The envs' episodes stay as that checkpoint records them: none stepped since.
        let state = self.state_to_record();
        write_bytes_atomically(
            &dir.join("state.json"),
            serde_json::to_string_pretty(&state)?.as_bytes(),
        )
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
            bail!(
                "{root} has no checkpoint to resume from: the run stopped before its first (checkpoint_interval {}); \
                 remove it and start the run again",
                self.cfg.checkpoint_interval
            );
        };
        let state_path = dir.join("state.json");
        let text = std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?;
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
        let (tensors, meta) = checkpoint::read_tensors(&replay_path)?;
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
        let tensors: HashMap<String, Tensor> = tensors.into_iter().collect();
        let online = restore_store(&tensors, "online", &self.replay, &replay_path)?;
        append(&mut self.replay, &online)?;
        let pending = restore_store(&tensors, "pending", &self.replay, &replay_path)?;
        // Every online step stored one transition, in the buffer or in an episode in progress.
        ensure!(
            (online.len() + pending.len()) as u64 == self.state.online_step,
            "{} holds {} online transitions, but the state.json beside it records online_step {}: the two files \
             come from different checkpoints",
            replay_path.display(),
            online.len() + pending.len(),
            self.state.online_step
        );
        let lengths = read_counts(&tensors, "pending/lengths", pending.len(), &replay_path)?;
        // Offline checkpoints of older versions list no envs; every other lists one episode per env.
        if !lengths.is_empty() && lengths.len() != self.cfg.envs {
            bail!(
                "{}: tensor pending/lengths lists {} envs, but the run has {}",
                replay_path.display(),
                lengths.len(),
                self.cfg.envs
            );
        }
        self.episodes.restore(&pending, &lengths)?;
        // Resuming from another position would repeat or skip batches: the run would not be the one it continues.
        let pos: u128 = self.state.sampler_word_pos.parse().with_context(|| {
            format!(
                "{}: sampler_word_pos {:?} is not a whole number",
                state_path.display(),
                self.state.sampler_word_pos
            )
        })?;
        self.sampler.set_word_pos(pos);
        if self.state.online_step > 0 && !self.state.env_episode_word_pos.is_empty() {
            let resumed = self.read_resumed_envs(&tensors, &state_path, &replay_path)?;
            self.episodes.set_resumed(resumed);
        }
        self.wall_before = self.state.wall_seconds;
        // The interval the rows so far were logged with, which a resume may have changed since.
        let logged_every = self.state.log_interval.unwrap_or(self.cfg.log_interval);
        self.run
            .truncate_metrics_after(self.total_step(), logged_every, self.cfg.offline_steps)?;
        Ok(())
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
        if let Some(position) = s.acting_position {
            crate::run_dir::check_acting_position(path, position)?;
        }
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

    /// The checkpoint's record of the online envs (`state.json`'s stream positions, the queued actions).
    fn read_resumed_envs(
        &self,
        tensors: &HashMap<String, Tensor>,
        state_path: &Path,
        replay_path: &Path,
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
        let actions = tensors
            .get("queues/actions")
            .with_context(|| format!("{}: tensor queues/actions missing", replay_path.display()))?;
        let a = self.replay.action_dim() as i64;
        ensure!(
            actions.kind() == Kind::Float && actions.dim() == 2 && actions.size()[1] == a,
            "{}: tensor queues/actions is {:?} {:?}: expected float32 [N, {a}]",
            replay_path.display(),
            actions.kind(),
            actions.size()
        );
        let queued: Vec<f32> = Vec::try_from(actions.flatten(0, -1))?;
        if let Some(v) = queued.iter().find(|v| !(-1.0..=1.0).contains(*v)) {
            bail!(
                "{}: tensor queues/actions holds {v}: expected actions in [-1, 1]",
                replay_path.display()
            );
        }
        let rows = queued.len() / self.replay.action_dim();
        let queued_counts = read_counts(tensors, "queues/lengths", rows, replay_path)?;
        if queued_counts.len() != self.cfg.envs {
            bail!(
                "{}: tensor queues/lengths lists {} envs, but the run has {}",
                replay_path.display(),
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

/// The transitions of `store` from index `from` as named tensors `<prefix>/<field>`.
fn store_tensors(
    prefix: &str,
    store: &TransitionStore,
    from: usize,
) -> anyhow::Result<Vec<(String, Tensor)>> {
    let (o, a) = (store.obs_dim(), store.action_dim());
    let n = (store.len() - from) as i64;
    let field = |name: &str, data: &[f32], width: usize| {
        (
            format!("{prefix}/{name}"),
            Tensor::from_slice(&data[from * width..]).view([n, width as i64]),
        )
    };
    Ok(vec![
        field("observations", &store.observations, o),
        field("actions", &store.actions, a),
        field("next_observations", &store.next_observations, o),
        field("rewards", &store.rewards, 1),
        field("masks", &store.masks, 1),
        field("terminals", &store.terminals, 1),
    ])
}

/// The `i64` tensor `name`: counts that must add up to `total` rows.
fn read_counts(
    tensors: &HashMap<String, Tensor>,
    name: &str,
    total: usize,
    path: &Path,
) -> anyhow::Result<Vec<usize>> {
    let values: Vec<i64> = Vec::try_from(
        tensors
            .get(name)
            .with_context(|| format!("{}: tensor {name} missing", path.display()))?,
    )?;
    values
        .iter()
        .map(|&v| usize::try_from(v))
        .collect::<Result<Vec<usize>, _>>()
        .ok()
        .filter(|counts| counts.iter().sum::<usize>() == total)
        .with_context(|| {
            format!(
                "{}: tensor {name} {values:?} must be counts that add up to the {total} rows stored",
                path.display()
            )
        })
}

fn restore_store(
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
    like: &TransitionStore,
    path: &Path,
) -> anyhow::Result<TransitionStore> {
    let get = |name: &str, width: usize| -> anyhow::Result<Vec<f32>> {
        let key = format!("{prefix}/{name}");
        let t = tensors
            .get(&key)
            .with_context(|| format!("{}: tensor {key} missing", path.display()))?;
        let shape = t.size();
        ensure!(
            t.kind() == Kind::Float && shape.len() == 2 && shape[1] == width as i64,
            "{}: tensor {key} is {:?} {shape:?}: expected float32 [N, {width}]",
            path.display(),
            t.kind()
        );
        let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            bail!(
                "{}: tensor {key} holds {v}: the checkpoint is damaged",
                path.display()
            );
        }
        // Actions were clipped to the action space before they were taken.
        if name == "actions"
            && let Some(v) = values.iter().find(|v| v.abs() > 1.0)
        {
            bail!(
                "{}: tensor {key} holds {v}: expected actions in [-1, 1]",
                path.display()
            );
        }
        // Masks scale the bootstrapped value and terminals cut the chunks: anything but 0 or 1 is damage.
        if (name == "masks" || name == "terminals")
            && let Some(v) = values.iter().find(|&&v| v != 0.0 && v != 1.0)
        {
            bail!(
                "{}: tensor {key} holds {v}: expected 0 or 1",
                path.display()
            );
        }
        Ok(values)
    };
    let (o, a) = (like.obs_dim(), like.action_dim());
    let mut store = TransitionStore::new(o, a);
    store
        .extend_from_arrays(
            &get("observations", o)?,
            &get("actions", a)?,
            &get("next_observations", o)?,
            &get("rewards", 1)?,
            &get("masks", 1)?,
            &get("terminals", 1)?,
        )
        .with_context(|| format!("{}: {prefix} transitions", path.display()))?;
    Ok(store)
}
