//! The simulated account: cash, one position, fills with fees and slippage.
//!
//! Every entry uses the whole equity: `units = equity / (fill · (1 + fee))`, so a long entry leaves
//! exactly zero cash and profits compound. A fill buys at `price · (1 + slippage)` and sells at
//! `price · (1 - slippage)`; the fee is `fee · |units · fill|` on every fill, entry and exit.

use serde::{Deserialize, Serialize};

use super::BacktestConfig;
use crate::strategy::strategies::SignalSide;

/// Which way a closed trade was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeSide {
    Long,
    Short,
}

/// One closed round trip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TradeRecord {
    pub side: TradeSide,
    /// `open_time` of the bars whose open or close the fills used.
    pub entry_time: i64,
    pub exit_time: i64,
    /// Fill prices, slippage included.
    pub entry_price: f64,
    pub exit_price: f64,
    pub units: f64,
    /// Net of both fees.
    pub pnl: f64,
    pub return_pct: f64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    time: i64,
    price: f64,
    equity_before: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Book {
    fee: f64,
    slippage: f64,
    allow_short: bool,
    cash: f64,
    /// +1 long, -1 short, 0 flat; `units` is the size (always >= 0).
    dir: f64,
    units: f64,
    entry: Entry,
}

impl Book {
    pub fn new(config: &BacktestConfig) -> Self {
        Book {
            fee: config.fee_bps / 10_000.0,
            slippage: config.slippage_bps / 10_000.0,
            allow_short: config.allow_short,
            cash: config.initial_capital,
            dir: 0.0,
            units: 0.0,
            entry: Entry { time: 0, price: 0.0, equity_before: 0.0 },
        }
    }

    #[inline]
    pub fn in_market(&self) -> bool {
        self.dir != 0.0
    }

    /// Cash plus the position marked at `price`.
    #[inline]
    pub fn equity(&self, price: f64) -> f64 {
        self.cash + self.dir * self.units * price
    }

    /// Moves to the position a signal asks for, filling at `price`; a closed trade is returned.
    #[inline]
    pub fn execute(&mut self, side: SignalSide, price: f64, time: i64) -> Option<TradeRecord> {
        let (target, opposite) = match side {
            SignalSide::Buy => (1.0, -1.0),
            SignalSide::Sell => (if self.allow_short { -1.0 } else { 0.0 }, 1.0),
        };
        if self.dir == target {
            return None;
        }
        let closed = if self.dir == opposite { self.close(price, time) } else { None };
        if target != 0.0 {
            self.open(target, price, time);
        }
        closed
    }

    fn open(&mut self, dir: f64, price: f64, time: i64) {
        let equity = self.cash;
        if equity <= 0.0 {
            return;
        }
        let fill = price * (1.0 + dir * self.slippage);
        let units = equity / (fill * (1.0 + self.fee));
        self.cash -= dir * units * fill + units * fill * self.fee;
        self.dir = dir;
        self.units = units;
        self.entry = Entry { time, price: fill, equity_before: equity };
    }

    /// Closes the position at `price`.
    pub fn close(&mut self, price: f64, time: i64) -> Option<TradeRecord> {
        if self.dir == 0.0 {
            return None;
        }
        let fill = price * (1.0 - self.dir * self.slippage);
        self.cash += self.dir * self.units * fill - self.units * fill * self.fee;
        let pnl = self.cash - self.entry.equity_before;
        let record = TradeRecord {
            side: if self.dir > 0.0 { TradeSide::Long } else { TradeSide::Short },
            entry_time: self.entry.time,
            exit_time: time,
            entry_price: self.entry.price,
            exit_price: fill,
            units: self.units,
            pnl,
            return_pct: pnl / self.entry.equity_before * 100.0,
        };
        self.dir = 0.0;
        self.units = 0.0;
        Some(record)
    }
}
