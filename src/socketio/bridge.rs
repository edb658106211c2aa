//! Live bar updates for Socket.IO clients: a session registers with the hub like a `/ws` client, and a
//! task turns each frame the hub queues for it into a Socket.IO event named after the message's
//! `type` — `42["price_update",{...}]`, `42["subscribed",{...}]` — by concatenating bytes around the
//! JSON the hub serialized once for every subscriber.

use std::collections::HashSet;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::Addr;
use bytes::Bytes;
use candlecast_actors::hub::{Connect, Disconnect, Hub, Subscribe, Unsubscribe};
use candlecast_actors::messages::{ClientId, Topic};
use candlecast_actors::outbox::Outbox;
use candlecast_actors::protocol::frame;

use super::packet;
use super::queue::PacketQueue;

/// Hub client ids of Socket.IO sessions have the top bit set, so they never meet the `/ws` sessions'
/// ids, which count up from 1.
const CLIENT_ID_BIT: u64 = 1 << 63;
static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// One session's registration with the hub, made on its first subscription.
pub struct HubBridge {
    client: ClientId,
    hub: Addr<Hub>,
    outbox: Arc<Outbox>,
    started: AtomicBool,
    topics: Mutex<HashSet<Topic>>,
}

impl HubBridge {
    pub fn new(hub: Addr<Hub>, queue_bytes: usize) -> HubBridge {
        HubBridge {
            client: CLIENT_ID_BIT | NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
            hub,
            outbox: Arc::new(Outbox::new(queue_bytes)),
            started: AtomicBool::new(false),
            topics: Mutex::default(),
        }
    }

    /// Topics held now.
    pub fn held(&self) -> usize {
        self.lock().len()
    }

    /// Subscribes to `topics`; the hub queues `ack` first, then each topic's newest bar.
    pub fn subscribe(&self, queue: &Arc<PacketQueue>, topics: Vec<Topic>, ack: Bytes) {
        if !self.started.swap(true, Ordering::AcqRel) {
            self.hub.do_send(Connect { client: self.client, outbox: self.outbox.clone() });
            actix_web::rt::spawn(forward(self.outbox.clone(), queue.clone()));
        }
        self.lock().extend(topics.iter().cloned());
        self.hub.do_send(Subscribe { client: self.client, topics, ack });
    }

    pub fn unsubscribe(&self, topics: Vec<Topic>, ack: Bytes) {
        let mut held = self.lock();
        for t in &topics {
            held.remove(t);
        }
        if self.started.load(Ordering::Acquire) {
            self.hub.do_send(Unsubscribe { client: self.client, topics, ack });
        }
    }

    /// Leaves the hub; the forwarding task ends.
    pub fn stop(&self) {
        if self.started.load(Ordering::Acquire) {
            self.hub.do_send(Disconnect { client: self.client });
            self.outbox.close_with(frame::close(1000, ""));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Topic>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Moves the hub's frames into the session's queue as Socket.IO events until either side closes.
async fn forward(outbox: Arc<Outbox>, queue: Arc<PacketQueue>) {
    // An entry may hold several frames: the hub writes everything due to a client in one flush at once.
    while let Some(entry) = poll_fn(|cx| outbox.poll_pop(cx)).await {
        for ws_frame in frame::split(&entry) {
            let Some(json) = text_payload(&ws_frame) else {
                // A close frame: the session left (1000), or the hub dropped it as too slow (1008).
                if ws_frame.get(2..4) == Some(&1008u16.to_be_bytes()[..]) {
                    queue.close_with(Some(super::engineio::Packet::Close.encode()));
                }
                return;
            };
            if queue.push(packet::event_raw("/", event_name(json), json)).is_err() {
                return;
            }
        }
    }
}

/// The payload of an unmasked server text frame (RFC 6455 §5.2); `None` for other frames.
fn text_payload(f: &[u8]) -> Option<&[u8]> {
    if f.first() != Some(&0x81) {
        return None;
    }
    let start = match f.get(1)? & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    f.get(start..)
}

/// The `type` of one of our JSON messages, which the hub always writes first: `{"type":"price_update",...`.
fn event_name(json: &[u8]) -> &str {
    const PREFIX: &[u8] = b"{\"type\":\"";
    json.strip_prefix(PREFIX)
        .and_then(|rest| rest.iter().position(|b| *b == b'"').map(|end| &rest[..end]))
        .filter(|name| !name.is_empty() && name.iter().all(|b| b.is_ascii_lowercase() || *b == b'_'))
        .and_then(|name| std::str::from_utf8(name).ok())
        .unwrap_or("message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_frames_become_named_events() {
        for len in [10usize, 300, 70_000] {
            let json = format!("{{\"type\":\"price_update\",\"pad\":\"{}\"}}", "x".repeat(len));
            let f = frame::text(json.as_bytes());
            let payload = text_payload(&f).unwrap();
            assert_eq!(payload, json.as_bytes());
            assert_eq!(event_name(payload), "price_update");
        }
        assert_eq!(text_payload(&frame::close(1000, "")), None);
        assert_eq!(event_name(br#"{"data":1}"#), "message");
        assert_eq!(event_name(br#"{"type":"bad\"name"}"#), "message");
    }
}
