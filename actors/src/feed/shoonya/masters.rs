//! Shoonya's symbol masters: one file per exchange (`NSE_symbols.txt.zip`, `NFO_symbols.txt.zip`, ...),
//! a zip holding one CSV text file. The first line names the columns:
//!
//! ```text
//! Exchange,Token,LotSize,Symbol,TradingSymbol,Instrument,TickSize,
//! NSE,1594,1,INFY,INFY-EQ,EQ,0.05,
//! ```
//! Derivatives' masters (NFO, BFO, MCX, CDS, NCX) add `Expiry`, `OptionType` and `StrikePrice`:
//! ```text
//! Exchange,Token,LotSize,Symbol,TradingSymbol,Expiry,Instrument,OptionType,StrikePrice,TickSize,
//! NFO,35003,50,NIFTY,NIFTY28DEC23F,28-DEC-2023,FUTIDX,XX,-0.01,0.05,
//! ```
//! Columns are found by name, so their order and any extra ones do not matter. A master is read from a
//! URL or a local file, zipped or already unzipped, within a byte budget ([`MAX_MASTER_BYTES`] by
//! default). The zip is read here (central directory, stored or deflated entry, CRC checked) rather than
//! with the zip crate, which would bring a dozen new crates for one file format.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::DeflateDecoder;

use crate::feed::body::read_capped;
use crate::feed::FeedError;

/// Budget of one master, zipped and unzipped (the NFO master is about 10 MB unzipped).
pub const MAX_MASTER_BYTES: u64 = 64 * 1024 * 1024;
/// Rows that do not parse are skipped; more than this many and the file is not a master.
const MAX_BAD_ROWS: usize = 1_000;

/// One instrument of a master.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    pub exchange: String,
    /// What Noren's WebSocket and TPSeries name the instrument by.
    pub token: String,
    pub trading_symbol: String,
    /// The `Symbol` column: the company or underlying (`INFY`, `NIFTY`); "" when absent.
    pub name: String,
    /// The `Instrument` column (`EQ`, `FUTIDX`, `OPTSTK`...); "" when absent.
    pub kind: String,
    pub lot_size: Option<f64>,
    pub tick_size: Option<f64>,
}

/// One exchange's master: instruments by trading symbol (upper case).
#[derive(Debug, Default)]
pub struct Master {
    by_symbol: HashMap<String, Instrument>,
    /// Rows skipped as malformed.
    pub skipped: usize,
}

impl Master {
    pub fn get(&self, trading_symbol: &str) -> Option<&Instrument> {
        self.by_symbol.get(&trading_symbol.to_ascii_uppercase())
    }

    pub fn len(&self) -> usize {
        self.by_symbol.len()
    }

    /// Every instrument, as the symbol master lists them (`EXCHANGE:TRADINGSYMBOL`, as feeds name them).
    pub fn listing(&self) -> impl Iterator<Item = crate::symbol_master::Instrument> + '_ {
        self.by_symbol.values().map(|i| crate::symbol_master::Instrument {
            symbol: format!("{}:{}", i.exchange, i.trading_symbol.to_ascii_uppercase()),
            exchange: i.exchange.clone(),
            tradingsymbol: i.trading_symbol.clone(),
            name: i.name.clone(),
            kind: i.kind.clone(),
            segment: String::new(),
            lot_size: i.lot_size,
            tick_size: i.tick_size,
            source: "shoonya",
        })
    }
}

/// Why a downloaded master could not be read; the feed reports it as refused, naming the master.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterError {
    #[error("not a readable zip: {0}")]
    Zip(String),
    #[error("the master unzips to {size} bytes, over the budget of {max}")]
    OverBudget { size: u32, max: u64 },
    /// The header as found.
    #[error("the first line must name Exchange, Token and TradingSymbol columns, found {0:?}")]
    Header(Vec<String>),
    #[error("more than {max} malformed rows")]
    TooManyBadRows { max: usize },
}

/// Reads a master's bytes: a zip (by its signature) or the CSV text itself.
pub fn parse_master(bytes: &[u8], max_bytes: u64) -> Result<Master, MasterError> {
    let text = if bytes.starts_with(b"PK\x03\x04") { unzip_first(bytes, max_bytes)? } else { bytes.to_vec() };
    let text = String::from_utf8_lossy(&text);
    parse_csv(&text)
}

