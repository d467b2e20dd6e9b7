//! Thread priority: work that must not take the CPU from the pipeline (the HTTP API) runs on
//! threads with a higher nice value, so on a saturated machine the decoders and detectors are
//! served first and the API gets what is left.

/// Raises the calling thread's nice value to `nice` (at most 19; one at or below the thread's
/// own leaves it as it is). On Linux the nice value belongs to the thread, so only the calling
/// thread is affected. A refusal is logged and otherwise ignored (the thread runs as before).
pub fn lower_this_thread(nice: i32) {
    if nice <= this_thread_nice() {
        return;
    }
    // SAFETY: setpriority reads no memory of ours; `who` 0 is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice.min(19)) };
    if rc != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(),
                       "cannot lower this thread's priority; it runs at the normal priority");
    }
}

/// The calling thread's nice value.
pub fn this_thread_nice() -> i32 {
    // SAFETY: as above. (-1 is also a valid answer; errno is not checked: `who` 0 cannot fail.)
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread(7);
            this_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, before.max(7));
        assert_eq!(this_thread_nice(), before);
    }
}
