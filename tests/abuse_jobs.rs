//! Issue #21, jobs: backtests and optimizations are budgeted per host, per key and in total, refused
//! before any history is read, bounded in what they keep, and gated by the trader role where configured.
//!
//! Per-host budgets are tested through a trusted proxy (`[jobs] trusted_proxies = ["127.0.0.1"]` and
//! `X-Forwarded-For`), the only way two hosts can be told apart on loopback.

mod common;

use std::time::Duration;

use common::{TestServer, Toml};
use serde_json::{json, Value};

/// A grid of 58 × 340 = 19,720 points on 1s bars: runs for minutes on one job thread, until cancelled.
fn long_grid() -> Value {
    json!({"symbol":"ETHUSDT","interval":"1s","strategy":"ema_cross",
           "params":{"fast":{"start":2,"end":59,"step":1},"slow":{"start":61,"end":400,"step":1}},"rank_by":"sharpe"})
}

fn keys(list: &[&str]) -> Toml {
    Toml::Array(list.iter().map(|k| Toml::String((*k).into())).collect())
}

/// POSTs `body` with optional bearer `key` and `X-Forwarded-For` `host`; returns status, Retry-After and body.
async fn post(
    server: &TestServer,
    path: &str,
    body: Value,
    key: Option<&str>,
    host: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new().post(server.url(path)).json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(host) = host {
        req = req.header("x-forwarded-for", host);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap())
}

