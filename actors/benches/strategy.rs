//! Strategy engine benchmarks; results and the command to run them are in `docs/STRATEGIES.md`.
//!
//! - `backtest/ema_cross`: single-threaded backtest throughput (metrics only, the optimizer's path, and
//!   the full report with equity curve), 1,000,000 one-minute bars.
//! - `indicators/*`: one incremental update per bar for a few indicators.
//! - `optimize/ema_cross_1000x100k`: 1,000 parameter sets over 100,000 bars on every core.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use candlecast_actors::model::{Bar, Interval};
use candlecast_actors::strategy::{build_strategy, EmaCross};
use candlecast_actors::strategy::{run_backtest, run_metrics, BacktestConfig};
use candlecast_actors::strategy::{run_optimization, OptimizeSpec, Progress};
use candlecast_actors::strategy::{Indicator, Rsi, SuperTrend};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A deterministic random walk of closed one-minute bars (LCG: no extra dependency, same bars every run).
fn bars(n: usize) -> Vec<Bar> {
    let mut state = 42u64;
    let mut price = 30_000.0;
    (0..n)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let step = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.004;
            let open = price;
            price *= 1.0 + step;
            Bar {
                symbol: "BTCUSDT".into(),
                interval: Interval::M1,
                open_time: 1_700_000_000_000 / 60_000 * 60_000 + i as i64 * 60_000,
                open,
                high: open.max(price) * 1.0005,
                low: open.min(price) * 0.9995,
                close: price,
                volume: 1.0 + (state >> 60) as f64,
                trades: 1,
                closed: true,
            }
        })
        .collect()
}

fn costs() -> BacktestConfig {
    BacktestConfig { fee_bps: 7.5, slippage_bps: 1.0, allow_short: true, ..BacktestConfig::default() }
}

fn backtest(c: &mut Criterion) {
    let data = bars(1_000_000);
    let config = costs();
    let never = AtomicBool::new(false);
    let mut group = c.benchmark_group("backtest");
    group.throughput(Throughput::Elements(data.len() as u64));
    group.sample_size(20);
    group.bench_function("ema_cross_metrics_1M", |b| {
        b.iter(|| run_metrics(EmaCross::new(12, 26), &data, &config, &never).map(|m| m.final_equity))
    });
    group.bench_function("ema_cross_boxed_metrics_1M", |b| {
        let params = serde_json::json!({"fast": 12, "slow": 26});
        b.iter_batched(
            || build_strategy("ema_cross", &params).expect("valid params"),
            |s| run_metrics(s, &data, &config, &never).map(|m| m.final_equity),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("ema_cross_full_report_1M", |b| {
        b.iter(|| run_backtest(EmaCross::new(12, 26), &data, &config).map(|r| r.equity.len()))
    });
    group.finish();
}

fn indicators(c: &mut Criterion) {
    let data = bars(100_000);
    let mut group = c.benchmark_group("indicators");
    group.throughput(Throughput::Elements(data.len() as u64));
    group.bench_function("rsi14_update_100k", |b| {
        b.iter(|| {
            let mut rsi = Rsi::new(14);
            data.iter().filter_map(|bar| rsi.update(bar)).fold(0.0, |a, v| a + v)
        })
    });
    group.bench_function("supertrend10_update_100k", |b| {
        b.iter(|| {
            let mut st = SuperTrend::new(10, 3.0);
            data.iter().filter_map(|bar| st.update(bar)).fold(0.0, |a, v| a + v.value)
        })
    });
    group.finish();
}

fn optimize(c: &mut Criterion) {
    let data = bars(100_000);
    // fast 2..=41 (40 values) × slow 50..=270 step 9 (25 values) = 1,000 parameter sets.
    let spec: OptimizeSpec = serde_json::from_value(serde_json::json!({
        "strategy": "ema_cross",
        "rank_by": "sharpe",
        "params": {"fast": {"start": 2, "end": 41, "step": 1}, "slow": {"start": 50, "end": 266, "step": 9}},
        "backtest": {"fee_bps": 7.5, "slippage_bps": 1, "allow_short": true}
    }))
    .expect("valid spec");
    let never = AtomicBool::new(false);
    let mut group = c.benchmark_group("optimize");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(1_000 * data.len() as u64));
    group.bench_function("ema_cross_1000x100k", |b| {
        b.iter(|| {
            let out = run_optimization(&spec, &data, &Progress::new(), &never).expect("runs");
            assert_eq!(out.combinations, 1_000);
            out.results.len()
        })
    });
    group.finish();
}

criterion_group!(benches, backtest, indicators, optimize);
criterion_main!(benches);
