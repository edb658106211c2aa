//! Configuration: `config/default.toml` (compiled in), then `--config FILE`, then environment variables
//! `CANDLECAST__<SECTION>__<KEY>`. Unknown keys are errors that name the key.

use std::path::{Path, PathBuf};

use candlecast_actors::aggregator::{AggregatorSettings, UnknownSessions};
use candlecast_actors::cluster::{ClusterError, NodeSettings, RedisSettings};
use candlecast_actors::engine::FeedSettings;
use candlecast_actors::feed::FeedSource;
use candlecast_actors::hub::HubSettings;
use candlecast_actors::persist::{StoreSettings, StoreSettingsError};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::Deserialize;

/// The defaults, so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Everything candlecast can be configured with; see `config/default.toml` for each option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub feed: FeedSettings,
    pub aggregator: AggregatorSettings,
    pub hub: HubSettings,
    pub ws: WsConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub strategies: StrategiesConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub jobs: JobsConfig,
    pub scripts: ScriptsConfig,
    pub node: NodeSettings,
    pub redis: RedisSettings,
    pub store: StoreSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub static_dir: PathBuf,
    pub workers: usize,
    pub backlog: u32,
    /// Connections one HTTP worker holds before actix stops accepting for it; 0: the open-file limit.
    pub max_connections_per_worker: usize,
}

/// Limits and timers of WebSocket sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsConfig {
    pub max_frame_bytes: usize,
    pub max_topics_per_client: usize,
    pub max_control_messages_per_second: u32,
    pub outbound_queue_bytes: usize,
    pub ping_interval_secs: u64,
    pub client_timeout_secs: u64,
    pub max_errors_per_10s: u32,
    /// Browser origins besides the server's own that may open connections; `"*"`: any.
    pub allowed_origins: Vec<String>,
    /// Connections open at once in total; 0: the open-file limit less a reserve.
    pub max_connections: usize,
    pub max_connections_per_host: usize,
    pub max_handshakes_per_second_per_host: u32,
    /// Hosts the per-host limits do not apply to (load tests from loopback).
    pub unlimited_hosts: Vec<std::net::IpAddr>,
    pub max_indicator_streams_per_client: usize,
    pub max_indicator_streams_per_host: usize,
    pub max_indicator_streams: usize,
    /// Distinct indicator computations (symbol, interval, indicator, parameters) running at once.
    pub max_indicator_computations: usize,
    /// Indicator warm-ups (a new computation folding its history) running at once, off the market thread.
    pub max_concurrent_warmups: usize,
    pub unwatched_indicator_sweep_secs: u64,
    /// Offer permessage-deflate (RFC 7692) to clients that ask for it; off: every client gets plain frames.
    #[serde(default)]
    pub permessage_deflate: bool,
}

/// Budgets of plain HTTP: connections per host, slow request heads, history reads (`[http]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// A connection whose request head is not complete within this of its first byte is answered 408 and
    /// closed (checked only once the socket is empty: a head already there is always served).
    pub client_request_timeout_ms: u64,
    /// A connection that sends no byte within this of being accepted is answered 408 and closed.
    pub first_byte_timeout_ms: u64,
    /// HTTP connections (including /ws ones) one host may hold open at once.
    pub max_connections_per_host: usize,
    /// Hosts the per-host limits of this section do not apply to (loopback, for load tests).
    pub unlimited_hosts: Vec<std::net::IpAddr>,
    /// History reads (REST and /ws `get_historical`) running or queued at once, all hosts together.
    pub max_history_reads: usize,
    /// History reads running or queued at once for one host.
    pub max_history_reads_per_host: usize,
    /// Bars one host may read per second on average (token bucket), and in one burst.
    pub history_bars_per_second_per_host: u32,
    pub history_burst_bars_per_host: u32,
    /// Refused requests (400, 403, 413, 429, …) a host gets answered at once in 10 s; each further one is
    /// answered only after `refusal_delay_ms` (0 disables the delay). `unlimited_hosts` are never delayed.
    pub refusals_free_per_10s: u32,
    pub refusal_delay_ms: u64,
    /// A connection refused over `max_connections_per_host`, its host past its free refusals, is held
    /// and answered only this long after it was accepted (0: always answered at once)...
    pub connection_refusal_delay_ms: u64,
    /// ...plus as long as its host has been held without a pause, up to this in all.
    pub connection_refusal_max_delay_ms: u64,
    /// Refused connections held at once, per host and in total; beyond, closed at once unanswered.
    pub max_held_refusals_per_host: usize,
    pub max_held_refusals: usize,
}

