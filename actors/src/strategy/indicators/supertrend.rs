//! SuperTrend: a trailing ATR band that flips side when the close crosses it.
//!
//! With hl2 = (high + low) / 2 and ATR(period) (Wilder, see `atr.rs`):
//! basic upper = hl2 + m·ATR, basic lower = hl2 - m·ATR;
//! final upper = basic upper if it is below the previous final upper or the previous close was above
//! it, else the previous final upper (the band only tightens while the trend holds); final lower
//! mirrors that. In a down trend the line is the final upper band and the trend turns up when the close
//! rises above it; in an up trend the line is the final lower band and the trend turns down when the
//! close falls below it. The first value (bar `period - 1`, the first ATR) starts in a down trend with
//! the basic bands, as TradingView's `ta.supertrend` does.

use serde::Serialize;

use super::atr::Atr;
use super::{Indicator, IndicatorValue};
use crate::model::Bar;

/// Which side of the price the line is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Up,
    Down,
}

/// The line and its trend at one bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SuperTrendValue {
    pub value: f64,
    pub direction: Trend,
}

impl From<SuperTrendValue> for IndicatorValue {
    fn from(v: SuperTrendValue) -> Self {
        IndicatorValue::SuperTrend(v)
    }
}

/// Band state carried from one closed bar to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bands {
    upper: f64,
    lower: f64,
    trend: Trend,
}

/// SuperTrend(period, multiplier).
#[derive(Debug, Clone)]
pub struct SuperTrend {
    atr: Atr,
    multiplier: f64,
    prev_close: Option<f64>,
    bands: Option<Bands>,
}

impl SuperTrend {
    pub fn new(period: usize, multiplier: f64) -> Self {
        SuperTrend { atr: Atr::new(period), multiplier, prev_close: None, bands: None }
    }

    /// The bands after `bar` given its ATR; pure.
    fn next(&self, bar: &Bar, atr: f64) -> Bands {
        let hl2 = (bar.high + bar.low) / 2.0;
        let basic_upper = hl2 + self.multiplier * atr;
        let basic_lower = hl2 - self.multiplier * atr;
        let (Some(prev), Some(prev_close)) = (self.bands, self.prev_close) else {
            return Bands { upper: basic_upper, lower: basic_lower, trend: Trend::Down };
        };
        let upper = if basic_upper < prev.upper || prev_close > prev.upper { basic_upper } else { prev.upper };
        let lower = if basic_lower > prev.lower || prev_close < prev.lower { basic_lower } else { prev.lower };
        let trend = match prev.trend {
            Trend::Down if bar.close > upper => Trend::Up,
            Trend::Up if bar.close < lower => Trend::Down,
            same => same,
        };
        Bands { upper, lower, trend }
    }
}

fn output(b: Bands) -> SuperTrendValue {
    let value = match b.trend {
        Trend::Up => b.lower,
        Trend::Down => b.upper,
    };
    SuperTrendValue { value, direction: b.trend }
}

impl Indicator for SuperTrend {
    type Output = SuperTrendValue;

    fn update(&mut self, bar: &Bar) -> Option<SuperTrendValue> {
        let atr = self.atr.update(bar);
        let bands = atr.map(|atr| self.next(bar, atr));
        self.prev_close = Some(bar.close);
        self.bands = bands;
        bands.map(output)
    }

    fn preview(&self, bar: &Bar) -> Option<SuperTrendValue> {
        Some(output(self.next(bar, self.atr.preview(bar)?)))
    }

    fn reset(&mut self) {
        self.atr.reset();
        self.prev_close = None;
        self.bands = None;
    }

    fn warmup(&self) -> usize {
        self.atr.warmup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::bar;

    #[test]
    fn flips_up_when_close_clears_the_upper_band() {
        // period 1 → ATR = TR. Bar 0: hl2 10, TR 2, m 1 → upper 12, lower 8, trend down, line 12.
        // Bar 1: high 16, low 14, close 15.5: TR = max(2, 6, 4) = 6 → basic 9..21; final upper 21 would
        // not tighten (21 > 12) and the previous close 10 was not above 12, so upper stays 12; close
        // 15.5 > 12 → up; lower: basic 9 > 8 → 9. Line = 9.
        let mut st = SuperTrend::new(1, 1.0);
        let a = st.update(&bar(0, 11.0, 9.0, 10.0)).unwrap();
        assert_eq!(a, SuperTrendValue { value: 12.0, direction: Trend::Down });
        let b = st.update(&bar(1, 16.0, 14.0, 15.5)).unwrap();
        assert_eq!(b, SuperTrendValue { value: 9.0, direction: Trend::Up });
        assert_eq!(serde_json::to_string(&IndicatorValue::from(b)).unwrap(), r#"{"value":9.0,"direction":"up"}"#);
    }
}
