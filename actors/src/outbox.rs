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

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
}

/// See the module documentation.
pub struct Outbox {
    queue: Mutex<Queue>,
    limit: usize,
    writer: AtomicWaker,
}

impl Outbox {
    pub fn new(limit_bytes: usize) -> Outbox {
        Outbox { queue: Mutex::new(Queue::default()), limit: limit_bytes, writer: AtomicWaker::new() }
    }

    /// Queues a frame for the client.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let overflow = {
            let mut q = self.lock();
            if q.closed {
                return Err(PushError::Closed);
            }
            // A frame always fits an empty queue: only a backlog, never one large reply, makes a client slow.
            if q.bytes > 0 && q.bytes + frame.len() > self.limit {
                let reason = format!("slow consumer: more than {} bytes waiting to be sent", self.limit);
                q.frames.clear();
                q.frames.push_back(frame::close(1008, &reason));
                q.bytes = 0;
                q.closed = true;
                true
            } else {
                q.bytes += frame.len();
                q.frames.push_back(frame);
                false
            }
        };
        self.writer.wake();
        if overflow {
            Err(PushError::Overflow)
        } else {
            Ok(())
        }
    }

    /// Queues `last` as the final frame (normally a close frame) and refuses later pushes.
    /// Returns false if the outbox was already closed.
    pub fn close_with(&self, last: Bytes) -> bool {
        let done = {
            let mut q = self.lock();
            if q.closed {
                false
            } else {
                q.bytes += last.len();
                q.frames.push_back(last);
                q.closed = true;
                true
            }
        };
        self.writer.wake();
        done
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// For the writer: the next frame, `None` once closed and drained.
    pub fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.writer.register(cx.waker());
        let mut q = self.lock();
        match q.frames.pop_front() {
            Some(frame) => {
                q.bytes = q.bytes.saturating_sub(frame.len());
                Poll::Ready(Some(frame))
            }
            None if q.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
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
    while let Poll::Ready(Some(frame)) = outbox.poll_pop(&mut cx) {
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
