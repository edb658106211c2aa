//! What candlecast writes to Redis: channel and key names, and the compact JSON of bar messages and
//! cached bars. Everything a node publishes or caches is decoded here, and nowhere else.
//!
//! - Channel `<prefix>:bars:<SYMBOL>`, one per symbol; followers subscribe to `<prefix>:bars:*`. A message
//!   is a batch of one symbol's bar updates in the order they happened, numbered per sending node:
//!   `{"n":"node-a","q":42,"b":[["1m",1700000040000,101.5,102.0,101.0,101.8,3.25,17,false]]}` where each bar
//!   is `[interval, open_time, open, high, low, close, volume, trades, closed]`. The symbol is the channel's.
//! - Channel `<prefix>:frames` (wire version 3): everything one node published in one publish flush, all
//!   symbols in one message, each symbol's updates numbered as above (so followers notice gaps per symbol):
//!   `{"v":3,"n":"node-a","s":[["BTCUSDT",42,[["1s",1700000041000,...,false]],32766,2914056723],["ETHUSDT",7,[...],0,0]]}`.
//!   An entry carries the closed bars and corrections of every interval, the forming 1s bar, and only those
//!   coarse forming bars the follower cannot derive; then the mask of the intervals whose forming bar the
//!   follower derives and the fingerprint of the state it derives from (see [`super::derive`]). A frame of
//!   another version (version 2 carried every forming bar) is refused whole (named in the log), never read
//!   as this one. Nodes of wire version 1 neither send nor read frames; rewrite notices still go on the
//!   per-symbol channel.
//! - Sorted set `<prefix>:today:<YYYY-MM-DD>:<SYMBOL>:<interval>`: today's closed bars (UTC), score = open
//!   time, member `[open_time, open, high, low, close, volume, trades, closed]`; one member per open time (a
//!   rewrite replaces it), at most the interval's cap (the newest), expires an hour after the day ends.
//! - `<prefix>:forming:<SYMBOL>`: the forming bar of each interval, one JSON array of bars as in a message,
//!   written in the same transaction as the watermark: every trade changes all 16 forming bars, and one key
//!   per symbol costs Redis one command where the sets cost four per interval.
//! - `<prefix>:seq:<SYMBOL>` = `"<node> <seq>"`: the last message whose bars the cache holds (the watermark).
//! - Set `<prefix>:symbols`: symbols with cached bars. `<prefix>:lease:<SYMBOL>` = the node running its feed.

use serde::{Deserialize, Serialize};

use super::derive::Derive;
use crate::model::{Bar, Interval, Symbol};

/// A message or cached bar that candlecast cannot read (another version, or not candlecast's).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("undecodable message on {channel}: {reason}")]
    Message { channel: String, reason: String },
    #[error("undecodable cached bar in {key} ({member}): {reason}")]
    Cached { key: String, member: String, reason: String },
    #[error("undecodable watermark {0:?}")]
    Watermark(String),
}

/// One node's batch of bar updates of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub node: String,
    pub seq: u64,
    pub bars: Vec<Bar>,
    /// A notice without bars: the sender has just rewritten the symbol's today-cache (see
    /// [`encode_rewritten`]).
    pub rewritten: bool,
    /// The forming bars the receiver derives after `bars` (none on the per-symbol channel).
    pub derive: Derive,
}

/// Names of everything candlecast keeps in Redis, under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_owned() }
    }

    pub fn bars_channel(&self, symbol: &str) -> String {
        format!("{}:bars:{symbol}", self.prefix)
    }

    /// The pattern every follower subscribes to.
    pub fn bars_pattern(&self) -> String {
        format!("{}:bars:*", self.prefix)
    }

    /// The symbol a bars channel belongs to.
    pub fn symbol_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(self.prefix.as_str())?.strip_prefix(":bars:").filter(|s| !s.is_empty())
    }

    /// The hash of one symbol's bars of one interval on the UTC day that starts at `day_start`.
    pub fn today(&self, day_start: i64, symbol: &str, interval: Interval) -> String {
        format!("{}:today:{}:{symbol}:{interval}", self.prefix, iso_date(day_start))
    }

    /// The channel of frames (every symbol of one publish flush in one message).
    pub fn frames_channel(&self) -> String {
        format!("{}:frames", self.prefix)
    }

    /// The forming bars of one symbol (every interval's, in one value).
    pub fn forming(&self, symbol: &str) -> String {
        format!("{}:forming:{symbol}", self.prefix)
    }

    pub fn watermark(&self, symbol: &str) -> String {
        format!("{}:seq:{symbol}", self.prefix)
    }

    pub fn symbols(&self) -> String {
        format!("{}:symbols", self.prefix)
    }

    pub fn lease(&self, symbol: &str) -> String {
        format!("{}:lease:{symbol}", self.prefix)
    }
}

