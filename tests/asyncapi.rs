//! The AsyncAPI document (`/api/asyncapi.json`) against the official AsyncAPI 3.0 schema, and against the
//! real server: every request kind of `/ws` and Socket.IO is sent (errors included), and every message the
//! server answers with is validated against the document's schema for it. A message the document has no
//! schema for fails the test, as does a documented close code the server does not use.
//!
//! The validation runs in tests/asyncapi/validate.py (jsonschema-rs, in target/pyenv-tests; the AsyncAPI
//! schema from the npm package @asyncapi/specs in tests/asyncapi/node_modules; both from
//! scripts/test-deps.sh).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestServer, Toml};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The script key of the test server.
const KEY: &str = "asyncapi-test-key-0123456789abcdef";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ---------------------------------------------------------------------------------------------------
// The document, read the way a client would: which message has which schema.

struct Doc(Value);

impl Doc {
    async fn fetch(server: &TestServer) -> Doc {
        let (status, doc) = server.get_json("/api/asyncapi.json").await;
        assert_eq!(status, 200);
        Doc(doc)
    }

    /// The message object a `{"$ref": "#/channels/..."}` of an operation points to, and its pointer.
    fn message(&self, reference: &Value) -> (String, &Value) {
        let mut pointer = reference["$ref"].as_str().expect("a message $ref").trim_start_matches('#').to_owned();
        let mut message = self.0.pointer(&pointer).unwrap_or_else(|| panic!("{pointer} is not in the document"));
        while let Some(next) = message["$ref"].as_str() {
            pointer = next.trim_start_matches('#').to_owned();
            message = self.0.pointer(&pointer).unwrap_or_else(|| panic!("{pointer} is not in the document"));
        }
        (pointer, message)
    }

    /// The operations of `channel`.
    fn operations(&self, channel: &str) -> Vec<&Value> {
        let wanted = format!("#/channels/{channel}");
        let ops = self.0["operations"].as_object().expect("operations");
        ops.values().filter(|op| op["channel"]["$ref"] == wanted.as_str()).collect()
    }

    /// Payload pointers of the messages the server sends on `channel` (operations it sends, and replies),
    /// by name; acknowledgements apart.
    fn server_messages(&self, channel: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for op in self.operations(channel) {
            let sent = if op["action"] == "send" { op["messages"].as_array() } else { None };
            for r in sent.into_iter().flatten().chain(op["reply"]["messages"].as_array().into_iter().flatten()) {
                let (pointer, message) = self.message(r);
                if message["x-socketio-ack"] != true {
                    let name = message["name"].as_str().expect("a message name").to_owned();
                    by_name.entry(name).or_default().insert(format!("{pointer}/payload"));
                }
            }
        }
        by_name
    }

    /// Payload pointers of the messages the server receives on `channel`, by name.
    fn client_messages(&self, channel: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for op in self.operations(channel).into_iter().filter(|op| op["action"] == "receive") {
            for r in op["messages"].as_array().into_iter().flatten() {
                let (pointer, message) = self.message(r);
                let name = message["name"].as_str().expect("a message name").to_owned();
                by_name.entry(name).or_default().insert(format!("{pointer}/payload"));
            }
        }
        by_name
    }

    /// Payload pointers of the acknowledgements the server may answer Socket.IO event `event` with.
    fn acks(&self, event: &str) -> BTreeSet<String> {
        let mut acks = BTreeSet::new();
        for op in self.operations("socketio").into_iter().filter(|op| op["action"] == "receive") {
            let names_event =
                op["messages"].as_array().into_iter().flatten().any(|r| self.message(r).1["name"] == event);
            if names_event {
                for r in op["reply"]["messages"].as_array().into_iter().flatten() {
                    let (pointer, message) = self.message(r);
                    if message["x-socketio-ack"] == true {
                        acks.insert(format!("{pointer}/payload"));
                    }
                }
            }
        }
        acks
    }

