//! The Noren session every Shoonya feed of the process shares: one login (`QuickAuth`), one
//! `susertoken`, the REST calls that carry it, and the symbol masters (loaded once per exchange).
//!
//! A login replaces the account's earlier session, so feeds never log in each on their own: the first
//! one that needs a token logs in, the others wait for it and reuse the token. When Noren says the token
//! is no longer valid, [`Shared::invalidate`] drops it and the next feed to connect logs in again.
//!
//! A refused login (wrong password, wrong TOTP, blocked account) is terminal: retrying could lock the
//! account. Without credentials, a refused configured session token is terminal too.
//!
//! REST requests are `POST`s whose body is `jData=<JSON>&jKey=<susertoken>` (QuickAuth: `jData` only),
//! exactly as Noren's own clients send it. Secrets never reach logs or errors: every message built from
//! an answer is passed through [`Shared::redact`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use data_encoding::{BASE32_NOPAD, HEXLOWER};
use ring::{digest, hmac};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::masters::{fetch_master, master_source, Master};
use super::ShoonyaSettings;
use crate::feed::body::read_capped;
use crate::feed::FeedError;
use crate::symbol_master::SymbolMaster;

/// REST replies larger than this are refused (TPSeries for 30 days of a busy MCX contract is ~4 MB).
const MAX_REPLY_BYTES: u64 = 32 * 1024 * 1024;

/// What Noren says when a `susertoken` is no longer valid.
pub fn is_session_error(emsg: &str) -> bool {
    let e = emsg.to_ascii_lowercase();
    e.contains("session expired") || e.contains("invalid session")
}

#[derive(Default)]
struct SessionState {
    token: Option<Arc<str>>,
    /// Why the configured `session_token` was refused: it is not used again.
    configured_refused: Option<String>,
}

/// See the module documentation. One per process (per `[feed.shoonya]`), shared by its feeds.
pub struct Shared {
    pub settings: ShoonyaSettings,
    session: Mutex<SessionState>,
    masters: Mutex<HashMap<String, (Instant, Arc<Master>)>>,
    http: OnceLock<Result<reqwest::Client, String>>,
    /// Where each loaded master is published for the symbol search.
    symbol_master: SymbolMaster,
}

/// A loaded master is used this long before it is loaded again (Shoonya publishes them daily; expired
/// contracts leave, new ones come).
const MASTER_TTL: Duration = Duration::from_secs(6 * 3600);

impl Shared {
    pub fn new(settings: ShoonyaSettings, symbol_master: SymbolMaster) -> Arc<Shared> {
        Arc::new(Shared {
            settings,
            session: Mutex::default(),
            masters: Mutex::default(),
            http: OnceLock::new(),
            symbol_master,
        })
    }

