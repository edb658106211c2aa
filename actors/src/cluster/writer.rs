//! The one task that writes to Redis for the publisher: messages and today-cache writes go out in the
//! order they were queued, as many as are waiting in one transaction (MULTI/EXEC), so that a reader never
//! sees cached bars without the watermark that goes with them.

use std::sync::atomic::Ordering;

use actix::Recipient;
use tokio::sync::mpsc;

use super::link::{describe, RedisLink};
use super::publisher::CacheWriteFailed;
use super::today_cache::CacheWrite;

/// Queued writes beyond this are dropped and counted: Redis is too slow or away.
pub const QUEUE: usize = 20_000;
/// Writes sent in one transaction at most.
const BATCH: usize = 512;

/// One write for Redis.
pub enum Outgoing {
    /// A bars message or frame for followers; `messages`: the symbols' numbered messages it carries.
    Publish { channel: String, payload: Vec<u8>, messages: u64 },
    /// Bars for the today-cache, with their watermarks: everything one cache flush writes (or one rewrite).
    Cache(Vec<CacheWrite>),
}

/// Writes everything `queue` yields until it closes; failures are counted, not retried (pub/sub is
/// fire-and-forget), and failed cache writes reported to `failed` (that symbol is rewritten from memory).
pub async fn write_loop(link: RedisLink, mut queue: mpsc::Receiver<Outgoing>, failed: Recipient<CacheWriteFailed>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let (mut messages, mut cache_bars) = (0u64, 0u64);
        let mut cached_symbols = Vec::new();
        for item in batch.drain(..) {
            match item {
                Outgoing::Publish { channel, payload, messages: carried } => {
                    pipe.publish(channel, payload).ignore();
                    messages += carried;
                }
                Outgoing::Cache(writes) => {
                    for write in writes {
                        cache_bars += write.add_to(&mut pipe) as u64;
                        cached_symbols.push(write.symbol);
                    }
                }
            }
        }
        let (stats, cache_writes) = (&link.stats, cached_symbols.len() as u64);
        match link.run(|mut con| async move { pipe.exec_async(&mut con).await }).await {
            Ok(()) => {
                stats.published.fetch_add(messages, Ordering::Relaxed);
                stats.cache_writes.fetch_add(cache_writes, Ordering::Relaxed);
                stats.cache_bars_written.fetch_add(cache_bars, Ordering::Relaxed);
            }
            Err(e) => {
                stats.publish_dropped.fetch_add(messages, Ordering::Relaxed);
                stats.cache_write_failures.fetch_add(cache_writes, Ordering::Relaxed);
                tracing::debug!(error = %describe(&e), messages, cache_writes, "Redis write failed");
                for symbol in cached_symbols {
                    failed.do_send(CacheWriteFailed { symbol });
                }
            }
        }
    }
}
