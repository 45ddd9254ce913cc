//! Turning what happened into lines for the screen.

use std::time::{SystemTime, UNIX_EPOCH};

use switchboard::core::packet::client_type;
use switchboard::core::{ErrorCode, RoomInfo};

/// What a line is about, so a terminal can colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A room message.
    Message,
    /// A room message that mentions this client's nick.
    Mention,
    /// A direct message, either way.
    Direct,
    /// Joins, leaves, nick changes and other news.
    Notice,
    /// Something went wrong.
    Error,
    /// Local help text, shown without a time.
    Help,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What it is about.
    pub kind: Kind,
    /// The text, without time and free of control characters.
    pub text: String,
}

impl Line {
    /// A line of the given kind.
    pub fn new(kind: Kind, text: impl Into<String>) -> Self {
        Line {
            kind,
            text: text.into(),
        }
    }

    /// A notice: `* TEXT`.
    pub fn notice(text: impl AsRef<str>) -> Self {
        Line::new(Kind::Notice, format!("* {}", text.as_ref()))
    }

    /// An error: `!! TEXT`.
    pub fn error(text: impl AsRef<str>) -> Self {
        Line::new(Kind::Error, format!("!! {}", text.as_ref()))
    }

    /// The time prefix for a line shown at `now`, empty for help text.
    pub fn stamp(&self, now: SystemTime) -> String {
        match self.kind {
            Kind::Help => String::new(),
            _ => format!("[{}] ", clock(now)),
        }
    }
}

/// `HH:MM:SS` of a moment, in UTC.
pub fn clock(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Text from the network made safe to print: control characters (which could move the
/// cursor, change colours or retitle the terminal) become `�`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// A room as shown: `#name`.
pub fn room(name: &str) -> String {
    format!("#{}", clean(name))
}

/// Whether `text` mentions `nick` as a whole word (ASCII case-insensitive).
pub fn mentions(text: &str, nick: &str) -> bool {
    let nick = nick.to_ascii_lowercase();
    !nick.is_empty()
        && text
            .to_ascii_lowercase()
            .split(|c: char| !(c.is_ascii_alphanumeric() || "[]\\`^{}|_-".contains(c)))
            .any(|word| word == nick)
}

/// `#rust <alice> hi`.
pub fn message(room_name: &str, from: &str, text: &str, me: &str) -> Line {
    let kind = if !same(from, me) && mentions(text, me) {
        Kind::Mention
    } else {
        Kind::Message
    };
    let line = format!("{} <{}> {}", room(room_name), clean(from), clean(text));
    Line::new(kind, line)
}

/// `-> bob: psst` for one this client sent, `<- alice: psst` for one it got.
pub fn direct(from: &str, to: &str, text: &str, me: &str) -> Line {
    let line = if same(from, me) {
        format!("-> {}: {}", clean(to), clean(text))
    } else {
        format!("<- {}: {}", clean(from), clean(text))
    };
    Line::new(Kind::Direct, line)
}

/// `* bob joined #rust`.
pub fn joined(room_name: &str, nick: &str, me: &str) -> Line {
    if same(nick, me) {
        Line::notice(format!("you joined {}", room(room_name)))
    } else {
        Line::notice(format!("{} joined {}", clean(nick), room(room_name)))
    }
}

/// `* bob left #rust (reason)`.
pub fn left(room_name: &str, nick: &str, reason: &str, me: &str) -> Line {
    let who = if same(nick, me) {
        "you".to_owned()
    } else {
        clean(nick)
    };
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", clean(reason))
    };
    Line::notice(format!("{who} left {}{why}", room(room_name)))
}

/// `* alice is now known as alicia`; `me` is the nick held after the change.
pub fn nick_changed(old: &str, new: &str, me: &str) -> Line {
    if same(new, me) {
        Line::notice(format!("you are now known as {}", clean(new)))
    } else {
        Line::notice(format!("{} is now known as {}", clean(old), clean(new)))
    }
}

/// `* #rust: alice, bob (2)`.
pub fn members(room_name: &str, nicks: &[String]) -> Line {
    let names: Vec<String> = nicks.iter().map(|n| clean(n)).collect();
    Line::notice(format!(
        "{}: {} ({})",
        room(room_name),
        names.join(", "),
        nicks.len()
    ))
}

/// A header line and one line per room.
pub fn room_list(rooms: &[RoomInfo]) -> Vec<Line> {
    if rooms.is_empty() {
        return vec![Line::notice("no rooms yet: /join ROOM makes one")];
    }
    let mut lines = vec![Line::notice(format!("{} rooms:", rooms.len()))];
    let width = rooms.iter().map(|r| room(&r.name).len()).max().unwrap_or(0);
    for r in rooms {
        let people = if r.members == 1 { "member" } else { "members" };
        let row = format!("    {:width$}  {} {people}", room(&r.name), r.members);
        lines.push(Line::new(Kind::Notice, row));
    }
    lines
}

/// `!! join failed: not in `x` (NotInRoom, code 31)`.
pub fn server_error(code: ErrorCode, request_type: u8, message: &str) -> Line {
    let what = match request_name(request_type) {
        Some(name) => format!("{name} failed"),
        None => "server error".to_owned(),
    };
    Line::error(format!("{what}: {} ({})", clean(message), code_text(code)))
}

/// `Shutdown, code 54`, or `code 99` for a code this build does not know.
pub fn code_text(code: ErrorCode) -> String {
    match code {
        ErrorCode::Other(n) => format!("code {n}"),
        known => format!("{known}, code {}", known.to_u16()),
    }
}

/// What the user calls a request type.
fn request_name(request_type: u8) -> Option<&'static str> {
    use client_type::*;
    Some(match request_type {
        HELLO => "sign-in",
        JOIN => "join",
        LEAVE => "leave",
        SAY => "message",
        WHISPER => "direct message",
        NICK => "nick change",
        LIST_ROOMS => "room list",
        LIST_MEMBERS => "member list",
        PING => "ping",
        PONG => "pong",
        QUIT => "quit",
        _ => return None,
    })
}

