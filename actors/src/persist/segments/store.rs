//! [`SegmentStore`]: the write path (symbols, log, memtable), rotation, retention, usage, open and close.
//! Reads are in [`index`](super::index), merging in [`merge`](super::merge).
//!
//! Locks, always taken in this order: `writer` (one write, rotation, expiry or merge installation at a
//! time), then `mem`, then `index`. Readers take only `mem` and `index`, each for a copy: they never wait
//! for an fsync, a segment being written or a merge.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use redb::Database;

use super::floors::Floors;
use super::index::{ChunkRef, Index, SeriesKey, Val};
use super::log::{decode_bars, encode_bars, AppendFile, LogBar};
use super::segment::{self, Loaded, SegmentFile, SegmentWriter};
use super::symbols::Symbols;
use super::Options;
use crate::model::{Bar, Interval, Symbol};
use crate::persist::{script_data, Expired, StoreError, StoredBar, Usage};

/// The memtable: per series, bars not yet in a segment.
pub(super) type MemTable = HashMap<SeriesKey, BTreeMap<i64, Val>>;

pub(super) const LOG: &str = "log";
const SYMBOLS: &str = "symbols";
const FLOORS: &str = "floors";
const LOCK: &str = "LOCK";
/// Script symbols and executed trades: a small redb file (see [`script_data`]).
pub(super) const SCRIPT_DB: &str = "script.redb";

pub(super) struct Writer {
    pub log: AppendFile,
    pub log_bars: usize,
    pub symbols: Symbols,
    pub floors: Floors,
    /// Live segments by id.
    pub segments: BTreeMap<u32, Arc<SegmentFile>>,
    pub next_id: u32,
    pub next_rank: u64,
    /// The newest revision written: the next batch's revisions are at least one more.
    pub last_revised: i64,
    /// Held (and locked) while the store is open: one candlecast per directory.
    lock: Option<File>,
}

pub(super) struct Shared {
    pub dir: PathBuf,
    pub options: Options,
    pub writer: Mutex<Writer>,
    pub mem: Mutex<MemTable>,
    pub index: RwLock<Arc<Index>>,
    ids: RwLock<HashMap<Arc<str>, u32>>,
    pub script: Mutex<Option<Arc<Database>>>,
    pub closed: AtomicBool,
    pub merging: AtomicBool,
    /// Bytes of torn tails cut off when the files were opened.
    pub torn_bytes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Storage(format!("{}: {e}", path.display()))
}

impl Shared {
    pub fn writer(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    pub fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_index(&self, index: Index) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
    }

    pub fn check_open(&self) -> Result<(), StoreError> {
        match self.closed.load(Ordering::Acquire) {
            true => Err(StoreError::Storage("the segment store is closed".into())),
            false => Ok(()),
        }
    }

