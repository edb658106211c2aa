//! Writing a batch so that one bar the store refuses never holds back the others.
//!
//! When the store refuses a batch for what it holds ([`StoreError::is_data`]), the batch is cut in halves
//! and each half written again, down to the single bars it refuses: those are the dead letters, every
//! other bar is written. That costs about `2 * bad * log2(batch)` writes for `bad` refused bars, once. An
//! outage meanwhile (the store goes down) ends it with that error: the whole batch is then journaled and
//! retried as any failed batch, and the halves already written are written again, which upserts make
//! harmless.

use std::sync::Arc;

use super::dead_letters::DeadLetter;
use super::{Store, StoreError, StoredBar};

/// Writes `batch`; `Ok` holds the bars the store refused, with its reason, every other bar being written.
pub async fn write_isolating(store: Arc<dyn Store>, batch: Arc<[StoredBar]>) -> Result<Vec<DeadLetter>, StoreError> {
    let mut dead = Vec::new();
    // Ranges of `batch` still to write, the next one last, so that bars are written in order.
    let mut pending = Vec::with_capacity(64);
    pending.push(0..batch.len());
    while let Some(range) = pending.pop() {
        let part: Arc<[StoredBar]> =
            if range.len() == batch.len() { batch.clone() } else { batch[range.clone()].iter().cloned().collect() };
        match store.write(part).await {
            Ok(()) => {}
            Err(e) if !e.is_data() => return Err(e),
            Err(e) if range.len() == 1 => dead.push(DeadLetter {
                bar: serde_json::to_value(&batch[range.start]).unwrap_or_default(),
                reason: format!("{} refused it: {e}", store.kind()),
            }),
            Err(_) => {
                let mid = range.start + range.len() / 2;
                pending.push(mid..range.end);
                pending.push(range.start..mid);
            }
        }
    }
    Ok(dead)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Bar, Interval};
    use crate::persist::memory::MemoryStore;
    use crate::persist::{Range, StoreFuture};
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// The memory store, refusing every batch holding a bar of volume 13 (as InfluxDB refuses a field of
    /// the wrong type), or failing every write while `down`.
    pub(crate) struct Picky {
        pub inner: Arc<MemoryStore>,
        pub down: AtomicBool,
        pub writes: AtomicUsize,
    }

    impl Store for Picky {
        fn kind(&self) -> &'static str {
            "picky"
        }
        fn check(&self) -> StoreFuture<()> {
            self.inner.check()
        }
        fn write(&self, bars: Arc<[StoredBar]>) -> StoreFuture<()> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return async { Err(StoreError::Unreachable("down".into())) }.boxed();
            }
            if bars.iter().any(|b| b.bar.volume == 13.0) {
                return async { Err(StoreError::Rejected("field type conflict".into())) }.boxed();
            }
            self.inner.write(bars)
        }
        fn bars(&self, symbol: &crate::model::Symbol, range: Range) -> StoreFuture<Vec<Bar>> {
            self.inner.bars(symbol, range)
        }
        fn revised_since(
            &self,
            symbol: &crate::model::Symbol,
            interval: Interval,
            since: i64,
            limit: usize,
        ) -> StoreFuture<Vec<Bar>> {
            self.inner.revised_since(symbol, interval, since, limit)
        }
    }

    fn batch(volumes: &[f64]) -> Arc<[StoredBar]> {
        volumes
            .iter()
            .enumerate()
            .map(|(i, v)| StoredBar {
                bar: Bar::from_trade("BTCUSDT".into(), Interval::M1, i as i64 * 60_000, 10.0, *v),
                source: "simulated".into(),
                revised: 1,
            })
            .collect()
    }

    #[actix_rt::test]
    async fn only_the_refused_bars_are_dead_and_the_rest_is_written() {
        let picky = Arc::new(Picky { inner: Arc::default(), down: false.into(), writes: 0.into() });
        let mut volumes = vec![1.0; 16];
        volumes[5] = 13.0;
        volumes[11] = 13.0;
        let dead = write_isolating(picky.clone(), batch(&volumes)).await.unwrap();
        let opens: Vec<i64> = dead.iter().map(|d| d.bar["bar"]["open_time"].as_i64().unwrap()).collect();
        assert_eq!(opens, vec![5 * 60_000, 11 * 60_000]);
        assert!(dead[0].reason.contains("field type conflict"), "{}", dead[0].reason);
        let range = Range { interval: Interval::M1, start: None, end: None, limit: 100 };
        let stored = picky.inner.bars(&"BTCUSDT".into(), range).await.unwrap();
        assert_eq!(stored.len(), 14);
        assert!(picky.writes.load(Ordering::Relaxed) <= 1 + 2 * 2 * 4, "bisection, not bar by bar");
    }

    #[actix_rt::test]
    async fn an_outage_is_not_a_dead_letter() {
        let picky = Arc::new(Picky { inner: Arc::default(), down: true.into(), writes: 0.into() });
        let err = write_isolating(picky, batch(&[1.0, 13.0])).await.unwrap_err();
        assert!(!err.is_data());
    }
}
