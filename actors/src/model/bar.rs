//! OHLCV bars and the one fold that builds them.
//!
//! Every way candlecast makes a bar (from trades, from finer bars, from a CSV row) goes through
//! [`Bar::apply_trade`] or [`Bar::merge`], so the invariants below are kept in one place:
//! `low <= min(open, close)`, `max(open, close) <= high`, `volume >= 0`.

use serde::{Deserialize, Serialize};

use super::{Interval, Price, Symbol};

/// One bar of one symbol and interval. `open_time` is UTC milliseconds, aligned to the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub symbol: Symbol,
    pub interval: Interval,
    pub open_time: i64,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: f64,
    /// Number of trades folded in; 0 for a flat bar.
    pub trades: u64,
    /// The bucket has ended; the bar changes again only through a correction.
    pub closed: bool,
}

impl Bar {
    /// A bar holding exactly one trade.
    pub fn from_trade(symbol: Symbol, interval: Interval, ts: i64, price: Price, qty: f64) -> Bar {
        Bar {
            symbol,
            interval,
            open_time: interval.align(ts),
            open: price,
            high: price,
            low: price,
            close: price,
            volume: qty,
            trades: 1,
            closed: false,
        }
    }

    /// A bucket without trades, drawn at the previous close so the chart has no hole.
    /// Clients tell it by `trades == 0`; it contributes nothing when merged into a coarser bar. It keeps
    /// the close known when it opened: a correction of an earlier bar does not repaint later flat bars.
    pub fn flat(symbol: Symbol, interval: Interval, open_time: i64, last_close: Price) -> Bar {
        Bar {
            symbol,
            interval,
            open_time,
            open: last_close,
            high: last_close,
            low: last_close,
            close: last_close,
            volume: 0.0,
            trades: 0,
            closed: false,
        }
    }

    /// Whether no trade has been folded into this bar.
    pub fn is_flat(&self) -> bool {
        self.trades == 0
    }

    /// Open time of the next bucket.
    pub fn close_time(&self) -> i64 {
        match self.interval {
            // Week buckets are all the same length too, but go through align() to stay Monday-based.
            Interval::W1 => self.interval.align(self.open_time) + Interval::W1.millis(),
            iv => self.open_time + iv.millis(),
        }
    }

    /// Folds one trade in. A flat bar becomes the trade's bar: its carried price was never traded.
    #[inline]
    pub fn apply_trade(&mut self, price: Price, qty: f64) {
        if self.trades == 0 {
            self.open = price;
            self.high = price;
            self.low = price;
            self.volume = 0.0;
        } else {
            // Comparisons instead of f64::max/min: NaN never reaches here (trades are validated).
            if price > self.high {
                self.high = price;
            }
            if price < self.low {
                self.low = price;
            }
        }
        self.close = price;
        self.volume += qty;
        self.trades += 1;
    }

    /// Folds a trade that may arrive out of time order: `open` and `close` follow exchange time (`span`
    /// remembers the first and last trade times seen), `high`, `low`, `volume` and `trades` do not care.
    #[inline]
    pub fn apply_trade_at(&mut self, span: &mut TradeSpan, ts: i64, price: Price, qty: f64) {
        if self.trades == 0 {
            *span = TradeSpan { first: ts, last: ts };
            self.apply_trade(price, qty);
            return;
        }
        let close = self.close;
        self.apply_trade(price, qty);
        if ts >= span.last {
            span.last = ts;
        } else {
            self.close = close;
        }
        if ts < span.first {
            span.first = ts;
            self.open = price;
        }
    }

    /// Folds a finer bar of the same bucket in, in time order. Flat finer bars add nothing.
    pub fn merge(&mut self, finer: &Bar) {
        if finer.trades == 0 {
            return;
        }
        if self.trades == 0 {
            self.open = finer.open;
            self.high = finer.high;
            self.low = finer.low;
            self.volume = 0.0;
        } else {
            if finer.high > self.high {
                self.high = finer.high;
            }
            if finer.low < self.low {
                self.low = finer.low;
            }
        }
        self.close = finer.close;
        self.volume += finer.volume;
        self.trades += finer.trades;
    }

    /// Whether the OHLCV invariants hold (used by tests and by input validation of uploaded bars).
    pub fn is_consistent(&self) -> bool {
        self.invalid_reason().is_none()
    }

    /// Why this bar must not be folded, published or stored, if it must not: every boundary that takes a
    /// bar from outside (upserts, peers, the journal, the store) asks this one question, so a value that
    /// cannot be written back (`inf` becomes `null` in JSON) never gets past the first of them.
    pub fn invalid_reason(&self) -> Option<&'static str> {
        let prices = [self.open, self.high, self.low, self.close];
        if !prices.iter().all(|v| v.is_finite() && *v > 0.0) {
            return Some("prices must be finite numbers above 0");
        }
        if !(self.volume.is_finite() && self.volume >= 0.0) {
            return Some("volume must be a finite number, 0 or more");
        }
        if !(self.low <= self.open && self.low <= self.close && self.open <= self.high && self.close <= self.high) {
            return Some("needs low <= open, close <= high");
        }
        // Checked before aligning: align overflows near the ends of i64 (a peer's or a journal's bar).
        if !super::time::in_range(self.open_time) {
            return Some("open time is outside the years -9999 to 9999");
        }
        // Not `interval.align`: an exchange session's bars start at its open (an NSE hour at 09:15 IST).
        if !super::Calendar::is_plausible_open(self.interval, self.open_time) {
            return Some("open time is not aligned to the interval");
        }
        None
    }
}

