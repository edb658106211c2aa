//! Who may open a `/ws` connection, and how much one host may hold: checked before the upgrade.
//!
//! - Origin: a browser's `Origin` must be the server's own (its host equals `Host`) or listed in
//!   `[ws] allowed_origins` (`"*"`: any). Requests without one (bots, scripts, the load generator) pass:
//!   browsers always send one, so no web page can make its visitors open connections here.
//! - Per host (the peer's IP; IPv6 by /64, which one subscriber usually holds whole): connections open
//!   at once and handshakes per second (a token bucket), and indicator streams held at once.
//! - In total: connections open at once and indicator streams held at once.
//!
//! Hosts in `[ws] unlimited_hosts` (loopback by default, for load tests) skip the per-host limits, never
//! the totals. A refused request gets a JSON error naming the limit and is counted in `/metrics` as
//! `candlecast_refused_total{limit="..."}`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use candlecast_actors::refusals::refused;
use serde_json::json;
use tokio::time::Instant;

use super::rate_limits::TokenBucket;
use crate::config::WsConfig;

/// Files kept free of connections when `[ws] max_connections = 0` derives the total from the
/// process's open-file limit (the store, logs, outgoing feed and Redis connections need some).
const RESERVED_FILES: u64 = 256;
/// Idle host entries (no connection, no stream, handshake bucket full again) are forgotten when there are
/// more than this many, at most once a second: memory stays bounded by the hosts active recently.
const PRUNE_ABOVE: usize = 1024;
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Why an upgrade or an indicator stream was refused; each names its limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("origin {0:?} may not open /ws connections: only the same origin and [ws] allowed_origins may (limit ws_origin)")]
    Origin(String),
    #[error("this host already holds {0} open connections, the limit ([ws] max_connections_per_host; limit ws_connections_per_host)")]
    ConnectionsPerHost(usize),
    #[error("this host opened more than {0} connections per second ([ws] max_handshakes_per_second_per_host; limit ws_handshakes_per_host); retry later")]
    HandshakesPerHost(u32),
    #[error("the server holds {0} connections, its limit ([ws] max_connections; limit ws_connections); retry later")]
    Connections(usize),
    #[error("this connection holds {0} indicator streams, the limit ([ws] max_indicator_streams_per_client; limit indicator_streams_per_client); nothing was subscribed")]
    StreamsPerClient(usize),
    #[error("this host holds {0} indicator streams, the limit ([ws] max_indicator_streams_per_host; limit indicator_streams_per_host); nothing was subscribed")]
    StreamsPerHost(usize),
    #[error("the server holds {0} indicator streams, its limit ([ws] max_indicator_streams; limit indicator_streams); nothing was subscribed")]
    Streams(usize),
}

impl Refusal {
    /// The limit's name, as in `candlecast_refused_total{limit=...}`.
    pub fn limit(&self) -> &'static str {
        match self {
            Refusal::Origin(_) => "ws_origin",
            Refusal::ConnectionsPerHost(_) => "ws_connections_per_host",
            Refusal::HandshakesPerHost(_) => "ws_handshakes_per_host",
            Refusal::Connections(_) => "ws_connections",
            Refusal::StreamsPerClient(_) => "indicator_streams_per_client",
            Refusal::StreamsPerHost(_) => "indicator_streams_per_host",
            Refusal::Streams(_) => "indicator_streams",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::ConnectionsPerHost(_) | Refusal::HandshakesPerHost(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `{"error":"<limit>","detail":"..."}` with 403, 429 or 503.
    pub fn response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status());
        if self.status() != StatusCode::FORBIDDEN {
            resp.insert_header(("Retry-After", "1"));
        }
        resp.json(json!({ "error": self.limit(), "detail": self.to_string() }))
    }
}

struct HostState {
    connections: usize,
    streams: usize,
    handshakes: TokenBucket,
}

struct Hosts {
    map: HashMap<IpAddr, HostState>,
    last_prune: Instant,
}

/// See the module documentation. One per server.
pub struct Admission {
    allowed_origins: Vec<String>,
    unlimited: Vec<IpAddr>,
    per_host_connections: usize,
    per_host_handshakes: u32,
    per_host_streams: usize,
    per_client_streams: usize,
    max_connections: usize,
    max_streams: usize,
    connections: AtomicUsize,
    streams: AtomicUsize,
    hosts: Mutex<Hosts>,
}

impl Admission {
    /// `ceiling` is the process's open-file limit (0: unknown), the total when `max_connections` is 0.
    pub fn new(config: &WsConfig, ceiling: u64) -> Arc<Admission> {
        let derived = match ceiling {
            0 => usize::MAX,
            n => usize::try_from(n.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX),
        };
        Arc::new(Admission {
            allowed_origins: config.allowed_origins.clone(),
            unlimited: config.unlimited_hosts.iter().map(|ip| host_key(*ip)).collect(),
            per_host_connections: config.max_connections_per_host,
            // Zero would refuse every handshake of every limited host for good.
            per_host_handshakes: config.max_handshakes_per_second_per_host.max(1),
            per_host_streams: config.max_indicator_streams_per_host,
            per_client_streams: config.max_indicator_streams_per_client,
            max_connections: if config.max_connections == 0 { derived } else { config.max_connections },
            max_streams: config.max_indicator_streams,
            connections: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            hosts: Mutex::new(Hosts { map: HashMap::new(), last_prune: Instant::now() }),
        })
    }

