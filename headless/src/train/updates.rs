//! Gradient updates: batches of chunks sampled from the replay buffer and the envs' episodes in progress, and
//! how many of them fall due online.

use std::time::Instant;

use anyhow::Context;
use qamlab_agent::TransitionStore;
use qamlab_agent::data::{
    Segment, balanced_chunk_starts, chunk_count, chunk_starts, sample_chunks,
};

use super::trainer::Trainer;

impl Trainer<'_> {
    /// One gradient update on a batch of chunks drawn uniformly from [`sampled_segments`]: over all of them, or,
    /// online with `balanced_sampling`, half from the offline data and half from the online transitions.
    pub(super) fn update(&mut self, online: bool) -> anyhow::Result<qamlab_agent::UpdateMetrics> {
        let a = &self.cfg.agent;
        let t0 = Instant::now();
        let (h, b) = (a.horizon_length, a.batch_size);
        let balanced = online && self.cfg.balanced_sampling;
        let segments = sampled_segments(
            &self.replay,
            self.offline_len,
            balanced,
            self.episodes.staged(),
        );
        let starts = if balanced {
            balanced_chunk_starts(&mut self.sampler, b / 2, h, &segments, 1)?
        } else {
            chunk_starts(&mut self.sampler, b, h, &segments)?
        };
        let batch = sample_chunks(&segments, h, a.discount, &starts, self.agent.device())?;
        let metrics = self.agent.update(&batch).with_context(|| {
            format!(
                "update {} of the run failed ({})",
                self.state.updates + 1,
                self.what_is_kept()
            )
        })?;
        self.state.update_seconds += t0.elapsed().as_secs_f64();
        self.state.updates += 1;
        Ok(metrics)
    }

    /// Makes the online updates due by now, if a chunk can be sampled, unless a stop is requested first (which marks
    /// the step unfinished); returns the last one's metrics, if any.
    pub(super) fn make_due_updates(
        &mut self,
    ) -> anyhow::Result<Option<qamlab_agent::UpdateMetrics>> {
        // As the reference: `utd_ratio` updates for every env step i >= start_training. Until the transitions
        // sampled from hold a whole chunk (in an online-only or balanced run, until the online rows of the buffer
        // or some env's episode in progress hold H transitions) the updates due wait, and are made as soon as
        // they can be.
        let due = self.online_updates_due(self.state.online_step);
        let made = self.state.updates - self.state.offline_step;
        if made >= due {
            return Ok(None);
        }
        let balanced = self.cfg.balanced_sampling;
        let segments = sampled_segments(
            &self.replay,
            self.offline_len,
            balanced,
            self.episodes.staged(),
        );
        // A balanced batch needs a chunk of its online half.
        let online_half = if balanced {
            &segments[1..]
        } else {
            &segments[..]
        };
        if chunk_count(online_half, self.cfg.agent.horizon_length) == 0 {
            return Ok(None);
        }
        let mut last_metrics = None;
        for _ in made..due {
            // A stop is taken between updates: the step is checkpointed unfinished (see `step_unfinished`).
            if self.stop_requested() {
                self.state.step_unfinished = true;
                break;
            }
            last_metrics = Some(self.update(true)?);
        }
        Ok(last_metrics)
    }

    /// How many online updates have fallen due by online step `step`: `utd_ratio` for each env step from
    /// `start_training` on, as the reference.
    pub(super) fn online_updates_due(&self, step: u64) -> u64 {
        // The config's bounds keep the product far below u64::MAX; saturating, a count past them cannot panic.
        step.saturating_sub(self.cfg.start_training.saturating_sub(1))
            .saturating_mul(self.cfg.utd_ratio as u64)
    }
}

/// The transitions an update samples from, as segments no chunk spans: the replay buffer (in a balanced batch, its
/// offline rows then its online ones), then `pending`, each env's episode in progress (empty offline, and with one
/// env, whose transitions go straight into the buffer: an empty segment holds no chunk and changes no draw). So a
/// transition is sampled from as soon as it is taken, as with the reference's single env, yet no chunk joins two
/// envs' transitions.
fn sampled_segments<'s>(
    replay: &'s TransitionStore,
    offline_len: usize,
    balanced: bool,
    pending: &'s [TransitionStore],
) -> Vec<Segment<'s>> {
    let mut segments = if balanced {
        vec![
            Segment::new(replay, 0..offline_len),
            Segment::new(replay, offline_len..replay.len()),
        ]
    } else {
        vec![Segment::all(replay)]
    };
    segments.extend(pending.iter().map(Segment::all));
    segments
}

#[cfg(test)]
mod tests {
    use super::super::tests::tiny;
    use super::super::{TrainOptions, train};
    use super::*;
    use qamlab_agent::data::ChunkStart;
    use rand::SeedableRng;

    #[test]
    fn a_run_makes_utd_ratio_updates_for_every_online_step_from_start_training_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny(24, 1);
        config.utd_ratio = 3;
        let summary = train(TrainOptions::new(config.clone(), dir.path().join("run"))).unwrap();
        // Steps start_training..=24, 3 updates each.
        assert_eq!(summary.updates, 3 * (24 - config.start_training + 1));
    }

    #[test]
    fn a_balanced_batch_draws_half_its_chunks_from_the_offline_rows_and_half_from_the_online_ones()
    {
        // 10 offline rows then 10 online ones, and an env's episode in progress of 6.
        let store = |rows: usize| {
            let mut store = TransitionStore::new(1, 1);
            for r in 0..rows {
                store
                    .push(&[r as f32], &[0.0], 0.0, 1.0, 0.0, &[r as f32 + 1.0])
                    .unwrap();
            }
            store
        };
        let (replay, pending) = (store(20), [store(6)]);
        let (offline_len, h, half) = (10, 3, 64);
        let segments = sampled_segments(&replay, offline_len, true, &pending);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let starts = balanced_chunk_starts(&mut rng, half, h, &segments, 1).unwrap();
        assert_eq!(starts.len(), 2 * half);
        let in_replay = |c: &ChunkStart| std::ptr::eq(segments[c.segment].store, &replay);
        let (offline, online) = starts.split_at(half);
        for c in offline {
            assert!(
                in_replay(c) && c.row + h <= offline_len,
                "an offline chunk lies in the offline rows: {c:?}"
            );
        }
        for c in online {
            assert!(
                !in_replay(c) || c.row >= offline_len,
                "an online chunk lies in the online rows or an episode in progress: {c:?}"
            );
        }
        // Each half draws over all its chunks: the offline rows' first and last, the online rows and the episode
        // in progress.
        let rows = |cs: &[ChunkStart]| {
            let rows: Vec<usize> = cs.iter().filter(|c| in_replay(c)).map(|c| c.row).collect();
            (rows.iter().min().copied(), rows.iter().max().copied())
        };
        assert_eq!(rows(offline), (Some(0), Some(offline_len - h)));
        assert_eq!(rows(online), (Some(offline_len), Some(20 - h)));
        assert!(online.iter().any(|c| !in_replay(c)));
    }
}
