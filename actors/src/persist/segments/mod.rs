//! The segment store (`[store] kind = "segments"`): an append-only log plus immutable column segments,
//! with the index in memory. The design measured as candidate (e) in docs/BENCHMARKS.md ("Store
//! candidates"), made concurrent and durable. Files, in `<store.path>/segments/`:
//!
//! - `log`: each written batch, one framed record (crc32), fsynced before the write returns; replayed
//!   into the memtable at open, a torn tail cut off ([`log`]).
//! - `symbols`: symbol name → u32 id and source, append-only, fsynced before a new id is used ([`symbols`]).
//! - `NNNNNNNN.seg`: the memtable written out once the log holds `store.segment_rotate_bars` bars,
//!   per series in column chunks of ≤ 4,096 bars; merged by size tiers ([`segment`], [`merge`]).
//! - `floors`: retention's per-series cutoffs ([`floors`]).
//! - `script.redb`: script symbols and executed trades (the [`script_data`](super::script_data) tables),
//!   created at the first script call.
//! - `LOCK`: locked while a candlecast has the store open.
//!
//! [`index`] holds the in-memory index and the two reads; [`store`] the write path, rotation, retention
//! and usage; [`migrate`] turns a redb store ([`EmbeddedStore`](super::EmbeddedStore)) into segments on open.
//!
//! Every call runs on tokio's blocking pool. Reads never wait for the writer: they copy what they need
//! from the memtable under a short lock and read segments through an index snapshot (an `Arc`) whose
//! files stay open until the last reader lets go, even if a merge replaced them meanwhile.

mod floors;
mod index;
mod log;
mod merge;
pub(crate) mod migrate;
mod segment;
mod store;
mod symbols;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::{script_data, Expired, Range, Store, StoreError, StoreFuture, StoredBar, StoredTrade, Usage};
use crate::model::{Bar, Interval, Symbol};
use store::Shared;

/// The segment store's directory inside `store.path`.
pub const DIR_NAME: &str = "segments";

/// How long `close` waits for a merge in progress.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the store rotates and merges.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bars in the log (and memtable) before they are written out as a segment.
    pub rotate_bars: usize,
    /// Merge in a background thread after rotations (tests turn it off and merge by hand).
    pub background_merge: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { rotate_bars: 500_000, background_merge: true }
    }
}

/// See the module documentation.
pub struct SegmentStore {
    shared: Arc<Shared>,
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Storage(format!("syncing the directory {}: {e}", dir.display())))
}

impl SegmentStore {
    /// Opens (or creates) the store in `<dir>/segments`; a redb store in `dir` (`candlecast.redb`) and no
    /// segments yet: its bars are migrated first (see [`migrate`]).
    pub fn open(dir: &Path, options: Options) -> Result<SegmentStore, StoreError> {
        migrate::migrate_if_needed(dir, options)?;
        Self::open_dir(&dir.join(DIR_NAME), options)
    }

