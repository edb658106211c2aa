//! Starts the actor pipeline: hub, market registry, one aggregator and one feed per configured symbol.
//! The server calls [`Engine::start`] once and hands the handles to its routes.

use std::sync::Arc;

use actix::prelude::*;
use serde::Deserialize;

use crate::aggregator::AggregatorSettings;
use crate::feed::simulated::{SimulatedConnector, SimulatedSettings};
use crate::feed::{Connector, FeedActor, FeedStatus};
use crate::hub::{Hub, HubSettings};
use crate::market::Market;
use crate::model::Symbol;

/// Which upstream the configured symbols come from (`[feed]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    /// `simulated` (default) or `none` (symbols only from scripts).
    pub source: String,
    pub symbols: Vec<String>,
    pub simulated: SimulatedSettings,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            source: "simulated".into(),
            symbols: ["BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "XRPUSDT", "SOLUSDT"].map(String::from).to_vec(),
            simulated: SimulatedSettings::default(),
        }
    }
}

/// A configuration the engine cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown feed source {0:?}: expected \"simulated\" or \"none\"")]
    UnknownSource(String),
    #[error("invalid symbol {0:?}: use 1 to 20 characters A-Z, 0-9, '-', '_' or '.'")]
    InvalidSymbol(String),
}

/// Whether a symbol name is acceptable (also for symbols that scripts create).
pub fn valid_symbol(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// A running feed, for the API.
#[derive(Clone)]
pub struct FeedHandle {
    pub source: &'static str,
    pub symbol: Symbol,
    pub status: Arc<FeedStatus>,
}

/// Handles to the running pipeline.
#[derive(Clone)]
pub struct Engine {
    pub hub: Addr<Hub>,
    pub market: Market,
    pub feeds: Arc<Vec<FeedHandle>>,
}

impl Engine {
    /// Starts everything; must be called inside a running actix system.
    pub fn start(hub_settings: &HubSettings, aggregator: AggregatorSettings, feed: &FeedSettings) -> Result<Engine, EngineError> {
        if let Some(bad) = feed.symbols.iter().find(|s| !valid_symbol(s)) {
            return Err(EngineError::InvalidSymbol(bad.clone()));
        }
        // The hub gets a thread of its own: it is the fan-out hot path. Aggregators and feeds share another.
        let hub = Hub::new(hub_settings);
        let hub = Hub::start_in_arbiter(&Arbiter::new().handle(), move |_| hub);
        let market_arbiter = Arbiter::new().handle();
        let market = Market::new(hub.clone(), aggregator, market_arbiter.clone());
        let mut feeds = Vec::new();
        match feed.source.as_str() {
            "none" => {}
            "simulated" => {
                for symbol in &feed.symbols {
                    let connector = SimulatedConnector::new(Symbol::from(symbol.as_str()), &feed.simulated);
                    feeds.push(start_feed(&market, connector, &market_arbiter));
                }
            }
            other => return Err(EngineError::UnknownSource(other.to_owned())),
        }
        Ok(Engine { hub, market, feeds: Arc::new(feeds) })
    }
}

/// Registers the connector's symbol and starts its feed actor next to the aggregator.
pub fn start_feed<C: Connector + Send>(market: &Market, connector: C, arbiter: &ArbiterHandle) -> FeedHandle {
    let source = connector.source();
    let entry = market.get_or_create(connector.symbol(), source);
    let status = Arc::new(FeedStatus::default());
    let intervals = market.settings().intervals();
    let (sink, seed) = (entry.aggregator.clone().recipient(), Some(entry.aggregator.clone().recipient()));
    let feed_status = status.clone();
    FeedActor::start_in_arbiter(arbiter, move |_| FeedActor::new(connector, sink, seed, intervals, feed_status));
    FeedHandle { source, symbol: entry.symbol, status }
}