/// Keys for the admin endpoints (`POST`/`DELETE /api/feeds`); empty disables them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// A list, or one key as a plain string (`CANDLECAST__ADMIN__KEYS=secret`).
    #[serde(deserialize_with = "one_or_many")]
    pub keys: Vec<String>,
    pub refused_log_every_secs: u64,
    /// Refused keys a host may present in 10 s before each further refusal is answered only after
    /// `refused_key_delay_ms` (0 disables the delay). Hosts in `[http] unlimited_hosts` are never delayed.
    pub refused_keys_free_per_10s: u32,
    pub refused_key_delay_ms: u64,
}

/// Where the hashed keys of `candlecast keys new` live (`[auth]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Empty: `keys.toml` in the store's directory (`store.path`).
    pub keys_file: String,
}

impl Config {
    /// The keys file the server reads and `candlecast keys` writes.
    pub fn keys_file(&self) -> PathBuf {
        match self.auth.keys_file.as_str() {
            "" => self.store.path.join("keys.toml"),
            path => PathBuf::from(path),
        }
    }
}

/// Backtest and optimization jobs: who may run them and their budgets (`[jobs]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub require_key: bool,
    #[serde(deserialize_with = "one_or_many")]
    pub trader_keys: Vec<String>,
    pub threads: usize,
    pub max_running: usize,
    pub max_running_anonymous: usize,
    pub max_running_per_host: usize,
    pub max_running_per_key: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub max_bars_anonymous: usize,
    pub max_bars: usize,
    pub max_combinations_anonymous: usize,
    pub max_combinations: usize,
    pub max_top: usize,
    pub max_equity_points: usize,
    pub max_trades: usize,
    pub results_max_bytes: usize,
    pub results_max_count: usize,
    pub result_ttl_secs: u64,
    pub retry_after_secs: u64,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Keys {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Keys::deserialize(d)? {
        Keys::One(k) => vec![k],
        Keys::Many(ks) => ks,
    })
}

/// External scripts and dashboards over Socket.IO (`/socket.io/`) and the script REST endpoints (`[scripts]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptsConfig {
    /// Keys scripts present; a list, or one key as a plain string.
    #[serde(deserialize_with = "one_or_many")]
    pub keys: Vec<String>,
    pub require_key_for_dashboards: bool,
    pub cors_origins: Vec<String>,
    pub max_events_per_second: u32,
    pub max_payload_bytes: usize,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub outbound_queue_bytes: usize,
    pub max_trades_per_symbol: usize,
    pub max_trade_symbols: usize,
    pub market_data_interval: String,
    pub max_script_symbols: usize,
    pub max_upload_bytes: usize,
    pub max_sessions: usize,
    pub max_sessions_per_host: usize,
    pub max_handshakes_per_second_per_host: u32,
    pub fault_backoff_ms: u64,
    pub host_limits_exempt: Vec<String>,
    pub max_csv_columns: usize,
    pub max_csv_rows: usize,
    pub max_indicator_values: usize,
}

/// Strategies run live from the start (`[strategies]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategiesConfig {
    pub live: Vec<candlecast_actors::strategy::LiveSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

