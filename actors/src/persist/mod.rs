//! Persistence: bars that outlive the process.
//!
//! The hub forwards every closed bar and correction to the [`Persister`](actor::Persister), which writes
//! them in batches to a [`Store`]; while the store is unreachable it journals them on disk and retries.
//! History requests read through [`History`](history::History), which merges the store with the
//! aggregators' in-memory window.
//!
//! - [`settings`]: `[store]` in the config, and [`open`] to build the configured store.
//! - [`memory`]: a store in memory (tests; the reference for what every store must do).
//! - [`embedded`]: a redb file under `./data` (`kind = "embedded"`).
//! - [`segments`]: an append-only log and column segments under `./data/segments` (`kind = "segments"`).
//! - [`line_protocol`]: InfluxDB line protocol, shared by both InfluxDB dialects.
//! - [`influx`]: HTTP error messages and row handling shared by both InfluxDB dialects.
//! - [`influx_v1`], [`influx_v2`]: InfluxDB through its 1.x API (`/write`, InfluxQL) or its 2.x API.
//! - [`journal`]: the on-disk spill of batches the store did not take yet.
//! - [`dead_letters`]: bars that will never be written (the store refuses them), kept for a human.
//! - [`actor`]: the persistence actor: batching, backoff, journal, figures.
//! - [`admission`]: backfills take turns, so that feeds make them only as fast as persistence stores them.
//! - [`history`]: the one history service of REST, WebSocket and backtests.
//! - [`script_data`]: script-created symbols and executed trades (embedded and segment stores).
//! - [`retention`]: `[store.retention]`, and the background loop that deletes expired bars.

pub(crate) mod actor;
pub(crate) mod admission;
pub(crate) mod dead_letters;
pub(crate) mod durability;
pub(crate) mod embedded;
pub(crate) mod history;
pub(crate) mod influx;
pub(crate) mod influx_v1;
pub(crate) mod influx_v2;
pub(crate) mod isolate;
pub(crate) mod journal;
pub(crate) mod line_protocol;
#[cfg(any(test, feature = "test-util"))]
mod memory;
pub(crate) mod retention;
pub(crate) mod script_data;
pub(crate) mod segments;
pub(crate) mod settings;
#[cfg(test)]
mod store_tests;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::model::{Bar, Interval, Symbol};

pub use admission::{BackfillAdmission, BackfillPermit};
pub use durability::{set_memory_trim, Announced, Durability};
pub use embedded::{EmbeddedStore, FILE_NAME as EMBEDDED_FILE_NAME};
pub use history::{Held, History, HistoryError};
pub use influx_v2::V2 as InfluxV2;
pub use journal::Journal;
pub use line_protocol::encode as encode_line_protocol;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryStore;
pub use retention::{spawn as spawn_retention, wall_clock, Expired, RetentionSettings, RetentionStats, Schedule};
pub use script_data::StoredTrade;
pub use segments::{Options as SegmentOptions, SegmentStore};
pub use settings::{open, InfluxApi, InfluxSettings, Secret, StoreKind, StoreSettings, StoreSettingsError};

/// A closed bar as stored: the bar, the source of its symbol, and when candlecast last revised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBar {
    pub bar: Bar,
    /// Where the symbol's trades come from (`simulated`, `binance`, ...): the `source` tag in InfluxDB.
    pub source: Arc<str>,
    /// Wall-clock ms at which candlecast closed or corrected the bar (what `since=` compares with).
    pub revised: i64,
}

/// Which bars of one symbol and interval to read from a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub interval: Interval,
    /// Inclusive open time, ms.
    pub start: Option<i64>,
    /// Exclusive open time, ms.
    pub end: Option<i64>,
    /// At most this many bars: the newest ones of the range.
    pub limit: usize,
}

/// A future a store returns; `'static` so actors can spawn it.
pub type StoreFuture<T> = BoxFuture<'static, Result<T, StoreError>>;

