//! The registry of symbols: which exist, where their trades come from, and their aggregator.
//! Shared by the server (lookups on every request) and by whatever adds symbols at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;

use crate::aggregator::{Aggregator, AggregatorSettings};
use crate::hub::Hub;
use crate::model::Symbol;
use crate::telemetry::SymbolStats;

/// One symbol and the handles to reach it.
#[derive(Clone)]
pub struct SymbolEntry {
    pub symbol: Symbol,
    /// Where its trades come from: `simulated`, `binance`, `replay`, `script`.
    pub source: Arc<str>,
    pub aggregator: Addr<Aggregator>,
    pub stats: Arc<SymbolStats>,
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Market {
    symbols: Arc<RwLock<BTreeMap<Symbol, SymbolEntry>>>,
    hub: Addr<Hub>,
    settings: Arc<AggregatorSettings>,
    /// Where new aggregators run, whichever thread asks for them.
    arbiter: ArbiterHandle,
}

impl Market {
    pub fn new(hub: Addr<Hub>, settings: AggregatorSettings, arbiter: ArbiterHandle) -> Market {
        Market { symbols: Arc::default(), hub, settings: Arc::new(settings), arbiter }
    }

    pub fn settings(&self) -> &AggregatorSettings {
        &self.settings
    }

    pub fn arbiter(&self) -> &ArbiterHandle {
        &self.arbiter
    }

    pub fn hub(&self) -> &Addr<Hub> {
        &self.hub
    }

    pub fn get(&self, symbol: &str) -> Option<SymbolEntry> {
        self.read().get(symbol).cloned()
    }

    pub fn contains(&self, symbol: &str) -> bool {
        self.read().contains_key(symbol)
    }

    /// Every symbol, sorted by name.
    pub fn list(&self) -> Vec<SymbolEntry> {
        self.read().values().cloned().collect()
    }

    /// Returns the symbol's entry, starting an aggregator for it if it is new.
    pub fn get_or_create(&self, symbol: &str, source: &str) -> SymbolEntry {
        if let Some(entry) = self.get(symbol) {
            return entry;
        }
        let mut symbols = self.symbols.write().unwrap_or_else(|e| e.into_inner());
        symbols
            .entry(Symbol::from(symbol))
            .or_insert_with(|| {
                let symbol = Symbol::from(symbol);
                let stats = Arc::new(SymbolStats::default());
                let aggregator =
                    Aggregator::new(symbol.clone(), &self.settings, self.hub.clone().recipient(), stats.clone());
                let aggregator = Aggregator::start_in_arbiter(&self.arbiter, move |_| aggregator);
                tracing::info!(%symbol, source, "symbol added");
                SymbolEntry { symbol, source: source.into(), aggregator, stats }
            })
            .clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Symbol, SymbolEntry>> {
        // Entries are inserted whole; a poisoned lock still holds a consistent map.
        self.symbols.read().unwrap_or_else(|e| e.into_inner())
    }
}
