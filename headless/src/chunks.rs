//! Open-loop execution of action chunks for a batch of envs (spec §6.2): each env keeps a queue of
//! the `H` actions of its current chunk; the policy runs once, for the whole batch, whenever a
//! queue is empty, and only empty queues take the new chunk.

use std::collections::VecDeque;

use anyhow::Context;
use qamlab_agent::Agent;
use qamlab_sim::EnvSpec;
use tch::Tensor;

/// Refuses a task the agents cannot act in: they act in [-1, 1] in every action dimension (samples are clipped
/// there, as the reference does), so a narrower range would be broken mid-run and a wider one only partly used.
pub fn check_agent_action_space(spec: &EnvSpec) -> anyhow::Result<()> {
    let ranges = spec.action_low.iter().zip(&spec.action_high);
    for (name, (&low, &high)) in spec.action_names.iter().zip(ranges) {
        if (low, high) != (-1.0, 1.0) {
            anyhow::bail!(
                "action `{name}` ranges over [{low}, {high}], but the agents act in [-1, 1] (the algorithm clips its \
                 actions there): give every actuator `range: (min: -1.0, max: 1.0)` and set its control's scale for \
                 the motion you want"
            );
        }
    }
    Ok(())
}

/// Per-env queues of pending actions.
pub struct ChunkQueues {
    action_dim: usize,
    queues: Vec<VecDeque<Vec<f32>>>,
}

impl ChunkQueues {
    /// Empty queues for `envs` envs with `action_dim`-dimensional actions.
    pub fn new(envs: usize, action_dim: usize) -> Self {
        Self {
            action_dim,
            queues: vec![VecDeque::new(); envs],
        }
    }

    /// Queues holding `actions` (`[sum(counts) * action_dim]`, env by env, in execution order), `counts[i]` of
    /// them for env `i`: what [`snapshot`](Self::snapshot) gave.
    pub fn restore(action_dim: usize, actions: &[f32], counts: &[usize]) -> anyhow::Result<Self> {
        let total: usize = counts.iter().sum();
        if actions.len() != total * action_dim {
            anyhow::bail!(
                "{} queued action values for {total} actions of {action_dim} values",
                actions.len()
            );
        }
        let mut rows = actions.chunks(action_dim).map(<[f32]>::to_vec);
        let queues = counts
            .iter()
            .map(|&count| rows.by_ref().take(count).collect())
            .collect();
        Ok(Self { action_dim, queues })
    }

    /// The actions still queued, env by env in execution order (`[sum(counts) * action_dim]`), and how many each
    /// env has.
    pub fn snapshot(&self) -> (Vec<f32>, Vec<usize>) {
        let actions = self.queues.iter().flatten().flatten().copied().collect();
        (actions, self.queues.iter().map(VecDeque::len).collect())
    }

    /// Drops env `i`'s pending actions (its episode ended).
    pub fn clear(&mut self, i: usize) {
        self.queues[i].clear();
    }

    /// Queues `action(i)`, where it gives one, as the single pending action of each env `i` whose queue is
    /// empty: actions from elsewhere than the policy (the random ones before a balanced run's start_training).
    pub fn fill_empty(&mut self, mut action: impl FnMut(usize) -> Option<Vec<f32>>) {
        for (i, queue) in self.queues.iter_mut().enumerate() {
            if queue.is_empty()
                && let Some(a) = action(i)
            {
                debug_assert_eq!(a.len(), self.action_dim);
                queue.push_back(a);
            }
        }
    }

    /// The next action of every env (`[N·A]`), sampling a new chunk batch from `agent` for the
    /// observations `obs` (`[N·O]`) if any env has run out; `action_names` (the env spec's) name a value the
    /// agent got wrong.
    pub fn next_actions(
        &mut self,
        agent: &mut Agent,
        obs: &[f32],
        action_names: &[String],
    ) -> anyhow::Result<Vec<f32>> {
        let n = self.queues.len();
        let a = self.action_dim;
        if self.queues.iter().any(VecDeque::is_empty) {
            let obs_t = Tensor::from_slice(obs).view([n as i64, -1]);
            let chunk = agent.sample_actions(&obs_t).context("sampling actions")?;
            let chunk: Vec<f32> =
                Vec::<f32>::try_from(chunk.to_device(tch::Device::Cpu).flatten(0, -1))
                    .context("reading sampled actions")?;
            let d = chunk.len() / n;
            if let Some(bad) = chunk.iter().position(|v| !v.is_finite()) {
                // Where in the chunk: the env, which of its actions, which value of that action.
                let (env, within) = (bad / d, bad % d);
                let value = action_names.get(within % a).map_or_else(
                    || format!("value {}", within % a + 1),
                    |name| format!("`{name}`"),
                );
                anyhow::bail!(
                    "the policy produced a non-finite action (env {env}, action {} of its chunk of {}, {value}: {}): \
                     the agent has diverged",
                    within / a + 1,
                    d / a,
                    chunk[bad]
                );
            }
            for (i, queue) in self.queues.iter_mut().enumerate() {
                if queue.is_empty() {
                    let row = &chunk[i * d..(i + 1) * d];
                    queue.extend(row.chunks(a).map(<[f32]>::to_vec));
                }
            }
        }
        let mut actions = Vec::with_capacity(n * a);
        for queue in &mut self.queues {
            // Each executed action is clipped to [-1, 1], as the reference's evaluation does (a no-op for the
            // clipped samples, kept so that no queued action can leave the action space).
            actions.extend(
                queue
                    .pop_front()
                    .expect("refilled above")
                    .iter()
                    .map(|v| v.clamp(-1.0, 1.0)),
            );
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qamlab_agent::AgentConfig;

    #[test]
    fn a_non_finite_action_is_named_by_its_env_its_place_in_the_chunk_and_its_actuator() {
        let cfg = AgentConfig {
            actor_hidden_dims: vec![8],
            value_hidden_dims: vec![8],
            num_qs: 2,
            ..AgentConfig::default()
        };
        let mut agent = Agent::new(cfg, 3, 2, tch::Device::Cpu, 0).unwrap();
        // A diverged agent: every weight NaN.
        for (_, mut weights) in agent.parameters() {
            tch::no_grad(|| {
                let _ = weights.fill_(f64::NAN);
            });
        }
        let names = ["push".to_string(), "turn".to_string()];
        let mut queues = ChunkQueues::new(2, 2);
        let err = queues
            .next_actions(&mut agent, &[0.0; 6], &names)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the policy produced a non-finite action (env 0, action 1 of its chunk of 5, `push`: NaN): the agent \
             has diverged"
        );
        // Nothing was queued.
        assert_eq!(queues.snapshot(), (vec![], vec![0, 0]));
    }
}
