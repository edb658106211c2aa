//! Each local store (`embedded`: redb, `segments`: the append-only segment store) with the real server,
//! every scenario run once per kind (`<scenario>::embedded`, `<scenario>::segments`): history survives a restart without being
//! regenerated, history reads go beyond the in-memory window (REST and WS), `since=` polling, and a
//! client that loads history and then subscribes sees no gap and no duplicate, also when a bar closes
//! in between. Retention deletes expired bars of an interval and nothing else, and `/api/stats` and
//! `/metrics` show bars and bytes per interval.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::history::{
    assert_contiguous, bars, closed_by_time, eventually, persisted, restart_keeps_history, small, ts,
};
use common::{Client, TestServer, Toml};
use serde_json::{json, Value};

/// Runs a scenario against each local store kind: one test per kind, `<scenario>::<kind>`.
macro_rules! per_store_kind {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$scenario("embedded").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn segments() {
                super::$scenario("segments").await
            }
        }
    )*};
}

per_store_kind!(
    a_restart_keeps_history_and_the_simulator_does_not_generate_over_it,
    history_beyond_the_in_memory_window_comes_from_the_store_for_rest_ws_and_backtests,
    since_polling_returns_every_bar_created_or_revised_since,
    history_then_subscribe_has_no_gap_and_no_duplicate_when_a_bar_closes_in_between,
    a_volume_that_would_overflow_is_refused_and_persistence_goes_on,
    retention_deletes_expired_bars_per_interval_and_stats_show_the_store_per_interval,
);

async fn a_restart_keeps_history_and_the_simulator_does_not_generate_over_it(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_history(dir.path(), &[("store.kind", Toml::String(kind.into()))], kind).await;
}

