//! Upstream feeds. Every venue implements [`Connector`]; one [`FeedActor`] per symbol drives it: connect,
//! stream trades to the symbol's aggregator, reconnect with capped backoff after any non-terminal error.
//!
//! - [`simulated`]: the default market, no outside service needed.
//! - [`binance`]: Binance spot trades, one WebSocket connection per symbol, REST backfill and gap fill.
//! - [`iqfeed`]: DTN IQFeed through the local IQConnect client (Level 1, Lookup and Admin ports).
//! - [`shoonya`]: Shoonya (Finvasia) through Noren OMS: QuickAuth, the touchline WebSocket, TPSeries, symbol masters.
//! - [`kite`]: Zerodha Kite Connect: one shared binary WebSocket ticker, historical candles, instruments master.
//! - [`replay`]: a trades or bars CSV replayed at a chosen speed.
//! - [`backoff`]: capped exponential backoff with jitter.
//! - [`warmup`]: the first start's backfill as a whole: ready or not, progress and an estimate.

pub(crate) mod actor;
pub(crate) mod backoff;
pub(crate) mod binance;
mod body;
pub(crate) mod iqfeed;
pub(crate) mod kite;
pub(crate) mod replay;
pub(crate) mod shoonya;
pub(crate) mod simulated;
mod source;
mod warmup;

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

pub use actor::FeedActor;
pub use iqfeed::directory::LookupOutcome;
pub use iqfeed::{time::utc_ms_to_eastern, IqFeedSettings};
pub use kite::session::{access_token as kite_access_token, EXPIRY as KITE_TOKEN_EXPIRY};
pub use kite::KiteSettings;
pub use replay::{ReplayConnector, ReplayKind, ReplaySettings, Speed};
pub use shoonya::session::{sha256_hex, totp};
pub use shoonya::{wire::utc_ms_to_ist, ShoonyaSettings};
pub use source::{FeedSource, UnknownSource};
pub use warmup::{Warmup, WarmupProgress};

use crate::model::{Bar, Interval, Symbol, Trade};
use crate::persist::history::Held;

/// What went wrong upstream. Terminal errors stop the feed; the others lead to a reconnect.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("connection lost: {0}")]
    Disconnected(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("upstream refused the request: {0}")]
    Refused(String),
    #[error("feed ended: {0}")]
    Ended(String),
}

impl FeedError {
    /// Whether retrying cannot help (bad symbol, credentials refused, a finished replay).
    pub fn is_terminal(&self) -> bool {
        matches!(self, FeedError::Refused(_) | FeedError::Ended(_))
    }
}

/// One upstream connection for one symbol. Methods are called in order: `connect`, then `next_trades`
/// until it fails, then `connect` again after a backoff.
///
/// The futures need not be `Send`: each feed runs on one actix arbiter thread.
pub trait Connector: Unpin + 'static {
    /// The venue.
    fn source(&self) -> FeedSource;

    fn symbol(&self) -> &Symbol;

    /// Hands the connector the figures its feed shows, for what only it sees (malformed messages, gaps).
    fn attach_status(&mut self, _status: Arc<FeedStatus>) {}

    /// History to load before live trades start, per interval, ascending. Default: none.
    ///
    /// `held` is what the store already holds of this symbol. The feed actor keeps only bars newer than
    /// `held.last(interval)` whatever the connector returns, so a connector may ignore it; one that uses
    /// it fetches or generates only what is missing.
    fn backfill(
        &mut self,
        _now_ms: i64,
        _intervals: &[Interval],
        _held: &Held,
    ) -> impl Future<Output = Result<Vec<(Interval, Vec<Bar>)>, FeedError>> {
        async { Ok(Vec::new()) }
    }

    /// Opens (or reopens) the upstream connection and subscribes to the symbol's trades.
    fn connect(&mut self) -> impl Future<Output = Result<(), FeedError>>;

    /// Waits for the next trades (one or more, in order).
    fn next_trades(&mut self) -> impl Future<Output = Result<Vec<Trade>, FeedError>>;

    /// Bars to put in place before the trades `next_trades` just returned: closed bars the venue rebuilt
    /// for a stretch whose trades were lost (see `binance::rebuild`). Default: none.
    fn take_rebuilt_bars(&mut self) -> Vec<Bar> {
        Vec::new()
    }
}

/// Connection state of a feed, as `/api/feeds` and `/api/stats` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FeedState {
    Connecting = 0,
    Connected = 1,
    Reconnecting = 2,
    Failed = 3,
    /// A finite source (a replay) reached its end.
    Finished = 4,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Connected => "connected",
            FeedState::Reconnecting => "reconnecting",
            FeedState::Failed => "failed",
            FeedState::Finished => "finished",
        }
    }
}

/// Live figures of one feed, written by its actor, read by the API.
#[derive(Debug, Default)]
pub struct FeedStatus {
    state: AtomicU8,
    pub reconnects: AtomicU64,
    pub trades: AtomicU64,
    /// Wall-clock ms of the last message from upstream; 0 before the first.
    pub last_message_ms: AtomicI64,
    /// Upstream messages that could not be decoded and were skipped.
    pub malformed: AtomicU64,
    /// Trades fetched over REST to fill gaps in the trade ids.
    pub gap_trades_filled: AtomicU64,
    /// Gaps that could not be filled (completely).
    pub gaps_unfilled: AtomicU64,
    /// Closed bars rebuilt from the venue's own bars after gaps that trades could not fill.
    pub bars_rebuilt: AtomicU64,
    /// Trades received per second over the last sampled second (see [`FeedStatus::sample_rate`]).
    pub trades_per_second: AtomicU64,
    trades_at_last_sample: AtomicU64,
    /// The most recent error (why the feed reconnects or stopped), for `/api/feeds`; `state` says
    /// whether it still holds.
    last_error: std::sync::Mutex<Option<String>>,
}

impl FeedStatus {
    pub fn state(&self) -> FeedState {
        match self.state.load(Ordering::Relaxed) {
            1 => FeedState::Connected,
            2 => FeedState::Reconnecting,
            3 => FeedState::Failed,
            4 => FeedState::Finished,
            _ => FeedState::Connecting,
        }
    }

    pub fn set_state(&self, state: FeedState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn set_last_error(&self, error: impl std::fmt::Display) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Updates `trades_per_second`; call once a second.
    pub fn sample_rate(&self) {
        let total = self.trades.load(Ordering::Relaxed);
        let before = self.trades_at_last_sample.swap(total, Ordering::Relaxed);
        self.trades_per_second.store(total.saturating_sub(before), Ordering::Relaxed);
    }
}
