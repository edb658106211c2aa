//! Every counter and gauge that `/api/stats` and `/metrics` show, defined once.
//!
//! The actors bump plain atomics (cheap, no registry lookups on hot paths); the server reads them for
//! `/api/stats` and copies them into the Prometheus recorder when `/metrics` is scraped. Figures that
//! belong to one engine rather than the process (clients, subscriptions) come from the hub's
//! [`HubStats`](crate::hub::HubStats) and are named in [`HUB_GAUGES`].

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Process-wide counters. Each sits on its own cache line: the hub and the sessions bump them from
/// different threads.
pub struct Counters {
    pub messages_sent: CachePadded<AtomicU64>,
    pub messages_dropped: CachePadded<AtomicU64>,
    pub updates_conflated: CachePadded<AtomicU64>,
    pub slow_client_disconnects: CachePadded<AtomicU64>,
    pub silent_client_disconnects: CachePadded<AtomicU64>,
    pub late_dropped: CachePadded<AtomicU64>,
    pub trades_total: CachePadded<AtomicU64>,
    pub trades_rejected: CachePadded<AtomicU64>,
    pub ws_connections_total: CachePadded<AtomicU64>,
    pub ws_client_errors: CachePadded<AtomicU64>,
    pub ws_abuse_disconnects: CachePadded<AtomicU64>,
    /// Buffers handed to WebSocket connections' writers, and the frames in them (several per buffer when
    /// the hub coalesces what is due to a client).
    pub ws_writes: CachePadded<AtomicU64>,
    pub ws_frames: CachePadded<AtomicU64>,
    /// Bytes in those buffers (frame headers included): the server's side of "bytes on the wire".
    pub ws_bytes_written: CachePadded<AtomicU64>,
    /// Connections that negotiated permessage-deflate.
    pub ws_deflate_connections: CachePadded<AtomicU64>,
    /// Messages sent per second over the last second, maintained by [`RateSampler`].
    pub messages_per_second: CachePadded<AtomicU64>,
}

/// The one instance.
pub static COUNTERS: Counters = Counters {
    messages_sent: CachePadded::new(AtomicU64::new(0)),
    messages_dropped: CachePadded::new(AtomicU64::new(0)),
    updates_conflated: CachePadded::new(AtomicU64::new(0)),
    slow_client_disconnects: CachePadded::new(AtomicU64::new(0)),
    silent_client_disconnects: CachePadded::new(AtomicU64::new(0)),
    late_dropped: CachePadded::new(AtomicU64::new(0)),
    trades_total: CachePadded::new(AtomicU64::new(0)),
    trades_rejected: CachePadded::new(AtomicU64::new(0)),
    ws_connections_total: CachePadded::new(AtomicU64::new(0)),
    ws_client_errors: CachePadded::new(AtomicU64::new(0)),
    ws_abuse_disconnects: CachePadded::new(AtomicU64::new(0)),
    ws_writes: CachePadded::new(AtomicU64::new(0)),
    ws_frames: CachePadded::new(AtomicU64::new(0)),
    ws_bytes_written: CachePadded::new(AtomicU64::new(0)),
    ws_deflate_connections: CachePadded::new(AtomicU64::new(0)),
    messages_per_second: CachePadded::new(AtomicU64::new(0)),
};

/// Whether a metric only goes up or can go down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One exported metric: its stats name, Prometheus name, help text and current value.
pub struct Metric {
    pub stats_name: &'static str,
    pub prometheus_name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub read: fn(&Counters) -> i64,
}

/// `metric!(field, Kind, "candlecast_prometheus_name", "help")`: the `/api/stats` name is the field's. The
/// Prometheus name is written out (not derived) so that a search for it finds its definition; counters end
/// in `_total` (Prometheus' naming rules, checked by `promtool check metrics`).
macro_rules! metric {
    ($field:ident, $kind:ident, $name:literal, $help:literal) => {
        Metric {
            stats_name: stringify!($field),
            prometheus_name: $name,
            help: $help,
            kind: Kind::$kind,
            read: |c| c.$field.load(Ordering::Relaxed) as i64,
        }
    };
}

