//! Datasets in OGBench's npz layout: writing the rows a collection produced, reading them back as transitions.
//!
//! Layout (per row, all episodes concatenated; an episode of T actions has T+1 rows `s0..sT`):
//!
//! | key | dtype | shape | row t |
//! |---|---|---|---|
//! | `observations` | float32 | `[R, obs_dim]` | state `s_t` |
//! | `actions` | float32 | `[R, action_dim]` | `a_t`; zeros on an episode's final row |
//! | `terminals` | bool | `[R]` | true on an episode's final row |
//! | `rewards` | float32 | `[R]` | reward of the step from `s_t` (final row: of `s_T` itself) |
//! | `masks` | float32 | `[R]` | `1 - successes` |
//! | `successes` | bool | `[R]` | whether the step from `s_t` reached success (final row: whether `s_T` is one) |
//! | `qpos`, `qvel` | float32 | `[R, nq]`, `[R, nv]` | physics state at `s_t` |
//! | `source` | uint8 | `[bytes]` | [`DatasetSource`] as JSON text (`json.loads(d["source"].tobytes())`) |
//!
//! Files are written with deflate compression (what `np.savez_compressed` writes) through a temporary file renamed
//! into place, so a crash never leaves half a dataset under the final name.

use std::io::{BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail, ensure};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ShapeError};
use ndarray_npy::{NpzReader, NpzWriter};

use qamlab_sim::TaskScene;

use crate::files::{StagedFile, write_staged};

/// The rows of a dataset being built, flat and row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetRows {
    /// Observation width.
    pub obs_dim: usize,
    /// Action width.
    pub action_dim: usize,
    /// `qpos` width.
    pub qpos_dim: usize,
    /// `qvel` width.
    pub qvel_dim: usize,
    /// `[R * obs_dim]`.
    pub observations: Vec<f32>,
    /// `[R * action_dim]`.
    pub actions: Vec<f32>,
    /// `[R]`.
    pub terminals: Vec<bool>,
    /// `[R]`.
    pub rewards: Vec<f32>,
    /// `[R]`.
    pub masks: Vec<f32>,
    /// `[R]`.
    pub successes: Vec<bool>,
    /// `[R * qpos_dim]`.
    pub qpos: Vec<f32>,
    /// `[R * qvel_dim]`.
    pub qvel: Vec<f32>,
}

/// Where a dataset came from, stored in its `source` key: the task's name and what its observation and action
/// columns are, so that training on another task's data is caught even where the widths agree; and how it was
/// collected, so that a file says how to make it again.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetSource {
    /// The task's own name (its scene's, whatever file it came from).
    pub task: String,
    /// The observation's column names, in order (`EnvSpec::obs_names`).
    pub observations: Vec<String>,
    /// The action's column names, in order (`EnvSpec::action_names`).
    pub actions: Vec<String>,
    /// The `qamlab collect` command that made the rows (`--out` aside: the bytes do not depend on the name).
    pub collected_with: String,
    /// The version of qamlab that made them.
    pub qamlab: String,
    /// Where the task's scene came from: its file's absolute path (in older files, as given), or `builtin:<name>`
    /// (absent in earlier files).
    #[serde(default)]
    pub scene: Option<String>,
    /// [`scene_fingerprint`] of that scene (absent in earlier files).
    #[serde(default)]
    pub scene_fingerprint: Option<u32>,
    /// [`FINGERPRINT_VERSION`] of the fingerprint: one of another version is not compared.
    #[serde(default)]
    pub fingerprint_version: u32,
}

impl DatasetSource {
    /// The source for a dataset of `scene`'s task, whose envs `spec` describes.
    pub fn new(scene: &TaskScene, spec: &qamlab_sim::EnvSpec, collected_with: String) -> Self {
        Self {
            task: spec.task.clone(),
            observations: spec.obs_names.clone(),
            actions: spec.action_names.clone(),
            collected_with,
            qamlab: env!("CARGO_PKG_VERSION").into(),
            scene: Some(absolute_scene(&scene.source)),
            scene_fingerprint: Some(scene_fingerprint(scene)),
            fingerprint_version: FINGERPRINT_VERSION,
        }
    }
}

/// The version of [`scene_fingerprint`]'s text: bumped when a change to qamlab (a new field, another way of
/// printing a value) changes the fingerprint of an unchanged scene, so that older datasets are not taken for data
/// of another scene. A test pins cube-single's fingerprint to catch such a change.
pub const FINGERPRINT_VERSION: u32 = 1;

