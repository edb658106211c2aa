//! Trades from Kite's ticks. Kite sends snapshots (about one a second per instrument), not trades, so
//! trades are derived from consecutive `full` packets of one instrument:
//!
//! - the **cumulative `volume_traded`** is the measure: when it grows past the volume already accounted
//!   for, one trade of the difference is emitted at `last_price`, timed at `last_trade_time` (the
//!   exchange's time of the last trade; the `exchange_timestamp` if that is 0). Trades that happened
//!   between two snapshots become one trade: the volume is exact, the prices in between are not seen.
//! - a **new `last_trade_time` without volume growth** emits one trade of `last_traded_quantity`, which
//!   is then counted as accounted for, so when the cumulative volume catches up it is not counted again.
//! - nothing else is a trade: same time and volume (a quote change), `ltp`/`quote` packets (no trade
//!   time), index packets (indices do not trade), a zero price or quantity.
//! - the **first** packet only sets the baseline, unless the backfill already told us how much of that
//!   trading day's volume its bars hold ([`TradeDeriver::baseline_from_history`], same IST date as the
//!   packet's trade time): then the volume traded between the history request and the first packet
//!   becomes one trade, so the hand-over from history to live trades has neither a gap nor a duplicate.
//! - the state outlives reconnects: after one, the first packet's growth (what traded during the
//!   outage) is one trade, and an unchanged snapshot is none — no trade is emitted twice.
//! - a **smaller** cumulative volume means a new trading day: the new day's volume so far becomes the
//!   baseline and, if the trade time moved on, one trade of it.

use crate::model::{Side, Symbol, Trade};

use super::wire::{Mode, Tick};

#[derive(Debug, Default, Clone)]
pub struct TradeDeriver {
    /// Cumulative day volume already turned into trades (or held by history bars).
    accounted: u64,
    /// The last trade time seen, Unix seconds.
    last_trade_time: u32,
    /// Whether a baseline exists.
    primed: bool,
    /// A trade id: increases with every trade this deriver emits.
    next_id: u64,
    /// From the backfill: (IST day number, volume of that day's bars, open time of the last bar in s).
    history: Option<(u32, u64, u32)>,
}

/// India Standard Time is UTC+05:30 all year (no DST).
const IST_OFFSET_SECS: u32 = 19_800;

/// The IST calendar day of a Unix time in seconds, as a day number.
pub fn ist_day(secs: u32) -> u32 {
    (secs + IST_OFFSET_SECS) / 86_400
}

/// Seconds since the epoch of 2000-01-01: trade times before it are not real.
const MIN_TIME: u32 = 946_684_800;

impl TradeDeriver {
    /// `day_volume` of the instrument's bars for the IST day of `last_bar_secs` (the open time of the
    /// last bar): a first packet of that same day counts only what goes beyond it.
    pub fn baseline_from_history(&mut self, day_volume: u64, last_bar_secs: u32) {
        if !self.primed {
            self.history = Some((ist_day(last_bar_secs), day_volume, last_bar_secs));
        }
    }

