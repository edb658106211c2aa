//! The cluster figures `/api/stats`, `/health` and `/metrics` show, defined once. Per node, not per
//! process: tests run several nodes in one process.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::Role;

/// Up or down, why, and how often it came back: one per Redis connection of the node.
#[derive(Default)]
pub struct ConnectionState {
    pub connected: AtomicBool,
    ever_connected: AtomicBool,
    /// Why the connection is down, while it is.
    last_error: Mutex<Option<String>>,
    pub reconnects: AtomicU64,
}

/// See the module documentation.
#[derive(Default)]
pub struct ClusterStats {
    /// The connection for commands and their replies (cache reads and writes, PUBLISH, leases).
    pub commands: ConnectionState,
    /// The connection that only subscribes and receives the other nodes' messages. Apart, because Redis caps
    /// a subscriber's output buffer (`client-output-buffer-limit pubsub`) and closes it when command replies
    /// (a resync's cache reads, a rewrite's transaction) pile up behind the messages.
    pub pubsub: ConnectionState,
    pub published: AtomicU64,
    pub publish_dropped: AtomicU64,
    pub received: AtomicU64,
    pub receive_gaps: AtomicU64,
    pub cache_behind: AtomicU64,
    pub receive_duplicates: AtomicU64,
    pub derived_bars: AtomicU64,
    pub derive_stale: AtomicU64,
    pub resyncs: AtomicU64,
    pub cache_writes: AtomicU64,
    pub cache_bars_written: AtomicU64,
    pub cache_write_failures: AtomicU64,
    pub cache_bars_loaded: AtomicU64,
    pub leases_acquired: AtomicU64,
    pub leases_lost: AtomicU64,
    /// Cache flushes put off because the previous one was not written yet (the writer is behind).
    pub cache_flushes_deferred: AtomicU64,
    /// Writes (messages, cache flushes) queued for the writer and not yet in a transaction: a backlog between
    /// this node's hub and Redis, which followers see as lag.
    pub writer_queued: AtomicU64,
    /// Microseconds the writer spent waiting for its transactions (exported in ms): its rate is the share of
    /// the time the writer is busy (1,000 ms per second: it cannot send more than it does).
    pub writer_busy_us: AtomicU64,
    /// Symbols whose lease this node holds now.
    leases: Mutex<BTreeSet<String>>,
}

/// One exported figure: its `/api/stats` name (under `redis`), Prometheus name, help and value.
pub struct ClusterMetric {
    pub stats_name: &'static str,
    pub prometheus_name: &'static str,
    pub help: &'static str,
    pub gauge: bool,
    pub read: fn(&ClusterStats) -> u64,
    /// `/metrics` shows `read` divided by this: `/api/stats` may keep a finer unit than Prometheus' base one.
    pub prometheus_divisor: u64,
}

macro_rules! counter {
    ($field:ident, $help:literal) => {
        ClusterMetric {
            stats_name: stringify!($field),
            // Counters end in `_total` (Prometheus' naming rules); `/api/stats` keeps the bare field name.
            prometheus_name: concat!("candlecast_redis_", stringify!($field), "_total"),
            help: $help,
            gauge: false,
            read: |s| s.$field.load(Ordering::Relaxed),
            prometheus_divisor: 1,
        }
    };
}

/// Everything exported, in display order.
pub const CLUSTER_METRICS: &[ClusterMetric] = &[
    ClusterMetric {
        stats_name: "connected",
        prometheus_name: "candlecast_redis_connected",
        help: "1 while both Redis connections (commands, pub/sub) answer, 0 while either is down",
        gauge: true,
        read: |s| s.is_connected() as u64,
        prometheus_divisor: 1,
    },
    ClusterMetric {
        stats_name: "reconnects",
        prometheus_name: "candlecast_redis_reconnects_total",
        help: "Times the Redis connection for commands came back after being lost",
        gauge: false,
        read: |s| s.commands.reconnects.load(Ordering::Relaxed),
        prometheus_divisor: 1,
    },
    ClusterMetric {
        stats_name: "pubsub_connected",
        prometheus_name: "candlecast_redis_pubsub_connected",
        help: "1 while the Redis pub/sub connection answers, 0 while it is down",
        gauge: true,
        read: |s| s.pubsub.is_connected() as u64,
        prometheus_divisor: 1,
    },
    ClusterMetric {
        stats_name: "pubsub_reconnects",
        prometheus_name: "candlecast_redis_pubsub_reconnects_total",
        help:
            "Times the Redis pub/sub connection came back after being lost (or closed by Redis for its output buffer)",
        gauge: false,
        read: |s| s.pubsub.reconnects.load(Ordering::Relaxed),
        prometheus_divisor: 1,
    },
    counter!(published, "Bar-update messages published to Redis"),
    counter!(publish_dropped, "Bar-update messages not published because Redis was unreachable"),
    counter!(received, "Bar-update messages received from other nodes"),
    counter!(
        receive_gaps,
        "Missing message sequence numbers noticed in the live stream (each triggers a resync from the today-cache)"
    ),
    counter!(
        cache_behind,
        "Syncs whose today-cache read lacked a message sent just before the subscription (read again; nothing lost)"
    ),
    counter!(receive_duplicates, "Messages received twice or out of order, ignored"),
    counter!(derived_bars, "Forming bars this node derived from the 1s bars instead of receiving them"),
    counter!(
        derive_stale,
        "Messages whose derivable forming bars were not derived: this node's state differed from the sender's"
    ),
    counter!(resyncs, "Symbols re-read from the today-cache (start, gap, reconnect, new source node)"),
    counter!(cache_writes, "Today-cache writes (one transaction each)"),
    counter!(cache_bars_written, "Bars written to the today-cache"),
    counter!(cache_write_failures, "Today-cache writes that failed (rewritten from memory after reconnect)"),
    counter!(cache_bars_loaded, "Bars read from the today-cache into local aggregators"),
    counter!(leases_acquired, "Symbol leases this node acquired"),
    counter!(leases_lost, "Symbol leases this node lost or gave up"),
    counter!(
        cache_flushes_deferred,
        "Today-cache flushes put off (gathered into the next) because the previous one was not written yet"
    ),
    ClusterMetric {
        stats_name: "writer_queued",
        prometheus_name: "candlecast_redis_writer_queued",
        help: "Writes for Redis (messages, cache flushes) queued and not yet sent: a backlog followers see as lag",
        gauge: true,
        read: |s| s.writer_queued.load(Ordering::Relaxed),
        prometheus_divisor: 1,
    },
    ClusterMetric {
        stats_name: "writer_busy_ms",
        prometheus_name: "candlecast_redis_writer_busy_seconds_total",
        help: "Seconds the writer spent in Redis transactions (a rate near 1 per second: it is saturated)",
        gauge: false,
        // /api/stats in ms (a second is too coarse there), /metrics in seconds.
        read: |s| s.writer_busy_us.load(Ordering::Relaxed) / 1_000,
        prometheus_divisor: 1_000,
    },
    ClusterMetric {
        stats_name: "leases_held",
        prometheus_name: "candlecast_redis_leases_held",
        help: "Symbols whose feed lease this node holds now",
        gauge: true,
        read: |s| s.leases_held().len() as u64,
        prometheus_divisor: 1,
    },
];

