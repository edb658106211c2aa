//! Repeated connection refusals held, not answered at once (`[http] connection_refusal_delay_ms`,
//! `max_held_refusals_per_host`, `max_held_refusals`).
//!
//! A host over `[http] max_connections_per_host` that keeps reconnecting turns the refusals themselves
//! into the load: answered at once, one host made 4,200 refused connections a second in the abuse
//! benchmark (`http_flood`), and healthy clients' p99 tripled. So after the host's free refusals
//! (`[http] refusals_free_per_10s`, counted apart from refused requests), a refused connection is kept
//! open and answered the same 429 only once `connection_refusal_delay_ms` has passed since it was
//! accepted: a client that waits for its answer (every script, bot and browser does) then makes one
//! attempt per delay and connection instead of one per round trip.
//!
//! The connection waits inside its own dispatcher: `on_connect` leaves a [`HeldRefusal`] in the
//! connection's data, and [`answer_held_refusals`], the outermost middleware, answers whatever the
//! connection asks with the 429 (connection: close) at the deadline, on a timer, without running a route.
//! Why not keep a duplicate of the socket and let actix's side go (shut down for reading)? Reading EOF,
//! actix's dispatcher shuts the socket down for writing too (a FIN, the peer sees the end at once) and
//! the late 429 then fails with EPIPE, as tried on Linux with actix-http 3.
//!
//! Each held refusal is a file descriptor, so they have budgets, per host and in total; beyond them a
//! refused connection is closed at once without an answer, the cheapest thing the server can do with it.
//! Counted: held now (`http_refusals.held`, `candlecast_http_refusals_held`) and closed at once
//! (`http_refusals.closed_at_once`, `candlecast_http_refusals_closed_at_once_total`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use serde_json::json;

use super::connections::LIMIT;
use crate::config::HttpConfig;

/// Held refusals, per host and in total, and those closed at once for want of room. One per server.
pub struct HeldRefusals {
    per_host: usize,
    total: usize,
    delay: Duration,
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
    closed_at_once: AtomicU64,
    /// Refusals held so far: the seed of each one's spread.
    holds: AtomicU64,
}

/// A refused connection being held: its place in the budgets (given back when actix drops the
/// connection's data), when to answer, and the limit the answer names.
pub struct HeldRefusal {
    held: Arc<HeldRefusals>,
    host: IpAddr,
    answer_at: Instant,
    limit: usize,
}

impl HeldRefusals {
    pub fn new(config: &HttpConfig) -> Arc<HeldRefusals> {
        Arc::new(HeldRefusals {
            per_host: config.max_held_refusals_per_host,
            total: config.max_held_refusals,
            delay: Duration::from_millis(config.connection_refusal_delay_ms),
            held: Mutex::new((0, HashMap::new())),
            closed_at_once: AtomicU64::new(0),
            holds: AtomicU64::new(0),
        })
    }

    /// When to answer a refusal accepted at `accepted`: after the delay plus up to half of it again, spread
    /// over the refusals. A flood that reconnects as soon as it is answered comes back all at once, and
    /// answered all at once it comes back again in one wave: thousands of accepts, 429s and closes in a few
    /// ms every delay, which in the abuse benchmark put the healthy clients' p99 at 100 ms in one run.
    fn answer_at(&self, accepted: Instant) -> Instant {
        let spread_ms = (self.delay.as_millis() as u64 / 2).max(1);
        let n = self.holds.fetch_add(1, Ordering::Relaxed);
        accepted + self.delay + Duration::from_millis(mix(n) % spread_ms)
    }

    /// A place for one more held refusal of `host` (a host key), answered `delay` after `accepted`;
    /// `None` (and counted) when the host's or the total budget is full: close it at once.
    pub fn hold(self: &Arc<Self>, host: IpAddr, accepted: Instant, limit: usize) -> Option<HeldRefusal> {
        let mut guard = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, hosts) = &mut *guard;
        let n = hosts.get(&host).copied().unwrap_or(0);
        if *total >= self.total || n >= self.per_host {
            drop(guard);
            self.closed_at_once.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *total += 1;
        hosts.insert(host, n + 1);
        Some(HeldRefusal { held: self.clone(), host, answer_at: self.answer_at(accepted), limit })
    }

