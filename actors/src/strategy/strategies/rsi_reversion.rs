//! RSI mean reversion: buy when RSI drops below `oversold`, sell when it rises above `overbought`.
//!
//! Signals fire on entering the zone (the previous RSI was outside it), not on every bar inside it.
//! Constant prices give RSI 50 (see `rsi.rs`), which is in neither zone, so a flat market is silent.

use super::{Action, SignalSide, Strategy};
use crate::model::Bar;
use crate::strategy::indicators::{Indicator, Rsi};

pub const NAME: &str = "rsi_reversion";
const OVERSOLD: Action = Action { side: SignalSide::Buy, reason: "RSI fell below the oversold level" };
const OVERBOUGHT: Action = Action { side: SignalSide::Sell, reason: "RSI rose above the overbought level" };

#[derive(Debug, Clone)]
pub struct RsiReversion {
    rsi: Rsi,
    oversold: f64,
    overbought: f64,
    prev: Option<f64>,
}

impl RsiReversion {
    /// The registry checks `oversold < overbought`.
    pub fn new(period: usize, oversold: f64, overbought: f64) -> Self {
        RsiReversion { rsi: Rsi::new(period), oversold, overbought, prev: None }
    }
}

impl Strategy for RsiReversion {
    fn name(&self) -> &'static str {
        NAME
    }

    #[inline]
    fn on_bar(&mut self, bar: &Bar) -> Option<Action> {
        let rsi = self.rsi.push(bar.close)?;
        // The first RSI counts as entering a zone: there is no earlier value inside it.
        let prev = self.prev.replace(rsi).unwrap_or(50.0);
        if rsi < self.oversold && prev >= self.oversold {
            Some(OVERSOLD)
        } else if rsi > self.overbought && prev <= self.overbought {
            Some(OVERBOUGHT)
        } else {
            None
        }
    }

    fn reset(&mut self) {
        self.rsi.reset();
        self.prev = None;
    }

    fn warmup(&self) -> usize {
        self.rsi.warmup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::closes;

    #[test]
    fn fires_once_per_zone_entry() {
        // RSI(1) is 100 on a rise, 0 on a fall, 50 when flat.
        let mut s = RsiReversion::new(1, 30.0, 70.0);
        let out: Vec<_> =
            closes(&[10.0, 9.0, 8.0, 8.0, 9.0, 10.0, 10.0, 9.0]).iter().map(|b| s.on_bar(b).map(|a| a.side)).collect();
        use SignalSide::{Buy, Sell};
        assert_eq!(out, vec![None, Some(Buy), None, None, Some(Sell), None, None, Some(Buy)]);
    }

    #[test]
    fn flat_market_is_silent() {
        let mut s = RsiReversion::new(14, 30.0, 70.0);
        assert!(closes(&[100.0; 60]).iter().all(|b| s.on_bar(b).is_none()));
    }
}
