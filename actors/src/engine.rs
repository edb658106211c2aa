//! Starts the actor pipeline: hub, market registry, one aggregator and one feed per configured symbol.
//! The server calls [`Engine::start`] once and hands the handles to its routes.

use std::sync::{Arc, RwLock};

use actix::prelude::*;
use serde::Deserialize;

use crate::aggregator::AggregatorSettings;
use crate::feed::actor::{Backfill, StopFeed};
use crate::feed::binance::combined::CombinedStreams;
use crate::feed::binance::{BinanceConnector, BinanceSettings};
use crate::feed::iqfeed::directory::{IqFeedDirectory, LookupOutcome};
use crate::feed::iqfeed::{IqFeedConnector, IqFeedSettings};
use crate::feed::kite::{KiteConnector, KiteSettings, KiteShared};
use crate::feed::replay::{ReplayConnector, ReplaySettings};
use crate::feed::shoonya::{session::Shared as ShoonyaShared, ShoonyaConnector, ShoonyaSettings};
use crate::feed::simulated::{SimulatedConnector, SimulatedSettings};
use crate::feed::{Connector, FeedActor, FeedError, FeedSource, FeedStatus, UnknownSource, Warmup};
use crate::hub::{Hub, HubSettings};
use crate::market::Market;
use crate::model::Symbol;
use crate::persist::history::History;
use crate::persist::journal::JournalError;
use crate::persist::{Store, StoreError, StoreSettings};
use crate::symbol_master::SymbolMaster;

/// Which upstream the configured symbols come from (`[feed]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    /// `simulated` (default), `binance`, `iqfeed`, `kite`, `shoonya`, `replay` or `none` (symbols only from scripts).
    pub source: FeedSource,
    pub symbols: Vec<String>,
    pub simulated: SimulatedSettings,
    pub binance: BinanceSettings,
    pub iqfeed: IqFeedSettings,
    pub shoonya: ShoonyaSettings,
    pub kite: KiteSettings,
    pub replay: ReplaySettings,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            source: FeedSource::Simulated,
            symbols: ["BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "XRPUSDT", "SOLUSDT"].map(String::from).to_vec(),
            simulated: SimulatedSettings::default(),
            binance: BinanceSettings::default(),
            iqfeed: IqFeedSettings::default(),
            shoonya: ShoonyaSettings::default(),
            kite: KiteSettings::default(),
            replay: ReplaySettings::default(),
        }
    }
}

/// A configuration the engine cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    UnknownSource(#[from] UnknownSource),
    #[error("{symbol} already has a feed (from {venue})")]
    FeedExists { venue: FeedSource, symbol: String },
    #[error("cannot start the {venue} feed: {error}")]
    Connector { venue: &'static str, error: FeedError },
    #[error("invalid symbol {0:?}: use 1 to 32 characters A-Z, 0-9, '-', '_', '.', '&', and one ':' after an exchange (EXCHANGE:SYMBOL)")]
    InvalidSymbol(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("store: {0}")]
    Journal(#[from] JournalError),
}

/// Whether a symbol name is acceptable (also for symbols that scripts create): `BTCUSDT`, or an
/// exchange's instrument written `EXCHANGE:NAME` as brokers name them (`NSE:INFY`, `NSE:M&M-EQ`,
/// `NFO:BANKNIFTY28DEC23C47000`): `NSE:RELIANCE` and `BSE:RELIANCE` are different symbols. At most 32
/// characters, as the dashboard accepts.
pub fn valid_symbol(s: &str) -> bool {
    let name_ok = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.&".contains(&b))
    };
    (1..=32).contains(&s.len())
        && match s.split_once(':') {
            None => name_ok(s),
            Some((exchange, name)) => {
                (1..=8).contains(&exchange.len())
                    && exchange.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                    && name_ok(name)
            }
        }
}

/// A running feed, for the API.
#[derive(Clone)]
pub struct FeedHandle {
    pub source: FeedSource,
    pub symbol: Symbol,
    pub status: Arc<FeedStatus>,
    /// Stops the feed actor, and with it its upstream connection.
    stop: Recipient<StopFeed>,
}

/// The running feeds, at most one per symbol; feeds can be added and removed at run time.
#[derive(Clone)]
pub struct Feeds {
    running: Arc<RwLock<Vec<FeedHandle>>>,
    market: Market,
    arbiter: ArbiterHandle,
    settings: Arc<FeedSettings>,
    history: History,
    /// Binance connections shared by symbols, when `feed.binance.combined` is on.
    binance_combined: Option<CombinedStreams>,
    /// The Shoonya session and symbol masters every Shoonya feed shares (one login per process).
    shoonya: Arc<ShoonyaShared>,
    /// Kite's ticker connection, rate limit and instruments master, shared by every Kite feed.
    kite: KiteShared,
    /// Every instrument the sources' masters list, for the symbol search; the connectors fill it.
    master: SymbolMaster,
    /// IQFeed's symbol lookups for the search (IQConnect has no master file).
    iqfeed_directory: IqFeedDirectory,
    /// Whether Binance's exchangeInfo was asked for (once per process, with the first Binance feed).
    binance_listed: Arc<std::sync::atomic::AtomicBool>,
}

