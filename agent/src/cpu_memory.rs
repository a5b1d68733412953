//! How the C allocator keeps the memory libtorch frees on the CPU.
//!
//! An eager update allocates and frees the same few hundred tensors every step. With glibc's
//! defaults a freed block above 128 KiB (a batch's activations) goes back to the kernel, by
//! `munmap` or by trimming the heap, and the next step takes page faults to get it again: on the
//! dev box the kernel's page handling was 16 % of a small QAM update. glibc raises its thresholds
//! as it sees large blocks freed, so a long training run gets there by itself (the demo's update
//! rate was the same with and without these settings, and its peak memory 8 % lower without);
//! fixed from the start they spare the short runs, the benchmarks and acting on large batches
//! their page faults: the small update 5-12 % faster, acting on 1024 observations at the demo's
//! size twice as fast (docs/benchmarks.md, "Agent").

use std::sync::atomic::{AtomicU8, Ordering};

/// Blocks from this size on are still mapped on their own (and returned when freed): large
/// datasets and replay buffers, which are not freed every step. (glibc's own adaptation stops at
/// this value too.)
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// The free memory at the heap's top that is kept rather than given back.
pub const TRIM_THRESHOLD: usize = 256 << 20;
/// The environment variable that turns the setting off: `QAMLAB_MALLOC=glibc` keeps glibc's
/// defaults.
pub const MALLOC_ENV: &str = "QAMLAB_MALLOC";

/// What [`keep_freed_memory`] did, for `qamlab doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Allocator {
    /// Not called in this process.
    Untouched = 0,
    /// The thresholds are set.
    KeepsFreedMemory = 1,
    /// Left alone: the user set glibc's thresholds (`MALLOC_*_` or `GLIBC_TUNABLES`).
    UserSettings = 2,
    /// Left alone: `QAMLAB_MALLOC=glibc`.
    GlibcDefaults = 3,
    /// Not glibc, or glibc refused the values.
    NotGlibc = 4,
}

/// The last [`keep_freed_memory`] outcome, as its discriminant.
static STATE: AtomicU8 = AtomicU8::new(Allocator::Untouched as u8);

impl Allocator {
    /// One line for `qamlab doctor`.
    pub fn describe(self) -> &'static str {
        match self {
            Allocator::Untouched => "the C library's defaults",
            Allocator::KeepsFreedMemory => {
                "glibc keeps freed memory for reuse (mmap from 32 MiB, trim beyond 256 MiB; QAMLAB_MALLOC=glibc for its defaults)"
            }
            Allocator::UserSettings => "glibc, with the thresholds set in the environment",
            Allocator::GlibcDefaults => "glibc's defaults (QAMLAB_MALLOC=glibc)",
            Allocator::NotGlibc => "the C library's defaults (not glibc)",
        }
    }
}

/// Sets glibc's thresholds so freed tensors' memory is reused rather than given back, unless
/// `QAMLAB_MALLOC=glibc` or the user set those thresholds (`MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`, `MALLOC_MMAP_MAX_`, or the same tunables in
/// `GLIBC_TUNABLES`), which then stand. Call it once, at the start of `main`, before any tensor.
pub fn keep_freed_memory() -> Allocator {
    let outcome = if std::env::var_os(MALLOC_ENV).is_some_and(|v| v == "glibc") {
        Allocator::GlibcDefaults
    } else if user_set_thresholds() {
        Allocator::UserSettings
    } else if set_thresholds() {
        Allocator::KeepsFreedMemory
    } else {
        Allocator::NotGlibc
    };
    STATE.store(outcome as u8, Ordering::Relaxed);
    outcome
}

/// What [`keep_freed_memory`] did in this process.
pub fn allocator() -> Allocator {
    match STATE.load(Ordering::Relaxed) {
        1 => Allocator::KeepsFreedMemory,
        2 => Allocator::UserSettings,
        3 => Allocator::GlibcDefaults,
        4 => Allocator::NotGlibc,
        _ => Allocator::Untouched,
    }
}

/// A warning for a [`MALLOC_ENV`] value that is not understood, to print at start.
pub fn env_warning() -> Option<String> {
    let value = std::env::var_os(MALLOC_ENV)?;
    (value != "glibc").then(|| {
        format!(
            "{MALLOC_ENV}={} is not understood (glibc keeps glibc's defaults); qamlab's setting applies",
            value.to_string_lossy()
        )
    })
}

fn user_set_thresholds() -> bool {
    const ENV: [&str; 4] = [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_TOP_PAD_",
        "MALLOC_MMAP_MAX_",
    ];
    const TUNABLES: [&str; 4] = [
        "glibc.malloc.mmap_threshold",
        "glibc.malloc.trim_threshold",
        "glibc.malloc.top_pad",
        "glibc.malloc.mmap_max",
    ];
    ENV.iter().any(|v| std::env::var_os(v).is_some())
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| TUNABLES.iter().any(|n| t.contains(n)))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    // Setting the mmap threshold ends glibc's own adjustment of both thresholds, so both are set.
    // SAFETY: mallopt only changes the allocator's parameters; any thread may call it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}
