//! The figures of script pushes and Socket.IO sessions, shown as the `scripts` object of `/api/stats`
//! and as `candlecast_scripts_*` in `/metrics`. Each is defined once, here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// One counter: its name in `/api/stats` (and, prefixed, in `/metrics`), its help text, its field.
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    read: fn(&ScriptStats) -> &AtomicU64,
}

macro_rules! counters {
    ($($field:ident: $help:literal,)*) => {
        /// Counters of one server instance.
        #[derive(Debug, Default)]
        pub struct ScriptStats {
            $(pub $field: AtomicU64,)*
            /// Events per second over the last second, kept by [`ScriptStats::sample`].
            pub events_per_second: AtomicU64,
            last_events: AtomicU64,
        }

        /// Every counter, in display order.
        pub const COUNTERS: &[Counter] = &[$(Counter { name: stringify!($field), help: $help, read: |s| &s.$field },)*];
    };
}

counters! {
    socketio_sessions_total: "Engine.IO sessions opened since start",
    socketio_upgrades: "Sessions upgraded from long-polling to WebSocket",
    socketio_events_total: "Socket.IO events received from clients",
    trades_accepted: "Streamed trades (trade / trades events) folded into bars",
    trades_rejected: "Streamed trades refused (invalid, future, unknown or too many symbols)",
    trades_late_dropped: "Streamed trades older than the grace window",
    executed_trades: "Executed-trade rows accepted from trades CSVs",
    market_data_rows: "Market-data CSV rows put in place as bars",
    csv_rows_rejected: "CSV rows refused (each reported with its line number)",
    refused_auths: "Connections and requests refused for a missing or wrong script key",
    expired_sessions: "Sessions closed because the client stopped answering pings",
    malformed_packets: "Sessions closed for a broken Engine.IO or Socket.IO packet",
    oversize_payloads: "Payloads refused for being over max_payload_bytes or max_upload_bytes",
    rate_limited_events: "Events refused for being over max_events_per_second",
    slow_client_disconnects: "Socket.IO clients closed because their outbound queue overflowed",
    refused_sessions_per_host: "Socket.IO handshakes refused: the host had max_sessions_per_host sessions open",
    refused_handshakes_per_host: "Socket.IO handshakes refused: the host was over max_handshakes_per_second_per_host",
    refused_sessions_total: "Socket.IO handshakes refused: the server had max_sessions sessions open",
    refused_fault_backoff: "Socket.IO handshakes refused: the host's last session was closed for its fault less than fault_backoff_ms ago",
    refused_csv_columns: "CSV uploads refused for having more than max_csv_columns columns",
    refused_csv_rows: "CSV uploads refused for having more than max_csv_rows rows",
}

impl ScriptStats {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Keeps `events_per_second` current; call once a second.
    pub fn sample(&self) {
        let total = self.socketio_events_total.load(Ordering::Relaxed);
        let last = self.last_events.swap(total, Ordering::Relaxed);
        self.events_per_second.store(total.saturating_sub(last), Ordering::Relaxed);
    }

    /// Every counter and `events_per_second`, as a JSON object.
    pub fn snapshot(&self) -> Map<String, Value> {
        let mut out: Map<String, Value> =
            COUNTERS.iter().map(|c| (c.name.to_owned(), Value::from((c.read)(self).load(Ordering::Relaxed)))).collect();
        out.insert("events_per_second".into(), Value::from(self.events_per_second.load(Ordering::Relaxed)));
        out
    }

    /// The value of one counter.
    pub fn value(&self, counter: &Counter) -> u64 {
        (counter.read)(self).load(Ordering::Relaxed)
    }
}

/// The `scripts` object of `/api/stats`: every counter, events per second, and sessions by transport.
pub fn stats_json(state: &crate::AppState) -> Map<String, Value> {
    let mut out = state.scripts.stats.snapshot();
    let (polling, websocket) = state.socketio.sessions_by_transport();
    out.insert("socketio_sessions".into(), serde_json::json!({ "polling": polling, "websocket": websocket }));
    let (queued, largest) = state.socketio.sessions.queued_cost();
    out.insert("socketio_queued_bytes".into(), Value::from(queued));
    out.insert("socketio_queued_bytes_max".into(), Value::from(largest));
    out
}

impl Counter {
    /// `candlecast_scripts_<name>`, ending in `_total` as Prometheus wants of a counter.
    pub fn prometheus_name(&self) -> String {
        match self.name.ends_with("_total") {
            true => format!("candlecast_scripts_{}", self.name),
            false => format!("candlecast_scripts_{}_total", self.name),
        }
    }
}

/// Open Socket.IO sessions by transport. Not `candlecast_scripts_socketio_sessions`: OpenMetrics would
/// read that as the family of the `candlecast_scripts_socketio_sessions_total` counter.
const SESSIONS_GAUGE: &str = "candlecast_scripts_socketio_sessions_open";

/// The HELP lines of the series [`record_metrics`] writes.
pub fn describe_metrics() {
    for c in COUNTERS {
        metrics::describe_counter!(c.prometheus_name(), c.help);
    }
    metrics::describe_gauge!(SESSIONS_GAUGE, "Socket.IO sessions open now, by transport (polling, websocket)");
}

/// Copies the counters into the Prometheus recorder (`candlecast_scripts_<name>_total`).
pub fn record_metrics(state: &crate::AppState) {
    let stats = &state.scripts.stats;
    for c in COUNTERS {
        metrics::counter!(c.prometheus_name()).absolute(stats.value(c));
    }
    // Refusals are also counted in `candlecast_actors::refusals` (the `candlecast_refused_total` family).
    let (polling, websocket) = state.socketio.sessions_by_transport();
    metrics::gauge!(SESSIONS_GAUGE, "transport" => "polling").set(polling as f64);
    metrics::gauge!(SESSIONS_GAUGE, "transport" => "websocket").set(websocket as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter_and_the_rate() {
        let s = ScriptStats::default();
        ScriptStats::add(&s.socketio_events_total, 5);
        s.sample();
        ScriptStats::add(&s.socketio_events_total, 2);
        s.sample();
        let snap = s.snapshot();
        assert_eq!(snap.len(), COUNTERS.len() + 1);
        assert_eq!((snap["socketio_events_total"].as_u64(), snap["events_per_second"].as_u64()), (Some(7), Some(2)));
    }

    #[test]
    fn prometheus_names_of_counters_end_in_total_once() {
        let names: Vec<String> = COUNTERS.iter().map(Counter::prometheus_name).collect();
        assert!(names.iter().all(|n| n.ends_with("_total") && !n.ends_with("_total_total")), "{names:?}");
        assert!(names.contains(&"candlecast_scripts_trades_accepted_total".to_owned()));
        assert!(names.contains(&"candlecast_scripts_socketio_events_total".to_owned()));
    }
}
