//! Engine.IO / Socket.IO at the byte level, with a plain HTTP client and a plain WebSocket: the handshake,
//! refusals, a garbage packet closing only its session, a client vanishing mid-poll, oversize payloads,
//! CORS, the event rate limit, the upgrade probe, duplicate polls.

mod common;

use std::time::Duration;

use common::{TestServer, Toml};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "raw-key";

async fn server(extra: &[(&str, Toml)]) -> TestServer {
    let mut overrides = vec![("scripts.keys", Toml::Array(vec![Toml::String(KEY.into())]))];
    overrides.extend(extra.iter().cloned());
    TestServer::start(&overrides).await
}

/// A long-polling Engine.IO session driven by hand.
struct Polling {
    http: reqwest::Client,
    url: String,
    sid: String,
}

impl Polling {
    async fn open(server: &TestServer) -> Polling {
        let http = reqwest::Client::new();
        let base = format!("http://{}/socket.io/?EIO=4&transport=polling", server.addr);
        let body = http.get(&base).send().await.unwrap().text().await.unwrap();
        let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
        let sid = open["sid"].as_str().unwrap().to_owned();
        Polling { http, url: format!("{base}&sid={sid}"), sid }
    }

    async fn post(&self, body: &str) -> (u16, String) {
        let r = self.http.post(&self.url).body(body.to_owned()).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn get(&self) -> (u16, String) {
        let r = tokio::time::timeout(Duration::from_secs(30), self.http.get(&self.url).send())
            .await
            .expect("poll answered")
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Polls until a payload holds a packet starting with `prefix`; returns that packet.
    async fn get_until(&self, prefix: &str) -> String {
        for _ in 0..20 {
            let (status, body) = self.get().await;
            assert_eq!(status, 200, "{body}");
            if let Some(p) = body.split('\u{1e}').find(|p| p.starts_with(prefix)) {
                return p.to_owned();
            }
        }
        panic!("no packet starting with {prefix:?}");
    }
}

async fn wait_stat(server: &TestServer, name: &str, want: u64) {
    for _ in 0..600 {
        if server.stats().await["scripts"][name].as_u64() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("scripts.{name} never reached {want}: {}", server.stats().await["scripts"]);
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Skips messages until the server's close frame.
async fn next_close(ws: &mut Ws) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a close frame in time") {
            Some(Ok(Message::Close(Some(frame)))) => return frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn ws_url(server: &TestServer, sid: Option<&str>) -> String {
    let mut url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    if let Some(sid) = sid {
        url.push_str("&sid=");
        url.push_str(sid);
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_has_the_v4_fields_and_bad_requests_are_refused() {
    let server =
        server(&[("scripts.ping_interval_ms", Toml::Integer(1500)), ("scripts.ping_timeout_ms", Toml::Integer(1000))])
            .await;
    let base = format!("http://{}/socket.io/", server.addr);
    let body = reqwest::get(format!("{base}?EIO=4&transport=polling")).await.unwrap().text().await.unwrap();
    let open: Value = serde_json::from_str(&body[1..]).unwrap();
    assert_eq!(
        (
            open["upgrades"].clone(),
            open["pingInterval"].as_u64(),
            open["pingTimeout"].as_u64(),
            open["maxPayload"].as_u64()
        ),
        (serde_json::json!(["websocket"]), Some(1500), Some(1000), Some(1_000_000))
    );
    assert_eq!(open["sid"].as_str().unwrap().len(), 20);
    let table = [
        ("GET", "?EIO=3&transport=polling", 400, 5),
        ("GET", "?transport=polling", 400, 5),
        ("GET", "?EIO=4&transport=carrier-pigeon", 400, 0),
        ("GET", "?EIO=4&transport=polling&sid=nosuchsession", 400, 1),
        ("POST", "?EIO=4&transport=polling", 400, 2),
        ("GET", "?EIO=4&transport=websocket", 400, 3),
    ];
    let http = reqwest::Client::new();
    for (method, query, status, code) in table {
        let r = http.request(method.parse().unwrap(), format!("{base}{query}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{method} {query}: {body}");
        assert!(body["message"].is_string() && body["detail"].is_string(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_packet_closes_only_its_own_session_with_a_reason() {
    let server = server(&[]).await;
    let (a, b) = (Polling::open(&server).await, Polling::open(&server).await);
    assert_eq!(b.post("40").await, (200, "ok".into()));
    let (status, body) = a.post("xyz").await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("broken Engine.IO packet: unknown Engine.IO packet type 'x'"),
        "{body}"
    );
    assert_eq!(a.get().await.0, 400, "session a is gone");
    // Session b goes on.
    assert!(b.get_until("40{").await.contains("\"sid\""));
    assert_eq!(b.post("42[\"join_frontend\"]").await.0, 200);
    assert!(b.get_until("42[\"status\"").await.contains("Joined frontend room"));

    // A broken Socket.IO packet inside a valid Engine.IO message, over WebSocket: closed with 1002 and why.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&server, None)).await.unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"));
    ws.send(Message::text("42[\"unterminated")).await.unwrap();
    let close = next_close(&mut ws).await;
    assert_eq!(close.code, CloseCode::Protocol);
    assert!(close.reason.contains("broken Socket.IO packet: invalid JSON"), "{}", close.reason);
    wait_stat(&server, "malformed_packets", 2).await;
    assert_eq!(b.post("42[\"join_frontend\"]").await.0, 200, "b is still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_poll_expires_and_is_counted() {
    // Generous timeout: the answering client must never miss it, even on a loaded machine.
    let server =
        server(&[("scripts.ping_interval_ms", Toml::Integer(300)), ("scripts.ping_timeout_ms", Toml::Integer(3000))])
            .await;
    let gone = Polling::open(&server).await;
    assert_eq!(gone.post("40").await.0, 200);
    assert!(gone.get_until("40{").await.contains("sid"));
    // A poll the client abandons half way: the request is written, then the connection dropped unanswered.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let path = gone.url.split_once(&server.addr.to_string()).unwrap().1.to_owned();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes(),
    )
    .await
    .unwrap();
    drop(tcp);
    // Another client keeps answering its pings the whole time.
    let alive = Polling::open(&server).await;
    let responder = tokio::spawn(async move {
        loop {
            alive.get_until("2").await;
            assert_eq!(alive.post("3").await.0, 200, "the answering session stays up");
        }
    });
    wait_stat(&server, "expired_sessions", 1).await;
    assert_eq!(gone.get().await.0, 400, "the expired session is gone");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!responder.is_finished(), "the answering client is still served");
    assert_eq!(server.stats().await["scripts"]["expired_sessions"], 1, "only the vanished one expired");
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_payloads_are_refused_with_a_clear_message() {
    let server = server(&[("scripts.max_payload_bytes", Toml::Integer(2048))]).await;
    let open: Value = serde_json::from_str(
        &reqwest::get(format!("http://{}/socket.io/?EIO=4&transport=polling", server.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()[1..],
    )
    .unwrap();
    assert_eq!(open["maxPayload"], 2048);
    let p = Polling::open(&server).await;
    let big = format!("42[\"trades\",\"{}\"]", "x".repeat(3000));
    let (status, body) = p.post(&big).await;
    assert_eq!(status, 413);
    assert!(body.contains("message over maxPayload (2048 bytes)"), "{body}");
    assert_eq!(p.get().await.0, 400, "the session was closed");

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&server, None)).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::text(big)).await.unwrap();
    let close = next_close(&mut ws).await;
    assert_eq!(close.code, CloseCode::Size);
    assert!(close.reason.contains("maxPayload"), "{}", close.reason);
    wait_stat(&server, "oversize_payloads", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_the_same_origin_and_listed_ones_only() {
    let server =
        server(&[("scripts.cors_origins", Toml::Array(vec![Toml::String("https://app.example.com".into())]))]).await;
    let url = format!("http://{}/socket.io/?EIO=4&transport=polling", server.addr);
    let http = reqwest::Client::new();
    let r = http.get(&url).header("Origin", "https://evil.example").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 4);
    assert!(body["detail"].as_str().unwrap().contains("https://evil.example"), "{body}");
    for origin in ["https://app.example.com".to_owned(), format!("http://{}", server.addr)] {
        let r = http.get(&url).header("Origin", &origin).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{origin}");
        assert_eq!(r.headers()["access-control-allow-origin"], origin.as_str());
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    }
    let pre =
        http.request(reqwest::Method::OPTIONS, &url).header("Origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    assert!(pre.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "no Origin: not a browser, allowed");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_the_rate_limit_are_refused() {
    let server = server(&[("scripts.max_events_per_second", Toml::Integer(5))]).await;
    let p = Polling::open(&server).await;
    assert_eq!(p.post(&format!("40{{\"token\":\"{KEY}\"}}")).await.0, 200);
    p.get_until("40{").await;
    let events: Vec<String> =
        (1..=10).map(|id| format!("42{id}[\"trade\",{{\"symbol\":\"RATELIM\",\"price\":1,\"qty\":1}}]")).collect();
    assert_eq!(p.post(&events.join("\u{1e}")).await.0, 200);
    let mut acks = Vec::new();
    while acks.len() < 10 {
        let (_, body) = p.get().await;
        acks.extend(body.split('\u{1e}').filter(|p| p.starts_with("43")).map(|p| {
            let digits = p[2..].find('[').unwrap();
            let ack: Value = serde_json::from_str(&p[2 + digits..]).unwrap();
            ack[0].clone()
        }));
    }
    let limited = acks.iter().filter(|a| a["error"] == "rate_limited").count();
    let accepted = acks.iter().filter(|a| a["accepted"] == 1).count();
    assert_eq!((accepted, limited), (5, 5), "{acks:?}");
    assert!(acks.iter().find(|a| a["error"] == "rate_limited").unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("more than 5 events per second"));
    assert_eq!(server.stats().await["scripts"]["rate_limited_events"], 5);
    // Also in the one refusal family (process-wide: other tests may add to it).
    assert!(server.stats().await["refused"]["sio_events_per_second"].as_u64() >= Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_probe_releases_the_running_poll_with_a_noop() {
    let server = server(&[]).await;
    let p = Polling::open(&server).await;
    let pending = tokio::spawn({
        let (http, url) = (p.http.clone(), p.url.clone());
        async move { http.get(&url).send().await.unwrap().text().await.unwrap() }
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&server, Some(&p.sid))).await.unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().to_text().unwrap(), "3probe");
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), pending).await.unwrap().unwrap(), "6", "noop");
    ws.send(Message::text("5")).await.unwrap();
    ws.send(Message::text("40")).await.unwrap();
    let connected = ws.next().await.unwrap().unwrap();
    assert!(connected.to_text().unwrap().starts_with("40{\"sid\":"), "{connected:?}");
    let (status, body) = p.get().await;
    assert_eq!(status, 400, "polling is over after the upgrade: {body}");
    assert_eq!(server.stats().await["scripts"]["socketio_sessions"]["websocket"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_polls_at_once_close_the_session() {
    let server = server(&[]).await;
    let p = Polling::open(&server).await;
    let (a, b) = tokio::join!(p.get(), p.get());
    let mut results = [a, b];
    results.sort();
    assert_eq!(results[0], (200, "1".to_owned()), "the poll that was running gets the close packet");
    assert_eq!(results[1].0, 400);
    assert!(results[1].1.contains("two long-polling requests at once"), "{}", results[1].1);
    assert_eq!(p.get().await.0, 400, "the session is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_namespace_ends_the_session_even_without_a_close_packet() {
    let server = server(&[]).await;
    let p = Polling::open(&server).await;
    assert_eq!(p.post("40").await.0, 200);
    p.get_until("40{").await;
    // python-engineio's polling client may send the namespace disconnect and never its close packet.
    assert_eq!(p.post("41").await.0, 200);
    let (status, _) = p.get().await;
    assert_eq!(status, 400, "the waiting poll ends once the session is closed");
    let scripts = &server.stats().await["scripts"];
    assert_eq!(
        (scripts["expired_sessions"].as_u64(), scripts["malformed_packets"].as_u64()),
        (Some(0), Some(0)),
        "a clean end: {scripts}"
    );
}
