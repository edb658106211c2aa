//! Script data over REST: `POST /api/trading-data` (seed 003's curl form, or JSON) does what the
//! Socket.IO `send_trading_data` event does; `GET /api/trades?symbol=&limit=` serves the executed trades.
//!
//! The POST needs a script key as `Authorization: Bearer <key>`; browsers are held to
//! `[scripts] cors_origins`. Refusals are JSON `{"error","detail"}` and counted.

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use candlecast_actors::model::Symbol;
use std::collections::HashMap;

use actix_web::{get, post, route, web, HttpRequest, HttpResponse, ResponseError};
use bytes::BytesMut;
use candlecast_actors::protocol::InvalidParameter;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use super::admin::bearer_token;
use super::cors;
use super::error::ApiError;
use crate::script_ingest::ingest::{TradingData, UploadError};
use crate::script_ingest::stats::ScriptStats;
use crate::script_ingest::AuthError;
use crate::socketio::events::{receive_trading_data, upload_error_code};
use crate::AppState;
use candlecast_actors::model::format_iso;

/// Executed trades answered when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// Why a script request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TradingDataError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("origin {0:?} is not allowed; list it in [scripts] cors_origins")]
    Origin(String),
    #[error("body is over the {0}-byte limit ([scripts] max_upload_bytes)")]
    TooLarge(usize),
    #[error("{0}")]
    BadBody(String),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

impl ResponseError for TradingDataError {
    fn status_code(&self) -> StatusCode {
        match self {
            TradingDataError::Auth(AuthError::Disabled) | TradingDataError::Origin(_) => StatusCode::FORBIDDEN,
            TradingDataError::Auth(_) => StatusCode::UNAUTHORIZED,
            TradingDataError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            TradingDataError::BadBody(_) => StatusCode::BAD_REQUEST,
            TradingDataError::Upload(UploadError::Limit(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            TradingDataError::Upload(UploadError::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            TradingDataError::Auth(AuthError::Disabled) => "scripts_disabled",
            TradingDataError::Auth(_) => "unauthorized",
            TradingDataError::Origin(_) => "forbidden_origin",
            TradingDataError::TooLarge(_) => "payload_too_large",
            TradingDataError::BadBody(_) => "invalid_request",
            TradingDataError::Upload(e) => upload_error_code(e),
        };
        let mut resp = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::UNAUTHORIZED {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        let mut body = json!({ "error": code, "detail": self.to_string() });
        if let TradingDataError::Upload(UploadError::Limit(e)) = self {
            body["limit"] = format!("scripts.{}", e.limit()).into();
        }
        resp.json(body)
    }
}

/// Keeps executed trades and market data like `send_trading_data`; answers with the counts and every
/// refused row (`{"status","message","trades","market_data","rejected","errors":[{"csv","line","reason"}],"bars","timestamp"}`).
#[utoipa::path(post, path = "/api/trading-data", tag = "scripts", security(("bearer" = [])),
    request_body(content((super::openapi::TradingDataRequest = "application/json"), (super::openapi::TradingDataRequest = "multipart/form-data"))),
    responses((status = 200, description = "Rows accepted and refused, with line numbers", body = Object), (status = 400, body = super::openapi::ErrorBody),
        (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody), (status = 413, body = super::openapi::ErrorBody), (status = 429, body = super::openapi::ErrorBody),
        (status = 503, body = super::openapi::ErrorBody)))]
#[post("/api/trading-data")]
pub async fn post_trading_data(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TradingDataError> {
    let allowed =
        cors::check(&req, &state.socketio.settings.cors_origins).map_err(|o| TradingDataError::Origin(o.0))?;
    let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    state.scripts.authorize_push(bearer_token(&req), &peer, "rest")?;
    let max = state.socketio.settings.max_upload_bytes;
    let data = match read_body(&req, payload, max).await {
        Err(TradingDataError::TooLarge(max)) => {
            ScriptStats::add(&state.scripts.stats.oversize_payloads, 1);
            return Err(TradingDataError::TooLarge(max));
        }
        other => other?,
    };
    if data.trades_csv.is_none() && data.market_data_csv.is_none() {
        return Err(TradingDataError::BadBody(
            "send trades_csv and/or market_data_csv (multipart form fields or JSON)".into(),
        ));
    }
    let body = receive_trading_data(&state.socketio, data).await?;
    let mut resp = HttpResponse::Ok().json(body);
    cors::decorate(&mut resp, &allowed);
    Ok(resp)
}

/// Reads a multipart form (files or text fields) or a JSON object, at most `max` bytes in all.
async fn read_body(req: &HttpRequest, payload: web::Payload, max: usize) -> Result<TradingData, TradingDataError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), payload);
        let mut data = TradingData::default();
        let mut total = 0;
        while let Some(field) = form.next().await {
            let mut field = field.map_err(|e| TradingDataError::BadBody(format!("bad multipart body: {e}")))?;
            let name = field.name().unwrap_or("").to_owned();
            let bytes = match field.bytes(max.saturating_sub(total)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(TradingDataError::BadBody(format!("bad multipart field {name:?}: {e}"))),
                Err(_) => return Err(TradingDataError::TooLarge(max)),
            };
            total += bytes.len();
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| TradingDataError::BadBody(format!("field {name:?} is not UTF-8 text")))?;
            match name.as_str() {
                "trades_csv" => data.trades_csv = Some(text),
                "market_data_csv" => data.market_data_csv = Some(text),
                "timestamp" => data.timestamp = Some(Value::String(text)),
                _ => {}
            }
        }
        return Ok(data);
    }
    let mut payload = payload;
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| TradingDataError::BadBody(format!("could not read the body: {e}")))?;
        if buf.len() + chunk.len() > max {
            return Err(TradingDataError::TooLarge(max));
        }
        buf.extend_from_slice(&chunk);
    }
    // Up to max_upload_bytes of JSON take about a millisecond per megabyte to parse: off the HTTP worker, whose
    // other sockets (live /ws clients among them) would wait meanwhile.
    let parsed = web::block(move || serde_json::from_slice::<TradingData>(&buf))
        .await
        .map_err(|_| TradingDataError::Upload(UploadError::Unavailable))?;
    parsed.map_err(|e| {
        TradingDataError::BadBody(format!(
            "expected a multipart form or JSON {{\"trades_csv\",\"market_data_csv\",\"timestamp\"}}: {e}"
        ))
    })
}

