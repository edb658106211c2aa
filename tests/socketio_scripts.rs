//! Seed 003's scripts with the real python-socketio client: the example script's flow over the default
//! transports (long-polling, then the upgrade to WebSocket), acknowledgements, keys, CSV row errors, and
//! streamed trades reaching `/ws` subscribers.

mod common;

use common::clients::{all, event, wait_no_sessions, ClientProcess};
use common::{Client, TestServer, Toml};
use serde_json::Value;

const KEY: &str = "test-script-key";

async fn server(extra: &[(&str, Toml)]) -> TestServer {
    let mut overrides = vec![("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())]))];
    overrides.extend(extra.iter().cloned());
    TestServer::start(&overrides).await
}

fn base(server: &TestServer) -> String {
    format!("http://{}", server.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_example_script_polls_then_upgrades_and_its_data_is_kept() {
    let server = server(&[]).await;
    let events = ClientProcess::python("example_script.py", &[&base(&server), KEY, "3", "0.2"]).finish(90).await;
    assert_eq!(event(&events, "transport"), "websocket", "python-socketio upgraded from polling: {events:?}");
    assert_eq!(event(&events, "status")["message"], "Joined script room");
    let received = all(&events, "data_received");
    assert_eq!(received.len(), 3, "{events:?}");
    for r in received {
        assert_eq!(
            (r["status"].as_str(), r["trades"].as_u64(), r["market_data"].as_u64()),
            (Some("success"), Some(1), Some(1)),
            "{r}"
        );
        assert_eq!(r["errors"], Value::Array(vec![]));
    }
    // The script disconnected cleanly: its session is gone, not left to expire.
    let scripts = &wait_no_sessions(&server).await;
    assert_eq!(
        (scripts["expired_sessions"].as_u64(), scripts["malformed_packets"].as_u64()),
        (Some(0), Some(0)),
        "{scripts}"
    );
    assert_eq!(scripts["socketio_upgrades"], 1, "one session, upgraded once: {scripts}");
    assert_eq!(scripts["socketio_sessions_total"], 1, "{scripts}");
    assert_eq!((scripts["executed_trades"].as_u64(), scripts["market_data_rows"].as_u64()), (Some(3), Some(3)));

    // The market-data rows are 1m bars of a new `script` symbol, served with their indicator columns.
    let (_, symbols) = server.get_json("/api/symbols").await;
    let aapl = symbols["details"].as_array().unwrap().iter().find(|d| d["symbol"] == "AAPL").expect("AAPL created");
    assert_eq!(aapl["source"], "script");
    let (status, hist) = server.get_json("/api/historical/AAPL?interval=1m&limit=20").await;
    assert_eq!(status, 200);
    let with_rsi: Vec<&Value> =
        hist["data"].as_array().unwrap().iter().filter(|b| b.get("indicators").is_some()).collect();
    assert_eq!(with_rsi.len(), 3, "{hist}");
    assert_eq!(with_rsi[0]["indicators"]["rsi"], 60.5);
    assert_eq!(with_rsi[0]["indicators"]["signal_strength"], 0.75);
    assert_eq!((with_rsi[2]["close"].as_f64(), with_rsi[2]["closed"].as_bool()), (Some(152.0), Some(true)));
    let (_, btc) = server.get_json("/api/historical/BTCUSDT?interval=1m&limit=5").await;
    assert!(
        btc["data"].as_array().unwrap().iter().all(|b| b.get("indicators").is_none()),
        "other symbols are unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_say_what_was_accepted_and_why_not() {
    let server = server(&[]).await;
    let events = ClientProcess::python("scenarios.py", &["acks", &base(&server), KEY]).finish(60).await;
    let one = event(&events, "ack_trade");
    assert_eq!(
        (one["ok"].as_bool(), one["accepted"].as_u64(), one["rejected"].as_array().map(Vec::len)),
        (Some(true), Some(1), Some(0)),
        "{one}"
    );
    assert_eq!(event(&events, "ack_trades")["accepted"], 5);
    let mixed = event(&events, "ack_mixed");
    assert_eq!(mixed["accepted"], 1, "{mixed}");
    let rejected: Vec<(u64, &str)> = mixed["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    let expected = [(1, "price must be"), (2, "missing field `price`"), (3, "in the future"), (4, "is not valid")];
    assert_eq!(rejected.len(), expected.len(), "{mixed}");
    for ((index, reason), (want_index, want)) in rejected.iter().zip(expected) {
        assert_eq!(*index, want_index);
        assert!(reason.contains(want), "trade {index}: {reason}");
    }
    let unknown = event(&events, "ack_unknown");
    assert_eq!((unknown["ok"].as_bool(), unknown["error"].as_str()), (Some(false), Some("unknown_event")));
    assert_eq!(event(&events, "ack_join_script")["ok"], true);
    let (_, price) = server.get_json("/api/price/ACKTEST").await;
    assert!(price["price"].as_f64().is_some(), "streamed trades made the symbol: {price}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_keys_are_refused_and_counted() {
    let server = server(&[]).await;
    let events = ClientProcess::python("scenarios.py", &["auth", &base(&server), "not-the-key"]).finish(60).await;
    assert_eq!(event(&events, "connect_error")["message"], "invalid API key");
    assert!(event(&events, "refused").as_str().unwrap().contains("failed to connect"));
    // Without a key: a dashboard, which may watch but not push.
    assert_eq!(event(&events, "connected")["transport"], "websocket");
    for name in ["ack_join_script", "ack_trade"] {
        let refused = event(&events, name);
        assert_eq!(
            (refused["ok"].as_bool(), refused["error"].as_str()),
            (Some(false), Some("unauthorized")),
            "{name}: {refused}"
        );
    }
    assert_eq!(event(&events, "ack_join_frontend")["ok"], true);
    assert_eq!(server.stats().await["scripts"]["refused_auths"], 1);

    let strict = server_requiring_keys().await;
    let events = ClientProcess::python("scenarios.py", &["auth", &base(&strict), "not-the-key"]).finish(60).await;
    let errors: Vec<&str> = all(&events, "connect_error").iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 2, "{events:?}");
    assert_eq!(errors[0], "invalid API key");
    assert!(errors[1].contains("API key is required"), "{}", errors[1]);
    assert_eq!(strict.stats().await["scripts"]["refused_auths"], 2);
}

async fn server_requiring_keys() -> TestServer {
    server(&[("scripts.require_key_for_dashboards", Toml::Boolean(true))]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_csv_rows_are_reported_by_line_and_good_rows_kept() {
    let server = server(&[]).await;
    let events = ClientProcess::python("scenarios.py", &["csv_errors", &base(&server), KEY]).finish(60).await;
    let ack = event(&events, "ack");
    assert_eq!(ack, event(&events, "data_received"), "the acknowledgement carries data_received's payload");
    assert_eq!(
        (ack["status"].as_str(), ack["trades"].as_u64(), ack["market_data"].as_u64(), ack["rejected"].as_u64()),
        (Some("partial"), Some(2), Some(1), Some(4)),
        "{ack}"
    );
    let errors: Vec<(&str, u64, &str)> = ack["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["csv"].as_str().unwrap(), e["line"].as_u64().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    let expected = [
        ("market_data_csv", 3, "prices are inconsistent"),
        ("market_data_csv", 4, "expected 9 fields, got 5"),
        ("trades_csv", 3, "timestamp \"yesterday\""),
        ("trades_csv", 4, "side must be BUY or SELL"),
    ];
    assert_eq!(errors.len(), expected.len(), "{ack}");
    for (got, want) in errors.iter().zip(expected) {
        assert_eq!((got.0, got.1), (want.0, want.1));
        assert!(got.2.contains(want.2), "{got:?}");
    }
    let stats = server.stats().await;
    assert_eq!(stats["scripts"]["csv_rows_rejected"], 4, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_trades_reach_ws_subscribers_like_feed_trades() {
    let server = server(&[]).await;
    let mut script = ClientProcess::python("scenarios.py", &["stream", &base(&server), KEY, "PYSTREAM", "60"]);
    script.next_event("connected", 30).await;
    server.wait_for("/api/price/PYSTREAM", 200).await;
    let mut ws = Client::connect(&server).await;
    ws.subscribe(&["PYSTREAM"], "1s").await;
    let update = loop {
        let u = ws.next_of("price_update", 20).await;
        if u["data"]["trades"].as_u64().unwrap_or(0) > 0 {
            break u;
        }
    };
    assert_eq!(update["symbol"], "PYSTREAM");
    let bar = &update["data"];
    assert!((100.0..=106.0).contains(&bar["low"].as_f64().unwrap()) && bar["high"].as_f64().unwrap() <= 106.0, "{bar}");
    assert!(bar["volume"].as_f64().unwrap() >= 0.5, "{bar}");
    let (_, symbols) = server.get_json("/api/symbols").await;
    assert!(symbols["details"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["symbol"] == "PYSTREAM" && d["source"] == "script"));
    assert!(server.stats().await["scripts"]["trades_accepted"].as_u64().unwrap() >= 5);
}
