//! `--mode storm` and `--mode restart`: connection storms (issue 16).
//!
//! Storm: `--clients` connections opened at `--storm-rate` per second, each subscribing at once. Every client
//! ends in exactly one outcome (subscribed and updated, or refused with why: TCP refused, reset, an HTTP
//! status, a timeout) and the time from its first connect attempt to its first `price_update` is recorded.
//! Nobody retries: a storm row counts what the server refused, not what a patient client eventually got.
//!
//! Restart: the clients connect and subscribe, then wait for the server to go away (the bench script restarts
//! it on the same port). Each reconnects like the dashboard (frontend/src/state/backoff.ts: 250 ms doubling to
//! 10 s, half of each delay random), subscribes again and refetches its gap like the dashboard's
//! `BarFeed.resync` (`get_historical` from the newest bar it holds, `rate_limited` asked again after its
//! `retry_after`). At the end every client's closed bars are compared with the server's own history of the
//! topic over the same span: a bucket the server has and the client does not is a missed closed bar.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::raw::{Next, RawWs};
use crate::stats::{buckets, from_buckets, histogram, Percentiles};
use crate::Args;

/// What became of one connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Subscribed and got its first update.
    Updated,
    /// TCP connect refused (RST to the SYN: nothing listening, or the listen queue told to abort).
    TcpRefused,
    /// The connection was reset or closed during the handshake, the subscription or before the first update.
    Reset,
    /// No TCP connection, handshake, subscription or first update within `--connect-timeout`.
    Timeout,
    /// The server answered the upgrade with this HTTP status (429, 503, ...).
    Http(u16),
    /// The server answered the subscription with an error.
    Refused,
    /// Anything else (the first such error is printed).
    Other,
}

impl Outcome {
    fn key(self) -> String {
        match self {
            Outcome::Updated => "updated".into(),
            Outcome::TcpRefused => "tcp_refused".into(),
            Outcome::Reset => "reset".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Http(s) => format!("http_{s}"),
            Outcome::Refused => "subscribe_refused".into(),
            Outcome::Other => "other".into(),
        }
    }

    fn of(e: &io::Error) -> Outcome {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("handshake refused: HTTP/1.1 ") {
            return rest.get(..3).and_then(|s| s.parse().ok()).map_or(Outcome::Other, Outcome::Http);
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Outcome::TcpRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Outcome::Reset,
            io::ErrorKind::TimedOut => Outcome::Timeout,
            _ => {
                // Said once per process, so that an unforeseen failure has a name without 19,000 lines of it.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| eprintln!("storm: a connection failed otherwise: {e}"));
                Outcome::Other
            }
        }
    }
}

/// One process's storm figures; the parent merges its children's.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StormPartial {
    pub clients: usize,
    /// Outcome name -> clients.
    pub outcomes: BTreeMap<String, usize>,
    /// (µs, count): first connect attempt to first `price_update`, clients that got one.
    pub first_update: Vec<(u64, u64)>,
    /// (µs, count): TCP connect alone (SYN to established), the part the listen backlog decides.
    pub tcp_connect: Vec<(u64, u64)>,
    /// First update within `--within` seconds.
    pub within: usize,
    // Restart mode only.
    /// Clients that saw the server go away.
    pub saw_restart: usize,
    /// Of those, clients subscribed again.
    pub back: usize,
    /// Of those, clients whose refetch completed and that then saw a closed bar live again.
    pub caught_up: usize,
    /// Reconnect attempts that failed (all clients), by outcome.
    pub failed_attempts: BTreeMap<String, usize>,
    /// (µs, count): the client noticing the server gone to subscribed again.
    pub back_after: Vec<(u64, u64)>,
    /// (µs, count): the client noticing the server gone to its gap refetched.
    pub refetched_after: Vec<(u64, u64)>,
    /// Closed bars the server holds in a client's span that the client never got, summed, and clients with any.
    pub missed_bars: usize,
    pub clients_missing: usize,
    /// Closed bars compared in all (so that 0 missed is 0 of something).
    pub checked_bars: usize,
}

