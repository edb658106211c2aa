//! Indicators, strategies, backtests and parameter optimisation: the pure computational core of
//! candlecast's strategy engine. No actors and no I/O here; the strategy actor and the HTTP handlers
//! call into it. Formulas, the fill model and metric definitions are in `docs/STRATEGIES.md`.
//!
//! # Layout
//! - [`params`]: parameter specs (name, type, range, default) and the JSON params validator.
//! - [`indicators`]: incremental SMA, EMA, RSI, MACD, Bollinger, ATR, VWAP, SuperTrend, with `preview`.

pub mod indicators;
pub mod params;

pub use params::{BuildError, ParamError, ParamKind, ParamSpec, Params};