/// What a scene's author wrote, as one number: the CRC-32 of the debug text of its authored components (settings,
/// bodies with colliders and randomisation, joints, sites, actuators, sensors, goals), leaving out the file's path
/// and what loading computes (joint frames, resolved indices). A copy or a re-commented file keeps it; a change to
/// anything the task is made of changes it.
pub fn scene_fingerprint(scene: &TaskScene) -> u32 {
    let authored = (
        &scene.settings,
        scene
            .bodies
            .iter()
            .map(|b| (&b.body, &b.collider, &b.randomize))
            .collect::<Vec<_>>(),
        scene.joints.iter().map(|j| &j.joint).collect::<Vec<_>>(),
        scene
            .sites
            .iter()
            .map(|(name, frame)| (name, &scene.bodies[frame.body].body.name, frame.offset))
            .collect::<Vec<_>>(),
        scene
            .actuators
            .iter()
            .map(|a| &a.actuator)
            .collect::<Vec<_>>(),
        scene.sensors.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        scene
            .goals
            .iter()
            .map(|g| (&g.goal, g.randomize.as_ref().map(|(r, _)| r)))
            .collect::<Vec<_>>(),
    );
    crc32fast::hash(format!("{authored:?}").as_bytes())
}

/// A scene's origin as a dataset records it: a built-in's `builtin:<name>`, a file's absolute path (the dataset
/// may be read from another directory).
fn absolute_scene(source: &str) -> String {
    if source.starts_with("builtin:") {
        return source.to_string();
    }
    // The file's real path where it exists (`a/../x.scn.ron` and `x.scn.ron` are one file), else as written.
    std::fs::canonicalize(source)
        .or_else(|_| std::path::absolute(source))
        .map_or_else(|_| source.to_string(), |p| p.display().to_string())
}

/// The `--task` argument that loads `scene`: a built-in's name, or the file as given.
fn task_argument(scene: &TaskScene) -> &str {
    scene
        .source
        .strip_prefix("builtin:")
        .unwrap_or(&scene.source)
}

/// One row to append.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// The state's observation.
    pub observation: &'a [f32],
    /// The action taken (zeros on a final row).
    pub action: &'a [f32],
    /// Reward of the step (see the module table).
    pub reward: f32,
    /// Success of the step (see the module table).
    pub success: bool,
    /// Whether this is the episode's final row.
    pub terminal: bool,
    /// Physics positions of the state.
    pub qpos: &'a [f32],
    /// Physics velocities of the state.
    pub qvel: &'a [f32],
}

impl DatasetRows {
    /// No rows yet, with these widths.
    pub fn new(obs_dim: usize, action_dim: usize, qpos_dim: usize, qvel_dim: usize) -> Self {
        Self {
            obs_dim,
            action_dim,
            qpos_dim,
            qvel_dim,
            ..Self::default()
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.terminals.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.terminals.is_empty()
    }

    /// Appends a row (widths must match; a programming error otherwise).
    pub fn push(&mut self, row: Row<'_>) {
        assert_eq!(row.observation.len(), self.obs_dim, "observation width");
        assert_eq!(row.action.len(), self.action_dim, "action width");
        assert_eq!(row.qpos.len(), self.qpos_dim, "qpos width");
        assert_eq!(row.qvel.len(), self.qvel_dim, "qvel width");
        self.observations.extend_from_slice(row.observation);
        self.actions.extend_from_slice(row.action);
        self.terminals.push(row.terminal);
        self.rewards.push(row.reward);
        self.masks.push(if row.success { 0.0 } else { 1.0 });
        self.successes.push(row.success);
        self.qpos.extend_from_slice(row.qpos);
        self.qvel.extend_from_slice(row.qvel);
    }

    /// Appends all rows of `other` (same widths).
    pub fn append(&mut self, other: &DatasetRows) {
        assert_eq!(
            (self.obs_dim, self.action_dim, self.qpos_dim, self.qvel_dim),
            (
                other.obs_dim,
                other.action_dim,
                other.qpos_dim,
                other.qvel_dim
            ),
            "row widths"
        );
        self.observations.extend_from_slice(&other.observations);
        self.actions.extend_from_slice(&other.actions);
        self.terminals.extend_from_slice(&other.terminals);
        self.rewards.extend_from_slice(&other.rewards);
        self.masks.extend_from_slice(&other.masks);
        self.successes.extend_from_slice(&other.successes);
        self.qpos.extend_from_slice(&other.qpos);
        self.qvel.extend_from_slice(&other.qvel);
    }

    /// The bytes one row takes: its float32 columns, reward and mask, and its two flags.
    pub fn row_bytes(&self) -> usize {
        (self.obs_dim + self.action_dim + self.qpos_dim + self.qvel_dim + 2) * 4 + 2
    }

    /// Makes room for `rows` more rows at once (a large dataset then holds no spare capacity); `false` where the
    /// memory cannot be had.
    pub fn try_reserve_exact(&mut self, rows: usize) -> bool {
        // Saturated, a count past memory is refused by the allocator.
        let values = |width: usize| rows.saturating_mul(width);
        self.observations
            .try_reserve_exact(values(self.obs_dim))
            .is_ok()
            && self
                .actions
                .try_reserve_exact(values(self.action_dim))
                .is_ok()
            && self.terminals.try_reserve_exact(rows).is_ok()
            && self.rewards.try_reserve_exact(rows).is_ok()
            && self.masks.try_reserve_exact(rows).is_ok()
            && self.successes.try_reserve_exact(rows).is_ok()
            && self.qpos.try_reserve_exact(values(self.qpos_dim)).is_ok()
            && self.qvel.try_reserve_exact(values(self.qvel_dim)).is_ok()
    }

    /// Drops every row, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.observations.clear();
        self.actions.clear();
        self.terminals.clear();
        self.rewards.clear();
        self.masks.clear();
        self.successes.clear();
        self.qpos.clear();
        self.qvel.clear();
    }
}

