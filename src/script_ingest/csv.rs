//! Seed 003's two CSVs, parsed row by row: every bad row is reported with its line number and reason,
//! and the good rows of the same text are kept.
//!
//! - Trades: `timestamp,symbol,side,quantity,price,profit_loss,strategy` (the last two optional).
//! - Market data: `timestamp,symbol,open,high,low,close,volume,rsi,signal_strength`; `rsi`,
//!   `signal_strength` and any other extra numeric column are indicator values; an optional `trades`
//!   column is the bar's trade count.
//!
//! Column names are matched case-insensitively, in any order; cells are trimmed.
//!
//! Parsing is linear in the text: the header is indexed once, so a row reads each cell once. A CSV wider
//! than `max_columns` or longer than `max_rows` is refused as a whole ([`CsvLimitError`]), before any of
//! it is kept. Prices, quantities and volumes are bounded so that no sum of them overflows to infinity.

use candlecast_actors::model::Symbol;
use std::collections::{BTreeMap, HashMap};

use candlecast_actors::engine::valid_symbol;
use candlecast_actors::model::{MAX_PRICE, MAX_QTY};
use serde::Serialize;

use candlecast_actors::model::{parse_timestamp, TimestampError};

/// Row errors listed in one report at most; the count still covers them all.
pub const MAX_LISTED_ERRORS: usize = 1000;
/// The largest volume of one market-data row: bars of coins priced in millionths trade 10^13 a day.
pub const MAX_VOLUME: f64 = 1e18;
/// The largest trade count of one market-data row (bars add them up as integers).
pub const MAX_TRADE_COUNT: u64 = 1_000_000_000_000;
/// The longest strategy name of an executed trade, in bytes (every kept trade stores its own).
pub const MAX_STRATEGY_BYTES: usize = 200;

/// How large one CSV may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvLimits {
    pub max_columns: usize,
    pub max_rows: usize,
}

/// A CSV over a limit: refused as a whole, nothing of it kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvLimitError {
    /// `found`: the columns counted; a header is counted only up to the first one over the limit.
    #[error("{csv} line {line} has more than the {max} columns allowed ([scripts] max_csv_columns)")]
    Columns { csv: &'static str, line: u64, found: usize, max: usize },
    #[error("{csv} has more than {max} rows ([scripts] max_csv_rows); split it into several uploads")]
    Rows { csv: &'static str, max: usize },
}

impl CsvLimitError {
    /// The config key of the limit.
    pub fn limit(&self) -> &'static str {
        match self {
            CsvLimitError::Columns { .. } => "max_csv_columns",
            CsvLimitError::Rows { .. } => "max_csv_rows",
        }
    }
}

/// One refused row (or the header, line 1).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// Which CSV: `trades_csv` or `market_data_csv`.
    pub csv: &'static str,
    pub line: u64,
    pub reason: String,
}

/// Why one row was refused; its text is the row's [`RowError::reason`], which scripts read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadRow {
    #[error("{column} is empty")]
    Empty { column: String },
    #[error("{column} is not a finite number: {raw:?}")]
    NotANumber { column: String, raw: String },
    #[error("{column} must be above 0, got {value}")]
    NotPositive { column: &'static str, value: f64 },
    /// Larger values would overflow sums (bar volumes) to infinity.
    #[error("{column} must be at most {max:e}, got {value:e}")]
    TooLarge { column: &'static str, max: f64, value: f64 },
    #[error("volume must not be negative, got {0}")]
    NegativeVolume(f64),
    #[error("prices are inconsistent: low {low} and high {high} must enclose open {open} and close {close}")]
    InconsistentPrices { open: f64, high: f64, low: f64, close: f64 },
    #[error("trades must be a whole number up to {max}, got {raw:?}")]
    TradeCount { max: u64, raw: String },
    #[error("strategy is longer than {max} bytes")]
    StrategyTooLong { max: usize },
    /// As the row spelled it.
    #[error("side must be BUY or SELL, got {0:?}")]
    Side(String),
    /// As the row spelled it.
    #[error("symbol {0:?} is not valid (1-20 letters, digits, - _ .)")]
    Symbol(String),
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
}

/// An executed trade a script reports (not a market trade: it has a P&L and a strategy).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutedTrade {
    /// UTC milliseconds.
    pub timestamp: i64,
    pub symbol: String,
    /// `BUY` or `SELL`.
    pub side: &'static str,
    pub quantity: f64,
    pub price: f64,
    pub profit_loss: Option<f64>,
    pub strategy: String,
}

