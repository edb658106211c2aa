//! A WebSocket client's outbound queue, bounded in bytes.
//!
//! The hub and the client's session push ready-made frames (serialized and framed once, shared by every
//! subscriber as `Bytes`); the connection's writer pops them. A push that would take the queue past its
//! limit drops what is queued, queues a close frame ([`CloseReason::SlowConsumer`]) instead and refuses every later push: a client
//! that cannot keep up costs at most `limit` bytes and never slows anyone else down.

use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;

use crate::protocol::frame;
use crate::refusals::refused;
use crate::telemetry::add;

/// The one place a client closed for reading too slowly (its outbound queue overflowed) is counted and
/// logged, whoever noticed it (`by`: the hub, a `/ws` session, a Socket.IO session): in `counter` (the
/// `/ws` or the Socket.IO one), in the refusal family as `outbound_queue` (the queue's budget refused it),
/// and in the log.
pub fn slow_client_closed(counter: &AtomicU64, by: &'static str, client: &dyn Display) {
    add(counter, 1);
    refused("outbound_queue");
    tracing::warn!(by, %client, "closing slow client: outbound queue overflowed");
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the client's outbound queue is over its limit; the client is being closed")]
    Overflow,
    #[error("the client is closing")]
    Closed,
}

/// Why the server ends a `/ws` connection: each reason knows its close code, and its `Display` is the close
/// frame's reason text (Socket.IO's sessions have their own, `socketio::CloseReason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The session ended without a fault (the client closed, or the server is stopping): 1000, no text.
    #[error("")]
    Normal,
    /// Nothing heard from the client, not even a pong, within its timeout: 1001 (going away).
    #[error("no message or pong within the client timeout")]
    Silent,
    /// The client kept sending bad or rate-limited messages: 1008 (policy violation).
    #[error("too many invalid or rate-limited messages")]
    TooManyErrors,
    /// The client read too slowly: its outbound queue went over `limit` bytes. 1008 (policy violation).
    #[error("slow consumer: more than {limit} bytes waiting to be sent")]
    SlowConsumer { limit: usize },
    /// A frame over the hard size limit of `max` bytes: 1009 (message too big).
    #[error("frame over {max} bytes")]
    FrameTooLarge { max: usize },
    /// A frame that breaks the WebSocket protocol: 1002 (protocol error).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A compressed message (permessage-deflate) that inflates past `max` bytes: 1009 (message too big).
    #[error("compressed message inflates past the {max}-byte limit")]
    InflatedTooLarge { max: usize },
    /// A compressed message that is not valid deflate data: 1007 (invalid frame payload data).
    #[error("invalid compressed message: {0}")]
    BadCompression(String),
}

impl CloseReason {
    /// The close code sent for it (RFC 6455, 7.4.1).
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Normal => 1000,
            CloseReason::Silent => 1001,
            CloseReason::Protocol(_) => 1002,
            CloseReason::BadCompression(_) => 1007,
            CloseReason::TooManyErrors | CloseReason::SlowConsumer { .. } => 1008,
            CloseReason::FrameTooLarge { .. } | CloseReason::InflatedTooLarge { .. } => 1009,
        }
    }

    /// The close frame that reports it.
    pub fn frame(&self) -> Bytes {
        frame::close(self.code(), &self.to_string())
    }
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
    /// The client negotiated permessage-deflate: whoever queues a data frame queues its compressed form
    /// (`deflate::SharedFrame`, `deflate::compress_frame`).
    deflate: bool,
}

impl Outbox {
    pub fn new(limit_bytes: usize) -> Outbox {
        Outbox { queue: Mutex::new(Backlog::default()), limit: limit_bytes, writer: AtomicWaker::new(), deflate: false }
    }

    /// The outbox of a client that negotiated permessage-deflate (`true`).
    pub fn with_deflate(mut self, deflate: bool) -> Outbox {
        self.deflate = deflate;
        self
    }

    /// Whether data frames queued here must be compressed.
    pub fn deflate(&self) -> bool {
        self.deflate
    }

    /// Queues a frame for the client.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let limit = self.limit;
        let result = self.lock().push(frame, limit, || CloseReason::SlowConsumer { limit }.frame());
        self.writer.wake();
        result
    }

    /// Queues the close frame of `reason` as the final frame and refuses later pushes; false if already
    /// closed (the first reason is the one the client sees).
    pub fn close(&self, reason: &CloseReason) -> bool {
        self.close_with(reason.frame())
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
                assert_eq!(&f[4..], b"slow consumer: more than 10 bytes waiting to be sent");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pop(&o), Poll::Ready(None));
    }

    /// The codes and texts clients have always been sent (docs/protocol.md), frame by frame.
    #[test]
    fn close_reasons_keep_their_codes_and_texts() {
        let cases = [
            (CloseReason::Normal, 1000, ""),
            (CloseReason::Silent, 1001, "no message or pong within the client timeout"),
            (CloseReason::Protocol("bad opcode".into()), 1002, "protocol error: bad opcode"),
            (CloseReason::TooManyErrors, 1008, "too many invalid or rate-limited messages"),
            (CloseReason::SlowConsumer { limit: 7 }, 1008, "slow consumer: more than 7 bytes waiting to be sent"),
            (CloseReason::FrameTooLarge { max: 64 }, 1009, "frame over 64 bytes"),
            (CloseReason::InflatedTooLarge { max: 64 }, 1009, "compressed message inflates past the 64-byte limit"),
            (CloseReason::BadCompression("bad".into()), 1007, "invalid compressed message: bad"),
        ];
        for (reason, code, text) in cases {
            let f = reason.frame();
            assert_eq!(f[0], 0x88, "{reason:?}: a close frame");
            assert_eq!((u16::from_be_bytes([f[2], f[3]]), &f[4..]), (code, text.as_bytes()), "{reason:?}");
        }
    }

    #[test]
    fn the_first_close_reason_wins() {
        let o = Outbox::new(100);
        assert!(o.close(&CloseReason::Silent));
        assert!(!o.close(&CloseReason::Normal));
        match pop(&o) {
            Poll::Ready(Some(f)) => assert_eq!(u16::from_be_bytes([f[2], f[3]]), 1001),
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
    fn a_slow_client_is_counted_in_its_counter_and_as_a_refusal() {
        let counter = AtomicU64::new(0);
        let before = crate::refusals::count("outbound_queue");
        slow_client_closed(&counter, "test", &7);
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(crate::refusals::count("outbound_queue") > before);
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
