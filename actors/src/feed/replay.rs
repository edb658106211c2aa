//! CSV replay: a file of trades or of bars played back as a feed, for demos, tests and backtests.
//!
//! Formats (see docs/FEEDS.md): timestamps are UTC **milliseconds since the epoch** or ISO 8601; a first line
//! starting with `timestamp` is a header; blank lines and `#` comments are skipped.
//! - trades: `timestamp,symbol,price,qty,side` (`side`: buy, sell or empty). Rows of other symbols are
//!   skipped, so one file can feed several symbols.
//! - bars: `timestamp,open,high,low,close,volume` (timestamp = the bar's open time, `bar_interval` long).
//!
//! A malformed row is logged with its line number, counted as malformed, and skipped.
//!
//! The aggregator closes bars by wall clock and drops trades more than `grace_ms` older than that, so
//! old data cannot be replayed *live* with its own timestamps:
//! - `speed = <n>` (×1, ×10, ...) replays live. With `shift_to_now` (the default) each trade is stamped
//!   with the moment it is replayed, so a one-hour file at ×10 makes six minutes of bars starting now;
//!   without it trades keep their timestamps, which only suits files recorded moments ago.
//! - `speed = "max"` loads the whole file at once as history (the backfill), bars for every interval.
//!   With `shift_to_now` the file is moved so that its last row falls at the current time.
//!
//! A bar row replays live as four trades (open, then the nearer extreme, the other, close) spread over
//! the bar, each a quarter of its volume, so the aggregator rebuilds the same OHLCV.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{Connector, FeedError, FeedStatus};
use crate::model::{now_ms, resample, Bar, Interval, Side, Symbol, Trade};
use crate::persist::history::Held;

/// What the CSV holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayKind {
    Trades,
    Bars,
}

/// Replay speed: a multiple of real time, or everything at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Times(f64),
    Max,
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let bad = || serde::de::Error::custom("speed must be a number above 0 (1, 10, ...) or \"max\"");
        match Raw::deserialize(d)? {
            Raw::Text(t) if t.eq_ignore_ascii_case("max") => Ok(Speed::Max),
            Raw::Text(t) => t
                .trim_start_matches(['x', '×'])
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && v.is_finite())
                .map(Speed::Times)
                .ok_or_else(bad),
            Raw::Number(v) if v > 0.0 && v.is_finite() => Ok(Speed::Times(v)),
            Raw::Number(_) => Err(bad()),
        }
    }
}

/// Settings of the replay feed (`[feed.replay]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySettings {
    /// The CSV file.
    pub path: String,
    pub kind: ReplayKind,
    pub speed: Speed,
    pub shift_to_now: bool,
    /// Length of one row of a bars CSV.
    pub bar_interval: Interval,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            path: String::new(),
            kind: ReplayKind::Trades,
            speed: Speed::Times(1.0),
            shift_to_now: true,
            bar_interval: Interval::M1,
        }
    }
}

/// One parsed row: a trade or a bar at `ts`.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    Trade { ts: i64, price: f64, qty: f64, side: Side },
    Bar { ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64 },
}

impl Row {
    fn ts(&self) -> i64 {
        match self {
            Row::Trade { ts, .. } | Row::Bar { ts, .. } => *ts,
        }
    }
}

