//! Socket.IO's budgets against the attacks they answer, with a plain HTTP client: a never-polling client
//! flooding pings or events, too many sessions from one host or in total.

mod common;

use std::time::Duration;

use common::{TestServer, Toml};
use serde_json::Value;

const KEY: &str = "limits-key";
/// The smallest outbound budget the config allows, so floods reach it quickly.
const QUEUE_BYTES: u64 = 65_536;

async fn server(extra: &[(&str, Toml)]) -> TestServer {
    let mut overrides = vec![
        ("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())])),
        ("scripts.outbound_queue_bytes", Toml::Integer(QUEUE_BYTES as i64)),
    ];
    overrides.extend(extra.iter().cloned());
    TestServer::start(&overrides).await
}

fn base(server: &TestServer) -> String {
    format!("http://{}/socket.io/?EIO=4&transport=polling", server.addr)
}

/// Opens a polling session; its id, or the refusal (status and JSON body).
async fn handshake(http: &reqwest::Client, server: &TestServer) -> Result<String, (u16, Value)> {
    let r = http.get(base(server)).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    if status != 200 {
        return Err((status, serde_json::from_str(&body).unwrap_or(Value::String(body))));
    }
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
    Ok(open["sid"].as_str().unwrap().to_owned())
}

async fn post(http: &reqwest::Client, server: &TestServer, sid: &str, body: String) -> (u16, String) {
    let r = http.post(format!("{}&sid={sid}", base(server))).body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap()
}

/// Waits until no Socket.IO session is left.
async fn no_sessions(server: &TestServer) -> Value {
    for _ in 0..600 {
        let scripts = server.stats().await["scripts"].clone();
        if scripts["socketio_sessions"]["polling"] == 0 && scripts["socketio_sessions"]["websocket"] == 0 {
            return scripts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions never ended: {}", server.stats().await["scripts"]);
}

/// The reviewer's attack: connect, then POST half a million pings and never poll. Engine.IO 4 clients do
/// not ping (the server does), so the first ping closes the session; nothing is queued for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_never_polling_client_closes_its_session() {
    let server = server(&[]).await;
    let http = reqwest::Client::new();
    let sid = handshake(&http, &server).await.unwrap();
    assert_eq!(post(&http, &server, &sid, "40".into()).await.0, 200);
    let flood = vec!["2"; 499_000].join("\u{1e}");
    let (status, body) = post(&http, &server, &sid, flood.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ping from a client"), "{body}");
    let (status, body) = post(&http, &server, &sid, flood).await;
    assert_eq!(status, 400, "the session is gone: {body}");
    let scripts = no_sessions(&server).await;
    assert_eq!(scripts["malformed_packets"], 1, "{scripts}");
    assert!(scripts["socketio_queued_bytes_max"].as_u64().is_some(), "{scripts}");
    // Also in the one refusal family (the counter is process-wide: other tests may add to it).
    assert!(server.stats().await["refused"]["sio_protocol"].as_u64() >= Some(1));
}

/// A client that never polls but sends events asking for acknowledgements (refused past the rate limit)
/// makes the server queue replies; its queue stays within its budget and the session is closed as a slow
/// consumer instead of growing. (At 1,000 events a second, the replies to the 1,000 accepted events and to
/// the next refused ones, ~130 bytes each, overflow the 64 KiB queue before the flood budget closes it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_flood_from_a_never_polling_client_stays_within_its_queue_budget() {
    let server = server(&[("scripts.max_events_per_second", Toml::Integer(1_000))]).await;
    let http = reqwest::Client::new();
    let sid = handshake(&http, &server).await.unwrap();
    assert_eq!(post(&http, &server, &sid, format!("40{{\"token\":\"{KEY}\"}}")).await.0, 200);
    // Each refusal (an ack of ~130 bytes) costs far more than its event (~12 bytes).
    let events: Vec<String> = (0..20_000).map(|id| format!("42{id}[\"nope\"]")).collect();
    let mut largest = 0;
    let mut closed = None;
    for _ in 0..10 {
        let (status, body) = post(&http, &server, &sid, events.join("\u{1e}")).await;
        let queued = server.stats().await["scripts"]["socketio_queued_bytes_max"].as_u64().unwrap();
        largest = largest.max(queued);
        if status != 200 {
            closed = Some(body);
            break;
        }
    }
    let body = closed.expect("the session was closed");
    assert!(body.contains("slow consumer") || body.contains("no such session"), "{body}");
    assert!(largest <= QUEUE_BYTES, "queued {largest} bytes, over the {QUEUE_BYTES} budget");
    let scripts = no_sessions(&server).await;
    assert_eq!(scripts["slow_client_disconnects"], 1, "{scripts}");
    assert!(server.stats().await["refused"]["outbound_queue"].as_u64() >= Some(1));
}

/// Found by `make abuse`: 20 keyed sessions POSTing 13,000 events each, never polling, made the server
/// decode and refuse 4.5 M events in 15 s (8 s of CPU, healthy clients' p99 21×). A session that keeps
/// sending past its rate is closed after about a second's worth of refusals, naming the limit; the rest of
/// its POST is never decoded, and the server goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_keeps_sending_past_its_rate_is_closed_and_the_rest_is_not_decoded() {
    let server = server(&[("scripts.max_events_per_second", Toml::Integer(5))]).await;
    let http = reqwest::Client::new();
    let sid = handshake(&http, &server).await.unwrap();
    assert_eq!(post(&http, &server, &sid, format!("40{{\"token\":\"{KEY}\"}}")).await.0, 200);
    let before = server.stats().await["scripts"]["socketio_events_total"].as_u64().unwrap();
    let trade = r#"42["trade",{"symbol":"FLOODUSD","price":100.5,"qty":0.01,"side":"buy"}]"#;
    // ~0.95 MB: under maxPayload, as in the attack.
    let (status, body) = post(&http, &server, &sid, vec![trade; 13_000].join("\u{1e}")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sio_event_flood") && body.contains("max_events_per_second"), "{body}");
    let scripts = no_sessions(&server).await;
    let decoded = scripts["socketio_events_total"].as_u64().unwrap() - before;
    assert!(decoded < 1_000, "{decoded} of the events were decoded (13,000 sent)");
    assert!(server.stats().await["refused"]["sio_event_flood"].as_u64() >= Some(1));
    // The trades accepted before the flood are kept; a new session works.
    let sid = handshake(&http, &server).await.unwrap();
    assert_eq!(post(&http, &server, &sid, format!("40{{\"token\":\"{KEY}\"}}")).await.0, 200);
    assert_eq!(post(&http, &server, &sid, trade.to_owned()).await.0, 200);
}

/// Beyond max_sessions_per_host a handshake (polling or WebSocket) gets 429 naming the limit, counted in
/// /metrics; a closed session gives its slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_host_are_capped_with_the_limit_named() {
    let server = server(&[
        ("scripts.max_sessions_per_host", Toml::Integer(3)),
        ("scripts.host_limits_exempt", Toml::Array(vec![])),
    ])
    .await;
    let http = reqwest::Client::new();
    let mut sids = Vec::new();
    for _ in 0..3 {
        sids.push(handshake(&http, &server).await.unwrap());
    }
    let (status, body) = handshake(&http, &server).await.unwrap_err();
    assert_eq!((status, body["limit"].as_str()), (429, Some("max_sessions_per_host")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("[scripts] max_sessions_per_host"), "{body}");
    let ws = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    match tokio_tungstenite::connect_async(&ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 429),
        other => panic!("expected a 429 refusal, got {:?}", other.map(|(_, r)| r.status())),
    }
    assert_eq!(server.stats().await["scripts"]["refused_sessions_per_host"], 2);
    let m = metrics(&server).await;
    assert!(m.contains("candlecast_refused_total{limit=\"scripts.max_sessions_per_host\"} 2"), "{m}");
    assert_eq!(post(&http, &server, &sids[0], "1".into()).await.0, 200, "the client closes one session");
    for _ in 0..600 {
        if let Ok(sid) = handshake(&http, &server).await {
            sids.push(sid);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the closed session's slot never came back");
}

/// The abuse benchmark's ping flood came straight back: each closed session was followed by a new handshake
/// and another megabyte POST. A host whose session was closed for a protocol violation now waits
/// `fault_backoff_ms` (doubled at the next fault) before its next session; other hosts are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_session_was_closed_for_a_fault_waits_before_its_next_session() {
    let server = server(&[
        ("scripts.host_limits_exempt", Toml::Array(vec![])),
        // Long enough that the refusal below cannot be a backoff already over on a slow machine.
        ("scripts.fault_backoff_ms", Toml::Integer(60_000)),
    ])
    .await;
    let http = reqwest::Client::new();
    let sid = handshake(&http, &server).await.unwrap();
    let (status, body) = post(&http, &server, &sid, "2".into()).await;
    assert_eq!(status, 400, "a client ping is a protocol violation: {body}");
    let (status, body) = handshake(&http, &server).await.unwrap_err();
    assert_eq!((status, body["limit"].as_str()), (429, Some("fault_backoff_ms")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("[scripts] fault_backoff_ms"), "{body}");
    let r = http.get(base(&server)).send().await.unwrap();
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((2..=60).contains(&retry), "Retry-After counts the backoff left, in seconds: {retry}");
    assert_eq!(server.stats().await["scripts"]["refused_fault_backoff"], 2);
    let m = metrics(&server).await;
    assert!(m.contains("candlecast_refused_total{limit=\"scripts.fault_backoff_ms\"} 2"), "{m}");
}

/// A session closed for the client's fault does not hold back a host exempt from per-host budgets, and a
/// session its client closed itself holds back no host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_fault_of_a_limited_host_holds_it_back() {
    let http = reqwest::Client::new();
    let exempt = server(&[("scripts.fault_backoff_ms", Toml::Integer(60_000))]).await;
    let sid = handshake(&http, &exempt).await.unwrap();
    assert_eq!(post(&http, &exempt, &sid, "2".into()).await.0, 400);
    handshake(&http, &exempt).await.expect("loopback is exempt by default");
    let limited = server(&[
        ("scripts.host_limits_exempt", Toml::Array(vec![])),
        ("scripts.fault_backoff_ms", Toml::Integer(60_000)),
    ])
    .await;
    let sid = handshake(&http, &limited).await.unwrap();
    assert_eq!(post(&http, &limited, &sid, "1".into()).await.0, 200, "the client closes its session");
    handshake(&http, &limited).await.expect("a session its client closed is no fault");
}

/// The total cap holds for exempt hosts (loopback) too: 503 naming max_sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_session_cap_holds_for_exempt_hosts() {
    let server = server(&[("scripts.max_sessions", Toml::Integer(2))]).await;
    let http = reqwest::Client::new();
    let _a = handshake(&http, &server).await.unwrap();
    let _b = handshake(&http, &server).await.unwrap();
    let (status, body) = handshake(&http, &server).await.unwrap_err();
    assert_eq!((status, body["limit"].as_str()), (503, Some("max_sessions")), "{body}");
    assert_eq!(server.stats().await["scripts"]["refused_sessions_total"], 1);
}

/// Loopback is exempt from the per-host budgets by default: a load test opens many sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_exempt_from_per_host_budgets_by_default() {
    let server = server(&[
        ("scripts.max_sessions_per_host", Toml::Integer(2)),
        ("scripts.max_handshakes_per_second_per_host", Toml::Integer(2)),
    ])
    .await;
    let http = reqwest::Client::new();
    for _ in 0..20 {
        handshake(&http, &server).await.unwrap();
    }
}

