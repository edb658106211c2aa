//! The subscription hub: topics → local subscribers. It knows nothing of sockets or other nodes.
//!
//! Each update is serialized and framed once per send; every subscriber it goes to gets a clone of the
//! same `Bytes` (clients that negotiated permessage-deflate share one compressed form, made on first need:
//! `deflate::SharedFrame`). Partial-bar updates are sent at most `max_updates_per_second` per topic and client (the
//! newest state wins), in send slots. Clients, not topics, are spread over the gap: each client has a
//! phase (one of `gap / flush_window` phases, round robin), and every topic keeps one send slot per phase,
//! on that phase's grid. So all the topics of a dashboard fall due in the same flush, and everything due to
//! a client in one handler or flush leaves as one outbox entry — one buffer of consecutive frames, one
//! socket write (see [`staging`]) — while the clients' writes stay spread over the gap.
//! A topic's closed bar is never conflated and takes the next slot of each phase too: every symbol's bar of
//! an interval closes in the same instant, and sending them all then was one burst to every client (the
//! p99 of the fan-out benchmark); in its slot it waits less than one gap (100 ms at 10/s), as partials do.
//! Corrections, and closed bars put in place behind the newest one, are rare and go at once.
//!
//! Slots are timed on tokio's clock (`tokio::time::Instant`), not std's: the hub runs on tokio (actix), and its
//! tests pause and advance that clock (`tokio::time::pause`) instead of waiting for real send slots.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

use crate::bars::{BarUpdate, UpdateKind};
use crate::deflate::{compress_small_frame, SharedFrame};
use crate::messages::{BarEvents, ClientId, Publish, Topic};
use crate::model::{Bar, Symbol};
use crate::outbox::{Outbox, PushError};
use crate::protocol::{self, PriceUpdate};
use crate::telemetry::{add, COUNTERS};

mod counters;
mod staging;
mod topics;
pub use counters::HubCounters;
use staging::Staging;
use topics::{Grid, Topics};

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

/// Ready frames, each for every subscriber of its channel: what one batch of bar events produced (one
/// message, so the hub wakes once for a batch, not once per indicator computation).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishFrames(pub Vec<(Arc<str>, Bytes)>);

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
    /// Clients are spread over send phases this far apart (`1 s / max_updates_per_second / flush_window_ms`
    /// phases, at least one); every topic of a client falls due at its client's phase, so what is due to
    /// it leaves in one write. Smaller: clients' writes spread more evenly over the gap, more slots to track.
    #[serde(default = "default_flush_window_ms")]
    pub flush_window_ms: u64,
}

fn default_flush_window_ms() -> u64 {
    10
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings { max_updates_per_second: 10, flush_window_ms: default_flush_window_ms() }
    }
}

impl HubSettings {
    /// Send phases per gap: how many groups the clients are spread over.
    fn phases(&self, gap: Duration) -> usize {
        let window = Duration::from_millis(self.flush_window_ms.max(1));
        usize::try_from(gap.as_nanos() / window.as_nanos()).unwrap_or(1).clamp(1, MAX_PHASES)
    }
}

/// Send phases at most: each is a slot per topic to track.
const MAX_PHASES: usize = 100;

struct TopicState {
    latest: Option<Bar>,
    /// The last [`RECENT_CLOSED`] closed bars (as corrected), oldest first.
    recent_closed: std::collections::VecDeque<Bar>,
    /// One per client phase: the topic's subscribers in that phase and their send slot. Phase 0 always
    /// (it keeps the pace of the actors' partials), the others from their first subscriber on: a slot
    /// nobody was ever in costs neither memory nor a look at each update (10 phases of 160,000 topics at
    /// 10,000 idle symbols were ~270 MB, and ten cache lines per update).
    slots: Vec<Slot>,
}

/// A topic's send slot for the clients of one phase.
struct Slot {
    subscribers: HashMap<ClientId, Arc<Outbox>>,
    /// The send slots are `grid + k * gap`; every topic's slot of one phase has the same grid.
    grid: Instant,
    /// When the next partial may go out (none: at once).
    next_slot: Option<Instant>,
    /// `latest` holds a partial update not sent to these subscribers yet.
    pending: bool,
    /// The topic's newest closed bar, waiting for this slot; it goes before any partial of the next bar.
    pending_closed: Option<Bar>,
}

