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
    /// Closed bars (corrections included) for the sorted sets.
    pub bars: Vec<Bar>,
    /// Every forming bar of the symbol now, one per interval, for its forming key (`None`: left as it is).
    pub forming: Option<Vec<Bar>>,
    /// Bars kept per interval (the newest).
    pub limits: CacheLimits,
    /// The bars are everything of today from their first open time on (a rewrite from history): they
    /// replace what the sets hold from there on. Older cached bars stay (a node whose store lacks them, or
    /// with no store, must not wipe what an earlier leader cached).
    pub replace: bool,
    pub node: Arc<str>,
    pub seq: u64,
    /// The time of the write: it decides which day is today.
    pub now: i64,
    /// Keys that already have today's expiry (see [`ExpiryMask`]): their EXPIREAT is not sent again.
    pub expired: u32,
}

/// Which of a symbol's today-keys were given their expiry today: one bit per interval's set, and
/// [`SYMBOLS_BIT`] for its entry in the symbols set. A key only needs EXPIREAT once a day, not at every
/// write (at 10,000 symbols that was a third of Redis's commands).
pub type ExpiryMask = u32;
/// The bit of the symbols set (and the symbol's membership in it).
pub const SYMBOLS_BIT: u32 = 1 << 31;

fn interval_bit(interval: Interval) -> u32 {
    1 << (interval as u32)
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
                // From the oldest rewritten bar on, the rewrite is the whole truth (a forming bar an earlier
                // version of candlecast cached there included).
                if let Some(oldest) = members.last() {
                    pipe.zrembyscore(&key, oldest.0, "+inf").ignore();
                }
                pipe.zadd_multiple(&key, &members).ignore();
                written += members.len();
            } else {
                for bar in newest {
                    // One member per open time: the bar's earlier state (a correction) goes first.
                    pipe.zrembyscore(&key, bar.open_time, bar.open_time).ignore();
                    pipe.zadd(&key, wire::encode_cached(bar), bar.open_time).ignore();
                    written += 1;
                }
            }
            // Only a capped interval can hold more than its cap (a day holds at most its bars).
            if cap <= bars_per_day(*interval) {
                pipe.zremrangebyrank(&key, 0, -(cap as isize) - 1).ignore();
            }
            if self.replace || self.expired & interval_bit(*interval) == 0 {
                pipe.expire_at(&key, expire_at).ignore();
            }
        }
        if let Some(forming) = &self.forming {
            let today: Vec<Bar> = forming.iter().filter(|b| b.close_time() > day_start).cloned().collect();
            let value = wire::encode_forming(&today);
            pipe.cmd("SET").arg(self.keys.forming(symbol)).arg(value).arg("EXAT").arg(expire_at).ignore();
        }
        let watermark = wire::encode_watermark(&self.node, self.seq);
        pipe.cmd("SET").arg(self.keys.watermark(symbol)).arg(watermark).arg("EXAT").arg(expire_at).ignore();
        if self.replace || self.expired & SYMBOLS_BIT == 0 {
            pipe.sadd(self.keys.symbols(), symbol).ignore();
            pipe.expire_at(self.keys.symbols(), expire_at).ignore();
        }
        written
    }

    /// The keys this write gives their expiry (added to the symbol's [`ExpiryMask`] once it is queued).
    pub fn expires(&self) -> ExpiryMask {
        let day_start = Interval::D1.align(self.now);
        let bars = self.bars.iter().filter(|b| b.close_time() > day_start);
        bars.fold(SYMBOLS_BIT, |mask, b| mask | interval_bit(b.interval))
    }
}

/// What the next writes send: per symbol, the newest state of each closed bar changed since the last write,
/// and the symbol's forming bars (all of them: their key is written whole). Also which keys have their
/// expiry today.
#[derive(Default)]
pub struct PendingWrites {
    symbols: HashMap<Symbol, Pending>,
    forming: HashMap<Symbol, BTreeMap<Interval, Bar>>,
    expired: HashMap<Symbol, (i64, ExpiryMask)>,
}

