//! An upstream's HTTP reply read within a byte budget, for the feeds that speak REST (Kite, Shoonya): a
//! reply past the budget is refused as soon as it is known to be, instead of buffered without bound.

/// Why a reply body was not read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The connection failed mid-body; reqwest's text without the URL (it may carry a query or a key).
    #[error("{0}")]
    Read(String),
    #[error("the body is over the budget of {max} bytes")]
    TooLarge { max: u64 },
}

/// The body of `resp`, refused past `max_bytes` (by its `Content-Length` at once, else as it arrives).
pub async fn read_capped(mut resp: reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, BodyError> {
    let too_large = BodyError::TooLarge { max: max_bytes };
    if resp.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| BodyError::Read(e.without_url().to_string()))? {
        if (out.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on 127.0.0.1:0 answering `head` then `body`; the URL to ask it.
    async fn serve(head: &'static str, body: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
        });
        url
    }

    async fn read(head: &'static str, body: &[u8], max: u64) -> Result<Vec<u8>, BodyError> {
        let url = serve(head, body.to_vec()).await;
        read_capped(reqwest::get(url).await.unwrap(), max).await
    }

    #[tokio::test]
    async fn bodies_within_the_budget_are_read_and_larger_ones_refused() {
        let sized = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n";
        assert_eq!(read(sized, b"hello", 5).await, Ok(b"hello".to_vec()));
        // Refused by its Content-Length, before the body is read.
        assert_eq!(read(sized, b"hello", 4).await, Err(BodyError::TooLarge { max: 4 }));
        // No length announced: refused as the chunks pass the budget.
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        let body = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        assert_eq!(read(chunked, body, 6).await, Ok(b"abcdef".to_vec()));
        assert_eq!(read(chunked, body, 5).await, Err(BodyError::TooLarge { max: 5 }));
        assert_eq!(BodyError::TooLarge { max: 5 }.to_string(), "the body is over the budget of 5 bytes");
    }
}
