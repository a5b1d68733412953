//! Datasets in OGBench's npz layout: writing the rows a collection produced, reading them back as transitions.
//!
//! Layout (per row, all episodes concatenated; an episode of T actions has T+1 rows `s0..sT`):
//!
//! | key | dtype | shape | row t |
//! |---|---|---|---|
//! | `observations` | float32 | `[R, obs_dim]` | state `s_t` |
//! | `actions` | float32 | `[R, action_dim]` | `a_t`; zeros on an episode's final row |
//! | `terminals` | bool | `[R]` | true on an episode's final row |
//! | `rewards` | float32 | `[R]` | reward of the step from `s_t` (final row: of `s_T` itself) |
//! | `masks` | float32 | `[R]` | `1 - successes` |
//! | `successes` | bool | `[R]` | whether the step from `s_t` reached success (final row: whether `s_T` is one) |
//! | `qpos`, `qvel` | float32 | `[R, nq]`, `[R, nv]` | state at `s_t` of each moving body (`source`'s `state_bodies`) |
//! | `source` | uint8 | `[bytes]` | [`DatasetSource`] as JSON text (`json.loads(d["source"].tobytes())`) |
//!
//! Files are written with deflate compression (what `np.savez_compressed` writes) through a temporary file renamed
//! into place, so a crash never leaves half a dataset under the final name.
//!
//! Submodules (private; their public items are re-exported here):
//!
//! * `source` — where a dataset came from ([`DatasetSource`]) and its scene's fingerprint.
//! * `rows` — the rows a collection appends ([`DatasetRows`], [`Row`]).
//! * `write` — writing them as an npz archive, atomically.
//! * `transitions` — a dataset read as transitions ([`Dataset`]) and whether it suits a task.
//! * `archive` — whether an npz archive is whole: every entry's checksum, each key once, its `.npy` headers.
//! * `npy` — the `.npy` header of an archive entry, read without its array.
//! * `bounded` — an npz archive whose arrays are read no further than their entries' declared sizes.
//! * `load` — reading an npz archive into one, checking its headers, dtypes and values.

mod archive;
mod bounded;
mod load;
mod npy;
mod rows;
mod source;
#[cfg(test)]
mod test_npz;
mod transitions;
mod write;

pub use load::{file_crc32, load_dataset};
pub use rows::{DatasetRows, Row};
pub use source::{
    ColumnDifference, DatasetSource, FINGERPRINT_VERSION, first_column_difference,
    scene_fingerprint,
};
pub use transitions::Dataset;
pub use write::{write_dataset, write_dataset_staged};
