//! The events clients send, and what they get back.
//!
//! Seed 003: `join_frontend` → `status`; `join_script` → `status`; `send_trading_data`
//! `{trades_csv, market_data_csv, timestamp}` → `data_received` (counts and per-row errors), and
//! `trading_update` to every dashboard in the `frontend` room. Ours: `trade` / `trades` stream raw trades
//! into the engine (acknowledged with what was accepted); `subscribe` / `unsubscribe` give the live bar
//! updates of `/ws` as `price_update` events. Any event may ask for an acknowledgement; refusals come
//! back in it, or as an `error` event when none was asked for.

use std::sync::Arc;

use candlecast_actors::protocol::{self, TopicsAck};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::packet;
use super::socket::Socket;
use super::SocketIo;
use crate::script_ingest::csv::CsvLimitError;
use crate::script_ingest::ingest::{Refused, TradeInput, TradingData, UploadError};
use crate::script_ingest::Access;
use crate::ws::topics::{TopicError, TopicList, UnknownSymbols};

/// The room dashboards join; `trading_update` goes to it.
pub const FRONTEND_ROOM: &str = "frontend";
/// The room scripts join.
pub const SCRIPT_ROOM: &str = "script";

const KNOWN: &str = "join_frontend, join_script, send_trading_data, trade, trades, subscribe, unsubscribe";

/// Handles one event.
pub async fn handle(socket: Arc<Socket>, name: String, args: Vec<Box<RawValue>>, ack: Option<u64>) {
    let arg = args.first().map(|a| a.get());
    match name.as_str() {
        "join_frontend" => join(&socket, FRONTEND_ROOM, "Joined frontend room", ack),
        "join_script" if script(&socket, &name, ack) => join(&socket, SCRIPT_ROOM, "Joined script room", ack),
        "send_trading_data" if script(&socket, &name, ack) => send_trading_data(&socket, arg, ack).await,
        "trade" if script(&socket, &name, ack) => match arg.map(serde_json::from_str::<TradeInput>) {
            Some(Ok(trade)) => ingest(&socket, Batch { trades: vec![trade], ..Batch::default() }, ack).await,
            Some(Err(e)) => socket.refuse(
                ack,
                &name,
                "invalid_parameter",
                &format!("expected {{\"symbol\",\"price\",\"qty\",\"side\"?,\"timestamp\"?}}: {e}"),
            ),
            None => socket.refuse(ack, &name, "invalid_parameter", "trade needs a trade object"),
        },
        "trades" if script(&socket, &name, ack) => match arg.map(decode_batch) {
            Some(Ok(batch)) => ingest(&socket, batch, ack).await,
            Some(Err(e)) => socket.refuse(ack, &name, "invalid_parameter", &e.to_string()),
            None => socket.refuse(ack, &name, "invalid_parameter", "trades needs an array of trades"),
        },
        "subscribe" | "unsubscribe" => topics(&socket, name == "subscribe", arg, ack),
        "join_script" | "send_trading_data" | "trade" | "trades" => {}
        other => socket.refuse(ack, other, "unknown_event", &format!("unknown event {other:?}; known: {KNOWN}")),
    }
}

/// Whether the client may push; refuses the event if not.
fn script(socket: &Socket, event: &str, ack: Option<u64>) -> bool {
    if socket.access == Access::Script {
        return true;
    }
    let message = if socket.io.scripts.pushes_enabled() {
        format!("{event} needs a script key: connect with auth {{\"token\": \"<key>\"}}")
    } else {
        format!("{event} is disabled: the server has no script keys ([scripts] keys)")
    };
    socket.refuse(ack, event, "unauthorized", &message);
    false
}

fn join(socket: &Socket, room: &str, message: &str, ack: Option<u64>) {
    socket.join(room);
    let status = json!({ "message": message, "room": room });
    socket.emit("status", &status);
    if let Some(id) = ack {
        socket.ack(id, &json!({ "ok": true, "room": room }));
    }
}

async fn send_trading_data(socket: &Socket, arg: Option<&str>, ack: Option<u64>) {
    // The object, or the same object as a JSON string.
    let parsed = arg.map(|a| {
        serde_json::from_str::<TradingData>(a)
            .or_else(|e| serde_json::from_str::<String>(a).map_err(|_| e).and_then(|s| serde_json::from_str(&s)))
    });
    let data = match parsed {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            return socket.refuse(
                ack,
                "send_trading_data",
                "invalid_parameter",
                &format!("expected {{\"trades_csv\",\"market_data_csv\",\"timestamp\"}}: {e}"),
            )
        }
        None => {
            return socket.refuse(
                ack,
                "send_trading_data",
                "invalid_parameter",
                "send_trading_data needs {\"trades_csv\",\"market_data_csv\",\"timestamp\"}",
            )
        }
    };
    let reply = match receive_trading_data(&socket.io, data).await {
        Ok(reply) => reply,
        Err(e) => return socket.refuse(ack, "send_trading_data", upload_error_code(&e), &e.to_string()),
    };
    socket.emit("data_received", &reply);
    if let Some(id) = ack {
        socket.ack(id, &reply);
    }
}

/// The error code of an upload refused whole: `too_many_columns`, `too_many_rows`, `unavailable`.
pub fn upload_error_code(e: &UploadError) -> &'static str {
    match e {
        UploadError::Limit(CsvLimitError::Columns { .. }) => "too_many_columns",
        UploadError::Limit(CsvLimitError::Rows { .. }) => "too_many_rows",
        UploadError::Unavailable => "unavailable",
    }
}

