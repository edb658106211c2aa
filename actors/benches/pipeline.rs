//! The fan-out hot paths: trades folded into bars of every interval, and one update delivered to many
//! subscribers (serialize and frame once, then one shared `Bytes` per subscriber's outbox).
//!
//! `cargo bench -p candlecast-actors --bench pipeline`

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};

use candlecast_actors::bars::TimeBars;
use candlecast_actors::model::{Bar, Interval, Side, Trade};
use candlecast_actors::outbox::Outbox;
use candlecast_actors::protocol::{self, PriceUpdate};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// 1M trades at 20,000 a second (50 µs apart, so 20 per millisecond), on a random walk.
fn trades(n: usize) -> Vec<Trade> {
    let mut price = 50_000.0f64;
    (0..n)
        .map(|i| {
            price += (((i * 7919) % 13) as f64 - 6.0) * 0.5;
            Trade {
                symbol: "BTCUSDT".into(),
                price,
                qty: 0.01 + (i % 7) as f64 * 0.01,
                side: Side::Buy,
                exchange_ts: 1_700_000_000_000 + (i / 20) as i64,
                received_ts: 0,
                id: i as u64,
            }
        })
        .collect()
}

fn aggregate(c: &mut Criterion) {
    let trades = trades(1_000_000);
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(trades.len() as u64));
    g.bench_function("trades_into_16_intervals_1M", |b| {
        b.iter_batched(
            || TimeBars::new("BTCUSDT".into(), &Interval::ALL, 2_000, 5_000),
            |mut bars| {
                let mut out = Vec::with_capacity(4096);
                for t in &trades {
                    bars.apply(t, &mut out);
                    // What the aggregator does per batch: hand over closed bars, take the partials.
                    if out.len() > 1024 {
                        out.clear();
                    }
                }
                bars.take_partials(&mut out);
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    let bar = Bar::from_trade("BTCUSDT".into(), Interval::S1, 1_700_000_000_000, 50_000.0, 1.5);
    let mut g = c.benchmark_group("hub");
    for subscribers in [1usize, 1_000, 10_000] {
        let outboxes: Vec<Arc<Outbox>> = (0..subscribers).map(|_| Arc::new(Outbox::new(1 << 20))).collect();
        let waker = futures_util::task::noop_waker();
        g.throughput(Throughput::Elements(subscribers as u64));
        g.bench_function(format!("one_update_to_{subscribers}_subscribers"), |b| {
            b.iter(|| {
                let frame = protocol::text_frame(&PriceUpdate {
                    kind: "price_update",
                    symbol: &bar.symbol,
                    interval: bar.interval,
                    data: (&bar).into(),
                    correction: false,
                    ts_sent: protocol::now_micros(),
                });
                for o in &outboxes {
                    let _ = o.push(frame.clone());
                }
                // The writers take the frames (as the sessions do), so the queues stay short.
                let mut cx = Context::from_waker(&waker);
                for o in &outboxes {
                    while let Poll::Ready(Some(f)) = o.poll_pop(&mut cx) {
                        black_box(f);
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, aggregate, fan_out);
criterion_main!(benches);