/// One executed trade as served: `timestamp` in ms, `time` the same in ISO 8601.
#[derive(Serialize)]
struct TradeOut<'a> {
    #[serde(flatten)]
    trade: &'a crate::script_ingest::csv::ExecutedTrade,
    time: String,
}

/// The newest executed trades scripts reported, oldest first: `?symbol=AAPL&limit=100` →
/// `{"symbol","trades":[...]}` (every symbol without `symbol`).
#[utoipa::path(get, path = "/api/trades", tag = "scripts",
    params(("symbol" = Option<String>, Query, description = "Only this symbol"), ("limit" = Option<u64>, Query, minimum = 1, maximum = 10000, description = "Newest trades to return (at most scripts.max_trades_per_symbol, 10000 by default)")),
    responses((status = 200, body = super::openapi::TradesReply), (status = 400, body = super::openapi::ErrorBody)))]
#[get("/api/trades")]
pub async fn trades(
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let cap = state.socketio.settings.max_trades_per_symbol;
    let limit = match query.get("limit").map(|l| l.trim().parse::<usize>()) {
        None => DEFAULT_LIMIT.min(cap),
        Some(Ok(l)) if (1..=cap).contains(&l) => l,
        Some(_) => {
            return Err(
                InvalidParameter { name: "limit", reason: format!("expected an integer from 1 to {cap}") }.into()
            )
        }
    };
    let symbol = query.get("symbol").map(|s| Symbol::normalize(s.trim()).to_string()).filter(|s| !s.is_empty());
    let trades = state.scripts.recent_trades(symbol.clone(), limit).await;
    let out: Vec<TradeOut> = trades.iter().map(|t| TradeOut { trade: t, time: format_iso(t.timestamp) }).collect();
    Ok(HttpResponse::Ok().json(json!({ "symbol": symbol, "trades": out })))
}

/// The CORS preflight of `POST /api/trading-data` (browsers send it before an `Authorization` header).
#[utoipa::path(options, path = "/api/trading-data", tag = "scripts",
    responses((status = 204, description = "CORS preflight answered"), (status = 403, description = "Origin not allowed", body = super::openapi::ErrorBody)))]
#[route("/api/trading-data", method = "OPTIONS")]
pub async fn trading_data_preflight(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TradingDataError> {
    let allowed =
        cors::check(&req, &state.socketio.settings.cors_origins).map_err(|o| TradingDataError::Origin(o.0))?;
    Ok(cors::preflight(&allowed))
}
