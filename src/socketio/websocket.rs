//! The WebSocket transport: a session opened directly on WebSocket, or a probe that upgrades a polling
//! session (`2probe` → `3probe`, the running poll released with a noop, then `5`).
//!
//! The actix-http codec decodes client frames in a reader task that hands packets to the session actor
//! and waits until they are handled (so a fast script is slowed down by reading, not buffered). The
//! response body writes, in order: the link's control frames (pongs, the probe answer, a close frame),
//! then — once the link is active — the session's packets, one text frame each.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use candlecast_actors::outbox::Outbox;
use candlecast_actors::protocol::frame;
use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt};

use super::engineio::{EioError, HttpErrorCode, Packet};
use super::error::{CloseReason, HttpError};
use super::queue::PacketQueue;
use super::registry::SessionHandle;
use super::session::{AttachProbe, EioSession, Incoming, ProbeStarted, TransportClosed, Upgrade};
use super::SocketIo;

/// Bytes of control frames (pongs, probe answers) a WebSocket may have waiting. Small: the outbox counts
/// frame bytes only, and a 2-byte pong costs some 64 bytes held, so this bounds a client that sends ping
/// frames without reading to about 300 KB before it is closed.
const CONTROL_QUEUE_BYTES: usize = 8 * 1024;

/// One WebSocket connection of a session: its control frames, and whether it carries the session's
/// packets yet (a probe does not until the upgrade completes).
pub struct WsLink {
    control: Outbox,
    active: AtomicBool,
    /// The body's task, woken when the link becomes active (it waited on the control frames only).
    body: AtomicWaker,
}

impl WsLink {
    pub fn new(active: bool) -> WsLink {
        WsLink { control: Outbox::new(CONTROL_QUEUE_BYTES), active: AtomicBool::new(active), body: AtomicWaker::new() }
    }

    /// Starts carrying the session's packets.
    pub fn activate(&self) {
        self.active.store(true, Ordering::Release);
        self.body.wake();
    }

    /// Sends a close frame (after the control frames already queued) and ends the connection.
    pub fn close(&self, code: u16, reason: &str) {
        self.control.close_with(frame::close(code, reason));
    }

    fn send_text(&self, text: &[u8]) {
        // A client that lets CONTROL_QUEUE_BYTES of pongs pile up is closed by the outbox itself (1008).
        let _ = self.control.push(frame::text(text));
    }
}

/// `GET /socket.io/?EIO=4&transport=websocket[&sid=...]` with an Upgrade header.
pub async fn open(
    req: &HttpRequest,
    payload: web::Payload,
    io: &Arc<SocketIo>,
    sid: Option<&str>,
    token: Option<String>,
) -> Result<HttpResponse, HttpError> {
    actix_http::ws::verify_handshake(req.head())
        .map_err(|e| HttpError::new(HttpErrorCode::BadRequest, format!("not a WebSocket handshake: {e}")))?;
    let key = req.headers().get(SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()).unwrap_or_default();
    let accept = HeaderValue::from_bytes(&actix_http::ws::hash_key(key))
        .map_err(|_| HttpError::new(HttpErrorCode::BadRequest, "bad Sec-WebSocket-Key"))?;
    let (handle, probe) = match sid {
        None => {
            let slot = io.admit(req)?;
            let link = Arc::new(WsLink::new(true));
            (EioSession::open_websocket(io.clone(), super::peer(req), token, link.clone(), slot), link)
        }
        Some(sid) => {
            let handle = io.sessions.get(sid).ok_or_else(HttpError::unknown_sid)?;
            let link = Arc::new(WsLink::new(false));
            match handle.addr.send(AttachProbe { link: link.clone() }).await {
                Ok(Ok(())) => (handle, link),
                Ok(Err(refused)) => return Err(HttpError::new(HttpErrorCode::BadRequest, refused.to_string())),
                Err(_) => return Err(HttpError::unknown_sid()),
            }
        }
    };
    let upgrading = sid.is_some();
    actix_web::rt::spawn(read_frames(payload, handle.clone(), probe.clone(), upgrading, io.settings.max_payload_bytes));
    let body = WsBody { link: probe, queue: handle.queue };
    Ok(HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS)
        .upgrade("websocket")
        .insert_header((SEC_WEBSOCKET_ACCEPT, accept))
        .streaming(body))
}

