//! Room history storage for Switchboard.
//!
//! The core emits [`StoreOp`]s and takes answers back; this crate runs them. A
//! [`HistoryStore`] is the small trait a backend implements ([`SqliteStore`] is the
//! default); a [`Worker`] runs any store on a thread of its own, batching the writes that
//! arrive while it is busy into one transaction, so a slow disk never stalls chat.

#![forbid(unsafe_code)]

mod setup;
mod sqlite;
mod worker;

use std::time::Duration;

pub use setup::History;
pub use sqlite::{SqliteStore, Sync};
pub use switchboard_core::{Bound, Range, RoomRecord, StoreOp, StoredMessage};
pub use worker::{apply, Answer, Worker};

/// Why the store failed, naming the file where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// How long history is kept, per room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Keep at most this many newest messages per room (None: no limit).
    pub max_messages: Option<u64>,
    /// Keep messages at most this old (None: no limit).
    pub max_age: Option<Duration>,
}

/// A history backend: rooms at startup, batched writes, loads. Ops arrive in order; a
/// backend for a cluster (Redis streams, say) implements the same five calls.
pub trait HistoryStore: Send {
    /// Every room known, for the core's startup.
    fn rooms(&mut self) -> Result<Vec<RoomRecord>, StoreError>;

    /// Applies the writes of `batch` (appends and topics; loads are ignored) atomically.
    fn write(&mut self, batch: &[StoreOp], now_ms: u64) -> Result<(), StoreError>;

    /// The newest `limit` messages of room `key` with an id below `before`, ascending.
    fn load(
        &mut self,
        key: &str,
        before: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// The messages of room `key` in `range`, at most `limit`, ascending (as
    /// [`Range::select`] would pick them from the room's whole history).
    fn query(
        &mut self,
        key: &str,
        range: Range,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Drops messages past the retention limits (called now and then).
    fn prune(&mut self, now_ms: u64) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests;

/// Wall-clock time in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