#[derive(Serialize, Deserialize)]
struct WireBar(Interval, i64, f64, f64, f64, f64, f64, u64, bool);

#[derive(Serialize, Deserialize)]
struct WireBatch<'a> {
    #[serde(rename = "n", borrow)]
    node: std::borrow::Cow<'a, str>,
    #[serde(rename = "q")]
    seq: u64,
    #[serde(rename = "b")]
    bars: Vec<WireBar>,
    /// Absent (false) on bars messages; a node that does not know it reads the notice as a repeat of the
    /// last message and ignores it.
    #[serde(rename = "r", default, skip_serializing_if = "std::ops::Not::not")]
    rewritten: bool,
}

/// The payload of a bars message.
pub fn encode_batch(node: &str, seq: u64, bars: &[Bar]) -> Vec<u8> {
    let bars = to_wire(bars);
    // Serializing plain numbers, strings and bools into a Vec cannot fail.
    serde_json::to_vec(&WireBatch { node: node.into(), seq, bars, rewritten: false }).unwrap_or_default()
}

/// The payload of a notice that `node` rewrote a symbol's today-cache, its watermark at `seq`: the
/// cache may now hold bars older than any follower read (a stored backfill), so followers read it again.
pub fn encode_rewritten(node: &str, seq: u64) -> Vec<u8> {
    serde_json::to_vec(&WireBatch { node: node.into(), seq, bars: Vec::new(), rewritten: true }).unwrap_or_default()
}

/// The wire version of frames this node sends and reads.
pub const FRAME_VERSION: u64 = 3;

/// One symbol's updates in a frame: its name, its message number, its bars, the mask and the fingerprint
/// of its derived bars.
#[derive(Serialize, Deserialize)]
struct WireEntry<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>, u64, Vec<WireBar>, u32, u32);

#[derive(Serialize, Deserialize)]
struct WireFrame<'a> {
    #[serde(rename = "v")]
    version: u64,
    #[serde(rename = "n", borrow)]
    node: std::borrow::Cow<'a, str>,
    #[serde(rename = "s", borrow)]
    entries: Vec<WireEntry<'a>>,
}

/// Only the version and the sender, read first: a frame of another version may not have the fields of this
/// one, and a node's own frames (it is subscribed too) need no more than the sender's name.
#[derive(Deserialize)]
struct FrameHeader<'a> {
    #[serde(rename = "v")]
    version: u64,
    #[serde(rename = "n", borrow, default)]
    node: Option<std::borrow::Cow<'a, str>>,
}

fn to_wire(bars: &[Bar]) -> Vec<WireBar> {
    bars.iter()
        .map(|b| WireBar(b.interval, b.open_time, b.open, b.high, b.low, b.close, b.volume, b.trades, b.closed))
        .collect()
}

fn from_wire(symbol: &Symbol, bars: Vec<WireBar>) -> Vec<Bar> {
    bars.into_iter()
        .map(|WireBar(interval, open_time, open, high, low, close, volume, trades, closed)| Bar {
            symbol: symbol.clone(),
            interval,
            open_time,
            open,
            high,
            low,
            close,
            volume,
            trades,
            closed,
        })
        .collect()
}

/// One symbol's part of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameEntry {
    pub symbol: Symbol,
    pub seq: u64,
    pub bars: Vec<Bar>,
    pub derive: Derive,
}

/// The payload of a frame: one entry per symbol.
pub fn encode_frame(node: &str, entries: &[FrameEntry]) -> Vec<u8> {
    let entries = entries
        .iter()
        .map(|e| WireEntry(e.symbol.as_ref().into(), e.seq, to_wire(&e.bars), e.derive.mask, e.derive.fingerprint))
        .collect();
    serde_json::to_vec(&WireFrame { version: FRAME_VERSION, node: node.into(), entries }).unwrap_or_default()
}

