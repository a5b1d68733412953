//! The replay buffer's file in a checkpoint, `replay.safetensors`: the online transitions (`online/<field>`), the
//! envs' episodes in progress (`pending/<field>`, `pending/lengths`) and the actions they had queued
//! (`queues/actions`, `queues/lengths`). Both ways it streams: written from the buffer's own vectors, read back
//! straight into them, so that neither a checkpoint nor a resume holds a second copy of a buffer that may take
//! most of the machine's memory (see `check_run_memory`).

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use qamlab_agent::TransitionStore;
use qamlab_agent::checkpoint::{self, Dtype, Metadata, TensorData, TensorFile};
use qamlab_agent::data::TransitionField;

/// What a checkpoint's replay file records, borrowed from where the run keeps it.
pub(super) struct ReplayRecord<'a> {
    /// The replay buffer: its `offline_len` offline transitions first, which the file leaves out.
    pub(super) replay: &'a TransitionStore,
    pub(super) offline_len: usize,
    /// Each env's episode in progress, staged apart from the buffer (`EpisodesInProgress::staged`).
    pub(super) staged: &'a [TransitionStore],
    /// In the online phase, the actions the envs have queued, one after another, and how many are each's.
    pub(super) queues: Option<(&'a [f32], &'a [i64])>,
}

/// The transitions of `parts` (stores, each from the row given, one after another) as arrays `<prefix>/<field>`,
/// borrowing their values.
fn store_data<'a>(
    prefix: &str,
    parts: &[(&'a TransitionStore, usize)],
    dims: (usize, usize),
) -> Vec<(String, TensorData<'a>)> {
    let rows: usize = parts.iter().map(|(store, from)| store.len() - from).sum();
    TransitionField::ALL
        .iter()
        .map(|&field| {
            let w = field.width(dims.0, dims.1);
            let values = parts
                .iter()
                .map(|&(store, from)| &store.column(field)[from * w..]);
            (
                format!("{prefix}/{}", field.name()),
                TensorData::f32(&[rows, w], values),
            )
        })
        .collect()
}

/// Writes `record` with `meta` to `path` (atomically), streaming the buffer from its own memory.
pub(super) fn write_replay(
    path: &Path,
    record: &ReplayRecord<'_>,
    meta: Metadata,
) -> anyhow::Result<()> {
    let replay = record.replay;
    let dims = (replay.obs_dim(), replay.action_dim());
    let mut tensors = store_data("online", &[(replay, record.offline_len)], dims);
    let staged: Vec<(&TransitionStore, usize)> =
        record.staged.iter().map(|episode| (episode, 0)).collect();
    tensors.extend(store_data("pending", &staged, dims));
    let lengths: Vec<i64> = record.staged.iter().map(|e| e.len() as i64).collect();
    tensors.push((
        "pending/lengths".into(),
        TensorData::i64(&[lengths.len()], [lengths.as_slice()]),
    ));
    if let Some((queued, counts)) = record.queues {
        let a = dims.1;
        tensors.push((
            "queues/actions".into(),
            TensorData::f32(&[queued.len() / a, a], [queued]),
        ));
        tensors.push((
            "queues/lengths".into(),
            TensorData::i64(&[counts.len()], [counts]),
        ));
    }
    checkpoint::write_tensor_data(path, &tensors, meta)?;
    Ok(())
}

/// The transitions `file` records under `prefix`: each of its arrays `<prefix>/<field>` checked to be float32
/// `[N, width]`, all of one `N`, which is returned. Reads no values.
pub(super) fn stored_rows(
    file: &TensorFile,
    prefix: &str,
    dims: (usize, usize),
) -> anyhow::Result<usize> {
    let path = file.path().display();
    let mut rows: Option<(usize, String)> = None;
    for field in TransitionField::ALL {
        let key = format!("{prefix}/{}", field.name());
        let w = field.width(dims.0, dims.1);
        let (dtype, shape) = file
            .info(&key)
            .with_context(|| format!("{path}: tensor {key} missing"))?;
        ensure!(
            dtype == Dtype::F32 && shape.len() == 2 && shape[1] == w,
            "{path}: tensor {key} is {dtype:?} {shape:?}: expected float32 [N, {w}]"
        );
        match &rows {
            None => rows = Some((shape[0], key)),
            Some((n, first)) => ensure!(
                shape[0] == *n,
                "{path}: tensor {key} holds {} transitions, but {first} holds {n}: the {prefix} transitions do \
                 not match",
                shape[0]
            ),
        }
    }
    Ok(rows.map_or(0, |(n, _)| n))
}

/// Appends transitions `rows` of `file`'s arrays `<prefix>/<field>` (checked by [`stored_rows`]) to `store`,
/// straight from the file into its vectors, which grow by as much where they have no room already.
pub(super) fn read_rows_into(
    file: &mut TensorFile,
    prefix: &str,
    rows: Range<usize>,
    store: &mut TransitionStore,
) -> anyhow::Result<()> {
    let dims = (store.obs_dim(), store.action_dim());
    for field in TransitionField::ALL {
        let w = field.width(dims.0, dims.1);
        file.read_f32_range_into(
            &format!("{prefix}/{}", field.name()),
            rows.start * w..rows.end * w,
            store.column_mut(field),
        )?;
    }
    Ok(())
}

/// Checks the values of `store`'s transitions from row `from` on, read from `file`'s arrays `<prefix>/<field>`:
/// finite, actions in the action space, masks and terminals 0 or 1.
pub(super) fn check_values(
    store: &TransitionStore,
    from: usize,
    prefix: &str,
    file: &Path,
) -> anyhow::Result<()> {
    let dims = (store.obs_dim(), store.action_dim());
    let path = file.display();
    for field in TransitionField::ALL {
        let key = format!("{prefix}/{}", field.name());
        let values = &store.column(field)[from * field.width(dims.0, dims.1)..];
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            bail!("{path}: tensor {key} holds {v}: the checkpoint is damaged");
        }
        // Actions were clipped to the action space before they were taken.
        if field == TransitionField::Actions
            && let Some(v) = values.iter().find(|v| v.abs() > 1.0)
        {
            bail!("{path}: tensor {key} holds {v}: expected actions in [-1, 1]");
        }
        // Masks scale the bootstrapped value and terminals cut the chunks: anything but 0 or 1 is damage.
        if matches!(field, TransitionField::Masks | TransitionField::Terminals)
            && let Some(v) = values.iter().find(|&&v| v != 0.0 && v != 1.0)
        {
            bail!("{path}: tensor {key} holds {v}: expected 0 or 1");
        }
    }
    Ok(())
}

