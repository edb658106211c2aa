//! (a) Today's store, as the server uses it: [`EmbeddedStore`] (redb; key (symbol text, interval text, open
//! time), value 5 × f64, trades u64, revised i64, source text; the revision index and the per-interval
//! counts), called through its async API on a tokio runtime as the persister calls it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candlecast_actors::model::{Bar, Interval, Symbol};
use candlecast_actors::persist::{EmbeddedStore, EMBEDDED_FILE_NAME as FILE_NAME};
use candlecast_actors::persist::{Range, Store, StoredBar};

use crate::workload::{Out, Rec};
use crate::Candidate;

pub struct RedbToday {
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    store: Option<EmbeddedStore>,
    names: Vec<Symbol>,
    source: Arc<str>,
}

impl RedbToday {
    pub fn open(dir: &Path, symbols: u32) -> RedbToday {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        RedbToday {
            rt,
            dir: dir.to_owned(),
            store: Some(EmbeddedStore::open(dir).unwrap()),
            names: (0..symbols).map(|i| Symbol::from(format!("SYM{i:05}USDT"))).collect(),
            source: "simulated".into(),
        }
    }

    /// The store, opened again if `compact` closed it (so the bytes after compaction are measured before).
    fn store(&mut self) -> &EmbeddedStore {
        self.store.get_or_insert_with(|| EmbeddedStore::open(&self.dir).unwrap())
    }
}

fn out(b: &Bar) -> Out {
    Out { t: b.open_time, px: [b.open, b.high, b.low, b.close, b.volume].map(f64::to_bits), trades: b.trades }
}

impl Candidate for RedbToday {
    fn write(&mut self, batch: &[Rec]) {
        // Building the StoredBars is part of the write: the persister hands the store StoredBars it already
        // has, but every other candidate encodes inside `write` too.
        let bars: Arc<[StoredBar]> = batch
            .iter()
            .map(|r| {
                let [open, high, low, close, volume] = r.px;
                let symbol = self.names[r.sym as usize].clone();
                let bar = Bar {
                    symbol,
                    interval: r.iv,
                    open_time: r.t,
                    open,
                    high,
                    low,
                    close,
                    volume,
                    trades: r.trades,
                    closed: true,
                };
                StoredBar { bar, source: self.source.clone(), revised: r.revised }
            })
            .collect();
        let write = self.store().write(bars);
        self.rt.block_on(write).unwrap();
    }

    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out> {
        let range = Range { interval: iv, start: None, end: None, limit: n };
        let symbol = self.names[sym as usize].clone();
        let read = self.store().bars(&symbol, range);
        self.rt.block_on(read).unwrap().iter().map(out).collect()
    }

    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out> {
        let symbol = self.names[sym as usize].clone();
        let read = self.store().revised_since(&symbol, iv, since, limit);
        self.rt.block_on(read).unwrap().iter().map(out).collect()
    }

    /// redb's `compact` on the closed file (the product never calls it); the next call opens the store again.
    fn compact(&mut self) -> bool {
        if let Some(store) = self.store.take() {
            self.rt.block_on(store.close()).unwrap();
        }
        let mut db = redb::Database::create(self.dir.join(FILE_NAME)).unwrap();
        while db.compact().unwrap() {}
        true
    }
}
