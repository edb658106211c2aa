//! History reads (`GET /api/historical`, `/ws` `get_historical`): where they run and how much one host may ask.
//!
//! - Where: the read (store and in-memory merge) and the JSON encoding of the reply run on a thread of their
//!   own, never on the HTTP workers, which also drive every `/ws` and Socket.IO session: a flood of large
//!   reads costs at most that one thread, and healthy clients' updates keep leaving.
//! - How many at once: `[http] max_history_reads` reads running or waiting on that thread, all hosts together
//!   (beyond: 503 `history_reads`), and `max_history_reads_per_host` per host (beyond: 429
//!   `history_reads_per_host`). The queue on the thread is bounded by the first.
//! - How much: a reply costs in proportion to its bars, so the per-host rate is in bars, not requests (a
//!   `limit=1` poll costs nothing next to a `limit=5000` read): a token bucket of
//!   `history_bars_per_second_per_host` bars per second with bursts of `history_burst_bars_per_host`. A read
//!   is charged its `limit` before it runs and refunded what it did not return (beyond: 429
//!   `history_bars_per_host`, with the seconds until the bars are there as `Retry-After`).
//!
//! Hosts in `[http] unlimited_hosts` (loopback by default) skip the per-host limits, never the total.
//! Every refusal is counted as `candlecast_refused_total{limit=...}`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use candlecast_actors::refusals::refused;
use serde_json::json;

/// The most a host over its own history budget waits for its refusal (see [`HistoryReads::run`]).
const REFUSAL_DELAY: Duration = Duration::from_secs(1);

use crate::config::HttpConfig;
use crate::ws::admission::host_key;

/// Idle host entries are forgotten when there are more than this many, at most once a second.
const PRUNE_ABOVE: usize = 1024;
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Why a history read was refused; each names its limit and its configuration key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryRefusal {
    #[error("this host already has {0} history reads running or waiting, the limit ([http] max_history_reads_per_host; limit history_reads_per_host); retry after 1 s")]
    ReadsPerHost(usize),
    #[error("this host read more than its {rate} bars per second (bursts of {burst}; [http] history_bars_per_second_per_host; limit history_bars_per_host); retry after {retry_after} s")]
    BarsPerHost { rate: u32, burst: u32, retry_after: u64 },
    #[error("the server has {0} history reads running or waiting, its limit ([http] max_history_reads; limit history_reads); retry after 1 s")]
    Reads(usize),
}

impl HistoryRefusal {
    /// The limit's name, as in `candlecast_refused_total{limit=...}`.
    pub fn limit(&self) -> &'static str {
        match self {
            HistoryRefusal::ReadsPerHost(_) => "history_reads_per_host",
            HistoryRefusal::BarsPerHost { .. } => "history_bars_per_host",
            HistoryRefusal::Reads(_) => "history_reads",
        }
    }

    /// Seconds after which the same read should pass.
    pub fn retry_after(&self) -> u64 {
        match self {
            HistoryRefusal::BarsPerHost { retry_after, .. } => *retry_after,
            _ => 1,
        }
    }

    /// `{"error":"<limit>","detail":"...","retry_after":<s>}` with 429 (per host) or 503 (total), and `Retry-After`.
    pub fn response(&self) -> HttpResponse {
        let status = match self {
            HistoryRefusal::Reads(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        };
        HttpResponse::build(status)
            .insert_header(("Retry-After", self.retry_after().to_string()))
            .json(json!({ "error": self.limit(), "detail": self.to_string(), "retry_after": self.retry_after() }))
    }
}

/// Bars a host may still read: refills at `rate` per second up to `burst`.
struct BarBucket {
    tokens: f64,
    last: Instant,
}

impl BarBucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
    }
}

struct HostState {
    running: usize,
    bars: BarBucket,
}

struct Hosts {
    map: HashMap<IpAddr, HostState>,
    last_prune: Instant,
}