/// Exchange times of the first and last trade folded into a bar, kept beside it (not in it) by the
/// aggregator so that a late trade moves `open`/`close` only when it is earlier/later than those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeSpan {
    pub first: i64,
    pub last: i64,
}

impl TradeSpan {
    /// The span of a bar without trades; `apply_trade_at` replaces it on the first trade.
    pub const EMPTY: TradeSpan = TradeSpan { first: i64::MAX, last: i64::MIN };
    /// For a bar whose span was forgotten: a late trade then changes neither open nor close.
    pub const UNKNOWN: TradeSpan = TradeSpan { first: i64::MIN, last: i64::MAX };
}

/// Cuts time-ordered finer bars into bars of `interval` (which must be a multiple of theirs).
/// Used for the simulator's backfill and, in tests, to check the live aggregator against.
pub fn resample(finer: &[Bar], interval: Interval) -> Vec<Bar> {
    resample_on(&super::Calendar::Continuous, finer, interval)
}

/// [`resample`] into the buckets of `calendar` (an exchange's session hours, its trading days).
pub fn resample_on(calendar: &super::Calendar, finer: &[Bar], interval: Interval) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for bar in finer {
        debug_assert!(interval.is_multiple_of(bar.interval));
        let open_time = calendar.align(interval, bar.open_time);
        match out.last_mut() {
            Some(last) if last.open_time == open_time => last.merge(bar),
            _ => {
                let mut next = Bar::flat(bar.symbol.clone(), interval, open_time, bar.open);
                if bar.is_flat() {
                    next.open = bar.close;
                    next.high = bar.close;
                    next.low = bar.close;
                    next.close = bar.close;
                }
                next.merge(bar);
                out.push(next);
            }
        }
    }
    // Only a bucket whose last finer bar is closed and complete is closed.
    for bar in &mut out {
        bar.closed = true;
    }
    if let (Some(last_out), Some(last_in)) = (out.last_mut(), finer.last()) {
        let end = |b: &Bar| calendar.bucket_end(b.interval, b.open_time);
        last_out.closed = last_in.closed && end(last_in) == end(last_out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sym() -> Symbol {
        "BTCUSDT".into()
    }

    #[test]
    fn flat_bar_becomes_the_first_trade() {
        let mut bar = Bar::flat(sym(), Interval::M1, 60_000, 100.0);
        assert!(bar.is_flat() && bar.is_consistent());
        bar.apply_trade(90.0, 2.0);
        assert_eq!((bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades), (90.0, 90.0, 90.0, 90.0, 2.0, 1));
        bar.apply_trade(95.0, 1.0);
        assert_eq!((bar.open, bar.high, bar.low, bar.close, bar.volume), (90.0, 95.0, 90.0, 95.0, 3.0));
    }

    #[test]
    fn poison_values_are_named() {
        let good = Bar::from_trade(sym(), Interval::M1, 60_000, 10.0, 1.0);
        assert_eq!(good.invalid_reason(), None);
        let cases: [fn(&mut Bar); 6] = [
            |b| b.volume = f64::INFINITY,
            |b| b.volume = -1.0,
            |b| b.volume = f64::NAN,
            |b| b.low = -1.0,
            |b| b.high = f64::INFINITY,
            |b| b.open_time += 1,
        ];
        for poison in cases {
            let mut bar = good.clone();
            poison(&mut bar);
            assert!(bar.invalid_reason().is_some() && !bar.is_consistent(), "{bar:?}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let bar = Bar::from_trade(sym(), Interval::H1, 3_600_123, 10.5, 1.0);
        let json = serde_json::to_string(&bar).unwrap();
        assert!(json.contains("\"interval\":\"1h\""), "{json}");
        assert_eq!(serde_json::from_str::<Bar>(&json).unwrap(), bar);
    }

    proptest! {
        #[test]
        fn invariants_hold_for_any_trades(trades in prop::collection::vec((0.0001f64..1e7, 0.0f64..1e6), 1..200)) {
            let mut bar = Bar::from_trade(sym(), Interval::M5, 0, trades[0].0, trades[0].1.max(1e-9));
            for (p, q) in &trades[1..] {
                bar.apply_trade(*p, *q);
                prop_assert!(bar.is_consistent(), "{:?}", bar);
            }
            prop_assert_eq!(bar.trades as usize, trades.len());
        }

        #[test]
        fn merging_halves_equals_folding_all(trades in prop::collection::vec((1f64..1000.0, 0.1f64..10.0), 2..100), cut in 1usize..99) {
            let cut = cut.min(trades.len() - 1);
            let fold = |ts: &[(f64, f64)]| {
                let mut b = Bar::flat(sym(), Interval::M1, 0, 1.0);
                for (p, q) in ts { b.apply_trade(*p, *q); }
                b
            };
            let whole = fold(&trades);
            let mut merged = Bar::flat(sym(), Interval::M1, 0, 1.0);
            merged.merge(&fold(&trades[..cut]));
            merged.merge(&Bar::flat(sym(), Interval::M1, 0, 5.0));
            merged.merge(&fold(&trades[cut..]));
            prop_assert_eq!((merged.open, merged.high, merged.low, merged.close, merged.trades), (whole.open, whole.high, whole.low, whole.close, whole.trades));
            prop_assert!((merged.volume - whole.volume).abs() <= 1e-9 * whole.volume);
        }
    }
}
