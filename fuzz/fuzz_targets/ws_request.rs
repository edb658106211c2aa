//! One text message of a `/ws` client.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = candlecast::fuzzing::decode_ws_request(data);
});
