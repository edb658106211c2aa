//! The per-symbol aggregator actor: folds the symbol's trades into bars of every interval, closes bars on
//! time, keeps the in-memory history, and publishes every change to the hub.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Deserialize;

use crate::bars::{realign_seed, Applied, BarUpdate, TimeBars, Upserted};
use crate::messages::{Ingest, IngestReport, Publish};
use crate::model::{now_ms, Bar, Calendar, Interval, Session, Symbol};
use crate::persist::Durability;
use crate::protocol::HistoryQuery;
use crate::telemetry::{add, SymbolStats, COUNTERS};

mod publish_batch;

pub use publish_batch::PublishBatch;

/// Loads bars (a backfill) before live trades start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Seed {
    pub bars: Vec<(Interval, Vec<Bar>)>,
    /// The bars will not be stored (the store could not be read, so the feed stores none of its
    /// backfill): memory is their only copy, and the aggregator keeps `history_bars` from then on.
    pub unstored: bool,
}

/// Bars from the in-memory history (see [`HistoryQuery`] for the range rules).
#[derive(Message)]
#[rtype(result = "Vec<Bar>")]
pub struct GetBars(pub HistoryQuery);

/// Bars made elsewhere (a script's market-data rows, another node's updates, a klines rebuild), put in
/// place of the bars with the same interval and open time; see [`TimeBars::upsert`] for what is published.
/// Bars are applied in the order given: send them oldest first.
#[derive(Message)]
#[rtype(result = "UpsertReport")]
pub struct UpsertBars {
    pub bars: Vec<Bar>,
}

/// What an [`UpsertBars`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpsertReport {
    pub inserted: usize,
    pub replaced: usize,
    pub unchanged: usize,
    /// Position in the batch and the reason, for bars refused.
    pub rejected: Vec<(usize, String)>,
}

/// Replica mode on or off. A replica follows bars made elsewhere (another node's, by [`UpsertBars`]) and
/// does not close bars on time itself: its source's closed bars do. Turned off, bars close on time again
/// (at once, for buckets that ended meanwhile): the node has become the source.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetReplica {
    pub replica: bool,
}

/// How many closed bars the aggregator holds in memory, all intervals (memory tiers: tests, measurements).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountInMemory;

/// The last traded price and its exchange time (ms).
#[derive(Message)]
#[rtype(result = "Option<(f64, i64)>")]
pub struct GetQuote;

/// Settings of every aggregator (`[aggregator]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorSettings {
    /// How long after a bar closes a late trade may still revise it, in ms.
    pub grace_ms: i64,
    /// Closed bars kept in memory per symbol and interval.
    pub history_bars: usize,
    /// Of those, the newest kept per interval once the store has them (memory tiers): older ones are read
    /// from the store. Without a store, or at `history_bars` or more, memory keeps `history_bars`.
    #[serde(default = "default_hot_bars")]
    pub hot_bars: usize,
    /// Trades stamped further than this in the future are refused, in ms.
    pub max_clock_skew_ms: i64,
    /// Intervals to build; empty means all.
    #[serde(default)]
    pub intervals: Vec<Interval>,
    /// Trading sessions by exchange (`[aggregator.sessions.NSE]`): a symbol written `EXCHANGE:NAME`
    /// (`NSE:INFY`), or named in `symbol_sessions`, gets bars on its exchange's sessions.
    #[serde(default)]
    pub sessions: BTreeMap<String, Session>,
    /// Symbols without an exchange prefix that trade on an exchange's sessions: `{ AAPL = "NASDAQ" }`.
    #[serde(default)]
    pub symbol_sessions: BTreeMap<String, String>,
}

impl Default for AggregatorSettings {
    fn default() -> Self {
        AggregatorSettings {
            grace_ms: 2_000,
            history_bars: 5_000,
            hot_bars: default_hot_bars(),
            max_clock_skew_ms: 5_000,
            intervals: Vec::new(),
            sessions: BTreeMap::new(),
            symbol_sessions: BTreeMap::new(),
        }
    }
}

