//! The history service: what `GET /api/historical`, WS `get_historical` and backtests read, and what
//! feeds ask before they backfill.
//!
//! Merge rule: the aggregator's in-memory window is newest and wins for every open time it holds; the
//! store fills in what is older than the window. The result is ascending, has one bar per open time, and
//! keeps the [`HistoryQuery`] rules exactly (`start_time <= open_time < end_time`, the `limit` newest).
//! A query the window answers alone (`limit` bars found in memory) never touches the store.
//!
//! `since` polling: bars created or revised at or after `since` (wall-clock ms). From the store, its
//! revision times; from memory, the forming bar and every closed bar that could still have changed at
//! `since` (a closed bar changes at the latest `grace_ms` after its end), a superset that is harmless
//! for a client that upserts by open time.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::actor::{Flush, PersistBars, Persister};
use super::admission::{BackfillAdmission, BackfillPermit};
use super::durability::{Announced, Durability};
use super::journal::JournalError;
use super::retention::{self, RetentionSettings, RetentionStats};
use super::{Range, Store, StoreError, StoreKind, StoreSettings, Usage};
use crate::aggregator::GetBars;
use crate::hub::{Hub, SubscribeActor};
use crate::market::{Market, SymbolEntry};
use crate::model::{now_ms, Bar, Interval, Symbol};
use crate::protocol::HistoryQuery;
use crate::telemetry::PersistStats;