/// Where in the send gap phase `n` of `phases` lies: evenly spread. Without a spread every topic fed in
/// lockstep (each symbol's 1s bar closes at the same second) sent to every client in the same instant.
fn slot_phase(n: usize, phases: usize, gap: Duration) -> Duration {
    gap.mul_f64(n as f64 / phases.max(1) as f64)
}

impl TopicState {
    fn new(grid: &Grid) -> TopicState {
        TopicState { latest: None, recent_closed: Default::default(), slots: vec![grid.slot(0)] }
    }

    /// The slot of `phase`, made (with those before it) on first use.
    fn slot_mut(&mut self, phase: usize, grid: &Grid) -> &mut Slot {
        while self.slots.len() <= phase {
            self.slots.push(grid.slot(self.slots.len()));
        }
        &mut self.slots[phase]
    }

    /// Stages one framed update for every subscriber (see [`Hub::commit`]).
    fn fan_out(&self, staged: &mut Staging, bar: &Bar, correction: bool) {
        let all: Vec<usize> = (0..self.slots.len()).collect();
        stage_phases(staged, self, &all, bar, correction);
    }

    /// Stages the closed bar now wherever it waits for its slot, ahead of what is staged next.
    fn flush_closed(&mut self, staged: &mut Staging) {
        for phase in 0..self.slots.len() {
            if let Some(closed) = self.slots[phase].pending_closed.take() {
                stage_phases(staged, self, &[phase], &closed, false);
            }
        }
    }
}

impl Slot {
    fn new(grid: Instant) -> Slot {
        Slot { subscribers: HashMap::new(), grid, next_slot: None, pending: false, pending_closed: None }
    }

    /// Whether this slot tracks updates: phase 0 always (the actors' partials keep its pace), the others
    /// while they have subscribers (a phase nobody is in costs nothing per update).
    fn tracked(&self, phase: usize) -> bool {
        phase == 0 || !self.subscribers.is_empty()
    }

    /// Whether an update waits for this slot (the topic and phase are then in `Hub::dirty`).
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
}

impl TopicState {
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
    /// The client's send phase: the index of its slot in every topic.
    phase: usize,
    topics: HashSet<Topic>,
    channels: HashSet<Arc<str>>,
    /// Topics held per symbol (any interval), for the per-symbol figure of [`HubCounters`].
    symbols: HashMap<Symbol, u32>,
}

