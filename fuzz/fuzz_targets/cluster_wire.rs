//! What a node reads from Redis: a bars message (first byte % 3 == 0), a cached bar (1) or a watermark (2).
#![no_main]
use candlecast_actors::fuzzing::{decode_batch, decode_cached, decode_watermark};
use candlecast_actors::model::{Interval, Symbol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let symbol = Symbol::from("BTCUSDT");
    match mode % 3 {
        0 => {
            let _ = decode_batch("cc:bars:BTCUSDT", &symbol, rest);
        }
        1 => {
            if let Ok(member) = std::str::from_utf8(rest) {
                let interval = Interval::ALL[(mode as usize / 3) % Interval::ALL.len()];
                let _ = decode_cached("cc:today:2024-01-01:BTCUSDT:1m", &symbol, interval, member);
            }
        }
        _ => {
            if let Ok(value) = std::str::from_utf8(rest) {
                let _ = decode_watermark(value);
            }
        }
    }
});
