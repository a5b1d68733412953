//! Reading an npz archive as a [`Dataset`]: the archive checked whole (every entry's checksum, beside the
//! reading), its `.npy` headers checked before allocating, its arrays read in the dtypes numpy writes, its values
//! checked, its rows turned into transitions.

use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use ndarray::{Array1, Array2};
use qamlab_agent::TransitionStore;

use super::bounded::BoundedNpz;
use super::{Dataset, DatasetSource};

/// Why `bytes` do not open as an npz archive, as far as their start tells.
fn not_npz(file: impl std::fmt::Display, bytes: &[u8]) -> String {
    use crate::files::FileKind;
    match crate::files::sniff(bytes, bytes.len() as u64) {
        Some(FileKind::Zip) => format!(
            "dataset {file}: a zip archive (as an npz is) without its directory at the end: the file is cut short \
             (an interrupted copy or download?) or damaged"
        ),
        Some(kind) => format!(
            "dataset {file}: not an npz archive: it is {}",
            kind.described()
        ),
        None => {
            format!(
                "dataset {file}: not an npz archive (an npz is a zip file, which begins with `PK`)"
            )
        }
    }
}

/// The CRC-32 of a dataset file's bytes, as [`Dataset::crc32`] and a run's checkpoints record it, read in pieces
/// (a dataset can be gigabytes).
pub fn file_crc32(path: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The arrays a dataset is read from.
const LOADED_KEYS: [&str; 5] = ["observations", "actions", "terminals", "rewards", "masks"];

/// Keys of OGBench's files and of `qamlab collect`'s that are left alone (the simulator state, the success flags
/// the masks repeat, where the file came from, the buttons of OGBench's puzzle tasks).
const KNOWN_OTHER_KEYS: [&str; 5] = ["qpos", "qvel", "successes", "source", "button_states"];

/// The largest magnitude a dataset's value may have: a squared TD error or a layer's variance of values much past
/// it overflows float32 (3.4e38). Real observations and rewards are orders of magnitude below.
const LARGEST_VALUE: f32 = 1e15;

/// What the `.npy` header of a loaded array claims.
struct Header {
    key: String,
    shape: Vec<u64>,
    /// The dtype in numpy's words (`float32`, `uint8`, ...) or as its descriptor where unusual.
    dtype: String,
    /// The values its shape holds.
    values: u64,
    /// The bytes of its data, where its dtype has a fixed size (not for pickled objects).
    data_bytes: Option<u64>,
}

/// Keys whose shapes are read though their arrays are not: the physics state, whose widths tell a file of another
/// simulator from one of the task's.
const STATE_KEYS: [&str; 2] = ["qpos", "qvel"];

/// Keys read apart from the arrays, whose headers are checked with theirs: `source`, the JSON record.
const RECORD_KEYS: [&str; 1] = ["source"];

/// The headers of the loaded arrays, of [`STATE_KEYS`] and of [`RECORD_KEYS`], read without reading the arrays.
/// Refuses a header that claims more bytes of data (its dtype's size by its values) than its archive entry can
/// hold: the reader allocates what the header claims before reading, so a damaged header would otherwise abort the
/// process.
fn array_headers(archive: &[u8], file: &str) -> anyhow::Result<Vec<Header>> {
    // Deflate expands at most about 1032:1; a stored entry holds what its size says. The sizes an entry declares
    // are capped by the archive's real length, which a forged directory cannot change.
    const MAX_DEFLATE_RATIO: u64 = 1032;
    let real = archive.len() as u64;
    let mut archive =
        zip::ZipArchive::new(Cursor::new(archive)).with_context(|| not_npz(file, archive))?;
    let mut shapes = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .with_context(|| format!("dataset {file}: reading the archive index"))?;
        let key = entry.name().trim_end_matches(".npy").to_string();
        if ![&LOADED_KEYS[..], &STATE_KEYS, &RECORD_KEYS]
            .iter()
            .any(|keys| keys.contains(&key.as_str()))
        {
            continue;
        }
        let packed = entry.compressed_size().min(real);
        let room = match entry.compression() {
            zip::CompressionMethod::Stored => entry.size().min(packed),
            _ => entry.size().min(packed.saturating_mul(MAX_DEFLATE_RATIO)),
        };
        let header = super::npy::NpyHeader::read(&mut entry);
        let (shape, dtype) = header
            .as_ref()
            .and_then(|header| Some((header.shape()?, header.dtype()?)))
            .with_context(|| format!("dataset {file}: key `{key}`: not a readable .npy array"))?;
        let values = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .unwrap_or(u64::MAX);
        let data_bytes = header.and_then(|h| h.data_len());
        // A dtype of no fixed size (pickled objects) takes a byte a value at the least.
        let claimed = data_bytes.unwrap_or(values);
        let what = match data_bytes {
            Some(bytes) => format!("{dtype} ({bytes} bytes)"),
            None => format!("{dtype} ({values} values)"),
        };
        ensure!(
            claimed <= room,
            "dataset {file}: key `{key}`: its header claims shape {shape:?} of {what}, more than the {room} bytes \
             its archive entry holds: the file is damaged"
        );
        shapes.push(Header {
            key,
            shape,
            dtype,
            values,
            data_bytes,
        });
    }
    Ok(shapes)
}

/// Reads a dataset written by [`write_dataset`](super::write_dataset) (or any OGBench-layout npz with `rewards`
/// and `masks`) as transitions. Errors name the file, the key and the expected dtype and shape.
pub fn load_dataset(path: impl AsRef<Path>) -> anyhow::Result<Dataset> {
    let path = path.as_ref();
    let file = path.display().to_string();
    // OGBench's largest datasets (100M transitions) are folders of npz shards: say so, beside the reader's words.
    ensure!(
        !path.is_dir(),
        "dataset {file} is a folder, not a regular file: give the path of a file (a dataset sharded into a folder \
         of npz files, as OGBench's 100M-transition ones are, is not supported: give one shard, or join them into \
         one file)"
    );
    // Read whole once: the archive is parsed from memory and its checksum taken from the same bytes. Its arrays
    // take at least as much again (deflate shrinks, never grows them), so an archive past half the machine's
    // memory cannot load: none is read further, from a pipe (`<(...)`) or a file.
    let memory = crate::limits::available_memory().unwrap_or(u64::MAX);
    let bytes = crate::files::read_data_file(path, "dataset", memory / 2)?;
    ensure!(!bytes.is_empty(), "dataset {file} is empty (0 bytes)");
    ensure!(
        !bytes.starts_with(b"\x93NUMPY"),
        "dataset {file} is a single .npy array; a dataset is an .npz archive of arrays ({})",
        LOADED_KEYS.join(", ")
    );
    let mut npz = BoundedNpz::new(&bytes).with_context(|| not_npz(&file, &bytes))?;
    check_compression(&bytes, &file)?;
    // Reading a key to its end checks its CRC-32: the arrays loading reads are checked so, and the archive's other
    // entries (`qpos`, `qvel`, keys read by no one) beside them, on a thread of their own: little time where a
    // core is free.
    std::thread::scope(|scope| {
        let whole = scope.spawn(|| super::archive::check_archive(&bytes, &file, &LOADED_KEYS));
        let dataset = read_dataset(&mut npz, &bytes, &file);
        // Damage explains whatever else went wrong: it is said first.
        whole
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        dataset
    })
}

