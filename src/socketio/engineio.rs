//! Engine.IO v4 packets and HTTP long-polling payloads (the layer under Socket.IO).
//!
//! A text packet is one type digit and its data: `0{...}` open, `1` close, `2` ping (`2probe` during an
//! upgrade), `3` pong, `4<text>` message, `5` upgrade, `6` noop. A polling payload joins packets with the
//! record separator `\x1e`; a binary message inside it is `b<base64>`. Over WebSocket each frame is one
//! packet and a binary message is a binary frame without a type byte.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

/// What separates packets in a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// One Engine.IO packet. Text data stays in the `Bytes` it arrived in (checked to be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Handshake data (JSON), server to client.
    Open(Bytes),
    Close,
    /// Data is empty, or `probe` during an upgrade.
    Ping(Bytes),
    Pong(Bytes),
    /// A text message: a Socket.IO packet.
    Message(Bytes),
    /// A binary message: a Socket.IO binary attachment.
    Binary(Bytes),
    Upgrade,
    Noop,
}

/// Why a packet or payload could not be decoded. Each closes the session that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EioError {
    #[error("empty Engine.IO packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?} (expected a digit 0-6, or b for base64 binary)")]
    UnknownType(char),
    #[error("Engine.IO packet is not valid UTF-8 text")]
    NotUtf8,
    #[error("binary Engine.IO packet is not valid base64")]
    BadBase64,
}

impl Packet {
    /// Decodes a text packet (a WebSocket text frame, or one part of a polling payload).
    pub fn decode_text(raw: Bytes) -> Result<Packet, EioError> {
        let Some(&first) = raw.first() else { return Err(EioError::Empty) };
        if first == b'b' {
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(&raw[1..]).map_err(|_| EioError::BadBase64)?;
            return Ok(Packet::Binary(Bytes::from(decoded)));
        }
        if std::str::from_utf8(&raw).is_err() {
            return Err(EioError::NotUtf8);
        }
        let data = raw.slice(1..);
        Ok(match first {
            b'0' => Packet::Open(data),
            b'1' => Packet::Close,
            b'2' => Packet::Ping(data),
            b'3' => Packet::Pong(data),
            b'4' => Packet::Message(data),
            b'5' => Packet::Upgrade,
            b'6' => Packet::Noop,
            // The first byte of valid UTF-8 text that is not ASCII starts a longer character.
            _ => return Err(EioError::UnknownType(first_char(&raw))),
        })
    }

    /// Encodes for a WebSocket text frame or a polling payload. Binary messages come out as
    /// `b<base64>`; over WebSocket send their bytes in a binary frame instead.
    pub fn encode(&self) -> Bytes {
        let (kind, data): (u8, &[u8]) = match self {
            Packet::Open(d) => (b'0', d),
            Packet::Close => (b'1', b""),
            Packet::Ping(d) => (b'2', d),
            Packet::Pong(d) => (b'3', d),
            Packet::Message(d) => (b'4', d),
            Packet::Upgrade => (b'5', b""),
            Packet::Noop => (b'6', b""),
            Packet::Binary(d) => {
                let mut out = String::with_capacity(1 + d.len().div_ceil(3) * 4);
                out.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(d, &mut out);
                return Bytes::from(out);
            }
        };
        let mut out = BytesMut::with_capacity(1 + data.len());
        out.put_u8(kind);
        out.put_slice(data);
        out.freeze()
    }
}

fn first_char(raw: &[u8]) -> char {
    std::str::from_utf8(raw).ok().and_then(|s| s.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Splits a polling payload (a POST body) into packets. An empty body is an error: clients never send one.
/// The server reads payloads with [`payload_packets`]; this collecting form is for the tests.
#[cfg(test)]
pub fn split_payload(body: &Bytes) -> Result<Vec<Packet>, EioError> {
    payload_packets(body).collect()
}

/// The packets of a polling payload one by one, so a transport can hand them over in small batches: a
/// 1 MB payload of one-byte packets is half a million of them, twenty times its size as a `Vec<Packet>`.
pub fn payload_packets(body: &Bytes) -> impl Iterator<Item = Result<Packet, EioError>> + '_ {
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let end = match body[start..].iter().position(|&b| b == SEPARATOR) {
            Some(offset) => start + offset,
            None => {
                done = true;
                body.len()
            }
        };
        let packet = Packet::decode_text(body.slice(start..end));
        start = end + 1;
        Some(packet)
    })
}

/// Joins encoded packets into one polling payload (a GET response body).
pub fn join_payload(encoded: &[Bytes]) -> Bytes {
    match encoded {
        [one] => one.clone(),
        _ => {
            let len = encoded.iter().map(Bytes::len).sum::<usize>() + encoded.len().saturating_sub(1);
            let mut out = BytesMut::with_capacity(len);
            for (i, p) in encoded.iter().enumerate() {
                if i > 0 {
                    out.put_u8(SEPARATOR);
                }
                out.put_slice(p);
            }
            out.freeze()
        }
    }
}

