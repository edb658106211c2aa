//! The default store: one redb file (`<path>/candlecast.redb`), no server.
//!
//! Three tables:
//! - `bars`: (symbol, interval, open time) → (open, high, low, close, volume, trades, revised, source).
//!   Inserting an existing key replaces the bar: the upsert every store promises.
//! - `revisions`: (symbol, interval, revised, open time) → (), an index for `since=` polling; a bar's
//!   old entry is removed in the same transaction that revises it.
//! - `bar_counts`: interval → bars stored, kept in step by every write and deletion, so that `/api/stats`
//!   does not count millions of keys. A store of an earlier version has no such table: it is counted
//!   once when opened (and again if the counts ever disagree with the number of bars).
//!
//! Retention ([`super::retention`]) finds expired keys in a read transaction (which does not hold the
//! write lock) and deletes them, with their revision entries, in a write transaction of their own.
//!
//! and the script data tables of [`script_data`](super::script_data).
//!
//! redb is synchronous; every call runs on tokio's blocking pool. Each write is one transaction,
//! committed with redb's default durability (fsync before the commit returns), so a written batch
//! survives a crash.
//!
//! After a failed write (a full disk, EFBIG), redb refuses every later call ("previous I/O error") until
//! the database is opened again. So after any storage error the next call first reopens the file (once
//! no other call holds it): when space returns, writes succeed again without a restart, and the
//! persister's journal, which kept the failed batches, is written back.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use redb::{Database, ReadOnlyTable, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::{keep_newest, script_data, Expired, Range, Store, StoreError, StoreFuture, StoredBar, StoredTrade, Usage};
use crate::model::{Bar, Interval, Symbol};

/// (symbol, interval name, open time).
pub(super) type BarKey<'a> = (&'a str, &'a str, i64);
/// (open, high, low, close, volume, trades, revised, source).
pub(super) type BarValue<'a> = (f64, f64, f64, f64, f64, u64, i64, &'a str);

pub(super) const BARS: TableDefinition<BarKey, BarValue> = TableDefinition::new("bars");
const REVISIONS: TableDefinition<(&str, &str, i64, i64), ()> = TableDefinition::new("revisions");
/// Interval name → bars stored.
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("bar_counts");

/// Sorts after every interval name: `(symbol, LAST, i64::MAX)` is past all of a symbol's keys.
const LAST: &str = "\u{10FFFF}";

/// The database file inside the configured directory.
pub const FILE_NAME: &str = "candlecast.redb";

