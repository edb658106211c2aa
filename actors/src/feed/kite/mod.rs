//! Zerodha Kite Connect (Indian exchanges: NSE, BSE, NFO, BFO, CDS, BCD, MCX). One connector per
//! symbol; symbols are named `EXCHANGE:TRADINGSYMBOL` (`NSE:INFY`), as Kite's quote API names them.
//!
//! - [`instruments`]: the instruments master (CSV) that turns those names into instrument tokens.
//! - [`ticker`]: the WebSocket ticker, one connection shared by every Kite feed of the process.
//! - [`wire`]: the ticker's binary packets and text messages.
//! - [`trades`]: the rule that turns consecutive `full` packets into trades.
//! - [`rest`]: historical candles for the backfill (rate limited), the master's download, auth headers.
//! - [`session`]: the login's second step, request token -> access token (`candlecast kite login`).
//!
//! Kite's access tokens expire every day: a 403 (ticker or REST) stops the feed with "token expired or
//! invalid" in `/api/feeds` and `/health`; the token itself is never logged nor put in an error.

pub(crate) mod instruments;
pub(crate) mod rest;
pub(crate) mod session;
pub(crate) mod ticker;
pub(crate) mod trades;
pub(crate) mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::ArbiterHandle;
use chrono::{Days, NaiveDate};
use serde::Deserialize;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

use self::instruments::{split_name, Instruments};
use self::rest::{CandleInterval, KiteRest, RateLimiter, REQUESTS_PER_SECOND};
use self::ticker::{Delivery, Ticker};
use self::trades::{ist_day, TradeDeriver};
use super::{Connector, FeedError, FeedStatus};
use crate::model::{now_ms, resample, Bar, Interval, Symbol, Trade};
use crate::persist::history::Held;
use crate::symbol_master::SymbolMaster;

/// A fetched master is used this long before it is fetched again (Kite publishes it once a day).
const INSTRUMENTS_TTL: Duration = Duration::from_secs(6 * 3600);

/// Settings of the Kite feed (`[feed.kite]` in the config).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KiteSettings {
    /// The Kite Connect app's API key.
    pub api_key: String,
    /// The day's access token (from the login flow). Never logged; prefer the environment
    /// (`CANDLECAST__FEED__KITE__ACCESS_TOKEN`).
    pub access_token: String,
    /// The app's API secret: only `candlecast kite login` uses it (the request-token checksum). Never
    /// logged; prefer the environment (`CANDLECAST__FEED__KITE__API_SECRET`).
    pub api_secret: String,
    /// The ticker's WebSocket URL; `api_key` and `access_token` are added as query parameters.
    pub ws_url: String,
    /// The REST base URL (historical candles).
    pub api_url: String,
    /// Where the instruments master comes from: an `https://` URL, or `file:<path>` of a saved copy.
    pub instruments_url: String,
    /// Days of minute candles loaded at start, for 1m and coarser intervals (0: none).
    pub backfill_days: u32,
    /// Daily candles loaded at start, for 1d and 1w (0: those come from the minute candles).
    pub backfill_daily_days: u32,
    /// Connect and request timeout, ms; also how long the ticker may stay silent (it sends a heartbeat
    /// every second) before the connection counts as lost.
    pub timeout_ms: u64,
}

impl Default for KiteSettings {
    fn default() -> Self {
        KiteSettings {
            api_key: String::new(),
            access_token: String::new(),
            api_secret: String::new(),
            ws_url: "wss://ws.kite.trade".into(),
            api_url: "https://api.kite.trade".into(),
            instruments_url: "https://api.kite.trade/instruments".into(),
            backfill_days: 5,
            backfill_daily_days: 365,
            timeout_ms: 10_000,
        }
    }
}

/// The key and token stay out of logs and error messages, including `{:?}` of the whole configuration.
impl std::fmt::Debug for KiteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("KiteSettings")
            .field("api_key", &hidden(&self.api_key))
            .field("access_token", &hidden(&self.access_token))
            .field("api_secret", &hidden(&self.api_secret))
            .field("ws_url", &self.ws_url)
            .field("api_url", &self.api_url)
            .field("instruments_url", &self.instruments_url)
            .field("backfill_days", &self.backfill_days)
            .field("backfill_daily_days", &self.backfill_daily_days)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// `text` with the key and the token replaced: for every error built from an outside library's message.
pub fn redact(text: &str, settings: &KiteSettings) -> String {
    let mut out = text.to_owned();
    for secret in [&settings.access_token, &settings.api_key, &settings.api_secret] {
        if secret.len() >= 4 {
            out = out.replace(secret.as_str(), "<redacted>");
        }
    }
    out
}

/// What all Kite feeds of a process share: the ticker connection, the historical rate limit and the
/// instruments master.
#[derive(Clone)]
pub struct KiteShared {
    ticker: Ticker,
    limiter: RateLimiter,
    instruments: Arc<Mutex<Option<Fetched>>>,
    /// Where each loaded master is published for the symbol search.
    master: SymbolMaster,
}

/// The master and when it was fetched.
type Fetched = (Instant, Arc<Instruments>);

