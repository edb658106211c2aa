//! Seed 003's two CSVs, parsed row by row: every bad row is reported with its line number and reason,
//! and the good rows of the same text are kept.
//!
//! - Trades: `timestamp,symbol,side,quantity,price,profit_loss,strategy` (the last two optional).
//! - Market data: `timestamp,symbol,open,high,low,close,volume,rsi,signal_strength`; `rsi`,
//!   `signal_strength` and any other extra numeric column are indicator values; an optional `trades`
//!   column is the bar's trade count.
//!
//! Column names are matched case-insensitively, in any order; cells are trimmed.

use std::collections::BTreeMap;

use candlecast_actors::engine::valid_symbol;
use serde::Serialize;

use super::time::parse_timestamp;

/// Row errors listed in one report at most; the count still covers them all.
pub const MAX_LISTED_ERRORS: usize = 1000;

/// One refused row (or the header, line 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    /// Which CSV: `trades_csv` or `market_data_csv`.
    pub csv: &'static str,
    pub line: u64,
    pub reason: String,
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
pub fn parse_trades(text: &str) -> Parsed<ExecutedTrade> {
    parse(text, "trades_csv", &TRADE_COLUMNS, |row| {
        let quantity = row.positive("quantity")?;
        let price = row.positive("price")?;
        let side = match row.get("side").to_ascii_uppercase().as_str() {
            "BUY" => "BUY",
            "SELL" => "SELL",
            other => return Err(format!("side must be BUY or SELL, got {other:?}")),
        };
        Ok(ExecutedTrade {
            timestamp: row.timestamp()?,
            symbol: row.symbol()?,
            side,
            quantity,
            price,
            profit_loss: row.optional_number("profit_loss")?,
            strategy: row.get("strategy").to_owned(),
        })
    })
}

