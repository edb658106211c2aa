//! The follower: every symbol another node runs, kept in a local replica aggregator from Redis. It
//! subscribes to every bars channel, seeds each symbol from the today-cache, and then upserts every
//! message into the symbol's aggregator, which republishes to the local hub: WebSocket clients, REST
//! history, prices and strategies work on a following node exactly as on the node running the feed.
//! Cached bars older than the replica's in-memory window go to this node's store, so its history serves
//! the whole day.
//! Gaps, duplicates and new sending nodes are handled by [`SymbolSync`].
//!
//! At most `max_cache_reads` cache reads are in flight; the others wait their turn in order. A resync of
//! every symbol (at start, after the pub/sub connection came back) would otherwise send one read per symbol
//! at once, 10,000 replies of up to a day of bars each queued in Redis for one client.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};

use super::link::{describe, Delivery, RedisLink};
use super::sync::{OnMessage, OnSnapshot, ResyncCause, Snapshot, SymbolSync};
use super::today_cache::{self, CacheError, CacheLimits};
use super::wire::{self, Keys};
use super::Led;
use crate::aggregator::{SetReplica, UpsertBars};
use crate::engine::valid_symbol;
use crate::market::Market;
use crate::model::{now_ms, Bar, Interval, Symbol};
use crate::persist::history::History;

/// Read `symbol`'s today-cache again and catch up (sent when this node stops running its feed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync {
    pub symbol: Symbol,
}

/// How often the connection generation is checked.
const GENERATION_CHECK: Duration = Duration::from_millis(100);
/// How long a resync may wait for the cache to catch up with the live messages before it takes both
/// as they are.
const RESYNC_PATIENCE: Duration = Duration::from_secs(10);

/// The follower's wiring, passed once by `Cluster::start`.
pub struct FollowerWiring {
    pub node: Arc<str>,
    pub keys: Keys,
    pub led: Led,
    pub market: Market,
    pub link: RedisLink,
    pub cache_today: bool,
    /// Bars read from the today-cache per interval.
    pub limits: CacheLimits,
    /// Where cached bars older than the replica's in-memory window go (they are served from the store).
    pub history: History,
    /// Symbols this node follows at most (`[redis] max_followed_symbols`): each costs an aggregator, and
    /// anyone who can publish to the Redis channels could otherwise create them without end.
    pub max_symbols: usize,
    /// How soon a cache that is behind the live messages is read again.
    pub retry_every: Duration,
    /// Symbols to seed at start even before any message (the configured ones).
    pub symbols: Vec<String>,
    /// Cache reads in flight at most (`[redis] max_cache_reads_in_flight`).
    pub max_cache_reads: usize,
}

/// See the module documentation.
pub struct Follower {
    w: FollowerWiring,
    deliveries: Option<mpsc::UnboundedReceiver<Delivery>>,
    syncs: HashMap<Symbol, SymbolSync>,
    /// Symbols whose cache read is under way (one at a time per symbol, `max_cache_reads` in all).
    reading: HashSet<Symbol>,
    /// Symbols whose cache read waits for a free place among those in flight, in order, and the same as a
    /// set (a symbol waits once).
    waiting: VecDeque<Symbol>,
    queued: HashSet<Symbol>,
    /// Symbols whose cache read failed while the commands connection was down: read again once it is back.
    stalled: HashSet<Symbol>,
    /// Symbols whose cache was rewritten while a read was under way: read again once it ends.
    reread: HashSet<Symbol>,
    /// Snapshots behind the live messages tolerated before a resync takes both as they are.
    max_attempts: u32,
    /// Generations of the pub/sub connection (subscribe again, resync everything) and of the commands one
    /// (read the caches whose reads failed meanwhile).
    generation: watch::Receiver<u64>,
    commands_generation: watch::Receiver<u64>,
    /// The generation the pattern subscription was last confirmed in, and whether one is under way.
    subscribed_in: u64,
    subscribing: bool,
    /// Told once the configured symbols are seeded (so the lease keeper claims after that).
    seeded: Option<oneshot::Sender<()>>,
}

