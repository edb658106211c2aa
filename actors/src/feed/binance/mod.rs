//! Binance spot: trades from the `<symbol>@trade` stream, one WebSocket connection per symbol, history
//! from `/api/v3/klines`, and gaps in the trade ids filled from `/api/v3/historicalTrades`.
//!
//! - [`wire`]: the documented JSON formats and their conversion into our `Trade` and `Bar`.
//! - [`connection`]: one WebSocket connection within Binance's rules (pong, 5 messages/s, 24 h cut).
//! - [`combined`]: many symbols' streams over shared connections (`combined = true`).
//! - [`rest`]: klines and historical trades.
//! - [`rebuild`]: closed bars rebuilt from klines when a gap's trades cannot be had.
//!
//! Reconnects (after a drop, a `serverShutdown` event or the 24-hour rotation) are the feed actor's:
//! capped exponential backoff with jitter, counted in `FeedStatus::reconnects`.
//!
//! Both base URLs are settings: the tests point them at a local server speaking Binance's wire format.

pub(crate) mod combined;
pub(crate) mod connection;
pub(crate) mod exchange_info;
pub(crate) mod rebuild;
pub(crate) mod rest;
pub(crate) mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use tokio::sync::mpsc;

use self::combined::{CombinedStreams, Delivery};
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
    /// Share connections between symbols (combined streams) instead of one connection per symbol.
    pub combined: bool,
    /// Streams per shared connection (Binance allows at most 1024).
    pub streams_per_connection: usize,
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
            combined: false,
            streams_per_connection: combined::MAX_STREAMS_PER_CONNECTION,
        }
    }
}

/// The Binance venue for one symbol.
pub struct BinanceConnector {
    symbol: Symbol,
    stream_url: String,
    rest: RestClient,
    settings: BinanceSettings,
    /// Shared connections, when combined streams are on.
    combined: Option<CombinedStreams>,
    upstream: Option<Upstream>,
    /// Id and exchange time of the last trade handed on; the next one must be `last_id + 1`.
    last_id: Option<u64>,
    last_ts: Option<i64>,
    /// The intervals the symbol's aggregator builds (known from the backfill call).
    intervals: Vec<Interval>,
    /// Bars rebuilt after an unfilled gap, waiting for the feed actor (see [`Connector::take_rebuilt_bars`]).
    rebuilt: Vec<Bar>,
    status: Arc<FeedStatus>,
}

impl BinanceConnector {
    /// `combined`: the shared connections to use instead of a connection of its own.
    pub fn new(
        symbol: Symbol,
        settings: &BinanceSettings,
        combined: Option<CombinedStreams>,
    ) -> Result<BinanceConnector, FeedError> {
        let stream_url = format!("{}/ws/{}@trade", settings.ws_url.trim_end_matches('/'), symbol.to_ascii_lowercase());
        let rest = RestClient::new(
            &settings.rest_url,
            Some(settings.api_key.clone()),
            Duration::from_millis(settings.rest_timeout_ms.max(1)),
        )?;
        Ok(BinanceConnector {
            symbol,
            stream_url,
            rest,
            settings: settings.clone(),
            combined,
            upstream: None,
            last_id: None,
            last_ts: None,
            intervals: Interval::ALL.to_vec(),
            rebuilt: Vec::new(),
            status: Arc::default(),
        })
    }

    /// Trades after `last` up to (not including) `next`, from REST, and whether that is all of them;
    /// what cannot be had is logged.
    async fn fill_gap(&mut self, last: u64, next: u64) -> (Vec<Trade>, bool) {
        let (from, to) = (last + 1, next - 1);
        let missing = to - from + 1;
        let (symbol, source) = (&self.symbol, self.source().as_str());
        if missing > self.settings.max_gap_trades {
            self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%symbol, source, from, to, missing, "trade gap too large to fetch; rebuilding bars from klines");
            return (Vec::new(), false);
        }
        match self.rest.trades_between(symbol, from, to, now_ms()).await {
            Ok(trades) => {
                self.status.gap_trades_filled.fetch_add(trades.len() as u64, Ordering::Relaxed);
                let complete = trades.len() as u64 >= missing;
                if !complete {
                    self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(%symbol, source, from, to, fetched = trades.len(), "filled a trade gap from REST");
                (trades, complete)
            }
            Err(e) => {
                self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%symbol, source, from, to, error = %e, "could not fetch missed trades; rebuilding bars from klines");
                (Vec::new(), false)
            }
        }
    }

    /// After a gap that trades could not fill: the closed bars between `from` and `to` come from klines
    /// (queued for the feed actor), and of the trades that were fetched only those after every rebuilt
    /// bucket are kept, so none is counted twice.
    async fn rebuild(&mut self, from: i64, to: i64, fetched: Vec<Trade>) -> Vec<Trade> {
        let (symbol, source) = (&self.symbol, "binance");
        let (bars, errors) = rebuild::rebuild(&self.rest, symbol, &self.intervals, from, to, now_ms()).await;
        for (interval, error) in &errors {
            tracing::warn!(%symbol, source, %interval, %error, "could not rebuild bars from klines");
        }
        if bars.is_empty() {
            return fetched;
        }
        tracing::info!(%symbol, source, bars = bars.len(), from, to, "rebuilt the bars of a trade gap from klines");
        self.status.bars_rebuilt.fetch_add(bars.len() as u64, Ordering::Relaxed);
        self.rebuilt.extend(bars);
        // Rebuilt buckets of every interval end at or before the finest interval's bucket holding `to`.
        let keep_from = self.intervals.iter().min().map_or(to, |iv| iv.align(to));
        fetched.into_iter().filter(|t| t.exchange_ts >= keep_from).collect()
    }

    fn malformed(&self, error: &FeedError) {
        self.status.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(symbol = %self.symbol, source = self.source().as_str(), %error, "skipped a malformed message");
    }
}

