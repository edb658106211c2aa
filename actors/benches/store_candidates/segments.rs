//! (e) A purpose-built format: an append-only log plus immutable column segments, an index in memory.
//!
//! - **Write**: a batch is appended to `log` as one framed record (length, crc32, 69 bytes per bar) and
//!   fsynced; its bars go to a per-(symbol, interval) memtable (a BTreeMap by open time, so a correction of
//!   a bar still there replaces it at once).
//! - **Rotation**: once the log holds `rotate_at` bars, every memtable is written out as one new segment
//!   file (fsynced), per series in chunks of at most [`CHUNK`] bars, column by column: open times as
//!   varint deltas in a common unit (1 byte for regular bars), revisions as zigzag varint deltas, trades
//!   as varints, then the five f64 columns raw (prices bit-exact: 40 of the ~45 bytes a bar costs). A
//!   footer lists the chunks; the log is then truncated.
//! - **Corrections** of a bar already in a segment are appended like any bar and supersede it by open time
//!   (a newer segment wins over an older one). **Compaction on rotation**: when more than `max_segments`
//!   segments exist, all are merged into one (newest version of each bar only) and the old files deleted.
//! - **Index in memory**: per series, its chunks (segment, offset, length, first/last open time, newest
//!   revision). `newest` reads only the chunks that can hold one of the newest n bars, `since` only the
//!   chunks whose newest revision is at or after `since` (revisions rise with writes, so a chunk with older
//!   revisions cannot hold a newer version of a bar that qualifies).
//! - **Open** reads the segment footers and replays the log, cutting off a torn last record.
//!
//! Not built (it is a measurement of the format, not a product): retention (it would drop whole chunks, or
//! rewrite them in the next merge), size-tiered merging instead of merging everything, and concurrent
//! readers during a merge.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candlecast_actors::model::Interval;

use crate::workload::{Out, Rec};
use crate::Candidate;

/// Bars per chunk: reading the newest 5,000 decodes two chunks at most.
const CHUNK: usize = 4_096;
/// Bytes of one bar in the log: symbol u32, interval u8, open time i64, 5 × f64, trades u64, revised i64.
const LOG_BAR: usize = 4 + 1 + 8 + 40 + 8 + 8;
/// Bytes of one chunk's entry in a segment's footer.
const DIR_ENTRY: usize = 4 + 1 + 8 + 4 + 8 + 8 + 8;

#[derive(Debug, Clone, Copy)]
struct Val {
    px: [f64; 5],
    trades: u64,
    revised: i64,
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    seg: u32,
    offset: u64,
    len: u32,
    first: i64,
    last: i64,
    max_revised: i64,
}

/// (symbol id, interval index).
type SeriesKey = (u32, u8);

#[derive(Default)]
struct Series {
    mem: BTreeMap<i64, Val>,
    /// Oldest segment first; within a segment, ascending open times.
    chunks: Vec<Chunk>,
}

pub struct Segments {
    dir: PathBuf,
    log: File,
    log_bars: usize,
    rotate_at: usize,
    max_segments: usize,
    series: BTreeMap<SeriesKey, Series>,
    files: BTreeMap<u32, File>,
    next_seg: u32,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

/// Appends one chunk (ascending, distinct open times) to `out`, column by column.
fn encode(entries: &[(i64, Val)], out: &mut Vec<u8>) {
    put_varint(out, entries.len() as u64);
    let deltas: Vec<u64> = entries.windows(2).map(|w| (w[1].0 - w[0].0) as u64).collect();
    let unit = if deltas.iter().all(|d| d.is_multiple_of(1_000)) { 1_000 } else { 1 };
    put_varint(out, zigzag(entries[0].0));
    put_varint(out, unit);
    for d in deltas {
        put_varint(out, d / unit);
    }
    let mut prev = 0;
    for (_, v) in entries {
        put_varint(out, zigzag(v.revised - prev));
        prev = v.revised;
    }
    for (_, v) in entries {
        put_varint(out, v.trades);
    }
    for col in 0..5 {
        for (_, v) in entries {
            out.extend_from_slice(&v.px[col].to_le_bytes());
        }
    }
}

fn decode(b: &[u8]) -> Vec<(i64, Val)> {
    let mut at = 0;
    let n = varint(b, &mut at) as usize;
    let mut t = unzigzag(varint(b, &mut at));
    let unit = varint(b, &mut at) as i64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            t += varint(b, &mut at) as i64 * unit;
        }
        out.push((t, Val { px: [0.0; 5], trades: 0, revised: 0 }));
    }
    let mut revised = 0;
    for e in out.iter_mut() {
        revised += unzigzag(varint(b, &mut at));
        e.1.revised = revised;
    }
    for e in out.iter_mut() {
        e.1.trades = varint(b, &mut at);
    }
    for col in 0..5 {
        for e in out.iter_mut() {
            e.1.px[col] = f64::from_le_bytes(b[at..at + 8].try_into().unwrap());
            at += 8;
        }
    }
    out
}