impl Follower {
    pub fn new(
        w: FollowerWiring,
        deliveries: mpsc::UnboundedReceiver<Delivery>,
        seeded: oneshot::Sender<()>,
    ) -> Follower {
        let max_attempts = if w.cache_today {
            (RESYNC_PATIENCE.as_millis() / w.retry_every.as_millis().max(1)).max(2) as u32
        } else {
            1
        };
        let (generation, commands_generation) = (w.link.pubsub_generation.clone(), w.link.generation.clone());
        Follower {
            w,
            deliveries: Some(deliveries),
            syncs: HashMap::new(),
            reading: HashSet::new(),
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            stalled: HashSet::new(),
            reread: HashSet::new(),
            max_attempts,
            generation,
            commands_generation,
            subscribed_in: 0,
            subscribing: false,
            seeded: Some(seeded),
        }
    }

    /// After the commands connection came back, reads again the caches whose reads failed while it was down.
    fn read_stalled(&mut self, ctx: &mut Context<Self>) {
        if !self.commands_generation.has_changed().unwrap_or(false) {
            return;
        }
        self.commands_generation.mark_unchanged();
        for symbol in std::mem::take(&mut self.stalled) {
            if self.syncs.get(&symbol).is_some_and(SymbolSync::is_syncing) {
                self.read_cache(symbol, ctx);
            }
        }
    }

    /// Subscribes to every bars channel in the current pub/sub connection generation, then resyncs everything.
    fn subscribe(&mut self, ctx: &mut Context<Self>) {
        let generation = *self.generation.borrow_and_update();
        let up = self.w.link.stats.pubsub.is_connected();
        if self.subscribing || generation == 0 || generation == self.subscribed_in || !up {
            return;
        }
        self.subscribing = true;
        let (link, pattern, frames) = (self.w.link.clone(), self.w.keys.bars_pattern(), self.w.keys.frames_channel());
        // Frames carry the updates; the per-symbol channels the rewrite notices (and a version-1 node's updates).
        let subscribe = async move {
            link.run_pubsub(|mut con| async move {
                con.subscribe(frames).await?;
                con.psubscribe(pattern).await
            })
            .await
        };
        ctx.spawn(actix::fut::wrap_future(subscribe).map(move |result, f: &mut Follower, ctx: &mut Context<Self>| {
            f.subscribing = false;
            match result {
                Ok(()) => {
                    f.subscribed_in = generation;
                    f.resync_all(ctx);
                }
                Err(e) => tracing::warn!(error = %describe(&e), "cannot subscribe to the bars channels; retrying"),
            }
        }));
    }

    /// Resyncs every known symbol: the configured ones, those in the cache, those followed so far.
    fn resync_all(&mut self, ctx: &mut Context<Self>) {
        let (link, keys) = (self.w.link.clone(), self.w.keys.clone());
        let listed = async move { today_cache::symbols(&link, &keys).await };
        ctx.spawn(actix::fut::wrap_future(listed).map(
            |listed: Result<Vec<String>, CacheError>, f: &mut Follower, ctx: &mut Context<Self>| {
                let mut symbols: Vec<Symbol> = f.syncs.keys().cloned().collect();
                let named = f.w.symbols.iter().cloned().chain(listed.unwrap_or_default());
                symbols.extend(named.filter(|s| valid_symbol(s)).map(|s| Symbol::from(s.as_str())));
                symbols.sort();
                symbols.dedup();
                for symbol in symbols {
                    f.resync(symbol, ctx);
                }
                f.check_seeded();
            },
        ));
    }

    /// Starts following `symbol` if needed (a replica aggregator, created on first sight) and reads its
    /// cache; does nothing for a symbol this node runs.
    fn resync(&mut self, symbol: Symbol, ctx: &mut Context<Self>) {
        if self.w.led.contains(&symbol) {
            self.syncs.remove(&symbol);
            return;
        }
        if !self.admits(&symbol) {
            return;
        }
        let sync = self.follow(&symbol);
        sync.start_resync();
        self.read_cache(symbol, ctx);
    }

    /// Whether `symbol` is followed already or still fits `max_symbols`; a refusal is counted. The configured
    /// symbols always fit: places are kept for those not followed yet, so that symbols named by messages
    /// that arrive before the first resync cannot take them (a CI dry run: an intruder's symbol followed, and
    /// the configured one refused).
    fn admits(&self, symbol: &Symbol) -> bool {
        if fits(symbol, |s| self.syncs.contains_key(s), self.syncs.len(), &self.w.symbols, self.w.max_symbols) {
            return true;
        }
        crate::refusals::refused("redis.max_followed_symbols");
        tracing::debug!(%symbol, max = self.w.max_symbols, "not following another symbol: redis.max_followed_symbols");
        false
    }

