//! What scripts pushed that is not a bar: executed trades per symbol (for `GET /api/trades` and chart
//! markers) and the indicator columns of market-data rows (served beside the bars in
//! `/api/historical`). Both bounded per symbol; the oldest entries go first.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::RwLock;

use candlecast_actors::model::Interval;
use serde_json::{Map, Value};

use super::csv::ExecutedTrade;

/// Executed trades by symbol, each list in arrival order and at most `cap` long, for at most
/// `max_symbols` symbols: a trade row may name any valid symbol without creating it, so without that
/// bound `cap` × symbols would grow without end (in memory and in the store).
pub struct TradeStore {
    cap: usize,
    max_symbols: usize,
    by_symbol: RwLock<HashMap<String, VecDeque<ExecutedTrade>>>,
}

impl TradeStore {
    pub fn new(cap: usize, max_symbols: usize) -> TradeStore {
        TradeStore { cap: cap.max(1), max_symbols, by_symbol: RwLock::default() }
    }

    /// Which of `rows` fit the symbol budget: every row of a symbol already kept, and of new symbols while
    /// there is room. Kept rows still need [`TradeStore::add`].
    pub fn admit(&self, rows: &[ExecutedTrade]) -> Vec<bool> {
        let map = self.by_symbol.read().unwrap_or_else(|e| e.into_inner());
        let mut new_symbols: HashSet<&str> = HashSet::new();
        rows.iter()
            .map(|row| {
                if map.contains_key(&row.symbol) || new_symbols.contains(row.symbol.as_str()) {
                    return true;
                }
                let room = map.len() + new_symbols.len() < self.max_symbols;
                if room {
                    new_symbols.insert(row.symbol.as_str());
                }
                room
            })
            .collect()
    }

    pub fn add(&self, trades: &[ExecutedTrade]) {
        let mut map = self.by_symbol.write().unwrap_or_else(|e| e.into_inner());
        for t in trades {
            let list = map.entry(t.symbol.clone()).or_default();
            if list.len() == self.cap {
                list.pop_front();
            }
            list.push_back(t.clone());
        }
    }

    /// The newest `limit` trades of `symbol` (or of every symbol), oldest first by timestamp.
    pub fn recent(&self, symbol: Option<&str>, limit: usize) -> Vec<ExecutedTrade> {
        let map = self.by_symbol.read().unwrap_or_else(|e| e.into_inner());
        // References are sorted and only the `limit` kept are cloned: every symbol's trades together may
        // be a million.
        let mut refs: Vec<&ExecutedTrade> = match symbol {
            Some(s) => map.get(s).map(|l| l.iter().collect()).unwrap_or_default(),
            None => map.values().flatten().collect(),
        };
        // Stable: trades of one timestamp keep their arrival order.
        refs.sort_by_key(|t| t.timestamp);
        let skip = refs.len().saturating_sub(limit);
        refs[skip..].iter().map(|t| (*t).clone()).collect()
    }
}

type Values = BTreeMap<String, f64>;

/// Indicator values by symbol, interval and bar open time; at most `cap` bars per symbol and interval,
/// and at most `max_values` values in all (each costs its name and a map slot, ~64 bytes: without a total
/// a script could fill bars × symbols × intervals × columns).
pub struct IndicatorStore {
    cap: usize,
    max_values: usize,
    values: RwLock<Indicators>,
}

#[derive(Default)]
struct Indicators {
    by_bar: HashMap<(String, Interval), BTreeMap<i64, Values>>,
    /// Values held, over every bar.
    count: usize,
}

impl IndicatorStore {
    pub fn new(cap: usize, max_values: usize) -> IndicatorStore {
        IndicatorStore { cap: cap.max(1), max_values, values: RwLock::default() }
    }

    /// Values that may still be stored.
    pub fn remaining(&self) -> usize {
        let map = self.values.read().unwrap_or_else(|e| e.into_inner());
        self.max_values.saturating_sub(map.count)
    }

