//! The online envs' episodes in progress: their transitions, staged per env until the episode ends and then put
//! into the replay buffer whole (so every episode there is contiguous and sampled chunks never mix envs), and, in a
//! resumed run, what its checkpoint records to put the envs back into them.

use qamlab_agent::TransitionStore;
use qamlab_sim::StepOutput;

use super::replay::shape_reward;

/// A checkpoint's record of the online envs: where each episode in progress began in its env's stream (its
/// actions so far are the staged transitions), and the actions each env still had queued from its chunk.
pub(super) struct ResumedEnvs {
    pub(super) word_pos: Vec<u128>,
    pub(super) queued: Vec<f32>,
    pub(super) queued_counts: Vec<usize>,
}

/// The online envs' episodes in progress. With one env, whose episodes stay contiguous anyway, transitions go
/// straight into the replay buffer, as the reference's `add_transition` does; with several, each env stages its
/// episode apart until it ends (sampled from meanwhile, see `sampled_segments`).
pub(super) struct EpisodesInProgress {
    /// Each env's episode in progress, when staged apart (always empty with one env).
    staged: Vec<TransitionStore>,
    /// What the checkpoint a resumed run starts from records of its envs, until the online phase takes it.
    resumed: Option<ResumedEnvs>,
}

impl EpisodesInProgress {
    /// No episode in progress for each of `envs` envs.
    pub(super) fn new(envs: usize, obs_dim: usize, action_dim: usize) -> Self {
        Self {
            staged: vec![TransitionStore::new(obs_dim, action_dim); envs],
            resumed: None,
        }
    }

    /// Whether online transitions go straight into the replay buffer (one env) rather than staged apart.
    fn stages_in_replay(&self) -> bool {
        self.staged.len() == 1
    }

    /// Each env's transitions staged apart from the replay buffer (empty ones with one env), env by env.
    pub(super) fn staged(&self) -> &[TransitionStore] {
        &self.staged
    }

    /// Stages each env's transition of step `out` (taken from `obs` with `actions`, its reward shaped as `sparse`
    /// says); an env whose episode ended has it put into `replay`. Returns the envs whose episode ended, in order.
    pub(super) fn stage_step(
        &mut self,
        replay: &mut TransitionStore,
        obs: &[f32],
        actions: &[f32],
        out: &StepOutput,
        sparse: bool,
    ) -> anyhow::Result<Vec<usize>> {
        let (obs_dim, action_dim) = (replay.obs_dim(), replay.action_dim());
        let in_replay = self.stages_in_replay();
        let mut ended = Vec::new();
        for (i, episode) in self.staged.iter_mut().enumerate() {
            let done = out.ended(i);
            let staging = if in_replay {
                &mut *replay
            } else {
                &mut *episode
            };
            staging.push(
                &obs[i * obs_dim..(i + 1) * obs_dim],
                &actions[i * action_dim..(i + 1) * action_dim],
                shape_reward(out.reward[i], sparse),
                if out.terminated[i] { 0.0 } else { 1.0 },
                if done { 1.0 } else { 0.0 },
                &out.final_obs[i * obs_dim..(i + 1) * obs_dim],
            )?;
            if done {
                if !in_replay {
                    let episode =
                        std::mem::replace(episode, TransitionStore::new(obs_dim, action_dim));
                    replay.append(&episode)?;
                }
                ended.push(i);
            }
        }
        Ok(ended)
    }

