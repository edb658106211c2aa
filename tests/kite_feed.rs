//! The Kite Connect connector against a LOCAL stand-in for Kite. Kite itself cannot be reached here
//! (no internet, no account): `FakeKite` below listens on 127.0.0.1 and speaks Kite's documented wire
//! format — the WebSocket ticker (`?api_key=&access_token=` in the URL, 403 for a refused token,
//! `{"a":"subscribe"}` / `{"a":"mode"}` requests, binary messages of big-endian packets, 1-byte
//! heartbeats), the instruments master CSV (`tests/fixtures/kite_instruments.csv`, the master's real
//! header) and the historical candles JSON with `+0530` times — and the real candlecast server (in
//! process, and the binary itself for the token test) is started with `feed.source = "kite"` pointed at
//! it. Its packet encoder is written here from the documented offsets, independently of the decoder.

mod common;

const EVERY_DAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::feeds::{bind, eventually, feed_until, now_ms, wait_totals};
use common::{TestServer, Toml};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

const API_KEY: &str = "kitetestkey";
const API_SECRET: &str = "kite-Secret-xyz-987";
const TOKEN: &str = "tok-Secret-0123456789abcdef";
const INFY: u32 = 408_065;
const TCS: u32 = 2_953_217;

enum Cmd {
    Send(Message),
    Drop,
}

struct WsConn {
    tx: mpsc::UnboundedSender<Cmd>,
    /// Tokens subscribed in full mode on this connection.
    full: Vec<u32>,
}

#[derive(Default)]
struct FakeState {
    /// The access token the fake accepts.
    valid_token: String,
    /// WebSocket handshakes attempted, and those accepted.
    ws_attempts: usize,
    ws_accepted: usize,
    ws: HashMap<u64, WsConn>,
    next_conn: u64,
    /// Text frames received on the ticker.
    ws_texts: Vec<String>,
    /// REST requests: (request target, Authorization, X-Kite-Version).
    rest: Vec<(String, String, String)>,
    /// Candle rows per (token, interval).
    candles: HashMap<(u32, String), Vec<Value>>,
    /// Request tokens the login redirect handed out and not yet exchanged (each works once).
    request_tokens: Vec<String>,
    /// `POST /session/token` bodies received, and their Content-Type and X-Kite-Version.
    logins: Vec<(String, String, String)>,
}

