//! One Engine.IO session and its Socket.IO connection to namespace `/`: the actor that owns the session's
//! state. Transports hand it the packets they receive; what it sends goes into its [`PacketQueue`],
//! which the active transport drains.
//!
//! It pings every `ping_interval_ms` and expires when no pong came within `ping_timeout_ms` after a ping;
//! it checks keys at namespace connect, limits events per second, and handles events one at a time, in
//! order (a batch of trades is folded in before the next one is read).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use candlecast_actors::outbox::slow_client_closed;
use candlecast_actors::refusals::refused;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::engineio::{Handshake, Packet};
use super::error::{CloseReason, UpgradeError};
use super::events;
use super::hosts::SessionSlot;
use super::packet::{self as sio, Data, Kind};
use super::queue::{PacketQueue, PushError};
use super::registry::{new_id, SessionHandle, Transport};
use super::socket::Socket;
use super::websocket::WsLink;
use super::SocketIo;
use crate::script_ingest::stats::ScriptStats;
use crate::ws::rate_limits::TokenBucket;

/// How often the session checks whether its queue was closed by an overflow (a slow consumer).
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// A client must connect to a namespace within this long (Socket.IO's default connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a session stays after its client left namespace `/` without closing the session.
const AFTER_NAMESPACE_LEFT: Duration = Duration::from_secs(1);
/// Events waiting to be handled; more are refused as busy (the transports wait for their packets to be
/// handled, so only a client pipelining far ahead gets here).
const MAX_PENDING_EVENTS: usize = 1024;

/// Packets a transport received (a polling POST, a WebSocket message). Answered once the events they
/// carry are handled, or at once with the reason the session closed.
#[derive(Message)]
#[rtype(result = "Result<(), CloseReason>")]
pub struct Incoming {
    pub packets: Vec<Packet>,
}

/// A WebSocket opened with this session's id: a probe for an upgrade.
#[derive(Message)]
#[rtype(result = "Result<(), UpgradeError>")]
pub struct AttachProbe {
    pub link: Arc<WsLink>,
}

/// The probe answered `2probe`: release the running poll so the client can pause polling.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProbeStarted;

/// The client sent `5` on the probe: the WebSocket carries the session from now on.
#[derive(Message)]
#[rtype(result = "Result<(), UpgradeError>")]
pub struct Upgrade;

/// A WebSocket of this session ended; `reason` when it broke the protocol.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportClosed {
    pub link: Arc<WsLink>,
    pub reason: Option<CloseReason>,
}

/// Close the session (a duplicate poll, an oversize or broken polling payload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub reason: CloseReason,
}

/// Work handled in order: events, and the answers transports wait for.
enum Job {
    Event { name: String, args: Vec<Box<RawValue>>, ack: Option<u64> },
    Done(oneshot::Sender<()>),
}

/// See the module documentation.
pub struct EioSession {
    sid: Arc<str>,
    io: Arc<SocketIo>,
    peer: String,
    /// A key given on the handshake URL (`?token=`) or header, for clients without an auth payload.
    handshake_token: Option<String>,
    queue: Arc<PacketQueue>,
    transport: Arc<AtomicU8>,
    /// The WebSocket carrying the session, and one probing an upgrade.
    ws: Option<Arc<WsLink>>,
    probe: Option<Arc<WsLink>>,
    last_pong: Instant,
    socket: Option<Arc<Socket>>,
    bucket: TokenBucket,
    /// Events refused for the rate, refilled at the rate: a client that keeps sending past its rate
    /// empties it within about a second and is closed, so the rest of what it sent is never decoded
    /// (refused one by one, a flood of 13,000-event POSTs cost the server more than serving everyone else).
    flood: TokenBucket,
    jobs: VecDeque<Job>,
    running: bool,
    /// Binary attachments of a refused binary event, still to be skipped.
    skip_binary: usize,
    closing: Option<CloseReason>,
    /// This session's place in the per-host and total budgets, given back when the actor is dropped.
    slot: SessionSlot,
}