    /// Sets the values of one bar (replacing what an earlier row gave it); false (nothing stored) when
    /// they do not fit in `max_values`.
    pub fn set(&self, symbol: &str, interval: Interval, open_time: i64, values: Values) -> bool {
        if values.is_empty() {
            return true;
        }
        let mut map = self.values.write().unwrap_or_else(|e| e.into_inner());
        let Indicators { by_bar, count } = &mut *map;
        let bars = by_bar.entry((symbol.to_owned(), interval)).or_default();
        let replaced = bars.get(&open_time).map_or(0, BTreeMap::len);
        if *count - replaced + values.len() > self.max_values {
            return false;
        }
        *count = *count - replaced + values.len();
        bars.insert(open_time, values);
        while bars.len() > self.cap {
            if let Some((_, dropped)) = bars.pop_first() {
                *count -= dropped.len();
            }
        }
        true
    }

    /// Adds `"indicators":{...}` to each bar object of a `/api/historical` reply (its `data` array) that
    /// has values. `None` when the symbol and interval have none, so other replies stay as they are.
    pub fn decorate(&self, symbol: &str, interval: Interval, reply: &impl serde::Serialize) -> Option<Value> {
        let map = self.values.read().unwrap_or_else(|e| e.into_inner());
        let bars = map.by_bar.get(&(symbol.to_owned(), interval))?;
        let mut reply = serde_json::to_value(reply).ok()?;
        for bar in reply.get_mut("data")?.as_array_mut()? {
            let Some(values) = bar.get("timestamp").and_then(Value::as_i64).and_then(|t| bars.get(&t)) else {
                continue;
            };
            let object: Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            if let Some(bar) = bar.as_object_mut() {
                bar.insert("indicators".into(), Value::Object(object));
            }
        }
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trade(symbol: &str, timestamp: i64) -> ExecutedTrade {
        ExecutedTrade {
            timestamp,
            symbol: symbol.into(),
            side: "BUY",
            quantity: 1.0,
            price: 1.0,
            profit_loss: None,
            strategy: String::new(),
        }
    }

    #[test]
    fn trades_are_bounded_per_symbol_and_sorted() {
        let s = TradeStore::new(3, 10);
        s.add(&[trade("A", 5), trade("A", 1), trade("B", 3), trade("A", 7), trade("A", 9)]);
        let a: Vec<i64> = s.recent(Some("A"), 10).iter().map(|t| t.timestamp).collect();
        assert_eq!(a, [1, 7, 9], "the oldest arrival (5) went first");
        let all: Vec<i64> = s.recent(None, 2).iter().map(|t| t.timestamp).collect();
        assert_eq!(all, [7, 9]);
        assert!(s.recent(Some("C"), 10).is_empty());
    }

    #[test]
    fn trades_name_at_most_max_symbols_symbols() {
        let s = TradeStore::new(3, 2);
        s.add(&[trade("A", 1)]);
        let rows = [trade("B", 2), trade("C", 3), trade("A", 4), trade("B", 5), trade("D", 6)];
        let keep = s.admit(&rows);
        assert_eq!(keep, [true, false, true, true, false], "C and D would be a third and fourth symbol");
        s.add(&rows[..1]);
        assert_eq!(s.admit(&[trade("E", 7)]), [false], "still full");
    }

    #[test]
    fn indicators_decorate_only_their_bars() {
        let s = IndicatorStore::new(2, 100);
        s.set("A", Interval::M1, 60_000, BTreeMap::from([("rsi".into(), 50.0)]));
        s.set("A", Interval::M1, 120_000, BTreeMap::from([("rsi".into(), 55.0)]));
        s.set("A", Interval::M1, 180_000, BTreeMap::from([("rsi".into(), 60.0)]));
        let reply =
            json!({"type":"historical","data":[{"timestamp":60_000},{"timestamp":120_000},{"timestamp":180_000}]});
        let out = s.decorate("A", Interval::M1, &reply).unwrap();
        assert_eq!(out["data"][0].get("indicators"), None, "dropped: over the cap");
        assert_eq!(out["data"][2]["indicators"], json!({"rsi": 60.0}));
        assert!(s.decorate("A", Interval::M5, &reply).is_none());
        assert!(s.decorate("B", Interval::M1, &reply).is_none());
    }

    #[test]
    fn indicator_values_are_capped_in_total() {
        let s = IndicatorStore::new(10, 3);
        let two = || BTreeMap::from([("a".into(), 1.0), ("b".into(), 2.0)]);
        assert!(s.set("A", Interval::M1, 60_000, two()));
        assert!(!s.set("B", Interval::M1, 60_000, two()), "4 values would be over 3");
        assert!(s.set("A", Interval::M1, 60_000, two()), "a replacement frees what it replaces");
        assert_eq!(s.remaining(), 1);
    }
}
