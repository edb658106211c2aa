//! Indicators, strategies, backtests and parameter optimisation: the pure computational core of
//! candlecast's strategy engine. No actors and no I/O here; the strategy actor and the HTTP handlers
//! call into it. Formulas, the fill model and metric definitions are in `docs/STRATEGIES.md`.
//!
//! # Layout
//! - [`params`]: parameter specs (name, type, range, default) and the JSON params validator.
//! - [`indicators`]: incremental SMA, EMA, RSI, MACD, Bollinger, ATR, VWAP, SuperTrend, with `preview`.
//! - [`strategies`]: the `Strategy` trait, `Signal`, `StrategyRunner` (the live and backtest path), the catalogue.
//! - [`backtest`]: the fill model, the simulated account and the metrics.
//! - [`live`]: the actors that run indicators and strategies on live bars and publish on hub channels.
//! - [`optimize`]: parameter grids, validated up front, backtested in parallel with progress and cancel.

pub mod backtest;
pub mod indicators;
pub mod live;
pub mod optimize;
pub mod params;
pub mod strategies;

pub use params::{BuildError, ParamError, ParamKind, ParamSpec, Params};
