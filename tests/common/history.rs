//! Checks of stored history shared by the tests of each store: reading bars over REST, waiting for the
//! store to catch up, and the restart scenario.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{TestServer, Toml};

pub fn strings(items: &[&str]) -> Toml {
    Toml::Array(items.iter().map(|s| Toml::String((*s).into())).collect())
}

/// One symbol and three intervals keep the backfill small; `extra` comes after.
pub fn small(extra: &[(&'static str, Toml)]) -> Vec<(&'static str, Toml)> {
    let mut o = vec![("feed.symbols", strings(&["BTCUSDT"])), ("aggregator.intervals", strings(&["1s", "1m", "1h"]))];
    o.extend(extra.iter().cloned());
    o
}

/// `GET /api/historical/BTCUSDT?<query>`'s bars.
pub async fn bars(server: &TestServer, query: &str) -> Vec<Value> {
    let (status, body) = server.get_json(&format!("/api/historical/BTCUSDT?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

pub fn ts(bar: &Value) -> i64 {
    bar["timestamp"].as_i64().unwrap()
}

pub fn closed_by_time(bars: &[Value]) -> BTreeMap<i64, Value> {
    bars.iter().filter(|b| b["closed"] == true).map(|b| (ts(b), b.clone())).collect()
}

pub fn assert_contiguous(bars: &[Value], step: i64, what: &str) {
    for w in bars.windows(2) {
        assert_eq!(ts(&w[1]) - ts(&w[0]), step, "{what}: gap or duplicate between {} and {}", w[0], w[1]);
    }
}

/// Polls until `f` holds (the server works asynchronously); panics after two minutes.
pub async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..1200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the backfill stored at start is written (nothing buffered, journaled or held back).
pub async fn persisted(server: &TestServer) {
    eventually("the backfill in the store", || async {
        let p = server.stats().await["persistence"].clone();
        p["written_bars"].as_u64().unwrap_or(0) > 1_000
            && p["buffered_bars"] == 0
            && p["journal_bars"] == 0
            && p["backfill_waiting_bars"].as_u64().unwrap_or(0) == 0
            && p["healthy"] == true
    })
    .await;
}

/// Asserts that bars paged back (`times`, open times of 1m bars, ascending) are exactly what one long read of
/// `symbol`'s 1m bars gives over the same span (a bar opened since the first page aside).
pub async fn assert_pages_equal_one_read(server: &TestServer, symbol: &str, times: &[i64]) {
    let (_, body) = server.get_json(&format!("/api/historical/{symbol}?interval=1m&limit=5000")).await;
    let newest = *times.last().expect("pages");
    let whole: Vec<i64> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|b| b["timestamp"].as_i64().expect("timestamp"))
        .filter(|t| *t <= newest)
        .collect();
    assert_eq!(whole, times, "paging back gives the bars one read gives");
}

/// Two successive servers on `dir` with the `store` settings: the second has every closed bar of the
/// first, unchanged (it runs another simulator seed, so anything generated again would differ), and its
/// history runs on across the restart without a hole.
pub async fn restart_keeps_history(dir: &Path, store: &[(&'static str, Toml)], kind: &str) {
    let first = TestServer::start_in(dir, &small(store)).await;
    let started = candlecast_actors::model::now_ms();
    // Live seconds, built from trades (not backfilled), must survive too.
    eventually("three live 1s bars past the grace window", || async {
        let now = candlecast_actors::model::now_ms();
        let live = |b: &&Value| b["closed"] == true && ts(b) >= started && ts(b) + 3_000 < now;
        bars(&first, "interval=1s&limit=10").await.iter().filter(live).count() >= 3
    })
    .await;
    // Only bars past the grace window (2 s after their end) are final: a late trade may still correct a
    // younger one after this snapshot, and the second run rightly has the corrected bar.
    let snapshot = candlecast_actors::model::now_ms();
    let settled = |bars: Vec<Value>, bar_ms: i64| {
        let mut closed = closed_by_time(&bars);
        closed.retain(|t, _| t + bar_ms + 2_000 < snapshot);
        closed
    };
    let before_seconds = settled(bars(&first, "interval=1s&limit=3000").await, 1_000);
    let before_minutes = settled(bars(&first, "interval=1m&limit=3000").await, 60_000);
    let stats = first.stats().await["persistence"].clone();
    assert_eq!(stats["kind"], kind, "{stats}");
    drop(first);

    let mut again = store.to_vec();
    again.push(("feed.simulated.seed", Toml::Integer(4242)));
    let second = TestServer::start_in(dir, &small(&again)).await;
    let after_seconds = bars(&second, "interval=1s&limit=5000").await;
    let after_minutes = bars(&second, "interval=1m&limit=5000").await;
    let seconds = closed_by_time(&after_seconds);
    let minutes = closed_by_time(&after_minutes);
    for (before, after, what) in [(&before_seconds, &seconds, "1s"), (&before_minutes, &minutes, "1m")] {
        for (t, bar) in before {
            assert_eq!(after.get(t), Some(bar), "{what} bar at {t} of the first run is kept as it was");
        }
    }
    let live: Vec<&i64> = before_seconds.keys().filter(|t| **t >= started).collect();
    assert!(live.len() >= 3 && live.iter().all(|t| seconds.contains_key(t)), "live bars of the first run are there");
    // The simulator filled only the downtime.
    let tail: Vec<Value> =
        after_seconds.iter().filter(|b| ts(b) >= *before_seconds.keys().next().unwrap()).cloned().collect();
    assert_contiguous(&tail, 1_000, "1s across the restart");
    assert_contiguous(&after_minutes, 60_000, "1m across the restart");
    assert_eq!(second.stats().await["persistence"]["healthy"], true);
}