/// Nicknames and room names compare ASCII case-insensitively, as the server does.
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clock_is_utc_time_of_day() {
        let t = UNIX_EPOCH + Duration::from_secs(3 * 86_400 + 12 * 3600 + 61 * 60 + 2);
        assert_eq!(clock(t), "13:01:02");
        assert_eq!(clock(UNIX_EPOCH), "00:00:00");
        assert_eq!(
            Line::notice("x").stamp(UNIX_EPOCH + Duration::from_secs(59)),
            "[00:00:59] "
        );
        assert_eq!(Line::new(Kind::Help, "x").stamp(UNIX_EPOCH), "");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(
            clean("a\x1b[2Jb\x07c\u{9b}d\x7f"),
            "a\u{FFFD}[2Jb\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(clean("ünï ✓"), "ünï ✓");
        let line = message("r\x1b", "x\x1b", "hi\x1b]0;owned\x07", "me");
        assert!(!line.text.chars().any(char::is_control), "{line:?}");
    }

    #[test]
    fn messages() {
        assert_eq!(
            message("rust", "alice", "hi", "bob"),
            Line::new(Kind::Message, "#rust <alice> hi")
        );
        assert_eq!(
            message("rust", "alice", "hi Bob!", "bob").kind,
            Kind::Mention
        );
        assert_eq!(message("rust", "alice", "bobby", "bob").kind, Kind::Message);
        assert_eq!(
            message("rust", "bob", "I am bob", "bob").kind,
            Kind::Message
        );
        assert!(mentions("ping [x]-y?", "[X]-y"));
    }

    #[test]
    fn direct_messages_show_their_direction() {
        assert_eq!(direct("alice", "bob", "psst", "alice").text, "-> bob: psst");
        assert_eq!(direct("alice", "bob", "psst", "BOB").text, "<- alice: psst");
    }

    #[test]
    fn membership_notices() {
        assert_eq!(joined("rust", "bob", "alice").text, "* bob joined #rust");
        assert_eq!(joined("rust", "Alice", "alice").text, "* you joined #rust");
        assert_eq!(left("rust", "bob", "", "alice").text, "* bob left #rust");
        assert_eq!(
            left("rust", "bob", "quit: zzz", "alice").text,
            "* bob left #rust (quit: zzz)"
        );
        assert_eq!(left("rust", "alice", "", "alice").text, "* you left #rust");
        assert_eq!(
            nick_changed("alice", "al", "bob").text,
            "* alice is now known as al"
        );
        assert_eq!(
            nick_changed("alice", "al", "al").text,
            "* you are now known as al"
        );
        assert_eq!(
            members("rust", &["alice".into(), "bob".into()]).text,
            "* #rust: alice, bob (2)"
        );
    }

    #[test]
    fn room_lists_line_up() {
        let rooms = [
            RoomInfo {
                name: "rust".into(),
                members: 3,
            },
            RoomInfo {
                name: "go".into(),
                members: 1,
            },
        ];
        let texts: Vec<String> = room_list(&rooms).into_iter().map(|l| l.text).collect();
        assert_eq!(
            texts,
            ["* 2 rooms:", "    #rust  3 members", "    #go    1 member"]
        );
        assert_eq!(room_list(&[]).len(), 1);
    }

    #[test]
    fn errors_name_the_request_and_code() {
        let line = server_error(ErrorCode::NotInRoom, client_type::SAY, "not in `go`");
        assert_eq!(line.kind, Kind::Error);
        assert_eq!(
            line.text,
            "!! message failed: not in `go` (NotInRoom, code 31)"
        );
        assert_eq!(
            server_error(ErrorCode::Other(999), 0, "odd").text,
            "!! server error: odd (code 999)"
        );
    }
}
