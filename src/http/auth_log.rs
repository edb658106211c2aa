//! Refused keys, logged without letting anyone flood the log: at most one warn line per peer and key kind
//! every `[admin] refused_log_every_secs`; the others go to debug. Every refusal is counted in
//! `candlecast_refused_total{limit="key_<kind>"}` and every line held back in
//! `candlecast_refused_key_logs_suppressed_total`. Keys are never logged, only the peer, the kind and why.
//!
//! Any key check calls [`refused_key`]: `auth_log::refused_key(KeyKind::Script, peer_ip, "wrong key", path)`.
//!
//! Guessing is slowed down too ([`KeyThrottle`]): a host past `[admin] refused_keys_free_per_10s` refused
//! keys in 10 s gets each further 401 only after `[admin] refused_key_delay_ms`. Answering refusals at once
//! let 8 threads make ~1,600 a second and the refusals themselves became the load (healthy clients' p99
//! 6.7× in the abuse benchmark); delayed, each connection makes about one a second, and nothing is held
//! meanwhile but the host's own connection (its number is capped per host).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Peers remembered at once; beyond it (a spoofed-source flood) only the quiet ones are forgotten, and
/// new peers are not logged at warn until some are.
const MAX_PEERS: usize = 4096;

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

/// Refused keys per host over a sliding 10 s, and whether the next refusal must wait.
pub struct KeyThrottle {
    free: u32,
    delay: Duration,
    exempt: Vec<IpAddr>,
    hosts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The window `refused_keys_free_per_10s` counts over.
const THROTTLE_WINDOW: Duration = Duration::from_secs(10);

impl KeyThrottle {
    pub fn new(free: u32, delay: Duration, exempt: &[IpAddr]) -> KeyThrottle {
        KeyThrottle {
            free,
            delay,
            exempt: exempt.iter().map(|ip| ip.to_canonical()).collect(),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal for `peer` at `now` and says how long its answer must wait.
    pub fn refused(&self, now: Instant, peer: Option<IpAddr>) -> Duration {
        let Some(ip) = peer.map(|p| p.to_canonical()) else { return Duration::ZERO };
        if self.delay.is_zero() || self.exempt.contains(&ip) {
            return Duration::ZERO;
        }
        let host = crate::ws::admission::host_key(ip);
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.len() >= MAX_PEERS && !hosts.contains_key(&host) {
            hosts.retain(|_, (since, _)| now.saturating_duration_since(*since) < THROTTLE_WINDOW);
        }
        if hosts.len() >= MAX_PEERS && !hosts.contains_key(&host) {
            // More guessing hosts than remembered: the unremembered ones wait too.
            return self.delay;
        }
        let (since, count) = hosts.entry(host).or_insert((now, 0));
        if now.saturating_duration_since(*since) >= THROTTLE_WINDOW {
            (*since, *count) = (now, 0);
        }
        *count = count.saturating_add(1);
        if *count > self.free {
            self.delay
        } else {
            Duration::ZERO
        }
    }
}

/// Middleware: holds a 401 answer while its host is guessing keys (see [`KeyThrottle`]). The handler
/// has already counted and logged the refusal; only the answer waits, on a timer, holding no thread.
pub async fn delay_refusals(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let peer = req.peer_addr().map(|a| a.ip());
    let throttle = req.app_data::<actix_web::web::Data<crate::AppState>>().map(|s| s.key_throttle.clone());
    let response = next.call(req).await?;
    if let (Some(throttle), actix_web::http::StatusCode::UNAUTHORIZED) = (throttle, response.status()) {
        let delay = throttle.refused(Instant::now(), peer);
        if !delay.is_zero() {
            actix_web::rt::time::sleep(delay).await;
        }
    }
    Ok(response)
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
    fn guessing_hosts_wait_after_their_free_refusals() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let throttle = KeyThrottle::new(3, Duration::from_secs(1), &[loopback]);
        let t0 = Instant::now();
        let guesser = Some(IpAddr::from([203, 0, 113, 7]));
        let delays: Vec<Duration> = (0..5).map(|i| throttle.refused(t0 + Duration::from_millis(i), guesser)).collect();
        assert_eq!(delays[..3], [Duration::ZERO; 3], "the first refusals are answered at once");
        assert_eq!(delays[3..], [Duration::from_secs(1); 2]);
        // Another host is not slowed down by the guesser, nor is an exempt one ever.
        assert_eq!(throttle.refused(t0, Some(IpAddr::from([203, 0, 113, 8]))), Duration::ZERO);
        assert!((0..100).all(|_| throttle.refused(t0, Some(loopback)).is_zero()));
        // After the window the host starts afresh.
        assert_eq!(throttle.refused(t0 + Duration::from_secs(11), guesser), Duration::ZERO);
        // Disabled: never a delay.
        let off = KeyThrottle::new(0, Duration::ZERO, &[]);
        assert!((0..100).all(|_| off.refused(t0, guesser).is_zero()));
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
