//! Cutting trades into bars. The fold of one trade into one bar lives on [`Bar`](crate::model::Bar);
//! this module decides *which* bars a trade lands in.
//!
//! - [`TimeBars`]: bars of fixed time buckets for a set of intervals, with the late-trade grace window.
//! - [`realign_seed`]: a backfill laid onto an exchange's sessions.

mod realign;
mod time_bars;

pub use realign::realign_seed;
pub use time_bars::{Applied, BarUpdate, TimeBars, UpdateKind, UpsertError, Upserted};
