//! The index in memory, and the two reads: the newest bars of a range and `since=`.
//!
//! Per series (symbol id, interval), its chunks ordered by segment rank (write order) and then time, with
//! each chunk's first/last open time, bar count and newest revision; and per series the retention floor
//! (bars opened before it are deleted). The index is immutable: the writer builds a new one on rotation,
//! merge and expiry and swaps the `Arc`, so a reader works on the snapshot it took, with the segment files
//! of that snapshot held open by their `Arc`s.
//!
//! Precedence: the memtable's version of a bar wins over any segment's, a higher rank's over a lower's.
//! Revisions never go down from one write to the next (the store stamps them so), so a chunk whose newest
//! revision is before `since` cannot hold the current version of a bar revised since.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::segment::SegmentFile;
use crate::persist::StoreError;

/// (symbol id, interval index).
pub(super) type SeriesKey = (u32, u8);

/// A bar without its key: what a chunk or the memtable holds per open time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Val {
    /// open, high, low, close, volume.
    pub px: [f64; 5],
    pub trades: u64,
    pub revised: i64,
}

/// One chunk of one series in one segment.
#[derive(Debug, Clone)]
pub(super) struct ChunkRef {
    pub seg: Arc<SegmentFile>,
    pub offset: u64,
    pub len: u32,
    pub count: u32,
    /// Bars at or after the series' floor (`count` unless retention cut into the chunk).
    pub visible: u32,
    pub first: i64,
    pub last: i64,
    pub max_revised: i64,
    pub crc: u32,
}

impl ChunkRef {
    pub fn read(&self) -> Result<Vec<(i64, Val)>, StoreError> {
        self.seg.read(self)
    }
}

/// Chunks of one series, oldest rank first.
pub(super) type Chunks = Arc<Vec<ChunkRef>>;

#[derive(Clone, Default)]
pub(super) struct Index {
    pub series: HashMap<SeriesKey, Chunks>,
    /// Retention: bars of a series opened before its floor are deleted.
    pub floors: Arc<HashMap<SeriesKey, i64>>,
}

impl Index {
    pub fn floor(&self, key: SeriesKey) -> i64 {
        self.floors.get(&key).copied().unwrap_or(i64::MIN)
    }
}

/// What a read took from the memtable under its short lock.
pub(super) type MemPart = BTreeMap<i64, Val>;

/// The newest `limit` bars opened in `[start, end)`, ascending.
pub(super) fn newest(
    index: &Index,
    key: SeriesKey,
    mem: MemPart,
    start: i64,
    end: i64,
    limit: usize,
) -> Result<Vec<(i64, Val)>, StoreError> {
    let start = start.max(index.floor(key));
    let mut got = mem;
    got.retain(|t, _| *t >= start && *t < end);
    trim_oldest(&mut got, limit);
    if limit == 0 || start >= end {
        return Ok(Vec::new());
    }
    if let Some(chunks) = index.series.get(&key) {
        for c in chunks.iter().rev() {
            if c.last < start || c.first >= end {
                continue;
            }
            // A chunk whose bars are all older than the newest `limit` found so far cannot add one.
            if got.len() >= limit && got.keys().next().is_some_and(|&oldest| c.last < oldest) {
                continue;
            }
            for (t, v) in c.read()? {
                if t >= start && t < end {
                    got.entry(t).or_insert(v); // a newer source's version stays
                }
            }
            trim_oldest(&mut got, limit);
        }
    }
    Ok(got.into_iter().collect())
}

/// Bars revised at or after `since`, ascending; the newest `limit`.
pub(super) fn since(
    index: &Index,
    key: SeriesKey,
    mem: MemPart,
    since: i64,
    limit: usize,
) -> Result<Vec<(i64, Val)>, StoreError> {
    let floor = index.floor(key);
    let mut got = mem;
    got.retain(|t, _| *t >= floor);
    if let Some(chunks) = index.series.get(&key) {
        for c in chunks.iter().rev().filter(|c| c.max_revised >= since && c.last >= floor) {
            for (t, v) in c.read()? {
                if t >= floor {
                    got.entry(t).or_insert(v);
                }
            }
        }
    }
    let mut hits: Vec<(i64, Val)> = got.into_iter().filter(|(_, v)| v.revised >= since).collect();
    if hits.len() > limit {
        hits.drain(..hits.len() - limit);
    }
    Ok(hits)
}

fn trim_oldest(got: &mut MemPart, limit: usize) {
    while got.len() > limit {
        got.pop_first();
    }
}
