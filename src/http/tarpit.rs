//! Repeated connection refusals held, not answered at once (`[http] connection_refusal_delay_ms`,
//! `connection_refusal_max_delay_ms`, `max_held_refusals_per_host`, `max_held_refusals`).
//!
//! A host over `[http] max_connections_per_host` that keeps reconnecting turns the refusals themselves
//! into the load: answered at once, one host made 4,200 refused connections a second in the abuse
//! benchmark (`http_flood`), and healthy clients' p99 tripled. So after the host's free refusals
//! (`[http] refusals_free_per_10s`, counted apart from refused requests), a refused connection is kept
//! open and answered the same 429 only later: a client that waits for its answer (every script, bot and
//! browser does) then makes one attempt per wait and connection instead of one per round trip.
//!
//! The wait grows with the flood: `connection_refusal_delay_ms` plus as long as the host has been held
//! without a pause (of 10 s), up to `connection_refusal_max_delay_ms`, plus a spread of up to as long again.
//! With a fixed 5 s (and half of it as spread), 3,000 held connections still came back about 440 times a second; a host held for half a
//! minute now waits half a minute, and a client refused once in a while still waits only the base delay.
//!
//! The connection never reaches actix's HTTP dispatcher: src/http/server.rs refuses it as it is accepted
//! (see [`super::connections`]) and [`answer_late`] waits on the bare socket, reading and dropping what the
//! client sends meanwhile (a request head or two; past [`MAX_READ_WHILE_HELD`] bytes it is closed) and
//! closing at once when the client closes its end, so a client that gave up gives its place back at once.
//! At the deadline it writes the 429 (connection: close) and closes. A dispatcher would cost ~20 KB of
//! buffers and a parse per refused connection, and cannot notice a client that left while its request waits.
//!
//! Each held refusal is a file descriptor, so they have budgets, per host and in total; beyond them a
//! refused connection is closed at once without an answer, the cheapest thing the server can do with it.
//! Counted: held now (`http_refusals.held`, `candlecast_http_refusals_held`) and closed at once
//! (`http_refusals.closed_at_once`, `candlecast_http_refusals_closed_at_once_total`).

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::rt::net::TcpStream;
use serde_json::json;

use super::connections::LIMIT;
use crate::config::HttpConfig;

/// What a held connection may send while it waits (its request head, a pipelined one) before it is closed
/// at once: a client that streams a body at a refused connection is not worth reading.
pub const MAX_READ_WHILE_HELD: usize = 16 * 1024;

/// A pause this long without a held refusal ends a host's flood: its next one waits the base delay again.
const PAUSE: Duration = Duration::from_secs(10);

/// Held refusals, per host and in total, and those closed at once for want of room. One per server.
pub struct HeldRefusals {
    per_host: usize,
    total: usize,
    delay: Duration,
    max_delay: Duration,
    held: Mutex<Held>,
    closed_at_once: AtomicU64,
    /// Refusals held so far: the seed of each one's spread.
    holds: AtomicU64,
}

#[derive(Default)]
struct Held {
    total: usize,
    hosts: HashMap<IpAddr, HostHolds>,
}

/// One host's held refusals: how many now, since when without a pause, and when it last had one.
struct HostHolds {
    now: usize,
    since: Instant,
    last: Instant,
}

/// A refused connection being held: its place in the budgets (given back when dropped), when to answer,
/// and the limit the answer names.
pub struct HeldRefusal {
    held: Arc<HeldRefusals>,
    host: IpAddr,
    answer_at: Instant,
    limit: usize,
}

impl HeldRefusals {
    pub fn new(config: &HttpConfig) -> Arc<HeldRefusals> {
        let delay = Duration::from_millis(config.connection_refusal_delay_ms);
        Arc::new(HeldRefusals {
            per_host: config.max_held_refusals_per_host,
            total: config.max_held_refusals,
            delay,
            max_delay: Duration::from_millis(config.connection_refusal_max_delay_ms).max(delay),
            held: Mutex::new(Held::default()),
            closed_at_once: AtomicU64::new(0),
            holds: AtomicU64::new(0),
        })
    }

