//! The IQFeed connector against a LOCAL stand-in for IQConnect. IQConnect (DTN's Windows client) cannot
//! run here: `FakeIqConnect` below listens on three 127.0.0.1 ports and speaks IQConnect's documented
//! line protocol 6.2 — Level 1 (`S,SET PROTOCOL`, `S,SELECT UPDATE FIELDS`, `w<SYMBOL>`, `P,`/`Q,`/`T,`/
//! `n,`/`S,SERVER DISCONNECTED`), Lookup (`HIT`/`HDX` with request ids, `!ENDMSG!`, `E,` replies) and
//! Admin (`S,STATS` once in a while) — and the real candlecast server is started with
//! `feed.source = "iqfeed"` pointed at it.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candlecast_actors::feed::utc_ms_to_eastern;
use common::feeds::{bind, eventually, feed_until, now_ms, wait_totals};
use common::{TestServer, Toml};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

enum Cmd {
    Send(String),
    /// Vanish, as IQConnect does when it exits.
    Drop,
}

struct Level1Conn {
    /// The update fields the client selected (IQConnect's reply puts Symbol first).
    fields: Vec<String>,
    watched: HashSet<String>,
    tx: mpsc::UnboundedSender<Cmd>,
}

#[derive(Default)]
struct FakeState {
    /// Every line received, prefixed with the port: `L1 `, `LK `, `AD `.
    received: Vec<String>,
    level1_accepted: usize,
    level1: HashMap<u64, Level1Conn>,
    next_conn: u64,
    /// Symbols IQFeed "does not know": a watch gets `n,<SYMBOL>`.
    unknown: HashSet<String>,
    /// Lookup replies per (request type, symbol): rows (after `LH,`) or an error reason.
    history: HashMap<(String, String), Result<Vec<String>, String>>,
    /// What `S,STATS` says in its status field.
    not_connected: bool,
}

