//! A single executed trade, as every feed normalises it.

use serde::{Deserialize, Serialize};

use super::{Price, Symbol};

/// Which side took liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
    /// The source did not say (CSV replay, some scripts).
    #[default]
    Unknown,
}

/// One trade. Times are UTC milliseconds: `exchange_ts` when the venue executed it (it decides the bar),
/// `received_ts` when candlecast received it (it measures feed latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub symbol: Symbol,
    pub price: Price,
    pub qty: f64,
    pub side: Side,
    pub exchange_ts: i64,
    pub received_ts: i64,
    /// The venue's trade id where it has one; feeds use it to detect gaps.
    pub id: u64,
}

/// The largest price a trade may have: far above any real one, and low enough that sums stay finite.
pub const MAX_PRICE: f64 = 1e12;
/// The largest quantity a trade may have: a bar's volume sums them, and two of 1e308 make it infinite.
pub const MAX_QTY: f64 = 1e12;

/// Why a trade was refused before it reached an aggregator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidTrade {
    #[error("price must be a finite number above 0 and at most 1e12, got {0:e}")]
    Price(f64),
    #[error("quantity must be a finite number above 0 and at most 1e12, got {0:e}")]
    Qty(f64),
}

impl Trade {
    /// Checks what the OHLCV invariants depend on: finite price and quantity above 0 and bounded, so no
    /// bar's volume overflows to infinity.
    pub fn validate(&self) -> Result<(), InvalidTrade> {
        if !(self.price.is_finite() && self.price > 0.0 && self.price <= MAX_PRICE) {
            return Err(InvalidTrade::Price(self.price));
        }
        if !(self.qty.is_finite() && self.qty > 0.0 && self.qty <= MAX_QTY) {
            return Err(InvalidTrade::Qty(self.qty));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(price: f64, qty: f64) -> Trade {
        Trade { symbol: "BTCUSDT".into(), price, qty, side: Side::Buy, exchange_ts: 1, received_ts: 2, id: 3 }
    }

    #[test]
    fn rejects_what_would_break_bars() {
        assert!(trade(1.0, 0.5).validate().is_ok());
        for (p, q) in [
            (0.0, 1.0),
            (-1.0, 1.0),
            (f64::NAN, 1.0),
            (f64::INFINITY, 1.0),
            (1.0, 0.0),
            (1.0, -2.0),
            (1.0, f64::NAN),
            (1.0, 1e308),
            (1e13, 1.0),
        ] {
            assert!(trade(p, q).validate().is_err(), "{p} {q}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let t = trade(101.5, 0.25);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"side\":\"buy\""), "{json}");
        assert_eq!(serde_json::from_str::<Trade>(&json).unwrap(), t);
    }
}
