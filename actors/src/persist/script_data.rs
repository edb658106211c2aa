//! What scripts pushed, besides bars, that must outlive the process: the symbols they created (so they
//! are known again at start, before any client subscribes) and the executed trades they reported (for
//! `GET /api/trades` and the chart markers). Only the embedded store keeps them; other stores answer
//! with nothing (see [`Store::keeps_script_data`](super::Store::keeps_script_data)).
//!
//! Three redb tables beside the bars:
//! - `script_symbols`: symbol → wall-clock ms it was created.
//! - `executed_trades`: (symbol, trade time, sequence) → (side, quantity, price, profit/loss, strategy);
//!   the sequence keeps two trades of one time apart and in arrival order.
//! - `script_meta`: `trade_seq` → the last sequence given.
//!
//! Bounded like the memory they are restored into: at most `keep_per_symbol` trades per symbol (the
//! newest by trade time; older ones are deleted in the transaction that adds newer ones).

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// (symbol) → created, wall-clock ms.
pub(super) const SYMBOLS: TableDefinition<&str, i64> = TableDefinition::new("script_symbols");
/// (symbol, trade time ms, sequence).
type TradeKey<'a> = (&'a str, i64, u64);
/// (side, quantity, price, profit/loss, strategy).
type TradeValue<'a> = (&'a str, f64, f64, Option<f64>, &'a str);
pub(super) const TRADES: TableDefinition<TradeKey, TradeValue> = TableDefinition::new("executed_trades");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("script_meta");

/// An executed trade a script reported, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredTrade {
    /// Trade time, UTC ms.
    pub timestamp: i64,
    pub symbol: String,
    /// `BUY` or `SELL`.
    pub side: String,
    pub quantity: f64,
    pub price: f64,
    pub profit_loss: Option<f64>,
    pub strategy: String,
}

fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(e.into().to_string())
}

/// Creates the tables (in the transaction that creates the bar tables).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SYMBOLS).map_err(storage)?;
    txn.open_table(TRADES).map_err(storage)?;
    txn.open_table(META).map_err(storage)?;
    Ok(())
}

/// Records a script-created symbol; a symbol already there keeps its first creation time.
pub(super) fn add_symbol(db: &Database, symbol: &str, created: i64) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(storage)?;
    {
        let mut table = txn.open_table(SYMBOLS).map_err(storage)?;
        if table.get(symbol).map_err(storage)?.is_none() {
            table.insert(symbol, created).map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)
}

/// Script-created symbols, oldest first.
pub(super) fn symbols(db: &Database) -> Result<Vec<String>, StoreError> {
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(SYMBOLS).map_err(storage)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(storage)? {
        let (k, v) = entry.map_err(storage)?;
        out.push((v.value(), k.value().to_owned()));
    }
    out.sort();
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// Adds trades in one transaction, then trims each symbol they touch to its newest `keep_per_symbol`.
pub(super) fn add_trades(db: &Database, trades: &[StoredTrade], keep_per_symbol: usize) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(storage)?;
    {
        let mut table = txn.open_table(TRADES).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;
        let mut seq = meta.get("trade_seq").map_err(storage)?.map_or(0, |v| v.value());
        let mut touched = std::collections::BTreeSet::new();
        for t in trades {
            seq += 1;
            let value = (t.side.as_str(), t.quantity, t.price, t.profit_loss, t.strategy.as_str());
            table.insert((t.symbol.as_str(), t.timestamp, seq), value).map_err(storage)?;
            touched.insert(t.symbol.as_str());
        }
        meta.insert("trade_seq", seq).map_err(storage)?;
        for symbol in touched {
            let range = (symbol, i64::MIN, 0)..=(symbol, i64::MAX, u64::MAX);
            let held = table.range(range.clone()).map_err(storage)?.count();
            let excess = held.saturating_sub(keep_per_symbol.max(1));
            if excess == 0 {
                continue;
            }
            let mut oldest = Vec::with_capacity(excess);
            for entry in table.range(range).map_err(storage)?.take(excess) {
                let (k, _) = entry.map_err(storage)?;
                let (_, time, seq) = k.value();
                oldest.push((time, seq));
            }
            for (time, seq) in oldest {
                table.remove((symbol, time, seq)).map_err(storage)?;
            }
        }
    }
    txn.commit().map_err(storage)
}

/// Every stored trade, per symbol in time (then arrival) order, at most the newest `per_symbol` of each.
pub(super) fn trades(db: &Database, per_symbol: usize) -> Result<Vec<StoredTrade>, StoreError> {
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(TRADES).map_err(storage)?;
    let mut out: Vec<StoredTrade> = Vec::new();
    let mut current: Vec<StoredTrade> = Vec::new();
    let flush = |current: &mut Vec<StoredTrade>, out: &mut Vec<StoredTrade>| {
        let skip = current.len().saturating_sub(per_symbol);
        out.extend(current.drain(..).skip(skip));
    };
    for entry in table.iter().map_err(storage)? {
        let (k, v) = entry.map_err(storage)?;
        let (symbol, timestamp, _) = k.value();
        let (side, quantity, price, profit_loss, strategy) = v.value();
        if current.last().is_some_and(|t| t.symbol != symbol) {
            flush(&mut current, &mut out);
        }
        current.push(StoredTrade {
            timestamp,
            symbol: symbol.to_owned(),
            side: side.to_owned(),
            quantity,
            price,
            profit_loss,
            strategy: strategy.to_owned(),
        });
    }
    flush(&mut current, &mut out);
    Ok(out)
}
