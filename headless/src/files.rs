//! Atomic file writes: a crash never leaves a half-written file under a final name.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `path` through a temporary file in the same directory, synced and renamed into place.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Named after the file it becomes: what a killed process leaves behind says what it was.
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{name}-"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    write(tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    // Temporary files are created owner-only; the result is an ordinary, world-readable file.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the permissions of {}", path.display()))?;
    }
    tmp.as_file_mut()
        .flush()
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming the temporary file to {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, |f| Ok(f.write_all(bytes)?))
}

/// Checks, before any work, that `path` can be written: no file stands where one of its folders must go, and
/// the nearest folder that exists takes new files. `what` (a flag, say) starts the error.
pub fn check_writable(path: &Path, what: &str) -> anyhow::Result<()> {
    let shown = path.display();
    let nearest = path
        .ancestors()
        .skip(1)
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    anyhow::ensure!(
        nearest.is_dir(),
        "{what} {shown}: {} is a file, so the folder for it cannot be made",
        nearest.display()
    );
    // The folders below `nearest` are created on writing; what can be created in it can be created there.
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(nearest)
        .with_context(|| format!("{what} {shown}: cannot write in {}", nearest.display()))?;
    Ok(())
}

/// The directory a file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_paths_are_checked_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        // Folders to be made under a writable one: fine, and the probe leaves nothing behind.
        check_writable(&dir.path().join("a/b/out.npz"), "--out").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A file where a folder must go.
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "").unwrap();
        let err = check_writable(&file.join("x.gif"), "--video").unwrap_err();
        assert!(
            err.to_string()
                .contains("notes.txt is a file, so the folder for it cannot be made"),
            "{err}"
        );
        // A folder that takes no new files, even from root.
        let err = check_writable(Path::new("/proc/qamlab/out.png"), "--out").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--out /proc/qamlab/out.png: cannot write in /proc"),
            "{err}"
        );
    }

    #[test]
    fn failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        write_bytes_atomically(&path, b"first").unwrap();
        let err = write_atomically(&path, |f| {
            f.write_all(b"half")?;
            anyhow::bail!("interrupted")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("data.bin"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("data.bin")]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
