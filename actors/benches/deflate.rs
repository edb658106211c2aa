//! permessage-deflate (issue 16): what compressing costs per frame, and what it saves, on the two frames that
//! matter: one `price_update` (compressed once per update for every deflate client) and a 5,000-bar history
//! reply (compressed per request, on the history thread). Level 1 (the server's) against level 6 (zlib's
//! default), and the client's inflate. Prints each frame's size plain and compressed before the timings.
//!
//! `cargo bench -p candlecast-actors --bench deflate`

use std::hint::black_box;

use bytes::Bytes;
use candlecast_actors::deflate::{compress_frame, Inflater};
use candlecast_actors::model::{Bar, Interval};
use candlecast_actors::protocol::{self, Historical, PriceUpdate};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress};

/// Six significant digits, as the simulated feed rounds prices and volumes.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// A small deterministic generator (xorshift64*): the same bars every run.
struct Noise(u64);

impl Noise {
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        lo + unit * (hi - lo)
    }
}

/// 5,000 one-minute bars of a geometric random walk around 50,000 (the simulated feed's shape).
fn bars(n: usize) -> Vec<Bar> {
    let mut rng = Noise(0x9e37_79b9_7f4a_7c15);
    let mut price = 50_000.0f64;
    (0..n)
        .map(|i| {
            let open = round_sig(price);
            let (mut high, mut low) = (open, open);
            for _ in 0..20 {
                price *= (rng.range(-1.0, 1.0) * 0.0008).exp();
                high = high.max(round_sig(price));
                low = low.min(round_sig(price));
            }
            let mut bar =
                Bar::from_trade("BTCUSDT".into(), Interval::M1, 1_700_000_000_000 + i as i64 * 60_000, open, 1.0);
            bar.high = high;
            bar.low = low;
            bar.close = round_sig(price);
            bar.volume = round_sig(rng.range(0.5, 40.0));
            bar.trades = rng.range(50.0, 400.0) as u64;
            bar.closed = true;
            bar
        })
        .collect()
}

fn payload(frame: &[u8]) -> &[u8] {
    match frame[1] & 0x7f {
        126 => &frame[4..],
        127 => &frame[10..],
        _ => &frame[2..],
    }
}

/// Raw deflate with `c` (reset first, as the server resets its compressor per message), the sync tail stripped.
fn deflate_with(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    c.reset();
    let mut out = Vec::with_capacity(data.len() + 1024);
    let _ = c.compress_vec(data, &mut out, FlushCompress::Sync);
    out.truncate(out.len().saturating_sub(4));
    out
}

fn frames() -> Vec<(&'static str, Bytes)> {
    let history = bars(5_000);
    let last = history.last().cloned().unwrap_or_else(|| bars(1).remove(0));
    let update = protocol::text_frame(&PriceUpdate {
        kind: "price_update",
        symbol: &last.symbol,
        interval: Interval::S1,
        data: (&last).into(),
        correction: false,
        ts_sent: 1_765_000_000_123_456,
    });
    let reply = protocol::text_frame(&Historical::new("BTCUSDT", Interval::M1, &history, None));
    vec![("price_update", update), ("history_5000_bars", reply)]
}

fn deflate(c: &mut Criterion) {
    let frames = frames();
    for (name, frame) in &frames {
        let plain = payload(frame);
        let server = payload(&compress_frame(frame)).len();
        let sizes: Vec<String> = (1..=9)
            .map(|level| {
                let n = deflate_with(&mut Compress::new(Compression::new(level), false), plain).len();
                format!("L{level} {n} ({:.1} %)", 100.0 * n as f64 / plain.len() as f64)
            })
            .collect();
        eprintln!("{name}: payload {} bytes plain, {server} as the server sends it; {}", plain.len(), sizes.join(", "));
    }
    let mut g = c.benchmark_group("deflate");
    for (name, frame) in &frames {
        g.throughput(Throughput::Bytes(payload(frame).len() as u64));
        g.bench_function(format!("{name}_server"), |b| b.iter(|| black_box(compress_frame(black_box(frame)))));
        let plain = payload(frame).to_vec();
        for level in [1, 2, 6] {
            let mut c = Compress::new(Compression::new(level), false);
            g.bench_function(format!("{name}_level{level}"), |b| {
                b.iter(|| black_box(deflate_with(&mut c, black_box(&plain))))
            });
        }
        let compressed = payload(&compress_frame(frame)).to_vec();
        let mut inflater = Inflater::default();
        g.bench_function(format!("{name}_inflate"), |b| {
            b.iter(|| black_box(inflater.inflate(black_box(&compressed), 1 << 24).map(|v| v.len())))
        });
    }
    g.finish();
}

criterion_group!(benches, deflate);
criterion_main!(benches);
