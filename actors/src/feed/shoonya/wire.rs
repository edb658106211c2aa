//! Noren's JSON messages, as Shoonya's API documentation shows them, and their conversion into our
//! [`Trade`] and [`Bar`]. Every value Noren sends is a string (`"lp":"1501.05"`); numbers are accepted
//! too. Nothing here panics on input: a message that does not fit is a [`FeedError::Malformed`] that the
//! connector counts and skips, leaving the touchline state as it was.
//!
//! WebSocket messages, by their `t` field:
//! ```text
//! {"t":"ck","s":"OK","uid":"FA12345"}                                   connect acknowledgement
//! {"t":"ck","s":"Not_Ok","emsg":"Session Expired : Invalid Session Key"} session refused
//! {"t":"tk","e":"NSE","tk":"1594","ts":"INFY-EQ","lp":"1500.00","v":"1000",...}  touchline snapshot
//! {"t":"tf","e":"NSE","tk":"1594","lp":"1501.00","v":"1010","ft":"1765000000"}  changed fields only
//! ```

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::feed::FeedError;
use crate::model::{Bar, Interval, Side, Symbol, Trade};

/// India Standard Time is UTC+05:30 all year (no daylight saving): TPSeries times are IST.
const IST_OFFSET_MS: i64 = (5 * 3600 + 30 * 60) * 1000;

/// One WebSocket message from Noren.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    /// `ck`: the answer to our connect message; `Err` holds Noren's reason.
    Connected(Result<(), String>),
    /// `tk`: the full touchline, once after each subscription. Never a trade.
    Snapshot(Touchline),
    /// `tf`: the touchline fields that changed.
    Update(Touchline),
    /// Depth (`dk`/`df`), order updates (`om`), heartbeat echoes and anything else we did not ask for.
    Ignored,
}

/// The touchline fields the trade rule reads; absent when the message did not carry them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touchline {
    /// `e`: the exchange (`NSE`, `NFO`, ...).
    pub exchange: String,
    /// `tk`: the instrument's token.
    pub token: String,
    /// `lp`: last traded price.
    pub last_price: Option<f64>,
    /// `v`: the day's cumulative traded volume.
    pub volume: Option<f64>,
    /// `ft`: the exchange's feed time, epoch seconds.
    pub feed_time: Option<i64>,
}

/// Reads one WebSocket text message.
pub fn parse_ws(text: &str) -> Result<WsMessage, FeedError> {
    let value: Value = serde_json::from_str(text).map_err(|e| malformed("not JSON", &e.to_string()))?;
    let Value::Object(m) = value else { return Err(malformed("not a JSON object", text)) };
    let kind = m.get("t").and_then(Value::as_str).ok_or_else(|| malformed("no \"t\" field", text))?;
    match kind {
        "ck" => {
            let status = text_field(&m, "s").unwrap_or_default();
            if status.eq_ignore_ascii_case("OK") {
                Ok(WsMessage::Connected(Ok(())))
            } else {
                let why = text_field(&m, "emsg").unwrap_or(status);
                Ok(WsMessage::Connected(Err(if why.is_empty() { "no reason given".into() } else { why })))
            }
        }
        "tk" => touchline(&m).map(WsMessage::Snapshot),
        "tf" => touchline(&m).map(WsMessage::Update),
        _ => Ok(WsMessage::Ignored),
    }
}

fn touchline(m: &Map<String, Value>) -> Result<Touchline, FeedError> {
    let token = text_field(m, "tk").filter(|t| !t.is_empty()).ok_or_else(|| malformed("touchline without tk", ""))?;
    let feed_time = match number(m, "ft")? {
        Some(t) if (0.0..1e11).contains(&t) => Some(t as i64),
        Some(t) => return Err(malformed("ft", &t.to_string())),
        None => None,
    };
    Ok(Touchline {
        exchange: text_field(m, "e").unwrap_or_default(),
        token,
        last_price: number(m, "lp")?,
        volume: number(m, "v")?,
        feed_time,
    })
}

