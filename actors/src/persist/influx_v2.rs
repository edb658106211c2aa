//! InfluxDB through its 2.x HTTP API (InfluxDB 2.x, and 1.8+ with its v2 compatibility endpoints):
//!
//! - writes: the `influxdb2` crate, `POST /api/v2/write?org=..&bucket=..&precision=ms` with
//!   `Authorization: Token ..` and line protocol;
//! - queries: `POST /api/v2/query?org=..` with a JSON body holding a Flux query, answered in annotated
//!   CSV. These go through our own reqwest call and `csv`, not the crate's query helpers, because those
//!   `unwrap` and index into the server's CSV: a malformed or truncated answer would panic candlecast.
//!
//! No InfluxDB 2.x server can be installed where candlecast is tested, so this dialect is checked
//! against the documented HTTP contract (`tests/influx_v2_contract.rs`), not against a real server.

use std::time::Duration;

use influxdb2::api::write::TimestampPrecision;
use reqwest::StatusCode;
use serde_json::json;

use super::influx::{describe, quoted, server_message, status_error, AnswerError, Dialect, Filter, Influx, Row};
use super::settings::{InfluxSettings, Secret};
use super::{line_protocol, StoreError};
use crate::model::{Interval, Symbol};

/// Flux's range needs both ends: the epoch, and 2100-01-01 (in ns).
const NO_START_NS: i64 = 0;
const NO_END_NS: i64 = 4_102_444_800_000_000_000;

/// See the module documentation.
pub struct V2 {
    writer: influxdb2::Client,
    http: reqwest::Client,
    url: String,
    org: String,
    bucket: String,
    token: Secret,
    timeout: Duration,
}

impl V2 {
    /// Checks `settings` first: the crate panics on a URL it cannot parse.
    pub fn new(settings: &InfluxSettings) -> Result<V2, StoreError> {
        settings.validate().map_err(|e| StoreError::Open(e.to_string()))?;
        let url = settings.url.trim_end_matches('/').to_owned();
        let writer = influxdb2::Client::new(url.clone(), settings.org.clone(), settings.token.expose());
        let http = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            .build()
            .map_err(|e| StoreError::Open(format!("HTTP client: {e}")))?;
        Ok(V2 {
            writer,
            http,
            url,
            org: settings.org.clone(),
            bucket: settings.bucket.clone(),
            token: settings.token.clone(),
            timeout: settings.timeout(),
        })
    }

    /// The v2 store.
    pub fn store(settings: &InfluxSettings) -> Result<Influx<V2>, StoreError> {
        V2::new(settings).map(Influx::new)
    }

    fn bucket_name(&self) -> String {
        format!("bucket {:?} of organization {:?}", self.bucket, self.org)
    }

    /// Runs a Flux query; returns the CSV answer.
    async fn query(&self, flux: String) -> Result<String, StoreError> {
        let body = json!({
            "query": flux,
            "type": "flux",
            "dialect": { "header": true, "delimiter": ",", "annotations": ["datatype", "group", "default"], "dateTimeFormat": "RFC3339" },
        });
        let resp = self
            .http
            .post(format!("{}/api/v2/query", self.url))
            .query(&[("org", self.org.as_str())])
            .header("Authorization", format!("Token {}", self.token.expose()))
            .header("Accept", "application/csv")
            .json(&body)
            .send()
            .await
            .map_err(|e| describe(&e, &self.url))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| describe(&e, &self.url))?;
        if !status.is_success() {
            return Err(status_error(status, &text, &self.url, &self.bucket_name()));
        }
        Ok(text)
    }
}

/// Rows of an annotated-CSV answer. Annotation rows start with `#`; each table starts with a header
/// row; an `error` column is a query error reported in the body.
fn parse_csv(text: &str) -> Result<Vec<Row>, AnswerError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| AnswerError::NotCsv(e.to_string()))?;
        let first = record.get(0).unwrap_or("");
        if record.iter().all(str::is_empty) {
            header = None; // a blank line ends a table
            continue;
        }
        if first.starts_with('#') {
            header = None;
            continue;
        }
        let Some(columns) = &header else {
            let columns: Vec<String> = record.iter().map(str::to_owned).collect();
            header = Some(columns);
            continue;
        };
        let cell = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .and_then(|i| record.get(i))
                .ok_or_else(|| AnswerError::Missing(name.to_owned()))
        };
        if let Ok(error) = cell("error") {
            return Err(AnswerError::QueryFailed(error.to_owned()));
        }
        let float = |name: &str| {
            cell(name).and_then(|v| {
                v.parse::<f64>().map_err(|_| AnswerError::NotANumber { name: name.to_owned(), value: format!("{v:?}") })
            })
        };
        let int = |name: &str| {
            cell(name).and_then(|v| {
                v.parse::<i64>()
                    .map_err(|_| AnswerError::NotAnInteger { name: name.to_owned(), value: format!("{v:?}") })
            })
        };
        let time = cell("_time")?;
        let open_time = chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|e| AnswerError::Time { time: time.to_owned(), reason: e.to_string() })?
            .timestamp_millis();
        rows.push(Row::read(open_time, float, int)?);
    }
    Ok(rows)
}

