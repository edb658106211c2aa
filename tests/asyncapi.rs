//! The AsyncAPI document (`/api/asyncapi.json`) against the official AsyncAPI 3.0 schema, and against the
//! real server: every request kind of `/ws` and Socket.IO is sent (errors included), and every message the
//! server answers with is validated against the document's schema for it. A message the document has no
//! schema for fails the test, as do a close code it does not list and a documented message never received.
//!
//! The validation runs in tests/asyncapi/validate.py (jsonschema-rs, in target/pyenv-tests; the AsyncAPI
//! schema from the npm package @asyncapi/specs in tests/asyncapi/node_modules; both from
//! scripts/test-deps.sh).

#[path = "asyncapi/clients.rs"]
mod clients;
mod common;
#[path = "asyncapi/document.rs"]
mod document;

use std::collections::BTreeSet;

use clients::{SioRecorder, WsRecorder};
use common::{TestServer, Toml};
use document::{python, repo, Checks, Doc};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The script key of the test server.
const KEY: &str = "asyncapi-test-key-0123456789abcdef";

async fn server() -> TestServer {
    let strategy =
        toml::toml! { strategy = "ema_cross" symbol = "BTCUSDT" interval = "1s" params = { fast = 2, slow = 4 } };
    TestServer::start(&[
        ("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into()), Toml::String("ETHUSDT".into())])),
        ("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())])),
        ("ws.max_topics_per_client", Toml::Integer(8)),
        ("strategies.live", Toml::Array(vec![Toml::Table(strategy)])),
    ])
    .await
}

// ---------------------------------------------------------------------------------------------------
// The document itself.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_asyncapi_3_and_its_examples_match_their_schemas() {
    let server = server().await;
    let doc = Doc::fetch(&server).await;
    assert_eq!(doc.0["asyncapi"], "3.0.0");
    assert_eq!(doc.0["channels"]["ws"]["address"], "/ws");
    assert_eq!(doc.0["channels"]["socketio"]["address"], "/socket.io/");
    let mut checks = Checks::default();
    let examples = doc.examples();
    assert!(examples.len() >= 30, "every message has an example: {}", examples.len());
    for (what, pointer, value) in examples {
        checks.add(what, &BTreeSet::from([pointer]), &value);
    }
    // The checks are not vacuous: a message the schemas do not describe fails them.
    let mut wrong = Checks::default();
    let price_update = doc.server_messages("ws").remove("price_update").expect("price_update");
    let mut bad = json!({"type":"price_update","symbol":"BTCUSDT","interval":"1m","ts_sent":1,
        "data":{"timestamp":1,"open":1.0,"high":1.0,"low":1.0,"close":1.0,"volume":1.0,"trades":1,"closed":false}});
    wrong.add("a price_update with an undocumented field".into(), &price_update, &{
        bad["data"]["vwap"] = json!(1.0);
        bad.clone()
    });
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), json!({ "document": doc.0, "checks": wrong.items }).to_string()).expect("write");
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/asyncapi/validate.py"))
        .arg(file.path())
        .output()
        .expect("run validate.py");
    assert!(!out.status.success(), "an undocumented field passed: {}", String::from_utf8_lossy(&out.stdout));
    let said = checks.run(&doc);
    assert!(said.contains("0 failure(s)"), "{said}");
}

