//! The lease keeper: one upstream connection per symbol across the cluster. Every ingest node tries to
//! hold `<prefix>:lease:<SYMBOL>` for each symbol it is configured with; the holder runs the symbol's feed,
//! the others follow it from Redis. Leases expire after `lease_ttl_ms` unless renewed, and are renewed
//! every third of that: when the holder dies, another node takes the symbol over within about one TTL.
//!
//! One Lua script claims every symbol atomically per key: it sets the lease when it is free (SET NX PX),
//! extends it when it is this node's (compare-and-set), and leaves another node's alone.
//!
//! While Redis is unreachable nobody can take a lease over, so holders keep their feeds running and the
//! others keep serving from memory. A node that never reached Redis since it started runs all its
//! symbols itself (it cannot know better) until Redis answers and the leases decide.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use super::follower::{Follower, Resync};
use super::link::{describe, RedisLink};
use super::publisher::{Publisher, RewriteCache};
use super::wire::Keys;
use super::Led;
use crate::aggregator::SetReplica;
use crate::engine::Feeds;
use crate::feed::FeedState;
use crate::market::Market;
use crate::model::Symbol;
use crate::persist::history::History;

/// Sets each lease in KEYS to ARGV[1] for ARGV[2] ms when it is free or already ARGV[1]'s; returns one
/// 1 (held) or 0 (another node's) per key.
const CLAIM: &str = r"
local held = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
";

/// How long the first claim waits for the follower to seed the symbols from the cache.
const SEED_PATIENCE: Duration = Duration::from_secs(5);
/// How often a newly started feed is checked for the end of its backfill.
const BACKFILL_CHECK: Duration = Duration::from_millis(200);
/// A backfill that takes longer than this is not waited for (its feed was stopped, or failed).
const BACKFILL_PATIENCE: Duration = Duration::from_secs(300);

/// The lease keeper's wiring, passed once by `Cluster::start`.
pub struct LeaseWiring {
    pub node: Arc<str>,
    pub keys: Keys,
    pub led: Led,
    pub link: RedisLink,
    pub market: Market,
    pub feeds: Feeds,
    /// The feed source to run (`simulated`, `binance`, `replay`).
    pub source: crate::feed::FeedSource,
    pub symbols: Vec<Symbol>,
    pub ttl: Duration,
    pub publisher: Addr<Publisher>,
    pub follower: Addr<Follower>,
    /// The store the feed's backfill goes to: the cache is rewritten once it is there.
    pub history: History,
}

/// See the module documentation.
pub struct LeaseKeeper {
    w: LeaseWiring,
    /// Resolved once the follower has seeded the symbols; claims start after that.
    seeded: Option<oneshot::Receiver<()>>,
    started: Instant,
    claiming: bool,
    /// Running every symbol without Redis (it was never reachable).
    provisional: bool,
    generation: watch::Receiver<u64>,
    /// When each held lease was last confirmed by Redis.
    confirmed: HashMap<Symbol, Instant>,
}

impl LeaseKeeper {
    pub fn new(w: LeaseWiring, seeded: oneshot::Receiver<()>) -> LeaseKeeper {
        let generation = w.link.generation.clone();
        LeaseKeeper {
            w,
            seeded: Some(seeded),
            started: Instant::now(),
            claiming: false,
            provisional: false,
            generation,
            confirmed: HashMap::new(),
        }
    }

    /// Whether the start-up wait for the cache seed is over.
    fn ready(&mut self) -> bool {
        match &mut self.seeded {
            None => true,
            Some(rx) => {
                let done = !matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
                    || self.started.elapsed() >= SEED_PATIENCE;
                if done {
                    self.seeded = None;
                }
                done
            }
        }
    }