fn ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

impl Dialect for V2 {
    const KIND: &'static str = "influxdb-v2";

    /// A one-row query of the bucket: unreachable server, refused token and missing bucket each give
    /// their own message.
    async fn check(&self) -> Result<(), StoreError> {
        let flux = format!("from(bucket: {})\n  |> range(start: -1m)\n  |> limit(n: 1)\n", quoted(&self.bucket, '"'));
        let csv = self.query(flux).await?;
        if csv.lines().any(|l| l.contains(",error,")) {
            return Err(StoreError::Rejected(format!("{}: {}", self.url, server_message(&csv))));
        }
        Ok(())
    }

    async fn write(&self, body: String) -> Result<(), StoreError> {
        let write = self.writer.write_line_protocol_with_precision(
            &self.org,
            &self.bucket,
            body,
            TimestampPrecision::Milliseconds,
        );
        // The crate's client has no timeout of its own.
        match tokio::time::timeout(self.timeout, write).await {
            Err(_) => Err(StoreError::Unreachable(format!("{}: no answer within {:?}", self.url, self.timeout))),
            Ok(Ok(())) => Ok(()),
            Ok(Err(influxdb2::RequestError::Http { status, text })) => {
                let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Err(status_error(status, &text, &self.url, &self.bucket_name()))
            }
            Ok(Err(influxdb2::RequestError::ReqwestProcessing { source })) => {
                let mut text =
                    String::from(if source.is_timeout() { "no answer in time" } else { "the request failed" });
                let mut cause = std::error::Error::source(&source);
                while let Some(c) = cause {
                    text = format!("{text}: {c}");
                    cause = c.source();
                }
                Err(StoreError::Unreachable(format!("{}: {text}", self.url)))
            }
            Ok(Err(other)) => Err(StoreError::Protocol(format!("{}: {other}", self.url))),
        }
    }

    /// Rows pivoted so that each holds all fields, newest first.
    async fn select(
        &self,
        symbol: &Symbol,
        interval: Interval,
        filter: Filter,
        limit: Option<usize>,
    ) -> Result<Vec<Row>, StoreError> {
        let (start_ns, stop_ns, revised) = match filter {
            Filter::Time { start, end } => (start.map_or(NO_START_NS, ns), end.map_or(NO_END_NS, ns), String::new()),
            Filter::RevisedSince(since) => {
                (NO_START_NS, NO_END_NS, format!("  |> filter(fn: (r) => r.revised >= {since})\n"))
            }
        };
        let flux = format!(
            "from(bucket: {bucket})\n  |> range(start: time(v: {start_ns}), stop: time(v: {stop_ns}))\n  |> filter(fn: (r) => r._measurement == {m} and r.symbol == {symbol} and r.interval == {interval})\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> group()\n{revised}  |> sort(columns: [\"_time\"], desc: true)\n{limit}",
            bucket = quoted(&self.bucket, '"'),
            m = quoted(line_protocol::MEASUREMENT, '"'),
            symbol = quoted(symbol, '"'),
            interval = quoted(interval.as_str(), '"'),
            limit = limit.map_or(String::new(), |n| format!("  |> limit(n: {n})\n")),
        );
        let csv = self.query(flux).await?;
        parse_csv(&csv).map_err(|e| StoreError::Protocol(format!("{}: {e}", self.url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape InfluxDB 2.x documents for `POST /api/v2/query` with annotations, after our pivot.
    const ANSWER: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,string,string,string,string,double,double,double,double,long,long,double\r\n\
#group,false,false,true,true,false,false,false,false,false,false,false,false,false,false,false,false\r\n\
#default,_result,,,,,,,,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_measurement,interval,source,symbol,close,high,low,open,revised,trades,volume\r\n\
,,0,1970-01-01T00:00:00Z,2100-01-01T00:00:00Z,2023-11-14T22:14:00Z,bars,1m,simulated,BTCUSDT,2.5,3,1,2,1700000061234,7,0.25\r\n\
,,0,1970-01-01T00:00:00Z,2100-01-01T00:00:00Z,2023-11-14T22:13:20.000Z,bars,1m,simulated,BTCUSDT,1.5,1.5,1.5,1.5,1700000001000,1,1\r\n\
\r\n";

    #[test]
    fn annotated_csv_becomes_rows() {
        let rows = parse_csv(ANSWER).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            Row {
                open_time: 1_700_000_040_000,
                open: 2.0,
                high: 3.0,
                low: 1.0,
                close: 2.5,
                volume: 0.25,
                trades: 7,
                revised: 1_700_000_061_234
            }
        );
        assert_eq!(rows[1].open_time, 1_700_000_000_000);
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for bad in [
            "#datatype,string\r\n,result,table,_time\r\n,,0,yesterday\r\n",
            ",result,table,_time,open\r\n,,0\r\n",
            ",result,table,_time,open,high,low,close,volume,trades,revised\r\n,,0,2023-11-14T22:14:00Z,x,1,1,1,1,1,1\r\n",
            ",error,reference\r\n,bucket not found,\r\n",
        ] {
            assert!(parse_csv(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_csv("").unwrap(), Vec::new());
    }
}
