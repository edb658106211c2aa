//! The `trader` role: who may start jobs, and as whom they are budgeted.
//!
//! A bearer token must be a trader key or an admin key (a wrong one is 401, never silently anonymous:
//! the client would believe it had a trader's budgets). No token: anonymous, budgeted by peer IP, unless
//! `[jobs] require_key` (401). Refused keys go through [`crate::http::auth_log`].

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::HttpRequest;

use super::budget::{AccessError, Caller};
use crate::auth::{Keys, Role};
use crate::config::JobsConfig;
use crate::http::admin::{bearer_token, Admin};
use crate::http::auth_log::{self, KeyKind};

pub struct Access {
    require_key: bool,
    keys: Arc<Keys>,
    admin: Arc<Admin>,
    trusted_proxies: Vec<IpAddr>,
}

impl Access {
    pub fn new(config: &JobsConfig, keys: Arc<Keys>, admin: Arc<Admin>) -> Access {
        Access { require_key: config.require_key, keys, admin, trusted_proxies: config.trusted_proxies.clone() }
    }

    /// Who `req` is, or why it may not run jobs.
    pub fn caller(&self, req: &HttpRequest) -> Result<Caller, AccessError> {
        let host = self.host(req);
        let refuse = |err: AccessError, reason: &'static str| {
            auth_log::refused_key(KeyKind::Trader, Some(host), reason, req.path());
            Err(err)
        };
        match bearer_token(req).filter(|t| !t.is_empty()) {
            Some(token) => {
                // Both rings are always checked, so timing does not tell which kind of key it was.
                let (trader, admin) = (self.keys.check(Role::Trader, token), self.admin.key_id(token));
                match (trader, admin) {
                    (Some(key), _) => Ok(Caller::Trader { admin: false, key }),
                    (None, Some(key)) => Ok(Caller::Trader { admin: true, key }),
                    (None, None) => refuse(AccessError::WrongKey, "wrong key"),
                }
            }
            None if !self.require_key => Ok(Caller::Anonymous(host)),
            None if !self.keys.has(Role::Trader) && self.admin.is_disabled() => {
                refuse(AccessError::Disabled, "jobs need a key and none is configured")
            }
            None => refuse(AccessError::KeyRequired, "no bearer token"),
        }
    }

    /// The peer's IP, or the client a trusted proxy names in `X-Forwarded-For` (its last address: the
    /// one the proxy itself appended).
    pub fn host(&self, req: &HttpRequest) -> IpAddr {
        let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(peer)
    }
}