    /// The trade `tick` reveals, if any (see the module documentation).
    pub fn observe(&mut self, tick: &Tick, symbol: &Symbol, received_ms: i64) -> Option<Trade> {
        if tick.mode != Mode::Full || tick.index {
            return None;
        }
        let (Some(volume), Some(ltt)) = (tick.volume_traded, tick.last_trade_time) else { return None };
        let volume = u64::from(volume);
        let ltq = u64::from(tick.last_traded_quantity.unwrap_or(0));
        if !self.primed {
            self.primed = true;
            match self.history.take() {
                Some((day, day_volume, secs)) if day == ist_day(ltt) => {
                    self.accounted = day_volume;
                    self.last_trade_time = secs;
                }
                _ => {
                    self.accounted = volume;
                    self.last_trade_time = ltt;
                    return None;
                }
            }
        }
        let newer = ltt > self.last_trade_time;
        let qty = if volume < self.accounted {
            // The counter restarted: a new trading day.
            self.accounted = volume;
            if newer {
                volume
            } else {
                0
            }
        } else if volume > self.accounted {
            let q = volume - self.accounted;
            self.accounted = volume;
            q
        } else if newer {
            self.accounted += ltq;
            ltq
        } else {
            0
        };
        if newer {
            self.last_trade_time = ltt;
        }
        if qty == 0 || !(tick.last_price.is_finite() && tick.last_price > 0.0) {
            return None;
        }
        let at = if ltt >= MIN_TIME { ltt } else { tick.exchange_timestamp.filter(|t| *t >= MIN_TIME)? };
        self.next_id += 1;
        Some(Trade {
            symbol: symbol.clone(),
            price: tick.last_price,
            qty: qty as f64,
            // Kite does not say which side took liquidity.
            side: Side::Unknown,
            exchange_ts: i64::from(at) * 1000,
            received_ts: received_ms,
            id: self.next_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u32 = 1_764_922_500;

    fn full(price: f64, ltq: u32, volume: u32, ltt: u32) -> Tick {
        Tick {
            token: 408_065,
            mode: Mode::Full,
            index: false,
            last_price: price,
            last_traded_quantity: Some(ltq),
            volume_traded: Some(volume),
            ohlc: None,
            last_trade_time: Some(ltt),
            exchange_timestamp: Some(ltt + 1),
            best_bid_ask: None,
        }
    }

    fn run(d: &mut TradeDeriver, ticks: &[Tick]) -> Vec<(f64, f64, i64)> {
        let sym: Symbol = "NSE:INFY".into();
        ticks.iter().filter_map(|t| d.observe(t, &sym, 0)).map(|t| (t.price, t.qty, t.exchange_ts)).collect()
    }

    #[test]
    fn volume_growth_and_new_trade_times_make_trades_once() {
        let mut d = TradeDeriver::default();
        let trades = run(
            &mut d,
            &[
                full(1500.0, 5, 1000, T0),     // baseline
                full(1500.0, 5, 1000, T0),     // same snapshot again
                full(1501.0, 3, 1010, T0 + 1), // 10 traded
                full(1501.5, 3, 1010, T0 + 1), // price moved, no trade (a quote change)
                full(1502.0, 4, 1010, T0 + 2), // a new trade time, volume not updated yet: ltq 4
                full(1502.0, 4, 1014, T0 + 2), // ... which the volume now shows: not counted again
                full(1503.0, 2, 1020, T0 + 3), // 6 more
            ],
        );
        let s = |t: u32| i64::from(t) * 1000;
        assert_eq!(trades, [(1501.0, 10.0, s(T0 + 1)), (1502.0, 4.0, s(T0 + 2)), (1503.0, 6.0, s(T0 + 3))]);
        let total: f64 = trades.iter().map(|t| t.1).sum();
        assert_eq!(total, 20.0, "exactly the volume the cumulative counter grew by");
    }

    #[test]
    fn history_baseline_hands_over_without_gap_or_duplicate() {
        let mut d = TradeDeriver::default();
        // History bars of today hold 1000; the first live packet says 1040: 40 traded in between.
        d.baseline_from_history(1000, T0 - 60);
        assert_eq!(
            run(&mut d, &[full(99.0, 1, 1040, T0), full(99.0, 1, 1040, T0)]),
            [(99.0, 40.0, i64::from(T0) * 1000)]
        );
        // A history baseline never overrides a live one.
        d.baseline_from_history(5, T0);
        assert_eq!(run(&mut d, &[full(99.0, 1, 1041, T0 + 1)]).len(), 1);
        // History of another IST day (yesterday's bars, before today's open): the first packet of
        // today only sets the baseline, it does not turn yesterday's total into a trade.
        let mut d = TradeDeriver::default();
        d.baseline_from_history(1000, T0 - 86_400);
        assert!(run(&mut d, &[full(99.0, 1, 1040, T0)]).is_empty());
        assert_eq!(run(&mut d, &[full(99.0, 1, 1041, T0 + 1)]).len(), 1);
    }

    #[test]
    fn ist_days_start_at_1830_utc() {
        // 2025-12-05 18:29:59Z is 23:59:59 IST; a second later it is the next IST day.
        assert_eq!(ist_day(1_764_959_399) + 1, ist_day(1_764_959_400));
        assert_eq!(ist_day(1_764_959_400), ist_day(1_764_959_400 + 86_399));
    }

    #[test]
    fn reconnects_do_not_repeat_trades() {
        let mut d = TradeDeriver::default();
        run(&mut d, &[full(10.0, 1, 100, T0), full(10.5, 1, 101, T0 + 1)]);
        // The connection drops; on return the first snapshot repeats the last one seen: no trade. Then
        // one that traded during an outage: one trade of what traded meanwhile.
        assert!(run(&mut d, &[full(10.5, 1, 101, T0 + 1)]).is_empty());
        assert_eq!(run(&mut d, &[full(11.0, 2, 150, T0 + 30)]), [(11.0, 49.0, i64::from(T0 + 30) * 1000)]);
    }

    #[test]
    fn what_is_not_a_trade() {
        let mut d = TradeDeriver::default();
        run(&mut d, &[full(10.0, 1, 100, T0)]);
        let mut quote = full(10.0, 1, 200, T0 + 1);
        quote.mode = Mode::Quote;
        let mut index = full(10.0, 1, 300, T0 + 1);
        index.index = true;
        assert!(run(&mut d, &[quote, index]).is_empty(), "quote and index packets");
        assert!(run(&mut d, &[full(0.0, 1, 120, T0 + 2)]).is_empty(), "no price: accounted, not a trade");
        assert_eq!(run(&mut d, &[full(10.0, 1, 121, T0 + 3)]), [(10.0, 1.0, i64::from(T0 + 3) * 1000)]);
        // A new day: the counter restarts at 30 with a later trade time: one trade of 30.
        assert_eq!(run(&mut d, &[full(12.0, 1, 30, T0 + 86_400)]), [(12.0, 30.0, i64::from(T0 + 86_400) * 1000)]);
        // A trade time of 0 falls back to the exchange timestamp; both unusable: no trade.
        let mut t = full(12.0, 1, 31, 0);
        t.exchange_timestamp = Some(T0 + 86_401);
        assert_eq!(run(&mut d, &[t]), [(12.0, 1.0, i64::from(T0 + 86_401) * 1000)]);
        let mut t = full(12.0, 1, 32, 0);
        t.exchange_timestamp = Some(0);
        assert!(run(&mut d, &[t]).is_empty());
    }
}