impl Feeds {
    fn new(market: Market, arbiter: ArbiterHandle, settings: FeedSettings, history: History) -> Feeds {
        let binance_combined = settings.binance.combined.then(|| CombinedStreams::start(&settings.binance, &arbiter));
        let master = SymbolMaster::default();
        let shoonya = ShoonyaShared::new(settings.shoonya.clone(), master.clone());
        // Idle (no connection) until a Kite feed subscribes.
        let kite = KiteShared::start(&settings.kite, &arbiter, master.clone());
        let iqfeed_directory = IqFeedDirectory::new(settings.iqfeed.clone(), master.clone());
        Feeds {
            running: Arc::default(),
            market,
            arbiter,
            settings: Arc::new(settings),
            history,
            binance_combined,
            shoonya,
            kite,
            master,
            iqfeed_directory,
            binance_listed: Arc::default(),
        }
    }

    /// Loads Binance's symbol list into the master, once, in the background: the feed does not wait.
    fn list_binance(&self) {
        if self.binance_listed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let (settings, master) = (self.settings.binance.clone(), self.master.clone());
        self.arbiter.spawn(async move {
            match crate::feed::binance::exchange_info::fetch(&settings).await {
                Ok(list) => {
                    tracing::info!(source = "binance", instruments = list.len(), "exchangeInfo loaded");
                    master.replace("binance", "", list);
                }
                Err(error) => {
                    tracing::warn!(source = "binance", %error, "exchangeInfo not loaded: no Binance symbol search")
                }
            }
        });
    }

    /// The instruments the sources list (filled as connectors load their masters).
    pub fn master(&self) -> &SymbolMaster {
        &self.master
    }

    /// Asks IQConnect for instruments matching the search `query` when this server runs IQFeed (configured,
    /// or a feed added at run time) and lookups are on; `None` otherwise. See [`IqFeedDirectory`].
    pub async fn look_up(&self, query: &str) -> Option<LookupOutcome> {
        let runs_iqfeed = self.settings.source == FeedSource::Iqfeed
            || self.running.read().unwrap_or_else(|e| e.into_inner()).iter().any(|f| f.source == FeedSource::Iqfeed);
        if !runs_iqfeed || self.settings.iqfeed.lookups_per_minute == 0 {
            return None;
        }
        Some(self.iqfeed_directory.lookup(query).await)
    }

    /// Every running feed, in the order they were started.
    pub fn list(&self) -> Vec<FeedHandle> {
        self.running.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.running.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a feed for `symbol` from `source` (any but `none`).
    pub fn add(&self, source: FeedSource, symbol: &str) -> Result<FeedHandle, EngineError> {
        self.start(source, symbol, None)
    }

    /// [`Feeds::add`], reporting the end of the backfill to `warmup` (the feeds of the configuration).
    fn start(&self, source: FeedSource, symbol: &str, warmup: Option<Arc<Warmup>>) -> Result<FeedHandle, EngineError> {
        if !valid_symbol(symbol) {
            return Err(EngineError::InvalidSymbol(symbol.to_owned()));
        }
        // Held across the start so two concurrent adds of one symbol cannot both start a feed.
        let mut running = self.running.write().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = running.iter().find(|f| &*f.symbol == symbol) {
            return Err(EngineError::FeedExists { venue: f.source, symbol: symbol.to_owned() });
        }
        let sym = Symbol::from(symbol);
        let (market, s) = (&self.market, &self.settings);
        let h = &(self.arbiter.clone(), self.history.clone(), warmup);
        let handle = match source {
            FeedSource::Simulated => start_feed(market, SimulatedConnector::new(sym, &s.simulated), h),
            FeedSource::Binance => {
                self.list_binance();
                let c = BinanceConnector::new(sym, &s.binance, self.binance_combined.clone())
                    .map_err(|error| EngineError::Connector { venue: "binance", error })?;
                start_feed(market, c, h)
            }
            FeedSource::Iqfeed => start_feed(market, IqFeedConnector::new(sym, &s.iqfeed), h),
            FeedSource::Shoonya => {
                let c = ShoonyaConnector::new(sym, self.shoonya.clone())
                    .map_err(|error| EngineError::Connector { venue: "shoonya", error })?;
                start_feed(market, c, h)
            }
            FeedSource::Kite => {
                let c = KiteConnector::new(sym, &s.kite, &self.kite)
                    .map_err(|error| EngineError::Connector { venue: "kite", error })?;
                start_feed(market, c, h)
            }
            FeedSource::Replay => start_feed(market, ReplayConnector::new(sym, &s.replay), h),
            FeedSource::None => return Err(UnknownSource(source.as_str().to_owned()).into()),
        };
        running.push(handle.clone());
        Ok(handle)
    }

    /// Stops and forgets the feed of `symbol` from `source`. The symbol and its bars stay.
    pub fn remove(&self, source: FeedSource, symbol: &str) -> Option<FeedHandle> {
        let mut running = self.running.write().unwrap_or_else(|e| e.into_inner());
        let at = running.iter().position(|f| f.source == source && &*f.symbol == symbol)?;
        let handle = running.remove(at);
        handle.stop.do_send(StopFeed);
        tracing::info!(symbol, %source, "feed removed");
        Some(handle)
    }

    /// Updates every feed's trades per second; call once a second.
    pub fn sample_rates(&self) {
        for f in self.running.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f.status.sample_rate();
        }
    }
}

