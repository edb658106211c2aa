//! Backtest and optimization jobs: run off the async runtime on rayon's pool (one thread per core),
//! observable while they run, cancellable, and kept after they finish for a bounded time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candlecast_actors::strategy::optimize::Progress;
use serde_json::{json, Value};

/// Finished jobs kept at most; the oldest finished go first.
const MAX_FINISHED: usize = 200;
/// How long a finished job's result stays available.
const RESULT_TTL: Duration = Duration::from_secs(3600);
/// Jobs running at once; more are refused (the pool is busy anyway).
const MAX_RUNNING: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backtest,
    Optimize,
}

/// Where a job is.
#[derive(Debug, Clone)]
pub enum State {
    Running,
    Done(Arc<Value>),
    Failed(String),
    Cancelled,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done(_) => "done",
            State::Failed(_) => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

struct Job {
    kind: Kind,
    state: State,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    finished_at: Option<Instant>,
}

/// Why a job could not be started or found.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{MAX_RUNNING} jobs are already running; try again when one has finished")]
    Busy,
    #[error("no job {0:?} (unknown, or its result expired)")]
    NotFound(String),
}

/// The store of jobs, shared by the routes.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
    next: AtomicU64,
}

impl Jobs {
    /// Starts `work` on the pool. It gets the job's progress and cancel flag and returns the result.
    pub fn start<F>(self: &Arc<Self>, kind: Kind, work: F) -> Result<String, JobError>
    where
        F: FnOnce(&Progress, &AtomicBool) -> Result<Value, String> + Send + 'static,
    {
        let progress = Arc::new(Progress::new());
        let cancel = Arc::new(AtomicBool::new(false));
        let id = {
            let mut jobs = self.lock();
            expire(&mut jobs, Instant::now(), RESULT_TTL, MAX_FINISHED);
            if jobs.values().filter(|j| matches!(j.state, State::Running)).count() >= MAX_RUNNING {
                return Err(JobError::Busy);
            }
            let prefix = if kind == Kind::Backtest { "bt" } else { "opt" };
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let id = format!("{prefix}-{:x}{:08x}", self.next.fetch_add(1, Ordering::Relaxed), nanos);
            jobs.insert(
                id.clone(),
                Job {
                    kind,
                    state: State::Running,
                    progress: progress.clone(),
                    cancel: cancel.clone(),
                    finished_at: None,
                },
            );
            id
        };
        let (store, job_id) = (self.clone(), id.clone());
        rayon::spawn(move || {
            let outcome = work(&progress, &cancel);
            let state = match outcome {
                _ if cancel.load(Ordering::Relaxed) => State::Cancelled,
                Ok(v) => State::Done(Arc::new(v)),
                Err(e) => State::Failed(e),
            };
            if let Some(job) = store.lock().get_mut(&job_id) {
                job.state = state;
                job.finished_at = Some(Instant::now());
            }
        });
        Ok(id)
    }

    /// `{"job_id","kind","status","progress", "result"|"error"}`.
    pub fn describe(&self, id: &str, kind: Kind, with_result: bool) -> Result<Value, JobError> {
        let jobs = self.lock();
        let job = jobs.get(id).filter(|j| j.kind == kind).ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        let mut v = json!({
            "job_id": id,
            "status": job.state.name(),
            "progress": if matches!(job.state, State::Done(_)) { 100.0 } else { job.progress.percent() },
            "done": job.progress.done(),
            "total": job.progress.total(),
        });
        match &job.state {
            State::Done(result) if with_result => v["result"] = (**result).clone(),
            State::Failed(e) => v["error"] = json!(e),
            _ => {}
        }
        Ok(v)
    }

    /// Asks a running job to stop; it takes effect at the job's next check (milliseconds).
    pub fn cancel(&self, id: &str, kind: Kind) -> Result<(), JobError> {
        let jobs = self.lock();
        let job = jobs.get(id).filter(|j| j.kind == kind).ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        job.cancel.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        // Every update is a single assignment: a poisoned map is still consistent.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops results older than `ttl`, then the oldest finished ones beyond `cap`. Running jobs always stay.
fn expire(jobs: &mut HashMap<String, Job>, now: Instant, ttl: Duration, cap: usize) {
    jobs.retain(|_, j| j.finished_at.map_or(true, |t| now.saturating_duration_since(t) < ttl));
    let mut finished: Vec<(Instant, String)> =
        jobs.iter().filter_map(|(id, j)| j.finished_at.map(|t| (t, id.clone()))).collect();
    if finished.len() > cap {
        finished.sort();
        for (_, id) in &finished[..finished.len() - cap] {
            jobs.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_done(jobs: &Jobs, id: &str, kind: Kind) -> Value {
        for _ in 0..500 {
            let v = jobs.describe(id, kind, true).unwrap();
            if v["status"] != "running" {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("job never finished");
    }

    #[test]
    fn results_expire_after_the_ttl_and_beyond_the_cap() {
        let t0 = Instant::now();
        let job = |finished_after: Option<u64>| Job {
            kind: Kind::Backtest,
            state: State::Running,
            progress: Arc::default(),
            cancel: Arc::default(),
            finished_at: finished_after.map(|s| t0 + Duration::from_secs(s)),
        };
        let mut jobs: HashMap<String, Job> = HashMap::new();
        for (id, at) in [("old", Some(0)), ("a", Some(100)), ("b", Some(200)), ("c", Some(300)), ("running", None)] {
            jobs.insert(id.into(), job(at));
        }
        // One hour after t0 + 30 s: "old" is past its TTL; of a, b, c only the newest two fit a cap of 2.
        expire(&mut jobs, t0 + Duration::from_secs(3_630), Duration::from_secs(3_600), 2);
        let mut left: Vec<&str> = jobs.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["b", "c", "running"]);
    }

    #[test]
    fn runs_reports_and_cancels() {
        let jobs = Arc::new(Jobs::default());
        let id = jobs.start(Kind::Backtest, |_, _| Ok(json!({"x": 1}))).unwrap();
        assert_eq!(wait_done(&jobs, &id, Kind::Backtest)["result"], json!({"x": 1}));
        assert!(jobs.describe(&id, Kind::Optimize, true).is_err(), "ids are per kind");

        let id = jobs
            .start(Kind::Optimize, |_, cancel| {
                while !cancel.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err("cancelled".into())
            })
            .unwrap();
        assert_eq!(jobs.describe(&id, Kind::Optimize, false).unwrap()["status"], "running");
        jobs.cancel(&id, Kind::Optimize).unwrap();
        assert_eq!(wait_done(&jobs, &id, Kind::Optimize)["status"], "cancelled");

        let id = jobs.start(Kind::Backtest, |_, _| Err("no bars".into())).unwrap();
        assert_eq!(wait_done(&jobs, &id, Kind::Backtest)["error"], "no bars");
        assert!(matches!(jobs.describe("nope", Kind::Backtest, true), Err(JobError::NotFound(_))));
    }
}
