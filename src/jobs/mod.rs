//! Backtest and optimization jobs: run on a pool of their own (`[jobs] threads`, never every core),
//! observable while they run, cancellable, kept after they finish within a byte, count and time budget.
//!
//! A route first asks for a [`Reservation`] (the running-job budgets of its [`Caller`]), and only then
//! loads history (on the loader thread, off the HTTP workers) and starts the work. Results are stored
//! serialized (`Bytes`): reading one clones a reference under the lock, never the result.

pub(crate) mod access;
pub(crate) mod budget;
mod telemetry;

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use candlecast_actors::strategy::{BacktestError, BuildError, OptimizeError, Progress};
use serde_json::{json, Value};

pub use access::Access;
pub use budget::{Caller, JobError, Running, Size};
pub use telemetry::{describe_metrics, record_metrics, stats_json};

use crate::config::JobsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backtest,
    Optimize,
}

/// Why a job failed (its result then says `"status": "failed"` with this text).
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Backtest(#[from] BacktestError),
    #[error(transparent)]
    Optimize(#[from] OptimizeError),
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    #[error("the result has {bytes} bytes, above jobs.results_max_bytes ({limit})")]
    TooLarge { bytes: usize, limit: usize },
}

/// Where a job is.
#[derive(Debug, Clone)]
pub enum State {
    /// Reserved, loading its bars or running.
    Running,
    /// The result, serialized as a JSON object.
    Done(Bytes),
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

    fn bytes(&self) -> usize {
        match self {
            State::Done(b) => b.len(),
            State::Failed(e) => e.len(),
            _ => 0,
        }
    }
}

struct Job {
    kind: Kind,
    owner: Caller,
    state: State,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    finished_at: Option<Instant>,
}

/// What `describe` found: the small part as JSON, the result as its stored bytes.
pub struct Described {
    pub head: Value,
    pub result: Option<Bytes>,
}

impl Described {
    /// The body `{...head, "result": <result>}` as chunks, without copying the result.
    pub fn into_chunks(self) -> Vec<Bytes> {
        let mut head = serde_json::to_vec(&self.head).unwrap_or_else(|_| b"{}".to_vec());
        let Some(result) = self.result else { return vec![Bytes::from(head)] };
        // `head` is an object: reopen it before its closing brace.
        head.pop();
        if head.len() > 1 {
            head.push(b',');
        }
        head.extend_from_slice(b"\"result\":");
        vec![Bytes::from(head), result, Bytes::from_static(b"}")]
    }
}

/// The store of jobs, shared by the routes.
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
    config: JobsConfig,
    pub access: Access,
    pool: rayon::ThreadPool,
    /// Where history is loaded and merged (one thread of its own); `None` outside an actix system.
    loader: Option<actix::ArbiterHandle>,
    next: AtomicU64,
    ids: std::collections::hash_map::RandomState,
    /// History loads jobs made: a refused job makes none.
    pub history_loads: AtomicU64,
    pub started: AtomicU64,
}

