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
/// costs no copy); only a second one allocates.
struct Staged {
    outbox: Arc<Outbox>,
    first: Bytes,
    rest: Vec<Bytes>,
}

/// See the module documentation.
#[derive(Default)]
pub(super) struct Staging {
    clients: HashMap<ClientId, Staged>,
}

impl Staging {
    /// Owes `frame` to every subscriber, after what each is owed already.
    pub(super) fn stage<'a>(
        &mut self,
        subscribers: impl IntoIterator<Item = (&'a ClientId, &'a Arc<Outbox>)>,
        frame: &SharedFrame,
    ) {
        for (client, outbox) in subscribers {
            let bytes = frame.for_client(outbox.deflate());
            match self.clients.get_mut(client) {
                Some(staged) => staged.rest.push(bytes),
                None => {
                    let staged = Staged { outbox: outbox.clone(), first: bytes, rest: Vec::new() };
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
            let frames = 1 + staged.rest.len() as u64;
            let buffer = if staged.rest.is_empty() {
                staged.first
            } else {
                let len = staged.first.len() + staged.rest.iter().map(Bytes::len).sum::<usize>();
                let mut buf = BytesMut::with_capacity(len);
                buf.extend_from_slice(&staged.first);
                for f in &staged.rest {
                    buf.extend_from_slice(f);
                }
                buf.freeze()
            };
            match staged.outbox.push(buffer) {
                Ok(()) => add(&COUNTERS.messages_sent, frames),
                Err(e) => failed.push((client, e)),
            }
        }
        failed
    }
}
