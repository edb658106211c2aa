//! Market data routes: `/api/symbols`, `/api/price/{symbol}`, `/api/historical/{symbol}`.

use candlecast_actors::model::Symbol;
use std::collections::HashMap;

use actix_web::{get, web, HttpRequest, HttpResponse};
use candlecast_actors::aggregator::GetQuote;
use candlecast_actors::market::SymbolEntry;
use candlecast_actors::persist::HistoryError;
use candlecast_actors::protocol::{parse_since, Historical, HistoryQuery, InvalidParameter};
use serde_json::json;

use super::error::ApiError;
use crate::AppState;

/// Looks a symbol up, case-insensitively.
pub fn find_symbol(state: &AppState, symbol: &str) -> Result<SymbolEntry, ApiError> {
    state.engine.market.get(&Symbol::normalize(symbol)).ok_or_else(|| ApiError::UnknownSymbol(symbol.to_owned()))
}

async fn quote(entry: &SymbolEntry) -> Option<(f64, i64)> {
    entry.aggregator.send(GetQuote).await.ok().flatten()
}

/// Every symbol with its source, last price and trade rate; with `q`, `exchange`, `limit` or `offset`,
/// a search of the symbol master instead ([`super::symbol_search`]).
#[utoipa::path(get, path = "/api/symbols", tag = "market data",
    params(("q" = Option<String>, Query, description = "Search: part of the trading symbol or name, any case; `NSE:REL` also works", max_length = 32, pattern = "^([A-Za-z0-9]{1,8}:)?[A-Za-z0-9 ._&-]{0,32}$"),
        ("exchange" = Option<String>, Query, description = "Search: only this exchange (NSE, BSE, NFO, MCX, BINANCE...)", max_length = 8, pattern = "^[A-Za-z0-9]{1,8}$"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Search: results per page (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 10000, description = "Search: results to skip")),
    responses((status = 200, description = "Without search parameters: every running symbol with its source, last price and trade rate. With them: instruments of the symbol master, best match first", body = super::openapi::SymbolsAnswer),
        (status = 400, description = "A bad search parameter, naming its limit", body = super::openapi::ErrorBody)))]
#[get("/api/symbols")]
pub async fn symbols(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    if super::symbol_search::is_search(&query) {
        return super::symbol_search::answer(&state, &query, None).await;
    }
    let entries = state.engine.market.list();
    let settings = state.engine.market.settings();
    let mut details = Vec::with_capacity(entries.len());
    for e in &entries {
        // Exchange symbols trade in sessions: the page tells a closed market from a silent feed with it.
        let calendar = settings.calendar_for(&e.symbol);
        details.push(json!({
            "symbol": &*e.symbol,
            "source": &*e.source,
            "price": quote(e).await.map(|(p, _)| p),
            "trade_rate": e.stats.trade_rate(),
            "session": calendar.session().map(|s| s.view()),
        }));
    }
    let names: Vec<&str> = entries.iter().map(|e| &*e.symbol).collect();
    Ok(HttpResponse::Ok().json(json!({ "symbols": names, "details": details })))
}

/// The last traded price of a symbol.
#[utoipa::path(get, path = "/api/price/{symbol}", tag = "market data",
    params(("symbol" = String, Path, description = "A symbol of /api/symbols, any case")),
    responses((status = 200, body = super::openapi::PriceReply), (status = 404, description = "Unknown symbol", body = super::openapi::ErrorBody),
        (status = 503, description = "No trade yet", body = super::openapi::ErrorBody)))]
#[get("/api/price/{symbol}")]
pub async fn price(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let entry = find_symbol(&state, &path)?;
    let (price, ts) = quote(&entry).await.ok_or(ApiError::NoData("trade"))?;
    Ok(HttpResponse::Ok().json(json!({ "symbol": &*entry.symbol, "price": price, "timestamp": ts })))
}

/// Bars of a symbol, ascending: `?interval=1m&limit=1000&end_time=<ms, exclusive>&start_time=<ms>`,
/// from the store and the in-memory window. With `&since=<ms>`: only bars created or revised since then
/// (for upsert polling), and `as_of` in the reply to pass as the next `since`.
///
/// The read and the JSON encoding run on the history thread under the per-host and total budgets of
/// [`super::history_reads`]; beyond them, 429/503 naming the limit, with `Retry-After`.
#[utoipa::path(get, path = "/api/historical/{symbol}", tag = "market data",
    params(("symbol" = String, Path, description = "A symbol of /api/symbols, any case"),
        ("interval" = Option<super::openapi::IntervalName>, Query, description = "Bar interval (default 1m)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 5000, description = "Bars to return, the newest ones"),
        ("start_time" = Option<i64>, Query, minimum = 0.0, maximum = 4102444800000.0, description = "First bar open time, ms"),
        ("end_time" = Option<i64>, Query, minimum = 0.0, maximum = 4102444800000.0, description = "Bars opening before this, ms (exclusive)"),
        ("since" = Option<i64>, Query, minimum = 0.0, maximum = 4102444800000.0, description = "Only bars created or revised since this server time, ms")),
    responses((status = 200, body = super::openapi::HistoricalReply), (status = 400, description = "A bad parameter", body = super::openapi::ErrorBody),
        (status = 404, description = "Unknown symbol", body = super::openapi::ErrorBody), (status = 429, description = "A per-host history budget (history_reads_per_host, history_bars_per_host); Retry-After says when", body = super::openapi::ErrorBody),
        (status = 503, description = "The store is unavailable, or the total history_reads budget", body = super::openapi::ErrorBody)))]
#[get("/api/historical/{symbol}")]
pub async fn historical(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let entry = find_symbol(&state, &path)?;
    let q = HistoryQuery::parse(
        query.get("interval").map(String::as_str),
        int_param(&query, "limit")?,
        int_param(&query, "start_time")?,
        int_param(&query, "end_time")?,
    )?;
    let since = parse_since(int_param(&query, "since")?)?;
    let (history, scripts) = (state.engine.history.clone(), state.scripts.clone());
    let work = async move {
        let (bars, as_of) = match history.query(&entry, q, since).await {
            Ok(read) => read,
            Err(e) => return (Err(e), 0),
        };
        let reply = Historical::new(&entry.symbol, q.interval, &bars, None).with_as_of(as_of);
        // Bars a script pushed with indicator columns carry them as `indicators`; other replies are unchanged.
        let body = match scripts.indicators.decorate(&entry.symbol, q.interval, &reply) {
            Some(decorated) => serde_json::to_vec(&decorated),
            None => serde_json::to_vec(&reply),
        };
        (Ok::<_, HistoryError>(body), bars.len())
    };
    let peer = req.peer_addr().map(|a| a.ip());
    match state.services.history_reads.run(peer, q.limit, work).await {
        Err(refusal) => Ok(refusal.response()),
        Ok(None) => Err(ApiError::Unavailable("history")),
        Ok(Some(Err(e))) => Err(e.into()),
        Ok(Some(Ok(Err(_)))) => Err(ApiError::Unavailable("history encoding")),
        Ok(Some(Ok(Ok(body)))) => Ok(HttpResponse::Ok().content_type("application/json").body(body)),
    }
}

pub(crate) fn int_param(query: &HashMap<String, String>, name: &'static str) -> Result<Option<i64>, InvalidParameter> {
    query
        .get(name)
        .map(|raw| {
            raw.trim()
                .parse::<i64>()
                .map_err(|_| InvalidParameter { name, reason: format!("expected an integer, got {raw:?}") })
        })
        .transpose()
}
