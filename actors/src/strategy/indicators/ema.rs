//! Exponential moving average, seeded with an SMA.
//!
//! `ema_t = (1 - α)·ema_{t-1} + α·x_t`. The first value (at bar `period - 1`) is the SMA of the first
//! `period` inputs, not the first input: seeding with one value (pandas' `ewm(adjust=False)` on the raw
//! series) lets that one bar weigh on the whole curve, while the SMA seed makes the first value mean
//! something. With α = 2/(period+1) this is the usual EMA; with α = 1/period it is Wilder's smoothing
//! (RSI, ATR), built by [`Ema::wilder`].

use super::Indicator;
use crate::model::Bar;

/// EMA(period) of closes, or of any values pushed with [`Ema::push`].
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    alpha: f64,
    /// Inputs seen while seeding, and their sum.
    seen: usize,
    seed_sum: f64,
    value: Option<f64>,
}

impl Ema {
    /// EMA with α = 2 / (period + 1). `period >= 1`.
    pub fn new(period: usize) -> Self {
        let period = period.max(1);
        Self::with_alpha(period, 2.0 / (period as f64 + 1.0))
    }

    /// Wilder's smoothing (a "running moving average"): α = 1 / period.
    pub fn wilder(period: usize) -> Self {
        let period = period.max(1);
        Self::with_alpha(period, 1.0 / period as f64)
    }

    fn with_alpha(period: usize, alpha: f64) -> Self {
        Ema { period, alpha, seen: 0, seed_sum: 0.0, value: None }
    }

    /// What `push(x)` would return, without changing state.
    #[inline]
    pub fn peek(&self, x: f64) -> Option<f64> {
        match self.value {
            Some(prev) => Some((1.0 - self.alpha) * prev + self.alpha * x),
            None if self.seen + 1 == self.period => Some((self.seed_sum + x) / self.period as f64),
            None => None,
        }
    }

    /// Folds one value in.
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let next = self.peek(x);
        if self.value.is_none() {
            self.seen += 1;
            self.seed_sum += x;
        }
        self.value = next;
        next
    }
}

impl Indicator for Ema {
    type Output = f64;

    #[inline]
    fn update(&mut self, bar: &Bar) -> Option<f64> {
        self.push(bar.close)
    }

    fn preview(&self, bar: &Bar) -> Option<f64> {
        self.peek(bar.close)
    }

    fn reset(&mut self) {
        *self = Self::with_alpha(self.period, self.alpha);
    }

    fn warmup(&self) -> usize {
        self.period - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_with_sma_then_recursive() {
        // period 3, α = 0.5: seed = (1+2+3)/3 = 2; then 0.5·2 + 0.5·6 = 4; then 0.5·4 + 0.5·0 = 2.
        let mut ema = Ema::new(3);
        let out: Vec<_> = [1.0, 2.0, 3.0, 6.0, 0.0].into_iter().map(|x| ema.push(x)).collect();
        assert_eq!(out, vec![None, None, Some(2.0), Some(4.0), Some(2.0)]);
    }

    #[test]
    fn period_one_is_the_input() {
        let mut ema = Ema::new(1);
        assert_eq!(ema.push(5.0), Some(5.0));
        assert_eq!(ema.push(7.0), Some(7.0));
    }

    #[test]
    fn wilder_uses_one_over_period() {
        // period 2, α = 0.5: seed (2+4)/2 = 3; then 0.5·3 + 0.5·5 = 4.
        let mut w = Ema::wilder(2);
        let out: Vec<_> = [2.0, 4.0, 5.0].into_iter().map(|x| w.push(x)).collect();
        assert_eq!(out, vec![None, Some(3.0), Some(4.0)]);
    }
}
