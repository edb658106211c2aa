//! REST routes, one file per resource, and the static dashboard.
//!
//! - [`market_data`]: symbols, prices, historical bars.
//! - [`symbol_search`]: searching the symbol master (`/api/symbols?q=`, `/symbols/{exchange}`).
//! - [`status`]: stats, health, Prometheus metrics.
//! - [`store_stats`]: the store's bars and bytes per interval, and retention, in stats and metrics.
//! - [`feeds`]: the running feeds; adding and removing symbols at run time (admin key).
//! - [`strategies`]: the strategy catalogue, backtest and optimization jobs.
//! - [`trading_data`]: scripts' CSV pushes (`POST /api/trading-data`) and executed trades (`GET /api/trades`).
//! - [`admin`]: admin keys for the write endpoints.
//! - [`auth_log`]: refused keys, counted and logged at a bounded rate.
//! - [`cors`]: allowed browser origins of `/socket.io/` and the script endpoints.
//! - [`error`]: the JSON error type every route returns.
//! - [`history_reads`]: where history reads run, and the per-host and total budgets they are under.
//! - [`connections`]: the per-host budget of open HTTP connections.
//! - [`tarpit`]: repeated connection refusals held and answered late, under budgets of their own.
//! - [`openapi`]: the OpenAPI document (`/api/openapi.json`) and its offline page (`/docs`).
//! - [`asyncapi`]: the AsyncAPI document of `/ws` and Socket.IO (`/api/asyncapi.json`).

pub(crate) mod admin;
pub(crate) mod asyncapi;
pub(crate) mod auth_log;
pub(crate) mod connections;
pub(crate) mod cors;
pub(crate) mod error;
pub(crate) mod feeds;
pub(crate) mod head_timeout;
pub(crate) mod history_reads;
pub(crate) mod market_data;
pub(crate) mod openapi;
pub(crate) mod refusal_delay;
pub(crate) mod server;
pub(crate) mod status;
pub(crate) mod store_stats;
pub(crate) mod strategies;
pub(crate) mod symbol_search;
pub(crate) mod tarpit;
pub(crate) mod trading_data;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::ws;

/// Every route; shared by `run` and the tests.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: &std::path::Path) {
    // Bodies and path segments the extractors refuse answer the same JSON error as the handlers.
    cfg.app_data(error::json_config()).app_data(error::path_config());
    cfg.service(market_data::symbols)
        .service(symbol_search::by_exchange)
        .service(market_data::price)
        .service(market_data::historical)
        .service(status::stats)
        .service(status::health)
        .service(status::ready)
        .service(status::metrics_route)
        .service(feeds::list)
        .service(feeds::add)
        .service(feeds::remove)
        .service(strategies::live_list)
        .service(strategies::live_start)
        .service(strategies::live_stop)
        .service(strategies::list_strategies)
        .service(strategies::list_indicators)
        .service(strategies::backtest_run)
        .service(strategies::backtest_results)
        .service(strategies::optimize_start)
        .service(strategies::optimize_status)
        .service(strategies::optimize_results)
        .service(strategies::optimize_cancel)
        .service(trading_data::post_trading_data)
        .service(trading_data::trading_data_preflight)
        .service(trading_data::trades)
        .service(openapi::openapi_json)
        .service(asyncapi::asyncapi_json)
        .service(openapi::docs)
        .route("/ws", web::get().to(ws::route))
        .configure(crate::socketio::configure);
    if static_dir.join("index.html").is_file() {
        cfg.service(actix_files::Files::new("/", static_dir).index_file("index.html"));
    } else {
        tracing::warn!(dir = %static_dir.display(), "dashboard not built; serving a placeholder page at /");
        cfg.route("/", web::get().to(placeholder));
    }
}

/// Shown at `/` when the dashboard has not been built.
async fn placeholder() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(include_str!("placeholder.html"))
}

/// JSON 404 for anything else; 405 with `Allow` for a documented path asked with another method.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, error::ApiError> {
    let allowed = openapi::allowed_methods(req.path());
    if !allowed.is_empty() {
        let detail = format!("{} {} is not a route; {} are", req.method(), req.path(), allowed.join(", "));
        return Ok(HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", allowed.join(", ")))
            .json(serde_json::json!({ "error": "method_not_allowed", "detail": detail })));
    }
    Err(error::ApiError::NotFound(req.path().to_owned()))
}
