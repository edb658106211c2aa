//! A client that never reads is closed (1008) and counted, while the clients that read keep receiving.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candlecast_actors::model::Interval;
use common::{Client, TestServer, Toml, SYMBOLS};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Reads until `stop`, returning (updates received, longest silence between two updates).
async fn keep_reading(mut c: Client, stop: Arc<AtomicBool>) -> (usize, Duration) {
    let mut count = 0;
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), c.ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {
                count += 1;
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("a reading client lost its connection: {other:?}"),
        }
    }
    (count, longest.max(last.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_while_the_others_keep_receiving() {
    let server = TestServer::start(&[
        ("ws.outbound_queue_bytes", Toml::Integer(65_536)),
        ("feed.simulated.trades_per_second", Toml::Float(2_000.0)),
        ("feed.simulated.tick_ms", Toml::Integer(5)),
        ("hub.max_updates_per_second", Toml::Integer(200)),
    ])
    .await;
    let before = server.stats().await["slow_client_disconnects"].as_u64().unwrap();
    let refused_before = server.stats().await["refused"]["outbound_queue"].as_u64().unwrap_or(0);

    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let mut c = Client::connect(&server).await;
        c.subscribe(&[symbol], "1s").await;
        readers.push(tokio::spawn(keep_reading(c, stop.clone())));
    }

    // The stalled client: a 4 KiB receive buffer, every topic there is, and it never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&server.addr.into()).unwrap();
    sock.set_nonblocking(true).unwrap();
    let tcp = tokio::net::TcpStream::from_std(sock.into()).unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(server.ws_url(), tcp).await.unwrap();
    for interval in Interval::ALL {
        stalled
            .send(Message::text(
                json!({"type":"subscribe","trading_pairs":SYMBOLS,"interval":interval.as_str()}).to_string(),
            ))
            .await
            .unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = server.stats().await;
        if stats["slow_client_disconnects"].as_u64().unwrap() > before {
            assert_eq!(stats["total_clients"], 3, "only the reading clients remain: {stats}");
            assert!(stats["refused"]["outbound_queue"].as_u64().unwrap_or(0) > refused_before, "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "the stalled client was never closed: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The readers go on for another second after the close.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (count, longest_silence) = r.await.unwrap();
        // Liveness, not speed: a 1s topic at up to 200 updates/s never goes quiet for a whole second.
        assert!(
            count > 20 && longest_silence < Duration::from_secs(1),
            "reader starved: {count} updates, silent for {longest_silence:?}"
        );
    }

    // When the stalled client finally reads, what is buffered is followed by a 1008 close.
    let close = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(msg) = stalled.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => continue,
                Err(e) => panic!("expected a close frame, got {e}"),
            }
        }
        None
    })
    .await
    .expect("close frame in time")
    .expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.contains("slow consumer"), "{}", close.reason);
}
