//! The feed actor: drives one [`Connector`] and hands its trades to the symbol's aggregator.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::backoff::Backoff;
use super::{Connector, FeedError, FeedState, FeedStatus};
use crate::aggregator::{Seed, UpsertBars};
use crate::bars::realign_seed;
use crate::messages::Ingest;
use crate::model::{now_ms, Bar, Calendar, Interval, Symbol};
use crate::persist::history::History;

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
    /// Bars the connector rebuilt (see `Connector::take_rebuilt_bars`), for the same aggregator.
    upsert: Recipient<UpsertBars>,
    seed: Option<Backfill>,
    status: Arc<FeedStatus>,
}

/// Where a feed's history goes before live trades start.
pub struct Backfill {
    /// The symbol's aggregator.
    pub seed: Recipient<Seed>,
    pub intervals: Vec<Interval>,
    /// What the store holds (read first) and where the new part of the backfill is stored.
    pub history: History,
    /// Bars per interval the aggregator keeps in memory: how much stored history to load into it.
    pub window: usize,
    /// The symbol's exchange sessions: a backfill is laid onto them before it is stored or seeded.
    pub calendar: Calendar,
    /// The first start's warm-up, for the feeds of the configuration; told when this history is loaded.
    pub warmup: Option<Arc<super::warmup::Warmup>>,
    /// Opened once the aggregator has the backfill (or it failed): history requests wait for it.
    pub seeding: Arc<crate::market::SeedGate>,
}

impl<C: Connector> FeedActor<C> {
    /// Trades go to `sink` and rebuilt bars to `upsert` (the symbol's aggregator); `seed` receives stored
    /// history plus the connector's backfill before live trades start.
    pub fn new(
        connector: C,
        sink: Recipient<Ingest>,
        upsert: Recipient<UpsertBars>,
        seed: Option<Backfill>,
        status: Arc<FeedStatus>,
    ) -> Self {
        FeedActor { connector: Some(connector), sink, upsert, seed, status }
    }
}

impl<C: Connector> Actor for FeedActor<C> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.take() else { return };
        let run = run(connector, self.sink.clone(), self.upsert.clone(), self.seed.take(), self.status.clone());
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

/// Loads what the store holds, lets the connector add what is missing, stores that part, and seeds the
/// aggregator with both: the store's history is never backfilled over.
async fn backfill<C: Connector>(c: &mut C, to: Backfill, status: &FeedStatus) {
    // Opened however this ends: done, failed, or dropped with a feed stopped mid-backfill.
    let _open = OpenOnDrop(to.seeding.clone());
    let (symbol, source) = (c.symbol().clone(), c.source().as_str());
    // Made only when persistence has a turn for it (see `persist::admission`): 10,000 backfills made at
    // once waited in memory for the store, 13.5 GB of them.
    let turn = to.history.admit_backfill().await;
    let held = to.history.held(&symbol, &to.intervals, to.window).await;
    let fresh = match c.backfill(now_ms(), &to.intervals, &held).await {
        Ok(bars) => held.only_missing(realign_seed(&to.calendar, bars)),
        Err(e) => {
            status.set_last_error(format_args!("backfill: {e}"));
            tracing::warn!(%symbol, source, error = %e, "backfill failed; starting from stored history only");
            Vec::new()
        }
    };
    let new_bars: usize = fresh.iter().map(|(_, b)| b.len()).sum();
    let stored: usize = to.intervals.iter().map(|iv| held.window(*iv).len()).sum();
    let mut bars: Vec<(Interval, Vec<Bar>)> = Vec::new();
    for &iv in &to.intervals {
        let mut series = held.window(iv).to_vec();
        series.extend(fresh.iter().filter(|(i, _)| *i == iv).flat_map(|(_, b)| b.iter().cloned()));
        if !series.is_empty() {
            bars.push((iv, series));
        }
    }
    // Counted before the seed is sent: whoever sees this symbol's price (after the seed) sees it counted.
    if let Some(warmup) = &to.warmup {
        warmup.finished(stored + new_bars);
    }
    // Until the backfill is handed to persistence below, the aggregator keeps all of it in memory.
    let _announced = to.history.announce_backfill();
    if !bars.is_empty() {
        tracing::info!(%symbol, source, stored, backfilled = new_bars, "history loaded");
        // Wait for the seed to be applied so no live trade overtakes it.
        let _ = to.seed.send(Seed { bars, unstored: !held.is_known() }).await;
    }
    // Stored after the aggregator has it: charts need not wait for hundreds of thousands of bars to be
    // journaled or written.
    if held.is_known() {
        let closed: Vec<Bar> = fresh.iter().flat_map(|(_, bars)| bars.iter().filter(|b| b.closed).cloned()).collect();
        to.history.persist_backfill(closed, Arc::from(source), turn);
    }
}

/// Opens a symbol's seed gate when dropped.
struct OpenOnDrop(Arc<crate::market::SeedGate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

async fn run<C: Connector>(
    mut c: C,
    sink: Recipient<Ingest>,
    upsert: Recipient<UpsertBars>,
    seed: Option<Backfill>,
    status: Arc<FeedStatus>,
) {
    let symbol: Symbol = c.symbol().clone();
    let source = c.source().as_str();
    if let Some(to) = seed {
        backfill(&mut c, to, &status).await;
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
                                if let Err(e) = upsert.send(UpsertBars { bars }).await {
                                    tracing::warn!(%symbol, source, error = %e, "rebuilt bars not applied");
                                }
                            }
                            if !trades.is_empty() {
                                sink.do_send(Ingest { trades });
                            }
                        }
                        Err(e) => break e,
                    }
                };
                if connected_at.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                status.set_last_error(&err);
                if err.is_terminal() {
                    status.set_state(stopped_state(&err));
                    tracing::error!(%symbol, source, error = %err, "feed stopped");
                    return;
                }
                tracing::warn!(%symbol, source, error = %err, "feed disconnected");
            }
            Err(e) if e.is_terminal() => {
                status.set_last_error(&e);
                status.set_state(stopped_state(&e));
                tracing::error!(%symbol, source, error = %e, "feed cannot connect");
                return;
            }
            Err(e) => {
                status.set_last_error(&e);
                tracing::warn!(%symbol, source, error = %e, "feed connect failed")
            }
        }
        status.set_state(FeedState::Reconnecting);
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        let delay = backoff.next_delay();
        tracing::info!(%symbol, source, attempt = backoff.attempts(), delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::time::sleep(delay).await;
    }
}
