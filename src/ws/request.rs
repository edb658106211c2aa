//! Decoding of client messages into requests, with the error reply for anything malformed.

use candlecast_actors::protocol::{
    ErrorCode, ErrorMessage, HistoricalRequest, IndicatorRequest, SignalsRequest, TopicsRequest,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A decoded client message.
#[derive(Debug, PartialEq)]
pub enum Request {
    Subscribe(TopicsRequest),
    Unsubscribe(TopicsRequest),
    GetHistorical(HistoricalRequest),
    SubscribeIndicator(IndicatorRequest),
    UnsubscribeIndicator(IndicatorRequest),
    SubscribeSignals(SignalsRequest),
    UnsubscribeSignals(SignalsRequest),
    Ping { id: Option<Value> },
}

/// Decodes one text message, or says what was wrong with it.
pub fn decode(text: &[u8]) -> Result<Request, ErrorMessage> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| ErrorMessage::new(ErrorCode::InvalidJson, format!("message is not valid JSON: {e}"), None))?;
    let id = value.get("id").cloned();
    let Some(kind) = value.get("type") else {
        return Err(ErrorMessage::new(ErrorCode::InvalidParameter, "message has no \"type\" field", id));
    };
    let Some(kind) = kind.as_str().map(str::to_owned) else {
        return Err(ErrorMessage::new(ErrorCode::InvalidParameter, "\"type\" must be a string", id));
    };
    let kind = kind.as_str();
    match kind {
        "subscribe" => fields(value, kind, id).map(Request::Subscribe),
        "unsubscribe" => fields(value, kind, id).map(Request::Unsubscribe),
        "get_historical" => fields(value, kind, id).map(Request::GetHistorical),
        "subscribe_indicator" => fields(value, kind, id).map(Request::SubscribeIndicator),
        "unsubscribe_indicator" => fields(value, kind, id).map(Request::UnsubscribeIndicator),
        "subscribe_signals" => fields(value, kind, id).map(Request::SubscribeSignals),
        "unsubscribe_signals" => fields(value, kind, id).map(Request::UnsubscribeSignals),
        "ping" => Ok(Request::Ping { id }),
        other => Err(ErrorMessage::new(
            ErrorCode::UnknownType,
            format!("unknown message type {other:?}: expected subscribe, unsubscribe, get_historical, subscribe_indicator, unsubscribe_indicator, subscribe_signals, unsubscribe_signals or ping"),
            id,
        )),
    }
}

fn fields<T: DeserializeOwned>(value: Value, kind: &str, id: Option<Value>) -> Result<T, ErrorMessage> {
    serde_json::from_value(value)
        .map_err(|e| ErrorMessage::new(ErrorCode::InvalidParameter, format!("invalid {kind} message: {e}"), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_type() {
        assert!(matches!(decode(br#"{"type":"subscribe","trading_pairs":["BTCUSDT"]}"#), Ok(Request::Subscribe(_))));
        assert!(matches!(
            decode(br#"{"type":"unsubscribe","trading_pairs":[],"interval":"1h"}"#),
            Ok(Request::Unsubscribe(_))
        ));
        assert!(matches!(
            decode(br#"{"type":"get_historical","trading_pair":"BTCUSDT","limit":5}"#),
            Ok(Request::GetHistorical(_))
        ));
        assert_eq!(decode(br#"{"type":"ping","id":3}"#), Ok(Request::Ping { id: Some(Value::from(3)) }));
        assert!(matches!(
            decode(
                br#"{"type":"subscribe_indicator","trading_pair":"BTCUSDT","indicator":"ema","params":{"period":20}}"#
            ),
            Ok(Request::SubscribeIndicator(_))
        ));
        assert!(matches!(
            decode(br#"{"type":"unsubscribe_signals","trading_pair":"BTCUSDT","interval":"5m"}"#),
            Ok(Request::UnsubscribeSignals(_))
        ));
        assert!(
            decode(br#"{"type":"subscribe_indicator","trading_pair":"BTCUSDT"}"#).is_err(),
            "indicator is required"
        );
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let table: [(&[u8], ErrorCode, &str); 6] = [
            (b"{not json", ErrorCode::InvalidJson, "not valid JSON"),
            (br#"{"trading_pairs":[]}"#, ErrorCode::InvalidParameter, "no \"type\""),
            (br#"{"type":5}"#, ErrorCode::InvalidParameter, "must be a string"),
            (br#"{"type":"subscribe_all","id":"x"}"#, ErrorCode::UnknownType, "subscribe_all"),
            (br#"{"type":"subscribe","trading_pairs":"BTCUSDT"}"#, ErrorCode::InvalidParameter, "invalid subscribe"),
            (
                br#"{"type":"get_historical","trading_pair":"BTCUSDT","limit":"many"}"#,
                ErrorCode::InvalidParameter,
                "invalid get_historical",
            ),
        ];
        for (raw, code, needle) in table {
            let err = decode(raw).unwrap_err();
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(raw));
            assert!(err.message.contains(needle), "{}", err.message);
        }
        assert_eq!(decode(br#"{"type":"nope","id":"x"}"#).unwrap_err().id, Some(Value::from("x")), "id is echoed");
    }
}
