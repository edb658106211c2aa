//! History from IQConnect's Lookup port (default 9100): `HIT` interval bars and `HDX` daily bars.
//!
//! One connection per backfill: `S,SET PROTOCOL,6.2`, then one request at a time, each with its own
//! request id, its reply read up to `<id>,!ENDMSG!,`. `<id>,E,!NO_DATA!,` is an empty reply; any other
//! `E,` reply fails the backfill with IQFeed's reason (not retried: the feed starts from stored history).

use std::time::Duration;

use tokio::time::timeout;

use super::lines::{Line, LineConn};
use super::time::{request_time, utc_ms_to_eastern};
use super::wire::{daily_bar, interval_bar, parse_level1, parse_lookup, Level1, Lookup, System};
use super::IqFeedSettings;
use crate::feed::FeedError;
use crate::model::{Bar, Interval, Symbol};

/// Rows that did not parse are skipped and counted; a reply has at most this many before we give up.
const MAX_BAD_ROWS: usize = 1_000;

pub struct LookupClient {
    conn: LineConn,
    reply_timeout: Duration,
    next_id: u64,
    /// Rows skipped as malformed, for the feed's `malformed` figure.
    pub malformed: u64,
}

impl LookupClient {
    /// Connects and sets the protocol version.
    pub async fn open(settings: &IqFeedSettings) -> Result<LookupClient, FeedError> {
        let within = Duration::from_millis(settings.timeout_ms.max(1));
        let mut conn = LineConn::open("Lookup port", &settings.host, settings.lookup_port, within).await?;
        conn.send(&format!("S,SET PROTOCOL,{}", settings.protocol)).await?;
        let mut client = LookupClient { conn, reply_timeout: within, next_id: 0, malformed: 0 };
        let wanted = settings.protocol.clone();
        client
            .within(async |c: &mut LookupClient| loop {
                if let Line::Text(line) = c.conn.next_line().await? {
                    match parse_level1(&line) {
                        Ok(Level1::System(System::CurrentProtocol(v))) if v == wanted => return Ok(()),
                        Ok(Level1::System(System::CurrentProtocol(v))) => {
                            return Err(FeedError::Refused(format!("Lookup port speaks protocol {v}, not {wanted}")))
                        }
                        Ok(Level1::Error(e)) => return Err(FeedError::Refused(format!("Lookup port: {e}"))),
                        _ => {}
                    }
                }
            })
            .await?;
        Ok(client)
    }

    async fn within<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut LookupClient) -> Result<T, FeedError>,
    ) -> Result<T, FeedError> {
        let (limit, name) = (self.reply_timeout, self.conn.name.clone());
        timeout(limit, f(self)).await.map_err(|_| FeedError::Connect(format!("{name}: no reply within {limit:?}")))?
    }

    /// `HIT,<symbol>,<seconds>,<begin>,,,,,1,<id>,,s,1`: bars of `interval` since `since_ms`, oldest first,
    /// each labelled with the start of its interval.
    pub async fn interval_bars(
        &mut self,
        symbol: &Symbol,
        interval: Interval,
        since_ms: i64,
    ) -> Result<Vec<Bar>, FeedError> {
        let begin = utc_ms_to_eastern(since_ms).map(request_time).unwrap_or_default();
        let secs = interval.millis() / 1000;
        let id = self.id("H");
        let request = format!("HIT,{symbol},{secs},{begin},,,,,1,{id},,s,1");
        self.request(&request, &id, |row| interval_bar(row, symbol, interval)).await
    }

    /// `HDX,<symbol>,<days>,1,<id>,`: the last `days` daily bars, oldest first.
    pub async fn daily_bars(&mut self, symbol: &Symbol, days: u32) -> Result<Vec<Bar>, FeedError> {
        let id = self.id("D");
        let request = format!("HDX,{symbol},{days},1,{id},");
        self.request(&request, &id, |row| daily_bar(row, symbol)).await
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    async fn request(
        &mut self,
        request: &str,
        id: &str,
        to_bar: impl Fn(&[&str]) -> Result<Bar, FeedError>,
    ) -> Result<Vec<Bar>, FeedError> {
        self.conn.send(request).await?;
        let kind = request.split(',').next().unwrap_or("").to_owned();
        // Rows may take long in total; the timeout is per line (no answer at all), not per reply.
        let mut bars: Vec<Bar> = Vec::new();
        let mut bad = 0usize;
        loop {
            let line = self.within(async |c: &mut LookupClient| c.conn.next_line().await).await?;
            let Line::Text(line) = line else {
                bad += 1;
                continue;
            };
            match parse_lookup(&line, id) {
                Lookup::Row(row) => match to_bar(&row) {
                    // Bars must move forward: a repeated or older row is dropped.
                    Ok(bar) if bars.last().is_none_or(|last| bar.open_time > last.open_time) => bars.push(bar),
                    Ok(_) => {}
                    Err(e) => {
                        bad += 1;
                        tracing::warn!(error = %e, request = kind, "skipped a malformed history row");
                    }
                },
                Lookup::End => break,
                Lookup::NoData => {
                    // IQFeed still ends the reply with !ENDMSG!; the next request's id tells them apart.
                    bars.clear();
                }
                Lookup::Error(reason) => {
                    return Err(FeedError::Refused(format!("IQFeed refused {kind} ({request}): {reason}")));
                }
                Lookup::Other => {}
            }
            if bad > MAX_BAD_ROWS {
                return Err(FeedError::Malformed(format!("{kind}: more than {MAX_BAD_ROWS} malformed rows")));
            }
        }
        self.malformed += bad as u64;
        Ok(bars)
    }
}
