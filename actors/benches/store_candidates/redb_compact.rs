//! (b) redb with compact keys and packed values: key symbol id u32 + interval index u8 + open time i64
//! (big-endian, sign bit flipped, so bytes sort as numbers), 13 bytes; value 5 × f64 + trades u64 + revised
//! i64, little-endian, fixed width, 56 bytes. Prices stay f64 bit for bit (no f32, no decimal scaling: a
//! price must read back exactly as the exchange sent it); no varints either, redb pages hold fixed-width
//! values without a length per entry. Revision index (for `since=`): key (symbol id, interval, revised,
//! open time), 21 bytes, its old entry removed in the same transaction (redb's insert returns the old
//! value, so the upkeep costs no extra lookup). symbol name → id in a table of its own.

use std::path::Path;

use candlecast_actors::model::Interval;
use redb::{Database, TableDefinition};

use crate::workload::{Out, Rec};
use crate::Candidate;

const BARS: TableDefinition<&[u8; 13], &[u8; 56]> = TableDefinition::new("bars");
const REVISIONS: TableDefinition<&[u8; 21], ()> = TableDefinition::new("revisions");
const SYMBOLS: TableDefinition<&str, u32> = TableDefinition::new("symbols");

/// i64 whose big-endian bytes sort as the numbers do.
pub fn sortable(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn unsortable(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().unwrap()) ^ (1 << 63)) as i64
}

pub fn key(sym: u32, iv: Interval, t: i64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..4].copy_from_slice(&sym.to_be_bytes());
    k[4] = iv.index() as u8;
    k[5..].copy_from_slice(&sortable(t));
    k
}

pub fn revision(sym: u32, iv: Interval, revised: i64, t: i64) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[..13].copy_from_slice(&key(sym, iv, revised));
    k[13..].copy_from_slice(&sortable(t));
    k
}

pub fn value(r: &Rec) -> [u8; 56] {
    let mut v = [0u8; 56];
    for (i, f) in r.px.iter().enumerate() {
        v[i * 8..i * 8 + 8].copy_from_slice(&f.to_le_bytes());
    }
    v[40..48].copy_from_slice(&r.trades.to_le_bytes());
    v[48..].copy_from_slice(&r.revised.to_le_bytes());
    v
}

pub fn revised_of(v: &[u8]) -> i64 {
    i64::from_le_bytes(v[48..56].try_into().unwrap())
}

pub fn out(t: i64, v: &[u8]) -> Out {
    let word = |i: usize| u64::from_le_bytes(v[i * 8..i * 8 + 8].try_into().unwrap());
    Out { t, px: [word(0), word(1), word(2), word(3), word(4)], trades: word(5) }
}

pub struct RedbCompact {
    db: Database,
}

impl RedbCompact {
    pub fn open(dir: &Path, symbols: u32) -> RedbCompact {
        let db = Database::create(dir.join("compact.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(BARS).unwrap();
            txn.open_table(REVISIONS).unwrap();
            let mut names = txn.open_table(SYMBOLS).unwrap();
            for id in 0..symbols {
                names.insert(format!("SYM{id:05}USDT").as_str(), id).unwrap();
            }
        }
        txn.commit().unwrap();
        RedbCompact { db }
    }
}

impl Candidate for RedbCompact {
    fn write(&mut self, batch: &[Rec]) {
        let txn = self.db.begin_write().unwrap();
        {
            let mut bars = txn.open_table(BARS).unwrap();
            let mut revisions = txn.open_table(REVISIONS).unwrap();
            for r in batch {
                let old = bars.insert(&key(r.sym, r.iv, r.t), &value(r)).unwrap().map(|v| revised_of(v.value()));
                if let Some(old) = old {
                    revisions.remove(&revision(r.sym, r.iv, old, r.t)).unwrap();
                }
                revisions.insert(&revision(r.sym, r.iv, r.revised, r.t), ()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out> {
        let txn = self.db.begin_read().unwrap();
        let bars = txn.open_table(BARS).unwrap();
        let (from, to) = (key(sym, iv, i64::MIN), key(sym, iv, i64::MAX));
        let mut out: Vec<Out> = bars
            .range::<&[u8; 13]>(&from..&to)
            .unwrap()
            .rev()
            .take(n)
            .map(|e| {
                let (k, v) = e.unwrap();
                out(unsortable(&k.value()[5..]), v.value())
            })
            .collect();
        out.reverse();
        out
    }

    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out> {
        let txn = self.db.begin_read().unwrap();
        let (bars, revisions) = (txn.open_table(BARS).unwrap(), txn.open_table(REVISIONS).unwrap());
        let (from, to) = (revision(sym, iv, since, i64::MIN), revision(sym, iv, i64::MAX, i64::MAX));
        let mut times: Vec<i64> = revisions
            .range::<&[u8; 21]>(&from..=&to)
            .unwrap()
            .map(|e| unsortable(&e.unwrap().0.value()[13..]))
            .collect();
        times.sort_unstable();
        let mut out: Vec<Out> = times
            .iter()
            .rev()
            .take(limit)
            .filter_map(|&t| bars.get(&key(sym, iv, t)).unwrap().map(|v| out(t, v.value())))
            .collect();
        out.reverse();
        out
    }

    fn compact(&mut self) -> bool {
        while self.db.compact().unwrap() {}
        true
    }
}
