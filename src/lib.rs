//! # candlecast
//!
//! The server: configuration, REST routes, WebSocket sessions and the dashboard's static files around the
//! actor pipeline of `candlecast-actors` (feed → aggregator → hub → sessions).
//!
//! # Layout
//! - [`config`]: `config/default.toml`, `--config FILE` and `CANDLECAST__*` environment overrides.
//! - [`http`]: one file per REST resource, the JSON error type, and `configure` for every route.
//! - [`ws`]: the `/ws` session (the only user of actix-web-actors), request decoding, per-client limits.
//! - [`run`]: starts the engine and the HTTP server on a bound listener until `shutdown` resolves.
#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod ws;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use candlecast_actors::telemetry::RateSampler;
use candlecast_actors::Engine;

pub use config::Config;

/// What every route can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub ws_limits: Arc<config::WsConfig>,
    pub started: Instant,
    /// Open files this process may hold (after raising the soft limit): its connection ceiling.
    pub connection_ceiling: u64,
}

/// Raises the open-file soft limit to the hard limit; returns the resulting limit.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(0)
        }
    }
}

/// Runs candlecast on `listener` until `shutdown` resolves. Must be called inside an actix system.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let connection_ceiling = raise_fd_limit();
    tracing::info!(connection_ceiling, "open-file limit (the most clients one process can hold, minus a few files)");
    let engine = Engine::start(&config.hub, config.aggregator.clone(), &config.feed)?;
    let state = AppState { engine, ws_limits: Arc::new(config.ws.clone()), started: Instant::now(), connection_ceiling };

    actix_web::rt::spawn(async {
        let mut sampler = RateSampler::default();
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            sampler.sample();
        }
    });

    let static_dir = config.server.static_dir.clone();
    let mut server = HttpServer::new(move || {
        let static_dir = static_dir.clone();
        App::new()
            .app_data(web::Data::new(state.clone()))
            .configure(|cfg| http::configure(cfg, &static_dir))
            .default_service(web::to(http::not_found))
    })
    .disable_signals()
    .shutdown_timeout(5);
    if config.server.workers > 0 {
        server = server.workers(config.server.workers);
    }
    let server = server.listen(listener)?.run();
    let handle = server.handle();
    tokio::select! {
        result = server => result?,
        _ = shutdown => {
            tracing::info!("shutting down");
            handle.stop(true).await;
        }
    }
    Ok(())
}
