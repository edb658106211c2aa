//! A session's outgoing Engine.IO packets, bounded in bytes, drained by whichever transport is active.
//!
//! Anything may push (the session, a room broadcast from another thread, the hub bridge); one transport
//! drains: a long-polling GET takes everything queued as one payload, a WebSocket takes one packet per
//! frame. A push that would take the queue past its limit replaces what is queued with a close packet:
//! a client that cannot keep up costs at most `limit` bytes and never slows anyone else down.

use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use candlecast_actors::outbox::Backlog;
pub use candlecast_actors::outbox::PushError;
use futures_util::task::AtomicWaker;

use super::engineio::{join_payload, Packet};

#[derive(Default)]
struct Inner {
    packets: Backlog,
    /// An upgrade started: a waiting poll is owed a noop so the client can pause polling.
    release_poll: bool,
    /// A long-polling GET is running (two at once close the session).
    polling: bool,
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

    /// Queues one encoded packet.
    pub fn push(&self, packet: Bytes) -> Result<(), PushError> {
        let result = self.lock().packets.push(packet, self.limit, || Packet::Close.encode());
        self.drainer.wake();
        result
    }

    /// Queues `last` (if any) as the final packet and refuses later pushes; false if already closed.
    pub fn close_with(&self, last: Option<Bytes>) -> bool {
        let done = self.lock().packets.close_with(last);
        self.drainer.wake();
        done
    }

    pub fn is_closed(&self) -> bool {
        self.lock().packets.is_closed()
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
            return if q.packets.is_closed() { Poll::Ready(None) } else { Poll::Pending };
        }
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(p) = q.packets.front() {
            if !taken.is_empty() && size + 1 + p.len() > max_bytes {
                break;
            }
            size += p.len() + usize::from(!taken.is_empty());
            taken.extend(q.packets.pop());
        }
        q.release_poll = false;
        Poll::Ready(Some(join_payload(&taken)))
    }

    /// For a WebSocket: the next packet. `None` once closed and drained.
    pub fn poll_packet(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.drainer.register(cx.waker());
        let mut q = self.lock();
        match q.packets.pop() {
            Some(p) => Poll::Ready(Some(p)),
            None if q.packets.is_closed() => Poll::Ready(None),
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
        let q = PacketQueue::new(4);
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

    #[test]
    fn only_one_poll_at_a_time() {
        let q = PacketQueue::new(100);
        assert!(q.begin_poll());
        assert!(!q.begin_poll());
        q.end_poll();
        assert!(q.begin_poll());
    }
}
