//! Scale-out across machines on Redis: node roles, bar updates over pub/sub, today's bars cached in Redis,
//! and one feed per symbol across the cluster by lease. Without `[redis] url` none of this runs.
//!
//! How a bar gets from the node running a symbol's feed to a client of another node: aggregator → hub →
//! [`publisher`] → Redis pub/sub (and the [`today_cache`]) → [`follower`] of the other node → its replica
//! aggregator (`UpsertBars`) → its hub → its clients. Which node runs a symbol's feed is decided by the
//! [`lease`] keeper; edge nodes run none.
//!
//! # Layout
//! - [`settings`]: `[node]` and `[redis]`, URL redaction, node ids.
//! - [`link`]: the two Redis connections, one for commands and one for pub/sub only (each reconnects by
//!   itself, the pub/sub one resubscribes), their health checks.
//! - [`wire`]: channel and key names, the compact JSON of messages and cached bars.
//! - [`derive`]: the coarse forming bars a follower derives from the 1s bars instead of receiving them.
//! - [`publisher`]: publishes the bar updates of the symbols this node runs, keeps the cache current.
//! - [`writer`]: the task that sends the publisher's messages and cache writes, in order, in transactions.
//! - [`today_cache`]: today's bars per symbol and interval in Redis: writes, reads, the watermark.
//! - [`sync`]: following one symbol without gaps or duplicates (pure logic).
//! - [`follower`]: follows every symbol another node runs, into local replica aggregators.
//! - [`lease`]: one feed per symbol across the cluster.
//! - [`stats`]: the figures `/api/stats`, `/health` and `/metrics` show.

pub(crate) mod derive;
pub(crate) mod follower;
pub(crate) mod lease;
pub(crate) mod link;
pub(crate) mod publisher;
pub(crate) mod settings;
pub(crate) mod stats;
pub(crate) mod sync;
pub(crate) mod today_cache;
pub(crate) mod wire;
pub(crate) mod writer;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use actix::prelude::*;

pub use link::RedisLink;
pub use settings::{validate as validate_settings, NodeSettings, RedisSettings, Role};
pub use stats::{ClusterReport, ClusterStats, CLUSTER_METRICS};
pub use wire::{encode_batch, Keys};

use crate::aggregator::SetReplica;
use crate::engine::{valid_symbol, Engine, FeedSettings};
use crate::hub::SubscribeActor;
use crate::model::Symbol;
use follower::{Follower, FollowerWiring};
use lease::{LeaseKeeper, LeaseWiring};
use publisher::Publisher;

/// A cluster configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("node.role = \"{0}\" needs redis.url (the nodes of a cluster meet in Redis)")]
    NeedsRedis(&'static str),
    #[error("redis.url {url} is not a usable Redis URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid setting: {0}")]
    Setting(&'static str),
    #[error("the Redis thread stopped before it started")]
    Stopped,
}

/// The symbols whose feed this node runs now (by lease): it publishes their updates and ignores theirs
/// from Redis. Shared by the lease keeper (writer), the publisher and the follower.
#[derive(Clone, Default)]
pub struct Led(Arc<RwLock<BTreeSet<Symbol>>>);

impl Led {
    pub fn contains(&self, symbol: &str) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).contains(symbol)
    }

    pub fn insert(&self, symbol: Symbol) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(symbol);
    }

    pub fn remove(&self, symbol: &str) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(symbol);
    }

    pub fn list(&self) -> Vec<Symbol> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// The running cluster parts of this node; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub node_id: Arc<str>,
    pub role: Role,
    pub link: RedisLink,
}

impl Cluster {
    /// Whether the engine should leave the feeds to the cluster (with Redis, feeds run by lease, and an
    /// edge runs none): if so, start the engine with `feed.source = "none"`.
    pub fn manages_feeds(redis: &RedisSettings) -> bool {
        redis.enabled()
    }