/// Writes `rows` to `path` in OGBench's npz layout, with `source` beside, atomically.
pub fn write_dataset(
    path: &Path,
    rows: &DatasetRows,
    source: &DatasetSource,
) -> anyhow::Result<()> {
    write_dataset_staged(path, rows, source)?.put_in_place()
}

/// Writes `rows` with `source` in OGBench's npz layout to a temporary file beside `path`, to be put in place
/// (see [`StagedFile`]). [`crate::files::cancel_writes`] stops it.
pub fn write_dataset_staged(
    path: &Path,
    rows: &DatasetRows,
    source: &DatasetSource,
) -> anyhow::Result<StagedFile> {
    let r = rows.len();
    // Views of the rows, written as they are: a copy would double a large dataset's memory.
    fn m2(data: &[f32], rows: usize, w: usize) -> Result<ArrayView2<'_, f32>, ShapeError> {
        ArrayView2::from_shape((rows, w), data)
    }
    let observations = m2(&rows.observations, r, rows.obs_dim)?;
    let actions = m2(&rows.actions, r, rows.action_dim)?;
    let qpos = m2(&rows.qpos, r, rows.qpos_dim)?;
    let qvel = m2(&rows.qvel, r, rows.qvel_dim)?;
    let source = serde_json::to_vec(source)?;
    write_staged(path, |file| {
        write_npz(file, |npz| {
            npz.add_array("observations", &observations)?;
            npz.add_array("actions", &actions)?;
            npz.add_array("terminals", &ArrayView1::from(&rows.terminals))?;
            npz.add_array("rewards", &ArrayView1::from(&rows.rewards))?;
            npz.add_array("masks", &ArrayView1::from(&rows.masks))?;
            npz.add_array("successes", &ArrayView1::from(&rows.successes))?;
            npz.add_array("qpos", &qpos)?;
            npz.add_array("qvel", &qvel)?;
            npz.add_array("source", &ArrayView1::from(&source))?;
            Ok(())
        })
    })
}

/// An npz archive's writer over [`Discarding`] (see why there).
type QuietNpz<W> = NpzWriter<BufWriter<Discarding<W>>>;

/// Writes a compressed npz archive of what `add` adds into `file`, then finishes it, also after an error; returns
/// the first error, the file's own where it gave one (a full disk) rather than the archive's wrapping of it.
fn write_npz<W: Write + Seek>(
    file: W,
    add: impl FnOnce(&mut QuietNpz<W>) -> Result<(), ndarray_npy::WriteNpzError>,
) -> anyhow::Result<()> {
    let mut npz = NpzWriter::new_compressed(BufWriter::new(Discarding::new(file)));
    let added = add(&mut npz);
    // Finished here in every case: dropped unfinished, the zip writer would finish in its `Drop`.
    let file = npz
        .finish()
        .map_err(anyhow::Error::from)
        .and_then(|writer| writer.into_inner().map_err(|e| e.into_error().into()));
    match (added, file) {
        (Ok(()), Ok(file)) => Ok(file.into_result()?),
        (Err(e), Ok(file)) => {
            file.into_result()?;
            Err(e.into())
        }
        (Err(e), Err(_)) => Err(e.into()),
        (Ok(()), Err(e)) => Err(e),
    }
}

/// The file under an npz writer. The zip writer, dropped unfinished after an error, finishes the archive in its
/// `Drop`, fails again and prints that failure to stderr itself ("ZipWriter drop failed: ..."), before the error
/// is reported. So after the first error (kept, to report), and once [`crate::files::cancel_writes`] is called,
/// this writer takes every write without writing it: the archive, discarded anyway, then finishes quietly.
struct Discarding<W> {
    inner: W,
    /// Position and length as the writer sees them (kept up after an error, for its seeks).
    pos: u64,
    len: u64,
    failed: Option<std::io::Error>,
}

