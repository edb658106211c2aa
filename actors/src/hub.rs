//! The subscription hub: topics → local subscribers. It knows nothing of sockets or other nodes.
//!
//! Each update is serialized and framed once; every subscriber gets a clone of the same `Bytes`.
//! Partial-bar updates are sent at most `max_updates_per_second` per topic (the newest state wins), in
//! send slots that each topic places at its own phase of the gap, so topics do not all fan out at once.
//! A topic's closed bar is never conflated and takes the topic's next slot too: every symbol's bar of an
//! interval closes in the same instant, and sending them all then was one burst to every client (the p99
//! of the fan-out benchmark); in its slot it waits less than one gap (100 ms at 10/s), as partials do.
//! Corrections, and closed bars put in place behind the newest one, are rare and go at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use serde::Deserialize;

use crate::aggregate::{BarUpdate, UpdateKind};
use crate::messages::{BarEvents, ClientId, Publish, Topic};
use crate::model::{Bar, Symbol};
use crate::outbox::{Outbox, PushError};
use crate::protocol::{self, PriceUpdate};
use crate::telemetry::{add, COUNTERS};

mod counters;
pub use counters::HubCounters;

/// A WebSocket client connected; the hub may push frames into its outbox.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub client: ClientId,
    pub outbox: Arc<Outbox>,
}

/// A client went away; forget its subscriptions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub client: ClientId,
}

/// Subscribe a client to topics. The hub queues `ack` first, then the newest bar of each topic, so the
/// client never sees an update before its acknowledgement nor waits for the next trade.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub client: ClientId,
    pub topics: Vec<Topic>,
    pub ack: Bytes,
}

/// [`Subscribe`] for a client that already holds a topic's bars up to the one opening at `from` (the
/// newest bar of the history it loaded): after `ack`, the hub queues the topic's bars that closed from
/// `from` on (at most the last [`RECENT_CLOSED`]) before its newest bar, so that a bar closing between
/// the history and the subscription is neither missed nor left in its unfinished state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeFrom {
    pub client: ClientId,
    pub topics: Vec<(Topic, Option<i64>)>,
    pub ack: Bytes,
}

/// Closed bars kept per topic for [`SubscribeFrom`]: the slack, in bars, between a client's history
/// and its subscription.
pub const RECENT_CLOSED: usize = 8;

/// Unsubscribe a client from topics, then queue `ack`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub client: ClientId,
    pub topics: Vec<Topic>,
    pub ack: Bytes,
}

/// Subscribe a client to a named channel (indicator values, strategy signals): queue `first` (for example
/// the channel's history), then every frame published on it. Sent by the actor that publishes on the
/// channel, so that nothing it publishes after `first` is missed or comes before it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeChannel {
    pub client: ClientId,
    pub channel: Arc<str>,
    pub first: Option<Bytes>,
}

/// Unsubscribe a client from a named channel, then queue `ack`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeChannel {
    pub client: ClientId,
    pub channel: Arc<str>,
    pub ack: Bytes,
}

/// A ready frame for every subscriber of a channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishFrame {
    pub channel: Arc<str>,
    pub frame: Bytes,
}

/// A ready frame for every client subscribed to any interval of `symbol` (script trade markers).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishToSymbol {
    pub symbol: Symbol,
    pub frame: Bytes,
}

/// How many clients a channel has (so publishers can stop work nobody watches).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ChannelSubscribers {
    pub channel: Arc<str>,
}

/// An actor (strategy, persistence, replication) that wants bar updates of every topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeActor {
    pub recipient: Recipient<BarEvents>,
    /// Also forward partial updates (at the topic rate); closed bars and corrections always go.
    pub partials: bool,
}

/// Clients and subscriptions of this hub.
#[derive(Message)]
#[rtype(result = "HubStats")]
pub struct GetHubStats;

/// See [`GetHubStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubStats {
    pub total_clients: usize,
    pub total_subscriptions: usize,
    /// Distinct clients subscribed to any interval of each symbol.
    pub trading_pair_subscribers: HashMap<Symbol, usize>,
}

/// Settings of the hub (`[hub]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// Partial-bar updates sent per topic per second at most.
    pub max_updates_per_second: u32,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings { max_updates_per_second: 10 }
    }
}

