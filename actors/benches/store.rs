//! Write throughput of the embedded store (redb): batches of closed bars, each one transaction
//! committed with fsync, as the persistence actor writes them. Upserts of bars already stored cost the
//! revision-index update on top.
//!
//! `cargo bench -p candlecast-actors --bench store`

use std::sync::Arc;

use candlecast_actors::model::{Bar, Interval};
use candlecast_actors::persist::EmbeddedStore;
use candlecast_actors::persist::{Store, StoredBar};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn batch(from: i64, n: i64, revised: i64) -> Arc<[StoredBar]> {
    (from..from + n)
        .map(|i| {
            let mut bar = Bar::from_trade(
                "BTCUSDT".into(),
                Interval::S1,
                1_700_000_000_000 + i * 1_000,
                50_000.0 + (i % 97) as f64,
                0.5,
            );
            bar.apply_trade(50_010.0, 0.25);
            bar.closed = true;
            StoredBar { bar, source: "simulated".into(), revised }
        })
        .collect()
}

fn writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let mut g = c.benchmark_group("embedded_store");
    for size in [100i64, 1_000, 10_000] {
        g.throughput(Throughput::Elements(size as u64));
        let mut next = 0i64;
        g.bench_function(format!("new_bars_batch_{size}"), |b| {
            b.iter(|| {
                let bars = batch(next, size, next);
                next += size;
                rt.block_on(store.write(bars)).unwrap();
            })
        });
    }
    // Bars written again (a journal replayed, corrections): the same keys, a new revision.
    let size = 1_000;
    rt.block_on(store.write(batch(-1_000_000, size, 0))).unwrap();
    g.throughput(Throughput::Elements(size as u64));
    let mut revision = 1;
    g.bench_function("upsert_existing_batch_1000", |b| {
        b.iter(|| {
            revision += 1;
            rt.block_on(store.write(batch(-1_000_000, size, revision))).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, writes);
criterion_main!(benches);
