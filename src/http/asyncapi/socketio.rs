//! The Socket.IO channel: namespace `/` at `/socket.io/`. A message is an event, named by its event name,
//! whose payload is the event's one argument (`42["trade",{...}]`); an acknowledgement
//! (`43<id>[{...}]`, `x-socketio-ack`) is a reply of the event it acknowledges.

use candlecast_actors::protocol::TopicsRequest;
use serde_json::json;

use super::payloads::{JoinAck, Refusal, Status, TopicsEventAck, TradingUpdate};
use super::{with_property, Channel, Message, Operation, Schemas};
use crate::script_ingest::ingest::{IngestSummary, TradeInput, TradingData, TradingDataReport};

const DESCRIPTION: &str = "Socket.IO v5 over Engine.IO v4 (HTTP long-polling and WebSocket), namespace `/` only. \
Each message is an event: its name is the event name, its payload the event's single argument (null for an \
event sent without one). Any client event may ask for an acknowledgement; the acknowledgements are the \
messages marked `x-socketio-ack`. A refused event is answered in its acknowledgement, or with an `error` event \
when it asked for none.\n\n\
Connect with the script key in the connect packet's auth payload (`40{\"token\":\"...\"}`), on the URL \
(`?token=`) or as `Authorization: Bearer`; without a key a client is a dashboard (`join_frontend`, `subscribe`, \
`unsubscribe` only). A wrong key: `44{\"message\":\"invalid API key\"}`. Engine.IO handshake: \
`0{\"sid\":\"...\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}`.\n\n\
A broken packet closes its session: HTTP 400 `{\"code\":3,...}`, or a WebSocket close 1002 with the reason; a \
WebSocket message over maxPayload closes with 1009.";

