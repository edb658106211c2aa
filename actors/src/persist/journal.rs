//! The journal: an append-only file of batches the store has not taken yet, read back in order.
//!
//! A record is `magic: 4 bytes | length: u32 LE | bars: u32 LE | oldest: i64 LE | crc32: u32 LE | payload`,
//! the payload being the batch as JSON, `oldest` its earliest `revised` time (for the write lag, without
//! decoding), and the checksum covering length, `bars`, `oldest` and the payload. Records are written
//! whole and then fsynced (`append` returns after `sync_data`), so once a batch is in the journal a crash
//! or power loss does not take it.
//!
//! Damage loses only what is damaged:
//! - A record whose checksum fails (a flipped bit, a torn write, zeroes after a power loss) is skipped, and
//!   reading resumes at the next magic that starts a record whose checksum holds. The magic alone is not
//!   trusted: a false one inside a payload would also need a matching CRC-32.
//! - Bytes after the last good record (a crash *during* an append) are cut off at open; that batch was
//!   never reported as journaled, so nothing acknowledged is lost.
//! - A record whose checksum holds but one of whose bars does not decode, or breaks the OHLCV invariants
//!   (a journal of an older version that wrote `inf` as `null`), gives up that bar alone: it is handed to
//!   the dead letters ([`Journal::take_damaged`]) and the rest of the batch goes on.
//!
//! Nothing is read whole: [`Journal::open`] streams the file once to count, and afterwards only the
//! record at the head is in memory. The file never grows beyond `max_bytes` (`[store] journal_max_bytes`):
//! an append that would cross it is refused with [`JournalError::Full`] and keeps nothing.
//!
//! Journals of the first format (the same header without the magic, checksum without the length) are
//! migrated at open: their whole records are rewritten in this format (to a new file, renamed over the
//! old one). That format cannot resynchronise, so bytes from its first bad record on are kept aside in
//! `<journal>.unreadable-<ms>` for a human, not deleted.
//!
//! Batches leave the journal in the order they entered: [`Journal::head`] is the oldest one not yet
//! written, [`Journal::pop`] marks it written, and when the last one is popped the file is emptied.
//! A crash between a store write and `pop` writes that batch again at the next start, which the store's
//! upsert makes harmless.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoredBar;

/// Starts every record. As a little-endian u32 it is above [`MAX_RECORD`], so no file of the first
/// format (whose records start with their length) starts with it.
const MAGIC: [u8; 4] = [0xF7, b'C', b'J', b'2'];
const HEADER: usize = 24;
/// A record larger than this is corruption, not a batch; `append` splits batches to stay under it.
const MAX_RECORD: u32 = 64 * 1024 * 1024;
/// A lower bound of one bar's JSON (its field names alone take more).
const MIN_BAR_BYTES: u64 = 100;
/// The first format: `length | bars | oldest | crc32` (crc over bars, oldest and payload).
const V1_HEADER: usize = 20;

/// The journal file could not be used, or would grow beyond its cap.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("journal {path} is full: {bytes} bytes, another {adding} would cross store.journal_max_bytes = {max}")]
    Full { path: PathBuf, bytes: u64, adding: u64, max: u64 },
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub records: u64,
    pub bars: u64,
    /// Bytes after the last good record that were cut off (a torn last append).
    pub torn_bytes: u64,
    /// Bytes between good records that were skipped (damage in the middle).
    pub damaged_bytes: u64,
    /// The file was in the first format and was rewritten in this one.
    pub migrated: bool,
}

/// What the journal knows of a record without decoding its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    /// Offset of its magic.
    at: u64,
    /// Header and payload, in bytes.
    len: u64,
    bars: u32,
    /// The earliest `revised` of its bars.
    oldest: i64,
}

impl Record {
    fn end(&self) -> u64 {
        self.at + self.len
    }
}

/// A journaled bar that cannot be written back: kept for the dead letters with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedBar {
    /// The bar as it was read (JSON), or the record's text when the record itself does not decode.
    pub bar: serde_json::Value,
    pub reason: String,
}

/// See the module documentation.
pub struct Journal {
    path: PathBuf,
    file: File,
    max_bytes: u64,
    /// Offset of the oldest unwritten record (or of damage before it), and of the end of the file.
    read_at: u64,
    end: u64,
    /// Unwritten records and their bars, counted from their headers.
    records: u64,
    bars: u64,
    /// The oldest unwritten record, found and checked.
    front: Option<Record>,
    /// The front record decoded, kept until it is popped.
    head: Option<Arc<[StoredBar]>>,
    /// Bars of decoded records that cannot be written back, for the dead letters.
    damaged: Vec<DamagedBar>,
}

