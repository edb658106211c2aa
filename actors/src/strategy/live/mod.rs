//! The strategy code, live: actors on the hub's bar events that publish on hub channels.
//!
//! - [`indicators`]: indicator streams; identical requests share one computation.
//! - [`signals`]: strategies running live, publishing signals.

pub(crate) mod indicators;
pub(crate) mod signals;

use crate::model::{Interval, Symbol};

/// The channel an indicator computation publishes on: its identity, with parameters in canonical form.
pub fn indicator_channel(
    symbol: &Symbol,
    interval: Interval,
    name: &str,
    params: &serde_json::Value,
) -> std::sync::Arc<str> {
    format!("indicator:{symbol}:{interval}:{name}:{params}").into()
}

/// The channel of the signals of one symbol and interval.
pub fn signal_channel(symbol: &str, interval: Interval) -> std::sync::Arc<str> {
    format!("signals:{symbol}:{interval}").into()
}
