//! Today's bars of every symbol and interval in Redis (key layout in [`super::wire`]), so a node that
//! starts or restarts serves today's whole chart at once, as seeds 000 and 001 keep "a cache of the current
//! day's bars". Each interval keeps the whole current UTC day (86,400 members for 1s) unless
//! `[redis] cache_max_bars` caps it ([`CacheLimits`]). Written only by the node running the symbol's feed:
//! closed bars and corrections as they happen, forming bars at most every `cache_flush_ms`, and the whole day
//! again from its history (store and memory) after a reconnect, a takeover or a backfill. Each write carries
//! the watermark of the messages it covers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use redis::Value;

use super::link::{describe, RedisLink};
use super::sync::Snapshot;
use super::wire::{self, Keys};
use crate::aggregator::AggregatorSettings;
use crate::model::{Bar, Interval, Symbol};

const DAY: i64 = 86_400_000;
/// Cached bars outlive their day by this much, so a node starting just after midnight still finds them.
const KEEP_AFTER_DAY: i64 = 3_600_000;

/// Bars an aggregator holds per interval: its closed history plus its forming bar. A follower hands these
/// to the replica aggregator and stores the older ones directly (they would only pass through memory).
pub fn window(settings: &AggregatorSettings) -> usize {
    settings.history_bars + 1
}

/// How many bars the today-cache keeps per interval: a whole UTC day and the forming bar, or less where
/// `[redis] cache_max_bars` says so (deployments with many symbols cap the sub-minute intervals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheLimits {
    caps: BTreeMap<Interval, usize>,
}

impl CacheLimits {
    pub fn new(caps: BTreeMap<Interval, usize>) -> CacheLimits {
        CacheLimits { caps }
    }

    /// Bars of `interval` kept: never more than a day holds (plus the forming bar), at least one.
    pub fn cap(&self, interval: Interval) -> usize {
        let day = bars_per_day(interval) + 1;
        self.caps.get(&interval).map_or(day, |cap| (*cap).clamp(1, day))
    }
}

/// Bars of `interval` that open within one day (at least 1: a day or a week bar spans today).
pub fn bars_per_day(interval: Interval) -> usize {
    (DAY / interval.millis()).max(1) as usize
}

/// The today-cache could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read the today-cache: {0}")]
    Redis(String),
    #[error("{0}")]
    Wire(#[from] wire::WireError),
}

/// Bars of one symbol to put in the cache, and the message they are complete up to.
pub struct CacheWrite {
    pub keys: Keys,
    pub symbol: Symbol,
    pub bars: Vec<Bar>,
    /// Bars kept per interval (the newest).
    pub limits: CacheLimits,
    /// The bars are everything of today from their first open time on (a rewrite from history): they
    /// replace what the sets hold in that span. Older cached bars stay (a node whose store lacks them, or
    /// with no store, must not wipe what an earlier leader cached).
    pub replace: bool,
    pub node: Arc<str>,
    pub seq: u64,
    /// The time of the write: it decides which day is today.
    pub now: i64,
}

impl CacheWrite {
    /// Adds the write's commands to `pipe`; returns how many bars it writes (those of today).
    pub fn add_to(&self, pipe: &mut redis::Pipeline) -> usize {
        let day_start = Interval::D1.align(self.now);
        let expire_at = (day_start + DAY + KEEP_AFTER_DAY) / 1000;
        let mut by_interval: BTreeMap<Interval, Vec<&Bar>> = BTreeMap::new();
        for bar in self.bars.iter().filter(|b| b.close_time() > day_start) {
            by_interval.entry(bar.interval).or_default().push(bar);
        }
        let mut written = 0;
        let symbol: &str = &self.symbol;
        for (interval, bars) in &by_interval {
            let key = self.keys.today(day_start, symbol, *interval);
            let cap = self.limits.cap(*interval);
            let newest = bars.iter().rev().take(cap);
            if self.replace {
                let members: Vec<(i64, String)> = newest.map(|b| (b.open_time, wire::encode_cached(b))).collect();
                // `members` is newest first: the span they cover is last..=first.
                if let (Some(first), Some(last)) = (members.last(), members.first()) {
                    pipe.zrembyscore(&key, first.0, last.0).ignore();
                }
                pipe.zadd_multiple(&key, &members).ignore();
                written += members.len();
            } else {
                for bar in newest {
                    // One member per open time: the bar's earlier state goes first.
                    pipe.zrembyscore(&key, bar.open_time, bar.open_time).ignore();
                    pipe.zadd(&key, wire::encode_cached(bar), bar.open_time).ignore();
                    written += 1;
                }
            }
            pipe.zremrangebyrank(&key, 0, -(cap as isize) - 1).ignore();
            pipe.expire_at(&key, expire_at).ignore();
        }
        let watermark = self.keys.watermark(symbol);
        pipe.set(&watermark, wire::encode_watermark(&self.node, self.seq)).ignore();
        pipe.expire_at(&watermark, expire_at).ignore();
        pipe.sadd(self.keys.symbols(), symbol).ignore();
        pipe.expire_at(self.keys.symbols(), expire_at).ignore();
        written
    }
}