/// Everything exported, in display order.
pub const METRICS: &[Metric] = &[
    metric!(messages_sent, Counter, "candlecast_messages_sent_total", "Frames handed to WebSocket clients"),
    metric!(
        messages_per_second,
        Gauge,
        "candlecast_messages_per_second",
        "Frames handed to WebSocket clients during the last second"
    ),
    metric!(
        messages_dropped,
        Counter,
        "candlecast_messages_dropped_total",
        "Frames discarded because their client was too slow or gone"
    ),
    metric!(
        updates_conflated,
        Counter,
        "candlecast_updates_conflated_total",
        "Partial-bar updates superseded before their topic's next send slot"
    ),
    metric!(
        slow_client_disconnects,
        Counter,
        "candlecast_slow_client_disconnects_total",
        "Clients closed because their outbound queue overflowed"
    ),
    metric!(
        silent_client_disconnects,
        Counter,
        "candlecast_silent_client_disconnects_total",
        "Clients closed because they answered no ping within the client timeout (stalled or gone)"
    ),
    metric!(
        late_dropped,
        Counter,
        "candlecast_late_dropped_total",
        "Trades older than the grace window, not folded into any bar"
    ),
    metric!(trades_total, Counter, "candlecast_trades_total", "Trades folded into bars"),
    metric!(
        trades_rejected,
        Counter,
        "candlecast_trades_rejected_total",
        "Trades refused as invalid (price, quantity, time)"
    ),
    metric!(
        ws_connections_total,
        Counter,
        "candlecast_ws_connections_total",
        "WebSocket connections accepted since start"
    ),
    metric!(
        ws_client_errors,
        Counter,
        "candlecast_ws_client_errors_total",
        "Error replies sent to WebSocket clients for bad input"
    ),
    metric!(
        ws_abuse_disconnects,
        Counter,
        "candlecast_ws_abuse_disconnects_total",
        "Clients closed with 1008 for repeated bad input or flooding"
    ),
    metric!(
        ws_writes,
        Counter,
        "candlecast_ws_writes_total",
        "Buffers handed to /ws connections' writers (one socket write each at most)"
    ),
    metric!(
        ws_frames,
        Counter,
        "candlecast_ws_frames_total",
        "WebSocket frames in those buffers: frames per write = ws_frames_total / ws_writes_total"
    ),
    metric!(
        ws_bytes_written,
        Counter,
        "candlecast_ws_bytes_written_total",
        "Bytes in those buffers, frame headers included (compressed frames counted as sent)"
    ),
    metric!(
        ws_deflate_connections,
        Counter,
        "candlecast_ws_deflate_connections_total",
        "WebSocket connections that negotiated permessage-deflate"
    ),
];

/// Gauges answered by the hub itself: (stats name, Prometheus name, help).
pub const HUB_GAUGES: [(&str, &str, &str); 2] = [
    ("total_clients", "candlecast_total_clients", "WebSocket clients connected now"),
    ("total_subscriptions", "candlecast_total_subscriptions", "Topic subscriptions held by WebSocket clients now"),
];

/// Adds to a counter.
#[inline]
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Keeps `messages_per_second` current; call [`RateSampler::sample`] once a second.
#[derive(Default)]
pub struct RateSampler {
    last_sent: u64,
}

impl RateSampler {
    pub fn sample(&mut self) {
        let sent = COUNTERS.messages_sent.load(Ordering::Relaxed);
        COUNTERS.messages_per_second.store(sent.saturating_sub(self.last_sent), Ordering::Relaxed);
        self.last_sent = sent;
    }
}

/// Per-symbol figures, shared between a symbol's aggregator (writer) and the API (reader).
#[derive(Default)]
pub struct SymbolStats {
    pub trades_total: AtomicU64,
    pub late_dropped: AtomicU64,
    pub rejected: AtomicU64,
    /// Trades per second over the last measured second, times 1000.
    pub trade_rate_milli: AtomicU64,
}

