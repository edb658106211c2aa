//! Admission of backfills: a feed makes (or fetches) its backfill only once persistence has a turn for it.
//!
//! Why: a backfill is made in an instant and stored at the store's pace. A first start of 10,000 simulated
//! symbols made all 70.8 M bars at once; they sat in the aggregators' windows (5.7 GB, held until stored) and
//! in the feeds' queues waiting for room in persistence (5.3 GB), the journal filled, bars were dropped and
//! the RSS reached 13.5 GB (docs/BENCHMARKS.md, "Memory tiers and 10,000 symbols"). Holding back the bars
//! after they were made bounded persistence, not the memory they took.
//!
//! So at most `store.backfill_concurrency` backfills are between "made" and "handed to persistence" at a
//! time: a feed takes a [`BackfillPermit`] before it reads what the store holds and makes the rest, and the
//! permit goes back once the last of its bars went to the persistence actor, which happens only while that
//! actor has room for them (`History::persist`). The next feed's backfill is made then: feeds are paced by
//! persistence's queue, and what waits is a symbol name, not its bars. A feed goes live right after its own
//! backfill is seeded, exactly as without admission; a feed still waiting for a turn is not live yet.
//!
//! `backfills_pending` (waiting for a turn) and `backfills_running` (holding one) are in `/api/stats`
//! (`persistence`) and `/metrics`; `/health` shows the pending count under `store`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::PersistStats;

/// See the module documentation. Cheap to clone: clones share the turns.
#[derive(Clone)]
pub struct BackfillAdmission {
    turns: Arc<Semaphore>,
    stats: Arc<PersistStats>,
}

impl BackfillAdmission {
    /// `concurrency` backfills at a time (at least one).
    pub fn new(concurrency: usize, stats: Arc<PersistStats>) -> BackfillAdmission {
        BackfillAdmission { turns: Arc::new(Semaphore::new(concurrency.max(1))), stats }
    }

    /// Waits for a turn. Counted as pending meanwhile, also if the caller gives up (a feed stopped).
    pub async fn admit(&self) -> BackfillPermit {
        let pending = Pending::new(self.stats.clone());
        // The semaphore is never closed: `acquire_owned` fails only on a closed one.
        let turn = self.turns.clone().acquire_owned().await.ok();
        drop(pending);
        self.stats.backfills_running.fetch_add(1, Ordering::Relaxed);
        BackfillPermit { _turn: Some(Turn { _permit: turn, stats: self.stats.clone() }) }
    }
}

/// A feed's turn to backfill; given back when dropped. [`BackfillPermit::none`] holds no turn (no store, or
/// bars that did not come through admission).
#[must_use]
#[derive(Default)]
pub struct BackfillPermit {
    _turn: Option<Turn>,
}

impl BackfillPermit {
    pub fn none() -> BackfillPermit {
        BackfillPermit::default()
    }
}

struct Turn {
    _permit: Option<OwnedSemaphorePermit>,
    stats: Arc<PersistStats>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.stats.backfills_running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a feed waiting for its turn, until dropped.
struct Pending(Arc<PersistStats>);

impl Pending {
    fn new(stats: Arc<PersistStats>) -> Pending {
        stats.backfills_pending.fetch_add(1, Ordering::Relaxed);
        Pending(stats)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.backfills_pending.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_the_configured_backfills_hold_a_turn_and_the_others_are_counted_pending() {
        let stats = Arc::new(PersistStats::default());
        let admission = BackfillAdmission::new(2, stats.clone());
        let (a, b) = (admission.admit().await, admission.admit().await);
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await }
        });
        while stats.backfills_pending.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(stats.backfills_running.load(Ordering::Relaxed), 2);
        assert!(!waiting.is_finished(), "a third backfill waits for a turn");
        drop(a);
        let c = waiting.await.unwrap();
        assert_eq!(stats.backfills_pending.load(Ordering::Relaxed), 0);
        assert_eq!(stats.backfills_running.load(Ordering::Relaxed), 2);
        drop((b, c));
        assert_eq!(stats.backfills_running.load(Ordering::Relaxed), 0);

        // A feed stopped while it waits is no longer counted.
        let (x, y) = (admission.admit().await, admission.admit().await);
        let gave_up = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await }
        });
        while stats.backfills_pending.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        gave_up.abort();
        let _ = gave_up.await;
        assert_eq!(stats.backfills_pending.load(Ordering::Relaxed), 0);
        drop((x, y));
    }
}
