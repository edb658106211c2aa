//! The symbol search over a master of 100,000 instruments (Kite's full master is about that size), side
//! by side with the naive design it replaces the need for: upper-casing every row at each query and
//! sorting every match. docs/BENCHMARKS.md ("Symbol search") has the figures.
//!
//! `cargo bench -p candlecast-actors --bench symbol_search`
//!
//! The instruments are synthetic but shaped like Kite's: some 5,000 equities on NSE and BSE with names,
//! and options and futures on NFO whose trading symbols share long prefixes (NIFTY25DEC24500CE), so that a
//! short query matches tens of thousands of rows, the worst case for ranking.

use std::hint::black_box;

use candlecast_actors::symbol_master::{Instrument, SearchQuery, SymbolMaster};
use criterion::{criterion_group, criterion_main, Criterion};

const INSTRUMENTS: usize = 100_000;

fn instrument(exchange: &str, tradingsymbol: String, name: String, kind: &str) -> Instrument {
    Instrument {
        symbol: format!("{exchange}:{tradingsymbol}"),
        exchange: exchange.into(),
        tradingsymbol,
        name,
        kind: kind.into(),
        segment: String::new(),
        lot_size: Some(1.0),
        tick_size: Some(0.05),
        source: "kite",
    }
}

/// A deterministic name: syllables from the index.
fn word(mut i: usize) -> String {
    const SYL: [&str; 16] =
        ["RE", "LI", "AN", "CE", "TA", "TI", "NF", "OS", "BA", "JA", "HD", "FC", "MA", "RU", "SU", "ZU"];
    let mut out = String::new();
    for _ in 0..4 {
        out.push_str(SYL[i % 16]);
        i /= 16;
    }
    out
}

fn master_rows() -> Vec<Instrument> {
    let mut rows = vec![instrument("NSE", "RELIANCE".into(), "RELIANCE INDUSTRIES".into(), "EQ")];
    for i in 0..2_500 {
        let w = word(i * 7 + 3);
        rows.push(instrument("NSE", w.clone(), format!("{w} LIMITED"), "EQ"));
        rows.push(instrument("BSE", w.clone(), format!("{w} LIMITED"), "EQ"));
    }
    let underlyings = ["NIFTY", "BANKNIFTY", "FINNIFTY", "RELIANCE", "INFY", "TCS", "HDFCBANK", "SBIN"];
    let mut strike = 0;
    while rows.len() < INSTRUMENTS {
        let u = underlyings[strike % underlyings.len()];
        let s = 10_000 + (strike / underlyings.len()) * 50;
        rows.push(instrument("NFO", format!("{u}25DEC{s}CE"), u.into(), "CE"));
        rows.push(instrument("NFO", format!("{u}25DEC{s}PE"), u.into(), "PE"));
        strike += 1;
    }
    rows.truncate(INSTRUMENTS);
    rows
}

/// The naive search: upper-case at each query, rank, sort every match, page.
fn naive(rows: &[Instrument], q: &SearchQuery) -> (usize, Vec<Instrument>) {
    let mut hits: Vec<(u8, &Instrument)> = rows
        .iter()
        .filter(|i| q.exchange.as_deref().is_none_or(|e| i.exchange == e))
        .filter_map(|i| {
            let (key, name) = (i.tradingsymbol.to_uppercase(), i.name.to_uppercase());
            let rank = if key == q.q {
                0
            } else if key.starts_with(&q.q) {
                1
            } else if key.contains(&q.q) {
                2
            } else if name.contains(&q.q) {
                3
            } else {
                return None;
            };
            Some((rank, i))
        })
        .collect();
    hits.sort_by(|a, b| {
        (a.0, a.1.tradingsymbol.len(), &a.1.tradingsymbol).cmp(&(b.0, b.1.tradingsymbol.len(), &b.1.tradingsymbol))
    });
    (hits.len(), hits.iter().skip(q.offset).take(q.limit).map(|(_, i)| (*i).clone()).collect())
}

fn search(c: &mut Criterion) {
    let rows = master_rows();
    let master = SymbolMaster::default();
    master.replace("kite", "", rows.clone());
    let mut group = c.benchmark_group("symbol_search_100k");
    for (label, q, exchange) in [
        ("exact RELIANCE", "RELIANCE", None),
        ("prefix REL", "REL", None),
        ("one letter N (most rows match)", "N", None),
        ("NIFTY on NFO", "NIFTY", Some("NFO")),
        ("no match ZZZQ", "ZZZQ", None),
    ] {
        let query = SearchQuery::new(Some(q), exchange, Some(20), None).expect("a valid query");
        // Same answer from both designs, checked once before measuring.
        let ours = master.search(&query, &[]);
        let theirs = naive(&rows, &query);
        assert_eq!(ours.total, theirs.0, "{label}");
        group
            .bench_function(format!("index: {label}"), |b| b.iter(|| black_box(master.search(black_box(&query), &[]))));
        group.bench_function(format!("naive: {label}"), |b| b.iter(|| black_box(naive(&rows, black_box(&query)))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = search
}
criterion_main!(benches);
