//! What a script's data does to the engine: streamed trades enter their symbol's aggregator exactly like
//! feed trades; market-data rows are put in place as bars; executed trades and indicator values go to the
//! stores. Shared by the Socket.IO events and the REST endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use candlecast_actors::aggregator::UpsertBars;
use candlecast_actors::engine::valid_symbol;
use candlecast_actors::messages::Ingest;
use candlecast_actors::model::{now_ms, Bar, Interval, InvalidTrade, Side, Symbol, TimestampError, Trade};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::csv::{parse_market_data, parse_trades, CsvLimitError, ExecutedTrade, MarketRow, Parsed, RowError};
use super::stats::ScriptStats;
use super::Scripts;

/// A trade as a script streams it: `{"symbol":"BTCUSDT","price":65000.5,"qty":0.01,"side":"buy","timestamp":1700000000000}`.
/// `side` (buy / sell) and `timestamp` (epoch ms or s, or ISO 8601) are optional; the time defaults to now.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TradeInput {
    pub symbol: String,
    pub price: f64,
    pub qty: f64,
    #[serde(default)]
    pub side: Option<String>,
    #[serde(default)]
    pub timestamp: Option<TimeInput>,
}

/// A timestamp as JSON: a number (epoch ms, or s below 10^11) or a string.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TimeInput {
    Number(f64),
    Text(String),
}

/// Seed 003's `send_trading_data` payload (also the REST body): `{"trades_csv","market_data_csv","timestamp"}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TradingData {
    #[serde(default)]
    pub trades_csv: Option<String>,
    #[serde(default)]
    pub market_data_csv: Option<String>,
    /// Echoed back in `data_received` and `trading_update`; now (ISO 8601) when absent.
    #[serde(default)]
    #[schema(schema_with = crate::http::asyncapi::any_value)]
    pub timestamp: Option<serde_json::Value>,
}

/// Why a CSV upload was refused as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Limit(#[from] CsvLimitError),
    #[error("the upload could not be parsed: the server is shutting down")]
    Unavailable,
}

/// Why a streamed trade was refused before its symbol was looked up; the text is its [`Refused::reason`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadTrade {
    /// As the script spelled it.
    #[error("symbol {0:?} is not valid (1-20 letters, digits, - _ .)")]
    Symbol(String),
    #[error("side must be buy or sell, got {0:?}")]
    Side(String),
    #[error("timestamp {0} is not a valid epoch time")]
    Epoch(f64),
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    #[error(transparent)]
    Invalid(#[from] InvalidTrade),
}

/// Why a symbol's market-data rows fit no interval this server builds; each of its rows is refused with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntervalError {
    #[error(
        "rows of this symbol are {gap_s} s apart, which is no interval (1s..1w); set [scripts] market_data_interval"
    )]
    NoInterval { gap_s: f64 },
    #[error("interval {0} is not built by this server (aggregator.intervals)")]
    NotBuilt(Interval),
}

/// A refused trade: its position in the batch and why.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Refused {
    pub index: usize,
    pub reason: String,
}

/// What happened to a batch of streamed trades (the acknowledgement's payload).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IngestSummary {
    pub accepted: usize,
    pub late_dropped: usize,
    pub rejected: Vec<Refused>,
}

/// Bars the market-data rows became.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BarCounts {
    pub inserted: usize,
    pub replaced: usize,
    pub unchanged: usize,
}

/// What a `send_trading_data` event or a `POST /api/trading-data` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TradingDataReport {
    /// `success` (every row kept), `partial` (some refused) or `error` (none kept, something refused).
    pub status: &'static str,
    pub message: String,
    /// Executed trades kept.
    pub trades: usize,
    /// Market-data rows kept (as bars).
    pub market_data: usize,
    /// Rows refused in total.
    pub rejected: usize,
    /// Refused rows, each with its CSV, line and reason (at most 1,000 listed).
    pub errors: Vec<RowError>,
    pub bars: BarCounts,
    /// The kept rows as CSV text (header first), for dashboards.
    #[serde(skip)]
    pub trades_csv: String,
    #[serde(skip)]
    pub market_data_csv: String,
}

