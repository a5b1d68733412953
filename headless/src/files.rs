//! Atomic file writes: a crash never leaves a half-written file under a final name. Reading files whole, refusing
//! what is not one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, ensure};

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
/// or an interruption while any of them is written leaves the old ones.
#[derive(Debug)]
pub struct StagedFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl StagedFile {
    /// The name the file takes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to its name, replacing what was there.
    pub fn put_in_place(self) -> anyhow::Result<()> {
        let path = self.path;
        self.tmp
            .persist(&path)
            .with_context(|| format!("renaming the temporary file to {}", path.display()))?;
        sync_dir(parent_dir(&path));
        Ok(())
    }

    /// Renames the file to its name where nothing has that name, in one step (no other process can slip a file
    /// in between a check and the rename). Where something has it (a file made since the caller looked), or the
    /// rename fails otherwise, gives the staged file back with the error, to be put elsewhere.
    pub fn put_in_place_new(self) -> Result<(), NotPlaced> {
        let path = self.path;
        match self.tmp.persist_noclobber(&path) {
            Ok(_) => {
                sync_dir(parent_dir(&path));
                Ok(())
            }
            Err(err) => {
                let taken = err.error.kind() == std::io::ErrorKind::AlreadyExists;
                let error = anyhow::Error::new(err.error)
                    .context(format!("renaming the temporary file to {}", path.display()));
                Err(NotPlaced {
                    staged: StagedFile {
                        tmp: err.file,
                        path,
                    },
                    taken,
                    error,
                })
            }
        }
    }

    /// The staged file, to take the name `name` beside the one it had (a rename never leaves the directory, so
    /// never crosses file systems).
    pub fn renamed(self, name: &str) -> Self {
        Self {
            path: parent_dir(&self.path).join(name),
            tmp: self.tmp,
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

/// Syncs `dir`'s entries to disk: a rename is durable only once its directory is, and a checkpoint removes the
/// older ones right after naming the new one. Best effort: some file systems refuse to sync a directory, and the
/// file itself is already synced.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The prefix of this machine's temporaries of the file `name`: `.tmp-NAME-HOST-` (the random part follows). The
/// host is in it because a lock taken on another machine may not show here (NFS with local locks): only this
/// machine's temporaries are judged by their locks.
fn temporary_prefix(name: &str) -> String {
    // Read once a process: every atomic write asks for it twice.
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let host = HOST.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(64)
            .collect();
        if host.is_empty() { "host".into() } else { host }
    });
    format!(".tmp-{name}-{host}-")
}

/// Letters of the random part of a temporary's name.
const TEMPORARY_RANDOM_LEN: usize = 6;

/// Removes this machine's temporaries of the file `name` in `dir` (see [`temporary_prefix`]) that no process is
/// writing: those a write killed before its end left (`kill -9`, a crash; one each time, and the staged dataset of
/// a pair can be large). A writer holds its temporary locked for as long as it lives ([`write_staged`]), so one
/// that can be locked is an orphan; one changed in the last seconds (or dated ahead of this clock) is spared, as
/// its writer may not have locked it yet.
fn remove_orphaned_temporaries(dir: &Path, name: &str) {
    let prefix = temporary_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // Exactly the prefix and the random part: not another file's whose name begins with this one's.
        let file_name = entry.file_name();
        let ours = file_name.to_str().is_some_and(|n| {
            n.strip_prefix(&prefix).is_some_and(|random| {
                random.len() == TEMPORARY_RANDOM_LEN
                    && random.chars().all(|c| c.is_ascii_alphanumeric())
            })
        });
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta
            .modified()
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() >= 10));
        if !ours || !meta.is_file() || !old {
            continue;
        }
        let path = entry.path();
        let orphan = std::fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if orphan && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(
                "removed {} ({:.1} MB), left by a write of {name} that was killed before its end",
                path.display(),
                meta.len() as f64 / 1e6
            );
        }
    }
}