/// Why a line of the replay file was skipped (logged with its line number and counted as malformed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum BadLine {
    /// `raw` as the file spelled it.
    #[error("{name} {raw:?} is not a number")]
    NotANumber { name: &'static str, raw: String },
    #[error("{name} {value} must be a finite number, not negative")]
    Negative { name: &'static str, value: f64 },
    #[error("expected {expected} columns, found {found}")]
    Columns { expected: usize, found: usize },
    #[error("timestamp {0:?} is neither milliseconds since the epoch nor ISO 8601 (2024-01-01T10:00:00Z)")]
    Timestamp(String),
    #[error("timestamp {0:?} is outside the years -9999 to 9999")]
    OutOfRange(String),
    #[error("side {0:?} is not buy, sell or empty")]
    Side(String),
    #[error("price and qty must be above 0")]
    Zero,
    #[error("bar breaks 0 < low <= open, close <= high")]
    BrokenBar,
}

/// Parses one CSV line. `Ok(None)`: not a row for this symbol (header, comment, blank, other symbol).
fn parse_line(line: &str, kind: ReplayKind, symbol: &str) -> Result<Option<Row>, BadLine> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.to_ascii_lowercase().starts_with("timestamp") {
        return Ok(None);
    }
    let cols: Vec<&str> = line.split(',').map(str::trim).collect();
    let num = |i: usize, name: &'static str| -> Result<f64, BadLine> {
        let v: f64 = cols[i].parse().map_err(|_| BadLine::NotANumber { name, raw: cols[i].to_owned() })?;
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(BadLine::Negative { name, value: v })
        }
    };
    let expected = match kind {
        ReplayKind::Trades => 5,
        ReplayKind::Bars => 6,
    };
    if cols.len() != expected {
        return Err(BadLine::Columns { expected, found: cols.len() });
    }
    let raw = cols[0].trim();
    let ts: i64 = raw
        .parse()
        .ok()
        .or_else(|| crate::model::time::parse_iso(raw))
        .ok_or_else(|| BadLine::Timestamp(raw.to_owned()))?;
    // Rows are aligned to buckets and shifted to now: both overflow near the ends of i64.
    if !crate::model::time::in_range(ts) {
        return Err(BadLine::OutOfRange(raw.to_owned()));
    }
    match kind {
        ReplayKind::Trades => {
            if !cols[1].eq_ignore_ascii_case(symbol) {
                return Ok(None);
            }
            let side = match cols[4].to_ascii_lowercase().as_str() {
                "buy" | "b" => Side::Buy,
                "sell" | "s" => Side::Sell,
                "" | "unknown" => Side::Unknown,
                other => return Err(BadLine::Side(other.to_owned())),
            };
            let (price, qty) = (num(2, "price")?, num(3, "qty")?);
            if price == 0.0 || qty == 0.0 {
                return Err(BadLine::Zero);
            }
            Ok(Some(Row::Trade { ts, price, qty, side }))
        }
        ReplayKind::Bars => {
            let (open, high, low, close, volume) =
                (num(1, "open")?, num(2, "high")?, num(3, "low")?, num(4, "close")?, num(5, "volume")?);
            if !(low <= open.min(close) && open.max(close) <= high && low > 0.0) {
                return Err(BadLine::BrokenBar);
            }
            Ok(Some(Row::Bar { ts, open, high, low, close, volume }))
        }
    }
}

/// A CSV file replayed for one symbol.
pub struct ReplayConnector {
    symbol: Symbol,
    settings: ReplaySettings,
    reader: Option<std::io::Lines<BufReader<File>>>,
    line_no: usize,
    /// Parsed but not yet due.
    pending: Option<Row>,
    /// The first row's time and the wall-clock ms when it was replayed.
    origin: Option<(i64, i64)>,
    rows: u64,
    next_id: u64,
    status: Arc<FeedStatus>,
}

impl ReplayConnector {
    pub fn new(symbol: Symbol, settings: &ReplaySettings) -> ReplayConnector {
        ReplayConnector {
            symbol,
            settings: settings.clone(),
            reader: None,
            line_no: 0,
            pending: None,
            origin: None,
            rows: 0,
            next_id: 1,
            status: Arc::default(),
        }
    }

    fn open(&self) -> Result<std::io::Lines<BufReader<File>>, FeedError> {
        let file = File::open(&self.settings.path)
            .map_err(|e| FeedError::Refused(format!("cannot open replay file {:?}: {e}", self.settings.path)))?;
        Ok(BufReader::with_capacity(64 * 1024, file).lines())
    }

    /// The next row for this symbol; malformed rows are logged and skipped. `None` at the end.
    fn next_row(&mut self) -> Result<Option<Row>, FeedError> {
        let kind = self.settings.kind;
        loop {
            let reader = self.reader.as_mut().ok_or_else(|| FeedError::Disconnected("replay file not open".into()))?;
            let Some(line) = reader.next() else { return Ok(None) };
            self.line_no += 1;
            let line = line.map_err(|e| {
                FeedError::Ended(format!("reading {:?} at line {}: {e}", self.settings.path, self.line_no))
            })?;
            match parse_line(&line, kind, &self.symbol) {
                Ok(Some(row)) => return Ok(Some(row)),
                Ok(None) => {}
                Err(reason) => {
                    self.status.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(symbol = %self.symbol, source = "replay", path = %self.settings.path, line = self.line_no, reason = %reason, "skipped a malformed row");
                }
            }
        }
    }

    fn trade(&mut self, ts: i64, price: f64, qty: f64, side: Side, received_ts: i64) -> Trade {
        self.next_id += 1;
        Trade { symbol: self.symbol.clone(), price, qty, side, exchange_ts: ts, received_ts, id: self.next_id - 1 }
    }

    /// The row as trades at its replay time: itself, or four for a bar (see the module documentation).
    fn expand(&mut self, row: &Row, map: impl Fn(i64) -> i64, now: i64) -> Vec<Trade> {
        match *row {
            Row::Trade { ts, price, qty, side } => vec![self.trade(map(ts), price, qty, side, now)],
            Row::Bar { volume, .. } if volume <= 0.0 => Vec::new(),
            Row::Bar { ts, open, high, low, close, volume } => {
                let len = self.settings.bar_interval.millis();
                let (first, second) = if close >= open { (low, high) } else { (high, low) };
                let points = [(0, open), (len / 3, first), (2 * len / 3, second), (len - 1, close)];
                points.iter().map(|&(dt, p)| self.trade(map(ts + dt), p, volume / 4.0, Side::Unknown, now)).collect()
            }
        }
    }

