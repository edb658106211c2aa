//! The /ws protocol: replies, errors that leave the connection usable, limits, and history paging.

mod common;

use common::{Client, TestServer, Toml};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let server = TestServer::start(&[]).await;
    let mut c = Client::connect(&server).await;

    let cases: Vec<(Message, &str)> = vec![
        (Message::text("{this is not json"), "invalid_json"),
        (Message::text(r#"{"type":"subscribe_everything","id":1}"#), "unknown_type"),
        (Message::text(r#"{"type":"subscribe","trading_pairs":["NOPEUSDT"],"interval":"1m"}"#), "unknown_symbol"),
        (Message::text(r#"{"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"7m"}"#), "invalid_parameter"),
        (Message::text(r#"{"type":"get_historical","trading_pair":"BTCUSDT","limit":999999}"#), "invalid_parameter"),
        (Message::text(format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70_000))), "frame_too_large"),
        (Message::binary(vec![1u8, 2, 3]), "unsupported_frame"),
    ];
    for (msg, code) in cases {
        c.send_raw(msg).await;
        let reply = c.next_json(5).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], code, "{reply}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
    let err = {
        c.send(json!({"type":"subscribe","trading_pairs":["NOPEUSDT"],"id":"req-9"})).await;
        c.next_json(5).await
    };
    assert_eq!(err["id"], "req-9", "the request id is echoed");
    assert!(err["message"].as_str().unwrap().contains("NOPEUSDT"));

    // Still usable: ping, subscribe, and live data.
    c.send(json!({"type":"ping","id":42})).await;
    assert_eq!(c.next_json(5).await, json!({"type":"pong","id":42}));
    c.subscribe(&["ethusdt"], "1s").await;
    let update = c.next_of("price_update", 10).await;
    assert_eq!(update["symbol"], "ETHUSDT", "symbols are case-insensitive");
    assert!(server.stats().await["ws_client_errors"].as_u64().unwrap() >= 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_symbol_is_refused_by_name_and_the_others_of_the_request_are_subscribed() {
    let server = TestServer::start(&[]).await;
    let mut c = Client::connect(&server).await;
    c.send(json!({"type":"subscribe","trading_pairs":["BTCUSDT","GONEUSDT","ethusdt"],"interval":"1s","id":7})).await;
    let ack = c.next_json(5).await;
    assert_eq!(
        ack,
        json!({"type":"subscribed","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1s","id":7,
               "refused":[{"trading_pair":"GONEUSDT","code":"unknown_symbol","message":"unknown symbol GONEUSDT"}]})
    );
    // Both known topics are live.
    let mut live = std::collections::BTreeSet::new();
    while live.len() < 2 {
        live.insert(c.next_of("price_update", 10).await["symbol"].as_str().unwrap().to_owned());
    }
    assert_eq!(live.into_iter().collect::<Vec<_>>(), ["BTCUSDT", "ETHUSDT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_sends_the_current_bar_at_once_and_unsubscribe_stops_updates() {
    let server = TestServer::start(&[]).await;
    let mut c = Client::connect(&server).await;
    c.send(json!({"type":"subscribe","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1w","id":1})).await;
    let ack = c.next_json(5).await;
    assert_eq!(ack, json!({"type":"subscribed","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1w","id":1}));
    // The two snapshots come right after the ack, before any live update could (the week bar exists
    // from the backfill).
    let mut snapshot_symbols = vec![c.next_json(5).await["symbol"].clone(), c.next_json(5).await["symbol"].clone()];
    snapshot_symbols.sort_by_key(|v| v.to_string());
    assert_eq!(snapshot_symbols, vec![json!("BTCUSDT"), json!("ETHUSDT")]);

    c.send(json!({"type":"unsubscribe","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1w"})).await;
    c.next_of("unsubscribed", 5).await;
    // After the ack nothing more arrives for those topics.
    c.send(json!({"type":"ping"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(c.next_json(5).await["type"], "pong");
    let stats = server.stats().await;
    assert_eq!((stats["total_clients"].as_u64(), stats["total_subscriptions"].as_u64()), (Some(1), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_topics_and_repeated_abuse() {
    let server = TestServer::start(&[
        ("ws.max_topics_per_client", Toml::Integer(3)),
        ("ws.max_errors_per_10s", Toml::Integer(5)),
    ])
    .await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&["BTCUSDT", "ETHUSDT"], "1m").await;
    c.send(json!({"type":"subscribe","trading_pairs":["ADAUSDT","BNBUSDT"],"interval":"1m"})).await;
    let err = c.next_of("error", 5).await;
    assert_eq!(err["code"], "too_many_subscriptions");
    assert_eq!(server.stats().await["total_subscriptions"], 2, "nothing of the refused request was subscribed");

    // The limit is 5 errors per 10 s; the refused subscribe above was the first. Each error is answered;
    // the sixth (the fifth "nonsense") also closes the connection with 1008, and nothing after it is read.
    for _ in 0..6 {
        c.send_raw(Message::text("nonsense")).await;
    }
    let mut errors = 0;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), c.ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Text(t))) if t.contains("\"error\"") => errors += 1,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    assert_eq!(errors, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_without_closing() {
    let server = TestServer::start(&[]).await;
    // 60 messages at once: the bucket holds 50, the rest are refused as rate_limited (10 errors, under
    // the default 20 that would close the connection).
    let mut c = Client::connect(&server).await;
    for _ in 0..60 {
        c.send(json!({"type":"ping"})).await;
    }
    let mut kinds = Vec::new();
    for _ in 0..60 {
        let m = c.next_json(5).await;
        kinds.push(m["code"].as_str().unwrap_or(m["type"].as_str().unwrap()).to_owned());
    }
    let limited = kinds.iter().filter(|k| *k == "rate_limited").count();
    assert!(limited >= 5 && kinds.iter().filter(|k| *k == "pong").count() >= 50, "{kinds:?}");
    // The bucket refills at 50 per second: after 100 ms there is room again.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    c.send(json!({"type":"ping","id":"after"})).await;
    assert_eq!(c.next_of("pong", 5).await["id"], "after", "still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_historical_pages_back_without_gaps_or_repeats() {
    let server = TestServer::start(&[("aggregator.history_bars", Toml::Integer(700))]).await;
    // The pages reach past the 700 bars in memory into the store once the backfill is in it. (Before this
    // wait the test raced the store: with a slow one it saw the memory window alone, with the segment store
    // the whole day.)
    common::history::persisted(&server).await;
    let mut c = Client::connect(&server).await;
    let mut times: Vec<i64> = Vec::new();
    let mut end_time: Option<i64> = None;
    loop {
        let mut req =
            json!({"type":"get_historical","trading_pair":"SOLUSDT","interval":"1m","limit":250,"id":times.len()});
        if let Some(t) = end_time {
            req["end_time"] = json!(t);
        }
        c.send(req).await;
        let page = c.next_of("historical", 10).await;
        assert_eq!((page["symbol"].as_str(), page["interval"].as_str()), (Some("SOLUSDT"), Some("1m")));
        let data = page["data"].as_array().unwrap();
        if data.is_empty() {
            break;
        }
        let ts: Vec<i64> = data.iter().map(|b| b["timestamp"].as_i64().unwrap()).collect();
        end_time = Some(ts[0]);
        times.splice(0..0, ts);
    }
    assert!(times.len() > 701, "paged on into the store, past the 700 bars in memory: {}", times.len());
    assert!(times.windows(2).all(|w| w[1] - w[0] == 60_000), "contiguous, ascending, no repeats");
    common::history::assert_pages_equal_one_read(&server, "SOLUSDT", &times).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_timeout() {
    let server =
        TestServer::start(&[("ws.ping_interval_secs", Toml::Integer(1)), ("ws.client_timeout_secs", Toml::Integer(2))])
            .await;
    assert_eq!(server.stats().await["silent_client_disconnects"], 0);
    // A client that answers pings stays: tungstenite replies to pings while it is being read.
    let mut alive = Client::connect(&server).await;
    // This one is never read, so it never answers the server's pings.
    let silent = Client::connect(&server).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let reader = tokio::spawn(async move {
        while std::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), alive.ws.next()).await;
        }
        alive
    });
    // Both registered first: the hub learns of a connection a moment after its handshake, so a client count of
    // one right after connecting may be the silent client not yet counted, not the silent client dropped.
    let mut registered = false;
    while !registered && std::time::Instant::now() < deadline {
        registered = server.stats().await["total_clients"] == 2;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(registered, "both clients registered: {}", server.stats().await);
    let mut dropped = false;
    while std::time::Instant::now() < deadline {
        if server.stats().await["total_clients"] == 1 {
            dropped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(dropped, "the silent client was not dropped: {}", server.stats().await);
    assert_eq!(server.stats().await["silent_client_disconnects"], 1, "counted");
    let mut alive = reader.await.unwrap();
    alive.send(json!({"type":"ping","id":"still"})).await;
    assert_eq!(alive.next_of("pong", 5).await["id"], "still", "the client that answered pings is kept");
    drop(silent);
}
