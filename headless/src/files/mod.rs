//! The files qamlab writes and reads for the user: atomic writes (`atomic`), their cancellation (`cancel`), checks
//! of the paths given for output (`paths`), reading files whole (`read`), and telling the lab's own files by their
//! first bytes (`kind`). Each is used from here:
//! [`write_atomically`], [`check_writable`], and so on.

mod atomic;
mod cancel;
mod kind;
mod paths;
mod read;

pub use atomic::{
    NotPlaced, StagedFile, parent_dir, sync_dir, write_atomically, write_bytes_atomically,
    write_staged,
};
pub use cancel::{Cancelled, cancel_writes, check_cancelled, writes_cancelled};
pub use kind::{FileKind, SNIFFED_BYTES, sniff, sniff_file};
pub use paths::{check_no_literal_tilde, check_out_dir, check_writable, through_links};
#[cfg(test)]
pub(crate) use read::mkfifo;
pub use read::{
    is_not_found, read_data_file, read_regular_file, read_regular_text, read_stored_file,
    read_stored_text,
};
