//! What one run measured, mergeable across generator processes.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Histogram of microseconds, 1 µs to 1 h, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Counters and raw histogram buckets of one process (so a parent can merge its children exactly).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Partial {
    pub clients: usize,
    pub connected: usize,
    pub connect_errors: usize,
    pub disconnects: usize,
    pub stalled: usize,
    pub stalled_closed: usize,
    pub churn_cycles: usize,
    pub messages: u64,
    /// Bytes read from the sockets in the measured window (frame headers included).
    #[serde(default)]
    pub wire_bytes: u64,
    /// The generator's own CPU over the window, % of one core (summed over processes).
    #[serde(default)]
    pub cpu_percent: f64,
    pub measure_secs: f64,
    /// (value µs, count) of delivery latency.
    pub latency: Vec<(u64, u64)>,
    /// (value µs, count) of connect-to-subscribed time.
    pub connect: Vec<(u64, u64)>,
    pub topics: usize,
    /// Delivery latency per second of the measured window, as `latency`: tells a burst (an attack's first
    /// seconds) from a steady cost.
    #[serde(default)]
    pub latency_by_second: Vec<Vec<(u64, u64)>>,
}

pub fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
}

pub fn from_buckets(b: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = histogram();
    for &(v, n) in b {
        let _ = h.record_n(v.max(1), n);
    }
    h
}

impl Partial {
    pub fn merge(parts: Vec<Partial>) -> Partial {
        let mut out = Partial::default();
        let (mut lat, mut con) = (histogram(), histogram());
        let mut by_second: Vec<Histogram<u64>> = Vec::new();
        for p in parts {
            out.clients += p.clients;
            out.connected += p.connected;
            out.connect_errors += p.connect_errors;
            out.disconnects += p.disconnects;
            out.stalled += p.stalled;
            out.stalled_closed += p.stalled_closed;
            out.churn_cycles += p.churn_cycles;
            out.messages += p.messages;
            out.wire_bytes += p.wire_bytes;
            out.cpu_percent += p.cpu_percent;
            out.measure_secs = out.measure_secs.max(p.measure_secs);
            out.topics = out.topics.max(p.topics);
            let _ = lat.add(from_buckets(&p.latency));
            let _ = con.add(from_buckets(&p.connect));
            for (second, b) in p.latency_by_second.iter().enumerate() {
                if by_second.len() <= second {
                    by_second.resize_with(second + 1, histogram);
                }
                let _ = by_second[second].add(from_buckets(b));
            }
        }
        out.latency = buckets(&lat);
        out.connect = buckets(&con);
        out.latency_by_second = by_second.iter().map(buckets).collect();
        out
    }
}

/// The final result: one JSON document and one summary line.
#[derive(Debug, Serialize)]
pub struct Report {
    pub clients: usize,
    pub connected: usize,
    pub topics: usize,
    pub stalled: usize,
    pub stalled_closed: usize,
    pub churn_cycles: usize,
    pub connect_errors: usize,
    pub disconnects: usize,
    pub measure_secs: f64,
    pub messages: u64,
    pub messages_per_second: f64,
    /// Whether the clients asked for permessage-deflate (`--deflate`).
    pub deflate: bool,
    /// Bytes read per delivered message (frame headers, pings and acks included).
    pub wire_bytes_per_message: f64,
    /// The generator's CPU over the window, % of one core.
    pub loadgen_cpu_percent: f64,
    pub latency_ms: Percentiles,
    /// p99 delivery latency (ms) of each second of the measured window.
    pub latency_p99_by_second_ms: Vec<f64>,
    pub connect_ms: Percentiles,
    pub server: Option<ServerFigures>,
    pub command: String,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(b: &[(u64, u64)]) -> Percentiles {
        let h = from_buckets(b);
        let ms = |v: u64| v as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The server process, sampled from /proc during the measured window.
#[derive(Debug, Serialize, Clone)]
pub struct ServerFigures {
    pub rss_mb: f64,
    pub baseline_rss_mb: f64,
    pub rss_kb_per_client: f64,
    pub cpu_percent: f64,
    /// The user-space part of `cpu_percent`.
    pub user_cpu_percent: f64,
}

impl Report {
    pub fn summary(&self) -> String {
        let server = self.server.as_ref().map_or(String::new(), |s| {
            // Server CPU per delivered message: the figure the multi-topic rows compare.
            let per_msg = |percent: f64| percent / 100.0 * 1e6 / self.messages_per_second.max(1.0);
            format!(
                " server_rss={:.1}MB rss/client={:.1}KB server_cpu={:.0}% server_us/msg={:.2} (user {:.2})",
                s.rss_mb,
                s.rss_kb_per_client,
                s.cpu_percent,
                per_msg(s.cpu_percent),
                per_msg(s.user_cpu_percent)
            )
        });
        format!(
            "clients={} connected={} topics={} deflate={} msgs/s={:.0} wire_bytes/msg={:.1} loadgen_cpu={:.0}% latency p50={:.2}ms p99={:.2}ms max={:.2}ms connect p99={:.1}ms errors={} disconnects={} stalled={}/{} closed churn_cycles={}{}",
            self.clients,
            self.connected,
            self.topics,
            self.deflate,
            self.messages_per_second,
            self.wire_bytes_per_message,
            self.loadgen_cpu_percent,
            self.latency_ms.p50,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.connect_ms.p99,
            self.connect_errors,
            self.disconnects,
            self.stalled_closed,
            self.stalled,
            self.churn_cycles,
            server
        )
    }
}
