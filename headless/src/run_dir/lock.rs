//! Claiming a run directory: the lock a training process holds, the checks before a new run takes the directory,
//! and the temporaries an interrupted write left.

use anyhow::{Context, bail};

use super::RunDir;
use crate::TrainConfig;
use crate::files::check_writable;

/// The file a running process holds locked ([`RunDir::lock`]).
pub(super) const LOCK_FILE: &str = ".lock";

/// A process's claim on a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    /// The locked file: the lock lasts as long as it is open.
    _file: std::fs::File,
}

impl RunDir {
    /// Removes the temporary files (`.tmp-*`) a process killed while writing left in the run's folder and its
    /// checkpoints' folder (the `latest` pointer's), and there the temporary folders of checkpoints cut short.
    /// Only for the holder of the run's [`lock`](Self::lock), so no other trainer writes there then; a file another
    /// process is still writing is spared ([`is_being_written`](qamlab_agent::checkpoint::is_being_written)), and
    /// one another machine staged ([`staged_here`](qamlab_agent::checkpoint::staged_here)): `eval --video` and
    /// `plot --out` may stage their files in the run's folder without the run's lock.
    pub fn remove_leftovers(&self, _held: &RunLock) {
        for folder in [self.root.clone(), self.checkpoints()] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let temporary = entry.file_name().to_string_lossy().starts_with(".tmp-");
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                // A leftover that will not go is harmless: the next writes use new names.
                if temporary && kind.is_file() {
                    // Another machine's (a run folder on NFS) may be written there still, its lock unseen here.
                    let name = entry.file_name();
                    let ours = name
                        .to_str()
                        .is_some_and(qamlab_agent::checkpoint::staged_here);
                    if ours && !qamlab_agent::checkpoint::is_being_written(&entry.path()) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                } else if temporary && kind.is_dir() && folder == self.checkpoints() {
                    // A checkpoint cut short while it was written (`stage_checkpoint`).
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    /// Before a new run claims the directory: [`check_unused`](Self::check_unused), and first that no other
    /// process is training a run there (which `check_unused` would offer to resume).
    pub fn check_free_for_new_run(&self) -> anyhow::Result<()> {
        if self.in_use() {
            bail!(
                "{} holds a run another qamlab process is training: choose another --out, or let it finish first",
                self.root.display()
            );
        }
        self.check_unused()
    }

    /// Checks that a new run may be written here: nothing there yet, or an empty directory. A run is never
    /// written over someone's files, nor over another run (which `--resume` continues).
    pub fn check_unused(&self) -> anyhow::Result<()> {
        crate::files::check_out_dir(&self.root, "--out")?;
        let root = self.root.display();
        if self.root.is_file() {
            bail!("--out {root} is a file; a run directory is needed");
        }
        // A file where one of its folders must go would otherwise fail later, on some file inside it.
        if !self.root.exists() {
            check_writable(&self.root, "--out")?;
        }
        if self.latest_checkpoint()?.is_some() {
            bail!(
                "{root} already holds a run with checkpoints: continue it with `qamlab train --resume {}`, or \
                 choose another --out",
                crate::shell::quote_path(&self.root)
            );
        }
        if TrainConfig::from_toml_file(&self.config()).is_ok() {
            bail!(
                "{root} holds a run with no checkpoint yet (it stopped, or is still running, before its first), so \
                 --resume has nothing to continue: once it is stopped, remove it to start again, or choose another --out"
            );
        }
        // A lock file alone is what a run that failed before writing anything leaves.
        if let Ok(entries) = std::fs::read_dir(&self.root)
            && entries.flatten().any(|e| e.file_name() != LOCK_FILE)
        {
            bail!(
                "{root} exists and is not empty: a new run would write over its files; choose another --out"
            );
        }
        Ok(())
    }

    /// Whether another process holds the run's claim ([`lock`](Self::lock)), as a run training does.
    pub fn in_use(&self) -> bool {
        std::fs::File::open(self.root.join(LOCK_FILE))
            .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
    }

    /// Claims the run for this process: while the claim lives, another `train` or `--resume` on the run is
    /// refused. The operating system drops it when the process ends, however it ends (`kill -9` included).
    pub fn lock(&self) -> anyhow::Result<RunLock> {
        let path = self.root.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is in use by another qamlab process (training or resuming it): let it finish, or stop it, \
                 first",
                self.root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::temp_run;

    #[test]
    fn one_process_at_a_time_holds_a_run() {
        let (dir, run) = temp_run();
        let held = run.lock().unwrap();
        let err = run.lock().unwrap_err().to_string();
        assert!(err.contains("in use by another qamlab process"), "{err}");
        // A new run there is told the run is training, not to resume it.
        assert!(run.in_use());
        let err = run.check_free_for_new_run().unwrap_err().to_string();
        assert!(
            err.contains("holds a run another qamlab process is training"),
            "{err}"
        );
        // What a killed write left is removed by the holder of the lock; other files stay.
        let prefix = qamlab_agent::checkpoint::temporary_prefix;
        std::fs::write(dir.path().join(prefix("learning_curve.png") + "Ab12Cd"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        std::fs::create_dir(run.checkpoints()).unwrap();
        std::fs::write(run.checkpoints().join(prefix("latest") + "x1y2z3"), "").unwrap();
        // Another machine's (the run's folder on NFS): its writer's lock would not show here.
        let elsewhere = ".tmp-eval.gif-@another-machine-Ab12Cd";
        std::fs::write(dir.path().join(elsewhere), "").unwrap();
        // One another process is writing (`eval --video` stages its GIF here without the run's lock) stays.
        let writing =
            qamlab_agent::checkpoint::StagedFile::create(&dir.path().join("eval.gif")).unwrap();
        run.remove_leftovers(&held);
        assert!(
            writing.temporary_path().is_file(),
            "a file being written was removed"
        );
        writing.put_in_place().unwrap();
        assert_eq!(std::fs::read_dir(run.checkpoints()).unwrap().count(), 0);
        std::fs::remove_dir(run.checkpoints()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".lock", elsewhere, "eval.gif", "notes.txt"]);
        std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
        std::fs::remove_file(dir.path().join(elsewhere)).unwrap();
        std::fs::remove_file(dir.path().join("eval.gif")).unwrap();
        drop(held);
        let again = run.lock().unwrap();
        drop(again);
        // The lock file alone (a run that failed before writing anything) leaves the directory free for a run.
        run.check_unused().unwrap();
    }

    #[test]
    fn a_run_without_a_checkpoint_yet_says_so() {
        let (_dir, run) = temp_run();
        run.check_unused().unwrap();
        std::fs::write(run.config(), TrainConfig::default().to_toml().unwrap()).unwrap();
        let err = format!("{:#}", run.check_unused().unwrap_err());
        assert!(err.contains("no checkpoint yet"), "{err}");
    }

    #[test]
    fn a_run_goes_only_where_its_folder_can_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.npz");
        std::fs::write(&file, "data").unwrap();
        let err = RunDir::new(file.join("sub"))
            .check_unused()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "--out {}: {} is a file, so the folder for it cannot be made",
                file.join("sub").display(),
                file.display()
            )
        );
        RunDir::new(dir.path().join("new/run"))
            .check_unused()
            .unwrap();
    }
}