impl StormPartial {
    pub fn merge(parts: Vec<StormPartial>) -> StormPartial {
        let mut out = StormPartial::default();
        let (mut first, mut tcp, mut back, mut refetched) = (histogram(), histogram(), histogram(), histogram());
        for p in parts {
            out.clients += p.clients;
            out.within += p.within;
            out.saw_restart += p.saw_restart;
            out.back += p.back;
            out.caught_up += p.caught_up;
            out.missed_bars += p.missed_bars;
            out.clients_missing += p.clients_missing;
            out.checked_bars += p.checked_bars;
            for (k, v) in p.outcomes {
                *out.outcomes.entry(k).or_default() += v;
            }
            for (k, v) in p.failed_attempts {
                *out.failed_attempts.entry(k).or_default() += v;
            }
            let _ = first.add(from_buckets(&p.first_update));
            let _ = tcp.add(from_buckets(&p.tcp_connect));
            let _ = back.add(from_buckets(&p.back_after));
            let _ = refetched.add(from_buckets(&p.refetched_after));
        }
        out.first_update = buckets(&first);
        out.tcp_connect = buckets(&tcp);
        out.back_after = buckets(&back);
        out.refetched_after = buckets(&refetched);
        out
    }
}

/// The final storm or restart result.
#[derive(Debug, Serialize)]
pub struct StormReport {
    pub mode: String,
    pub clients: usize,
    pub rate: f64,
    pub updated: usize,
    pub refused: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub within_secs: f64,
    pub within: usize,
    pub first_update_ms: Percentiles,
    pub tcp_connect_ms: Percentiles,
    pub saw_restart: usize,
    pub back: usize,
    pub caught_up: usize,
    pub failed_attempts: BTreeMap<String, usize>,
    pub back_after_ms: Percentiles,
    pub refetched_after_ms: Percentiles,
    pub missed_bars: usize,
    pub clients_missing: usize,
    pub checked_bars: usize,
    pub command: String,
}

impl StormReport {
    pub fn new(args: &Args, p: StormPartial, command: String) -> StormReport {
        let updated = p.outcomes.get("updated").copied().unwrap_or(0);
        StormReport {
            mode: args.mode.clone(),
            clients: p.clients,
            rate: args.storm_rate,
            updated,
            refused: p.clients - updated,
            outcomes: p.outcomes,
            within_secs: args.within,
            within: p.within,
            first_update_ms: Percentiles::of(&p.first_update),
            tcp_connect_ms: Percentiles::of(&p.tcp_connect),
            saw_restart: p.saw_restart,
            back: p.back,
            caught_up: p.caught_up,
            failed_attempts: p.failed_attempts,
            back_after_ms: Percentiles::of(&p.back_after),
            refetched_after_ms: Percentiles::of(&p.refetched_after),
            missed_bars: p.missed_bars,
            clients_missing: p.clients_missing,
            checked_bars: p.checked_bars,
            command,
        }
    }

    pub fn summary(&self) -> String {
        let outcomes = self.outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let f = &self.first_update_ms;
        let mut line = format!(
            "storm clients={} rate={:.0}/s updated={} not_updated={} [{}] within_{}s={} first_update p50={:.0}ms p99={:.0}ms max={:.0}ms tcp_connect p99={:.0}ms max={:.0}ms",
            self.clients,
            self.rate,
            self.updated,
            self.refused,
            outcomes,
            self.within_secs,
            self.within,
            f.p50,
            f.p99,
            f.max,
            self.tcp_connect_ms.p99,
            self.tcp_connect_ms.max
        );
        if self.mode == "restart" {
            let failed = self.failed_attempts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            line += &format!(
                " | restart saw={} back={} caught_up={} back_after p50={:.0}ms p99={:.0}ms max={:.0}ms refetched_after p99={:.0}ms max={:.0}ms missed_bars={} clients_missing={} checked_bars={} failed_attempts=[{}]",
                self.saw_restart,
                self.back,
                self.caught_up,
                self.back_after_ms.p50,
                self.back_after_ms.p99,
                self.back_after_ms.max,
                self.refetched_after_ms.p99,
                self.refetched_after_ms.max,
                self.missed_bars,
                self.clients_missing,
                self.checked_bars,
                failed
            );
        }
        line
    }
}