impl ConnectionState {
    /// Records a working connection; true when it was down (the first connection included).
    pub fn mark_up(&self) -> bool {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.connected.swap(true, Ordering::Relaxed) {
            return false;
        }
        if self.ever_connected.swap(true, Ordering::Relaxed) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Records a lost or failed connection; true when it was up (or never tried).
    pub fn mark_down(&self, reason: String) -> bool {
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        let changed = last.as_deref() != Some(reason.as_str());
        *last = Some(reason);
        self.connected.swap(false, Ordering::Relaxed) || (changed && !self.ever_connected.load(Ordering::Relaxed))
    }

    /// Whether Redis answered at least once since start.
    pub fn was_ever_connected(&self) -> bool {
        self.ever_connected.load(Ordering::Relaxed)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What `/health` and `/api/stats` show about the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub node_id: String,
    pub role: &'static str,
    /// The Redis URL with its password masked.
    pub url: String,
    pub connected: bool,
    /// Why Redis is unreachable, while it is.
    pub error: Option<String>,
    pub leases: Vec<String>,
}

impl ClusterStats {
    /// Counts what a symbol's follower derived: (forming bars derived, messages whose derivation was left out).
    pub fn note_derived(&self, (derived, stale): (u64, u64)) {
        self.derived_bars.fetch_add(derived, Ordering::Relaxed);
        self.derive_stale.fetch_add(stale, Ordering::Relaxed);
    }

    /// Whether both connections answer: the node can write and receives the other nodes' messages.
    pub fn is_connected(&self) -> bool {
        self.commands.is_connected() && self.pubsub.is_connected()
    }

    /// Whether Redis answered at least once since start (on the connection for commands).
    pub fn was_ever_connected(&self) -> bool {
        self.commands.was_ever_connected()
    }

    /// Why the node is not connected: the commands connection's reason, else the pub/sub one's.
    pub fn last_error(&self) -> Option<String> {
        if !self.commands.is_connected() {
            if let Some(e) = self.commands.last_error() {
                return Some(e);
            }
        }
        if !self.pubsub.is_connected() {
            return self.pubsub.last_error().map(|e| format!("pub/sub connection: {e}"));
        }
        None
    }

    pub fn set_lease(&self, symbol: &str, held: bool) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if held {
            leases.insert(symbol.to_owned());
        } else {
            leases.remove(symbol);
        }
    }

    pub fn leases_held(&self) -> Vec<String> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    pub fn report(&self, node_id: &str, role: Role, url: &str) -> ClusterReport {
        ClusterReport {
            node_id: node_id.to_owned(),
            role: role.as_str(),
            url: url.to_owned(),
            connected: self.is_connected(),
            error: if self.is_connected() {
                None
            } else {
                self.last_error().or_else(|| Some("not connected yet".into()))
            },
            leases: self.leases_held(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_connection_is_not_a_reconnect_and_every_later_one_is() {
        let s = ConnectionState::default();
        assert!(s.mark_down("refused".into()), "the first failure is news");
        assert!(!s.mark_down("refused".into()), "the same failure again is not");
        assert!(s.mark_up());
        assert_eq!(s.reconnects.load(Ordering::Relaxed), 0);
        assert!(!s.mark_up());
        assert!(s.mark_down("lost".into()));
        assert_eq!(s.last_error().as_deref(), Some("lost"));
        assert!(s.mark_up());
        assert_eq!(s.reconnects.load(Ordering::Relaxed), 1);
        assert_eq!(s.last_error(), None);
    }
}
