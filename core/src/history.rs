//! Room history as the core sees it: the store requests it emits and the rows it takes back.
//!
//! The core never touches a database. With history switched on
//! ([`crate::Server::enable_history`]) it numbers every room message, stamps it with a wall
//! clock time, and hands the adapter [`StoreOp`]s through [`crate::Server::poll_store`]. The
//! adapter runs them on a store of its choice, in order, and reports back with
//! [`crate::Server::handle_stored`], [`crate::Server::handle_history`] and
//! [`crate::Server::handle_store_error`].

/// One stored room message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id in its room: 1, 2, 3... in the order the room heard them.
    pub id: u64,
    /// Server time it was said, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The sender's nickname.
    pub from: String,
    /// The text (an IRC action is text in its CTCP form).
    pub text: String,
    /// Sent as an IRC NOTICE rather than PRIVMSG.
    pub notice: bool,
}

/// What a store knows about one room at startup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomRecord {
    /// The room's display name.
    pub name: String,
    /// Highest message id ever given in the room (kept even when retention removed it).
    pub last_id: u64,
    /// When the room was first stored, in Unix milliseconds.
    pub created_ms: u64,
    /// Its topic (empty: none).
    pub topic: String,
    /// Who set the topic.
    pub topic_by: String,
    /// When the topic was set, in Unix milliseconds (0: never).
    pub topic_ms: u64,
}

/// A request from the core to the store. Every op carries a number, increasing by one per
/// op; a store executes ops in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Store a room message.
    Append {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// The room's display name.
        room: String,
        /// When the room was created (for a room the store does not know yet).
        created_ms: u64,
        /// The message.
        message: StoredMessage,
    },
    /// Store a room's topic.
    SetTopic {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// The room's display name.
        room: String,
        /// When the room was created (for a room the store does not know yet).
        created_ms: u64,
        /// The topic (empty: cleared).
        topic: String,
        /// Who set it.
        by: String,
        /// When, in Unix milliseconds.
        time_ms: u64,
    },
    /// Load the newest `limit` messages of a room with an id below `before`, answered with
    /// [`crate::Server::handle_history`] in ascending id order.
    Load {
        /// The op's number.
        op: u64,
        /// The room's case-folded key.
        key: String,
        /// Only messages with a smaller id.
        before: u64,
        /// At most this many.
        limit: u32,
    },
}

impl StoreOp {
    /// The op's number.
    pub fn op(&self) -> u64 {
        match self {
            StoreOp::Append { op, .. }
            | StoreOp::SetTopic { op, .. }
            | StoreOp::Load { op, .. } => *op,
        }
    }
}

/// How the core serves history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Messages replayed to a joiner. Default 50; 0 replays nothing (paging still works).
    pub on_join: u16,
    /// Largest page one `History` request may ask for. Default 200.
    pub max_page: u16,
    /// Store ops issued and not yet answered past which room messages are refused (the
    /// store is too far behind to promise they would be kept). Default 100,000.
    pub max_pending_ops: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            on_join: 50,
            max_page: 200,
            max_pending_ops: 100_000,
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds, for lines replayed as text.
pub fn format_utc(time_ms: u64) -> String {
    let secs = time_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_798_761_599_000), "2026-12-31 23:59:59");
    }
}