fn text_field(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A finite, non-negative number from a string (or number) field; absent or empty is `None`.
fn number(m: &Map<String, Value>, key: &str) -> Result<Option<f64>, FeedError> {
    let parsed = match m.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    match parsed {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(malformed(key, &m.get(key).map(Value::to_string).unwrap_or_default())),
    }
}

/// Turns touchline updates into trades. Noren's touchline has no trade messages, only the latest
/// values, so the rule is:
///
/// 1. A `tk` snapshot (after every subscription, so after every reconnect) sets the baseline: the
///    cumulative volume `v` and the last price. It is never a trade. Volume it shows beyond the previous
///    baseline traded while we were away: it is reported as missed, never emitted.
/// 2. A `tf` update whose `v` grew is one trade of the difference, at the last price (`lp` of the
///    update, else the last one known), at the exchange time `ft` (of the update, else the last one
///    known; else when it arrived). Several exchange trades between two updates become one trade.
/// 3. A `tf` without `v`, or with the same `v`, is not a trade (a price or quote change only; indices
///    have no volume and so never trade). A `v` that went down (a new session) resets the baseline.
/// 4. No volume is invented: the sum of the trades is exactly the growth of `v` seen live.
#[derive(Debug, Default)]
pub struct TradeRule {
    volume: Option<f64>,
    price: Option<f64>,
    feed_time: Option<i64>,
    /// Our own trade ids: Noren has none. They keep counting across reconnects.
    next_id: u64,
}

impl TradeRule {
    /// A `tk` snapshot: the new baseline. Returns the volume that traded since the last baseline and
    /// that no update showed (0 on the first snapshot).
    pub fn snapshot(&mut self, t: &Touchline) -> f64 {
        let missed = match (self.volume, t.volume) {
            (Some(before), Some(now)) if now > before => now - before,
            _ => 0.0,
        };
        self.volume = t.volume.or(self.volume);
        self.price = t.last_price.or(self.price);
        self.feed_time = t.feed_time.or(self.feed_time);
        missed
    }

    /// A `tf` update: a trade when the cumulative volume grew (see the type's documentation).
    pub fn update(&mut self, t: &Touchline, symbol: &Symbol, received_ms: i64) -> Option<Trade> {
        self.price = t.last_price.or(self.price);
        self.feed_time = t.feed_time.or(self.feed_time);
        let now = t.volume?;
        let Some(before) = self.volume else {
            // No snapshot yet: this is the baseline.
            self.volume = Some(now);
            return None;
        };
        self.volume = Some(now);
        if now <= before {
            return None;
        }
        let price = self.price.filter(|p| *p > 0.0)?;
        self.next_id += 1;
        let exchange_ts = self.feed_time.map(|s| s * 1000).unwrap_or(received_ms);
        Some(Trade {
            symbol: symbol.clone(),
            price,
            qty: now - before,
            side: Side::Unknown,
            exchange_ts,
            received_ts: received_ms,
            id: self.next_id,
        })
    }
}

/// What TPSeries answered: rows, or Noren's error.
#[derive(Debug)]
pub enum Series {
    Rows(Vec<Value>),
    /// `{"stat":"Not_Ok","emsg":"..."}`; "no data" is an empty series, not this.
    Refused(String),
}

/// Reads a TPSeries reply.
pub fn parse_series(reply: Value) -> Result<Series, FeedError> {
    match reply {
        Value::Array(rows) => Ok(Series::Rows(rows)),
        Value::Object(m) => {
            let why = text_field(&m, "emsg").unwrap_or_else(|| "no reason given".into());
            if why.to_ascii_lowercase().contains("no data") {
                Ok(Series::Rows(Vec::new()))
            } else {
                Ok(Series::Refused(why))
            }
        }
        _ => Err(malformed("TPSeries reply is neither a list nor an object", "")),
    }
}

/// One TPSeries row, a 1-minute bar labelled with its start in IST:
/// `{"stat":"Ok","time":"05-12-2025 09:15:00","into":"1500.00","inth":"1505.00","intl":"1498.00",
/// "intc":"1502.00","intvwap":"1501.20","intv":"1200","v":"1200","intoi":"0","oi":"0"}`
pub fn minute_bar(row: &Value, symbol: &Symbol) -> Result<Bar, FeedError> {
    let Value::Object(m) = row else { return Err(malformed("TPSeries row is not an object", "")) };
    if let Some(stat) = text_field(m, "stat") {
        if !stat.eq_ignore_ascii_case("Ok") {
            return Err(malformed("TPSeries row stat", &stat));
        }
    }
    let time = text_field(m, "time").unwrap_or_default();
    let start = ist_to_utc_ms(&time).ok_or_else(|| malformed("TPSeries time", &time))?;
    let need = |k: &str| number(m, k)?.filter(|v| *v > 0.0).ok_or_else(|| malformed(k, "missing or 0"));
    let mut bar = Bar::flat(symbol.clone(), Interval::M1, Interval::M1.align(start), need("into")?);
    bar.high = need("inth")?;
    bar.low = need("intl")?;
    bar.close = need("intc")?;
    bar.volume = number(m, "intv")?.unwrap_or(0.0);
    if !bar.is_consistent() {
        return Err(malformed("bar breaks low <= open, close <= high", &row.to_string()));
    }
    Ok(bar)
}

/// `05-12-2025 09:15:00` (IST) as UTC milliseconds.
pub fn ist_to_utc_ms(s: &str) -> Option<i64> {
    let local = NaiveDateTime::parse_from_str(s.trim(), "%d-%m-%Y %H:%M:%S").ok()?;
    Some(local.and_utc().timestamp_millis() - IST_OFFSET_MS)
}

/// UTC milliseconds as the IST text TPSeries uses (for the tests' fake server and logs).
pub fn utc_ms_to_ist(ms: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(ms.checked_add(IST_OFFSET_MS)?)?;
    Some(t.naive_utc().format("%d-%m-%Y %H:%M:%S").to_string())
}

pub(super) fn malformed(what: &str, text: &str) -> FeedError {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    FeedError::Malformed(format!("{what}: {:?}", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl(msg: &str) -> Touchline {
        match parse_ws(msg).unwrap() {
            WsMessage::Snapshot(t) | WsMessage::Update(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_message_type_reads_as_documented() {
        assert_eq!(parse_ws(r#"{"t":"ck","s":"OK","uid":"FA1"}"#).unwrap(), WsMessage::Connected(Ok(())));
        assert_eq!(
            parse_ws(r#"{"t":"ck","s":"Not_Ok","emsg":"Session Expired : Invalid Session Key"}"#).unwrap(),
            WsMessage::Connected(Err("Session Expired : Invalid Session Key".into()))
        );
        let snap = r#"{"t":"tk","e":"NSE","tk":"11630","ts":"NTPC-EQ","pp":"2","ls":"1","ti":"0.05","lp":"118.55","h":"118.65","l":"118.10","ap":"118.39","v":"162220","bp1":"118.45"}"#;
        let WsMessage::Snapshot(t) = parse_ws(snap).unwrap() else { panic!() };
        assert_eq!((t.exchange.as_str(), t.token.as_str()), ("NSE", "11630"));
        assert_eq!((t.last_price, t.volume, t.feed_time), (Some(118.55), Some(162220.0), None));
        // A partial update: only what changed.
        let t = tl(r#"{"t":"tf","e":"NSE","tk":"11630","lp":"118.60"}"#);
        assert_eq!((t.last_price, t.volume), (Some(118.6), None));
        let t = tl(r#"{"t":"tf","e":"NSE","tk":"11630","v":162300,"ft":"1765000000"}"#);
        assert_eq!((t.volume, t.feed_time), (Some(162300.0), Some(1_765_000_000)));
        for other in [r#"{"t":"dk","tk":"1"}"#, r#"{"t":"om"}"#, r#"{"t":"h"}"#] {
            assert_eq!(parse_ws(other).unwrap(), WsMessage::Ignored, "{other}");
        }
    }

    #[test]
    fn bad_numbers_and_shapes_are_malformed_not_panics() {
        for bad in [
            "",
            "not json",
            "[1,2]",
            r#"{"s":"OK"}"#,
            r#"{"t":"tf","e":"NSE"}"#,
            r#"{"t":"tf","tk":"1","lp":"abc"}"#,
            r#"{"t":"tf","tk":"1","v":"-5"}"#,
            r#"{"t":"tf","tk":"1","v":"NaN"}"#,
            r#"{"t":"tf","tk":"1","lp":"1e999"}"#,
            r#"{"t":"tf","tk":"1","ft":"99999999999999"}"#,
            r#"{"t":"tk","tk":"1","lp":{"x":1}}"#,
        ] {
            assert!(matches!(parse_ws(bad), Err(FeedError::Malformed(_))), "{bad:?}");
        }
        // Empty strings are "not sent", as Noren does for fields without a value.
        assert_eq!(tl(r#"{"t":"tf","tk":"1","lp":""}"#).last_price, None);
    }

    #[test]
    fn volume_growth_is_the_only_trade() {
        let sym = Symbol::from("NSE:INFY-EQ");
        let mut rule = TradeRule::default();
        let snap = tl(r#"{"t":"tk","e":"NSE","tk":"1594","lp":"1500","v":"1000","ft":"1765000000"}"#);
        assert_eq!(rule.snapshot(&snap), 0.0, "the first snapshot misses nothing");
        let up = |rule: &mut TradeRule, msg: &str| rule.update(&tl(msg), &sym, 42);
        assert_eq!(up(&mut rule, r#"{"t":"tf","tk":"1594","lp":"1501"}"#), None, "a price change alone");
        let t = up(&mut rule, r#"{"t":"tf","tk":"1594","v":"1010","ft":"1765000005"}"#).unwrap();
        assert_eq!((t.price, t.qty, t.exchange_ts, t.received_ts, t.id), (1501.0, 10.0, 1_765_000_005_000, 42, 1));
        assert_eq!(up(&mut rule, r#"{"t":"tf","tk":"1594","v":"1010"}"#), None, "the same volume again");
        let t = up(&mut rule, r#"{"t":"tf","tk":"1594","lp":"1502.5","v":"1025"}"#).unwrap();
        assert_eq!((t.price, t.qty, t.exchange_ts, t.id), (1502.5, 15.0, 1_765_000_005_000, 2), "the last ft");
        // Away for a while: the new snapshot shows 75 more, which is missed, not a trade.
        let snap = tl(r#"{"t":"tk","e":"NSE","tk":"1594","lp":"1503","v":"1100"}"#);
        assert_eq!(rule.snapshot(&snap), 75.0);
        let t = up(&mut rule, r#"{"t":"tf","tk":"1594","v":"1101"}"#).unwrap();
        assert_eq!((t.price, t.qty, t.id), (1503.0, 1.0, 3), "counted from the snapshot, ids go on");
        // A new session: volume restarts lower; the baseline follows, no trade.
        assert_eq!(up(&mut rule, r#"{"t":"tf","tk":"1594","v":"5"}"#), None);
        assert_eq!(up(&mut rule, r#"{"t":"tf","tk":"1594","v":"7"}"#).map(|t| t.qty), Some(2.0));
    }

    #[test]
    fn tpseries_rows_become_minute_bars_in_utc() {
        let sym = Symbol::from("NSE:INFY-EQ");
        let row: Value = serde_json::from_str(
            r#"{"stat":"Ok","time":"05-12-2025 09:15:00","into":"1500.00","inth":"1505.00","intl":"1498.00","intc":"1502.00","intvwap":"1501.2","intv":"1200","v":"99999","intoi":"0","oi":"0"}"#,
        )
        .unwrap();
        let bar = minute_bar(&row, &sym).unwrap();
        // 09:15 IST = 03:45 UTC.
        assert_eq!(bar.open_time, 1_764_906_300_000);
        assert_eq!((bar.open, bar.high, bar.low, bar.close, bar.volume), (1500.0, 1505.0, 1498.0, 1502.0, 1200.0));
        assert_eq!(utc_ms_to_ist(bar.open_time).as_deref(), Some("05-12-2025 09:15:00"));
        for bad in [
            r#"{"stat":"Ok","time":"2025-12-05 09:15:00","into":"1","inth":"1","intl":"1","intc":"1"}"#,
            r#"{"stat":"Ok","time":"05-12-2025 09:15:00","into":"x","inth":"1","intl":"1","intc":"1"}"#,
            r#"{"stat":"Ok","time":"05-12-2025 09:15:00","into":"2","inth":"1","intl":"1","intc":"1"}"#,
            r#"{"stat":"Not_Ok","time":"05-12-2025 09:15:00","into":"1","inth":"1","intl":"1","intc":"1"}"#,
            r#"[1]"#,
        ] {
            let row: Value = serde_json::from_str(bad).unwrap();
            assert!(minute_bar(&row, &sym).is_err(), "{bad}");
        }
        let reply = |s: &str| parse_series(serde_json::from_str(s).unwrap());
        assert!(matches!(reply(r#"{"stat":"Not_Ok","emsg":"Session Expired : Invalid Session Key"}"#),
            Ok(Series::Refused(e)) if e.contains("Invalid Session Key")));
        assert!(matches!(reply(r#"{"stat":"Not_Ok","emsg":"Error Occurred : 5 \"no data\""}"#),
            Ok(Series::Rows(r)) if r.is_empty()));
        assert!(reply("42").is_err());
    }
}
