//! Strategy routes (seed 002's API): the catalogue, backtests and parameter optimization as jobs.
//!
//! - `GET /api/strategies`, `GET /api/indicators`
//! - `POST /api/backtest/run` → `{job_id}`; `GET /api/backtest/results/{job_id}`
//! - `GET /api/strategies/live`; `POST /api/strategies/live` and `DELETE /api/strategies/live/{id}` (admin key)
//! - `POST /api/optimize/start` → `{job_id}`; `GET /api/optimize/status/{job_id}`,
//!   `GET /api/optimize/results/{job_id}`, `POST /api/optimize/cancel/{job_id}`
//!
//! Bars come from the same history the charts use; a request names `symbol`, `interval` and optionally
//! `start_time`/`end_time` (ms). Starting and cancelling jobs go through the trader role and the `[jobs]`
//! budgets (docs/SECURITY.md, "Roles and jobs"): the running-job budget is taken before any history is read.

use std::net::IpAddr;

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use candlecast_actors::model::{Bar, Interval};
use candlecast_actors::protocol::HistoryQuery;
use candlecast_actors::strategy::indicator_catalog;
use candlecast_actors::strategy::{build_strategy, strategy_catalog};
use candlecast_actors::strategy::{run_backtest_limited, BacktestConfig, ReportLimits};
use candlecast_actors::strategy::{run_plan, validate_spec, OptimizeSpec};
use candlecast_actors::strategy::{ListStrategies, LiveSpec, StartStrategy, StopStrategy};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::market_data::find_symbol;
use crate::jobs::{Caller, Described, JobError, Kind, Size};
use crate::AppState;

/// Which bars a job runs over.
#[derive(Debug, Deserialize)]
struct BarRange {
    symbol: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    end_time: Option<i64>,
}

const RANGE_KEYS: [&str; 4] = ["symbol", "interval", "start_time", "end_time"];

/// `{"strategy":"ema_cross","params":{..},"config":{..}}` plus the bar range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BacktestRequest {
    strategy: String,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    config: BacktestConfig,
}

fn invalid(detail: impl ToString) -> ApiError {
    ApiError::Invalid(detail.to_string())
}

/// Splits a request body into its bar range and the rest (the job's own fields).
fn split_range(body: Value) -> Result<(BarRange, Value), ApiError> {
    let Value::Object(mut fields) = body else { return Err(invalid("the body must be a JSON object")) };
    let mut range = serde_json::Map::new();
    for key in RANGE_KEYS {
        if let Some(v) = fields.remove(key) {
            range.insert(key.into(), v);
        }
    }
    let range: BarRange =
        serde_json::from_value(Value::Object(range)).map_err(|e| invalid(format!("bar range: {e}")))?;
    Ok((range, Value::Object(fields)))
}

/// The closed bars of the range the caller's budget allows: the newest `max_bars` (then `limited`).
struct Loaded {
    interval: Interval,
    bars: Vec<Bar>,
    limited: bool,
}

/// Parses the range (a 400 before anything is reserved) into the query the loader will run.
fn query_for(state: &AppState, range: &BarRange, caller: Caller) -> Result<HistoryQuery, ApiError> {
    let mut q = HistoryQuery::parse(range.interval.as_deref(), None, range.start_time, range.end_time)?;
    // One more than allowed, plus the forming bar, tells whether the range held more.
    q.limit = max_bars(state, caller).saturating_add(2);
    Ok(q)
}

/// Loads the bars of a reserved job on the jobs' loader thread: the store read and the merge never run on
/// an HTTP worker, and the query is bounded by the caller's `max_bars`.
/// Whether `host` may load a job's history now: the bars a job loads are paid from the host's history
/// budget (`[http] history_bars_per_second_per_host`), as `/api/historical` reads are; otherwise a host
/// could read the same history through back-to-back jobs without limit (30 threads: 150 backtests a second
/// in the abuse benchmark, each a copy of an hour of 1s bars). Checked before a job takes a slot.
fn may_load(state: &AppState, host: IpAddr) -> actix_web::Result<()> {
    state.services.history_reads.admit_unsized(Some(host)).map_err(|refusal| {
        let response = refusal.response();
        actix_web::error::InternalError::from_response(refusal, response).into()
    })
}

