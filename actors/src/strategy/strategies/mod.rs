//! Strategies: closed bars in, buy/sell actions out.
//!
//! A [`Strategy`] returns a small `Copy` [`Action`]; the caller attaches the symbol, interval and time
//! to make a [`Signal`]. That keeps the backtest's hot loop free of allocations and `Arc` clones, and
//! the live path and the backtest both go through [`StrategyRunner::step`], so their signals are the
//! same by construction (see the `live_and_backtest_agree` test in `backtest`).

mod ema_cross;
pub(crate) mod registry;
mod rsi_reversion;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{Bar, Interval, Price, Symbol};

pub use ema_cross::EmaCross;
pub use registry::{build_strategy, strategy_catalog, StrategyInfo};
pub use rsi_reversion::RsiReversion;

/// What a signal asks for. `Buy`: be long (close a short first). `Sell`: close a long, and go short
/// where shorting is allowed. Target positions rather than raw orders, so a repeated signal is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalSide {
    Buy,
    Sell,
}

/// A strategy's decision on one bar: cheap to return from the hot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub side: SignalSide,
    /// A fixed, human-readable reason, e.g. "fast EMA crossed above slow EMA".
    pub reason: &'static str,
}

/// A trading signal as published to clients and listed by backtests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub symbol: Symbol,
    pub interval: Interval,
    /// `open_time` of the closed bar that produced the signal (UTC ms).
    pub time: i64,
    pub side: SignalSide,
    /// The close of that bar (a backtest may fill at a different price; see its trades).
    pub price: Price,
    pub strategy: Cow<'static, str>,
    pub reason: Cow<'static, str>,
}

impl Signal {
    /// Attaches a bar's identity to an action.
    pub fn new(bar: &Bar, strategy: &'static str, action: Action) -> Signal {
        Signal {
            symbol: bar.symbol.clone(),
            interval: bar.interval,
            time: bar.open_time,
            side: action.side,
            price: bar.close,
            strategy: Cow::Borrowed(strategy),
            reason: Cow::Borrowed(action.reason),
        }
    }
}

/// A trading strategy fed with closed bars of one symbol and interval, in time order.
pub trait Strategy: Send {
    /// The registry name (`"ema_cross"`, ...).
    fn name(&self) -> &'static str;

    /// Folds a closed bar in; `Some` when the strategy wants a position change.
    fn on_bar(&mut self, bar: &Bar) -> Option<Action>;

    /// Forgets every bar seen (same as a freshly built strategy with the same parameters).
    fn reset(&mut self);

    /// Closed bars needed before the first possible signal.
    fn warmup(&self) -> usize;
}

impl<S: Strategy + ?Sized> Strategy for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    #[inline]
    fn on_bar(&mut self, bar: &Bar) -> Option<Action> {
        (**self).on_bar(bar)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn warmup(&self) -> usize {
        (**self).warmup()
    }
}

impl<S: Strategy + ?Sized> Strategy for &mut S {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    #[inline]
    fn on_bar(&mut self, bar: &Bar) -> Option<Action> {
        (**self).on_bar(bar)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn warmup(&self) -> usize {
        (**self).warmup()
    }
}

/// The one path from bars to a strategy, used by the live strategy actor and by the backtest.
///
/// It admits only closed bars newer than the last one admitted: forming bars (`closed == false`) and
/// repeated or late bars (a correction of an already processed bucket) are ignored, so a strategy never
/// sees the same bucket twice.
#[derive(Debug, Clone)]
pub struct StrategyRunner<S> {
    strategy: S,
    last_open_time: Option<i64>,
}

impl<S: Strategy> StrategyRunner<S> {
    pub fn new(strategy: S) -> Self {
        StrategyRunner { strategy, last_open_time: None }
    }

    /// Feeds one bar; the action if the bar was admitted and the strategy acted.
    #[inline]
    pub fn step(&mut self, bar: &Bar) -> Option<Action> {
        if !bar.closed || self.last_open_time.is_some_and(|t| bar.open_time <= t) {
            return None;
        }
        self.last_open_time = Some(bar.open_time);
        self.strategy.on_bar(bar)
    }

    /// Feeds one bar and returns the full signal, as the live strategy actor publishes it.
    pub fn on_bar(&mut self, bar: &Bar) -> Option<Signal> {
        let action = self.step(bar)?;
        Some(Signal::new(bar, self.strategy.name(), action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::indicators::testutil::closes;

    #[test]
    fn runner_ignores_forming_and_repeated_bars() {
        let mut runner = StrategyRunner::new(EmaCross::new(1, 2));
        let bars = closes(&[10.0, 11.0, 9.0, 12.0]);
        let mut forming = bars[3].clone();
        forming.closed = false;
        forming.close = 1.0;
        assert!(runner.on_bar(&bars[0]).is_none() && runner.on_bar(&bars[1]).is_none());
        assert!(runner.on_bar(&bars[2]).is_some(), "fast (9) crosses below slow (9.5)");
        assert!(runner.on_bar(&bars[2]).is_none(), "the same bucket twice is ignored");
        assert!(runner.on_bar(&forming).is_none(), "forming bars are ignored");
        let signal = runner.on_bar(&bars[3]).unwrap();
        assert_eq!((signal.side, signal.time, signal.price), (SignalSide::Buy, bars[3].open_time, 12.0));
        let json = serde_json::to_value(&signal).unwrap();
        assert_eq!(json["side"], "buy");
        assert_eq!(json["strategy"], "ema_cross");
        assert_eq!(serde_json::from_value::<Signal>(json).unwrap(), signal);
    }
}