/// Applies seed 003's CSV pair (from `send_trading_data` or the REST endpoint), sends the kept rows to
/// the dashboards as `trading_update`, and returns the `data_received` payload.
pub async fn receive_trading_data(io: &SocketIo, data: TradingData) -> Result<Value, UploadError> {
    let report = io.scripts.apply_trading_data(data.trades_csv, data.market_data_csv).await?;
    let timestamp = data
        .timestamp
        .unwrap_or_else(|| Value::from(crate::script_ingest::time::format_iso(candlecast_actors::model::now_ms())));
    if report.trades + report.market_data > 0 {
        let update = json!({ "trades_csv": report.trades_csv, "market_data_csv": report.market_data_csv, "timestamp": timestamp });
        io.rooms.broadcast(FRONTEND_ROOM, &packet::event("/", "trading_update", &update));
    }
    let mut reply = serde_json::to_value(&report).unwrap_or_default();
    reply["timestamp"] = timestamp;
    Ok(reply)
}

/// A `trades` array: the trades that decode, where each sits in the array, and why the others did not.
#[derive(Default)]
struct Batch {
    trades: Vec<TradeInput>,
    /// Position in the client's array of each entry of `trades` (empty when all decoded).
    positions: Vec<usize>,
    refused: Vec<Refused>,
}

/// A `trades` argument that is no JSON array at all (a bad element only refuses that element).
#[derive(Debug, thiserror::Error)]
#[error("trades needs an array of trades: {0}")]
struct NotAnArray(serde_json::Error);

fn decode_batch(arg: &str) -> Result<Batch, NotAnArray> {
    if let Ok(trades) = serde_json::from_str::<Vec<TradeInput>>(arg) {
        return Ok(Batch { trades, ..Batch::default() });
    }
    // Some element is malformed: decode one by one to say which.
    let items: Vec<Box<RawValue>> = serde_json::from_str(arg).map_err(NotAnArray)?;
    let mut batch = Batch::default();
    for (index, item) in items.iter().enumerate() {
        match serde_json::from_str::<TradeInput>(item.get()) {
            Ok(t) => {
                batch.trades.push(t);
                batch.positions.push(index);
            }
            Err(e) => batch.refused.push(Refused {
                index,
                reason: format!("expected {{\"symbol\",\"price\",\"qty\",\"side\"?,\"timestamp\"?}}: {e}"),
            }),
        }
    }
    Ok(batch)
}

/// Folds the trades in; acknowledges `{"ok":true,"accepted","late_dropped","rejected":[{"index","reason"}]}`.
async fn ingest(socket: &Socket, batch: Batch, ack: Option<u64>) {
    let mut summary = socket.io.scripts.ingest_trades(batch.trades).await;
    if !batch.positions.is_empty() {
        for r in &mut summary.rejected {
            r.index = batch.positions.get(r.index).copied().unwrap_or(r.index);
        }
    }
    summary.rejected.extend(batch.refused);
    summary.rejected.sort_by_key(|r| r.index);
    if let Some(id) = ack {
        let mut reply = serde_json::to_value(&summary).unwrap_or_default();
        reply["ok"] = Value::Bool(true);
        socket.ack(id, &reply);
    }
}

/// `subscribe` / `unsubscribe` `{"trading_pairs":[...],"interval":"1m"}`, as on `/ws`.
fn topics(socket: &Socket, subscribe: bool, arg: Option<&str>, ack: Option<u64>) {
    let event = if subscribe { "subscribe" } else { "unsubscribe" };
    let req = match arg.map(serde_json::from_str::<protocol::TopicsRequest>) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return socket.refuse(
                ack,
                event,
                "invalid_parameter",
                &format!("expected {{\"trading_pairs\":[...],\"interval\":\"1m\"}}: {e}"),
            )
        }
        None => return socket.refuse(ack, event, TopicError::NoPairs.code_name(), &TopicError::NoPairs.to_string()),
    };
    let unknown = if subscribe { UnknownSymbols::Refused } else { UnknownSymbols::Allowed };
    let market = &socket.io.services.market;
    let TopicList { names, topics, interval, .. } =
        match TopicList::parse(&req.trading_pairs, req.interval.as_deref(), unknown, |s| market.contains(s)) {
            Ok(list) => list,
            Err(e) => return socket.refuse(ack, event, e.code_name(), &e.to_string()),
        };
    let max = socket.io.ws_limits.max_topics_per_client;
    if subscribe && socket.bridge.held() + topics.len() > max {
        return socket.refuse(ack, event, "too_many_subscriptions", &format!("at most {max} topics per client"));
    }
    let kind = if subscribe { "subscribed" } else { "unsubscribed" };
    let frame = protocol::text_frame(&TopicsAck { kind, trading_pairs: &names, interval, refused: &[], id: None });
    if subscribe {
        socket.bridge.subscribe(socket.queue(), topics, frame);
    } else {
        socket.bridge.unsubscribe(topics, frame);
    }
    if let Some(id) = ack {
        socket.ack(id, &json!({ "ok": true, "trading_pairs": names, "interval": interval }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_name_their_bad_elements() {
        let batch =
            decode_batch(r#"[{"symbol":"A","price":1,"qty":1},{"symbol":"B"},{"symbol":"C","price":2,"qty":1}]"#)
                .unwrap();
        assert_eq!((batch.trades.len(), batch.positions.as_slice()), (2, &[0, 2][..]));
        assert_eq!(batch.refused.len(), 1);
        assert_eq!(batch.refused[0].index, 1);
        assert!(batch.refused[0].reason.contains("price"), "{}", batch.refused[0].reason);
        assert!(decode_batch(r#"{"symbol":"A"}"#).is_err());
        let all = decode_batch(r#"[{"symbol":"A","price":1,"qty":1}]"#).unwrap();
        assert_eq!((all.trades.len(), all.positions.len(), all.refused.len()), (1, 0, 0));
    }
}