/// One market-data row: a bar (its interval decided later) and its indicator values.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketRow {
    pub line: u64,
    pub timestamp: i64,
    pub symbol: String,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub trades: Option<u64>,
    pub indicators: BTreeMap<String, f64>,
}

/// The good rows of a CSV (with their cells, to write them again for dashboards) and its refused rows.
#[derive(Debug)]
pub struct Parsed<T> {
    pub csv: &'static str,
    pub rows: Vec<T>,
    records: Vec<csv::StringRecord>,
    header: Vec<String>,
    pub errors: Vec<RowError>,
    /// Refused rows in total (`errors` lists at most [`MAX_LISTED_ERRORS`]).
    pub rejected: usize,
}

impl<T> Parsed<T> {
    fn new(csv: &'static str) -> Parsed<T> {
        Parsed { csv, rows: Vec::new(), records: Vec::new(), header: Vec::new(), errors: Vec::new(), rejected: 0 }
    }

    /// Records a refused row.
    pub fn refuse(&mut self, line: u64, reason: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(RowError { csv: self.csv, line, reason });
        }
    }

    /// The header and the rows `keep` selects (by position in `rows`), as CSV text; empty without rows.
    pub fn to_csv(&self, keep: impl Fn(usize) -> bool) -> String {
        let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
        let mut any = false;
        // Writing into a Vec cannot fail.
        let _ = writer.write_record(&self.header);
        for (_, record) in self.records.iter().enumerate().filter(|(i, _)| keep(*i)) {
            let _ = writer.write_record(record);
            any = true;
        }
        if !any {
            return String::new();
        }
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

const TRADE_COLUMNS: [&str; 5] = ["timestamp", "symbol", "side", "quantity", "price"];
const MARKET_COLUMNS: [&str; 7] = ["timestamp", "symbol", "open", "high", "low", "close", "volume"];

/// Parses a trades CSV.
pub fn parse_trades(text: &str, limits: CsvLimits) -> Result<Parsed<ExecutedTrade>, CsvLimitError> {
    parse(text, "trades_csv", &TRADE_COLUMNS, limits, |row| {
        let quantity = row.positive("quantity", MAX_QTY)?;
        let price = row.positive("price", MAX_PRICE)?;
        let strategy = row.get("strategy");
        if strategy.len() > MAX_STRATEGY_BYTES {
            return Err(BadRow::StrategyTooLong { max: MAX_STRATEGY_BYTES });
        }
        let side = match row.get("side").to_ascii_uppercase().as_str() {
            "BUY" => "BUY",
            "SELL" => "SELL",
            other => return Err(BadRow::Side(other.to_owned())),
        };
        Ok(ExecutedTrade {
            timestamp: row.timestamp()?,
            symbol: row.symbol()?,
            side,
            quantity,
            price,
            profit_loss: row.optional_number("profit_loss")?,
            strategy: strategy.to_owned(),
        })
    })
}

/// Parses a market-data CSV.
pub fn parse_market_data(text: &str, limits: CsvLimits) -> Result<Parsed<MarketRow>, CsvLimitError> {
    parse(text, "market_data_csv", &MARKET_COLUMNS, limits, |row| {
        let [open, high, low, close] = [
            row.positive("open", MAX_PRICE)?,
            row.positive("high", MAX_PRICE)?,
            row.positive("low", MAX_PRICE)?,
            row.positive("close", MAX_PRICE)?,
        ];
        if low > open.min(close) || high < open.max(close) {
            return Err(BadRow::InconsistentPrices { open, high, low, close });
        }
        let volume = row.number("volume")?;
        if volume < 0.0 {
            return Err(BadRow::NegativeVolume(volume));
        }
        if volume > MAX_VOLUME {
            return Err(BadRow::TooLarge { column: "volume", max: MAX_VOLUME, value: volume });
        }
        let trades = match row.get("trades") {
            "" => None,
            t => Some(
                t.parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_TRADE_COUNT)
                    .ok_or_else(|| BadRow::TradeCount { max: MAX_TRADE_COUNT, raw: t.to_owned() })?,
            ),
        };
        let mut indicators = BTreeMap::new();
        for (name, index) in row.columns.extra.iter() {
            if let Some(v) = row.optional_number_at(name, *index)? {
                indicators.insert(name.clone(), v);
            }
        }
        Ok(MarketRow {
            line: row.line,
            timestamp: row.timestamp()?,
            symbol: row.symbol()?,
            open,
            high,
            low,
            close,
            volume,
            trades,
            indicators,
        })
    })
}

