//! Messages that several actors share. Messages only one actor handles sit at the top of its file.

use std::sync::Arc;

use actix::prelude::*;

use crate::bars::BarUpdate;
use crate::model::{Interval, Symbol, Trade};

/// A WebSocket client, as the hub knows it.
pub type ClientId = u64;

/// A topic: one symbol at one interval.
pub type Topic = (Symbol, Interval);

/// Trades for one symbol's aggregator, from a feed or a script. Replies with what was accepted.
#[derive(Message)]
#[rtype(result = "IngestReport")]
pub struct Ingest {
    pub trades: Vec<Trade>,
}

/// What an aggregator did with an [`Ingest`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    pub accepted: usize,
    /// Older than the grace window.
    pub late_dropped: usize,
    /// Position in the batch and the reason, for trades refused as invalid.
    pub rejected: Vec<(usize, String)>,
}

/// Bar updates from an aggregator to the hub, in the order they happened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub updates: Vec<BarUpdate>,
}

/// Bar updates the hub forwards to actor subscribers (strategies, persistence): every closed bar and
/// correction, and partial updates at the topic's rate if asked for. Shared, not copied, per subscriber.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct BarEvents(pub Arc<[BarUpdate]>);