fn default_hot_bars() -> usize {
    DEFAULT_HOT_BARS
}

/// `aggregator.hot_bars` unless configured: see docs/BENCHMARKS.md ("Memory tiers") for why.
pub const DEFAULT_HOT_BARS: usize = 64;

/// `aggregator.symbol_sessions` names an exchange without sessions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregator.symbol_sessions: {symbol} trades on {exchange:?}, which has no [aggregator.sessions.{exchange}]")]
pub struct UnknownSessions {
    pub symbol: String,
    pub exchange: String,
}

impl AggregatorSettings {
    /// Where `symbol`'s buckets lie: its exchange's sessions, or around the clock (crypto, and any
    /// exchange without a configured session).
    pub fn calendar_for(&self, symbol: &str) -> Calendar {
        let exchange =
            self.symbol_sessions.get(symbol).map(String::as_str).or_else(|| symbol.split_once(':').map(|(e, _)| e));
        match exchange.and_then(|e| self.sessions.get(e)) {
            Some(session) => Calendar::Session(Arc::new(session.clone())),
            None => Calendar::Continuous,
        }
    }

    /// `symbol_sessions` names only configured exchanges.
    pub fn check_sessions(&self) -> Result<(), UnknownSessions> {
        match self.symbol_sessions.iter().find(|(_, e)| !self.sessions.contains_key(*e)) {
            Some((symbol, exchange)) => Err(UnknownSessions { symbol: symbol.clone(), exchange: exchange.clone() }),
            None => Ok(()),
        }
    }

    pub fn intervals(&self) -> Vec<Interval> {
        if self.intervals.is_empty() {
            Interval::ALL.to_vec()
        } else {
            self.intervals.clone()
        }
    }
}

/// The aggregator's clock ticks every `TICK` from its start: bars close on the first tick after their bucket
/// ends, the trade rate is measured on every tenth. But it is woken only on the ticks that have something to
/// do (a bar to close, a rate to measure, a release to check): an idle symbol costs nothing between them, where
/// a timer firing on every tick cost 1,000 symbols 10,000 wake-ups a second (docs/BENCHMARKS.md, "Per-symbol
/// cost").
const TICK: Duration = Duration::from_millis(100);
const TICK_MS: i64 = TICK.as_millis() as i64;
/// The trade rate is trades per `RATE_WINDOW_MS`, measured on the ticks that end such a window.
const RATE_WINDOW_MS: i64 = 1_000;
/// Every aggregator ticks on the same wall-clock grid, `GRID_PHASE_MS` after each multiple of `TICK`: the
/// 1s closes of all symbols fall in one instant, one wake of the market thread, where ticks counted from
/// each aggregator's start scattered them over 100 instants a second (docs/BENCHMARKS.md, "Per-symbol cost").
/// The phase lets the simulated feeds' batches, sent on their grid of whole ticks, reach the aggregators
/// before the bars they belong to close, rather than as corrections right after.
pub(crate) const GRID_PHASE_MS: i64 = 10;

/// See the module documentation.
pub struct Aggregator {
    bars: TimeBars,
    hub: Recipient<Publish>,
    /// The market's batch (see [`PublishBatch`]); without one, each publish is a message to `hub`.
    batch: Option<Arc<PublishBatch>>,
    stats: Arc<SymbolStats>,
    max_clock_skew_ms: i64,
    /// Reused buffer of updates to publish.
    out: Vec<BarUpdate>,
    trades_at_last_rate: u64,
    /// Wall-clock ms of the aggregator's start: its first tick is at least `TICK` after it.
    started_ms: i64,
    /// The tick the aggregator is next woken on, and its timer.
    wake: Option<(i64, SpawnHandle)>,
    /// The tick on which the trade rate is next measured; `None` while there is none to measure (no trade
    /// since the last measure, which was 0).
    rate_due: Option<i64>,
    /// See [`SetReplica`].
    replica: bool,
    /// What the store surely has (`None`: keep `history_bars`, as without a store).
    durability: Option<Arc<Durability>>,
    /// When the window was last all handed to persistence, and what may then be released of it.
    checkpoint: Option<(i64, Vec<Option<i64>>)>,
    /// A backfill was seeded that will never be stored: nothing is released any more.
    keep_all: bool,
    /// Times woken by the timer (tests: an idle aggregator is not woken).
    #[cfg(test)]
    wakes: u64,
}