/// Handles to the running pipeline.
#[derive(Clone)]
pub struct Engine {
    pub hub: Addr<Hub>,
    /// The hub's clients and subscriptions, readable without messaging the hub.
    pub hub_counters: Arc<crate::hub::HubCounters>,
    pub market: Market,
    pub feeds: Feeds,
    /// History beyond the in-memory window, and the persistence actor behind it.
    pub history: History,
    /// The first start's backfill of the configured feeds: `/health` and `/ready` ask it.
    pub warmup: Arc<Warmup>,
}

impl Engine {
    /// Starts everything; must be called inside a running actix system. `opened` is the store built
    /// from `store` by [`crate::persist::open`] (`None` for none); the engine's persistence actor writes to it.
    pub fn start(
        hub_settings: &HubSettings,
        aggregator: AggregatorSettings,
        feed: &FeedSettings,
        store: &StoreSettings,
        opened: Option<Arc<dyn Store>>,
    ) -> Result<Engine, EngineError> {
        if let Some(bad) = feed.symbols.iter().find(|s| !valid_symbol(s)) {
            return Err(EngineError::InvalidSymbol(bad.clone()));
        }
        // The hub gets a thread of its own: it is the fan-out hot path. Aggregators and feeds share another.
        let hub = Hub::new(hub_settings);
        let hub_counters = hub.counters();
        let hub = Hub::start_in_arbiter(&Arbiter::new().handle(), move |_| hub);
        let market_arbiter = Arbiter::new().handle();
        let grace_ms = aggregator.grace_ms;
        let market = Market::new(hub.clone(), aggregator, market_arbiter.clone());
        let history = History::start(opened, store, &market, &hub, grace_ms)?;
        let feeds = Feeds::new(market.clone(), market_arbiter, feed.clone(), history.clone());
        let warmup = Arc::new(Warmup::default());
        if feed.source.runs_feeds() {
            warmup.expect(feed.symbols.len());
            for symbol in &feed.symbols {
                feeds.start(feed.source, symbol, Some(warmup.clone()))?;
            }
        }
        Ok(Engine { hub, hub_counters, market, feeds, history, warmup })
    }
}

/// Registers the connector's symbol and starts its feed actor next to the aggregator, on `arbiter`, with
/// `history` (and `warmup` to report to, for the feeds of the configuration).
pub fn start_feed<C: Connector + Send>(
    market: &Market,
    mut connector: C,
    (arbiter, history, warmup): &(ArbiterHandle, History, Option<Arc<Warmup>>),
) -> FeedHandle {
    let source = connector.source();
    let entry = market.get_or_create(connector.symbol(), source.as_str());
    let status = Arc::new(FeedStatus::default());
    connector.attach_status(status.clone());
    let backfill = Backfill {
        seed: entry.aggregator.clone().recipient(),
        intervals: market.settings().intervals(),
        history: history.clone(),
        window: market.settings().history_bars,
        calendar: market.settings().calendar_for(connector.symbol()),
        warmup: warmup.clone(),
        seeding: entry.seeding.clone(),
    };
    let (sink, upsert) = (entry.aggregator.clone().recipient(), entry.aggregator.clone().recipient());
    // History requests for the symbol wait for its backfill (see `SeedGate`); the feed opens the gate.
    entry.seeding.close();
    let feed_status = status.clone();
    let actor = FeedActor::start_in_arbiter(arbiter, move |_| {
        FeedActor::new(connector, sink, upsert, Some(backfill), feed_status)
    });
    FeedHandle { source, symbol: entry.symbol, status, stop: actor.recipient() }
}

#[cfg(test)]
mod symbol_tests {
    use super::valid_symbol;

    #[test]
    fn plain_and_exchange_symbols() {
        let long = "A".repeat(32);
        for ok in
            ["BTCUSDT", "BRK.B", "NSE:INFY", "NSE:M&M-EQ", "NFO:BANKNIFTY28DEC23C47000", "MCX:CRUDEOIL24JANFUT", &long]
        {
            assert!(valid_symbol(ok), "{ok}");
        }
        let too_long = "A".repeat(33);
        for bad in [
            "",
            "btcusdt",
            "NSE:",
            ":INFY",
            "NSE:INFY:X",
            "nse:INFY",
            "TOOLONGEXCH:INFY",
            "A B",
            "NSE|INFY",
            "NSE/INFY",
            &too_long,
        ] {
            assert!(!valid_symbol(bad), "{bad}");
        }
    }
}