/// What a process's clients share.
struct Shared {
    outcomes: Mutex<BTreeMap<Outcome, usize>>,
    first_update: Mutex<Histogram<u64>>,
    tcp_connect: Mutex<Histogram<u64>>,
    within: AtomicUsize,
    /// Clients that have their outcome (storm) or are subscribed the first time (restart).
    settled: AtomicUsize,
    /// Set once every client has its outcome: storm clients hold their connections until then.
    all_settled: AtomicBool,
    /// Restart: stop reading (the deadline passed, or everyone caught up).
    stop: AtomicBool,
    saw_restart: AtomicUsize,
    back: AtomicUsize,
    caught_up: AtomicUsize,
    failed_attempts: Mutex<BTreeMap<Outcome, usize>>,
    back_after: Mutex<Histogram<u64>>,
    refetched_after: Mutex<Histogram<u64>>,
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    if let Ok(mut h) = h.lock() {
        let _ = h.record(d.as_micros().max(1) as u64);
    }
}

/// A bar as the protocol sends it; only what the checks need.
#[derive(Deserialize)]
struct Bar {
    timestamp: i64,
    #[serde(default)]
    closed: bool,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    retry_after: Option<f64>,
}

/// A client's view of its topic: the closed bars it holds and the newest bar of any state.
#[derive(Default)]
struct Held {
    closed: BTreeSet<i64>,
    newest: Option<i64>,
    /// The newest bar when the server went away (the refetch starts there): said with a missed bar.
    newest_when_gone: Option<i64>,
}

impl Held {
    fn take(&mut self, bar: &Bar) {
        if bar.closed {
            self.closed.insert(bar.timestamp);
        }
        self.newest = Some(self.newest.map_or(bar.timestamp, |n| n.max(bar.timestamp)));
    }
}

/// TCP connect, upgrade and subscribe, each step within what is left of `timeout`.
async fn open(
    url: &str,
    source: Option<Ipv4Addr>,
    subscribe: &str,
    timeout: Duration,
    tcp: &Mutex<Histogram<u64>>,
) -> Result<RawWs, Outcome> {
    let began = Instant::now();
    let connected = tokio::time::timeout(timeout, RawWs::connect_from(url, false, source)).await;
    let (mut ws, tcp_took) = match connected {
        Err(_) => return Err(Outcome::Timeout),
        Ok(Err(e)) => return Err(Outcome::of(&e)),
        Ok(Ok(pair)) => pair,
    };
    record(tcp, tcp_took);
    let left = timeout.saturating_sub(began.elapsed());
    let subscribed = tokio::time::timeout(left, async {
        ws.send_text(subscribe).await.map_err(|e| Outcome::of(&e))?;
        loop {
            match ws.next_text().await {
                Ok(Next::Text(t)) if t.contains("\"subscribed\"") => return Ok(()),
                Ok(Next::Text(t)) if t.contains("\"error\"") => return Err(Outcome::Refused),
                Ok(Next::Text(_)) => continue,
                Ok(Next::Closed) => return Err(Outcome::Reset),
                Err(e) => return Err(Outcome::of(&e)),
            }
        }
    })
    .await;
    match subscribed {
        Err(_) => Err(Outcome::Timeout),
        Ok(Err(o)) => Err(o),
        Ok(Ok(())) => Ok(ws),
    }
}

/// The loopback address client number `client` (over all processes) connects from, with `--source-ips`
/// above 1: 127.0.0.1, 127.0.0.2, ... in turn.
fn source_ip(source_ips: usize, client: usize) -> Option<Ipv4Addr> {
    (source_ips > 1).then(|| Ipv4Addr::new(127, 0, 0, 1 + (client % source_ips.min(254)) as u8))
}

