//! `[store]` in the config, and [`open`], which builds the configured store.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::embedded::EmbeddedStore;
use super::influx_v1::V1;
use super::influx_v2::V2;
use super::retention::RetentionSettings;
use super::segments::{Options as SegmentOptions, SegmentStore};
use super::{Store, StoreError};

/// Where closed bars are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A redb file under `path`; needs no server.
    Embedded,
    /// An append-only log and column segments under `path/segments`; needs no server. Opening a `path`
    /// that holds a redb store migrates it.
    Segments,
    /// An InfluxDB server (`[store.influxdb]`).
    Influxdb,
    /// Nothing is stored: history is the in-memory window only, and is lost at exit.
    None,
}

/// Which HTTP API of InfluxDB to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// `/write` and InfluxQL `/query`: InfluxDB 1.x, and 3.x through its v1 compatibility API.
    V1,
    /// `/api/v2/write` and Flux `/api/v2/query` with a token: InfluxDB 2.x (and 1.8+).
    V2,
}

/// A password or token: read from the config, never printed (its `Debug` shows only whether it is set).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

/// `[store]`: see `config/default.toml` for each option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub kind: StoreKind,
    /// Directory of the embedded store (and of the journal unless `journal_path` says otherwise).
    pub path: PathBuf,
    /// The journal file; empty means `<path>/persist.journal`.
    pub journal_path: String,
    /// A write starts once this many bars wait (or `batch_ms` after the first).
    pub batch_bars: usize,
    /// A write takes at most this many of the bars that wait (never fewer than `batch_bars`): more than
    /// `batch_bars` wait only when the store is behind, and then one larger write pays its fsync once for
    /// all of them.
    pub batch_max_bars: usize,
    /// A batch is written at the latest this long after its first bar arrived, in ms.
    pub batch_ms: u64,
    /// Bars held in memory at most; beyond that (and whenever the store is failing) they go to the journal.
    pub buffer_bars: usize,
    /// Feeds that make their backfill and hand it to persistence at the same time; the others wait their
    /// turn (see `persist::admission`).
    pub backfill_concurrency: usize,
    /// First retry delay after a failed write, doubled per failure up to `retry_max_ms` (with jitter).
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// The journal file never grows beyond this, in bytes; `/health` is degraded from 80 % of it.
    pub journal_max_bytes: u64,
    /// Bars the store refused for what they hold are appended to `<journal>.dead-letters.jsonl`, up to
    /// this many bytes (beyond, they are only counted).
    pub dead_letter_max_bytes: u64,
    pub influxdb: InfluxSettings,
    /// `[store.retention]`: how long each interval's bars are kept (embedded store).
    pub retention: RetentionSettings,
    /// Expired bars deleted per retention pass (one transaction) at most.
    pub retention_batch_bars: usize,
    /// Time between retention passes, in ms (a pass that filled its batch is followed sooner).
    pub retention_every_ms: u64,
    /// Segment store: bars in its log before they are written out as a segment.
    pub segment_rotate_bars: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::Segments,
            path: PathBuf::from("data"),
            journal_path: String::new(),
            batch_bars: 1_000,
            batch_max_bars: 16_000,
            batch_ms: 1_000,
            buffer_bars: 100_000,
            backfill_concurrency: 4,
            retry_initial_ms: 250,
            retry_max_ms: 30_000,
            journal_max_bytes: 1 << 30,
            dead_letter_max_bytes: 64 << 20,
            influxdb: InfluxSettings::default(),
            retention: RetentionSettings::default(),
            retention_batch_bars: 5_000,
            retention_every_ms: 60_000,
            segment_rotate_bars: 500_000,
        }
    }
}

impl StoreSettings {
    /// When and how much the retention loop deletes.
    pub fn retention_schedule(&self) -> super::retention::Schedule {
        super::retention::Schedule {
            settings: self.retention.clone(),
            batch_bars: self.retention_batch_bars,
            every: Duration::from_millis(self.retention_every_ms),
        }
    }

    pub fn journal_file(&self) -> PathBuf {
        if self.journal_path.is_empty() {
            self.path.join("persist.journal")
        } else {
            PathBuf::from(&self.journal_path)
        }
    }

    /// Where the bars the store refused are kept: beside the journal.
    pub fn dead_letter_file(&self) -> PathBuf {
        let journal = self.journal_file();
        let mut name = journal.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "persist.journal".into());
        name.push(".dead-letters.jsonl");
        journal.with_file_name(name)
    }

    /// What is wrong with these settings, if anything (checked at start, before anything opens).
    pub fn validate(&self) -> Result<(), StoreSettingsError> {
        let checks = [
            (self.batch_bars >= 1, "store.batch_bars must be at least 1"),
            (self.batch_ms >= 1, "store.batch_ms must be at least 1"),
            (self.buffer_bars >= self.batch_bars, "store.buffer_bars must be at least store.batch_bars"),
            (self.backfill_concurrency >= 1, "store.backfill_concurrency must be at least 1"),
            (self.retry_initial_ms >= 1, "store.retry_initial_ms must be at least 1"),
            (self.retry_max_ms >= self.retry_initial_ms, "store.retry_max_ms must be at least store.retry_initial_ms"),
            (self.journal_max_bytes >= 16 << 10, "store.journal_max_bytes must be at least 16384"),
            (self.retention_batch_bars >= 1, "store.retention_batch_bars must be at least 1"),
            (self.retention_every_ms >= 10, "store.retention_every_ms must be at least 10"),
            (self.segment_rotate_bars >= 1_000, "store.segment_rotate_bars must be at least 1000"),
            (self.segment_rotate_bars <= 10_000_000, "store.segment_rotate_bars must be at most 10000000"),
        ];
        if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(StoreSettingsError::OutOfRange(msg));
        }
        if self.kind == StoreKind::Influxdb {
            self.influxdb.validate()?;
        }
        Ok(())
    }
}