    /// Every row of the file as bars of `intervals`, for `speed = "max"`.
    fn load_all(&mut self, now: i64, intervals: &[Interval]) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        self.reader = Some(self.open()?);
        let mut rows = Vec::new();
        while let Some(row) = self.next_row()? {
            rows.push(row);
        }
        rows.sort_by_key(Row::ts);
        let Some(last) = rows.last().map(Row::ts) else { return Ok(Vec::new()) };
        let base = match self.settings.kind {
            ReplayKind::Trades => Interval::S1,
            ReplayKind::Bars => self.settings.bar_interval,
        };
        // A bar file moves by whole bars, so its rows stay aligned to their interval.
        let shift = match (self.settings.shift_to_now, self.settings.kind) {
            (false, _) => 0,
            (true, ReplayKind::Trades) => now - last,
            (true, ReplayKind::Bars) => base.align(now) - base.align(last),
        };
        let mut finest: Vec<Bar> = Vec::new();
        for row in &rows {
            let bar = match *row {
                Row::Trade { ts, price, qty, .. } => Bar::from_trade(self.symbol.clone(), base, ts + shift, price, qty),
                Row::Bar { ts, open, high, low, close, volume } => {
                    let mut b = Bar::flat(self.symbol.clone(), base, base.align(ts + shift), open);
                    (b.high, b.low, b.close, b.volume, b.trades) = (high, low, close, volume, u64::from(volume > 0.0));
                    b
                }
            };
            match finest.last_mut() {
                Some(prev) if prev.open_time == bar.open_time => prev.merge(&bar),
                _ => finest.push(bar),
            }
        }
        self.rows = rows.len() as u64;
        let mut out = Vec::new();
        for &iv in intervals.iter().filter(|iv| iv.is_multiple_of(base)) {
            let mut bars = if iv == base { finest.clone() } else { resample(&finest, iv) };
            for b in &mut bars {
                b.closed = b.close_time() <= now;
            }
            out.push((iv, bars));
        }
        Ok(out)
    }
}

impl Connector for ReplayConnector {
    fn source(&self) -> super::FeedSource {
        super::FeedSource::Replay
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    fn attach_status(&mut self, status: Arc<FeedStatus>) {
        self.status = status;
    }

    async fn backfill(
        &mut self,
        now: i64,
        intervals: &[Interval],
        _held: &Held,
    ) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        match self.settings.speed {
            Speed::Max => self.load_all(now, intervals),
            Speed::Times(_) => Ok(Vec::new()),
        }
    }

    async fn connect(&mut self) -> Result<(), FeedError> {
        if self.settings.speed == Speed::Max {
            return Err(FeedError::Ended(format!(
                "replay of {:?} loaded as history: {} rows",
                self.settings.path, self.rows
            )));
        }
        if self.reader.is_none() {
            self.reader = Some(self.open()?);
        }
        Ok(())
    }

