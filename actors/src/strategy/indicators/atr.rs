//! Average True Range with Wilder's smoothing.
//!
//! TR_t = max(high - low, |high - close_{t-1}|, |low - close_{t-1}|); the first bar has no previous
//! close, so its TR is `high - low` (Wilder's own convention). ATR is Wilder's running average of TR,
//! seeded with the SMA of the first `period` TRs: first value at bar `period - 1`.

use super::ema::Ema;
use super::Indicator;
use crate::model::Bar;

/// ATR(period).
#[derive(Debug, Clone)]
pub struct Atr {
    prev_close: Option<f64>,
    smooth: Ema,
}

impl Atr {
    pub fn new(period: usize) -> Self {
        Atr { prev_close: None, smooth: Ema::wilder(period) }
    }

    #[inline]
    fn true_range(&self, bar: &Bar) -> f64 {
        let range = bar.high - bar.low;
        match self.prev_close {
            Some(pc) => range.max((bar.high - pc).abs()).max((bar.low - pc).abs()),
            None => range,
        }
    }
}

impl Indicator for Atr {
    type Output = f64;

    fn update(&mut self, bar: &Bar) -> Option<f64> {
        let tr = self.true_range(bar);
        self.prev_close = Some(bar.close);
        self.smooth.push(tr)
    }

    fn preview(&self, bar: &Bar) -> Option<f64> {
        self.smooth.peek(self.true_range(bar))
    }

    fn reset(&mut self) {
        self.prev_close = None;
        self.smooth.reset();
    }

    fn warmup(&self) -> usize {
        self.smooth.warmup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::bar;

    #[test]
    fn gaps_count_through_the_previous_close() {
        // TRs: 2 (first bar, h-l); 5 (gap up: 15 - 10); 3 → seed (2+5+3)/3 = 10/3;
        // then 6 → (10/3·2 + 6)/3 = 38/9.
        let bars =
            [bar(0, 11.0, 9.0, 10.0), bar(1, 15.0, 14.0, 14.5), bar(2, 14.0, 11.5, 12.0), bar(3, 12.0, 6.0, 7.0)];
        let mut atr = Atr::new(3);
        let out: Vec<_> = bars.iter().map(|b| atr.update(b)).collect();
        assert_eq!(out[..2], [None, None]);
        assert!((out[2].unwrap() - 10.0 / 3.0).abs() < 1e-12);
        assert!((out[3].unwrap() - 38.0 / 9.0).abs() < 1e-12);
    }
}
