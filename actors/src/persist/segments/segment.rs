//! Segment files: immutable, written once (to a `.tmp` name, fsynced, renamed), read by chunk.
//!
//! Layout: the chunks, then a footer, then `footer length u32`, `footer crc32 u32` and the magic
//! `CCSEG001`. The footer holds the segment's rank (its place in write order: a higher rank's version of
//! a bar wins), the ids of the segments a merge made it from (open deletes them if a crash left them),
//! and one entry per chunk. A chunk holds ≤ [`CHUNK`] bars of one series, column by column: open times as
//! varint deltas in a common unit (1 byte for regular bars), revisions as zigzag varint deltas, trades as
//! varints, then the five f64 columns raw (prices bit-exact). Each chunk has its own crc32 in the footer.
//!
//! Everything read back is checked: a segment that does not parse is a [`StoreError`], never a panic.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::index::{ChunkRef, SeriesKey, Val};
use crate::persist::StoreError;

/// Bars per chunk: reading the newest 5,000 decodes two chunks at most.
pub(super) const CHUNK: usize = 4_096;
const MAGIC: &[u8; 8] = b"CCSEG001";
/// One chunk's footer entry: symbol u32, interval u8, offset u64, length u32, bars u32, first, last and
/// newest revision i64, crc u32.
const ENTRY: usize = 4 + 1 + 8 + 4 + 4 + 8 + 8 + 8 + 4;
/// A footer larger than this is not one of ours (1 M chunks = 4 G bars).
const MAX_FOOTER: u64 = 64 << 20;

pub(super) fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

/// The id of a `NNNNNNNN.seg` file name.
pub(super) fn segment_id(name: &str) -> Option<u32> {
    name.strip_suffix(".seg")?.parse().ok()
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("segment {} is corrupt: {what}", path.display()))
}

/// An open segment file. Chunks hold it by `Arc`: once a merge or retention made it obsolete, the file
/// is deleted when the last reader lets go of it.
#[derive(Debug)]
pub(super) struct SegmentFile {
    pub id: u32,
    pub rank: u64,
    pub bytes: u64,
    path: PathBuf,
    file: File,
    obsolete: AtomicBool,
}

impl SegmentFile {
    /// Deletes the file once nothing refers to it any more.
    pub fn retire(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// A chunk's bars, ascending by open time, after checking its crc.
    pub fn read(&self, c: &ChunkRef) -> Result<Vec<(i64, Val)>, StoreError> {
        let mut buf = vec![0u8; c.len as usize];
        self.file
            .read_exact_at(&mut buf, c.offset)
            .map_err(|e| StoreError::Storage(format!("reading {}: {e}", self.path.display())))?;
        if crc32fast::hash(&buf) != c.crc {
            return Err(corrupt(&self.path, format_args!("chunk at {} fails its checksum", c.offset)));
        }
        let bars =
            decode(&buf).ok_or_else(|| corrupt(&self.path, format_args!("chunk at {} does not parse", c.offset)))?;
        if bars.len() != c.count as usize {
            return Err(corrupt(&self.path, format_args!("chunk at {} holds a wrong number of bars", c.offset)));
        }
        Ok(bars)
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot delete a merged segment");
            }
        }
    }
}

/// A chunk as the footer lists it, before it is tied to its open file.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkMeta {
    pub key: SeriesKey,
    pub offset: u64,
    pub len: u32,
    pub count: u32,
    pub first: i64,
    pub last: i64,
    pub max_revised: i64,
    pub crc: u32,
}

/// What a segment's footer says.
pub(super) struct Loaded {
    pub file: SegmentFile,
    pub replaces: Vec<u32>,
    pub chunks: Vec<ChunkMeta>,
}

/// Writes one segment, series by series (each series' bars ascending); memory holds one series at a time.
pub(super) struct SegmentWriter {
    dir: PathBuf,
    id: u32,
    tmp: PathBuf,
    /// `None` once finished.
    file: Option<std::io::BufWriter<File>>,
    offset: u64,
    chunks: Vec<ChunkMeta>,
    finished: bool,
}

