//! The replay buffer's transitions: whether they fit in memory, and rewards as training stores them.

use crate::config::TrainConfig;

/// Refuses a run that would not fit in this machine's memory: the replay buffer, which keeps the dataset's
/// `dataset_transitions` (0 before it is read) and every online transition, the buffer its checkpoints stream
/// through, and on the CPU the agent (its networks and one update at the least; libtorch would otherwise fail
/// mid-update). The online transitions and the agent are checked alone, so that the error names the one past the
/// machine, then all together, since all are held at once. On a GPU the networks live in its memory, which is not
/// checked here.
pub(super) fn check_run_memory(
    cfg: &TrainConfig,
    (obs_dim, action_dim): (usize, usize),
    on_cpu: bool,
    dataset_transitions: usize,
) -> anyhow::Result<()> {
    let memory = crate::limits::available_memory();
    check_run_memory_within(
        cfg,
        (obs_dim, action_dim),
        on_cpu,
        dataset_transitions,
        memory,
    )
}

/// [`check_run_memory`] against `memory` bytes.
fn check_run_memory_within(
    cfg: &TrainConfig,
    (obs_dim, action_dim): (usize, usize),
    on_cpu: bool,
    dataset_transitions: usize,
    memory: Option<u64>,
) -> anyhow::Result<()> {
    use crate::limits::check_memory_against;
    use qamlab_agent::footprint::format_bytes;
    let per_transition = (2 * obs_dim + action_dim + 3) as u64 * 4;
    let online = cfg.online_steps.checked_mul(per_transition);
    check_memory_against(
        online,
        &format!(
            "online_steps = {}: the replay buffer, holding every online transition ({per_transition} bytes each),",
            cfg.online_steps
        ),
        memory,
    )?;
    // Counted (an uncountable size was refused above).
    let online = online.unwrap_or(u64::MAX);
    let mut parts = Vec::new();
    if dataset_transitions > 0 {
        let dataset = (dataset_transitions as u64).saturating_mul(per_transition);
        parts.push((
            format!(
                "the dataset's {dataset_transitions} transitions ({})",
                format_bytes(dataset)
            ),
            dataset,
        ));
    }
    parts.push((
        format!(
            "the replay buffer ({}, online_steps = {})",
            format_bytes(online),
            cfg.online_steps
        ),
        online,
    ));
    // The most a run holds besides at a checkpoint, or a resume: the buffer's file is written straight from its
    // own vectors and read back straight into them (`replay_file`), each env's episode in progress into a store
    // of its own, so no copy of the transitions is ever made; only the one buffer the file goes through. (Written
    // through tensors and a serialized file, a checkpoint once took three copies of the buffer, and a resume as
    // many: a run that fitted was killed for memory at its first checkpoint.)
    let streaming = qamlab_agent::checkpoint::STREAMING_BYTES;
    parts.push((
        format!(
            "the buffer its checkpoints stream through ({})",
            format_bytes(streaming)
        ),
        streaming,
    ));
    if on_cpu {
        let a = &cfg.agent;
        let agent = qamlab_agent::footprint::memory_lower_bound(a, obs_dim, action_dim);
        check_memory_against(
            agent,
            &format!(
                "the agent (actor_hidden_dims = {:?}, value_hidden_dims = {:?}, num_qs = {}, batch_size = {}, \
                 horizon_length = {}): its networks and one update at the least",
                a.actor_hidden_dims, a.value_hidden_dims, a.num_qs, a.batch_size, a.horizon_length
            ),
            memory,
        )?;
        let agent = agent.unwrap_or(u64::MAX);
        parts.push((format!("the agent ({})", format_bytes(agent)), agent));
    }
    let total = parts
        .iter()
        .try_fold(0u64, |sum, (_, bytes)| sum.checked_add(*bytes));
    let names: Vec<&str> = parts.iter().map(|(name, _)| name.as_str()).collect();
    let (last, rest) = names.split_last().expect("two parts at least");
    check_memory_against(
        total,
        &format!("{} and {last} together", rest.join(", ")),
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
        let streaming = qamlab_agent::checkpoint::STREAMING_BYTES;
        let agent =
            qamlab_agent::footprint::memory_lower_bound(&cfg.agent, obs_dim, action_dim).unwrap();
        let memory = Some(replay.max(agent) + replay.min(agent) / 2);
        let dims = (obs_dim, action_dim);
        let err = format!(
            "{:#}",
            check_run_memory_within(&cfg, dims, true, 0, memory).unwrap_err()
        );
        assert!(
            err.starts_with(
                "the replay buffer (24.4 MiB, online_steps = 100000), the buffer its checkpoints stream through \
                 (1.1 MiB) and the agent ("
            ),
            "{err}"
        );
        assert!(err.contains(") together would take "), "{err}");
        // On a GPU the networks are not in this memory, and enough of it holds both.
        check_run_memory_within(&cfg, dims, false, 0, memory).unwrap();
        check_run_memory_within(&cfg, dims, true, 0, Some(replay + streaming + agent)).unwrap();
        // The dataset read into the same buffer counts too: on a GPU, its transitions and the online ones.
        let err = format!(
            "{:#}",
            check_run_memory_within(&cfg, dims, false, 100_000, Some(replay + replay / 2))
                .unwrap_err()
        );
        assert!(
            err.starts_with(
                "the dataset's 100000 transitions (24.4 MiB), the replay buffer (24.4 MiB, online_steps = 100000) \
                 and the buffer its checkpoints stream through (1.1 MiB) together would take 50.0 MiB"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_check_counts_what_a_checkpoint_holds_besides_the_buffer() {
        // A machine that holds the buffer and no more: a checkpoint, or a resume, needs the buffer the file
        // streams through too (before checkpoints streamed, three copies of the buffer, then uncounted).
        let cfg = TrainConfig {
            online_steps: 100_000,
            ..TrainConfig::default()
        };
        let dims = (28, 5);
        let replay = 100_000 * (2 * 28 + 5 + 3) * 4;
        let streaming = qamlab_agent::checkpoint::STREAMING_BYTES;
        let err = format!(
            "{:#}",
            check_run_memory_within(&cfg, dims, false, 0, Some(replay)).unwrap_err()
        );
        assert!(
            err.starts_with(
                "the replay buffer (24.4 MiB, online_steps = 100000) and the buffer its checkpoints stream \
                 through (1.1 MiB) together would take 25.5 MiB of memory"
            ),
            "{err}"
        );
        check_run_memory_within(&cfg, dims, false, 0, Some(replay + streaming)).unwrap();
        // It is a buffer, not a share of the buffer: small beside a large one.
        assert!(streaming < 2 << 20);
    }
}
