//! Q-chunking data (spec §2): an appendable transition store that doubles as the online replay
//! buffer, and `sample_sequence`, which cuts `H`-step chunks with discounted partial returns.

use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::error::{AgentError, Result, check_shape};

/// A batch of `B` chunked sequences in the reference layout (§2.2), float32 tensors on a device.
pub struct Batch {
    /// `[B, O]`: observation at the chunk start.
    pub observations: Tensor,
    /// `[B, H, A]`: the `H` dataset actions from the start.
    pub actions: Tensor,
    /// `[B, H]`: running discounted partial sums of rewards over valid steps.
    pub rewards: Tensor,
    /// `[B, H]`: running min of masks over valid steps.
    pub masks: Tensor,
    /// `[B, H]`: 1 until the step after the first episode end inside the chunk.
    pub valid: Tensor,
    /// `[B, H]`: running max of terminals.
    pub terminals: Tensor,
    /// `[B, H, O]`: next observation of each step (frozen at the last valid one).
    pub next_observations: Tensor,
}

impl Batch {
    /// Batch size `B`.
    pub fn len(&self) -> i64 {
        self.observations.size()[0]
    }

    /// Whether the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Horizon `H`.
    pub fn horizon(&self) -> i64 {
        self.actions.size()[1]
    }

    /// Checks every tensor against `[B, O]`, `[B, H, A]`, … with `B`, `H` taken from `actions`.
    pub fn validate(&self, obs_dim: usize, action_dim: usize) -> Result<()> {
        let a = self.actions.size();
        if a.len() != 3 || a[2] != action_dim as i64 {
            return Err(crate::error::shape_error(
                "batch.actions",
                &[-1, -1, action_dim as i64],
                &a,
            ));
        }
        let (b, h, o) = (a[0], a[1], obs_dim as i64);
        check_shape("batch.observations", &self.observations, &[b, o])?;
        for (name, t) in [
            ("batch.rewards", &self.rewards),
            ("batch.masks", &self.masks),
            ("batch.valid", &self.valid),
            ("batch.terminals", &self.terminals),
        ] {
            check_shape(name, t, &[b, h])?;
        }
        check_shape(
            "batch.next_observations",
            &self.next_observations,
            &[b, h, o],
        )
    }

    /// The same batch on `device`.
    pub fn to_device(&self, device: Device) -> Batch {
        Batch {
            observations: self.observations.to_device(device),
            actions: self.actions.to_device(device),
            rewards: self.rewards.to_device(device),
            masks: self.masks.to_device(device),
            valid: self.valid.to_device(device),
            terminals: self.terminals.to_device(device),
            next_observations: self.next_observations.to_device(device),
        }
    }
}

/// Flat transition arrays (episodes concatenated): offline data followed by online transitions.
#[derive(Clone, Debug, Default)]
pub struct TransitionStore {
    obs_dim: usize,
    action_dim: usize,
    /// `[N·O]` row-major.
    pub observations: Vec<f32>,
    /// `[N·A]` row-major.
    pub actions: Vec<f32>,
    /// `[N·O]` row-major.
    pub next_observations: Vec<f32>,
    /// `[N]`.
    pub rewards: Vec<f32>,
    /// `[N]`: 0 where bootstrapping stops (success).
    pub masks: Vec<f32>,
    /// `[N]`: 1 on the last transition of every episode.
    pub terminals: Vec<f32>,
}

fn len_error(name: &str, expected: usize, got: usize, per: &str) -> AgentError {
    AgentError::Shape {
        name: name.to_string(),
        expected: format!("{expected} values ({per})"),
        actual: format!("{got} values"),
    }
}

impl TransitionStore {
    /// An empty store for `obs_dim`-dimensional observations and `action_dim`-dimensional actions.
    pub fn new(obs_dim: usize, action_dim: usize) -> Self {
        Self {
            obs_dim,
            action_dim,
            ..Default::default()
        }
    }

    /// Makes room for `transitions` more transitions, so that a buffer filling up to a known size is allocated
    /// once instead of doubling (which briefly holds twice the rows). Best effort: returns false where memory
    /// does not allow it; the store still grows as needed.
    pub fn try_reserve(&mut self, transitions: usize) -> bool {
        let (o, a) = (self.obs_dim, self.action_dim);
        let rows = |width: usize| transitions.checked_mul(width);
        let (Some(obs), Some(act)) = (rows(o), rows(a)) else {
            return false;
        };
        self.observations.try_reserve_exact(obs).is_ok()
            && self.next_observations.try_reserve_exact(obs).is_ok()
            && self.actions.try_reserve_exact(act).is_ok()
            && self.rewards.try_reserve_exact(transitions).is_ok()
            && self.masks.try_reserve_exact(transitions).is_ok()
            && self.terminals.try_reserve_exact(transitions).is_ok()
    }

