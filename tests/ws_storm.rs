//! Connection storms (issue 16): many clients connecting at once, and a server restart under its clients.
//! The servers run as the real binary (`tests/common/process.rs`), which listens with the configured
//! `[server] backlog` as `main` does. No timing is asserted (two shared cores): what must hold is that
//! every client is served and that no closed bar goes missing; the rates and times are in
//! docs/BENCHMARKS.md "Connection storms", from `candlecast-loadgen --mode storm` and `--mode restart`.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::history::{small, strings};
use common::{TestServer, Toml};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one client waits for anything before the test calls it lost (a guard against hanging, not a
/// measurement: a storm answered in 50 s passes).
const GUARD: Duration = Duration::from_secs(60);

/// Opens `/ws`, subscribes to `symbol`'s 1s bars, and returns once the subscription is acknowledged.
async fn subscribe(url: &str, symbol: &str) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| format!("connect: {e}"))?;
    let sub = json!({"type": "subscribe", "trading_pairs": [symbol], "interval": "1s"});
    ws.send(Message::text(sub.to_string())).await.map_err(|e| format!("send: {e}"))?;
    loop {
        let msg = next_json(&mut ws).await?;
        match msg["type"].as_str() {
            Some("subscribed") => return Ok(ws),
            Some("error") => return Err(format!("subscribe refused: {msg}")),
            _ => {}
        }
    }
}

/// The next JSON text message (pings are answered by tungstenite); `Err` on close or after [`GUARD`].
async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(GUARD, ws.next()).await {
            Err(_) => return Err("nothing from the server within the guard".into()),
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).map_err(|e| format!("not JSON: {e}")),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => return Err("closed".into()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
        }
    }
}

/// Subscribes and waits for the first `price_update`, which must be of `symbol`.
async fn first_update(url: &str, symbol: &str) -> Result<Ws, String> {
    let mut ws = subscribe(url, symbol).await?;
    loop {
        let msg = next_json(&mut ws).await?;
        if msg["type"] == "price_update" {
            if msg["symbol"] != symbol {
                return Err(format!("an update of another topic: {msg}"));
            }
            return Ok(ws);
        }
    }
}

/// 500 connections opened at the same moment from loopback (where the per-host limits do not apply): every
/// one is accepted, upgraded, subscribed and gets its first update, none refused or reset, and the server
/// holds them all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_connecting_at_once_are_all_served() {
    const CLIENTS: usize = 500;
    let server = TestServer::start_process(&[]).await;
    server.wait_for("/api/price/SOLUSDT", 200).await;
    let url = server.ws_url();
    let held = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let release = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (url, held, release) = (url.clone(), held.clone(), release.clone());
        let symbol = common::SYMBOLS[i % common::SYMBOLS.len()];
        tasks.push(tokio::spawn(async move {
            let released = release.notified();
            let outcome = first_update(&url, symbol).await;
            // Every client holds its connection until all have their outcome (no panic before this point:
            // the barrier waits for every client).
            held.wait().await;
            released.await;
            outcome.map(|_| ())
        }));
    }
    held.wait().await;
    let stats = server.stats().await;
    release.notify_waiters();
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("client task") {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients not served: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let open = stats["total_clients"].as_u64().unwrap_or_else(|| panic!("total_clients in /api/stats: {stats}"));
    assert!(open >= CLIENTS as u64, "the server holds every client at once: {open} connections");
}

/// What one client saw of its topic: every closed bar's timestamp, and the newest bar of any state.
#[derive(Default)]
struct Held {
    closed: BTreeSet<i64>,
    newest: i64,
}

impl Held {
    fn take(&mut self, bar: &Value) {
        let ts = bar["timestamp"].as_i64().expect("a bar timestamp");
        if bar["closed"] == true {
            self.closed.insert(ts);
        }
        self.newest = self.newest.max(ts);
    }

    /// Takes in a message's bars: a live update or a history reply.
    fn take_message(&mut self, msg: &Value) {
        match msg["type"].as_str() {
            Some("price_update") => self.take(&msg["data"]),
            Some("historical") => msg["data"].as_array().into_iter().flatten().for_each(|b| self.take(b)),
            _ => {}
        }
    }
}

/// Reads until a bar closes live after `after`, taking in every bar on the way.
async fn until_closed_after(ws: &mut Ws, held: &mut Held, after: i64) -> Result<(), String> {
    while held.closed.last().is_none_or(|&last| last <= after) {
        held.take_message(&next_json(ws).await?);
    }
    Ok(())
}