/// The configuration could not be read, or holds values candlecast cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: config file {0} does not exist")]
    MissingFile(PathBuf),
    /// Figment's description: the key, the value's problem and where it came from, one per problem.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value outside what candlecast accepts; the text names the key and the bound.
    #[error("invalid configuration: {0}")]
    Invalid(&'static str),
    #[error("invalid configuration: {0}")]
    Store(#[from] StoreSettingsError),
    #[error("invalid configuration: {0}")]
    Sessions(#[from] UnknownSessions),
    #[error("invalid configuration: {0}")]
    Cluster(#[from] ClusterError),
}

impl Config {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(file, &[])
    }

    /// Like [`Config::load`], then `overrides` as dotted keys (`"server.port"`): what tests use, since
    /// the environment is shared by every test in a process.
    pub fn load_with(file: Option<&Path>, overrides: &[(&str, toml::Value)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("CANDLECAST__").split("__"));
        for (key, value) in overrides {
            figment = figment.merge(Serialized::global(key, value));
        }
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults, then `text` as a config file: no file and no environment. For the fuzz target
    /// (fuzz/fuzz_targets/config_toml.rs), which must not read the process environment; not an API.
    #[doc(hidden)]
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(text));
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (self.ws.max_frame_bytes >= 1024, "ws.max_frame_bytes must be at least 1024"),
            (self.ws.outbound_queue_bytes >= 64 * 1024, "ws.outbound_queue_bytes must be at least 65536"),
            (self.ws.max_topics_per_client >= 1, "ws.max_topics_per_client must be at least 1"),
            (self.ws.max_control_messages_per_second >= 1, "ws.max_control_messages_per_second must be at least 1"),
            (self.ws.ping_interval_secs >= 1, "ws.ping_interval_secs must be at least 1"),
            (
                self.ws.client_timeout_secs > self.ws.ping_interval_secs,
                "ws.client_timeout_secs must exceed ws.ping_interval_secs",
            ),
            (self.aggregator.history_bars >= 1, "aggregator.history_bars must be at least 1"),
            (self.aggregator.hot_bars >= 1, "aggregator.hot_bars must be at least 1"),
            (self.http.client_request_timeout_ms >= 100, "http.client_request_timeout_ms must be at least 100"),
            (self.http.first_byte_timeout_ms >= 100, "http.first_byte_timeout_ms must be at least 100"),
            (
                self.http.max_connections_per_host >= 1
                    && self.http.max_history_reads >= 1
                    && self.http.max_history_reads_per_host >= 1
                    && self.http.history_bars_per_second_per_host >= 1
                    && self.http.history_burst_bars_per_host >= 1,
                "http.max_connections_per_host, max_history_reads, max_history_reads_per_host, history_bars_per_second_per_host and history_burst_bars_per_host must be at least 1",
            ),
            (self.aggregator.grace_ms >= 0, "aggregator.grace_ms must not be negative"),
            (self.scripts.max_payload_bytes >= 1024, "scripts.max_payload_bytes must be at least 1024"),
            (self.scripts.max_events_per_second >= 1, "scripts.max_events_per_second must be at least 1"),
            (
                self.scripts.ping_interval_ms >= 50 && self.scripts.ping_timeout_ms >= 50,
                "scripts.ping_interval_ms and scripts.ping_timeout_ms must be at least 50",
            ),
            (self.scripts.outbound_queue_bytes >= 64 * 1024, "scripts.outbound_queue_bytes must be at least 65536"),
            (self.scripts.max_trades_per_symbol >= 1, "scripts.max_trades_per_symbol must be at least 1"),
            (self.scripts.max_trade_symbols >= 1, "scripts.max_trade_symbols must be at least 1"),
            (
                self.scripts.max_sessions >= 1
                    && self.scripts.max_sessions_per_host >= 1
                    && self.scripts.max_handshakes_per_second_per_host >= 1,
                "scripts.max_sessions, max_sessions_per_host and max_handshakes_per_second_per_host must be at least 1",
            ),
            (
                self.scripts.host_limits_exempt.iter().all(|h| h.trim().parse::<std::net::IpAddr>().is_ok()),
                "scripts.host_limits_exempt must list IP addresses (such as \"127.0.0.1\" or \"::1\")",
            ),
            (
                self.scripts.max_csv_columns >= 16 && self.scripts.max_csv_rows >= 1,
                "scripts.max_csv_columns must be at least 16 and scripts.max_csv_rows at least 1",
            ),
            (
                self.scripts.market_data_interval.is_empty()
                    || self.scripts.market_data_interval.parse::<candlecast_actors::model::Interval>().is_ok(),
                "scripts.market_data_interval must be empty (inferred) or an interval such as 1m",
            ),
            (
                self.jobs.max_running >= 1 && self.jobs.max_running_per_host >= 1 && self.jobs.max_running_per_key >= 1,
                "jobs.max_running, jobs.max_running_per_host and jobs.max_running_per_key must be at least 1",
            ),
            (
                self.jobs.max_bars >= 1 && self.jobs.max_bars_anonymous >= 1,
                "jobs.max_bars and jobs.max_bars_anonymous must be at least 1",
            ),
            (
                self.jobs.max_combinations >= 1 && self.jobs.max_combinations_anonymous >= 1 && self.jobs.max_top >= 1,
                "jobs.max_combinations, jobs.max_combinations_anonymous and jobs.max_top must be at least 1",
            ),
            (self.jobs.max_equity_points >= 2, "jobs.max_equity_points must be at least 2"),
            (self.hub.max_updates_per_second >= 1, "hub.max_updates_per_second must be at least 1"),
            (self.hub.flush_window_ms >= 1, "hub.flush_window_ms must be at least 1"),
            (self.feed.simulated.trades_per_second > 0.0, "feed.simulated.trades_per_second must be above 0"),
            (
                (1..=5).contains(&self.feed.binance.max_messages_per_second),
                "feed.binance.max_messages_per_second must be 1 to 5 (Binance's limit)",
            ),
            (
                self.feed.source != FeedSource::Replay || !self.feed.replay.path.is_empty(),
                "feed.replay.path must name a CSV file when feed.source = \"replay\"",
            ),
            (
                self.feed.shoonya.timeout_ms >= 1
                    && self.feed.shoonya.heartbeat_secs >= 1
                    && self.feed.shoonya.max_master_bytes >= 1,
                "feed.shoonya.timeout_ms, feed.shoonya.heartbeat_secs and feed.shoonya.max_master_bytes must be at least 1",
            ),
            (
                self.feed.source != FeedSource::Shoonya
                    || !self.feed.shoonya.session_token.is_empty()
                    || self.feed.shoonya.can_login(),
                "feed.source = \"shoonya\" needs feed.shoonya.session_token, or uid, password, totp_secret, \
                 vendor_code and api_secret (secrets preferably from CANDLECAST__FEED__SHOONYA__...)",
            ),
            (
                self.feed.source != FeedSource::Kite
                    || !(self.feed.kite.api_key.is_empty() || self.feed.kite.access_token.is_empty()),
                "feed.kite.api_key and feed.kite.access_token must be set when feed.source = \"kite\" \
                 (the token preferably as CANDLECAST__FEED__KITE__ACCESS_TOKEN)",
            ),
        ];
        if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError::Invalid(msg));
        }
        self.store.validate()?;
        self.aggregator.check_sessions()?;
        Ok(candlecast_actors::cluster::validate_settings(&self.node, &self.redis)?)
    }
}

