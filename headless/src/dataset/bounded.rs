//! An npz archive whose arrays are read no further than the sizes its directory declares: the zip reader inflates
//! an entry to its stream's end, whatever size the directory gives it, and the array reader reads whatever follows
//! an array into memory to see that nothing does, so a forged entry declaring a few bytes while it inflates to
//! gigabytes would otherwise be read whole.

use std::io::{Cursor, Read};

use ndarray::{ArrayBase, DataOwned, Dimension};
use ndarray_npy::{ReadNpyExt, ReadNpzError, ReadableElement};

/// An npz archive in memory, read array by array as [`ndarray_npy::NpzReader`] reads it, each entry cut at one byte
/// past its declared size (one byte more than declared is then extra data the array reader refuses).
pub(super) struct BoundedNpz<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> BoundedNpz<'a> {
    /// Opens the archive in `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, ReadNpzError> {
        Ok(Self {
            zip: zip::ZipArchive::new(Cursor::new(bytes))?,
        })
    }

    /// The arrays' names, less one `.npy` each, as numpy gives them.
    pub(super) fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|name| name.strip_suffix(".npy").unwrap_or(name).to_string())
            .collect()
    }

    /// Reads array `name` (or `name.npy`, as numpy looks for it), no further than its entry's declared size.
    pub(super) fn by_name<S, D>(&mut self, name: &str) -> Result<ArrayBase<S, D>, ReadNpzError>
    where
        S::Elem: ReadableElement,
        S: DataOwned,
        D: Dimension,
    {
        let index = match self.zip.index_for_name(name) {
            Some(index) => index,
            None => self
                .zip
                .index_for_name(&format!("{name}.npy"))
                .ok_or(zip::result::ZipError::FileNotFound)?,
        };
        let entry = self.zip.by_index(index)?;
        let declared = entry.size();
        Ok(ArrayBase::<S, D>::read_npy(
            entry.take(declared.saturating_add(1)),
        )?)
    }
}