impl SymbolStats {
    pub fn trade_rate(&self) -> f64 {
        self.trade_rate_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// Figures of the persistence actor: `persistence` in `/api/stats`, `candlecast_persist_*` in `/metrics`.
/// Written by the actor, read by the API.
#[derive(Default)]
pub struct PersistStats {
    pub healthy: std::sync::atomic::AtomicBool,
    /// The previous run's journal is still being written to the store (feeds wait before reading it).
    pub settling: std::sync::atomic::AtomicBool,
    /// Bars the store accepted since start.
    pub written_bars: AtomicU64,
    /// Bars held in memory, not yet written nor journaled (including a batch being written).
    pub buffered_bars: AtomicU64,
    /// Bars waiting in the on-disk journal.
    pub journal_bars: AtomicU64,
    /// Backfilled bars held back until persistence has room for them (back-pressure; see `History::persist`).
    pub backfill_waiting_bars: AtomicU64,
    /// Backfilled bars sent to the persistence actor and not yet taken from its mailbox: room is judged
    /// with them, or every backfill sent in the same instant would see the same empty buffer.
    pub backfill_queued_bars: AtomicU64,
    /// Feeds waiting for their turn to backfill (`store.backfill_concurrency`; see `persist::admission`).
    pub backfills_pending: AtomicU64,
    /// Feeds whose backfill is being made or handed to persistence (holding a turn).
    pub backfills_running: AtomicU64,
    /// Write attempts made while the store was failing.
    pub retries: AtomicU64,
    /// Write attempts that failed.
    pub failures: AtomicU64,
    /// Bars given up because neither the store nor the journal took them.
    pub dropped_bars: AtomicU64,
    /// Bars the store refused for what they hold (or that no store could take): in the dead-letter file.
    pub dead_letter_bars: AtomicU64,
    /// Size of the journal file, and its cap (`store.journal_max_bytes`).
    pub journal_bytes: AtomicU64,
    pub journal_max_bytes: AtomicU64,
    /// Appends the journal refused because they would cross its cap.
    pub journal_full_refusals: AtomicU64,
    /// Bytes of damaged journal records skipped at start (their bars are lost; later records are not).
    pub journal_damaged_bytes: AtomicU64,
    /// When the oldest bar not yet in the store arrived (wall-clock ms); 0 when everything is written.
    pub oldest_unwritten_ms: std::sync::atomic::AtomicI64,
    /// The last failure, for `/api/stats` and `/health`; cleared by a successful write.
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl PersistStats {
    /// How long the oldest unwritten bar has been waiting, in ms (0 when none is).
    pub fn write_lag_ms(&self, now_ms: i64) -> i64 {
        match self.oldest_unwritten_ms.load(Ordering::Relaxed) {
            0 => 0,
            since => (now_ms - since).max(0),
        }
    }

    /// Why persistence is degraded though the store answers: the journal nearing its cap (80 %).
    pub fn journal_warning(&self) -> Option<String> {
        let (bytes, max) = (self.journal_bytes.load(Ordering::Relaxed), self.journal_max_bytes.load(Ordering::Relaxed));
        (max > 0 && bytes.saturating_mul(5) >= max.saturating_mul(4)).then(|| {
            format!("the journal holds {bytes} bytes, {}% of store.journal_max_bytes ({max})", bytes * 100 / max)
        })
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

/// One exported persistence figure: (stats name, Prometheus name, help, kind, read at `now_ms`).
pub struct PersistMetric {
    pub stats_name: &'static str,
    pub prometheus_name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub read: fn(&PersistStats, i64) -> i64,
    /// `/metrics` shows `read` times this: Prometheus wants base units (seconds), `/api/stats` keeps ms.
    pub prometheus_scale: f64,
}

impl PersistMetric {
    /// The value as `/metrics` shows it, in the unit its Prometheus name says.
    pub fn prometheus_value(&self, stats: &PersistStats, now_ms: i64) -> f64 {
        (self.read)(stats, now_ms) as f64 * self.prometheus_scale
    }
}

/// Every persistence figure, in display order (besides `kind` and `last_error`, which are text).
pub const PERSIST_METRICS: &[PersistMetric] = &[
    PersistMetric {
        stats_name: "healthy",
        prometheus_name: "candlecast_persist_healthy",
        help: "1 when the last write to the store succeeded",
        kind: Kind::Gauge,
        read: |s, _| s.healthy.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "write_lag_ms",
        prometheus_name: "candlecast_persist_write_lag_seconds",
        help: "Age of the oldest closed bar not yet in the store, seconds",
        kind: Kind::Gauge,
        read: |s, now| s.write_lag_ms(now),
        prometheus_scale: 0.001,
    },
    PersistMetric {
        stats_name: "buffered_bars",
        prometheus_name: "candlecast_persist_buffered_bars",
        help: "Closed bars waiting in memory for the store",
        kind: Kind::Gauge,
        read: |s, _| s.buffered_bars.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "journal_bars",
        prometheus_name: "candlecast_persist_journal_bars",
        help: "Closed bars waiting in the on-disk journal for the store",
        kind: Kind::Gauge,
        read: |s, _| s.journal_bars.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "backfill_waiting_bars",
        prometheus_name: "candlecast_persist_backfill_waiting_bars",
        help: "Backfilled closed bars held back until the buffer and the journal have room for them",
        kind: Kind::Gauge,
        read: |s, _| s.backfill_waiting_bars.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "backfills_pending",
        prometheus_name: "candlecast_persist_backfills_pending",
        help: "Feeds waiting for their turn to backfill (store.backfill_concurrency at a time)",
        kind: Kind::Gauge,
        read: |s, _| s.backfills_pending.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "backfills_running",
        prometheus_name: "candlecast_persist_backfills_running",
        help: "Feeds making their backfill or handing it to persistence",
        kind: Kind::Gauge,
        read: |s, _| s.backfills_running.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "written_bars",
        prometheus_name: "candlecast_persist_written_bars_total",
        help: "Bars written to the store",
        kind: Kind::Counter,
        read: |s, _| s.written_bars.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "retries",
        prometheus_name: "candlecast_persist_retries_total",
        help: "Store writes retried after a failure",
        kind: Kind::Counter,
        read: |s, _| s.retries.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "failures",
        prometheus_name: "candlecast_persist_failures_total",
        help: "Store writes that failed",
        kind: Kind::Counter,
        read: |s, _| s.failures.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "dropped_bars",
        prometheus_name: "candlecast_persist_dropped_bars_total",
        help: "Bars lost because neither the store nor the journal took them",
        kind: Kind::Counter,
        read: |s, _| s.dropped_bars.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "dead_letter_bars",
        prometheus_name: "candlecast_persist_dead_letter_bars_total",
        help: "Bars the store refused for what they hold, kept in the dead-letter file",
        kind: Kind::Counter,
        read: |s, _| s.dead_letter_bars.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "journal_bytes",
        prometheus_name: "candlecast_persist_journal_bytes",
        help: "Size of the on-disk journal, bytes",
        kind: Kind::Gauge,
        read: |s, _| s.journal_bytes.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "journal_max_bytes",
        prometheus_name: "candlecast_persist_journal_max_bytes",
        help: "Cap on the journal's size (store.journal_max_bytes), bytes",
        kind: Kind::Gauge,
        read: |s, _| s.journal_max_bytes.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "journal_full_refusals",
        prometheus_name: "candlecast_persist_journal_full_refusals_total",
        help: "Journal appends refused because the journal reached store.journal_max_bytes",
        kind: Kind::Counter,
        read: |s, _| s.journal_full_refusals.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
    PersistMetric {
        stats_name: "journal_damaged_bytes",
        prometheus_name: "candlecast_persist_journal_damaged_bytes_total",
        help: "Bytes of damaged journal records skipped at start",
        kind: Kind::Counter,
        read: |s, _| s.journal_damaged_bytes.load(Ordering::Relaxed) as i64,
        prometheus_scale: 1.0,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::CLUSTER_METRICS;

    /// Every name `/metrics` takes from these tables follows Prometheus' rules, as `promtool check metrics`
    /// reads them: counters end in `_total`, gauges do not, no abbreviated units (`_ms`), one prefix.
    #[test]
    fn prometheus_names_follow_the_naming_rules() {
        let all = METRICS
            .iter()
            .map(|m| (m.prometheus_name, m.kind == Kind::Counter))
            .chain(PERSIST_METRICS.iter().map(|m| (m.prometheus_name, m.kind == Kind::Counter)))
            .chain(CLUSTER_METRICS.iter().map(|m| (m.prometheus_name, !m.gauge)))
            .chain(HUB_GAUGES.iter().map(|(_, name, _)| (*name, false)));
        let mut seen = std::collections::HashSet::new();
        for (name, counter) in all {
            assert!(seen.insert(name), "{name} is exported twice");
            assert!(name.starts_with("candlecast_"), "{name}");
            assert_eq!(name.ends_with("_total"), counter, "{name}: counters, and only counters, end in _total");
            assert!(!name.contains("_ms") && !name.ends_with("_millis"), "{name}: use base units (seconds)");
        }
    }

    #[test]
    fn write_lag_is_exported_in_seconds() {
        let stats = PersistStats::default();
        stats.oldest_unwritten_ms.store(10_000, Ordering::Relaxed);
        let lag =
            PERSIST_METRICS.iter().find(|m| m.stats_name == "write_lag_ms").map(|m| m.prometheus_value(&stats, 12_500));
        assert_eq!(lag, Some(2.5));
    }
}
