//! DTN IQFeed through IQConnect, the Windows client that holds the connection to DTN and serves its
//! data on local TCP ports (protocol 6.2). One connector per symbol:
//!
//! - [`admin`]: the Admin port (9300): registration, and whether IQConnect is connected to DTN.
//! - Level 1 port (5009): `S,SET PROTOCOL`, `S,SELECT UPDATE FIELDS`, `w<SYMBOL>`; `Q,` updates that
//!   carry a new trade become trades (the rule is [`wire::TradeFilter`]'s).
//! - [`lookup`]: the Lookup port (9100): `HIT` / `HDX` history for the backfill, `SBF` symbol lookups.
//! - [`directory`]: the symbol search's lookups into the symbol master, budgeted.
//! - [`wire`]: the line formats and their conversion into our `Trade` and `Bar`.
//! - [`time`]: IQFeed's times are US Eastern; converted with the IANA database across DST.
//! - [`lines`]: a bounded line reader over TCP.
//!
//! Lost connections, `S,SERVER DISCONNECTED` and `Not Connected` stats are retryable errors: the feed
//! actor reconnects with backoff and `/api/feeds` shows the reason. `n,<SYMBOL>` (unknown symbol) is
//! terminal for that symbol. Host and ports are settings: the tests point them at a local fake IQConnect.

pub(crate) mod admin;
pub(crate) mod directory;
pub(crate) mod lines;
pub(crate) mod lookup;
pub(crate) mod time;
pub(crate) mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::Deserialize;
use tokio::time::timeout;

use self::admin::Admin;
use self::lines::{Line, LineConn};
use self::lookup::LookupClient;
use self::wire::{parse_level1, Layout, Level1, System, TradeFilter, UPDATE_FIELDS};
use super::{Connector, FeedError, FeedStatus};
use crate::model::{now_ms, resample, Bar, Interval, Symbol, Trade};
use crate::persist::history::Held;

/// Settings of the IQFeed feed (`[feed.iqfeed]` in the config).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IqFeedSettings {
    /// Where IQConnect runs; its ports listen on the local machine only by default.
    pub host: String,
    pub level1_port: u16,
    pub lookup_port: u16,
    pub admin_port: u16,
    /// Watch the Admin port's `S,STATS` for "Not Connected" (IQConnect cut off from DTN).
    pub watch_admin: bool,
    /// IQConnect protocol version sent with `S,SET PROTOCOL` and required in its reply.
    pub protocol: String,
    /// Connect and reply timeout of each port, ms.
    pub timeout_ms: u64,
    /// Days of 1-minute bars (`HIT`, 60 s) loaded at start (0: none).
    pub backfill_days: u32,
    /// Hours of 1-second bars (`HIT`, 1 s) for the sub-minute intervals (0: none).
    pub backfill_fine_hours: u32,
    /// Daily bars (`HDX`) for 1d and 1w (0: those come from the minute bars).
    pub backfill_daily_days: u32,
    /// Symbol lookups (`SBF`) the symbol search may make per minute, all clients together (0: none).
    pub lookups_per_minute: u32,
    /// Sent with `S,REGISTER CLIENT APP` on the Admin port when not empty.
    pub product_id: String,
    pub product_version: String,
    /// Sent with `S,SET LOGINID` / `S,SET PASSWORD` when not empty. Never logged.
    pub login: String,
    pub password: String,
}

impl Default for IqFeedSettings {
    fn default() -> Self {
        IqFeedSettings {
            host: "127.0.0.1".into(),
            level1_port: 5009,
            lookup_port: 9100,
            admin_port: 9300,
            watch_admin: true,
            protocol: "6.2".into(),
            timeout_ms: 10_000,
            backfill_days: 5,
            backfill_fine_hours: 1,
            backfill_daily_days: 365,
            lookups_per_minute: 30,
            product_id: String::new(),
            product_version: "1.0".into(),
            login: String::new(),
            password: String::new(),
        }
    }
}

