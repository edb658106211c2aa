//! The market model: trades in, bars out. Plain data, no actors.

mod bar;
mod calendar;
mod interval;
mod symbol;
pub(crate) mod time;
mod trade;

pub use bar::{resample, resample_on, Bar, TradeSpan};
pub use calendar::{Calendar, Session, SessionError, SessionSpec, SessionView};
pub use interval::{Interval, UnknownInterval};
pub use time::{format_iso, from_number, parse_iso, parse_timestamp, TimestampError};
pub use trade::{InvalidTrade, Side, Trade, MAX_PRICE, MAX_QTY};

pub use symbol::Symbol;

/// Prices are `f64`, not a fixed-point decimal: every consumer (JSON, JavaScript charts, InfluxDB fields,
/// indicator maths) speaks f64, so a decimal would be converted at every edge and buy nothing. Bars only
/// take min/max/last of prices, which are exact in f64; volumes are sums and may carry rounding in the
/// last bits, which is why tests compare volumes with a relative tolerance.
pub type Price = f64;

/// Current wall-clock time in UTC milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Current wall-clock time in UTC milliseconds, to the microsecond.
pub fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as f64 / 1e3)
        .unwrap_or(0.0)
}

/// How long from now until the wall clock reads `at_ms` (zero if it has), to the microsecond: timers of many
/// actors aimed at the same wall-clock ms this way fire together, where a delay counted from the whole ms
/// (`at_ms - now_ms()`) spreads them over the ms and so over two of the timer's slots.
pub fn until_wall_ms(at_ms: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(((at_ms - wall_ms()) / 1e3).max(0.0))
}
