//! IQFeed's part of the symbol master, filled by lookups.
//!
//! IQConnect has no master file to download over its ports: its Lookup port answers searches (`SBF`, a
//! symbol containing the search string) instead. So a symbol search (`GET /api/symbols?q=`) on a server
//! that runs IQFeed asks IQConnect first, and the instruments it answers join the master's `iqfeed` part,
//! with their exchange (the listed market's short name, from `SLM`, read once) and type (`SST`, once).
//!
//! The search is anonymous, so IQConnect (and DTN behind it) is protected: one lookup at a time, a query
//! looked up at most once an hour, at most `[feed.iqfeed] lookups_per_minute` lookups in all, queries of
//! at least two characters; the instruments kept are capped ([`MAX_KEPT`]). Past a budget, or when
//! IQConnect does not answer within its timeout, the search answers from what the master already holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lookup::{Catalogue, LookupClient, SymbolRow};
use super::IqFeedSettings;
use crate::feed::FeedError;
use crate::symbol_master::{Instrument, SymbolMaster};

/// Instruments kept from lookups; the oldest-looked-up are forgotten first beyond it.
pub const MAX_KEPT: usize = 50_000;
/// Queries remembered as looked up.
const MAX_QUERIES: usize = 4_096;
/// How long a looked-up query is answered from the master without asking IQConnect again.
const FRESH_FOR: Duration = Duration::from_secs(3_600);
/// Queries shorter than this would list a large part of the market: answered from the master only.
const MIN_QUERY_CHARS: usize = 2;

/// What a search got from IQConnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// Asked now: this many instruments.
    Looked(usize),
    /// Asked less than an hour ago: the master has its answer.
    Fresh,
    /// Not asked: the query is too short, or the lookup budget is spent (`lookups_per_minute`).
    Skipped(&'static str),
    /// IQConnect did not answer, or refused: the reason.
    Failed(String),
}

struct State {
    /// When each query was looked up.
    queries: HashMap<String, Instant>,
    /// Kept instruments by symbol, with the order they were first seen in (oldest first) for the cap.
    kept: BTreeMap<String, (u64, Instrument)>,
    seen: u64,
    /// Listed market and security type names, read once.
    markets: Option<HashMap<u32, String>>,
    types: Option<HashMap<u32, String>>,
    /// Lookups made in the current minute, and when it started.
    minute: (Instant, u32),
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct IqFeedDirectory {
    settings: IqFeedSettings,
    master: SymbolMaster,
    state: Arc<Mutex<State>>,
    /// One lookup at a time (IQConnect serves every request of a connection in order anyway).
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl IqFeedDirectory {
    pub fn new(settings: IqFeedSettings, master: SymbolMaster) -> IqFeedDirectory {
        let state = State {
            queries: HashMap::new(),
            kept: BTreeMap::new(),
            seen: 0,
            markets: None,
            types: None,
            minute: (Instant::now(), 0),
        };
        IqFeedDirectory { settings, master, state: Arc::new(Mutex::new(state)), turn: Arc::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks IQConnect for instruments matching `query` (upper case) unless a budget says no, and puts
    /// them into the master. Never longer than the Lookup port's timeout per reply line.
    pub async fn lookup(&self, query: &str) -> LookupOutcome {
        let query = query.trim();
        if query.chars().count() < MIN_QUERY_CHARS {
            return LookupOutcome::Skipped("query shorter than 2 characters");
        }
        if self.is_fresh(query) {
            return LookupOutcome::Fresh;
        }
        let _turn = self.turn.lock().await;
        // Another search of the same query may have looked it up while this one waited.
        if self.is_fresh(query) {
            return LookupOutcome::Fresh;
        }
        if !self.take_budget() {
            crate::refusals::refused("iqfeed_lookups_per_minute");
            return LookupOutcome::Skipped("lookup budget spent ([feed.iqfeed] lookups_per_minute)");
        }
        match self.ask(query).await {
            Ok(rows) => {
                let n = rows.len();
                self.keep(query, rows);
                LookupOutcome::Looked(n)
            }
            Err(e) => {
                tracing::warn!(query, error = %e, "IQFeed symbol lookup failed; searching the master alone");
                LookupOutcome::Failed(e.to_string())
            }
        }
    }

    fn is_fresh(&self, query: &str) -> bool {
        self.state().queries.get(query).is_some_and(|at| at.elapsed() < FRESH_FOR)
    }

    fn take_budget(&self) -> bool {
        let per_minute = self.settings.lookups_per_minute;
        let mut state = self.state();
        let (started, used) = &mut state.minute;
        if started.elapsed() >= Duration::from_secs(60) {
            (*started, *used) = (Instant::now(), 0);
        }
        if *used >= per_minute {
            return false;
        }
        *used += 1;
        true
    }

    /// One connection per lookup (searches are rare next to the feed's traffic): the catalogues the first
    /// time, then `SBF`.
    async fn ask(&self, query: &str) -> Result<Vec<Instrument>, FeedError> {
        let mut client = LookupClient::open(&self.settings).await?;
        let (markets, types) = {
            let state = self.state();
            (state.markets.clone(), state.types.clone())
        };
        let markets = match markets {
            Some(m) => m,
            None => client.catalogue(Catalogue::ListedMarkets).await?.into_iter().collect(),
        };
        let types = match types {
            Some(t) => t,
            None => client.catalogue(Catalogue::SecurityTypes).await?.into_iter().collect(),
        };
        let rows = client.symbols_by_filter(query).await?;
        let instruments = rows.into_iter().map(|row| instrument(row, &markets, &types)).collect();
        let mut state = self.state();
        state.markets = Some(markets);
        state.types = Some(types);
        Ok(instruments)
    }

    /// Remembers the query and the instruments, within their caps, and republishes the master's part.
    fn keep(&self, query: &str, instruments: Vec<Instrument>) {
        let listing: Vec<Instrument> = {
            let mut state = self.state();
            if state.queries.len() >= MAX_QUERIES {
                state.queries.retain(|_, at| at.elapsed() < FRESH_FOR);
            }
            if state.queries.len() < MAX_QUERIES {
                state.queries.insert(query.to_owned(), Instant::now());
            }
            for i in instruments {
                state.seen += 1;
                let seen = state.seen;
                state.kept.entry(i.symbol.clone()).or_insert((seen, i));
            }
            if state.kept.len() > MAX_KEPT {
                let mut order: Vec<(u64, String)> = state.kept.iter().map(|(s, (n, _))| (*n, s.clone())).collect();
                order.sort_unstable();
                let excess = state.kept.len() - MAX_KEPT;
                for (_, symbol) in order.into_iter().take(excess) {
                    state.kept.remove(&symbol);
                }
            }
            state.kept.values().map(|(_, i)| i.clone()).collect()
        };
        self.master.replace("iqfeed", "", listing);
    }
}

/// An `SBF` row as an instrument: IQFeed symbols are charted by their plain name (`AAPL`, `@ES#`).
fn instrument(row: SymbolRow, markets: &HashMap<u32, String>, types: &HashMap<u32, String>) -> Instrument {
    let mut i = Instrument::named(&row.symbol, "iqfeed");
    i.exchange = markets.get(&row.market).cloned().unwrap_or_else(|| row.market.to_string());
    i.kind = types.get(&row.security_type).cloned().unwrap_or_default();
    i.name = row.description;
    i
}
