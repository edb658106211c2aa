//! Indicator and signal streams over /ws: history first, then live values; one computation per distinct
//! request however many clients share it.

mod common;

use common::{Client, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_streams_are_shared_and_go_history_then_live() {
    let server = TestServer::start(&[]).await;
    let request = json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"ema","params":{"period":5},"history":50,"id":"e5"});
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&server).await;
        c.send(request.clone()).await;
        let history = c.next_of("indicator_history", 10).await;
        assert_eq!(
            (history["symbol"].as_str(), history["indicator"].as_str(), history["id"].as_str()),
            (Some("BTCUSDT"), Some("ema"), Some("e5"))
        );
        assert_eq!(history["params"], json!({"period": 5}), "parameters in canonical form");
        let values = history["data"].as_array().unwrap();
        assert_eq!(values.len(), 50);
        assert!(
            values
                .windows(2)
                .all(|w| w[1]["timestamp"].as_i64().unwrap() - w[0]["timestamp"].as_i64().unwrap() == 1000),
            "one value per 1s bar"
        );
        assert!(values.iter().all(|v| v["closed"] == true && v["value"].as_f64().unwrap() > 1000.0));
        clients.push(c);
    }
    // Live values follow the history, for the forming bar (closed: false) and each closed one.
    let c = &mut clients[0];
    let mut saw_closed = false;
    for _ in 0..60 {
        let v = c.next_of("indicator", 10).await;
        assert!(v["data"]["value"].as_f64().unwrap() > 1000.0);
        if v["data"]["closed"] == true {
            saw_closed = true;
            break;
        }
    }
    assert!(saw_closed, "a closed-bar value within a few seconds of 1s bars");

    let mut other = Client::connect(&server).await;
    other.send(json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"rsi"})).await;
    assert_eq!(other.next_of("indicator_history", 10).await["params"], json!({"period": 14}), "defaults filled in");
    assert_eq!(server.stats().await["indicator_computations"], 2, "three identical requests share one computation");

    // Bad requests are errors; the connection stays.
    other.send(json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","indicator":"astrology"})).await;
    let err = other.next_of("error", 5).await;
    assert!(err["message"].as_str().unwrap().contains("astrology"), "{err}");
    other
        .send(json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","indicator":"ema","params":{"period":0}}))
        .await;
    let err = other.next_of("error", 5).await;
    assert!(err["message"].as_str().unwrap().contains("period"), "{err}");
    other.send(json!({"type":"subscribe_indicator","trading_pair":"NOPE","indicator":"ema"})).await;
    assert_eq!(other.next_of("error", 5).await["code"], "unknown_symbol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_strategy_signals_arrive_as_history_then_live() {
    // The default config runs ema_cross on BTCUSDT 1m; a fast pair on 1s bars gives live signals quickly.
    let server = TestServer::start(&[(
        "strategies.live",
        toml::Value::Array(vec![toml::toml! { strategy = "ema_cross"  symbol = "BTCUSDT"  interval = "1s"  params = { fast = 2, slow = 3 } }.into()]),
    )])
    .await;
    let mut c = Client::connect(&server).await;
    // The strategy starts once the symbol has history; give it a moment, then subscribe.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    c.send(json!({"type":"subscribe_signals","trading_pair":"BTCUSDT","interval":"1s"})).await;
    let history = c.next_of("signals_history", 10).await;
    let past = history["data"].as_array().unwrap();
    assert!(!past.is_empty(), "an hour of 1s history holds crossings");
    assert!(past.iter().all(|s| s["strategy"] == "ema_cross" && (s["side"] == "buy" || s["side"] == "sell")));
    let live = c.next_of("signal", 60).await;
    assert!(
        live["time"].as_i64().unwrap() > past.last().unwrap()["time"].as_i64().unwrap(),
        "live signals continue after the history"
    );
}
