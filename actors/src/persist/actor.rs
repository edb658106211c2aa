//! The persistence actor: takes every closed bar and correction from the hub (and feeds' backfills) and
//! writes them to the store in batches, without ever losing one it accepted.
//!
//! - Batches: a batch is written when `batch_bars` bars wait, or `batch_ms` after its first bar came.
//!   One write is in flight at a time, so bars reach the store in the order they were revised (a
//!   correction never lands before the bar it corrects). A write takes everything that waits, up to
//!   `batch_max_bars`: a store that keeps up gets small batches soon, one that fell behind (a backfill
//!   of thousands of symbols) gets fewer, larger ones, each paying its fsync once (group commit).
//! - Failures: a failed write is retried after a capped exponential backoff with jitter. Meanwhile bars
//!   go to the [`Journal`] (fsynced) instead of piling up in memory: the failed batch at once, newer
//!   bars every tick, and in any case once `buffer_bars` wait. The journal is always older than memory,
//!   and is written back first, in order, when the store answers again.
//! - Start: a journal left by the previous run is written before anything else; `PersistStats::settling`
//!   is cleared when it is (or when the store failed once, and the journal keeps waiting). Feeds wait for
//!   that before they read what the store holds.
//! - Stop: [`Flush`] makes everything durable, in the store or in the journal.
//! - Refusals: a bar that breaks the OHLCV invariants is never buffered, and a bar the store refuses for
//!   what it holds is found by bisection ([`write_isolating`]); both go to the [`DeadLetters`] and the
//!   rest is written. Only an outage stops the writes (and journals).
//! - Loss bound: what a SIGKILL can take is what is in memory only: at most `buffer_bars`, in practice the
//!   bars of the last `batch_ms` (a healthy store takes a batch every `batch_ms`; a failing one gets the
//!   buffer journaled at every tick).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::dead_letters::{DeadLetter, DeadLetters};
use super::durability::Watermark;
use super::isolate::write_isolating;
use super::journal::{Journal, JournalError};
use super::{settings::StoreSettings, Store, StoreError, StoredBar};
use crate::bars::UpdateKind;
use crate::feed::backoff::Backoff;
use crate::market::Market;
use crate::messages::BarEvents;
use crate::model::{now_ms, Bar};
use crate::telemetry::PersistStats;

/// Bars that did not come through the hub (a feed's backfill), stored like closed bars.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistBars {
    pub bars: Vec<Bar>,
    pub source: Arc<str>,
}

/// Makes everything received so far durable: written to the store, or else journaled; then, if
/// `stop`, stops the actor (it closes the journal; bars that come later are not stored). Sent at shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush {
    pub stop: bool,
}

/// Where the batch being written came from.
enum InFlight {
    Journal,
    Memory(Arc<[StoredBar]>),
    /// From memory, and journaled since (the buffer overflowed meanwhile): the journal's copy is what
    /// counts, and is written (again, harmlessly) in its turn whatever this write does.
    Spilled,
}

/// See the module documentation.
pub struct Persister {
    store: Arc<dyn Store>,
    /// To tag each bar with its symbol's source.
    market: Market,
    settings: StoreSettings,
    journal: Journal,
    dead_letters: DeadLetters,
    /// The last spill failed (logged once until one succeeds).
    spill_failing: bool,
    /// The journal's size when it last refused a spill for lack of room. Until it has shrunk enough for
    /// the buffer to fit, no spill is tried: encoding a buffer of hundreds of thousands of bars only to be
    /// refused again, at every message, kept this actor too busy to write anything (1,000 symbols'
    /// backfill: `written_bars` stuck for minutes while bars were dropped).
    journal_full_at: Option<u64>,
    /// Bars neither written nor journaled, oldest first. A deque: batches and drops take from the front,
    /// which in a `Vec` moved the whole buffer each time (10,000 symbols: a 20 MB memmove per message once the
    /// buffer was full, and the actor's thread did little else; docs/BENCHMARKS.md, "Memory tiers").
    buffer: VecDeque<StoredBar>,
    /// When the oldest of `buffer` arrived.
    buffer_since: Option<Instant>,
    in_flight: Option<InFlight>,
    /// A retry is scheduled; nothing is written before it.
    backing_off: bool,
    backoff: Backoff,
    healthy: bool,
    stats: Arc<PersistStats>,
    /// The journal of an earlier run is still being written.
    flush_waiters: Vec<oneshot::Sender<()>>,
    /// Tells the aggregators which of their closed bars the store has (`market.durability()`).
    watermark: Watermark,
}

