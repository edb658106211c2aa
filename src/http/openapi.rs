//! The OpenAPI 3.1 document of the REST API, generated from the handlers' `#[utoipa::path]` attributes, at
//! `GET /api/openapi.json`; and `GET /docs`, a page that renders it with no asset from outside (many
//! deployments have no internet).
//!
//! Most handlers build their JSON with `json!`: the schemas below describe those bodies. They are checked
//! against the live server, not trusted: tests/openapi.rs runs Schemathesis, which fails on any response
//! that does not match its schema, and compares the document's routes with the handlers'.

use std::sync::OnceLock;

use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The bar intervals (`interval` of history requests and jobs).
// Describes the schema only: the handlers parse `Interval` itself, so no variant is ever built.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
pub enum IntervalName {
    #[serde(rename = "1s")]
    S1,
    #[serde(rename = "5s")]
    S5,
    #[serde(rename = "15s")]
    S15,
    #[serde(rename = "30s")]
    S30,
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "3m")]
    M3,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "2h")]
    H2,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "6h")]
    H6,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "1w")]
    W1,
}

/// Every error: `{"error": <code>, "detail": <message>}`, with `parameter` for a bad parameter and `limit`
/// for a budget (docs/SECURITY.md names each).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_parameter`, `unknown_symbol`, `not_found`, `unauthorized`, ...
    pub error: String,
    /// What went wrong, for a person.
    pub detail: String,
    pub parameter: Option<String>,
    pub limit: Option<String>,
}

/// `GET /api/symbols`.
#[derive(Serialize, ToSchema)]
pub struct SymbolsReply {
    pub symbols: Vec<String>,
    pub details: Vec<SymbolDetail>,
}

/// `GET /api/symbols`: the running symbols, or a search's page when search parameters are given.
// Describes the schema only: the handler answers with either body directly, so no variant is ever built.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SymbolsAnswer {
    List(SymbolsReply),
    Search(SymbolSearchReply),
}

/// A page of a symbol search (`GET /api/symbols?q=`, `GET /symbols/{exchange}`).
#[derive(Serialize, ToSchema)]
pub struct SymbolSearchReply {
    /// The query, upper case (after an `EXCHANGE:` prefix was taken off).
    pub q: String,
    pub exchange: Option<String>,
    /// Every match, not only this page's.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    /// Exact symbol first, then prefixes, substrings, and matches of the name.
    pub results: Vec<InstrumentBody>,
    /// Only on a server running IQFeed: whether IQConnect was asked (`looked_up`: instruments found),
    /// answered from an earlier lookup (`fresh`), not asked (`skipped`: why) or failed (`failed`: why).
    #[schema(value_type = Option<Object>)]
    pub iqfeed_lookup: Option<serde_json::Value>,
}

