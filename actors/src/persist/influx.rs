//! What both InfluxDB dialects share: the [`Store`] on top of a [`Dialect`] (line protocol out, rows in,
//! one bar per open time), and HTTP failures turned into [`StoreError`]s that say what to fix.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use reqwest::StatusCode;

use super::{line_protocol, Range, Store, StoreError, StoreFuture, StoredBar};
use crate::model::{Bar, Interval, Symbol};

/// Which points of one symbol and interval a query selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `start <= time < end`, in ms.
    Time { start: Option<i64>, end: Option<i64> },
    /// `revised >= since`, in ms.
    RevisedSince(i64),
}

/// What differs between InfluxDB's v1 and v2 APIs.
pub trait Dialect: Send + Sync + 'static {
    /// For `/api/stats`.
    const KIND: &'static str;

    /// Whether the server answers and accepts our credentials and database or bucket.
    fn check(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Posts line protocol (`precision=ms`).
    fn write(&self, lines: String) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The newest `limit` (all when `None`) rows of `symbol`/`interval` that pass `filter`, any order.
    fn select(
        &self,
        symbol: &Symbol,
        interval: Interval,
        filter: Filter,
        limit: Option<usize>,
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>> + Send;
}

/// A [`Store`] speaking one InfluxDB dialect.
pub struct Influx<D> {
    dialect: Arc<D>,
}

impl<D: Dialect> Influx<D> {
    pub fn new(dialect: D) -> Influx<D> {
        Influx { dialect: Arc::new(dialect) }
    }

    fn select(&self, symbol: &Symbol, interval: Interval, filter: Filter, limit: usize) -> StoreFuture<Vec<Bar>> {
        let (dialect, symbol) = (self.dialect.clone(), symbol.clone());
        // A bar stored under two sources (its symbol changed feed) is two rows: ask for a few more.
        let fetch = (limit < i64::MAX as usize / 2).then(|| limit + limit / 8 + 1);
        async move {
            let rows = dialect.select(&symbol, interval, filter, fetch).await?;
            let mut bars = rows_to_bars(&symbol, interval, rows);
            super::keep_newest(&mut bars, limit);
            Ok(bars)
        }
        .boxed()
    }
}

impl<D: Dialect> Store for Influx<D> {
    fn kind(&self) -> &'static str {
        D::KIND
    }

    fn check(&self) -> StoreFuture<()> {
        let dialect = self.dialect.clone();
        async move { dialect.check().await }.boxed()
    }

    fn write(&self, bars: Arc<[StoredBar]>) -> StoreFuture<()> {
        let dialect = self.dialect.clone();
        async move { dialect.write(line_protocol::encode(&bars)).await }.boxed()
    }

    fn bars(&self, symbol: &Symbol, range: Range) -> StoreFuture<Vec<Bar>> {
        // An empty range (Flux even refuses one whose start is not before its stop).
        if range.start.zip(range.end).is_some_and(|(s, e)| s >= e) {
            return std::future::ready(Ok(Vec::new())).boxed();
        }
        self.select(symbol, range.interval, Filter::Time { start: range.start, end: range.end }, range.limit)
    }

    fn revised_since(&self, symbol: &Symbol, interval: Interval, since: i64, limit: usize) -> StoreFuture<Vec<Bar>> {
        self.select(symbol, interval, Filter::RevisedSince(since), limit)
    }
}

/// A transport error with its causes ("connection refused", "operation timed out"), without the URL's
/// query string.
pub fn describe(e: &reqwest::Error, url: &str) -> StoreError {
    let mut text = if e.is_timeout() { "no answer in time".to_owned() } else { String::new() };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.is_empty() {
        text = if e.is_connect() { "cannot connect".to_owned() } else { "the request failed".to_owned() };
    }
    StoreError::Unreachable(format!("{url}: {text}"))
}

/// An HTTP error answer. `what` names the database or bucket for the "does not exist" message.
pub fn status_error(status: StatusCode, body: &str, url: &str, what: &str) -> StoreError {
    let detail = server_message(body);
    match status.as_u16() {
        401 | 403 => StoreError::Unauthorized(format!("{url} answered {status}: {detail}")),
        404 => StoreError::Missing(format!("{what} does not exist on {url} ({detail})")),
        400 | 413 | 422 => StoreError::Rejected(format!("{url} answered {status}: {detail}")),
        _ => StoreError::Unreachable(format!("{url} answered {status}: {detail}")),
    }
}