/// How long a feed waits for the previous run's journal to reach the store before it reads history.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a shutdown waits for the last bars to become durable.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A history request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the symbol's aggregator is not available")]
    Aggregator,
    #[error("history older than the in-memory window is not available: {0}")]
    Store(#[from] StoreError),
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct History {
    store: Option<Arc<dyn Store>>,
    persister: Option<Addr<Persister>>,
    stats: Arc<PersistStats>,
    /// How long after its end a closed bar may still be corrected (`aggregator.grace_ms`).
    grace_ms: i64,
    /// What the retention loop is told to keep, and what it did.
    retention: RetentionSettings,
    retention_stats: Arc<RetentionStats>,
    /// The retention loop, stopped before the store closes; `None` when nothing expires.
    retention_task: Option<tokio::task::AbortHandle>,
    /// Backfills held back wait their turn here, oldest first (see [`History::persist`]).
    backfill_turn: Arc<tokio::sync::Mutex<()>>,
    /// `store.buffer_bars`: what the persistence actor holds in memory before it journals.
    buffer_bars: usize,
    /// What the store surely has (shared with the market's aggregators, see [`Durability`]).
    durability: Arc<Durability>,
    /// Turns to backfill (`store.backfill_concurrency`); `None` without a store: nothing to pace.
    admission: Option<BackfillAdmission>,
}

impl History {
    /// History from memory only (`kind = "none"`).
    pub fn memory_only(grace_ms: i64) -> History {
        History {
            store: None,
            persister: None,
            stats: Arc::default(),
            grace_ms,
            retention: RetentionSettings::forever(),
            retention_stats: Arc::default(),
            retention_task: None,
            backfill_turn: Arc::default(),
            buffer_bars: 0,
            durability: Arc::default(),
            admission: None,
        }
    }

    /// Starts the persistence actor on a thread of its own and subscribes it to every closed bar.
    pub fn start(
        store: Option<Arc<dyn Store>>,
        settings: &StoreSettings,
        market: &Market,
        hub: &Addr<Hub>,
        grace_ms: i64,
    ) -> Result<History, JournalError> {
        let Some(store) = store else { return Ok(History::memory_only(grace_ms)) };
        let stats = Arc::new(PersistStats::default());
        let persister = Persister::new(store.clone(), market.clone(), settings, stats.clone())?;
        // Journal fsyncs block: the actor gets its own thread.
        let persister = Persister::start_in_arbiter(&Arbiter::new().handle(), move |_| persister);
        hub.do_send(SubscribeActor { recipient: persister.clone().recipient(), partials: false });
        let retention_stats = Arc::new(RetentionStats::default());
        // InfluxDB keeps bars by its own retention policies (see docs/protocol.md, "Retention").
        let retention_task = (matches!(settings.kind, StoreKind::Embedded | StoreKind::Segments)
            && !settings.retention.is_forever())
        .then(|| {
            let schedule = settings.retention_schedule();
            tracing::info!(?schedule, "store retention");
            retention::spawn(store.clone(), schedule, retention::wall_clock(), retention_stats.clone())
        });
        let history = History {
            store: Some(store),
            persister: Some(persister),
            grace_ms,
            retention: match retention_task {
                Some(_) => settings.retention.clone(),
                None => RetentionSettings::forever(),
            },
            retention_stats,
            retention_task,
            backfill_turn: Arc::default(),
            buffer_bars: settings.buffer_bars,
            durability: market.durability().clone(),
            admission: Some(BackfillAdmission::new(settings.backfill_concurrency, stats.clone())),
            stats,
        };
        market.set_history(history.clone());
        Ok(history)
    }

    /// Waits for a turn to backfill (see [`super::admission`]): call before reading what the store holds
    /// and making the rest; hand the permit to [`History::persist_backfill`]. At once without a store.
    pub async fn admit_backfill(&self) -> BackfillPermit {
        match &self.admission {
            Some(admission) => admission.admit().await,
            None => BackfillPermit::none(),
        }
    }

    /// Call before a backfill is seeded, keep until [`History::persist`] has taken it: aggregators keep
    /// the seeded bars in memory until the store has them (see [`Durability`]).
    pub fn announce_backfill(&self) -> Announced {
        self.durability.announce()
    }

    /// Bars held per interval and bytes on disk, when the store can tell (the embedded store can).
    pub async fn usage(&self) -> Option<Usage> {
        let store = self.store.as_ref()?;
        match store.usage().await {
            Ok(usage) => usage,
            Err(e) => {
                tracing::debug!(error = %e, "store usage not available");
                None
            }
        }
    }

    /// The configured retention (forever for every interval when the store does not enforce it here).
    pub fn retention(&self) -> &RetentionSettings {
        &self.retention
    }

    /// What the retention loop did since start.
    pub fn retention_stats(&self) -> &RetentionStats {
        &self.retention_stats
    }

    /// Whether candlecast deletes expired bars itself (the embedded store with a retention configured).
    pub fn enforces_retention(&self) -> bool {
        self.retention_task.is_some()
    }

    /// `embedded`, `influxdb-v1`, `influxdb-v2` or `none`.
    pub fn kind(&self) -> &'static str {
        self.store.as_ref().map_or("none", |s| s.kind())
    }

    pub fn stats(&self) -> &PersistStats {
        &self.stats
    }

    /// Asks the store whether it answers and accepts our configuration.
    pub async fn check(&self) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.check().await,
            None => Ok(()),
        }
    }

    /// Bars of `entry` for `q` (see the module documentation for the merge).
    pub async fn bars(&self, entry: &SymbolEntry, q: HistoryQuery) -> Result<Vec<Bar>, HistoryError> {
        entry.seeding.opened(SEED_PATIENCE).await;
        let memory = entry.aggregator.send(GetBars(q)).await.map_err(|_| HistoryError::Aggregator)?;
        let Some(store) = self.store.as_ref().filter(|_| memory.len() < q.limit) else { return Ok(memory) };
        // Everything from the window's first bar on is in `memory`; the store adds what is older.
        let older_than = memory.first().map(|b| b.open_time).or(q.end_time);
        let range = Range { interval: q.interval, start: q.start_time, end: older_than, limit: q.limit - memory.len() };
        let stored = store.bars(&entry.symbol, range).await?;
        Ok(merge(memory, stored, &q))
    }

    /// Bars for a history request: all of `q`, or with `since`, only those created or revised since then;
    /// then also the `as_of` to pass as the next `since` (taken before anything is read, so that no
    /// revision falls between two polls).
    pub async fn query(
        &self,
        entry: &SymbolEntry,
        q: HistoryQuery,
        since: Option<i64>,
    ) -> Result<(Vec<Bar>, Option<i64>), HistoryError> {
        match since {
            None => Ok((self.bars(entry, q).await?, None)),
            Some(since) => {
                let as_of = now_ms();
                Ok((self.revised_since(entry, q, since).await?, Some(as_of)))
            }
        }
    }

    /// Bars of `entry` created or revised at or after `since`, within `q`'s range and limit.
    pub async fn revised_since(
        &self,
        entry: &SymbolEntry,
        q: HistoryQuery,
        since: i64,
    ) -> Result<Vec<Bar>, HistoryError> {
        // A closed bar changes for the last time at most `grace_ms` after its end.
        entry.seeding.opened(SEED_PATIENCE).await;
        let could_change_since = since.saturating_sub(self.grace_ms + q.interval.millis());
        let memory_q = HistoryQuery {
            start_time: Some(q.start_time.map_or(could_change_since, |s| s.max(could_change_since))),
            ..q
        };
        let memory = entry.aggregator.send(GetBars(memory_q)).await.map_err(|_| HistoryError::Aggregator)?;
        let Some(store) = &self.store else { return Ok(memory) };
        let stored = store.revised_since(&entry.symbol, q.interval, since, q.limit).await?;
        Ok(merge(memory, stored, &q))
    }

    /// What the store holds of `symbol`: the newest `window` bars of each interval, after the journal
    /// of an earlier run has been written. `Held::unknown` if the store cannot say.
    pub async fn held(&self, symbol: &Symbol, intervals: &[Interval], window: usize) -> Held {
        let Some(store) = &self.store else { return Held::nothing() };
        // A flag, not a message: a message would queue behind other feeds' backfills in the persister's
        // mailbox, and each feed would wait for the ones before it to be stored.
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while self.stats.settling.load(std::sync::atomic::Ordering::Relaxed) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%symbol, "the previous run's journal is still being written; reading history anyway");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let mut held =
            Held { known: true, store: Some(store.clone()), symbol: symbol.clone(), window: BTreeMap::new() };
        for &interval in intervals {
            match store.bars(symbol, Range { interval, start: None, end: None, limit: window }).await {
                Ok(bars) => {
                    held.window.insert(interval, bars);
                }
                Err(e) => {
                    tracing::warn!(%symbol, error = %e, "cannot read stored history; backfilling without it and not storing that backfill");
                    return Held::unknown(symbol);
                }
            }
        }
        held
    }

    /// Stores bars that did not come through the hub (a backfill), never waiting: the caller goes live at
    /// once. See [`History::persist_backfill`]; this one holds no turn.
    pub fn persist(&self, bars: Vec<Bar>, source: Arc<str>) {
        self.persist_backfill(bars, source, BackfillPermit::none());
    }

    /// Stores a feed's backfill, never waiting: the caller goes live at once. `turn` (from
    /// [`History::admit_backfill`]) is given back once the last of these bars went to the persistence actor,
    /// or as soon as the store fails while they wait (an outage must not keep feeds from going live).
    ///
    /// Bars a live correction may still revise (closed less than `grace_ms` + a margin ago) are queued
    /// at once, so they are in the persistence actor's mailbox ahead of any live bar the caller produces
    /// next. The rest go at once too while persistence has room for them; otherwise they wait, in chunks
    /// and in order, until it has (back-pressure): a first start of 1,000 symbols backfilled faster than
    /// the store writes, filled the journal, and then the oldest bars were dropped. Waiting bars are
    /// counted (`backfill_waiting_bars`) and are no more than the backfills holding a turn.
    pub fn persist_backfill(&self, bars: Vec<Bar>, source: Arc<str>, turn: BackfillPermit) {
        let Some(p) = &self.persister else { return };
        if bars.is_empty() {
            return;
        }
        if !p.connected() {
            tracing::warn!("persistence actor gone; backfill not stored");
            return;
        }
        let correctable_after = now_ms() - self.grace_ms - CORRECTION_MARGIN_MS;
        let (recent, older): (Vec<Bar>, Vec<Bar>) =
            bars.into_iter().partition(|b| b.open_time + b.interval.millis() >= correctable_after);
        if !recent.is_empty() {
            // do_send: never refused for a full mailbox (a closed bar must not be lost).
            send(p, &self.stats, recent, source.clone());
        }
        if older.is_empty() {
            return;
        }
        let room = Room { stats: self.stats.clone(), buffer_bars: self.buffer_bars };
        if room.has_room_for(older.len()) && self.backfill_turn.try_lock().is_ok() {
            send(p, &self.stats, older, source);
            return;
        }
        let (p, wait_turn) = (p.clone(), self.backfill_turn.clone());
        let waiting = older.len() as u64;
        self.stats.backfill_waiting_bars.fetch_add(waiting, Ordering::Relaxed);
        tracing::debug!(bars = older.len(), "backfill waits for the store to catch up before it is stored");
        tokio::spawn(async move {
            let mut turn = Some(turn);
            let lock = wait_turn.lock();
            tokio::pin!(lock);
            let _wait_turn = loop {
                tokio::select! {
                    guard = &mut lock => break guard,
                    _ = tokio::time::sleep(BACKFILL_ROOM_POLL) => room.give_back_if_store_down(&mut turn),
                }
            };
            let chunk = (room.buffer_bars / 4).max(1);
            let mut older = older.into_iter().peekable();
            while older.peek().is_some() {
                let part: Vec<Bar> = older.by_ref().take(chunk).collect();
                while !room.has_room_for(part.len()) && p.connected() {
                    room.give_back_if_store_down(&mut turn);
                    tokio::time::sleep(BACKFILL_ROOM_POLL).await;
                }
                // Counted as queued before it stops counting as waiting: at no moment in neither, where
                // durability's "nothing on its way" would miss it.
                let handed = part.len() as u64;
                send(&p, &room.stats, part, source.clone());
                room.stats.backfill_waiting_bars.fetch_sub(handed, Ordering::Relaxed);
            }
            // Every bar handed over: the next feed may make its backfill.
            drop(turn);
        });
    }

    /// Waits (at most `patience`) until every bar the persistence actor received so far is durable: written
    /// to the store when it keeps up (the cluster's today-cache then reads a stored backfill back).
    pub async fn flushed(&self, patience: Duration) {
        if let Some(p) = &self.persister {
            if tokio::time::timeout(patience, p.send(Flush { stop: false })).await.is_err() {
                tracing::debug!("persistence did not flush within {patience:?}");
            }
        }
    }

    /// At shutdown: makes every bar received so far durable (store or journal), stops the persistence
    /// actor and closes the store (the embedded store's file lock is released when this returns).
    pub async fn shutdown(&self) {
        if let Some(task) = &self.retention_task {
            task.abort();
        }
        if let Some(p) = &self.persister {
            if tokio::time::timeout(FLUSH_TIMEOUT, p.send(Flush { stop: true })).await.is_err() {
                tracing::warn!("persistence did not flush within {FLUSH_TIMEOUT:?}");
            }
        }
        if let Some(store) = &self.store {
            if let Err(e) = store.close().await {
                tracing::warn!(error = %e, "store not closed cleanly");
            }
        }
    }
}

