//! One WebSocket connection to Kite's ticker (`wss://ws.kite.trade?api_key=..&access_token=..`),
//! shared by every Kite feed of the process: Kite allows 3 connections per API key and 3,000
//! instruments on each, so a connection per symbol would stop at the fourth symbol.
//!
//! Each symbol keeps its own feed actor, connector, status and backoff; a connector's `connect`
//! subscribes its instrument token here and gets a channel of that instrument's packets. The first
//! subscription opens the connection; each subscription sends `{"a":"subscribe","v":[token]}` and
//! `{"a":"mode","v":["full",[token]]}` (all tokens at once after a (re)connect); a removed feed
//! unsubscribes, and a connection left without instruments is closed. When the connection is lost
//! every subscriber is told and reconnects through its own backoff; the first to come back opens a new
//! connection, the others join it.
//!
//! The URL carries the access token: it is never logged, and errors are scrubbed of it.

use std::collections::HashMap;
use std::time::Duration;

use actix::ArbiterHandle;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::rest::TOKEN_REFUSED;
use super::wire::{self, Text, Tick};
use super::KiteSettings;

/// Kite's documented limit of instruments on one connection.
pub const MAX_TOKENS: usize = 3000;

/// What a subscriber receives.
#[derive(Debug)]
pub enum Delivery {
    /// Subscribed on a live connection.
    Connected,
    Tick(Tick),
    /// A packet of this instrument (or a message no instrument can be named for) could not be read.
    Malformed(String),
    /// Kite's `{"type":"error"}` text: shown, not fatal.
    Notice(String),
    /// The connection is gone (or could not be made). `refused`: retrying cannot help (token refused).
    Lost {
        refused: bool,
        reason: String,
    },
}

enum Cmd {
    Subscribe { token: u32, deliver: mpsc::UnboundedSender<Delivery> },
    Unsubscribe { token: u32 },
}

/// A handle on the shared connection. Cheap to clone.
#[derive(Clone)]
pub struct Ticker {
    cmds: mpsc::UnboundedSender<Cmd>,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Routes = HashMap<u32, mpsc::UnboundedSender<Delivery>>;

impl Ticker {
    /// Starts the task that owns the connection, on `arbiter`.
    pub fn start(settings: &KiteSettings, arbiter: &ArbiterHandle) -> Ticker {
        let (cmds, rx) = mpsc::unbounded_channel();
        arbiter.spawn(run(settings.clone(), rx));
        Ticker { cmds }
    }

    /// Packets of `token` from now on; the first delivery says whether the subscription took.
    pub fn subscribe(&self, token: u32) -> mpsc::UnboundedReceiver<Delivery> {
        let (deliver, rx) = mpsc::unbounded_channel();
        // If the task is gone, `rx` ends at once and the connector reports it.
        let _ = self.cmds.send(Cmd::Subscribe { token, deliver });
        rx
    }

