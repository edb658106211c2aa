//! The request-head timeouts, kept on the connection's socket instead of in actix's dispatcher.
//!
//! actix-http 3 refused complete requests in a connection storm (issue 16: thousands of `408`s at 20,000
//! connections a second). Its head timer (`client_request_timeout`) is armed at the connection's first poll
//! from the cached clock of its date service (a task on the same worker, so stale when the worker is busy),
//! and every later poll of the dispatcher checks its timers *before* reading the socket
//! (`h1/dispatcher.rs`: `poll_timers` runs before `read_available`). A worker that comes back to a connection
//! seconds late, busy upgrading thousands of others, answers 408 to a head that has been sitting whole in the
//! socket all along: the server refusing a client for its own slowness.
//!
//! [`HeadTimeout`] wraps the accepted stream and enforces the same budgets in the order that cannot do that:
//! - the head timeout (`[http] client_request_timeout_ms`) starts when the first byte of the head is *read*;
//! - before that, a connection may stay silent for `[http] first_byte_timeout_ms` from accept;
//! - a deadline is looked at only after a read found the socket empty and the head still incomplete, so
//!   whatever the client sent before the server came back to it is always read first, and a complete head is
//!   always served, however late the worker is;
//! - the timer is registered with the same waker as the read, so a client that goes silent is still woken up
//!   and closed: an early 408 written straight on the socket, then the read fails and actix drops the
//!   connection.
//!
//! Only the connection's first head is timed, as actix did: once it is complete (an empty line after a
//! non-empty one, `\r\n\r\n` or a bare `\n\n` as httparse also accepts), or once the server writes anything on
//! the connection, the wrapper only passes bytes through. Later keep-alive requests are covered by actix's
//! keep-alive timeout (the idle time before their first byte) and, for a client that then trickles a head, by
//! the per-host connection budget (`[http] max_connections_per_host`), as before this wrapper.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep_until, Instant, Sleep};

/// What a connection that ran out of time gets before it is closed (written only if the socket takes it
/// at once; a client that never reads gets the close alone).
const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// The two budgets of a connection's first request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadTimeouts {
    /// From accept to the first byte of the head.
    pub first_byte: Duration,
    /// From the first byte of the head read to its end.
    pub head: Duration,
}

/// Where the connection's first request head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing read yet.
    Silent,
    /// Some of the head read, not its end.
    InHead,
    /// The head is complete (or the server has answered): bytes only pass through.
    Done,
    /// Out of time: every further read fails.
    TimedOut,
}

/// An accepted stream whose first request head must arrive within [`HeadTimeouts`].
pub struct HeadTimeout<IO> {
    io: IO,
    timeouts: HeadTimeouts,
    phase: Phase,
    /// The phase's deadline; made at the first poll (a timer needs the worker's runtime), dropped once done.
    timer: Option<Pin<Box<Sleep>>>,
    accepted: Instant,
    end: EndOfHead,
    /// What must live exactly as long as the connection (its place in its host's connection count).
    _lives_with: Option<Box<dyn std::any::Any>>,
}

impl<IO> HeadTimeout<IO> {
    /// Wraps a stream just accepted: the first-byte budget counts from now.
    pub fn new(io: IO, timeouts: HeadTimeouts) -> Self {
        Self {
            io,
            timeouts,
            phase: Phase::Silent,
            timer: None,
            accepted: Instant::now(),
            end: EndOfHead::default(),
            _lives_with: None,
        }
    }

    /// Keeps `guard` until the connection is dropped (actix drops the stream when the connection ends, a
    /// WebSocket's included).
    pub fn lives_with(mut self, guard: impl std::any::Any) -> Self {
        self._lives_with = Some(Box::new(guard));
        self
    }