/// The open packet's data: `{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake<'a> {
    pub sid: &'a str,
    pub upgrades: &'a [&'a str],
    pub ping_interval: u64,
    pub ping_timeout: u64,
    pub max_payload: usize,
}

impl Handshake<'_> {
    /// The encoded open packet.
    pub fn packet(&self) -> Bytes {
        // Serializing this struct of strings and integers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        Packet::Open(Bytes::from(json)).encode()
    }
}

/// Engine.IO's error answers to HTTP requests: `{"code":N,"message":"..."}` (plus our `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorCode {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    Forbidden = 4,
    UnsupportedProtocolVersion = 5,
}

impl HttpErrorCode {
    /// Engine.IO's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            HttpErrorCode::UnknownTransport => "Transport unknown",
            HttpErrorCode::UnknownSid => "Session ID unknown",
            HttpErrorCode::BadHandshakeMethod => "Bad handshake method",
            HttpErrorCode::BadRequest => "Bad request",
            HttpErrorCode::Forbidden => "Forbidden",
            HttpErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Every packet type survives encode → decode.
    #[test]
    fn every_packet_type_round_trips() {
        let all = [
            Packet::Open(b(r#"{"sid":"x"}"#)),
            Packet::Close,
            Packet::Ping(b("")),
            Packet::Ping(b("probe")),
            Packet::Pong(b("probe")),
            Packet::Message(b(r#"2["hello",1]"#)),
            Packet::Message(b("héllo ✓")),
            Packet::Binary(Bytes::from_static(&[0, 1, 2, 255])),
            Packet::Upgrade,
            Packet::Noop,
        ];
        for p in all {
            assert_eq!(Packet::decode_text(p.encode()).unwrap(), p, "{p:?}");
        }
    }

    /// `4hello` is a message, `2probe` a probe, `bAQIDBA==` the bytes 1 2 3 4.
    #[test]
    fn decodes_the_documented_examples() {
        assert_eq!(Packet::decode_text(b("4hello")).unwrap(), Packet::Message(b("hello")));
        assert_eq!(Packet::decode_text(b("2probe")).unwrap(), Packet::Ping(b("probe")));
        assert_eq!(Packet::decode_text(b("3")).unwrap(), Packet::Pong(b("")));
        assert_eq!(Packet::decode_text(b("bAQIDBA==")).unwrap(), Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])));
        assert_eq!(Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])).encode(), b("bAQIDBA=="));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Packet::decode_text(b("")), Err(EioError::Empty));
        assert_eq!(Packet::decode_text(b("abc")), Err(EioError::UnknownType('a')));
        assert_eq!(Packet::decode_text(b("9")), Err(EioError::UnknownType('9')));
        assert_eq!(Packet::decode_text(b("é")), Err(EioError::UnknownType('é')));
        assert_eq!(Packet::decode_text(Bytes::from_static(&[b'4', 0xff, 0xfe])), Err(EioError::NotUtf8));
        assert_eq!(Packet::decode_text(b("b!!!")), Err(EioError::BadBase64));
    }

    #[test]
    fn payloads_split_and_join() {
        let body = b("4hello\u{1e}2\u{1e}bAQIDBA==\u{1e}4");
        let packets = split_payload(&body).unwrap();
        assert_eq!(
            packets,
            vec![
                Packet::Message(b("hello")),
                Packet::Ping(b("")),
                Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
                Packet::Message(b(""))
            ]
        );
        let encoded: Vec<Bytes> = packets.iter().map(Packet::encode).collect();
        assert_eq!(join_payload(&encoded), body);
        assert_eq!(join_payload(&[b("6")]), b("6"));
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert_eq!(split_payload(&b("")), Err(EioError::Empty));
        assert_eq!(split_payload(&b("4a\u{1e}\u{1e}4b")), Err(EioError::Empty), "an empty packet between separators");
        assert_eq!(split_payload(&b("4a\u{1e}x")), Err(EioError::UnknownType('x')));
    }

    #[test]
    fn handshake_has_the_v4_fields() {
        let h = Handshake {
            sid: "abc",
            upgrades: &["websocket"],
            ping_interval: 25_000,
            ping_timeout: 20_000,
            max_payload: 1_000_000,
        };
        assert_eq!(
            h.packet(),
            b(
                r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
            )
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary bytes never panic the decoders.
            #[test]
            fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
                let raw = Bytes::from(raw);
                let _ = Packet::decode_text(raw.clone());
                let _ = split_payload(&raw);
            }

            /// Messages without the separator survive a payload round trip in any number.
            #[test]
            fn message_payloads_round_trip(texts in proptest::collection::vec("[^\u{1e}]{0,20}", 1..8)) {
                let packets: Vec<Packet> = texts.iter().map(|t| Packet::Message(Bytes::copy_from_slice(t.as_bytes()))).collect();
                let encoded: Vec<Bytes> = packets.iter().map(Packet::encode).collect();
                prop_assert_eq!(split_payload(&join_payload(&encoded)).unwrap(), packets);
            }
        }
    }
}