/// Where each named column is, found once per CSV (a row lookup is then O(1), not a header scan).
struct Columns {
    /// Lowercase name → position; the first of duplicate names wins.
    index: HashMap<String, usize>,
    /// Indicator columns (outside the known ones and `trades`), in header order, with their positions.
    extra: Vec<(String, usize)>,
}

impl Columns {
    fn new(header: &[String], known: &[&str]) -> Columns {
        let mut index = HashMap::with_capacity(header.len());
        let mut extra = Vec::new();
        for (i, name) in header.iter().enumerate() {
            if index.contains_key(name) {
                continue;
            }
            index.insert(name.clone(), i);
            if !name.is_empty() && !known.contains(&name.as_str()) && name != "trades" {
                extra.push((name.clone(), i));
            }
        }
        Columns { index, extra }
    }
}

/// One data row with its column positions, for the field readers.
struct Row<'a> {
    line: u64,
    columns: &'a Columns,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn get(&self, column: &str) -> &str {
        self.columns.index.get(column).and_then(|&i| self.record.get(i)).unwrap_or("")
    }

    fn number(&self, column: &str) -> Result<f64, BadRow> {
        parse_number(column, self.get(column))
    }

    /// A finite number above 0 and at most `max` (larger ones would overflow sums to infinity).
    fn positive(&self, column: &'static str, max: f64) -> Result<f64, BadRow> {
        let v = self.number(column)?;
        if v <= 0.0 {
            Err(BadRow::NotPositive { column, value: v })
        } else if v > max {
            Err(BadRow::TooLarge { column, max, value: v })
        } else {
            Ok(v)
        }
    }

    fn optional_number(&self, column: &str) -> Result<Option<f64>, BadRow> {
        match self.get(column) {
            "" => Ok(None),
            raw => parse_number(column, raw).map(Some),
        }
    }

    fn optional_number_at(&self, column: &str, index: usize) -> Result<Option<f64>, BadRow> {
        match self.record.get(index).unwrap_or("") {
            "" => Ok(None),
            raw => parse_number(column, raw).map(Some),
        }
    }

    fn timestamp(&self) -> Result<i64, BadRow> {
        Ok(parse_timestamp(self.get("timestamp"))?)
    }

    fn symbol(&self) -> Result<String, BadRow> {
        let symbol = Symbol::normalize(self.get("symbol")).to_string();
        if valid_symbol(&symbol) {
            Ok(symbol)
        } else {
            Err(BadRow::Symbol(self.get("symbol").to_owned()))
        }
    }
}

/// A finite number (`inf`, `NaN` and overflowing text such as `1e400` are refused).
fn parse_number(column: &str, raw: &str) -> Result<f64, BadRow> {
    if raw.is_empty() {
        return Err(BadRow::Empty { column: column.to_owned() });
    }
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| BadRow::NotANumber { column: column.to_owned(), raw: raw.to_owned() })
}