    /// When to answer a refusal accepted at `accepted` from a host held without a pause for `flooding`:
    /// after the delay plus that time (capped), plus up to as long again, spread over the refusals. A
    /// flood that reconnects as soon as it is answered comes back all at once, and answered all at once it
    /// comes back again in one wave: thousands of accepts, 429s and closes in a few ms every delay, which in
    /// the abuse benchmark put the healthy clients' p99 at 100 ms in one run.
    fn answer_at(&self, accepted: Instant, flooding: Duration) -> Instant {
        let wait = (self.delay + flooding).min(self.max_delay);
        // As long again, not half: the first wave of a flood (every connection held at once) then comes back
        // at half the rate, and its answers took the healthy clients' p99 past the target with half.
        let spread_ms = (wait.as_millis() as u64).max(1);
        let n = self.holds.fetch_add(1, Ordering::Relaxed);
        accepted + wait + Duration::from_millis(mix(n) % spread_ms)
    }

    /// A place for one more held refusal of `host` (a host key), accepted at `accepted`; `None` (and
    /// counted) when the host's or the total budget is full: close it at once.
    pub fn hold(self: &Arc<Self>, host: IpAddr, accepted: Instant, limit: usize) -> Option<HeldRefusal> {
        let mut guard = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let held = &mut *guard;
        let now_held = held.hosts.get(&host).map_or(0, |h| h.now);
        if held.total >= self.total || now_held >= self.per_host {
            drop(guard);
            self.closed_at_once.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if held.hosts.len() >= 2 * self.total + 16 && !held.hosts.contains_key(&host) {
            // Hosts whose flood is over are kept only to end it after the pause; many distinct hosts drop them.
            held.hosts.retain(|_, h| h.now > 0 && accepted.saturating_duration_since(h.last) < PAUSE);
        }
        let holds = held.hosts.entry(host).or_insert(HostHolds { now: 0, since: accepted, last: accepted });
        if holds.now == 0 && accepted.saturating_duration_since(holds.last) >= PAUSE {
            holds.since = accepted;
        }
        holds.now += 1;
        holds.last = accepted;
        let flooding = accepted.saturating_duration_since(holds.since);
        held.total += 1;
        drop(guard);
        Some(HeldRefusal { held: self.clone(), host, answer_at: self.answer_at(accepted, flooding), limit })
    }

    /// Refused connections held now, all hosts together.
    pub fn held_now(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).total
    }

    /// Refused connections closed at once since the start because the held budgets were full.
    pub fn closed_at_once(&self) -> u64 {
        self.closed_at_once.load(Ordering::Relaxed)
    }
}

