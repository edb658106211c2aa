//! A minimal WebSocket client for the generator's readers: plain `ws://`, frames parsed in place from one
//! reusable buffer, pings answered.
//!
//! Why not tokio-tungstenite here: the generator shares the machine's two cores with the server it
//! measures, so every microsecond it spends per message is taken from the server and shows up as latency.
//! A perf profile at 19,000 clients put the generator at 45 % of the machine, half of it user space:
//! tungstenite's frame codec, a `BytesMut` split and an allocated `Message` per update, UTF-8 validation,
//! a waker round per frame. Server-to-client frames are unmasked and small; reading them needs little.
//! The push mode (scripts sending trades) keeps tungstenite.
//!
//! With `deflate`, the client offers permessage-deflate (RFC 7692) as a browser does and inflates compressed
//! (RSV1) messages, each on its own (the server answers `server_no_context_takeover`). It counts every byte it
//! reads after the handshake, frame headers included: bytes on the wire per message, plain against deflate.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use flate2::{Decompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Frames larger than this are refused (candlecast's updates are a few hundred bytes).
const MAX_FRAME: usize = 16 << 20;
const INITIAL_BUFFER: usize = 4096;

/// What the client offers with `deflate` (what Chromium sends).
const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// The tail a compressed message's sender strips and its receiver appends back (RFC 7692 §7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One frame's place in the buffer.
#[derive(Debug, PartialEq)]
struct Header {
    fin: bool,
    /// RSV1: a compressed message (permessage-deflate).
    compressed: bool,
    opcode: u8,
    /// Where the payload starts and ends, from the start of the frame.
    payload: std::ops::Range<usize>,
}

/// Parses the header of the frame at the start of `bytes`; `Ok(None)` if more bytes are needed.
fn parse_header(bytes: &[u8]) -> io::Result<Option<Header>> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    let (fin, compressed, opcode) = (bytes[0] & 0x80 != 0, bytes[0] & 0x40 != 0, bytes[0] & 0x0f);
    if bytes[1] & 0x80 != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "server frames must not be masked"));
    }
    let (len, at) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as u64, 4),
        127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap_or_default()), 10),
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if len > MAX_FRAME as u64 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let end = at + len as usize;
    Ok((bytes.len() >= end).then_some(Header { fin, compressed, opcode, payload: at..end }))
}

/// A client frame: always masked (RFC 6455 §5.3). The key only needs to be unpredictable to proxies, which
/// a benchmark on loopback has none of.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A text message arriving in several frames, put together.
    fragments: Vec<u8>,
    /// The last message returned, when it had to be put together from fragments or inflated.
    message: Vec<u8>,
    /// Set when permessage-deflate was negotiated.
    inflater: Option<Decompress>,
    /// Whether the message being put together from fragments is compressed.
    fragments_compressed: bool,
    /// Bytes read from the socket after the handshake, not yet taken by [`RawWs::take_bytes`].
    bytes_read: u64,
}

/// What [`RawWs::next_text`] found.
pub enum Next<'a> {
    Text(&'a str),
    /// The server closed the connection (a close frame or end of stream).
    Closed,
}

/// A TCP connection to `host` ("ip:port" or "name:port"), from the local address `source` if given.
///
/// Why a source address: every connect() from one address to one server port makes the kernel search the
/// ephemeral range for a port whose 4-tuple is free (`__inet_hash_connect`), and with 19,000 of its ~28,000
/// ports taken that search is most of the generator's CPU (a perf profile of a storm row: 17.6 % of the
/// two cores in `__inet_check_established`, inside connect(), which blocks the generator's runtime thread:
/// the "TCP connect" times of seconds were the generator's own). Real dashboards come from many addresses;
/// spread over several loopback addresses each port is free at the first try. `IP_BIND_ADDRESS_NO_PORT`
/// leaves the port to connect(), which may reuse a port another address holds (a bind() with port 0 would
/// take a port for good, all addresses together).
pub async fn tcp_connect(host: &str, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let Some(source) = source else { return TcpStream::connect(host).await };
    let addr: SocketAddr = host.parse().map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("a source address needs an ip:port target, not {host}"))
    })?;
    let socket = TcpSocket::new_v4()?;
    bind_address_no_port(&socket)?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    socket.connect(addr).await
}