async fn load_bars(
    state: &AppState,
    host: IpAddr,
    range: &BarRange,
    q: HistoryQuery,
    max: usize,
) -> Result<Loaded, ApiError> {
    let entry = find_symbol(state, &range.symbol)?;
    let history = state.engine.history.clone();
    let loaded = state
        .jobs
        .load(async move {
            let mut bars = history.bars(&entry, q).await?;
            bars.retain(|b| b.closed);
            let limited = bars.len() > max;
            if limited {
                bars.drain(..bars.len() - max);
            }
            Ok::<_, ApiError>((bars, limited))
        })
        .await
        .ok_or(ApiError::Unavailable("the history loader"))??;
    let (bars, limited) = loaded;
    state.services.history_reads.charge_done(Some(host), bars.len());
    if bars.is_empty() {
        return Err(ApiError::NoData("closed bar in that range"));
    }
    Ok(Loaded { interval: q.interval, bars, limited })
}

fn max_bars(state: &AppState, caller: Caller) -> usize {
    let c = state.jobs.config();
    if caller.is_anonymous() {
        c.max_bars_anonymous
    } else {
        c.max_bars
    }
}

/// A job's JSON, its stored result appended without a copy.
fn job_response(described: Described) -> HttpResponse {
    let chunks = described.into_chunks().into_iter().map(Ok::<_, std::convert::Infallible>);
    HttpResponse::Ok().content_type("application/json").streaming(futures_util::stream::iter(chunks))
}

/// Strategy names with their parameters (types, ranges, defaults).
#[utoipa::path(get, path = "/api/strategies", tag = "strategies", responses((status = 200, body = super::openapi::CatalogReply)))]
#[get("/api/strategies")]
pub async fn list_strategies() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "strategies": strategy_catalog() }))
}

/// Indicator names with their parameters.
#[utoipa::path(get, path = "/api/indicators", tag = "strategies", responses((status = 200, body = super::openapi::CatalogReply)))]
#[get("/api/indicators")]
pub async fn list_indicators() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "indicators": indicator_catalog() }))
}

/// Starts a backtest; answers 202 with the job id, 400 naming what is wrong, 401/403 without a needed
/// key, 429/503 beyond a running-job budget (checked before any history is read).
#[utoipa::path(post, path = "/api/backtest/run", tag = "strategies", request_body = super::openapi::JobRequest,
    responses((status = 202, body = super::openapi::JobStarted), (status = 400, body = super::openapi::ErrorBody), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody),
        (status = 404, body = super::openapi::ErrorBody), (status = 413, body = super::openapi::ErrorBody), (status = 415, description = "Not JSON", body = super::openapi::ErrorBody), (status = 429, body = super::openapi::ErrorBody), (status = 503, body = super::openapi::ErrorBody)))]
#[post("/api/backtest/run")]
pub async fn backtest_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> actix_web::Result<HttpResponse> {
    let caller = state.jobs.access.caller(&req)?;
    let host = state.jobs.access.host(&req);
    let (range, rest) = split_range(body.into_inner())?;
    let req: BacktestRequest = serde_json::from_value(rest).map_err(|e| invalid(format!("backtest request: {e}")))?;
    req.config.validate().map_err(invalid)?;
    // Build once now so a bad name or parameter is a 400, not a failed job.
    build_strategy(&req.strategy, &req.params).map_err(invalid)?;
    let q = query_for(&state, &range, caller)?;
    find_symbol(&state, &range.symbol)?;
    may_load(&state, host)?;
    let reservation = state.jobs.reserve(Kind::Backtest, caller)?;
    let loaded = load_bars(&state, host, &range, q, max_bars(&state, caller)).await?;
    let config = state.jobs.config();
    let limits = ReportLimits { equity_points: config.max_equity_points, trades: config.max_trades };
    let Loaded { interval, bars, limited } = loaded;
    let symbol = bars[0].symbol.to_string();
    let id = reservation.start(move |_, cancel| {
        let strategy = build_strategy(&req.strategy, &req.params)?;
        let report = run_backtest_limited(strategy, &bars, &req.config, limits, cancel)?;
        let mut v = serde_json::to_value(&report)?;
        v["symbol"] = json!(symbol);
        v["interval"] = json!(interval);
        v["strategy"] = json!(req.strategy);
        v["bars"] = json!(bars.len());
        v["bars_limited"] = json!(limited);
        Ok(serde_json::to_vec(&v)?)
    });
    Ok(HttpResponse::Accepted().json(json!({ "job_id": id, "status": "running" })))
}