impl Drop for SegmentWriter {
    /// A segment given up half way (an error, a full disk) leaves no `.tmp` file behind.
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl SegmentWriter {
    pub fn create(dir: &Path, id: u32) -> Result<SegmentWriter, StoreError> {
        let tmp = dir.join(format!("{id:08}.seg.tmp"));
        let file = File::create(&tmp).map_err(|e| StoreError::Storage(format!("{}: {e}", tmp.display())))?;
        Ok(SegmentWriter {
            dir: dir.to_owned(),
            id,
            tmp,
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            offset: 0,
            chunks: Vec::new(),
            finished: false,
        })
    }

    fn io(&self, e: std::io::Error) -> StoreError {
        StoreError::Storage(format!("writing {}: {e}", self.tmp.display()))
    }

    /// Appends the bars of one series (ascending, distinct open times) as chunks.
    pub fn add(&mut self, key: SeriesKey, bars: &[(i64, Val)]) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for part in bars.chunks(CHUNK) {
            buf.clear();
            encode(part, &mut buf);
            let out = self.file.as_mut().ok_or_else(|| StoreError::Storage("segment already finished".into()))?;
            out.write_all(&buf).map_err(|e| StoreError::Storage(format!("writing {}: {e}", self.tmp.display())))?;
            self.chunks.push(ChunkMeta {
                key,
                offset: self.offset,
                len: buf.len() as u32,
                count: part.len() as u32,
                first: part[0].0,
                last: part[part.len() - 1].0,
                max_revised: part.iter().map(|e| e.1.revised).max().unwrap_or(i64::MIN),
                crc: crc32fast::hash(&buf),
            });
            self.offset += buf.len() as u64;
        }
        Ok(())
    }

    /// Writes the footer, fsyncs, and renames the file to its final name (then fsyncs the directory):
    /// a `.seg` file is always complete.
    pub fn finish(mut self, rank: u64, replaces: &[u32]) -> Result<Loaded, StoreError> {
        let mut footer = Vec::with_capacity(16 + replaces.len() * 4 + self.chunks.len() * ENTRY);
        footer.extend_from_slice(&rank.to_le_bytes());
        footer.extend_from_slice(&(replaces.len() as u32).to_le_bytes());
        for r in replaces {
            footer.extend_from_slice(&r.to_le_bytes());
        }
        footer.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            footer.extend_from_slice(&c.key.0.to_le_bytes());
            footer.push(c.key.1);
            footer.extend_from_slice(&c.offset.to_le_bytes());
            footer.extend_from_slice(&c.len.to_le_bytes());
            footer.extend_from_slice(&c.count.to_le_bytes());
            for w in [c.first, c.last, c.max_revised] {
                footer.extend_from_slice(&w.to_le_bytes());
            }
            footer.extend_from_slice(&c.crc.to_le_bytes());
        }
        let crc = crc32fast::hash(&footer);
        footer.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        footer.extend_from_slice(&crc.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        let mut out = self.file.take().ok_or_else(|| StoreError::Storage("segment already finished".into()))?;
        out.write_all(&footer).map_err(|e| self.io(e))?;
        let file =
            out.into_inner().map_err(|e| StoreError::Storage(format!("{}: {}", self.tmp.display(), e.error())))?;
        file.sync_all().map_err(|e| StoreError::Storage(format!("{}: {e}", self.tmp.display())))?;
        let path = segment_path(&self.dir, self.id);
        std::fs::rename(&self.tmp, &path).map_err(|e| StoreError::Storage(format!("{}: {e}", path.display())))?;
        self.finished = true;
        super::sync_dir(&self.dir)?;
        drop(file);
        // Written through a write-only handle: read through a new one.
        let file = File::open(&path).map_err(|e| StoreError::Storage(format!("{}: {e}", path.display())))?;
        let bytes = self.offset + footer.len() as u64;
        let file = SegmentFile { id: self.id, rank, bytes, path, file, obsolete: AtomicBool::new(false) };
        Ok(Loaded { file, replaces: replaces.to_vec(), chunks: std::mem::take(&mut self.chunks) })
    }
}

