//! permessage-deflate (RFC 7692) for the frames the server sends, and the inflating of what clients send.
//!
//! The server always negotiates `server_no_context_takeover` and `client_no_context_takeover`: every
//! message is compressed on its own. That is what lets the hub compress an update ONCE and share the
//! compressed frame between every client that negotiated the extension, exactly as it shares the plain
//! frame between the others ([`SharedFrame`]): no compressor (and no 32 KB window, ~300 KB of zlib state)
//! per connection. The price is a worse ratio than a context kept across messages; measured in
//! docs/BENCHMARKS.md ("Bytes on the wire: permessage-deflate").
//!
//! Frames here are the server's own, as `protocol::frame` builds them: FIN set, unmasked, one frame per
//! message. Control frames (ping, pong, close) are never compressed (RFC 7692 §6.1).

use std::cell::RefCell;
use std::sync::OnceLock;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Payloads shorter than this are sent plain (RSV1 clear, legal per message): an update of a few dozen
/// bytes gains nothing from deflate's block header and costs the compression call. Measured: a
/// `price_update` (224 bytes of JSON) shrinks to 171 at level 1, so the updates themselves are compressed.
pub const MIN_COMPRESSED_PAYLOAD: usize = 64;

/// zlib level 1 ("fast"): the usual choice for streaming. Measured (docs/BENCHMARKS.md): on an update, level
/// 6 saves 2 bytes of 171 for 1.5× the CPU; on a 5,000-bar history reply 18.8 % instead of 25.8 % of the JSON,
/// for 10× the CPU (36 ms instead of 3.4 ms).
const LEVEL: u32 = 1;

/// The four bytes a sync flush ends with; RFC 7692 §7.2.1 strips them from every message and the
/// receiver appends them back before inflating.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV_ALL: u8 = 0x70;

/// A frame built once for many clients: the plain frame, and its compressed form made the first time a
/// client that negotiated deflate needs it (a server with no such client never compresses anything).
#[derive(Debug)]
pub struct SharedFrame {
    plain: Bytes,
    deflated: OnceLock<Bytes>,
}

impl SharedFrame {
    pub fn new(plain: Bytes) -> SharedFrame {
        SharedFrame { plain, deflated: OnceLock::new() }
    }

    /// The frame to queue for a client: compressed if it negotiated deflate.
    pub fn for_client(&self, deflate: bool) -> Bytes {
        self.bytes_for(deflate).clone()
    }

    /// The same, borrowed: for a caller that copies it (`hub::staging`), no shared-counter increment.
    pub fn bytes_for(&self, deflate: bool) -> &Bytes {
        if deflate {
            self.deflated.get_or_init(|| compress_frame(&self.plain))
        } else {
            &self.plain
        }
    }
}

/// Frames the hub compresses for one client (the first frame of an indicator or signal stream, acks) above
/// this size go plain: compressing a 5,000-value indicator history (~150 KB, ~1 ms) on the hub's thread
/// would hold up every client's updates. The shared update frames are far smaller.
pub const MAX_HUB_COMPRESSED_PAYLOAD: usize = 16 * 1024;

/// [`compress_frame`] for frames (header included) up to [`MAX_HUB_COMPRESSED_PAYLOAD`] bytes; larger ones come
/// back plain.
pub fn compress_small_frame(frame: &Bytes) -> Bytes {
    if frame.len() > MAX_HUB_COMPRESSED_PAYLOAD {
        return frame.clone();
    }
    compress_frame(frame)
}

/// The compressed form of one server data frame (RSV1 set, payload deflated, sync tail stripped). Returns
/// `frame` itself when it is a control frame, already compressed, not one whole frame, or when compressing
/// would not make it smaller.
pub fn compress_frame(frame: &Bytes) -> Bytes {
    let Some((first, payload)) = data_frame(frame) else { return frame.clone() };
    if payload.len() < MIN_COMPRESSED_PAYLOAD {
        return frame.clone();
    }
    let Some(deflated) = deflate(payload) else { return frame.clone() };
    if deflated.len() >= payload.len() {
        return frame.clone();
    }
    crate::protocol::frame::with_first_byte(first | RSV1, &deflated)
}