/// Parses a market-data CSV.
pub fn parse_market_data(text: &str) -> Parsed<MarketRow> {
    parse(text, "market_data_csv", &MARKET_COLUMNS, |row| {
        let [open, high, low, close] =
            [row.positive("open")?, row.positive("high")?, row.positive("low")?, row.positive("close")?];
        if low > open.min(close) || high < open.max(close) {
            return Err(format!(
                "prices are inconsistent: low {low} and high {high} must enclose open {open} and close {close}"
            ));
        }
        let volume = row.number("volume")?;
        if volume < 0.0 {
            return Err(format!("volume must not be negative, got {volume}"));
        }
        let trades = match row.get("trades") {
            "" => None,
            t => Some(t.parse::<u64>().map_err(|_| format!("trades must be a whole number, got {t:?}"))?),
        };
        let mut indicators = BTreeMap::new();
        for name in row.extra_columns(&MARKET_COLUMNS) {
            if let Some(v) = row.optional_number(name)? {
                indicators.insert(name.to_owned(), v);
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

/// One data row with its header, for the field readers.
struct Row<'a> {
    line: u64,
    header: &'a [String],
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn get(&self, column: &str) -> &str {
        self.header.iter().position(|h| h == column).and_then(|i| self.record.get(i)).unwrap_or("")
    }

    fn number(&self, column: &str) -> Result<f64, String> {
        match self.get(column) {
            "" => Err(format!("{column} is empty")),
            raw => raw
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{column} is not a number: {raw:?}")),
        }
    }

    fn positive(&self, column: &str) -> Result<f64, String> {
        let v = self.number(column)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{column} must be above 0, got {v}"))
        }
    }

    fn optional_number(&self, column: &str) -> Result<Option<f64>, String> {
        match self.get(column) {
            "" => Ok(None),
            _ => self.number(column).map(Some),
        }
    }

    fn timestamp(&self) -> Result<i64, String> {
        parse_timestamp(self.get("timestamp"))
    }

    fn symbol(&self) -> Result<String, String> {
        let symbol = self.get("symbol").to_ascii_uppercase();
        if valid_symbol(&symbol) {
            Ok(symbol)
        } else {
            Err(format!("symbol {:?} is not valid (1-20 letters, digits, - _ .)", self.get("symbol")))
        }
    }

    /// Header names outside `known` (and the optional columns every CSV may have).
    fn extra_columns<'h>(&'h self, known: &'h [&str]) -> impl Iterator<Item = &'h str> + 'h {
        self.header.iter().map(String::as_str).filter(move |h| !h.is_empty() && !known.contains(h) && *h != "trades")
    }
}

fn parse<T>(
    text: &str,
    csv_name: &'static str,
    required: &[&str],
    read: impl Fn(&Row) -> Result<T, String>,
) -> Parsed<T> {
    let mut parsed = Parsed::new(csv_name);
    if text.trim().is_empty() {
        return parsed;
    }
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    parsed.header = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_ascii_lowercase()).collect(),
        Err(e) => {
            parsed.refuse(1, format!("unreadable header: {e}"));
            return parsed;
        }
    };
    let missing: Vec<&str> = required.iter().copied().filter(|c| !parsed.header.iter().any(|h| h == c)).collect();
    if !missing.is_empty() {
        parsed.refuse(1, format!("header lacks column(s) {}; expected {}", missing.join(", "), required.join(",")));
        return parsed;
    }
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                if record.len() != parsed.header.len() {
                    parsed.refuse(line, format!("expected {} fields, got {}", parsed.header.len(), record.len()));
                    continue;
                }
                match read(&Row { line, header: &parsed.header, record: &record }) {
                    Ok(row) => {
                        parsed.rows.push(row);
                        parsed.records.push(record.clone());
                    }
                    Err(reason) => parsed.refuse(line, reason),
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
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_TRADES: &str = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n2023-01-01T10:05:00,TSLA,SELL,50,800.00,-15.25,Three Red Bodies\n";
    const SEED_MARKET: &str = "timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n2023-01-01T10:00:00,AAPL,149.50,151.00,149.00,150.00,50000,65.5,0.75\n2023-01-01T10:05:00,TSLA,799.00,805.00,795.00,800.00,25000,45.2,0.85\n";

    #[test]
    fn seed_examples_parse() {
        let t = parse_trades(SEED_TRADES);
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
        let m = parse_market_data(SEED_MARKET);
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
        let t = parse_trades(text);
        let lines: Vec<(u64, &str)> = t.errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        let expect = [
            (3, "timestamp"),
            (4, "side must be BUY or SELL"),
            (5, "quantity must be above 0"),
            (6, "price is not a number"),
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
        let m = parse_market_data(text);
        let reasons: Vec<String> = m.errors.iter().map(|e| format!("{} {}", e.line, e.reason)).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].starts_with("3 prices are inconsistent"), "{reasons:?}");
        assert!(reasons[1].starts_with("4 volume must not be negative"), "{reasons:?}");
        assert!(reasons[2].starts_with("5 rsi is not a number"), "{reasons:?}");
        assert!(reasons[3].starts_with("6 trades must be a whole number"), "{reasons:?}");
        assert_eq!(m.rows.len(), 1);
        assert_eq!((m.rows[0].trades, m.rows[0].indicators.get("rsi")), (Some(7), Some(&50.0)));
    }

    #[test]
    fn missing_columns_and_empty_text() {
        let t = parse_trades("timestamp,symbol,price\n2023-01-01,AAPL,1\n");
        assert_eq!((t.rows.len(), t.rejected, t.errors[0].line), (0, 1, 1));
        assert!(t.errors[0].reason.contains("side, quantity"), "{}", t.errors[0].reason);
        let e = parse_market_data("  \n");
        assert_eq!((e.rows.len(), e.rejected), (0, 0));
    }

    #[test]
    fn quoted_fields_and_crlf() {
        let t = parse_trades("timestamp,symbol,side,quantity,price,profit_loss,strategy\r\n2023-01-01T10:00:00,AAPL,BUY,1,2,3,\"Cross, fast\"\r\n");
        assert_eq!(t.rows[0].strategy, "Cross, fast");
    }

    #[test]
    fn error_lists_are_capped_but_counted() {
        let mut text = String::from("timestamp,symbol,side,quantity,price\n");
        for _ in 0..(MAX_LISTED_ERRORS + 5) {
            text.push_str("x,AAPL,BUY,1,1\n");
        }
        let t = parse_trades(&text);
        assert_eq!((t.errors.len(), t.rejected), (MAX_LISTED_ERRORS, MAX_LISTED_ERRORS + 5));
    }
}
