//! permessage-deflate (RFC 7692) on /ws: negotiated only when `[ws] permessage_deflate` is on and the client
//! offers it; updates and replies compressed (RSV1) to the same JSON plain clients get; compressed client
//! messages understood; zip bombs and corrupt streams closed with a named reason.
//!
//! tokio-tungstenite (0.30) has no permessage-deflate, so the deflate client here is a raw one over TCP:
//! the handshake by hand, frames masked and parsed by hand, payloads (de)compressed with flate2 as any
//! client does (raw deflate, the `00 00 ff ff` tail stripped and appended back).

mod common;

use std::time::Duration;

use common::{Client, TestServer, Toml};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OFFER: &str = "permessage-deflate; client_max_window_bits";
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One frame as received: RSV1 (compressed), opcode, payload (still compressed if RSV1).
#[derive(Debug)]
struct Frame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A WebSocket client over a plain TCP stream.
struct RawClient {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    extensions: Option<String>,
}

impl RawClient {
    /// Opens /ws with `extensions` as the `Sec-WebSocket-Extensions` header (raw bytes), if any.
    async fn connect(server: &TestServer, extensions: Option<&[u8]>) -> RawClient {
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        let mut req = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            server.addr
        )
        .into_bytes();
        if let Some(ext) = extensions {
            req.extend_from_slice(b"Sec-WebSocket-Extensions: ");
            req.extend_from_slice(ext);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        tcp.write_all(&req).await.expect("handshake");
        let mut buf = Vec::new();
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("read handshake");
            assert!(n > 0, "closed during the handshake: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-extensions").then(|| v.trim().to_owned())
        });
        RawClient { tcp, buf: buf[end..].to_vec(), extensions }
    }

    async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.tcp.write_all(&out).await.expect("send");
    }

    /// Sends `msg` as one text frame, compressed (RSV1) or not.
    async fn send_json(&mut self, msg: &Value, compressed: bool) {
        let text = msg.to_string();
        if compressed {
            self.send_frame(0xc1, &deflate(text.as_bytes())).await;
        } else {
            self.send_frame(0x81, text.as_bytes()).await;
        }
    }

    /// The next frame; panics after `secs` seconds.
    async fn next_frame(&mut self, secs: u64) -> Frame {
        let read = async {
            loop {
                if let Some((frame, len)) = parse(&self.buf) {
                    self.buf.drain(..len);
                    return Some(frame);
                }
                let mut chunk = [0u8; 65536];
                let n = self.tcp.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        let frame = tokio::time::timeout(Duration::from_secs(secs), read).await.expect("timed out waiting for a frame");
        frame.expect("the server closed the connection without a close frame")
    }

    /// The next text message: whether it came compressed, and its JSON. Skips pings; panics on close.
    async fn next_json(&mut self, secs: u64) -> (bool, Value) {
        loop {
            let f = self.next_frame(secs).await;
            match f.opcode {
                0x1 => {
                    let text = if f.rsv1 { inflate(&f.payload) } else { f.payload };
                    return (f.rsv1, serde_json::from_slice(&text).expect("JSON"));
                }
                0x9 | 0xa => continue,
                op => panic!("expected a text frame, got opcode {op:#x}: {}", String::from_utf8_lossy(&f.payload)),
            }
        }
    }

    /// The next message of `kind`, with whether it came compressed.
    async fn next_of(&mut self, kind: &str, secs: u64) -> (bool, Value) {
        loop {
            let (rsv1, v) = self.next_json(secs).await;
            if v["type"] == kind {
                return (rsv1, v);
            }
        }
    }

    /// Reads until the close frame; its code and reason.
    async fn close_frame(&mut self, secs: u64) -> (u16, String) {
        loop {
            let f = self.next_frame(secs).await;
            if f.opcode == 0x8 {
                assert!(!f.rsv1, "control frames are never compressed");
                let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                return (code, String::from_utf8_lossy(&f.payload[2..]).into_owned());
            }
        }
    }
}

/// A whole unmasked server frame at the start of `buf`, and its length.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    let (first, second) = (*buf.first()?, *buf.get(1)?);
    assert_eq!(second & 0x80, 0, "server frames are unmasked");
    let (at, len) = match second & 0x7f {
        126 => (4, u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize),
        127 => (10, u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize),
        n => (2, n as usize),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    assert_eq!(first & 0x80, 0x80, "the server sends whole messages");
    assert_eq!(first & 0x30, 0, "RSV2 and RSV3 stay clear");
    Some((Frame { rsv1: first & 0x40 != 0, opcode: first & 0x0f, payload }, at + len))
}

/// A message compressed as a client compresses it: raw deflate, sync flush, tail stripped.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync).expect("deflate");
    assert_eq!(c.total_in() as usize, data.len(), "the buffer was large enough");
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

/// A compressed server message inflated as RFC 7692 §7.2.2 says: the tail appended back.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 8 + 1024);
    loop {
        let before = d.total_in();
        d.decompress_vec(&input[d.total_in() as usize..], &mut out, FlushDecompress::Sync).expect("valid deflate data");
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        if d.total_in() == before && out.len() < out.capacity() {
            panic!("the compressed message is truncated");
        }
        out.reserve(out.capacity());
    }
}

