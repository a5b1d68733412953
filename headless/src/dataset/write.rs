//! Writing a dataset's npz archive through a staged temporary file, finishing the archive quietly after an error.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use ndarray::{ArrayView1, ArrayView2, ShapeError};
use ndarray_npy::NpzWriter;

use super::{DatasetRows, DatasetSource};
use crate::files::{StagedFile, write_staged};

/// Writes `rows` to `path` in OGBench's npz layout, with `source` beside, atomically.
pub fn write_dataset(
    path: &Path,
    rows: &DatasetRows,
    source: &DatasetSource,
) -> anyhow::Result<()> {
    write_dataset_staged(path, rows, source)?.put_in_place()
}

/// Writes `rows` with `source` in OGBench's npz layout to a temporary file beside `path`, to be put in place
/// (see [`StagedFile`]). [`crate::files::cancel_writes`] stops it.
pub fn write_dataset_staged(
    path: &Path,
    rows: &DatasetRows,
    source: &DatasetSource,
) -> anyhow::Result<StagedFile> {
    let r = rows.len();
    // Views of the rows, written as they are: a copy would double a large dataset's memory.
    fn m2(data: &[f32], rows: usize, w: usize) -> Result<ArrayView2<'_, f32>, ShapeError> {
        ArrayView2::from_shape((rows, w), data)
    }
    let observations = m2(&rows.observations, r, rows.obs_dim)?;
    let actions = m2(&rows.actions, r, rows.action_dim)?;
    let qpos = m2(&rows.qpos, r, rows.qpos_dim)?;
    let qvel = m2(&rows.qvel, r, rows.qvel_dim)?;
    let source = serde_json::to_vec(source)?;
    write_staged(path, |file| {
        write_npz(file, |npz| {
            npz.add_array("observations", &observations)?;
            npz.add_array("actions", &actions)?;
            npz.add_array("terminals", &ArrayView1::from(&rows.terminals))?;
            npz.add_array("rewards", &ArrayView1::from(&rows.rewards))?;
            npz.add_array("masks", &ArrayView1::from(&rows.masks))?;
            npz.add_array("successes", &ArrayView1::from(&rows.successes))?;
            npz.add_array("qpos", &qpos)?;
            npz.add_array("qvel", &qvel)?;
            npz.add_array("source", &ArrayView1::from(&source))?;
            Ok(())
        })
    })
}

/// An npz archive's writer over [`Discarding`] (see why there).
type QuietNpz<W> = NpzWriter<BufWriter<Discarding<W>>>;

/// Writes a compressed npz archive of what `add` adds into `file`, then finishes it, also after an error; returns
/// the first error, the file's own where it gave one (a full disk) rather than the archive's wrapping of it.
fn write_npz<W: Write + Seek>(
    file: W,
    add: impl FnOnce(&mut QuietNpz<W>) -> Result<(), ndarray_npy::WriteNpzError>,
) -> anyhow::Result<()> {
    let mut npz = NpzWriter::new_compressed(BufWriter::new(Discarding::new(file)));
    let added = add(&mut npz);
    // Finished here in every case: dropped unfinished, the zip writer would finish in its `Drop`.
    let file = npz
        .finish()
        .map_err(anyhow::Error::from)
        .and_then(|writer| writer.into_inner().map_err(|e| e.into_error().into()));
    match (added, file) {
        (Ok(()), Ok(file)) => Ok(file.into_result()?),
        (Err(e), Ok(file)) => {
            file.into_result()?;
            Err(e.into())
        }
        (Err(e), Err(_)) => Err(e.into()),
        (Ok(()), Err(e)) => Err(e),
    }
}

/// The file under an npz writer. The zip writer, dropped unfinished after an error, finishes the archive in its
/// `Drop`, fails again and prints that failure to stderr itself ("ZipWriter drop failed: ..."), before the error
/// is reported. So after the first error (kept, to report), and once [`crate::files::cancel_writes`] is called,
/// this writer takes every write without writing it: the archive, discarded anyway, then finishes quietly.
struct Discarding<W> {
    inner: W,
    /// Position and length as the writer sees them (kept up after an error, for its seeks).
    pos: u64,
    len: u64,
    failed: Option<std::io::Error>,
}

