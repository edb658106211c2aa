//! (c) fjall, an LSM tree (2.x, lz4 blocks, its default leveled compaction in background threads): the same
//! 13-byte keys and 56-byte values as (b), in a `bars` partition; the revision index in a `revisions`
//! partition, 21-byte keys, empty values. Each batch is one atomic fjall batch, fsynced before `write`
//! returns (`PersistMode::SyncAll`), as redb's commit is.
//!
//! The index is kept without reading first: an LSM write is blind, and a read before every write (to find
//! the revision entry to delete) would cost a lookup per bar. So a corrected bar leaves its old revision
//! entry behind; `since` drops it (it reads each bar and keeps each open time once). A stale entry
//! costs 21 bytes per correction, counted in the bytes measured.

use std::path::Path;

use candlecast_actors::model::Interval;
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::redb_compact::{key, out, revised_of, revision, unsortable, value};
use crate::workload::{Out, Rec};
use crate::Candidate;

pub struct Fjall {
    keyspace: Keyspace,
    bars: PartitionHandle,
    revisions: PartitionHandle,
}

impl Fjall {
    pub fn open(dir: &Path) -> Fjall {
        let keyspace = Config::new(dir).open().unwrap();
        let bars = keyspace.open_partition("bars", PartitionCreateOptions::default()).unwrap();
        let revisions = keyspace.open_partition("revisions", PartitionCreateOptions::default()).unwrap();
        Fjall { keyspace, bars, revisions }
    }
}

impl Candidate for Fjall {
    fn write(&mut self, batch: &[Rec]) {
        let mut b = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
        for r in batch {
            b.insert(&self.bars, &key(r.sym, r.iv, r.t)[..], &value(r)[..]);
            b.insert(&self.revisions, &revision(r.sym, r.iv, r.revised, r.t)[..], &[][..]);
        }
        b.commit().unwrap();
    }

    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out> {
        let (from, to) = (key(sym, iv, i64::MIN), key(sym, iv, i64::MAX));
        let mut out: Vec<Out> = self
            .bars
            .range(from..to)
            .rev()
            .take(n)
            .map(|e| {
                let (k, v) = e.unwrap();
                out(unsortable(&k[5..]), &v)
            })
            .collect();
        out.reverse();
        out
    }

    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out> {
        let (from, to) = (revision(sym, iv, since, i64::MIN), revision(sym, iv, i64::MAX, i64::MAX));
        let mut times: Vec<i64> = self.revisions.range(from..=to).map(|e| unsortable(&e.unwrap().0[13..])).collect();
        times.sort_unstable();
        times.dedup();
        let mut out: Vec<Out> = times
            .iter()
            .rev()
            .filter_map(|&t| {
                let v = self.bars.get(key(sym, iv, t)).unwrap()?;
                (revised_of(&v) >= since).then(|| out(t, &v))
            })
            .take(limit)
            .collect();
        out.reverse();
        out
    }

    /// Memtables flushed, then a major compaction of both partitions (old versions and the journal gone).
    fn compact(&mut self) -> bool {
        for p in [&self.bars, &self.revisions] {
            p.rotate_memtable_and_wait().unwrap();
            p.major_compact().unwrap();
        }
        self.keyspace.persist(PersistMode::SyncAll).unwrap();
        true
    }
}