fn out(t: i64, v: &Val) -> Out {
    Out { t, px: v.px.map(f64::to_bits), trades: v.trades }
}

impl Segments {
    pub fn open(dir: &Path, rotate_at: usize, max_segments: usize) -> Segments {
        let mut log = OpenOptions::new().read(true).append(true).create(true).open(dir.join("log")).unwrap();
        let mut s = Segments {
            dir: dir.to_owned(),
            log: log.try_clone().unwrap(),
            log_bars: 0,
            rotate_at,
            max_segments,
            series: BTreeMap::new(),
            files: BTreeMap::new(),
            next_seg: 0,
        };
        let mut ids: Vec<u32> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        ids.sort_unstable();
        for id in ids {
            s.load_segment(id);
            s.next_seg = id + 1;
        }
        let mut bytes = Vec::new();
        log.seek(SeekFrom::Start(0)).unwrap();
        log.read_to_end(&mut bytes).unwrap();
        let good = s.replay(&bytes);
        if good < bytes.len() {
            // A batch torn by a crash was never acknowledged: cut it off.
            log.set_len(good as u64).unwrap();
        }
        s
    }

    fn load_segment(&mut self, id: u32) {
        let file = File::open(segment_path(&self.dir, id)).unwrap();
        let len = file.metadata().unwrap().len();
        let mut tail = [0u8; 8];
        file.read_exact_at(&mut tail, len - 8).unwrap();
        let dir_at = u64::from_le_bytes(tail);
        let mut entries = vec![0u8; (len - 8 - dir_at) as usize];
        file.read_exact_at(&mut entries, dir_at).unwrap();
        for e in entries.chunks_exact(DIR_ENTRY) {
            let int = |a: usize, b: usize| -> u64 {
                let mut w = [0u8; 8];
                w[..b - a].copy_from_slice(&e[a..b]);
                u64::from_le_bytes(w)
            };
            let key = (int(0, 4) as u32, e[4]);
            let chunk = Chunk {
                seg: id,
                offset: int(5, 13),
                len: int(13, 17) as u32,
                first: int(17, 25) as i64,
                last: int(25, 33) as i64,
                max_revised: int(33, 41) as i64,
            };
            self.series.entry(key).or_default().chunks.push(chunk);
        }
        self.files.insert(id, file);
    }

    /// Applies the log's whole records; returns the length of its valid prefix.
    fn replay(&mut self, bytes: &[u8]) -> usize {
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            let Some(body) = bytes.get(at + 8..at + 8 + len) else { break };
            if crc32fast::hash(body) != crc || !len.is_multiple_of(LOG_BAR) {
                break;
            }
            for r in body.chunks_exact(LOG_BAR) {
                let word = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap());
                let key = (u32::from_le_bytes(r[..4].try_into().unwrap()), r[4]);
                let px = [word(13), word(21), word(29), word(37), word(45)].map(f64::from_bits);
                let v = Val { px, trades: word(53), revised: word(61) as i64 };
                self.series.entry(key).or_default().mem.insert(word(5) as i64, v);
                self.log_bars += 1;
            }
            at += 8 + len;
        }
        at
    }

    /// Writes `chunks` of each series as segment `id`; returns each series' new chunk entries.
    fn write_segment(&self, id: u32, data: Vec<(SeriesKey, Vec<(i64, Val)>)>) -> Vec<(SeriesKey, Vec<Chunk>)> {
        let (mut body, mut footer, mut index) = (Vec::new(), Vec::new(), Vec::new());
        for (key, entries) in data {
            let mut chunks = Vec::new();
            for part in entries.chunks(CHUNK) {
                let offset = body.len() as u64;
                encode(part, &mut body);
                let max_revised = part.iter().map(|e| e.1.revised).max().unwrap_or(i64::MIN);
                let c = Chunk {
                    seg: id,
                    offset,
                    len: (body.len() as u64 - offset) as u32,
                    first: part[0].0,
                    last: part[part.len() - 1].0,
                    max_revised,
                };
                footer.extend_from_slice(&key.0.to_le_bytes());
                footer.push(key.1);
                footer.extend_from_slice(&c.offset.to_le_bytes());
                footer.extend_from_slice(&c.len.to_le_bytes());
                for w in [c.first, c.last, c.max_revised] {
                    footer.extend_from_slice(&w.to_le_bytes());
                }
                chunks.push(c);
            }
            index.push((key, chunks));
        }
        let dir_at = body.len() as u64;
        body.extend_from_slice(&footer);
        body.extend_from_slice(&dir_at.to_le_bytes());
        let path = segment_path(&self.dir, id);
        let mut file = File::create(&path).unwrap();
        file.write_all(&body).unwrap();
        file.sync_all().unwrap();
        File::open(&self.dir).unwrap().sync_all().unwrap();
        index
    }

    /// Every memtable out as a new segment; the log emptied; a merge if there are too many segments.
    fn rotate(&mut self) {
        let data: Vec<_> = self
            .series
            .iter_mut()
            .filter(|(_, s)| !s.mem.is_empty())
            .map(|(k, s)| (*k, std::mem::take(&mut s.mem).into_iter().collect()))
            .collect();
        if !data.is_empty() {
            let id = self.next_seg;
            self.next_seg += 1;
            for (key, chunks) in self.write_segment(id, data) {
                self.series.entry(key).or_default().chunks.extend(chunks);
            }
            self.files.insert(id, File::open(segment_path(&self.dir, id)).unwrap());
        }
        self.log.set_len(0).unwrap();
        self.log.sync_all().unwrap();
        self.log_bars = 0;
        if self.files.len() > self.max_segments {
            self.merge();
        }
    }

    fn read_chunk(&self, c: &Chunk) -> Vec<(i64, Val)> {
        let mut buf = vec![0u8; c.len as usize];
        self.files[&c.seg].read_exact_at(&mut buf, c.offset).unwrap();
        decode(&buf)
    }

    /// All segments into one: each bar's newest version only. The memtables are empty (just rotated).
    fn merge(&mut self) {
        let data: Vec<_> = self
            .series
            .iter()
            .map(|(k, s)| {
                let mut all = BTreeMap::new();
                for c in &s.chunks {
                    all.extend(self.read_chunk(c)); // later chunks are newer: their versions win
                }
                (*k, all.into_iter().collect::<Vec<_>>())
            })
            .collect();
        let id = self.next_seg;
        self.next_seg += 1;
        let index = self.write_segment(id, data);
        for (key, chunks) in index {
            self.series.entry(key).or_default().chunks = chunks;
        }
        let old: Vec<u32> = self.files.keys().copied().collect();
        self.files.clear();
        for seg in old {
            std::fs::remove_file(segment_path(&self.dir, seg)).unwrap();
        }
        self.files.insert(id, File::open(segment_path(&self.dir, id)).unwrap());
    }
}

