//! The feed actor: drives one [`Connector`] and hands its trades to the symbol's aggregator.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::backoff::Backoff;
use super::{Connector, FeedError, FeedState, FeedStatus};
use crate::aggregator::{Aggregator, UpsertBars};
use crate::messages::Ingest;
use crate::model::{now_ms, Interval};

/// A connection that lasted this long counts as healthy: the next failure starts the backoff afresh.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Stops the feed: its task, and with it the connector and its upstream connection, is dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopFeed;

/// See the module documentation. The connector lives in the actor's task, not in the struct.
pub struct FeedActor<C: Connector> {
    connector: Option<C>,
    sink: Recipient<Ingest>,
    seed: Option<Recipient<crate::aggregator::Seed>>,
    upsert: Recipient<UpsertBars>,
    intervals: Vec<Interval>,
    status: Arc<FeedStatus>,
}

impl<C: Connector> FeedActor<C> {
    /// Trades go to the symbol's aggregator, and so do its backfill (before live trades start) and any
    /// bars the connector rebuilds.
    pub fn new(connector: C, aggregator: Addr<Aggregator>, backfill: bool, intervals: Vec<Interval>, status: Arc<FeedStatus>) -> Self {
        let seed = backfill.then(|| aggregator.clone().recipient());
        FeedActor { connector: Some(connector), sink: aggregator.clone().recipient(), seed, upsert: aggregator.recipient(), intervals, status }
    }
}

impl<C: Connector> Actor for FeedActor<C> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.take() else { return };
        let sinks = Sinks { trades: self.sink.clone(), seed: self.seed.take(), upsert: self.upsert.clone() };
        let run = run(connector, sinks, std::mem::take(&mut self.intervals), self.status.clone());
        ctx.spawn(actix::fut::wrap_future(run).map(|_, _: &mut Self, ctx: &mut Context<Self>| ctx.stop()));
    }
}

impl<C: Connector> Handler<StopFeed> for FeedActor<C> {
    type Result = ();

    /// Stops the actor; the connection closes as its task is dropped.
    fn handle(&mut self, _: StopFeed, ctx: &mut Context<Self>) {
        tracing::info!(state = self.status.state().as_str(), "feed stopped on request");
        ctx.stop();
    }
}

/// A finished replay is not a failure.
fn stopped_state(err: &FeedError) -> FeedState {
    if matches!(err, FeedError::Ended(_)) {
        FeedState::Finished
    } else {
        FeedState::Failed
    }
}

/// Where the feed's task sends what its connector produces.
struct Sinks {
    trades: Recipient<Ingest>,
    seed: Option<Recipient<crate::aggregator::Seed>>,
    upsert: Recipient<UpsertBars>,
}

async fn run<C: Connector>(mut c: C, sinks: Sinks, intervals: Vec<Interval>, status: Arc<FeedStatus>) {
    let symbol = c.symbol().clone();
    let source = c.source();
    if let Some(seed) = sinks.seed {
        match c.backfill(now_ms(), &intervals).await {
            Ok(bars) if !bars.is_empty() => {
                let n: usize = bars.iter().map(|(_, b)| b.len()).sum();
                tracing::info!(%symbol, source, bars = n, "backfilled history");
                // Wait for the seed to be applied so no live trade overtakes it.
                let _ = seed.send(crate::aggregator::Seed { bars }).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%symbol, source, error = %e, "backfill failed; starting without history"),
        }
    }
    let mut backoff = Backoff::new(Duration::from_millis(125), Duration::from_secs(60));
    loop {
        match c.connect().await {
            Ok(()) => {
                status.set_state(FeedState::Connected);
                tracing::info!(%symbol, source, "feed connected");
                let connected_at = Instant::now();
                let err = loop {
                    match c.next_trades().await {
                        Ok(trades) => {
                            status.last_message_ms.store(now_ms(), Ordering::Relaxed);
                            status.trades.fetch_add(trades.len() as u64, Ordering::Relaxed);
                            let bars = c.take_rebuilt_bars();
                            if !bars.is_empty() {
                                // Applied before the trades that follow them, so those land on the rebuilt bars.
                                if let Err(e) = sinks.upsert.send(UpsertBars { bars }).await {
                                    tracing::warn!(%symbol, source, error = %e, "rebuilt bars not applied");
                                }
                            }
                            if !trades.is_empty() {
                                sinks.trades.do_send(Ingest { trades });
                            }
                        }
                        Err(e) => break e,
                    }
                };
                if connected_at.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                if err.is_terminal() {
                    status.set_state(stopped_state(&err));
                    tracing::error!(%symbol, source, error = %err, "feed stopped");
                    return;
                }
                tracing::warn!(%symbol, source, error = %err, "feed disconnected");
            }
            Err(e) if e.is_terminal() => {
                status.set_state(stopped_state(&e));
                tracing::error!(%symbol, source, error = %e, "feed cannot connect");
                return;
            }
            Err(e) => tracing::warn!(%symbol, source, error = %e, "feed connect failed"),
        }
        status.set_state(FeedState::Reconnecting);
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        let delay = backoff.next_delay();
        tracing::info!(%symbol, source, attempt = backoff.attempts(), delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::time::sleep(delay).await;
    }
}
