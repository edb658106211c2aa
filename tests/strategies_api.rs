//! Seed 002's strategy API: catalogue, backtest jobs, optimization jobs with progress and cancel, and
//! 400s that name what is wrong.

mod common;

use std::time::Duration;

use candlecast_actors::model::{Bar, Interval};
use candlecast_actors::strategy::build_strategy;
use candlecast_actors::strategy::{run_backtest, BacktestConfig};
use common::TestServer;
use serde_json::{json, Value};

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(server.url(path)).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls a job until it leaves "running".
async fn finished(server: &TestServer, path: &str) -> Value {
    for _ in 0..600 {
        let (status, v) = server.get_json(path).await;
        assert_eq!(status, 200, "{v}");
        if v["status"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job at {path} never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_job_equals_the_same_backtest_run_here() {
    let server = TestServer::start(&[]).await;
    let (_, catalog) = server.get_json("/api/strategies").await;
    let names: Vec<&str> =
        catalog["strategies"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"ema_cross") && names.contains(&"rsi_reversion"), "{names:?}");

    // A fixed, fully closed range of bars, fetched the way charts do.
    let (_, hist) = server.get_json("/api/historical/BTCUSDT?interval=1m&limit=600").await;
    let data = hist["data"].as_array().unwrap();
    let (start, end) = (data[0]["timestamp"].as_i64().unwrap(), data[data.len() - 2]["timestamp"].as_i64().unwrap());
    let (_, hist) = server
        .get_json(&format!("/api/historical/BTCUSDT?interval=1m&limit=5000&start_time={start}&end_time={end}"))
        .await;
    let bars: Vec<Bar> = hist["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| Bar {
            symbol: "BTCUSDT".into(),
            interval: Interval::M1,
            open_time: b["timestamp"].as_i64().unwrap(),
            open: b["open"].as_f64().unwrap(),
            high: b["high"].as_f64().unwrap(),
            low: b["low"].as_f64().unwrap(),
            close: b["close"].as_f64().unwrap(),
            volume: b["volume"].as_f64().unwrap(),
            trades: b["trades"].as_u64().unwrap(),
            closed: b["closed"].as_bool().unwrap(),
        })
        .collect();
    let params = json!({"fast": 5, "slow": 20});
    let config = BacktestConfig { fee_bps: 5.0, allow_short: true, ..Default::default() };
    let local = run_backtest(build_strategy("ema_cross", &params).unwrap(), &bars, &config).unwrap();

    let (status, started) = post(
        &server,
        "/api/backtest/run",
        json!({"strategy":"ema_cross","params":params,"symbol":"BTCUSDT","interval":"1m","start_time":start,"end_time":end,"config":{"fee_bps":5.0,"allow_short":true}}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let job = finished(&server, &format!("/api/backtest/results/{}", started["job_id"].as_str().unwrap())).await;
    assert_eq!(job["status"], "done", "{job}");
    let result = &job["result"];
    assert_eq!(result["bars"], bars.len());
    assert_eq!(result["trades"].as_array().unwrap().len(), local.trades.len());
    assert_eq!(result["signals"].as_array().unwrap().len(), local.signals.len());
    assert_eq!(
        result["metrics"],
        serde_json::to_value(local.metrics).unwrap(),
        "same metrics as a local run over the same bars"
    );
    assert_eq!(result["equity"].as_array().unwrap().len(), local.equity.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimization_ranks_reports_progress_and_cancels() {
    // The large grid below is beyond the anonymous budget: it runs with a trader key.
    let server = TestServer::start(&[("jobs.trader_keys", common::Toml::String("t-key".into()))]).await;
    let (status, started) = post(
        &server,
        "/api/optimize/start",
        json!({"symbol":"ETHUSDT","interval":"1m","strategy":"ema_cross","params":{"fast":[3,5,8],"slow":{"start":10,"end":30,"step":10}},"rank_by":"net_pnl"}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["combinations"], 9);
    let id = started["job_id"].as_str().unwrap().to_owned();
    let status = finished(&server, &format!("/api/optimize/status/{id}")).await;
    assert_eq!((status["status"].as_str(), status["progress"].as_f64()), (Some("done"), Some(100.0)));
    let (_, results) = server.get_json(&format!("/api/optimize/results/{id}")).await;
    let ranked = results["result"]["results"].as_array().unwrap();
    assert_eq!(ranked.len(), 9);
    let scores: Vec<f64> = ranked.iter().map(|r| r["score"].as_f64().unwrap_or(f64::NEG_INFINITY)).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked best first: {scores:?}");
    assert_eq!(ranked[0]["rank"], 1);

    // A large grid, cancelled: it stops well before the end.
    let keyed =
        |path: &str, body: Value| reqwest::Client::new().post(server.url(path)).bearer_auth("t-key").json(&body).send();
    let started: Value = keyed(
        "/api/optimize/start",
        json!({"symbol":"ETHUSDT","interval":"1s","strategy":"ema_cross","params":{"fast":{"start":2,"end":59,"step":1},"slow":{"start":61,"end":400,"step":1}},"rank_by":"sharpe"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = started["job_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = keyed(&format!("/api/optimize/cancel/{id}"), json!({})).await.unwrap().status().as_u16();
    assert_eq!(status, 200);
    let done = finished(&server, &format!("/api/optimize/status/{id}")).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["done"].as_u64().unwrap() < done["total"].as_u64().unwrap(), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400s_that_say_why() {
    let server = TestServer::start(&[]).await;
    let table = [
        ("/api/backtest/run", json!({"strategy":"moon","symbol":"BTCUSDT"}), 400, "moon"),
        ("/api/backtest/run", json!({"strategy":"ema_cross","params":{"fats":5},"symbol":"BTCUSDT"}), 400, "fats"),
        ("/api/backtest/run", json!({"strategy":"ema_cross","params":{"fast":"five"},"symbol":"BTCUSDT"}), 400, "fast"),
        ("/api/backtest/run", json!({"strategy":"ema_cross","params":{"fast":-3},"symbol":"BTCUSDT"}), 400, "fast"),
        (
            "/api/backtest/run",
            json!({"strategy":"ema_cross","symbol":"BTCUSDT","config":{"fee_bps":-1}}),
            400,
            "fee_bps",
        ),
        ("/api/backtest/run", json!({"strategy":"ema_cross","symbol":"NOPE"}), 404, "NOPE"),
        ("/api/backtest/run", json!({"strategy":"ema_cross","symbol":"BTCUSDT","interval":"2d"}), 400, "interval"),
        (
            "/api/optimize/start",
            json!({"symbol":"BTCUSDT","strategy":"ema_cross","params":{"fast":[1,2]},"rank_by":"vibes"}),
            400,
            "vibes",
        ),
        (
            "/api/optimize/start",
            json!({"symbol":"BTCUSDT","strategy":"ema_cross","params":{"fast":{"start":1,"end":1000,"step":1},"slow":{"start":2,"end":1000,"step":1}},"rank_by":"net_pnl"}),
            400,
            "limit",
        ),
    ];
    for (path, body, code, needle) in table {
        let (status, v) = post(&server, path, body.clone()).await;
        assert_eq!(status, code, "{body} -> {v}");
        assert!(v["detail"].as_str().unwrap().contains(needle), "{body} -> {v}");
    }
    let (status, _) = server.get_json("/api/backtest/results/bt-nope").await;
    assert_eq!(status, 404);
    let r = reqwest::Client::new()
        .post(server.url("/api/backtest/run"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_strategies_start_and_stop_behind_the_admin_key() {
    let server =
        TestServer::start(&[("admin.keys", common::Toml::Array(vec![common::Toml::String("k3y".into())]))]).await;
    let client = reqwest::Client::new();
    let spec = json!({"strategy":"rsi_reversion","symbol":"ETHUSDT","interval":"1m","params":{"period":7}});
    let r = client.post(server.url("/api/strategies/live")).json(&spec).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "no key");
    let r = client.post(server.url("/api/strategies/live")).bearer_auth("wrong").json(&spec).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "wrong key");
    let r = client
        .post(server.url("/api/strategies/live"))
        .bearer_auth("k3y")
        .json(&json!({"strategy":"moon","symbol":"ETHUSDT","interval":"1m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client.post(server.url("/api/strategies/live")).bearer_auth("k3y").json(&spec).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let started: Value = r.json().await.unwrap();
    let id = started["id"].as_u64().unwrap();
    let (_, list) = server.get_json("/api/strategies/live").await;
    assert!(
        list["strategies"].as_array().unwrap().iter().any(|s| s["id"] == id && s["strategy"] == "rsi_reversion"),
        "{list}"
    );
    let r = client.delete(server.url(&format!("/api/strategies/live/{id}"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client.delete(server.url(&format!("/api/strategies/live/{id}"))).bearer_auth("k3y").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client.delete(server.url(&format!("/api/strategies/live/{id}"))).bearer_auth("k3y").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(server.stats().await["admin_refused"].as_u64().unwrap() >= 3);
}