/// The `error`/`message` of an InfluxDB JSON error body, else the body itself (cut short).
pub fn server_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["error", "message"] {
            if let Some(m) = v.get(key).and_then(|m| m.as_str()) {
                return m.to_owned();
            }
        }
    }
    let mut end = body.len().min(300);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].trim().to_owned()
}

/// Why an InfluxDB query answer could not be read; reported as [`StoreError::Protocol`] with the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("a row has no {0}")]
    Missing(String),
    /// `value` as the answer spelled it.
    #[error("{name} is not a number: {value}")]
    NotANumber { name: String, value: String },
    #[error("{name} is not an integer: {value}")]
    NotAnInteger { name: String, value: String },
    /// An `error` column (v2): the query failed on the server.
    #[error("the query failed: {0}")]
    QueryFailed(String),
    #[error("the query answer is not CSV: {0}")]
    NotCsv(String),
    #[error("_time {time:?}: {reason}")]
    Time { time: String, reason: String },
}

/// One query row, before it becomes a bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub trades: u64,
    pub revised: i64,
}

impl Row {
    /// A row from its open time and readers of its named fields (float and integer).
    pub fn read(
        open_time: i64,
        float: impl Fn(&str) -> Result<f64, AnswerError>,
        int: impl Fn(&str) -> Result<i64, AnswerError>,
    ) -> Result<Row, AnswerError> {
        Ok(Row {
            open_time,
            open: float("open")?,
            high: float("high")?,
            low: float("low")?,
            close: float("close")?,
            volume: float("volume")?,
            trades: int("trades")?.max(0) as u64,
            revised: int("revised")?,
        })
    }
}

/// Rows to ascending bars, one per open time: when a symbol changed source, the same bar may exist in
/// two series; the later revision wins.
pub fn rows_to_bars(symbol: &Symbol, interval: Interval, rows: impl IntoIterator<Item = Row>) -> Vec<Bar> {
    let mut by_open: BTreeMap<i64, Row> = BTreeMap::new();
    for row in rows {
        match by_open.get(&row.open_time) {
            Some(existing) if existing.revised >= row.revised => {}
            _ => {
                by_open.insert(row.open_time, row);
            }
        }
    }
    by_open
        .into_values()
        .map(|r| Bar {
            symbol: symbol.clone(),
            interval,
            open_time: r.open_time,
            open: r.open,
            high: r.high,
            low: r.low,
            close: r.close,
            volume: r.volume,
            trades: r.trades,
            closed: true,
        })
        .collect()
}

/// A string literal for InfluxQL or Flux: double quotes for Flux, single for InfluxQL; backslashes
/// and the quote escaped.
pub fn quoted(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push(quote);
    for c in value.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_what_to_fix() {
        let url = "http://127.0.0.1:8086";
        let e = status_error(StatusCode::NOT_FOUND, r#"{"error":"database not found: \"x\""}"#, url, "database \"x\"");
        assert!(e.is_configuration());
        assert_eq!(e.to_string(), r#"database "x" does not exist on http://127.0.0.1:8086 (database not found: "x")"#);
        let e = status_error(
            StatusCode::UNAUTHORIZED,
            r#"{"code":"unauthorized","message":"unauthorized access"}"#,
            url,
            "bucket",
        );
        assert!(matches!(e, StoreError::Unauthorized(ref m) if m.contains("unauthorized access")), "{e}");
        assert!(!status_error(StatusCode::SERVICE_UNAVAILABLE, "busy", url, "db").is_configuration());
    }

    #[test]
    fn duplicate_rows_keep_the_latest_revision_and_literals_are_escaped() {
        let row = |t, close, revised| Row {
            open_time: t,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: 1.0,
            trades: 3,
            revised,
        };
        let bars = rows_to_bars(
            &"X".into(),
            Interval::M1,
            [row(120_000, 1.5, 9), row(60_000, 1.0, 5), row(60_000, 1.2, 7), row(60_000, 1.1, 6)],
        );
        assert_eq!(bars.iter().map(|b| (b.open_time, b.close)).collect::<Vec<_>>(), [(60_000, 1.2), (120_000, 1.5)]);
        assert_eq!(quoted(r"a'b\c", '\''), r"'a\'b\\c'");
        assert_eq!(quoted("a\"b", '"'), r#""a\"b""#);
    }
}
