//! Refused keys, logged without letting anyone flood the log: at most one warn line per peer and key kind
//! every `[admin] refused_log_every_secs`; the others go to debug. Every refusal is counted in
//! `candlecast_refused_total{limit="key_<kind>"}` and every line held back in
//! `candlecast_refused_key_logs_suppressed_total`. Keys are never logged, only the peer, the kind and why.
//!
//! Any key check calls [`refused_key`]: `auth_log::refused_key(KeyKind::Script, peer_ip, "wrong key", path)`.
//!
//! Guessing is slowed down too (`http::refusal_delay`): a host past `[admin] refused_keys_free_per_10s`
//! refused keys in 10 s gets each further 401 only after `[admin] refused_key_delay_ms`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Peers remembered at once; beyond it (a spoofed-source flood) only the quiet ones are forgotten, and
/// new peers are not logged at warn until some are.
pub(crate) const MAX_PEERS: usize = 4096;

/// Which kind of key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Admin,
    Script,
    Trader,
}

impl KeyKind {
    /// The `limit` label of `candlecast_refused_total`.
    pub fn limit(self) -> &'static str {
        match self {
            KeyKind::Admin => "key_admin",
            KeyKind::Script => "key_script",
            KeyKind::Trader => "key_trader",
        }
    }
}

/// The rate limiter: when each (peer, kind) last had a warn line.
pub struct RefusalLog {
    every: Duration,
    last: Mutex<HashMap<(Option<IpAddr>, KeyKind), Instant>>,
    pub suppressed: AtomicU64,
}

impl RefusalLog {
    pub fn new(every: Duration) -> RefusalLog {
        RefusalLog { every, last: Mutex::new(HashMap::new()), suppressed: AtomicU64::new(0) }
    }

    /// Whether a refusal from `peer` of `kind` at `now` gets a warn line (and starts a new quiet period).
    pub fn should_warn(&self, now: Instant, peer: Option<IpAddr>, kind: KeyKind) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let quiet = |t: &Instant| now.saturating_duration_since(*t) >= self.every;
        if let Some(t) = last.get_mut(&(peer, kind)) {
            if quiet(t) {
                *t = now;
                return true;
            }
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if last.len() >= MAX_PEERS {
            last.retain(|_, t| !quiet(t));
        }
        if last.len() >= MAX_PEERS {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        last.insert((peer, kind), now);
        true
    }
}

static INTERVAL_SECS: AtomicU64 = AtomicU64::new(10);
static LOG: LazyLock<RefusalLog> =
    LazyLock::new(|| RefusalLog::new(Duration::from_secs(INTERVAL_SECS.load(Ordering::Relaxed))));

/// Sets the quiet period; call once at start, before the first refusal (later calls have no effect).
pub fn set_interval(every: Duration) {
    INTERVAL_SECS.store(every.as_secs(), Ordering::Relaxed);
}

/// Lines held back so far.
pub fn suppressed() -> u64 {
    LOG.suppressed.load(Ordering::Relaxed)
}

/// Counts a refused key and logs it (warn or debug, see the module docs). `what` names the endpoint or
/// event; never pass the key.
pub fn refused_key(kind: KeyKind, peer: Option<IpAddr>, reason: &'static str, what: &str) {
    candlecast_actors::refusals::refused(kind.limit());
    let peer_text = peer.map(|p| p.to_string()).unwrap_or_default();
    if LOG.should_warn(Instant::now(), peer, kind) {
        tracing::warn!(
            peer = peer_text,
            kind = kind.limit(),
            what,
            reason,
            "refused a key (more from this peer within the quiet period are logged at debug)"
        );
    } else {
        tracing::debug!(peer = peer_text, kind = kind.limit(), what, reason, "refused a key");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gets_one_warn_per_peer_and_kind_per_period() {
        let log = RefusalLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let (a, b) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 10,000 refusals from one peer within 10 s: one warn.
        let warned = (0..10_000).filter(|i| log.should_warn(at(*i), a, KeyKind::Admin)).count();
        assert_eq!(warned, 1);
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 9_999);
        // Another peer, or another kind, has its own period.
        assert!(log.should_warn(at(5), b, KeyKind::Admin));
        assert!(log.should_warn(at(5), a, KeyKind::Trader));
        // After the period, one more.
        assert!(log.should_warn(at(10_000), a, KeyKind::Admin));
        assert!(!log.should_warn(at(10_001), a, KeyKind::Admin));
    }

    #[test]
    fn memory_is_bounded_under_many_peers() {
        let log = RefusalLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let warned = (0..20_000u32)
            .filter(|i| log.should_warn(t0, Some(IpAddr::from(i.to_be_bytes())), KeyKind::Script))
            .count();
        assert_eq!(warned, MAX_PEERS, "at most one line per remembered peer in a period");
        assert!(log.last.lock().unwrap().len() <= MAX_PEERS);
        // Once the period has passed, quiet peers are forgotten and new ones are logged again.
        assert!(log.should_warn(t0 + Duration::from_secs(11), Some(IpAddr::from([1, 2, 3, 4])), KeyKind::Script));
    }
}