struct TopicState {
    subscribers: HashMap<ClientId, Arc<Outbox>>,
    latest: Option<Bar>,
    /// The last [`RECENT_CLOSED`] closed bars (as corrected), oldest first.
    recent_closed: std::collections::VecDeque<Bar>,
    /// This topic's send slots are `grid + k * gap`.
    grid: Instant,
    /// When the next partial may go out (none: at once).
    next_slot: Option<Instant>,
    /// `latest` holds a partial update not sent yet.
    pending: bool,
    /// The topic's newest closed bar, waiting for its slot; it goes before any partial of the next bar.
    pending_closed: Option<Bar>,
}

/// Where in the send gap the `n`-th topic's slots lie: the golden-ratio sequence spreads any number of
/// topics evenly over the gap. Without it every topic fed in lockstep (each symbol's 1s bar closes at the
/// same second) sent its partials in the same instant: one burst to every client, the others idle.
fn slot_phase(n: u64, gap: Duration) -> Duration {
    gap.mul_f64((n as f64 * 0.618_033_988_749_895).fract())
}

impl TopicState {
    fn new(grid: Instant) -> TopicState {
        TopicState {
            subscribers: HashMap::new(),
            latest: None,
            recent_closed: Default::default(),
            grid,
            next_slot: None,
            pending: false,
            pending_closed: None,
        }
    }

    /// Whether an update waits for this topic's next slot (the topic is then in `Hub::dirty`).
    fn waiting(&self) -> bool {
        self.pending || self.pending_closed.is_some()
    }

    /// Whether a partial update may go out now.
    fn due(&self, now: Instant) -> bool {
        self.next_slot.is_none_or(|slot| now >= slot)
    }

    /// Records an update (partial or closed bar) sent at `now`. Updates keep to the topic's grid of
    /// `gap`-long slots, one per slot and never closer than half a gap: a send a little late (the feed's
    /// tick jitter, a busy thread) does not push every later slot back, so a topic fed often enough gets
    /// its full rate and never more; a closed bar takes the slot of a partial.
    fn sent(&mut self, now: Instant, gap: Duration) {
        let earliest = now + gap / 2;
        let since = earliest.saturating_duration_since(self.grid).as_nanos();
        let gap_ns = gap.as_nanos().max(1);
        let slots = since.div_ceil(gap_ns);
        self.next_slot = Some(self.grid + gap * u32::try_from(slots).unwrap_or(u32::MAX));
    }

    fn remember_closed(&mut self, bar: &Bar) {
        if let Some(known) = self.recent_closed.iter_mut().find(|b| b.open_time == bar.open_time) {
            *known = bar.clone();
            return;
        }
        self.recent_closed.push_back(bar.clone());
        if self.recent_closed.len() > RECENT_CLOSED {
            self.recent_closed.pop_front();
        }
    }

    /// What a subscriber holding bars up to `from` needs: recent closed bars from there, then the newest.
    fn snapshot(&self, from: Option<i64>) -> Vec<&Bar> {
        let mut bars: Vec<&Bar> = match from {
            Some(from) => self.recent_closed.iter().filter(|b| b.open_time >= from).collect(),
            None => Vec::new(),
        };
        if let Some(latest) = &self.latest {
            if bars.last().is_none_or(|b| b.open_time < latest.open_time) {
                bars.push(latest);
            }
        }
        bars
    }
}

struct ClientEntry {
    outbox: Arc<Outbox>,
    topics: HashSet<Topic>,
    channels: HashSet<Arc<str>>,
    /// Topics held per symbol (any interval), for the per-symbol figure of [`HubCounters`].
    symbols: HashMap<Symbol, u32>,
}

impl ClientEntry {
    fn new(outbox: Arc<Outbox>) -> ClientEntry {
        ClientEntry { outbox, topics: HashSet::new(), channels: HashSet::new(), symbols: HashMap::new() }
    }

    /// Adds a topic and counts it; false when the client held it already.
    fn add_topic(&mut self, topic: Topic, counters: &HubCounters) -> bool {
        let symbol = topic.0.clone();
        if !self.topics.insert(topic) {
            return false;
        }
        counters.subscribed(1);
        let n = self.symbols.entry(symbol.clone()).or_default();
        *n += 1;
        if *n == 1 {
            counters.symbol_added(&symbol);
        }
        true
    }

