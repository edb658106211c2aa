//! What the feed tests (IQFeed, Kite, Shoonya) share: a port for their fake venue, and waiting for what
//! the server says of a feed. Every wait polls for a condition with a deadline; none sleeps a fixed time.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;

use super::TestServer;

/// A listener for a fake venue on a free loopback port.
pub async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port")
}

/// The wall clock in ms, as the server reads it.
pub fn now_ms() -> i64 {
    candlecast_actors::model::now_ms()
}

/// Polls until `check` holds, or panics with `what` after `secs`.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls /api/feeds until `check` accepts the feed of `symbol` (or panics with `what` after 30 s); returns it.
pub async fn feed_until(server: &TestServer, symbol: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server.get_json("/api/feeds").await;
        let feeds = body["feeds"].as_array().cloned().unwrap_or_default();
        let f = feeds.into_iter().find(|f| f["symbol"] == symbol).unwrap_or_default();
        if check(&f) {
            return f;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {f}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Trades and volume in the live 1s bars of `symbol`, once there are `trades` of them (or 20 s passed).
pub async fn wait_totals(server: &TestServer, symbol: &str, trades: u64) -> (u64, f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = server.get_json(&format!("/api/historical/{symbol}?interval=1s&limit=300")).await;
        let bars = body["data"].as_array().cloned().unwrap_or_default();
        let t = (
            bars.iter().map(|b| b["trades"].as_u64().unwrap_or(0)).sum(),
            bars.iter().map(|b| b["volume"].as_f64().unwrap_or(0.0)).sum(),
        );
        if t.0 >= trades || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
