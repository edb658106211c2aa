//! Script data over REST: seed 003's `curl -F` upload to `POST /api/trading-data` (run with the real
//! curl), JSON bodies, keys, size limits, per-row errors, `GET /api/trades`, and the Socket.IO
//! dashboards that see what was posted.

mod common;

use std::process::Command;

use common::clients::ClientProcess;
use common::{TestServer, Toml};
use serde_json::{json, Value};

const KEY: &str = "rest-key";

const TRADES_CSV: &str = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n2023-01-01T10:05:00,TSLA,SELL,50,800.00,-15.25,Three Red Bodies\n";
const MARKET_CSV: &str = "timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n2023-01-01T10:00:00,AAPL,149.50,151.00,149.00,150.00,50000,65.5,0.75\n2023-01-01T10:05:00,TSLA,799.00,805.00,795.00,800.00,25000,45.2,0.85\n";

async fn server(extra: &[(&str, Toml)]) -> TestServer {
    let mut overrides = vec![("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())]))];
    overrides.extend(extra.iter().cloned());
    TestServer::start(&overrides).await
}

/// Seed 003's command, plus the key: `curl -X POST .../api/trading-data -F "trades_csv=@trades.csv" -F "market_data_csv=@market_data.csv"`.
fn curl_upload(server: &TestServer, key: Option<&str>, trades: &str, market: &str) -> (u16, Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trades.csv"), trades).unwrap();
    std::fs::write(dir.path().join("market_data.csv"), market).unwrap();
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir.path()).args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        &server.url("/api/trading-data"),
        "-F",
        "trades_csv=@trades.csv",
        "-F",
        "market_data_csv=@market_data.csv",
    ]);
    if let Some(k) = key {
        cmd.args(["-H", &format!("Authorization: Bearer {k}")]);
    }
    let out = cmd.output().expect("curl is installed (scripts/test.sh installs it)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {body}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_curl_upload_is_kept_and_reaches_dashboards() {
    let server = server(&[]).await;
    let url = format!("http://{}", server.addr);
    let mut dashboard = ClientProcess::node(&["dashboard", &url, "-", "BTCUSDT"]);
    dashboard.next_event("ready", 60).await;
    let (status, body) = curl_upload(&server, Some(KEY), TRADES_CSV, MARKET_CSV);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["trades"].as_u64(), body["market_data"].as_u64(), body["rejected"].as_u64()),
        (Some("success"), Some(2), Some(2), Some(0)),
        "{body}"
    );
    let update = dashboard.next_event("trading_update", 30).await;
    assert_eq!(update["trades_csv"], TRADES_CSV);
    assert_eq!(update["market_data_csv"], MARKET_CSV);

    let (status, trades) = server.get_json("/api/trades?symbol=aapl").await;
    assert_eq!(status, 200);
    assert_eq!(trades["symbol"], "AAPL");
    assert_eq!(
        trades["trades"],
        json!([{"timestamp": 1_672_567_200_000_i64, "time": "2023-01-01T10:00:00.000Z", "symbol": "AAPL", "side": "BUY", "quantity": 100.0, "price": 150.0, "profit_loss": 25.5, "strategy": "Three Red Bodies"}])
    );
    let (_, all) = server.get_json("/api/trades?limit=1").await;
    assert_eq!(all["trades"].as_array().unwrap().len(), 1);
    assert_eq!(all["trades"][0]["symbol"], "TSLA", "the newest of every symbol");
    let (status, bad) = server.get_json("/api/trades?limit=0").await;
    assert_eq!((status, bad["parameter"].as_str()), (400, Some("limit")));

    // 2023 rows are old, closed 1m bars (single rows per symbol: 1m), with their indicator columns.
    let (_, hist) = server.get_json("/api/historical/TSLA?interval=1m&end_time=1672567600000&limit=1").await;
    assert_eq!(hist["data"][0]["timestamp"], 1_672_567_500_000_i64, "{hist}");
    assert_eq!(hist["data"][0]["indicators"], json!({"rsi": 45.2, "signal_strength": 0.85}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sizes_and_bad_rows() {
    let server = server(&[("scripts.max_upload_bytes", Toml::Integer(4096))]).await;
    for key in [None, Some("wrong")] {
        let (status, body) = curl_upload(&server, key, TRADES_CSV, MARKET_CSV);
        assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{key:?}: {body}");
    }
    assert_eq!(server.stats().await["scripts"]["refused_auths"], 2);
    let (status, body) = curl_upload(&server, Some(KEY), &TRADES_CSV.repeat(40), MARKET_CSV);
    assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("4096-byte limit"));

    let http = reqwest::Client::new();
    let bad =
        "timestamp,symbol,side,quantity,price\n2023-01-01T10:00:00,AAPL,BUY,1,1\n2023-01-01T10:01:00,AAPL,BUY,zero,1\n";
    let r = http
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"trades_csv": bad, "timestamp": "t1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["trades"].as_u64(), body["timestamp"].as_str()),
        (Some("partial"), Some(1), Some("t1"))
    );
    assert_eq!(
        body["errors"],
        json!([{"csv": "trades_csv", "line": 3, "reason": "quantity is not a number: \"zero\""}])
    );
    let r = http.post(server.url("/api/trading-data")).bearer_auth(KEY).body("not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let disabled = TestServer::start(&[]).await;
    let (status, body) = curl_upload(&disabled, Some("anything"), TRADES_CSV, MARKET_CSV);
    assert_eq!((status, body["error"].as_str()), (403, Some("scripts_disabled")), "{body}");
}