/// Memory over store for equal open times; `q`'s range; the `limit` newest; ascending.
/// A bar may be corrected until `grace_ms` after its end; this much more is kept as a margin before a
/// backfilled bar is allowed to wait behind live ones.
const CORRECTION_MARGIN_MS: i64 = 60_000;

/// How long a history request waits for its symbol's backfill to reach the aggregator before it answers
/// with what there is (a feed whose backfill hangs must not hang its charts).
const SEED_PATIENCE: Duration = Duration::from_secs(10);

/// How often a held-back backfill looks for room.
const BACKFILL_ROOM_POLL: Duration = Duration::from_millis(20);

/// Hands bars to the persistence actor, counted as queued until it takes them from its mailbox.
fn send(p: &Addr<Persister>, stats: &PersistStats, bars: Vec<Bar>, source: Arc<str>) {
    stats.backfill_queued_bars.fetch_add(bars.len() as u64, Ordering::Relaxed);
    p.do_send(PersistBars { bars, source });
}

/// Whether persistence can take more bars without dropping any: the memory buffer has room, or, while the
/// store fails, the journal stays under half its cap (the other half is kept for live bars during the
/// outage). While the store works, backfills never go to the journal: a journal written back behind a
/// slow store took ~50 K bars/s where the store took ~170 K (10,000 symbols, docs/BENCHMARKS.md).
#[derive(Clone)]
struct Room {
    stats: Arc<PersistStats>,
    buffer_bars: usize,
}

