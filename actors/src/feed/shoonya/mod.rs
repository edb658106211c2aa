//! Shoonya (Finvasia) through Noren OMS's API, for NSE, BSE, NFO, BFO, MCX, CDS and NCX. Symbols are
//! `EXCHANGE:TRADINGSYMBOL` (`NSE:INFY-EQ`, `NFO:NIFTY28DEC23F`), resolved to Noren's `EXCH|token`
//! through the exchange's symbol master. One connector per symbol:
//!
//! - [`session`]: the shared login (`QuickAuth`, or a configured `susertoken`), REST calls, masters.
//! - [`masters`]: the symbol masters (zipped CSV per exchange), from a URL or a local file.
//! - WebSocket (`ws_url`): `{"t":"c",...}` -> `{"t":"ck","s":"OK"}`, then touchline `{"t":"t","k":"NSE|1594"}`
//!   -> a `tk` snapshot, then `tf` updates; `{"t":"h"}` heartbeats. Updates become trades by the rule of
//!   [`wire::TradeRule`] (cumulative volume growth at the last price and feed time).
//! - History at start: `TPSeries` 1-minute bars for `backfill_days`, resampled for coarser intervals.
//! - [`wire`]: the JSON messages and their conversion into our `Trade` and `Bar`.
//!
//! Lost connections reconnect with backoff; a refused session logs in again (or, without credentials,
//! stops the feed saying so); an unknown symbol is terminal for that symbol.

pub(crate) mod masters;
pub(crate) mod session;
pub(crate) mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::{interval_at, timeout, Instant, Interval as Ticker, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use self::masters::{Instrument, MAX_MASTER_BYTES};
use self::session::{is_session_error, Shared};
use self::wire::{minute_bar, parse_series, parse_ws, Series, TradeRule, WsMessage};
use super::{Connector, FeedError, FeedStatus};
use crate::model::{resample, Bar, Interval, Symbol, Trade};
use crate::persist::history::Held;

/// The exchanges Shoonya serves.
pub const EXCHANGES: &[&str] = &["NSE", "BSE", "NFO", "BFO", "MCX", "CDS", "NCX"];
/// Noren's touchline messages are a few hundred bytes; anything far larger is not one.
const MAX_WS_MESSAGE: usize = 64 * 1024;
/// TPSeries rows that do not parse are skipped and counted; more than this and the reply is refused.
const MAX_BAD_ROWS: usize = 1_000;

/// Settings of the Shoonya feed (`[feed.shoonya]` in the config).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShoonyaSettings {
    /// REST base: `{api_url}/QuickAuth`, `{api_url}/TPSeries`.
    pub api_url: String,
    pub ws_url: String,
    /// Where each exchange's symbol master is: a URL or a local path, `{exchange}` replaced by `NSE`,
    /// `NFO`...; zipped or plain text.
    pub masters: String,
    pub max_master_bytes: u64,
    pub uid: String,
    /// The account id sent with the WebSocket connect (`actid`); empty: the uid.
    pub actid: String,
    pub vendor_code: String,
    pub imei: String,
    /// Secrets: prefer the environment (`CANDLECAST__FEED__SHOONYA__PASSWORD`, ...). Never logged.
    pub password: String,
    /// The base32 TOTP secret of the account's authenticator; the 6-digit code is made at each login.
    pub totp_secret: String,
    pub api_secret: String,
    /// A `susertoken` obtained elsewhere: used first, without a login.
    pub session_token: String,
    /// Days of 1-minute TPSeries bars loaded at start (0: none).
    pub backfill_days: u32,
    /// Timeout of a REST request and of the WebSocket connect and acknowledgement, ms.
    pub timeout_ms: u64,
    /// Seconds between `{"t":"h"}` heartbeats.
    pub heartbeat_secs: u64,
}

