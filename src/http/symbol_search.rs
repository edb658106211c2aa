//! The symbol search: `GET /api/symbols?q=REL&exchange=NSE&limit=20&offset=0` (plain `GET /api/symbols`
//! keeps listing the running symbols) and `GET /symbols/{exchange}?q=`, seed 002's route for the same
//! list. Both search the symbol master (`candlecast_actors::symbol_master`) and the running symbols.
//!
//! Anonymous, so budgeted: `q` at most 32 characters of a symbol's alphabet, `limit` 1..=100, `offset`
//! at most 10,000 (docs/SECURITY.md). A scan of 100,000 instruments is a few ms (docs/BENCHMARKS.md); it
//! runs on actix's blocking pool, not on the HTTP worker.

use std::collections::HashMap;

use actix_web::{get, web, HttpResponse};
use candlecast_actors::feed::LookupOutcome;
use candlecast_actors::protocol::InvalidParameter;
use candlecast_actors::symbol_master::{source_name, BadSearch, Instrument, SearchQuery};
use serde_json::json;

use super::error::ApiError;
use super::market_data::int_param;
use crate::AppState;

/// Whether a `GET /api/symbols` asks for a search rather than the running symbols.
pub fn is_search(query: &HashMap<String, String>) -> bool {
    ["q", "exchange", "limit", "offset"].iter().any(|k| query.contains_key(*k))
}

fn bad(e: BadSearch) -> ApiError {
    ApiError::BadParameter(InvalidParameter { name: e.name, reason: e.reason })
}

/// Runs the search `query` (with `exchange` from the path when given) and answers its page.
pub async fn answer(
    state: &AppState,
    query: &HashMap<String, String>,
    exchange: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let exchange = exchange.or(query.get("exchange").map(String::as_str));
    let q = SearchQuery::new(
        query.get("q").map(String::as_str),
        exchange,
        int_param(query, "limit")?,
        int_param(query, "offset")?,
    )
    .map_err(bad)?;
    // A server running IQFeed asks IQConnect first (it has no master file); budgeted, see the directory.
    let lookup = match q.q.as_str() {
        "" => None,
        text => state.engine.feeds.look_up(text).await,
    };
    let market = state.engine.market.clone();
    let master = state.engine.feeds.master().clone();
    let search = q.clone();
    let page = web::block(move || {
        // Running symbols no master lists (IQFeed's, replayed, scripts') are found too.
        let running: Vec<Instrument> =
            market.list().iter().map(|e| Instrument::named(&e.symbol, source_name(&e.source))).collect();
        let page = master.search(&search, &running);
        let results: Vec<_> = page
            .results
            .into_iter()
            .map(|i| {
                let live = market.contains(&i.symbol);
                let mut v = json!(i);
                v["live"] = json!(live);
                v
            })
            .collect();
        (page.total, results)
    })
    .await
    .map_err(|_| ApiError::Unavailable("symbol search"))?;
    let mut body = json!({
        "q": q.q,
        "exchange": q.exchange,
        "total": page.0,
        "limit": q.limit,
        "offset": q.offset,
        "results": page.1,
    });
    if let Some(outcome) = lookup {
        body["iqfeed_lookup"] = lookup_json(&outcome);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// What the search got from IQConnect, for the client: `{"looked_up":n}`, `{"fresh":true}`,
/// `{"skipped":"why"}` or `{"failed":"why"}`.
fn lookup_json(outcome: &LookupOutcome) -> serde_json::Value {
    match outcome {
        LookupOutcome::Looked(n) => json!({ "looked_up": n }),
        LookupOutcome::Fresh => json!({ "fresh": true }),
        LookupOutcome::Skipped(why) => json!({ "skipped": why }),
        LookupOutcome::Failed(why) => json!({ "failed": why }),
    }
}

/// Instruments of one exchange (seed 002's route), searched with `q` like `/api/symbols`.
#[utoipa::path(get, path = "/symbols/{exchange}", tag = "market data",
    params(("exchange" = String, Path, description = "An exchange: NSE, BSE, NFO, BFO, MCX, CDS, NCX, BINANCE...; 1 to 8 letters or digits, any case", max_length = 8, pattern = "^[A-Za-z0-9]{1,8}$"),
        ("q" = Option<String>, Query, description = "Part of the trading symbol or name, any case; `NSE:REL` also works", max_length = 32, pattern = "^([A-Za-z0-9]{1,8}:)?[A-Za-z0-9 ._&-]{0,32}$"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Results per page (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 10000, description = "Results to skip")),
    responses((status = 200, description = "Instruments of the exchange, best match first", body = super::openapi::SymbolSearchReply),
        (status = 400, description = "A bad parameter, naming its limit", body = super::openapi::ErrorBody)))]
#[get("/symbols/{exchange}")]
pub async fn by_exchange(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &query, Some(path.as_str())).await
}
