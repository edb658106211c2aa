//! Shared test helpers: the real server on 127.0.0.1:0 in a thread of its own, and a WebSocket client.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod process;
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
}

/// Small, fast test defaults, then `overrides` (dotted keys, as in config/default.toml).
fn test_layers<'a>(overrides: &[(&'a str, Toml)]) -> Vec<(&'a str, Toml)> {
    let mut layers: Vec<(&str, Toml)> = vec![
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

impl TestServer {
    /// Starts with small, fast test defaults, then `overrides` (dotted keys, as in config/default.toml),
    /// and waits until every configured symbol has a price.
    pub async fn start(overrides: &[(&str, Toml)]) -> TestServer {
        let (server, symbols) = Self::launch(overrides);
        for symbol in symbols {
            server.wait_for(&format!("/api/price/{symbol}"), 200).await;
        }
        server
    }

    /// Like [`TestServer::start`], waiting only for HTTP (an edge node may have no prices yet).
    pub async fn start_serving(overrides: &[(&str, Toml)]) -> TestServer {
        let (server, _) = Self::launch(overrides);
        server.wait_for("/health", 200).await;
        server
    }

    /// Starts the server thread; returns it and the configured symbols.
    fn launch(overrides: &[(&str, Toml)]) -> (TestServer, Vec<String>) {
        let config = Config::load_with(None, &test_layers(overrides)).expect("test config");
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
        (TestServer { addr, stop: Some(stop), thread: Some(thread), process: None }, symbols)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Polls `path` until it answers `status` (the server starts asynchronously).
    pub async fn wait_for(&self, path: &str, status: u16) {
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(self.url(path)).await {
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
