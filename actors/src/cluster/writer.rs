//! The one task that writes to Redis for the publisher: messages and today-cache writes go out in the
//! order they were queued, in transactions (MULTI/EXEC), so that a reader never sees cached bars without the
//! watermark that goes with them.
//!
//! A transaction holds at most [`MAX_COMMANDS`] commands and [`MAX_PUBLISH_BYTES`] of messages (a symbol's
//! cache write is never split): Redis runs a transaction in one go, so the first rewrite of 10,000 symbols as
//! one transaction (25,000 commands) held up every other client, this node's health PING included, beyond
//! the command timeout; and the messages of one transaction land in every subscriber's output buffer at once,
//! against its `client-output-buffer-limit pubsub`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use actix::Recipient;
use tokio::sync::mpsc;

use super::link::{describe, RedisLink};
use super::publisher::CacheWriteFailed;
use super::today_cache::CacheWrite;
use crate::model::Symbol;

/// Queued writes beyond this are dropped and counted: Redis is too slow or away.
pub const QUEUE: usize = 20_000;
/// Queued writes taken from the queue at a time.
const BATCH: usize = 512;
/// Commands in one transaction at most (more once, by the last symbol's cache write).
const MAX_COMMANDS: usize = 2_000;
/// Bytes of messages in one transaction at most (more once, by its last message).
const MAX_PUBLISH_BYTES: usize = 1 << 20;

/// One write for Redis.
pub enum Outgoing {
    /// A bars message or frame for followers; `messages`: the symbols' numbered messages it carries.
    Publish { channel: String, payload: Vec<u8>, messages: u64 },
    /// Bars for the today-cache, with their watermarks: everything one cache flush writes (or one rewrite).
    Cache(Vec<CacheWrite>),
}

/// One transaction, and what it carries for the counters.
struct Transaction {
    pipe: redis::Pipeline,
    messages: u64,
    cache_bars: u64,
    cached_symbols: Vec<Symbol>,
}

impl Transaction {
    /// Takes writes from the front of `waiting` until the transaction is full; a cache item is split between
    /// symbols when it does not fit whole.
    fn take(waiting: &mut VecDeque<Outgoing>) -> Transaction {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut tx = Transaction { pipe, messages: 0, cache_bars: 0, cached_symbols: Vec::new() };
        let mut publish_bytes = 0;
        while let Some(item) = waiting.pop_front() {
            if tx.pipe.len() >= MAX_COMMANDS || publish_bytes >= MAX_PUBLISH_BYTES {
                waiting.push_front(item);
                break;
            }
            match item {
                Outgoing::Publish { channel, payload, messages } => {
                    publish_bytes += payload.len();
                    tx.pipe.publish(channel, payload).ignore();
                    tx.messages += messages;
                }
                Outgoing::Cache(writes) => {
                    let mut writes = writes.into_iter();
                    while let Some(write) = writes.next() {
                        tx.cache_bars += write.add_to(&mut tx.pipe) as u64;
                        tx.cached_symbols.push(write.symbol);
                        if tx.pipe.len() >= MAX_COMMANDS {
                            let rest: Vec<CacheWrite> = writes.collect();
                            if !rest.is_empty() {
                                waiting.push_front(Outgoing::Cache(rest));
                            }
                            break;
                        }
                    }
                }
            }
        }
        tx
    }
}

/// Writes everything `queue` yields until it closes; failures are counted, not retried (pub/sub is
/// fire-and-forget), and failed cache writes reported to `failed` (that symbol is rewritten from memory).
pub async fn write_loop(link: RedisLink, mut queue: mpsc::Receiver<Outgoing>, failed: Recipient<CacheWriteFailed>) {
    let mut waiting = VecDeque::new();
    let mut received = Vec::with_capacity(BATCH);
    loop {
        if waiting.is_empty() {
            if queue.recv_many(&mut received, BATCH).await == 0 {
                return;
            }
        } else {
            // What a full transaction left waiting goes first; take what else came meanwhile, without waiting.
            while waiting.len() + received.len() < BATCH {
                let Ok(item) = queue.try_recv() else { break };
                received.push(item);
            }
        }
        waiting.extend(received.drain(..));
        let Transaction { pipe, messages, cache_bars, cached_symbols } = Transaction::take(&mut waiting);
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