impl Connector for BinanceConnector {
    fn source(&self) -> crate::feed::FeedSource {
        crate::feed::FeedSource::Binance
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    fn attach_status(&mut self, status: Arc<FeedStatus>) {
        self.status = status;
    }

    /// 1m klines for `backfill_days` (every interval of 1m and up is resampled from them) and 1s klines
    /// for `backfill_fine_hours` (the sub-minute intervals).
    async fn backfill(
        &mut self,
        now: i64,
        intervals: &[Interval],
        _held: &Held,
    ) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        self.intervals = intervals.to_vec();
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
        if let Some(Upstream::Own(old)) = self.upstream.take() {
            old.close().await;
        }
        self.upstream = Some(match &self.combined {
            Some(shared) => Upstream::Shared(shared.subscribe(&self.symbol)),
            None => {
                let rotate_after = Duration::from_secs(self.settings.reconnect_after_secs.max(1));
                Upstream::Own(Box::new(
                    Connection::open(&self.stream_url, rotate_after, self.settings.max_messages_per_second).await?,
                ))
            }
        });
        Ok(())
    }

    fn take_rebuilt_bars(&mut self) -> Vec<Bar> {
        std::mem::take(&mut self.rebuilt)
    }

    /// The next trade, preceded by any trades its id shows were missed.
    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        loop {
            let upstream = self.upstream.as_mut().ok_or_else(|| FeedError::Disconnected("not connected".into()))?;
            let text = match upstream.next_text().await {
                Ok(text) => text,
                Err(e) => {
                    self.upstream = None;
                    return Err(e);
                }
            };
            let received = now_ms();
            let event = match wire::decode(&text) {
                Ok(StreamMessage::Trade(event)) => event,
                Ok(StreamMessage::Other) => continue,
                Ok(StreamMessage::ServerShutdown) => {
                    if let Some(Upstream::Own(conn)) = self.upstream.take() {
                        conn.close().await;
                    }
                    return Err(FeedError::Disconnected(
                        "serverShutdown event: reconnecting ahead of the shutdown".into(),
                    ));
                }
                Err(e) => {
                    self.malformed(&e);
                    continue;
                }
            };
            if !event.symbol.eq_ignore_ascii_case(&self.symbol) {
                self.malformed(&FeedError::Malformed(format!(
                    "trade for {} on the {} stream",
                    event.symbol, self.symbol
                )));
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
                Some(last) if trade.id > last + 1 => {
                    let from = self.last_ts.unwrap_or(trade.exchange_ts);
                    match self.fill_gap(last, trade.id).await {
                        // Recent enough for the aggregator to take every fetched trade.
                        (trades, true) if trade.exchange_ts - from <= rebuild::FILL_ONLY_WITHIN_MS => trades,
                        (trades, _) => self.rebuild(from, trade.exchange_ts, trades).await,
                    }
                }
                _ => Vec::new(),
            };
            self.last_id = Some(trade.id);
            self.last_ts = Some(trade.exchange_ts);
            out.push(trade);
            return Ok(out);
        }
    }
}

/// Where a connector's frames come from.
enum Upstream {
    Own(Box<Connection>),
    Shared(mpsc::UnboundedReceiver<Delivery>),
}

impl Upstream {
    async fn next_text(&mut self) -> Result<String, FeedError> {
        match self {
            Upstream::Own(conn) => conn.next_text().await,
            Upstream::Shared(frames) => {
                frames.recv().await.unwrap_or_else(|| Err(FeedError::Disconnected("combined streams stopped".into())))
            }
        }
    }
}

impl Drop for BinanceConnector {
    /// A removed feed leaves its shared connection.
    fn drop(&mut self) {
        if let (Some(shared), Some(Upstream::Shared(_))) = (&self.combined, &self.upstream) {
            shared.unsubscribe(&self.symbol);
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
