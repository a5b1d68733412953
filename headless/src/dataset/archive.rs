//! Whether an npz archive is whole, whatever keys loading reads: every entry's CRC-32, each key stored once, the
//! directory agreeing with the entries' own headers, each `.npy` header with the data after it.
//!
//! A zip entry's CRC-32 is checked only where the entry is read to its end, and loading reads only the arrays it
//! trains on: damage in another key (`qpos`, `qvel`, a key of OGBench's) would pass unnoticed though the file is
//! no longer what was written. Inflating the entries loading does not read (`qpos` and `qvel`, the largest keys of
//! `qamlab collect`'s files) takes about 1.4 s of a core a million rows, more than reading the others (0.9 s), so
//! loading runs it beside the reading; a small part of a training run either way.

use std::io::{Cursor, Read};

use anyhow::{Context, bail, ensure};

use super::npy::NpyHeader;

/// The end of the message naming a damaged entry: the way out.
pub(super) const RECOPY: &str = "copy the file again, or collect it again";

/// The key an entry's name stores (numpy's: the name less one `.npy`).
fn key_of(name: &str) -> &str {
    name.strip_suffix(".npy").unwrap_or(name)
}

/// Refuses an archive of which an entry is damaged (its CRC-32, its length, its `.npy` header's claims), a key
/// stored twice, or a directory that names another entry than the entry's own header. The data of the keys in
/// `read_whole` is left to their reader, which reads them to their end (checking their CRC-32) and refuses data of
/// another length than their header's; `file` names the archive in errors.
pub(super) fn check_archive(archive: &[u8], file: &str, read_whole: &[&str]) -> anyhow::Result<()> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive))
        .with_context(|| format!("dataset {file}: reading the archive index"))?;
    check_keys_once(archive, zip.central_directory_start(), file)?;
    for index in 0..zip.len() {
        let entry = zip
            .by_index(index)
            .with_context(|| format!("dataset {file}: reading the archive index"))?;
        let key = key_of(entry.name()).to_string();
        check_local_name(archive, entry.header_start(), entry.name_raw())
            .with_context(|| format!("dataset {file}: key `{key}`"))?;
        if !read_whole.contains(&key.as_str()) {
            check_entry(entry).with_context(|| format!("dataset {file}: key `{key}`"))?;
        }
    }
    Ok(())
}

/// The `len` bytes of `archive` at `at`, where it holds them.
fn bytes_at(archive: &[u8], at: u64, len: usize) -> Option<&[u8]> {
    let at = usize::try_from(at).ok()?;
    archive.get(at..at.checked_add(len)?)
}

/// The little-endian `u16` at `at` of `bytes`, a record's length field.
fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// Refuses a key stored under two entries of the directory that starts at `start` (the zip reader keeps one of
/// them, unsaid): an archive appended to, or `observations` beside `observations.npy`.
fn check_keys_once(archive: &[u8], start: u64, file: &str) -> anyhow::Result<()> {
    let mut seen: std::collections::HashMap<&[u8], &[u8]> = std::collections::HashMap::new();
    let mut at = start;
    // Each record: 46 fixed bytes (the name's, extra field's and comment's lengths at 28, 30 and 32), then those.
    while let Some(record) = bytes_at(archive, at, 46).filter(|r| r.starts_with(b"PK\x01\x02")) {
        let name = bytes_at(archive, at + 46, u16_at(record, 28)).with_context(|| {
            format!("dataset {file}: the archive's directory is cut short: {RECOPY}")
        })?;
        let key = name.strip_suffix(b".npy").unwrap_or(name);
        if let Some(first) = seen.insert(key, name) {
            let names = if first == name {
                "twice under one name".to_string()
            } else {
                format!(
                    "as `{}` and `{}`",
                    String::from_utf8_lossy(first),
                    String::from_utf8_lossy(name)
                )
            };
            bail!(
                "dataset {file}: key `{}` is stored {names} in the archive (a file appended to, or damaged): \
                 which of the two is meant is unclear; write the file again with each key once",
                String::from_utf8_lossy(key)
            );
        }
        at += (46 + u16_at(record, 28) + u16_at(record, 30) + u16_at(record, 32)) as u64;
    }
    Ok(())
}