    /// The rows that are due, as trades; waits for the next one when none is.
    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        let Speed::Times(speed) = self.settings.speed else {
            return Err(FeedError::Ended("nothing to replay live".into()));
        };
        let mut out = Vec::new();
        loop {
            let row = match self.pending.take() {
                Some(row) => row,
                None => match self.next_row()? {
                    Some(row) => row,
                    None if out.is_empty() => {
                        return Err(FeedError::Ended(format!(
                            "replay of {:?} finished: {} rows",
                            self.settings.path, self.rows
                        )))
                    }
                    None => return Ok(out),
                },
            };
            let now = now_ms();
            let (t0, w0) = *self.origin.get_or_insert((row.ts(), now));
            let replay_at = |ts: i64| w0 + ((ts - t0) as f64 / speed) as i64;
            let due = replay_at(row.ts());
            if due > now {
                self.pending = Some(row);
                if !out.is_empty() {
                    return Ok(out);
                }
                tokio::time::sleep(Duration::from_millis((due - now) as u64)).await;
                continue;
            }
            self.rows += 1;
            let trades = if self.settings.shift_to_now {
                self.expand(&row, |ts| replay_at(ts).min(now), now)
            } else {
                self.expand(&row, |ts| ts, now)
            };
            out.extend(trades);
            if out.len() >= 1_000 {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_names_what_is_wrong() {
        let t = |l| parse_line(l, ReplayKind::Trades, "BTCUSDT");
        assert_eq!(
            t("1700000000000,BTCUSDT,100.5,0.25,sell").unwrap(),
            Some(Row::Trade { ts: 1700000000000, price: 100.5, qty: 0.25, side: Side::Sell })
        );
        assert_eq!(t("timestamp,symbol,price,qty,side").unwrap(), None, "header");
        assert_eq!(t("1700000000000,ETHUSDT,1,1,buy").unwrap(), None, "another symbol");
        assert_eq!(t("# comment").unwrap(), None);
        // ISO 8601 as well as epoch milliseconds; anything else is named.
        assert_eq!(
            t("2023-11-14T22:13:20Z,BTCUSDT,1,1,buy").unwrap(),
            Some(Row::Trade { ts: 1_700_000_000_000, price: 1.0, qty: 1.0, side: Side::Buy })
        );
        assert!(t("yesterday,BTCUSDT,1,1,buy").unwrap_err().to_string().contains("ISO 8601"));
        assert!(t("1,BTCUSDT,abc,1,buy").unwrap_err().to_string().contains("price"));
        assert!(t("1,BTCUSDT,1,1").unwrap_err().to_string().contains("columns"));
        assert!(t("1,BTCUSDT,1,1,hold").unwrap_err().to_string().contains("side"));
        let b = |l| parse_line(l, ReplayKind::Bars, "X");
        assert!(matches!(b("60000,10,12,9,11,5").unwrap(), Some(Row::Bar { high, .. }) if high == 12.0));
        assert!(b("60000,10,9,12,11,5").unwrap_err().to_string().contains("low"));
    }

    /// `inf`, `NaN` and `1e309` parse as floats; none may reach a bar (a volume of inf cannot be journaled).
    #[test]
    fn refuses_values_that_would_poison_bars() {
        let t = |l: &str| parse_line(l, ReplayKind::Trades, "BTCUSDT");
        for bad in ["inf", "NaN", "1e309", "-1", "0"] {
            assert!(t(&format!("1,BTCUSDT,{bad},1,buy")).is_err(), "price {bad}");
            assert!(t(&format!("1,BTCUSDT,1,{bad},buy")).is_err(), "qty {bad}");
        }
        let b = |l: &str| parse_line(l, ReplayKind::Bars, "X");
        for bad in ["inf", "NaN", "1e309", "-1"] {
            assert!(b(&format!("60000,10,12,9,11,{bad}")).is_err(), "volume {bad}");
            assert!(b(&format!("60000,10,{bad},9,11,5")).is_err(), "high {bad}");
        }
    }

    #[test]
    fn speed_accepts_numbers_and_max() {
        #[derive(Deserialize)]
        struct S {
            speed: Speed,
        }
        let s = |v: &str| serde_json::from_str::<S>(&format!("{{\"speed\":{v}}}")).map(|s| s.speed);
        assert_eq!(s("10").unwrap(), Speed::Times(10.0));
        assert_eq!(s("\"max\"").unwrap(), Speed::Max);
        assert_eq!(s("\"x10\"").unwrap(), Speed::Times(10.0));
        assert!(s("0").is_err() && s("\"fast\"").is_err());
    }

    #[actix_rt::test]
    async fn max_speed_loads_the_file_as_history_ending_now() {
        let dir = std::env::temp_dir().join(format!("candlecast-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        std::fs::write(&path, "timestamp,symbol,price,qty,side\n0,BTCUSDT,10,1,buy\n30000,BTCUSDT,12,1,sell\nbad row\n61000,BTCUSDT,11,2,buy\n").unwrap();
        let settings = ReplaySettings { path: path.display().to_string(), speed: Speed::Max, ..Default::default() };
        let mut c = ReplayConnector::new("BTCUSDT".into(), &settings);
        let now = 1_700_000_000_000;
        let bars = c.backfill(now, &[Interval::S1, Interval::M1], &Held::nothing()).await.unwrap();
        assert_eq!(c.status.malformed.load(Ordering::Relaxed), 1, "line 4 is counted");
        let m1 = &bars[1].1;
        assert_eq!(m1.iter().map(|b| b.trades).sum::<u64>(), 3);
        assert_eq!(m1.last().unwrap().close, 11.0);
        assert!(m1.last().unwrap().open_time <= now && !m1.last().unwrap().closed, "the last row falls now");
        assert!(matches!(c.connect().await, Err(FeedError::Ended(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Found by fuzzing (fuzz/regressions/): a row at i64::MIN overflowed `Interval::align` in `load_all`.
    #[test]
    fn a_row_at_an_absurd_time_is_malformed_not_a_panic() {
        let input = include_bytes!("../../../fuzz/regressions/replay_csv-timestamp-min.bin");
        let line = std::str::from_utf8(&input[1..]).unwrap();
        assert!(parse_line(line, ReplayKind::Trades, "BTCUSDT").is_err());
    }
}