impl Persister {
    /// Opens the journal (a torn last record is cut off and logged); fails if it cannot be used.
    pub fn new(
        store: Arc<dyn Store>,
        market: Market,
        settings: &StoreSettings,
        stats: Arc<PersistStats>,
    ) -> Result<Persister, JournalError> {
        let path = settings.journal_file();
        let (journal, recovered) = Journal::open(&path, settings.journal_max_bytes)?;
        if recovered.migrated {
            tracing::info!(path = %path.display(), "migrated a journal of the first format");
        }
        if recovered.damaged_bytes > 0 {
            tracing::error!(path = %path.display(), bytes = recovered.damaged_bytes, records_kept = recovered.records, "skipped damaged journal records; the records after them are kept");
            stats.journal_damaged_bytes.fetch_add(recovered.damaged_bytes, Ordering::Relaxed);
        }
        stats.journal_max_bytes.store(settings.journal_max_bytes, Ordering::Relaxed);
        if recovered.torn_bytes > 0 {
            tracing::warn!(path = %path.display(), bytes = recovered.torn_bytes, "cut off a torn last journal record (a batch interrupted by a crash; it was never acknowledged)");
        }
        if recovered.bars > 0 {
            tracing::info!(path = %path.display(), bars = recovered.bars, "journal holds bars from an earlier run; writing them first");
        }
        let backoff = Backoff::new(
            Duration::from_millis(settings.retry_initial_ms),
            Duration::from_millis(settings.retry_max_ms),
        );
        stats.healthy.store(true, Ordering::Relaxed);
        stats.settling.store(!journal.is_empty(), Ordering::Relaxed);
        Ok(Persister {
            store,
            market,
            settings: settings.clone(),
            journal,
            dead_letters: DeadLetters::new(&settings.dead_letter_file(), settings.dead_letter_max_bytes),
            spill_failing: false,
            journal_full_at: None,
            buffer: VecDeque::new(),
            buffer_since: None,
            in_flight: None,
            backing_off: false,
            backoff,
            healthy: true,
            stats,
            flush_waiters: Vec::new(),
            watermark: Watermark::default(),
        })
    }

    fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.settings.batch_ms)
    }

    /// The bars of a write in flight from memory beyond `batch_bars`. A group-commit write larger than one
    /// batch counts them against the buffer, so that what is only in memory stays below `buffer_bars +
    /// batch_bars` whatever the size of the write.
    fn in_flight_beyond_one_batch(&self) -> usize {
        match &self.in_flight {
            Some(InFlight::Memory(batch)) => batch.len().saturating_sub(self.settings.batch_bars),
            _ => 0,
        }
    }

    fn memory_in_flight(&self) -> bool {
        matches!(self.in_flight, Some(InFlight::Memory(_)))
    }

    fn accept(&mut self, bars: impl Iterator<Item = StoredBar>, ctx: &mut Context<Self>) {
        let before = self.buffer.len();
        let mut dead = Vec::new();
        for bar in bars {
            // The aggregators validate what they fold; this is the last line before disk and store.
            match bar.bar.invalid_reason() {
                None => self.buffer.push_back(bar),
                Some(reason) => dead.push(DeadLetter {
                    bar: serde_json::to_value(&bar).unwrap_or_default(),
                    reason: format!("not stored: {reason}"),
                }),
            }
        }
        self.bury(dead);
        if before == 0 && !self.buffer.is_empty() {
            self.buffer_since = Some(Instant::now());
        }
        if self.buffer.len() + self.in_flight_beyond_one_batch() >= self.settings.buffer_bars {
            self.spill();
        }
        self.pump(ctx);
        self.publish_stats();
    }

    /// Moves the whole memory buffer to the end of the journal. A batch in flight from memory goes first
    /// (it is older, and must not land after the bars that may correct it), so that nothing but the
    /// buffer is ever only in memory: what a SIGKILL can take stays below `buffer_bars + batch_bars`
    /// however long a store write takes.
    fn spill(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        if !self.spill_may_fit() {
            self.cap_memory();
            return;
        }
        let in_flight = match &self.in_flight {
            Some(InFlight::Memory(batch)) => Some(batch.clone()),
            _ => None,
        };
        let appended = match &in_flight {
            Some(batch) => {
                let both: Vec<StoredBar> = batch.iter().chain(self.buffer.iter()).cloned().collect();
                self.journal.append(&both, self.settings.batch_bars)
            }
            None => self.journal.append(self.buffer.make_contiguous(), self.settings.batch_bars),
        };
        match appended {
            Ok(()) => {
                self.spill_failing = false;
                self.journal_full_at = None;
                self.buffer.clear();
                self.buffer_since = None;
                if in_flight.is_some() {
                    self.in_flight = Some(InFlight::Spilled);
                }
            }
            Err(e) => {
                if matches!(e, JournalError::Full { .. }) {
                    self.stats.journal_full_refusals.fetch_add(1, Ordering::Relaxed);
                    self.journal_full_at = Some(self.journal.bytes());
                }
                // Once per failing spell, not at every tick.
                if !self.spill_failing {
                    tracing::error!(error = %e, bars = self.buffer.len(), "cannot journal bars; keeping them in memory");
                }
                self.spill_failing = true;
                self.stats.set_last_error(Some(e.to_string()));
                self.cap_memory();
            }
        }
    }

    /// Whether a spill is worth trying: always, unless the journal refused one for lack of room and has
    /// not shrunk since by enough for the buffer at its own bytes per bar.
    fn spill_may_fit(&self) -> bool {
        let Some(full_at) = self.journal_full_at else { return true };
        let (bytes, bars) = (self.journal.bytes(), self.journal.bars());
        let per_bar = bytes.checked_div(bars).unwrap_or(0);
        bytes < full_at && bytes + per_bar * self.buffer.len() as u64 <= self.journal.max_bytes()
    }

    /// Memory stays bounded even when neither the store nor the journal takes bars: beyond twice the
    /// buffer, the oldest go (counted, logged).
    fn cap_memory(&mut self) {
        let cap = self.settings.buffer_bars.saturating_mul(2);
        if self.buffer.len() > cap {
            let dropped = self.buffer.len() - cap;
            self.buffer.drain(..dropped);
            self.stats.dropped_bars.fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::error!(dropped, "dropped the oldest unwritten bars: neither the store nor the journal takes them");
        }
    }

    fn buffer_due(&self) -> bool {
        !self.buffer.is_empty()
            && (self.buffer.len() >= self.settings.batch_bars
                || !self.flush_waiters.is_empty()
                || self.buffer_since.is_some_and(|t| t.elapsed() >= self.batch_wait()))
    }

    /// Starts the next write if none is running: the journal's oldest batch, else a due memory batch.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || self.backing_off {
            return;
        }
        let (batch, origin) = if !self.journal.is_empty() {
            match self.journal.head() {
                Ok(Some(batch)) => {
                    self.bury_journal_damage();
                    (batch, InFlight::Journal)
                }
                Ok(None) => {
                    self.bury_journal_damage();
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the journal");
                    self.stats.set_last_error(Some(e.to_string()));
                    self.retry_later(ctx);
                    return;
                }
            }
        } else if self.buffer_due() {
            // Group commit: a write that starts behind takes what piled up meanwhile, not one batch.
            let n = self.buffer.len().min(self.settings.batch_max_bars.max(self.settings.batch_bars));
            let batch: Arc<[StoredBar]> = self.buffer.drain(..n).collect();
            self.buffer_since = (!self.buffer.is_empty()).then(Instant::now);
            (batch.clone(), InFlight::Memory(batch))
        } else {
            return;
        };
        if !self.healthy {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        self.in_flight = Some(origin);
        let write = write_isolating(self.store.clone(), batch.clone());
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| act.finished(result, batch, ctx)));
    }

    /// Keeps bars that will never be written in the dead-letter file, and counts them.
    fn bury(&mut self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        self.stats.dead_letter_bars.fetch_add(dead.len() as u64, Ordering::Relaxed);
        for d in &dead {
            tracing::warn!(reason = %d.reason, file = %self.dead_letters.path().display(), "bar given up, kept as a dead letter");
        }
        if let Err(e) = self.dead_letters.write(&dead, now_ms()) {
            tracing::error!(error = %e, bars = dead.len(), "dead letters not written (counted only)");
        }
    }

    fn bury_journal_damage(&mut self) {
        let dead =
            self.journal.take_damaged().into_iter().map(|d| DeadLetter { bar: d.bar, reason: d.reason }).collect();
        self.bury(dead);
    }

    fn finished(
        &mut self,
        result: Result<Vec<DeadLetter>, StoreError>,
        batch: Arc<[StoredBar]>,
        ctx: &mut Context<Self>,
    ) {
        let origin = self.in_flight.take();
        match result {
            Ok(_) if matches!(origin, Some(InFlight::Spilled)) => {
                // Counted (and its dead letters kept) when the journal's copy is written.
                self.healthy = true;
                self.backoff.reset();
            }
            Ok(dead) => {
                let written = batch.len() - dead.len();
                self.bury(dead);
                if !self.healthy {
                    tracing::info!(kind = self.store.kind(), "store writes succeed again");
                }
                self.healthy = true;
                self.backoff.reset();
                self.stats.written_bars.fetch_add(written as u64, Ordering::Relaxed);
                self.stats.set_last_error(None);
                if matches!(origin, Some(InFlight::Journal)) {
                    if let Err(e) = self.journal.pop() {
                        // The batch is written; at worst it is written again at the next start.
                        tracing::warn!(error = %e, "journal not emptied");
                    }
                }
                if self.journal.is_empty() {
                    self.settle();
                }
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                if self.healthy || e.is_configuration() {
                    tracing::warn!(kind = self.store.kind(), error = %e, bars = batch.len(), "store write failed; journaling and retrying");
                }
                self.healthy = false;
                self.stats.set_last_error(Some(e.to_string()));
                if let Some(InFlight::Memory(batch)) = origin {
                    // Back in front of the newer bars, then all of them to the journal, in order.
                    for bar in batch.iter().rev() {
                        self.buffer.push_front(bar.clone());
                    }
                    self.spill();
                }
                self.settle();
                self.retry_later(ctx);
            }
        }
        self.pump(ctx);
        self.answer_flushes();
        self.publish_stats();
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>) {
        let delay = self.backoff.next_delay();
        self.backing_off = true;
        ctx.run_later(delay, |act, ctx| {
            act.backing_off = false;
            act.pump(ctx);
            act.publish_stats();
        });
    }

    /// The previous run's journal is written, or the store failed meanwhile: feeds may read history.
    fn settle(&self) {
        self.stats.settling.store(false, Ordering::Relaxed);
    }

    /// Flushes are done once nothing is left only in memory.
    fn answer_flushes(&mut self) {
        if self.buffer.is_empty() && !self.memory_in_flight() {
            for w in self.flush_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    fn publish_stats(&mut self) {
        let s = &self.stats;
        s.healthy.store(self.healthy, Ordering::Relaxed);
        let in_flight = match &self.in_flight {
            Some(InFlight::Memory(b)) => Some(b.clone()),
            _ => None,
        };
        s.buffered_bars
            .store((self.buffer.len() + in_flight.as_ref().map_or(0, |b| b.len())) as u64, Ordering::Relaxed);
        s.journal_bars.store(self.journal.bars(), Ordering::Relaxed);
        s.journal_bytes.store(self.journal.bytes(), Ordering::Relaxed);
        // The journal is older than the batch in flight from memory, which is older than the buffer.
        let oldest = self
            .journal
            .oldest()
            .or_else(|| in_flight.and_then(|b| b.first().map(|b| b.revised)))
            .or_else(|| self.buffer.front().map(|b| b.revised));
        s.oldest_unwritten_ms.store(oldest.unwrap_or(0), Ordering::Relaxed);
        // A journal that cannot say how old it is holds the watermark back.
        let oldest = match oldest {
            None if self.journal.bars() > 0 => Some(i64::MIN),
            oldest => oldest,
        };
        self.watermark.advance(self.market.durability(), &self.stats, oldest);
    }
}

impl Actor for Persister {
    type Context = Context<Self>;

    /// Starts writing the journal of an earlier run, and the tick that makes batches due.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let tick = (self.batch_wait() / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
        ctx.run_interval(tick, |act, ctx| {
            // While the store fails, new bars go to disk at every tick rather than wait in memory.
            if !act.healthy {
                act.spill();
            }
            act.pump(ctx);
            act.answer_flushes();
            act.publish_stats();
            act.market.durability().trim_if_due();
        });
        // Until the first write, health is what the store says when asked.
        ctx.spawn(self.store.check().into_actor(self).map(|result, act, _| {
            if let Err(e) = result {
                if act.stats.written_bars.load(Ordering::Relaxed) == 0 {
                    act.healthy = false;
                    act.stats.set_last_error(Some(e.to_string()));
                    act.publish_stats();
                }
            }
        }));
        self.pump(ctx);
        self.publish_stats();
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        // The system is going down without a Flush (or after it): keep what is left.
        self.spill();
        Running::Stop
    }
}

