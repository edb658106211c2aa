//! Migration of a redb store (`candlecast.redb`, written by [`EmbeddedStore`](crate::persist::EmbeddedStore))
//! into segments, when the segment store opens a directory that has one and no `segments/` yet.
//!
//! The bars are streamed in key order (symbol, interval, time: already sorted per series) in bounded
//! batches into a staging directory, `segments.migrating/`, with their revisions as stored; the script
//! tables are copied; the memtable is written out as segments; then a marker file is written and fsynced,
//! the staging directory renamed to `segments/` (the step that commits the migration), and
//! `candlecast.redb` renamed to `candlecast.redb.migrated` (kept for a rollback; delete it by hand).
//! A migration interrupted before the rename starts again from scratch: the staging directory is deleted.

use std::path::Path;

use redb::{ReadableTable, ReadableTableMetadata};

use super::store::storage;
use super::{Options, SegmentStore, DIR_NAME};
use crate::model::{Bar, Interval};
use crate::persist::embedded::{BARS, FILE_NAME as REDB_FILE};
use crate::persist::{script_data, StoreError, StoredBar};

/// The staging directory of a migration in progress.
pub const STAGING: &str = "segments.migrating";
/// Written into the staging directory last, before it is renamed: this store came from redb.
pub const MARKER: &str = "MIGRATED_FROM_REDB";
/// What `candlecast.redb` is renamed to once migrated.
pub const MIGRATED_REDB: &str = "candlecast.redb.migrated";
/// Bars read from redb and written to the segments at once: bounded memory whatever the store's size.
const BATCH: usize = 50_000;

fn fs_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Open(format!("migrating {}: {e}", path.display()))
}

/// See the module documentation. Does nothing if there is no redb file, or if `segments/` exists.
pub fn migrate_if_needed(dir: &Path, options: Options) -> Result<(), StoreError> {
    let redb_file = dir.join(REDB_FILE);
    let target = dir.join(DIR_NAME);
    if target.exists() {
        if redb_file.exists() {
            if target.join(MARKER).exists() {
                // The crash came between the directory's rename and the redb file's.
                std::fs::rename(&redb_file, dir.join(MIGRATED_REDB)).map_err(|e| fs_err(&redb_file, e))?;
                super::sync_dir(dir)?;
            } else {
                tracing::warn!(
                    dir = %dir.display(),
                    "both candlecast.redb and segments/ are here: the segment store is used, candlecast.redb is left alone"
                );
            }
        }
        return Ok(());
    }
    if !redb_file.exists() {
        return Ok(());
    }
    let staging = dir.join(STAGING);
    if staging.exists() {
        tracing::warn!(dir = %staging.display(), "an interrupted migration: starting it again");
        std::fs::remove_dir_all(&staging).map_err(|e| fs_err(&staging, e))?;
    }
    let started = std::time::Instant::now();
    let migrated = copy(&redb_file, &staging, options)?;
    std::fs::write(staging.join(MARKER), format!("{migrated} bars from {REDB_FILE}\n"))
        .and_then(|()| std::fs::File::open(staging.join(MARKER))?.sync_all())
        .map_err(|e| fs_err(&staging, e))?;
    super::sync_dir(&staging)?;
    std::fs::rename(&staging, &target).map_err(|e| fs_err(&staging, e))?;
    super::sync_dir(dir)?;
    std::fs::rename(&redb_file, dir.join(MIGRATED_REDB)).map_err(|e| fs_err(&redb_file, e))?;
    super::sync_dir(dir)?;
    tracing::info!(bars = migrated, secs = started.elapsed().as_secs_f64(), "migrated the redb store to segments");
    Ok(())
}

/// Streams every bar and the script tables of `redb_file` into a segment store in `staging`.
fn copy(redb_file: &Path, staging: &Path, options: Options) -> Result<u64, StoreError> {
    let db = redb::Database::open(redb_file).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Open(format!(
            "{} is already open in another candlecast (one store per process; set store.path)",
            redb_file.display()
        )),
        other => StoreError::Open(format!("{}: {}", redb_file.display(), redb::Error::from(other))),
    })?;
    let store = SegmentStore::open_dir(staging, Options { background_merge: false, ..options })?;
    let result = (|| {
        let txn = db.begin_read().map_err(storage)?;
        let mut migrated = 0u64;
        // A store of an older version may lack a table: then it has nothing of that kind.
        if let Ok(table) = txn.open_table(BARS) {
            tracing::info!(bars = table.len().map_err(storage)?, "migrating the redb store to segments");
            let mut batch = Vec::with_capacity(BATCH);
            for entry in table.iter().map_err(storage)? {
                let (key, value) = entry.map_err(storage)?;
                let (symbol, interval, open_time) = key.value();
                let Ok(interval) = interval.parse::<Interval>() else { continue };
                let (open, high, low, close, volume, trades, revised, source) = value.value();
                let bar = Bar {
                    symbol: symbol.into(),
                    interval,
                    open_time,
                    open,
                    high,
                    low,
                    close,
                    volume,
                    trades,
                    closed: true,
                };
                batch.push(StoredBar { bar, source: source.into(), revised });
                if batch.len() == BATCH {
                    store.write_now(&batch, false)?;
                    migrated += batch.len() as u64;
                    batch.clear();
                }
            }
            store.write_now(&batch, false)?;
            migrated += batch.len() as u64;
        }
        let script = store.shared.script_db()?;
        if let Ok(symbols) = txn.open_table(script_data::SYMBOLS) {
            for entry in symbols.iter().map_err(storage)? {
                let (name, created) = entry.map_err(storage)?;
                script_data::add_symbol(&script, name.value(), created.value())?;
            }
        }
        if txn.open_table(script_data::TRADES).is_ok() {
            let trades = script_data::trades(&db, usize::MAX)?;
            script_data::add_trades(&script, &trades, usize::MAX)?;
        }
        store.rotate_now()?;
        Ok(migrated)
    })();
    store.close_now();
    result
}