impl Scripts {
    /// Folds streamed trades into their symbols' aggregators (a new symbol starts with source `script`).
    pub async fn ingest_trades(&self, batch: Vec<TradeInput>) -> IngestSummary {
        let mut summary = IngestSummary::default();
        let now = now_ms();
        // Per symbol, in batch order: the trades and their positions in the batch.
        let mut groups: BTreeMap<String, (Vec<Trade>, Vec<usize>)> = BTreeMap::new();
        for (index, input) in batch.into_iter().enumerate() {
            match to_trade(input, now) {
                Ok(trade) => {
                    let group = groups.entry(trade.symbol.to_string()).or_default();
                    group.0.push(trade);
                    group.1.push(index);
                }
                Err(reason) => summary.rejected.push(Refused { index, reason: reason.to_string() }),
            }
        }
        let mut sends = Vec::with_capacity(groups.len());
        for (symbol, (trades, positions)) in groups {
            match self.symbol_entry(&symbol).await {
                Ok(entry) => sends.push(async move { (entry.aggregator.send(Ingest { trades }).await, positions) }),
                Err(refused) => {
                    let reason = refused.to_string();
                    summary
                        .rejected
                        .extend(positions.into_iter().map(|index| Refused { index, reason: reason.clone() }))
                }
            }
        }
        for (report, positions) in join_all(sends).await {
            match report {
                Ok(report) => {
                    summary.accepted += report.accepted;
                    summary.late_dropped += report.late_dropped;
                    summary
                        .rejected
                        .extend(report.rejected.into_iter().map(|(i, reason)| Refused { index: positions[i], reason }));
                }
                Err(_) => summary.rejected.extend(
                    positions
                        .into_iter()
                        .map(|index| Refused { index, reason: "the symbol's aggregator is not available".into() }),
                ),
            }
        }
        summary.rejected.sort_by_key(|r| r.index);
        ScriptStats::add(&self.stats.trades_accepted, summary.accepted as u64);
        ScriptStats::add(&self.stats.trades_late_dropped, summary.late_dropped as u64);
        ScriptStats::add(&self.stats.trades_rejected, summary.rejected.len() as u64);
        summary
    }

    /// Seed 003's CSV pair: executed trades are kept, market-data rows become bars with their indicator
    /// values. Every refused row is reported by line; the good rows are kept. A CSV over a size limit is
    /// refused whole, before anything of the upload is kept.
    ///
    /// Parsing and writing the kept rows back as text run on the blocking pool, a few uploads at a time
    /// (one per core), never on the HTTP worker or the session's thread.
    pub async fn apply_trading_data(
        &self,
        trades_csv: Option<String>,
        market_data_csv: Option<String>,
    ) -> Result<TradingDataReport, UploadError> {
        let _permit = self.parse_slots.acquire().await.map_err(|_| UploadError::Unavailable)?;
        let limits = self.csv_limits;
        let parsed = actix_web::web::block(move || -> Result<_, CsvLimitError> {
            let trades = parse_trades(trades_csv.as_deref().unwrap_or(""), limits)?;
            let market = parse_market_data(market_data_csv.as_deref().unwrap_or(""), limits)?;
            let trades_text = trades.to_csv(|_| true);
            Ok((trades, trades_text, market))
        })
        .await
        .map_err(|_| UploadError::Unavailable)?;
        let (mut trades, mut trades_csv, mut market) = match parsed {
            Ok(p) => p,
            Err(e) => {
                let (counter, limit) = match e {
                    CsvLimitError::Columns { .. } => (&self.stats.refused_csv_columns, "scripts.max_csv_columns"),
                    CsvLimitError::Rows { .. } => (&self.stats.refused_csv_rows, "scripts.max_csv_rows"),
                };
                ScriptStats::add(counter, 1);
                candlecast_actors::refusals::refused(limit);
                return Err(e.into());
            }
        };
        let keep = self.trades.admit(&trades.rows);
        let over_budget = keep.iter().filter(|k| !**k).count();
        if over_budget > 0 {
            for _ in 0..over_budget {
                candlecast_actors::refusals::refused("scripts.max_trade_symbols");
            }
            // What is broadcast and answered holds only the kept rows.
            let (text, (mut kept_trades, keep)) =
                actix_web::web::block(move || (trades.to_csv(|i| keep[i]), (trades, keep)))
                    .await
                    .map_err(|_| UploadError::Unavailable)?;
            trades_csv = text;
            let mut position = 0;
            kept_trades.rows.retain(|_| {
                position += 1;
                keep[position - 1]
            });
            kept_trades.rejected += over_budget;
            kept_trades.errors.push(RowError {
                csv: "trades_csv",
                line: 0,
                reason: format!(
                    "{over_budget} trade(s) refused: they name symbols beyond scripts.max_trade_symbols ({}) \
                     distinct symbols with executed trades",
                    self.max_trade_symbols
                ),
            });
            trades = kept_trades;
        }
        self.trades.add(&trades.rows);
        self.keep_and_announce(&trades.rows).await;
        let (kept, bars) = self.apply_market_data(&mut market).await;
        let kept_rows = kept.iter().filter(|k| **k).count();
        let rejected = trades.rejected + market.rejected;
        let mut errors = trades.errors;
        errors.append(&mut market.errors);
        errors.sort_by_key(|e| (e.csv, e.line));
        let market_data_csv =
            actix_web::web::block(move || market.to_csv(|i| kept[i])).await.map_err(|_| UploadError::Unavailable)?;
        ScriptStats::add(&self.stats.executed_trades, trades.rows.len() as u64);
        ScriptStats::add(&self.stats.market_data_rows, kept_rows as u64);
        ScriptStats::add(&self.stats.csv_rows_rejected, rejected as u64);
        let stored = trades.rows.len() + kept_rows;
        let (status, message) = match (stored, rejected) {
            (_, 0) => (
                "success",
                format!("{} trade(s) and {kept_rows} market-data row(s) received and broadcast", trades.rows.len()),
            ),
            (0, _) => ("error", format!("no row was kept: {rejected} row(s) refused, see errors")),
            _ => (
                "partial",
                format!(
                    "{} trade(s) and {kept_rows} market-data row(s) kept; {rejected} row(s) refused, see errors",
                    trades.rows.len()
                ),
            ),
        };
        Ok(TradingDataReport {
            status,
            message,
            trades: trades.rows.len(),
            market_data: kept_rows,
            rejected,
            errors,
            bars,
            trades_csv,
            market_data_csv,
        })
    }