async fn history_beyond_the_in_memory_window_comes_from_the_store_for_rest_ws_and_backtests(kind: &str) {
    let server = TestServer::start(&small(&[
        ("store.kind", Toml::String(kind.into())),
        ("aggregator.history_bars", Toml::Integer(50)),
    ]))
    .await;
    persisted(&server).await;
    let rest = bars(&server, "interval=1m&limit=600").await;
    assert_eq!(rest.len(), 600, "a day of stored minutes, far beyond the 50 in memory");
    assert_contiguous(&rest, 60_000, "1m from store and memory");
    assert_eq!(rest.last().unwrap()["closed"], false, "ends with the forming bar from memory");

    // A page entirely older than the window.
    let end = ts(&rest[100]);
    let page = bars(&server, &format!("interval=1m&limit=50&end_time={end}")).await;
    assert_eq!(page, rest[50..100].to_vec());

    let mut ws = Client::connect(&server).await;
    ws.send(json!({"type": "get_historical", "trading_pair": "BTCUSDT", "interval": "1m", "limit": 600, "id": 1}))
        .await;
    let reply = ws.next_of("historical", 30).await;
    let over_ws = reply["data"].as_array().unwrap();
    assert_eq!(over_ws.len(), 600);
    assert_contiguous(over_ws, 60_000, "1m over WS");
    let stable = rest.len() - 3; // the newest minutes may close between the two reads
    assert_eq!(over_ws[..stable], rest[..stable]);

    let (status, started) = post(
        &server,
        "/api/backtest/run",
        json!({"strategy": "ema_cross", "params": {"fast": 5, "slow": 20}, "symbol": "BTCUSDT", "interval": "1m"}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let path = format!("/api/backtest/results/{}", started["job_id"].as_str().unwrap());
    eventually("the backtest", || async { server.get_json(&path).await.1["status"] == "done" }).await;
    let result = server.get_json(&path).await.1;
    assert!(
        result["result"]["bars"].as_u64().unwrap() >= 1_400,
        "the backtest ran over the stored day, not the window: {}",
        result["result"]["bars"]
    );

    let (_, stats) = server.get_json("/api/stats").await;
    let persistence = &stats["stats"]["persistence"];
    assert!(persistence["written_bars"].as_u64().unwrap() > 1_400, "{persistence}");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "candlecast_persist_written_bars_total",
        "candlecast_persist_write_lag_seconds",
        "candlecast_persist_journal_bars",
        "candlecast_persist_healthy 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(server.url(path)).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn since_polling_returns_every_bar_created_or_revised_since(kind: &str) {
    let before_start = candlecast_actors::model::now_ms();
    let server = TestServer::start(&small(&[
        ("store.kind", Toml::String(kind.into())),
        ("aggregator.history_bars", Toml::Integer(30)),
    ]))
    .await;
    persisted(&server).await;
    // The backfill was stored after `before_start`: the store answers far more than the 30 in memory.
    let (status, first) =
        server.get_json(&format!("/api/historical/BTCUSDT?interval=1s&limit=5000&since={before_start}")).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        first["data"].as_array().unwrap().len() > 1_000,
        "stored bars created since the start: {}",
        first["data"].as_array().unwrap().len()
    );
    let as_of = first["as_of"].as_i64().expect("as_of in a since reply");

    eventually("three more closed seconds", || async {
        bars(&server, "interval=1s&limit=5").await.iter().filter(|b| b["closed"] == true && ts(b) >= as_of).count() >= 3
    })
    .await;
    // Everything first, then the poll: a late trade may still revise a bar inside the grace window between
    // the two reads, so the poll holds each bar as read here or a later revision of it (revisions only add
    // trades), never an older one and never none.
    let everything = closed_by_time(&bars(&server, "interval=1s&limit=100").await);
    let (_, second) = server.get_json(&format!("/api/historical/BTCUSDT?interval=1s&limit=5000&since={as_of}")).await;
    let polled = closed_by_time(second["data"].as_array().unwrap());
    let closed_since: Vec<&i64> = everything.keys().filter(|t| **t + 1_000 > as_of).collect();
    assert!(closed_since.len() >= 3);
    for t in closed_since {
        let (seen, got) = (
            &everything[t],
            polled.get(t).unwrap_or_else(|| panic!("the bar at {t} closed after as_of and must be in the poll")),
        );
        let trades = |b: &Value| b["trades"].as_u64().unwrap();
        if trades(got) == trades(seen) {
            assert_eq!(got, seen, "the bar at {t}: same trades, same bar");
        } else {
            assert!(
                trades(got) > trades(seen),
                "the bar at {t}: the poll has an older state than read before it: {got} vs {seen}"
            );
        }
    }
    assert!(
        second["data"].as_array().unwrap().iter().all(|b| ts(b) + 1_000 + 2_000 >= as_of - 1_000),
        "nothing that could not have changed since: {second}"
    );
    assert_eq!(
        second["data"].as_array().unwrap().last().unwrap()["closed"],
        false,
        "the forming bar is always included"
    );
    assert!(second["as_of"].as_i64().unwrap() > as_of);

    let (status, bad) = server.get_json("/api/historical/BTCUSDT?interval=1s&since=-5").await;
    assert_eq!((status, bad["parameter"].as_str()), (400, Some("since")));
}

/// History, then a bar closes, then subscribe: the client must end up with that bar's final state and
/// a series without holes, and receive no closed bar twice.
async fn history_then_subscribe_has_no_gap_and_no_duplicate_when_a_bar_closes_in_between(kind: &str) {
    let server = TestServer::start(&small(&[
        ("store.kind", Toml::String(kind.into())),
        ("feed.simulated.trades_per_second", Toml::Float(50.0)),
    ]))
    .await;
    let mut ws = Client::connect(&server).await;
    ws.send(json!({"type": "get_historical", "trading_pair": "BTCUSDT", "interval": "1s", "limit": 30})).await;
    let history = ws.next_of("historical", 30).await["data"].as_array().unwrap().clone();
    let boundary = history.last().unwrap().clone();
    assert_eq!(boundary["closed"], false, "history ends with the forming bar");
    let boundary_ts = ts(&boundary);

    // Deliberately let that bar close, and the next one start trading, before subscribing.
    eventually("the next bar to trade", || async {
        bars(&server, "interval=1s&limit=2")
            .await
            .iter()
            .any(|b| ts(b) > boundary_ts && b["trades"].as_u64().unwrap() > 0)
    })
    .await;
    ws.subscribe(&["BTCUSDT"], "1s").await;

    let mut merged: BTreeMap<i64, Value> = history.iter().map(|b| (ts(b), b.clone())).collect();
    let mut closed_seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let update = ws.next_of("price_update", 10).await;
        let data = update["data"].clone();
        if data["closed"] == true && update.get("correction").is_none() {
            assert!(closed_seen.insert(ts(&data)), "closed bar {} sent twice", ts(&data));
        }
        merged.insert(ts(&data), data);
    }
    let series: Vec<Value> = merged.values().cloned().collect();
    assert_contiguous(&series, 1_000, "history + live");
    let final_boundary =
        bars(&server, &format!("interval=1s&start_time={boundary_ts}&end_time={}", boundary_ts + 1_000)).await;
    assert_eq!(final_boundary[0]["closed"], true);
    assert_eq!(
        merged[&boundary_ts], final_boundary[0],
        "the bar that closed in between reached the client in its final state"
    );
}

