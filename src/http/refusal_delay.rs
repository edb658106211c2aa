//! Repeated refusals answered late, per host.
//!
//! Answering a refusal costs the server about as much as the request that earned it: a host that keeps
//! asking for what it was just refused (a wrong key, a /ws upgrade over its budget, a cross-origin upgrade,
//! an oversized or poisoned body) turns the refusals themselves into the load. In the abuse benchmark,
//! answered at once, 8 threads made ~1,600 key guesses a second (healthy clients' p99 6.7×) and a /ws
//! upgrade flood thousands of 429s. So each host gets some refusals answered at once, over a sliding 10 s;
//! beyond, each further refusal is answered, unchanged, only after a delay, on a timer: a client that waits
//! for its answers (every script, bot and browser does) then makes about one a second per connection, and
//! nothing is held meanwhile but the host's own connection, whose number is capped per host
//! (`[http] max_connections_per_host`).
//!
//! Two budgets: refused keys (`[admin] refused_keys_free_per_10s`, `refused_key_delay_ms`; 401), and every
//! other refusal of a request (`[http] refusals_free_per_10s`, `refusal_delay_ms`; the statuses of
//! [`is_refusal`]). Hosts in `[http] unlimited_hosts` (loopback by default) are never delayed; a delay of 0
//! disables a budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use super::auth_log::MAX_PEERS;

/// Refusals per host over a sliding 10 s, and whether the next one must wait.
pub struct RefusalThrottle {
    free: u32,
    delay: Duration,
    exempt: Vec<IpAddr>,
    hosts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The window the free refusals are counted over.
const THROTTLE_WINDOW: Duration = Duration::from_secs(10);

impl RefusalThrottle {
    pub fn new(free: u32, delay: Duration, exempt: &[IpAddr]) -> RefusalThrottle {
        RefusalThrottle {
            free,
            delay,
            exempt: exempt.iter().map(|ip| crate::ws::admission::host_key(ip.to_canonical())).collect(),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal for `peer` at `now` and says how long its answer must wait.
    pub fn refused(&self, now: Instant, peer: Option<IpAddr>) -> Duration {
        let Some(ip) = peer.map(|p| p.to_canonical()) else { return Duration::ZERO };
        let host = crate::ws::admission::host_key(ip);
        if self.delay.is_zero() || self.exempt.contains(&host) {
            return Duration::ZERO;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.len() >= MAX_PEERS && !hosts.contains_key(&host) {
            hosts.retain(|_, (since, _)| now.saturating_duration_since(*since) < THROTTLE_WINDOW);
        }
        if hosts.len() >= MAX_PEERS && !hosts.contains_key(&host) {
            // More refused hosts than remembered (a spoofed-source flood): the unremembered ones wait too.
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

/// The refused keys' budget and everyone else's.
pub struct RefusalThrottles {
    pub keys: RefusalThrottle,
    pub requests: RefusalThrottle,
}

/// Statuses that refuse what this host asked (as opposed to 404, which a dashboard asking for a symbol
/// that does not exist yet gets in the normal course, and 5xx, the server's own state): a malformed or
/// oversized request, a refused origin, a budget the host is over.
pub fn is_refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::FORBIDDEN
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::URI_TOO_LONG
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    )
}

/// Middleware: holds a refusal's answer while its host keeps being refused (see the module docs). The
/// handler has already counted the refusal; only the answer waits, on a timer, holding no thread.
pub async fn delay_refusals(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let peer = req.peer_addr().map(|a| a.ip());
    let throttles = req.app_data::<actix_web::web::Data<crate::AppState>>().map(|s| s.refusal_throttles.clone());
    let response = next.call(req).await?;
    let Some(throttles) = throttles else { return Ok(response) };
    let status = response.status();
    let throttle = if status == StatusCode::UNAUTHORIZED {
        Some(&throttles.keys)
    } else if is_refusal(status) {
        Some(&throttles.requests)
    } else {
        None
    };
    if let Some(throttle) = throttle {
        let delay = throttle.refused(Instant::now(), peer);
        if !delay.is_zero() {
            actix_web::rt::time::sleep(delay).await;
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_hosts_wait_after_their_free_refusals() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let throttle = RefusalThrottle::new(3, Duration::from_secs(1), &[loopback]);
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
        let off = RefusalThrottle::new(0, Duration::ZERO, &[]);
        assert!((0..100).all(|_| off.refused(t0, guesser).is_zero()));
    }

    #[test]
    fn refusals_are_the_client_errors_a_host_earns_not_404_or_the_servers_own() {
        for refusal in [400, 403, 405, 413, 414, 422, 429, 431] {
            assert!(is_refusal(StatusCode::from_u16(refusal).unwrap()), "{refusal}");
        }
        for other in [200, 101, 304, 401, 404, 408, 500, 503] {
            assert!(!is_refusal(StatusCode::from_u16(other).unwrap()), "{other}");
        }
    }
}