/// See the module documentation. One per server.
pub struct HistoryReads {
    /// Where reads run; `None` outside an actix system (they then run where they are awaited).
    thread: Option<actix::ArbiterHandle>,
    unlimited: Vec<IpAddr>,
    per_host: usize,
    rate: u32,
    burst: u32,
    max: usize,
    running: AtomicUsize,
    hosts: Mutex<Hosts>,
}

impl HistoryReads {
    pub fn new(config: &HttpConfig) -> Arc<HistoryReads> {
        Arc::new(HistoryReads {
            thread: actix::System::try_current()
                .map(|_| candlecast_actors::background::arbiter(candlecast_actors::background::Priority::Low)),
            unlimited: config.unlimited_hosts.iter().map(|ip| host_key(*ip)).collect(),
            per_host: config.max_history_reads_per_host,
            rate: config.history_bars_per_second_per_host.max(1),
            burst: config.history_burst_bars_per_host.max(1),
            max: config.max_history_reads,
            running: AtomicUsize::new(0),
            hosts: Mutex::new(Hosts { map: HashMap::new(), last_prune: Instant::now() }),
        })
    }

    /// Runs `work` (a read of at most `limit` bars for `peer`, returning its result and how many bars it
    /// returned) on the history thread once the budgets allow it; `Ok(None)` if that thread is gone.
    pub async fn run<F, T>(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        limit: usize,
        work: F,
    ) -> Result<Option<T>, HistoryRefusal>
    where
        F: Future<Output = (T, usize)> + Send + 'static,
        T: Send + 'static,
    {
        let ticket = match self.admit(peer, limit) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                refused(refusal.limit());
                tracing::debug!(limit = refusal.limit(), ?peer, "refused history read");
                // A host over its own budget gets its answer a little later (at most REFUSAL_DELAY, never
                // past its Retry-After): clients that retry at once otherwise make the refusals themselves
                // the load (10 threads from one host: ~1,400 refusals a second, healthy p99 5x). Nothing
                // is held meanwhile: the ticket is gone, and the host's connections are capped.
                if !matches!(refusal, HistoryRefusal::Reads(_)) {
                    let delay = REFUSAL_DELAY.min(Duration::from_secs(refusal.retry_after()));
                    actix_web::rt::time::sleep(delay).await;
                }
                return Err(refusal);
            }
        };
        let Some(thread) = &self.thread else {
            let (out, bars) = work.await;
            ticket.done(bars);
            return Ok(Some(out));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !thread.spawn(async move {
            let _ = tx.send(work.await);
        }) {
            return Ok(None);
        }
        match rx.await {
            Ok((out, bars)) => {
                ticket.done(bars);
                Ok(Some(out))
            }
            Err(_) => Ok(None),
        }
    }

    fn admit(self: &Arc<Self>, peer: Option<IpAddr>, limit: usize) -> Result<Ticket, HistoryRefusal> {
        let host = host_key(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        let taken = self.running.fetch_add(1, Ordering::Relaxed);
        // From here on, dropping `ticket` gives the place back (and, once `host` is set, the host's).
        let mut ticket = Ticket { reads: self.clone(), host: None, charged: 0 };
        if taken >= self.max {
            return Err(HistoryRefusal::Reads(self.max));
        }
        if self.unlimited.contains(&host) {
            return Ok(ticket);
        }
        // A read larger than a whole burst could never pass: it waits for a full bucket instead.
        let cost = limit.min(self.burst as usize) as f64;
        let (rate, burst) = (self.rate as f64, self.burst as f64);
        let now = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.prune(now, rate, burst);
        let state = hosts
            .map
            .entry(host)
            .or_insert_with(|| HostState { running: 0, bars: BarBucket { tokens: burst, last: now } });
        if state.running >= self.per_host {
            return Err(HistoryRefusal::ReadsPerHost(self.per_host));
        }
        self.take_bars(&mut state.bars, cost, now)?;
        state.running += 1;
        ticket.host = Some(host);
        ticket.charged = cost as usize;
        Ok(ticket)
    }

    /// Takes `bars` from `peer`'s bar budget, without a read slot: history that is sent from memory by
    /// another path (the values an indicator stream starts with, up to 5,000 a subscription, sent again at
    /// every repeated subscribe). Refused as a read of that size would be, and counted.
    pub fn charge(&self, peer: Option<IpAddr>, bars: usize) -> Result<(), HistoryRefusal> {
        let host = host_key(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        if self.unlimited.contains(&host) || bars == 0 {
            return Ok(());
        }
        let cost = bars.min(self.burst as usize) as f64;
        let now = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.prune(now, self.rate as f64, self.burst as f64);
        let burst = self.burst as f64;
        let state = hosts
            .map
            .entry(host)
            .or_insert_with(|| HostState { running: 0, bars: BarBucket { tokens: burst, last: now } });
        self.take_bars(&mut state.bars, cost, now).inspect_err(|refusal| refused(refusal.limit()))
    }

    /// For reads whose size is known only once they are done (the bars a backtest or an optimization
    /// loads, up to `[jobs] max_bars`): refused (and counted) while `peer`'s bar budget is spent; once done,
    /// [`Self::charge_done`] charges what it returned.
    pub fn admit_unsized(&self, peer: Option<IpAddr>) -> Result<(), HistoryRefusal> {
        let Some(mut hosts) = self.limited(peer) else { return Ok(()) };
        let (host, now) = (host_key(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))), Instant::now());
        let Some(state) = hosts.map.get_mut(&host) else { return Ok(()) };
        state.bars.refill(now, self.rate as f64, self.burst as f64);
        if state.bars.tokens > 0.0 {
            return Ok(());
        }
        let retry_after = (-state.bars.tokens / self.rate as f64).ceil().max(1.0) as u64;
        let refusal = HistoryRefusal::BarsPerHost { rate: self.rate, burst: self.burst, retry_after };
        refused(refusal.limit());
        Err(refusal)
    }

    /// Charges `bars` a read admitted by [`Self::admit_unsized`] returned. The bucket may go into debt (at
    /// most a burst): the host's next reads wait until its rate has paid it back.
    pub fn charge_done(&self, peer: Option<IpAddr>, bars: usize) {
        let Some(mut hosts) = self.limited(peer) else { return };
        let (host, now, burst) =
            (host_key(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))), Instant::now(), self.burst as f64);
        let state = hosts
            .map
            .entry(host)
            .or_insert_with(|| HostState { running: 0, bars: BarBucket { tokens: burst, last: now } });
        state.bars.refill(now, self.rate as f64, burst);
        state.bars.tokens = (state.bars.tokens - bars as f64).max(-burst);
    }

    /// The hosts' states, locked and pruned, unless `peer` is unlimited.
    fn limited(&self, peer: Option<IpAddr>) -> Option<std::sync::MutexGuard<'_, Hosts>> {
        let host = host_key(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        if self.unlimited.contains(&host) {
            return None;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.prune(Instant::now(), self.rate as f64, self.burst as f64);
        Some(hosts)
    }

    fn take_bars(&self, bucket: &mut BarBucket, cost: f64, now: Instant) -> Result<(), HistoryRefusal> {
        let rate = self.rate as f64;
        bucket.refill(now, rate, self.burst as f64);
        if bucket.tokens < cost {
            let retry_after = ((cost - bucket.tokens) / rate).ceil().max(1.0) as u64;
            return Err(HistoryRefusal::BarsPerHost { rate: self.rate, burst: self.burst, retry_after });
        }
        bucket.tokens -= cost;
        Ok(())
    }
}

