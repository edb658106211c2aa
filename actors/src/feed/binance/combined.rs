//! Binance's combined streams: the `<symbol>@trade` streams of many symbols over one connection
//! (`/stream?streams=a@trade/b@trade`, frames wrapped as `{"stream": "...", "data": {...}}`), up to
//! Binance's limit of 1024 streams per connection. Chosen with `feed.binance.combined = true`.
//!
//! Each symbol keeps its own feed actor and connector (status, gap fill, backoff stay per symbol); only
//! the socket is shared. A connector's `connect` subscribes its symbol here and gets a channel of that
//! symbol's frames. The first symbol opens a connection with its stream in the URL; later ones join it
//! with a `SUBSCRIBE` request (batched every 250 ms, so that a thousand symbols reconnecting cost a few
//! requests, well within the 5 messages/s Binance allows); a symbol whose feed is removed leaves with
//! `UNSUBSCRIBE`, and a connection left without streams is closed. When a connection drops, every
//! symbol on it is told, and each reconnects through its own feed actor's backoff.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::ArbiterHandle;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::connection::Connection;
use super::BinanceSettings;
use crate::feed::FeedError;
use crate::model::Symbol;

/// Binance's documented maximum of streams on one connection.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;
const SUBSCRIBE_BATCH_EVERY: Duration = Duration::from_millis(250);

/// One frame for a symbol, or the loss of its connection.
pub type Delivery = Result<String, FeedError>;

enum MuxCmd {
    Subscribe { symbol: Symbol, deliver: mpsc::UnboundedSender<Delivery> },
    Unsubscribe { symbol: Symbol },
    Closed { conn: u64 },
}

enum ConnCmd {
    Subscribe { symbol: Symbol, deliver: mpsc::UnboundedSender<Delivery> },
    Unsubscribe { symbol: Symbol },
}

/// A handle on the shared connections. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct CombinedStreams {
    cmds: mpsc::UnboundedSender<MuxCmd>,
}

impl CombinedStreams {
    /// Starts the task that assigns symbols to connections, on `arbiter`.
    pub fn start(settings: &BinanceSettings, arbiter: &ArbiterHandle) -> CombinedStreams {
        let (cmds, rx) = mpsc::unbounded_channel();
        let mux = Mux {
            settings: settings.clone(),
            per_connection: settings.streams_per_connection.clamp(1, MAX_STREAMS_PER_CONNECTION),
            conns: HashMap::new(),
            next_id: 0,
            cmds: cmds.clone(),
        };
        arbiter.spawn(mux.run(rx));
        CombinedStreams { cmds }
    }

    /// Frames of `symbol`'s trade stream from now on (a new subscription replaces an older one).
    pub fn subscribe(&self, symbol: &Symbol) -> mpsc::UnboundedReceiver<Delivery> {
        let (deliver, frames) = mpsc::unbounded_channel();
        // If the task is gone, `frames` ends at once and the connector reports a disconnect.
        let _ = self.cmds.send(MuxCmd::Subscribe { symbol: symbol.clone(), deliver });
        frames
    }

    pub fn unsubscribe(&self, symbol: &Symbol) {
        let _ = self.cmds.send(MuxCmd::Unsubscribe { symbol: symbol.clone() });
    }
}

struct ConnEntry {
    cmds: mpsc::UnboundedSender<ConnCmd>,
    symbols: HashSet<Symbol>,
}

struct Mux {
    settings: BinanceSettings,
    per_connection: usize,
    conns: HashMap<u64, ConnEntry>,
    next_id: u64,
    /// For connections to say they closed.
    cmds: mpsc::UnboundedSender<MuxCmd>,
}