impl Handler<BarEvents> for Persister {
    type Result = ();

    /// Buffers the closed bars and corrections of a hub batch.
    fn handle(&mut self, msg: BarEvents, ctx: &mut Context<Self>) {
        let now = now_ms();
        let finals = msg.0.iter().filter(|u| u.kind != UpdateKind::Partial).count();
        self.market.durability().received(finals);
        let mut source: Option<(crate::model::Symbol, Arc<str>)> = None;
        let mut bars = Vec::with_capacity(msg.0.len());
        for update in msg.0.iter().filter(|u| u.kind != UpdateKind::Partial) {
            let symbol = &update.bar.symbol;
            let src = match &source {
                Some((s, src)) if s == symbol => src.clone(),
                _ => {
                    let src: Arc<str> =
                        self.market.get(symbol).map_or_else(|| Arc::from("unknown"), |e| e.source.clone());
                    source = Some((symbol.clone(), src.clone()));
                    src
                }
            };
            let mut bar = update.bar.clone();
            bar.closed = true;
            bars.push(StoredBar { bar, source: src, revised: now });
        }
        self.accept(bars.into_iter(), ctx);
    }
}

impl Handler<PersistBars> for Persister {
    type Result = ();

    /// Buffers a backfill's closed bars.
    fn handle(&mut self, msg: PersistBars, ctx: &mut Context<Self>) {
        let taken = msg.bars.len() as u64;
        let _ = self
            .stats
            .backfill_queued_bars
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| Some(queued.saturating_sub(taken)));
        let now = now_ms();
        let source = msg.source;
        self.accept(
            msg.bars.into_iter().filter(|b| b.closed).map(|bar| StoredBar {
                bar,
                source: source.clone(),
                revised: now,
            }),
            ctx,
        );
    }
}

impl Handler<Flush> for Persister {
    type Result = ResponseActFuture<Self, ()>;

    /// Writes what is buffered if the store is keeping up, else journals it; answers when durable.
    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        if !self.healthy || !self.journal.is_empty() {
            self.spill();
        }
        self.pump(ctx);
        self.answer_flushes();
        self.publish_stats();
        Box::pin(actix::fut::wrap_future::<_, Self>(rx).map(move |_, _, ctx: &mut Context<Self>| {
            if msg.stop {
                ctx.stop();
            }
        }))
    }
}
