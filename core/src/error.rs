//! Error types: decoding failures and the stable error codes carried on the wire.

use thiserror::Error;

/// Why a byte stream could not be turned into a packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A frame declared a body longer than the configured maximum.
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The declared body length.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A frame declared a body of zero bytes, so it has no type code.
    #[error("empty frame: no type code")]
    EmptyFrame,
    /// The type code is not one this side understands.
    #[error("unknown packet type code 0x{0:02x}")]
    UnknownType(u8),
    /// The payload ended in the middle of a field.
    #[error("packet 0x{type_code:02x} truncated in field `{field}`")]
    Truncated {
        /// The packet's type code.
        type_code: u8,
        /// The field that was cut short.
        field: &'static str,
    },
    /// The payload had bytes left over after its last field.
    #[error("packet 0x{type_code:02x} has {extra} trailing bytes")]
    TrailingBytes {
        /// The packet's type code.
        type_code: u8,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A text field was not valid UTF-8.
    #[error("packet 0x{type_code:02x} field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The packet's type code.
        type_code: u8,
        /// The offending field.
        field: &'static str,
    },
    /// A field held a value outside its defined range (for example a flag byte other than 0 or 1).
    #[error("packet 0x{type_code:02x} field `{field}` has an invalid value")]
    InvalidValue {
        /// The packet's type code.
        type_code: u8,
        /// The offending field.
        field: &'static str,
    },
    /// A hello did not start with the protocol magic.
    #[error("hello does not start with the magic \"SWBD\"")]
    BadMagic,
}

impl DecodeError {
    /// The wire error code reported to a peer that sent this.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::InvalidUtf8 { .. } => ErrorCode::InvalidUtf8,
            DecodeError::BadMagic => ErrorCode::BadMagic,
            DecodeError::EmptyFrame
            | DecodeError::Truncated { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::InvalidValue { .. } => ErrorCode::Malformed,
        }
    }
}

