//! Session VWAP: cumulative Σ(typical price · volume) / Σ volume since the start of the UTC day.
//!
//! Typical price = (high + low + close) / 3. The session is the UTC calendar day of the bar's
//! `open_time`: the first bar of a new day starts fresh sums. For daily or weekly bars every bar is its
//! own session, so VWAP equals the typical price. While a session has no volume yet (flat bars) the
//! value is undefined and `None` is returned.

use super::Indicator;
use crate::model::Bar;

const DAY_MS: i64 = 86_400_000;

/// Session-reset VWAP. No parameters.
#[derive(Debug, Clone, Default)]
pub struct Vwap {
    /// UTC day number (days since the epoch) of the current session.
    session: Option<i64>,
    sum_pv: f64,
    sum_v: f64,
}

impl Vwap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Session sums after folding `bar` in, without changing state.
    #[inline]
    fn next(&self, bar: &Bar) -> (i64, f64, f64) {
        let day = bar.open_time.div_euclid(DAY_MS);
        let (pv, v) = if self.session == Some(day) { (self.sum_pv, self.sum_v) } else { (0.0, 0.0) };
        let typical = (bar.high + bar.low + bar.close) / 3.0;
        (day, pv + typical * bar.volume, v + bar.volume)
    }
}

fn value(sum_pv: f64, sum_v: f64) -> Option<f64> {
    (sum_v > 0.0).then(|| sum_pv / sum_v)
}

impl Indicator for Vwap {
    type Output = f64;

    fn update(&mut self, bar: &Bar) -> Option<f64> {
        let (day, pv, v) = self.next(bar);
        *self = Vwap { session: Some(day), sum_pv: pv, sum_v: v };
        value(pv, v)
    }

    fn preview(&self, bar: &Bar) -> Option<f64> {
        let (_, pv, v) = self.next(bar);
        value(pv, v)
    }

    fn reset(&mut self) {
        *self = Vwap::default();
    }

    fn warmup(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::bar;

    #[test]
    fn resets_at_utc_midnight_and_skips_volumeless_bars() {
        let mut a = bar(0, 12.0, 9.0, 9.0); // typical 10
        a.volume = 1.0;
        let mut b = bar(1, 22.0, 19.0, 19.0); // typical 20
        b.volume = 3.0;
        let mut flat = bar(1440, 5.0, 5.0, 5.0); // first minute of the next day, no volume
        flat.volume = 0.0;
        let mut c = bar(1441, 33.0, 30.0, 27.0); // typical 30
        c.volume = 2.0;
        let mut vwap = Vwap::new();
        let out: Vec<_> = [a, b, flat, c].iter().map(|x| vwap.update(x)).collect();
        assert_eq!(out, vec![Some(10.0), Some(17.5), None, Some(30.0)]);
    }
}