/// The first byte and the payload of `frame` if it is exactly one uncompressed, unfragmented text or
/// binary frame.
fn data_frame(frame: &[u8]) -> Option<(u8, &[u8])> {
    let first = *frame.first()?;
    let opcode = first & 0x0f;
    if first & FIN == 0 || first & RSV_ALL != 0 || !(opcode == 0x1 || opcode == 0x2) {
        return None;
    }
    let (start, len) = match *frame.get(1)? & 0x7f {
        126 => (4, usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]))),
        127 => (10, usize::try_from(u64::from_be_bytes(frame.get(2..10)?.try_into().ok()?)).ok()?),
        n => (2, usize::from(n)),
    };
    let payload = frame.get(start..)?;
    (payload.len() == len).then_some((first, payload))
}

thread_local! {
    /// One compressor per thread (the hub's, the history thread, the HTTP workers), reset for every message
    /// (`server_no_context_takeover`): its state is a few hundred KB, allocated once per thread instead of
    /// once per frame. A 224-byte update still costs ~20 µs, mostly the reset (`cargo bench --bench deflate`):
    /// a cost per frame, shared by every deflate client the frame goes to.
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

/// Raw deflate of one message with a sync flush, its tail stripped (RFC 7692 §7.2.1).
fn deflate(payload: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|c| {
        c.reset();
        deflate_with(c, payload)
    })
}

fn deflate_with(c: &mut Compress, payload: &[u8]) -> Option<Vec<u8>> {
    // Fast levels rarely grow text; headroom for the block headers and the sync tail.
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(c.total_in()).ok()?;
        let rest = payload.get(consumed..)?;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        c.compress_vec(rest, &mut out, FlushCompress::Sync).ok()?;
        // Done once every input byte is in and the flush fitted (the buffer was not filled to the brim).
        if usize::try_from(c.total_in()).ok()? == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
    Some(out)
}

/// Why a compressed client message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// It inflates past the message budget: stopped there, never allocated beyond it.
    #[error("compressed message inflates past the {max}-byte limit")]
    TooLarge { max: usize },
    /// Not a valid raw deflate stream.
    #[error("invalid compressed data: {0}")]
    Corrupt(String),
}

/// Inflates client messages, one at a time (`client_no_context_takeover`: each starts afresh). One per
/// connection that negotiated deflate, reused across its messages.
pub struct Inflater {
    inner: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater { inner: Decompress::new(false) }
    }
}

