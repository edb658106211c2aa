//! The Binance adapter against a LOCAL stand-in for Binance. Binance itself is never contacted: the
//! `FakeBinance` below is a WebSocket server and a tiny HTTP server on 127.0.0.1 that speak Binance's
//! documented wire formats (the `<symbol>@trade` stream, `/api/v3/klines`, `/api/v3/historicalTrades`),
//! and the real candlecast server is started with `feed.source = "binance"` pointed at them.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, TestServer, Toml};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// What the fake exchange can be told to do on a connection.
enum Cmd {
    Send(Message),
    /// Vanish without a close frame, as a dropped TCP connection does.
    Drop,
}

#[derive(Default)]
struct FakeState {
    /// Connections accepted per symbol since start.
    accepted: HashMap<String, usize>,
    /// Open connections: id → the symbols it carries, whether it is a combined stream, command channel.
    open: HashMap<u64, FakeConn>,
    /// Requests (SUBSCRIBE / UNSUBSCRIBE) received on combined streams: method and params.
    requests: Vec<(String, Vec<String>)>,
    next_conn: u64,
    /// Every trade "executed", per symbol, as `/api/v3/historicalTrades` rows.
    trades: HashMap<String, Vec<Value>>,
    /// Pong payloads received, with when.
    pongs: Vec<(Instant, Vec<u8>)>,
    /// `GET /api/v3/exchangeInfo` requests answered.
    exchange_info_requests: usize,
}

struct FakeConn {
    symbols: std::collections::HashSet<String>,
    combined: bool,
    tx: mpsc::UnboundedSender<Cmd>,
}

/// `btcusdt@trade` → `BTCUSDT`
fn symbol_of_stream(stream: &str) -> String {
    stream.trim_end_matches("@trade").to_ascii_uppercase()
}

