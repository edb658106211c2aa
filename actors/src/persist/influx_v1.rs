//! InfluxDB through its 1.x HTTP API: `POST /write?db=..&precision=ms` with line protocol, and
//! `GET /query?db=..&epoch=ms&q=<InfluxQL>` answering JSON. Spoken by InfluxDB 1.x, and by 3.x through
//! its v1 compatibility API. Verified against a real InfluxDB 1.x server in `tests/persist_influx.rs`.
//!
//! Credentials go in an `Authorization: Basic` header, never in the URL (`u=`/`p=`), so no error message
//! or log line can carry the password. candlecast does not create the database: a missing one is a
//! configuration error named at start.

use reqwest::{Client, RequestBuilder};
use serde::Deserialize;
use serde_json::Value;

use super::influx::{describe, quoted, server_message, status_error, AnswerError, Dialect, Filter, Influx, Row};
use super::settings::{InfluxSettings, Secret};
use super::{line_protocol, StoreError};
use crate::model::{Interval, Symbol};

/// The fields a bar is read back from, in this order.
const FIELDS: &str = "open,high,low,close,volume,trades,revised";

/// See the module documentation.
pub struct V1 {
    http: Client,
    /// Base URL without a trailing slash.
    url: String,
    database: String,
    username: String,
    password: Secret,
}

/// `{"results":[{"statement_id":0,"series":[{"columns":[..],"values":[[..]]}],"error":".."}],"error":".."}`
#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    results: Vec<StatementAnswer>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementAnswer {
    #[serde(default)]
    series: Vec<Series>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Series {
    columns: Vec<String>,
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

impl V1 {
    pub fn new(settings: &InfluxSettings) -> Result<V1, StoreError> {
        let http = Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            .build()
            .map_err(|e| StoreError::Open(format!("HTTP client: {e}")))?;
        Ok(V1 {
            http,
            url: settings.url.trim_end_matches('/').to_owned(),
            database: settings.database.clone(),
            username: settings.username.clone(),
            password: settings.password.clone(),
        })
    }

    /// The v1 store.
    pub fn store(settings: &InfluxSettings) -> Result<Influx<V1>, StoreError> {
        V1::new(settings).map(Influx::new)
    }

    fn authorized(&self, req: RequestBuilder) -> RequestBuilder {
        if self.username.is_empty() {
            req
        } else {
            req.basic_auth(&self.username, Some(self.password.expose()))
        }
    }

    fn database_name(&self) -> String {
        format!("database {:?}", self.database)
    }

    /// Runs one InfluxQL statement and returns its series.
    async fn query(&self, statement: &str) -> Result<Vec<Series>, StoreError> {
        let req = self.http.get(format!("{}/query", self.url)).query(&[
            ("db", self.database.as_str()),
            ("epoch", "ms"),
            ("q", statement),
        ]);
        let resp = self.authorized(req).send().await.map_err(|e| describe(&e, &self.url))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| describe(&e, &self.url))?;
        if !status.is_success() {
            return Err(status_error(status, &text, &self.url, &self.database_name()));
        }
        let answer: QueryAnswer = serde_json::from_str(&text).map_err(|e| {
            StoreError::Protocol(format!(
                "{}: query answer is not InfluxDB JSON: {e}: {}",
                self.url,
                server_message(&text)
            ))
        })?;
        let error = answer.error.or_else(|| answer.results.iter().find_map(|r| r.error.clone()));
        if let Some(error) = error {
            return Err(if error.contains("database not found") {
                StoreError::Missing(format!(
                    "{} does not exist on {} ({error}); create it with CREATE DATABASE",
                    self.database_name(),
                    self.url
                ))
            } else {
                StoreError::Rejected(format!("{}: {error}", self.url))
            });
        }
        Ok(answer.results.into_iter().flat_map(|r| r.series).collect())
    }
}

