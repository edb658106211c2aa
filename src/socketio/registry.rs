//! Sessions by id, and rooms (named sets of sessions a packet can be broadcast to).
//!
//! Both are read from any HTTP worker thread: a long-polling GET or POST may reach another worker than
//! the one the session actor runs on, and a broadcast pushes straight into each member's packet queue.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use actix::Addr;
use bytes::Bytes;
use rand::TryRngCore;

use super::queue::PacketQueue;
use super::session::EioSession;

/// Which transport a session uses now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Transport {
    Polling = 0,
    WebSocket = 1,
}

/// What routes need of a session.
#[derive(Clone)]
pub struct SessionHandle {
    pub addr: Addr<EioSession>,
    pub queue: Arc<PacketQueue>,
    transport: Arc<AtomicU8>,
}

impl SessionHandle {
    pub fn new(addr: Addr<EioSession>, queue: Arc<PacketQueue>, transport: Arc<AtomicU8>) -> SessionHandle {
        SessionHandle { addr, queue, transport }
    }

    pub fn transport(&self) -> Transport {
        transport_of(&self.transport)
    }
}

/// Reads a shared transport flag.
pub fn transport_of(flag: &AtomicU8) -> Transport {
    if flag.load(Ordering::Acquire) == Transport::WebSocket as u8 {
        Transport::WebSocket
    } else {
        Transport::Polling
    }
}

/// Sessions by id.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<Arc<str>, SessionHandle>>,
}

impl Sessions {
    pub fn get(&self, sid: &str) -> Option<SessionHandle> {
        self.read().get(sid).cloned()
    }

    pub fn insert(&self, sid: Arc<str>, handle: SessionHandle) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).insert(sid, handle);
    }

    pub fn remove(&self, sid: &str) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(sid);
    }

    /// Sessions on polling and on WebSocket now.
    pub fn count_by_transport(&self) -> (usize, usize) {
        let map = self.read();
        let ws = map.values().filter(|h| h.transport() == Transport::WebSocket).count();
        (map.len() - ws, ws)
    }

    /// What every session's outbound queue holds now, in all and the largest (bytes plus per-packet cost).
    pub fn queued_cost(&self) -> (usize, usize) {
        let map = self.read();
        map.values().map(|h| h.queue.queued_cost()).fold((0, 0), |(sum, max), c| (sum + c, max.max(c)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, SessionHandle>> {
        // Entries are inserted and removed whole; a poisoned lock still holds a consistent map.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The members of one room: session id → its queue.
type Members = HashMap<Arc<str>, Arc<PacketQueue>>;

/// Rooms: name → members' queues. A session leaves all its rooms when it ends.
#[derive(Default)]
pub struct Rooms {
    rooms: RwLock<HashMap<String, Members>>,
}

impl Rooms {
    pub fn join(&self, room: &str, sid: &Arc<str>, queue: &Arc<PacketQueue>) {
        self.write().entry(room.to_owned()).or_default().insert(sid.clone(), queue.clone());
    }

    pub fn leave_all(&self, sid: &str, rooms: &HashSet<String>) {
        let mut map = self.write();
        for room in rooms {
            if let Some(members) = map.get_mut(room) {
                members.remove(sid);
                if members.is_empty() {
                    map.remove(room);
                }
            }
        }
    }

    /// Pushes one encoded packet to every member of `room`; returns how many took it. A member too slow
    /// to take it has its queue closed by the push and ends on its next heartbeat.
    pub fn broadcast(&self, room: &str, packet: &Bytes) -> usize {
        let map = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        map.get(room).map_or(0, |members| members.values().filter(|q| q.push(packet.clone()).is_ok()).count())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Members>> {
        self.rooms.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new unguessable id: 120 bits from the OS generator, as 20 URL-safe characters.
pub fn new_id() -> Arc<str> {
    use base64::Engine as _;
    let mut bytes = [0u8; 15];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): a generator seeded from the clock still gives distinct
        // ids; they are only harder to guess than to brute-force within a session's lifetime.
        use rand::{Rng, SeedableRng};
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        rand::rngs::SmallRng::seed_from_u64(nanos).fill(&mut bytes);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let ids: HashSet<Arc<str>> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 20 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
    }

    #[test]
    fn broadcasts_reach_members_only() {
        let rooms = Rooms::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let (qa, qb) = (Arc::new(PacketQueue::new(100)), Arc::new(PacketQueue::new(100)));
        rooms.join("frontend", &a, &qa);
        rooms.join("script", &b, &qb);
        assert_eq!(rooms.broadcast("frontend", &Bytes::from_static(b"42[\"x\"]")), 1);
        assert_eq!(rooms.broadcast("nobody", &Bytes::from_static(b"4")), 0);
        rooms.leave_all("a", &HashSet::from(["frontend".to_owned()]));
        assert_eq!(rooms.broadcast("frontend", &Bytes::from_static(b"4")), 0);
    }
}