    /// The newest `limit` executed trades (of `symbol`, or all), sorted on the blocking pool: with every
    /// symbol that is up to `max_trades_per_symbol` × symbols trades.
    pub async fn recent_trades(self: &Arc<Self>, symbol: Option<String>, limit: usize) -> Vec<ExecutedTrade> {
        // Shares the upload parsers' slots: at most one sort per core, whoever asks.
        let Ok(_permit) = self.parse_slots.acquire().await else { return Vec::new() };
        let scripts = self.clone();
        actix_web::web::block(move || scripts.trades.recent(symbol.as_deref(), limit)).await.unwrap_or_default()
    }

    /// Puts market-data rows in place, per symbol, oldest first. Returns which rows were kept.
    async fn apply_market_data(&self, parsed: &mut Parsed<MarketRow>) -> (Vec<bool>, BarCounts) {
        let mut kept = vec![false; parsed.rows.len()];
        let mut counts = BarCounts::default();
        let mut by_symbol: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, row) in parsed.rows.iter().enumerate() {
            by_symbol.entry(row.symbol.clone()).or_default().push(i);
        }
        let now = now_ms();
        for (symbol, mut rows) in by_symbol {
            rows.sort_by_key(|&i| parsed.rows[i].timestamp);
            let interval =
                self.market_data_interval(&rows.iter().map(|&i| parsed.rows[i].timestamp).collect::<Vec<_>>());
            let prepared = match interval {
                Ok(iv) => self.symbol_entry(&symbol).await.map(|entry| (iv, entry)).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let (interval, entry) = match prepared {
                Ok(p) => p,
                Err(reason) => {
                    for &i in &rows {
                        parsed.refuse(parsed.rows[i].line, reason.clone());
                    }
                    continue;
                }
            };
            let mut bars = Vec::with_capacity(rows.len());
            let mut sent = Vec::with_capacity(rows.len());
            // Indicator values are checked against the store's total before their bars go in, so a row
            // is kept whole or refused whole.
            let mut room = self.indicators.remaining();
            for &i in &rows {
                let row = &parsed.rows[i];
                if row.indicators.len() > room {
                    parsed.refuse(
                        row.line,
                        "the server holds the most indicator values it keeps ([scripts] max_indicator_values); \
                         send the row without indicator columns"
                            .into(),
                    );
                    continue;
                }
                room -= row.indicators.len();
                if interval.align(row.timestamp) != row.timestamp {
                    let reason = format!(
                        "timestamp {} is not aligned to the {interval} interval",
                        candlecast_actors::model::format_iso(row.timestamp)
                    );
                    parsed.refuse(row.line, reason);
                    continue;
                }
                let closed = row.timestamp + interval.millis() <= now;
                let trades = row.trades.unwrap_or(1);
                bars.push(Bar {
                    symbol: entry.symbol.clone(),
                    interval,
                    open_time: row.timestamp,
                    open: row.open,
                    high: row.high,
                    low: row.low,
                    close: row.close,
                    volume: row.volume,
                    trades,
                    closed,
                });
                sent.push(i);
            }
            let report = match entry.aggregator.send(UpsertBars { bars }).await {
                Ok(r) => r,
                Err(_) => {
                    for &i in &sent {
                        parsed.refuse(parsed.rows[i].line, "the symbol's aggregator is not available".into());
                    }
                    continue;
                }
            };
            counts.inserted += report.inserted;
            counts.replaced += report.replaced;
            counts.unchanged += report.unchanged;
            let refused: BTreeMap<usize, String> = report.rejected.into_iter().collect();
            for (pos, &i) in sent.iter().enumerate() {
                let row = &parsed.rows[i];
                if let Some(reason) = refused.get(&pos) {
                    parsed.refuse(row.line, reason.clone());
                } else {
                    kept[i] = true;
                    // Fits but for a concurrent upload's values: the bar is kept, its values dropped.
                    if !self.indicators.set(&symbol, interval, row.timestamp, row.indicators.clone()) {
                        tracing::debug!(symbol, "indicator values over max_indicator_values dropped");
                    }
                }
            }
        }
        (kept, counts)
    }