#[derive(Clone)]
struct FakeIqConnect {
    level1: SocketAddr,
    lookup: SocketAddr,
    admin: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeIqConnect {
    async fn start() -> FakeIqConnect {
        let (l1, lk, ad) = (bind().await, bind().await, bind().await);
        let fake = FakeIqConnect {
            level1: l1.local_addr().unwrap(),
            lookup: lk.local_addr().unwrap(),
            admin: ad.local_addr().unwrap(),
            state: Arc::default(),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l1.accept().await {
                tokio::spawn(f.clone().serve_level1(tcp));
            }
        });
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = lk.accept().await {
                tokio::spawn(f.clone().serve_lookup(tcp));
            }
        });
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = ad.accept().await {
                tokio::spawn(f.clone().serve_admin(tcp));
            }
        });
        fake
    }

    fn overrides(&self, symbols: &[&str]) -> Vec<(&'static str, Toml)> {
        vec![
            ("feed.source", Toml::String("iqfeed".into())),
            ("feed.symbols", Toml::Array(symbols.iter().map(|s| Toml::String(s.to_string())).collect())),
            ("feed.iqfeed.level1_port", Toml::Integer(self.level1.port().into())),
            ("feed.iqfeed.lookup_port", Toml::Integer(self.lookup.port().into())),
            ("feed.iqfeed.admin_port", Toml::Integer(self.admin.port().into())),
            ("feed.iqfeed.backfill_days", Toml::Integer(1)),
            ("feed.iqfeed.backfill_fine_hours", Toml::Integer(0)),
            ("feed.iqfeed.backfill_daily_days", Toml::Integer(0)),
        ]
    }

    fn record(&self, port: &str, line: &str) {
        self.state.lock().unwrap().received.push(format!("{port} {line}"));
    }

    async fn serve_level1(self, tcp: TcpStream) {
        let (r, mut w) = tcp.into_split();
        let mut lines = BufReader::new(r).lines();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = {
            let mut s = self.state.lock().unwrap();
            s.level1_accepted += 1;
            s.next_conn += 1;
            let id = s.next_conn;
            s.level1.insert(id, Level1Conn { fields: Vec::new(), watched: HashSet::new(), tx: tx.clone() });
            id
        };
        // What IQConnect says on every new Level 1 connection.
        for hello in ["S,KEY,12345", "S,SERVER CONNECTED", "S,IP,66.112.156.222 60002"] {
            let _ = tx.send(Cmd::Send(hello.into()));
        }
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(line)) => if w.write_all(format!("{line}\r\n").as_bytes()).await.is_err() { break },
                    Some(Cmd::Drop) | None => break,
                },
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    self.record("L1", &line);
                    let reply = self.level1_reply(id, &line);
                    for r in reply {
                        let _ = tx.send(Cmd::Send(r));
                    }
                }
            }
        }
        self.state.lock().unwrap().level1.remove(&id);
    }

    fn level1_reply(&self, id: u64, line: &str) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let unknown = s.unknown.clone();
        let Some(conn) = s.level1.get_mut(&id) else { return Vec::new() };
        if let Some(v) = line.strip_prefix("S,SET PROTOCOL,") {
            return vec![format!("S,CURRENT PROTOCOL,{v}")];
        }
        if let Some(fields) = line.strip_prefix("S,SELECT UPDATE FIELDS,") {
            conn.fields = std::iter::once("Symbol").chain(fields.split(',')).map(String::from).collect();
            return vec![format!("S,CURRENT UPDATE FIELDNAMES,{}", conn.fields.join(","))];
        }
        if let Some(symbol) = line.strip_prefix('w') {
            if unknown.contains(symbol) {
                return vec![format!("n,{symbol}")];
            }
            conn.watched.insert(symbol.to_owned());
            // The summary of the last trade before the watch: never a new trade.
            let old = now_ms() - 60_000;
            return vec![update_line(&conn.fields, 'P', symbol, 99.0, 10.0, old, 0, "")];
        }
        Vec::new()
    }

    async fn serve_lookup(self, tcp: TcpStream) {
        let (r, mut w) = tcp.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            self.record("LK", &line);
            let f: Vec<&str> = line.split(',').collect();
            let reply: Vec<String> = match f[0] {
                "S" if line.starts_with("S,SET PROTOCOL,") => vec![format!("S,CURRENT PROTOCOL,{}", f[2])],
                // HIT,sym,interval,begin,end,max,bft,eft,direction,ID,...  HDX,sym,max,direction,ID,...
                // HTT,sym,begin,end,max,bft,eft,direction,ID,...
                "HIT" | "HDX" | "HTT" => {
                    let id = match f[0] {
                        "HIT" => f[9],
                        "HTT" => f[8],
                        _ => f[4],
                    };
                    let answer = self.state.lock().unwrap().history.get(&(f[0].to_owned(), f[1].to_owned())).cloned();
                    match answer.unwrap_or_else(|| Err("!NO_DATA!".into())) {
                        Ok(rows) => {
                            rows.iter().map(|r| format!("{id},LH,{r},")).chain([format!("{id},!ENDMSG!,")]).collect()
                        }
                        Err(reason) => vec![format!("{id},E,{reason},"), format!("{id},!ENDMSG!,")],
                    }
                }
                // SLM,ID (listed markets) and SST,ID (security types): id, short name, long name.
                "SLM" => catalogue(
                    f[1],
                    &["5,NASDAQ,Nasdaq Global Select Market,5,NASDAQ", "7,NYSE,New York Stock Exchange,7,NYSE"],
                ),
                "SST" => catalogue(f[1], &["1,EQUITY,Equity", "2,IEOPTION,Index/Equity Option"]),
                // SBF,field,search,filter type,filter value,ID: symbols containing the search string.
                "SBF" if f.len() >= 6 => {
                    let (search, id) = (f[2], f[5]);
                    let listed = [
                        "AAPL,5,1,APPLE INC.",
                        "AAPW,5,1,ROUNDHILL AAPL WEEKLYPAY ETF",
                        "IBM,7,1,INTERNATIONAL BUSINESS MACHINES, CORP",
                        "AAPL2512C200,5,2,AAPL DEC 2025 200 CALL",
                    ];
                    let rows = listed.iter().filter(|r| r.split(',').next().unwrap().contains(search));
                    rows.map(|r| format!("{id},LS,{r},")).chain([format!("{id},!ENDMSG!,")]).collect()
                }
                _ => vec![format!("E,!SYNTAX_ERROR!,")],
            };
            for r in reply {
                if w.write_all(format!("{r}\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }

    /// `S,STATS` at once, then every 50 ms, with the status the test sets.
    async fn serve_admin(self, tcp: TcpStream) {
        let (r, mut w) = tcp.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let status = if self.state.lock().unwrap().not_connected { "Not Connected" } else { "Connected" };
                    let stats = format!("S,STATS,66.112.156.222,60002,1300,1,1,0,0,0,Dec 05 9:29AM,Dec 05 09:30AM,{status},6.2.0.25,123456-1,1.5,0.1,0.1,0.5,0.0,0.0");
                    if w.write_all(format!("{stats}\r\n").as_bytes()).await.is_err() { return }
                }
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { return };
                    self.record("AD", &line);
                }
            }
        }
    }

    /// Sends `line` on every Level 1 connection watching `symbol`.
    fn send(&self, symbol: &str, line: impl Fn(&[String]) -> String) {
        for conn in self.state.lock().unwrap().level1.values().filter(|c| c.watched.contains(symbol)) {
            let _ = conn.tx.send(Cmd::Send(line(&conn.fields)));
        }
    }

    /// A `Q,` update carrying a trade (Message Contents `C`).
    fn trade(&self, symbol: &str, tick: u64, price: f64, size: f64) {
        let at = now_ms();
        self.send(symbol, |f| update_line(f, 'Q', symbol, price, size, at, tick, "Cbav"));
    }

    /// A `Q,` update of the bid only: the trade fields repeat the last trade's.
    fn quote(&self, symbol: &str, tick: u64, price: f64, size: f64) {
        let at = now_ms();
        self.send(symbol, |f| update_line(f, 'Q', symbol, price, size, at, tick, "b"));
    }

    fn raw(&self, symbol: &str, line: &str) {
        self.send(symbol, |_| line.to_owned());
    }

    fn drop_level1(&self) {
        for conn in self.state.lock().unwrap().level1.values() {
            let _ = conn.tx.send(Cmd::Drop);
        }
    }

    fn received(&self, port: &str) -> Vec<String> {
        let prefix = format!("{port} ");
        let s = self.state.lock().unwrap();
        s.received.iter().filter_map(|l| l.strip_prefix(&prefix)).map(String::from).collect()
    }

    fn level1_accepted(&self) -> usize {
        self.state.lock().unwrap().level1_accepted
    }

    fn level1_open(&self, symbol: &str) -> usize {
        self.state.lock().unwrap().level1.values().filter(|c| c.watched.contains(symbol)).count()
    }

    fn set_history(&self, kind: &str, symbol: &str, answer: Result<Vec<String>, String>) {
        self.state.lock().unwrap().history.insert((kind.into(), symbol.into()), answer);
    }
}

