//! Budgets of Engine.IO sessions per client host (peer IP) and in total: sessions open at once per host,
//! handshakes per second per host, sessions open at once on the server. A handshake over a budget is
//! refused before a session exists, so a refused client costs nothing but the refusal.
//!
//! A host whose session the server closed for the client's own fault (a protocol violation, an event flood,
//! an oversized payload) waits before its next session, twice as long at each further fault within a minute
//! (`[scripts] fault_backoff_ms`, up to [`MAX_FAULT_BACKOFF`]). Without it a flooding client paid one
//! handshake per closed session and came straight back: each session is a new megabyte POST read and
//! decoded up to the point of the close.
//!
//! A host is an IPv4 address, or an IPv6 /64. Hosts in `[scripts] host_limits_exempt` (loopback by default, so load tests from 127.0.0.1 can open
//! thousands of sessions) skip the per-host budgets; the total cap holds for everyone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ScriptsConfig;
use crate::ws::rate_limits::TokenBucket;

/// Entries kept for hosts without sessions before the map is swept of idle ones.
const SWEEP_ABOVE: usize = 4096;

/// The longest a host waits after repeated faults.
pub const MAX_FAULT_BACKOFF: Duration = Duration::from_secs(60);

/// Faults further apart than this start the backoff again from `fault_backoff_ms`.
const FAULTS_FORGOTTEN_AFTER: Duration = Duration::from_secs(60);

/// Which budget refused a handshake; its name is the config key (and the `limit` label in /metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("this host has {0} Socket.IO sessions open, the most allowed ([scripts] max_sessions_per_host)")]
    SessionsPerHost(usize),
    #[error("this host opened more than {0} Socket.IO sessions in the last second ([scripts] max_handshakes_per_second_per_host); retry shortly")]
    HandshakesPerSecond(u32),
    #[error("the server has {0} Socket.IO sessions open, the most allowed ([scripts] max_sessions); retry later")]
    Sessions(usize),
    #[error("this host's last session was closed for a protocol violation, a flood or an oversized payload; a new one is refused for {0} ms more ([scripts] fault_backoff_ms, doubled at each fault within a minute)")]
    FaultBackoff(u64),
}

impl LimitError {
    /// The config key naming the limit.
    pub fn limit(&self) -> &'static str {
        match self {
            LimitError::SessionsPerHost(_) => "max_sessions_per_host",
            LimitError::HandshakesPerSecond(_) => "max_handshakes_per_second_per_host",
            LimitError::Sessions(_) => "max_sessions",
            LimitError::FaultBackoff(_) => "fault_backoff_ms",
        }
    }
}

struct Host {
    open: usize,
    handshakes: TokenBucket,
    /// The last handshake; a bucket refills completely within a second of it.
    last: Instant,
    /// Faults in a row (each within a minute of the one before), the last one, and until when a new session
    /// is refused.
    faults: u32,
    last_fault: Option<Instant>,
    barred_until: Option<Instant>,
}

impl Host {
    fn new(rate: u32, now: Instant) -> Host {
        Host { open: 0, handshakes: TokenBucket::new(rate), last: now, faults: 0, last_fault: None, barred_until: None }
    }
}

#[derive(Default)]
struct Counts {
    hosts: HashMap<IpAddr, Host>,
    total: usize,
}

/// See the module documentation.
pub struct HostLimits {
    per_host: usize,
    handshakes_per_second: u32,
    total: usize,
    fault_backoff: Duration,
    exempt: Vec<IpAddr>,
    counts: Mutex<Counts>,
}

impl HostLimits {
    pub fn new(settings: &ScriptsConfig) -> Arc<HostLimits> {
        Arc::new(HostLimits {
            per_host: settings.max_sessions_per_host,
            handshakes_per_second: settings.max_handshakes_per_second_per_host,
            total: settings.max_sessions,
            fault_backoff: Duration::from_millis(settings.fault_backoff_ms),
            exempt: settings.host_limits_exempt.iter().filter_map(|h| h.trim().parse().ok()).collect(),
            counts: Mutex::default(),
        })
    }

    /// Takes a session slot for `peer` (None: unknown address, per-host budgets skipped), or says which
    /// budget is spent. The slot is given back when the returned guard drops.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<SessionSlot, LimitError> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.total {
            return Err(LimitError::Sessions(self.total));
        }
        let host = peer.filter(|ip| !self.exempt.contains(&ip.to_canonical())).map(host_key);
        if let Some(ip) = host {
            if c.hosts.len() > SWEEP_ABOVE {
                sweep(&mut c.hosts);
            }
            let (rate, now) = (self.handshakes_per_second, Instant::now());
            let entry = c.hosts.entry(ip).or_insert_with(|| Host::new(rate, now));
            if let Some(left) = entry.barred_until.and_then(|until| until.checked_duration_since(now)) {
                return Err(LimitError::FaultBackoff(left.as_millis().max(1) as u64));
            }
            if entry.open >= self.per_host {
                return Err(LimitError::SessionsPerHost(self.per_host));
            }
            entry.last = now;
            if !entry.handshakes.try_take(now) {
                return Err(LimitError::HandshakesPerSecond(rate));
            }
            entry.open += 1;
        }
        c.total += 1;
        Ok(SessionSlot { limits: self.clone(), host })
    }

    /// A session of `host` was closed for its client's fault: the host's next session waits.
    fn fault(&self, host: IpAddr) {
        if self.fault_backoff.is_zero() {
            return;
        }
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (rate, now) = (self.handshakes_per_second, Instant::now());
        let entry = c.hosts.entry(host).or_insert_with(|| Host::new(rate, now));
        let recent = entry.last_fault.is_some_and(|t| now.saturating_duration_since(t) < FAULTS_FORGOTTEN_AFTER);
        entry.faults = if recent { entry.faults.saturating_add(1) } else { 1 };
        entry.last_fault = Some(now);
        let wait = self.fault_backoff.saturating_mul(1 << (entry.faults - 1).min(16)).min(MAX_FAULT_BACKOFF);
        entry.barred_until = Some(now + wait);
    }

    fn release(&self, host: Option<IpAddr>) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(entry) = host.and_then(|ip| c.hosts.get_mut(&ip)) {
            entry.open = entry.open.saturating_sub(1);
        }
    }
}