/// Where closed bars go and history comes from. Every implementation keys bars by
/// (symbol, interval, open time): writing a bar again replaces it, so replays never duplicate a bar.
pub trait Store: Send + Sync + 'static {
    /// `segments`, `embedded`, `influxdb-v1`, `influxdb-v2` or `memory`, for `/api/stats`.
    fn kind(&self) -> &'static str;

    /// Whether the store answers and accepts our configuration (credentials, database or bucket).
    fn check(&self) -> StoreFuture<()>;

    /// Upserts `bars`, all or none as far as the store allows (a retry writes them all again).
    fn write(&self, bars: Arc<[StoredBar]>) -> StoreFuture<()>;

    /// Bars of `symbol` in `range`, ascending by open time.
    fn bars(&self, symbol: &Symbol, range: Range) -> StoreFuture<Vec<Bar>>;

    /// Bars of `symbol` and `interval` revised at or after `since` (wall-clock ms), ascending by open
    /// time; the `limit` newest when more match.
    fn revised_since(&self, symbol: &Symbol, interval: Interval, since: i64, limit: usize) -> StoreFuture<Vec<Bar>>;

    /// Deletes bars of each `(interval, before)` whose open time is before `before`: at most `max_bars` in
    /// all, the oldest of each symbol first, in one transaction (see [`retention`]). Stores that keep bars
    /// by their own rules (InfluxDB retention policies) delete nothing here.
    fn expire(&self, cutoffs: Vec<(Interval, i64)>, max_bars: usize) -> StoreFuture<Expired> {
        let _ = (cutoffs, max_bars);
        Box::pin(std::future::ready(Ok(Expired::default())))
    }

    /// Bars held per interval and bytes on disk, if the store can tell cheaply (`None` otherwise).
    fn usage(&self) -> StoreFuture<Option<Usage>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Releases what the store holds (files, locks) once calls in progress end; later calls fail.
    fn close(&self) -> StoreFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether the store keeps script data ([`script_data`]): script-created symbols and executed trades.
    /// Stores that do not answer the calls below with nothing, and that data lives only in memory.
    fn keeps_script_data(&self) -> bool {
        false
    }

    /// Records a symbol a script created (at `created`, wall-clock ms), to create it again at start.
    fn add_script_symbol(&self, _symbol: &str, _created: i64) -> StoreFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Script-created symbols, oldest first.
    fn script_symbols(&self) -> StoreFuture<Vec<String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Adds executed trades, keeping at most the newest `keep_per_symbol` (by trade time) of each symbol.
    fn add_executed_trades(&self, _trades: Arc<[StoredTrade]>, _keep_per_symbol: usize) -> StoreFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Stored executed trades, at most the newest `per_symbol` of each symbol, each symbol's in time order.
    fn executed_trades(&self, _per_symbol: usize) -> StoreFuture<Vec<StoredTrade>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

/// What a store holds, for `/api/stats` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bars stored per interval, indexed by [`Interval::index`].
    pub bars: [u64; 16],
    /// Size of the store's file on disk (free pages included: a file does not shrink when bars expire,
    /// its freed pages take the next bars).
    pub file_bytes: u64,
}

impl Usage {
    pub fn total_bars(&self) -> u64 {
        self.bars.iter().sum()
    }

    pub fn bars(&self, interval: Interval) -> u64 {
        self.bars[interval.index()]
    }

    /// The file's bytes shared out by bar count: an estimate, but a close one, since every stored bar
    /// costs the same whatever its interval (the same fixed-size fields; the key's interval name differs
    /// by one byte at most, and symbol and source are the same across a symbol's intervals).
    pub fn bytes(&self, interval: Interval) -> u64 {
        let total = self.total_bars();
        if total == 0 {
            return 0;
        }
        (u128::from(self.file_bytes) * u128::from(self.bars(interval)) / u128::from(total)) as u64
    }
}

/// What went wrong with a store. [`StoreError::is_configuration`] tells a setting to fix from an outage
/// to wait out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error("the store is unreachable: {0}")]
    Unreachable(String),
    #[error("the store refused our credentials: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Missing(String),
    #[error("the store refused the request: {0}")]
    Rejected(String),
    #[error("unexpected answer from the store: {0}")]
    Protocol(String),
    #[error("storage error: {0}")]
    Storage(String),
}

impl StoreError {
    /// Whether retrying cannot help until someone changes the configuration (or the server's).
    pub fn is_configuration(&self) -> bool {
        matches!(self, StoreError::Open(_) | StoreError::Unauthorized(_) | StoreError::Missing(_))
    }

    /// Whether the store refused what a write holds (a bad value, a field type conflict) rather than
    /// failing to take it: retrying the same bars cannot help, a smaller batch without them can.
    pub fn is_data(&self) -> bool {
        matches!(self, StoreError::Rejected(_))
    }
}

/// The `limit` newest of `bars` (ascending), in place.
pub(crate) fn keep_newest(bars: &mut Vec<Bar>, limit: usize) {
    if bars.len() > limit {
        bars.drain(..bars.len() - limit);
    }
}
