//! Grid validation, ranking against direct backtests, progress and cancellation.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::model::{Bar, Interval};
use crate::strategy::indicators::fixture_tests::fixture_bars;
use crate::strategy::strategies::EmaCross;

fn spec(value: serde_json::Value) -> OptimizeSpec {
    serde_json::from_value(value).expect("spec JSON")
}

fn refusal(value: serde_json::Value) -> String {
    validate_spec(&spec(value)).err().map(|e| e.to_string()).unwrap_or_default()
}

/// An `ema_cross` spec ranked by Sharpe with the given grid.
fn ema(params: serde_json::Value) -> serde_json::Value {
    json!({"strategy": "ema_cross", "rank_by": "sharpe", "params": params})
}

#[test]
fn refusals_name_the_parameter_and_the_problem() {
    let range = |start: f64, end: f64, step: f64| json!({"start": start, "end": end, "step": step});
    let cases = [
        (json!({"strategy": "nope", "rank_by": "sharpe"}), "unknown strategy \"nope\""),
        (ema(json!({"fastt": [1]})), "unknown parameter \"fastt\""),
        (ema(json!({"fast": [3, "5"]})), "\"fast\" must be an integer number, got a string"),
        (ema(json!({"fast": range(0.0, 4.0, 1.0)})), "\"fast\" = 0 is out of range [1, 1000]"),
        (ema(json!({"fast": range(1.0, 4.0, 0.5)})), "\"fast\" must be an integer number"),
        (ema(json!({"fast": range(1.0, 4.0, 0.0)})), "parameter \"fast\": step must be above 0"),
        (ema(json!({"fast": range(9.0, 4.0, 1.0)})), "end (4) is below start (9)"),
        (ema(json!({"fast": []})), "the list of values is empty"),
        (
            ema(json!({"fast": range(1.0, 1000.0, 1.0), "slow": range(2.0, 5000.0, 1.0)})),
            "the grid has 4999000 combinations; the limit is 100000",
        ),
        (
            json!({"strategy": "ema_cross", "rank_by": "sharpe", "backtest": {"fee_bps": 5000}}),
            "fee_bps must be within",
        ),
    ];
    for (input, expected) in cases {
        let got = refusal(input.clone());
        assert!(got.contains(expected), "{input} -> {got:?}");
    }
    // Unknown metrics and unknown fields are refused by serde, before validation.
    assert!(serde_json::from_value::<OptimizeSpec>(json!({"strategy": "ema_cross", "rank_by": "alpha"})).is_err());
    let misspelt = ema(json!({"fast": {"start": 1, "end": 4, "stp": 1}}));
    assert!(serde_json::from_value::<OptimizeSpec>(misspelt).is_err());
    assert!(
        serde_json::from_value::<OptimizeSpec>(json!({"strategy": "ema_cross", "rank_by": "sharpe", "x": 1})).is_err()
    );
}

#[test]
fn ranges_are_inclusive_and_free_of_float_noise() {
    let plan = validate_spec(&spec(json!({
        "strategy": "rsi_reversion", "rank_by": "net_pnl",
        "params": {"period": {"start": 5, "end": 50, "step": 5}, "oversold": {"start": 20, "end": 21, "step": 0.1}}
    })))
    .unwrap();
    assert_eq!(plan.grid.len(), 10 * 11);
    let last = plan.grid.params(plan.grid.len() - 1);
    assert_eq!((last.usize("period"), last.get("oversold"), last.get("overbought")), (50, 21.0, 70.0));
    assert_eq!(plan.grid.params(3).get("oversold"), 20.3);
    assert_eq!(plan.direction, Direction::Max);
}

#[test]
fn ranks_match_direct_backtests_and_skip_contradictions() {
    let bars = fixture_bars();
    let s = spec(json!({
        "strategy": "ema_cross", "rank_by": "net_pnl",
        "params": {"fast": [3, 5, 8], "slow": [5, 10, 20]},
        "backtest": {"fee_bps": 5, "allow_short": true}
    }));
    let progress = Progress::new();
    let out = run_optimization(&s, &bars, &progress, &AtomicBool::new(false)).unwrap();
    // (5, 5) and (8, 5) violate fast < slow.
    assert_eq!((out.combinations, out.evaluated, out.skipped), (9, 7, 2));
    assert_eq!((progress.done(), progress.percent()), (9, 100.0));
    let scores: Vec<f64> = out.results.iter().map(|r| r.score.unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for r in &out.results {
        let fast = r.params["fast"].as_u64().unwrap() as usize;
        let slow = r.params["slow"].as_u64().unwrap() as usize;
        let direct = run_metrics(EmaCross::new(fast, slow), &bars, &s.backtest, &AtomicBool::new(false)).unwrap();
        assert_eq!(r.metrics, direct, "fast {fast} slow {slow}");
    }
    assert_eq!(out.results[0].rank, 1);
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["results"][0]["params"].as_object().unwrap().len(), 2);
}

#[test]
fn drawdown_ranks_smallest_first_and_top_truncates() {
    let s = spec(json!({"strategy": "ema_cross", "rank_by": "max_drawdown_pct", "top": 2,
        "params": {"fast": [2, 3, 4], "slow": [30, 40]}}));
    let out = run_optimization(&s, &fixture_bars(), &Progress::new(), &AtomicBool::new(false)).unwrap();
    assert_eq!((out.direction, out.results.len(), out.evaluated), (Direction::Min, 2, 6));
    assert!(out.results[0].score <= out.results[1].score);
}

/// A long random walk so one backtest takes a while even in release mode.
fn long_series(n: usize) -> Vec<Bar> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut price = 100.0;
    (0..n)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let step = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.01;
            let open = price;
            price *= 1.0 + step;
            Bar {
                symbol: "SIM".into(),
                interval: Interval::M1,
                open_time: i as i64 * 60_000,
                open,
                high: open.max(price),
                low: open.min(price),
                close: price,
                volume: 1.0,
                trades: 1,
                closed: true,
            }
        })
        .collect()
}

#[test]
fn cancel_takes_effect_well_within_a_second() {
    let bars = long_series(300_000);
    let s = spec(json!({"strategy": "ema_cross", "rank_by": "sharpe",
        "params": {"fast": {"start": 2, "end": 40, "step": 1}, "slow": {"start": 50, "end": 300, "step": 10}}}));
    let cancel = AtomicBool::new(false);
    let progress = Progress::new();
    std::thread::scope(|scope| {
        let job = scope.spawn(|| run_optimization(&s, &bars, &progress, &cancel));
        std::thread::sleep(Duration::from_millis(100));
        let asked = Instant::now();
        cancel.store(true, Ordering::Relaxed);
        let result = job.join().expect("no panic");
        let latency = asked.elapsed();
        assert_eq!(result.unwrap_err(), OptimizeError::Cancelled);
        assert!(latency < Duration::from_millis(500), "cancel took {latency:?}");
        assert!(progress.done() < progress.total());
    });
}

#[test]
fn no_bars_is_an_error() {
    let s = spec(json!({"strategy": "ema_cross", "rank_by": "sharpe"}));
    assert_eq!(
        run_optimization(&s, &[], &Progress::new(), &AtomicBool::new(false)).unwrap_err(),
        OptimizeError::NoBars
    );
}