async fn finished(server: &TestServer, path: &str) -> Value {
    for _ in 0..1200 {
        let (status, v) = server.get_json(path).await;
        assert_eq!(status, 200, "{v}");
        if v["status"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job at {path} never finished");
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap()
}

/// The value of one `/metrics` line starting with `series` (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

fn assert_limit(v: &Value, limit: &str, config: &str) {
    assert_eq!(v["error"], "limit_exceeded", "{v}");
    assert_eq!(v["limit"], limit, "{v}");
    assert_eq!(v["config"], config, "{v}");
    assert!(v["detail"].as_str().unwrap().contains(config), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_top_and_grid_beyond_the_budget_are_refused_and_a_trader_gets_more() {
    let server =
        TestServer::start(&[("jobs.trader_keys", keys(&["trader-1"])), ("jobs.threads", Toml::Integer(1))]).await;
    let mut spec = json!({"symbol":"BTCUSDT","interval":"1m","strategy":"ema_cross","params":{"fast":[3,5]},"rank_by":"net_pnl","top":100000});
    let (status, _, v) = post(&server, "/api/optimize/start", spec.clone(), None, None).await;
    assert_eq!(status, 400, "{v}");
    assert_limit(&v, "top", "jobs.max_top");
    assert_eq!(v["max"], 100);
    spec["top"] = json!(100);
    let (status, _, v) = post(&server, "/api/optimize/start", spec, None, None).await;
    assert_eq!(status, 202, "{v}");
    finished(&server, &format!("/api/optimize/status/{}", v["job_id"].as_str().unwrap())).await;

    let (status, _, v) = post(&server, "/api/optimize/start", long_grid(), None, None).await;
    assert_eq!(status, 400, "{v}");
    assert_limit(&v, "combinations", "jobs.max_combinations_anonymous");
    // A trader's budget is larger.
    let (status, _, v) = post(&server, "/api/optimize/start", long_grid(), Some("trader-1"), None).await;
    assert_eq!(status, 202, "{v}");
    let id = v["job_id"].as_str().unwrap();
    let (status, _, _) = post(&server, &format!("/api/optimize/cancel/{id}"), json!({}), Some("trader-1"), None).await;
    assert_eq!(status, 200);
    assert!(metric(&metrics(&server).await, "candlecast_refused_total{limit=\"top\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1s_backtest_keeps_at_most_2000_equity_points_and_a_capped_trade_list() {
    let server = TestServer::start(&[("jobs.max_trades", Toml::Integer(5))]).await;
    let body = json!({"strategy":"ema_cross","symbol":"BTCUSDT","interval":"1s","params":{"fast":2,"slow":3}});
    let (status, _, v) = post(&server, "/api/backtest/run", body, None, None).await;
    assert_eq!(status, 202, "{v}");
    let job = finished(&server, &format!("/api/backtest/results/{}", v["job_id"].as_str().unwrap())).await;
    let result = &job["result"];
    assert_eq!(job["status"], "done", "{job}");
    assert!(result["bars"].as_u64().unwrap() > 2_000, "an hour of 1s bars: {}", result["bars"]);
    let equity = result["equity"].as_array().unwrap();
    assert!(equity.len() <= 2_000, "{} equity points", equity.len());
    assert_eq!(result["equity_downsampled"], true);
    assert!(result["metrics"]["trades"].as_u64().unwrap() > 5, "a fast crossover trades often");
    assert_eq!(result["trades"].as_array().unwrap().len(), 5);
    assert_eq!((&result["trades_truncated"], &result["signals_truncated"]), (&json!(true), &json!(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_job_of_one_host_is_refused_before_history_is_read_while_another_host_runs() {
    let server = TestServer::start(&[
        ("jobs.trusted_proxies", keys(&["127.0.0.1"])),
        ("jobs.max_running_per_host", Toml::Integer(1)),
        ("jobs.max_combinations_anonymous", Toml::Integer(100_000)),
        ("jobs.trader_keys", keys(&["key-a", "key-b"])),
        ("jobs.max_running_per_key", Toml::Integer(1)),
        ("jobs.threads", Toml::Integer(1)),
    ])
    .await;
    let (a, b) = (Some("10.0.0.1"), Some("10.0.0.2"));
    let (status, _, first) = post(&server, "/api/optimize/start", long_grid(), None, a).await;
    assert_eq!(status, 202, "{first}");
    let loads = server.stats().await["jobs"]["history_loads"].as_u64().unwrap();
    let before = metric(&metrics(&server).await, "candlecast_refused_total{limit=\"jobs_per_host\"}");
    for _ in 0..10 {
        for (path, body) in [
            ("/api/optimize/start", long_grid()),
            ("/api/backtest/run", json!({"strategy":"ema_cross","symbol":"BTCUSDT","interval":"1s"})),
        ] {
            let (status, retry, v) = post(&server, path, body, None, a).await;
            assert_eq!(status, 429, "{v}");
            assert_limit(&v, "jobs_per_host", "jobs.max_running_per_host");
            assert_eq!(retry.as_deref(), Some("5"));
        }
    }
    let stats = server.stats().await;
    assert_eq!(stats["jobs"]["history_loads"], loads, "refused jobs read no history: {}", stats["jobs"]);
    assert_eq!(stats["jobs"]["running"], 1);
    let after = metric(&metrics(&server).await, "candlecast_refused_total{limit=\"jobs_per_host\"}");
    assert_eq!(after - before, 20.0);

    // Another host still gets its slot; its owner alone may cancel it.
    let (status, _, second) = post(&server, "/api/optimize/start", long_grid(), None, b).await;
    assert_eq!(status, 202, "{second}");
    let second = second["job_id"].as_str().unwrap().to_owned();
    let (status, _, _) = post(&server, &format!("/api/optimize/cancel/{second}"), json!({}), None, a).await;
    assert_eq!(status, 404, "another host cannot cancel it");

    // Per key: key-a's second job is refused, key-b's first is not.
    let (status, _, keyed) = post(&server, "/api/optimize/start", long_grid(), Some("key-a"), None).await;
    assert_eq!(status, 202, "{keyed}");
    let (status, retry, v) = post(&server, "/api/optimize/start", long_grid(), Some("key-a"), a).await;
    assert_eq!(status, 429, "{v}");
    assert_limit(&v, "jobs_per_key", "jobs.max_running_per_key");
    assert!(retry.is_some());
    let (status, _, other) = post(&server, "/api/optimize/start", long_grid(), Some("key-b"), None).await;
    assert_eq!(status, 202, "{other}");

    for (id, key, host) in [
        (first["job_id"].as_str().unwrap(), None, a),
        (&second, None, b),
        (keyed["job_id"].as_str().unwrap(), Some("key-a"), None),
        (other["job_id"].as_str().unwrap(), Some("key-b"), None),
    ] {
        let (status, _, v) = post(&server, &format!("/api/optimize/cancel/{id}"), json!({}), key, host).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(finished(&server, &format!("/api/optimize/status/{id}")).await["status"], "cancelled");
    }
    // The slot is free again.
    let (status, _, v) =
        post(&server, "/api/backtest/run", json!({"strategy":"ema_cross","symbol":"BTCUSDT","interval":"1m"}), None, a)
            .await;
    assert_eq!(status, 202, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_key_anonymous_jobs_get_401_and_trader_and_admin_keys_work() {
    let server = TestServer::start(&[
        ("jobs.require_key", Toml::Boolean(true)),
        ("jobs.trader_keys", keys(&["trader-secret"])),
        ("admin.keys", keys(&["admin-secret"])),
    ])
    .await;
    let body = json!({"strategy":"ema_cross","symbol":"BTCUSDT","interval":"1m"});
    let r = reqwest::Client::new().post(server.url("/api/backtest/run")).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized", "{v}");
    let (status, _, v) = post(&server, "/api/backtest/run", body.clone(), Some("guess-secret"), None).await;
    assert_eq!(status, 401, "{v}");
    assert!(!v.to_string().contains("guess-secret"), "the key is never echoed: {v}");
    for key in ["trader-secret", "admin-secret"] {
        let (status, _, v) = post(&server, "/api/backtest/run", body.clone(), Some(key), None).await;
        assert_eq!(status, 202, "{key}: {v}");
        finished(&server, &format!("/api/backtest/results/{}", v["job_id"].as_str().unwrap())).await;
    }
    let (status, _, v) = post(&server, "/api/optimize/start", long_grid(), None, None).await;
    assert_eq!(status, 401, "{v}");
    assert!(!server.stats().await.to_string().contains("secret"), "no key in /api/stats");

    // No key configured at all: jobs are off (403), not open.
    let closed = TestServer::start(&[("jobs.require_key", Toml::Boolean(true))]).await;
    let (status, _, v) = post(&closed, "/api/backtest/run", body, None, None).await;
    assert_eq!((status, v["error"].as_str()), (403, Some("jobs_disabled")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_keys_is_counted_and_its_log_lines_held_back() {
    let server = TestServer::start(&[("admin.keys", keys(&["admin-secret"]))]).await;
    let text = metrics(&server).await;
    let (refused, held) = (
        metric(&text, "candlecast_refused_total{limit=\"key_admin\"}"),
        metric(&text, "candlecast_refused_key_logs_suppressed_total"),
    );
    let client = reqwest::Client::new();
    for i in 0..50 {
        let r = client
            .post(server.url("/api/feeds"))
            .bearer_auth(format!("wrong-{i}"))
            .json(&json!({"symbol":"DOGEUSDT"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    // A wrong trader key is refused too (never downgraded to anonymous), counted under its own kind.
    let (status, _, _) =
        post(&server, "/api/backtest/run", json!({"strategy":"ema_cross","symbol":"BTCUSDT"}), Some("wrong"), None)
            .await;
    assert_eq!(status, 401);
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "candlecast_refused_total{limit=\"key_admin\"}") - refused, 50.0);
    assert!(metric(&text, "candlecast_refused_total{limit=\"key_trader\"}") >= 1.0);
    // At most one warn line for this peer in the quiet period (10 s by default): 49 or more held back.
    assert!(metric(&text, "candlecast_refused_key_logs_suppressed_total") - held >= 49.0, "{text}");
}

/// Key guessing is slowed down: past `[admin] refused_keys_free_per_10s` a host gets each further 401
/// only after `refused_key_delay_ms` (found by `make abuse`: 8 threads made ~1,600 refusals a second and
/// the healthy clients' p99 went to 6.7x). The answer itself is unchanged, and the right key still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_guessing_keys_gets_its_refusals_late_and_the_right_key_still_works() {
    let server = TestServer::start(&[
        ("admin.keys", keys(&["admin-secret"])),
        ("admin.refused_keys_free_per_10s", Toml::Integer(3)),
        ("admin.refused_key_delay_ms", Toml::Integer(1000)),
        // The test comes from loopback, which is exempt by default.
        ("http.unlimited_hosts", Toml::Array(vec![])),
    ])
    .await;
    let client = reqwest::Client::new();
    let guess = |i: usize| {
        client
            .post(server.url("/api/feeds"))
            .bearer_auth(format!("wrong-{i}"))
            .json(&json!({"symbol":"DOGEUSDT"}))
            .send()
    };
    for i in 0..3 {
        assert_eq!(guess(i).await.unwrap().status().as_u16(), 401);
    }
    for i in 3..5 {
        let asked = std::time::Instant::now();
        let r = guess(i).await.unwrap();
        assert!(asked.elapsed() >= Duration::from_secs(1), "refusal {i} answered after {:?}", asked.elapsed());
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
    }
    let text = metrics(&server).await;
    assert!(metric(&text, "candlecast_refused_total{limit=\"key_admin\"}") >= 5.0, "{text}");
    // The right key is not refused (the delay is only ever on a 401).
    let ok = client
        .post(server.url("/api/feeds"))
        .bearer_auth("admin-secret")
        .json(&json!({"symbol":"DOGEUSDT"}))
        .send()
        .await
        .unwrap();
    assert_ne!(ok.status().as_u16(), 401);
}

/// Found by `make abuse`: wrong script keys were counted only in `scripts.refused_auths` and each wrote a
/// warn line (a log flood for anyone who can reach the endpoint); they are refused keys like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_script_keys_is_counted_as_key_script_and_its_log_lines_held_back() {
    let server = TestServer::start(&[("scripts.keys", keys(&["script-secret"]))]).await;
    let text = metrics(&server).await;
    let (refused, held) = (
        metric(&text, "candlecast_refused_total{limit=\"key_script\"}"),
        metric(&text, "candlecast_refused_key_logs_suppressed_total"),
    );
    let client = reqwest::Client::new();
    for i in 0..50 {
        let r = client
            .post(server.url("/api/trading-data"))
            .bearer_auth(format!("wrong-{i}"))
            .json(&json!({"trades_csv":"timestamp,symbol,side,quantity,price\n"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "candlecast_refused_total{limit=\"key_script\"}") - refused, 50.0, "{text}");
    assert!(metric(&text, "candlecast_refused_key_logs_suppressed_total") - held >= 49.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_cannot_take_every_slot_and_the_total_is_a_503() {
    let server = TestServer::start(&[
        ("jobs.trusted_proxies", keys(&["127.0.0.1"])),
        ("jobs.max_combinations_anonymous", Toml::Integer(100_000)),
        ("jobs.trader_keys", keys(&["key-a", "key-b"])),
        ("jobs.max_running", Toml::Integer(3)),
        ("jobs.max_running_anonymous", Toml::Integer(2)),
        ("jobs.threads", Toml::Integer(1)),
    ])
    .await;
    let mut started = Vec::new();
    for (key, host) in [(None, Some("10.0.0.1")), (None, Some("10.0.0.2"))] {
        let (status, _, v) = post(&server, "/api/optimize/start", long_grid(), key, host).await;
        assert_eq!(status, 202, "{v}");
        started.push((v["job_id"].as_str().unwrap().to_owned(), key, host));
    }
    // A third host finds the anonymous slots full (503: nothing it can do but wait) ...
    let (status, retry, v) = post(&server, "/api/optimize/start", long_grid(), None, Some("10.0.0.3")).await;
    assert_eq!(status, 503, "{v}");
    assert_limit(&v, "jobs_anonymous", "jobs.max_running_anonymous");
    assert_eq!(retry.as_deref(), Some("5"));
    // ... while a trader still gets the slot kept for keys, and then the total is reached.
    let (status, _, v) = post(&server, "/api/optimize/start", long_grid(), Some("key-a"), None).await;
    assert_eq!(status, 202, "{v}");
    started.push((v["job_id"].as_str().unwrap().to_owned(), Some("key-a"), None));
    let (status, _, v) = post(&server, "/api/optimize/start", long_grid(), Some("key-b"), None).await;
    assert_eq!(status, 503, "{v}");
    assert_limit(&v, "jobs_total", "jobs.max_running");
    for (id, key, host) in &started {
        let (status, _, v) = post(&server, &format!("/api/optimize/cancel/{id}"), json!({}), *key, *host).await;
        assert_eq!(status, 200, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_a_job_loads_is_paid_from_its_hosts_history_budget() {
    // A budget of 100 bars that refills at 1 bar a second: an hour of 1s bars spends it for 100 s.
    let server = TestServer::start(&[
        ("jobs.trusted_proxies", keys(&["127.0.0.1"])),
        ("http.history_burst_bars_per_host", Toml::Integer(100)),
        ("http.history_bars_per_second_per_host", Toml::Integer(1)),
    ])
    .await;
    let backtest = || json!({"strategy":"ema_cross","symbol":"BTCUSDT","interval":"1s"});
    let (a, b) = (Some("10.0.0.1"), Some("10.0.0.2"));
    let (status, _, first) = post(&server, "/api/backtest/run", backtest(), None, a).await;
    assert_eq!(status, 202, "{first}");
    let done = finished(&server, &format!("/api/backtest/results/{}", first["job_id"].as_str().unwrap())).await;
    assert!(done["result"]["bars"].as_u64().unwrap() > 100, "{done}");
    let loads = server.stats().await["jobs"]["history_loads"].as_u64().unwrap();
    let before = metric(&metrics(&server).await, "candlecast_refused_total{limit=\"history_bars_per_host\"}");
    // The host's next jobs are refused before they take a slot or read any history; an optimization too.
    let grid =
        json!({"symbol":"BTCUSDT","interval":"1s","strategy":"ema_cross","params":{"fast":[3,5]},"rank_by":"net_pnl"});
    for (path, body) in [("/api/backtest/run", backtest()), ("/api/optimize/start", grid)] {
        let (status, retry, v) = post(&server, path, body, None, a).await;
        assert_eq!(status, 429, "{v}");
        assert_eq!(v["error"], "history_bars_per_host", "{v}");
        assert!(v["detail"].as_str().unwrap().contains("history_bars_per_second_per_host"), "{v}");
        assert!(retry.unwrap().parse::<u64>().unwrap() > 1);
    }
    let stats = server.stats().await;
    assert_eq!(stats["jobs"]["history_loads"], loads, "refused jobs read no history: {}", stats["jobs"]);
    let after = metric(&metrics(&server).await, "candlecast_refused_total{limit=\"history_bars_per_host\"}");
    assert_eq!(after - before, 2.0);
    // Another host has its own budget.
    let (status, _, v) = post(&server, "/api/backtest/run", backtest(), None, b).await;
    assert_eq!(status, 202, "{v}");
}