/// The `i64` tensor `name` of `file`: counts that must add up to `total` rows.
pub(super) fn read_counts(
    file: &mut TensorFile,
    name: &str,
    total: usize,
) -> anyhow::Result<Vec<usize>> {
    let path = file.path().display().to_string();
    ensure!(file.info(name).is_some(), "{path}: tensor {name} missing");
    let values: Vec<i64> = Vec::try_from(file.read_tensor(name)?)?;
    values
        .iter()
        .map(|&v| usize::try_from(v))
        .collect::<Result<Vec<usize>, _>>()
        .ok()
        // Summed without overflow: the file's checksum is verified after its values are read.
        .filter(|counts| {
            counts.iter().try_fold(0usize, |sum, &c| sum.checked_add(c)) == Some(total)
        })
        .with_context(|| {
            format!(
                "{path}: tensor {name} [{}] must be counts that add up to the {total} rows stored",
                crate::limits::listed(&values)
            )
        })
}

/// Each env's episode in progress, `lengths` (from [`read_counts`]) splitting `file`'s `pending` transitions among
/// the envs, first to last: each read straight into a store of its own, its values checked.
pub(super) fn read_pending(
    file: &mut TensorFile,
    lengths: &[usize],
    dims: (usize, usize),
) -> anyhow::Result<Vec<TransitionStore>> {
    let mut start = 0;
    let mut episodes = Vec::with_capacity(lengths.len());
    for &len in lengths {
        let mut episode = TransitionStore::new(dims.0, dims.1);
        read_rows_into(file, "pending", start..start + len, &mut episode)?;
        check_values(&episode, 0, "pending", file.path())?;
        episodes.push(episode);
        start += len;
    }
    Ok(episodes)
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use qamlab_agent::checkpoint::{STREAMING_BYTES, write_tensors};
    use tch::Tensor;

    use super::*;

    /// Counts the bytes each thread holds allocated, and the most it held at once since [`peak_allocated`] began:
    /// per thread, so that the tests running beside one do not count.
    struct Counting;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn record(delta: isize) {
        // `try_with`: a thread being torn down still frees.
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    // SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let ptr = unsafe { System.alloc(layout) };
            if !ptr.is_null() {
                record(layout.size() as isize);
            }
            ptr
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if !ptr.is_null() {
                record(layout.size() as isize);
            }
            ptr
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let new = unsafe { System.realloc(ptr, layout, new_size) };
            if !new.is_null() {
                // As a copy would: the new block, then the old one freed.
                record(new_size as isize);
                record(-(layout.size() as isize));
            }
            new
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            record(-(layout.size() as isize));
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// What `f` returns, and the most bytes this thread held at once while it ran beyond what it held before.
    fn peak_allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(before));
        let out = f();
        (out, (PEAK.with(Cell::get) - before).max(0) as usize)
    }

    const DIMS: (usize, usize) = (28, 5);

    /// `rows` transitions of distinct values (`tag` apart between stores), episodes of 7.
    fn transitions(rows: usize, tag: f32) -> TransitionStore {
        let (o, a) = DIMS;
        let mut store = TransitionStore::new(o, a);
        for i in 0..rows {
            let x = i as f32 * 1e-3 + tag;
            let obs: Vec<f32> = (0..o).map(|j| x + j as f32).collect();
            let next: Vec<f32> = obs.iter().map(|v| v + 0.5).collect();
            let action: Vec<f32> = (0..a)
                .map(|j| ((i + j) % 200) as f32 / 100.0 - 1.0)
                .collect();
            let end = i % 7 == 6;
            let mask = if end && i % 2 == 0 { 0.0 } else { 1.0 };
            store
                .push(&obs, &action, -x, mask, f32::from(u8::from(end)), &next)
                .unwrap();
        }
        store
    }

    /// The arrays a checkpoint wrote before it streamed: tensors copied from the buffer.
    fn as_tensors(record: &ReplayRecord<'_>) -> Vec<(String, Tensor)> {
        let (o, a) = DIMS;
        let mut pending = TransitionStore::new(o, a);
        for episode in record.staged {
            pending.append(episode).unwrap();
        }
        let mut tensors = Vec::new();
        for (prefix, store, from) in [
            ("online", record.replay, record.offline_len),
            ("pending", &pending, 0),
        ] {
            for field in TransitionField::ALL {
                let w = field.width(DIMS.0, DIMS.1) as i64;
                let values = &store.column(field)[from * w as usize..];
                tensors.push((
                    format!("{prefix}/{}", field.name()),
                    Tensor::from_slice(values).view([-1, w]),
                ));
            }
        }
        let lengths: Vec<i64> = record.staged.iter().map(|e| e.len() as i64).collect();
        tensors.push(("pending/lengths".into(), Tensor::from_slice(&lengths)));
        let (queued, counts) = record.queues.unwrap();
        tensors.push((
            "queues/actions".into(),
            Tensor::from_slice(queued).view([-1, a as i64]),
        ));
        tensors.push(("queues/lengths".into(), Tensor::from_slice(counts)));
        tensors
    }

    #[test]
    fn a_checkpoint_streams_the_buffer_to_its_file_and_a_resume_reads_it_back_in_place() {
        // 16 MiB of online transitions after 100 offline ones, three envs' episodes in progress, queued actions.
        let rows = (16 << 20) / ((2 * DIMS.0 + DIMS.1 + 3) * 4);
        let offline = 100;
        let replay = transitions(offline + rows, 0.0);
        let staged = [
            transitions(5, 1e4),
            transitions(0, 0.0),
            transitions(17, 2e4),
        ];
        let queued: Vec<f32> = (0..4 * DIMS.1).map(|i| i as f32 / 50.0 - 0.2).collect();
        let counts = [1i64, 0, 3];
        let record = ReplayRecord {
            replay: &replay,
            offline_len: offline,
            staged: &staged,
            queues: Some((&queued, &counts)),
        };
        let meta: Metadata = [("seed".to_string(), "3".to_string())].into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.safetensors");
        let online_bytes = rows * (2 * DIMS.0 + DIMS.1 + 3) * 4;
        // Its I/O buffer, and a few KiB of header and names: no copy of the 16 MiB.
        let besides = STREAMING_BYTES as usize + (64 << 10);

        let (written, held) = peak_allocated(|| write_replay(&path, &record, meta.clone()));
        written.unwrap();
        assert!(
            held <= besides,
            "writing {online_bytes} bytes of transitions held {held} bytes more"
        );
        // The file a checkpoint wrote from tensors, byte for byte: resumed runs' files match the uninterrupted
        // run's, and files written before load as they did.
        let before = dir.path().join("before.safetensors");
        write_tensors(&before, &as_tensors(&record), meta).unwrap();
        assert!(std::fs::read(&path).unwrap() == std::fs::read(&before).unwrap());

        // A resume: into a buffer holding the offline transitions, with room for the online ones.
        let mut resumed = transitions(offline, 0.0);
        assert!(resumed.try_reserve(rows));
        let (read, held) = peak_allocated(|| -> anyhow::Result<Vec<TransitionStore>> {
            let mut file = TensorFile::open(&path)?;
            let online = stored_rows(&file, "online", DIMS)?;
            let pending = stored_rows(&file, "pending", DIMS)?;
            let lengths = read_counts(&mut file, "pending/lengths", pending)?;
            read_rows_into(&mut file, "online", 0..online, &mut resumed)?;
            check_values(&resumed, offline, "online", file.path())?;
            let episodes = read_pending(&mut file, &lengths, DIMS)?;
            file.verify()?;
            Ok(episodes)
        });
        let episodes = read.unwrap();
        assert!(
            held <= besides,
            "reading {online_bytes} bytes of transitions held {held} bytes more"
        );
        for field in TransitionField::ALL {
            let name = field.name();
            assert!(resumed.column(field) == replay.column(field), "{name}");
            for (episode, was) in episodes.iter().zip(&staged) {
                assert!(episode.column(field) == was.column(field), "{name}");
            }
        }
        assert_eq!(episodes.len(), 3);
    }

    #[test]
    fn a_replay_file_of_damaged_values_or_shapes_is_refused_naming_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.safetensors");
        let replay = transitions(20, 0.0);
        let record = ReplayRecord {
            replay: &replay,
            offline_len: 0,
            staged: &[],
            queues: None,
        };
        write_replay(&path, &record, Metadata::new()).unwrap();
        // Masks of 2, written whole (so that the checksum agrees).
        let mut tensors = as_tensors(&ReplayRecord {
            queues: Some((&[], &[])),
            ..record
        });
        for (name, t) in &mut tensors {
            if name == "online/masks" {
                *t = t.full_like(2.0);
            }
            if name == "online/rewards" {
                *t = t.narrow(0, 0, 19);
            }
        }
        write_tensors(&path, &tensors, Metadata::new()).unwrap();
        let mut file = TensorFile::open(&path).unwrap();
        let err = stored_rows(&file, "online", DIMS).unwrap_err().to_string();
        assert!(
            err.contains("replay.safetensors: tensor online/rewards holds 19 transitions, but online/observations holds 20"),
            "{err}"
        );
        let mut store = TransitionStore::new(DIMS.0, DIMS.1);
        read_rows_into(&mut file, "online", 0..19, &mut store).unwrap();
        let err = check_values(&store, 0, "online", file.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("replay.safetensors: tensor online/masks holds 2: expected 0 or 1"),
            "{err}"
        );
        let err = stored_rows(&file, "queues", DIMS).unwrap_err().to_string();
        assert!(err.ends_with("tensor queues/observations missing"), "{err}");
        store.truncate(4);
        assert_eq!((store.len(), store.observations.len()), (4, 4 * DIMS.0));
    }
}