/// A `Q,`/`P,` line with the values of the client's selected `fields`, Eastern time as IQFeed sends it.
#[allow(clippy::too_many_arguments)]
fn update_line(
    fields: &[String],
    kind: char,
    symbol: &str,
    price: f64,
    size: f64,
    at_ms: i64,
    tick: u64,
    contents: &str,
) -> String {
    let et = utc_ms_to_eastern(at_ms).unwrap();
    let values: Vec<String> = fields
        .iter()
        .map(|name| match name.as_str() {
            "Symbol" => symbol.to_owned(),
            "Most Recent Trade" => format!("{price:.4}"),
            "Most Recent Trade Size" => format!("{size}"),
            "Most Recent Trade Time" => et.format("%H:%M:%S%.6f").to_string(),
            "Most Recent Trade Date" => et.format("%m/%d/%Y").to_string(),
            "Most Recent Trade Market Center" => "11".into(),
            "Most Recent Trade Aggressor" => "1".into(),
            "Message Contents" => contents.into(),
            "TickID" => tick.to_string(),
            "Total Volume" => "123456".into(),
            "Bid" => format!("{:.4}", price - 0.01),
            "Ask" => format!("{:.4}", price + 0.01),
            _ => String::new(),
        })
        .collect();
    format!("{kind},{}", values.join(","))
}

/// A catalogue reply (`SLM` / `SST`) of request `id`.
fn catalogue(id: &str, rows: &[&str]) -> Vec<String> {
    rows.iter().map(|r| format!("{id},LS,{r},")).chain([format!("{id},!ENDMSG!,")]).collect()
}

