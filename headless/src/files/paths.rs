//! Checks of the paths a user gives for output, before any work: a literal `~` the shell did not expand, a link
//! that leads nowhere, a folder that takes no files; and where a write through a symbolic link goes.

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};

use super::parent_dir;

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
}