/// Credentials stay out of logs and error messages, including `{:?}` of the whole configuration.
impl std::fmt::Debug for IqFeedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("IqFeedSettings")
            .field("host", &self.host)
            .field("level1_port", &self.level1_port)
            .field("lookup_port", &self.lookup_port)
            .field("admin_port", &self.admin_port)
            .field("watch_admin", &self.watch_admin)
            .field("protocol", &self.protocol)
            .field("timeout_ms", &self.timeout_ms)
            .field("backfill_days", &self.backfill_days)
            .field("backfill_fine_hours", &self.backfill_fine_hours)
            .field("backfill_daily_days", &self.backfill_daily_days)
            .field("lookups_per_minute", &self.lookups_per_minute)
            .field("product_id", &hidden(&self.product_id))
            .field("product_version", &self.product_version)
            .field("login", &hidden(&self.login))
            .field("password", &hidden(&self.password))
            .finish()
    }
}

/// IQFeed for one symbol.
pub struct IqFeedConnector {
    symbol: Symbol,
    settings: IqFeedSettings,
    level1: Option<LineConn>,
    admin: Option<Admin>,
    layout: Layout,
    filter: TradeFilter,
    /// The date of IQConnect's last `T,` message (US Eastern).
    clock: Option<NaiveDate>,
    status: Arc<FeedStatus>,
    /// The last trade handed on: exchange time and TickID. A reconnect asks `HTT` for what came after it.
    last_trade: Option<(i64, u64)>,
    /// Trades of a reconnect's gap, handed on before the live ones.
    gap: Vec<Trade>,
}

/// Trades one reconnect's gap fill asks for at most (a long outage of a busy symbol is cut there, and the
/// rest counted as an unfilled gap).
const MAX_GAP_TICKS: usize = 100_000;

impl IqFeedConnector {
    pub fn new(symbol: Symbol, settings: &IqFeedSettings) -> IqFeedConnector {
        IqFeedConnector {
            symbol,
            settings: settings.clone(),
            level1: None,
            admin: None,
            layout: Layout::requested(),
            filter: TradeFilter::default(),
            clock: None,
            status: Arc::default(),
            last_trade: None,
            gap: Vec::new(),
        }
    }

    /// After a reconnect: the trades IQFeed reported while we were away (`HTT` from the last trade we
    /// handed on), so the bars of the outage are whole. The `P,` summary of the new watch only names the
    /// last of them. A failed fill is reported and counted, and the feed goes live anyway.
    async fn fill_gap(&mut self) {
        let Some((since, last_tick)) = self.last_trade else { return };
        let fetched = async {
            let mut lookup = LookupClient::open(&self.settings).await?;
            let ticks = lookup.ticks(&self.symbol, since, MAX_GAP_TICKS).await;
            self.status.malformed.fetch_add(lookup.malformed, Ordering::Relaxed);
            ticks
        }
        .await;
        match fetched {
            Ok(ticks) => {
                let full = ticks.len() >= MAX_GAP_TICKS;
                // The trade we had is in the reply too (HTT starts at its second): only what came after.
                let missed: Vec<Trade> = ticks
                    .into_iter()
                    .filter(|t| t.exchange_ts > since || (t.exchange_ts == since && t.id > last_tick))
                    .collect();
                if full {
                    self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(symbol = %self.symbol, source = "iqfeed", "gap fill cut at {MAX_GAP_TICKS} ticks");
                }
                if let Some(last) = missed.last() {
                    self.last_trade = Some((last.exchange_ts, last.id));
                    self.filter.skip_through(last.id);
                }
                self.status.gap_trades_filled.fetch_add(missed.len() as u64, Ordering::Relaxed);
                tracing::info!(symbol = %self.symbol, source = "iqfeed", trades = missed.len(), "reconnect gap filled from HTT");
                self.gap = missed;
            }
            Err(e) => {
                // Counted, not made the feed's last_error: that stays the reason of the reconnect.
                self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(symbol = %self.symbol, source = "iqfeed", error = %e, "reconnect gap not filled");
            }
        }
    }

    fn malformed(&self, error: &FeedError) {
        self.status.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(symbol = %self.symbol, source = "iqfeed", %error, "skipped a malformed message");
    }

