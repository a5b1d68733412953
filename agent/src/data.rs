//! Q-chunking data (spec §2): an appendable transition store that doubles as the online replay
//! buffer, and `sample_sequence`, which cuts `H`-step chunks with discounted partial returns; over several
//! stores at once (`Segment`, `sample_chunks`), where no chunk may span two (several envs' episodes in progress).

use std::ops::Range;

use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::error::{AgentError, Result, check_shape};

/// A batch of `B` chunked sequences in the reference layout (§2.2), float32 tensors on a device.
#[derive(Debug)]
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
#[derive(Clone, Debug, Default, PartialEq)]
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

/// One of a transition's fields: an array of a [`TransitionStore`], a tensor of a replay file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransitionField {
    /// [`TransitionStore::observations`].
    Observations,
    /// [`TransitionStore::actions`].
    Actions,
    /// [`TransitionStore::next_observations`].
    NextObservations,
    /// [`TransitionStore::rewards`].
    Rewards,
    /// [`TransitionStore::masks`].
    Masks,
    /// [`TransitionStore::terminals`].
    Terminals,
}

impl TransitionField {
    /// Every field, in the order a replay file holds them.
    pub const ALL: [TransitionField; 6] = [
        TransitionField::Observations,
        TransitionField::Actions,
        TransitionField::NextObservations,
        TransitionField::Rewards,
        TransitionField::Masks,
        TransitionField::Terminals,
    ];

    /// Its name in files (`observations`, `next_observations`, …): the store's field of that name.
    pub const fn name(self) -> &'static str {
        match self {
            TransitionField::Observations => "observations",
            TransitionField::Actions => "actions",
            TransitionField::NextObservations => "next_observations",
            TransitionField::Rewards => "rewards",
            TransitionField::Masks => "masks",
            TransitionField::Terminals => "terminals",
        }
    }

    /// Values of it a transition holds, for `obs_dim`-dimensional observations and `action_dim`-dimensional
    /// actions.
    pub const fn width(self, obs_dim: usize, action_dim: usize) -> usize {
        match self {
            TransitionField::Observations | TransitionField::NextObservations => obs_dim,
            TransitionField::Actions => action_dim,
            TransitionField::Rewards | TransitionField::Masks | TransitionField::Terminals => 1,
        }
    }
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

    /// Appends every transition of `other`, which must be of the same widths (an error names the array that is
    /// not).
    pub fn append(&mut self, other: &TransitionStore) -> Result<()> {
        self.extend_from_arrays(
            &other.observations,
            &other.actions,
            &other.next_observations,
            &other.rewards,
            &other.masks,
            &other.terminals,
        )
    }

    /// Drops the transitions past the first `len` (none where it holds no more).
    pub fn truncate(&mut self, len: usize) {
        let (o, a) = (self.obs_dim, self.action_dim);
        for field in TransitionField::ALL {
            self.column_mut(field).truncate(len * field.width(o, a));
        }
    }

    /// The values of `field`, `field.width(O, A)` a transition.
    pub fn column(&self, field: TransitionField) -> &[f32] {
        match field {
            TransitionField::Observations => &self.observations,
            TransitionField::Actions => &self.actions,
            TransitionField::NextObservations => &self.next_observations,
            TransitionField::Rewards => &self.rewards,
            TransitionField::Masks => &self.masks,
            TransitionField::Terminals => &self.terminals,
        }
    }

    /// The vector of `field`, to fill in place (a reader streaming a file into it); the caller keeps every field
    /// at as many transitions.
    pub fn column_mut(&mut self, field: TransitionField) -> &mut Vec<f32> {
        match field {
            TransitionField::Observations => &mut self.observations,
            TransitionField::Actions => &mut self.actions,
            TransitionField::NextObservations => &mut self.next_observations,
            TransitionField::Rewards => &mut self.rewards,
            TransitionField::Masks => &mut self.masks,
            TransitionField::Terminals => &mut self.terminals,
        }
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
        rows: Range<usize>,
    ) -> Result<Vec<usize>> {
        if rows.end > self.len() {
            return Err(AgentError::Data(format!(
                "cannot sample chunks of H = {horizon} from transitions {rows:?} of {}",
                self.len()
            )));
        }
        let segment = [Segment::new(self, rows)];
        Ok(chunk_starts(rng, count, horizon, &segment)?
            .into_iter()
            .map(|c| c.row)
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
        let starts: Vec<ChunkStart> = starts
            .iter()
            .map(|&row| ChunkStart { segment: 0, row })
            .collect();
        sample_chunks(
            &[Segment::new(self, 0..self.len())],
            horizon,
            discount,
            &starts,
            device,
        )
    }
}

