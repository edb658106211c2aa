//! Simple moving average of the close: the mean of the last `period` closes.

use super::window::Window;
use super::Indicator;
use crate::model::Bar;

/// SMA(period) of closes. First value at bar `period - 1`.
#[derive(Debug, Clone)]
pub struct Sma {
    window: Window,
}

impl Sma {
    /// `period >= 1`; the registry enforces the range.
    pub fn new(period: usize) -> Self {
        Sma { window: Window::new(period.max(1)) }
    }

    /// Pushes one value (instead of a bar's close).
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<f64> {
        self.window.push(x).map(|m| m.mean)
    }

    /// What `push(x)` would return, without changing state.
    #[inline]
    pub fn peek(&self, x: f64) -> Option<f64> {
        self.window.peek(x).map(|m| m.mean)
    }
}

impl Indicator for Sma {
    type Output = f64;

    fn update(&mut self, bar: &Bar) -> Option<f64> {
        self.push(bar.close)
    }

    fn preview(&self, bar: &Bar) -> Option<f64> {
        self.peek(bar.close)
    }

    fn reset(&mut self) {
        self.window.reset()
    }

    fn warmup(&self) -> usize {
        self.window.period() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::closes;

    #[test]
    fn three_bar_average_by_hand() {
        let mut sma = Sma::new(3);
        let out: Vec<_> = closes(&[1.0, 2.0, 3.0, 4.0, 8.0]).iter().map(|b| sma.update(b)).collect();
        assert_eq!(out, vec![None, None, Some(2.0), Some(3.0), Some(5.0)]);
    }

    #[test]
    fn period_longer_than_data_never_yields() {
        let mut sma = Sma::new(10);
        assert!(closes(&[1.0; 9]).iter().all(|b| sma.update(b).is_none()));
    }
}
