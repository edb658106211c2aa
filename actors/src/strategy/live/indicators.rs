//! The indicator service: one computation per (symbol, interval, indicator, parameters), however many
//! clients ask for it. A computation warms up over the symbol's history, then follows the hub's bar events:
//! closed bars update it, partial bars preview it. Values go out on a hub channel.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use super::indicator_channel;
use crate::aggregate::UpdateKind;
use crate::aggregator::GetBars;
use crate::hub::{ChannelSubscribers, Hub, PublishFrame, SubscribeActor, SubscribeChannel, UnsubscribeChannel};
use crate::market::Market;
use crate::messages::{BarEvents, ClientId, Topic};
use crate::model::{Bar, Interval, Symbol};
use crate::protocol::{self, HistoryQuery};
use crate::strategy::indicators::{build_indicator, indicator_catalog, AnyIndicator, IndicatorValue};
use crate::strategy::params::Params;

/// Subscribe a client to an indicator stream: history first, then live values.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
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
#[rtype(result = "Result<(), String>")]
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

/// Values kept per computation for late subscribers.
const KEPT_VALUES: usize = 5_000;
/// How often computations nobody watches are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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
        self.values.push_back((bar.open_time, value.clone()));
        if self.values.len() > KEPT_VALUES {
            self.values.pop_front();
        }
        Some(value)
    }

    fn frame(&self, kind: &str, data: Value, id: Option<&Value>) -> bytes::Bytes {
        let mut msg = json!({
            "type": kind,
            "symbol": &*self.symbol,
            "interval": self.interval,
            "indicator": self.name,
            "params": self.params,
            "data": data,
        });
        if let Some(id) = id {
            msg["id"] = id.clone();
        }
        protocol::text_frame(&msg)
    }
}

fn point(time: i64, closed: bool, value: &IndicatorValue) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("timestamp".into(), json!(time));
        m.insert("closed".into(), json!(closed));
    }
    v
}

/// See the module documentation.
pub struct IndicatorService {
    hub: Addr<Hub>,
    market: Market,
    computations: HashMap<Arc<str>, Computation>,
    by_topic: HashMap<Topic, Vec<Arc<str>>>,
}

impl IndicatorService {
    pub fn new(hub: Addr<Hub>, market: Market) -> IndicatorService {
        IndicatorService { hub, market, computations: HashMap::new(), by_topic: HashMap::new() }
    }

    /// Validates a request and returns its canonical parameters (defaults filled in).
    fn canonical(name: &str, params: &Value) -> Result<(&'static str, Value), String> {
        let info = indicator_catalog().iter().find(|i| i.name == name).ok_or_else(|| {
            let names: Vec<&str> = indicator_catalog().iter().map(|i| i.name).collect();
            format!("unknown indicator {name:?}; available: {}", names.join(", "))
        })?;
        let params = if params.is_null() { json!({}) } else { params.clone() };
        let parsed = Params::parse(info.params, &params).map_err(|e| e.to_string())?;
        Ok((info.name, Value::Object(parsed.to_json())))
    }
}

impl Actor for IndicatorService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.hub.do_send(SubscribeActor { recipient: ctx.address().recipient(), partials: true });
        ctx.run_interval(SWEEP_EVERY, |svc, ctx| {
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
    type Result = AtomicResponse<Self, Result<(), String>>;

    /// Starts the computation if it is new (warming it up over history, with no other message handled
    /// meanwhile), then subscribes the client with the history as its first frame.
    fn handle(&mut self, msg: SubscribeIndicator, _: &mut Context<Self>) -> Self::Result {
        let prepared = Self::canonical(&msg.indicator, &msg.params).and_then(|(name, params)| {
            let channel = indicator_channel(&msg.symbol, msg.interval, name, &params);
            let entry = self.market.get(&msg.symbol).ok_or_else(|| format!("unknown symbol {:?}", &*msg.symbol))?;
            Ok((name, params, channel, entry))
        });
        let (name, params, channel, entry) = match prepared {
            Ok(p) => p,
            Err(e) => return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e)))),
        };
        let warm_up = if self.computations.contains_key(&channel) {
            None
        } else {
            Some(entry.aggregator.send(GetBars(HistoryQuery::all(msg.interval))))
        };
        let fut = async move {
            match warm_up {
                Some(req) => req.await.map(Some).map_err(|_| "history is not available".to_owned()),
                None => Ok(None),
            }
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |bars, svc, _| {
            if let Some(bars) = bars? {
                let indicator = build_indicator(name, &params).map_err(|e| e.to_string())?;
                let mut c = Computation {
                    symbol: msg.symbol.clone(),
                    interval: msg.interval,
                    name,
                    params,
                    indicator,
                    values: VecDeque::new(),
                    last_closed: None,
                };
                for bar in bars.iter().filter(|b| b.closed) {
                    c.close(bar);
                }
                svc.by_topic.entry((msg.symbol.clone(), msg.interval)).or_default().push(channel.clone());
                svc.computations.insert(channel.clone(), c);
            }
            let c = svc.computations.get(&channel).ok_or("computation vanished")?;
            let skip = c.values.len().saturating_sub(msg.history);
            let history: Vec<Value> = c.values.iter().skip(skip).map(|(t, v)| point(*t, true, v)).collect();
            let first = c.frame("indicator_history", Value::Array(history), msg.id.as_ref());
            svc.hub.do_send(SubscribeChannel { client: msg.client, channel, first: Some(first) });
            Ok(())
        })))
    }
}

impl Handler<UnsubscribeIndicator> for IndicatorService {
    type Result = Result<(), String>;

    /// Removes the client from the stream's channel.
    fn handle(&mut self, msg: UnsubscribeIndicator, _: &mut Context<Self>) -> Self::Result {
        let (name, params) = Self::canonical(&msg.indicator, &msg.params)?;
        let channel = indicator_channel(&msg.symbol, msg.interval, name, &params);
        let mut ack = json!({ "type": "unsubscribed_indicator", "symbol": &*msg.symbol, "interval": msg.interval, "indicator": name, "params": params });
        if let Some(id) = msg.id {
            ack["id"] = id;
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
        for update in msg.0.iter() {
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
                    self.hub
                        .do_send(PublishFrame { channel: channel.clone(), frame: c.frame("indicator", data, None) });
                }
            }
        }
    }
}