fn subscribe_message(symbol: &str, interval: &str) -> String {
    format!(r#"{{"type":"subscribe","trading_pairs":["{symbol}"],"interval":"{interval}"}}"#)
}

pub async fn run_process(args: Arc<Args>) -> anyhow::Result<StormPartial> {
    let symbols: Vec<String> = args.symbols.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(!symbols.is_empty(), "--symbols is empty");
    let restart = args.mode == "restart";
    let shared = Arc::new(Shared {
        outcomes: Mutex::default(),
        first_update: Mutex::new(histogram()),
        tcp_connect: Mutex::new(histogram()),
        within: AtomicUsize::new(0),
        settled: AtomicUsize::new(0),
        all_settled: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        saw_restart: AtomicUsize::new(0),
        back: AtomicUsize::new(0),
        caught_up: AtomicUsize::new(0),
        failed_attempts: Mutex::default(),
        back_after: Mutex::new(histogram()),
        refetched_after: Mutex::new(histogram()),
    });
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.storm_rate.max(1.0));
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let symbol = symbols[(args.first_client + i) % symbols.len()].clone();
        let source = source_ip(args.source_ips, args.first_client + i);
        let (args, shared) = (args.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            if restart {
                restart_client(symbol, source, args, shared).await
            } else {
                storm_client(symbol, source, args, shared).await;
                None
            }
        }));
        tokio::time::sleep_until((start + gap * (i as u32 + 1)).into()).await;
    }
    if restart {
        // Everyone subscribed (or given up on): tell the script it may restart the server.
        while shared.settled.load(Ordering::Relaxed) < args.clients {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(path) = &args.ready_file {
            std::fs::write(path, b"ready\n")?;
        }
        eprintln!("storm: {} clients subscribed; waiting for the server to restart", args.clients);
        let deadline = tokio::time::sleep(Duration::from_secs_f64(args.restart_wait));
        tokio::pin!(deadline);
        loop {
            let expected = shared.outcomes.lock().map(|o| o.get(&Outcome::Updated).copied().unwrap_or(0)).unwrap_or(0);
            if expected > 0 && shared.caught_up.load(Ordering::Relaxed) >= expected {
                break;
            }
            tokio::select! {
                _ = &mut deadline => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        shared.stop.store(true, Ordering::Relaxed);
    }
    let mut helds = Vec::new();
    for t in tasks {
        if let Ok(Some(held)) = t.await {
            helds.push(held);
        }
    }
    let mut partial = StormPartial { clients: args.clients, ..Default::default() };
    if restart {
        check_missing(&args, &helds, &mut partial).await?;
    }
    finish(&shared, partial)
}

fn finish(shared: &Shared, mut p: StormPartial) -> anyhow::Result<StormPartial> {
    let lock = |m: &Mutex<Histogram<u64>>| -> Vec<(u64, u64)> { m.lock().map(|h| buckets(&h)).unwrap_or_default() };
    let count = |m: &Mutex<BTreeMap<Outcome, usize>>| -> BTreeMap<String, usize> {
        m.lock().map(|o| o.iter().map(|(k, v)| (k.key(), *v)).collect()).unwrap_or_default()
    };
    p.outcomes = count(&shared.outcomes);
    p.failed_attempts = count(&shared.failed_attempts);
    p.first_update = lock(&shared.first_update);
    p.tcp_connect = lock(&shared.tcp_connect);
    p.back_after = lock(&shared.back_after);
    p.refetched_after = lock(&shared.refetched_after);
    p.within = shared.within.load(Ordering::Relaxed);
    p.saw_restart = shared.saw_restart.load(Ordering::Relaxed);
    p.back = shared.back.load(Ordering::Relaxed);
    p.caught_up = shared.caught_up.load(Ordering::Relaxed);
    Ok(p)
}

/// Connects and subscribes; records the outcome and the time to the first update.
async fn first_update(symbol: &str, source: Option<Ipv4Addr>, args: &Args, shared: &Shared) -> Option<RawWs> {
    let began = Instant::now();
    let timeout = Duration::from_secs_f64(args.connect_timeout);
    let subscribe = subscribe_message(symbol, &args.interval);
    let outcome = match open(&args.url, source, &subscribe, timeout, &shared.tcp_connect).await {
        Err(o) => Err(o),
        Ok(mut ws) => {
            let left = timeout.saturating_sub(began.elapsed());
            let update = tokio::time::timeout(left, async {
                loop {
                    match ws.next_text().await {
                        Ok(Next::Text(t)) if t.contains("\"price_update\"") => return Ok(()),
                        Ok(Next::Text(_)) => continue,
                        Ok(Next::Closed) => return Err(Outcome::Reset),
                        Err(e) => return Err(Outcome::of(&e)),
                    }
                }
            })
            .await;
            match update {
                Err(_) => Err(Outcome::Timeout),
                Ok(Err(o)) => Err(o),
                Ok(Ok(())) => Ok(ws),
            }
        }
    };
    let took = began.elapsed();
    let key = match &outcome {
        Ok(_) => Outcome::Updated,
        Err(o) => *o,
    };
    if let Ok(mut o) = shared.outcomes.lock() {
        *o.entry(key).or_default() += 1;
    }
    if outcome.is_ok() {
        record(&shared.first_update, took);
        if took.as_secs_f64() <= args.within {
            shared.within.fetch_add(1, Ordering::Relaxed);
        }
    }
    shared.settled.fetch_add(1, Ordering::Relaxed);
    outcome.ok()
}

async fn storm_client(symbol: String, source: Option<Ipv4Addr>, args: Arc<Args>, shared: Arc<Shared>) {
    let Some(mut ws) = first_update(&symbol, source, &args, &shared).await else { return };
    // Hold the connection (reading, so the server has no reason to drop it) until every client of this
    // process has its outcome: the last clients of the storm meet a server holding all the others.
    while shared.settled.load(Ordering::Relaxed) < args.clients && !shared.all_settled.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), ws.next_text()).await {
            Ok(Ok(Next::Closed)) | Ok(Err(_)) => return,
            _ => {}
        }
    }
    shared.all_settled.store(true, Ordering::Relaxed);
    ws.close().await;
}