    /// Opens the store in `dir` (created if needed).
    pub fn open(dir: &Path, options: Options) -> Result<Shared, StoreError> {
        let open_err = |e: std::io::Error| StoreError::Open(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(open_err)?;
        let lock_file = File::create(dir.join(LOCK)).map_err(open_err)?;
        if let Err(e) = lock_file.try_lock() {
            return Err(StoreError::Open(match e {
                std::fs::TryLockError::WouldBlock => format!(
                    "{} is already open in another candlecast (one store per process; set store.path)",
                    dir.display()
                ),
                std::fs::TryLockError::Error(e) => format!("{}: {e}", dir.display()),
            }));
        }
        let mut loaded = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(open_err)? {
            let entry = entry.map_err(open_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                // A segment (or floors rewrite) a crash interrupted before its rename: never in use.
                std::fs::remove_file(entry.path()).map_err(open_err)?;
            } else if let Some(id) = segment::segment_id(name) {
                loaded.push(segment::load(&entry.path(), id)?);
            }
        }
        // A merge that crashed after writing its segment and before deleting its inputs: delete them now.
        let replaced: HashSet<u32> = loaded.iter().flat_map(|l| l.replaces.iter().copied()).collect();
        let (gone, live): (Vec<Loaded>, Vec<Loaded>) = loaded.into_iter().partition(|l| replaced.contains(&l.file.id));
        for l in gone {
            tracing::info!(segment = l.file.id, "deleting a segment a merge replaced before a crash");
            l.file.retire();
        }
        super::sync_dir(dir)?;

        let (floors_file, floors, torn_floors) = Floors::open(&dir.join(FLOORS))?;
        let (symbols, torn_symbols) = Symbols::open(&dir.join(SYMBOLS))?;
        let mut index = Index { series: HashMap::new(), floors: Arc::new(floors) };
        let (mut next_id, mut next_rank, mut last_revised) = (0u32, 0u64, i64::MIN);
        let mut segments = BTreeMap::new();
        for l in live {
            next_id = next_id.max(l.file.id.saturating_add(1));
            next_rank = next_rank.max(l.file.rank.saturating_add(1));
            last_revised = l.chunks.iter().map(|c| c.max_revised).fold(last_revised, i64::max);
            let seg = Arc::new(l.file);
            add_chunks(&mut index, &seg, &l.chunks);
            segments.insert(seg.id, seg);
        }
        let opened = AppendFile::open(&dir.join(LOG))?;
        let mut mem = MemTable::new();
        let mut log_bars = 0;
        for record in &opened.records {
            let bars = decode_bars(record)
                .ok_or_else(|| StoreError::Open(format!("{}: a record does not parse", dir.join(LOG).display())))?;
            for b in bars {
                last_revised = last_revised.max(b.val.revised);
                log_bars += 1;
                if b.open_time >= index.floor(b.key) {
                    mem.entry(b.key).or_default().insert(b.open_time, b.val);
                }
            }
        }
        let ids = RwLock::new(symbols.ids());
        let writer = Writer {
            log: opened.file,
            log_bars,
            symbols,
            floors: floors_file,
            segments,
            next_id,
            next_rank,
            last_revised,
            lock: Some(lock_file),
        };
        Ok(Shared {
            dir: dir.to_owned(),
            options,
            writer: Mutex::new(writer),
            mem: Mutex::new(mem),
            index: RwLock::new(Arc::new(index)),
            ids,
            script: Mutex::new(None),
            closed: AtomicBool::new(false),
            merging: AtomicBool::new(false),
            torn_bytes: AtomicU64::new(opened.torn_bytes + torn_symbols + torn_floors),
        })
    }

    /// The script database, opened at its first use: a store that never sees a script never writes it, and
    /// a failure to open it (a full disk) does not keep the bars from being stored.
    pub fn script_db(&self) -> Result<Arc<Database>, StoreError> {
        let mut slot = lock(&self.script);
        self.check_open()?;
        if let Some(db) = &*slot {
            return Ok(db.clone());
        }
        let file = self.dir.join(SCRIPT_DB);
        let db = Database::create(&file)
            .map_err(|e| StoreError::Storage(format!("{}: {}", file.display(), redb::Error::from(e))))?;
        // Created once; later opens only read (a write transaction would grow the file, on a full disk too).
        let tables = db.begin_read().map_err(storage)?.list_tables().map_err(storage)?.count();
        if tables < 3 {
            let txn = db.begin_write().map_err(storage)?;
            script_data::create_tables(&txn)?;
            txn.commit().map_err(storage)?;
        }
        let db = Arc::new(db);
        *slot = Some(db.clone());
        Ok(db)
    }

    pub fn symbol_id(&self, symbol: &str) -> Option<u32> {
        self.ids.read().unwrap_or_else(|e| e.into_inner()).get(symbol).copied()
    }

    /// Appends `bars` to the log (fsynced), then to the memtable; rotates when the log is full.
    /// `stamp`: revisions are raised to one past the previous batch's newest, so they never go down.
    pub fn write(&self, bars: &[StoredBar], stamp: bool) -> Result<bool, StoreError> {
        let mut w = self.writer();
        self.check_open()?;
        if bars.is_empty() {
            return Ok(false);
        }
        let added = w.symbols.ensure(bars.iter().map(|b| (&*b.bar.symbol, &*b.source)))?;
        if !added.is_empty() {
            self.ids.write().unwrap_or_else(|e| e.into_inner()).extend(added);
        }
        let floor = w.last_revised.saturating_add(1);
        let mut records = Vec::with_capacity(bars.len());
        for s in bars {
            let b = &s.bar;
            let id = w.symbols.id(&b.symbol).ok_or_else(|| StoreError::Storage("a symbol has no id".into()))?;
            let revised = if stamp { s.revised.max(floor) } else { s.revised };
            let val = Val { px: [b.open, b.high, b.low, b.close, b.volume], trades: b.trades, revised };
            records.push(LogBar { key: (id, b.interval.index() as u8), open_time: b.open_time, val });
        }
        w.log.append(&encode_bars(&records))?;
        w.last_revised = records.iter().map(|r| r.val.revised).fold(w.last_revised, i64::max);
        w.log_bars += records.len();
        let index = self.index();
        {
            let mut mem = lock(&self.mem);
            for r in &records {
                // A bar older than its series' retention floor is not kept: retention deleted its time.
                if r.open_time >= index.floor(r.key) {
                    mem.entry(r.key).or_default().insert(r.open_time, r.val);
                }
            }
        }
        if w.log_bars >= self.options.rotate_bars {
            // The batch is durable in the log: a rotation that fails (a full disk) does not fail the write,
            // and the next write tries again.
            return match self.rotate(&mut w) {
                Ok(()) => Ok(true),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the memtable out as a segment yet");
                    Ok(false)
                }
            };
        }
        Ok(false)
    }