/// The route is in the OpenAPI document too (tests/openapi.rs compares its routes with the handlers').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_asyncapi_route() {
    let server = server().await;
    let (_, openapi) = server.get_json("/api/openapi.json").await;
    assert!(openapi["paths"]["/api/asyncapi.json"]["get"].is_object(), "{}", openapi["paths"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ws_message_of_a_real_server_matches_the_document() {
    let server = server().await;
    let doc = Doc::fetch(&server).await;
    let mut checks = Checks::default();
    let mut c = WsRecorder::connect(&server).await;

    c.send(&mut checks, &doc, json!({"type": "ping", "id": "p1"})).await;
    assert_eq!(c.next_of("pong").await["id"], "p1");
    c.send(
        &mut checks,
        &doc,
        json!({"type": "subscribe", "trading_pairs": ["btcusdt", "NOPEUSDT"], "interval": "1s", "id": 1}),
    )
    .await;
    let subscribed = c.next_of("subscribed").await;
    assert_eq!(subscribed["refused"][0]["code"], "unknown_symbol", "{subscribed}");
    c.next_of("price_update").await;
    c.send(
        &mut checks,
        &doc,
        json!({"type": "get_historical", "trading_pair": "BTCUSDT", "interval": "1m", "limit": 5, "id": 2}),
    )
    .await;
    assert_eq!(c.next_of("historical").await["data"].as_array().map(Vec::len), Some(5));
    let since = candlecast_actors::model::now_ms() - 60_000;
    c.send(
        &mut checks,
        &doc,
        json!({"type": "get_historical", "trading_pair": "BTCUSDT", "interval": "1s", "since": since}),
    )
    .await;
    assert!(c.next_of("historical").await["as_of"].is_i64());

    // Indicators of each shape (one line, MACD's three, the bands, SuperTrend's line and trend), and signals.
    for (indicator, params) in [
        ("ema", json!({"period": 5})),
        ("macd", json!({"fast": 3, "slow": 6, "signal": 2})),
        ("bollinger", json!({"period": 5})),
        ("supertrend", json!({"period": 5})),
    ] {
        let req = json!({"type": "subscribe_indicator", "trading_pair": "BTCUSDT", "interval": "1s",
            "indicator": indicator, "params": params, "history": 3, "id": indicator});
        c.send(&mut checks, &doc, req).await;
        c.read_until("indicator_history", |v| v["type"] == "indicator_history" && v["id"] == indicator).await;
    }
    c.send(&mut checks, &doc, json!({"type": "subscribe_signals", "trading_pair": "BTCUSDT", "interval": "1s"})).await;
    c.next_of("signals_history").await;
    // Closed values of each indicator, and a live signal (EMA 2 against EMA 4 on 1 s bars crosses often).
    let (mut closed, mut signal) = (BTreeSet::new(), false);
    c.read_until("closed indicator values and a signal", |v| {
        if v["type"] == "indicator" && v["data"]["closed"] == true {
            closed.insert(v["indicator"].as_str().unwrap_or_default().to_owned());
        }
        signal |= v["type"] == "signal";
        closed.len() == 4 && signal
    })
    .await;

    // An executed trade a script reports reaches the subscribers of its symbol.
    let csv = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,BTCUSDT,BUY,1,45000,,asyncapi\n";
    let resp = reqwest::Client::new()
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"trades_csv": csv}))
        .send()
        .await
        .expect("POST /api/trading-data");
    assert_eq!(resp.status().as_u16(), 200);
    c.next_of("trade_marker").await;

    // Every error a request can provoke.
    let errors: [(&str, WsMessage); 8] = [
        ("invalid_json", WsMessage::text("{not json")),
        ("unknown_type", WsMessage::text(r#"{"type":"subscribe_all","id":"x"}"#)),
        ("invalid_parameter", WsMessage::text(r#"{"type":"get_historical","trading_pair":"BTCUSDT","limit":0}"#)),
        (
            "invalid_parameter",
            WsMessage::text(r#"{"type":"subscribe_indicator","trading_pair":"BTCUSDT","indicator":"nope"}"#),
        ),
        ("unknown_symbol", WsMessage::text(r#"{"type":"subscribe","trading_pairs":["NOPEUSDT"]}"#)),
        ("unknown_symbol", WsMessage::text(r#"{"type":"subscribe_signals","trading_pair":"NOPEUSDT"}"#)),
        ("unsupported_frame", WsMessage::binary(vec![1u8, 2, 3])),
        ("frame_too_large", WsMessage::text("x".repeat(70_000))),
    ];
    for (code, frame) in errors {
        c.ws.send(frame).await.expect("send");
        let e = c.read_until(code, |v| v["type"] == "error").await;
        assert_eq!(e["code"], code, "{e}");
    }
    // Holding 6 (1 topic, 4 indicators, signals) of 8: the third new topic is one too many.
    for interval in ["1m", "5m", "15m"] {
        c.ws.send(WsMessage::text(
            json!({"type": "subscribe", "trading_pairs": ["ETHUSDT"], "interval": interval}).to_string(),
        ))
        .await
        .expect("send");
        let reply = c.read_until("a reply", |v| v["type"] == "subscribed" || v["type"] == "error").await;
        if reply["type"] == "error" {
            assert_eq!(reply["code"], "too_many_subscriptions", "{reply}");
        }
    }
    assert!(c.received.iter().any(|v| v["code"] == "too_many_subscriptions"), "{:?}", c.kinds());

    c.send(
        &mut checks,
        &doc,
        json!({"type": "unsubscribe_indicator", "trading_pair": "BTCUSDT", "interval": "1s",
        "indicator": "ema", "params": {"period": 5.0}, "id": 9}),
    )
    .await;
    c.next_of("unsubscribed_indicator").await;
    c.send(&mut checks, &doc, json!({"type": "unsubscribe_signals", "trading_pair": "BTCUSDT", "interval": "1s"}))
        .await;
    c.next_of("unsubscribed_signals").await;
    c.send(&mut checks, &doc, json!({"type": "unsubscribe", "trading_pairs": ["BTCUSDT"], "interval": "1s"})).await;
    c.next_of("unsubscribed").await;

    // Over the message rate: rate_limited errors, then the connection is closed for its errors.
    let mut flood = WsRecorder::connect(&server).await;
    for _ in 0..120 {
        flood.ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await.expect("send");
    }
    let flood_close = flood.until_closed().await;
    assert!(flood.received.iter().any(|v| v["code"] == "rate_limited"), "{:?}", flood.kinds());
    // A frame over 16 times the message limit closes the connection.
    let mut huge = WsRecorder::connect(&server).await;
    huge.ws.send(WsMessage::text("x".repeat(65_536 * 16 + 1))).await.expect("send");
    let huge_close = huge.until_closed().await;

    let documented: BTreeSet<u64> = doc.0["channels"]["ws"]["x-close-codes"]
        .as_array()
        .expect("x-close-codes")
        .iter()
        .filter_map(|c| c["code"].as_u64())
        .collect();
    for (what, code) in [("the flood", flood_close), ("the huge frame", huge_close)] {
        assert!(
            documented.contains(&u64::from(code)),
            "{what} closed with {code}, not in x-close-codes {documented:?}"
        );
    }
    assert_eq!((flood_close, huge_close), (1008, 1009));

    let mut seen = BTreeSet::new();
    for v in c.received.iter().chain(&flood.received).chain(&huge.received) {
        let kind = v["type"].as_str().unwrap_or_else(|| panic!("a message without a type: {v}"));
        seen.insert(kind.to_owned());
        checks.server(&doc, "ws", kind, v);
    }
    // Every message the document lists was seen here, so each schema met a real message.
    let listed: BTreeSet<String> = doc.server_messages("ws").into_keys().collect();
    assert_eq!(listed, seen, "documented server messages vs the ones received");
    let said = checks.run(&doc);
    assert!(said.contains("0 failure(s)"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socketio_event_and_ack_of_a_real_server_matches_the_document() {
    let server = server().await;
    let doc = Doc::fetch(&server).await;
    let mut checks = Checks::default();

    let mut s = SioRecorder::connect(&server, Some(KEY)).await;
    s.emit(Some((&mut checks, &doc)), "join_script", None, true).await;
    s.emit(Some((&mut checks, &doc)), "join_frontend", None, false).await;
    s.emit(
        Some((&mut checks, &doc)),
        "trade",
        Some(json!({"symbol": "BTCUSDT", "price": 45000.5, "qty": 0.5, "side": "buy"})),
        true,
    )
    .await;
    let trades = json!([{"symbol": "ETHUSDT", "price": 3000, "qty": 1, "timestamp": "2100-01-01T00:00:00Z"},
        {"symbol": "ETHUSDT", "price": 3000.5, "qty": 2}]);
    s.emit(Some((&mut checks, &doc)), "trades", Some(trades), true).await;
    s.emit(Some((&mut checks, &doc)), "subscribe", Some(json!({"trading_pairs": ["BTCUSDT"], "interval": "1s"})), true)
        .await;
    s.read_until("subscribed and a price_update", |s| s.got("subscribed") && s.got("price_update")).await;
    let data = json!({
        "trades_csv": "timestamp,symbol,side,quantity,price,profit_loss,strategy\n\
                       2023-01-01T10:00:00,BTCUSDT,BUY,1,45000,12.5,asyncapi\n2023-01-01T10:01:00,BTCUSDT,HOLD,1,45000,,asyncapi\n",
        "market_data_csv": "timestamp,symbol,open,high,low,close,volume,rsi\n2023-01-01T10:00:00,SIOTEST,1,2,0.5,1.5,10,55.5\n",
        "timestamp": "2023-01-01T10:02:00",
    });
    s.emit(Some((&mut checks, &doc)), "send_trading_data", Some(data), true).await;
    s.read_until("data_received, trading_update and trade_marker", |s| {
        s.got("data_received") && s.got("trading_update") && s.got("trade_marker")
    })
    .await;
    s.emit(
        Some((&mut checks, &doc)),
        "unsubscribe",
        Some(json!({"trading_pairs": ["BTCUSDT"], "interval": "1s"})),
        true,
    )
    .await;
    // Refusals: in the acknowledgement, or as an `error` event without one.
    s.emit(None, "nope", None, false).await;
    s.emit(None, "trade", Some(json!({"symbol": "BTCUSDT"})), true).await;
    s.emit(None, "subscribe", Some(json!({"trading_pairs": ["NOPEUSDT"]})), true).await;
    s.emit(None, "send_trading_data", Some(json!(5)), true).await;
    s.read_until("every acknowledgement and the unsubscribed event", |s| {
        s.all_acked() && s.got("unsubscribed") && s.got("error")
    })
    .await;
    let refusals: Vec<&Value> = s.acks.values().filter(|a| a["ok"] == false).collect();
    assert_eq!(refusals.len(), 3, "{:?}", s.acks);
    for code in ["invalid_parameter", "unknown_symbol"] {
        assert!(refusals.iter().any(|a| a["error"] == code), "no {code} refusal: {refusals:?}");
    }
    assert!(s.acks.values().any(|a| a["rejected"].as_array().is_some_and(|r| r.len() == 1)), "{:?}", s.acks);

    // Holding none of the 8 topics allowed (BTCUSDT was unsubscribed): the ninth is one too many.
    for interval in ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h"] {
        s.emit(None, "subscribe", Some(json!({"trading_pairs": ["ETHUSDT"], "interval": interval})), true).await;
    }
    // A binary event (one attachment) is refused: send JSON.
    let id = s.next_ack;
    s.next_ack += 1;
    s.asked.insert(id, "trade".into());
    let placeholder = json!(["trade", {"_placeholder": true, "num": 0}]);
    s.ws.send(WsMessage::text(format!("451-{id}{placeholder}"))).await.expect("send");
    s.ws.send(WsMessage::binary(vec![1u8, 2, 3])).await.expect("send");
    s.read_until("the refusals", SioRecorder::all_acked).await;
    for code in ["too_many_subscriptions", "unsupported"] {
        assert!(s.acks.values().any(|a| a["error"] == code), "no {code} refusal: {:?}", s.acks);
    }

    // A dashboard (no key) may not push.
    let mut dashboard = SioRecorder::connect(&server, None).await;
    dashboard
        .emit(Some((&mut checks, &doc)), "trade", Some(json!({"symbol": "BTCUSDT", "price": 1, "qty": 1})), true)
        .await;
    dashboard.read_until("the refusal", SioRecorder::all_acked).await;
    assert_eq!(dashboard.acks[&1]["error"], "unauthorized");

    // Over the event rate: rate_limited refusals.
    let mut flood = SioRecorder::connect(&server, Some(KEY)).await;
    for _ in 0..150 {
        flood.emit(None, "nope", None, false).await;
    }
    flood
        .read_until("a rate_limited refusal", |f| {
            f.events.iter().any(|(n, a)| n == "error" && a["error"] == "rate_limited")
        })
        .await;

    let mut seen = s.check(&mut checks, &doc);
    seen.extend(dashboard.check(&mut checks, &doc));
    seen.extend(flood.check(&mut checks, &doc));
    let listed: BTreeSet<String> = doc.server_messages("socketio").into_keys().collect();
    assert_eq!(listed, seen, "documented server events vs the ones received");
    let said = checks.run(&doc);
    assert!(said.contains("0 failure(s)"), "{said}");
}
