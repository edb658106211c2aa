//! The node's one Redis connection: a `ConnectionManager` (RESP3, so pub/sub messages arrive as push
//! messages on the same multiplexed connection, and subscriptions are restored after a reconnect), a
//! health check that tells up from down, and the pub/sub messages handed to whoever follows them.
//!
//! Every reconnection (the first connection included) bumps a generation number that the publisher, the
//! follower and the lease keeper watch: Redis may have restarted empty, so they rewrite what they own.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::{mpsc, watch};

use super::stats::ClusterStats;
use super::{ClusterError, RedisSettings};

/// How often the connection is checked with a PING.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// A pub/sub message from Redis: its channel and payload.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub channel: String,
    pub payload: Bytes,
}

/// Handles to the connection; cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    pub manager: ConnectionManager,
    pub stats: Arc<ClusterStats>,
    /// Bumped on every (re)connection.
    pub generation: watch::Receiver<u64>,
    /// The URL with its password masked.
    pub url: Arc<str>,
    pub command_timeout: Duration,
}

/// A Redis client for `settings.url`, speaking RESP3. Errors name the option, never the password.
pub fn client(settings: &RedisSettings) -> Result<redis::Client, ClusterError> {
    let info = settings
        .url
        .trim()
        .into_connection_info()
        .map_err(|e| ClusterError::BadUrl { url: settings.redacted_url(), reason: e.to_string() })?;
    let redis_settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(redis_settings))
        .map_err(|e| ClusterError::BadUrl { url: settings.redacted_url(), reason: e.to_string() })
}

impl RedisLink {
    /// Creates the connection manager without waiting for Redis (an unreachable Redis must not stop the
    /// start), and spawns the health check and the push dispatcher. Must run inside a Tokio runtime.
    pub fn open(
        settings: &RedisSettings,
        stats: Arc<ClusterStats>,
    ) -> Result<(RedisLink, mpsc::UnboundedReceiver<Delivery>), ClusterError> {
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout()))
            .set_response_timeout(Some(settings.command_timeout()))
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(3)
            .set_push_sender(push_tx)
            .set_automatic_resubscription();
        let url: Arc<str> = settings.redacted_url().into();
        let manager = client(settings)?
            .get_connection_manager_lazy(config)
            .map_err(|e| ClusterError::BadUrl { url: url.to_string(), reason: e.to_string() })?;
        let (generation_tx, generation) = watch::channel(0u64);
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let link = RedisLink { manager, stats, generation, url, command_timeout: settings.command_timeout() };
        tokio::spawn(dispatch_pushes(push_rx, deliveries_tx, link.stats.clone(), link.url.clone()));
        tokio::spawn(check_health(link.clone(), generation_tx));
        Ok((link, deliveries))
    }

    /// Runs one command or pipeline with the command timeout; a timeout reads as an I/O error.
    pub async fn run<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, RedisError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(self.command_timeout, f(self.manager.clone())).await {
            Ok(result) => result,
            Err(_) => {
                Err(RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer in time")))
            }
        }
    }
}

/// A readable reason for a failed command.
pub fn describe(e: &RedisError) -> String {
    let text = e.to_string();
    if e.is_connection_refusal() {
        format!("cannot connect: {text}")
    } else if e.is_timeout() {
        format!("timed out: {text}")
    } else if text.contains("WRONGPASS") || text.contains("NOAUTH") {
        format!("authentication failed (check the user and password in redis.url): {text}")
    } else {
        text
    }
}

/// PINGs Redis every [`HEALTH_EVERY`]; records up and down, and bumps the generation when it comes back.
async fn check_health(link: RedisLink, generation: watch::Sender<u64>) {
    loop {
        let result = link.run(|mut con| async move { redis::cmd("PING").query_async::<Value>(&mut con).await }).await;
        match result {
            Ok(_) => {
                if link.stats.mark_up() {
                    tracing::info!(url = %link.url, reconnects = link.stats.reconnects.load(std::sync::atomic::Ordering::Relaxed), "Redis connected");
                    generation.send_modify(|g| *g += 1);
                }
            }
            Err(e) => {
                let reason = describe(&e);
                if link.stats.mark_down(reason.clone()) {
                    tracing::warn!(url = %link.url, error = %reason, "Redis unreachable; serving clients from memory and retrying");
                }
            }
        }
        if generation.is_closed() {
            return;
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}

/// Hands pub/sub messages to the follower and notes disconnections at once (before the next PING).
async fn dispatch_pushes(
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    stats: Arc<ClusterStats>,
    url: Arc<str>,
) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            // mark_down records every loss; the warning is logged on the transition only.
            PushKind::Disconnection if stats.mark_down("connection lost".into()) => {
                tracing::warn!(url = %url, "Redis connection lost; serving clients from memory and reconnecting");
            }
            PushKind::PMessage | PushKind::Message => {
                // pmessage: [pattern, channel, payload]; message: [channel, payload].
                let mut values = push.data.into_iter().rev();
                let (Some(Value::BulkString(payload)), Some(Value::BulkString(channel))) =
                    (values.next(), values.next())
                else {
                    continue;
                };
                let Ok(channel) = String::from_utf8(channel) else { continue };
                let _ = deliveries.send(Delivery { channel, payload: Bytes::from(payload) });
            }
            _ => {}
        }
    }
}
