//! The publisher: every bar update of the symbols this node runs (closed bars, corrections, and partial
//! bars at the hub's topic rate), published to Redis for the other nodes, numbered per symbol so that
//! followers notice gaps; and the today-cache kept up to date with the same updates.
//!
//! Redis's work grows with what changes, not with symbols × intervals × update rate: the updates of every
//! symbol are gathered for `publish_flush_ms` and leave as one frame (one PUBLISH per node per flush, each
//! symbol's part numbered as before), and the cache gets, per symbol and cache flush, the closed bars that
//! changed plus one key holding all its forming bars (not four commands per interval). A frame carries only
//! what followers cannot derive: the coarse forming bars they derive from the 1s bars are left out
//! (see [`super::derive`]; the publisher runs the same derivation to know which).
//!
//! Updates of symbols this node only follows are not published (they came from Redis). While Redis is
//! down, messages are dropped and counted; the cache is rewritten from history once it is back.
//!
//! The cache's watermark promises that the cache holds every bar up to that message. So a symbol's
//! incremental writes only go out after a full rewrite from history in the same connection and leadership:
//! after taking a symbol over, after a reconnect, after a failed write, the rewrite comes first.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, watch};

use super::derive::{Forming, REFRESH_MS};
use super::link::RedisLink;
use super::today_cache::{CacheLimits, CacheWrite, PendingWrites};
use super::wire::{self, FrameEntry, Keys};
use super::writer::{FlushTicket, Outgoing};
use super::Led;
use crate::aggregator::GetBars;
use crate::market::Market;
use crate::messages::BarEvents;
use crate::model::{now_ms, Bar, Interval, Symbol};
use crate::persist::history::History;
use crate::protocol::HistoryQuery;

/// Puts every bar of today that this node has of a symbol (its store and its aggregator's memory) into the
/// cache (after a reconnect, after taking a symbol over, after a backfill).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RewriteCache {
    pub symbol: Symbol,
}

/// A cache write of `symbol` failed (reported by the writer): its cache must be rewritten from history.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CacheWriteFailed {
    pub symbol: Symbol,
}

/// How often the connection generation is checked.
const GENERATION_CHECK: Duration = Duration::from_millis(100);
/// Bars in one frame at most (about 80 bytes each as JSON): what gathered while the actor was busy (a
/// rewrite waits for the store) goes out as several frames, not one of tens of megabytes that Redis copies
/// into every subscriber's output buffer at once, beyond its `client-output-buffer-limit pubsub`.
const FRAME_MAX_BARS: usize = 4_096;

/// See the module documentation.
pub struct Publisher {
    node: Arc<str>,
    keys: Keys,
    led: Led,
    market: Market,
    /// Where today's bars older than the in-memory window come from, for rewrites.
    history: History,
    link: RedisLink,
    queue: mpsc::Sender<Outgoing>,
    /// Bars cached per interval.
    limits: CacheLimits,
    /// Message numbers, per symbol, of this node.
    seqs: HashMap<Symbol, u64>,
    /// Per symbol, the followers' derivation state as this node's frames leave it, and when its forming
    /// bars next all go out as they are.
    derived: HashMap<Symbol, (Forming, i64)>,
    /// `None` without `cache_today`.
    pending: Option<PendingWrites>,
    flush_every: Duration,
    publish_every: Duration,
    /// Updates gathered since the last frame, per symbol in order of first sight, each in the order they came.
    outbox: Vec<(Symbol, Vec<Bar>)>,
    outbox_index: HashMap<Symbol, usize>,
    generation: watch::Receiver<u64>,
    /// Symbols whose cache holds everything up to their last write (a full rewrite was queued since the
    /// connection and the leadership began, and no write failed since): only these get incremental writes.
    synced: HashSet<Symbol>,
    /// Symbols with a rewrite asked for and not done yet.
    rewriting: HashSet<Symbol>,
    /// This node's cache flushes queued and not yet answered by Redis (see [`FlushTicket`]).
    flushes_in_writer: Arc<AtomicUsize>,
}

