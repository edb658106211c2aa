//! Operational routes: `/api/stats` (seed 004's shape, extended), `/health`, `/ready`, `/metrics`.
//!
//! `/health` is liveness: always 200 while the process serves, its `status` says `ok`, `warming_up` (the
//! first start's backfill is still loading history) or `degraded` (and why). `/ready` is readiness for a
//! load balancer: 503 until every configured symbol has its history, then 200.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::{get, web, HttpResponse};
use candlecast_actors::cluster::{Cluster, CLUSTER_METRICS};
use candlecast_actors::telemetry::{Kind, COUNTERS, HUB_GAUGES, METRICS, PERSIST_METRICS};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;

use crate::AppState;

/// Clients, subscriptions, per-pair subscribers, throughput, feeds and limits.
#[utoipa::path(get, path = "/api/stats", tag = "operations", responses((status = 200, body = super::openapi::StatsReply)))]
#[get("/api/stats")]
pub async fn stats(state: web::Data<AppState>) -> HttpResponse {
    // From the hub's counters: O(symbols), no walk over the clients, no message to the hub's thread.
    let hub = state.engine.hub_counters.snapshot();
    let per_pair: BTreeMap<&str, usize> = hub.trading_pair_subscribers.iter().map(|(s, n)| (&**s, *n)).collect();
    let mut stats = Map::new();
    let [(clients, ..), (subscriptions, ..)] = HUB_GAUGES;
    stats.insert(clients.into(), json!(hub.total_clients));
    stats.insert(subscriptions.into(), json!(hub.total_subscriptions));
    for m in METRICS {
        stats.insert(m.stats_name.into(), json!((m.read)(&COUNTERS)));
    }
    stats.insert("trading_pair_subscribers".into(), json!(per_pair));
    let market = state.engine.market.list();
    stats.insert(
        "trade_rate".into(),
        market.iter().map(|e| (e.symbol.to_string(), json!(e.stats.trade_rate()))).collect::<Map<_, _>>().into(),
    );
    let now = candlecast_actors::model::now_ms();
    stats.insert(
        "feeds".into(),
        state.engine.feeds.list().iter().map(|f| super::feeds::feed_json(f, now)).collect::<Vec<Value>>().into(),
    );
    stats.insert("admin_refused".into(), json!(state.admin.refused.load(Ordering::Relaxed)));
    stats.insert("refused".into(), refused_json());
    let held = &state.connections.held;
    stats.insert("http_refusals".into(), json!({ "held": held.held_now(), "closed_at_once": held.closed_at_once() }));
    stats.insert("jobs".into(), crate::jobs::stats_json(&state.jobs));
    stats.insert("scripts".into(), crate::script_ingest::stats::stats_json(&state).into());
    let computations =
        state.services.indicators.send(candlecast_actors::strategy::CountComputations).await.unwrap_or(0);
    stats.insert("indicator_computations".into(), json!(computations));
    stats.insert("uptime_seconds".into(), json!(state.started.elapsed().as_secs()));
    stats.insert("connection_ceiling".into(), json!(state.connection_ceiling));
    if let Some(cluster) = &state.cluster {
        stats.insert("redis".into(), redis_stats(cluster));
    }
    stats.insert("persistence".into(), persistence(&state, now));
    stats.insert("store".into(), super::store_stats::stats_json(&state).await);
    HttpResponse::Ok().json(json!({ "service": "candlecast", "stats": stats }))
}

/// `{"kind":"embedded","healthy":true,"write_lag_ms":0,"buffered_bars":..,"journal_bars":..,
/// "written_bars":..,"retries":..,"failures":..,"dropped_bars":..,"last_error":null}`
fn persistence(state: &AppState, now: i64) -> Value {
    let history = &state.engine.history;
    let mut out = Map::new();
    out.insert("kind".into(), json!(history.kind()));
    let figures = history.stats();
    for m in PERSIST_METRICS {
        let v = (m.read)(figures, now);
        out.insert(m.stats_name.into(), if m.stats_name == "healthy" { json!(v != 0) } else { json!(v) });
    }
    out.insert("last_error".into(), json!(figures.last_error()));
    out.into()
}

