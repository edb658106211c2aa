//! IQConnect's line formats (protocol 6.2), as DTN documents them, and their conversion into our
//! [`Trade`] and [`Bar`]. Every message is one line of comma-separated fields ending in `\r\n`; the
//! first field names the message type (Level 1 and Admin ports) or the request id (Lookup port).
//!
//! Parsing is table-driven: [`LEVEL1`] maps each message type to the function that reads it and
//! [`SYSTEM`] each `S,` message; every function's documentation shows the raw lines it accepts. Nothing
//! here panics on input: a line that does not fit is a [`FeedError::Malformed`] that the connector
//! counts and skips.

use chrono::{NaiveDate, NaiveDateTime};

use super::time::{
    eastern_to_utc_ms, parse_history_date, parse_history_time, parse_timestamp_message, parse_trade_date,
    parse_trade_time, utc_ms_to_eastern,
};
use crate::feed::FeedError;
use crate::model::{Bar, Interval, Side, Symbol, Trade};

/// The Level 1 fields we select (`S,SELECT UPDATE FIELDS,...`); IQConnect always puts `Symbol` first.
/// The connector reads updates by the names IQConnect confirms, not by this order.
pub const UPDATE_FIELDS: &[&str] = &[
    "Most Recent Trade",
    "Most Recent Trade Size",
    "Most Recent Trade Time",
    "Most Recent Trade Date",
    "Most Recent Trade Market Center",
    "Most Recent Trade Conditions",
    "Most Recent Trade Aggressor",
    "Message Contents",
    "TickID",
    "Total Volume",
    "Bid",
    "Ask",
];

/// One line of the Level 1 port.
#[derive(Debug, Clone, PartialEq)]
pub enum Level1<'a> {
    /// `Q,`: the selected fields of a symbol changed; a trade or only a quote (see [`TradeFilter`]).
    Update(Vec<&'a str>),
    /// `P,`: the current values, sent once after a watch. Never a new trade.
    Summary(Vec<&'a str>),
    /// `T,`: IQConnect's clock, once a second. Not a trade.
    Timestamp(NaiveDateTime),
    /// `n,`: IQFeed does not know the symbol.
    NotFound(&'a str),
    /// `E,`: an error about our last request.
    Error(&'a str),
    System(System<'a>),
    /// `F,` (fundamentals), `R,` (regional quotes) and anything else we did not ask for.
    Ignored,
}

/// One `S,` message (Level 1 and Admin ports).
#[derive(Debug, Clone, PartialEq)]
pub enum System<'a> {
    CurrentProtocol(&'a str),
    /// The update fields in force, `Symbol` first.
    UpdateFieldNames(Vec<&'a str>),
    ServerConnected,
    ServerDisconnected,
    /// Admin port, once a second.
    Stats(Stats),
    /// `S,KEY,...`, `S,IP,...`, `S,CUST,...`, `S,REGISTER CLIENT APP COMPLETED` and the like.
    Other(&'a str),
}

/// What we read from `S,STATS`: whether IQConnect is connected to DTN's servers.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub connected: bool,
    pub status: String,
}

type Parser = for<'a> fn(&'a str) -> Result<Level1<'a>, FeedError>;

/// Level 1 message types by first field. The functions get the line after `<type>,`.
pub const LEVEL1: &[(&str, Parser)] = &[
    ("Q", update),
    ("P", summary),
    ("T", timestamp),
    ("n", not_found),
    ("E", error),
    ("S", system),
    ("F", ignored),
    ("R", ignored),
];

type SystemParser = for<'a> fn(&'a str) -> Result<System<'a>, FeedError>;

/// `S,` messages by their second field. The functions get the line after `S,<name>` (and its comma).
pub const SYSTEM: &[(&str, SystemParser)] = &[
    ("CURRENT PROTOCOL", current_protocol),
    ("CURRENT UPDATE FIELDNAMES", update_field_names),
    ("SERVER CONNECTED", |_| Ok(System::ServerConnected)),
    ("SERVER DISCONNECTED", |_| Ok(System::ServerDisconnected)),
    ("STATS", stats),
];

/// Reads one line of the Level 1 or Admin port (without its line ending).
pub fn parse_level1(line: &str) -> Result<Level1<'_>, FeedError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_once(',').unwrap_or((line, ""));
    match LEVEL1.iter().find(|(k, _)| *k == kind) {
        Some((_, parse)) => parse(rest),
        None if kind.len() == 1 => Ok(Level1::Ignored),
        None => Err(malformed("unknown message type", line)),
    }
}

/// `Q,AAPL,187.2300,100,09:30:01.123456,12/05/2025,11,1,1,C,4711,1234567,187.2200,187.2400`
fn update(rest: &str) -> Result<Level1<'_>, FeedError> {
    non_empty_symbol(rest).map(|_| Level1::Update(rest.split(',').collect()))
}

/// `P,AAPL,187.2300,100,09:30:01.123456,12/05/2025,11,1,1,,4711,1234567,187.2200,187.2400`
fn summary(rest: &str) -> Result<Level1<'_>, FeedError> {
    non_empty_symbol(rest).map(|_| Level1::Summary(rest.split(',').collect()))
}

