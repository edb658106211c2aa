//! The `/ws` protocol: every JSON message a client sends or receives, and the WebSocket framing of
//! server frames (done here so the hub can frame an update once for all its subscribers).
//!
//! Client → server (any message may carry an `"id"`, echoed in the direct reply):
//! ```json
//! {"type":"subscribe","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1m"}
//! {"type":"unsubscribe","trading_pairs":["BTCUSDT"],"interval":"1m"}
//! {"type":"get_historical","trading_pair":"BTCUSDT","interval":"1m","limit":1000,"end_time":1700000000000}
//! {"type":"ping"}
//! {"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1m","indicator":"ema","params":{"period":20}}
//! {"type":"subscribe_signals","trading_pair":"BTCUSDT","interval":"1m"}
//! ```
//! Server → client: `subscribed`, `unsubscribed`, `price_update`, `historical`, `pong`, `error`
//! (see `docs/protocol.md` for an example of each).

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Bar, Interval};

/// Default and maximum number of bars in one historical reply.
pub const DEFAULT_HISTORY_LIMIT: usize = 1000;
pub const MAX_HISTORY_LIMIT: usize = 5000;

// ---------------------------------------------------------------------------------------------------
// Client → server

/// `{"type":"subscribe"|"unsubscribe","trading_pairs":[...],"interval":"1m","from":<ms>}`; interval
/// defaults to 1m.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicsRequest {
    pub trading_pairs: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Option<Interval>)]
    pub interval: Option<String>,
    /// subscribe: the open time of the newest bar the client already holds (from a REST history);
    /// bars that closed from then on are sent first. Set by the server itself after a WS `get_historical`.
    #[serde(default)]
    pub from: Option<i64>,
    #[serde(default, rename = "type")]
    pub _type: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// `{"type":"get_historical","trading_pair":"BTCUSDT","interval":"1m","limit":1000,"end_time":..,"start_time":..}`
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoricalRequest {
    pub trading_pair: String,
    #[serde(default)]
    #[schema(value_type = Option<Interval>)]
    pub interval: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub start_time: Option<i64>,
    /// Only bars created or revised at or after this wall-clock time (ms): polling for changes.
    #[serde(default)]
    pub since: Option<i64>,
    #[serde(default, rename = "type")]
    pub _type: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// `{"type":"subscribe_indicator"|"unsubscribe_indicator","trading_pair":"BTCUSDT","interval":"1m",
/// "indicator":"ema","params":{"period":20},"history":500}`
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorRequest {
    pub trading_pair: String,
    #[serde(default)]
    #[schema(value_type = Option<Interval>)]
    pub interval: Option<String>,
    pub indicator: String,
    #[serde(default)]
    #[schema(schema_with = crate::protocol_schema::indicator_params)]
    pub params: Value,
    /// Values of history sent first (default 500, at most 5,000).
    #[serde(default)]
    pub history: Option<usize>,
    #[serde(default, rename = "type")]
    pub _type: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// `{"type":"subscribe_signals"|"unsubscribe_signals","trading_pair":"BTCUSDT","interval":"1m"}`
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalsRequest {
    pub trading_pair: String,
    #[serde(default)]
    #[schema(value_type = Option<Interval>)]
    pub interval: Option<String>,
    #[serde(default, rename = "type")]
    pub _type: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// A validated history query, shared by the WebSocket and REST paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub interval: Interval,
    pub limit: usize,
    /// Exclusive.
    pub end_time: Option<i64>,
    /// Inclusive.
    pub start_time: Option<i64>,
}

/// A request parameter that failed validation: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter `{name}`: {reason}")]
pub struct InvalidParameter {
    pub name: &'static str,
    pub reason: String,
}

impl HistoryQuery {
    /// Every bar of `interval` held in memory (for warming up indicators and strategies).
    pub fn all(interval: Interval) -> HistoryQuery {
        HistoryQuery { interval, limit: usize::MAX, end_time: None, start_time: None }
    }

    /// Checks the raw parameters of a history request (REST query string or WS message).
    pub fn parse(
        interval: Option<&str>,
        limit: Option<i64>,
        start_time: Option<i64>,
        end_time: Option<i64>,
    ) -> Result<HistoryQuery, InvalidParameter> {
        let interval = parse_interval(interval)?;
        let limit = match limit {
            None => DEFAULT_HISTORY_LIMIT,
            Some(n) if n >= 1 && n as usize <= MAX_HISTORY_LIMIT => n as usize,
            Some(n) => {
                return Err(InvalidParameter {
                    name: "limit",
                    reason: format!("must be between 1 and {MAX_HISTORY_LIMIT}, got {n}"),
                })
            }
        };
        for (name, value) in [("start_time", start_time), ("end_time", end_time)] {
            if let Some(t) = value {
                if !(0..=MAX_TIME_MS).contains(&t) {
                    return Err(InvalidParameter {
                        name,
                        reason: format!("must be UTC milliseconds between 0 and {MAX_TIME_MS}, got {t}"),
                    });
                }
            }
        }
        if let (Some(s), Some(e)) = (start_time, end_time) {
            if s >= e {
                return Err(InvalidParameter {
                    name: "start_time",
                    reason: format!("must be before end_time ({s} >= {e})"),
                });
            }
        }
        Ok(HistoryQuery { interval, limit, end_time, start_time })
    }
}

/// Checks the `since` parameter of a history request (wall-clock ms, as `as_of` in a reply).
pub fn parse_since(since: Option<i64>) -> Result<Option<i64>, InvalidParameter> {
    match since {
        Some(t) if !(0..=MAX_TIME_MS).contains(&t) => Err(InvalidParameter {
            name: "since",
            reason: format!("must be UTC milliseconds between 0 and {MAX_TIME_MS}, got {t}"),
        }),
        other => Ok(other),
    }
}

/// 2100-01-01 in ms: anything later is a unit mistake (seconds vs microseconds), not a date.
const MAX_TIME_MS: i64 = 4_102_444_800_000;

/// Parses an optional interval name; absent means `1m`, as in seed 004.
pub fn parse_interval(name: Option<&str>) -> Result<Interval, InvalidParameter> {
    match name {
        None => Ok(Interval::M1),
        Some(s) => s
            .parse()
            .map_err(|e: crate::model::UnknownInterval| InvalidParameter { name: "interval", reason: e.to_string() }),
    }
}

// ---------------------------------------------------------------------------------------------------
// Server → client

/// A bar as clients see it (seed 004's `data` object, plus `trades`): `timestamp` is the open time, ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BarData {
    pub timestamp: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub trades: u64,
    pub closed: bool,
}

impl From<&Bar> for BarData {
    fn from(b: &Bar) -> BarData {
        BarData {
            timestamp: b.open_time,
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            volume: b.volume,
            trades: b.trades,
            closed: b.closed,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `{"type":"price_update","symbol":..,"interval":..,"data":{..},"ts_sent":<µs>}`, plus `"correction":true`
/// when a late trade revised a closed bar.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceUpdate<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub symbol: &'a str,
    pub interval: Interval,
    pub data: BarData,
    #[serde(skip_serializing_if = "is_false")]
    pub correction: bool,
    /// When the hub framed this update, in µs since the epoch: clients on the same clock measure latency.
    pub ts_sent: i64,
}

/// `{"type":"trade_marker","symbol":"AAPL","data":{"timestamp":1672567200000,"side":"BUY","quantity":100,
/// "price":150,"profit_loss":25.5,"strategy":".."}}`: an executed trade a script reported, pushed to every
/// `/ws` client subscribed to any interval of its symbol (charts draw it as a marker).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TradeMarker<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub symbol: &'a str,
    #[schema(value_type = crate::persist::StoredTrade)]
    pub data: &'a crate::persist::StoredTrade,
}

impl<'a> TradeMarker<'a> {
    pub fn new(trade: &'a crate::persist::StoredTrade) -> TradeMarker<'a> {
        TradeMarker { kind: "trade_marker", symbol: &trade.symbol, data: trade }
    }
}

/// `{"type":"historical","symbol":..,"interval":..,"data":[..]}`
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Historical {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    pub data: Vec<BarData>,
    /// For a `since` request: the server time the answer covers up to; pass it as the next `since`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub as_of: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<Value>,
}

impl Historical {
    /// The reply to a history request (REST body or WS message), bars ascending.
    pub fn new(symbol: &str, interval: Interval, bars: &[Bar], id: Option<Value>) -> Historical {
        Historical {
            kind: "historical".into(),
            symbol: symbol.to_owned(),
            interval,
            data: bars.iter().map(BarData::from).collect(),
            as_of: None,
            id,
        }
    }

    /// Adds the `as_of` of a `since` request.
    pub fn with_as_of(mut self, as_of: Option<i64>) -> Historical {
        self.as_of = as_of;
        self
    }
}

/// `{"type":"indicator"|"indicator_history","symbol":..,"interval":..,"indicator":..,"params":{..},"data":..}`:
/// `data` is one [`IndicatorPoint`] (a live value) or a list of them (the history a subscription starts with).
/// Serialized straight from the values: a history of 500 points used to be built as a JSON tree first, a
/// few thousand small allocations per subscription on the indicator service's thread.
#[derive(Debug, Serialize)]
pub struct IndicatorFrame<'a, D: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub symbol: &'a str,
    pub interval: Interval,
    pub indicator: &'a str,
    pub params: &'a Value,
    pub data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
}

/// One indicator value at a bar: its fields (`{"value":..}`, or `macd`/`signal`/`histogram`, ...), the bar's
/// open time and whether the bar is closed (`false`: a preview on the forming bar).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IndicatorPoint {
    #[serde(flatten)]
    pub value: crate::strategy::indicators::IndicatorValue,
    pub timestamp: i64,
    pub closed: bool,
}

/// `{"type":"subscribed"|"unsubscribed","trading_pairs":[..],"interval":..}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicsAck<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[schema(value_type = Vec<String>)]
    pub trading_pairs: &'a [String],
    pub interval: Interval,
    /// The pairs of the request that were not subscribed, each with its reason (absent when none was refused).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<RefusedTopic>)]
    pub refused: &'a [RefusedTopic],
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<&'a Value>,
}