/// `[store.influxdb]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSettings {
    pub api: InfluxApi,
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// Timeout of one request, in ms.
    pub timeout_ms: u64,
    /// v1: database, and optional user and password.
    pub database: String,
    pub username: String,
    pub password: Secret,
    /// v2: organization, bucket and token.
    pub org: String,
    pub bucket: String,
    pub token: Secret,
}

impl Default for InfluxSettings {
    fn default() -> Self {
        InfluxSettings {
            api: InfluxApi::V1,
            url: "http://127.0.0.1:8086".into(),
            timeout_ms: 5_000,
            database: "candlecast".into(),
            username: String::new(),
            password: Secret::default(),
            org: String::new(),
            bucket: "candlecast".into(),
            token: Secret::default(),
        }
    }
}

// Written out, not derived, so that no secret can reach a log through `{:?}` of the settings.
impl fmt::Debug for InfluxSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxSettings")
            .field("api", &self.api)
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("token", &self.token)
            .finish()
    }
}

impl InfluxSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    pub fn validate(&self) -> Result<(), StoreSettingsError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| StoreSettingsError::BadUrl { url: self.url.clone(), reason: e.to_string() })?;
        if url.scheme() != "http" {
            return Err(StoreSettingsError::NotHttp(self.url.clone()));
        }
        match self.api {
            InfluxApi::V1 if self.database.is_empty() => Err(StoreSettingsError::NoDatabase),
            InfluxApi::V2 if self.org.is_empty() || self.bucket.is_empty() => Err(StoreSettingsError::NoOrgOrBucket),
            InfluxApi::V2 if self.token.is_empty() => Err(StoreSettingsError::NoToken),
            _ => Ok(()),
        }
    }
}

/// `[store]` settings candlecast cannot start with; each message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreSettingsError {
    /// A number outside its bounds; the text names the key and the bound.
    #[error("{0}")]
    OutOfRange(&'static str),
    #[error("store.influxdb.url {url:?} is not a URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "store.influxdb.url must start with http:// (this build has no TLS; use a TLS-terminating proxy), got {0:?}"
    )]
    NotHttp(String),
    #[error("store.influxdb.database must name a database for api = \"v1\"")]
    NoDatabase,
    #[error("store.influxdb.org and store.influxdb.bucket must be set for api = \"v2\"")]
    NoOrgOrBucket,
    #[error("store.influxdb.token must be set for api = \"v2\"")]
    NoToken,
}

/// Builds the configured store; `None` for `kind = "none"`. Opening the embedded store takes its file
/// lock here, so a second candlecast on the same directory stops at start with a clear message.
pub fn open(settings: &StoreSettings) -> Result<Option<Arc<dyn Store>>, StoreError> {
    settings.validate().map_err(|e| StoreError::Open(e.to_string()))?;
    Ok(match settings.kind {
        StoreKind::None => None,
        StoreKind::Embedded => Some(Arc::new(EmbeddedStore::open(&settings.path)?)),
        StoreKind::Segments => {
            let options = SegmentOptions { rotate_bars: settings.segment_rotate_bars, ..SegmentOptions::default() };
            Some(Arc::new(SegmentStore::open(&settings.path, options)?))
        }
        StoreKind::Influxdb => match settings.influxdb.api {
            InfluxApi::V1 => Some(Arc::new(V1::store(&settings.influxdb)?)),
            InfluxApi::V2 => Some(Arc::new(V2::store(&settings.influxdb)?)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_debug_output() {
        let s = InfluxSettings { token: Secret::new("tok-123"), password: Secret::new("pw-456"), ..Default::default() };
        let debug = format!("{:?}", StoreSettings { influxdb: s, ..Default::default() });
        assert!(!debug.contains("tok-123") && !debug.contains("pw-456"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn bad_settings_are_named() {
        let v2 = |token: &str| InfluxSettings {
            api: InfluxApi::V2,
            org: "o".into(),
            token: Secret::new(token),
            ..Default::default()
        };
        assert!(v2("").validate().unwrap_err().to_string().contains("token"));
        assert!(v2("t").validate().is_ok());
        let bad_url = InfluxSettings { url: "not a url".into(), ..Default::default() };
        assert!(bad_url.validate().unwrap_err().to_string().contains("store.influxdb.url"));
        let tls = InfluxSettings { url: "https://influx.example".into(), ..Default::default() };
        assert!(tls.validate().unwrap_err().to_string().contains("http://"));
        let small = StoreSettings { buffer_bars: 10, batch_bars: 100, ..Default::default() };
        assert!(small.validate().unwrap_err().to_string().contains("buffer_bars"));
    }
}
