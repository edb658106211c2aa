//! A line-oriented TCP connection to one of IQConnect's ports on the local machine.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::feed::FeedError;

/// Longer lines than this are not IQFeed's (its longest, `S,STATS`, is a few hundred bytes): they are
/// skipped rather than buffered without bound.
const MAX_LINE: u64 = 16 * 1024;

/// What reading a line gave.
pub enum Line {
    Text(String),
    /// A line over [`MAX_LINE`] or not UTF-8: counted as malformed by the caller, then skipped.
    Unreadable(&'static str),
}

pub struct LineConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Bytes of a line not yet complete.
    pending: Vec<u8>,
    /// Inside an overlong line: discard up to its end.
    skipping: bool,
    /// The name of the port, for errors: `Level 1 port 127.0.0.1:5009`.
    pub name: String,
}

impl LineConn {
    /// Connects within `within`. Refused means IQConnect is not running (or not on that port).
    pub async fn open(port_name: &str, host: &str, port: u16, within: Duration) -> Result<LineConn, FeedError> {
        let name = format!("{port_name} {host}:{port}");
        let tcp = timeout(within, TcpStream::connect((host, port)))
            .await
            .map_err(|_| FeedError::Connect(format!("{name}: no answer within {within:?}")))?
            .map_err(|e| FeedError::Connect(format!("{name}: {e} (is IQConnect running?)")))?;
        let _ = tcp.set_nodelay(true);
        let (r, w) = tcp.into_split();
        Ok(LineConn { reader: BufReader::new(r), writer: w, pending: Vec::new(), skipping: false, name })
    }

    /// Sends one request line; `\r\n` is added.
    pub async fn send(&mut self, line: &str) -> Result<(), FeedError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.writer.write_all(&bytes).await.map_err(|e| FeedError::Disconnected(format!("{}: {e}", self.name)))
    }

    /// The next line, without its line ending. Cancel-safe: a partly read line stays in `pending`, so
    /// callers may select between ports.
    pub async fn next_line(&mut self) -> Result<Line, FeedError> {
        loop {
            let room = (MAX_LINE as usize).saturating_sub(self.pending.len()).max(1) as u64;
            let n = (&mut self.reader)
                .take(room)
                .read_until(b'\n', &mut self.pending)
                .await
                .map_err(|e| FeedError::Disconnected(format!("{}: {e}", self.name)))?;
            if n == 0 {
                return Err(FeedError::Disconnected(format!("{}: IQConnect closed the connection", self.name)));
            }
            let complete = self.pending.last() == Some(&b'\n');
            if self.skipping {
                // The tail of an overlong line, already reported.
                self.pending.clear();
                self.skipping = !complete;
                continue;
            }
            if !complete {
                if self.pending.len() as u64 >= MAX_LINE {
                    self.pending.clear();
                    self.skipping = true;
                    return Ok(Line::Unreadable("line too long"));
                }
                continue;
            }
            let mut buf = std::mem::take(&mut self.pending);
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            return match String::from_utf8(buf) {
                Ok(text) => Ok(Line::Text(text)),
                Err(_) => Ok(Line::Unreadable("not UTF-8")),
            };
        }
    }
}