/// `T,20251205 09:30:01`
fn timestamp(rest: &str) -> Result<Level1<'_>, FeedError> {
    parse_timestamp_message(rest).map(Level1::Timestamp).ok_or_else(|| malformed("timestamp", rest))
}

/// `n,XYZZY`
fn not_found(rest: &str) -> Result<Level1<'_>, FeedError> {
    let symbol = rest.split(',').next().unwrap_or("").trim();
    if symbol.is_empty() {
        return Err(malformed("symbol not found without a symbol", rest));
    }
    Ok(Level1::NotFound(symbol))
}

/// `E,!SYMBOL LIMIT REACHED!` or `E,Invalid protocol.`
fn error(rest: &str) -> Result<Level1<'_>, FeedError> {
    Ok(Level1::Error(rest.trim_end_matches(',').trim()))
}

/// `S,SERVER DISCONNECTED`, `S,CURRENT PROTOCOL,6.2`, `S,STATS,...`: see [`SYSTEM`].
fn system(rest: &str) -> Result<Level1<'_>, FeedError> {
    let (name, args) = rest.split_once(',').unwrap_or((rest, ""));
    let name = name.trim();
    match SYSTEM.iter().find(|(n, _)| *n == name) {
        Some((_, parse)) => parse(args).map(Level1::System),
        None => Ok(Level1::System(System::Other(name))),
    }
}

/// `F,AAPL,...`, `R,...`
fn ignored(_: &str) -> Result<Level1<'_>, FeedError> {
    Ok(Level1::Ignored)
}

/// `S,CURRENT PROTOCOL,6.2`
fn current_protocol(args: &str) -> Result<System<'_>, FeedError> {
    let version = args.trim_end_matches(',').trim();
    if version.is_empty() {
        return Err(malformed("protocol reply without a version", args));
    }
    Ok(System::CurrentProtocol(version))
}

/// `S,CURRENT UPDATE FIELDNAMES,Symbol,Most Recent Trade,Most Recent Trade Size,...`
fn update_field_names(args: &str) -> Result<System<'_>, FeedError> {
    let names: Vec<&str> = args.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.first() != Some(&"Symbol") {
        return Err(malformed("update field names must start with Symbol", args));
    }
    Ok(System::UpdateFieldNames(names))
}

/// `S,STATS,66.112.156.222,60002,1300,2,1,0,0,0,Dec 05 9:29AM,Dec 05 09:30AM,Connected,6.2.0.25,123456-1,...`
/// (server ip, port, max symbols, symbols, clients, seconds since last update, reconnections,
/// attempted reconnections, start time, market time, **status**, version, login, traffic figures)
fn stats(args: &str) -> Result<System<'_>, FeedError> {
    let status = args.split(',').nth(10).map(str::trim).filter(|s| !s.is_empty());
    let status = status.ok_or_else(|| malformed("STATS without a status field", args))?;
    Ok(System::Stats(Stats { connected: status == "Connected", status: status.to_owned() }))
}

fn non_empty_symbol(rest: &str) -> Result<(), FeedError> {
    match rest.split(',').next() {
        Some(s) if !s.trim().is_empty() => Ok(()),
        _ => Err(malformed("update without a symbol", rest)),
    }
}

