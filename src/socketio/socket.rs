//! A client connected to namespace `/`: what event handlers reach — replies, rooms, hub subscriptions.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;

use super::bridge::HubBridge;
use super::packet;
use super::queue::PacketQueue;
use super::registry::new_id;
use super::SocketIo;
use crate::script_ingest::Access;

/// See the module documentation.
pub struct Socket {
    /// The Socket.IO id (not the Engine.IO session id, which only the transport knows).
    pub sid: Arc<str>,
    session: Arc<str>,
    pub access: Access,
    pub io: Arc<SocketIo>,
    queue: Arc<PacketQueue>,
    rooms: Mutex<HashSet<String>>,
    pub bridge: HubBridge,
}

impl Socket {
    pub fn new(io: Arc<SocketIo>, session: Arc<str>, access: Access, queue: Arc<PacketQueue>) -> Socket {
        let bridge = HubBridge::new(io.services.hub.clone(), io.settings.outbound_queue_bytes);
        Socket { sid: new_id(), session, access, io, queue, rooms: Mutex::default(), bridge }
    }

    pub fn queue(&self) -> &Arc<PacketQueue> {
        &self.queue
    }

    /// Sends an event to this client. A client too slow to take it has its queue closed, and its session
    /// notices within a second.
    pub fn emit<T: Serialize + ?Sized>(&self, name: &str, arg: &T) {
        let _ = self.queue.push(packet::event("/", name, arg));
    }

    /// Acknowledges event `id`.
    pub fn ack<T: Serialize + ?Sized>(&self, id: u64, arg: &T) {
        let _ = self.queue.push(packet::ack("/", id, arg));
    }

    /// Answers a refused event: in its acknowledgement when it asked for one, else as an `error` event.
    /// `{"ok":false,"event":..,"error":<code>,"message":..}`.
    pub fn refuse(&self, ack: Option<u64>, event: &str, code: &str, message: &str) {
        let reply = json!({ "ok": false, "event": event, "error": code, "message": message });
        match ack {
            Some(id) => self.ack(id, &reply),
            None => self.emit("error", &reply),
        }
    }

    pub fn join(&self, room: &str) {
        self.io.rooms.join(room, &self.session, &self.queue);
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).insert(room.to_owned());
    }

    /// Leaves every room and the hub (the namespace disconnected or the session ended).
    pub fn disconnect(&self) {
        let rooms = std::mem::take(&mut *self.rooms.lock().unwrap_or_else(|e| e.into_inner()));
        self.io.rooms.leave_all(&self.session, &rooms);
        self.bridge.stop();
    }
}
