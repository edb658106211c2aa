//! Store candidates of issue 20, measured side by side in one run on one workload (see [`workload`]):
//! sustained write rate with upserts, bytes per bar on disk (after the writes, and after a compaction),
//! the newest 5,000 bars of one (symbol, interval), and a `since=` query. Every answer is checked against
//! the workload's own final state, bit for bit, and again after the store is closed and opened again.
//! Not criterion: it prints the rows of docs/BENCHMARKS.md ("Store candidates").
//!
//! `cargo bench -p candlecast-actors --bench store_candidates -- --symbols 200 --steps 8500`
//! (`--only segments,sqlite` runs some candidates; `--batch`, `--correct-every`, `--read` as below).
//!
//! Under `cargo test --all-targets` (make test: a debug build, no `--bench`) it is a small smoke run of
//! every candidate, small enough that the segment format rotates and merges many times.

mod lsm;
mod redb_compact;
mod redb_today;
mod segment_store;
mod segments;
mod sqlite;
mod workload;

use std::path::Path;
use std::time::{Duration, Instant};

use candlecast_actors::model::Interval;
use workload::{Out, Rec, Shape};

/// What every candidate does, on its own files in its own directory.
pub trait Candidate {
    /// One batch, durable (fsynced) when this returns, as the persister's write is.
    fn write(&mut self, batch: &[Rec]);
    /// The newest `n` bars of a series, ascending.
    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out>;
    /// Bars of a series revised at or after `since`, ascending; the newest `limit`.
    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out>;
    /// The engine's own compaction; false if it has none.
    fn compact(&mut self) -> bool;
}

struct Args {
    shape: Shape,
    read: usize,
    only: Option<Vec<String>>,
    rotate_at: usize,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it, in a debug build.
    let measuring = argv.iter().any(|a| a == "--bench");
    let mut a = if measuring {
        let shape = Shape { symbols: 200, steps: 8_500, batch: 1_000, correct_every: 10 };
        Args { shape, read: 5_000, only: None, rotate_at: 500_000 }
    } else {
        let shape = Shape { symbols: 3, steps: 400, batch: 100, correct_every: 4 };
        Args { shape, read: 200, only: None, rotate_at: 100 }
    };
    for w in argv.windows(2) {
        let n = || w[1].parse::<u64>().unwrap_or_else(|_| panic!("{} takes a number", w[0]));
        match w[0].as_str() {
            "--symbols" => a.shape.symbols = n() as u32,
            "--steps" => a.shape.steps = n() as u32,
            "--batch" => a.shape.batch = n() as usize,
            "--correct-every" => a.shape.correct_every = n(),
            "--read" => a.read = n() as usize,
            "--rotate-at" => a.rotate_at = n() as usize,
            "--only" => a.only = Some(w[1].split(',').map(str::to_owned).collect()),
            _ => {}
        }
    }
    a
}

/// Bytes under `dir`. The product's store seals and renames files on its own threads, so a file listed by
/// `read_dir` can be gone by the time it is measured: such a walk is thrown away and taken again.
fn dir_bytes(dir: &Path) -> u64 {
    for _ in 0..100 {
        match try_dir_bytes(dir) {
            Ok(bytes) => return bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("measuring {}: {e}", dir.display()),
        }
    }
    panic!("{}: files kept vanishing during 100 walks", dir.display())
}

fn try_dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        bytes += if meta.is_dir() { try_dir_bytes(&entry.path())? } else { meta.len() };
    }
    Ok(bytes)
}

/// The median of 11 runs of `f` (the page cache is warm: the files were just written).
fn median_ms<T>(mut f: impl FnMut() -> T) -> f64 {
    let mut times: Vec<Duration> = (0..11)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[5].as_secs_f64() * 1e3
}

type Open = fn(&Path, &Args) -> Box<dyn Candidate>;

const CANDIDATES: [(&str, &str, Open); 6] = [
    ("redb-today", "(a) redb, today's layout (EmbeddedStore)", |d, a| {
        Box::new(redb_today::RedbToday::open(d, a.shape.symbols))
    }),
    ("redb-compact", "(b) redb, 13-byte key, 56-byte packed value", |d, a| {
        Box::new(redb_compact::RedbCompact::open(d, a.shape.symbols))
    }),
    ("fjall", "(c) fjall 2 (LSM), same keys and values as (b)", |d, _| Box::new(lsm::Fjall::open(d))),
    ("sqlite", "(d) SQLite (rusqlite, bundled), WITHOUT ROWID, WAL", |d, a| {
        Box::new(sqlite::Sqlite::open(d, a.shape.symbols))
    }),
    ("segments", "(e) append-only log + column segments", |d, a| Box::new(segments::Segments::open(d, a.rotate_at, 8))),
    ("segment-store", "(f) the product's SegmentStore (e), through the Store trait", |d, a| {
        Box::new(segment_store::ProductSegments::open(d, a.shape.symbols, a.rotate_at))
    }),
];