/// One symbol's pending closed bars by (interval, open time), and the last message number they cover.
#[derive(Default)]
struct Pending {
    bars: BTreeMap<(Interval, i64), Bar>,
    seq: u64,
}

impl PendingWrites {
    /// Notes the bars of message `seq`; a later state of a bar replaces an earlier one.
    pub fn note(&mut self, symbol: &Symbol, seq: u64, bars: &[Bar]) {
        let pending = self.symbols.entry(symbol.clone()).or_default();
        let forming = self.forming.entry(symbol.clone()).or_default();
        for bar in bars {
            let newer = forming.get(&bar.interval).is_none_or(|f| f.open_time <= bar.open_time);
            if bar.closed {
                pending.bars.insert((bar.interval, bar.open_time), bar.clone());
                if newer {
                    forming.remove(&bar.interval);
                }
            } else if newer {
                forming.insert(bar.interval, bar.clone());
            }
        }
        pending.seq = seq;
    }

    /// Drops what is pending for `symbol` (a rewrite covers it) and takes `forming` as its forming bars.
    pub fn reset(&mut self, symbol: &Symbol, forming: &[Bar]) {
        self.symbols.remove(symbol);
        self.expired.remove(symbol);
        self.forming.insert(symbol.clone(), forming.iter().map(|b| (b.interval, b.clone())).collect());
    }

    pub fn clear(&mut self) {
        self.symbols.clear();
        self.forming.clear();
        self.expired.clear();
    }

    /// Forgets the expiries given (Redis may have restarted empty).
    pub fn forget_expiries(&mut self) {
        self.expired.clear();
    }

