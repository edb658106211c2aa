//! The symbol master: every instrument the feeds' sources list (Kite's instruments CSV, Shoonya's scrip
//! masters, Binance's exchangeInfo), held in memory per source and searched by `GET /api/symbols?q=`
//! and `GET /symbols/{exchange}`.
//!
//! A connector publishes its master here each time it (re)loads it ([`SymbolMaster::replace`]); the
//! new list replaces that part whole, so a refresh never mixes two days' masters. Parts are keyed by
//! source and, for sources with one file per exchange (Shoonya), by that exchange.
//!
//! Bounded: a part keeps at most [`MAX_PER_PART`] instruments (Kite's full master is about 100,000
//! rows; the rest of a larger list is dropped and counted in `dropped`), and there are at most a
//! handful of parts (one per source, one per Shoonya exchange).
//!
//! The search is a scan of pre-uppercased keys, ranked: exact symbol, then symbol prefix, then symbol
//! substring, then name substring; then shorter and alphabetically first. Only the requested page is
//! sorted. 100,000 instruments: docs/BENCHMARKS.md ("Symbol search",
//! `cargo bench -p candlecast-actors --bench symbol_search`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// Instruments kept per part; the rest of a longer master is dropped (and counted).
pub const MAX_PER_PART: usize = 200_000;
/// Results per page at most (`limit`).
pub const MAX_LIMIT: usize = 100;
/// Results a page gives when no `limit` is asked.
pub const DEFAULT_LIMIT: usize = 20;
/// How deep pages go (`offset`): enough to browse, not to dump the master page by page cheaply.
pub const MAX_OFFSET: usize = 10_000;
/// Characters of a query (`q`); no instrument name is longer.
pub const MAX_QUERY_CHARS: usize = 32;

/// One instrument as a source lists it. `symbol` is what feeds and charts name it by
/// (`EXCHANGE:TRADINGSYMBOL`, or the plain pair for Binance).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instrument {
    pub symbol: String,
    pub exchange: String,
    pub tradingsymbol: String,
    /// The instrument's name or underlying, when the master has one ("" otherwise).
    pub name: String,
    /// The instrument type (EQ, FUT, CE, FUTIDX, SPOT...), "" when unknown.
    pub kind: String,
    /// The segment (Kite's `NFO-FUT`...), "" when the master has none.
    pub segment: String,
    pub lot_size: Option<f64>,
    pub tick_size: Option<f64>,
    pub source: &'static str,
}

impl Instrument {
    /// An instrument known only by its name (a configured symbol of a source without a master).
    pub fn named(symbol: &str, source: &'static str) -> Instrument {
        let (exchange, tradingsymbol) = symbol.split_once(':').unwrap_or(("", symbol));
        Instrument {
            symbol: symbol.to_owned(),
            exchange: exchange.to_owned(),
            tradingsymbol: tradingsymbol.to_owned(),
            name: String::new(),
            kind: String::new(),
            segment: String::new(),
            lot_size: None,
            tick_size: None,
            source,
        }
    }
}

/// The `&'static` name of a source (a running symbol's source is a string): unknown names are "other".
pub fn source_name(source: &str) -> &'static str {
    const KNOWN: &[&str] = &["kite", "shoonya", "binance", "iqfeed", "replay", "simulated", "script"];
    KNOWN.iter().copied().find(|k| *k == source).unwrap_or("other")
}

/// An instrument with its search keys upper-cased once, at load time.
struct Row {
    key: Box<str>,
    name_key: Box<str>,
    instrument: Instrument,
}

impl Row {
    fn new(instrument: Instrument) -> Row {
        Row {
            key: instrument.tradingsymbol.to_ascii_uppercase().into(),
            name_key: instrument.name.to_ascii_uppercase().into(),
            instrument,
        }
    }
}

/// One part's instruments.
struct Part {
    rows: Vec<Row>,
    symbols: HashMap<Box<str>, usize>,
    dropped: usize,
}

/// A search: `q` and `exchange` upper case (see [`SearchQuery::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub q: String,
    pub exchange: Option<String>,
    pub limit: usize,
    pub offset: usize,
    /// The query's `EXCHANGE:` prefix names another exchange than the `exchange` asked: nothing matches.
    pub contradictory: bool,
}

/// A parameter of a search that is refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter {name}: {reason}")]
pub struct BadSearch {
    pub name: &'static str,
    pub reason: String,
}