impl Publisher {
    #[allow(clippy::too_many_arguments)] // the publisher's wiring, passed once by Cluster::start
    pub fn new(
        node: Arc<str>,
        keys: Keys,
        led: Led,
        market: Market,
        history: History,
        link: RedisLink,
        queue: mpsc::Sender<Outgoing>,
        cache_today: bool,
        limits: CacheLimits,
        flush_every: Duration,
        publish_every: Duration,
    ) -> Publisher {
        let generation = link.generation.clone();
        Publisher {
            node,
            keys,
            led,
            market,
            history,
            link,
            queue,
            limits,
            seqs: HashMap::new(),
            derived: HashMap::new(),
            pending: cache_today.then(PendingWrites::default),
            flush_every,
            publish_every,
            outbox: Vec::new(),
            outbox_index: HashMap::new(),
            generation,
            synced: HashSet::new(),
            rewriting: HashSet::new(),
            flushes_in_writer: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Numbers the gathered updates of each symbol and publishes them as one frame (several when they hold
    /// more than [`FRAME_MAX_BARS`] bars).
    fn publish_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        self.outbox_index.clear();
        let now = now_ms();
        let mut entries = Vec::with_capacity(self.outbox.len());
        let mut bars_in_frame = 0;
        for (symbol, bars) in std::mem::take(&mut self.outbox) {
            let seq = self.seqs.entry(symbol.clone()).or_default();
            *seq += 1;
            let seq = *seq;
            if let Some(pending) = &mut self.pending {
                // The cache gets every forming bar: a follower that syncs from it derives from there.
                pending.note(&symbol, seq, &bars);
            }
            let (forming, refresh_at) = self.derived.entry(symbol.clone()).or_default();
            let refresh = now >= *refresh_at;
            if refresh {
                *refresh_at = now + REFRESH_MS;
            }
            let planned = forming.plan(&bars, refresh);
            bars_in_frame += planned.bars.len();
            entries.push(FrameEntry { symbol, seq, bars: planned.bars, derive: planned.derive });
            if bars_in_frame >= FRAME_MAX_BARS {
                self.send_frame(std::mem::take(&mut entries));
                bars_in_frame = 0;
            }
        }
        self.send_frame(entries);
    }

    /// Queues one frame for the writer.
    fn send_frame(&mut self, entries: Vec<FrameEntry>) {
        if entries.is_empty() {
            return;
        }
        let messages = entries.len() as u64;
        let item = Outgoing::Publish {
            channel: self.keys.frames_channel(),
            payload: wire::encode_frame(&self.node, &entries),
            messages,
        };
        if !self.link.stats.commands.is_connected() || self.queue.try_send(item).is_err() {
            self.link.stats.publish_dropped.fetch_add(messages, Ordering::Relaxed);
        }
    }

    /// Queues the pending cache writes of the symbols this node runs, or a rewrite where one is due.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(pending) = &mut self.pending else { return };
        if !self.link.stats.commands.is_connected() {
            // Nothing to write to; everything is rewritten from history after the reconnect.
            pending.clear();
            self.synced.clear();
            return;
        }
        // Sorted (a BTreeSet's order): looked up by bisection, as at 10,000 symbols a scan per synced symbol
        // was 100 million comparisons per flush.
        let led = self.led.list();
        self.synced.retain(|s| led.binary_search(s).is_ok());
        for symbol in led {
            if !self.synced.contains(&symbol) && self.rewriting.insert(symbol.clone()) {
                ctx.notify(RewriteCache { symbol });
            }
        }
        if self.flushes_in_writer.load(Ordering::Relaxed) > 0 {
            // The writer is behind (Redis slow, or a slow start): gather on; the next flush carries it all.
            self.link.stats.cache_flushes_deferred.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Not synced: the rewrite under way covers these bars.
        let writes: Vec<CacheWrite> = pending
            .take(&self.keys, &self.node, &self.limits, now_ms())
            .into_iter()
            .filter(|w| self.synced.contains(&w.symbol))
            .collect();
        if writes.is_empty() {
            return;
        }
        // All of the flush in one queued item: one pipelined transaction, however many symbols changed.
        let symbols: Vec<Symbol> = writes.iter().map(|w| w.symbol.clone()).collect();
        let ticket = FlushTicket::new(&self.flushes_in_writer);
        if self.queue.try_send(Outgoing::cache(writes, Some(ticket))).is_err() {
            for symbol in symbols {
                self.synced.remove(&symbol);
            }
        }
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The hub forwards every update of every symbol: a deep mailbox rides out bursts.
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(self.publish_every, |p, _| p.publish_outbox());
        ctx.run_interval(self.flush_every, |p, ctx| p.flush(ctx));
        ctx.run_interval(GENERATION_CHECK, |p, _| {
            if p.generation.has_changed().unwrap_or(false) {
                // The first connection is generation 1: nothing was written before it, and clearing `synced`
                // then rewrote every symbol a second time just after the first rewrite (a day of history
                // read per symbol, twice at every start).
                if *p.generation.borrow_and_update() <= 1 {
                    return;
                }
                // Redis may have restarted empty: rewrite what this node owns (at the next flush).
                p.synced.clear();
                if let Some(pending) = &mut p.pending {
                    pending.forget_expiries();
                }
            }
        });
    }
}

impl Handler<BarEvents> for Publisher {
    type Result = ();

    /// Gathers the updates of the symbols this node runs for the next frame, in order.
    fn handle(&mut self, msg: BarEvents, _: &mut Context<Self>) {
        for update in msg.0.iter() {
            let symbol = &update.bar.symbol;
            match self.outbox_index.get(symbol) {
                Some(&at) => self.outbox[at].1.push(update.bar.clone()),
                None if self.led.contains(symbol) => {
                    self.outbox_index.insert(symbol.clone(), self.outbox.len());
                    self.outbox.push((symbol.clone(), vec![update.bar.clone()]));
                }
                None => {}
            }
        }
    }
}

impl Handler<RewriteCache> for Publisher {
    type Result = ();

    /// Reads today's bars of the symbol (the store for those older than the aggregator's window) and queues
    /// them as one cache write. The actor waits for them, so no update of the symbol is noted meanwhile and
    /// the watermark stays exact.
    fn handle(&mut self, msg: RewriteCache, ctx: &mut Context<Self>) {
        let entry = self.market.get(&msg.symbol).filter(|_| {
            self.pending.is_some() && self.led.contains(&msg.symbol) && self.link.stats.commands.is_connected()
        });
        let Some(entry) = entry else {
            // Not possible now; the next flush asks again while the symbol is not synced.
            self.rewriting.remove(&msg.symbol);
            return;
        };
        // Updates gathered before the history read are older than what it returns: numbered now, they stay at
        // or below the watermark instead of following the rewrite and taking its bars back to older states.
        self.publish_outbox();
        let now = now_ms();
        let day_start = Interval::D1.align(now);
        let intervals = self.market.settings().intervals();
        let (history, limits) = (self.history.clone(), self.limits.clone());
        let reads = intervals.into_iter().map(move |interval| {
            let query = HistoryQuery {
                interval,
                limit: limits.cap(interval),
                end_time: None,
                start_time: Some(interval.align(day_start)),
            };
            let (history, entry) = (history.clone(), entry.clone());
            async move {
                match history.bars(&entry, query).await {
                    Ok(bars) => bars,
                    Err(e) => {
                        // The store is down: memory is still today's newest part, and older cached bars stay.
                        tracing::warn!(symbol = %entry.symbol, %interval, error = %e, "today-cache rewritten from memory only");
                        entry.aggregator.send(GetBars(query)).await.unwrap_or_default()
                    }
                }
            }
        });
        let all = futures_util::future::join_all(reads);
        ctx.wait(actix::fut::wrap_future(all).map(move |replies, p: &mut Publisher, _| {
            p.rewriting.remove(&msg.symbol);
            let (bars, forming): (Vec<Bar>, Vec<Bar>) = replies.into_iter().flatten().partition(|b| b.closed);
            if let Some(pending) = &mut p.pending {
                // Whatever was pending is older than what the aggregator just gave.
                pending.reset(&msg.symbol, &forming);
            }
            let seq = p.seqs.get(&msg.symbol).copied().unwrap_or(0);
            // Followers reading the rewritten cache derive from its forming bars, which may be newer than
            // the state this node derived from: the next update sends every forming bar as it is.
            p.derived.remove(&msg.symbol);
            let n = bars.len();
            let write = CacheWrite {
                keys: p.keys.clone(),
                symbol: msg.symbol.clone(),
                bars,
                forming: Some(forming),
                limits: p.limits.clone(),
                replace: true,
                node: p.node.clone(),
                seq,
                now,
                expired: 0,
            };
            if p.queue.try_send(Outgoing::cache(vec![write], None)).is_ok() {
                p.synced.insert(msg.symbol.clone());
                tracing::debug!(symbol = %msg.symbol, bars = n, seq, "today-cache rewritten from history");
                // Written after the cache (one writer, in order): a follower that synced before, from a cache
                // that lacked the stored part of the day (a backfill still being stored), reads it again.
                let notice = Outgoing::Publish {
                    channel: p.keys.bars_channel(&msg.symbol),
                    payload: wire::encode_rewritten(&p.node, seq),
                    messages: 1,
                };
                if p.queue.try_send(notice).is_err() {
                    p.link.stats.publish_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
}

impl Handler<CacheWriteFailed> for Publisher {
    type Result = ();

    /// Marks the symbol for a rewrite: the cache misses what the failed write held.
    fn handle(&mut self, msg: CacheWriteFailed, _: &mut Context<Self>) {
        self.synced.remove(&msg.symbol);
    }
}