impl KiteShared {
    /// Starts the ticker's task on `arbiter` (it connects on the first subscription only).
    pub fn start(settings: &KiteSettings, arbiter: &ArbiterHandle, master: SymbolMaster) -> KiteShared {
        KiteShared {
            ticker: Ticker::start(settings, arbiter),
            limiter: RateLimiter::per_second(REQUESTS_PER_SECOND),
            instruments: Arc::default(),
            master,
        }
    }

    /// The master, fetched once for every feed (concurrent callers wait for the one download).
    async fn instruments(&self, rest: &KiteRest) -> Result<Arc<Instruments>, FeedError> {
        let mut cached = self.instruments.lock().await;
        if let Some((at, master)) = cached.as_ref() {
            if at.elapsed() < INSTRUMENTS_TTL {
                return Ok(master.clone());
            }
        }
        let master = Arc::new(rest.instruments().await?);
        if master.skipped > 0 {
            tracing::warn!(source = "kite", skipped = master.skipped, "instruments master: skipped unreadable rows");
        }
        tracing::info!(source = "kite", instruments = master.len(), "instruments master loaded");
        self.master.replace("kite", "", master.listing());
        *cached = Some((Instant::now(), master.clone()));
        Ok(master)
    }
}

/// Kite for one symbol.
pub struct KiteConnector {
    symbol: Symbol,
    settings: KiteSettings,
    shared: KiteShared,
    rest: KiteRest,
    token: Option<u32>,
    frames: Option<mpsc::UnboundedReceiver<Delivery>>,
    deriver: TradeDeriver,
    status: Arc<FeedStatus>,
}

impl KiteConnector {
    pub fn new(symbol: Symbol, settings: &KiteSettings, shared: &KiteShared) -> Result<KiteConnector, FeedError> {
        if split_name(&symbol).is_none() {
            return Err(FeedError::Refused(format!(
                "Kite symbols are named EXCHANGE:TRADINGSYMBOL (e.g. NSE:INFY), not {symbol:?}"
            )));
        }
        Ok(KiteConnector {
            rest: KiteRest::new(settings, shared.limiter.clone())?,
            symbol,
            settings: settings.clone(),
            shared: shared.clone(),
            token: None,
            frames: None,
            deriver: TradeDeriver::default(),
            status: Arc::default(),
        })
    }

    /// The symbol's instrument token, from the master. Unknown symbols are refused (terminal).
    async fn token(&mut self) -> Result<u32, FeedError> {
        if let Some(token) = self.token {
            return Ok(token);
        }
        if self.settings.access_token.is_empty() {
            return Err(FeedError::Refused(
                "feed.kite.access_token is empty: set CANDLECAST__FEED__KITE__ACCESS_TOKEN".into(),
            ));
        }
        let master = self.shared.instruments(&self.rest).await?;
        let Some(instrument) = master.get(&self.symbol) else {
            return Err(FeedError::Refused(format!(
                "{} is not in Kite's instruments master ({} instruments): check the exchange and the tradingsymbol",
                self.symbol,
                master.len()
            )));
        };
        self.token = Some(instrument.token);
        Ok(instrument.token)
    }

    fn malformed(&self, why: &str) {
        self.status.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(symbol = %self.symbol, source = "kite", error = why, "skipped a malformed packet");
    }

    /// Minute candles (for 1m and up) and day candles (1d, 1w) of the last days, as bars per interval.
    async fn history(&mut self, now: i64, intervals: &[Interval]) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        let s = self.settings.clone();
        let wants = |f: fn(&Interval) -> bool| intervals.iter().any(f);
        let minutes_wanted = s.backfill_days > 0 && wants(|iv| *iv >= Interval::M1);
        let daily_wanted = s.backfill_daily_days > 0 && wants(|iv| *iv >= Interval::D1);
        if !(minutes_wanted || daily_wanted) {
            return Ok(Vec::new());
        }
        let token = self.token().await?;
        let today = ist_date(now);
        let mut bad = 0;
        let mut fetch = async |interval: CandleInterval, days: u32| -> Result<Vec<Bar>, FeedError> {
            let from = today.checked_sub_days(Days::new(u64::from(days.saturating_sub(1)))).unwrap_or(today);
            let (candles, malformed) = self.rest.candles(token, interval, from, today).await?;
            bad += malformed;
            let iv = if interval == CandleInterval::Day { Interval::D1 } else { Interval::M1 };
            Ok(candles.iter().map(|c| c.to_bar(&self.symbol, iv)).collect())
        };
        let minutes = if minutes_wanted { fetch(CandleInterval::Minute, s.backfill_days).await? } else { Vec::new() };
        let daily = if daily_wanted { fetch(CandleInterval::Day, s.backfill_daily_days).await? } else { Vec::new() };
        self.status.malformed.fetch_add(bad, Ordering::Relaxed);
        // The live hand-over: the volume of the last minute bars' IST day is already in the history.
        if let Some(last) = minutes.last() {
            let secs = |b: &Bar| (b.open_time / 1000).clamp(0, i64::from(u32::MAX)) as u32;
            let day = ist_day(secs(last));
            let volume: f64 = minutes.iter().rev().take_while(|b| ist_day(secs(b)) == day).map(|b| b.volume).sum();
            self.deriver.baseline_from_history(volume as u64, secs(last));
        }
        let daily = if daily.is_empty() { resample(&minutes, Interval::D1) } else { daily };
        let mut out = Vec::new();
        for &iv in intervals {
            let bars = match iv {
                // Kite has no history finer than a minute.
                iv if iv < Interval::M1 => Vec::new(),
                Interval::M1 => minutes.clone(),
                Interval::D1 => daily.clone(),
                Interval::W1 => resample(&daily, iv),
                iv => resample(&minutes, iv),
            };
            if !bars.is_empty() {
                out.push((iv, with_closed_flags(bars, now)));
            }
        }
        Ok(out)
    }
}