    /// Reads Level 1 lines until `want` accepts one, within the timeout; what IQConnect says meanwhile
    /// about DTN or our request ends the wait.
    async fn await_reply<T>(
        &mut self,
        conn: &mut LineConn,
        what: &str,
        want: impl Fn(&Level1) -> Option<Result<T, FeedError>>,
    ) -> Result<T, FeedError> {
        let within = Duration::from_millis(self.settings.timeout_ms.max(1));
        let name = conn.name.clone();
        let wait = async {
            loop {
                let line = match conn.next_line().await? {
                    Line::Text(line) => line,
                    Line::Unreadable(why) => {
                        self.malformed(&FeedError::Malformed(why.into()));
                        continue;
                    }
                };
                let msg = match parse_level1(&line) {
                    Ok(msg) => msg,
                    Err(e) => {
                        self.malformed(&e);
                        continue;
                    }
                };
                if let Some(done) = want(&msg) {
                    return done;
                }
                match msg {
                    Level1::System(System::ServerDisconnected) => return Err(dtn_lost()),
                    Level1::Error(e) => return Err(FeedError::Refused(format!("{name}: {what}: {e}"))),
                    Level1::Timestamp(t) => self.clock = Some(t.date()),
                    _ => {}
                }
            }
        };
        timeout(within, wait).await.map_err(|_| FeedError::Connect(format!("{name}: no {what} within {within:?}")))?
    }
}

fn dtn_lost() -> FeedError {
    FeedError::Disconnected("IQConnect lost its connection to DTN (S,SERVER DISCONNECTED)".into())
}

impl Connector for IqFeedConnector {
    fn source(&self) -> crate::feed::FeedSource {
        crate::feed::FeedSource::Iqfeed
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    fn attach_status(&mut self, status: Arc<FeedStatus>) {
        self.status = status;
    }

    /// 1-minute bars (`HIT`, 60 s) for 1m and up, 1-second bars for the sub-minute intervals, daily
    /// bars (`HDX`) for 1d and 1w.
    async fn backfill(
        &mut self,
        now: i64,
        intervals: &[Interval],
        _held: &Held,
    ) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        let s = &self.settings;
        let wants = |f: fn(&Interval) -> bool| intervals.iter().any(f);
        let minutes_wanted = s.backfill_days > 0 && wants(|iv| *iv >= Interval::M1);
        let fine_wanted = s.backfill_fine_hours > 0 && wants(|iv| *iv < Interval::M1);
        let daily_wanted = s.backfill_daily_days > 0 && wants(|iv| *iv >= Interval::D1);
        if !(minutes_wanted || fine_wanted || daily_wanted) {
            return Ok(Vec::new());
        }
        let mut lookup = LookupClient::open(s).await?;
        let symbol = self.symbol.clone();
        let minutes = match minutes_wanted {
            true => lookup.interval_bars(&symbol, Interval::M1, now - s.backfill_days as i64 * 86_400_000).await?,
            false => Vec::new(),
        };
        let seconds = match fine_wanted {
            true => lookup.interval_bars(&symbol, Interval::S1, now - s.backfill_fine_hours as i64 * 3_600_000).await?,
            false => Vec::new(),
        };
        let daily = match daily_wanted {
            true => lookup.daily_bars(&symbol, s.backfill_daily_days).await?,
            false => Vec::new(),
        };
        self.status.malformed.fetch_add(lookup.malformed, Ordering::Relaxed);
        let daily = if daily.is_empty() { resample(&minutes, Interval::D1) } else { daily };
        let mut out = Vec::new();
        for &iv in intervals {
            let bars = match iv {
                Interval::S1 => seconds.clone(),
                Interval::M1 => minutes.clone(),
                Interval::D1 => daily.clone(),
                Interval::W1 => resample(&daily, iv),
                iv if iv < Interval::M1 => resample(&seconds, iv),
                iv => resample(&minutes, iv),
            };
            if !bars.is_empty() {
                out.push((iv, with_closed_flags(bars, now)));
            }
        }
        Ok(out)
    }

