//! Kite Connect's WebSocket ticker format, as documented (kite.trade/docs/connect/v3/websocket) and as
//! Zerodha's own clients read it.
//!
//! A **binary message** is a 2-byte packet count, then for each packet a 2-byte length and the packet;
//! every number is big-endian. A 1-byte message is a heartbeat. Packets by length:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | `ltp`: token, last price |
//! | 28 | index `quote`: token, last price, high, low, open, close, change |
//! | 32 | index `full`: the same plus the exchange timestamp |
//! | 44 | `quote`: token, last price, last traded qty, average price, volume traded (cumulative for the day), total buy qty, total sell qty, open, high, low, close |
//! | 184 | `full`: `quote` plus last trade time, OI, OI day high, OI day low, exchange timestamp, 10 depth entries of 12 bytes (qty, price, orders, 2 bytes padding) |
//!
//! Prices are int32 in paise: divided by 100, except the currency segment CDS (10,000,000) and BCD
//! (10,000); the segment is the token's lowest byte. Times are Unix seconds.
//!
//! **Text messages** are JSON: `{"type":"order","data":{..}}` (our own orders: not market data),
//! `{"type":"error","data":".."}`, `{"type":"message","data":".."}`.
//!
//! We send `{"a":"subscribe","v":[tokens]}` and `{"a":"mode","v":["full",[tokens]]}`.

use serde::Deserialize;

/// Kite's segment ids: the lowest byte of an instrument token.
pub mod segment {
    pub const CDS: u32 = 3;
    pub const BCD: u32 = 6;
}

/// What a price int32 is divided by for the instrument with this token.
pub fn price_divisor(token: u32) -> f64 {
    match token & 0xff {
        segment::CDS => 10_000_000.0,
        segment::BCD => 10_000.0,
        _ => 100.0,
    }
}

/// The packet modes, by their documented lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ltp,
    Quote,
    Full,
}

/// One decoded packet. Prices are already divided; fields a mode does not carry are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub token: u32,
    pub mode: Mode,
    /// An index packet (28/32 bytes): never traded, so never a trade.
    pub index: bool,
    pub last_price: f64,
    pub last_traded_quantity: Option<u32>,
    /// Cumulative volume of the trading day.
    pub volume_traded: Option<u32>,
    pub ohlc: Option<[f64; 4]>,
    /// Unix seconds of the last trade (`full` only).
    pub last_trade_time: Option<u32>,
    /// Unix seconds of the exchange's snapshot (`full` and index `full`).
    pub exchange_timestamp: Option<u32>,
    /// Best bid and ask (`full` only): the first buy and the first sell depth entry, if priced.
    pub best_bid_ask: Option<(f64, f64)>,
}

/// A packet that cannot be read; the message's other packets still can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet of {len} bytes (token {token:?}): not one of the documented lengths 8, 28, 32, 44, 184")]
    Length { len: usize, token: Option<u32> },
    #[error("message cut short: packet {index} of {count} announced {wanted} bytes, {left} left")]
    Truncated { index: usize, count: usize, wanted: usize, left: usize },
}

impl PacketError {
    /// The instrument a bad packet belonged to, when its first 4 bytes were there.
    pub fn token(&self) -> Option<u32> {
        match self {
            PacketError::Length { token, .. } => *token,
            _ => None,
        }
    }
}

