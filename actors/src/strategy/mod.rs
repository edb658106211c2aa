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

pub(crate) mod backtest;
pub(crate) mod indicators;
pub(crate) mod live;
pub(crate) mod optimize;
pub(crate) mod params;
pub(crate) mod strategies;

pub use backtest::{run_backtest, run_backtest_limited, run_metrics, BacktestConfig, BacktestError, ReportLimits};
pub use indicators::{indicator_catalog, Indicator, Rsi, SuperTrend};
pub use live::indicator_channel;
pub use live::indicators::{
    CountComputations, IndicatorService, IndicatorSettings, SubscribeIndicator, UnsubscribeIndicator,
};
pub use live::signals::{
    ListStrategies, LiveSpec, LiveStrategies, StartError, StartStrategy, StopStrategy, SubscribeSignals,
    UnsubscribeSignals,
};
pub use optimize::{run_optimization, run_plan, validate_spec, OptimizeError, OptimizeSpec, Progress};
pub use params::{BuildError, ParamError, ParamKind, ParamSpec, Params};
pub use strategies::{build_strategy, strategy_catalog, EmaCross};