impl<W: Write + Seek> Discarding<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            pos: 0,
            len: 0,
            failed: None,
        }
    }

    /// The first error, if one happened.
    fn into_result(self) -> std::io::Result<()> {
        self.failed.map_or(Ok(()), Err)
    }

    /// Keeps `e` as the first error and hands the writer a copy to stop on.
    fn fail(&mut self, e: std::io::Error) -> std::io::Error {
        let copy = std::io::Error::new(e.kind(), e.to_string());
        self.failed = Some(e);
        copy
    }
}

impl<W: Write + Seek> Write for Discarding<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed.is_none() && crate::files::writes_cancelled() {
            return Err(self.fail(std::io::Error::other(crate::files::Cancelled)));
        }
        let n = if self.failed.is_some() {
            buf.len()
        } else {
            match self.inner.write(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
                Err(e) => return Err(self.fail(e)),
            }
        };
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.inner.flush().map_err(|e| self.fail(e))
    }
}

impl<W: Write + Seek> Seek for Discarding<W> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if self.failed.is_none() {
            self.pos = self.inner.seek(to).map_err(|e| self.fail(e))?;
            return Ok(self.pos);
        }
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

/// A dataset as transitions, the way OGBench's regular loader returns them: final-state rows dropped,
/// `next_observations` taken from the following row, `terminals` = 1 on each episode's last transition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Observation width.
    pub obs_dim: usize,
    /// Action width.
    pub action_dim: usize,
    /// Number of episodes.
    pub episodes: usize,
    /// `[N * obs_dim]`.
    pub observations: Vec<f32>,
    /// `[N * action_dim]`.
    pub actions: Vec<f32>,
    /// `[N * obs_dim]`.
    pub next_observations: Vec<f32>,
    /// `[N]`.
    pub rewards: Vec<f32>,
    /// `[N]`: 0 where the transition reached success.
    pub masks: Vec<f32>,
    /// `[N]`: 1 on each episode's last transition.
    pub terminals: Vec<f32>,
    /// CRC-32 of the file's bytes: what a resumed run checks to know it trains on the same data.
    pub crc32: u32,
    /// Where it came from, when the file says (`qamlab collect` writes it; OGBench's files do not).
    pub source: Option<DatasetSource>,
}

impl Dataset {
    /// How many transitions reach success (mask 0: bootstrapping stops there).
    pub fn transitions_at_success(&self) -> usize {
        self.masks.iter().filter(|&&m| m == 0.0).count()
    }

    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether it holds no transitions.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Refuses the dataset read from `path` for training with action chunks of `horizon` transitions if it
    /// holds fewer than one (what `qamlab train` says, and `qamlab dataset` too).
    pub fn check_holds_a_chunk(&self, path: &Path, horizon: usize) -> anyhow::Result<()> {
        ensure!(
            self.len() >= horizon,
            "dataset {}: {} transitions, fewer than one action chunk of horizon_length = {horizon}",
            path.display(),
            self.len()
        );
        Ok(())
    }

