//! Bytes per stored bar and write throughput of the embedded store, side by side with a compact format
//! (the candidate of issue 20), and writes while retention drains a backlog. Not criterion: it prints
//! the rows of docs/BENCHMARKS.md ("## Store").
//!
//! `cargo bench -p candlecast-actors --bench store_size -- --symbols 100 --bars 500000`
//!
//! - **current**: [`EmbeddedStore`] as the server uses it: key (symbol, interval name, open time) as redb
//!   tuple, value (5 × f64, trades u64, revised i64, source text), the revision index, the counts.
//! - **compact**: the same information in fixed-width bytes: key symbol id u32 + interval id u8 + open
//!   time i64 (big-endian, sign flipped, so bytes sort as numbers), 13 bytes; value 5 × f64, trades u32
//!   and revised i64, 52 bytes; revision index key (symbol id, interval id, revised, open time), 21
//!   bytes; symbol → (id, source) in a table of its own. Same transactions, upserts and index upkeep.
//!
//! Bars come time-major (each second one 1s bar per symbol, as live trading closes them) in batches of
//! `--batch` (the persistence actor's `store.batch_bars`); each batch is one transaction with fsync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candlecast_actors::model::{Bar, Interval, Symbol};
use candlecast_actors::persist::{spawn_retention, wall_clock, RetentionSettings, RetentionStats, Schedule};
use candlecast_actors::persist::{EmbeddedStore, EMBEDDED_FILE_NAME as FILE_NAME};
use candlecast_actors::persist::{Range, Store, StoredBar};
use redb::{Database, TableDefinition};

const T0: i64 = 1_700_000_000_000;