/// Reads client frames until the connection ends, and tells the session why it ended.
async fn read_frames(
    mut payload: web::Payload,
    session: SessionHandle,
    link: Arc<WsLink>,
    mut probing: bool,
    max_payload: usize,
) {
    let mut codec = Codec::new().max_size(max_payload);
    let mut buf = BytesMut::new();
    // A fragmented message being reassembled, and whether it is binary.
    let mut fragments: Option<(BytesMut, bool)> = None;
    let reason = 'read: loop {
        let frame = loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(ProtocolError::Overflow) => break 'read Some(CloseReason::TooLarge { max: max_payload }),
                Err(e) => break 'read Some(CloseReason::Protocol(protocol_error(&e))),
            }
            match payload.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                _ => break 'read None,
            }
        };
        let message = match frame {
            Frame::Text(text) => Packet::decode_text(text),
            Frame::Binary(data) => Ok(Packet::Binary(data)),
            Frame::Continuation(item) => match reassemble(&mut fragments, item, max_payload) {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(reason) => break Some(reason),
            },
            Frame::Ping(data) => {
                link.control.push(frame::pong(&data)).ok();
                continue;
            }
            Frame::Pong(_) => continue,
            Frame::Close(_) => break None,
        };
        let packet = match message {
            Ok(p) => p,
            Err(e) => break Some(CloseReason::Engine(e)),
        };
        if probing {
            match packet {
                Packet::Ping(data) if &data[..] == b"probe" => {
                    link.send_text(&Packet::Pong(data).encode());
                    session.addr.do_send(ProbeStarted);
                }
                Packet::Upgrade => match session.addr.send(Upgrade).await {
                    Ok(Ok(())) => probing = false,
                    _ => break Some(CloseReason::Protocol("upgrade refused: the session is gone or already upgraded")),
                },
                Packet::Noop => {}
                _ => break Some(CloseReason::Protocol("expected 2probe then 5 on an upgrading WebSocket")),
            }
            continue;
        }
        match session.addr.send(Incoming { packets: vec![packet] }).await {
            Ok(Ok(())) => {}
            // The session closed itself (and the link) for that packet.
            Ok(Err(_)) | Err(_) => return,
        }
    };
    if let Some(reason) = &reason {
        link.close(reason.close_code(), &reason.to_string());
    }
    session.addr.do_send(TransportClosed { link, reason });
}

/// Adds one continuation frame; a whole message once its last frame is in.
fn reassemble(
    fragments: &mut Option<(BytesMut, bool)>,
    item: Item,
    max: usize,
) -> Result<Option<Result<Packet, EioError>>, CloseReason> {
    let (chunk, last) = match item {
        Item::FirstText(b) => {
            *fragments = Some((BytesMut::new(), false));
            (b, false)
        }
        Item::FirstBinary(b) => {
            *fragments = Some((BytesMut::new(), true));
            (b, false)
        }
        Item::Continue(b) => (b, false),
        Item::Last(b) => (b, true),
    };
    let Some((buf, _)) = fragments.as_mut() else {
        return Err(CloseReason::Protocol("continuation frame without a first frame"));
    };
    buf.extend_from_slice(&chunk);
    if buf.len() > max {
        return Err(CloseReason::TooLarge { max });
    }
    if !last {
        return Ok(None);
    }
    let Some((buf, binary)) = fragments.take() else { return Ok(None) };
    let data = buf.freeze();
    Ok(Some(if binary { Ok(Packet::Binary(data)) } else { Packet::decode_text(data) }))
}

fn protocol_error(e: &ProtocolError) -> &'static str {
    match e {
        ProtocolError::UnmaskedFrame => "unmasked WebSocket frame from a client",
        ProtocolError::InvalidOpcode(_) | ProtocolError::BadOpCode => "invalid WebSocket opcode",
        ProtocolError::InvalidLength(_) => "invalid WebSocket control frame length",
        _ => "invalid WebSocket frame",
    }
}

/// The response body: control frames first, then (when active) the session's packets.
struct WsBody {
    link: Arc<WsLink>,
    queue: Arc<PacketQueue>,
}

impl Stream for WsBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.link.body.register(cx.waker());
        loop {
            match this.link.control.poll_pop(cx) {
                Poll::Ready(Some(f)) => return Poll::Ready(Some(Ok(f))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            if !this.link.active.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            return match this.queue.poll_packet(cx) {
                Poll::Ready(Some(p)) => Poll::Ready(Some(Ok(frame::text(&p)))),
                Poll::Ready(None) => {
                    // The session ended and everything it queued is written: close normally, unless
                    // a close with a reason was queued already.
                    this.link.close(1000, "");
                    continue;
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