/// The dashboard's reconnect delay for attempt `attempt` (0 = first retry): frontend/src/state/backoff.ts.
fn backoff(attempt: u32) -> Duration {
    let exp = (250.0 * 2f64.powi(attempt.min(16) as i32)).min(10_000.0);
    let spread = exp * 0.5;
    Duration::from_secs_f64((exp - spread + rand::rng().random::<f64>() * spread) / 1000.0)
}

/// The bar of a `price_update` without parsing the whole message (19,000 clients take ten a second each,
/// on the cores the server runs on): its `timestamp` and whether it is `closed`.
fn live_bar(t: &str) -> Option<Bar> {
    if !t.starts_with(r#"{"type":"price_update""#) {
        return None;
    }
    let at = t.find(r#""timestamp":"#)? + r#""timestamp":"#.len();
    let digits = &t[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    Some(Bar { timestamp: digits[..end].parse().ok()?, closed: t.contains(r#""closed":true"#) })
}

/// Takes in the bar of a live update, or parses any other message (and returns it).
fn take_text(t: &str, held: &mut Held) -> Option<Message> {
    if let Some(bar) = live_bar(t) {
        held.take(&bar);
        return None;
    }
    let msg: Message = serde_json::from_str(t).ok()?;
    if msg.kind == "price_update" {
        if let Some(bar) = msg.data.as_ref().and_then(|d| Bar::deserialize(d).ok()) {
            held.take(&bar);
        }
    }
    Some(msg)
}

/// Sends `get_historical` from `since` and takes in the reply's bars, asking again after `retry_after` when
/// the history budget refuses it (as the dashboard does). `Ok(false)`: the connection ended first.
async fn refetch(ws: &mut RawWs, symbol: &str, interval: &str, since: i64, held: &mut Held) -> io::Result<bool> {
    let request = format!(
        r#"{{"type":"get_historical","trading_pair":"{symbol}","interval":"{interval}","start_time":{since},"limit":5000}}"#
    );
    loop {
        ws.send_text(&request).await?;
        let retry_after = loop {
            let Next::Text(t) = ws.next_text().await? else { return Ok(false) };
            let Some(msg) = take_text(t, held) else { continue };
            match msg.kind.as_str() {
                "historical" => {
                    let bars: Vec<Bar> = msg.data.and_then(|d| serde_json::from_value(d).ok()).unwrap_or_default();
                    for bar in &bars {
                        held.take(bar);
                    }
                    return Ok(true);
                }
                "error" if msg.code.as_deref() == Some("rate_limited") => break msg.retry_after.unwrap_or(1.0),
                "error" => return Err(io::Error::other(format!("get_historical refused: {t}"))),
                _ => {}
            }
        };
        tokio::time::sleep(Duration::from_secs_f64(retry_after.clamp(0.05, 10.0))).await;
    }
}

/// A client through the restart: subscribed, then gone, back, refetched, and live again.
async fn restart_client(
    symbol: String,
    source: Option<Ipv4Addr>,
    args: Arc<Args>,
    shared: Arc<Shared>,
) -> Option<(String, Held, bool)> {
    let mut ws = first_update(&symbol, source, &args, &shared).await?;
    let mut held = Held::default();
    // A client the run ends for before it caught up is reported as such, not checked for missed bars: its
    // refetch never happened.
    let subscribe = subscribe_message(&symbol, &args.interval);
    // Until the server goes away.
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            // The server never went away while this client watched: it missed nothing, check it.
            return Some((symbol, held, true));
        }
        match tokio::time::timeout(Duration::from_millis(200), ws.next_text()).await {
            Err(_) => continue,
            Ok(Ok(Next::Text(t))) => {
                take_text(t, &mut held);
            }
            Ok(Ok(Next::Closed)) | Ok(Err(_)) => break,
        }
    }
    let gone = Instant::now();
    held.newest_when_gone = held.newest;
    shared.saw_restart.fetch_add(1, Ordering::Relaxed);
    let timeout = Duration::from_secs_f64(args.connect_timeout);
    let mut attempt = 0;
    // Each counted once per client, however often a refetch fails and the client comes back again.
    let (mut counted_back, mut refetched, mut caught_up) = (false, false, false);
    'reconnect: loop {
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
        if shared.stop.load(Ordering::Relaxed) {
            return Some((symbol, held, caught_up));
        }
        ws = match open(&args.url, source, &subscribe, timeout, &shared.tcp_connect).await {
            Ok(ws) => ws,
            Err(o) => {
                if let Ok(mut f) = shared.failed_attempts.lock() {
                    *f.entry(o).or_default() += 1;
                }
                continue;
            }
        };
        if !counted_back {
            counted_back = true;
            shared.back.fetch_add(1, Ordering::Relaxed);
            record(&shared.back_after, gone.elapsed());
        }
        let since = held.newest.unwrap_or(0);
        match refetch(&mut ws, &symbol, &args.interval, since, &mut held).await {
            Ok(true) => {}
            Ok(false) | Err(_) => continue 'reconnect,
        }
        if !refetched {
            refetched = true;
            record(&shared.refetched_after, gone.elapsed());
        }
        // Caught up once a bar closes live after the refetch: the live stream joins the refetched bars.
        let after = held.closed.last().copied().unwrap_or(0);
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return Some((symbol, held, caught_up));
            }
            match tokio::time::timeout(Duration::from_millis(200), ws.next_text()).await {
                Err(_) => continue,
                Ok(Ok(Next::Text(t))) => {
                    take_text(t, &mut held);
                    if !caught_up && held.closed.last().is_some_and(|&last| last > after) {
                        caught_up = true;
                        shared.caught_up.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Gone again (a second restart): reconnect and refetch again.
                Ok(Ok(Next::Closed)) | Ok(Err(_)) => {
                    attempt = 0;
                    continue 'reconnect;
                }
            }
        }
    }
}

/// Compares every client's closed bars with the server's history of its topic over the client's span.
async fn check_missing(args: &Args, helds: &[(String, Held, bool)], p: &mut StormPartial) -> anyhow::Result<()> {
    let helds: Vec<(&String, &Held)> =
        helds.iter().filter(|(.., caught_up)| *caught_up).map(|(s, h, _)| (s, h)).collect();
    let mut spans: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for &(symbol, held) in &helds {
        if let (Some(&lo), Some(&hi)) = (held.closed.first(), held.closed.last()) {
            let span = spans.entry(symbol.as_str()).or_insert((lo, hi));
            *span = (span.0.min(lo), span.1.max(hi));
        }
    }
    let mut truth: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for (symbol, (lo, hi)) in spans {
        truth.insert(symbol, server_closed_bars(args, symbol, lo, hi).await?);
    }
    for &(symbol, held) in &helds {
        let (Some(&lo), Some(&hi), Some(server)) =
            (held.closed.first(), held.closed.last(), truth.get(symbol.as_str()))
        else {
            continue;
        };
        let expected = server.range(lo..=hi);
        let (mut checked, mut missed) = (0, Vec::new());
        for ts in expected {
            checked += 1;
            if !held.closed.contains(ts) {
                missed.push(*ts);
            }
        }
        p.checked_bars += checked;
        p.missed_bars += missed.len();
        if !missed.is_empty() {
            // The first few said in full: where the missed bars lie against the restart is what explains them.
            if p.clients_missing < 5 {
                eprintln!(
                    "storm: a client of {symbol} misses closed bars {missed:?}; its newest bar when the server went away: {:?}; it holds {lo}..={hi}",
                    held.newest_when_gone
                );
            }
            p.clients_missing += 1;
        }
    }
    Ok(())
}

/// The closed bars the server holds for `symbol` from `lo` to `hi` inclusive: pages of `get_historical`
/// backwards from `hi` (each the newest 5,000 before the last page's oldest bar), on one patient connection.
async fn server_closed_bars(args: &Args, symbol: &str, lo: i64, hi: i64) -> anyhow::Result<BTreeSet<i64>> {
    let mut ws = RawWs::connect(&args.url).await?;
    let mut held = Held::default();
    let mut end = hi + 1;
    while end > lo {
        let request = format!(
            r#"{{"type":"get_historical","trading_pair":"{symbol}","interval":"{}","start_time":{lo},"end_time":{end},"limit":5000}}"#,
            args.interval
        );
        ws.send_text(&request).await?;
        let bars: Vec<Bar> = loop {
            let Next::Text(t) = ws.next_text().await? else { anyhow::bail!("closed during the history check") };
            let msg: Message = serde_json::from_str(t)?;
            match msg.kind.as_str() {
                "historical" => break msg.data.and_then(|d| serde_json::from_value(d).ok()).unwrap_or_default(),
                "error" if msg.code.as_deref() == Some("rate_limited") => {
                    tokio::time::sleep(Duration::from_secs_f64(msg.retry_after.unwrap_or(1.0).clamp(0.05, 10.0))).await;
                    ws.send_text(&request).await?;
                }
                "error" => anyhow::bail!("history check refused: {t}"),
                _ => {}
            }
        };
        let Some(oldest) = bars.iter().map(|b| b.timestamp).min() else { break };
        for bar in &bars {
            held.take(bar);
        }
        end = oldest;
    }
    ws.close().await;
    Ok(held.closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_name_why() {
        let http =
            io::Error::new(io::ErrorKind::ConnectionRefused, "handshake refused: HTTP/1.1 503 Service Unavailable");
        assert_eq!(Outcome::of(&http), Outcome::Http(503));
        assert_eq!(Outcome::of(&io::ErrorKind::ConnectionRefused.into()), Outcome::TcpRefused);
        assert_eq!(Outcome::of(&io::ErrorKind::ConnectionReset.into()), Outcome::Reset);
        assert_eq!(Outcome::of(&io::ErrorKind::UnexpectedEof.into()), Outcome::Reset);
        assert_eq!(Outcome::Http(429).key(), "http_429");
    }

    #[test]
    fn live_bars_are_read_without_parsing() {
        let t = r#"{"type":"price_update","symbol":"BTCUSDT","interval":"1s","data":{"timestamp":1700000001000,"open":1.0,"closed":true},"ts_sent":1}"#;
        let bar = live_bar(t).unwrap();
        assert_eq!((bar.timestamp, bar.closed), (1_700_000_001_000, true));
        assert!(!live_bar(&t.replace("true", "false")).unwrap().closed);
        assert!(live_bar(r#"{"type":"historical","data":[]}"#).is_none());
    }

    #[test]
    fn clients_take_the_source_addresses_in_turn() {
        assert_eq!(source_ip(1, 5), None);
        let ips: Vec<_> = (0..5).map(|c| source_ip(3, c).unwrap()).collect();
        let [a, b, c] = [1, 2, 3].map(|last| Ipv4Addr::new(127, 0, 0, last));
        assert_eq!(ips, [a, b, c, a, b]);
        assert_eq!(source_ip(254, 253), Some(Ipv4Addr::new(127, 0, 0, 254)));
    }

    #[test]
    fn backoff_follows_the_dashboard() {
        for attempt in 0..20 {
            let d = backoff(attempt).as_secs_f64() * 1000.0;
            let exp = (250.0 * 2f64.powi(attempt as i32)).min(10_000.0);
            assert!(d >= exp * 0.5 - 1.0 && d <= exp + 1.0, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn merged_partials_add_up() {
        let part = |n: usize| StormPartial {
            clients: n,
            outcomes: [("updated".to_owned(), n - 1), ("http_503".to_owned(), 1)].into(),
            first_update: vec![(1000, (n - 1) as u64)],
            ..Default::default()
        };
        let m = StormPartial::merge(vec![part(10), part(5)]);
        assert_eq!(m.clients, 15);
        assert_eq!(m.outcomes["updated"], 13);
        assert_eq!(m.outcomes["http_503"], 2);
        assert_eq!(from_buckets(&m.first_update).len(), 13);
    }
}