#[utoipa::path(get, path = "/api/backtest/results/{job_id}", tag = "strategies", params(("job_id" = String, Path)),
    responses((status = 200, body = super::openapi::JobReply), (status = 404, body = super::openapi::ErrorBody)))]
#[get("/api/backtest/results/{job_id}")]
pub async fn backtest_results(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, JobError> {
    Ok(job_response(state.jobs.describe(&id, Kind::Backtest, true)?))
}

/// Starts an optimization: the spec (strategy, params grid or ranges, rank_by, ...) plus the bar range.
/// `top` and the grid's size are checked against the caller's budget (400 naming the limit).
#[utoipa::path(post, path = "/api/optimize/start", tag = "strategies", request_body = super::openapi::JobRequest,
    responses((status = 202, body = super::openapi::JobStarted), (status = 400, body = super::openapi::ErrorBody), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody),
        (status = 404, body = super::openapi::ErrorBody), (status = 413, body = super::openapi::ErrorBody), (status = 415, description = "Not JSON", body = super::openapi::ErrorBody), (status = 429, body = super::openapi::ErrorBody), (status = 503, body = super::openapi::ErrorBody)))]
#[post("/api/optimize/start")]
pub async fn optimize_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> actix_web::Result<HttpResponse> {
    let caller = state.jobs.access.caller(&req)?;
    let host = state.jobs.access.host(&req);
    let (range, rest) = split_range(body.into_inner())?;
    let spec: OptimizeSpec = serde_json::from_value(rest).map_err(|e| invalid(format!("optimize request: {e}")))?;
    let plan = validate_spec(&spec).map_err(invalid)?;
    let config = state.jobs.config();
    let too_large = |size: Size, got: usize, max: usize| {
        candlecast_actors::refusals::refused(size.name());
        JobError::TooLarge { size, got, max }
    };
    if plan.top > config.max_top {
        return Err(too_large(Size::Top, plan.top, config.max_top).into());
    }
    let anonymous = caller.is_anonymous();
    let max_combinations = if anonymous { config.max_combinations_anonymous } else { config.max_combinations };
    let combinations = plan.grid.len();
    if combinations > max_combinations {
        return Err(too_large(Size::Combinations { anonymous }, combinations, max_combinations).into());
    }
    let q = query_for(&state, &range, caller)?;
    find_symbol(&state, &range.symbol)?;
    may_load(&state, host)?;
    let reservation = state.jobs.reserve(Kind::Optimize, caller)?;
    let Loaded { bars, limited, .. } = load_bars(&state, host, &range, q, max_bars(&state, caller)).await?;
    let id = reservation.start(move |progress, cancel| {
        let outcome = run_plan(&plan, &bars, progress, cancel)?;
        let mut v = serde_json::to_value(&outcome)?;
        v["bars"] = json!(bars.len());
        v["bars_limited"] = json!(limited);
        Ok(serde_json::to_vec(&v)?)
    });
    Ok(HttpResponse::Accepted().json(json!({ "job_id": id, "status": "running", "combinations": combinations })))
}

#[utoipa::path(get, path = "/api/optimize/status/{job_id}", tag = "strategies", params(("job_id" = String, Path)),
    responses((status = 200, body = super::openapi::JobReply), (status = 404, body = super::openapi::ErrorBody)))]
