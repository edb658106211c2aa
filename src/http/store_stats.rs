//! The store's share of `/api/stats` (`store`) and `/metrics` (`candlecast_store_*`): bars and bytes per
//! interval, and what retention deleted. Kept apart from `status.rs`, which shows the persistence actor.
//!
//! Bytes per interval are the store file's size shared out by bar count ([`Usage::bytes`]): every stored
//! bar costs the same to within a byte whatever its interval, and the file size is what the disk holds.

use std::sync::atomic::Ordering;

use candlecast_actors::model::Interval;
use candlecast_actors::persist::Usage;
use serde_json::{json, Map, Value};

use crate::AppState;

/// Prometheus names and help, defined once.
const BARS: (&str, &str) = ("candlecast_store_bars", "Bars held by the store, by interval");
const BYTES: (&str, &str) = (
    "candlecast_store_bytes",
    "Bytes of the store file taken by an interval's bars (the file shared out by bar count)",
);
const FILE_BYTES: (&str, &str) = ("candlecast_store_file_bytes", "Size of the store file on disk, bytes");
const DELETED: (&str, &str) =
    ("candlecast_store_retention_deleted_bars_total", "Bars deleted by retention ([store.retention]), by interval");
const PASSES: (&str, &str) = ("candlecast_store_retention_passes_total", "Retention passes run");
const FAILURES: (&str, &str) = ("candlecast_store_retention_failures_total", "Retention passes that failed");

/// `{"kind":"embedded","file_bytes":..,"bars":..,"intervals":{"1s":{"bars":..,"bytes":..,"keep":"7d",
/// "deleted":..},..},"retention":{"enforced":true,"passes":..,"failures":..,"last_pass_ms":..}}`;
/// `file_bytes`, `bars` and each interval's `bars`/`bytes` are null when the store cannot tell (InfluxDB).
pub async fn stats_json(state: &AppState) -> Value {
    let history = &state.engine.history;
    let usage = history.usage().await;
    let keep = history.retention().describe();
    let r = history.retention_stats();
    let intervals: Map<String, Value> = Interval::ALL
        .iter()
        .map(|&iv| {
            let figures = json!({
                "bars": usage.as_ref().map(|u| u.bars(iv)),
                "bytes": usage.as_ref().map(|u| u.bytes(iv)),
                "keep": keep.get(iv.as_str()).map_or("forever", String::as_str),
                "deleted": r.deleted(iv),
            });
            (iv.as_str().to_owned(), figures)
        })
        .collect();
    json!({
        "kind": history.kind(),
        "file_bytes": usage.as_ref().map(|u| u.file_bytes),
        "bars": usage.as_ref().map(Usage::total_bars),
        "intervals": intervals,
        "retention": {
            "enforced": history.enforces_retention(),
            "passes": r.passes.load(Ordering::Relaxed),
            "failures": r.failures.load(Ordering::Relaxed),
            "last_pass_ms": r.last_pass_ms.load(Ordering::Relaxed),
        },
    })
}

/// Sets every `candlecast_store_*` metric (the usage ones only when the store can tell).
pub async fn record_metrics(state: &AppState) {
    for (name, help) in [BARS, BYTES, FILE_BYTES] {
        metrics::describe_gauge!(name, help);
    }
    for (name, help) in [DELETED, PASSES, FAILURES] {
        metrics::describe_counter!(name, help);
    }
    let history = &state.engine.history;
    if let Some(usage) = history.usage().await {
        metrics::gauge!(FILE_BYTES.0).set(usage.file_bytes as f64);
        for iv in Interval::ALL {
            metrics::gauge!(BARS.0, "interval" => iv.as_str()).set(usage.bars(iv) as f64);
            metrics::gauge!(BYTES.0, "interval" => iv.as_str()).set(usage.bytes(iv) as f64);
        }
    }
    let r = history.retention_stats();
    for iv in Interval::ALL {
        metrics::counter!(DELETED.0, "interval" => iv.as_str()).absolute(r.deleted(iv));
    }
    metrics::counter!(PASSES.0).absolute(r.passes.load(Ordering::Relaxed));
    metrics::counter!(FAILURES.0).absolute(r.failures.load(Ordering::Relaxed));
}
