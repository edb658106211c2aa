//! A session's outgoing Engine.IO packets, bounded by what they cost in memory, drained by whichever
//! transport is active.
//!
//! Anything may push (the session, a room broadcast from another thread, the hub bridge); one transport
//! drains: a long-polling GET takes everything queued as one payload, a WebSocket takes one packet per
//! frame. A push that would take the queue past its limit replaces what is queued with a close packet:
//! a client that cannot keep up costs at most `limit` bytes and never slows anyone else down.
//!
//! A packet costs its bytes plus [`PACKET_OVERHEAD`]: counting payload bytes alone let a client that
//! never polls queue a million one-byte packets (a pong each) under a 1 MiB budget, about 64 MiB of
//! `Bytes` handles and allocations.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
pub use candlecast_actors::outbox::PushError;
use futures_util::task::AtomicWaker;

use super::engineio::{join_payload, Packet};

/// What one queued packet costs beyond its bytes: its `Bytes` handle in the deque, and the smallest
/// heap block its data takes (an allocator rounds every allocation up, and a shared `Bytes` also holds a
/// reference-counted header).
pub const PACKET_OVERHEAD: usize = std::mem::size_of::<Bytes>() + 32;

/// The cost of one packet in the queue's budget.
pub fn cost(packet: &Bytes) -> usize {
    packet.len() + PACKET_OVERHEAD
}

#[derive(Default)]
struct Inner {
    packets: VecDeque<Bytes>,
    /// The sum of [`cost`] over `packets`.
    cost: usize,
    closed: bool,
    /// An upgrade started: a waiting poll is owed a noop so the client can pause polling.
    release_poll: bool,
    /// A long-polling GET is running (two at once close the session).
    polling: bool,
}

impl Inner {
    fn push_back(&mut self, packet: Bytes) {
        self.cost += cost(&packet);
        self.packets.push_back(packet);
    }

    fn pop(&mut self) -> Option<Bytes> {
        let packet = self.packets.pop_front()?;
        self.cost = self.cost.saturating_sub(cost(&packet));
        Some(packet)
    }
}

/// See the module documentation.
pub struct PacketQueue {
    inner: Mutex<Inner>,
    limit: usize,
    drainer: AtomicWaker,
}

impl PacketQueue {
    pub fn new(limit_bytes: usize) -> PacketQueue {
        PacketQueue { inner: Mutex::new(Inner::default()), limit: limit_bytes, drainer: AtomicWaker::new() }
    }

    /// Queues one encoded packet. One packet always fits an empty queue: only a backlog, never one large
    /// reply, makes a client slow. On overflow what is queued is dropped for a close packet.
    pub fn push(&self, packet: Bytes) -> Result<(), PushError> {
        let result = {
            let mut q = self.lock();
            if q.closed {
                Err(PushError::Closed)
            } else if !q.packets.is_empty() && q.cost + cost(&packet) > self.limit {
                q.packets.clear();
                q.cost = 0;
                q.push_back(Packet::Close.encode());
                q.closed = true;
                Err(PushError::Overflow)
            } else {
                q.push_back(packet);
                Ok(())
            }
        };
        self.drainer.wake();
        result
    }

