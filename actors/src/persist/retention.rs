//! Retention: bars of short intervals are deleted from the store once they are older than configured
//! (`[store.retention]`, e.g. 1s bars after 7 days), so that the store stops growing by ~200 MB a day.
//!
//! - [`RetentionSettings`]: how long each interval is kept; an interval not named is kept forever.
//! - [`pass`]: one bounded step: at most `batch_bars` expired bars deleted, in one store transaction.
//! - [`spawn`]: the background loop that runs passes on the store's blocking pool, never on the actor
//!   threads. The embedded store's write lock is shared with the persistence actor: a pass holds it for
//!   one batch of deletes only, and after a full batch (a backlog) the loop pauses for as long as the
//!   pass took before the next one, so writes get at least half of the lock's time while a backlog drains.
//!
//! The cutoff is `now - keep` on an injected [`Clock`]: tests move time, they do not wait for it. Only
//! the store is affected: the in-memory window and the cluster's today-cache keep what they hold, and
//! history merges them as before (expired bars are simply no longer found beyond the window).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};

use super::{Store, StoreError};
use crate::model::Interval;

/// Wall-clock milliseconds; injected so that tests control the retention cutoff.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The real clock.
pub fn wall_clock() -> Clock {
    Arc::new(crate::model::now_ms)
}

const SEC: i64 = 1_000;
const DAY: i64 = 86_400 * SEC;

/// `[store.retention]`: interval name → how long its bars are kept (`"7d"`, `"36h"`, `"forever"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Only intervals with a limit, in ms; the others are kept forever.
    keep: BTreeMap<Interval, i64>,
}

impl Default for RetentionSettings {
    /// 1s bars 7 days, 5s to 30s bars 30 days, 1m and coarser forever (see `config/default.toml` for the
    /// disk this implies).
    fn default() -> Self {
        let keep =
            [(Interval::S1, 7 * DAY), (Interval::S5, 30 * DAY), (Interval::S15, 30 * DAY), (Interval::S30, 30 * DAY)];
        RetentionSettings { keep: keep.into_iter().collect() }
    }
}

impl RetentionSettings {
    /// Nothing is ever deleted.
    pub fn forever() -> Self {
        RetentionSettings { keep: BTreeMap::new() }
    }

    /// `pairs` of (interval, how long in ms); for tests and tools.
    pub fn keeping(pairs: &[(Interval, i64)]) -> Self {
        RetentionSettings { keep: pairs.iter().copied().filter(|(_, ms)| *ms > 0).collect() }
    }

    /// How long bars of `interval` are kept, in ms; `None`: forever.
    pub fn keep_ms(&self, interval: Interval) -> Option<i64> {
        self.keep.get(&interval).copied()
    }

    pub fn is_forever(&self) -> bool {
        self.keep.is_empty()
    }

    /// Every limited interval with the open time before which its bars are expired at `now`.
    pub fn cutoffs(&self, now: i64) -> Vec<(Interval, i64)> {
        self.keep.iter().map(|(&iv, &ms)| (iv, now.saturating_sub(ms))).collect()
    }

    /// `{"1s": "7d", ...}` for `/api/stats`: what is configured, written as it would be in the config.
    pub fn describe(&self) -> BTreeMap<&'static str, String> {
        self.keep.iter().map(|(iv, ms)| (iv.as_str(), format_duration(*ms))).collect()
    }
}

impl<'de> Deserialize<'de> for RetentionSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        let mut keep = BTreeMap::new();
        for (name, value) in raw {
            let interval: Interval = name.parse().map_err(serde::de::Error::custom)?;
            if let Some(ms) = parse_duration(&value).map_err(|e| serde::de::Error::custom(format!("{name}: {e}")))? {
                keep.insert(interval, ms);
            }
        }
        Ok(RetentionSettings { keep })
    }
}

/// A duration that cannot be a retention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retention {0:?}: expected a positive whole number of s, m, h, d or w (\"7d\", \"36h\") or \"forever\"")]
pub struct BadDuration(pub String);

