//! 200 WebSocket clients on different topics: each gets its own topic's updates and only those, and
//! /api/stats counts them exactly, back to zero after they leave.

mod common;

use std::collections::HashMap;

use candlecast_actors::model::Interval;
use common::{Client, TestServer, SYMBOLS};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_get_exactly_their_topics_and_are_counted() {
    let server = TestServer::start(&[]).await;
    let mut clients = Vec::new();
    for i in 0..200 {
        let symbol = SYMBOLS[i % SYMBOLS.len()];
        let interval = Interval::ALL[(i / SYMBOLS.len()) % Interval::ALL.len()].as_str();
        let mut c = Client::connect(&server).await;
        let ack = c.subscribe(&[symbol], interval).await;
        assert_eq!(ack["trading_pairs"], serde_json::json!([symbol]));
        assert_eq!(ack["interval"], interval);
        clients.push((c, symbol, interval));
    }

    let stats = server.stats().await;
    assert_eq!(stats["total_clients"], 200);
    assert_eq!(stats["total_subscriptions"], 200);
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (_, s, _) in &clients {
        *expected.entry(s).or_default() += 1;
    }
    for (symbol, n) in &expected {
        assert_eq!(stats["trading_pair_subscribers"][symbol], *n, "{symbol}");
    }

    // Every client: its snapshot at once, then live updates, all of its own topic.
    let mut live_updates = 0;
    for (c, symbol, interval) in &mut clients {
        let mut last_ts_sent = 0;
        for n in 0..3 {
            let msg: Value = c.next_json(10).await;
            assert_eq!(msg["type"], "price_update", "{msg}");
            assert_eq!(
                (msg["symbol"].as_str(), msg["interval"].as_str()),
                (Some(*symbol), Some(*interval)),
                "client got someone else's topic: {msg}"
            );
            let data = &msg["data"];
            let (o, h, l, c2) = (
                data["open"].as_f64().unwrap(),
                data["high"].as_f64().unwrap(),
                data["low"].as_f64().unwrap(),
                data["close"].as_f64().unwrap(),
            );
            assert!(l <= o.min(c2) && o.max(c2) <= h, "OHLC invariant: {msg}");
            let interval_ms = interval.parse::<Interval>().unwrap().millis();
            assert_eq!(
                data["timestamp"].as_i64().unwrap() % interval_ms.min(86_400_000),
                0,
                "aligned open time: {msg}"
            );
            let ts_sent = msg["ts_sent"].as_i64().unwrap();
            assert!(ts_sent >= last_ts_sent, "updates arrive in order");
            last_ts_sent = ts_sent;
            if n > 0 {
                live_updates += 1;
            }
        }
    }
    assert_eq!(live_updates, 400);

    drop(clients);
    for _ in 0..100 {
        let stats = server.stats().await;
        if stats["total_clients"] == 0 {
            assert_eq!(stats["total_subscriptions"], 0);
            assert_eq!(stats["trading_pair_subscribers"], serde_json::json!({}));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("clients were not deregistered: {}", server.stats().await);
}
