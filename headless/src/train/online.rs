//! The online phase: the envs step together on the agent's action chunks (random ones before `start_training` in
//! a balanced run), their transitions are staged per episode, and a resumed run puts them back into its episodes.

use std::time::Instant;

use anyhow::{Context, bail};
use qamlab_sim::{BatchedEnv, EnvOptions, StepOutput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::episodes::ResumedEnvs;
use super::trainer::{Trainer, crossed, record_recent};
use crate::chunks::ChunkQueues;
use crate::phase::Phase;

impl Trainer<'_> {
    pub(super) fn online_phase(&mut self) -> anyhow::Result<()> {
        let total = self.cfg.online_steps;
        if self.state.online_step >= total && !self.state.step_unfinished {
            return Ok(());
        }
        let n = self.cfg.envs;
        let mut env = BatchedEnv::new(
            self.scene,
            n,
            EnvOptions {
                terminate_on_success: true,
                episode_length: None,
                ..EnvOptions::default()
            },
        )?;
        let (mut obs, mut queues) = self.start_envs(&mut env)?;
        let bar = self.bar(total, self.state.online_step, Phase::Online);
        bar.set_message(self.status());
        let mut last_metrics = None;
        if self.state.step_unfinished {
            // Stopped amid the updates of its last step: the rest of them, then what the step does after them
            // (its checkpoint, made before them, is made again where due).
            self.state.step_unfinished = false;
            self.checkpointed_at = None;
            self.finishes_checkpoint = Some(self.total_step());
            if let Some(metrics) = self.make_due_updates()? {
                last_metrics = Some(metrics);
            }
            if !self.state.step_unfinished {
                let before = self.state.online_step.saturating_sub(n as u64);
                self.after_updates(before, &bar, last_metrics.as_ref(), (&env, &queues))?;
            }
        }
        while self.state.online_step < total && !self.stop_requested() {
            if self.cfg.balanced_sampling {
                self.queue_warmup_actions(&mut queues);
            }
            let actions = queues.next_actions(&mut self.agent, &obs, &env.spec().action_names)?;
            let t0 = Instant::now();
            let out = env
                .step(&actions)
                .with_context(|| format!("stepping task {} online", self.cfg.task))?;
            self.state.env_seconds += t0.elapsed().as_secs_f64();
            self.stage_transitions(&obs, &actions, out, &mut queues)?;
            obs.copy_from_slice(&out.obs);
            let before = self.state.online_step;
            self.state.online_step += n as u64;
            if let Some(metrics) = self.make_due_updates()? {
                last_metrics = Some(metrics);
            }
            if self.state.step_unfinished
                || !self.after_updates(before, &bar, last_metrics.as_ref(), (&env, &queues))?
            {
                break; // stopped: the run checkpoints this step, and owes the rest of it
            }
        }
        self.end_bar(&bar);
        if self.stop_requested() {
            self.checkpoint_stopped(Some((&env, &queues)))?;
        }
        Ok(())
    }

    /// What an online step does after its updates, the step from `before` to the run's online step now: its log
    /// row, evaluation and checkpoint where due. False where a stop gave up the evaluation (the run checkpoints the
    /// step, and owes it).
    fn after_updates(
        &mut self,
        before: u64,
        bar: &indicatif::ProgressBar,
        last_metrics: Option<&qamlab_agent::UpdateMetrics>,
        envs: (&BatchedEnv, &ChunkQueues),
    ) -> anyhow::Result<bool> {
        let (step, total) = (self.state.online_step, self.cfg.online_steps);
        let due = |interval: u64| crossed(before, step, total, interval);
        if due(self.cfg.log_interval) {
            self.log_online(last_metrics)?;
            bar.set_message(self.status());
        }
        if due(self.cfg.eval_interval) {
            // The bar stands still while the episodes run (a minute, on a large task): said so.
            bar.set_message(self.evaluating());
            if !self.evaluate(Phase::Online)? {
                return Ok(false);
            }
            bar.set_message(self.status());
        }
        if due(self.cfg.checkpoint_interval) {
            self.checkpoint(Some(envs))?;
        }
        // The steps before start_training make no updates and run many times faster: an ETA that counted them
        // would promise the rest of the phase in seconds.
        if before < self.cfg.start_training && step >= self.cfg.start_training {
            bar.reset_eta();
        }
        bar.set_position(step.min(total));
        Ok(true)
    }

    /// Queues a uniformly random action for each env with none queued whose step comes before `start_training`.
    fn queue_warmup_actions(&self, queues: &mut ChunkQueues) {
        // As the reference's balanced runs: uniformly random actions, one at a time, before
        // start_training (env i takes online step `online_step + 1 + i` of this batched step).
        let first = self.state.online_step + 1;
        let (seed, start) = (self.cfg.seed, self.cfg.start_training);
        let action_dim = self.replay.action_dim();
        queues.fill_empty(|i| {
            let step = first + i as u64;
            (step < start).then(|| warmup_action(seed, step, action_dim))
        });
    }

    /// Stages each env's transition of step `out` (taken from `obs` with `actions`); an env whose episode ended
    /// has it put into the replay buffer, counted, and its queued actions dropped.
    fn stage_transitions(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        out: &StepOutput,
        queues: &mut ChunkQueues,
    ) -> anyhow::Result<()> {
        let ended =
            self.episodes
                .stage_step(&mut self.replay, obs, actions, out, self.cfg.sparse)?;
        for i in ended {
            self.state.online_episodes += 1;
            self.state.online_successes += u64::from(out.success[i]);
            record_recent(&mut self.state.recent_successes, out.success[i]);
            queues.clear(i);
        }
        Ok(())
    }

    /// Starts the online envs: new episodes in a new run; in a resumed one, the very episodes the checkpoint was
    /// taken in, replayed from their starts with the actions taken since, so the run goes on as if never stopped.
    /// Where that cannot be done exactly (a checkpoint of an older qamlab, or physics that comes out otherwise,
    /// say on another machine), the transitions so far are kept as episodes cut at the checkpoint (still
    /// bootstrapping) and the envs start new episodes from fresh seeds.
    fn start_envs(&mut self, env: &mut BatchedEnv) -> anyhow::Result<(Vec<f32>, ChunkQueues)> {
        let n = self.cfg.envs;
        let action_dim = env.spec().action_dim;
        let seeds = |generation: u64| -> Vec<u64> {
            (0..n as u64)
                .map(|i| env_seed(self.cfg.seed, generation, i))
                .collect()
        };
        if self.state.online_step > 0 {
            let why = match self.episodes.take_resumed() {
                None => "the checkpoint does not record the envs' episodes in progress (an older qamlab wrote it)"
                    .to_string(),
                Some(r) => match self.replay_envs(env, &seeds(self.state.generation), &r) {
                    Ok(obs) => {
                        let queues = ChunkQueues::restore(action_dim, &r.queued, &r.queued_counts)?;
                        return Ok((obs, queues));
                    }
                    Err(e) => format!("{e:#}"),
                },
            };
            tracing::warn!(
                "{why}: the episodes in progress end at the checkpoint and the envs start new ones"
            );
            self.episodes.cut_all(&mut self.replay, self.offline_len)?;
            self.state.generation += 1;
        }
        let obs = env
            .reset(&seeds(self.state.generation))
            .with_context(|| format!("starting task {} online", self.cfg.task))?
            .to_vec();
        Ok((obs, ChunkQueues::new(n, action_dim)))
    }

    /// Puts the envs back into their checkpointed episodes; checks each reaches the observation recorded last.
    fn replay_envs(
        &self,
        env: &mut BatchedEnv,
        seeds: &[u64],
        resumed: &ResumedEnvs,
    ) -> anyhow::Result<Vec<f32>> {
        let n = self.cfg.envs;
        let actions: Vec<&[f32]> = (0..n).map(|i| self.episode_in_progress(i).0).collect();
        let obs = env
            .restore(seeds, &resumed.word_pos, &actions)
            .context("replaying the episodes in progress")?
            .to_vec();
        let (o, a) = (env.spec().obs_dim, env.spec().action_dim);
        for i in 0..n {
            let (actions, recorded) = self.episode_in_progress(i);
            let reached = &obs[i * o..(i + 1) * o];
            let same = recorded
                .iter()
                .zip(reached)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            if !same {
                bail!(
                    "env {i}'s replayed episode did not reach the observation its checkpoint recorded after {} \
                     steps (the physics came out otherwise)",
                    actions.len() / a
                );
            }
        }
        Ok(obs)
    }

    /// Env `i`'s episode in progress: its actions so far and the observation it has reached.
    fn episode_in_progress(&self, i: usize) -> (&[f32], &[f32]) {
        self.episodes.episode(i, &self.replay, self.offline_len)
    }
}