fn parse_csv(text: &str) -> Result<Master, MasterError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> =
        lines.next().unwrap_or("").split(',').map(|c| c.trim().trim_start_matches('\u{feff}').to_owned()).collect();
    let column = |name: &str| header.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(exch), Some(token), Some(tsym)) = (column("Exchange"), column("Token"), column("TradingSymbol")) else {
        return Err(MasterError::Header(header));
    };
    let (lot, tick) = (column("LotSize"), column("TickSize"));
    let (name, kind) = (column("Symbol"), column("Instrument"));
    let mut master = Master::default();
    for line in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
        let number = |i: Option<usize>| i.and_then(get).and_then(|f| f.parse::<f64>().ok()).filter(|v| v.is_finite());
        match (get(exch), get(token), get(tsym)) {
            (Some(e), Some(t), Some(s)) if t.bytes().all(|b| b.is_ascii_digit()) => {
                let instrument = Instrument {
                    exchange: e.to_ascii_uppercase(),
                    token: t.to_owned(),
                    trading_symbol: s.to_owned(),
                    name: name.and_then(get).unwrap_or("").to_owned(),
                    kind: kind.and_then(get).unwrap_or("").to_owned(),
                    lot_size: number(lot),
                    tick_size: number(tick),
                };
                master.by_symbol.insert(s.to_ascii_uppercase(), instrument);
            }
            _ => {
                master.skipped += 1;
                if master.skipped > MAX_BAD_ROWS {
                    return Err(MasterError::TooManyBadRows { max: MAX_BAD_ROWS });
                }
            }
        }
    }
    Ok(master)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// The first `.txt` entry of a zip (else its first entry), unzipped within `max_bytes`.
pub fn unzip_first(zip: &[u8], max_bytes: u64) -> Result<Vec<u8>, MasterError> {
    const EOCD: u32 = 0x0605_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const LOCAL: u32 = 0x0403_4b50;
    let bad = |what: &str| MasterError::Zip(what.to_owned());
    // The end-of-central-directory record: 22 bytes plus a comment of at most 64 KiB, at the end.
    let lowest = zip.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(zip, i) == Some(EOCD))
        .ok_or_else(|| bad("no end of central directory"))?;
    let entries = u16_at(zip, eocd + 10).ok_or_else(|| bad("entry count"))?;
    let mut at = u32_at(zip, eocd + 16).ok_or_else(|| bad("directory offset"))? as usize;
    let mut chosen = None;
    for _ in 0..entries {
        if u32_at(zip, at) != Some(CENTRAL) {
            return Err(bad("central directory entry"));
        }
        let field = |off: usize| u32_at(zip, at + off).ok_or_else(|| bad("central directory entry"));
        let (method, crc, packed, size) =
            (u16_at(zip, at + 10).ok_or_else(|| bad("method"))?, field(16)?, field(20)?, field(24)?);
        let name_len = u16_at(zip, at + 28).ok_or_else(|| bad("name"))? as usize;
        let skip = name_len
            + u16_at(zip, at + 30).ok_or_else(|| bad("extra"))? as usize
            + u16_at(zip, at + 32).ok_or_else(|| bad("comment"))? as usize;
        let local = field(42)? as usize;
        let name = zip.get(at + 46..at + 46 + name_len).ok_or_else(|| bad("name"))?;
        let entry = (method, crc, packed, size, local);
        if name.ends_with(b".txt") {
            chosen = Some(entry);
            break;
        }
        chosen.get_or_insert(entry);
        at += 46 + skip;
    }
    let (method, crc, packed, size, local) = chosen.ok_or_else(|| bad("no entries"))?;
    if packed == u32::MAX || size == u32::MAX {
        return Err(bad("zip64 entries are not supported"));
    }
    if u64::from(size) > max_bytes {
        return Err(MasterError::OverBudget { size, max: max_bytes });
    }
    if u32_at(zip, local) != Some(LOCAL) {
        return Err(bad("local header"));
    }
    let start = local
        + 30
        + u16_at(zip, local + 26).ok_or_else(|| bad("local header"))? as usize
        + u16_at(zip, local + 28).ok_or_else(|| bad("local header"))? as usize;
    let data = zip.get(start..start + packed as usize).ok_or_else(|| bad("entry data past the end"))?;
    let out = match method {
        0 => data.to_vec(),
        8 => {
            let mut out = Vec::with_capacity(size as usize);
            DeflateDecoder::new(data)
                .take(u64::from(size) + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(&format!("deflate: {e}")))?;
            out
        }
        other => return Err(bad(&format!("compression method {other}"))),
    };
    if out.len() != size as usize || crc32fast::hash(&out) != crc {
        return Err(bad("size or CRC does not match"));
    }
    Ok(out)
}

/// Where the master of `exchange` comes from: the `masters` setting with `{exchange}` replaced.
pub fn master_source(template: &str, exchange: &str) -> String {
    template.replace("{exchange}", exchange)
}