    /// Checks that the dataset read from `path` is data of `scene`'s task (`spec` its envs): its widths, and,
    /// where the file records its source, its observation and action columns. `Ok` with a note, for the caller to
    /// show, where the columns agree but the data may still be another's (another task's or another version of
    /// the scene's), or where the file does not say.
    pub fn check_fits(
        &self,
        path: &Path,
        scene: &TaskScene,
        spec: &qamlab_sim::EnvSpec,
    ) -> anyhow::Result<Option<String>> {
        let file = path.display();
        let task = &spec.task;
        let remedy = format!(
            "collect a dataset of this task with `qamlab collect --task {}` (where the oracle drives it; otherwise \
             train it online, without a dataset)",
            task_argument(scene)
        );
        ensure!(
            (self.obs_dim, self.action_dim) == (spec.obs_dim, spec.action_dim),
            "dataset {file}: observations are {}-D and actions {}-D, but task {task} has {}-D observations and {}-D \
             actions{}; {remedy}",
            self.obs_dim,
            self.action_dim,
            spec.obs_dim,
            spec.action_dim,
            self.source
                .as_ref()
                .map(|s| format!(" (the dataset was collected on task {})", s.task))
                .unwrap_or_default()
        );
        let Some(source) = &self.source else {
            return Ok(Some(format!(
                "dataset {file} does not record the task it was collected on (a file of another tool, or of qamlab \
                 before 2026-12-06): only its widths are checked against task {task}"
            )));
        };
        let collected_on = match &source.scene {
            Some(from) => format!("task {} (scene {from})", source.task),
            None => format!("task {}", source.task),
        };
        for (what, theirs, ours) in [
            ("observation", &source.observations, &spec.obs_names),
            ("action", &source.actions, &spec.action_names),
        ] {
            if let Some(k) = (0..ours.len()).find(|&k| theirs.get(k) != Some(&ours[k])) {
                bail!(
                    "dataset {file} was collected on {collected_on}, whose {what}s are not those of task {task} here \
                     (scene {}): {what} {k} is `{}` there and `{}` here; {remedy}",
                    scene.source,
                    theirs.get(k).map_or("missing", String::as_str),
                    ours[k]
                );
            }
        }
        if source.task != *task {
            return Ok(Some(format!(
                "dataset {file} was collected on task {}, not {task}; its observations and actions have the same \
                 names, so it trains as if they mean the same",
                source.task
            )));
        }
        let changed = source.fingerprint_version == FINGERPRINT_VERSION
            && source
                .scene_fingerprint
                .is_some_and(|f| f != scene_fingerprint(scene));
        Ok(changed.then(|| {
            let scenes = match source.scene.as_deref() {
                Some(then) if absolute_scene(then) == absolute_scene(&scene.source) => {
                    format!("its file {then} has changed since")
                }
                Some(then) => format!("{then}; here {}", scene.source),
                None => format!("here {}", scene.source),
            };
            format!(
                "dataset {file} was collected on another version of task {task}'s scene ({scenes}): its observations \
                 and actions have the same names, so it trains as if the scenes behaved alike"
            )
        }))
    }
}

/// Why `bytes` do not open as an npz archive, as far as their start tells.
fn not_npz(file: impl std::fmt::Display, bytes: &[u8]) -> String {
    if bytes.starts_with(b"PK\x03\x04") {
        format!(
            "dataset {file}: a zip archive (as an npz is) without its directory at the end: the file is cut short \
             (an interrupted copy or download?) or damaged"
        )
    } else {
        format!("dataset {file}: not an npz archive (an npz is a zip file, which begins with `PK`)")
    }
}

/// The arrays a dataset is read from (other keys, like `qpos`, are left alone).
const LOADED_KEYS: [&str; 5] = ["observations", "actions", "terminals", "rewards", "masks"];

/// The shapes the `.npy` headers of the loaded arrays claim, read without reading the arrays. Refuses a header
/// that claims more data than its archive entry can hold: the reader allocates what the header claims before
/// reading, so a damaged header would otherwise abort the process.
fn array_shapes(archive: &[u8], file: &str) -> anyhow::Result<Vec<(String, Vec<u64>)>> {
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
        if !LOADED_KEYS.contains(&key.as_str()) {
            continue;
        }
        let packed = entry.compressed_size().min(real);
        let room = match entry.compression() {
            zip::CompressionMethod::Stored => entry.size().min(packed),
            _ => entry.size().min(packed.saturating_mul(MAX_DEFLATE_RATIO)),
        };
        let mut head = [0u8; 10];
        let shape = entry
            .read_exact(&mut head)
            .ok()
            .and_then(|()| {
                // Magic, version, then the header's length: 2 bytes in version 1, 4 in versions 2 and 3.
                let len = match head[6] {
                    1 => usize::from(u16::from_le_bytes([head[8], head[9]])),
                    _ => {
                        let mut more = [0u8; 2];
                        entry.read_exact(&mut more).ok()?;
                        u32::from_le_bytes([head[8], head[9], more[0], more[1]]) as usize
                    }
                };
                let mut header = vec![0u8; len.min(1 << 16)];
                entry.read_exact(&mut header).ok()?;
                npy_shape(&String::from_utf8_lossy(&header))
            })
            .with_context(|| format!("dataset {file}: key `{key}`: not a readable .npy array"))?;
        let elements = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .unwrap_or(u64::MAX);
        // The smallest element the loader reads is a 1-byte bool.
        ensure!(
            elements <= room,
            "dataset {file}: key `{key}`: its header claims shape {shape:?}, more values than the {room} bytes \
             its archive entry holds: the file is damaged"
        );
        shapes.push((key, shape));
    }
    Ok(shapes)
}

/// The `shape` tuple of an `.npy` header dictionary, like `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }`.
fn npy_shape(header: &str) -> Option<Vec<u64>> {
    let start = header.find("'shape':")? + "'shape':".len();
    let rest = header[start..].trim_start().strip_prefix('(')?;
    let inside = &rest[..rest.find(')')?];
    inside
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect()
}

