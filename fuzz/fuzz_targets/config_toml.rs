//! A configuration file's TOML text, merged over the defaults and validated, in-process (no environment).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = candlecast::Config::from_toml_str(text);
    }
});