    /// Every message example, with its payload pointer.
    fn examples(&self) -> Vec<(String, String, Value)> {
        let messages = self.0["components"]["messages"].as_object().expect("components.messages");
        let mut out = Vec::new();
        for (key, m) in messages {
            for e in m["examples"].as_array().into_iter().flatten() {
                out.push((
                    format!("example {key}"),
                    format!("/components/messages/{key}/payload"),
                    e["payload"].clone(),
                ));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------------
// The checks, run by validate.py.

#[derive(Default)]
struct Checks {
    items: Vec<Value>,
}

impl Checks {
    fn add(&mut self, what: String, schemas: &BTreeSet<String>, value: &Value) {
        assert!(!schemas.is_empty(), "{what}: the document has no schema for {value}");
        self.items.push(json!({ "what": what, "schemas": schemas, "value": value }));
    }

    /// A message the server sent on `channel` under `name`: it must have a schema.
    fn server(&mut self, doc: &Doc, channel: &str, name: &str, value: &Value) {
        let schemas = doc.server_messages(channel).remove(name).unwrap_or_default();
        assert!(
            !schemas.is_empty(),
            "the server sent a {channel} message {name:?} the document has no schema for: {value}"
        );
        self.add(format!("{channel} server message {name}"), &schemas, value);
    }

    /// A message a client sent on `channel` under `name`, which the server took: it must have a schema.
    fn client(&mut self, doc: &Doc, channel: &str, name: &str, value: &Value) {
        let schemas = doc.client_messages(channel).remove(name).unwrap_or_default();
        assert!(!schemas.is_empty(), "the document has no schema for the {channel} request {name:?}: {value}");
        self.add(format!("{channel} client message {name}"), &schemas, value);
    }

    /// Runs validate.py over the document and the checks; panics with its report on any failure.
    fn run(self, doc: &Doc) -> String {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let body = json!({ "document": doc.0, "checks": self.items });
        std::fs::write(file.path(), body.to_string()).expect("write the checks");
        let script = repo().join("tests/asyncapi/validate.py");
        let out = std::process::Command::new(python())
            .arg(script)
            .arg(file.path())
            .env_remove("LD_PRELOAD")
            .output()
            .expect("run validate.py");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "validate.py failed:\n{said}");
        said
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with jsonschema-rs: `$CANDLECAST_TEST_PYTHON`, or target/pyenv-tests (scripts/test-deps.sh).
fn python() -> PathBuf {
    let python = std::env::var_os("CANDLECAST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv-tests/bin/python"));
    let installed = std::process::Command::new(&python).args(["-c", "import jsonschema_rs"]).output();
    assert!(
        installed.is_ok_and(|o| o.status.success()),
        "jsonschema-rs is not installed for {}: run scripts/test-deps.sh (pip install -r tests/openapi/requirements.txt)",
        python.display()
    );
    python
}

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

// ---------------------------------------------------------------------------------------------------
// /ws

/// A `/ws` client that keeps every message it receives.
struct WsRecorder {
    ws: Socket,
    received: Vec<Value>,
    close: Option<u16>,
}

impl WsRecorder {
    async fn connect(server: &TestServer) -> WsRecorder {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.expect("ws connect");
        WsRecorder { ws, received: Vec::new(), close: None }
    }

    async fn send(&mut self, checks: &mut Checks, doc: &Doc, msg: Value) {
        let kind = msg["type"].as_str().expect("a type").to_owned();
        checks.client(doc, "ws", &kind, &msg);
        self.ws.send(WsMessage::text(msg.to_string())).await.expect("send");
    }

    /// Reads until a message matches `until` (which sees every message), or panics after a minute.
    async fn read_until(&mut self, what: &str, mut until: impl FnMut(&Value) -> bool) -> Value {
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

    async fn next_of(&mut self, kind: &str) -> Value {
        self.read_until(kind, |v| v["type"] == kind).await
    }

    /// Reads to the close frame; returns its code.
    async fn until_closed(&mut self) -> u16 {
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

    fn kinds(&self) -> Vec<String> {
        self.received.iter().map(|v| v["type"].as_str().unwrap_or("?").to_owned()).collect()
    }
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

// ---------------------------------------------------------------------------------------------------
// Socket.IO

/// A Socket.IO client over the WebSocket transport, speaking the packets themselves (`42[...]` events,
/// `42<id>[...]` events that ask for an acknowledgement, `43<id>[...]` acknowledgements), so that every
/// packet the server sends is seen as it is.
struct SioRecorder {
    ws: Socket,
    /// (event name, its argument or null) of every event received.
    events: Vec<(String, Value)>,
    /// The argument of every acknowledgement received, by id.
    acks: BTreeMap<u64, Value>,
    /// The event each acknowledgement id was asked for.
    asked: BTreeMap<u64, String>,
    next_ack: u64,
}

impl SioRecorder {
    async fn connect(server: &TestServer, token: Option<&str>) -> SioRecorder {
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
    async fn next_packet(&mut self) -> String {
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
    async fn emit(&mut self, checks: Option<(&mut Checks, &Doc)>, name: &str, arg: Option<Value>, ack: bool) {
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
    async fn read_until(&mut self, what: &str, mut done: impl FnMut(&SioRecorder) -> bool) {
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

    fn got(&self, event: &str) -> bool {
        self.events.iter().any(|(n, _)| n == event)
    }

    fn all_acked(&self) -> bool {
        self.asked.keys().all(|id| self.acks.contains_key(id))
    }

    fn names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Adds every event and acknowledgement received to `checks`; returns the event names.
    fn check(&self, checks: &mut Checks, doc: &Doc) -> BTreeSet<String> {
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
