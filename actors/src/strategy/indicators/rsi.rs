//! Relative Strength Index with Wilder's smoothing.
//!
//! gain_t = max(close_t - close_{t-1}, 0), loss_t = max(close_{t-1} - close_t, 0); both are smoothed
//! with Wilder's running average seeded by the SMA of the first `period` changes; RSI = 100 - 100 /
//! (1 + avg_gain / avg_loss). The first value needs `period + 1` closes (bar `period`).
//!
//! Division by zero is defined, not NaN: no losses and some gains → 100; no gains and no losses
//! (constant prices) → 50, the neutral value, so a flat market triggers neither overbought nor oversold.

use super::ema::Ema;
use super::Indicator;
use crate::model::Bar;

/// RSI(period) of closes, in [0, 100].
#[derive(Debug, Clone)]
pub struct Rsi {
    prev_close: Option<f64>,
    gain: Ema,
    loss: Ema,
}

impl Rsi {
    /// `period >= 1`.
    pub fn new(period: usize) -> Self {
        Rsi { prev_close: None, gain: Ema::wilder(period), loss: Ema::wilder(period) }
    }

    /// Pushes one close.
    #[inline]
    pub fn push(&mut self, close: f64) -> Option<f64> {
        let prev = self.prev_close.replace(close)?;
        let change = close - prev;
        let gain = self.gain.push(change.max(0.0));
        let loss = self.loss.push((-change).max(0.0));
        Some(rsi(gain?, loss?))
    }

    /// What `push(close)` would return, without changing state.
    #[inline]
    pub fn peek(&self, close: f64) -> Option<f64> {
        let change = close - self.prev_close?;
        Some(rsi(self.gain.peek(change.max(0.0))?, self.loss.peek((-change).max(0.0))?))
    }
}

#[inline]
fn rsi(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss == 0.0 {
        return if avg_gain == 0.0 { 50.0 } else { 100.0 };
    }
    100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
}

impl Indicator for Rsi {
    type Output = f64;

    fn update(&mut self, bar: &Bar) -> Option<f64> {
        self.push(bar.close)
    }

    fn preview(&self, bar: &Bar) -> Option<f64> {
        self.peek(bar.close)
    }

    fn reset(&mut self) {
        self.prev_close = None;
        self.gain.reset();
        self.loss.reset();
    }

    fn warmup(&self) -> usize {
        // One close to start the differences, then `period` differences.
        self.gain.warmup() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::closes;

    #[test]
    fn by_hand_period_two() {
        // changes +2, -1 → avg gain 1, avg loss 0.5 → RS 2 → RSI 66.67.
        // next change +3: gain (1+3)/2 = 2, loss (0.5+0)/2 = 0.25 → RS 8 → RSI 88.89.
        let mut rsi = Rsi::new(2);
        let out: Vec<_> = closes(&[10.0, 12.0, 11.0, 14.0]).iter().map(|b| rsi.update(b)).collect();
        assert_eq!(out[..2], [None, None]);
        assert!((out[2].unwrap() - 200.0 / 3.0).abs() < 1e-12);
        assert!((out[3].unwrap() - 800.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn constant_prices_are_neutral_and_rising_prices_are_100() {
        let mut flat = Rsi::new(3);
        let last = closes(&[5.0; 10]).iter().map(|b| flat.update(b)).last().flatten();
        assert_eq!(last, Some(50.0));
        let mut up = Rsi::new(3);
        let last = closes(&[1.0, 2.0, 3.0, 4.0, 5.0]).iter().map(|b| up.update(b)).last().flatten();
        assert_eq!(last, Some(100.0));
        let mut down = Rsi::new(3);
        let last = closes(&[5.0, 4.0, 3.0, 2.0]).iter().map(|b| down.update(b)).last().flatten();
        assert_eq!(last, Some(0.0));
    }
}
