//! Client frames of a permessage-deflate connection, inflated before actix-http's codec sees them.
//!
//! actix-http's `Codec` refuses every frame with a reserved bit set (RSV1 means "compressed" here), and
//! has no extension hook. So on a connection that negotiated deflate, [`InflatingPayload`] sits between
//! the socket and the codec: it cuts the byte stream into frames, passes uncompressed ones through
//! untouched, and replaces each compressed message (RSV1 on its first frame, RFC 7692 §6) with one plain
//! frame holding the inflated payload. Everything else (fragment reassembly, control frames, UTF-8, the
//! session's size and rate limits) stays with the codec and the session, as on a plain connection.
//!
//! Budgets: a frame, and a compressed message's fragments together, may be at most `max_frame` bytes (the
//! codec's own hard limit); a message may inflate to at most `max_message` bytes (`[ws] max_frame_bytes`):
//! inflating stops one byte past it and the connection is closed with 1009 ("zip bombs" cost the budget,
//! never the bomb). Invalid deflate data closes with 1007; RSV1 where RFC 7692 forbids it with 1002.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use candlecast_actors::deflate::{InflateError, Inflater};
use candlecast_actors::outbox::{CloseReason, Outbox};
use futures_util::Stream;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;

thread_local! {
    /// One inflater per HTTP worker thread, not per connection: its state (a 32 KB window and tables, ~40 KB)
    /// per idle connection added 40 KB to every deflate client's RSS (measured: 17 → 58 KB per client at
    /// 2,000 clients). `client_no_context_takeover` makes each message independent, so any connection's
    /// message may use it; a message is inflated in one call, never across awaits.
    static INFLATER: RefCell<Inflater> = RefCell::new(Inflater::default());
}

/// See the module documentation.
pub(super) struct InflatingPayload<S> {
    inner: S,
    /// Bytes read and not yet cut into frames.
    pending: BytesMut,
    /// The compressed message being collected across fragments: its opcode and payload so far.
    message: Option<(u8, Vec<u8>)>,
    max_frame: usize,
    max_message: usize,
    /// Where a fault is reported: the close frame the client gets names it.
    outbox: Arc<Outbox>,
    done: bool,
}

impl<S> InflatingPayload<S> {
    pub(super) fn new(inner: S, outbox: Arc<Outbox>, max_frame: usize, max_message: usize) -> Self {
        InflatingPayload { inner, pending: BytesMut::new(), message: None, max_frame, max_message, outbox, done: false }
    }

    /// Cuts every whole frame out of `pending`; returns what the codec is to read.
    fn process(&mut self) -> Result<BytesMut, CloseReason> {
        let mut out = BytesMut::new();
        while let Some(frame) = self.next_frame()? {
            let (first, opcode) = (frame.first, frame.first & 0x0f);
            let compressed = first & RSV1 != 0;
            match (compressed, opcode, self.message.is_some()) {
                (true, 0x1 | 0x2, false) => {
                    let payload = frame.payload;
                    if first & FIN != 0 {
                        self.emit(&mut out, opcode, &payload)?;
                    } else {
                        self.message = Some((opcode, payload));
                    }
                }
                (true, _, _) => {
                    return Err(CloseReason::Protocol("RSV1 set on a control or continuation frame".into()));
                }
                (false, 0x1 | 0x2, true) => {
                    return Err(CloseReason::Protocol("a new message inside a fragmented message".into()));
                }
                (false, 0x0, true) => {
                    let Some((op, mut data)) = self.message.take() else { continue };
                    if data.len() + frame.payload.len() > self.max_frame {
                        return Err(CloseReason::FrameTooLarge { max: self.max_frame });
                    }
                    data.extend_from_slice(&frame.payload);
                    if first & FIN != 0 {
                        self.emit(&mut out, op, &data)?;
                    } else {
                        self.message = Some((op, data));
                    }
                }
                // Uncompressed: exactly as received.
                (false, _, _) => out.extend_from_slice(&frame.raw),
            }
        }
        Ok(out)
    }

    /// Inflates a whole compressed message and writes it as one plain frame, masked (with a zero key, which
    /// leaves the payload as it is) because the codec accepts only masked client frames.
    fn emit(&mut self, out: &mut BytesMut, opcode: u8, compressed: &[u8]) -> Result<(), CloseReason> {
        let payload = INFLATER.with_borrow_mut(|inflater| inflater.inflate(compressed, self.max_message));
        let payload = payload.map_err(|e| match e {
            InflateError::TooLarge { max } => CloseReason::InflatedTooLarge { max },
            InflateError::Corrupt(why) => CloseReason::BadCompression(why),
        })?;
        out.reserve(payload.len() + 14);
        out.put_u8(FIN | opcode);
        let len = payload.len();
        if len < 126 {
            out.put_u8(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            out.put_u8(0x80 | 126);
            out.put_u16(len as u16);
        } else {
            out.put_u8(0x80 | 127);
            out.put_u64(len as u64);
        }
        out.put_slice(&[0; 4]);
        out.put_slice(&payload);
        Ok(())
    }

    /// The next whole frame in `pending`, taken out of it; `None` until all of it has arrived.
    fn next_frame(&mut self) -> Result<Option<Frame>, CloseReason> {
        let buf = &self.pending[..];
        let (Some(&first), Some(&second)) = (buf.first(), buf.get(1)) else { return Ok(None) };
        let masked = second & 0x80 != 0;
        let (header, len) = match second & 0x7f {
            126 => match buf.get(2..4) {
                Some(b) => (4, u64::from(u16::from_be_bytes([b[0], b[1]]))),
                None => return Ok(None),
            },
            127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) => (10, u64::from_be_bytes(b)),
                None => return Ok(None),
            },
            n => (2, u64::from(n)),
        };
        let len = match usize::try_from(len) {
            Ok(len) if len <= self.max_frame => len,
            _ => return Err(CloseReason::FrameTooLarge { max: self.max_frame }),
        };
        let key_len = if masked { 4 } else { 0 };
        let total = header + key_len + len;
        if buf.len() < total {
            return Ok(None);
        }
        let raw = self.pending.split_to(total).freeze();
        let mut payload = raw.get(header + key_len..).unwrap_or_default().to_vec();
        if let Some(key) = raw.get(header..header + key_len) {
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i % 4];
                }
            }
        }
        Ok(Some(Frame { first, payload, raw }))
    }
}

