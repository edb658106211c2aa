//! The hub's figures for `/api/stats` and `/metrics`, kept up to date on every connect, disconnect,
//! subscribe and unsubscribe, so that reading them costs O(symbols) and never a walk over the clients,
//! nor a message to the hub's thread (the fan-out hot path).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::HubStats;
use crate::model::Symbol;

/// Shared between the hub (the only writer) and any number of readers.
#[derive(Debug, Default)]
pub struct HubCounters {
    clients: AtomicUsize,
    subscriptions: AtomicUsize,
    /// Distinct clients subscribed to any interval of each symbol; symbols with none are removed.
    /// The lock is held for one map operation: subscriptions are control messages, not the fan-out.
    per_symbol: Mutex<HashMap<Symbol, usize>>,
}

impl HubCounters {
    pub fn new() -> Arc<HubCounters> {
        Arc::default()
    }

    /// A copy of the figures; O(symbols).
    pub fn snapshot(&self) -> HubStats {
        let per_symbol = self.per_symbol.lock().unwrap_or_else(PoisonError::into_inner).clone();
        HubStats {
            total_clients: self.clients.load(Ordering::Relaxed),
            total_subscriptions: self.subscriptions.load(Ordering::Relaxed),
            trading_pair_subscribers: per_symbol,
        }
    }

    pub(super) fn set_clients(&self, n: usize) {
        self.clients.store(n, Ordering::Relaxed);
    }

    pub(super) fn subscribed(&self, n: usize) {
        self.subscriptions.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn unsubscribed(&self, n: usize) {
        // Never below zero, whatever happens: a reader would see 2^64 - 1.
        let _ = self.subscriptions.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
    }

    /// A client's first topic of `symbol`.
    pub(super) fn symbol_added(&self, symbol: &Symbol) {
        *self.per_symbol.lock().unwrap_or_else(PoisonError::into_inner).entry(symbol.clone()).or_default() += 1;
    }

    /// A client's last topic of `symbol` went.
    pub(super) fn symbol_removed(&self, symbol: &Symbol) {
        let mut map = self.per_symbol.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(symbol) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(symbol);
            }
        }
    }
}