/// Where each field we use sits in `Q,`/`P,` messages (after the type letter), from the names in
/// `S,CURRENT UPDATE FIELDNAMES`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    price: usize,
    size: usize,
    time: usize,
    date: Option<usize>,
    aggressor: Option<usize>,
    contents: Option<usize>,
    tick_id: Option<usize>,
    total_volume: Option<usize>,
}

impl Layout {
    /// `names` as IQConnect lists them, `Symbol` first. A trade needs price, size and time.
    pub fn from_names(names: &[&str]) -> Result<Layout, FeedError> {
        let at = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let need = |name: &str| at(name).ok_or_else(|| malformed("update fields lack", name));
        Ok(Layout {
            price: need("Most Recent Trade")?,
            size: need("Most Recent Trade Size")?,
            time: need("Most Recent Trade Time")?,
            date: at("Most Recent Trade Date"),
            aggressor: at("Most Recent Trade Aggressor"),
            contents: at("Message Contents"),
            tick_id: at("TickID"),
            total_volume: at("Total Volume"),
        })
    }

    /// The layout of the fields we ask for, until IQConnect confirms them.
    pub fn requested() -> Layout {
        let mut names = vec!["Symbol"];
        names.extend_from_slice(UPDATE_FIELDS);
        // The fixed list above names every field `from_names` needs.
        Layout::from_names(&names).unwrap_or(Layout {
            price: 1,
            size: 2,
            time: 3,
            date: None,
            aggressor: None,
            contents: None,
            tick_id: None,
            total_volume: None,
        })
    }
}

/// Tells updates that carry a new trade from quote-only updates, and turns the former into trades.
///
/// The rule, in order:
/// 1. `P,` summaries are never trades; they set the baseline (the last trade IQFeed already reported).
/// 2. With the `Message Contents` field, an update is a trade when it holds `C` (last qualified
///    trade), `E` (extended-hours trade) or `O` (other trade); `b`, `a`, `v`, `o`, `h`, `l`... alone
///    are quote or summary changes.
/// 3. Without it, an update is a trade when its `TickID` differs from the last trade's; without a
///    TickID either, when trade time, size or total volume changed.
/// 4. An update whose `TickID` equals the last trade's is a repeat, never a second trade.
#[derive(Debug, Default)]
pub struct TradeFilter {
    last_tick: Option<u64>,
    last_key: Option<String>,
    /// Trade ids when IQFeed sends no TickID.
    counter: u64,
    /// TickIDs up to this one were handed on by a gap fill: updates carrying them are repeats (the new
    /// watch's summary does not move this, whatever TickID it carries).
    through: Option<u64>,
}

impl TradeFilter {
    /// After a gap fill that handed on every trade up to TickID `tick`: an update repeating it (the
    /// watch's first `Q,`) is not a second trade.
    pub fn skip_through(&mut self, tick: u64) {
        self.through = Some(tick);
    }

    /// `fields` of a `Q,`/`P,` message (symbol first). `clock` is the date of the last `T,` message,
    /// for updates without a trade date; `received` is when the line arrived (UTC ms).
    pub fn observe(
        &mut self,
        layout: &Layout,
        fields: &[&str],
        summary: bool,
        clock: Option<NaiveDate>,
        symbol: &Symbol,
        received: i64,
    ) -> Result<Option<Trade>, FeedError> {
        let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).map(|s| s.trim()).filter(|s| !s.is_empty());
        let tick = match get(layout.tick_id) {
            Some(t) => Some(t.parse::<u64>().map_err(|_| malformed("TickID", t))?),
            None => None,
        };
        let key = [Some(layout.time), Some(layout.size), layout.total_volume].map(get).map(|f| f.unwrap_or(""));
        let key = key.join("|");
        if summary {
            self.last_tick = tick.or(self.last_tick);
            self.last_key = Some(key);
            return Ok(None);
        }
        let is_trade = match get(layout.contents) {
            Some(contents) => contents.contains(['C', 'E', 'O']),
            None if layout.contents.is_some() => false,
            None => match tick {
                Some(_) => tick != self.last_tick,
                None => self.last_key.as_deref() != Some(key.as_str()),
            },
        };
        if !is_trade || (tick.is_some() && tick == self.last_tick) {
            return Ok(None);
        }
        if let (Some(through), Some(t)) = (self.through, tick) {
            if t <= through {
                return Ok(None);
            }
            self.through = None;
        }
        let price = positive("price", get(Some(layout.price)))?;
        let qty = positive("size", get(Some(layout.size)))?;
        let time = get(Some(layout.time)).and_then(parse_trade_time).ok_or_else(|| malformed("trade time", ""))?;
        let date = match get(layout.date) {
            Some(d) => parse_trade_date(d).ok_or_else(|| malformed("trade date", d))?,
            None => match clock.or_else(|| utc_ms_to_eastern(received).map(|t| t.date())) {
                Some(d) => d,
                None => return Err(malformed("no date for the trade", "")),
            },
        };
        let exchange_ts = eastern_to_utc_ms(date.and_time(time), Some(received))
            .ok_or_else(|| malformed("trade time in the hour skipped by daylight saving", ""))?;
        let side = match get(layout.aggressor) {
            Some("1") => Side::Buy,
            Some("2") => Side::Sell,
            _ => Side::Unknown,
        };
        self.counter += 1;
        let id = tick.unwrap_or(self.counter);
        self.last_tick = tick;
        self.last_key = Some(key);
        Ok(Some(Trade { symbol: symbol.clone(), price, qty, side, exchange_ts, received_ts: received, id }))
    }
}