impl EioSession {
    /// Starts a session on long-polling; its open packet is queued for the handshake GET.
    pub fn open_polling(io: Arc<SocketIo>, peer: String, token: Option<String>, slot: SessionSlot) -> SessionHandle {
        Self::open(io, peer, token, Transport::Polling, None, slot)
    }

    /// Starts a session directly on a WebSocket.
    pub fn open_websocket(
        io: Arc<SocketIo>,
        peer: String,
        token: Option<String>,
        link: Arc<WsLink>,
        slot: SessionSlot,
    ) -> SessionHandle {
        Self::open(io, peer, token, Transport::WebSocket, Some(link), slot)
    }

    fn open(
        io: Arc<SocketIo>,
        peer: String,
        token: Option<String>,
        transport: Transport,
        ws: Option<Arc<WsLink>>,
        slot: SessionSlot,
    ) -> SessionHandle {
        let sid = new_id();
        let s = &io.settings;
        let queue = Arc::new(PacketQueue::new(s.outbound_queue_bytes));
        let upgrades: &[&str] = if transport == Transport::Polling { &["websocket"] } else { &[] };
        let open = Handshake {
            sid: &sid,
            upgrades,
            ping_interval: s.ping_interval_ms,
            ping_timeout: s.ping_timeout_ms,
            max_payload: s.max_payload_bytes,
        };
        // An empty queue always takes a packet.
        let _ = queue.push(open.packet());
        let transport = Arc::new(AtomicU8::new(transport as u8));
        let session = EioSession {
            sid: sid.clone(),
            bucket: TokenBucket::new(s.max_events_per_second),
            flood: TokenBucket::new(s.max_events_per_second),
            io: io.clone(),
            peer,
            handshake_token: token,
            queue: queue.clone(),
            transport: transport.clone(),
            ws,
            probe: None,
            last_pong: Instant::now(),
            socket: None,
            jobs: VecDeque::new(),
            running: false,
            skip_binary: 0,
            closing: None,
            slot,
        };
        let handle = SessionHandle::new(session.start(), queue, transport);
        // Registered before the handshake is answered, so the client's next request finds it.
        io.sessions.insert(sid, handle.clone());
        ScriptStats::add(&io.scripts.stats.socketio_sessions_total, 1);
        handle
    }

    fn push(&mut self, packet: Bytes, ctx: &mut Context<Self>) {
        if let Err(PushError::Overflow) = self.queue.push(packet) {
            self.close(CloseReason::SlowConsumer, ctx);
        }
    }

    fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        let stats = &self.io.scripts.stats;
        match &reason {
            CloseReason::PingTimeout => ScriptStats::add(&stats.expired_sessions, 1),
            CloseReason::SlowConsumer => {
                slow_client_closed(&stats.slow_client_disconnects, "socket.io session", &self.sid)
            }
            CloseReason::TooLarge { .. } => ScriptStats::add(&stats.oversize_payloads, 1),
            r if r.is_malformed() => {
                // Protocol violations (a client's own pings, broken packets) close the session: a refusal too.
                ScriptStats::add(&stats.malformed_packets, 1);
                refused("sio_protocol");
            }
            _ => {}
        }
        if reason.is_client_fault() {
            self.slot.fault();
        }
        // A slow consumer was logged above, with the other transports' ones.
        // A flood is counted (sio_event_flood) and comes back as fast as the host may open sessions: debug too.
        if matches!(
            reason,
            CloseReason::ClientClosed
                | CloseReason::TransportClosed
                | CloseReason::SlowConsumer
                | CloseReason::EventFlood { .. }
        ) {
            tracing::debug!(sid = %self.sid, %reason, "socket.io session closed");
        } else {
            tracing::info!(sid = %self.sid, peer = %self.peer, %reason, "socket.io session closed");
        }
        self.closing = Some(reason);
        ctx.stop();
    }

    /// Sends a ping, and expires the session if no pong follows within the ping timeout.
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let sent = Instant::now();
        self.push(Packet::Ping(Bytes::new()).encode(), ctx);
        ctx.run_later(Duration::from_millis(self.io.settings.ping_timeout_ms), move |s, ctx| {
            if s.last_pong < sent {
                s.close(CloseReason::PingTimeout, ctx);
            }
        });
    }

    fn on_packet(&mut self, packet: Packet, ctx: &mut Context<Self>) -> Result<(), CloseReason> {
        match packet {
            Packet::Message(text) => self.on_message(&text, ctx),
            Packet::Pong(_) => {
                self.last_pong = Instant::now();
                Ok(())
            }
            // In Engine.IO 4 the server pings and the client answers; only an upgrading WebSocket sends
            // `2probe`, and that never reaches the session. Answering client pings let a client that never
            // polls make the server queue a pong per byte it posted.
            Packet::Ping(_) => Err(CloseReason::Protocol("ping from a client (in Engine.IO 4 only the server pings)")),
            Packet::Close => {
                self.close(CloseReason::ClientClosed, ctx);
                Ok(())
            }
            Packet::Noop => Ok(()),
            Packet::Binary(_) if self.skip_binary > 0 => {
                self.skip_binary -= 1;
                Ok(())
            }
            Packet::Binary(_) => Err(CloseReason::Protocol("binary message without a binary event")),
            Packet::Upgrade => Err(CloseReason::Protocol("upgrade packet outside an upgrading WebSocket")),
            Packet::Open(_) => Err(CloseReason::Protocol("open packet from a client")),
        }
    }

    fn on_message(&mut self, text: &[u8], ctx: &mut Context<Self>) -> Result<(), CloseReason> {
        // Engine.IO checked that text messages are UTF-8.
        let text = std::str::from_utf8(text).map_err(|_| CloseReason::Protocol("message is not UTF-8"))?;
        let packet = sio::Packet::decode(text)?;
        match packet.kind {
            Kind::Connect => self.connect(&packet.namespace, packet.data, ctx),
            Kind::Disconnect if packet.namespace == "/" => {
                if let Some(socket) = self.socket.take() {
                    socket.disconnect();
                }
                // `/` is the only namespace, so the session has no use left. Clients close it themselves
                // right after, but not always (python-engineio's polling transport may skip its close
                // packet): end it shortly unless they do. Not at once: a client that sees its transport
                // end before it has closed it takes that as a failure and reconnects.
                ctx.run_later(AFTER_NAMESPACE_LEFT, |s, ctx| s.close(CloseReason::ClientClosed, ctx));
            }
            Kind::Disconnect => {}
            Kind::Event => match packet.data {
                Data::Event { name, args } => self.event(&packet.namespace, name, args, packet.id, ctx)?,
                _ => return Err(CloseReason::Protocol("event without a name")),
            },
            // The server never asks for acknowledgements.
            Kind::Ack => {}
            Kind::BinaryEvent | Kind::BinaryAck => {
                self.skip_binary += packet.attachments;
                if let (Some(socket), Kind::BinaryEvent) = (&self.socket, packet.kind) {
                    socket.refuse(
                        packet.id,
                        "binary",
                        "unsupported",
                        "binary events are not supported; send JSON (numbers, strings, CSV text)",
                    );
                }
            }
            Kind::ConnectError => return Err(CloseReason::Protocol("CONNECT_ERROR from a client")),
        }
        Ok(())
    }

    /// A namespace connect: only `/`, with a valid key, or without one for dashboards.
    fn connect(&mut self, namespace: &str, data: Data, ctx: &mut Context<Self>) {
        if namespace != "/" {
            return self.push(sio::connect_error(namespace, "Invalid namespace"), ctx);
        }
        if self.socket.is_some() {
            return;
        }
        let auth_token = match &data {
            Data::Object(auth) => auth.get("token").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let token = auth_token.or_else(|| self.handshake_token.clone());
        match self.io.scripts.authorize(token.as_deref(), &self.peer, "socket.io") {
            Ok(access) => {
                let socket = Arc::new(Socket::new(self.io.clone(), self.sid.clone(), access, self.queue.clone()));
                self.push(sio::connect("/", &socket.sid), ctx);
                self.socket = Some(socket);
            }
            Err(e) => self.push(sio::connect_error("/", &e.to_string()), ctx),
        }
    }

    /// Queues an event for its handler, unless the client is over its rate; closes the session of a
    /// client that keeps sending past it (see `flood`).
    fn event(
        &mut self,
        namespace: &str,
        name: String,
        args: Vec<Box<RawValue>>,
        ack: Option<u64>,
        ctx: &mut Context<Self>,
    ) -> Result<(), CloseReason> {
        let Some(socket) = self.socket.clone().filter(|_| namespace == "/") else {
            tracing::debug!(sid = %self.sid, namespace, "event before connecting to its namespace; ignored");
            return Ok(());
        };
        ScriptStats::add(&self.io.scripts.stats.socketio_events_total, 1);
        let now = Instant::now();
        if !self.bucket.try_take(now) {
            ScriptStats::add(&self.io.scripts.stats.rate_limited_events, 1);
            let per_second = self.io.settings.max_events_per_second;
            if !self.flood.try_take(now) {
                refused("sio_event_flood");
                return Err(CloseReason::EventFlood { per_second });
            }
            refused("sio_events_per_second");
            let msg = format!("more than {per_second} events per second; {name} ignored");
            socket.refuse(ack, &name, "rate_limited", &msg);
            return Ok(());
        }
        if self.jobs.len() >= MAX_PENDING_EVENTS {
            socket.refuse(ack, &name, "busy", "too many events waiting to be handled; wait for acknowledgements");
            return Ok(());
        }
        self.jobs.push_back(Job::Event { name, args, ack });
        self.run_jobs(ctx);
        Ok(())
    }

    /// Starts the next job unless one is running.
    fn run_jobs(&mut self, ctx: &mut Context<Self>) {
        while !self.running {
            match self.jobs.pop_front() {
                None => return,
                Some(Job::Done(tx)) => {
                    let _ = tx.send(());
                }
                Some(Job::Event { name, args, ack }) => {
                    let Some(socket) = self.socket.clone() else { continue };
                    self.running = true;
                    ctx.spawn(events::handle(socket, name, args, ack).into_actor(self).map(|_, s, ctx| {
                        s.running = false;
                        s.run_jobs(ctx);
                    }));
                }
            }
        }
    }
}