/// The uniformly random action (in [-1, 1)) of online step `step` before `start_training` in a balanced run: a
/// function of the run seed and the step alone, so a resumed run draws the same ones.
pub(super) fn warmup_action(seed: u64, step: u64, action_dim: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A12_0FF5_EED5_0A11);
    rng.set_stream(step);
    (0..action_dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

/// Seed of training env `i` in the `generation`-th (re)start of a run.
fn env_seed(seed: u64, generation: u64, i: u64) -> u64 {
    seed.wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(generation.wrapping_mul(1_442_695_040_888_963_407))
        .wrapping_add(i)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::env_seed;
    use crate::evaluate::{eval_env_seed, run_evaluation_seed};

    #[test]
    fn no_evaluation_starts_from_a_training_envs_states() {
        // Env seeds of runs seeded 0..32, their first restarts and up to 256 envs.
        let training: HashSet<u64> = (0..32)
            .flat_map(|seed| (0..4).flat_map(move |g| (0..256).map(move |i| env_seed(seed, g, i))))
            .collect();
        // `qamlab eval --seed S` for small S (0, the default, included), and the runs' own evaluations.
        let evaluations = (0..32).chain((0..32).map(run_evaluation_seed));
        for seed in evaluations {
            for i in 0..256 {
                let env = eval_env_seed(seed, i);
                assert!(
                    !training.contains(&env),
                    "evaluation seed {seed}'s env {i} starts as a training env (seed {env})"
                );
            }
        }
    }
}