/// The newest state of each bar changed since the last write, per symbol: what the next write sends.
#[derive(Default)]
pub struct PendingWrites {
    symbols: HashMap<Symbol, Pending>,
}

/// One symbol's pending bars by (interval, open time), and the last message number they cover.
#[derive(Default)]
struct Pending {
    bars: BTreeMap<(Interval, i64), Bar>,
    seq: u64,
}

impl PendingWrites {
    /// Notes the bars of message `seq`; a later state of a bar replaces an earlier one.
    pub fn note(&mut self, symbol: &Symbol, seq: u64, bars: &[Bar]) {
        let pending = self.symbols.entry(symbol.clone()).or_default();
        for bar in bars {
            pending.bars.insert((bar.interval, bar.open_time), bar.clone());
        }
        pending.seq = seq;
    }

    pub fn forget(&mut self, symbol: &str) {
        self.symbols.remove(symbol);
    }

    pub fn clear(&mut self) {
        self.symbols.clear();
    }

    /// Everything pending, one write per symbol.
    pub fn take(&mut self, keys: &Keys, node: &Arc<str>, limits: &CacheLimits, now: i64) -> Vec<CacheWrite> {
        self.symbols
            .drain()
            .map(|(symbol, p)| CacheWrite {
                keys: keys.clone(),
                symbol,
                bars: p.bars.into_values().collect(),
                limits: limits.clone(),
                replace: false,
                node: node.clone(),
                seq: p.seq,
                now,
            })
            .collect()
    }
}

/// Reads today's bars of `symbol` for `intervals` (the newest [`CacheLimits::cap`] of each) and the
/// watermark in one transaction, so the watermark matches the bars. Bars come oldest first per interval.
pub async fn read(
    link: &RedisLink,
    keys: &Keys,
    symbol: &Symbol,
    intervals: &[Interval],
    limits: &CacheLimits,
    now: i64,
) -> Result<Snapshot, CacheError> {
    let day_start = Interval::D1.align(now);
    let set_keys: Vec<String> = intervals.iter().map(|iv| keys.today(day_start, symbol, *iv)).collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (key, interval) in set_keys.iter().zip(intervals) {
        pipe.zrange(key, -(limits.cap(*interval) as isize), -1);
    }
    pipe.get(keys.watermark(symbol));
    let mut replies: Vec<Value> = link
        .run(|mut con| async move { pipe.query_async(&mut con).await })
        .await
        .map_err(|e| CacheError::Redis(describe(&e)))?;
    let watermark = match replies.pop() {
        Some(Value::Nil) | None => None,
        Some(v) => {
            let text: String = redis::from_redis_value(v).map_err(|e| CacheError::Redis(e.to_string()))?;
            Some(wire::decode_watermark(&text)?)
        }
    };
    let mut bars = Vec::new();
    for ((reply, key), interval) in replies.into_iter().zip(&set_keys).zip(intervals) {
        // Ascending by score, the open time.
        let members: Vec<String> = redis::from_redis_value(reply).map_err(|e| CacheError::Redis(e.to_string()))?;
        for member in &members {
            bars.push(wire::decode_cached(key, symbol, *interval, member)?);
        }
    }
    Ok(Snapshot { bars, watermark })
}

