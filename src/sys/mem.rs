//! Heap tuning for a small resident set.
//!
//! glibc raises its mmap threshold dynamically after a large block is
//! freed, so later large buffers (a STATS payload for 1000 instances is a
//! few hundred KiB) come from the heap and their pages stay resident after
//! they are freed. Fixing the thresholds keeps large buffers in their own
//! mappings, returned to the kernel when freed.

/// Fixes glibc's mmap and trim thresholds (no effect on other libcs).
pub(crate) fn keep_heap_small() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called at start-up
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// Gives free heap pages back to the kernel, also those between live
/// blocks (glibc's `malloc_trim` does that since 2.8). Called after a
/// burst, whose short-lived buffers would otherwise stay resident.
pub(crate) fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it is
    // thread-safe and takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
