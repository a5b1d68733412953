//! Staging a file and putting it in place: the lab's one way to write a file that no one ever sees half-written.
//! The file is written in full to a temporary file beside its name (`.tmp-NAME-@HOST-XXXXXX`), synced, and renamed
//! to its name, and the rename made durable by syncing the directory. Checkpoints are written so here, and so is
//! every file headless and the viewer write (`qamlab_headless::files` builds on this module), so what a killed
//! write leaves has one form, which the next write of the same file removes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file written to a temporary file beside `path`, not yet under its name: [`put_in_place`](Self::put_in_place)
/// renames it there; dropped, it is removed.
#[derive(Debug)]
pub struct StagedFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl StagedFile {
    /// A new, empty temporary file for `path`, in its directory (which must exist), named after it
    /// ([`temporary_prefix`]), and held locked while this process lives. First removes the temporaries of `path`
    /// that killed writes left (those no live process holds locked).
    pub fn create(path: &Path) -> io::Result<Self> {
        let dir = parent_dir(path);
        // Named after the file it becomes: what a killed process leaves behind says what it was.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        remove_orphaned_temporaries(dir, name);
        let tmp = tempfile::Builder::new()
            .prefix(&temporary_prefix(name))
            .rand_bytes(TEMPORARY_RANDOM_LEN)
            .tempfile_in(dir)?;
        // Held while this process lives: a temporary no one holds is a killed write's (best effort: a file system
        // without locks leaves its orphans to the user).
        let _ = tmp.as_file().try_lock();
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The temporary file, to write the contents into.
    pub fn file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The name the file takes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file is until it is put in place.
    pub fn temporary_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Gives the file the permissions of a file created by its name: temporary files are created owner-only, and
    /// a file created otherwise gets 0666 less the process's umask (0644 under the usual 022, owner-only under
    /// 077).
    pub fn make_readable(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = 0o666 & !process_umask();
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(mode))
    }

    /// Flushes and syncs the contents written to disk, before the file takes its name.
    pub fn sync(&mut self) -> io::Result<()> {
        self.tmp.as_file_mut().flush()?;
        self.tmp.as_file().sync_all()
    }

    /// Renames the file to its name, replacing what was there, and syncs the directory.
    pub fn put_in_place(self) -> io::Result<()> {
        let path = self.path;
        self.tmp.persist(&path).map_err(|e| e.error)?;
        sync_dir(parent_dir(&path));
        Ok(())
    }

    /// Renames the file to its name where nothing has that name, in one step (no other process can slip a file
    /// in between a check and the rename), and syncs the directory. Where something has it (the error is then
    /// [`io::ErrorKind::AlreadyExists`]), or the rename fails otherwise, gives the staged file back with the error.
    pub fn put_in_place_new(self) -> Result<(), (Self, io::Error)> {
        let path = self.path;
        match self.tmp.persist_noclobber(&path) {
            Ok(_) => {
                sync_dir(parent_dir(&path));
                Ok(())
            }
            Err(err) => Err((
                Self {
                    tmp: err.file,
                    path,
                },
                err.error,
            )),
        }
    }

    /// The staged file, to take the name `name` beside the one it had (a rename never leaves the directory, so
    /// never crosses file systems).
    pub fn renamed(self, name: &str) -> Self {
        Self {
            // Not `parent_dir(..).join`: a bare name stays bare (`x-val.npz`, not `./x-val.npz`) in what is printed.
            path: self.path.with_file_name(name),
            tmp: self.tmp,
        }
    }
}

/// The process's umask, read from `/proc/self/status` (setting it to read it back would change it for a moment
/// for every thread); 022, the usual one, where that cannot be read.
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// Syncs `dir`'s entries to disk: a rename is durable only once its directory is, and a checkpoint removes the
/// older ones right after naming the new one. Best effort: some file systems refuse to sync a directory, and the
/// file itself is already synced.
pub fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The directory a file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The prefix of this machine's temporaries of the file `name`: `.tmp-NAME-@HOST-` (the random part follows). The
/// host is in it because a lock taken on another machine may not show here (NFS with local locks): only this
/// machine's temporaries are judged by their locks. The `@`, which no host name as carried holds, tells where the
/// host begins: `gpu-node1`'s temporaries are not `node1`'s.
pub fn temporary_prefix(name: &str) -> String {
    format!(".tmp-{name}-@{}-", host())
}

