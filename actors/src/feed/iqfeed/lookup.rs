//! IQConnect's Lookup port (default 9100): `HIT` interval bars and `HDX` daily bars for the backfill, `HTT`
//! ticks to fill a reconnect's gap, `SBF` symbol lookups and the `SLM`/`SST` catalogues for the search.
//!
//! One connection per backfill: `S,SET PROTOCOL,6.2`, then one request at a time, each with its own
//! request id, its reply read up to `<id>,!ENDMSG!,`. `<id>,E,!NO_DATA!,` is an empty reply; any other
//! `E,` reply fails the backfill with IQFeed's reason (not retried: the feed starts from stored history).

use std::time::Duration;

use tokio::time::timeout;

use super::lines::{Line, LineConn};
use super::time::{request_time, utc_ms_to_eastern};
use super::wire::{daily_bar, interval_bar, parse_level1, parse_lookup, tick_trade, Level1, Lookup, System};
use super::IqFeedSettings;
use crate::feed::FeedError;
use crate::model::{Bar, Interval, Symbol, Trade};

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
        let mut bars: Vec<Bar> = self.rows(request, id, to_bar).await?;
        // Bars must move forward: a repeated or older row is dropped.
        let mut last = i64::MIN;
        bars.retain(|bar| {
            let newer = bar.open_time > last;
            last = last.max(bar.open_time);
            newer
        });
        Ok(bars)
    }

    /// `HTT,<symbol>,<begin>,,<max>,,,1,<id>,`: the trades since `since_ms` (at most `max`), oldest first.
    pub async fn ticks(&mut self, symbol: &Symbol, since_ms: i64, max: usize) -> Result<Vec<Trade>, FeedError> {
        let begin = utc_ms_to_eastern(since_ms).map(request_time).unwrap_or_default();
        let id = self.id("T");
        let request = format!("HTT,{symbol},{begin},,{max},,,1,{id},");
        let received = crate::model::now_ms();
        let rows = self.rows(&request, &id, |row| tick_trade(row, symbol, received)).await?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// `SBF,s,<search>,,,<id>`: instruments whose symbol contains `search` (IQFeed's symbol lookup), as
    /// `(symbol, listed market id, security type id, description)`.
    pub async fn symbols_by_filter(&mut self, search: &str) -> Result<Vec<SymbolRow>, FeedError> {
        let id = self.id("S");
        let request = format!("SBF,s,{search},,,{id}");
        self.rows(&request, &id, symbol_row).await
    }

    /// `SLM,<id>` (listed markets) or `SST,<id>` (security types): id → short name (`NASDAQ`, `EQUITY`).
    pub async fn catalogue(&mut self, kind: Catalogue) -> Result<Vec<(u32, String)>, FeedError> {
        let id = self.id("C");
        let command = match kind {
            Catalogue::ListedMarkets => "SLM",
            Catalogue::SecurityTypes => "SST",
        };
        self.rows(&format!("{command},{id}"), &id, catalogue_row).await
    }

    /// Sends `request` and reads its rows up to `<id>,!ENDMSG!,`, each through `parse`.
    async fn rows<T>(
        &mut self,
        request: &str,
        id: &str,
        parse: impl Fn(&[&str]) -> Result<T, FeedError>,
    ) -> Result<Vec<T>, FeedError> {
        self.conn.send(request).await?;
        let kind = request.split(',').next().unwrap_or("").to_owned();
        // Rows may take long in total; the timeout is per line (no answer at all), not per reply.
        let mut rows: Vec<T> = Vec::new();
        let mut bad = 0usize;
        loop {
            let line = self.within(async |c: &mut LookupClient| c.conn.next_line().await).await?;
            let Line::Text(line) = line else {
                bad += 1;
                continue;
            };
            match parse_lookup(&line, id) {
                Lookup::Row(row) => match parse(&row) {
                    Ok(row) => rows.push(row),
                    Err(e) => {
                        bad += 1;
                        tracing::warn!(error = %e, request = kind, "skipped a malformed lookup row");
                    }
                },
                Lookup::End => break,
                Lookup::NoData => {
                    // IQFeed still ends the reply with !ENDMSG!; the next request's id tells them apart.
                    rows.clear();
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
        Ok(rows)
    }
}

/// Which id → name list of the Lookup port.
#[derive(Debug, Clone, Copy)]
pub enum Catalogue {
    ListedMarkets,
    SecurityTypes,
}

/// One `SBF` row: `<symbol>,<listed market id>,<security type id>,<description>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolRow {
    pub symbol: String,
    pub market: u32,
    pub security_type: u32,
    pub description: String,
}

fn number(field: Option<&&str>, what: &str) -> Result<u32, FeedError> {
    let text = field.map(|f| f.trim()).unwrap_or("");
    text.parse().map_err(|_| FeedError::Malformed(format!("{what} {text:?} is not a number")))
}

fn symbol_row(row: &[&str]) -> Result<SymbolRow, FeedError> {
    let symbol = row.first().map(|s| s.trim()).unwrap_or("");
    if symbol.is_empty() {
        return Err(FeedError::Malformed("symbol lookup row without a symbol".into()));
    }
    Ok(SymbolRow {
        symbol: symbol.to_owned(),
        market: number(row.get(1), "listed market id")?,
        security_type: number(row.get(2), "security type id")?,
        // A description with a comma in it spans the remaining fields.
        description: row.get(3..).map(|rest| rest.join(",")).unwrap_or_default().trim().to_owned(),
    })
}

/// `<id number>,<short name>,<long name>,...` of `SLM` / `SST`.
fn catalogue_row(row: &[&str]) -> Result<(u32, String), FeedError> {
    let name = row.get(1).map(|s| s.trim()).unwrap_or("");
    if name.is_empty() {
        return Err(FeedError::Malformed("catalogue row without a name".into()));
    }
    Ok((number(row.first(), "catalogue id")?, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_and_catalogue_rows_are_read_and_broken_ones_refused() {
        let row = symbol_row(&["AAPL", "5", "1", "APPLE INC."]).unwrap();
        assert_eq!((row.symbol.as_str(), row.market, row.security_type), ("AAPL", 5, 1));
        assert_eq!(row.description, "APPLE INC.");
        assert_eq!(
            symbol_row(&["BRK.A", "7", "1", "BERKSHIRE HATHAWAY", " INC"]).unwrap().description,
            "BERKSHIRE HATHAWAY, INC"
        );
        assert!(symbol_row(&["", "5", "1", "X"]).is_err());
        assert!(symbol_row(&["AAPL", "five", "1", "X"]).is_err());
        assert_eq!(catalogue_row(&["5", "NASDAQ", "Nasdaq Global Select"]).unwrap(), (5, "NASDAQ".to_owned()));
        assert!(catalogue_row(&["x", "NASDAQ"]).is_err());
        assert!(catalogue_row(&["5"]).is_err());
    }
}
