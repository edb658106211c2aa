//! `candlecast store export|import`: one symbol and interval of the local store (embedded or segments) to CSV, and CSV rows
//! back into it, each row checked as every other way in checks a bar ([`Bar::invalid_reason`]).
//!
//! One process holds a local store at a time: against the directory of a running server both stop with a
//! message saying so, before reading or writing anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candlecast_actors::model::{now_ms, Bar, Interval, Symbol};
use candlecast_actors::persist::{Range, Store, StoreError, StoreKind, StoreSettings, StoredBar};

use super::StoreCommand;
use candlecast_actors::model::parse_timestamp;

/// The CSV header both commands use.
pub const HEADER: &str = "symbol,interval,open_time,open,high,low,close,volume,trades";
/// Bars read from or written to the store at once.
const BATCH: usize = 20_000;
/// A longer line is refused without reading it whole (a row is under 200 bytes).
const MAX_LINE_BYTES: u64 = 4096;
/// Refused rows listed one by one; beyond this they are only counted.
const MAX_LISTED_REFUSALS: usize = 100;
/// How often a long export or import says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub fn run(command: StoreCommand, config: Option<&Path>) -> anyhow::Result<()> {
    let config = crate::Config::load(config)?;
    if !matches!(config.store.kind, StoreKind::Embedded | StoreKind::Segments) {
        bail!(
            "store export and import work on the local stores (embedded, segments); this configuration has \
             store.kind = {:?}",
            config.store.kind
        );
    }
    let settings = config.store.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let store = open(&settings)?;
        let store = &*store;
        let result = match command {
            StoreCommand::Export { symbol, interval, from, to, out } => {
                export(store, &symbol, &interval, from.as_deref(), to.as_deref(), out.as_deref()).await
            }
            StoreCommand::Import { file } => import(store, &file).await,
        };
        let closed = store.close().await;
        result?;
        closed.context("closing the store")
    })
}

/// Opens the store, saying plainly when a running server holds it.
fn open(settings: &StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    let dir = &settings.path;
    match candlecast_actors::persist::open(settings) {
        Ok(Some(store)) => Ok(store),
        Ok(None) => bail!("store.kind = \"none\" keeps no store"),
        Err(StoreError::Open(msg)) if msg.contains("already open") => bail!(
            "the store in {} is held by a running candlecast (one process opens it at a time): stop that server \
             first, or export from a copy of the directory",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("store in {}", dir.display())),
    }
}

async fn export(
    store: &dyn Store,
    symbol: &str,
    interval: &str,
    from: Option<&str>,
    to: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let interval: Interval = interval.parse().map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    let time = |arg: Option<&str>, name: &str| -> anyhow::Result<Option<i64>> {
        arg.map(|t| parse_timestamp(t).map_err(|e| anyhow::anyhow!("--{name}: {e}"))).transpose()
    };
    let (start, mut end) = (time(from, "from")?, time(to, "to")?);
    let symbol = Symbol::from(symbol);
    // The store reads the newest bars of a range: pages go backwards, then the whole is written oldest first.
    let mut pages: Vec<Vec<Bar>> = Vec::new();
    let (started, mut said) = (Instant::now(), Instant::now());
    let mut read = 0usize;
    loop {
        let page = store.bars(&symbol, Range { interval, start, end, limit: BATCH }).await?;
        let (n, first) = (page.len(), page.first().map(|b| b.open_time));
        read += n;
        pages.push(page);
        if said.elapsed() >= PROGRESS_EVERY {
            eprintln!("export: {read} bars read ({:.0} bars/s)", read as f64 / started.elapsed().as_secs_f64());
            said = Instant::now();
        }
        match first {
            Some(t) if n == BATCH => end = Some(t),
            _ => break,
        }
    }
    let mut writer: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    writeln!(writer, "{HEADER}")?;
    for bar in pages.iter().rev().flatten() {
        writeln!(
            writer,
            "{},{},{},{},{},{},{},{},{}",
            bar.symbol, bar.interval, bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades
        )?;
    }
    writer.flush()?;
    eprintln!("export: {read} bars of {symbol} {interval}");
    Ok(())
}

async fn import(store: &dyn Store, file: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let total_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(f);
    let mut line = String::new();
    let mut progress = Progress::new(total_bytes);
    let source: Arc<str> = Arc::from("import");
    let (mut batch, mut imported, mut refused) = (Vec::with_capacity(BATCH), 0usize, 0usize);
    let mut number = 0usize;
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE_BYTES + 1).read_line(&mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        progress.read(n as u64);
        let row = line.trim_end_matches(['\n', '\r']);
        let outcome = if n as u64 > MAX_LINE_BYTES && !line.ends_with('\n') {
            skip_rest_of_line(&mut reader, &mut progress)?;
            Err(BadRow::TooLong)
        } else if number == 1 {
            if row.trim() != HEADER {
                bail!("{}: the first line must be the header {HEADER:?} (as store export writes it)", file.display());
            }
            continue;
        } else if row.trim().is_empty() {
            continue;
        } else {
            parse_row(row)
        };
        match outcome {
            Ok(bar) => batch.push(StoredBar { bar, source: source.clone(), revised: now_ms() }),
            Err(reason) => {
                refused += 1;
                if refused <= MAX_LISTED_REFUSALS {
                    eprintln!("refused line {number}: {reason}");
                }
            }
        }
        if batch.len() >= BATCH {
            imported += batch.len();
            store.write(Arc::from(std::mem::take(&mut batch))).await?;
            progress.say(imported, refused);
        }
    }
    imported += batch.len();
    if !batch.is_empty() {
        store.write(Arc::from(batch)).await?;
    }
    if refused > MAX_LISTED_REFUSALS {
        eprintln!("... and {} more refused lines", refused - MAX_LISTED_REFUSALS);
    }
    println!("imported {imported} bars, refused {refused} rows, from {}", file.display());
    Ok(())
}