/// Two trades of quantity 1e308 (each finite) would make their bars' volume inf, which JSON shows as
/// `null` and no journal can read back: the second is refused and counted, every bar stays finite, and
/// persistence keeps writing. (Before: the bars' volume became inf, `/api/historical` served
/// `"volume":null`, and with InfluxDB the batch was journaled and retried forever.)
async fn a_volume_that_would_overflow_is_refused_and_persistence_goes_on(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("huge.csv");
    std::fs::write(
        &csv,
        "timestamp,symbol,price,qty,side\n\
         1704067200000,BTCUSDT,42000.5,1e308,buy\n\
         1704067200100,BTCUSDT,42001.0,1e308,sell\n\
         1704067200200,BTCUSDT,42002.0,0.5,buy\n",
    )
    .unwrap();
    let server = TestServer::start(&small(&[
        ("store.kind", Toml::String(kind.into())),
        ("feed.source", Toml::String("replay".into())),
        ("feed.replay.path", Toml::String(csv.to_string_lossy().into_owned())),
        ("feed.replay.kind", Toml::String("trades".into())),
        ("feed.replay.speed", Toml::Integer(10)),
    ]))
    .await;
    // Both 1e308 quantities are refused (beyond model::MAX_QTY, so no sum of accepted quantities can overflow
    // a bar's volume); the bar holds the one sane trade.
    eventually("the 1s bar of those trades closed and written", || async {
        let closed =
            bars(&server, "interval=1s&limit=20").await.iter().any(|b| b["closed"] == true && b["trades"] == 1);
        let p = server.stats().await["persistence"].clone();
        closed && p["written_bars"].as_u64().unwrap_or(0) > 0 && p["buffered_bars"] == 0
    })
    .await;
    assert!(rejected(&server).await >= 2, "both 1e308 trades are refused and counted");
    for interval in ["1s", "1m"] {
        for bar in bars(&server, &format!("interval={interval}&limit=20")).await {
            let volume = bar["volume"].as_f64();
            assert!(volume.is_some_and(f64::is_finite), "{interval}: a finite volume: {bar}");
        }
    }
    let p = server.stats().await["persistence"].clone();
    assert_eq!(
        (p["healthy"].as_bool(), p["journal_bars"].as_u64(), p["dead_letter_bars"].as_u64()),
        (Some(true), Some(0), Some(0)),
        "{p}"
    );
}

async fn rejected(server: &TestServer) -> u64 {
    server.stats().await["trades_rejected"].as_u64().unwrap_or(0)
}