/// The dashboard's way back (frontend/src/net/connection.ts, chart/barFeed.ts `resync`): reconnect with
/// growing, jittered delays; subscribe again; ask `get_historical` from the newest bar held; then live.
async fn come_back(url: &str, symbol: &str, held: &mut Held) -> Ws {
    let mut delay_ms = 100.0_f64;
    loop {
        // Jitter without a random crate: the clock's nanoseconds spread clients over the delay's upper half.
        let jitter =
            f64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()) / 1e9;
        tokio::time::sleep(Duration::from_secs_f64(delay_ms * (0.5 + 0.5 * jitter) / 1000.0)).await;
        delay_ms = (delay_ms * 2.0).min(2000.0);
        let Ok(mut ws) = subscribe(url, symbol).await else { continue };
        let ask = json!({"type": "get_historical", "trading_pair": symbol, "interval": "1s", "start_time": held.newest, "limit": 5000});
        if ws.send(Message::text(ask.to_string())).await.is_err() {
            continue;
        }
        loop {
            match next_json(&mut ws).await {
                Ok(msg) if msg["type"] == "historical" => {
                    held.take_message(&msg);
                    return ws;
                }
                Ok(msg) if msg["type"] == "error" => panic!("the refetch was refused: {msg}"),
                Ok(msg) => held.take_message(&msg),
                Err(_) => break,
            }
        }
    }
}

/// A server restarted (SIGTERM, then the same binary on the same port and store) under 40 clients: every
/// client notices, comes back, subscribes again, refetches its gap like the dashboard, and then holds every
/// closed bar the restarted server has over the span it watched, before, across and after the restart; and
/// the server has every closed bar the clients were sent live before it went down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_every_client_is_back_and_misses_no_closed_bar() {
    const CLIENTS: usize = 40;
    let dir = tempfile::tempdir().expect("store directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let overrides = small(&[("server.port", Toml::Integer(i64::from(port))), ("feed.symbols", strings(&["BTCUSDT"]))]);
    let mut server = TestServer::start_process_in(dir.path(), &overrides).await;
    server.wait_for("/api/price/BTCUSDT", 200).await;
    let url = server.ws_url();

    let (watching, back) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, watching, back) = (url.clone(), watching.clone(), back.clone());
        tasks.push(tokio::spawn(async move {
            let mut held = Held::default();
            let mut ws = subscribe(&url, "BTCUSDT").await.expect("first subscription");
            // Two live closed bars before the restart: the span to check starts before it.
            until_closed_after(&mut ws, &mut held, 0).await.expect("a first closed bar");
            let first = *held.closed.last().unwrap();
            until_closed_after(&mut ws, &mut held, first).await.expect("a second closed bar");
            let live_before = held.closed.clone();
            watching.fetch_add(1, Ordering::SeqCst);
            // Until the server goes away.
            while let Ok(msg) = next_json(&mut ws).await {
                held.take_message(&msg);
            }
            let mut ws = come_back(&url, "BTCUSDT", &mut held).await;
            back.fetch_add(1, Ordering::SeqCst);
            let refetched_to = *held.closed.last().unwrap();
            until_closed_after(&mut ws, &mut held, refetched_to).await.expect("a live closed bar after the refetch");
            (held, live_before)
        }));
    }
    let all_watching = watching.clone();
    common::history::eventually("every client watching", move || {
        let all_watching = all_watching.clone();
        async move { all_watching.load(Ordering::SeqCst) == CLIENTS }
    })
    .await;
    server.terminate();
    let server = TestServer::start_process_in(dir.path(), &overrides).await;
    assert_eq!(server.addr.port(), port, "the restarted server listens where its clients knew it");

    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.expect("a client came back"));
    }
    assert_eq!(back.load(Ordering::SeqCst), CLIENTS, "every client is back");
    let lo = clients.iter().map(|(h, _)| *h.closed.first().unwrap()).min().unwrap();
    let hi = clients.iter().map(|(h, _)| *h.closed.last().unwrap()).max().unwrap();
    let (status, body) = server
        .get_json(&format!("/api/historical/BTCUSDT?interval=1s&start_time={lo}&end_time={}&limit=5000", hi + 1))
        .await;
    assert_eq!(status, 200, "{body}");
    let truth: BTreeSet<i64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["closed"] == true)
        .map(|b| b["timestamp"].as_i64().unwrap())
        .collect();
    for (i, (held, live_before)) in clients.iter().enumerate() {
        let (first, last) = (*held.closed.first().unwrap(), *held.closed.last().unwrap());
        let expected: Vec<i64> = truth.range(first..=last).copied().collect();
        let missed: Vec<i64> = expected.iter().filter(|&&ts| !held.closed.contains(&ts)).copied().collect();
        assert!(missed.is_empty(), "client {i} misses closed bars the server has: {missed:?}");
        let lost: Vec<i64> = live_before.iter().filter(|&&ts| !truth.contains(&ts)).copied().collect();
        assert!(lost.is_empty(), "closed bars sent live before the restart are gone from the history: {lost:?}");
        // The span really crosses the restart: bars closed after the second server started are in it.
        assert!(expected.len() > live_before.len(), "client {i} watched past the restart");
    }
}
