//! The Shoonya connector against a LOCAL stand-in for Noren OMS. Shoonya's servers cannot be reached
//! (nor logged in to) here: `FakeNoren` below listens on two 127.0.0.1 ports and speaks Noren's
//! documented wire formats — REST (`POST /NorenWClientTP/QuickAuth` with `jData=`, `POST .../TPSeries`
//! with `jData=...&jKey=`, newest-first rows with IST times, `{"stat":"Not_Ok","emsg":...}` errors), the
//! symbol masters (`GET /NSE_symbols.txt.zip` from tests/fixtures, zipped as Shoonya serves them; NFO as
//! plain text) and the touchline WebSocket (`{"t":"c"}` -> `ck`, `{"t":"t","k":"NSE|1594"}` -> `tk`, then
//! `tf` partial updates) — and the real candlecast server is started with `feed.source = "shoonya"`.

mod common;

const EVERY_DAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use candlecast_actors::feed::utc_ms_to_ist;
use candlecast_actors::feed::{sha256_hex, totp};
use common::feeds::{bind, eventually, feed_until, now_ms, wait_totals};
use common::{TestServer, Toml};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const UID: &str = "FA12345";
const PASSWORD: &str = "hunter2-Password";
const API_SECRET: &str = "api-secret-0f1e2d3c";
/// Base32 of "12345678901234567890" (RFC 6238's test secret).
const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const NSE_ZIP: &[u8] = include_bytes!("fixtures/shoonya_NSE_symbols.txt.zip");
const NFO_TXT: &[u8] = include_bytes!("fixtures/shoonya_NFO_symbols.txt");

enum Cmd {
    Send(String),
    Drop,
}

struct WsConn {
    subscribed: HashSet<String>,
    tx: mpsc::UnboundedSender<Cmd>,
}

#[derive(Default)]
struct FakeState {
    /// `(route, body)` of every REST request.
    rest: Vec<(String, String)>,
    /// Every WebSocket text message received.
    ws_received: Vec<String>,
    ws_accepted: usize,
    conns: HashMap<u64, WsConn>,
    next_conn: u64,
    valid_tokens: HashSet<String>,
    logins: usize,
    /// TPSeries rows per token, newest first.
    series: HashMap<String, Vec<Value>>,
    /// The touchline per token as a `tk` snapshot shows it.
    touchline: HashMap<String, Value>,
}

