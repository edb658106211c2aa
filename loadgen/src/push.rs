//! `--mode push`: scripts streaming trades into candlecast over Socket.IO on WebSocket, with the batch
//! event `trades` and acknowledgements. Each script keeps `--window` batches in flight and counts the
//! trades the server acknowledged as accepted; the figure is trades accepted per second over the
//! measured window, with the acknowledgement round trip as latency.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{buckets, histogram, Percentiles};
use crate::Args;

/// What a push run measured.
#[derive(Debug, Serialize)]
pub struct PushReport {
    pub scripts: usize,
    pub batch: usize,
    pub window: usize,
    pub measure_secs: f64,
    pub trades_accepted: u64,
    pub trades_per_second: f64,
    pub batches_per_second: f64,
    pub rejected: u64,
    pub late_dropped: u64,
    pub ack_latency_ms: Percentiles,
    pub command: String,
}

impl PushReport {
    pub fn summary(&self) -> String {
        format!(
            "push: {} script(s), batches of {}, {} in flight: {:.0} trades/s accepted ({:.0} batches/s), rejected {}, late {}, ack p50 {:.1} ms p99 {:.1} ms",
            self.scripts, self.batch, self.window, self.trades_per_second, self.batches_per_second, self.rejected, self.late_dropped, self.ack_latency_ms.p50, self.ack_latency_ms.p99
        )
    }
}

#[derive(Default)]
struct Counters {
    measuring: AtomicBool,
    accepted: AtomicU64,
    batches: AtomicU64,
    rejected: AtomicU64,
    late: AtomicU64,
}

