//! Background threads run below the fan-out's priority.
//!
//! Backtests, optimizations, history reads and indicator warm-ups are CPU work any anonymous client can ask
//! for, within its budgets. On a machine with two cores that work competes with the threads that deliver
//! live updates, and every millisecond it holds a core shows in every healthy client's latency (the abuse
//! benchmark: a backtest flood put the healthy p99 at 3×). The threads that do it therefore lower their own
//! scheduling priority when they start, at one of two levels ([`Priority`]): when a core is idle they run at
//! full speed, and when the hub or a socket worker wakes up the scheduler prefers it. Nothing else changes:
//! the budgets still bound how much of that work exists.

/// The `nice` value of [`Priority::Low`] threads: 10 gives a normal thread about ten times their share of a
/// core.
pub const BACKGROUND_NICE: i32 = 10;

/// How far below the fan-out a background thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// `nice` 10: work a user is waiting for (history reads), which still gets a share of a busy core.
    Low,
    /// Linux `SCHED_IDLE`: batch work (backtests, optimizations, indicator warm-ups). `nice` alone was not
    /// enough: the kernel's scheduler (EEVDF) lets a running nice-10 thread finish its slice before a woken
    /// hub or socket thread gets the core, a wait of up to a few milliseconds that showed in the healthy
    /// clients' p99 (the abuse benchmark's job and indicator rows at 1.4-1.5x). A `SCHED_IDLE` thread is
    /// preempted the moment any normal thread wakes on its core. The price: while the cores are saturated
    /// it makes no progress, which is what batch work a client asked for should do (its budgets still
    /// bound how much of it waits).
    Idle,
}

/// Lowers the calling thread to `priority`. A failure (another OS, a sandbox that forbids it) leaves the
/// thread as it was, or at `nice` 10 if only `SCHED_IDLE` was refused: the work is the same, only its
/// priority is not lowered.
pub fn lower_this_thread(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        if priority == Priority::Idle && set_idle_policy() {
            return;
        }
        // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only. Never raise it: a
        // server started with `nice -n 15` keeps its background threads at 15.
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), current.max(BACKGROUND_NICE)) {
            tracing::debug!(error = %e, "cannot lower a background thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// Puts the calling thread under `SCHED_IDLE`; false if the kernel refused.
#[cfg(target_os = "linux")]
fn set_idle_policy() -> bool {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    match thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        idle,
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = ?e, "cannot put a background thread under SCHED_IDLE");
            false
        }
    }
}

/// A pool of `threads` threads named `name-<i>`, running at `priority`.
pub fn pool(
    name: &'static str,
    threads: usize,
    priority: Priority,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(move |_| lower_this_thread(priority))
        .build()
}

/// A new actix arbiter (a thread with its own event loop) whose thread runs at `priority`.
/// Call it from within an actix system.
pub fn arbiter(priority: Priority) -> actix::ArbiterHandle {
    let handle = actix::Arbiter::new().handle();
    // The first thing the arbiter's thread runs.
    handle.spawn_fn(move || lower_this_thread(priority));
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

/// Whether the calling thread runs under `SCHED_IDLE` (for tests).
#[cfg(all(test, target_os = "linux"))]
pub fn this_thread_is_idle() -> bool {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    thread_priority::thread_schedule_policy().ok()
        == Some(ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        // Relative to the caller's own priority and policy: the suite may itself run under `nice` or
        // `SCHED_IDLE` (a developer's background run), which a new thread inherits.
        let (before, idle_before) = (this_thread_nice(), this_thread_is_idle());
        let lowered = std::thread::spawn(|| {
            lower_this_thread(Priority::Low);
            (this_thread_nice(), this_thread_is_idle())
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, (Some(BACKGROUND_NICE.max(before.unwrap_or(0))), idle_before));
        assert_eq!(this_thread_nice(), before, "the caller's own priority is unchanged");
    }

    #[test]
    fn idle_threads_run_under_sched_idle() {
        let idle_before = this_thread_is_idle();
        let idle = std::thread::spawn(|| {
            lower_this_thread(Priority::Idle);
            this_thread_is_idle()
        })
        .join()
        .expect("thread");
        assert!(idle, "the thread runs under SCHED_IDLE");
        assert_eq!(this_thread_is_idle(), idle_before, "the caller's own policy is unchanged");
    }

    #[tokio::test]
    async fn pool_threads_run_lowered() {
        let low = pool("test-background", 1, Priority::Low).expect("pool");
        let nice = run_on(&low, this_thread_nice).await.expect("ran");
        assert!(nice >= Some(BACKGROUND_NICE), "pool thread nice {nice:?}");
        let idle = pool("test-idle", 1, Priority::Idle).expect("pool");
        assert_eq!(run_on(&idle, this_thread_is_idle).await, Some(true));
    }
}