/// One line of the Lookup port, for the request `id`.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    /// `<id>,LH,<fields>` / `<id>,LS,<fields>`: one data point or instrument; the fields after the tag.
    Row(Vec<&'a str>),
    /// `<id>,!ENDMSG!,`: the reply is complete.
    End,
    /// `<id>,E,!NO_DATA!,`: nothing in the range (an empty reply, not a failure).
    NoData,
    /// `<id>,E,Invalid symbol.,`: the request failed; the reason.
    Error(&'a str),
    /// Another request's line, or an `S,` message (`S,CURRENT PROTOCOL,6.2`).
    Other,
}

/// Reads one line of the Lookup port for request `id`.
///
/// ```text
/// H1,LH,2025-12-05 09:30:00,187.50,187.10,187.20,187.40,1234567,5400,37,
/// H1,!ENDMSG!,
/// H1,E,!NO_DATA!,
/// H1,E,Invalid symbol.,
/// ```
pub fn parse_lookup<'a>(line: &'a str, id: &str) -> Lookup<'a> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut fields = line.split(',');
    if fields.next() != Some(id) {
        return Lookup::Other;
    }
    match fields.next().map(str::trim) {
        Some("!ENDMSG!") => Lookup::End,
        Some("E") => match fields.next().map(str::trim).unwrap_or("") {
            "!NO_DATA!" => Lookup::NoData,
            "" => Lookup::Error("error without a reason"),
            reason => Lookup::Error(reason),
        },
        // LH: history rows; LS: symbol lookup and catalogue rows (protocol 6).
        Some("LH" | "LS") => {
            let mut row: Vec<&str> = fields.collect();
            while row.last().is_some_and(|f| f.trim().is_empty()) {
                row.pop();
            }
            Lookup::Row(row)
        }
        _ => Lookup::Other,
    }
}

/// One row of an `HIT` reply (interval bars, labelled at the start of the interval as we request):
/// `2025-12-05 09:30:00,<high>,<low>,<open>,<close>,<total volume>,<period volume>,<number of trades>`
pub fn interval_bar(row: &[&str], symbol: &Symbol, interval: Interval) -> Result<Bar, FeedError> {
    let time = row.first().and_then(|t| parse_history_time(t)).ok_or_else(|| malformed("bar time", &row.join(",")))?;
    let start = eastern_to_utc_ms(time, None).ok_or_else(|| malformed("bar time in the skipped hour", ""))?;
    let trades = match row.get(7).map(|s| s.trim()) {
        Some(n) if !n.is_empty() => n.parse::<u64>().map_err(|_| malformed("number of trades", n))?,
        _ => 0,
    };
    ohlcv(row, [3, 1, 2, 4, 6], symbol, interval, interval.align(start), trades)
}