impl Mux {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<MuxCmd>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                MuxCmd::Subscribe { symbol, deliver } => self.place(symbol, deliver),
                MuxCmd::Unsubscribe { symbol } => self.remove(&symbol),
                MuxCmd::Closed { conn } => {
                    self.conns.remove(&conn);
                }
            }
        }
    }

    fn remove(&mut self, symbol: &Symbol) {
        for conn in self.conns.values_mut() {
            if conn.symbols.remove(symbol) {
                let _ = conn.cmds.send(ConnCmd::Unsubscribe { symbol: symbol.clone() });
            }
        }
    }

    /// On the connection that already carries the symbol (a reconnect: its frames go to the new
    /// channel), else on the first with room, else on a new one.
    fn place(&mut self, symbol: Symbol, mut deliver: mpsc::UnboundedSender<Delivery>) {
        let carrying = self.conns.iter().filter(|(_, c)| c.symbols.contains(&symbol)).map(|(id, _)| *id);
        let with_room = self.conns.iter().filter(|(_, c)| c.symbols.len() < self.per_connection).map(|(id, _)| *id);
        let candidates: Vec<u64> = carrying.chain(with_room).collect();
        for id in candidates {
            let Some(conn) = self.conns.get_mut(&id) else { continue };
            match conn.cmds.send(ConnCmd::Subscribe { symbol: symbol.clone(), deliver }) {
                Ok(()) => {
                    conn.symbols.insert(symbol);
                    return;
                }
                // That connection just ended (its Closed is on the way): try elsewhere.
                Err(mpsc::error::SendError(ConnCmd::Subscribe { deliver: d, .. })) => {
                    deliver = d;
                    self.conns.remove(&id);
                }
                Err(_) => return,
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let (cmds, rx) = mpsc::unbounded_channel();
        self.conns.insert(id, ConnEntry { cmds, symbols: HashSet::from([symbol.clone()]) });
        let (settings, mux) = (self.settings.clone(), self.cmds.clone());
        actix::spawn(async move {
            let mut routes = HashMap::from([(stream_name(&symbol), deliver)]);
            let end = run_connection(&settings, &mut routes, rx).await;
            let why = match end {
                Ok(()) => return finish(mux, id),
                Err(e) => e.to_string(),
            };
            tracing::warn!(conn = id, streams = routes.len(), error = %why, "combined stream connection lost");
            for deliver in routes.values() {
                let _ = deliver.send(Err(FeedError::Disconnected(why.clone())));
            }
            finish(mux, id)
        });
    }
}

fn finish(mux: mpsc::UnboundedSender<MuxCmd>, conn: u64) {
    let _ = mux.send(MuxCmd::Closed { conn });
}

/// `btcusdt@trade`: stream names are lower case.
fn stream_name(symbol: &Symbol) -> String {
    format!("{}@trade", symbol.to_ascii_lowercase())
}

/// Serves one connection until it fails (Err) or has no stream left (Ok).
async fn run_connection(
    settings: &BinanceSettings,
    routes: &mut HashMap<String, mpsc::UnboundedSender<Delivery>>,
    mut cmds: mpsc::UnboundedReceiver<ConnCmd>,
) -> Result<(), FeedError> {
    let streams: Vec<&str> = routes.keys().map(String::as_str).collect();
    let url = format!("{}/stream?streams={}", settings.ws_url.trim_end_matches('/'), streams.join("/"));
    let rotate_after = Duration::from_secs(settings.reconnect_after_secs.max(1));
    let mut conn = Connection::open(&url, rotate_after, settings.max_messages_per_second).await?;
    let (mut subscribe, mut unsubscribe): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut request_id: u64 = 0;
    let mut batch = tokio::time::interval(SUBSCRIBE_BATCH_EVERY);
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(ConnCmd::Subscribe { symbol, deliver }) => {
                    let name = stream_name(&symbol);
                    unsubscribe.retain(|s| *s != name);
                    // Already carried (a reconnect of that symbol's feed): only the channel changes.
                    if routes.insert(name.clone(), deliver).is_none() {
                        subscribe.push(name);
                    }
                }
                Some(ConnCmd::Unsubscribe { symbol }) => {
                    let name = stream_name(&symbol);
                    subscribe.retain(|s| *s != name);
                    routes.remove(&name);
                    unsubscribe.push(name);
                }
                None => return Ok(()),
            },
            text = conn.next_text() => route(text?, routes)?,
            _ = batch.tick(), if !subscribe.is_empty() || !unsubscribe.is_empty() => {
                for (method, params) in [("UNSUBSCRIBE", &mut unsubscribe), ("SUBSCRIBE", &mut subscribe)] {
                    if params.is_empty() {
                        continue;
                    }
                    request_id += 1;
                    let request = json!({"method": method, "params": std::mem::take(params), "id": request_id});
                    conn.send_text(request.to_string()).await?;
                }
            }
        }
        if routes.is_empty() {
            conn.close().await;
            return Ok(());
        }
    }
}

/// Just what routing needs from a frame. The `data` payload is skipped, not built into a tree: the
/// symbol's connector decodes it (once) from the text it is handed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    e: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<Value>,
}

/// Hands a frame to its symbol. Replies to requests are dropped; `serverShutdown` ends the connection.
fn route(text: String, routes: &HashMap<String, mpsc::UnboundedSender<Delivery>>) -> Result<(), FeedError> {
    let envelope: Envelope = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "skipped a malformed combined-stream frame");
            return Ok(());
        }
    };
    if let Some(stream) = envelope.stream {
        if let Some(deliver) = routes.get(stream.as_ref()) {
            let _ = deliver.send(Ok(text));
        }
        return Ok(());
    }
    if envelope.e.as_deref() == Some("serverShutdown") {
        return Err(FeedError::Disconnected("serverShutdown event: reconnecting ahead of the shutdown".into()));
    }
    if let Some(error) = envelope.error {
        tracing::warn!(%error, "Binance refused a combined-stream request");
    }
    Ok(())
}
