//! The REST API's errors: each maps to a status code and a JSON body
//! `{"error": <code>, "detail": <message>}` (plus `"parameter"` for a bad parameter).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use candlecast_actors::protocol::InvalidParameter;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown symbol {0:?}; GET /api/symbols lists the known ones")]
    UnknownSymbol(String),
    #[error("{0}")]
    BadParameter(#[from] InvalidParameter),
    #[error("no {0} yet")]
    NoData(&'static str),
    #[error("{0} is not available right now")]
    Unavailable(&'static str),
    #[error("no route {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Admin(#[from] super::admin::AdminError),
    #[error(transparent)]
    History(#[from] candlecast_actors::persist::HistoryError),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownSymbol(_) => "unknown_symbol",
            ApiError::BadParameter(_) => "invalid_parameter",
            ApiError::NoData(_) => "no_data",
            ApiError::Unavailable(_) | ApiError::History(_) => "unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Invalid(_) => "invalid_request",
            ApiError::Admin(_) => "unauthorized",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownSymbol(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadParameter(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::NoData(_) | ApiError::Unavailable(_) | ApiError::History(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Admin(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Admin(e) = self {
            return e.error_response();
        }
        let mut body = json!({ "error": self.code(), "detail": self.to_string() });
        if let ApiError::BadParameter(p) = self {
            body["parameter"] = json!(p.name);
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// `web::Json` bodies that do not parse: 400 with the JSON error (actix's own answer is plain text).
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default().error_handler(|e, _| {
        let status = match &e {
            actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
            | actix_web::error::JsonPayloadError::Overflow { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            actix_web::error::JsonPayloadError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({ "error": "invalid_request", "detail": format!("invalid JSON body: {e}") });
        actix_web::error::InternalError::from_response(e, HttpResponse::build(status).json(body)).into()
    })
}

/// Path segments of the wrong type (a job or strategy id): 404 with the JSON error, as an unknown route.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|e, req| {
        let body = json!({ "error": "not_found", "detail": format!("no route {}: {e}", req.path()) });
        actix_web::error::InternalError::from_response(e, HttpResponse::NotFound().json(body)).into()
    })
}