/// `"7d"` → `Some(604800000)`; `"forever"` → `None`. At most 100 years: beyond, it means forever anyway,
/// and no cutoff can overflow.
pub fn parse_duration(s: &str) -> Result<Option<i64>, BadDuration> {
    let bad = || BadDuration(s.to_owned());
    if s == "forever" {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => SEC,
        "m" => 60 * SEC,
        "h" => 3_600 * SEC,
        "d" => DAY,
        "w" => 7 * DAY,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_ms) {
        Some(ms) if ms > 0 && ms <= 36_525 * DAY => Ok(Some(ms)),
        _ => Err(bad()),
    }
}

/// The largest whole unit: 604800000 → `"7d"` (`"1w"` would be as right; days read better here).
fn format_duration(ms: i64) -> String {
    for (unit, len) in [("d", DAY), ("h", 3_600 * SEC), ("m", 60 * SEC)] {
        if ms % len == 0 {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{}s", ms / SEC)
}

/// What one pass deleted, per interval (indexed by [`Interval::index`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    pub deleted: [u64; 16],
}

impl Expired {
    pub fn total(&self) -> u64 {
        self.deleted.iter().sum()
    }
}

/// Figures of the retention loop: `retention` in `/api/stats`, `candlecast_store_retention_*` in `/metrics`.
#[derive(Default)]
pub struct RetentionStats {
    /// Passes run since start (each one store transaction at most).
    pub passes: AtomicU64,
    /// Passes that failed (the store was down or full); retried at the next period.
    pub failures: AtomicU64,
    /// Bars deleted since start, per interval.
    pub deleted: [AtomicU64; 16],
    /// Wall-clock ms at which the last pass ended; 0 before the first.
    pub last_pass_ms: AtomicI64,
}

impl RetentionStats {
    fn record(&self, expired: &Expired, now: i64) {
        for (counter, n) in self.deleted.iter().zip(expired.deleted) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.last_pass_ms.store(now, Ordering::Relaxed);
    }

    pub fn deleted(&self, interval: Interval) -> u64 {
        self.deleted[interval.index()].load(Ordering::Relaxed)
    }
}

/// One retention pass at `now`: deletes at most `batch_bars` expired bars (the oldest of each symbol
/// and interval first), in one store transaction. A full batch means more may be left.
pub async fn pass(
    store: &dyn Store,
    settings: &RetentionSettings,
    now: i64,
    batch_bars: usize,
) -> Result<Expired, StoreError> {
    if settings.is_forever() || batch_bars == 0 {
        return Ok(Expired::default());
    }
    store.expire(settings.cutoffs(now), batch_bars).await
}

/// How the loop runs: every `every`, passes of at most `batch_bars` each.
#[derive(Clone)]
pub struct Schedule {
    pub settings: RetentionSettings,
    pub batch_bars: usize,
    pub every: Duration,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every {:?}, {} bars a pass, keep {:?}", self.every, self.batch_bars, self.settings.describe())
    }
}

/// Starts the retention loop on the current runtime; the handle stops it (before the store closes).
pub fn spawn(
    store: Arc<dyn Store>,
    schedule: Schedule,
    clock: Clock,
    stats: Arc<RetentionStats>,
) -> tokio::task::AbortHandle {
    tokio::task::spawn(async move {
        let mut failing = false;
        loop {
            let started = Instant::now();
            let now = clock();
            let wait = match pass(&*store, &schedule.settings, now, schedule.batch_bars).await {
                Ok(expired) => {
                    failing = false;
                    stats.record(&expired, now);
                    if expired.total() > 0 {
                        tracing::debug!(deleted = expired.total(), "retention pass");
                    }
                    if expired.total() as usize >= schedule.batch_bars {
                        // A backlog (the first start with retention, a long stop): go on, after leaving the
                        // write lock to the persistence actor for as long as this pass held it.
                        started.elapsed().max(Duration::from_millis(10))
                    } else {
                        schedule.every
                    }
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(error = %e, "retention pass failed; retrying at the next period");
                    }
                    failing = true;
                    schedule.every
                }
            };
            tokio::time::sleep(wait).await;
        }
    })
    .abort_handle()
}

#[cfg(test)]
mod tests;
