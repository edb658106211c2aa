//! The indicators clients can ask for by name, with their parameter tables: one table, whose entries
//! also carry their constructor, so a name cannot be listed without being buildable (or the reverse).

use serde::Serialize;
use serde_json::Value;

use super::{AnyIndicator, Atr, Bollinger, Ema, Indicator, Macd, Named, Rsi, Sma, SuperTrend, Vwap};
use crate::strategy::params::{BuildError, ParamError, ParamSpec, Params};

/// One entry of the indicator catalogue, serialised as-is for the API (without its constructor).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IndicatorInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// Field names of the value: `["value"]` or e.g. `["macd", "signal", "histogram"]`.
    pub outputs: &'static [&'static str],
    pub params: &'static [ParamSpec],
    /// Builds the indicator (named `name`) from range-checked `params`, checking the constraints between them.
    #[serde(skip)]
    build: Build,
}

type Build = fn(&'static str, &Params) -> Result<Box<dyn AnyIndicator>, ParamError>;

const PERIOD_MAX: u32 = 5_000;

const SMA_PARAMS: &[ParamSpec] = &[ParamSpec::int("period", 1, PERIOD_MAX, 20, "bars averaged")];
const EMA_PARAMS: &[ParamSpec] = &[ParamSpec::int("period", 1, PERIOD_MAX, 20, "bars; α = 2/(period+1)")];
const RSI_PARAMS: &[ParamSpec] = &[ParamSpec::int("period", 1, PERIOD_MAX, 14, "Wilder smoothing length")];
const MACD_PARAMS: &[ParamSpec] = &[
    ParamSpec::int("fast", 1, PERIOD_MAX, 12, "fast EMA period (< slow)"),
    ParamSpec::int("slow", 2, PERIOD_MAX, 26, "slow EMA period"),
    ParamSpec::int("signal", 1, PERIOD_MAX, 9, "EMA period of the macd line"),
];
const BOLLINGER_PARAMS: &[ParamSpec] = &[
    ParamSpec::int("period", 1, PERIOD_MAX, 20, "bars in the window"),
    ParamSpec::float("k", 0.0, 10.0, 2.0, "band width in population standard deviations"),
];
const ATR_PARAMS: &[ParamSpec] = &[ParamSpec::int("period", 1, PERIOD_MAX, 14, "Wilder smoothing length")];
const SUPERTREND_PARAMS: &[ParamSpec] = &[
    ParamSpec::int("period", 1, PERIOD_MAX, 10, "ATR period"),
    ParamSpec::float("multiplier", 0.1, 20.0, 3.0, "band distance in ATRs"),
];

const VALUE: &[&str] = &["value"];

const CATALOG: &[IndicatorInfo] = &[
    IndicatorInfo {
        name: "sma",
        description: "simple moving average of closes",
        outputs: VALUE,
        params: SMA_PARAMS,
        build: |name, p| Ok(boxed(name, Sma::new(p.usize("period")))),
    },
    IndicatorInfo {
        name: "ema",
        description: "exponential moving average of closes, seeded with the SMA of the first period",
        outputs: VALUE,
        params: EMA_PARAMS,
        build: |name, p| Ok(boxed(name, Ema::new(p.usize("period")))),
    },
    IndicatorInfo {
        name: "rsi",
        description: "relative strength index (Wilder)",
        outputs: VALUE,
        params: RSI_PARAMS,
        build: |name, p| Ok(boxed(name, Rsi::new(p.usize("period")))),
    },
    IndicatorInfo {
        name: "macd",
        description: "EMA(fast) - EMA(slow), its EMA(signal), and their difference",
        outputs: &["macd", "signal", "histogram"],
        params: MACD_PARAMS,
        build: build_macd,
    },
    IndicatorInfo {
        name: "bollinger",
        description: "SMA ± k population standard deviations",
        outputs: &["upper", "middle", "lower"],
        params: BOLLINGER_PARAMS,
        build: |name, p| Ok(boxed(name, Bollinger::new(p.usize("period"), p.get("k")))),
    },
    IndicatorInfo {
        name: "atr",
        description: "average true range (Wilder)",
        outputs: VALUE,
        params: ATR_PARAMS,
        build: |name, p| Ok(boxed(name, Atr::new(p.usize("period")))),
    },
    IndicatorInfo {
        name: "vwap",
        description: "volume-weighted typical price, reset at 00:00 UTC",
        outputs: VALUE,
        params: &[],
        build: |name, _| Ok(boxed(name, Vwap::new())),
    },
    IndicatorInfo {
        name: "supertrend",
        description: "ATR trailing band; direction up or down",
        outputs: &["value", "direction"],
        params: SUPERTREND_PARAMS,
        build: |name, p| Ok(boxed(name, SuperTrend::new(p.usize("period"), p.get("multiplier")))),
    },
];

/// Every indicator with its parameters, for the API.
pub fn indicator_catalog() -> &'static [IndicatorInfo] {
    CATALOG
}

/// Builds an indicator from its name and a JSON params object (`null` = all defaults).
pub fn build_indicator(name: &str, params: &Value) -> Result<Box<dyn AnyIndicator>, BuildError> {
    let info = CATALOG.iter().find(|i| i.name == name).ok_or_else(|| BuildError::Unknown {
        kind: "indicator",
        name: name.to_owned(),
        available: CATALOG.iter().map(|i| i.name).collect(),
    })?;
    let p = Params::parse(info.params, params)?;
    Ok((info.build)(info.name, &p)?)
}

fn build_macd(name: &'static str, p: &Params) -> Result<Box<dyn AnyIndicator>, ParamError> {
    let (fast, slow) = (p.usize("fast"), p.usize("slow"));
    if fast >= slow {
        return Err(ParamError::Constraint(format!("fast ({fast}) must be below slow ({slow})")));
    }
    Ok(boxed(name, Macd::new(fast, slow, p.usize("signal"))))
}

fn boxed<I: Indicator + 'static>(name: &'static str, inner: I) -> Box<dyn AnyIndicator> {
    Box::new(Named { name, inner })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_catalogue_entry_builds_with_defaults() {
        for info in indicator_catalog() {
            let ind = build_indicator(info.name, &Value::Null).unwrap();
            assert_eq!(ind.name(), info.name);
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let err = |n: &str, p: Value| build_indicator(n, &p).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("smaa", Value::Null).contains("unknown indicator \"smaa\"; available: sma, ema"));
        assert!(err("macd", json!({"fast": 30})).contains("fast (30) must be below slow (26)"));
        assert!(err("bollinger", json!({"k": -1})).contains("out of range"));
        assert!(err("vwap", json!({"period": 3})).contains("unknown parameter \"period\""));
    }

    #[test]
    fn catalogue_serialises_types_ranges_and_defaults() {
        let json = serde_json::to_value(indicator_catalog()).unwrap();
        let st = &json[7];
        assert_eq!(st["name"], "supertrend");
        assert_eq!(
            st["params"][1],
            json!({"name": "multiplier", "type": "float", "min": 0.1, "max": 20.0, "default": 3.0,
                   "description": "band distance in ATRs"})
        );
    }
}