/// Rows of one store that chunks are cut from. Several segments are sampled as one buffer whose chunks never
/// span two of them: with several envs online, the replay buffer and each env's episode in progress, whose
/// transitions are sampled as soon as they are taken but must not be joined to another env's.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    /// The store holding the rows.
    pub store: &'a TransitionStore,
    /// The rows of `store` in the segment.
    pub rows: Range<usize>,
}

impl<'a> Segment<'a> {
    /// Rows `rows` of `store`.
    pub fn new(store: &'a TransitionStore, rows: Range<usize>) -> Self {
        Self { store, rows }
    }

    /// All of `store`.
    pub fn all(store: &'a TransitionStore) -> Self {
        Self::new(store, 0..store.len())
    }

    /// How many `horizon`-step chunks start in the segment and end within it.
    pub fn chunk_count(&self, horizon: usize) -> usize {
        (self.rows.len() + 1).saturating_sub(horizon)
    }
}

/// Where a chunk starts: a segment (its index in the list sampled from) and a row of its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkStart {
    /// Index of the segment.
    pub segment: usize,
    /// Row of the segment's store.
    pub row: usize,
}

/// How many `horizon`-step chunks can be cut from `segments`.
pub fn chunk_count(segments: &[Segment], horizon: usize) -> usize {
    segments.iter().map(|s| s.chunk_count(horizon)).sum()
}

/// `count` start indices drawn uniformly over every `horizon`-step chunk lying within one of `segments`
/// (one draw per chunk; over a single segment `rows`, the draws of `s ~ U{rows.start, …, rows.end − H}`).
pub fn chunk_starts<R: Rng + ?Sized>(
    rng: &mut R,
    count: usize,
    horizon: usize,
    segments: &[Segment],
) -> Result<Vec<ChunkStart>> {
    let total = chunk_count(segments, horizon);
    if horizon == 0 || total == 0 {
        let rows: Vec<String> = segments
            .iter()
            .map(|s| format!("{:?} of {}", s.rows, s.store.len()))
            .collect();
        return Err(AgentError::Data(format!(
            "cannot sample chunks of H = {horizon} from transitions {}",
            rows.join(", ")
        )));
    }
    if let Some(s) = segments.iter().find(|s| s.rows.end > s.store.len()) {
        return Err(AgentError::Data(format!(
            "segment {:?} exceeds the {} stored transitions",
            s.rows,
            s.store.len()
        )));
    }
    // Where each segment's chunks end in the numbering of all of them.
    let ends: Vec<usize> = segments
        .iter()
        .scan(0, |end, s| {
            *end += s.chunk_count(horizon);
            Some(*end)
        })
        .collect();
    Ok((0..count)
        .map(|_| {
            let k = rng.random_range(0..=total - 1);
            let segment = ends.partition_point(|&end| end <= k);
            let before = if segment == 0 { 0 } else { ends[segment - 1] };
            ChunkStart {
                segment,
                row: segments[segment].rows.start + (k - before),
            }
        })
        .collect())
}

/// A balanced batch's starts (the reference's `balanced_sampling`): `half` drawn over `segments[..split]`, then
/// `half` over `segments[split..]`, each half uniform over its own chunks.
pub fn balanced_chunk_starts<R: Rng + ?Sized>(
    rng: &mut R,
    half: usize,
    horizon: usize,
    segments: &[Segment],
    split: usize,
) -> Result<Vec<ChunkStart>> {
    let (first, second) = segments.split_at(split.min(segments.len()));
    let mut starts = chunk_starts(rng, half, horizon, first)?;
    let later = chunk_starts(rng, half, horizon, second)?;
    starts.extend(later.into_iter().map(|c| ChunkStart {
        segment: c.segment + split,
        ..c
    }));
    Ok(starts)
}

