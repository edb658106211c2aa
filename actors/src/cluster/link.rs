//! The node's two Redis connections, each a `ConnectionManager` (reconnecting with backoff) with a health
//! check that tells up from down:
//! - **commands**: everything that has a reply: cache reads and writes, PUBLISH, leases.
//! - **pub/sub**: SUBSCRIBE/PSUBSCRIBE and the messages they bring (RESP3 pushes, handed to whoever follows
//!   them; subscriptions are restored after a reconnect), nothing else.
//!
//! Two, because Redis caps the output buffer of a subscribed client (`client-output-buffer-limit pubsub`,
//! 32 MB at once or 8 MB for 60 s by default) and closes it beyond: on one shared connection the replies of a
//! resync's cache reads or of a rewrite's transaction counted against that cap, behind megabytes of frames,
//! and at 10,000 symbols Redis closed it over and over (each close a resync of every symbol, more replies).
//!
//! Every reconnection (the first connection included) bumps that connection's generation number: the
//! publisher and the lease keeper watch the commands one (Redis may have restarted empty, so they rewrite
//! what they own), the follower both (messages were lost, or cache reads failed: it resyncs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::{mpsc, watch};

use super::stats::{ClusterStats, ConnectionState};
use super::{ClusterError, RedisSettings};

/// How often the connection is checked with a PING.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// A pub/sub message from Redis: its channel and payload.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub channel: String,
    pub payload: Bytes,
}

/// Handles to the connections; cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    /// Commands and their replies.
    pub manager: ConnectionManager,
    /// Subscriptions only (see the module documentation).
    pub pubsub: ConnectionManager,
    pub stats: Arc<ClusterStats>,
    /// Bumped on every (re)connection of the commands connection.
    pub generation: watch::Receiver<u64>,
    /// Bumped on every (re)connection of the pub/sub connection.
    pub pubsub_generation: watch::Receiver<u64>,
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

/// Which of the two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Commands,
    PubSub,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Commands => "commands",
            Role::PubSub => "pub/sub",
        }
    }
}

impl RedisLink {
    /// Creates both connection managers without waiting for Redis (an unreachable Redis must not stop the
    /// start), and spawns their health checks and the push dispatcher. Must run inside a Tokio runtime.
    pub fn open(
        settings: &RedisSettings,
        stats: Arc<ClusterStats>,
    ) -> Result<(RedisLink, mpsc::UnboundedReceiver<Delivery>), ClusterError> {
        let url: Arc<str> = settings.redacted_url().into();
        let client = client(settings)?;
        let manager = |config: ConnectionManagerConfig| {
            let config = config
                .set_connection_timeout(Some(settings.connect_timeout()))
                .set_response_timeout(Some(settings.command_timeout()))
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(1))
                .set_number_of_retries(3);
            client
                .get_connection_manager_lazy(config)
                .map_err(|e| ClusterError::BadUrl { url: url.to_string(), reason: e.to_string() })
        };
        let commands = manager(ConnectionManagerConfig::new())?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let pubsub = manager(ConnectionManagerConfig::new().set_push_sender(push_tx).set_automatic_resubscription())?;
        let (generation_tx, generation) = watch::channel(0u64);
        let (pubsub_generation_tx, pubsub_generation) = watch::channel(0u64);
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let link = RedisLink {
            manager: commands,
            pubsub,
            stats,
            generation,
            pubsub_generation,
            url,
            command_timeout: settings.command_timeout(),
        };
        tokio::spawn(dispatch_pushes(push_rx, deliveries_tx, link.stats.clone(), link.url.clone()));
        tokio::spawn(check_health(link.clone(), Role::Commands, generation_tx));
        tokio::spawn(check_health(link.clone(), Role::PubSub, pubsub_generation_tx));
        Ok((link, deliveries))
    }

    /// Runs one command or pipeline on the commands connection with the command timeout; a timeout reads as
    /// an I/O error.
    pub async fn run<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, RedisError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        timed(self.command_timeout, f(self.manager.clone())).await
    }

    /// Runs a (un)subscription, or the health PING, on the pub/sub connection; nothing else goes there.
    pub async fn run_pubsub<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, RedisError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        timed(self.command_timeout, f(self.pubsub.clone())).await
    }

    fn state(&self, role: Role) -> &ConnectionState {
        match role {
            Role::Commands => &self.stats.commands,
            Role::PubSub => &self.stats.pubsub,
        }
    }
}

async fn timed<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(result) => result,
        Err(_) => {
            Err(RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer in time")))
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

/// PINGs one connection every [`HEALTH_EVERY`] (which also makes its manager reconnect, with backoff, after
/// a loss); records up and down, and bumps its generation when it comes back.
async fn check_health(link: RedisLink, role: Role, generation: watch::Sender<u64>) {
    let ping = |mut con: ConnectionManager| async move { redis::cmd("PING").query_async::<Value>(&mut con).await };
    loop {
        let result = match role {
            Role::Commands => link.run(ping).await,
            Role::PubSub => link.run_pubsub(ping).await,
        };
        let state = link.state(role);
        match result {
            Ok(_) => {
                if state.mark_up() {
                    let reconnects = state.reconnects.load(std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(url = %link.url, connection = role.name(), reconnects, "Redis connected");
                    generation.send_modify(|g| *g += 1);
                }
            }
            Err(e) => {
                let reason = describe(&e);
                if state.mark_down(reason.clone()) {
                    tracing::warn!(url = %link.url, connection = role.name(), error = %reason, "Redis unreachable; serving clients from memory and retrying");
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
            PushKind::Disconnection if stats.pubsub.mark_down("connection lost".into()) => {
                tracing::warn!(url = %url, "Redis pub/sub connection lost; resyncing once it is back");
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
