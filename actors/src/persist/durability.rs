//! Which closed bars are surely in the store, so that aggregators may let go of them (memory tiers,
//! `aggregator.hot_bars`).
//!
//! An aggregator keeps every closed bar in memory until the store has it: history merges memory (newest)
//! over the store (older), and the persistence actor's buffer and journal are not read, so a bar dropped
//! from memory before it is stored would be a hole. What the store has is told by one watermark,
//! [`Durability::stored_before`]: every closed bar handed to persistence before that wall-clock ms is in
//! the store. Handed means:
//! - a live bar (closed, corrected or upserted): when its aggregator published it to the hub, counted in
//!   `published_unreceived` until the persistence actor takes it from its mailbox;
//! - a backfill: from before its seed reaches the aggregator ([`Durability::announce`]) until
//!   `History::persist` has counted it in the persistence stats (`backfill_waiting_bars`,
//!   `backfill_queued_bars`), which the persistence actor counts down as it takes the bars.
//!
//! The persistence actor moves the watermark in two steps ([`Watermark`]): at a moment `r` when nothing is
//! on its way (every count above 0), every bar handed before `r` has been received, stamped `revised <= r`;
//! once the oldest bar not yet in the store (buffer, batch in flight, journal) was received after `r`,
//! all of them are written, and `r` becomes the watermark. Once bars were dropped (neither the store nor
//! the journal took them) the watermark stops: memory then keeps what it can, as without tiers.
//!
//! Released windows are given back to the system ([`Durability::trim_if_due`]): glibc's malloc keeps freed
//! memory in its arenas, and after a backfill of 1,000 symbols an idle server kept 1.5 GB of RSS although
//! its windows held 60 MB; `malloc_trim` took it to 0.29 GB (docs/BENCHMARKS.md, "Per-symbol cost").

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::model::now_ms;
use crate::telemetry::PersistStats;

/// See the module documentation. One per engine, shared by its aggregators and its persistence actor.
#[derive(Debug)]
pub struct Durability {
    /// Closed bars and corrections published by aggregators and not yet taken by the persistence actor.
    published_unreceived: AtomicU64,
    /// Backfills between their seed and their hand-over to persistence.
    announced: AtomicU64,
    /// Every closed bar handed to persistence before this wall-clock ms is in the store.
    stored_before: AtomicI64,
    /// Bytes aggregators gave back to the allocator since the last trim.
    released_bytes: AtomicU64,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            published_unreceived: AtomicU64::new(0),
            announced: AtomicU64::new(0),
            stored_before: AtomicI64::new(i64::MIN),
            released_bytes: AtomicU64::new(0),
        }
    }
}

impl Durability {
    /// An aggregator is about to publish `n` closed bars or corrections (before it sends them).
    pub fn published(&self, n: usize) {
        if n > 0 {
            self.published_unreceived.fetch_add(n as u64, Ordering::SeqCst);
        }
    }