    /// Refused connections held now, all hosts together.
    pub fn held_now(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Refused connections closed at once since the start because the held budgets were full.
    pub fn closed_at_once(&self) -> u64 {
        self.closed_at_once.load(Ordering::Relaxed)
    }
}

impl Drop for HeldRefusal {
    fn drop(&mut self) {
        let mut guard = self.held.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, hosts) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = hosts.get_mut(&self.host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                hosts.remove(&self.host);
            }
        }
    }
}

/// The JSON body of a refused connection's 429, answered at once or held.
pub fn refusal_body(limit: usize) -> String {
    json!({
        "error": LIMIT,
        "detail": format!("this host already holds {limit} open HTTP connections, the limit ([http] max_connections_per_host; limit {LIMIT}); close some or retry later"),
    })
    .to_string()
}

/// Middleware, the outermost: a held refused connection gets, whatever it asked, its 429 at the deadline
/// (on a timer, holding no thread) and is closed; any other request goes on.
pub async fn answer_held_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, String>>, actix_web::Error> {
    let held = req.conn_data::<HeldRefusal>().map(|h| (h.answer_at, h.limit));
    let Some((answer_at, limit)) = held else { return Ok(next.call(req).await?.map_into_left_body()) };
    actix_web::rt::time::sleep_until(answer_at.into()).await;
    let response = HttpResponse::TooManyRequests()
        .content_type("application/json")
        .insert_header(("retry-after", "1"))
        .force_close()
        .message_body(refusal_body(limit))?;
    Ok(req.into_response(response).map_into_right_body())
}

/// SplitMix64's finalizer: consecutive numbers to well-spread ones (no randomness needed, only spread).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_refusals_are_budgeted_per_host_and_in_total_and_given_back_on_drop() {
        let held = Arc::new(HeldRefusals {
            per_host: 2,
            total: 3,
            delay: Duration::from_secs(3),
            held: Mutex::new((0, HashMap::new())),
            closed_at_once: AtomicU64::new(0),
            holds: AtomicU64::new(0),
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        let first = held.hold(a, now, 7).expect("room");
        let spread = first.answer_at - now;
        assert!(spread >= Duration::from_secs(3) && spread < Duration::from_millis(4_500), "{spread:?}");
        let _second = held.hold(a, now, 7).expect("room");
        assert!(held.hold(a, now, 7).is_none(), "the host's budget is full");
        let _third = held.hold(b, now, 7).expect("another host has its own budget");
        assert!(held.hold("192.0.2.3".parse().unwrap(), now, 7).is_none(), "the total budget is full");
        assert_eq!((held.held_now(), held.closed_at_once()), (3, 2));
        drop(first);
        assert_eq!(held.held_now(), 2);
        assert!(held.hold(a, now, 7).is_some(), "a dropped one gives its place back");
    }

    #[test]
    fn answers_are_spread_over_half_a_delay_so_a_flood_does_not_come_back_in_one_wave() {
        let held = HeldRefusals::new(&crate::config::HttpConfig {
            client_request_timeout_ms: 5000,
            first_byte_timeout_ms: 10_000,
            max_connections_per_host: 1,
            unlimited_hosts: vec![],
            max_history_reads: 1,
            max_history_reads_per_host: 1,
            history_bars_per_second_per_host: 1,
            history_burst_bars_per_host: 1,
            refusals_free_per_10s: 0,
            refusal_delay_ms: 0,
            connection_refusal_delay_ms: 5_000,
            max_held_refusals_per_host: 10_000,
            max_held_refusals: 10_000,
        });
        let now = Instant::now();
        let offsets: Vec<u128> = (0..1_000).map(|_| (held.answer_at(now) - now).as_millis()).collect();
        assert!(offsets.iter().all(|ms| (5_000..7_500).contains(ms)), "within the delay and half again");
        // Spread: every quarter-second slot of the 2.5 s gets some of them, none more than a fifth.
        let mut slots = [0usize; 10];
        for ms in &offsets {
            slots[((ms - 5_000) / 250) as usize] += 1;
        }
        assert!(slots.iter().all(|n| (20..200).contains(n)), "{slots:?}");
    }
}
