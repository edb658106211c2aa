//! Who runs a job and what each may spend: the refusals (and their HTTP answers) of the job routes.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::config::JobsConfig;

/// Who asked for a job. A trader is known by its key's [`crate::auth::KeyId`], never by the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// No key: budgeted per peer IP (or the trusted proxy's client address).
    Anonymous(IpAddr),
    /// A `[jobs] trader_keys` key (`admin: false`) or an `[admin] keys` key (`admin: true`), or a keys-file key.
    Trader { admin: bool, key: crate::auth::KeyId },
}

impl Caller {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Caller::Anonymous(_))
    }
}

/// A budget of running jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    Total,
    Anonymous,
    PerHost,
    PerKey,
}

impl Running {
    /// The `limit` label in `/metrics` and the error's `limit` field.
    pub fn name(self) -> &'static str {
        match self {
            Running::Total => "jobs_total",
            Running::Anonymous => "jobs_anonymous",
            Running::PerHost => "jobs_per_host",
            Running::PerKey => "jobs_per_key",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Running::Total => "in total",
            Running::Anonymous => "without a key, from all hosts together",
            Running::PerHost => "from this host",
            Running::PerKey => "with this key",
        }
    }

    pub fn config_key(self) -> &'static str {
        match self {
            Running::Total => "jobs.max_running",
            Running::Anonymous => "jobs.max_running_anonymous",
            Running::PerHost => "jobs.max_running_per_host",
            Running::PerKey => "jobs.max_running_per_key",
        }
    }

    pub fn max(self, c: &JobsConfig) -> usize {
        match self {
            Running::Total => c.max_running,
            Running::Anonymous => c.max_running_anonymous,
            Running::PerHost => c.max_running_per_host,
            Running::PerKey => c.max_running_per_key,
        }
    }
}

/// A request too large for the caller's budget (the client can fix it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Top,
    Combinations { anonymous: bool },
}

impl Size {
    pub fn name(self) -> &'static str {
        match self {
            Size::Top => "top",
            Size::Combinations { .. } => "combinations",
        }
    }

    pub fn config_key(self) -> &'static str {
        match self {
            Size::Top => "jobs.max_top",
            Size::Combinations { anonymous: true } => "jobs.max_combinations_anonymous",
            Size::Combinations { anonymous: false } => "jobs.max_combinations",
        }
    }
}

/// Why a job could not be started or found. Budget errors say `"anonymous_budget": true` when a trader
/// key would lift the limit (the dashboard then offers to enter one).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{max} jobs are already running {} (limit {}, {}); try again when one has finished", .limit.scope(), .limit.name(), .limit.config_key())]
    Busy { limit: Running, max: usize, retry_after_secs: u64 },
    #[error("{} is {got}; the limit for this caller is {max} ({}){}", .size.name(), .size.config_key(), hint(*.size))]
    TooLarge { size: Size, got: usize, max: usize },
    #[error("no job {0:?} (unknown, or its result expired)")]
    NotFound(String),
    #[error("the job pool could not start: {0}")]
    Pool(String),
}

fn hint(size: Size) -> &'static str {
    match size {
        Size::Combinations { anonymous: true } => "; a trader key gets a larger budget",
        _ => "",
    }
}

impl ResponseError for JobError {
    fn status_code(&self) -> StatusCode {
        match self {
            JobError::Busy { limit: Running::PerHost | Running::PerKey, .. } => StatusCode::TOO_MANY_REQUESTS,
            JobError::Busy { .. } | JobError::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
            JobError::TooLarge { .. } => StatusCode::BAD_REQUEST,
            JobError::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        let body = match self {
            JobError::Busy { limit, max, retry_after_secs } => {
                resp.insert_header(("Retry-After", retry_after_secs.to_string()));
                json!({"error": "limit_exceeded", "limit": limit.name(), "config": limit.config_key(), "max": max,
                       "detail": self.to_string(),
                       "anonymous_budget": matches!(limit, Running::PerHost | Running::Anonymous)})
            }
            JobError::TooLarge { size, max, .. } => {
                json!({"error": "limit_exceeded", "limit": size.name(), "config": size.config_key(), "max": max,
                       "detail": self.to_string(),
                       "anonymous_budget": matches!(size, Size::Combinations { anonymous: true })})
            }
            JobError::NotFound(_) => json!({"error": "not_found", "detail": self.to_string()}),
            JobError::Pool(_) => json!({"error": "unavailable", "detail": self.to_string()}),
        };
        resp.json(body)
    }
}

/// Why a caller may not run jobs.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("jobs need a key here: send a trader key as `Authorization: Bearer <key>`")]
    KeyRequired,
    #[error("that key is not a trader or admin key; send a valid one as `Authorization: Bearer <key>`, or none")]
    WrongKey,
    #[error("jobs need a key here and none exists: make one with `candlecast keys new --role trader` (or set [jobs] trader_keys)")]
    Disabled,
}

impl ResponseError for AccessError {
    fn status_code(&self) -> StatusCode {
        match self {
            AccessError::Disabled => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            AccessError::Disabled => "jobs_disabled",
            _ => "unauthorized",
        };
        let mut resp = HttpResponse::build(self.status_code());
        if !matches!(self, AccessError::Disabled) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        resp.json(json!({ "error": code, "detail": self.to_string() }))
    }
}