impl Default for ShoonyaSettings {
    fn default() -> Self {
        ShoonyaSettings {
            api_url: "https://api.shoonya.com/NorenWClientTP".into(),
            ws_url: "wss://api.shoonya.com/NorenWSTP/".into(),
            masters: "https://api.shoonya.com/{exchange}_symbols.txt.zip".into(),
            max_master_bytes: MAX_MASTER_BYTES,
            uid: String::new(),
            actid: String::new(),
            vendor_code: String::new(),
            imei: "candlecast".into(),
            password: String::new(),
            totp_secret: String::new(),
            api_secret: String::new(),
            session_token: String::new(),
            backfill_days: 5,
            timeout_ms: 10_000,
            heartbeat_secs: 3,
        }
    }
}

impl ShoonyaSettings {
    /// Whether a `QuickAuth` login is possible.
    pub fn can_login(&self) -> bool {
        [&self.uid, &self.password, &self.totp_secret, &self.vendor_code, &self.api_secret]
            .iter()
            .all(|s| !s.is_empty())
    }
}

/// Credentials stay out of logs and error messages, including `{:?}` of the whole configuration.
impl std::fmt::Debug for ShoonyaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ShoonyaSettings")
            .field("api_url", &self.api_url)
            .field("ws_url", &self.ws_url)
            .field("masters", &self.masters)
            .field("max_master_bytes", &self.max_master_bytes)
            .field("uid", &self.uid)
            .field("actid", &self.actid)
            .field("vendor_code", &self.vendor_code)
            .field("imei", &self.imei)
            .field("password", &hidden(&self.password))
            .field("totp_secret", &hidden(&self.totp_secret))
            .field("api_secret", &hidden(&self.api_secret))
            .field("session_token", &hidden(&self.session_token))
            .field("backfill_days", &self.backfill_days)
            .field("timeout_ms", &self.timeout_ms)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .finish()
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open, subscribed WebSocket and the token it was opened with.
struct Live {
    ws: Ws,
    token: Arc<str>,
    heartbeat: Ticker,
}

/// Shoonya for one symbol.
pub struct ShoonyaConnector {
    symbol: Symbol,
    exchange: String,
    trading_symbol: String,
    shared: Arc<Shared>,
    instrument: Option<Instrument>,
    live: Option<Live>,
    rule: TradeRule,
    status: Arc<FeedStatus>,
}

impl ShoonyaConnector {
    /// `symbol` must be `EXCHANGE:TRADINGSYMBOL` with one of [`EXCHANGES`].
    pub fn new(symbol: Symbol, shared: Arc<Shared>) -> Result<ShoonyaConnector, FeedError> {
        let (exchange, trading_symbol) = symbol
            .split_once(':')
            .filter(|(e, t)| EXCHANGES.contains(e) && !t.is_empty())
            .map(|(e, t)| (e.to_owned(), t.to_owned()))
            .ok_or_else(|| {
                FeedError::Refused(format!(
                    "Shoonya symbols are EXCHANGE:TRADINGSYMBOL with an exchange of {}, e.g. NSE:INFY-EQ; got {symbol}",
                    EXCHANGES.join(", ")
                ))
            })?;
        Ok(ShoonyaConnector {
            symbol,
            exchange,
            trading_symbol,
            shared,
            instrument: None,
            live: None,
            rule: TradeRule::default(),
            status: Arc::default(),
        })
    }

    fn within(&self) -> Duration {
        Duration::from_millis(self.shared.settings.timeout_ms.max(1))
    }

    fn malformed(&self, error: &FeedError) {
        self.status.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(symbol = %self.symbol, source = "shoonya", %error, "skipped a malformed message");
    }

    /// The symbol's instrument from the exchange's master; an unknown symbol is terminal.
    async fn instrument(&mut self) -> Result<Instrument, FeedError> {
        if let Some(i) = &self.instrument {
            return Ok(i.clone());
        }
        let master = self.shared.master(&self.exchange).await?;
        let found = master.get(&self.trading_symbol).cloned().ok_or_else(|| {
            FeedError::Refused(format!(
                "{} is not in Shoonya's {} symbol master ({})",
                self.trading_symbol,
                self.exchange,
                masters::master_source(&self.shared.settings.masters, &self.exchange)
            ))
        })?;
        self.instrument = Some(found.clone());
        Ok(found)
    }

