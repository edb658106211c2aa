//! Strategy routes (seed 002's API): the catalogue, backtests and parameter optimization as jobs.
//!
//! - `GET /api/strategies`, `GET /api/indicators`
//! - `POST /api/backtest/run` → `{job_id}`; `GET /api/backtest/results/{job_id}`
//! - `GET /api/strategies/live`; `POST /api/strategies/live` and `DELETE /api/strategies/live/{id}` (admin key)
//! - `POST /api/optimize/start` → `{job_id}`; `GET /api/optimize/status/{job_id}`,
//!   `GET /api/optimize/results/{job_id}`, `POST /api/optimize/cancel/{job_id}`
//!
//! Bars come from the same history the charts use; a request names `symbol`, `interval` and optionally
//! `start_time`/`end_time` (ms).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use candlecast_actors::model::{Bar, Interval};
use candlecast_actors::protocol::HistoryQuery;
use candlecast_actors::strategy::backtest::{run_backtest, BacktestConfig};
use candlecast_actors::strategy::indicators::indicator_catalog;
use candlecast_actors::strategy::live::signals::{ListStrategies, LiveSpec, StartStrategy, StopStrategy};
use candlecast_actors::strategy::optimize::{run_plan, validate_spec, OptimizeSpec};
use candlecast_actors::strategy::strategies::{build_strategy, strategy_catalog};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::market_data::find_symbol;
use crate::jobs::{JobError, Kind};
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

impl From<JobError> for ApiError {
    fn from(e: JobError) -> ApiError {
        match e {
            JobError::Busy => ApiError::Unavailable("a job slot"),
            JobError::NotFound(_) => ApiError::NotFound(e.to_string()),
        }
    }
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

/// Every closed bar in range from the symbol's history (store and memory).
async fn bars_for(state: &AppState, range: &BarRange) -> Result<(Interval, Vec<Bar>), ApiError> {
    let entry = find_symbol(state, &range.symbol)?;
    let mut q = HistoryQuery::parse(range.interval.as_deref(), None, range.start_time, range.end_time)?;
    q.limit = usize::MAX;
    let mut bars = state.engine.history.bars(&entry, q).await?;
    bars.retain(|b| b.closed);
    if bars.is_empty() {
        return Err(ApiError::NoData("closed bar in that range"));
    }
    Ok((q.interval, bars))
}

/// Strategy names with their parameters (types, ranges, defaults).
#[get("/api/strategies")]
pub async fn list_strategies() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "strategies": strategy_catalog() }))
}

/// Indicator names with their parameters.
#[get("/api/indicators")]
pub async fn list_indicators() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "indicators": indicator_catalog() }))
}

/// Starts a backtest; answers 202 with the job id, or 400 naming what is wrong.
#[post("/api/backtest/run")]
pub async fn backtest_run(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let (range, rest) = split_range(body.into_inner())?;
    let req: BacktestRequest = serde_json::from_value(rest).map_err(|e| invalid(format!("backtest request: {e}")))?;
    req.config.validate().map_err(invalid)?;
    // Build once now so a bad name or parameter is a 400, not a failed job.
    build_strategy(&req.strategy, &req.params).map_err(invalid)?;
    let (interval, bars) = bars_for(&state, &range).await?;
    let symbol = bars[0].symbol.to_string();
    let id = state.jobs.start(Kind::Backtest, move |_, _| {
        let strategy = build_strategy(&req.strategy, &req.params).map_err(|e| e.to_string())?;
        let report = run_backtest(strategy, &bars, &req.config).map_err(|e| e.to_string())?;
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        v["symbol"] = json!(symbol);
        v["interval"] = json!(interval);
        v["strategy"] = json!(req.strategy);
        v["bars"] = json!(bars.len());
        Ok(v)
    })?;
    Ok(HttpResponse::Accepted().json(json!({ "job_id": id, "status": "running" })))
}

#[get("/api/backtest/results/{job_id}")]
pub async fn backtest_results(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.jobs.describe(&id, Kind::Backtest, true)?))
}

/// Starts an optimization: the spec (strategy, params grid or ranges, rank_by, ...) plus the bar range.
#[post("/api/optimize/start")]
pub async fn optimize_start(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let (range, rest) = split_range(body.into_inner())?;
    let spec: OptimizeSpec = serde_json::from_value(rest).map_err(|e| invalid(format!("optimize request: {e}")))?;
    let plan = validate_spec(&spec).map_err(invalid)?;
    let (_, bars) = bars_for(&state, &range).await?;
    let combinations = plan.grid.len();
    let id = state.jobs.start(Kind::Optimize, move |progress, cancel| {
        let outcome = run_plan(&plan, &bars, progress, cancel).map_err(|e| e.to_string())?;
        serde_json::to_value(&outcome).map_err(|e| e.to_string())
    })?;
    Ok(HttpResponse::Accepted().json(json!({ "job_id": id, "status": "running", "combinations": combinations })))
}

#[get("/api/optimize/status/{job_id}")]
pub async fn optimize_status(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.jobs.describe(&id, Kind::Optimize, false)?))
}

#[get("/api/optimize/results/{job_id}")]
pub async fn optimize_results(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.jobs.describe(&id, Kind::Optimize, true)?))
}

#[post("/api/optimize/cancel/{job_id}")]
pub async fn optimize_cancel(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.jobs.cancel(&id, Kind::Optimize)?;
    Ok(HttpResponse::Ok().json(state.jobs.describe(&id, Kind::Optimize, false)?))
}

/// The strategies running live.
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