fn parse<T>(
    text: &str,
    csv_name: &'static str,
    required: &[&str],
    limits: CsvLimits,
    read: impl Fn(&Row) -> Result<T, BadRow>,
) -> Result<Parsed<T>, CsvLimitError> {
    let mut parsed = Parsed::new(csv_name);
    if text.trim().is_empty() {
        return Ok(parsed);
    }
    let too_wide =
        |line: u64, found: usize| CsvLimitError::Columns { csv: csv_name, line, found, max: limits.max_columns };
    // Counted before the reader splits the header into one string per column: a 100,000-column header
    // cost 100,000 allocations (and their trimming and lowercasing) only to be refused.
    if let Some(found) = header_wider_than(text, limits.max_columns) {
        return Err(too_wide(1, found));
    }
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    parsed.header = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_ascii_lowercase()).collect(),
        Err(e) => {
            parsed.refuse(1, format!("unreadable header: {e}"));
            return Ok(parsed);
        }
    };
    if parsed.header.len() > limits.max_columns {
        return Err(too_wide(1, parsed.header.len()));
    }
    let missing: Vec<&str> = required.iter().copied().filter(|c| !parsed.header.iter().any(|h| h == c)).collect();
    if !missing.is_empty() {
        parsed.refuse(1, format!("header lacks column(s) {}; expected {}", missing.join(", "), required.join(",")));
        return Ok(parsed);
    }
    let columns = Columns::new(&parsed.header, required);
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                rows += 1;
                if rows > limits.max_rows {
                    return Err(CsvLimitError::Rows { csv: csv_name, max: limits.max_rows });
                }
                if record.len() > limits.max_columns {
                    return Err(too_wide(line, record.len()));
                }
                if record.len() != parsed.header.len() {
                    parsed.refuse(line, format!("expected {} fields, got {}", parsed.header.len(), record.len()));
                    continue;
                }
                match read(&Row { line, columns: &columns, record: &record }) {
                    Ok(row) => {
                        parsed.rows.push(row);
                        parsed.records.push(record.clone());
                    }
                    Err(reason) => parsed.refuse(line, reason.to_string()),
                }
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                parsed.refuse(line, format!("unreadable row: {e}"));
                // A reader error is not always past the bad row; stop rather than loop on it.
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }) {
                    break;
                }
            }
        }
    }
    Ok(parsed)
}