async fn deflate_server() -> TestServer {
    TestServer::start(&[("ws.permessage_deflate", Toml::Boolean(true))]).await
}

/// The update without the send time (each send stamps its own).
fn bar_of(update: &Value) -> Value {
    let mut v = update.clone();
    v.as_object_mut().unwrap().remove("ts_sent");
    v
}

/// Keeps in `state` the newest state of bar `ts` (the update without its send time and correction mark);
/// `Some(true)` once a bar four seconds newer closed, after which none can come.
fn newest_state(update: &Value, ts: i64, state: &mut Option<Value>) -> Option<bool> {
    let at = update["data"]["timestamp"].as_i64()?;
    if at == ts {
        let mut v = bar_of(update);
        v.as_object_mut()?.remove("correction");
        *state = Some(v);
    }
    Some(update["data"]["closed"] == true && at >= ts + 4_000)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_deflate_gets_compressed_updates_that_inflate_to_the_plain_json() {
    let server = deflate_server().await;
    let mut deflated = RawClient::connect(&server, Some(OFFER.as_bytes())).await;
    assert_eq!(deflated.extensions.as_deref(), Some(ANSWER));
    let mut plain = Client::connect(&server).await;

    deflated.send_json(&json!({"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"1s"}), false).await;
    deflated.next_of("subscribed", 10).await;
    plain.subscribe(&["BTCUSDT"], "1s").await;

    // Compare one bar's newest state on both: a bar whose second began after the plain client subscribed
    // (both were sent all of it), read on each until a bar four seconds newer closed (past the 2 s grace, no
    // correction of it can follow). Not its first close: a late trade between the two clients' send phases
    // gives the later client the corrected close at once (a full run: 14 trades on one, 15 on the other).
    let subscribed_at = now_ms();
    let want = loop {
        let (rsv1, update) = deflated.next_of("price_update", 10).await;
        assert!(rsv1, "a price update to a deflate client is compressed: {update}");
        let ts = update["data"]["timestamp"].as_i64().expect("a timestamp");
        if update["data"]["closed"] == true && ts >= subscribed_at + 1_000 {
            break (ts, update);
        }
    };
    let (want, close) = want;
    let mut deflated_state = None;
    newest_state(&close, want, &mut deflated_state);
    loop {
        let (rsv1, update) = deflated.next_of("price_update", 10).await;
        assert!(rsv1, "a price update to a deflate client is compressed: {update}");
        if newest_state(&update, want, &mut deflated_state) == Some(true) {
            break;
        }
    }
    let mut plain_state = None;
    loop {
        let update = plain.next_of("price_update", 10).await;
        if newest_state(&update, want, &mut plain_state) == Some(true) {
            break;
        }
    }
    assert!(deflated_state.is_some(), "the deflate client got bar {want}");
    assert_eq!(plain_state, deflated_state, "the inflated JSON is the plain JSON");
    let stats = server.stats().await;
    // The counter is process-wide: the other tests of this file, running at the same time, add to it.
    assert!(stats["ws_deflate_connections"].as_u64() >= Some(1), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_client_messages_are_understood_and_history_arrives_compressed_and_whole() {
    let server = deflate_server().await;
    let mut c = RawClient::connect(&server, Some(OFFER.as_bytes())).await;

    c.send_json(&json!({"type":"ping","id":"small"}), true).await;
    let (_, pong) = c.next_json(10).await;
    assert_eq!(pong, json!({"type":"pong","id":"small"}));

    // A compressed message in two fragments: RSV1 on the first only (RFC 7692 §6.1).
    let msg = json!({"type":"subscribe","trading_pairs":["ETHUSDT"],"interval":"1m","id":"frag"}).to_string();
    let compressed = deflate(msg.as_bytes());
    let (head, rest) = compressed.split_at(compressed.len() / 2);
    c.send_frame(0x41, head).await;
    c.send_frame(0x80, rest).await;
    let (_, ack) = c.next_of("subscribed", 10).await;
    assert_eq!(ack["id"], "frag");
    assert_eq!(ack["trading_pairs"], json!(["ETHUSDT"]));

    // The same bars of the past, asked by a compressed request and by a plain client.
    let end = (common::feeds::now_ms() / 60_000 - 30) * 60_000;
    let request = json!({"type":"get_historical","trading_pair":"ETHUSDT","interval":"1m","limit":1000,
                         "end_time": end,"id":"h"});
    c.send_json(&request, true).await;
    let (rsv1, reply) = c.next_of("historical", 20).await;
    assert!(rsv1, "a history reply is compressed");
    assert_eq!(reply["data"].as_array().map(Vec::len), Some(1000));
    assert_eq!(reply["id"], "h");

    let mut plain = Client::connect(&server).await;
    plain.send(request).await;
    let want = plain.next_of("historical", 20).await;
    assert_eq!(reply, want, "inflated, the reply is the plain one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_offer_it_and_every_client_when_it_is_off_get_plain_frames() {
    let on = deflate_server().await;
    let mut quiet = RawClient::connect(&on, None).await;
    assert_eq!(quiet.extensions, None);
    quiet.send_json(&json!({"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"1s"}), false).await;
    for _ in 0..5 {
        let (rsv1, _) = quiet.next_of("price_update", 10).await;
        assert!(!rsv1);
    }

    let off = TestServer::start(&[]).await;
    let mut asking = RawClient::connect(&off, Some(OFFER.as_bytes())).await;
    assert_eq!(asking.extensions, None, "off by default");
    asking.send_json(&json!({"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"1s"}), false).await;
    for _ in 0..5 {
        let (rsv1, _) = asking.next_of("price_update", 10).await;
        assert!(!rsv1);
    }
    // Not negotiated, a compressed frame breaks the protocol (RFC 6455 §5.2).
    asking.send_json(&json!({"type":"ping"}), true).await;
    let (code, _) = asking.close_frame(10).await;
    assert_eq!(code, 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_bomb_or_a_corrupt_stream_closes_that_connection_with_a_reason_and_others_carry_on() {
    let server = deflate_server().await;
    let mut bystander = RawClient::connect(&server, Some(OFFER.as_bytes())).await;
    bystander.send_json(&json!({"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"1s"}), false).await;
    bystander.next_of("subscribed", 10).await;

    // 4 MB of JSON in a few KB: past the 65,536-byte message budget by far.
    let mut bomber = RawClient::connect(&server, Some(OFFER.as_bytes())).await;
    let bomb = deflate(format!(r#"{{"type":"ping","pad":"{}"}}"#, " ".repeat(4 << 20)).as_bytes());
    assert!(bomb.len() < 65_536 / 4, "{}", bomb.len());
    bomber.send_frame(0xc1, &bomb).await;
    assert_eq!(
        bomber.close_frame(10).await,
        (1009, "compressed message inflates past the 65536-byte limit".to_owned())
    );

    let mut corrupt = RawClient::connect(&server, Some(OFFER.as_bytes())).await;
    corrupt.send_frame(0xc1, &[0xff, 0xfe, 0xfd, 0xfc, 0xfb]).await;
    let (code, reason) = corrupt.close_frame(10).await;
    assert_eq!(code, 1007);
    assert!(reason.starts_with("invalid compressed message"), "{reason}");

    // RSV1 on a control frame is a protocol error (RFC 7692 §6.1).
    let mut odd = RawClient::connect(&server, Some(OFFER.as_bytes())).await;
    odd.send_frame(0xc9, b"").await;
    let (code, reason) = odd.close_frame(10).await;
    assert_eq!((code, reason.as_str()), (1002, "protocol error: RSV1 set on a control or continuation frame"));

    // The bystander keeps getting updates, and answers.
    for _ in 0..3 {
        bystander.next_of("price_update", 10).await;
    }
    bystander.send_json(&json!({"type":"ping","id":1}), true).await;
    assert_eq!(bystander.next_of("pong", 10).await.1, json!({"type":"pong","id":1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_unmeetable_extension_header_opens_a_plain_connection() {
    let server = deflate_server().await;
    let headers: [&[u8]; 5] = [
        b"permessage-deflate; client_max_window_bits=\"15",
        b"permessage-deflate;;; =",
        b"\xff\xfe permessage-deflate",
        b"permessage-deflate; server_max_window_bits=9",
        b"permessage-deflate; mystery_parameter",
    ];
    for header in headers {
        let mut c = RawClient::connect(&server, Some(header)).await;
        assert_eq!(c.extensions, None, "{}", String::from_utf8_lossy(header));
        c.send_json(&json!({"type":"subscribe","trading_pairs":["BTCUSDT"],"interval":"1s"}), false).await;
        let (rsv1, _) = c.next_of("price_update", 10).await;
        assert!(!rsv1);
    }
    // A declined offer followed by one the server can meet: the second is taken.
    let c =
        RawClient::connect(&server, Some(b"permessage-deflate; server_max_window_bits=9, permessage-deflate")).await;
    assert_eq!(c.extensions.as_deref(), Some(ANSWER));
}