/// Reads the dataset in `bytes`, an npz archive open in `npz` whose compression is checked; `file` names it.
fn read_dataset(npz: &mut BoundedNpz<'_>, bytes: &[u8], file: &str) -> anyhow::Result<Dataset> {
    let names = npz.names();
    check_layout(file, &names)?;
    let headers = array_headers(bytes, file)?;
    check_memory(file, bytes.len() as u64, &headers)?;
    let arrays = read_arrays(npz, &headers, file)?;
    let source = if names.iter().any(|n| n == "source" || n == "source.npy") {
        let (o, a) = (arrays.obs_dim(), arrays.action_dim());
        Some(read_source(npz, o, a).with_context(|| format!("dataset {file}: key `source`"))?)
    } else {
        None
    };
    check_values(file, &arrays)?;
    let transitions = to_transitions(&arrays);
    let warnings = suspicious(file, &arrays, &transitions);
    let shape = |key: &str| {
        headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.shape.clone())
    };
    check_state_rows(file, arrays.observations.nrows(), &headers)?;
    if let Some(bodies) = source.as_ref().and_then(|s| s.state_bodies.as_ref()) {
        check_state_bodies(
            file,
            bodies,
            [
                ("qpos", shape("qpos"), qamlab_sim::QPOS_PER_BODY as u64),
                ("qvel", shape("qvel"), qamlab_sim::QVEL_PER_BODY as u64),
            ],
        )?;
    }
    Ok(Dataset {
        transitions,
        episodes: arrays.terminals.iter().filter(|&&end| end).count(),
        crc32: crc32fast::hash(bytes),
        source,
        qpos_shape: shape("qpos"),
        qvel_shape: shape("qvel"),
        warnings,
    })
}

/// The memory reading the arrays whose `headers` are given takes at the most, as the headers claim them, with the
/// archive of `archive_len` bytes held: each loaded array as the reader allocates it (a value of the widest dtype
/// tried, 8 bytes, where its dtype has no fixed size), converted where it is not of the dtype it is read as
/// (float32; bool for `terminals`, through float64), and the transitions made of them (each row's observation
/// twice, its action, reward, mask and terminal, in float32). `None` past `u64`.
fn memory_claimed(archive_len: u64, headers: &[Header]) -> Option<u64> {
    let header = |key: &str| headers.iter().find(|h| h.key == key);
    let mut total = archive_len;
    for h in headers
        .iter()
        .filter(|h| LOADED_KEYS.contains(&h.key.as_str()))
    {
        let read = match h.data_bytes {
            Some(bytes) => bytes,
            None => h.values.checked_mul(8)?,
        };
        let converted = match (h.key.as_str(), h.dtype.as_str()) {
            ("terminals", "bool") => 0,
            ("terminals", _) => h.values.checked_mul(8 + 1)?,
            (_, "float32") => 0,
            _ => h.values.checked_mul(4)?,
        };
        total = total.checked_add(read)?.checked_add(converted)?;
    }
    let width = |key: &str| {
        header(key)
            .and_then(|h| h.shape.get(1).copied())
            .unwrap_or(1)
    };
    let rows = header("observations")
        .and_then(|h| h.shape.first().copied())
        .unwrap_or(0);
    let row_values = width("observations")
        .checked_mul(2)?
        .checked_add(width("actions"))?
        .checked_add(3)?;
    total.checked_add(rows.checked_mul(row_values)?.checked_mul(4)?)
}

/// Refuses, before any array is read, a dataset whose arrays as their `headers` claim them (with the archive of
/// `archive_len` bytes) would take more than `memory` ([`memory_claimed`]; `None`: unknown), naming the file, its
/// arrays and the sizes.
fn check_memory_within(
    file: &str,
    archive_len: u64,
    headers: &[Header],
    memory: Option<u64>,
) -> anyhow::Result<()> {
    let arrays = headers
        .iter()
        .filter(|h| LOADED_KEYS.contains(&h.key.as_str()))
        .map(|h| format!("`{}` {} {:?}", h.key, h.dtype, h.shape))
        .collect::<Vec<_>>()
        .join(", ");
    crate::limits::check_memory_against(
        memory_claimed(archive_len, headers),
        &format!(
            "dataset {file}: reading its arrays as their headers claim them ({arrays}) and their transitions"
        ),
        memory,
    )
}

/// [`check_memory_within`] the machine's memory.
fn check_memory(file: &str, archive_len: u64, headers: &[Header]) -> anyhow::Result<()> {
    check_memory_within(
        file,
        archive_len,
        headers,
        crate::limits::available_memory(),
    )
}

/// Refuses a `qpos` or `qvel` (as its header says) of other than `rows` rows, the rows of `observations`: a file
/// whose state columns are not those of its rows, which its width alone may not tell (a header claiming half the
/// rows, twice as wide, describes the same bytes).
fn check_state_rows(file: &str, rows: usize, headers: &[Header]) -> anyhow::Result<()> {
    for header in headers
        .iter()
        .filter(|h| STATE_KEYS.contains(&h.key.as_str()))
    {
        ensure!(
            header.shape.first() == Some(&(rows as u64)),
            "dataset {file}: key `{}`: expected shape [N, {}] with N = {rows} (the rows of `observations`), found \
             {} of shape {:?}",
            header.key,
            if header.key == "qpos" { "nq" } else { "nv" },
            header.dtype,
            header.shape
        );
    }
    Ok(())
}

/// Refuses a `source` whose bodies (`state_bodies`) are not as many as the `qpos` and `qvel` columns hold (7 and 6
/// values a body), as its observation and action columns are checked against their arrays' widths.
fn check_state_bodies(
    file: &str,
    bodies: &[String],
    keys: [(&str, Option<Vec<u64>>, u64); 2],
) -> anyhow::Result<()> {
    for (key, shape, per_body) in keys {
        let Some(width) = shape.as_deref().and_then(|s| s.get(1)) else {
            continue;
        };
        let named = bodies.len() as u64 * per_body;
        ensure!(
            *width == named,
            "dataset {file}: key `source` names {} for `qpos` and `qvel` ({per_body} values each in `{key}`: \
             {named}), but `{key}` is {width} values wide (a file changed since `qamlab collect` wrote it? remove \
             the `source` key to use it without its record)",
            match bodies.len() {
                1 => "1 body".to_string(),
                n => format!("{n} bodies"),
            }
        );
    }
    Ok(())
}

