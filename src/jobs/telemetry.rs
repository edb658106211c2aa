//! The jobs' figures in `/api/stats` (`jobs`) and `/metrics`.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::Jobs;

/// `{"running":..,"kept_results":..,"kept_bytes":..,"started":..,"history_loads":..}`
pub fn stats_json(jobs: &Jobs) -> Value {
    let (running, kept, bytes) = jobs.figures();
    json!({
        "running": running,
        "kept_results": kept,
        "kept_bytes": bytes,
        "started": jobs.started.load(Ordering::Relaxed),
        "history_loads": jobs.history_loads.load(Ordering::Relaxed),
    })
}

/// The HELP lines of the series [`record_metrics`] writes.
pub fn describe_metrics() {
    metrics::describe_gauge!("candlecast_jobs_running", "Backtest and optimization jobs running now");
    metrics::describe_gauge!("candlecast_jobs_kept_results", "Finished job results kept for clients to fetch");
    metrics::describe_gauge!("candlecast_jobs_kept_bytes", "Estimated size of the kept job results, bytes");
    metrics::describe_counter!("candlecast_jobs_started_total", "Backtest and optimization jobs started");
    metrics::describe_counter!("candlecast_jobs_history_loads_total", "History loads made for jobs");
}

/// Copies the figures into the Prometheus recorder.
pub fn record_metrics(jobs: &Jobs) {
    // The refusal family and the held-back key log lines are recorded with every other refusal in
    // `http::status`.
    let (running, kept, bytes) = jobs.figures();
    metrics::gauge!("candlecast_jobs_running").set(running as f64);
    metrics::gauge!("candlecast_jobs_kept_results").set(kept as f64);
    metrics::gauge!("candlecast_jobs_kept_bytes").set(bytes as f64);
    metrics::counter!("candlecast_jobs_started_total").absolute(jobs.started.load(Ordering::Relaxed));
    metrics::counter!("candlecast_jobs_history_loads_total").absolute(jobs.history_loads.load(Ordering::Relaxed));
}
