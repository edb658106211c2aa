//! The strategies clients can run by name, with their parameter tables (`GET /api/strategies`): one
//! table, whose entries also carry their constructor, so the names, the specs and the builds agree.

use serde::Serialize;
use serde_json::Value;

use super::{ema_cross, rsi_reversion, EmaCross, RsiReversion, Strategy};
use crate::strategy::params::{BuildError, ParamError, ParamSpec, Params};

/// One entry of the strategy catalogue, serialised as-is for the API (without its constructor).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StrategyInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub params: &'static [ParamSpec],
    /// Builds the strategy from range-checked `params`, checking the constraints between them.
    #[serde(skip)]
    build: fn(&Params) -> Result<Box<dyn Strategy>, ParamError>,
}

const CATALOG: &[StrategyInfo] = &[
    StrategyInfo {
        name: ema_cross::NAME,
        description: "buy when EMA(fast) crosses above EMA(slow), sell when it crosses below",
        params: &[
            ParamSpec::int("fast", 1, 1_000, 9, "fast EMA period (< slow)"),
            ParamSpec::int("slow", 2, 5_000, 21, "slow EMA period"),
        ],
        build: build_ema_cross,
    },
    StrategyInfo {
        name: rsi_reversion::NAME,
        description: "buy when RSI falls below oversold, sell when it rises above overbought",
        params: &[
            ParamSpec::int("period", 1, 1_000, 14, "RSI period (Wilder)"),
            ParamSpec::float("oversold", 0.0, 100.0, 30.0, "buy below this RSI (< overbought)"),
            ParamSpec::float("overbought", 0.0, 100.0, 70.0, "sell above this RSI"),
        ],
        build: build_rsi_reversion,
    },
];

/// Every strategy with its parameters, for `GET /api/strategies`.
pub fn strategy_catalog() -> &'static [StrategyInfo] {
    CATALOG
}

/// Looks a strategy up by name.
pub(crate) fn find(name: &str) -> Result<&'static StrategyInfo, BuildError> {
    CATALOG.iter().find(|s| s.name == name).ok_or_else(|| BuildError::Unknown {
        kind: "strategy",
        name: name.to_owned(),
        available: CATALOG.iter().map(|s| s.name).collect(),
    })
}

/// Builds a strategy from its name and a JSON params object (`null` = all defaults).
pub fn build_strategy(name: &str, params: &Value) -> Result<Box<dyn Strategy>, BuildError> {
    let info = find(name)?;
    Ok(build_from(info, &Params::parse(info.params, params)?)?)
}

/// Builds a strategy from already range-checked parameters, checking the constraints between them.
pub(crate) fn build_from(info: &StrategyInfo, p: &Params) -> Result<Box<dyn Strategy>, ParamError> {
    (info.build)(p)
}

fn build_ema_cross(p: &Params) -> Result<Box<dyn Strategy>, ParamError> {
    let (fast, slow) = (p.usize("fast"), p.usize("slow"));
    if fast >= slow {
        return Err(ParamError::Constraint(format!("fast ({fast}) must be below slow ({slow})")));
    }
    Ok(Box::new(EmaCross::new(fast, slow)))
}

fn build_rsi_reversion(p: &Params) -> Result<Box<dyn Strategy>, ParamError> {
    let (oversold, overbought) = (p.get("oversold"), p.get("overbought"));
    if oversold >= overbought {
        return Err(ParamError::Constraint(format!("oversold ({oversold}) must be below overbought ({overbought})")));
    }
    Ok(Box::new(RsiReversion::new(p.usize("period"), oversold, overbought)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_every_entry_with_defaults() {
        for info in strategy_catalog() {
            assert_eq!(build_strategy(info.name, &Value::Null).unwrap().name(), info.name);
        }
    }

    #[test]
    fn refusals_are_precise() {
        let err = |n: &str, p: Value| build_strategy(n, &p).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err("macross", json!({})), "unknown strategy \"macross\"; available: ema_cross, rsi_reversion");
        assert!(err("ema_cross", json!({"fast": 30, "slow": 20})).contains("fast (30) must be below slow (20)"));
        assert!(err("ema_cross", json!({"fast": "9"})).contains("must be an integer number, got a string"));
        assert!(err("rsi_reversion", json!({"oversold": 80})).contains("oversold (80) must be below overbought (70)"));
        assert!(err("rsi_reversion", json!({"period": 0})).contains("out of range [1, 1000]"));
        assert!(err("rsi_reversion", json!({"lookback": 3})).contains("unknown parameter \"lookback\""));
        assert!(err("ema_cross", json!("fast=3")).contains("params must be a JSON object"));
    }

    #[test]
    fn catalogue_json_lists_types_ranges_defaults() {
        let json = serde_json::to_value(strategy_catalog()).unwrap();
        assert_eq!(json[0]["name"], "ema_cross");
        assert_eq!(json[0]["params"][0]["type"], "integer");
        assert_eq!(json[0]["params"][1]["default"], 21.0);
        assert_eq!(json[1]["params"][1]["max"], 100.0);
    }
}
