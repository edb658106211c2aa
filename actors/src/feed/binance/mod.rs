//! Binance spot: trades from the `<symbol>@trade` stream, one WebSocket connection per symbol, history
//! from `/api/v3/klines`, and gaps in the trade ids filled from `/api/v3/historicalTrades`.
//!
//! - [`wire`]: the documented JSON formats and their conversion into our `Trade` and `Bar`.
//! - [`connection`]: one WebSocket connection within Binance's rules (pong, 5 messages/s, 24 h cut).
//! - [`rest`]: klines and historical trades.
//!
//! Reconnects (after a drop, a `serverShutdown` event or the 24-hour rotation) are the feed actor's:
//! capped exponential backoff with jitter, counted in `FeedStatus::reconnects`.
//!
//! Both base URLs are settings: the tests point them at a local server speaking Binance's wire format.

pub mod connection;
pub mod rest;
pub mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::connection::Connection;
use self::rest::RestClient;
use self::wire::StreamMessage;
use super::{Connector, FeedError, FeedStatus};
use crate::model::{now_ms, resample, Bar, Interval, Symbol, Trade};
use crate::persist::history::Held;

/// Settings of the Binance feed (`[feed.binance]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceSettings {
    /// Market-stream base URL; the stream path `/ws/<symbol>@trade` is appended.
    pub ws_url: String,
    /// REST base URL; `/api/v3/...` is appended.
    pub rest_url: String,
    /// Sent as `X-MBX-APIKEY` on REST calls when not empty (historical trades may need it).
    pub api_key: String,
    /// Days of 1m klines loaded at start (0: none).
    pub backfill_days: u32,
    /// Hours of 1s klines loaded at start, for the sub-minute intervals (0: none).
    pub backfill_fine_hours: u32,
    /// Frames we may send per second on one connection (Binance allows 5).
    pub max_messages_per_second: u32,
    /// Close and reopen a connection after this many seconds (Binance cuts at 24 h).
    pub reconnect_after_secs: u64,
    /// Timeout of one REST request, ms.
    pub rest_timeout_ms: u64,
    /// A gap of more trades than this is not fetched (logged and counted as unfilled).
    pub max_gap_trades: u64,
}

impl Default for BinanceSettings {
    fn default() -> Self {
        BinanceSettings {
            ws_url: "wss://stream.binance.com:9443".into(),
            rest_url: "https://api.binance.com".into(),
            api_key: String::new(),
            backfill_days: 7,
            backfill_fine_hours: 1,
            max_messages_per_second: 5,
            reconnect_after_secs: 23 * 3600 + 50 * 60,
            rest_timeout_ms: 10_000,
            max_gap_trades: 100_000,
        }
    }
}

/// The Binance venue for one symbol.
pub struct BinanceConnector {
    symbol: Symbol,
    stream_url: String,
    rest: RestClient,
    settings: BinanceSettings,
    conn: Option<Connection>,
    /// Id of the last trade handed on; the next one must be `last_id + 1`.
    last_id: Option<u64>,
    status: Arc<FeedStatus>,
}

impl BinanceConnector {
    pub fn new(symbol: Symbol, settings: &BinanceSettings) -> Result<BinanceConnector, FeedError> {
        let stream_url = format!("{}/ws/{}@trade", settings.ws_url.trim_end_matches('/'), symbol.to_ascii_lowercase());
        let rest = RestClient::new(&settings.rest_url, Some(settings.api_key.clone()), Duration::from_millis(settings.rest_timeout_ms.max(1)))?;
        Ok(BinanceConnector { symbol, stream_url, rest, settings: settings.clone(), conn: None, last_id: None, status: Arc::default() })
    }