/// How long `close` waits for calls in progress to end.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// See the module documentation.
pub struct EmbeddedStore {
    file: PathBuf,
    /// `None` once closed (or while a reopen failed). Each call holds its own `Arc` while it runs on the
    /// blocking pool.
    db: Arc<Mutex<Option<Arc<Database>>>>,
    /// A call failed with a storage error: reopen before the next one.
    reopen: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(e.into().to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) `<dir>/candlecast.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        let file = dir.join(FILE_NAME);
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("cannot create the directory {}: {e}", dir.display())))?;
        let db = create(&file)?;
        Ok(EmbeddedStore {
            file,
            db: Arc::new(Mutex::new(Some(Arc::new(db)))),
            reopen: Arc::default(),
            closed: Arc::default(),
        })
    }

    /// Runs `f` on the blocking pool, reopening the database first if an earlier call failed.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<T> {
        let (slot, reopen, closed, file) =
            (self.db.clone(), self.reopen.clone(), self.closed.clone(), self.file.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                if reopen.load(Ordering::Acquire) && !closed.load(Ordering::Acquire) {
                    try_reopen(&slot, &file, &reopen);
                }
                let db = slot.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
                    StoreError::Storage(match closed.load(Ordering::Acquire) {
                        true => "the embedded store is closed".into(),
                        false => "the embedded store is being reopened after a storage error".into(),
                    })
                })?;
                let result = f(&db);
                if matches!(result, Err(StoreError::Storage(_))) {
                    reopen.store(true, Ordering::Release);
                }
                result
            })
            .await
            .map_err(|e| StoreError::Storage(format!("store task failed: {e}")))?
        }
        .boxed()
    }
}

/// Drops the database and opens it again, if no other call holds it now (else the next call tries).
fn try_reopen(slot: &Mutex<Option<Arc<Database>>>, file: &Path, reopen: &AtomicBool) {
    let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(db) = guard.take() {
        match Arc::try_unwrap(db) {
            Ok(db) => drop(db),
            Err(shared) => {
                *guard = Some(shared);
                return;
            }
        }
    }
    match create(file) {
        Ok(db) => {
            tracing::info!(file = %file.display(), "reopened the embedded store after a storage error");
            *guard = Some(Arc::new(db));
            reopen.store(false, Ordering::Release);
        }
        Err(e) => tracing::warn!(error = %e, "cannot reopen the embedded store yet"),
    }
}

/// Opens (or creates) the database file and every table; counts the bars of a store that has no counts.
fn create(file: &Path) -> Result<Database, StoreError> {
    let db = Database::create(file).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Open(format!(
            "{} is already open in another candlecast (one store per process; set store.path)",
            file.display()
        )),
        other => StoreError::Open(format!("{}: {}", file.display(), redb::Error::from(other))),
    })?;
    // Create every table now, so readers never meet a missing table.
    let txn = db.begin_write().map_err(storage)?;
    let had_counts = txn.list_tables().map_err(storage)?.any(|t| t.name() == COUNTS.name());
    {
        let bars = txn.open_table(BARS).map_err(storage)?;
        txn.open_table(REVISIONS).map_err(storage)?;
        script_data::create_tables(&txn)?;
        let mut counts = txn.open_table(COUNTS).map_err(storage)?;
        let mut counted = 0u64;
        for entry in counts.iter().map_err(storage)? {
            counted += entry.map_err(storage)?.1.value();
        }
        let stored = bars.len().map_err(storage)?;
        if !had_counts || counted != stored {
            recount(&bars, &mut counts)?;
            tracing::info!(file = %file.display(), bars = stored, "counted the stored bars per interval");
        }
    }
    txn.commit().map_err(storage)?;
    Ok(db)
}

/// Rebuilds `bar_counts` from the bars themselves (a store written by an earlier version).
fn recount(bars: &redb::Table<BarKey, BarValue>, counts: &mut redb::Table<&str, u64>) -> Result<(), StoreError> {
    let mut per_interval = [0u64; 16];
    for entry in bars.iter().map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        if let Ok(interval) = key.value().1.parse::<Interval>() {
            per_interval[interval.index()] += 1;
        }
    }
    for interval in Interval::ALL {
        counts.insert(interval.as_str(), per_interval[interval.index()]).map_err(storage)?;
    }
    Ok(())
}

/// Adds `added` (or takes it away) to each interval's count.
fn adjust_counts(txn: &redb::WriteTransaction, per_interval: &[u64; 16], add: bool) -> Result<(), StoreError> {
    let mut counts = txn.open_table(COUNTS).map_err(storage)?;
    for interval in Interval::ALL {
        let n = per_interval[interval.index()];
        if n == 0 {
            continue;
        }
        let now = counts.get(interval.as_str()).map_err(storage)?.map_or(0, |v| v.value());
        let next = if add { now.saturating_add(n) } else { now.saturating_sub(n) };
        counts.insert(interval.as_str(), next).map_err(storage)?;
    }
    Ok(())
}

fn write_batch(db: &Database, bars: &[StoredBar]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(storage)?;
    let mut added = [0u64; 16];
    {
        let mut table = txn.open_table(BARS).map_err(storage)?;
        let mut revisions = txn.open_table(REVISIONS).map_err(storage)?;
        for s in bars {
            let b = &s.bar;
            let iv = b.interval.as_str();
            let value = (b.open, b.high, b.low, b.close, b.volume, b.trades, s.revised, &*s.source);
            let replaced_revision =
                table.insert((&*b.symbol, iv, b.open_time), value).map_err(storage)?.map(|old| old.value().6);
            match replaced_revision {
                Some(old) => {
                    revisions.remove((&*b.symbol, iv, old, b.open_time)).map_err(storage)?;
                }
                None => added[b.interval.index()] += 1,
            }
            revisions.insert((&*b.symbol, iv, s.revised, b.open_time), ()).map_err(storage)?;
        }
    }
    adjust_counts(&txn, &added, true)?;
    txn.commit().map_err(storage)
}

/// A stored bar's key, owned: found in a read transaction, deleted in a write transaction.
type OwnedKey = (String, Interval, i64);

/// Keys of at most `max` bars older than their interval's cutoff: per interval, per symbol, oldest first.
fn expired_keys(db: &Database, cutoffs: &[(Interval, i64)], max: usize) -> Result<Vec<OwnedKey>, StoreError> {
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(BARS).map_err(storage)?;
    let mut keys = Vec::new();
    for &(interval, before) in cutoffs {
        let iv = interval.as_str();
        let mut symbol = next_symbol(&table, None)?;
        while let Some(sym) = symbol {
            if keys.len() >= max {
                return Ok(keys);
            }
            let expired = table.range((sym.as_str(), iv, i64::MIN)..(sym.as_str(), iv, before)).map_err(storage)?;
            for entry in expired.take(max - keys.len()) {
                keys.push((sym.clone(), interval, entry.map_err(storage)?.0.value().2));
            }
            symbol = next_symbol(&table, Some(&sym))?;
        }
    }
    Ok(keys)
}

/// The first stored symbol after `after` (the first of all for `None`): one seek, however many bars the
/// symbol has.
fn next_symbol(table: &ReadOnlyTable<BarKey, BarValue>, after: Option<&str>) -> Result<Option<String>, StoreError> {
    let mut range = match after {
        None => table.range::<BarKey>(..),
        Some(s) => table.range::<BarKey>((Bound::Excluded((s, LAST, i64::MAX)), Bound::Unbounded)),
    }
    .map_err(storage)?;
    match range.next() {
        Some(entry) => Ok(Some(entry.map_err(storage)?.0.value().0.to_owned())),
        None => Ok(None),
    }
}

/// Deletes `keys` (those still there) and their revision entries in one write transaction.
fn delete(db: &Database, keys: &[OwnedKey]) -> Result<Expired, StoreError> {
    let mut expired = Expired::default();
    if keys.is_empty() {
        return Ok(expired);
    }
    let txn = db.begin_write().map_err(storage)?;
    {
        let mut table = txn.open_table(BARS).map_err(storage)?;
        let mut revisions = txn.open_table(REVISIONS).map_err(storage)?;
        for (symbol, interval, open_time) in keys {
            let iv = interval.as_str();
            // The revision as it is now: a write may have revised the bar since the keys were read.
            let removed = table.remove((symbol.as_str(), iv, *open_time)).map_err(storage)?.map(|old| old.value().6);
            if let Some(revised) = removed {
                revisions.remove((symbol.as_str(), iv, revised, *open_time)).map_err(storage)?;
                expired.deleted[interval.index()] += 1;
            }
        }
    }
    adjust_counts(&txn, &expired.deleted, false)?;
    txn.commit().map_err(storage)?;
    Ok(expired)
}

fn usage(db: &Database, file: &Path) -> Result<Usage, StoreError> {
    let txn = db.begin_read().map_err(storage)?;
    let counts = txn.open_table(COUNTS).map_err(storage)?;
    let mut usage = Usage::default();
    for interval in Interval::ALL {
        if let Some(n) = counts.get(interval.as_str()).map_err(storage)? {
            usage.bars[interval.index()] = n.value();
        }
    }
    usage.file_bytes =
        std::fs::metadata(file).map_err(|e| StoreError::Storage(format!("{}: {e}", file.display())))?.len();
    Ok(usage)
}

fn to_bar(symbol: &Symbol, interval: Interval, open_time: i64, v: BarValue) -> Bar {
    let (open, high, low, close, volume, trades, _revised, _source) = v;
    Bar { symbol: symbol.clone(), interval, open_time, open, high, low, close, volume, trades, closed: true }
}

fn read_range(db: &Database, symbol: &Symbol, range: Range) -> Result<Vec<Bar>, StoreError> {
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(BARS).map_err(storage)?;
    let iv = range.interval.as_str();
    let (start, end) = (range.start.unwrap_or(i64::MIN), range.end.unwrap_or(i64::MAX));
    if start >= end || range.limit == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in table.range((&**symbol, iv, start)..(&**symbol, iv, end)).map_err(storage)?.rev().take(range.limit) {
        let (key, value) = entry.map_err(storage)?;
        out.push(to_bar(symbol, range.interval, key.value().2, value.value()));
    }
    out.reverse();
    Ok(out)
}

fn read_revised(
    db: &Database,
    symbol: &Symbol,
    interval: Interval,
    since: i64,
    limit: usize,
) -> Result<Vec<Bar>, StoreError> {
    let txn = db.begin_read().map_err(storage)?;
    let revisions = txn.open_table(REVISIONS).map_err(storage)?;
    let table = txn.open_table(BARS).map_err(storage)?;
    let iv = interval.as_str();
    let mut open_times = Vec::new();
    for entry in
        revisions.range((&**symbol, iv, since, i64::MIN)..=(&**symbol, iv, i64::MAX, i64::MAX)).map_err(storage)?
    {
        open_times.push(entry.map_err(storage)?.0.value().3);
    }
    open_times.sort_unstable();
    let mut out = Vec::with_capacity(open_times.len().min(limit));
    for open_time in open_times.into_iter().rev().take(limit) {
        if let Some(v) = table.get((&**symbol, iv, open_time)).map_err(storage)? {
            out.push(to_bar(symbol, interval, open_time, v.value()));
        }
    }
    out.reverse();
    keep_newest(&mut out, limit);
    Ok(out)
}

impl Store for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn check(&self) -> StoreFuture<()> {
        self.blocking(|db| db.begin_read().map(drop).map_err(storage))
    }

    fn write(&self, bars: Arc<[StoredBar]>) -> StoreFuture<()> {
        self.blocking(move |db| write_batch(db, &bars))
    }

    fn bars(&self, symbol: &Symbol, range: Range) -> StoreFuture<Vec<Bar>> {
        let symbol = symbol.clone();
        self.blocking(move |db| read_range(db, &symbol, range))
    }

    fn revised_since(&self, symbol: &Symbol, interval: Interval, since: i64, limit: usize) -> StoreFuture<Vec<Bar>> {
        let symbol = symbol.clone();
        self.blocking(move |db| read_revised(db, &symbol, interval, since, limit))
    }

    fn keeps_script_data(&self) -> bool {
        true
    }

    fn add_script_symbol(&self, symbol: &str, created: i64) -> StoreFuture<()> {
        let symbol = symbol.to_owned();
        self.blocking(move |db| script_data::add_symbol(db, &symbol, created))
    }

    fn script_symbols(&self) -> StoreFuture<Vec<String>> {
        self.blocking(script_data::symbols)
    }

    fn add_executed_trades(&self, trades: Arc<[StoredTrade]>, keep_per_symbol: usize) -> StoreFuture<()> {
        self.blocking(move |db| script_data::add_trades(db, &trades, keep_per_symbol))
    }

    fn executed_trades(&self, per_symbol: usize) -> StoreFuture<Vec<StoredTrade>> {
        self.blocking(move |db| script_data::trades(db, per_symbol))
    }

    fn expire(&self, cutoffs: Vec<(Interval, i64)>, max_bars: usize) -> StoreFuture<Expired> {
        self.blocking(move |db| delete(db, &expired_keys(db, &cutoffs, max_bars)?))
    }

    fn usage(&self) -> StoreFuture<Option<Usage>> {
        let file = self.file.clone();
        self.blocking(move |db| usage(db, &file).map(Some))
    }

    /// Waits for calls in progress, then drops the database: the file and its lock are released.
    fn close(&self) -> StoreFuture<()> {
        self.closed.store(true, Ordering::Release);
        let slot = self.db.lock().unwrap_or_else(|e| e.into_inner()).take();
        async move {
            let Some(mut db) = slot else { return Ok(()) };
            let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        tokio::task::spawn_blocking(move || drop(db))
                            .await
                            .map_err(|e| StoreError::Storage(format!("closing the store: {e}")))?;
                        return Ok(());
                    }
                    Err(still_used) if tokio::time::Instant::now() < deadline => {
                        db = still_used;
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    Err(_) => {
                        return Err(StoreError::Storage(format!(
                            "calls still running after {CLOSE_TIMEOUT:?}; the file stays open"
                        )))
                    }
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar_at(symbol: &str, interval: Interval, open_time: i64, revised: i64) -> StoredBar {
        let mut bar = Bar::from_trade(symbol.into(), interval, open_time, 100.0, 1.0);
        bar.closed = true;
        StoredBar { bar, source: "simulated".into(), revised }
    }

    /// Every key of `bars`, counted by a full scan: what `bar_counts` must agree with.
    fn scanned(store: &EmbeddedStore) -> [u64; 16] {
        let db = store.db.lock().unwrap().clone().unwrap();
        let txn = db.begin_read().unwrap();
        let mut out = [0u64; 16];
        for entry in txn.open_table(BARS).unwrap().iter().unwrap() {
            out[entry.unwrap().0.value().1.parse::<Interval>().unwrap().index()] += 1;
        }
        out
    }

    fn revision_entries(store: &EmbeddedStore) -> u64 {
        let db = store.db.lock().unwrap().clone().unwrap();
        let txn = db.begin_read().unwrap();
        txn.open_table(REVISIONS).unwrap().len().unwrap()
    }

    #[actix_rt::test]
    async fn expire_deletes_at_most_the_batch_oldest_first_with_their_revisions_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut batch = Vec::new();
        for sym in ["AAA", "BBB"] {
            for i in 0..10 {
                batch.push(bar_at(sym, Interval::S1, i * 1_000, 1));
                batch.push(bar_at(sym, Interval::M1, i * 60_000, 1));
            }
        }
        store.write(batch.into()).await.unwrap();
        // Revised once: the revision index entry to delete is the new one.
        store.write(vec![bar_at("AAA", Interval::S1, 0, 2)].into()).await.unwrap();
        assert_eq!(store.usage().await.unwrap().unwrap().bars, scanned(&store));

        // 1s bars before 6 s are expired (6 per symbol, 12 in all); at most 5 a call.
        let cutoffs = vec![(Interval::S1, 6_000)];
        let first = store.expire(cutoffs.clone(), 5).await.unwrap();
        assert_eq!(first.deleted[Interval::S1.index()], 5);
        assert_eq!(first.total(), 5);
        let aaa = store.bars(&"AAA".into(), Range { interval: Interval::S1, start: None, end: None, limit: 100 });
        assert_eq!(aaa.await.unwrap().first().map(|b| b.open_time), Some(5_000), "the oldest went first");
        assert_eq!(store.expire(cutoffs.clone(), 5).await.unwrap().total(), 5);
        assert_eq!(store.expire(cutoffs.clone(), 5).await.unwrap().total(), 2, "the rest");
        assert_eq!(store.expire(cutoffs, 5).await.unwrap().total(), 0, "nothing left to expire");

        for sym in ["AAA", "BBB"] {
            let s1 = store.bars(&sym.into(), Range { interval: Interval::S1, start: None, end: None, limit: 100 });
            assert_eq!(s1.await.unwrap().iter().map(|b| b.open_time).collect::<Vec<_>>(), [6_000, 7_000, 8_000, 9_000]);
            let m1 = store.bars(&sym.into(), Range { interval: Interval::M1, start: None, end: None, limit: 100 });
            assert_eq!(m1.await.unwrap().len(), 10, "{sym}: another interval is untouched");
        }
        let usage = store.usage().await.unwrap().unwrap();
        assert_eq!(usage.bars, scanned(&store));
        assert_eq!((usage.bars(Interval::S1), usage.bars(Interval::M1)), (8, 20));
        assert_eq!(revision_entries(&store), 28, "one revision entry per bar left, none dangling");
        assert_eq!(store.revised_since(&"AAA".into(), Interval::S1, 0, 100).await.unwrap().len(), 4);
        assert!(usage.file_bytes > 0 && usage.bytes(Interval::M1) > usage.bytes(Interval::S1));
    }

    /// A store written before `bar_counts` existed (only `bars` and `revisions`) opens, and is counted.
    #[actix_rt::test]
    async fn a_store_without_counts_is_counted_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut bars = txn.open_table(BARS).unwrap();
                let mut revisions = txn.open_table(REVISIONS).unwrap();
                for (iv, n) in [("1s", 7i64), ("5s", 3), ("1h", 2)] {
                    for t in (0..n).map(|i| i * 5_000) {
                        bars.insert(("ETHUSDT", iv, t), (1.0, 1.0, 1.0, 1.0, 1.0, 1u64, 9i64, "binance")).unwrap();
                        revisions.insert(("ETHUSDT", iv, 9i64, t), ()).unwrap();
                    }
                }
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let usage = store.usage().await.unwrap().unwrap();
        assert_eq!(
            (usage.bars(Interval::S1), usage.bars(Interval::S5), usage.bars(Interval::H1), usage.total_bars()),
            (7, 3, 2, 12)
        );
        let old = store.bars(&"ETHUSDT".into(), Range { interval: Interval::S5, start: None, end: None, limit: 9 });
        assert_eq!(old.await.unwrap().len(), 3, "the earlier bars read as before");
        store
            .write(vec![bar_at("ETHUSDT", Interval::S5, 15_000, 10), bar_at("ETHUSDT", Interval::S5, 0, 10)].into())
            .await
            .unwrap();
        assert_eq!(store.usage().await.unwrap().unwrap().bars(Interval::S5), 4, "one new, one replaced");
        assert_eq!(store.usage().await.unwrap().unwrap().bars, scanned(&store));
    }
}
