//! One WebSocket connection to Binance's market-stream endpoint, kept within Binance's connection rules:
//!
//! - **Ping → pong with the same payload.** tungstenite queues exactly that pong when it reads a ping
//!   and flushes it on the next read, so answering means *reading again promptly*.
//! - **At most N messages per second sent** (Binance: 5; pings, pongs and JSON requests all count). We
//!   send those pongs, a close, and on combined streams SUBSCRIBE/UNSUBSCRIBE requests: after each ping
//!   we hold the next read (and with it the pong's flush) until the sliding window has room, and a
//!   request waits for room too. Binance pings every 20 s, so in practice
//!   nothing ever waits.
//! - **Reconnect before the 24-hour cut**: after `rotate_after` (default 23 h 50 min) the connection is
//!   closed on our terms and reported as a disconnect, so the feed actor reconnects at once.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::feed::FeedError;

/// The window the send limit counts over. A little over one second, so that network jitter cannot
/// make the server see N + 1 messages inside one of its own seconds.
const WINDOW: Duration = Duration::from_millis(1_100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sliding-window limit on frames we send.
pub struct SendLimiter {
    max: usize,
    sent: VecDeque<Instant>,
}

impl SendLimiter {
    pub fn new(max_per_second: u32) -> SendLimiter {
        SendLimiter { max: max_per_second.max(1) as usize, sent: VecDeque::new() }
    }

    /// When the next frame may go out (now, or when the oldest one in the window leaves it).
    pub fn next_free(&mut self, now: Instant) -> Instant {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            self.sent.pop_front();
        }
        match self.sent.front() {
            Some(oldest) if self.sent.len() >= self.max => *oldest + WINDOW,
            _ => now,
        }
    }

    pub fn record(&mut self, at: Instant) {
        self.sent.push_back(at);
    }
}

/// See the module documentation.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    rotate_at: Instant,
    limiter: SendLimiter,
    /// A pong is queued inside tungstenite; it leaves with our next read.
    pong_queued: bool,
}

impl Connection {
    pub async fn open(
        url: &str,
        rotate_after: Duration,
        max_messages_per_second: u32,
    ) -> Result<Connection, FeedError> {
        let (ws, _) = timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| FeedError::Connect(format!("{url}: no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| FeedError::Connect(format!("{url}: {e}")))?;
        Ok(Connection {
            ws,
            rotate_at: Instant::now() + rotate_after,
            limiter: SendLimiter::new(max_messages_per_second),
            pong_queued: false,
        })
    }

    /// The next text (or binary, as lossy text) frame; pings are answered on the way.
    pub async fn next_text(&mut self) -> Result<String, FeedError> {
        loop {
            if std::mem::take(&mut self.pong_queued) {
                let at = self.limiter.next_free(Instant::now());
                tokio::select! {
                    _ = sleep_until(self.rotate_at) => return self.rotate().await,
                    _ = sleep_until(at) => {}
                }
                // The read below flushes the pong first.
                self.limiter.record(Instant::now().max(at));
            }
            let msg = tokio::select! {
                _ = sleep_until(self.rotate_at) => return self.rotate().await,
                msg = self.ws.next() => msg,
            };
            match msg {
                None => return Err(FeedError::Disconnected("the server closed the connection".into())),
                Some(Err(e)) => return Err(FeedError::Disconnected(e.to_string())),
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
                Some(Ok(Message::Binary(b))) => return Ok(String::from_utf8_lossy(&b).into_owned()),
                Some(Ok(Message::Ping(_))) => self.pong_queued = true,
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                    return Err(FeedError::Disconnected(format!("the server closed the connection: {why}")));
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    /// Sends a request (combined streams' SUBSCRIBE / UNSUBSCRIBE) within the send limit.
    pub async fn send_text(&mut self, text: String) -> Result<(), FeedError> {
        let at = self.limiter.next_free(Instant::now());
        sleep_until(at).await;
        self.limiter.record(Instant::now().max(at));
        self.ws.send(Message::text(text)).await.map_err(|e| FeedError::Disconnected(e.to_string()))
    }

    /// Closes before Binance's 24-hour cut; the feed actor then reconnects.
    async fn rotate(&mut self) -> Result<String, FeedError> {
        let _ = timeout(CLOSE_TIMEOUT, self.ws.close(None)).await;
        Err(FeedError::Disconnected("closing before Binance's 24-hour connection limit".into()))
    }

    /// Closes politely (used when the feed is removed or the connection is replaced).
    pub async fn close(mut self) {
        let _ = timeout(CLOSE_TIMEOUT, self.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_n_per_window() {
        let mut l = SendLimiter::new(5);
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(l.next_free(t0), t0, "slot {i} is free");
            l.record(t0);
        }
        assert_eq!(l.next_free(t0), t0 + WINDOW, "the sixth waits for the first to leave the window");
        assert_eq!(l.next_free(t0 + WINDOW), t0 + WINDOW);
    }

    /// Binance is only reachable over TLS: a `wss://` URL must start a TLS handshake (here against a
    /// local server that answers with plain HTTP, so the handshake fails), not be refused as unsupported.
    #[tokio::test]
    async fn wss_urls_speak_tls() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
            }
        });
        let err = Connection::open(&format!("wss://localhost:{port}/ws/btcusdt@trade"), Duration::from_secs(60), 5)
            .await
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(!msg.contains("not enabled") && !msg.contains("not compiled"), "{msg}");
        // rustls's words for a server that answered a ClientHello in plain text.
        assert!(msg.contains("InvalidContentType"), "a TLS handshake error: {msg}");
    }
}