/// Liveness and a summary of the feeds.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = super::openapi::HealthReply)))]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let feeds = state.engine.feeds.list();
    let failed: Vec<&str> = feeds
        .iter()
        .filter(|f| f.status.state() == candlecast_actors::feed::FeedState::Failed)
        .map(|f| &*f.symbol)
        .collect();
    // Upstream down or cut off (e.g. IQConnect not connected to DTN): shown, but the server itself is fine.
    let reconnecting: Vec<&str> = feeds
        .iter()
        .filter(|f| f.status.state() == candlecast_actors::feed::FeedState::Reconnecting)
        .map(|f| &*f.symbol)
        .collect();
    // Why each failed feed stopped (e.g. Kite's "token expired or invalid"), so /health alone says what to fix.
    let feed_errors: serde_json::Map<String, Value> = feeds
        .iter()
        .filter(|f| f.status.state() == candlecast_actors::feed::FeedState::Failed)
        .map(|f| (f.symbol.to_string(), json!(f.status.last_error())))
        .collect();
    let redis = state.cluster.as_ref().map(Cluster::report);
    let redis_down = redis.as_ref().is_some_and(|r| !r.connected);
    let history = &state.engine.history;
    let store_ok = history.kind() == "none" || history.stats().healthy.load(Ordering::Relaxed);
    // The journal nearing its cap degrades before the disk (or the cap) stops it taking bars.
    let journal_warning = history.stats().journal_warning();
    let warmup = state.engine.warmup.progress();
    let healthy = failed.is_empty() && !redis_down && store_ok && journal_warning.is_none();
    let status = match (healthy, state.engine.warmup.is_ready()) {
        (false, _) => "degraded",
        (true, false) => "warming_up",
        (true, true) => "ok",
    };
    let mut body = json!({
        "status": status,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "feeds": feeds.len(),
        "failed_feeds": failed,
        "reconnecting_feeds": reconnecting,
        "failed_feed_errors": feed_errors,
        "store": {
            "kind": history.kind(),
            "status": if store_ok { "ok" } else { "down" },
            "error": history.stats().last_error(),
            "journal_bars": history.stats().journal_bars.load(Ordering::Relaxed),
            "journal": journal_warning,
            // Feeds waiting for their turn to backfill (`store.backfill_concurrency`): not live yet.
            "backfills_pending": history.stats().backfills_pending.load(Ordering::Relaxed),
        },
        "history": history_json(state.engine.warmup.is_ready(), warmup),
    });
    if let Some(redis) = redis {
        body["redis"] = json!(redis);
    }
    HttpResponse::Ok().json(body)
}

/// `{"ready":false,"symbols_done":3,"symbols_total":10,"bars":120000,"eta_seconds":14}`
fn history_json(is_ready: bool, p: candlecast_actors::feed::WarmupProgress) -> Value {
    json!({
        "ready": is_ready,
        "symbols_done": p.feeds_done,
        "symbols_total": p.feeds_total,
        "bars": p.bars,
        "eta_seconds": if is_ready { None } else { p.eta().map(|d| d.as_secs()) },
    })
}

/// Readiness: 503 while the first start's backfill loads history (a load balancer should not send clients
/// to a node whose charts would be empty), 200 once every configured symbol has it. The body is `/health`'s
/// `history` object.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "History is loaded: ready for clients", body = super::openapi::ReadyReply),
    (status = 503, description = "Warming up: the first start's backfill is still running", body = super::openapi::ReadyReply),
))]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let is_ready = state.engine.warmup.is_ready();
    let body = history_json(is_ready, state.engine.warmup.progress());
    if is_ready {
        HttpResponse::Ok().json(body)
    } else {
        // A probe may come back sooner; this is when the estimate says it is worth it.
        let retry = body["eta_seconds"].as_u64().unwrap_or(5).clamp(1, 60);
        HttpResponse::ServiceUnavailable().insert_header(("Retry-After", retry.to_string())).json(body)
    }
}

/// The cluster report (node, role, connection, reason when down, leases) and every cluster counter.
fn redis_stats(cluster: &Cluster) -> Value {
    let mut redis = json!(cluster.report());
    for m in CLUSTER_METRICS {
        redis[m.stats_name] = json!((m.read)(cluster.stats()));
    }
    redis
}

/// One Prometheus recorder per process (several test servers may share a process).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; our handle then renders our own metrics only.
        let _ = metrics::set_global_recorder(recorder);
        let all = METRICS
            .iter()
            .map(|m| (m.kind, m.prometheus_name, m.help))
            .chain(PERSIST_METRICS.iter().map(|m| (m.kind, m.prometheus_name, m.help)));
        for (kind, name, help) in all {
            match kind {
                Kind::Counter => metrics::describe_counter!(name, help),
                Kind::Gauge => metrics::describe_gauge!(name, help),
            }
        }
        for (_, name, help) in HUB_GAUGES {
            metrics::describe_gauge!(name, help);
        }
        metrics::describe_gauge!("candlecast_symbol_trade_rate", "Trades per second of a symbol over the last second");
        metrics::describe_counter!("candlecast_symbol_trades_total", "Trades folded into a symbol's bars");
        for m in CLUSTER_METRICS {
            match m.gauge {
                true => metrics::describe_gauge!(m.prometheus_name, m.help),
                false => metrics::describe_counter!(m.prometheus_name, m.help),
            }
        }
        metrics::describe_gauge!("candlecast_store_info", "Always 1; the kind label names the bar store");
        // Every family needs a HELP line (`promtool check metrics`); the others describe their own.
        super::feeds::describe_metrics();
        crate::script_ingest::stats::describe_metrics();
        crate::jobs::describe_metrics();
        handle
    })
}

