//! Kite's instruments master: `GET https://api.kite.trade/instruments`, a CSV of every tradable
//! instrument with the columns `instrument_token, exchange_token, tradingsymbol, name, last_price,
//! expiry, strike, tick_size, lot_size, instrument_type, segment, exchange`. Configured symbols are
//! named `EXCHANGE:TRADINGSYMBOL` (`NSE:INFY`, as Kite's quote API names them) and resolved to
//! instrument tokens here.
//!
//! Outside data, so bounded: at most [`MAX_BYTES`] of CSV and [`MAX_ROWS`] rows; columns are found by
//! their header names; a row without a usable token, symbol or exchange is counted and skipped.

use std::collections::HashMap;

/// The real master is about 10 MB (some 100,000 rows); far more than that is not Kite's.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
pub const MAX_ROWS: usize = 1_000_000;

/// What a feed needs of one instrument.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    pub token: u32,
    pub exchange: String,
    pub tradingsymbol: String,
    pub segment: String,
    pub instrument_type: String,
    /// The company or underlying (`INFOSYS`, `NIFTY`); "" when the master leaves it out.
    pub name: String,
    pub lot_size: Option<f64>,
    pub tick_size: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentsError {
    #[error("instruments master: no header with the columns instrument_token, tradingsymbol and exchange")]
    Header,
    #[error("instruments master: more than {MAX_ROWS} rows")]
    TooManyRows,
    #[error("instruments master: larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("instruments master: {0}")]
    Csv(String),
}

/// The master, by `EXCHANGE:TRADINGSYMBOL`.
#[derive(Debug, Default, Clone)]
pub struct Instruments {
    by_name: HashMap<String, Instrument>,
    /// Rows that could not be read.
    pub skipped: u64,
}

impl Instruments {
    /// Reads the CSV.
    pub fn parse(csv_bytes: &[u8]) -> Result<Instruments, InstrumentsError> {
        if csv_bytes.len() > MAX_BYTES {
            return Err(InstrumentsError::TooLarge);
        }
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(csv_bytes);
        let headers = reader.headers().map_err(|e| InstrumentsError::Csv(e.to_string()))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (Some(token), Some(symbol), Some(exchange)) =
            (col("instrument_token"), col("tradingsymbol"), col("exchange"))
        else {
            return Err(InstrumentsError::Header);
        };
        let (segment, kind, name) = (col("segment"), col("instrument_type"), col("name"));
        let (lot, tick) = (col("lot_size"), col("tick_size"));
        let mut out = Instruments::default();
        for (n, record) in reader.records().enumerate() {
            if n >= MAX_ROWS {
                return Err(InstrumentsError::TooManyRows);
            }
            let Ok(record) = record else {
                out.skipped += 1;
                continue;
            };
            let field = |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::trim).unwrap_or("");
            // Indices list 0 for both: no lot, no tick.
            let size = |i: Option<usize>| field(i).parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
            let instrument = Instrument {
                token: match field(Some(token)).parse::<u32>() {
                    Ok(t) if t > 0 => t,
                    _ => {
                        out.skipped += 1;
                        continue;
                    }
                },
                exchange: field(Some(exchange)).to_owned(),
                tradingsymbol: field(Some(symbol)).to_owned(),
                segment: field(segment).to_owned(),
                instrument_type: field(kind).to_owned(),
                name: field(name).to_owned(),
                lot_size: size(lot),
                tick_size: size(tick),
            };
            if instrument.exchange.is_empty() || instrument.tradingsymbol.is_empty() {
                out.skipped += 1;
                continue;
            }
            out.by_name.insert(format!("{}:{}", instrument.exchange, instrument.tradingsymbol), instrument);
        }
        Ok(out)
    }

    /// The instrument named `EXCHANGE:TRADINGSYMBOL` (upper case, as the master spells them).
    pub fn get(&self, name: &str) -> Option<&Instrument> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Every instrument, as the symbol master lists them.
    pub fn listing(&self) -> impl Iterator<Item = crate::symbol_master::Instrument> + '_ {
        self.by_name.iter().map(|(symbol, i)| crate::symbol_master::Instrument {
            symbol: symbol.clone(),
            exchange: i.exchange.clone(),
            tradingsymbol: i.tradingsymbol.clone(),
            name: i.name.clone(),
            kind: i.instrument_type.clone(),
            segment: i.segment.clone(),
            lot_size: i.lot_size,
            tick_size: i.tick_size,
            source: "kite",
        })
    }
}

/// Whether `symbol` is written `EXCHANGE:TRADINGSYMBOL`.
pub fn split_name(symbol: &str) -> Option<(&str, &str)> {
    symbol.split_once(':').filter(|(e, t)| !e.is_empty() && !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The master's real header and rows of each kind (equity, index, future, currency).
    const MASTER: &str = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE
256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE
13368834,52222,NIFTY25DECFUT,NIFTY,0,2025-12-30,0,0.1,75,FUT,NFO-FUT,NFO
,1,BROKEN,,0,,0,0,1,EQ,NSE,NSE
x,1,BROKEN2,,0,,0,0,1,EQ,NSE,NSE
412675,1612,USDINR25DECFUT,USDINR,0,2025-12-29,0,0.0025,1,FUT,CDS-FUT,CDS
";

    #[test]
    fn resolves_exchange_and_tradingsymbol() {
        let m = Instruments::parse(MASTER.as_bytes()).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m.skipped, 2, "rows without a numeric token");
        let infy = m.get("NSE:INFY").unwrap();
        assert_eq!((infy.token, infy.segment.as_str(), infy.instrument_type.as_str()), (408_065, "NSE", "EQ"));
        assert_eq!(m.get("NFO:NIFTY25DECFUT").map(|i| i.token), Some(13_368_834));
        assert_eq!(m.get("CDS:USDINR25DECFUT").map(|i| i.token), Some(412_675));
        assert_eq!(m.get("NSE:NIFTY 50").map(|i| i.segment.as_str()), Some("INDICES"));
        assert_eq!((infy.name.as_str(), infy.lot_size, infy.tick_size), ("INFOSYS", Some(1.0), Some(0.05)));
        assert_eq!(m.get("NSE:NIFTY 50").map(|i| (i.lot_size, i.tick_size)), Some((None, None)));
        let listed: Vec<_> = m.listing().filter(|i| i.symbol == "NFO:NIFTY25DECFUT").collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].exchange.as_str(), listed[0].kind.as_str(), listed[0].lot_size, listed[0].source),
            ("NFO", "FUT", Some(75.0), "kite")
        );
        assert!(m.get("BSE:INFY").is_none() && m.get("INFY").is_none());
    }

    #[test]
    fn refuses_what_is_not_a_master() {
        assert_eq!(Instruments::parse(b"a,b,c\n1,2,3\n").unwrap_err(), InstrumentsError::Header);
        assert_eq!(Instruments::parse(b"").unwrap_err(), InstrumentsError::Header);
        // Ragged rows are skipped, not a panic.
        let m =
            Instruments::parse(b"instrument_token,tradingsymbol,exchange\n5633,ACC,NSE\n7\n\"unterminated\n").unwrap();
        assert_eq!(m.get("NSE:ACC").map(|i| i.token), Some(5633));
        assert_eq!(split_name("NSE:INFY"), Some(("NSE", "INFY")));
        assert_eq!(split_name("INFY"), None);
        assert_eq!(split_name(":INFY"), None);
    }
}
