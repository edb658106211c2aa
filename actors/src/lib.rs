//! # candlecast-actors
//!
//! The market model and the actor pipeline of candlecast: feed → aggregator → hub → subscribers.
//! No HTTP lives here; the server crate wires these actors to WebSocket sessions and REST routes.
//!
//! # Layout
//! - [`model`]: `Trade`, `Bar`, `Interval` — plain data with the OHLCV fold and bucket alignment.
//! - [`bars`]: cutting trades into bars (the pure bar building behind [`aggregator`]): multi-interval time bars with the late-trade grace window; no actor code.
//! - [`messages`]: messages that several actors share.
//! - [`protocol`]: the JSON wire types of the `/ws` protocol, serialized once by the hub.
//! - [`deflate`]: permessage-deflate (RFC 7692): frames compressed once for every client that asked, and
//!   the budgeted inflating of client messages.
//! - [`protocol_schema`]: the JSON schemas of the wire types that have no derive of their own (intervals, ids).
//! - [`feed`]: the `Connector` trait every upstream implements, the feed actor, and the simulated market.
//! - [`aggregator`]: the per-symbol aggregator actor, owner of the in-memory bar history, woken only on ticks with
//!   work; its `PublishBatch` sends the updates of all aggregators of a turn to the hub in one message.
//! - [`hub`]: the subscription hub actor: topics, rate limiting per topic, one serialization per update.
//! - [`market`]: the registry of symbols and their aggregators.
//! - [`telemetry`]: every counter `/api/stats` and `/metrics` show, defined once.
//! - [`strategy`]: indicators, strategies, the backtest engine and the parameter optimizer (pure code).
//! - [`persist`]: the stores (embedded redb, InfluxDB v1/v2), the persistence actor and its journal, and
//!   the history service that merges stored and in-memory bars.
//! - [`symbol_master`]: every instrument the sources list (Kite, Shoonya, Binance), searched by name.
//! - [`engine`]: starts the pipeline from configuration.
//! - [`cluster`]: scale-out on Redis: node roles, pub/sub between nodes, today-cache, per-symbol leases.
//!
//! Below these, modules are private: each `mod.rs` re-exports what the server, tests and benches use.
//! `fuzzing` (hidden) re-exports the parsers the fuzz targets in `fuzz/` call. The `test-util` feature
//! adds `persist::MemoryStore` for other crates' tests.
#![forbid(unsafe_code)]

pub mod aggregator;
pub mod background;
pub mod bars;
pub mod cluster;
pub mod deflate;
pub mod engine;
pub mod feed;
pub mod hub;
pub mod market;
pub mod messages;
pub mod model;
pub mod outbox;
pub mod persist;
pub mod protocol;
pub mod protocol_schema;
pub mod refusals;
pub mod strategy;
pub mod symbol_master;
pub mod telemetry;

pub use engine::Engine;

/// The parsers of outside input, public for the fuzz targets in `fuzz/` (and nothing else): the modules
/// that hold them stay private, so the compiler reports what nothing uses.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::cluster::wire::{decode_batch, decode_cached, decode_watermark};
    pub use crate::feed::binance::wire::{decode as decode_binance_stream, Kline, RestTrade, StreamMessage};
}