    /// The memtable out as a new segment, then the log emptied.
    pub fn rotate(&self, w: &mut Writer) -> Result<(), StoreError> {
        let mut data: Vec<(SeriesKey, Vec<(i64, Val)>)> = {
            let mem = lock(&self.mem);
            mem.iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(k, m)| (*k, m.iter().map(|(t, v)| (*t, *v)).collect()))
                .collect()
        };
        if !data.is_empty() {
            data.sort_unstable_by_key(|(k, _)| *k);
            let (id, rank) = (w.next_id, w.next_rank);
            w.next_id += 1;
            w.next_rank += 1;
            let mut out = SegmentWriter::create(&self.dir, id)?;
            for (key, bars) in &data {
                out.add(*key, bars)?;
            }
            let loaded = out.finish(rank, &[])?;
            // The segment is durable: from here a crash before the truncation only replays bars that
            // supersede themselves.
            self.install(w, loaded, &[], true);
        }
        w.log.truncate()?;
        w.log_bars = 0;
        Ok(())
    }

    /// Puts a new segment in the index (and its inputs out), in one swap; empties the memtable if it
    /// was rotated into the segment.
    pub fn install(&self, w: &mut Writer, loaded: Loaded, replaced: &[Arc<SegmentFile>], rotated: bool) {
        let seg = Arc::new(loaded.file);
        let gone: HashSet<u32> = replaced.iter().map(|s| s.id).collect();
        let mut mem = lock(&self.mem);
        let mut index = (*self.index()).clone();
        if !gone.is_empty() {
            for chunks in index.series.values_mut() {
                if chunks.iter().any(|c| gone.contains(&c.seg.id)) {
                    *chunks = Arc::new(chunks.iter().filter(|c| !gone.contains(&c.seg.id)).cloned().collect());
                }
            }
            index.series.retain(|_, c| !c.is_empty());
        }
        add_chunks(&mut index, &seg, &loaded.chunks);
        self.set_index(index);
        if rotated {
            mem.clear();
        }
        drop(mem);
        for r in replaced {
            r.retire();
            w.segments.remove(&r.id);
        }
        w.segments.insert(seg.id, seg);
    }

    /// Retention: see [`crate::persist::Store::expire`]. Raises per-series floors (fsynced first), drops the
    /// chunks wholly below them and the memtable's bars below them; reads skip what a straddling chunk
    /// holds below its floor until the next merge cuts it.
    pub fn expire(&self, cutoffs: &[(Interval, i64)], max_bars: usize) -> Result<Expired, StoreError> {
        let mut w = self.writer();
        self.check_open()?;
        let index = self.index();
        let mem_keys: Vec<SeriesKey> = lock(&self.mem).keys().copied().collect();
        let mut expired = Expired::default();
        let mut raised: Vec<(SeriesKey, i64)> = Vec::new();
        let mut budget = max_bars;
        'intervals: for &(interval, cutoff) in cutoffs {
            let iv = interval.index() as u8;
            let keys: BTreeSet<SeriesKey> =
                index.series.keys().chain(mem_keys.iter()).filter(|k| k.1 == iv).copied().collect();
            for key in keys {
                if budget == 0 {
                    break 'intervals;
                }
                let floor = index.floor(key);
                if floor >= cutoff {
                    continue;
                }
                let times = self.expired_times(&index, key, floor, cutoff, budget)?;
                if times.is_empty() {
                    continue;
                }
                let (new_floor, n) = match times.iter().nth(budget) {
                    Some(&first_kept) => (first_kept, budget),
                    None => (cutoff, times.len()),
                };
                budget -= n;
                expired.deleted[interval.index()] += n as u64;
                raised.push((key, new_floor));
            }
        }
        if raised.is_empty() {
            return Ok(expired);
        }
        let mut floors = (*index.floors).clone();
        for (key, f) in &raised {
            floors.insert(*key, *f);
        }
        w.floors.raise(&raised, &floors)?;
        let mut next = (*index).clone();
        next.floors = Arc::new(floors);
        for (key, f) in &raised {
            if let Some(chunks) = next.series.get_mut(key) {
                let kept: Result<Vec<ChunkRef>, StoreError> =
                    chunks.iter().filter(|c| c.last >= *f).map(|c| counted_from(c, *f)).collect();
                *chunks = Arc::new(kept?);
            }
        }
        next.series.retain(|_, c| !c.is_empty());
        let referenced: HashSet<u32> = next.series.values().flat_map(|c| c.iter().map(|c| c.seg.id)).collect();
        {
            let mut mem = lock(&self.mem);
            self.set_index(next);
            for (key, f) in &raised {
                if let Some(m) = mem.get_mut(key) {
                    *m = m.split_off(f);
                }
            }
        }
        // A segment retention emptied is deleted (once no reader holds it).
        let empty: Vec<u32> = w.segments.keys().copied().filter(|id| !referenced.contains(id)).collect();
        for id in empty {
            if let Some(seg) = w.segments.remove(&id) {
                seg.retire();
            }
        }
        Ok(expired)
    }

    /// Distinct open times in `[floor, cutoff)` of a series, the oldest first: all of them, or at least
    /// `budget + 1` (the first one kept). Chunks are read in order of their first bar, and reading stops
    /// once no further chunk can hold an older time: the work is bounded by the budget, not the backlog.
    fn expired_times(
        &self,
        index: &Index,
        key: SeriesKey,
        floor: i64,
        cutoff: i64,
        budget: usize,
    ) -> Result<BTreeSet<i64>, StoreError> {
        let mut times: BTreeSet<i64> = match lock(&self.mem).get(&key) {
            Some(m) => m.range(floor..cutoff).map(|(t, _)| *t).collect(),
            None => BTreeSet::new(),
        };
        let mut chunks: Vec<&ChunkRef> = match index.series.get(&key) {
            Some(c) => c.iter().filter(|c| c.first < cutoff && c.last >= floor).collect(),
            None => Vec::new(),
        };
        chunks.sort_by_key(|c| c.first);
        for c in chunks {
            if times.len() > budget && times.iter().nth(budget).is_some_and(|&kept| c.first > kept) {
                break;
            }
            times.extend(c.read()?.into_iter().map(|(t, _)| t).filter(|t| *t >= floor && *t < cutoff));
        }
        Ok(times)
    }

    /// Bars per interval (from the index's chunk counts and the memtable) and bytes of every file.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        self.check_open()?;
        let mut usage = Usage::default();
        let index = self.index();
        for (key, chunks) in &index.series {
            usage.bars[usize::from(key.1)] += chunks.iter().map(|c| u64::from(c.visible)).sum::<u64>();
        }
        for (key, m) in lock(&self.mem).iter() {
            usage.bars[usize::from(key.1)] += m.len() as u64;
        }
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            // A file a merge deletes meanwhile is simply not counted.
            if let Ok(meta) = entry.and_then(|e| e.metadata()) {
                usage.file_bytes += meta.len();
            }
        }
        Ok(usage)
    }

    /// Bars of `symbol` opened in `[start, end)`, the newest `limit`.
    pub fn bars(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Bar>, StoreError> {
        self.check_open()?;
        let Some(id) = self.symbol_id(symbol) else { return Ok(Vec::new()) };
        let key = (id, interval.index() as u8);
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let (mem, index) = {
            let m = lock(&self.mem);
            let part = m.get(&key).map(|m| m.range(start..end).rev().take(limit).map(|(t, v)| (*t, *v)).collect());
            (part.unwrap_or_default(), self.index())
        };
        let found = super::index::newest(&index, key, mem, start, end, limit)?;
        Ok(found.into_iter().map(|(t, v)| to_bar(symbol, interval, t, &v)).collect())
    }

    /// Bars revised at or after `since`, the newest `limit`.
    pub fn revised_since(
        &self,
        symbol: &Symbol,
        interval: Interval,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Bar>, StoreError> {
        self.check_open()?;
        let Some(id) = self.symbol_id(symbol) else { return Ok(Vec::new()) };
        let key = (id, interval.index() as u8);
        let (mem, index) = {
            let m = lock(&self.mem);
            let part =
                m.get(&key).map(|m| m.iter().filter(|(_, v)| v.revised >= since).map(|(t, v)| (*t, *v)).collect());
            (part.unwrap_or_default(), self.index())
        };
        let found = super::index::since(&index, key, mem, since, limit)?;
        Ok(found.into_iter().map(|(t, v)| to_bar(symbol, interval, t, &v)).collect())
    }

    /// Stops every later call and releases the directory's lock (after the write in progress and any
    /// merge end).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + super::CLOSE_TIMEOUT;
        while self.merging.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut w = self.writer();
        w.lock = None;
    }
}

