//! Why a Socket.IO session ended, and how the HTTP side of `/socket.io/` refuses a request.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::engineio::{EioError, HttpErrorCode};
use super::hosts::LimitError;
use super::packet::PacketError;

/// Why a session closed. Each is logged with the session id; the broken-packet ones are counted in
/// `malformed_packets` and sent back to the client (HTTP 400 body, or WebSocket close reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("the client closed the session")]
    ClientClosed,
    #[error("the client's connection ended")]
    TransportClosed,
    #[error("no pong within pingInterval + pingTimeout: the client is gone")]
    PingTimeout,
    #[error("no namespace connect within the connect timeout")]
    ConnectTimeout,
    #[error("broken Engine.IO packet: {0}")]
    Engine(#[from] EioError),
    #[error("broken Socket.IO packet: {0}")]
    Socket(#[from] PacketError),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("message over maxPayload ({max} bytes)")]
    TooLarge { max: usize },
    #[error("two long-polling requests at once")]
    DuplicatePoll,
    #[error("more than the outbound limit waiting to be sent (slow consumer)")]
    SlowConsumer,
    #[error(
        "kept sending events past the limit of {per_second} a second (scripts.max_events_per_second; limit sio_event_flood)"
    )]
    EventFlood { per_second: u32 },
}

impl CloseReason {
    /// Whether the client sent something broken (counted as a malformed packet).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            CloseReason::Engine(_) | CloseReason::Socket(_) | CloseReason::Protocol(_) | CloseReason::DuplicatePoll
        )
    }

    /// Closed for what its client did on purpose or by a bug: a protocol violation, an event flood or an
    /// oversized payload (not a slow network: slow consumers and ping timeouts are not faults). Its host
    /// waits `[scripts] fault_backoff_ms` before its next session.
    pub fn is_client_fault(&self) -> bool {
        self.is_malformed() || matches!(self, CloseReason::EventFlood { .. } | CloseReason::TooLarge { .. })
    }

    /// The WebSocket close code that reports it.
    pub fn close_code(&self) -> u16 {
        match self {
            CloseReason::ClientClosed | CloseReason::TransportClosed => 1000,
            CloseReason::PingTimeout | CloseReason::ConnectTimeout => 1001,
            CloseReason::TooLarge { .. } => 1009,
            CloseReason::SlowConsumer | CloseReason::EventFlood { .. } => 1008,
            CloseReason::Engine(_) | CloseReason::Socket(_) | CloseReason::Protocol(_) | CloseReason::DuplicatePoll => {
                1002
            }
        }
    }
}

/// Why a session refused to move to a WebSocket (the polling transport carries on). The text of a refused
/// probe is the `detail` of its HTTP 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error("the session is on WebSocket already")]
    AlreadyOnWebSocket,
    #[error("an upgrade is in progress already")]
    AlreadyProbing,
    /// `5` (upgrade) arrived without a probing WebSocket: its probe ended or was never attached.
    #[error("no WebSocket is probing this session")]
    NoProbe,
}

/// An HTTP refusal of `/socket.io/`: Engine.IO's `{"code","message"}` plus our `detail`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct HttpError {
    pub code: HttpErrorCode,
    pub status: StatusCode,
    pub detail: String,
    /// The config key of the limit that refused the request, if one did.
    pub limit: Option<&'static str>,
    /// With a limit: seconds until a retry can succeed (`Retry-After`).
    pub retry_after_secs: u64,
}

impl HttpError {
    pub fn new(code: HttpErrorCode, detail: impl Into<String>) -> HttpError {
        let status = if code == HttpErrorCode::Forbidden { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
        HttpError { code, status, detail: detail.into(), limit: None, retry_after_secs: 1 }
    }

    /// A handshake refused by a session budget: 429 for a per-host one (the host should slow down),
    /// 503 for the server's total.
    pub fn limited(e: &LimitError) -> HttpError {
        let mut err = HttpError::new(HttpErrorCode::BadRequest, e.to_string());
        err.limit = Some(e.limit());
        err.status = match e {
            LimitError::Sessions(_) => StatusCode::SERVICE_UNAVAILABLE,
            LimitError::SessionsPerHost(_) | LimitError::HandshakesPerSecond(_) | LimitError::FaultBackoff(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
        };
        if let LimitError::FaultBackoff(ms) = e {
            err.retry_after_secs = ms.div_ceil(1000);
        }
        err
    }

    pub fn unknown_sid() -> HttpError {
        HttpError::new(HttpErrorCode::UnknownSid, "no such session (it expired or was closed); connect again")
    }

    /// The session was closed for `reason` (a broken packet, an oversize payload).
    pub fn closed(reason: &CloseReason) -> HttpError {
        let mut e = HttpError::new(HttpErrorCode::BadRequest, format!("session closed: {reason}"));
        if matches!(reason, CloseReason::TooLarge { .. }) {
            e.status = StatusCode::PAYLOAD_TOO_LARGE;
        }
        e
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "code": self.code as u8, "message": self.code.message(), "detail": self.detail });
        let mut resp = HttpResponse::build(self.status);
        if let Some(limit) = self.limit {
            body["limit"] = limit.into();
            resp.insert_header(("Retry-After", self.retry_after_secs.max(1).to_string()));
        }
        resp.json(body)
    }
}
