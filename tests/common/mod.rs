//! Shared test helpers: the real server on 127.0.0.1:0 in a thread of its own, and a WebSocket client.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod feeds;
pub mod history;
pub mod influxd;
pub mod process;
pub mod prometheus;
pub mod redis_server;

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use candlecast::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use toml::Value as Toml;

pub const SYMBOLS: [&str; 6] = ["BTCUSDT", "ETHUSDT", "ADAUSDT", "BNBUSDT", "XRPUSDT", "SOLUSDT"];

/// A running candlecast; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Set when the server runs as a child process (see `process.rs`): killed when dropped.
    process: Option<std::process::Child>,
    /// The store's directory when the server made its own (deleted after the server stops).
    _data: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts with small, fast test defaults, then `overrides` (dotted keys, as in config/default.toml),
    /// and waits until every configured symbol has a price. The embedded store lives in a fresh temporary
    /// directory, so that tests running side by side never share files.
    pub async fn start(overrides: &[(&str, Toml)]) -> TestServer {
        let data = tempfile::tempdir().expect("temporary store directory");
        let mut server = TestServer::start_in(data.path(), overrides).await;
        server._data = Some(data);
        server
    }

    /// Like [`TestServer::start`], waiting only for HTTP (an edge node may have no prices yet).
    pub async fn start_serving(overrides: &[(&str, Toml)]) -> TestServer {
        let data = tempfile::tempdir().expect("temporary store directory");
        let (mut server, _) = Self::launch(data.path(), overrides);
        server._data = Some(data);
        server.wait_for("/health", 200).await;
        server
    }

    /// Like [`TestServer::start`], with the store (and its journal) in `dir`, which outlives the server:
    /// start a second server on the same `dir` to test a restart.
    pub async fn start_in(dir: &std::path::Path, overrides: &[(&str, Toml)]) -> TestServer {
        let (server, symbols) = Self::launch(dir, overrides);
        for symbol in symbols {
            server.wait_for(&format!("/api/price/{symbol}"), 200).await;
        }
        server
    }

    /// Starts the server thread with its store in `dir`; returns it and the configured symbols.
    fn launch(dir: &std::path::Path, overrides: &[(&str, Toml)]) -> (TestServer, Vec<String>) {
        let config = test_config(dir, overrides);
        let symbols = config.feed.symbols.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = actix_web::rt::System::new().block_on(candlecast::run(listener, config, shutdown)) {
                eprintln!("server failed: {e:#}");
            }
        });
        (TestServer { addr, stop: Some(stop), thread: Some(thread), process: None, _data: None }, symbols)
    }

    /// Runs candlecast with its store in `dir` and `overrides`, expecting the start to fail; returns the
    /// error, as `main` would print it.
    pub fn start_error(dir: &std::path::Path, overrides: &[(&str, Toml)]) -> String {
        let config = test_config(dir, overrides);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result =
                actix_web::rt::System::new().block_on(candlecast::run(listener, config, std::future::pending()));
            let _ = tx.send(result.map_err(|e| format!("{e:#}")));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Err(e)) => e,
            Ok(Ok(())) => panic!("candlecast stopped without an error"),
            Err(_) => panic!("candlecast did not refuse to start within a minute"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Polls `path` until it answers `status` (the server starts asynchronously).
    pub async fn wait_for(&self, path: &str, status: u16) {
        // One client (its connection kept alive between polls), and no poll waits for ever: a server that
        // holds a refused connection (a test's per-host budgets) must not hold the start with it.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        for _ in 0..600 {
            if let Ok(r) = http.get(self.url(path)).send().await {
                if r.status().as_u16() == status {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} never answered {status}");
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = reqwest::get(self.url(path)).await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    pub async fn stats(&self) -> Value {
        self.get_json("/api/stats").await.1["stats"].clone()
    }
}

/// Small, fast test defaults with the store in `dir`, then `overrides`.
fn test_config(dir: &std::path::Path, overrides: &[(&str, Toml)]) -> Config {
    Config::load_with(None, &test_layers(dir, overrides)).expect("test config")
}

/// The layers of [`test_config`] (dotted keys, as in config/default.toml).
fn test_layers<'a>(dir: &std::path::Path, overrides: &[(&'a str, Toml)]) -> Vec<(&'a str, Toml)> {
    let mut layers: Vec<(&str, Toml)> = vec![
        ("store.path", Toml::String(dir.to_string_lossy().into_owned())),
        ("server.host", Toml::String("127.0.0.1".into())),
        ("server.port", Toml::Integer(0)),
        ("server.static_dir", Toml::String("/nonexistent-candlecast-dist".into())),
        ("server.workers", Toml::Integer(2)),
        ("feed.simulated.backfill_days", Toml::Integer(1)),
        ("feed.simulated.backfill_fine_hours", Toml::Integer(1)),
    ];
    layers.extend(overrides.iter().cloned());
    layers
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A WebSocket client speaking JSON.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(server: &TestServer) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.expect("ws connect");
        Client { ws }
    }

    pub async fn send(&mut self, msg: Value) {
        self.ws.send(Message::text(msg.to_string())).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// The next JSON message, skipping pings; panics after `secs` seconds or on close.
    pub async fn next_json(&mut self, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("timed out waiting for a message");
            match msg {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("server sent JSON"),
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next message of `kind` (skipping others, e.g. price updates).
    pub async fn next_of(&mut self, kind: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs().max(1);
            let v = self.next_json(left).await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    pub async fn subscribe(&mut self, pairs: &[&str], interval: &str) -> Value {
        self.send(serde_json::json!({"type": "subscribe", "trading_pairs": pairs, "interval": interval})).await;
        self.next_of("subscribed", 10).await
    }
}
pub mod clients;
