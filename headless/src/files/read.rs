//! Reading files whole, refusing what is not one (a folder, a socket; a device without a size limit).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, ensure};

/// Reads the file at `path` whole: a regular file or a pipe, and a device (`/dev/stdin`) only with `max_bytes`,
/// since one such as /dev/zero never ends. With `max_bytes`, refuses more than that. A folder or a socket is
/// refused. `what` names the file in errors: `config file`, `dataset`.
pub fn read_regular_file(
    path: &Path,
    what: &str,
    max_bytes: Option<u64>,
) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let kind = std::fs::metadata(path)
        .with_context(|| format!("reading {what} {shown}"))?
        .file_type();
    // A pipe ends when its writer does (`--config <(...)`, `qamlab dataset <(cat d.npz)`); a device may never
    // end, so it is read only up to a size limit.
    let streams = max_bytes.is_some();
    let other = if kind.is_dir() {
        "a folder"
    } else if (kind.is_char_device() || kind.is_block_device()) && !streams {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        ""
    };
    ensure!(
        other.is_empty(),
        "{what} {shown} is {other}, not a regular file: give the path of a file"
    );
    let file = std::fs::File::open(path).with_context(|| format!("reading {what} {shown}"))?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a file at the limit from a longer one (a file may grow while it is read).
    let limit = max_bytes.map_or(u64::MAX, |max| max.saturating_add(1));
    file.take(limit)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what} {shown}"))?;
    if let Some(max) = max_bytes {
        ensure!(
            bytes.len() as u64 <= max,
            "{what} {shown} is larger than {}: more than such a file holds; is it the right file?",
            crate::limits::format_bytes(max)
        );
    }
    Ok(bytes)
}

/// Reads the text file at `path` whole, as [`read_regular_file`] does; errors name it as `what`.
pub fn read_regular_text(
    path: &Path,
    what: &str,
    max_bytes: Option<u64>,
) -> anyhow::Result<String> {
    let bytes = read_regular_file(path, what, max_bytes)?;
    // The lab's own binary files, given where text was meant (`--config data.npz`): named for what they are.
    if let Some(kind) = super::sniff(&bytes, bytes.len() as u64) {
        anyhow::bail!(
            "reading {what} {}: it is {}, not text",
            path.display(),
            kind.described()
        );
    }
    String::from_utf8(bytes)
        .with_context(|| format!("reading {what} {}: not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::read_regular_text;

    #[test]
    fn a_dataset_or_a_chart_given_for_a_text_file_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes, says) in [
            (
                "d.npz",
                &b"PK\x03\x04rest"[..],
                "it is a zip archive, as a dataset (.npz) is, not text",
            ),
            (
                "c.png",
                &b"\x89PNG\r\n"[..],
                "it is a PNG image, as a chart is, not text",
            ),
            (
                "agent.safetensors",
                &b"\x02\x00\x00\x00\x00\x00\x00\x00{}"[..],
                "it is a safetensors file, as a checkpoint's agent is, not text",
            ),
            ("x.toml", &b"a = \xff"[..], "not UTF-8 text"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = format!(
                "{:#}",
                read_regular_text(&path, "config file", None).unwrap_err()
            );
            assert!(err.contains(says) && err.contains(name), "{err}");
        }
    }
}
