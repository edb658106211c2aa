//! Kite Connect's login flow, step two: a `request_token` (from the redirect after the user logs in at
//! `https://kite.zerodha.com/connect/login?v=3&api_key=...`) becomes the day's `access_token`.
//!
//! `POST {api_url}/session/token`, form-encoded (not JSON: Kite answers an InputException to a JSON body),
//! header `X-Kite-Version: 3`, fields `api_key`, `request_token` and `checksum` = lower-case hex
//! SHA-256 of `api_key + request_token + api_secret`. The reply is
//! `{"status":"success","data":{"access_token": ..., ...}}`, or `{"status":"error","message": ...,
//! "error_type":"TokenException"}`. A request token works once and for a few minutes; the access token
//! until 06:00 IST the next morning.
//!
//! The secret and both tokens never appear in an error: Kite's message is passed through [`super::redact`].

use std::time::Duration;

use data_encoding::HEXLOWER;
use ring::digest;
use serde::Deserialize;

use super::KiteSettings;
use crate::feed::FeedError;

/// The largest reply read: a session is a few hundred bytes of JSON.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What Kite's documentation says of its tokens' life, for messages.
pub const EXPIRY: &str = "Kite access tokens expire at 06:00 IST every day";

/// The documented checksum: SHA-256 of `api_key + request_token + api_secret`, lower-case hex.
pub fn checksum(api_key: &str, request_token: &str, api_secret: &str) -> String {
    let joined = format!("{api_key}{request_token}{api_secret}");
    HEXLOWER.encode(digest::digest(&digest::SHA256, joined.as_bytes()).as_ref())
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    data: Option<SessionData>,
}

#[derive(Deserialize)]
struct SessionData {
    access_token: String,
}

/// Exchanges `request_token` for an access token, with the key and secret of `settings`.
pub async fn access_token(settings: &KiteSettings, request_token: &str) -> Result<String, FeedError> {
    let hide = |text: &str| {
        let mut out = super::redact(text, settings);
        for secret in [settings.api_secret.as_str(), request_token] {
            if secret.len() >= 4 {
                out = out.replace(secret, "<redacted>");
            }
        }
        out
    };
    if settings.api_key.is_empty() || settings.api_secret.is_empty() {
        return Err(FeedError::Refused(
            "feed.kite.api_key and feed.kite.api_secret are needed to log in (CANDLECAST__FEED__KITE__API_SECRET)"
                .into(),
        ));
    }
    if request_token.trim().is_empty() {
        return Err(FeedError::Refused("the request token is empty".into()));
    }
    let request_token = request_token.trim();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
        .build()
        .map_err(|e| FeedError::Connect(format!("HTTP client: {e}")))?;
    let url = format!("{}/session/token", settings.api_url.trim_end_matches('/'));
    let form = [
        ("api_key", settings.api_key.as_str()),
        ("request_token", request_token),
        ("checksum", &checksum(&settings.api_key, request_token, &settings.api_secret)),
    ];
    let mut resp = http
        .post(&url)
        .header("X-Kite-Version", "3")
        .form(&form)
        .send()
        .await
        .map_err(|e| FeedError::Connect(format!("POST /session/token: {}", hide(&e.without_url().to_string()))))?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| FeedError::Connect(hide(&e.without_url().to_string())))? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(FeedError::Malformed(format!("POST /session/token: reply over {MAX_REPLY_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let reply: Reply = serde_json::from_slice(&body).map_err(|_| {
        FeedError::Malformed(format!("POST /session/token: HTTP {status}, the reply is not Kite's JSON"))
    })?;
    match reply.data {
        Some(d) if reply.status == "success" && !d.access_token.is_empty() => Ok(d.access_token),
        _ => {
            let why: String = reply.message.chars().take(200).collect();
            Err(FeedError::Refused(format!("Kite refused the login (HTTP {status}): {}", hide(&why))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_sha256_of_key_token_secret() {
        // sha256("abc") as documented by FIPS 180-2: the three parts are concatenated, nothing between.
        assert_eq!(checksum("a", "b", "c"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