/// The series read, and what a correct store answers.
struct Expected {
    sym: u32,
    iv: Interval,
    newest: Vec<Out>,
    /// The poll: bars revised in the last 1 % of the writes (new bars and corrections).
    poll_since: i64,
    poll: Vec<Out>,
    /// A long-missed poll: more bars than the limit revised since.
    behind_since: i64,
    behind: Vec<Out>,
    bars: u64,
    writes: usize,
}

fn expected(input: &[Vec<Rec>], a: &Args) -> Expected {
    let (sym, iv) = (a.shape.symbols / 2, Interval::S1);
    let series = workload::series(input, sym, iv);
    let all: Vec<&Rec> = input.iter().flatten().collect();
    let poll_since = all[all.len() * 99 / 100].revised;
    // Where the series has 20 % more bars left than a read returns (all of them in a short series).
    let behind_since = series[series.len().saturating_sub(a.read + a.read / 5)].revised;
    Expected {
        sym,
        iv,
        newest: workload::newest(&series, a.read),
        poll_since,
        poll: workload::since(&series, poll_since, a.read),
        behind_since,
        behind: workload::since(&series, behind_since, a.read),
        bars: u64::from(a.shape.symbols) * workload::INTERVALS.len() as u64 * u64::from(a.shape.steps),
        writes: all.len(),
    }
}

fn check(c: &mut dyn Candidate, e: &Expected, name: &str, when: &str, read: usize) {
    assert!(
        c.newest(e.sym, e.iv, read) == e.newest,
        "{name} {when}: the newest {read} bars differ from what was written"
    );
    assert!(c.since(e.sym, e.iv, e.poll_since, read) == e.poll, "{name} {when}: since= (the last 1 %) differs");
    assert!(
        c.since(e.sym, e.iv, e.behind_since, read) == e.behind,
        "{name} {when}: since= (more bars than the limit) differs"
    );
}

fn run(name: &str, title: &str, open: Open, input: &[Vec<Rec>], e: &Expected, a: &Args) {
    eprintln!("{name}: writing");
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), a);
    let mut per_batch = Vec::with_capacity(input.len());
    for batch in input {
        let t = Instant::now();
        c.write(batch);
        per_batch.push(t.elapsed());
    }
    let total: Duration = per_batch.iter().sum();
    let tail = per_batch.len() / 10;
    let last: Duration = per_batch[per_batch.len() - tail.max(1)..].iter().sum();
    let last_bars: usize = input[input.len() - tail.max(1)..].iter().map(Vec::len).sum();
    let bytes_written = dir_bytes(dir.path());
    check(&mut *c, e, name, "after the writes", a.read);
    let newest_ms = median_ms(|| c.newest(e.sym, e.iv, a.read));
    let poll_ms = median_ms(|| c.since(e.sym, e.iv, e.poll_since, a.read));
    let t = Instant::now();
    let compacted = c.compact();
    let compact_s = t.elapsed().as_secs_f64();
    let bytes_compacted = dir_bytes(dir.path());
    check(&mut *c, e, name, "after compaction", a.read);
    drop(c);
    let mut c = open(dir.path(), a);
    check(&mut *c, e, name, "opened again", a.read);
    drop(c);
    let per_bar = |b: u64| b as f64 / e.bars as f64;
    println!(
        "| {title} | {:.0} K | {:.0} K | {:.0} B | {} | {:.2} ms | {:.2} ms ({} bars) |",
        e.writes as f64 / total.as_secs_f64() / 1e3,
        last_bars as f64 / last.as_secs_f64() / 1e3,
        per_bar(bytes_written),
        if compacted { format!("{:.0} B ({compact_s:.1} s)", per_bar(bytes_compacted)) } else { "–".into() },
        newest_ms,
        poll_ms,
        e.poll.len(),
    );
}

fn main() {
    let a = args();
    let s = a.shape;
    eprintln!(
        "{} symbols × {} intervals × {} bars, batches of {}, one series in {} corrected per step",
        s.symbols,
        workload::INTERVALS.len(),
        s.steps,
        s.batch,
        s.correct_every
    );
    let input = workload::batches(s);
    let e = expected(&input, &a);
    assert!(e.poll.len() < e.newest.len(), "the poll must be selective");
    eprintln!("{} writes ({} bars stored, the rest corrections)", e.writes, e.bars);
    println!(
        "| candidate | write rate, all (bars/s) | write rate, last 10 % | bytes per bar after the writes | after compaction (its time) | newest {} bars | since= poll |",
        a.read
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, title, open) in CANDIDATES {
        if a.only.as_ref().is_some_and(|only| !only.iter().any(|o| o == name)) {
            continue;
        }
        run(name, title, open, &input, &e, &a);
    }
}