/// `[store.retention]` with the real server: 1s bars older than 5 days, written before the start, are
/// deleted in bounded passes and gone from `/api/historical`; younger 1s bars and 1m bars (kept forever)
/// of the same days stay; `/api/stats` and `/metrics` show bars, bytes and deletions per interval.
/// (Before retention: nothing was ever deleted, and the store's usage was not shown.)
async fn retention_deletes_expired_bars_per_interval_and_stats_show_the_store_per_interval(kind: &str) {
    use candlecast_actors::model::{now_ms, Bar, Interval};
    use candlecast_actors::persist::{EmbeddedStore, SegmentOptions, SegmentStore};
    use candlecast_actors::persist::{Store, StoredBar};
    use std::sync::Arc;
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    // Older than the simulated backfill (1 day): written directly, as an earlier run would have.
    let first_open = |interval: Interval, age_days: i64| interval.align(now - age_days * DAY);
    {
        let store: Arc<dyn Store> = match kind {
            "embedded" => Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
            _ => Arc::new(SegmentStore::open(dir.path(), SegmentOptions::default()).unwrap()),
        };
        let mut old = Vec::new();
        for interval in [Interval::S1, Interval::M1] {
            for age_days in [10, 3] {
                for i in 0..20 {
                    let open_time = first_open(interval, age_days) + i * interval.millis();
                    let mut bar = Bar::from_trade("BTCUSDT".into(), interval, open_time, 100.0, 1.0);
                    bar.closed = true;
                    old.push(StoredBar { bar, source: "simulated".into(), revised: open_time });
                }
            }
        }
        store.write(old.into()).await.unwrap();
        store.close().await.unwrap();
    }
    let server = TestServer::start_in(
        dir.path(),
        &small(&[
            ("store.kind", Toml::String(kind.into())),
            // The window seeded from the store at start must not hold the old bars: they come from the store.
            ("aggregator.history_bars", Toml::Integer(50)),
            ("store.retention.1s", Toml::String("5d".into())),
            ("store.retention_every_ms", Toml::Integer(100)),
            ("store.retention_batch_bars", Toml::Integer(7)),
        ]),
    )
    .await;
    let store_stats = || async { server.stats().await["store"].clone() };
    eventually("the expired 1s bars deleted", || async { store_stats().await["intervals"]["1s"]["deleted"] == 20 })
        .await;
    let page = |interval: Interval, age_days: i64| {
        let start = first_open(interval, age_days);
        format!("interval={interval}&start_time={start}&end_time={}&limit=100", start + 20 * interval.millis())
    };
    assert!(bars(&server, &page(Interval::S1, 10)).await.is_empty(), "10-day-old 1s bars are gone");
    assert_eq!(bars(&server, &page(Interval::S1, 3)).await.len(), 20, "3-day-old 1s bars stay");
    assert_eq!(bars(&server, &page(Interval::M1, 10)).await.len(), 20, "1m bars are kept forever");
    assert_eq!(bars(&server, &page(Interval::M1, 3)).await.len(), 20);

    persisted(&server).await;
    let stats = store_stats().await;
    assert_eq!(stats["kind"], kind);
    assert_eq!(stats["retention"]["enforced"], true, "{stats}");
    assert!(stats["retention"]["passes"].as_u64().unwrap() >= 3, "20 bars at most 7 a pass: {stats}");
    let interval = |name: &str| stats["intervals"][name].clone();
    assert_eq!((interval("1s")["keep"].as_str(), interval("1m")["keep"].as_str()), (Some("5d"), Some("forever")));
    assert_eq!(interval("5s")["keep"], "30d", "the defaults stay for intervals not overridden");
    assert_eq!(interval("1m")["deleted"], 0);
    let file_bytes = stats["file_bytes"].as_u64().unwrap();
    let mut bytes = 0;
    for name in ["1s", "1m", "1h"] {
        let (n, b) = (interval(name)["bars"].as_u64().unwrap(), interval(name)["bytes"].as_u64().unwrap());
        assert!(n > 0 && b > 0, "{name}: {stats}");
        bytes += b;
    }
    assert_eq!(interval("5s")["bars"], 0, "not an interval of this server");
    assert!(interval("1m")["bars"].as_u64().unwrap() >= 40 + 1_400, "the stored day of minutes and the old ones");
    assert!(file_bytes > 0 && bytes <= file_bytes, "{stats}");
    assert_eq!(
        stats["bars"].as_u64().unwrap(),
        ["1s", "1m", "1h"].iter().map(|n| interval(n)["bars"].as_u64().unwrap()).sum::<u64>()
    );

    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "candlecast_store_retention_deleted_bars_total{interval=\"1s\"} 20",
        "candlecast_store_retention_deleted_bars_total{interval=\"1m\"} 0",
        "candlecast_store_bars{interval=\"1m\"}",
        "candlecast_store_bytes{interval=\"1s\"}",
        "candlecast_store_file_bytes",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
}