    /// Built on first use: a process whose feeds are not Shoonya's never builds it.
    pub fn http(&self) -> Result<reqwest::Client, FeedError> {
        let built = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_millis(self.settings.timeout_ms.max(1)))
                .build()
                .map_err(|e| e.to_string())
        });
        built.clone().map_err(|e| FeedError::Connect(format!("HTTP client: {e}")))
    }

    /// Hides every secret the settings hold, and the session token, inside a message from outside.
    pub fn redact(&self, text: &str, token: Option<&str>) -> String {
        let s = &self.settings;
        let mut out = text.to_owned();
        for secret in [s.password.as_str(), s.totp_secret.as_str(), s.api_secret.as_str(), s.session_token.as_str()]
            .into_iter()
            .chain(token)
            .filter(|x| x.len() >= 4)
        {
            out = out.replace(secret, "<redacted>");
        }
        out
    }

    /// The current `susertoken`: the one in use, else the configured one, else a new login.
    pub async fn token(&self) -> Result<Arc<str>, FeedError> {
        let mut state = self.session.lock().await;
        if let Some(token) = &state.token {
            return Ok(token.clone());
        }
        if !self.settings.session_token.is_empty() {
            match &state.configured_refused {
                None => {
                    let token: Arc<str> = Arc::from(self.settings.session_token.as_str());
                    state.token = Some(token.clone());
                    return Ok(token);
                }
                Some(why) if !self.settings.can_login() => return Err(no_login(why)),
                Some(_) => {}
            }
        }
        let token: Arc<str> = Arc::from(self.login().await?);
        state.token = Some(token.clone());
        Ok(token)
    }

    /// Noren refused `token` (`reason`): forget it. Terminal when no login can replace it.
    pub async fn invalidate(&self, token: &str, reason: &str) -> FeedError {
        let mut state = self.session.lock().await;
        if state.token.as_deref() == Some(token) {
            state.token = None;
        }
        let reason = self.redact(reason, Some(token));
        if token == self.settings.session_token {
            state.configured_refused = Some(reason.clone());
        }
        if self.settings.can_login() {
            tracing::warn!(reason, "Shoonya session no longer valid; logging in again");
            FeedError::Disconnected(format!("Shoonya session invalid ({reason}); logging in again"))
        } else {
            no_login(&reason)
        }
    }

    /// `POST {api_url}/QuickAuth`: `jData={"apkversion","uid","pwd","factor2","vc","appkey","imei","source"}`.
    async fn login(&self) -> Result<String, FeedError> {
        let s = &self.settings;
        if !s.can_login() {
            return Err(FeedError::Refused(
                "Shoonya: no session_token and no credentials (uid, password, totp_secret, vendor_code, api_secret) \
                 configured"
                    .into(),
            ));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let data = json!({
            "apkversion": "1.0.0",
            "uid": s.uid,
            "pwd": sha256_hex(&s.password),
            "factor2": totp(&s.totp_secret, now)?,
            "vc": s.vendor_code,
            "appkey": sha256_hex(&format!("{}|{}", s.uid, s.api_secret)),
            "imei": s.imei,
            "source": "API",
        });
        let reply = self.post("QuickAuth", &data, None).await?;
        match reply {
            Value::Object(m) if m.get("stat").and_then(Value::as_str) == Some("Ok") => {
                match m.get("susertoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    Some(token) => {
                        tracing::info!(uid = %s.uid, "logged in to Shoonya");
                        Ok(token.to_owned())
                    }
                    None => Err(FeedError::Malformed("QuickAuth said Ok without a susertoken".into())),
                }
            }
            Value::Object(m) => {
                let why = m.get("emsg").and_then(Value::as_str).unwrap_or("no reason given");
                Err(FeedError::Refused(format!("Shoonya refused the login of {}: {}", s.uid, self.redact(why, None))))
            }
            _ => Err(FeedError::Malformed("QuickAuth reply is not a JSON object".into())),
        }
    }

    /// `POST {api_url}/{route}` with `jData=<data>` (and `&jKey=<token>`); the reply as JSON.
    pub async fn post(&self, route: &str, data: &Value, token: Option<&str>) -> Result<Value, FeedError> {
        let url = format!("{}/{route}", self.settings.api_url.trim_end_matches('/'));
        let mut body = format!("jData={data}");
        if let Some(token) = token {
            body.push_str("&jKey=");
            body.push_str(token);
        }
        let fail = |e: String| FeedError::Connect(format!("{url}: {}", self.redact(&e, token)));
        let resp = self.http()?.post(&url).body(body).send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let bytes = read_capped(resp, MAX_REPLY_BYTES).await.map_err(|e| fail(e.to_string()))?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(v),
            Err(_) if !status.is_success() => Err(fail(format!("HTTP {status}"))),
            Err(e) => Err(FeedError::Malformed(format!("{url}: reply is not JSON: {e}"))),
        }
    }

    /// The master of `exchange`, loaded once per [`MASTER_TTL`]; a failed load is tried again by the
    /// next caller.
    pub async fn master(&self, exchange: &str) -> Result<Arc<Master>, FeedError> {
        let mut masters = self.masters.lock().await;
        if let Some((at, m)) = masters.get(exchange) {
            if at.elapsed() < MASTER_TTL {
                return Ok(m.clone());
            }
        }
        let source = master_source(&self.settings.masters, exchange);
        let master = Arc::new(fetch_master(&self.http()?, &source, self.settings.max_master_bytes).await?);
        tracing::info!(exchange, source, instruments = master.len(), skipped = master.skipped, "symbol master loaded");
        self.symbol_master.replace("shoonya", exchange, master.listing());
        masters.insert(exchange.to_owned(), (Instant::now(), master.clone()));
        Ok(master)
    }
}

fn no_login(reason: &str) -> FeedError {
    FeedError::Refused(format!(
        "Shoonya session invalid ({reason}) and no uid, password, totp_secret, vendor_code and api_secret are \
         configured to log in again: set a fresh feed.shoonya.session_token or the credentials"
    ))
}

/// Lower-case hex SHA-256, as QuickAuth wants the password and the app key.
pub fn sha256_hex(text: &str) -> String {
    HEXLOWER.encode(digest::digest(&digest::SHA256, text.as_bytes()).as_ref())
}

/// The 6-digit TOTP (RFC 6238: HMAC-SHA1, 30-second steps) of a base32 secret at `unix_secs`.
pub fn totp(secret: &str, unix_secs: u64) -> Result<String, FeedError> {
    let cleaned: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let key = BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| FeedError::Refused("feed.shoonya.totp_secret is not a base32 TOTP secret".into()))?;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key), &(unix_secs / 30).to_be_bytes());
    let h = tag.as_ref();
    // RFC 4226 dynamic truncation; an HMAC-SHA1 tag is 20 bytes, so these indexes are in range.
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let code = u32::from_be_bytes([h[offset] & 0x7f, h[offset + 1], h[offset + 2], h[offset + 3]]) % 1_000_000;
    Ok(format!("{code:06}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890", SHA-1, 8 digits 94287082 at T=59.
        let secret = BASE32_NOPAD.encode(b"12345678901234567890");
        assert_eq!(totp(&secret, 59).unwrap(), "287082");
        assert_eq!(totp(&secret, 1_111_111_109).unwrap(), "081804");
        assert_eq!(totp(&secret.to_lowercase(), 59).unwrap(), "287082", "case and spacing do not matter");
        assert!(totp("not base32!", 59).is_err());
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn secrets_are_redacted() {
        let settings = ShoonyaSettings {
            password: "hunter2-pass".into(),
            api_secret: "api-secret-xyz".into(),
            ..Default::default()
        };
        let shared = Shared::new(settings, SymbolMaster::default());
        let text = shared.redact("bad hunter2-pass and api-secret-xyz for TOKEN123", Some("TOKEN123"));
        assert_eq!(text, "bad <redacted> and <redacted> for <redacted>");
        assert!(is_session_error("Session Expired :  Invalid Session Key"));
        assert!(!is_session_error("Invalid Input : Wrong Password"));
    }
}
