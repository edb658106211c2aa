//! The `/ws` channel: JSON text frames, one message each, told apart by their `type`.

use candlecast_actors::protocol::{
    ErrorMessage, Historical, HistoricalRequest, IndicatorRequest, PriceUpdate, SignalsRequest, TopicsAck,
    TopicsRequest, TradeMarker,
};
use serde_json::{json, Value};

use super::payloads::{
    IndicatorHistory, IndicatorUpdate, Pong, SignalMessage, SignalsHistory, UnsubscribedIndicator, UnsubscribedSignals,
};
use super::{Channel, Message, Operation, Schemas};

const DESCRIPTION: &str = "JSON text frames over a WebSocket; each frame is one message, named by its `type`. \
Any request may carry an `id` (any JSON value), which its direct reply or error echoes. Times are UTC \
milliseconds; a bar's `timestamp` is its open time. Symbols are case-insensitive.\n\n\
Before the upgrade, `GET /ws` may be refused with a JSON body `{\"error\":\"<limit>\",\"detail\":\"...\"}`: \
403 `ws_origin`, 429 `ws_connections_per_host`, 429 `ws_handshakes_per_host` (`Retry-After: 1`), \
503 `ws_connections` (`Retry-After: 1`).\n\n\
Binary frames are answered with an `unsupported_frame` error; WebSocket pings with pongs; the server pings \
every 10 s. The close codes the server uses are listed in `x-close-codes`.\n\n\
With `[ws] permessage_deflate` on, a client offering `Sec-WebSocket-Extensions: permessage-deflate` (RFC 7692) \
gets `permessage-deflate; server_no_context_takeover; client_no_context_takeover`: messages both ways may be \
compressed (RSV1), each on its own; the JSON inside is the same.";

/// Close codes of `/ws` connections (src/ws/session.rs).
fn close_codes() -> Value {
    json!([
        { "code": 1000, "reason": "normal close: the server stops, or the client closed" },
        { "code": 1001, "reason": "no message or pong within the client timeout (30 s by default)" },
        { "code": 1002, "reason": "WebSocket protocol error (RSV1 on a control frame or without permessage-deflate \
                                   negotiated included)" },
        { "code": 1007, "reason": "permessage-deflate: a compressed message that is not valid deflate data" },
        { "code": 1008, "reason": "too many invalid or rate-limited messages (20 error replies in 10 s), or a slow \
                                   consumer (over 1 MiB waiting to be sent)" },
        { "code": 1009, "reason": "a frame over 16 times max_frame_bytes (1 MiB by default), or with \
                                   permessage-deflate a compressed message inflating past max_frame_bytes" },
    ])
}