/// Figment's errors name the key and where it came from; keep all of them, one per line.
fn describe(e: figment::Error) -> String {
    e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_feed_source_is_refused_when_the_config_loads_naming_the_valid_ones() {
        let source = ("feed.source", toml::Value::String("ftx".into()));
        let err = Config::load_with(None, std::slice::from_ref(&source)).unwrap_err().to_string();
        assert!(err.contains("unknown feed source \"ftx\": expected \"simulated\", \"binance\""), "{err}");
        assert!(err.contains("feed.source"), "the error names the key: {err}");
        let none = ("feed.source", toml::Value::String("none".into()));
        assert_eq!(Config::load_with(None, &[none]).unwrap().feed.source, FeedSource::None);
    }

    #[test]
    fn exchange_symbols_get_their_sessions_and_crypto_trades_around_the_clock() {
        let c = Config::load_with(None, &[]).unwrap();
        assert!(!c.aggregator.calendar_for("NSE:INFY").is_continuous());
        assert!(!c.aggregator.calendar_for("MCX:CRUDEOIL24JANFUT").is_continuous());
        assert!(c.aggregator.calendar_for("BTCUSDT").is_continuous());
        assert!(c.aggregator.calendar_for("XX:FOO").is_continuous(), "no session configured for XX");
        let c = Config::from_toml_str("[aggregator]\nsymbol_sessions = { AAPL = \"NASDAQ\" }\n").unwrap();
        assert!(!c.aggregator.calendar_for("AAPL").is_continuous());
        let err = Config::from_toml_str("[aggregator]\nsymbol_sessions = { AAPL = \"NASDQ\" }\n").unwrap_err();
        assert!(err.to_string().contains("NASDQ"), "{err}");
        let err = Config::from_toml_str(
            "[aggregator.sessions.XX]\ntimezone = \"Asia/Nowhere\"\nopen = \"09:00\"\nclose = \"10:00\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("time zone"), "{err}");
    }

    #[test]
    fn defaults_load_and_match_the_documented_values() {
        let c = Config::load_with(None, &[]).unwrap();
        assert_eq!(c.server.port, 8000);
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(c.feed.symbols.len(), 6);
        assert_eq!(c.hub.max_updates_per_second, 10);
        assert_eq!(c.ws.max_frame_bytes, 64 * 1024);
        assert!(!c.ws.permessage_deflate, "plain JSON frames stay the default");
        assert_eq!(c.aggregator.history_bars, 5000);
        assert_eq!(c.aggregator.hot_bars, 64);
        assert_eq!(
            (c.scripts.max_payload_bytes, c.scripts.ping_interval_ms, c.scripts.ping_timeout_ms),
            (1_000_000, 25_000, 20_000)
        );
        assert!(
            c.scripts.keys.is_empty() && c.scripts.cors_origins.is_empty() && !c.scripts.require_key_for_dashboards
        );
        assert_eq!(c.store.kind, candlecast_actors::persist::StoreKind::Segments);
        assert_eq!(c.store.path, Path::new("data"));
        let j = &c.jobs;
        assert!(!j.require_key && j.trader_keys.is_empty() && j.trusted_proxies.is_empty());
        assert_eq!(
            (j.max_running, j.max_running_anonymous, j.max_running_per_host, j.max_running_per_key),
            (8, 4, 2, 4)
        );
        assert_eq!((j.max_top, j.max_equity_points, j.max_trades), (100, 2_000, 1_000));
        assert_eq!((j.max_bars_anonymous, j.max_combinations_anonymous), (100_000, 1_000));
        assert_eq!(c.admin.refused_log_every_secs, 10);
        assert_eq!((c.admin.refused_keys_free_per_10s, c.admin.refused_key_delay_ms), (10, 1000));
        assert_eq!((c.http.client_request_timeout_ms, c.http.first_byte_timeout_ms), (5000, 10_000));
    }

    #[test]
    fn store_settings_are_checked_and_kinds_named() {
        let err =
            Config::load_with(None, &[("store.kind", toml::Value::String("sqlite".into()))]).unwrap_err().to_string();
        assert!(err.contains("sqlite") && err.contains("embedded"), "{err}");
        let influx = |api: &str| {
            Config::load_with(
                None,
                &[
                    ("store.kind", toml::Value::String("influxdb".into())),
                    ("store.influxdb.api", toml::Value::String(api.into())),
                ],
            )
        };
        assert!(influx("v1").is_ok());
        let err = influx("v2").unwrap_err().to_string();
        assert!(err.contains("store.influxdb.org") || err.contains("store.influxdb.token"), "{err}");
        assert!(Config::load_with(None, &[("store.influxdb.tokn", toml::Value::String("x".into()))])
            .unwrap_err()
            .to_string()
            .contains("tokn"));
    }

    /// `[store.retention]` of config/default.toml is the code's default; a file can keep a default
    /// interval forever and limit another; a bad interval or duration is named.
    #[test]
    fn store_retention_defaults_overrides_and_errors() {
        use candlecast_actors::model::Interval;
        use candlecast_actors::persist::RetentionSettings;
        let c = Config::load_with(None, &[]).unwrap();
        let d = StoreSettings::default();
        assert_eq!(c.store.retention, RetentionSettings::default());
        assert_eq!(
            (c.store.retention_batch_bars, c.store.retention_every_ms),
            (d.retention_batch_bars, d.retention_every_ms)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[store.retention]\n\"1s\" = \"forever\"\n\"1m\" = \"90d\"\n").unwrap();
        let r = Config::load(Some(&file)).unwrap().store.retention;
        let day = 86_400_000;
        assert_eq!(
            (r.keep_ms(Interval::S1), r.keep_ms(Interval::S5), r.keep_ms(Interval::M1)),
            (None, Some(30 * day), Some(90 * day))
        );
        std::fs::write(&file, "[store.retention]\n\"2m\" = \"1d\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("2m") && err.contains("unknown interval"), "{err}");
        std::fs::write(&file, "[store.retention]\n\"1s\" = \"0d\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("0d"), "{err}");
        let err = Config::load_with(None, &[("store.retention_batch_bars", toml::Value::Integer(0))]).unwrap_err();
        assert!(err.to_string().contains("store.retention_batch_bars"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::load_with(None, &[("server.prot", toml::Value::Integer(1))]).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[hub]\nmax_updates_per_secnd = 3\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("max_updates_per_secnd"), "{err}");
    }

    #[test]
    fn feed_and_admin_sections_refuse_unknown_keys_and_take_one_key_as_a_string() {
        for key in ["feed.binance.ws_ulr", "feed.replay.sped", "admin.key"] {
            let err = Config::load_with(None, &[(key, toml::Value::Integer(1))]).unwrap_err().to_string();
            assert!(err.contains(key.rsplit('.').next().unwrap()), "{key}: {err}");
        }
        let c = Config::load_with(None, &[("admin.keys", toml::Value::String("k1".into()))]).unwrap();
        assert_eq!(c.admin.keys, ["k1"]);
        let c = Config::load_with(None, &[("scripts.keys", toml::Value::String("s1".into()))]).unwrap();
        assert_eq!(c.scripts.keys, ["s1"]);
        assert!(Config::load_with(None, &[("scripts.tokens", toml::Value::Integer(1))])
            .unwrap_err()
            .to_string()
            .contains("tokens"));
        assert!(Config::load_with(None, &[("scripts.market_data_interval", toml::Value::String("7m".into()))]).is_err());
        assert!(
            Config::load_with(None, &[("feed.source", toml::Value::String("replay".into()))]).is_err(),
            "replay needs a path"
        );
    }

    /// `[feed.iqfeed]` in config/default.toml is what the code defaults to, and credentials never show in
    /// `{:?}` of the configuration.
    #[test]
    fn iqfeed_section_matches_the_code_defaults_and_hides_credentials() {
        let c = Config::load_with(None, &[]).unwrap();
        let d = candlecast_actors::feed::IqFeedSettings::default();
        assert_eq!(format!("{:?}", c.feed.iqfeed), format!("{d:?}"));
        let (l1, lookup, admin) = (c.feed.iqfeed.level1_port, c.feed.iqfeed.lookup_port, c.feed.iqfeed.admin_port);
        assert_eq!((l1, lookup, admin, c.feed.iqfeed.protocol.as_str()), (5009, 9100, 9300, "6.2"));
        let secret = [("feed.iqfeed.password", toml::Value::String("hunter2-secret".into()))];
        let c = Config::load_with(None, &secret).unwrap();
        assert_eq!(c.feed.iqfeed.password, "hunter2-secret");
        assert!(!format!("{c:?}").contains("hunter2-secret"), "the password stays out of Debug output");
        let err = Config::load_with(None, &[("feed.iqfeed.lookup_prt", toml::Value::Integer(1))]).unwrap_err();
        assert!(err.to_string().contains("lookup_prt"), "{err}");
    }

    /// `[feed.shoonya]` in config/default.toml is what the code defaults to; secrets never show in `{:?}`;
    /// the source needs a session token or credentials.
    #[test]
    fn shoonya_section_matches_the_code_defaults_and_hides_secrets() {
        let c = Config::load_with(None, &[]).unwrap();
        let d = candlecast_actors::feed::ShoonyaSettings::default();
        assert_eq!(format!("{:?}", c.feed.shoonya), format!("{d:?}"));
        assert_eq!(c.feed.shoonya.ws_url, "wss://api.shoonya.com/NorenWSTP/");
        let source = ("feed.source", toml::Value::String("shoonya".into()));
        let err = Config::load_with(None, std::slice::from_ref(&source)).unwrap_err().to_string();
        assert!(err.contains("session_token"), "{err}");
        let secrets = [
            source,
            ("feed.shoonya.session_token", toml::Value::String("tok-9f8e7d6c".into())),
            ("feed.shoonya.password", toml::Value::String("hunter2-secret".into())),
            ("feed.shoonya.api_secret", toml::Value::String("api-secret-1234".into())),
        ];
        let c = Config::load_with(None, &secrets).unwrap();
        let shown = format!("{c:?}");
        for secret in ["tok-9f8e7d6c", "hunter2-secret", "api-secret-1234"] {
            assert!(!shown.contains(secret), "{secret} stays out of Debug output");
        }
        let err = Config::load_with(None, &[("feed.shoonya.api_ulr", toml::Value::Integer(1))]).unwrap_err();
        assert!(err.to_string().contains("api_ulr"), "{err}");
    }

    /// `[feed.kite]` in config/default.toml is what the code defaults to; the key and the token never show
    /// in `{:?}` of the configuration, and `source = "kite"` without them stops the start.
    #[test]
    fn kite_section_matches_the_code_defaults_and_hides_the_token() {
        let c = Config::load_with(None, &[]).unwrap();
        let d = candlecast_actors::feed::KiteSettings::default();
        assert_eq!(format!("{:?}", c.feed.kite), format!("{d:?}"));
        assert_eq!(c.feed.kite.ws_url, "wss://ws.kite.trade");
        let kite = toml::Value::String("kite".into());
        let err = Config::load_with(None, &[("feed.source", kite.clone())]).unwrap_err();
        assert!(err.to_string().contains("feed.kite.access_token"), "{err}");
        let set = [
            ("feed.source", kite),
            ("feed.kite.api_key", toml::Value::String("kitekey".into())),
            ("feed.kite.access_token", toml::Value::String("tok-hunter2-secret".into())),
        ];
        let c = Config::load_with(None, &set).unwrap();
        assert_eq!(c.feed.kite.access_token, "tok-hunter2-secret");
        assert!(!format!("{c:?}").contains("tok-hunter2-secret"), "the token stays out of Debug output");
    }

    #[test]
    fn file_and_overrides_layer_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[server]\nport = 9001\n[feed]\nsymbols = [\"BTCUSDT\"]\n").unwrap();
        let c = Config::load_with(Some(&file), &[("ws.max_topics_per_client", toml::Value::Integer(3))]).unwrap();
        assert_eq!((c.server.port, c.feed.symbols.len(), c.ws.max_topics_per_client), (9001, 1, 3));
        assert_eq!(c.server.host, "0.0.0.0", "untouched keys keep their defaults");
        assert!(Config::load(Some(Path::new("/nonexistent.toml"))).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let err =
            Config::load_with(None, &[("ws.client_timeout_secs", toml::Value::Integer(5))]).unwrap_err().to_string();
        assert!(err.contains("client_timeout_secs"), "{err}");
        let err = Config::load_with(None, &[("server.port", toml::Value::String("x".into()))]).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }
}
