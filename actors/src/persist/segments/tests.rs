//! Crashes, concurrency and corruption: each test plays the failure on real files (a torn log, a crash
//! between two steps, a flipped byte) and checks the store against a model of what was acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{migrate, Options, SegmentStore, DIR_NAME};
use crate::model::{Bar, Interval, Symbol};
use crate::persist::{EmbeddedStore, Store, StoredBar, StoredTrade};

const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
const INTERVALS: [Interval; 2] = [Interval::S1, Interval::M1];

fn manual(rotate_bars: usize) -> Options {
    Options { rotate_bars, background_merge: false }
}

/// What was acknowledged: per (symbol, interval), open time → (bar, revised).
#[derive(Default, Clone)]
struct Model {
    series: HashMap<(String, Interval), BTreeMap<i64, (Bar, i64)>>,
    next_revised: i64,
    seed: u64,
}

impl Model {
    fn rand(&mut self) -> u64 {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.seed >> 33
    }

    /// A batch of `n` bars: mostly new ones at the end of a series, some corrections of older ones.
    fn batch(&mut self, n: usize) -> Vec<StoredBar> {
        self.next_revised += 1_000;
        let revised = self.next_revised;
        let mut out: BTreeMap<(String, Interval, i64), StoredBar> = BTreeMap::new();
        for _ in 0..n {
            let symbol = SYMBOLS[self.rand() as usize % SYMBOLS.len()];
            let interval = INTERVALS[self.rand() as usize % INTERVALS.len()];
            let held = self.series.get(&(symbol.to_owned(), interval)).map_or(0, |s| s.len() as i64);
            let step = if held > 0 && self.rand().is_multiple_of(5) { self.rand() as i64 % held } else { held };
            let open_time = 1_700_000_000_000 + step * interval.millis();
            let price = (self.rand() % 1_000_000) as f64 / 10_000.0;
            let mut bar = Bar::from_trade(symbol.into(), interval, open_time, price, 1.0 + (self.rand() % 7) as f64);
            bar.closed = true;
            bar.trades = self.rand() % 500;
            let s = StoredBar { bar: bar.clone(), source: "simulated".into(), revised };
            self.series.entry((symbol.to_owned(), interval)).or_default().insert(open_time, (bar, revised));
            out.insert((symbol.to_owned(), interval, open_time), s);
        }
        out.into_values().collect()
    }

    /// Checks every series read whole, a bounded newest read, and two `since=` polls.
    fn check(&self, store: &SegmentStore, when: &str) {
        for ((symbol, interval), bars) in &self.series {
            let sym = Symbol::from(symbol.as_str());
            let expected: Vec<Bar> = bars.values().map(|(b, _)| b.clone()).collect();
            let got = store.shared.bars(&sym, *interval, i64::MIN, i64::MAX, usize::MAX).unwrap();
            assert_eq!(got, expected, "{when}: {symbol} {interval:?} whole");
            let newest = store.shared.bars(&sym, *interval, i64::MIN, i64::MAX, 5).unwrap();
            assert_eq!(newest, expected[expected.len().saturating_sub(5)..], "{when}: {symbol} {interval:?} newest 5");
            for since in [self.next_revised, self.next_revised - 3_000] {
                let hits: Vec<Bar> = bars.values().filter(|(_, r)| *r >= since).map(|(b, _)| b.clone()).collect();
                let got = store.shared.revised_since(&sym, *interval, since, usize::MAX).unwrap();
                assert_eq!(got, hits, "{when}: {symbol} {interval:?} since {since}");
                let limited = store.shared.revised_since(&sym, *interval, since, 2).unwrap();
                assert_eq!(limited, hits[hits.len().saturating_sub(2)..], "{when}: since, limit 2");
            }
        }
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn open(dir: &Path, options: Options) -> SegmentStore {
    SegmentStore::open_dir(dir, options).unwrap()
}

#[test]
fn reopening_gives_the_same_answers_through_rotations_merges_and_corrections() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model { seed: 7, ..Model::default() };
    {
        let store = open(dir.path(), manual(40));
        for i in 0..60 {
            store.write_now(&model.batch(13), true).unwrap();
            if i % 10 == 9 {
                store.merge_now().unwrap();
            }
        }
        assert!(store.segment_count() >= 2, "rotated and merged by tiers, not into one");
        model.check(&store, "written");
        store.close_now();
    }
    let store = open(dir.path(), manual(40));
    model.check(&store, "reopened");
    assert_eq!(store.torn_bytes(), 0);
    let usage = store.shared.usage().unwrap();
    store.rotate_now().unwrap();
    while store.merge_now().unwrap() > 0 {}
    let distinct: u64 = model.series.values().map(|s| s.len() as u64).sum();
    assert!(usage.total_bars() >= distinct, "before merging a correction may count twice");
    model.check(&store, "merged");
}

#[test]
fn a_torn_log_tail_is_cut_and_counted_and_every_acknowledged_batch_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model { seed: 11, ..Model::default() };
    {
        let store = open(dir.path(), manual(1_000));
        for _ in 0..5 {
            store.write_now(&model.batch(9), true).unwrap();
        }
        store.close_now();
    }
    // A sixth batch torn by a crash: half of its record reached the disk. It was never acknowledged.
    let mut unacked = model.clone();
    let torn = unacked.batch(9);
    {
        let store = open(&dir.path().join("scratch"), manual(1_000));
        store.write_now(&torn, true).unwrap();
        store.close_now();
    }
    let record = std::fs::read(dir.path().join("scratch").join(super::store::LOG)).unwrap();
    let mut log = std::fs::read(dir.path().join(super::store::LOG)).unwrap();
    log.extend_from_slice(&record[..record.len() / 2]);
    std::fs::write(dir.path().join(super::store::LOG), &log).unwrap();