/// Reads a dataset written by [`write_dataset`] (or any OGBench-layout npz with `rewards` and `masks`) as
/// transitions. Errors name the file, the key and the expected dtype and shape.
pub fn load_dataset(path: impl AsRef<Path>) -> anyhow::Result<Dataset> {
    let path = path.as_ref();
    let file = path.display();
    // Read whole once: the archive is parsed from memory and its checksum taken from the same bytes.
    let bytes = crate::files::read_regular_file(path, "dataset", None)?;
    ensure!(!bytes.is_empty(), "dataset {file} is empty (0 bytes)");
    ensure!(
        !bytes.starts_with(b"\x93NUMPY"),
        "dataset {file} is a single .npy array; a dataset is an .npz archive of arrays ({})",
        LOADED_KEYS.join(", ")
    );
    let mut npz = NpzReader::new(Cursor::new(&bytes)).with_context(|| not_npz(&file, &bytes))?;
    let names = npz
        .names()
        .with_context(|| format!("dataset {file}: reading the archive index"))?;
    // OGBench's files store each episode's final state as a row of its own; a file holding `next_observations`
    // is in the transition form its loader returns, where `terminals` means something else.
    ensure!(
        !names
            .iter()
            .any(|n| n.trim_end_matches(".npy") == "next_observations"),
        "dataset {file}: key `next_observations`: this file holds transitions with their next observations \
         (the form OGBench's loader returns), but datasets are read in OGBench's on-disk layout, where each \
         episode ends with a row of its final state marked in `terminals` (what `qamlab collect` writes)"
    );
    for key in LOADED_KEYS {
        // OGBench's own files hold no rewards or masks: its loader derives them from its MuJoCo tasks.
        let extra = if matches!(key, "rewards" | "masks") {
            "; `qamlab collect` writes it beside OGBench's keys"
        } else {
            ""
        };
        ensure!(
            names.iter().any(|n| n == key || *n == format!("{key}.npy")),
            "dataset {file}: key `{key}` is missing (found: {}){extra}",
            names.join(", ")
        );
    }
    array_shapes(&bytes, &file.to_string())?;
    let observations: Array2<f32> = read_floats(&mut npz, "observations", "[N, obs_dim]")
        .with_context(|| format!("dataset {file}"))?;
    let actions: Array2<f32> = read_floats(&mut npz, "actions", "[N, action_dim]")
        .with_context(|| format!("dataset {file}"))?;
    let terminals = read_flags(&mut npz, "terminals").with_context(|| format!("dataset {file}"))?;
    let rewards: Array1<f32> =
        read_floats(&mut npz, "rewards", "[N]").with_context(|| format!("dataset {file}"))?;
    let masks: Array1<f32> =
        read_floats(&mut npz, "masks", "[N]").with_context(|| format!("dataset {file}"))?;
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
    let (o, a) = (observations.ncols(), actions.ncols());
    let obs = observations.as_standard_layout();
    let act = actions.as_standard_layout();
    let (obs, act) = (
        obs.as_slice().expect("standard layout"),
        act.as_slice().expect("standard layout"),
    );
    let source = if names.iter().any(|n| n == "source" || n == "source.npy") {
        Some(read_source(&mut npz, o, a).with_context(|| format!("dataset {file}: key `source`"))?)
    } else {
        None
    };
    let mut d = Dataset {
        obs_dim: o,
        action_dim: a,
        crc32: crc32fast::hash(&bytes),
        source,
        ..Dataset::default()
    };
    let mut outside = 0;
    for t in 0..rows {
        if terminals[t] {
            d.episodes += 1;
            continue;
        }
        // A non-terminal row always has a next row: the last row is terminal (checked above). Its observation
        // and the next row's are used, the other keys at this row only.
        for (key, values, width) in [
            ("observations", &obs[t * o..(t + 2) * o], o),
            ("actions", &act[t * a..(t + 1) * a], a),
            ("rewards", std::slice::from_ref(&rewards[t]), 1),
            ("masks", std::slice::from_ref(&masks[t]), 1),
        ] {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!(
                    "dataset {file}: key `{key}` holds a non-finite value ({}) at row {}",
                    values[i],
                    t + i / width
                );
            }
        }
        outside += act[t * a..(t + 1) * a]
            .iter()
            .filter(|u| u.abs() > 1.0)
            .count();
        // A mask multiplies the bootstrapped value: anything but 0 or 1 would scale the TD target silently.
        ensure!(
            masks[t] == 0.0 || masks[t] == 1.0,
            "dataset {file}: key `masks` holds {} at row {t}: expected 0 (success, no bootstrapping) or 1",
            masks[t]
        );
        d.observations.extend_from_slice(&obs[t * o..(t + 1) * o]);
        // As OGBench's standard loader: actions strictly inside (-1, 1).
        d.actions.extend(
            act[t * a..(t + 1) * a]
                .iter()
                .map(|u| u.clamp(-1.0 + 1e-5, 1.0 - 1e-5)),
        );
        d.next_observations
            .extend_from_slice(&obs[(t + 1) * o..(t + 2) * o]);
        d.rewards.push(rewards[t]);
        d.masks.push(masks[t]);
        d.terminals.push(if terminals[t + 1] { 1.0 } else { 0.0 });
    }
    if outside > 0 {
        tracing::warn!(
            "dataset {file}: {outside} action values lie outside [-1, 1]; training clips them (as OGBench's \
             loader does), but data recorded in other units would be silently wrong"
        );
    }
    Ok(d)
}