/// An `HIT` row for the minute starting `start_ms`: time (Eastern), high, low, open, close, total volume,
/// period volume, number of trades.
fn minute_row(start_ms: i64, open: f64, close: f64, volume: u64, trades: u64) -> String {
    let et = utc_ms_to_eastern(start_ms).unwrap().format("%Y-%m-%d %H:%M:%S");
    let (high, low) = (open.max(close) + 0.5, open.min(close) - 0.5);
    format!("{et},{high:.2},{low:.2},{open:.2},{close:.2},9999999,{volume},{trades}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_backfill_and_only_trade_updates_become_trades() {
    let fake = FakeIqConnect::start().await;
    let minute = 60_000;
    let this_minute = now_ms() / minute * minute;
    let rows = vec![
        minute_row(this_minute - 3 * minute, 100.0, 101.0, 500, 7),
        minute_row(this_minute - 2 * minute, 101.0, 102.0, 600, 8),
    ];
    fake.set_history("HIT", "AAPL", Ok(rows));
    // A daily bar (HDX) of the trading date two days ago: our 1d bucket of that date.
    let day = utc_ms_to_eastern(now_ms() - 2 * 86_400_000).unwrap().date();
    let day_start = day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    fake.set_history("HDX", "AAPL", Ok(vec![format!("{},120.00,80.00,90.00,110.00,777000,0", day.format("%Y-%m-%d"))]));
    let mut overrides = fake.overrides(&["AAPL"]);
    overrides.push(("feed.iqfeed.backfill_daily_days", Toml::Integer(10)));
    let server = TestServer::start(&overrides).await;
    eventually(20, "the watch", || fake.level1_open("AAPL") == 1).await;

    // The handshake, in order, on the Level 1 port; protocol and history requests on the Lookup port.
    let l1 = fake.received("L1");
    assert_eq!(l1[0], "S,SET PROTOCOL,6.2", "{l1:?}");
    assert!(l1[1].starts_with("S,SELECT UPDATE FIELDS,Most Recent Trade,Most Recent Trade Size,"), "{l1:?}");
    assert!(l1[1].contains(",TickID,") && l1[1].contains(",Message Contents,"), "{l1:?}");
    assert_eq!(l1[2], "wAAPL", "{l1:?}");
    let lookup = fake.received("LK");
    assert_eq!(lookup[0], "S,SET PROTOCOL,6.2", "{lookup:?}");
    assert!(lookup[1].starts_with("HIT,AAPL,60,") && lookup[1].ends_with(",s,1"), "{lookup:?}");
    assert!(lookup[2].starts_with("HDX,AAPL,10,1,"), "{lookup:?}");
    let (_, daily) = server.get_json("/api/historical/AAPL?interval=1d&limit=10").await;
    let bar = daily["data"].as_array().unwrap().iter().find(|b| b["timestamp"].as_i64() == Some(day_start)).cloned();
    let bar = bar.unwrap_or_else(|| panic!("the HDX bar at {day_start}: {daily}"));
    assert_eq!(
        (bar["open"].as_f64(), bar["high"].as_f64(), bar["volume"].as_f64()),
        (Some(90.0), Some(120.0), Some(777000.0))
    );

    // The HIT bars (Eastern times, labelled at their start) are the 1m history, at the right UTC minutes.
    let (_, hist) = server.get_json("/api/historical/AAPL?interval=1m&limit=10").await;
    let bars = hist["data"].as_array().unwrap();
    let first = bars.iter().find(|b| b["timestamp"].as_i64() == Some(this_minute - 3 * minute));
    let first = first.unwrap_or_else(|| panic!("the backfilled minute at {}: {hist}", this_minute - 3 * minute));
    assert_eq!(
        (first["open"].as_f64(), first["close"].as_f64(), first["volume"].as_f64()),
        (Some(100.0), Some(101.0), Some(500.0)),
        "{first}"
    );

    // A bid change, a timestamp, a trade, the same trade repeated, a malformed trade, another trade.
    fake.quote("AAPL", 1, 99.0, 10.0);
    fake.raw("AAPL", &format!("T,{}", utc_ms_to_eastern(now_ms()).unwrap().format("%Y%m%d %H:%M:%S")));
    fake.trade("AAPL", 2, 190.0, 100.0);
    fake.trade("AAPL", 2, 190.0, 100.0);
    fake.raw("AAPL", "Q,AAPL,not-a-price,100,09:30:00.000000,12/05/2025,11,,1,C,3,1,1,1");
    fake.quote("AAPL", 2, 190.0, 100.0);
    fake.trade("AAPL", 4, 191.0, 50.0);
    assert_eq!(wait_totals(&server, "AAPL", 2).await, (2, 150.0), "two trades; quotes, T and repeats are not");
    let f = feed_until(&server, "AAPL", "the counts", |f| f["trades"] == 2).await;
    assert_eq!(
        (f["state"].as_str(), f["malformed"].as_u64(), f["reconnects"].as_u64()),
        (Some("connected"), Some(1), Some(0)),
        "{f}"
    );
    let (_, price) = server.get_json("/api/price/AAPL").await;
    assert_eq!(price["price"].as_f64(), Some(191.0), "the last trade's price: {price}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_symbol_is_reported_and_a_lookup_error_is_not_retried() {
    let fake = FakeIqConnect::start().await;
    fake.state.lock().unwrap().unknown.insert("XYZZY".into());
    fake.set_history("HIT", "XYZZY", Err("Invalid symbol.".into()));
    fake.set_history("HIT", "MSFT", Err("Unauthorized user ID.".into()));
    // IBM: no history at all (`E,!NO_DATA!`), which is an empty reply, not an error.
    let server = TestServer::start_serving(&fake.overrides(&["XYZZY", "MSFT", "IBM"])).await;

    let f = feed_until(&server, "XYZZY", "the unknown symbol", |f| f["state"] == "failed").await;
    let why = f["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("n,XYZZY") && why.contains("does not know"), "{f}");
    let (_, health) = server.get_json("/health").await;
    assert_eq!(health["failed_feeds"], serde_json::json!(["XYZZY"]), "{health}");

    let msft = feed_until(&server, "MSFT", "MSFT connected", |f| f["state"] == "connected").await;
    let why = msft["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("Unauthorized user ID.") && why.contains("HIT"), "the lookup error is reported: {msft}");
    fake.trade("MSFT", 7, 400.0, 5.0);
    assert_eq!(wait_totals(&server, "MSFT", 1).await, (1, 5.0), "live trades flow without the history");
    let ibm = feed_until(&server, "IBM", "IBM connected", |f| f["state"] == "connected").await;
    assert_eq!(ibm["last_error"], Value::Null, "no data is not an error: {ibm}");

    // Asked once each; the feed went on instead of asking again.
    let hits = |symbol: &str| fake.received("LK").iter().filter(|l| l.starts_with(&format!("HIT,{symbol},"))).count();
    assert_eq!((hits("MSFT"), hits("XYZZY"), hits("IBM")), (1, 1, 1));
    assert_eq!(
        fake.received("L1").iter().filter(|l| *l == "wXYZZY").count(),
        1,
        "an unknown symbol is not watched again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtn_and_iqconnect_outages_are_reported_and_the_feed_resumes() {
    let fake = FakeIqConnect::start().await;
    let server = TestServer::start_serving(&fake.overrides(&["AAPL"])).await;
    eventually(20, "the watch", || fake.level1_open("AAPL") == 1).await;
    fake.trade("AAPL", 1, 190.0, 1.0);
    assert_eq!(wait_totals(&server, "AAPL", 1).await.0, 1);

    // IQConnect says it lost DTN on the Level 1 port: reconnect, reason shown, trades resume.
    fake.raw("AAPL", "S,SERVER DISCONNECTED");
    eventually(20, "a reconnect after S,SERVER DISCONNECTED", || {
        fake.level1_accepted() == 2 && fake.level1_open("AAPL") == 1
    })
    .await;
    let f = feed_until(&server, "AAPL", "reconnected", |f| f["state"] == "connected" && f["reconnects"] == 1).await;
    assert!(f["last_error"].as_str().unwrap_or_default().contains("S,SERVER DISCONNECTED"), "{f}");
    fake.trade("AAPL", 2, 190.5, 1.0);
    assert_eq!(wait_totals(&server, "AAPL", 2).await.0, 2);

    // The Admin port's S,STATS says "Not Connected": the feed lets go and stays down while it does.
    fake.state.lock().unwrap().not_connected = true;
    let f = feed_until(&server, "AAPL", "the outage", |f| {
        f["state"] == "reconnecting" && f["last_error"].as_str().is_some_and(|e| e.contains("Not Connected"))
    })
    .await;
    assert!(f["last_error"].as_str().unwrap_or_default().contains("not connected to DTN"), "{f}");
    eventually(20, "the Level 1 connection closed", || fake.level1_open("AAPL") == 0).await;
    let (_, health) = server.get_json("/health").await;
    assert_eq!(health["reconnecting_feeds"], serde_json::json!(["AAPL"]), "{health}");
    assert_eq!(fake.level1_accepted(), 2, "no Level 1 connection while DTN is away");

    // DTN back: the feed reconnects by itself and trades resume.
    fake.state.lock().unwrap().not_connected = false;
    eventually(60, "a reconnect once Connected", || fake.level1_open("AAPL") == 1).await;
    feed_until(&server, "AAPL", "connected again", |f| f["state"] == "connected").await;
    fake.trade("AAPL", 3, 191.0, 1.0);
    assert_eq!(wait_totals(&server, "AAPL", 3).await.0, 3);

    // IQConnect vanishes (the connection drops): reconnect, resume.
    let before = fake.level1_accepted();
    fake.drop_level1();
    eventually(60, "a reconnect after the drop", || {
        fake.level1_accepted() == before + 1 && fake.level1_open("AAPL") == 1
    })
    .await;
    let f = feed_until(&server, "AAPL", "connected after the drop", |f| f["state"] == "connected").await;
    assert!(f["last_error"].as_str().unwrap_or_default().contains("closed the connection"), "{f}");
    fake.trade("AAPL", 4, 192.0, 1.0);
    assert_eq!(wait_totals(&server, "AAPL", 4).await.0, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iqconnect_not_running_shows_as_reconnecting() {
    // Ports nobody listens on: bound, then freed.
    let closed = bind().await.local_addr().unwrap().port();
    let overrides = vec![
        ("feed.source", Toml::String("iqfeed".into())),
        ("feed.symbols", Toml::Array(vec![Toml::String("AAPL".into())])),
        ("feed.iqfeed.level1_port", Toml::Integer(closed.into())),
        ("feed.iqfeed.lookup_port", Toml::Integer(closed.into())),
        ("feed.iqfeed.admin_port", Toml::Integer(closed.into())),
    ];
    let server = TestServer::start_serving(&overrides).await;
    let f = feed_until(&server, "AAPL", "the connect failure", |f| {
        f["state"] == "reconnecting" && f["last_error"].as_str().is_some_and(|e| e.contains("Admin port"))
    })
    .await;
    assert!(f["last_error"].as_str().unwrap_or_default().contains("is IQConnect running?"), "{f}");
}

/// IQConnect has no master file: the symbol search asks its Lookup port (`SBF`), names the exchange and
/// type from `SLM` / `SST` (read once), keeps what it found for later searches, and asks at most once an
/// hour per query and `lookups_per_minute` in all (an anonymous endpoint must not flood IQConnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_symbol_search_looks_symbols_up_in_iqfeed_within_its_budget() {
    let fake = FakeIqConnect::start().await;
    let mut overrides = fake.overrides(&["AAPL"]);
    overrides.push(("feed.iqfeed.lookups_per_minute", Toml::Integer(2)));
    let server = TestServer::start_serving(&overrides).await;
    let (status, body) = server.get_json("/api/symbols?q=AAP").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["iqfeed_lookup"]["looked_up"], 3, "{body}");
    let found: Vec<(String, String, String, String)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("symbol"), s("exchange"), s("kind"), s("source"))
        })
        .collect();
    let aapl = ("AAPL".to_owned(), "NASDAQ".to_owned(), "EQUITY".to_owned(), "iqfeed".to_owned());
    assert_eq!(found.first(), Some(&aapl), "the exact symbol first: {body}");
    assert!(found.iter().any(|f| f.0 == "AAPL2512C200" && f.2 == "IEOPTION"), "{body}");
    assert_eq!(body["results"][0]["name"], "APPLE INC.");
    assert_eq!(body["results"][0]["live"], true, "AAPL runs: {body}");

    // The same query again: answered from what was found, without asking.
    let again = server.get_json("/api/symbols?q=AAP").await.1;
    assert_eq!(again["iqfeed_lookup"]["fresh"], true, "{again}");
    assert_eq!(again["total"], body["total"]);
    // Another query: looked up, and earlier finds still searchable; a description with a comma is whole.
    let ibm = server.get_json("/api/symbols?q=IBM&exchange=NYSE").await.1;
    assert_eq!(ibm["results"][0]["name"], "INTERNATIONAL BUSINESS MACHINES, CORP", "{ibm}");
    // Past the budget (2 a minute): searched in the master alone, and said so.
    let over = server.get_json("/api/symbols?q=AAPW").await.1;
    assert!(over["iqfeed_lookup"]["skipped"].as_str().unwrap().contains("lookups_per_minute"), "{over}");
    assert_eq!(over["results"][0]["symbol"], "AAPW", "found by the first lookup: {over}");
    // One character: never asked.
    let short = server.get_json("/api/symbols?q=A").await.1;
    assert!(short["iqfeed_lookup"]["skipped"].is_string(), "{short}");
    let asked: Vec<String> = fake.received("LK").into_iter().filter(|l| !l.starts_with("H")).collect();
    let count = |prefix: &str| asked.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!((count("SLM,"), count("SST,"), count("SBF,")), (1, 1, 2), "{asked:?}");
    assert!(asked.iter().any(|l| l.starts_with("SBF,s,AAP,,,")), "{asked:?}");
}

/// An `HTT` row: a trade (basis `C`) or a quote (`b`) at `at_ms`, Eastern time with microseconds.
fn tick_row(at_ms: i64, price: f64, size: f64, tick: u64, basis: char) -> String {
    let et = utc_ms_to_eastern(at_ms).unwrap().format("%Y-%m-%d %H:%M:%S%.6f");
    format!("{et},{price:.2},{size},9999,{:.2},{:.2},{tick},{basis},11,3D,1,20251205", price - 0.01, price + 0.01)
}

/// Trades IQFeed reported while the Level 1 connection was down are asked for with `HTT` from the last
/// trade handed on, and go into the bars once, before the live ones; the watch's repeat of the last of
/// them is not a second trade. Without it, the outage's trades were missing from the bars for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_fills_the_missed_trades_from_tick_history_once() {
    let fake = FakeIqConnect::start().await;
    let server = TestServer::start_serving(&fake.overrides(&["AAPL"])).await;
    eventually(20, "the watch", || fake.level1_open("AAPL") == 1).await;
    let first = now_ms();
    fake.send("AAPL", |f| update_line(f, 'Q', "AAPL", 190.0, 1.0, first, 1, "C"));
    assert_eq!(wait_totals(&server, "AAPL", 1).await, (1, 1.0));

    // While disconnected: ticks 2 and 3 traded (and a quote); HTT answers from the first trade's second.
    fake.set_history(
        "HTT",
        "AAPL",
        Ok(vec![
            tick_row(first, 190.0, 1.0, 1, 'C'),
            tick_row(first + 400, 190.1, 2.0, 2, 'C'),
            tick_row(first + 500, 190.1, 50.0, 0, 'b'),
            tick_row(first + 600, 190.2, 4.0, 3, 'C'),
        ]),
    );
    let before = fake.level1_accepted();
    fake.drop_level1();
    eventually(60, "a reconnect after the drop", || {
        fake.level1_accepted() == before + 1 && fake.level1_open("AAPL") == 1
    })
    .await;
    let f = feed_until(&server, "AAPL", "the gap filled", |f| f["gap_trades_filled"] == 2).await;
    assert_eq!(f["state"], "connected", "{f}");
    let asked: Vec<String> = fake.received("LK").into_iter().filter(|l| l.starts_with("HTT,AAPL,")).collect();
    let since = utc_ms_to_eastern(first).unwrap().format("%Y%m%d %H%M%S").to_string();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].starts_with(&format!("HTT,AAPL,{since},")), "from the last trade's second: {asked:?}");
    // The new watch repeats tick 3, then tick 4 trades: 1 + 2 + 4 + 8 once each.
    let now = now_ms();
    fake.send("AAPL", |f| update_line(f, 'Q', "AAPL", 190.2, 4.0, now, 3, "C"));
    fake.send("AAPL", |f| update_line(f, 'Q', "AAPL", 190.3, 8.0, now, 4, "C"));
    assert_eq!(wait_totals(&server, "AAPL", 4).await, (4, 15.0), "every trade once, the repeat not counted");
}