/// A stable numeric code carried by `Error` and `Bye` packets.
///
/// The numbers are part of the wire protocol (docs/PROTOCOL.md) and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A frame could not be parsed (truncated, trailing bytes, bad field value, empty).
    Malformed,
    /// A frame's declared length exceeds the limit.
    FrameTooLarge,
    /// A text field was not valid UTF-8.
    InvalidUtf8,
    /// The type code is unknown.
    UnknownType,
    /// The hello did not carry the protocol magic.
    BadMagic,
    /// The hello asked for a protocol version the server does not speak.
    UnsupportedVersion,
    /// A request other than hello arrived before a successful hello.
    HelloRequired,
    /// A second hello arrived after a successful one.
    AlreadyRegistered,
    /// The hello did not carry the server's password.
    BadPassword,
    /// The nickname is empty, too long or has a character that is not allowed.
    InvalidNick,
    /// Another connection holds this nickname (compared case-insensitively).
    NickTaken,
    /// No connection holds this nickname.
    NoSuchNick,
    /// The room name is empty, too long or has a character that is not allowed.
    InvalidRoom,
    /// The request needs membership of a room the connection is not in.
    NotInRoom,
    /// The connection is already in that room.
    AlreadyInRoom,
    /// The connection already sits in the maximum number of rooms.
    TooManyRooms,
    /// No room of that name exists.
    NoSuchRoom,
    /// The request needs operator status in the room.
    NotOperator,
    /// The member named is not in that room.
    TargetNotInRoom,
    /// The room has a key (mode `k`) and the join did not give it.
    BadRoomKey,
    /// The room is at its member limit (mode `l`).
    RoomFull,
    /// The room is invite-only (mode `i`) and the joiner was not invited.
    InviteOnlyRoom,
    /// A ban mask of the room (mode `b`) matches the requester.
    Banned,
    /// The room's rules do not let the requester speak there (modes `n`, `m`, `b`).
    CannotSpeak,
    /// The user named is already in that room.
    TargetInRoom,
    /// The text is empty, too long or holds NUL, CR or LF.
    InvalidText,
    /// The request was dropped: the connection exceeded its message rate.
    RateLimited,
    /// A History request's limit is 0 or above the server's page limit.
    InvalidLimit,
    /// A History request's `before` is past the room's newest message id.
    InvalidCursor,
    /// History is switched off on this server, or its store failed or is too far behind.
    HistoryUnavailable,
    /// Bye: the client asked to quit.
    Quit,
    /// Bye: the connection was silent past the idle timeout (or never said hello in time).
    Timeout,
    /// Bye: the connection did not read its output and exceeded the outbound limit.
    SlowConsumer,
    /// Bye: the connection kept exceeding its message rate.
    Flooding,
    /// Bye: the server is shutting down.
    Shutdown,
    /// Bye: the transport failed (sent only where the socket still accepts writes).
    ConnectionLost,
    /// Bye: refused at connect: too many connections from the client's address, or in all.
    TooManyConnections,
    /// A code this implementation does not know (from a newer peer).
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::Malformed => 1,
            ErrorCode::FrameTooLarge => 2,
            ErrorCode::InvalidUtf8 => 3,
            ErrorCode::UnknownType => 4,
            ErrorCode::BadMagic => 5,
            ErrorCode::UnsupportedVersion => 6,
            ErrorCode::HelloRequired => 7,
            ErrorCode::AlreadyRegistered => 8,
            ErrorCode::BadPassword => 9,
            ErrorCode::InvalidNick => 20,
            ErrorCode::NickTaken => 21,
            ErrorCode::NoSuchNick => 22,
            ErrorCode::InvalidRoom => 30,
            ErrorCode::NotInRoom => 31,
            ErrorCode::AlreadyInRoom => 32,
            ErrorCode::TooManyRooms => 33,
            ErrorCode::NoSuchRoom => 34,
            ErrorCode::NotOperator => 35,
            ErrorCode::TargetNotInRoom => 36,
            ErrorCode::BadRoomKey => 37,
            ErrorCode::RoomFull => 38,
            ErrorCode::InviteOnlyRoom => 39,
            ErrorCode::Banned => 42,
            ErrorCode::CannotSpeak => 43,
            ErrorCode::TargetInRoom => 44,
            ErrorCode::InvalidText => 40,
            ErrorCode::RateLimited => 41,
            ErrorCode::InvalidLimit => 45,
            ErrorCode::InvalidCursor => 46,
            ErrorCode::HistoryUnavailable => 47,
            ErrorCode::Quit => 50,
            ErrorCode::Timeout => 51,
            ErrorCode::SlowConsumer => 52,
            ErrorCode::Flooding => 53,
            ErrorCode::Shutdown => 54,
            ErrorCode::ConnectionLost => 55,
            ErrorCode::TooManyConnections => 56,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number read off the wire; unknown numbers become [`ErrorCode::Other`].
    pub fn from_u16(n: u16) -> ErrorCode {
        match n {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::FrameTooLarge,
            3 => ErrorCode::InvalidUtf8,
            4 => ErrorCode::UnknownType,
            5 => ErrorCode::BadMagic,
            6 => ErrorCode::UnsupportedVersion,
            7 => ErrorCode::HelloRequired,
            8 => ErrorCode::AlreadyRegistered,
            9 => ErrorCode::BadPassword,
            20 => ErrorCode::InvalidNick,
            21 => ErrorCode::NickTaken,
            22 => ErrorCode::NoSuchNick,
            30 => ErrorCode::InvalidRoom,
            31 => ErrorCode::NotInRoom,
            32 => ErrorCode::AlreadyInRoom,
            33 => ErrorCode::TooManyRooms,
            34 => ErrorCode::NoSuchRoom,
            35 => ErrorCode::NotOperator,
            36 => ErrorCode::TargetNotInRoom,
            37 => ErrorCode::BadRoomKey,
            38 => ErrorCode::RoomFull,
            39 => ErrorCode::InviteOnlyRoom,
            42 => ErrorCode::Banned,
            43 => ErrorCode::CannotSpeak,
            44 => ErrorCode::TargetInRoom,
            40 => ErrorCode::InvalidText,
            41 => ErrorCode::RateLimited,
            45 => ErrorCode::InvalidLimit,
            46 => ErrorCode::InvalidCursor,
            47 => ErrorCode::HistoryUnavailable,
            50 => ErrorCode::Quit,
            51 => ErrorCode::Timeout,
            52 => ErrorCode::SlowConsumer,
            53 => ErrorCode::Flooding,
            54 => ErrorCode::Shutdown,
            55 => ErrorCode::ConnectionLost,
            56 => ErrorCode::TooManyConnections,
            n => ErrorCode::Other(n),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorCode::Other(n) => write!(f, "error {n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_code_displays_as_its_name_or_its_number() {
        // Adapters and clients log codes with Display.
        assert_eq!(ErrorCode::NickTaken.to_string(), "NickTaken");
        assert_eq!(ErrorCode::Other(999).to_string(), "error 999");
    }

    #[test]
    fn every_known_code_survives_the_wire_and_unknown_numbers_stay_other() {
        for n in 0..=u16::from(u8::MAX) {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::from_u16(21), ErrorCode::NickTaken);
        assert_eq!(ErrorCode::from_u16(0), ErrorCode::Other(0));
        assert_eq!(ErrorCode::from_u16(57), ErrorCode::Other(57));
    }

    #[test]
    fn decode_errors_map_to_their_wire_codes() {
        assert_eq!(DecodeError::BadMagic.code(), ErrorCode::BadMagic);
        assert_eq!(
            DecodeError::UnknownType(0x7f).code(),
            ErrorCode::UnknownType
        );
        assert_eq!(DecodeError::EmptyFrame.code(), ErrorCode::Malformed);
    }
}
