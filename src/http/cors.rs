//! Which browser origins may call `/socket.io/` and the script endpoints (`[scripts] cors_origins`).
//!
//! A request without an `Origin` header (scripts, curl) is not a cross-origin browser request and passes.
//! With one, it passes when the origin is listed, when the list holds `*`, or when it is the same origin
//! (its host and port are the request's `Host`); allowed requests get `Access-Control-Allow-Origin` set to
//! that origin, with credentials allowed. Others are refused with 403 before anything else happens.

use actix_web::http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, HOST, ORIGIN, VARY,
};
use actix_web::{HttpRequest, HttpResponse};

/// An allowed origin to echo back, or `None` for requests without an `Origin`.
pub type Allowed = Option<HeaderValue>;

/// A cross-origin browser request from an origin that is not allowed: the origin, as the request sent it
/// (each caller words its own refusal around it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {0:?} is not allowed")]
pub struct ForeignOrigin(pub String);

/// Checks the request's origin.
pub fn check(req: &HttpRequest, allowed: &[String]) -> Result<Allowed, ForeignOrigin> {
    let Some(origin) = req.headers().get(ORIGIN) else { return Ok(None) };
    let text = origin.to_str().unwrap_or("");
    let listed = allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(text));
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let same = !host.is_empty() && text.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host));
    if listed || same {
        Ok(Some(origin.clone()))
    } else {
        Err(ForeignOrigin(text.to_owned()))
    }
}

/// Adds the CORS headers for an allowed origin.
pub fn decorate(resp: &mut HttpResponse, allowed: &Allowed) {
    if let Some(origin) = allowed {
        let headers = resp.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.insert(VARY, HeaderValue::from_static("Origin"));
    }
}

/// The answer to a preflight `OPTIONS` request.
pub fn preflight(allowed: &Allowed) -> HttpResponse {
    let mut resp = HttpResponse::NoContent()
        .insert_header((ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((ACCESS_CONTROL_ALLOW_HEADERS, "content-type, authorization"))
        .finish();
    decorate(&mut resp, allowed);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(origin: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().insert_header((HOST, "127.0.0.1:8000"));
        if let Some(o) = origin {
            r = r.insert_header((ORIGIN, o));
        }
        r.to_http_request()
    }

    #[test]
    fn same_origin_listed_and_wildcard_pass_others_do_not() {
        let none: Vec<String> = vec![];
        assert_eq!(check(&req(None), &none), Ok(None));
        assert!(check(&req(Some("http://127.0.0.1:8000")), &none).unwrap().is_some());
        assert_eq!(check(&req(Some("http://evil.example")), &none), Err(ForeignOrigin("http://evil.example".into())));
        assert_eq!(
            check(&req(Some("http://127.0.0.1:9000")), &none),
            Err(ForeignOrigin("http://127.0.0.1:9000".into()))
        );
        let listed = vec!["https://app.example.com/".to_owned()];
        assert!(check(&req(Some("https://app.example.com")), &listed).is_ok());
        assert!(check(&req(Some("https://other.example.com")), &listed).is_err());
        assert!(check(&req(Some("https://anything.example")), &["*".to_owned()]).is_ok());
    }
}