    /// Checks an upgrade request; the permit it returns holds the connection's place until dropped.
    pub fn admit(self: &Arc<Admission>, req: &HttpRequest) -> Result<Permit, Refusal> {
        let result = self.check(req);
        if let Err(refusal) = &result {
            refused(refusal.limit());
            tracing::debug!(limit = refusal.limit(), peer = ?req.peer_addr(), "refused /ws upgrade");
        }
        result
    }

    fn check(self: &Arc<Admission>, req: &HttpRequest) -> Result<Permit, Refusal> {
        crate::http::cors::check(req, &self.allowed_origins).map_err(|o| Refusal::Origin(o.0))?;
        let host = host_key(req.peer_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip()));
        let taken = self.connections.fetch_add(1, Ordering::Relaxed);
        // From here on, dropping `permit` gives the place back (and, once `limited`, the host's).
        let mut permit = Permit { admission: self.clone(), host, limited: false, streams: 0 };
        if taken >= self.max_connections {
            return Err(Refusal::Connections(self.max_connections));
        }
        if self.unlimited.contains(&host) {
            return Ok(permit);
        }
        let now = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.prune(now);
        let rate = self.per_host_handshakes;
        let state = hosts.map.entry(host).or_insert_with(|| HostState {
            connections: 0,
            streams: 0,
            handshakes: TokenBucket::new(rate),
        });
        if state.connections >= self.per_host_connections {
            drop(hosts);
            return Err(Refusal::ConnectionsPerHost(self.per_host_connections));
        }
        if !state.handshakes.try_take(now) {
            drop(hosts);
            return Err(Refusal::HandshakesPerHost(rate));
        }
        state.connections += 1;
        drop(hosts);
        permit.limited = true;
        Ok(permit)
    }
}

impl Hosts {
    fn prune(&mut self, now: Instant) {
        if self.map.len() <= PRUNE_ABOVE || now.saturating_duration_since(self.last_prune) < PRUNE_EVERY {
            return;
        }
        self.last_prune = now;
        self.map.retain(|_, s| s.connections > 0 || s.streams > 0 || !s.handshakes.is_full(now));
    }
}

/// The per-host key: the IP, IPv4-mapped IPv6 as IPv4, other IPv6 by its /64.
pub(crate) fn host_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// A connection's place in the totals and in its host's count, and its indicator streams; all given back
/// when it is dropped (the session ends, or the upgrade failed).
pub struct Permit {
    admission: Arc<Admission>,
    host: IpAddr,
    /// Counted in its host's entry: admitted, and not from an unlimited host.
    limited: bool,
    streams: usize,
}

impl Permit {
    /// Takes a place for one more indicator stream of this connection.
    pub fn take_stream(&mut self) -> Result<(), Refusal> {
        let a = &self.admission;
        if self.streams >= a.per_client_streams {
            return self.refuse(Refusal::StreamsPerClient(a.per_client_streams));
        }
        if a.streams.fetch_add(1, Ordering::Relaxed) >= a.max_streams {
            a.streams.fetch_sub(1, Ordering::Relaxed);
            return self.refuse(Refusal::Streams(a.max_streams));
        }
        if self.limited {
            let mut hosts = a.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(state) = hosts.map.get_mut(&self.host) else {
                drop(hosts);
                a.streams.fetch_sub(1, Ordering::Relaxed);
                return self.refuse(Refusal::StreamsPerHost(a.per_host_streams));
            };
            if state.streams >= a.per_host_streams {
                drop(hosts);
                a.streams.fetch_sub(1, Ordering::Relaxed);
                return self.refuse(Refusal::StreamsPerHost(a.per_host_streams));
            }
            state.streams += 1;
        }
        self.streams += 1;
        Ok(())
    }

    fn refuse(&self, refusal: Refusal) -> Result<(), Refusal> {
        refused(refusal.limit());
        Err(refusal)
    }

    /// Gives back one indicator stream's place.
    pub fn release_stream(&mut self) {
        if self.streams == 0 {
            return;
        }
        self.streams -= 1;
        self.release_streams(1);
    }

    fn release_streams(&self, n: usize) {
        let a = &self.admission;
        let _ = a.streams.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
        if self.limited {
            let mut hosts = a.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = hosts.map.get_mut(&self.host) {
                state.streams = state.streams.saturating_sub(n);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release_streams(self.streams);
        let a = &self.admission;
        let _ = a.connections.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
        if self.limited {
            let mut hosts = a.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = hosts.map.get_mut(&self.host) {
                state.connections = state.connections.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ips_ipv6_by_its_64_and_mapped_ipv4_as_ipv4() {
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(host_key(v6), host_key(same_64));
        assert_ne!(host_key(v6), host_key(other_64));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(host_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(host_key("::1".parse().unwrap()), "::".parse::<IpAddr>().unwrap(), "loopback's /64");
    }

    #[test]
    fn every_refusal_names_its_limit_in_its_message() {
        let all = [
            Refusal::Origin("https://evil.example".into()),
            Refusal::ConnectionsPerHost(1),
            Refusal::HandshakesPerHost(1),
            Refusal::Connections(1),
            Refusal::StreamsPerClient(1),
            Refusal::StreamsPerHost(1),
            Refusal::Streams(1),
        ];
        for r in all {
            assert!(r.to_string().contains(r.limit()), "{r}");
        }
    }
}
