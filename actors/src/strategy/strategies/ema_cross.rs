//! EMA crossover: buy when the fast EMA crosses above the slow one, sell when it crosses below.
//!
//! "Above" means fast > slow strictly; a cross is a change of that state between two consecutive bars
//! (so going from equal to above is a cross up). A cross needs both EMAs on two consecutive bars: the
//! first possible signal is at bar `slow`, one bar after the slow EMA's warm-up. A fast EMA already
//! above the slow one when both first exist is not a signal: only changes of side are.

use super::{Action, SignalSide, Strategy};
use crate::model::Bar;
use crate::strategy::indicators::{Ema, Indicator};

pub const NAME: &str = "ema_cross";
const UP: Action = Action { side: SignalSide::Buy, reason: "fast EMA crossed above slow EMA" };
const DOWN: Action = Action { side: SignalSide::Sell, reason: "fast EMA crossed below slow EMA" };

#[derive(Debug, Clone)]
pub struct EmaCross {
    fast: Ema,
    slow: Ema,
    /// Whether fast > slow on the previous bar (None before both EMAs exist).
    above: Option<bool>,
}

impl EmaCross {
    /// The registry checks `fast < slow`; equal periods would never cross.
    pub fn new(fast: usize, slow: usize) -> Self {
        EmaCross { fast: Ema::new(fast), slow: Ema::new(slow), above: None }
    }
}

impl Strategy for EmaCross {
    fn name(&self) -> &'static str {
        NAME
    }

    #[inline]
    fn on_bar(&mut self, bar: &Bar) -> Option<Action> {
        let fast = self.fast.push(bar.close);
        let slow = self.slow.push(bar.close)?;
        let above = fast? > slow;
        match self.above.replace(above) {
            Some(was) if was != above => Some(if above { UP } else { DOWN }),
            _ => None,
        }
    }

    fn reset(&mut self) {
        self.fast.reset();
        self.slow.reset();
        self.above = None;
    }

    fn warmup(&self) -> usize {
        self.fast.warmup().max(self.slow.warmup()) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::closes;

    #[test]
    fn signals_only_on_crosses() {
        // EMA(1) is the close; EMA(3) (α = 0.5) is seeded at bar 2 with (10+10+10)/3 = 10: fast = slow,
        // so "not above" (first comparison, no signal). bar 3: close 13 → slow 11.5, above → Buy.
        // bar 4: close 9 → slow 10.25, below → Sell. bar 5: close 9 → slow 9.625, still below.
        // bar 6: close 12 → slow 10.8125, above → Buy.
        let mut s = EmaCross::new(1, 3);
        let out: Vec<_> =
            closes(&[10.0, 10.0, 10.0, 13.0, 9.0, 9.0, 12.0]).iter().map(|b| s.on_bar(b).map(|a| a.side)).collect();
        use SignalSide::{Buy, Sell};
        assert_eq!(out, vec![None, None, None, Some(Buy), Some(Sell), None, Some(Buy)]);
        assert_eq!(s.warmup(), 3);
    }

    #[test]
    fn constant_prices_never_signal() {
        let mut s = EmaCross::new(2, 5);
        assert!(closes(&[7.0; 50]).iter().all(|b| s.on_bar(b).is_none()));
    }
}
