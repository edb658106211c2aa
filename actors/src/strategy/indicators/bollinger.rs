//! Bollinger Bands: SMA(period) of closes ± k population standard deviations.
//!
//! The deviation is the *population* one (divide by `period`, pandas `std(ddof=0)`), as in Bollinger's
//! own definition and TradingView; many spreadsheets use the sample one (÷ `period - 1`), which is wider
//! by √(period/(period-1)).

use serde::Serialize;

use super::window::Window;
use super::{Indicator, IndicatorValue};
use crate::model::Bar;

/// The three bands at one bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bands {
    pub upper: f64,
    pub middle: f64,
    pub lower: f64,
}

impl From<Bands> for IndicatorValue {
    fn from(v: Bands) -> Self {
        IndicatorValue::Bands(v)
    }
}

/// Bollinger(period, k). First value at bar `period - 1`.
#[derive(Debug, Clone)]
pub struct Bollinger {
    window: Window,
    k: f64,
}

impl Bollinger {
    pub fn new(period: usize, k: f64) -> Self {
        Bollinger { window: Window::new(period.max(1)), k }
    }

    fn bands(&self, stats: super::window::Moments) -> Bands {
        let sd = stats.population_variance(self.window.period()).sqrt();
        Bands { upper: stats.mean + self.k * sd, middle: stats.mean, lower: stats.mean - self.k * sd }
    }
}

impl Indicator for Bollinger {
    type Output = Bands;

    fn update(&mut self, bar: &Bar) -> Option<Bands> {
        let stats = self.window.push(bar.close)?;
        Some(self.bands(stats))
    }

    fn preview(&self, bar: &Bar) -> Option<Bands> {
        Some(self.bands(self.window.peek(bar.close)?))
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
    fn population_deviation_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population sd 2 → bands 1 and 9 with k = 2.
        let mut bb = Bollinger::new(8, 2.0);
        let last = closes(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).iter().map(|b| bb.update(b)).last().flatten();
        assert_eq!(last, Some(Bands { upper: 9.0, middle: 5.0, lower: 1.0 }));
    }

    #[test]
    fn constant_prices_collapse_the_bands() {
        let mut bb = Bollinger::new(5, 2.0);
        let last = closes(&[3.0; 12]).iter().map(|b| bb.update(b)).last().flatten().unwrap();
        assert_eq!((last.upper, last.middle, last.lower), (3.0, 3.0, 3.0));
    }
}