/// Reads the `source` key: JSON text as uint8 bytes, naming as many columns as the arrays hold.
fn read_source(
    npz: &mut NpzReader<Cursor<&Vec<u8>>>,
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
    let source: DatasetSource = serde_json::from_slice(&bytes.to_vec()).with_context(|| {
        format!("expected JSON text with task, observations, actions, collected_with and qamlab {REMEDY}")
    })?;
    ensure!(
        (source.observations.len(), source.actions.len()) == (obs_dim, action_dim),
        "names {} observation and {} action columns, but the arrays hold {obs_dim} and {action_dim} {REMEDY}",
        source.observations.len(),
        source.actions.len()
    );
    Ok(source)
}

/// Reads number array `key` as float32: float32 as stored; float64 (numpy's default) and integers converted.
fn read_floats<D: ndarray::Dimension>(
    npz: &mut NpzReader<Cursor<&Vec<u8>>>,
    key: &str,
    shape: &str,
) -> anyhow::Result<ndarray::Array<f32, D>> {
    let error = match npz.by_name::<ndarray::OwnedRepr<f32>, D>(key) {
        Ok(array) => return Ok(array),
        Err(e) => e,
    };
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
    // Whole numbers (numpy's default for them: masks or rewards written as integers).
    if let Ok(array) = npz.by_name::<ndarray::OwnedRepr<i64>, D>(key) {
        return Ok(array.mapv(|v| v as f32));
    }
    if let Ok(array) = npz.by_name::<ndarray::OwnedRepr<i32>, D>(key) {
        return Ok(array.mapv(|v| v as f32));
    }
    Err(error).with_context(|| {
        format!("key `{key}`: expected float32 or float64 {shape} (or whole numbers)")
    })
}