impl Aggregator {
    pub fn new(
        symbol: Symbol,
        settings: &AggregatorSettings,
        hub: Recipient<Publish>,
        stats: Arc<SymbolStats>,
    ) -> Aggregator {
        Aggregator {
            bars: TimeBars::new(symbol.clone(), &settings.intervals(), settings.grace_ms, settings.history_bars)
                .with_calendar(settings.calendar_for(&symbol))
                .with_hot(settings.hot_bars),
            hub,
            batch: None,
            stats,
            max_clock_skew_ms: settings.max_clock_skew_ms,
            out: Vec::new(),
            trades_at_last_rate: 0,
            started_ms: now_ms(),
            wake: None,
            rate_due: None,
            replica: false,
            durability: None,
            checkpoint: None,
            keep_all: false,
            #[cfg(test)]
            wakes: 0,
        }
    }

    /// Publishes through the market's batch instead of a message each time.
    pub fn with_batch(mut self, batch: Arc<PublishBatch>) -> Aggregator {
        self.batch = Some(batch);
        self
    }

    /// Keeps only `hot_bars` per interval of what the store has (see [`Durability`]).
    pub fn with_durability(mut self, durability: Arc<Durability>) -> Aggregator {
        self.durability = Some(durability);
        self
    }

    fn publish(&mut self) {
        self.bars.take_partials(&mut self.out);
        if let Some(d) = &self.durability {
            d.published(self.out.iter().filter(|u| u.kind != crate::bars::UpdateKind::Partial).count());
        }
        match &self.batch {
            Some(batch) => batch.push(&mut self.out),
            None if !self.out.is_empty() => self.hub.do_send(Publish { updates: std::mem::take(&mut self.out) }),
            None => {}
        }
    }

    /// Memory tiers, in two steps: a checkpoint notes the time by which every bar in the window has been
    /// published (so handed to persistence) and which bars lie beyond the hot window; once the store has
    /// everything handed before that time, those bars go. A bar beyond the hot window revised meanwhile
    /// (or a seed) voids the checkpoint: its new version is not stored yet. Replicas keep their window:
    /// their bars reach the store by another way (the follower).
    fn release_stored(&mut self) {
        let Some(durability) = &self.durability else { return };
        if self.bars.take_deep_write() || self.replica || self.keep_all {
            self.checkpoint = None;
            if self.replica || self.keep_all {
                return;
            }
        }
        if let Some((at, marks)) = &self.checkpoint {
            if *at >= durability.stored_before() {
                return;
            }
            durability.released(self.bars.release(marks));
            self.checkpoint = None;
        }
        let marks = self.bars.release_marks();
        if marks.iter().any(Option::is_some) {
            // After this tick's publish: everything in the window was handed over before `now`.
            self.checkpoint = Some((now_ms(), marks));
        }
    }

    /// Trades of the window that ends on this tick. A window is skipped only while nothing trades (a trade
    /// asks for the tick ending its window, see [`Aggregator::schedule`]), so every trade counted here came
    /// within it.
    fn measure_rate(&mut self) {
        let total = self.stats.trades_total.load(Ordering::Relaxed);
        let delta = total - self.trades_at_last_rate;
        self.trades_at_last_rate = total;
        self.stats.trade_rate_milli.store(delta * 1000, Ordering::Relaxed);
    }

    /// The first of this aggregator's ticks at or after `t` (wall-clock ms), every `period` ms (a multiple
    /// of `TICK`), on the wall-clock grid shared by every aggregator (see [`GRID_PHASE_MS`]). The first tick
    /// is at least one `TICK` after the start, as a timer's.
    fn tick_at_or_after(&self, t: i64, period: i64) -> i64 {
        let first = self.started_ms + TICK_MS;
        // Ticks of every period share the phase, so a bar's close and the rate's tick coincide.
        let phase = GRID_PHASE_MS;
        let t = t.max(first);
        phase + (t - phase + period - 1).div_euclid(period) * period
    }

