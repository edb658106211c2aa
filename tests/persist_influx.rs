//! InfluxDB through the v1 API against a real server: Debian's `influxdb` package (InfluxDB 1.x), started
//! by the test on free ports in a temporary directory. A restart of candlecast keeps history; a 30-second
//! InfluxDB outage loses no closed bar (every bar of the outage is counted in InfluxDB afterwards); bad
//! settings give clear messages, at start or in /health.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use candlecast_actors::model::{now_ms, Interval};
use common::history::{bars, closed_by_time, eventually, persisted, restart_keeps_history, small, ts};
use common::influxd::Influxd;
use common::{TestServer, Toml};

const DB: &str = "candlecast";

/// The store settings for `influx` and `database`; short batches and retries so the tests move quickly.
fn influx_store(url: &str, database: &str) -> Vec<(&'static str, Toml)> {
    vec![
        ("store.kind", Toml::String("influxdb".into())),
        ("store.influxdb.api", Toml::String("v1".into())),
        ("store.influxdb.url", Toml::String(url.into())),
        ("store.influxdb.database", Toml::String(database.into())),
        ("store.influxdb.timeout_ms", Toml::Integer(2_000)),
        ("store.batch_ms", Toml::Integer(200)),
        ("store.retry_max_ms", Toml::Integer(2_000)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_candlecast_keeps_history_in_influxdb() {
    let influx = Influxd::start().await;
    influx.create_database(DB).await;
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_history(dir.path(), &influx_store(&influx.url(), DB), "influxdb-v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_influxdb_outage_of_30_seconds_loses_no_closed_bar() {
    let mut influx = Influxd::start().await;
    influx.create_database(DB).await;
    let server = TestServer::start(&small(&influx_store(&influx.url(), DB))).await;
    persisted(&server).await;

    let outage_start = now_ms();
    influx.kill();
    eventually("the store to be reported down and bars journaled", || async {
        let p = server.stats().await["persistence"].clone();
        p["healthy"] == false && p["journal_bars"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let (_, health) = server.get_json("/health").await;
    assert_eq!(
        (health["status"].as_str(), health["store"]["status"].as_str()),
        (Some("degraded"), Some("down")),
        "{health}"
    );
    assert!(health["store"]["error"].as_str().unwrap().contains(&influx.url()), "the error names the server: {health}");
    let (_, stats) = server.get_json("/api/stats").await;
    assert!(stats["stats"]["persistence"]["write_lag_ms"].as_i64().unwrap() > 0, "{stats}");
    // The outage lasts 30 seconds.
    tokio::time::sleep(Duration::from_millis((outage_start + 30_000 - now_ms()).max(0) as u64)).await;
    let outage_end = now_ms();
    influx.restart().await;

    eventually("the journal written back", || async {
        let p = server.stats().await["persistence"].clone();
        p["healthy"] == true && p["journal_bars"] == 0 && p["buffered_bars"] == 0
    })
    .await;
    let p = server.stats().await["persistence"].clone();
    assert!(p["failures"].as_u64().unwrap() >= 1 && p["retries"].as_u64().unwrap() >= 1, "{p}");

    // Every bar that closed during the outage (a second each second, and the minute if one ended) is in
    // InfluxDB, as candlecast built it.
    for (interval, name) in [(Interval::S1, "1s"), (Interval::M1, "1m")] {
        let (from, to) = (interval.align(outage_start), interval.align(outage_end));
        if from == to {
            continue; // no minute ended during these 30 seconds
        }
        let own = closed_by_time(
            &bars(&server, &format!("interval={name}&start_time={from}&end_time={to}&limit=5000")).await,
        );
        assert_eq!(own.len() as i64, (to - from) / interval.millis(), "{name}: candlecast has every bar of the outage");
        if interval == Interval::S1 {
            assert!(own.len() >= 29, "30 seconds of 1s bars: {}", own.len());
        }
        assert_eq!(
            influx.count_bars(DB, "BTCUSDT", name, from, to).await,
            own.len() as u64,
            "{name} bars of the outage counted in InfluxDB"
        );
        let stored = influx.bars(DB, "BTCUSDT", name, from, to).await;
        let expected: Vec<(i64, f64, u64)> =
            own.values().map(|b| (ts(b), b["close"].as_f64().unwrap(), b["trades"].as_u64().unwrap())).collect();
        assert_eq!(stored, expected, "{name}: the stored bars are candlecast's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_stops_the_start_and_an_unreachable_server_shows_in_health() {
    let influx = Influxd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let err = TestServer::start_error(dir.path(), &small(&influx_store(&influx.url(), "nope")));
    assert!(err.contains("database \"nope\" does not exist") && err.contains(&influx.url()), "{err}");

    let nobody = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{nobody}");
    let server = TestServer::start(&small(&influx_store(&url, DB))).await;
    eventually("/health to show the store down", || async {
        let (_, health) = server.get_json("/health").await;
        health["store"]["status"] == "down"
            && health["store"]["error"].as_str().is_some_and(|e| e.contains("unreachable") && e.contains(&url))
    })
    .await;
    eventually("closed bars kept in the journal", || async {
        server.stats().await["persistence"]["journal_bars"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let (status, _) = server.get_json("/api/historical/BTCUSDT?interval=1s&limit=10").await;
    assert_eq!(status, 200, "the in-memory window still answers");
}

/// A bar InfluxDB refuses for what it holds (here: a field type conflict, as after a schema change) does
/// not block the others: it is bisected out to the dead-letter file, every other bar of its batch and all
/// later batches are written, nothing piles up in the journal. (Before, the refused batch was journaled
/// and retried forever: `written_bars` froze while `journal_bars` grew.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_influxdb_refuses_go_to_the_dead_letters_and_the_rest_is_written() {
    let influx = Influxd::start().await;
    // One-hour shards: the conflict below is confined to one hour of the backfill.
    let answer = influx.query("", &format!("CREATE DATABASE \"{DB}\" WITH SHARD DURATION 1h")).await;
    assert!(answer["results"][0].get("error").is_none(), "{answer}");
    let hour = Interval::H1.millis();
    let poisoned = Interval::H1.align(now_ms()) - 10 * hour;
    // `volume` as an integer in that hour's shard: candlecast's float volumes conflict with it there only.
    let write = reqwest::Client::new()
        .post(format!("{}/write", influx.url()))
        .query(&[("db", DB), ("precision", "ms")])
        .body(format!("bars,symbol=OTHER,interval=1m,source=x volume=1i {poisoned}"))
        .send()
        .await
        .unwrap();
    assert!(write.status().is_success(), "{:?}", write.text().await);

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), &small(&influx_store(&influx.url(), DB))).await;
    eventually("the backfill written around the refused hour", || async {
        let p = server.stats().await["persistence"].clone();
        p["dead_letter_bars"] == 61
            && p["buffered_bars"] == 0
            && p["journal_bars"] == 0
            && p["written_bars"].as_u64().unwrap_or(0) > 1_000
    })
    .await;
    let written = server.stats().await["persistence"]["written_bars"].as_u64().unwrap();
    eventually("live bars still written", || async {
        server.stats().await["persistence"]["written_bars"].as_u64().unwrap_or(0) > written + 3
    })
    .await;
    let p = server.stats().await["persistence"].clone();
    assert_eq!((p["healthy"].as_bool(), p["journal_bars"].as_u64()), (Some(true), Some(0)), "{p}");

    // The dead letters are exactly the bars of that hour: its 60 one-minute bars and its hour bar.
    let text = std::fs::read_to_string(dir.path().join("persist.journal.dead-letters.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut dead: Vec<(String, i64)> = letters
        .iter()
        .map(|l| {
            (l["bar"]["bar"]["interval"].as_str().unwrap().to_owned(), l["bar"]["bar"]["open_time"].as_i64().unwrap())
        })
        .collect();
    dead.sort();
    let mut expected: Vec<(String, i64)> = (0..60).map(|m| ("1m".to_owned(), poisoned + m * 60_000)).collect();
    expected.push(("1h".to_owned(), poisoned));
    expected.sort();
    assert_eq!(dead, expected);
    assert!(letters.iter().all(|l| l["reason"].as_str().unwrap().contains("field type conflict")), "{text}");
    // Hours either side are in InfluxDB.
    for h in [poisoned - hour, poisoned + hour] {
        assert_eq!(influx.count_bars(DB, "BTCUSDT", "1m", h, h + hour).await, 60);
    }
    assert_eq!(influx.count_bars(DB, "BTCUSDT", "1m", poisoned, poisoned + hour).await, 0);
}

/// The journal has a cap (`store.journal_max_bytes`): from 80 % `/health` names it, at the cap further
/// bars are not journaled (counted in `journal_full_refusals`, kept in memory) and the file stays below it.
/// (Before, the journal grew until the disk was full.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_stops_at_its_cap_and_health_warns_before() {
    let nobody = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut overrides = influx_store(&format!("http://{nobody}"), DB);
    overrides.push(("store.journal_max_bytes", Toml::Integer(16_384)));
    overrides.push(("feed.symbols", common::history::strings(&common::SYMBOLS)));
    overrides.push(("aggregator.intervals", common::history::strings(&["1s", "1m"])));
    let server = TestServer::start(&overrides).await;
    eventually("/health to name the journal's fill", || async {
        let (_, health) = server.get_json("/health").await;
        health["status"] == "degraded"
            && health["store"]["journal"].as_str().is_some_and(|j| j.contains("store.journal_max_bytes"))
    })
    .await;
    eventually("appends refused at the cap", || async {
        server.stats().await["persistence"]["journal_full_refusals"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let p = server.stats().await["persistence"].clone();
    assert!(p["journal_bytes"].as_u64().unwrap() <= 16_384, "{p}");
    assert_eq!(p["journal_max_bytes"], 16_384, "{p}");
    let journaled = p["journal_bars"].as_u64().unwrap();
    eventually("new bars waiting in memory, the journal kept", || async {
        let p = server.stats().await["persistence"].clone();
        p["buffered_bars"].as_u64().unwrap_or(0) > 0 && p["journal_bars"].as_u64() == Some(journaled)
    })
    .await;
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("candlecast_persist_journal_full_refusals_total"), "counted in /metrics");
}
