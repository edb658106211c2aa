//! Socket.IO v5 over Engine.IO v4 at `/socket.io/`, for seed 003's trading scripts and for dashboards
//! (python-socketio and socket.io-client work unchanged). No crate serves this on actix-web with both
//! transports, so it is written here; the protocol is in docs/protocol.md, "Socket.IO".
//!
//! - [`engineio`]: Engine.IO packets and polling payloads.
//! - [`packet`]: Socket.IO packets inside Engine.IO messages.
//! - [`queue`]: a session's outgoing packets, bounded in bytes, drained by the active transport.
//! - [`session`]: the session actor: heartbeat, upgrade, namespace connect and key check, events in order.
//! - [`polling`], [`websocket`]: the two transports.
//! - [`socket`]: a connected client as event handlers see it; [`events`]: the handlers.
//! - [`bridge`]: live bar updates from the hub as Socket.IO events.
//! - [`registry`]: sessions by id, and rooms.
//! - [`hosts`]: sessions per client host and in total, and handshakes per second per host.
//! - [`error`]: why sessions close, and HTTP refusals.

pub(crate) mod bridge;
pub(crate) mod engineio;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod hosts;
pub(crate) mod packet;
pub(crate) mod polling;
pub(crate) mod queue;
pub(crate) mod registry;
pub(crate) mod session;
pub(crate) mod socket;
pub(crate) mod websocket;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::config::{ScriptsConfig, WsConfig};
use crate::http::{admin, cors};
use crate::script_ingest::stats::ScriptStats;
use crate::script_ingest::Scripts;
use crate::ws::Services;
use crate::AppState;
use engineio::HttpErrorCode;
use error::HttpError;
use hosts::{HostLimits, LimitError, SessionSlot};
use registry::{Rooms, Sessions};

/// What every session shares.
pub struct SocketIo {
    pub settings: ScriptsConfig,
    pub sessions: Sessions,
    pub rooms: Rooms,
    pub scripts: Arc<Scripts>,
    pub services: Services,
    /// The topic limit of `/ws` applies to Socket.IO subscriptions too.
    pub ws_limits: Arc<WsConfig>,
    pub hosts: Arc<HostLimits>,
}

impl SocketIo {
    pub fn new(
        settings: ScriptsConfig,
        scripts: Arc<Scripts>,
        services: Services,
        ws_limits: Arc<WsConfig>,
    ) -> SocketIo {
        let hosts = HostLimits::new(&settings);
        SocketIo {
            settings,
            sessions: Sessions::default(),
            rooms: Rooms::default(),
            scripts,
            services,
            ws_limits,
            hosts,
        }
    }

    /// A session slot for the client of `req`, or the refusal naming the budget it is over (counted).
    pub fn admit(&self, req: &HttpRequest) -> Result<SessionSlot, HttpError> {
        let ip = req.peer_addr().map(|a| a.ip());
        self.hosts.admit(ip).map_err(|e| {
            let stats = &self.scripts.stats;
            let (counter, limit) = match e {
                LimitError::SessionsPerHost(_) => (&stats.refused_sessions_per_host, "scripts.max_sessions_per_host"),
                LimitError::HandshakesPerSecond(_) => {
                    (&stats.refused_handshakes_per_host, "scripts.max_handshakes_per_second_per_host")
                }
                LimitError::Sessions(_) => (&stats.refused_sessions_total, "scripts.max_sessions"),
                LimitError::FaultBackoff(_) => (&stats.refused_fault_backoff, "scripts.fault_backoff_ms"),
            };
            ScriptStats::add(counter, 1);
            candlecast_actors::refusals::refused(limit);
            tracing::debug!(peer = peer(req), limit = e.limit(), "refused a socket.io handshake");
            HttpError::limited(&e)
        })
    }

    /// Sessions on polling and on WebSocket now.
    pub fn sessions_by_transport(&self) -> (usize, usize) {
        self.sessions.count_by_transport()
    }
}

/// The `/socket.io/` routes (with and without the trailing slash).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in ["/socket.io/", "/socket.io"] {
        cfg.route(path, web::route().to(route));
    }
}

/// The client's address, for logs.
pub(crate) fn peer(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}

/// Every `/socket.io/` request: origin check, then the handshake, a poll, a POST or a WebSocket.
async fn route(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let io = &state.socketio;
    let allowed = match cors::check(&req, &io.settings.cors_origins) {
        Ok(a) => a,
        Err(cors::ForeignOrigin(origin)) => {
            tracing::warn!(peer = peer(&req), origin, "refused a socket.io request from a foreign origin");
            let detail = format!("origin {origin:?} is not allowed; list it in [scripts] cors_origins");
            return HttpError::new(HttpErrorCode::Forbidden, detail).error_response();
        }
    };
    if req.method() == Method::OPTIONS {
        return cors::preflight(&allowed);
    }
    let mut resp = dispatch(&req, payload, io).await.unwrap_or_else(|e| e.error_response());
    cors::decorate(&mut resp, &allowed);
    resp
}

async fn dispatch(req: &HttpRequest, payload: web::Payload, io: &Arc<SocketIo>) -> Result<HttpResponse, HttpError> {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| HttpError::new(HttpErrorCode::BadRequest, format!("bad query string: {e}")))?;
    match query.get("EIO").map(String::as_str) {
        Some("4") => {}
        Some(v) => {
            return Err(HttpError::new(
                HttpErrorCode::UnsupportedProtocolVersion,
                format!(
                "EIO={v} is not supported; this server speaks Engine.IO 4 (socket.io-client 3+, python-socketio 5+)"
            ),
            ))
        }
        None => {
            return Err(HttpError::new(HttpErrorCode::UnsupportedProtocolVersion, "the EIO query parameter is missing"))
        }
    }
    let sid = query.get("sid").map(String::as_str);
    // Old clients put the key on the URL or in a header instead of the auth payload.
    let token = query.get("token").cloned().or_else(|| admin::bearer_token(req).map(str::to_owned));
    match (query.get("transport").map(String::as_str), req.method().clone(), sid) {
        (Some("websocket"), Method::GET, sid) => websocket::open(req, payload, io, sid, token).await,
        (Some("polling"), Method::GET, None) => polling::handshake(req, io, token).await,
        (Some("polling"), Method::GET, Some(sid)) => polling::get(io, sid).await,
        (Some("polling"), Method::POST, Some(sid)) => polling::post(req, payload, io, sid).await,
        (Some("polling"), Method::POST, None) => {
            Err(HttpError::new(HttpErrorCode::BadHandshakeMethod, "a session starts with a GET"))
        }
        (Some("polling" | "websocket"), method, _) => {
            Err(HttpError::new(HttpErrorCode::BadRequest, format!("method {method} is not used by Engine.IO")))
        }
        (other, _, _) => Err(HttpError::new(
            HttpErrorCode::UnknownTransport,
            format!("transport {:?} is unknown; use polling or websocket", other.unwrap_or("")),
        )),
    }
}