impl Inflater {
    /// The message whose compressed payload is `compressed`, at most `max` bytes of it: inflating stops
    /// one byte past `max`, so a small message that would inflate to gigabytes costs `max` bytes.
    pub fn inflate(&mut self, compressed: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
        self.inner.reset(false);
        let mut input = Vec::with_capacity(compressed.len() + SYNC_TAIL.len());
        input.extend_from_slice(compressed);
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).max(64).min(max.saturating_add(1)));
        loop {
            if out.len() == out.capacity() {
                // Full and still within the budget: grow, never past one byte over it.
                let room = out.capacity().max(1024).min(max.saturating_add(1) - out.len());
                out.reserve_exact(room);
            }
            let before = (self.inner.total_in(), out.len());
            let consumed = usize::try_from(before.0).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            let status = self
                .inner
                .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                .map_err(|e| InflateError::Corrupt(e.to_string()))?;
            if out.len() > max {
                return Err(InflateError::TooLarge { max });
            }
            // A final block ends the message (anything after it is ignored).
            if status == Status::StreamEnd {
                return Ok(out);
            }
            let all_in = usize::try_from(self.inner.total_in()).is_ok_and(|n| n >= input.len());
            let room_left = out.len() < out.capacity();
            if all_in && room_left {
                return Ok(out);
            }
            if before == (self.inner.total_in(), out.len()) && room_left {
                return Err(InflateError::Corrupt("the compressed data stops making progress".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame;

    fn payload_of(f: &[u8]) -> &[u8] {
        let start = match f[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        &f[start..]
    }

    /// Inflated the way a client does (flate2, the tail appended), a compressed frame is the plain one.
    #[test]
    fn a_compressed_frame_inflates_to_the_plain_payload() {
        for size in [64, 300, 70_000] {
            let text: String = (0..size).map(|i| char::from(b'a' + (i % 7) as u8)).collect();
            let plain = frame::text(text.as_bytes());
            let deflated = compress_frame(&plain);
            assert_eq!(deflated[0], 0xc1, "FIN, RSV1, text");
            let mut compressed = payload_of(&deflated).to_vec();
            assert!(compressed.len() < size);
            compressed.extend_from_slice(&SYNC_TAIL);
            // As a client would: a fresh raw inflater, no final block to wait for.
            let mut out = Vec::with_capacity(size + 1);
            Decompress::new(false).decompress_vec(&compressed, &mut out, FlushDecompress::Sync).unwrap();
            assert_eq!(out, text.as_bytes());
            assert_eq!(Inflater::default().inflate(payload_of(&deflated), size).unwrap(), text.as_bytes());
        }
    }

    #[test]
    fn control_small_and_incompressible_frames_stay_plain() {
        let ping = frame::ping(b"");
        assert_eq!(compress_frame(&ping), ping);
        let close = frame::close(1000, &"x".repeat(100));
        assert_eq!(compress_frame(&close), close);
        let small = frame::text(br#"{"type":"pong"}"#);
        assert_eq!(compress_frame(&small), small);
        // Bytes that do not repeat: deflate would only add its headers.
        let noise: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let noisy = frame::text(&noise);
        assert_eq!(compress_frame(&noisy), noisy);
        let once = compress_frame(&frame::text(&[b'a'; 500]));
        assert_eq!(compress_frame(&once), once, "an RSV1 frame is not compressed twice");
    }

    #[test]
    fn the_hub_leaves_large_single_frames_plain() {
        let small = frame::text(&[b'a'; 1000]);
        assert_eq!(compress_small_frame(&small)[0], 0xc1);
        let large = frame::text(&vec![b'a'; MAX_HUB_COMPRESSED_PAYLOAD + 1]);
        assert_eq!(compress_small_frame(&large), large);
    }

    #[test]
    fn the_shared_frame_compresses_once() {
        let shared = SharedFrame::new(frame::text(&[b'z'; 1000]));
        assert_eq!(shared.for_client(false)[0], 0x81);
        let a = shared.for_client(true);
        let b = shared.for_client(true);
        assert_eq!(a[0], 0xc1);
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same compressed bytes for every client");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let bomb = compress_frame(&frame::text(&vec![b'0'; 10 << 20]));
        let compressed = payload_of(&bomb);
        assert!(compressed.len() < 100_000, "{}", compressed.len());
        let err = Inflater::default().inflate(compressed, 65_536).unwrap_err();
        assert_eq!(err, InflateError::TooLarge { max: 65_536 });
        assert_eq!(err.to_string(), "compressed message inflates past the 65536-byte limit");
    }

    #[test]
    fn exactly_the_limit_is_allowed_and_the_inflater_is_reusable() {
        let mut inflater = Inflater::default();
        let f = compress_frame(&frame::text(&[b'q'; 4096]));
        assert_eq!(inflater.inflate(payload_of(&f), 4096).unwrap().len(), 4096);
        assert!(matches!(inflater.inflate(payload_of(&f), 4095), Err(InflateError::TooLarge { max: 4095 })));
        assert_eq!(inflater.inflate(payload_of(&f), 4096).unwrap().len(), 4096);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let mut inflater = Inflater::default();
        assert!(matches!(inflater.inflate(&[0xff, 0xff, 0xff, 0xff], 1000), Err(InflateError::Corrupt(_))));
        // A final block followed by more data: the message ends at the block.
        let final_block = [0x03, 0x00];
        assert_eq!(inflater.inflate(&final_block, 10).unwrap(), b"");
    }
}