    /// The newest tick that has passed (`None` before the first).
    fn tick_passed(&self, now: i64) -> Option<i64> {
        let tick = self.tick_at_or_after(now, TICK_MS);
        let passed = if tick == now { tick } else { tick - TICK_MS };
        (passed >= self.started_ms + TICK_MS).then_some(passed)
    }

    /// Whether a window release is to be checked on the coming ticks (see [`Aggregator::release_stored`]).
    fn release_pending(&self) -> bool {
        self.durability.is_some()
            && !self.replica
            && !self.keep_all
            && (self.checkpoint.is_some() || self.bars.beyond_hot_window())
    }

    /// What a tick does: closes the bars whose bucket ended, publishes, releases what the store has, measures
    /// the trade rate when its window ends.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        self.wake = None;
        #[cfg(test)]
        {
            self.wakes += 1;
        }
        let now = now_ms();
        if !self.replica {
            self.bars.advance_to(now, &mut self.out);
        }
        self.publish();
        self.release_stored();
        if self.rate_due.is_some_and(|at| now >= at) {
            self.rate_due = None;
            self.measure_rate();
        }
        self.schedule(ctx);
    }

    /// Sets the timer for the first tick with something to do, if it is not set for an earlier one already.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let traded = self.stats.trades_total.load(Ordering::Relaxed) != self.trades_at_last_rate;
        if self.rate_due.is_none() && (traded || self.stats.trade_rate_milli.load(Ordering::Relaxed) != 0) {
            // Strictly after now: a trade of this very ms belongs to the window the next rate tick ends.
            self.rate_due = Some(self.tick_at_or_after(now + 1, RATE_WINDOW_MS));
        }
        let closes = if self.replica { None } else { self.bars.next_due() };
        let closes = closes.map(|due| self.tick_at_or_after(due.max(now), TICK_MS));
        // The store's progress is not told to aggregators: a pending release looks again once a second.
        let release = self.release_pending().then(|| self.tick_at_or_after(now + 1, RATE_WINDOW_MS));
        let Some(at) = [closes, self.rate_due, release].into_iter().flatten().min() else { return };
        match self.wake {
            Some((set, _)) if set <= at => return,
            Some((_, handle)) => {
                ctx.cancel_future(handle);
            }
            None => {}
        }
        // One ms more: the wake must not find the wall clock short of `at`, whatever the timer's rounding.
        let delay = crate::model::until_wall_ms((at + 1) as f64);
        self.wake = Some((at, ctx.run_later(delay, |agg, ctx| agg.wake(ctx))));
    }
}

impl Actor for Aggregator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Trades arrive in bursts; a big mailbox keeps feeds from blocking on a momentarily busy aggregator.
        ctx.set_mailbox_capacity(4096);
        self.started_ms = now_ms();
        self.schedule(ctx);
    }
}

impl Handler<Ingest> for Aggregator {
    type Result = MessageResult<Ingest>;