/// The host an address counts as: IPv4 (also when mapped into IPv6) as is; IPv6 by its /64, the block
/// one subscriber usually gets whole (one address each would make the budget per IPv6 client moot).
fn host_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Drops hosts without sessions whose handshake bucket has refilled (they would start full anyway) and
/// whose faults are forgotten.
fn sweep(hosts: &mut HashMap<IpAddr, Host>) {
    let now = Instant::now();
    hosts.retain(|_, h| {
        h.open > 0
            || now.saturating_duration_since(h.last) < Duration::from_secs(1)
            || h.last_fault.is_some_and(|t| now.saturating_duration_since(t) < FAULTS_FORGOTTEN_AFTER)
    });
}

/// One session's place in the budgets, given back on drop (when the session actor ends).
pub struct SessionSlot {
    limits: Arc<HostLimits>,
    host: Option<IpAddr>,
}

impl SessionSlot {
    /// The session is being closed for its client's fault: its host waits before the next one (exempt
    /// hosts do not).
    pub fn fault(&self) {
        if let Some(host) = self.host {
            self.limits.fault(host);
        }
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.limits.release(self.host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_host: usize, rate: u32, total: usize, exempt: &[&str]) -> Arc<HostLimits> {
        Arc::new(HostLimits {
            per_host,
            handshakes_per_second: rate,
            total,
            fault_backoff: Duration::from_millis(1000),
            exempt: exempt.iter().map(|h| h.parse().unwrap()).collect(),
            counts: Mutex::default(),
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn per_host_sessions_are_capped_and_given_back() {
        let l = limits(2, 100, 100, &[]);
        let a = l.admit(ip("10.0.0.1")).unwrap();
        let _b = l.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::SessionsPerHost(2)));
        assert!(l.admit(ip("10.0.0.2")).is_ok(), "another host is not affected");
        drop(a);
        assert!(l.admit(ip("10.0.0.1")).is_ok(), "a closed session frees its slot");
    }

    #[test]
    fn handshake_rate_and_total_cap() {
        let l = limits(100, 2, 3, &["127.0.0.1"]);
        let _s: Vec<SessionSlot> = (0..2).map(|_| l.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::HandshakesPerSecond(2)));
        let _t = l.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("127.0.0.1")).err(), Some(LimitError::Sessions(3)), "exempt hosts meet the total cap");
    }

    #[test]
    fn ipv6_hosts_count_by_their_64_block() {
        let l = limits(1, 100, 100, &[]);
        let _a = l.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(l.admit(ip("2001:db8:1:2:ffff::9")).is_err(), "same /64");
        assert!(l.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = l.admit(ip("10.0.0.1")).unwrap();
        assert!(l.admit(ip("::ffff:10.0.0.1")).is_err(), "a mapped IPv4 address is that IPv4 host");
    }

    #[test]
    fn exempt_hosts_skip_per_host_budgets() {
        let l = limits(1, 1, 100, &["127.0.0.1", "::1"]);
        let _s: Vec<SessionSlot> = (0..10).map(|_| l.admit(ip("127.0.0.1")).unwrap()).collect();
        let _v6: Vec<SessionSlot> = (0..10).map(|_| l.admit(ip("::ffff:127.0.0.1")).unwrap()).collect();
        assert!(l.counts.lock().unwrap().hosts.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_bars_the_host_for_a_backoff_that_doubles_and_is_forgotten_after_a_minute() {
        let l = limits(100, 100, 100, &["127.0.0.1"]);
        let slot = l.admit(ip("10.0.0.1")).unwrap();
        slot.fault();
        drop(slot);
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::FaultBackoff(1000)));
        assert!(l.admit(ip("10.0.0.2")).is_ok(), "another host is not affected");
        tokio::time::advance(Duration::from_millis(1001)).await;
        let slot = l.admit(ip("10.0.0.1")).expect("admitted once the backoff is over");
        slot.fault();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::FaultBackoff(2000)), "the second fault doubles it");
        tokio::time::advance(Duration::from_millis(2001)).await;
        l.admit(ip("10.0.0.1")).expect("admitted").fault();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::FaultBackoff(4000)));
        tokio::time::advance(FAULTS_FORGOTTEN_AFTER + Duration::from_secs(1)).await;
        l.admit(ip("10.0.0.1")).expect("admitted").fault();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::FaultBackoff(1000)), "a quiet minute resets it");
    }

    #[tokio::test(start_paused = true)]
    async fn faults_of_exempt_hosts_bar_nothing_and_the_backoff_is_capped() {
        let l = limits(100, 1000, 1000, &["127.0.0.1"]);
        l.admit(ip("127.0.0.1")).unwrap().fault();
        assert!(l.admit(ip("127.0.0.1")).is_ok());
        for _ in 0..40 {
            l.fault(ip("10.0.0.1").unwrap());
        }
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(LimitError::FaultBackoff(MAX_FAULT_BACKOFF.as_millis() as u64)));
    }
}