pub(super) fn channel(schemas: &mut Schemas) -> Channel {
    let ping = json!({
        "type": "object",
        "description": "Other fields are ignored.",
        "properties": { "type": { "type": "string", "const": "ping" }, "id": super::to_json(&candlecast_actors::protocol_schema::request_id()) },
        "required": ["type"],
    });
    let messages = vec![
        // Client → server.
        Message::from_client(
            "subscribe",
            "Subscribe to live bars",
            "Topics are (symbol, interval). Reply: `subscribed`, then one `price_update` per topic with its current bar, \
             then live updates. Unknown symbols are listed under `refused`; when all are unknown, an `unknown_symbol` \
             error. `from`: the open time of the newest bar the client holds, to get the bars that closed since first.",
            schemas.typed::<TopicsRequest>("subscribe"),
        )
        .examples(&[
            r#"{"type":"subscribe","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1m"}"#,
            r#"{"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"5m","from":1700000000000,"id":7}"#,
        ]),
        Message::from_client(
            "unsubscribe",
            "Unsubscribe from live bars",
            "Reply: `unsubscribed`; no update of those topics follows it.",
            schemas.typed::<TopicsRequest>("unsubscribe"),
        )
        .examples(&[r#"{"type":"unsubscribe","trading_pairs":["ETHUSDT"],"interval":"1m"}"#]),
        Message::from_client(
            "get_historical",
            "Read history",
            "The newest `limit` (1 to 5,000, default 1,000) bars with `start_time <= timestamp < end_time`, ascending. \
             With `since`: only the bars created or revised at or after that server time, and `as_of` in the reply.",
            schemas.typed::<HistoricalRequest>("get_historical"),
        )
        .examples(&[
            r#"{"type":"get_historical","trading_pair":"BTCUSDT","interval":"1m","limit":1000,"end_time":1700000000000}"#,
            r#"{"type":"get_historical","trading_pair":"BTCUSDT","interval":"1m","since":1700000000000}"#,
        ]),
        Message::from_client("ping", "Ping", "Reply: `pong`, with the same `id`.", ping)
            .examples(&[r#"{"type":"ping"}"#, r#"{"type":"ping","id":"p1"}"#]),
        Message::from_client(
            "subscribe_indicator",
            "Subscribe to an indicator",
            "Reply: `indicator_history` (up to `history` values, default 500, at most 5,000), then `indicator` messages. \
             Identical requests share one computation. Refused with `too_many_subscriptions` beyond the stream budgets.",
            schemas.typed::<IndicatorRequest>("subscribe_indicator"),
        )
        .examples(&[
            r#"{"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1m","indicator":"ema","params":{"period":20},"history":500}"#,
        ]),
        Message::from_client(
            "unsubscribe_indicator",
            "Unsubscribe from an indicator",
            "Reply: `unsubscribed_indicator`. Any spelling of the same canonical parameters ends the stream.",
            schemas.typed::<IndicatorRequest>("unsubscribe_indicator"),
        )
        .examples(&[
            r#"{"type":"unsubscribe_indicator","trading_pair":"BTCUSDT","interval":"1m","indicator":"ema","params":{"period":20}}"#,
        ]),
        Message::from_client(
            "subscribe_signals",
            "Subscribe to live strategy signals",
            "Reply: `signals_history`, then `signal` messages of the strategies running live on the topic.",
            schemas.typed::<SignalsRequest>("subscribe_signals"),
        )
        .examples(&[r#"{"type":"subscribe_signals","trading_pair":"BTCUSDT","interval":"1m"}"#]),
        Message::from_client(
            "unsubscribe_signals",
            "Unsubscribe from signals",
            "Reply: `unsubscribed_signals`.",
            schemas.typed::<SignalsRequest>("unsubscribe_signals"),
        )
        .examples(&[r#"{"type":"unsubscribe_signals","trading_pair":"BTCUSDT","interval":"1m"}"#]),
        // Server → client.
        Message::from_server(
            "subscribed",
            "Subscribed",
            "The topics subscribed (symbols upper-cased), and those refused with their reason.",
            schemas.typed::<TopicsAck>("subscribed"),
        )
        .examples(&[
            r#"{"type":"subscribed","trading_pairs":["BTCUSDT","ETHUSDT"],"interval":"1m"}"#,
            r#"{"type":"subscribed","trading_pairs":["BTCUSDT"],"interval":"1m","refused":[{"trading_pair":"GONEUSDT","code":"unknown_symbol","message":"unknown symbol GONEUSDT"}],"id":7}"#,
        ]),
        Message::from_server(
            "unsubscribed",
            "Unsubscribed",
            "The topics unsubscribed.",
            schemas.typed::<TopicsAck>("unsubscribed"),
        )
        .examples(&[r#"{"type":"unsubscribed","trading_pairs":["ETHUSDT"],"interval":"1m"}"#]),
        Message::from_server(
            "price_update",
            "Bar update",
            "The forming bar (at most 10 a second per topic, newest state wins), its final state (`closed: true`, \
             always sent), or a revision of a closed bar by a late trade (`correction: true`): upsert by `timestamp`. \
             `ts_sent`: when the server framed it, µs since the epoch.",
            schemas.typed::<PriceUpdate>("price_update"),
        )
        .examples(&[
            r#"{"type":"price_update","symbol":"BTCUSDT","interval":"1m","data":{"timestamp":1640995200000,"open":45000.0,"high":45100.0,"low":44900.0,"close":45050.0,"volume":1234.56,"trades":812,"closed":false},"ts_sent":1640995231234567}"#,
            r#"{"type":"price_update","symbol":"BTCUSDT","interval":"1m","data":{"timestamp":1640995140000,"open":44990.0,"high":45010.0,"low":44980.0,"close":45001.0,"volume":12.6,"trades":81,"closed":true},"correction":true,"ts_sent":1640995231234567}"#,
        ]),
        Message::from_server(
            "historical",
            "History",
            "The reply to `get_historical`: bars ascending, one per `timestamp`; `as_of` for a `since` request.",
            schemas.typed::<Historical>("historical"),
        )
        .examples(&[
            r#"{"type":"historical","symbol":"BTCUSDT","interval":"1m","data":[{"timestamp":1640995140000,"open":44990.0,"high":45010.0,"low":44980.0,"close":45000.0,"volume":12.5,"trades":80,"closed":true}]}"#,
            r#"{"type":"historical","symbol":"BTCUSDT","interval":"1m","data":[],"as_of":1700000061234,"id":"h1"}"#,
        ]),
        Message::from_server("pong", "Pong", "The reply to `ping`.", schemas.typed::<Pong>("pong"))
            .examples(&[r#"{"type":"pong"}"#, r#"{"type":"pong","id":"p1"}"#]),
        Message::from_server(
            "indicator_history",
            "Indicator history",
            "The first reply to `subscribe_indicator`: values of closed bars, oldest first; `params` in canonical form.",
            schemas.typed::<IndicatorHistory>("indicator_history"),
        )
        .examples(&[
            r#"{"type":"indicator_history","symbol":"BTCUSDT","interval":"1m","indicator":"ema","params":{"period":20},"data":[{"timestamp":1700000000000,"closed":true,"value":45012.5}]}"#,
        ]),
        Message::from_server(
            "indicator",
            "Indicator value",
            "A preview on the forming bar (`closed: false`, at the topic's rate) or the final value of a closed bar.",
            schemas.typed::<IndicatorUpdate>("indicator"),
        )
        .examples(&[
            r#"{"type":"indicator","symbol":"BTCUSDT","interval":"1m","indicator":"macd","params":{"fast":12,"slow":26,"signal":9},"data":{"timestamp":1700000060000,"closed":false,"macd":1.2,"signal":0.9,"histogram":0.3}}"#,
            r#"{"type":"indicator","symbol":"BTCUSDT","interval":"1m","indicator":"supertrend","params":{"period":10,"multiplier":3},"data":{"timestamp":1700000060000,"closed":true,"value":44800.0,"direction":"up"}}"#,
        ]),
        Message::from_server(
            "unsubscribed_indicator",
            "Unsubscribed from an indicator",
            "The reply to `unsubscribe_indicator`, naming the stream in canonical form.",
            schemas.typed::<UnsubscribedIndicator>("unsubscribed_indicator"),
        )
        .examples(&[
            r#"{"type":"unsubscribed_indicator","symbol":"BTCUSDT","interval":"1m","indicator":"ema","params":{"period":20}}"#,
        ]),
        Message::from_server(
            "signals_history",
            "Recent signals",
            "The first reply to `subscribe_signals`: the topic's recent signals, including those the strategies \
             produced over the history when they started.",
            schemas.typed::<SignalsHistory>("signals_history"),
        )
        .examples(&[
            r#"{"type":"signals_history","symbol":"BTCUSDT","interval":"1m","data":[{"symbol":"BTCUSDT","interval":"1m","time":1700000000000,"side":"buy","price":45012.5,"strategy":"ema_cross","reason":"fast EMA crossed above slow EMA"}]}"#,
        ]),
        Message::from_server(
            "signal",
            "Signal",
            "A signal of a strategy running live: `time` is the open time of the closed bar that produced it, `price` \
             its close.",
            schemas.typed::<SignalMessage>("signal"),
        )
        .examples(&[
            r#"{"type":"signal","symbol":"BTCUSDT","interval":"1m","time":1700000000000,"side":"buy","price":45012.5,"strategy":"ema_cross","reason":"fast EMA crossed above slow EMA"}"#,
        ]),
        Message::from_server(
            "unsubscribed_signals",
            "Unsubscribed from signals",
            "The reply to `unsubscribe_signals`.",
            schemas.typed::<UnsubscribedSignals>("unsubscribed_signals"),
        )
        .examples(&[r#"{"type":"unsubscribed_signals","symbol":"BTCUSDT","interval":"1m"}"#]),
        Message::from_server(
            "trade_marker",
            "Executed trade",
            "An executed trade a script reported (trades CSV of `send_trading_data` or `POST /api/trading-data`), \
             pushed once to every client holding a topic of its symbol. `profit_loss` is null when the row had none.",
            schemas.typed::<TradeMarker>("trade_marker"),
        )
        .examples(&[
            r#"{"type":"trade_marker","symbol":"AAPL","data":{"timestamp":1672567200000,"symbol":"AAPL","side":"BUY","quantity":100.0,"price":150.0,"profit_loss":25.5,"strategy":"Three Red Bodies"}}"#,
        ]),
        Message::from_server(
            "error",
            "Error",
            "A request refused, or a frame that is not one. The connection stays open (20 errors in 10 s close it \
             with 1008). `rate_limited` by a budget that refills carries `retry_after` (seconds).",
            schemas.typed::<ErrorMessage>("error"),
        )
        .examples(&[
            r#"{"type":"error","code":"unknown_symbol","message":"unknown symbol(s): FOOUSDT; nothing was subscribed"}"#,
            r#"{"type":"error","code":"rate_limited","message":"history budget of this host is spent (http.history_bars_per_host_per_second)","id":3,"retry_after":1}"#,
            r#"{"type":"error","code":"invalid_json","message":"message is not valid JSON: expected value at line 1 column 1"}"#,
        ]),
    ];
    let operations = vec![
        Operation::receive("subscribe", "A client subscribes to topics", &["subscribed", "price_update", "error"]),
        Operation::receive("unsubscribe", "A client unsubscribes from topics", &["unsubscribed", "error"]),
        Operation::receive("get_historical", "A client reads history", &["historical", "error"]),
        Operation::receive("ping", "A client pings", &["pong", "error"]),
        Operation::receive(
            "subscribe_indicator",
            "A client subscribes to an indicator",
            &["indicator_history", "indicator", "error"],
        ),
        Operation::receive(
            "unsubscribe_indicator",
            "A client unsubscribes from an indicator",
            &["unsubscribed_indicator", "error"],
        ),
        Operation::receive(
            "subscribe_signals",
            "A client subscribes to signals",
            &["signals_history", "signal", "error"],
        ),
        Operation::receive(
            "unsubscribe_signals",
            "A client unsubscribes from signals",
            &["unsubscribed_signals", "error"],
        ),
        Operation::send(
            "live",
            "The server streams what a client subscribed to",
            &["price_update", "indicator", "signal", "trade_marker"],
        ),
        Operation::send(
            "error",
            "The server refuses a frame that is no request (bad JSON, binary, too large)",
            &["error"],
        ),
    ];
    Channel {
        key: "ws",
        address: "/ws",
        title: "/ws: live bars, history, indicators, signals",
        description: DESCRIPTION.to_owned(),
        messages,
        operations,
        extensions: vec![("x-close-codes", close_codes())],
        borrowed: vec![],
    }
}
