//! (d) SQLite through rusqlite (`bundled`: compiled in, no system library): one `WITHOUT ROWID` table keyed
//! by (symbol id, interval index, open time), prices as REAL (8-byte IEEE, bit-exact), an index on
//! (symbol, interval, revised) for `since=` that SQLite keeps itself. WAL with `synchronous=FULL`: each
//! batch is one transaction whose commit fsyncs the WAL (NORMAL would not be durable on power loss, and
//! redb's commit is). One prepared upsert (`INSERT … ON CONFLICT DO UPDATE`).

use std::path::Path;

use candlecast_actors::model::Interval;
use rusqlite::{params, Connection};

use crate::workload::{Out, Rec};
use crate::Candidate;

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    CREATE TABLE IF NOT EXISTS symbols (name TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS bars (
        sym INTEGER NOT NULL, iv INTEGER NOT NULL, t INTEGER NOT NULL,
        open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, volume REAL NOT NULL,
        trades INTEGER NOT NULL, revised INTEGER NOT NULL,
        PRIMARY KEY (sym, iv, t)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS bars_revised ON bars (sym, iv, revised);
";

const UPSERT: &str = "INSERT INTO bars VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    ON CONFLICT (sym, iv, t) DO UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume = excluded.volume, trades = excluded.trades, revised = excluded.revised";

const NEWEST: &str = "SELECT t, open, high, low, close, volume, trades FROM bars
    WHERE sym = ?1 AND iv = ?2 ORDER BY t DESC LIMIT ?3";

const SINCE: &str = "SELECT t, open, high, low, close, volume, trades FROM bars
    WHERE sym = ?1 AND iv = ?2 AND revised >= ?3 ORDER BY t DESC LIMIT ?4";

pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    pub fn open(dir: &Path, symbols: u32) -> Sqlite {
        let mut conn = Connection::open(dir.join("bars.sqlite")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let txn = conn.transaction().unwrap();
        for id in 0..symbols {
            txn.execute("INSERT OR IGNORE INTO symbols VALUES (?1, ?2)", params![format!("SYM{id:05}USDT"), id])
                .unwrap();
        }
        txn.commit().unwrap();
        Sqlite { conn }
    }

    fn query(&self, sql: &str, args: impl rusqlite::Params) -> Vec<Out> {
        let mut stmt = self.conn.prepare_cached(sql).unwrap();
        let rows = stmt.query_map(args, |row| {
            let px = |i: usize| row.get::<_, f64>(i).map(f64::to_bits);
            Ok(Out {
                t: row.get(0)?,
                px: [px(1)?, px(2)?, px(3)?, px(4)?, px(5)?],
                trades: row.get::<_, i64>(6)? as u64,
            })
        });
        let mut out: Vec<Out> = rows.unwrap().map(Result::unwrap).collect();
        out.reverse();
        out
    }
}

impl Candidate for Sqlite {
    fn write(&mut self, batch: &[Rec]) {
        let txn = self.conn.transaction().unwrap();
        {
            let mut upsert = txn.prepare_cached(UPSERT).unwrap();
            for r in batch {
                let [o, h, l, c, v] = r.px;
                // trades as i64 bits: SQLite integers are signed; the count never nears 2^63 anyway.
                let args = params![r.sym, r.iv.index() as u8, r.t, o, h, l, c, v, r.trades as i64, r.revised];
                upsert.execute(args).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    fn newest(&mut self, sym: u32, iv: Interval, n: usize) -> Vec<Out> {
        self.query(NEWEST, params![sym, iv.index() as u8, n as i64])
    }

    fn since(&mut self, sym: u32, iv: Interval, since: i64, limit: usize) -> Vec<Out> {
        self.query(SINCE, params![sym, iv.index() as u8, since, limit as i64])
    }

    /// The WAL checkpointed and truncated, then `VACUUM` (the database rewritten without free pages).
    fn compact(&mut self) -> bool {
        self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        true
    }
}
