//! How the C allocator keeps the memory libtorch frees on the CPU.
//!
//! An eager update allocates and frees the same few hundred tensors every step. With glibc's
//! defaults a freed block above 128 KiB (a batch's activations) goes back to the kernel, by
//! `munmap` or by trimming the heap, and the next step takes page faults to get it again: on the
//! dev box the kernel's page handling was 16 % of a small QAM update. glibc raises its thresholds
//! as it sees large blocks freed, so a long training run gets there by itself (the demo's update
//! rate was the same with and without these settings, and its peak memory 8 % lower without);
//! fixed from the start they spare the short runs, the benchmarks and acting on large batches
//! their page faults: the small update 5-12 % faster, acting on 1024 observations twice as fast
//! (docs/benchmarks.md, "Agent").

/// Blocks from this size on are still mapped on their own (and returned when freed): large
/// datasets and replay buffers, which are not freed every step.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// The free memory at the heap's top that is kept rather than given back.
pub const TRIM_THRESHOLD: usize = 256 << 20;

/// Sets glibc's thresholds so freed tensors' memory is reused rather than given back, unless the
/// user set `GLIBC_TUNABLES` for malloc, which then stands. Call it once, early in `main`.
/// Returns whether the thresholds were set.
pub fn keep_freed_memory() -> bool {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        return false;
    }
    set_thresholds()
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
