//! The symbols file: symbol name → u32 id (and the source of its trades), append-only. A new id is
//! fsynced before the first log record that uses it, so the log never names an unknown id; ids are
//! never reused (the next id is one past the largest ever written). A later record of the same id
//! updates its source.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::log::AppendFile;
use super::segment::Reader;
use crate::persist::StoreError;

pub(super) struct Symbols {
    file: AppendFile,
    /// name → (id, source).
    known: HashMap<Arc<str>, (u32, Arc<str>)>,
    next: u32,
}

fn body(id: u32, name: &str, source: &str) -> Option<Vec<u8>> {
    let (n, s) = (u16::try_from(name.len()).ok()?, u16::try_from(source.len()).ok()?);
    let mut b = Vec::with_capacity(8 + name.len() + source.len());
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&s.to_le_bytes());
    b.extend_from_slice(source.as_bytes());
    Some(b)
}

fn parse(b: &[u8]) -> Option<(u32, String, String)> {
    let mut r = Reader { b, at: 0 };
    let id = r.u32()?;
    let n = r.u16()? as usize;
    let name = std::str::from_utf8(r.take(n)?).ok()?.to_owned();
    let n = r.u16()? as usize;
    let source = std::str::from_utf8(r.take(n)?).ok()?.to_owned();
    (r.at == b.len()).then_some((id, name, source))
}

impl Symbols {
    /// Opens `path`; returns the symbols and the bytes of a torn tail that were cut off.
    pub fn open(path: &Path) -> Result<(Symbols, u64), StoreError> {
        let opened = AppendFile::open(path)?;
        let mut known = HashMap::new();
        let mut next = 0u32;
        let bad = || StoreError::Open(format!("{}: a record does not parse", path.display()));
        for record in &opened.records {
            let mut r = Reader { b: record, at: 0 };
            while r.at < record.len() {
                let len = r.u32().ok_or_else(bad)? as usize;
                let (id, name, source) = r.take(len).and_then(parse).ok_or_else(bad)?;
                next = next.max(id.saturating_add(1));
                known.insert(Arc::from(name), (id, Arc::from(source)));
            }
        }
        Ok((Symbols { file: opened.file, known, next }, opened.torn_bytes))
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.known.get(name).map(|(id, _)| *id)
    }

    /// Every name → id, for the readers' map.
    pub fn ids(&self) -> HashMap<Arc<str>, u32> {
        self.known.iter().map(|(n, (id, _))| (n.clone(), *id)).collect()
    }

    /// Gives new ids to the names of `pairs` (name, source) not known yet, and records changed sources, in
    /// one fsynced append. Returns the names that got an id.
    pub fn ensure<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vec<(Arc<str>, u32)>, StoreError> {
        let mut added: Vec<(Arc<str>, u32, Arc<str>)> = Vec::new();
        let mut buf = Vec::new();
        let mut next = self.next;
        for (name, source) in pairs {
            let id = match self.known.get(name) {
                Some((_, s)) if &**s == source => continue,
                Some((id, _)) => *id,
                None if added.iter().any(|(n, _, _)| &**n == name) => continue,
                None => {
                    next = next.checked_add(1).ok_or_else(|| StoreError::Rejected("no symbol id left".into()))?;
                    next - 1
                }
            };
            let record = body(id, name, source)
                .ok_or_else(|| StoreError::Rejected(format!("symbol or source longer than 65535 bytes: {name:.40}")))?;
            buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
            buf.extend_from_slice(&record);
            added.push((Arc::from(name), id, Arc::from(source)));
        }
        if added.is_empty() {
            return Ok(Vec::new());
        }
        // One record holding every new entry (each length-prefixed), so one fsync covers a batch.
        self.file.append(&buf)?;
        self.next = next;
        let mut new = Vec::new();
        for (name, id, source) in added {
            if self.known.insert(name.clone(), (id, source)).is_none() {
                new.push((name, id));
            }
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_given_once_kept_across_reopening_and_a_torn_tail_loses_only_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symbols");
        {
            let (mut s, _) = Symbols::open(&path).unwrap();
            let new = s.ensure([("BTC", "binance"), ("ETH", "binance"), ("BTC", "binance")].into_iter()).unwrap();
            assert_eq!(new, [(Arc::from("BTC"), 0), (Arc::from("ETH"), 1)]);
            assert!(s.ensure([("BTC", "binance")].into_iter()).unwrap().is_empty(), "known: no write");
            // A changed source is recorded under the same id.
            assert!(s.ensure([("ETH", "kite")].into_iter()).unwrap().is_empty());
            assert_eq!(s.ensure([("SOL", "x")].into_iter()).unwrap(), [(Arc::from("SOL"), 2)]);
        }
        let full = std::fs::read(&path).unwrap();
        let (s, torn) = Symbols::open(&path).unwrap();
        assert_eq!((s.id("BTC"), s.id("ETH"), s.id("SOL"), torn), (Some(0), Some(1), Some(2), 0));
        assert_eq!(&*s.known["ETH"].1, "kite");
        drop(s);
        // SOL's record torn by a crash: it was never used by a logged bar (fsynced before), and its id is
        // given again; BTC and ETH keep theirs.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (mut s, torn) = Symbols::open(&path).unwrap();
        assert!(torn > 0 && s.id("SOL").is_none());
        assert_eq!(s.ensure([("ADA", "x")].into_iter()).unwrap(), [(Arc::from("ADA"), 2)]);
        let long = "X".repeat(70_000);
        assert!(s.ensure([(long.as_str(), "x")].into_iter()).is_err(), "a name beyond u16 is refused, not cut");
    }
}
