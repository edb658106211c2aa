//! Exchange sessions through the real server: an NSE symbol's recorded trades of a Thursday and the next
//! trading day (Friday 2024-01-26 was a holiday) replayed as history. Its bars follow the session as the
//! brokers' own candles do: hours from 09:15 IST, the day on the exchange's date, nothing at night, over
//! the weekend or on the holiday. BTCUSDT's alignment is untouched (tests/replay_feed.rs).

mod common;

use common::{TestServer, Toml};
use serde_json::Value;

fn t(s: &str) -> i64 {
    candlecast_actors::model::parse_iso(s).expect("test time")
}

/// One trade a minute, 10 s into it, from `from` for `minutes` minutes; the price climbs by 0.5 a trade.
fn trades(from: i64, minutes: i64, first_price: f64) -> Vec<String> {
    (0..minutes)
        .map(|i| format!("{},NSE:INFY,{},1,buy", from + i * 60_000 + 10_000, first_price + i as f64 * 0.5))
        .collect()
}

async fn bars(server: &TestServer, interval: &str, from: &str, to: &str) -> Vec<Value> {
    let path =
        format!("/api/historical/NSE:INFY?interval={interval}&start_time={}&end_time={}&limit=5000", t(from), t(to));
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

fn opens(bars: &[Value]) -> Vec<i64> {
    bars.iter().filter_map(|b| b["timestamp"].as_i64()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nse_symbol_gets_bars_on_its_sessions_and_none_while_the_market_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("nse.csv");
    let mut rows = vec!["timestamp,symbol,price,qty,side".to_owned()];
    rows.extend(trades(t("2024-01-25T09:15:00+05:30"), 375, 1500.0));
    rows.extend(trades(t("2024-01-29T09:15:00+05:30"), 60, 1600.0));
    std::fs::write(&csv, rows.join("\n")).expect("write csv");
    let server = TestServer::start(&[
        ("feed.source", Toml::String("replay".into())),
        ("feed.symbols", Toml::Array(vec![Toml::String("NSE:INFY".into())])),
        ("feed.replay.path", Toml::String(csv.to_string_lossy().into_owned())),
        ("feed.replay.kind", Toml::String("trades".into())),
        ("feed.replay.speed", Toml::String("max".into())),
        ("feed.replay.shift_to_now", Toml::Boolean(false)),
    ])
    .await;
    // The file loads as history at start: wait for its last minute to be served.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while bars(&server, "1m", "2024-01-29T10:14:00+05:30", "2024-01-29T10:15:00+05:30").await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the replayed history never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Hours: 09:15, 10:15, …, 15:15 (cut at 15:30) on Thursday, then Monday's 09:15. No hour in between.
    let hours = bars(&server, "1h", "2024-01-25T00:00:00+05:30", "2024-01-29T10:15:00+05:30").await;
    let thursday: Vec<i64> = (0..7).map(|h| t("2024-01-25T09:15:00+05:30") + h * 3_600_000).collect();
    let mut expected = thursday.clone();
    expected.push(t("2024-01-29T09:15:00+05:30"));
    assert_eq!(opens(&hours), expected, "{hours:?}");
    let trade_counts: Vec<u64> = hours.iter().filter_map(|b| b["trades"].as_u64()).collect();
    assert_eq!(trade_counts, [60, 60, 60, 60, 60, 60, 15, 60]);
    assert_eq!(hours[0]["open"], 1500.0);
    assert_eq!(hours[6]["close"], 1500.0 + 374.0 * 0.5, "the day's last trade closes the 15:15 hour");

    // Minutes: none from Thursday's close to Monday's open (no flat bars through the night, the holiday
    // and the weekend); Monday's first minute follows Thursday's last.
    let closed = bars(&server, "1m", "2024-01-25T15:30:00+05:30", "2024-01-29T09:15:00+05:30").await;
    assert!(closed.is_empty(), "bars while the market was closed: {closed:?}");
    let around = bars(&server, "1m", "2024-01-25T15:29:00+05:30", "2024-01-29T09:16:00+05:30").await;
    assert_eq!(opens(&around), [t("2024-01-25T15:29:00+05:30"), t("2024-01-29T09:15:00+05:30")]);

    // The page learns the session (to tell a closed market from a silent feed).
    let (_, symbols) = server.get_json("/api/symbols").await;
    let detail = &symbols["details"][0];
    assert_eq!(detail["symbol"], "NSE:INFY");
    assert_eq!(detail["session"]["timezone"], "Asia/Kolkata", "{symbols}");
    assert_eq!(
        (detail["session"]["open"].as_str(), detail["session"]["close"].as_str()),
        (Some("09:15"), Some("15:30"))
    );

    // Days on the exchange's date (local midnight), no bar for the holiday or the weekend.
    let days = bars(&server, "1d", "2024-01-24T00:00:00+05:30", "2024-01-30T00:00:00+05:30").await;
    assert_eq!(opens(&days), [t("2024-01-25T00:00:00+05:30"), t("2024-01-29T00:00:00+05:30")], "{days:?}");
    assert_eq!(days[0]["trades"], 375);
}