    /// Observation dimension `O`.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action dimension `A`.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// Number of transitions `N`.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Appends one transition; slices must have `O` / `A` values.
    pub fn push(
        &mut self,
        obs: &[f32],
        action: &[f32],
        reward: f32,
        mask: f32,
        terminal: f32,
        next_obs: &[f32],
    ) -> Result<()> {
        if obs.len() != self.obs_dim {
            return Err(len_error("observation", self.obs_dim, obs.len(), "[O]"));
        }
        if action.len() != self.action_dim {
            return Err(len_error("action", self.action_dim, action.len(), "[A]"));
        }
        if next_obs.len() != self.obs_dim {
            return Err(len_error(
                "next_observation",
                self.obs_dim,
                next_obs.len(),
                "[O]",
            ));
        }
        self.observations.extend_from_slice(obs);
        self.actions.extend_from_slice(action);
        self.next_observations.extend_from_slice(next_obs);
        self.rewards.push(reward);
        self.masks.push(mask);
        self.terminals.push(terminal);
        Ok(())
    }

    /// Appends `n` transitions given as flat row-major arrays (`[n·O]`, `[n·A]`, `[n·O]`, `[n]`×3);
    /// a length mismatch is an error naming the array and its expected length.
    pub fn extend_from_arrays(
        &mut self,
        observations: &[f32],
        actions: &[f32],
        next_observations: &[f32],
        rewards: &[f32],
        masks: &[f32],
        terminals: &[f32],
    ) -> Result<()> {
        let n = rewards.len();
        let (o, a) = (self.obs_dim, self.action_dim);
        let checks = [
            ("observations", observations.len(), n * o, "[N, O]"),
            ("actions", actions.len(), n * a, "[N, A]"),
            (
                "next_observations",
                next_observations.len(),
                n * o,
                "[N, O]",
            ),
            ("masks", masks.len(), n, "[N]"),
            ("terminals", terminals.len(), n, "[N]"),
        ];
        for (name, got, expected, shape) in checks {
            if got != expected {
                return Err(len_error(
                    name,
                    expected,
                    got,
                    &format!("{shape} with N = {n} from rewards"),
                ));
            }
        }
        self.observations.extend_from_slice(observations);
        self.actions.extend_from_slice(actions);
        self.next_observations.extend_from_slice(next_observations);
        self.rewards.extend_from_slice(rewards);
        self.masks.extend_from_slice(masks);
        self.terminals.extend_from_slice(terminals);
        Ok(())
    }

