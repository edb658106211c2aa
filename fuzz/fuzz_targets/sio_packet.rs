//! A Socket.IO packet (the text of one Engine.IO message) from a client.
#![no_main]
use candlecast::fuzzing::SioPacket as Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Packet::decode(text);
    }
});
