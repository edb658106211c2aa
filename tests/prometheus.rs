//! candlecast as Prometheus sees it: the live `/metrics` passes `promtool check metrics`, a real
//! Prometheus scrapes it and its series arrive, and the alert rules of deploy/prometheus check, pass their
//! unit tests, evaluate without error and name only series the server exports.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::prometheus::{promtool, said, Prometheus};
use common::redis_server::RedisServer;
use common::{TestServer, Toml};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ALERTS: &str = include_str!("../deploy/prometheus/alerts.yml");

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.expect("GET /metrics").text().await.expect("body")
}

/// Polls `check` every 200 ms until it gives a value; fails after `secs` naming `what`.
async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The metric names an exposition has samples of.
fn series_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The `candlecast_*` names the alert rules use.
fn names_in_alerts() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in ALERTS.match_indices("candlecast_") {
        let name: String =
            ALERTS[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool_and_carry_every_series_the_alerts_use() {
    // With Redis, so that the `candlecast_redis_*` families are there too.
    let redis = RedisServer::start();
    let server = TestServer::start(&[
        ("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())])),
        ("redis.url", Toml::String(redis.url())),
    ])
    .await;
    // One refusal, so that the `candlecast_refused_total` family has a sample.
    let mut cross_origin = server.ws_url().into_client_request().expect("request");
    cross_origin.headers_mut().insert("Origin", "https://evil.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(cross_origin).await.is_err(), "a cross-origin upgrade is refused");
    let exposition = eventually(30, "/metrics shows Redis connected and the refusal", || async {
        let m = metrics(&server).await;
        (m.contains("candlecast_redis_connected 1") && m.contains("candlecast_refused_total{")).then_some(m)
    })
    .await;

    let out = promtool(&["check", "metrics"], exposition.as_bytes());
    assert!(out.status.success() && said(&out).trim().is_empty(), "promtool check metrics:\n{}", said(&out));

    let exported = series_names(&exposition);
    let used = names_in_alerts();
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<_> = used.difference(&exported).collect();
    assert!(missing.is_empty(), "alerts.yml uses series /metrics does not have: {missing:?}");
}

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    let out = promtool(&["check", "rules", "deploy/prometheus/alerts.yml"], b"");
    assert!(out.status.success(), "promtool check rules:\n{}", said(&out));
    let out = promtool(&["test", "rules", "deploy/prometheus/rules_test.yml"], b"");
    assert!(out.status.success(), "promtool test rules:\n{}", said(&out));
    // Every alert has at least one unit test.
    let tests = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/rules_test.yml"))
        .expect("rules_test.yml");
    for line in ALERTS.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {line}")), "{line} has no test in rules_test.yml");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_server_and_evaluates_the_alert_rules() {
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())]))]).await;
    let prometheus = Prometheus::scraping(server.addr).await;

    let up = eventually(60, "Prometheus scraped candlecast", || async {
        prometheus.query(r#"up{job="candlecast"}"#).await.first().map(|(_, v)| *v)
    })
    .await;
    assert_eq!(up, 1.0);
    // Parsed without complaint: the target is healthy and has no scrape error.
    let targets = prometheus.api("targets", &[]).await;
    let target = &targets["activeTargets"][0];
    assert_eq!((target["health"].as_str(), target["lastError"].as_str()), (Some("up"), Some("")), "{target}");

    // The simulated feed trades: the counter grows from one scrape to a later one.
    let first = eventually(60, "candlecast_trades_total in Prometheus", || async {
        prometheus.query("candlecast_trades_total").await.first().map(|(_, v)| *v)
    })
    .await;
    let later = eventually(60, "candlecast_trades_total to grow", || async {
        prometheus.query("candlecast_trades_total").await.first().map(|(_, v)| *v).filter(|v| *v > first)
    })
    .await;
    assert!(later > first);
    let feeds = prometheus.query(r#"candlecast_feed_connected{symbol="BTCUSDT",source="simulated"}"#).await;
    assert_eq!(feeds.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [1.0], "{feeds:?}");
    let store = prometheus.query(r#"candlecast_store_info{kind="segments"}"#).await;
    assert_eq!(store.len(), 1, "{store:?}");
    let lag = prometheus.query("candlecast_persist_write_lag_seconds").await;
    assert_eq!(lag.len(), 1, "{lag:?}");

    // The rules load and evaluate against real series without error.
    let groups = eventually(60, "every alert rule evaluated", || async {
        let data = prometheus.api("rules", &[]).await;
        let rules: Vec<_> =
            data["groups"].as_array()?.iter().flat_map(|g| g["rules"].as_array().cloned()).flatten().collect();
        let evaluated = rules.iter().all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")));
        (!rules.is_empty() && evaluated).then_some(rules)
    })
    .await;
    assert_eq!(groups.len(), ALERTS.matches("- alert: ").count());
    for rule in &groups {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    // A healthy server with the default (segment) store trips none of them.
    let firing = prometheus.query(r#"ALERTS{alertstate="firing"}"#).await;
    assert!(firing.is_empty(), "{firing:?}");
}
