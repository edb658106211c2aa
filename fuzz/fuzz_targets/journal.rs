//! The journal file as found at start, then read to the end. The first byte picks how the rest becomes
//! the file: 0 as it is; 1 split at 0xFF into payloads, each framed as a record of this format whose
//! checksum holds (so the fuzzer reaches the payload decoding past the CRC); 2 the same in the first
//! format (which `open` migrates).
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use candlecast_actors::persist::Journal;
use libfuzzer_sys::fuzz_target;

const MAGIC: [u8; 4] = [0xF7, b'C', b'J', b'2'];

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("candlecast-fuzz-journal-{}", std::process::id())))
}

fn frame(rest: &[u8], first_format: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for payload in rest.split(|&b| b == 0xFF) {
        let (len, bars, oldest) = (payload.len() as u32, 1u32, 0i64);
        let mut crc = crc32fast::Hasher::new();
        if !first_format {
            crc.update(&len.to_le_bytes());
        }
        crc.update(&bars.to_le_bytes());
        crc.update(&oldest.to_le_bytes());
        crc.update(payload);
        if !first_format {
            out.extend_from_slice(&MAGIC);
        }
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&bars.to_le_bytes());
        out.extend_from_slice(&oldest.to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = match mode % 3 {
        0 => rest.to_vec(),
        1 => frame(rest, false),
        _ => frame(rest, true),
    };
    // A fresh directory each time: a migration keeps unreadable bytes aside next to the journal.
    let _ = std::fs::remove_dir_all(dir());
    std::fs::create_dir_all(dir()).expect("the fuzzer's scratch directory can be created");
    let path = dir().join("journal.bin");
    std::fs::write(&path, &bytes).expect("the fuzzer's scratch file is writable");
    let Ok((mut journal, recovered)) = Journal::open(&path, 1 << 30) else { return };
    assert_eq!(recovered.bars, journal.bars());
    // Every record leaves: each head is popped, so this ends after at most `records` rounds.
    for _ in 0..=recovered.records {
        match journal.head() {
            Ok(Some(_)) => {
                if journal.pop().is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = journal.take_damaged();
    assert!(journal.is_empty(), "records left after reading all of them");
});
