//! The replay buffer's transitions: whether they fit in memory, rewards as training stores them, and appending.

use qamlab_agent::TransitionStore;

use crate::config::TrainConfig;

/// Refuses, before the replay buffer is made, a run whose online transitions would not fit in memory: the buffer
/// keeps every one (observation, next observation, action, reward, mask and terminal in float32).
pub(super) fn check_replay_memory(
    cfg: &TrainConfig,
    obs_dim: usize,
    action_dim: usize,
) -> anyhow::Result<()> {
    let per_transition = (2 * obs_dim + action_dim + 3) as u64 * 4;
    crate::limits::check_memory(
        cfg.online_steps.checked_mul(per_transition),
        &format!(
            "online_steps = {}: the replay buffer, holding every online transition ({per_transition} bytes each),",
            cfg.online_steps
        ),
    )
}

/// Refuses, before the agent is built, networks and a batch whose parameters and one update's activations would not
/// fit in this machine's memory at the least (libtorch would otherwise fail mid-update). On a GPU the networks live
/// in its memory, which is not checked here.
pub(super) fn check_agent_memory(
    cfg: &TrainConfig,
    obs_dim: usize,
    action_dim: usize,
) -> anyhow::Result<()> {
    let a = &cfg.agent;
    crate::limits::check_memory(
        qamlab_agent::footprint::memory_lower_bound(a, obs_dim, action_dim),
        &format!(
            "the agent (actor_hidden_dims = {:?}, value_hidden_dims = {:?}, num_qs = {}, batch_size = {}, \
             horizon_length = {}): its networks and one update at the least",
            a.actor_hidden_dims, a.value_hidden_dims, a.num_qs, a.batch_size, a.horizon_length
        ),
    )
}

/// A reward as training sees it: with `sparse` (spec §2.1), -1 unless it is 0.
pub(super) fn shape_reward(reward: f32, sparse: bool) -> f32 {
    if sparse && reward != 0.0 {
        -1.0
    } else {
        reward
    }
}

/// Appends every transition of `src` to `dst`.
pub(super) fn append(dst: &mut TransitionStore, src: &TransitionStore) -> anyhow::Result<()> {
    dst.extend_from_arrays(
        &src.observations,
        &src.actions,
        &src.next_observations,
        &src.rewards,
        &src.masks,
        &src.terminals,
    )?;
    Ok(())
}
