//! Admin keys for the write endpoints (`/api/feeds`, `/api/strategies/live`), and the bearer token that
//! every keyed route reads.
//!
//! Keys come from `[admin] keys` (or `CANDLECAST__ADMIN__KEYS`) or the keys file (`candlecast keys new --role
//! admin`), are checked by [`crate::auth::Keys`] and are sent as `Authorization: Bearer <key>`.
//! No key configured: 403 (admin disabled); a missing or wrong key: 401. Every refused attempt is counted
//! (`admin_refused` in `/api/stats`) and logged with the peer and path, never with the key, at warn at most
//! once per peer per quiet period (see [`super::auth_log`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::auth::{KeyId, Keys, Role};

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The admin keys (through the server's [`Keys`]) and the count of refused attempts.
#[derive(Debug)]
pub struct Admin {
    keys: Arc<Keys>,
    pub refused: AtomicU64,
}

impl Admin {
    pub fn new(keys: Arc<Keys>) -> Admin {
        Admin { keys, refused: AtomicU64::new(0) }
    }

    /// Whether no admin key exists (configured or in the keys file).
    pub fn is_disabled(&self) -> bool {
        !self.keys.has(Role::Admin)
    }

    /// Which admin key `token` is, if any (for the roles that also accept admin keys).
    pub fn key_id(&self, token: &str) -> Option<KeyId> {
        self.keys.check(Role::Admin, token)
    }

    /// Checks the request's bearer token against every key.
    pub fn authorize(&self, req: &HttpRequest) -> Result<(), AdminError> {
        let refuse = |err: AdminError, reason: &'static str| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let peer = req.peer_addr().map(|a| a.ip());
            super::auth_log::refused_key(super::auth_log::KeyKind::Admin, peer, reason, req.path());
            Err(err)
        };
        if self.is_disabled() {
            return refuse(AdminError::Disabled, "admin disabled");
        }
        let Some(token) = bearer_token(req) else {
            return refuse(AdminError::Unauthorized, "no bearer token");
        };
        if self.key_id(token).is_some() {
            Ok(())
        } else {
            refuse(AdminError::Unauthorized, "wrong key")
        }
    }
}

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin is disabled: make a key with `candlecast keys new --role admin` (or configure [admin] keys) to use the write endpoints")]
    Disabled,
    #[error("send a valid admin key as `Authorization: Bearer <key>`")]
    Unauthorized,
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::Disabled => StatusCode::FORBIDDEN,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            AdminError::Disabled => "admin_disabled",
            AdminError::Unauthorized => "unauthorized",
        };
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, AdminError::Unauthorized) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        resp.json(json!({ "error": code, "detail": self.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn keys_are_checked_and_refusals_counted() {
        let admin = Admin::new(Arc::new(Keys::configured(Role::Admin, &["s3cret".into(), "".into()])));
        let ok = TestRequest::default().insert_header(("authorization", "Bearer s3cret")).to_http_request();
        assert!(admin.authorize(&ok).is_ok());
        for header in [None, Some("Bearer nope"), Some("Bearer s3cre"), Some("Basic s3cret"), Some("Bearer ")] {
            let mut req = TestRequest::default();
            if let Some(h) = header {
                req = req.insert_header(("authorization", h));
            }
            assert!(matches!(admin.authorize(&req.to_http_request()), Err(AdminError::Unauthorized)), "{header:?}");
        }
        assert_eq!(admin.refused.load(Ordering::Relaxed), 5);
        let disabled = Admin::new(Arc::new(Keys::configured(Role::Admin, &[])));
        assert!(matches!(disabled.authorize(&ok), Err(AdminError::Disabled)));
    }
}
