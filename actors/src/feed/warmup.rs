//! The first start's backfill, as a whole: how many of the configured feeds have their history, how many
//! bars that took, and an estimate of the rest. `/health` says `warming_up` and `/ready` answers 503 until
//! [`Warmup::is_ready`]; [`Warmup::log_progress`] logs how far it got every few seconds meanwhile.
//!
//! Only the feeds of the configuration count: a feed an admin adds later backfills too, but a load
//! balancer must not take a serving node out of rotation for it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often [`Warmup::log_progress`] logs while the backfill runs.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// See the module documentation.
#[derive(Debug)]
pub struct Warmup {
    total: AtomicUsize,
    done: AtomicUsize,
    bars: AtomicU64,
    started: Instant,
}

/// A snapshot of [`Warmup`], for `/health` and the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupProgress {
    pub feeds_done: usize,
    pub feeds_total: usize,
    /// Bars the finished feeds hold (stored plus backfilled).
    pub bars: u64,
    pub elapsed: Duration,
}

impl WarmupProgress {
    /// Bars per second so far.
    pub fn bars_per_second(&self) -> f64 {
        self.bars as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// The time still needed at the pace of the feeds finished so far; `None` before the first one.
    pub fn eta(&self) -> Option<Duration> {
        if self.feeds_done == 0 {
            return None;
        }
        let per_feed = self.elapsed.as_secs_f64() / self.feeds_done as f64;
        Some(Duration::from_secs_f64(per_feed * self.feeds_total.saturating_sub(self.feeds_done) as f64))
    }
}

impl Default for Warmup {
    fn default() -> Self {
        Warmup {
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            bars: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Warmup {
    /// `feeds` more feeds will report [`Warmup::finished`].
    pub fn expect(&self, feeds: usize) {
        self.total.fetch_add(feeds, Ordering::AcqRel);
    }

    /// One feed's history is loaded (or its backfill failed: it starts from what the store holds).
    pub fn finished(&self, bars: usize) {
        self.bars.fetch_add(bars as u64, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::AcqRel);
    }

    pub fn is_ready(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.total.load(Ordering::Acquire)
    }

    pub fn progress(&self) -> WarmupProgress {
        WarmupProgress {
            feeds_done: self.done.load(Ordering::Acquire),
            feeds_total: self.total.load(Ordering::Acquire),
            bars: self.bars.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
        }
    }

    /// Logs the progress every [`LOG_EVERY`] until every feed has its history, then once that it is ready.
    pub async fn log_progress(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(LOG_EVERY);
        tick.tick().await;
        while !self.is_ready() {
            tick.tick().await;
            if self.is_ready() {
                break;
            }
            let p = self.progress();
            tracing::info!(
                symbols_done = p.feeds_done,
                symbols_total = p.feeds_total,
                bars = p.bars,
                bars_per_second = p.bars_per_second().round() as u64,
                eta_seconds = p.eta().map(|d| d.as_secs()),
                "backfill in progress: warming up (/ready answers 503 until every symbol has its history)"
            );
        }
        let p = self.progress();
        tracing::info!(
            symbols = p.feeds_total,
            bars = p.bars,
            seconds = p.elapsed.as_secs_f64(),
            "history ready: backfill done, /ready answers 200"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_expected_feed_finished_with_an_estimate_meanwhile() {
        let w = Warmup::default();
        assert!(w.is_ready(), "no feed: nothing to wait for");
        w.expect(4);
        assert!(!w.is_ready());
        assert_eq!(w.progress().eta(), None, "no pace yet");
        w.finished(100);
        let p = w.progress();
        assert_eq!((p.feeds_done, p.feeds_total, p.bars), (1, 4, 100));
        let eta = p.eta().unwrap().as_secs_f64();
        assert!((eta - 3.0 * p.elapsed.as_secs_f64()).abs() < 1e-6, "three feeds left at the pace of one");
        for _ in 0..3 {
            w.finished(1);
        }
        assert!(w.is_ready());
    }
}