impl Drop for HeldRefusal {
    fn drop(&mut self) {
        let mut guard = self.held.held.lock().unwrap_or_else(PoisonError::into_inner);
        let held = &mut *guard;
        held.total = held.total.saturating_sub(1);
        if let Some(holds) = held.hosts.get_mut(&self.host) {
            holds.now = holds.now.saturating_sub(1);
            // The pause that ends the host's flood starts when its last held refusal goes.
            holds.last = holds.last.max(Instant::now());
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

/// Writes the 429 of a refused connection (a fresh connection's send buffer always takes it whole) and
/// ends the sending side: the client reads the answer, then the end.
pub fn write_refusal(stream: &TcpStream, limit: usize) {
    let body = refusal_body(limit);
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let socket = socket2::SockRef::from(stream);
    let _ = (&*socket).write_all(answer.as_bytes());
    let _ = socket.shutdown(Shutdown::Write);
}

/// Holds a refused connection until its answer is due, then answers it (see the module documentation).
/// Whatever the client sends meanwhile is read and dropped; it is closed at once if it closes its end,
/// fails, or sends more than [`MAX_READ_WHILE_HELD`].
pub async fn answer_late(stream: TcpStream, held: HeldRefusal) {
    let mut scratch = [0u8; 4096];
    let mut read = 0;
    loop {
        match tokio::time::timeout_at(held.answer_at.into(), stream.readable()).await {
            Err(_due) => break,
            Ok(Err(_)) => return,
            Ok(Ok(())) => match stream.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(n) => {
                    read += n;
                    if read > MAX_READ_WHILE_HELD {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            },
        }
    }
    // What came in since the last read: unread at the close, it would turn the close into a reset that can
    // take the answer with it.
    while let Ok(n @ 1..) = stream.try_read(&mut scratch) {
        read += n;
        if read > MAX_READ_WHILE_HELD {
            return;
        }
    }
    write_refusal(&stream, held.limit);
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

    fn config(delay_ms: u64, max_delay_ms: u64, per_host: usize, total: usize) -> HttpConfig {
        HttpConfig {
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
            connection_refusal_delay_ms: delay_ms,
            connection_refusal_max_delay_ms: max_delay_ms,
            max_held_refusals_per_host: per_host,
            max_held_refusals: total,
        }
    }

    #[test]
    fn held_refusals_are_budgeted_per_host_and_in_total_and_given_back_on_drop() {
        let held = HeldRefusals::new(&config(3_000, 3_000, 2, 3));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        let first = held.hold(a, now, 7).expect("room");
        let spread = first.answer_at - now;
        assert!(spread >= Duration::from_secs(3) && spread < Duration::from_secs(6), "{spread:?}");
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
    fn answers_are_spread_over_another_delay_so_a_flood_does_not_come_back_in_one_wave() {
        let held = HeldRefusals::new(&config(5_000, 5_000, 10_000, 10_000));
        let now = Instant::now();
        let offsets: Vec<u128> = (0..1_000).map(|_| (held.answer_at(now, Duration::ZERO) - now).as_millis()).collect();
        assert!(offsets.iter().all(|ms| (5_000..10_000).contains(ms)), "within the delay and as long again");
        // Spread: every half-second slot of the 5 s gets some of them, none more than a fifth.
        let mut slots = [0usize; 10];
        for ms in &offsets {
            slots[((ms - 5_000) / 500) as usize] += 1;
        }
        assert!(slots.iter().all(|n| (20..200).contains(n)), "{slots:?}");
    }

    #[test]
    fn a_host_held_without_a_pause_waits_longer_and_longer_up_to_the_cap_and_starts_afresh_after_a_pause() {
        let held = HeldRefusals::new(&config(5_000, 30_000, 100, 100));
        let host: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let wait = |h: &HeldRefusal, at: Instant| h.answer_at - at;
        let first = held.hold(host, t0, 7).expect("room");
        assert!(wait(&first, t0) >= Duration::from_secs(5) && wait(&first, t0) < Duration::from_secs(10));
        // Still held 12 s later (its first one not answered yet): 5 s plus the 12 s of its flood.
        let t12 = t0 + Duration::from_secs(12);
        let later = held.hold(host, t12, 7).expect("room");
        assert!(wait(&later, t12) >= Duration::from_secs(17), "{:?}", wait(&later, t12));
        // A minute in: the cap, plus its spread.
        let t60 = t0 + Duration::from_secs(60);
        let capped = held.hold(host, t60, 7).expect("room");
        assert!((30_000..60_000).contains(&wait(&capped, t60).as_millis()), "{:?}", wait(&capped, t60));
        // Another host is not affected by this one's flood.
        let other = held.hold("192.0.2.2".parse().unwrap(), t60, 7).expect("room");
        assert!(wait(&other, t60) < Duration::from_secs(10));
        // Once every held one is gone and the host stays away for the pause, it starts afresh.
        drop((first, later, capped));
        let back = t60 + PAUSE + Duration::from_secs(1);
        let fresh = held.hold(host, back, 7).expect("room");
        assert!(wait(&fresh, back) < Duration::from_secs(10), "{:?}", wait(&fresh, back));
    }
}
