//! Scale-out across machines on Redis: node roles, bar updates over pub/sub, today's bars cached in Redis,
//! and one feed per symbol across the cluster by lease. Without `[redis] url` none of this runs.
//!
//! # Layout
//! - [`settings`]: `[node]` and `[redis]`, URL redaction, node ids.
//! - [`link`]: the one Redis connection (reconnects and resubscribes by itself), its health check.
//! - [`stats`]: the figures `/api/stats`, `/health` and `/metrics` show.

pub mod link;
pub mod settings;
pub mod stats;

use std::sync::Arc;

use actix::prelude::*;

pub use link::RedisLink;
pub use settings::{NodeSettings, RedisSettings, Role};
pub use stats::{ClusterReport, ClusterStats, CLUSTER_METRICS};

use crate::engine::{Engine, FeedSettings};

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

/// The running cluster parts of this node; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub node_id: Arc<str>,
    pub role: Role,
    pub link: RedisLink,
}

impl Cluster {
    /// Connects to Redis (without waiting for it: an unreachable Redis is reported, not fatal) and starts
    /// this node's part. `None` when no Redis is configured. Must run inside the actix system.
    pub async fn start(_engine: &Engine, node: &NodeSettings, redis: &RedisSettings, _feed: &FeedSettings) -> Result<Option<Cluster>, ClusterError> {
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
        let (link, _deliveries) = opened.await.map_err(|_| ClusterError::Stopped)??;
        tracing::info!(node = %node_id, role = node.role.as_str(), url = %link.url, "cluster node starting");
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
