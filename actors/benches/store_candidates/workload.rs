//! The one workload every candidate gets: bars of `symbols` × the 1s, 1m and 1h intervals, time-major (each
//! step one new bar per series, as a backfill or live trading closes them), with a share of corrections (a
//! series' previous bar written again with other values and a later revision), cut into the persister's
//! batches. Everything is derived from a hash of (symbol, interval, step, version): the same in every run.

use candlecast_actors::model::Interval;

/// The intervals of the workload: the finest, a middle one and a coarse one.
pub const INTERVALS: [Interval; 3] = [Interval::S1, Interval::M1, Interval::H1];

/// First open time (2023-11-14), and the wall clock at the first write, in ms.
const T0: i64 = 1_700_000_000_000;
const WALL0: i64 = 1_750_000_000_000;

/// One bar as every candidate receives it: a symbol id (the product keeps names; the candidates that
/// key by id keep a name → id table, which holds a few bytes per symbol, not per bar).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    pub sym: u32,
    pub iv: Interval,
    pub t: i64,
    /// open, high, low, close, volume: stored bit-exact by every candidate.
    pub px: [f64; 5],
    pub trades: u64,
    /// Wall-clock ms of the write (what `since=` compares with): rises with every write.
    pub revised: i64,
}

/// What a read returns, compared bit for bit across candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Out {
    pub t: i64,
    pub px: [u64; 5],
    pub trades: u64,
}

impl From<&Rec> for Out {
    fn from(r: &Rec) -> Out {
        Out { t: r.t, px: r.px.map(f64::to_bits), trades: r.trades }
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finalizer: a well-spread hash of a counter.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub symbols: u32,
    /// Bars per (symbol, interval).
    pub steps: u32,
    /// Bars per write (the persister's `store.batch_bars`).
    pub batch: usize,
    /// One series in `correct_every` has its previous bar corrected at each step.
    pub correct_every: u64,
}

fn bar(sym: u32, ivx: usize, step: u32, version: u64, revised: i64) -> Rec {
    let iv = INTERVALS[ivx];
    let h = mix(((sym as u64) << 34) ^ ((ivx as u64) << 32) ^ (step as u64) ^ (version << 60));
    // Prices on a 0.0001 tick, as exchanges quote them: decimal fractions, not compressible bit patterns.
    let tick = |x: u64| (x % 2_000_000) as f64 / 10_000.0;
    let open = 50.0 + tick(h);
    let (high, low) = (open + tick(h >> 21) / 100.0, open - tick(h >> 42) / 100.0);
    let close = low + (high - low) * ((h >> 13) % 1_000) as f64 / 1_000.0;
    let volume = ((h >> 7) % 10_000_000) as f64 / 1_000.0;
    Rec {
        sym,
        iv,
        t: T0 + step as i64 * iv.millis(),
        px: [open, high, low, close, volume],
        trades: (h >> 50) % 600,
        revised,
    }
}

/// Every write, in order, cut into batches.
pub fn batches(shape: Shape) -> Vec<Vec<Rec>> {
    let mut all = Vec::new();
    let mut wall = WALL0;
    for step in 0..shape.steps {
        for sym in 0..shape.symbols {
            for ivx in 0..INTERVALS.len() {
                all.push(bar(sym, ivx, step, 0, wall));
                wall += 1;
                let h = mix(((sym as u64) << 33) ^ ((ivx as u64) << 31) ^ step as u64 ^ 0xC0);
                if step > 0 && h.is_multiple_of(shape.correct_every) {
                    all.push(bar(sym, ivx, step - 1, 1, wall));
                    wall += 1;
                }
            }
        }
    }
    all.chunks(shape.batch).map(<[Rec]>::to_vec).collect()
}

/// The final state of one series (later writes replace earlier ones), ascending.
pub fn series(batches: &[Vec<Rec>], sym: u32, iv: Interval) -> Vec<Rec> {
    let mut map = std::collections::BTreeMap::new();
    for r in batches.iter().flatten().filter(|r| r.sym == sym && r.iv == iv) {
        map.insert(r.t, *r);
    }
    map.into_values().collect()
}

/// What a correct store answers for the newest `n` bars of `series`.
pub fn newest(series: &[Rec], n: usize) -> Vec<Out> {
    series[series.len().saturating_sub(n)..].iter().map(Out::from).collect()
}

/// What a correct store answers for `since=`: bars revised at or after `since`, the newest `limit`.
pub fn since(series: &[Rec], since: i64, limit: usize) -> Vec<Out> {
    let hits: Vec<Out> = series.iter().filter(|r| r.revised >= since).map(Out::from).collect();
    hits[hits.len().saturating_sub(limit)..].to_vec()
}
