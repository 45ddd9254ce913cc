//! What the chat operations answer, shared by the operations and both protocol fronts.
//!
//! A leaf module (it imports nothing of the server) so that the fronts and the session
//! state can name these types without importing one another.

use crate::ErrorCode;

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