impl Jobs {
    /// `keys` checks trader keys; `admin` admin keys (they are trader keys too) and counts its refusals.
    pub fn new(
        config: &JobsConfig,
        keys: Arc<crate::auth::Keys>,
        admin: Arc<crate::http::admin::Admin>,
    ) -> Result<Jobs, JobError> {
        let threads = match config.threads {
            0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1),
            n => n,
        };
        // Jobs and their history loads run below the fan-out's priority (candlecast_actors::background).
        let pool = candlecast_actors::background::pool("jobs", threads, candlecast_actors::background::Priority::Idle)
            .map_err(|e| JobError::Pool(e.to_string()))?;
        let loader = actix::System::try_current()
            .map(|_| candlecast_actors::background::arbiter(candlecast_actors::background::Priority::Idle));
        Ok(Jobs {
            jobs: Mutex::default(),
            config: config.clone(),
            access: Access::new(config, keys, admin),
            pool,
            loader,
            next: AtomicU64::new(0),
            ids: Default::default(),
            history_loads: AtomicU64::new(0),
            started: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// Takes a running slot for `caller`, or says which budget is full. Nothing has been loaded yet.
    pub fn reserve(self: &Arc<Self>, kind: Kind, caller: Caller) -> Result<Reservation, JobError> {
        let progress = Arc::new(Progress::new());
        let cancel = Arc::new(AtomicBool::new(false));
        let mut jobs = self.lock();
        expire(&mut jobs, Instant::now(), &self.config);
        let running = || jobs.values().filter(|j| matches!(j.state, State::Running));
        let full = |limit: Running, count: usize| (count >= limit.max(&self.config)).then_some(limit);
        let refused = full(Running::Total, running().count()).or_else(|| match caller {
            Caller::Anonymous(host) => full(Running::Anonymous, running().filter(|j| j.owner.is_anonymous()).count())
                .or_else(|| full(Running::PerHost, running().filter(|j| j.owner == Caller::Anonymous(host)).count())),
            Caller::Trader { .. } => full(Running::PerKey, running().filter(|j| j.owner == caller).count()),
        });
        if let Some(limit) = refused {
            drop(jobs);
            candlecast_actors::refusals::refused(limit.name());
            return Err(JobError::Busy {
                limit,
                max: limit.max(&self.config),
                retry_after_secs: self.config.retry_after_secs,
            });
        }
        let prefix = if kind == Kind::Backtest { "bt" } else { "opt" };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The counter keeps ids unique; the hash (keyed per process) keeps them hard to guess.
        let id = format!("{prefix}-{n:x}-{:016x}", self.ids.hash_one(n));
        jobs.insert(
            id.clone(),
            Job {
                kind,
                owner: caller,
                state: State::Running,
                progress: progress.clone(),
                cancel: cancel.clone(),
                finished_at: None,
            },
        );
        Ok(Reservation { jobs: self.clone(), id: Some(id), progress, cancel })
    }

    /// Runs `load` on the loader thread (history merges stay off the HTTP workers) and counts it.
    pub async fn load<F, T>(&self, load: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.history_loads.fetch_add(1, Ordering::Relaxed);
        let Some(loader) = &self.loader else { return Some(load.await) };
        let (tx, rx) = tokio::sync::oneshot::channel();
        loader.spawn(async move {
            let _ = tx.send(load.await);
        });
        rx.await.ok()
    }

    /// The job's state; with `with_result`, its stored result too.
    pub fn describe(&self, id: &str, kind: Kind, with_result: bool) -> Result<Described, JobError> {
        let jobs = self.lock();
        let job = jobs.get(id).filter(|j| j.kind == kind).ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        let mut head = json!({
            "job_id": id,
            "status": job.state.name(),
            "progress": if matches!(job.state, State::Done(_)) { 100.0 } else { job.progress.percent() },
            "done": job.progress.done(),
            "total": job.progress.total(),
        });
        let mut result = None;
        match &job.state {
            State::Done(bytes) if with_result => result = Some(bytes.clone()),
            State::Failed(e) => head["error"] = json!(e),
            _ => {}
        }
        Ok(Described { head, result })
    }

    /// Asks a running job to stop; it takes effect at the job's next check (milliseconds). Only its owner
    /// may: to anyone else the job does not exist.
    pub fn cancel(&self, id: &str, kind: Kind, caller: Caller) -> Result<(), JobError> {
        let jobs = self.lock();
        let job = jobs
            .get(id)
            .filter(|j| j.kind == kind && j.owner == caller)
            .ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        job.cancel.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Jobs running now, and finished results kept with their bytes.
    pub fn figures(&self) -> (usize, usize, usize) {
        let jobs = self.lock();
        let running = jobs.values().filter(|j| matches!(j.state, State::Running)).count();
        let kept: Vec<usize> = jobs.values().filter(|j| j.finished_at.is_some()).map(|j| j.state.bytes()).collect();
        (running, kept.len(), kept.iter().sum())
    }

    fn finish(&self, id: &str, state: State) {
        let mut jobs = self.lock();
        if let Some(job) = jobs.get_mut(id) {
            job.state = state;
            job.finished_at = Some(Instant::now());
        }
        expire(&mut jobs, Instant::now(), &self.config);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        // Every update is a single assignment: a poisoned map is still consistent.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running slot taken by [`Jobs::reserve`]; dropped without [`Reservation::start`] (the history could
/// not be loaded, the request was bad), it frees the slot.
pub struct Reservation {
    jobs: Arc<Jobs>,
    id: Option<String>,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
}

impl Reservation {
    /// Runs `work` on the job pool; it gets the job's progress and cancel flag and returns the result
    /// serialized as a JSON object (serializing there keeps it off the HTTP workers).
    pub fn start<F>(mut self, work: F) -> String
    where
        F: FnOnce(&Progress, &AtomicBool) -> Result<Vec<u8>, JobFailure> + Send + 'static,
    {
        let id = self.id.take().unwrap_or_default();
        let (store, job_id, progress, cancel) =
            (self.jobs.clone(), id.clone(), self.progress.clone(), self.cancel.clone());
        self.jobs.started.fetch_add(1, Ordering::Relaxed);
        self.jobs.pool.spawn(move || {
            let outcome = work(&progress, &cancel);
            let limit = store.config.results_max_bytes;
            let state = match outcome {
                _ if cancel.load(Ordering::Relaxed) => State::Cancelled,
                Ok(v) if v.len() > limit => State::Failed(JobFailure::TooLarge { bytes: v.len(), limit }.to_string()),
                Ok(v) => State::Done(Bytes::from(v)),
                Err(e) => State::Failed(e.to_string()),
            };
            store.finish(&job_id, state);
        });
        id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.jobs.lock().remove(&id);
        }
    }
}

/// Drops results older than the TTL, then the oldest finished ones beyond the count or byte budget.
/// Running jobs always stay.
fn expire(jobs: &mut HashMap<String, Job>, now: Instant, config: &JobsConfig) {
    let ttl = Duration::from_secs(config.result_ttl_secs);
    jobs.retain(|_, j| j.finished_at.is_none_or(|t| now.saturating_duration_since(t) < ttl));
    let mut finished: Vec<(Instant, usize, String)> =
        jobs.iter().filter_map(|(id, j)| j.finished_at.map(|t| (t, j.state.bytes(), id.clone()))).collect();
    let mut bytes: usize = finished.iter().map(|f| f.1).sum();
    if finished.len() <= config.results_max_count && bytes <= config.results_max_bytes {
        return;
    }
    finished.sort();
    let mut count = finished.len();
    for (_, size, id) in &finished {
        if count <= config.results_max_count && bytes <= config.results_max_bytes {
            break;
        }
        jobs.remove(id);
        count -= 1;
        bytes -= size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyId;
    use std::net::IpAddr;

    fn config(overrides: &[(&str, toml::Value)]) -> JobsConfig {
        crate::Config::load_with(None, overrides).unwrap().jobs
    }

    fn jobs(overrides: &[(&str, toml::Value)]) -> Arc<Jobs> {
        {
            let keys = Arc::new(crate::auth::Keys::configured(crate::auth::Role::Trader, &[]));
            Arc::new(
                Jobs::new(&config(overrides), keys.clone(), Arc::new(crate::http::admin::Admin::new(keys))).unwrap(),
            )
        }
    }

    fn host(n: u8) -> Caller {
        Caller::Anonymous(IpAddr::from([10, 0, 0, n]))
    }

    fn body(jobs: &Jobs, id: &str, kind: Kind) -> Value {
        let chunks = jobs.describe(id, kind, true).unwrap().into_chunks();
        serde_json::from_slice(&chunks.concat()).unwrap()
    }

    fn wait_done(jobs: &Jobs, id: &str, kind: Kind) -> Value {
        for _ in 0..500 {
            let v = body(jobs, id, kind);
            if v["status"] != "running" {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("job never finished");
    }

    #[test]
    fn results_expire_after_the_ttl_and_beyond_the_count_and_bytes() {
        let t0 = Instant::now();
        let job = |finished_after: Option<u64>, bytes: usize| Job {
            kind: Kind::Backtest,
            owner: host(1),
            state: State::Done(Bytes::from(vec![b' '; bytes])),
            progress: Arc::default(),
            cancel: Arc::default(),
            finished_at: finished_after.map(|s| t0 + Duration::from_secs(s)),
        };
        let fill = || {
            let mut jobs: HashMap<String, Job> = HashMap::new();
            for (id, at) in [("old", Some(0)), ("a", Some(100)), ("b", Some(200)), ("c", Some(300)), ("running", None)]
            {
                jobs.insert(id.into(), job(at, 10));
            }
            jobs
        };
        let left = |jobs: &HashMap<String, Job>| {
            let mut left: Vec<String> = jobs.keys().cloned().collect();
            left.sort();
            left
        };
        // One hour after t0 + 30 s: "old" is past its TTL; of a, b, c only the newest two fit a cap of 2.
        let c = config(&[("jobs.results_max_count", 2.into())]);
        let mut jobs = fill();
        expire(&mut jobs, t0 + Duration::from_secs(3_630), &c);
        assert_eq!(left(&jobs), ["b", "c", "running"]);
        // 25 bytes hold two 10-byte results.
        let c = config(&[("jobs.results_max_bytes", 25.into())]);
        let mut jobs = fill();
        expire(&mut jobs, t0 + Duration::from_secs(400), &c);
        assert_eq!(left(&jobs), ["b", "c", "running"]);
    }

    #[test]
    fn budgets_refuse_per_host_per_key_anonymous_and_total() {
        let jobs = jobs(&[
            ("jobs.max_running", 4.into()),
            ("jobs.max_running_anonymous", 2.into()),
            ("jobs.max_running_per_host", 1.into()),
            ("jobs.max_running_per_key", 1.into()),
        ]);
        let a = jobs.reserve(Kind::Backtest, host(1)).unwrap();
        let busy = |r: Result<Reservation, JobError>| match r {
            Err(JobError::Busy { limit, .. }) => limit,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(busy(jobs.reserve(Kind::Optimize, host(1))), Running::PerHost);
        let b = jobs.reserve(Kind::Backtest, host(2)).unwrap();
        assert_eq!(busy(jobs.reserve(Kind::Backtest, host(3))), Running::Anonymous);
        let key0 = Caller::Trader { admin: false, key: KeyId::Config(0) };
        let k = jobs.reserve(Kind::Backtest, key0).unwrap();
        assert_eq!(busy(jobs.reserve(Kind::Backtest, key0)), Running::PerKey);
        let _admin = jobs.reserve(Kind::Backtest, Caller::Trader { admin: true, key: KeyId::Config(0) }).unwrap();
        assert_eq!(
            busy(jobs.reserve(Kind::Backtest, Caller::Trader { admin: false, key: KeyId::Config(1) })),
            Running::Total
        );
        // A dropped reservation (history failed to load) frees its slot.
        drop(a);
        drop(k);
        jobs.reserve(Kind::Backtest, host(1)).unwrap().start(|_, _| Ok(b"{}".to_vec()));
        drop(b);
        assert_eq!(jobs.history_loads.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn runs_reports_and_cancels() {
        let jobs = jobs(&[]);
        let id = jobs.reserve(Kind::Backtest, host(1)).unwrap().start(|_, _| Ok(br#"{"x":1}"#.to_vec()));
        assert_eq!(wait_done(&jobs, &id, Kind::Backtest)["result"], json!({"x": 1}));
        assert!(jobs.describe(&id, Kind::Optimize, true).is_err(), "ids are per kind");

        let id = jobs.reserve(Kind::Optimize, host(1)).unwrap().start(|_, cancel| {
            while !cancel.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(BacktestError::Cancelled.into())
        });
        assert_eq!(body(&jobs, &id, Kind::Optimize)["status"], "running");
        assert!(jobs.cancel(&id, Kind::Optimize, host(2)).is_err(), "only the owner cancels");
        jobs.cancel(&id, Kind::Optimize, host(1)).unwrap();
        assert_eq!(wait_done(&jobs, &id, Kind::Optimize)["status"], "cancelled");

        let no_bars = || BacktestError::Config("no bars".into());
        let id = jobs.reserve(Kind::Backtest, host(1)).unwrap().start(move |_, _| Err(no_bars().into()));
        assert_eq!(wait_done(&jobs, &id, Kind::Backtest)["error"], no_bars().to_string());
        assert!(matches!(jobs.describe("nope", Kind::Backtest, true), Err(JobError::NotFound(_))));
    }
}
