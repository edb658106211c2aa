//! Strategies running live: each follows the closed bars of one symbol and interval through the same
//! `StrategyRunner` a backtest uses, and publishes its signals on the hub channel of that topic.

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::signal_channel;
use crate::hub::{Hub, PublishFrame, SubscribeActor, SubscribeChannel, UnsubscribeChannel};
use crate::market::Market;
use crate::messages::{BarEvents, ClientId};
use crate::model::{Interval, Symbol};
use crate::protocol;
use crate::strategy::params::BuildError;
use crate::strategy::strategies::{build_strategy, Signal, Strategy, StrategyRunner};

/// A strategy to run live (`[[strategies.live]]` in the config, or `POST /api/strategies/live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSpec {
    /// Registry name, e.g. `ema_cross`.
    pub strategy: String,
    pub symbol: String,
    pub interval: Interval,
    #[serde(default = "empty_params")]
    pub params: Value,
}

fn empty_params() -> Value {
    json!({})
}

/// A running strategy, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveInfo {
    pub id: u64,
    #[serde(flatten)]
    pub spec: LiveSpec,
    pub signals: usize,
}

/// Starts a strategy: it first runs over the history in memory (its signals there are kept as recent
/// signals), then live.
#[derive(Message)]
#[rtype(result = "Result<LiveInfo, StartError>")]
pub struct StartStrategy(pub LiveSpec);

/// Why a live strategy did not start (the API answers 400 with this text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("history is not available")]
    HistoryUnavailable,
}

/// Stops a running strategy; false if there was none with that id.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopStrategy(pub u64);

#[derive(Message)]
#[rtype(result = "Vec<LiveInfo>")]
pub struct ListStrategies;

/// Subscribe a client to the signals of a topic: recent signals first, then live ones.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeSignals {
    pub client: ClientId,
    pub symbol: Symbol,
    pub interval: Interval,
    pub id: Option<Value>,
}

/// Unsubscribe a client from the signals of a topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeSignals {
    pub client: ClientId,
    pub symbol: Symbol,
    pub interval: Interval,
    pub id: Option<Value>,
}

/// Signals kept per topic for clients that subscribe later.
const RECENT_SIGNALS: usize = 500;

struct Running {
    spec: LiveSpec,
    symbol: Symbol,
    runner: StrategyRunner<Box<dyn Strategy>>,
    produced: usize,
}

/// See the module documentation.
pub struct LiveStrategies {
    hub: Addr<Hub>,
    market: Market,
    running: HashMap<u64, Running>,
    recent: HashMap<(Symbol, Interval), VecDeque<Signal>>,
    next_id: u64,
}

impl LiveStrategies {
    pub fn new(hub: Addr<Hub>, market: Market) -> LiveStrategies {
        LiveStrategies { hub, market, running: HashMap::new(), recent: HashMap::new(), next_id: 1 }
    }

    fn record(&mut self, signal: Signal, publish: bool) {
        if publish {
            let mut msg = serde_json::to_value(&signal).unwrap_or(Value::Null);
            msg["type"] = json!("signal");
            self.hub.do_send(PublishFrame {
                channel: signal_channel(&signal.symbol, signal.interval),
                frame: protocol::text_frame(&msg),
            });
        }
        let recent = self.recent.entry((signal.symbol.clone(), signal.interval)).or_default();
        recent.push_back(signal);
        if recent.len() > RECENT_SIGNALS {
            recent.pop_front();
        }
    }
}

impl Actor for LiveStrategies {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.hub.do_send(SubscribeActor { recipient: ctx.address().recipient(), partials: false });
    }
}

impl Handler<StartStrategy> for LiveStrategies {
    type Result = AtomicResponse<Self, Result<LiveInfo, StartError>>;