    /// `POST TPSeries` for 1-minute bars from `since_ms` to `now_ms`, oldest first.
    async fn minute_bars(&self, inst: &Instrument, since_ms: i64, now_ms: i64) -> Result<Vec<Bar>, FeedError> {
        let s = &self.shared.settings;
        for attempt in 0..2 {
            let token = self.shared.token().await?;
            let data = json!({
                "uid": s.uid,
                "exch": inst.exchange,
                "token": inst.token,
                "st": (since_ms / 1000).to_string(),
                "et": (now_ms / 1000).to_string(),
                "intrv": "1",
            });
            let rows = match parse_series(self.shared.post("TPSeries", &data, Some(&token)).await?)? {
                Series::Rows(rows) => rows,
                Series::Refused(why) if is_session_error(&why) => {
                    let err = self.shared.invalidate(&token, &why).await;
                    if attempt == 0 && !err.is_terminal() {
                        continue;
                    }
                    return Err(err);
                }
                Series::Refused(why) => {
                    return Err(FeedError::Refused(format!("TPSeries: {}", self.shared.redact(&why, Some(&token)))))
                }
            };
            let mut bad = 0usize;
            let mut bars: Vec<Bar> = Vec::with_capacity(rows.len());
            for row in &rows {
                match minute_bar(row, &self.symbol) {
                    Ok(bar) => bars.push(bar),
                    Err(e) => {
                        bad += 1;
                        tracing::warn!(symbol = %self.symbol, error = %e, "skipped a malformed TPSeries row");
                        if bad > MAX_BAD_ROWS {
                            return Err(FeedError::Malformed(format!("TPSeries: more than {MAX_BAD_ROWS} bad rows")));
                        }
                    }
                }
            }
            self.status.malformed.fetch_add(bad as u64, Ordering::Relaxed);
            // Noren answers newest first; one bar per minute, oldest first.
            bars.sort_by_key(|b| b.open_time);
            bars.dedup_by_key(|b| b.open_time);
            return Ok(bars);
        }
        Err(FeedError::Refused("TPSeries: the session was refused twice".into()))
    }

    /// Opens the WebSocket and sends the connect message; waits for `ck`.
    async fn open(&self, token: &Arc<str>) -> Result<Ws, FeedError> {
        let s = &self.shared.settings;
        let within = self.within();
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_WS_MESSAGE);
        config.max_frame_size = Some(MAX_WS_MESSAGE);
        let (mut ws, _) =
            timeout(within, tokio_tungstenite::connect_async_with_config(s.ws_url.as_str(), Some(config), false))
                .await
                .map_err(|_| FeedError::Connect(format!("{}: no answer within {within:?}", s.ws_url)))?
                .map_err(|e| FeedError::Connect(format!("{}: {e}", s.ws_url)))?;
        let actid = if s.actid.is_empty() { &s.uid } else { &s.actid };
        let hello = json!({"t": "c", "uid": s.uid, "actid": actid, "susertoken": &**token, "source": "API"});
        ws.send(Message::text(hello.to_string())).await.map_err(|e| FeedError::Disconnected(e.to_string()))?;
        let ack = async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => match parse_ws(t.as_str()) {
                        Ok(WsMessage::Connected(result)) => return Ok(result),
                        Ok(_) => {}
                        Err(e) => self.malformed(&e),
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        return Err(FeedError::Disconnected("Noren closed the connection before acknowledging".into()))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(FeedError::Disconnected(e.to_string())),
                }
            }
        };
        let ack = timeout(within, ack).await.map_err(|_| FeedError::Connect(format!("no ck within {within:?}")))??;
        match ack {
            Ok(()) => Ok(ws),
            Err(why) => Err(self.shared.invalidate(token, &why).await),
        }
    }
}

