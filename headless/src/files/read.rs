//! Reading files whole, refusing what is not one (a folder, a socket, a named pipe; a device without a size limit),
//! and more bytes than a file of its kind holds.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, ensure};

/// What a read takes besides a regular file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// An unnamed pipe (`<(...)`, `/dev/stdin` fed by `|`), and a device where there is a size limit.
    PipesAndDevices,
    /// An unnamed pipe, never a device (one such as /dev/zero gives a dataset's worth of zeros).
    Pipes,
    /// Nothing else: a file qamlab wrote, whose size is known before it is read.
    FilesOnly,
}

/// Reads the file at `path` whole: a regular file or an unnamed pipe (`--config <(...)`), and a device
/// (`/dev/stdin` from a terminal) only with `max_bytes`, since one such as /dev/zero never ends. With `max_bytes`,
/// refuses more than that. A folder, a socket or a named pipe (opening one waits for a writer, forever if none
/// comes) is refused. `what` names the file in errors: `config file`, `dataset`.
pub fn read_regular_file(
    path: &Path,
    what: &str,
    max_bytes: Option<u64>,
) -> anyhow::Result<Vec<u8>> {
    read_whole(path, what, max_bytes, Takes::PipesAndDevices)
}

/// Reads the file at `path` whole, as [`read_regular_file`] does but refusing a device, and at most `max_bytes`
/// (what this machine's memory can load of a dataset), from a pipe as from a file.
pub fn read_data_file(path: &Path, what: &str, max_bytes: u64) -> anyhow::Result<Vec<u8>> {
    read_whole(path, what, Some(max_bytes), Takes::Pipes)
}

/// Reads a file qamlab wrote (a run's or a checkpoint's: `state.json`, `eval.csv`) whole: a regular file of at
/// most `max_bytes`, its size checked before anything is read. A pipe or a device under its name (a link to
/// /dev/zero, a FIFO made in the run's folder) is refused, as is anything past the size such a file has.
pub fn read_stored_file(path: &Path, what: &str, max_bytes: u64) -> anyhow::Result<Vec<u8>> {
    read_whole(path, what, Some(max_bytes), Takes::FilesOnly)
}

/// Reads a text file qamlab wrote whole, as [`read_stored_file`] does; errors name it as `what`.
pub fn read_stored_text(path: &Path, what: &str, max_bytes: u64) -> anyhow::Result<String> {
    let bytes = read_stored_file(path, what, max_bytes)?;
    String::from_utf8(bytes)
        .with_context(|| format!("reading {what} {}: not UTF-8 text", path.display()))
}

/// Whether `error`, from reading a file, says that there is no such file (a link to nothing included).
pub fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Reads `path` whole, taking what `takes` says besides a regular file, at most `max_bytes`.
fn read_whole(
    path: &Path,
    what: &str,
    max_bytes: Option<u64>,
    takes: Takes,
) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {what} {shown}"))?;
    let kind = metadata.file_type();
    // An unnamed pipe ends when its writer does (`--config <(...)`, `qamlab dataset <(cat d.npz)`); a device may
    // never end, so it is read only up to a size limit; opening a named pipe waits for a writer, forever if none
    // comes.
    let device = kind.is_char_device() || kind.is_block_device();
    let other = if kind.is_dir() {
        "a folder"
    } else if device && (takes != Takes::PipesAndDevices || max_bytes.is_none()) {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_fifo() && takes == Takes::FilesOnly {
        "a pipe"
    } else if kind.is_fifo() && !qamlab_sim::scene::unnamed_pipe(path) {
        "a named pipe (opening one waits for a writer, forever if none comes)"
    } else {
        ""
    };
    // A file qamlab wrote is replaced with something else only by hand.
    let way_out = match takes {
        Takes::FilesOnly => "not the regular file qamlab writes there",
        // fish's `psub` makes a named pipe unless told otherwise.
        _ if kind.is_fifo() => {
            "not a regular file: give the path of a file, or a shell's `<(...)` (fish's `psub -f`)"
        }
        _ => "not a regular file: give the path of a file",
    };
    ensure!(other.is_empty(), "{what} {shown} is {other}, {way_out}");
    let past = |max: u64| {
        let why = match takes {
            Takes::Pipes => "more than this machine's memory can load",
            _ => "more than such a file holds; is it the right file?",
        };
        format!(
            "{what} {shown} is larger than {}: {why}",
            qamlab_agent::footprint::format_bytes(max)
        )
    };
    // A regular file's size is known: one past the limit is refused before it is read.
    if let Some(max) = max_bytes
        && kind.is_file()
    {
        ensure!(metadata.len() <= max, "{}", past(max));
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {what} {shown}"))?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a file at the limit from a longer one (a file may grow while it is read).
    let limit = max_bytes.map_or(u64::MAX, |max| max.saturating_add(1));
    file.take(limit)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what} {shown}"))?;
    if let Some(max) = max_bytes {
        ensure!(bytes.len() as u64 <= max, "{}", past(max));
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

/// Makes a named pipe at `path` (no writer ever opens it), for the tests of reading one.
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_named_pipe_is_refused_before_it_is_opened_and_an_unnamed_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("config.toml");
        mkfifo(&fifo);
        // Opening it would wait for a writer forever: the test would hang, not fail, without the check.
        for read in [
            read_regular_file(&fifo, "config file", Some(1 << 20)),
            read_regular_file(&fifo, "config file", None),
            read_data_file(&fifo, "dataset", 1 << 20),
        ] {
            let err = format!("{:#}", read.unwrap_err());
            assert!(
                err.contains("config.toml is a named pipe (opening one waits for a writer, forever if none comes)"),
                "{err}"
            );
        }
        let err = format!(
            "{:#}",
            read_stored_file(&fifo, "state file", 1024).unwrap_err()
        );
        assert!(
            err.contains("config.toml is a pipe, not the regular file qamlab writes there"),
            "{err}"
        );
        // An unnamed pipe, as `<(...)` gives one: read to its end, within the limit.
        let mut child = std::process::Command::new("printf")
            .arg("seed = 1\\n")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(child.stdout.as_ref().unwrap());
        let pipe = std::path::PathBuf::from(format!("/proc/self/fd/{fd}"));
        let read = read_regular_text(&pipe, "config file", Some(1 << 20)).unwrap();
        child.wait().unwrap();
        assert_eq!(read, "seed = 1\n");
    }

    #[test]
    fn a_device_or_a_file_past_its_size_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let zero = Path::new("/dev/zero");
        let err = format!(
            "{:#}",
            read_data_file(zero, "dataset", 1 << 20).unwrap_err()
        );
        assert!(
            err.contains("dataset /dev/zero is a device, not a regular file"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_stored_file(zero, "state file", 1024).unwrap_err()
        );
        assert!(err.contains("state file /dev/zero is a device"), "{err}");
        // Its size is read from the file system: a sparse file of 1 TiB is refused without reading a byte.
        let big = dir.path().join("state.json");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let err = format!(
            "{:#}",
            read_stored_text(&big, "state file", 1 << 20).unwrap_err()
        );
        assert!(
            err.contains("state.json is larger than 1.0 MiB: more than such a file holds"),
            "{err}"
        );
        let missing = dir.path().join("latest");
        assert!(is_not_found(
            &read_stored_file(&missing, "pointer", 64).unwrap_err()
        ));
        assert!(!is_not_found(
            &read_stored_file(&big, "pointer", 64).unwrap_err()
        ));
    }
}