    pub fn unsubscribe(&self, token: u32) {
        let _ = self.cmds.send(Cmd::Unsubscribe { token });
    }
}

async fn run(settings: KiteSettings, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut routes: Routes = HashMap::new();
    loop {
        while routes.is_empty() {
            match cmds.recv().await {
                Some(Cmd::Subscribe { token, deliver }) => {
                    routes.insert(token, deliver);
                }
                Some(Cmd::Unsubscribe { token }) => {
                    routes.remove(&token);
                }
                None => return,
            }
        }
        let end = match open(&settings).await {
            Ok(ws) => serve(ws, &settings, &mut routes, &mut cmds).await,
            Err(lost) => Err(lost),
        };
        match end {
            Ok(true) => {}
            Ok(false) => return,
            Err(Delivery::Lost { refused, reason }) => {
                tracing::warn!(source = "kite", instruments = routes.len(), error = %reason, "Kite ticker connection lost");
                for (_, deliver) in routes.drain() {
                    let _ = deliver.send(Delivery::Lost { refused, reason: reason.clone() });
                }
            }
            Err(_) => routes.clear(),
        }
    }
}

fn lost(settings: &KiteSettings, reason: impl std::fmt::Display) -> Delivery {
    Delivery::Lost { refused: false, reason: super::redact(&reason.to_string(), settings) }
}

/// Connects and completes the WebSocket handshake. A 403 is Kite refusing the access token.
async fn open(settings: &KiteSettings) -> Result<Ws, Delivery> {
    let base = settings.ws_url.trim_end_matches('/');
    let url = format!("{}api_key={}&access_token={}", with_query(base), settings.api_key, settings.access_token);
    let within = Duration::from_millis(settings.timeout_ms.max(1));
    let name = base.split('?').next().unwrap_or(base).to_owned();
    match timeout(within, tokio_tungstenite::connect_async(url)).await {
        Err(_) => Err(lost(settings, format!("{name}: no answer within {within:?}"))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) if resp.status().as_u16() == 403 => {
            Err(Delivery::Lost { refused: true, reason: TOKEN_REFUSED.into() })
        }
        Ok(Err(tungstenite::Error::Http(resp))) => {
            Err(lost(settings, format!("{name}: the ticker answered HTTP {}", resp.status())))
        }
        Ok(Err(e)) => Err(lost(settings, format!("{name}: {e}"))),
    }
}

/// `wss://ws.kite.trade` → `wss://ws.kite.trade/?`: the request target needs a path (an HTTP request line
/// of `?api_key=..` alone is not one), and a URL that already has a query gets `&`.
fn with_query(base: &str) -> String {
    let authority_and_rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    let slash = if authority_and_rest.contains('/') { "" } else { "/" };
    let sep = if base.contains('?') { "&" } else { "?" };
    format!("{base}{slash}{sep}")
}

async fn send(ws: &mut Ws, settings: &KiteSettings, text: String) -> Result<(), Delivery> {
    ws.send(Message::text(text)).await.map_err(|e| lost(settings, format!("sending to the ticker: {e}")))
}

/// Subscribes `tokens` in full mode.
async fn subscribe(ws: &mut Ws, settings: &KiteSettings, tokens: &[u32]) -> Result<(), Delivery> {
    send(ws, settings, wire::subscribe(tokens)).await?;
    send(ws, settings, wire::full_mode(tokens)).await
}

/// Serves the connection. `Ok(true)`: no instrument left (closed); `Ok(false)`: the handle is gone;
/// `Err(Lost)`: the connection failed.
async fn serve(
    mut ws: Ws,
    settings: &KiteSettings,
    routes: &mut Routes,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
) -> Result<bool, Delivery> {
    let tokens: Vec<u32> = routes.keys().copied().collect();
    subscribe(&mut ws, settings, &tokens).await?;
    for deliver in routes.values() {
        let _ = deliver.send(Delivery::Connected);
    }
    // Kite sends a 1-byte heartbeat every second: silence this long means the connection is dead.
    let silence = Duration::from_millis(settings.timeout_ms.max(1000));
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Subscribe { token, deliver }) => {
                    if !routes.contains_key(&token) && routes.len() >= MAX_TOKENS {
                        let reason = format!("more than {MAX_TOKENS} Kite instruments: Kite's limit per connection");
                        let _ = deliver.send(Delivery::Lost { refused: true, reason });
                        continue;
                    }
                    subscribe(&mut ws, settings, &[token]).await?;
                    let _ = deliver.send(Delivery::Connected);
                    routes.insert(token, deliver);
                }
                Some(Cmd::Unsubscribe { token }) => {
                    if routes.remove(&token).is_some() {
                        send(&mut ws, settings, wire::unsubscribe(&[token])).await?;
                    }
                }
                None => {
                    let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
                    return Ok(false);
                }
            },
            msg = timeout(silence, ws.next()) => match msg {
                Err(_) => return Err(lost(settings, format!("no message from the ticker for {silence:?}"))),
                Ok(None) => return Err(lost(settings, "the ticker closed the connection")),
                Ok(Some(Err(e))) => return Err(lost(settings, format!("ticker connection: {e}"))),
                Ok(Some(Ok(Message::Binary(bytes)))) => route_binary(&bytes, routes),
                Ok(Some(Ok(Message::Text(text)))) => route_text(text.as_str(), routes),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                    return Err(lost(settings, format!("the ticker closed the connection: {why}")));
                }
                // Pings are answered by tungstenite on the next read.
                Ok(Some(Ok(_))) => {}
            },
        }
        if routes.is_empty() {
            let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
            return Ok(true);
        }
    }
}

/// Hands each packet to its instrument's subscriber; subscribers that went away are dropped.
fn route_binary(bytes: &[u8], routes: &mut Routes) {
    for packet in wire::decode_message(bytes) {
        match packet {
            Ok(tick) => {
                let token = tick.token;
                if let Some(deliver) = routes.get(&token) {
                    if deliver.send(Delivery::Tick(tick)).is_err() {
                        routes.remove(&token);
                    }
                }
            }
            Err(e) => match e.token().filter(|t| routes.contains_key(t)) {
                Some(token) => {
                    let _ = routes.get(&token).map(|d| d.send(Delivery::Malformed(e.to_string())));
                }
                // Not attributable to one instrument: every feed on the connection counts it.
                None => {
                    for deliver in routes.values() {
                        let _ = deliver.send(Delivery::Malformed(e.to_string()));
                    }
                }
            },
        }
    }
}

fn route_text(text: &str, routes: &Routes) {
    match wire::decode_text(text) {
        Some(Text::Error(why)) => {
            tracing::warn!(source = "kite", error = %why, "Kite ticker reported an error");
            for deliver in routes.values() {
                let _ = deliver.send(Delivery::Notice(why.clone()));
            }
        }
        Some(Text::Message(m)) => tracing::info!(source = "kite", message = %m, "Kite ticker message"),
        Some(Text::Other) => {}
        None => {
            for deliver in routes.values() {
                let _ = deliver.send(Delivery::Malformed("a text message that is not Kite's JSON".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_gets_a_path_and_a_query() {
        assert_eq!(with_query("wss://ws.kite.trade"), "wss://ws.kite.trade/?");
        assert_eq!(with_query("ws://127.0.0.1:9000/ticker"), "ws://127.0.0.1:9000/ticker?");
        assert_eq!(with_query("ws://127.0.0.1:9000/?x=1"), "ws://127.0.0.1:9000/?x=1&");
    }
}
