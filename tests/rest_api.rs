//! The REST API: seed 004's endpoints, JSON errors naming the parameter, paging, stats and metrics.

mod common;

use common::{TestServer, Toml, SYMBOLS};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_data_endpoints() {
    let server = TestServer::start(&[]).await;
    let (status, body) = server.get_json("/api/symbols").await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = body["symbols"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    names.sort();
    let mut expected = SYMBOLS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    assert!(body["details"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["source"] == "simulated" && d["price"].as_f64().unwrap() > 0.0));

    let (status, price) = server.get_json("/api/price/BTCUSDT").await;
    assert_eq!(status, 200);
    assert!(price["price"].as_f64().unwrap() > 1000.0, "BTC starts at a realistic price: {price}");

    let (status, hist) = server.get_json("/api/historical/ETHUSDT?interval=1h&limit=24").await;
    assert_eq!(status, 200);
    let bars = hist["data"].as_array().unwrap();
    assert_eq!(bars.len(), 24);
    assert!(bars
        .windows(2)
        .all(|w| w[1]["timestamp"].as_i64().unwrap() - w[0]["timestamp"].as_i64().unwrap() == 3_600_000));
    assert_eq!(bars.last().unwrap()["closed"], false, "the forming bar is last");
    assert!(bars[..23].iter().all(|b| b["closed"] == true));

    let (_, health) = server.get_json("/health").await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_and_name_the_parameter() {
    let server = TestServer::start(&[]).await;
    let table = [
        ("/api/historical/BTCUSDT?interval=7m", 400, Some("interval")),
        ("/api/historical/BTCUSDT?limit=0", 400, Some("limit")),
        ("/api/historical/BTCUSDT?limit=5001", 400, Some("limit")),
        ("/api/historical/BTCUSDT?limit=ten", 400, Some("limit")),
        ("/api/historical/BTCUSDT?end_time=yesterday", 400, Some("end_time")),
        ("/api/historical/BTCUSDT?start_time=-5", 400, Some("start_time")),
        ("/api/historical/NOPE?interval=1m", 404, None),
        ("/api/price/NOPE", 404, None),
        ("/api/no-such-route", 404, None),
    ];
    for (path, status, parameter) in table {
        let (got, body) = server.get_json(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string() && body["detail"].is_string(), "{path}: {body}");
        if let Some(p) = parameter {
            assert_eq!(body["parameter"], p, "{path}: {body}");
            assert!(body["detail"].as_str().unwrap().contains(p));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn historical_pages_back_with_end_time_without_gaps_or_repeats() {
    let server = TestServer::start(&[("aggregator.history_bars", Toml::Integer(1000))]).await;
    // The pages reach past the 1,000 bars in memory into the store once the backfill is in it. (Before
    // this wait the test raced the store: with a slow one it saw the memory window alone, with the
    // segment store the whole day.)
    common::history::persisted(&server).await;
    let mut all: Vec<i64> = Vec::new();
    let mut path = "/api/historical/BTCUSDT?interval=1m&limit=300".to_owned();
    loop {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(status, 200, "{body}");
        let page: Vec<i64> =
            body["data"].as_array().unwrap().iter().map(|b| b["timestamp"].as_i64().unwrap()).collect();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 300);
        path = format!("/api/historical/BTCUSDT?interval=1m&limit=300&end_time={}", page[0]);
        all.splice(0..0, page);
    }
    assert!(all.len() > 1001, "paged on into the store, past the 1,000 bars in memory: {}", all.len());
    assert!(all.windows(2).all(|w| w[1] - w[0] == 60_000), "no gap, no repeat");
    common::history::assert_pages_equal_one_read(&server, "BTCUSDT", &all).await;

    // start_time bounds the other side, inclusively.
    let start = all[10];
    let (_, body) =
        server.get_json(&format!("/api/historical/BTCUSDT?interval=1m&start_time={start}&end_time={}", all[20])).await;
    let got: Vec<i64> = body["data"].as_array().unwrap().iter().map(|b| b["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(got, all[10..20].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_metrics_show_the_pipeline() {
    let server = TestServer::start(&[]).await;
    let stats = server.get_json("/api/stats").await.1;
    assert_eq!(stats["service"], "candlecast");
    let s = &stats["stats"];
    for key in [
        "total_clients",
        "total_subscriptions",
        "trading_pair_subscribers",
        "messages_sent",
        "messages_dropped",
        "slow_client_disconnects",
        "late_dropped",
        "trade_rate",
        "uptime_seconds",
        "connection_ceiling",
    ] {
        assert!(!s[key].is_null(), "stats lack {key}: {s}");
    }
    assert_eq!(s["feeds"].as_array().unwrap().len(), 6);
    // Trades flow: within two seconds every symbol has a measured trade rate.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let s = server.stats().await;
    for symbol in SYMBOLS {
        assert!(s["trade_rate"][symbol].as_f64().unwrap() > 0.0, "{symbol}: {s}");
    }
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "candlecast_messages_sent_total",
        "candlecast_total_clients",
        "candlecast_trades_total",
        "candlecast_symbol_trade_rate{symbol=\"BTCUSDT\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let v: Value =
        serde_json::from_str(&reqwest::get(server.url("/health")).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(v["failed_feeds"], serde_json::json!([]));
}
