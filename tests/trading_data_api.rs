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
        json!([{"csv": "trades_csv", "line": 3, "reason": "quantity is not a finite number: \"zero\""}])
    );
    let r = http.post(server.url("/api/trading-data")).bearer_auth(KEY).body("not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let disabled = TestServer::start(&[]).await;
    let (status, body) = curl_upload(&disabled, Some("anything"), TRADES_CSV, MARKET_CSV);
    assert_eq!((status, body["error"].as_str()), (403, Some("scripts_disabled")), "{body}");
}

/// Poison values (1e308, inf, NaN, negative, overflowing text) are refused by line with a reason before
/// any bar sees them; a CSV of 100,000 columns is refused whole with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_values_and_oversized_csvs_are_refused_with_a_reason() {
    let server = server(&[]).await;
    let http = reqwest::Client::new();
    let trades = "timestamp,symbol,side,quantity,price\n\
        2023-01-01T10:00:00,POISON,BUY,1e308,1\n\
        2023-01-01T10:00:00,POISON,BUY,1e308,1\n\
        2023-01-01T10:00:00,POISON,BUY,inf,1\n\
        2023-01-01T10:00:00,POISON,BUY,NaN,1\n\
        2023-01-01T10:00:00,POISON,BUY,-3,1\n\
        2023-01-01T10:00:00,POISON,BUY,1,1e400\n";
    let market = "timestamp,symbol,open,high,low,close,volume\n\
        2023-01-01T10:00:00,POISON,1,1,1,1,1e300\n\
        2023-01-01T10:01:00,POISON,1,1e13,1,1,1\n\
        2023-01-01T10:02:00,POISON,1,1,1,1,-inf\n\
        2023-01-01T10:03:00,POISON,0,1,0,1,1\n";
    let r = http
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"trades_csv": trades, "market_data_csv": market}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["rejected"].as_u64()), (Some("error"), Some(10)), "{body}");
    let reasons: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e["csv"].as_str().unwrap(), e["line"], e["reason"].as_str().unwrap()))
        .collect();
    for want in [
        "market_data_csv 2 volume must be at most",
        "market_data_csv 3 high must be at most",
        "market_data_csv 4 volume is not a finite number",
        "market_data_csv 5 open must be above 0",
        "trades_csv 2 quantity must be at most",
        "trades_csv 3 quantity must be at most",
        "trades_csv 4 quantity is not a finite number",
        "trades_csv 5 quantity is not a finite number",
        "trades_csv 6 quantity must be above 0",
        "trades_csv 7 price is not a finite number",
    ] {
        assert!(reasons.iter().any(|r| r.starts_with(want)), "{want}: {reasons:?}");
    }
    let (status, hist) = server.get_json("/api/historical/POISON?interval=1m&limit=20").await;
    assert!(status == 404 || hist["data"].as_array().is_some_and(Vec::is_empty), "no bar: {status} {hist}");
    let (_, kept) = server.get_json("/api/trades?symbol=POISON").await;
    assert_eq!(kept["trades"], json!([]));

    let mut wide = String::from("timestamp,symbol,side,quantity,price");
    for i in 0..100_000 {
        wide.push_str(&format!(",c{i}"));
    }
    wide.push_str("\n2023-01-01T10:00:00,AAPL,BUY,1,1\n");
    let r = http
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"trades_csv": wide, "market_data_csv": MARKET_CSV}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["limit"].as_str()),
        (Some("too_many_columns"), Some("scripts.max_csv_columns")),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("more than the 64 columns"), "{body}");
    let (_, aapl) = server.get_json("/api/trades?symbol=AAPL").await;
    assert_eq!(aapl["trades"], json!([]), "nothing of a refused upload is kept");
    assert_eq!(server.stats().await["scripts"]["refused_csv_columns"], 1);
    let m = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(m.contains("candlecast_refused_total{limit=\"scripts.max_csv_columns\"} 1"), "{m}");
}

/// Beyond max_csv_rows the upload is refused whole, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csvs_over_the_row_limit_are_refused_whole() {
    let server = server(&[("scripts.max_csv_rows", Toml::Integer(3))]).await;
    let rows = "2023-01-01T10:00:00,AAPL,BUY,1,1\n".repeat(4);
    let r = reqwest::Client::new()
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"trades_csv": format!("timestamp,symbol,side,quantity,price\n{rows}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["limit"].as_str()), (Some("too_many_rows"), Some("scripts.max_csv_rows")));
}

/// Executed trades may name any valid symbol without creating it: the symbols they name are bounded
/// (`scripts.max_trade_symbols`), or `max_trades_per_symbol` x symbols would grow without end. Rows of a
/// further symbol are refused with the limit named, counted in /metrics; the others are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executed_trades_name_a_bounded_number_of_symbols() {
    let server = server(&[("scripts.max_trade_symbols", Toml::Integer(2))]).await;
    let rows: String = ["AAA", "BBB", "CCC", "AAA", "DDD"]
        .iter()
        .enumerate()
        .map(|(i, s)| format!("2023-01-01T10:0{i}:00,{s},BUY,1,100\n"))
        .collect();
    let r = reqwest::Client::new()
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"trades_csv": format!("timestamp,symbol,side,quantity,price\n{rows}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["trades"].as_u64(), body["rejected"].as_u64()),
        (Some("partial"), Some(3), Some(2)),
        "{body}"
    );
    assert!(body.to_string().contains("scripts.max_trade_symbols"), "the limit is named: {body}");
    let (_, trades) = server.get_json("/api/trades?limit=100").await;
    let mut symbols: Vec<String> =
        trades["trades"].as_array().unwrap().iter().map(|t| t["symbol"].as_str().unwrap().to_owned()).collect();
    symbols.sort();
    assert_eq!(symbols, ["AAA", "AAA", "BBB"], "{trades}");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("candlecast_refused_total{limit=\"scripts.max_trade_symbols\"} 2"), "{metrics}");
}