    /// Removes a topic and uncounts it; false when the client did not hold it.
    fn remove_topic(&mut self, topic: &Topic, counters: &HubCounters) -> bool {
        if !self.topics.remove(topic) {
            return false;
        }
        counters.unsubscribed(1);
        if let Some(n) = self.symbols.get_mut(&topic.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.symbols.remove(&topic.0);
                counters.symbol_removed(&topic.0);
            }
        }
        true
    }
}

/// See the module documentation.
pub struct Hub {
    topics: HashMap<Topic, TopicState>,
    clients: HashMap<ClientId, ClientEntry>,
    actors: Vec<(Recipient<BarEvents>, bool)>,
    channels: HashMap<Arc<str>, HashMap<ClientId, Arc<Outbox>>>,
    min_gap: Duration,
    /// Topics with an update waiting for its slot (see [`TopicState::waiting`]), each once; an entry whose
    /// update went out some other way is dropped at the next flush.
    dirty: Vec<Topic>,
    /// Origin of every topic's send slots, and how many topics were created (see [`slot_phase`]).
    epoch: Instant,
    topics_created: u64,
    /// Clients and subscriptions, maintained as they change (see [`HubCounters`]).
    counters: Arc<HubCounters>,
}

impl Hub {
    pub fn new(settings: &HubSettings) -> Hub {
        let per_second = settings.max_updates_per_second.max(1);
        Hub {
            topics: HashMap::new(),
            clients: HashMap::new(),
            actors: Vec::new(),
            channels: HashMap::new(),
            min_gap: Duration::from_secs(1) / per_second,
            dirty: Vec::new(),
            epoch: Instant::now(),
            topics_created: 0,
            counters: HubCounters::new(),
        }
    }

    /// The figures `/api/stats` and `/metrics` read without messaging the hub.
    pub fn counters(&self) -> Arc<HubCounters> {
        self.counters.clone()
    }

    /// The figures of [`HubCounters`] counted from scratch by walking every client: what the counters
    /// must always equal (the tests check it).
    #[cfg(test)]
    fn recount(&self) -> HubStats {
        let mut stats = HubStats { total_clients: self.clients.len(), ..Default::default() };
        for entry in self.clients.values() {
            stats.total_subscriptions += entry.topics.len();
            let symbols: HashSet<&Symbol> = entry.topics.iter().map(|(s, _)| s).collect();
            for s in symbols {
                *stats.trading_pair_subscribers.entry(s.clone()).or_default() += 1;
            }
        }
        stats
    }

    /// Pushes one framed update to every subscriber of `topic`; drops subscribers that overflow.
    fn fan_out(&mut self, topic: &Topic, bar: &Bar, correction: bool) {
        let Some(state) = self.topics.get(topic) else { return };
        if state.subscribers.is_empty() {
            return;
        }
        let failed = deliver(&state.subscribers, &price_frame(bar, correction));
        self.drop_failed(failed);
    }

    /// Counts and forgets clients whose outbox refused a frame (overflowed, or already closing).
    fn drop_failed(&mut self, failed: Vec<(ClientId, PushError)>) {
        for (client, err) in failed {
            add(&COUNTERS.messages_dropped, 1);
            if err == PushError::Overflow {
                add(&COUNTERS.slow_client_disconnects, 1);
                // Also in the refusal family: the client's outbound queue budget refused it.
                crate::refusals::refused("outbound_queue");
                tracing::warn!(client, "closing slow client: outbound queue overflowed");
            }
            self.remove_client(client);
        }
    }

    /// Queues one frame for one client, dropping the client if it cannot take it.
    fn push_or_drop(&mut self, client: ClientId, outbox: &Outbox, frame: Bytes) {
        if let Err(e) = outbox.push(frame) {
            self.drop_failed(vec![(client, e)]);
        }
    }

    fn remove_client(&mut self, client: ClientId) {
        let Some(entry) = self.clients.remove(&client) else { return };
        self.counters.set_clients(self.clients.len());
        self.counters.unsubscribed(entry.topics.len());
        for symbol in entry.symbols.keys() {
            self.counters.symbol_removed(symbol);
        }
        for topic in &entry.topics {
            if let Some(state) = self.topics.get_mut(topic) {
                state.subscribers.remove(&client);
            }
        }
        for channel in &entry.channels {
            if let Some(subs) = self.channels.get_mut(channel) {
                subs.remove(&client);
                if subs.is_empty() {
                    self.channels.remove(channel);
                }
            }
        }
    }