/// Reads a frame received on `channel`: each entry as the symbol's name and a [`Batch`] of it. A frame of
/// another version, or with one bar that breaks the OHLCV invariants, is refused whole. A frame `own_node`
/// sent is not decoded further (empty): every node receives its own frames, and at 10,000 symbols building
/// their bars only to drop them was a good part of a core.
pub fn decode_frame(channel: &str, payload: &[u8], own_node: &str) -> Result<Vec<(Symbol, Batch)>, WireError> {
    let bad = |reason: String| WireError::Message { channel: channel.to_owned(), reason };
    let header: FrameHeader = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    if header.version != FRAME_VERSION {
        return Err(bad(format!("frame version {}, this node reads version {FRAME_VERSION}", header.version)));
    }
    if header.node.as_deref() == Some(own_node) {
        return Ok(Vec::new());
    }
    let wire: WireFrame = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(wire.entries.len());
    for WireEntry(name, seq, bars, mask, fingerprint) in wire.entries {
        let symbol = Symbol::from(name.as_ref());
        let bars = from_wire(&symbol, bars);
        if let Some((bar, reason)) = bars.iter().find_map(|b| b.invalid_reason().map(|r| (b, r))) {
            return Err(bad(format!("bar {} {} at {}: {reason}", bar.symbol, bar.interval, bar.open_time)));
        }
        let derive = Derive { mask, fingerprint };
        out.push((symbol, Batch { node: wire.node.to_string(), seq, bars, rewritten: false, derive }));
    }
    Ok(out)
}

/// The value of a symbol's forming-bars key.
pub fn encode_forming(bars: &[Bar]) -> String {
    serde_json::to_string(&to_wire(bars)).unwrap_or_default()
}

/// Reads the forming-bars key `key` of `symbol`.
pub fn decode_forming(key: &str, symbol: &Symbol, value: &str) -> Result<Vec<Bar>, WireError> {
    let bad =
        |reason: String| WireError::Cached { key: key.to_owned(), member: value.chars().take(80).collect(), reason };
    let wire: Vec<WireBar> = serde_json::from_str(value).map_err(|e| bad(e.to_string()))?;
    let bars = from_wire(symbol, wire);
    match bars.iter().find_map(|b| b.invalid_reason()) {
        Some(reason) => Err(bad(reason.to_owned())),
        None => Ok(bars),
    }
}

/// Reads a bars message received on `channel` for `symbol`.
pub fn decode_batch(channel: &str, symbol: &Symbol, payload: &[u8]) -> Result<Batch, WireError> {
    let wire: WireBatch = serde_json::from_slice(payload)
        .map_err(|e| WireError::Message { channel: channel.to_owned(), reason: e.to_string() })?;
    let bars = from_wire(symbol, wire.bars);
    // A peer's bar is folded, published and stored like our own: one that breaks the OHLCV invariants
    // (a negative price, a high below the low) refuses the whole message, as any other undecodable one.
    if let Some((bar, reason)) = bars.iter().find_map(|b| b.invalid_reason().map(|r| (b, r))) {
        let reason = format!("bar {} {} at {}: {reason}", bar.symbol, bar.interval, bar.open_time);
        return Err(WireError::Message { channel: channel.to_owned(), reason });
    }
    Ok(Batch {
        node: wire.node.into_owned(),
        seq: wire.seq,
        bars,
        rewritten: wire.rewritten,
        derive: Derive::default(),
    })
}

#[derive(Serialize, Deserialize)]
struct CachedBar(i64, f64, f64, f64, f64, f64, u64, bool);

/// A bar as a member of its interval's today-set (its score is the open time).
pub fn encode_cached(bar: &Bar) -> String {
    let value = CachedBar(bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades, bar.closed);
    serde_json::to_string(&value).unwrap_or_default()
}

/// Reads one member of `key` (the today-set of `symbol` at `interval`) back into a bar.
pub fn decode_cached(key: &str, symbol: &Symbol, interval: Interval, member: &str) -> Result<Bar, WireError> {
    let bad =
        |reason: String| WireError::Cached { key: key.to_owned(), member: member.chars().take(80).collect(), reason };
    let CachedBar(open_time, open, high, low, close, volume, trades, closed) =
        serde_json::from_str(member).map_err(|e| bad(e.to_string()))?;
    let bar = Bar { symbol: symbol.clone(), interval, open_time, open, high, low, close, volume, trades, closed };
    match bar.invalid_reason() {
        Some(reason) => Err(bad(reason.to_owned())),
        None => Ok(bar),
    }
}