#[derive(Clone)]
struct FakeKite {
    ws: SocketAddr,
    http: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeKite {
    async fn start() -> FakeKite {
        let (ws, http) = (bind().await, bind().await);
        let state = FakeState { valid_token: TOKEN.into(), ..Default::default() };
        let fake = FakeKite {
            ws: ws.local_addr().unwrap(),
            http: http.local_addr().unwrap(),
            state: Arc::new(Mutex::new(state)),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = ws.accept().await {
                tokio::spawn(f.clone().serve_ws(tcp));
            }
        });
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = http.accept().await {
                tokio::spawn(f.clone().serve_rest(tcp));
            }
        });
        fake
    }

    fn overrides(&self, symbols: &[&str]) -> Vec<(&'static str, Toml)> {
        let s = |v: String| Toml::String(v);
        vec![
            ("feed.source", s("kite".into())),
            ("feed.symbols", Toml::Array(symbols.iter().map(|x| s(x.to_string())).collect())),
            ("feed.kite.api_key", s(API_KEY.into())),
            ("feed.kite.access_token", s(TOKEN.into())),
            ("feed.kite.ws_url", s(format!("ws://{}", self.ws))),
            ("feed.kite.api_url", s(format!("http://{}", self.http))),
            ("feed.kite.instruments_url", s(format!("http://{}/instruments", self.http))),
            ("feed.kite.backfill_days", Toml::Integer(1)),
            ("feed.kite.backfill_daily_days", Toml::Integer(0)),
            // Trades are stamped with Kite's second-resolution trade times; a slow shared machine must
            // not make them late for the 1s bars the tests read.
            ("aggregator.grace_ms", Toml::Integer(60_000)),
            // The fake stamps ticks with the current time: open the exchanges' sessions around the clock so
            // that the tests pass at any hour (bars on real sessions: model::calendar, tests/sessions.rs).
            ("aggregator.sessions.NSE.open", Toml::String("00:00".into())),
            ("aggregator.sessions.NSE.close", Toml::String("24:00".into())),
            (
                "aggregator.sessions.NSE.weekdays",
                Toml::Array(EVERY_DAY.iter().map(|d| Toml::String(d.to_string())).collect()),
            ),
        ]
    }

    /// The ticker: checks the key and token in the URL (403 otherwise, as Kite does), records requests,
    /// sends a heartbeat every 500 ms and whatever the test queues.
    async fn serve_ws(self, tcp: TcpStream) {
        let valid = {
            let mut s = self.state.lock().unwrap();
            s.ws_attempts += 1;
            s.valid_token.clone()
        };
        // The shape tungstenite's handshake callback must have; its error is the HTTP response itself.
        #[allow(clippy::result_large_err)]
        let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let query = req.uri().query().unwrap_or("");
            let q: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
            if q.get("api_key") == Some(&API_KEY) && q.get("access_token") == Some(&valid.as_str()) {
                Ok(resp)
            } else {
                let mut refused = ErrorResponse::new(Some("Forbidden".into()));
                *refused.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
                Err(refused)
            }
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else { return };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = {
            let mut s = self.state.lock().unwrap();
            s.ws_accepted += 1;
            s.next_conn += 1;
            let id = s.next_conn;
            s.ws.insert(id, WsConn { tx, full: Vec::new() });
            id
        };
        let mut heartbeat = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = heartbeat.tick() => if ws.send(Message::binary(vec![0u8])).await.is_err() { break },
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(m)) => if ws.send(m).await.is_err() { break },
                    Some(Cmd::Drop) | None => {
                        let _ = ws.close(None).await;
                        break;
                    }
                },
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => self.on_request(id, t.as_str()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        self.state.lock().unwrap().ws.remove(&id);
    }

    fn on_request(&self, id: u64, text: &str) {
        let mut s = self.state.lock().unwrap();
        s.ws_texts.push(text.to_owned());
        let req: Value = serde_json::from_str(text).unwrap_or_default();
        let Some(conn) = s.ws.get_mut(&id) else { return };
        if req["a"] == "mode" && req["v"][0] == "full" {
            conn.full.extend(req["v"][1].as_array().into_iter().flatten().filter_map(|t| t.as_u64()).map(|t| t as u32));
        }
        if req["a"] == "unsubscribe" {
            let gone: Vec<u32> =
                req["v"].as_array().into_iter().flatten().filter_map(|t| t.as_u64()).map(|t| t as u32).collect();
            conn.full.retain(|t| !gone.contains(t));
        }
    }

    /// Answers one HTTP/1.1 GET: the instruments master or historical candles.
    async fn serve_rest(self, mut tcp: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf.len(), |p| p + 4);
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let method = head.split_whitespace().next().unwrap_or("GET").to_owned();
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let (auth, version) = (header("authorization"), header("x-kite-version"));
        let authorized = auth == format!("token {API_KEY}:{}", self.state.lock().unwrap().valid_token);
        self.state.lock().unwrap().rest.push((target.clone(), auth, version.clone()));
        let (path, _) = target.split_once('?').unwrap_or((&target, ""));
        let (status, content_type, body) = if method == "POST" && path == "/session/token" {
            let length: usize = header("content-length").parse().unwrap_or(0);
            let mut body = buf[head_end..].to_vec();
            while body.len() < length {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&body).to_string();
            self.state.lock().unwrap().logins.push((body.clone(), header("content-type"), version.clone()));
            self.session_token(&body)
        } else if path == "/instruments" {
            // Kite's master needs no valid token; it is the same for everyone.
            ("200 OK", "text/csv", std::fs::read_to_string(fixture("kite_instruments.csv")).unwrap())
        } else if !authorized {
            let refused = json!({"status": "error", "message": "Incorrect `api_key` or `access_token`.", "data": null, "error_type": "TokenException"});
            ("403 Forbidden", "application/json", refused.to_string())
        } else if let Some(rest) = path.strip_prefix("/instruments/historical/") {
            let (token, interval) = rest.split_once('/').unwrap_or(("", ""));
            let token: u32 = token.parse().unwrap_or(0);
            let rows =
                self.state.lock().unwrap().candles.get(&(token, interval.to_owned())).cloned().unwrap_or_default();
            ("200 OK", "application/json", json!({"status": "success", "data": {"candles": rows}}).to_string())
        } else {
            ("404 Not Found", "application/json", json!({"status": "error", "message": "not found"}).to_string())
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(resp.as_bytes()).await;
    }

    /// `POST /session/token` as Kite documents it: a form with api_key, request_token and checksum =
    /// SHA-256(api_key + request_token + api_secret); a request token works once. The checksum is
    /// computed here with coreutils' sha256sum, not with candlecast's code.
    fn session_token(&self, form: &str) -> (&'static str, &'static str, String) {
        let fields: HashMap<&str, &str> = form.split('&').filter_map(|kv| kv.split_once('=')).collect();
        let (key, request, checksum) = (
            fields.get("api_key").copied().unwrap_or(""),
            fields.get("request_token").copied().unwrap_or(""),
            fields.get("checksum").copied().unwrap_or(""),
        );
        let refused = |message: &str| {
            let body = json!({"status": "error", "message": message, "data": null, "error_type": "TokenException"});
            ("403 Forbidden", "application/json", body.to_string())
        };
        if key != API_KEY {
            return refused("Invalid `api_key`.");
        }
        if checksum != sha256sum(&format!("{API_KEY}{request}{API_SECRET}")) {
            return refused("Invalid `checksum`.");
        }
        let mut s = self.state.lock().unwrap();
        let Some(at) = s.request_tokens.iter().position(|t| t == request) else {
            return refused("Token is invalid or has expired.");
        };
        s.request_tokens.remove(at);
        let data = json!({"user_id": "AB1234", "api_key": API_KEY, "public_token": "pub", "access_token": s.valid_token, "login_time": "2025-12-05 09:01:02"});
        ("200 OK", "application/json", json!({"status": "success", "data": data}).to_string())
    }

    /// Sends a binary message on every ticker connection that subscribed `token` in full mode.
    fn send(&self, token: u32, message: Vec<u8>) {
        for conn in self.state.lock().unwrap().ws.values().filter(|c| c.full.contains(&token)) {
            let _ = conn.tx.send(Cmd::Send(Message::binary(message.clone())));
        }
    }

    /// A `full` packet of `token` as its own message.
    fn full(&self, token: u32, paise: i32, volume: u32, ltq: u32, last_trade_secs: u32) {
        self.send(token, message(&[full_packet(token, paise, ltq, volume, last_trade_secs)]));
    }

    fn drop_ws(&self) {
        for conn in self.state.lock().unwrap().ws.values() {
            let _ = conn.tx.send(Cmd::Drop);
        }
    }

    fn subscribed(&self, token: u32) -> usize {
        self.state.lock().unwrap().ws.values().filter(|c| c.full.contains(&token)).count()
    }

    fn ws_accepted(&self) -> usize {
        self.state.lock().unwrap().ws_accepted
    }

    fn historical_requests(&self) -> Vec<(String, String, String)> {
        let s = self.state.lock().unwrap();
        s.rest.iter().filter(|r| r.0.starts_with("/instruments/historical/")).cloned().collect()
    }
}