    fn forward_to_actors(&mut self, updates: &[BarUpdate], partials_sent: &[BarUpdate]) {
        if self.actors.is_empty() {
            return;
        }
        let final_only: Arc<[BarUpdate]> = updates.iter().filter(|u| u.kind != UpdateKind::Partial).cloned().collect();
        let with_partials: Arc<[BarUpdate]> = final_only.iter().chain(partials_sent).cloned().collect();
        // do_send, not try_send: persistence must never miss a closed bar because its mailbox was full.
        self.actors.retain(|(recipient, partials)| {
            let events = if *partials { &with_partials } else { &final_only };
            if !events.is_empty() {
                recipient.do_send(BarEvents(events.clone()));
            }
            recipient.connected()
        });
    }

    /// Sends the pending closed bars and partial updates whose topic is due.
    fn flush_due(&mut self) -> Vec<BarUpdate> {
        let now = Instant::now();
        let mut sent = Vec::new();
        for topic in std::mem::take(&mut self.dirty) {
            let Some(state) = self.topics.get_mut(&topic) else { continue };
            if !state.waiting() {
                continue;
            }
            if !state.due(now) {
                self.dirty.push(topic);
                continue;
            }
            state.sent(now, self.min_gap);
            if let Some(closed) = state.pending_closed.take() {
                // The partial of the next bar, if any, waits for the next slot.
                if state.pending {
                    self.dirty.push(topic.clone());
                }
                self.fan_out(&topic, &closed, false);
                continue;
            }
            state.pending = false;
            if let Some(bar) = state.latest.clone() {
                self.fan_out(&topic, &bar, false);
                sent.push(BarUpdate { kind: UpdateKind::Partial, bar });
            }
        }
        sent
    }

    /// Sends `topic`'s closed bar now if it waits for its slot, ahead of what is queued next.
    fn flush_closed(&mut self, topic: &Topic) {
        if let Some(closed) = self.topics.get_mut(topic).and_then(|state| state.pending_closed.take()) {
            self.fan_out(topic, &closed, false);
        }
    }
}

/// Pushes one shared frame to every subscriber; returns those that refused it.
fn deliver(subscribers: &HashMap<ClientId, Arc<Outbox>>, frame: &Bytes) -> Vec<(ClientId, PushError)> {
    let failed: Vec<(ClientId, PushError)> = subscribers
        .iter()
        .filter_map(|(client, outbox)| outbox.push(frame.clone()).err().map(|e| (*client, e)))
        .collect();
    add(&COUNTERS.messages_sent, (subscribers.len() - failed.len()) as u64);
    failed
}

/// The state of a topic seen for the first time, its send slots placed by [`slot_phase`].
fn new_topic(created: &mut u64, epoch: Instant, gap: Duration) -> TopicState {
    let phase = slot_phase(*created, gap);
    *created += 1;
    TopicState::new(epoch + phase)
}