impl Actor for EioSession {
    type Context = Context<Self>;

    /// Starts the heartbeat, the slow-consumer watch and the connect timeout.
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_millis(self.io.settings.ping_interval_ms), |s, ctx| s.heartbeat(ctx));
        ctx.run_interval(WATCH_EVERY, |s, ctx| {
            if s.queue.is_closed() {
                s.close(CloseReason::SlowConsumer, ctx);
            }
        });
        ctx.run_later(CONNECT_TIMEOUT, |s, ctx| {
            if s.socket.is_none() {
                s.close(CloseReason::ConnectTimeout, ctx);
            }
        });
    }

    /// Deregisters, leaves rooms and subscriptions, and ends the transports (with the reason on a
    /// WebSocket when the client broke the protocol).
    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.io.sessions.remove(&self.sid);
        if let Some(socket) = self.socket.take() {
            socket.disconnect();
        }
        let reason = self.closing.take().unwrap_or(CloseReason::TransportClosed);
        if let Some(ws) = &self.ws {
            if reason.close_code() != 1000 {
                ws.close(reason.close_code(), &reason.to_string());
            }
        }
        if let Some(probe) = self.probe.take() {
            probe.close(1000, "session closed");
        }
        // The client is told when the server ends the session; when the client ended it, nothing is sent
        // back (as Engine.IO servers do): a close packet echoed to python-engineio races its own shutdown.
        // A poll still waiting then ends with 400 (unknown session), which clients take as the end.
        let last = match reason {
            CloseReason::ClientClosed | CloseReason::TransportClosed => None,
            _ => Some(Packet::Close.encode()),
        };
        self.queue.close_with(last);
        for job in self.jobs.drain(..) {
            if let Job::Done(tx) = job {
                let _ = tx.send(());
            }
        }
        Running::Stop
    }
}