/// Symbols with bars in the cache (written by any node).
pub async fn symbols(link: &RedisLink, keys: &Keys) -> Result<Vec<String>, CacheError> {
    let key = keys.symbols();
    let mut found: Vec<String> = link
        .run(|mut con| async move { redis::cmd("SMEMBERS").arg(key).query_async(&mut con).await })
        .await
        .map_err(|e| CacheError::Redis(describe(&e)))?;
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_state_of_each_bar_is_written_with_the_last_message_number() {
        let symbol: Symbol = "BTCUSDT".into();
        let mut forming = Bar::from_trade(symbol.clone(), Interval::M1, 60_000, 100.0, 1.0);
        let mut pending = PendingWrites::default();
        pending.note(&symbol, 1, &[forming.clone()]);
        forming.apply_trade(101.0, 1.0);
        forming.closed = true;
        let next = Bar::flat(symbol.clone(), Interval::M1, 120_000, 101.0);
        pending.note(&symbol, 2, &[forming.clone(), next.clone()]);
        let writes = pending.take(&Keys::new("cc"), &"node-a".into(), &CacheLimits::default(), 130_000);
        assert_eq!(writes.len(), 1);
        assert_eq!((writes[0].seq, writes[0].bars.clone()), (2, vec![forming, next]));
        assert!(pending.take(&Keys::new("cc"), &"node-a".into(), &CacheLimits::default(), 130_000).is_empty());
    }

    #[test]
    fn bars_that_ended_before_today_or_beyond_the_window_are_not_written() {
        let symbol: Symbol = "BTCUSDT".into();
        let now = 10 * DAY + 5_000;
        let yesterday = Bar::from_trade(symbol.clone(), Interval::M1, 10 * DAY - 60_000, 100.0, 1.0);
        let today = Bar::from_trade(symbol.clone(), Interval::M1, 10 * DAY, 100.0, 1.0);
        let week = Bar::from_trade(symbol.clone(), Interval::W1, 10 * DAY - 1_000, 100.0, 1.0);
        let mut bars = vec![yesterday, today.clone(), week];
        bars.extend(
            (1..=3).map(|i| Bar::from_trade(today.symbol.clone(), Interval::M1, 10 * DAY + i * 60_000, 100.0, 1.0)),
        );
        let write = CacheWrite {
            keys: Keys::new("cc"),
            symbol: today.symbol.clone(),
            bars,
            limits: CacheLimits::new([(Interval::M1, 3)].into()),
            replace: false,
            node: "n".into(),
            seq: 1,
            now,
        };
        let mut pipe = redis::pipe();
        assert_eq!(
            write.add_to(&mut pipe),
            4,
            "the week that is still forming and the newest three of today's 1m bars"
        );
    }

    #[test]
    fn a_day_is_cached_whole_unless_capped() {
        let none = CacheLimits::default();
        assert_eq!(none.cap(Interval::S1), 86_401, "every second of the day and the forming bar");
        assert_eq!(none.cap(Interval::M1), 1_441);
        assert_eq!(none.cap(Interval::H4), 7);
        assert_eq!(none.cap(Interval::D1), 2);
        assert_eq!(none.cap(Interval::W1), 2);
        let capped = CacheLimits::new([(Interval::S1, 3_600), (Interval::M1, 1_000_000), (Interval::S5, 0)].into());
        assert_eq!(capped.cap(Interval::S1), 3_600);
        assert_eq!(capped.cap(Interval::M1), 1_441, "never more than a day holds");
        assert_eq!(capped.cap(Interval::S5), 1, "at least the forming bar");
        assert_eq!(capped.cap(Interval::H1), 25);
    }

    #[test]
    fn a_rewrite_late_in_the_day_writes_every_bar_since_midnight() {
        // 23:59:30 UTC: 1,439 closed 1m bars of today and the forming one, as a node's history gives them.
        let symbol: Symbol = "BTCUSDT".into();
        let now = 10 * DAY + DAY - 30_000;
        let bars: Vec<Bar> = (0..1_440)
            .map(|i| Bar::from_trade(symbol.clone(), Interval::M1, 10 * DAY + i * 60_000, 1.0, 1.0))
            .collect();
        let write = CacheWrite {
            keys: Keys::new("cc"),
            symbol,
            bars,
            limits: CacheLimits::default(),
            replace: true,
            node: "n".into(),
            seq: 1,
            now,
        };
        assert_eq!(write.add_to(&mut redis::pipe()), 1_440);
    }
}
