//! What the chat operations answer, shared by the operations and both protocol fronts.
//!
//! A leaf module (it imports nothing of the server) so that the fronts and the session
//! state can name these types without importing one another.

use std::time::Instant;

use crate::{ConnId, ErrorCode};

/// Why an operation was refused: the code, what it was about (a nick or room, for
/// protocols whose errors name it), and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub code: ErrorCode,
    pub target: String,
    pub message: String,
}

/// An operation's answer: its data, or why it was refused.
pub(crate) type Outcome<T = ()> = Result<T, Fail>;

/// A refusal.
pub(crate) fn fail(code: ErrorCode, target: &str, message: String) -> Fail {
    Fail {
        code,
        target: target.to_owned(),
        message,
    }
}

/// Someone's away status, as a sender who reached them is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Away {
    /// The nick as held.
    pub nick: String,
    /// The away message (never empty).
    pub message: String,
}

/// A request that reached one user (a whisper, an invitation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reached {
    /// The recipient.
    pub target: ConnId,
    /// The recipient's away status, if the sender must be told it.
    pub away: Option<Away>,
}

/// What WHOIS tells an asker about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Whois {
    pub nick: String,
    /// The user name shown in sources (see `Conn::user`).
    pub user: String,
    pub realname: String,
    /// The away message, or empty.
    pub away: String,
    /// Seconds since it last said something to a room or a nick.
    pub idle_secs: u64,
    /// When it connected.
    pub signon: Instant,
    /// A server operator (IRC user mode `o`).
    pub oper: bool,
    /// The rooms the asker may see it in (secret ones only if the asker is a member),
    /// in join order, with its member flags in each.
    pub rooms: Vec<(String, u8)>,
}
