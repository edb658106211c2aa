//! (f) The product's [`SegmentStore`] (`[store] kind = "segments"`): design (e) made concurrent and durable
//! (symbols file, revision stamping, size-tiered merges in a background thread, retention floors, index
//! swapped behind an `Arc`), called through the [`Store`] trait on a tokio runtime as the persister calls
//! it: each write builds the `StoredBar`s, as (a) does.

use std::path::Path;
use std::sync::Arc;

use candlecast_actors::model::{Bar, Interval, Symbol};
use candlecast_actors::persist::{Range, SegmentOptions, SegmentStore, Store, StoredBar};

use crate::workload::{Out, Rec};
use crate::Candidate;

pub struct ProductSegments {
    rt: tokio::runtime::Runtime,
    store: SegmentStore,
    names: Vec<Symbol>,
    source: Arc<str>,
}

impl ProductSegments {
    pub fn open(dir: &Path, symbols: u32, rotate_bars: usize) -> ProductSegments {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let options = SegmentOptions { rotate_bars, background_merge: true };
        ProductSegments {
            rt,
            store: SegmentStore::open(dir, options).unwrap(),
            names: (0..symbols).map(|i| Symbol::from(format!("SYM{i:05}USDT"))).collect(),
            source: "simulated".into(),
        }
    }
}

impl Drop for ProductSegments {
    fn drop(&mut self) {
        // Releases the directory's lock before the bench opens the store again.
        let _ = self.rt.block_on(self.store.close());
    }
}

fn out(b: &Bar) -> Out {
    Out { t: b.open_time, px: [b.open, b.high, b.low, b.close, b.volume].map(f64::to_bits), trades: b.trades }
}

impl Candidate for ProductSegments {
    fn write(&mut self, batch: &[Rec]) {
        let bars: Arc<[StoredBar]> = batch
            .iter()
            .map(|r| {
                let [open, high, low, close, volume] = r.px;
                let bar = Bar {
                    symbol: self.names[r.sym as usize].clone(),
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
        self.rt.block_on(self.store.write(bars)).unwrap();
    }

    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out> {
        let range = Range { interval: iv, start: None, end: None, limit: n };
        let read = self.store.bars(&self.names[sym as usize], range);
        self.rt.block_on(read).unwrap().iter().map(out).collect()
    }

    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out> {
        let read = self.store.revised_since(&self.names[sym as usize], iv, since, limit);
        self.rt.block_on(read).unwrap().iter().map(out).collect()
    }

    /// Merges run by themselves in the background; there is no "merge everything" to call.
    fn compact(&mut self) -> bool {
        false
    }
}
