//! # candlecast
//!
//! The server: configuration, REST routes, WebSocket sessions and the dashboard's static files around the
//! actor pipeline of `candlecast-actors` (feed → aggregator → hub → sessions).
//!
//! # Layout
//! - [`auth`]: API keys: the one check of a key for a role, the hashed keys file and its reload.
//! - [`cli`]: operator subcommands (`keys new|list|revoke`, `check-config`, `store export|import`).
//! - [`config`]: `config/default.toml`, `--config FILE` and `CANDLECAST__*` environment overrides.
//! - [`http`]: one file per REST resource, the JSON error type, and `configure` for every route.
//! - [`jobs`]: backtest and optimization jobs on a bounded pool, with progress, cancel and expiry.
//! - [`script_ingest`]: external scripts' keys, CSVs and streamed trades, and what is kept of them.
//! - [`socketio`]: Socket.IO v5 over Engine.IO v4 (polling and WebSocket) for scripts and dashboards.
//! - [`ws`]: the `/ws` session (the only user of actix-web-actors), request decoding, per-client limits.
//! - [`run`]: starts the engine and the HTTP server on a bound listener until `shutdown` resolves.
//!
//! Only `cli`, `config`, `run` and `bind_listener` are public (for `main.rs` and the tests), and `fuzzing`
//! (hidden) for the fuzz targets; the other modules are private, so the compiler reports what nothing uses.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
mod http;
mod jobs;
mod script_ingest;
mod socketio;
mod ws;

/// The parsers of outside input, public for the fuzz targets in `fuzz/` (and nothing else): the rest of
/// the crate stays private, so the compiler reports what nothing uses.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::script_ingest::csv::{parse_market_data, parse_trades, CsvLimits};
    pub use crate::socketio::engineio::{payload_packets, Packet as EioPacket};
    pub use crate::socketio::packet::Packet as SioPacket;
    pub use crate::ws::request::decode as decode_ws_request;
}

use candlecast_actors::model::Symbol;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use actix_web::{web, App};
use candlecast_actors::persist::{Store, StoreSettings};
use candlecast_actors::telemetry::RateSampler;
use candlecast_actors::Engine;

pub use config::Config;

/// What every route can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub ws_limits: Arc<config::WsConfig>,
    pub started: Instant,
    /// Open files this process may hold (after raising the soft limit): its connection ceiling.
    pub connection_ceiling: u64,
    pub jobs: Arc<jobs::Jobs>,
    /// Admin keys for the write endpoints, and refused attempts.
    pub admin: Arc<http::admin::Admin>,
    /// What WebSocket sessions reach: hub, market, indicator and strategy actors.
    pub services: ws::Services,
    /// External scripts: keys, pushed data, counters.
    pub scripts: Arc<script_ingest::Scripts>,
    /// Socket.IO sessions and rooms.
    pub socketio: Arc<socketio::SocketIo>,
    /// This node's part in a Redis cluster; `None` without `[redis] url`.
    pub cluster: Option<candlecast_actors::cluster::Cluster>,
    /// Slows down hosts that keep being refused (see `http::refusal_delay`).
    pub refusal_throttles: Arc<http::refusal_delay::RefusalThrottles>,
    /// Open HTTP connections per host, and refused ones held (see `http::tarpit`).
    pub connections: Arc<http::connections::Connections>,
}

/// A listening socket on `host:port` with an accept backlog of `backlog` (std's `TcpListener::bind`
/// always asks for 128: a burst of reconnecting clients overflows that and their connects fail).
pub fn bind_listener(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let mut last_error = None;
    for addr in std::net::ToSocketAddrs::to_socket_addrs(&(host, port))? {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        let bound = socket.bind(&addr.into()).and_then(|()| socket.listen(backlog.min(i32::MAX as u32) as i32));
        match bound {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, format!("{host} resolves to no address"))
    }))
}

/// Where the kernel caps a listen backlog (Linux), to warn when `[server] backlog` asks for more: the kernel
/// then cuts it silently, and a reconnect storm overflows the smaller queue (clients see refused or slow
/// connects). `None` where the file does not exist.
pub fn backlog_cap() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?.trim().parse().ok()
}

