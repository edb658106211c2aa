//! Clients that keep every message the server sends them: `/ws`, and Socket.IO over its WebSocket transport.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::document::{Checks, Doc};
use crate::common::TestServer;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ---------------------------------------------------------------------------------------------------
// /ws

/// A `/ws` client that keeps every message it receives.
pub struct WsRecorder {
    pub ws: Socket,
    pub received: Vec<Value>,
    pub close: Option<u16>,
}

impl WsRecorder {
    pub async fn connect(server: &TestServer) -> WsRecorder {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.expect("ws connect");
        WsRecorder { ws, received: Vec::new(), close: None }
    }

    pub async fn send(&mut self, checks: &mut Checks, doc: &Doc, msg: Value) {
        let kind = msg["type"].as_str().expect("a type").to_owned();
        checks.client(doc, "ws", &kind, &msg);
        self.ws.send(WsMessage::text(msg.to_string())).await.expect("send");
    }

    /// Reads until a message matches `until` (which sees every message), or panics after a minute.
    pub async fn read_until(&mut self, what: &str, mut until: impl FnMut(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} within a minute; received {:?}", self.kinds()));
            match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("the server sends JSON");
                    self.received.push(v.clone());
                    if until(&v) {
                        return v;
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    self.close = Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                    panic!("closed ({:?}) while waiting for {what}", self.close);
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended while waiting for {what}: {other:?}"),
            }
        }
    }

    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.read_until(kind, |v| v["type"] == kind).await
    }

    /// Reads to the close frame; returns its code.
    pub async fn until_closed(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await.expect("closed within a minute") {
                Some(Ok(WsMessage::Text(t))) => self.received.push(serde_json::from_str(&t).expect("JSON")),
                Some(Ok(WsMessage::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code)).unwrap_or(u16::from(CloseCode::Status));
                }
                Some(Ok(_)) => {}
                // The server may cut the TCP connection right after its close frame.
                Some(Err(e)) => panic!("no close frame: {e}"),
                None => panic!("no close frame before the end"),
            }
        }
    }

    pub fn kinds(&self) -> Vec<String> {
        self.received.iter().map(|v| v["type"].as_str().unwrap_or("?").to_owned()).collect()
    }
}

// ---------------------------------------------------------------------------------------------------
// Socket.IO

/// A Socket.IO client over the WebSocket transport, speaking the packets themselves (`42[...]` events,
/// `42<id>[...]` events that ask for an acknowledgement, `43<id>[...]` acknowledgements), so that every
/// packet the server sends is seen as it is.
pub struct SioRecorder {
    pub ws: Socket,
    /// (event name, its argument or null) of every event received.
    pub events: Vec<(String, Value)>,
    /// The argument of every acknowledgement received, by id.
    pub acks: BTreeMap<u64, Value>,
    /// The event each acknowledgement id was asked for.
    pub asked: BTreeMap<u64, String>,
    pub next_ack: u64,
}

impl SioRecorder {
    pub async fn connect(server: &TestServer, token: Option<&str>) -> SioRecorder {
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("socket.io connect");
        let mut c = SioRecorder { ws, events: Vec::new(), acks: BTreeMap::new(), asked: BTreeMap::new(), next_ack: 1 };
        let open = c.next_packet().await;
        assert!(open.starts_with("0{"), "{open}");
        let connect = match token {
            Some(t) => format!("40{}", json!({ "token": t })),
            None => "40".to_owned(),
        };
        c.ws.send(WsMessage::text(connect)).await.expect("send");
        loop {
            let p = c.next_packet().await;
            assert!(!p.starts_with("44"), "connect refused: {p}");
            if p.starts_with("40") {
                return c;
            }
        }
    }

    /// The next Engine.IO packet (pings answered).
    pub async fn next_packet(&mut self) -> String {
        loop {
            let msg =
                tokio::time::timeout(Duration::from_secs(60), self.ws.next()).await.expect("a packet within a minute");
            match msg {
                Some(Ok(WsMessage::Text(t))) if t.as_str() == "2" => {
                    self.ws.send(WsMessage::text("3")).await.expect("pong");
                }
                Some(Ok(WsMessage::Text(t))) => return t.as_str().to_owned(),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("socket.io connection ended: {other:?}; events {:?}", self.names()),
            }
        }
    }

    /// Emits `name` with `arg` (None: no argument), asking for an acknowledgement if `ack`; the event is
    /// checked against the document when `checks` is given (the deliberately malformed ones are not).
    pub async fn emit(&mut self, checks: Option<(&mut Checks, &Doc)>, name: &str, arg: Option<Value>, ack: bool) {
        if let Some((checks, doc)) = checks {
            checks.client(doc, "socketio", name, arg.as_ref().unwrap_or(&Value::Null));
        }
        let body = match arg {
            Some(a) => json!([name, a]),
            None => json!([name]),
        };
        let packet = if ack {
            let id = self.next_ack;
            self.next_ack += 1;
            self.asked.insert(id, name.to_owned());
            format!("42{id}{body}")
        } else {
            format!("42{body}")
        };
        self.ws.send(WsMessage::text(packet)).await.expect("send");
    }

    /// Reads packets until `done` holds, or panics after a minute.
    pub async fn read_until(&mut self, what: &str, mut done: impl FnMut(&SioRecorder) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(tokio::time::Instant::now() < deadline, "no {what} within a minute; events {:?}", self.names());
            let p = self.next_packet().await;
            if let Some(rest) = p.strip_prefix("42") {
                let v: Value = serde_json::from_str(rest).unwrap_or_else(|_| panic!("an event that is not JSON: {p}"));
                let name = v[0].as_str().unwrap_or_else(|| panic!("an event without a name: {p}")).to_owned();
                self.events.push((name, v.get(1).cloned().unwrap_or(Value::Null)));
            } else if let Some(rest) = p.strip_prefix("43") {
                let at = rest.find('[').unwrap_or_else(|| panic!("an ack without arguments: {p}"));
                let id: u64 = rest[..at].parse().unwrap_or_else(|_| panic!("an ack without an id: {p}"));
                let args: Value = serde_json::from_str(&rest[at..]).expect("ack arguments");
                self.acks.insert(id, args[0].clone());
            } else {
                panic!("an unexpected packet: {p}");
            }
        }
    }

    pub fn got(&self, event: &str) -> bool {
        self.events.iter().any(|(n, _)| n == event)
    }

    pub fn all_acked(&self) -> bool {
        self.asked.keys().all(|id| self.acks.contains_key(id))
    }

    pub fn names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Adds every event and acknowledgement received to `checks`; returns the event names.
    pub fn check(&self, checks: &mut Checks, doc: &Doc) -> BTreeSet<String> {
        for (name, arg) in &self.events {
            checks.server(doc, "socketio", name, arg);
        }
        for (id, arg) in &self.acks {
            let event = &self.asked[id];
            let acks = doc.acks(event);
            assert!(!acks.is_empty(), "the document has no acknowledgement for {event}: {arg}");
            checks.add(format!("socketio ack of {event}"), &acks, arg);
        }
        self.events.iter().map(|(n, _)| n.clone()).collect()
    }
}
