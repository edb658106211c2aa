//! The per-host budget of open HTTP connections (`[http] max_connections_per_host`).
//!
//! /ws has its own budgets, but one host could still hold tens of thousands of plain HTTP connections
//! (keep-alive, or request bodies trickled forever), each a file descriptor and a dispatcher. Each accepted
//! connection is checked as it is accepted, before actix's HTTP dispatcher exists (src/http/server.rs): an
//! admitted one carries a [`ConnectionPermit`] that lives as long as the connection (and with it the
//! host's count); a refused one never gets a dispatcher: it is answered a short `HTTP/1.1 429` naming
//! `http_connections_per_host` on the bare socket and closed, costing an accept and a write.
//!
//! A host that keeps being refused gets its refusals held instead (see [`super::tarpit`]): past its free
//! refusals over 10 s (`[http] refusals_free_per_10s`), a refused connection is answered only after
//! `[http] connection_refusal_delay_ms`, or closed at once when the held budgets are full.
//!
//! Hosts in `[http] unlimited_hosts` (loopback by default: a load test's 19,000 /ws clients) are not
//! counted, refused nor held. Every refusal, answered at once, held or closed, is counted as
//! `candlecast_refused_total{limit="http_connections_per_host"}`.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix_web::rt::net::TcpStream;
use candlecast_actors::refusals::refused;

use super::refusal_delay::RefusalThrottle;
use super::tarpit::{answer_late, write_refusal, HeldRefusal, HeldRefusals};
use crate::config::HttpConfig;
use crate::ws::admission::host_key;

pub const LIMIT: &str = "http_connections_per_host";

/// See the module documentation. One per server.
pub struct Connections {
    unlimited: Vec<IpAddr>,
    per_host: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Refused connections per host over 10 s: past the free ones, a refusal is held.
    throttle: RefusalThrottle,
    pub held: Arc<HeldRefusals>,
}

/// A connection's place in its host's count; given back when actix drops the connection's data.
pub struct ConnectionPermit {
    connections: Arc<Connections>,
    host: IpAddr,
}

impl Connections {
    pub fn new(config: &HttpConfig) -> Arc<Connections> {
        Arc::new(Connections {
            unlimited: config.unlimited_hosts.iter().map(|ip| host_key(*ip)).collect(),
            per_host: config.max_connections_per_host,
            open: Mutex::new(HashMap::new()),
            throttle: RefusalThrottle::new(
                config.refusals_free_per_10s,
                std::time::Duration::from_millis(config.connection_refusal_delay_ms),
                &config.unlimited_hosts,
            ),
            held: HeldRefusals::new(config),
        })
    }

    /// Takes a place for a connection from `peer` (`None`: an unlimited host, not counted); the limit when
    /// its host holds that many already.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Option<ConnectionPermit>, usize> {
        let host = host_key(peer);
        if self.unlimited.contains(&host) {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(host).or_insert(0);
        if *n >= self.per_host {
            return Err(self.per_host);
        }
        *n += 1;
        Ok(Some(ConnectionPermit { connections: self.clone(), host }))
    }

    /// Admits the connection just accepted from `peer`, or refuses it: a 429 at once, held (the 429
    /// later, see [`super::tarpit`]) or, past the held budgets, closed at once without an answer.
    pub fn admit_stream(self: &Arc<Self>, peer: SocketAddr) -> Admission {
        let limit = match self.admit(peer.ip()) {
            Ok(permit) => return Admission::Admitted(permit),
            Err(limit) => limit,
        };
        refused(LIMIT);
        let now = Instant::now();
        if self.throttle.refused(now, Some(peer.ip())).is_zero() {
            tracing::debug!(%peer, "refused HTTP connection: host over its connection limit");
            return Admission::Refused(Refusal::AtOnce(limit));
        }
        match self.held.hold(host_key(peer.ip().to_canonical()), now, limit) {
            Some(held) => Admission::Refused(Refusal::Held(held)),
            None => Admission::Refused(Refusal::Closed),
        }
    }
}

/// What [`Connections::admit_stream`] decided.
pub enum Admission {
    /// Served; the permit (none for an unlimited host) must live as long as the connection.
    Admitted(Option<ConnectionPermit>),
    /// Not served: [`Refusal::answer`] it instead of handing it to the HTTP dispatcher.
    Refused(Refusal),
}

/// How a refused connection is answered.
pub enum Refusal {
    /// The 429 now (the host's free refusals).
    AtOnce(usize),
    /// The 429 later.
    Held(HeldRefusal),
    /// Nothing: the held budgets are full. The cheapest end, and the peer learns nothing it did not know.
    Closed,
}

impl Refusal {
    /// Answers and closes the connection.
    pub async fn answer(self, stream: TcpStream) {
        match self {
            Refusal::AtOnce(limit) => write_refusal(&stream, limit),
            Refusal::Held(held) => answer_late(stream, held).await,
            Refusal::Closed => {
                let _ = socket2::SockRef::from(&stream).shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_counted_until_their_permits_drop_and_unlimited_hosts_are_not_counted() {
        let config = HttpConfig {
            client_request_timeout_ms: 5000,
            first_byte_timeout_ms: 10_000,
            max_connections_per_host: 2,
            unlimited_hosts: vec!["127.0.0.1".parse().unwrap()],
            max_history_reads: 1,
            max_history_reads_per_host: 1,
            history_bars_per_second_per_host: 1,
            history_burst_bars_per_host: 1,
            refusals_free_per_10s: 1,
            refusal_delay_ms: 0,
            connection_refusal_delay_ms: 0,
            max_held_refusals_per_host: 1,
            max_held_refusals: 1,
            connection_refusal_max_delay_ms: 0,
        };
        let c = Connections::new(&config);
        let host: IpAddr = "192.0.2.1".parse().unwrap();
        let a = c.admit(host).unwrap();
        let _b = c.admit(host).unwrap();
        assert_eq!(c.admit(host).err(), Some(2));
        assert!(c.admit("192.0.2.2".parse().unwrap()).is_ok(), "another host has its own count");
        drop(a);
        assert!(c.admit(host).is_ok());
        for _ in 0..10 {
            assert!(matches!(c.admit("127.0.0.1".parse().unwrap()), Ok(None)));
        }
    }
}