/// See the module documentation.
#[derive(Clone)]
struct FakeBinance {
    ws: SocketAddr,
    rest: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeBinance {
    async fn start() -> FakeBinance {
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rest_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeBinance {
            ws: ws_listener.local_addr().unwrap(),
            rest: rest_listener.local_addr().unwrap(),
            state: Arc::default(),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = ws_listener.accept().await {
                tokio::spawn(f.clone().serve_ws(tcp));
            }
        });
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = rest_listener.accept().await {
                tokio::spawn(f.clone().serve_rest(tcp));
            }
        });
        fake
    }

    fn overrides(&self, symbols: &[&str]) -> Vec<(&'static str, Toml)> {
        vec![
            ("feed.source", Toml::String("binance".into())),
            ("feed.symbols", Toml::Array(symbols.iter().map(|s| Toml::String(s.to_string())).collect())),
            ("feed.binance.ws_url", Toml::String(format!("ws://{}", self.ws))),
            ("feed.binance.rest_url", Toml::String(format!("http://{}", self.rest))),
            ("feed.binance.backfill_days", Toml::Integer(1)),
            ("feed.binance.backfill_fine_hours", Toml::Integer(0)),
        ]
    }

    // The handshake callback's error type is tungstenite's (a full HTTP response); not ours to shrink.
    #[allow(clippy::result_large_err)]
    async fn serve_ws(self, tcp: TcpStream) {
        let (mut path, mut query) = (String::new(), String::new());
        let callback = |req: &Request, resp: Response| {
            path = req.uri().path().to_owned();
            query = req.uri().query().unwrap_or("").to_owned();
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
        // `/ws/btcusdt@trade`, or combined: `/stream?streams=btcusdt@trade/ethusdt@trade`
        let combined = path == "/stream";
        let symbols: std::collections::HashSet<String> = if combined {
            query.trim_start_matches("streams=").split('/').filter(|s| !s.is_empty()).map(symbol_of_stream).collect()
        } else {
            [symbol_of_stream(path.trim_start_matches("/ws/"))].into()
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = {
            let mut s = self.state.lock().unwrap();
            for symbol in &symbols {
                *s.accepted.entry(symbol.clone()).or_default() += 1;
            }
            s.next_conn += 1;
            let id = s.next_conn;
            s.open.insert(id, FakeConn { symbols, combined, tx });
            id
        };
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(m)) => if ws.send(m).await.is_err() { break },
                    Some(Cmd::Drop) | None => break,
                },
                msg = ws.next() => match msg {
                    Some(Ok(Message::Pong(p))) => self.state.lock().unwrap().pongs.push((Instant::now(), p.to_vec())),
                    Some(Ok(Message::Text(t))) if combined => {
                        let req: Value = serde_json::from_str(t.as_str()).unwrap();
                        let (method, params) = (req["method"].as_str().unwrap().to_owned(), req["params"].as_array().unwrap().clone());
                        let streams: Vec<String> = params.iter().map(|p| p.as_str().unwrap().to_owned()).collect();
                        {
                            let mut s = self.state.lock().unwrap();
                            let conn = s.open.get_mut(&id).unwrap();
                            for stream in &streams {
                                if method == "SUBSCRIBE" {
                                    conn.symbols.insert(symbol_of_stream(stream));
                                } else {
                                    conn.symbols.remove(&symbol_of_stream(stream));
                                }
                            }
                            s.requests.push((method, streams));
                        }
                        if ws.send(Message::text(json!({"result": null, "id": req["id"]}).to_string())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        self.state.lock().unwrap().open.remove(&id);
    }

    /// Answers one HTTP/1.1 GET: klines or historical trades by id.
    async fn serve_rest(self, mut tcp: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let q: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
        let symbol = q.get("symbol").copied().unwrap_or("").to_owned();
        let body = match path {
            "/api/v3/klines" => {
                let s = self.state.lock().unwrap();
                match s.trades.get(&symbol) {
                    // Before any trade: one closed bar a minute ago, as history.
                    None => {
                        let minute = (now_ms() / 60_000 - 1) * 60_000;
                        json!([[
                            minute,
                            "100.0",
                            "101.0",
                            "99.0",
                            "100.5",
                            "3.0",
                            minute + 59_999,
                            "300.0",
                            3,
                            "1.0",
                            "100.0",
                            "0"
                        ]])
                    }
                    Some(trades) => klines_of(trades, &q),
                }
            }
            "/api/v3/historicalTrades" => {
                let from: u64 = q.get("fromId").and_then(|v| v.parse().ok()).unwrap_or(0);
                let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(500);
                let s = self.state.lock().unwrap();
                let rows: Vec<Value> = s
                    .trades
                    .get(&symbol)
                    .into_iter()
                    .flatten()
                    .filter(|t| t["id"].as_u64().unwrap() >= from)
                    .take(limit)
                    .cloned()
                    .collect();
                Value::Array(rows)
            }
            // The documented shape: every symbol with its status, assets and filters (abridged to two).
            "/api/v3/exchangeInfo" => {
                self.state.lock().unwrap().exchange_info_requests += 1;
                let info = |symbol: &str, base: &str, quote: &str, status: &str| {
                    json!({"symbol": symbol, "status": status, "baseAsset": base, "baseAssetPrecision": 8,
                        "quoteAsset": quote, "quotePrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
                        "isSpotTradingAllowed": true, "permissions": [],
                        "filters": [
                            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"}]})
                };
                json!({"timezone": "UTC", "serverTime": now_ms(), "rateLimits": [], "exchangeFilters": [],
                    "symbols": [info("BTCUSDT", "BTC", "USDT", "TRADING"), info("ETHBTC", "ETH", "BTC", "TRADING"),
                        info("ETHUSDT", "ETH", "USDT", "TRADING"), info("LUNAUSDT", "LUNA", "USDT", "BREAK")]})
            }
            _ => json!({"code": -1, "msg": "unknown path"}),
        };
        let body = body.to_string();
        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        let _ = tcp.write_all(resp.as_bytes()).await;
    }

    /// Sends a frame, as is, on every connection carrying `symbol`.
    fn send(&self, symbol: &str, msg: Message) {
        for conn in self.state.lock().unwrap().open.values() {
            if conn.symbols.contains(symbol) {
                let _ = conn.tx.send(Cmd::Send(msg.clone()));
            }
        }
    }

    /// Sends a stream event on every connection carrying `symbol`, wrapped on combined streams.
    fn send_event(&self, symbol: &str, event: &Value) {
        for conn in self.state.lock().unwrap().open.values() {
            if conn.symbols.contains(symbol) {
                let frame = if conn.combined {
                    json!({"stream": format!("{}@trade", symbol.to_ascii_lowercase()), "data": event})
                } else {
                    event.clone()
                };
                let _ = conn.tx.send(Cmd::Send(Message::text(frame.to_string())));
            }
        }
    }

    /// Records a trade as executed (REST can serve it); `stream` also sends it on the trade stream.
    fn trade(&self, symbol: &str, id: u64, price: f64, qty: f64, stream: bool) {
        self.trade_at(symbol, id, price, qty, now_ms(), stream)
    }

    fn trade_at(&self, symbol: &str, id: u64, price: f64, qty: f64, ts: i64, stream: bool) {
        let row = json!({"id": id, "price": format!("{price:.8}"), "qty": format!("{qty:.8}"), "quoteQty": "0", "time": ts, "isBuyerMaker": id & 1 == 0, "isBestMatch": true});
        self.state.lock().unwrap().trades.entry(symbol.to_owned()).or_default().push(row);
        if stream {
            let ev = json!({"e": "trade", "E": ts, "s": symbol, "t": id, "p": format!("{price:.8}"), "q": format!("{qty:.8}"), "T": ts, "m": id & 1 == 0, "M": true});
            self.send_event(symbol, &ev);
        }
    }

    fn drop_connections(&self, symbol: &str) {
        for conn in self.state.lock().unwrap().open.values() {
            if conn.symbols.contains(symbol) {
                let _ = conn.tx.send(Cmd::Drop);
            }
        }
    }

    fn accepted(&self, symbol: &str) -> usize {
        self.state.lock().unwrap().accepted.get(symbol).copied().unwrap_or(0)
    }

    fn accepted_total(&self) -> usize {
        self.state.lock().unwrap().accepted.values().sum()
    }

    fn open(&self, symbol: &str) -> usize {
        self.state.lock().unwrap().open.values().filter(|c| c.symbols.contains(symbol)).count()
    }

    /// Ids of the open connections carrying `symbol`.
    fn carrying(&self, symbol: &str) -> Vec<u64> {
        self.state.lock().unwrap().open.iter().filter(|(_, c)| c.symbols.contains(symbol)).map(|(id, _)| *id).collect()
    }

    /// Open connections, each as its sorted symbols.
    fn connections(&self) -> Vec<Vec<String>> {
        let s = self.state.lock().unwrap();
        let mut conns: Vec<Vec<String>> = s
            .open
            .values()
            .map(|c| c.symbols.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect())
            .collect();
        conns.sort();
        conns
    }

    fn requests(&self) -> Vec<(String, Vec<String>)> {
        self.state.lock().unwrap().requests.clone()
    }

    fn pongs(&self) -> Vec<(Instant, Vec<u8>)> {
        self.state.lock().unwrap().pongs.clone()
    }
}

/// `/api/v3/klines` rows for `interval` with open times in `[startTime, endTime]`, made from the executed
/// trades as Binance makes them (buckets without trades are left out).
fn klines_of(trades: &[Value], q: &HashMap<&str, &str>) -> Value {
    let Ok(interval) = q.get("interval").copied().unwrap_or("").parse::<candlecast_actors::model::Interval>() else {
        return json!({"code": -1120, "msg": "Invalid interval."});
    };
    let param = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (start, end) = (param("startTime").unwrap_or(0), param("endTime").unwrap_or(i64::MAX));
    let mut buckets: std::collections::BTreeMap<i64, (f64, f64, f64, f64, f64, u64)> = Default::default();
    for t in trades {
        let ts = t["time"].as_i64().unwrap();
        let open_time = interval.align(ts);
        if open_time < start || open_time > end {
            continue;
        }
        let (price, qty): (f64, f64) =
            (t["price"].as_str().unwrap().parse().unwrap(), t["qty"].as_str().unwrap().parse().unwrap());
        let b = buckets.entry(open_time).or_insert((price, price, price, price, 0.0, 0));
        (b.1, b.2, b.3, b.4, b.5) = (b.1.max(price), b.2.min(price), price, b.4 + qty, b.5 + 1);
    }
    let rows: Vec<Value> = buckets
        .into_iter()
        .map(|(open, (o, h, l, c, v, n))| {
            json!([
                open,
                o.to_string(),
                h.to_string(),
                l.to_string(),
                c.to_string(),
                v.to_string(),
                open + interval.millis() - 1,
                "0",
                n,
                "0",
                "0",
                "0"
            ])
        })
        .collect();
    Value::Array(rows)
}

fn now_ms() -> i64 {
    candlecast_actors::model::now_ms()
}

/// Polls until `check` holds, or panics with `what` after `secs`.
async fn eventually<F: FnMut() -> bool>(secs: u64, what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn feed(server: &TestServer, symbol: &str) -> Value {
    let (_, body) = server.get_json("/api/feeds").await;
    body["feeds"].as_array().unwrap().iter().find(|f| f["symbol"] == symbol).cloned().unwrap_or(Value::Null)
}

/// Trades and volume in the 1s bars of `symbol` (the backfill has no 1s bars: all of it is live).
async fn live_totals(server: &TestServer, symbol: &str) -> (u64, f64) {
    let (_, body) = server.get_json(&format!("/api/historical/{symbol}?interval=1s&limit=300")).await;
    let bars = body["data"].as_array().cloned().unwrap_or_default();
    (bars.iter().map(|b| b["trades"].as_u64().unwrap()).sum(), bars.iter().map(|b| b["volume"].as_f64().unwrap()).sum())
}

async fn wait_totals(server: &TestServer, symbol: &str, trades: u64) -> (u64, f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = live_totals(server, symbol).await;
        if t.0 >= trades || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_become_bars_gaps_are_filled_bad_frames_skipped_drops_reconnected() {
    let fake = FakeBinance::start().await;
    let server = TestServer::start(&fake.overrides(&["BTCUSDT"])).await;
    eventually(10, "the adapter's connection", || fake.open("BTCUSDT") == 1).await;

    // Stream trades 1..=5: they become bars, with the backfilled kline before them.
    for id in 1..=5 {
        fake.trade("BTCUSDT", id, 100.0 + id as f64, 0.5, true);
    }
    assert_eq!(wait_totals(&server, "BTCUSDT", 5).await, (5, 2.5));
    let (_, hist) = server.get_json("/api/historical/BTCUSDT?interval=1m&limit=5").await;
    let m1 = hist["data"].as_array().unwrap();
    assert!(m1.iter().any(|b| b["trades"] == 3 && b["closed"] == true), "the kline from REST is history: {hist}");

    // Trades 6..=8 are executed but never streamed; trade 9 reveals the gap, REST fills it.
    for id in 6..=8 {
        fake.trade("BTCUSDT", id, 110.0, 1.0, false);
    }
    fake.trade("BTCUSDT", 9, 111.0, 1.0, true);
    assert_eq!(wait_totals(&server, "BTCUSDT", 9).await, (9, 6.5), "bars include the missing trades");
    assert_eq!(feed(&server, "BTCUSDT").await["gap_trades_filled"], 3);

    // A malformed frame is counted and skipped; the connection stays.
    fake.send("BTCUSDT", Message::text("{\"e\":\"trade\",\"t\":"));
    fake.trade("BTCUSDT", 10, 112.0, 1.0, true);
    assert_eq!(wait_totals(&server, "BTCUSDT", 10).await.0, 10);
    let f = feed(&server, "BTCUSDT").await;
    assert_eq!((f["malformed"].as_u64(), f["reconnects"].as_u64()), (Some(1), Some(0)), "{f}");
    assert_eq!(fake.accepted("BTCUSDT"), 1, "no reconnect for a bad frame");

    // The server drops the connection: the adapter reconnects with backoff and trades resume.
    fake.drop_connections("BTCUSDT");
    eventually(10, "a reconnect", || fake.accepted("BTCUSDT") == 2 && fake.open("BTCUSDT") == 1).await;
    let f = feed(&server, "BTCUSDT").await;
    assert_eq!((f["reconnects"].as_u64(), f["state"].as_str()), (Some(1), Some("connected")), "{f}");
    fake.trade("BTCUSDT", 11, 113.0, 1.0, true);
    assert_eq!(wait_totals(&server, "BTCUSDT", 11).await.0, 11);

    // A serverShutdown notice: the adapter reconnects at once instead of waiting for the cut.
    fake.send("BTCUSDT", Message::text(json!({"e": "serverShutdown", "E": now_ms()}).to_string()));
    eventually(10, "a reconnect after serverShutdown", || fake.accepted("BTCUSDT") == 3 && fake.open("BTCUSDT") == 1)
        .await;
    let stats = server.stats().await;
    let in_stats = stats["feeds"].as_array().unwrap().iter().find(|f| f["symbol"] == "BTCUSDT").cloned().unwrap();
    assert_eq!(in_stats["reconnects"], 2, "{in_stats}");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("candlecast_feed_reconnects_total{source=\"binance\",symbol=\"BTCUSDT\"} 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_get_their_payload_back_at_most_five_messages_a_second() {
    let fake = FakeBinance::start().await;
    let _server = TestServer::start(&fake.overrides(&["ETHUSDT"])).await;
    eventually(10, "the adapter's connection", || fake.open("ETHUSDT") == 1).await;

    fake.send("ETHUSDT", Message::Ping(b"hello".to_vec().into()));
    eventually(5, "a pong", || fake.pongs().iter().any(|(_, p)| p == b"hello")).await;

    // A burst of 15 pings in one go: every one is answered with its own payload, paced to 5/s.
    let start = fake.pongs().len();
    for i in 0..15 {
        fake.send("ETHUSDT", Message::Ping(format!("p{i}").into_bytes().into()));
    }
    eventually(10, "15 pongs", || fake.pongs().len() >= start + 15).await;
    let pongs = fake.pongs()[start..].to_vec();
    let payloads: Vec<String> = pongs.iter().map(|(_, p)| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(payloads, (0..15).map(|i| format!("p{i}")).collect::<Vec<_>>());
    let times: Vec<Instant> = fake.pongs().iter().map(|(t, _)| *t).collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(1)).count();
        assert!(in_window <= 5, "{in_window} messages within one second");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_connection_per_symbol_whatever_the_clients_and_feeds_change_at_run_time() {
    let fake = FakeBinance::start().await;
    let mut overrides = fake.overrides(&["BTCUSDT", "SOLUSDT"]);
    overrides.push(("admin.keys", Toml::Array(vec![Toml::String("s3cret".into())])));
    let server = TestServer::start(&overrides).await;
    eventually(10, "two connections", || fake.open("BTCUSDT") == 1 && fake.open("SOLUSDT") == 1).await;

    let mut first = Client::connect(&server).await;
    first.subscribe(&["BTCUSDT", "SOLUSDT"], "1m").await;
    assert_eq!(fake.accepted_total(), 2, "1 client, 2 symbols: 2 upstream connections");

    // 1,000 clients watching the same two symbols, connected 100 at a time.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let batch = (0..100).map(|_| async {
            let mut c = Client::connect(&server).await;
            c.subscribe(&["BTCUSDT", "SOLUSDT"], "1m").await;
            c
        });
        clients.extend(futures_util::future::join_all(batch).await);
    }
    assert_eq!(server.stats().await["total_clients"], 1_001);
    assert_eq!(fake.accepted_total(), 2, "1,001 clients, 2 symbols: still 2 upstream connections");
    drop(clients);

    // Adding a symbol opens its connection; removing it closes it.
    let http = reqwest::Client::new();
    let add = http
        .post(server.url("/api/feeds"))
        .bearer_auth("s3cret")
        .json(&json!({"source": "binance", "symbol": "ADAUSDT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), 201);
    eventually(10, "the new symbol's connection", || fake.open("ADAUSDT") == 1).await;
    assert_eq!(fake.accepted_total(), 3);
    let again = http
        .post(server.url("/api/feeds"))
        .bearer_auth("s3cret")
        .json(&json!({"source": "binance", "symbol": "ADAUSDT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "one feed per symbol");
    let del = http.delete(server.url("/api/feeds/binance/ADAUSDT")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(del.status(), 200);
    eventually(10, "the removed symbol's connection to close", || fake.open("ADAUSDT") == 0).await;
    assert!(feed(&server, "ADAUSDT").await.is_null());
    let gone = http.delete(server.url("/api/feeds/binance/ADAUSDT")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(gone.status(), 404);

    // Wrong and missing keys: 401, counted, never logged.
    let wrong = http.delete(server.url("/api/feeds/binance/BTCUSDT")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let missing = http
        .post(server.url("/api/feeds"))
        .json(&json!({"source": "binance", "symbol": "XRPUSDT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(server.stats().await["admin_refused"], 2);
    assert_eq!(fake.open("BTCUSDT"), 1, "refused requests changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_are_disabled_without_keys() {
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())]))]).await;
    let http = reqwest::Client::new();
    let r = http
        .post(server.url("/api/feeds"))
        .bearer_auth("anything")
        .json(&json!({"source": "simulated", "symbol": "ETHUSDT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "admin_disabled");
    assert!(body["detail"].as_str().unwrap().contains("admin is disabled"));
    assert_eq!(server.stats().await["admin_refused"], 1);
    let (status, feeds) = server.get_json("/api/feeds").await;
    assert_eq!(status, 200);
    assert_eq!(feeds["feeds"][0]["source"], "simulated");
    assert_eq!(feeds["feeds"][0]["state"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_renewed_before_the_24_hour_cut() {
    let fake = FakeBinance::start().await;
    let mut overrides = fake.overrides(&["BNBUSDT"]);
    // 1 s stands in for the default 23 h 50 min.
    overrides.push(("feed.binance.reconnect_after_secs", Toml::Integer(1)));
    let server = TestServer::start(&overrides).await;
    eventually(10, "two renewals", || fake.accepted("BNBUSDT") >= 3).await;
    assert!(feed(&server, "BNBUSDT").await["reconnects"].as_u64() >= Some(2));
    eventually(10, "the open connection", || fake.open("BNBUSDT") == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_too_large_to_fetch_is_rebuilt_from_klines() {
    let fake = FakeBinance::start().await;
    let mut overrides = fake.overrides(&["ETHUSDT"]);
    // Any gap of more than two trades is "too large": the adapter must rebuild from klines instead.
    overrides.push(("feed.binance.max_gap_trades", Toml::Integer(2)));
    let server = TestServer::start(&overrides).await;
    eventually(10, "the adapter's connection", || fake.open("ETHUSDT") == 1).await;

    fake.trade("ETHUSDT", 1, 100.0, 0.5, true);
    assert_eq!(wait_totals(&server, "ETHUSDT", 1).await, (1, 0.5));
    // Trades 2..=6 are executed over the next seconds but never streamed.
    let first_missed = now_ms() + 1_000;
    for id in 2..=6 {
        fake.trade_at("ETHUSDT", id, 100.0 + id as f64, 1.0, first_missed + (id as i64 - 2) * 300, false);
    }
    // Well after their seconds closed (past the 2 s grace), trade 7 reveals the gap.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    fake.trade("ETHUSDT", 7, 110.0, 0.25, true);

    // Every second's bar now holds what the exchange executed: the 5 missed trades came from klines.
    assert_eq!(wait_totals(&server, "ETHUSDT", 7).await, (7, 5.75), "1s bars include the rebuilt seconds");
    let f = feed(&server, "ETHUSDT").await;
    assert_eq!(f["gap_trades_filled"], 0, "{f}");
    assert_eq!(f["gaps_unfilled"], 1, "{f}");
    assert!(f["bars_rebuilt"].as_u64().unwrap() >= 2, "at least the seconds of the missed trades: {f}");
    let (_, hist) = server.get_json("/api/historical/ETHUSDT?interval=1s&limit=300").await;
    let rebuilt: Vec<&Value> =
        hist["data"].as_array().unwrap().iter().filter(|b| b["high"].as_f64() == Some(106.0)).collect();
    assert_eq!(rebuilt.len(), 1, "the second of trade 6 (price 106) is a closed bar: {hist}");
    assert_eq!(rebuilt[0]["closed"], true);

    // A gap small enough to fetch, but older than the grace window when it is found (a long reconnect):
    // fetched trades would be dropped as late, so the seconds are rebuilt too.
    for id in 8..=9 {
        fake.trade("ETHUSDT", id, 105.0, 2.0, false);
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    fake.trade("ETHUSDT", 10, 105.0, 0.25, true);
    assert_eq!(wait_totals(&server, "ETHUSDT", 10).await, (10, 10.0), "the fetched trades are in the bars");
    let f = feed(&server, "ETHUSDT").await;
    assert_eq!((f["gap_trades_filled"].as_u64(), f["gaps_unfilled"].as_u64()), (Some(2), Some(1)), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_streams_share_connections_and_symbols_join_and_leave_by_request() {
    let fake = FakeBinance::start().await;
    let mut overrides = fake.overrides(&["BTCUSDT", "ETHUSDT", "SOLUSDT"]);
    overrides.push(("feed.binance.combined", Toml::Boolean(true)));
    overrides.push(("feed.binance.streams_per_connection", Toml::Integer(2)));
    overrides.push(("admin.keys", Toml::Array(vec![Toml::String("admin-key".into())])));
    let server = TestServer::start(&overrides).await;

    // Three symbols, two streams per connection: two connections carry all three.
    eventually(10, "three symbols on two shared connections", || {
        let conns = fake.connections();
        conns.len() == 2 && conns.iter().map(Vec::len).sum::<usize>() == 3
    })
    .await;
    for (i, symbol) in ["BTCUSDT", "ETHUSDT", "SOLUSDT"].into_iter().enumerate() {
        fake.trade(symbol, 1, 100.0 + i as f64, 0.5, true);
        fake.trade(symbol, 2, 100.0 + i as f64, 0.5, true);
    }
    for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        assert_eq!(wait_totals(&server, symbol, 2).await, (2, 1.0), "{symbol}'s trades arrive wrapped and routed");
    }

    // A symbol added at run time joins a connection with room by SUBSCRIBE: no new connection.
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/api/feeds"))
        .bearer_auth("admin-key")
        .json(&json!({"source": "binance", "symbol": "XRPUSDT"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    eventually(10, "XRPUSDT subscribed on a shared connection", || fake.open("XRPUSDT") == 1).await;
    assert_eq!(fake.connections().len(), 2);
    assert!(
        fake.requests().contains(&("SUBSCRIBE".to_owned(), vec!["xrpusdt@trade".to_owned()])),
        "{:?}",
        fake.requests()
    );
    fake.trade("XRPUSDT", 1, 0.5, 10.0, true);
    assert_eq!(wait_totals(&server, "XRPUSDT", 1).await, (1, 10.0));

    // Removing a feed leaves its connection by UNSUBSCRIBE.
    let resp = http.delete(server.url("/api/feeds/binance/ETHUSDT")).bearer_auth("admin-key").send().await.unwrap();
    assert!(resp.status().is_success());
    eventually(10, "ETHUSDT unsubscribed", || fake.open("ETHUSDT") == 0).await;
    assert!(
        fake.requests().iter().any(|(m, p)| m == "UNSUBSCRIBE" && p == &vec!["ethusdt@trade".to_owned()]),
        "{:?}",
        fake.requests()
    );

    // A dropped shared connection: its symbols reconnect and trades missed meanwhile are fetched.
    let before = fake.carrying("BTCUSDT");
    fake.drop_connections("BTCUSDT");
    fake.trade("BTCUSDT", 3, 101.0, 0.5, false);
    eventually(10, "BTCUSDT back on a shared connection", || {
        let now = fake.carrying("BTCUSDT");
        now.len() == 1 && !before.contains(&now[0])
    })
    .await;
    fake.trade("BTCUSDT", 4, 101.0, 0.5, true);
    assert_eq!(wait_totals(&server, "BTCUSDT", 4).await, (4, 2.0), "the gap during the reconnect is filled");
    let f = feed(&server, "BTCUSDT").await;
    assert_eq!((f["reconnects"].as_u64(), f["gap_trades_filled"].as_u64()), (Some(1), Some(1)), "{f}");
    // Every symbol that shared the dropped connection is back too, never more than two per connection.
    eventually(10, "BTCUSDT, SOLUSDT and XRPUSDT all carried again", || {
        let conns = fake.connections();
        conns.iter().flatten().filter(|s| *s != "ETHUSDT").count() == 3 && conns.iter().all(|c| c.len() <= 2)
    })
    .await;
}

/// Binance's exchangeInfo fills the symbol search when a Binance feed runs: `GET /api/symbols?q=eth` finds
/// pairs no feed carries, with their exchange and filters; symbols that stopped trading are left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_info_fills_the_symbol_search() {
    let fake = FakeBinance::start().await;
    let server = TestServer::start(&fake.overrides(&["BTCUSDT"])).await;
    let mut found = Value::Null;
    for _ in 0..200 {
        found = server.get_json("/api/symbols?q=eth&exchange=BINANCE").await.1;
        if found["total"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let symbols: Vec<&str> =
        found["results"].as_array().unwrap().iter().map(|r| r["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, ["ETHBTC", "ETHUSDT"], "{found}");
    assert_eq!(
        (found["results"][0]["name"].as_str(), found["results"][0]["tick_size"].as_f64()),
        (Some("ETH/BTC"), Some(0.01))
    );
    assert_eq!(found["results"][0]["live"], false);
    let btc = server.get_json("/api/symbols?q=BTCUSDT").await.1;
    assert_eq!((btc["total"].as_u64(), btc["results"][0]["live"].as_bool()), (Some(1), Some(true)), "{btc}");
    assert_eq!(server.get_json("/api/symbols?q=LUNA").await.1["total"], 0, "not trading");
    assert_eq!(fake.state.lock().unwrap().exchange_info_requests, 1, "asked once");
}
