use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::{Bar, Interval, Symbol};
use crate::persist::store_tests::{Opener, KINDS};
use crate::persist::{Range, StoredBar};

const NOW: i64 = 1_750_000_000_000;

#[test]
fn durations_parse_and_bad_ones_are_named() {
    assert_eq!(parse_duration("7d"), Ok(Some(7 * DAY)));
    assert_eq!(parse_duration("36h"), Ok(Some(36 * 3_600_000)));
    assert_eq!(parse_duration("90m"), Ok(Some(90 * 60_000)));
    assert_eq!(parse_duration("45s"), Ok(Some(45_000)));
    assert_eq!(parse_duration("2w"), Ok(Some(14 * DAY)));
    assert_eq!(parse_duration("forever"), Ok(None));
    for bad in ["", "7", "d", "0d", "-1d", "7 d", "7D", "1y", "1.5d", "99999999999999999999d", "40000000d"] {
        let err = parse_duration(bad).unwrap_err();
        assert!(err.to_string().contains("forever"), "{bad}: {err}");
    }
    assert_eq!(format_duration(7 * DAY), "7d");
    assert_eq!(format_duration(36 * 3_600_000), "36h");
    assert_eq!(format_duration(45_000), "45s");
}

#[test]
fn settings_read_interval_names_and_forever() {
    let s: RetentionSettings = serde_json::from_str(r#"{"1s": "2d", "5s": "forever", "1m": "1w"}"#).unwrap();
    assert_eq!((s.keep_ms(Interval::S1), s.keep_ms(Interval::S5)), (Some(2 * DAY), None));
    assert_eq!((s.keep_ms(Interval::M1), s.keep_ms(Interval::H1)), (Some(7 * DAY), None));
    assert_eq!(s.cutoffs(NOW), [(Interval::S1, NOW - 2 * DAY), (Interval::M1, NOW - 7 * DAY)]);
    assert_eq!(s.describe().get("1m").map(String::as_str), Some("7d"));
    let err = serde_json::from_str::<RetentionSettings>(r#"{"2m": "1d"}"#).unwrap_err().to_string();
    assert!(err.contains("unknown interval"), "{err}");
    let err = serde_json::from_str::<RetentionSettings>(r#"{"1s": "soon"}"#).unwrap_err().to_string();
    assert!(err.contains("1s") && err.contains("soon"), "{err}");
    let d = RetentionSettings::default();
    assert_eq!(
        (d.keep_ms(Interval::S1), d.keep_ms(Interval::S30), d.keep_ms(Interval::M1)),
        (Some(7 * DAY), Some(30 * DAY), None)
    );
}

fn stored(symbol: &str, interval: Interval, open_time: i64) -> StoredBar {
    let mut bar = Bar::from_trade(symbol.into(), interval, interval.align(open_time), 100.0, 1.0);
    bar.closed = true;
    StoredBar { bar, source: "simulated".into(), revised: open_time }
}

/// Ages in days of the bars written for each symbol and interval.
const AGES: [i64; 5] = [40, 10, 8, 6, 1];

async fn store_with_old_bars(dir: &std::path::Path, open: Opener) -> Arc<dyn Store> {
    let store = open(dir).unwrap();
    let mut bars = Vec::new();
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        for interval in [Interval::S1, Interval::S5, Interval::M1] {
            bars.extend(AGES.iter().map(|days| stored(symbol, interval, NOW - days * DAY)));
        }
    }
    store.write(bars.into()).await.unwrap();
    store
}

/// Ages (whole days before `NOW`) of the stored bars of `symbol` and `interval`.
async fn ages(store: &dyn Store, symbol: &str, interval: Interval) -> Vec<i64> {
    let range = Range { interval, start: None, end: None, limit: 100 };
    let bars = store.bars(&Symbol::from(symbol), range).await.unwrap();
    bars.iter().map(|b| (NOW - b.open_time + DAY / 2) / DAY).collect()
}

#[actix_rt::test]
async fn passes_delete_what_is_older_than_each_intervals_cutoff_and_at_most_the_batch() {
    for (_, open) in KINDS {
        passes_delete_expired(open).await;
    }
}

async fn passes_delete_expired(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_old_bars(dir.path(), open).await;
    let store = &*store;
    let settings = RetentionSettings::keeping(&[(Interval::S1, 7 * DAY), (Interval::S5, 30 * DAY)]);

    // Expired now: 1s bars of 40, 10 and 8 days (3 a symbol), 5s bars of 40 days (1 a symbol): 8 in all.
    let mut deleted = Vec::new();
    loop {
        let expired = pass(store, &settings, NOW, 3).await.unwrap();
        assert!(expired.total() <= 3, "a pass deletes at most the batch: {expired:?}");
        if expired.total() == 0 {
            break;
        }
        deleted.push(expired.total());
    }
    assert_eq!(deleted, [3, 3, 2], "bounded passes until nothing is expired");
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        assert_eq!(ages(store, symbol, Interval::S1).await, [6, 1], "{symbol} 1s: older than 7 days gone");
        assert_eq!(ages(store, symbol, Interval::S5).await, [10, 8, 6, 1], "{symbol} 5s: 30 days kept");
        assert_eq!(ages(store, symbol, Interval::M1).await, AGES, "{symbol} 1m: kept forever");
    }

    // Three days later the 6-day-old 1s bars are 9 days old.
    assert_eq!(pass(store, &settings, NOW + 3 * DAY, 100).await.unwrap().deleted[Interval::S1.index()], 2);
    assert_eq!(ages(store, "BTCUSDT", Interval::S1).await, [1]);
    let usage = store.usage().await.unwrap().unwrap();
    assert_eq!((usage.bars(Interval::S1), usage.bars(Interval::S5), usage.bars(Interval::M1)), (2, 8, 10));

    assert_eq!(pass(store, &RetentionSettings::forever(), NOW + 1_000 * DAY, 100).await.unwrap().total(), 0);
}

#[actix_rt::test]
async fn the_background_loop_follows_the_injected_clock() {
    for (_, open) in KINDS {
        background_loop(open).await;
    }
}

async fn background_loop(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = store_with_old_bars(dir.path(), open).await;
    let now = Arc::new(AtomicI64::new(NOW));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let stats = Arc::new(RetentionStats::default());
    let schedule = Schedule {
        settings: RetentionSettings::keeping(&[(Interval::S1, 7 * DAY)]),
        batch_bars: 2,
        every: Duration::from_millis(20),
    };
    let task = spawn(store.clone(), schedule, clock, stats.clone());
    let s1 = |store: Arc<dyn Store>| async move { store.usage().await.unwrap().unwrap().bars(Interval::S1) };
    eventually(|| async { s1(store.clone()).await == 4 }).await;
    assert_eq!(stats.deleted(Interval::S1), 6);
    assert_eq!(stats.deleted(Interval::S5) + stats.deleted(Interval::M1), 0);
    assert!(stats.passes.load(Ordering::Relaxed) >= 3, "6 bars, 2 a pass");

    // Time moves on: what is now older than 7 days goes at the next passes, and nothing else.
    now.store(NOW + 6 * DAY, Ordering::SeqCst);
    eventually(|| async { s1(store.clone()).await == 2 }).await;
    now.store(NOW + 1_000 * DAY, Ordering::SeqCst);
    eventually(|| async { s1(store.clone()).await == 0 }).await;
    task.abort();
    let usage = store.usage().await.unwrap().unwrap();
    assert_eq!((usage.bars(Interval::S5), usage.bars(Interval::M1)), (10, 10));
    assert_eq!(stats.deleted(Interval::S1), 10);
}

/// Polls `f` until it holds; panics after two minutes (a shared machine can be slow, never this slow).
async fn eventually<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    for _ in 0..2_400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached");
}