/// Polls until a payload holds a packet starting with `prefix`; returns that packet.
async fn poll_until(http: &reqwest::Client, server: &TestServer, sid: &str, prefix: &str) -> String {
    for _ in 0..20 {
        let r = http.get(format!("{}&sid={sid}", base(server))).send().await.unwrap();
        let body = r.text().await.unwrap();
        if let Some(p) = body.split('\u{1e}').find(|p| p.starts_with(prefix)) {
            return p.to_owned();
        }
    }
    panic!("no packet starting with {prefix:?}");
}

/// A script key holder streams poison trades: each is refused in the acknowledgement with its reason,
/// none reaches an aggregator (the symbol is not even created).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_trades_over_socketio_are_refused_with_a_reason() {
    let server = server(&[]).await;
    let http = reqwest::Client::new();
    let sid = handshake(&http, &server).await.unwrap();
    assert_eq!(post(&http, &server, &sid, format!("40{{\"token\":\"{KEY}\"}}")).await.0, 200);
    poll_until(&http, &server, &sid, "40{").await;
    let batch = r#"[{"symbol":"POISON","price":10,"qty":1e308},{"symbol":"POISON","price":10,"qty":1e308},
        {"symbol":"POISON","price":-1,"qty":1},{"symbol":"POISON","price":10,"qty":0},
        {"symbol":"POISON","price":1e300,"qty":1},{"symbol":"POISON","price":10,"qty":1e400},
        {"symbol":"POISON","price":"NaN","qty":1}]"#;
    assert_eq!(post(&http, &server, &sid, format!("421[\"trades\",{batch}]")).await.0, 200);
    let ack = poll_until(&http, &server, &sid, "431").await;
    let ack: Value = serde_json::from_str(&ack[3..]).unwrap();
    let ack = &ack[0];
    assert_eq!(ack["accepted"], 0, "{ack}");
    let reasons: Vec<&str> =
        ack["rejected"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 7, "{ack}");
    for (i, want) in ["quantity must be", "quantity must be", "price must be", "quantity must be", "price must be"]
        .iter()
        .enumerate()
    {
        assert!(reasons[i].starts_with(want), "{i}: {reasons:?}");
    }
    assert!(reasons[5].contains("qty") || reasons[5].contains("number"), "{reasons:?}");
    let (status, hist) = server.get_json("/api/historical/POISON?interval=1m&limit=5").await;
    assert!(status == 404 || hist["data"].as_array().is_some_and(Vec::is_empty), "no bar: {status} {hist}");
}

/// Over WebSocket too, a client's Engine.IO ping closes its session (1002, with the reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ping_over_websocket_closes_the_session() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = server(&[]).await;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"), "{open:?}");
    ws.send(Message::text("40")).await.unwrap();
    for _ in 0..1000 {
        if ws.send(Message::text("2")).await.is_err() {
            break;
        }
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1002);
                assert!(frame.reason.contains("ping from a client"), "{}", frame.reason);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let scripts = no_sessions(&server).await;
    assert_eq!(scripts["malformed_packets"], 1, "{scripts}");
}
