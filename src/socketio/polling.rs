//! The HTTP long-polling transport: a GET waits for the session's packets and takes them all as one
//! payload; a POST carries the client's packets and is answered `ok` once they are handled.

use std::future::poll_fn;
use std::sync::Arc;

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;

use super::engineio::{payload_packets, HttpErrorCode};
use super::error::{CloseReason, HttpError};
use super::registry::{SessionHandle, Transport};
use super::session::{Close, EioSession, Incoming};
use super::SocketIo;

/// Packets of one POST handed to the session at a time.
const PACKETS_PER_BATCH: usize = 256;

/// `GET` without a session id: opens a session and answers with its open packet.
pub async fn handshake(
    req: &HttpRequest,
    io: &Arc<SocketIo>,
    token: Option<String>,
) -> Result<HttpResponse, HttpError> {
    let slot = io.admit(req)?;
    let handle = EioSession::open_polling(io.clone(), super::peer(req), token, slot);
    poll(handle, io.settings.max_payload_bytes).await
}

/// `GET` with a session id: waits for packets (at most about one ping interval: pings are packets).
pub async fn get(io: &SocketIo, sid: &str) -> Result<HttpResponse, HttpError> {
    let handle = session(io, sid)?;
    poll(handle, io.settings.max_payload_bytes).await
}

/// `POST` with a session id: the client's packets.
pub async fn post(
    req: &HttpRequest,
    mut body: web::Payload,
    io: &SocketIo,
    sid: &str,
) -> Result<HttpResponse, HttpError> {
    let handle = session(io, sid)?;
    let max = io.settings.max_payload_bytes;
    let too_large = |handle: &SessionHandle| {
        let reason = CloseReason::TooLarge { max };
        handle.addr.do_send(Close { reason: reason.clone() });
        HttpError::closed(&reason)
    };
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(&handle));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024).min(max));
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| HttpError::new(HttpErrorCode::BadRequest, format!("could not read the body: {e}")))?;
        if buf.len() + chunk.len() > max {
            return Err(too_large(&handle));
        }
        buf.extend_from_slice(&chunk);
    }
    let body = buf.freeze();
    let mut packets = payload_packets(&body);
    loop {
        // In batches, each handled before the next is decoded: what a payload costs beyond its body
        // stays small however many packets it holds.
        let mut batch = Vec::with_capacity(PACKETS_PER_BATCH);
        for packet in packets.by_ref().take(PACKETS_PER_BATCH) {
            match packet {
                Ok(p) => batch.push(p),
                Err(e) => {
                    let reason = CloseReason::Engine(e);
                    // The packets before the broken one are handled first, as they were sent.
                    if !batch.is_empty() {
                        let _ = handle.addr.send(Incoming { packets: batch }).await;
                    }
                    handle.addr.do_send(Close { reason: reason.clone() });
                    return Err(HttpError::closed(&reason));
                }
            }
        }
        if batch.is_empty() {
            return Ok(HttpResponse::Ok().content_type("text/html").body("ok"));
        }
        match handle.addr.send(Incoming { packets: batch }).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(HttpError::closed(&reason)),
            Err(_) => return Err(HttpError::unknown_sid()),
        }
    }
}

fn session(io: &SocketIo, sid: &str) -> Result<SessionHandle, HttpError> {
    let handle = io.sessions.get(sid).ok_or_else(HttpError::unknown_sid)?;
    if handle.transport() != Transport::Polling {
        return Err(HttpError::new(
            HttpErrorCode::BadRequest,
            "the session was upgraded to WebSocket; polling requests are refused",
        ));
    }
    Ok(handle)
}

/// Ends the running-poll mark however the GET ends (answered, or dropped when the client went away).
struct PollGuard<'a>(&'a SessionHandle);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.0.queue.end_poll();
    }
}

async fn poll(handle: SessionHandle, max_payload: usize) -> Result<HttpResponse, HttpError> {
    if !handle.queue.begin_poll() {
        let reason = CloseReason::DuplicatePoll;
        handle.addr.do_send(Close { reason: reason.clone() });
        return Err(HttpError::closed(&reason));
    }
    let _guard = PollGuard(&handle);
    match poll_fn(|cx| handle.queue.poll_payload(cx, max_payload)).await {
        Some(payload) => Ok(HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/plain; charset=UTF-8"))
            .insert_header(("Cache-Control", "no-store"))
            .body(payload)),
        None => Err(HttpError::unknown_sid()),
    }
}