    let store = open(dir.path(), manual(1_000));
    assert_eq!(store.torn_bytes(), (record.len() / 2) as u64, "cut and counted");
    model.check(&store, "after the torn tail");
    // Writes go on after the cut, and survive another reopening.
    store.write_now(&model.batch(9), true).unwrap();
    store.close_now();
    let store = open(dir.path(), manual(1_000));
    assert_eq!(store.torn_bytes(), 0);
    model.check(&store, "reopened after more writes");
}

#[test]
fn a_crash_between_a_segments_fsync_and_the_log_truncation_replays_harmlessly() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model { seed: 13, ..Model::default() };
    let log_path = dir.path().join(super::store::LOG);
    let store = open(dir.path(), manual(1_000));
    store.write_now(&model.batch(20), true).unwrap();
    let last = model.batch(20);
    store.write_now(&last, true).unwrap();
    // What the log holds just before a rotation truncates it: both batches.
    let log = std::fs::read(&log_path).unwrap();
    store.rotate_now().unwrap();
    assert_eq!(std::fs::metadata(&log_path).unwrap().len(), 0, "rotated");
    assert_eq!(files(dir.path(), ".seg").len(), 1);
    store.close_now();
    drop(store);
    // The crash: the segment was fsynced and renamed, the log not yet truncated.
    std::fs::write(&log_path, &log).unwrap();
    let store = open(dir.path(), manual(1_000));
    model.check(&store, "bars in both the segment and the replayed log");
    store.write_now(&model.batch(20), true).unwrap();
    store.rotate_now().unwrap();
    store.merge_now().unwrap();
    model.check(&store, "and after the next rotation");
    store.close_now();
    drop(store);
    model.check(&open(dir.path(), manual(1_000)), "reopened");
}

#[test]
fn a_crash_mid_merge_leaves_the_replaced_segments_which_open_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model { seed: 17, ..Model::default() };
    let store = open(dir.path(), manual(10));
    for _ in 0..4 {
        store.write_now(&model.batch(10), true).unwrap();
        store.rotate_now().unwrap();
    }
    let inputs = files(dir.path(), ".seg");
    assert_eq!(inputs.len(), 4);
    let saved: Vec<(String, Vec<u8>)> =
        inputs.iter().map(|n| (n.clone(), std::fs::read(dir.path().join(n)).unwrap())).collect();
    assert_eq!(store.merge_now().unwrap(), 1);
    let merged = files(dir.path(), ".seg");
    assert_eq!(merged.len(), 1, "the inputs are deleted once merged: {merged:?}");
    model.check(&store, "merged");
    store.close_now();
    drop(store);
    // The crash: the merged segment was renamed into place, its inputs not yet deleted.
    for (name, bytes) in &saved {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    std::fs::write(dir.path().join("00000099.seg.tmp"), b"a segment a crash interrupted").unwrap();
    let store = open(dir.path(), manual(10));
    assert_eq!(files(dir.path(), ".seg"), merged, "open deleted the replaced segments");
    assert!(files(dir.path(), ".tmp").is_empty(), "and the unfinished one");
    model.check(&store, "reopened after the crash");
}

