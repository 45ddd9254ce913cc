//! The SQLite store: one file, WAL mode, one transaction per batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use crate::{
    Bound, HistoryStore, Range, Retention, RoomRecord, StoreError, StoreOp, StoredMessage,
};

/// How hard a commit pushes to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// `synchronous=NORMAL`: a commit survives a crash of the process (`kill -9`); on power
    /// loss the commits since the last WAL checkpoint may be lost. The default.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced and survives power loss too.
    Full,
}

/// Room history in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    retention: Retention,
    /// INSERTs of 32, 16, 8, 4, 2 and 1 rows, built once: `prepare_cached` looks a
    /// statement up by its text, which was formatted anew for every batch.
    inserts: Vec<(usize, String)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_id INTEGER NOT NULL DEFAULT 0,
    topic TEXT NOT NULL DEFAULT '',
    topic_by TEXT NOT NULL DEFAULT '',
    topic_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    notice INTEGER NOT NULL,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;
";

impl SqliteStore {
    /// The file history lives in under a data directory.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join("history.sqlite3")
    }

    /// Opens (creating if needed) the history file in `dir`. A file that is not a
    /// database, is damaged or cannot be written is refused, with an error naming it.
    pub fn open(dir: &Path, retention: Retention, sync: Sync) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = Self::file_in(dir);
        Self::open_file(&path, OpenFlags::default(), retention, sync)
    }

    /// Opens a history file with the given flags.
    pub(crate) fn open_file(
        path: &Path,
        flags: OpenFlags,
        retention: Retention,
        sync: Sync,
    ) -> Result<SqliteStore, StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError(format!(
                "history database {}: {what}: {e}; refusing to start rather than lose history",
                path.display()
            ))
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|e| fail("cannot open", &e))?;
        if conn.is_readonly("main").unwrap_or(true) {
            return Err(fail("cannot write", &"the file is read-only"));
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| fail("not a usable database", &e))?;
        if check != "ok" {
            return Err(fail("damaged", &check));
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| fail("cannot switch to WAL", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail("cannot switch to WAL", &mode));
        }
        let sync = match sync {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| fail("cannot write", &e))?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            retention,
            inserts: std::iter::successors(Some(ROWS_PER_INSERT), |n| (*n > 1).then(|| n / 2))
                .map(|n| (n, insert_sql(n)))
                .collect(),
        })
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError(format!("history database {}: {e}", self.path.display()))
    }

    fn oldest_kept_ms(&self, now_ms: u64) -> i64 {
        self.retention.max_age.map_or(0, |age| {
            now_ms.saturating_sub(age.as_millis() as u64) as i64
        })
    }

    fn write_batch(&mut self, batch: &[StoreOp]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        // Per room: display name, creation time and highest id of this batch.
        let mut touched: BTreeMap<&str, (&str, u64, u64)> = BTreeMap::new();
        {
            let mut rows: Vec<(&str, &StoredMessage)> = Vec::new();
            let mut topic = tx.prepare_cached(
                "INSERT INTO rooms (key, name, created_ms, topic, topic_by, topic_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key) DO UPDATE SET name = ?2, topic = ?4, topic_by = ?5,
                     topic_ms = ?6",
            )?;
            for op in batch {
                match op {
                    StoreOp::Append {
                        key,
                        room,
                        created_ms,
                        message: m,
                        ..
                    } => {
                        rows.push((key.as_str(), m));
                        let entry = touched.entry(key).or_insert((room, *created_ms, 0));
                        entry.2 = entry.2.max(m.id);
                    }
                    StoreOp::SetTopic {
                        key,
                        room,
                        created_ms,
                        topic: t,
                        by,
                        time_ms,
                        ..
                    } => {
                        topic.execute(params![
                            key,
                            room,
                            *created_ms as i64,
                            t,
                            by,
                            *time_ms as i64
                        ])?;
                    }
                    StoreOp::Load { .. } | StoreOp::Query { .. } => {}
                }
            }
            // Many rows per statement: about half the time per message of one each
            // (`cost_per_message`: 6.5 us down to 3 us on the project machine). The rows
            // past the last full 32 go in halving chunks (16, 8, ... 1), not one by one: a
            // fan-out run's batches are some tens of messages.
            let mut rest = &rows[..];
            for (size, sql) in &self.inserts {
                if rest.len() < *size {
                    continue;
                }
                let mut insert = tx.prepare_cached(sql)?;
                while rest.len() >= *size {
                    let (chunk, tail) = rest.split_at(*size);
                    rest = tail;
                    let numbers: Vec<(i64, i64)> = chunk
                        .iter()
                        .map(|(_, m)| (m.id as i64, m.time_ms as i64))
                        .collect();
                    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(6 * size);
                    for ((key, m), (id, time)) in chunk.iter().zip(&numbers) {
                        values.extend([key as &dyn rusqlite::ToSql, id, time, &m.from, &m.text]);
                        values.push(&m.notice);
                    }
                    insert.execute(values.as_slice())?;
                }
            }
            let mut room = tx.prepare_cached(
                "INSERT INTO rooms (key, name, created_ms, last_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET name = ?2, last_id = max(last_id, ?4)",
            )?;
            let mut trim =
                tx.prepare_cached("DELETE FROM messages WHERE room = ?1 AND id <= ?2")?;
            for (key, (name, created, last)) in &touched {
                room.execute(params![key, name, *created as i64, *last as i64])?;
                // Ids in a room are consecutive, so the count limit is an id bound.
                if let Some(max) = self.retention.max_messages {
                    if *last > max {
                        trim.execute(params![key, (*last - max) as i64])?;
                    }
                }
            }
        }
        tx.commit()
    }
}

