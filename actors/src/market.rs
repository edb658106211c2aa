//! The registry of symbols: which exist, where their trades come from, and their aggregator.
//! Shared by the server (lookups on every request) and by whatever adds symbols at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use actix::prelude::*;

use crate::aggregator::{Aggregator, AggregatorSettings, GetBars, PublishBatch};
use crate::hub::Hub;
use crate::model::{Bar, Interval, Symbol};
use crate::persist::{Durability, History};
use crate::protocol::HistoryQuery;
use crate::telemetry::SymbolStats;

/// One symbol and the handles to reach it.
#[derive(Clone)]
pub struct SymbolEntry {
    pub symbol: Symbol,
    /// Where its trades come from: `simulated`, `binance`, `replay`, `script`.
    pub source: Arc<str>,
    pub aggregator: Addr<Aggregator>,
    pub stats: Arc<SymbolStats>,
    /// Closed while a feed's backfill is on its way to the aggregator: history requests wait for it.
    pub seeding: Arc<SeedGate>,
}

/// Whether a symbol's history is complete yet. A feed closes it before its backfill and opens it once the
/// aggregator has the backfill (or the backfill failed). History asked meanwhile waits (up to a bound)
/// instead of answering without the backfill: after a restart, a dashboard that came back first refetched
/// its gap before the backfill had filled it, and never got the bar that was forming at the restart (found
/// by `candlecast-loadgen --mode restart`: 66 of 14,876 clients each missed one closed bar).
#[derive(Default)]
pub struct SeedGate {
    closed: std::sync::atomic::AtomicBool,
    opened: tokio::sync::Notify,
}

impl SeedGate {
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn open(&self) {
        self.closed.store(false, std::sync::atomic::Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns once the gate is open, or after `patience` (the caller then answers with what there is).
    pub async fn opened(&self, patience: std::time::Duration) {
        let wait = async {
            loop {
                let notified = self.opened.notified();
                tokio::pin!(notified);
                // Registered before the check, so an `open` between the check and the wait is not missed.
                notified.as_mut().enable();
                if self.is_open() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(patience, wait).await;
    }
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Market {
    symbols: Arc<RwLock<BTreeMap<Symbol, SymbolEntry>>>,
    hub: Addr<Hub>,
    settings: Arc<AggregatorSettings>,
    /// Where new aggregators run, whichever thread asks for them.
    arbiter: ArbiterHandle,
    /// What the store surely has: aggregators keep only `hot_bars` of what it has in memory.
    durability: Arc<Durability>,
    /// The history service (set once it is started), for readers that want more than the hot window.
    history: Arc<OnceLock<History>>,
    /// The aggregators' updates to the hub, one message per turn of the market thread.
    batch: Arc<PublishBatch>,
}

impl Market {
    pub fn new(hub: Addr<Hub>, settings: AggregatorSettings, arbiter: ArbiterHandle) -> Market {
        let batch = PublishBatch::new(hub.clone().recipient());
        Market {
            symbols: Arc::default(),
            hub,
            settings: Arc::new(settings),
            arbiter,
            durability: Arc::default(),
            history: Arc::default(),
            batch,
        }
    }

    pub fn durability(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// Called by `History::start`; later calls are ignored.
    pub fn set_history(&self, history: History) {
        let _ = self.history.set(history);
    }

    /// What a warm-up (indicator, live strategy) starts from: the newest `history_bars` closed bars and the
    /// forming one. Read through the history service (memory over store), since an aggregator keeps only
    /// `hot_bars` in memory once the store has them; from memory alone without a store, or when the store
    /// fails. `None` when the aggregator is gone.
    pub fn warmup_bars(
        &self,
        entry: &SymbolEntry,
        interval: Interval,
    ) -> impl std::future::Future<Output = Option<Vec<Bar>>> + 'static {
        let history = self.history.get().cloned();
        let entry = entry.clone();
        let limit = self.settings.history_bars.saturating_add(1);
        async move {
            if let Some(history) = history {
                let q = HistoryQuery { interval, limit, start_time: None, end_time: None };
                match history.bars(&entry, q).await {
                    Ok(bars) => return Some(bars),
                    Err(e) => tracing::warn!(symbol = %entry.symbol, %interval, error = %e, "warm-up from memory only"),
                }
            }
            entry.aggregator.send(GetBars(HistoryQuery::all(interval))).await.ok()
        }
    }

    pub fn settings(&self) -> &AggregatorSettings {
        &self.settings
    }

    pub fn arbiter(&self) -> &ArbiterHandle {
        &self.arbiter
    }

    pub fn hub(&self) -> &Addr<Hub> {
        &self.hub
    }

    pub fn get(&self, symbol: &str) -> Option<SymbolEntry> {
        self.read().get(symbol).cloned()
    }

    pub fn contains(&self, symbol: &str) -> bool {
        self.read().contains_key(symbol)
    }

    /// Every symbol, sorted by name.
    pub fn list(&self) -> Vec<SymbolEntry> {
        self.read().values().cloned().collect()
    }

    /// Returns the symbol's entry, starting an aggregator for it if it is new.
    pub fn get_or_create(&self, symbol: &str, source: &str) -> SymbolEntry {
        if let Some(entry) = self.get(symbol) {
            return entry;
        }
        let mut symbols = self.symbols.write().unwrap_or_else(|e| e.into_inner());
        symbols
            .entry(Symbol::from(symbol))
            .or_insert_with(|| {
                let symbol = Symbol::from(symbol);
                let stats = Arc::new(SymbolStats::default());
                let aggregator =
                    Aggregator::new(symbol.clone(), &self.settings, self.hub.clone().recipient(), stats.clone())
                        .with_durability(self.durability.clone())
                        .with_batch(self.batch.clone());
                let aggregator = Aggregator::start_in_arbiter(&self.arbiter, move |_| aggregator);
                tracing::info!(%symbol, source, "symbol added");
                SymbolEntry { symbol, source: source.into(), aggregator, stats, seeding: Arc::default() }
            })
            .clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Symbol, SymbolEntry>> {
        // Entries are inserted whole; a poisoned lock still holds a consistent map.
        self.symbols.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod seed_gate_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::SeedGate;

    #[tokio::test(start_paused = true)]
    async fn waiters_wait_for_the_open_or_their_patience() {
        let gate = Arc::new(SeedGate::default());
        // Open: no wait at all.
        gate.opened(Duration::from_secs(3600)).await;
        gate.close();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.opened(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "still closed: the waiter waits");
        gate.open();
        waiter.await.expect("opened");
        // Never opened: the waiter gives up after its patience.
        gate.close();
        let started = tokio::time::Instant::now();
        gate.opened(Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