fn bad(name: &'static str, reason: impl Into<String>) -> BadSearch {
    BadSearch { name, reason: reason.into() }
}

/// Characters an instrument name may hold (Kite's indices have spaces: `NIFTY 50`).
fn query_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " -_.&".contains(c)
}

/// Whether `exchange` is written as exchanges are (`NSE`, `NFO`, `BINANCE`): 1 to 8 letters or digits.
pub fn valid_exchange(exchange: &str) -> bool {
    (1..=8).contains(&exchange.len()) && exchange.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl SearchQuery {
    /// Checks the parameters of a client: every limit here is a budget of an anonymous endpoint.
    pub fn new(
        q: Option<&str>,
        exchange: Option<&str>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<SearchQuery, BadSearch> {
        let mut q = q.unwrap_or("").trim();
        // The bound is on what the client sent, prefix included.
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(bad("q", format!("at most {MAX_QUERY_CHARS} characters")));
        }
        let mut exchange = exchange.map(str::trim);
        let mut contradictory = false;
        // `NSE:REL`, as symbols are written, is the exchange and the query.
        if let Some((e, rest)) = q.split_once(':') {
            if !valid_exchange(e) {
                return Err(bad("q", "an EXCHANGE: prefix is 1 to 8 letters or digits"));
            }
            // `BSE:REL` searched within NSE: nothing matches, which is an answer, not an error.
            contradictory = exchange.is_some_and(|x| !x.eq_ignore_ascii_case(e));
            exchange = exchange.or(Some(e));
            q = rest.trim();
        }
        if !q.chars().all(query_char) {
            return Err(bad("q", "letters, digits, spaces and - _ . & only"));
        }
        let exchange = match exchange {
            None => None,
            Some(e) if valid_exchange(e) => Some(e.to_ascii_uppercase()),
            Some(_) => return Err(bad("exchange", "1 to 8 letters or digits, e.g. NSE")),
        };
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(_) => return Err(bad("limit", format!("between 1 and {MAX_LIMIT}"))),
        };
        let offset = match offset {
            None => 0,
            Some(n) if (0..=MAX_OFFSET as i64).contains(&n) => n as usize,
            Some(_) => return Err(bad("offset", format!("between 0 and {MAX_OFFSET}"))),
        };
        Ok(SearchQuery { q: q.to_ascii_uppercase(), exchange, limit, offset, contradictory })
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// Every match, not only this page's.
    pub total: usize,
    pub results: Vec<Instrument>,
}

/// How well a row matches (lower is better), or `None`.
fn rank(row: &Row, q: &str) -> Option<u8> {
    if q.is_empty() {
        Some(1)
    } else if *row.key == *q {
        Some(0)
    } else if row.key.starts_with(q) {
        Some(1)
    } else if row.key.contains(q) {
        Some(2)
    } else if row.name_key.contains(q) {
        Some(3)
    } else {
        None
    }
}

/// What a source has published; counts for `/api/stats`-like views.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartInfo {
    pub source: String,
    pub part: String,
    pub instruments: usize,
    pub dropped: usize,
}