/// One row of an `HDX` reply (daily bars): `2025-12-05,<high>,<low>,<open>,<close>,<volume>,<open interest>`.
/// The trading date becomes our 1d bucket of that calendar date (UTC midnight).
pub fn daily_bar(row: &[&str], symbol: &Symbol) -> Result<Bar, FeedError> {
    let date = row.first().and_then(|d| parse_history_date(d)).ok_or_else(|| malformed("bar date", &row.join(",")))?;
    let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
    let start = start.ok_or_else(|| malformed("bar date", ""))?;
    ohlcv(row, [3, 1, 2, 4, 5], symbol, Interval::D1, start, 0)
}

/// One row of an `HTT` reply (tick history), as a trade; `None` for a row that is not a trade (its
/// `Basis For Last` is not `C`, `E` or `O`, the letters of the Level 1 rule):
/// `<time stamp>,<last>,<last size>,<total volume>,<bid>,<ask>,<tick id>,<basis for last>,<market center>,
/// <conditions>,<aggressor>,<day code>` with the time stamp `2025-12-05 10:15:02.123456` (US Eastern).
pub fn tick_trade(row: &[&str], symbol: &Symbol, received: i64) -> Result<Option<Trade>, FeedError> {
    let field = |i: usize| row.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
    if !field(7).is_some_and(|basis| matches!(basis, "C" | "E" | "O")) {
        return Ok(None);
    }
    let time = field(0).and_then(parse_history_time).ok_or_else(|| malformed("tick time", &row.join(",")))?;
    let exchange_ts = eastern_to_utc_ms(time, Some(received))
        .ok_or_else(|| malformed("tick time in the hour skipped by daylight saving", ""))?;
    let id = field(6).ok_or_else(|| malformed("TickID", "missing"))?;
    let id = id.parse::<u64>().map_err(|_| malformed("TickID", id))?;
    let side = match field(10) {
        Some("1") => Side::Buy,
        Some("2") => Side::Sell,
        _ => Side::Unknown,
    };
    Ok(Some(Trade {
        symbol: symbol.clone(),
        price: positive("price", field(1))?,
        qty: positive("size", field(2))?,
        side,
        exchange_ts,
        received_ts: received,
        id,
    }))
}

/// Open, high, low, close and volume from the row positions `at`.
fn ohlcv(
    row: &[&str],
    at: [usize; 5],
    symbol: &Symbol,
    iv: Interval,
    start: i64,
    trades: u64,
) -> Result<Bar, FeedError> {
    let field = |i: usize| row.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
    let open = positive("open", field(at[0]))?;
    let mut bar = Bar::flat(symbol.clone(), iv, start, open);
    bar.high = positive("high", field(at[1]))?;
    bar.low = positive("low", field(at[2]))?;
    bar.close = positive("close", field(at[3]))?;
    bar.volume = match field(at[4]).map(str::parse::<f64>) {
        Some(Ok(v)) if v.is_finite() && v >= 0.0 => v,
        None => 0.0,
        _ => return Err(malformed("volume", field(at[4]).unwrap_or(""))),
    };
    bar.trades = trades;
    if !bar.is_consistent() {
        return Err(malformed("bar breaks low <= open, close <= high", &row.join(",")));
    }
    Ok(bar)
}

/// A price or size: a finite number above zero.
fn positive(what: &str, s: Option<&str>) -> Result<f64, FeedError> {
    let s = s.ok_or_else(|| malformed(what, "missing"))?;
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(malformed(what, s)),
    }
}