/// A chunk with `visible` set for the series' floor `f`: the share of its time span at or after `f`
/// (exact for regular bars; the next merge cuts the chunk and makes it exact in any case).
fn with_floor(mut c: ChunkRef, f: i64) -> ChunkRef {
    if c.first < f {
        let span = (c.last - c.first).max(1) as f64;
        let share = ((c.last - f) as f64 / span).clamp(0.0, 1.0);
        c.visible = ((f64::from(c.count) * share).ceil() as u32).clamp(1, c.count);
    }
    c
}

/// A chunk with `visible` counted exactly for the floor `f` (read if the floor cuts into it).
fn counted_from(c: &ChunkRef, f: i64) -> Result<ChunkRef, StoreError> {
    let mut c = c.clone();
    if c.first < f {
        c.visible = c.read()?.iter().filter(|(t, _)| *t >= f).count() as u32;
    }
    Ok(c)
}

/// Adds a segment's chunks to the index (those wholly below their series' floor left out).
fn add_chunks(index: &mut Index, seg: &Arc<SegmentFile>, chunks: &[segment::ChunkMeta]) {
    let mut touched = HashSet::new();
    for m in chunks {
        let floor = index.floor(m.key);
        if m.last < floor {
            continue;
        }
        let c = ChunkRef {
            seg: seg.clone(),
            offset: m.offset,
            len: m.len,
            count: m.count,
            visible: m.count,
            first: m.first,
            last: m.last,
            max_revised: m.max_revised,
            crc: m.crc,
        };
        Arc::make_mut(index.series.entry(m.key).or_default()).push(with_floor(c, floor));
        touched.insert(m.key);
    }
    for key in touched {
        if let Some(c) = index.series.get_mut(&key) {
            Arc::make_mut(c).sort_by_key(|c| (c.seg.rank, c.first));
        }
    }
}

fn to_bar(symbol: &Symbol, interval: Interval, open_time: i64, v: &Val) -> Bar {
    let [open, high, low, close, volume] = v.px;
    Bar { symbol: symbol.clone(), interval, open_time, open, high, low, close, volume, trades: v.trades, closed: true }
}

pub(super) fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(e.into().to_string())
}