impl ClientEntry {
    fn new(outbox: Arc<Outbox>, phase: usize) -> ClientEntry {
        ClientEntry { outbox, phase, topics: HashSet::new(), channels: HashSet::new(), symbols: HashMap::new() }
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
    /// By symbol, then interval: a [`Publish`] looks a symbol up once for the run of its updates (a trade's
    /// 16 partials, the closes), not once per update (see [`topics`]).
    topics: Topics,
    clients: HashMap<ClientId, ClientEntry>,
    actors: Vec<(Recipient<BarEvents>, bool)>,
    channels: HashMap<Arc<str>, HashMap<ClientId, Arc<Outbox>>>,
    min_gap: Duration,
    /// Topics and phases with an update waiting for its slot (see [`Slot::waiting`]), each once; an entry
    /// whose update went out some other way is dropped at the next flush.
    dirty: Vec<(Topic, usize)>,
    /// No entry of `dirty` is due before this (the earliest slot noted as they were listed; a slot's time
    /// does not move while it is listed): the flush timer looks through them only then. Walking 10,000
    /// symbols' waiting partials every 5 ms cost the idle hub a tenth of a core.
    dirty_due: Instant,
    /// The number of phases (as in the topics' [`Grid`]) and the clients connected so far (the next one's
    /// phase).
    phases: usize,
    connected: usize,
    /// Frames owed to clients in the current handler or flush, written once at its end.
    staged: Staging,
    /// The phases an update goes to at once, reused: not an allocation per update.
    now_phases: Vec<usize>,
    /// Clients and subscriptions, maintained as they change (see [`HubCounters`]).
    counters: Arc<HubCounters>,
}

impl Hub {
    pub fn new(settings: &HubSettings) -> Hub {
        let per_second = settings.max_updates_per_second.max(1);
        let min_gap = Duration::from_secs(1) / per_second;
        let (epoch, phases) = (Instant::now(), settings.phases(min_gap));
        Hub {
            topics: Topics::new(Grid { epoch, gap: min_gap, phases }),
            clients: HashMap::new(),
            actors: Vec::new(),
            channels: HashMap::new(),
            min_gap,
            dirty: Vec::new(),
            dirty_due: Instant::now(),
            phases,
            connected: 0,
            staged: Staging::default(),
            now_phases: Vec::new(),
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

    /// Writes what was staged, one outbox entry per client; drops clients whose outbox refused it.
    fn commit(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let failed = self.staged.commit();
        self.drop_failed(failed);
    }

    /// Counts and forgets clients whose outbox refused a frame (overflowed, or already closing).
    fn drop_failed(&mut self, failed: Vec<(ClientId, PushError)>) {
        for (client, err) in failed {
            add(&COUNTERS.messages_dropped, 1);
            if err == PushError::Overflow {
                crate::outbox::slow_client_closed(&COUNTERS.slow_client_disconnects, "hub", &client);
            }
            self.remove_client(client);
        }
    }

    /// Queues one frame for one client, dropping the client if it cannot take it.
    fn push_or_drop(&mut self, client: ClientId, outbox: &Outbox, frame: Bytes) {
        // Large first frames (an indicator's history) go plain: not compressed on the fan-out thread.
        let frame = if outbox.deflate() { compress_small_frame(&frame) } else { frame };
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
            if let Some(slot) = self.topics.get_mut(topic).and_then(|state| state.slots.get_mut(entry.phase)) {
                slot.subscribers.remove(&client);
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

    fn forward_to_actors(&mut self, updates: &[BarUpdate], partials_sent: Vec<BarUpdate>) {
        if self.actors.is_empty() {
            return;
        }
        let final_only: Arc<[BarUpdate]> = updates.iter().filter(|u| u.kind != UpdateKind::Partial).cloned().collect();
        // The partials moved, not cloned again: a trade's 16 of them at every symbol.
        let with_partials: Arc<[BarUpdate]> = if partials_sent.is_empty() {
            final_only.clone()
        } else {
            final_only.iter().cloned().chain(partials_sent).collect()
        };
        // do_send, not try_send: persistence must never miss a closed bar because its mailbox was full.
        self.actors.retain(|(recipient, partials)| {
            let events = if *partials { &with_partials } else { &final_only };
            if !events.is_empty() {
                recipient.do_send(BarEvents(events.clone()));
            }
            recipient.connected()
        });
    }

    /// Stages the pending closed bars and partial updates whose slot is due (the caller commits).
    fn flush_due(&mut self, now: Instant) -> Vec<BarUpdate> {
        let mut sent = Vec::new();
        if now < self.dirty_due {
            return sent;
        }
        // Recomputed from what stays listed; `now + gap`: nothing can be due later than a gap from now.
        self.dirty_due = now + self.min_gap;
        for (topic, phase) in std::mem::take(&mut self.dirty) {
            let Some(state) = self.topics.get_mut(&topic) else { continue };
            let Some(slot) = state.slots.get_mut(phase) else { continue };
            if !slot.waiting() {
                continue;
            }
            if !slot.due(now) {
                self.dirty.push((topic, phase));
                listed_due(&mut self.dirty_due, slot, now);
                continue;
            }
            slot.sent(now, self.min_gap);
            if let Some(closed) = slot.pending_closed.take() {
                // The partial of the next bar, if any, waits for the next slot.
                if slot.pending {
                    self.dirty.push((topic, phase));
                    listed_due(&mut self.dirty_due, slot, now);
                }
                stage_phases(&mut self.staged, state, &[phase], &closed, false);
                continue;
            }
            slot.pending = false;
            if let Some(bar) = state.latest.clone() {
                stage_phases(&mut self.staged, state, &[phase], &bar, false);
                // Phase 0 keeps the topic's pace for the actors that take partials.
                if phase == 0 {
                    sent.push(BarUpdate { kind: UpdateKind::Partial, bar });
                }
            }
        }
        sent
    }

    /// Stages `topic`'s closed bar now wherever it waits for its slot, ahead of what is staged next.
    fn flush_closed(&mut self, topic: &Topic) {
        if let Some(state) = self.topics.get_mut(topic) {
            state.flush_closed(&mut self.staged);
        }
    }

    /// Handles a [`Publish`] at `now`: stages what is due and marks the rest for its slot (the caller
    /// commits). Returns the partial updates sent at the topic's pace (for the actors).
    fn publish(&mut self, updates: &[BarUpdate], now: Instant) -> Vec<BarUpdate> {
        let mut partials_sent = Vec::new();
        let Hub { topics, dirty, dirty_due, staged, now_phases, .. } = self;
        let grid = topics.grid();
        let mut waits = Waits { dirty, dirty_due, now };
        // An aggregator's updates come in one piece (see `PublishBatch`): its symbol is looked up once for
        // them. A symbol may come back later in the batch (its next turn): another run, another lookup.
        for run in updates.chunk_by(|a, b| a.bar.symbol == b.bar.symbol) {
            let symbol = &run[0].bar.symbol;
            let symbol_topics = topics.symbol(symbol);
            for update in run {
                let state = symbol_topics.entry(update.bar.interval, &grid);
                let topic = || (symbol.clone(), update.bar.interval);
                if publish_one(state, update, &grid, &mut waits, topic, staged, now_phases) {
                    partials_sent.push(update.clone());
                }
            }
        }
        partials_sent
    }
}

/// Where [`publish_one`] lists the topics and phases it leaves waiting for their slot (`Hub::dirty`).
struct Waits<'a> {
    dirty: &'a mut Vec<(Topic, usize)>,
    dirty_due: &'a mut Instant,
    now: Instant,
}

impl Waits<'_> {
    /// Lists a slot that was not waiting before.
    fn list(&mut self, topic: Topic, phase: usize, slot: &Slot) {
        self.dirty.push((topic, phase));
        listed_due(self.dirty_due, slot, self.now);
    }
}

/// One update of a topic (see [`Hub::publish`]): stages it for the phases whose slot is due and marks the
/// others. `topic` names it, made only when a slot is listed. True when phase 0 sent a partial (the pace of
/// the actors' partials).
fn publish_one(
    state: &mut TopicState,
    update: &BarUpdate,
    grid: &Grid,
    waits: &mut Waits,
    topic: impl Fn() -> Topic,
    staged: &mut Staging,
    now_phases: &mut Vec<usize>,
) -> bool {
    let (gap, now) = (grid.gap, waits.now);
    now_phases.clear();
    match update.kind {
        UpdateKind::Partial => {
            state.latest = Some(update.bar.clone());
            let mut conflated = false;
            for (phase, slot) in state.slots.iter_mut().enumerate().filter(|(n, s)| s.tracked(*n)) {
                // Only an idle slot sends at once: one already waiting goes with the next flush,
                // together with the client's other topics due then (one write, not one each).
                if slot.due(now) && !slot.waiting() {
                    slot.pending = false;
                    slot.sent(now, gap);
                    now_phases.push(phase);
                } else if slot.pending {
                    conflated = true;
                } else {
                    let listed = slot.waiting();
                    slot.pending = true;
                    if !listed {
                        waits.list(topic(), phase, slot);
                    }
                }
            }
            if conflated {
                add(&COUNTERS.updates_conflated, 1);
            }
            stage_phases(staged, state, now_phases, &update.bar, false);
            return now_phases.first() == Some(&0);
        }
        // A bar put in place behind the newest one (a replica catching up after an outage, an upsert
        // of older bars): sent, but the topic's newest state and its pending partials stay.
        UpdateKind::Closed if state.latest.as_ref().is_some_and(|l| l.open_time > update.bar.open_time) => {
            state.flush_closed(staged);
            state.fan_out(staged, &update.bar, false);
        }
        UpdateKind::Closed => {
            state.remember_closed(&update.bar);
            state.latest = Some(update.bar.clone());
            let mut earlier = Vec::new();
            let mut conflated = false;
            for (phase, slot) in state.slots.iter_mut().enumerate().filter(|(n, s)| s.tracked(*n)) {
                let listed = slot.waiting();
                // The pending partial of this bar is superseded by its final state.
                if slot.pending {
                    slot.pending = false;
                    conflated = true;
                }
                // Only when a slot is longer than the bar (one update a second, 1s bars) can a closed
                // bar still be waiting: it goes now, never dropped.
                if let Some(bar) = slot.pending_closed.take() {
                    earlier.push((phase, bar));
                }
                if slot.due(now) && !listed {
                    slot.sent(now, gap);
                    now_phases.push(phase);
                } else {
                    slot.pending_closed = Some(update.bar.clone());
                    if !listed {
                        waits.list(topic(), phase, slot);
                    }
                }
            }
            if conflated {
                add(&COUNTERS.updates_conflated, 1);
            }
            for (phase, bar) in earlier {
                stage_phases(staged, state, &[phase], &bar, false);
            }
            stage_phases(staged, state, now_phases, &update.bar, false);
        }
        // A correction revises an older bar: the topic's newest state and its rate are untouched.
        // One that revises the closed bar still waiting for a slot replaces it there: those clients
        // never saw it.
        UpdateKind::Correction => {
            state.remember_closed(&update.bar);
            for (phase, slot) in state.slots.iter_mut().enumerate() {
                match &mut slot.pending_closed {
                    Some(waiting) if waiting.open_time == update.bar.open_time => *waiting = update.bar.clone(),
                    _ => now_phases.push(phase),
                }
            }
            stage_phases(staged, state, now_phases, &update.bar, true);
        }
    }
    false
}

/// Lowers `dirty_due` to when `slot`, just listed in `Hub::dirty`, is due (`now` if it has no slot time).
fn listed_due(dirty_due: &mut Instant, slot: &Slot, now: Instant) {
    *dirty_due = (*dirty_due).min(slot.next_slot.unwrap_or(now));
}

/// Stages one frame of `bar` for the subscribers of `phases` of a topic; serialized only if anyone gets it.
fn stage_phases(staged: &mut Staging, state: &TopicState, phases: &[usize], bar: &Bar, correction: bool) {
    let mut frame = None;
    for slot in phases.iter().filter_map(|&n| state.slots.get(n)).filter(|s| !s.subscribers.is_empty()) {
        let frame = frame.get_or_insert_with(|| SharedFrame::new(price_frame(bar, correction)));
        staged.stage(&slot.subscribers, frame);
    }
}

/// Pushes one shared frame to every subscriber (compressed once for those that negotiated deflate);
/// returns those that refused it.
fn deliver(subscribers: &HashMap<ClientId, Arc<Outbox>>, frame: &Bytes) -> Vec<(ClientId, PushError)> {
    let frame = SharedFrame::new(frame.clone());
    let failed: Vec<(ClientId, PushError)> = subscribers
        .iter()
        .filter_map(|(client, outbox)| outbox.push(frame.for_client(outbox.deflate())).err().map(|e| (*client, e)))
        .collect();
    add(&COUNTERS.messages_sent, (subscribers.len() - failed.len()) as u64);
    failed
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
            let sent = hub.flush_due(Instant::now());
            hub.commit();
            if !sent.is_empty() {
                hub.forward_to_actors(&[], sent);
            }
        });
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    /// Sends updates now if their slot is due, else in its next slot; corrections at once.
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let partials_sent = self.publish(&msg.updates, Instant::now());
        self.commit();
        self.forward_to_actors(&msg.updates, partials_sent);
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
        let phase = self.connected % self.phases;
        self.connected = self.connected.wrapping_add(1);
        self.clients.insert(client, ClientEntry::new(outbox, phase));
        self.counters.set_clients(self.clients.len());
    }

