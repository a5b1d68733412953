//! Small npz archives the tests of reading build in memory, and a loader of such bytes.

use std::io::{Cursor, Write};

use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;

use super::{Dataset, load_dataset};

/// An uncompressed npz of two 3-row episodes with 3-D observations and 2-D actions; `masks` as given.
pub(super) fn npz_bytes(masks: [f32; 6]) -> Vec<u8> {
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

/// An uncompressed npz of two 3-row episodes (3-D observations, 2-D actions) whose arrays `change` may
/// replace or add to: it gets the writer after the keys it names were left out.
pub(super) fn npz_with(
    skip: &[&str],
    change: impl FnOnce(&mut NpzWriter<Cursor<Vec<u8>>>),
) -> Vec<u8> {
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

/// Reads `bytes` as a dataset, through a file in a temporary directory.
pub(super) fn load_bytes(bytes: &[u8]) -> anyhow::Result<Dataset> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npz");
    std::fs::write(&path, bytes).unwrap();
    load_dataset(&path)
}

/// `.npy` bytes of dtype `descr` (`<f4`), in Fortran order or not, of `shape`, holding `data` as it is.
pub(super) fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let comma = if shape.len() == 1 { "," } else { "" };
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {order}, 'shape': ({}{comma}), }}",
        dims.join(", ")
    );
    // numpy pads the header with spaces and a newline to a multiple of 64 bytes.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// [`npz_with`]'s archive (the keys in `skip` left out) with `entries` added as they are, each a name and its
/// bytes, compressed with deflate where `deflate`.
pub(super) fn npz_with_entries(
    skip: &[&str],
    entries: &[(&str, Vec<u8>)],
    deflate: bool,
) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new_append(Cursor::new(npz_with(skip, |_| {}))).unwrap();
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    for (name, bytes) in entries {
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Where the data of entry `name` lies in `archive` (compressed, as stored).
pub(super) fn entry_data(archive: &[u8], name: &str) -> std::ops::Range<usize> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let entry = zip.by_name(name).unwrap();
    let start = entry.data_start() as usize;
    start..start + entry.compressed_size() as usize
}