/// Every refusal so far by limit (the `candlecast_refused_total` family), for `/api/stats`.
fn refused_json() -> Value {
    candlecast_actors::refusals::snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect::<Map<_, _>>()
        .into()
}

/// `candlecast_refused_total{limit}`: whoever refuses calls `candlecast_actors::refusals::refused(limit)`.
fn record_refusals() {
    metrics::describe_counter!(
        "candlecast_refused_total",
        "Requests, connections or keys refused, by the limit that refused them"
    );
    for (limit, n) in candlecast_actors::refusals::snapshot() {
        metrics::counter!("candlecast_refused_total", "limit" => limit).absolute(n);
    }
    metrics::describe_counter!(
        "candlecast_refused_key_logs_suppressed_total",
        "Refused-key log lines held back by the rate limit (logged at debug instead)"
    );
    metrics::counter!("candlecast_refused_key_logs_suppressed_total").absolute(super::auth_log::suppressed());
}

/// Refused HTTP connections held now, and those closed at once for want of room (see `http::tarpit`).
fn record_held_refusals(state: &AppState) {
    metrics::describe_gauge!(
        "candlecast_http_refusals_held",
        "Refused HTTP connections held now, to be answered 429 after [http] connection_refusal_delay_ms"
    );
    metrics::describe_counter!(
        "candlecast_http_refusals_closed_at_once_total",
        "Refused HTTP connections closed at once, unanswered: the held budgets were full"
    );
    let held = &state.connections.held;
    metrics::gauge!("candlecast_http_refusals_held").set(held.held_now() as f64);
    metrics::counter!("candlecast_http_refusals_closed_at_once_total").absolute(held.closed_at_once());
}

/// Prometheus text exposition of every counter in `telemetry`, plus per-symbol trade figures.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition (README, Metrics)", body = String, content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics_route(state: web::Data<AppState>) -> HttpResponse {
    let handle = prometheus();
    let hub = state.engine.hub_counters.snapshot();
    let [(_, clients, _), (_, subscriptions, _)] = HUB_GAUGES;
    metrics::gauge!(clients).set(hub.total_clients as f64);
    metrics::gauge!(subscriptions).set(hub.total_subscriptions as f64);
    let (figures, now) = (state.engine.history.stats(), candlecast_actors::model::now_ms());
    let values = METRICS
        .iter()
        .map(|m| (m.kind, m.prometheus_name, (m.read)(&COUNTERS) as f64))
        .chain(PERSIST_METRICS.iter().map(|m| (m.kind, m.prometheus_name, m.prometheus_value(figures, now))));
    for (kind, name, v) in values {
        match kind {
            Kind::Counter => metrics::counter!(name).absolute(v.max(0.0) as u64),
            Kind::Gauge => metrics::gauge!(name).set(v),
        }
    }
    // An info series: alert rules tell "no store configured" from "store down" by its `kind` label.
    metrics::gauge!("candlecast_store_info", "kind" => state.engine.history.kind()).set(1.0);
    for e in state.engine.market.list() {
        let symbol = e.symbol.to_string();
        metrics::gauge!("candlecast_symbol_trade_rate", "symbol" => symbol.clone()).set(e.stats.trade_rate());
        metrics::counter!("candlecast_symbol_trades_total", "symbol" => symbol)
            .absolute(e.stats.trades_total.load(Ordering::Relaxed));
    }
    super::feeds::record_metrics(&state);
    crate::script_ingest::stats::record_metrics(&state);
    crate::jobs::record_metrics(&state.jobs);
    record_refusals();
    record_held_refusals(&state);
    super::store_stats::record_metrics(&state).await;
    if let Some(cluster) = &state.cluster {
        for m in CLUSTER_METRICS {
            let v = (m.read)(cluster.stats()) / m.prometheus_divisor.max(1);
            match m.gauge {
                true => metrics::gauge!(m.prometheus_name).set(v as f64),
                false => metrics::counter!(m.prometheus_name).absolute(v),
            }
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(handle.render())
}
