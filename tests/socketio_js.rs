//! The JS socket.io-client (npm, in tests/socketio) against candlecast: long-polling only, WebSocket
//! only, and a dashboard (no key, default transports) receiving live bars and a script's trading_update.

mod common;

use common::clients::{event, wait_no_sessions, ClientProcess};
use common::{TestServer, Toml};

const KEY: &str = "js-test-key";

async fn server() -> TestServer {
    TestServer::start(&[("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())]))]).await
}

/// One transport only: acknowledgements, streamed trades, and their bar as a `price_update` event.
async fn one_transport(transport: &str) {
    let server = server().await;
    let url = format!("http://{}", server.addr);
    let events = ClientProcess::node(&["transport", &url, KEY, transport]).finish(60).await;
    assert_eq!(event(&events, "connected")["transport"], transport);
    assert_eq!(event(&events, "transport_at_end"), transport, "never upgraded: {events:?}");
    assert_eq!(event(&events, "ack_join_script")["ok"], true);
    let ack = event(&events, "ack_trades");
    assert_eq!((ack["accepted"].as_u64(), ack["rejected"].as_array().map(Vec::len)), (Some(20), Some(0)), "{ack}");
    assert_eq!(event(&events, "ack_subscribe")["trading_pairs"][0], "JSTEST");
    let update = event(&events, "price_update");
    assert_eq!(
        (update["type"].as_str(), update["symbol"].as_str(), update["interval"].as_str()),
        (Some("price_update"), Some("JSTEST"), Some("1s"))
    );
    let bar = &update["data"];
    assert_eq!(
        (bar["open"].as_f64(), bar["high"].as_f64(), bar["low"].as_f64()),
        (Some(50.0), Some(69.0), Some(50.0)),
        "{bar}"
    );
    let scripts = wait_no_sessions(&server).await;
    assert_eq!(
        (scripts["socketio_sessions_total"].as_u64(), scripts["expired_sessions"].as_u64()),
        (Some(1), Some(0)),
        "closed cleanly: {scripts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_on_polling_only() {
    one_transport("polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_on_websocket_only() {
    one_transport("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_gets_live_bars_and_the_scripts_trading_update() {
    let server = server().await;
    let url = format!("http://{}", server.addr);
    let mut dashboard = ClientProcess::node(&["dashboard", &url, "-", "ETHUSDT"]);
    let status = dashboard.next_event("status", 30).await;
    assert_eq!(status["message"], "Joined frontend room");
    let update = dashboard.next_event("price_update", 30).await;
    assert_eq!(update["symbol"], "ETHUSDT");
    dashboard.next_event("ready", 10).await;
    let script = ClientProcess::python("example_script.py", &[&url, KEY, "1", "0"]).finish(60).await;
    assert_eq!(event(&script, "data_received")["status"], "success");
    let trading = dashboard.next_event("trading_update", 30).await;
    let trades = trading["trades_csv"].as_str().unwrap();
    assert!(
        trades.starts_with("timestamp,symbol,side,quantity,price,profit_loss,strategy\n")
            && trades.contains(",AAPL,BUY,100,150.00,25.50,Three Red Bodies"),
        "{trading}"
    );
    assert!(
        trading["market_data_csv"].as_str().unwrap().contains(",AAPL,149.50,151.00,149.00,150.00,50000,60.5,0.75"),
        "{trading}"
    );
    assert!(trading["timestamp"].is_string());
    dashboard.finish(30).await;
}