struct Args {
    symbols: usize,
    bars: usize,
    batch: usize,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` (make test) runs this binary without it, in a
    // debug build: there it is a smoke test of both designs on a small store, not the measurement.
    let measuring = argv.iter().any(|a| a == "--bench");
    let mut a = if measuring {
        Args { symbols: 100, bars: 1_000_000, batch: 1_000 }
    } else {
        Args { symbols: 4, bars: 5_000, batch: 500 }
    };
    for w in argv.windows(2) {
        let n = || w[1].parse::<usize>().unwrap_or_else(|_| panic!("{} takes a number", w[0]));
        match w[0].as_str() {
            "--symbols" => a.symbols = n(),
            "--bars" => a.bars = n(),
            "--batch" => a.batch = n(),
            _ => {}
        }
    }
    a
}

/// `n` 1s bars, time-major over `symbols` symbols, from `start`, in batches.
fn batches(symbols: usize, n: usize, batch: usize, start: i64) -> Vec<Arc<[StoredBar]>> {
    let names: Vec<Symbol> = (0..symbols).map(|i| Symbol::from(format!("SYM{i:05}USDT"))).collect();
    let all: Vec<StoredBar> = (0..n)
        .map(|i| {
            let (t, s) = ((i / symbols) as i64, i % symbols);
            let open_time = start + t * 1_000;
            let price = 100.0 + (i % 97) as f64 * 0.01;
            let mut bar = Bar::from_trade(names[s].clone(), Interval::S1, open_time, price, 0.5);
            bar.apply_trade(price + 0.02, 0.25);
            bar.closed = true;
            StoredBar { bar, source: "simulated".into(), revised: open_time + 2_500 }
        })
        .collect();
    all.chunks(batch).map(Arc::from).collect()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

struct Row {
    design: &'static str,
    bars: usize,
    secs: f64,
    file_bytes: u64,
    read_5000_ms: f64,
}

impl Row {
    fn print(&self) {
        println!(
            "| {} | {} | {:.1} MB | **{:.0} B** | {:.0} K bars/s | {:.2} ms |",
            self.design,
            self.bars,
            self.file_bytes as f64 / 1e6,
            self.file_bytes as f64 / self.bars as f64,
            self.bars as f64 / self.secs / 1e3,
            self.read_5000_ms
        );
    }
}

fn current(rt: &tokio::runtime::Runtime, input: &[Arc<[StoredBar]>], total: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let started = Instant::now();
    for b in input {
        rt.block_on(store.write(b.clone())).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let symbol = input[0][0].bar.symbol.clone();
    let range = Range { interval: Interval::S1, start: None, end: None, limit: 5_000 };
    let read = Instant::now();
    let got = rt.block_on(store.bars(&symbol, range)).unwrap();
    let read_5000_ms = read.elapsed().as_secs_f64() * 1e3;
    assert!(!got.is_empty());
    rt.block_on(store.close()).unwrap();
    Row {
        design: "current (tuple key, text interval and source)",
        bars: total,
        secs,
        file_bytes: file_size(&dir.path().join(FILE_NAME)),
        read_5000_ms,
    }
}

mod compact {
    use super::*;

    pub const BARS: TableDefinition<&[u8; 13], &[u8; 52]> = TableDefinition::new("bars");
    pub const REVISIONS: TableDefinition<&[u8; 21], ()> = TableDefinition::new("revisions");
    pub const SYMBOLS: TableDefinition<&str, (u32, &str)> = TableDefinition::new("symbols");

    /// i64 whose big-endian bytes sort as the numbers do.
    fn time(t: i64) -> [u8; 8] {
        ((t as u64) ^ (1 << 63)).to_be_bytes()
    }

    pub fn key(symbol: u32, interval: Interval, open_time: i64) -> [u8; 13] {
        let mut k = [0u8; 13];
        k[..4].copy_from_slice(&symbol.to_be_bytes());
        k[4] = interval.index() as u8;
        k[5..].copy_from_slice(&time(open_time));
        k
    }

    fn revision(symbol: u32, interval: Interval, revised: i64, open_time: i64) -> [u8; 21] {
        let mut k = [0u8; 21];
        k[..4].copy_from_slice(&symbol.to_be_bytes());
        k[4] = interval.index() as u8;
        k[5..13].copy_from_slice(&time(revised));
        k[13..].copy_from_slice(&time(open_time));
        k
    }

    fn value(b: &StoredBar) -> [u8; 52] {
        let mut v = [0u8; 52];
        for (i, f) in [b.bar.open, b.bar.high, b.bar.low, b.bar.close, b.bar.volume].iter().enumerate() {
            v[i * 8..i * 8 + 8].copy_from_slice(&f.to_le_bytes());
        }
        v[40..44].copy_from_slice(&(b.bar.trades.min(u32::MAX as u64) as u32).to_le_bytes());
        v[44..].copy_from_slice(&b.revised.to_le_bytes());
        v
    }

    fn revised_of(v: &[u8; 52]) -> i64 {
        i64::from_le_bytes(v[44..].try_into().unwrap_or([0; 8]))
    }

    pub fn close_of(v: &[u8; 52]) -> f64 {
        f64::from_le_bytes(v[24..32].try_into().unwrap_or([0; 8]))
    }

    pub struct Compact {
        pub db: Database,
        ids: HashMap<String, u32>,
    }

    impl Compact {
        pub fn open(path: &Path) -> Compact {
            let db = Database::create(path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(BARS).unwrap();
            txn.open_table(REVISIONS).unwrap();
            txn.open_table(SYMBOLS).unwrap();
            txn.commit().unwrap();
            Compact { db, ids: HashMap::new() }
        }

        pub fn id(&self, symbol: &str) -> Option<u32> {
            self.ids.get(symbol).copied()
        }

        pub fn write(&mut self, bars: &[StoredBar]) {
            let txn = self.db.begin_write().unwrap();
            {
                let mut table = txn.open_table(BARS).unwrap();
                let mut revisions = txn.open_table(REVISIONS).unwrap();
                let mut symbols = txn.open_table(SYMBOLS).unwrap();
                for b in bars {
                    let id = match self.ids.get(&*b.bar.symbol) {
                        Some(id) => *id,
                        None => {
                            let id = self.ids.len() as u32;
                            symbols.insert(&*b.bar.symbol, (id, &*b.source)).unwrap();
                            self.ids.insert(b.bar.symbol.to_string(), id);
                            id
                        }
                    };
                    let k = key(id, b.bar.interval, b.bar.open_time);
                    let old = table.insert(&k, &value(b)).unwrap().map(|old| revised_of(old.value()));
                    if let Some(old) = old {
                        revisions.remove(&revision(id, b.bar.interval, old, b.bar.open_time)).unwrap();
                    }
                    revisions.insert(&revision(id, b.bar.interval, b.revised, b.bar.open_time), ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }

        /// The newest `limit` closes of (symbol, 1s), ascending.
        pub fn read(&self, symbol: u32, limit: usize) -> Vec<f64> {
            let txn = self.db.begin_read().unwrap();
            let table = txn.open_table(BARS).unwrap();
            let (from, to) = (key(symbol, Interval::S1, i64::MIN), key(symbol, Interval::S1, i64::MAX));
            let mut out: Vec<f64> = table
                .range::<&[u8; 13]>(&from..&to)
                .unwrap()
                .rev()
                .take(limit)
                .map(|e| close_of(e.unwrap().1.value()))
                .collect();
            out.reverse();
            out
        }
    }
}

fn compact(input: &[Arc<[StoredBar]>], total: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compact.redb");
    let mut store = compact::Compact::open(&path);
    let started = Instant::now();
    for b in input {
        store.write(b);
    }
    let secs = started.elapsed().as_secs_f64();
    let id = store.id(&input[0][0].bar.symbol).unwrap_or(0);
    let read = Instant::now();
    let got = store.read(id, 5_000);
    let read_5000_ms = read.elapsed().as_secs_f64() * 1e3;
    assert!(!got.is_empty());
    drop(store);
    Row {
        design: "compact (13-byte key, 52-byte value)",
        bars: total,
        secs,
        file_bytes: file_size(&path),
        read_5000_ms,
    }
}

/// Writes `input` into a store that already holds `backlog` (all expired), with or without the retention
/// loop draining it meanwhile: throughput and the slowest batch.
fn writes_during_retention(
    rt: &tokio::runtime::Runtime,
    backlog: &[Arc<[StoredBar]>],
    input: &[Arc<[StoredBar]>],
    retain: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    for b in backlog {
        rt.block_on(store.write(b.clone())).unwrap();
    }
    let stats = Arc::new(RetentionStats::default());
    let task = retain.then(|| {
        let _guard = rt.enter();
        let schedule = Schedule {
            settings: RetentionSettings::keeping(&[(Interval::S1, 7 * 86_400_000)]),
            batch_bars: 5_000,
            every: Duration::from_secs(60),
        };
        spawn_retention(store.clone(), schedule, wall_clock(), stats.clone())
    });
    let (started, mut slowest, mut n) = (Instant::now(), Duration::ZERO, 0);
    for b in input {
        let t = Instant::now();
        rt.block_on(store.write(b.clone())).unwrap();
        slowest = slowest.max(t.elapsed());
        n += b.len();
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(task) = task {
        task.abort();
    }
    let deleted = stats.deleted(Interval::S1);
    println!(
        "| {} | {} | {:.0} K bars/s | {:.0} ms | {} |",
        if retain { "retention draining 1s bars older than 7 d (5,000 a pass)" } else { "no retention" },
        n,
        n as f64 / secs / 1e3,
        slowest.as_secs_f64() * 1e3,
        deleted
    );
    rt.block_on(store.close()).unwrap();
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    eprintln!("generating {} bars of {} symbols", a.bars, a.symbols);
    let input = batches(a.symbols, a.bars, a.batch, T0);
    println!("| design | bars | file | bytes per bar | write throughput | newest 5,000 bars of a symbol read |");
    println!("|---|---|---|---|---|---|");
    current(&rt, &input, a.bars).print();
    compact(&input, a.bars).print();

    // Writes while retention deletes: a backlog as large as the input, 30 days old, under a 7-day limit.
    let old = batches(a.symbols, a.bars, a.batch, candlecast_actors::model::now_ms() - 30 * 86_400_000);
    let fresh = batches(a.symbols, a.bars / 2, a.batch, candlecast_actors::model::now_ms());
    println!();
    println!(
        "| writes of {} fresh bars | bars | write throughput | slowest batch | expired bars deleted meanwhile |",
        a.bars / 2
    );
    println!("|---|---|---|---|---|");
    writes_during_retention(&rt, &old, &fresh, false);
    writes_during_retention(&rt, &old, &fresh, true);
}
