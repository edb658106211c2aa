//! The indicator service: one computation per (symbol, interval, indicator, parameters), however many
//! clients ask for it. A computation warms up over the symbol's history, then follows the hub's bar events:
//! closed bars update it, partial bars preview it. Values go out on a hub channel.
//!
//! Budgets: distinct computations are at most `max_computations` (float parameters are rounded to 0.01,
//! so `k=2.0000001` is `k=2`); a request that needs one more is refused with a named error. Warm-ups
//! fold the newest `history_bars` of the history (memory over store): they run on a pool of their own, at
//! most `max_concurrent_warmups` at once (the others wait their turn), never on the thread of this service
//! nor on the market's, which runs every aggregator and feed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use actix::prelude::*;
use serde_json::{json, Value};

use super::indicator_channel;
use crate::bars::UpdateKind;
use crate::hub::{ChannelSubscribers, Hub, PublishFrames, SubscribeActor, SubscribeChannel, UnsubscribeChannel};
use crate::market::Market;
use crate::messages::{BarEvents, ClientId, Topic};
use crate::model::{Bar, Interval, Symbol};
use crate::protocol::{self, ErrorCode, IndicatorPoint};
use crate::refusals::refused;
use crate::strategy::indicators::{build_indicator, indicator_catalog, AnyIndicator, IndicatorValue};
use crate::strategy::params::Params;

/// Subscribe a client to an indicator stream: history first, then live values.
#[derive(Message)]
#[rtype(result = "Result<(), IndicatorError>")]
pub struct SubscribeIndicator {
    pub client: ClientId,
    pub symbol: Symbol,
    pub interval: Interval,
    pub indicator: String,
    pub params: Value,
    /// Values of history to send first.
    pub history: usize,
    pub id: Option<Value>,
}

/// Unsubscribe a client from an indicator stream.
#[derive(Message)]
#[rtype(result = "Result<(), IndicatorError>")]
pub struct UnsubscribeIndicator {
    pub client: ClientId,
    pub symbol: Symbol,
    pub interval: Interval,
    pub indicator: String,
    pub params: Value,
    pub id: Option<Value>,
}

/// How many computations are running (shared by all their subscribers).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountComputations;

/// Why an indicator request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    /// Unknown indicator, bad parameters, unknown symbol.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} distinct indicator computations are running, the limit ([ws] max_indicator_computations; limit indicator_computations); use the parameters of a running one or retry later")]
    TooManyComputations(usize),
    #[error("history is not available right now")]
    Unavailable,
}

impl IndicatorError {
    /// The `/ws` error code it is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            IndicatorError::Invalid(_) => ErrorCode::InvalidParameter,
            IndicatorError::TooManyComputations(_) => ErrorCode::TooManySubscriptions,
            IndicatorError::Unavailable => ErrorCode::Internal,
        }
    }
}

/// Budgets of the service (`[ws]` in the server's config).
#[derive(Debug, Clone, Copy)]
pub struct IndicatorSettings {
    pub max_computations: usize,
    pub max_concurrent_warmups: usize,
    /// How often computations nobody watches are dropped.
    pub unwatched_sweep: Duration,
}

/// Float parameters are kept to this precision: closer values are one computation.
const FLOAT_STEP: f64 = 0.01;

/// Queued warm-ups of one topic started together (one read of its bars, one pool job).
const WARMUP_BATCH: usize = 64;

/// Values kept per computation for late subscribers.
const KEPT_VALUES: usize = 5_000;

/// One computation's identity and state; built (warmed up) on the blocking pool, then owned by the service.
struct Computation {
    symbol: Symbol,
    interval: Interval,
    name: &'static str,
    params: Value,
    indicator: Box<dyn AnyIndicator>,
    /// (bar open time, value) of closed bars, oldest first.
    values: VecDeque<(i64, IndicatorValue)>,
    last_closed: Option<i64>,
}

impl Computation {
    fn close(&mut self, bar: &Bar) -> Option<IndicatorValue> {
        if self.last_closed.is_some_and(|t| bar.open_time <= t) {
            return None; // already folded (a correction, or a bar from the warm-up history)
        }
        self.last_closed = Some(bar.open_time);
        let value = self.indicator.update(bar)?;
        self.values.push_back((bar.open_time, value));
        if self.values.len() > KEPT_VALUES {
            self.values.pop_front();
        }
        Some(value)
    }

    fn frame<D: serde::Serialize>(&self, kind: &'static str, data: D, id: Option<&Value>) -> bytes::Bytes {
        protocol::text_frame(&protocol::IndicatorFrame {
            kind,
            symbol: &self.symbol,
            interval: self.interval,
            indicator: self.name,
            params: &self.params,
            data,
            id,
        })
    }
}

