//! The process's memory allocator settings.

/// Keeps glibc's allocator from holding memory the service no longer uses. Decoded pictures
/// (1.4 MB at 720p) and the detector's intermediate tensors come and go many times a second
/// across a dozen threads: with the defaults every thread gets its own arena, and after the first
/// such buffer is freed glibc raises its mmap threshold so later ones come from those arenas,
/// whose freed holes stay resident. Two arenas and a fixed 256 KiB threshold (big buffers are
/// mapped and unmapped) took the 77-camera check's peak RSS down by about a third
/// (docs/performance.md). Call it first thing in `main`, before any other thread starts.
pub fn bound_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