    /// The symbol's sync state; a symbol new to this node gets a replica aggregator.
    fn follow(&mut self, symbol: &Symbol) -> &mut SymbolSync {
        let (market, max_attempts) = (&self.w.market, self.max_attempts);
        self.syncs.entry(symbol.clone()).or_insert_with(|| {
            if !market.contains(symbol) {
                market.get_or_create(symbol, "redis").aggregator.do_send(SetReplica { replica: true });
            }
            SymbolSync::new(max_attempts)
        })
    }

    fn read_cache(&mut self, symbol: Symbol, ctx: &mut Context<Self>) {
        if self.reading.contains(&symbol) || self.queued.contains(&symbol) {
            // The read under way (or waiting) ends in a snapshot that the sync state checks against what it
            // buffered.
            return;
        }
        if !self.w.cache_today {
            self.reading.insert(symbol.clone());
            self.on_snapshot(symbol, Ok(Snapshot::default()), ctx);
            return;
        }
        if self.reading.len() >= self.w.max_cache_reads.max(1) {
            self.queued.insert(symbol.clone());
            self.waiting.push_back(symbol);
            return;
        }
        self.reading.insert(symbol.clone());
        let (link, keys, settings) = (self.w.link.clone(), self.w.keys.clone(), self.w.market.settings());
        let (intervals, limits, sym) = (settings.intervals(), self.w.limits.clone(), symbol.clone());
        let read = async move { today_cache::read(&link, &keys, &sym, &intervals, &limits, now_ms()).await };
        ctx.spawn(
            actix::fut::wrap_future(read)
                .map(move |result, f: &mut Follower, ctx: &mut Context<Self>| f.on_snapshot(symbol, result, ctx)),
        );
    }

    /// The sending node rewrote `symbol`'s cache (a rewrite notice): it may now hold the part of the day
    /// a backfill stored after this node read it. Read it again and take it even at the number already
    /// applied; the bars older than the replica's window reach this node's store as at the first sync.
    fn reload(&mut self, symbol: Symbol, ctx: &mut Context<Self>) {
        self.follow(&symbol).start_reload();
        if self.reading.contains(&symbol) {
            // That read may have started before the rewrite.
            self.reread.insert(symbol);
        } else {
            self.read_cache(symbol, ctx);
        }
    }

    /// Starts the waiting reads that fit among those in flight.
    fn read_waiting(&mut self, ctx: &mut Context<Self>) {
        while self.reading.len() < self.w.max_cache_reads.max(1) {
            let Some(symbol) = self.waiting.pop_front() else { return };
            self.queued.remove(&symbol);
            self.read_cache(symbol, ctx);
        }
    }

