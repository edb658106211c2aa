//! Binance's symbol list for the symbol search: `GET /api/v3/exchangeInfo` (no parameters: every spot
//! symbol), `{"symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",
//! "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.01",...},{"filterType":"LOT_SIZE",
//! "stepSize":"0.00001",...}]}]}`. Read once, when the first Binance feed starts.
//!
//! The real answer is some 15 MB for ~3,000 symbols; it is read within [`MAX_BYTES`] and parsed off the
//! async threads. Symbols that no longer trade (`status` other than `TRADING`) are left out.

use std::time::Duration;

use serde::Deserialize;

use super::BinanceSettings;
use crate::feed::FeedError;
use crate::symbol_master::Instrument;

/// Far over the real answer's size; a larger one is not Binance's.
const MAX_BYTES: usize = 64 * 1024 * 1024;

#[derive(Deserialize)]
struct Reply {
    symbols: Vec<SymbolInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymbolInfo {
    symbol: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    base_asset: String,
    #[serde(default)]
    quote_asset: String,
    #[serde(default)]
    filters: Vec<serde_json::Value>,
}

impl SymbolInfo {
    fn filter(&self, kind: &str, field: &str) -> Option<f64> {
        let f = self.filters.iter().find(|f| f["filterType"] == kind)?;
        f[field].as_str()?.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)
    }
}

/// The trading symbols of an exchangeInfo answer.
pub fn parse(body: &[u8]) -> Result<Vec<Instrument>, FeedError> {
    let reply: Reply = serde_json::from_slice(body).map_err(|e| FeedError::Malformed(format!("exchangeInfo: {e}")))?;
    Ok(reply
        .symbols
        .into_iter()
        .filter(|s| s.status == "TRADING" && !s.symbol.is_empty() && s.symbol.len() <= 32)
        .map(|s| Instrument {
            symbol: s.symbol.clone(),
            exchange: "BINANCE".into(),
            tradingsymbol: s.symbol.clone(),
            name: format!("{}/{}", s.base_asset, s.quote_asset),
            kind: "SPOT".into(),
            segment: String::new(),
            lot_size: s.filter("LOT_SIZE", "stepSize"),
            tick_size: s.filter("PRICE_FILTER", "tickSize"),
            source: "binance",
        })
        .collect())
}

/// Fetches and parses `{rest_url}/api/v3/exchangeInfo`.
pub async fn fetch(settings: &BinanceSettings) -> Result<Vec<Instrument>, FeedError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.rest_timeout_ms.max(1) * 3))
        .build()
        .map_err(|e| FeedError::Connect(format!("REST client: {e}")))?;
    let url = format!("{}/api/v3/exchangeInfo", settings.rest_url.trim_end_matches('/'));
    let mut resp =
        http.get(&url).send().await.map_err(|e| FeedError::Connect(format!("GET /api/v3/exchangeInfo: {e}")))?;
    if !resp.status().is_success() {
        return Err(FeedError::Connect(format!("GET /api/v3/exchangeInfo: HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| FeedError::Connect(format!("exchangeInfo: {e}")))? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(FeedError::Malformed(format!("exchangeInfo: over {MAX_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(|e| FeedError::Malformed(format!("exchangeInfo: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trading_symbols_with_their_filters() {
        let body = br#"{"timezone":"UTC","serverTime":1,"rateLimits":[],"exchangeFilters":[],"symbols":[
            {"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC","filters":[
                {"filterType":"PRICE_FILTER","minPrice":"0.00001000","maxPrice":"922327.00000000","tickSize":"0.00001000"},
                {"filterType":"LOT_SIZE","minQty":"0.00010000","maxQty":"100000.00000000","stepSize":"0.00010000"}]},
            {"symbol":"OLDCOIN","status":"BREAK","baseAsset":"OLD","quoteAsset":"USDT","filters":[]}]}"#;
        let list = parse(body).unwrap();
        assert_eq!(list.len(), 1, "BREAK symbols are left out");
        let eth = &list[0];
        assert_eq!((eth.symbol.as_str(), eth.exchange.as_str(), eth.name.as_str()), ("ETHBTC", "BINANCE", "ETH/BTC"));
        assert_eq!((eth.tick_size, eth.lot_size), (Some(0.00001), Some(0.0001)));
        assert!(parse(b"{}").is_err() && parse(b"[1,2]").is_err());
    }
}
