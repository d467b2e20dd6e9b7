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

/// Starts a thread that hands the allocator's free pages back to the system every `every`
/// (`malloc_trim`): freed holes inside the two arenas stay resident otherwise, since glibc only
/// gives back the top of a heap on its own. On the 77-camera check it took the peak RSS from
/// 408 MB to 392–397 MB (five runs, docs/performance.md). For `dumpwatch run` only.
pub fn start_trimming(every: std::time::Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let started = std::time::Instant::now();
                // SAFETY: malloc_trim only releases free memory; it is thread-safe.
                unsafe {
                    libc::malloc_trim(0);
                }
                tracing::trace!(
                    took_ms = started.elapsed().as_secs_f64() * 1e3,
                    "free memory handed back"
                );
            }
        })
        .expect("spawning the malloc-trim thread");
}