fn point(timestamp: i64, closed: bool, value: &IndicatorValue) -> IndicatorPoint {
    IndicatorPoint { value: *value, timestamp, closed }
}

/// The closed values of a computation from `skip` on, serialized as a list of points without building one.
struct ClosedPoints<'a> {
    values: &'a VecDeque<(i64, IndicatorValue)>,
    skip: usize,
}

impl serde::Serialize for ClosedPoints<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.values.iter().skip(self.skip).map(|(t, v)| point(*t, true, v)))
    }
}

/// A client waiting for a computation's warm-up.
struct Waiter {
    client: ClientId,
    history: usize,
    id: Option<Value>,
    reply: oneshot::Sender<Result<(), IndicatorError>>,
}

/// A computation not running yet: queued, or warming up.
struct Warming {
    symbol: Symbol,
    interval: Interval,
    name: &'static str,
    params: Value,
    waiters: Vec<Waiter>,
    /// Closed bars published while it warms up: folded after the history (duplicates are skipped).
    closed_meanwhile: Vec<Bar>,
}

/// See the module documentation.
pub struct IndicatorService {
    hub: Addr<Hub>,
    market: Market,
    settings: IndicatorSettings,
    computations: HashMap<Arc<str>, Computation>,
    by_topic: HashMap<Topic, Vec<Arc<str>>>,
    /// Computations asked for and not running yet; they count towards `max_computations`.
    warming: HashMap<Arc<str>, Warming>,
    /// Of `warming`, those waiting for a warm-up slot, oldest first.
    queue: VecDeque<Arc<str>>,
    warmups_running: usize,
    /// Where warm-ups fold history: low-priority threads, one per concurrent warm-up, so a flood of new
    /// parameter sets cannot take the cores from the fan-out (`crate::background`).
    warmup_pool: Option<Arc<rayon::ThreadPool>>,
}

impl IndicatorService {
    pub fn new(hub: Addr<Hub>, market: Market, settings: IndicatorSettings) -> IndicatorService {
        let warmup_pool = crate::background::pool(
            "indicator-warmup",
            settings.max_concurrent_warmups,
            crate::background::Priority::Idle,
        )
        .map(Arc::new)
        .map_err(|e| tracing::warn!(error = %e, "no low-priority warm-up pool; using the blocking pool"))
        .ok();
        IndicatorService {
            hub,
            market,
            computations: HashMap::new(),
            by_topic: HashMap::new(),
            warming: HashMap::new(),
            queue: VecDeque::new(),
            warmups_running: 0,
            settings,
            warmup_pool,
        }
    }

    /// Validates a request and returns its canonical parameters (defaults filled in, floats rounded):
    /// requests with equal canonical forms are one stream and one computation.
    pub fn canonical(name: &str, params: &Value) -> Result<(&'static str, Value), IndicatorError> {
        let info = indicator_catalog().iter().find(|i| i.name == name).ok_or_else(|| {
            let names: Vec<&str> = indicator_catalog().iter().map(|i| i.name).collect();
            IndicatorError::Invalid(format!("unknown indicator {name:?}; available: {}", names.join(", ")))
        })?;
        let params = if params.is_null() { json!({}) } else { params.clone() };
        let parsed = Params::parse(info.params, &params).map_err(|e| IndicatorError::Invalid(e.to_string()))?;
        let mut canonical = parsed.to_json();
        for spec in info.params {
            if spec.kind == crate::strategy::params::ParamKind::Float {
                if let Some(v) = canonical.get_mut(spec.name) {
                    let rounded = v.as_f64().map(|x| ((x / FLOAT_STEP).round() * FLOAT_STEP).clamp(spec.min, spec.max));
                    if let Some(r) = rounded {
                        // Rounded to two decimals and printed as such (2.3 rather than 2.3000000000000003).
                        *v = json!((r * 100.0).round() / 100.0);
                    }
                }
            }
        }
        Ok((info.name, Value::Object(canonical)))
    }

    /// Subscribes a client to a running computation, its history first.
    fn subscribe(&self, channel: &Arc<str>, client: ClientId, history: usize, id: Option<&Value>) -> bool {
        let Some(c) = self.computations.get(channel) else { return false };
        let skip = c.values.len().saturating_sub(history);
        let first = c.frame("indicator_history", ClosedPoints { values: &c.values, skip }, id);
        self.hub.do_send(SubscribeChannel { client, channel: channel.clone(), first: Some(first) });
        true
    }

