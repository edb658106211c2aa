//! Kite Connect's REST API, what the feed needs of it: the instruments master and historical candles
//! (`GET /instruments/historical/{token}/{interval}?from=..&to=..`).
//!
//! Every request carries `X-Kite-Version: 3` and `Authorization: token <api_key>:<access_token>`; the
//! header value is never logged nor put in an error. Kite allows 3 historical requests a second per API
//! key: one [`RateLimiter`] is shared by every Kite feed of the process. A 403 means the access token
//! expired (they do, every morning) or is wrong: the error says so, without the token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::instruments::{Instruments, MAX_BYTES};
use super::KiteSettings;
use crate::feed::body::read_capped;
use crate::feed::FeedError;
use crate::model::{Bar, Interval, Symbol};

/// A historical reply larger than this is not Kite's (60 days of minutes are about 1.5 MB).
const MAX_HISTORY_BYTES: usize = 32 * 1024 * 1024;
/// Kite's documented limit for historical candles.
pub const REQUESTS_PER_SECOND: u32 = 3;
/// Retries of a request Kite answered 429 (too many requests) to.
const RETRIES_ON_429: u32 = 3;

/// What `/api/feeds` says when Kite refuses the access token. Kite's tokens expire every day.
pub const TOKEN_REFUSED: &str =
    "Kite refused the access token (HTTP 403): token expired or invalid (Kite access tokens expire at 06:00 IST every \
     day); log in again (candlecast kite login --request-token ...) and set feed.kite.access_token";

/// Spaces request starts at least `1 s / n` apart, shared by every feed: never more than `n` in a second.
#[derive(Clone)]
pub struct RateLimiter {
    spacing: Duration,
    next: Arc<Mutex<Option<Instant>>>,
}

impl RateLimiter {
    pub fn per_second(n: u32) -> RateLimiter {
        // Rounded up: three spacings of 333.33 ms would fit a fourth start inside the second.
        RateLimiter { spacing: Duration::from_millis(1000 / u64::from(n.max(1)) + 1), next: Arc::default() }
    }

    /// Waits for this request's slot. Slots are handed out in order, so waiting callers queue fairly.
    pub async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.spacing);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Kite's candle intervals and the most days one request may span (Kite's documented limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandleInterval {
    Minute,
    Day,
}

impl CandleInterval {
    pub fn name(self) -> &'static str {
        match self {
            CandleInterval::Minute => "minute",
            CandleInterval::Day => "day",
        }
    }

    pub fn max_days_per_request(self) -> i64 {
        match self {
            CandleInterval::Minute => 60,
            CandleInterval::Day => 2000,
        }
    }
}

/// `{"status":"success","data":{"candles":[["2025-12-05T09:15:00+0530",o,h,l,c,v],...]}}`
#[derive(Deserialize)]
struct HistoryReply {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    data: Option<HistoryData>,
}

#[derive(Deserialize)]
struct HistoryData {
    candles: Vec<Vec<serde_json::Value>>,
}

/// One candle as Kite sends it: the open time with its +0530 offset, OHLC, volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Candle {
    pub at: DateTime<FixedOffset>,
    pub ohlc: [f64; 4],
    pub volume: f64,
}

/// Reads one candle row; `None` if it is not `[time, o, h, l, c, v(, oi)]` with sane numbers.
pub fn parse_candle(row: &[serde_json::Value]) -> Option<Candle> {
    if row.len() < 6 {
        return None;
    }
    let at = DateTime::parse_from_str(row[0].as_str()?, "%Y-%m-%dT%H:%M:%S%z").ok()?;
    let n = |i: usize| row[i].as_f64().filter(|v| v.is_finite());
    let (o, h, l, c, v) = (n(1)?, n(2)?, n(3)?, n(4)?, n(5)?);
    let sane = o > 0.0 && c > 0.0 && l > 0.0 && h >= l && h >= o.max(c) && l <= o.min(c) && v >= 0.0;
    sane.then_some(Candle { at, ohlc: [o, h, l, c], volume: v })
}