/// One row of `time` + [`FIELDS`] (in any column order).
fn parse_row(columns: &[String], values: &[Value]) -> Result<Row, AnswerError> {
    let get = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| values.get(i))
            .ok_or_else(|| AnswerError::Missing(name.to_owned()))
    };
    let float = |name: &str| {
        get(name).and_then(|v| {
            v.as_f64().ok_or_else(|| AnswerError::NotANumber { name: name.to_owned(), value: v.to_string() })
        })
    };
    let int = |name: &str| {
        get(name).and_then(|v| {
            v.as_i64().ok_or_else(|| AnswerError::NotAnInteger { name: name.to_owned(), value: v.to_string() })
        })
    };
    Row::read(int("time")?, float, int)
}

impl Dialect for V1 {
    const KIND: &'static str = "influxdb-v1";

    /// `/ping`, then a query in the database: unreachable, refused credentials and a missing database
    /// each give their own message.
    async fn check(&self) -> Result<(), StoreError> {
        let ping = self.http.get(format!("{}/ping", self.url)).send().await.map_err(|e| describe(&e, &self.url))?;
        if !ping.status().is_success() {
            return Err(StoreError::Unreachable(format!(
                "{}/ping answered {}: is this InfluxDB?",
                self.url,
                ping.status()
            )));
        }
        // The read candlecast makes anyway (SHOW MEASUREMENTS answers an empty list for a missing database).
        self.query(&format!("SELECT \"close\" FROM {} LIMIT 1", line_protocol::MEASUREMENT)).await.map(drop)
    }

    async fn write(&self, body: String) -> Result<(), StoreError> {
        let req = self
            .http
            .post(format!("{}/write", self.url))
            .query(&[("db", self.database.as_str()), ("precision", "ms")])
            .body(body);
        let resp = self.authorized(req).send().await.map_err(|e| describe(&e, &self.url))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(status_error(status, &text, &self.url, &self.database_name()))
    }

    async fn select(
        &self,
        symbol: &Symbol,
        interval: Interval,
        filter: Filter,
        limit: Option<usize>,
    ) -> Result<Vec<Row>, StoreError> {
        let mut q = format!(
            "SELECT {FIELDS} FROM {} WHERE \"symbol\" = {} AND \"interval\" = {}",
            line_protocol::MEASUREMENT,
            quoted(symbol, '\''),
            quoted(interval.as_str(), '\'')
        );
        match filter {
            Filter::Time { start, end } => {
                if let Some(start) = start {
                    q.push_str(&format!(" AND time >= {start}ms"));
                }
                if let Some(end) = end {
                    q.push_str(&format!(" AND time < {end}ms"));
                }
            }
            Filter::RevisedSince(since) => q.push_str(&format!(" AND \"revised\" >= {since}")),
        }
        q.push_str(" ORDER BY time DESC");
        if let Some(limit) = limit {
            q.push_str(&format!(" LIMIT {limit}"));
        }
        let mut rows = Vec::new();
        for s in self.query(&q).await? {
            for values in &s.values {
                rows.push(
                    parse_row(&s.columns, values).map_err(|e| StoreError::Protocol(format!("{}: {e}", self.url)))?,
                );
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_by_column_name() {
        let columns: Vec<String> =
            ["time", "close", "high", "low", "open", "revised", "trades", "volume"].map(String::from).to_vec();
        let values: Vec<Value> = serde_json::from_str("[1700000000000, 2.5, 3, 1, 2, 1700000061234, 7, 0.25]").unwrap();
        let row = parse_row(&columns, &values).unwrap();
        assert_eq!(
            row,
            Row {
                open_time: 1_700_000_000_000,
                open: 2.0,
                high: 3.0,
                low: 1.0,
                close: 2.5,
                volume: 0.25,
                trades: 7,
                revised: 1_700_000_061_234
            }
        );
        let short: Vec<Value> = serde_json::from_str("[1700000000000, null]").unwrap();
        assert!(parse_row(&columns, &short).is_err());
    }
}