/// Reads a master from a URL (`http://`, `https://`) or a local file, within `max_bytes`.
pub async fn fetch_master(http: &reqwest::Client, source: &str, max_bytes: u64) -> Result<Master, FeedError> {
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        let resp =
            http.get(source).send().await.map_err(|e| FeedError::Connect(format!("symbol master {source}: {e}")))?;
        if !resp.status().is_success() {
            return Err(FeedError::Connect(format!("symbol master {source}: HTTP {}", resp.status())));
        }
        read_capped(resp, max_bytes).await.map_err(|e| FeedError::Connect(format!("symbol master {source}: {e}")))?
    } else {
        let len = tokio::fs::metadata(source)
            .await
            .map_err(|e| FeedError::Refused(format!("symbol master {source}: {e}")))?
            .len();
        if len > max_bytes {
            return Err(FeedError::Refused(format!(
                "symbol master {source}: {len} bytes, over the budget of {max_bytes}"
            )));
        }
        tokio::fs::read(source).await.map_err(|e| FeedError::Refused(format!("symbol master {source}: {e}")))?
    };
    parse_master(&bytes, max_bytes).map_err(|e| FeedError::Refused(format!("symbol master {source}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with Python's zipfile (deflate), as Shoonya's own masters are.
    const NSE_ZIP: &[u8] = include_bytes!("../../../../tests/fixtures/shoonya_NSE_symbols.txt.zip");
    const NFO_TXT: &[u8] = include_bytes!("../../../../tests/fixtures/shoonya_NFO_symbols.txt");

    #[test]
    fn reads_the_zipped_equity_master() {
        let m = parse_master(NSE_ZIP, MAX_MASTER_BYTES).unwrap();
        let infy = m.get("INFY-EQ").unwrap();
        assert_eq!((infy.exchange.as_str(), infy.token.as_str()), ("NSE", "1594"));
        assert_eq!((infy.lot_size, infy.tick_size), (Some(1.0), Some(0.05)));
        assert_eq!(m.get("infy-eq").map(|i| i.token.as_str()), Some("1594"), "case does not matter");
        assert!(m.get("NOPE-EQ").is_none());
        assert_eq!(m.skipped, 1, "the fixture's one broken row");
    }

    #[test]
    fn reads_the_derivatives_master_by_column_name() {
        let m = parse_master(NFO_TXT, MAX_MASTER_BYTES).unwrap();
        let fut = m.get("NIFTY28DEC23F").unwrap();
        assert_eq!((fut.token.as_str(), fut.lot_size), ("35003", Some(50.0)));
        assert_eq!((fut.name.as_str(), fut.kind.as_str()), ("NIFTY", "FUTIDX"));
        let listed: Vec<_> = m.listing().filter(|i| i.tradingsymbol == "NIFTY28DEC23F").collect();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].symbol.as_str(), listed[0].source), ("NFO:NIFTY28DEC23F", "shoonya"));
        assert!(m.len() >= 2);
    }

    #[test]
    fn hostile_masters_are_refused_not_panics() {
        assert!(parse_master(b"a,b,c\n1,2,3\n", MAX_MASTER_BYTES).is_err(), "no Token column");
        assert!(parse_master(b"", MAX_MASTER_BYTES).is_err());
        // Truncated and corrupted zips.
        for cut in [4, 30, NSE_ZIP.len() / 2, NSE_ZIP.len() - 10] {
            assert!(parse_master(&NSE_ZIP[..cut], MAX_MASTER_BYTES).is_err(), "cut at {cut}");
        }
        let mut flipped = NSE_ZIP.to_vec();
        flipped[60] ^= 0xff; // inside the deflated data (after the 30-byte header and the name)
        assert!(parse_master(&flipped, MAX_MASTER_BYTES).is_err(), "CRC or deflate error");
        // Over the budget: refused before inflating.
        assert!(parse_master(NSE_ZIP, 10).unwrap_err().to_string().contains("budget"));
        let mut junk = String::from("Exchange,Token,TradingSymbol\n");
        junk.push_str(&"x\n".repeat(MAX_BAD_ROWS + 1));
        assert!(parse_master(junk.as_bytes(), MAX_MASTER_BYTES).unwrap_err().to_string().contains("malformed rows"));
    }

    #[tokio::test]
    async fn reads_a_local_file_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("NSE_symbols.txt.zip");
        std::fs::write(&path, NSE_ZIP).unwrap();
        let template = dir.path().join("{exchange}_symbols.txt.zip").to_string_lossy().into_owned();
        let http = reqwest::Client::new();
        let m = fetch_master(&http, &master_source(&template, "NSE"), MAX_MASTER_BYTES).await.unwrap();
        assert_eq!(m.get("INFY-EQ").map(|i| i.token.as_str()), Some("1594"));
        let missing = fetch_master(&http, &master_source(&template, "BSE"), MAX_MASTER_BYTES).await.unwrap_err();
        assert!(missing.to_string().contains("BSE_symbols.txt.zip"), "{missing}");
    }
}