fn price_frame(bar: &Bar, correction: bool) -> Bytes {
    protocol::text_frame(&PriceUpdate {
        kind: "price_update",
        symbol: &bar.symbol,
        interval: bar.interval,
        data: bar.into(),
        correction,
        ts_sent: protocol::now_micros(),
    })
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A twentieth of the send gap: a pending update goes out within 5 ms of its slot (at 10/s).
        let tick = (self.min_gap / 20).max(Duration::from_millis(2));
        ctx.run_interval(tick, |hub, _| {
            let sent = hub.flush_due();
            if !sent.is_empty() {
                hub.forward_to_actors(&[], &sent);
            }
        });
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    /// Sends updates now if their topic is due, else in its next slot; corrections at once.
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut partials_sent = Vec::new();
        for update in &msg.updates {
            let topic: Topic = (update.bar.symbol.clone(), update.bar.interval);
            let state = self
                .topics
                .entry(topic.clone())
                .or_insert_with(|| new_topic(&mut self.topics_created, self.epoch, self.min_gap));
            match update.kind {
                UpdateKind::Partial => {
                    state.latest = Some(update.bar.clone());
                    if state.due(now) && state.pending_closed.is_none() {
                        state.pending = false;
                        state.sent(now, self.min_gap);
                        self.fan_out(&topic, &update.bar, false);
                        partials_sent.push(update.clone());
                    } else if state.pending {
                        add(&COUNTERS.updates_conflated, 1);
                    } else {
                        let listed = state.waiting();
                        state.pending = true;
                        if !listed {
                            self.dirty.push(topic);
                        }
                    }
                }
                // A bar put in place behind the newest one (a replica catching up after an outage, an upsert
                // of older bars): sent, but the topic's newest state and its pending partial stay.
                UpdateKind::Closed if state.latest.as_ref().is_some_and(|l| l.open_time > update.bar.open_time) => {
                    self.flush_closed(&topic);
                    self.fan_out(&topic, &update.bar, false);
                }
                UpdateKind::Closed => {
                    let listed = state.waiting();
                    // The pending partial of this bar is superseded by its final state.
                    if state.pending {
                        state.pending = false;
                        add(&COUNTERS.updates_conflated, 1);
                    }
                    state.remember_closed(&update.bar);
                    state.latest = Some(update.bar.clone());
                    // Only when a slot is longer than the bar (one update a second, 1s bars) can a closed bar
                    // still be waiting: it goes now, never dropped.
                    let earlier = state.pending_closed.take();
                    let due = state.due(now);
                    if due {
                        state.sent(now, self.min_gap);
                    } else {
                        state.pending_closed = Some(update.bar.clone());
                        if !listed {
                            self.dirty.push(topic.clone());
                        }
                    }
                    if let Some(earlier) = earlier {
                        self.fan_out(&topic, &earlier, false);
                    }
                    if due {
                        self.fan_out(&topic, &update.bar, false);
                    }
                }
                // A correction revises an older bar: the topic's newest state and its rate are untouched.
                // One that revises the closed bar still waiting for its slot replaces it: clients never saw it.
                UpdateKind::Correction => {
                    state.remember_closed(&update.bar);
                    match &mut state.pending_closed {
                        Some(waiting) if waiting.open_time == update.bar.open_time => *waiting = update.bar.clone(),
                        _ => self.fan_out(&topic, &update.bar, true),
                    }
                }
            }
        }
        self.forward_to_actors(&msg.updates, &partials_sent);
    }
}

impl Handler<Connect> for Hub {
    type Result = ();

    /// Registers a client with no subscriptions.
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        self.connect(msg.client, msg.outbox);
    }
}

impl Handler<Disconnect> for Hub {
    type Result = ();

    /// Forgets a client and all its subscriptions.
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.remove_client(msg.client);
    }
}

impl Handler<Subscribe> for Hub {
    type Result = ();

    /// Adds topics to a client, then queues the ack and each topic's newest bar.
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribe(msg.client, msg.topics.into_iter().map(|t| (t, None)), msg.ack);
    }
}

impl Handler<SubscribeFrom> for Hub {
    type Result = ();

    /// Adds topics to a client, then queues the ack, the bars closed since the client's history, and the newest.
    fn handle(&mut self, msg: SubscribeFrom, _: &mut Context<Self>) {
        self.subscribe(msg.client, msg.topics.into_iter(), msg.ack);
    }
}

impl Hub {
    fn connect(&mut self, client: ClientId, outbox: Arc<Outbox>) {
        // Ids are never reused; were one connected twice, its first entry is forgotten properly.
        self.remove_client(client);
        self.clients.insert(client, ClientEntry::new(outbox));
        self.counters.set_clients(self.clients.len());
    }

    fn unsubscribe(&mut self, client: ClientId, topics: &[Topic], ack: Bytes) {
        let Some(entry) = self.clients.get_mut(&client) else { return };
        for topic in topics {
            if entry.remove_topic(topic, &self.counters) {
                if let Some(state) = self.topics.get_mut(topic) {
                    state.subscribers.remove(&client);
                }
            }
        }
        let outbox = entry.outbox.clone();
        self.push_or_drop(client, &outbox, ack);
    }