/// Opens a segment and reads its footer.
pub(super) fn load(path: &Path, id: u32) -> Result<Loaded, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
    let bytes = file.metadata().map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?.len();
    let bad = |what: &str| StoreError::Open(format!("segment {} is corrupt: {what}", path.display()));
    if bytes < 16 {
        return Err(bad("shorter than its trailer"));
    }
    let mut tail = [0u8; 16];
    file.read_exact_at(&mut tail, bytes - 16).map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
    if &tail[8..] != MAGIC {
        return Err(bad("no end marker"));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let crc = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
    if footer_len > MAX_FOOTER || footer_len + 16 > bytes {
        return Err(bad("footer length out of bounds"));
    }
    let mut footer = vec![0u8; footer_len as usize];
    file.read_exact_at(&mut footer, bytes - 16 - footer_len)
        .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
    if crc32fast::hash(&footer) != crc {
        return Err(bad("footer fails its checksum"));
    }
    let body_len = bytes - 16 - footer_len;
    let mut r = Reader { b: &footer, at: 0 };
    let parsed = (|| {
        let rank = r.u64()?;
        let n = r.u32()? as usize;
        let mut replaces = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            replaces.push(r.u32()?);
        }
        let n = r.u32()? as usize;
        let mut chunks = Vec::with_capacity(n.min(footer.len() / ENTRY));
        for _ in 0..n {
            let key = (r.u32()?, r.u8()?);
            let c = ChunkMeta {
                key,
                offset: r.u64()?,
                len: r.u32()?,
                count: r.u32()?,
                first: r.u64()? as i64,
                last: r.u64()? as i64,
                max_revised: r.u64()? as i64,
                crc: r.u32()?,
            };
            let sane = usize::from(key.1) < 16
                && c.count >= 1
                && c.count as usize <= CHUNK
                && c.first <= c.last
                && c.offset.checked_add(u64::from(c.len)).is_some_and(|end| end <= body_len);
            if !sane {
                return None;
            }
            chunks.push(c);
        }
        (r.at == footer.len()).then_some((rank, replaces, chunks))
    })();
    let (rank, replaces, chunks) = parsed.ok_or_else(|| bad("footer does not parse"))?;
    let file = SegmentFile { id, rank, bytes, path: path.to_owned(), file, obsolete: AtomicBool::new(false) };
    Ok(Loaded { file, replaces, chunks })
}

/// Little-endian fields from bytes read from disk; `None` past the end.
pub(super) struct Reader<'a> {
    pub b: &'a [u8],
    pub at: usize,
}

impl Reader<'_> {
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn varint(&mut self) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let byte = self.u8()?;
            if shift > 63 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// One chunk (ascending, distinct open times), column by column.
fn encode(entries: &[(i64, Val)], out: &mut Vec<u8>) {
    put_varint(out, entries.len() as u64);
    let deltas: Vec<u64> = entries.windows(2).map(|w| w[1].0.wrapping_sub(w[0].0) as u64).collect();
    let unit = if deltas.iter().all(|d| d.is_multiple_of(1_000)) { 1_000 } else { 1 };
    put_varint(out, zigzag(entries[0].0));
    put_varint(out, unit);
    for d in deltas {
        put_varint(out, d / unit);
    }
    let mut prev = 0i64;
    for (_, v) in entries {
        put_varint(out, zigzag(v.revised.wrapping_sub(prev)));
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

/// The bars of a chunk; `None` if the bytes are not a chunk (checked arithmetic throughout).
fn decode(b: &[u8]) -> Option<Vec<(i64, Val)>> {
    let mut r = Reader { b, at: 0 };
    let n = r.varint()? as usize;
    if n == 0 || n > CHUNK {
        return None;
    }
    let mut t = unzigzag(r.varint()?);
    let unit = i64::try_from(r.varint()?).ok()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            let d = i64::try_from(r.varint()?).ok()?.checked_mul(unit)?;
            if d <= 0 {
                return None;
            }
            t = t.checked_add(d)?;
        }
        out.push((t, Val { px: [0.0; 5], trades: 0, revised: 0 }));
    }
    let mut revised = 0i64;
    for e in out.iter_mut() {
        revised = revised.wrapping_add(unzigzag(r.varint()?));
        e.1.revised = revised;
    }
    for e in out.iter_mut() {
        e.1.trades = r.varint()?;
    }
    for col in 0..5 {
        for e in out.iter_mut() {
            e.1.px[col] = f64::from_bits(r.u64()?);
        }
    }
    (r.at == b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_garbage_is_refused_not_a_panic() {
        let bars: Vec<(i64, Val)> = (0..300)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 1_000 + if i == 7 { 1 } else { 0 },
                    Val {
                        px: [1.5, f64::from_bits(0x7ff8_0000_0000_0001), -0.0, 3.25e-300, i as f64],
                        trades: i as u64 * 1_000_003,
                        revised: 1_750_000_000_000 - i * 3,
                    },
                )
            })
            .collect();
        let mut buf = Vec::new();
        encode(&bars, &mut buf);
        let back = decode(&buf).unwrap();
        assert_eq!(back.len(), bars.len());
        for (a, b) in back.iter().zip(&bars) {
            assert_eq!((a.0, a.1.trades, a.1.revised), (b.0, b.1.trades, b.1.revised));
            assert_eq!(a.1.px.map(f64::to_bits), b.1.px.map(f64::to_bits), "bit for bit");
        }
        for cut in [0, 1, 5, buf.len() / 2, buf.len() - 1] {
            assert!(decode(&buf[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(&[0xff; 40]).is_none());
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing bytes");
    }
}