#[get("/api/optimize/status/{job_id}")]
pub async fn optimize_status(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, JobError> {
    Ok(job_response(state.jobs.describe(&id, Kind::Optimize, false)?))
}

#[utoipa::path(get, path = "/api/optimize/results/{job_id}", tag = "strategies", params(("job_id" = String, Path)),
    responses((status = 200, body = super::openapi::JobReply), (status = 404, body = super::openapi::ErrorBody)))]
#[get("/api/optimize/results/{job_id}")]
pub async fn optimize_results(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, JobError> {
    Ok(job_response(state.jobs.describe(&id, Kind::Optimize, true)?))
}

/// Cancels an optimization; only the caller that started it may (anyone else gets 404).
#[utoipa::path(post, path = "/api/optimize/cancel/{job_id}", tag = "strategies", params(("job_id" = String, Path)),
    responses((status = 200, body = super::openapi::JobReply), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody), (status = 404, body = super::openapi::ErrorBody)))]
#[post("/api/optimize/cancel/{job_id}")]
pub async fn optimize_cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> actix_web::Result<HttpResponse> {
    let caller = state.jobs.access.caller(&req)?;
    state.jobs.cancel(&id, Kind::Optimize, caller)?;
    Ok(job_response(state.jobs.describe(&id, Kind::Optimize, false)?))
}

/// The strategies running live.
#[utoipa::path(get, path = "/api/strategies/live", tag = "strategies",
    responses((status = 200, body = super::openapi::CatalogReply), (status = 503, body = super::openapi::ErrorBody)))]
#[get("/api/strategies/live")]
pub async fn live_list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let list = state
        .services
        .strategies
        .send(ListStrategies)
        .await
        .map_err(|_| ApiError::Unavailable("the strategy actor"))?;
    Ok(HttpResponse::Ok().json(json!({ "strategies": list })))
}

/// Starts a strategy live (admin key): `{"strategy":"ema_cross","symbol":"BTCUSDT","interval":"1m","params":{..}}`.
#[utoipa::path(post, path = "/api/strategies/live", tag = "strategies", security(("bearer" = [])),
    request_body = super::openapi::LiveStrategyRequest,
    responses((status = 201, description = "The strategy runs", body = Object), (status = 415, description = "Not JSON", body = super::openapi::ErrorBody), (status = 400, body = super::openapi::ErrorBody), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody), (status = 503, body = super::openapi::ErrorBody)))]
#[post("/api/strategies/live")]
pub async fn live_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state.admin.authorize(&req)?;
    let spec: LiveSpec =
        serde_json::from_value(body.into_inner()).map_err(|e| invalid(format!("strategy request: {e}")))?;
    let info = state
        .services
        .strategies
        .send(StartStrategy(spec))
        .await
        .map_err(|_| ApiError::Unavailable("the strategy actor"))?
        .map_err(invalid)?;
    Ok(HttpResponse::Created().json(info))
}

/// Stops a live strategy (admin key); its past signals stay available.
#[utoipa::path(delete, path = "/api/strategies/live/{id}", tag = "strategies", security(("bearer" = [])),
    params(("id" = u64, Path)),
    responses((status = 200, body = super::openapi::LiveStopped), (status = 401, body = super::openapi::ErrorBody), (status = 403, body = super::openapi::ErrorBody), (status = 404, body = super::openapi::ErrorBody), (status = 503, body = super::openapi::ErrorBody)))]
#[delete("/api/strategies/live/{id}")]
pub async fn live_stop(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    state.admin.authorize(&req)?;
    let id = id.into_inner();
    let stopped = state
        .services
        .strategies
        .send(StopStrategy(id))
        .await
        .map_err(|_| ApiError::Unavailable("the strategy actor"))?;
    if !stopped {
        return Err(ApiError::NotFound(format!("live strategy {id}")));
    }
    Ok(HttpResponse::Ok().json(json!({ "id": id, "status": "stopped" })))
}
