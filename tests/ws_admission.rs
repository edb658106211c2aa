//! Who may open `/ws`, and how much one host may hold: the origin check, per-host and total budgets of
//! connections and handshakes, indicator stream budgets, and warm-ups that never stall the market.

mod common;

use common::{Client, TestServer, Toml};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

/// The outcome of an upgrade with `origin`: a client, or the refusal's status and JSON body.
async fn open(server: &TestServer, origin: Option<&str>) -> Result<Client, (u16, Value)> {
    let mut request = server.ws_url().into_client_request().expect("request");
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().expect("header value"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(WsError::Http(resp)) => {
            let body = resp.body().as_deref().map(|b| serde_json::from_slice(b).expect("JSON error body"));
            Err((resp.status().as_u16(), body.unwrap_or(Value::Null)))
        }
        Err(e) => panic!("upgrade failed in an unexpected way: {e}"),
    }
}

/// The connection still answers.
async fn alive(c: &mut Client) {
    c.send(json!({"type": "ping", "id": "alive"})).await;
    assert_eq!(c.next_of("pong", 10).await["id"], "alive");
}

async fn refused_count(server: &TestServer, limit: &str) -> u64 {
    server.stats().await["refused"][limit].as_u64().unwrap_or(0)
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.expect("metrics").text().await.expect("text")
}