#[test]
fn readers_get_whole_answers_while_the_writer_rotates_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), manual(25)));
    // A fixed series every reader checks: its bars never change after this.
    let fixed: Vec<StoredBar> = (0..300)
        .map(|i| {
            let mut bar = Bar::from_trade("FIXED".into(), Interval::M1, i * 60_000, 100.0 + i as f64, 1.0);
            bar.closed = true;
            StoredBar { bar, source: "simulated".into(), revised: 1 }
        })
        .collect();
    for part in fixed.chunks(20) {
        store.write_now(part, true).unwrap();
    }
    let expected: Vec<Bar> = fixed.iter().map(|s| s.bar.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop, expected) = (store.clone(), stop.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) || reads < 10 {
                    let got = store.shared.bars(&"FIXED".into(), Interval::M1, i64::MIN, i64::MAX, 1_000).unwrap();
                    assert_eq!(got, expected, "a read during rotations and merges");
                    let newest = store.shared.bars(&"FIXED".into(), Interval::M1, i64::MIN, i64::MAX, 7).unwrap();
                    assert_eq!(newest, expected[expected.len() - 7..]);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut model = Model { seed: 19, ..Model::default() };
    let mut merges = 0;
    for _ in 0..40 {
        store.write_now(&model.batch(10), true).unwrap();
        merges += store.merge_now().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 10);
    }
    assert!(merges >= 3, "merges ran while the readers read: {merges}");
    model.check(&store, "after");
}

#[test]
fn a_merge_running_in_the_background_does_not_stop_writes_or_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options { rotate_bars: 10, background_merge: true });
    let mut model = Model { seed: 23, ..Model::default() };
    for _ in 0..60 {
        store.write_now(&model.batch(10), true).unwrap();
    }
    model.check(&store, "while merges may be running");
    let idle = |store: &SegmentStore| {
        while store.shared.merging.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    idle(&store);
    // A rotation that came as the last merge ended did not start one: start it now.
    super::merge::spawn_if_due(&store.shared);
    idle(&store);
    model.check(&store, "after the merges");
    store.close_now();
    assert!(!store.shared.merging.load(Ordering::Acquire), "close waits for the merge");
    let store = open(dir.path(), manual(10));
    model.check(&store, "reopened");
    assert!(store.segment_count() < 24, "merged by tiers: {}", store.segment_count());
}