/// Lower-case hex SHA-256 of `text`, by coreutils (independent of the code under test).
fn sha256sum(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned()
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The 184-byte `full` packet at Kite's documented offsets: token 0, last price 4, last traded qty 8,
/// average price 12, volume traded 16, total buy 20, total sell 24, OHLC 28..44, last trade time 44,
/// OI 48, OI high 52, OI low 56, exchange timestamp 60, then 10 depth entries of 12 bytes.
fn full_packet(token: u32, paise: i32, ltq: u32, volume: u32, last_trade_secs: u32) -> Vec<u8> {
    let mut p = vec![0u8; 184];
    let mut put = |at: usize, v: u32| p[at..at + 4].copy_from_slice(&v.to_be_bytes());
    put(0, token);
    put(4, paise as u32);
    put(8, ltq);
    put(12, paise as u32);
    put(16, volume);
    for at in [28, 32, 36, 40] {
        put(at, paise as u32);
    }
    put(44, last_trade_secs);
    put(60, last_trade_secs + 1);
    p
}

/// A binary message: a 2-byte packet count, then a 2-byte length before each packet.
fn message(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut m = (packets.len() as u16).to_be_bytes().to_vec();
    for p in packets {
        m.extend_from_slice(&(p.len() as u16).to_be_bytes());
        m.extend_from_slice(p);
    }
    m
}

/// `2025-12-05T09:15:00+0530` for a UTC time in ms (days to a civil date: H. Hinnant's algorithm).
fn ist(ms: i64) -> String {
    let secs = (ms + 19_800_000).div_euclid(1000);
    let (days, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0530", tod / 3600, tod % 3600 / 60, tod % 60)
}

/// Start of the IST day of a UTC time in ms.
fn ist_day_start(ms: i64) -> i64 {
    (ms + 19_800_000) / 86_400_000 * 86_400_000 - 19_800_000
}

#[test]
fn ist_times_as_kite_writes_them() {
    assert_eq!(ist(1_764_906_300_000), "2025-12-05T09:15:00+0530");
    assert_eq!(ist(1_709_231_400_000), "2024-03-01T00:00:00+0530", "after a leap day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_hands_over_to_live_trades_without_gap_or_duplicate() {
    let fake = FakeKite::start().await;
    let now = now_ms();
    let minute = 60_000;
    let this_minute = now / minute * minute;
    // Minute candles of the last three minutes, the last one still forming; volumes 100, 200, 300.
    let rows: Vec<(i64, f64, f64)> =
        (0..3).map(|i| (this_minute - (2 - i) * minute, 1490.0 + i as f64, 100.0 * (i + 1) as f64)).collect();
    let candles: Vec<Value> = rows.iter().map(|(t, p, v)| json!([ist(*t), p, p + 1.0, p - 1.0, p, v])).collect();
    fake.state.lock().unwrap().candles.insert((INFY, "minute".into()), candles);
    // What of it is today's (IST): the volume the ticker's cumulative counter already includes.
    let today = ist_day_start(now);
    let history_today: f64 = rows.iter().filter(|r| r.0 >= today).map(|r| r.2).sum();
    let mut overrides = fake.overrides(&["NSE:INFY", "NSE:TCS", "NSE:NOSUCH"]);
    overrides.push(("feed.kite.backfill_days", Toml::Integer(61)));
    let server = TestServer::start_serving(&overrides).await;
    eventually(30, "both subscriptions", || fake.subscribed(INFY) == 1 && fake.subscribed(TCS) == 1).await;
    assert_eq!(fake.ws_accepted(), 1, "one ticker connection serves every symbol");

    // The unknown symbol is refused with a clear reason; the others carry on.
    let f = feed_until(&server, "NSE:NOSUCH", "the unknown symbol", |f| f["state"] == "failed").await;
    assert!(f["last_error"].as_str().unwrap_or_default().contains("not in Kite's instruments master"), "{f}");

    // History: 61 days of minutes take two requests (Kite allows 60 days per minute request), each with
    // Kite's headers; the candles are the 1m bars at their UTC minutes.
    let infy_requests: Vec<_> = fake
        .historical_requests()
        .into_iter()
        .filter(|r| r.0.starts_with(&format!("/instruments/historical/{INFY}/minute?")))
        .collect();
    assert_eq!(infy_requests.len(), 2, "{infy_requests:?}");
    for (target, auth, version) in &infy_requests {
        assert!(target.contains("from=") && target.contains("to="), "{target}");
        assert_eq!((auth.as_str(), version.as_str()), (format!("token {API_KEY}:{TOKEN}").as_str(), "3"));
    }
    let (_, hist) = server.get_json("/api/historical/NSE:INFY?interval=1m&limit=10").await;
    let bars = hist["data"].as_array().unwrap();
    let first = bars.iter().find(|b| b["timestamp"].as_i64() == Some(rows[0].0));
    let first = first.unwrap_or_else(|| panic!("the backfilled minute at {}: {hist}", rows[0].0));
    assert_eq!((first["open"].as_f64(), first["volume"].as_f64()), (Some(1490.0), Some(100.0)), "{first}");

    // Live: the first packet says 40 more than the history holds for today: one trade of 40. Then the
    // same snapshot again, a price change without volume (a quote), a malformed packet of INFY, a
    // message cut short, and 10 more.
    let secs = (now_ms() / 1000) as u32;
    let base = history_today as u32;
    fake.full(INFY, 150_100, base + 40, 5, secs);
    fake.full(INFY, 150_100, base + 40, 5, secs);
    fake.full(INFY, 150_300, base + 40, 5, secs);
    let mut bad = full_packet(INFY, 1, 1, 1, secs);
    bad.truncate(100);
    fake.send(INFY, message(&[bad]));
    let mut cut = message(&[full_packet(INFY, 150_000, 1, base + 45, secs)]);
    cut.truncate(50);
    fake.send(INFY, cut);
    fake.full(INFY, 150_200, base + 50, 3, secs + 1);
    // TCS has no history: its first packet is only the baseline; then 5 trade.
    fake.full(TCS, 400_000, 9_000, 1, secs);
    fake.full(TCS, 400_050, 9_005, 5, secs + 1);

    assert_eq!(wait_totals(&server, "NSE:INFY", 2).await, (2, 50.0), "40 at the hand-over, then 10");
    assert_eq!(wait_totals(&server, "NSE:TCS", 1).await, (1, 5.0));
    let f = feed_until(&server, "NSE:INFY", "the counts", |f| f["trades"] == 2 && f["malformed"] == 2).await;
    assert_eq!((f["state"].as_str(), f["reconnects"].as_u64()), (Some("connected"), Some(0)), "{f}");
    let (_, price) = server.get_json("/api/price/NSE:INFY").await;
    assert_eq!(price["price"].as_f64(), Some(1502.0), "the last trade's price, paise / 100: {price}");

    // No gap, no duplicate: today's 1m bars hold exactly the ticker's cumulative volume.
    let (_, hist) = server.get_json("/api/historical/NSE:INFY?interval=1m&limit=20").await;
    let today_volume: f64 = hist["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["timestamp"].as_i64().is_some_and(|t| t >= today))
        .map(|b| b["volume"].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(today_volume, f64::from(base + 50), "today's bars = volume_traded: {hist}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resumes_without_repeating_trades() {
    let fake = FakeKite::start().await;
    let mut overrides = fake.overrides(&["NSE:INFY"]);
    overrides.push(("feed.kite.backfill_days", Toml::Integer(0)));
    let server = TestServer::start_serving(&overrides).await;
    eventually(30, "the subscription", || fake.subscribed(INFY) == 1).await;
    let secs = (now_ms() / 1000) as u32;
    fake.full(INFY, 150_000, 1_000, 1, secs);
    fake.full(INFY, 150_100, 1_010, 10, secs);
    assert_eq!(wait_totals(&server, "NSE:INFY", 1).await, (1, 10.0));

    // The connection drops: the feed reconnects and subscribes again on a new connection.
    fake.drop_ws();
    eventually(60, "a new connection", || fake.ws_accepted() == 2 && fake.subscribed(INFY) == 1).await;
    let f = feed_until(&server, "NSE:INFY", "reconnected", |f| f["state"] == "connected" && f["reconnects"] == 1).await;
    assert!(f["last_error"].as_str().unwrap_or_default().contains("closed the connection"), "{f}");
    // The first snapshot on the new connection shows 10 traded during the outage: one trade of 10 (a
    // connector that forgot its state would take it as a fresh baseline and lose them). Its repeat is
    // no trade; then 10 more.
    let later = ((now_ms() / 1000) as u32).max(secs + 1);
    fake.full(INFY, 150_200, 1_020, 3, later);
    fake.full(INFY, 150_200, 1_020, 3, later);
    fake.full(INFY, 150_400, 1_030, 2, later + 1);
    assert_eq!(wait_totals(&server, "NSE:INFY", 3).await, (3, 30.0), "10 before, 10 during the outage, 10 after");
    let f = feed_until(&server, "NSE:INFY", "the count", |f| f["trades"] == 3).await;
    assert_eq!(f["malformed"].as_u64(), Some(0), "{f}");
    let texts = fake.state.lock().unwrap().ws_texts.clone();
    let subscribes = texts.iter().filter(|t| t.contains("\"subscribe\"") && t.contains(&INFY.to_string())).count();
    let modes = texts.iter().filter(|t| t.contains("\"mode\"") && t.contains("\"full\"")).count();
    assert_eq!((subscribes, modes), (2, 2), "subscribe and full mode on each connection: {texts:?}");
}

/// The real binary, with the token in the environment as the docs advise. Kite refuses it (expired):
/// `/api/feeds` and `/health` say so, and neither they nor anything the process prints show the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_reported_and_never_printed() {
    let fake = FakeKite::start().await;
    fake.state.lock().unwrap().valid_token = "tok-of-today".into();
    // The environment cannot name an exchange's session (its keys are lower-cased; exchanges are upper
    // case): this test reads no bars, so the default sessions do.
    let overrides: Vec<_> =
        fake.overrides(&["NSE:INFY"]).into_iter().filter(|(k, _)| !k.starts_with("aggregator.sessions")).collect();
    let (mut server, printed) = TestServer::start_process_printing("debug", &overrides).await;
    let addr = server.addr;
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };

    let deadline = Instant::now() + Duration::from_secs(30);
    let feeds = loop {
        let feeds = get("/api/feeds").await;
        let v: Value = serde_json::from_str(&feeds).unwrap();
        if v["feeds"][0]["state"] == "failed" {
            break feeds;
        }
        assert!(Instant::now() < deadline, "the feed never failed: {feeds}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: Value = serde_json::from_str(&feeds).unwrap();
    assert!(v["feeds"][0]["last_error"].as_str().unwrap_or_default().contains("token expired or invalid"), "{feeds}");
    let health = get("/health").await;
    let h: Value = serde_json::from_str(&health).unwrap();
    assert_eq!((h["status"].as_str(), &h["failed_feeds"]), (Some("degraded"), &json!(["NSE:INFY"])), "{health}");
    assert!(
        h["failed_feed_errors"]["NSE:INFY"].as_str().unwrap_or_default().contains("token expired or invalid"),
        "{health}"
    );
    // The ticker was asked and refused the token: the 403 came from the WebSocket handshake.
    let (attempts, accepted) = {
        let s = fake.state.lock().unwrap();
        (s.ws_attempts, s.ws_accepted)
    };
    assert_eq!((attempts, accepted), (1, 0), "one handshake, refused, not retried");
    let stats = get("/api/stats").await;
    let metrics = get("/metrics").await;
    server.kill9();
    let printed = printed.all();
    assert!(printed.contains("token expired or invalid"), "the refusal is logged: {printed}");
    for (what, text) in [
        ("/api/feeds", &feeds),
        ("/health", &health),
        ("/api/stats", &stats),
        ("/metrics", &metrics),
        ("logs", &printed),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the access token");
        assert!(!text.contains(API_KEY), "{what} shows the API key");
    }
}

/// `candlecast kite login --request-token`: the documented exchange (form POST, X-Kite-Version 3, the
/// checksum), the token printed on stdout's first line; a token used twice, a wrong secret and a wrong
/// token are refused with Kite's reason and a failure status, and never print the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kite_login_exchanges_a_request_token_for_the_access_token() {
    let fake = FakeKite::start().await;
    fake.state.lock().unwrap().request_tokens.push("req-Token-abc123".into());
    let login = |request_token: &'static str, secret: &'static str| {
        let http = fake.http;
        async move {
            let out = tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_candlecast"))
                    .args(["kite", "login", "--request-token", request_token])
                    .env("CANDLECAST__FEED__KITE__API_KEY", API_KEY)
                    .env("CANDLECAST__FEED__KITE__API_SECRET", secret)
                    .env("CANDLECAST__FEED__KITE__API_URL", format!("http://{http}"))
                    .output()
                    .expect("the binary runs")
            })
            .await
            .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };

    let (ok, stdout, stderr) = login("req-Token-abc123", API_SECRET).await;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.lines().next(), Some(TOKEN), "{stdout}");
    assert!(stdout.contains("CANDLECAST__FEED__KITE__ACCESS_TOKEN=") && stdout.contains("06:00 IST"), "{stdout}");
    assert!(!stdout.contains(API_SECRET) && !stderr.contains(API_SECRET));
    let (body, content_type, version) = fake.state.lock().unwrap().logins[0].clone();
    assert_eq!((content_type.as_str(), version.as_str()), ("application/x-www-form-urlencoded", "3"));
    assert!(body.contains("request_token=req-Token-abc123") && !body.contains(API_SECRET), "{body}");

    // A request token works once.
    let (ok, stdout, stderr) = login("req-Token-abc123", API_SECRET).await;
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("Token is invalid or has expired"), "{stderr}");
    // A wrong secret makes a wrong checksum; Kite says so, the secret is not repeated.
    fake.state.lock().unwrap().request_tokens.push("req-Token-def456".into());
    let (ok, _, stderr) = login("req-Token-def456", "not-the-Secret-1").await;
    assert!(!ok && stderr.contains("Invalid `checksum`"), "{stderr}");
    assert!(!stderr.contains("not-the-Secret-1") && !stderr.contains("req-Token-def456"), "{stderr}");
}
