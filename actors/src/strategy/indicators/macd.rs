//! Moving Average Convergence/Divergence.
//!
//! macd = EMA(fast) - EMA(slow) of closes; signal = EMA(signal) of the macd line; histogram = macd -
//! signal. All three EMAs are SMA-seeded (see `ema.rs`). The macd line exists from bar `slow - 1`, the
//! signal from `signal - 1` macd values later: values are only emitted once all three exist, at bar
//! `slow + signal - 2`.

use serde::Serialize;

use super::ema::Ema;
use super::{Indicator, IndicatorValue};
use crate::model::Bar;

/// The three MACD lines at one bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MacdValue {
    pub macd: f64,
    pub signal: f64,
    pub histogram: f64,
}

impl From<MacdValue> for IndicatorValue {
    fn from(v: MacdValue) -> Self {
        IndicatorValue::Macd(v)
    }
}

/// MACD(fast, slow, signal). The registry checks `fast < slow`.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
}

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        Macd { fast: Ema::new(fast), slow: Ema::new(slow), signal: Ema::new(signal) }
    }
}

impl Indicator for Macd {
    type Output = MacdValue;

    fn update(&mut self, bar: &Bar) -> Option<MacdValue> {
        // Both EMAs see every close, even before the slow one is seeded.
        let fast = self.fast.push(bar.close);
        let slow = self.slow.push(bar.close);
        let macd = fast? - slow?;
        let signal = self.signal.push(macd)?;
        Some(MacdValue { macd, signal, histogram: macd - signal })
    }

    fn preview(&self, bar: &Bar) -> Option<MacdValue> {
        let macd = self.fast.peek(bar.close)? - self.slow.peek(bar.close)?;
        let signal = self.signal.peek(macd)?;
        Some(MacdValue { macd, signal, histogram: macd - signal })
    }

    fn reset(&mut self) {
        self.fast.reset();
        self.slow.reset();
        self.signal.reset();
    }

    fn warmup(&self) -> usize {
        self.fast.warmup().max(self.slow.warmup()) + self.signal.warmup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::closes;

    #[test]
    fn first_value_after_slow_plus_signal_minus_two_bars() {
        let bars = closes(&(1..=40).map(f64::from).collect::<Vec<_>>());
        let mut macd = Macd::new(3, 6, 4);
        let first = bars.iter().map(|b| macd.update(b)).position(|v| v.is_some());
        assert_eq!(first, Some(6 + 4 - 2));
        assert_eq!(macd.warmup(), 8);
    }

    #[test]
    fn linear_prices_converge_to_constant_lag_difference() {
        // On a straight line x_t = t, EMA(n) lags by (n-1)/2 once seeded; MACD(3,6) → 2.5 - 1 = 1.5.
        let bars = closes(&(1..=60).map(f64::from).collect::<Vec<_>>());
        let mut macd = Macd::new(3, 6, 4);
        let last = bars.iter().map(|b| macd.update(b)).last().flatten().unwrap();
        assert!((last.macd - 1.5).abs() < 1e-9 && last.histogram.abs() < 1e-9, "{last:?}");
    }
}