impl Room {
    /// While the store is down, a backfill waiting for room gives its turn back: the feeds waiting for a turn
    /// must not wait for the store to go live. Its bars wait in memory meanwhile, as every bar does that the
    /// journal cannot take.
    fn give_back_if_store_down(&self, turn: &mut Option<BackfillPermit>) {
        if !self.stats.healthy.load(Ordering::Relaxed) {
            turn.take();
        }
    }

    fn has_room_for(&self, bars: usize) -> bool {
        let buffered = (self.stats.buffered_bars.load(Ordering::Relaxed)
            + self.stats.backfill_queued_bars.load(Ordering::Relaxed)) as usize;
        // A quarter of the buffer stays for live bars: a buffer that reaches `buffer_bars` is journaled.
        if buffered.saturating_add(bars) <= (self.buffer_bars / 4 * 3).max(1) {
            return true;
        }
        if self.stats.healthy.load(Ordering::Relaxed) {
            return false;
        }
        let (bytes, max) =
            (self.stats.journal_bytes.load(Ordering::Relaxed), self.stats.journal_max_bytes.load(Ordering::Relaxed));
        let journaled = self.stats.journal_bars.load(Ordering::Relaxed);
        // Bytes per bar as the journal has measured them; a generous guess while it is empty.
        let per_bar = bytes.checked_div(journaled).unwrap_or(256).max(1);
        let needed = (buffered.saturating_add(bars) as u64).saturating_mul(per_bar);
        max > 0 && bytes.saturating_add(needed) <= max / 2
    }
}

