//! Incremental technical indicators: O(1) per closed bar, with a non-mutating `preview` for the forming bar.
//!
//! Every indicator implements [`Indicator`] with a concrete `Output` (strategies use that, e.g. an
//! [`Ema`] yields a plain `f64`). The registry ([`build_indicator`], [`indicator_catalog`]) hands out
//! type-erased [`AnyIndicator`]s whose values are an [`IndicatorValue`], the shape sent over the WebSocket.
//! Formulas, seeding and warm-up lengths are documented in `docs/STRATEGIES.md`.

mod atr;
mod bollinger;
mod ema;
mod macd;
mod registry;
mod rsi;
mod sma;
mod supertrend;
mod vwap;
mod window;

#[cfg(test)]
pub(crate) mod fixture_tests;

use serde::Serialize;

use crate::model::Bar;

pub use atr::Atr;
pub use bollinger::{Bands, Bollinger};
pub use ema::Ema;
pub use macd::{Macd, MacdValue};
pub use registry::{build_indicator, indicator_catalog};
pub use rsi::Rsi;
pub use sma::Sma;
pub use supertrend::{SuperTrend, SuperTrendValue};
pub use vwap::Vwap;

/// An indicator fed with closed bars, one at a time, in time order.
pub trait Indicator: Send {
    /// What one bar yields: `f64` for single-line indicators, a small struct for the others.
    type Output: Copy + Into<IndicatorValue>;

    /// Folds a closed bar in and returns the value at that bar, or `None` during the warm-up.
    fn update(&mut self, bar: &Bar) -> Option<Self::Output>;

    /// The value `update(bar)` would return if the forming `bar` closed now, without changing any state.
    /// Charts call this on every partial-bar update to draw the live value.
    fn preview(&self, bar: &Bar) -> Option<Self::Output>;

    /// Forgets every bar seen so far (same as a freshly built indicator).
    fn reset(&mut self);

    /// Closed bars consumed before the first value: the first `Some` comes from bar number `warmup()`
    /// (zero-based). VWAP returns 0 and may still yield `None` while a session has no volume.
    fn warmup(&self) -> usize;
}

/// A value on the wire: `{"value": x}` for single-line indicators, named fields for the others.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum IndicatorValue {
    Single { value: f64 },
    Macd(MacdValue),
    Bands(Bands),
    SuperTrend(SuperTrendValue),
}

impl From<f64> for IndicatorValue {
    fn from(value: f64) -> Self {
        IndicatorValue::Single { value }
    }
}

/// An indicator behind a trait object, as the registry builds it from a name and JSON params.
/// The methods only tests call (the live service only updates and previews) exist in test builds only.
pub trait AnyIndicator: Send {
    /// The registry name (`"ema"`, `"supertrend"`, ...).
    #[cfg(test)]
    fn name(&self) -> &'static str;
    /// See [`Indicator::update`].
    fn update(&mut self, bar: &Bar) -> Option<IndicatorValue>;
    /// See [`Indicator::preview`].
    fn preview(&self, bar: &Bar) -> Option<IndicatorValue>;
    /// See [`Indicator::reset`].
    #[cfg(test)]
    fn reset(&mut self);
    /// See [`Indicator::warmup`].
    #[cfg(test)]
    fn warmup(&self) -> usize;
}

/// Pairs a concrete indicator with its registry name so it can be boxed as an [`AnyIndicator`].
struct Named<I> {
    // Read through `AnyIndicator::name` only, which the tests use to check that an entry builds what it names.
    #[cfg_attr(not(test), allow(dead_code))]
    name: &'static str,
    inner: I,
}

impl<I: Indicator> AnyIndicator for Named<I> {
    #[cfg(test)]
    fn name(&self) -> &'static str {
        self.name
    }
    fn update(&mut self, bar: &Bar) -> Option<IndicatorValue> {
        self.inner.update(bar).map(Into::into)
    }
    fn preview(&self, bar: &Bar) -> Option<IndicatorValue> {
        self.inner.preview(bar).map(Into::into)
    }
    #[cfg(test)]
    fn reset(&mut self) {
        self.inner.reset()
    }
    #[cfg(test)]
    fn warmup(&self) -> usize {
        self.inner.warmup()
    }
}

/// Test helpers shared by the indicator tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::model::{Bar, Interval};

    /// A closed 1-minute bar number `i` with the given high, low, close (open = close).
    pub fn bar(i: i64, high: f64, low: f64, close: f64) -> Bar {
        Bar {
            symbol: "TEST".into(),
            interval: Interval::M1,
            open_time: i * 60_000,
            open: close,
            high,
            low,
            close,
            volume: 1.0,
            trades: 1,
            closed: true,
        }
    }

    /// Closed bars whose high, low and close all equal the given closes.
    pub fn closes(values: &[f64]) -> Vec<Bar> {
        values.iter().enumerate().map(|(i, &c)| bar(i as i64, c, c, c)).collect()
    }
}
