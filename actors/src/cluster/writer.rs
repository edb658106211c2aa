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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::Recipient;
use redis::RedisError;
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
    Cache(CacheItem),
}

impl Outgoing {
    /// The writes of one cache flush (with its ticket) or of one rewrite (without).
    pub fn cache(writes: Vec<CacheWrite>, ticket: Option<FlushTicket>) -> Outgoing {
        Outgoing::Cache(CacheItem { writes: writes.into_iter(), ticket })
    }
}

/// Cache writes not yet in a transaction. An iterator, so that what a full transaction leaves goes back to
/// the queue as it is: collecting the rest into a new list at every split copied a 10,000-symbol flush over
/// and over (a hundred transactions each).
pub struct CacheItem {
    writes: std::vec::IntoIter<CacheWrite>,
    ticket: Option<FlushTicket>,
}

/// Counts one cache flush of the publisher from the moment it is queued until Redis answered the
/// transaction that carried its last write (or until it was dropped). The publisher queues no new flush while
/// one is counted: what changes meanwhile keeps gathering (each forming bar once, in its newest state), so a
/// writer that fell behind gets one flush for all the time it was behind, instead of one every flush period.
/// Without this, a writer behind had more to do than one keeping up, and a 10,000-symbol node that fell behind
/// at a slow start stayed behind (its queue holding gigabytes of flushes).
pub struct FlushTicket(Arc<AtomicUsize>);

impl FlushTicket {
    pub fn new(counter: &Arc<AtomicUsize>) -> FlushTicket {
        counter.fetch_add(1, Ordering::Relaxed);
        FlushTicket(counter.clone())
    }
}

impl Drop for FlushTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One transaction, and what it carries for the counters.
struct Transaction {
    pipe: redis::Pipeline,
    messages: u64,
    cache_bars: u64,
    cached_symbols: Vec<Symbol>,
    /// The flushes whose last writes are in this transaction: released once it is answered.
    tickets: Vec<FlushTicket>,
}

impl Transaction {
    /// Takes writes from the front of `waiting` until the transaction is full; a cache item is split between
    /// symbols when it does not fit whole.
    fn take(waiting: &mut VecDeque<Outgoing>) -> Transaction {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut tx = Transaction { pipe, messages: 0, cache_bars: 0, cached_symbols: Vec::new(), tickets: Vec::new() };
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
                Outgoing::Cache(mut item) => {
                    while tx.pipe.len() < MAX_COMMANDS {
                        let Some(write) = item.writes.next() else { break };
                        tx.cache_bars += write.add_to(&mut tx.pipe) as u64;
                        tx.cached_symbols.push(write.symbol);
                    }
                    if item.writes.len() > 0 {
                        waiting.push_front(Outgoing::Cache(item));
                    } else {
                        tx.tickets.extend(item.ticket);
                    }
                }
            }
        }
        tx
    }
}

/// Writes everything `queue` yields until it closes, one transaction at a time; failures are counted, not
/// retried (pub/sub is fire-and-forget), and failed cache writes reported to `failed` (that symbol is
/// rewritten from memory). One at a time: several in flight gained nothing measurable at 10,000 symbols
/// (docs/BENCHMARKS.md, "A node that fell behind"), and one keeps what lands in a subscriber's output buffer
/// at once to one transaction's messages.
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
        let Transaction { pipe, messages, cache_bars, cached_symbols, tickets } = Transaction::take(&mut waiting);
        link.stats.writer_queued.store((waiting.len() + queue.len()) as u64, Ordering::Relaxed);
        let started = Instant::now();
        let result = link.run(|mut con| async move { pipe.exec_async(&mut con).await }).await;
        link.stats.writer_busy_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        settle(&link, &failed, result, messages, cache_bars, cached_symbols);
        // Answered: the publisher may queue its next flush.
        drop(tickets);
    }
}

/// Counts an answered transaction; a failed one's cache writes are redone from memory.
fn settle(
    link: &RedisLink,
    failed: &Recipient<CacheWriteFailed>,
    result: Result<(), RedisError>,
    messages: u64,
    cache_bars: u64,
    cached_symbols: Vec<Symbol>,
) {
    let (stats, cache_writes) = (&link.stats, cached_symbols.len() as u64);
    match result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::today_cache::CacheLimits;
    use crate::cluster::wire::Keys;
    use crate::model::{Bar, Interval};

    fn write(symbol: &str, bars: i64) -> CacheWrite {
        let symbol: Symbol = symbol.into();
        let now = 1_800_000_000_000;
        let start = Interval::D1.align(now);
        let bars = (0..bars).map(|i| Bar::flat(symbol.clone(), Interval::S1, start + i * 1_000, 1.0)).collect();
        CacheWrite {
            keys: Keys::new("candlecast"),
            symbol,
            bars,
            forming: None,
            limits: CacheLimits::default(),
            replace: false,
            node: "n".into(),
            seq: 1,
            now,
            expired: 0,
        }
    }

    fn publish(bytes: usize) -> Outgoing {
        Outgoing::Publish { channel: "c".into(), payload: vec![b'x'; bytes], messages: 1 }
    }

    /// Every write goes out once, in order; no transaction holds much more than the budgets (a symbol's
    /// cache write is never split, so one write may go beyond them).
    #[test]
    fn a_rewrite_of_many_symbols_goes_out_in_order_in_transactions_within_the_budgets() {
        // 1,000 symbols of 10 bars: about 24 commands each, 24,000 in all; 4 MiB of messages among them.
        let writes: Vec<CacheWrite> = (0..1_000).map(|i| write(&format!("S{i:04}"), 10)).collect();
        let per_write = {
            let mut pipe = redis::pipe();
            write("X", 10).add_to(&mut pipe);
            pipe.len()
        };
        let mut waiting: VecDeque<Outgoing> = VecDeque::new();
        waiting.extend((0..4).map(|_| publish(1 << 20)));
        waiting.push_back(Outgoing::cache(writes, None));
        waiting.push_back(publish(100));
        let (mut symbols, mut messages, mut transactions) = (Vec::new(), 0, 0);
        while !waiting.is_empty() {
            let tx = Transaction::take(&mut waiting);
            transactions += 1;
            assert!(tx.pipe.len() < MAX_COMMANDS + per_write + 2, "{} commands", tx.pipe.len());
            assert!(tx.messages <= 1 || tx.cached_symbols.is_empty(), "a 1 MiB message fills a transaction");
            messages += tx.messages;
            symbols.extend(tx.cached_symbols);
        }
        let expected: Vec<Symbol> = (0..1_000).map(|i| Symbol::from(format!("S{i:04}").as_str())).collect();
        assert_eq!(symbols, expected, "every symbol's write once, in order");
        assert_eq!(messages, 5);
        assert!(transactions >= 4 + 1_000 * per_write / MAX_COMMANDS, "{transactions} transactions");
    }
}
