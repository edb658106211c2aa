//! The HTTP server, built from actix's parts so that every accepted stream is wrapped in [`HeadTimeout`].
//!
//! actix-web's `HttpServer` offers no way to wrap the accepted stream, so this is what its `listen` does
//! (actix-web 4.18, `server.rs`), with the stream wrapped and actix's own head timer off: the same
//! settings (keep-alive, the client disconnect timeout, half-closed reads, TCP_NODELAY, the graceful
//! shutdown signal), the same worker and connection limits; the per-host connection budget is applied as a
//! connection is accepted, before it gets a dispatcher.

use std::fmt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Protocol, Request, Response};
use actix_server::{Server, ServerBuilder};
use actix_service::{fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;

use super::connections::{Admission, Connections};
use super::head_timeout::{HeadTimeout, HeadTimeouts};

/// What the server is built with besides the app.
pub struct ServerSettings {
    pub timeouts: HeadTimeouts,
    /// 0: actix's default (the number of cores).
    pub workers: usize,
    /// Connections one worker takes before it stops accepting.
    pub max_connections_per_worker: usize,
}

/// The server on `listener`, not yet running. `app` is called once per worker, as `HttpServer::new`'s.
pub fn build<F, I, S, B>(
    app: F,
    listener: TcpListener,
    settings: &ServerSettings,
    connections: Arc<Connections>,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let mut builder = ServerBuilder::default()
        .disable_signals()
        .shutdown_timeout(5)
        .max_concurrent_connections(settings.max_connections_per_worker);
    if settings.workers > 0 {
        builder = builder.workers(settings.workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let addr = listener.local_addr()?;
    let timeouts = settings.timeouts;
    let builder = builder.listen(format!("candlecast-http-{addr}"), listener, move || {
        let shutdown = shutdown.clone();
        let connections = connections.clone();
        let http = HttpService::build()
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            // actix-web's defaults, which `HttpServer` used here.
            .keep_alive(KeepAlive::default())
            .client_disconnect_timeout(Duration::from_secs(1))
            .h1_allow_half_closed(true)
            // Off: it checks its deadline before reading, so a busy worker answered 408 to heads that were
            // already in the socket. `HeadTimeout` keeps the budget instead (see there).
            .client_request_timeout(Duration::ZERO)
            .local_addr(addr);
        let app = app().into_factory().map_err(|err| err.into().error_response());
        // Nothing here reads the app config's host (no `url_for`, no `connection_info().host()`); actix-web's
        // constructor that sets it to the listening address is crate-private.
        let app = map_config(app, |_| AppConfig::default());
        fn_service(move |io: TcpStream| {
            let connections = connections.clone();
            async move {
                let peer = io.peer_addr().ok();
                // The host's connection budget, before any HTTP work: a refused connection never gets a
                // dispatcher (see `connections`); ending here ends it (actix-server drops the result).
                let permit = match peer.map(|peer| connections.admit_stream(peer)) {
                    Some(Admission::Admitted(permit)) => permit,
                    Some(Admission::Refused(refusal)) => {
                        refusal.answer(io).await;
                        return Err(DispatchError::Io(std::io::Error::other("refused: over its host's budget")));
                    }
                    // No peer address: the client is already gone.
                    None => return Err(DispatchError::Io(std::io::Error::other("no peer address"))),
                };
                // Updates are small frames that must leave at once: Nagle's algorithm would hold one back until
                // the client acknowledged the previous one (up to its delayed-ACK timeout).
                let _ = io.set_nodelay(true);
                Ok((HeadTimeout::new(io, timeouts).lives_with(permit), Protocol::Http1, peer))
            }
        })
        .and_then(http.finish(app))
    })?;
    Ok(builder.run())
}
