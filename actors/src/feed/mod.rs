//! Upstream feeds. Every venue implements [`Connector`]; one [`FeedActor`] per symbol drives it: connect,
//! stream trades to the symbol's aggregator, reconnect with capped backoff after any non-terminal error.
//!
//! - [`simulated`]: the default market, no outside service needed.
//! - [`backoff`]: capped exponential backoff with jitter.

pub mod actor;
pub mod backoff;
pub mod simulated;

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

pub use actor::FeedActor;

use crate::model::{Bar, Interval, Symbol, Trade};

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
    /// Short name of the venue, e.g. `simulated`, `binance`.
    fn source(&self) -> &'static str;

    fn symbol(&self) -> &Symbol;

    /// History to load before live trades start, per interval, ascending. Default: none.
    fn backfill(&mut self, _now_ms: i64, _intervals: &[Interval]) -> impl Future<Output = Result<Vec<(Interval, Vec<Bar>)>, FeedError>> {
        async { Ok(Vec::new()) }
    }

    /// Opens (or reopens) the upstream connection and subscribes to the symbol's trades.
    fn connect(&mut self) -> impl Future<Output = Result<(), FeedError>>;

    /// Waits for the next trades (one or more, in order).
    fn next_trades(&mut self) -> impl Future<Output = Result<Vec<Trade>, FeedError>>;
}

/// Connection state of a feed, as `/api/feeds` and `/api/stats` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FeedState {
    Connecting = 0,
    Connected = 1,
    Reconnecting = 2,
    Failed = 3,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Connected => "connected",
            FeedState::Reconnecting => "reconnecting",
            FeedState::Failed => "failed",
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
}

impl FeedStatus {
    pub fn state(&self) -> FeedState {
        match self.state.load(Ordering::Relaxed) {
            1 => FeedState::Connected,
            2 => FeedState::Reconnecting,
            3 => FeedState::Failed,
            _ => FeedState::Connecting,
        }
    }

    pub fn set_state(&self, state: FeedState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}