fn skip_rest_of_line(reader: &mut impl BufRead, progress: &mut Progress) -> std::io::Result<()> {
    let mut skipped = Vec::new();
    loop {
        skipped.clear();
        let n = reader.take(64 * 1024).read_until(b'\n', &mut skipped)?;
        progress.read(n as u64);
        if n == 0 || skipped.ends_with(b"\n") {
            return Ok(());
        }
    }
}

/// Why `store import` refused a line (printed with its number; the import goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRow {
    #[error("longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error("expected 9 columns ({HEADER}), got {0}")]
    Columns(usize),
    /// The field as the file spelled it, from here on.
    #[error("symbol {0:?} is not a valid symbol")]
    Symbol(String),
    #[error("interval {0:?} is not an interval")]
    Interval(String),
    #[error("open_time must be epoch milliseconds, got {0:?}")]
    OpenTime(String),
    #[error("{name} is not a number: {raw:?}")]
    NotANumber { name: &'static str, raw: String },
    #[error("trades must be a whole number, got {0:?}")]
    Trades(String),
    /// What [`Bar::invalid_reason`] says of the bar.
    #[error("{0}")]
    InvalidBar(&'static str),
}

/// One CSV row as a closed bar, or why not.
pub fn parse_row(row: &str) -> Result<Bar, BadRow> {
    let fields: Vec<&str> = row.split(',').map(str::trim).collect();
    let [symbol, interval, open_time, open, high, low, close, volume, trades] = fields[..] else {
        return Err(BadRow::Columns(fields.len()));
    };
    if !candlecast_actors::engine::valid_symbol(symbol) {
        return Err(BadRow::Symbol(symbol.to_owned()));
    }
    let interval: Interval = interval.parse().map_err(|_| BadRow::Interval(interval.to_owned()))?;
    let open_time: i64 = open_time.parse().map_err(|_| BadRow::OpenTime(open_time.to_owned()))?;
    let number = |name: &'static str, raw: &str| -> Result<f64, BadRow> {
        raw.parse::<f64>().map_err(|_| BadRow::NotANumber { name, raw: raw.to_owned() })
    };
    let bar = Bar {
        symbol: Symbol::from(symbol),
        interval,
        open_time,
        open: number("open", open)?,
        high: number("high", high)?,
        low: number("low", low)?,
        close: number("close", close)?,
        volume: number("volume", volume)?,
        trades: trades.parse().map_err(|_| BadRow::Trades(trades.to_owned()))?,
        closed: true,
    };
    // The same question every other boundary asks of a bar from outside (finite, positive, low <= high, ...).
    match bar.invalid_reason() {
        Some(reason) => Err(BadRow::InvalidBar(reason)),
        None => Ok(bar),
    }
}

/// "How far, how fast, how long still" for a long import, every [`PROGRESS_EVERY`].
struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    said: Instant,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress { total, done: 0, started: Instant::now(), said: Instant::now() }
    }

    fn read(&mut self, bytes: u64) {
        self.done += bytes;
    }

    fn say(&mut self, imported: usize, refused: usize) {
        if self.said.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.said = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = imported as f64 / secs.max(1e-3);
        let left = self.total.saturating_sub(self.done) as f64 / (self.done as f64 / secs.max(1e-3)).max(1.0);
        eprintln!(
            "import: {imported} bars, {refused} refused, {:.0} % of the file, {rate:.0} bars/s, about {left:.0} s left",
            100.0 * self.done as f64 / self.total.max(1) as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_like_every_bar_from_outside() {
        let ok = parse_row("BTCUSDT,1m,1700000040000,10,12,9,11,1.5,3").unwrap();
        assert_eq!((ok.open_time, ok.high, ok.trades, ok.closed), (1_700_000_040_000, 12.0, 3, true));
        for (row, reason) in [
            ("BTCUSDT,1m,1700000040000,10,9,9.5,11,1,1", "low <= open, close <= high"),
            ("BTCUSDT,1m,1700000040000,10,12,9,11,-1,1", "volume"),
            ("BTCUSDT,1m,1700000040000,NaN,12,9,11,1,1", "finite"),
            ("BTCUSDT,1m,1700000040001,10,12,9,11,1,1", "aligned"),
            ("BTCUSDT,7m,1700000040000,10,12,9,11,1,1", "interval"),
            ("btc usdt,1m,1700000040000,10,12,9,11,1,1", "symbol"),
            ("BTCUSDT,1m,1700000040000,10,12,9,11,1", "9 columns"),
        ] {
            let err = parse_row(row).unwrap_err().to_string();
            assert!(err.contains(reason), "{row}: {err}");
        }
    }
}
