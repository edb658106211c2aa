//! Today's bars of every symbol and interval in Redis (key layout in [`super::wire`]), so a node that
//! starts or restarts serves today's chart at once. Each interval keeps at most the bars an aggregator
//! holds in memory ([`window`]: the newest closed bars and the forming one): more could not be used, and a follower would
//! republish the surplus on every resync. Written only by the node running the symbol's feed:
//! closed bars and corrections as they happen, forming bars at most every `cache_flush_ms`, everything
//! again from memory after a reconnect. Each write carries the watermark of the messages it covers.

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

/// Bars cached per interval: an aggregator's closed history plus its forming bar.
pub fn window(settings: &AggregatorSettings) -> usize {
    settings.history_bars + 1
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
    /// Bars kept per interval (the newest): what an aggregator holds in memory.
    pub cap: usize,
    /// The bars are everything of today (a rewrite from memory): they replace the sets' contents.
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
            let newest = bars.iter().rev().take(self.cap);
            if self.replace {
                let members: Vec<(i64, String)> = newest.map(|b| (b.open_time, wire::encode_cached(b))).collect();
                pipe.del(&key).ignore();
                pipe.zadd_multiple(&key, &members).ignore();
                written += members.len();
            } else {
                for bar in newest {
                    // One member per open time: the bar's earlier state goes first.
                    pipe.zrembyscore(&key, bar.open_time, bar.open_time).ignore();
                    pipe.zadd(&key, wire::encode_cached(bar), bar.open_time).ignore();
                    written += 1;
                }
                pipe.zremrangebyrank(&key, 0, -(self.cap as isize) - 1).ignore();
            }
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
    pub fn take(&mut self, keys: &Keys, node: &Arc<str>, cap: usize, now: i64) -> Vec<CacheWrite> {
        self.symbols
            .drain()
            .map(|(symbol, p)| CacheWrite {
                keys: keys.clone(),
                symbol,
                bars: p.bars.into_values().collect(),
                cap,
                replace: false,
                node: node.clone(),
                seq: p.seq,
                now,
            })
            .collect()
    }
}

/// Reads today's bars of `symbol` for `intervals` (the newest `cap` of each) and the watermark in one
/// transaction, so the watermark matches the bars. Bars come oldest first per interval.
pub async fn read(
    link: &RedisLink,
    keys: &Keys,
    symbol: &Symbol,
    intervals: &[Interval],
    cap: usize,
    now: i64,
) -> Result<Snapshot, CacheError> {
    let day_start = Interval::D1.align(now);
    let set_keys: Vec<String> = intervals.iter().map(|iv| keys.today(day_start, symbol, *iv)).collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in &set_keys {
        pipe.zrange(key, -(cap.max(1) as isize), -1);
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
        let writes = pending.take(&Keys::new("cc"), &"node-a".into(), 100, 130_000);
        assert_eq!(writes.len(), 1);
        assert_eq!((writes[0].seq, writes[0].bars.clone()), (2, vec![forming, next]));
        assert!(pending.take(&Keys::new("cc"), &"node-a".into(), 100, 130_000).is_empty());
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
            cap: 3,
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
}
