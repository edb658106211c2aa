//! A WebSocket client's outbound queue, bounded in bytes.
//!
//! The hub and the client's session push ready-made frames (serialized and framed once, shared by every
//! subscriber as `Bytes`); the connection's writer pops them. A push that would take the queue past its
//! limit drops what is queued, queues a close frame (1008) instead and refuses every later push: a client
//! that cannot keep up costs at most `limit` bytes and never slows anyone else down.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;

use crate::protocol::frame;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the client's outbound queue is over its limit; the client is being closed")]
    Overflow,
    #[error("the client is closing")]
    Closed,
}

/// A queue of ready-made frames bounded in bytes, without its lock and waker: the part the WebSocket
/// [`Outbox`] and the Socket.IO packet queue share. A push that would take it past its limit drops what
/// is queued, queues a final frame instead and refuses every later push.
#[derive(Debug, Default)]
pub struct Backlog {
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
}

impl Backlog {
    /// Queues `frame`, or on overflow replaces the queue with `last()` and closes.
    pub fn push(&mut self, frame: Bytes, limit: usize, last: impl FnOnce() -> Bytes) -> Result<(), PushError> {
        if self.closed {
            return Err(PushError::Closed);
        }
        // A frame always fits an empty queue: only a backlog, never one large reply, makes a client slow.
        if self.bytes > 0 && self.bytes + frame.len() > limit {
            self.frames.clear();
            self.bytes = 0;
            self.push_last(last());
            self.closed = true;
            return Err(PushError::Overflow);
        }
        self.push_last(frame);
        Ok(())
    }

    /// Queues `last` (if any) as the final frame and refuses later pushes; false if already closed.
    pub fn close_with(&mut self, last: Option<Bytes>) -> bool {
        if self.closed {
            return false;
        }
        if let Some(frame) = last {
            self.push_last(frame);
        }
        self.closed = true;
        true
    }

    pub fn pop(&mut self) -> Option<Bytes> {
        let frame = self.frames.pop_front()?;
        self.bytes = self.bytes.saturating_sub(frame.len());
        Some(frame)
    }

    pub fn front(&self) -> Option<&Bytes> {
        self.frames.front()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes waiting to be written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn push_last(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }
}

/// See the module documentation.
pub struct Outbox {
    queue: Mutex<Backlog>,
    limit: usize,
    writer: AtomicWaker,
}

impl Outbox {
    pub fn new(limit_bytes: usize) -> Outbox {
        Outbox { queue: Mutex::new(Backlog::default()), limit: limit_bytes, writer: AtomicWaker::new() }
    }

    /// Queues a frame for the client.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let limit = self.limit;
        let result = self.lock().push(frame, limit, || {
            frame::close(1008, &format!("slow consumer: more than {limit} bytes waiting to be sent"))
        });
        self.writer.wake();
        result
    }

    /// Queues `last` as the final frame (normally a close frame) and refuses later pushes.
    /// Returns false if the outbox was already closed.
    pub fn close_with(&self, last: Bytes) -> bool {
        let done = self.lock().close_with(Some(last));
        self.writer.wake();
        done
    }

    pub fn is_closed(&self) -> bool {
        self.lock().is_closed()
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes()
    }

    /// For the writer: the next frame, `None` once closed and drained.
    pub fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.writer.register(cx.waker());
        let mut q = self.lock();
        match q.pop() {
            Some(frame) => Poll::Ready(Some(frame)),
            None if q.is_closed() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        // A panic while holding this lock leaves a consistent queue (every mutation is one step), so a
        // poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// For tests: pops every queued frame, text frames decoded as JSON, others as `"opcode 0x.."`.
#[cfg(test)]
pub(crate) fn drain_json(outbox: &Outbox) -> Vec<serde_json::Value> {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut out = Vec::new();
    let mut entries = Vec::new();
    while let Poll::Ready(Some(entry)) = outbox.poll_pop(&mut cx) {
        entries.push(entry);
    }
    for frame in entries.iter().flat_map(frame::split) {
        // Unmasked server frames: a 2, 4 or 10-byte header.
        let start = match frame[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        match frame[0] {
            0x81 => out.push(serde_json::from_slice(&frame[start..]).expect("text frames carry JSON")),
            op => out.push(serde_json::Value::from(format!("opcode {op:#x}"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn pop(o: &Outbox) -> Poll<Option<Bytes>> {
        let waker = noop_waker();
        o.poll_pop(&mut Context::from_waker(&waker))
    }

    #[test]
    fn overflow_replaces_the_queue_with_a_close_frame() {
        let o = Outbox::new(10);
        assert_eq!(o.push(Bytes::from_static(b"12345")), Ok(()));
        assert_eq!(o.push(Bytes::from_static(b"12345")), Ok(()));
        assert_eq!(o.queued_bytes(), 10);
        assert_eq!(o.push(Bytes::from_static(b"1")), Err(PushError::Overflow));
        assert_eq!(o.push(Bytes::from_static(b"1")), Err(PushError::Closed));
        match pop(&o) {
            Poll::Ready(Some(f)) => {
                assert_eq!(f[0], 0x88, "a close frame");
                assert_eq!(u16::from_be_bytes([f[2], f[3]]), 1008);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pop(&o), Poll::Ready(None));
    }

    #[test]
    fn frames_come_out_in_order_then_end_after_close() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"a")).unwrap();
        o.push(Bytes::from_static(b"b")).unwrap();
        assert!(o.close_with(Bytes::from_static(b"z")));
        assert!(!o.close_with(Bytes::from_static(b"y")));
        let got: Vec<_> = std::iter::from_fn(|| match pop(&o) {
            Poll::Ready(Some(f)) => Some(f),
            _ => None,
        })
        .collect();
        assert_eq!(got, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b"), Bytes::from_static(b"z")]);
        assert_eq!(pop(&o), Poll::Ready(None));
    }

    #[test]
    fn one_frame_larger_than_the_limit_fits_an_empty_queue() {
        let o = Outbox::new(4);
        assert_eq!(o.push(Bytes::from_static(b"123456789")), Ok(()));
        assert_eq!(o.push(Bytes::from_static(b"1")), Err(PushError::Overflow));
    }

    #[test]
    fn empty_open_outbox_is_pending() {
        assert_eq!(pop(&Outbox::new(1)), Poll::Pending);
    }
}
