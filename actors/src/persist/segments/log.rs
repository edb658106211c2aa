//! Append-only files of framed records (the write-ahead log, the symbols, the retention floors), and the
//! log's bar records.
//!
//! A record is `length u32, crc32 u32, body`. Reading stops at the first record that is short or fails
//! its checksum: that and everything after it is a tail torn by a crash (never acknowledged, since an
//! append returns only after its fsync), and is cut off and counted. A failed append (a full disk) cuts
//! the file back to where it was, so a later append never lands behind garbage.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::index::{SeriesKey, Val};
use super::segment::Reader;
use crate::persist::StoreError;

/// Bytes of one bar in the log: symbol u32, interval u8, open time i64, 5 × f64, trades u64, revised i64.
pub(super) const LOG_BAR: usize = 4 + 1 + 8 + 40 + 8 + 8;
/// A record longer than this is garbage (a batch of 1 M bars is 69 MB).
const MAX_RECORD: usize = 256 << 20;

/// An append-only file of records.
pub(super) struct AppendFile {
    path: PathBuf,
    file: File,
    len: u64,
}

/// What opening an append-only file found.
pub(super) struct Opened {
    pub file: AppendFile,
    pub records: Vec<Vec<u8>>,
    /// Bytes of a torn tail that were cut off.
    pub torn_bytes: u64,
}

impl AppendFile {
    /// Opens (or creates) `path`, reads its whole records and cuts off a torn tail.
    pub fn open(path: &Path) -> Result<Opened, StoreError> {
        let err = |e: std::io::Error| StoreError::Open(format!("{}: {e}", path.display()));
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err)?;
        let (records, good) = records(&bytes);
        let torn_bytes = (bytes.len() - good) as u64;
        if torn_bytes > 0 {
            tracing::warn!(file = %path.display(), torn_bytes, "cut a torn tail (a write interrupted by a crash)");
            file.set_len(good as u64).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        Ok(Opened { file: AppendFile { path: path.to_owned(), file, len: good as u64 }, records, torn_bytes })
    }

    /// Appends one record with `body` and fsyncs; on failure the file is cut back to its length before.
    pub fn append(&mut self, body: &[u8]) -> Result<(), StoreError> {
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        frame.extend_from_slice(body);
        let written = self.file.write_all_at(&frame, self.len).and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(StoreError::Storage(format!("appending to {}: {e}", self.path.display())))
            }
        }
    }

    /// Empties the file (after what it held went into a segment).
    pub fn truncate(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| StoreError::Storage(format!("truncating {}: {e}", self.path.display())))?;
        self.len = 0;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}

/// The whole records of `bytes`, and the length of that valid prefix.
fn records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut r = Reader { b: bytes, at: 0 };
    loop {
        let at = r.at;
        let (Some(len), Some(crc)) = (r.u32(), r.u32()) else { return (out, at) };
        if len as usize > MAX_RECORD {
            return (out, at);
        }
        match r.take(len as usize) {
            Some(body) if crc32fast::hash(body) == crc => out.push(body.to_vec()),
            _ => return (out, at),
        }
    }
}

/// One bar as the log holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogBar {
    pub key: SeriesKey,
    pub open_time: i64,
    pub val: Val,
}

/// A log record's body: its bars, fixed-width.
pub(super) fn encode_bars(bars: &[LogBar]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bars.len() * LOG_BAR);
    for b in bars {
        body.extend_from_slice(&b.key.0.to_le_bytes());
        body.push(b.key.1);
        body.extend_from_slice(&b.open_time.to_le_bytes());
        for p in b.val.px {
            body.extend_from_slice(&p.to_bits().to_le_bytes());
        }
        body.extend_from_slice(&b.val.trades.to_le_bytes());
        body.extend_from_slice(&b.val.revised.to_le_bytes());
    }
    body
}

/// The bars of a log record that passed its checksum; `None` if it still does not parse (a bug or a
/// foreign file: reported, not guessed at).
pub(super) fn decode_bars(body: &[u8]) -> Option<Vec<LogBar>> {
    if !body.len().is_multiple_of(LOG_BAR) {
        return None;
    }
    body.chunks_exact(LOG_BAR)
        .map(|b| {
            let mut r = Reader { b, at: 0 };
            let key = (r.u32()?, r.u8()?);
            if usize::from(key.1) >= 16 {
                return None;
            }
            let open_time = r.u64()? as i64;
            let mut px = [0.0; 5];
            for p in px.iter_mut() {
                *p = f64::from_bits(r.u64()?);
            }
            let val = Val { px, trades: r.u64()?, revised: r.u64()? as i64 };
            Some(LogBar { key, open_time, val })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_counted_and_the_next_append_follows_the_good_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        {
            let mut f = AppendFile::open(&path).unwrap().file;
            f.append(b"first").unwrap();
            f.append(b"second").unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        // Torn in the middle of the second record.
        std::fs::write(&path, &full[..full.len() - 2]).unwrap();
        let opened = AppendFile::open(&path).unwrap();
        assert_eq!(opened.records, [b"first".to_vec()]);
        assert_eq!(opened.torn_bytes, 8 + 6 - 2);
        let mut f = opened.file;
        f.append(b"third").unwrap();
        drop(f);
        assert_eq!(AppendFile::open(&path).unwrap().records, [b"first".to_vec(), b"third".to_vec()]);
        // A flipped byte in a record's body: it and what follows are cut.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let opened = AppendFile::open(&path).unwrap();
        assert!(opened.records.is_empty());
        assert_eq!(opened.torn_bytes, bytes.len() as u64);
        // A length field of 4 GB is not believed.
        std::fs::write(&path, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(AppendFile::open(&path).unwrap().torn_bytes, 10);
    }
}