/// Set by [`cancel_writes`]: the writes and collections in progress stop, and remove their temporary files.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Asks the writes and collections in progress to stop at their next chance, with a [`Cancelled`] error: their
/// temporary files are then removed as they fail, where a process killed by Ctrl-C would leave them. It only sets
/// a flag, so a signal handler may call it.
pub fn cancel_writes() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether [`cancel_writes`] was called.
pub fn writes_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// The error of a write or collection stopped by [`cancel_writes`].
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped on request")
    }
}

impl std::error::Error for Cancelled {}

/// Fails with [`Cancelled`] once [`cancel_writes`] was called.
pub fn check_cancelled() -> anyhow::Result<()> {
    if writes_cancelled() {
        return Err(Cancelled.into());
    }
    Ok(())
}

/// Where a write to `path` goes: `path` itself, or, where it is a symbolic link, the file it links to (which may
/// not exist yet), so that the new contents replace the file the link names and the link stays, as a plain write
/// through the link would do. Renaming onto the link would replace the link and leave its file as it was. Links
/// that lead round in a loop are an error.
pub fn through_links(path: &Path) -> anyhow::Result<PathBuf> {
    let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link(path) {
        return Ok(path.to_path_buf());
    }
    if let Ok(resolved) = std::fs::canonicalize(path) {
        return Ok(resolved);
    }
    // A file not made yet: where links lead, one after another (a link to a link to it), each relative to its
    // link's folder.
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&at) {
            Ok(target) => at = parent_dir(&at).join(target),
            Err(_) => return Ok(at),
        }
    }
    anyhow::bail!(
        "{} is a symbolic link that leads round in a loop (or through more than 40 links): point it at a file, or \
         remove it",
        path.display()
    )
}