    fn on_snapshot(&mut self, symbol: Symbol, result: Result<Snapshot, CacheError>, ctx: &mut Context<Self>) {
        self.reading.remove(&symbol);
        self.read_waiting(ctx);
        if self.reread.remove(&symbol) {
            if let Some(sync) = self.syncs.get_mut(&symbol) {
                sync.start_reload();
            }
            self.read_cache(symbol, ctx);
            return;
        }
        let Some(sync) = self.syncs.get_mut(&symbol) else { return };
        let snapshot = match result {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%symbol, error = %e, "today-cache read failed; retrying");
                if self.w.link.stats.commands.is_connected() {
                    ctx.run_later(self.w.retry_every, move |f, ctx| f.read_cache(symbol, ctx));
                } else {
                    self.stalled.insert(symbol);
                }
                return;
            }
        };
        let cached = snapshot.bars.len();
        let step = sync.on_snapshot(snapshot);
        self.w.link.stats.note_derived(sync.take_derived());
        match step {
            OnSnapshot::Apply { bars, complete } => {
                let stats = &self.w.link.stats;
                stats.resyncs.fetch_add(1, Ordering::Relaxed);
                stats.cache_bars_loaded.fetch_add(cached as u64, Ordering::Relaxed);
                if !complete {
                    tracing::warn!(%symbol, "the today-cache did not catch up with the live messages; bars in between may be missing");
                }
                tracing::debug!(%symbol, cached, applied = bars.len(), "symbol synced from the today-cache");
                let window = today_cache::window(self.w.market.settings());
                let (older, recent) = split_window(bars, window);
                if !older.is_empty() && !self.w.led.contains(&symbol) {
                    // Straight to the store: through the replica they would be published as closed bars to
                    // every subscriber, on every resync, only to fall out of its window again.
                    self.w.history.persist(older, Arc::from("redis"));
                }
                self.apply(&symbol, recent);
                self.check_seeded();
            }
            OnSnapshot::Retry => {
                ctx.run_later(self.w.retry_every, move |f, ctx| f.read_cache(symbol, ctx));
            }
        }
    }

    /// Upserts bars into the symbol's replica aggregator, keeping the intervals it builds.
    fn apply(&self, symbol: &Symbol, mut bars: Vec<Bar>) {
        if bars.is_empty() || self.w.led.contains(symbol) {
            return;
        }
        let Some(entry) = self.w.market.get(symbol) else { return };
        let intervals = self.w.market.settings().intervals();
        bars.retain(|b| intervals.contains(&b.interval));
        entry.aggregator.do_send(UpsertBars { bars });
    }

    /// One symbol's message from `batch.node`: applied, buffered or ignored, or a resync begins.
    fn on_batch(&mut self, symbol: Symbol, batch: wire::Batch, ctx: &mut Context<Self>) {
        if *batch.node == *self.w.node {
            return;
        }
        let stats = self.w.link.stats.clone();
        stats.received.fetch_add(1, Ordering::Relaxed);
        if !self.admits(&symbol) {
            return;
        }
        if batch.rewritten {
            self.reload(symbol, ctx);
            return;
        }
        let known = self.syncs.contains_key(&symbol);
        let sync = self.follow(&symbol);
        let step = sync.on_message(batch);
        stats.note_derived(sync.take_derived());
        if !known {
            // First sight of this symbol: it starts syncing, so read its cache.
            self.read_cache(symbol.clone(), ctx);
        }
        match step {
            OnMessage::Apply(bars) => self.apply(&symbol, bars),
            OnMessage::Duplicate => {
                stats.receive_duplicates.fetch_add(1, Ordering::Relaxed);
            }
            OnMessage::Buffered => {}
            OnMessage::Resync(cause) => {
                match cause {
                    ResyncCause::Gap => {
                        stats.receive_gaps.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%symbol, "messages missed; resyncing from the today-cache");
                    }
                    ResyncCause::CacheBehind => {
                        stats.cache_behind.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%symbol, "the today-cache was read before it held the last message; reading it again");
                    }
                    ResyncCause::NewSender => {
                        tracing::info!(%symbol, "a new node runs this symbol; resyncing from the today-cache");
                    }
                }
                self.read_cache(symbol, ctx);
            }
        }
    }

    /// Tells the lease keeper once every configured symbol is synced.
    fn check_seeded(&mut self) {
        if self.seeded.is_none() {
            // Told already; at 10,000 symbols the check is not free, and every resync ends here.
            return;
        }
        let done = self
            .w
            .symbols
            .iter()
            .all(|s| self.w.led.contains(s) || self.syncs.get(s.as_str()).is_some_and(|sync| !sync.is_syncing()));
        if done {
            if let Some(seeded) = self.seeded.take() {
                let _ = seeded.send(());
            }
        }
    }
}

impl Actor for Follower {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(rx) = self.deliveries.take() {
            ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|d| (d, rx)) }));
        }
        ctx.run_interval(GENERATION_CHECK, |f, ctx| {
            f.read_stalled(ctx);
            f.subscribe(ctx);
        });
    }
}

