//! Binance's wire formats, exactly as its spot API documents them, and their conversion into our
//! [`Trade`] and [`Bar`]. Prices and quantities arrive as decimal strings (Binance keeps them exact);
//! they become `f64` here, the one place that parses them.

use serde::Deserialize;

use crate::feed::FeedError;
use crate::model::{Bar, Interval, Side, Symbol, Trade};

/// One event of the `<symbol>@trade` stream.
///
/// ```json
/// {"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",
///  "T":1672515782136,"m":true,"M":true}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TradeEvent {
    /// Event type, `"trade"`.
    #[serde(rename = "e")]
    pub event_type: String,
    /// Event time (ms): when Binance sent it.
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "s")]
    pub symbol: String,
    /// Trade id: consecutive per symbol, which is how gaps are found.
    #[serde(rename = "t")]
    pub trade_id: u64,
    #[serde(rename = "p")]
    pub price: String,
    #[serde(rename = "q")]
    pub qty: String,
    /// Trade time (ms): when the match happened. It decides the bar.
    #[serde(rename = "T")]
    pub trade_time: i64,
    /// Is the buyer the market maker? Then the seller took liquidity: a sell.
    #[serde(rename = "m")]
    pub buyer_is_maker: bool,
    /// Documented as "ignore".
    #[serde(rename = "M", default)]
    pub ignore: bool,
}

/// What a text frame from the market-stream endpoint means to us.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    Trade(TradeEvent),
    /// The server is about to go away (`{"e":"serverShutdown","E":...}`): reconnect now.
    ServerShutdown,
    /// Anything else well-formed (a reply to a control request, an event we did not ask for).
    Other,
}

/// Decodes one text frame, raw (`/ws/<stream>`) or wrapped as combined streams are
/// (`{"stream":"btcusdt@trade","data":{...}}`).
pub fn decode(text: &str) -> Result<StreamMessage, FeedError> {
    let malformed = |e: serde_json::Error| FeedError::Malformed(format!("{e}: {}", excerpt(text)));
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(malformed)?;
    if let Some(data) = value.get_mut("data").filter(|_| text.contains("\"stream\"")) {
        value = data.take();
    }
    // Replies to control requests carry "result"/"id" and no "e".
    match value.get("e").and_then(|e| e.as_str()) {
        Some("trade") => serde_json::from_value(value).map(StreamMessage::Trade).map_err(malformed),
        Some("serverShutdown") => Ok(StreamMessage::ServerShutdown),
        Some(_) => Ok(StreamMessage::Other),
        None if value.is_object() => Ok(StreamMessage::Other),
        None => Err(FeedError::Malformed(format!("not a JSON object: {}", excerpt(text)))),
    }
}

/// At most 200 characters of a bad message, for the log.
fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A price or quantity: a finite decimal above 0. Rust parses `"inf"`, `"NaN"` and `"1e309"` (infinity)
/// as floats; none of them is a price, and any of them would poison every bar it reaches.
fn number(field: &str, s: &str) -> Result<f64, FeedError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(FeedError::Malformed(format!("{field} {s:?} is not a finite number above 0"))),
        Err(_) => Err(FeedError::Malformed(format!("{field} {s:?} is not a number"))),
    }
}

/// A volume: a finite decimal, 0 or more (a kline without trades has volume 0).
fn volume(s: &str) -> Result<f64, FeedError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(FeedError::Malformed(format!("volume {s:?} is not a finite number, 0 or more"))),
    }
}

fn side(buyer_is_maker: bool) -> Side {
    if buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    }
}

impl TradeEvent {
    /// Our trade, stamped with the exchange's trade time and our receive time.
    pub fn to_trade(&self, symbol: &Symbol, received_ts: i64) -> Result<Trade, FeedError> {
        Ok(Trade {
            symbol: symbol.clone(),
            price: number("price", &self.price)?,
            qty: number("quantity", &self.qty)?,
            side: side(self.buyer_is_maker),
            exchange_ts: self.trade_time,
            received_ts,
            id: self.trade_id,
        })
    }
}

