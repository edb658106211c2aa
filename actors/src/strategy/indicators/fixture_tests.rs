//! Every indicator against values computed independently by `scripts/indicator_fixtures.py` (pandas).
//!
//! Each case is built through the registry from the fixture's own params object, so the JSON
//! constructor is exercised too; values go through serde, so the wire shape is checked as well.

use std::path::PathBuf;

use serde_json::Value;

use super::{build_indicator, AnyIndicator};
use crate::model::{Bar, Interval};

/// Relative tolerance; the absolute floor only matters for values crossing zero (MACD histogram).
const REL_TOL: f64 = 1e-9;
const ABS_FLOOR: f64 = 1e-12;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/indicators")
}

fn read_json(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture bars as closed 15-minute bars.
pub(crate) fn fixture_bars() -> Vec<Bar> {
    let doc = read_json("bars.json");
    let f = |row: &Value, k: &str| row[k].as_f64().unwrap_or_else(|| panic!("bar field {k}"));
    doc["bars"]
        .as_array()
        .expect("bars array")
        .iter()
        .map(|row| Bar {
            symbol: "FIXTURE".into(),
            interval: Interval::M15,
            open_time: row["open_time"].as_i64().expect("open_time"),
            open: f(row, "open"),
            high: f(row, "high"),
            low: f(row, "low"),
            close: f(row, "close"),
            volume: f(row, "volume"),
            trades: 1,
            closed: true,
        })
        .collect()
}

fn close_enough(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap_or(f64::NAN), w.as_f64().unwrap_or(f64::NAN));
            (g - w).abs() <= REL_TOL * g.abs().max(w.abs()) + ABS_FLOOR
        }
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len() && w.iter().all(|(k, wv)| g.get(k).is_some_and(|gv| close_enough(gv, wv)))
        }
        (g, w) => g == w,
    }
}

/// A forming version of `bar`: same bucket, a different close, not closed.
fn forming(bar: &Bar) -> Bar {
    let mut partial = bar.clone();
    partial.close = (bar.open + bar.close) / 2.0;
    partial.high = partial.high.max(partial.close);
    partial.low = partial.low.min(partial.close);
    partial.volume /= 2.0;
    partial.closed = false;
    partial
}

fn check_case(file: &str) {
    let doc = read_json(file);
    let name = doc["indicator"].as_str().expect("indicator name");
    let mut ind: Box<dyn AnyIndicator> = build_indicator(name, &doc["params"]).expect("fixture params are valid");
    let want = doc["values"].as_array().expect("values");
    let bars = fixture_bars();
    assert_eq!(want.len(), bars.len(), "{file}");
    assert_eq!(ind.warmup() as u64, doc["warmup"].as_u64().expect("warmup"), "{file}: warm-up length");
    for (i, (bar, want)) in bars.iter().zip(want).enumerate() {
        // Live charts preview the forming bar many times before it closes; that must leave no trace.
        let _ = ind.preview(&forming(bar));
        let previewed = ind.preview(bar);
        let got = ind.update(bar);
        assert_eq!(previewed, got, "{file} bar {i}: preview differs from update");
        let got = serde_json::to_value(got).expect("serialisable");
        assert!(close_enough(&got, want), "{file} bar {i}: got {got}, want {want}");
    }
    // reset() returns to a fresh indicator.
    ind.reset();
    let first = bars.iter().map(|b| ind.update(b)).position(|v| v.is_some());
    assert_eq!(first, Some(ind.warmup()), "{file}: after reset");
}

macro_rules! fixture_tests {
    ($($test:ident => $file:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            check_case($file);
        }
    )*};
}

fixture_tests! {
    sma_20 => "sma_20.json",
    sma_1 => "sma_1.json",
    ema_9 => "ema_9.json",
    ema_50 => "ema_50.json",
    rsi_14 => "rsi_14.json",
    rsi_2 => "rsi_2.json",
    macd_12_26_9 => "macd_12_26_9.json",
    bollinger_20_2 => "bollinger_20_2.json",
    atr_14 => "atr_14.json",
    vwap => "vwap.json",
    supertrend_10_3 => "supertrend_10_3.json",
    supertrend_7_1_5 => "supertrend_7_1.5.json",
}

#[test]
fn every_indicator_handles_empty_and_short_series() {
    for info in super::indicator_catalog() {
        let mut ind = build_indicator(info.name, &Value::Null).expect("defaults are valid");
        let bars = fixture_bars();
        let short = &bars[..ind.warmup().min(bars.len())];
        assert!(short.iter().all(|b| ind.update(b).is_none()), "{}: value before warm-up", info.name);
    }
}

/// `preview` on the indicator equals `update` on a clone, and leaves the indicator exactly as it was.
fn check_preview_on_copy<I: super::Indicator + Clone + std::fmt::Debug>(mut ind: I)
where
    I::Output: PartialEq + std::fmt::Debug,
{
    for bar in fixture_bars() {
        let before = format!("{ind:?}");
        let previewed = ind.preview(&forming(&bar));
        assert_eq!(format!("{ind:?}"), before, "preview mutated the state");
        assert_eq!(previewed, ind.clone().update(&forming(&bar)));
        ind.update(&bar);
    }
}

#[test]
fn preview_equals_update_on_a_copy_for_every_type() {
    use super::*;
    check_preview_on_copy(Sma::new(20));
    check_preview_on_copy(Ema::new(9));
    check_preview_on_copy(Rsi::new(14));
    check_preview_on_copy(Macd::new(12, 26, 9));
    check_preview_on_copy(Bollinger::new(20, 2.0));
    check_preview_on_copy(Atr::new(14));
    check_preview_on_copy(Vwap::new());
    check_preview_on_copy(SuperTrend::new(10, 3.0));
}
