//! CSV replay through the real server: live at ×10 with timestamps shifted to now, and `max` speed
//! loading a bars file as history. Fixtures are in tests/fixtures/replay/.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, Toml};
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/replay/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(path: &str, kind: &str, speed: Toml) -> Vec<(&'static str, Toml)> {
    vec![
        ("feed.source", Toml::String("replay".into())),
        ("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())])),
        ("feed.replay.path", Toml::String(fixture(path))),
        ("feed.replay.kind", Toml::String(kind.into())),
        ("feed.replay.speed", speed),
    ]
}

async fn feed(server: &TestServer) -> Value {
    server.get_json("/api/feeds").await.1["feeds"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_replay_live_at_ten_times_with_timestamps_shifted_to_now() {
    let started = candlecast_actors::model::now_ms();
    let server = TestServer::start(&replay("trades.csv", "trades", Toml::Integer(10))).await;
    // 1.75 s of trades at ×10 take 175 ms; then the feed reports it has finished.
    let deadline = Instant::now() + Duration::from_secs(10);
    while feed(&server).await["state"] != "finished" {
        assert!(Instant::now() < deadline, "replay never finished: {}", feed(&server).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = feed(&server).await;
    assert_eq!(
        (f["trades"].as_u64(), f["malformed"].as_u64(), f["source"].as_str()),
        (Some(6), Some(1), Some("replay")),
        "{f}"
    );

    // Six BTCUSDT rows (the ETHUSDT row is another symbol's, line 6 is malformed), stamped now, not in 2024.
    let (_, hist) = server.get_json("/api/historical/BTCUSDT?interval=1m&limit=5").await;
    let bars = hist["data"].as_array().unwrap();
    assert_eq!(bars.iter().map(|b| b["trades"].as_u64().unwrap()).sum::<u64>(), 6, "{hist}");
    let volume: f64 = bars.iter().map(|b| b["volume"].as_f64().unwrap()).sum();
    assert!((volume - 2.0).abs() < 1e-9, "{volume}");
    assert!(bars.iter().all(|b| b["timestamp"].as_i64().unwrap() >= started - 60_000), "shifted to now: {hist}");
    let (_, price) = server.get_json("/api/price/BTCUSDT").await;
    assert_eq!(price["price"], 42000.0, "the last row's price");
    assert_eq!(server.get_json("/health").await.1["status"], "ok", "a finished replay is not a failed feed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_at_max_speed_load_as_history_ending_now() {
    let server = TestServer::start(&replay("bars.csv", "bars", Toml::String("max".into()))).await;
    let (_, hist) = server.get_json("/api/historical/BTCUSDT?interval=1m&limit=30").await;
    let bars: Vec<&Value> =
        hist["data"].as_array().unwrap().iter().filter(|b| b["trades"].as_u64() > Some(0)).collect();
    assert_eq!(bars.len(), 10, "ten good rows, the one with high < low skipped: {hist}");
    let closes: Vec<f64> = bars.iter().map(|b| b["close"].as_f64().unwrap()).collect();
    assert_eq!(closes, [99.5, 100.0, 100.5, 100.0, 100.5, 101.0, 100.5, 101.0, 101.5, 101.0]);
    assert_eq!(bars[0]["volume"], 10.0);
    let now = candlecast_actors::model::now_ms();
    let last = bars.last().unwrap()["timestamp"].as_i64().unwrap();
    assert!(now - last < 120_000, "the file was moved to end now: last bar at {last}, now {now}");

    // Coarser intervals are resampled from the file's bars.
    let (_, h5) = server.get_json("/api/historical/BTCUSDT?interval=5m&limit=10").await;
    let volume: f64 = h5["data"].as_array().unwrap().iter().map(|b| b["volume"].as_f64().unwrap()).sum();
    assert_eq!(volume, (10..20).sum::<i32>() as f64);
    let f = feed(&server).await;
    assert_eq!((f["state"].as_str(), f["malformed"].as_u64()), (Some("finished"), Some(1)), "{f}");
}