    /// Env `i`'s episode in progress: its actions so far (`[T * action_dim]`) and the observation it has reached
    /// (empty before its first step). `replay` holds `offline_len` offline transitions first.
    pub(super) fn episode<'s>(
        &'s self,
        i: usize,
        replay: &'s TransitionStore,
        offline_len: usize,
    ) -> (&'s [f32], &'s [f32]) {
        let (o, a) = (replay.obs_dim(), replay.action_dim());
        let (store, from) = if self.stages_in_replay() {
            // The rows after the buffer's last episode boundary (the offline data ends with one).
            let t = &replay.terminals;
            let from = t.iter().rposition(|&x| x > 0.0).map_or(0, |j| j + 1);
            (replay, from.max(offline_len))
        } else {
            (&self.staged[i], 0)
        };
        let next = &store.next_observations[from * o..];
        (
            &store.actions[from * a..],
            &next[next.len().saturating_sub(o)..],
        )
    }

    /// Ends every episode in progress where it stands and puts it into `replay`, for envs that cannot go on with
    /// them: its last transition becomes a boundary for chunk sampling (its mask still bootstraps).
    pub(super) fn cut_all(
        &mut self,
        replay: &mut TransitionStore,
        offline_len: usize,
    ) -> anyhow::Result<()> {
        if self.stages_in_replay() && !self.episode(0, replay, offline_len).0.is_empty() {
            *replay
                .terminals
                .last_mut()
                .expect("an episode is in progress") = 1.0;
        }
        let (obs_dim, action_dim) = (replay.obs_dim(), replay.action_dim());
        for episode in &mut self.staged {
            let mut episode = std::mem::replace(episode, TransitionStore::new(obs_dim, action_dim));
            if let Some(last) = episode.terminals.last_mut() {
                *last = 1.0;
            }
            replay.append(&episode)?;
        }
        Ok(())
    }

    /// Puts back the staged transitions a checkpoint records, one store per env, first to last (a checkpoint
    /// that lists none restores none); the stores are kept as they are, not copied.
    pub(super) fn restore(&mut self, episodes: Vec<TransitionStore>) {
        for (staged, episode) in self.staged.iter_mut().zip(episodes) {
            *staged = episode;
        }
    }

    /// Keeps what a resumed run's checkpoint records of its envs, for the online phase.
    pub(super) fn set_resumed(&mut self, resumed: ResumedEnvs) {
        self.resumed = Some(resumed);
    }

    /// What a resumed run's checkpoint records of its envs, once: the online phase puts them back from it.
    pub(super) fn take_resumed(&mut self) -> Option<ResumedEnvs> {
        self.resumed.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of two envs (1-D observations and actions) whose episodes end as `ended` says: `Some(true)` by
    /// success (terminated), `Some(false)` by the time limit (truncated), `None` not at all.
    fn step(ended: [Option<bool>; 2], reward: [f32; 2], reached: [f32; 2]) -> StepOutput {
        StepOutput {
            // After the auto-reset: the next episodes' first observations where an episode ended.
            obs: vec![100.0, 200.0],
            final_obs: reached.to_vec(),
            reward: reward.to_vec(),
            success: ended.map(|e| e == Some(true)).to_vec(),
            terminated: ended.map(|e| e == Some(true)).to_vec(),
            truncated: ended.map(|e| e == Some(false)).to_vec(),
            qpos: Vec::new(),
            qvel: Vec::new(),
            final_qpos: Vec::new(),
            final_qvel: Vec::new(),
        }
    }

    #[test]
    fn an_episode_ended_by_success_stops_bootstrapping_and_one_ended_by_the_time_limit_does_not() {
        // Spec §7.2: terminals = terminated or truncated, masks = 1 - terminated, rewards made sparse where asked,
        // next_observations the state reached (not the next episode's first); several envs' episodes whole.
        let mut replay = TransitionStore::new(1, 1);
        let mut episodes = EpisodesInProgress::new(2, 1, 1);
        let first = step([None, None], [-2.0, -1.0], [1.0, 2.0]);
        let ended = episodes
            .stage_step(&mut replay, &[0.0, 0.5], &[0.1, 0.2], &first, true)
            .unwrap();
        assert!(ended.is_empty() && replay.is_empty());
        let last = step([Some(true), Some(false)], [0.0, -2.0], [3.0, 4.0]);
        let ended = episodes
            .stage_step(&mut replay, &[1.0, 2.0], &[0.3, 0.4], &last, true)
            .unwrap();
        assert_eq!(ended, [0, 1]);
        // Env 0's episode (ended by success), then env 1's (cut by the time limit).
        assert_eq!(replay.observations, [0.0, 1.0, 0.5, 2.0]);
        assert_eq!(replay.actions, [0.1, 0.3, 0.2, 0.4]);
        assert_eq!(replay.next_observations, [1.0, 3.0, 2.0, 4.0]);
        assert_eq!(replay.rewards, [-1.0, 0.0, -1.0, -1.0]);
        assert_eq!(replay.masks, [1.0, 0.0, 1.0, 1.0]);
        assert_eq!(replay.terminals, [0.0, 1.0, 0.0, 1.0]);
        assert!(episodes.staged().iter().all(TransitionStore::is_empty));
    }
}