    /// The interval of one symbol's market-data rows (ascending timestamps): configured, or the spacing
    /// of the rows, or 1m for a single row. It must be one the aggregators build.
    fn market_data_interval(&self, timestamps: &[i64]) -> Result<Interval, IntervalError> {
        let interval = match self.market_data_interval {
            Some(iv) => iv,
            None => {
                let gap = timestamps.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0).min();
                match gap {
                    None => Interval::M1,
                    Some(gap) => Interval::ALL
                        .into_iter()
                        .find(|iv| iv.millis() == gap)
                        .ok_or(IntervalError::NoInterval { gap_s: gap as f64 / 1000.0 })?,
                }
            }
        };
        if !self.market.settings().intervals().contains(&interval) {
            return Err(IntervalError::NotBuilt(interval));
        }
        Ok(interval)
    }
}

fn to_trade(input: TradeInput, now: i64) -> Result<Trade, BadTrade> {
    let symbol = Symbol::normalize(input.symbol.trim());
    if !valid_symbol(&symbol) {
        return Err(BadTrade::Symbol(input.symbol));
    }
    let side = match input.side.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Side::Unknown,
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        Some(other) => return Err(BadTrade::Side(other.to_owned())),
    };
    let exchange_ts = match input.timestamp {
        None => now,
        Some(TimeInput::Number(n)) => candlecast_actors::model::from_number(n).ok_or(BadTrade::Epoch(n))?,
        Some(TimeInput::Text(t)) => candlecast_actors::model::parse_timestamp(&t)?,
    };
    let trade = Trade {
        symbol: Symbol::from(symbol.as_str()),
        price: input.price,
        qty: input.qty,
        side,
        exchange_ts,
        received_ts: now,
        id: 0,
    };
    // Here, before the symbol is looked up (or created) and the aggregator sees it.
    trade.validate()?;
    Ok(trade)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(symbol: &str, side: Option<&str>, timestamp: Option<TimeInput>) -> TradeInput {
        TradeInput { symbol: symbol.into(), price: 10.0, qty: 1.0, side: side.map(Into::into), timestamp }
    }

    #[test]
    fn inputs_become_trades() {
        let t = to_trade(input("btcusdt", Some("SELL"), Some(TimeInput::Number(1_700_000_000.0))), 5).unwrap();
        assert_eq!((&*t.symbol, t.side, t.exchange_ts, t.received_ts), ("BTCUSDT", Side::Sell, 1_700_000_000_000, 5));
        let t = to_trade(input("X", None, None), 5).unwrap();
        assert_eq!((t.side, t.exchange_ts), (Side::Unknown, 5));
        let t = to_trade(input("X", Some("buy"), Some(TimeInput::Text("2023-01-01T10:00:00Z".into()))), 5).unwrap();
        assert_eq!(t.exchange_ts, 1_672_567_200_000);
        assert!(to_trade(input("not valid!", None, None), 5).unwrap_err().to_string().contains("symbol"));
        assert!(to_trade(input("X", Some("hold"), None), 5).unwrap_err().to_string().contains("side"));
        assert!(to_trade(input("X", None, Some(TimeInput::Text("soon".into()))), 5)
            .unwrap_err()
            .to_string()
            .contains("timestamp"));
    }

    #[test]
    fn poison_values_are_refused_with_a_reason() {
        for (price, qty, what) in
            [(10.0, 1e308, "quantity"), (10.0, -1.0, "quantity"), (10.0, 0.0, "quantity"), (1e300, 1.0, "price")]
        {
            let t = TradeInput { price, qty, ..input("X", None, None) };
            assert!(to_trade(t, 5).unwrap_err().to_string().contains(what), "{price} {qty}");
        }
    }

    #[test]
    fn trade_inputs_decode_from_json() {
        let t: TradeInput =
            serde_json::from_str(r#"{"symbol":"A","price":1.5,"qty":2,"timestamp":"2023-01-01T10:00:00"}"#).unwrap();
        assert!(matches!(t.timestamp, Some(TimeInput::Text(_))));
        assert!(serde_json::from_str::<TradeInput>(r#"{"symbol":"A","price":"x","qty":2}"#).is_err());
    }
}