/// Reads flag array `key` (`[N]`): bool as OGBench stores it, or numbers that are all 0 or 1.
fn read_flags(npz: &mut NpzReader<Cursor<&Vec<u8>>>, key: &str) -> anyhow::Result<Array1<bool>> {
    let error = match npz.by_name::<ndarray::OwnedRepr<bool>, ndarray::Ix1>(key) {
        Ok(array) => return Ok(array),
        Err(e) => e,
    };
    let numbers = as_f64(npz, key, |v: f32| v.into())
        .or_else(|| as_f64(npz, key, |v: f64| v))
        .or_else(|| as_f64(npz, key, |v: i64| v as f64))
        .or_else(|| as_f64(npz, key, |v: i32| v.into()))
        .or_else(|| as_f64(npz, key, |v: u8| v.into()))
        .or_else(|| as_f64(npz, key, |v: i8| v.into()));
    let Some(numbers) = numbers else {
        return Err(error)
            .with_context(|| format!("key `{key}`: expected bool [N] (or 0/1 numbers)"));
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

/// Array `key` read as `[N]` values of type `T`, each widened to f64; `None` when it is not of that type.
fn as_f64<T: ndarray_npy::ReadableElement + Copy>(
    npz: &mut NpzReader<Cursor<&Vec<u8>>>,
    key: &str,
    widen: impl Fn(T) -> f64,
) -> Option<Vec<f64>> {
    let array = npz
        .by_name::<ndarray::OwnedRepr<T>, ndarray::Ix1>(key)
        .ok()?;
    Some(array.iter().map(|&v| widen(v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_keeps_its_fingerprint() {
        // Edits of cube-single.scn.ron change this number rightly: update it. A change with the scene as it was
        // means qamlab changed the fingerprint of unchanged scenes: bump FINGERPRINT_VERSION too.
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        assert_eq!(format!("{:08x}", scene_fingerprint(&scene)), "c626ff80");
        // What loading computes and the file's path are no part of it; what the author wrote is.
        let mut moved = scene.clone();
        moved.source = "elsewhere/cube.scn.ron".into();
        moved.joints[0].frame1 = moved.joints[0].frame2;
        assert_eq!(scene_fingerprint(&moved), scene_fingerprint(&scene));
        moved.goals[0].goal.tolerance = 0.05;
        assert_ne!(scene_fingerprint(&moved), scene_fingerprint(&scene));
    }

    /// An uncompressed npz of two 3-row episodes with 3-D observations and 2-D actions; `masks` as given.
    fn npz_bytes(masks: [f32; 6]) -> Vec<u8> {
        let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
        npz.add_array("observations", &Array2::<f32>::zeros((6, 3)))
            .unwrap();
        npz.add_array("actions", &Array2::<f32>::zeros((6, 2)))
            .unwrap();
        let terminals = Array1::from(vec![false, false, true, false, false, true]);
        npz.add_array("terminals", &terminals).unwrap();
        npz.add_array("rewards", &Array1::<f32>::zeros(6)).unwrap();
        npz.add_array("masks", &Array1::from(masks.to_vec()))
            .unwrap();
        npz.finish().unwrap().into_inner()
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

    /// An uncompressed npz of two 3-row episodes (3-D observations, 2-D actions) whose arrays `change` may
    /// replace or add to: it gets the writer after the keys it names were left out.
    fn npz_with(skip: &[&str], change: impl FnOnce(&mut NpzWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
        let obs = Array2::from_shape_fn((6, 3), |(r, c)| (r * 3 + c) as f32 / 10.0);
        let terminals = Array1::from(vec![false, false, true, false, false, true]);
        if !skip.contains(&"observations") {
            npz.add_array("observations", &obs).unwrap();
        }
        if !skip.contains(&"actions") {
            npz.add_array("actions", &Array2::<f32>::from_elem((6, 2), 0.5))
                .unwrap();
        }
        if !skip.contains(&"terminals") {
            npz.add_array("terminals", &terminals).unwrap();
        }
        npz.add_array("rewards", &Array1::<f32>::zeros(6)).unwrap();
        if !skip.contains(&"masks") {
            npz.add_array("masks", &Array1::<f32>::ones(6)).unwrap();
        }
        change(&mut npz);
        npz.finish().unwrap().into_inner()
    }

    fn load_bytes(bytes: &[u8]) -> anyhow::Result<Dataset> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        std::fs::write(&path, bytes).unwrap();
        load_dataset(&path)
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
                ..wide
            },
            good
        );
        // Whole-number masks (numpy's integers) read as the same values.
        let int_masks = npz_with(&["masks"], |npz| {
            npz.add_array("masks", &Array1::<i64>::ones(6)).unwrap();
        });
        assert_eq!(load_bytes(&int_masks).unwrap().masks, good.masks);
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
        let err = load_bytes(&npz_with(&["actions"], |npz| {
            npz.add_array("actions", &Array2::<i16>::zeros((6, 2)))
                .unwrap();
        }))
        .unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("key `actions`: expected float32 or float64 [N, action_dim]"),
            "{err:#}"
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

    /// A file that takes `room` bytes, then fails as a full disk does.
    struct FullDisk {
        file: Cursor<Vec<u8>>,
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.file.position() as usize + buf.len() > self.room {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            self.file.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FullDisk {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.file.seek(to)
        }
    }

    #[test]
    fn a_full_disk_is_the_error_and_the_archive_finishes_quietly() {
        let values = Array1::from_shape_fn(100_000, |i| (i as f32).sin());
        let add = |npz: &mut QuietNpz<&mut FullDisk>| npz.add_array("values", &values);
        let mut disk = FullDisk {
            file: Cursor::new(Vec::new()),
            room: 1 << 30,
        };
        write_npz(&mut disk, add).unwrap();
        let whole = disk.file.get_ref().len();
        // Full half-way: the disk's own error, and the writer finished (a zip writer dropped unfinished would
        // print "ZipWriter drop failed" from its `Drop`, which `qamlab collect`'s test looks for).
        let mut disk = FullDisk {
            file: Cursor::new(Vec::new()),
            room: whole / 2,
        };
        let err = write_npz(&mut disk, add).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("No space left on device"),
            "{err:#}"
        );
        assert!(disk.file.get_ref().len() <= whole / 2);
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_before_reading() {
        for (path, what) in [("/dev/zero", "a device"), ("/tmp", "a folder")] {
            let err = format!("{:#}", load_dataset(path).unwrap_err());
            assert_eq!(
                err,
                format!("dataset {path} is {what}, not a regular file: give the path of a file")
            );
        }
    }

    #[test]
    fn a_dataset_shorter_than_a_chunk_is_named_with_the_horizon() {
        let data = load_bytes(&npz_bytes([1.0; 6])).unwrap();
        data.check_holds_a_chunk(Path::new("d.npz"), 4).unwrap();
        let err = data.check_holds_a_chunk(Path::new("d.npz"), 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset d.npz: 4 transitions, fewer than one action chunk of horizon_length = 5"
        );
    }
}
