//! Parameter specs and the one validator that turns a client's JSON params object into numbers.
//!
//! Indicators and strategies declare their parameters as a `&'static [ParamSpec]`; the same table is
//! served by `GET /api/strategies` and used to check `{"period": 14}`-style objects, so what the API
//! advertises and what it accepts cannot drift apart.

use serde::Serialize;
use serde_json::Value;

/// Whether a parameter takes whole numbers (periods) or any real number (multipliers, thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    Integer,
    Float,
}

/// One parameter: its name, type, inclusive range and default, as `GET /api/strategies` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: ParamKind,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub description: &'static str,
}

impl ParamSpec {
    /// An integer parameter such as a period.
    pub const fn int(name: &'static str, min: u32, max: u32, default: u32, description: &'static str) -> Self {
        ParamSpec {
            name,
            kind: ParamKind::Integer,
            min: min as f64,
            max: max as f64,
            default: default as f64,
            description,
        }
    }

    /// A real-valued parameter such as a band width.
    pub const fn float(name: &'static str, min: f64, max: f64, default: f64, description: &'static str) -> Self {
        ParamSpec { name, kind: ParamKind::Float, min, max, default, description }
    }

    /// Checks one JSON value against this spec and returns it as f64 (integers are exact up to 2^53).
    pub fn check(&self, value: &Value) -> Result<f64, ParamError> {
        let wrong_type =
            || ParamError::WrongType { name: self.name.to_owned(), expected: self.kind, found: json_type(value) };
        let number = value.as_f64().ok_or_else(wrong_type)?;
        // `10.0` is accepted for an integer: JavaScript clients cannot tell 10 and 10.0 apart.
        if self.kind == ParamKind::Integer && number.fract() != 0.0 {
            return Err(wrong_type());
        }
        if !(self.min..=self.max).contains(&number) {
            return Err(ParamError::OutOfRange {
                name: self.name.to_owned(),
                value: number,
                min: self.min,
                max: self.max,
            });
        }
        Ok(number)
    }
}

/// Why a params object was refused. Every variant names the parameter so an HTTP 400 can say which.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("params must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },
    #[error("unknown parameter {name:?}; expected one of: {}", expected.join(", "))]
    Unknown { name: String, expected: Vec<&'static str> },
    #[error("parameter {name:?} must be {} number, got {found}", article(*expected))]
    WrongType { name: String, expected: ParamKind, found: &'static str },
    #[error("parameter {name:?} = {value} is out of range [{min}, {max}]")]
    OutOfRange { name: String, value: f64, min: f64, max: f64 },
    /// A constraint between parameters, e.g. `fast < slow`.
    #[error("invalid parameters: {0}")]
    Constraint(String),
}

/// Why an indicator or strategy could not be built from a name and a params object (an HTTP 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("unknown {kind} {name:?}; available: {}", available.join(", "))]
    Unknown { kind: &'static str, name: String, available: Vec<&'static str> },
    #[error(transparent)]
    Params(#[from] ParamError),
}

fn article(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Integer => "an integer",
        ParamKind::Float => "a",
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validated parameter values, in the order of their specs. Missing parameters hold their default.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    specs: &'static [ParamSpec],
    values: Vec<f64>,
}

impl Params {
    /// Validates `json` (an object, or `null` for all defaults) against `specs`.
    pub fn parse(specs: &'static [ParamSpec], json: &Value) -> Result<Params, ParamError> {
        let mut values: Vec<f64> = specs.iter().map(|s| s.default).collect();
        let object = match json {
            Value::Null => return Ok(Params { specs, values }),
            Value::Object(map) => map,
            other => return Err(ParamError::NotAnObject { found: json_type(other) }),
        };
        for (name, value) in object {
            let index = specs.iter().position(|s| s.name == name).ok_or_else(|| ParamError::Unknown {
                name: name.clone(),
                expected: specs.iter().map(|s| s.name).collect(),
            })?;
            values[index] = specs[index].check(value)?;
        }
        Ok(Params { specs, values })
    }

    /// Values already checked one by one against `specs` (in spec order), e.g. an optimizer grid point.
    pub(crate) fn from_checked(specs: &'static [ParamSpec], values: Vec<f64>) -> Params {
        debug_assert_eq!(specs.len(), values.len());
        Params { specs, values }
    }

    /// Every parameter at its default.
    pub fn defaults(specs: &'static [ParamSpec]) -> Params {
        Params { specs, values: specs.iter().map(|s| s.default).collect() }
    }

    /// The value of `name`. Panics only on a name missing from the spec table: a programming error
    /// in this crate, never something a client can cause (client names were checked in `parse`).
    pub fn get(&self, name: &str) -> f64 {
        match self.specs.iter().position(|s| s.name == name) {
            Some(i) => self.values[i],
            None => panic!("parameter {name:?} is not in the spec table"),
        }
    }

    /// The value of an integer parameter (already range-checked, so it fits).
    pub fn usize(&self, name: &str) -> usize {
        self.get(name) as usize
    }

    /// The values as a JSON object, e.g. to echo the effective parameters back in a result.
    pub fn to_json(&self) -> serde_json::Map<String, Value> {
        self.specs
            .iter()
            .zip(&self.values)
            .map(|(spec, &v)| {
                let value = match spec.kind {
                    ParamKind::Integer => Value::from(v as i64),
                    ParamKind::Float => Value::from(v),
                };
                (spec.name.to_owned(), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: &[ParamSpec] =
        &[ParamSpec::int("period", 1, 500, 14, "bars"), ParamSpec::float("k", 0.1, 10.0, 2.0, "width")];

    #[test]
    fn defaults_fill_missing_and_null() {
        let p = Params::parse(SPECS, &json!({"period": 20})).unwrap();
        assert_eq!((p.usize("period"), p.get("k")), (20, 2.0));
        let p = Params::parse(SPECS, &Value::Null).unwrap();
        assert_eq!((p.usize("period"), p.get("k")), (14, 2.0));
        assert_eq!(Value::Object(p.to_json()), json!({"period": 14, "k": 2.0}));
    }

    #[test]
    fn table_of_refusals() {
        let cases = [
            (json!([1]), "must be a JSON object"),
            (json!({"perod": 3}), "unknown parameter \"perod\"; expected one of: period, k"),
            (json!({"period": "14"}), "\"period\" must be an integer number, got a string"),
            (json!({"period": 14.5}), "must be an integer number, got a fractional number"),
            (json!({"k": true}), "\"k\" must be a number, got a boolean"),
            (json!({"period": 0}), "\"period\" = 0 is out of range [1, 500]"),
            (json!({"k": 10.5}), "out of range"),
            (json!({"period": -3}), "out of range"),
        ];
        for (input, expected) in cases {
            let err = Params::parse(SPECS, &input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input} -> {err}");
        }
    }

    #[test]
    fn integral_float_is_an_integer() {
        assert_eq!(Params::parse(SPECS, &json!({"period": 10.0})).unwrap().usize("period"), 10);
    }
}
