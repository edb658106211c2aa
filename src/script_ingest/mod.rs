//! External scripts (seed 003): their keys, the CSVs they push, the trades they stream, and what is kept
//! of it. Shared by the Socket.IO events and the REST endpoints; no transport code here.
//!
//! - [`csv`]: the trades and market-data CSVs, with a line number and reason for every bad row.
//! - [`ingest`]: streamed trades into aggregators, market-data rows into bars, executed trades stored.
//! - [`store`]: executed trades per symbol and indicator values per bar, bounded.
//! - [`stats`]: the `scripts` figures of `/api/stats`.
//! - [`restore`]: what the store kept of script data, put back at start; new data written through.

pub(crate) mod csv;
pub(crate) mod ingest;
mod restore;
pub(crate) mod stats;
pub(crate) mod store;

/// Timestamp parsing and formatting live with the model, shared with the feeds and the cluster; this
/// name stays for the Socket.IO events that format with it.
pub(crate) mod time {
    pub(crate) use candlecast_actors::model::format_iso;
}

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use candlecast_actors::market::{Market, SymbolEntry};
use candlecast_actors::model::Interval;
use candlecast_actors::persist::Store;

use crate::auth::{Keys, Role};
use crate::config::ScriptsConfig;
use stats::ScriptStats;
use store::{IndicatorStore, TradeStore};

/// Who a connection or request is, once its key (or its lack of one) has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Presented a valid script key: may push data.
    Script,
    /// No key: may only watch (join_frontend, subscribe).
    Dashboard,
}

/// Why a key check failed. The key itself never appears in messages or logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid API key")]
    WrongKey,
    #[error("an API key is required: connect with auth {{\"token\": \"<key>\"}} (REST: Authorization: Bearer <key>)")]
    MissingKey,
    #[error("script pushes are disabled on this server: make a key with `candlecast keys new --role script` (or configure [scripts] keys)")]
    Disabled,
}

/// A script named a symbol the market does not have while scripts hold `max_script_symbols` already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown symbol {symbol}: scripts may create at most {max} symbols ([scripts] max_script_symbols)")]
pub struct TooManySymbols {
    pub symbol: String,
    pub max: usize,
}

/// See the module documentation.
pub struct Scripts {
    keys: Arc<Keys>,
    require_key_for_dashboards: bool,
    market: Market,
    market_data_interval: Option<Interval>,
    max_script_symbols: usize,
    /// Symbols scripts created, to cap them.
    created: Mutex<HashSet<String>>,
    csv_limits: csv::CsvLimits,
    /// CSV uploads parsed at once (one per core); more wait their turn without holding a thread.
    parse_slots: tokio::sync::Semaphore,
    pub trades: TradeStore,
    pub indicators: IndicatorStore,
    pub stats: ScriptStats,
    /// Where script-created symbols and executed trades outlive the process (the embedded store);
    /// `None` when the configured store does not keep them.
    store: Option<Arc<dyn Store>>,
    max_trades_per_symbol: usize,
    max_trade_symbols: usize,
}

impl Scripts {
    /// `keys`: the server's keys (script keys are checked there); `store`: the configured store; script
    /// data is kept in it when it can keep it (embedded).
    pub fn new(config: &ScriptsConfig, keys: Arc<Keys>, market: Market, store: Option<Arc<dyn Store>>) -> Scripts {
        let history = market.settings().history_bars;
        Scripts {
            keys,
            require_key_for_dashboards: config.require_key_for_dashboards,
            market,
            market_data_interval: config.market_data_interval.parse().ok(),
            max_script_symbols: config.max_script_symbols,
            created: Mutex::default(),
            csv_limits: csv::CsvLimits { max_columns: config.max_csv_columns, max_rows: config.max_csv_rows },
            parse_slots: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            trades: TradeStore::new(config.max_trades_per_symbol, config.max_trade_symbols),
            indicators: IndicatorStore::new(history, config.max_indicator_values),
            stats: ScriptStats::default(),
            store: store.filter(|s| s.keeps_script_data()),
            max_trades_per_symbol: config.max_trades_per_symbol,
            max_trade_symbols: config.max_trade_symbols,
        }
    }

    /// Checks a presented key: a valid one gives script access; none gives dashboard access unless the
    /// config requires a key of dashboards too; a wrong one is refused. Refusals are counted and logged
    /// with `peer` and `via`, never with the key.
    pub fn authorize(&self, token: Option<&str>, peer: &str, via: &str) -> Result<Access, AuthError> {
        let result = match token.filter(|t| !t.is_empty()) {
            Some(t) if self.keys.check(Role::Script, t).is_some() => Ok(Access::Script),
            Some(_) => Err(AuthError::WrongKey),
            None if self.require_key_for_dashboards => Err(AuthError::MissingKey),
            None => Ok(Access::Dashboard),
        };
        if let Err(e) = &result {
            self.refused(peer, via, e);
        }
        result
    }

    /// Checks a key for a push (REST): only a valid script key passes.
    pub fn authorize_push(&self, token: Option<&str>, peer: &str, via: &str) -> Result<(), AuthError> {
        let result = match token.filter(|t| !t.is_empty()) {
            _ if !self.keys.has(Role::Script) => Err(AuthError::Disabled),
            Some(t) if self.keys.check(Role::Script, t).is_some() => Ok(()),
            Some(_) => Err(AuthError::WrongKey),
            None => Err(AuthError::MissingKey),
        };
        if let Err(e) = &result {
            self.refused(peer, via, e);
        }
        result
    }

    fn refused(&self, peer: &str, via: &str, reason: &AuthError) {
        ScriptStats::add(&self.stats.refused_auths, 1);
        let reason = match reason {
            AuthError::WrongKey => "wrong key",
            AuthError::MissingKey => "no key",
            AuthError::Disabled => "no keys configured",
        };
        // Counted as key_script and logged through the shared limiter: a flood of wrong keys must neither
        // go uncounted in candlecast_refused_total nor write a warn line per request.
        crate::http::auth_log::refused_key(crate::http::auth_log::KeyKind::Script, peer.parse().ok(), reason, via);
    }

    /// Whether pushing is possible at all (a script key exists, configured or in the keys file).
    pub fn pushes_enabled(&self) -> bool {
        self.keys.has(Role::Script)
    }

    /// The symbol's entry, creating it with source `script` while under `max_script_symbols`. A created
    /// symbol is recorded in the store before the data that created it is taken, so it is known again
    /// after a restart.
    pub async fn symbol_entry(&self, symbol: &str) -> Result<SymbolEntry, TooManySymbols> {
        if let Some(entry) = self.market.get(symbol) {
            return Ok(entry);
        }
        {
            let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
            if created.len() >= self.max_script_symbols && !created.contains(symbol) {
                return Err(TooManySymbols { symbol: symbol.to_owned(), max: self.max_script_symbols });
            }
            created.insert(symbol.to_owned());
        }
        self.remember_symbol(symbol).await;
        Ok(self.market.get_or_create(symbol, "script"))
    }
}