impl Connector for ShoonyaConnector {
    fn source(&self) -> crate::feed::FeedSource {
        crate::feed::FeedSource::Shoonya
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    fn attach_status(&mut self, status: Arc<FeedStatus>) {
        self.status = status;
    }

    /// 1-minute TPSeries bars for 1m and up (days resampled from them); none for sub-minute intervals.
    async fn backfill(
        &mut self,
        now: i64,
        intervals: &[Interval],
        _held: &Held,
    ) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        let days = self.shared.settings.backfill_days;
        if days == 0 || !intervals.iter().any(|iv| *iv >= Interval::M1) {
            return Ok(Vec::new());
        }
        let inst = self.instrument().await?;
        let minutes = self.minute_bars(&inst, now - i64::from(days) * 86_400_000, now).await?;
        let mut out = Vec::new();
        for &iv in intervals.iter().filter(|iv| **iv >= Interval::M1) {
            let mut bars = if iv == Interval::M1 { minutes.clone() } else { resample(&minutes, iv) };
            for bar in &mut bars {
                bar.closed = bar.close_time() <= now;
            }
            if !bars.is_empty() {
                out.push((iv, bars));
            }
        }
        Ok(out)
    }

    /// Resolves the symbol, gets the session, connects, subscribes to the touchline.
    async fn connect(&mut self) -> Result<(), FeedError> {
        self.live = None;
        let inst = self.instrument().await?;
        let token = self.shared.token().await?;
        let mut ws = self.open(&token).await?;
        let key = format!("{}|{}", inst.exchange, inst.token);
        ws.send(Message::text(json!({"t": "t", "k": key}).to_string()))
            .await
            .map_err(|e| FeedError::Disconnected(e.to_string()))?;
        let every = Duration::from_secs(self.shared.settings.heartbeat_secs.max(1));
        let mut heartbeat = interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.live = Some(Live { ws, token, heartbeat });
        Ok(())
    }

    /// The next trade; snapshots, price-only updates, other tokens and heartbeats are passed over.
    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        let Some(inst) = self.instrument.clone() else {
            return Err(FeedError::Disconnected("not connected".into()));
        };
        loop {
            let Some(live) = self.live.as_mut() else {
                return Err(FeedError::Disconnected("not connected".into()));
            };
            let msg = tokio::select! {
                msg = live.ws.next() => msg,
                _ = live.heartbeat.tick() => {
                    if let Err(e) = live.ws.send(Message::text(r#"{"t":"h"}"#)).await {
                        self.live = None;
                        return Err(FeedError::Disconnected(format!("heartbeat: {e}")));
                    }
                    continue;
                }
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                Some(Ok(Message::Close(frame))) => {
                    self.live = None;
                    let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                    return Err(FeedError::Disconnected(format!("Noren closed the connection {why}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.live = None;
                    return Err(FeedError::Disconnected(e.to_string()));
                }
                None => {
                    self.live = None;
                    return Err(FeedError::Disconnected("Noren closed the connection".into()));
                }
            };
            let received = crate::model::now_ms();
            match parse_ws(&text) {
                Ok(WsMessage::Snapshot(t)) if t.token == inst.token => {
                    self.status.last_message_ms.store(received, Ordering::Relaxed);
                    let missed = self.rule.snapshot(&t);
                    if missed > 0.0 {
                        // Traded while we were away: not emitted, so never twice and never invented.
                        self.status.gaps_unfilled.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(symbol = %self.symbol, missed, "volume traded while disconnected is missing");
                    }
                }
                Ok(WsMessage::Update(t)) if t.token == inst.token => {
                    if let Some(trade) = self.rule.update(&t, &self.symbol, received) {
                        return Ok(vec![trade]);
                    }
                    self.status.last_message_ms.store(received, Ordering::Relaxed);
                }
                Ok(WsMessage::Connected(Err(why))) => {
                    let token = live_token(&self.live);
                    self.live = None;
                    return Err(self.shared.invalidate(&token, &why).await);
                }
                Ok(_) => {}
                Err(e) => self.malformed(&e),
            }
        }
    }
}

fn live_token(live: &Option<Live>) -> Arc<str> {
    live.as_ref().map(|l| l.token.clone()).unwrap_or_else(|| Arc::from(""))
}