/// One row of `GET /api/v3/historicalTrades` (the same shape as `/api/v3/trades`).
///
/// ```json
/// {"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",
///  "time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestTrade {
    pub id: u64,
    pub price: String,
    pub qty: String,
    #[serde(default)]
    pub quote_qty: Option<String>,
    pub time: i64,
    pub is_buyer_maker: bool,
    #[serde(default)]
    pub is_best_match: bool,
}

impl RestTrade {
    pub fn to_trade(&self, symbol: &Symbol, received_ts: i64) -> Result<Trade, FeedError> {
        Ok(Trade {
            symbol: symbol.clone(),
            price: number("price", &self.price)?,
            qty: number("quantity", &self.qty)?,
            side: side(self.is_buyer_maker),
            exchange_ts: self.time,
            received_ts,
            id: self.id,
        })
    }
}

/// One row of `GET /api/v3/klines`: a JSON array, numbers for times and counts, strings for prices.
///
/// ```json
/// [1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",
///  1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Kline(
    /// Open time (ms).
    pub i64,
    pub String,
    pub String,
    pub String,
    pub String,
    /// Base-asset volume.
    pub String,
    /// Close time (ms), the last millisecond of the bucket.
    pub i64,
    /// Quote-asset volume.
    pub String,
    /// Number of trades.
    pub u64,
    /// Taker buy base volume.
    pub String,
    /// Taker buy quote volume.
    pub String,
    /// Documented as "unused field, ignore".
    pub serde_json::Value,
);

