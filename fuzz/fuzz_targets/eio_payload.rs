//! An Engine.IO polling payload (a POST body) or WebSocket text frame, and the Socket.IO packets in it:
//! the path every byte a Socket.IO client sends takes.
#![no_main]
use bytes::Bytes;
use candlecast::fuzzing::{payload_packets, EioPacket, SioPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let _ = EioPacket::decode_text(body.clone());
    for p in payload_packets(&body) {
        if let Ok(EioPacket::Message(m)) = p {
            if let Ok(text) = std::str::from_utf8(&m) {
                let _ = SioPacket::decode(text);
            }
        }
    }
});
