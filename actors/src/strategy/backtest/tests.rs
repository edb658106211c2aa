//! Hand-checked backtests on six bars, edge cases, and live/backtest equivalence.

use std::sync::atomic::AtomicBool;

use serde_json::json;

use super::book::TradeSide;
use super::*;
use crate::model::Bar;
use crate::strategy::indicators::fixture_tests::fixture_bars;
use crate::strategy::indicators::testutil::bar;
use crate::strategy::strategies::{build_strategy, EmaCross};

/// Emits the given sides on the given (zero-based) closed-bar numbers.
struct Scripted {
    seen: usize,
    script: Vec<(usize, SignalSide)>,
}

impl Strategy for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn on_bar(&mut self, _: &Bar) -> Option<Action> {
        let i = self.seen;
        self.seen += 1;
        self.script.iter().find(|(at, _)| *at == i).map(|&(_, side)| Action { side, reason: "script" })
    }
    fn reset(&mut self) {
        self.seen = 0;
    }
    fn warmup(&self) -> usize {
        0
    }
}

fn buy_at_1_sell_at_3() -> Scripted {
    Scripted { seen: 0, script: vec![(1, SignalSide::Buy), (3, SignalSide::Sell)] }
}

/// Six bars as (open, close); high and low are the larger and smaller of the two.
fn six_bars() -> Vec<Bar> {
    [(100.0, 100.0), (100.0, 102.0), (104.0, 110.0), (111.0, 120.0), (118.0, 115.0), (116.0, 120.0)]
        .iter()
        .enumerate()
        .map(|(i, &(o, c))| {
            let mut b = bar(i as i64, f64::max(o, c), f64::min(o, c), c);
            b.open = o;
            b
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn long_only_next_open_without_costs() {
    // Buy on bar 1 → filled at bar 2's open, 104: units = 10,000 / 104 = 96.1538.
    // Sell on bar 3 → filled at bar 4's open, 118: cash = 96.1538 · 118 = 11,346.15 → PnL +1,346.15.
    // Equity at the closes: 10,000, 10,000, 96.15·110 = 10,576.92, 96.15·120 = 11,538.46, 11,346.15, 11,346.15.
    // Max drawdown: from 11,538.46 to 11,346.15 = 96.15 · 2 = 192.31, i.e. 2/120 = 1.667 %.
    // In a position during bars 2 and 3: exposure 2/6 = 33.3 %.
    let report = run_backtest(buy_at_1_sell_at_3(), &six_bars(), &BacktestConfig::default()).unwrap();
    let m = report.metrics;
    let units = 10_000.0 / 104.0;
    assert!(close(m.net_pnl, 10_000.0 * (118.0 / 104.0 - 1.0)), "{m:?}");
    assert!(close(m.max_drawdown, units * 2.0) && close(m.max_drawdown_pct, 200.0 / 120.0), "{m:?}");
    assert!(close(m.exposure_pct, 100.0 / 3.0));
    assert_eq!((m.trades, m.win_rate_pct, m.profit_factor, m.bars), (1, Some(100.0), None, 6));
    let curve: Vec<f64> = report.equity.iter().map(|p| p.equity).collect();
    let want = [10_000.0, 10_000.0, units * 110.0, units * 120.0, units * 118.0, units * 118.0];
    assert!(curve.iter().zip(want).all(|(a, b)| close(*a, b)), "{curve:?}");
    let t = report.trades[0];
    assert_eq!(
        (t.side, t.entry_time, t.exit_time, t.entry_price, t.exit_price),
        (TradeSide::Long, 120_000, 240_000, 104.0, 118.0)
    );
    assert_eq!(report.signals.len(), 2);
    assert_eq!(report.signals[0].time, 60_000, "a signal carries its own bar's time, not the fill's");
}

#[test]
fn long_and_short_with_fees() {
    // 10 bps per fill. Long: units = 10,000 / (104 · 1.001); exit at 118 → E1 = 10,000 · 118 · 0.999 /
    // (104 · 1.001) = 11,323.4842 (trade 1: +1,323.4842).
    // The same Sell opens a short at 118: units = E1 / (118 · 1.001) = 95.86586; cash = E1 + units ·
    // 118 · 0.999 = 22,624.3441. The last bar (close 120) liquidates: cash - units · 120 · 1.001 =
    // 11,108.9364 (trade 2: -214.5478). Net +1,108.9364; profit factor 1,323.48 / 214.55 = 6.1687.
    let config = BacktestConfig { fee_bps: 10.0, allow_short: true, ..BacktestConfig::default() };
    let report = run_backtest(buy_at_1_sell_at_3(), &six_bars(), &config).unwrap();
    let m = report.metrics;
    assert!(close(m.final_equity, 11_108.936_402_873_24), "{m:?}");
    assert!(close(report.trades[0].pnl, 1_323.484_208_099_595));
    assert!(close(report.trades[1].pnl, -214.547_805_226_355_2));
    assert_eq!(report.trades[1].side, TradeSide::Short);
    assert_eq!((m.trades, m.win_rate_pct), (2, Some(50.0)));
    assert!(close(m.profit_factor.unwrap(), 6.168_714_737_973_08));
    // Bars 2, 3 long, 4, 5 short.
    assert!(close(m.exposure_pct, 400.0 / 6.0));
    assert!(close(report.equity[4].equity, 11_599.769_630_200_743));
}

#[test]
fn fill_at_close_with_slippage() {
    // 50 bps slippage: buy at bar 1's close 102 · 1.005 = 102.51, sell at bar 3's close 120 · 0.995 = 119.4.
    let config = BacktestConfig { fill: FillAt::Close, slippage_bps: 50.0, ..BacktestConfig::default() };
    let report = run_backtest(buy_at_1_sell_at_3(), &six_bars(), &config).unwrap();
    assert!(close(report.metrics.net_pnl, 10_000.0 * (119.4 / 102.51 - 1.0)));
    assert!(close(report.trades[0].entry_price, 102.51) && close(report.trades[0].exit_price, 119.4));
    // In the market at the closes of bars 1 and 2 (bar 3 exits at its close).
    assert!(close(report.metrics.exposure_pct, 200.0 / 6.0));
}

#[test]
fn signal_on_the_last_bar_is_not_filled_at_next_open() {
    let s = Scripted { seen: 0, script: vec![(5, SignalSide::Buy)] };
    let report = run_backtest(s, &six_bars(), &BacktestConfig::default()).unwrap();
    assert_eq!((report.metrics.trades, report.metrics.net_pnl, report.signals.len()), (0, 0.0, 1));
}

#[test]
fn empty_and_too_short_series() {
    let report = run_backtest(EmaCross::new(3, 5), &[], &BacktestConfig::default()).unwrap();
    let m = report.metrics;
    assert_eq!((m.bars, m.trades, m.net_pnl, m.sharpe, m.exposure_pct), (0, 0, 0.0, None, 0.0));
    assert!(report.equity.is_empty());
    let report = run_backtest(EmaCross::new(5, 1_000), &fixture_bars(), &BacktestConfig::default()).unwrap();
    assert_eq!((report.metrics.trades, report.metrics.final_equity, report.metrics.bars), (0, 10_000.0, 600));
}

#[test]
fn refuses_disordered_mixed_and_invalid_input_and_skips_forming_bars() {
    let mut bars = six_bars();
    bars.swap(2, 3);
    let err = run_backtest(EmaCross::new(1, 2), &bars, &BacktestConfig::default()).unwrap_err();
    assert!(matches!(err, BacktestError::Unordered { index: 3, .. }), "{err}");
    let mut bars = six_bars();
    bars[4].interval = crate::model::Interval::M5;
    let err = run_backtest(EmaCross::new(1, 2), &bars, &BacktestConfig::default()).unwrap_err();
    assert!(matches!(err, BacktestError::MixedIntervals { index: 4, .. }), "{err}");
    let bad = BacktestConfig { fee_bps: -1.0, ..BacktestConfig::default() };
    assert!(run_backtest(EmaCross::new(1, 2), &six_bars(), &bad).unwrap_err().to_string().contains("fee_bps"));
    let mut bars = six_bars();
    bars[5].closed = false;
    let report = run_backtest(buy_at_1_sell_at_3(), &bars, &BacktestConfig::default()).unwrap();
    assert_eq!(report.equity.len(), 5);
    let parsed: BacktestConfig = serde_json::from_value(json!({"fee_bps": 5, "fill": "close"})).unwrap();
    assert_eq!((parsed.fee_bps, parsed.fill, parsed.allow_short), (5.0, FillAt::Close, false));
    assert!(serde_json::from_value::<BacktestConfig>(json!({"fees": 5})).is_err());
}

#[test]
fn metrics_only_run_matches_the_full_report_and_honours_cancel() {
    let bars = fixture_bars();
    let config = BacktestConfig { fee_bps: 7.5, slippage_bps: 2.0, allow_short: true, ..BacktestConfig::default() };
    let full = run_backtest(EmaCross::new(5, 20), &bars, &config).unwrap();
    let lean = run_metrics(EmaCross::new(5, 20), &bars, &config, &AtomicBool::new(false)).unwrap();
    assert_eq!(full.metrics, lean);
    assert!(full.metrics.trades > 5, "{:?}", full.metrics);
    let err = run_metrics(EmaCross::new(5, 20), &bars, &config, &AtomicBool::new(true)).unwrap_err();
    assert_eq!(err, BacktestError::Cancelled);
}

/// The strategy actor feeds bars one at a time (forming updates included) through `StrategyRunner`;
/// the backtest runs over the slice. Their signals must be identical.
#[test]
fn live_and_backtest_agree() {
    let bars = fixture_bars();
    for (name, params) in [("ema_cross", json!({"fast": 5, "slow": 20})), ("rsi_reversion", json!({"period": 7}))] {
        let mut live = StrategyRunner::new(build_strategy(name, &params).unwrap());
        let mut live_signals = Vec::new();
        for bar in &bars {
            let mut forming = bar.clone();
            forming.closed = false;
            forming.close = bar.open;
            live_signals.extend(live.on_bar(&forming));
            live_signals.extend(live.on_bar(bar));
        }
        let report = run_backtest(build_strategy(name, &params).unwrap(), &bars, &BacktestConfig::default()).unwrap();
        assert!(live_signals.len() >= 4, "{name}: too few signals to compare");
        assert_eq!(live_signals, report.signals, "{name}");
    }
}

#[test]
fn limited_reports_keep_the_metrics_and_flag_what_was_cut() {
    let bars = fixture_bars();
    let config = BacktestConfig { allow_short: true, ..Default::default() };
    let full = run_backtest(EmaCross::new(2, 3), &bars, &config).unwrap();
    assert!(full.trades.len() > 3 && full.signals.len() > 3 && full.equity.len() == 600);
    assert!(!(full.equity_downsampled || full.trades_truncated || full.signals_truncated));
    let limits = ReportLimits { equity_points: 100, trades: 3 };
    let cut = run_backtest_limited(EmaCross::new(2, 3), &bars, &config, limits, &AtomicBool::new(false)).unwrap();
    assert_eq!(cut.metrics, full.metrics, "metrics are computed over everything");
    assert_eq!((cut.trades.len(), cut.signals.len()), (3, 3));
    assert_eq!(cut.trades[..], full.trades[..3], "the first trades are kept");
    assert!(cut.equity.len() <= 100 && cut.equity_downsampled && cut.trades_truncated && cut.signals_truncated);
    assert_eq!((cut.equity[0], cut.equity[cut.equity.len() - 1]), (full.equity[0], full.equity[599]));
}