impl Candle {
    /// A bar of `interval`: minute candles at their UTC minute; day candles on our 1d bucket of their
    /// (IST) trading date, as the exchange dates them.
    pub fn to_bar(&self, symbol: &Symbol, interval: Interval) -> Bar {
        let open_time = match interval {
            Interval::D1 => self.at.date_naive().and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis()),
            _ => self.at.timestamp_millis(),
        };
        let [open, high, low, close] = self.ohlc;
        Bar {
            symbol: symbol.clone(),
            interval,
            open_time,
            open,
            high,
            low,
            close,
            volume: self.volume,
            trades: u64::from(self.volume > 0.0),
            closed: true,
        }
    }
}

/// The REST client; cheap to clone.
#[derive(Clone)]
pub struct KiteRest {
    http: reqwest::Client,
    api_url: String,
    instruments_url: String,
    /// `token api_key:access_token`: secret, never shown.
    authorization: String,
    limiter: RateLimiter,
}

impl KiteRest {
    pub fn new(settings: &KiteSettings, limiter: RateLimiter) -> Result<KiteRest, FeedError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .build()
            .map_err(|e| FeedError::Connect(format!("Kite REST client: {e}")))?;
        Ok(KiteRest {
            http,
            api_url: settings.api_url.trim_end_matches('/').to_owned(),
            instruments_url: settings.instruments_url.clone(),
            authorization: format!("token {}:{}", settings.api_key, settings.access_token),
            limiter,
        })
    }

    /// GETs `url` (its query in `query`), at most `limit` bytes of body. `what` names it in errors; the
    /// URL itself carries no secret, but errors name only `what`.
    async fn get(&self, what: &str, url: &str, query: &[(&str, String)], limit: usize) -> Result<Vec<u8>, FeedError> {
        let mut attempt = 0;
        loop {
            let resp = self
                .http
                .get(url)
                .query(query)
                .header("X-Kite-Version", "3")
                .header("Authorization", &self.authorization)
                .send()
                .await
                .map_err(|e| FeedError::Connect(format!("{what}: {}", without_url(e))))?;
            let status = resp.status();
            if status.as_u16() == 429 && attempt < RETRIES_ON_429 {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let body =
                read_capped(resp, limit as u64).await.map_err(|e| FeedError::Malformed(format!("{what}: {e}")))?;
            if status.as_u16() == 403 {
                return Err(FeedError::Refused(TOKEN_REFUSED.into()));
            }
            if !status.is_success() {
                let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                let msg = format!("{what}: HTTP {status}: {text}");
                return Err(if status.is_client_error() && status.as_u16() != 429 {
                    FeedError::Refused(msg)
                } else {
                    FeedError::Connect(msg)
                });
            }
            return Ok(body);
        }
    }

    /// The instruments master, from `instruments_url` (or a local file when it is `file:` + path).
    pub async fn instruments(&self) -> Result<Instruments, FeedError> {
        let bytes = match self.instruments_url.strip_prefix("file:") {
            Some(path) => read_file_bounded(path).await?,
            None => self.get("instruments master", &self.instruments_url, &[], MAX_BYTES).await?,
        };
        // ~10 MB of CSV: parsed off the async threads.
        tokio::task::spawn_blocking(move || Instruments::parse(&bytes))
            .await
            .map_err(|e| FeedError::Malformed(format!("instruments master: {e}")))?
            .map_err(|e| FeedError::Malformed(e.to_string()))
    }

    /// Candles of `token` from `from` to `to` (IST dates, inclusive), in requests of at most the
    /// interval's day limit, each within the shared rate limit; oldest first, each time once.
    /// Returns the candles and how many rows were malformed.
    pub async fn candles(
        &self,
        token: u32,
        interval: CandleInterval,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(Vec<Candle>, u64), FeedError> {
        let url = format!("{}/instruments/historical/{token}/{}", self.api_url, interval.name());
        let what = format!("historical {} candles of {token}", interval.name());
        let (mut out, mut bad): (Vec<Candle>, u64) = (Vec::new(), 0);
        let mut start = from;
        while start <= to {
            let end = (start + chrono::Days::new(interval.max_days_per_request() as u64 - 1)).min(to);
            let query = [
                ("from", format!("{} 00:00:00", start.format("%Y-%m-%d"))),
                ("to", format!("{} 23:59:59", end.format("%Y-%m-%d"))),
            ];
            self.limiter.acquire().await;
            let body = self.get(&what, &url, &query, MAX_HISTORY_BYTES).await?;
            let reply: HistoryReply =
                serde_json::from_slice(&body).map_err(|e| FeedError::Malformed(format!("{what}: {e}")))?;
            let Some(data) = reply.data.filter(|_| reply.status == "success") else {
                let why: String = reply.message.chars().take(200).collect();
                return Err(FeedError::Refused(format!("{what}: Kite answered status {:?}: {why}", reply.status)));
            };
            for row in &data.candles {
                match parse_candle(row) {
                    Some(c) if out.last().is_none_or(|last| c.at > last.at) => out.push(c),
                    Some(_) => {}
                    None => bad += 1,
                }
            }
            start = end + chrono::Days::new(1);
        }
        Ok((out, bad))
    }
}

/// reqwest's errors print the URL; ours never do (the instruments URL could carry a query).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

async fn read_file_bounded(path: &str) -> Result<Vec<u8>, FeedError> {
    let what = |e: std::io::Error| FeedError::Refused(format!("instruments file {path}: {e}"));
    let size = tokio::fs::metadata(path).await.map_err(what)?.len();
    if size > MAX_BYTES as u64 {
        return Err(FeedError::Refused(format!("instruments file {path}: larger than {MAX_BYTES} bytes")));
    }
    tokio::fs::read(path).await.map_err(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn candles_with_their_ist_offset() {
        let c = parse_candle(&[
            json!("2025-12-05T09:15:00+0530"),
            json!(1500.0),
            json!(1510.5),
            json!(1495.0),
            json!(1505.0),
            json!(12000),
        ])
        .unwrap();
        // 09:15 IST is 03:45 UTC.
        assert_eq!(c.at.timestamp_millis(), 1_764_906_300_000);
        let sym: Symbol = "NSE:INFY".into();
        let bar = c.to_bar(&sym, Interval::M1);
        assert_eq!(
            (bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume),
            (1_764_906_300_000, 1500.0, 1510.5, 1495.0, 1505.0, 12000.0)
        );
        // A day candle stamped at IST midnight (18:30 UTC the day before) is the 1d bar of its own date.
        let d = parse_candle(&[
            json!("2025-12-05T00:00:00+0530"),
            json!(1.0),
            json!(2.0),
            json!(1.0),
            json!(2.0),
            json!(5),
            json!(0),
        ])
        .unwrap();
        assert_eq!(d.to_bar(&sym, Interval::D1).open_time, 1_764_892_800_000, "2025-12-05T00:00:00Z");
        for bad in [
            vec![json!("2025-12-05 09:15:00"), json!(1.0), json!(1.0), json!(1.0), json!(1.0), json!(1)],
            vec![json!("2025-12-05T09:15:00+0530"), json!(1.0), json!(0.5), json!(1.0), json!(1.0), json!(1)],
            vec![json!("2025-12-05T09:15:00+0530"), json!("1"), json!(1.0), json!(1.0), json!(1.0), json!(1)],
            vec![json!("2025-12-05T09:15:00+0530"), json!(1.0)],
        ] {
            assert_eq!(parse_candle(&bad), None, "{bad:?}");
        }
    }

    /// Three request starts a second at most. Only the lower bound is checked: a sleep never ends
    /// early, so this holds on a machine of any speed.
    #[tokio::test]
    async fn the_limiter_spaces_requests() {
        // On a paused clock the sleeps end exactly on time: a first start delayed by a busy machine no
        // longer eats into the next three's second.
        tokio::time::pause();
        let limiter = RateLimiter::per_second(REQUESTS_PER_SECOND);
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            limiter.acquire().await;
            starts.push(Instant::now() - t0);
        }
        for w in starts.windows(4) {
            assert!(w[3] - w[0] >= Duration::from_secs(1), "4 requests within a second: {starts:?}");
        }
    }
}
