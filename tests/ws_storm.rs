//! Connection storms (issue 16): many clients connecting at once. (A restart under its clients is measured by
//! `candlecast-loadgen --mode restart`; a test of it waits for the fix of the bar missed across a restart,
//! see docs/BENCHMARKS.md "Connection storms".)
//! The servers run as the real binary (`tests/common/process.rs`), which listens with the configured
//! `[server] backlog` as `main` does. No timing is asserted (two shared cores): what must hold is that
//! every client is served and that no closed bar goes missing; the rates and times are in
//! docs/BENCHMARKS.md "Connection storms", from `candlecast-loadgen --mode storm` and `--mode restart`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
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