/// Writes `path`'s contents to a temporary file beside it (beside the file it links to, for a symbolic link),
/// synced, and returns it staged (see [`StagedFile`]).
pub fn write_staged(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<StagedFile> {
    let path = &through_links(path)?;
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Named after the file it becomes: what a killed process leaves behind says what it was.
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    remove_orphaned_temporaries(dir, name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&temporary_prefix(name))
        .rand_bytes(TEMPORARY_RANDOM_LEN)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    // Held while this process lives: a temporary no one holds is a killed write's (best effort: a file system
    // without locks leaves its orphans to the user).
    let _ = tmp.as_file().try_lock();
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
    // A write that ended just as it was cancelled is not put in place either.
    check_cancelled().with_context(|| format!("writing {}", path.display()))?;
    Ok(StagedFile {
        tmp,
        path: path.to_path_buf(),
    })
}

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
    String::from_utf8(read_regular_file(path, what, max_bytes)?)
        .with_context(|| format!("reading {what} {}: not UTF-8 text", path.display()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, |f| Ok(f.write_all(bytes)?))
}

/// Checks, before any work, that `path` can be written: no file stands where one of its folders must go, and
/// the nearest folder that exists takes new files. `what` (a flag, say) starts the error.
pub fn check_writable(path: &Path, what: &str) -> anyhow::Result<()> {
    check_no_literal_tilde(path, what)?;
    let shown = path.display();
    // Where the write will go: a link's file.
    let target = through_links(path)?;
    let nearest = target
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

/// Checks an output path as given: refuses one whose first component is a literal `~`, which the shell did not
/// expand (it does only at the start of a word: `--out=~/d.npz` and `--out "~/d.npz"` reach qamlab as written), and
/// which would otherwise make a folder named `~` in the working directory. `./~/...` names such a folder. `what` (a
/// flag, say) starts the error.
pub fn check_no_literal_tilde(path: &Path, what: &str) -> anyhow::Result<()> {
    let tilde = path
        .components()
        .next()
        .is_some_and(|first| first.as_os_str() == "~");
    let flag = what.rsplit(' ').next().unwrap_or(what);
    ensure!(
        !tilde,
        "{what} {}: the path begins with a literal `~`, which the shell did not expand (it does only at the start \
         of a word: not after `=`, as in `{flag}=~/...`, nor in quotes): write `{flag} ~/...` or `{flag} \
         \"$HOME/...\"`, or `./~/...` for a folder named `~` here",
        path.display()
    );
    Ok(())
}

/// Checks a directory to be made for output (a run's `--out`, a video's frames) as given: [`check_no_literal_tilde`],
/// and that it is not a symbolic link to a path that does not exist (which cannot be made through the link: the
/// link stands where the folder must go).
pub fn check_out_dir(path: &Path, what: &str) -> anyhow::Result<()> {
    check_no_literal_tilde(path, what)?;
    // Without a trailing `/`, which would make the link's target, not the link, what is looked at.
    let link: PathBuf = path.components().collect();
    let dangling = std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink())
        && !link.exists();
    if dangling {
        let target = through_links(&link)?;
        // A bare name's link leads from `.`: shown as the link names it.
        let target = match link.parent() {
            Some(parent) if parent.as_os_str().is_empty() => {
                target.strip_prefix(".").unwrap_or(&target).to_path_buf()
            }
            _ => target,
        };
        anyhow::bail!(
            "{what} {} is a symbolic link to {}, which does not exist: make that folder (`mkdir -p {}`), remove \
             the link, or give another path",
            path.display(),
            target.display(),
            crate::shell::quote_path(&target)
        );
    }
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
    fn an_out_path_of_an_unexpanded_tilde_or_a_dangling_link_is_refused_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        for what in ["--out", "collect: --out"] {
            let err = format!(
                "{:#}",
                check_writable(Path::new("~/t.npz"), what).unwrap_err()
            );
            assert!(
                err.starts_with(&format!(
                    "{what} ~/t.npz: the path begins with a literal `~`"
                )) && err.contains("the shell did not expand")
                    && err.contains("`--out ~/...`"),
                "{err}"
            );
            let err = format!("{:#}", check_out_dir(Path::new("~"), what).unwrap_err());
            assert!(err.contains("literal `~`"), "{err}");
        }
        // Only a whole first component: a `~` elsewhere, or a name starting with one, is a name like any other.
        for fine in ["./~/t.npz", "a/~/t.npz", "~backup/t.npz", "t~.npz"] {
            check_no_literal_tilde(Path::new(fine), "--out").unwrap();
        }
        let link = dir.path().join("dangling");
        std::os::unix::fs::symlink("nowhere", &link).unwrap();
        let err = format!("{:#}", check_out_dir(&link, "--out").unwrap_err());
        let target = dir.path().join("nowhere");
        assert_eq!(
            err,
            format!(
                "--out {} is a symbolic link to {}, which does not exist: make that folder (`mkdir -p {}`), \
                 remove the link, or give another path",
                link.display(),
                target.display(),
                target.display()
            )
        );
        // Once its folder is there, the link is the way to it.
        std::fs::create_dir(&target).unwrap();
        check_out_dir(&link, "--out").unwrap();
        check_out_dir(&dir.path().join("fresh"), "--out").unwrap();
        // A trailing `/` (a video's frames folder) names the link all the same.
        std::fs::remove_dir(&target).unwrap();
        let err = format!(
            "{:#}",
            check_out_dir(Path::new(&format!("{}/", link.display())), "--video").unwrap_err()
        );
        assert!(err.contains("is a symbolic link to"), "{err}");
    }

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
        // Not for this write to judge: another file's, even one whose name begins with this one's; another
        // machine's; one just made.
        let spared = [
            format!("{}Killed", temporary_prefix("other.npz")),
            format!("{}Killed", temporary_prefix("d.npz-val.npz")),
            ".tmp-d.npz-elsewhere-Killed".to_string(),
            format!("{ours}Young1"),
        ];
        for name in &spared[..3] {
            aged(name);
        }
        std::fs::write(dir.path().join(&spared[3]), "").unwrap();
        // One a live write holds (a dataset staged while its validation file is collected).
        let held = write_staged(&path, |f| Ok(f.write_all(b"staged")?)).unwrap();
        std::fs::File::open(held.tmp.path())
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
            .tmp
            .path()
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
