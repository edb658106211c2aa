//! InfluxDB line protocol for bars, the same for the v1 and v2 APIs (written with `precision=ms`):
//!
//! ```text
//! bars,symbol=BTCUSDT,interval=1m,source=simulated open=67000.5,high=67010,low=66990.25,close=67001,volume=12.5,trades=80i,revised=1700000061234i 1700000000000
//! ```
//! Measurement `bars`; tags `symbol`, `interval`, `source`; float fields OHLCV, integer fields `trades`
//! and `revised` (when candlecast closed or corrected the bar, ms, for `since=` polling); the timestamp
//! is the bar's open time in ms. Writing a point again with the same tags and time replaces its fields,
//! which is InfluxDB's upsert.

use std::fmt::Write;

use super::StoredBar;

pub const MEASUREMENT: &str = "bars";

/// One line per bar, each ending in `\n`.
pub fn encode(bars: &[StoredBar]) -> String {
    let mut out = String::with_capacity(bars.len() * 160);
    for s in bars {
        let b = &s.bar;
        out.push_str(MEASUREMENT);
        for (key, value) in [("symbol", &*b.symbol), ("interval", b.interval.as_str()), ("source", &*s.source)] {
            out.push(',');
            out.push_str(key);
            out.push('=');
            push_tag_value(&mut out, value);
        }
        // f64's Display is the shortest text that parses back to the same bits, and never uses an
        // exponent: exactly what line protocol's float syntax accepts.
        let _ = writeln!(
            out,
            " open={},high={},low={},close={},volume={},trades={}i,revised={}i {}",
            b.open, b.high, b.low, b.close, b.volume, b.trades, s.revised, b.open_time
        );
    }
    out
}

/// Tag values escape commas, equals signs and spaces with a backslash; a line break cannot be escaped,
/// so it becomes a space (symbols and sources never hold one: they are validated names).
fn push_tag_value(out: &mut String, value: &str) {
    if value.is_empty() {
        // An empty tag value is not allowed; an empty source still needs a point.
        out.push_str("unknown");
        return;
    }
    for c in value.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bar, Interval};

    fn stored(symbol: &str, source: &str) -> StoredBar {
        let mut bar = Bar::from_trade(symbol.into(), Interval::M1, 1_700_000_000_000, 67000.5, 0.1);
        bar.apply_trade(0.000_000_1, 2.0);
        StoredBar { bar, source: source.into(), revised: 1_700_000_061_234 }
    }

    #[test]
    fn a_bar_is_one_line_with_typed_fields_and_a_ms_timestamp() {
        assert_eq!(
            encode(&[stored("BTCUSDT", "simulated")]),
            "bars,symbol=BTCUSDT,interval=1m,source=simulated open=67000.5,high=67000.5,low=0.0000001,close=0.0000001,volume=2.1,trades=2i,revised=1700000061234i 1699999980000\n"
        );
    }

    #[test]
    fn tag_values_are_escaped() {
        let line = encode(&[stored("A,B=C D", "my source\nx")]);
        assert!(line.starts_with(r"bars,symbol=A\,B\=C\ D,interval=1m,source=my\ source\ x open="), "{line}");
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        assert!(encode(&[stored("X", "")]).contains(",source=unknown "));
    }

    #[test]
    fn floats_round_trip_through_their_text() {
        for v in [0.1 + 0.2, 1e-9, 123_456_789.123_456_79, 5e20, f64::MIN_POSITIVE] {
            let text = format!("{v}");
            assert!(!text.contains('e'), "{text}");
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), v.to_bits());
        }
    }
}