    fn finish_head(&mut self) {
        self.phase = Phase::Done;
        self.timer = None;
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> HeadTimeout<IO> {
    /// A read found the socket empty and the head incomplete: is the phase's time up? If not, the timer now
    /// holds the waker, so the connection is polled again at the deadline even if the client sends nothing.
    fn out_of_time(&mut self, cx: &mut Context<'_>) -> bool {
        let (accepted, first_byte) = (self.accepted, self.timeouts.first_byte);
        let timer = self.timer.get_or_insert_with(|| Box::pin(sleep_until(deadline(accepted, first_byte))));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Answers 408 if the socket takes it at once, and makes every further read fail.
    fn time_out(&mut self, cx: &mut Context<'_>) -> io::Error {
        // The setting that ran out, and its label in `candlecast_refused_total` (every refusal is counted there).
        let (waited, limit) = match self.phase {
            Phase::Silent => ("first_byte_timeout_ms", "http_first_byte_timeout"),
            _ => ("client_request_timeout_ms", "http_request_head_timeout"),
        };
        candlecast_actors::refusals::refused(limit);
        self.phase = Phase::TimedOut;
        self.timer = None;
        // Nothing else was ever written on this connection (any write ends the head phase), so the answer is
        // whole or absent; a partial write is left as it is, the close follows.
        let _ = Pin::new(&mut self.io).poll_write(cx, TIMED_OUT);
        tracing::debug!(limit = waited, "request head not complete in time: 408 and closed");
        io::Error::new(io::ErrorKind::TimedOut, format!("request head not complete within [http] {waited}"))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadTimeout<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.phase {
            Phase::Done => return Pin::new(&mut this.io).poll_read(cx, buf),
            Phase::TimedOut => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head timed out")))
            }
            Phase::Silent | Phase::InHead => {}
        }
        // Read first: what the client sent while the worker was busy elsewhere is the client's, on time.
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if read.is_empty() {
                    // End of stream: actix ends the connection itself.
                    return Poll::Ready(Ok(()));
                }
                if this.phase == Phase::Silent {
                    this.phase = Phase::InHead;
                    let deadline = deadline(Instant::now(), this.timeouts.head);
                    match this.timer.as_mut() {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(sleep_until(deadline))),
                    }
                }
                if this.end.found_in(read) {
                    this.finish_head();
                }
                // No deadline checked on a read that brought bytes: actix reads again until the socket is
                // empty, and that read checks it.
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.out_of_time(cx) => Poll::Ready(Err(this.time_out(cx))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadTimeout<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        // actix writes only once it has parsed a head (an answer, or its 400 to a head it cannot parse): the
        // head phase is over even if the scan above missed its end, so a live WebSocket is never timed.
        if self.phase != Phase::Done && self.phase != Phase::TimedOut {
            self.finish_head();
        }
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.phase != Phase::Done && self.phase != Phase::TimedOut {
            self.finish_head();
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `after` from `from`; a budget too large to add (a configured `u64::MAX`) is a year, not a panic per connection.
fn deadline(from: Instant, after: Duration) -> Instant {
    from.checked_add(after).unwrap_or_else(|| from + Duration::from_secs(365 * 86_400))
}

/// Finds the empty line that ends a request head, across reads: a line end (`\n`, the `\r` before it
/// ignored) right after another, once the head has had a non-empty line (the blank lines httparse skips
/// before a request line do not end it).
#[derive(Debug, Default)]
struct EndOfHead {
    had_content: bool,
    at_line_start: bool,
}

impl EndOfHead {
    fn found_in(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            match b {
                b'\n' if self.at_line_start && self.had_content => return true,
                b'\n' => self.at_line_start = true,
                b'\r' => {}
                _ => {
                    self.had_content = true;
                    self.at_line_start = false;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const TIMEOUTS: HeadTimeouts = HeadTimeouts { first_byte: Duration::from_secs(10), head: Duration::from_secs(5) };
    const HEAD: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n";

    /// The client's end and the server's wrapped end of a fresh connection.
    fn connection() -> (DuplexStream, HeadTimeout<DuplexStream>) {
        let (client, server) = duplex(64 * 1024);
        (client, HeadTimeout::new(server, TIMEOUTS))
    }

    /// Reads what is there now, as actix's dispatcher does when polled: until the socket is empty.
    async fn read_available(server: &mut HeadTimeout<DuplexStream>) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        std::future::poll_fn(|cx| loop {
            let mut buf = [0u8; 1024];
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut *server).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => got.extend_from_slice(read.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Ready(Ok(())),
            }
        })
        .await?;
        Ok(got)
    }

    /// Waits for the server end to be woken and fail, as a dispatcher parked on it would.
    async fn closed_by_the_server(server: &mut HeadTimeout<DuplexStream>) -> io::Error {
        let mut buf = [0u8; 1024];
        loop {
            match server.read(&mut buf).await {
                Err(e) => return e,
                Ok(0) => panic!("the client closed, not the server"),
                Ok(_) => {}
            }
        }
    }

    async fn answer_seen_by(client: &mut DuplexStream) -> String {
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_arrives_whole_long_after_accept_is_served() {
        let (mut client, mut server) = connection();
        assert!(read_available(&mut server).await.unwrap().is_empty());
        // Longer than the head timeout, shorter than the first-byte budget.
        tokio::time::advance(Duration::from_secs(8)).await;
        client.write_all(HEAD).await.unwrap();
        assert_eq!(read_available(&mut server).await.unwrap(), HEAD);
        // Done: the connection is not timed any more (a WebSocket may stay quiet for minutes).
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(read_available(&mut server).await.unwrap().is_empty());
        client.write_all(b"frame").await.unwrap();
        assert_eq!(read_available(&mut server).await.unwrap(), b"frame");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_complete_in_the_socket_is_served_when_the_worker_comes_back_after_its_deadline() {
        let (mut client, mut server) = connection();
        client.write_all(&HEAD[..10]).await.unwrap();
        assert_eq!(read_available(&mut server).await.unwrap(), &HEAD[..10]);
        // The rest arrives at once, but the worker is busy elsewhere and polls the connection again only
        // long after the head's deadline (actix's dispatcher answered 408 here: timers before reading).
        client.write_all(&HEAD[10..]).await.unwrap();
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(read_available(&mut server).await.unwrap(), &HEAD[10..]);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(read_available(&mut server).await.unwrap().is_empty(), "not timed once the head is complete");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_for_longer_than_the_timeout_is_closed_with_408() {
        let (mut client, mut server) = connection();
        let mut sent = 0;
        let mut error = None;
        // One byte a second, never the end of the head.
        for &b in HEAD[..HEAD.len() - 2].iter() {
            client.write_all(&[b]).await.unwrap();
            sent += 1;
            if let Err(e) = read_available(&mut server).await {
                error = Some(e);
                break;
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let error = error.expect("closed before the head ended");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("client_request_timeout_ms"), "{error}");
        // Five seconds from the first byte: the sixth byte's read is past the deadline.
        assert_eq!(sent, 6);
        assert!(answer_seen_by(&mut client).await.starts_with("HTTP/1.1 408"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_silent_after_its_first_byte_is_woken_and_closed() {
        let (mut client, mut server) = connection();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        // Parked on the socket: only the head timer can wake it (time auto-advances while all is idle).
        let started = Instant::now();
        let error = closed_by_the_server(&mut server).await;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUTS.head);
        assert!(answer_seen_by(&mut client).await.starts_with("HTTP/1.1 408"));
        assert!(read_available(&mut server).await.is_err(), "stays closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_byte_is_closed_after_the_first_byte_budget() {
        let (mut client, mut server) = connection();
        let started = Instant::now();
        let error = closed_by_the_server(&mut server).await;
        assert!(error.to_string().contains("first_byte_timeout_ms"), "{error}");
        assert_eq!(started.elapsed(), TIMEOUTS.first_byte);
        assert!(answer_seen_by(&mut client).await.starts_with("HTTP/1.1 408"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_written_ends_the_head_phase() {
        let (mut client, mut server) = connection();
        // A head the scan does not see end (actix would answer it 400, for instance).
        client.write_all(b"GET / HTTP/1.1\r\rX").await.unwrap();
        read_available(&mut server).await.unwrap();
        server.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(read_available(&mut server).await.unwrap().is_empty());
        assert!(answer_seen_by(&mut client).await.starts_with("HTTP/1.1 400"));
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_too_large_to_add_to_a_clock_do_not_panic() {
        let (mut client, server) = duplex(1024);
        let mut server = HeadTimeout::new(server, HeadTimeouts { first_byte: Duration::MAX, head: Duration::MAX });
        assert!(read_available(&mut server).await.unwrap().is_empty());
        client.write_all(b"GET").await.unwrap();
        assert_eq!(read_available(&mut server).await.unwrap(), b"GET");
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads_and_line_endings() {
        let ends = |parts: &[&[u8]]| {
            let mut end = EndOfHead::default();
            parts.iter().any(|p| end.found_in(p))
        };
        assert!(ends(&[HEAD]));
        assert!(ends(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r", b"\n"]));
        assert!(ends(&[b"GET / HTTP/1.1\nHost: a\n\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]));
        // Blank lines before the request line are skipped by the parser, not the end of a head.
        assert!(!ends(&[b"\r\n\r\n\r\nGET / HTTP/1.1\r\n"]));
        assert!(ends(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]));
    }
}
