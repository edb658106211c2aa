//! What every local store promises, run against each of them (`embedded` and `segments`): the same
//! test bodies, parametrised by how the store is opened. The segment store is opened with a tiny
//! rotation size, so that even these small tests write segments and merge them in the background.

use std::path::Path;
use std::sync::Arc;

use super::{EmbeddedStore, Range, SegmentOptions, SegmentStore, Store, StoreError, StoredBar, StoredTrade};
use crate::model::{Bar, Interval, Symbol};

pub(crate) type Opener = fn(&Path) -> Result<Arc<dyn Store>, StoreError>;

/// Each local store kind, and how a test opens it.
pub(crate) const KINDS: [(&str, Opener); 2] = [
    ("embedded", |dir| Ok(Arc::new(EmbeddedStore::open(dir)?))),
    ("segments", |dir| Ok(Arc::new(SegmentStore::open(dir, tiny())?))),
];

/// Rotation every 7 bars, merges in the background: the small tests below go through segments.
pub(crate) fn tiny() -> SegmentOptions {
    SegmentOptions { rotate_bars: 7, background_merge: true }
}

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
    for (kind, open) in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let sym: Symbol = "BTCUSDT".into();
        {
            let store = open(dir.path()).unwrap();
            let batch: Vec<StoredBar> = (0..10).map(|i| stored(i * 60_000, 100.0 + i as f64, 1_000)).collect();
            store.write(batch.into()).await.unwrap();
            // The same key again, corrected: replaced, not added.
            store.write(vec![stored(3 * 60_000, 42.0, 2_000)].into()).await.unwrap();
            let err = open(dir.path()).err().unwrap();
            assert!(err.to_string().contains("already open"), "{kind}: {err}");
        }
        let store = open(dir.path()).unwrap();
        store.close().await.unwrap();
        assert!(store.bars(&sym, range(None, None, 1)).await.is_err(), "{kind}: closed");
        let store = open(dir.path()).expect("the lock is released by close");
        let all = store.bars(&sym, range(None, None, 100)).await.unwrap();
        assert_eq!(all.len(), 10, "{kind}");
        assert_eq!(all[3].close, 42.0, "{kind}");
        assert!(all.iter().all(|b| b.closed) && all.windows(2).all(|w| w[0].open_time < w[1].open_time));
        let newest = store.bars(&sym, range(Some(60_000), Some(6 * 60_000), 2)).await.unwrap();
        assert_eq!(newest.iter().map(|b| b.open_time).collect::<Vec<_>>(), [4 * 60_000, 5 * 60_000], "{kind}");
        let revised = store.revised_since(&sym, Interval::M1, 1_500, 100).await.unwrap();
        assert_eq!(
            revised.iter().map(|b| b.open_time).collect::<Vec<_>>(),
            [3 * 60_000],
            "{kind}: only the corrected bar, once"
        );
        assert_eq!(store.revised_since(&sym, Interval::M1, 0, 100).await.unwrap().len(), 10, "{kind}");
        assert!(store.bars(&"ETHUSDT".into(), range(None, None, 100)).await.unwrap().is_empty(), "{kind}");
        store.close().await.unwrap();
    }
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
    for (kind, open) in KINDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path()).unwrap();
            assert!(store.keeps_script_data(), "{kind}");
            store.add_script_symbol("ZZZ", 2_000).await.unwrap();
            store.add_script_symbol("AAA", 3_000).await.unwrap();
            store.add_script_symbol("ZZZ", 9_000).await.unwrap();
            let first: Vec<StoredTrade> =
                vec![trade("A", 5, "x"), trade("A", 1, "x"), trade("B", 3, "y"), trade("A", 5, "second")];
            store.add_executed_trades(first.into(), 3).await.unwrap();
            store.add_executed_trades(vec![trade("A", 9, "x")].into(), 3).await.unwrap();
            store.close().await.unwrap();
        }
        let store = open(dir.path()).unwrap();
        assert_eq!(store.script_symbols().await.unwrap(), ["ZZZ", "AAA"], "{kind}: by first creation");
        let all = store.executed_trades(100).await.unwrap();
        let keys: Vec<(&str, i64, &str)> =
            all.iter().map(|t| (t.symbol.as_str(), t.timestamp, t.strategy.as_str())).collect();
        assert_eq!(
            keys,
            [("A", 5, "x"), ("A", 5, "second"), ("A", 9, "x"), ("B", 3, "y")],
            "{kind}: A's oldest (1) trimmed"
        );
        assert_eq!(all[3].profit_loss, None);
        assert_eq!(all[1].profit_loss, None);
        let newest: Vec<i64> = store.executed_trades(1).await.unwrap().iter().map(|t| t.timestamp).collect();
        assert_eq!(newest, [9, 3], "{kind}");
        store.close().await.unwrap();
    }
}

fn bar_at(symbol: &str, interval: Interval, open_time: i64, revised: i64) -> StoredBar {
    let mut bar = Bar::from_trade(symbol.into(), interval, open_time, 100.0, 1.0);
    bar.closed = true;
    StoredBar { bar, source: "simulated".into(), revised }
}

/// The part of the embedded store's expiry test that every store must pass (its table internals are
/// checked in embedded.rs).
#[actix_rt::test]
async fn expire_deletes_at_most_the_batch_oldest_first_and_usage_follows() {
    for (kind, open) in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).unwrap();
        let mut batch = Vec::new();
        for sym in ["AAA", "BBB"] {
            for i in 0..10 {
                batch.push(bar_at(sym, Interval::S1, i * 1_000, 1));
                batch.push(bar_at(sym, Interval::M1, i * 60_000, 1));
            }
        }
        store.write(batch.into()).await.unwrap();
        store.write(vec![bar_at("AAA", Interval::S1, 0, 2)].into()).await.unwrap();
        let cutoffs = vec![(Interval::S1, 6_000)];
        let first = store.expire(cutoffs.clone(), 5).await.unwrap();
        assert_eq!((first.deleted[Interval::S1.index()], first.total()), (5, 5), "{kind}");
        let aaa = store.bars(&"AAA".into(), Range { interval: Interval::S1, start: None, end: None, limit: 100 });
        assert_eq!(aaa.await.unwrap().first().map(|b| b.open_time), Some(5_000), "{kind}: the oldest went first");
        assert_eq!(store.expire(cutoffs.clone(), 5).await.unwrap().total(), 5, "{kind}");
        assert_eq!(store.expire(cutoffs.clone(), 5).await.unwrap().total(), 2, "{kind}: the rest");
        assert_eq!(store.expire(cutoffs, 5).await.unwrap().total(), 0, "{kind}: nothing left to expire");
        for sym in ["AAA", "BBB"] {
            let s1 = store.bars(&sym.into(), Range { interval: Interval::S1, start: None, end: None, limit: 100 });
            let times: Vec<i64> = s1.await.unwrap().iter().map(|b| b.open_time).collect();
            assert_eq!(times, [6_000, 7_000, 8_000, 9_000], "{kind} {sym}");
            let m1 = store.bars(&sym.into(), Range { interval: Interval::M1, start: None, end: None, limit: 100 });
            assert_eq!(m1.await.unwrap().len(), 10, "{kind} {sym}: another interval is untouched");
        }
        assert_eq!(store.revised_since(&"AAA".into(), Interval::S1, 0, 100).await.unwrap().len(), 4, "{kind}");
        store.close().await.unwrap();
    }
}