impl Hosts {
    fn prune(&mut self, now: Instant, rate: f64, burst: f64) {
        if self.map.len() <= PRUNE_ABOVE || now.saturating_duration_since(self.last_prune) < PRUNE_EVERY {
            return;
        }
        self.last_prune = now;
        self.map.retain(|_, s| {
            s.bars.refill(now, rate, burst);
            s.running > 0 || s.bars.tokens < burst
        });
    }
}

/// A read's place in the totals and its host's; given back when dropped.
struct Ticket {
    reads: Arc<HistoryReads>,
    /// The host whose count and bucket this read is in; `None` for unlimited hosts.
    host: Option<IpAddr>,
    charged: usize,
}

impl Ticket {
    /// The read returned `bars`: what it was charged beyond that goes back to its host's bucket.
    fn done(mut self, bars: usize) {
        let refund = self.charged.saturating_sub(bars);
        self.charged = 0;
        if let (Some(host), true) = (self.host, refund > 0) {
            let r = &self.reads;
            let mut hosts = r.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = hosts.map.get_mut(&host) {
                state.bars.tokens = (state.bars.tokens + refund as f64).min(r.burst as f64);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let r = &self.reads;
        let _ = r.running.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
        if let Some(host) = self.host {
            let mut hosts = r.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = hosts.map.get_mut(&host) {
                state.running = state.running.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_host: usize, rate: u32, burst: u32, max: usize) -> HttpConfig {
        HttpConfig {
            client_request_timeout_ms: 5000,
            first_byte_timeout_ms: 10_000,
            max_connections_per_host: 10,
            unlimited_hosts: vec!["127.0.0.1".parse().unwrap()],
            max_history_reads: max,
            max_history_reads_per_host: per_host,
            history_bars_per_second_per_host: rate,
            history_burst_bars_per_host: burst,
            refusals_free_per_10s: 1,
            refusal_delay_ms: 0,
            connection_refusal_delay_ms: 0,
            max_held_refusals_per_host: 1,
            max_held_refusals: 1,
            connection_refusal_max_delay_ms: 0,
        }
    }

    const HOST: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));

    #[test]
    fn bars_are_charged_up_front_and_what_was_not_returned_is_refunded() {
        let reads = HistoryReads::new(&config(8, 1, 10_000, 64));
        reads.admit(HOST, 6_000).unwrap().done(1_000);
        // 10,000 - 6,000 + 5,000 refunded: 9,000 left (plus at most a few bars of refill).
        reads.admit(HOST, 9_000).unwrap().done(9_000);
        let refusal = reads.admit(HOST, 1_000).err().expect("the bucket is empty");
        assert_eq!(refusal.limit(), "history_bars_per_host");
        assert!(refusal.retry_after() >= 900, "1,000 bars at 1 a second: {refusal}");
    }

    #[test]
    fn running_reads_are_counted_per_host_and_in_total_and_loopback_is_exempt_from_the_host_limits() {
        let reads = HistoryReads::new(&config(1, 1, 1_000_000, 2));
        let a = reads.admit(HOST, 1).unwrap();
        assert_eq!(reads.admit(HOST, 1).err().map(|r| r.limit()), Some("history_reads_per_host"));
        drop(a);
        let _c = reads.admit(HOST, 1).unwrap();
        let other = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
        let d = reads.admit(other, 1).unwrap();
        let exempt = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(reads.admit(exempt, 1).err().map(|r| r.limit()), Some("history_reads"), "the total applies");
        drop(d);
        assert!(reads.admit(exempt, 1_000_000_000).is_ok(), "no bar budget for an exempt host");
    }

    #[test]
    fn every_refusal_names_its_limit_in_its_message() {
        let all = [
            HistoryRefusal::ReadsPerHost(1),
            HistoryRefusal::BarsPerHost { rate: 1, burst: 1, retry_after: 1 },
            HistoryRefusal::Reads(1),
        ];
        for r in all {
            assert!(r.to_string().contains(r.limit()), "{r}");
        }
    }
}
