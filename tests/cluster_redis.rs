//! Scale-out on Redis, against a real redis-server that each test starts on a free port: bad
//! configuration, edge nodes that follow ingest nodes, the today-cache, Redis restarts and lease takeover.

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use common::{TestServer, Toml};
use serde_json::Value;

fn s(v: &str) -> Toml {
    Toml::String(v.into())
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn health(server: &TestServer) -> Value {
    server.get_json("/health").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_reported_in_health_and_stats_and_the_node_serves_from_memory() {
    // Nothing listens on this port: bind it, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![s("BTCUSDT")])), ("redis.url", s(&url)), ("redis.connect_timeout_ms", Toml::Integer(300))]).await;

    let h = eventually(20, "/health reports Redis down with a reason", || async {
        let h = health(&server).await;
        h["redis"]["error"].as_str().is_some_and(|e| e.contains("refused")).then_some(h)
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["redis"]["connected"], false);
    assert_eq!(h["redis"]["url"], format!("redis://:***@127.0.0.1:{port}"));
    let stats = server.stats().await;
    assert_eq!(stats["redis"]["connected"], 0, "{stats}");
    for body in [h.to_string(), stats.to_string(), reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap()] {
        assert!(!body.contains("hunter2"), "the password leaked: {body}");
    }
    // Still serving: prices and history from memory.
    let (status, bars) = server.get_json("/api/historical/BTCUSDT?interval=1m&limit=5").await;
    assert_eq!(status, 200);
    assert!(!bars["data"].as_array().unwrap().is_empty(), "{bars}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_without_the_password() {
    let redis = RedisServer::start_with_password("right-one");
    let url = format!("redis://:wrong-one@127.0.0.1:{}", redis.port);
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![s("BTCUSDT")])), ("redis.url", s(&url))]).await;
    let h = eventually(20, "/health reports the authentication failure", || async {
        let h = health(&server).await;
        h["redis"]["error"].as_str().is_some_and(|e| e.to_ascii_lowercase().contains("pass")).then_some(h)
    })
    .await;
    assert_eq!(h["status"], "degraded");
    assert!(!h.to_string().contains("wrong-one") && !h.to_string().contains("right-one"), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_redis_is_reported_connected() {
    let redis = RedisServer::start();
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![s("BTCUSDT")])), ("redis.url", s(&redis.url())), ("node.id", s("node-a"))]).await;
    let h = eventually(20, "/health reports Redis connected", || async {
        let h = health(&server).await;
        (h["redis"]["connected"] == true).then_some(h)
    })
    .await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["redis"]["node_id"], "node-a");
    assert_eq!(h["redis"]["role"], "all");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("candlecast_redis_connected 1"), "{metrics}");
}
