//! [`memory_lower_bound`]: what an agent's networks and one update take at the least, to refuse a configuration
//! that cannot fit before libtorch fails to allocate in the middle of building or updating it; and
//! [`format_bytes`], how the lab prints such a size (here, so that the crates above share one formatter).

use crate::config::{AgentConfig, AgentKind};

/// Bytes an agent of `cfg` for `obs_dim`-D observations and `action_dim`-D actions takes at the least: every
/// network's float32 parameters (targets once; trainable ones also with their gradient, the flat gradient and
/// Adam's two moments), a sampled batch (observations, an action chunk, the chunk's next observations, its rewards,
/// masks, validity and terminals; once as sampled, once as tensors), and the activations one update keeps for its
/// backward pass (three tensors per hidden layer: the product, the normalised and the activated; the critic over
/// `s` and `s'`, the policy's `flow_steps` Euler steps and the BC loss). A lower bound: an update allocates more
/// besides. `None` past `u64`.
pub fn memory_lower_bound(cfg: &AgentConfig, obs_dim: usize, action_dim: usize) -> Option<u64> {
    let d = cfg.policy_dim(action_dim) as u64;
    let obs = obs_dim as u64;
    let (ah, vh) = (&cfg.actor_hidden_dims, &cfg.value_hidden_dims);
    let field = mlp_parameters(obs + d + 1, ah, d)?;
    let critic = (cfg.num_qs as u64).checked_mul(mlp_parameters(obs + d, vh, 1)?)?;
    let mut trainable = field;
    let mut targets = 0u64;
    if cfg.kind.has_critic() {
        trainable = trainable.checked_add(critic)?;
        targets = critic;
    }
    if cfg.kind.is_qam() {
        // actor_fast beside actor_slow, whose target is kept too.
        trainable = trainable.checked_add(field)?;
        targets = targets.checked_add(field)?;
    }
    let extra = match cfg.kind {
        AgentKind::QamF | AgentKind::Fql => mlp_parameters(obs + d, ah, d)?,
        AgentKind::QamE => mlp_parameters(obs + d, ah, 2 * d)?,
        AgentKind::Qam | AgentKind::Bc => 0,
    };
    trainable = trainable.checked_add(extra)?;
    let parameters = trainable.checked_mul(5)?.checked_add(targets)?;
    let batch = cfg.batch_size as u64;
    let widths = |dims: &[usize]| dims.iter().try_fold(0u64, |n, &w| n.checked_add(w as u64));
    let critic_activations = if cfg.kind.has_critic() {
        2u64.checked_mul(cfg.num_qs as u64)?
            .checked_mul(batch)?
            .checked_mul(widths(vh)?)?
    } else {
        0
    };
    let policy_activations = (cfg.flow_steps as u64 + 1)
        .checked_mul(batch)?
        .checked_mul(widths(ah)?)?;
    let activations = critic_activations
        .checked_add(policy_activations)?
        .checked_mul(3)?;
    let h = if cfg.action_chunking {
        cfg.horizon_length as u64
    } else {
        1
    };
    let sample = obs.checked_mul(h + 1)?.checked_add(d)?.checked_add(4 * h)?;
    let batch_values = batch.checked_mul(sample)?.checked_mul(2)?;
    parameters
        .checked_add(activations)?
        .checked_add(batch_values)?
        .checked_mul(4)
}

/// Weights and biases of an MLP `input -> hidden... -> output` (LayerNorm's scale and shift left out).
fn mlp_parameters(input: u64, hidden: &[usize], output: u64) -> Option<u64> {
    let mut sizes = hidden.iter().map(|&w| w as u64).chain([output]);
    let mut from = input;
    sizes.try_fold(0u64, |n, to| {
        let layer = from.checked_mul(to)?.checked_add(to)?;
        from = to;
        n.checked_add(layer)
    })
}

/// `bytes` in the largest binary unit that keeps a number of at least 1, like `59.6 TiB` (`512 bytes` below 1 KiB),
/// as the lab prints sizes.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Agent;

    #[test]
    fn sizes_are_printed_in_the_largest_unit_that_keeps_a_number_of_at_least_one() {
        assert_eq!(format_bytes(0), "0 bytes");
        assert_eq!(format_bytes(1023), "1023 bytes");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(format_bytes(65_536_000_000_000), "59.6 TiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn the_bound_counts_the_parameters_an_agent_has() {
        for kind in AgentKind::ALL {
            let mut cfg = AgentConfig {
                batch_size: 8,
                actor_hidden_dims: vec![16, 16],
                value_hidden_dims: vec![16, 16],
                num_qs: 3,
                horizon_length: 2,
                flow_steps: 4,
                ..AgentConfig::default()
            };
            cfg.select_kind(kind);
            let agent = Agent::new(cfg.clone(), 5, 2, tch::Device::Cpu, 0).unwrap();
            let bound = memory_lower_bound(&cfg, 5, 2).unwrap();
            // The parameters and targets the agent holds (LayerNorm's too), one float32 copy each: the bound
            // counts at least that.
            let held = (agent.nets.flat.numel() + agent.nets.flat_targets.numel()) as u64 * 4;
            assert!(
                bound >= held,
                "{kind:?}: bound {bound} below the {held} bytes of parameters"
            );
            assert!(
                bound < 40 * held + (1 << 20),
                "{kind:?}: bound {bound} far above {held}"
            );
        }
    }

    #[test]
    fn sizes_past_any_memory_are_counted_not_overflowed() {
        let huge = AgentConfig {
            actor_hidden_dims: vec![65536; 4],
            ..AgentConfig::default()
        };
        // 3 * 65536^2 weights in each of three vector fields, five copies of two, one of the third.
        assert!(memory_lower_bound(&huge, 28, 5).unwrap() > 500 << 30);
        let absurd = AgentConfig {
            batch_size: usize::MAX,
            ..AgentConfig::default()
        };
        assert_eq!(memory_lower_bound(&absurd, 28, 5), None);
    }
}