/// Spec §2.2 for chunks starting at `starts` in `segments`: sums in f64, tensors handed over as f32.
pub fn sample_chunks(
    segments: &[Segment],
    horizon: usize,
    discount: f64,
    starts: &[ChunkStart],
    device: Device,
) -> Result<Batch> {
    let (o, a) = check_chunks(segments, horizon, starts)?;
    let host = gather_chunks(segments, horizon, discount, starts, (o, a));
    Ok(host.upload([starts.len(), horizon, o, a].map(|n| n as i64), device))
}

/// Checks that every chunk of `starts` lies whole in its segment, and the segments share their widths; returns
/// them, `(O, A)`.
fn check_chunks(segments: &[Segment], h: usize, starts: &[ChunkStart]) -> Result<(usize, usize)> {
    if h == 0 {
        return Err(AgentError::Data("horizon must be at least 1".into()));
    }
    let Some(first) = segments.first() else {
        return Err(AgentError::Data("no transitions to sample from".into()));
    };
    let (o, a) = (first.store.obs_dim, first.store.action_dim);
    if let Some(s) = segments
        .iter()
        .find(|s| (s.store.obs_dim, s.store.action_dim) != (o, a))
    {
        return Err(AgentError::Data(format!(
            "segments of different widths: [O, A] = [{o}, {a}] and [{}, {}]",
            s.store.obs_dim, s.store.action_dim
        )));
    }
    for c in starts {
        let Some(segment) = segments.get(c.segment) else {
            return Err(AgentError::Data(format!(
                "chunk start in segment {} of {}",
                c.segment,
                segments.len()
            )));
        };
        if c.row < segment.rows.start || c.row + h > segment.rows.end {
            return Err(AgentError::Data(format!(
                "start index {} + H = {h} leaves segment {} (transitions {:?})",
                c.row, c.segment, segment.rows
            )));
        }
    }
    Ok((o, a))
}

/// A batch of chunks on the host, row-major: what [`gather_chunks`] reads out of the stores.
struct HostChunks {
    /// `[B, O]`.
    obs: Vec<f32>,
    /// `[B, H, A]`.
    act: Vec<f32>,
    /// `[B, H, O]`.
    next: Vec<f32>,
    /// `[B, H]`, the discounted reward sums (in f64, as the reference's float64 numpy sums them).
    rew: Vec<f64>,
    /// `[B, H]`, the masks.
    msk: Vec<f64>,
    /// `[B, H]`, whether each step lies in the chunk's episode.
    val: Vec<f64>,
    /// `[B, H]`, the terminals.
    term: Vec<f64>,
}

/// The chunks at `starts` (checked by [`check_chunks`]) with §2.2's recurrences over each chunk's steps: a step is
/// valid until a terminal before it; rewards are summed discounted over the valid steps; the mask is the least and
/// the terminal the greatest so far; the next observation stays at the last valid step's.
fn gather_chunks(
    segments: &[Segment],
    h: usize,
    discount: f64,
    starts: &[ChunkStart],
    (o, a): (usize, usize),
) -> HostChunks {
    let b = starts.len();
    let mut obs = Vec::with_capacity(b * o);
    let mut act = Vec::with_capacity(b * h * a);
    let mut next = Vec::with_capacity(b * h * o);
    let (mut rew, mut msk, mut val, mut term) = (
        vec![0f64; b * h],
        vec![0f64; b * h],
        vec![0f64; b * h],
        vec![0f64; b * h],
    );
    for (row, c) in starts.iter().enumerate() {
        let (store, s) = (segments[c.segment].store, c.row);
        obs.extend_from_slice(&store.observations[s * o..(s + 1) * o]);
        let mut prev_next = s;
        for i in 0..h {
            let j = s + i;
            let k = row * h + i;
            let (r, m, t) = (
                store.rewards[j] as f64,
                store.masks[j] as f64,
                store.terminals[j] as f64,
            );
            act.extend_from_slice(&store.actions[j * a..(j + 1) * a]);
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
            next.extend_from_slice(&store.next_observations[prev_next * o..(prev_next + 1) * o]);
        }
    }
    HostChunks {
        obs,
        act,
        next,
        rew,
        msk,
        val,
        term,
    }
}