/// Refuses an archive entry compressed in a way the reader cannot undo (bzip2, LZMA, zstd: Python's `zipfile`
/// writes them, numpy never does), naming its key; the reader alone would only say that some method is not
/// supported.
fn check_compression(archive: &[u8], file: &str) -> anyhow::Result<()> {
    use zip::CompressionMethod as M;
    // The reader has opened the archive already; anything else wrong with it is the reader's to report.
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(archive)) else {
        return Ok(());
    };
    for index in 0..zip.len() {
        let Ok(entry) = zip.by_index_raw(index) else {
            continue;
        };
        let method = entry.compression();
        if zip::SUPPORTED_COMPRESSION_METHODS.contains(&method) {
            continue;
        }
        let named = [
            (M::BZIP2, "bzip2"),
            (M::LZMA, "LZMA"),
            (M::XZ, "xz"),
            (M::ZSTD, "zstd"),
            (M::DEFLATE64, "Deflate64"),
        ];
        let how = named
            .iter()
            .find(|(m, _)| *m == method)
            .map_or_else(|| format!("zip method {method}"), |(_, n)| n.to_string());
        bail!(
            "dataset {file}: key `{}` is compressed with {how}, which qamlab does not read: save the arrays \
             with numpy's `np.savez_compressed` (deflate) or `np.savez` (uncompressed)",
            entry.name().trim_end_matches(".npy")
        );
    }
    Ok(())
}

/// Refuses an archive in another layout than OGBench's on-disk one, or without a key the dataset is read from;
/// warns of keys that are not read.
fn check_layout(file: &str, names: &[String]) -> anyhow::Result<()> {
    let key_names = || names.iter().map(|n| n.trim_end_matches(".npy"));
    // OGBench's compact layout marks each episode's last two rows in `terminals`, `valids` telling them apart:
    // read as the regular one, every episode would count twice.
    ensure!(
        !key_names().any(|n| n == "valids"),
        "dataset {file}: key `valids`: this file is in OGBench's compact layout (`valids`, and `terminals` on each \
         episode's last two rows), but datasets are read in its regular layout, where an episode of T steps has \
         T+1 rows of observations and `terminals` marks only its last (what `qamlab collect` writes)"
    );
    // OGBench's files store each episode's final state as a row of its own; a file holding `next_observations`
    // is in the transition form its loader returns, where `terminals` means something else.
    ensure!(
        !key_names().any(|n| n == "next_observations"),
        "dataset {file}: key `next_observations`: this file holds transitions with their next observations \
         (the form OGBench's loader returns), but datasets are read in OGBench's on-disk layout, where each \
         episode ends with a row of its final state marked in `terminals` (what `qamlab collect` writes)"
    );
    // D4RL's layout: `terminals` only where the task ended an episode, `timeouts` where the time limit did.
    // Read as OGBench's, an episode cut by the time limit would run on into the next one.
    ensure!(
        !key_names().any(|n| n == "timeouts"),
        "dataset {file}: key `timeouts`: this file is in D4RL's layout, where `timeouts` ends the episodes the \
         time limit cut; datasets are read in OGBench's on-disk layout, where `terminals` marks the last row of \
         every episode (a row of its final state, what `qamlab collect` writes)"
    );
    let ignored: Vec<&str> = key_names()
        .filter(|n| !LOADED_KEYS.contains(n) && !KNOWN_OTHER_KEYS.contains(n))
        .collect();
    if !ignored.is_empty() {
        tracing::warn!(
            "dataset {file}: {} not read (a dataset is read from {}; {} are known and left alone)",
            match ignored.as_slice() {
                [key] => format!("key `{key}` is"),
                keys => format!(
                    "keys {} are",
                    crate::limits::listed(keys.iter().map(|k| format!("`{k}`")))
                ),
            },
            LOADED_KEYS.join(", "),
            KNOWN_OTHER_KEYS.join(", ")
        );
    }
    for key in LOADED_KEYS {
        // OGBench's own files hold no rewards or masks: its loader derives them from its MuJoCo tasks, whose
        // observations are not qamlab's even where the widths agree, so adding the keys would not make one fit.
        let extra = if matches!(key, "rewards" | "masks") {
            "; `qamlab collect` writes it beside OGBench's keys (OGBench's own files hold another observation \
             space than qamlab's tasks, recorded in MuJoCo, so adding rewards and masks to one is not enough: \
             collect a dataset with `qamlab collect`)"
        } else {
            ""
        };
        ensure!(
            names.iter().any(|n| n == key || *n == format!("{key}.npy")),
            "dataset {file}: key `{key}` is missing (found: {}){extra}",
            crate::limits::listed(names)
        );
    }
    Ok(())
}

/// The arrays of [`LOADED_KEYS`] as read: one row a step, episodes concatenated, each ending with a row of its
/// final state. Their row counts agree and the last row ends an episode.
struct LoadedArrays {
    /// `[R, obs_dim]`, in standard (row-major) layout.
    observations: Array2<f32>,
    /// `[R, action_dim]`, in standard (row-major) layout.
    actions: Array2<f32>,
    /// `[R]`: true on each episode's final row.
    terminals: Array1<bool>,
    /// `[R]`.
    rewards: Array1<f32>,
    /// `[R]`.
    masks: Array1<f32>,
}

impl LoadedArrays {
    /// Observation width.
    fn obs_dim(&self) -> usize {
        self.observations.ncols()
    }

    /// Action width.
    fn action_dim(&self) -> usize {
        self.actions.ncols()
    }

    /// The observations of `rows`, flat.
    fn observations(&self, rows: std::ops::Range<usize>) -> &[f32] {
        let o = self.obs_dim();
        &self.observations.as_slice().expect("standard layout")[rows.start * o..rows.end * o]
    }

    /// The action of `row`.
    fn action(&self, row: usize) -> &[f32] {
        let a = self.action_dim();
        &self.actions.as_slice().expect("standard layout")[row * a..(row + 1) * a]
    }

    /// The rows a transition starts from: all but each episode's final one. Each has a next row, since the last
    /// row ends an episode.
    fn transition_rows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.terminals.len()).filter(|&t| !self.terminals[t])
    }
}

