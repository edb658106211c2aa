//! The default store: one redb file (`<path>/candlecast.redb`), no server.
//!
//! Two tables:
//! - `bars`: (symbol, interval, open time) → (open, high, low, close, volume, trades, revised, source).
//!   Inserting an existing key replaces the bar: the upsert every store promises.
//! - `revisions`: (symbol, interval, revised, open time) → (), an index for `since=` polling; a bar's
//!   old entry is removed in the same transaction that revises it.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use redb::{Database, TableDefinition};

use super::{keep_newest, script_data, Range, Store, StoreError, StoreFuture, StoredBar, StoredTrade};
use crate::model::{Bar, Interval, Symbol};

/// (symbol, interval name, open time).
type BarKey<'a> = (&'a str, &'a str, i64);
/// (open, high, low, close, volume, trades, revised, source).
type BarValue<'a> = (f64, f64, f64, f64, f64, u64, i64, &'a str);

const BARS: TableDefinition<BarKey, BarValue> = TableDefinition::new("bars");
const REVISIONS: TableDefinition<(&str, &str, i64, i64), ()> = TableDefinition::new("revisions");

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

/// Opens (or creates) the database file and both tables.
fn create(file: &Path) -> Result<Database, StoreError> {
    let db = Database::create(file).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Open(format!(
            "{} is already open in another candlecast (one store per process; set store.path)",
            file.display()
        )),
        other => StoreError::Open(format!("{}: {}", file.display(), redb::Error::from(other))),
    })?;
    // Create both tables now, so readers never meet a missing table.
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(BARS).map_err(storage)?;
    txn.open_table(REVISIONS).map_err(storage)?;
    script_data::create_tables(&txn)?;
    txn.commit().map_err(storage)?;
    Ok(db)
}

fn write_batch(db: &Database, bars: &[StoredBar]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(storage)?;
    {
        let mut table = txn.open_table(BARS).map_err(storage)?;
        let mut revisions = txn.open_table(REVISIONS).map_err(storage)?;
        for s in bars {
            let b = &s.bar;
            let iv = b.interval.as_str();
            let value = (b.open, b.high, b.low, b.close, b.volume, b.trades, s.revised, &*s.source);
            let replaced_revision =
                table.insert((&*b.symbol, iv, b.open_time), value).map_err(storage)?.map(|old| old.value().6);
            if let Some(old) = replaced_revision {
                revisions.remove((&*b.symbol, iv, old, b.open_time)).map_err(storage)?;
            }
            revisions.insert((&*b.symbol, iv, s.revised, b.open_time), ()).map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)
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

    fn stored(open_time: i64, close: f64, revised: i64) -> StoredBar {
        let mut bar = Bar::from_trade("BTCUSDT".into(), Interval::M1, open_time, close, 1.0);
        bar.closed = true;
        StoredBar { bar, source: "simulated".into(), revised }
    }

    fn range(start: Option<i64>, end: Option<i64>, limit: usize) -> Range {
        Range { interval: Interval::M1, start, end, limit }
    }

    #[actix_rt::test]
    async fn upserts_reads_ranges_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let sym: Symbol = "BTCUSDT".into();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let batch: Vec<StoredBar> = (0..10).map(|i| stored(i * 60_000, 100.0 + i as f64, 1_000)).collect();
            store.write(batch.into()).await.unwrap();
            // The same key again, corrected: replaced, not added.
            store.write(vec![stored(3 * 60_000, 42.0, 2_000)].into()).await.unwrap();
            let err = EmbeddedStore::open(dir.path()).err().unwrap();
            assert!(err.to_string().contains("already open"), "{err}");
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.close().await.unwrap();
        assert!(store.bars(&sym, range(None, None, 1)).await.is_err(), "closed");
        let store = EmbeddedStore::open(dir.path()).expect("the lock is released by close");
        let all = store.bars(&sym, range(None, None, 100)).await.unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[3].close, 42.0);
        assert!(all.iter().all(|b| b.closed) && all.windows(2).all(|w| w[0].open_time < w[1].open_time));
        let newest = store.bars(&sym, range(Some(60_000), Some(6 * 60_000), 2)).await.unwrap();
        assert_eq!(newest.iter().map(|b| b.open_time).collect::<Vec<_>>(), [4 * 60_000, 5 * 60_000]);
        let revised = store.revised_since(&sym, Interval::M1, 1_500, 100).await.unwrap();
        assert_eq!(
            revised.iter().map(|b| b.open_time).collect::<Vec<_>>(),
            [3 * 60_000],
            "only the corrected bar, once"
        );
        assert_eq!(store.revised_since(&sym, Interval::M1, 0, 100).await.unwrap().len(), 10);
        assert!(store.bars(&"ETHUSDT".into(), range(None, None, 100)).await.unwrap().is_empty());
    }

    fn trade(symbol: &str, timestamp: i64, strategy: &str) -> StoredTrade {
        StoredTrade {
            timestamp,
            symbol: symbol.into(),
            side: "BUY".into(),
            quantity: 1.0,
            price: 10.0,
            profit_loss: (timestamp % 2 == 0).then_some(-1.5),
            strategy: strategy.into(),
        }
    }

    #[actix_rt::test]
    async fn script_symbols_and_trades_survive_reopening_within_their_cap() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            assert!(store.keeps_script_data());
            store.add_script_symbol("ZZZ", 2_000).await.unwrap();
            store.add_script_symbol("AAA", 3_000).await.unwrap();
            store.add_script_symbol("ZZZ", 9_000).await.unwrap();
            let first: Vec<StoredTrade> =
                vec![trade("A", 5, "x"), trade("A", 1, "x"), trade("B", 3, "y"), trade("A", 5, "second")];
            store.add_executed_trades(first.into(), 3).await.unwrap();
            store.add_executed_trades(vec![trade("A", 9, "x")].into(), 3).await.unwrap();
            store.close().await.unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.script_symbols().await.unwrap(), ["ZZZ", "AAA"], "by first creation");
        let all = store.executed_trades(100).await.unwrap();
        let keys: Vec<(&str, i64, &str)> =
            all.iter().map(|t| (t.symbol.as_str(), t.timestamp, t.strategy.as_str())).collect();
        assert_eq!(keys, [("A", 5, "x"), ("A", 5, "second"), ("A", 9, "x"), ("B", 3, "y")], "A's oldest (1) trimmed");
        assert_eq!(all[3].profit_loss, None);
        assert_eq!(all[1].profit_loss, None);
        let newest: Vec<i64> = store.executed_trades(1).await.unwrap().iter().map(|t| t.timestamp).collect();
        assert_eq!(newest, [9, 3]);
    }
}