    /// Validates and folds a batch of trades, then publishes what changed.
    fn handle(&mut self, msg: Ingest, ctx: &mut Context<Self>) -> Self::Result {
        let mut report = IngestReport::default();
        let now = now_ms();
        // The clock as the ticks have moved it: lateness is judged against it. A tick may have passed
        // without a wake (nothing was due), which would only have moved the clock.
        if let Some(tick) = self.tick_passed(now).filter(|_| !self.replica) {
            self.bars.advance_to(tick, &mut self.out);
        }
        let latest_allowed = now + self.max_clock_skew_ms;
        for (i, trade) in msg.trades.iter().enumerate() {
            if let Err(e) = trade.validate() {
                report.rejected.push((i, e.to_string()));
                continue;
            }
            if trade.exchange_ts > latest_allowed {
                report.rejected.push((i, format!("timestamp {} is in the future", trade.exchange_ts)));
                continue;
            }
            if *trade.symbol != **self.bars.symbol() {
                report
                    .rejected
                    .push((i, format!("trade for {} sent to the {} aggregator", trade.symbol, self.bars.symbol())));
                continue;
            }
            if !self.bars.volume_fits(trade) {
                report.rejected.push((i, format!("quantity {} would make a bar's volume overflow", trade.qty)));
                continue;
            }
            match self.bars.apply(trade, &mut self.out) {
                Applied::Live | Applied::Corrected => report.accepted += 1,
                Applied::TooLate => report.late_dropped += 1,
            }
        }
        let stats = &self.stats;
        add(&stats.trades_total, report.accepted as u64);
        add(&stats.late_dropped, report.late_dropped as u64);
        add(&stats.rejected, report.rejected.len() as u64);
        add(&COUNTERS.trades_total, report.accepted as u64);
        add(&COUNTERS.late_dropped, report.late_dropped as u64);
        add(&COUNTERS.trades_rejected, report.rejected.len() as u64);
        if report.late_dropped > 0 {
            tracing::debug!(symbol = %self.bars.symbol(), n = report.late_dropped, "dropped trades older than the grace window");
        }
        self.publish();
        self.schedule(ctx);
        MessageResult(report)
    }
}

impl Handler<Seed> for Aggregator {
    type Result = ();

    /// Loads history; the forming bars it contains are published so subscribers see them at once.
    fn handle(&mut self, msg: Seed, ctx: &mut Context<Self>) {
        self.keep_all |= msg.unstored && msg.bars.iter().any(|(_, bars)| bars.iter().any(|b| b.closed));
        for (interval, bars) in realign_seed(self.bars.calendar(), msg.bars) {
            self.bars.seed(interval, bars);
        }
        if !self.replica {
            self.bars.advance_to(now_ms(), &mut self.out);
        }
        self.publish();
        self.schedule(ctx);
    }
}

impl Handler<GetBars> for Aggregator {
    type Result = MessageResult<GetBars>;

    /// Reads the in-memory history.
    fn handle(&mut self, msg: GetBars, _: &mut Context<Self>) -> Self::Result {
        let q = msg.0;
        MessageResult(self.bars.bars(q.interval, q.start_time, q.end_time, q.limit))
    }
}

impl Handler<CountInMemory> for Aggregator {
    type Result = usize;

    fn handle(&mut self, _: CountInMemory, _: &mut Context<Self>) -> usize {
        self.bars.closed_in_memory()
    }
}

impl Handler<GetQuote> for Aggregator {
    type Result = Option<(f64, i64)>;

    /// Returns the last trade's price and time.
    fn handle(&mut self, _: GetQuote, _: &mut Context<Self>) -> Self::Result {
        self.bars.last_trade()
    }
}

impl Handler<SetReplica> for Aggregator {
    type Result = ();

    /// Switches replica mode; leaving it closes the buckets that ended meanwhile.
    fn handle(&mut self, msg: SetReplica, ctx: &mut Context<Self>) {
        if self.replica != msg.replica {
            tracing::info!(symbol = %self.bars.symbol(), replica = msg.replica, "aggregator mode changed");
        }
        self.replica = msg.replica;
        if !self.replica {
            self.bars.advance_to(now_ms(), &mut self.out);
            self.publish();
        }
        self.schedule(ctx);
    }
}

impl Handler<UpsertBars> for Aggregator {
    type Result = MessageResult<UpsertBars>;

