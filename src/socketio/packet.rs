//! Socket.IO v5 packets, carried in Engine.IO messages.
//!
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`: `0{"token":"k"}` connects to `/` with an
//! auth payload, `2["trade",{...}]` is an event, `212["trades",[...]]` an event asking for an
//! acknowledgement with id 12, `312[{...}]` that acknowledgement, `4{"message":"..."}` a refused connect,
//! `1` a disconnect. The namespace is written only when it is not `/`. Binary events (types 5 and 6) are
//! decoded far enough to be refused with a clear error.

use serde_json::value::RawValue;
use serde_json::Value;

/// The packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

/// A decoded client packet. Event arguments stay raw JSON until a handler reads them into its own type.
#[derive(Debug)]
pub struct Packet {
    pub kind: Kind,
    pub namespace: String,
    pub id: Option<u64>,
    /// Binary attachments that follow (binary events only).
    pub attachments: usize,
    pub data: Data,
}

/// The JSON part of a packet, checked against what its type allows.
#[derive(Debug)]
pub enum Data {
    None,
    /// CONNECT's auth payload, CONNECT_ERROR's details.
    Object(serde_json::Map<String, Value>),
    /// An event: its name and arguments.
    Event {
        name: String,
        args: Vec<Box<RawValue>>,
    },
    /// An acknowledgement's arguments (and a binary event's, which are never read).
    Args(Vec<Box<RawValue>>),
}

/// Why a Socket.IO packet was refused. Each closes the session that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty Socket.IO packet")]
    Empty,
    #[error("unknown Socket.IO packet type {0:?} (expected 0-6)")]
    UnknownType(char),
    #[error("bad attachment count in a binary Socket.IO packet")]
    BadAttachments,
    #[error("acknowledgement id is too long")]
    BadAckId,
    #[error("invalid JSON in a Socket.IO packet: {0}")]
    Json(String),
    #[error("invalid {kind} payload: {expected}")]
    BadPayload { kind: &'static str, expected: &'static str },
}

/// Acknowledgement ids longer than this are refused (JavaScript numbers stay exact to 2^53).
const MAX_ACK_DIGITS: usize = 15;

impl Packet {
    /// Decodes the text of an Engine.IO message.
    pub fn decode(text: &str) -> Result<Packet, PacketError> {
        let bytes = text.as_bytes();
        let Some(&first) = bytes.first() else { return Err(PacketError::Empty) };
        let kind = match first {
            b'0' => Kind::Connect,
            b'1' => Kind::Disconnect,
            b'2' => Kind::Event,
            b'3' => Kind::Ack,
            b'4' => Kind::ConnectError,
            b'5' => Kind::BinaryEvent,
            b'6' => Kind::BinaryAck,
            _ => return Err(PacketError::UnknownType(text.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER))),
        };
        let mut i = 1;
        let mut attachments = 0;
        if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
            let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 6 || bytes.get(i + digits) != Some(&b'-') {
                return Err(PacketError::BadAttachments);
            }
            attachments = text[i..i + digits].parse().map_err(|_| PacketError::BadAttachments)?;
            i += digits + 1;
        }
        let mut namespace = "/";
        if bytes.get(i) == Some(&b'/') {
            let end = text[i..].find(',').map_or(text.len(), |p| i + p);
            namespace = &text[i..end];
            i = (end + 1).min(text.len());
        }
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let id = if digits == 0 {
            None
        } else if digits > MAX_ACK_DIGITS {
            return Err(PacketError::BadAckId);
        } else {
            let id = text[i..i + digits].parse().map_err(|_| PacketError::BadAckId)?;
            i += digits;
            Some(id)
        };
        let json = &text[i..];
        let data = decode_data(kind, json)?;
        Ok(Packet { kind, namespace: namespace.to_owned(), id, attachments, data })
    }
}

fn json_err(e: serde_json::Error) -> PacketError {
    PacketError::Json(e.to_string())
}

/// Checks the payload against what the packet type allows (as the reference parser does).
fn decode_data(kind: Kind, json: &str) -> Result<Data, PacketError> {
    let bad = |expected| Err(PacketError::BadPayload { kind: kind_name(kind), expected });
    if json.is_empty() {
        return match kind {
            Kind::Connect | Kind::Disconnect => Ok(Data::None),
            Kind::ConnectError => bad("an object or a string"),
            Kind::Event | Kind::BinaryEvent => bad("an array starting with the event name"),
            Kind::Ack | Kind::BinaryAck => bad("an array"),
        };
    }
    match kind {
        Kind::Disconnect => bad("nothing"),
        Kind::Connect | Kind::ConnectError => match serde_json::from_str::<Value>(json).map_err(json_err)? {
            Value::Object(map) => Ok(Data::Object(map)),
            Value::String(message) if kind == Kind::ConnectError => {
                Ok(Data::Object([("message".to_owned(), Value::String(message))].into_iter().collect()))
            }
            _ => bad(if kind == Kind::Connect { "an object" } else { "an object or a string" }),
        },
        Kind::Event | Kind::BinaryEvent => {
            let mut args: Vec<Box<RawValue>> = serde_json::from_str(json).map_err(|e| {
                if json.starts_with('[') {
                    json_err(e)
                } else {
                    PacketError::BadPayload { kind: kind_name(kind), expected: "an array starting with the event name" }
                }
            })?;
            if args.is_empty() {
                return bad("an array starting with the event name");
            }
            let name: String = match serde_json::from_str(args[0].get()) {
                Ok(name) => name,
                Err(_) => return bad("an array starting with the event name (a string)"),
            };
            args.remove(0);
            Ok(Data::Event { name, args })
        }
        Kind::Ack | Kind::BinaryAck => match serde_json::from_str(json) {
            Ok(args) => Ok(Data::Args(args)),
            Err(e) if json.starts_with('[') => Err(json_err(e)),
            Err(_) => bad("an array"),
        },
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Connect => "CONNECT",
        Kind::Disconnect => "DISCONNECT",
        Kind::Event => "EVENT",
        Kind::Ack => "ACK",
        Kind::ConnectError => "CONNECT_ERROR",
        Kind::BinaryEvent => "BINARY_EVENT",
        Kind::BinaryAck => "BINARY_ACK",
    }
}

// ---------------------------------------------------------------------------------------------------
// Server → client. Each builder returns the whole Engine.IO message (`4` + the Socket.IO packet), so a
// packet is written once and shared by every receiver of a broadcast.

/// Starts an Engine.IO message holding a Socket.IO packet of `kind` on `namespace`.
fn start(kind: Kind, namespace: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + namespace.len() + 24);
    out.push(b'4');
    out.push(b'0' + kind as u8);
    if namespace != "/" {
        out.extend_from_slice(namespace.as_bytes());
        out.push(b',');
    }
    out
}

/// `0{"sid":"..."}`: the namespace is connected.
pub fn connect(namespace: &str, sid: &str) -> bytes::Bytes {
    let mut out = start(Kind::Connect, namespace, 32);
    out.extend_from_slice(serde_json::json!({ "sid": sid }).to_string().as_bytes());
    out.into()
}

/// `4{"message":"..."}`: the namespace connection is refused.
pub fn connect_error(namespace: &str, message: &str) -> bytes::Bytes {
    let mut out = start(Kind::ConnectError, namespace, message.len() + 16);
    out.extend_from_slice(serde_json::json!({ "message": message }).to_string().as_bytes());
    out.into()
}

/// `1`: the server closes the namespace connection (the server never does today; the tests pin the encoding).
#[cfg(test)]
pub fn disconnect(namespace: &str) -> bytes::Bytes {
    start(Kind::Disconnect, namespace, 0).into()
}

/// `2["name",arg]`: an event with one argument given as ready JSON.
pub fn event_raw(namespace: &str, name: &str, arg_json: &[u8]) -> bytes::Bytes {
    let mut out = start(Kind::Event, namespace, arg_json.len() + name.len() + 8);
    out.push(b'[');
    // Event names are ours: plain ASCII without quotes or backslashes, written as they are.
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(arg_json);
    out.push(b']');
    out.into()
}

/// `2["name",arg]` with `arg` serialized.
pub fn event<T: serde::Serialize + ?Sized>(namespace: &str, name: &str, arg: &T) -> bytes::Bytes {
    event_raw(namespace, name, &to_json(arg))
}

/// `3<id>[arg]`: the acknowledgement of event `id`.
pub fn ack<T: serde::Serialize + ?Sized>(namespace: &str, id: u64, arg: &T) -> bytes::Bytes {
    let json = to_json(arg);
    let mut out = start(Kind::Ack, namespace, json.len() + 20);
    out.extend_from_slice(id.to_string().as_bytes());
    out.push(b'[');
    out.extend_from_slice(&json);
    out.push(b']');
    out.into()
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Vec<u8> {
    // Our reply types serialize infallibly (string keys, no I/O).
    serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: bytes::Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// Table of client packets: raw text → (kind, namespace, ack id, what the data holds).
    #[test]
    fn decodes_every_packet_type() {
        let table: &[(&str, Kind, &str, Option<u64>, &str)] = &[
            ("0", Kind::Connect, "/", None, "none"),
            (r#"0{"token":"k1"}"#, Kind::Connect, "/", None, "object"),
            (r#"0/admin,{"token":"k"}"#, Kind::Connect, "/admin", None, "object"),
            ("0/admin,", Kind::Connect, "/admin", None, "none"),
            ("0/admin", Kind::Connect, "/admin", None, "none"),
            ("1", Kind::Disconnect, "/", None, "none"),
            (r#"2["hello"]"#, Kind::Event, "/", None, "event hello 0"),
            (r#"212["trades",[{"symbol":"X"}],2]"#, Kind::Event, "/", Some(12), "event trades 2"),
            (r#"2/admin,7["a",{}]"#, Kind::Event, "/admin", Some(7), "event a 1"),
            (r#"312[{"ok":true}]"#, Kind::Ack, "/", Some(12), "args 1"),
            (r#"4{"message":"no"}"#, Kind::ConnectError, "/", None, "object"),
            (r#"4"old style""#, Kind::ConnectError, "/", None, "object"),
            (r#"51-["bin",{"_placeholder":true,"num":0}]"#, Kind::BinaryEvent, "/", None, "event bin 1"),
            (r#"61-/admin,15[{"_placeholder":true,"num":0}]"#, Kind::BinaryAck, "/admin", Some(15), "args 1"),
        ];
        for (raw, kind, ns, id, data) in table {
            let p = Packet::decode(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!((p.kind, p.namespace.as_str(), p.id), (*kind, *ns, *id), "{raw}");
            let got = match &p.data {
                Data::None => "none".to_owned(),
                Data::Object(_) => "object".to_owned(),
                Data::Event { name, args } => format!("event {name} {}", args.len()),
                Data::Args(a) => format!("args {}", a.len()),
            };
            assert_eq!(got, *data, "{raw}");
        }
        let p = Packet::decode(r#"51-["bin",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(p.attachments, 1);
    }

    #[test]
    fn event_arguments_stay_raw_json() {
        let p = Packet::decode(r#"23["trade",{"symbol":"BTCUSDT","price":1.5,"qty":2}]"#).unwrap();
        let Data::Event { name, args } = p.data else { panic!() };
        assert_eq!(name, "trade");
        assert_eq!(args[0].get(), r#"{"symbol":"BTCUSDT","price":1.5,"qty":2}"#);
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("9", "unknown Socket.IO packet type"),
            ("x[]", "unknown Socket.IO packet type"),
            ("2", "invalid EVENT payload"),
            ("2{}", "invalid EVENT payload"),
            ("2[]", "invalid EVENT payload"),
            ("2[1,2]", "event name (a string)"),
            ("2[\"a\"", "invalid JSON"),
            ("0[1]", "invalid CONNECT payload"),
            ("1{}", "invalid DISCONNECT payload"),
            ("3", "invalid ACK payload"),
            ("31{}", "invalid ACK payload"),
            ("5[\"a\"]", "bad attachment count"),
            ("5x-[\"a\"]", "bad attachment count"),
            ("21234567890123456[\"a\"]", "acknowledgement id is too long"),
        ];
        for (raw, expected) in table {
            let err = Packet::decode(raw).expect_err(raw).to_string();
            assert!(err.contains(expected), "{raw}: {err}");
        }
    }

    #[test]
    fn server_packets_are_engine_io_messages() {
        assert_eq!(text(connect("/", "abc")), r#"40{"sid":"abc"}"#);
        assert_eq!(text(connect("/admin", "abc")), r#"40/admin,{"sid":"abc"}"#);
        assert_eq!(text(connect_error("/", "invalid \"key\"")), r#"44{"message":"invalid \"key\""}"#);
        assert_eq!(text(disconnect("/")), "41");
        assert_eq!(
            text(event("/", "status", &serde_json::json!({"message": "hi"}))),
            r#"42["status",{"message":"hi"}]"#
        );
        assert_eq!(text(event_raw("/", "price_update", br#"{"a":1}"#)), r#"42["price_update",{"a":1}]"#);
        assert_eq!(text(ack("/", 12, &serde_json::json!({"accepted": 3}))), r#"4312[{"accepted":3}]"#);
    }

    /// What the server writes, a client decodes back (minus the Engine.IO `4`).
    #[test]
    fn server_events_decode() {
        let raw = text(event("/", "data_received", &serde_json::json!({"trades": 1})));
        let p = Packet::decode(&raw[1..]).unwrap();
        let Data::Event { name, args } = p.data else { panic!() };
        assert_eq!((name.as_str(), args[0].get()), ("data_received", r#"{"trades":1}"#));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(raw in "\\PC{0,40}") {
                let _ = Packet::decode(&raw);
            }

            #[test]
            fn prefixed_garbage_never_panics(kind in 0u8..7, rest in "[-/,0-9\\[\\]{}\":a-z]{0,30}") {
                let _ = Packet::decode(&format!("{kind}{rest}"));
            }
        }
    }
}
