//! A WebSocket client's session: the only module that uses actix-web-actors (deprecated upstream; keep it
//! swappable for actix-ws).
//!
//! Reading: actix-web-actors decodes client frames into `StreamHandler` calls on [`WsSession`].
//! Writing: nothing is written through the actor context. Every outgoing frame — the hub's shared
//! updates and the session's own replies — goes through the client's [`Outbox`], which is bounded in
//! bytes; [`SessionBody`] streams the outbox to the socket while it drives the actor (`super::body`).
//!
//! permessage-deflate (`[ws] permessage_deflate`, RFC 7692): negotiated at the handshake
//! ([`super::extension`]); the client's outbox is then marked for it, so the hub queues its updates'
//! shared compressed form and the session compresses its own replies (history replies on the history
//! thread); the client's compressed messages are inflated before the codec ([`super::inflate`]).

use candlecast_actors::model::Symbol;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::ws::{Codec, Item};
use actix_web::http::header;
use actix_web::{web, Error, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use bytes::Bytes;
use candlecast_actors::deflate::compress_frame;
use candlecast_actors::hub::{Connect, Disconnect, Hub, SubscribeFrom, Unsubscribe};
use candlecast_actors::market::{Market, SymbolEntry};
use candlecast_actors::messages::{ClientId, Topic};
use candlecast_actors::outbox::{slow_client_closed, CloseReason, Outbox, PushError};
use candlecast_actors::persist::History;
use candlecast_actors::protocol::{
    self, frame, ErrorCode, ErrorMessage, Historical, HistoricalRequest, HistoryQuery, IndicatorRequest,
    SignalsRequest, TopicsAck, TopicsRequest,
};
use candlecast_actors::refusals::refused;
use candlecast_actors::strategy::indicator_channel;
use candlecast_actors::strategy::{IndicatorService, SubscribeIndicator, UnsubscribeIndicator};
use candlecast_actors::strategy::{LiveStrategies, SubscribeSignals, UnsubscribeSignals};
use candlecast_actors::telemetry::{add, COUNTERS};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::admission::{Admission, Permit};
use super::body::{Driver, SessionBody};
use super::extension;
use super::inflate::InflatingPayload;
use super::rate_limits::{ErrorWindow, TokenBucket};
use super::request::{decode, Request};
use super::topics::{self, TopicError, TopicLimitError, TopicList, UnknownSymbols};
use crate::config::WsConfig;
use crate::http::history_reads::HistoryReads;
use crate::AppState;

/// Frames above `max_frame_bytes` are answered with an error and the connection stays usable; frames
/// above this multiple of it are a protocol violation that closes the connection ([`CloseReason::FrameTooLarge`]).
const HARD_FRAME_FACTOR: usize = 16;
/// The window over which error replies are counted.
const ERROR_WINDOW: Duration = Duration::from_secs(10);
/// History requests waiting for room in the outbox; more are refused (rate_limited).
const MAX_WAITING_REQUESTS: usize = 16;
/// How often a session with waiting requests checks whether its outbox has drained.
const RETRY_EVERY: Duration = Duration::from_millis(20);
/// Indicator values sent as history when the client does not say, and at most.
const DEFAULT_INDICATOR_HISTORY: usize = 500;
const MAX_INDICATOR_HISTORY: usize = 5_000;

/// The actors a session reaches besides the hub.
#[derive(Clone)]
pub struct Services {
    pub hub: Addr<Hub>,
    pub market: Market,
    pub indicators: Addr<IndicatorService>,
    pub strategies: Addr<LiveStrategies>,
    /// Stored and in-memory history.
    pub history: History,
    /// Who may connect, and the per-host and total budgets of connections and indicator streams.
    pub admission: Arc<Admission>,
    /// Where history reads run, and their per-host and total budgets (shared with `GET /api/historical`).
    pub history_reads: Arc<HistoryReads>,
}

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// See the module documentation.
pub struct WsSession {
    id: ClientId,
    /// The peer's address: its host's history budget.
    peer: Option<IpAddr>,
    outbox: Arc<Outbox>,
    hub: Addr<Hub>,
    market: Market,
    services: Services,
    limits: Arc<WsConfig>,
    topics: HashSet<Topic>,
    /// Indicator and signal streams, by the request that opened them; they count as topics.
    streams: HashSet<String>,
    /// The connection's place in the per-host and total budgets, and its indicator streams' places.
    permit: Permit,
    last_heard: Instant,
    bucket: TokenBucket,
    errors: ErrorWindow,
    /// A fragmented text message being reassembled; `None` inside it once it grew too large.
    fragment: Option<Option<Vec<u8>>>,
    /// History requests are answered one at a time, and only while the outbox is less than half full:
    /// a client asking for much history gets it as fast as it reads, and is never closed as slow for it.
    waiting: VecDeque<(SymbolEntry, HistoryQuery, Option<i64>, Option<Value>)>,
    /// Per topic, the open time of the newest bar of the last history sent: a later subscribe to that
    /// topic starts from there, so that nothing closing in between is missed.
    history_ends: HashMap<Topic, i64>,
    in_flight: bool,
    retry_scheduled: bool,
}

impl WsSession {
    fn new(
        outbox: Arc<Outbox>,
        services: Services,
        limits: Arc<WsConfig>,
        permit: Permit,
        peer: Option<IpAddr>,
    ) -> WsSession {
        WsSession {
            permit,
            peer,
            id: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
            outbox,
            hub: services.hub.clone(),
            market: services.market.clone(),
            services,
            streams: HashSet::new(),
            bucket: TokenBucket::new(limits.max_control_messages_per_second),
            errors: ErrorWindow::new(limits.max_errors_per_10s, ERROR_WINDOW),
            limits,
            topics: HashSet::new(),
            last_heard: Instant::now(),
            fragment: None,
            waiting: VecDeque::new(),
            history_ends: HashMap::new(),
            in_flight: false,
            retry_scheduled: false,
        }
    }

    /// Queues a frame (compressed if the client negotiated deflate); a client too slow to take it is closed.
    fn push(&mut self, frame: Bytes, ctx: &mut ws::WebsocketContext<Self>) {
        // Control frames, small ones and those already compressed come back as they are.
        let frame = if self.outbox.deflate() { compress_frame(&frame) } else { frame };
        match self.outbox.push(frame) {
            Ok(()) => add(&COUNTERS.messages_sent, 1),
            Err(PushError::Overflow) => {
                slow_client_closed(&COUNTERS.slow_client_disconnects, "ws session", &self.id);
                add(&COUNTERS.messages_dropped, 1);
                ctx.stop();
            }
            Err(PushError::Closed) => ctx.stop(),
        }
    }

    /// Replies with an error; a client that keeps sending bad input is closed ([`CloseReason::TooManyErrors`]).
    fn reply_error(&mut self, err: ErrorMessage, ctx: &mut ws::WebsocketContext<Self>) {
        add(&COUNTERS.ws_client_errors, 1);
        tracing::debug!(client = self.id, code = ?err.code, message = %err.message, "bad client input");
        self.push(protocol::text_frame(&err), ctx);
        if self.errors.strike(Instant::now()) {
            add(&COUNTERS.ws_abuse_disconnects, 1);
            refused("ws_errors_per_10s");
            tracing::info!(client = self.id, "closing client after repeated bad input");
            self.close(CloseReason::TooManyErrors, ctx);
        }
    }

    fn close(&mut self, reason: CloseReason, ctx: &mut ws::WebsocketContext<Self>) {
        self.outbox.close(&reason);
        ctx.stop();
    }

    fn on_text(&mut self, text: &[u8], ctx: &mut ws::WebsocketContext<Self>) {
        if text.len() > self.limits.max_frame_bytes {
            let msg = format!("message of {} bytes is over the {}-byte limit", text.len(), self.limits.max_frame_bytes);
            return self.reply_error(ErrorMessage::new(ErrorCode::FrameTooLarge, msg, None), ctx);
        }
        if !self.bucket.try_take(Instant::now()) {
            refused("ws_messages_per_second");
            let msg = format!(
                "more than {} messages per second; message ignored",
                self.limits.max_control_messages_per_second
            );
            return self.reply_error(ErrorMessage::new(ErrorCode::RateLimited, msg, None), ctx);
        }
        match decode(text) {
            Ok(Request::Subscribe(req)) => self.subscribe(req, ctx),
            Ok(Request::Unsubscribe(req)) => self.unsubscribe(req, ctx),
            Ok(Request::GetHistorical(req)) => self.historical(req, ctx),
            Ok(Request::SubscribeIndicator(req)) => self.indicator(req, true, ctx),
            Ok(Request::UnsubscribeIndicator(req)) => self.indicator(req, false, ctx),
            Ok(Request::SubscribeSignals(req)) => self.signals(req, true, ctx),
            Ok(Request::UnsubscribeSignals(req)) => self.signals(req, false, ctx),
            Ok(Request::Ping { id }) => {
                let mut pong = json!({ "type": "pong" });
                if let Some(id) = id {
                    pong["id"] = id;
                }
                self.push(protocol::text_frame(&pong), ctx);
            }
            Err(err) => self.reply_error(err, ctx),
        }
    }

    /// Checks a (un)subscribe request's topics, or replies with the error.
    fn topics_of(
        &mut self,
        req: &TopicsRequest,
        unknown: UnknownSymbols,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> Option<TopicList> {
        let market = &self.market;
        match TopicList::parse(&req.trading_pairs, req.interval.as_deref(), unknown, |s| market.contains(s)) {
            Ok(list) => Some(list),
            Err(e) => {
                self.reply_error(e.reply(req.id.clone()), ctx);
                None
            }
        }
    }

    fn subscribe(&mut self, req: TopicsRequest, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(TopicList { names, topics, interval, refused }) = self.topics_of(&req, UnknownSymbols::Skipped, ctx)
        else {
            return;
        };
        let new = topics.iter().filter(|t| !self.topics.contains(*t)).count();
        if let Err(e) = self.room_for(new) {
            return self.reply_error(e.reply(req.id), ctx);
        }
        self.topics.extend(topics.iter().cloned());
        let ack = protocol::text_frame(&TopicsAck {
            kind: "subscribed",
            trading_pairs: &names,
            interval,
            refused: &refused,
            id: req.id.as_ref(),
        });
        let topics = topics
            .into_iter()
            .map(|t| {
                let from = self.history_ends.remove(&t).or(req.from);
                (t, from)
            })
            .collect();
        self.hub.do_send(SubscribeFrom { client: self.id, topics, ack });
    }

    /// Whether `new` more topics or streams fit the client's limit.
    fn room_for(&self, new: usize) -> Result<(), TopicLimitError> {
        let held = self.topics.len() + self.streams.len();
        let max = self.limits.max_topics_per_client;
        if held + new > max {
            return Err(TopicLimitError { new, max, held });
        }
        Ok(())
    }

    /// Checks the symbol and interval of an indicator or signal request.
    fn stream_topic(&self, pair: &str, interval: Option<&str>, id: &Option<Value>) -> Result<Topic, ErrorMessage> {
        let market = &self.market;
        topics::stream_topic(pair, interval, |s| market.contains(s)).map_err(|e| e.reply(id.clone()))
    }

    fn indicator(&mut self, req: IndicatorRequest, subscribe: bool, ctx: &mut ws::WebsocketContext<Self>) {
        let id = req.id.clone();
        let (symbol, interval) = match self.stream_topic(&req.trading_pair, req.interval.as_deref(), &id) {
            Ok(t) => t,
            Err(e) => return self.reply_error(e, ctx),
        };
        // Keyed by the canonical form: `{"period":5}` and `{"period":5.0}` are one stream, whichever
        // spelling unsubscribes it.
        let key = match IndicatorService::canonical(&req.indicator, &req.params) {
            Ok((name, params)) => indicator_channel(&symbol, interval, name, &params).to_string(),
            Err(e) => return self.reply_error(ErrorMessage::new(e.code(), e.to_string(), id), ctx),
        };
        if !subscribe {
            if self.streams.remove(&key) {
                self.permit.release_stream();
            }
            let msg = UnsubscribeIndicator {
                client: self.id,
                symbol,
                interval,
                indicator: req.indicator,
                params: req.params,
                id: id.clone(),
            };
            let fut = self.services.indicators.send(msg);
            ctx.spawn(fut.into_actor(self).map(move |res, s, ctx| {
                if let Ok(Err(e)) = res {
                    s.reply_error(ErrorMessage::new(e.code(), e.to_string(), id), ctx);
                }
            }));
            return;
        }
        let added = !self.streams.contains(&key);
        if added {
            if let Err(e) = self.room_for(1) {
                return self.reply_error(e.reply(id), ctx);
            }
            if let Err(refusal) = self.permit.take_stream() {
                let err = ErrorMessage::new(ErrorCode::TooManySubscriptions, refusal.to_string(), id);
                return self.reply_error(err, ctx);
            }
            self.streams.insert(key.clone());
        }
        let history = req.history.unwrap_or(DEFAULT_INDICATOR_HISTORY).min(MAX_INDICATOR_HISTORY);
        // The values a stream starts with are history like get_historical's, sent again at every subscribe
        // (a repeated subscribe of one stream was up to 5,000 values, ~0.5 MB, per control message): the
        // host's history bar budget pays for them. A refused repeat leaves the stream as it was.
        if let Err(refusal) = self.services.history_reads.charge(self.peer, history) {
            if added {
                self.streams.remove(&key);
                self.permit.release_stream();
            }
            let err = ErrorMessage::new(ErrorCode::RateLimited, refusal.to_string(), id)
                .with_retry_after(refusal.retry_after());
            return self.reply_error(err, ctx);
        }
        let msg = SubscribeIndicator {
            client: self.id,
            symbol,
            interval,
            indicator: req.indicator,
            params: req.params,
            history,
            id: id.clone(),
        };
        let fut = self.services.indicators.send(msg);
        ctx.spawn(fut.into_actor(self).map(move |res, s, ctx| {
            let err = match res {
                Ok(Ok(())) => return,
                Ok(Err(e)) => ErrorMessage::new(e.code(), e.to_string(), id),
                Err(_) => ErrorMessage::new(ErrorCode::Internal, "indicators are not available right now", id),
            };
            if s.streams.remove(&key) {
                s.permit.release_stream();
            }
            s.reply_error(err, ctx);
        }));
    }

    fn signals(&mut self, req: SignalsRequest, subscribe: bool, ctx: &mut ws::WebsocketContext<Self>) {
        let id = req.id.clone();
        let (symbol, interval) = match self.stream_topic(&req.trading_pair, req.interval.as_deref(), &id) {
            Ok(t) => t,
            Err(e) => return self.reply_error(e, ctx),
        };
        let key = format!("signals:{symbol}:{interval}");
        if !subscribe {
            self.streams.remove(&key);
            self.services.strategies.do_send(UnsubscribeSignals { client: self.id, symbol, interval, id });
            return;
        }
        if !self.streams.contains(&key) {
            if let Err(e) = self.room_for(1) {
                return self.reply_error(e.reply(id), ctx);
            }
        }
        self.streams.insert(key);
        self.services.strategies.do_send(SubscribeSignals { client: self.id, symbol, interval, id });
    }

    fn unsubscribe(&mut self, req: TopicsRequest, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(TopicList { names, topics, interval, .. }) = self.topics_of(&req, UnknownSymbols::Allowed, ctx) else {
            return;
        };
        for t in &topics {
            self.topics.remove(t);
        }
        let ack = protocol::text_frame(&TopicsAck {
            kind: "unsubscribed",
            trading_pairs: &names,
            interval,
            refused: &[],
            id: req.id.as_ref(),
        });
        self.hub.do_send(Unsubscribe { client: self.id, topics, ack });
    }

    fn historical(&mut self, req: HistoricalRequest, ctx: &mut ws::WebsocketContext<Self>) {
        let id = req.id.clone();
        let query = match HistoryQuery::parse(req.interval.as_deref(), req.limit, req.start_time, req.end_time) {
            Ok(q) => q,
            Err(e) => return self.reply_error(ErrorMessage::new(ErrorCode::InvalidParameter, e.to_string(), id), ctx),
        };
        let since = match protocol::parse_since(req.since) {
            Ok(s) => s,
            Err(e) => return self.reply_error(ErrorMessage::new(ErrorCode::InvalidParameter, e.to_string(), id), ctx),
        };
        let Some(entry) = self.market.get(&Symbol::normalize(&req.trading_pair)) else {
            return self.reply_error(TopicError::UnknownSymbol(req.trading_pair).reply(id), ctx);
        };
        if self.waiting.len() >= MAX_WAITING_REQUESTS {
            let msg = format!("{MAX_WAITING_REQUESTS} history requests are already waiting; read the replies first");
            return self.reply_error(ErrorMessage::new(ErrorCode::RateLimited, msg, id), ctx);
        }
        self.waiting.push_back((entry, query, since, id));
        self.answer_waiting(ctx);
    }

    /// Starts the next waiting history request if none is running and the outbox has room.
    fn answer_waiting(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.in_flight || self.waiting.is_empty() {
            return;
        }
        if self.outbox.queued_bytes() >= self.limits.outbound_queue_bytes / 2 {
            if !self.retry_scheduled {
                self.retry_scheduled = true;
                ctx.run_later(RETRY_EVERY, |s, ctx| {
                    s.retry_scheduled = false;
                    s.answer_waiting(ctx);
                });
            }
            return;
        }
        let Some((entry, query, since, id)) = self.waiting.pop_front() else { return };
        self.in_flight = true;
        let history = self.services.history.clone();
        let reply_id = id.clone();
        let deflate = self.outbox.deflate();
        // The read and the reply's encoding run on the history thread, not on this (HTTP worker) thread.
        let work = async move {
            match history.query(&entry, query, since).await {
                Ok((bars, as_of)) => {
                    // Only a history that reaches the present is one a subscription continues.
                    let newest =
                        bars.last().filter(|_| query.end_time.is_none()).map(|b| (entry.symbol.clone(), b.open_time));
                    let reply = Historical::new(&entry.symbol, query.interval, &bars, reply_id).with_as_of(as_of);
                    let frame = protocol::text_frame(&reply);
                    // Compressed here, off the worker, like the encoding: 5,000 bars are ~0.5 MB of JSON.
                    let frame = if deflate { compress_frame(&frame) } else { frame };
                    ((frame, newest), bars.len())
                }
                Err(e) => {
                    let msg = format!("history is not available right now: {e}");
                    ((protocol::text_frame(&ErrorMessage::new(ErrorCode::Internal, msg, reply_id)), None), 0)
                }
            }
        };
        let (reads, peer) = (self.services.history_reads.clone(), self.peer);
        let fut = async move { reads.run(peer, query.limit, work).await };
        ctx.spawn(actix::fut::wrap_future(fut).map(move |result, session: &mut Self, ctx| {
            session.in_flight = false;
            match result {
                Ok(Some((frame, newest))) => {
                    if let Some((symbol, open_time)) = newest {
                        session.history_ends.insert((symbol, query.interval), open_time);
                    }
                    session.push(frame, ctx);
                }
                Ok(None) => {
                    let err = ErrorMessage::new(ErrorCode::Internal, "history is not available right now", id);
                    session.push(protocol::text_frame(&err), ctx);
                }
                Err(refusal) => {
                    let err = ErrorMessage::new(ErrorCode::RateLimited, refusal.to_string(), id)
                        .with_retry_after(refusal.retry_after());
                    session.reply_error(err, ctx);
                }
            }
            session.answer_waiting(ctx);
        }));
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let (start, chunk, last) = match item {
            Item::FirstText(b) => (true, b, false),
            Item::FirstBinary(b) => (true, b, false),
            Item::Continue(b) => (false, b, false),
            Item::Last(b) => (false, b, true),
        };
        if start {
            self.fragment = Some(Some(Vec::new()));
        }
        let max = self.limits.max_frame_bytes;
        if let Some(slot) = self.fragment.as_mut() {
            if let Some(buf) = slot.as_mut() {
                buf.extend_from_slice(&chunk);
                if buf.len() > max {
                    *slot = None;
                    let msg = format!("fragmented message is over the {max}-byte limit");
                    self.reply_error(ErrorMessage::new(ErrorCode::FrameTooLarge, msg, None), ctx);
                }
            }
        }
        if last {
            if let Some(Some(buf)) = self.fragment.take() {
                self.on_text(&buf, ctx);
            }
        }
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    /// Registers with the hub and starts the heartbeat.
    fn started(&mut self, ctx: &mut Self::Context) {
        add(&COUNTERS.ws_connections_total, 1);
        self.hub.do_send(Connect { client: self.id, outbox: self.outbox.clone() });
        let timeout = Duration::from_secs(self.limits.client_timeout_secs);
        ctx.run_interval(Duration::from_secs(self.limits.ping_interval_secs), move |s, ctx| {
            if s.outbox.is_closed() {
                // The hub closed it (slow consumer).
                ctx.stop();
            } else if s.last_heard.elapsed() > timeout {
                // Also how a client that stopped reading is found long before its outbox fills: at a few
                // KB/s the kernel's socket buffers alone take minutes to fill, but it never reads our ping.
                tracing::debug!(client = s.id, "dropping silent client");
                add(&COUNTERS.silent_client_disconnects, 1);
                s.close(CloseReason::Silent, ctx);
            } else {
                s.push(frame::ping(b""), ctx);
            }
        });
    }

    /// Deregisters from the hub and ends the outgoing stream with a normal close, unless a close is queued.
    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.hub.do_send(Disconnect { client: self.id });
        self.outbox.close(&CloseReason::Normal);
        Running::Stop
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    /// Dispatches a decoded client frame.
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(text.as_bytes(), ctx),
            Ok(ws::Message::Binary(_)) => {
                let err = ErrorMessage::new(
                    ErrorCode::UnsupportedFrame,
                    "binary frames are not supported; send JSON text",
                    None,
                );
                self.reply_error(err, ctx);
            }
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => self.push(frame::pong(&payload), ctx),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(_)) => ctx.stop(),
            Err(ws::ProtocolError::Overflow) => {
                let max = self.limits.max_frame_bytes * HARD_FRAME_FACTOR;
                self.close(CloseReason::FrameTooLarge { max }, ctx);
            }
            Err(e) => {
                tracing::debug!(client = self.id, error = %e, "websocket protocol error");
                self.close(CloseReason::Protocol(e.to_string()), ctx);
            }
        }
    }

    /// The client's side of the stream ended (it went away); nothing more can be read.
    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// `GET /ws`: upgrades to a WebSocket session, once the origin and the budgets allow it.
pub async fn route(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let mut response = ws::handshake(&req)?;
    let permit = match state.services.admission.admit(&req) {
        Ok(permit) => permit,
        Err(refusal) => return Ok(refusal.response()),
    };
    let limits = state.ws_limits.clone();
    let deflate = if limits.permessage_deflate { extension::negotiate(req.headers()) } else { None };
    if let Some(accepted) = &deflate {
        response.insert_header((header::SEC_WEBSOCKET_EXTENSIONS, accepted.response()));
        add(&COUNTERS.ws_deflate_connections, 1);
    }
    let outbox = Arc::new(Outbox::new(limits.outbound_queue_bytes).with_deflate(deflate.is_some()));
    let hard_max = limits.max_frame_bytes * HARD_FRAME_FACTOR;
    let codec = Codec::new().max_size(hard_max);
    let peer = req.peer_addr().map(|a| a.ip());
    let max_message = limits.max_frame_bytes;
    let session = WsSession::new(outbox.clone(), state.services.clone(), limits, permit, peer);
    let driver: Driver = if deflate.is_some() {
        let payload = InflatingPayload::new(payload, outbox.clone(), hard_max, max_message);
        Box::pin(ws::WebsocketContext::with_codec(session, payload, codec))
    } else {
        Box::pin(ws::WebsocketContext::with_codec(session, payload, codec))
    };
    Ok(response.streaming(SessionBody::new(driver, outbox)))
}