    /// Queues `last` (if any) as the final packet and refuses later pushes; false if already closed.
    pub fn close_with(&self, last: Option<Bytes>) -> bool {
        let done = {
            let mut q = self.lock();
            if q.closed {
                false
            } else {
                if let Some(p) = last {
                    q.push_back(p);
                }
                q.closed = true;
                true
            }
        };
        self.drainer.wake();
        done
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// What is queued now, in the units of the limit (bytes plus the per-packet overhead).
    pub fn queued_cost(&self) -> usize {
        self.lock().cost
    }

    /// Owes a noop to the running poll (or the next one), so a client upgrading can pause polling.
    pub fn release_poll(&self, owed: bool) {
        self.lock().release_poll = owed;
        self.drainer.wake();
    }

    /// Marks a long-polling GET as running; false if one already is.
    pub fn begin_poll(&self) -> bool {
        !std::mem::replace(&mut self.lock().polling, true)
    }

    pub fn end_poll(&self) {
        self.lock().polling = false;
    }

    /// For a long-polling GET: every queued packet as one payload of at most `max_bytes` (always at least
    /// one packet). `None` once closed and drained.
    pub fn poll_payload(&self, cx: &mut Context<'_>, max_bytes: usize) -> Poll<Option<Bytes>> {
        self.drainer.register(cx.waker());
        let mut q = self.lock();
        if q.packets.is_empty() {
            if std::mem::take(&mut q.release_poll) {
                return Poll::Ready(Some(Packet::Noop.encode()));
            }
            return if q.closed { Poll::Ready(None) } else { Poll::Pending };
        }
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(p) = q.packets.front() {
            if !taken.is_empty() && size + 1 + p.len() > max_bytes {
                break;
            }
            size += p.len() + usize::from(!taken.is_empty());
            taken.extend(q.pop());
        }
        q.release_poll = false;
        Poll::Ready(Some(join_payload(&taken)))
    }

    /// For a WebSocket: the next packet. `None` once closed and drained.
    pub fn poll_packet(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.drainer.register(cx.waker());
        let mut q = self.lock();
        match q.pop() {
            Some(p) => Poll::Ready(Some(p)),
            None if q.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation is one step, so a poisoned lock still guards a consistent queue.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn payload(q: &PacketQueue, max: usize) -> Poll<Option<Bytes>> {
        let waker = noop_waker();
        q.poll_payload(&mut Context::from_waker(&waker), max)
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn polls_take_everything_that_fits_joined() {
        let q = PacketQueue::new(1000);
        assert_eq!(payload(&q, 100), Poll::Pending);
        for p in ["2", "4a", "4bb"] {
            q.push(b(p)).unwrap();
        }
        assert_eq!(payload(&q, 5), Poll::Ready(Some(b("2\u{1e}4a"))));
        assert_eq!(payload(&q, 1), Poll::Ready(Some(b("4bb"))), "one packet always goes, whatever the limit");
        assert_eq!(payload(&q, 100), Poll::Pending);
    }

    #[test]
    fn an_upgrade_releases_the_poll_with_a_noop() {
        let q = PacketQueue::new(1000);
        q.release_poll(true);
        assert_eq!(payload(&q, 100), Poll::Ready(Some(b("6"))));
        assert_eq!(payload(&q, 100), Poll::Pending, "one noop only");
        q.release_poll(true);
        q.push(b("4x")).unwrap();
        assert_eq!(payload(&q, 100), Poll::Ready(Some(b("4x"))), "queued packets release the poll as well");
        assert_eq!(payload(&q, 100), Poll::Pending);
    }

    #[test]
    fn overflow_leaves_only_a_close_packet() {
        let q = PacketQueue::new(4 + PACKET_OVERHEAD);
        q.push(b("4abc")).unwrap();
        assert_eq!(q.push(b("4d")), Err(PushError::Overflow));
        assert_eq!(q.push(b("4d")), Err(PushError::Closed));
        assert_eq!(payload(&q, 100), Poll::Ready(Some(b("1"))));
        assert_eq!(payload(&q, 100), Poll::Ready(None));
    }

    #[test]
    fn close_sends_the_last_packet_then_ends() {
        let q = PacketQueue::new(100);
        q.push(b("4a")).unwrap();
        assert!(q.close_with(Some(b("1"))));
        assert!(!q.close_with(None));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(q.poll_packet(&mut cx), Poll::Ready(Some(b("4a"))));
        assert_eq!(q.poll_packet(&mut cx), Poll::Ready(Some(b("1"))));
        assert_eq!(q.poll_packet(&mut cx), Poll::Ready(None));
    }

    /// The budget bounds memory, not payload bytes: one-byte packets count their handle and allocation.
    #[test]
    fn tiny_packets_cost_their_overhead() {
        let limit = 100_000;
        let q = PacketQueue::new(limit);
        let mut taken = 0;
        while q.push(b("3")).is_ok() {
            taken += 1;
            assert!(q.queued_cost() <= limit);
        }
        assert_eq!(taken, limit / (1 + PACKET_OVERHEAD), "fewer than limit / 1 byte");
        assert_eq!(q.queued_cost(), cost(&b("1")), "only the close packet is left");
        assert_eq!(payload(&q, 100), Poll::Ready(Some(b("1"))));
        assert_eq!(q.queued_cost(), 0);
    }

    #[test]
    fn only_one_poll_at_a_time() {
        let q = PacketQueue::new(100);
        assert!(q.begin_poll());
        assert!(!q.begin_poll());
        q.end_poll();
        assert!(q.begin_poll());
    }
}