    /// Validates, warms up over history (no other message handled meanwhile), then runs live.
    fn handle(&mut self, msg: StartStrategy, _: &mut Context<Self>) -> Self::Result {
        let spec = msg.0;
        let checked = build_strategy(&spec.strategy, &spec.params).map_err(StartError::from).and_then(|s| {
            self.market
                .get(&Symbol::normalize(&spec.symbol))
                .map(|e| (s, e))
                .ok_or_else(|| StartError::UnknownSymbol(spec.symbol.clone()))
        });
        let (strategy, entry) = match checked {
            Ok(c) => c,
            Err(e) => return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e)))),
        };
        let history = self.market.warmup_bars(&entry, spec.interval);
        AtomicResponse::new(Box::pin(async move { history.await.ok_or(StartError::HistoryUnavailable) }.into_actor(self).map(
            move |bars, live, _| {
                let bars = bars?;
                let mut runner = StrategyRunner::new(strategy);
                let mut signals = Vec::new();
                for bar in bars.iter().filter(|b| b.closed) {
                    signals.extend(runner.on_bar(bar));
                }
                let produced = signals.len();
                for s in signals {
                    live.record(s, false);
                }
                let id = live.next_id;
                live.next_id += 1;
                let info = LiveInfo { id, spec: spec.clone(), signals: produced };
                tracing::info!(id, strategy = %spec.strategy, symbol = %entry.symbol, interval = %spec.interval, "strategy started");
                live.running.insert(id, Running { spec, symbol: entry.symbol, runner, produced });
                Ok(info)
            },
        )))
    }
}

impl Handler<StopStrategy> for LiveStrategies {
    type Result = bool;

    /// Stops a strategy; its past signals stay in the recent list.
    fn handle(&mut self, msg: StopStrategy, _: &mut Context<Self>) -> bool {
        self.running.remove(&msg.0).is_some()
    }
}

impl Handler<ListStrategies> for LiveStrategies {
    type Result = MessageResult<ListStrategies>;

    /// Lists the running strategies.
    fn handle(&mut self, _: ListStrategies, _: &mut Context<Self>) -> Self::Result {
        let mut list: Vec<LiveInfo> = self
            .running
            .iter()
            .map(|(id, r)| LiveInfo { id: *id, spec: r.spec.clone(), signals: r.produced })
            .collect();
        list.sort_by_key(|i| i.id);
        MessageResult(list)
    }
}

impl Handler<SubscribeSignals> for LiveStrategies {
    type Result = ();

    /// Subscribes the client with the topic's recent signals as its first frame.
    fn handle(&mut self, msg: SubscribeSignals, _: &mut Context<Self>) {
        let recent: Vec<&Signal> =
            self.recent.get(&(msg.symbol.clone(), msg.interval)).map(|r| r.iter().collect()).unwrap_or_default();
        let mut first =
            json!({ "type": "signals_history", "symbol": &*msg.symbol, "interval": msg.interval, "data": recent });
        if let Some(id) = msg.id {
            first["id"] = id;
        }
        let channel = signal_channel(&msg.symbol, msg.interval);
        self.hub.do_send(SubscribeChannel { client: msg.client, channel, first: Some(protocol::text_frame(&first)) });
    }
}

impl Handler<UnsubscribeSignals> for LiveStrategies {
    type Result = ();

    /// Removes the client from the topic's signal channel.
    fn handle(&mut self, msg: UnsubscribeSignals, _: &mut Context<Self>) {
        let mut ack = json!({ "type": "unsubscribed_signals", "symbol": &*msg.symbol, "interval": msg.interval });
        if let Some(id) = msg.id {
            ack["id"] = id;
        }
        self.hub.do_send(UnsubscribeChannel {
            client: msg.client,
            channel: signal_channel(&msg.symbol, msg.interval),
            ack: protocol::text_frame(&ack),
        });
    }
}

impl Handler<BarEvents> for LiveStrategies {
    type Result = ();

    /// Feeds each closed bar to the strategies of its topic and publishes what they signal.
    fn handle(&mut self, msg: BarEvents, _: &mut Context<Self>) {
        let mut out = Vec::new();
        for update in msg.0.iter() {
            for r in self.running.values_mut() {
                if r.symbol == update.bar.symbol && r.spec.interval == update.bar.interval {
                    // The runner ignores forming bars and bars it has already seen (corrections).
                    if let Some(signal) = r.runner.on_bar(&update.bar) {
                        r.produced += 1;
                        out.push(signal);
                    }
                }
            }
        }
        for s in out {
            self.record(s, true);
        }
    }
}

#[cfg(test)]
mod tests;