#[test]
fn retention_while_writing_deletes_only_expired_bars_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), manual(50));
    let sym: Symbol = "BTCUSDT".into();
    let bar = |i: i64, revised: i64| {
        let mut bar = Bar::from_trade(sym.clone(), Interval::S1, i * 1_000, 100.0 + i as f64, 1.0);
        bar.closed = true;
        StoredBar { bar, source: "simulated".into(), revised }
    };
    let mut deleted = 0;
    for step in 0..40i64 {
        let batch: Vec<StoredBar> = (step * 10..step * 10 + 10).map(|i| bar(i, step)).collect();
        store.write_now(&batch, true).unwrap();
        // Keep the last 100 s, from step 20 on (a backlog of 110 bars then), at most 25 bars a pass while
        // 10 arrive a step: the backlog drains over several passes.
        if step < 20 {
            continue;
        }
        let cutoff = (step * 10 + 10 - 100) * 1_000;
        let pass = store.shared.expire(&[(Interval::S1, cutoff)], 25).unwrap().total();
        assert!(pass <= 25);
        deleted += pass;
        if step % 8 == 7 {
            store.merge_now().unwrap();
        }
    }
    let floor_bars = store.shared.bars(&sym, Interval::S1, i64::MIN, i64::MAX, usize::MAX).unwrap();
    let first = floor_bars[0].open_time / 1_000;
    assert_eq!(deleted, first as u64, "every deleted bar was counted once");
    assert_eq!(floor_bars.len() as i64, 400 - first, "contiguous after the cut");
    assert!(floor_bars.windows(2).all(|w| w[1].open_time - w[0].open_time == 1_000));
    assert_eq!(first, 300, "retention caught up over the passes");
    assert_eq!(store.shared.usage().unwrap().bars(Interval::S1), 400 - first as u64, "usage follows exactly");
    // A cutoff inside a chunk (the merge just cut the last one at 300): the chunk stays, its 5 bars before the
    // cutoff are no longer read, and usage counts what is left of it.
    store.rotate_now().unwrap();
    assert_eq!(store.shared.expire(&[(Interval::S1, 305_000)], 100).unwrap().total(), 5);
    let floor_bars = store.shared.bars(&sym, Interval::S1, i64::MIN, i64::MAX, usize::MAX).unwrap();
    assert_eq!((floor_bars[0].open_time, floor_bars.len()), (305_000, 95));
    assert_eq!(store.shared.usage().unwrap().bars(Interval::S1), 95);
    let polled = store.shared.revised_since(&sym, Interval::S1, 0, usize::MAX).unwrap();
    assert_eq!(polled, floor_bars, "since= skips them too");
    // A write of a bar below the floor (a very late correction) is not kept: retention deleted its time.
    store.write_now(&[bar(0, 99)], true).unwrap();
    store.close_now();
    let store = open(dir.path(), manual(50));
    assert_eq!(store.shared.bars(&sym, Interval::S1, i64::MIN, i64::MAX, usize::MAX).unwrap(), floor_bars);
}

#[test]
fn since_after_corrections_and_a_clock_stepped_back_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), manual(5));
    let sym: Symbol = "BTCUSDT".into();
    let bar = |i: i64, close: f64, revised: i64| {
        let mut bar = Bar::from_trade(sym.clone(), Interval::M1, i * 60_000, close, 1.0);
        bar.closed = true;
        StoredBar { bar, source: "simulated".into(), revised }
    };
    store.write_now(&(0..10).map(|i| bar(i, 1.0, 10_000)).collect::<Vec<_>>(), true).unwrap();
    // Corrections in later segments, one with a clock stepped back by a minute: stamped after 10_000.
    store.write_now(&[bar(2, 2.0, 20_000)], true).unwrap();
    store.write_now(&[bar(5, 3.0, 20_000 - 60_000)], true).unwrap();
    store.rotate_now().unwrap();
    let polled = store.shared.revised_since(&sym, Interval::M1, 10_001, 100).unwrap();
    assert_eq!(polled.iter().map(|b| (b.open_time / 60_000, b.close)).collect::<Vec<_>>(), [(2, 2.0), (5, 3.0)]);
    // A poll since the first correction still sees the one stamped after it.
    let polled = store.shared.revised_since(&sym, Interval::M1, 20_000, 100).unwrap();
    assert_eq!(polled.iter().map(|b| b.open_time / 60_000).collect::<Vec<_>>(), [2, 5]);
    store.merge_now().unwrap();
    let merged = store.shared.revised_since(&sym, Interval::M1, 10_001, 100).unwrap();
    assert_eq!(merged.iter().map(|b| (b.open_time / 60_000, b.close)).collect::<Vec<_>>(), [(2, 2.0), (5, 3.0)]);
}

#[test]
fn a_corrupt_segment_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model { seed: 29, ..Model::default() };
    let store = open(dir.path(), manual(10));
    store.write_now(&model.batch(10), true).unwrap();
    store.rotate_now().unwrap();
    store.close_now();
    drop(store);
    let seg = dir.path().join(&files(dir.path(), ".seg")[0]);
    let good = std::fs::read(&seg).unwrap();
    // A flipped byte in the first chunk: open succeeds (the footer is fine), the read reports it.
    let mut bytes = good.clone();
    bytes[3] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let store = open(dir.path(), manual(10));
    let mut errors = 0;
    for (symbol, interval) in model.series.keys() {
        if let Err(e) = store.shared.bars(&symbol.as_str().into(), *interval, i64::MIN, i64::MAX, 100) {
            assert!(e.to_string().contains("corrupt"), "{e}");
            errors += 1;
        }
    }
    assert_eq!(errors, 1, "only the series of the damaged chunk");
    store.close_now();
    drop(store);
    // A segment cut short, or its footer damaged: open names the file.
    for damaged in [good[..good.len() - 3].to_vec(), {
        let mut b = good.clone();
        let n = b.len();
        b[n - 20] ^= 1;
        b
    }] {
        std::fs::write(&seg, &damaged).unwrap();
        let err = SegmentStore::open_dir(dir.path(), manual(10)).err().unwrap();
        assert!(err.to_string().contains("corrupt") && err.to_string().contains(".seg"), "{err}");
    }
}