impl HostChunks {
    /// The batch on `device`, of sizes `[B, H, O, A]`.
    fn upload(self, [bi, hi, oi, ai]: [i64; 4], device: Device) -> Batch {
        // One host buffer for the whole batch, so a GPU gets it in one pinned, asynchronous copy
        // instead of seven pageable ones (each of which first waits for the queued device work).
        let mut flat: Vec<f32> = Vec::with_capacity(
            self.obs.len() + self.act.len() + self.next.len() + 4 * self.rew.len(),
        );
        flat.extend_from_slice(&self.obs);
        flat.extend_from_slice(&self.act);
        for v in [&self.rew, &self.msk, &self.val, &self.term] {
            flat.extend(v.iter().map(|&x| x as f32));
        }
        flat.extend_from_slice(&self.next);
        let host = Tensor::from_slice(&flat);
        let all = if device.is_cuda() {
            // `_pin_memory` itself: libtorch 2.11 warns at every call of `pin_memory` given a device
            // (deprecated), two stderr lines an update; the fresh buffer is not pinned yet anyway.
            host.internal_pin_memory(device)
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
        Batch {
            observations: take(&[bi, oi]),
            actions: take(&[bi, hi, ai]),
            rewards: take(&[bi, hi]),
            masks: take(&[bi, hi]),
            valid: take(&[bi, hi]),
            terminals: take(&[bi, hi]),
            next_observations: take(&[bi, hi, oi]),
        }
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

    #[test]
    fn columns_append_and_truncate_every_field_alike() {
        let mut s = TransitionStore::new(2, 1);
        s.push(&[1.0, 2.0], &[0.5], -1.0, 1.0, 0.0, &[3.0, 4.0])
            .unwrap();
        let mut both = s.clone();
        both.append(&s).unwrap();
        assert_eq!(both.len(), 2);
        for field in TransitionField::ALL {
            let (column, w) = (both.column(field), field.width(2, 1));
            assert_eq!(column.len(), 2 * w, "{}", field.name());
            assert_eq!(column[..w], column[w..], "{}", field.name());
        }
        assert_eq!(
            both.column(TransitionField::NextObservations),
            [3.0, 4.0, 3.0, 4.0]
        );
        assert_eq!(
            TransitionField::ALL.map(TransitionField::name),
            [
                "observations",
                "actions",
                "next_observations",
                "rewards",
                "masks",
                "terminals"
            ]
        );
        both.truncate(1);
        assert_eq!(both, s);
        both.truncate(5);
        assert_eq!(both, s);
        let mut wide = TransitionStore::new(3, 1);
        wide.push(&[0.0; 3], &[0.0], 0.0, 1.0, 0.0, &[0.0; 3])
            .unwrap();
        let e = both.append(&wide).unwrap_err().to_string();
        assert!(e.contains("observations"), "{e}");
    }

    /// A store of `n` transitions whose observation is `base + row` and whose last row ends an episode.
    fn numbered(base: f32, n: usize) -> TransitionStore {
        let mut s = TransitionStore::new(1, 1);
        for i in 0..n {
            let x = base + i as f32;
            s.push(&[x], &[x], 1.0, 1.0, (i + 1 == n) as u8 as f32, &[x + 0.5])
                .unwrap();
        }
        s
    }

    #[test]
    fn chunks_of_several_segments_stay_within_one_and_cover_all() {
        let (replay, env0, env1, env2) = (
            numbered(0.0, 6),
            numbered(100.0, 2),
            numbered(200.0, 4),
            numbered(300.0, 0),
        );
        let segments = [
            Segment::new(&replay, 1..6),
            Segment::all(&env0),
            Segment::all(&env1),
            Segment::all(&env2),
        ];
        // H = 3: rows 1..=3 of the replay, none of env0 (2 rows) or env2, rows 0..=1 of env1.
        assert_eq!(chunk_count(&segments, 3), 5);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let starts = chunk_starts(&mut rng, 400, 3, &segments).unwrap();
        let mut seen: Vec<(usize, usize)> = starts.iter().map(|c| (c.segment, c.row)).collect();
        for &(segment, row) in &seen {
            assert!(row + 3 <= segments[segment].rows.end, "{segment} {row}");
        }
        let mut counts = std::collections::BTreeMap::new();
        for &key in &seen {
            *counts.entry(key).or_insert(0) += 1;
        }
        // Uniform over the 5 chunks: 80 each expected, sd 8.
        assert!(
            counts.values().all(|&c| (50..110).contains(&c)),
            "{counts:?}"
        );
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [(0, 1), (0, 2), (0, 3), (2, 0), (2, 1)]);
        // Each chunk is read from its own store: env1's chunk at row 1 holds env1's rows 1..4 only.
        let batch = sample_chunks(
            &segments,
            3,
            0.5,
            &[ChunkStart { segment: 2, row: 1 }],
            Device::Cpu,
        )
        .unwrap();
        let actions = Vec::<f32>::try_from(batch.actions.flatten(0, -1)).unwrap();
        assert_eq!(actions, [201.0, 202.0, 203.0]);
        // A start whose chunk would leave its segment is refused, naming it.
        let e = sample_chunks(
            &segments,
            3,
            0.5,
            &[ChunkStart { segment: 1, row: 0 }],
            Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("segment 1"), "{e}");
        assert!(chunk_starts(&mut rng, 1, 5, &segments[1..]).is_err());
        // One segment draws what the reference's `U{rows.start, …, rows.end − H}` draws, one value each.
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut b = a.clone();
        let rows: Vec<usize> = chunk_starts(&mut a, 50, 2, &segments[..1])
            .unwrap()
            .iter()
            .map(|c| c.row)
            .collect();
        let reference: Vec<usize> = (0..50).map(|_| b.random_range(1..=4)).collect();
        assert_eq!(rows, reference);
        assert_eq!(a.random::<u64>(), b.random::<u64>());
        assert_eq!(
            replay.chunk_starts(&mut a, 50, 2, 1..6).unwrap(),
            (0..50).map(|_| b.random_range(1..=4)).collect::<Vec<_>>()
        );
        // A balanced batch: the first half from the replay segment, the second from the envs' episodes (indices
        // of the whole list), and no half left empty.
        let starts = balanced_chunk_starts(&mut rng, 100, 3, &segments, 1).unwrap();
        assert!(starts[..100].iter().all(|c| c.segment == 0));
        assert!(starts[100..].iter().all(|c| c.segment == 2));
        sample_chunks(&segments, 3, 0.5, &starts, Device::Cpu).unwrap();
        assert!(balanced_chunk_starts(&mut rng, 1, 3, &segments, 4).is_err());
    }

    #[test]
    fn a_chunk_past_its_episodes_end_keeps_the_mask_of_its_last_valid_step() {
        // Episode A ends by the time limit at row 2 (bootstrapping goes on: mask 1); row 3, of the next episode,
        // succeeds (mask 0). A chunk of rows 1..=3 is valid for two steps; its third step lies past A's end, so
        // that row's mask is not A's (spec §2.2: the mask is the least over the valid steps).
        let mut s = TransitionStore::new(1, 1);
        for (row, mask, terminal) in [(0, 1.0, 0.0), (1, 1.0, 0.0), (2, 1.0, 1.0), (3, 0.0, 0.0)] {
            let x = row as f32;
            s.push(&[x], &[x], -1.0, mask, terminal, &[x + 0.5])
                .unwrap();
        }
        let start = ChunkStart { segment: 0, row: 1 };
        let b = sample_chunks(&[Segment::all(&s)], 3, 0.5, &[start], Device::Cpu).unwrap();
        let row = |t: &Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        assert_eq!(row(&b.valid), [1.0, 1.0, 0.0]);
        assert_eq!(row(&b.masks), [1.0, 1.0, 1.0]);
        assert_eq!(row(&b.rewards), [-1.0, -1.5, -1.5]);
        assert_eq!(row(&b.next_observations), [1.5, 2.5, 2.5]);
    }
}