/// One instrument of a source's master (or a running symbol no master lists).
#[derive(Serialize, ToSchema)]
pub struct InstrumentBody {
    /// What feeds and charts name it by: `NSE:RELIANCE`, `BTCUSDT`.
    pub symbol: String,
    /// `NSE`, `NFO`, `BINANCE`...; "" for a plain symbol without one.
    pub exchange: String,
    pub tradingsymbol: String,
    /// Company or underlying, "" when the master has none.
    pub name: String,
    /// Instrument type (`EQ`, `FUT`, `CE`, `FUTIDX`, `SPOT`...), "" when unknown.
    pub kind: String,
    /// Kite's segment (`NFO-FUT`...), "" otherwise.
    pub segment: String,
    pub lot_size: Option<f64>,
    pub tick_size: Option<f64>,
    /// The source that lists it: `kite`, `shoonya`, `binance`, or a running feed's source.
    pub source: String,
    /// Whether the symbol has bars here now (a running feed or a script's symbol): a chart of it streams.
    pub live: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SymbolDetail {
    pub symbol: String,
    /// The feed that serves it (`simulated`, `binance`, ...).
    pub source: String,
    /// The last traded price; null before the first trade.
    pub price: Option<f64>,
    /// Trades per second over the last second.
    pub trade_rate: f64,
    /// The exchange's trading session (`[aggregator.sessions]`); null for markets open around the clock.
    pub session: Option<SessionDoc>,
}

/// An exchange session: local times in its time zone.
#[derive(Serialize, ToSchema)]
pub struct SessionDoc {
    /// IANA time zone, e.g. `Asia/Kolkata`.
    pub timezone: String,
    /// Local open, `HH:MM`.
    pub open: String,
    /// Local close, `HH:MM`, exclusive; `24:00` for midnight.
    pub close: String,
    /// Trading weekdays, `mon` ... `sun`.
    pub weekdays: Vec<String>,
    /// Dates without a session, `YYYY-MM-DD`.
    pub holidays: Vec<String>,
}

/// `GET /api/price/{symbol}`.
#[derive(Serialize, ToSchema)]
pub struct PriceReply {
    pub symbol: String,
    pub price: f64,
    /// Exchange time of the last trade, ms since the epoch.
    pub timestamp: i64,
}

/// `GET /api/historical/{symbol}`: bars ascending.
#[derive(Serialize, ToSchema)]
pub struct HistoricalReply {
    /// Always `historical`.
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: String,
    pub data: Vec<BarBody>,
    /// For a `since` request: pass it as the next `since`.
    pub as_of: Option<i64>,
}

/// One OHLCV bar (`timestamp` is its open time, ms). Bars a script pushed may carry `indicators`.
#[derive(Serialize, ToSchema)]
pub struct BarBody {
    pub timestamp: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub trades: u64,
    pub closed: bool,
}

/// `GET /api/stats`: `stats` holds the counters of docs/protocol.md ("Stats").
#[derive(Serialize, ToSchema)]
pub struct StatsReply {
    pub service: String,
    #[schema(value_type = Object)]
    pub stats: serde_json::Value,
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
pub struct HealthReply {
    /// `ok`; `warming_up` while the first start's backfill loads history (see `history`, and `/ready`);
    /// or `degraded` with the reason in the fields below.
    pub status: String,
    pub uptime_seconds: u64,
    pub feeds: u64,
    pub failed_feeds: Vec<String>,
    pub reconnecting_feeds: Vec<String>,
    #[schema(value_type = Object)]
    pub store: serde_json::Value,
    /// With `[redis] url`: the cluster report.
    #[schema(value_type = Option<Object>)]
    pub redis: Option<serde_json::Value>,
    /// The first start's backfill, as `/ready` answers it.
    pub history: ReadyReply,
}

/// `GET /ready`, and `history` in `/health`.
#[derive(Serialize, ToSchema)]
pub struct ReadyReply {
    /// Every configured symbol has its history (stored plus backfilled).
    pub ready: bool,
    pub symbols_done: u64,
    pub symbols_total: u64,
    /// Bars the finished symbols hold.
    pub bars: u64,
    /// While warming up, at the pace so far; `null` before the first symbol finished.
    pub eta_seconds: Option<u64>,
}

/// One feed, as `GET /api/feeds` and `/api/stats` show it.
#[derive(Serialize, ToSchema)]
pub struct FeedBody {
    pub source: String,
    pub symbol: String,
    /// `connecting`, `connected`, `reconnecting`, `failed` or `finished`.
    pub state: String,
    pub last_message_age_ms: Option<i64>,
    pub reconnects: u64,
    pub trades: u64,
    pub messages_per_second: u64,
    pub malformed: u64,
    pub gap_trades_filled: u64,
    pub gaps_unfilled: u64,
    pub bars_rebuilt: u64,
    pub last_error: Option<String>,
}

/// `GET /api/feeds`.
#[derive(Serialize, ToSchema)]
pub struct FeedsReply {
    pub feeds: Vec<FeedBody>,
}

/// `POST /api/feeds`.
#[derive(Serialize, ToSchema)]
pub struct AddFeedBody {
    /// `simulated`, `binance`, `iqfeed` or `replay`.
    pub source: String,
    pub symbol: String,
}

/// `DELETE /api/feeds/{source}/{symbol}`.
#[derive(Serialize, ToSchema)]
pub struct FeedRemoved {
    pub removed: FeedBody,
}

/// A catalogue: `{"strategies": [...]}` or `{"indicators": [...]}`, or the live strategies.
#[derive(Serialize, ToSchema)]
pub struct CatalogReply {
    #[schema(value_type = Option<Vec<Object>>)]
    pub strategies: Option<Vec<serde_json::Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub indicators: Option<Vec<serde_json::Value>>,
}

/// The bars a job runs over, and the job's own fields (docs/STRATEGIES.md).
#[derive(Serialize, ToSchema)]
pub struct JobRequest {
    pub symbol: String,
    /// `1m` when absent.
    pub interval: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// `ema_cross`, `rsi_reversion`, ... (`GET /api/strategies`).
    pub strategy: String,
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

/// A job accepted: `POST /api/backtest/run`, `POST /api/optimize/start`.
#[derive(Serialize, ToSchema)]
pub struct JobStarted {
    pub job_id: String,
    /// `running`.
    pub status: String,
    /// Optimizations: the parameter combinations to evaluate.
    pub combinations: Option<u64>,
}

/// A job's status, and its result once done (docs/STRATEGIES.md).
#[derive(Serialize, ToSchema)]
pub struct JobReply {
    pub job_id: String,
    /// `running`, `done`, `failed` or `cancelled`.
    pub status: String,
}

/// `POST /api/strategies/live` (admin key).
#[derive(Serialize, ToSchema)]
pub struct LiveStrategyRequest {
    pub strategy: String,
    pub symbol: String,
    pub interval: String,
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

/// `DELETE /api/strategies/live/{id}`.
#[derive(Serialize, ToSchema)]
pub struct LiveStopped {
    pub id: u64,
    pub status: String,
}

/// `POST /api/trading-data`, as JSON (or the same fields as a multipart form).
#[derive(Serialize, ToSchema)]
pub struct TradingDataRequest {
    /// Executed trades, CSV (docs/protocol.md, "Scripts").
    pub trades_csv: Option<String>,
    /// OHLCV rows (and indicator columns), CSV.
    pub market_data_csv: Option<String>,
    /// The script's own send time, any JSON value (echoed in logs, not interpreted).
    pub timestamp: Option<serde_json::Value>,
}

/// `GET /api/trades`.
#[derive(Serialize, ToSchema)]
pub struct TradesReply {
    pub symbol: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub trades: Vec<serde_json::Value>,
}

/// The document: every REST route (the Socket.IO and `/ws` protocols are in docs/protocol.md and
/// `/api/asyncapi.json`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "candlecast",
        description = "Real-time market data: symbols, prices, OHLCV history, feeds, strategies and jobs. \
                       Live bars stream over /ws and Socket.IO (docs/protocol.md; AsyncAPI: /api/asyncapi.json).",
        license(name = "Apache-2.0")
    ),
    paths(
        super::market_data::symbols,
        super::symbol_search::by_exchange,
        super::market_data::price,
        super::market_data::historical,
        super::status::stats,
        super::status::health,
        super::status::ready,
        super::status::metrics_route,
        super::feeds::list,
        super::feeds::add,
        super::feeds::remove,
        super::strategies::list_strategies,
        super::strategies::list_indicators,
        super::strategies::backtest_run,
        super::strategies::backtest_results,
        super::strategies::optimize_start,
        super::strategies::optimize_status,
        super::strategies::optimize_results,
        super::strategies::optimize_cancel,
        super::strategies::live_list,
        super::strategies::live_start,
        super::strategies::live_stop,
        super::trading_data::post_trading_data,
        super::trading_data::trading_data_preflight,
        super::trading_data::trades,
        openapi_json,
        super::asyncapi::asyncapi_json,
        docs,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "market data", description = "Symbols, prices and OHLCV history"),
        (name = "operations", description = "Stats, health, Prometheus metrics, this document"),
        (name = "feeds", description = "Running feeds; adding and removing symbols (admin key)"),
        (name = "strategies", description = "Catalogue, backtests, optimizations, live strategies"),
        (name = "scripts", description = "Trades and market data pushed by scripts (script key)"),
    )
)]
pub struct ApiDoc;