    /// One pass over every configured symbol in a single Redis script: renews the leases this node holds and
    /// claims the free ones; [`apply_claims`](Self::apply_claims) then starts or stops feeds to match. While
    /// Redis has never answered, runs every symbol here provisionally instead.
    fn renew_and_claim_leases(&mut self, ctx: &mut Context<Self>) {
        if self.claiming || !self.ready() {
            return;
        }
        if !self.w.link.stats.commands.is_connected() {
            if !self.w.link.stats.commands.was_ever_connected() && !self.provisional {
                self.provisional = true;
                tracing::warn!(
                    "Redis unreachable since start: running every configured symbol here until leases can be taken"
                );
                for symbol in self.w.symbols.clone() {
                    self.gain(&symbol, ctx);
                }
            }
            return;
        }
        self.claiming = true;
        let (link, node) = (self.w.link.clone(), self.w.node.clone());
        let keys: Vec<String> = self.w.symbols.iter().map(|s| self.w.keys.lease(s)).collect();
        let ttl_ms = self.w.ttl.as_millis() as u64;
        let claim = async move {
            link.run(|mut con| async move {
                let script = redis::Script::new(CLAIM);
                let mut invocation = script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(&*node).arg(ttl_ms);
                invocation.invoke_async::<Vec<i64>>(&mut con).await
            })
            .await
        };
        ctx.spawn(actix::fut::wrap_future(claim).map(|result, k: &mut LeaseKeeper, ctx: &mut Context<Self>| {
            k.claiming = false;
            match result {
                Ok(held) => k.apply_claims(&held, ctx),
                // Nobody can take a lease over while Redis fails: keep running what is held.
                Err(e) => tracing::debug!(error = %describe(&e), "lease renewal failed; keeping the current leases"),
            }
        }));
    }

    fn apply_claims(&mut self, held: &[i64], ctx: &mut Context<Self>) {
        let now = Instant::now();
        for (symbol, held) in self.w.symbols.clone().iter().zip(held) {
            let ours = self.w.led.contains(symbol);
            match (*held == 1, ours) {
                (true, false) => self.gain(symbol, ctx),
                (true, true) if !self.confirmed.contains_key(symbol) => {
                    // Held provisionally until now: it is a real lease from here on.
                    self.w.link.stats.set_lease(symbol, true);
                    self.w.link.stats.leases_acquired.fetch_add(1, Ordering::Relaxed);
                }
                (false, true) => self.lose(symbol),
                _ => {}
            }
            if *held == 1 {
                self.confirmed.insert(symbol.clone(), now);
            } else {
                self.confirmed.remove(symbol);
            }
        }
        self.provisional = false;
    }

    /// Starts running `symbol`: its aggregator becomes the source, its feed starts, the cache is rewritten.
    fn gain(&mut self, symbol: &Symbol, ctx: &mut Context<Self>) {
        let w = &self.w;
        let Some(entry) = w.market.get(symbol) else { return };
        // Led first: the bars the aggregator closes on leaving replica mode must be published.
        w.led.insert(symbol.clone());
        entry.aggregator.do_send(SetReplica { replica: false });
        if w.link.stats.commands.is_connected() {
            w.link.stats.set_lease(symbol, true);
            w.link.stats.leases_acquired.fetch_add(1, Ordering::Relaxed);
        }
        match w.feeds.add(w.source, symbol) {
            Ok(feed) => {
                tracing::info!(%symbol, source = %w.source, "running this symbol's feed");
                w.publisher.do_send(RewriteCache { symbol: symbol.clone() });
                // Once the feed's backfill is in memory and stored, today's bars are complete: cache them again
                // (the store holds the part of the day older than the in-memory window).
                let (publisher, symbol, history) = (w.publisher.clone(), symbol.clone(), w.history.clone());
                ctx.spawn(actix::fut::wrap_future(async move {
                    let give_up = Instant::now() + BACKFILL_PATIENCE;
                    while feed.status.state() == FeedState::Connecting && Instant::now() < give_up {
                        tokio::time::sleep(BACKFILL_CHECK).await;
                    }
                    history.flushed(BACKFILL_PATIENCE).await;
                    publisher.do_send(RewriteCache { symbol });
                }));
            }
            Err(e) => tracing::error!(%symbol, error = %e, "cannot start the feed"),
        }
    }

    /// Stops running `symbol`: its feed stops and it is followed from Redis again.
    fn lose(&mut self, symbol: &Symbol) {
        let w = &self.w;
        w.led.remove(symbol);
        w.link.stats.set_lease(symbol, false);
        w.link.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
        w.feeds.remove(w.source, symbol);
        if let Some(entry) = w.market.get(symbol) {
            entry.aggregator.do_send(SetReplica { replica: true });
        }
        w.follower.do_send(Resync { symbol: symbol.clone() });
        tracing::warn!(%symbol, "another node runs this symbol now; following it");
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.w.ttl / 3, |k, ctx| k.renew_and_claim_leases(ctx));
        // Also at once after a reconnect (Redis may have restarted empty), and at start.
        ctx.run_interval(Duration::from_millis(100), |k, ctx| {
            let changed = k.generation.has_changed().unwrap_or(false);
            if changed || k.seeded.is_some() {
                if changed {
                    k.generation.mark_unchanged();
                }
                k.renew_and_claim_leases(ctx);
            }
        });
    }
}