impl Kline {
    /// Our bar; `closed` once the kline's close time is in the past.
    pub fn to_bar(&self, symbol: &Symbol, interval: Interval, now: i64) -> Result<Bar, FeedError> {
        // Checked before aligning: align overflows near the ends of i64.
        if !crate::model::time::in_range(self.0) {
            return Err(FeedError::Malformed(format!("kline open time {} is out of range", self.0)));
        }
        let mut bar = Bar::flat(symbol.clone(), interval, interval.align(self.0), number("open", &self.1)?);
        bar.high = number("high", &self.2)?;
        bar.low = number("low", &self.3)?;
        bar.close = number("close", &self.4)?;
        bar.volume = volume(&self.5)?;
        bar.trades = self.8;
        bar.closed = self.6 < now;
        if let Some(reason) = bar.invalid_reason() {
            return Err(FeedError::Malformed(format!("kline at {}: {reason}", self.0)));
        }
        Ok(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRADE: &str = r#"{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782130,"m":true,"M":true}"#;

    /// Raw stream, combined stream, shutdown notice, control reply: each decodes to what it means.
    #[test]
    fn decodes_each_documented_frame() {
        let StreamMessage::Trade(raw) = decode(TRADE).unwrap() else { panic!("a trade") };
        assert_eq!(
            (raw.trade_id, raw.price.as_str(), raw.trade_time, raw.buyer_is_maker),
            (12345, "0.001", 1672515782130, true)
        );
        let combined = format!(r#"{{"stream":"bnbbtc@trade","data":{TRADE}}}"#);
        assert_eq!(decode(&combined).unwrap(), StreamMessage::Trade(raw));
        assert_eq!(decode(r#"{"e":"serverShutdown","E":1730000000000}"#).unwrap(), StreamMessage::ServerShutdown);
        assert_eq!(decode(r#"{"result":null,"id":1}"#).unwrap(), StreamMessage::Other);
        assert_eq!(decode(r#"{"e":"aggTrade","E":1}"#).unwrap(), StreamMessage::Other);
    }

    /// `{"e":"trade", ...` without a trade id, or not JSON at all: malformed, with an excerpt.
    #[test]
    fn refuses_malformed_frames() {
        for bad in ["not json", r#"{"e":"trade","E":1,"s":"X","p":"1","q":"1","T":1,"m":false}"#, "[1,2"] {
            let err = decode(bad).unwrap_err();
            assert!(matches!(err, FeedError::Malformed(_)), "{bad}: {err}");
        }
        let StreamMessage::Trade(t) = decode(&TRADE.replace("\"0.001\"", "\"abc\"")).unwrap() else { panic!() };
        assert!(t.to_trade(&"BNBBTC".into(), 0).is_err(), "a price that is not a number");
    }

    /// Strings Rust parses as floats but that are no price: refused, not folded into a bar.
    #[test]
    fn refuses_non_finite_and_non_positive_numbers() {
        for bad in ["inf", "NaN", "1e309", "-1", "0", "-0.0"] {
            let StreamMessage::Trade(t) = decode(&TRADE.replace("\"100\"", &format!("{bad:?}"))).unwrap() else {
                panic!()
            };
            assert!(t.to_trade(&"BNBBTC".into(), 0).is_err(), "qty {bad}");
            let StreamMessage::Trade(t) = decode(&TRADE.replace("\"0.001\"", &format!("{bad:?}"))).unwrap() else {
                panic!()
            };
            assert!(t.to_trade(&"BNBBTC".into(), 0).is_err(), "price {bad}");
        }
        let kline = |volume: &str| {
            let row = format!(
                r#"[1499040000000,"1","2","0.5","1.5","{volume}",1499040059999,"2434.19055334",308,"1","1","0"]"#
            );
            serde_json::from_str::<Kline>(&row).unwrap().to_bar(&"X".into(), Interval::M1, 1499040060000)
        };
        assert!(kline("0").is_ok(), "a kline without trades");
        assert!(kline("1e309").is_err() && kline("-1").is_err() && kline("NaN").is_err());
    }

    /// `m: true` (buyer is maker) is a sell; both times are kept.
    #[test]
    fn converts_to_our_trade() {
        let StreamMessage::Trade(ev) = decode(TRADE).unwrap() else { panic!() };
        let t = ev.to_trade(&"BNBBTC".into(), 1672515782200).unwrap();
        assert_eq!(
            (t.price, t.qty, t.side, t.exchange_ts, t.received_ts, t.id),
            (0.001, 100.0, Side::Sell, 1672515782130, 1672515782200, 12345)
        );
        let buy = TradeEvent { buyer_is_maker: false, ..ev };
        assert_eq!(buy.to_trade(&"BNBBTC".into(), 0).unwrap().side, Side::Buy);
    }

    /// `[{"id":28457,"price":"4.00000100","qty":"12.00000000",...,"isBuyerMaker":true,...}]`
    #[test]
    fn decodes_rest_trades_and_klines() {
        let rows: Vec<RestTrade> = serde_json::from_str(
            r#"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]"#,
        )
        .unwrap();
        let t = rows[0].to_trade(&"X".into(), 0).unwrap();
        assert_eq!((t.id, t.price, t.qty, t.side), (28457, 4.000001, 12.0, Side::Sell));

        let klines: Vec<Kline> = serde_json::from_str(
            r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499040059999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#,
        )
        .unwrap();
        let bar = klines[0].to_bar(&"X".into(), Interval::M1, 1499040060000).unwrap();
        assert_eq!(
            (bar.open_time, bar.open, bar.high, bar.trades, bar.closed),
            (1499040000000, 0.0163479, 0.8, 308, true)
        );
        assert!(!klines[0].to_bar(&"X".into(), Interval::M1, 1499040059999).unwrap().closed, "still forming");
    }

    /// Found by fuzzing (fuzz/regressions/): a kline opening near i64::MIN overflowed `Interval::align`.
    #[test]
    fn a_kline_at_an_absurd_time_is_malformed_not_a_panic() {
        let input = include_bytes!("../../../../fuzz/regressions/binance_rest-kline-open-time-min.bin");
        let klines: Vec<Kline> = serde_json::from_slice(&input[1..]).unwrap();
        assert!(klines[0].to_bar(&Symbol::from("BTCUSDT"), Interval::S1, 0).is_err());
    }
}
