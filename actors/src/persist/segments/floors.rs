//! The retention floors file: per series, the open time before which its bars are deleted. Retention
//! raises a floor (fsynced here first) and then drops the chunks wholly below it; the chunk that straddles
//! it is cut at its next merge, and until then reads skip its bars below the floor. Append-only: the
//! highest floor of a series wins; rewritten whole when it holds many stale entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::index::SeriesKey;
use super::log::AppendFile;
use super::segment::Reader;
use crate::persist::StoreError;

const ENTRY: usize = 4 + 1 + 8;

pub(super) struct Floors {
    path: PathBuf,
    file: AppendFile,
}

fn encode(floors: &[(SeriesKey, i64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(floors.len() * ENTRY);
    for ((sym, iv), floor) in floors {
        b.extend_from_slice(&sym.to_le_bytes());
        b.push(*iv);
        b.extend_from_slice(&floor.to_le_bytes());
    }
    b
}

impl Floors {
    pub fn open(path: &Path) -> Result<(Floors, HashMap<SeriesKey, i64>, u64), StoreError> {
        let opened = AppendFile::open(path)?;
        let mut floors: HashMap<SeriesKey, i64> = HashMap::new();
        for record in &opened.records {
            let mut r = Reader { b: record, at: 0 };
            while r.at < record.len() {
                let parsed = (|| Some(((r.u32()?, r.u8()?), r.u64()? as i64)))();
                let (key, floor) =
                    parsed.ok_or_else(|| StoreError::Open(format!("{}: a record does not parse", path.display())))?;
                let f = floors.entry(key).or_insert(floor);
                *f = (*f).max(floor);
            }
        }
        Ok((Floors { path: path.to_owned(), file: opened.file }, floors, opened.torn_bytes))
    }

    /// Records raised floors (fsynced). When the file holds four times the entries it needs, it is
    /// rewritten from `all` (to a temporary file, renamed over it).
    pub fn raise(&mut self, raised: &[(SeriesKey, i64)], all: &HashMap<SeriesKey, i64>) -> Result<(), StoreError> {
        if raised.is_empty() {
            return Ok(());
        }
        self.file.append(&encode(raised))?;
        if self.file.len() > 4 * (all.len() * ENTRY + 8) as u64 + 4096 {
            let tmp = self.path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut fresh = AppendFile::open(&tmp)?.file;
            fresh.append(&encode(&all.iter().map(|(k, f)| (*k, *f)).collect::<Vec<_>>()))?;
            std::fs::rename(&tmp, &self.path)
                .map_err(|e| StoreError::Storage(format!("{}: {e}", self.path.display())))?;
            self.file = fresh;
        }
        Ok(())
    }
}