/// A binary message split into packets: the readable ones and the errors, in order. A message cut short
/// ends with a `Truncated` error; the packets before it are kept.
pub fn decode_message(message: &[u8]) -> Vec<Result<Tick, PacketError>> {
    if message.len() < 2 {
        // A heartbeat (1 byte) or nothing.
        return Vec::new();
    }
    let count = u16::from_be_bytes([message[0], message[1]]) as usize;
    let mut out = Vec::with_capacity(count.min(message.len() / 10 + 1));
    let mut at = 2usize;
    for index in 0..count {
        let Some(len_bytes) = message.get(at..at + 2) else {
            out.push(Err(PacketError::Truncated { index, count, wanted: 2, left: message.len() - at }));
            break;
        };
        let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        at += 2;
        let Some(packet) = message.get(at..at + len) else {
            out.push(Err(PacketError::Truncated { index, count, wanted: len, left: message.len() - at }));
            break;
        };
        at += len;
        out.push(decode_packet(packet));
    }
    out
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    // Callers check the packet's length first; a short slice reads as 0 rather than panicking.
    p.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn price_at(p: &[u8], at: usize, divisor: f64) -> f64 {
    // Prices are documented as int32: read signed, so a (spread) price below zero stays one.
    u32_at(p, at) as i32 as f64 / divisor
}

/// One packet, by its length.
pub fn decode_packet(p: &[u8]) -> Result<Tick, PacketError> {
    let token = (p.len() >= 4).then(|| u32_at(p, 0));
    let Some(token) = token.filter(|_| matches!(p.len(), 8 | 28 | 32 | 44 | 184)) else {
        return Err(PacketError::Length { len: p.len(), token });
    };
    let d = price_divisor(token);
    let mut tick = Tick {
        token,
        mode: Mode::Ltp,
        index: false,
        last_price: price_at(p, 4, d),
        last_traded_quantity: None,
        volume_traded: None,
        ohlc: None,
        last_trade_time: None,
        exchange_timestamp: None,
        best_bid_ask: None,
    };
    match p.len() {
        28 | 32 => {
            tick.index = true;
            tick.mode = if p.len() == 28 { Mode::Quote } else { Mode::Full };
            // Index order: high, low, open, close (then change at 24).
            let (high, low, open, close) =
                (price_at(p, 8, d), price_at(p, 12, d), price_at(p, 16, d), price_at(p, 20, d));
            tick.ohlc = Some([open, high, low, close]);
            if p.len() == 32 {
                tick.exchange_timestamp = Some(u32_at(p, 28));
            }
        }
        44 | 184 => {
            tick.mode = if p.len() == 44 { Mode::Quote } else { Mode::Full };
            tick.last_traded_quantity = Some(u32_at(p, 8));
            tick.volume_traded = Some(u32_at(p, 16));
            tick.ohlc = Some([price_at(p, 28, d), price_at(p, 32, d), price_at(p, 36, d), price_at(p, 40, d)]);
            if p.len() == 184 {
                tick.last_trade_time = Some(u32_at(p, 44));
                tick.exchange_timestamp = Some(u32_at(p, 60));
                // Depth from 64: 5 buy entries then 5 sell entries, 12 bytes each (qty, price, orders, pad).
                let (bid, ask) = (price_at(p, 64 + 4, d), price_at(p, 64 + 5 * 12 + 4, d));
                tick.best_bid_ask = (bid > 0.0 && ask > 0.0).then_some((bid, ask));
            }
        }
        _ => {}
    }
    Ok(tick)
}

/// A text message from the ticker.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    /// `{"type":"error","data":"..."}`: Kite refused something (a bad token in a subscribe, ...).
    Error(String),
    /// `{"type":"message","data":"..."}`: a notice.
    Message(String),
    /// `{"type":"order",...}` and anything else: not market data.
    Other,
}

