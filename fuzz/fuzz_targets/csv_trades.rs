//! The executed-trades CSV of a Socket.IO script (`trades_csv`), with the default limits.
#![no_main]
use candlecast::fuzzing::{parse_trades, CsvLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = parse_trades(text, CsvLimits { max_columns: 64, max_rows: 200_000 }) {
            let _ = parsed.to_csv(|_| true);
        }
    }
});
