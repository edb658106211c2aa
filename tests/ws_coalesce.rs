//! A dashboard client's updates share socket writes (issue 16). Its own test binary: the write and frame
//! counters are process-wide, and other tests' servers in the same process would add to them.

mod common;

use std::collections::HashMap;

use common::{Client, TestServer, SYMBOLS};
use serde_json::Value;

/// A dashboard client of six topics (every symbol's 1s bars, each updating ten times a second): it gets
/// every update as its own text frame with the same JSON as ever, and the server writes them in shared
/// buffers — /api/stats (and /metrics) count several frames per write, where one write per frame was the
/// rule before (the counters did not exist then: this test fails there for lack of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_clients_updates_share_writes() {
    use common::Toml;
    let server = TestServer::start(&[
        ("feed.simulated.trades_per_second", Toml::Float(200.0)),
        ("feed.simulated.tick_ms", Toml::Integer(20)),
    ])
    .await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&SYMBOLS, "1s").await;
    let before = server.stats().await;
    let mut per_symbol: HashMap<String, u64> = HashMap::new();
    let mut received = 0u64;
    while received < 240 {
        let msg: Value = c.next_json(10).await;
        if msg["type"] != "price_update" {
            continue;
        }
        assert_eq!(msg["interval"], "1s", "{msg}");
        assert!(msg["data"]["close"].as_f64().is_some() && msg["ts_sent"].as_i64().is_some(), "{msg}");
        *per_symbol.entry(msg["symbol"].as_str().unwrap().to_owned()).or_default() += 1;
        received += 1;
    }
    let after = server.stats().await;
    assert_eq!(per_symbol.len(), SYMBOLS.len(), "every topic's updates: {per_symbol:?}");
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    let (writes, frames) = (delta("ws_writes"), delta("ws_frames"));
    // The six snapshots came in the subscription's write, counted before `before`.
    let live = received - SYMBOLS.len() as u64;
    assert!(frames >= live, "every update counted as a frame: {frames} frames, {live} live updates received");
    // Six topics due at the client's one phase: about six frames a write; singles only for an update
    // that finds its slot idle, pings and replies.
    assert!(frames >= 3 * writes, "updates share writes: {frames} frames in {writes} writes");
}