impl Drop for KiteConnector {
    /// A removed feed leaves the shared ticker connection.
    fn drop(&mut self) {
        if let (Some(token), Some(_)) = (self.token, self.frames.as_ref()) {
            self.shared.ticker.unsubscribe(token);
        }
    }
}

/// The IST calendar date of a UTC time in ms (India has no DST).
fn ist_date(ms: i64) -> NaiveDate {
    let shifted = ms + 19_800_000;
    chrono::DateTime::from_timestamp_millis(shifted).map_or(NaiveDate::MIN, |t| t.date_naive())
}

fn lost_error(refused: bool, reason: String) -> FeedError {
    if refused {
        FeedError::Refused(reason)
    } else {
        FeedError::Disconnected(reason)
    }
}

impl Connector for KiteConnector {
    fn source(&self) -> crate::feed::FeedSource {
        crate::feed::FeedSource::Kite
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    fn attach_status(&mut self, status: Arc<FeedStatus>) {
        self.status = status;
    }

    async fn backfill(
        &mut self,
        now: i64,
        intervals: &[Interval],
        _held: &Held,
    ) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        self.history(now, intervals).await
    }

    /// Resolves the symbol (once), subscribes its token on the shared ticker and waits for it to take.
    async fn connect(&mut self) -> Result<(), FeedError> {
        self.frames = None;
        let token = self.token().await?;
        let mut frames = self.shared.ticker.subscribe(token);
        // The ticker's connect has its own timeout; this one covers waiting behind other subscriptions.
        let within = Duration::from_millis(self.settings.timeout_ms.max(1)) * 2;
        let wait = async {
            loop {
                match frames.recv().await {
                    Some(Delivery::Connected) => return Ok(()),
                    Some(Delivery::Lost { refused, reason }) => return Err(lost_error(refused, reason)),
                    Some(Delivery::Malformed(why)) => self.malformed(&why),
                    Some(Delivery::Tick(_) | Delivery::Notice(_)) => {}
                    None => return Err(FeedError::Disconnected("the Kite ticker task stopped".into())),
                }
            }
        };
        match tokio::time::timeout(within, wait).await {
            Ok(Ok(())) => {
                self.frames = Some(frames);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(FeedError::Connect(format!("Kite ticker: not subscribed within {within:?}"))),
        }
    }

    /// The next trade derived from the instrument's `full` packets (see [`trades`]).
    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        loop {
            let Some(frames) = self.frames.as_mut() else {
                return Err(FeedError::Disconnected("not connected".into()));
            };
            let delivery = frames.recv().await;
            match delivery {
                Some(Delivery::Tick(tick)) => {
                    let received = now_ms();
                    self.status.last_message_ms.store(received, Ordering::Relaxed);
                    if let Some(trade) = self.deriver.observe(&tick, &self.symbol, received) {
                        return Ok(vec![trade]);
                    }
                }
                Some(Delivery::Malformed(why)) => self.malformed(&why),
                Some(Delivery::Notice(why)) => {
                    self.status.set_last_error(format!("Kite ticker: {why}"));
                }
                Some(Delivery::Connected) => {}
                Some(Delivery::Lost { refused, reason }) => {
                    self.frames = None;
                    return Err(lost_error(refused, reason));
                }
                None => {
                    self.frames = None;
                    return Err(FeedError::Disconnected("the Kite ticker task stopped".into()));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let s =
            KiteSettings { api_key: "kitekey123".into(), access_token: "tok-SECRET-42".into(), ..Default::default() };
        let shown = format!("{s:?}");
        assert!(!shown.contains("tok-SECRET-42") && !shown.contains("kitekey123"), "{shown}");
        let msg = redact("GET wss://ws.kite.trade?api_key=kitekey123&access_token=tok-SECRET-42 failed", &s);
        assert_eq!(msg, "GET wss://ws.kite.trade?api_key=<redacted>&access_token=<redacted> failed");
        assert!(rest::TOKEN_REFUSED.contains("token expired or invalid"));
    }

    #[test]
    fn ist_dates() {
        // 18:29:59Z is still the same IST date; 18:30Z is the next.
        assert_eq!(ist_date(1_764_959_399_000), NaiveDate::from_ymd_opt(2025, 12, 5).unwrap());
        assert_eq!(ist_date(1_764_959_400_000), NaiveDate::from_ymd_opt(2025, 12, 6).unwrap());
    }
}