#[derive(Clone)]
struct FakeNoren {
    http: SocketAddr,
    ws: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeNoren {
    async fn start() -> FakeNoren {
        let (http, ws) = (bind().await, bind().await);
        let fake = FakeNoren { http: http.local_addr().unwrap(), ws: ws.local_addr().unwrap(), state: Arc::default() };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = http.accept().await {
                tokio::spawn(f.clone().serve_http(tcp));
            }
        });
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = ws.accept().await {
                tokio::spawn(f.clone().serve_ws(tcp));
            }
        });
        fake
    }

    /// The settings of a feed pointed at this fake, for `symbols`, with credentials.
    fn overrides(&self, symbols: &[&str]) -> Vec<(&'static str, Toml)> {
        let s = |v: &str| Toml::String(v.into());
        vec![
            ("feed.source", s("shoonya")),
            ("feed.symbols", Toml::Array(symbols.iter().map(|v| s(v)).collect())),
            ("feed.shoonya.api_url", s(&format!("http://{}/NorenWClientTP", self.http))),
            ("feed.shoonya.ws_url", s(&format!("ws://{}/NorenWSTP/", self.ws))),
            ("feed.shoonya.masters", s(&format!("http://{}/{{exchange}}_symbols.txt.zip", self.http))),
            ("feed.shoonya.uid", s(UID)),
            ("feed.shoonya.vendor_code", s("FA12345_U")),
            ("feed.shoonya.password", s(PASSWORD)),
            ("feed.shoonya.totp_secret", s(TOTP_SECRET)),
            ("feed.shoonya.api_secret", s(API_SECRET)),
            ("feed.shoonya.backfill_days", Toml::Integer(1)),
            ("feed.shoonya.heartbeat_secs", Toml::Integer(1)),
            // The fake stamps ticks with the current time: open the exchanges' sessions around the clock so
            // that the tests pass at any hour (bars on real sessions: model::calendar, tests/sessions.rs).
            ("aggregator.sessions.NSE.open", Toml::String("00:00".into())),
            ("aggregator.sessions.NSE.close", Toml::String("24:00".into())),
            (
                "aggregator.sessions.NSE.weekdays",
                Toml::Array(EVERY_DAY.iter().map(|d| Toml::String(d.to_string())).collect()),
            ),
            ("aggregator.sessions.NFO.open", Toml::String("00:00".into())),
            ("aggregator.sessions.NFO.close", Toml::String("24:00".into())),
            (
                "aggregator.sessions.NFO.weekdays",
                Toml::Array(EVERY_DAY.iter().map(|d| Toml::String(d.to_string())).collect()),
            ),
        ]
    }

    async fn serve_http(self, mut tcp: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            let Ok(n) = tcp.read(&mut chunk).await else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while buf.len() < head_end + length {
            let Ok(n) = tcp.read(&mut chunk).await else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        let reply: Vec<u8> = match path.as_str() {
            "/NSE_symbols.txt.zip" => NSE_ZIP.to_vec(),
            "/NFO_symbols.txt.zip" => NFO_TXT.to_vec(),
            "/NorenWClientTP/QuickAuth" => self.quick_auth(&body).to_string().into_bytes(),
            "/NorenWClientTP/TPSeries" => self.tp_series(&body).to_string().into_bytes(),
            _ => {
                let _ =
                    tcp.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                return;
            }
        };
        if let Some(route) = path.strip_prefix("/NorenWClientTP/") {
            self.state.lock().unwrap().rest.push((route.to_owned(), body));
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", reply.len());
        let _ = tcp.write_all(head.as_bytes()).await;
        let _ = tcp.write_all(&reply).await;
    }

    /// `jData={...}`: Ok with a new token when every field is what Noren checks.
    fn quick_auth(&self, body: &str) -> Value {
        let Some(data) = body.strip_prefix("jData=").and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
            return json!({"stat": "Not_Ok", "emsg": "Invalid Input : jData is Missing."});
        };
        let now = now_ms() as u64 / 1000;
        let factor2_ok = [now - 30, now, now + 30]
            .iter()
            .any(|t| Some(totp(TOTP_SECRET, *t).unwrap().as_str()) == data["factor2"].as_str());
        let ok = data["uid"] == UID
            && data["pwd"] == sha256_hex(PASSWORD)
            && data["appkey"] == sha256_hex(&format!("{UID}|{API_SECRET}"))
            && data["source"] == "API"
            && factor2_ok;
        if !ok {
            return json!({"stat": "Not_Ok", "emsg": "Invalid Input : Wrong Password"});
        }
        let mut s = self.state.lock().unwrap();
        s.logins += 1;
        let token = format!("tok-{:04}-a1b2c3d4e5f6", s.logins);
        s.valid_tokens.insert(token.clone());
        json!({"request_time": "20:18:47 19-05-2020", "stat": "Ok", "susertoken": token, "lastaccesstime": "1589899727"})
    }

    /// `jData={...}&jKey=<token>`: the token's rows, or Noren's session error.
    fn tp_series(&self, body: &str) -> Value {
        let Some((data, key)) = body.strip_prefix("jData=").and_then(|b| b.split_once("&jKey=")) else {
            return json!({"stat": "Not_Ok", "emsg": "Invalid Input : jKey is Missing."});
        };
        let s = self.state.lock().unwrap();
        if !s.valid_tokens.contains(key) {
            return json!({"stat": "Not_Ok", "emsg": "Session Expired :  Invalid Session Key"});
        }
        let data: Value = serde_json::from_str(data).unwrap_or_default();
        match s.series.get(data["token"].as_str().unwrap_or("")) {
            Some(rows) => Value::Array(rows.clone()),
            None => json!({"stat": "Not_Ok", "emsg": "Error Occurred : 5 \"no data\""}),
        }
    }

    async fn serve_ws(self, tcp: TcpStream) {
        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = {
            let mut s = self.state.lock().unwrap();
            s.ws_accepted += 1;
            s.next_conn += 1;
            let id = s.next_conn;
            s.conns.insert(id, WsConn { subscribed: HashSet::new(), tx: tx.clone() });
            id
        };
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(text)) => if sink.send(Message::text(text)).await.is_err() { break },
                    Some(Cmd::Drop) | None => break,
                },
                msg = stream.next() => {
                    let Some(Ok(Message::Text(text))) = msg else { break };
                    for reply in self.ws_reply(id, text.as_str()) {
                        let _ = tx.send(Cmd::Send(reply));
                    }
                }
            }
        }
        self.state.lock().unwrap().conns.remove(&id);
    }

    fn ws_reply(&self, id: u64, text: &str) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        s.ws_received.push(text.to_owned());
        let msg: Value = serde_json::from_str(text).unwrap_or_default();
        match msg["t"].as_str() {
            Some("c") if s.valid_tokens.contains(msg["susertoken"].as_str().unwrap_or("")) => {
                vec![json!({"t": "ck", "s": "OK", "uid": msg["uid"]}).to_string()]
            }
            Some("c") => {
                vec![json!({"t": "ck", "s": "Not_Ok", "emsg": "Session Expired : Invalid Session Key"}).to_string()]
            }
            Some("t") => {
                let key = msg["k"].as_str().unwrap_or("").to_owned();
                let token = key.split('|').nth(1).unwrap_or("").to_owned();
                let snapshot = s.touchline.get(&token).cloned();
                if let Some(conn) = s.conns.get_mut(&id) {
                    conn.subscribed.insert(token);
                }
                snapshot.map(|t| t.to_string()).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The touchline a `tk` snapshot shows for `token` from now on.
    fn set_touchline(&self, token: &str, lp: &str, v: &str) {
        let tk = json!({"t": "tk", "e": "NSE", "tk": token, "ts": "INFY-EQ", "pp": "2", "ls": "1", "ti": "0.05",
            "lp": lp, "v": v, "o": "1490.00", "h": "1510.00", "l": "1485.00", "c": "1495.00", "pc": "0.33"});
        self.state.lock().unwrap().touchline.insert(token.to_owned(), tk);
    }

    /// Sends a raw text to every connection subscribed to `token`.
    fn send(&self, token: &str, text: &str) {
        for conn in self.state.lock().unwrap().conns.values().filter(|c| c.subscribed.contains(token)) {
            let _ = conn.tx.send(Cmd::Send(text.to_owned()));
        }
    }

    /// A `tf` update of `token` with `fields`, stamped with the feed time now.
    fn tf(&self, token: &str, fields: Value) {
        let mut msg = json!({"t": "tf", "e": "NSE", "tk": token, "ft": (now_ms() / 1000).to_string()});
        if let (Some(m), Value::Object(f)) = (msg.as_object_mut(), fields) {
            m.extend(f);
        }
        self.send(token, &msg.to_string());
    }

    fn drop_ws(&self) {
        for conn in self.state.lock().unwrap().conns.values() {
            let _ = conn.tx.send(Cmd::Drop);
        }
    }

    fn subscribed(&self, token: &str) -> usize {
        self.state.lock().unwrap().conns.values().filter(|c| c.subscribed.contains(token)).count()
    }

    fn rest(&self, route: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.rest.iter().filter(|(r, _)| r == route).map(|(_, b)| b.clone()).collect()
    }
}

/// A TPSeries row for the minute starting at `start_ms`, as Noren sends it (IST time, strings).
fn tp_row(start_ms: i64, open: f64, close: f64, volume: u64) -> Value {
    let (high, low) = (open.max(close) + 0.5, open.min(close) - 0.5);
    json!({"stat": "Ok", "time": utc_ms_to_ist(start_ms).unwrap(), "into": format!("{open:.2}"),
        "inth": format!("{high:.2}"), "intl": format!("{low:.2}"), "intc": format!("{close:.2}"),
        "intvwap": format!("{close:.2}"), "intv": volume.to_string(), "v": "999999", "intoi": "0", "oi": "0"})
}

/// The raw text of `path`, to check what it does not contain.
async fn text(server: &TestServer, path: &str) -> String {
    reqwest::get(server.url(path)).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_backfill_and_touchline_updates_become_trades() {
    let fake = FakeNoren::start().await;
    let minute = 60_000;
    let this_minute = now_ms() / minute * minute;
    let mut rows = vec![
        tp_row(this_minute - 2 * minute, 1501.0, 1502.0, 600),
        tp_row(this_minute - 3 * minute, 1500.0, 1501.0, 500),
    ];
    rows.push(json!({"stat": "Ok", "time": "yesterday", "into": "1"}));
    fake.state.lock().unwrap().series.insert("1594".into(), rows);
    fake.set_touchline("1594", "1500.00", "1000");
    fake.set_touchline("35003", "21000.00", "50");
    let server = TestServer::start_serving(&fake.overrides(&["NSE:INFY-EQ", "NFO:NIFTY28DEC23F"])).await;
    eventually(30, "both subscriptions", || fake.subscribed("1594") == 1 && fake.subscribed("35003") == 1).await;

    // One login for both feeds, with the fields QuickAuth checks; the token then goes with every call.
    let logins = fake.rest("QuickAuth");
    assert_eq!(logins.len(), 1, "{logins:?}");
    let auth: Value = serde_json::from_str(logins[0].strip_prefix("jData=").unwrap()).unwrap();
    assert_eq!(
        (auth["uid"].as_str(), auth["vc"].as_str(), auth["source"].as_str()),
        (Some(UID), Some("FA12345_U"), Some("API"))
    );
    assert_eq!(auth["pwd"], sha256_hex(PASSWORD), "sha256 of the password");
    assert_eq!(auth["appkey"], sha256_hex(&format!("{UID}|{API_SECRET}")), "sha256 of uid|api_secret");
    assert!(auth["imei"].is_string() && auth["apkversion"].is_string(), "{auth}");
    let token = "tok-0001-a1b2c3d4e5f6";
    let series = fake.rest("TPSeries");
    let infy = series.iter().find(|b| b.contains("\"1594\"")).unwrap_or_else(|| panic!("{series:?}"));
    let (data, key) = infy.strip_prefix("jData=").unwrap().split_once("&jKey=").unwrap();
    assert_eq!(key, token);
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (data["uid"].as_str(), data["exch"].as_str(), data["intrv"].as_str()),
        (Some(UID), Some("NSE"), Some("1"))
    );
    let span = |k: &str| data[k].as_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(span("et") - span("st"), 86_400, "backfill_days = 1, in epoch seconds");
    let ws = fake.state.lock().unwrap().ws_received.clone();
    let hello: Value = serde_json::from_str(&ws[0]).unwrap();
    assert_eq!(hello, json!({"t": "c", "uid": UID, "actid": UID, "susertoken": token, "source": "API"}));
    let sent = |want: Value| ws.iter().any(|m| serde_json::from_str::<Value>(m).ok() == Some(want.clone()));
    assert!(sent(json!({"t": "t", "k": "NSE|1594"})), "the touchline subscription: {ws:?}");
    assert!(sent(json!({"t": "t", "k": "NFO|35003"})), "the NFO master resolved: {ws:?}");

    // The TPSeries rows (IST, newest first) are the 1m history, at the right UTC minutes.
    let (_, hist) = server.get_json("/api/historical/NSE:INFY-EQ?interval=1m&limit=10").await;
    let bar = |t: i64| hist["data"].as_array().unwrap().iter().find(|b| b["timestamp"].as_i64() == Some(t)).cloned();
    let first = bar(this_minute - 3 * minute).unwrap_or_else(|| panic!("the backfilled minute: {hist}"));
    assert_eq!(
        (first["open"].as_f64(), first["close"].as_f64(), first["volume"].as_f64()),
        (Some(1500.0), Some(1501.0), Some(500.0))
    );

    // A price change alone, a trade, a bad number, the same volume again, another token, junk, a trade.
    fake.tf("1594", json!({"lp": "1501.00"}));
    fake.tf("1594", json!({"v": "1010"}));
    fake.tf("1594", json!({"v": "abc"}));
    fake.tf("1594", json!({"v": "1010", "bp1": "1500.95"}));
    fake.tf("2885", json!({"v": "99999999", "lp": "2500"}));
    fake.send("1594", "not json at all");
    fake.tf("1594", json!({"v": "1025", "lp": "1502.00"}));
    assert_eq!(wait_totals(&server, "NSE:INFY-EQ", 2).await, (2, 25.0), "two volume steps: 10 and 15");
    let f = feed_until(&server, "NSE:INFY-EQ", "the counts", |f| f["trades"] == 2).await;
    assert_eq!(
        (f["state"].as_str(), f["malformed"].as_u64(), f["reconnects"].as_u64()),
        (Some("connected"), Some(3), Some(0)),
        "one TPSeries row, the bad number and the junk: {f}"
    );
    let (_, price) = server.get_json("/api/price/NSE:INFY-EQ").await;
    assert_eq!(price["price"].as_f64(), Some(1502.0), "{price}");

    // Hand-over: the 1m bars hold the backfill once and the live volume once.
    let (_, hist) = server.get_json("/api/historical/NSE:INFY-EQ?interval=1m&limit=10").await;
    let volume: f64 = hist["data"].as_array().unwrap().iter().map(|b| b["volume"].as_f64().unwrap_or(0.0)).sum();
    assert_eq!(volume, 500.0 + 600.0 + 25.0, "{hist}");

    // Heartbeats go out; no secret is shown anywhere.
    eventually(30, "a heartbeat", || fake.state.lock().unwrap().ws_received.iter().any(|m| m == r#"{"t":"h"}"#)).await;
    for path in ["/api/feeds", "/api/stats", "/health", "/metrics"] {
        let body = text(&server, path).await;
        for secret in [PASSWORD, API_SECRET, TOTP_SECRET, token] {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_resubscribe_without_duplicates_and_a_refused_session_logs_in_again() {
    let fake = FakeNoren::start().await;
    fake.set_touchline("1594", "1500.00", "1000");
    let server = TestServer::start_serving(&fake.overrides(&["NSE:INFY-EQ"])).await;
    eventually(30, "the subscription", || fake.subscribed("1594") == 1).await;
    fake.tf("1594", json!({"v": "1010"}));
    assert_eq!(wait_totals(&server, "NSE:INFY-EQ", 1).await, (1, 10.0));

    // The connection drops; 40 trade while it is down. The new snapshot shows them: not a trade.
    fake.set_touchline("1594", "1503.00", "1050");
    fake.drop_ws();
    eventually(30, "the resubscription", || {
        fake.state.lock().unwrap().ws_accepted == 2 && fake.subscribed("1594") == 1
    })
    .await;
    let f =
        feed_until(&server, "NSE:INFY-EQ", "reconnected", |f| f["state"] == "connected" && f["reconnects"] == 1).await;
    assert!(f["last_error"].as_str().unwrap_or_default().starts_with("connection lost"), "{f}");
    fake.tf("1594", json!({"v": "1052"}));
    assert_eq!(wait_totals(&server, "NSE:INFY-EQ", 2).await, (2, 12.0), "the snapshot is no trade; 2 more after it");
    let f = feed_until(&server, "NSE:INFY-EQ", "the gap", |f| f["gaps_unfilled"] == 1).await;
    assert_eq!(f["trades"], 2, "{f}");
    assert_eq!(fake.rest("QuickAuth").len(), 1, "the session outlives the connection");

    // Noren forgets the session: the connect is refused, the feed logs in again and carries on.
    fake.set_touchline("1594", "1503.00", "1052");
    fake.state.lock().unwrap().valid_tokens.clear();
    fake.drop_ws();
    eventually(60, "a second login and subscription", || {
        fake.rest("QuickAuth").len() == 2 && fake.subscribed("1594") == 1
    })
    .await;
    let f = feed_until(&server, "NSE:INFY-EQ", "connected again", |f| f["state"] == "connected").await;
    let why = f["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("session invalid") && why.contains("Invalid Session Key"), "{f}");
    assert!(!why.contains("tok-0001"), "the refused token is not shown: {f}");
    let second: Value = serde_json::from_str(
        &fake.state.lock().unwrap().ws_received.iter().rev().find(|m| m.contains("\"c\"")).cloned().unwrap(),
    )
    .unwrap();
    assert_eq!(second["susertoken"], "tok-0002-a1b2c3d4e5f6", "the new session's token");
    fake.tf("1594", json!({"v": "1055"}));
    assert_eq!(wait_totals(&server, "NSE:INFY-EQ", 3).await, (3, 15.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_token_and_an_unknown_symbol_stop_their_feeds_clearly() {
    let fake = FakeNoren::start().await;
    let secret_token = "tok-EXPIRED-3f9a8b7c";
    let s = |v: &str| Toml::String(v.into());
    let overrides = vec![
        ("feed.source", s("shoonya")),
        ("feed.symbols", Toml::Array(vec![s("NSE:INFY-EQ"), s("NSE:NOPE-EQ")])),
        ("feed.shoonya.api_url", s(&format!("http://{}/NorenWClientTP", fake.http))),
        ("feed.shoonya.ws_url", s(&format!("ws://{}/NorenWSTP/", fake.ws))),
        ("feed.shoonya.masters", s(&format!("http://{}/{{exchange}}_symbols.txt.zip", fake.http))),
        ("feed.shoonya.uid", s(UID)),
        ("feed.shoonya.session_token", s(secret_token)),
        ("feed.shoonya.backfill_days", Toml::Integer(0)),
    ];
    let server = TestServer::start_serving(&overrides).await;

    let f = feed_until(&server, "NSE:INFY-EQ", "the refused session", |f| f["state"] == "failed").await;
    let why = f["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("Invalid Session Key") && why.contains("session_token"), "says what to do: {f}");
    let hello: Value = serde_json::from_str(&fake.state.lock().unwrap().ws_received[0]).unwrap();
    assert_eq!(hello["susertoken"], secret_token, "the configured token was tried");
    assert!(fake.rest("QuickAuth").is_empty(), "no credentials: no login attempt");

    let f = feed_until(&server, "NSE:NOPE-EQ", "the unknown symbol", |f| f["state"] == "failed").await;
    let why = f["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("NOPE-EQ is not in Shoonya's NSE symbol master"), "{f}");
    let (_, health) = server.get_json("/health").await;
    let failed = health["failed_feeds"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 2, "{health}");
    for path in ["/api/feeds", "/api/stats", "/health", "/metrics"] {
        assert!(!text(&server, path).await.contains(secret_token), "{path} shows the session token");
    }
}
