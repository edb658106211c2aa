//! Memory tiers end to end: a market, its aggregator, the hub, the persistence actor and a memory store.
//! The aggregator lets go of what the store has, never of what it does not have yet, and history (and a
//! warm-up) reads the same bars as before.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::aggregator::{AggregatorSettings, CountInMemory, Seed};
use crate::hub::HubSettings;
use crate::persist::memory::MemoryStore;

const SEC: i64 = 1_000;
const HOT: usize = 16;
const DEEP: i64 = 600;

struct Setup {
    market: Market,
    history: History,
    store: Arc<MemoryStore>,
    entry: SymbolEntry,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::new(&HubSettings::default()).start();
    let aggregator = AggregatorSettings {
        intervals: vec![Interval::S1, Interval::M1],
        hot_bars: HOT,
        ..AggregatorSettings::default()
    };
    let market = Market::new(hub.clone(), aggregator, Arbiter::current());
    let settings = StoreSettings {
        path: dir.path().to_owned(),
        batch_bars: 200,
        batch_ms: 20,
        retry_initial_ms: 20,
        retry_max_ms: 100,
        ..Default::default()
    };
    let store = Arc::new(MemoryStore::default());
    let history = History::start(Some(Arc::new(store.clone())), &settings, &market, &hub, 2_000).unwrap();
    let entry = market.get_or_create("BTCUSDT", "simulated");
    Setup { market, history, store, entry, _dir: dir }
}

/// `DEEP` closed 1s bars up to the last whole second, seeded and handed to persistence as a feed does.
async fn backfill(s: &Setup) -> Vec<Bar> {
    let newest = Interval::S1.align(now_ms()) - SEC;
    let bars: Vec<Bar> = (0..DEEP)
        .map(|i| {
            let open = newest - (DEEP - 1 - i) * SEC;
            let mut b = Bar::from_trade("BTCUSDT".into(), Interval::S1, open, 100.0 + i as f64, 1.0 + i as f64);
            b.closed = true;
            b
        })
        .collect();
    let announced = s.history.announce_backfill();
    s.entry.aggregator.send(Seed { bars: vec![(Interval::S1, bars.clone())], unstored: false }).await.unwrap();
    s.history.persist(bars.clone(), Arc::from("simulated"));
    drop(announced);
    bars
}

async fn in_memory(s: &Setup) -> usize {
    s.entry.aggregator.send(CountInMemory).await.unwrap()
}

/// Waits (up to a minute) for a condition.
macro_rules! eventually {
    ($what:expr, $ok:expr) => {{
        let mut tries = 0;
        while !$ok {
            tries += 1;
            assert!(tries < 6_000, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

/// The 1s bars history returns: one per second from the backfill's first to now (the forming one
/// included), and the backfilled ones as they were.
/// While the store is down, memory alone (`store_down`) must hold all of it.
async fn assert_whole(s: &Setup, backfill: &[Bar], store_down: bool) {
    let q = HistoryQuery { interval: Interval::S1, limit: 100_000, start_time: None, end_time: None };
    let bars = match store_down {
        true => s.entry.aggregator.send(GetBars(q)).await.unwrap(),
        false => s.history.bars(&s.entry, q).await.unwrap(),
    };
    assert_eq!(bars[..backfill.len()], backfill[..], "the backfill comes back as it was");
    for pair in bars.windows(2) {
        assert_eq!(pair[1].open_time - pair[0].open_time, SEC, "no hole, no duplicate");
    }
    // A warm-up reads the newest `history_bars` too, whatever memory keeps.
    // (Up to the bar forming at the first read: it may have closed since.)
    let warmup = s.market.warmup_bars(&s.entry, Interval::S1).await.unwrap();
    let forming = bars.last().unwrap().open_time;
    let before = |all: &[Bar]| all.iter().filter(|b| b.open_time < forming).cloned().collect::<Vec<_>>();
    assert_eq!(before(&warmup), before(&bars), "a warm-up sees the whole history");
}

#[actix_rt::test]
async fn memory_keeps_the_hot_window_once_the_store_has_the_rest() {
    let s = setup();
    let backfill = backfill(&s).await;
    assert!(in_memory(&s).await >= DEEP as usize, "all of it until stored");
    // A few bars close between two releases; the 1m interval has 10 or 11.
    eventually!("memory down to the hot window", in_memory(&s).await <= 2 * HOT + 4);
    assert!(s.store.snapshot().len() >= DEEP as usize);
    assert_whole(&s, &backfill, false).await;
}

#[actix_rt::test]
async fn bars_the_store_does_not_have_stay_in_memory() {
    let s = setup();
    s.store.set_down(true);
    let stats = s.history.stats();
    let backfill = backfill(&s).await;
    // The backfill is journaled; the store keeps failing for several retries (and aggregator ticks).
    eventually!("the backfill journaled", stats.journal_bars.load(Ordering::Relaxed) >= DEEP as u64);
    let retries = stats.retries.load(Ordering::Relaxed);
    eventually!("more retries", stats.retries.load(Ordering::Relaxed) >= retries + 5);
    assert!(in_memory(&s).await >= DEEP as usize, "nothing released while the store lacks it");
    assert_whole(&s, &backfill, true).await;

    s.store.set_down(false);
    eventually!("memory down to the hot window", in_memory(&s).await <= 2 * HOT + 4);
    assert_whole(&s, &backfill, false).await;
}

#[actix_rt::test]
async fn a_backfill_that_will_not_be_stored_stays_in_memory() {
    let s = setup();
    // The store could not be read at the feed's start: its backfill is seeded but never stored.
    let newest = Interval::S1.align(now_ms()) - SEC;
    let unstored = s.market.get_or_create("ETHUSDT", "simulated");
    let bars: Vec<Bar> = (0..DEEP)
        .map(|i| {
            let mut b = Bar::from_trade("ETHUSDT".into(), Interval::S1, newest - (DEEP - 1 - i) * SEC, 10.0, 1.0);
            b.closed = true;
            b
        })
        .collect();
    let announced = s.history.announce_backfill();
    unstored.aggregator.send(Seed { bars: vec![(Interval::S1, bars)], unstored: true }).await.unwrap();
    drop(announced);
    // A symbol whose backfill is stored, seeded after it, shows when memory would have been released.
    backfill(&s).await;
    eventually!("the stored backfill released", in_memory(&s).await <= 2 * HOT + 4);
    let held = unstored.aggregator.send(CountInMemory).await.unwrap();
    assert!(held >= DEEP as usize, "memory is the only copy: {held} bars left of {DEEP}");
}
