//! Schemas of the frames that are built with `json!` rather than from a Rust type: indicator and signal
//! frames (actors/src/strategy/live/), `pong`, and the Socket.IO replies (src/socketio/events.rs and
//! socket.rs). These types exist for their schema only; tests/asyncapi.rs checks the real frames against
//! them, so a field added to a `json!` without its schema fails that test.

#![allow(dead_code)] // never built: only their derived schemas are used

use candlecast_actors::model::Interval;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{"type":"pong"}`, with the `id` of the `ping` when it had one.
#[derive(Serialize, ToSchema)]
pub struct Pong {
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(schema_with = candlecast_actors::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// An indicator value at a bar: single-line indicators give `value`; MACD, Bollinger bands and SuperTrend
/// name their lines.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum IndicatorPoint {
    Single {
        /// Open time of the bar, UTC ms.
        timestamp: i64,
        /// False for a preview on the forming bar.
        closed: bool,
        value: f64,
    },
    Macd {
        timestamp: i64,
        closed: bool,
        macd: f64,
        signal: f64,
        histogram: f64,
    },
    Bands {
        timestamp: i64,
        closed: bool,
        upper: f64,
        middle: f64,
        lower: f64,
    },
    SuperTrend {
        timestamp: i64,
        closed: bool,
        value: f64,
        direction: Trend,
    },
}

/// Which side of the price the SuperTrend line is on.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Up,
    Down,
}

/// The indicator names of `subscribe_indicator` (parameters: `GET /api/indicators`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorName {
    Sma,
    Ema,
    Rsi,
    Macd,
    Bollinger,
    Atr,
    Vwap,
    Supertrend,
}

/// `indicator_history`: the values of the closed bars so far (up to `history`), oldest first.
#[derive(Serialize, ToSchema)]
pub struct IndicatorHistory {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    pub indicator: IndicatorName,
    #[schema(schema_with = candlecast_actors::protocol_schema::canonical_params)]
    pub params: Value,
    pub data: Vec<IndicatorPoint>,
    #[schema(schema_with = candlecast_actors::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// `indicator`: a preview on the forming bar (`closed: false`) or the final value of a closed bar.
#[derive(Serialize, ToSchema)]
pub struct IndicatorUpdate {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    pub indicator: IndicatorName,
    #[schema(schema_with = candlecast_actors::protocol_schema::canonical_params)]
    pub params: Value,
    pub data: IndicatorPoint,
}

/// `unsubscribed_indicator`: the stream named in canonical form has ended for this client.
#[derive(Serialize, ToSchema)]
pub struct UnsubscribedIndicator {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    pub indicator: IndicatorName,
    #[schema(schema_with = candlecast_actors::protocol_schema::canonical_params)]
    pub params: Value,
    #[schema(schema_with = candlecast_actors::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// `buy` or `sell`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

/// A signal of a live strategy, as `signals_history` lists it.
#[derive(Serialize, ToSchema)]
pub struct SignalBody {
    pub symbol: String,
    pub interval: Interval,
    /// Open time of the closed bar that produced it, UTC ms.
    pub time: i64,
    pub side: Side,
    /// That bar's close.
    pub price: f64,
    pub strategy: String,
    pub reason: String,
}

/// `signal`: a new signal of a strategy running live on the topic.
#[derive(Serialize, ToSchema)]
pub struct SignalMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    pub time: i64,
    pub side: Side,
    pub price: f64,
    pub strategy: String,
    pub reason: String,
}

/// `signals_history`: the topic's recent signals (up to 500), oldest first.
#[derive(Serialize, ToSchema)]
pub struct SignalsHistory {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    pub data: Vec<SignalBody>,
    #[schema(schema_with = candlecast_actors::protocol_schema::request_id)]
    pub id: Option<Value>,
}

/// `unsubscribed_signals`: no signal of the topic follows.
#[derive(Serialize, ToSchema)]
pub struct UnsubscribedSignals {
    #[serde(rename = "type")]
    pub kind: String,
    pub symbol: String,
    pub interval: Interval,
    #[schema(schema_with = candlecast_actors::protocol_schema::request_id)]
    pub id: Option<Value>,
}

// ---------------------------------------------------------------------------------------------------
// Socket.IO

/// The rooms of `join_script` and `join_frontend`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Room {
    Script,
    Frontend,
}

/// `status`: the room joined.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `Joined script room` or `Joined frontend room`.
    pub message: String,
    pub room: Room,
}

/// The acknowledgement of `join_script` / `join_frontend`.
#[derive(Serialize, ToSchema)]
pub struct JoinAck {
    pub ok: bool,
    pub room: Room,
}

/// Why an event was refused.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    Unauthorized,
    InvalidParameter,
    UnknownSymbol,
    TooManySubscriptions,
    RateLimited,
    Busy,
    Unsupported,
    UnknownEvent,
    TooManyColumns,
    TooManyRows,
    Unavailable,
}

/// A refused event: in its acknowledgement when it asked for one, else as an `error` event.
#[derive(Serialize, ToSchema)]
pub struct Refusal {
    /// Always false.
    pub ok: bool,
    /// The refused event's name (`binary` for a binary event).
    pub event: String,
    pub error: RefusalCode,
    pub message: String,
}

/// The acknowledgement of `subscribe` / `unsubscribe`.
#[derive(Serialize, ToSchema)]
pub struct TopicsEventAck {
    pub ok: bool,
    pub trading_pairs: Vec<String>,
    pub interval: Interval,
}

/// `trading_update`, to every client in the `frontend` room: the rows kept, as CSV text (header first).
#[derive(Serialize, ToSchema)]
pub struct TradingUpdate {
    pub trades_csv: String,
    pub market_data_csv: String,
    /// The `timestamp` the script sent, or the server's time (ISO 8601) when it sent none.
    #[schema(schema_with = super::any_value)]
    pub timestamp: Value,
}