impl SqliteStore {
    /// The smallest id of `key` whose time is after `time_ms` (one past the newest id if
    /// none): a binary search over the primary key, exact because times never go
    /// backwards within a room. About 2 log2(n) point lookups, so no time index slows
    /// every insert.
    fn first_id_after_time(&self, key: &str, time_ms: u64) -> rusqlite::Result<u64> {
        let time_ms = time_ms.min(i64::MAX as u64) as i64;
        let (min, max): (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT min(id), max(id) FROM messages WHERE room = ?1",
            params![key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (Some(mut lo), Some(max)) = (min, max) else {
            return Ok(1);
        };
        // The answer lies in lo..=hi; hi = max + 1 stands for "none".
        let mut hi = max + 1;
        let mut at = self.conn.prepare_cached(
            "SELECT id, time_ms FROM messages WHERE room = ?1 AND id >= ?2 ORDER BY id LIMIT 1",
        )?;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (id, time): (i64, i64) =
                at.query_row(params![key, mid], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if time > time_ms {
                hi = mid.min(id);
            } else {
                lo = id + 1;
            }
        }
        Ok(lo as u64)
    }

    /// An exclusive lower id bound for `bound` (0: none).
    fn after_id(&self, key: &str, bound: Bound) -> rusqlite::Result<u64> {
        match bound {
            Bound::Open => Ok(0),
            Bound::Id(id) => Ok(id),
            Bound::Time(t) => Ok(self.first_id_after_time(key, t)?.saturating_sub(1)),
        }
    }

    /// An exclusive upper id bound for `bound` (`u64::MAX`: none).
    fn before_id(&self, key: &str, bound: Bound) -> rusqlite::Result<u64> {
        match bound {
            Bound::Open => Ok(u64::MAX),
            Bound::Id(id) => Ok(id),
            Bound::Time(0) => Ok(0),
            Bound::Time(t) => self.first_id_after_time(key, t - 1),
        }
    }

    /// The newest (`newest`) or oldest `limit` kept messages of `key` with an id strictly
    /// between `after` and `before`, ascending; both walk the primary key (room, id).
    fn select(
        &self,
        key: &str,
        oldest: i64,
        after: u64,
        before: u64,
        newest: bool,
        limit: u32,
    ) -> rusqlite::Result<Vec<StoredMessage>> {
        if limit == 0 || before <= after.saturating_add(1) {
            return Ok(Vec::new());
        }
        let big = |n: u64| n.min(i64::MAX as u64) as i64;
        let sql = if newest {
            "SELECT id, time_ms, sender, text, notice FROM messages
             WHERE room = ?1 AND id > ?2 AND id < ?3 AND time_ms >= ?4
             ORDER BY id DESC LIMIT ?5"
        } else {
            "SELECT id, time_ms, sender, text, notice FROM messages
             WHERE room = ?1 AND id > ?2 AND id < ?3 AND time_ms >= ?4
             ORDER BY id ASC LIMIT ?5"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![key, big(after), big(before), oldest, limit], |r| {
            Ok(StoredMessage {
                id: r.get::<_, i64>(0)? as u64,
                time_ms: r.get::<_, i64>(1)? as u64,
                from: r.get(2)?,
                text: r.get(3)?,
                notice: r.get(4)?,
            })
        })?;
        let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        if newest {
            rows.reverse();
        }
        Ok(rows)
    }
}

/// Messages written by one multi-row INSERT.
const ROWS_PER_INSERT: usize = 32;

/// An INSERT of `rows` messages.
fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let b = r * 6;
            format!(
                "(?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect();
    format!(
        "INSERT OR REPLACE INTO messages (room, id, time_ms, sender, text, notice) VALUES {}",
        values.join(", ")
    )
}

impl HistoryStore for SqliteStore {
    fn rooms(&mut self) -> Result<Vec<RoomRecord>, StoreError> {
        let rows = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT name, last_id, created_ms, topic, topic_by, topic_ms,
                     (SELECT max(time_ms) FROM messages WHERE room = rooms.key)
                 FROM rooms ORDER BY key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RoomRecord {
                    name: r.get(0)?,
                    last_id: r.get::<_, i64>(1)? as u64,
                    created_ms: r.get::<_, i64>(2)? as u64,
                    topic: r.get(3)?,
                    topic_by: r.get(4)?,
                    topic_ms: r.get::<_, i64>(5)? as u64,
                    last_ms: r.get::<_, Option<i64>>(6)?.unwrap_or(0) as u64,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        rows.map_err(|e| self.err(e))
    }

    fn write(&mut self, batch: &[StoreOp], _now_ms: u64) -> Result<(), StoreError> {
        self.write_batch(batch).map_err(|e| self.err(e))
    }

    fn load(
        &mut self,
        key: &str,
        before: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let oldest = self.oldest_kept_ms(now_ms);
        let rows = (|| {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, time_ms, sender, text, notice FROM messages
                 WHERE room = ?1 AND id < ?2 AND time_ms >= ?3 ORDER BY id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![key, before.min(i64::MAX as u64) as i64, oldest, limit],
                |r| {
                    Ok(StoredMessage {
                        id: r.get::<_, i64>(0)? as u64,
                        time_ms: r.get::<_, i64>(1)? as u64,
                        from: r.get(2)?,
                        text: r.get(3)?,
                        notice: r.get(4)?,
                    })
                },
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        let mut rows = rows.map_err(|e| self.err(e))?;
        rows.reverse();
        Ok(rows)
    }

    fn query(
        &mut self,
        key: &str,
        range: Range,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let oldest = self.oldest_kept_ms(now_ms);
        let rows = (|| match range {
            Range::Newest { after, before } => {
                let (after, before) = (self.after_id(key, after)?, self.before_id(key, before)?);
                self.select(key, oldest, after, before, true, limit)
            }
            Range::Oldest { after, before } => {
                let (after, before) = (self.after_id(key, after)?, self.before_id(key, before)?);
                self.select(key, oldest, after, before, false, limit)
            }
            Range::Around(at) => {
                // Before the bound: the messages it follows; from it on: the rest.
                let at = self.before_id(key, at)?;
                let mut rows = self.select(key, oldest, 0, at, true, limit / 2)?;
                let rest = limit - rows.len() as u32;
                rows.extend(self.select(
                    key,
                    oldest,
                    at.saturating_sub(1),
                    u64::MAX,
                    false,
                    rest,
                )?);
                Ok(rows)
            }
        })();
        rows.map_err(|e| self.err(e))
    }

    fn prune(&mut self, now_ms: u64) -> Result<(), StoreError> {
        if self.retention.max_age.is_none() {
            return Ok(());
        }
        let oldest = self.oldest_kept_ms(now_ms);
        self.conn
            .execute("DELETE FROM messages WHERE time_ms < ?1", params![oldest])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
