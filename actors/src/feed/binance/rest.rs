//! Binance's REST market-data endpoints the adapter needs: klines for history, historical trades to
//! fill a gap in the trade stream.
//!
//! Why `/api/v3/historicalTrades` and not `/api/v3/aggTrades` for gaps: its `fromId` is the same trade
//! id as the stream's `t`, so the missing range is fetched exactly, one row per missed trade, and the
//! bars come out identical to an uninterrupted stream. `aggTrades?fromId=` pages by *aggregate* id, so
//! it would need a time search plus reconciliation of aggregates that straddle the gap's edges.
//! Binance has documented `historicalTrades` both as public and as needing an API key (header
//! `X-MBX-APIKEY`, no signature); the key is sent when one is configured.

use std::time::Duration;

use crate::feed::FeedError;
use crate::model::{Bar, Interval, Symbol, Trade};

use super::wire::{Kline, RestTrade};

/// Rows per request: the documented maximum of both endpoints.
pub const PAGE: usize = 1000;

/// A small client for one REST base URL, e.g. `https://api.binance.com` (tests: `http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl RestClient {
    pub fn new(base: &str, api_key: Option<String>, timeout: Duration) -> Result<RestClient, FeedError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| FeedError::Connect(format!("REST client: {e}")))?;
        Ok(RestClient { http, base: base.trim_end_matches('/').to_owned(), api_key: api_key.filter(|k| !k.is_empty()) })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, FeedError> {
        let mut req = self.http.get(format!("{}{path}", self.base)).query(query);
        if let Some(key) = &self.api_key {
            req = req.header("X-MBX-APIKEY", key);
        }
        let resp = req.send().await.map_err(|e| FeedError::Connect(format!("GET {path}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            // Binance answers {"code":-1121,"msg":"Invalid symbol."}; keep its text, not our request.
            let body = resp.text().await.unwrap_or_default();
            let msg = format!("GET {path}: HTTP {status}: {}", body.chars().take(200).collect::<String>());
            // 4xx other than rate limits (429, 418) will not get better by retrying.
            return Err(if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 418 {
                FeedError::Refused(msg)
            } else {
                FeedError::Connect(msg)
            });
        }
        resp.json::<T>().await.map_err(|e| FeedError::Malformed(format!("GET {path}: {e}")))
    }

    /// Bars of `interval` with open times in `[start, end)`, ascending, paged by 1000.
    pub async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start: i64,
        end: i64,
        now: i64,
    ) -> Result<Vec<Bar>, FeedError> {
        let mut out: Vec<Bar> = Vec::new();
        let mut from = start;
        while from < end {
            let query = [
                ("symbol", symbol.to_string()),
                ("interval", interval.as_str().to_owned()),
                ("startTime", from.to_string()),
                ("endTime", (end - 1).to_string()),
                ("limit", PAGE.to_string()),
            ];
            let page: Vec<Kline> = self.get("/api/v3/klines", &query).await?;
            let n = page.len();
            for k in &page {
                let bar = k.to_bar(symbol, interval, now)?;
                // Pages must move forward; a server repeating itself must not loop us forever.
                if out.last().is_some_and(|last| bar.open_time <= last.open_time) {
                    continue;
                }
                out.push(bar);
            }
            match out.last() {
                Some(last) if n == PAGE && last.open_time + interval.millis() > from => {
                    from = last.open_time + interval.millis()
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Trades with ids in `[from_id, to_id]`, ascending, paged by 1000.
    pub async fn trades_between(
        &self,
        symbol: &Symbol,
        from_id: u64,
        to_id: u64,
        now: i64,
    ) -> Result<Vec<Trade>, FeedError> {
        let mut out: Vec<Trade> = Vec::new();
        let mut next = from_id;
        while next <= to_id {
            let limit = ((to_id - next + 1) as usize).min(PAGE);
            let query = [("symbol", symbol.to_string()), ("fromId", next.to_string()), ("limit", limit.to_string())];
            let page: Vec<RestTrade> = self.get("/api/v3/historicalTrades", &query).await?;
            let before = next;
            for row in page.iter().filter(|r| r.id >= before && r.id <= to_id) {
                out.push(row.to_trade(symbol, now)?);
                next = row.id + 1;
            }
            if next == before {
                break; // nothing new: the server has no more of the range
            }
        }
        Ok(out)
    }
}