impl<W: Write + Seek> Discarding<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            pos: 0,
            len: 0,
            failed: None,
        }
    }

    /// The first error, if one happened.
    fn into_result(self) -> std::io::Result<()> {
        self.failed.map_or(Ok(()), Err)
    }

    /// Keeps `e` as the first error and hands the writer a copy to stop on. The position moves to the end: a write
    /// that failed in a header the zip writer had gone back to rewrite leaves it there, before where its entry's
    /// data began, and finishing from there would break its invariant (a panic where debug assertions are on).
    fn fail(&mut self, e: std::io::Error) -> std::io::Error {
        let copy = std::io::Error::new(e.kind(), e.to_string());
        self.failed = Some(e);
        self.pos = self.len;
        copy
    }
}

impl<W: Write + Seek> Write for Discarding<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed.is_none() && crate::files::writes_cancelled() {
            return Err(self.fail(std::io::Error::other(crate::files::Cancelled)));
        }
        let n = if self.failed.is_some() {
            buf.len()
        } else {
            match self.inner.write(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
                Err(e) => return Err(self.fail(e)),
            }
        };
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.inner.flush().map_err(|e| self.fail(e))
    }
}

impl<W: Write + Seek> Seek for Discarding<W> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if self.failed.is_none() {
            self.pos = self.inner.seek(to).map_err(|e| self.fail(e))?;
            return Ok(self.pos);
        }
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use ndarray::Array1;

    use super::*;

    /// A file that takes `room` bytes, then fails as a full disk does.
    struct FullDisk {
        file: Cursor<Vec<u8>>,
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.file.position() as usize + buf.len() > self.room {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            self.file.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FullDisk {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.file.seek(to)
        }
    }

    /// A file whose `fail_at`-th write (counting from 0) fails, as a cancelled write does: wherever the archive
    /// is, in an array's data or in rewriting a header it has gone back to.
    struct FailingWrite {
        file: Cursor<Vec<u8>>,
        writes: usize,
        fail_at: usize,
    }

    impl Write for FailingWrite {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            if self.writes - 1 == self.fail_at {
                return Err(std::io::Error::other("failed here"));
            }
            self.file.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FailingWrite {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.file.seek(to)
        }
    }

    #[test]
    fn a_write_failing_anywhere_is_the_error_and_the_archive_finishes_quietly() {
        let (a, b) = (
            Array1::from_shape_fn(20_000, |i| (i as f32).sin()),
            Array1::from_shape_fn(3, |i| i as f32),
        );
        let add = |npz: &mut QuietNpz<&mut FailingWrite>| {
            npz.add_array("a", &a)?;
            npz.add_array("b", &b)
        };
        let mut whole = FailingWrite {
            file: Cursor::new(Vec::new()),
            writes: 0,
            fail_at: usize::MAX,
        };
        write_npz(&mut whole, add).unwrap();
        assert!(whole.writes > 10, "{} writes", whole.writes);
        for fail_at in 0..whole.writes {
            let mut file = FailingWrite {
                file: Cursor::new(Vec::new()),
                writes: 0,
                fail_at,
            };
            let err = write_npz(&mut file, add).expect_err("a failed write is an error");
            // The file's own error, or the archive's wrapping of it where finishing failed.
            assert!(
                format!("{err:#}").ends_with("failed here"),
                "write {fail_at}: {err:#}"
            );
        }
    }

    #[test]
    fn a_full_disk_is_the_error_and_the_archive_finishes_quietly() {
        let values = Array1::from_shape_fn(100_000, |i| (i as f32).sin());
        let add = |npz: &mut QuietNpz<&mut FullDisk>| npz.add_array("values", &values);
        let mut disk = FullDisk {
            file: Cursor::new(Vec::new()),
            room: 1 << 30,
        };
        write_npz(&mut disk, add).unwrap();
        let whole = disk.file.get_ref().len();
        // Full half-way: the disk's own error, and the writer finished (a zip writer dropped unfinished would
        // print "ZipWriter drop failed" from its `Drop`, which `qamlab collect`'s test looks for).
        let mut disk = FullDisk {
            file: Cursor::new(Vec::new()),
            room: whole / 2,
        };
        let err = write_npz(&mut disk, add).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("No space left on device"),
            "{err:#}"
        );
        assert!(disk.file.get_ref().len() <= whole / 2);
    }
}