    /// Admin port first (is IQConnect up and connected to DTN?), then the Level 1 handshake and watch.
    async fn connect(&mut self) -> Result<(), FeedError> {
        self.level1 = None;
        self.admin = None;
        let s = self.settings.clone();
        if s.watch_admin {
            self.admin = Some(Admin::open(&s).await?);
        }
        let within = Duration::from_millis(s.timeout_ms.max(1));
        let mut conn = LineConn::open("Level 1 port", &s.host, s.level1_port, within).await?;
        conn.send(&format!("S,SET PROTOCOL,{}", s.protocol)).await?;
        let wanted = s.protocol.clone();
        self.await_reply(&mut conn, "S,CURRENT PROTOCOL", |m| match m {
            Level1::System(System::CurrentProtocol(v)) if *v == wanted => Some(Ok(())),
            Level1::System(System::CurrentProtocol(v)) => {
                Some(Err(FeedError::Refused(format!("IQConnect speaks protocol {v}, not {wanted}"))))
            }
            _ => None,
        })
        .await?;
        conn.send(&format!("S,SELECT UPDATE FIELDS,{}", UPDATE_FIELDS.join(","))).await?;
        self.layout = self
            .await_reply(&mut conn, "S,CURRENT UPDATE FIELDNAMES", |m| match m {
                Level1::System(System::UpdateFieldNames(names)) => Some(Layout::from_names(names)),
                _ => None,
            })
            .await?;
        conn.send(&format!("w{}", self.symbol)).await?;
        self.filter = TradeFilter::default();
        self.level1 = Some(conn);
        self.fill_gap().await;
        Ok(())
    }

    /// The next new trade; quote-only updates, timestamps and system messages are passed over.
    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        if !self.gap.is_empty() {
            return Ok(std::mem::take(&mut self.gap));
        }
        loop {
            let line = {
                let (Some(level1), admin) = (self.level1.as_mut(), self.admin.as_mut()) else {
                    return Err(FeedError::Disconnected("not connected".into()));
                };
                tokio::select! {
                    line = level1.next_line() => line,
                    e = async { match admin { Some(a) => a.watch().await, None => std::future::pending().await } } => Err(e),
                }
            };
            let text = match line {
                Ok(Line::Text(text)) => text,
                Ok(Line::Unreadable(why)) => {
                    self.malformed(&FeedError::Malformed(why.into()));
                    continue;
                }
                Err(e) => {
                    self.level1 = None;
                    self.admin = None;
                    return Err(e);
                }
            };
            let received = now_ms();
            let (fields, summary) = match parse_level1(&text) {
                Ok(Level1::Update(fields)) => (fields, false),
                Ok(Level1::Summary(fields)) => (fields, true),
                Ok(Level1::Timestamp(t)) => {
                    // IQConnect is alive even when the symbol does not trade.
                    self.clock = Some(t.date());
                    self.status.last_message_ms.store(received, Ordering::Relaxed);
                    continue;
                }
                Ok(Level1::NotFound(symbol)) => {
                    self.level1 = None;
                    self.admin = None;
                    return Err(FeedError::Refused(format!("IQFeed does not know the symbol {symbol} (n,{symbol})")));
                }
                Ok(Level1::System(System::ServerDisconnected)) => {
                    self.level1 = None;
                    self.admin = None;
                    return Err(dtn_lost());
                }
                Ok(Level1::Error(e)) => {
                    tracing::warn!(symbol = %self.symbol, source = "iqfeed", error = e, "IQConnect reported an error");
                    self.status.set_last_error(format!("IQConnect: {e}"));
                    continue;
                }
                Ok(Level1::System(_) | Level1::Ignored) => continue,
                Err(e) => {
                    self.malformed(&e);
                    continue;
                }
            };
            if fields.first().is_none_or(|s| s.trim() != &*self.symbol) {
                // Another symbol's update on our connection: not ours to count.
                continue;
            }
            match self.filter.observe(&self.layout, &fields, summary, self.clock, &self.symbol, received) {
                Ok(Some(trade)) => {
                    self.last_trade = Some((trade.exchange_ts, trade.id));
                    return Ok(vec![trade]);
                }
                Ok(None) => {}
                Err(e) => self.malformed(&e),
            }
        }
    }
}

/// History bars whose bucket has ended are closed; the newest may still be forming.
fn with_closed_flags(mut bars: Vec<Bar>, now: i64) -> Vec<Bar> {
    for bar in &mut bars {
        bar.closed = bar.close_time() <= now;
    }
    bars
}
