//! The journal: an append-only file of batches the store has not taken yet, read back in order.
//!
//! A record is `length: u32 LE | bars: u32 LE | oldest: i64 LE | crc32: u32 LE | payload`, the payload
//! being the batch as JSON, `oldest` its earliest `revised` time (for the write lag, without decoding),
//! and the checksum covering `bars`, `oldest` and the payload. Records are written whole and then fsynced
//! (`append` returns after `sync_data`), so once a batch is in the journal a crash or power loss does
//! not take it. A crash *during* an append leaves a torn last record: [`Journal::open`] recognises it
//! (short, or a checksum that does not match) and cuts the file there; that batch was never reported as
//! journaled, so nothing acknowledged is lost.
//!
//! Batches leave the journal in the order they entered: [`Journal::head`] is the oldest one not yet
//! written, [`Journal::pop`] marks it written, and when the last one is popped the file is emptied.
//! A crash between a store write and `pop` writes that batch again at the next start, which the store's
//! upsert makes harmless.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoredBar;

const HEADER: usize = 20;
/// A record larger than this is corruption, not a batch (batches are at most `batch_bars` bars).
const MAX_RECORD: u32 = 256 * 1024 * 1024;

/// The journal file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {message}")]
pub struct JournalError {
    pub path: PathBuf,
    pub message: String,
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub records: usize,
    pub bars: u64,
    /// Bytes of a torn last record that were cut off.
    pub torn_bytes: u64,
}

/// What the journal knows of a record without reading its payload.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Header and payload, in bytes.
    len: u64,
    bars: u32,
    /// The earliest `revised` of its bars.
    oldest: i64,
}

/// See the module documentation.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Offset of the oldest unwritten record, and of the end of the file.
    read_at: u64,
    end: u64,
    /// Every unwritten record, oldest first.
    records: VecDeque<Record>,
    bars: u64,
    /// The decoded head record, kept until it is popped.
    head: Option<Arc<[StoredBar]>>,
}

impl Journal {
    /// Opens (or creates) the journal, keeps every whole record and cuts off a torn tail.
    pub fn open(path: &Path) -> Result<(Journal, Recovered), JournalError> {
        let err = |message: String| JournalError { path: path.to_owned(), message };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create its directory: {e}")))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| err(e.to_string()))?;
        let mut records = VecDeque::new();
        let (mut at, mut bars) = (0usize, 0u64);
        while let Some(record) = whole_record(&data[at..]) {
            bars += record.bars as u64;
            at += record.len as usize;
            records.push_back(record);
        }
        let torn_bytes = (data.len() - at) as u64;
        if torn_bytes > 0 {
            file.set_len(at as u64).map_err(|e| err(format!("cannot cut the torn last record: {e}")))?;
            file.sync_data().map_err(|e| err(e.to_string()))?;
        }
        let recovered = Recovered { records: records.len(), bars, torn_bytes };
        let journal = Journal { path: path.to_owned(), file, read_at: 0, end: at as u64, records, bars, head: None };
        Ok((journal, recovered))
    }

    /// Bars in the journal not yet written to the store.
    pub fn bars(&self) -> u64 {
        self.bars
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Size of the file, in bytes.
    pub fn bytes(&self) -> u64 {
        self.end
    }

    fn error(&self, message: impl std::fmt::Display) -> JournalError {
        JournalError { path: self.path.clone(), message: message.to_string() }
    }

    /// Appends `bars` as records of at most `per_record` bars each, then fsyncs. Returns once durable.
    pub fn append(&mut self, bars: &[StoredBar], per_record: usize) -> Result<(), JournalError> {
        if bars.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for chunk in bars.chunks(per_record.max(1)) {
            let payload = serde_json::to_vec(chunk).map_err(|e| self.error(format!("cannot encode a batch: {e}")))?;
            let record = Record {
                len: (HEADER + payload.len()) as u64,
                bars: chunk.len() as u32,
                oldest: chunk.iter().map(|b| b.revised).min().unwrap_or(0),
            };
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&record.bars.to_le_bytes());
            buf.extend_from_slice(&record.oldest.to_le_bytes());
            buf.extend_from_slice(&checksum(record.bars, record.oldest, &payload).to_le_bytes());
            buf.extend_from_slice(&payload);
            added.push(record);
        }
        self.file.seek(SeekFrom::Start(self.end)).map_err(|e| self.error(e))?;
        if let Err(e) = self.file.write_all(&buf).and_then(|()| self.file.sync_data()) {
            // Leave no half record behind for the next append to follow.
            let _ = self.file.set_len(self.end);
            return Err(self.error(format!("cannot append: {e}")));
        }
        self.end += buf.len() as u64;
        for record in added {
            self.bars += record.bars as u64;
            self.records.push_back(record);
        }
        Ok(())
    }

