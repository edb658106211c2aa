//! `/ws` and Socket.IO check a subscription's topics with one validator (`src/ws/topics.rs`): the same
//! request is refused with the same code and message on both, and the one documented difference (a request
//! naming known and unknown symbols: `/ws` subscribes the known ones, Socket.IO refuses the request) holds.

mod common;

use std::time::Duration;

use common::{Client, TestServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A Socket.IO client on the WebSocket transport, connected to the main namespace.
struct SocketIo {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ack: u64,
}

impl SocketIo {
    async fn connect(server: &TestServer) -> SocketIo {
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("Socket.IO over WebSocket");
        let mut client = SocketIo { ws, next_ack: 1 };
        assert!(client.next_text().await.starts_with("0{"), "Engine.IO open");
        client.ws.send(Message::text("40")).await.unwrap();
        assert!(client.next_text().await.starts_with("40{"), "namespace connect");
        client
    }

    /// The next text packet that is not a ping (pings are answered).
    async fn next_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a packet within 10 s")
                .expect("the connection is open")
                .expect("a frame");
            let Message::Text(text) = msg else { continue };
            if text.as_str() == "2" {
                self.ws.send(Message::text("3")).await.unwrap();
                continue;
            }
            return text.to_string();
        }
    }

    /// Emits `event` with `arg`, asking for an acknowledgement; returns it.
    async fn emit_with_ack(&mut self, event: &str, arg: &Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.ws.send(Message::text(format!("42{id}{}", json!([event, arg])))).await.unwrap();
        let prefix = format!("43{id}");
        loop {
            let text = self.next_text().await;
            if let Some(rest) = text.strip_prefix(&prefix) {
                let args: Value = serde_json::from_str(rest).expect("ack arguments");
                return args[0].clone();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_transports_refuse_the_same_topics_alike() {
    let server = TestServer::start(&[]).await;
    let mut ws = Client::connect(&server).await;
    let mut sio = SocketIo::connect(&server).await;
    let cases = [
        (json!({"trading_pairs":["NOPEUSDT"],"interval":"1m"}), "unknown_symbol"),
        (json!({"trading_pairs":["BTCUSDT"],"interval":"7m"}), "invalid_parameter"),
        (json!({"trading_pairs":[],"interval":"1m"}), "invalid_parameter"),
    ];
    for (request, code) in cases {
        let mut on_ws = request.clone();
        on_ws["type"] = json!("subscribe");
        ws.send(on_ws).await;
        let ws_error = ws.next_of("error", 10).await;
        let sio_error = sio.emit_with_ack("subscribe", &request).await;
        assert_eq!((ws_error["code"].as_str(), sio_error["error"].as_str()), (Some(code), Some(code)), "{request}");
        assert_eq!(sio_error["ok"], false, "{sio_error}");
        assert_eq!(ws_error["message"], sio_error["message"], "one message for one refusal: {request}");
    }
    assert_eq!(
        sio.emit_with_ack("subscribe", &json!({"trading_pairs":["BTCUSDT"],"interval":"1m"})).await["message"],
        Value::Null,
        "a good request passes"
    );

    // Known and unknown together: /ws subscribes the known ones and names the others; Socket.IO refuses all.
    let mixed = json!({"trading_pairs":["btcusdt","NOPEUSDT"],"interval":"5m"});
    let mut on_ws = mixed.clone();
    on_ws["type"] = json!("subscribe");
    ws.send(on_ws).await;
    let ack = ws.next_of("subscribed", 10).await;
    assert_eq!((&ack["trading_pairs"], &ack["refused"][0]["trading_pair"]), (&json!(["BTCUSDT"]), &json!("NOPEUSDT")));
    let refused = sio.emit_with_ack("subscribe", &mixed).await;
    assert_eq!(
        (refused["error"].as_str(), refused["message"].as_str()),
        (Some("unknown_symbol"), Some("unknown symbol(s): NOPEUSDT; nothing was subscribed"))
    );
}
