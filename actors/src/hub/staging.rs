//! Frames the hub owes each client during one handler or flush, written to its outbox once at the end.
//!
//! A dashboard holds several topics whose updates fall due in the same flush (they share their client's
//! send slot). Pushed one by one, each frame was one outbox entry, one wake of the writer and one socket
//! write; staged, they leave as one buffer of consecutive WebSocket frames: one entry, one wake, one
//! write. The frames stay separate text frames on the wire, in the order they were staged.
//!
//! A client that negotiated permessage-deflate is staged the frame's compressed form, made once per frame
//! for all of them ([`SharedFrame`]).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::deflate::SharedFrame;
use crate::messages::ClientId;
use crate::outbox::{Outbox, PushError};
use crate::telemetry::{add, COUNTERS};

/// One client's frames of this flush. The first is kept as the shared `Bytes` (a client with one frame
/// costs no copy); a second one starts a buffer of the client's own that every later one is copied into
/// (one allocation, no per-frame `Bytes` clone or list).
struct Staged {
    outbox: Arc<Outbox>,
    first: Bytes,
    rest: Option<BytesMut>,
    frames: u64,
}

/// See the module documentation.
#[derive(Default)]
pub(super) struct Staging {
    /// Looked up once per subscriber per staged frame: foldhash, seeded per process, as the hub's topic
    /// map (client ids are the server's own counter, not chosen by clients).
    clients: HashMap<ClientId, Staged, foldhash::fast::RandomState>,
}

impl Staging {
    /// Owes `frame` to every subscriber, after what each is owed already.
    pub(super) fn stage<'a>(
        &mut self,
        subscribers: impl IntoIterator<Item = (&'a ClientId, &'a Arc<Outbox>)>,
        frame: &SharedFrame,
    ) {
        for (client, outbox) in subscribers {
            let bytes = frame.bytes_for(outbox.deflate());
            match self.clients.get_mut(client) {
                Some(staged) => {
                    staged.frames += 1;
                    let first = &staged.first;
                    // Room for six more of the same size: a dashboard's topics fall due together, and a
                    // buffer that must grow is copied (measured: `realloc` in the hub's profile).
                    let buf = staged.rest.get_or_insert_with(|| {
                        let mut buf = BytesMut::with_capacity(4 * (first.len() + bytes.len()));
                        buf.extend_from_slice(first);
                        buf
                    });
                    buf.extend_from_slice(bytes);
                }
                None => {
                    let staged = Staged { outbox: outbox.clone(), first: bytes.clone(), rest: None, frames: 1 };
                    self.clients.insert(*client, staged);
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Queues each client's frames as one outbox entry; returns the clients whose outbox refused it.
    pub(super) fn commit(&mut self) -> Vec<(ClientId, PushError)> {
        let mut failed = Vec::new();
        for (client, staged) in self.clients.drain() {
            let buffer = match staged.rest {
                Some(buf) => buf.freeze(),
                None => staged.first,
            };
            match staged.outbox.push(buffer) {
                Ok(()) => add(&COUNTERS.messages_sent, staged.frames),
                Err(e) => failed.push((client, e)),
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::drain_json;
    use std::task::{Context, Poll};

    /// A client owed three frames gets them as one entry, in order; a client owed one gets that frame.
    #[test]
    fn each_client_gets_its_frames_as_one_entry_in_order() {
        let (a, b) = (Arc::new(Outbox::new(1 << 20)), Arc::new(Outbox::new(1 << 20)));
        let both = [(1, a.clone()), (2, b.clone())];
        let only_a = [(1, a.clone())];
        let frame = |n: u32| SharedFrame::new(crate::protocol::frame::text(format!(r#"{{"n":{n}}}"#).as_bytes()));
        let mut staging = Staging::default();
        staging.stage(both.iter().map(|(c, o)| (c, o)), &frame(1));
        staging.stage(only_a.iter().map(|(c, o)| (c, o)), &frame(2));
        staging.stage(only_a.iter().map(|(c, o)| (c, o)), &frame(3));
        assert!(staging.commit().is_empty());
        assert!(staging.is_empty());
        let n = |v: Vec<serde_json::Value>| v.iter().map(|m| m["n"].as_u64().unwrap_or(0)).collect::<Vec<_>>();
        let waker = futures_util::task::noop_waker();
        match a.poll_pop(&mut Context::from_waker(&waker)) {
            Poll::Ready(Some(entry)) => {
                assert_eq!(crate::protocol::frame::count(&entry), 3, "one entry holding all three");
                a.push(entry).expect("room to put it back");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(n(drain_json(&a)), [1, 2, 3]);
        assert_eq!(n(drain_json(&b)), [1]);
    }
}