impl Handler<Incoming> for EioSession {
    type Result = ResponseFuture<Result<(), CloseReason>>;

    /// Handles control packets at once and queues events; answers when those events are handled.
    fn handle(&mut self, msg: Incoming, ctx: &mut Context<Self>) -> Self::Result {
        for packet in msg.packets {
            // Closed (by the client's close packet, or its queue overflowed): the rest is not read.
            if let Some(reason) = &self.closing {
                let result = if *reason == CloseReason::ClientClosed { Ok(()) } else { Err(reason.clone()) };
                return Box::pin(async move { result });
            }
            if let Err(reason) = self.on_packet(packet, ctx) {
                self.close(reason.clone(), ctx);
                return Box::pin(async move { Err(reason) });
            }
            // Replies pushed straight into the queue (refusals, acks) may have overflowed it.
            if self.queue.is_closed() && self.closing.is_none() {
                self.close(CloseReason::SlowConsumer, ctx);
            }
        }
        if let Some(reason) = &self.closing {
            let result = if *reason == CloseReason::ClientClosed { Ok(()) } else { Err(reason.clone()) };
            return Box::pin(async move { result });
        }
        let (tx, rx) = oneshot::channel();
        self.jobs.push_back(Job::Done(tx));
        self.run_jobs(ctx);
        Box::pin(async move {
            let _ = rx.await;
            Ok(())
        })
    }
}

impl Handler<AttachProbe> for EioSession {
    type Result = Result<(), UpgradeError>;

    /// Keeps a probing WebSocket, if the session is on polling and not probing already.
    fn handle(&mut self, msg: AttachProbe, _: &mut Context<Self>) -> Self::Result {
        if self.ws.is_some() {
            return Err(UpgradeError::AlreadyOnWebSocket);
        }
        if self.probe.is_some() {
            return Err(UpgradeError::AlreadyProbing);
        }
        self.probe = Some(msg.link);
        Ok(())
    }
}

impl Handler<ProbeStarted> for EioSession {
    type Result = ();

    /// Owes the running poll a noop.
    fn handle(&mut self, _: ProbeStarted, _: &mut Context<Self>) {
        if self.probe.is_some() {
            self.queue.release_poll(true);
        }
    }
}

impl Handler<Upgrade> for EioSession {
    type Result = Result<(), UpgradeError>;

    /// Moves the session to the probing WebSocket; what is queued goes out on it.
    fn handle(&mut self, _: Upgrade, _: &mut Context<Self>) -> Self::Result {
        let link = self.probe.take().ok_or(UpgradeError::NoProbe)?;
        self.transport.store(Transport::WebSocket as u8, Ordering::Release);
        self.queue.release_poll(false);
        link.activate();
        self.ws = Some(link);
        ScriptStats::add(&self.io.scripts.stats.socketio_upgrades, 1);
        tracing::debug!(sid = %self.sid, "upgraded to websocket");
        Ok(())
    }
}

impl Handler<TransportClosed> for EioSession {
    type Result = ();

    /// A failed probe leaves the session on polling; the end of its WebSocket ends the session.
    fn handle(&mut self, msg: TransportClosed, ctx: &mut Context<Self>) {
        if self.probe.as_ref().is_some_and(|p| Arc::ptr_eq(p, &msg.link)) {
            self.probe = None;
            self.queue.release_poll(false);
            if let Some(reason) = msg.reason {
                self.close(reason, ctx);
            }
        } else if self.ws.as_ref().is_some_and(|w| Arc::ptr_eq(w, &msg.link)) {
            self.close(msg.reason.unwrap_or(CloseReason::TransportClosed), ctx);
        }
    }
}

impl Handler<Close> for EioSession {
    type Result = ();

    /// Closes the session for `reason`.
    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.close(msg.reason, ctx);
    }
}