/// Whether the header (the first record, quotes respected: RFC 4180) has more than `max` fields: the count
/// found when it stops, which is `max + 1` (it stops at the first field over the limit), or None.
fn header_wider_than(text: &str, max: usize) -> Option<usize> {
    let mut fields = 1;
    let mut quoted = false;
    for b in text.bytes() {
        match b {
            b'"' => quoted = !quoted, // a doubled quote inside a quoted field toggles twice
            b',' if !quoted => {
                fields += 1;
                if fields > max {
                    return Some(fields);
                }
            }
            b'\n' if !quoted => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: CsvLimits = CsvLimits { max_columns: 64, max_rows: 100_000 };

    const SEED_TRADES: &str = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n2023-01-01T10:05:00,TSLA,SELL,50,800.00,-15.25,Three Red Bodies\n";
    const SEED_MARKET: &str = "timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n2023-01-01T10:00:00,AAPL,149.50,151.00,149.00,150.00,50000,65.5,0.75\n2023-01-01T10:05:00,TSLA,799.00,805.00,795.00,800.00,25000,45.2,0.85\n";

    #[test]
    fn seed_examples_parse() {
        let t = parse_trades(SEED_TRADES, L).unwrap();
        assert_eq!((t.rows.len(), t.rejected), (2, 0), "{:?}", t.errors);
        assert_eq!(
            t.rows[1],
            ExecutedTrade {
                timestamp: 1_672_567_500_000,
                symbol: "TSLA".into(),
                side: "SELL",
                quantity: 50.0,
                price: 800.0,
                profit_loss: Some(-15.25),
                strategy: "Three Red Bodies".into()
            }
        );
        assert_eq!(t.to_csv(|_| true), SEED_TRADES);
        assert_eq!(t.to_csv(|_| false), "", "no rows, no text");
        let m = parse_market_data(SEED_MARKET, L).unwrap();
        assert_eq!((m.rows.len(), m.rejected), (2, 0), "{:?}", m.errors);
        assert_eq!(
            m.rows[0].indicators,
            BTreeMap::from([("rsi".to_owned(), 65.5), ("signal_strength".to_owned(), 0.75)])
        );
        assert_eq!((m.rows[0].line, m.rows[0].close, m.rows[0].trades), (2, 150.0, None));
    }

    /// Each bad row is named by its line with the reason; the good rows around it are kept.
    #[test]
    fn bad_rows_are_reported_by_line_and_good_rows_kept() {
        let text = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n\
            2023-01-01T10:00:00,AAPL,BUY,100,150,1,S\n\
            not-a-time,AAPL,BUY,100,150,1,S\n\
            2023-01-01T10:02:00,AAPL,HOLD,100,150,1,S\n\
            2023-01-01T10:03:00,AAPL,BUY,-1,150,1,S\n\
            2023-01-01T10:04:00,AAPL,BUY,1,abc,1,S\n\
            2023-01-01T10:05:00,AAPL,BUY\n\
            2023-01-01T10:06:00,BAD SYMBOL!,BUY,1,1,1,S\n\
            2023-01-01T10:07:00,aapl,sell,2,151,,\n";
        let t = parse_trades(text, L).unwrap();
        let lines: Vec<(u64, &str)> = t.errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        let expect = [
            (3, "timestamp"),
            (4, "side must be BUY or SELL"),
            (5, "quantity must be above 0"),
            (6, "price is not a finite number"),
            (7, "expected 7 fields, got 3"),
            (8, "symbol"),
        ];
        assert_eq!(lines.len(), expect.len(), "{lines:?}");
        for ((line, reason), (want_line, want)) in lines.iter().zip(expect) {
            assert_eq!(*line, want_line);
            assert!(reason.contains(want), "line {line}: {reason}");
        }
        assert!(t.errors.iter().all(|e| e.csv == "trades_csv"));
        assert_eq!(t.rows.len(), 2);
        assert_eq!((t.rows[1].symbol.as_str(), t.rows[1].side, t.rows[1].profit_loss), ("AAPL", "SELL", None));
        let kept = t.to_csv(|_| true);
        assert_eq!(kept.lines().count(), 3, "header and the two good rows: {kept}");
    }

    #[test]
    fn market_rows_are_checked() {
        let text = "Symbol,Timestamp,Open,High,Low,Close,Volume,RSI,trades\n\
            AAPL,2023-01-01T10:00:00,10,12,9,11,5,50,7\n\
            AAPL,2023-01-01T10:01:00,10,10.5,9,11,5,50,7\n\
            AAPL,2023-01-01T10:02:00,10,12,9,11,-5,50,7\n\
            AAPL,2023-01-01T10:03:00,10,12,9,11,5,high,7\n\
            AAPL,2023-01-01T10:04:00,10,12,9,11,5,,1.5\n";
        let m = parse_market_data(text, L).unwrap();
        let reasons: Vec<String> = m.errors.iter().map(|e| format!("{} {}", e.line, e.reason)).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].starts_with("3 prices are inconsistent"), "{reasons:?}");
        assert!(reasons[1].starts_with("4 volume must not be negative"), "{reasons:?}");
        assert!(reasons[2].starts_with("5 rsi is not a finite number"), "{reasons:?}");
        assert!(reasons[3].starts_with("6 trades must be a whole number"), "{reasons:?}");
        assert_eq!(m.rows.len(), 1);
        assert_eq!((m.rows[0].trades, m.rows[0].indicators.get("rsi")), (Some(7), Some(&50.0)));
    }

    #[test]
    fn missing_columns_and_empty_text() {
        let t = parse_trades("timestamp,symbol,price\n2023-01-01,AAPL,1\n", L).unwrap();
        assert_eq!((t.rows.len(), t.rejected, t.errors[0].line), (0, 1, 1));
        assert!(t.errors[0].reason.contains("side, quantity"), "{}", t.errors[0].reason);
        let e = parse_market_data("  \n", L).unwrap();
        assert_eq!((e.rows.len(), e.rejected), (0, 0));
    }

    #[test]
    fn header_width_respects_quotes() {
        assert_eq!(header_wider_than("a,b,c\nx,y,z,w,v", 3), None, "only the first line counts");
        assert_eq!(header_wider_than("a,b,c,d", 3), Some(4));
        assert_eq!(header_wider_than("a,\"b,c\",d\n", 3), None, "a comma inside quotes separates nothing");
        assert_eq!(header_wider_than("a,\"b\"\"x,\"\"c\",d,e", 3), Some(4), "doubled quotes stay inside the field");
        assert_eq!(header_wider_than("\"a\nb\",c,d,e", 3), Some(4), "a quoted newline does not end the header");
        let t =
            parse_trades("timestamp,symbol,side,quantity,\"price,usd\"\n", CsvLimits { max_columns: 5, max_rows: 10 });
        assert!(t.is_ok(), "five columns, one with a comma in its quoted name");
    }

    #[test]
    fn quoted_fields_and_crlf() {
        let t = parse_trades("timestamp,symbol,side,quantity,price,profit_loss,strategy\r\n2023-01-01T10:00:00,AAPL,BUY,1,2,3,\"Cross, fast\"\r\n", L).unwrap();
        assert_eq!(t.rows[0].strategy, "Cross, fast");
    }

    #[test]
    fn error_lists_are_capped_but_counted() {
        let mut text = String::from("timestamp,symbol,side,quantity,price\n");
        for _ in 0..(MAX_LISTED_ERRORS + 5) {
            text.push_str("x,AAPL,BUY,1,1\n");
        }
        let t = parse_trades(&text, L).unwrap();
        assert_eq!((t.errors.len(), t.rejected), (MAX_LISTED_ERRORS, MAX_LISTED_ERRORS + 5));
    }

    /// A header of 100,000 columns is refused at once, naming the limit (and read in linear time).
    #[test]
    fn wide_and_long_csvs_are_refused_whole() {
        let mut wide = String::from("timestamp,symbol,open,high,low,close,volume");
        for i in 0..100_000 {
            wide.push_str(&format!(",x{i}"));
        }
        wide.push_str("\n2023-01-01T10:00:00,AAPL,1,1,1,1,1\n");
        let e = parse_market_data(&wide, L).unwrap_err();
        assert_eq!((e.limit(), e.to_string().contains("more than the 64 columns")), ("max_csv_columns", true), "{e}");
        assert!(matches!(e, CsvLimitError::Columns { line: 1, found: 65, .. }), "counting stops past the limit: {e:?}");
        let row_too_wide = format!("timestamp,symbol,side,quantity,price\nx{}\n", ",1".repeat(100));
        assert!(matches!(parse_trades(&row_too_wide, L), Err(CsvLimitError::Columns { line: 2, found: 101, .. })));
        let long = format!("timestamp,symbol,side,quantity,price\n{}", "2023-01-01,A,BUY,1,1\n".repeat(11));
        let small = CsvLimits { max_columns: 64, max_rows: 10 };
        assert_eq!(parse_trades(&long, small).unwrap_err().limit(), "max_csv_rows");
        assert_eq!(parse_trades(&long, CsvLimits { max_rows: 11, ..small }).unwrap().rows.len(), 11);
    }

    #[test]
    fn poison_values_are_refused_by_line() {
        let text = "timestamp,symbol,side,quantity,price\n\
            2023-01-01T10:00:00,A,BUY,1e308,1\n\
            2023-01-01T10:00:00,A,BUY,inf,1\n\
            2023-01-01T10:00:00,A,BUY,NaN,1\n\
            2023-01-01T10:00:00,A,BUY,1,1e400\n\
            2023-01-01T10:00:00,A,BUY,1,1\n";
        let t = parse_trades(text, L).unwrap();
        let reasons: Vec<String> = t.errors.iter().map(|e| format!("{} {}", e.line, e.reason)).collect();
        assert_eq!(t.rows.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("2 quantity must be at most"), "{reasons:?}");
        assert!(reasons[1].starts_with("3 quantity is not a finite number"), "{reasons:?}");
        assert!(reasons[2].starts_with("4 quantity is not a finite number"), "{reasons:?}");
        assert!(reasons[3].starts_with("5 price is not a finite number"), "{reasons:?}");
        let market = "timestamp,symbol,open,high,low,close,volume,trades\n\
            2023-01-01T10:00:00,A,1,1,1,1,1e300,\n\
            2023-01-01T10:00:00,A,1,1e13,1,1,1,\n\
            2023-01-01T10:00:00,A,1,1,1,1,1,18446744073709551615\n";
        let m = parse_market_data(market, L).unwrap();
        let reasons: Vec<&str> = m.errors.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(m.rows.len(), 0, "{reasons:?}");
        assert!(reasons[0].starts_with("volume must be at most"), "{reasons:?}");
        assert!(reasons[1].starts_with("high must be at most"), "{reasons:?}");
        assert!(reasons[2].starts_with("trades must be a whole number up to"), "{reasons:?}");
    }
}