    /// `sample_sequence` with uniform start indices `s ~ U{0, …, N − H}` drawn from `rng`.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        batch_size: usize,
        horizon: usize,
        discount: f64,
        device: Device,
    ) -> Result<Batch> {
        let starts = self.chunk_starts(rng, batch_size, horizon, 0..self.len())?;
        self.sample_sequence(horizon, discount, &starts, device)
    }

    /// `count` uniform start indices of `horizon`-step chunks lying within the transitions `rows`:
    /// `s ~ U{rows.start, …, rows.end − H}`.
    pub fn chunk_starts<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        count: usize,
        horizon: usize,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<usize>> {
        if horizon == 0 || rows.end > self.len() || rows.len() < horizon {
            return Err(AgentError::Data(format!(
                "cannot sample chunks of H = {horizon} from transitions {rows:?} of {}",
                self.len()
            )));
        }
        let hi = rows.end - horizon;
        Ok((0..count)
            .map(|_| rng.random_range(rows.start..=hi))
            .collect())
    }

    /// Spec §2.2 for the given start indices: sums in f64, tensors handed over as f32.
    pub fn sample_sequence(
        &self,
        horizon: usize,
        discount: f64,
        starts: &[usize],
        device: Device,
    ) -> Result<Batch> {
        let (o, a, h, b) = (self.obs_dim, self.action_dim, horizon, starts.len());
        if h == 0 {
            return Err(AgentError::Data("horizon must be at least 1".into()));
        }
        if let Some(&s) = starts.iter().find(|&&s| s + h > self.len()) {
            return Err(AgentError::Data(format!(
                "start index {s} + H = {h} exceeds the {} stored transitions",
                self.len()
            )));
        }
        let mut obs = Vec::with_capacity(b * o);
        let mut act = Vec::with_capacity(b * h * a);
        let mut next = Vec::with_capacity(b * h * o);
        let (mut rew, mut msk, mut val, mut term) = (
            vec![0f64; b * h],
            vec![0f64; b * h],
            vec![0f64; b * h],
            vec![0f64; b * h],
        );
        for (row, &s) in starts.iter().enumerate() {
            obs.extend_from_slice(&self.observations[s * o..(s + 1) * o]);
            let mut prev_next = s;
            for i in 0..h {
                let j = s + i;
                let k = row * h + i;
                let (r, m, t) = (
                    self.rewards[j] as f64,
                    self.masks[j] as f64,
                    self.terminals[j] as f64,
                );
                act.extend_from_slice(&self.actions[j * a..(j + 1) * a]);
                if i == 0 {
                    (rew[k], msk[k], term[k], val[k]) = (r, m, t, 1.0);
                    prev_next = j;
                } else {
                    val[k] = 1.0 - term[k - 1];
                    rew[k] = rew[k - 1] + discount.powi(i as i32) * r * val[k];
                    msk[k] = if val[k] > 0.0 {
                        msk[k - 1].min(m)
                    } else {
                        msk[k - 1]
                    };
                    term[k] = term[k - 1].max(t);
                    if val[k] > 0.0 {
                        prev_next = j;
                    }
                }
                next.extend_from_slice(&self.next_observations[prev_next * o..(prev_next + 1) * o]);
            }
        }
        let (bi, hi, oi, ai) = (b as i64, h as i64, o as i64, a as i64);
        // One host buffer for the whole batch, so a GPU gets it in one pinned, asynchronous copy
        // instead of seven pageable ones (each of which first waits for the queued device work).
        let mut flat: Vec<f32> = Vec::with_capacity(obs.len() + act.len() + next.len() + 4 * b * h);
        flat.extend_from_slice(&obs);
        flat.extend_from_slice(&act);
        for v in [&rew, &msk, &val, &term] {
            flat.extend(v.iter().map(|&x| x as f32));
        }
        flat.extend_from_slice(&next);
        let host = Tensor::from_slice(&flat);
        let all = if device.is_cuda() {
            host.pin_memory(device)
                .to_device_(device, Kind::Float, true, false)
        } else {
            host
        };
        let mut offset = 0;
        let mut take = |shape: &[i64]| {
            let n: i64 = shape.iter().product();
            let t = all.narrow(0, offset, n).view(shape);
            offset += n;
            t
        };
        Ok(Batch {
            observations: take(&[bi, oi]),
            actions: take(&[bi, hi, ai]),
            rewards: take(&[bi, hi]),
            masks: take(&[bi, hi]),
            valid: take(&[bi, hi]),
            terminals: take(&[bi, hi]),
            next_observations: take(&[bi, hi, oi]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn push_validates_lengths_and_sample_bounds() {
        let mut s = TransitionStore::new(2, 1);
        let e = s
            .push(&[0.0], &[0.0], 0.0, 1.0, 0.0, &[0.0, 0.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("observation") && e.contains('2'), "{e}");
        for i in 0..6 {
            s.push(
                &[i as f32, 0.0],
                &[i as f32],
                1.0,
                1.0,
                (i == 2) as u8 as f32,
                &[i as f32 + 0.5, 0.0],
            )
            .unwrap();
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let b = s.sample(&mut rng, 64, 3, 0.5, Device::Cpu).unwrap();
        b.validate(2, 1).unwrap();
        let max_start = b.observations.select(1, 0).max().double_value(&[]);
        assert!(max_start <= 3.0);
        assert!(s.sample(&mut rng, 1, 7, 0.5, Device::Cpu).is_err());
        assert!(s.try_reserve(10) && s.observations.capacity() >= 32);
        assert!(!s.try_reserve(usize::MAX / 2));
        s.push(&[6.0, 0.0], &[6.0], 1.0, 1.0, 1.0, &[6.5, 0.0])
            .unwrap();
        // Chunks drawn within rows 2..6 start at 2, 3 or 4, and each of those comes up.
        let mut starts = s.chunk_starts(&mut rng, 64, 2, 2..6).unwrap();
        starts.sort_unstable();
        starts.dedup();
        assert_eq!(starts, [2, 3, 4]);
        assert!(s.chunk_starts(&mut rng, 1, 3, 4..6).is_err());
        assert!(s.chunk_starts(&mut rng, 1, 1, 4..8).is_err());
        let e = s
            .extend_from_arrays(
                &[0.0; 4], &[0.0; 2], &[0.0; 4], &[0.0; 2], &[0.0; 1], &[0.0; 2],
            )
            .unwrap_err();
        assert!(e.to_string().contains("masks"), "{e}");
    }
}