#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid open socket, and a pointer to a c_int of the length given, read during the call only.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere bind() takes the port at once: fewer connections fit, each still from its own address.
#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_socket: &TcpSocket) -> io::Result<()> {
    Ok(())
}

impl RawWs {
    /// Connects to a `ws://host:port/path` URL and completes the opening handshake.
    pub async fn connect(url: &str) -> io::Result<RawWs> {
        Ok(Self::connect_timed(url, false).await?.0)
    }

    /// [`RawWs::connect`], offering permessage-deflate if `deflate`; an error if the server declines it.
    pub async fn connect_with(url: &str, deflate: bool) -> io::Result<RawWs> {
        Ok(Self::connect_timed(url, deflate).await?.0)
    }

    /// [`RawWs::connect`], and how long the TCP connect alone took (the storm mode reports it apart from
    /// the HTTP upgrade: the listen backlog decides the one, the server's workers the other).
    pub async fn connect_timed(url: &str, deflate: bool) -> io::Result<(RawWs, std::time::Duration)> {
        Self::connect_from(url, deflate, None).await
    }

    /// [`RawWs::connect_timed`] from the local address `source` if given (see [`tcp_connect`]).
    pub async fn connect_from(
        url: &str,
        deflate: bool,
        source: Option<Ipv4Addr>,
    ) -> io::Result<(RawWs, std::time::Duration)> {
        let rest =
            url.strip_prefix("ws://").ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only ws:// URLs"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let began = std::time::Instant::now();
        let stream = tcp_connect(host, source).await?;
        let tcp = began.elapsed();
        stream.set_nodelay(true)?;
        let mut ws = RawWs {
            stream,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            fragments: Vec::new(),
            message: Vec::new(),
            inflater: None,
            fragments_compressed: false,
            bytes_read: 0,
        };
        let offer = if deflate { format!("Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n") } else { String::new() };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        ws.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(head_end) = ws.buf[..ws.end].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&ws.buf[..head_end]);
                if !head.starts_with("HTTP/1.1 101") {
                    let status = head.lines().next().unwrap_or_default().to_owned();
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("handshake refused: {status}"),
                    ));
                }
                if deflate {
                    let accepted = head.lines().any(|l| {
                        l.split_once(':').is_some_and(|(k, v)| {
                            k.eq_ignore_ascii_case("sec-websocket-extensions") && v.contains("permessage-deflate")
                        })
                    });
                    if !accepted {
                        let msg = "the server did not accept permessage-deflate (is [ws] permessage_deflate on?)";
                        return Err(io::Error::new(io::ErrorKind::Unsupported, msg));
                    }
                    ws.inflater = Some(Decompress::new(false));
                }
                // Frames may already follow the response in the same read; they count as read from here.
                ws.start = head_end + 4;
                ws.bytes_read = (ws.end - ws.start) as u64;
                return Ok((ws, tcp));
            }
            if ws.end == ws.buf.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "handshake response too large"));
            }
            ws.fill().await?;
        }
    }

    /// Bytes read since the handshake or the last call.
    pub fn take_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_read)
    }

    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.stream.write_all(&client_frame(0x1, text.as_bytes())).await
    }

    pub async fn close(&mut self) {
        let _ = self.stream.write_all(&client_frame(0x8, &1000u16.to_be_bytes())).await;
    }

    /// Reads more bytes after the unread ones, compacting or growing the buffer first when it is full.
    async fn fill(&mut self) -> io::Result<()> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        match self.stream.read(&mut self.buf[self.end..]).await? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.end += n;
                self.bytes_read += n as u64;
                Ok(())
            }
        }
    }

    /// The next text message; answers pings and skips other frames on the way.
    pub async fn next_text(&mut self) -> io::Result<Next<'_>> {
        loop {
            let Some(header) = parse_header(&self.buf[self.start..self.end])? else {
                if self.start == self.end {
                    // Nothing unread: start again at the front, so reads stay in one small buffer.
                    (self.start, self.end) = (0, 0);
                }
                match self.fill().await {
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::Closed),
                    other => other?,
                }
                continue;
            };
            let payload = self.start + header.payload.start..self.start + header.payload.end;
            self.start += header.payload.end;
            match header.opcode {
                0x1 if header.fin && !header.compressed => {
                    let text = std::str::from_utf8(&self.buf[payload])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    return Ok(Next::Text(text));
                }
                0x1 | 0x0 => {
                    if header.opcode == 0x1 {
                        self.fragments_compressed = header.compressed;
                    }
                    self.fragments.extend_from_slice(&self.buf[payload]);
                    if header.fin {
                        let whole = std::mem::take(&mut self.fragments);
                        self.message = if self.fragments_compressed { self.inflate(whole)? } else { whole };
                        let text = std::str::from_utf8(&self.message)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        return Ok(Next::Text(text));
                    }
                }
                0x8 => return Ok(Next::Closed),
                0x9 => {
                    let pong = client_frame(0xA, &self.buf[payload]);
                    self.stream.write_all(&pong).await?;
                }
                // Binary frames and pongs carry nothing the generator measures.
                _ => {}
            }
        }
    }
}

