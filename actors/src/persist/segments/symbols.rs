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

    /// The id of each of `pairs` (name, source), giving new ids (and recording changed sources) in one
    /// fsynced append. Returns whether anything was added.
    pub fn ensure<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<bool, StoreError> {
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
            return Ok(false);
        }
        // One record holding every new entry (each length-prefixed), so one fsync covers a batch.
        self.file.append(&buf)?;
        self.next = next;
        for (name, id, source) in added {
            self.known.insert(name, (id, source));
        }
        Ok(true)
    }
}