impl Journal {
    /// Opens (or creates) the journal: migrates a first-format file, keeps every good record, skips
    /// damage between them and cuts off a torn tail. `max_bytes` caps the file's size.
    pub fn open(path: &Path, max_bytes: u64) -> Result<(Journal, Recovered), JournalError> {
        let err = |message: String| JournalError::Io { path: path.to_owned(), message };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create its directory: {e}")))?;
        }
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| err(e.to_string()))
        };
        let mut file = open()?;
        let migrated = is_first_format(&mut file).map_err(|e| err(e.to_string()))?;
        if migrated {
            drop(file);
            migrate(path).map_err(|e| err(format!("cannot migrate a journal of the first format: {e}")))?;
            file = open()?;
        }
        let end = file.metadata().map_err(|e| err(e.to_string()))?.len();
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            max_bytes,
            read_at: 0,
            end,
            records: 0,
            bars: 0,
            front: None,
            head: None,
            damaged: Vec::new(),
        };
        let mut recovered = Recovered { migrated, ..Recovered::default() };
        let mut at = 0;
        while let Some(record) = journal.next_record(at)? {
            recovered.damaged_bytes += record.at - at;
            journal.front.get_or_insert(record);
            journal.records += 1;
            journal.bars += record.bars as u64;
            at = record.end();
        }
        journal.read_at = journal.front.map_or(at, |r| r.at);
        recovered.torn_bytes = end - at;
        recovered.records = journal.records;
        recovered.bars = journal.bars;
        if recovered.torn_bytes > 0 {
            journal
                .file
                .set_len(at)
                .and_then(|()| journal.file.sync_data())
                .map_err(|e| err(format!("cannot cut the torn last record: {e}")))?;
            journal.end = at;
        }
        if journal.records == 0 && journal.end > 0 {
            // Only damage: nothing to replay, and nothing worth keeping in the way of new appends.
            journal.empty()?;
        }
        Ok((journal, recovered))
    }

    /// Bars in the journal not yet written to the store.
    pub fn bars(&self) -> u64 {
        self.bars
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Size of the file, in bytes.
    pub fn bytes(&self) -> u64 {
        self.end
    }

    /// The cap on [`Journal::bytes`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn error(&self, message: impl std::fmt::Display) -> JournalError {
        JournalError::Io { path: self.path.clone(), message: message.to_string() }
    }

    /// Appends `bars` as records of at most `per_record` bars each, then fsyncs. Returns once durable.
    /// Refuses (keeping nothing) what would cross `max_bytes`, and any bar that could not be read back.
    pub fn append(&mut self, bars: &[StoredBar], per_record: usize) -> Result<(), JournalError> {
        if bars.is_empty() {
            return Ok(());
        }
        if let Some((bar, reason)) = bars.iter().find_map(|b| b.bar.invalid_reason().map(|r| (b, r))) {
            // The persister never hands such a bar over; if it did, writing it would poison the journal.
            return Err(self.error(format!(
                "refused to journal {} {} at {}: {reason}",
                bar.bar.symbol, bar.bar.interval, bar.bar.open_time
            )));
        }
        // Every bar encodes to more than MIN_BAR_BYTES: at the cap, refuse without encoding (the persister
        // offers its whole buffer again at every tick while the store is down).
        let at_least = bars.len() as u64 * MIN_BAR_BYTES;
        if self.end + at_least > self.max_bytes {
            return Err(JournalError::Full {
                path: self.path.clone(),
                bytes: self.end,
                adding: at_least,
                max: self.max_bytes,
            });
        }
        let mut buf = Vec::new();
        let mut added = Vec::new();
        let mut pending: Vec<&[StoredBar]> = bars.chunks(per_record.max(1)).rev().collect();
        while let Some(chunk) = pending.pop() {
            let payload = serde_json::to_vec(chunk).map_err(|e| self.error(format!("cannot encode a batch: {e}")))?;
            if payload.len() > MAX_RECORD as usize && chunk.len() > 1 {
                let (a, b) = chunk.split_at(chunk.len() / 2);
                pending.extend([b, a]);
                continue;
            }
            let record = Record {
                at: self.end + buf.len() as u64,
                len: (HEADER + payload.len()) as u64,
                bars: chunk.len() as u32,
                oldest: chunk.iter().map(|b| b.revised).min().unwrap_or(0),
            };
            buf.extend_from_slice(&MAGIC);
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&record.bars.to_le_bytes());
            buf.extend_from_slice(&record.oldest.to_le_bytes());
            buf.extend_from_slice(&checksum(payload.len() as u32, record.bars, record.oldest, &payload).to_le_bytes());
            buf.extend_from_slice(&payload);
            added.push(record);
        }
        let adding = buf.len() as u64;
        if self.end + adding > self.max_bytes {
            return Err(JournalError::Full { path: self.path.clone(), bytes: self.end, adding, max: self.max_bytes });
        }
        self.file.seek(SeekFrom::Start(self.end)).map_err(|e| self.error(e))?;
        if let Err(e) = self.file.write_all(&buf).and_then(|()| self.file.sync_data()) {
            // Leave no half record behind for the next append to follow.
            let _ = self.file.set_len(self.end);
            return Err(self.error(format!("cannot append: {e}")));
        }
        self.end += adding;
        if self.front.is_none() {
            self.front = added.first().copied();
            self.read_at = self.front.map_or(self.end, |r| r.at);
        }
        for record in added {
            self.bars += record.bars as u64;
            self.records += 1;
        }
        Ok(())
    }

    /// The oldest batch not yet written, if any. Bars of it that cannot be written back are left out
    /// (see [`Journal::take_damaged`]); a record left with none is popped and the next one read.
    pub fn head(&mut self) -> Result<Option<Arc<[StoredBar]>>, JournalError> {
        while self.head.is_none() {
            let Some(record) = self.front else { return Ok(None) };
            let payload = self.read_payload(&record).map_err(|e| self.error(format!("cannot read a record: {e}")))?;
            let bars = self.decode(&payload);
            if bars.is_empty() {
                self.pop()?;
            } else {
                self.head = Some(bars.into());
            }
        }
        Ok(self.head.clone())
    }

    /// Bars found damaged since the last call, with the reason each cannot be written back.
    pub fn take_damaged(&mut self) -> Vec<DamagedBar> {
        std::mem::take(&mut self.damaged)
    }

    /// The bars of a record's payload that can be written back; the others go to `damaged`.
    fn decode(&mut self, payload: &[u8]) -> Vec<StoredBar> {
        let values: Vec<serde_json::Value> = match serde_json::from_slice(payload) {
            Ok(values) => values,
            Err(e) => {
                let text = String::from_utf8_lossy(payload).into_owned();
                self.damaged
                    .push(DamagedBar { bar: text.into(), reason: format!("journal record does not decode: {e}") });
                return Vec::new();
            }
        };
        let mut bars = Vec::with_capacity(values.len());
        for value in values {
            match serde_json::from_value::<StoredBar>(value.clone()) {
                Ok(bar) => match bar.bar.invalid_reason() {
                    None => bars.push(bar),
                    Some(reason) => {
                        self.damaged.push(DamagedBar { bar: value, reason: format!("journaled bar: {reason}") })
                    }
                },
                Err(e) => {
                    self.damaged.push(DamagedBar { bar: value, reason: format!("journaled bar does not decode: {e}") })
                }
            }
        }
        bars
    }

    /// When the oldest journaled bar arrived (its `revised`).
    pub fn oldest(&self) -> Option<i64> {
        self.front.map(|r| r.oldest)
    }

    /// The head batch is in the store: forget it; empty the file once every batch is.
    pub fn pop(&mut self) -> Result<(), JournalError> {
        self.head = None;
        let Some(record) = self.front.take() else { return Ok(()) };
        self.records = self.records.saturating_sub(1);
        self.bars = self.bars.saturating_sub(record.bars as u64);
        self.read_at = record.end();
        if self.records > 0 {
            self.front = self.next_record(self.read_at)?;
        }
        if self.front.is_none() {
            self.empty()?;
        }
        Ok(())
    }

    fn empty(&mut self) -> Result<(), JournalError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.error(format!("cannot empty the journal: {e}")))?;
        (self.read_at, self.end, self.records, self.bars, self.front) = (0, 0, 0, 0, None);
        Ok(())
    }

    /// The first good record at or after `from`, skipping damage; `None` when none is left.
    fn next_record(&mut self, from: u64) -> Result<Option<Record>, JournalError> {
        let mut at = from;
        while at + HEADER as u64 <= self.end {
            if let Some(record) = self.record_at(at).map_err(|e| self.error(format!("cannot read a record: {e}")))? {
                return Ok(Some(record));
            }
            match self.find_magic(at + 1).map_err(|e| self.error(format!("cannot read: {e}")))? {
                Some(next) => at = next,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The record starting at `at`, if its header is one and its checksum holds.
    fn record_at(&mut self, at: u64) -> std::io::Result<Option<Record>> {
        let mut header = [0u8; HEADER];
        self.file.seek(SeekFrom::Start(at))?;
        self.file.read_exact(&mut header)?;
        if header[..4] != MAGIC {
            return Ok(None);
        }
        let u32_at = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (len, bars, crc) = (u32_at(4), u32_at(8), u32_at(20));
        let mut oldest = [0u8; 8];
        oldest.copy_from_slice(&header[12..20]);
        let oldest = i64::from_le_bytes(oldest);
        let record = Record { at, len: HEADER as u64 + len as u64, bars, oldest };
        if len > MAX_RECORD || record.end() > self.end {
            return Ok(None);
        }
        let payload = self.read_payload(&record)?;
        Ok((checksum(len, bars, oldest, &payload) == crc).then_some(record))
    }

    fn read_payload(&mut self, record: &Record) -> std::io::Result<Vec<u8>> {
        let mut payload = vec![0u8; (record.len - HEADER as u64) as usize];
        self.file.seek(SeekFrom::Start(record.at + HEADER as u64))?;
        self.file.read_exact(&mut payload)?;
        Ok(payload)
    }

    /// Offset of the next [`MAGIC`] at or after `from`, reading a window at a time.
    fn find_magic(&mut self, from: u64) -> std::io::Result<Option<u64>> {
        const WINDOW: usize = 64 * 1024;
        let mut buf = vec![0u8; WINDOW];
        let mut at = from;
        while at + MAGIC.len() as u64 <= self.end {
            let n = ((self.end - at) as usize).min(WINDOW);
            self.file.seek(SeekFrom::Start(at))?;
            self.file.read_exact(&mut buf[..n])?;
            if let Some(i) = buf[..n].windows(MAGIC.len()).position(|w| w == MAGIC) {
                return Ok(Some(at + i as u64));
            }
            // The magic may straddle two windows: the next starts 3 bytes before this one's end.
            if n < WINDOW {
                return Ok(None);
            }
            at += (n - (MAGIC.len() - 1)) as u64;
        }
        Ok(None)
    }
}

fn checksum(len: u32, bars: u32, oldest: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&bars.to_le_bytes());
    hasher.update(&oldest.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Whether `file` is a journal of the first format: not empty, not starting with [`MAGIC`], and its first
/// record whole (anything else is a journal of this format whose start is damaged).
fn is_first_format(file: &mut File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len < V1_HEADER as u64 {
        return Ok(false);
    }
    let mut reader = BufReader::new(&mut *file);
    reader.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic)?;
    if magic == MAGIC {
        return Ok(false);
    }
    reader.seek(SeekFrom::Start(0))?;
    Ok(v1_record(&mut reader, len)?.is_some())
}

/// Reads the first-format record at the reader's position: (bars, oldest, payload) if whole and checked.
fn v1_record(reader: &mut impl Read, remaining: u64) -> std::io::Result<Option<(u32, i64, Vec<u8>)>> {
    let mut header = [0u8; V1_HEADER];
    if remaining < V1_HEADER as u64 {
        return Ok(None);
    }
    reader.read_exact(&mut header)?;
    let u32_at = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (len, bars, crc) = (u32_at(0), u32_at(4), u32_at(16));
    let mut oldest = [0u8; 8];
    oldest.copy_from_slice(&header[8..16]);
    let oldest = i64::from_le_bytes(oldest);
    if len > MAX_RECORD || V1_HEADER as u64 + len as u64 > remaining {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bars.to_le_bytes());
    hasher.update(&oldest.to_le_bytes());
    hasher.update(&payload);
    Ok((hasher.finalize() == crc).then_some((bars, oldest, payload)))
}

/// Rewrites a first-format journal in this format, streaming; see the module documentation.
fn migrate(path: &Path) -> std::io::Result<()> {
    let mut old = File::open(path)?;
    let len = old.metadata()?.len();
    let next = path.with_extension("migrating");
    let mut out = BufWriter::new(File::create(&next)?);
    let mut reader = BufReader::new(&mut old);
    let mut at = 0u64;
    while let Some((bars, oldest, payload)) = v1_record(&mut reader, len - at)? {
        out.write_all(&MAGIC)?;
        out.write_all(&(payload.len() as u32).to_le_bytes())?;
        out.write_all(&bars.to_le_bytes())?;
        out.write_all(&oldest.to_le_bytes())?;
        out.write_all(&checksum(payload.len() as u32, bars, oldest, &payload).to_le_bytes())?;
        out.write_all(&payload)?;
        at += (V1_HEADER + payload.len()) as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    if at < len {
        let aside = PathBuf::from(format!("{}.unreadable-{}", path.display(), crate::model::now_ms()));
        let mut rest = File::create(&aside)?;
        old.seek(SeekFrom::Start(at))?;
        std::io::copy(&mut old, &mut rest)?;
        rest.sync_all()?;
        tracing::warn!(path = %aside.display(), bytes = len - at, "a journal of the first format was damaged from here on; kept aside");
    }
    std::fs::rename(&next, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable only once the directory is.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