    /// The persistence actor took `n` closed bars or corrections from its mailbox. Saturating: bars sent to
    /// it by anyone but an aggregator (tests) were never counted.
    pub fn received(&self, n: usize) {
        if n > 0 {
            let _ = self
                .published_unreceived
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| Some(c.saturating_sub(n as u64)));
        }
    }

    /// A backfill is about to be seeded and then handed to persistence: until the guard is dropped (after
    /// `History::persist` returned), the watermark does not pass this moment.
    pub fn announce(self: &Arc<Self>) -> Announced {
        self.announced.fetch_add(1, Ordering::SeqCst);
        Announced(self.clone())
    }

    /// Every closed bar handed to persistence before this wall-clock ms is in the store (`i64::MIN` until
    /// the persistence actor has said so once, and always without a store).
    pub fn stored_before(&self) -> i64 {
        self.stored_before.load(Ordering::SeqCst)
    }

    /// An aggregator freed `bytes` of its window.
    pub fn released(&self, bytes: usize) {
        if bytes > 0 {
            self.released_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Once windows freed [`TRIM_AFTER_BYTES`], asks the allocator (on the blocking pool: it walks the
    /// heap) to give free pages back to the system. Returns whether it did.
    pub fn trim_if_due(&self) -> bool {
        if self.released_bytes.load(Ordering::Relaxed) < TRIM_AFTER_BYTES {
            return false;
        }
        self.released_bytes.store(0, Ordering::Relaxed);
        let Some(give_back) = GIVE_BACK.get().copied() else { return false };
        tokio::task::spawn_blocking(give_back);
        true
    }

    fn nothing_on_its_way(&self, stats: &PersistStats) -> bool {
        self.published_unreceived.load(Ordering::SeqCst) == 0
            && self.announced.load(Ordering::SeqCst) == 0
            && stats.backfill_waiting_bars.load(Ordering::SeqCst) == 0
            && stats.backfill_queued_bars.load(Ordering::SeqCst) == 0
    }
}

/// Freed bytes worth a `malloc_trim` (a trim of a heap of a few GB takes tens of ms on the blocking pool).
pub const TRIM_AFTER_BYTES: u64 = 32 << 20;

/// How free memory goes back to the system, installed by the binary (glibc's `malloc_trim`: the libraries
/// forbid unsafe code). Without it, nothing is given back.
static GIVE_BACK: OnceLock<fn()> = OnceLock::new();

/// Installs [`GIVE_BACK`]; later calls are ignored.
pub fn set_memory_trim(give_back: fn()) {
    let _ = GIVE_BACK.set(give_back);
}

/// See [`Durability::announce`].
pub struct Announced(Arc<Durability>);

impl Drop for Announced {
    fn drop(&mut self) {
        self.0.announced.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The persistence actor's side of the watermark (see the module documentation).
#[derive(Debug, Default)]
pub struct Watermark {
    /// A moment at which nothing was on its way to persistence, not yet known to be all written.
    candidate: Option<i64>,
}

impl Watermark {
    /// Called by the persistence actor (on its thread, so nothing is received meanwhile) with the
    /// `revised` time of the oldest bar it holds that is not in the store yet (`None` when there is none).
    pub fn advance(&mut self, durability: &Durability, stats: &PersistStats, oldest_unwritten: Option<i64>) {
        if stats.dropped_bars.load(Ordering::Relaxed) > 0 {
            return;
        }
        if let Some(r) = self.candidate {
            // Bars received at `r` itself may have come after the moment: strictly later only.
            if oldest_unwritten.is_none_or(|oldest| oldest > r) {
                durability.stored_before.fetch_max(r, Ordering::SeqCst);
                self.candidate = None;
            }
        }
        if self.candidate.is_none() {
            // The time first, then the counts: whatever is announced or published after the time is
            // stamped at or after it, and the aggregators compare strictly.
            let r = now_ms();
            if durability.nothing_on_its_way(stats) {
                self.candidate = Some(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_what_is_on_its_way_and_for_the_oldest_unwritten_bar() {
        let (d, stats) = (Arc::new(Durability::default()), PersistStats::default());
        let mut w = Watermark::default();
        d.published(3);
        w.advance(&d, &stats, None);
        w.advance(&d, &stats, None);
        assert_eq!(d.stored_before(), i64::MIN, "published bars not received yet: no moment is quiet");
        d.received(3);
        w.advance(&d, &stats, Some(i64::MIN + 1));
        let r = w.candidate.expect("quiet now");
        w.advance(&d, &stats, Some(r));
        assert_eq!(d.stored_before(), i64::MIN, "a bar received at the candidate is not written yet");
        w.advance(&d, &stats, Some(r + 1));
        assert_eq!(d.stored_before(), r, "everything received up to the candidate is written");

        let announced = d.announce();
        w.advance(&d, &stats, None);
        w.advance(&d, &stats, None);
        let before = d.stored_before();
        drop(announced);
        stats.backfill_queued_bars.store(10, Ordering::SeqCst);
        w.advance(&d, &stats, None);
        assert_eq!(d.stored_before(), before, "a backfill in the persistence actor's mailbox holds it");
        stats.backfill_queued_bars.store(0, Ordering::SeqCst);
        w.advance(&d, &stats, None);
        w.advance(&d, &stats, None);
        assert!(d.stored_before() >= before);

        stats.dropped_bars.store(1, Ordering::SeqCst);
        let frozen = d.stored_before();
        w.advance(&d, &stats, None);
        w.advance(&d, &stats, None);
        assert_eq!(d.stored_before(), frozen, "after a loss memory keeps what it can");
    }
}
