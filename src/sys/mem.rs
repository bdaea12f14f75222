//! Heap tuning for a small resident set.
//!
//! glibc raises its mmap threshold dynamically after a large block is
//! freed, so later large buffers (a STATS payload for 1000 instances is a
//! few hundred KiB) come from the heap and their pages stay resident after
//! they are freed. Fixing the thresholds keeps large buffers in their own
//! mappings, returned to the kernel when freed.
//!
//! One arena: glibc gives each new thread that allocates an arena of its
//! own (up to eight per core), each reserving 64 MiB of address space and
//! keeping a few pages resident for good. Our helper threads (the syncer
//! and its short-lived parallel syncs, the resolver) allocate little and
//! spend their time in system calls, so sharing the main arena's lock
//! costs nothing measurable, while a 1000-START burst used to leave
//! fifteen arenas behind.

/// Fixes glibc's mmap and trim thresholds and its arena count (no effect
/// on other libcs).
pub(crate) fn keep_heap_small() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called at start-up
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
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