/// Reads the arrays of [`LOADED_KEYS`] (their `headers` checked already) and checks that their rows agree.
fn read_arrays(
    npz: &mut BoundedNpz<'_>,
    headers: &[Header],
    file: &str,
) -> anyhow::Result<LoadedArrays> {
    // What a key holds, for an error that says what was found beside what was expected.
    let found = |key: &str| {
        headers
            .iter()
            .find(|h| h.key == key)
            .map_or_else(String::new, |h| {
                format!(", found {} of shape {:?}", h.dtype, h.shape)
            })
    };
    let in_file = || format!("dataset {file}");
    let observations: Array2<f32> =
        read_floats(npz, "observations", "[N, obs_dim]", &found("observations"))
            .with_context(in_file)?;
    let actions: Array2<f32> =
        read_floats(npz, "actions", "[N, action_dim]", &found("actions")).with_context(in_file)?;
    let terminals = read_flags(npz, "terminals", &found("terminals")).with_context(in_file)?;
    let rewards: Array1<f32> =
        read_floats(npz, "rewards", "[N]", &found("rewards")).with_context(in_file)?;
    let masks: Array1<f32> =
        read_floats(npz, "masks", "[N]", &found("masks")).with_context(in_file)?;
    let rows = observations.nrows();
    for (key, n, shape) in [
        ("actions", actions.nrows(), "[N, action_dim]"),
        ("terminals", terminals.len(), "[N]"),
        ("rewards", rewards.len(), "[N]"),
        ("masks", masks.len(), "[N]"),
    ] {
        ensure!(
            n == rows,
            "dataset {file}: key `{key}`: expected shape {shape} with N = {rows} (the rows of `observations`), got N = {n}"
        );
    }
    if rows > 0 && !terminals[rows - 1] {
        bail!(
            "dataset {file}: key `terminals`: the last row must end an episode (true), got false"
        );
    }
    Ok(LoadedArrays {
        observations: into_standard_layout(observations),
        actions: into_standard_layout(actions),
        terminals,
        rewards,
        masks,
    })
}

/// `array` in standard (row-major) layout, copied only where it is not (a file written in Fortran order).
fn into_standard_layout(array: Array2<f32>) -> Array2<f32> {
    if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned()
    }
}

/// Refuses values that would break training where a transition uses them, the first row first: non-finite
/// values, values past [`LARGEST_VALUE`], masks other than 0 or 1.
fn check_values(file: &str, arrays: &LoadedArrays) -> anyhow::Result<()> {
    let (o, a) = (arrays.obs_dim(), arrays.action_dim());
    for t in arrays.transition_rows() {
        // A transition uses its row's observation and the next row's, the other keys at its row only.
        for (key, values, width) in [
            ("observations", arrays.observations(t..t + 2), o),
            ("actions", arrays.action(t), a),
            ("rewards", std::slice::from_ref(&arrays.rewards[t]), 1),
            ("masks", std::slice::from_ref(&arrays.masks[t]), 1),
        ] {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!(
                    "dataset {file}: key `{key}` holds a non-finite value ({}) at row {}",
                    values[i],
                    t + i / width
                );
            }
            if let Some(i) = values.iter().position(|v| v.abs() > LARGEST_VALUE) {
                bail!(
                    "dataset {file}: key `{key}` holds {:e} at row {}: past {LARGEST_VALUE:e}, where the networks' \
                     float32 arithmetic (a squared TD error, a layer's variance) overflows; are its units right?",
                    values[i],
                    t + i / width
                );
            }
        }
        // A mask multiplies the bootstrapped value: anything but 0 or 1 would scale the TD target silently.
        let mask = arrays.masks[t];
        ensure!(
            mask == 0.0 || mask == 1.0,
            "dataset {file}: key `masks` holds {mask} at row {t}: expected 0 (success, no bootstrapping) or 1"
        );
    }
    Ok(())
}

/// The rows as transitions, the way OGBench's regular loader makes them: each episode's final row dropped,
/// `next_observations` taken from the following row, `terminals` 1 on each episode's last transition.
fn to_transitions(arrays: &LoadedArrays) -> TransitionStore {
    let mut store = TransitionStore::new(arrays.obs_dim(), arrays.action_dim());
    // Sized once: the store becomes the replay buffer's, which keeps whatever room it has.
    store.try_reserve(arrays.transition_rows().count());
    for t in arrays.transition_rows() {
        store
            .observations
            .extend_from_slice(arrays.observations(t..t + 1));
        // As OGBench's standard loader: actions strictly inside (-1, 1).
        store.actions.extend(
            arrays
                .action(t)
                .iter()
                .map(|u| u.clamp(-1.0 + 1e-5, 1.0 - 1e-5)),
        );
        store
            .next_observations
            .extend_from_slice(arrays.observations(t + 1..t + 2));
        store.rewards.push(arrays.rewards[t]);
        store.masks.push(arrays.masks[t]);
        store
            .terminals
            .push(if arrays.terminals[t + 1] { 1.0 } else { 0.0 });
    }
    store
}

/// Data that trains but likely not as meant, as warnings: masks that disagree with the rewards about success, and
/// actions outside [-1, 1] (which `transitions` holds clipped).
fn suspicious(file: &str, arrays: &LoadedArrays, transitions: &TransitionStore) -> Vec<String> {
    let mut warnings = Vec::new();
    // A task's reward is 0 exactly at success (both of a scene's reward kinds), where the mask stops bootstrapping.
    let disagree = |mask: f32, success: bool| {
        transitions
            .masks
            .iter()
            .zip(&transitions.rewards)
            .filter(|&(&m, &r)| m == mask && (r == 0.0) == success)
            .count()
    };
    let (stopped, bootstrapped) = (disagree(0.0, false), disagree(1.0, true));
    if stopped + bootstrapped > 0 {
        warnings.push(format!(
            "dataset {file}: {stopped} rows have mask 0 (a success: no bootstrapping) at a reward below 0, and \
             {bootstrapped} mask 1 at reward 0 (a success's reward); in qamlab's tasks they go together (mask = 0 \
             exactly where reward = 0): masks made as 1 - terminals (D4RL's) or rewards of another scale train \
             a critic on the wrong targets"
        ));
    }
    let outside: usize = arrays
        .transition_rows()
        .map(|t| arrays.action(t).iter().filter(|u| u.abs() > 1.0).count())
        .sum();
    if outside > 0 {
        warnings.push(format!(
            "dataset {file}: {outside} action values lie outside [-1, 1]; training clips them (as OGBench's \
             loader does), but data recorded in other units would be silently wrong"
        ));
    }
    warnings
}

/// Reads the `source` key: JSON text as uint8 bytes, naming as many columns as the arrays hold.
fn read_source(
    npz: &mut BoundedNpz<'_>,
    obs_dim: usize,
    action_dim: usize,
) -> anyhow::Result<DatasetSource> {
    // A stale or foreign `source` is refused rather than skipped: a file edited since its collection may no
    // longer be what it says. The way out is named.
    const REMEDY: &str = "(a file changed since `qamlab collect` wrote it? remove the `source` key to use it \
                          without its record, its columns then unchecked)";
    let bytes = npz
        .by_name::<ndarray::OwnedRepr<u8>, ndarray::Ix1>("source")
        .with_context(|| format!("expected uint8 [bytes] of JSON text {REMEDY}"))?;
    let mut source: DatasetSource = serde_json::from_slice(&bytes.to_vec()).with_context(|| {
        format!("expected JSON text with task, observations, actions, collected_with and qamlab {REMEDY}")
    })?;
    printable(&mut source);
    ensure!(
        (source.observations.len(), source.actions.len()) == (obs_dim, action_dim),
        "names {} observation and {} action columns, but the arrays hold {obs_dim} and {action_dim} {REMEDY}",
        source.observations.len(),
        source.actions.len()
    );
    Ok(source)
}

