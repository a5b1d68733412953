//! The replay buffer's transitions: whether they fit in memory, rewards as training stores them, and appending.

use qamlab_agent::TransitionStore;

use crate::config::TrainConfig;

/// Refuses, before anything is built, a run that would not fit in this machine's memory: the replay buffer, which
/// keeps every online transition, and on the CPU the agent (its networks and one update at the least; libtorch would
/// otherwise fail mid-update). Each is checked alone, so that the error names the one past the machine, then both
/// together, since both are held at once. On a GPU the networks live in its memory, which is not checked here.
pub(super) fn check_run_memory(
    cfg: &TrainConfig,
    obs_dim: usize,
    action_dim: usize,
    on_cpu: bool,
) -> anyhow::Result<()> {
    let memory = crate::limits::available_memory();
    check_run_memory_within(cfg, obs_dim, action_dim, on_cpu, memory)
}

/// [`check_run_memory`] against `memory` bytes.
fn check_run_memory_within(
    cfg: &TrainConfig,
    obs_dim: usize,
    action_dim: usize,
    on_cpu: bool,
    memory: Option<u64>,
) -> anyhow::Result<()> {
    let per_transition = (2 * obs_dim + action_dim + 3) as u64 * 4;
    let replay = cfg.online_steps.checked_mul(per_transition);
    crate::limits::check_memory_against(
        replay,
        &format!(
            "online_steps = {}: the replay buffer, holding every online transition ({per_transition} bytes each),",
            cfg.online_steps
        ),
        memory,
    )?;
    if !on_cpu {
        return Ok(());
    }
    let a = &cfg.agent;
    let agent = qamlab_agent::footprint::memory_lower_bound(a, obs_dim, action_dim);
    crate::limits::check_memory_against(
        agent,
        &format!(
            "the agent (actor_hidden_dims = {:?}, value_hidden_dims = {:?}, num_qs = {}, batch_size = {}, \
             horizon_length = {}): its networks and one update at the least",
            a.actor_hidden_dims, a.value_hidden_dims, a.num_qs, a.batch_size, a.horizon_length
        ),
        memory,
    )?;
    // Both were counted (an uncountable size was refused above).
    let (replay, agent) = (replay.unwrap_or(u64::MAX), agent.unwrap_or(u64::MAX));
    crate::limits::check_memory_against(
        replay.checked_add(agent),
        &format!(
            "the replay buffer ({}, online_steps = {}) and the agent ({}) together",
            crate::limits::format_bytes(replay),
            cfg.online_steps,
            crate::limits::format_bytes(agent)
        ),
        memory,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_and_an_agent_that_fit_alone_but_not_together_are_refused() {
        let mut cfg = TrainConfig {
            online_steps: 100_000,
            ..TrainConfig::default()
        };
        cfg.agent.batch_size = 64;
        let (obs_dim, action_dim) = (28, 5);
        let replay = 100_000 * (2 * 28 + 5 + 3) * 4;
        let agent =
            qamlab_agent::footprint::memory_lower_bound(&cfg.agent, obs_dim, action_dim).unwrap();
        let memory = Some(replay.max(agent) + replay.min(agent) / 2);
        let err = format!(
            "{:#}",
            check_run_memory_within(&cfg, obs_dim, action_dim, true, memory).unwrap_err()
        );
        assert!(
            err.starts_with("the replay buffer (24.4 MiB, online_steps = 100000) and the agent ("),
            "{err}"
        );
        assert!(err.contains(") together would take "), "{err}");
        // On a GPU the networks are not in this memory, and enough of it holds both.
        check_run_memory_within(&cfg, obs_dim, action_dim, false, memory).unwrap();
        check_run_memory_within(&cfg, obs_dim, action_dim, true, Some(replay + agent)).unwrap();
    }
}
