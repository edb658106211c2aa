//! `/health` and `/ready` during the first start's backfill. The backfill is made slow by its source, not
//! by the product: a LOCAL stand-in for Binance's REST API (its documented `/api/v3/klines` rows) holds
//! each symbol's klines request until the test releases that symbol. Binance itself is never contacted.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestServer, Toml};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Klines requests seen (by symbol) and the symbols whose requests may be answered.
#[derive(Default)]
struct Gate {
    asked: HashSet<String>,
    released: HashSet<String>,
}

async fn fake_klines(gate: Arc<Mutex<Gate>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(answer(tcp, gate.clone()));
        }
    });
    addr
}

/// Answers one `GET /api/v3/klines?symbol=...` with one closed 1m bar, once its symbol is released.
async fn answer(mut tcp: TcpStream, gate: Arc<Mutex<Gate>>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    if !head.starts_with("GET /api/v3/klines") {
        // exchangeInfo (the symbol search asks once per process): no instruments, at once.
        let body = json!({"symbols": []}).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(resp.as_bytes()).await;
        return;
    }
    let symbol = head.split(['?', '&', ' ']).find_map(|p| p.strip_prefix("symbol=")).unwrap_or("").to_owned();
    gate.lock().unwrap().asked.insert(symbol.clone());
    while !gate.lock().unwrap().released.contains(&symbol) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let minute = (now / 60_000 - 1) * 60_000;
    let body =
        json!([[minute, "100.0", "101.0", "99.0", "100.5", "3.0", minute + 59_999, "300.0", 3, "1.0", "100.0", "0"]])
            .to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(resp.as_bytes()).await;
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

/// A server whose Binance feed backfills `symbols` from the held stand-in (see [`fake_klines`]).
async fn held_binance(symbols: &[&str]) -> (Arc<Mutex<Gate>>, TestServer) {
    let gate = Arc::new(Mutex::new(Gate::default()));
    let rest = fake_klines(gate.clone()).await;
    // Nothing listens there: the live stream reconnects, which /health shows without degrading.
    let ws = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = TestServer::start_serving(&[
        ("feed.source", Toml::String("binance".into())),
        ("feed.symbols", Toml::Array(symbols.iter().map(|s| Toml::String((*s).into())).collect())),
        ("feed.binance.ws_url", Toml::String(format!("ws://{ws}"))),
        ("feed.binance.rest_url", Toml::String(format!("http://{rest}"))),
        ("feed.binance.backfill_days", Toml::Integer(1)),
        ("feed.binance.backfill_fine_hours", Toml::Integer(0)),
        // The held request must outlast the test's checks on a busy machine.
        ("feed.binance.rest_timeout_ms", Toml::Integer(600_000)),
    ])
    .await;
    (gate, server)
}

#[tokio::test]
async fn health_says_warming_up_and_ready_answers_503_until_every_symbol_has_its_history() {
    let (gate, server) = held_binance(&["BTCUSDT", "ETHUSDT"]).await;
    eventually("both backfills asked for klines", || gate.lock().unwrap().asked.len() == 2).await;

    let (code, health) = server.get_json("/health").await;
    assert_eq!((code, health["status"].as_str()), (200, Some("warming_up")), "{health}");
    assert_eq!(health["history"]["ready"], false, "{health}");
    assert_eq!(health["history"]["symbols_total"], 2, "{health}");
    assert!(health["uptime_seconds"].is_u64() && health["store"]["status"] == "ok", "existing fields stay: {health}");
    let ready = reqwest::get(server.url("/ready")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ready.headers().get("retry-after").is_some());

    // One symbol's history arrives: still warming up, one of two done.
    gate.lock().unwrap().released.insert("BTCUSDT".into());
    server.wait_for("/api/price/BTCUSDT", 200).await;
    let (_, health) = server.get_json("/health").await;
    assert_eq!(health["status"], "warming_up", "{health}");
    assert_eq!(
        (health["history"]["symbols_done"].as_u64(), health["history"]["bars"].as_u64() > Some(0)),
        (Some(1), true)
    );
    assert_eq!(reqwest::get(server.url("/ready")).await.unwrap().status().as_u16(), 503);

    gate.lock().unwrap().released.insert("ETHUSDT".into());
    server.wait_for("/ready", 200).await;
    let (code, health) = server.get_json("/health").await;
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert_eq!(
        health["history"],
        json!({"ready": true, "symbols_done": 2, "symbols_total": 2,
        "bars": health["history"]["bars"], "eta_seconds": null})
    );
}

/// History asked while a symbol's backfill is still on its way waits for it instead of answering without
/// it (after a restart, a dashboard that refetched its gap first never got the bar forming at the restart).
#[tokio::test]
async fn history_asked_during_the_backfill_includes_it() {
    let (gate, server) = held_binance(&["BTCUSDT"]).await;
    eventually("the backfill asked for klines", || gate.lock().unwrap().asked.contains("BTCUSDT")).await;
    let url = server.url("/api/historical/BTCUSDT?interval=1m&limit=10");
    let asked =
        tokio::spawn(async move { reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap() });
    // Give the request time to reach the server first (without the wait, it would be answered at once,
    // empty); on a machine so slow that it arrives after the release, the test passes without proving it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!asked.is_finished(), "answered before the backfill arrived");
    gate.lock().unwrap().released.insert("BTCUSDT".into());
    let body = asked.await.unwrap();
    let bars = body["data"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert!(bars.iter().any(|b| b["closed"] == true), "the backfilled bar is in the reply: {body}");
}

/// A node without configured feeds has nothing to wait for.
#[tokio::test]
async fn without_feeds_the_node_is_ready_at_once() {
    let server = TestServer::start_serving(&[("feed.source", Toml::String("none".into()))]).await;
    server.wait_for("/ready", 200).await;
    assert_eq!(server.get_json("/health").await.1["status"], "ok");
}