/// Escapes the control characters in `source`'s text (`\u{1b}` for ESC), which qamlab never writes there: printed
/// as they are, a file's terminal escapes or line breaks could pass for lines of qamlab's own output.
fn printable(source: &mut DatasetSource) {
    let escape = |text: &mut String| {
        if text.chars().any(char::is_control) {
            *text = text
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_unicode().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
    };
    for text in [
        &mut source.task,
        &mut source.collected_with,
        &mut source.qamlab,
    ]
    .into_iter()
    .chain(source.scene.as_mut())
    .chain(&mut source.observations)
    .chain(&mut source.actions)
    .chain(source.state_bodies.iter_mut().flatten())
    {
        escape(text);
    }
}

/// Reads number array `key` as float32: float32 as stored; float64 (numpy's default) and integers converted.
/// `found` (`, found bool of shape [6]`) goes into the error.
fn read_floats<D: ndarray::Dimension>(
    npz: &mut BoundedNpz<'_>,
    key: &str,
    shape: &str,
    found: &str,
) -> anyhow::Result<ndarray::Array<f32, D>> {
    let error = match npz.by_name::<ndarray::OwnedRepr<f32>, D>(key) {
        Ok(array) => return Ok(array),
        Err(e) => e,
    };
    refuse_damage(key, &error)?;
    if let Ok(array) = npz.by_name::<ndarray::OwnedRepr<f64>, D>(key) {
        // A finite float64 past float32's range would turn into an infinity that looks like damage.
        if let Some((i, v)) = array
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_finite() && !(**v as f32).is_finite())
        {
            let row = i / array.shape().get(1).copied().unwrap_or(1).max(1);
            bail!(
                "key `{key}` holds {v:e} at row {row}: past float32's range, which training computes in"
            );
        }
        return Ok(array.mapv(|v| v as f32));
    }
    // Masks or rewards written as integers.
    if let Some(array) = read_whole_numbers(npz, key) {
        return Ok(array);
    }
    let expected = format!("key `{key}`: expected float32, float64 or whole numbers {shape}");
    Err(wrong_dtype(error, expected, found))
}

/// Reads flag array `key` (`[N]`): bool as OGBench stores it, or numbers that are all 0 or 1. `found` (`, found
/// float32 of shape [6, 2]`) goes into the error.
fn read_flags(npz: &mut BoundedNpz<'_>, key: &str, found: &str) -> anyhow::Result<Array1<bool>> {
    let error = match npz.by_name::<ndarray::OwnedRepr<bool>, ndarray::Ix1>(key) {
        Ok(array) => return Ok(array),
        Err(e) => e,
    };
    refuse_damage(key, &error)?;
    // Every float32 and every whole number 0 or 1 is exactly a float64.
    let numbers = npz
        .by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix1>(key)
        .map(|array| array.mapv(f64::from))
        .or_else(|_| npz.by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix1>(key))
        .ok()
        .or_else(|| read_whole_numbers::<f64, ndarray::Ix1>(npz, key));
    let Some(numbers) = numbers else {
        let expected = format!("key `{key}`: expected bool [N] (or 0/1 numbers)");
        return Err(wrong_dtype(error, expected, found));
    };
    numbers
        .iter()
        .enumerate()
        .map(|(row, &v)| {
            ensure!(
                v == 0.0 || v == 1.0,
                "key `{key}` holds {v} at row {row}: expected a flag (bool, or 0 and 1)"
            );
            Ok(v == 1.0)
        })
        .collect::<anyhow::Result<Vec<bool>>>()
        .map(Array1::from)
}

/// The error for an array of none of the dtypes its key takes: `expected`, then what the file holds where its
/// header said (`found`), else the reader's own error.
fn wrong_dtype(error: ndarray_npy::ReadNpzError, expected: String, found: &str) -> anyhow::Error {
    if found.is_empty() {
        anyhow::Error::new(error).context(expected)
    } else {
        anyhow::anyhow!("{expected}{found}")
    }
}

/// Errors where reading array `key` failed on its bytes (a checksum, the compressed stream, an entry cut short, a
/// header its data does not match) rather than on its type or shape, which the readers would otherwise report as a
/// type they do not take.
fn refuse_damage(key: &str, error: &ndarray_npy::ReadNpzError) -> anyhow::Result<()> {
    use ndarray_npy::{ReadNpyError, ReadNpzError};
    // The type and the shape are the readers' to report; anything else failed on the bytes.
    let damaged = !matches!(
        error,
        ReadNpzError::Npy(ReadNpyError::WrongDescriptor(_) | ReadNpyError::WrongNdim(..))
    );
    ensure!(
        !damaged,
        "key `{key}`: its archive entry is damaged ({error}): {}",
        super::archive::RECOPY
    );
    Ok(())
}

/// A float type whole numbers are read into, each converted as `as` converts it (to the nearest value it holds).
trait FromWholeNumber: Copy {
    /// `v` as this type.
    fn from_i64(v: i64) -> Self;
    /// `v` as this type.
    fn from_u64(v: u64) -> Self;
}

impl FromWholeNumber for f32 {
    fn from_i64(v: i64) -> Self {
        v as f32
    }

    fn from_u64(v: u64) -> Self {
        v as f32
    }
}

impl FromWholeNumber for f64 {
    fn from_i64(v: i64) -> Self {
        v as f64
    }

    fn from_u64(v: u64) -> Self {
        v as f64
    }
}