fn limited(extra: &[(&'static str, Toml)]) -> Vec<(&'static str, Toml)> {
    // The test clients come from 127.0.0.1, exempt by default: here they are an ordinary host.
    let mut layers = vec![("ws.unlimited_hosts", Toml::Array(vec![]))];
    layers.extend(extra.iter().cloned());
    layers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_upgrades_are_refused_same_origin_listed_and_originless_pass() {
    let server =
        TestServer::start(&[("ws.allowed_origins", Toml::Array(vec![Toml::String("https://app.example".into())]))])
            .await;
    let (status, body) = open(&server, Some("https://evil.example")).await.err().expect("cross-origin refused");
    assert_eq!(status, 403);
    assert_eq!(body["error"], "ws_origin", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("https://evil.example"), "{body}");
    // Another port of the same host is another origin.
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    assert_eq!(open(&server, Some(&other_port)).await.err().map(|e| e.0), Some(403));

    let same = format!("http://{}", server.addr);
    for origin in [None, Some(same.as_str()), Some("https://app.example")] {
        let mut c = open(&server, origin).await.unwrap_or_else(|e| panic!("{origin:?} refused: {e:?}"));
        alive(&mut c).await;
    }
    assert!(refused_count(&server, "ws_origin").await >= 2);
    assert!(metrics(&server).await.contains(r#"candlecast_refused_total{limit="ws_origin"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_over_its_connection_limit_is_refused_and_its_first_connections_keep_working() {
    let server = TestServer::start(&limited(&[("ws.max_connections_per_host", Toml::Integer(3))])).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(open(&server, None).await.expect("within the limit"));
    }
    let (status, body) = open(&server, None).await.err().expect("the fourth is refused");
    assert_eq!(status, 429);
    assert_eq!(body["error"], "ws_connections_per_host", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("max_connections_per_host"), "{body}");
    for c in &mut first {
        alive(c).await;
    }
    assert!(metrics(&server).await.contains(r#"candlecast_refused_total{limit="ws_connections_per_host"}"#));

    // A closed connection gives its place back (the server notices the close asynchronously).
    let mut closing = first.pop().expect("three");
    closing.ws.close(None).await.expect("close");
    drop(closing);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(c) = open(&server, None).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    alive(&mut again.expect("a place again after a close")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_per_host_are_rate_limited_and_the_total_is_bounded() {
    let server = TestServer::start(&limited(&[
        ("ws.max_handshakes_per_second_per_host", Toml::Integer(1)),
        ("ws.max_connections", Toml::Integer(1000)),
    ]))
    .await;
    // One handshake a second with bursts of one: of back-to-back attempts, one is refused soon.
    let mut kept = Vec::new();
    let mut refusal = None;
    for _ in 0..50 {
        match open(&server, None).await {
            Ok(c) => kept.push(c),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let (status, body) = refusal.expect("a refused handshake");
    assert_eq!(status, 429);
    assert_eq!(body["error"], "ws_handshakes_per_host", "{body}");
    for c in &mut kept {
        alive(c).await;
    }
    drop(kept);

    // The total: loopback is exempt from the per-host limits, never from the total.
    let server = TestServer::start(&[("ws.max_connections", Toml::Integer(2))]).await;
    let mut a = open(&server, None).await.expect("first");
    let mut b = open(&server, None).await.expect("second");
    let (status, body) = open(&server, None).await.err().expect("over the total");
    assert_eq!((status, body["error"].as_str()), (503, Some("ws_connections")), "{body}");
    alive(&mut a).await;
    alive(&mut b).await;
}

fn ema(period: u64) -> Value {
    json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"ema","params":{"period":period},"history":5})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_streams_are_budgeted_per_connection_per_host_and_in_computations() {
    let server = TestServer::start(&limited(&[
        ("ws.max_indicator_streams_per_client", Toml::Integer(2)),
        ("ws.max_indicator_streams_per_host", Toml::Integer(3)),
        ("ws.max_indicator_computations", Toml::Integer(4)),
        // The counts below include unwatched computations: no sweep may drop them during the test.
        ("ws.unwatched_indicator_sweep_secs", Toml::Integer(3600)),
    ]))
    .await;
    let mut a = Client::connect(&server).await;
    for period in [5, 6] {
        a.send(ema(period)).await;
        a.next_of("indicator_history", 20).await;
    }
    a.send(ema(7)).await;
    let err = a.next_of("error", 10).await;
    assert_eq!(err["code"], "too_many_subscriptions");
    assert!(err["message"].as_str().unwrap().contains("indicator_streams_per_client"), "{err}");
    // Subscribing again to a stream it holds is no new stream.
    a.send(ema(5)).await;
    a.next_of("indicator_history", 20).await;

    let mut b = Client::connect(&server).await;
    b.send(ema(5)).await;
    b.next_of("indicator_history", 20).await;
    b.send(ema(6)).await;
    let err = b.next_of("error", 10).await;
    assert!(err["message"].as_str().unwrap().contains("indicator_streams_per_host"), "{err}");

    // Unsubscribing gives the place back; distinct computations are bounded whoever asks.
    a.send(json!({"type":"unsubscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"ema","params":{"period":6}})).await;
    a.next_of("unsubscribed_indicator", 10).await;
    let bollinger = |k: f64| json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"bollinger","params":{"period":20,"k":k},"history":5});
    a.send(bollinger(2.0000001)).await;
    let history = a.next_of("indicator_history", 20).await;
    assert_eq!(history["params"]["k"], json!(2.0), "floats are rounded: {history}");
    b.send(json!({"type":"unsubscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"ema","params":{"period":5}})).await;
    b.next_of("unsubscribed_indicator", 10).await;
    b.send(bollinger(2.0)).await;
    b.next_of("indicator_history", 20).await;
    // ema 5, ema 6 (unwatched, kept until the sweep) and bollinger k=2: three computations.
    assert_eq!(server.stats().await["indicator_computations"], 3);

    // a gives its places back: the host's only stream is b's.
    a.send(json!({"type":"unsubscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"ema","params":{"period":5}})).await;
    a.next_of("unsubscribed_indicator", 10).await;
    a.send(json!({"type":"unsubscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"bollinger","params":{"period":20,"k":2}})).await;
    a.next_of("unsubscribed_indicator", 10).await;
    let mut c = Client::connect(&server).await;
    c.send(ema(8)).await;
    c.next_of("indicator_history", 20).await;
    c.send(ema(9)).await;
    let err = c.next_of("error", 10).await;
    assert_eq!(err["code"], "too_many_subscriptions");
    assert!(err["message"].as_str().unwrap().contains("indicator_computations"), "{err}");
    assert!(refused_count(&server, "indicator_computations").await >= 1);
    let text = metrics(&server).await;
    for limit in ["indicator_streams_per_client", "indicator_streams_per_host", "indicator_computations"] {
        assert!(text.contains(&format!(r#"candlecast_refused_total{{limit="{limit}"}}"#)), "{limit}");
    }
    alive(&mut a).await;
}

/// Found by `make abuse`: connections that asked for many computations and were closed left them running,
/// each previewing every partial bar of its topic for nobody, until a sweep once a minute (a tenth of a core
/// for 256 of them). They are now dropped at the next sweep after their last subscriber leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computations_nobody_watches_any_more_are_dropped_at_the_next_sweep() {
    let server = TestServer::start(&[
        ("ws.unwatched_indicator_sweep_secs", Toml::Integer(1)),
        ("ws.max_indicator_streams_per_client", Toml::Integer(10)),
    ])
    .await;
    let mut gone = Client::connect(&server).await;
    for period in 2..8 {
        gone.send(ema(period)).await;
        gone.next_of("indicator_history", 20).await;
    }
    let mut stays = Client::connect(&server).await;
    stays.send(ema(2)).await;
    stays.next_of("indicator_history", 20).await;
    assert_eq!(server.stats().await["indicator_computations"], 6);
    drop(gone);
    let mut left = None;
    for _ in 0..600 {
        left = server.stats().await["indicator_computations"].as_u64();
        if left == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, Some(1), "only the computation still watched is left");
    // And it still delivers.
    stays.next_of("indicator", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_keep_coming_while_many_indicator_warmups_run() {
    let server = TestServer::start(&[
        ("ws.max_concurrent_warmups", Toml::Integer(2)),
        ("ws.max_indicator_streams_per_client", Toml::Integer(20)),
    ])
    .await;
    let mut watcher = Client::connect(&server).await;
    watcher.subscribe(&["ETHUSDT"], "1s").await;

    // 60 distinct computations over three connections, all asked for at once.
    let mut askers = Vec::new();
    for conn in 0..3u64 {
        let mut c = Client::connect(&server).await;
        for i in 0..20u64 {
            let period = 2 + conn * 20 + i;
            c.send(json!({"type":"subscribe_indicator","trading_pair":"BTCUSDT","interval":"1s","indicator":"sma","params":{"period":period},"history":1000})).await;
        }
        askers.push(c);
    }
    // Closed bars of the watched topic keep arriving meanwhile: three bars in a row.
    let mut closed = std::collections::BTreeSet::new();
    while closed.len() < 3 {
        let update = watcher.next_of("price_update", 30).await;
        if update["data"]["closed"] == true {
            closed.insert(update["data"]["timestamp"].as_i64().expect("timestamp"));
        }
    }
    // And every warm-up ends with its history.
    for c in &mut askers {
        for _ in 0..20 {
            c.next_of("indicator_history", 120).await;
        }
    }
    assert_eq!(server.stats().await["indicator_computations"], 60);
}

/// Found by `make abuse`: cross-origin upgrades (and upgrades over a host's budget) were refused at once,
/// thousands a second, and the refusals became the load (healthy clients' p99 1.33×). A host past its free
/// refusals gets each further one late, unchanged; its other requests are answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_keeps_being_refused_gets_its_refusals_late_and_its_other_requests_at_once() {
    let server = TestServer::start(&[
        ("http.refusals_free_per_10s", Toml::Integer(3)),
        ("http.refusal_delay_ms", Toml::Integer(5000)),
        // The test comes from loopback, which is exempt by default.
        ("http.unlimited_hosts", Toml::Array(vec![])),
    ])
    .await;
    for _ in 0..3 {
        assert_eq!(open(&server, Some("https://evil.example")).await.err().map(|e| e.0), Some(403));
    }
    let asked = std::time::Instant::now();
    let late = {
        let server_url = server.ws_url();
        tokio::spawn(async move {
            let mut request = server_url.into_client_request().expect("request");
            request.headers_mut().insert("Origin", "https://evil.example".parse().expect("header value"));
            match tokio_tungstenite::connect_async(request).await {
                Err(WsError::Http(resp)) => resp.status().as_u16(),
                other => panic!("not refused: {:?}", other.map(|_| ())),
            }
        })
    };
    // Meanwhile the same host's ordinary requests are answered: the delay holds the one refused connection.
    let mut c = open(&server, None).await.expect("a same-host upgrade without Origin");
    alive(&mut c).await;
    assert_eq!(server.get_json("/api/price/BTCUSDT").await.0, 200);
    assert!(!late.is_finished(), "the refusal came back before the host's other requests");
    assert_eq!(late.await.expect("task"), 403, "the late answer is the same refusal");
    assert!(asked.elapsed() >= std::time::Duration::from_secs(5), "answered after {:?}", asked.elapsed());
    assert!(refused_count(&server, "ws_origin").await >= 4);
}