/// Indicator values are bounded in total: rows whose values do not fit are refused with the limit named,
/// the others kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_values_are_bounded_in_total() {
    let server = server(&[("scripts.max_indicator_values", Toml::Integer(3))]).await;
    let r = reqwest::Client::new()
        .post(server.url("/api/trading-data"))
        .bearer_auth(KEY)
        .json(&json!({"market_data_csv": MARKET_CSV}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["market_data"].as_u64()), (Some("partial"), Some(1)), "{body}");
    assert_eq!(body["errors"][0]["line"], 3, "{body}");
    assert!(body["errors"][0]["reason"].as_str().unwrap().contains("max_indicator_values"), "{body}");
}

const RESTART_TRADES: &str = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n2023-01-01T10:00:00,SCRIPTX,BUY,2,10.5,,keep me\n2023-01-01T10:02:00,SCRIPTX,SELL,2,11,1,keep me\n";
const RESTART_MARKET: &str = "timestamp,symbol,open,high,low,close,volume\n2023-01-01T10:00:00,SCRIPTX,10,11,9,10.5,100\n2023-01-01T10:01:00,SCRIPTX,10.5,12,10,11.5,200\n2023-01-01T10:02:00,SCRIPTX,11.5,12,11,11,300\n";

/// Closes of SCRIPTX's 1m bars from 2023-01-01T10:00 on, as `/api/historical` serves them.
async fn scriptx_closes(server: &TestServer) -> (u16, Vec<f64>) {
    let (status, body) = server.get_json("/api/historical/SCRIPTX?interval=1m&start_time=1672567200000&limit=10").await;
    let closes = body["data"].as_array().map(|a| a.iter().filter_map(|b| b["close"].as_f64()).collect());
    (status, closes.unwrap_or_default())
}

/// Issue 17, item 3: a script-created symbol, its bars and its executed trades are in the store, so the
/// real binary serves them again after a restart on the same data directory, and the symbol budget
/// counts the restored symbols. Item 4: executed trades reach `/ws` charts of the symbol live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_data_survives_a_restart_and_markers_arrive_live() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())]));
    let mut first = TestServer::start_process_in(dir.path(), std::slice::from_ref(&keys)).await;
    let (status, body) = curl_upload(&first, Some(KEY), "timestamp,symbol,side,quantity,price\n", RESTART_MARKET);
    assert_eq!((status, body["market_data"].as_u64()), (200, Some(3)), "{body}");

    // A chart of the new symbol, then the trades: their markers arrive over the chart's own connection.
    let mut chart = common::Client::connect(&first).await;
    assert_eq!(chart.subscribe(&["SCRIPTX"], "1m").await["type"], "subscribed");
    let (status, body) =
        curl_upload(&first, Some(KEY), RESTART_TRADES, "timestamp,symbol,open,high,low,close,volume\n");
    assert_eq!((status, body["trades"].as_u64()), (200, Some(2)), "{body}");
    let marker = chart.next_of("trade_marker", 30).await;
    assert_eq!(marker["symbol"], "SCRIPTX");
    assert_eq!(
        marker["data"],
        json!({"timestamp": 1_672_567_200_000_i64, "symbol": "SCRIPTX", "side": "BUY", "quantity": 2.0, "price": 10.5, "profit_loss": null, "strategy": "keep me"})
    );
    assert_eq!(chart.next_of("trade_marker", 30).await["data"]["side"], "SELL");
    assert_eq!(scriptx_closes(&first).await, (200, vec![10.5, 11.5, 11.0]));
    drop(chart);
    first.terminate();

    // Same directory, one script symbol allowed: SCRIPTX is back and uses that one.
    let budget = ("scripts.max_script_symbols", Toml::Integer(1));
    let again = TestServer::start_process_in(dir.path(), &[keys.clone(), budget]).await;
    let (_, symbols) = again.get_json("/api/symbols").await;
    let details = symbols["details"].as_array().cloned().unwrap_or_default();
    assert!(
        details.iter().any(|d| d["symbol"] == "SCRIPTX" && d["source"] == "script"),
        "restored before the server listened: {symbols}"
    );
    assert_eq!(scriptx_closes(&again).await, (200, vec![10.5, 11.5, 11.0]), "its bars, from the store");
    let (_, trades) = again.get_json("/api/trades?symbol=SCRIPTX").await;
    let sides: Vec<&str> = trades["trades"].as_array().unwrap().iter().filter_map(|t| t["side"].as_str()).collect();
    assert_eq!(sides, ["BUY", "SELL"], "{trades}");
    assert_eq!(trades["trades"][1]["profit_loss"], 1.0);
    let mut chart = common::Client::connect(&again).await;
    assert_eq!(chart.subscribe(&["SCRIPTX"], "1m").await["type"], "subscribed", "the symbol is known to /ws");
    let (status, body) = curl_upload(
        &again,
        Some(KEY),
        "timestamp,symbol,side,quantity,price\n",
        "timestamp,symbol,open,high,low,close,volume\n2023-01-01T10:00:00,SCRIPTY,1,1,1,1,1\n",
    );
    assert_eq!((status, body["market_data"].as_u64()), (200, Some(0)), "{body}");
    assert!(body["errors"][0]["reason"].as_str().unwrap_or("").contains("max_script_symbols"), "{body}");
}