/// Refuses an entry whose own (local) header, at `start`, names another entry than the directory does (`name`):
/// the directory points at the wrong data, which numpy refuses too.
fn check_local_name(archive: &[u8], start: u64, name: &[u8]) -> anyhow::Result<()> {
    // 30 fixed bytes, the name's length at 26, then the name.
    let local = bytes_at(archive, start, 30)
        .and_then(|header| bytes_at(archive, start + 30, u16_at(header, 26)));
    if local != Some(name) {
        bail!(
            "the archive's directory points at an entry whose own header names {}: the file is damaged; {RECOPY}",
            local.map_or_else(
                || "nothing".to_string(),
                |l| format!("`{}`", String::from_utf8_lossy(l))
            )
        );
    }
    Ok(())
}

/// Reads `entry` to its end, so that the zip reader checks its CRC-32; refuses it where that fails, where it
/// holds another length than its directory says, or where its `.npy` header claims another length of data.
fn check_entry(mut entry: zip::read::ZipFile<'_, Cursor<&[u8]>>) -> anyhow::Result<()> {
    let declared = entry.size();
    let damaged =
        |e: std::io::Error| anyhow::anyhow!("its archive entry is damaged ({e}): {RECOPY}");
    // The header is parsed from the bytes read first, then the rest is streamed: nothing is sized by a claim.
    let mut start = Vec::new();
    (&mut entry)
        .take(1 << 17)
        .read_to_end(&mut start)
        .map_err(damaged)?;
    let mut total = start.len() as u64;
    let mut buffer = vec![0u8; 1 << 16];
    // No further than a byte past the declared size: the zip reader inflates to the stream's end, however far
    // that is (a few bytes declared, gigabytes of zeros inflated).
    let mut rest = (&mut entry).take(declared.saturating_add(1).saturating_sub(total));
    loop {
        match rest.read(&mut buffer).map_err(damaged)? {
            0 => break,
            n => total += n as u64,
        }
    }
    ensure!(
        total <= declared,
        "its archive entry is damaged (it holds more than the {declared} bytes the archive's directory says): \
         {RECOPY}"
    );
    ensure!(
        total == declared,
        "its archive entry is damaged (it holds {total} bytes where the archive's directory says {declared}): \
         {RECOPY}"
    );
    let Some(header) = NpyHeader::read(&mut start.as_slice()) else {
        // Not an array: a key nobody reads may hold anything, its checksum aside.
        return Ok(());
    };
    if let (Some(expected), Some(shape)) = (header.data_len(), header.shape()) {
        let held = total.saturating_sub(header.len);
        ensure!(
            held == expected,
            "its header claims shape {shape:?} of {} ({expected} bytes), but {held} bytes of data follow it: \
             the file is damaged; {RECOPY}",
            header.dtype().unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dataset::test_npz::{entry_data, load_bytes, npy, npz_with_entries};

    /// `.npy` bytes of a `[6, width]` float32 array of ones.
    fn ones(width: usize) -> Vec<u8> {
        npy(
            "<f4",
            false,
            &[6, width],
            &1f32.to_le_bytes().repeat(6 * width),
        )
    }

    #[test]
    fn a_damaged_entry_that_loading_does_not_read_is_named() {
        // Compressed, as `qamlab collect` and numpy write them: `qpos` as loading finds it, and a key it ignores.
        for name in ["qpos.npy", "button_states.npy"] {
            let mut bytes = npz_with_entries(&[], &[(name, ones(14))], true);
            load_bytes(&bytes).unwrap();
            let data = entry_data(&bytes, name);
            bytes[data.start + data.len() / 2] ^= 0x10;
            let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
            let key = name.trim_end_matches(".npy");
            assert!(
                err.starts_with("dataset ")
                    && err.contains(&format!(
                        "d.npz: key `{key}`: its archive entry is damaged ("
                    ))
                    && err.ends_with("copy the file again, or collect it again"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_damaged_source_record_is_called_damaged() {
        let text = br#"{"task":"t","observations":["a","b","c"],"actions":["x","y"],"collected_with":"c","qamlab":"0"}"#;
        let mut bytes = npz_with_entries(
            &[],
            &[("source.npy", npy("|u1", false, &[text.len()], text))],
            false,
        );
        load_bytes(&bytes).unwrap();
        // Stored as it is: a bit of the record flipped fails the entry's CRC-32.
        let at = bytes.windows(6).position(|w| w == b"\"task\"").unwrap();
        bytes[at + 2] ^= 1;
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains("d.npz: key `source`: its archive entry is damaged (")
                && err.contains("checksum"),
            "{err}"
        );
    }

    #[test]
    fn a_key_stored_twice_is_refused() {
        // Names of one length, made one afterwards: the zip writer refuses a name twice, an appending tool does not.
        for (written, made, said) in [
            (
                "observationz.npy",
                "observations.npy",
                "stored twice under one name",
            ),
            (
                "observat.npy",
                "observations",
                "stored as `observations.npy` and `observations`",
            ),
        ] {
            let mut bytes = npz_with_entries(&[], &[(written, ones(3))], false);
            let starts: Vec<usize> = (0..bytes.len())
                .filter(|&i| bytes[i..].starts_with(written.as_bytes()))
                .collect();
            assert_eq!(starts.len(), 2, "the local header's and the directory's");
            for at in starts {
                bytes[at..at + made.len()].copy_from_slice(made.as_bytes());
            }
            let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
            assert!(
                err.contains(&format!(
                    "d.npz: key `observations` is {said} in the archive"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_directory_naming_another_entry_than_its_header_is_refused() {
        let mut bytes = npz_with_entries(
            &[],
            &[("qpos.npy", ones(14)), ("qvel.npy", ones(12))],
            false,
        );
        // The first `qvel.npy` is its local header's name: the directory still says `qvel`.
        let at = bytes.windows(8).position(|w| w == b"qvel.npy").unwrap();
        bytes[at..at + 8].copy_from_slice(b"qpos.npy");
        let err = format!("{:#}", load_bytes(&bytes).unwrap_err());
        assert!(
            err.contains(
                "d.npz: key `qvel`: the archive's directory points at an entry whose own header names `qpos.npy`: \
                 the file is damaged"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_header_claiming_another_length_than_its_data_is_refused() {
        // 6 rows of data under a header of 3: numpy reads the first 3 and says nothing.
        let qpos = npy("<f4", false, &[3, 14], &1f32.to_le_bytes().repeat(6 * 14));
        let err = format!(
            "{:#}",
            load_bytes(&npz_with_entries(&[], &[("qpos.npy", qpos)], true)).unwrap_err()
        );
        assert!(
            err.contains(
                "d.npz: key `qpos`: its header claims shape [3, 14] of float32 (168 bytes), but 336 bytes of data \
                 follow it: the file is damaged"
            ),
            "{err}"
        );
        // An array of pickled objects has no length to check.
        load_bytes(&npz_with_entries(
            &[],
            &[("notes.npy", npy("|O", false, &[2], b"pickle"))],
            true,
        ))
        .unwrap();
    }

    #[test]
    fn an_entry_longer_than_its_directory_says_is_refused() {
        let bytes = npz_with_entries(&[], &[("qpos.npy", ones(14))], false);
        let held = ones(14).len() as u32;
        let mut patched = bytes.clone();
        // The uncompressed size in the directory's record of `qpos` (at byte 24; its name at 46).
        let record = (0..bytes.len())
            .find(|&i| {
                bytes[i..].starts_with(b"PK\x01\x02") && bytes[i + 46..].starts_with(b"qpos.npy")
            })
            .unwrap();
        assert_eq!(bytes[record + 24..record + 28], held.to_le_bytes());
        patched[record + 24..record + 28].copy_from_slice(&(held - 4).to_le_bytes());
        let err = format!("{:#}", load_bytes(&patched).unwrap_err());
        // Read no further than a byte past what the directory says (a forged size could hide gigabytes).
        let said = format!(
            "key `qpos`: its archive entry is damaged (it holds more than the {} bytes the archive's directory says)",
            held - 4
        );
        assert!(err.contains(&said), "{err}");
    }
}