    /// The oldest batch not yet written, if any.
    pub fn head(&mut self) -> Result<Option<Arc<[StoredBar]>>, JournalError> {
        if self.head.is_none() {
            let Some(&Record { len, .. }) = self.records.front() else { return Ok(None) };
            let mut record = vec![0u8; len as usize];
            self.file.seek(SeekFrom::Start(self.read_at)).map_err(|e| self.error(e))?;
            self.file.read_exact(&mut record).map_err(|e| self.error(format!("cannot read a record: {e}")))?;
            let bars: Vec<StoredBar> = serde_json::from_slice(&record[HEADER..])
                .map_err(|e| self.error(format!("a record does not decode: {e}")))?;
            self.head = Some(bars.into());
        }
        Ok(self.head.clone())
    }

    /// When the oldest journaled bar arrived (its `revised`).
    pub fn oldest(&self) -> Option<i64> {
        self.records.front().map(|r| r.oldest)
    }

    /// The head batch is in the store: forget it; empty the file once every batch is.
    pub fn pop(&mut self) -> Result<(), JournalError> {
        self.head = None;
        if let Some(record) = self.records.pop_front() {
            self.read_at += record.len;
            self.bars -= record.bars as u64;
        }
        if self.records.is_empty() && self.end > 0 {
            self.file
                .set_len(0)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| self.error(format!("cannot empty the journal: {e}")))?;
            self.read_at = 0;
            self.end = 0;
        }
        Ok(())
    }
}

fn checksum(bars: u32, oldest: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bars.to_le_bytes());
    hasher.update(&oldest.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The record at the start of `data`, if it is whole and its checksum holds.
fn whole_record(data: &[u8]) -> Option<Record> {
    let header: &[u8; HEADER] = data.get(..HEADER)?.try_into().ok()?;
    let u32_at = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (len, bars, crc) = (u32_at(0), u32_at(4), u32_at(16));
    let oldest = i64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14], header[15],
    ]);
    if len > MAX_RECORD {
        return None;
    }
    let payload = data.get(HEADER..HEADER + len as usize)?;
    (checksum(bars, oldest, payload) == crc).then_some(Record { len: (HEADER + len as usize) as u64, bars, oldest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bar, Interval};

    fn batch(from: i64, n: i64) -> Vec<StoredBar> {
        (from..from + n)
            .map(|i| StoredBar {
                bar: Bar::from_trade("BTCUSDT".into(), Interval::S1, i * 1000, 1.0 + i as f64, 0.5),
                source: "simulated".into(),
                revised: i,
            })
            .collect()
    }

    fn drain(j: &mut Journal) -> Vec<StoredBar> {
        let mut out = Vec::new();
        while let Some(head) = j.head().unwrap() {
            out.extend(head.iter().cloned());
            j.pop().unwrap();
        }
        out
    }

    #[test]
    fn batches_come_back_in_order_across_reopening_and_the_file_empties() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/j");
        {
            let (mut j, rec) = Journal::open(&path).unwrap();
            assert_eq!(rec, Recovered::default());
            assert_eq!(j.oldest(), None);
            j.append(&batch(0, 5), 2).unwrap();
            j.append(&batch(5, 3), 10).unwrap();
            assert_eq!((j.bars(), j.records.len()), (8, 4));
        }
        let (mut j, rec) = Journal::open(&path).unwrap();
        assert_eq!((rec.records, rec.bars, rec.torn_bytes), (4, 8, 0));
        assert_eq!(j.oldest(), Some(0), "the arrival of the oldest bar, known without reading it");
        assert_eq!(drain(&mut j), batch(0, 8));
        assert!(j.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied once drained");
        j.append(&batch(20, 1), 10).unwrap();
        assert_eq!(drain(&mut j), batch(20, 1), "usable again after emptying");
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_replays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let (mut j, _) = Journal::open(&path).unwrap();
            j.append(&batch(0, 3), 3).unwrap();
            j.append(&batch(3, 3), 3).unwrap();
        }
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second record's payload.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole - 7).unwrap();
        drop(file);
        let (mut j, rec) = Journal::open(&path).unwrap();
        assert_eq!((rec.records, rec.bars), (1, 3));
        assert!(rec.torn_bytes > 0);
        // New appends follow the last whole record, not the torn bytes.
        j.append(&batch(10, 2), 5).unwrap();
        drop(j);
        let (mut j, rec) = Journal::open(&path).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (2, 0));
        let mut expected = batch(0, 3);
        expected.extend(batch(10, 2));
        assert_eq!(drain(&mut j), expected);
    }

    #[test]
    fn a_flipped_byte_is_caught_by_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let (mut j, _) = Journal::open(&path).unwrap();
            j.append(&batch(0, 2), 2).unwrap();
            j.append(&batch(2, 2), 2).unwrap();
        }
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 3;
        data[last] ^= 0x20;
        std::fs::write(&path, &data).unwrap();
        let (mut j, rec) = Journal::open(&path).unwrap();
        assert_eq!(rec.records, 1);
        assert_eq!(drain(&mut j), batch(0, 2));
    }
}