    /// Opens the store in exactly `dir`, with no migration.
    pub(crate) fn open_dir(dir: &Path, options: Options) -> Result<SegmentStore, StoreError> {
        Ok(SegmentStore { shared: Arc::new(Shared::open(dir, options)?) })
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Arc<Shared>) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<T> {
        let shared = self.shared.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                shared.check_open()?;
                f(&shared)
            })
            .await
            .map_err(|e| StoreError::Storage(format!("store task failed: {e}")))?
        }
        .boxed()
    }

    fn script<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<T> {
        self.blocking(move |s| f(&*s.script_db()?))
    }

    /// Synchronous write, for the migration and tests: `stamp` as in [`Store::write`].
    pub(crate) fn write_now(&self, bars: &[StoredBar], stamp: bool) -> Result<(), StoreError> {
        if self.shared.write(bars, stamp)? {
            merge::spawn_if_due(&self.shared);
        }
        Ok(())
    }

    /// Writes the memtable out as a segment now.
    pub(crate) fn rotate_now(&self) -> Result<(), StoreError> {
        let mut w = self.shared.writer();
        self.shared.check_open()?;
        self.shared.rotate(&mut w)
    }

    /// Runs due merges now, on this thread; returns how many ran.
    #[cfg(test)]
    pub(crate) fn merge_now(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        while merge::merge_once(&self.shared)? {
            n += 1;
        }
        Ok(n)
    }

    /// Bytes of torn tails cut off at open (log, symbols, floors).
    pub fn torn_bytes(&self) -> u64 {
        self.shared.torn_bytes.load(Ordering::Relaxed)
    }

    /// Segment files in use.
    pub fn segment_count(&self) -> usize {
        self.shared.writer().segments.len()
    }

    /// The synchronous close (the migration's).
    pub(crate) fn close_now(&self) {
        self.shared.close();
        self.shared.script.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Store for SegmentStore {
    fn kind(&self) -> &'static str {
        "segments"
    }

    fn check(&self) -> StoreFuture<()> {
        self.blocking(|s| {
            std::fs::metadata(&s.dir).map(drop).map_err(|e| StoreError::Storage(format!("{}: {e}", s.dir.display())))
        })
    }

    /// Revisions are stamped `max(revised, newest revision written + 1)`: they never go down from one
    /// batch to the next (a clock stepped back included), which `since=` relies on.
    fn write(&self, bars: Arc<[StoredBar]>) -> StoreFuture<()> {
        self.blocking(move |s| {
            if s.write(&bars, true)? {
                merge::spawn_if_due(s);
            }
            Ok(())
        })
    }

    fn bars(&self, symbol: &Symbol, range: Range) -> StoreFuture<Vec<Bar>> {
        let symbol = symbol.clone();
        self.blocking(move |s| {
            let (start, end) = (range.start.unwrap_or(i64::MIN), range.end.unwrap_or(i64::MAX));
            s.bars(&symbol, range.interval, start, end, range.limit)
        })
    }

    fn revised_since(&self, symbol: &Symbol, interval: Interval, since: i64, limit: usize) -> StoreFuture<Vec<Bar>> {
        let symbol = symbol.clone();
        self.blocking(move |s| s.revised_since(&symbol, interval, since, limit))
    }

    fn expire(&self, cutoffs: Vec<(Interval, i64)>, max_bars: usize) -> StoreFuture<Expired> {
        self.blocking(move |s| s.expire(&cutoffs, max_bars))
    }

    fn usage(&self) -> StoreFuture<Option<Usage>> {
        self.blocking(|s| s.usage().map(Some))
    }

    fn close(&self) -> StoreFuture<()> {
        let shared = self.shared.clone();
        async move {
            let script = tokio::task::spawn_blocking(move || {
                shared.close();
                shared.script.lock().unwrap_or_else(|e| e.into_inner()).take()
            })
            .await
            .map_err(|e| StoreError::Storage(format!("closing the store: {e}")))?;
            // The script database's file lock goes with its last holder: wait for calls in progress.
            let Some(mut db) = script else { return Ok(()) };
            let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        return tokio::task::spawn_blocking(move || drop(db))
                            .await
                            .map_err(|e| StoreError::Storage(format!("closing the store: {e}")))
                    }
                    Err(still) if tokio::time::Instant::now() < deadline => {
                        db = still;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(_) => return Err(StoreError::Storage(format!("calls still running after {CLOSE_TIMEOUT:?}"))),
                }
            }
        }
        .boxed()
    }

    fn keeps_script_data(&self) -> bool {
        true
    }

    fn add_script_symbol(&self, symbol: &str, created: i64) -> StoreFuture<()> {
        let symbol = symbol.to_owned();
        self.script(move |db| script_data::add_symbol(db, &symbol, created))
    }

    fn script_symbols(&self) -> StoreFuture<Vec<String>> {
        self.script(script_data::symbols)
    }

    fn add_executed_trades(&self, trades: Arc<[StoredTrade]>, keep_per_symbol: usize) -> StoreFuture<()> {
        self.script(move |db| script_data::add_trades(db, &trades, keep_per_symbol))
    }

    fn executed_trades(&self, per_symbol: usize) -> StoreFuture<Vec<StoredTrade>> {
        self.script(move |db| script_data::trades(db, per_symbol))
    }
}
