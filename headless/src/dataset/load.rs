//! Reading an npz archive as a [`Dataset`]: its `.npy` headers checked before allocating, its arrays read in
//! the dtypes numpy writes, its values checked, its rows turned into transitions.

use std::io::{Cursor, Read};
use std::path::Path;

use anyhow::{Context, bail, ensure};
use ndarray::{Array1, Array2};
use ndarray_npy::NpzReader;

use super::{Dataset, DatasetSource};

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

/// Reads a dataset written by [`write_dataset`](super::write_dataset) (or any OGBench-layout npz with `rewards`
/// and `masks`) as transitions. Errors name the file, the key and the expected dtype and shape.
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
    use crate::dataset::test_npz::{load_bytes, npz_bytes, npz_with};

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
}