/// Array `key` read as whole numbers (numpy's default dtype for them) of any width, converted to `T`; `None`
/// when it holds none. A narrower integer goes through i64 or u64 exactly, so it rounds once, as `as` would round it.
fn read_whole_numbers<T: FromWholeNumber, D: ndarray::Dimension>(
    npz: &mut BoundedNpz<'_>,
    key: &str,
) -> Option<ndarray::Array<T, D>> {
    fn read<E, T, D>(
        npz: &mut BoundedNpz<'_>,
        key: &str,
        convert: impl Fn(E) -> T,
    ) -> Option<ndarray::Array<T, D>>
    where
        E: ndarray_npy::ReadableElement + Copy,
        D: ndarray::Dimension,
    {
        let array = npz.by_name::<ndarray::OwnedRepr<E>, D>(key).ok()?;
        Some(array.mapv(convert))
    }
    read(npz, key, |v: i64| T::from_i64(v))
        .or_else(|| read(npz, key, |v: i32| T::from_i64(v.into())))
        .or_else(|| read(npz, key, |v: i16| T::from_i64(v.into())))
        .or_else(|| read(npz, key, |v: i8| T::from_i64(v.into())))
        .or_else(|| read(npz, key, |v: u64| T::from_u64(v)))
        .or_else(|| read(npz, key, |v: u32| T::from_u64(v.into())))
        .or_else(|| read(npz, key, |v: u16| T::from_u64(v.into())))
        .or_else(|| read(npz, key, |v: u8| T::from_u64(v.into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::test_npz::{load_bytes, npz_bytes, npz_with};

    #[test]
    fn control_characters_in_the_source_record_are_escaped() {
        let text = r#"{"task":"t\nsource: task cube-single","observations":["a","b","c\u001b[2K"],
            "actions":["x","y"],"collected_with":"\u001b[31mqamlab collect\r","qamlab":"0.1.0"}"#;
        let bytes = npz_with(&[], |npz| {
            npz.add_array("source", &ndarray::Array1::from(text.as_bytes().to_vec()))
                .unwrap();
        });
        let source = load_bytes(&bytes).unwrap().source.unwrap();
        assert_eq!(source.task, "t\\u{a}source: task cube-single");
        assert_eq!(source.collected_with, "\\u{1b}[31mqamlab collect\\u{d}");
        assert_eq!(source.observations, ["a", "b", "c\\u{1b}[2K"]);
        assert_eq!(source.actions, ["x", "y"]);
        assert_eq!(source.qamlab, "0.1.0");
    }

    #[test]
    fn a_header_claiming_more_than_the_file_holds_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        let good = npz_bytes([1.0; 6]);
        std::fs::write(&path, &good).unwrap();
        assert_eq!(load_dataset(&path).unwrap().len(), 4);

        // The same header length (the padding gives way), a shape of 3e12 values: the reader would ask for 12 TB.
        let from = b"'shape': (6, 3)}            ";
        let to = b"'shape': (1000000000000, 3)}";
        let at = good.windows(from.len()).position(|w| w == from).unwrap();
        let mut bad = good.clone();
        bad[at..at + to.len()].copy_from_slice(to);
        std::fs::write(&path, &bad).unwrap();
        let err = format!("{:#}", load_dataset(&path).unwrap_err());
        assert!(
            err.contains("key `observations`: its header claims shape [1000000000000, 3]")
                && err.contains("the file is damaged"),
            "{err}"
        );
    }

    #[test]
    fn a_header_is_measured_in_the_bytes_of_its_dtype() {
        use crate::dataset::test_npz::{npy, npz_with_entries};
        // 300 float64 values (2400 bytes) claimed over 400 bytes of data: fewer values than bytes, as a forged
        // header of 4e9 values over 4 GB of entry claims 32 GB.
        let observations = npy("<f8", false, &[100, 3], &[0; 400]);
        let bad = npz_with_entries(
            &["observations"],
            &[("observations.npy", observations)],
            false,
        );
        let err = format!("{:#}", load_bytes(&bad).unwrap_err());
        assert!(
            err.contains(
                "d.npz: key `observations`: its header claims shape [100, 3] of float64 (2400 bytes), more than the "
            ) && err.ends_with("bytes its archive entry holds: the file is damaged"),
            "{err}"
        );
    }

    #[test]
    fn arrays_claiming_more_than_the_machines_memory_are_refused_before_any_is_read() {
        let header = |key: &str, dtype: &str, shape: &[u64], item: u64| {
            let values = shape.iter().product::<u64>();
            Header {
                key: key.into(),
                shape: shape.to_vec(),
                dtype: dtype.into(),
                values,
                data_bytes: Some(values * item),
            }
        };
        let rows = 142_000_000;
        let headers = [
            header("observations", "float64", &[rows, 28], 8),
            header("actions", "float32", &[rows, 5], 4),
            header("terminals", "bool", &[rows], 1),
            header("rewards", "float32", &[rows], 4),
            header("masks", "float32", &[rows], 4),
            header("qpos", "float32", &[rows, 14], 4),
        ];
        // float64 read (8 bytes a value), then float32 (4 more); the transitions: 2 x 28 + 5 + 3 float32 a row.
        let observations = rows * 28 * 12;
        let others = rows * (5 * 4 + 1 + 4 + 4);
        let transitions = rows * (2 * 28 + 5 + 3) * 4;
        assert_eq!(
            memory_claimed(1000, &headers),
            Some(1000 + observations + others + transitions)
        );
        let err = check_memory_within("d.npz", 1000, &headers, Some(23 << 30))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dataset d.npz: reading its arrays as their headers claim them (`observations` float64 [142000000, 28], \
             `actions` float32 [142000000, 5], `terminals` bool [142000000], `rewards` float32 [142000000], `masks` \
             float32 [142000000]) and their transitions would take 82.1 GiB of memory, more than this machine's \
             23.0 GiB"
        );
        check_memory_within("d.npz", 1000, &headers, Some(100 << 30)).unwrap();
        // A dataset that loads claims what it takes, and passes.
        let bytes = npz_bytes([1.0; 6]);
        load_bytes(&bytes).unwrap();
    }

    #[test]
    fn an_array_is_read_no_further_than_its_entrys_declared_size() {
        use crate::dataset::test_npz::{npy, npz_with_entries};
        // Observations followed by 100 000 bytes more of data than the entry declares (a forged size: a few bytes
        // declared, gigabytes inflated). The reader would read whatever follows the array to see that nothing does.
        let array = npy("<f4", false, &[6, 3], &[0; 72]);
        let mut inflated = array.clone();
        inflated.extend(std::iter::repeat_n(0u8, 100_000));
        let mut bytes =
            npz_with_entries(&["observations"], &[("observations.npy", inflated)], true);
        let name = b"observations.npy";
        for (signature, size_at) in [(&b"PK\x03\x04"[..], 22), (&b"PK\x01\x02"[..], 24)] {
            let name_at = if signature[2] == 3 { 30 } else { 46 };
            let record = (0..bytes.len())
                .find(|&i| {
                    bytes[i..].starts_with(signature) && bytes[i + name_at..].starts_with(name)
                })
                .unwrap();
            bytes[record + size_at..record + size_at + 4]
                .copy_from_slice(&(array.len() as u32).to_le_bytes());
        }
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("key `observations`: its archive entry is damaged (")
                && err.contains("file had 1 extra bytes before EOF"),
            "{err}"
        );
    }

    #[test]
    fn a_source_header_claiming_more_than_its_entry_holds_is_refused_before_allocating() {
        use crate::dataset::test_npz::{npy, npz_with_entries};
        // 10 bytes of record under a header of 1e12, the entry's CRC-32 right: only the header is wrong. Reading the
        // record as the header says would ask for a terabyte.
        let source = npy("|u1", false, &[1_000_000_000_000], b"{}        ");
        let bad = npz_with_entries(&[], &[("source.npy", source)], false);
        let err = format!("{:#}", load_bytes(&bad).unwrap_err());
        assert!(
            err.contains("key `source`: its header claims shape [1000000000000]")
                && err.contains("the file is damaged"),
            "{err}"
        );
    }

    #[test]
    fn a_source_naming_other_bodies_than_qpos_holds_is_refused() {
        let source = |bodies: &str| {
            format!(
                r#"{{"task":"t","observations":["a","b","c"],"actions":["x","y"],"collected_with":"c",
                "qamlab":"0.1.0","state_bodies":[{bodies}]}}"#
            )
        };
        let file = |bodies: &str| {
            npz_with(&[], |npz| {
                npz.add_array("qpos", &ndarray::Array2::<f32>::zeros((6, 14)))
                    .unwrap();
                npz.add_array("qvel", &ndarray::Array2::<f32>::zeros((6, 12)))
                    .unwrap();
                npz.add_array(
                    "source",
                    &ndarray::Array1::from(source(bodies).into_bytes()),
                )
                .unwrap();
            })
        };
        load_bytes(&file(r#""arm","cube""#)).unwrap();
        let err = format!("{:#}", load_bytes(&file(r#""nope""#)).unwrap_err());
        assert!(
            err.contains("key `source` names 1 body for `qpos` and `qvel` (7 values each in `qpos`: 7), but `qpos` is 14 values wide"),
            "{err}"
        );
    }

    #[test]
    fn masks_other_than_0_or_1_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        std::fs::write(&path, npz_bytes([1.0, 0.5, 1.0, 1.0, 1.0, 1.0])).unwrap();
        let err = format!("{:#}", load_dataset(&path).unwrap_err());
        assert!(
            err.contains("key `masks` holds 0.5 at row 1: expected 0"),
            "{err}"
        );
    }

    #[test]
    fn numpy_default_dtypes_are_read_as_float32_and_flags() {
        let good = load_bytes(&npz_with(&[], |_| {})).unwrap();
        let wide = load_bytes(&npz_with(
            &["observations", "actions", "terminals"],
            |npz| {
                let obs = Array2::from_shape_fn((6, 3), |(r, c)| (r * 3 + c) as f64 / 10.0);
                npz.add_array("observations", &obs).unwrap();
                npz.add_array("actions", &Array2::<f64>::from_elem((6, 2), 0.5))
                    .unwrap();
                npz.add_array("terminals", &Array1::from(vec![0i64, 0, 1, 0, 0, 1]))
                    .unwrap();
            },
        ))
        .unwrap();
        assert_eq!(
            Dataset {
                crc32: good.crc32,
                // they name their files
                warnings: good.warnings.clone(),
                ..wide
            },
            good
        );
        // Whole-number masks (numpy's integers) read as the same values.
        let int_masks = npz_with(&["masks"], |npz| {
            npz.add_array("masks", &Array1::<i64>::ones(6)).unwrap();
        });
        assert_eq!(
            load_bytes(&int_masks).unwrap().transitions.masks,
            good.transitions.masks
        );
        let err = load_bytes(&npz_with(&["observations"], |npz| {
            let mut obs = Array2::<f64>::zeros((6, 3));
            obs[[4, 0]] = 1e300;
            npz.add_array("observations", &obs).unwrap();
        }))
        .unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("key `observations` holds 1e300 at row 4: past float32's range"),
            "{err:#}"
        );
        let err = load_bytes(&npz_with(&["terminals"], |npz| {
            npz.add_array(
                "terminals",
                &Array1::from(vec![0.0f32, 0.0, 2.0, 0.0, 0.0, 1.0]),
            )
            .unwrap();
        }))
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("key `terminals` holds 2 at row 2: expected a flag"),
            "{err:#}"
        );
        // Whole numbers of any width.
        for bytes in [
            npz_with(&["masks"], |npz| {
                npz.add_array("masks", &Array1::<u8>::ones(6)).unwrap();
            }),
            npz_with(&["masks"], |npz| {
                npz.add_array("masks", &Array1::<i16>::ones(6)).unwrap();
            }),
        ] {
            assert_eq!(
                load_bytes(&bytes).unwrap().transitions.masks,
                good.transitions.masks
            );
        }
        // What is neither is named with what the file holds.
        let err = load_bytes(&npz_with(&["actions"], |npz| {
            npz.add_array("actions", &Array2::<bool>::from_elem((6, 2), true))
                .unwrap();
        }))
        .unwrap_err();
        assert!(
            format!("{err:#}").ends_with(
                "key `actions`: expected float32, float64 or whole numbers [N, action_dim], found bool of shape \
                 [6, 2]"
            ),
            "{err:#}"
        );
        let err = load_bytes(&npz_with(&["terminals"], |npz| {
            npz.add_array("terminals", &Array2::<f32>::zeros((6, 1)))
                .unwrap();
        }))
        .unwrap_err();
        assert!(
            format!("{err:#}").ends_with(
                "key `terminals`: expected bool [N] (or 0/1 numbers), found float32 of shape [6, 1]"
            ),
            "{err:#}"
        );
    }

    #[test]
    fn d4rl_timeouts_are_refused_rather_than_merging_episodes() {
        let bytes = npz_with(&[], |npz| {
            npz.add_array("timeouts", &Array1::from(vec![false; 6]))
                .unwrap();
        });
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("key `timeouts`: this file is in D4RL's layout"),
            "{err}"
        );
    }

    #[test]
    fn files_that_are_not_the_on_disk_layout_are_named_for_what_they_are() {
        let with_next = npz_with(&[], |npz| {
            npz.add_array("next_observations", &Array2::<f32>::zeros((6, 3)))
                .unwrap();
        });
        let err = format!("{:#}", load_bytes(&with_next).unwrap_err());
        assert!(
            err.contains("key `next_observations`: this file holds transitions"),
            "{err}"
        );
        let err = format!("{:#}", load_bytes(&[]).unwrap_err());
        assert!(err.ends_with("is empty (0 bytes)"), "{err}");
        let npy =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }";
        let err = format!("{:#}", load_bytes(npy).unwrap_err());
        assert!(err.contains("is a single .npy array"), "{err}");
        // A download cut short keeps the zip's start and loses its directory, which is at the end.
        let whole = npz_with(&[], |_| {});
        let err = format!("{:#}", load_bytes(&whole[..whole.len() / 2]).unwrap_err());
        assert!(err.contains("the file is cut short"), "{err}");
        let err = format!(
            "{:#}",
            load_bytes(b"observations,actions\n1,2\n").unwrap_err()
        );
        assert!(
            err.contains("not an npz archive (an npz is a zip file"),
            "{err}"
        );
        // A chart or a checkpoint given as the dataset is named as what it is.
        let err = format!("{:#}", load_bytes(b"\x89PNG\r\n\x1a\n...").unwrap_err());
        assert!(
            err.contains("not an npz archive: it is a PNG image, as a chart is"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            load_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}").unwrap_err()
        );
        assert!(
            err.contains("it is a safetensors file, as a checkpoint's agent is"),
            "{err}"
        );
    }

    #[test]
    fn a_non_finite_value_is_named_at_its_row() {
        let bytes = npz_with(&["observations"], |npz| {
            let mut obs = Array2::<f32>::zeros((6, 3));
            obs[[4, 1]] = f32::NAN;
            npz.add_array("observations", &obs).unwrap();
        });
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.ends_with("key `observations` holds a non-finite value (NaN) at row 4"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_entry_is_called_damaged_not_a_wrong_type() {
        let mut bytes = npz_with(&[], |_| {});
        // Observation 1.7 (row 5, column 2) is stored once, uncompressed: a bit of it flipped fails the entry's CRC.
        let value = 1.7f32.to_le_bytes();
        let at = bytes.windows(4).position(|w| w == value).unwrap();
        bytes[at] ^= 1;
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("key `observations`: its archive entry is damaged (")
                && err.contains("checksum")
                && err.ends_with("copy the file again, or collect it again"),
            "{err}"
        );
    }

    #[test]
    fn values_too_large_for_float32_arithmetic_are_refused() {
        let bytes = npz_with(&["observations"], |npz| {
            let mut obs = Array2::<f32>::zeros((6, 3));
            obs[[3, 1]] = -1e20;
            npz.add_array("observations", &obs).unwrap();
        });
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("key `observations` holds -1e20 at row 3: past 1e15"),
            "{err}"
        );
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_before_reading() {
        let err = format!("{:#}", load_dataset("/dev/zero").unwrap_err());
        assert_eq!(
            err,
            "dataset /dev/zero is a device, not a regular file: give the path of a file"
        );
        // A folder may be a sharded dataset, which is named as not supported.
        let err = format!("{:#}", load_dataset("/tmp").unwrap_err());
        assert!(
            err.starts_with(
                "dataset /tmp is a folder, not a regular file: give the path of a file"
            ) && err.contains("sharded into a folder of npz files")
                && err.contains("is not supported"),
            "{err}"
        );
    }

    #[test]
    fn ogbench_s_compact_layout_is_refused_rather_than_doubling_the_episodes() {
        let bytes = npz_with(&[], |npz| {
            npz.add_array("valids", &Array1::<f32>::ones(6)).unwrap();
        });
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("key `valids`: this file is in OGBench's compact layout")
                && err.contains("T+1 rows of observations and `terminals` marks only its last"),
            "{err}"
        );
    }

    #[test]
    fn an_entry_compressed_as_numpy_never_does_is_named_with_the_way_out() {
        // An uncompressed archive whose `actions` entry claims bzip2 (12), as Python's zipfile can write it: in its
        // local header (method at byte 8) and in the central directory (at byte 10).
        let mut bytes = npz_with(&[], |_| {});
        for (signature, at, name_at) in [(b"PK\x03\x04", 8, 30), (b"PK\x01\x02", 10, 46)] {
            let starts: Vec<usize> = (0..bytes.len() - name_at)
                .filter(|&i| bytes[i..].starts_with(signature))
                .filter(|&i| bytes[i + name_at..].starts_with(b"actions.npy"))
                .collect();
            assert_eq!(starts.len(), 1);
            bytes[starts[0] + at..starts[0] + at + 2].copy_from_slice(&12u16.to_le_bytes());
        }
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.starts_with("dataset ")
                && err.ends_with(
                    "d.npz: key `actions` is compressed with bzip2, which qamlab does not read: save the arrays \
                     with numpy's `np.savez_compressed` (deflate) or `np.savez` (uncompressed)"
                ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_rewards_key_says_ogbench_s_own_files_do_not_fit_with_it_added() {
        let bytes = npz_with(&["masks"], |_| {});
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("key `masks` is missing")
                && err.contains(
                    "OGBench's own files hold another observation space than qamlab's tasks"
                )
                && err.contains("adding rewards and masks to one is not enough"),
            "{err}"
        );
    }

    #[test]
    fn the_shapes_of_qpos_and_qvel_are_kept_without_reading_them() {
        assert_eq!(load_bytes(&npz_with(&[], |_| {})).unwrap().qpos_shape, None);
        let data = load_bytes(&npz_with(&[], |npz| {
            npz.add_array("qpos", &Array2::<f32>::zeros((6, 21)))
                .unwrap();
            npz.add_array("qvel", &Array1::<f64>::zeros(6)).unwrap();
        }))
        .unwrap();
        assert_eq!(
            (data.qpos_shape, data.qvel_shape),
            (Some(vec![6, 21]), Some(vec![6]))
        );
    }

    #[test]
    fn a_source_without_its_state_bodies_still_loads() {
        let text = r#"{"task":"t","observations":["a","b","c"],"actions":["x","y"],"collected_with":"c",
            "qamlab":"0.1.0"}"#;
        let bytes = npz_with(&[], |npz| {
            npz.add_array("source", &Array1::from(text.as_bytes().to_vec()))
                .unwrap();
        });
        assert_eq!(
            load_bytes(&bytes).unwrap().source.unwrap().state_bodies,
            None
        );
        let text = text.replace('}', r#","state_bodies":["hand","cube\u001b"]}"#);
        let bytes = npz_with(&[], |npz| {
            npz.add_array("source", &Array1::from(text.as_bytes().to_vec()))
                .unwrap();
        });
        assert_eq!(
            load_bytes(&bytes)
                .unwrap()
                .source
                .unwrap()
                .state_bodies
                .unwrap(),
            ["hand", "cube\\u{1b}"]
        );
    }

    #[test]
    fn a_qpos_of_other_rows_than_the_observations_is_refused() {
        use crate::dataset::test_npz::{npy, npz_with_entries};
        // The bytes of [6, 14] under a header of [3, 28]: as long, so only the rows tell.
        let qpos = npy("<f4", false, &[3, 28], &0f32.to_le_bytes().repeat(6 * 14));
        let bytes = npz_with_entries(&[], &[("qpos.npy", qpos)], true);
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.ends_with(
                "d.npz: key `qpos`: expected shape [N, nq] with N = 6 (the rows of `observations`), found float32 of \
                 shape [3, 28]"
            ),
            "{err}"
        );
    }

    #[test]
    fn big_endian_and_fortran_order_arrays_read_as_the_same_values() {
        use crate::dataset::test_npz::{npy, npz_with_entries};
        let good = load_bytes(&npz_with(&[], |_| {})).unwrap();
        // `npz_with`'s observations (row r, column c: (3r + c) / 10) and actions (0.5), as numpy writes them
        // with `astype('>f4')` and `np.asfortranarray`.
        let value = |r: usize, c: usize| (r * 3 + c) as f32 / 10.0;
        let big_endian: Vec<u8> = (0..18)
            .flat_map(|i| value(i / 3, i % 3).to_be_bytes())
            .collect();
        let column_major: Vec<u8> = (0..18)
            .flat_map(|i| value(i % 6, i / 6).to_le_bytes())
            .collect();
        let actions = 0.5f64.to_be_bytes().repeat(12);
        for (observations, actions) in [
            (
                npy(">f4", false, &[6, 3], &big_endian),
                npy(">f8", false, &[6, 2], &actions),
            ),
            (
                npy("<f4", true, &[6, 3], &column_major),
                npy(">f8", true, &[6, 2], &actions),
            ),
        ] {
            let entries = [("observations.npy", observations), ("actions.npy", actions)];
            let read = load_bytes(&npz_with_entries(
                &["observations", "actions"],
                &entries,
                true,
            ))
            .unwrap();
            assert_eq!(read.transitions, good.transitions);
        }
    }
}