/// The watermark value: which node's message `seq` the cache is complete up to.
pub fn encode_watermark(node: &str, seq: u64) -> String {
    format!("{node} {seq}")
}

pub fn decode_watermark(value: &str) -> Result<(String, u64), WireError> {
    let (node, seq) = value.rsplit_once(' ').ok_or_else(|| WireError::Watermark(value.to_owned()))?;
    let seq = seq.parse().map_err(|_| WireError::Watermark(value.to_owned()))?;
    Ok((node.to_owned(), seq))
}

/// `YYYY-MM-DD` of a UTC time in ms.
pub fn iso_date(ms: i64) -> String {
    crate::model::time::format_date(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(interval: Interval, open_time: i64, closed: bool) -> Bar {
        let mut b = Bar::from_trade("BTCUSDT".into(), interval, open_time, 45_000.123_456_789, 0.1 + 0.2);
        b.high = 45_010.5;
        b.closed = closed;
        b
    }

    #[test]
    fn batches_round_trip_exactly_and_stay_compact() {
        let bars = vec![bar(Interval::M1, 1_700_000_040_000, true), bar(Interval::S1, 1_700_000_041_000, false)];
        let payload = encode_batch("node-a", 42, &bars);
        let text = std::str::from_utf8(&payload).unwrap();
        assert!(
            text.starts_with(r#"{"n":"node-a","q":42,"b":[["1m",1700000040000,45000.123456789,45010.5,"#),
            "{text}"
        );
        let symbol: Symbol = "BTCUSDT".into();
        let back = decode_batch("candlecast:bars:BTCUSDT", &symbol, &payload).unwrap();
        assert_eq!(back, Batch { node: "node-a".into(), seq: 42, bars, rewritten: false, derive: Derive::default() });
        let notice = decode_batch("c", &symbol, &encode_rewritten("node-a", 42)).unwrap();
        let none = Derive::default();
        assert_eq!(notice, Batch { node: "node-a".into(), seq: 42, bars: vec![], rewritten: true, derive: none });
        let err = decode_batch("c", &symbol, b"{\"n\":1}").unwrap_err().to_string();
        assert!(err.contains("undecodable message on c"), "{err}");
        // JSON has no inf (serde_json refuses 1e309); a negative volume is a number, and refused here.
        let poisoned = text.replacen(",0.30000000000000004,", ",-5,", 1);
        let err = decode_batch("c", &symbol, poisoned.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("volume"), "{err}: {poisoned}");
        let huge = text.replacen(",0.30000000000000004,", ",1e309,", 1);
        assert!(decode_batch("c", &symbol, huge.as_bytes()).is_err());
    }

    #[test]
    fn frames_round_trip_and_other_versions_are_refused_not_misread() {
        let (btc, eth): (Symbol, Symbol) = ("BTCUSDT".into(), "ETHUSDT".into());
        let mut eth_bar = bar(Interval::S1, 1_700_000_041_000, false);
        eth_bar.symbol = eth.clone();
        let derive = Derive { mask: 0b110, fingerprint: 4_000_000_000 };
        let entries = vec![
            FrameEntry { symbol: btc.clone(), seq: 42, bars: vec![bar(Interval::M1, 1_700_000_040_000, true)], derive },
            FrameEntry { symbol: eth, seq: 7, bars: vec![eth_bar], derive: Derive::default() },
        ];
        let payload = encode_frame("node-a", &entries);
        let back = decode_frame("cc:frames", &payload, "node-b").unwrap();
        assert_eq!(back.len(), 2);
        for ((symbol, batch), want) in back.iter().zip(&entries) {
            assert_eq!(
                (symbol, &batch.node[..], batch.seq, &batch.bars),
                (&want.symbol, "node-a", want.seq, &want.bars)
            );
            assert_eq!(batch.derive, want.derive);
            assert!(!batch.rewritten);
        }
        assert!(decode_frame("cc:frames", &payload, "node-a").unwrap().is_empty(), "its own frames: nothing to read");
        let text = std::str::from_utf8(&payload).unwrap();
        assert!(text.starts_with(r#"{"v":3,"n":"node-a","s":[["BTCUSDT",42,[["1m","#), "{text}");
        assert!(text.contains(r#"true]],6,4000000000],["ETHUSDT",7,"#), "{text}");
        // Another version is refused, whichever way it differs: a version-2 frame has no mask and no
        // fingerprint, and a version-2 node reading this one would take the coarse forming bars as unchanged.
        for other in [r#""v":2"#, r#""v":4"#] {
            let relabelled = text.replacen(r#""v":3"#, other, 1);
            let err = decode_frame("cc:frames", relabelled.as_bytes(), "node-b").unwrap_err().to_string();
            assert!(err.contains(&format!("frame version {}", &other[4..])), "{err}");
        }
        let v2 = r#"{"v":2,"n":"node-a","s":[["BTCUSDT",42,[["1m",1700000040000,1.0,1.0,1.0,1.0,1.0,1,true]]]]}"#;
        assert!(decode_frame("cc:frames", v2.as_bytes(), "node-b")
            .unwrap_err()
            .to_string()
            .contains("frame version 2"));
        // A version-1 message (one symbol's batch) on the frames channel is refused, not read as a frame.
        assert!(decode_frame("cc:frames", &encode_batch("node-a", 1, &entries[0].bars), "node-b").is_err());
        // And a frame on a symbol's channel is refused by a version-1 reader (it has no "q" and "b").
        assert!(decode_batch("cc:bars:BTCUSDT", &btc, &payload).is_err());
        let poisoned = text.replacen(",0.30000000000000004,", ",-5,", 1);
        assert!(decode_frame("cc:frames", poisoned.as_bytes(), "node-b").unwrap_err().to_string().contains("volume"));
        let forming = vec![bar(Interval::M5, 1_700_000_100_000, false), bar(Interval::H1, 1_699_999_200_000, false)];
        let value = encode_forming(&forming);
        assert_eq!(decode_forming("k", &btc, &value).unwrap(), forming);
        assert!(decode_forming("k", &btc, "[1]").is_err());
    }

    #[test]
    fn cached_bars_and_watermarks_round_trip() {
        let b = bar(Interval::M5, 1_700_000_100_000, false);
        let member = encode_cached(&b);
        assert!(member.starts_with("[1700000100000,45000.123456789,"), "{member}");
        assert_eq!(decode_cached("k", &b.symbol, Interval::M5, &member).unwrap(), b);
        assert!(decode_cached("k", &b.symbol, Interval::M5, "[1,2]").is_err());
        let negative = member.replacen("45000.123456789", "-1", 1);
        assert!(decode_cached("k", &b.symbol, Interval::M5, &negative).is_err(), "{negative}");
        assert_eq!(decode_watermark(&encode_watermark("host-1-abc", 7)).unwrap(), ("host-1-abc".into(), 7));
        assert!(decode_watermark("nonsense").is_err());
    }

    #[test]
    fn keys_and_channels_carry_the_prefix_and_the_symbol() {
        let k = Keys::new("cc");
        assert_eq!(k.bars_channel("ETHUSDT"), "cc:bars:ETHUSDT");
        assert_eq!(k.symbol_of("cc:bars:ETHUSDT"), Some("ETHUSDT"));
        assert_eq!(k.symbol_of("other:bars:ETHUSDT"), None);
        assert_eq!(k.symbol_of("cc:bars:"), None);
        assert_eq!(k.symbol_of(&k.frames_channel()), None);
        assert_eq!(k.forming("ETHUSDT"), "cc:forming:ETHUSDT");
        assert_eq!(k.today(1_700_000_000_000, "ETHUSDT", Interval::H1), "cc:today:2023-11-14:ETHUSDT:1h");
    }

    #[test]
    fn iso_dates_match_known_days() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(951_782_400_000), "2000-02-29");
        assert_eq!(iso_date(1_709_164_800_000), "2024-02-29");
        assert_eq!(iso_date(1_735_689_599_999), "2024-12-31");
        assert_eq!(iso_date(-86_400_000), "1969-12-31");
    }

    /// Found by fuzzing (fuzz/regressions/): an open time near i64::MIN overflowed `Interval::align`.
    #[test]
    fn a_cached_bar_at_an_absurd_time_is_refused_not_a_panic() {
        let input = include_bytes!("../../../fuzz/regressions/cluster_wire-cached-open-time-min.bin");
        let member = std::str::from_utf8(&input[1..]).unwrap();
        let key = "cc:today:2024-01-01:BTCUSDT:1m";
        assert!(decode_cached(key, &Symbol::from("BTCUSDT"), Interval::M1, member).is_err());
    }
}
