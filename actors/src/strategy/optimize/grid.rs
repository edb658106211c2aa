//! The parameter grid: per-parameter value lists, checked against the strategy's specs, and the
//! mixed-radix mapping from a point's index to its parameters (so the grid is never materialised).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OptimizeError, MAX_COMBINATIONS};
use crate::strategy::params::{ParamError, Params};
use crate::strategy::strategies::StrategyInfo;

/// Values to try for one parameter: an explicit list `[5, 10, 20]` or a range
/// `{"start": 5, "end": 50, "step": 5}` (inclusive of `end` when it falls on a step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValues {
    List(Vec<Value>),
    Range(Range),
}

/// `{"start": 5, "end": 50, "step": 5}`; a misspelt field is refused rather than ignored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

/// A validated grid over one strategy's parameters, in spec order.
#[derive(Debug, Clone)]
pub struct Grid {
    strategy: &'static StrategyInfo,
    axes: Vec<Vec<f64>>,
    len: usize,
}

impl Grid {
    pub(crate) fn new(
        strategy: &'static StrategyInfo,
        values: &BTreeMap<String, ParamValues>,
    ) -> Result<Grid, OptimizeError> {
        for name in values.keys() {
            if !strategy.params.iter().any(|s| s.name == name) {
                return Err(ParamError::Unknown {
                    name: name.clone(),
                    expected: strategy.params.iter().map(|s| s.name).collect(),
                }
                .into());
            }
        }
        let mut axes = Vec::with_capacity(strategy.params.len());
        let mut count: u128 = 1;
        for spec in strategy.params {
            let axis = match values.get(spec.name) {
                None => vec![spec.default],
                Some(v) => expand(spec.name, v)?.iter().map(|x| spec.check(x)).collect::<Result<Vec<f64>, _>>()?,
            };
            count = count.saturating_mul(axis.len() as u128);
            axes.push(axis);
        }
        if count > MAX_COMBINATIONS as u128 {
            return Err(OptimizeError::TooManyCombinations { count, max: MAX_COMBINATIONS });
        }
        Ok(Grid { strategy, axes, len: count as usize })
    }

    /// Number of grid points.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn strategy(&self) -> &'static StrategyInfo {
        self.strategy
    }

    /// The parameters of point `index` (< `len()`); the last parameter varies fastest.
    pub fn params(&self, mut index: usize) -> Params {
        let mut values = vec![0.0; self.axes.len()];
        for (slot, axis) in values.iter_mut().zip(&self.axes).rev() {
            *slot = axis[index % axis.len()];
            index /= axis.len();
        }
        Params::from_checked(self.strategy.params, values)
    }
}

/// The values of one axis as JSON numbers, so each goes through the same check as a single param.
fn expand(name: &str, values: &ParamValues) -> Result<Vec<Value>, OptimizeError> {
    let range_err = |reason: String| OptimizeError::Range { name: name.to_owned(), reason };
    match values {
        ParamValues::List(list) if list.is_empty() => Err(range_err("the list of values is empty".into())),
        ParamValues::List(list) if list.len() > MAX_COMBINATIONS => {
            Err(OptimizeError::TooManyCombinations { count: list.len() as u128, max: MAX_COMBINATIONS })
        }
        ParamValues::List(list) => Ok(list.clone()),
        &ParamValues::Range(Range { start, end, step }) => {
            if !(start.is_finite() && end.is_finite() && step.is_finite()) {
                return Err(range_err("start, end and step must be finite numbers".into()));
            }
            if step <= 0.0 {
                return Err(range_err(format!("step must be above 0, got {step}")));
            }
            if end < start {
                return Err(range_err(format!("end ({end}) is below start ({start})")));
            }
            // A little slack so 0.1-steps reach `end` despite rounding.
            let steps = ((end - start) / step + 1e-9).floor();
            if steps >= MAX_COMBINATIONS as f64 {
                return Err(OptimizeError::TooManyCombinations { count: steps as u128 + 1, max: MAX_COMBINATIONS });
            }
            // start + i·step rather than repeated addition, which would drift.
            Ok((0..=steps as usize).map(|i| Value::from(round_to_step(start + i as f64 * step))).collect())
        }
    }
}

/// Removes the 1e-15-sized noise of `start + i·step` (0.1 + 2·0.1 = 0.30000000000000004), so integer
/// parameters stay integral and float values print cleanly.
fn round_to_step(x: f64) -> f64 {
    let rounded = (x * 1e9).round() / 1e9;
    if (rounded - x).abs() < 1e-9 {
        rounded
    } else {
        x
    }
}