/// Whether `file_name` is the name of a temporary this machine staged (`.tmp-NAME-@HOST-RANDOM`, see
/// [`temporary_prefix`]), whose lock, if a writer holds it, shows here.
pub fn staged_here(file_name: &str) -> bool {
    staged_on(file_name, host())
}

/// Whether `file_name` is the name of a temporary staged on the machine `host` (as [`host`] gives it).
fn staged_on(file_name: &str, host: &str) -> bool {
    let Some(rest) = file_name.strip_prefix(".tmp-") else {
        return false;
    };
    let Some((head, random)) = rest.rsplit_once('-') else {
        return false;
    };
    random.len() == TEMPORARY_RANDOM_LEN
        && random.chars().all(|c| c.is_ascii_alphanumeric())
        && head.ends_with(&format!("-@{host}"))
}

/// This machine's name as temporaries carry it: the characters of a file name only, at most 64.
fn host() -> &'static str {
    // Read once a process: every atomic write asks for it twice.
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(64)
            .collect();
        if host.is_empty() { "host".into() } else { host }
    })
}

/// Letters of the random part of a temporary's name.
const TEMPORARY_RANDOM_LEN: usize = 6;

/// Removes this machine's temporaries of the file `name` in `dir` (see [`temporary_prefix`]) that no process is
/// writing ([`is_orphaned`]): those a write killed before its end left (`kill -9`, a crash; one each time, and the
/// staged dataset of a pair can be large).
fn remove_orphaned_temporaries(dir: &Path, name: &str) {
    // Versions before 2026-12-07 named them `.tmp-NAME-HOST-`: with the name known, as exact a prefix.
    let prefixes = [temporary_prefix(name), format!(".tmp-{name}-{}-", host())];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // Exactly a prefix and the random part: not another file's whose name begins with this one's.
        let file_name = entry.file_name();
        let ours = file_name.to_str().is_some_and(|n| {
            prefixes.iter().any(|prefix| {
                n.strip_prefix(prefix.as_str()).is_some_and(|random| {
                    random.len() == TEMPORARY_RANDOM_LEN
                        && random.chars().all(|c| c.is_ascii_alphanumeric())
                })
            })
        });
        let Ok(meta) = entry.metadata() else { continue };
        if !ours || !meta.is_file() {
            continue;
        }
        let path = entry.path();
        if is_orphaned(&path) && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(
                "removed {} ({:.1} MB), left by a write of {name} that was killed before its end",
                path.display(),
                meta.len() as f64 / 1e6
            );
        }
    }
}

/// Whether the temporary file at `path` is no longer being written: a writer holds its temporary locked for as
/// long as it lives ([`StagedFile::create`]), so one that can be locked is an orphan (of `kill -9`, a crash); one
/// changed in the last seconds (or dated ahead of this clock) is not, as its writer may not have locked it yet.
fn is_orphaned(path: &Path) -> bool {
    let old = std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() >= 10));
    old && !is_being_written(path)
}

/// Whether a live process holds the temporary file at `path` locked, as a [`StagedFile`] holds its own until it is
/// put in place or dropped (the lock goes with the process, however it ends).
pub fn is_being_written(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| f.try_lock().is_err())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_temporary_is_told_from_another_machines_whose_name_ends_as_this_ones() {
        let name = |host: &str| format!(".tmp-eval.gif-@{host}-Ab12Cd");
        assert!(staged_on(&name("node1"), "node1"));
        assert!(!staged_on(&name("gpu-node1"), "node1"));
        assert!(!staged_on(&name("node1"), "gpu-node1"));
        // A file name that holds `-@` itself.
        assert!(!staged_on(".tmp-a-@node1-@gpu-node1-Ab12Cd", "node1"));
        assert!(staged_on(".tmp-a-@node1-@gpu-node1-Ab12Cd", "gpu-node1"));
        assert!(staged_on(&(temporary_prefix("x.npz") + "Ab12Cd"), host()));
        assert!(!host().contains('@'));
    }

    #[test]
    fn a_file_put_in_place_has_the_permissions_of_one_created_by_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let staged_path = dir.path().join("staged");
        let mut staged = StagedFile::create(&staged_path).unwrap();
        staged.file_mut().write_all(b"x").unwrap();
        staged.make_readable().unwrap();
        staged.sync().unwrap();
        staged.put_in_place().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&staged_path), mode(&plain));
    }
}
