//! One text frame of Binance's market stream (raw or combined-stream envelope), and its trade.
#![no_main]
use candlecast_actors::fuzzing::{decode_binance_stream as decode, StreamMessage};
use candlecast_actors::model::Symbol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(StreamMessage::Trade(t)) = decode(text) {
            let _ = t.to_trade(&Symbol::from("BTCUSDT"), 1_700_000_000_000);
        }
    }
});