    /// Starts queued warm-ups while fewer than `max_concurrent_warmups` run. The queued warm-ups of one
    /// topic go together: one read of its bars (through the history service: memory over store), folded
    /// once per computation on one pool job. A flood of new parameter sets on a few topics was one full copy
    /// of the window per computation.
    fn start_warmups(&mut self, ctx: &mut Context<Self>) {
        while self.warmups_running < self.settings.max_concurrent_warmups.max(1) {
            let Some(channel) = self.queue.pop_front() else { return };
            let Some(w) = self.warming.get(&channel) else { continue };
            let (symbol, interval) = (w.symbol.clone(), w.interval);
            let Some(entry) = self.market.get(&symbol) else {
                self.finish(channel, Err(IndicatorError::Invalid(format!("unknown symbol {:?}", &*symbol))));
                continue;
            };
            let mut batch = vec![channel];
            self.queue.retain(|other| {
                let same = batch.len() < WARMUP_BATCH
                    && self.warming.get(other).is_some_and(|o| o.symbol == symbol && o.interval == interval);
                if same {
                    batch.push(other.clone());
                }
                !same
            });
            let jobs: Vec<_> = batch
                .iter()
                .filter_map(|ch| self.warming.get(ch).map(|w| (ch.clone(), w.name, w.params.clone())))
                .collect();
            self.warmups_running += 1;
            let bars = self.market.warmup_bars(&entry, interval);
            let pool = self.warmup_pool.clone();
            let work = async move {
                let bars = bars.await.ok_or(IndicatorError::Unavailable)?;
                // The folding is CPU work over up to the whole history: never on an actor's thread.
                let fold = move || {
                    jobs.into_iter()
                        .map(|(ch, name, params)| (ch, warm_up(symbol.clone(), interval, name, params, &bars)))
                        .collect::<Vec<_>>()
                };
                match pool {
                    Some(pool) => crate::background::run_on(&pool, fold).await.ok_or(IndicatorError::Unavailable),
                    None => tokio::task::spawn_blocking(fold).await.map_err(|_| IndicatorError::Unavailable),
                }
            };
            ctx.spawn(work.into_actor(self).map(move |results, svc, ctx| {
                svc.warmups_running = svc.warmups_running.saturating_sub(1);
                match results {
                    Ok(results) => {
                        for (channel, result) in results {
                            svc.finish(channel, result);
                        }
                    }
                    Err(e) => {
                        for channel in batch {
                            svc.finish(channel, Err(e.clone()));
                        }
                    }
                }
                svc.start_warmups(ctx);
            }));
        }
    }

    /// Installs a warmed-up computation and subscribes its waiters, or tells them why not.
    fn finish(&mut self, channel: Arc<str>, result: Result<Computation, IndicatorError>) {
        let Some(w) = self.warming.remove(&channel) else { return };
        match result {
            Ok(mut c) => {
                for bar in &w.closed_meanwhile {
                    c.close(bar);
                }
                self.by_topic.entry((c.symbol.clone(), c.interval)).or_default().push(channel.clone());
                self.computations.insert(channel.clone(), c);
                for waiter in w.waiters {
                    self.subscribe(&channel, waiter.client, waiter.history, waiter.id.as_ref());
                    let _ = waiter.reply.send(Ok(()));
                }
            }
            Err(e) => {
                for waiter in w.waiters {
                    let _ = waiter.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Builds a computation and folds the closed bars of its history (on the blocking pool).
fn warm_up(
    symbol: Symbol,
    interval: Interval,
    name: &'static str,
    params: Value,
    bars: &[Bar],
) -> Result<Computation, IndicatorError> {
    let indicator = build_indicator(name, &params).map_err(|e| IndicatorError::Invalid(e.to_string()))?;
    let mut c = Computation { symbol, interval, name, params, indicator, values: VecDeque::new(), last_closed: None };
    for bar in bars.iter().filter(|b| b.closed) {
        c.close(bar);
    }
    Ok(c)
}

impl Actor for IndicatorService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.hub.do_send(SubscribeActor { recipient: ctx.address().recipient(), partials: true });
        // Every computation previews each partial bar of its topic and frames the value, watched or not: an
        // abuse run's 256 computations left behind by closed connections took a tenth of a core until this
        // sweep (once a minute then). Dropped soon after the last subscriber leaves, kept across a reload.
        ctx.run_interval(self.settings.unwatched_sweep.max(Duration::from_millis(100)), |svc, ctx| {
            for channel in svc.computations.keys().cloned().collect::<Vec<_>>() {
                let count = svc.hub.send(ChannelSubscribers { channel: channel.clone() });
                ctx.spawn(count.into_actor(svc).map(move |n, svc, _| {
                    if n == Ok(0) {
                        if let Some(c) = svc.computations.remove(&channel) {
                            if let Some(list) = svc.by_topic.get_mut(&(c.symbol.clone(), c.interval)) {
                                list.retain(|ch| *ch != channel);
                            }
                        }
                    }
                }));
            }
        });
    }
}

impl Handler<SubscribeIndicator> for IndicatorService {
    type Result = ResponseFuture<Result<(), IndicatorError>>;

    /// Subscribes the client at once to a running computation; else queues it behind the computation's
    /// warm-up (starting one, within the budget), and answers when it is subscribed.
    fn handle(&mut self, msg: SubscribeIndicator, ctx: &mut Context<Self>) -> Self::Result {
        let ready = |r| -> Self::Result { Box::pin(async move { r }) };
        let (name, params) = match Self::canonical(&msg.indicator, &msg.params) {
            Ok(p) => p,
            Err(e) => return ready(Err(e)),
        };
        if !self.market.contains(&msg.symbol) {
            return ready(Err(IndicatorError::Invalid(format!("unknown symbol {:?}", &*msg.symbol))));
        }
        let channel = indicator_channel(&msg.symbol, msg.interval, name, &params);
        if self.subscribe(&channel, msg.client, msg.history, msg.id.as_ref()) {
            return ready(Ok(()));
        }
        if !self.warming.contains_key(&channel) {
            let held = self.computations.len() + self.warming.len();
            if held >= self.settings.max_computations {
                refused("indicator_computations");
                return ready(Err(IndicatorError::TooManyComputations(self.settings.max_computations)));
            }
            let w = Warming {
                symbol: msg.symbol.clone(),
                interval: msg.interval,
                name,
                params,
                waiters: Vec::new(),
                closed_meanwhile: Vec::new(),
            };
            self.warming.insert(channel.clone(), w);
            self.queue.push_back(channel.clone());
        }
        let (reply, answer) = oneshot::channel();
        if let Some(w) = self.warming.get_mut(&channel) {
            w.waiters.push(Waiter { client: msg.client, history: msg.history, id: msg.id, reply });
        }
        self.start_warmups(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(IndicatorError::Unavailable)) })
    }
}

impl Handler<UnsubscribeIndicator> for IndicatorService {
    type Result = Result<(), IndicatorError>;