fn stored(symbol: &str, interval: Interval, i: i64, revised: i64) -> StoredBar {
    let mut bar = Bar::from_trade(symbol.into(), interval, i * interval.millis(), 50.0 + i as f64 / 7.0, 2.5);
    bar.closed = true;
    bar.trades = i as u64;
    StoredBar { bar, source: "binance".into(), revised }
}

#[actix_rt::test]
async fn a_redb_store_is_migrated_on_open_and_an_interrupted_migration_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let redb = EmbeddedStore::open(dir.path()).unwrap();
        for symbol in SYMBOLS {
            for interval in INTERVALS {
                let bars: Vec<StoredBar> = (0..700).map(|i| stored(symbol, interval, i, 5_000 + i)).collect();
                redb.write(bars.clone().into()).await.unwrap();
                written.extend(bars);
            }
        }
        redb.add_script_symbol("MYSYM", 1_234).await.unwrap();
        let trade = StoredTrade {
            timestamp: 9,
            symbol: "MYSYM".into(),
            side: "SELL".into(),
            quantity: 2.0,
            price: 3.0,
            profit_loss: Some(1.0),
            strategy: "s".into(),
        };
        redb.add_executed_trades(vec![trade].into(), 10).await.unwrap();
        redb.close().await.unwrap();
    }
    // An earlier attempt that stopped half way: its staging directory is thrown away.
    let staging = dir.path().join(migrate::STAGING);
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("00000000.seg"), b"half a segment").unwrap();

    let options = Options { rotate_bars: 1_000, background_merge: false };
    let store = SegmentStore::open(dir.path(), options).unwrap();
    assert!(!staging.exists() && dir.path().join(DIR_NAME).join(migrate::MARKER).exists());
    assert!(!dir.path().join("candlecast.redb").exists() && dir.path().join(migrate::MIGRATED_REDB).exists());
    for symbol in SYMBOLS {
        for interval in INTERVALS {
            let sym = Symbol::from(symbol);
            let expected: Vec<Bar> = written
                .iter()
                .filter(|s| *s.bar.symbol == *symbol && s.bar.interval == interval)
                .map(|s| s.bar.clone())
                .collect();
            let got = store.shared.bars(&sym, interval, i64::MIN, i64::MAX, usize::MAX).unwrap();
            assert_eq!(got, expected, "{symbol} {interval:?}");
            // Revisions kept as they were: the poll finds the same bars as in redb.
            let polled = store.shared.revised_since(&sym, interval, 5_000 + 650, usize::MAX).unwrap();
            assert_eq!(polled, expected[650..], "{symbol} {interval:?} since=");
        }
    }
    assert_eq!(store.shared.usage().unwrap().total_bars(), written.len() as u64);
    assert_eq!(store.script_symbols().await.unwrap(), ["MYSYM"]);
    assert_eq!(store.executed_trades(10).await.unwrap().len(), 1);
    // New writes are revised after every migrated bar.
    store.write(vec![stored("BTCUSDT", Interval::S1, 3, 1)].into()).await.unwrap();
    let polled = store.shared.revised_since(&"BTCUSDT".into(), Interval::S1, 5_000 + 700, 10).unwrap();
    assert_eq!(polled.iter().map(|b| b.open_time).collect::<Vec<_>>(), [3_000]);
    store.close().await.unwrap();
    // Opened again: no second migration, the same bars (and the corrected one counted twice, in the log
    // and in its segment, until a merge).
    let again = SegmentStore::open(dir.path(), options).unwrap();
    assert_eq!(again.shared.usage().unwrap().total_bars(), written.len() as u64 + 1);
    assert_eq!(again.shared.bars(&"BTCUSDT".into(), Interval::S1, 3_000, 4_000, 9).unwrap()[0].trades, 3);
}