/// One client frame: its first byte (FIN, RSV, opcode), its unmasked payload and its bytes as received.
struct Frame {
    first: u8,
    payload: Vec<u8>,
    raw: Bytes,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for InflatingPayload<S> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.process() {
                Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(out.freeze()))),
                Ok(_) => {}
                Err(reason) => {
                    // The close frame names the fault; ending the stream stops the session, whose own
                    // (normal) close is then refused by the closed outbox.
                    tracing::debug!(reason = %reason, "closing a permessage-deflate client");
                    this.outbox.close(&reason);
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    if this.pending.is_empty() {
                        this.pending = BytesMut::from(bytes);
                    } else {
                        this.pending.extend_from_slice(bytes.chunk());
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use candlecast_actors::deflate::compress_frame;
    use candlecast_actors::protocol::frame;
    use futures_util::{stream, StreamExt};

    /// A client frame: masked with a fixed key.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [9, 8, 7, 6];
        let mut out = vec![first];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    /// The raw deflate data of `text`, as a client sends it (the server's compressor is a client's too).
    fn compressed(text: &[u8]) -> Vec<u8> {
        let f = compress_frame(&frame::text(text));
        assert_eq!(f[0], 0xc1, "compressible");
        let start = if f[1] & 0x7f == 126 { 4 } else { 2 };
        f[start..].to_vec()
    }

    /// What the codec is given, read from chunks of `chunk` bytes.
    async fn run(input: Vec<u8>, chunk: usize, max_message: usize) -> (Vec<u8>, Arc<Outbox>) {
        let chunks: Vec<Result<Bytes, PayloadError>> =
            input.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let outbox = Arc::new(Outbox::new(1 << 20));
        let mut adapter = InflatingPayload::new(stream::iter(chunks), outbox.clone(), 1 << 20, max_message);
        let mut out = Vec::new();
        while let Some(Ok(bytes)) = adapter.next().await {
            out.extend_from_slice(&bytes);
        }
        (out, outbox)
    }

    /// A plain frame passes as received; compressed messages, whole or fragmented with a ping between the
    /// fragments, come out as one plain frame each (zero mask key) — however the bytes are cut into reads.
    #[actix_rt::test]
    async fn frames_are_cut_and_inflated_across_any_reads() {
        let text = br#"{"type":"subscribe","trading_pairs":["BTCUSDT","ETHUSDT","ADAUSDT"],"interval":"1m"}"#;
        let z = compressed(text);
        let (a, b) = z.split_at(z.len() / 2);
        let plain = client_frame(0x81, br#"{"type":"ping"}"#);
        let ping = client_frame(0x89, b"hi");
        let mut input = plain.clone();
        input.extend(client_frame(0xc1, &z));
        input.extend(client_frame(0x41, a));
        input.extend(ping.clone());
        input.extend(client_frame(0x80, b));
        let mut inflated = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
        inflated.extend_from_slice(text);
        let mut want = plain;
        want.extend(&inflated);
        want.extend(ping);
        want.extend(&inflated);
        for chunk in [1, 3, 7, input.len()] {
            let (out, outbox) = run(input.clone(), chunk, 65_536).await;
            assert_eq!(out, want, "read {chunk} bytes at a time");
            assert!(!outbox.is_closed());
        }
    }

    #[actix_rt::test]
    async fn faults_close_the_outbox_with_their_reason_and_end_the_stream() {
        let bomb = compressed(&vec![b' '; 100_000]);
        let cases: Vec<(Vec<u8>, CloseReason)> = vec![
            (client_frame(0xc1, &bomb), CloseReason::InflatedTooLarge { max: 1000 }),
            (client_frame(0xc1, &[0xff, 0xff]), CloseReason::BadCompression(String::new())),
            (client_frame(0xc9, b""), CloseReason::Protocol(String::new())),
            ([client_frame(0x41, &bomb[..4]), client_frame(0x81, b"x")].concat(), CloseReason::Protocol(String::new())),
        ];
        for (input, want) in cases {
            let (out, outbox) = run(input, 5, 1000).await;
            assert!(out.is_empty());
            assert!(outbox.is_closed());
            let waker = futures_util::task::noop_waker();
            let closing = outbox.poll_pop(&mut std::task::Context::from_waker(&waker));
            let std::task::Poll::Ready(Some(f)) = closing else { panic!("no close frame") };
            assert_eq!(u16::from_be_bytes([f[2], f[3]]), want.code(), "{want:?}");
        }
    }
}