    /// Removes the client from the stream's channel.
    fn handle(&mut self, msg: UnsubscribeIndicator, _: &mut Context<Self>) -> Self::Result {
        let (name, params) = Self::canonical(&msg.indicator, &msg.params)?;
        let channel = indicator_channel(&msg.symbol, msg.interval, name, &params);
        let mut ack = json!({ "type": "unsubscribed_indicator", "symbol": &*msg.symbol, "interval": msg.interval, "indicator": name, "params": params });
        if let Some(id) = msg.id {
            ack["id"] = id;
        }
        // A client still waiting for the warm-up is not subscribed when it ends.
        if let Some(w) = self.warming.get_mut(&channel) {
            w.waiters.retain(|waiter| waiter.client != msg.client);
        }
        self.hub.do_send(UnsubscribeChannel { client: msg.client, channel, ack: protocol::text_frame(&ack) });
        Ok(())
    }
}

impl Handler<CountComputations> for IndicatorService {
    type Result = usize;

    /// Counts the running computations.
    fn handle(&mut self, _: CountComputations, _: &mut Context<Self>) -> usize {
        self.computations.len()
    }
}

impl Handler<BarEvents> for IndicatorService {
    type Result = ();

    /// Closed bars update the computations of their topic; partial bars preview them.
    fn handle(&mut self, msg: BarEvents, _: &mut Context<Self>) {
        // Nothing computed nor warming: no topic to look up for each of the events (every symbol's partials
        // and closes, ~19 a second per symbol at 1 trade/s).
        if self.by_topic.is_empty() && self.warming.is_empty() {
            return;
        }
        let mut frames = Vec::new();
        for update in msg.0.iter() {
            if update.kind == UpdateKind::Closed && !self.warming.is_empty() {
                for w in self.warming.values_mut() {
                    if w.symbol == update.bar.symbol && w.interval == update.bar.interval {
                        // At most a warm-up's worth of bars; KEPT_VALUES bounds it whatever happens.
                        if w.closed_meanwhile.len() < KEPT_VALUES {
                            w.closed_meanwhile.push(update.bar.clone());
                        }
                    }
                }
            }
            let topic = (update.bar.symbol.clone(), update.bar.interval);
            let Some(channels) = self.by_topic.get(&topic) else { continue };
            for channel in channels {
                let Some(c) = self.computations.get_mut(channel) else { continue };
                let value = match update.kind {
                    UpdateKind::Closed => c.close(&update.bar).map(|v| point(update.bar.open_time, true, &v)),
                    UpdateKind::Partial => {
                        c.indicator.preview(&update.bar).map(|v| point(update.bar.open_time, false, &v))
                    }
                    // Indicator state is not rewound for a late trade; the next closed bar goes on from it.
                    UpdateKind::Correction => None,
                };
                if let Some(data) = value {
                    frames.push((channel.clone(), c.frame("indicator", data, None)));
                }
            }
        }
        if !frames.is_empty() {
            self.hub.do_send(PublishFrames(frames));
        }
    }
}