/// One pair of a `subscribe` the server did not subscribe, and why:
/// `{"trading_pair":"FOOUSDT","code":"unknown_symbol","message":"unknown symbol FOOUSDT"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusedTopic {
    pub trading_pair: String,
    pub code: ErrorCode,
    pub message: String,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    InvalidParameter,
    UnknownSymbol,
    TooManySubscriptions,
    RateLimited,
    FrameTooLarge,
    UnsupportedFrame,
    Internal,
}

/// `{"type":"error","code":..,"message":..}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(schema_with = crate::protocol_schema::request_id)]
    pub id: Option<Value>,
    /// For a request refused by a budget that refills: the seconds after which it should pass.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after: Option<u64>,
}

impl ErrorMessage {
    pub fn new(code: ErrorCode, message: impl Into<String>, id: Option<Value>) -> ErrorMessage {
        ErrorMessage { kind: "error".into(), code, message: message.into(), id, retry_after: None }
    }

    /// Adds the seconds after which the same request should pass.
    pub fn with_retry_after(mut self, secs: u64) -> ErrorMessage {
        self.retry_after = Some(secs);
        self
    }
}

/// Serializes a message into one WebSocket text frame.
pub fn text_frame<T: Serialize>(msg: &T) -> Bytes {
    // Serializing our own types into memory cannot fail (no maps with non-string keys, no I/O).
    let json = serde_json::to_vec(msg)
        .unwrap_or_else(|_| br#"{"type":"error","code":"internal","message":"serialization failed"}"#.to_vec());
    frame::text(&json)
}

/// Microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Server-to-client WebSocket frames (RFC 6455 §5.2: FIN set, unmasked).
pub mod frame {
    use super::*;

    fn build(opcode: u8, payload: &[u8]) -> Bytes {
        with_first_byte(0x80 | opcode, payload)
    }

    /// A frame whose first byte (FIN, RSV bits, opcode) is given whole: a compressed message sets RSV1
    /// (`crate::deflate`).
    pub fn with_first_byte(first: u8, payload: &[u8]) -> Bytes {
        let len = payload.len();
        let mut buf = BytesMut::with_capacity(len + 10);
        buf.put_u8(first);
        if len < 126 {
            buf.put_u8(len as u8);
        } else if len <= u16::MAX as usize {
            buf.put_u8(126);
            buf.put_u16(len as u16);
        } else {
            buf.put_u8(127);
            buf.put_u64(len as u64);
        }
        buf.put_slice(payload);
        buf.freeze()
    }

    pub fn text(payload: &[u8]) -> Bytes {
        build(0x1, payload)
    }

    /// A close frame; the reason is cut to fit the 123 bytes a control frame allows.
    pub fn close(code: u16, reason: &str) -> Bytes {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        build(0x8, &payload)
    }

    pub fn ping(payload: &[u8]) -> Bytes {
        build(0x9, &payload[..payload.len().min(125)])
    }

    pub fn pong(payload: &[u8]) -> Bytes {
        build(0xA, &payload[..payload.len().min(125)])
    }

    /// The frames of a buffer of consecutive server frames, as built above (the hub writes every frame
    /// due to a client in one flush as one buffer). Each is a slice of `buf`, no copy; a truncated tail
    /// (never produced here) ends the sequence.
    pub fn split(buf: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = frame_len(buf.get(at..)?)?;
            let frame = buf.slice(at..at + len);
            at += len;
            Some(frame)
        })
    }

    /// How many whole frames `buf` holds, counted as [`split`] would cut them but without slicing: the
    /// `/ws` writer counts every buffer it writes, and a slice per frame was a shared-counter increment and
    /// decrement each.
    pub fn count(buf: &[u8]) -> usize {
        let (mut at, mut n) = (0, 0);
        while let Some(len) = buf.get(at..).and_then(frame_len) {
            at += len;
            n += 1;
        }
        n
    }

    /// The length, header included, of the unmasked server frame at the start of `f`, if it is whole.
    fn frame_len(f: &[u8]) -> Option<usize> {
        let (header, payload): (usize, usize) = match *f.get(1)? & 0x7f {
            126 => (4, usize::from(u16::from_be_bytes([*f.get(2)?, *f.get(3)?]))),
            127 => (10, usize::try_from(u64::from_be_bytes(f.get(2..10)?.try_into().ok()?)).ok()?),
            n => (2, usize::from(n)),
        };
        let len = header.checked_add(payload)?;
        (len <= f.len()).then_some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames written back to back in one buffer come apart again, each exactly as built, whatever its
    /// header size (2, 4 or 10 bytes).
    #[test]
    fn consecutive_frames_split_back_into_the_frames() {
        let frames = [
            frame::text(br#"{"type":"price_update"}"#),
            frame::text(&vec![b'x'; 300]),
            frame::ping(b""),
            frame::text(&vec![b'y'; 70_000]),
            frame::close(1000, "bye"),
        ];
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let joined = Bytes::from(joined);
        assert_eq!(frame::split(&joined).collect::<Vec<_>>(), frames);
        assert_eq!(frame::split(&joined.slice(..joined.len() - 1)).count(), 4, "a cut frame is not one");
        assert_eq!(frame::split(&Bytes::new()).count(), 0);
        assert_eq!(frame::count(&joined), 5);
        assert_eq!(frame::count(&joined[..joined.len() - 1]), 4, "a cut frame is not counted");
        assert_eq!(frame::count(&[]), 0);
    }

    /// `{"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"5m","id":7}` and seed 004's form
    /// without interval both decode.
    #[test]
    fn decodes_topic_requests() {
        let table = [
            (
                r#"{"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"5m","id":7}"#,
                Some("5m"),
                Some(Value::from(7)),
            ),
            (r#"{"type":"subscribe","trading_pairs":["BTCUSDT","ETHUSDT"]}"#, None, None),
        ];
        for (raw, interval, id) in table {
            let r: TopicsRequest = serde_json::from_str(raw).unwrap();
            assert_eq!(r.interval.as_deref(), interval);
            assert_eq!(r.id, id);
        }
        assert!(serde_json::from_str::<TopicsRequest>(r#"{"type":"subscribe","trading_pair":"X"}"#).is_err());
        assert!(serde_json::from_str::<TopicsRequest>(r#"{"trading_pairs":"BTCUSDT"}"#).is_err());
    }

    #[test]
    fn history_query_names_the_bad_parameter() {
        assert_eq!(HistoryQuery::parse(None, None, None, None).unwrap().limit, DEFAULT_HISTORY_LIMIT);
        for (args, name) in [
            ((Some("7m"), None, None, None), "interval"),
            ((None, Some(0), None, None), "limit"),
            ((None, Some(5001), None, None), "limit"),
            ((None, None, Some(-1), None), "start_time"),
            ((None, None, None, Some(1_700_000_000_000_000)), "end_time"),
            ((None, None, Some(10), Some(10)), "start_time"),
        ] {
            let err = HistoryQuery::parse(args.0, args.1, args.2, args.3).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn price_update_has_seed_004_shape() {
        let bar = Bar::from_trade("BTCUSDT".into(), Interval::M1, 1_640_995_200_000, 45000.0, 1.5);
        let msg = PriceUpdate {
            kind: "price_update",
            symbol: "BTCUSDT",
            interval: Interval::M1,
            data: (&bar).into(),
            correction: false,
            ts_sent: 5,
        };
        let v: Value = serde_json::to_value(&msg).unwrap();
        assert_eq!(v["type"], "price_update");
        assert_eq!(v["data"]["timestamp"], 1_640_995_200_000i64);
        assert_eq!(v["data"]["close"], 45000.0);
        assert_eq!(v["data"]["closed"], false);
        assert!(v.get("correction").is_none());
        let back: BarData = serde_json::from_value(v["data"].clone()).unwrap();
        assert_eq!(back, BarData::from(&bar));
    }

    proptest::proptest! {
        /// Prices and volumes cross JSON unchanged, to the last bit (serde_json's `float_roundtrip`), so a
        /// client that recomputes anything from our bars gets exactly our numbers.
        #[test]
        fn bar_values_round_trip_exactly(bits in proptest::prelude::any::<u64>()) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            let data = BarData { timestamp: 0, open: v, high: v, low: v, close: v, volume: v.abs(), trades: 1, closed: true };
            let back: BarData = serde_json::from_str(&serde_json::to_string(&data).unwrap()).unwrap();
            proptest::prop_assert_eq!(back.close.to_bits(), v.to_bits());
            proptest::prop_assert_eq!(back.volume.to_bits(), v.abs().to_bits());
        }
    }

    #[test]
    fn error_round_trip() {
        let e = ErrorMessage::new(ErrorCode::UnknownSymbol, "unknown symbol FOO", Some(Value::from("a")));
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"type":"error","code":"unknown_symbol","message":"unknown symbol FOO","id":"a"}"#);
        let back: ErrorMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back.code, ErrorCode::UnknownSymbol);
    }

    #[test]
    fn frames_encode_lengths() {
        assert_eq!(&frame::text(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let medium = frame::text(&[b'x'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 1, 44]);
        let large = frame::text(&vec![b'x'; 70_000]);
        assert_eq!(large[1], 127);
        assert_eq!(u64::from_be_bytes(large[2..10].try_into().unwrap()), 70_000);
        let close = frame::close(1008, &"é".repeat(100));
        assert!(close.len() <= 2 + 125 && std::str::from_utf8(&close[4..]).is_ok());
    }

    #[test]
    fn indicator_points_carry_the_value_fields_the_time_and_closed() {
        use crate::strategy::indicators::IndicatorValue;
        let single = IndicatorPoint { value: IndicatorValue::Single { value: 1.5 }, timestamp: 60_000, closed: false };
        assert_eq!(
            serde_json::to_value(single).unwrap(),
            serde_json::json!({"value": 1.5, "timestamp": 60_000, "closed": false})
        );
        let bands = crate::strategy::indicators::Bands { upper: 3.0, middle: 2.0, lower: 1.0 };
        let frame = IndicatorFrame {
            kind: "indicator_history",
            symbol: "BTCUSDT",
            interval: "1m".parse().unwrap(),
            indicator: "bollinger",
            params: &serde_json::json!({"period": 20, "k": 2.0}),
            data: [IndicatorPoint { value: bands.into(), timestamp: 0, closed: true }],
            id: Some(&serde_json::json!(7)),
        };
        assert_eq!(
            serde_json::to_value(&frame).unwrap(),
            serde_json::json!({"type": "indicator_history", "symbol": "BTCUSDT", "interval": "1m", "indicator": "bollinger",
                "params": {"period": 20, "k": 2.0}, "id": 7,
                "data": [{"upper": 3.0, "middle": 2.0, "lower": 1.0, "timestamp": 0, "closed": true}]})
        );
    }
}