/// The parts by (source, part name).
type Parts = BTreeMap<(&'static str, String), Arc<Part>>;

/// See the module documentation. Cheap to clone: every clone sees the same instruments.
#[derive(Clone, Default)]
pub struct SymbolMaster {
    parts: Arc<RwLock<Parts>>,
}

impl SymbolMaster {
    /// Replaces what `source` listed for `part` ("" for a source with one master) with `instruments`,
    /// keeping the first [`MAX_PER_PART`].
    pub fn replace(&self, source: &'static str, part: &str, instruments: impl IntoIterator<Item = Instrument>) {
        let mut rows = Vec::new();
        let mut dropped = 0;
        for instrument in instruments {
            if rows.len() < MAX_PER_PART {
                rows.push(Row::new(instrument));
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(source, part, dropped, kept = MAX_PER_PART, "symbol master: over the cap, rest dropped");
        }
        let symbols = rows.iter().enumerate().map(|(i, r)| (Box::from(r.instrument.symbol.as_str()), i)).collect();
        let built = Arc::new(Part { rows, symbols, dropped });
        self.parts.write().unwrap_or_else(|e| e.into_inner()).insert((source, part.to_owned()), built);
    }

    /// Whether `source` lists `symbol`.
    pub fn contains(&self, source: &str, symbol: &str) -> bool {
        self.snapshot().iter().any(|((s, _), p)| *s == source && p.symbols.contains_key(symbol))
    }

    /// What each part holds.
    pub fn parts(&self) -> Vec<PartInfo> {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts
            .iter()
            .map(|((source, part), p)| PartInfo {
                source: (*source).to_owned(),
                part: part.clone(),
                instruments: p.rows.len(),
                dropped: p.dropped,
            })
            .collect()
    }

    /// Instruments held, over every part.
    pub fn len(&self) -> usize {
        self.snapshot().iter().map(|(_, p)| p.rows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts, so a search runs without holding the lock (a refresh may replace a part meanwhile).
    fn snapshot(&self) -> Vec<((&'static str, String), Arc<Part>)> {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The page `query` asks for, ranked (see the module documentation). `extra` are instruments no
    /// master lists but that exist anyway (the running feeds' symbols, e.g. IQFeed's configured
    /// ones); those a master of their source already lists are not repeated.
    pub fn search(&self, query: &SearchQuery, extra: &[Instrument]) -> SearchPage {
        if query.contradictory {
            return SearchPage { total: 0, results: Vec::new() };
        }
        let parts = self.snapshot();
        let extra_rows: Vec<Row> = extra
            .iter()
            .filter(|i| !parts.iter().any(|((s, _), p)| *s == i.source && p.symbols.contains_key(i.symbol.as_str())))
            .cloned()
            .map(Row::new)
            .collect();
        let wanted = |row: &Row| query.exchange.as_deref().is_none_or(|e| row.instrument.exchange == e);
        let mut hits: Vec<(u8, &Row)> = Vec::new();
        let all = parts.iter().flat_map(|(_, p)| p.rows.iter()).chain(extra_rows.iter());
        for row in all {
            if wanted(row) {
                if let Some(r) = rank(row, &query.q) {
                    hits.push((r, row));
                }
            }
        }
        let total = hits.len();
        let order = |a: &(u8, &Row), b: &(u8, &Row)| {
            (a.0, a.1.key.len(), &a.1.key, &a.1.instrument.exchange, a.1.instrument.source).cmp(&(
                b.0,
                b.1.key.len(),
                &b.1.key,
                &b.1.instrument.exchange,
                b.1.instrument.source,
            ))
        };
        // Only the first offset + limit are put in order: a one-letter query matches most of the master.
        let end = (query.offset + query.limit).min(total);
        if end < total && end > 0 {
            hits.select_nth_unstable_by(end - 1, order);
            hits.truncate(end);
        }
        hits.sort_unstable_by(order);
        let results = hits.iter().skip(query.offset).map(|(_, r)| r.instrument.clone()).collect();
        SearchPage { total, results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(exchange: &str, ts: &str, name: &str, source: &'static str) -> Instrument {
        Instrument { name: name.into(), ..Instrument::named(&format!("{exchange}:{ts}"), source) }
    }

    fn query(q: &str, exchange: Option<&str>, limit: i64) -> SearchQuery {
        SearchQuery::new(Some(q), exchange, Some(limit), None).unwrap()
    }

    fn symbols(page: &SearchPage) -> Vec<&str> {
        page.results.iter().map(|i| i.symbol.as_str()).collect()
    }

    fn master() -> SymbolMaster {
        let m = SymbolMaster::default();
        m.replace(
            "kite",
            "",
            [
                inst("NSE", "RELAXO", "RELAXO FOOTWEARS", "kite"),
                inst("NSE", "RELIANCE", "RELIANCE INDUSTRIES", "kite"),
                inst("BSE", "RELIANCE", "RELIANCE INDUSTRIES", "kite"),
                inst("NSE", "REL", "A SHORT ONE", "kite"),
                inst("NSE", "ADANIREL", "", "kite"),
                inst("NSE", "JIOFIN", "JIO RELIANCE FIN", "kite"),
                inst("NSE", "INFY", "INFOSYS", "kite"),
            ],
        );
        m
    }

    #[test]
    fn ranks_exact_then_prefix_then_substring_then_name() {
        let m = master();
        let page = m.search(&query("rel", None, 100), &[]);
        assert_eq!(
            symbols(&page),
            ["NSE:REL", "NSE:RELAXO", "BSE:RELIANCE", "NSE:RELIANCE", "NSE:ADANIREL", "NSE:JIOFIN"],
            "exact, prefixes (shorter first), substring, name"
        );
        assert_eq!(page.total, 6);
        let nse = m.search(&query("RELIANCE", Some("nse"), 100), &[]);
        assert_eq!(symbols(&nse), ["NSE:RELIANCE", "NSE:JIOFIN"]);
        assert_eq!(nse.results[0].name, "RELIANCE INDUSTRIES");
        assert!(m.search(&query("ZZZ", None, 100), &[]).results.is_empty());
    }

    #[test]
    fn pages_are_slices_of_one_order() {
        let m = master();
        let all = symbols(&m.search(&query("", Some("NSE"), 100), &[])).join(",");
        let mut paged = Vec::new();
        for offset in 0..4 {
            let q = SearchQuery::new(None, Some("NSE"), Some(2), Some(offset * 2)).unwrap();
            let page = m.search(&q, &[]);
            assert_eq!(page.total, 6);
            paged.extend(page.results.into_iter().map(|i| i.symbol));
        }
        assert_eq!(paged.join(","), all);
    }

    #[test]
    fn a_reload_replaces_a_part_and_extras_are_not_repeated() {
        let m = master();
        m.replace("shoonya", "NSE", [inst("NSE", "RELIANCE-EQ", "RELIANCE", "shoonya")]);
        m.replace("shoonya", "NSE", [inst("NSE", "INFY-EQ", "INFY", "shoonya")]);
        assert!(!m.contains("shoonya", "NSE:RELIANCE-EQ") && m.contains("shoonya", "NSE:INFY-EQ"));
        assert_eq!(m.len(), 8);
        let extra = [Instrument::named("NSE:INFY", "kite"), Instrument::named("AAPL", "iqfeed")];
        let page = m.search(&query("", None, 100), &extra);
        assert_eq!(page.total, 9, "NSE:INFY is kite's already; AAPL is added");
        assert!(symbols(&page).contains(&"AAPL"));
    }

    #[test]
    fn a_part_is_capped() {
        let m = SymbolMaster::default();
        m.replace("kite", "", (0..MAX_PER_PART + 5).map(|i| inst("NSE", &format!("S{i}"), "", "kite")));
        assert_eq!(m.len(), MAX_PER_PART);
        assert_eq!(m.parts()[0].dropped, 5);
    }

    fn m_empty(q: SearchQuery) -> bool {
        q.contradictory && master().search(&q, &[]).total == 0
    }

    #[test]
    fn hostile_parameters_are_refused_with_the_limit() {
        let long = "A".repeat(MAX_QUERY_CHARS + 1);
        for (q, e, l, o, name) in [
            (Some(long.as_str()), None, None, None, "q"),
            (Some("a\u{0}b"), None, None, None, "q"),
            (Some("a%"), None, None, None, "q"),
            (None, Some("N-SE"), None, None, "exchange"),
            (None, Some("TOOLONGEXC"), None, None, "exchange"),
            (None, None, Some(0), None, "limit"),
            (None, None, Some(101), None, "limit"),
            (None, None, None, Some(-1), "offset"),
            (None, None, None, Some(10_001), "offset"),
        ] {
            assert_eq!(SearchQuery::new(q, e, l, o).unwrap_err().name, name, "{q:?} {e:?} {l:?} {o:?}");
        }
        assert!(m_empty(SearchQuery::new(Some("BSE:REL"), Some("NSE"), None, None).unwrap()));
        assert_eq!(SearchQuery::new(Some(&format!("N:{}", "A".repeat(31))), None, None, None).unwrap_err().name, "q");
        assert_eq!(SearchQuery::new(Some("N-S:REL"), None, None, None).unwrap_err().name, "q");
        assert_eq!(SearchQuery::new(Some(":REL"), None, None, None).unwrap_err().name, "q");
        assert_eq!(SearchQuery::new(None, Some(""), None, None).unwrap_err().name, "exchange");
        let split = SearchQuery::new(Some("nse:rel"), None, None, None).unwrap();
        assert_eq!((split.q.as_str(), split.exchange.as_deref()), ("REL", Some("NSE")));
        let ok = SearchQuery::new(Some(" nifty 50 "), Some("nse"), None, None).unwrap();
        assert_eq!((ok.q.as_str(), ok.exchange.as_deref(), ok.limit), ("NIFTY 50", Some("NSE"), DEFAULT_LIMIT));
    }
}