impl Candidate for Segments {
    fn write(&mut self, batch: &[Rec]) {
        let mut frame = vec![0u8; 8];
        for r in batch {
            frame.extend_from_slice(&r.sym.to_le_bytes());
            frame.push(r.iv.index() as u8);
            frame.extend_from_slice(&r.t.to_le_bytes());
            for p in r.px {
                frame.extend_from_slice(&p.to_le_bytes());
            }
            frame.extend_from_slice(&r.trades.to_le_bytes());
            frame.extend_from_slice(&r.revised.to_le_bytes());
        }
        let crc = crc32fast::hash(&frame[8..]);
        let len = (frame.len() - 8) as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        self.log.write_all(&frame).unwrap();
        self.log.sync_data().unwrap();
        for r in batch {
            let v = Val { px: r.px, trades: r.trades, revised: r.revised };
            self.series.entry((r.sym, r.iv.index() as u8)).or_default().mem.insert(r.t, v);
        }
        self.log_bars += batch.len();
        if self.log_bars >= self.rotate_at {
            self.rotate();
        }
    }

    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out> {
        let Some(s) = self.series.get(&(sym, iv.index() as u8)) else { return Vec::new() };
        let mut got: BTreeMap<i64, Val> = s.mem.iter().rev().take(n).map(|(t, v)| (*t, *v)).collect();
        for c in s.chunks.iter().rev() {
            // A chunk whose bars are all older than the newest n found so far cannot add one.
            if got.len() >= n && got.keys().nth_back(n - 1).is_some_and(|&t| c.last < t) {
                continue;
            }
            for (t, v) in self.read_chunk(c) {
                got.entry(t).or_insert(v); // what came from a newer source stays
            }
            while got.len() > n {
                got.pop_first();
            }
        }
        got.iter().map(|(t, v)| out(*t, v)).collect()
    }

    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out> {
        let Some(s) = self.series.get(&(sym, iv.index() as u8)) else { return Vec::new() };
        let mut got: BTreeMap<i64, Val> = s.mem.iter().map(|(t, v)| (*t, *v)).collect();
        for c in s.chunks.iter().rev().filter(|c| c.max_revised >= since) {
            for (t, v) in self.read_chunk(c) {
                got.entry(t).or_insert(v);
            }
        }
        let hits: Vec<Out> = got.iter().filter(|(_, v)| v.revised >= since).map(|(t, v)| out(*t, v)).collect();
        hits[hits.len().saturating_sub(limit)..].to_vec()
    }

    /// The memtables rotated out, then every segment merged into one.
    fn compact(&mut self) -> bool {
        self.rotate();
        if self.files.len() > 1 {
            self.merge();
        }
        true
    }
}