/// Keys travel as `Authorization: Bearer <key>` (admin, script and trader keys alike).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The methods the document lists for a concrete path (`/api/price/BTCUSDT` matches
/// `/api/price/{symbol}`): a known path asked with another method answers 405 with `Allow`, not 404.
pub fn allowed_methods(path: &str) -> Vec<String> {
    static ROUTES: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap_or_default();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        paths
            .into_iter()
            .map(|(p, item)| {
                let segments = p.split('/').map(str::to_owned).collect();
                let methods = item.as_object().map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect());
                (segments, methods.unwrap_or_default())
            })
            .collect()
    });
    let asked: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .filter(|(segments, _)| {
            segments.len() == asked.len()
                && segments.iter().zip(&asked).all(|(s, a)| s == a || (s.starts_with('{') && !a.is_empty()))
        })
        .flat_map(|(_, methods)| methods.iter().cloned())
        .collect()
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of the REST API", content_type = "application/json")))]
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}

/// A page that lists every route of the document, with its parameters, bodies and answers.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "The API reference, rendered in the browser from /api/openapi.json", content_type = "text/html")))]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(include_str!("openapi_docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_error_schema_and_bearer_keys() {
        let doc: serde_json::Value = serde_json::from_str(document()).expect("JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert!(doc["paths"]["/api/historical/{symbol}"]["get"]["parameters"].is_array());
    }

    #[test]
    fn allowed_methods_match_templated_paths() {
        assert_eq!(allowed_methods("/api/price/BTCUSDT"), ["GET"]);
        let mut trading = allowed_methods("/api/trading-data");
        trading.sort();
        assert_eq!(trading, ["OPTIONS", "POST"]);
        assert!(allowed_methods("/api/price/").is_empty());
        assert!(allowed_methods("/api/nothing").is_empty());
    }
}
