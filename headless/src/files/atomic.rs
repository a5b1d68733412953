//! Atomic file writes: a crash never leaves a half-written file under a final name. Each file is staged (written
//! in full to a temporary file beside its name, synced) and then put in place by a rename, through the agent's
//! [`StagedFile`](qamlab_agent::checkpoint::StagedFile), which checkpoints use too; here a write also follows a
//! symbolic link to its file, makes the folders it needs, stops once [`cancel_writes`](super::cancel_writes) is
//! called, and says in its errors what failed.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

pub use qamlab_agent::checkpoint::{parent_dir, sync_dir};

use super::{check_cancelled, through_links};

/// Writes `path` through a temporary file in the same directory, synced and renamed into place.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write_staged(path, write)?.put_in_place()
}

/// A file written in full, and synced, to a temporary file beside `path`, not yet under its name:
/// [`put_in_place`](Self::put_in_place) renames it there; dropped, it is removed. Files that belong together
/// (a dataset and its validation file) are each staged, then put in place one after the other, so that a failure
/// or an interruption while any of them is written leaves the old ones. (The agent's [`staged
/// file`](qamlab_agent::checkpoint::StagedFile), with errors that say what failed.)
#[derive(Debug)]
pub struct StagedFile {
    staged: qamlab_agent::checkpoint::StagedFile,
}

impl StagedFile {
    /// The name the file takes.
    pub fn path(&self) -> &Path {
        self.staged.path()
    }

    /// Renames the file to its name, replacing what was there.
    pub fn put_in_place(self) -> anyhow::Result<()> {
        let path = self.path().to_path_buf();
        self.staged
            .put_in_place()
            .with_context(|| format!("renaming the temporary file to {}", path.display()))
    }

    /// Renames the file to its name where nothing has that name, in one step (no other process can slip a file
    /// in between a check and the rename). Where something has it (a file made since the caller looked), or the
    /// rename fails otherwise, gives the staged file back with the error, to be put elsewhere.
    pub fn put_in_place_new(self) -> Result<(), NotPlaced> {
        self.staged.put_in_place_new().map_err(|(staged, err)| {
            let taken = err.kind() == std::io::ErrorKind::AlreadyExists;
            let error = anyhow::Error::new(err).context(format!(
                "renaming the temporary file to {}",
                staged.path().display()
            ));
            NotPlaced {
                staged: StagedFile { staged },
                taken,
                error,
            }
        })
    }

    /// The staged file, to take the name `name` beside the one it had (a rename never leaves the directory, so
    /// never crosses file systems).
    pub fn renamed(self, name: &str) -> Self {
        Self {
            staged: self.staged.renamed(name),
        }
    }
}

/// A staged file [`StagedFile::put_in_place_new`] could not put in place.
#[derive(Debug)]
pub struct NotPlaced {
    /// The file, still staged.
    pub staged: StagedFile,
    /// Whether its name was taken (rather than the rename failing otherwise).
    pub taken: bool,
    /// Why.
    pub error: anyhow::Error,
}

/// Writes `path`'s contents to a temporary file beside it (beside the file it links to, for a symbolic link),
/// synced, and returns it staged (see [`StagedFile`]). Removes first the temporaries of the file that killed writes
/// left.
pub fn write_staged(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<StagedFile> {
    let path = &through_links(path)?;
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut staged = qamlab_agent::checkpoint::StagedFile::create(path)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    write(staged.file_mut()).with_context(|| format!("writing {}", path.display()))?;
    staged
        .make_readable()
        .with_context(|| format!("setting the permissions of {}", path.display()))?;
    staged
        .sync()
        .with_context(|| format!("syncing {}", path.display()))?;
    // A write that ended just as it was cancelled is not put in place either.
    check_cancelled().with_context(|| format!("writing {}", path.display()))?;
    Ok(StagedFile { staged })
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, |f| Ok(f.write_all(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::check_writable;
    use qamlab_agent::checkpoint::temporary_prefix;

    #[test]
    fn a_write_removes_the_temporaries_killed_writes_of_its_file_left_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let aged = |name: &str| {
            let file = std::fs::File::create(dir.path().join(name)).unwrap();
            file.set_modified(old).unwrap();
        };
        let ours = temporary_prefix("d.npz");
        aged(&format!("{ours}Killed"));
        // One named as versions before 2026-12-07 named them (`.tmp-NAME-HOST-`), this machine's.
        let host = ours
            .trim_start_matches(".tmp-d.npz-@")
            .trim_end_matches('-');
        aged(&format!(".tmp-d.npz-{host}-Older1"));
        // Not for this write to judge: another file's, even one whose name begins with this one's; another
        // machine's; one just made.
        let spared = [
            format!("{}Killed", temporary_prefix("other.npz")),
            format!("{}Killed", temporary_prefix("d.npz-val.npz")),
            ".tmp-d.npz-@elsewhere-Killed".to_string(),
            format!("{ours}Young1"),
        ];
        for name in &spared[..3] {
            aged(name);
        }
        std::fs::write(dir.path().join(&spared[3]), "").unwrap();
        // One a live write holds (a dataset staged while its validation file is collected).
        let held = write_staged(&path, |f| Ok(f.write_all(b"staged")?)).unwrap();
        std::fs::File::open(held.staged.temporary_path())
            .unwrap()
            .set_modified(old)
            .unwrap();
        write_bytes_atomically(&path, b"new").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        left.sort();
        let held_name = held
            .staged
            .temporary_path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut expected: Vec<String> = spared.to_vec();
        expected.push(held_name);
        expected.sort();
        assert_eq!(left, expected);
        held.put_in_place().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"staged");
    }

    #[test]
    fn a_write_to_a_link_replaces_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("big")).unwrap();
        let real = dir.path().join("big/real.npz");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.npz");
        std::os::unix::fs::symlink("big/real.npz", &link).unwrap();
        write_bytes_atomically(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // A link to a file not made yet makes it.
        let ahead = dir.path().join("ahead.npz");
        std::os::unix::fs::symlink("big/later.npz", &ahead).unwrap();
        write_bytes_atomically(&ahead, b"made").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("big/later.npz")).unwrap(),
            b"made"
        );
        // A link to a link to a file not made yet: the file is made, both links stay.
        let chain = dir.path().join("chain.npz");
        std::os::unix::fs::symlink("ahead2.npz", &chain).unwrap();
        std::os::unix::fs::symlink("big/last.npz", dir.path().join("ahead2.npz")).unwrap();
        write_bytes_atomically(&chain, b"end").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("big/last.npz")).unwrap(),
            b"end"
        );
        assert!(
            std::fs::symlink_metadata(dir.path().join("ahead2.npz"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // No temporary file is left beside any.
        let left = |d: &Path| std::fs::read_dir(d).unwrap().count();
        assert_eq!((left(dir.path()), left(&dir.path().join("big"))), (5, 3));
        // Links in a loop are refused, and stay links.
        let (a, b) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
        std::os::unix::fs::symlink("b.npz", &a).unwrap();
        std::os::unix::fs::symlink("a.npz", &b).unwrap();
        let err = write_bytes_atomically(&a, b"x").unwrap_err().to_string();
        assert!(err.contains("leads round in a loop"), "{err}");
        assert!(
            std::fs::symlink_metadata(&a)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        std::fs::remove_file(&a).unwrap();
        std::fs::remove_file(&b).unwrap();
        // The check before writing looks where the write goes: a link into a folder that takes no files.
        let blocked = dir.path().join("blocked.npz");
        std::os::unix::fs::symlink("/proc/qamlab/x.npz", &blocked).unwrap();
        assert!(check_writable(&blocked, "--out").is_err());
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