#[derive(Deserialize)]
struct TextWire {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// Reads a text message; `None` when it is not JSON of that shape.
pub fn decode_text(text: &str) -> Option<Text> {
    let wire: TextWire = serde_json::from_str(text).ok()?;
    let data = match wire.data {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    // Bounded: a text shown in /api/feeds must not carry megabytes.
    let data: String = data.chars().take(300).collect();
    Some(match wire.kind.as_str() {
        "error" => Text::Error(data),
        "message" => Text::Message(data),
        _ => Text::Other,
    })
}

/// `{"a":"subscribe","v":[tokens]}`
pub fn subscribe(tokens: &[u32]) -> String {
    serde_json::json!({"a": "subscribe", "v": tokens}).to_string()
}

/// `{"a":"unsubscribe","v":[tokens]}`
pub fn unsubscribe(tokens: &[u32]) -> String {
    serde_json::json!({"a": "unsubscribe", "v": tokens}).to_string()
}

/// `{"a":"mode","v":["full",[tokens]]}`
pub fn full_mode(tokens: &[u32]) -> String {
    serde_json::json!({"a": "mode", "v": ["full", tokens]}).to_string()
}

/// Builds packets and messages as Kite sends them, for the unit tests.
#[cfg(test)]
mod encode {
    /// Fields of a `full` (184-byte) or `quote` (44-byte) packet; prices already in the segment's units
    /// (paise for NSE).
    #[derive(Debug, Clone, Default)]
    pub struct Quote {
        pub token: u32,
        pub last_price: i32,
        pub last_traded_quantity: u32,
        pub average_price: i32,
        pub volume_traded: u32,
        pub ohlc: [i32; 4],
        pub last_trade_time: u32,
        pub exchange_timestamp: u32,
        pub bid: i32,
        pub ask: i32,
    }

    fn put(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn ltp(token: u32, price: i32) -> Vec<u8> {
        let mut p = Vec::with_capacity(8);
        put(&mut p, token);
        put(&mut p, price as u32);
        p
    }

    /// `full = false`: the 44-byte quote packet; `true`: the 184-byte full packet.
    pub fn quote(q: &Quote, full: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(184);
        for v in [q.token, q.last_price as u32, q.last_traded_quantity, q.average_price as u32, q.volume_traded] {
            put(&mut p, v);
        }
        put(&mut p, 1000); // total buy quantity
        put(&mut p, 2000); // total sell quantity
        for v in q.ohlc {
            put(&mut p, v as u32);
        }
        if full {
            for v in [q.last_trade_time, 0, 0, 0, q.exchange_timestamp] {
                put(&mut p, v);
            }
            for i in 0..10 {
                let price = if i < 5 { q.bid - i } else { q.ask + (i - 5) };
                put(&mut p, 10 + i as u32);
                put(&mut p, price as u32);
                p.extend_from_slice(&[0, 3, 0, 0]);
            }
        }
        p
    }

    /// An index packet: 28 bytes, or 32 with `exchange_timestamp`.
    pub fn index(token: u32, last: i32, hloc: [i32; 4], exchange_timestamp: Option<u32>) -> Vec<u8> {
        let mut p = Vec::with_capacity(32);
        put(&mut p, token);
        put(&mut p, last as u32);
        for v in hloc {
            put(&mut p, v as u32);
        }
        put(&mut p, 0); // change
        if let Some(ts) = exchange_timestamp {
            put(&mut p, ts);
        }
        p
    }

    /// A binary message of these packets.
    pub fn message(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&(packets.len() as u16).to_be_bytes());
        for p in packets {
            m.extend_from_slice(&(p.len() as u16).to_be_bytes());
            m.extend_from_slice(p);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::encode::{self, Quote};
    use super::*;

    /// NSE:INFY's token (segment 1, NSE).
    const INFY: u32 = 408_065;

    fn infy_full() -> Quote {
        Quote {
            token: INFY,
            last_price: 150_025, // ₹1500.25
            last_traded_quantity: 7,
            average_price: 149_900,
            volume_traded: 123_456,
            ohlc: [149_000, 151_000, 148_500, 149_500],
            last_trade_time: 1_764_922_500,
            exchange_timestamp: 1_764_922_501,
            bid: 150_020,
            ask: 150_030,
        }
    }

    /// Bytes written out by hand from the documentation: one message of one `ltp` packet of token 408065
    /// (0x00063A01) at 150025 paise (0x00024A09).
    #[test]
    fn documented_bytes() {
        let message = [0x00, 0x01, 0x00, 0x08, 0x00, 0x06, 0x3A, 0x01, 0x00, 0x02, 0x4A, 0x09];
        let ticks = decode_message(&message);
        assert_eq!(ticks.len(), 1);
        let t = ticks[0].as_ref().unwrap();
        assert_eq!((t.token, t.mode, t.last_price), (408_065, Mode::Ltp, 1500.25));
    }

    #[test]
    fn ltp_packet() {
        let t = decode_packet(&encode::ltp(INFY, 150_025)).unwrap();
        assert_eq!((t.token, t.mode, t.index, t.last_price), (INFY, Mode::Ltp, false, 1500.25));
        assert_eq!((t.volume_traded, t.last_trade_time), (None, None));
    }

    #[test]
    fn quote_packet() {
        let p = encode::quote(&infy_full(), false);
        assert_eq!(p.len(), 44);
        let t = decode_packet(&p).unwrap();
        assert_eq!(
            (t.mode, t.last_price, t.last_traded_quantity, t.volume_traded),
            (Mode::Quote, 1500.25, Some(7), Some(123_456))
        );
        assert_eq!(t.ohlc, Some([1490.0, 1510.0, 1485.0, 1495.0]));
        assert_eq!((t.last_trade_time, t.exchange_timestamp, t.best_bid_ask), (None, None, None));
    }

    #[test]
    fn full_packet_with_depth() {
        let p = encode::quote(&infy_full(), true);
        assert_eq!(p.len(), 184);
        let t = decode_packet(&p).unwrap();
        assert_eq!((t.mode, t.index, t.last_price, t.volume_traded), (Mode::Full, false, 1500.25, Some(123_456)));
        assert_eq!((t.last_trade_time, t.exchange_timestamp), (Some(1_764_922_500), Some(1_764_922_501)));
        assert_eq!(t.best_bid_ask, Some((1500.2, 1500.3)));
    }

    #[test]
    fn index_packets() {
        // NSE:NIFTY 50 is token 256265 (segment 9, indices).
        let nifty = 256_265;
        let q = decode_packet(&encode::index(nifty, 2_600_050, [2_610_000, 2_590_000, 2_595_000, 2_598_000], None))
            .unwrap();
        assert_eq!((q.mode, q.index, q.last_price), (Mode::Quote, true, 26_000.5));
        assert_eq!(q.ohlc, Some([25_950.0, 26_100.0, 25_900.0, 25_980.0]), "open, high, low, close");
        let f = decode_packet(&encode::index(nifty, 2_600_050, [0; 4], Some(1_764_922_501))).unwrap();
        assert_eq!(
            (f.mode, f.index, f.exchange_timestamp, f.volume_traded),
            (Mode::Full, true, Some(1_764_922_501), None)
        );
    }

    #[test]
    fn price_divisors_by_segment() {
        // NSE (1), NFO (2), BSE (4), MCX (7), indices (9): paise; CDS (3): 1e7; BCD (6): 1e4.
        for (token, divisor) in [(408_065, 100.0), (12_517_890, 100.0), (128_083_204, 100.0), (0x0107, 100.0)] {
            assert_eq!(price_divisor(token), divisor, "token {token}");
        }
        assert_eq!(price_divisor(0x1203), 10_000_000.0);
        assert_eq!(price_divisor(0x1206), 10_000.0);
        // USDINR at 84.1234567 on CDS; a BCD contract at 84.1234.
        let t = decode_packet(&encode::ltp(0x4203, 841_234_567)).unwrap();
        assert!((t.last_price - 84.123_456_7).abs() < 1e-9, "{}", t.last_price);
        let t = decode_packet(&encode::ltp(0x4206, 841_234)).unwrap();
        assert!((t.last_price - 84.1234).abs() < 1e-9, "{}", t.last_price);
    }

    #[test]
    fn messages_of_several_packets_and_heartbeats() {
        assert!(decode_message(&[0]).is_empty(), "1-byte heartbeat");
        assert!(decode_message(&[]).is_empty());
        let m = encode::message(&[encode::ltp(INFY, 100), encode::quote(&infy_full(), true), encode::ltp(5633, 200)]);
        let ticks: Vec<Tick> = decode_message(&m).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            ticks.iter().map(|t| (t.token, t.mode)).collect::<Vec<_>>(),
            [(INFY, Mode::Ltp), (INFY, Mode::Full), (5633, Mode::Ltp)]
        );
    }

    #[test]
    fn bad_packets_are_errors_and_the_rest_survive() {
        // An unknown length between two good packets: the good ones are kept, the bad one names its token.
        let m = encode::message(&[encode::ltp(INFY, 100), vec![0, 0, 0x16, 0x01, 9, 9], encode::ltp(5633, 200)]);
        let out = decode_message(&m);
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok() && out[2].is_ok());
        assert_eq!(out[1], Err(PacketError::Length { len: 6, token: Some(0x1601) }));
        // A full packet cut off at 100 bytes, and a message whose last packet is missing bytes.
        let cut = &encode::quote(&infy_full(), true)[..100];
        assert_eq!(decode_packet(cut), Err(PacketError::Length { len: 100, token: Some(INFY) }));
        let mut m = encode::message(&[encode::ltp(INFY, 100), encode::quote(&infy_full(), true)]);
        m.truncate(m.len() - 10);
        let out = decode_message(&m);
        assert!(out[0].is_ok());
        assert_eq!(out[1], Err(PacketError::Truncated { index: 1, count: 2, wanted: 184, left: 174 }));
        // A count larger than the message: one error, no panic, no huge allocation.
        let out = decode_message(&[0xff, 0xff, 0x00]);
        assert_eq!(out, [Err(PacketError::Truncated { index: 0, count: 65_535, wanted: 2, left: 1 })]);
        assert_eq!(decode_packet(&[1, 2]), Err(PacketError::Length { len: 2, token: None }));
    }

    #[test]
    fn text_messages() {
        assert_eq!(
            decode_text(r#"{"type":"error","data":"Invalid access token"}"#),
            Some(Text::Error("Invalid access token".into()))
        );
        assert_eq!(decode_text(r#"{"type":"message","data":"hello"}"#), Some(Text::Message("hello".into())));
        assert_eq!(decode_text(r#"{"type":"order","data":{"order_id":"1"}}"#), Some(Text::Other));
        assert_eq!(decode_text("not json"), None);
        assert_eq!(subscribe(&[408_065, 5633]), r#"{"a":"subscribe","v":[408065,5633]}"#);
        assert_eq!(full_mode(&[408_065]), r#"{"a":"mode","v":["full",[408065]]}"#);
    }
}