impl StreamHandler<Delivery> for Follower {
    /// Applies, buffers or ignores each message of a delivery (a frame: one per symbol), and starts a resync on
    /// a gap or a new sending node.
    fn handle(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        if delivery.channel == self.w.keys.frames_channel() {
            match wire::decode_frame(&delivery.channel, &delivery.payload, &self.w.node) {
                Ok(entries) => {
                    for (symbol, batch) in entries {
                        if valid_symbol(&symbol) && !self.w.led.contains(&symbol) {
                            let symbol = self.w.market.get(&symbol).map_or(symbol, |e| e.symbol);
                            self.on_batch(symbol, batch, ctx);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a frame candlecast cannot read"),
            }
            return;
        }
        let Some(name) = self.w.keys.symbol_of(&delivery.channel) else { return };
        if !valid_symbol(name) || self.w.led.contains(name) {
            return;
        }
        let symbol = self.w.market.get(name).map_or_else(|| Symbol::from(name), |e| e.symbol);
        match wire::decode_batch(&delivery.channel, &symbol, &delivery.payload) {
            Ok(batch) => self.on_batch(symbol, batch, ctx),
            Err(e) => tracing::warn!(error = %e, "ignoring a message candlecast cannot read"),
        }
    }

    /// The connection's message stream only ends with the node.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Resync> for Follower {
    type Result = ();

    /// Starts following a symbol this node stopped running.
    fn handle(&mut self, msg: Resync, ctx: &mut Context<Self>) {
        self.resync(msg.symbol, ctx);
    }
}

/// Splits bars (several intervals, each ascending) into those older than the newest `window` open times
/// of their interval, and the rest in their original order: what a replica aggregator holds.
fn split_window(bars: Vec<Bar>, window: usize) -> (Vec<Bar>, Vec<Bar>) {
    let mut opens: HashMap<Interval, Vec<i64>> = HashMap::new();
    for bar in &bars {
        opens.entry(bar.interval).or_default().push(bar.open_time);
    }
    let oldest_kept: HashMap<Interval, i64> = opens
        .into_iter()
        .map(|(interval, mut times)| {
            times.sort_unstable();
            times.dedup();
            (interval, times[times.len().saturating_sub(window)])
        })
        .collect();
    bars.into_iter().partition(|b| oldest_kept.get(&b.interval).is_some_and(|first| b.open_time < *first))
}

/// Whether `symbol` may be followed by a node that follows `count` symbols (`followed` tells which), is
/// configured for `configured` and follows at most `max`: see [`Follower::admits`].
fn fits(symbol: &Symbol, followed: impl Fn(&Symbol) -> bool, count: usize, configured: &[String], max: usize) -> bool {
    if followed(symbol) || configured.iter().any(|c| c.as_str() == symbol.as_str()) {
        return true;
    }
    let kept = configured.iter().filter(|c| !followed(&Symbol::from(c.as_str()))).count();
    count + kept < max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symbol named by a message before the first resync cannot take a configured symbol's place.
    #[test]
    fn configured_symbols_keep_their_places_under_the_limit() {
        let configured = vec!["BTCUSDT".to_string()];
        let (fake, btc) = (Symbol::from("FAKE3"), Symbol::from("BTCUSDT"));
        let none = |_: &Symbol| false;
        assert!(!fits(&fake, none, 0, &configured, 1), "the one place is kept for BTCUSDT");
        assert!(fits(&btc, none, 0, &configured, 1));
        assert!(fits(&fake, none, 0, &configured, 2), "a second place is free");
        // Following BTCUSDT now: its place is used, not kept twice.
        let btc_only = |s: &Symbol| s.as_str() == "BTCUSDT";
        assert!(fits(&fake, btc_only, 1, &configured, 2));
        assert!(!fits(&fake, btc_only, 1, &configured, 1));
        // A configured symbol fits even past the limit (followed before it, as an older node's state may be).
        assert!(fits(&btc, |s: &Symbol| s.as_str() == "FAKE3", 1, &configured, 1));
    }

    #[test]
    fn only_the_newest_window_of_each_interval_goes_to_the_replica() {
        let symbol: Symbol = "BTCUSDT".into();
        let bar = |interval: Interval, i: i64| Bar::flat(symbol.clone(), interval, i * interval.millis(), 1.0);
        let mut bars: Vec<Bar> = (0..10).map(|i| bar(Interval::S1, i)).collect();
        bars.extend((0..2).map(|i| bar(Interval::M1, i)));
        // A live message buffered during the read repeats the newest 1s bar: it stays with the recent ones.
        bars.push(bar(Interval::S1, 9));
        let (older, recent) = split_window(bars, 3);
        let times = |v: &[Bar], iv: Interval| -> Vec<i64> {
            v.iter().filter(|b| b.interval == iv).map(|b| b.open_time / iv.millis()).collect()
        };
        assert_eq!(times(&older, Interval::S1), (0..7).collect::<Vec<_>>());
        assert_eq!(times(&recent, Interval::S1), vec![7, 8, 9, 9], "in their original order");
        assert!(times(&older, Interval::M1).is_empty(), "fewer than the window: all kept");
        assert_eq!(times(&recent, Interval::M1), vec![0, 1]);
    }
}