    /// Connects to Redis (without waiting for it: an unreachable Redis is reported, not fatal) and starts
    /// this node's part: the configured symbols as replicas, the follower, and on nodes that run feeds the
    /// publisher and the lease keeper. `None` when no Redis is configured. Must run inside the actix system.
    pub async fn start(
        engine: &Engine,
        node: &NodeSettings,
        redis: &RedisSettings,
        feed: &FeedSettings,
    ) -> Result<Option<Cluster>, ClusterError> {
        settings::validate(node, redis)?;
        if !redis.enabled() {
            return Ok(None);
        }
        let node_id: Arc<str> = settings::node_id(node).into();
        // Redis I/O gets a thread of its own, away from the hub and the aggregators.
        let arbiter = Arbiter::new().handle();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let (redis_settings, stats) = (redis.clone(), Arc::new(ClusterStats::default()));
        arbiter.spawn(async move {
            let _ = opened_tx.send(RedisLink::open(&redis_settings, stats));
        });
        let (link, deliveries) = opened.await.map_err(|_| ClusterError::Stopped)??;
        tracing::info!(node = %node_id, role = node.role.as_str(), url = %link.url, "cluster node starting");

        let (keys, led, market) = (Keys::new(&redis.channel_prefix), Led::default(), engine.market.clone());
        let runs_feeds = node.role.runs_feeds() && feed.source.runs_feeds();
        let label = if runs_feeds { feed.source.as_str() } else { "redis" };
        // Every configured symbol exists from the start, as a replica until this node runs its feed.
        let symbols: Vec<Symbol> =
            feed.symbols.iter().filter(|s| valid_symbol(s)).map(|s| market.get_or_create(s, label).symbol).collect();
        for symbol in &symbols {
            if let Some(entry) = market.get(symbol) {
                entry.aggregator.do_send(SetReplica { replica: true });
            }
        }
        let (seeded_tx, seeded) = tokio::sync::oneshot::channel();
        let wiring = FollowerWiring {
            node: node_id.clone(),
            keys: keys.clone(),
            led: led.clone(),
            market: market.clone(),
            link: link.clone(),
            cache_today: redis.cache_today,
            limits: redis.cache_limits(),
            history: engine.history.clone(),
            max_symbols: redis.max_followed_symbols,
            retry_every: redis.cache_flush(),
            symbols: feed.symbols.clone(),
            max_cache_reads: redis.max_cache_reads_in_flight,
        };
        let follower = Follower::start_in_arbiter(&arbiter, move |_| Follower::new(wiring, deliveries, seeded_tx));
        if runs_feeds {
            let (queue, queued) = tokio::sync::mpsc::channel(writer::QUEUE);
            let publisher = Publisher::new(
                node_id.clone(),
                keys.clone(),
                led.clone(),
                market.clone(),
                engine.history.clone(),
                link.clone(),
                queue,
                redis.cache_today,
                redis.cache_limits(),
                redis.cache_flush(),
                redis.publish_flush(),
            );
            let publisher = Publisher::start_in_arbiter(&arbiter, move |_| publisher);
            arbiter.spawn(writer::write_loop(link.clone(), queued, publisher.clone().recipient()));
            engine.hub.do_send(SubscribeActor { recipient: publisher.clone().recipient(), partials: true });
            let wiring = LeaseWiring {
                node: node_id.clone(),
                keys,
                led,
                link: link.clone(),
                market,
                feeds: engine.feeds.clone(),
                source: feed.source,
                symbols,
                ttl: redis.lease_ttl(),
                publisher,
                follower,
                history: engine.history.clone(),
            };
            LeaseKeeper::start_in_arbiter(&arbiter, move |_| LeaseKeeper::new(wiring, seeded));
        }
        Ok(Some(Cluster { node_id, role: node.role, link }))
    }

    pub fn stats(&self) -> &ClusterStats {
        &self.link.stats
    }

    /// Connection state, reason when down, and leases held, for `/health` and `/api/stats`.
    pub fn report(&self) -> ClusterReport {
        self.link.stats.report(&self.node_id, self.role, &self.link.url)
    }
}