    fn subscribe(&mut self, client: ClientId, topics: impl Iterator<Item = (Topic, Option<i64>)>, ack: Bytes) {
        let topics: Vec<(Topic, Option<i64>)> = topics.collect();
        // A closed bar waiting for its slot is in the snapshot: send it to the others first, or the new
        // subscriber would get it twice, the second time after the newer bar.
        for (topic, _) in &topics {
            self.flush_closed(topic);
        }
        let Some(entry) = self.clients.get_mut(&client) else { return };
        let outbox = entry.outbox.clone();
        let mut snapshots = Vec::new();
        for (topic, from) in topics {
            let state = self
                .topics
                .entry(topic.clone())
                .or_insert_with(|| new_topic(&mut self.topics_created, self.epoch, self.min_gap));
            snapshots.extend(state.snapshot(from).into_iter().map(|bar| price_frame(bar, false)));
            state.subscribers.insert(client, outbox.clone());
            entry.add_topic(topic, &self.counters);
        }
        if let Err(e) = std::iter::once(ack).chain(snapshots).try_for_each(|f| outbox.push(f)) {
            self.drop_failed(vec![(client, e)]);
        }
    }
}

impl Handler<Unsubscribe> for Hub {
    type Result = ();

    /// Removes topics from a client, then queues the ack.
    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        self.unsubscribe(msg.client, &msg.topics, msg.ack);
    }
}

impl Handler<SubscribeChannel> for Hub {
    type Result = ();

    /// Queues the first frame, then adds the client to the channel.
    fn handle(&mut self, msg: SubscribeChannel, _: &mut Context<Self>) {
        let Some(entry) = self.clients.get_mut(&msg.client) else { return };
        let outbox = entry.outbox.clone();
        entry.channels.insert(msg.channel.clone());
        self.channels.entry(msg.channel).or_default().insert(msg.client, outbox.clone());
        if let Some(first) = msg.first {
            self.push_or_drop(msg.client, &outbox, first);
        }
    }
}

impl Handler<UnsubscribeChannel> for Hub {
    type Result = ();

    /// Removes the client from the channel, then queues the ack.
    fn handle(&mut self, msg: UnsubscribeChannel, _: &mut Context<Self>) {
        let Some(entry) = self.clients.get_mut(&msg.client) else { return };
        entry.channels.remove(&msg.channel);
        let outbox = entry.outbox.clone();
        if let Some(subs) = self.channels.get_mut(&msg.channel) {
            subs.remove(&msg.client);
            if subs.is_empty() {
                self.channels.remove(&msg.channel);
            }
        }
        self.push_or_drop(msg.client, &outbox, msg.ack);
    }
}

impl Handler<PublishFrame> for Hub {
    type Result = ();

    /// Pushes the frame to every subscriber of the channel; drops subscribers that overflow.
    fn handle(&mut self, msg: PublishFrame, _: &mut Context<Self>) {
        let Some(subs) = self.channels.get(&msg.channel) else { return };
        let failed = deliver(subs, &msg.frame);
        self.drop_failed(failed);
    }
}

impl Handler<PublishToSymbol> for Hub {
    type Result = ();

    /// Pushes the frame to every client holding a topic of the symbol, once each. O(clients): markers
    /// are rare next to bar updates.
    fn handle(&mut self, msg: PublishToSymbol, _: &mut Context<Self>) {
        let subscribers: HashMap<ClientId, Arc<Outbox>> = self
            .clients
            .iter()
            .filter(|(_, entry)| entry.symbols.contains_key(&msg.symbol))
            .map(|(client, entry)| (*client, entry.outbox.clone()))
            .collect();
        let failed = deliver(&subscribers, &msg.frame);
        self.drop_failed(failed);
    }
}

impl Handler<ChannelSubscribers> for Hub {
    type Result = usize;

    /// How many clients a channel has.
    fn handle(&mut self, msg: ChannelSubscribers, _: &mut Context<Self>) -> usize {
        self.channels.get(&msg.channel).map_or(0, HashMap::len)
    }
}

impl Handler<SubscribeActor> for Hub {
    type Result = ();

    /// Adds an actor that receives bar updates of every topic.
    fn handle(&mut self, msg: SubscribeActor, _: &mut Context<Self>) {
        self.actors.push((msg.recipient, msg.partials));
    }
}

impl Handler<GetHubStats> for Hub {
    type Result = MessageResult<GetHubStats>;

    /// Clients, subscriptions and distinct clients per symbol, from the counters: O(symbols). Readers
    /// that hold [`Hub::counters`] need not ask.
    fn handle(&mut self, _: GetHubStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.counters.snapshot())
    }
}

#[cfg(test)]
mod tests;