impl RawWs {
    /// A compressed message's text: inflated on its own (no context kept), the sync tail appended back.
    fn inflate(&mut self, mut compressed: Vec<u8>) -> io::Result<Vec<u8>> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        let Some(d) = self.inflater.as_mut() else {
            return Err(bad("a compressed frame without permessage-deflate".into()));
        };
        d.reset(false);
        compressed.extend_from_slice(&SYNC_TAIL);
        let mut out = std::mem::take(&mut self.message);
        out.clear();
        out.reserve(compressed.len() * 4);
        loop {
            let before = (d.total_in(), out.len());
            let rest = compressed.get(d.total_in() as usize..).unwrap_or_default();
            d.decompress_vec(rest, &mut out, FlushDecompress::Sync).map_err(|e| bad(e.to_string()))?;
            let room = out.len() < out.capacity();
            if d.total_in() as usize >= compressed.len() && room {
                return Ok(out);
            }
            if before == (d.total_in(), out.len()) && room {
                return Err(bad("truncated compressed message".into()));
            }
            if out.len() > MAX_FRAME * 4 {
                return Err(bad("compressed message inflates too far".into()));
            }
            out.reserve(out.capacity());
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    #[test]
    fn headers_of_every_length_form_and_partial_frames() {
        assert_eq!(parse_header(&[0x81]).unwrap(), None);
        assert_eq!(
            parse_header(&[0x81, 3, b'a', b'b', b'c']).unwrap(),
            Some(Header { fin: true, compressed: false, opcode: 1, payload: 2..5 })
        );
        assert_eq!(parse_header(&[0x81, 3, b'a']).unwrap(), None, "payload not all there yet");
        let mut long = vec![0x01, 126, 0x01, 0x00];
        long.extend(vec![b'x'; 256]);
        assert_eq!(
            parse_header(&long).unwrap(),
            Some(Header { fin: false, compressed: false, opcode: 1, payload: 4..260 })
        );
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(parse_header(&huge).unwrap(), None);
        assert!(parse_header(&[0x81, 0x83, 0, 0, 0, 0]).is_err(), "a masked server frame is refused");
    }

    #[test]
    fn client_frames_are_masked() {
        let frame = client_frame(1, b"hi");
        assert_eq!(frame[0], 0x81);
        assert_eq!(frame[1], 0x82);
        let key = &frame[2..6];
        let text: Vec<u8> = frame[6..].iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
        assert_eq!(text, b"hi");
    }

    /// Against tungstenite's server: handshake, a subscription read back, texts of every size (one spans
    /// several reads of the 4 KiB buffer), a fragmented message, a ping answered, and the close.
    #[tokio::test]
    async fn connects_from_the_source_address_given() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let mut peers = Vec::new();
        for source in [Ipv4Addr::new(127, 0, 0, 7), Ipv4Addr::new(127, 0, 0, 8)] {
            let client = tcp_connect(&host, Some(source)).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(client.local_addr().unwrap(), peer);
            peers.push(peer.ip());
        }
        assert_eq!(peers, [Ipv4Addr::new(127, 0, 0, 7), Ipv4Addr::new(127, 0, 0, 8)]);
        // Without a source the kernel picks, as before.
        let _client = tcp_connect(&host, None).await.unwrap();
        assert_eq!(listener.accept().await.unwrap().1.ip(), Ipv4Addr::LOCALHOST);
        // A source needs an address to connect to, not a name to resolve.
        let port = listener.local_addr().unwrap().port();
        let err = tcp_connect(&format!("localhost:{port}"), Some(Ipv4Addr::LOCALHOST)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn talks_to_a_real_websocket_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
            let Some(Ok(Message::Text(sub))) = ws.next().await else { panic!("no subscription") };
            ws.send(Message::text(format!("got {sub}"))).await.unwrap();
            for size in [1, 125, 126, 5000, 70_000] {
                ws.send(Message::text("x".repeat(size))).await.unwrap();
            }
            // A text message in two frames.
            ws.send(Message::Frame(Frame::message("ab", OpCode::Data(Data::Text), false))).await.unwrap();
            ws.send(Message::Frame(Frame::message("cd", OpCode::Data(Data::Continue), true))).await.unwrap();
            ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
            ws.send(Message::text("after the ping")).await.unwrap();
            let pong = loop {
                match ws.next().await {
                    Some(Ok(Message::Pong(p))) => break p,
                    Some(Ok(_)) => continue,
                    other => panic!("no pong: {other:?}"),
                }
            };
            assert_eq!(&pong[..], b"are you there");
            ws.close(None).await.unwrap();
        });
        let mut ws = RawWs::connect(&url).await.unwrap();
        ws.send_text("subscribe").await.unwrap();
        let mut texts = Vec::new();
        while let Next::Text(t) = ws.next_text().await.unwrap() {
            texts.push(if t.len() > 1 && t.bytes().all(|b| b == b'x') {
                format!("{} x", t.len())
            } else {
                t.to_owned()
            });
        }
        assert_eq!(texts, ["got subscribe", "x", "125 x", "126 x", "5000 x", "70000 x", "abcd", "after the ping"]);
        server.await.unwrap();
    }

    /// With `deflate`: the offer is sent, compressed messages (whole and in fragments) are inflated, plain
    /// ones still read, and every byte read after the handshake is counted.
    #[tokio::test]
    async fn deflate_offers_the_extension_and_inflates_compressed_messages() {
        use flate2::{Compress, Compression, FlushCompress};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                socket.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            assert!(String::from_utf8_lossy(&head).contains(DEFLATE_OFFER));
            socket
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n")
                .await
                .unwrap();
            let text = "y".repeat(3000);
            let mut c = Compress::new(Compression::fast(), false);
            let mut z = Vec::with_capacity(4096);
            c.compress_vec(text.as_bytes(), &mut z, FlushCompress::Sync).unwrap();
            z.truncate(z.len() - 4);
            let mut wire = vec![0xc1, z.len() as u8];
            wire.extend_from_slice(&z);
            // The same message in two fragments: RSV1 on the first only.
            let (a, b) = z.split_at(z.len() / 2);
            wire.extend_from_slice(&[0x41, a.len() as u8]);
            wire.extend_from_slice(a);
            wire.extend_from_slice(&[0x80, b.len() as u8]);
            wire.extend_from_slice(b);
            wire.extend_from_slice(&[0x81, 5]);
            wire.extend_from_slice(b"plain");
            wire.extend_from_slice(&[0x88, 2, 0x03, 0xe8]);
            socket.write_all(&wire).await.unwrap();
            wire.len() as u64
        });
        let mut ws = RawWs::connect_with(&url, true).await.unwrap();
        let mut texts = Vec::new();
        while let Next::Text(t) = ws.next_text().await.unwrap() {
            texts.push(if t.len() > 100 { format!("{} y", t.len()) } else { t.to_owned() });
        }
        assert_eq!(texts, ["3000 y", "3000 y", "plain"]);
        assert_eq!(ws.take_bytes(), server.await.unwrap());
        assert_eq!(ws.take_bytes(), 0);
    }

    #[tokio::test]
    async fn a_refused_handshake_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = socket.read(&mut buf).await;
            socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let err = RawWs::connect(&url).await.err().expect("refused");
        assert!(err.to_string().contains("404"), "{err}");
    }
}