/// Logs once at start when the configured backlog is above the kernel's cap, with the fix.
pub fn check_backlog(backlog: u32) {
    if let Some(cap) = backlog_cap().filter(|cap| *cap < backlog) {
        tracing::warn!(
            configured = backlog,
            kernel_cap = cap,
            "[server] backlog is above net.core.somaxconn, which the kernel uses instead: a reconnect storm \
             may find the accept queue full. Raise it: sysctl -w net.core.somaxconn={backlog}"
        );
    }
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

/// Starts the indicator service and the live strategies (beside the aggregators), and the strategies
/// the config lists once their symbol has history.
fn start_strategy_actors(engine: &Engine, config: &Config, connection_ceiling: u64) -> ws::Services {
    use candlecast_actors::aggregator::GetQuote;
    use candlecast_actors::background::{self, Priority};
    use candlecast_actors::strategy::{IndicatorService, IndicatorSettings};
    use candlecast_actors::strategy::{LiveStrategies, StartStrategy};

    let arbiter = engine.market.arbiter().clone();
    let (hub, market) = (engine.hub.clone(), engine.market.clone());
    // Indicators get a thread of their own (their warm-ups run on the blocking pool): nothing a client
    // asks of them runs on the market's thread, which runs every aggregator and feed. That thread runs at
    // `nice` 10: any anonymous client can make it preview and frame up to `max_indicator_computations`
    // streams on every partial bar and serialize their histories, and when a core is contended that work
    // waits for the hub and the socket workers, not the reverse (the abuse benchmark's indicator rows).
    let settings = IndicatorSettings {
        unwatched_sweep: std::time::Duration::from_secs(config.ws.unwatched_indicator_sweep_secs),
        max_computations: config.ws.max_indicator_computations,
        max_concurrent_warmups: config.ws.max_concurrent_warmups,
    };
    let indicators = IndicatorService::start_in_arbiter(&background::arbiter(Priority::Low), move |_| {
        IndicatorService::new(hub, market, settings)
    });
    let (hub, market) = (engine.hub.clone(), engine.market.clone());
    let strategies = LiveStrategies::start_in_arbiter(&arbiter, move |_| LiveStrategies::new(hub, market));
    for spec in config.strategies.live.clone() {
        let (market, strategies) = (engine.market.clone(), strategies.clone());
        actix_web::rt::spawn(async move {
            // Wait (up to a minute) for the symbol's backfill, so the strategy starts warmed up.
            for _ in 0..600 {
                if let Some(e) = market.get(&Symbol::normalize(&spec.symbol)) {
                    if e.aggregator.send(GetQuote).await.ok().flatten().is_some() {
                        break;
                    }
                }
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            match strategies.send(StartStrategy(spec.clone())).await {
                Ok(Ok(info)) => {
                    tracing::info!(id = info.id, strategy = %spec.strategy, symbol = %spec.symbol, "configured strategy running")
                }
                Ok(Err(e)) => {
                    tracing::error!(strategy = %spec.strategy, symbol = %spec.symbol, error = %e, "configured strategy refused")
                }
                Err(e) => tracing::error!(error = %e, "strategy actor unavailable"),
            }
        });
    }
    ws::Services {
        hub: engine.hub.clone(),
        market: engine.market.clone(),
        indicators,
        strategies,
        history: engine.history.clone(),
        admission: ws::Admission::new(&config.ws, connection_ceiling),
        history_reads: http::history_reads::HistoryReads::new(&config.http),
    }
}

/// Runs candlecast on `listener` until `shutdown` resolves. Must be called inside an actix system.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let connection_ceiling = raise_fd_limit();
    tracing::info!(connection_ceiling, "open-file limit (the most clients one process can hold, minus a few files)");
    use candlecast_actors::cluster::Cluster;
    let mut engine_feeds = config.feed.clone();
    if Cluster::manages_feeds(&config.redis) {
        engine_feeds.source = candlecast_actors::feed::FeedSource::None;
    }
    let store = open_store(&config.store).await?;
    let script_store = store.clone();
    let engine = Engine::start(&config.hub, config.aggregator.clone(), &engine_feeds, &config.store, store)?;
    let cluster = Cluster::start(&engine, &config.node, &config.redis, &config.feed).await?;
    actix_web::rt::spawn(engine.warmup.clone().log_progress());
    let services = start_strategy_actors(&engine, &config, connection_ceiling);
    let ws_limits = Arc::new(config.ws.clone());
    let keys = Arc::new(auth::Keys::new(
        &config.scripts.keys,
        &config.admin.keys,
        &config.jobs.trader_keys,
        Some(config.keys_file()),
    ));
    first_run_hint(&keys);
    actix_web::rt::spawn(keys.clone().watch());
    let scripts =
        Arc::new(script_ingest::Scripts::new(&config.scripts, keys.clone(), engine.market.clone(), script_store));
    // Before the server listens: a client subscribing to a script-created symbol finds it.
    scripts.restore().await;
    let socketio =
        Arc::new(socketio::SocketIo::new(config.scripts.clone(), scripts.clone(), services.clone(), ws_limits.clone()));
    http::auth_log::set_interval(Duration::from_secs(config.admin.refused_log_every_secs));
    let refusal_throttles = Arc::new(http::refusal_delay::RefusalThrottles {
        keys: http::refusal_delay::RefusalThrottle::new(
            config.admin.refused_keys_free_per_10s,
            Duration::from_millis(config.admin.refused_key_delay_ms),
            &config.http.unlimited_hosts,
        ),
        requests: http::refusal_delay::RefusalThrottle::new(
            config.http.refusals_free_per_10s,
            Duration::from_millis(config.http.refusal_delay_ms),
            &config.http.unlimited_hosts,
        ),
    });
    let connections = http::connections::Connections::new(&config.http);
    let admin = Arc::new(http::admin::Admin::new(keys.clone()));
    let jobs = Arc::new(jobs::Jobs::new(&config.jobs, keys, admin.clone())?);
    let state = AppState {
        engine,
        ws_limits,
        started: Instant::now(),
        connection_ceiling,
        jobs,
        admin,
        services,
        scripts,
        socketio,
        cluster,
        refusal_throttles,
        connections: connections.clone(),
    };

    let feeds = state.engine.feeds.clone();
    let script_stats = state.scripts.clone();
    let history = state.engine.history.clone();
    actix_web::rt::spawn(async move {
        let mut sampler = RateSampler::default();
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            sampler.sample();
            feeds.sample_rates();
            script_stats.stats.sample();
        }
    });

    let static_dir = config.server.static_dir.clone();
    let app = move || {
        let static_dir = static_dir.clone();
        App::new()
            .app_data(web::Data::new(state.clone()))
            .wrap(actix_web::middleware::from_fn(http::refusal_delay::delay_refusals))
            .configure(|cfg| http::configure(cfg, &static_dir))
            .default_service(web::to(http::not_found))
    };
    let settings = http::server::ServerSettings {
        // A connection silent since accept, or whose request head is not complete in time from its first
        // byte, gets 408 and is closed (slowloris); a head already in the socket is always served.
        timeouts: http::head_timeout::HeadTimeouts {
            first_byte: Duration::from_millis(config.http.first_byte_timeout_ms),
            head: Duration::from_millis(config.http.client_request_timeout_ms),
        },
        workers: config.server.workers,
        // actix stops accepting for a worker holding 25,000 connections by default: a limit that refuses
        // nobody with a reason, it only lets the listen backlog fill. By default no worker stops before the
        // process runs out of files; [ws] max_connections refuses before that, with a 503 naming itself.
        max_connections_per_worker: match config.server.max_connections_per_worker {
            // An unknown limit (0): actix's own default.
            0 if connection_ceiling == 0 => 25_000,
            0 => usize::try_from(connection_ceiling).unwrap_or(usize::MAX),
            n => n,
        },
    };
    let server = http::server::build(app, listener, &settings, connections)?;
    let handle = server.handle();
    tokio::select! {
        result = server => result?,
        _ = shutdown => {
            tracing::info!("shutting down");
            handle.stop(true).await;
        }
    }
    // Closed bars still in memory go to the store or the journal before the process ends, and the
    // store is closed (so the same directory can be opened again at once, as tests do).
    history.shutdown().await;
    Ok(())
}