/// Runs `--clients` scripts for warm-up plus `--duration` seconds.
pub async fn run(args: Arc<Args>, command: String) -> anyhow::Result<PushReport> {
    let symbols: Vec<String> = args.symbols.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(!symbols.is_empty(), "--symbols is empty");
    let counters = Arc::new(Counters::default());
    let latency = Arc::new(Mutex::new(histogram()));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let (args, counters, latency, symbol) =
            (args.clone(), counters.clone(), latency.clone(), symbols[i % symbols.len()].clone());
        tasks.push(tokio::spawn(async move { script(&args, &symbol, &counters, &latency, end).await }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    counters.measuring.store(true, Ordering::Relaxed);
    let measured_at = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    counters.measuring.store(false, Ordering::Relaxed);
    let measure_secs = measured_at.elapsed().as_secs_f64();
    for t in tasks {
        t.await.context("script task")?.context("script")?;
    }
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let latency = latency.lock().map_err(|_| anyhow::anyhow!("latency lock poisoned"))?;
    Ok(PushReport {
        scripts: args.clients,
        batch: args.batch,
        window: args.window,
        measure_secs,
        trades_accepted: accepted,
        trades_per_second: accepted as f64 / measure_secs.max(0.001),
        batches_per_second: counters.batches.load(Ordering::Relaxed) as f64 / measure_secs.max(0.001),
        rejected: counters.rejected.load(Ordering::Relaxed),
        late_dropped: counters.late.load(Ordering::Relaxed),
        ack_latency_ms: Percentiles::of(&buckets(&latency)),
        command,
    })
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// tungstenite zero-fills its read buffer up to `read_buffer_size` (128 KiB by default) on every read;
/// with one small update per read that memset was over half of the generator's CPU. Updates are a few
/// hundred bytes, so a few KiB is plenty (larger messages still arrive, over several reads).
const READ_BUFFER_BYTES: usize = 4096;

/// Opens a WebSocket with a small read buffer and Nagle off (pongs and requests leave at once).
async fn open(url: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    Ok(ws)
}

/// Opens a Socket.IO session on WebSocket and connects to `/` with the key.
async fn connect(args: &Args) -> anyhow::Result<Ws> {
    let base = args.url.trim_end_matches('/').trim_end_matches("/ws");
    let url = format!("{base}/socket.io/?EIO=4&transport=websocket");
    let mut ws = open(&url).await.with_context(|| format!("connecting to {url}"))?;
    while let Some(msg) = ws.next().await {
        let Message::Text(t) = msg? else { continue };
        if t.starts_with('0') {
            ws.send(Message::text(format!(r#"40{{"token":{}}}"#, serde_json::to_string(&args.token)?))).await?;
        } else if t.starts_with("40") {
            ws.send(Message::text(r#"42["join_script"]"#)).await?;
            return Ok(ws);
        } else if t.starts_with("44") {
            bail!("connection refused: {t}");
        }
    }
    bail!("closed before the namespace connect was answered")
}

/// One batch event asking for acknowledgement `id`: `42<id>["trades",[{...},...]]`, stamped now.
fn batch_event(id: u64, symbol: &str, size: usize, seq: u64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut out = String::with_capacity(size * 90 + 32);
    let _ = write!(out, r#"42{id}["trades",["#);
    for i in 0..size {
        let price = 100.0 + ((seq as usize * size + i) % 97) as f64 * 0.01;
        let side = if i % 2 == 0 { "buy" } else { "sell" };
        if i > 0 {
            out.push(',');
        }
        let _ =
            write!(out, r#"{{"symbol":"{symbol}","price":{price:.2},"qty":0.01,"side":"{side}","timestamp":{now}}}"#);
    }
    out.push_str("]]");
    out
}

/// The id and payload of an acknowledgement `43<id>[{...}]`.
fn parse_ack(text: &str) -> Option<(u64, Value)> {
    let rest = text.strip_prefix("43")?;
    let digits = rest.find('[')?;
    let id = rest[..digits].parse().ok()?;
    let mut args: Vec<Value> = serde_json::from_str(&rest[digits..]).ok()?;
    Some((id, args.pop()?))
}

async fn script(
    args: &Args,
    symbol: &str,
    counters: &Counters,
    latency: &Mutex<Histogram<u64>>,
    end: Instant,
) -> anyhow::Result<()> {
    let mut ws = connect(args).await?;
    let mut in_flight: HashMap<u64, Instant> = HashMap::new();
    let mut next_id = 1u64;
    loop {
        while in_flight.len() < args.window.max(1) && Instant::now() < end {
            ws.send(Message::text(batch_event(next_id, symbol, args.batch, next_id))).await?;
            in_flight.insert(next_id, Instant::now());
            next_id += 1;
        }
        if in_flight.is_empty() {
            break;
        }
        let msg =
            tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("no acknowledgement within 30 s")?;
        let Some(msg) = msg else { bail!("the server closed the connection") };
        let Message::Text(t) = msg? else { continue };
        if t.as_str() == "2" {
            ws.send(Message::text("3")).await?;
            continue;
        }
        let Some((id, ack)) = parse_ack(&t) else {
            anyhow::ensure!(!t.starts_with("42[\"error\""), "server error: {t}");
            continue;
        };
        let Some(sent) = in_flight.remove(&id) else { continue };
        anyhow::ensure!(ack["ok"] == true, "batch refused: {ack}");
        if counters.measuring.load(Ordering::Relaxed) {
            counters.accepted.fetch_add(ack["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            counters.late.fetch_add(ack["late_dropped"].as_u64().unwrap_or(0), Ordering::Relaxed);
            counters.rejected.fetch_add(ack["rejected"].as_array().map_or(0, Vec::len) as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut h) = latency.lock() {
                let _ = h.record(sent.elapsed().as_micros() as u64);
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_socketio_events_with_an_ack_id() {
        let e = batch_event(7, "PUSH0", 3, 1);
        assert!(e.starts_with(r#"427["trades",[{"symbol":"PUSH0","price":"#), "{e}");
        let trades: Vec<Value> = serde_json::from_str(&e[e.find(',').unwrap() + 1..e.len() - 1]).unwrap();
        assert_eq!(trades.len(), 3);
        assert_eq!(
            parse_ack(r#"4312[{"accepted":3,"ok":true}]"#).map(|(id, v)| (id, v["accepted"].clone())),
            Some((12, Value::from(3)))
        );
        assert_eq!(parse_ack("42[\"x\"]"), None);
    }
}