    /// Everything pending, one write per symbol.
    pub fn take(&mut self, keys: &Keys, node: &Arc<str>, limits: &CacheLimits, now: i64) -> Vec<CacheWrite> {
        let day_start = Interval::D1.align(now);
        let mut writes = Vec::with_capacity(self.symbols.len());
        for (symbol, p) in self.symbols.drain() {
            let forming = self.forming.get(&symbol).map(|f| f.values().cloned().collect());
            let expired = self.expired.entry(symbol.clone()).or_default();
            if expired.0 != day_start {
                *expired = (day_start, 0);
            }
            let write = CacheWrite {
                keys: keys.clone(),
                symbol,
                bars: p.bars.into_values().collect(),
                forming,
                limits: limits.clone(),
                replace: false,
                node: node.clone(),
                seq: p.seq,
                now,
                expired: expired.1,
            };
            expired.1 |= write.expires();
            writes.push(write);
        }
        writes
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
    pipe.get(keys.forming(symbol));
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
    let forming_key = keys.forming(symbol);
    let mut forming = match replies.pop() {
        Some(Value::Nil) | None => Vec::new(),
        Some(v) => {
            let text: String = redis::from_redis_value(v).map_err(|e| CacheError::Redis(e.to_string()))?;
            wire::decode_forming(&forming_key, symbol, &text)?
        }
    };
    let mut bars = Vec::new();
    for ((reply, key), interval) in replies.into_iter().zip(&set_keys).zip(intervals) {
        // Ascending by score, the open time.
        let members: Vec<String> = redis::from_redis_value(reply).map_err(|e| CacheError::Redis(e.to_string()))?;
        let mut set = Vec::with_capacity(members.len() + 1);
        for member in &members {
            set.push(wire::decode_cached(key, symbol, *interval, member)?);
        }
        // The forming bar after the closed ones; a closed bar of the same open time wins (it is newer).
        if let Some(at) = forming.iter().position(|b| b.interval == *interval) {
            let bar = forming.swap_remove(at);
            match set.last() {
                Some(last) if last.open_time > bar.open_time || (last.open_time == bar.open_time && last.closed) => {}
                Some(last) if last.open_time == bar.open_time => {
                    set.pop();
                    set.push(bar);
                }
                _ => set.push(bar),
            }
        }
        // Capped: the newest `cap`, the forming bar included.
        let cap = limits.cap(*interval);
        bars.extend(set.drain(set.len().saturating_sub(cap)..));
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
        // The closed bar for the set, the forming one for the symbol's forming key.
        assert_eq!((writes[0].seq, writes[0].bars.clone()), (2, vec![forming]));
        assert_eq!(writes[0].forming, Some(vec![next]));
        assert!(pending.take(&Keys::new("cc"), &"node-a".into(), &CacheLimits::default(), 130_000).is_empty());
    }

    /// Commands a write sends, by name.
    fn commands(write: &CacheWrite) -> Vec<String> {
        let mut pipe = redis::pipe();
        write.add_to(&mut pipe);
        pipe.cmd_iter()
            .map(|c| {
                let packed = String::from_utf8_lossy(&c.get_packed_command()).to_string();
                packed.split("\r\n").nth(2).unwrap_or_default().to_owned()
            })
            .collect()
    }

    #[test]
    fn forming_bars_of_every_interval_cost_one_command_and_keys_get_their_expiry_once_a_day() {
        let symbol: Symbol = "BTCUSDT".into();
        let now = 10 * DAY + 3_600_000;
        let mut pending = PendingWrites::default();
        // One trade: a forming bar in each of the 16 intervals, and the 1s bar before it closed.
        let mut closed = Bar::from_trade(symbol.clone(), Interval::S1, now - 2_000, 100.0, 1.0);
        closed.closed = true;
        let mut bars = vec![closed];
        bars.extend(
            Interval::ALL.iter().map(|iv| Bar::from_trade(symbol.clone(), *iv, iv.align(now - 1_000), 100.0, 1.0)),
        );
        pending.note(&symbol, 1, &bars);
        let keys = Keys::new("cc");
        let first = pending.take(&keys, &"n".into(), &CacheLimits::default(), now);
        let sent = commands(&first[0]);
        let count = |name: &str| sent.iter().filter(|c| c.as_str() == name).count();
        assert_eq!((count("SET"), count("ZADD"), count("ZREMRANGEBYSCORE")), (2, 1, 1), "{sent:?}");
        assert_eq!(count("EXPIREAT"), 2, "the 1s set and the symbols set get their expiry: {sent:?}");
        assert_eq!(count("ZREMRANGEBYRANK"), 0, "an uncapped day never overflows: {sent:?}");
        // The next second: the same keys, no expiry again; every forming bar still in the forming key.
        let mut next = bars[1].clone();
        next.closed = true;
        pending.note(&symbol, 2, &[next, Bar::from_trade(symbol.clone(), Interval::S1, now, 101.0, 1.0)]);
        let second = pending.take(&keys, &"n".into(), &CacheLimits::default(), now + 1_000);
        let sent = commands(&second[0]);
        assert!(!sent.iter().any(|c| c == "EXPIREAT" || c == "SADD"), "{sent:?}");
        assert_eq!(second[0].forming.as_ref().map(Vec::len), Some(16));
        // A new day: expiries again.
        pending.note(&symbol, 3, &bars[..1]);
        let tomorrow = pending.take(&keys, &"n".into(), &CacheLimits::default(), now + DAY);
        assert!(commands(&tomorrow[0]).iter().any(|c| c == "EXPIREAT"));
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
            forming: None,
            limits: CacheLimits::new([(Interval::M1, 3)].into()),
            replace: false,
            node: "n".into(),
            seq: 1,
            now,
            expired: 0,
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
            forming: None,
            limits: CacheLimits::default(),
            replace: true,
            node: "n".into(),
            seq: 1,
            now,
            expired: 0,
        };
        assert_eq!(write.add_to(&mut redis::pipe()), 1_440);
    }
}