pub fn merge(memory: Vec<Bar>, stored: Vec<Bar>, q: &HistoryQuery) -> Vec<Bar> {
    let (start, end) = (q.start_time.unwrap_or(i64::MIN), q.end_time.unwrap_or(i64::MAX));
    let mut by_open: BTreeMap<i64, Bar> = BTreeMap::new();
    for bar in stored.into_iter().chain(memory) {
        if bar.open_time >= start && bar.open_time < end {
            by_open.insert(bar.open_time, bar);
        }
    }
    let mut out: Vec<Bar> = by_open.into_values().collect();
    super::keep_newest(&mut out, q.limit);
    out
}

/// What the store holds of one symbol when its feed starts, so that a backfill adds only what is missing.
pub struct Held {
    /// False when the store could not be read: the feed then stores none of its backfill, so that it
    /// cannot overwrite history it did not see.
    known: bool,
    store: Option<Arc<dyn Store>>,
    symbol: Symbol,
    /// The newest stored bars per interval, ascending.
    window: BTreeMap<Interval, Vec<Bar>>,
}

impl Held {
    /// No store: nothing is held, and there is nothing a backfill could overwrite.
    pub fn nothing() -> Held {
        Held { known: true, store: None, symbol: Symbol::from(""), window: BTreeMap::new() }
    }

    fn unknown(symbol: &Symbol) -> Held {
        Held { known: false, store: None, symbol: symbol.clone(), window: BTreeMap::new() }
    }

    /// For tests: `window` as if a store held it.
    pub fn from_window(window: BTreeMap<Interval, Vec<Bar>>) -> Held {
        Held { known: true, store: None, symbol: Symbol::from(""), window }
    }

    /// Whether the store's content is known (a backfill may then be stored).
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// The newest stored bars of `interval`, ascending.
    pub fn window(&self, interval: Interval) -> &[Bar] {
        self.window.get(&interval).map_or(&[], Vec::as_slice)
    }

    /// The newest stored bar of `interval`.
    pub fn last(&self, interval: Interval) -> Option<&Bar> {
        self.window(interval).last()
    }

    /// Stored bars of `interval` with `start <= open_time`, ascending (from the window when it reaches
    /// back far enough, else from the store).
    pub async fn since(&self, interval: Interval, start: i64) -> Result<Vec<Bar>, StoreError> {
        let window = self.window(interval);
        let covered = window.first().is_some_and(|b| b.open_time <= start);
        match &self.store {
            Some(store) if !covered => {
                store.bars(&self.symbol, Range { interval, start: Some(start), end: None, limit: usize::MAX }).await
            }
            _ => Ok(window.iter().filter(|b| b.open_time >= start).cloned().collect()),
        }
    }

    /// Of each interval's backfilled bars, those newer than what the store holds.
    pub fn only_missing(&self, backfill: Vec<(Interval, Vec<Bar>)>) -> Vec<(Interval, Vec<Bar>)> {
        backfill
            .into_iter()
            .map(|(iv, mut bars)| {
                if let Some(last) = self.last(iv) {
                    bars.retain(|b| b.open_time > last.open_time);
                }
                (iv, bars)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tiers;

#[cfg(test)]
mod paced;
