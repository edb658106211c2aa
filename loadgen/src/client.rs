//! The clients of one generator process: readers, stalled clients and churners.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::raw::{Next, RawWs};

use crate::stats::{buckets, histogram, Partial};
use crate::{measure_start, Args};

/// Latency histograms are sharded so thousands of tasks rarely wait for one lock.
const SHARDS: usize = 16;

/// What a process's client tasks share.
struct Shared {
    measuring: AtomicBool,
    finished: AtomicBool,
    messages: AtomicU64,
    /// Bytes the readers read from their sockets while measuring (frame headers included).
    wire_bytes: AtomicU64,
    connected: AtomicUsize,
    connect_errors: AtomicUsize,
    disconnects: AtomicUsize,
    stalled_closed: AtomicUsize,
    churn_cycles: AtomicUsize,
    latency: Vec<Mutex<Histogram<u64>>>,
    /// The same per second of the window (a few histograms, so one lock each is enough).
    by_second: Vec<Mutex<Histogram<u64>>>,
    window_opens: Instant,
    connect: Mutex<Histogram<u64>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Reader,
    Stalled,
    Churner,
}

fn now_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The `ts_sent` of a price update, without parsing the whole message.
fn ts_sent(text: &str) -> Option<u64> {
    let at = text.rfind("\"ts_sent\":")? + "\"ts_sent\":".len();
    let digits: &str = &text[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The topic of client `index`: `hot_fraction` of clients on the first `hot` symbols, the rest spread.
fn symbol_for(index: usize, symbols: &[String], hot: usize, hot_fraction: f64) -> String {
    let mut rng = SmallRng::seed_from_u64((index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let hot = hot.clamp(1, symbols.len());
    let pick = if rng.random::<f64>() < hot_fraction || hot == symbols.len() {
        rng.random_range(0..hot)
    } else {
        rng.random_range(hot..symbols.len())
    };
    symbols[pick].clone()
}

/// The symbols of client `index`'s topics, comma-separated: its [`symbol_for`] and the `n - 1` symbols
/// after it in `symbols`, cyclically (n distinct symbols, one interval: a dashboard of n charts).
fn symbols_for(index: usize, symbols: &[String], hot: usize, hot_fraction: f64, n: usize) -> String {
    let first = symbol_for(index, symbols, hot, hot_fraction);
    let at = symbols.iter().position(|s| *s == first).unwrap_or(0);
    (0..n.clamp(1, symbols.len())).map(|k| symbols[(at + k) % symbols.len()].as_str()).collect::<Vec<_>>().join(",")
}

pub async fn run_process(args: Arc<Args>) -> anyhow::Result<Partial> {
    let symbols: Vec<String> = args.symbols.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(!symbols.is_empty(), "--symbols is empty");
    let start = Instant::now();
    let window_opens = start + Duration::from_secs_f64(measure_start(&args));
    let window_closes = window_opens + Duration::from_secs_f64(args.duration);
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        messages: AtomicU64::new(0),
        wire_bytes: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
        connect_errors: AtomicUsize::new(0),
        disconnects: AtomicUsize::new(0),
        stalled_closed: AtomicUsize::new(0),
        churn_cycles: AtomicUsize::new(0),
        latency: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        by_second: (0..args.duration.ceil().max(1.0) as usize).map(|_| Mutex::new(histogram())).collect(),
        window_opens,
        connect: Mutex::new(histogram()),
    });
    let gap = Duration::from_secs_f64(1.0 / args.connect_rate.max(1.0));
    let (n_stalled, n_churn) =
        ((args.clients as f64 * args.stalled).round() as usize, (args.clients as f64 * args.churn).round() as usize);
    let mut tasks = Vec::with_capacity(args.clients);
    let mut topics = std::collections::HashSet::new();
    for i in 0..args.clients {
        let global = args.first_client + i;
        let role = if i < n_stalled {
            Role::Stalled
        } else if i < n_stalled + n_churn {
            Role::Churner
        } else {
            Role::Reader
        };
        let symbol = symbols_for(global, &symbols, args.hot_symbols, args.hot_fraction, args.topics_per_client);
        topics.extend(symbol.split(',').map(str::to_owned));
        let (args, shared) = (args.clone(), shared.clone());
        tasks.push(tokio::spawn(async move { client(role, global, symbol, args, shared, window_closes).await }));
        tokio::time::sleep_until((start + gap * (i as u32 + 1)).into()).await;
    }
    tokio::time::sleep_until(window_opens.into()).await;
    let measured_from = Instant::now();
    let own_before = crate::procstat::sample(std::process::id());
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep_until(window_closes.into()).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let measure_secs = measured_from.elapsed().as_secs_f64();
    let own_cpu = match (own_before, crate::procstat::sample(std::process::id())) {
        (Some(a), Some(b)) => crate::procstat::cpu_percent(&a, &b),
        _ => 0.0,
    };
    shared.finished.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut latency = histogram();
    for shard in &shared.latency {
        if let Ok(h) = shard.lock() {
            let _ = latency.add(&*h);
        }
    }
    let connect = shared.connect.lock().map(|h| buckets(&h)).unwrap_or_default();
    Ok(Partial {
        clients: args.clients,
        connected: shared.connected.load(Ordering::Relaxed),
        connect_errors: shared.connect_errors.load(Ordering::Relaxed),
        disconnects: shared.disconnects.load(Ordering::Relaxed),
        stalled: n_stalled,
        stalled_closed: shared.stalled_closed.load(Ordering::Relaxed),
        churn_cycles: shared.churn_cycles.load(Ordering::Relaxed),
        messages: shared.messages.load(Ordering::Relaxed),
        wire_bytes: shared.wire_bytes.load(Ordering::Relaxed),
        cpu_percent: own_cpu,
        measure_secs,
        latency: buckets(&latency),
        connect,
        topics: topics.len(),
        latency_by_second: shared.by_second.iter().filter_map(|m| m.lock().ok().map(|h| buckets(&h))).collect(),
    })
}

/// Connects and subscribes; returns the connection once the server acknowledged.
async fn connect(args: &Args, symbol: &str) -> anyhow::Result<RawWs> {
    if args.protocol == "socketio" {
        return connect_socketio(args, symbol).await;
    }
    let mut ws = RawWs::connect_with(&args.url, args.deflate).await?;
    // `symbol` is one symbol or, with --topics-per-client, several separated by commas.
    let pairs = symbol.split(',').map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(",");
    let sub = format!(r#"{{"type":"subscribe","trading_pairs":[{pairs}],"interval":"{}"}}"#, args.interval);
    ws.send_text(&sub).await?;
    while let Next::Text(t) = ws.next_text().await? {
        if t.contains("\"subscribed\"") {
            return Ok(ws);
        }
        anyhow::ensure!(!t.contains("\"error\""), "subscribe refused: {t}");
    }
    anyhow::bail!("closed before the subscription was acknowledged")
}

/// Engine.IO v4 over WebSocket: open packet `0{..}`, namespace connect `40`, then events `42[..]`.
async fn connect_socketio(args: &Args, symbol: &str) -> anyhow::Result<RawWs> {
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", args.url.trim_end_matches('/'));
    let mut ws = RawWs::connect(&url).await?;
    let mut sent_subscribe = false;
    loop {
        let reply = match ws.next_text().await? {
            Next::Closed => anyhow::bail!("closed before the subscription was acknowledged"),
            Next::Text(t) if t.starts_with("42[\"subscribed\"") => return Ok(ws),
            Next::Text(t) if t.starts_with("40") && !sent_subscribe => {
                sent_subscribe = true;
                format!(r#"42["subscribe",{{"symbol":"{symbol}","interval":"{}"}}]"#, args.interval)
            }
            Next::Text(t) if t.starts_with('0') => "40".to_owned(),
            Next::Text("2") => "3".to_owned(),
            Next::Text(_) => continue,
        };
        ws.send_text(&reply).await?;
    }
}

async fn client(role: Role, index: usize, symbol: String, args: Arc<Args>, shared: Arc<Shared>, end: Instant) {
    if role == Role::Churner {
        return churn(&args, &symbol, &shared, end).await;
    }
    let began = Instant::now();
    let mut ws = match connect(&args, &symbol).await {
        Ok(ws) => ws,
        Err(_) => {
            shared.connect_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if let Ok(mut h) = shared.connect.lock() {
        let _ = h.record(began.elapsed().as_micros().max(1) as u64);
    }
    shared.connected.fetch_add(1, Ordering::Relaxed);
    if role == Role::Stalled {
        // Hold the socket without reading until the run ends and a grace after it, then look whether the server
        // closed it: it finds a client that stopped reading by the pongs it never sends (or by an overflowing
        // queue). Not reading during the grace matters: reading would answer the queued pings.
        tokio::time::sleep_until((end + Duration::from_secs_f64(args.stall_grace)).into()).await;
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if matches!(ws.next_text().await, Ok(Next::Closed) | Err(_)) {
                    return true;
                }
            }
        })
        .await
        .unwrap_or(false);
        if closed {
            shared.stalled_closed.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let shard = &shared.latency[index % SHARDS];
    // One timer for the whole run, not one per message.
    let run_ends = tokio::time::sleep_until(end.into());
    tokio::pin!(run_ends);
    loop {
        let engine_io_ping = tokio::select! {
            next = ws.next_text() => match next {
                Ok(Next::Text(t)) => {
                    if shared.measuring.load(Ordering::Relaxed) {
                        if let Some(sent) = ts_sent(t) {
                            shared.messages.fetch_add(1, Ordering::Relaxed);
                            let micros = now_micros().saturating_sub(sent).max(1);
                            if let Ok(mut h) = shard.lock() {
                                let _ = h.record(micros);
                            }
                            let second = shared.window_opens.elapsed().as_secs() as usize;
                            if let Some(Ok(mut h)) = shared.by_second.get(second).map(|m| m.lock()) {
                                let _ = h.record(micros);
                            }
                        }
                    }
                    t == "2"
                }
                Ok(Next::Closed) | Err(_) => {
                    if !shared.finished.load(Ordering::Relaxed) {
                        shared.disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
            },
            _ = &mut run_ends => break,
        };
        let read = ws.take_bytes();
        if shared.measuring.load(Ordering::Relaxed) {
            shared.wire_bytes.fetch_add(read, Ordering::Relaxed);
        }
        // Engine.IO's server ping must be answered, or the peer drops the client.
        if engine_io_ping && ws.send_text("3").await.is_err() && !shared.finished.load(Ordering::Relaxed) {
            shared.disconnects.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    ws.close().await;
}

/// Connect, subscribe, take one update, leave; again until the run ends.
async fn churn(args: &Args, symbol: &str, shared: &Shared, end: Instant) {
    while Instant::now() < end {
        match connect(args, symbol).await {
            Ok(mut ws) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.next_text()).await;
                ws.close().await;
                shared.churn_cycles.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.connect_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ts_sent() {
        assert_eq!(
            ts_sent(r#"{"type":"price_update","data":{"close":1.0},"ts_sent":1700000000123456}"#),
            Some(1_700_000_000_123_456)
        );
        assert_eq!(ts_sent(r#"{"type":"pong"}"#), None);
    }

    #[test]
    fn a_dashboard_client_gets_distinct_symbols() {
        let symbols: Vec<String> = ["A", "B", "C", "D", "E", "F"].map(String::from).to_vec();
        for i in 0..100 {
            let mut got: Vec<&str> = Vec::new();
            let list = symbols_for(i, &symbols, 5, 0.8, 6);
            got.extend(list.split(','));
            got.sort_unstable();
            assert_eq!(got, ["A", "B", "C", "D", "E", "F"]);
            assert_eq!(symbols_for(i, &symbols, 5, 0.8, 1), symbol_for(i, &symbols, 5, 0.8));
            assert_eq!(symbols_for(i, &symbols, 5, 0.8, 2).split(',').count(), 2);
        }
    }

    #[test]
    fn hot_fraction_is_respected() {
        let symbols: Vec<String> = ["A", "B", "C", "D", "E", "F"].map(String::from).to_vec();
        let hot = (0..10_000)
            .filter(|i| ["A", "B", "C", "D", "E"].contains(&symbol_for(*i, &symbols, 5, 0.8).as_str()))
            .count();
        let expected_hot = 8_000.0 + 2_000.0 * 0.0;
        assert!((hot as f64 - expected_hot).abs() < 300.0, "{hot}");
    }
}
