//! A store in memory: what the persistence actor and the history service are unit-tested against, and
//! the reference every other store must behave like. It can be switched "down" to play an outage.
//! Test code only: compiled for this crate's tests and with the `test-util` feature (dev-dependencies).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;

use super::{keep_newest, Range, Store, StoreError, StoreFuture, StoredBar};
use crate::model::{Bar, Interval, Symbol};

type Key = (Symbol, Interval, i64);

/// See the module documentation.
#[derive(Default)]
pub struct MemoryStore {
    bars: Mutex<BTreeMap<Key, StoredBar>>,
    down: AtomicBool,
    /// Write calls that succeeded, for tests of batching.
    pub writes: AtomicUsize,
}

impl MemoryStore {
    /// While down, every call fails as unreachable.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every stored bar, by key.
    pub fn snapshot(&self) -> Vec<StoredBar> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, StoredBar>> {
        self.bars.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn available(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unreachable("the memory store is switched off".into()))
        } else {
            Ok(())
        }
    }

    fn select(&self, symbol: &Symbol, interval: Interval, keep: impl Fn(&StoredBar) -> bool, limit: usize) -> Vec<Bar> {
        let bars = self.lock();
        let from = (symbol.clone(), interval, i64::MIN);
        let to = (symbol.clone(), interval, i64::MAX);
        let mut out: Vec<Bar> =
            bars.range(from..=to).map(|(_, b)| b).filter(|b| keep(b)).map(|b| b.bar.clone()).collect();
        keep_newest(&mut out, limit);
        out
    }
}

impl Store for Arc<MemoryStore> {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn check(&self) -> StoreFuture<()> {
        std::future::ready(self.available()).boxed()
    }

    fn write(&self, bars: Arc<[StoredBar]>) -> StoreFuture<()> {
        let result = self.available().map(|()| {
            let mut stored = self.lock();
            for b in bars.iter() {
                stored.insert((b.bar.symbol.clone(), b.bar.interval, b.bar.open_time), b.clone());
            }
            self.writes.fetch_add(1, Ordering::SeqCst);
        });
        std::future::ready(result).boxed()
    }

    fn bars(&self, symbol: &Symbol, range: Range) -> StoreFuture<Vec<Bar>> {
        let (start, end) = (range.start.unwrap_or(i64::MIN), range.end.unwrap_or(i64::MAX));
        let result = self.available().map(|()| {
            self.select(symbol, range.interval, |b| b.bar.open_time >= start && b.bar.open_time < end, range.limit)
        });
        std::future::ready(result).boxed()
    }

    fn revised_since(&self, symbol: &Symbol, interval: Interval, since: i64, limit: usize) -> StoreFuture<Vec<Bar>> {
        let result = self.available().map(|()| self.select(symbol, interval, |b| b.revised >= since, limit));
        std::future::ready(result).boxed()
    }
}
