//! Backfills paced by persistence (issue 20): real feeds (the simulated venue) over a store whose writes
//! hang until the test lets them through, with a small persistence buffer. Feeds make their backfill only
//! when they have a turn; the others wait (counted), those with a turn are live, nothing is dropped, and
//! once the store writes, every backfilled bar of every symbol reaches it; a store outage does not keep
//! feeds from going live.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::tests::Gated;
use super::*;
use crate::aggregator::AggregatorSettings;
use crate::engine::{start_feed, FeedHandle};
use crate::feed::simulated::{SimulatedConnector, SimulatedSettings};
use crate::feed::{FeedState, Warmup};
use crate::hub::HubSettings;
use crate::persist::memory::MemoryStore;

const SYMBOLS: usize = 12;
const TURNS: usize = 2;
const MIN: i64 = 60_000;

/// Waits (up to a minute) for a condition.
async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn live(feeds: &[FeedHandle]) -> Vec<&FeedHandle> {
    feeds.iter().filter(|f| f.status.state() == FeedState::Connected).collect()
}

/// Before admission every feed made its 1-day backfill at once (here 12 of them while the store could
/// take none; at 10,000 symbols 70.8 M bars, 13.5 GB): the test saw all 12 feeds done at the first look.
#[actix_rt::test]
async fn backfills_are_made_only_as_fast_as_persistence_takes_them_and_all_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryStore::default());
    let (gate, open) = tokio::sync::watch::channel(false);
    let store: Arc<dyn Store> = Arc::new(Gated { inner: inner.clone(), open, permits: None });
    let hub = Hub::new(&HubSettings::default()).start();
    let aggregator = AggregatorSettings { intervals: vec![Interval::M1], ..AggregatorSettings::default() };
    let market = Market::new(hub.clone(), aggregator, Arbiter::current());
    let settings = StoreSettings {
        path: dir.path().to_owned(),
        batch_bars: 100,
        batch_ms: 10,
        buffer_bars: 400,
        journal_max_bytes: 64 << 10,
        backfill_concurrency: TURNS,
        ..Default::default()
    };
    let history = History::start(Some(store), &settings, &market, &hub, 2_000).unwrap();
    let stats = history.stats();
    let warmup = Arc::new(Warmup::default());
    warmup.expect(SYMBOLS);
    let simulated = SimulatedSettings {
        backfill_days: 1,
        backfill_fine_hours: 0,
        trades_per_second: 50.0,
        tick_ms: 10,
        ..SimulatedSettings::default()
    };
    let context = (Arbiter::current(), history.clone(), Some(warmup.clone()));
    let feeds: Vec<FeedHandle> = (0..SYMBOLS)
        .map(|i| {
            let symbol = Symbol::from(format!("S{i:02}USDT").as_str());
            start_feed(&market, SimulatedConnector::new(symbol, &simulated), &context)
        })
        .collect();

    // The store takes nothing: the feeds with a turn made their backfill, cannot hand all of it over, and
    // keep their turns; every other feed waits for one, without making anything.
    eventually("the feeds with a turn live", || live(&feeds).len() >= TURNS).await;
    let trades: Vec<u64> = live(&feeds).iter().map(|f| f.status.trades.load(Ordering::Relaxed)).collect();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let done = warmup.progress().feeds_done;
        assert_eq!(done, TURNS, "{done} feeds made their backfill while persistence could take only {TURNS}");
        assert_eq!(live(&feeds).len(), TURNS, "a feed waiting for its turn is not live yet");
        assert_eq!(stats.dropped_bars.load(Ordering::Relaxed), 0);
    }
    assert_eq!(stats.backfills_running.load(Ordering::Relaxed), TURNS as u64);
    eventually("the others pending", || stats.backfills_pending.load(Ordering::Relaxed) == (SYMBOLS - TURNS) as u64)
        .await;
    // A feed whose backfill waits for the store aggregates its live trades meanwhile.
    eventually("live trades while the backfill waits", || {
        live(&feeds).iter().zip(&trades).all(|(f, before)| f.status.trades.load(Ordering::Relaxed) > *before)
    })
    .await;
    assert!(
        stats.backfill_waiting_bars.load(Ordering::Relaxed) <= (TURNS * 1_440) as u64,
        "no more than the backfills holding a turn wait: {}",
        stats.backfill_waiting_bars.load(Ordering::Relaxed)
    );

    // The store writes again: every feed gets its turn, and every backfilled bar is stored.
    gate.send(true).unwrap();
    eventually("every feed's backfill made", || warmup.is_ready()).await;
    eventually("every backfill handed over", || {
        stats.backfills_pending.load(Ordering::Relaxed) == 0
            && stats.backfills_running.load(Ordering::Relaxed) == 0
            && stats.backfill_waiting_bars.load(Ordering::Relaxed) == 0
    })
    .await;
    history.flushed(Duration::from_secs(30)).await;
    eventually("everything written", || {
        stats.buffered_bars.load(Ordering::Relaxed) == 0 && stats.journal_bars.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(stats.dropped_bars.load(Ordering::Relaxed), 0, "no accepted bar lost");
    assert_eq!(stats.journal_full_refusals.load(Ordering::Relaxed), 0, "the journal never filled");
    assert_eq!(live(&feeds).len(), SYMBOLS);
    let stored = inner.snapshot();
    for feed in &feeds {
        let mut opens: Vec<i64> =
            stored.iter().filter(|b| b.bar.symbol == feed.symbol).map(|b| b.bar.open_time).collect();
        opens.sort_unstable();
        // A day of 1m bars, each once, with no hole (the live ones closed since are stored after them).
        assert!(opens.len() >= 1_439, "{}: {} bars stored", feed.symbol, opens.len());
        for pair in opens.windows(2) {
            assert_eq!(pair[1] - pair[0], MIN, "{}: a hole or a duplicate at {}", feed.symbol, pair[0]);
        }
    }
}

/// During a store outage the turns do not keep feeds from going live: a backfill that cannot be handed over
/// because the store is down (and the journal is full) gives its turn back, and waits in memory; once the
/// store is back, every backfilled bar is stored.
#[actix_rt::test]
async fn a_store_outage_does_not_keep_feeds_waiting_for_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hub = Hub::new(&HubSettings::default()).start();
    let aggregator = AggregatorSettings { intervals: vec![Interval::M1], ..AggregatorSettings::default() };
    let market = Market::new(hub.clone(), aggregator, Arbiter::current());
    let settings = StoreSettings {
        path: dir.path().to_owned(),
        batch_bars: 100,
        batch_ms: 10,
        buffer_bars: 400,
        retry_initial_ms: 20,
        retry_max_ms: 100,
        journal_max_bytes: 16 << 10,
        backfill_concurrency: TURNS,
        ..Default::default()
    };
    let writes_down: Arc<dyn Store> = Arc::new(WritesDown { inner: store.clone(), up: up.clone() });
    let history = History::start(Some(writes_down), &settings, &market, &hub, 2_000).unwrap();
    let stats = history.stats();
    let simulated = SimulatedSettings {
        backfill_days: 1,
        backfill_fine_hours: 0,
        trades_per_second: 50.0,
        tick_ms: 10,
        ..SimulatedSettings::default()
    };
    let context = (Arbiter::current(), history.clone(), None);
    let feeds: Vec<FeedHandle> = (0..SYMBOLS)
        .map(|i| {
            let symbol = Symbol::from(format!("S{i:02}USDT").as_str());
            start_feed(&market, SimulatedConnector::new(symbol, &simulated), &context)
        })
        .collect();
    eventually("every feed live while the store is down", || live(&feeds).len() == SYMBOLS).await;
    assert!(stats.backfill_waiting_bars.load(Ordering::Relaxed) > 0, "the backfills wait for the store");
    assert_eq!(stats.backfills_pending.load(Ordering::Relaxed), 0);

    assert!(!stats.healthy.load(Ordering::Relaxed), "the store's writes fail");
    up.store(true, Ordering::SeqCst);
    // Every place a bar can be on its way to the store: waiting for room, in the persister's mailbox (a full
    // run, before `backfill_queued_bars` was in this check, saw the others at 0 with 39 bars of one symbol
    // still in the mailbox), in memory or a write, in the journal.
    eventually("every backfill handed over and written", || {
        stats.backfill_waiting_bars.load(Ordering::Relaxed) == 0
            && stats.backfill_queued_bars.load(Ordering::Relaxed) == 0
            && stats.journal_bars.load(Ordering::Relaxed) == 0
            && stats.buffered_bars.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(stats.dropped_bars.load(Ordering::Relaxed), 0, "no accepted bar lost");
    let stored = store.snapshot();
    for feed in &feeds {
        let n = stored.iter().filter(|b| b.bar.symbol == feed.symbol).count();
        assert!(n >= 1_439, "{}: {n} bars stored", feed.symbol);
    }
}

/// A memory store whose writes fail until `up` (its reads work): a store that went down after the feeds read
/// what it holds.
struct WritesDown {
    inner: Arc<MemoryStore>,
    up: Arc<std::sync::atomic::AtomicBool>,
}

impl Store for WritesDown {
    fn kind(&self) -> &'static str {
        "writes-down"
    }
    fn check(&self) -> crate::persist::StoreFuture<()> {
        self.inner.check()
    }
    fn write(&self, bars: Arc<[crate::persist::StoredBar]>) -> crate::persist::StoreFuture<()> {
        if self.up.load(Ordering::SeqCst) {
            return self.inner.write(bars);
        }
        Box::pin(async { Err(StoreError::Unreachable("writes are switched off".into())) })
    }
    fn bars(&self, symbol: &Symbol, range: Range) -> crate::persist::StoreFuture<Vec<Bar>> {
        self.inner.bars(symbol, range)
    }
    fn revised_since(
        &self,
        symbol: &Symbol,
        interval: Interval,
        since: i64,
        limit: usize,
    ) -> crate::persist::StoreFuture<Vec<Bar>> {
        self.inner.revised_since(symbol, interval, since, limit)
    }
}
