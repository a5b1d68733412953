//! Upper bounds of the counts a user gives (flags and config keys), and the memory check of what they allocate.
//!
//! Each bound lies far past any real run, yet low enough that the counts it bounds, multiplied together (steps by
//! the updates per step, episodes by their rows), stay far below `u64::MAX`; what they allocate is compared with
//! the machine's memory before it is allocated.

use anyhow::bail;
use qamlab_agent::footprint::format_bytes;

/// Envs stepped together (training, evaluation, collection, `bench sim`, the episodes `task` tries): 4096 of
/// cube-single take about 0.75 GB; the demo steps 8 to 16.
pub const MAX_ENVS: usize = 4096;

/// Gradient steps of the offline phase, env steps of the online one, and `start_training`: 10^12 (the paper's
/// runs take 10^6).
pub const MAX_STEPS: u64 = 1_000_000_000_000;

/// Gradient updates per online env step (the reference uses 1; RLPD-style runs up to 20).
pub const MAX_UTD_RATIO: usize = 1024;

/// Episodes of one evaluation.
pub const MAX_EVAL_EPISODES: usize = 1_000_000;

/// Episodes of one collection (OGBench's largest datasets hold 10^5 episodes of 1000 steps).
pub const MAX_EPISODES: usize = 100_000_000;

/// Control steps of one episode (the built-in tasks' are 200 to 1000).
pub const MAX_EPISODE_LENGTH: u32 = 1_000_000;

/// libtorch threads.
pub const MAX_THREADS: usize = 1024;

/// Bytes of a TOML config file: the shipped ones take about 1 KB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Bytes of a checkpoint's `state.json`: about 1 KB, and 130 bytes more an evaluation (two million of them).
pub const MAX_STATE_BYTES: u64 = 256 << 20;

/// Bytes of a run's `eval.csv` or `metrics.jsonl`: no bound, as a run's own logs are as long as it made them (a
/// run logging each of ten million steps writes about 5 GB of metrics, and must still resume); only a regular file
/// is read there, so a device or a pipe in their place is refused all the same.
pub const MAX_LOG_BYTES: u64 = u64::MAX;

/// The memory this process may use: the machine's (`MemTotal`), or the cgroup v2 limit at
/// `/sys/fs/cgroup/memory.max` where lower (the process's own in a container; limits set elsewhere are not seen).
/// `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
    // "max" (no limit) does not parse, and is no limit.
    let group = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match (total, group) {
        (Some(t), Some(g)) => Some(t.min(g)),
        (t, g) => t.or(g),
    }
}

/// Refuses, before anything is allocated, to hold `bytes` (`None`: more than a `u64` counts) where the machine
/// has less memory. `what` says what would take it, e.g. `collect: --episodes 10 of 201 rows each`.
pub fn check_memory(bytes: Option<u64>, what: &str) -> anyhow::Result<()> {
    check_memory_against(bytes, what, available_memory())
}

/// [`check_memory`] against a given amount of memory (`None`: unknown, so nothing is refused but uncountable sizes).
pub fn check_memory_against(
    bytes: Option<u64>,
    what: &str,
    memory: Option<u64>,
) -> anyhow::Result<()> {
    let needed = match bytes {
        Some(b) => b,
        None => bail!("{what} would take more than 16 EiB of memory"),
    };
    if let Some(memory) = memory
        && needed > memory
    {
        bail!(
            "{what} would take {} of memory, more than this machine's {}",
            format_bytes(needed),
            format_bytes(memory)
        );
    }
    Ok(())
}

/// Items a message lists at most ([`listed`]): a file's keys, a tensor's values.
pub const MAX_LISTED: usize = 10;

/// `items` joined with `, `, at most [`MAX_LISTED`] of them, then how many more (`a, b, c and 299997 more`): a
/// file of a million keys makes a message of a line, not megabytes.
pub fn listed<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut items = items.into_iter();
    let shown: Vec<String> = items
        .by_ref()
        .take(MAX_LISTED)
        .map(|i| i.to_string())
        .collect();
    match items.count() {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_the_machine_are_refused_with_what_they_would_take() {
        check_memory(Some(1 << 20), "a small buffer").unwrap();
        let err = check_memory(Some(1 << 62), "--envs 5")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--envs 5 would take 4.0 EiB of memory, more than this machine's "),
            "{err}"
        );
        let err = check_memory(None, "--episodes 9").unwrap_err().to_string();
        assert_eq!(err, "--episodes 9 would take more than 16 EiB of memory");
        assert_eq!(listed(["a", "b"]), "a, b");
        assert_eq!(
            listed(0..1_000_000),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 999990 more"
        );
        // The bounds multiply without overflow: steps by updates per step, episodes by their rows.
        assert!(MAX_STEPS.checked_mul(MAX_UTD_RATIO as u64).is_some());
        assert!(
            (MAX_EPISODES as u64)
                .checked_mul(u64::from(MAX_EPISODE_LENGTH) + 1)
                .and_then(|rows| rows.checked_mul(4096))
                .is_some()
        );
    }
}
