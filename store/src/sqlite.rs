//! The SQLite store: one file, WAL mode, one transaction per batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use crate::{HistoryStore, Retention, RoomRecord, StoreError, StoreOp, StoredMessage};

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
                    StoreOp::Load { .. } => {}
                }
            }
            // Many rows per statement: about half the time per message of one each
            // (`cost_per_message`: 6.5 us down to 3 us on the project machine).
            let mut many = tx.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
            let mut one = tx.prepare_cached(&insert_sql(1))?;
            let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
            for chunk in &mut chunks {
                let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(6 * chunk.len());
                let numbers: Vec<(i64, i64)> = chunk
                    .iter()
                    .map(|(_, m)| (m.id as i64, m.time_ms as i64))
                    .collect();
                for ((key, m), (id, time)) in chunk.iter().zip(&numbers) {
                    values.extend([key as &dyn rusqlite::ToSql, id, time, &m.from, &m.text]);
                    values.push(&m.notice);
                }
                many.execute(values.as_slice())?;
            }
            for (key, m) in chunks.remainder() {
                one.execute(params![
                    key,
                    m.id as i64,
                    m.time_ms as i64,
                    m.from,
                    m.text,
                    m.notice
                ])?;
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
                "SELECT name, last_id, created_ms, topic, topic_by, topic_ms FROM rooms
                 ORDER BY key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RoomRecord {
                    name: r.get(0)?,
                    last_id: r.get::<_, i64>(1)? as u64,
                    created_ms: r.get::<_, i64>(2)? as u64,
                    topic: r.get(3)?,
                    topic_by: r.get(4)?,
                    topic_ms: r.get::<_, i64>(5)? as u64,
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