/// A server nobody can push to yet says how to change that, once, at start (never with a key).
fn first_run_hint(keys: &auth::Keys) {
    if keys.has(auth::Role::Script) {
        return;
    }
    let file = keys.file().map(|f| f.display().to_string()).unwrap_or_default();
    tracing::info!(
        keys_file = %file,
        "no script key yet: to let a script push, run `candlecast keys new --role script` (with this server's \
         --config, if any); it prints the key once and stores its hash in the keys file, which this server \
         reads within a second: no restart needed"
    );
}

/// How long the start waits for a server store to answer its first check.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the configured store and asks it whether it accepts our configuration. A refused setting
/// (credentials, missing database or bucket, a locked embedded store) stops the start with its reason;
/// an unreachable server does not: bars are journaled until it answers, and `/health` says so.
async fn open_store(settings: &StoreSettings) -> anyhow::Result<Option<Arc<dyn Store>>> {
    let store = candlecast_actors::persist::open(settings).map_err(|e| anyhow::anyhow!("store: {e}"))?;
    if let Some(store) = &store {
        match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.check()).await {
            Ok(Ok(())) => tracing::info!(kind = store.kind(), "store ready"),
            Ok(Err(e)) if e.is_configuration() => anyhow::bail!("store ({}): {e}", store.kind()),
            Ok(Err(e)) => {
                tracing::warn!(kind = store.kind(), error = %e, "store not reachable yet; journaling bars until it is")
            }
            Err(_) => tracing::warn!(
                kind = store.kind(),
                "store did not answer within {STORE_CHECK_TIMEOUT:?}; journaling bars until it does"
            ),
        }
    }
    Ok(store)
}
