//! `[node]` and `[redis]`: what this node does in a cluster and how it reaches Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::today_cache::CacheLimits;
use super::ClusterError;
use crate::model::Interval;

/// What a node runs (`[node] role`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One node does everything. With a Redis URL it also takes part in a cluster, like `ingest`.
    #[default]
    All,
    /// Runs feeds (one per symbol across the cluster, by lease) and publishes every bar update to Redis.
    Ingest,
    /// Runs no feed; follows every symbol from Redis and serves its own clients.
    Edge,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Ingest => "ingest",
            Role::Edge => "edge",
        }
    }

    /// Whether this node may run feeds (under a lease when Redis is configured).
    pub fn runs_feeds(self) -> bool {
        self != Role::Edge
    }
}

/// `[node]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    pub role: Role,
    /// This node's name in leases and published messages; empty: hostname, pid and a random suffix.
    pub id: String,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`; empty: no Redis (a single node).
    pub url: String,
    /// Prefix of every channel and key candlecast uses, so several deployments can share one Redis.
    pub channel_prefix: String,
    /// How long a symbol's lease lasts without renewal; renewed every third of it.
    pub lease_ttl_ms: u64,
    /// Keep today's bars of every symbol and interval in Redis, to seed starting nodes.
    pub cache_today: bool,
    /// How often the today-cache is written (closed bars and the newest forming bars), in ms.
    pub cache_flush_ms: u64,
    /// How often the bar updates gathered since the last time are published, all symbols in one message.
    pub publish_flush_ms: u64,
    /// Bars the today-cache keeps per interval, by interval name; unlisted intervals keep the whole day.
    pub cache_max_bars: BTreeMap<Interval, usize>,
    /// Symbols a node follows from Redis at most (each costs a replica aggregator).
    pub max_followed_symbols: usize,
    /// Today-cache reads a following node has in flight at most; the others wait their turn.
    pub max_cache_reads_in_flight: usize,
    /// Timeout of one connection attempt, in ms.
    pub connect_timeout_ms: u64,
    /// Timeout of one command, in ms.
    pub command_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: String::new(),
            channel_prefix: "candlecast".into(),
            lease_ttl_ms: 10_000,
            cache_today: true,
            cache_flush_ms: 250,
            publish_flush_ms: 50,
            cache_max_bars: BTreeMap::new(),
            max_followed_symbols: 10_000,
            max_cache_reads_in_flight: 16,
            connect_timeout_ms: 2_000,
            command_timeout_ms: 2_000,
        }
    }
}

impl RedisSettings {
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }

    pub fn cache_flush(&self) -> Duration {
        Duration::from_millis(self.cache_flush_ms)
    }

    pub fn publish_flush(&self) -> Duration {
        Duration::from_millis(self.publish_flush_ms)
    }

    pub fn cache_limits(&self) -> CacheLimits {
        CacheLimits::new(self.cache_max_bars.clone())
    }

    /// The URL with its password replaced by `***`: the only form that may be logged or shown.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.trim())
    }
}

/// Checks that `node` and `redis` fit together; the message names the option to fix.
pub fn validate(node: &NodeSettings, redis: &RedisSettings) -> Result<(), ClusterError> {
    if !redis.enabled() {
        return match node.role {
            Role::All => Ok(()),
            role => Err(ClusterError::NeedsRedis(role.as_str())),
        };
    }
    let bad = |what: &'static str| Err(ClusterError::Setting(what));
    if redis.lease_ttl_ms < 300 {
        return bad("redis.lease_ttl_ms must be at least 300");
    }
    if redis.cache_flush_ms == 0 || redis.connect_timeout_ms == 0 || redis.command_timeout_ms == 0 {
        return bad("redis.cache_flush_ms, redis.connect_timeout_ms and redis.command_timeout_ms must be above 0");
    }
    if !(1..=1_000).contains(&redis.max_cache_reads_in_flight) {
        return bad("redis.max_cache_reads_in_flight must be between 1 and 1000");
    }
    if !(1..=1_000).contains(&redis.publish_flush_ms) {
        return bad("redis.publish_flush_ms must be between 1 and 1000");
    }
    if redis.channel_prefix.is_empty() || redis.channel_prefix.contains(|c: char| c.is_whitespace() || c == '*') {
        return bad("redis.channel_prefix must be a non-empty name without spaces or '*'");
    }
    if node.id.contains(char::is_whitespace) || node.id.len() > 100 {
        return bad("node.id must have no spaces and at most 100 characters");
    }
    super::link::client(redis).map(|_| ())
}

/// This node's id: the configured one, or hostname-pid-random so that a restarted node is a new node.
pub fn node_id(node: &NodeSettings) -> String {
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    if !node.id.is_empty() {
        return node.id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    let host = host.or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| "node".into());
    let suffix: u32 = SmallRng::from_os_rng().random_range(0..0x100_0000);
    format!("{}-{}-{suffix:06x}", host.replace(char::is_whitespace, "_"), std::process::id())
}

/// `redis://user:secret@host` → `redis://user:***@host`; URLs without a password are returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end].rfind('@').map(|i| scheme_end + i) else { return url.to_owned() };
    let userinfo = &url[scheme_end..at];
    let user = userinfo.split(':').next().unwrap_or("");
    if !userinfo.contains(':') {
        return url.to_owned();
    }
    format!("{}{user}:***{}", &url[..scheme_end], &url[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_nothing_else_changes() {
        assert_eq!(redact_url("redis://:s3cret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
        assert_eq!(
            redact_url("redis://app:p%40ss:word@host/2?protocol=resp3"),
            "redis://app:***@host/2?protocol=resp3"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact_url("redis://user@host"), "redis://user@host");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn roles_other_than_all_need_a_url_and_bad_urls_are_named_without_secrets() {
        let edge = NodeSettings { role: Role::Edge, id: String::new() };
        let err = validate(&edge, &RedisSettings::default()).unwrap_err().to_string();
        assert!(err.contains("edge") && err.contains("redis.url"), "{err}");
        assert!(validate(&NodeSettings::default(), &RedisSettings::default()).is_ok());
        let bad = RedisSettings { url: "http://:hunter2@host".into(), ..RedisSettings::default() };
        let err = validate(&edge, &bad).unwrap_err().to_string();
        assert!(err.contains("redis.url") && !err.contains("hunter2"), "{err}");
        let ok = RedisSettings { url: "redis://127.0.0.1:6379".into(), ..RedisSettings::default() };
        assert!(validate(&edge, &ok).is_ok());
        let short = RedisSettings { lease_ttl_ms: 10, ..ok };
        assert!(validate(&edge, &short).unwrap_err().to_string().contains("lease_ttl_ms"));
    }

    #[test]
    fn generated_node_ids_differ_and_configured_ones_are_kept() {
        let auto = NodeSettings::default();
        assert_ne!(node_id(&auto), node_id(&auto));
        assert!(node_id(&auto).contains(&std::process::id().to_string()));
        assert_eq!(node_id(&NodeSettings { role: Role::Ingest, id: "ingest-a".into() }), "ingest-a");
    }
}
