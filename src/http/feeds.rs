//! The feeds resource: `GET /api/feeds` lists every feed and its health; `POST /api/feeds` and
//! `DELETE /api/feeds/{source}/{symbol}` add and remove symbols at run time, behind an admin key.
//!
//! Admin keys come from `[admin] keys` (or `CANDLECAST__ADMIN__KEYS`) and are sent as
//! `Authorization: Bearer <key>`. No key configured: the write endpoints answer 403 (admin disabled);
//! a missing or wrong key: 401. Every refused attempt is counted (`admin_refused` in `/api/stats`) and
//! logged with the peer address and the reason, never with the key.

use candlecast_actors::model::Symbol;
use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse, ResponseError};
use candlecast_actors::engine::{EngineError, FeedHandle};
use candlecast_actors::feed::FeedSource;
use candlecast_actors::model::now_ms;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::AdminError;
use crate::AppState;

/// What the feed routes answer when they refuse.
#[derive(Debug, thiserror::Error)]
pub enum FeedsError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("invalid request body: {0}")]
    BadBody(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("no {venue} feed for {symbol}")]
    NoSuchFeed { venue: String, symbol: String },
}

impl ResponseError for FeedsError {
    fn status_code(&self) -> StatusCode {
        match self {
            FeedsError::Admin(e) => e.status_code(),
            FeedsError::BadBody(_) => StatusCode::BAD_REQUEST,
            FeedsError::Engine(EngineError::FeedExists { .. }) => StatusCode::CONFLICT,
            FeedsError::Engine(EngineError::Connector { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            FeedsError::Engine(_) => StatusCode::BAD_REQUEST,
            FeedsError::NoSuchFeed { .. } => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let FeedsError::Admin(e) = self {
            return e.error_response();
        }
        let code = match self {
            FeedsError::Admin(_) => unreachable!("answered above"),
            FeedsError::BadBody(_) => "invalid_request",
            FeedsError::Engine(EngineError::FeedExists { .. }) => "feed_exists",
            FeedsError::Engine(EngineError::Connector { .. }) => "unavailable",
            FeedsError::Engine(_) => "invalid_parameter",
            FeedsError::NoSuchFeed { .. } => "not_found",
        };
        HttpResponse::build(self.status_code()).json(json!({ "error": code, "detail": self.to_string() }))
    }
}

/// One feed as `/api/feeds` and `/api/stats` show it.
pub fn feed_json(f: &FeedHandle, now: i64) -> Value {
    let s = &f.status;
    let last = s.last_message_ms.load(Ordering::Relaxed);
    json!({
        "source": f.source,
        "symbol": &*f.symbol,
        "state": s.state().as_str(),
        "last_message_age_ms": (last > 0).then(|| (now - last).max(0)),
        "reconnects": s.reconnects.load(Ordering::Relaxed),
        "trades": s.trades.load(Ordering::Relaxed),
        "messages_per_second": s.trades_per_second.load(Ordering::Relaxed),
        "malformed": s.malformed.load(Ordering::Relaxed),
        "gap_trades_filled": s.gap_trades_filled.load(Ordering::Relaxed),
        "gaps_unfilled": s.gaps_unfilled.load(Ordering::Relaxed),
        "bars_rebuilt": s.bars_rebuilt.load(Ordering::Relaxed),
        "last_error": s.last_error(),
    })
}

/// Every feed with its state, last message age, reconnects and message rate.
#[utoipa::path(get, path = "/api/feeds", tag = "feeds", responses((status = 200, body = super::openapi::FeedsReply)))]
#[get("/api/feeds")]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let now = now_ms();
    let feeds: Vec<Value> = state.engine.feeds.list().iter().map(|f| feed_json(f, now)).collect();
    HttpResponse::Ok().json(json!({ "feeds": feeds }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFeed {
    source: String,
    symbol: String,
}

/// Starts a feed for a symbol (admin only): `{"source":"binance","symbol":"BTCUSDT"}`.
#[utoipa::path(post, path = "/api/feeds", tag = "feeds", security(("bearer" = [])),
    request_body = super::openapi::AddFeedBody,
    responses((status = 201, body = super::openapi::FeedBody), (status = 400, body = super::openapi::ErrorBody), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody),
        (status = 409, description = "The feed runs already", body = super::openapi::ErrorBody), (status = 503, body = super::openapi::ErrorBody)))]
#[post("/api/feeds")]
pub async fn add(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, FeedsError> {
    state.admin.authorize(&req)?;
    let AddFeed { source, symbol } = serde_json::from_slice(&body).map_err(|e| FeedsError::BadBody(e.to_string()))?;
    let symbol = Symbol::normalize(&symbol);
    let source: FeedSource = source.parse().map_err(EngineError::from)?;
    let handle = state.engine.feeds.add(source, &symbol)?;
    tracing::info!(%symbol, %source, "feed added through the API");
    Ok(HttpResponse::Created().json(feed_json(&handle, now_ms())))
}

/// Stops a feed and its upstream connection (admin only). The symbol and its bars stay.
#[utoipa::path(delete, path = "/api/feeds/{source}/{symbol}", tag = "feeds", security(("bearer" = [])),
    params(("source" = String, Path), ("symbol" = String, Path)),
    responses((status = 200, body = super::openapi::FeedRemoved), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody), (status = 404, body = super::openapi::ErrorBody)))]
