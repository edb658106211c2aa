//! Script data across restarts. At start (before the server listens) the symbols scripts created are
//! created again with source `script`, under the same `max_script_symbols` budget, and the executed
//! trades the store kept are put back in memory; new symbols and trades are written through as they
//! come. Bars need nothing here: the persister stores every closed bar, whatever its symbol's source,
//! and history reads them once the symbol exists again.
//!
//! Executed trades are also announced live: each one goes to every `/ws` client watching its symbol as
//! a `trade_marker` frame (docs/protocol.md).

use std::sync::Arc;

use candlecast_actors::hub::PublishToSymbol;
use candlecast_actors::model::{now_ms, Symbol};
use candlecast_actors::persist::StoredTrade;
use candlecast_actors::protocol::{text_frame, TradeMarker};

use super::csv::ExecutedTrade;
use super::Scripts;

/// What [`Scripts::restore`] put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    pub symbols: usize,
    /// Symbols the store held beyond `max_script_symbols` (a lowered budget): left unknown.
    pub symbols_over_budget: usize,
    pub trades: usize,
}

impl Scripts {
    /// Puts back what the store kept (see the module documentation). Store errors are logged: the
    /// server starts without that data rather than not at all.
    pub async fn restore(&self) -> Restored {
        let mut restored = Restored::default();
        let Some(store) = &self.store else { return restored };
        match store.script_symbols().await {
            Ok(symbols) => {
                let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
                for symbol in symbols {
                    if self.market.contains(&symbol) {
                        continue;
                    }
                    if created.len() >= self.max_script_symbols {
                        restored.symbols_over_budget += 1;
                        continue;
                    }
                    created.insert(symbol.clone());
                    self.market.get_or_create(&symbol, "script");
                    restored.symbols += 1;
                }
            }
            Err(e) => tracing::warn!(error = %e, "script-created symbols could not be read from the store"),
        }
        if restored.symbols_over_budget > 0 {
            tracing::warn!(
                left_unknown = restored.symbols_over_budget,
                max = self.max_script_symbols,
                "the store holds more script-created symbols than [scripts] max_script_symbols; the newest stay unknown"
            );
        }
        match store.executed_trades(self.max_trades_per_symbol).await {
            Ok(trades) => {
                let trades: Vec<ExecutedTrade> = trades.into_iter().filter_map(from_stored).collect();
                restored.trades = trades.len();
                self.trades.add(&trades);
            }
            Err(e) => tracing::warn!(error = %e, "executed trades could not be read from the store"),
        }
        tracing::info!(symbols = restored.symbols, trades = restored.trades, "script data restored");
        restored
    }

    /// Records a newly created symbol in the store (logged, not refused, when the store fails: the data
    /// is still served until a restart).
    pub(super) async fn remember_symbol(&self, symbol: &str) {
        if let Some(store) = &self.store {
            if let Err(e) = store.add_script_symbol(symbol, now_ms()).await {
                tracing::warn!(symbol, error = %e, "a script-created symbol could not be stored; it is unknown after a restart");
            }
        }
    }

    /// Writes executed trades to the store and pushes each as a `trade_marker` to the charts of its symbol.
    pub(super) async fn keep_and_announce(&self, trades: &[ExecutedTrade]) {
        if trades.is_empty() {
            return;
        }
        let stored: Arc<[StoredTrade]> = trades.iter().map(to_stored).collect();
        for trade in stored.iter() {
            let frame = text_frame(&TradeMarker::new(trade));
            self.market.hub().do_send(PublishToSymbol { symbol: Symbol::from(trade.symbol.as_str()), frame });
        }
        if let Some(store) = &self.store {
            if let Err(e) = store.add_executed_trades(stored, self.max_trades_per_symbol).await {
                tracing::warn!(error = %e, "executed trades could not be stored; they are lost on a restart");
            }
        }
    }
}

fn to_stored(t: &ExecutedTrade) -> StoredTrade {
    StoredTrade {
        timestamp: t.timestamp,
        symbol: t.symbol.clone(),
        side: t.side.to_owned(),
        quantity: t.quantity,
        price: t.price,
        profit_loss: t.profit_loss,
        strategy: t.strategy.clone(),
    }
}

/// `None` for a side the CSV parser never produces (a store written by something else).
fn from_stored(t: StoredTrade) -> Option<ExecutedTrade> {
    let side = match t.side.as_str() {
        "BUY" => "BUY",
        "SELL" => "SELL",
        _ => return None,
    };
    Some(ExecutedTrade {
        timestamp: t.timestamp,
        symbol: t.symbol,
        side,
        quantity: t.quantity,
        price: t.price,
        profit_loss: t.profit_loss,
        strategy: t.strategy,
    })
}