    /// Trades after `last` up to (not including) `next`, from REST; what cannot be had is logged.
    async fn fill_gap(&mut self, last: u64, next: u64) -> Vec<Trade> {
        let (from, to) = (last + 1, next - 1);
        let missing = to - from + 1;
        let (symbol, source) = (&self.symbol, self.source());
        if missing > self.settings.max_gap_trades {
            self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%symbol, source, from, to, missing, "trade gap too large to fetch; bars miss these trades");
            return Vec::new();
        }
        match self.rest.trades_between(symbol, from, to, now_ms()).await {
            Ok(trades) => {
                self.status.gap_trades_filled.fetch_add(trades.len() as u64, Ordering::Relaxed);
                if (trades.len() as u64) < missing {
                    self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(%symbol, source, from, to, fetched = trades.len(), "filled a trade gap from REST");
                trades
            }
            Err(e) => {
                self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%symbol, source, from, to, error = %e, "could not fetch missed trades");
                Vec::new()
            }
        }
    }

    fn malformed(&self, error: &FeedError) {
        self.status.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(symbol = %self.symbol, source = self.source(), %error, "skipped a malformed message");
    }
}

impl Connector for BinanceConnector {
    fn source(&self) -> &'static str {
        "binance"
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    fn attach_status(&mut self, status: Arc<FeedStatus>) {
        self.status = status;
    }

    /// 1m klines for `backfill_days` (every interval of 1m and up is resampled from them) and 1s klines
    /// for `backfill_fine_hours` (the sub-minute intervals).
    async fn backfill(&mut self, now: i64, intervals: &[Interval], _held: &Held) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        let end = Interval::M1.align(now) + Interval::M1.millis();
        let minutes = match self.settings.backfill_days {
            0 => Vec::new(),
            days => self.rest.klines(&self.symbol, Interval::M1, end - days as i64 * 86_400_000, end, now).await?,
        };
        let wants_fine = intervals.iter().any(|iv| *iv < Interval::M1);
        let seconds = match self.settings.backfill_fine_hours {
            h if h > 0 && wants_fine => {
                let end = Interval::S1.align(now) + 1_000;
                self.rest.klines(&self.symbol, Interval::S1, end - h as i64 * 3_600_000, end, now).await?
            }
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for &iv in intervals {
            let bars = match iv {
                Interval::S1 => seconds.clone(),
                Interval::M1 => minutes.clone(),
                iv if iv < Interval::M1 => resample(&seconds, iv),
                iv => resample(&minutes, iv),
            };
            if !bars.is_empty() {
                out.push((iv, with_closed_flags(bars, now)));
            }
        }
        Ok(out)
    }

    async fn connect(&mut self) -> Result<(), FeedError> {
        if let Some(old) = self.conn.take() {
            old.close().await;
        }
        let rotate_after = Duration::from_secs(self.settings.reconnect_after_secs.max(1));
        self.conn = Some(Connection::open(&self.stream_url, rotate_after, self.settings.max_messages_per_second).await?);
        Ok(())
    }

    /// The next trade, preceded by any trades its id shows were missed.
    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        loop {
            let conn = self.conn.as_mut().ok_or_else(|| FeedError::Disconnected("not connected".into()))?;
            let text = match conn.next_text().await {
                Ok(text) => text,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            };
            let received = now_ms();
            let event = match wire::decode(&text) {
                Ok(StreamMessage::Trade(event)) => event,
                Ok(StreamMessage::Other) => continue,
                Ok(StreamMessage::ServerShutdown) => {
                    if let Some(conn) = self.conn.take() {
                        conn.close().await;
                    }
                    return Err(FeedError::Disconnected("serverShutdown event: reconnecting ahead of the shutdown".into()));
                }
                Err(e) => {
                    self.malformed(&e);
                    continue;
                }
            };
            if !event.symbol.eq_ignore_ascii_case(&self.symbol) {
                self.malformed(&FeedError::Malformed(format!("trade for {} on the {} stream", event.symbol, self.symbol)));
                continue;
            }
            let trade = match event.to_trade(&self.symbol, received) {
                Ok(trade) => trade,
                Err(e) => {
                    self.malformed(&e);
                    continue;
                }
            };
            let mut out = match self.last_id {
                // Already handed on (a replay after reconnecting, or a trade a gap fill brought).
                Some(last) if trade.id <= last => continue,
                Some(last) if trade.id > last + 1 => self.fill_gap(last, trade.id).await,
                _ => Vec::new(),
            };
            self.last_id = Some(trade.id);
            out.push(trade);
            return Ok(out);
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