    /// Puts the bars in place and publishes what changed.
    fn handle(&mut self, msg: UpsertBars, ctx: &mut Context<Self>) -> Self::Result {
        let mut report = UpsertReport::default();
        for (i, bar) in msg.bars.into_iter().enumerate() {
            match self.bars.upsert(bar, &mut self.out) {
                Ok(Upserted::Inserted) => report.inserted += 1,
                Ok(Upserted::Replaced) => report.replaced += 1,
                Ok(Upserted::Unchanged) => report.unchanged += 1,
                Err(e) => report.rejected.push((i, e.to_string())),
            }
        }
        self.publish();
        self.schedule(ctx);
        MessageResult(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps what the aggregator publishes.
    struct Sink(Arc<std::sync::Mutex<Vec<BarUpdate>>>);

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<Publish> for Sink {
        type Result = ();
        fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
            self.0.lock().unwrap().extend(msg.updates);
        }
    }

    /// How often the aggregator's timer woke it.
    #[derive(Message)]
    #[rtype(result = "u64")]
    struct CountWakes;

    impl Handler<CountWakes> for Aggregator {
        type Result = u64;
        fn handle(&mut self, _: CountWakes, _: &mut Context<Self>) -> u64 {
            self.wakes
        }
    }

    fn trade_at(ts: i64, price: f64) -> crate::model::Trade {
        crate::model::Trade {
            symbol: "BTCUSDT".into(),
            price,
            qty: 1.0,
            side: crate::model::Side::Buy,
            exchange_ts: ts,
            received_ts: ts,
            id: 0,
        }
    }

    /// Waits (polling, real time) until `done` holds; gives up after a minute so a broken build fails.
    async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done().await {
            assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_rt::test]
    async fn aggregators_started_apart_tick_in_the_same_instants() {
        // Ticks counted from each start scattered 10,000 symbols' closes over 100 instants a second.
        let sink = Sink(Arc::default()).start().recipient();
        let settings = AggregatorSettings::default();
        let new = |started_ms: i64| Aggregator {
            started_ms,
            ..Aggregator::new("BTCUSDT".into(), &settings, sink.clone(), Arc::default())
        };
        let (a, b) = (new(1_000_000_037), new(1_000_000_071));
        for t in [1_000_000_200, 1_000_001_000, 1_000_001_999] {
            let tick = a.tick_at_or_after(t, TICK_MS);
            assert_eq!(tick, b.tick_at_or_after(t, TICK_MS), "{t}");
            assert!(tick >= t && tick - t < TICK_MS && tick.rem_euclid(TICK_MS) == GRID_PHASE_MS, "{t}: {tick}");
            let rate = a.tick_at_or_after(t, RATE_WINDOW_MS);
            assert_eq!(rate, b.tick_at_or_after(t, RATE_WINDOW_MS));
            assert!(rate >= t && rate.rem_euclid(RATE_WINDOW_MS) == GRID_PHASE_MS, "{t}: {rate}");
        }
        // Never before a tick's length after the start, as a timer set at the start.
        assert_eq!(b.tick_at_or_after(1_000_000_071, TICK_MS), 1_000_000_210);
    }

    #[actix_rt::test]
    async fn an_idle_aggregator_is_never_woken() {
        // A minute of ticks on a clock the test controls: with nothing forming, nothing traded and nothing to
        // release, no tick has work (a timer on every tick woke it 600 times).
        tokio::time::pause();
        let sink = Sink(Arc::default()).start();
        let agg =
            Aggregator::new("BTCUSDT".into(), &AggregatorSettings::default(), sink.recipient(), Arc::default()).start();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(agg.send(CountWakes).await.unwrap(), 0);
        // A replica with a forming bar does not close it itself: still nothing to do.
        agg.send(SetReplica { replica: true }).await.unwrap();
        let forming = Bar::from_trade("BTCUSDT".into(), Interval::M1, Interval::M1.align(now_ms()), 100.0, 1.0);
        agg.send(UpsertBars { bars: vec![forming] }).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(agg.send(CountWakes).await.unwrap(), 0);
    }

    #[actix_rt::test]
    async fn bars_close_on_time_without_trades_woken_once_per_close_and_the_rate_is_measured() {
        // Real time: bars close by the wall clock.
        let published = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Sink(published.clone()).start();
        let settings = AggregatorSettings { intervals: vec![Interval::S1], ..AggregatorSettings::default() };
        let stats = Arc::new(SymbolStats::default());
        let agg = Aggregator::new("BTCUSDT".into(), &settings, sink.recipient(), stats.clone()).start();
        let ts = now_ms();
        let open = Interval::S1.align(ts);
        let trades = vec![trade_at(ts, 100.0), trade_at(ts, 101.0), trade_at(ts, 99.0)];
        let report = agg.send(Ingest { trades }).await.unwrap();
        assert_eq!(report.accepted, 3, "{report:?}");
        let closed = |open_time: Option<i64>| -> Vec<Bar> {
            let published = published.lock().unwrap();
            let closed = published.iter().filter(|u| u.kind == crate::bars::UpdateKind::Closed).map(|u| u.bar.clone());
            closed.filter(|b| open_time.is_none_or(|t| b.open_time == t)).collect()
        };
        wait_for("the traded second to close", async || !closed(Some(open)).is_empty()).await;
        let bar = &closed(Some(open))[0];
        assert!(bar.closed && bar.close_time() <= now_ms(), "{bar:?}");
        assert_eq!(bar.trades, 3, "the second's trades, in one bar");
        // The window that holds the trades measures them; the next one, without trades, measures 0.
        wait_for("the trade rate", async || stats.trade_rate() == 3.0).await;
        wait_for("the rate back at 0", async || stats.trade_rate() == 0.0).await;
        // From here on only the 1s closes are work: flat bars, one wake each.
        let (wakes_before, closes_before) = (agg.send(CountWakes).await.unwrap(), closed(None).len());
        wait_for("three more flat bars", async || closed(None).len() >= closes_before + 3).await;
        let flat = closed(None);
        assert!(flat[closes_before..].iter().all(|b| b.closed && b.trades == 0 && b.close == 99.0), "{flat:?}");
        assert!(flat.windows(2).all(|w| w[1].open_time == w[0].close_time()), "no second skipped");
        let wakes = agg.send(CountWakes).await.unwrap() - wakes_before;
        let closes = closed(None).len() - closes_before;
        // One wake may have closed a bar the sink had not received when the counts were read.
        assert!(wakes <= closes as u64 + 1, "{wakes} wakes for {closes} closes");
    }

    #[actix_rt::test]
    async fn a_replica_does_not_close_bars_on_time_until_it_becomes_the_source() {
        // Its ticks on a clock the test controls: the sleep below runs four of them at once. (Bars close by
        // the wall clock, which this does not touch.)
        tokio::time::pause();
        let published = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Sink(published.clone()).start();
        let settings = AggregatorSettings { intervals: vec![Interval::M1], ..AggregatorSettings::default() };
        let agg = Aggregator::new("BTCUSDT".into(), &settings, sink.recipient(), Arc::default()).start();
        agg.send(SetReplica { replica: true }).await.unwrap();
        // A forming bar whose minute ended long ago: only its source may close it.
        let open = Interval::M1.align(now_ms()) - 5 * 60_000;
        let forming = Bar::from_trade("BTCUSDT".into(), Interval::M1, open, 100.0, 1.0);
        agg.send(UpsertBars { bars: vec![forming.clone()] }).await.unwrap();
        tokio::time::sleep(TICK * 4).await;
        let bars = agg.send(GetBars(HistoryQuery::all(Interval::M1))).await.unwrap();
        assert_eq!(bars, vec![forming.clone()], "still forming in replica mode");

        let before = Interval::M1.align(now_ms());
        agg.send(SetReplica { replica: false }).await.unwrap();
        let after = Interval::M1.align(now_ms());
        let bars = agg.send(GetBars(HistoryQuery::all(Interval::M1))).await.unwrap();
        assert!(bars[0].closed && bars[0].open_time == open, "{bars:?}");
        let newest = bars.last().unwrap().open_time;
        assert!((before..=after).contains(&newest), "flat bars up to now");
        let closed = published.lock().unwrap().iter().filter(|u| u.kind == crate::bars::UpdateKind::Closed).count();
        assert_eq!(closed as i64, (newest - open) / 60_000, "the source publishes every bar it closed");
    }
}