fn malformed(what: &str, text: &str) -> FeedError {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    FeedError::Malformed(format!("{what}: {:?}", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &str = "S,CURRENT UPDATE FIELDNAMES,Symbol,Most Recent Trade,Most Recent Trade Size,Most Recent Trade Time,Most Recent Trade Date,Most Recent Trade Market Center,Most Recent Trade Conditions,Most Recent Trade Aggressor,Message Contents,TickID,Total Volume,Bid,Ask";

    fn layout() -> Layout {
        let Ok(Level1::System(System::UpdateFieldNames(names))) = parse_level1(NAMES) else { panic!() };
        Layout::from_names(&names).unwrap()
    }

    fn fields(line: &str) -> Vec<&str> {
        match parse_level1(line).unwrap() {
            Level1::Update(f) | Level1::Summary(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_message_type_reads_as_documented() {
        assert_eq!(parse_level1("S,CURRENT PROTOCOL,6.2\r\n").unwrap(), Level1::System(System::CurrentProtocol("6.2")));
        assert_eq!(parse_level1("S,SERVER DISCONNECTED").unwrap(), Level1::System(System::ServerDisconnected));
        assert_eq!(parse_level1("S,SERVER CONNECTED").unwrap(), Level1::System(System::ServerConnected));
        assert_eq!(parse_level1("S,KEY,12345").unwrap(), Level1::System(System::Other("KEY")));
        assert_eq!(parse_level1("n,XYZZY").unwrap(), Level1::NotFound("XYZZY"));
        assert_eq!(parse_level1("E,!SYMBOL LIMIT REACHED!,").unwrap(), Level1::Error("!SYMBOL LIMIT REACHED!"));
        assert!(matches!(parse_level1("T,20251205 09:30:01").unwrap(), Level1::Timestamp(_)));
        assert_eq!(parse_level1("F,AAPL,5,1.2").unwrap(), Level1::Ignored);
        assert_eq!(layout(), Layout::requested(), "the fields we ask for are the ones IQConnect confirms");
        let stats = "S,STATS,66.112.156.222,60002,1300,2,1,0,0,0,Dec 05 9:29AM,Dec 05 09:30AM,Not Connected,6.2.0.25,123456-1,1.5,0.1,0.1,0.5,0.0,0.0";
        assert_eq!(
            parse_level1(stats).unwrap(),
            Level1::System(System::Stats(Stats { connected: false, status: "Not Connected".into() }))
        );
        assert!(parse_level1(&stats.replace("Not Connected", "Connected"))
            .is_ok_and(|m| matches!(m, Level1::System(System::Stats(Stats { connected: true, .. })))));
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in ["", "QQ,AAPL", "Q,", "Q", "T,yesterday", "n,", "S,STATS,1,2", "S,CURRENT PROTOCOL,", "\u{ff}\u{fe}"]
        {
            assert!(matches!(parse_level1(bad), Err(FeedError::Malformed(_))), "{bad:?}");
        }
        assert!(Layout::from_names(&["Symbol", "Bid", "Ask"]).is_err(), "no trade fields");
    }

    #[test]
    fn only_updates_that_carry_a_new_trade_become_trades() {
        let (l, sym) = (layout(), Symbol::from("AAPL"));
        let mut f = TradeFilter::default();
        let obs = |f: &mut TradeFilter, line: &str, summary| f.observe(&l, &fields(line), summary, None, &sym, 0);
        // The summary after the watch: the last trade before we came, not a new one.
        let p = "P,AAPL,187.2300,100,09:30:01.000000,12/05/2025,11,,1,,4711,1000,187.22,187.24";
        assert_eq!(obs(&mut f, p, true).unwrap(), None);
        // A bid change only.
        let bid = "Q,AAPL,187.2300,100,09:30:01.000000,12/05/2025,11,,1,b,4711,1000,187.23,187.24";
        assert_eq!(obs(&mut f, bid, false).unwrap(), None);
        // A trade: 'C', a new TickID.
        let trade = "Q,AAPL,187.2500,200,09:30:02.500000,12/05/2025,11,,2,Cv,4712,1200,187.23,187.26";
        let t = obs(&mut f, trade, false).unwrap().unwrap();
        // 2025-12-05 is winter: 09:30:02.5 EST = 14:30:02.5Z.
        assert_eq!((t.price, t.qty, t.id, t.side, t.exchange_ts), (187.25, 200.0, 4712, Side::Sell, 1_764_945_002_500));
        // The same trade repeated (same TickID) is not a second trade.
        assert_eq!(obs(&mut f, trade, false).unwrap(), None);
        // Not a trade because of a bad price, but a malformed one.
        let bad = "Q,AAPL,-1,200,09:30:03.000000,12/05/2025,11,,2,C,4713,1400,187.23,187.26";
        assert!(obs(&mut f, bad, false).is_err());
        for nan in ["NaN", "inf", "0"] {
            let line = trade.replace("4712", "4714").replace(",200,", &format!(",{nan},"));
            assert!(obs(&mut f, &line, false).is_err(), "size {nan}");
        }
    }

    /// Without `Message Contents`: a new TickID is a new trade; without TickID, a new time/size/volume.
    #[test]
    fn without_message_contents_the_tick_id_decides() {
        let sym = Symbol::from("ES");
        let names = ["Symbol", "Most Recent Trade", "Most Recent Trade Size", "Most Recent Trade Time", "TickID"];
        let l = Layout::from_names(&names).unwrap();
        let mut f = TradeFilter::default();
        let date = NaiveDate::from_ymd_opt(2025, 7, 1);
        let mut obs = |line: &str| f.observe(&l, &fields(line), false, date, &sym, 0).unwrap();
        let t = obs("Q,ES,6000.25,1,10:00:00.000,9").unwrap();
        assert_eq!(t.exchange_ts, 1_751_378_400_000, "July: 10:00 EDT = 14:00Z, on the T message's date");
        assert_eq!(obs("Q,ES,6000.25,1,10:00:00.000,9"), None);
        assert!(obs("Q,ES,6000.50,1,10:00:00.000,10").is_some());
    }

    #[test]
    fn lookup_replies() {
        let row = "H7,LH,2025-12-05 09:30:00,187.50,187.10,187.20,187.40,1234567,5400,37,";
        let Lookup::Row(r) = parse_lookup(row, "H7") else { panic!() };
        let bar = interval_bar(&r, &"AAPL".into(), Interval::M1).unwrap();
        assert_eq!(
            (bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades),
            (1_764_945_000_000, 187.2, 187.5, 187.1, 187.4, 5400.0, 37)
        );
        assert_eq!(parse_lookup("H7,!ENDMSG!,\r\n", "H7"), Lookup::End);
        assert_eq!(parse_lookup("H7,E,!NO_DATA!,", "H7"), Lookup::NoData);
        assert_eq!(parse_lookup("H7,E,Invalid symbol.,", "H7"), Lookup::Error("Invalid symbol."));
        assert_eq!(parse_lookup("H8,!ENDMSG!,", "H7"), Lookup::Other);
        assert_eq!(parse_lookup("S,CURRENT PROTOCOL,6.2", "H7"), Lookup::Other);
        let Lookup::Row(d) = parse_lookup("D1,LH,2025-12-05,190.0,185.0,186.0,189.0,50000000,0,", "D1") else {
            panic!()
        };
        let day = daily_bar(&d, &"AAPL".into()).unwrap();
        assert_eq!((day.open_time, day.open, day.close), (1_764_892_800_000, 186.0, 189.0));
        for bad in [
            "2025-12-05 09:30:00,187.50,187.10,NaN,187.40,1,1,1",
            "2025-12-05 09:30:00,187.00,187.10,187.20,187.40,1,1,1",
            "2025-12-05 09:30:00,187.50",
            "yesterday,1,1,1,1,1,1,1",
        ] {
            let r: Vec<&str> = bad.split(',').collect();
            assert!(interval_bar(&r, &"AAPL".into(), Interval::M1).is_err(), "{bad}");
        }
    }

    #[test]
    fn tick_history_rows_become_trades_and_quote_rows_do_not() {
        let symbol: Symbol = "AAPL".into();
        let row = "2025-12-05 10:15:02.250000,187.41,300,1234567,187.40,187.42,90211,C,19,3D87,1,20251205";
        let line = format!("T3,LH,{row},");
        let Lookup::Row(r) = parse_lookup(&line, "T3") else { panic!() };
        let trade = tick_trade(&r, &symbol, 1_764_947_702_300).unwrap().unwrap();
        // 10:15:02.25 EST is 15:15:02.25 UTC.
        assert_eq!((trade.exchange_ts, trade.price, trade.qty, trade.id), (1_764_947_702_250, 187.41, 300.0, 90211));
        assert_eq!(trade.side, Side::Buy);
        // A bid/ask row (basis "b") is not a trade; a trade without a TickID or with a bad price is malformed.
        let quote = row.replace(",C,", ",b,");
        assert_eq!(tick_trade(&quote.split(',').collect::<Vec<_>>(), &symbol, 0).unwrap(), None);
        assert!(tick_trade(&row.replace(",90211,", ",,").split(',').collect::<Vec<_>>(), &symbol, 0).is_err());
        assert!(tick_trade(&row.replace(",187.41,", ",NaN,").split(',').collect::<Vec<_>>(), &symbol, 0).is_err());
    }
}