pub(super) fn channel(schemas: &mut Schemas) -> Channel {
    let null = json!({ "type": "null", "description": "No argument." });
    let trading_data = json!({ "oneOf": [schemas.reference::<TradingData>(), {
        "type": "string", "description": "The same object as a JSON string (seed 003's scripts send it so)."
    }] });
    let trade = schemas.reference::<TradeInput>();
    let report = with_property(schemas.inline::<TradingDataReport>(), "timestamp", {
        let mut any = super::to_json(&super::any_value());
        any["description"] =
            json!("The `timestamp` the script sent, or the server's time (ISO 8601) when it sent none.");
        any
    });
    let trades_ack =
        with_property(schemas.inline::<IngestSummary>(), "ok", json!({ "type": "boolean", "const": true }));
    let refusal = schemas.reference::<Refusal>();
    let messages = vec![
        // Client → server.
        Message::from_client("join_script", "Join the script room", "Script key only. Reply: `status`.", null.clone()),
        Message::from_client(
            "join_frontend",
            "Join the dashboards' room",
            "Reply: `status`; from then on `trading_update` events.",
            null,
        ),
        Message::from_client(
            "send_trading_data",
            "Push seed 003's CSVs",
            "Script key only. Executed trades and market-data rows (docs/protocol.md, \"The two CSVs\"); either may be \
             missing. Reply: `data_received` (also the acknowledgement), and `trading_update` to the dashboards.",
            trading_data,
        )
        .examples(&[
            r#"{"trades_csv":"timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,AAPL,BUY,100,150.0,25.5,Three Red Bodies\n","market_data_csv":"timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n2023-01-01T10:00:00,AAPL,150,151,149.5,150.5,10000,65.5,0.75\n","timestamp":"2023-01-01T10:00:00"}"#,
        ]),
        Message::from_client(
            "trade",
            "Stream one trade",
            "Script key only. Enters the symbol's aggregator like a feed trade (a new symbol is created). `side` \
             (buy/sell) and `timestamp` (epoch ms, epoch s below 10^11, or ISO 8601; default now) are optional.",
            trade.clone(),
        )
        .examples(&[r#"{"symbol":"BTCUSDT","price":65000.5,"qty":0.01,"side":"buy","timestamp":1700000000000}"#]),
        Message::from_client(
            "trades",
            "Stream trades",
            "Script key only. As many trades as fit in maxPayload; one event for the rate limit.",
            json!({ "type": "array", "items": trade }),
        )
        .examples(&[
            r#"[{"symbol":"BTCUSDT","price":65000.5,"qty":0.01},{"symbol":"ETHUSDT","price":3500,"qty":1,"side":"sell","timestamp":"2023-11-14T22:13:20Z"}]"#,
        ]),
        Message::from_client(
            "subscribe",
            "Subscribe to live bars",
            "As on `/ws` (same topic limit). Reply: `subscribed`, then `price_update` events (and `trade_marker`).",
            schemas.reference::<TopicsRequest>(),
        )
        .examples(&[r#"{"trading_pairs":["BTCUSDT"],"interval":"1m"}"#]),
        Message::from_client(
            "unsubscribe",
            "Unsubscribe from live bars",
            "Reply: `unsubscribed`.",
            schemas.reference::<TopicsRequest>(),
        )
        .examples(&[r#"{"trading_pairs":["BTCUSDT"],"interval":"1m"}"#]),
        // Server → client events.
        Message::from_server("status", "Room joined", "The reply to `join_script` and `join_frontend`.", schemas.reference::<Status>())
            .examples(&[r#"{"message":"Joined frontend room","room":"frontend"}"#]),
        Message::from_server(
            "data_received",
            "CSV push report",
            "What `send_trading_data` kept: `status` `success`, `partial` or `error`; every refused row with its CSV, \
             line and reason (at most 1,000 listed; `rejected` counts them all).",
            report.clone(),
        )
        .examples(&[
            r#"{"status":"partial","message":"2 trade(s) and 1 market-data row(s) kept; 1 row(s) refused, see errors","trades":2,"market_data":1,"rejected":1,"errors":[{"csv":"trades_csv","line":3,"reason":"side must be BUY or SELL, got \"HOLD\""}],"bars":{"inserted":1,"replaced":0,"unchanged":0},"timestamp":"2023-01-01T10:00:00"}"#,
        ]),
        Message::from_server(
            "trading_update",
            "Rows pushed by a script",
            "To every client in the `frontend` room: the rows a `send_trading_data` (or `POST /api/trading-data`) kept.",
            schemas.reference::<TradingUpdate>(),
        )
        .examples(&[
            r#"{"trades_csv":"timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,AAPL,BUY,100,150,25.5,Three Red Bodies\n","market_data_csv":"","timestamp":"2023-01-01T10:00:00"}"#,
        ]),
        Message::from_server(
            "error",
            "Event refused",
            "A refused event that asked for no acknowledgement.",
            refusal.clone(),
        )
        .examples(&[
            r#"{"ok":false,"event":"trade","error":"unauthorized","message":"trade needs a script key: connect with auth {\"token\": \"<key>\"}"}"#,
        ]),
        // Acknowledgements.
        Message::ack("join_ack", "Room joined (ack)", "Acknowledges `join_script` / `join_frontend`.", schemas.reference::<JoinAck>())
            .examples(&[r#"{"ok":true,"room":"script"}"#]),
        Message::ack("trades_ack", "Trades taken (ack)", "Acknowledges `trade` / `trades`.", trades_ack)
            .examples(&[r#"{"ok":true,"accepted":1,"late_dropped":0,"rejected":[{"index":3,"reason":"price must be above 0"}]}"#]),
        Message::ack(
            "topics_ack",
            "Topics (un)subscribed (ack)",
            "Acknowledges `subscribe` / `unsubscribe`.",
            schemas.reference::<TopicsEventAck>(),
        )
        .examples(&[r#"{"ok":true,"trading_pairs":["BTCUSDT"],"interval":"1m"}"#]),
        Message::ack("data_received_ack", "CSV push report (ack)", "Acknowledges `send_trading_data`: `data_received`.", report)
            .examples(&[
                r#"{"status":"success","message":"1 trade(s) and 0 market-data row(s) kept","trades":1,"market_data":0,"rejected":0,"errors":[],"bars":{"inserted":0,"replaced":0,"unchanged":0},"timestamp":1700000000000}"#,
            ]),
        Message::ack("refusal_ack", "Event refused (ack)", "Acknowledges any refused event.", refusal).examples(&[
            r#"{"ok":false,"event":"send_trading_data","error":"too_many_rows","message":"trades_csv has more than 200000 rows"}"#,
        ]),
    ];
    let operations = vec![
        Operation::receive("join_script", "A script joins its room", &["status", "join_ack", "refusal_ack", "error"]),
        Operation::receive(
            "join_frontend",
            "A dashboard joins its room",
            &["status", "join_ack", "refusal_ack", "error"],
        ),
        Operation::receive(
            "send_trading_data",
            "A script pushes CSVs",
            &["data_received", "data_received_ack", "refusal_ack", "error"],
        ),
        Operation::receive("trade", "A script streams a trade", &["trades_ack", "refusal_ack", "error"]),
        Operation::receive("trades", "A script streams trades", &["trades_ack", "refusal_ack", "error"]),
        Operation::receive(
            "subscribe",
            "A client subscribes to live bars",
            &["subscribed", "price_update", "topics_ack", "refusal_ack", "error"],
        ),
        Operation::receive(
            "unsubscribe",
            "A client unsubscribes",
            &["unsubscribed", "topics_ack", "refusal_ack", "error"],
        ),
        Operation::send("live", "Live bars and executed trades of the topics held", &["price_update", "trade_marker"]),
        Operation::send("trading_update", "Scripts' pushes, to the dashboards", &["trading_update"]),
        Operation::send("error", "Refusals of events that asked for no acknowledgement", &["error"]),
    ];
    Channel {
        key: "socketio",
        address: "/socket.io/",
        title: "Socket.IO: scripts' trades and CSVs, live bars",
        description: DESCRIPTION.to_owned(),
        messages,
        operations,
        extensions: vec![],
        // The events named after a `/ws` message carry exactly that message.
        borrowed: vec![
            ("subscribed", "ws_subscribed"),
            ("unsubscribed", "ws_unsubscribed"),
            ("price_update", "ws_price_update"),
            ("trade_marker", "ws_trade_marker"),
        ],
    }
}