    fn unsubscribe(&mut self, client: ClientId, topics: &[Topic], ack: Bytes) {
        let Some(entry) = self.clients.get_mut(&client) else { return };
        for topic in topics {
            if entry.remove_topic(topic, &self.counters) {
                if let Some(slot) = self.topics.get_mut(topic).and_then(|state| state.slots.get_mut(entry.phase)) {
                    slot.subscribers.remove(&client);
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
        self.commit();
        let Some(entry) = self.clients.get_mut(&client) else { return };
        let outbox = entry.outbox.clone();
        let grid = self.topics.grid();
        // The ack and the snapshots leave in one write too.
        let one = [(&client, &outbox)];
        self.staged.stage(one, &SharedFrame::new(ack));
        for (topic, from) in topics {
            let state = self.topics.entry(&topic);
            for bar in state.snapshot(from) {
                self.staged.stage(one, &SharedFrame::new(price_frame(bar, false)));
            }
            state.slot_mut(entry.phase, &grid).subscribers.insert(client, outbox.clone());
            entry.add_topic(topic, &self.counters);
        }
        self.commit();
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

impl Handler<PublishFrames> for Hub {
    type Result = ();

    /// As [`PublishFrame`], for each frame in order.
    fn handle(&mut self, msg: PublishFrames, _: &mut Context<Self>) {
        for (channel, frame) in msg.0 {
            let Some(subs) = self.channels.get(&channel) else { continue };
            let failed = deliver(subs, &frame);
            self.drop_failed(failed);
        }
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
