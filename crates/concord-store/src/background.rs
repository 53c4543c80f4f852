//! The priority of the store's background work.
//!
//! A checkpoint is written on a thread of its own while the engine goes on
//! applying writes. On a machine with few cores the two compete, and every
//! millisecond the writer takes from the engine's thread (or the threads
//! that carry the replication stream) is a millisecond of replication lag.
//! Nothing waits for a checkpoint in the meantime: the engine postpones the
//! next one while one is in flight, and the log keeps everything a crash
//! needs. So the writer runs at a lower priority (nice 10), as databases
//! run their compactions: with CPU to spare it is unaffected; under
//! contention it yields, and checkpoints come later and larger instead of
//! lag growing.

/// How much nicer than the process the writer runs (Linux `nice` steps:
/// at +10 a thread gets about a tenth of the CPU share of one at 0 when
/// both want it).
#[cfg(target_os = "linux")]
const NICER_BY: i32 = 10;

/// Lowers the calling thread's scheduling priority for background work.
/// Best effort: where the platform or its limits do not allow it, the
/// thread runs at the process's priority, as it would otherwise.
pub(crate) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // On Linux `setpriority(PRIO_PROCESS, tid)` sets one thread's nice.
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        let _ = rustix::process::setpriority_process(Some(tid), current.saturating_add(NICER_BY));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = rustix::process::getpriority_process(None).expect("reads");
        let lowered = std::thread::spawn(|| {
            super::lower_this_thread();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("reads")
        })
        .join()
        .expect("the thread runs");
        assert_eq!(lowered, (before + super::NICER_BY).min(19));
        let tid = rustix::thread::gettid();
        assert_eq!(
            rustix::process::getpriority_process(Some(tid)).expect("reads"),
            before,
            "the test's own thread keeps its priority"
        );
    }
}