#[delete("/api/feeds/{source}/{symbol}")]
pub async fn remove(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, FeedsError> {
    state.admin.authorize(&req)?;
    let (source, symbol) = path.into_inner();
    let symbol = Symbol::normalize(&symbol).to_string();
    // A source that does not parse runs no feed: the same 404 as a known source without this symbol.
    match source.parse::<FeedSource>().ok().and_then(|s| state.engine.feeds.remove(s, &symbol)) {
        Some(handle) => Ok(HttpResponse::Ok().json(json!({ "removed": feed_json(&handle, now_ms()) }))),
        None => Err(FeedsError::NoSuchFeed { venue: source, symbol }),
    }
}

/// The HELP lines of the series [`record_metrics`] writes.
pub fn describe_metrics() {
    metrics::describe_gauge!("candlecast_feed_connected", "1 while the feed's upstream connection is up");
    metrics::describe_counter!("candlecast_feed_reconnects_total", "Times the feed reconnected to its upstream");
    metrics::describe_counter!("candlecast_feed_trades_total", "Trades the feed received from its upstream");
    metrics::describe_counter!("candlecast_feed_malformed_total", "Upstream messages the feed could not decode");
    metrics::describe_gauge!("candlecast_feed_messages_per_second", "Trades the feed received during the last second");
    metrics::describe_gauge!(
        "candlecast_feed_last_message_age_seconds",
        "Seconds since the feed's last upstream message (absent before the first)"
    );
    metrics::describe_counter!("candlecast_admin_refused_total", "Admin requests refused for a missing or wrong key");
}

/// Per-feed Prometheus series, labelled by source and symbol.
pub fn record_metrics(state: &AppState) {
    let now = now_ms();
    for f in state.engine.feeds.list() {
        let s = &f.status;
        let labels = [("source", f.source.to_string()), ("symbol", f.symbol.to_string())];
        let connected = f64::from(u8::from(s.state() == candlecast_actors::feed::FeedState::Connected));
        metrics::gauge!("candlecast_feed_connected", &labels).set(connected);
        metrics::counter!("candlecast_feed_reconnects_total", &labels).absolute(s.reconnects.load(Ordering::Relaxed));
        metrics::counter!("candlecast_feed_trades_total", &labels).absolute(s.trades.load(Ordering::Relaxed));
        metrics::counter!("candlecast_feed_malformed_total", &labels).absolute(s.malformed.load(Ordering::Relaxed));
        metrics::gauge!("candlecast_feed_messages_per_second", &labels)
            .set(s.trades_per_second.load(Ordering::Relaxed) as f64);
        let last = s.last_message_ms.load(Ordering::Relaxed);
        if last > 0 {
            metrics::gauge!("candlecast_feed_last_message_age_seconds", &labels)
                .set((now - last).max(0) as f64 / 1000.0);
        }
    }
    metrics::counter!("candlecast_admin_refused_total").absolute(state.admin.refused.load(Ordering::Relaxed));
}
