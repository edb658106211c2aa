//! Background threads run below the fan-out's priority.
//!
//! Backtests, optimizations, history reads and indicator warm-ups are CPU work any anonymous client can ask
//! for, within its budgets. On a machine with two cores that work competes with the threads that deliver
//! live updates, and every millisecond it holds a core shows in every healthy client's latency (the abuse
//! benchmark: a backtest flood put the healthy p99 at 3×). The threads that do it therefore lower their own
//! scheduling priority (Linux `nice`, per thread) when they start: when a core is idle they run at full
//! speed, and when the hub or a socket worker wakes up the scheduler prefers it. Nothing else changes: the
//! budgets still bound how much of that work exists.

/// The `nice` value of background threads: 10 gives a normal thread about ten times their share of a core.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]. A failure (another OS, a sandbox that forbids
/// it) leaves the thread as it was: the work is the same, only its priority is not lowered.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only. Never raise it: a
        // server started with `nice -n 15` keeps its background threads at 15.
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), current.max(BACKGROUND_NICE)) {
            tracing::debug!(error = %e, "cannot lower a background thread's priority");
        }
    }
}

/// A pool of `threads` low-priority threads named `name-<i>`.
pub fn pool(name: &'static str, threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(|_| lower_this_thread())
        .build()
}

/// A new actix arbiter (a thread with its own event loop) whose thread runs at background priority.
/// Call it from within an actix system.
pub fn arbiter() -> actix::ArbiterHandle {
    let handle = actix::Arbiter::new().handle();
    // The first thing the arbiter's thread runs.
    handle.spawn_fn(lower_this_thread);
    handle
}

/// Runs `work` on `pool` and waits for its result without holding the caller's thread; `None` if the work
/// panicked.
pub async fn run_on<T: Send + 'static>(
    pool: &rayon::ThreadPool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let _ = tx.send(work());
    });
    rx.await.ok()
}

/// The calling thread's nice value (for tests).
#[cfg(all(test, target_os = "linux"))]
pub fn this_thread_nice() -> Option<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            this_thread_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, Some(BACKGROUND_NICE.max(before.unwrap_or(0))));
        assert_eq!(this_thread_nice(), before, "the caller's own priority is unchanged");
    }

    #[tokio::test]
    async fn pool_threads_run_lowered() {
        let pool = pool("test-background", 1).expect("pool");
        let nice = run_on(&pool, this_thread_nice).await.expect("ran");
        assert!(nice >= Some(BACKGROUND_NICE), "pool thread nice {nice:?}");
    }
}
